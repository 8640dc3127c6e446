/* bench_db.c - the scratch database of `lote bench` and its report: a
 * human table or JSON records like the peer harness's (see bench.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "cli.h"
#include "db.h"

const char bench_bulk_enqueue_sql[] =
	"SELECT cardinality(lote.enqueue_many('noop',"
	" (SELECT array_agg(jsonb_build_object('i', g)) FROM generate_series(1, $1::int) g)))";

/* conninfo with its database replaced by dbname, as a key='value' string
 * (malloc'd), or NULL when conninfo does not parse. */
static char *conninfo_with_db(const char *conninfo, const char *dbname)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
	size_t cap = 256, len = 0;
	char *out;

	if (!opts)
		return NULL;
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (o->val)
			cap += strlen(o->keyword) + 2 * strlen(o->val) + 8;
	cap += 2 * strlen(dbname) + 16;
	out = malloc(cap);
	if (!out) {
		PQconninfoFree(opts);
		return NULL;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		const char *v = strcmp(o->keyword, "dbname") == 0 ? dbname : o->val;
		if (!v || (!*v && strcmp(o->keyword, "dbname") != 0))
			continue;
		len += (size_t)snprintf(out + len, cap - len, "%s%s='", len ? " " : "", o->keyword);
		for (; *v; v++) {
			if (*v == '\'' || *v == '\\')
				out[len++] = '\\';
			out[len++] = *v;
		}
		out[len++] = '\'';
		out[len] = '\0';
	}
	if (!strstr(out, "dbname="))
		snprintf(out + len, cap - len, "%sdbname='%s'", len ? " " : "", dbname);
	PQconninfoFree(opts);
	return out;
}

/* "database does not exist, skipping" is not news. */
static void quiet_notices(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

int bench_scratch_db(const char *dbname, struct bench_server *srv, PGconn **ret_conn,
                     char **ret_conninfo)
{
	lote_error err = { 0 };
	char *base = NULL, *info = NULL, *ident = NULL, *v = NULL, sql[256];
	PGconn *admin = cli_connect("bench", &base), *conn = NULL;
	int rc = EXIT_DB;

	if (!admin)
		return EXIT_DB;
	PQsetNoticeProcessor(admin, quiet_notices, NULL);
	ident = PQescapeIdentifier(admin, dbname, strlen(dbname));
	if (!ident) {
		cli_error("bench", "bad database name \"%s\"", dbname);
		goto out;
	}
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", ident);
	if (lote__db_exec(admin, sql, &err) < 0)
		goto fail;
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", ident);
	if (lote__db_exec(admin, sql, &err) < 0)
		goto fail;
	info = conninfo_with_db(base, dbname);
	if (!info) {
		cli_error("bench", "cannot parse the database address");
		goto out;
	}
	if (lote__db_connect(info, "lote bench", &conn, &err) < 0 ||
	    lote_migrate(conn, NULL, &err) < 0)
		goto fail;
	if (lote__db_value(conn, "SELECT split_part(current_setting('server_version'), ' ', 1)", 0, NULL, &v, &err) < 0)
		goto fail;
	snprintf(srv->version, sizeof(srv->version), "%s", v ? v : "?");
	free(v);
	v = NULL;
	if (lote__db_value(conn, "SELECT current_setting('synchronous_commit')", 0, NULL, &v,
	                   &err) < 0)
		goto fail;
	snprintf(srv->sync, sizeof(srv->sync), "%s", v ? v : "?");
	snprintf(srv->dbname, sizeof(srv->dbname), "%s", dbname);
	*ret_conn = conn;
	*ret_conninfo = info;
	conn = NULL;
	info = NULL;
	rc = EXIT_OK;
	goto out;
fail:
	cli_error("bench", "scratch database %s: %s", dbname, err.message);
out:
	free(v);
	PQfreemem(ident);
	PQfinish(admin);
	PQfinish(conn);
	free(base);
	free(info);
	return rc;
}

/* Empties the hot tables, then VACUUM ANALYZE and CHECKPOINT, so the
 * measured phase starts from a clean state. */
int bench_settle(PGconn *conn)
{
	static bool warned;
	lote_error err = { 0 };

	if (lote__db_exec(conn, "VACUUM ANALYZE", &err) < 0) {
		cli_error("bench", "%s", err.message);
		return -1;
	}
	if (lote__db_exec(conn, "CHECKPOINT", &err) < 0 && !warned) {
		cli_error("bench", "warning: CHECKPOINT not allowed, measuring without it (%s)",
		          err.message);
		warned = true;
	}
	return 0;
}

int bench_exec(PGconn *conn, const char *sql)
{
	lote_error err = { 0 };
	if (lote__db_exec(conn, sql, &err) < 0) {
		cli_error("bench", "%s", err.message);
		return -1;
	}
	return 0;
}

int bench_reset_tables(PGconn *conn)
{
	if (bench_exec(conn, "TRUNCATE lote.commands, lote.events, lote.batches, lote.batch_progress, lote.workers") < 0)
		return -1;
	return bench_settle(conn);
}

/* Runs sql with one integer parameter; 0 or -1 after printing why. */
int bench_exec_int(PGconn *conn, const char *sql, long n)
{
	char arg[24];
	const char *params[1] = { arg };
	lote_error err = { 0 };

	snprintf(arg, sizeof(arg), "%ld", n);
	if (lote__db_value(conn, sql, 1, params, NULL, &err) < 0) {
		cli_error("bench", "%s", err.message);
		return -1;
	}
	return 0;
}

int bench_prefill(PGconn *conn, const char *sql, long n)
{
	for (long i = 0; i < n; i += PREFILL_CHUNK)
		if (bench_exec_int(conn, sql, n - i < PREFILL_CHUNK ? n - i : PREFILL_CHUNK) < 0)
			return -1;
	return 0;
}

long bench_query_long(PGconn *conn, const char *sql)
{
	lote_error err = { 0 };
	char *v = NULL;
	long n = -1;

	if (lote__db_value(conn, sql, 0, NULL, &v, &err) < 0)
		cli_error("bench", "%s", err.message);
	else
		n = v ? atol(v) : 0;
	free(v);
	return n;
}

/* ---------------------------------------------------------------------
 * Reporting: a human table, or JSON records like the peer harness's.
 */

void bench_emit_json(json_t *rec, const struct bench_server *srv)
{
	char ts[32], *line;
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(rec, "ts", json_string(ts));
	json_object_set_new(rec, "synchronous_commit", json_string(srv->sync));
	json_object_set_new(rec, "server_version", json_string(srv->version));
	line = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
	if (line)
		printf("%s\n", line);
	fflush(stdout);
	free(line);
	json_decref(rec);
}

/* 12345678 -> "12,345,678" */
static const char *thousands(double x, char *buf, size_t len)
{
	char digits[32];
	int n = snprintf(digits, sizeof(digits), "%.0f", x), o = 0;

	for (int i = 0; i < n && (size_t)o < len - 1; i++) {
		if (i > 0 && (n - i) % 3 == 0 && digits[0] != '-' && (size_t)o < len - 2)
			buf[o++] = ',';
		buf[o++] = digits[i];
	}
	buf[o] = '\0';
	return buf;
}

void bench_header_once(const struct bench_opts *o, const struct bench_server *srv)
{
	static bool done;
	if (done || o->json)
		return;
	done = true;
	printf("lote bench: PostgreSQL %s, synchronous_commit %s, scratch database %s\n\n",
	       srv->version, srv->sync, srv->dbname);
	printf("  %-46s %9s %9s %12s\n", "measurement", "n", "seconds", "per second");
}

void bench_rate_row(const struct bench_opts *o, const struct bench_server *srv, const char *what,
                     long n, double secs, const char *note)
{
	char buf[32];
	bench_header_once(o, srv);
	printf("  %-46s %9ld %9.3f %12s%s%s\n", what, n, secs,
	       thousands(secs > 0 ? n / secs : 0, buf, sizeof(buf)), note ? "  " : "",
	       note ? note : "");
	fflush(stdout);
}

json_t *bench_rate_record(const char *bench, long n, double secs)
{
	json_int_t rate = (json_int_t)bench_round_pos(secs > 0 ? n / secs : 0);
	/* jobs_per_sec is the peer harness's name, commands_per_sec lote's */
	return json_pack("{s:s, s:s, s:I, s:f, s:I, s:I}", "peer", "lote", "bench", bench,
	                 "n", (json_int_t)n, "seconds", bench_round3(secs),
	                 "jobs_per_sec", rate, "commands_per_sec", rate);
}

