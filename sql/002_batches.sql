-- 002_batches: batches with an exactly-once follow-up, reprocess, cancel,
-- and lineage.
--
-- Completion never serialises members on the batch row and never counts
-- the members: after a worker commits members of a batch it calls
-- lote.batch_check, which asks "is any member still open?" along the
-- (batch_id, id) index from the highest id down — members are claimed in
-- id order, so an open one is found at once while the batch runs — and
-- flips the batch under its row lock — so whoever commits last sees
-- every member done, and the status test in the UPDATE lets only one
-- caller release the follow-up. The supervisor's sweep covers a worker
-- that died between its commit and its check.

-- The copy made by lote.reprocess stands in for the command it replaces.
ALTER TABLE lote.commands ADD COLUMN replaced_by bigint;

-- Members that failed for good (the batch is in error until repaired).
CREATE INDEX commands_batch_failed ON lote.commands (batch_id)
	WHERE batch_id IS NOT NULL AND status IN ('error', 'cancelled') AND replaced_by IS NULL;
CREATE INDEX batches_open ON lote.batches (id)
	WHERE status IN ('pending', 'processing', 'error');
CREATE INDEX batches_next ON lote.batches (next_command_id)
	WHERE next_command_id IS NOT NULL;
CREATE INDEX commands_replaced_by ON lote.commands (replaced_by)
	WHERE replaced_by IS NOT NULL;

-- Inserts the commands described by a JSON array of objects {"type", "data",
-- option keys of lote.enqueue…}, validated like lote.enqueue, as one
-- statement. Returns how many.
CREATE FUNCTION lote.insert_commands(fn text, items jsonb, institution uuid,
                                     batch bigint, initial_status text)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	n integer;
	bad record;
BEGIN
	IF items IS NULL OR jsonb_typeof(items) <> 'array' THEN
		RAISE EXCEPTION '%: commands must be a JSON array of {"type": …, "data": …} objects, got %',
			fn, coalesce(jsonb_typeof(items), 'NULL') USING ERRCODE = '22023';
	END IF;
	SELECT i, e INTO bad FROM jsonb_array_elements(items) WITH ORDINALITY AS t(e, i)
	WHERE jsonb_typeof(e) <> 'object' LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION '%: command %: must be an object like {"type": …, "data": …}, got %',
			fn, bad.i, bad.e USING ERRCODE = '22023';
	END IF;
	SELECT i, e INTO bad FROM jsonb_array_elements(items) WITH ORDINALITY AS t(e, i)
	WHERE jsonb_typeof(e->'type') IS DISTINCT FROM 'string' LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION '%: command %: "type" must be a string', fn, bad.i
			USING ERRCODE = '22023';
	END IF;
	INSERT INTO lote.commands (institution_id, type, data, status, queue, priority,
	                           max_attempts, retry, run_at, event_id, parent_id, batch_id)
	SELECT institution, e->>'type', coalesce(e->'data', '{}'), initial_status,
	       coalesce(o->>'queue', 'default'),
	       coalesce((o->>'priority')::smallint, 0),
	       coalesce((o->>'max_attempts')::integer, lote.policy_max_attempts('command', e->>'type')),
	       o->'retry',
	       lote.option_run_at(o),
	       lote.current_id('event_id'), lote.current_id('command_id'), batch
	FROM jsonb_array_elements(items) WITH ORDINALITY AS t(e, i),
	     LATERAL (SELECT lote.check_type(format('%s: command %s', fn, i), e->>'type'),
	                     lote.check_payload(format('%s: command %s', fn, i), coalesce(e->'data', '{}')),
	                     lote.check_options(format('%s: command %s', fn, i), e - 'type' - 'data') AS o) AS v
	ORDER BY i;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;

-- Creates a batch with its members and an optional follow-up, in the
-- caller's transaction. The follow-up waits in `awaiting` and is released
-- (made `pending`) in the transaction that completes the batch. An empty
-- batch is complete at once.
CREATE FUNCTION lote.batch(type text, commands jsonb, next jsonb DEFAULT NULL,
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
	RETURN b;
END
$$;

-- Releases the follow-up of batches whose members are all done, marks
-- batches with a failed member as `error` (and back to `processing` once
-- repaired). Exactly once: the UPDATE re-checks the status under the batch
-- row's lock, so of two concurrent callers only one changes it. Returns the
-- number of batches it completed.
CREATE FUNCTION lote.batch_check(ids bigint[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	done integer := 0;
	id_ bigint;
	b record;
	failed record;
	open_left boolean;
	has_failed boolean;
BEGIN
	FOREACH id_ IN ARRAY ids LOOP
		-- Cheap look first, without locking: the common answer is "still
		-- open, nothing failed", and then there is nothing to do.
		-- Not EXISTS: the planner drops ORDER BY inside EXISTS, and the
		-- scan would start at the members long done.
		PERFORM 1 FROM lote.commands c WHERE c.batch_id = id_
		  AND c.status <> 'success' AND c.replaced_by IS NULL
		ORDER BY c.batch_id DESC, c.id DESC LIMIT 1;
		open_left := FOUND;
		has_failed := EXISTS (SELECT 1 FROM lote.commands c WHERE c.batch_id = id_
		                      AND c.status IN ('error', 'cancelled') AND c.replaced_by IS NULL);
		SELECT * INTO b FROM lote.batches WHERE id = id_;
		IF NOT FOUND OR b.status NOT IN ('pending', 'processing', 'error')
		   OR (open_left AND NOT has_failed AND b.status <> 'error') THEN
			CONTINUE;
		END IF;
		-- Something to change: lock the batch and look again.
		SELECT * INTO b FROM lote.batches WHERE id = id_ FOR UPDATE;
		IF b.status NOT IN ('pending', 'processing', 'error') THEN
			CONTINUE;
		END IF;
		PERFORM 1 FROM lote.commands c
		WHERE c.batch_id = b.id AND c.status <> 'success' AND c.replaced_by IS NULL
		ORDER BY c.batch_id DESC, c.id DESC LIMIT 1;
		IF NOT FOUND THEN
			UPDATE lote.batches SET status = 'success', error = NULL,
				started_at = coalesce(started_at, now()),
				finished_at = clock_timestamp(),
				duration = clock_timestamp() - coalesce(started_at, created_at)
			WHERE id = b.id;
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

-- The supervisor's backstop: checks every open batch that has no open
-- member left or a failed one (a worker died between its commit and its
-- check). Bounded per call.
CREATE FUNCTION lote.batch_sweep(max_batches integer DEFAULT 1000) RETURNS integer
LANGUAGE sql AS $$
	SELECT lote.batch_check(coalesce(array_agg(id), '{}')) FROM (
		SELECT b.id FROM lote.batches b
		LEFT JOIN LATERAL (SELECT true AS yes FROM lote.commands c
		                   WHERE c.batch_id = b.id AND c.status <> 'success' AND c.replaced_by IS NULL
		                   ORDER BY c.batch_id DESC, c.id DESC LIMIT 1) open ON true
		WHERE b.status IN ('pending', 'processing', 'error')
		  AND (open.yes IS NULL
		       OR (b.status <> 'error' AND EXISTS (SELECT 1 FROM lote.commands c WHERE c.batch_id = b.id
		                   AND c.status IN ('error', 'cancelled') AND c.replaced_by IS NULL)))
		ORDER BY b.id LIMIT max_batches) s
$$;

-- Runs a finished command again: a new command with the same type, data,
-- institution and options, original_id pointing at it, taking its place in
-- its batch (a failed member's copy can repair the batch). Refused while a
-- copy is still live, and for commands not in a final state. Returns the
-- new id.
CREATE FUNCTION lote.reprocess(command_id bigint) RETURNS bigint
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
		PERFORM lote.batch_check(ARRAY[c.batch_id]);
	END IF;
	RETURN new_id;
END
$$;

-- Runs a finished event (success or error) again: a new event with the
-- same institution, entity, type and data, original_id pointing at it,
-- processed by the handlers like any other. Refused while a copy is still
-- live. Returns the new id.
CREATE FUNCTION lote.reprocess_event(event_id bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	e lote.events;
	new_id bigint;
BEGIN
	SELECT * INTO e FROM lote.events WHERE id = event_id FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'lote.reprocess_event: no event %', event_id USING ERRCODE = 'P0002';
	END IF;
	IF e.status NOT IN ('success', 'error') THEN
		RAISE EXCEPTION 'lote.reprocess_event: event % is %, only finished events (success, error) can be reprocessed',
			event_id, e.status USING ERRCODE = '55000';
	END IF;
	IF e.replaced_by IS NOT NULL AND EXISTS (SELECT 1 FROM lote.events
	        WHERE id = e.replaced_by AND status NOT IN ('success', 'error')) THEN
		RAISE EXCEPTION 'lote.reprocess_event: event % already has a live copy, event %', event_id, e.replaced_by
			USING ERRCODE = '55000';
	END IF;
	INSERT INTO lote.events (institution_id, entity_type, entity_id, type, data, max_attempts, original_id)
	VALUES (e.institution_id, e.entity_type, e.entity_id, e.type, e.data, e.max_attempts, e.id)
	RETURNING id INTO new_id;
	UPDATE lote.events SET replaced_by = new_id WHERE id = e.id;
	RETURN new_id;
END
$$;

-- Cancels a command that has not started: pending, awaiting (a follow-up)
-- or delayed. Returns whether it did; a running or finished command is left
-- as it is.
CREATE FUNCTION lote.cancel(command_id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	b bigint;
BEGIN
	UPDATE lote.commands SET status = 'cancelled', finished_at = now(),
		error = coalesce(error, 'cancelled')
	WHERE id = command_id AND status IN ('pending', 'awaiting')
	RETURNING batch_id INTO b;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	IF b IS NOT NULL THEN
		PERFORM lote.batch_check(ARRAY[b]);
	END IF;
	RETURN true;
END
$$;

-- Cancels a batch: its members that have not started and its follow-up.
-- Members already running finish, but the batch stays cancelled and its
-- follow-up never runs. Returns the number of commands cancelled.
CREATE FUNCTION lote.cancel_batch(batch_id bigint) RETURNS integer
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
	WHERE (c.batch_id = b.id OR c.id = b.next_command_id) AND c.status IN ('pending', 'awaiting');
	GET DIAGNOSTICS n = ROW_COUNT;
	UPDATE lote.batches SET status = 'cancelled', finished_at = now(),
		duration = now() - coalesce(started_at, created_at)
	WHERE id = b.id;
	RETURN n;
END
$$;

-- Everything a command is linked to, as one JSON object: its event, parent,
-- batch, the batch it is the follow-up of, the command it reprocesses and
-- the copy that replaced it, its children, and the batches it created.
CREATE FUNCTION lote.lineage(command_id bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
	SELECT jsonb_build_object(
		'id', c.id,
		'type', c.type,
		'status', c.status,
		'event_id', c.event_id,
		'parent_id', c.parent_id,
		'batch_id', c.batch_id,
		'follow_up_of', (SELECT b.id FROM lote.batches b WHERE b.next_command_id = c.id),
		'original_id', c.original_id,
		'replaced_by', c.replaced_by,
		'children', coalesce((SELECT jsonb_agg(k.id ORDER BY k.id) FROM lote.commands k
		                      WHERE k.parent_id = c.id), '[]'),
		'batches', coalesce((SELECT jsonb_agg(b.id ORDER BY b.id) FROM lote.batches b
		                     WHERE b.parent_id = c.id), '[]'))
	FROM lote.commands c WHERE c.id = command_id
$$;
