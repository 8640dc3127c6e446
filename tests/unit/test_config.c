/* test_config.c - the settings table: defaults, the config file and each
 * of its errors, flags over the file, and docs/config.md kept equal to the
 * table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "testlib.h"

/* Writes text to a temporary config file; returns its path (malloc'd). */
static char *write_conf(const char *name, const char *text)
{
	char *path = tl_tmp_path(name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

/* Loads text and asserts it fails with "PATH:line: ...want...". */
static void load_bad(const char *text, int line, const char *want)
{
	char *path = write_conf("bad.conf", text), where[512];
	lote__config cfg;
	lote_error err = { 0 };

	lote__config_init(&cfg);
	assert_int_equal(lote__config_load_file(&cfg, path, &err), LOTE_EINVAL);
	snprintf(where, sizeof(where), "%s:%d: ", path, line);
	if (strncmp(err.message, where, strlen(where)) != 0 || !strstr(err.message, want))
		fail_msg("expected \"%s%s\", got: %s", where, want, err.message);
	lote__config_done(&cfg);
	unlink(path);
	free(path);
}

static void defaults(void **state)
{
	lote_engine_options o;
	lote__config cfg;
	(void)state;

	/* The table's defaults are the engine's. */
	lote_engine_options_init(&o);
	lote__config_init(&cfg);
	assert_int_equal(cfg.engine.workers, o.workers);
	assert_int_equal(cfg.engine.batch, o.batch);
	assert_int_equal(cfg.engine.poll_ms, o.poll_ms);
	assert_int_equal(cfg.engine.lease_ms, o.lease_ms);
	assert_int_equal(cfg.engine.grace_ms, o.grace_ms);
	assert_int_equal(cfg.engine.timeout_ms, o.timeout_ms);
	assert_int_equal(cfg.engine.listen, o.listen);
	assert_int_equal(cfg.engine.shared_tx, o.shared_tx);
	assert_null(cfg.engine.queues);
	assert_null(cfg.engine.conninfo);
	assert_null(cfg.database_url);
	assert_string_equal(cfg.log_level, "info");
	assert_int_equal(cfg.nhandlers, 0);
	lote__config_done(&cfg);
	lote__config_done(&cfg); /* twice is fine */
}

static void sample_file(void **state)
{
	char long_prog[600], text[2048], *path;
	lote__config cfg;
	lote_error err = { 0 };
	(void)state;

	/* Longer than libinih's own line buffer (200 bytes). */
	memset(long_prog, 'x', sizeof(long_prog));
	memcpy(long_prog, "echo ", 5);
	long_prog[sizeof(long_prog) - 1] = '\0';
	snprintf(text, sizeof(text),
	         "\xEF\xBB\xBF# a sample\n"
	         "; comments start with ; or #\n"
	         "[lote]\n"
	         "database_url = postgresql:///app?application_name=x\n"
	         "  workers = 4\n"
	         "batch=50\n"
	         "poll = 250ms\n"
	         "lease = 10m\n"
	         "grace = 0\n"
	         "timeout = 1h\n"
	         "queues = default,mail\n"
	         "listen = no\n"
	         "shared_tx = off\n"
	         "log_level = debug\n"
	         "\n"
	         "[command SendEmail]\n"
	         "exec = ./send-email --verbose; echo \"done;\" # not a comment\n"
	         "timeout = 30s\n"
	         "[event ClassActivityCreated]\n"
	         "exec = %s\n"
	         "[event  ClassActivityCreated ]   ; a comment after a header\n"
	         "exec = python3 -m handlers.activity\n"
	         "[command Other]\n"
	         "exec = true\n"
	         "max_attempts = 7\n"
	         "retry = linear\n"
	         "retry_base = 500ms\n"
	         "retry_max = 1m\n"
	         "retry_jitter = 0.25\n",
	         long_prog);
	path = write_conf("sample.conf", text);
	lote__config_init(&cfg);
	if (lote__config_load_file(&cfg, path, &err) < 0)
		fail_msg("%s", err.message);
	assert_string_equal(cfg.database_url, "postgresql:///app?application_name=x");
	assert_int_equal(cfg.engine.workers, 4);
	assert_int_equal(cfg.engine.batch, 50);
	assert_int_equal(cfg.engine.poll_ms, 250);
	assert_int_equal(cfg.engine.lease_ms, 600000);
	assert_int_equal(cfg.engine.grace_ms, 0);
	assert_int_equal(cfg.engine.timeout_ms, 3600000);
	assert_string_equal(cfg.engine.queues, "default,mail");
	assert_false(cfg.engine.listen);
	assert_false(cfg.engine.shared_tx);
	assert_string_equal(cfg.log_level, "debug");

	assert_int_equal(cfg.nhandlers, 4);
	assert_int_equal(cfg.handlers[0].kind, LOTE_COMMAND);
	assert_string_equal(cfg.handlers[0].type, "SendEmail");
	assert_string_equal(cfg.handlers[0].program,
	                    "./send-email --verbose; echo \"done;\" # not a comment");
	assert_int_equal(cfg.handlers[0].timeout_ms, 30000);
	assert_int_equal(cfg.handlers[0].line, 16);
	assert_int_equal(cfg.handlers[1].kind, LOTE_EVENT);
	assert_string_equal(cfg.handlers[1].type, "ClassActivityCreated");
	assert_string_equal(cfg.handlers[1].program, long_prog);
	assert_int_equal(cfg.handlers[1].timeout_ms, 0);
	assert_int_equal(cfg.handlers[2].kind, LOTE_EVENT);
	assert_string_equal(cfg.handlers[2].type, "ClassActivityCreated");
	assert_string_equal(cfg.handlers[2].program, "python3 -m handlers.activity");
	assert_string_equal(cfg.handlers[3].type, "Other");
	assert_int_equal(cfg.handlers[3].max_attempts, 7);
	assert_int_equal(cfg.handlers[3].retry.strategy, LOTE_RETRY_LINEAR);
	assert_int_equal(cfg.handlers[3].retry.base_ms, 500);
	assert_int_equal(cfg.handlers[3].retry.max_ms, 60000);
	assert_true(cfg.handlers[3].retry.jitter == 0.25);
	assert_int_equal(cfg.handlers[0].max_attempts, 0);
	assert_int_equal(cfg.handlers[0].retry.strategy, LOTE_RETRY_DEFAULT);
	lote__config_done(&cfg);
	unlink(path);
	free(path);
}

static void file_errors(void **state)
{
	(void)state;
	load_bad("[lote]\nworkers = 2\nwrokers = 3\n", 3, "unknown key \"wrokers\" in [lote]");
	load_bad("[lote]\npoll = 5 minutes\n", 2, "poll: invalid duration \"5 minutes\"");
	load_bad("[lote]\npoll = 1\n", 2, "poll: 1 is out of range (10ms..1h)");
	load_bad("[lote]\nworkers = two\n", 2, "workers: \"two\" is not an integer");
	load_bad("[lote]\nworkers = 4 ; four\n", 2, "workers: \"4 ; four\" is not an integer");
	load_bad("[lote]\nworkers = 0\n", 2, "workers: 0 is out of range (1..256)");
	load_bad("[lote]\nbatch = 1001\n", 2, "batch: 1001 is out of range (1..1000)");
	load_bad("[lote]\nlisten = maybe\n", 2, "listen: \"maybe\" is not a boolean");
	load_bad("[lote]\nqueues = a b\n", 2, "queues: invalid queue name \"a b\"");
	load_bad("[lote]\nlog_level = loud\n", 2, "log_level: \"loud\" is not a log level");
	load_bad("[lote]\nworkers = 2\n\nworkers = 3\n", 4, "workers is set twice (first on line 2)");
	load_bad("# c\n[daemon]\nworkers = 2\n", 2, "unknown section [daemon]");
	load_bad("[command]\nexec = x\n", 1, "[command] needs a type");
	load_bad("[command bad type!]\nexec = x\n", 1, "invalid command type \"bad type!\"");
	load_bad("[lote]\n[command A]\ntimeout = 5s\n[lote]\n", 2, "[command A] has no exec");
	load_bad("[event A]\n", 1, "[event A] has no exec");
	load_bad("[command A]\nexec = a\ntimeout = soon\n", 3, "timeout: invalid duration \"soon\"");
	load_bad("[command A]\nexec = a\ntimeout = 30d\n", 3, "timeout: 30d is out of range (10ms..7d)");
	load_bad("[command A]\nexec = a\nretries = 3\n", 3,
	         "unknown key \"retries\" in [command A] (expected exec, timeout, max_attempts, retry, retry_base, retry_max, retry_jitter)");
	load_bad("[command A]\nexec = a\nmax_attempts = 0\n", 3, "max_attempts: \"0\" is not an integer from 1 to 1000");
	load_bad("[command A]\nexec = a\nmax_attempts = 2.5\n", 3, "max_attempts: \"2.5\" is not an integer");
	load_bad("[command A]\nexec = a\nretry = random\n", 3, "retry: \"random\" is not exponential, linear or fixed");
	load_bad("[command A]\nexec = a\nretry_base = 1x\n", 3, "retry_base: invalid duration");
	load_bad("[command A]\nexec = a\nretry_jitter = 2\n", 3, "retry_jitter: \"2\" is not a number from 0 to 1");
	load_bad("[command A]\nexec = a\nexec = b\n", 3, "exec is set twice in [command A]");
	load_bad("[command A]\nexec =\n", 2, "exec: empty program");
	load_bad("[command A]\nexec = a\n\n[command A]\nexec = b\n", 4,
	         "duplicate handler for command type A (first on line 1");
	load_bad("workers = 2\n", 1, "\"workers\" is outside any section");
	load_bad("[lote]\nworkers 2\n", 2, "expected [section], key = value, or a comment");
	load_bad("[lote\n", 1, "section header without \"]\"");
	load_bad("[lote] x\n", 1, "unexpected text after the section header");
}

static void file_limits(void **state)
{
	char *text = malloc(LOTE_CONFIG_LINE_MAX + 64);
	(void)state;

	/* A continuation line is not one: it is an error, not a silent join. */
	load_bad("[command A]\nexec = a\n  more words\n", 3, "expected [section], key = value");
	snprintf(text, LOTE_CONFIG_LINE_MAX + 64, "[command A]\nexec = %0*d\n",
	         LOTE_CONFIG_LINE_MAX, 0);
	load_bad(text, 2, "line longer than 4096 bytes");
	free(text);
}

static void missing_file(void **state)
{
	lote__config cfg;
	lote_error err = { 0 };
	(void)state;

	lote__config_init(&cfg);
	assert_int_equal(lote__config_load_file(&cfg, "/nonexistent/lote.conf", &err),
	                 LOTE_ENOTFOUND);
	assert_string_equal(err.message, "config file /nonexistent/lote.conf: no such file");
	lote__config_done(&cfg);
}

static void set_by_name(void **state)
{
	lote__config cfg;
	lote_error err = { 0 };
	(void)state;

	lote__config_init(&cfg);
	assert_int_equal(lote__config_set(&cfg, "workers", "8", &err), 0);
	assert_int_equal(cfg.engine.workers, 8);
	assert_int_equal(lote__config_set(&cfg, "queues", "a,b", &err), 0);
	assert_string_equal(cfg.engine.queues, "a,b");
	assert_int_equal(lote__config_set(&cfg, "queues", "", &err), 0);
	assert_null(cfg.engine.queues);
	assert_int_equal(lote__config_set(&cfg, "workers", "300", &err), LOTE_EINVAL);
	assert_string_equal(err.message, "workers: 300 is out of range (1..256)");
	assert_int_equal(cfg.engine.workers, 8); /* untouched */
	assert_int_equal(lote__config_set(&cfg, "nope", "1", &err), LOTE_EINVAL);
	assert_string_equal(err.message, "unknown setting \"nope\"");
	assert_int_equal(lote__config_set(&cfg, "queues", "a,,b", &err), LOTE_EINVAL);
	assert_int_equal(lote__config_set(&cfg, "database_url", "", &err), LOTE_EINVAL);
	assert_string_equal(err.message, "database_url: must not be empty");
	lote__config_done(&cfg);
}

static void flags_override_file(void **state)
{
	char *path = write_conf("override.conf",
	                        "[lote]\nworkers = 4\npoll = 2s\n"
	                        "[command A]\nexec = from-file\ntimeout = 9s\n"
	                        "[command B]\nexec = b-from-file\n"
	                        "[event E]\nexec = e1\n[event E]\nexec = e2\n");
	lote__config cfg;
	lote_error err = { 0 };
	(void)state;

	lote__config_init(&cfg);
	assert_int_equal(lote__config_load_file(&cfg, path, &err), 0);
	/* cmd_run applies flags after the file, whatever their order. */
	assert_int_equal(lote__config_set(&cfg, "workers", "8", &err), 0);
	assert_int_equal(lote__config_add_handler(&cfg, LOTE_COMMAND, "A=from-flag x=y", &err), 0);
	assert_int_equal(lote__config_add_handler(&cfg, LOTE_EVENT, "E=e-flag", &err), 0);
	assert_int_equal(lote__config_add_handler(&cfg, LOTE_EVENT, "E=e-flag-2", &err), 0);
	assert_int_equal(lote__config_add_handler(&cfg, LOTE_COMMAND, "C=c", &err), 0);
	assert_int_equal(cfg.engine.workers, 8);
	assert_int_equal(cfg.engine.poll_ms, 2000);

	assert_int_equal(cfg.nhandlers, 5);
	assert_string_equal(cfg.handlers[0].type, "B");
	assert_string_equal(cfg.handlers[0].program, "b-from-file");
	assert_string_equal(cfg.handlers[1].type, "A");
	assert_string_equal(cfg.handlers[1].program, "from-flag x=y");
	assert_int_equal(cfg.handlers[1].timeout_ms, 0); /* the flag replaced it all */
	assert_string_equal(cfg.handlers[2].program, "e-flag");
	assert_string_equal(cfg.handlers[3].program, "e-flag-2");
	assert_string_equal(cfg.handlers[4].type, "C");

	assert_int_equal(lote__config_add_handler(&cfg, LOTE_COMMAND, "A=again", &err), LOTE_EINVAL);
	assert_non_null(strstr(err.message, "duplicate handler for command type A"));
	assert_int_equal(lote__config_add_handler(&cfg, LOTE_COMMAND, "A", &err), LOTE_EINVAL);
	assert_string_equal(err.message, "--exec \"A\": expected TYPE=PROGRAM");
	assert_int_equal(lote__config_add_handler(&cfg, LOTE_EVENT, "E=", &err), LOTE_EINVAL);
	assert_string_equal(err.message, "--exec-event E=: empty program");
	assert_int_equal(lote__config_add_handler(&cfg, LOTE_COMMAND, "=prog", &err), LOTE_EINVAL);
	assert_non_null(strstr(err.message, "invalid type"));
	assert_int_equal(cfg.nhandlers, 5);
	lote__config_done(&cfg);
	unlink(path);
	free(path);
}

static void help_lists_every_setting(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	(void)state;

	lote__config_print_help(f);
	fclose(f);
	for (int i = 0; i < lote__config_setting_count(); i++) {
		lote__setting_info s;
		char flag[64];
		lote__config_setting(i, &s);
		snprintf(flag, sizeof(flag), "    --%s", s.name);
		for (char *p = flag; *p; p++)
			if (*p == '_')
				*p = '-';
		assert_non_null(strstr(buf, flag));
	}
	assert_non_null(strstr(buf, "--no-listen"));
	assert_non_null(strstr(buf, "--workers N"));
	free(buf);
}

/* docs/config.md, found from this file's path (meson compiles it by a path
 * relative to the build directory, where tests run). */
static const char *docs_path(void)
{
	static char path[4096];
	const char *slash = strrchr(__FILE__, '/');

	snprintf(path, sizeof(path), "%.*s/../../docs/config.md",
	         slash ? (int)(slash - __FILE__) : 1, slash ? __FILE__ : ".");
	return path;
}

static char *read_docs(void)
{
	FILE *f;
	char *text;
	long n;

	f = fopen(docs_path(), "r");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)n + 1);
	if (fread(text, 1, (size_t)n, f) != (size_t)n)
		n = 0;
	fclose(f);
	return text;
}

static void docs_match_table(void **state)
{
	const char *begin_mark = "<!-- settings:begin -->\n", *end_mark = "<!-- settings:end -->";
	char *docs = read_docs(), *buf = NULL, *b, *e;
	size_t len = 0;
	FILE *f;
	(void)state;

	if (!docs) {
		print_message("docs/config.md not found from %s; skipped\n", __FILE__);
		skip();
	}
	f = open_memstream(&buf, &len);
	lote__config_print_markdown(f);
	fclose(f);
	b = strstr(docs, begin_mark);
	e = strstr(docs, end_mark);
	assert_non_null(b);
	assert_non_null(e);
	b += strlen(begin_mark);
	if (((size_t)(e - b) != len || memcmp(b, buf, len) != 0) && getenv("LOTE_UPDATE_DOCS")) {
		/* LOTE_UPDATE_DOCS=1: rewrite the table from the settings. */
		FILE *out = fopen(docs_path(), "w");
		assert_non_null(out);
		fwrite(docs, 1, (size_t)(b - docs), out);
		fwrite(buf, 1, len, out);
		fputs(e, out);
		fclose(out);
		print_message("docs/config.md updated\n");
	} else if ((size_t)(e - b) != len || memcmp(b, buf, len) != 0) {
		fail_msg("docs/config.md is out of date: run the unit test with LOTE_UPDATE_DOCS=1 "
		         "(from the build directory) to rewrite its settings table from the code");
	}
	free(buf);
	free(docs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults),
		cmocka_unit_test(sample_file),
		cmocka_unit_test(file_errors),
		cmocka_unit_test(file_limits),
		cmocka_unit_test(missing_file),
		cmocka_unit_test(set_by_name),
		cmocka_unit_test(flags_override_file),
		cmocka_unit_test(help_lists_every_setting),
		cmocka_unit_test(docs_match_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
