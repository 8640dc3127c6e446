/* worker.c - one worker process: claim a group of rows, run each one
 * atomically, complete them together, wait for more.
 *
 * The claim model (docs/architecture.md):
 *  1. claim: one short autocommit statement marks up to `batch` rows
 *     `processing`, increments their attempt and stamps a lease;
 *  2. run: the group shares one transaction, each row in its own savepoint,
 *     so a failing handler rolls back only its own writes. The transaction
 *     is opened lazily and, when opened, locks the group's rows, so nobody
 *     can rescue them while it lives;
 *  3. complete: one UPDATE records every outcome, fenced by attempt (a stale
 *     worker can never overwrite a newer outcome), then COMMIT. If anything
 *     in the group went wrong at that level (a fenced row, a failed COMMIT),
 *     the whole transaction rolls back and each row is run again in its own
 *     transaction, so every outcome stays atomic with its writes. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "claimsize.h"
#include "claimsql.h"
#include "db.h"
#include "engine_int.h"
#include "error.h"
#include "log.h"


struct worker {
	lote_engine *e;
	int index;
	PGconn *conn;
	int64_t id;            /* our row in lote.workers */
	char id_text[24];
	char *command_types;   /* text[] literals of the handled types */
	char *event_types;
	char *queues;          /* text[] literal or NULL for every queue */
	struct lote__tx tx;
	int claim[2];          /* rows to ask for next, per lote_kind - 1
	                        * (claimsize.h) */
	int64_t skip_until_us; /* claim commands with the skip form until
	                        * then (claimsql.h) */
	bool again;            /* claim again before sleeping (wake.h) */
	char begin[65536];     /* BEGIN + lock of the current group */
};

/* One claimed row and its outcome. */
struct row {
	lote_ctx ctx;
	bool ran;         /* its handler(s) ran */
	bool ok;
	bool release;     /* not run: give it back untouched (shutdown) */
	char *error;      /* owned */
	int64_t started_us, finished_us;
	const char *tid;  /* the claimed version's ctid, "(page,item)"; the claim's result owns it */
};

/* Builds a PostgreSQL text[] literal {"a","b"} (malloc'd). */
static char *text_array(const char *const *items, int n)
{
	size_t len = 3;
	char *out, *p;

	for (int i = 0; i < n; i++)
		len += strlen(items[i]) * 2 + 3;
	out = p = malloc(len);
	if (!out)
		return NULL;
	*p++ = '{';
	for (int i = 0; i < n; i++) {
		if (i)
			*p++ = ',';
		*p++ = '"';
		for (const char *s = items[i]; *s; s++) {
			if (*s == '"' || *s == '\\')
				*p++ = '\\';
			*p++ = *s;
		}
		*p++ = '"';
	}
	*p++ = '}';
	*p = '\0';
	return out;
}

static char *queue_array(const char *queues)
{
	char *copy, *tok, *save = NULL, *out;
	const char *items[256];
	int n = 0;

	if (!queues || !*queues)
		return NULL;
	copy = strdup(queues);
	if (!copy)
		return NULL;
	for (tok = strtok_r(copy, ", ", &save); tok && n < 256; tok = strtok_r(NULL, ", ", &save))
		items[n++] = tok;
	out = text_array(items, n);
	free(copy);
	return out;
}

static int prepare(struct worker *w, const char *name, const char *sql, lote_error *err)
{
	PGresult *res = PQprepare(w->conn, name, sql, 0, NULL);
	int rc = 0;
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = lote__fail_pg(err, w->conn, res, name);
	PQclear(res);
	return rc;
}

/* The statements of the hot path, prepared once per connection. */
static int prepare_all(struct worker *w, lote_error *err)
{
	char sql[8192];
	int rc;

	for (int skip = 0; skip < 2; skip++) {
		if (lote__claim_commands_sql(sql, sizeof(sql), skip, w->queues != NULL) < 0)
			return lote__fail(err, LOTE_EINVAL, "claim statement too long");
		if ((rc = prepare(w, skip ? "claim_cs" : "claim_c", sql, err)) < 0)
			return rc;
	}
	rc = prepare(w, "claim_e",
		"WITH t AS (UPDATE lote.events t SET status = 'processing', attempt = t.attempt + 1,"
		"  started_at = clock_timestamp(),"
		"  lease_until = clock_timestamp() + $3::bigint * interval '1 millisecond',"
		"  worker_id = $4"
		" WHERE t.ctid = ANY (ARRAY(SELECT ctid FROM lote.events"
		"  WHERE status = 'pending' AND run_at <= now() AND type = ANY ($1::text[])"
		"  ORDER BY run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED))"
		" RETURNING t.id, t.type, t.institution_id, t.data, t.attempt, t.max_attempts,"
		"  t.entity_type, t.entity_id, t.run_at, t.ctid AS tid)"
		" SELECT * FROM t ORDER BY run_at, id", err);
	if (rc < 0)
		return rc;
	/* Completion, fenced by attempt and claimant. A failed row with
	 * attempts left (and not failed for good) goes back to pending after
	 * the delay its handler asked for, else its back-off; every failed
	 * attempt is kept in lote.attempts. A released row goes back as if
	 * never claimed. The statement returns how many rows it completed. */
	for (int k = 0; k < 2; k++) {
		const char *table = k == 0 ? "lote.commands" : "lote.events";
		const char *kind = k == 0 ? "command" : "event";
		snprintf(sql, sizeof(sql),
			"WITH u AS (SELECT * FROM json_to_recordset($1::json) AS u(id bigint,"
			"   attempt integer, ok boolean, release boolean, permanent boolean,"
			"   retry_ms bigint, error text, started bigint, finished bigint)),"
			" d AS (SELECT u.*, NOT u.ok AND NOT u.release AND NOT u.permanent"
			"   AND t.attempt < t.max_attempts AS again,"
			/* the back-off only for failures: it is not free */
			"   CASE WHEN u.ok OR u.release THEN NULL"
			"   WHEN u.retry_ms IS NOT NULL THEN u.retry_ms * interval '1 millisecond'"
			"   ELSE lote.backoff('%s', t.type, t.attempt, %s) END AS wait"
			"   FROM u JOIN %s t ON t.id = u.id),"
			" c AS (UPDATE %s t SET"
			"  status = CASE WHEN d.ok THEN 'success' WHEN d.release OR d.again THEN 'pending'"
			"    ELSE 'error' END,"
			"  attempt = CASE WHEN d.release THEN t.attempt - 1 ELSE t.attempt END,"
			"  run_at = CASE WHEN d.again THEN now() + d.wait ELSE t.run_at END,"
			"  started_at = CASE WHEN d.release THEN NULL ELSE to_timestamp(d.started / 1e6) END,"
			"  finished_at = CASE WHEN d.ok OR NOT (d.release OR d.again)"
			"    THEN to_timestamp(d.finished / 1e6) END,"
			"  duration = CASE WHEN d.ok OR NOT (d.release OR d.again)"
			"    THEN (d.finished - d.started) * interval '1 microsecond' END,"
			"  error = CASE WHEN d.ok THEN NULL WHEN d.release THEN t.error ELSE d.error END,"
			"  lease_until = NULL,"
			"  worker_id = CASE WHEN d.release THEN NULL ELSE t.worker_id END"
			" FROM d WHERE t.id = d.id AND t.attempt = d.attempt AND t.status = 'processing'"
			"  AND t.worker_id = $2"
			" RETURNING t.id, t.institution_id, t.attempt, t.run_at, t.status, t.started_at,"
			"  t.finished_at, d.error, d.ok, d.release, d.finished),"
			" h AS (INSERT INTO lote.attempts (kind, row_id, institution_id, attempt, outcome,"
			"  retry_at, worker_id, host, pid, started_at, finished_at, error)"
			"  SELECT '%s', c.id, c.institution_id, c.attempt, 'failed',"
			"   CASE WHEN c.status = 'pending' THEN c.run_at END, $2, w.host, w.pid,"
			"   c.started_at, to_timestamp(c.finished / 1e6), c.error"
			"  FROM c LEFT JOIN lote.workers w ON w.id = $2"
			"  WHERE NOT c.ok AND NOT c.release)"
			" SELECT count(*) FROM c",
			kind, k == 0 ? "t.retry" : "NULL::jsonb", table, table, kind);
		if ((rc = prepare(w, k == 0 ? "complete_c" : "complete_e", sql, err)) < 0)
			return rc;
		/* The common case, every row of the group succeeded: no back-off,
		 * no attempts history, arrays instead of JSON (the engine's CPU
		 * per command halved; the server's about the same), and the rows
		 * found by the ctids the claim returned (a TID scan per row
		 * instead of a descent of the primary key). */
		snprintf(sql, sizeof(sql),
			"UPDATE %s t SET status = 'success',"
			"  started_at = to_timestamp(u.started / 1e6),"
			"  finished_at = to_timestamp(u.finished / 1e6),"
			"  duration = (u.finished - u.started) * interval '1 microsecond',"
			"  error = NULL, lease_until = NULL"
			" FROM unnest($1::bigint[], $2::integer[], $3::bigint[], $4::bigint[], $6::tid[])"
			"  AS u(id, attempt, started, finished, tid)"
			/* "IS TRUE" hides the status from the planner's partial
			 * index matching: the generic plan of a plain status test
			 * scanned all of commands_lease (every processing row and
			 * its dead entries) per completion, 3x slower */
			" WHERE t.ctid = u.tid AND t.id = u.id AND t.attempt = u.attempt"
			"  AND (t.status = 'processing') IS TRUE AND t.worker_id = $5",
			table);
		if ((rc = prepare(w, k == 0 ? "succeed_c" : "succeed_e", sql, err)) < 0)
			return rc;
		/* A row written since its claim (its lease renewed by a
		 * heartbeat, or by its own handler) is at another ctid: the
		 * current ones, locked so that nothing moves them again before
		 * the completion. No filter on the table here: with the
		 * fences of the completion in it, a table analysed while no
		 * row was processing looked one row big to the planner, which
		 * then scanned the ids once per row (half a second for 1 000
		 * rows of a 40 000-row table). */
		snprintf(sql, sizeof(sql),
			"SELECT u.i, t.ctid FROM unnest($1::bigint[]) WITH ORDINALITY AS u(id, i)"
			" JOIN %s t ON t.id = u.id FOR UPDATE OF t",
			table);
		if ((rc = prepare(w, k == 0 ? "retid_c" : "retid_e", sql, err)) < 0)
			return rc;
	}
	if (lote__next_due_sql(sql, sizeof(sql), w->queues != NULL) < 0)
		return lote__fail(err, LOTE_EINVAL, "next due statement too long");
	return prepare(w, "next_due", sql, err);
}

static int register_worker(struct worker *w, lote_error *err)
{
	char host[256] = "", pid[16];
	const char *params[5];
	char *id = NULL;
	int rc;

	gethostname(host, sizeof(host) - 1);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	params[0] = host;
	params[1] = pid;
	params[2] = w->queues;
	params[3] = w->command_types;
	params[4] = w->event_types;
	rc = lote__db_value(w->conn,
		"INSERT INTO lote.workers (host, pid, queues, command_types, event_types, backend_pid)"
		" VALUES ($1, $2, $3, $4, $5, pg_backend_pid()) RETURNING id", 5, params, &id, err);
	if (rc < 0)
		return rc;
	w->id = strtoll(id, NULL, 10);
	snprintf(w->id_text, sizeof(w->id_text), "%lld", (long long)w->id);
	free(id);
	return 0;
}

static const char *nul_if_null(const PGresult *res, int r, int c)
{
	return PQgetisnull(res, r, c) ? NULL : PQgetvalue(res, r, c);
}

static int64_t id_or_zero(const PGresult *res, int r, int c)
{
	return PQgetisnull(res, r, c) ? 0 : strtoll(PQgetvalue(res, r, c), NULL, 10);
}

static void fill_row(struct row *row, lote_kind kind, const PGresult *res, int i,
                     struct lote__tx *tx)
{
	lote_ctx *c = &row->ctx;

	memset(row, 0, sizeof(*row));
	lote__ctx_reset(c, tx);
	c->kind = kind;
	c->id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
	c->type = PQgetvalue(res, i, 1);
	c->institution = PQgetvalue(res, i, 2);
	c->data_text = PQgetvalue(res, i, 3);
	c->attempt = atoi(PQgetvalue(res, i, 4));
	c->max_attempts = atoi(PQgetvalue(res, i, 5));
	row->tid = PQgetvalue(res, i, PQnfields(res) - 1); /* tid: the claims' last column */
	if (kind == LOTE_COMMAND) {
		c->event_id = id_or_zero(res, i, 6);
		c->parent_id = id_or_zero(res, i, 7);
		c->original_id = id_or_zero(res, i, 8);
		c->batch_id = id_or_zero(res, i, 9);
	} else {
		c->event_id = c->id;
		c->entity_type = nul_if_null(res, i, 6);
		c->entity_id = nul_if_null(res, i, 7);
	}
}

/* Arms (ms > 0) or disarms (0) the handler timeout. A C handler cannot be
 * interrupted safely, so past its timeout SIGALRM ends the whole worker
 * process (default action); the supervisor recognises the signal, fails the
 * row as timed out and starts a new worker. */
static void arm_timeout(int64_t ms)
{
	struct itimerval it = { 0 };
	it.it_value.tv_sec = ms / 1000;
	it.it_value.tv_usec = (ms % 1000) * 1000;
	setitimer(ITIMER_REAL, &it, NULL);
}

static int call_handler(struct worker *w, const struct lote__handler *h, lote_ctx *c)
{
	int64_t ms = h->opts.timeout_ms > 0 ? h->opts.timeout_ms : w->e->opts.timeout_ms;
	int rc;

	w->e->slots[w->index - 1].timeout_ms = ms;
	if (ms > 0)
		arm_timeout(ms);
	rc = h->fn(c, h->udata);
	if (ms > 0)
		arm_timeout(0);
	return rc;
}

/* Runs the handler(s) of one row inside its savepoint. */
static void run_row(struct worker *w, struct row *row)
{
	lote_ctx *c = &row->ctx;
	int rc = 0;

	struct lote__slot *slot = &w->e->slots[w->index - 1];

	slot->id = c->id;
	slot->kind = c->kind;
	row->started_us = lote__now_us();
	if (c->kind == LOTE_COMMAND) {
		const struct lote__handler *h = lote__engine_command(w->e, c->type);
		rc = h ? call_handler(w, h, c)
		       : lote_ctx_fail(c, "no handler for command type %s", c->type);
	} else {
		const struct lote__event_type *et = lote__engine_event(w->e, c->type);
		if (!et || et->nhandlers == 0)
			rc = lote_ctx_fail(c, "no handler for event type %s", c->type);
		for (int i = 0; et && i < et->nhandlers && rc == 0; i++)
			rc = call_handler(w, &et->handlers[i], c);
	}
	/* A row whose handler cut the connection keeps the slot: the worker
	 * exits and the supervisor blames that row (no endless re-runs). */
	if (PQstatus(w->conn) == CONNECTION_OK)
		slot->kind = 0;
	rc = lote__ctx_finish(c, rc, &row->error);
	row->finished_us = lote__now_us();
	row->ran = true;
	row->ok = rc == 0;
	if (!row->ok) {
		char line[1024];
		log_warn("%s %lld (%s) attempt %d/%d failed: %s",
		         c->kind == LOTE_COMMAND ? "command" : "event", (long long)c->id,
		         c->type, c->attempt, c->max_attempts,
		         lote__log_oneline(line, sizeof(line), row->error ? row->error : "?"));
	} else
		log_debug("%s %lld (%s) ran in %.1f ms",
		          c->kind == LOTE_COMMAND ? "command" : "event", (long long)c->id,
		          c->type, (row->finished_us - row->started_us) / 1000.0);
}

/* The outcomes as the JSON array the completion statement reads. */
static char *outcomes_json(struct row *rows, int n)
{
	json_t *arr = json_array();
	char *out;

	for (int i = 0; i < n; i++) {
		struct row *r = &rows[i];
		if (!r->ran && !r->release)
			continue;
		json_t *o = json_pack("{sI sI sb sb sb ss? sI sI}",
			"id", (json_int_t)r->ctx.id, "attempt", (json_int_t)r->ctx.attempt,
			"ok", r->ok, "release", r->release, "permanent", r->ctx.permanent,
			"error", r->error,
			"started", (json_int_t)r->started_us, "finished", (json_int_t)r->finished_us);
		if (!r->ok && r->ctx.retry_ms >= 0)
			json_object_set_new(o, "retry_ms", json_integer(r->ctx.retry_ms));
		json_array_append_new(arr, o);
	}
	out = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	return out;
}

/* Writes "{a,b,…}" of one integer field of the rows into buf (size bytes,
 * 24 per row and 8 more suffice). */
static void int_array(char *buf, size_t size, struct row *rows, int n, int field)
{
	size_t off = 0;

	buf[off++] = '{';
	for (int i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		long long v = field == 0 ? r->ctx.id : field == 1 ? r->ctx.attempt
		            : field == 2 ? r->started_us : r->finished_us;
		off += snprintf(buf + off, size - off - 2, "%s%lld", i ? "," : "", v);
	}
	buf[off++] = '}';
	buf[off] = '\0';
}

/* Writes {"(p,i)",…} of the n ctids into buf (size bytes, 32 per row and
 * 8 more suffice). */
static void tid_array(char *buf, size_t size, const char *const *tids, int n)
{
	size_t off = 0;

	buf[off++] = '{';
	for (int i = 0; i < n; i++)
		off += snprintf(buf + off, size - off - 2, "%s\"%s\"", i ? "," : "", tids[i]);
	buf[off++] = '}';
	buf[off] = '\0';
}

/* Completion of a group whose rows all ran and succeeded: by the ctids of
 * the claim, then, when rows were written since (none, as a rule), by
 * their current ctids. The same fences both times, so a row is completed
 * once. */
static int succeed(struct worker *w, lote_kind kind, struct row *rows, int n,
                   int *ret_count, lote_error *err)
{
	size_t size = (size_t)n * 24 + 8, tsize = (size_t)n * 32 + 8;
	char *buf = malloc(4 * size + tsize);
	const char **tids = malloc((size_t)n * sizeof(*tids));
	const char *params[6] = { buf, buf + size, buf + 2 * size, buf + 3 * size, w->id_text,
	                          buf + 4 * size };
	PGresult *res, *moved = NULL;
	int rc = 0, count = 0;

	if (!buf || !tids) {
		free(buf);
		free(tids);
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	}
	for (int f = 0; f < 4; f++)
		int_array(buf + f * size, size, rows, n, f);
	for (int i = 0; i < n; i++)
		tids[i] = rows[i].tid;
	for (int pass = 0; pass < 2 && rc == 0 && count < n; pass++) {
		if (pass == 1) {
			moved = PQexecPrepared(w->conn, kind == LOTE_COMMAND ? "retid_c" : "retid_e",
			                       1, params, NULL, NULL, 0);
			if (PQresultStatus(moved) != PGRES_TUPLES_OK) {
				rc = lote__fail_pg(err, w->conn, moved, "completion");
				break;
			}
			for (int k = 0; k < PQntuples(moved); k++) {
				int i = atoi(PQgetvalue(moved, k, 0)) - 1;
				if (i >= 0 && i < n)
					tids[i] = PQgetvalue(moved, k, 1);
			}
		}
		tid_array(buf + 4 * size, tsize, tids, n);
		res = PQexecPrepared(w->conn, kind == LOTE_COMMAND ? "succeed_c" : "succeed_e",
		                     6, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			rc = lote__fail_pg(err, w->conn, res, "completion");
		else
			count += atoi(PQcmdTuples(res));
		PQclear(res);
	}
	PQclear(moved);
	*ret_count = count;
	free(tids);
	free(buf);
	return rc;
}

/* Runs the completion statement; *ret_count gets the rows it updated. */
static int complete(struct worker *w, lote_kind kind, struct row *rows, int n,
                    int *ret_count, lote_error *err)
{
	bool all_ok = true;
	for (int i = 0; i < n && all_ok; i++)
		all_ok = rows[i].ran && rows[i].ok && !rows[i].release;
	if (all_ok)
		return succeed(w, kind, rows, n, ret_count, err);

	char *json = outcomes_json(rows, n);
	const char *params[2] = { json, w->id_text };
	PGresult *res;
	int rc = 0;

	if (!json)
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	res = PQexecPrepared(w->conn, kind == LOTE_COMMAND ? "complete_c" : "complete_e",
	                     2, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		rc = lote__fail_pg(err, w->conn, res, "completion");
	else
		*ret_count = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	free(json);
	return rc;
}

static const char *table_of(lote_kind kind)
{
	return kind == LOTE_COMMAND ? "lote.commands" : "lote.events";
}

/* After members of batches committed: completes the batches whose members
 * are all done (releasing their follow-ups) or marks them failed. Runs after
 * the commit, in its own transaction, so whoever commits the last member
 * sees every member done; lote.batch_check lets only one caller release.
 * If this worker dies before it runs, the supervisor's sweep does it. */
static void batch_check(struct worker *w, struct row *rows, int n)
{
	char list[4096];
	size_t off = 0;
	int found = 0;
	const char *params[1] = { list };
	PGresult *res;

	off += snprintf(list, sizeof(list), "{");
	for (int i = 0; i < n && off < sizeof(list) - 24; i++) {
		int64_t b = rows[i].ctx.batch_id;
		bool seen = false;
		if (!b || !rows[i].ran)
			continue;
		for (int j = 0; j < i && !seen; j++)
			seen = rows[j].ran && rows[j].ctx.batch_id == b;
		if (seen)
			continue;
		off += snprintf(list + off, sizeof(list) - off, "%s%lld", found ? "," : "", (long long)b);
		found++;
	}
	snprintf(list + off, sizeof(list) - off, "}");
	if (found == 0)
		return;
	res = PQexecParams(w->conn, "SELECT lote.batch_check($1::bigint[])", 1, NULL, params,
	                   NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		log_warn("batch check failed (the supervisor's sweep will redo it): %s",
		         PQresultErrorMessage(res));
	PQclear(res);
}

static void committed(struct worker *w, lote_kind kind, int n)
{
	if (n > 0 && w->e->opts.on_committed)
		w->e->opts.on_committed(kind, n, w->e->opts.on_committed_udata);
}

/* A row whose completion the database refused (its outcome could not be
 * written): the rollback took its writes; the refusal becomes the
 * attempt's outcome, so the row is retried by its policy or ends in error
 * instead of staying claimed. */
static void complete_as_failed(struct worker *w, lote_kind kind, struct row *r, const char *why)
{
	lote_error err = { 0 };
	char *msg = NULL;
	int count = 0;

	if (asprintf(&msg, "completion failed: %s", why) < 0)
		return;
	free(r->error);
	r->error = msg;
	r->ok = false;
	r->ctx.retry_ms = -1;
	if (lote__db_exec(w->conn, "BEGIN", &err) < 0 || complete(w, kind, r, 1, &count, &err) < 0 ||
	    lote__db_exec(w->conn, "COMMIT", &err) < 0) {
		log_error("%s %lld: its failed completion could not be written either: %s",
		          kind == LOTE_COMMAND ? "command" : "event", (long long)r->ctx.id, err.message);
		lote__db_try(w->conn, "ROLLBACK");
		return;
	}
	committed(w, kind, count);
	batch_check(w, r, 1);
}

/* Fallback: each row in its own transaction, its row locked and checked
 * first so a row that is no longer ours is skipped. */
static int run_alone(struct worker *w, lote_kind kind, struct row *rows, int n)
{
	int released = 0;

	for (int i = 0; i < n; i++) {
		struct row *r = &rows[i];
		char *v = NULL, id[24], attempt[16];
		const char *params[3] = { id, attempt, w->id_text };
		char sql[256];
		lote_error err = { 0 };
		int count = 0;

		if (r->release) {
			released++;
			continue;
		}
		free(r->error);
		r->error = NULL;
		r->ran = false;
		snprintf(id, sizeof(id), "%lld", (long long)r->ctx.id);
		snprintf(attempt, sizeof(attempt), "%d", r->ctx.attempt);
		snprintf(sql, sizeof(sql),
			"SELECT 1 FROM %s WHERE id = $1 AND attempt = $2 AND worker_id = $3"
			" AND status = 'processing' FOR UPDATE", table_of(kind));
		if (lote__db_exec(w->conn, "BEGIN", &err) < 0 ||
		    lote__db_value(w->conn, sql, 3, params, &v, &err) < 0)
			goto fail;
		if (!v) {
			log_warn("%s %s is no longer ours (lease lost): skipped",
			         kind == LOTE_COMMAND ? "command" : "event", id);
			lote__db_try(w->conn, "ROLLBACK");
			continue;
		}
		free(v);
		w->tx.open = true;
		w->tx.broken = false;
		lote__ctx_done(&r->ctx);
		run_row(w, r);
		if (w->tx.broken || !w->tx.open) {
			/* Nothing of this row can commit atomically now. */
			lote__db_try(w->conn, "ROLLBACK");
			w->tx.open = false;
			if (PQstatus(w->conn) != CONNECTION_OK)
				return LOTE_ECONN;
			if (lote__db_exec(w->conn, "BEGIN", &err) < 0)
				goto fail;
		}
		if (complete(w, kind, r, 1, &count, &err) < 0 ||
		    lote__db_exec(w->conn, "COMMIT", &err) < 0)
			goto fail;
		w->tx.open = false;
		committed(w, kind, count);
		batch_check(w, r, 1);
		continue;
fail:
		log_error("%s %s: %s", kind == LOTE_COMMAND ? "command" : "event", id, err.message);
		lote__db_try(w->conn, "ROLLBACK");
		w->tx.open = false;
		if (PQstatus(w->conn) != CONNECTION_OK)
			return LOTE_ECONN;
		if (r->ran)
			complete_as_failed(w, kind, r, err.message);
	}
	if (released > 0) {
		/* Rows given back on shutdown: only they are in the outcomes now. */
		lote_error err = { 0 };
		int count = 0;
		for (int i = 0; i < n; i++)
			rows[i].ran = false;
		if (complete(w, kind, rows, n, &count, &err) < 0)
			log_error("cannot give back %d unstarted rows: %s", released, err.message);
	}
	return 0;
}

/* Writes "BEGIN; SELECT … FOR UPDATE" for the group into w->begin. */
static void build_begin(struct worker *w, lote_kind kind, struct row *rows, int n)
{
	size_t off = snprintf(w->begin, sizeof(w->begin),
		"BEGIN; SELECT 1 FROM %s WHERE worker_id = %s AND id = ANY ('{",
		table_of(kind), w->id_text);
	for (int i = 0; i < n && off < sizeof(w->begin) - 64; i++)
		off += snprintf(w->begin + off, sizeof(w->begin) - off, "%s%lld",
		                i ? "," : "", (long long)rows[i].ctx.id);
	snprintf(w->begin + off, sizeof(w->begin) - off, "}'::bigint[]) FOR UPDATE;");
}

/* Claims and runs one group; returns how many rows it claimed, or < 0 when
 * the connection is unusable. */
static int run_group(struct worker *w, lote_kind kind)
{
	char limit[16], lease[24];
	const char *params[5];
	PGresult *res;
	struct row *rows;
	int n, count = 0, rc = 0;
	lote_error err = { 0 };
	bool redo = false, skip;

	int asked = w->claim[kind - 1];
	int64_t began_us = lote__now_us();

	snprintf(limit, sizeof(limit), "%d", asked);
	snprintf(lease, sizeof(lease), "%lld", (long long)w->e->opts.lease_ms);
	params[0] = kind == LOTE_COMMAND ? w->command_types : w->event_types;
	params[1] = limit;
	params[2] = lease;
	params[3] = w->id_text;
	params[4] = w->queues;
	skip = kind == LOTE_COMMAND && began_us < w->skip_until_us;
	lote__wake_claiming(w->e->wake, w->index - 1);
	res = PQexecPrepared(w->conn, kind == LOTE_EVENT ? "claim_e" : skip ? "claim_cs" : "claim_c",
	                     kind == LOTE_COMMAND && w->queues ? 5 : 4, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_error("claim failed: %s", PQresultErrorMessage(res));
		PQclear(res);
		lote__wake_claimed(w->e->wake, w->index - 1, 0, asked);
		return PQstatus(w->conn) == CONNECTION_OK ? 0 : LOTE_ECONN;
	}
	n = PQntuples(res);
	/* right after the claim, not after the group: a wake-up that comes
	 * while this group runs is for another worker */
	if (lote__wake_claimed(w->e->wake, w->index - 1, n, asked))
		w->again = true;
	int64_t claimed_us = lote__now_us();
	if (kind == LOTE_COMMAND && !skip && lote__claim_slow(asked, n, claimed_us - began_us)) {
		/* said once; later switches only at debug level */
		lote__log(w->skip_until_us ? LOTE_LOG_DEBUG : LOTE_LOG_INFO,
		          "a claim of %d commands found %d in %lld ms, reading past rows it could"
		          " not take (delayed, of other types or queues, or dead): claiming"
		          " priority by priority for %d s", asked, n,
		          (long long)((claimed_us - began_us) / 1000), LOTE__CLAIM_SKIP_US / 1000000);
		w->skip_until_us = claimed_us + LOTE__CLAIM_SKIP_US;
	}
	if (n == 0) {
		PQclear(res);
		return 0;
	}
	rows = calloc(n, sizeof(*rows));
	if (!rows) {
		PQclear(res);
		return LOTE_ENOMEM;
	}
	w->tx.open = false;
	w->tx.broken = false;
	for (int i = 0; i < n; i++)
		fill_row(&rows[i], kind, res, i, &w->tx);

	if (!w->e->opts.shared_tx) {
		rc = run_alone(w, kind, rows, n);
		goto out;
	}
	build_begin(w, kind, rows, n);
	for (int i = 0; i < n; i++) {
		/* On shutdown, rows not started yet go back untouched. */
		if (w->e->stop || w->tx.broken) {
			rows[i].release = true;
			continue;
		}
		run_row(w, &rows[i]);
	}
	if (w->tx.broken) {
		lote__db_try(w->conn, "ROLLBACK");
		w->tx.open = false;
		redo = true;
	} else if (complete(w, kind, rows, n, &count, &err) < 0) {
		log_warn("group completion failed, running its rows one by one: %s", err.message);
		redo = true;
	} else if (count != n) {
		log_warn("%d of %d rows were no longer ours; running the group's rows one by one",
		         n - count, n);
		redo = true;
	} else if (w->tx.open && lote__db_exec(w->conn, "COMMIT", &err) < 0) {
		log_warn("group commit failed, running its rows one by one: %s", err.message);
		redo = true;
		w->tx.open = false;
	}
	if (!redo) {
		int ran = 0;
		for (int i = 0; i < n; i++)
			ran += rows[i].ran;
		committed(w, kind, ran);
		batch_check(w, rows, n);
	}
	if (redo) {
		if (w->tx.open || PQtransactionStatus(w->conn) != PQTRANS_IDLE)
			lote__db_try(w->conn, "ROLLBACK");
		w->tx.open = false;
		if (PQstatus(w->conn) != CONNECTION_OK) {
			rc = LOTE_ECONN;
			goto out;
		}
		rc = run_alone(w, kind, rows, n);
	}
	w->tx.open = false;
out:
	w->claim[kind - 1] = lote__claim_next(asked, n, lote__now_us() - began_us,
	                                      w->e->opts.batch);
	for (int i = 0; i < n; i++) {
		lote__ctx_done(&rows[i].ctx);
		free(rows[i].error);
	}
	free(rows);
	PQclear(res);
	return rc < 0 ? rc : n;
}

/* Whether this daemon takes commands of queue (len bytes, not
 * terminated): every queue, or one of its list ("default,mail"). */
static bool takes_queue(const lote_engine *e, const char *queue, size_t len)
{
	const char *p = e->queues;

	if (!p || !*p)
		return true;
	while (*p) {
		size_t n;
		p += strspn(p, ", ");
		n = strcspn(p, ", ");
		if (n == len && n > 0 && memcmp(p, queue, n) == 0)
			return true;
		p += n;
	}
	return false;
}

/* Whether a "c:TYPE" or "c:TYPE@QUEUE" wake-up (payload after the "c:")
 * names work this daemon takes; no queue is the default queue. */
static bool takes_commands(const lote_engine *e, const char *payload)
{
	char type[256];
	const char *at = strchr(payload, '@');
	size_t n = at ? (size_t)(at - payload) : strlen(payload);

	if (n >= sizeof(type))
		return false;
	memcpy(type, payload, n);
	type[n] = '\0';
	if (!lote__engine_command(e, type))
		return false;
	return at ? takes_queue(e, at + 1, strlen(at + 1)) : takes_queue(e, "default", 7);
}

/* The kinds a wake-up names for this worker: the payload of NOTIFY
 * lote_wakeup is "c" (commands), "c:TYPE" or "c:TYPE@QUEUE" (commands of
 * that type, in the default queue or that one: none if this daemon does
 * not take them), "e" or "e:TYPE" (events, the same way); anything else
 * names both. */
static int notified_kinds(const struct worker *w, const PGnotify *note)
{
	if (strcmp(note->extra, "c") == 0)
		return 1 << LOTE_COMMAND;
	if (strncmp(note->extra, "c:", 2) == 0)
		return takes_commands(w->e, note->extra + 2) ? 1 << LOTE_COMMAND : 0;
	if (strcmp(note->extra, "e") == 0)
		return 1 << LOTE_EVENT;
	if (strncmp(note->extra, "e:", 2) == 0)
		return lote__engine_event(w->e, note->extra + 2) ? 1 << LOTE_EVENT : 0;
	return 1 << LOTE_COMMAND | 1 << LOTE_EVENT;
}

/* Reads the notifications that have arrived; returns the kinds they name
 * that this daemon handles (a wake-up it cannot act on must not make it
 * the scout: it would hold the role without claiming). */
static int read_notifies(const struct worker *w)
{
	PGnotify *note;
	int kinds = 0;

	while ((note = PQnotifies(w->conn)) != NULL) {
		kinds |= notified_kinds(w, note);
		PQfreemem(note);
	}
	return kinds & ((w->e->ncommands > 0) << LOTE_COMMAND | (w->e->nevents > 0) << LOTE_EVENT);
}

/* Woken at woke_ns (lote__wake_clock) by notifications naming kinds:
 * whether this worker claims for them (wake.h: one of the idle workers
 * does). */
static bool elected(struct worker *w, int kinds, int64_t woke_ns)
{
	return kinds != 0 && lote__wake_elect(w->e->wake, w->index - 1, woke_ns);
}

#define ALL_KINDS (1 << LOTE_COMMAND | 1 << LOTE_EVENT)

/* Sleeps until a NOTIFY this worker is elected to claim for, a call for
 * help from another worker, the next delayed row's due time, or the poll
 * interval, whichever comes first. Returns the kinds to claim (1 <<
 * lote_kind bits), 0 for both after a timeout. */
static int wait_for_work(struct worker *w)
{
	int64_t timeout = w->e->opts.poll_ms;
	const char *params[3] = { w->command_types, w->event_types, w->queues };
	lote__wake *wk = w->e->wake;
	PGresult *res;
	int woken;
	struct pollfd pfd[2];

	/* A wake-up that came in during the empty round: claim again at once,
	 * without asking for the next due time (after a drain, that query
	 * walks the claim index's dead entries: 30-55 ms). */
	PQconsumeInput(w->conn);
	if (elected(w, woken = read_notifies(w), lote__wake_clock()))
		return woken;
	res = PQexecPrepared(w->conn, "next_due", w->queues ? 3 : 2, params, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && !PQgetisnull(res, 0, 0)) {
		int64_t due = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		if (due < timeout)
			timeout = due < 0 ? 0 : due;
	}
	PQclear(res);
	/* A notification read along with that result must not be slept on. */
	if (elected(w, woken = read_notifies(w), lote__wake_clock()))
		return woken;
	if (timeout == 0 || w->e->stop)
		return 0;
	int64_t until = lote__mono_ms() + timeout;
	pfd[0].fd = PQsocket(w->conn);
	pfd[0].events = POLLIN;
	pfd[1].fd = lote__wake_fd(wk, w->index - 1);
	pfd[1].events = POLLIN;
	for (;;) {
		lote__wake_sleep(wk, w->index - 1);
		int ready = poll(pfd, 2, (int)timeout);
		int64_t woke_ns = lote__wake_clock(); /* after any notification came */
		/* input, or a closed or broken connection (POLLHUP, POLLERR):
		 * libpq reads it, and a lost connection ends the wait */
		if (ready > 0 && pfd[0].revents)
			PQconsumeInput(w->conn);
		bool called = lote__wake_rise(wk, w->index - 1);
		woken = read_notifies(w);
		if (called)
			return ALL_KINDS; /* a busy worker found more than it could take */
		if (w->e->stop || PQstatus(w->conn) != CONNECTION_OK || elected(w, woken, woke_ns))
			return woken;
		timeout = until - lote__mono_ms();
		if (timeout <= 0)
			return 0;
		/* another worker is claiming for that wake-up: sleep on */
	}
}

static int setup(struct worker *w, lote_error *err)
{
	lote_engine *e = w->e;
	const char **types;
	char app[128];
	int rc, n = e->ncommands > e->nevents ? e->ncommands : e->nevents;

	snprintf(app, sizeof(app), "%s worker %d", e->name, w->index);
	rc = lote__db_connect(e->conninfo, app, &w->conn, err);
	if (rc < 0)
		return rc;
	types = calloc(n + 1, sizeof(*types));
	if (!types)
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	for (int i = 0; i < e->ncommands; i++)
		types[i] = e->commands[i].type;
	w->command_types = text_array(types, e->ncommands);
	for (int i = 0; i < e->nevents; i++)
		types[i] = e->events[i].type;
	w->event_types = text_array(types, e->nevents);
	free(types);
	w->queues = queue_array(e->queues);
	if (!w->command_types || !w->event_types || (e->queues && *e->queues && !w->queues))
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	w->tx.conn = w->conn;
	w->tx.begin = w->begin;
	for (int k = 0; k < 2; k++)
		w->claim[k] = lote__claim_first(e->opts.batch);
	if ((rc = prepare_all(w, err)) < 0 || (rc = register_worker(w, err)) < 0)
		return rc;
	if (e->opts.listen && (rc = lote__db_exec(w->conn, "LISTEN lote_wakeup", err)) < 0)
		return rc;
	return 0;
}

int lote__worker_main(lote_engine *e, int index)
{
	struct worker w = { .e = e, .index = index };
	lote_error err = { 0 };
	int status = 0;

	if (setup(&w, &err) < 0) {
		/* An unreachable database is the supervisor's to report, once
		 * per outage; anything else is this worker's. */
		if (err.code == LOTE_ECONN || PQstatus(w.conn) != CONNECTION_OK) {
			log_debug("cannot connect: %s", err.message);
			status = LOTE__EXIT_CONNECTION;
		} else {
			log_error("cannot start: %s", err.message);
			status = 1;
		}
		goto out;
	}
	log_debug("ready (worker id %s)", w.id_text);
	/* After a wake-up, only the kinds it named are claimed (a command's
	 * NOTIFY does not pay for an empty claim of events first); then both
	 * again. Work of the other kind that fell due meanwhile is found by
	 * the next round or by wait_for_work's due time, which is 0 then. */
	int kinds = ALL_KINDS;
	while (!e->stop) {
		int got = 0, rc;

		if (e->nevents > 0 && (kinds & 1 << LOTE_EVENT)) {
			rc = run_group(&w, LOTE_EVENT);
			if (rc < 0)
				break;
			got += rc;
		}
		if (e->ncommands > 0 && (kinds & 1 << LOTE_COMMAND) && !e->stop) {
			rc = run_group(&w, LOTE_COMMAND);
			if (rc < 0)
				break;
			got += rc;
		}
		if (PQstatus(w.conn) != CONNECTION_OK)
			break;
		kinds = ALL_KINDS;
		if (got == 0 && w.again)
			w.again = false; /* a wake-up came during our empty claim */
		else if (got == 0) {
			int woken = wait_for_work(&w);
			if (woken)
				kinds = woken;
		}
	}
	if (!e->stop) {
		log_debug("database connection lost: %s", PQerrorMessage(w.conn));
		status = LOTE__EXIT_CONNECTION;
	} else if (w.id) {
		const char *params[1] = { w.id_text };
		PQclear(PQexecParams(w.conn, "DELETE FROM lote.workers WHERE id = $1",
		                     1, NULL, params, NULL, NULL, 0));
	}
out:
	PQfinish(w.conn);
	free(w.command_types);
	free(w.event_types);
	free(w.queues);
	return status;
}
