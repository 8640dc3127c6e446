-- 014_batch_members_by_range.sql - no index entry for a running batch
-- member (issue 8).
--
-- Since 013 nothing asks commands_batch_open on the way of a batch: the
-- check counts. The index still cost every member an entry at insert and
-- one more at its claim (the processing version meets its predicate), and
-- every completion left two dead ones. Its other readers now go by the
-- members' id range recorded on the batch (006) with batch_id as the
-- filter: cancelling a batch, and archiving (whether every member of an
-- error or cancelled batch is final — those of a successful batch are, by
-- construction). lote bench batch --n 100000 --workers 2, with and
-- without the index alternated 3x: 83/88/91 % -> 95/93/97 % of the plain
-- drain's rate.

DROP INDEX lote.commands_batch_open;

-- As in 006, the members' id range found without that index.
CREATE OR REPLACE FUNCTION lote.batch(type text, commands jsonb, next jsonb DEFAULT NULL,
                           institution_id uuid DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	inst uuid := coalesce(batch.institution_id, '00000000-0000-0000-0000-000000000000');
	b bigint;
	next_id bigint;
	n integer;
	hi bigint;
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
		-- the members' id range: the last id this session took is the
		-- last member's; the first is the lowest of the n highest ids up
		-- to it that belong to the batch (other sessions' rows may be
		-- interleaved)
		hi := currval(pg_get_serial_sequence('lote.commands', 'id'));
		UPDATE lote.batches SET (first_member_id, last_member_id) =
			(SELECT min(m.id), hi FROM (SELECT c.id FROM lote.commands c
			                            WHERE c.id <= hi AND c.batch_id = b
			                            ORDER BY c.id DESC LIMIT n) m)
		WHERE id = b;
	END IF;
	RETURN b;
END
$$;


-- As in 002, the members by their id range.
CREATE OR REPLACE FUNCTION lote.cancel_batch(batch_id bigint) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	b lote.batches;
	n integer;
BEGIN
	SELECT * INTO b FROM lote.batches WHERE id = cancel_batch.batch_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'lote.cancel_batch: no batch %', cancel_batch.batch_id USING ERRCODE = 'P0002';
	END IF;
	IF b.status IN ('success', 'cancelled') THEN
		RETURN 0;
	END IF;
	UPDATE lote.commands c SET status = 'cancelled', finished_at = now(), error = 'batch cancelled'
	WHERE ((c.id BETWEEN b.first_member_id AND b.last_member_id AND c.batch_id = b.id)
	       OR c.id = b.next_command_id)
	  AND c.status IN ('pending', 'awaiting');
	GET DIAGNOSTICS n = ROW_COUNT;
	UPDATE lote.batches SET status = 'cancelled', finished_at = now(),
		duration = now() - coalesce(started_at, created_at)
	WHERE id = b.id;
	RETURN n;
END
$$;

-- As in 003. A successful batch's members are all final (success, or
-- replaced by a copy after finishing); an error or cancelled batch may
-- still have members running, looked for in its id range.
CREATE OR REPLACE FUNCTION lote.archivable_batches(older_than interval, error_after interval)
RETURNS SETOF lote.batches
LANGUAGE sql STABLE AS $$
	SELECT b.* FROM lote.batches b
	WHERE ((b.status = 'success' AND b.finished_at < now() - older_than)
	       OR ((b.status = 'cancelled' AND b.finished_at < now() - older_than)
	           OR (b.status = 'error' AND b.created_at < now() - error_after))
	          AND NOT EXISTS (SELECT 1 FROM lote.commands c
	                          WHERE c.id BETWEEN b.first_member_id AND b.last_member_id
	                            AND c.batch_id = b.id
	                            AND c.status NOT IN ('success', 'error', 'cancelled')))
$$;
