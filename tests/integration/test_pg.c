/* test_pg.c - the embedded cluster (`lote pg`, LOTE_HOME) as a user meets
 * it: no LOTE_DATABASE_URL, a fresh home, lote creating and starting the
 * cluster on demand. The homes live in a mkdtemp directory (0700), so as
 * root the postgres user cannot enter them and the relocation is exercised
 * too. Needs the PostgreSQL server programs, not tests/run.sh. */
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

static char base[] = "/tmp/lote-pgtest-XXXXXX";

static char *home_path(const char *name)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s", base, name) < 0)
		fail_msg("out of memory");
	return p;
}

/* Makes the lote children use home name (LOTE_HOME is inherited). */
static char *use_home(const char *name)
{
	char *home = home_path(name);
	setenv("LOTE_HOME", home, 1);
	return home;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 1 << 20);
	size_t n = f ? fread(buf, 1, (1 << 20) - 1, f) : 0;
	buf[n] = '\0';
	if (f)
		fclose(f);
	return buf;
}

/* The data directory: home/pgdata, or where home/cluster-location says. */
static char *data_dir(const char *home)
{
	char *loc = NULL, *p = NULL;
	if (asprintf(&loc, "%s/cluster-location", home) < 0)
		fail_msg("out of memory");
	if (access(loc, F_OK) == 0) {
		p = slurp(loc);
		p[strcspn(p, "\n")] = '\0';
	} else if (asprintf(&p, "%s/pgdata", home) < 0) {
		fail_msg("out of memory");
	}
	free(loc);
	return p;
}

/* How many times initdb ran for home (pg.log has a "== " line per run). */
static int initdb_runs(const char *home)
{
	char *path = NULL, *log, *line;
	int n = 0;
	if (asprintf(&path, "%s/pg.log", home) < 0)
		fail_msg("out of memory");
	log = slurp(path);
	for (line = log; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (strncmp(line, "== ", 3) == 0 && strstr(line, "/initdb ") &&
		    strstr(line, "/initdb ") < strchr(line, '\n'))
			n++;
	free(log);
	free(path);
	return n;
}

/* The lote conninfo printed by `lote pg url`. */
static char *pg_url(void)
{
	char *out = NULL;
	int st = tl_run_lote(NULL, &out, "pg", "url", NULL);
	if (st != 0)
		fail_msg("lote pg url: exit %d: %s", st, out);
	out[strcspn(out, "\n")] = '\0';
	return out;
}

static void test_lifecycle(void **state)
{
	char *home = use_home("one"), *out = NULL, *info, *data, *pidfile = NULL, *pid;
	PGconn *conn;
	(void)state;

	/* Nothing yet: not running, and status creates nothing. */
	assert_int_equal(tl_run_lote(NULL, &out, "pg", "status", NULL), 4);
	assert_non_null(strstr(out, "not created"));
	assert_int_not_equal(access(home, F_OK), 0);
	free(out);

	/* First use creates and starts it; as root it says where it went. */
	assert_int_equal(tl_run_lote(NULL, &out, "migrate", NULL), 0);
	if (geteuid() == 0)
		assert_non_null(strstr(out, "the postgres user cannot enter"));
	free(out);
	data = data_dir(home);
	assert_int_equal(initdb_runs(home), 1);

	info = pg_url();
	conn = tl_connect(info);
	assert_int_equal(tl_int(conn, "SELECT count(*) FROM pg_namespace WHERE nspname = 'lote'"), 1);
	tl_exec(conn, "CREATE TABLE public.kept (x int); INSERT INTO public.kept VALUES (42)");
	PQfinish(conn);

	assert_int_equal(tl_run_lote(NULL, &out, "pg", "status", NULL), 0);
	assert_non_null(strstr(out, "running (pid"));
	assert_non_null(strstr(out, data));
	free(out);

	/* Stop, then status says so. */
	assert_int_equal(tl_run_lote(NULL, &out, "pg", "stop", NULL), 0);
	free(out);
	assert_int_equal(tl_run_lote(NULL, &out, "pg", "status", NULL), 4);
	assert_non_null(strstr(out, "stopped"));
	free(out);
	/* Stopping a stopped cluster is fine. */
	assert_int_equal(tl_run_lote(NULL, &out, "pg", "stop", NULL), 0);
	free(out);

	/* Start again: same data. */
	assert_int_equal(tl_run_lote(NULL, &out, "pg", "start", NULL), 0);
	free(out);
	conn = tl_connect(info);
	assert_int_equal(tl_int(conn, "SELECT x FROM public.kept"), 42);
	PQfinish(conn);

	/* A postmaster killed with -9 leaves postmaster.pid behind: the next
	 * lote must still start it. */
	if (asprintf(&pidfile, "%s/postmaster.pid", data) < 0)
		fail_msg("out of memory");
	pid = slurp(pidfile);
	assert_true(atoi(pid) > 0);
	assert_int_equal(kill(atoi(pid), SIGKILL), 0);
	out = pg_url();
	assert_string_equal(out, info);
	conn = tl_connect(info);
	assert_int_equal(tl_int(conn, "SELECT x FROM public.kept"), 42);
	PQfinish(conn);
	assert_int_equal(initdb_runs(home), 1);

	free(out);
	free(pid);
	free(pidfile);
	free(info);
	free(data);
	free(home);
}

static void test_concurrent_first_use(void **state)
{
	char *home = use_home("two"), *logs[2];
	pid_t pids[2];
	(void)state;

	for (int i = 0; i < 2; i++) {
		char name[32];
		snprintf(name, sizeof(name), "concurrent-%d", i);
		logs[i] = tl_tmp_path(name);
		unlink(logs[i]);
		pids[i] = tl_spawn_lote(NULL, logs[i], "migrate", NULL);
	}
	for (int i = 0; i < 2; i++) {
		int st = 0;
		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			char *out = slurp(logs[i]);
			fail_msg("concurrent lote migrate %d: status %d: %s", i, st, out);
		}
		unlink(logs[i]);
		free(logs[i]);
	}
	assert_int_equal(initdb_runs(home), 1);
	free(home);
}

static void test_database_url_note(void **state)
{
	char *home = use_home("three"), *out = NULL;
	(void)state;

	/* pg status looks at the embedded cluster anyway, and says that the
	 * other commands would not. */
	assert_int_equal(tl_run_lote("host=/nonexistent dbname=x", &out, "pg", "status", NULL), 4);
	assert_non_null(strstr(out, "LOTE_DATABASE_URL is set"));
	free(out);
	assert_int_not_equal(access(home, F_OK), 0);
	free(home);
}

static int setup(void **state)
{
	(void)state;
	unsetenv("LOTE_DATABASE_URL");
	if (!mkdtemp(base)) {
		fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* Stops every cluster and removes every trace, relocated ones included. */
static int teardown(void **state)
{
	static const char *const homes[] = { "one", "two", "three" };
	(void)state;

	for (size_t i = 0; i < sizeof(homes) / sizeof(homes[0]); i++) {
		char *home = use_home(homes[i]), *data = data_dir(home), *cmd = NULL;
		char *out = NULL;
		if (access(home, F_OK) == 0) {
			int st = tl_run_lote(NULL, &out, "pg", "stop", NULL);
			if (st != 0)
				fprintf(stderr, "# lote pg stop %s: exit %d: %s\n", home, st, out);
			free(out);
		}
		if (strncmp(data, base, strlen(base)) != 0 &&
		    asprintf(&cmd, "rm -rf '%s'", dirname(data)) > 0) {
			if (system(cmd) != 0)
				fprintf(stderr, "# %s failed\n", cmd);
			free(cmd);
		}
		free(data);
		free(home);
	}
	{
		char *cmd = NULL;
		if (asprintf(&cmd, "rm -rf '%s'", base) > 0 && system(cmd) != 0)
			fprintf(stderr, "# %s failed\n", cmd);
		free(cmd);
	}
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lifecycle),
		cmocka_unit_test(test_concurrent_first_use),
		cmocka_unit_test(test_database_url_note),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
