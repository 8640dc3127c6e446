/* The lote binary as a user meets it: help, version, exit statuses,
 * enqueue/emit from the shell and their errors, status. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

/* Like tl_run_lote (at most 8 arguments), with len bytes of input (NULs
 * too) on standard input. */
static int run_lote_stdin(const char *db, const char *input, size_t len, char **ret_output,
                          const char *a0, const char *a1, const char *a2, const char *a3,
                          const char *a4)
{
	char *in = tl_tmp_path("stdin"), *outp = tl_tmp_path("stdout");
	FILE *f = fopen(in, "w");
	int st = 0;
	pid_t pid;

	assert_non_null(f);
	assert_int_equal(fwrite(input, 1, len, f), len);
	fclose(f);
	unlink(outp);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		const char *argv[] = { tl_lote_bin(), a0, a1, a2, a3, a4, NULL };
		int i = open(in, O_RDONLY), o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		setenv("LOTE_DATABASE_URL", db, 1);
		dup2(i, 0);
		dup2(o, 1);
		dup2(o, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	f = fopen(outp, "r");
	*ret_output = calloc(1, 1 << 16);
	if (f) {
		size_t n = fread(*ret_output, 1, (1 << 16) - 1, f);
		(*ret_output)[n] = '\0';
		fclose(f);
	}
	unlink(in);
	unlink(outp);
	free(in);
	free(outp);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

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

/* Each subcommand of events/commands/batches refuses the options it does
 * not use (exit 2, nothing done): above all --dry-run with ids, which
 * reprocessed and cancelled for real. */
static void unused_options_are_refused(void **state)
{
	char *db = tl_fresh_db("cli_unused_opts", true);
	PGconn *c = tl_connect(db);
	char *out = NULL, failed[32], pending[32], batch[32];
	(void)state;
	long long f = tl_int(c, "SELECT lote.enqueue('T')");
	long long p = tl_int(c, "SELECT lote.enqueue('T')");
	long long b = tl_int(c, "SELECT lote.batch('Mails', '[{\"type\": \"M\"}]')");
	tl_exec(c, "UPDATE lote.commands SET status = 'error', attempt = 1, finished_at = now(),"
	           " error = 'boom' WHERE id = %lld", f);
	snprintf(failed, sizeof(failed), "%lld", f);
	snprintf(pending, sizeof(pending), "%lld", p);
	snprintf(batch, sizeof(batch), "%lld", b);
	const char *state_sql = "SELECT string_agg(concat_ws(':', id, status, replaced_by), ',' ORDER BY id)"
	                        " FROM lote.commands";
	char *before = strdup(tl_value(c, "%s", state_sql));

	struct { const char *args[6]; const char *want; } bad[] = {
		{ { "commands", "reprocess", "--dry-run", failed, NULL }, "--dry-run goes with filters" },
		{ { "commands", "reprocess", failed, "--dry-run", "--json", NULL }, "--dry-run goes with filters" },
		{ { "commands", "cancel", "--dry-run", pending, NULL }, "cancel does not take --dry-run" },
		{ { "commands", "cancel", "--limit", "5", pending, NULL }, "cancel does not take --limit" },
		{ { "commands", "cancel", "--status", "pending", pending, NULL }, "cancel does not take --status" },
		{ { "commands", "show", failed, "--status", "error", NULL }, "show does not take --status" },
		{ { "commands", "reprocess", "--status", "error", "--limit", "3" }, "reprocess does not take --limit" },
		{ { "commands", "reprocess", failed, "--cursor", "9", NULL }, "reprocess does not take --cursor" },
		{ { "commands", "ls", "--dry-run", NULL }, "ls does not take --dry-run" },
		{ { "events", "ls", "--dry-run", NULL }, "ls does not take --dry-run" },
		{ { "batches", "cancel", "--type", "Mails", batch, NULL }, "cancel does not take --type" },
		{ { "batches", "show", batch, "--limit", "2", NULL }, "show does not take --limit" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char **a = bad[i].args;
		int rc = tl_run_lote(db, &out, a[0], a[1], a[2], a[3], a[4], a[5], NULL);
		if (rc != 2 || !strstr(out, bad[i].want))
			fail_msg("case %zu (%s %s %s): exit %d, output:\n%s\nwanted: %s", i, a[0], a[1], a[2], rc,
			         out, bad[i].want);
		free(out);
		assert_string_equal(tl_value(c, "%s", state_sql), before);
		assert_string_equal(tl_value(c, "SELECT status FROM lote.batches WHERE id = %lld", b), "pending");
	}
	/* what they take still works: a dry run with filters changes nothing */
	assert_int_equal(tl_run_lote(db, &out, "commands", "reprocess", "--status", "error", "--dry-run",
	                             "--json", NULL), 0);
	assert_non_null(strstr(out, "\"dry_run\": true"));
	free(out);
	assert_string_equal(tl_value(c, "%s", state_sql), before);
	assert_int_equal(tl_run_lote(db, &out, "commands", "show", failed, "--json", NULL), 0);
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "commands", "ls", "--status", "error", "--limit", "1", NULL), 0);
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "commands", "cancel", pending, "--json", NULL), 0);
	free(out);
	assert_string_equal(tl_value(c, "SELECT status FROM lote.commands WHERE id = %lld", p), "cancelled");
	free(before);
	PQfinish(c);
	free(db);
}

/* A NUL byte on standard input is refused with its offset: it cut the
 * payload short ({"a":1} stored, the rest dropped) or gave a misleading
 * "premature end of input". */
static void payload_with_nul_byte_is_refused(void **state)
{
	char *db = tl_fresh_db("cli_nul", true);
	PGconn *c = tl_connect(db);
	char *out = NULL;
	static const char garbage[] = "{\"a\":1}\0garbage", inside[] = "{\"a\":\"x\0y\"}";
	(void)state;
	int rc = run_lote_stdin(db, garbage, sizeof(garbage) - 1, &out, "enqueue", "T", "-", NULL, NULL);
	if (rc != 2 || !strstr(out, "the payload contains a NUL byte at offset 7"))
		fail_msg("enqueue, NUL after the object: exit %d\n%s", rc, out);
	free(out);
	rc = run_lote_stdin(db, inside, sizeof(inside) - 1, &out, "enqueue", "T", "-", NULL, NULL);
	if (rc != 2 || !strstr(out, "the payload contains a NUL byte at offset 7"))
		fail_msg("enqueue, NUL inside a string: exit %d\n%s", rc, out);
	free(out);
	rc = run_lote_stdin(db, garbage, sizeof(garbage) - 1, &out, "emit", "Created", "Thing", "7", "-");
	if (rc != 2 || !strstr(out, "the payload contains a NUL byte at offset 7"))
		fail_msg("emit, NUL after the object: exit %d\n%s", rc, out);
	free(out);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands"), 0);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.events"), 0);
	/* a clean payload on stdin still goes in, all of it */
	rc = run_lote_stdin(db, "{\"a\": 1, \"b\": 2}\n", 17, &out, "enqueue", "T", "-", NULL, NULL);
	assert_int_equal(rc, 0);
	free(out);
	assert_string_equal(tl_value(c, "SELECT data::text FROM lote.commands"), "{\"a\": 1, \"b\": 2}");
	PQfinish(c);
	free(db);
}

/* Numbers past int64 are refused (exit 2), not clamped to
 * 9223372036854775807 ("no command 9223372036854775807", exit 4). */
static void numbers_past_int64_are_refused(void **state)
{
	char *db = tl_fresh_db("cli_erange", true);
	PGconn *c = tl_connect(db);
	char *out = NULL;
	static const char big[] = "9999999999999999999";
	(void)state;
	struct { const char *args[5]; const char *want; } bad[] = {
		{ { "commands", "show", big, NULL }, "out of range" },
		{ { "commands", "reprocess", big, NULL }, "out of range" },
		{ { "commands", "cancel", big, NULL }, "out of range" },
		{ { "events", "show", big, NULL }, "out of range" },
		{ { "batches", "cancel", big, NULL }, "out of range" },
		{ { "tokens", "revoke", big, NULL }, "out of range" },
		{ { "enqueue", "--priority", big, "T", NULL }, "--priority: 9999999999999999999 is out of range" },
		{ { "enqueue", "--max-attempts", "-99999999999999999999", "T", NULL }, "out of range" },
		{ { "commands", "show", "5x", NULL }, "is not an id" },
		{ { "tokens", "revoke", " 5", NULL }, "is not an id" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char **a = bad[i].args;
		int rc = tl_run_lote(db, &out, a[0], a[1], a[2], a[3], a[4], NULL);
		if (rc != 2 || !strstr(out, bad[i].want) || strstr(out, "9223372036854775807 "))
			fail_msg("case %zu (%s %s %s): exit %d, output:\n%s\nwanted: %s", i, a[0], a[1], a[2],
			         rc, out, bad[i].want);
		free(out);
	}
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands"), 0);
	PQfinish(c);
	free(db);
}

/* tokens add with a --name that is not UTF-8: exit 2 and one clear
 * message (was exit 1, "tokens: tokens: invalid byte sequence"); tokens
 * ls refuses extra arguments. */
static void tokens_bad_input(void **state)
{
	char *db = tl_fresh_db("cli_tokens", true);
	PGconn *c = tl_connect(db);
	char *out = NULL;
	(void)state;
	int rc = tl_run_lote(db, &out, "tokens", "add", "--role", "admin", "--name", "a\xff", NULL);
	if (rc != 2 || !strstr(out, "--name is not valid UTF-8") || strstr(out, "tokens: tokens:"))
		fail_msg("tokens add --name 'a\\xff': exit %d\n%s", rc, out);
	free(out);
	/* overlong and surrogate forms are not UTF-8 either */
	assert_int_equal(tl_run_lote(db, &out, "tokens", "add", "--role", "admin", "--name", "\xc0\xaf", NULL), 2);
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "tokens", "add", "--role", "admin", "--name", "\xed\xa0\x80", NULL), 2);
	free(out);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.api_tokens"), 0);
	rc = tl_run_lote(db, &out, "tokens", "ls", "x", NULL);
	if (rc != 2 || !strstr(out, "unexpected argument \"x\""))
		fail_msg("tokens ls x: exit %d\n%s", rc, out);
	free(out);
	/* UTF-8 names go in */
	assert_int_equal(tl_run_lote(db, &out, "tokens", "add", "--role", "viewer", "--name",
	                             "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", NULL), 0);
	free(out);
	assert_string_equal(tl_value(c, "SELECT name FROM lote.api_tokens"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	assert_int_equal(tl_run_lote(db, &out, "tokens", "ls", "--json", NULL), 0);
	free(out);
	PQfinish(c);
	free(db);
}

/* A malformed --http address is a command-line error for run as for web. */
static void run_malformed_http_is_exit_2(void **state)
{
	char *db = tl_fresh_db("cli_run_http", true);
	char *out = NULL;
	(void)state;
	int rc = tl_run_lote(db, &out, "run", "--exec", "T=/bin/true", "--http", "bogus", NULL);
	if (rc != 2 || !strstr(out, "want ADDR:PORT"))
		fail_msg("run --http bogus: exit %d\n%s", rc, out);
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "web", "--http", "bogus", NULL), 2);
	free(out);
	/* a bad timing names its option and value */
	rc = tl_run_lote(db, &out, "run", "--exec", "T=/bin/true", "--lease", "1s", "--heartbeat", "2s", NULL);
	if (rc == 0 || !strstr(out, "heartbeat must be shorter than the lease (1000ms), got 2000ms"))
		fail_msg("run --lease 1s --heartbeat 2s: exit %d\n%s", rc, out);
	free(out);
	rc = tl_run_lote(db, &out, "run", "--exec", "T=/bin/true", "--log-level", "bogus", NULL);
	if (rc != 2 || !strstr(out, "--log-level: \"bogus\""))
		fail_msg("run --log-level bogus: exit %d\n%s", rc, out);
	free(out);
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
		cmocka_unit_test(unused_options_are_refused),
		cmocka_unit_test(payload_with_nul_byte_is_refused),
		cmocka_unit_test(numbers_past_int64_are_refused),
		cmocka_unit_test(tokens_bad_input),
		cmocka_unit_test(run_malformed_http_is_exit_2),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
