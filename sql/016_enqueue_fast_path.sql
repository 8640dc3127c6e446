-- 016_enqueue_fast_path.sql - a single command without options is
-- checked and inserted by one statement (issue 8).
--
-- Every PL/pgSQL expression outside a statement is set up anew in each
-- transaction; lote.insert_command evaluated six of them before and after
-- its INSERT (the options, the type rule, the payload rule, the options
-- test, the due time, the wake-up test). For the common call - no options,
-- as lote.enqueue(type, data) and a batch's follow-up send it - the rules
-- now sit in the INSERT's WHERE and the defaults in the table. pgbench,
-- 1 client, lote.enqueue(type, data), a schema-15 and a schema-16 database
-- alternated 5 times on the dev cluster: backend CPU per transaction
-- 146 -> 130 us (median; lower in every pair), 3 275 -> 3 540 calls a
-- second (+4 to +22 % a pair).
-- When a rule fails, nothing is inserted and the check_* functions raise
-- the same errors as before. Calls with options take 009's path.
--
-- The wake-up names the command's type ("c:" || type, where 009 sent "c"):
-- a daemon that does not handle the type goes on sleeping instead of
-- claiming for nothing (with several daemons split by type, every
-- single enqueue woke them all). NOTIFY still folds equal payloads of one
-- transaction into one. lote.enqueue_many (one type per call) names its
-- type too; "c" alone still wakes every daemon (lote.batch and
-- lote.reprocess send it: their commands may be of several types).
CREATE OR REPLACE FUNCTION lote.insert_command(fn text, type text, data jsonb, institution uuid,
                                               options jsonb, status text, batch bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	new_id bigint;
	o jsonb;
	due timestamptz;
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
	RETURNING id INTO new_id;
	IF insert_command.status = 'pending' AND due <= now() THEN
		PERFORM pg_notify('lote_wakeup', 'c:' || insert_command.type);
	END IF;
	RETURN new_id;
END
$$;

-- 009's body; the wake-up names the type.
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
		PERFORM pg_notify('lote_wakeup', 'c:' || enqueue_many.type);
	END IF;
	RETURN coalesce(ids, '{}');
END
$$;
