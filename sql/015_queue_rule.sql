-- 015_queue_rule.sql - the queue rule without a bounded repetition
-- (issue 8), as 010 did for the type rule.
--
-- '^[A-Za-z0-9_.:-]{1,100}$' costs PostgreSQL's regex engine a large
-- automaton: 100 000 matches took 315-327 ms, against 72-73 ms for a
-- length test and an open repetition. lote.check_options runs once per
-- lote.enqueue with options and once per batch member with options, so a
-- batch of 100 000 members that name a queue is created ~250 ms sooner.
-- The rule is the same: 1 to 100 ASCII letters, digits, "_", ".", ":" or
-- "-". 001's body otherwise.
CREATE OR REPLACE FUNCTION lote.check_options(fn text, options jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
	k text;
	allowed constant text[] := ARRAY['run_at', 'delay_ms', 'max_attempts', 'priority', 'queue', 'retry'];
BEGIN
	IF options IS NULL THEN
		RETURN '{}'::jsonb;
	END IF;
	IF jsonb_typeof(options) <> 'object' THEN
		RAISE EXCEPTION '%: options must be a JSON object, got %', fn, jsonb_typeof(options)
			USING ERRCODE = '22023';
	END IF;
	FOR k IN SELECT jsonb_object_keys(options) LOOP
		IF NOT k = ANY (allowed) THEN
			RAISE EXCEPTION '%: unknown option "%" (allowed: %)', fn, k, array_to_string(allowed, ', ')
				USING ERRCODE = '22023';
		END IF;
	END LOOP;
	IF options ? 'run_at' AND options ? 'delay_ms' THEN
		RAISE EXCEPTION '%: give run_at or delay_ms, not both', fn USING ERRCODE = '22023';
	END IF;
	IF options ? 'run_at' AND (jsonb_typeof(options->'run_at') <> 'string'
	                           OR (options->>'run_at') !~ '^\d{4}-\d\d-\d\d') THEN
		RAISE EXCEPTION '%: run_at must be an ISO 8601 timestamp string, got %', fn, options->'run_at'
			USING ERRCODE = '22023';
	END IF;
	IF options ? 'delay_ms' AND (jsonb_typeof(options->'delay_ms') <> 'number'
	                             OR (options->>'delay_ms')::numeric < 0
	                             OR (options->>'delay_ms')::numeric > 3153600000000) THEN
		RAISE EXCEPTION '%: delay_ms must be a number of milliseconds >= 0, got %', fn, options->'delay_ms'
			USING ERRCODE = '22023';
	END IF;
	IF options ? 'max_attempts' AND (jsonb_typeof(options->'max_attempts') <> 'number'
	                                 OR (options->>'max_attempts') !~ '^\d+$'
	                                 OR (options->>'max_attempts')::numeric NOT BETWEEN 1 AND 1000) THEN
		RAISE EXCEPTION '%: max_attempts must be an integer from 1 to 1000, got %', fn, options->'max_attempts'
			USING ERRCODE = '22023';
	END IF;
	IF options ? 'priority' AND (jsonb_typeof(options->'priority') <> 'number'
	                             OR (options->>'priority') !~ '^-?\d+$'
	                             OR (options->>'priority')::numeric NOT BETWEEN -32768 AND 32767) THEN
		RAISE EXCEPTION '%: priority must be an integer from -32768 to 32767 (lower runs first), got %', fn, options->'priority'
			USING ERRCODE = '22023';
	END IF;
	IF options ? 'queue' AND (jsonb_typeof(options->'queue') <> 'string'
	                          OR length(options->>'queue') > 100
	                          OR (options->>'queue') !~ '^[A-Za-z0-9_.:-]+$') THEN
		RAISE EXCEPTION '%: queue must be a name of 1 to 100 letters, digits, "_", ".", ":" or "-", got %', fn, options->'queue'
			USING ERRCODE = '22023';
	END IF;
	IF options ? 'retry' THEN
		PERFORM lote.check_retry(fn, options->'retry');
	END IF;
	RETURN options;
END
$$;
