-- 012_heartbeat.sql - the heartbeat renews only the leases that need it
-- (issue 8).
--
-- The supervisor used to renew the lease of every row its workers held at
-- every heartbeat (a third of the lease): each renewal writes a new row
-- version, with an entry in every index whose predicate it meets, and a
-- row renewed between its claim and its completion is no longer at the
-- ctid the claim returned, so its group's completion had to look it up
-- again. Now a lease is renewed only when it ends within
-- lease - heartbeat / 2: a row claimed or renewed less than half a
-- heartbeat ago is left alone, and a renewed lease still has at least
-- lease - 1.5 heartbeats left (20 s of the default 30 s) when the next
-- heartbeat comes. Rows locked by a worker's transaction are skipped, as
-- before: that lock protects them from rescue.

-- Stamps the workers of host whose pids are given with what they run
-- (kinds: 0 nothing, 1 a command, 2 an event; ids: its id) and renews,
-- as above, the leases of the rows they hold. Returns the number of
-- leases renewed.
CREATE FUNCTION lote.heartbeat(host text, pids integer[], kinds integer[], ids bigint[],
                               lease_ms bigint, heartbeat_ms bigint)
RETURNS integer
LANGUAGE sql AS $$
	WITH w AS (UPDATE lote.workers w SET heartbeat_at = now(),
	                  current_command_id = CASE WHEN u.kind = 1 THEN u.id END,
	                  current_event_id = CASE WHEN u.kind = 2 THEN u.id END
	           FROM unnest(pids, kinds, ids) AS u(pid, kind, id)
	           WHERE w.host = heartbeat.host AND w.pid = u.pid
	           RETURNING w.id),
	c AS (UPDATE lote.commands SET lease_until = now() + lease_ms * interval '1 ms'
	      WHERE id IN (SELECT id FROM lote.commands WHERE status = 'processing'
	                   AND worker_id IN (SELECT id FROM w)
	                   AND lease_until < now() + (lease_ms - heartbeat_ms / 2) * interval '1 ms'
	                   FOR UPDATE SKIP LOCKED)
	      RETURNING 1),
	e AS (UPDATE lote.events SET lease_until = now() + lease_ms * interval '1 ms'
	      WHERE id IN (SELECT id FROM lote.events WHERE status = 'processing'
	                   AND worker_id IN (SELECT id FROM w)
	                   AND lease_until < now() + (lease_ms - heartbeat_ms / 2) * interval '1 ms'
	                   FOR UPDATE SKIP LOCKED)
	      RETURNING 1)
	SELECT ((SELECT count(*) FROM c) + (SELECT count(*) FROM e))::integer
$$;
