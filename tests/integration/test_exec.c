/* Integration tests of exec handlers, black-box: each test makes a fresh
 * database, starts `lote run --exec ...` with shell scripts as handlers,
 * writes work with the SQL API, and asserts on the rows and on what the
 * scripts saw (they copy their stdin and LOTE_* environment to files). The
 * daemon is stopped with SIGTERM and must exit 0. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

#define NIL_UUID "00000000-0000-0000-0000-000000000000"
#define SCHOOL "6f1c2b8e-1d2a-4c3b-9e4f-5a6b7c8d9e0f"
/* How long work may take to be done by a freshly started daemon. */
#define WAIT_MS 30000
/* How long the daemon may take to stop after SIGTERM. */
#define STOP_MS 40000

/* The state of one test: its database, daemon and log. */
struct t {
	char *db;
	PGconn *conn;
	pid_t pid;
	char *log;
};

static void begin(struct t *t, const char *name)
{
	char logname[64];
	snprintf(logname, sizeof(logname), "%s.log", name);
	t->db = tl_fresh_db(name, true);
	t->conn = tl_connect(t->db);
	t->log = tl_tmp_path(logname);
	unlink(t->log);
	t->pid = 0;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;
	if (!f)
		return NULL;
	buf = calloc(1, 1 << 20);
	n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Prints the daemon's log (for a failing assertion). */
static void show_log(const struct t *t)
{
	char *log = read_file(t->log);
	print_message("---- lote run log ----\n%s----\n", log ? log : "(none)");
	free(log);
}

static void wait_for(struct t *t, const char *what, const char *sql)
{
	if (!tl_wait(t->conn, WAIT_MS, "%s", sql)) {
		show_log(t);
		fail_msg("timed out waiting for %s (%s)", what, sql);
	}
}

static void wait_command(struct t *t, long long id, const char *status)
{
	char sql[256];
	snprintf(sql, sizeof(sql),
	         "SELECT coalesce((SELECT status = '%s' FROM lote.commands WHERE id = %lld), false)",
	         status, id);
	wait_for(t, status, sql);
}

/* Stops the daemon with SIGTERM: it must exit 0. */
static void end(struct t *t)
{
	pid_t pid = t->pid;
	int st;

	t->pid = 0;
	st = tl_stop(pid, SIGTERM, STOP_MS);
	if (st != 0) {
		show_log(t);
		fail_msg("lote run exited with %d after SIGTERM, expected 0", st);
	}
}

/* cmocka fixtures: a failed assertion leaves by longjmp, so what a test
 * holds is released here. */
static int setup(void **state)
{
	*state = calloc(1, sizeof(struct t));
	return *state ? 0 : -1;
}

static int teardown(void **state)
{
	struct t *t = *state;

	if (t->pid > 0)
		tl_stop(t->pid, SIGKILL, 5000);
	if (t->conn)
		PQfinish(t->conn);
	if (t->log) {
		unlink(t->log);
		free(t->log);
	}
	free(t->db);
	free(t);
	return 0;
}

static long long enqueue(struct t *t, const char *type, const char *data)
{
	return tl_int(t->conn, "SELECT lote.enqueue('%s', '%s', NULL, '{\"max_attempts\":1}')",
	              type, data);
}

/* A script that copies its stdin and LOTE_* variables to files and then
 * runs tail (more shell). Paths are malloc'd. */
static char *recording_script(const char *name, const char *tail, char **ret_in,
                              char **ret_env)
{
	char in_name[64], env_name[64], *body = NULL, *script;
	snprintf(in_name, sizeof(in_name), "%s.stdin", name);
	snprintf(env_name, sizeof(env_name), "%s.env", name);
	*ret_in = tl_tmp_path(in_name);
	*ret_env = tl_tmp_path(env_name);
	unlink(*ret_in);
	unlink(*ret_env);
	if (asprintf(&body, "cat > %s.tmp && mv %s.tmp %s\n"
	             "env | grep -E '^LOTE_(COMMAND|EVENT|ENTITY|INSTITUTION|ATTEMPT)' | sort > %s\n%s",
	             *ret_in, *ret_in, *ret_in, *ret_env, tail) < 0)
		fail_msg("out of memory");
	script = tl_script(name, body);
	free(body);
	return script;
}

static json_t *load_json(const char *path)
{
	char *text = read_file(path);
	json_error_t jerr;
	json_t *v;
	if (!text)
		fail_msg("the handler wrote no %s", path);
	v = json_loads(text, 0, &jerr);
	if (!v)
		fail_msg("%s is not JSON (%s): %s", path, jerr.text, text);
	free(text);
	return v;
}

/* ---------------------------------------------------------------------
 */

static void command_success(void **state)
{
	struct t *t = *state;
	char *in, *env, *script, *flag = NULL, *seen, want[512];
	json_t *j;
	long long id;

	begin(t, "exec_success");
	script = recording_script("success.sh", "exit 0", &in, &env);
	id = enqueue(t, "T", "{\"a\":1,\"text\":\"caf\\u00e9\",\"price\":0.1}");
	if (asprintf(&flag, "T=%s", script) < 0)
		fail_msg("out of memory");
	t->pid = tl_spawn_lote(t->db, t->log, "run", "--exec", flag, "--workers", "1",
	                      "--poll", "100ms", NULL);
	wait_command(t, id, "success");
	j = load_json(in);
	assert_int_equal(json_integer_value(json_object_get(j, "id")), id);
	assert_string_equal(json_string_value(json_object_get(j, "type")), "T");
	assert_string_equal(json_string_value(json_object_get(j, "institution_id")), NIL_UUID);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "data"), "a")), 1);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "data"), "text")),
	                    "caf\xc3\xa9");
	assert_int_equal(json_integer_value(json_object_get(j, "attempt")), 1);
	assert_int_equal(json_integer_value(json_object_get(j, "max_attempts")), 1);
	assert_true(json_is_null(json_object_get(j, "event_id")));
	assert_true(json_is_null(json_object_get(j, "parent_id")));
	assert_true(json_is_null(json_object_get(j, "original_id")));
	assert_true(json_is_null(json_object_get(j, "batch_id")));
	json_decref(j);
	/* the payload's numbers reach the handler as stored */
	seen = read_file(in);
	assert_non_null(strstr(seen, "\"price\":0.1"));
	assert_null(strstr(seen, "0.1000"));
	free(seen);
	seen = read_file(env);
	snprintf(want, sizeof(want),
	         "LOTE_ATTEMPT=1\nLOTE_COMMAND_ID=%lld\nLOTE_COMMAND_TYPE=T\n"
	         "LOTE_INSTITUTION_ID=" NIL_UUID "\n", id);
	assert_non_null(seen);
	assert_string_equal(seen, want);
	assert_null(tl_value(t->conn, "SELECT error FROM lote.commands WHERE id = %lld", id));
	free(seen);
	end(t);
	unlink(in);
	unlink(env);
	unlink(script);
	free(in);
	free(env);
	free(script);
	free(flag);
}

static void command_failure(void **state)
{
	struct t *t = *state;
	char *script, *flag = NULL;
	const char *error;
	long long id, quiet, later, odd;

	begin(t, "exec_failure");
	script = tl_script("fail.sh",
	                   "cat > /dev/null\n"
	                   "echo 'connecting to smtp' >&2\n"
	                   "echo 'smtp: connection refused  ' >&2\n"
	                   "exit 3");
	if (asprintf(&flag, "Loud=%s", script) < 0)
		fail_msg("out of memory");
	id = enqueue(t, "Loud", "{}");
	quiet = enqueue(t, "Quiet", "{}");
	later = tl_int(t->conn, "SELECT lote.enqueue('Later', '{}', NULL, '{\"max_attempts\": 2}')");
	odd = enqueue(t, "Odd", "{}");
	t->pid = tl_spawn_lote(t->db, t->log, "run", "--exec", flag, "--exec", "Quiet=exit 4",
	                      "--exec", "Later=echo '{\"retry_in_ms\": 9223372036854775807}'; exit 1",
	                      "--exec", "Odd=echo '{\"retry_in_ms\": -5}'; exit 1",
	                      "--workers", "1", NULL);
	wait_command(t, id, "error");
	wait_command(t, quiet, "error");
	wait_command(t, odd, "error");
	error = tl_value(t->conn, "SELECT error FROM lote.commands WHERE id = %lld", id);
	assert_non_null(error);
	assert_string_equal(error, "exit status 3: connecting to smtp\nsmtp: connection refused");
	error = tl_value(t->conn, "SELECT error FROM lote.commands WHERE id = %lld", quiet);
	assert_non_null(error);
	assert_string_equal(error, "exit status 4");
	/* a delay past PostgreSQL's range is cut to a year (it used to fail
	 * the completion and leave the row processing for good); a directive
	 * that cannot be followed is said */
	assert_true(tl_wait(t->conn, WAIT_MS, "SELECT status = 'pending' AND run_at > now() + interval '364 days'"
	                                      " AND run_at < now() + interval '366 days'"
	                                      " AND error LIKE '%%(retry_in_ms cut to one year)'"
	                                      " FROM lote.commands WHERE id = %lld", later));
	error = tl_value(t->conn, "SELECT error FROM lote.commands WHERE id = %lld", odd);
	assert_non_null(error);
	assert_string_equal(error, "exit status 1 (\"retry_in_ms\" ignored: it must be a whole number"
	                           " of milliseconds, 0 or more)");
	end(t);
	/* the daemon's log keeps every line of the error, on one line */
	char *log = read_file(t->log);
	assert_non_null(log);
	if (!strstr(log, "attempt 1/1 failed: exit status 3: connecting to smtp | smtp: connection refused\n")) {
		show_log(t);
		fail_msg("the log does not carry the whole error");
	}
	free(log);
	unlink(script);
	free(script);
	free(flag);
}

static void stdout_enqueues(void **state)
{
	struct t *t = *state;
	char *script, *flag = NULL;
	long long id, bad;

	begin(t, "exec_enqueue");
	script = tl_script("enqueue.sh",
	                   "cat > /dev/null\n"
	                   "if [ \"$LOTE_COMMAND_TYPE\" = Bad ]; then\n"
	                   "  echo '{\"enqueue\":[{\"type\":\"Child\"},{\"type\":\"Child\",\"options\":{\"bogus\":1}}]}'\n"
	                   "  exit 0\n"
	                   "fi\n"
	                   "cat <<EOF\n"
	                   "{\"enqueue\":[\n"
	                   "  {\"type\":\"Child\",\"data\":{\"n\":1}},\n"
	                   "  {\"type\":\"Child\",\"data\":{\"n\":2},\"options\":{\"queue\":\"other\",\"max_attempts\":5}},\n"
	                   "  {\"type\":\"Child\",\"data\":{\"n\":3},\"institution_id\":\"" SCHOOL "\"},\n"
	                   "  {\"type\":\"Priced\",\"data\":{\"price\":0.1,\"rate\":19.99}}\n"
	                   "]}\n"
	                   "EOF");
	if (asprintf(&flag, "Parent=%s", script) < 0)
		fail_msg("out of memory");
	id = enqueue(t, "Parent", "{}");
	{
		char *badflag = NULL;
		if (asprintf(&badflag, "Bad=%s", script) < 0)
			fail_msg("out of memory");
		bad = enqueue(t, "Bad", "{}");
		t->pid = tl_spawn_lote(t->db, t->log, "run", "--exec", flag, "--exec", badflag,
		                      "--workers", "1", NULL);
		wait_command(t, id, "success");
		wait_command(t, bad, "error");
		free(badflag);
	}
	/* The children exist, linked to their parent, with their options. */
	assert_int_equal(tl_int(t->conn, "SELECT count(*) FROM lote.commands WHERE parent_id = %lld", id), 4);
	/* its numbers as written (jansson's 17 digits would store
	 * 0.10000000000000001) */
	assert_string_equal(tl_value(t->conn, "SELECT data::text FROM lote.commands"
	                                      " WHERE parent_id = %lld AND type = 'Priced'", id),
	                    "{\"rate\": 19.99, \"price\": 0.1}");
	assert_int_equal(tl_int(t->conn,
	        "SELECT count(*) FROM lote.commands WHERE parent_id = %lld AND type = 'Child' "
	        "AND status = 'pending' AND event_id IS NULL", id), 3);
	assert_int_equal(tl_int(t->conn,
	        "SELECT count(*) FROM lote.commands WHERE parent_id = %lld AND data = '{\"n\":2}' "
	        "AND queue = 'other' AND max_attempts = 5", id), 1);
	assert_int_equal(tl_int(t->conn,
	        "SELECT count(*) FROM lote.commands WHERE parent_id = %lld AND data = '{\"n\":1}' "
	        "AND institution_id = '" NIL_UUID "' AND queue = 'default'", id), 1);
	assert_int_equal(tl_int(t->conn,
	        "SELECT count(*) FROM lote.commands WHERE parent_id = %lld AND data = '{\"n\":3}' "
	        "AND institution_id = '" SCHOOL "'", id), 1);
	/* One item the database rejects fails the command and keeps none. */
	assert_int_equal(tl_int(t->conn, "SELECT count(*) FROM lote.commands WHERE parent_id = %lld", bad), 0);
	{
		const char *error = tl_value(t->conn, "SELECT error FROM lote.commands WHERE id = %lld", bad);
		assert_non_null(error);
		if (!strstr(error, "unknown option \"bogus\""))
			fail_msg("unexpected error: %s", error);
	}
	end(t);
	unlink(script);
	free(script);
	free(flag);
}

static void stdout_invalid(void **state)
{
	struct t *t = *state;
	const char *error;
	long long text, array;

	begin(t, "exec_invalid");
	text = enqueue(t, "Chatty", "{}");
	array = enqueue(t, "Listy", "{}");
	t->pid = tl_spawn_lote(t->db, t->log, "run", "--exec", "Chatty=echo all good",
	                      "--exec", "Listy=echo '[1,2]'", "--workers", "1", NULL);
	wait_command(t, text, "error");
	wait_command(t, array, "error");
	error = tl_value(t->conn, "SELECT error FROM lote.commands WHERE id = %lld", text);
	assert_non_null(error);
	if (strncmp(error, "invalid handler output: not JSON", 32) != 0 || !strstr(error, "all good"))
		fail_msg("unexpected error: %s", error);
	error = tl_value(t->conn, "SELECT error FROM lote.commands WHERE id = %lld", array);
	assert_non_null(error);
	assert_string_equal(error, "invalid handler output: expected a JSON object, got an array "
	                           "(stdout was: [1,2])");
	end(t);
}

static void event_handler(void **state)
{
	struct t *t = *state;
	char *in, *env, *script, *flag = NULL, *seen, want[512];
	json_t *j;
	long long id;

	begin(t, "exec_event");
	script = recording_script("event.sh",
	                          "echo '{\"enqueue\":[{\"type\":\"FollowUp\",\"data\":{\"from\":\"event\"}}]}'",
	                          &in, &env);
	if (asprintf(&flag, "ThingCreated=%s", script) < 0)
		fail_msg("out of memory");
	id = tl_int(t->conn, "SELECT lote.emit('" SCHOOL "', 'Thing', '42', 'ThingCreated', '{\"k\":\"v\"}')");
	t->pid = tl_spawn_lote(t->db, t->log, "run", "--exec-event", flag, "--workers", "1", NULL);
	{
		char sql[256];
		snprintf(sql, sizeof(sql),
		         "SELECT coalesce((SELECT status = 'success' FROM lote.events WHERE id = %lld), false)",
		         id);
		wait_for(t, "the event", sql);
	}
	seen = read_file(env);
	snprintf(want, sizeof(want),
	         "LOTE_ATTEMPT=1\nLOTE_ENTITY_ID=42\nLOTE_ENTITY_TYPE=Thing\nLOTE_EVENT_ID=%lld\n"
	         "LOTE_EVENT_TYPE=ThingCreated\nLOTE_INSTITUTION_ID=" SCHOOL "\n", id);
	assert_non_null(seen);
	assert_string_equal(seen, want);
	free(seen);
	j = load_json(in);
	assert_int_equal(json_integer_value(json_object_get(j, "id")), id);
	assert_string_equal(json_string_value(json_object_get(j, "type")), "ThingCreated");
	assert_string_equal(json_string_value(json_object_get(j, "entity_type")), "Thing");
	assert_string_equal(json_string_value(json_object_get(j, "entity_id")), "42");
	assert_string_equal(json_string_value(json_object_get(j, "institution_id")), SCHOOL);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "data"), "k")), "v");
	json_decref(j);
	/* Its stdout enqueued a command linked to the event, in its institution. */
	assert_int_equal(tl_int(t->conn,
	        "SELECT count(*) FROM lote.commands WHERE type = 'FollowUp' AND event_id = %lld "
	        "AND parent_id IS NULL AND institution_id = '" SCHOOL "' "
	        "AND data = '{\"from\":\"event\"}'", id), 1);
	end(t);
	unlink(in);
	unlink(env);
	unlink(script);
	free(in);
	free(env);
	free(script);
	free(flag);
}

static void timeout_kills(void **state)
{
	struct t *t = *state;
	char *conf, *mark, text[1024];
	const char *error;
	FILE *f;
	long long id;
	time_t started;

	begin(t, "exec_timeout");
	/* From a config file, with a timeout of its own for the type. */
	mark = tl_tmp_path("timeout.mark");
	conf = tl_tmp_path("timeout.conf");
	assert_non_null(mark);
	assert_non_null(conf);
	unlink(mark);
	snprintf(text, sizeof(text),
	         "[lote]\nworkers = 1\npoll = 100ms\n\n"
	         "[command Slow]\n"
	         "exec = echo 'still working' >&2; (sleep 4; touch %s) & sleep 60\n"
	         "timeout = 1s\n", mark);
	f = fopen(conf, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	id = enqueue(t, "Slow", "{}");
	started = time(NULL);
	t->pid = tl_spawn_lote(t->db, t->log, "run", "--config", conf, NULL);
	wait_command(t, id, "error");
	assert_true(time(NULL) - started < 20);
	error = tl_value(t->conn, "SELECT error FROM lote.commands WHERE id = %lld", id);
	assert_non_null(error);
	assert_string_equal(error, "timeout after 1 s: still working");
	/* The whole process group was killed, background children included. */
	sleep(5);
	assert_int_not_equal(access(mark, F_OK), 0);
	end(t);
	unlink(conf);
	free(conf);
	free(mark);
}

static void usage_errors(void **state)
{
	char *db, *out = NULL;

	db = tl_fresh_db("exec_usage", false);
	assert_int_equal(tl_run_lote(db, &out, "run", NULL), 2);
	assert_non_null(strstr(out, "no handlers"));
	free(out);
	/* Not migrated: refused before anything runs. */
	assert_int_equal(tl_run_lote(db, &out, "run", "--exec", "T=true", NULL), 3);
	if (!strstr(out, "lote migrate"))
		fail_msg("unexpected output: %s", out);
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "run", "--exec", "T=true", "--poll", "1x", NULL), 2);
	assert_non_null(strstr(out, "--poll: invalid duration \"1x\""));
	free(out);
	free(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(command_success, setup, teardown),
		cmocka_unit_test_setup_teardown(command_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(stdout_enqueues, setup, teardown),
		cmocka_unit_test_setup_teardown(stdout_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(event_handler, setup, teardown),
		cmocka_unit_test_setup_teardown(timeout_kills, setup, teardown),
		cmocka_unit_test(usage_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
