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
	"    the worker processes that beat in the last minute (host and pids)\n"
	"    grouped by what they handle, printed once per group (queues when\n"
	"    not all, command and event types), and every type with pending work\n"
	"    that no live worker handles (\"no handler for type X\"): such work\n"
	"    is never dropped, it waits.\n"
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

/* Prints prefix, then the words (strings or integers) of list separated
 * by spaces, "-" for none, going on under column cont when a line would
 * pass 80 columns. */
static void print_words(const char *prefix, int cont, const json_t *list)
{
	int col = printf("%s", prefix), n = 0;
	size_t i;
	json_t *v;

	json_array_foreach(list, i, v) {
		char num[24];
		const char *word = json_is_string(v) ? json_string_value(v) : num;
		int len;
		if (!json_is_string(v))
			snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
		len = (int)strlen(word);
		if (n > 0 && col + 1 + len > 80)
			col = printf("\n%*s", cont, "") - 1;
		else if (n > 0)
			col += printf(" ");
		col += printf("%s", word);
		n++;
	}
	printf("%s\n", n ? "" : "-");
}

/* The live workers grouped by the work they handle (every worker of a
 * daemon handles the same): for each group, one line per host with its
 * pids, then the queues (when not all) and the types, once. Groups,
 * hosts and pids keep the order they come in (jansson objects keep
 * insertion order). */
static void print_workers(json_t *workers)
{
	/* the work handled, as JSON -> {"w": its first worker, "hosts": {host: [pid...]}} */
	json_t *groups = json_object(), *w, *g, *hosts, *pids;
	const char *key, *host;
	size_t i;

	json_array_foreach(workers, i, w) {
		json_t *work = json_pack("{s:O?, s:O?, s:O?}", "queues", json_object_get(w, "queues"),
		                         "command_types", json_object_get(w, "command_types"),
		                         "event_types", json_object_get(w, "event_types"));
		char *k = work ? json_dumps(work, JSON_COMPACT) : NULL;
		json_decref(work);
		if (!k)
			continue;
		if (!(g = json_object_get(groups, k))) {
			g = json_pack("{s:O, s:{}}", "w", w, "hosts");
			json_object_set_new(groups, k, g);
		}
		free(k);
		hosts = json_object_get(g, "hosts");
		host = json_string_value(json_object_get(w, "host"));
		if (!host)
			host = "?";
		if (!(pids = json_object_get(hosts, host))) {
			pids = json_array();
			json_object_set_new(hosts, host, pids);
		}
		json_array_append(pids, json_object_get(w, "pid"));
	}
	json_object_foreach(groups, key, g) {
		json_t *first = json_object_get(g, "w");
		json_object_foreach(json_object_get(g, "hosts"), host, pids) {
			char prefix[128];
			snprintf(prefix, sizeof(prefix), "  %s pid%s ", host,
			         json_array_size(pids) == 1 ? "" : "s");
			print_words(prefix, 6, pids);
		}
		if (json_is_array(json_object_get(first, "queues")))
			print_words("    queues   ", 13, json_object_get(first, "queues"));
		print_words("    commands ", 13, json_object_get(first, "command_types"));
		print_words("    events   ", 13, json_object_get(first, "event_types"));
	}
	json_decref(groups);
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
	json_t *workers = json_object_get(all, "workers");
	size_t i;
	printf("workers   %zu live\n", json_array_size(workers));
	print_workers(workers);
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
