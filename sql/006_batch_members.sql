-- lote schema, part 6: batch members without an index entry per
-- completion.
--
-- Every UPDATE of a command writes a new row version, and PostgreSQL adds
-- an entry for it to each index whose predicate the new version meets (a
-- status change is never a HOT update). The (batch_id, id) index of every
-- member made each member's claim and completion cost one index insert
-- more than a plain command's. Now the index holds only members that are
-- not done (`status <> 'success'`): what lote.batch_check, the sweep,
-- cancel and archiving ask ("is any member open or failed?"). A batch
-- member's completion adds no entry. Listing all members of a hot batch
-- goes by the members' id range, recorded on the batch
-- (first_member_id..last_member_id: members are inserted by one statement,
-- and a reprocessed member's copy widens the range), through the primary
-- key, with batch_id = the batch as the filter. Archived members keep
-- their own (batch_id, id) index (commands_archive_batch).

ALTER TABLE lote.batches ADD COLUMN first_member_id bigint,
                         ADD COLUMN last_member_id bigint;
UPDATE lote.batches b SET first_member_id = m.lo, last_member_id = m.hi
FROM (SELECT batch_id, min(id) AS lo, max(id) AS hi FROM lote.commands
      WHERE batch_id IS NOT NULL GROUP BY batch_id) m
WHERE m.batch_id = b.id;

DROP INDEX lote.commands_batch;
CREATE INDEX commands_batch_open ON lote.commands (batch_id, id)
	WHERE batch_id IS NOT NULL AND status <> 'success';

-- The id range of a batch's members: from the hot batch row, else (an
-- archived batch) from the archive's index. NULLs for an empty batch or
-- no such batch. Used as `c.batch_id = b AND c.id BETWEEN lo AND hi`.
CREATE FUNCTION lote.batch_first_member(batch_id bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
	SELECT coalesce((SELECT b.first_member_id FROM lote.batches b WHERE b.id = $1),
	                (SELECT min(c.id) FROM lote.commands_archive c WHERE c.batch_id = $1))
$$;
CREATE FUNCTION lote.batch_last_member(batch_id bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
	SELECT coalesce((SELECT b.last_member_id FROM lote.batches b WHERE b.id = $1),
	                (SELECT max(c.id) FROM lote.commands_archive c WHERE c.batch_id = $1))
$$;

CREATE OR REPLACE FUNCTION lote.batch(type text, commands jsonb, next jsonb DEFAULT NULL,
                           institution_id uuid DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	inst uuid := coalesce(batch.institution_id, '00000000-0000-0000-0000-000000000000');
	b bigint;
	next_id bigint;
	n integer;
	empty boolean;
BEGIN
	PERFORM lote.check_type('lote.batch', type);
	IF commands IS NULL OR jsonb_typeof(commands) <> 'array' THEN
		RAISE EXCEPTION 'lote.batch: commands must be a JSON array of {"type": …, "data": …} objects, got %',
			coalesce(jsonb_typeof(commands), 'NULL') USING ERRCODE = '22023';
	END IF;
	IF next IS NOT NULL AND jsonb_typeof(next) <> 'object' THEN
		RAISE EXCEPTION 'lote.batch: next must be an object like {"type": …, "data": …} or NULL, got %',
			jsonb_typeof(next) USING ERRCODE = '22023';
	END IF;
	empty := jsonb_array_length(commands) = 0;
	INSERT INTO lote.batches (institution_id, type, status, size, event_id, parent_id,
	                          started_at, finished_at, duration)
	VALUES (inst, batch.type, CASE WHEN empty THEN 'success' ELSE 'pending' END,
	        jsonb_array_length(commands), lote.current_id('event_id'), lote.current_id('command_id'),
	        CASE WHEN empty THEN now() END, CASE WHEN empty THEN now() END,
	        CASE WHEN empty THEN interval '0' END)
	RETURNING id INTO b;
	IF next IS NOT NULL THEN
		IF jsonb_typeof(next->'type') IS DISTINCT FROM 'string' THEN
			RAISE EXCEPTION 'lote.batch: next: "type" must be a string' USING ERRCODE = '22023';
		END IF;
		next_id := lote.insert_command('lote.batch: next', next->>'type',
		                               coalesce(next->'data', '{}'), inst,
		                               next - 'type' - 'data',
		                               CASE WHEN empty THEN 'pending' ELSE 'awaiting' END, NULL);
		UPDATE lote.batches SET next_command_id = next_id WHERE id = b;
	END IF;
	n := lote.insert_commands('lote.batch', commands, inst, b, 'pending');
	IF n > 0 THEN
		-- the members' id range (the pending members are all in the
		-- commands_batch_open index)
		UPDATE lote.batches SET (first_member_id, last_member_id) =
			(SELECT min(c.id), max(c.id) FROM lote.commands c
			 WHERE c.batch_id = b AND c.status <> 'success')
		WHERE id = b;
	END IF;
	RETURN b;
END
$$;

CREATE OR REPLACE FUNCTION lote.reprocess_hot(command_id bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	c lote.commands;
	live bigint;
	batch_status text;
	new_id bigint;
BEGIN
	SELECT * INTO c FROM lote.commands WHERE id = command_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'lote.reprocess: no command %', command_id USING ERRCODE = 'P0002';
	END IF;
	IF c.status NOT IN ('success', 'error', 'cancelled') THEN
		RAISE EXCEPTION 'lote.reprocess: command % is %, only finished commands (success, error, cancelled) can be reprocessed',
			command_id, c.status USING ERRCODE = '55000';
	END IF;
	IF c.replaced_by IS NOT NULL THEN
		SELECT id INTO live FROM lote.commands
		WHERE id = c.replaced_by AND status NOT IN ('success', 'error', 'cancelled');
		IF FOUND THEN
			RAISE EXCEPTION 'lote.reprocess: command % already has a live copy, command %', command_id, live
				USING ERRCODE = '55000';
		END IF;
	END IF;
	IF c.batch_id IS NOT NULL THEN
		SELECT status INTO batch_status FROM lote.batches WHERE id = c.batch_id FOR UPDATE;
		IF batch_status IN ('success', 'cancelled') THEN
			-- The batch is final: the copy runs on its own.
			c.batch_id := NULL;
		END IF;
	END IF;
	INSERT INTO lote.commands (institution_id, type, data, queue, priority, max_attempts,
	                           event_id, parent_id, original_id, batch_id)
	VALUES (c.institution_id, c.type, c.data, c.queue, c.priority, c.max_attempts,
	        c.event_id, c.parent_id, c.id, c.batch_id)
	RETURNING id INTO new_id;
	UPDATE lote.commands SET replaced_by = new_id WHERE id = c.id;
	IF c.batch_id IS NOT NULL THEN
		-- the copy joins the batch: its members' id range takes it in
		UPDATE lote.batches SET last_member_id = greatest(last_member_id, new_id),
		                        first_member_id = least(first_member_id, new_id)
		WHERE id = c.batch_id;
		PERFORM lote.batch_check(ARRAY[c.batch_id]);
	END IF;
	RETURN new_id;
END
$$;

CREATE OR REPLACE FUNCTION lote.archive_batches_chunk(older_than interval, error_after interval,
                                           max_batches integer,
                                           OUT batches integer, OUT commands integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
	FOR try_no IN 1..2 LOOP
		BEGIN
			WITH chosen AS (
				SELECT b.id, b.status, b.next_command_id, b.first_member_id, b.last_member_id
				FROM lote.batches b
				WHERE b.id IN (SELECT id FROM lote.archivable_batches(older_than, error_after))
				ORDER BY b.id LIMIT max_batches
				FOR UPDATE SKIP LOCKED),
			follow_up AS (
				UPDATE lote.commands c SET status = 'cancelled', finished_at = now(),
					error = format('batch %s was archived in error: its follow-up is never released', ch.id)
				FROM chosen ch
				WHERE ch.status = 'error' AND c.id = ch.next_command_id AND c.status = 'awaiting'
				RETURNING c.id),
			moved_batches AS (
				DELETE FROM lote.batches b USING chosen ch WHERE b.id = ch.id
				RETURNING b.*),
			archived_batches AS (
				INSERT INTO lote.batches_archive (id, institution_id, type, status, size, event_id,
					parent_id, next_command_id, created_at, started_at, finished_at, duration, error)
				SELECT id, institution_id, type, status, size, event_id,
					parent_id, next_command_id, created_at, started_at, coalesce(finished_at, now()),
					coalesce(duration, now() - coalesce(started_at, created_at)), error
				FROM moved_batches
				RETURNING 1),
			moved_commands AS (
				DELETE FROM lote.commands c USING chosen ch WHERE c.batch_id = ch.id
				  AND c.id BETWEEN ch.first_member_id AND ch.last_member_id
				RETURNING c.*),
			archived_commands AS (
				INSERT INTO lote.commands_archive (id, institution_id, type, data, status, queue,
					priority, attempt, max_attempts, run_at, retry, lease_until, worker_id, event_id,
					parent_id, original_id, batch_id, created_at, started_at, finished_at,
					duration, error, replaced_by)
				SELECT id, institution_id, type, data, status, queue,
					priority, attempt, max_attempts, run_at, retry, lease_until, worker_id, event_id,
					parent_id, original_id, batch_id, created_at, started_at, coalesce(finished_at, now()),
					duration, error, replaced_by
				FROM moved_commands
				RETURNING 1),
			moved_command_attempts AS (
				DELETE FROM lote.attempts a USING moved_commands m
				WHERE a.kind = 'command' AND a.row_id = m.id
				RETURNING a.*, m.status AS row_status, coalesce(m.finished_at, now()) AS row_finished_at),
			archived_command_attempts AS (
				INSERT INTO lote.attempts_archive (id, kind, row_id, institution_id, attempt, outcome,
					retry_at, worker_id, host, pid, started_at, finished_at, error, row_status,
					row_finished_at)
				SELECT id, kind, row_id, institution_id, attempt, outcome,
					retry_at, worker_id, host, pid, started_at, finished_at, error, row_status,
					row_finished_at
				FROM moved_command_attempts
				RETURNING 1)
			SELECT (SELECT count(*) FROM archived_batches), (SELECT count(*) FROM archived_commands),
			       (SELECT count(*) FROM follow_up)
			INTO batches, commands;
			RETURN;
		EXCEPTION WHEN check_violation THEN
			IF try_no = 2 THEN
				RAISE;
			END IF;
			PERFORM lote.archive_ensure_days(ARRAY(
				SELECT coalesce(b.finished_at, now())
				FROM lote.archivable_batches(older_than, error_after) b
				UNION
				SELECT coalesce(c.finished_at, now())
				FROM lote.archivable_batches(older_than, error_after) ab
				JOIN lote.commands c ON c.batch_id = ab.id
				 AND c.id BETWEEN ab.first_member_id AND ab.last_member_id));
		END;
	END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION lote.archive_pending(older_than interval, error_after interval,
                                     OUT events bigint, OUT commands bigint, OUT batches bigint,
                                     OUT batch_members bigint)
LANGUAGE sql STABLE AS $$
	SELECT
		(SELECT count(*) FROM lote.events WHERE status IN ('success', 'error')
		   AND finished_at < now() - older_than),
		(SELECT count(*) FROM lote.commands k WHERE k.status IN ('success', 'error', 'cancelled')
		   AND k.finished_at < now() - older_than
		   AND (k.batch_id IS NULL OR NOT EXISTS (SELECT 1 FROM lote.batches b WHERE b.id = k.batch_id))),
		(SELECT count(*) FROM lote.archivable_batches(older_than, error_after)),
		(SELECT count(*) FROM lote.archivable_batches(older_than, error_after) ab
		   JOIN lote.commands c ON c.batch_id = ab.id
		    AND c.id BETWEEN ab.first_member_id AND ab.last_member_id)
$$;
