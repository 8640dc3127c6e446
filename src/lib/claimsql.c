/* claimsql.c - the text of the statement that claims commands (see
 * claimsql.h). */
#include <stdio.h>

#include "claimsql.h"

/* The rows to claim, by ctid, in the order they would run. $1 types,
 * $2 limit, queue filter on $5. */
static const char plain_rows[] =
	"SELECT ctid FROM lote.commands"
	" WHERE status = 'pending' AND run_at <= now() AND type = ANY ($1::text[])%s"
	" ORDER BY priority, run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED";

/* The first 100 distinct pending priorities, by a skip over the claim
 * index, scanned as priority = ANY (…), so that run_at bounds each
 * priority's range; the priorities past the 100th, if any, by the plain
 * scan. Append reads the second part only when the first left the claim
 * short, and all of its priorities come after the first part's. */
static const char skip_rows[] =
	"WITH RECURSIVE p(priority, depth) AS ("
	"  (SELECT c.priority, 1 FROM lote.commands c WHERE c.status = 'pending'"
	"   ORDER BY c.priority LIMIT 1)"
	"  UNION ALL"
	"  SELECT (SELECT c.priority FROM lote.commands c WHERE c.status = 'pending'"
	"    AND c.priority > p.priority ORDER BY c.priority LIMIT 1), p.depth + 1"
	"  FROM p WHERE p.priority IS NOT NULL AND p.depth < 100),"
	" k AS (SELECT array_agg(priority) AS ps, max(priority) AS top FROM p"
	"  WHERE priority IS NOT NULL)"
	" SELECT ctid FROM (SELECT ctid FROM lote.commands"
	"  WHERE status = 'pending' AND run_at <= now() AND type = ANY ($1::text[])%s"
	"   AND priority = ANY ((SELECT ps FROM k)::smallint[])"
	"  ORDER BY priority, run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED) a"
	" UNION ALL"
	" SELECT ctid FROM (SELECT ctid FROM lote.commands"
	"  WHERE status = 'pending' AND run_at <= now() AND type = ANY ($1::text[])%s"
	"   AND priority > (SELECT top FROM k)"
	"  ORDER BY priority, run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED) b"
	" LIMIT $2";

int lote__claim_commands_sql(char *buf, size_t size, bool skip, bool queues)
{
	const char *queue = queues ? " AND queue = ANY ($5::text[])" : "";
	char rows[2048];
	int n;

	/* the skip form names the queue filter twice, the plain form once
	 * (the extra argument is ignored) */
	n = snprintf(rows, sizeof(rows), skip ? skip_rows : plain_rows, queue, queue);
	if (n < 0 || (size_t)n >= sizeof(rows))
		return -1;
	n = snprintf(buf, size,
		/* = ANY (ARRAY(…)) rather than a join: with a join the planner
		 * turns to a sequential scan of the table for large batches. By
		 * ctid, not id: the rows are locked by this statement, so the
		 * versions it locked are the ones to update, and a TID scan
		 * skips 1 000 descents of the primary key (claim of 1 000 rows:
		 * 13.8-15.5 ms -> 9.1-11.5 ms in EXPLAIN ANALYZE). A row whose
		 * newer version was locked after a concurrent update is not
		 * visible to the TID scan and stays pending, for a later claim. */
		"WITH t AS (UPDATE lote.commands t SET status = 'processing', attempt = t.attempt + 1,"
		"  started_at = clock_timestamp(),"
		"  lease_until = clock_timestamp() + $3::bigint * interval '1 millisecond',"
		"  worker_id = $4"
		"  WHERE t.ctid = ANY (ARRAY(%s))"
		"  RETURNING t.id, t.type, t.institution_id, t.data, t.attempt, t.max_attempts,"
		"   t.event_id, t.parent_id, t.original_id, t.batch_id, t.priority, t.run_at,"
		"   t.ctid AS tid),"
		/* A batch turns processing when its first member is claimed; later
		 * claims find it no longer pending and touch nothing. */
		" b AS (UPDATE lote.batches SET status = 'processing', started_at = clock_timestamp()"
		"  WHERE id IN (SELECT batch_id FROM t WHERE batch_id IS NOT NULL)"
		"   AND status = 'pending')"
		/* RETURNING gives heap order: run the group in queue order, so an
		 * urgent row claimed with 20 slow ones does not wait for them */
		" SELECT * FROM t ORDER BY priority, run_at, id",
		rows);
	return n < 0 || (size_t)n >= size ? -1 : n;
}
