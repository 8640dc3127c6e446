-- 013_batch_progress.sql - a batch knows how many of its members are done
-- without walking them (issue 8).
--
-- lote.batch_check asked "is any member still open?" along the
-- commands_batch_open index. While a batch runs the answer is at the top
-- of the index, but the check after the last member walked every dead
-- entry of the batch (two per member: its pending and its processing
-- version) with a heap visit each: 146-271 ms after 100 000 members, on
-- the way to the follow-up, and the supervisor's sweep walked them once
-- more. Now the statement that finishes members counts them:
-- lote.batch_progress holds, per batch and per database session, how
-- many members became done (success, not replaced by a reprocessed copy)
-- minus how many stopped being done (a success member reprocessed in an
-- open batch). The statistics trigger writes it from the statement's
-- transition tables, so every path counts: completions, one by one or in
-- bulk, and lote.reprocess. One row per session keeps sessions from
-- waiting on each other; a check sums a handful of rows.
--
-- A batch has `size` members and a reprocessed copy stands in for its
-- original, so "no member open" is exactly size <= the sum. Whoever
-- commits the last members sees every count (each session's count
-- commits with its members), and the batch row's lock keeps the release
-- exactly once, as before. (014 then drops commands_batch_open, which
-- nothing on a batch's way reads any more.)

CREATE TABLE lote.batch_progress (
	batch_id bigint  NOT NULL,
	session  integer NOT NULL,     -- pg_backend_pid() of the counting session
	done     integer NOT NULL,
	PRIMARY KEY (batch_id, session)
);

-- The members of open batches already done.
INSERT INTO lote.batch_progress (batch_id, session, done)
SELECT c.batch_id, 0, count(*) FROM lote.commands c
JOIN lote.batches b ON b.id = c.batch_id AND b.status IN ('pending', 'processing', 'error')
WHERE c.status = 'success' AND c.replaced_by IS NULL
GROUP BY c.batch_id;

-- Members done of a batch so far.
CREATE FUNCTION lote.batch_done(batch_id bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
	SELECT coalesce(sum(p.done), 0) FROM lote.batch_progress p WHERE p.batch_id = $1
$$;

CREATE OR REPLACE FUNCTION lote.stats_track() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM new_rows WHERE status IN ('success', 'error', 'cancelled')) THEN
		RETURN NULL;   -- a claim (008)
	END IF;
	IF NOT EXISTS (SELECT 1 FROM old_rows WHERE status IN ('success', 'error', 'cancelled')) THEN
		-- a completion (011): every finished row is new, and no row was
		-- done before
		IF TG_ARGV[0] = 'command' THEN
			-- one pass over the rows for both counts
			WITH g AS MATERIALIZED (
				SELECT n.institution_id, n.type, n.status,
				       CASE WHEN n.status = 'success' AND n.replaced_by IS NULL THEN n.batch_id END AS batch_id,
				       count(*) AS n
				FROM new_rows n
				WHERE n.status IN ('success', 'error', 'cancelled')
				GROUP BY 1, 2, 3, 4),
			s AS (INSERT INTO lote.stats_delta (kind, bucket, institution_id, type, status, n)
			      SELECT 'command', date_trunc('minute', now()), institution_id, type, status, sum(n)
			      FROM g GROUP BY institution_id, type, status)
			INSERT INTO lote.batch_progress AS p (batch_id, session, done)
			SELECT batch_id, pg_backend_pid(), sum(n) FROM g WHERE batch_id IS NOT NULL
			GROUP BY batch_id
			ON CONFLICT (batch_id, session) DO UPDATE SET done = p.done + excluded.done;
		ELSE
			INSERT INTO lote.stats_delta (kind, bucket, institution_id, type, status, n)
			SELECT TG_ARGV[0], date_trunc('minute', now()), n.institution_id, n.type, n.status, count(*)
			FROM new_rows n
			WHERE n.status IN ('success', 'error', 'cancelled')
			GROUP BY n.institution_id, n.type, n.status;
		END IF;
	ELSE
		INSERT INTO lote.stats_delta (kind, bucket, institution_id, type, status, n)
		SELECT TG_ARGV[0], date_trunc('minute', now()), n.institution_id, n.type, n.status, count(*)
		FROM new_rows n JOIN old_rows o ON o.id = n.id
		WHERE n.status IN ('success', 'error', 'cancelled') AND o.status IS DISTINCT FROM n.status
		GROUP BY n.institution_id, n.type, n.status;
		IF TG_ARGV[0] = 'command' THEN
			-- rows done before and after (lote.reprocess sets replaced_by
			-- on a success member): the difference per batch
			INSERT INTO lote.batch_progress AS p (batch_id, session, done)
			SELECT batch_id, pg_backend_pid(), sum(d) FROM (
				SELECT n.batch_id, 1 AS d FROM new_rows n
				WHERE n.status = 'success' AND n.replaced_by IS NULL AND n.batch_id IS NOT NULL
				UNION ALL
				SELECT o.batch_id, -1 FROM old_rows o
				WHERE o.status = 'success' AND o.replaced_by IS NULL AND o.batch_id IS NOT NULL) x
			GROUP BY batch_id HAVING sum(d) <> 0
			ON CONFLICT (batch_id, session) DO UPDATE SET done = p.done + excluded.done;
		END IF;
	END IF;
	-- Now and then a committer folds (never waiting: the fold takes a
	-- try-lock), so the deltas stay small even with no dashboard open.
	IF random() < 0.02 THEN
		PERFORM lote.stats_fold();
	END IF;
	RETURN NULL;
END
$$;

-- As in 002, with the members counted instead of looked for. The counts
-- of a batch are dropped when it completes (nothing reads them then);
-- the sweep drops those of archived batches.
CREATE OR REPLACE FUNCTION lote.batch_check(ids bigint[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	done integer := 0;
	id_ bigint;
	b record;
	failed record;
	has_failed boolean;
BEGIN
	FOREACH id_ IN ARRAY ids LOOP
		-- Cheap look first, without locking: the common answer is "still
		-- open, nothing failed", and then there is nothing to do.
		SELECT * INTO b FROM lote.batches WHERE id = id_;
		IF NOT FOUND OR b.status NOT IN ('pending', 'processing', 'error') THEN
			CONTINUE;
		END IF;
		has_failed := EXISTS (SELECT 1 FROM lote.commands c WHERE c.batch_id = id_
		                      AND c.status IN ('error', 'cancelled') AND c.replaced_by IS NULL);
		IF b.size > lote.batch_done(id_) AND NOT has_failed AND b.status <> 'error' THEN
			CONTINUE;
		END IF;
		-- Something to change: lock the batch and look again.
		SELECT * INTO b FROM lote.batches WHERE id = id_ FOR UPDATE;
		IF b.status NOT IN ('pending', 'processing', 'error') THEN
			CONTINUE;
		END IF;
		IF b.size <= lote.batch_done(b.id) THEN
			UPDATE lote.batches SET status = 'success', error = NULL,
				started_at = coalesce(started_at, now()),
				finished_at = clock_timestamp(),
				duration = clock_timestamp() - coalesce(started_at, created_at)
			WHERE id = b.id;
			DELETE FROM lote.batch_progress WHERE batch_id = b.id;
			IF b.next_command_id IS NOT NULL THEN
				UPDATE lote.commands SET status = 'pending', run_at = greatest(run_at, now())
				WHERE id = b.next_command_id AND status = 'awaiting';
				IF FOUND THEN
					PERFORM pg_notify('lote_wakeup', 'c');
				END IF;
			END IF;
			done := done + 1;
			CONTINUE;
		END IF;
		SELECT c.id, c.error INTO failed FROM lote.commands c
		WHERE c.batch_id = b.id AND c.status IN ('error', 'cancelled') AND c.replaced_by IS NULL
		ORDER BY c.id LIMIT 1;
		IF FOUND AND b.status <> 'error' THEN
			UPDATE lote.batches SET status = 'error',
				error = format('command %s failed: %s', failed.id, coalesce(failed.error, 'cancelled'))
			WHERE id = b.id;
		ELSIF NOT FOUND AND b.status = 'error' THEN
			UPDATE lote.batches SET status = 'processing', error = NULL WHERE id = b.id;
		END IF;
	END LOOP;
	RETURN done;
END
$$;

-- As in 002, by the counts; also drops the counts of batches that no
-- longer exist (archived).
CREATE OR REPLACE FUNCTION lote.batch_sweep(max_batches integer DEFAULT 1000) RETURNS integer
LANGUAGE sql AS $$
	DELETE FROM lote.batch_progress p
	WHERE NOT EXISTS (SELECT 1 FROM lote.batches b WHERE b.id = p.batch_id);
	SELECT lote.batch_check(coalesce(array_agg(id), '{}')) FROM (
		SELECT b.id FROM lote.batches b
		WHERE b.status IN ('pending', 'processing', 'error')
		  AND (b.size <= lote.batch_done(b.id)
		       OR (b.status <> 'error' AND EXISTS (SELECT 1 FROM lote.commands c WHERE c.batch_id = b.id
		                   AND c.status IN ('error', 'cancelled') AND c.replaced_by IS NULL)))
		ORDER BY b.id LIMIT max_batches) s
$$;
