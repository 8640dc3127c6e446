-- engine.sql - the `engine` schema adapter of the peer harness
-- (../shared/peers/README.md §6) over lote's SQL API, so that
-- peers/bench/engine.mjs measures lote exactly as it measures
-- graphile-worker and pg-boss. Benchmark-only: not a lote migration.
-- Install after `lote migrate` on the same database:
--   LOTE_DATABASE_URL=$DATABASE_URL lote migrate &&
--   psql "$DATABASE_URL" -q -v ON_ERROR_STOP=1 -f bench/engine.sql
CREATE SCHEMA IF NOT EXISTS engine;

-- One command in the caller's transaction: exactly lote.enqueue with the
-- default options (the NOTIFY is lote's statement trigger, sent at COMMIT).
CREATE OR REPLACE FUNCTION engine.enqueue(kind text, payload jsonb)
RETURNS bigint
LANGUAGE sql AS $$
	SELECT lote.enqueue(kind, payload)
$$;

-- Bulk: one INSERT ... SELECT into lote.commands, with the checks and
-- defaults of lote.enqueue (type checked once, every payload checked as
-- lote.check_payload does; queue, priority, attempts, run_at and lineage as
-- lote.enqueue sets them without options). One statement, so lote's
-- statement trigger sends a single NOTIFY. Returns the rows inserted.
CREATE OR REPLACE FUNCTION engine.enqueue_many(kind text, payloads jsonb[])
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
	bad jsonb;
BEGIN
	PERFORM lote.check_type('engine.enqueue_many', kind);
	SELECT p INTO bad FROM unnest(payloads) p
	WHERE p IS NULL OR jsonb_typeof(p) <> 'object'
	   OR octet_length(p::text) > lote.max_payload_bytes()
	LIMIT 1;
	IF FOUND THEN
		PERFORM lote.check_payload('engine.enqueue_many', bad); -- raises its error
	END IF;
	INSERT INTO lote.commands (institution_id, type, data, event_id, parent_id)
	SELECT '00000000-0000-0000-0000-000000000000', kind, p,
	       lote.current_id('event_id'), lote.current_id('command_id')
	FROM unnest(payloads) p;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

-- Commands not finished yet (queued, waiting for a batch, or running).
CREATE OR REPLACE FUNCTION engine.pending_count()
RETURNS bigint
LANGUAGE sql STABLE AS $$
	SELECT count(*) FROM lote.commands
	WHERE status IN ('awaiting', 'pending', 'processing')
$$;
