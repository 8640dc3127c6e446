-- 009_insert_wakeups.sql - the functions that insert commands send the
-- wake-up themselves; the INSERT trigger on lote.commands goes (issue 8).
--
-- commands_notify kept a transition table of every row inserted into
-- lote.commands and ran a query over it to decide whether to NOTIFY. That
-- was 14 % of a 100-row lote.enqueue_many and about 5 % of a single
-- lote.enqueue (pgbench, the same table with and without the trigger,
-- alternated). The inserting functions know already whether what they
-- inserted is claimable now. Rows inserted by hand are found by the poll,
-- like work whose notification was lost. lote.events keeps its trigger:
-- the capture triggers on application tables insert into it directly.
DROP TRIGGER commands_notify ON lote.commands;

-- 007's body; the wake-up when the command is claimable now.
CREATE OR REPLACE FUNCTION lote.insert_command(fn text, type text, data jsonb, institution uuid,
                                               options jsonb, status text, batch bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	new_id bigint;
	o jsonb := coalesce(options, '{}');
	due timestamptz;
BEGIN
	IF NOT lote.type_ok(type) THEN
		PERFORM lote.check_type(fn, type);
	END IF;
	IF NOT lote.payload_ok(data) THEN
		PERFORM lote.check_payload(fn, data);
	END IF;
	IF o <> '{}'::jsonb THEN
		PERFORM lote.check_options(fn, o);
	END IF;
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
	RETURNING id INTO new_id;
	IF insert_command.status = 'pending' AND due <= now() THEN
		PERFORM pg_notify('lote_wakeup', 'c');
	END IF;
	RETURN new_id;
END
$$;

-- 007's body; the wake-up when a member is claimable now.
CREATE OR REPLACE FUNCTION lote.insert_commands(fn text, items jsonb, institution uuid,
                                                batch bigint, initial_status text)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	n integer;
	wake boolean;
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
		RETURNING status, run_at)
	SELECT count(*), coalesce(bool_or(status = 'pending' AND run_at <= now()), false)
	INTO n, wake FROM ins;
	IF wake THEN
		PERFORM pg_notify('lote_wakeup', 'c');
	END IF;
	RETURN n;
END
$$;

-- 007's body; the wake-up when the commands are claimable now.
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
		PERFORM pg_notify('lote_wakeup', 'c');
	END IF;
	RETURN coalesce(ids, '{}');
END
$$;

-- A reprocessed copy is pending and due at once. lote.reprocess (003) and
-- lote.reprocess_hot (006) insert it; one wrapper wakes the workers for
-- both (reprocess is an operator's action: one call more costs nothing).
ALTER FUNCTION lote.reprocess(bigint) RENAME TO reprocess_any;

CREATE FUNCTION lote.reprocess(command_id bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	new_id bigint := lote.reprocess_any(command_id);
BEGIN
	PERFORM pg_notify('lote_wakeup', 'c');
	RETURN new_id;
END
$$;
