/* The lote binary as a user meets it: help, version, exit statuses,
 * enqueue/emit from the shell and their errors, status. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

static void help_and_version(void **state)
{
	static const char *cmds[] = { "migrate", "run", "pg", "enqueue", "emit", "status", "bench" };
	char *out = NULL;
	(void)state;
	assert_int_equal(tl_run_lote(NULL, &out, "--help", NULL), 0);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		assert_non_null(strstr(out, cmds[i]));
	assert_non_null(strstr(out, "EXIT STATUS"));
	free(out);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		assert_int_equal(tl_run_lote(NULL, &out, cmds[i], "--help", NULL), 0);
		if (!strstr(out, "NAME") || !strstr(out, "SYNOPSIS"))
			fail_msg("lote %s --help is not a real usage text:\n%s", cmds[i], out);
		free(out);
	}
	assert_int_equal(tl_run_lote(NULL, &out, "--version", NULL), 0);
	assert_non_null(strstr(out, LOTE_VERSION));
	free(out);
	assert_int_equal(tl_run_lote(NULL, &out, "frobnicate", NULL), 2);
	assert_non_null(strstr(out, "unknown command"));
	free(out);
	assert_int_equal(tl_run_lote(NULL, &out, NULL), 2);
	free(out);
}

static void enqueue_and_emit_from_the_shell(void **state)
{
	char *db = tl_fresh_db("cli_enqueue", true);
	PGconn *c = tl_connect(db);
	char *out = NULL;
	(void)state;
	assert_int_equal(tl_run_lote(db, &out, "enqueue", "--queue", "mail", "--priority", "2",
	                             "--max-attempts", "4", "--delay", "5m",
	                             "--institution", "aaaaaaaa-0000-0000-0000-000000000001",
	                             "SendEmail", "{\"to\": \"x@y\"}", NULL), 0);
	long long id = atoll(out);
	free(out);
	assert_string_equal(tl_value(c, "SELECT concat_ws('|', type, data->>'to', queue, priority, max_attempts, institution_id,"
	                                " run_at > now() + interval '4 minutes')"
	                                " FROM lote.commands WHERE id = %lld", id),
	                    "SendEmail|x@y|mail|2|4|aaaaaaaa-0000-0000-0000-000000000001|t");
	assert_int_equal(tl_run_lote(db, &out, "emit", "--json", "Created", "Thing", "7", "{\"a\": 1}", NULL), 0);
	assert_non_null(strstr(out, "{\"id\": "));
	free(out);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.events WHERE type = 'Created' AND entity_id = '7'"
	                           " AND institution_id = '00000000-0000-0000-0000-000000000000'"), 1);

	/* bad input: exit 2, a clear message, nothing written */
	struct { const char *args[6]; const char *want; } bad[] = {
		{ { "enqueue", "T", "{\"a\":", NULL }, "invalid JSON payload" },
		{ { "enqueue", "T", "[1]", NULL }, "must be a JSON object" },
		{ { "enqueue", "--delay", "soon", "T", NULL }, "invalid duration" },
		{ { "enqueue", "--priority", "high", "T", NULL }, "wants an integer" },
		{ { "enqueue", "--queue", "a b", "T", NULL }, "queue must be a name" },
		{ { "enqueue", "--institution", "nope", "T", NULL }, "invalid input syntax for type uuid" },
		{ { "enqueue", "bad type", NULL }, "invalid type" },
		{ { "enqueue", NULL }, "want TYPE" },
		{ { "emit", "T", "Thing", NULL }, "want TYPE ENTITY_TYPE ENTITY_ID" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char **a = bad[i].args;
		int rc = tl_run_lote(db, &out, a[0], a[1], a[2], a[3], a[4], NULL);
		if (rc != 2 || !strstr(out, bad[i].want))
			fail_msg("case %zu: exit %d, output:\n%s\nwanted: %s", i, rc, out, bad[i].want);
		free(out);
	}
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands"), 1);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.events"), 1);
	PQfinish(c);
	free(db);
}

static void unreachable_database_is_exit_3(void **state)
{
	char *out = NULL;
	(void)state;
	assert_int_equal(tl_run_lote("host=/nonexistent port=1 dbname=x", &out, "enqueue", "T", NULL), 3);
	assert_non_null(strstr(out, "cannot connect"));
	free(out);
}

static void status_reports_unhandled_types(void **state)
{
	char *db = tl_fresh_db("cli_status", true);
	PGconn *c = tl_connect(db);
	char *out = NULL;
	(void)state;
	tl_exec(c, "SELECT lote.enqueue('NobodyHandlesThis') FROM generate_series(1, 4)");
	assert_int_equal(tl_run_lote(db, &out, "status", NULL), 0);
	if (!strstr(out, "no handler for command type NobodyHandlesThis") || !strstr(out, "4 pending"))
		fail_msg("status output:\n%s", out);
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "status", "--json", NULL), 0);
	json_t *j = json_loads(out, 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "commands"), "pending")), 4);
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "unhandled"), 0), "type")),
	                    "NobodyHandlesThis");
	json_decref(j);
	free(out);
	/* pending, not dropped, not marked done */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands WHERE status = 'pending'"), 4);
	PQfinish(c);
	free(db);
}

/* show prints durations as milliseconds with at most 3 decimals, and
 * reals as written, not float noise (6.2080000000000002); enqueue stores
 * them as written. */
static void show_prints_durations_in_ms(void **state)
{
	char *db = tl_fresh_db("cli_show", true);
	PGconn *c = tl_connect(db);
	char *out = NULL, id[32];
	(void)state;
	/* the payload is stored as written */
	assert_int_equal(tl_run_lote(db, &out, "enqueue", "Thing", "{\"x\": 0.1}", NULL), 0);
	long long cmd = atoll(out);
	free(out);
	assert_string_equal(tl_value(c, "SELECT data::text FROM lote.commands WHERE id = %lld", cmd),
	                    "{\"x\": 0.1}");
	tl_exec(c, "UPDATE lote.commands SET status = 'success', attempt = 1, started_at = now(),"
	           " finished_at = now(), duration = interval '6.208 ms' WHERE id = %lld", cmd);
	snprintf(id, sizeof(id), "%lld", cmd);
	assert_int_equal(tl_run_lote(db, &out, "commands", "show", id, NULL), 0);
	if (!strstr(out, "duration         6.208 ms\n") || strstr(out, "6.2080") || strstr(out, "0.1000"))
		fail_msg("commands show:\n%s", out);
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "commands", "reprocess", "--status", "success",
	                             "--type", "Thing", "--dry-run", NULL), 0);
	if (!strstr(out, "1 command matched"))
		fail_msg("reprocess --dry-run:\n%s", out);
	free(out);

	long long b = tl_int(c, "SELECT lote.batch('Mails', '[{\"type\": \"M\"}]')");
	tl_exec(c, "UPDATE lote.batches SET status = 'success', started_at = now(), finished_at = now(),"
	           " duration = interval '194.1734 ms' WHERE id = %lld", b);
	snprintf(id, sizeof(id), "%lld", b);
	assert_int_equal(tl_run_lote(db, &out, "batches", "show", id, NULL), 0);
	if (!strstr(out, "duration         194.173 ms\n"))
		fail_msg("batches show:\n%s", out);
	free(out);
	PQfinish(c);
	free(db);
}

/* Cancelling a finished batch is refused like a finished command: a
 * message and exit 1, the batch untouched. */
static void cancel_finished_batch_is_refused(void **state)
{
	char *db = tl_fresh_db("cli_cancel", true);
	PGconn *c = tl_connect(db);
	char *out = NULL, id[32];
	(void)state;
	long long done = tl_int(c, "SELECT lote.batch('Mails', '[{\"type\": \"M\"}, {\"type\": \"M\"}]')");
	tl_exec(c, "UPDATE lote.commands SET status = 'success', finished_at = now() WHERE batch_id = %lld", done);
	tl_exec(c, "UPDATE lote.batches SET status = 'success', finished_at = now() WHERE id = %lld", done);
	snprintf(id, sizeof(id), "%lld", done);
	assert_int_equal(tl_run_lote(db, &out, "batches", "cancel", id, NULL), 1);
	if (!strstr(out, "not cancelled: it has finished (success)"))
		fail_msg("batches cancel of a finished batch:\n%s", out);
	free(out);
	assert_string_equal(tl_value(c, "SELECT status FROM lote.batches WHERE id = %lld", done), "success");

	/* an open batch is cancelled, once */
	long long open = tl_int(c, "SELECT lote.batch('Mails', '[{\"type\": \"M\"}]')");
	snprintf(id, sizeof(id), "%lld", open);
	assert_int_equal(tl_run_lote(db, &out, "batches", "cancel", id, NULL), 0);
	if (!strstr(out, "cancelled (1 command)"))
		fail_msg("batches cancel of an open batch:\n%s", out);
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "batches", "cancel", id, NULL), 1);
	if (!strstr(out, "not cancelled: it was already cancelled"))
		fail_msg("batches cancel again:\n%s", out);
	free(out);
	PQfinish(c);
	free(db);
}

/* A failed command or event that was reprocessed says so in ls: "replaced
 * by N" (the dashboard's Errors page leaves them out); --json has the
 * column as it is. */
static void ls_marks_reprocessed_rows(void **state)
{
	char *db = tl_fresh_db("cli_replaced", true);
	PGconn *c = tl_connect(db);
	char *out = NULL, want[64];
	(void)state;
	long long old = tl_int(c, "SELECT lote.enqueue('SendEmail')");
	long long other = tl_int(c, "SELECT lote.enqueue('SendEmail')");
	tl_exec(c, "UPDATE lote.commands SET status = 'error', attempt = 1, finished_at = now(),"
	           " error = 'smtp down'");
	long long copy = tl_int(c, "SELECT lote.reprocess(%lld)", old);
	tl_exec(c, "UPDATE lote.commands SET status = 'success', finished_at = now() WHERE id = %lld", copy);
	assert_int_equal(tl_run_lote(db, &out, "commands", "ls", "--status", "error", NULL), 0);
	snprintf(want, sizeof(want), "replaced by %lld", copy);
	if (!strstr(out, want) || !strstr(out, "smtp down") || strstr(out, "replaced by 0"))
		fail_msg("commands ls --status error:\n%s", out);
	/* the one not reprocessed is plain */
	char head[32];
	snprintf(head, sizeof(head), "\n%lld ", other);
	const char *line = strstr(out, head);
	if (!line || memmem(line, strcspn(line + 1, "\n"), "replaced", 8))
		fail_msg("commands ls --status error (command %lld):\n%s", other, out);
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "commands", "ls", "--status", "error", "--json", NULL), 0);
	json_t *j = json_loads(out, 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(j, 1), "replaced_by")), copy);
	assert_true(json_is_null(json_object_get(json_array_get(j, 0), "replaced_by")));
	json_decref(j);
	free(out);

	long long ev = tl_int(c, "SELECT lote.emit('00000000-0000-0000-0000-000000000000', 'Thing', '7', 'Created')");
	tl_exec(c, "UPDATE lote.events SET status = 'error', finished_at = now(), error = 'boom'");
	long long evcopy = tl_int(c, "SELECT lote.reprocess_event(%lld)", ev);
	assert_int_equal(tl_run_lote(db, &out, "events", "ls", "--status", "error", NULL), 0);
	snprintf(want, sizeof(want), "replaced by %lld", evcopy);
	if (!strstr(out, want) || !strstr(out, "boom"))
		fail_msg("events ls --status error:\n%s", out);
	free(out);
	PQfinish(c);
	free(db);
}

/* Many workers that handle the same many types: the types once, the
 * workers after, every line within 80 columns; --json as it was. */
static void status_groups_identical_workers(void **state)
{
	char *db = tl_fresh_db("cli_status_workers", true);
	PGconn *c = tl_connect(db);
	char *out = NULL;
	static const char types[] = "BuildReport,ChargeCard,ExportCsv,ImportCsv,IndexSearch,"
	                            "NotifySlack,PurgeCache,RefundCard,RenderPdf,ResizeImage,"
	                            "SendEmail,SendSms,SyncLedger";
	(void)state;
	tl_exec(c, "INSERT INTO lote.workers (host, pid, command_types, event_types)"
	           " SELECT 'app1', 1000 + i, string_to_array('%s', ','), '{Created}'"
	           " FROM generate_series(1, 8) i", types);
	tl_exec(c, "INSERT INTO lote.workers (host, pid, command_types, queues)"
	           " VALUES ('app2', 2001, '{SendEmail}', '{mail}')");
	assert_int_equal(tl_run_lote(db, &out, "status", NULL), 0);
	if (!strstr(out, "workers   9 live") || !strstr(out, "app1") || !strstr(out, "1008") ||
	    !strstr(out, "app2") || !strstr(out, "2001") || !strstr(out, "mail"))
		fail_msg("status:\n%s", out);
	for (const char *l = out; *l; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] != '\0'))
		if (strcspn(l, "\n") > 80)
			fail_msg("status: a line over 80 columns:\n%s", out);
	/* every type of app1's workers once */
	for (const char *t = types; *t; t += strcspn(t, ",") + (t[strcspn(t, ",")] != '\0')) {
		char name[32];
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(t, ","), t);
		const char *first = strstr(out, name);
		if (!first || (strcmp(name, "SendEmail") != 0 && strstr(first + 1, name)))
			fail_msg("status: %s not once:\n%s", name, out);
	}
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "status", "--json", NULL), 0);
	json_t *j = json_loads(out, 0, NULL), *w;
	assert_non_null(j);
	assert_int_equal(json_array_size(json_object_get(j, "workers")), 9);
	w = json_array_get(json_object_get(j, "workers"), 0);
	assert_string_equal(json_string_value(json_object_get(w, "host")), "app1");
	assert_int_equal(json_array_size(json_object_get(w, "command_types")), 13);
	assert_non_null(json_object_get(w, "queues"));
	json_decref(j);
	free(out);
	PQfinish(c);
	free(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(help_and_version),
		cmocka_unit_test(enqueue_and_emit_from_the_shell),
		cmocka_unit_test(unreachable_database_is_exit_3),
		cmocka_unit_test(status_reports_unhandled_types),
		cmocka_unit_test(show_prints_durations_in_ms),
		cmocka_unit_test(cancel_finished_batch_is_refused),
		cmocka_unit_test(ls_marks_reprocessed_rows),
		cmocka_unit_test(status_groups_identical_workers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
