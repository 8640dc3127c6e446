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
	"    work), and of the archive the estimated rows (from the catalog,\n"
	"    never a count(*)), bytes with indexes, number of partitions, the\n"
	"    Mondays of its oldest and newest week (UTC), and\n"
	"    estimated rows per status. Estimates are as fresh as the last\n"
	"    (auto)analyze of each partition. The same object is lote.stats() in\n"
	"    SQL.\n"
	"\n"
	"OPTIONS\n"
	"    --json   {\"commands\": {\"hot\": {\"rows\": N, \"bytes\": N},\n"
	"             \"archive\": {\"rows_estimate\": N, \"bytes\": N, \"partitions\": N,\n"
	"             \"oldest_day\": \"YYYY-MM-DD\", \"newest_day\": …, \"by_status\":\n"
	"             {\"success\": N, …}}}, \"events\": …, \"batches\": …,\n"
	"             \"attempts\": …}\n"
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

int cmd_stats(int argc, char **argv)
{
	bool as_json;
	PGconn *conn;
	PGresult *res;
	json_t *all;
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
	PQfinish(conn);
	if (!all)
		return EXIT_FAIL;
	if (as_json) {
		char *s = json_dumps(all, JSON_INDENT(2) | JSON_SORT_KEYS);
		puts(s);
		free(s);
		json_decref(all);
		return EXIT_OK;
	}
	static const char *kinds[] = { "events", "commands", "batches", "attempts" };
	printf("%-9s %12s %10s   %14s %10s %6s  %-23s  %s\n", "", "hot rows", "hot size",
	       "archive rows~", "size", "parts", "weeks (Mondays)", "by status~");
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		json_t *t = json_object_get(all, kinds[k]);
		json_t *h = json_object_get(t, "hot"), *a = json_object_get(t, "archive");
		json_t *by = json_object_get(a, "by_status"), *v;
		const char *key;
		char hs[32], as[32], days[32];
		human_bytes((long long)json_integer_value(json_object_get(h, "bytes")), hs, sizeof(hs));
		human_bytes((long long)json_integer_value(json_object_get(a, "bytes")), as, sizeof(as));
		if (json_is_string(json_object_get(a, "oldest_day")))
			snprintf(days, sizeof(days), "%s..%s",
			         json_string_value(json_object_get(a, "oldest_day")),
			         json_string_value(json_object_get(a, "newest_day")));
		else
			snprintf(days, sizeof(days), "-");
		printf("%-9s %12lld %10s   %14lld %10s %6lld  %-23s ", kinds[k],
		       (long long)json_integer_value(json_object_get(h, "rows")), hs,
		       (long long)json_integer_value(json_object_get(a, "rows_estimate")), as,
		       (long long)json_integer_value(json_object_get(a, "partitions")), days);
		json_object_foreach(by, key, v)
			printf(" %s %lld", key, (long long)json_integer_value(v));
		putchar('\n');
	}
	json_decref(all);
	return EXIT_OK;
}
