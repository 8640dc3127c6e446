-- 001_core: events, commands, batches, workers and the SQL API.
--
-- Hot tables hold live work. Every row carries institution_id (the nil UUID
-- for system work) so the schema can later be distributed by institution.

CREATE TABLE lote.events (
	id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	institution_id uuid NOT NULL,
	entity_type    text NOT NULL,
	entity_id      text NOT NULL,
	type           text NOT NULL,
	data           jsonb NOT NULL DEFAULT '{}',
	status         text NOT NULL DEFAULT 'pending'
	               CHECK (status IN ('pending', 'processing', 'success', 'error')),
	attempt        integer NOT NULL DEFAULT 0,
	max_attempts   integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
	run_at         timestamptz NOT NULL DEFAULT now(),
	lease_until    timestamptz,          -- set while processing
	worker_id      bigint,               -- lote.workers.id of the claimant
	original_id    bigint,               -- the event this one reprocesses
	replaced_by    bigint,               -- the copy that reprocessed it
	created_at     timestamptz NOT NULL DEFAULT now(),
	started_at     timestamptz,
	finished_at    timestamptz,
	duration       interval,
	error          text
);

CREATE TABLE lote.batches (
	id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	institution_id  uuid NOT NULL,
	type            text NOT NULL,
	status          text NOT NULL DEFAULT 'pending'
	                CHECK (status IN ('pending', 'processing', 'success', 'error', 'cancelled')),
	size            integer NOT NULL DEFAULT 0,
	event_id        bigint,              -- origin: the event whose handler made it
	parent_id       bigint,              -- origin: the command whose handler made it
	next_command_id bigint,              -- the follow-up, released on success
	created_at      timestamptz NOT NULL DEFAULT now(),
	started_at      timestamptz,
	finished_at     timestamptz,
	duration        interval,
	error           text
);

CREATE TABLE lote.commands (
	id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	institution_id uuid NOT NULL,
	type           text NOT NULL,
	data           jsonb NOT NULL DEFAULT '{}',
	status         text NOT NULL DEFAULT 'pending'
	               CHECK (status IN ('awaiting', 'pending', 'processing', 'success', 'error', 'cancelled')),
	queue          text NOT NULL DEFAULT 'default',
	priority       smallint NOT NULL DEFAULT 0,   -- lower runs first
	attempt        integer NOT NULL DEFAULT 0,    -- attempts started
	max_attempts   integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
	run_at         timestamptz NOT NULL DEFAULT now(),
	retry          jsonb,    -- retry policy of this command; NULL: its type's
	lease_until    timestamptz,
	worker_id      bigint,
	event_id       bigint,   -- lineage: the event whose handler enqueued it
	parent_id      bigint,   -- lineage: the command whose handler enqueued it
	original_id    bigint,   -- lineage: the failed command this reprocesses
	batch_id       bigint,   -- lineage: the batch it belongs to
	created_at     timestamptz NOT NULL DEFAULT now(),
	started_at     timestamptz,
	finished_at    timestamptz,
	duration       interval,
	error          text
);

-- Claim paths: only claimable rows are indexed, so the index stays as small
-- as the live queue however many finished rows the table holds.
CREATE INDEX commands_claim ON lote.commands (priority, run_at, id)
	WHERE status = 'pending';
CREATE INDEX events_claim ON lote.events (run_at, id)
	WHERE status = 'pending';
-- Lease rescue scans only what is running.
CREATE INDEX commands_lease ON lote.commands (lease_until) WHERE status = 'processing';
CREATE INDEX events_lease ON lote.events (lease_until) WHERE status = 'processing';
-- Lineage look-ups.
CREATE INDEX commands_event ON lote.commands (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX commands_parent ON lote.commands (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX commands_original ON lote.commands (original_id) WHERE original_id IS NOT NULL;
CREATE INDEX commands_batch ON lote.commands (batch_id) WHERE batch_id IS NOT NULL;

-- One row per running worker process: what it handles and what it runs.
CREATE TABLE lote.workers (
	id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	host          text NOT NULL,
	pid           integer NOT NULL,
	started_at    timestamptz NOT NULL DEFAULT now(),
	heartbeat_at  timestamptz NOT NULL DEFAULT now(),
	queues        text[],            -- NULL: every queue
	command_types text[] NOT NULL DEFAULT '{}',
	event_types   text[] NOT NULL DEFAULT '{}',
	current_command_id bigint,       -- what it runs now (refreshed by the heartbeat)
	current_event_id   bigint
);

-- ---------------------------------------------------------------------
-- Settings read by the SQL API (override with ALTER DATABASE … SET).

-- The largest payload accepted, in bytes of its JSON text.
CREATE FUNCTION lote.max_payload_bytes() RETURNS integer
LANGUAGE sql STABLE AS $$
	SELECT coalesce(nullif(current_setting('lote.max_payload_bytes', true), '')::integer,
	                1048576)
$$;

-- The check_* functions are VOLATILE on purpose: they are called for their
-- errors only, and the planner may drop calls of STABLE or IMMUTABLE
-- functions whose result nobody reads.
CREATE FUNCTION lote.check_payload(fn text, data jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	n integer;
BEGIN
	IF data IS NULL OR jsonb_typeof(data) <> 'object' THEN
		RAISE EXCEPTION '%: data must be a JSON object, got %', fn,
			coalesce(jsonb_typeof(data), 'NULL')
			USING ERRCODE = '22023';
	END IF;
	n := octet_length(data::text);
	IF n > lote.max_payload_bytes() THEN
		RAISE EXCEPTION '%: data is % bytes, over the limit of % bytes', fn, n,
			lote.max_payload_bytes()
			USING ERRCODE = '54000',
			      HINT = 'raise it with ALTER DATABASE … SET lote.max_payload_bytes';
	END IF;
END
$$;

CREATE FUNCTION lote.check_type(fn text, type text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	IF type IS NULL OR type !~ '^[A-Za-z_][A-Za-z0-9_.:-]{0,199}$' THEN
		RAISE EXCEPTION '%: invalid type %', fn, coalesce(quote_literal(type), 'NULL')
			USING ERRCODE = '22023',
			      HINT = 'a type is a name of 1 to 200 letters, digits, "_", ".", ":" or "-", starting with a letter or "_"';
	END IF;
END
$$;

-- Lineage of work enqueued from inside a handler: the daemon sets these
-- transaction-local settings around each handler, so any lote.enqueue the
-- handler's SQL makes (directly, in a function, in a trigger) is linked.
CREATE FUNCTION lote.current_id(name text) RETURNS bigint
LANGUAGE sql STABLE AS $$
	SELECT nullif(nullif(current_setting('lote.' || name, true), ''), '0')::bigint
$$;

-- ---------------------------------------------------------------------
-- SQL API

-- Records a domain event in the caller's transaction.
CREATE FUNCTION lote.emit(institution_id uuid, entity_type text, entity_id text,
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
	PERFORM lote.check_type('lote.emit', type);
	PERFORM lote.check_payload('lote.emit', data);
	INSERT INTO lote.events (institution_id, entity_type, entity_id, type, data)
	VALUES (emit.institution_id, emit.entity_type, emit.entity_id, emit.type, emit.data)
	RETURNING id INTO new_id;
	RETURN new_id;
END
$$;

-- Checks an enqueue options object; returns it untouched. One place for the
-- rules so lote.enqueue and the batch functions reject the same things.
CREATE FUNCTION lote.check_options(fn text, options jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	k text;
	allowed constant text[] := ARRAY['run_at', 'delay_ms', 'max_attempts', 'priority', 'queue'];
BEGIN
	IF options IS NULL THEN
		RETURN '{}'::jsonb;
	END IF;
	IF jsonb_typeof(options) <> 'object' THEN
		RAISE EXCEPTION '%: options must be a JSON object, got %', fn, jsonb_typeof(options)
			USING ERRCODE = '22023';
	END IF;
	FOR k IN SELECT jsonb_object_keys(options) LOOP
		IF NOT k = ANY (allowed) THEN
			RAISE EXCEPTION '%: unknown option "%" (allowed: %)', fn, k, array_to_string(allowed, ', ')
				USING ERRCODE = '22023';
		END IF;
	END LOOP;
	IF options ? 'run_at' AND options ? 'delay_ms' THEN
		RAISE EXCEPTION '%: give run_at or delay_ms, not both', fn USING ERRCODE = '22023';
	END IF;
	IF options ? 'run_at' AND (jsonb_typeof(options->'run_at') <> 'string'
	                           OR (options->>'run_at') !~ '^\d{4}-\d\d-\d\d') THEN
		RAISE EXCEPTION '%: run_at must be an ISO 8601 timestamp string, got %', fn, options->'run_at'
			USING ERRCODE = '22023';
	END IF;
	IF options ? 'delay_ms' AND (jsonb_typeof(options->'delay_ms') <> 'number'
	                             OR (options->>'delay_ms')::numeric < 0
	                             OR (options->>'delay_ms')::numeric > 3153600000000) THEN
		RAISE EXCEPTION '%: delay_ms must be a number of milliseconds >= 0, got %', fn, options->'delay_ms'
			USING ERRCODE = '22023';
	END IF;
	IF options ? 'max_attempts' AND (jsonb_typeof(options->'max_attempts') <> 'number'
	                                 OR (options->>'max_attempts') !~ '^\d+$'
	                                 OR (options->>'max_attempts')::numeric NOT BETWEEN 1 AND 1000) THEN
		RAISE EXCEPTION '%: max_attempts must be an integer from 1 to 1000, got %', fn, options->'max_attempts'
			USING ERRCODE = '22023';
	END IF;
	IF options ? 'priority' AND (jsonb_typeof(options->'priority') <> 'number'
	                             OR (options->>'priority') !~ '^-?\d+$'
	                             OR (options->>'priority')::numeric NOT BETWEEN -32768 AND 32767) THEN
		RAISE EXCEPTION '%: priority must be an integer from -32768 to 32767 (lower runs first), got %', fn, options->'priority'
			USING ERRCODE = '22023';
	END IF;
	IF options ? 'queue' AND (jsonb_typeof(options->'queue') <> 'string'
	                          OR (options->>'queue') !~ '^[A-Za-z0-9_.:-]{1,100}$') THEN
		RAISE EXCEPTION '%: queue must be a name of 1 to 100 letters, digits, "_", ".", ":" or "-", got %', fn, options->'queue'
			USING ERRCODE = '22023';
	END IF;
	RETURN options;
END
$$;

-- When a command with these (checked) options may run.
CREATE FUNCTION lote.option_run_at(o jsonb) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
	SELECT CASE WHEN o ? 'run_at' THEN (o->>'run_at')::timestamptz
	            WHEN o ? 'delay_ms' THEN now() + (o->>'delay_ms')::numeric * interval '1 millisecond'
	            ELSE now() END
$$;

-- Checks and inserts one command; fn names the caller in error messages.
-- Lineage comes from the handler's transaction settings (see
-- lote.current_id). The one path for single commands: lote.enqueue, a
-- batch's follow-up.
CREATE FUNCTION lote.insert_command(fn text, type text, data jsonb, institution uuid,
                                    options jsonb, status text, batch bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	o jsonb;
	new_id bigint;
BEGIN
	PERFORM lote.check_type(fn, type);
	PERFORM lote.check_payload(fn, data);
	o := lote.check_options(fn, options);
	INSERT INTO lote.commands (institution_id, type, data, status, queue, priority,
	                           max_attempts, run_at, event_id, parent_id, batch_id)
	VALUES (coalesce(institution, '00000000-0000-0000-0000-000000000000'),
	        insert_command.type, insert_command.data, insert_command.status,
	        coalesce(o->>'queue', 'default'),
	        coalesce((o->>'priority')::smallint, 0),
	        coalesce((o->>'max_attempts')::integer, 3),
	        lote.option_run_at(o),
	        lote.current_id('event_id'), lote.current_id('command_id'), batch)
	RETURNING id INTO new_id;
	RETURN new_id;
END
$$;

-- Enqueues a command in the caller's transaction. A NULL institution means
-- system work (stored as the nil UUID).
CREATE FUNCTION lote.enqueue(type text, data jsonb DEFAULT '{}',
                             institution_id uuid DEFAULT NULL,
                             options jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE sql AS $$
	SELECT lote.insert_command('lote.enqueue', type, data, institution_id, options,
	                           'pending', NULL)
$$;

-- Wake-ups: one NOTIFY per statement (never per row) and only when the
-- statement made something claimable now. Delayed work is found by the
-- daemon from run_at, never from memory.
CREATE FUNCTION lote.notify_wakeup() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF EXISTS (SELECT 1 FROM new_rows WHERE status = 'pending' AND run_at <= now()) THEN
		PERFORM pg_notify('lote_wakeup', TG_ARGV[0]);
	END IF;
	RETURN NULL;
END
$$;

CREATE TRIGGER commands_notify AFTER INSERT ON lote.commands
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION lote.notify_wakeup('c');
CREATE TRIGGER events_notify AFTER INSERT ON lote.events
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION lote.notify_wakeup('e');

-- Backoff before the next attempt of a failed row (attempt = the one that
-- just failed): 1 s, 2 s, 4 s … capped at 1 h. Per-type policies replace it.
CREATE FUNCTION lote.retry_delay(attempt integer) RETURNS interval
LANGUAGE sql IMMUTABLE AS $$
	SELECT least(interval '1 second' * power(2, least(attempt - 1, 20)), interval '1 hour')
$$;

-- Work that waits for a type no live daemon handles (a worker is live when
-- it beat within the last minute). Read by `lote status`.
CREATE VIEW lote.unhandled AS
WITH live AS (
	SELECT * FROM lote.workers WHERE heartbeat_at > now() - interval '1 minute'
)
SELECT 'command'::text AS kind, c.type, c.queue, count(*) AS pending, min(c.created_at) AS oldest
FROM lote.commands c
WHERE c.status = 'pending'
  AND NOT EXISTS (SELECT 1 FROM live w
                  WHERE c.type = ANY (w.command_types)
                    AND (w.queues IS NULL OR c.queue = ANY (w.queues)))
GROUP BY c.type, c.queue
UNION ALL
SELECT 'event', e.type, NULL, count(*), min(e.created_at)
FROM lote.events e
WHERE e.status = 'pending'
  AND NOT EXISTS (SELECT 1 FROM live w WHERE e.type = ANY (w.event_types))
GROUP BY e.type;

-- Gives claimed rows of tbl (lote.commands or lote.events) back. With a
-- reason, each counts as a failed attempt: back to pending after the
-- back-off, or error when its attempts are spent. Without one (NULL), they
-- did nothing wrong: back to pending untouched, the attempt undone.
CREATE FUNCTION lote.give_back(tbl regclass, ids bigint[], reason text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	n integer;
BEGIN
	IF reason IS NULL THEN
		EXECUTE format('UPDATE %s SET status = ''pending'', attempt = attempt - 1,'
		               ' started_at = NULL, lease_until = NULL, worker_id = NULL'
		               ' WHERE id = ANY ($1) AND status = ''processing''', tbl)
		USING ids;
	ELSE
		EXECUTE format('UPDATE %s SET'
		               '  status = CASE WHEN attempt < max_attempts THEN ''pending'' ELSE ''error'' END,'
		               '  run_at = CASE WHEN attempt < max_attempts THEN now() + lote.retry_delay(attempt) ELSE run_at END,'
		               '  finished_at = CASE WHEN attempt < max_attempts THEN NULL ELSE now() END,'
		               '  duration = CASE WHEN attempt < max_attempts THEN NULL ELSE now() - started_at END,'
		               '  error = format(''attempt %%s: %%s'', attempt, $2),'
		               '  lease_until = NULL, worker_id = NULL'
		               ' WHERE id = ANY ($1) AND status = ''processing''', tbl)
		USING ids, reason;
	END IF;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

-- Returns claimed work whose lease expired to the queue: its claimant is
-- gone (host lost, connection cut) or stuck. It counts as a failed
-- attempt, so a row that takes its worker down every time ends in error
-- instead of looping. A worker holds its rows locked while its transaction
-- works on them, so locked rows are skipped (that transaction either
-- commits their outcome or dies and frees them for the next round): a late
-- completion can never be overwritten.
CREATE FUNCTION lote.rescue(reason text DEFAULT 'lease expired')
RETURNS integer
LANGUAGE sql AS $$
	SELECT lote.give_back('lote.commands', ARRAY(
	           SELECT id FROM lote.commands WHERE status = 'processing' AND lease_until < now()
	           FOR UPDATE SKIP LOCKED), reason)
	     + lote.give_back('lote.events', ARRAY(
	           SELECT id FROM lote.events WHERE status = 'processing' AND lease_until < now()
	           FOR UPDATE SKIP LOCKED), reason)
$$;

-- A worker process of a known host died (crash, kill -9, a handler past its
-- timeout). The row it was running (current_kind/current_id, when known)
-- fails with reason, counting its attempt; the other rows it had claimed
-- but not started go back untouched, since they did nothing wrong. Locked
-- rows are skipped, as in lote.rescue; the worker's row goes once nothing
-- it claimed is left.
CREATE FUNCTION lote.worker_lost(lost_worker bigint, current_kind text, current_id bigint, reason text)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	n integer := 0;
	tbl regclass;
	kind text;
	ids bigint[];
BEGIN
	FOREACH kind IN ARRAY ARRAY['command', 'event'] LOOP
		tbl := CASE kind WHEN 'command' THEN 'lote.commands' ELSE 'lote.events' END;
		EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM %s WHERE worker_id = $1'
		               ' AND status = ''processing'' FOR UPDATE SKIP LOCKED) s', tbl)
		INTO ids USING lost_worker;
		IF ids IS NULL THEN
			CONTINUE;
		END IF;
		IF kind = current_kind AND current_id = ANY (ids) THEN
			n := n + lote.give_back(tbl, ARRAY[current_id], reason);
		END IF;
		n := n + lote.give_back(tbl, ids, NULL);
	END LOOP;
	DELETE FROM lote.workers w WHERE w.id = lost_worker
	  AND NOT EXISTS (SELECT 1 FROM lote.commands WHERE worker_id = lost_worker AND status = 'processing')
	  AND NOT EXISTS (SELECT 1 FROM lote.events WHERE worker_id = lost_worker AND status = 'processing');
	RETURN n;
END
$$;
