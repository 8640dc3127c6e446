-- 010_type_rule.sql - the type rule without a bounded repetition (issue 8).
--
-- PostgreSQL's regex engine builds a large automaton for {0,199}: matching
-- '^[A-Za-z_][A-Za-z0-9_.:-]{0,199}$' took 4.35 us a call against 0.48 us
-- for the same rule written as a length test and an open repetition
-- (200 000 matches in one query). lote.type_ok runs once per
-- lote.enqueue and once per member of a lote.batch. The rule is the same:
-- 1 to 200 characters, all ASCII, the first a letter or "_".
CREATE OR REPLACE FUNCTION lote.type_ok(type text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
	SELECT type IS NOT NULL AND length(type) <= 200
	       AND type ~ '^[A-Za-z_][A-Za-z0-9_.:-]*$'
$$;
