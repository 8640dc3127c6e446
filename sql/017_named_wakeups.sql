-- 017_named_wakeups.sql - every wake-up of commands names their type
-- and queue (issue 8).
--
-- 016 named the type in the wake-ups of lote.enqueue and
-- lote.enqueue_many ("c:" || type); a batch's members, its released
-- follow-up and a reprocessed copy still sent "c", which wakes every
-- daemon, including those that handle none of the types; and no payload
-- said the queue, so a daemon that takes only some queues (lote run
-- --queues) woke for every other queue's work of its types. Now every
-- path sends "c:TYPE" for the default queue and "c:TYPE@QUEUE" for
-- another (neither a type nor a queue name may hold "@"), one per
-- distinct type and queue it made claimable (NOTIFY folds equal payloads
-- of a transaction into one), and "c" only when a statement's due rows
-- have more than 32 of them, so that a batch of many types cannot flood
-- the listeners' queues. Daemons of 016's version read "c:TYPE@QUEUE" as
-- a type they do not handle: they find such work at their next poll.

-- The payload that names a type and queue: "kind:type" for the default
-- queue, "kind:type@queue" for another, or the bare kind for a type or
-- queue no API would have accepted (a row inserted by hand may carry one;
-- a NOTIFY payload must stay under 8000 bytes, and the API's types are at
-- most 200 ASCII characters, its queue names at most 100).
CREATE FUNCTION lote.wakeup_payload(kind text, type text, queue text DEFAULT 'default')
RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE WHEN octet_length(type) > 200 OR octet_length(queue) > 100 THEN kind
	            WHEN queue = 'default' THEN kind || ':' || type
	            ELSE kind || ':' || type || '@' || queue END
$$;

-- 016's body; the general path names the queue.
CREATE OR REPLACE FUNCTION lote.insert_command(fn text, type text, data jsonb, institution uuid,
                                               options jsonb, status text, batch bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	new_id bigint;
	o jsonb;
	due timestamptz;
	q text;
BEGIN
	IF options IS NULL OR options = '{}'::jsonb THEN
		-- queue, priority, retry and run_at take the table's defaults
		INSERT INTO lote.commands (institution_id, type, data, status, max_attempts,
		                           event_id, parent_id, batch_id)
		SELECT coalesce(institution, '00000000-0000-0000-0000-000000000000'),
		       insert_command.type, insert_command.data, insert_command.status,
		       coalesce((SELECT p.max_attempts FROM lote.policies p
		                 WHERE p.kind = 'command' AND p.type = insert_command.type), 3),
		       lote.current_id('event_id'), lote.current_id('command_id'),
		       insert_command.batch
		WHERE lote.type_ok(insert_command.type) AND lote.payload_ok(insert_command.data)
		RETURNING id INTO new_id;
		IF new_id IS NULL THEN
			-- a rule failed: the same errors, in the same order, as below
			PERFORM lote.check_type(fn, type);
			PERFORM lote.check_payload(fn, data);
			RAISE EXCEPTION '%: command of type % not inserted', fn, quote_literal(type)
				USING ERRCODE = 'XX000';
		END IF;
		IF insert_command.status = 'pending' THEN
			PERFORM pg_notify('lote_wakeup', 'c:' || insert_command.type);
		END IF;
		RETURN new_id;
	END IF;

	-- 009's body
	o := options;
	IF NOT lote.type_ok(type) THEN
		PERFORM lote.check_type(fn, type);
	END IF;
	IF NOT lote.payload_ok(data) THEN
		PERFORM lote.check_payload(fn, data);
	END IF;
	PERFORM lote.check_options(fn, o);
	due := lote.option_run_at(o);
	INSERT INTO lote.commands (institution_id, type, data, status, queue, priority,
	                           max_attempts, retry, run_at, event_id, parent_id, batch_id)
	VALUES (coalesce(institution, '00000000-0000-0000-0000-000000000000'),
	        insert_command.type, insert_command.data, insert_command.status,
	        coalesce(o->>'queue', 'default'),
	        coalesce((o->>'priority')::smallint, 0),
	        -- the policy read in place: lote.policy_max_attempts holds a
	        -- subquery, so PostgreSQL does not inline it and plans it anew
	        -- on every call (measured: about 40 % fewer lote.enqueue calls a second)
	        coalesce((o->>'max_attempts')::integer,
	                 (SELECT p.max_attempts FROM lote.policies p
	                  WHERE p.kind = 'command' AND p.type = insert_command.type), 3),
	        o->'retry', due,
	        lote.current_id('event_id'), lote.current_id('command_id'),
	        insert_command.batch)
	RETURNING id, queue INTO new_id, q;
	IF insert_command.status = 'pending' AND due <= now() THEN
		PERFORM pg_notify('lote_wakeup', lote.wakeup_payload('c', insert_command.type, q));
	END IF;
	RETURN new_id;
END
$$;

-- 016's body; the general path names the queue.
CREATE OR REPLACE FUNCTION lote.enqueue_many(type text, data jsonb[], institution_id uuid DEFAULT NULL,
                                             options jsonb DEFAULT '{}')
RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
	o jsonb := coalesce(options, '{}');
	-- what every command of the call shares, computed once
	inst uuid := coalesce(enqueue_many.institution_id, '00000000-0000-0000-0000-000000000000');
	q text;
	prio smallint;
	attempts integer;
	due timestamptz;
	ev bigint := lote.current_id('event_id');
	parent bigint := lote.current_id('command_id');
	ids bigint[];
BEGIN
	IF NOT lote.type_ok(type) THEN
		PERFORM lote.check_type('lote.enqueue_many', type);
	END IF;
	IF o <> '{}'::jsonb THEN
		PERFORM lote.check_options('lote.enqueue_many', o);
	END IF;
	IF data IS NULL THEN
		RAISE EXCEPTION 'lote.enqueue_many: data must be an array of JSON objects, got NULL'
			USING ERRCODE = '22023';
	END IF;
	q := coalesce(o->>'queue', 'default');
	prio := coalesce((o->>'priority')::smallint, 0);
	attempts := coalesce((o->>'max_attempts')::integer,
	                     (SELECT p.max_attempts FROM lote.policies p
	                      WHERE p.kind = 'command' AND p.type = enqueue_many.type), 3);
	due := lote.option_run_at(o);
	WITH ins AS (
		INSERT INTO lote.commands (institution_id, type, data, status, queue, priority,
		                           max_attempts, retry, run_at, event_id, parent_id)
		SELECT inst, enqueue_many.type,
		       CASE WHEN lote.payload_ok(d) THEN d
		            ELSE lote.checked_payload(format('lote.enqueue_many: data[%s]', i), d) END,
		       'pending', q, prio, attempts, o->'retry', due, ev, parent
		FROM unnest(data) WITH ORDINALITY AS u(d, i)
		ORDER BY i
		RETURNING id)
	SELECT array_agg(id ORDER BY id) INTO ids FROM ins;
	IF ids IS NOT NULL AND due <= now() THEN
		PERFORM pg_notify('lote_wakeup', lote.wakeup_payload('c', enqueue_many.type, q));
	END IF;
	RETURN coalesce(ids, '{}');
END
$$;

-- 009's body; one wake-up per type and queue of the members that are
-- claimable now.
CREATE OR REPLACE FUNCTION lote.insert_commands(fn text, items jsonb, institution uuid,
                                                batch bigint, initial_status text)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	n integer;
	due text[];
	payload text;
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
		RETURNING status, run_at, type, queue)
	SELECT (SELECT count(*) FROM ins),
	       (SELECT array_agg(d.p) FROM (SELECT DISTINCT lote.wakeup_payload('c', ins.type, ins.queue) AS p
	                                    FROM ins WHERE status = 'pending' AND run_at <= now()) d)
	INTO n, due;
	IF cardinality(due) > 32 THEN
		PERFORM pg_notify('lote_wakeup', 'c');
	ELSIF due IS NOT NULL THEN
		FOREACH payload IN ARRAY due LOOP
			PERFORM pg_notify('lote_wakeup', payload);
		END LOOP;
	END IF;
	RETURN n;
END
$$;

-- 009's wrapper: the copy's type and queue.
CREATE OR REPLACE FUNCTION lote.reprocess(command_id bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	new_id bigint := lote.reprocess_any(command_id);
BEGIN
	PERFORM pg_notify('lote_wakeup', coalesce((SELECT lote.wakeup_payload('c', c.type, c.queue)
	                                           FROM lote.commands c WHERE c.id = new_id), 'c'));
	RETURN new_id;
END
$$;

-- 013's body; the released follow-up's type and queue.
CREATE OR REPLACE FUNCTION lote.batch_check(ids bigint[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	done integer := 0;
	id_ bigint;
	b record;
	failed record;
	has_failed boolean;
	next_payload text;
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
				RETURNING lote.wakeup_payload('c', type, queue) INTO next_payload;
				IF FOUND THEN
					PERFORM pg_notify('lote_wakeup', next_payload);
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
