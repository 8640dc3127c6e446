/* testlib.c - see testlib.h. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

static char *vfmt(const char *fmt, va_list ap)
{
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		fail_msg("out of memory");
	return s;
}

static const char *admin_url(void)
{
	const char *u = getenv("LOTE_TEST_ADMIN_URL");
	if (!u || !*u)
		fail_msg("LOTE_TEST_ADMIN_URL is not set: run the suite with `make test` "
		         "(tests/run.sh starts the test PostgreSQL)");
	return u;
}

static void quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

PGconn *tl_connect(const char *conninfo)
{
	PGconn *c = PQconnectdb(conninfo);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("connect %s: %s", conninfo, PQerrorMessage(c));
	PQsetNoticeProcessor(c, quiet, NULL);
	return c;
}

/* Children this test program started (engines, lote processes), so that
 * a failed assertion — which leaves the test function at once — never
 * leaves one running into the next test's database. */
static pid_t children[256];
static int nchildren;

static void track(pid_t pid)
{
	if (nchildren < (int)(sizeof(children) / sizeof(children[0])))
		children[nchildren++] = pid;
}

static void untrack(pid_t pid)
{
	for (int i = 0; i < nchildren; i++)
		if (children[i] == pid)
			children[i] = children[--nchildren];
}

static void kill_children(void)
{
	for (int i = 0; i < nchildren; i++) {
		/* the group too: an engine's workers stop with it anyway */
		kill(children[i], SIGKILL);
		waitpid(children[i], NULL, 0);
	}
	nchildren = 0;
}

char *tl_fresh_db(const char *name, bool migrate)
{
	static bool registered;
	if (!registered) {
		atexit(kill_children);
		registered = true;
	}
	kill_children();
	{
	char db[64], *info = NULL;
	PGconn *admin = tl_connect(admin_url());
	snprintf(db, sizeof(db), "t_%s", name);
	tl_exec(admin, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", db);
	tl_exec(admin, "CREATE DATABASE \"%s\"", db);
	PQfinish(admin);
	if (asprintf(&info, "%s dbname=%s", admin_url(), db) < 0)
		fail_msg("out of memory");
	if (migrate) {
		lote_error err = { 0 };
		PGconn *c = tl_connect(info);
		if (lote_migrate(c, NULL, &err) < 0)
			fail_msg("migrate: %s", err.message);
		PQfinish(c);
	}
	return info;
	}
}

static PGresult *vrun(PGconn *conn, const char *fmt, va_list ap, char **ret_err)
{
	char *sql = vfmt(fmt, ap);
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		char *msg = strdup(PQresultErrorMessage(res));
		PQclear(res);
		if (!ret_err)
			fail_msg("SQL failed: %s\n  %s", sql, msg);
		*ret_err = msg;
		free(sql);
		return NULL;
	}
	free(sql);
	return res;
}

void tl_exec(PGconn *conn, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	PQclear(vrun(conn, fmt, ap, NULL));
	va_end(ap);
}

char *tl_try(PGconn *conn, const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;
	va_start(ap, fmt);
	PQclear(vrun(conn, fmt, ap, &msg));
	va_end(ap);
	return msg;
}

static char *vvalue(PGconn *conn, const char *fmt, va_list ap);

void tl_rejected(PGconn *conn, const char *sql, const char *want, const char *state_sql)
{
	char *before = state_sql ? strdup(tl_value(conn, "%s", state_sql)) : NULL;
	char *e = tl_try(conn, "%s", sql);
	if (!e || !strstr(e, want))
		fail_msg("%s\n  said: %s\n  wanted: %s", sql, e ? e : "(accepted)", want);
	free(e);
	if (state_sql)
		assert_string_equal(tl_value(conn, "%s", state_sql), before);
	free(before);
}

static char *vvalue_str_inner(PGconn *conn, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *v = vvalue(conn, fmt, ap);
	va_end(ap);
	return v;
}
#define vvalue_str(conn, sql) vvalue_str_inner((conn), "%s", (sql))

static char *vvalue(PGconn *conn, const char *fmt, va_list ap)
{
	PGresult *res = vrun(conn, fmt, ap, NULL);
	char *v = NULL;
	if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
		v = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return v;
}

/* Values handed out by tl_value, freed at exit (before LeakSanitizer's
 * check, which was registered earlier and so runs later). */
struct kept {
	struct kept *next;
	char *value;
};
static struct kept *kept;

static void free_kept(void)
{
	while (kept) {
		struct kept *k = kept;
		kept = k->next;
		free(k->value);
		free(k);
	}
}

const char *tl_value(PGconn *conn, const char *fmt, ...)
{
	va_list ap;
	struct kept *k;
	va_start(ap, fmt);
	char *v = vvalue(conn, fmt, ap);
	va_end(ap);
	if (!v)
		return NULL;
	k = malloc(sizeof(*k));
	if (!k)
		fail_msg("out of memory");
	if (!kept)
		atexit(free_kept);
	k->value = v;
	k->next = kept;
	kept = k;
	return v;
}

long long tl_int(PGconn *conn, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *v = vvalue(conn, fmt, ap);
	va_end(ap);
	if (!v)
		fail_msg("expected an integer, got NULL");
	long long n = atoll(v);
	free(v);
	return n;
}

bool tl_wait(PGconn *conn, int timeout_ms, const char *fmt, ...)
{
	char *sql;
	va_list ap;
	va_start(ap, fmt);
	sql = vfmt(fmt, ap);
	va_end(ap);
	for (int waited = 0;; waited += 20) {
		char *v = vvalue_str(conn, sql);
		bool yes = v && strcmp(v, "t") == 0;
		free(v);
		if (yes) {
			free(sql);
			return true;
		}
		if (waited >= timeout_ms)
			break;
		usleep(20000);
	}
	free(sql);
	return false;
}

const char *tl_lote_bin(void)
{
	const char *b = getenv("LOTE_BIN");
	if (!b)
		fail_msg("LOTE_BIN is not set (meson sets it)");
	return b;
}

static pid_t vspawn(const char *conninfo, const char *log_path, int out_fd, va_list ap)
{
	const char *argv[64];
	int n = 0;
	argv[n++] = tl_lote_bin();
	for (const char *a; n < 63 && (a = va_arg(ap, const char *)) != NULL;)
		argv[n++] = a;
	argv[n] = NULL;
	pid_t pid = fork();
	if (pid < 0)
		fail_msg("fork: %s", strerror(errno));
	if (pid == 0) {
		if (conninfo)
			setenv("LOTE_DATABASE_URL", conninfo, 1);
		int fd = out_fd;
		if (log_path)
			fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		int null = open("/dev/null", O_RDONLY);
		dup2(null, 0);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

pid_t tl_spawn_lote(const char *conninfo, const char *log_path, ...)
{
	va_list ap;
	va_start(ap, log_path);
	pid_t pid = vspawn(conninfo, log_path, -1, ap);
	va_end(ap);
	track(pid);
	return pid;
}

int tl_run_lote(const char *conninfo, char **ret_output, ...)
{
	char *path = tl_tmp_path("run-output");
	unlink(path);
	va_list ap;
	va_start(ap, ret_output);
	pid_t pid = vspawn(conninfo, path, -1, ap);
	va_end(ap);
	int st = 0;
	waitpid(pid, &st, 0);
	if (ret_output) {
		FILE *f = fopen(path, "r");
		char *buf = calloc(1, 1 << 20);
		size_t n = f ? fread(buf, 1, (1 << 20) - 1, f) : 0;
		buf[n] = '\0';
		if (f)
			fclose(f);
		*ret_output = buf;
	}
	unlink(path);
	free(path);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int tl_stop(pid_t pid, int sig, int timeout_ms)
{
	int st;
	untrack(pid);
	kill(pid, sig);
	for (int waited = 0; waited < timeout_ms; waited += 10) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

char *tl_tmp_path(const char *name)
{
	char *p = NULL;
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	if (asprintf(&p, "%s/lote-t-%d-%s", dir, (int)getpid(), name) < 0)
		fail_msg("out of memory");
	return p;
}

char *tl_script(const char *name, const char *body)
{
	char *p = tl_tmp_path(name);
	FILE *f = fopen(p, "w");
	if (!f)
		fail_msg("cannot write %s: %s", p, strerror(errno));
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	chmod(p, 0755);
	return p;
}

pid_t tl_start_engine(const char *conninfo, const lote_engine_options *opts,
                      void (*reg)(lote_engine *e))
{
	pid_t pid = fork();
	if (pid < 0)
		fail_msg("fork: %s", strerror(errno));
	if (pid == 0) {
		lote_engine_options o;
		lote_engine *e = NULL;
		lote_error err = { 0 };
		/* cmocka catches crash signals in the test process; an engine
		 * must see them as a real program would */
		signal(SIGSEGV, SIG_DFL);
		signal(SIGBUS, SIG_DFL);
		signal(SIGILL, SIG_DFL);
		signal(SIGFPE, SIG_DFL);
		signal(SIGABRT, SIG_DFL);
		if (opts) {
			o = *opts;
		} else {
			lote_engine_options_init(&o);
			o.grace_ms = 10000;
		}
		o.conninfo = conninfo;
		if (lote_engine_new(&o, &e, &err) < 0) {
			fprintf(stderr, "engine: %s\n", err.message);
			_exit(1);
		}
		reg(e);
		if (lote_engine_run(e, &err) < 0) {
			fprintf(stderr, "engine: %s\n", err.message);
			_exit(1);
		}
		lote_engine_free(e);
		_exit(0);
	}
	track(pid);
	return pid;
}

void tl_on_command(lote_engine *e, const char *type, lote_handler_fn fn, void *udata,
                   int timeout_ms)
{
	lote_error err = { 0 };
	lote_handler_opts o = { .timeout_ms = timeout_ms };
	if (lote_engine_on_command(e, type, fn, udata, &o, &err) < 0) {
		fprintf(stderr, "register %s: %s\n", type, err.message);
		_exit(1);
	}
}

void tl_on_event(lote_engine *e, const char *type, lote_handler_fn fn, void *udata)
{
	lote_error err = { 0 };
	if (lote_engine_on_event(e, type, fn, udata, NULL, &err) < 0) {
		fprintf(stderr, "register %s: %s\n", type, err.message);
		_exit(1);
	}
}

int tl_ctx_sql(lote_ctx *ctx, const char *sql, int n, const char *const *params)
{
	PGconn *c = lote_ctx_conn(ctx);
	PGresult *res;
	int ok;
	if (!c)
		return LOTE_EDB;
	res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
	PQclear(res);
	return ok ? 0 : lote_ctx_fail(ctx, "sql failed: %s", PQerrorMessage(c));
}

int tl_record_run(lote_ctx *ctx)
{
	char id[24], attempt[16], pid[16];
	const char *p[4] = { lote_ctx_kind(ctx) == LOTE_COMMAND ? "command" : "event", id, attempt, pid };
	snprintf(id, sizeof(id), "%lld", (long long)lote_ctx_id(ctx));
	snprintf(attempt, sizeof(attempt), "%d", lote_ctx_attempt(ctx));
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	return tl_ctx_sql(ctx, "INSERT INTO runs (kind, id, attempt, pid) VALUES ($1, $2, $3, $4)", 4, p);
}

void tl_runs_table(PGconn *conn)
{
	/* tx: the top-level transaction of the write, to see which rows
	 * shared one */
	tl_exec(conn, "CREATE TABLE runs (kind text, id bigint, attempt int, pid int,"
	              " at timestamptz DEFAULT clock_timestamp(), tx bigint DEFAULT txid_current())");
}

PGconn *tl_fresh_runs(const char *name, char **db)
{
	PGconn *c;
	free(*db);
	*db = tl_fresh_db(name, true);
	c = tl_connect(*db);
	tl_runs_table(c);
	return c;
}
