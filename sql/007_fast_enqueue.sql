-- 007_fast_enqueue.sql - the enqueue paths without a function call per
-- check, and lote.enqueue_many (issue 8).
--
-- lote.enqueue spent about 190 us of server time per call outside its
-- INSERT (pgbench, synchronous_commit off: 299 us per call against 109 us
-- for the bare INSERT): every check was a PL/pgSQL function of its own and
-- every lookup a SPI round. The rules and the messages stay exactly those
-- of the check_* functions: the checks now run as plain expressions, and
-- only a value that fails one is handed to its check_* function, which
-- raises the usual error. lote.batch's members (lote.insert_commands) are
-- checked as a set the same way, instead of three calls per member.

-- The rules of lote.check_type and lote.check_payload as booleans, for the
-- fast paths below: one place for each rule (check_type reads type_ok
-- too). Plain SQL, inlined by the planner where they are used.
CREATE FUNCTION lote.type_ok(type text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
	SELECT type IS NOT NULL AND type ~ '^[A-Za-z_][A-Za-z0-9_.:-]{0,199}$'
$$;

CREATE FUNCTION lote.payload_ok(data jsonb) RETURNS boolean
LANGUAGE sql STABLE AS $$
	SELECT data IS NOT NULL AND jsonb_typeof(data) = 'object'
	       AND octet_length(data::text) <= lote.max_payload_bytes()
$$;

CREATE OR REPLACE FUNCTION lote.check_type(fn text, type text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	IF NOT lote.type_ok(type) THEN
		RAISE EXCEPTION '%: invalid type %', fn, coalesce(quote_literal(type), 'NULL')
			USING ERRCODE = '22023',
			      HINT = 'a type is a name of 1 to 200 letters, digits, "_", ".", ":" or "-", starting with a letter or "_"';
	END IF;
END
$$;

CREATE OR REPLACE FUNCTION lote.insert_command(fn text, type text, data jsonb, institution uuid,
                                               options jsonb, status text, batch bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	new_id bigint;
	o jsonb := coalesce(options, '{}');
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
	        o->'retry', lote.option_run_at(o),
	        lote.current_id('event_id'), lote.current_id('command_id'),
	        insert_command.batch)
	RETURNING id INTO new_id;
	RETURN new_id;
END
$$;

CREATE OR REPLACE FUNCTION lote.insert_commands(fn text, items jsonb, institution uuid,
                                                batch bigint, initial_status text)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	n integer;
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
	ORDER BY i;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

-- data, checked: raises lote.check_payload's error for a bad payload (fn
-- names the caller and element), else returns it. For set-based callers:
-- the check happens inside their one statement, no pass of its own.
CREATE FUNCTION lote.checked_payload(fn text, data jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	PERFORM lote.check_payload(fn, data);
	RETURN data;
END
$$;

-- Enqueues one command of `type` per element of data, with the same
-- options, in the caller's transaction, as one statement (one NOTIFY).
-- Returns their ids in the order of data. Checked like lote.enqueue; an
-- element that fails a check fails the whole call, naming its index (the
-- first bad one: the statement reads data in order and stops there).
CREATE FUNCTION lote.enqueue_many(type text, data jsonb[], institution_id uuid DEFAULT NULL,
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
	RETURN coalesce(ids, '{}');
END
$$;

CREATE OR REPLACE FUNCTION lote.emit(institution_id uuid, entity_type text, entity_id text,
                                     type text, data jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	new_id bigint;
BEGIN
	IF institution_id IS NULL THEN
		RAISE EXCEPTION 'lote.emit: institution_id must not be NULL (use the nil UUID 00000000-0000-0000-0000-000000000000 for system events)'
			USING ERRCODE = '22004';
	END IF;
	IF entity_type IS NULL OR entity_type = '' OR entity_id IS NULL OR entity_id = '' THEN
		RAISE EXCEPTION 'lote.emit: entity_type and entity_id must be non-empty'
			USING ERRCODE = '22023';
	END IF;
	IF NOT lote.type_ok(type) THEN
		PERFORM lote.check_type('lote.emit', type);
	END IF;
	IF NOT lote.payload_ok(data) THEN
		PERFORM lote.check_payload('lote.emit', data);
	END IF;
	INSERT INTO lote.events (institution_id, entity_type, entity_id, type, data, max_attempts)
	VALUES (emit.institution_id, emit.entity_type, emit.entity_id, emit.type, emit.data,
	        coalesce((SELECT p.max_attempts FROM lote.policies p
	                  WHERE p.kind = 'event' AND p.type = emit.type), 3))
	RETURNING id INTO new_id;
	RETURN new_id;
END
$$;
