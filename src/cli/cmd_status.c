/* cmd_status.c - `lote status`: what is queued, who works on it, and what
 * waits for a type no running daemon handles. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "error.h"

static const char usage[] =
	"NAME\n"
	"    lote status - queues, workers, and work no daemon handles\n"
	"\n"
	"SYNOPSIS\n"
	"    lote status [--json]\n"
	"\n"
	"DESCRIPTION\n"
	"    Prints the live rows of the events and commands tables by status,\n"
	"    the worker processes that beat in the last minute with the types they\n"
	"    handle, and every type with pending work that no live worker handles\n"
	"    (\"no handler for type X\"): such work is never dropped, it waits.\n"
	"\n"
	"OPTIONS\n"
	"    --json   one JSON object: {\"events\": {...}, \"commands\": {...},\n"
	"             \"workers\": [...], \"unhandled\": [...]}\n"
	"\n"
	"EXIT STATUS\n"
	"    0 always when the database answered, even with unhandled work;\n"
	"    3 database unreachable or not migrated.\n";

/* Runs a query whose single column is a JSON value; returns it parsed (new
 * reference) or NULL after printing the error. */
static json_t *query_json(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	json_t *v = NULL;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		lote_error err = { 0 };
		lote__fail_pg(&err, conn, res, NULL);
		cli_error("status", "%s", err.message);
	} else {
		v = json_loads(PQgetvalue(res, 0, 0), JSON_DECODE_ANY, NULL);
	}
	PQclear(res);
	return v;
}

int cmd_status(int argc, char **argv)
{
	bool as_json;
	PGconn *conn;
	json_t *all;
	int rc;

	if ((rc = cli_json_only("status", argc, argv, usage, &as_json)) >= 0)
		return rc;
	conn = cli_connect_ready("status", NULL);
	if (!conn)
		return EXIT_DB;
	all = query_json(conn,
		"SELECT json_build_object("
		" 'events', (SELECT coalesce(json_object_agg(status, n), '{}') FROM"
		"   (SELECT status, count(*) AS n FROM lote.events GROUP BY status) s),"
		" 'commands', (SELECT coalesce(json_object_agg(status, n), '{}') FROM"
		"   (SELECT status, count(*) AS n FROM lote.commands GROUP BY status) s),"
		" 'workers', (SELECT coalesce(json_agg(w ORDER BY w.host, w.pid), '[]') FROM"
		"   (SELECT id, host, pid, started_at, heartbeat_at, queues, command_types,"
		"           event_types FROM lote.workers"
		"    WHERE heartbeat_at > now() - interval '1 minute') w),"
		" 'unhandled', (SELECT coalesce(json_agg(u ORDER BY u.kind, u.type), '[]') FROM"
		"   (SELECT kind, type, queue, pending,"
		"           extract(epoch FROM now() - oldest)::bigint AS oldest_age_s"
		"    FROM lote.unhandled) u))");
	PQfinish(conn);
	if (!all)
		return EXIT_FAIL;
	if (as_json) {
		cli_print_json(all);
		json_decref(all);
		return EXIT_OK;
	}
	static const char *kinds[] = { "events", "commands" };
	static const char *statuses[] = { "awaiting", "pending", "processing", "success",
	                                  "error", "cancelled" };
	for (int k = 0; k < 2; k++) {
		json_t *m = json_object_get(all, kinds[k]);
		printf("%-9s", kinds[k]);
		for (size_t i = 0; i < 6; i++) {
			json_t *n = json_object_get(m, statuses[i]);
			if (n || (i >= 1 && i <= 4))
				printf("  %s %lld", statuses[i], n ? (long long)json_integer_value(n) : 0LL);
		}
		putchar('\n');
	}
	json_t *workers = json_object_get(all, "workers"), *w;
	size_t i;
	printf("workers   %zu live\n", json_array_size(workers));
	json_array_foreach(workers, i, w) {
		char *ct = json_dumps(json_object_get(w, "command_types"), JSON_COMPACT);
		char *et = json_dumps(json_object_get(w, "event_types"), JSON_COMPACT);
		printf("  %s pid %lld  commands %s  events %s\n",
		       json_string_value(json_object_get(w, "host")),
		       (long long)json_integer_value(json_object_get(w, "pid")), ct, et);
		free(ct);
		free(et);
	}
	json_t *unhandled = json_object_get(all, "unhandled"), *u;
	json_array_foreach(unhandled, i, u) {
		printf("no handler for %s type %s%s%s: %lld pending, oldest %llds ago\n",
		       json_string_value(json_object_get(u, "kind")),
		       json_string_value(json_object_get(u, "type")),
		       json_is_string(json_object_get(u, "queue")) ? " in queue " : "",
		       json_is_string(json_object_get(u, "queue"))
		           ? json_string_value(json_object_get(u, "queue")) : "",
		       (long long)json_integer_value(json_object_get(u, "pending")),
		       (long long)json_integer_value(json_object_get(u, "oldest_age_s")));
	}
	json_decref(all);
	return EXIT_OK;
}
