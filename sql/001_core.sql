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
-- Lineage look-ups. The id in each key spreads the entries of one parent
-- (a batch of 100 000 members, a seeding command's children) over the
-- index: every claim and completion writes a new entry, and with the bare
-- lineage id as the key they would all pile onto one hot page.
CREATE INDEX commands_event ON lote.commands (event_id, id) WHERE event_id IS NOT NULL;
CREATE INDEX commands_parent ON lote.commands (parent_id, id) WHERE parent_id IS NOT NULL;
CREATE INDEX commands_original ON lote.commands (original_id, id) WHERE original_id IS NOT NULL;
CREATE INDEX commands_batch ON lote.commands (batch_id, id) WHERE batch_id IS NOT NULL;

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
	backend_pid   integer,           -- its server process (to end it when the worker dies)
	current_command_id bigint,       -- what it runs now (refreshed by the heartbeat)
	current_event_id   bigint
);

-- Retry policy of each type, as the running daemons registered it (the C
-- API or the config file). lote.enqueue reads max_attempts from here; a
-- failure's back-off comes from the command's own `retry`, else from here,
-- else the default: exponential from 1 s, capped at 1 h, no jitter.
CREATE TABLE lote.policies (
	kind         text NOT NULL CHECK (kind IN ('command', 'event')),
	type         text NOT NULL,
	max_attempts integer CHECK (max_attempts BETWEEN 1 AND 1000),
	retry        jsonb,
	updated_at   timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (kind, type)
);

-- Every attempt that did not end its row in success: handler errors,
-- crashes, timeouts, expired leases. With the row itself (which holds its
-- last attempt) this is the whole history; nothing is overwritten.
CREATE TABLE lote.attempts (
	id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind           text NOT NULL CHECK (kind IN ('command', 'event')),
	row_id         bigint NOT NULL,   -- lote.commands.id or lote.events.id
	institution_id uuid NOT NULL,
	attempt        integer NOT NULL,
	outcome        text NOT NULL
	               CHECK (outcome IN ('failed', 'crashed', 'timeout', 'lease_expired')),
	retry_at       timestamptz,       -- when the next attempt may run; NULL: none
	worker_id      bigint,
	host           text,
	pid            integer,
	started_at     timestamptz,
	finished_at    timestamptz,
	error          text
);
CREATE INDEX attempts_row ON lote.attempts (kind, row_id, attempt);

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
	INSERT INTO lote.events (institution_id, entity_type, entity_id, type, data, max_attempts)
	VALUES (emit.institution_id, emit.entity_type, emit.entity_id, emit.type, emit.data,
	        lote.policy_max_attempts('event', emit.type))
	RETURNING id INTO new_id;
	RETURN new_id;
END
$$;

-- Checks a retry policy: {"strategy": "exponential"|"linear"|"fixed",
-- "base_ms": N, "max_ms": N, "jitter": 0..1}, every key optional.
CREATE FUNCTION lote.check_retry(fn text, r jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	k text;
BEGIN
	IF jsonb_typeof(r) IS DISTINCT FROM 'object' THEN
		RAISE EXCEPTION '%: retry must be an object like {"strategy": "exponential", "base_ms": 1000, "max_ms": 60000, "jitter": 0.1}, got %',
			fn, coalesce(jsonb_typeof(r), 'NULL') USING ERRCODE = '22023';
	END IF;
	FOR k IN SELECT jsonb_object_keys(r) LOOP
		IF k NOT IN ('strategy', 'base_ms', 'max_ms', 'jitter') THEN
			RAISE EXCEPTION '%: retry: unknown key "%" (allowed: strategy, base_ms, max_ms, jitter)', fn, k
				USING ERRCODE = '22023';
		END IF;
	END LOOP;
	IF r ? 'strategy' AND coalesce(r->>'strategy', '') NOT IN ('exponential', 'linear', 'fixed') THEN
		RAISE EXCEPTION '%: retry.strategy must be "exponential", "linear" or "fixed", got %', fn, r->'strategy'
			USING ERRCODE = '22023';
	END IF;
	IF r ? 'base_ms' AND (jsonb_typeof(r->'base_ms') <> 'number' OR (r->>'base_ms')::numeric < 0
	                      OR (r->>'base_ms')::numeric > 31536000000) THEN
		RAISE EXCEPTION '%: retry.base_ms must be a number of milliseconds from 0 to one year, got %', fn, r->'base_ms'
			USING ERRCODE = '22023';
	END IF;
	IF r ? 'max_ms' AND (jsonb_typeof(r->'max_ms') <> 'number' OR (r->>'max_ms')::numeric < 0
	                     OR (r->>'max_ms')::numeric > 31536000000) THEN
		RAISE EXCEPTION '%: retry.max_ms must be a number of milliseconds from 0 to one year, got %', fn, r->'max_ms'
			USING ERRCODE = '22023';
	END IF;
	IF r ? 'jitter' AND (jsonb_typeof(r->'jitter') <> 'number' OR (r->>'jitter')::numeric NOT BETWEEN 0 AND 1) THEN
		RAISE EXCEPTION '%: retry.jitter must be a number from 0 to 1, got %', fn, r->'jitter'
			USING ERRCODE = '22023';
	END IF;
END
$$;

-- Checks an enqueue options object; returns it untouched. One place for the
-- rules so lote.enqueue and the batch functions reject the same things.
CREATE FUNCTION lote.check_options(fn text, options jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	k text;
	allowed constant text[] := ARRAY['run_at', 'delay_ms', 'max_attempts', 'priority', 'queue', 'retry'];
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
	IF options ? 'retry' THEN
		PERFORM lote.check_retry(fn, options->'retry');
	END IF;
	RETURN options;
END
$$;

-- The max_attempts of a type: its registered policy, else 3.
CREATE FUNCTION lote.policy_max_attempts(kind text, type text) RETURNS integer
LANGUAGE sql STABLE AS $$
	SELECT coalesce((SELECT p.max_attempts FROM lote.policies p
	                 WHERE p.kind = policy_max_attempts.kind AND p.type = policy_max_attempts.type), 3)
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
	                           max_attempts, retry, run_at, event_id, parent_id, batch_id)
	VALUES (coalesce(institution, '00000000-0000-0000-0000-000000000000'),
	        insert_command.type, insert_command.data, insert_command.status,
	        coalesce(o->>'queue', 'default'),
	        coalesce((o->>'priority')::smallint, 0),
	        coalesce((o->>'max_attempts')::integer, lote.policy_max_attempts('command', insert_command.type)),
	        o->'retry',
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

-- The wait before the next attempt of a failed row (attempt = the one that
-- just failed), by the row's own policy (`retry`), else its type's, else
-- exponential from 1 s capped at 1 h: exponential base·2^(attempt-1),
-- linear base·attempt, fixed base; capped at max_ms; then jitter j takes up
-- to j of it away at random, so retries of many rows spread out.
CREATE FUNCTION lote.backoff(kind text, type text, attempt integer, retry jsonb)
RETURNS interval
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	p jsonb := coalesce(retry, (SELECT pl.retry FROM lote.policies pl
	                            WHERE pl.kind = backoff.kind AND pl.type = backoff.type), '{}');
	base numeric := coalesce((p->>'base_ms')::numeric, 1000);
	cap numeric := coalesce((p->>'max_ms')::numeric, 3600000);
	jitter numeric := coalesce((p->>'jitter')::numeric, 0);
	ms numeric;
BEGIN
	ms := CASE coalesce(p->>'strategy', 'exponential')
	      WHEN 'fixed' THEN base
	      WHEN 'linear' THEN base * attempt
	      ELSE base * power(2::numeric, least(attempt - 1, 40)) END;
	ms := least(ms, cap);
	ms := ms * (1 - jitter * random()::numeric);
	RETURN ms * interval '1 millisecond';
END
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
-- reason, each counts as a failed attempt (outcome: crashed, timeout or
-- lease_expired), recorded in lote.attempts: back to pending after its
-- back-off, or error when its attempts are spent. Without one (NULL), they
-- did nothing wrong: back to pending untouched, the attempt undone.
CREATE FUNCTION lote.give_back(tbl regclass, ids bigint[], reason text,
                               outcome text DEFAULT 'crashed') RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	n integer;
	kind text := CASE WHEN tbl = 'lote.commands'::regclass THEN 'command' ELSE 'event' END;
BEGIN
	IF reason IS NULL THEN
		EXECUTE format('UPDATE %s SET status = ''pending'', attempt = attempt - 1,'
		               ' started_at = NULL, lease_until = NULL, worker_id = NULL'
		               ' WHERE id = ANY ($1) AND status = ''processing''', tbl)
		USING ids;
		GET DIAGNOSTICS n = ROW_COUNT;
		RETURN n;
	END IF;
	EXECUTE format(
		'WITH u AS (UPDATE %1$s t SET'
		'  status = CASE WHEN attempt < max_attempts THEN ''pending'' ELSE ''error'' END,'
		'  run_at = CASE WHEN attempt < max_attempts'
		'    THEN now() + lote.backoff($4, type, attempt, %2$s) ELSE run_at END,'
		'  finished_at = CASE WHEN attempt < max_attempts THEN NULL ELSE now() END,'
		'  duration = CASE WHEN attempt < max_attempts THEN NULL ELSE now() - started_at END,'
		'  error = $2, lease_until = NULL'
		' WHERE id = ANY ($1) AND status = ''processing'''
		' RETURNING t.*)'
		' INSERT INTO lote.attempts (kind, row_id, institution_id, attempt, outcome, retry_at,'
		'  worker_id, host, pid, started_at, finished_at, error)'
		' SELECT $4, u.id, u.institution_id, u.attempt, $3,'
		'  CASE WHEN u.status = ''pending'' THEN u.run_at END,'
		'  u.worker_id, w.host, w.pid, u.started_at, now(), $2'
		' FROM u LEFT JOIN lote.workers w ON w.id = u.worker_id',
		tbl, CASE WHEN kind = 'command' THEN 'retry' ELSE 'NULL::jsonb' END)
	USING ids, reason, outcome, kind;
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
	           FOR UPDATE SKIP LOCKED), reason, 'lease_expired')
	     + lote.give_back('lote.events', ARRAY(
	           SELECT id FROM lote.events WHERE status = 'processing' AND lease_until < now()
	           FOR UPDATE SKIP LOCKED), reason, 'lease_expired')
$$;

-- A worker process of a known host died (crash, kill -9, a handler past its
-- timeout). The row it was running (current_kind/current_id, when known)
-- fails with reason, counting its attempt; the other rows it had claimed
-- but not started go back untouched, since they did nothing wrong. Locked
-- rows are skipped, as in lote.rescue; the worker's row goes once nothing
-- it claimed is left.
CREATE FUNCTION lote.worker_lost(lost_worker bigint, current_kind text, current_id bigint, reason text,
                                 outcome text DEFAULT 'crashed')
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	n integer := 0;
	tbl regclass;
	kind text;
	ids bigint[];
BEGIN
	-- A statement the worker sent just before it died (a claim, say) may
	-- still be running on its server process and commit later: end that
	-- process first (waiting up to 5 s), so what follows sees the final
	-- state of everything the worker touched.
	PERFORM pg_terminate_backend(w.backend_pid, 5000)
	FROM lote.workers w JOIN pg_stat_activity a ON a.pid = w.backend_pid
	WHERE w.id = lost_worker AND a.application_name LIKE '%worker%';
	FOREACH kind IN ARRAY ARRAY['command', 'event'] LOOP
		tbl := CASE kind WHEN 'command' THEN 'lote.commands' ELSE 'lote.events' END;
		EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM %s WHERE worker_id = $1'
		               ' AND status = ''processing'' FOR UPDATE SKIP LOCKED) s', tbl)
		INTO ids USING lost_worker;
		IF ids IS NULL THEN
			CONTINUE;
		END IF;
		IF kind = current_kind AND current_id = ANY (ids) THEN
			n := n + lote.give_back(tbl, ARRAY[current_id], reason, outcome);
		END IF;
		n := n + lote.give_back(tbl, ids, NULL);
	END LOOP;
	DELETE FROM lote.workers w WHERE w.id = lost_worker
	  AND NOT EXISTS (SELECT 1 FROM lote.commands WHERE worker_id = lost_worker AND status = 'processing')
	  AND NOT EXISTS (SELECT 1 FROM lote.events WHERE worker_id = lost_worker AND status = 'processing');
	RETURN n;
END
$$;
