/* test_exec_output.c - the parts of exec handlers that need no database:
 * the stdout parser, running a program (pipes, timeout, signals, stderr
 * tail) and the error messages. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec.h"
#include "utf8.h"
#include "testlib.h"

/* ---------------------------------------------------------------------
 * The output parser
 */

/* Parses good output; returns the enqueue list and, if ret_batch is not
 * NULL, the batch (both caller-owned). */
static json_t *parse_ok_batch(const char *out, json_t **ret_batch)
{
	lote_error err = { 0 };
	json_t *items = (json_t *)1, *batch = (json_t *)1;
	int rc = lote__exec_parse_output(out, strlen(out), &items, &batch, &err);
	if (rc != 0)
		fail_msg("parse of %s failed: %s", out, err.message);
	if (ret_batch)
		*ret_batch = batch;
	else
		json_decref(batch);
	return items;
}

static json_t *parse_ok(const char *out)
{
	return parse_ok_batch(out, NULL);
}

/* Asserts the output is rejected with a message containing want. */
static void parse_bad(const char *out, const char *want)
{
	lote_error err = { 0 };
	json_t *items = (json_t *)1, *batch = (json_t *)1;
	int rc = lote__exec_parse_output(out, strlen(out), &items, &batch, &err);
	assert_int_equal(rc, LOTE_EINVAL);
	assert_int_equal(err.code, LOTE_EINVAL);
	assert_ptr_equal(items, (json_t *)1); /* untouched on failure */
	assert_ptr_equal(batch, (json_t *)1);
	if (strncmp(err.message, "invalid handler output: ", 24) != 0 || !strstr(err.message, want))
		fail_msg("for %s: expected \"%s\" in: %s", out, want, err.message);
}

static void empty_output(void **state)
{
	(void)state;
	assert_null(parse_ok(""));
	assert_null(parse_ok(" \n\t\r\n  "));
	assert_null(parse_ok("{}"));
	assert_null(parse_ok("{\"enqueue\":[]}\n"));
}

static void valid_enqueue(void **state)
{
	(void)state;
	json_t *items = parse_ok(
		"  {\"enqueue\":[{\"type\":\"A\"},"
		"{\"type\":\"B\",\"data\":{\"x\":1},\"options\":{\"max_attempts\":1},"
		"\"institution_id\":\"11111111-2222-3333-4444-555555555555\"}]}\n");
	assert_non_null(items);
	assert_true(json_is_array(items));
	assert_int_equal(json_array_size(items), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(items, 1), "type")), "B");
	assert_int_equal(json_integer_value(json_object_get(
		json_object_get(json_array_get(items, 1), "data"), "x")), 1);
	json_decref(items);
}

static void bad_outputs(void **state)
{
	(void)state;
	parse_bad("hello", "not JSON");
	parse_bad("{\"enqueue\":[", "not JSON");
	parse_bad("{\"enqueue\":[]} trailing", "not JSON");
	parse_bad("{\"enqueue\":[],\"enqueue\":[]}", "not JSON");
	parse_bad("[1,2]", "expected a JSON object, got an array");
	parse_bad("\"done\"", "expected a JSON object, got a string");
	parse_bad("42", "expected a JSON object, got a number");
	parse_bad("{\"enqueue\":[],\"extra\":1}", "unknown key \"extra\"");
	parse_bad("{\"batch\":[]}", "\"batch\" must be an object, got an array");
	parse_bad("{\"batch\":{}}", "batch.type must be a non-empty string");
	parse_bad("{\"batch\":{\"type\":\"B\"}}", "batch.commands must be an array");
	parse_bad("{\"batch\":{\"type\":\"B\",\"commands\":[1]}}", "batch.commands[0] must be an object");
	parse_bad("{\"batch\":{\"type\":\"B\",\"commands\":[],\"next\":[]}}", "batch.next must be an object or null");
	parse_bad("{\"batch\":{\"type\":\"B\",\"commands\":[],\"then\":{}}}", "batch: unknown key \"then\"");
	parse_bad("{\"enqueue\":{\"type\":\"A\"}}", "\"enqueue\" must be an array, got an object");
	parse_bad("{\"enqueue\":[1]}", "enqueue[0] must be an object, got a number");
	parse_bad("{\"enqueue\":[{\"type\":\"A\"},{\"data\":{}}]}", "enqueue[1] has no \"type\"");
	parse_bad("{\"enqueue\":[{\"type\":7}]}", "enqueue[0].type must be a non-empty string, got a number");
	parse_bad("{\"enqueue\":[{\"type\":\"\"}]}", "enqueue[0].type must be a non-empty string");
	parse_bad("{\"enqueue\":[{\"type\":\"A\",\"data\":[1]}]}", "enqueue[0].data must be an object, got an array");
	parse_bad("{\"enqueue\":[{\"type\":\"A\",\"data\":null}]}", "enqueue[0].data must be an object, got null");
	parse_bad("{\"enqueue\":[{\"type\":\"A\",\"options\":\"x\"}]}", "enqueue[0].options must be an object");
	parse_bad("{\"enqueue\":[{\"type\":\"A\",\"institution_id\":\"school\"}]}",
	          "enqueue[0].institution_id must be a UUID string");
	parse_bad("{\"enqueue\":[{\"type\":\"A\",\"queue\":\"q\"}]}", "enqueue[0]: unknown key \"queue\"");
}

static void valid_batch(void **state)
{
	json_t *batch = NULL;
	json_t *items = parse_ok_batch(
		"{\"batch\":{\"type\":\"Emails\",\"commands\":[{\"type\":\"Send\",\"data\":{\"to\":1},"
		"\"max_attempts\":2}],\"next\":{\"type\":\"Notify\"}},"
		"\"enqueue\":[{\"type\":\"Audit\"}]}", &batch);
	(void)state;
	assert_int_equal(json_array_size(items), 1);
	assert_non_null(batch);
	assert_string_equal(json_string_value(json_object_get(batch, "type")), "Emails");
	assert_int_equal(json_array_size(json_object_get(batch, "commands")), 1);
	json_decref(items);
	json_decref(batch);
	/* alone, empty, and with a null follow-up */
	items = parse_ok_batch("{\"batch\":{\"type\":\"E\",\"commands\":[],\"next\":null}}", &batch);
	assert_null(items);
	assert_non_null(batch);
	json_decref(batch);
}

static void excerpt_in_message(void **state)
{
	lote_error err = { 0 };
	json_t *items = NULL, *batch = NULL;
	char big[4096];
	(void)state;

	/* The start of the output is quoted, on one line, shortened. */
	parse_bad("oops\nline two", "(stdout was: oops line two)");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(lote__exec_parse_output(big, strlen(big), &items, &batch, &err), LOTE_EINVAL);
	assert_non_null(strstr(err.message, "xxx..."));
	assert_true(strlen(err.message) < 400);
	/* A NUL byte in the output is an error, not a truncation. */
	assert_int_equal(lote__exec_parse_output("{}\0{}", 5, &items, &batch, &err), LOTE_EINVAL);
	assert_non_null(strstr(err.message, "NUL byte"));
}

static void too_many_items(void **state)
{
	lote_error err = { 0 };
	json_t *items = NULL, *batch = NULL, *root = json_object(), *list = json_array();
	char *text;
	(void)state;

	for (int i = 0; i <= LOTE_EXEC_ENQUEUE_MAX; i++)
		json_array_append_new(list, json_pack("{s:s}", "type", "A"));
	json_object_set_new(root, "enqueue", list);
	text = json_dumps(root, JSON_COMPACT);
	assert_int_equal(lote__exec_parse_output(text, strlen(text), &items, &batch, &err), LOTE_EINVAL);
	assert_non_null(strstr(err.message, "over the limit"));
	free(text);
	json_decref(root);
}

static void sanitize(void **state)
{
	char s[] = "ok \xc3\xa9 \xff bad \xe2\x82 cut \xed\xa0\x80 surrogate";
	(void)state;

	lote__utf8_sanitize(s, sizeof(s) - 1);
	assert_string_equal(s, "ok \xc3\xa9 ? bad ?? cut ??? surrogate");
}

/* ---------------------------------------------------------------------
 * Running programs
 */

static char *const plain_env[] = { "PATH=/usr/bin:/bin", "LOTE_TEST_VAR=hello", NULL };

static void run(const char *program, const char *input, int64_t timeout_ms,
                lote__exec_result *r)
{
	lote_error err = { 0 };
	if (lote__exec_run(program, input, input ? strlen(input) : 0, plain_env, timeout_ms,
	                   r, &err) < 0)
		fail_msg("run %s: %s", program, err.message);
}

static void run_success(void **state)
{
	lote__exec_result r;
	char msg[8192];
	(void)state;

	run("cat; echo \"env=$LOTE_TEST_VAR\"; echo note >&2", "{\"id\":1}\n", 0, &r);
	assert_true(WIFEXITED(r.status));
	assert_int_equal(WEXITSTATUS(r.status), 0);
	assert_string_equal(r.out, "{\"id\":1}\nenv=hello\n");
	assert_string_equal(r.tail, "note");
	assert_true(lote__exec_result_ok(&r, 0, msg, sizeof(msg)));
	lote__exec_result_done(&r);
}

static void run_failure_message(void **state)
{
	lote__exec_result r;
	char msg[8192];
	(void)state;

	run("echo '  first' >&2; echo 'last line  ' >&2; exit 3", NULL, 0, &r);
	assert_false(lote__exec_result_ok(&r, 0, msg, sizeof(msg)));
	assert_string_equal(msg, "exit status 3: first\nlast line");
	lote__exec_result_done(&r);

	run("exit 7", NULL, 0, &r);
	assert_false(lote__exec_result_ok(&r, 0, msg, sizeof(msg)));
	assert_string_equal(msg, "exit status 7");
	lote__exec_result_done(&r);

	run("no-such-program-lote", NULL, 0, &r);
	assert_false(lote__exec_result_ok(&r, 0, msg, sizeof(msg)));
	assert_non_null(strstr(msg, "exit status 127"));
	assert_non_null(strstr(msg, "no-such-program-lote"));
	lote__exec_result_done(&r);
}

static void run_signal(void **state)
{
	lote__exec_result r;
	char msg[8192];
	(void)state;

	run("echo dying >&2; kill -SEGV $$", NULL, 0, &r);
	assert_false(lote__exec_result_ok(&r, 0, msg, sizeof(msg)));
	assert_string_equal(msg, "killed by signal 11 (SIGSEGV): dying");
	lote__exec_result_done(&r);
}

static void run_stderr_tail(void **state)
{
	lote__exec_result r;
	(void)state;

	/* 100 000 lines on stderr: only the end is kept, starting cleanly. */
	run("i=0; while [ $i -lt 20000 ]; do echo \"line $i é\" >&2; i=$((i+1)); done; exit 1",
	    NULL, 0, &r);
	assert_true(r.tail_cut);
	assert_true(r.tail_len <= LOTE_EXEC_STDERR_TAIL);
	assert_true(r.tail_len > LOTE_EXEC_STDERR_TAIL - 20);
	assert_non_null(strstr(r.tail, "line 19999 é"));
	assert_null(strstr(r.tail, "line 1000 "));
	lote__exec_result_done(&r);
}

static void run_big_payloads(void **state)
{
	size_t n = 4 * 1024 * 1024;
	char *input = malloc(n + 1);
	lote__exec_result r;
	char msg[256];
	(void)state;

	/* Bigger than any pipe buffer both ways at once: poll() keeps both
	 * flowing, so neither side blocks the other. */
	memset(input, 'a', n);
	input[n] = '\0';
	run("cat; cat /dev/null >&2", input, 0, &r);
	assert_int_equal(r.out_len, n);
	assert_memory_equal(r.out, input, n);
	lote__exec_result_done(&r);

	/* A program that never reads its stdin is fine (no SIGPIPE for us). */
	run("echo ignored", input, 0, &r);
	assert_true(lote__exec_result_ok(&r, 0, msg, sizeof(msg)));
	assert_string_equal(r.out, "ignored\n");
	lote__exec_result_done(&r);
	free(input);
}

static void run_stdout_limit(void **state)
{
	lote__exec_result r;
	char msg[256];
	(void)state;

	run("head -c 20000000 /dev/zero", NULL, 0, &r);
	assert_true(r.stdout_overflow);
	assert_false(lote__exec_result_ok(&r, 0, msg, sizeof(msg)));
	assert_string_equal(msg, "handler wrote more than 16 MiB on stdout");
	lote__exec_result_done(&r);
}

static void run_timeout(void **state)
{
	lote__exec_result r;
	char msg[256], *mark = tl_tmp_path("grandchild"), prog[512];
	(void)state;

	/* The whole process group goes: a grandchild holding the pipes open
	 * would otherwise keep the handler waiting, and would outlive it. */
	assert_non_null(mark);
	unlink(mark);
	snprintf(prog, sizeof(prog),
	         "echo started >&2; (sleep 2; touch %s) & sleep 30", mark ? mark : "");
	run(prog, NULL, 300, &r);
	assert_true(r.timed_out);
	assert_false(lote__exec_result_ok(&r, 300, msg, sizeof(msg)));
	assert_string_equal(msg, "timeout after 0.3 s: started");
	lote__exec_result_done(&r);
	sleep(3);
	assert_int_not_equal(access(mark, F_OK), 0);
	free(mark);
}

static void run_exit_with_background_child(void **state)
{
	lote__exec_result r;
	char msg[256];
	(void)state;

	/* The program exits while a child it left keeps stdout open: its exit
	 * ends the run, not the end of the pipe. */
	run("sleep 5 & echo done", NULL, 20000, &r);
	assert_false(r.timed_out);
	assert_true(lote__exec_result_ok(&r, 20000, msg, sizeof(msg)));
	assert_string_equal(r.out, "done\n");
	lote__exec_result_done(&r);
}

static void run_keeps_sigpipe_and_sigchld(void **state)
{
	struct sigaction sa = { 0 }, now;
	lote__exec_result r;
	(void)state;

	/* The caller's dispositions are back after a run. */
	sa.sa_handler = SIG_DFL;
	sigaction(SIGPIPE, &sa, NULL);
	run("true", "input", 0, &r);
	lote__exec_result_done(&r);
	sigaction(SIGPIPE, NULL, &now);
	assert_ptr_equal(now.sa_handler, SIG_DFL);
	sigaction(SIGCHLD, NULL, &now);
	assert_ptr_equal(now.sa_handler, SIG_DFL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(empty_output),
		cmocka_unit_test(valid_enqueue),
		cmocka_unit_test(bad_outputs),
		cmocka_unit_test(valid_batch),
		cmocka_unit_test(excerpt_in_message),
		cmocka_unit_test(too_many_items),
		cmocka_unit_test(sanitize),
		cmocka_unit_test(run_success),
		cmocka_unit_test(run_failure_message),
		cmocka_unit_test(run_signal),
		cmocka_unit_test(run_stderr_tail),
		cmocka_unit_test(run_big_payloads),
		cmocka_unit_test(run_stdout_limit),
		cmocka_unit_test(run_timeout),
		cmocka_unit_test(run_exit_with_background_child),
		cmocka_unit_test(run_keeps_sigpipe_and_sigchld),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
