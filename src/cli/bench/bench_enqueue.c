/* bench_enqueue.c - `lote bench enqueue`: one command per transaction
 * from one client, and in bulk (one statement). */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "cli.h"

static int enqueue_single(PGconn *conn, long n, int warmup, double *ret_secs)
{
	PGresult *res = PQprepare(conn, "bench_enqueue", "SELECT lote.enqueue($1, $2::jsonb)",
	                          2, NULL);
	double t0 = 0;
	int rc = 0;

	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		cli_error("bench", "%s", PQresultErrorMessage(res));
		PQclear(res);
		return -1;
	}
	PQclear(res);
	for (long i = -warmup; i < n && rc == 0; i++) {
		char payload[48];
		const char *params[2] = { "noop", payload };

		if (i == 0)
			t0 = bench_mono_s();
		snprintf(payload, sizeof(payload), "{\"i\": %ld}", i);
		res = PQexecPrepared(conn, "bench_enqueue", 2, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			cli_error("bench", "enqueue: %s", PQresultErrorMessage(res));
			rc = -1;
		}
		PQclear(res);
	}
	*ret_secs = bench_mono_s() - t0;
	PQclear(PQexec(conn, "DEALLOCATE bench_enqueue"));
	return rc;
}

/* n rows in statements of per_stmt rows (0: all in one), each statement
 * its own transaction; the clock covers the round trips. */
static int timed_int(PGconn *conn, const char *sql, long n, long per_stmt, double *ret_secs)
{
	double t0 = bench_mono_s();
	int rc = 0;

	if (per_stmt <= 0)
		per_stmt = n;
	for (long done = 0; done < n && rc == 0; done += per_stmt)
		rc = bench_exec_int(conn, sql, n - done < per_stmt ? n - done : per_stmt);
	*ret_secs = bench_mono_s() - t0;
	return rc;
}

static const char bulk_insert_sql[] =
	"INSERT INTO lote.commands (institution_id, type, data)"
	" SELECT '" NIL_UUID "', 'noop', jsonb_build_object('i', g)"
	" FROM generate_series(1, $1::int) g";

/* One bulk enqueue case: a 10-row warm-up, then n rows timed on empty
 * tables in statements of per_stmt rows, reported as bench (JSON) or
 * label. */
static int bulk_case(const struct bench_opts *o, PGconn *conn, const struct bench_server *srv,
                     const char *sql, long n, long per_stmt, const char *bench,
                     const char *label)
{
	double secs;

	if (bench_reset_tables(conn) < 0 || bench_exec_int(conn, sql, 10) < 0 ||
	    bench_reset_tables(conn) < 0 || timed_int(conn, sql, n, per_stmt, &secs) < 0)
		return -1;
	if (o->json) {
		json_t *rec = bench_rate_record(bench, n, secs);
		json_object_set_new(rec, "rows_per_statement", json_integer(per_stmt > 0 ? per_stmt : n));
		bench_emit_json(rec, srv);
	} else {
		bench_rate_row(o, srv, label, n, secs, NULL);
	}
	return 0;
}

int bench_enqueue(const struct bench_opts *o, PGconn *conn, const struct bench_server *srv)
{
	long n = o->n ? o->n : 20000;
	double secs;

	/* warm-up of the single path happens inside enqueue_single */
	if (bench_reset_tables(conn) < 0 || enqueue_single(conn, 0, WARMUP_SINGLE, &secs) < 0 ||
	    bench_reset_tables(conn) < 0 || enqueue_single(conn, n, 1, &secs) < 0)
		return EXIT_FAIL;
	if (o->json)
		bench_emit_json(bench_rate_record("enqueue-single", n, secs), srv);
	else
		bench_rate_row(o, srv, "enqueue, one by one (1 client, 1 txn each)", n, secs, NULL);

	if (bulk_case(o, conn, srv, bench_bulk_enqueue_sql, n, 0, "enqueue-bulk",
	              "enqueue, bulk: lote.enqueue_many, 1 call") < 0 ||
	    bulk_case(o, conn, srv, bench_bulk_enqueue_sql, n, 100, "enqueue-many-100",
	              "enqueue, lote.enqueue_many of 100, 1 txn each") < 0 ||
	    bulk_case(o, conn, srv, bulk_insert_sql, n, 0, "enqueue-bulk-insert",
	              "enqueue, bulk: raw INSERT ... SELECT") < 0)
		return EXIT_FAIL;
	return EXIT_OK;
}
