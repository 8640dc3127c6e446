-- 011_stats_completions.sql - the statistics trigger counts a completion
-- without joining its old and new rows (issue 8).
--
-- A row can only be counted twice if it was finished before the statement
-- (error -> cancelled, say); a completion, where no old row is finished,
-- counts every finished new row as it is. Measured on a 1 000-row
-- completion (EXPLAIN ANALYZE, warm): 1.2-1.7 ms of trigger before,
-- 0.46-0.75 ms after, out of 10-12 ms for the whole statement.
CREATE OR REPLACE FUNCTION lote.stats_track() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM new_rows WHERE status IN ('success', 'error', 'cancelled')) THEN
		RETURN NULL;   -- a claim (008)
	END IF;
	IF NOT EXISTS (SELECT 1 FROM old_rows WHERE status IN ('success', 'error', 'cancelled')) THEN
		INSERT INTO lote.stats_delta (kind, bucket, institution_id, type, status, n)
		SELECT TG_ARGV[0], date_trunc('minute', now()), n.institution_id, n.type, n.status, count(*)
		FROM new_rows n
		WHERE n.status IN ('success', 'error', 'cancelled')
		GROUP BY n.institution_id, n.type, n.status;
	ELSE
		INSERT INTO lote.stats_delta (kind, bucket, institution_id, type, status, n)
		SELECT TG_ARGV[0], date_trunc('minute', now()), n.institution_id, n.type, n.status, count(*)
		FROM new_rows n JOIN old_rows o ON o.id = n.id
		WHERE n.status IN ('success', 'error', 'cancelled') AND o.status IS DISTINCT FROM n.status
		GROUP BY n.institution_id, n.type, n.status;
	END IF;
	-- Now and then a committer folds (never waiting: the fold takes a
	-- try-lock), so the deltas stay small even with no dashboard open.
	IF random() < 0.02 THEN
		PERFORM lote.stats_fold();
	END IF;
	RETURN NULL;
END
$$;
