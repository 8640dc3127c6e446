-- 004_api: what the dashboard, the JSON API and the CLI need: API tokens,
-- the audit log of operator actions, and kept counters of finished work so
-- that summaries never count(*) over big tables.

-- API tokens. Only a SHA-256 of the token is kept; the token itself is
-- shown once, by `lote tokens add`.
CREATE TABLE lote.api_tokens (
	id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name           text NOT NULL DEFAULT '',
	role           text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
	institution_id uuid,                 -- NULL: every institution
	token_hash     bytea NOT NULL UNIQUE,
	created_at     timestamptz NOT NULL DEFAULT now(),
	last_used_at   timestamptz,
	revoked_at     timestamptz
);

-- Every operator action (API or CLI): who, what, on which rows, outcome.
CREATE TABLE lote.audit_log (
	id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	at             timestamptz NOT NULL DEFAULT now(),
	actor          text NOT NULL,        -- "token 3 (ops)" or "cli root@host"
	token_id       bigint,
	institution_id uuid,                 -- the actor's scope (NULL: all)
	action         text NOT NULL,        -- e.g. command.reprocess
	target         text,                 -- e.g. command 42, or the bulk filter
	detail         jsonb NOT NULL DEFAULT '{}',
	remote_addr    text
);
CREATE INDEX audit_log_at ON lote.audit_log (at DESC);

-- Finished work per minute, type, institution and final status. Workers
-- only ever insert deltas (no row is updated by two committers, so there
-- is no contention on hot counters); readers fold the deltas into
-- lote.stats with lote.stats_fold(), which any process may call.
CREATE TABLE lote.stats (
	kind           text NOT NULL,        -- command | event
	bucket         timestamptz NOT NULL, -- the minute the rows finished
	institution_id uuid NOT NULL,
	type           text NOT NULL,
	status         text NOT NULL,        -- success | error | cancelled
	n              bigint NOT NULL,
	PRIMARY KEY (bucket, kind, institution_id, type, status)
);
-- All-time totals, so "how many ever" reads a few rows, not the minutes.
CREATE TABLE lote.stats_total (
	kind           text NOT NULL,
	institution_id uuid NOT NULL,
	type           text NOT NULL,
	status         text NOT NULL,
	n              bigint NOT NULL,
	PRIMARY KEY (kind, institution_id, type, status)
);
CREATE TABLE lote.stats_delta (
	kind           text NOT NULL,
	bucket         timestamptz NOT NULL,
	institution_id uuid NOT NULL,
	type           text NOT NULL,
	status         text NOT NULL,
	n              bigint NOT NULL
);

-- One INSERT per statement, grouped: a bulk completion of 100 rows of one
-- type adds one or two delta rows.
CREATE FUNCTION lote.stats_track() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO lote.stats_delta (kind, bucket, institution_id, type, status, n)
	SELECT TG_ARGV[0], date_trunc('minute', now()), n.institution_id, n.type, n.status, count(*)
	FROM new_rows n JOIN old_rows o ON o.id = n.id
	WHERE n.status IN ('success', 'error', 'cancelled') AND o.status IS DISTINCT FROM n.status
	GROUP BY n.institution_id, n.type, n.status;
	-- Now and then a committer folds (never waiting: the fold takes a
	-- try-lock), so the deltas stay small even with no dashboard open.
	IF random() < 0.02 THEN
		PERFORM lote.stats_fold();
	END IF;
	RETURN NULL;
END
$$;

CREATE TRIGGER commands_stats AFTER UPDATE ON lote.commands
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION lote.stats_track('command');
CREATE TRIGGER events_stats AFTER UPDATE ON lote.events
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION lote.stats_track('event');

-- Folds the deltas into lote.stats. Only one caller folds at a time (the
-- others return 0 at once). Returns how many delta rows it folded.
CREATE FUNCTION lote.stats_fold() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	folded integer;
BEGIN
	IF NOT pg_try_advisory_xact_lock(hashtext('lote.stats_fold')) THEN
		RETURN 0;
	END IF;
	WITH d AS (DELETE FROM lote.stats_delta RETURNING *),
	g AS (SELECT kind, bucket, institution_id, type, status, sum(n) AS n FROM d
	      GROUP BY kind, bucket, institution_id, type, status),
	m AS (INSERT INTO lote.stats AS s (kind, bucket, institution_id, type, status, n)
	      SELECT kind, bucket, institution_id, type, status, n FROM g
	      ON CONFLICT (bucket, kind, institution_id, type, status)
	      DO UPDATE SET n = s.n + excluded.n
	      RETURNING 1)
	INSERT INTO lote.stats_total AS s (kind, institution_id, type, status, n)
	SELECT kind, institution_id, type, status, sum(n) FROM g
	GROUP BY kind, institution_id, type, status
	ON CONFLICT (kind, institution_id, type, status)
	DO UPDATE SET n = s.n + excluded.n;
	GET DIAGNOSTICS folded = ROW_COUNT;
	-- Per-minute history is for charts: keep 30 days of it.
	IF random() < 0.01 THEN
		DELETE FROM lote.stats WHERE bucket < now() - interval '30 days';
	END IF;
	RETURN folded;
END
$$;

-- Finished work, folded and not yet folded, as one relation.
CREATE VIEW lote.stats_all AS
SELECT kind, bucket, institution_id, type, status, n FROM lote.stats
UNION ALL
SELECT kind, bucket, institution_id, type, status, n FROM lote.stats_delta;
CREATE VIEW lote.stats_total_all AS
SELECT kind, institution_id, type, status, n FROM lote.stats_total
UNION ALL
SELECT kind, institution_id, type, status, n FROM lote.stats_delta;

-- Rows waiting for their batch: few, but counted on every dashboard tick.
CREATE INDEX commands_awaiting ON lote.commands (id) WHERE status = 'awaiting';

-- What was already finished when this migration ran is counted once, in
-- the bucket of its finish time.
INSERT INTO lote.stats (kind, bucket, institution_id, type, status, n)
SELECT 'command', date_trunc('minute', coalesce(finished_at, created_at)), institution_id, type, status, count(*)
FROM lote.commands WHERE status IN ('success', 'error', 'cancelled')
GROUP BY 2, 3, 4, 5;
INSERT INTO lote.stats (kind, bucket, institution_id, type, status, n)
SELECT 'event', date_trunc('minute', coalesce(finished_at, created_at)), institution_id, type, status, count(*)
FROM lote.events WHERE status IN ('success', 'error')
GROUP BY 2, 3, 4, 5;
INSERT INTO lote.stats_total (kind, institution_id, type, status, n)
SELECT kind, institution_id, type, status, sum(n) FROM lote.stats
GROUP BY kind, institution_id, type, status;
