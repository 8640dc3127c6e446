-- 019_partition_estimates.sql - an archive partition's row estimate from
-- the counters PostgreSQL keeps of what was written to it.
--
-- lote.archive_partitions took a partition's rows from pg_class.reltuples,
-- and for one never analyzed (every week's partitions are made ahead, and
-- autoanalyze reaches a small one late or never) guessed its size / 200:
-- one 8 kB page holding 4 archived rows read as 40, in lote.stats(),
-- `lote stats` and `lote retention --dry-run`. The statistics system counts
-- each table's live rows as they are inserted and deleted, without an
-- ANALYZE: that count comes first now. It is lost when the server
-- recovers from a crash (the statistics start again from zero), so a
-- partition with rows but no count falls back to reltuples scaled to its
-- size now (as the planner does with stale figures), and only a partition
-- never analyzed to its size guess.
CREATE OR REPLACE VIEW lote.archive_partitions AS
SELECT a.archive,
       w.day,
       w.day + 7 AS until,
       substring(c.relname from '_w\d{8}_([a-z]+)$') AS status,
       c.relname::text AS partition,
       CASE WHEN pg_stat_get_live_tuples(c.oid) > 0 THEN pg_stat_get_live_tuples(c.oid)
            WHEN pg_relation_size(c.oid) = 0 THEN 0
            WHEN c.reltuples >= 0 AND c.relpages > 0
            THEN round(c.reltuples::float8 / c.relpages
                       * (pg_relation_size(c.oid) / current_setting('block_size')::bigint))
            WHEN c.reltuples >= 0 THEN c.reltuples
            ELSE pg_relation_size(c.oid) / 200 END::bigint AS rows_estimate,
       pg_total_relation_size(c.oid) AS bytes
FROM unnest(lote.archive_names()) AS a(archive)
JOIN pg_namespace n ON n.nspname = 'lote'
JOIN pg_class c ON c.relnamespace = n.oid
 AND c.relname ~ ('^' || a.archive || '_archive_w\d{8}(_[a-z]+)?$')
 AND c.relkind IN ('r', 'p')
CROSS JOIN LATERAL (SELECT to_date(substring(c.relname from '_w(\d{8})'), 'YYYYMMDD') AS day) w;
