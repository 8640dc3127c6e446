-- 018_named_event_wakeups.sql - an event's wake-up names its type
-- (issue 8).
--
-- Events wake the daemons from a statement trigger on lote.events (every
-- path that records one: lote.emit, the capture triggers, reprocessing,
-- a plain INSERT), which sent "e": every daemon with event handlers woke
-- and claimed, whether or not it handles the event's type. As 016 and 017
-- did for commands, the trigger now sends one "e:TYPE" per distinct type
-- the statement made claimable, and "e" alone past 32 types. Daemons of
-- earlier versions read an unknown payload as "both kinds": they still
-- wake for it. The common statement has one type (lote.emit inserts one
-- row): one due row and the absence of another type settle it (as cheap
-- as the EXISTS before: 20 000 lote.emit calls in a loop, alternated 3x,
-- 586-775 ms with 017's trigger, 635-706 ms with this one, 817-829 ms
-- with min/max aggregates); only a statement of several types collects
-- them.
CREATE OR REPLACE FUNCTION lote.notify_wakeup() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	one text;
	due_types text[];
	due_type text;
BEGIN
	SELECT n.type INTO one FROM new_rows n
	WHERE n.status = 'pending' AND n.run_at <= now() LIMIT 1;
	IF NOT FOUND THEN
		RETURN NULL;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM new_rows n
	               WHERE n.status = 'pending' AND n.run_at <= now() AND n.type <> one) THEN
		PERFORM pg_notify('lote_wakeup', lote.wakeup_payload(TG_ARGV[0], one));
		RETURN NULL;
	END IF;
	due_types := ARRAY(SELECT DISTINCT n.type FROM new_rows n
	                   WHERE n.status = 'pending' AND n.run_at <= now());
	IF cardinality(due_types) > 32 THEN
		PERFORM pg_notify('lote_wakeup', TG_ARGV[0]);
	ELSE
		FOREACH due_type IN ARRAY due_types LOOP
			PERFORM pg_notify('lote_wakeup', lote.wakeup_payload(TG_ARGV[0], due_type));
		END LOOP;
	END IF;
	RETURN NULL;
END
$$;
