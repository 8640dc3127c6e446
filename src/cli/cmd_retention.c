/* cmd_retention.c - `lote retention`: drop archive partitions past their
 * retention; show and set the retention per status. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "cli.h"
#include "error.h"

static const char usage[] =
	"NAME\n"
	"    lote retention - drop archived work past its retention\n"
	"\n"
	"SYNOPSIS\n"
	"    lote retention [run] [--dry-run] [--json]\n"
	"    lote retention show [--json]\n"
	"    lote retention set SETTING DURATION\n"
	"\n"
	"DESCRIPTION\n"
	"    The archive is partitioned by UTC week (Monday to Sunday) and,\n"
	"    within a week, by status, so retention drops whole tables, never\n"
	"    rows. A week's partition of a status is dropped once the whole week\n"
	"    is older than that status's retention (defaults: success 30d, error\n"
	"    90d, cancelled 30d), so a row is kept for its retention and at most\n"
	"    7 days more. The attempts history of archived rows goes with them.\n"
	"    Each drop is its own transaction and waits at most 5s for its lock\n"
	"    (a partition busy with a long query is left for the next run). The\n"
	"    daemon runs this nightly (schedule lote.retention, 03:00 in the\n"
	"    database's time zone).\n"
	"\n"
	"    run      drop what is due (the default); with --dry-run only list it\n"
	"    show     the settings of lote.archive_settings\n"
	"    set      change one: success, error or cancelled (retention of that\n"
	"             status, at least 1d), archive-after (age before archiving),\n"
	"             error-batch-after (how long a batch in error stays hot)\n"
	"\n"
	"OPTIONS\n"
	"    --dry-run   list the partitions that would be dropped\n"
	"    --json      run: {\"dry_run\": …, \"partitions\": [{\"archive\", \"day\"\n"
	"                (the week's Monday), \"status\", \"partition\", \"rows_estimate\",\n"
	"                \"bytes\", \"dropped\"}]}; show: the settings as an object\n"
	"\n"
	"EXIT STATUS\n"
	"    0 success; 1 a drop failed; 2 bad command line or value; 3 database\n"
	"    unreachable or not migrated.\n";

static const struct { const char *name, *column; int64_t min_ms; } settings[] = {
	{ "success", "retention_success", 86400000 },
	{ "error", "retention_error", 86400000 },
	{ "cancelled", "retention_cancelled", 86400000 },
	{ "archive-after", "archive_after", 0 },
	{ "error-batch-after", "error_batch_after", 0 },
};

static int show(PGconn *conn, bool as_json)
{
	PGresult *res = PQexec(conn,
		"SELECT row_to_json(s)::text FROM (SELECT"
		" extract(epoch FROM archive_after)::bigint * 1000 AS archive_after_ms,"
		" extract(epoch FROM error_batch_after)::bigint * 1000 AS error_batch_after_ms,"
		" chunk_rows, partitions_ahead,"
		" extract(epoch FROM retention_success)::bigint * 1000 AS retention_success_ms,"
		" extract(epoch FROM retention_error)::bigint * 1000 AS retention_error_ms,"
		" extract(epoch FROM retention_cancelled)::bigint * 1000 AS retention_cancelled_ms"
		" FROM lote.archive_settings) s");
	json_t *j;
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		cli_error("retention", "%s", PQresultErrorMessage(res));
		PQclear(res);
		return EXIT_FAIL;
	}
	j = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
	PQclear(res);
	if (!j)
		return EXIT_FAIL;
	if (as_json) {
		char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		puts(s);
		free(s);
	} else {
		static const char *keys[][2] = {
			{ "retention_success_ms", "retention success" },
			{ "retention_error_ms", "retention error" },
			{ "retention_cancelled_ms", "retention cancelled" },
			{ "archive_after_ms", "archive after" },
			{ "error_batch_after_ms", "error batch after" },
		};
		char buf[32];
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			printf("%-20s %s\n", keys[i][1],
			       lote_duration_format(json_integer_value(json_object_get(j, keys[i][0])),
			                            buf, sizeof(buf)));
		printf("%-20s %lld rows\n", "chunk", (long long)json_integer_value(json_object_get(j, "chunk_rows")));
		printf("%-20s %lld days\n", "partitions ahead",
		       (long long)json_integer_value(json_object_get(j, "partitions_ahead")));
	}
	json_decref(j);
	return EXIT_OK;
}

static int set(PGconn *conn, const char *name, const char *value)
{
	lote_error err = { 0 };
	int64_t ms;
	char sql[256], msbuf[32];
	const char *params[1] = { msbuf };
	PGresult *res;

	for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
		if (strcmp(name, settings[i].name) != 0)
			continue;
		if (lote_duration_parse(value, &ms, &err) < 0) {
			cli_error("retention", "%s: %s", name, err.message);
			return EXIT_USAGE;
		}
		if (ms < settings[i].min_ms) {
			cli_error("retention", "%s must be at least 1d, got %s",
			          name, value);
			return EXIT_USAGE;
		}
		snprintf(msbuf, sizeof(msbuf), "%lld", (long long)ms);
		snprintf(sql, sizeof(sql),
		         "UPDATE lote.archive_settings SET %s = $1::bigint * interval '1 millisecond'",
		         settings[i].column);
		res = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			cli_error("retention", "%s", PQresultErrorMessage(res));
			PQclear(res);
			return EXIT_FAIL;
		}
		PQclear(res);
		printf("%s = %s\n", name, value);
		return EXIT_OK;
	}
	cli_error("retention", "unknown setting \"%s\" (success, error, cancelled, archive-after, error-batch-after)",
	          name);
	return EXIT_USAGE;
}

int cmd_retention(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool as_json = false, dry_run = false;
	const char *sub = "run";
	lote__retention_item *items = NULL;
	lote_error err = { 0 };
	PGconn *conn;
	int c, n = 0, rc, dropped = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage, stdout);
			return EXIT_OK;
		case 'n':
			dry_run = true;
			break;
		case 'j':
			as_json = true;
			break;
		default:
			fputs("see lote retention --help\n", stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc)
		sub = argv[optind++];
	if (strcmp(sub, "set") == 0 && argc - optind != 2) {
		cli_error("retention", "usage: lote retention set SETTING DURATION");
		return EXIT_USAGE;
	}
	if (strcmp(sub, "set") != 0 && optind < argc) {
		cli_error("retention", "unexpected argument \"%s\"", argv[optind]);
		return EXIT_USAGE;
	}
	if (strcmp(sub, "run") != 0 && strcmp(sub, "show") != 0 && strcmp(sub, "set") != 0) {
		cli_error("retention", "unknown subcommand \"%s\" (run, show, set)", sub);
		return EXIT_USAGE;
	}
	conn = cli_connect_ready("retention", NULL);
	if (!conn)
		return EXIT_DB;
	if (strcmp(sub, "show") == 0) {
		rc = show(conn, as_json);
		PQfinish(conn);
		return rc;
	}
	if (strcmp(sub, "set") == 0) {
		rc = set(conn, argv[optind], argv[optind + 1]);
		PQfinish(conn);
		return rc;
	}
	rc = lote__retention_run(conn, dry_run, &items, &n, &err);
	PQfinish(conn);
	if (rc < 0) {
		cli_error("retention", "%s", err.message);
		return cli_exit_for(rc);
	}
	if (as_json) {
		json_t *arr = json_array(), *j;
		char *s;
		for (int i = 0; i < n; i++)
			json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:b}",
				"archive", items[i].archive, "day", items[i].day, "status", items[i].status,
				"partition", items[i].partition, "rows_estimate", (json_int_t)items[i].rows_estimate,
				"bytes", (json_int_t)items[i].bytes, "dropped", items[i].dropped));
		j = json_pack("{s:b, s:o}", "dry_run", dry_run, "partitions", arr);
		s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
		puts(s);
		free(s);
		json_decref(j);
	} else {
		for (int i = 0; i < n; i++) {
			printf("%s %s  %s %s %s  ~%lld row%s\n",
			       dry_run ? "would drop" : items[i].dropped ? "dropped" : "busy, kept",
			       items[i].partition, items[i].archive, items[i].day, items[i].status,
			       (long long)items[i].rows_estimate, items[i].rows_estimate == 1 ? "" : "s");
			dropped += items[i].dropped;
		}
		if (dry_run)
			printf("%d partition%s past retention\n", n, n == 1 ? "" : "s");
		else
			printf("dropped %d partition%s\n", dropped, dropped == 1 ? "" : "s");
	}
	free(items);
	return EXIT_OK;
}
