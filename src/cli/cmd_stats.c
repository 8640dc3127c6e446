/* cmd_stats.c - `lote stats`: hot and archive sizes. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "db.h"

static const char usage[] =
	"NAME\n"
	"    lote stats - sizes of the hot tables and of the archive\n"
	"\n"
	"SYNOPSIS\n"
	"    lote stats [--json]\n"
	"\n"
	"DESCRIPTION\n"
	"    For events, commands, batches and the attempts history: the rows\n"
	"    and bytes of the hot table (exact: it holds only live and recent\n"
	"    work), and of the archive the rows, bytes with indexes, number of\n"
	"    partitions, the Mondays of its oldest and newest week (UTC), and\n"
	"    rows per status. Archive rows are counted exactly in the small\n"
	"    partitions (up to 8 MB each, 32 MB in all, smallest first); a\n"
	"    larger one is estimated, never a count(*): the rows PostgreSQL\n"
	"    counted as written to it, else its rows per page at the last\n"
	"    (auto)analyze times its pages now. Text output marks a figure that\n"
	"    includes an estimate with \"~\". lote.stats() in SQL is the same\n"
	"    object with estimates only and no \"exact\".\n"
	"\n"
	"OPTIONS\n"
	"    --json   {\"commands\": {\"hot\": {\"rows\": N, \"bytes\": N},\n"
	"             \"archive\": {\"rows_estimate\": N, \"exact\": true|false,\n"
	"             \"bytes\": N, \"partitions\": N, \"oldest_day\": \"YYYY-MM-DD\",\n"
	"             \"newest_day\": …, \"by_status\": {\"success\": N, …}}},\n"
	"             \"events\": …, \"batches\": …, \"attempts\": …}; \"exact\":\n"
	"             whether rows_estimate and every by_status figure are counts.\n"
	"\n"
	"EXIT STATUS\n"
	"    0 success; 1 the query failed; 2 bad command line; 3 database\n"
	"    unreachable or not migrated.\n";

static void human_bytes(long long b, char *buf, size_t len)
{
	const char *u[] = { "B", "kB", "MB", "GB", "TB" };
	double v = (double)b;
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

/* Archive partitions are counted exactly up to these sizes (heap pages,
 * 8 kB by default): one partition, and all counted in one call, smallest
 * first. Anything larger keeps the catalog estimate. */
#define EXACT_PARTITION_PAGES 1024
#define EXACT_TOTAL_PAGES 4096

/* Every archive leaf (a week's status partition): its heap pages now and
 * lote.archive_partitions' estimate of its rows (migration 019: the rows
 * counted as written, else the last analyze's rows per page times the
 * pages now, else a guess from the size). */
static const char leaves_sql[] =
	"SELECT p.archive, p.status, p.partition,"
	"       pg_relation_size(to_regclass(format('lote.%I', p.partition)))"
	"         / current_setting('block_size')::bigint AS pages,"
	"       p.rows_estimate AS estimate"
	" FROM lote.archive_partitions p"
	" WHERE p.status IS NOT NULL"
	" ORDER BY pages, p.partition";

/* The rows of partition `part`, or -1 if it could not be counted (dropped
 * by retention meanwhile). */
static long long count_partition(PGconn *conn, const char *part)
{
	char *id = PQescapeIdentifier(conn, part, strlen(part));
	char sql[256];
	long long n = -1;
	if (!id)
		return -1;
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM lote.%s", id);
	PQfreemem(id);
	PGresult *res = PQexec(conn, sql);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return n;
}

/* Replaces the catalog estimates of lote.stats() in `all` with rows
 * counted where cheap: per archive, rows_estimate and by_status, plus
 * "exact". `approx` gets {archive: {status: true}} for each figure that
 * includes an estimate. Returns false if the partitions could not be
 * listed (then `all` is unchanged). */
static bool count_small_partitions(PGconn *conn, json_t *all, json_t *approx)
{
	PGresult *res = PQexec(conn, leaves_sql);
	long long budget = EXACT_TOTAL_PAGES;
	json_t *rows = json_object(), *v;
	const char *archive;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		cli_error("stats", "%s", PQresultErrorMessage(res));
		PQclear(res);
		json_decref(rows);
		return false;
	}
	/* rows = {archive: {status: n}}, summed over its weeks */
	for (int i = 0; i < PQntuples(res); i++) {
		const char *a = PQgetvalue(res, i, 0), *st = PQgetvalue(res, i, 1);
		long long pages = strtoll(PQgetvalue(res, i, 3), NULL, 10);
		long long n = -1;
		if (pages == 0) {
			n = 0; /* no page, no row */
		} else if (pages <= EXACT_PARTITION_PAGES && pages <= budget) {
			budget -= pages;
			n = count_partition(conn, PQgetvalue(res, i, 2));
		}
		if (n < 0) {
			n = strtoll(PQgetvalue(res, i, 4), NULL, 10);
			if (!json_object_get(approx, a))
				json_object_set_new(approx, a, json_object());
			json_object_set_new(json_object_get(approx, a), st, json_true());
		}
		if (!json_object_get(rows, a))
			json_object_set_new(rows, a, json_object());
		json_t *by = json_object_get(rows, a);
		json_object_set_new(by, st, json_integer(json_integer_value(json_object_get(by, st)) + n));
	}
	PQclear(res);
	json_object_foreach(all, archive, v) {
		json_t *a = json_object_get(v, "archive"), *by = json_object_get(rows, archive), *n;
		const char *st;
		json_int_t total = 0;
		if (!json_is_object(a))
			continue;
		/* in lote.stats()'s order of statuses */
		if (!json_is_object(json_object_get(a, "by_status")))
			json_object_set_new(a, "by_status", json_object());
		if (by) {
			json_object_update_existing(json_object_get(a, "by_status"), by);
			json_object_update_missing(json_object_get(a, "by_status"), by);
		}
		json_object_foreach(json_object_get(a, "by_status"), st, n)
			total += json_integer_value(n);
		json_object_set_new(a, "rows_estimate", json_integer(total));
		json_object_set_new(a, "exact", json_boolean(!json_object_get(approx, archive)));
	}
	json_decref(rows);
	return true;
}

int cmd_stats(int argc, char **argv)
{
	bool as_json;
	PGconn *conn;
	PGresult *res;
	json_t *all, *approx;
	int rc;

	if ((rc = cli_json_only("stats", argc, argv, usage, &as_json)) >= 0)
		return rc;
	conn = cli_connect_ready("stats", NULL);
	if (!conn)
		return EXIT_DB;
	res = PQexec(conn, "SELECT lote.stats()::text");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		cli_error("stats", "%s", PQresultErrorMessage(res));
		PQclear(res);
		PQfinish(conn);
		return EXIT_FAIL;
	}
	all = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
	PQclear(res);
	approx = json_object();
	if (!all || !count_small_partitions(conn, all, approx)) {
		PQfinish(conn);
		json_decref(all);
		json_decref(approx);
		return EXIT_FAIL;
	}
	PQfinish(conn);
	if (as_json) {
		char *s = json_dumps(all, JSON_INDENT(2) | JSON_SORT_KEYS);
		puts(s);
		free(s);
		json_decref(all);
		json_decref(approx);
		return EXIT_OK;
	}
	static const char *kinds[] = { "events", "commands", "batches", "attempts" };
	printf("%-9s %12s %10s   %14s %10s %6s  %-23s  %s\n", "", "hot rows", "hot size",
	       "archive rows", "size", "parts", "weeks (Mondays)", "by status (~ estimated)");
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		json_t *t = json_object_get(all, kinds[k]);
		json_t *h = json_object_get(t, "hot"), *a = json_object_get(t, "archive");
		json_t *by = json_object_get(a, "by_status"), *v;
		json_t *est = json_object_get(approx, kinds[k]);
		const char *key;
		char hs[32], as[32], days[32], rows[32];
		human_bytes((long long)json_integer_value(json_object_get(h, "bytes")), hs, sizeof(hs));
		human_bytes((long long)json_integer_value(json_object_get(a, "bytes")), as, sizeof(as));
		if (json_is_string(json_object_get(a, "oldest_day")))
			snprintf(days, sizeof(days), "%s..%s",
			         json_string_value(json_object_get(a, "oldest_day")),
			         json_string_value(json_object_get(a, "newest_day")));
		else
			snprintf(days, sizeof(days), "-");
		snprintf(rows, sizeof(rows), "%s%lld", est ? "~" : "",
		         (long long)json_integer_value(json_object_get(a, "rows_estimate")));
		printf("%-9s %12lld %10s   %14s %10s %6lld  %-23s ", kinds[k],
		       (long long)json_integer_value(json_object_get(h, "rows")), hs, rows, as,
		       (long long)json_integer_value(json_object_get(a, "partitions")), days);
		json_object_foreach(by, key, v)
			printf(" %s %s%lld", key, json_object_get(est, key) ? "~" : "",
			       (long long)json_integer_value(v));
		putchar('\n');
	}
	json_decref(approx);
	json_decref(all);
	return EXIT_OK;
}
