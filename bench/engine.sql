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

-- Bulk: lote's own bulk call, lote.enqueue_many: every element checked
-- like lote.enqueue, all inserted by one statement, so lote's statement
-- trigger sends a single NOTIFY. Returns the rows inserted.
CREATE OR REPLACE FUNCTION engine.enqueue_many(kind text, payloads jsonb[])
RETURNS bigint
LANGUAGE sql AS $$
	SELECT cardinality(lote.enqueue_many(kind, payloads))::bigint
$$;

-- Commands not finished yet (queued, waiting for a batch, or running).
CREATE OR REPLACE FUNCTION engine.pending_count()
RETURNS bigint
LANGUAGE sql STABLE AS $$
	SELECT count(*) FROM lote.commands
	WHERE status IN ('awaiting', 'pending', 'processing')
$$;
