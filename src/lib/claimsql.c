/* claimsql.c - the text of the statements that read the claim index of
 * commands (see claimsql.h). */
#include <stdio.h>

#include "claimsql.h"

/* The distinct pending priorities, lowest first, by a skip over the claim
 * index (one descent each): p(priority), at most `most` of them (a string
 * literal), and a last row of NULL when they ran out before. */
#define PRIORITIES(most) \
	"WITH RECURSIVE p(priority, depth) AS (" \
	"  (SELECT c.priority, 1 FROM lote.commands c WHERE c.status = 'pending'" \
	"   ORDER BY c.priority LIMIT 1)" \
	"  UNION ALL" \
	"  SELECT (SELECT c.priority FROM lote.commands c WHERE c.status = 'pending'" \
	"    AND c.priority > p.priority ORDER BY c.priority LIMIT 1), p.depth + 1" \
	"  FROM p WHERE p.priority IS NOT NULL AND p.depth < " most ")"

/* The rows to claim, by ctid, in the order they would run: $1 types, $2
 * limit, then the queue filter and the form's own condition. */
#define DUE_ROWS(queue, cond) \
	"SELECT ctid FROM lote.commands" \
	" WHERE status = 'pending' AND run_at <= now() AND type = ANY ($1::text[])" queue cond \
	" ORDER BY priority, run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED"

/* The skip form: the first 100 distinct pending priorities scanned as
 * priority = ANY (…), so that run_at bounds each priority's range; the
 * priorities past the 100th, if any, by the plain scan. Append reads the
 * second part only when the first left the claim short, and all of its
 * priorities come after the first part's. */
#define SKIP_ROWS(queue) \
	PRIORITIES("100") "," \
	" k AS (SELECT array_agg(priority) AS ps, max(priority) AS top FROM p" \
	"  WHERE priority IS NOT NULL)" \
	" SELECT ctid FROM (" DUE_ROWS(queue, " AND priority = ANY ((SELECT ps FROM k)::smallint[])") ") a" \
	" UNION ALL" \
	" SELECT ctid FROM (" DUE_ROWS(queue, " AND priority > (SELECT top FROM k)") ") b" \
	" LIMIT $2"

#define QUEUE_5 " AND queue = ANY ($5::text[])"

int lote__claim_commands_sql(char *buf, size_t size, bool skip, bool queues)
{
	static const char *const rows[2][2] = {
		{ DUE_ROWS("", ""), DUE_ROWS(QUEUE_5, "") },
		{ SKIP_ROWS(""), SKIP_ROWS(QUEUE_5) },
	};
	int n = snprintf(buf, size,
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
		rows[skip][queues]);
	return n < 0 || (size_t)n >= size ? -1 : n;
}

int lote__next_due_sql(char *buf, size_t size, bool queues)
{
	/* within each priority, the earliest row this worker may claim, in
	 * index order */
	int n = snprintf(buf, size,
		/* every smallint: no bound */
		PRIORITIES("65536")
		" SELECT ceil(extract(epoch FROM least("
		"  (SELECT min((SELECT c.run_at FROM lote.commands c WHERE c.status = 'pending'"
		"     AND c.priority = p.priority AND c.type = ANY ($1::text[])%s"
		"     ORDER BY c.run_at LIMIT 1)) FROM p),"
		"  (SELECT min(run_at) FROM lote.events WHERE status = 'pending'"
		"     AND type = ANY ($2::text[]))) - now()) * 1000)::bigint",
		queues ? " AND c.queue = ANY ($3::text[])" : "");
	return n < 0 || (size_t)n >= size ? -1 : n;
}
