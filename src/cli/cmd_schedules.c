/* cmd_schedules.c - `lote schedules ls|add|rm`: periodic commands and the
 * built-in routines. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli.h"
#include "cron.h"
#include "error.h"
#include "db.h"
#include "schedule.h"

static const char usage[] =
	"NAME\n"
	"    lote schedules - periodic commands (cron) and the built-in routines\n"
	"\n"
	"SYNOPSIS\n"
	"    lote schedules ls [--json]\n"
	"    lote schedules add NAME CRON TYPE [JSON] [--institution UUID] [--queue Q]\n"
	"                       [--priority N] [--max-attempts N] [--timezone TZ]\n"
	"                       [--missed skip|once|catch_up] [--disabled]\n"
	"    lote schedules rm NAME\n"
	"\n"
	"DESCRIPTION\n"
	"    At every tick of CRON, a command of TYPE with the JSON payload (default\n"
	"    {}) is enqueued, exactly once however many daemons run: the daemon\n"
	"    that claims the tick enqueues the command in the transaction that\n"
	"    advances the schedule. `add` replaces a schedule of the same name.\n"
	"    The same from SQL: lote.schedule(name, cron, type, data, options) and\n"
	"    lote.unschedule(name).\n"
	"\n"
	"    CRON is MINUTE HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK: each field *, N,\n"
	"    N-M or a comma list of them, each optionally /STEP; months jan..dec,\n"
	"    days sun..sat (0 and 7 are Sunday); or @yearly (@annually),\n"
	"    @monthly, @weekly, @daily (@midnight), @hourly. Evaluated in\n"
	"    --timezone (default: the database's). An expression that never\n"
	"    matches (\"* * 31 2 *\") is refused.\n"
	"\n"
	"    Missed ticks (all daemons down): --missed once (default) runs once at\n"
	"    start-up for all of them; skip drops a tick more than a minute late;\n"
	"    catch_up runs every missed tick.\n"
	"\n"
	"    The built-in routines lote.archive (every minute, UTC) and\n"
	"    lote.retention (03:00 in the database's TimeZone at migrate time)\n"
	"    are listed too; change them with UPDATE lote.schedules. ls shows a\n"
	"    zone that is UTC under another name (Etc/UTC ...) as UTC, --json as\n"
	"    stored. Times are ISO 8601, in the session's time zone.\n"
	"\n"
	"OPTIONS\n"
	"    --json             ls: an array of schedule objects\n"
	"    --institution UUID the command's institution (default: nil UUID)\n"
	"    --queue, --priority, --max-attempts   as lote enqueue\n"
	"    --timezone TZ      e.g. Europe/Lisbon\n"
	"    --missed POLICY    skip, once or catch_up\n"
	"    --disabled         add it disabled\n"
	"\n"
	"EXIT STATUS\n"
	"    0 success; 1 failed; 2 bad command line, cron expression or input;\n"
	"    3 database unreachable or not migrated; 4 rm: no such schedule.\n";

/* The zone as the text table shows it: the names tzdata links to Etc/UTC
 * as "UTC". lote.archive is created with 'UTC' and lote.retention with
 * the database's TimeZone at migrate time, often 'Etc/UTC': one zone under
 * two names. Any other zone as stored; --json always as stored. */
static const char *tz_display(const char *tz)
{
	static const char *utc[] = { "Etc/UTC", "Etc/UCT", "Etc/Universal", "Etc/Zulu", "UCT",
	                             "Universal", "Zulu", "UTC" };
	for (size_t i = 0; tz && i < sizeof(utc) / sizeof(utc[0]); i++)
		if (strcasecmp(tz, utc[i]) == 0)
			return "UTC";
	return tz;
}

static int ls(PGconn *conn, bool as_json)
{
	PGresult *res = PQexec(conn,
		"SELECT coalesce(json_agg(s ORDER BY s.name), '[]')::text FROM (SELECT name, cron, timezone,"
		" routine, command_type, data, institution_id, options, missed, enabled, next_run_at,"
		" last_run_at, last_status, last_error, runs FROM lote.schedules) s");
	json_t *arr, *s;
	size_t i;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		cli_error("schedules", "%s", PQresultErrorMessage(res));
		PQclear(res);
		return EXIT_FAIL;
	}
	arr = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
	PQclear(res);
	if (!arr)
		return EXIT_FAIL;
	if (as_json) {
		char *t = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		puts(t);
		free(t);
		json_decref(arr);
		return EXIT_OK;
	}
	printf("%-20s %-15s %-16s %-24s %-8s %-26s %s\n", "NAME", "CRON", "TIMEZONE", "WHAT",
	       "MISSED", "NEXT", "LAST");
	json_array_foreach(arr, i, s) {
		char what[128];
		json_t *rt = json_object_get(s, "routine");
		snprintf(what, sizeof(what), "%s %s", json_is_string(rt) ? "routine" : "command",
		         json_is_string(rt) ? json_string_value(rt)
		                            : json_string_value(json_object_get(s, "command_type")));
		printf("%-20s %-15s %-16s %-24s %-8s %-26s %s%s%s%s\n",
		       json_string_value(json_object_get(s, "name")),
		       json_string_value(json_object_get(s, "cron")),
		       tz_display(json_string_value(json_object_get(s, "timezone"))), what,
		       json_string_value(json_object_get(s, "missed")),
		       json_is_true(json_object_get(s, "enabled"))
		           ? (json_is_string(json_object_get(s, "next_run_at"))
		                  ? json_string_value(json_object_get(s, "next_run_at")) : "(computing)")
		           : "disabled",
		       json_is_string(json_object_get(s, "last_status"))
		           ? json_string_value(json_object_get(s, "last_status")) : "-",
		       json_is_string(json_object_get(s, "last_error")) ? ": " : "",
		       json_is_string(json_object_get(s, "last_error"))
		           ? json_string_value(json_object_get(s, "last_error")) : "",
		       "");
	}
	json_decref(arr);
	return EXIT_OK;
}

int cmd_schedules(int argc, char **argv)
{
	enum { OPT_INST = 256, OPT_QUEUE, OPT_PRIO, OPT_MAX, OPT_TZ, OPT_MISSED, OPT_DISABLED };
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "institution", required_argument, NULL, OPT_INST },
		{ "queue", required_argument, NULL, OPT_QUEUE },
		{ "priority", required_argument, NULL, OPT_PRIO },
		{ "max-attempts", required_argument, NULL, OPT_MAX },
		{ "timezone", required_argument, NULL, OPT_TZ },
		{ "missed", required_argument, NULL, OPT_MISSED },
		{ "disabled", no_argument, NULL, OPT_DISABLED },
		{ 0 },
	};
	bool as_json = false;
	json_t *opts = json_object();
	const char *sub;
	lote_error err = { 0 };
	PGconn *conn = NULL;
	int c, rc = EXIT_OK, npos;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage, stdout);
			json_decref(opts);
			return EXIT_OK;
		case 'j':
			as_json = true;
			break;
		case OPT_INST:
			json_object_set_new(opts, "institution_id", json_string(optarg));
			break;
		case OPT_QUEUE:
			json_object_set_new(opts, "queue", json_string(optarg));
			break;
		case OPT_TZ:
			json_object_set_new(opts, "timezone", json_string(optarg));
			break;
		case OPT_MISSED:
			json_object_set_new(opts, "missed", json_string(optarg));
			break;
		case OPT_DISABLED:
			json_object_set_new(opts, "enabled", json_false());
			break;
		case OPT_PRIO:
		case OPT_MAX: {
			int64_t v;
			int prc = cli_parse_int64(optarg, &v);
			if (prc < 0) {
				cli_error("schedules", prc == CLI_NUM_RANGE ? "--%s: %s is out of range"
				                                            : "--%s must be an integer, got \"%s\"",
				          c == OPT_PRIO ? "priority" : "max-attempts", optarg);
				json_decref(opts);
				return EXIT_USAGE;
			}
			json_object_set_new(opts, c == OPT_PRIO ? "priority" : "max_attempts", json_integer(v));
			break;
		}
		default:
			fputs("see lote schedules --help\n", stderr);
			json_decref(opts);
			return EXIT_USAGE;
		}
	}
	npos = argc - optind;
	sub = npos > 0 ? argv[optind] : "ls";
	if ((strcmp(sub, "ls") == 0 && npos > 1) || (strcmp(sub, "rm") == 0 && npos != 2) ||
	    (strcmp(sub, "add") == 0 && (npos < 4 || npos > 5))) {
		cli_error("schedules", "wrong number of arguments for %s (see lote schedules --help)", sub);
		json_decref(opts);
		return EXIT_USAGE;
	}
	if (strcmp(sub, "ls") != 0 && strcmp(sub, "rm") != 0 && strcmp(sub, "add") != 0) {
		cli_error("schedules", "unknown subcommand \"%s\" (ls, add, rm)", sub);
		json_decref(opts);
		return EXIT_USAGE;
	}
	if (strcmp(sub, "add") == 0) {
		lote__cron cron;
		json_error_t jerr;
		json_t *data;
		if (lote__cron_parse(argv[optind + 2], &cron, &err) < 0) {
			cli_error("schedules", "%s", err.message);
			json_decref(opts);
			return EXIT_USAGE;
		}
		/* "* * 31 2 *" parses but never fires: refused here, not stored
		 * for the daemon to disable. Whether a next run exists does not
		 * depend on the zone: look from now in UTC. */
		{
			time_t now = time(NULL);
			struct tm tm;
			lote__civil from, next;
			gmtime_r(&now, &tm);
			from = (lote__civil){ tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			                      tm.tm_min };
			if (lote__cron_next(&cron, &from, &next, &err) < 0) {
				cli_error("schedules", "\"%s\": %s", argv[optind + 2], err.message);
				json_decref(opts);
				return err.code == LOTE_ENOTFOUND ? EXIT_USAGE : EXIT_FAIL;
			}
		}
		data = npos == 5 ? json_loads(argv[optind + 4], 0, &jerr) : json_object();
		if (!data) {
			cli_error("schedules", "invalid JSON payload: %s", jerr.text);
			json_decref(opts);
			return EXIT_USAGE;
		}
		json_decref(data);
	}
	conn = cli_connect_ready("schedules", NULL);
	if (!conn) {
		json_decref(opts);
		return EXIT_DB;
	}
	if (strcmp(sub, "ls") == 0) {
		rc = ls(conn, as_json);
	} else if (strcmp(sub, "rm") == 0) {
		const char *params[1] = { argv[optind + 1] };
		PGresult *res = PQexecParams(conn, "SELECT lote.unschedule($1)", 1, NULL, params,
		                             NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			lote__fail_pg(&err, conn, res, NULL);
			cli_error("schedules", "%s", err.message);
			rc = strcmp(err.sqlstate, "22023") == 0 ? EXIT_USAGE : EXIT_FAIL;
		} else if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
			cli_error("schedules", "no schedule named \"%s\"", argv[optind + 1]);
			rc = EXIT_NOTFOUND;
		} else {
			printf("removed %s\n", argv[optind + 1]);
		}
		PQclear(res);
	} else {
		char *o = json_dumps(opts, JSON_COMPACT);
		const char *params[5] = { argv[optind + 1], argv[optind + 2], argv[optind + 3],
		                          npos == 5 ? argv[optind + 4] : "{}", o };
		PGresult *res = PQexecParams(conn,
			"SELECT lote.schedule($1, $2, $3, $4::jsonb, $5::jsonb)", 5, NULL, params,
			NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			lote__fail_pg(&err, conn, res, NULL);
			cli_error("schedules", "%s", err.message);
			rc = err.sqlstate[0] == '2' ? EXIT_USAGE : EXIT_FAIL;
		}
		PQclear(res);
		free(o);
		if (rc == EXIT_OK) {
			char *next = NULL;
			const char *np[1] = { argv[optind + 1] };
			if (lote__schedule_init_next(conn, &err) < 0 ||
			    /* as ls prints it (JSON's ISO 8601, as every list) */
			    lote__db_value(conn, "SELECT to_json(next_run_at) #>> '{}' FROM lote.schedules"
			                   " WHERE name = $1", 1, np, &next, &err) < 0) {
				cli_error("schedules", "%s", err.message);
				rc = EXIT_FAIL;
			} else {
				printf("%s: next run at %s\n", argv[optind + 1], next ? next : "(disabled)");
			}
			free(next);
		}
	}
	PQfinish(conn);
	json_decref(opts);
	return rc;
}
