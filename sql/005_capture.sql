-- lote schema, part 5: the interceptor. lote.capture installs a trigger on
-- an application table so that writing a row records a domain event in the
-- same transaction — the database-level equivalent of an ORM saving an
-- entity's events with the entity. The event is lote.emit's: rolled back
-- with the row, handled once by the event's handler.

-- What is captured, one row per (table, event type). The triggers carry
-- their settings as arguments (no lookup per row); this table is the record
-- that lote.captures, lote.uncapture and the docs read.
CREATE TABLE lote.capture_defs (
	rel                regclass NOT NULL,
	event_type         text NOT NULL,
	trigger_name       name NOT NULL,
	operations         text[] NOT NULL,
	columns            text[],            -- NULL: every column
	id_column          text NOT NULL,
	institution_column text,              -- NULL: system events (nil UUID)
	entity_type        text NOT NULL,
	condition          text,              -- the trigger's WHEN clause
	created_at         timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (rel, event_type)
);

-- Only captures whose trigger still exists: a dropped table takes its
-- triggers with it, and its definitions disappear from here.
CREATE VIEW lote.captures AS
SELECT d.rel AS "table", d.event_type, d.operations, d.columns, d.id_column,
       d.institution_column, d.entity_type, d.condition, d.trigger_name, d.created_at
FROM lote.capture_defs d
JOIN pg_trigger t ON t.tgrelid = d.rel AND t.tgname = d.trigger_name;

-- The trigger. Arguments: event type, entity type, id column, institution
-- column ('' = none), captured columns as a text[] literal ('' = all).
CREATE FUNCTION lote.capture_row() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	event_type  text := TG_ARGV[0];
	entity_type text := TG_ARGV[1];
	id_col      text := TG_ARGV[2];
	inst_col    text := nullif(TG_ARGV[3], '');
	cols        text[] := nullif(TG_ARGV[4], '')::text[];
	r           jsonb;
	old_r       jsonb;
	data        jsonb;
	inst        uuid;
	entity_id   text;
BEGIN
	IF TG_OP = 'DELETE' THEN
		r := to_jsonb(OLD);
	ELSE
		r := to_jsonb(NEW);
	END IF;
	IF cols IS NULL THEN
		data := r;
	ELSE
		SELECT coalesce(jsonb_object_agg(k, r -> k), '{}') INTO data
		FROM unnest(cols) AS k;
	END IF;
	IF TG_OP = 'UPDATE' THEN
		-- an update that leaves the captured columns as they were is no event
		old_r := to_jsonb(OLD);
		IF cols IS NULL THEN
			IF old_r = r THEN
				RETURN NULL;
			END IF;
		ELSIF NOT EXISTS (SELECT 1 FROM unnest(cols) AS k
		                  WHERE old_r -> k IS DISTINCT FROM r -> k) THEN
			RETURN NULL;
		END IF;
	END IF;
	entity_id := r ->> id_col;
	IF entity_id IS NULL THEN
		RAISE EXCEPTION 'lote.capture: % row has no % (column %), so % cannot name its entity',
			TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, quote_ident(id_col), quote_ident(id_col), event_type
			USING ERRCODE = '23502';
	END IF;
	IF inst_col IS NULL THEN
		inst := '00000000-0000-0000-0000-000000000000';
	ELSE
		inst := (r ->> inst_col)::uuid;
		IF inst IS NULL THEN
			RAISE EXCEPTION 'lote.capture: % row % has no institution (column % is NULL), so % cannot be recorded',
				TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, entity_id, quote_ident(inst_col), event_type
				USING ERRCODE = '23502',
				      HINT = 'give the row its institution, or capture with institution_column => NULL for system events';
		END IF;
	END IF;
	PERFORM lote.emit(inst, entity_type, entity_id, event_type, data);
	RETURN NULL;
END
$$;

-- Installs (or replaces) the capture of event_type on tbl. Several captures
-- may sit on one table (say one type for inserts, another for deletes).
-- condition, a boolean SQL expression over NEW (and OLD for updates),
-- becomes the trigger's WHEN clause: rows it rejects record no event.
-- Returns the trigger's name.
CREATE FUNCTION lote.capture(tbl regclass, event_type text,
                             columns text[] DEFAULT NULL,
                             id_column text DEFAULT 'id',
                             institution_column text DEFAULT 'institution_id',
                             entity_type text DEFAULT NULL,
                             operations text[] DEFAULT ARRAY['insert'],
                             condition text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	fn      constant text := 'lote.capture';
	kind    "char";
	trig    name;
	ops     text[];
	col     text;
	typ     regtype;
	ent     text;
BEGIN
	IF tbl IS NULL THEN
		RAISE EXCEPTION '%: table must not be NULL', fn USING ERRCODE = '22004';
	END IF;
	PERFORM lote.check_type(fn, event_type);
	SELECT c.relkind INTO kind FROM pg_class c WHERE c.oid = tbl;
	IF kind NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '%: % is not a table', fn, tbl USING ERRCODE = '42809';
	END IF;
	IF (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	    WHERE c.oid = tbl) = 'lote' THEN
		RAISE EXCEPTION '%: % belongs to lote itself and cannot be captured', fn, tbl
			USING ERRCODE = '42809';
	END IF;

	-- operations: any of insert, update, delete, each once, at least one
	SELECT array_agg(DISTINCT lower(o) ORDER BY lower(o)) INTO ops
	FROM unnest(operations) AS o;
	IF ops IS NULL OR cardinality(ops) = 0 THEN
		RAISE EXCEPTION '%: operations must name at least one of insert, update, delete', fn
			USING ERRCODE = '22023';
	END IF;
	IF NOT ops <@ ARRAY['insert', 'update', 'delete'] OR array_position(ops, NULL) IS NOT NULL THEN
		RAISE EXCEPTION '%: unknown operation in %; use insert, update or delete', fn, operations
			USING ERRCODE = '22023';
	END IF;

	-- every named column must exist now (a typo would otherwise surface as
	-- a silently missing key in every event)
	SELECT a.atttypid::regtype INTO typ FROM pg_attribute a
	WHERE a.attrelid = tbl AND a.attname = id_column AND a.attnum > 0 AND NOT a.attisdropped;
	IF NOT FOUND THEN
		RAISE EXCEPTION '%: % has no column % for the entity id', fn, tbl, coalesce(quote_ident(id_column), 'NULL')
			USING ERRCODE = '42703', HINT = 'pass id_column => the column that identifies the row';
	END IF;
	IF institution_column IS NOT NULL THEN
		SELECT a.atttypid::regtype INTO typ FROM pg_attribute a
		WHERE a.attrelid = tbl AND a.attname = institution_column AND a.attnum > 0 AND NOT a.attisdropped;
		IF NOT FOUND THEN
			RAISE EXCEPTION '%: % has no column % for the institution', fn, tbl, quote_ident(institution_column)
				USING ERRCODE = '42703',
				      HINT = 'pass institution_column => the uuid column, or NULL for system events';
		END IF;
		IF typ <> 'uuid'::regtype THEN
			RAISE EXCEPTION '%: %.% is %, not uuid', fn, tbl, quote_ident(institution_column), typ
				USING ERRCODE = '42804';
		END IF;
	END IF;
	IF columns IS NOT NULL THEN
		IF cardinality(columns) = 0 THEN
			RAISE EXCEPTION '%: columns is empty; pass NULL to capture every column', fn
				USING ERRCODE = '22023';
		END IF;
		FOREACH col IN ARRAY columns LOOP
			IF col IS NULL OR NOT EXISTS (SELECT 1 FROM pg_attribute a
			              WHERE a.attrelid = tbl AND a.attname = col AND a.attnum > 0
			                AND NOT a.attisdropped) THEN
				RAISE EXCEPTION '%: % has no column %', fn, tbl, coalesce(quote_ident(col), 'NULL')
					USING ERRCODE = '42703';
			END IF;
		END LOOP;
	END IF;
	ent := coalesce(entity_type, (SELECT c.relname FROM pg_class c WHERE c.oid = tbl));
	IF ent = '' THEN
		RAISE EXCEPTION '%: entity_type must not be empty', fn USING ERRCODE = '22023';
	END IF;

	-- one trigger per (table, event type); its name stays within 63 bytes
	trig := left('lote_capture_' || event_type, 50) || '_' || left(md5(event_type), 8);
	PERFORM lote.uncapture(tbl, capture.event_type);
	DELETE FROM lote.capture_defs d    -- definitions whose table went away
	WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = d.rel);
	IF condition IS NOT NULL AND btrim(condition) = '' THEN
		RAISE EXCEPTION '%: condition is empty; pass NULL to capture every row', fn
			USING ERRCODE = '22023';
	END IF;
	-- PostgreSQL checks the condition here (columns, types, NEW/OLD per
	-- operation); its message goes to the caller as is
	EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s FOR EACH ROW %s EXECUTE FUNCTION lote.capture_row(%L, %L, %L, %L, %L)',
	               trig, array_to_string(ops, ' OR '), tbl,
	               CASE WHEN condition IS NULL THEN '' ELSE 'WHEN (' || condition || ')' END,
	               event_type, ent, id_column,
	               coalesce(institution_column, ''), coalesce(columns::text, ''));
	INSERT INTO lote.capture_defs (rel, event_type, trigger_name, operations, columns,
	                               id_column, institution_column, entity_type, condition)
	VALUES (tbl, event_type, trig, ops, columns, id_column, institution_column, ent, condition);
	RETURN trig;
END
$$;

-- Removes the capture of event_type from tbl, or every capture on tbl when
-- event_type is NULL. Returns how many were removed.
CREATE FUNCTION lote.uncapture(tbl regclass, event_type text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	d record;
	n integer := 0;
BEGIN
	IF tbl IS NULL THEN
		RAISE EXCEPTION 'lote.uncapture: table must not be NULL' USING ERRCODE = '22004';
	END IF;
	FOR d IN DELETE FROM lote.capture_defs c
	         WHERE c.rel = tbl AND (uncapture.event_type IS NULL OR c.event_type = uncapture.event_type)
	         RETURNING c.trigger_name
	LOOP
		EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', d.trigger_name, tbl);
		n := n + 1;
	END LOOP;
	RETURN n;
END
$$;
