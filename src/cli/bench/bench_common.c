/* bench_common.c - what every measurement of `lote bench` uses: shared
 * memory, clocks, the built-in handlers, the engine in a child process,
 * CPU and memory from /proc (see bench.h). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"
#include "db.h"

struct bench_shared *bench_shared_new(long cap)
{
	size_t len = sizeof(struct bench_shared) + (size_t)cap * sizeof(struct bench_stamp);
	struct bench_shared *sh = mmap(NULL, len, PROT_READ | PROT_WRITE,
	                         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return NULL;
	sh->cap = cap; /* the mapping comes zeroed */
	return sh;
}

void bench_shared_free(struct bench_shared *sh)
{
	if (sh)
		munmap(sh, sizeof(struct bench_shared) + (size_t)sh->cap * sizeof(struct bench_stamp));
}

int64_t bench_clock_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double bench_mono_s(void)
{
	return (double)bench_clock_ns(CLOCK_MONOTONIC) / 1e9;
}

int64_t bench_round_pos(double x)
{
	return (int64_t)(x + 0.5);
}

double bench_round3(double x)
{
	return (double)(x < 0 ? -bench_round_pos(-x * 1000) : bench_round_pos(x * 1000)) / 1000;
}

void bench_sleep_ms(double ms)
{
	int64_t ns = bench_round_pos(ms * 1e6);
	struct timespec ts = { (time_t)(ns / 1000000000), (long)(ns % 1000000000) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double bench_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---------------------------------------------------------------------
 * Handlers and hooks. They run in the engine's worker processes.
 */

static void on_committed(lote_kind kind, int n, void *udata)
{
	struct bench_shared *sh = udata;
	(void)kind;
	atomic_fetch_add_explicit(&sh->handled, n, memory_order_relaxed);
}

int bench_noop_handler(lote_ctx *ctx, void *udata)
{
	(void)ctx;
	(void)udata;
	return 0;
}

/* Latency: the start time goes into the next free slot. */
int bench_stamp_handler(lote_ctx *ctx, void *udata)
{
	struct bench_shared *sh = udata;
	int64_t ns = bench_clock_ns(CLOCK_REALTIME);
	long i = atomic_fetch_add(&sh->nstamps, 1);

	if (i < sh->cap) {
		sh->stamps[i].ns = ns;
		atomic_store_explicit(&sh->stamps[i].id, lote_ctx_id(ctx), memory_order_release);
	}
	return 0;
}

/* Backlog: work that takes a while, as real handlers do (I/O, mostly). */
int bench_busy_handler(lote_ctx *ctx, void *udata)
{
	struct bench_shared *sh = udata;
	(void)ctx;
	if (sh->busy_us > 0)
		bench_sleep_ms((double)sh->busy_us / 1000.0);
	return 0;
}

/* Fan-out: the event's listener creates one batch of sh->members no-op
 * commands ("member") whose follow-up is a "followup" command, in the
 * listener's transaction. */
int bench_fanout_handler(lote_ctx *ctx, void *udata)
{
	struct bench_shared *sh = udata;
	json_t *members = json_array(), *next = json_pack("{s:s}", "type", "followup");
	lote_error err = { 0 };
	int rc;

	for (long i = 0; members && i < sh->members; i++)
		json_array_append_new(members, json_pack("{s:s, s:{s:I}}", "type", "member",
		                                         "data", "i", (json_int_t)i));
	if (!members || !next) {
		json_decref(members);
		json_decref(next);
		return lote_ctx_fail(ctx, "out of memory");
	}
	rc = lote_ctx_batch(ctx, "bench.fanout", members, next, NULL, &err);
	json_decref(members);
	json_decref(next);
	return rc < 0 ? lote_ctx_fail(ctx, "%s", err.message) : 0;
}

/* Worker mode: one write() per line, so lines of concurrent worker
 * processes sharing the pipe never interleave (PIPE_BUF is at least 512). */
void bench_write_line(const char *line, size_t len)
{
	while (len > 0) {
		ssize_t w = write(STDOUT_FILENO, line, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		line += w;
		len -= (size_t)w;
	}
}

int bench_print_stamp_handler(lote_ctx *ctx, void *udata)
{
	char line[64];
	int len = snprintf(line, sizeof(line), "START %lld %lld\n",
	                   (long long)lote_ctx_id(ctx), (long long)bench_clock_ns(CLOCK_REALTIME));
	(void)udata;
	bench_write_line(line, (size_t)len);
	return 0;
}

/* ---------------------------------------------------------------------
 * The engine in a child process.
 */

int bench_default_batch(void)
{
	lote_engine_options o;
	lote_engine_options_init(&o);
	return o.batch;
}

/* The child: builds the engine and runs it until SIGTERM. Never returns. */
static void engine_child(const struct bench_engine_spec *sp, pid_t parent)
{
	lote_engine_options o;
	lote_engine *e = NULL;
	lote_error err = { 0 };
	char *types = strdup(sp->types), *save = NULL;
	int status = 1;

	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	/* An engine outliving a killed bench would keep the database busy. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent || !types)
		_exit(1);
	lote_engine_options_init(&o);
	o.conninfo = sp->conninfo;
	o.workers = sp->workers;
	o.batch = sp->batch;
	o.grace_ms = 10000;
	o.name = sp->name;
	o.on_committed = on_committed;
	o.on_committed_udata = sp->sh;
	if (lote_engine_new(&o, &e, &err) < 0)
		goto out;
	for (char *t = strtok_r(types, ",", &save); t; t = strtok_r(NULL, ",", &save))
		if (lote_engine_on_command(e, t, sp->fn, sp->sh, NULL, &err) < 0)
			goto out;
	for (const struct bench_handler *h = sp->more; h < sp->more + 4 && h->type; h++)
		if ((h->event ? lote_engine_on_event : lote_engine_on_command)(e, h->type, h->fn,
		        sp->sh, NULL, &err) < 0)
			goto out;
	if (lote_engine_run(e, &err) < 0)
		goto out;
	status = 0;
out:
	if (status != 0)
		cli_error("bench", "engine: %s", err.message);
	lote_engine_free(e);
	free(types);
	_exit(status);
}

pid_t bench_engine_start(const struct bench_engine_spec *sp)
{
	pid_t parent = getpid(), pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		cli_error("bench", "cannot fork the engine: %s", strerror(errno));
		return -1;
	}
	if (pid == 0)
		engine_child(sp, parent);
	return pid;
}

static double children_cpu_s(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_CHILDREN, &ru) < 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

int bench_engine_stop(pid_t pid, double *cpu_s)
{
	double before = children_cpu_s();
	int st = 0;

	kill(pid, SIGTERM);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (cpu_s)
		*cpu_s = children_cpu_s() - before;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

bool bench_engine_gone(pid_t pid, int *ret_status)
{
	int st;
	if (waitpid(pid, &st, WNOHANG) != pid)
		return false;
	*ret_status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return true;
}

/* Registered: rows in lote.workers since since_ts; listening: moved past
 * their registration to LISTEN or later (pg_stat_activity shows their last
 * statement). */
int bench_wait_listening(PGconn *conn, const char *name, const char *since_ts,
                         int workers, pid_t engine)
{
	char pattern[160], want[16];
	const char *params[3] = { pattern, since_ts, want };
	double deadline = bench_mono_s() + READY_TIMEOUT_MS / 1000.0;
	int st;

	snprintf(pattern, sizeof(pattern), "%s worker %%", name);
	snprintf(want, sizeof(want), "%d", workers);
	for (;;) {
		lote_error err = { 0 };
		char *v = NULL;

		if (lote__db_value(conn,
		        "SELECT (SELECT count(*) FROM lote.workers WHERE started_at >= $2::timestamptz)"
		        "   >= $3::int"
		        " AND (SELECT count(*) FROM pg_stat_activity"
		        "      WHERE application_name LIKE $1"
		        "        AND query NOT LIKE 'INSERT INTO lote.workers%'"
		        "        AND NOT (state = 'active' AND query LIKE 'LISTEN%')) >= $3::int",
		        3, params, &v, &err) < 0) {
			cli_error("bench", "%s", err.message);
			return -1;
		}
		bool ok = v && strcmp(v, "t") == 0;
		free(v);
		if (ok)
			return 0;
		if (bench_engine_gone(engine, &st)) {
			cli_error("bench", "the engine exited during start-up (status %d)", st);
			return -1;
		}
		if (bench_mono_s() > deadline) {
			cli_error("bench", "the engine's workers were not listening after %d s",
			          READY_TIMEOUT_MS / 1000);
			return -1;
		}
		bench_sleep_ms(5);
	}
}

/* ---------------------------------------------------------------------
 * /proc
 */

/* Fields of /proc/PID/stat after the command name: ppid, and the CPU
 * ticks of the process (utime + stime) and of its reaped children
 * (cutime + cstime). false when unreadable (another host, no /proc). */
static bool proc_stat(long pid, long *ppid, double *self, double *children)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = '\0';
	char *p = strrchr(buf, ')');
	unsigned long ut, st;
	long cut, cst;
	/* state ppid pgrp session tty tpgid flags minflt cminflt majflt
	 * cmajflt utime stime cutime cstime */
	if (!p || sscanf(p + 1, " %*c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %ld %ld",
	                 ppid, &ut, &st, &cut, &cst) != 5)
		return false;
	double hz = (double)sysconf(_SC_CLK_TCK);
	*self = (double)(ut + st) / hz;
	*children = (double)(cut + cst) / hz;
	return true;
}

/* The postmaster, its live children (backends, walwriter, ...) and the
 * children it reaped (the engine's connections, once closed). */
double bench_server_cpu_s(PGconn *conn)
{
	long backend = bench_query_long(conn, "SELECT pg_backend_pid()"), postmaster, ppid;
	double self, children, total;
	if (backend <= 0 || !proc_stat(backend, &postmaster, &self, &children))
		return -1;
	if (!proc_stat(postmaster, &ppid, &self, &children))
		return -1;
	total = self + children;
	DIR *d = opendir("/proc");
	if (!d)
		return -1;
	for (struct dirent *de; (de = readdir(d)); ) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0 || pid == postmaster)
			continue;
		if (proc_stat(pid, &ppid, &self, &children) && ppid == postmaster)
			total += self;
	}
	closedir(d);
	return total;
}


/* Pss of one process from /proc/PID/smaps_rollup, KiB; -1 if unreadable. */
static long pss_kb(long pid)
{
	char path[64], line[256];
	long kb = -1;
	snprintf(path, sizeof(path), "/proc/%ld/smaps_rollup", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Pss: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* The engine's supervisor and its workers (children of pid); the bench
 * process itself is not counted. */
long bench_tree_pss_kb(pid_t pid, int *ret_procs)
{
	long total = pss_kb(pid), ppid, kb;
	double self, children;
	int procs = 1;
	DIR *d;

	if (total < 0 || !(d = opendir("/proc")))
		return -1;
	for (struct dirent *de; (de = readdir(d)); ) {
		char *end;
		long child = strtol(de->d_name, &end, 10);
		if (*end || child <= 0 || child == pid)
			continue;
		if (proc_stat(child, &ppid, &self, &children) && ppid == pid &&
		    (kb = pss_kb(child)) >= 0) {
			total += kb;
			procs++;
		}
	}
	closedir(d);
	if (ret_procs)
		*ret_procs = procs;
	return total;
}
