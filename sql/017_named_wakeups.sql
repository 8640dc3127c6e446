-- 017_named_wakeups.sql - batches, reprocessed copies and released
-- follow-ups name their commands' types in the wake-up (issue 8).
--
-- 016 named the type in the wake-ups of lote.enqueue and
-- lote.enqueue_many ("c:" || type); these three paths still sent "c",
-- which wakes every daemon, including those that handle none of the
-- types. Now each sends one "c:TYPE" per distinct type it made claimable
-- (NOTIFY folds equal payloads of a transaction into one), and "c" only
-- when a batch's due members have more than 32 distinct types, so that a
-- batch of many types cannot flood the listeners' queues.

-- The payload that names a type: "kind:type", or the bare kind for a type
-- no API would have accepted (a row inserted by hand may carry one; a
-- NOTIFY payload must stay under 8000 bytes, and the API's types are at
-- most 200 ASCII characters).
CREATE FUNCTION lote.wakeup_payload(kind text, type text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE WHEN octet_length(type) <= 200 THEN kind || ':' || type ELSE kind END
$$;

-- 009's body; one wake-up per type of the members that are claimable now.
CREATE OR REPLACE FUNCTION lote.insert_commands(fn text, items jsonb, institution uuid,
                                                batch bigint, initial_status text)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	n integer;
	due_types text[];
	due_type text;
	bad record;
BEGIN
	IF items IS NULL OR jsonb_typeof(items) <> 'array' THEN
		RAISE EXCEPTION '%: commands must be a JSON array of {"type": …, "data": …} objects, got %',
			fn, coalesce(jsonb_typeof(items), 'NULL') USING ERRCODE = '22023';
	END IF;
	SELECT i, e INTO bad FROM jsonb_array_elements(items) WITH ORDINALITY AS t(e, i)
	WHERE jsonb_typeof(e) <> 'object' LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION '%: command %: must be an object like {"type": …, "data": …}, got %',
			fn, bad.i, bad.e USING ERRCODE = '22023';
	END IF;
	SELECT i, e INTO bad FROM jsonb_array_elements(items) WITH ORDINALITY AS t(e, i)
	WHERE jsonb_typeof(e->'type') IS DISTINCT FROM 'string' LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION '%: command %: "type" must be a string', fn, bad.i
			USING ERRCODE = '22023';
	END IF;
	-- The first member with a bad type or payload gets the usual error.
	SELECT i, e INTO bad FROM jsonb_array_elements(items) WITH ORDINALITY AS t(e, i)
	WHERE NOT lote.type_ok(e->>'type') OR NOT lote.payload_ok(coalesce(e->'data', '{}'))
	ORDER BY i LIMIT 1;
	IF FOUND THEN
		PERFORM lote.check_type(format('%s: command %s', fn, bad.i), bad.e->>'type');
		PERFORM lote.check_payload(format('%s: command %s', fn, bad.i), coalesce(bad.e->'data', '{}'));
	END IF;
	-- Options are checked only for the members that have some.
	WITH ins AS (
		INSERT INTO lote.commands (institution_id, type, data, status, queue, priority,
		                           max_attempts, retry, run_at, event_id, parent_id, batch_id)
		SELECT institution, e->>'type', coalesce(e->'data', '{}'), initial_status,
		       coalesce(o->>'queue', 'default'),
		       coalesce((o->>'priority')::smallint, 0),
		       coalesce((o->>'max_attempts')::integer, p.max_attempts, 3),
		       o->'retry', lote.option_run_at(o),
		       lote.current_id('event_id'), lote.current_id('command_id'), batch
		FROM jsonb_array_elements(items) WITH ORDINALITY AS t(e, i)
		CROSS JOIN LATERAL (SELECT CASE WHEN e - 'type' - 'data' = '{}'::jsonb THEN '{}'::jsonb
		                           ELSE lote.check_options(format('%s: command %s', fn, i),
		                                                   e - 'type' - 'data') END AS o) AS v
		LEFT JOIN lote.policies p ON p.kind = 'command' AND p.type = e->>'type'
		ORDER BY i
		RETURNING status, run_at, type)
	SELECT (SELECT count(*) FROM ins),
	       (SELECT array_agg(d.type) FROM (SELECT DISTINCT ins.type FROM ins
	                                       WHERE status = 'pending' AND run_at <= now()) d)
	INTO n, due_types;
	IF cardinality(due_types) > 32 THEN
		PERFORM pg_notify('lote_wakeup', 'c');
	ELSIF due_types IS NOT NULL THEN
		FOREACH due_type IN ARRAY due_types LOOP
			PERFORM pg_notify('lote_wakeup', lote.wakeup_payload('c', due_type));
		END LOOP;
	END IF;
	RETURN n;
END
$$;

-- 009's wrapper: the copy's type.
CREATE OR REPLACE FUNCTION lote.reprocess(command_id bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	new_id bigint := lote.reprocess_any(command_id);
BEGIN
	PERFORM pg_notify('lote_wakeup', coalesce(lote.wakeup_payload('c',
		(SELECT c.type FROM lote.commands c WHERE c.id = new_id)), 'c'));
	RETURN new_id;
END
$$;

-- 013's body; the released follow-up's type.
CREATE OR REPLACE FUNCTION lote.batch_check(ids bigint[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	done integer := 0;
	id_ bigint;
	b record;
	failed record;
	has_failed boolean;
	next_type text;
BEGIN
	FOREACH id_ IN ARRAY ids LOOP
		-- Cheap look first, without locking: the common answer is "still
		-- open, nothing failed", and then there is nothing to do.
		SELECT * INTO b FROM lote.batches WHERE id = id_;
		IF NOT FOUND OR b.status NOT IN ('pending', 'processing', 'error') THEN
			CONTINUE;
		END IF;
		has_failed := EXISTS (SELECT 1 FROM lote.commands c WHERE c.batch_id = id_
		                      AND c.status IN ('error', 'cancelled') AND c.replaced_by IS NULL);
		IF b.size > lote.batch_done(id_) AND NOT has_failed AND b.status <> 'error' THEN
			CONTINUE;
		END IF;
		-- Something to change: lock the batch and look again.
		SELECT * INTO b FROM lote.batches WHERE id = id_ FOR UPDATE;
		IF b.status NOT IN ('pending', 'processing', 'error') THEN
			CONTINUE;
		END IF;
		IF b.size <= lote.batch_done(b.id) THEN
			UPDATE lote.batches SET status = 'success', error = NULL,
				started_at = coalesce(started_at, now()),
				finished_at = clock_timestamp(),
				duration = clock_timestamp() - coalesce(started_at, created_at)
			WHERE id = b.id;
			DELETE FROM lote.batch_progress WHERE batch_id = b.id;
			IF b.next_command_id IS NOT NULL THEN
				UPDATE lote.commands SET status = 'pending', run_at = greatest(run_at, now())
				WHERE id = b.next_command_id AND status = 'awaiting'
				RETURNING type INTO next_type;
				IF FOUND THEN
					PERFORM pg_notify('lote_wakeup', lote.wakeup_payload('c', next_type));
				END IF;
			END IF;
			done := done + 1;
			CONTINUE;
		END IF;
		SELECT c.id, c.error INTO failed FROM lote.commands c
		WHERE c.batch_id = b.id AND c.status IN ('error', 'cancelled') AND c.replaced_by IS NULL
		ORDER BY c.id LIMIT 1;
		IF FOUND AND b.status <> 'error' THEN
			UPDATE lote.batches SET status = 'error',
				error = format('command %s failed: %s', failed.id, coalesce(failed.error, 'cancelled'))
			WHERE id = b.id;
		ELSIF NOT FOUND AND b.status = 'error' THEN
			UPDATE lote.batches SET status = 'processing', error = NULL WHERE id = b.id;
		END IF;
	END LOOP;
	RETURN done;
END
$$;
