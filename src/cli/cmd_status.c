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

/* Whether two workers handle the same work: queues and types. */
static bool same_work(json_t *a, json_t *b)
{
	static const char *keys[] = { "queues", "command_types", "event_types" };
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
		if (!json_equal(json_object_get(a, keys[k]), json_object_get(b, keys[k])))
			return false;
	return true;
}

/* The live workers grouped by the work they handle (every worker of a
 * daemon handles the same): for each group, one line per host with its
 * pids, then the queues (when not all) and the types, once. */
static void print_workers(json_t *workers)
{
	size_t n = json_array_size(workers);

	for (size_t i = 0; i < n; i++) {
		json_t *w = json_array_get(workers, i);
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = same_work(json_array_get(workers, j), w);
		if (seen)
			continue;
		/* the group's hosts, in order, each with its pids */
		for (size_t h = i; h < n; h++) {
			json_t *hw = json_array_get(workers, h), *pids;
			const char *host = json_string_value(json_object_get(hw, "host"));
			bool host_seen = false;
			char prefix[128];
			if (!same_work(w, hw))
				continue;
			for (size_t j = i; j < h && !host_seen; j++)
				host_seen = same_work(w, json_array_get(workers, j)) &&
				            json_equal(json_object_get(json_array_get(workers, j), "host"),
				                       json_object_get(hw, "host"));
			if (host_seen)
				continue;
			pids = json_array();
			for (size_t j = h; j < n; j++) {
				json_t *pw = json_array_get(workers, j);
				if (same_work(w, pw) &&
				    json_equal(json_object_get(pw, "host"), json_object_get(hw, "host")))
					json_array_append(pids, json_object_get(pw, "pid"));
			}
			snprintf(prefix, sizeof(prefix), "  %s pid%s ", host ? host : "?",
			         json_array_size(pids) == 1 ? "" : "s");
			print_words(prefix, 6, pids);
			json_decref(pids);
		}
		if (json_is_array(json_object_get(w, "queues")))
			print_words("    queues   ", 13, json_object_get(w, "queues"));
		print_words("    commands ", 13, json_object_get(w, "command_types"));
		print_words("    events   ", 13, json_object_get(w, "event_types"));
	}
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
