-- 003_archive: archive tables, the archive routine, retention, the *_all
-- views, lineage across hot and archive, and the scheduler's table.
--
-- Layout (docs/archive.md explains the choices):
--
--   lote.commands_archive                       PARTITION BY RANGE (finished_at)
--     lote.commands_archive_w20260112           one per UTC week (from Monday), PARTITION BY LIST (status)
--       lote.commands_archive_w20260112_success
--       lote.commands_archive_w20260112_error
--       lote.commands_archive_w20260112_cancelled
--
-- and the same for events (success, error), batches, and the attempts
-- history (partitioned by its row's finished_at and status, so it goes
-- with its row). Time first, so a time filter prunes to a few weeks;
-- status second, so retention can differ by status and still only ever
-- drops whole tables. Weeks, not days: every query plans over every leaf
-- it cannot prune, and a dashboard list (newest first, any filter) can
-- prune few; ~20 leaves plan in well under a millisecond, ~100 did not.

-- ---------------------------------------------------------------------
-- Settings (one row; change with UPDATE lote.archive_settings SET …).

CREATE TABLE lote.archive_settings (
	one                 boolean PRIMARY KEY DEFAULT true CHECK (one),
	archive_after       interval NOT NULL DEFAULT '5 minutes'
	                    CHECK (archive_after >= interval '0'),
	error_batch_after   interval NOT NULL DEFAULT '7 days'
	                    CHECK (error_batch_after >= interval '0'),
	chunk_rows          integer NOT NULL DEFAULT 5000 CHECK (chunk_rows BETWEEN 1 AND 100000),
	partitions_ahead    integer NOT NULL DEFAULT 7 CHECK (partitions_ahead BETWEEN 1 AND 366),
	retention_success   interval NOT NULL DEFAULT '30 days' CHECK (retention_success >= interval '1 day'),
	retention_error     interval NOT NULL DEFAULT '90 days' CHECK (retention_error >= interval '1 day'),
	retention_cancelled interval NOT NULL DEFAULT '30 days' CHECK (retention_cancelled >= interval '1 day')
);
INSERT INTO lote.archive_settings DEFAULT VALUES;

-- ---------------------------------------------------------------------
-- Archive tables: immutable rows, the hot tables' columns (same order),
-- finished_at never NULL (it is the partition key).

CREATE TABLE lote.events_archive (
	id             bigint NOT NULL,
	institution_id uuid NOT NULL,
	entity_type    text NOT NULL,
	entity_id      text NOT NULL,
	type           text NOT NULL,
	data           jsonb NOT NULL,
	status         text NOT NULL,
	attempt        integer NOT NULL,
	max_attempts   integer NOT NULL,
	run_at         timestamptz NOT NULL,
	lease_until    timestamptz,
	worker_id      bigint,
	original_id    bigint,
	replaced_by    bigint,
	created_at     timestamptz NOT NULL,
	started_at     timestamptz,
	finished_at    timestamptz NOT NULL,
	duration       interval,
	error          text
) PARTITION BY RANGE (finished_at);

CREATE TABLE lote.batches_archive (
	id              bigint NOT NULL,
	institution_id  uuid NOT NULL,
	type            text NOT NULL,
	status          text NOT NULL,
	size            integer NOT NULL,
	event_id        bigint,
	parent_id       bigint,
	next_command_id bigint,
	created_at      timestamptz NOT NULL,
	started_at      timestamptz,
	finished_at     timestamptz NOT NULL,
	duration        interval,
	error           text
) PARTITION BY RANGE (finished_at);

CREATE TABLE lote.commands_archive (
	id             bigint NOT NULL,
	institution_id uuid NOT NULL,
	type           text NOT NULL,
	data           jsonb NOT NULL,
	status         text NOT NULL,
	queue          text NOT NULL,
	priority       smallint NOT NULL,
	attempt        integer NOT NULL,
	max_attempts   integer NOT NULL,
	run_at         timestamptz NOT NULL,
	retry          jsonb,
	lease_until    timestamptz,
	worker_id      bigint,
	event_id       bigint,
	parent_id      bigint,
	original_id    bigint,
	batch_id       bigint,
	created_at     timestamptz NOT NULL,
	started_at     timestamptz,
	finished_at    timestamptz NOT NULL,
	duration       interval,
	error          text,
	replaced_by    bigint
) PARTITION BY RANGE (finished_at);

-- The attempts history (lote.attempts) of archived rows: archived with
-- its row in the same statement, into the partition of its row's week
-- and status, so retention drops it with its row.
CREATE TABLE lote.attempts_archive (
	id              bigint NOT NULL,
	kind            text NOT NULL,
	row_id          bigint NOT NULL,
	institution_id  uuid NOT NULL,
	attempt         integer NOT NULL,
	outcome         text NOT NULL,
	retry_at        timestamptz,
	worker_id       bigint,
	host            text,
	pid             integer,
	started_at      timestamptz,
	finished_at     timestamptz,
	error           text,
	row_status      text NOT NULL,         -- its row's final status
	row_finished_at timestamptz NOT NULL   -- its row's finished_at
) PARTITION BY RANGE (row_finished_at);

-- Indexes declared on the parents are created on every partition. The
-- dashboard lists newest first (ORDER BY id DESC) with keyset pagination,
-- so each filter, lineage ids included, has an (x, id) index (with (x)
-- alone, "WHERE x = $1 ORDER BY id LIMIT n" walks the id index of every
-- partition when x matches nothing). finished_at (the partition key)
-- prunes to weeks, then BRIN (rows arrive in time order). created_at,
-- the dashboard's time filter, which cannot prune, has a B-tree: with
-- BRIN alone the planner walks each partition's id index backward
-- through every row outside the range (100+ ms at 200k rows).
CREATE INDEX events_archive_id ON lote.events_archive (id);
CREATE INDEX events_archive_type ON lote.events_archive (type, id);
CREATE INDEX events_archive_institution ON lote.events_archive (institution_id, id);
CREATE INDEX events_archive_entity ON lote.events_archive (entity_type, entity_id, id);
CREATE INDEX events_archive_finished ON lote.events_archive USING brin (finished_at);
CREATE INDEX events_archive_created ON lote.events_archive (created_at, id);

CREATE INDEX batches_archive_id ON lote.batches_archive (id);
CREATE INDEX batches_archive_type ON lote.batches_archive (type, id);
CREATE INDEX batches_archive_institution ON lote.batches_archive (institution_id, id);
CREATE INDEX batches_archive_event ON lote.batches_archive (event_id, id) WHERE event_id IS NOT NULL;
CREATE INDEX batches_archive_parent ON lote.batches_archive (parent_id, id) WHERE parent_id IS NOT NULL;
CREATE INDEX batches_archive_next ON lote.batches_archive (next_command_id, id) WHERE next_command_id IS NOT NULL;
CREATE INDEX batches_archive_finished ON lote.batches_archive USING brin (finished_at);
CREATE INDEX batches_archive_created ON lote.batches_archive (created_at, id);

CREATE INDEX commands_archive_id ON lote.commands_archive (id);
CREATE INDEX commands_archive_type ON lote.commands_archive (type, id);
CREATE INDEX commands_archive_institution ON lote.commands_archive (institution_id, id);
CREATE INDEX commands_archive_event ON lote.commands_archive (event_id, id) WHERE event_id IS NOT NULL;
CREATE INDEX commands_archive_parent ON lote.commands_archive (parent_id, id) WHERE parent_id IS NOT NULL;
CREATE INDEX commands_archive_original ON lote.commands_archive (original_id, id) WHERE original_id IS NOT NULL;
CREATE INDEX commands_archive_batch ON lote.commands_archive (batch_id, id) WHERE batch_id IS NOT NULL;
CREATE INDEX commands_archive_finished ON lote.commands_archive USING brin (finished_at);
CREATE INDEX commands_archive_created ON lote.commands_archive (created_at, id);

CREATE INDEX attempts_archive_row ON lote.attempts_archive (kind, row_id, attempt);

-- The archive routine finds finished hot rows oldest first without
-- scanning live ones (the rows it moved leave dead tuples at the start of
-- the table until vacuum, which a sequential scan would re-read per chunk).
CREATE INDEX commands_finished ON lote.commands (finished_at)
	WHERE status IN ('success', 'error', 'cancelled');
CREATE INDEX events_finished ON lote.events (finished_at)
	WHERE status IN ('success', 'error');
CREATE INDEX batches_final ON lote.batches (finished_at)
	WHERE status IN ('success', 'cancelled');

-- The statuses each archive holds (one list partition each).
CREATE FUNCTION lote.archive_statuses(archive text) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE archive WHEN 'events' THEN ARRAY['success', 'error']
	                    ELSE ARRAY['success', 'error', 'cancelled'] END
$$;

-- The archives, and the column each is listed (sub-partitioned) by.
CREATE FUNCTION lote.archive_names() RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
	SELECT ARRAY['events', 'commands', 'batches', 'attempts']
$$;

-- Creates the partitions of the UTC weeks (Monday to Sunday) that hold
-- from_day..to_day and are missing (a week's partition, and any of its
-- status partitions). Safe from many sessions at once (serialised by an
-- advisory lock). Returns how many tables it created.
CREATE FUNCTION lote.archive_ensure_partitions(from_day date, to_day date)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	w date;
	a text;
	s text;
	week_table text;
	leaf text;
	created integer := 0;
BEGIN
	IF from_day IS NULL OR to_day IS NULL OR to_day < from_day THEN
		RETURN 0;
	END IF;
	IF to_day - from_day > 3660 THEN
		RAISE EXCEPTION 'lote.archive_ensure_partitions: % days is too many at once', to_day - from_day
			USING ERRCODE = '22023';
	END IF;
	PERFORM pg_advisory_xact_lock(hashtext('lote.archive_ensure_partitions'));
	w := date_trunc('week', from_day)::date;
	WHILE w <= to_day LOOP
		FOREACH a IN ARRAY lote.archive_names() LOOP
			week_table := format('%s_archive_w%s', a, to_char(w, 'YYYYMMDD'));
			IF to_regclass('lote.' || week_table) IS NULL THEN
				EXECUTE format('CREATE TABLE lote.%I PARTITION OF lote.%I'
				               ' FOR VALUES FROM (%L) TO (%L) PARTITION BY LIST (%I)',
				               week_table, a || '_archive',
				               w::timestamp AT TIME ZONE 'UTC',
				               (w + 7)::timestamp AT TIME ZONE 'UTC',
				               CASE a WHEN 'attempts' THEN 'row_status' ELSE 'status' END);
				created := created + 1;
			END IF;
			FOREACH s IN ARRAY lote.archive_statuses(a) LOOP
				leaf := week_table || '_' || s;
				IF to_regclass('lote.' || leaf) IS NULL THEN
					-- Rows are written once and never updated: pack pages full.
					EXECUTE format('CREATE TABLE lote.%I PARTITION OF lote.%I FOR VALUES IN (%L)'
					               ' WITH (fillfactor = 100, autovacuum_vacuum_insert_scale_factor = 0.05)',
					               leaf, week_table, s);
					created := created + 1;
				END IF;
			END LOOP;
		END LOOP;
		w := w + 7;
	END LOOP;
	RETURN created;
END
$$;

-- The partitions of the weeks of these times (the rows a chunk is about to
-- move), and no others: a few very old rows never create every week since.
CREATE FUNCTION lote.archive_ensure_days(times timestamptz[]) RETURNS integer
LANGUAGE sql AS $$
	SELECT coalesce(sum(lote.archive_ensure_partitions(d, d)), 0)::integer
	FROM (SELECT DISTINCT (t AT TIME ZONE 'UTC')::date AS d FROM unnest(times) AS t) days
$$;

-- The weeks of yesterday (UTC), today and the configured days ahead.
CREATE FUNCTION lote.archive_ensure_ahead() RETURNS integer
LANGUAGE sql AS $$
	SELECT lote.archive_ensure_partitions((now() AT TIME ZONE 'UTC')::date - 1,
	                                      (now() AT TIME ZONE 'UTC')::date + partitions_ahead)
	FROM lote.archive_settings
$$;

-- ---------------------------------------------------------------------
-- The archive routine: one chunk per call, each call its own transaction
-- (the daemon and `lote archive` loop over it). Every chunk is one
-- statement that deletes from the hot table and inserts what it deleted
-- into the archive, so a crash at any point loses and duplicates nothing.

-- Moves up to max_rows finished events older than older_than.
CREATE FUNCTION lote.archive_events_chunk(older_than interval, max_rows integer)
RETURNS integer
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
	n integer;
BEGIN
	FOR try_no IN 1..2 LOOP
		BEGIN
			WITH moved AS (
				DELETE FROM lote.events e
				WHERE e.id IN (SELECT id FROM lote.events
				               WHERE status IN ('success', 'error')
				                 AND finished_at < now() - older_than
				               ORDER BY finished_at LIMIT max_rows
				               FOR UPDATE SKIP LOCKED)
				RETURNING e.*),
			moved_event_attempts AS (
				DELETE FROM lote.attempts a USING moved m
				WHERE a.kind = 'event' AND a.row_id = m.id
				RETURNING a.*, m.status AS row_status, coalesce(m.finished_at, now()) AS row_finished_at),
			archived_event_attempts AS (
				INSERT INTO lote.attempts_archive (id, kind, row_id, institution_id, attempt, outcome,
					retry_at, worker_id, host, pid, started_at, finished_at, error, row_status,
					row_finished_at)
				SELECT id, kind, row_id, institution_id, attempt, outcome,
					retry_at, worker_id, host, pid, started_at, finished_at, error, row_status,
					row_finished_at
				FROM moved_event_attempts
				RETURNING 1)
			INSERT INTO lote.events_archive (id, institution_id, entity_type, entity_id, type, data,
				status, attempt, max_attempts, run_at, lease_until, worker_id, original_id, replaced_by,
				created_at, started_at, finished_at, duration, error)
			SELECT id, institution_id, entity_type, entity_id, type, data,
				status, attempt, max_attempts, run_at, lease_until, worker_id, original_id, replaced_by,
				created_at, started_at, coalesce(finished_at, now()), duration, error
			FROM moved;
			GET DIAGNOSTICS n = ROW_COUNT;
			RETURN n;
		EXCEPTION WHEN check_violation THEN
			-- "no partition of relation … found for row": a week without
			-- its partition yet (old rows); create what the candidates need.
			IF try_no = 2 THEN
				RAISE;
			END IF;
			PERFORM lote.archive_ensure_days(ARRAY(
				SELECT finished_at FROM lote.events
				WHERE status IN ('success', 'error') AND finished_at < now() - older_than
				ORDER BY finished_at LIMIT max_rows));
		END;
	END LOOP;
	RETURN 0;
END
$$;

-- Moves up to max_rows finished commands older than older_than that are
-- not members of a batch still in the hot table (those move with their
-- batch). A follow-up waiting for its batch is `awaiting`, never moved.
CREATE FUNCTION lote.archive_commands_chunk(older_than interval, max_rows integer)
RETURNS integer
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
	n integer;
BEGIN
	FOR try_no IN 1..2 LOOP
		BEGIN
			WITH moved AS (
				DELETE FROM lote.commands c
				WHERE c.id IN (SELECT k.id FROM lote.commands k
				               WHERE k.status IN ('success', 'error', 'cancelled')
				                 AND k.finished_at < now() - older_than
				                 AND (k.batch_id IS NULL
				                      OR NOT EXISTS (SELECT 1 FROM lote.batches b WHERE b.id = k.batch_id))
				               ORDER BY k.finished_at LIMIT max_rows
				               FOR UPDATE OF k SKIP LOCKED)
				RETURNING c.*),
			moved_command_attempts AS (
				DELETE FROM lote.attempts a USING moved m
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
			INSERT INTO lote.commands_archive (id, institution_id, type, data, status, queue,
				priority, attempt, max_attempts, run_at, retry, lease_until, worker_id, event_id,
				parent_id, original_id, batch_id, created_at, started_at, finished_at,
				duration, error, replaced_by)
			SELECT id, institution_id, type, data, status, queue,
				priority, attempt, max_attempts, run_at, retry, lease_until, worker_id, event_id,
				parent_id, original_id, batch_id, created_at, started_at, coalesce(finished_at, now()),
				duration, error, replaced_by
			FROM moved;
			GET DIAGNOSTICS n = ROW_COUNT;
			RETURN n;
		EXCEPTION WHEN check_violation THEN
			IF try_no = 2 THEN
				RAISE;
			END IF;
			PERFORM lote.archive_ensure_days(ARRAY(
				SELECT finished_at FROM lote.commands
				WHERE status IN ('success', 'error', 'cancelled') AND finished_at < now() - older_than
				ORDER BY finished_at LIMIT max_rows));
		END;
	END LOOP;
	RETURN 0;
END
$$;

-- The batches that may move now: complete (success, cancelled) and older
-- than older_than, or in error and created longer than error_after ago;
-- and only once every member is final, so completion never races with it.
CREATE FUNCTION lote.archivable_batches(older_than interval, error_after interval)
RETURNS SETOF lote.batches
LANGUAGE sql STABLE AS $$
	SELECT b.* FROM lote.batches b
	WHERE ((b.status IN ('success', 'cancelled') AND b.finished_at < now() - older_than)
	       OR (b.status = 'error' AND b.created_at < now() - error_after))
	  AND NOT EXISTS (SELECT 1 FROM lote.commands c WHERE c.batch_id = b.id
	                  AND c.status NOT IN ('success', 'error', 'cancelled'))
$$;

-- Moves up to max_batches archivable batches with all their members, in
-- one statement. A batch archived in error is final: its follow-up, which
-- can never be released now, is cancelled (and archived later like any
-- finished command). Returns the batches and the member commands moved.
CREATE FUNCTION lote.archive_batches_chunk(older_than interval, error_after interval,
                                           max_batches integer,
                                           OUT batches integer, OUT commands integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
	FOR try_no IN 1..2 LOOP
		BEGIN
			WITH chosen AS (
				SELECT b.id, b.status, b.next_command_id FROM lote.batches b
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
				SELECT coalesce(c.finished_at, now()) FROM lote.commands c
				WHERE c.batch_id IN (SELECT id FROM lote.archivable_batches(older_than, error_after))));
		END;
	END LOOP;
END
$$;

-- What an archive run would move now (for --dry-run): counts only.
CREATE FUNCTION lote.archive_pending(older_than interval, error_after interval,
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
		(SELECT count(*) FROM lote.commands c
		   WHERE c.batch_id IN (SELECT id FROM lote.archivable_batches(older_than, error_after)))
$$;

-- ---------------------------------------------------------------------
-- Retention: whole status partitions of whole days, never row by row.

-- The retention of a status.
CREATE FUNCTION lote.retention_of(status text) RETURNS interval
LANGUAGE sql STABLE AS $$
	SELECT CASE status WHEN 'success' THEN retention_success
	                   WHEN 'error' THEN retention_error
	                   ELSE retention_cancelled END
	FROM lote.archive_settings
$$;

-- Every archive partition: its archive, week (day = its Monday, until =
-- the Monday after), status (NULL for a week's parent), estimated rows and
-- size.
CREATE VIEW lote.archive_partitions AS
SELECT a.archive,
       w.day,
       w.day + 7 AS until,
       substring(c.relname from '_w\d{8}_([a-z]+)$') AS status,
       c.relname::text AS partition,
       -- never analyzed yet (a new partition): a guess from its size
       CASE WHEN c.reltuples >= 0 THEN c.reltuples
            ELSE pg_relation_size(c.oid) / 200 END::bigint AS rows_estimate,
       pg_total_relation_size(c.oid) AS bytes
FROM unnest(lote.archive_names()) AS a(archive)
JOIN pg_namespace n ON n.nspname = 'lote'
JOIN pg_class c ON c.relnamespace = n.oid
 AND c.relname ~ ('^' || a.archive || '_archive_w\d{8}(_[a-z]+)?$')
 AND c.relkind IN ('r', 'p')
CROSS JOIN LATERAL (SELECT to_date(substring(c.relname from '_w(\d{8})'), 'YYYYMMDD') AS day) w;

-- The status partitions past their retention: a week's partition of
-- status s goes once its whole week is older than the retention of s (so
-- a row is kept for its status's retention, and at most 7 days more).
CREATE VIEW lote.retention_due AS
SELECT p.archive, p.day, p.status, p.partition, p.rows_estimate, p.bytes, p.until
FROM lote.archive_partitions p
WHERE p.status IS NOT NULL
  AND (p.until::timestamp AT TIME ZONE 'UTC') <= now() - lote.retention_of(p.status);

-- Drops one partition listed by lote.retention_due (checked again here,
-- so a stale list never drops anything else), then its week's partition
-- if that has no status partition left. Returns whether it dropped it.
CREATE FUNCTION lote.retention_drop(part text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	p record;
	week_table text;
BEGIN
	SELECT * INTO p FROM lote.retention_due WHERE partition = part;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	EXECUTE format('DROP TABLE lote.%I', p.partition);
	week_table := format('%s_archive_w%s', p.archive, to_char(p.day, 'YYYYMMDD'));
	IF NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = ('lote.' || week_table)::regclass) THEN
		EXECUTE format('DROP TABLE lote.%I', week_table);
	END IF;
	RETURN true;
END
$$;

-- ---------------------------------------------------------------------
-- Hot and archive as one. `archived` says where a row lives.

CREATE VIEW lote.events_all AS
SELECT id, institution_id, entity_type, entity_id, type, data, status, attempt, max_attempts,
       run_at, lease_until, worker_id, original_id, replaced_by, created_at, started_at,
       finished_at, duration, error,
       false AS archived
FROM lote.events
UNION ALL
SELECT id, institution_id, entity_type, entity_id, type, data, status, attempt, max_attempts,
       run_at, lease_until, worker_id, original_id, replaced_by, created_at, started_at,
       finished_at, duration, error,
       true
FROM lote.events_archive;

CREATE VIEW lote.commands_all AS
SELECT id, institution_id, type, data, status, queue, priority, attempt, max_attempts, run_at,
       retry, lease_until, worker_id, event_id, parent_id, original_id, batch_id, created_at,
       started_at, finished_at, duration, error, replaced_by, false AS archived
FROM lote.commands
UNION ALL
SELECT id, institution_id, type, data, status, queue, priority, attempt, max_attempts, run_at,
       retry, lease_until, worker_id, event_id, parent_id, original_id, batch_id, created_at,
       started_at, finished_at, duration, error, replaced_by, true
FROM lote.commands_archive;

CREATE VIEW lote.batches_all AS
SELECT id, institution_id, type, status, size, event_id, parent_id, next_command_id,
       created_at, started_at, finished_at, duration, error, false AS archived
FROM lote.batches
UNION ALL
SELECT id, institution_id, type, status, size, event_id, parent_id, next_command_id,
       created_at, started_at, finished_at, duration, error, true
FROM lote.batches_archive;

CREATE VIEW lote.attempts_all AS
SELECT id, kind, row_id, institution_id, attempt, outcome, retry_at, worker_id, host, pid,
       started_at, finished_at, error, false AS archived
FROM lote.attempts
UNION ALL
SELECT id, kind, row_id, institution_id, attempt, outcome, retry_at, worker_id, host, pid,
       started_at, finished_at, error, true
FROM lote.attempts_archive;

-- Lineage across hot and archive (replaces 002's, same JSON shape, plus
-- "archived"). One indexed lookup per link, hot table first, then the
-- archive (whose (x, id) indexes answer each link per partition): a
-- correlated subquery over the *_all views planned and ran each link
-- over every partition (1-2 s per call at 100k archived rows).
-- replaced_by of an archived command is found from its copy's
-- original_id, since archived rows are never updated.
CREATE OR REPLACE FUNCTION lote.lineage(command_id bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
	c record;
	in_archive boolean := false;
	follow_up_of bigint;
	replaced_by bigint;
	children jsonb;
	batches jsonb;
BEGIN
	SELECT k.id, k.type, k.status, k.event_id, k.parent_id, k.batch_id, k.original_id, k.replaced_by
	INTO c FROM lote.commands k WHERE k.id = lineage.command_id;
	IF NOT FOUND THEN
		SELECT k.id, k.type, k.status, k.event_id, k.parent_id, k.batch_id, k.original_id,
		       NULL::bigint AS replaced_by
		INTO c FROM lote.commands_archive k WHERE k.id = lineage.command_id;
		IF NOT FOUND THEN
			RETURN NULL;
		END IF;
		in_archive := true;
	END IF;
	follow_up_of := coalesce((SELECT b.id FROM lote.batches b WHERE b.next_command_id = c.id LIMIT 1),
	                         (SELECT b.id FROM lote.batches_archive b WHERE b.next_command_id = c.id LIMIT 1));
	replaced_by := coalesce(c.replaced_by,
	                        greatest((SELECT max(k.id) FROM lote.commands k WHERE k.original_id = c.id),
	                                 (SELECT max(k.id) FROM lote.commands_archive k WHERE k.original_id = c.id)));
	SELECT coalesce(jsonb_agg(x.id ORDER BY x.id), '[]') INTO children
	FROM (SELECT k.id FROM lote.commands k WHERE k.parent_id = c.id
	      UNION ALL SELECT k.id FROM lote.commands_archive k WHERE k.parent_id = c.id) x;
	SELECT coalesce(jsonb_agg(x.id ORDER BY x.id), '[]') INTO batches
	FROM (SELECT b.id FROM lote.batches b WHERE b.parent_id = c.id
	      UNION ALL SELECT b.id FROM lote.batches_archive b WHERE b.parent_id = c.id) x;
	RETURN jsonb_build_object(
		'id', c.id,
		'type', c.type,
		'status', c.status,
		'event_id', c.event_id,
		'parent_id', c.parent_id,
		'batch_id', c.batch_id,
		'follow_up_of', follow_up_of,
		'original_id', c.original_id,
		'replaced_by', replaced_by,
		'children', children,
		'batches', batches,
		'archived', in_archive);
END
$$;

-- ---------------------------------------------------------------------
-- Reprocess across hot and archive. 002's lote.reprocess (hot rows) is
-- kept as lote.reprocess_hot; lote.reprocess also takes an archived
-- command: a new hot command, a copy with original_id pointing at the
-- archived one (which, immutable, is not updated: lote.lineage finds its
-- replaced_by from the copy). The copy runs on its own, outside any batch.
-- A member of a batch archived in error is refused: an archived batch in
-- error is final (it can no longer be repaired).
ALTER FUNCTION lote.reprocess(bigint) RENAME TO reprocess_hot;

CREATE FUNCTION lote.reprocess(command_id bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	a lote.commands_archive;
	batch_status text;
	live bigint;
	new_id bigint;
BEGIN
	IF EXISTS (SELECT 1 FROM lote.commands WHERE id = command_id) THEN
		RETURN lote.reprocess_hot(command_id);
	END IF;
	-- one reprocess of an archived command at a time (its row cannot be
	-- locked: archived rows are never written)
	PERFORM pg_advisory_xact_lock(hashtextextended('lote.reprocess', command_id));
	SELECT * INTO a FROM lote.commands_archive WHERE id = command_id;
	IF NOT FOUND THEN
		-- not archived either (or moved while we looked): the hot path says why
		RETURN lote.reprocess_hot(command_id);
	END IF;
	IF a.batch_id IS NOT NULL THEN
		SELECT status INTO batch_status FROM lote.batches_archive WHERE id = a.batch_id;
		IF batch_status = 'error' THEN
			RAISE EXCEPTION 'lote.reprocess: command % is a member of batch %, archived in error: an archived batch is final',
				command_id, a.batch_id USING ERRCODE = '55000';
		END IF;
	END IF;
	SELECT id INTO live FROM lote.commands
	WHERE original_id = command_id AND status NOT IN ('success', 'error', 'cancelled')
	LIMIT 1;
	IF FOUND THEN
		RAISE EXCEPTION 'lote.reprocess: command % already has a live copy, command %', command_id, live
			USING ERRCODE = '55000';
	END IF;
	INSERT INTO lote.commands (institution_id, type, data, queue, priority, max_attempts,
	                           event_id, parent_id, original_id)
	VALUES (a.institution_id, a.type, a.data, a.queue, a.priority, a.max_attempts,
	        a.event_id, a.parent_id, a.id)
	RETURNING id INTO new_id;
	RETURN new_id;
END
$$;

-- ---------------------------------------------------------------------
-- Sizes for `lote stats` and the dashboard: exact counts for the hot
-- tables (small by design), catalog estimates for the archive (never a
-- count(*) over it).
CREATE FUNCTION lote.stats() RETURNS jsonb
LANGUAGE sql STABLE AS $$
	WITH hot AS (
		SELECT 'events' AS t, (SELECT count(*) FROM lote.events) AS n,
		       pg_total_relation_size('lote.events') AS bytes
		UNION ALL SELECT 'commands', (SELECT count(*) FROM lote.commands),
		       pg_total_relation_size('lote.commands')
		UNION ALL SELECT 'batches', (SELECT count(*) FROM lote.batches),
		       pg_total_relation_size('lote.batches')
		UNION ALL SELECT 'attempts', (SELECT count(*) FROM lote.attempts),
		       pg_total_relation_size('lote.attempts')),
	leaves AS (
		SELECT archive, status, sum(rows_estimate) AS n, sum(bytes) AS bytes,
		       count(*) AS parts, min(day) AS oldest, max(day) AS newest
		FROM lote.archive_partitions WHERE status IS NOT NULL
		GROUP BY archive, status),
	arch AS (
		SELECT archive, sum(n)::bigint AS n, sum(bytes)::bigint AS bytes, sum(parts)::bigint AS parts,
		       min(oldest) AS oldest, max(newest) AS newest,
		       jsonb_object_agg(status, n::bigint) AS by_status
		FROM leaves GROUP BY archive)
	SELECT jsonb_object_agg(h.t, jsonb_build_object(
		'hot', jsonb_build_object('rows', h.n, 'bytes', h.bytes),
		'archive', jsonb_build_object(
			'rows_estimate', coalesce(a.n, 0), 'bytes', coalesce(a.bytes, 0),
			'partitions', coalesce(a.parts, 0), 'oldest_day', a.oldest, 'newest_day', a.newest,
			'by_status', coalesce(a.by_status, '{}'))))
	FROM hot h LEFT JOIN arch a ON a.archive = h.t
$$;

-- ---------------------------------------------------------------------
-- Scheduled routines and users' periodic commands. Each daemon's
-- supervisor claims due rows with FOR UPDATE SKIP LOCKED in a transaction
-- that also advances next_run_at (and, for a command schedule, enqueues
-- the command), so a tick runs exactly once across every daemon.

CREATE TABLE lote.schedules (
	name           text PRIMARY KEY,
	cron           text NOT NULL,       -- 5-field cron or @hourly, @daily …
	timezone       text NOT NULL DEFAULT current_setting('TimeZone'),
	routine        text CHECK (routine IN ('archive', 'retention')),  -- built-in routine
	command_type   text,                -- or: the command it enqueues
	data           jsonb NOT NULL DEFAULT '{}',
	institution_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
	options        jsonb NOT NULL DEFAULT '{}',   -- lote.enqueue options
	missed         text NOT NULL DEFAULT 'once'
	               CHECK (missed IN ('skip', 'once', 'catch_up')),
	enabled        boolean NOT NULL DEFAULT true,
	next_run_at    timestamptz,         -- NULL: computed by the next daemon tick
	locked_until   timestamptz,         -- a routine is running on some daemon
	runs           bigint NOT NULL DEFAULT 0,
	last_run_at    timestamptz,
	last_status    text,                -- ok | error
	last_error     text,
	last_duration  interval,
	created_at     timestamptz NOT NULL DEFAULT now(),
	CHECK ((routine IS NULL) <> (command_type IS NULL))
);
CREATE INDEX schedules_due ON lote.schedules (next_run_at) WHERE enabled;

-- A changed cron or time zone means a new next run, computed by the daemon.
CREATE FUNCTION lote.schedules_reset() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.cron IS DISTINCT FROM OLD.cron OR NEW.timezone IS DISTINCT FROM OLD.timezone THEN
		NEW.next_run_at := NULL;
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER schedules_reset BEFORE UPDATE ON lote.schedules
	FOR EACH ROW EXECUTE FUNCTION lote.schedules_reset();

INSERT INTO lote.schedules (name, cron, routine, timezone) VALUES
	('lote.archive', '* * * * *', 'archive', 'UTC'),
	('lote.retention', '0 3 * * *', 'retention', current_setting('TimeZone'));

-- Replaces names (jan, mon …) in a cron field by their numbers.
CREATE FUNCTION lote.cron_names(f text, names text[], first integer) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	FOR i IN 1..array_length(names, 1) LOOP
		f := regexp_replace(f, '\m' || names[i] || '\M', (first + i - 1)::text, 'g');
	END LOOP;
	RETURN f;
END
$$;

-- Checks a cron expression's form (the daemon's parser, src/lib/cron.c,
-- is the same grammar); raises 22023 with what is wrong.
CREATE FUNCTION lote.check_cron(fn text, expr text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	fields text[];
	names constant text[] := ARRAY['minute', 'hour', 'day of month', 'month', 'day of week'];
	lo constant integer[] := ARRAY[0, 0, 1, 1, 0];
	hi constant integer[] := ARRAY[59, 23, 31, 12, 7];
	f text;
	item text;
	m text[];
	v text;
	n integer;
BEGIN
	IF expr IS NULL OR btrim(expr) = '' THEN
		RAISE EXCEPTION '%: empty cron expression', fn USING ERRCODE = '22023';
	END IF;
	IF btrim(expr) ~ '^@' THEN
		IF lower(btrim(expr)) NOT IN ('@yearly', '@annually', '@monthly', '@weekly', '@daily',
		                              '@midnight', '@hourly') THEN
			RAISE EXCEPTION '%: unknown cron macro "%"', fn, btrim(expr)
				USING ERRCODE = '22023',
				      HINT = 'macros: @yearly @annually @monthly @weekly @daily @midnight @hourly';
		END IF;
		RETURN;
	END IF;
	fields := regexp_split_to_array(btrim(expr), '\s+');
	IF array_length(fields, 1) <> 5 THEN
		RAISE EXCEPTION '%: cron expression "%" has % fields, expected 5 (minute hour day-of-month month day-of-week)',
			fn, expr, array_length(fields, 1) USING ERRCODE = '22023';
	END IF;
	FOR i IN 1..5 LOOP
		f := lower(fields[i]);
		-- names: months in field 4, days in field 5
		IF i = 4 THEN
			f := lote.cron_names(f, ARRAY['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug',
			                              'sep', 'oct', 'nov', 'dec'], 1);
		ELSIF i = 5 THEN
			f := lote.cron_names(f, ARRAY['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'], 0);
		END IF;
		FOREACH item IN ARRAY string_to_array(f, ',') LOOP
			m := regexp_match(item, '^(\*|\d+(?:-\d+)?)(?:/(\d+))?$');
			IF m IS NULL THEN
				RAISE EXCEPTION '%: bad % field "%" in "%"', fn, names[i], fields[i], expr
					USING ERRCODE = '22023',
					      HINT = 'a field is *, N, N-M, a list of them separated by commas, each optionally /STEP';
			END IF;
			IF m[2] IS NOT NULL AND (m[2]::numeric < 1 OR m[2]::numeric > hi[i]) THEN
				RAISE EXCEPTION '%: step % out of range in % field "%"', fn, m[2], names[i], fields[i]
					USING ERRCODE = '22023';
			END IF;
			IF m[1] <> '*' THEN
				FOREACH v IN ARRAY string_to_array(m[1], '-') LOOP
					IF length(v) > 4 OR v::integer NOT BETWEEN lo[i] AND hi[i] THEN
						RAISE EXCEPTION '%: % % out of range %-% in "%"', fn, names[i], v, lo[i], hi[i], expr
							USING ERRCODE = '22023';
					END IF;
				END LOOP;
				IF m[1] ~ '-' AND split_part(m[1], '-', 1)::integer > split_part(m[1], '-', 2)::integer THEN
					RAISE EXCEPTION '%: backwards range % in % field of "%"', fn, m[1], names[i], expr
						USING ERRCODE = '22023';
				END IF;
			END IF;
		END LOOP;
	END LOOP;
END
$$;

-- Creates or replaces the user schedule `name`: at every tick of cron (in
-- options.timezone, default the session's TimeZone) a command of
-- command_type with data is enqueued, exactly once across every daemon.
-- options: the lote.enqueue options queue, priority, max_attempts, plus
-- institution_id (uuid), timezone, missed (skip | once | catch_up) and
-- enabled (boolean).
CREATE FUNCTION lote.schedule(name text, cron text, command_type text,
                              data jsonb DEFAULT '{}', options jsonb DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	o jsonb := coalesce(options, '{}');
	k text;
	allowed constant text[] := ARRAY['queue', 'priority', 'max_attempts', 'institution_id',
	                                 'timezone', 'missed', 'enabled'];
	tz text;
	inst uuid;
BEGIN
	IF name IS NULL OR name !~ '^[A-Za-z_][A-Za-z0-9_.:-]{0,99}$' THEN
		RAISE EXCEPTION 'lote.schedule: invalid schedule name %', coalesce(quote_literal(name), 'NULL')
			USING ERRCODE = '22023',
			      HINT = 'a name is 1 to 100 letters, digits, "_", ".", ":" or "-", starting with a letter or "_"';
	END IF;
	IF name LIKE 'lote.%' THEN
		RAISE EXCEPTION 'lote.schedule: names starting with "lote." are reserved for built-in routines'
			USING ERRCODE = '22023',
			      HINT = 'change a built-in routine with UPDATE lote.schedules SET cron = … WHERE name = …';
	END IF;
	PERFORM lote.check_cron('lote.schedule', cron);
	PERFORM lote.check_type('lote.schedule', command_type);
	PERFORM lote.check_payload('lote.schedule', data);
	IF jsonb_typeof(o) <> 'object' THEN
		RAISE EXCEPTION 'lote.schedule: options must be a JSON object, got %', jsonb_typeof(o)
			USING ERRCODE = '22023';
	END IF;
	FOR k IN SELECT jsonb_object_keys(o) LOOP
		IF NOT k = ANY (allowed) THEN
			RAISE EXCEPTION 'lote.schedule: unknown option "%" (allowed: %)', k, array_to_string(allowed, ', ')
				USING ERRCODE = '22023';
		END IF;
	END LOOP;
	PERFORM lote.check_options('lote.schedule', o - 'institution_id' - 'timezone' - 'missed' - 'enabled');
	IF o ? 'missed' AND (o->>'missed') NOT IN ('skip', 'once', 'catch_up') THEN
		RAISE EXCEPTION 'lote.schedule: missed must be skip, once or catch_up, got %', o->'missed'
			USING ERRCODE = '22023';
	END IF;
	IF o ? 'enabled' AND jsonb_typeof(o->'enabled') <> 'boolean' THEN
		RAISE EXCEPTION 'lote.schedule: enabled must be true or false, got %', o->'enabled'
			USING ERRCODE = '22023';
	END IF;
	tz := coalesce(o->>'timezone', current_setting('TimeZone'));
	BEGIN
		PERFORM now() AT TIME ZONE tz;
	EXCEPTION WHEN OTHERS THEN
		RAISE EXCEPTION 'lote.schedule: unknown time zone "%"', tz USING ERRCODE = '22023';
	END;
	BEGIN
		inst := coalesce((o->>'institution_id')::uuid, '00000000-0000-0000-0000-000000000000');
	EXCEPTION WHEN invalid_text_representation THEN
		RAISE EXCEPTION 'lote.schedule: institution_id must be a UUID, got %', o->'institution_id'
			USING ERRCODE = '22023';
	END;
	INSERT INTO lote.schedules AS s (name, cron, timezone, command_type, data, institution_id,
	                                 options, missed, enabled)
	VALUES (schedule.name, btrim(schedule.cron), tz, schedule.command_type, schedule.data, inst,
	        o - 'institution_id' - 'timezone' - 'missed' - 'enabled',
	        coalesce(o->>'missed', 'once'), coalesce((o->>'enabled')::boolean, true))
	ON CONFLICT ON CONSTRAINT schedules_pkey DO UPDATE SET
		cron = excluded.cron, timezone = excluded.timezone, command_type = excluded.command_type,
		data = excluded.data, institution_id = excluded.institution_id, options = excluded.options,
		missed = excluded.missed, enabled = excluded.enabled, next_run_at = NULL;
END
$$;

-- Removes a user schedule; returns whether it existed.
CREATE FUNCTION lote.unschedule(name text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
	IF name LIKE 'lote.%' THEN
		RAISE EXCEPTION 'lote.unschedule: % is a built-in routine; disable it with UPDATE lote.schedules SET enabled = false', name
			USING ERRCODE = '22023';
	END IF;
	DELETE FROM lote.schedules s WHERE s.name = unschedule.name;
	RETURN FOUND;
END
$$;

-- The archive's first partitions, so the first archive run and the
-- dashboard find them in place.
SELECT lote.archive_ensure_ahead();
