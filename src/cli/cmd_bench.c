/* cmd_bench.c - `lote bench`: enqueue rate, drain rate and commit-to-start
 * latency of the engine, measured with no-op handlers built in here, plus
 * `lote bench worker`, the worker CLI the peer harness drives
 * (../shared/peers/README.md §6).
 *
 * Speed targets live in these benchmarks only, never in timed tests. Each
 * measurement runs in a scratch database (lote_bench) dropped, recreated and
 * migrated first, so figures of different runs start from the same state.
 *
 * Processes: the engine runs in a forked child (its supervisor forks the
 * workers); the handlers report through a MAP_SHARED anonymous mapping made
 * before that fork, so the bench learns what committed without polling the
 * database: on_committed adds to a counter, the latency handler writes its
 * start time into a slot. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "db.h"
#include "log.h"

/* The largest inputs a user can make the bench allocate or wait for. */
#define MAX_N 10000000          /* commands per measurement */
#define MAX_LATENCY_SAMPLES 200000
#define WARMUP_SINGLE 200       /* enqueue calls before the clock starts */
#define WARMUP_LATENCY 20       /* commands run one at a time before sampling */
#define PREFILL_CHUNK 10000     /* drain prefill: commands per statement */
#define READY_TIMEOUT_MS 30000  /* engine start-up, worker mode and latency */
#define HANDLED_EVERY_MS 5      /* worker mode: HANDLED lines at most this often */
#define NIL_UUID "00000000-0000-0000-0000-000000000000"

static const char usage[] =
	"NAME\n"
	"    lote bench - measure enqueue, drain and latency\n"
	"\n"
	"SYNOPSIS\n"
	"    lote bench enqueue [--n N] [COMMON]\n"
	"    lote bench drain [--n N] [--workers W] [--batch B] [COMMON]\n"
	"    lote bench batch [--n N] [--workers W] [--batch B] [--reps R] [COMMON]\n"
	"    lote bench latency [--rate R] [--seconds S] [--workers W] [--batch B] [COMMON]\n"
	"    lote bench all [OPTIONS] [COMMON]\n"
	"    lote bench worker --db URL [--handler noop|stamp] [--concurrency C]\n"
	"                      [--batch B] [--types LIST] [--wait-go]\n"
	"\n"
	"DESCRIPTION\n"
	"    Measures the engine with no-op handlers built into this command. Each\n"
	"    measurement drops, recreates and migrates a scratch database (default\n"
	"    lote_bench) on the server named by LOTE_DATABASE_URL (or the embedded\n"
	"    cluster), then runs VACUUM ANALYZE and CHECKPOINT before the clock\n"
	"    starts. The role needs CREATEDB; CHECKPOINT is skipped with a warning\n"
	"    when it is not allowed. Shared machines are noisy: compare medians of\n"
	"    several runs, side by side in one run (bench/run.sh does that with\n"
	"    graphile-worker and pg-boss; see BENCHMARKS.md).\n"
	"\n"
	"    enqueue\n"
	"        One by one: N calls of lote.enqueue from one client, each its own\n"
	"        autocommit transaction (after 200 warm-up calls). Bulk: N calls of\n"
	"        lote.enqueue in one statement and transaction (SELECT ... FROM\n"
	"        generate_series); and bulk raw: one INSERT ... SELECT of N rows into\n"
	"        lote.commands (the floor under any bulk path).\n"
	"    drain\n"
	"        Prefills N commands (bulk, checkpointed), starts an engine with W\n"
	"        worker processes claiming B rows at a time, and times from its\n"
	"        start until all N outcomes have committed and no command is left\n"
	"        pending or processing. Worker start-up is inside the figure,\n"
	"        process creation barely. Checks at the end that N rows are success.\n"
	"    batch\n"
	"        Drains N plain commands (as drain), then one batch of N members with\n"
	"        a follow-up, with the same workers, and reports both rates and their\n"
	"        ratio: what batch membership and exactly-once completion cost. The\n"
	"        batch's clock stops when its follow-up has run and committed.\n"
	"        The two alternate --reps times (default 3); the ratio reported\n"
	"        is the median of the pairs' ratios. Defaults: N 100000, W 8.\n"
	"    latency\n"
	"        With an idle engine running, enqueues one command every 1/R s for\n"
	"        S s, each in its own transaction (after 20 warm-up commands). The\n"
	"        handler stamps CLOCK_REALTIME on entry. commit->start is that stamp\n"
	"        minus the moment the enqueue's COMMIT returned; call->start counts\n"
	"        from just before the call. Reports p50, p95, p99 and max in ms.\n"
	"    all\n"
	"        enqueue, drain and latency, in that order.\n"
	"    worker\n"
	"        The worker of the peer harness (bench/engine.sql, bench/run.sh):\n"
	"        runs an engine on the database URL with --concurrency worker\n"
	"        processes claiming --batch rows at a time, for the command types\n"
	"        in --types (default noop,lat). Prints READY, then HANDLED <n>\n"
	"        (commands whose outcome committed, cumulative) at most every 5 ms\n"
	"        when it changed. --handler stamp prints START <id> <CLOCK_REALTIME\n"
	"        ns> on entering the handler. Without --wait-go, READY means every\n"
	"        worker process has registered and issued LISTEN (they may already\n"
	"        be claiming). With --wait-go, READY means the database is reachable\n"
	"        and migrated; the engine (fork, connect, LISTEN, claim) starts only\n"
	"        after a line (GO) is read on standard input, so worker start-up is\n"
	"        inside the harness's clock. SIGTERM or SIGINT stops the engine\n"
	"        gracefully (in-flight commands finish and commit), prints the final\n"
	"        HANDLED and exits 0.\n"
	"\n"
	"    With --json, drain, batch and enqueue records carry commands_per_sec\n"
	"    (and jobs_per_sec, the peer harness's name); latency records carry\n"
	"    p50_ms, p95_ms and p99_ms of commit->start at the top level.\n"
	"\n"
	"OPTIONS\n"
	"    --n N, --commands N\n"
	"                     commands (enqueue: 20000, drain: 50000)\n"
	"    --workers W      worker processes (default 2, the engine default)\n"
	"    --batch B        most rows per claim (default: the engine's, 1000)\n"
	"    --rate R         latency: commands per second (default 20)\n"
	"    --seconds S      latency: how long to enqueue (default 10)\n"
	"    --reps R         batch: plain/batch pairs (default 3)\n"
	"    --max-seconds S  drain: give up and report a partial rate after S s\n"
	"                     (default 300)\n"
	"    --database NAME  the scratch database (default lote_bench); it is\n"
	"                     DROPPED and recreated\n"
	"    --json           one JSON object per measurement on standard output\n"
	"                     (the record format of the peer harness), nothing else\n"
	"    -h, --help       show this text\n"
	"\n"
	"WORKER OPTIONS\n"
	"    --db URL         database (default LOTE_DATABASE_URL); must be migrated\n"
	"    --handler NAME   noop (default) or stamp\n"
	"    --concurrency C  worker processes (default 2)\n"
	"    --batch B        most rows per claim (default: the engine's, 1000)\n"
	"    --types LIST     comma-separated command types to handle (noop,lat)\n"
	"    --wait-go        start the engine only after reading GO on stdin\n"
	"\n"
	"EXIT STATUS\n"
	"    0 measured (worker: stopped by a signal); 1 a measurement failed or\n"
	"    did not complete; 2 bad command line; 3 database unreachable, or the\n"
	"    scratch database cannot be created or migrated.\n";

/* ---------------------------------------------------------------------
 * Shared memory between the bench and the engine's processes.
 */

struct stamp {
	_Atomic int64_t id;  /* written last (release): 0 while incomplete */
	int64_t ns;          /* CLOCK_REALTIME when the handler started */
};

struct shared {
	_Atomic long handled;  /* outcomes committed (on_committed) */
	_Atomic long nstamps;  /* slots taken in stamps */
	long cap;              /* slots in stamps */
	struct stamp stamps[]; /* latency samples, in start order */
};

/* Maps a shared region with room for cap stamps; NULL on failure. Owned by
 * the caller (shared_free); forked children inherit it. */
static struct shared *shared_new(long cap)
{
	size_t len = sizeof(struct shared) + (size_t)cap * sizeof(struct stamp);
	struct shared *sh = mmap(NULL, len, PROT_READ | PROT_WRITE,
	                         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return NULL;
	sh->cap = cap; /* the mapping comes zeroed */
	return sh;
}

static void shared_free(struct shared *sh)
{
	if (sh)
		munmap(sh, sizeof(struct shared) + (size_t)sh->cap * sizeof(struct stamp));
}

static int64_t clock_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double mono_s(void)
{
	return (double)clock_ns(CLOCK_MONOTONIC) / 1e9;
}

/* Rounding without libm (the binary does not link it): x >= 0. */
static int64_t round_pos(double x)
{
	return (int64_t)(x + 0.5);
}

/* x rounded to 3 decimals, for the JSON records. */
static double round3(double x)
{
	return (double)(x < 0 ? -round_pos(-x * 1000) : round_pos(x * 1000)) / 1000;
}

static void sleep_ms(double ms)
{
	int64_t ns = round_pos(ms * 1e6);
	struct timespec ts = { (time_t)(ns / 1000000000), (long)(ns % 1000000000) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---------------------------------------------------------------------
 * Handlers and hooks. They run in the engine's worker processes.
 */

static void on_committed(lote_kind kind, int n, void *udata)
{
	struct shared *sh = udata;
	(void)kind;
	atomic_fetch_add_explicit(&sh->handled, n, memory_order_relaxed);
}

static int noop_handler(lote_ctx *ctx, void *udata)
{
	(void)ctx;
	(void)udata;
	return 0;
}

/* Latency: the start time goes into the next free slot. */
static int stamp_handler(lote_ctx *ctx, void *udata)
{
	struct shared *sh = udata;
	int64_t ns = clock_ns(CLOCK_REALTIME);
	long i = atomic_fetch_add(&sh->nstamps, 1);

	if (i < sh->cap) {
		sh->stamps[i].ns = ns;
		atomic_store_explicit(&sh->stamps[i].id, lote_ctx_id(ctx), memory_order_release);
	}
	return 0;
}

/* Worker mode: one write() per line, so lines of concurrent worker
 * processes sharing the pipe never interleave (PIPE_BUF is at least 512). */
static void write_line(const char *line, size_t len)
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

static int print_stamp_handler(lote_ctx *ctx, void *udata)
{
	char line[64];
	int len = snprintf(line, sizeof(line), "START %lld %lld\n",
	                   (long long)lote_ctx_id(ctx), (long long)clock_ns(CLOCK_REALTIME));
	(void)udata;
	write_line(line, (size_t)len);
	return 0;
}

/* ---------------------------------------------------------------------
 * The engine in a child process.
 */

/* Without --batch, the engine's own default: the bench measures what an
 * untuned `lote run` does. */
static int default_batch(void)
{
	lote_engine_options o;
	lote_engine_options_init(&o);
	return o.batch;
}

struct engine_spec {
	const char *conninfo;
	const char *name;       /* application_name prefix, unique per bench */
	const char *types;      /* comma list of command types */
	int workers, batch;
	lote_handler_fn fn;
	struct shared *sh;      /* handler udata and on_committed counter */
};

/* The child: builds the engine and runs it until SIGTERM. Never returns. */
static void engine_child(const struct engine_spec *sp, pid_t parent)
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

/* Forks the engine; returns its pid, or -1 after printing why. */
static pid_t engine_start(const struct engine_spec *sp)
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

/* Stops the engine gracefully and reaps it; returns its exit status (or
 * -1 when it died of a signal). cpu_s (may be NULL) gets the CPU seconds of
 * the engine and its workers. */
static double children_cpu_s(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_CHILDREN, &ru) < 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int engine_stop(pid_t pid, double *cpu_s)
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

/* Whether the engine child has exited (reaping it if so). */
static bool engine_gone(pid_t pid, int *ret_status)
{
	int st;
	if (waitpid(pid, &st, WNOHANG) != pid)
		return false;
	*ret_status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return true;
}

/* Waits until `workers` worker processes of the engine named name have
 * registered (rows in lote.workers since since_ts) and moved past their
 * registration to LISTEN or later (pg_stat_activity shows their last
 * statement). Returns 0, or -1 after printing why. */
static int wait_listening(PGconn *conn, const char *name, const char *since_ts,
                          int workers, pid_t engine)
{
	char pattern[160], want[16];
	const char *params[3] = { pattern, since_ts, want };
	double deadline = mono_s() + READY_TIMEOUT_MS / 1000.0;
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
		if (engine_gone(engine, &st)) {
			cli_error("bench", "the engine exited during start-up (status %d)", st);
			return -1;
		}
		if (mono_s() > deadline) {
			cli_error("bench", "the engine's workers were not listening after %d s",
			          READY_TIMEOUT_MS / 1000);
			return -1;
		}
		sleep_ms(5);
	}
}

/* ---------------------------------------------------------------------
 * Database helpers.
 */

/* conninfo with its database replaced by dbname, as a key='value' string
 * (malloc'd), or NULL when conninfo does not parse. */
static char *conninfo_with_db(const char *conninfo, const char *dbname)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
	size_t cap = 256, len = 0;
	char *out;

	if (!opts)
		return NULL;
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (o->val)
			cap += strlen(o->keyword) + 2 * strlen(o->val) + 8;
	cap += 2 * strlen(dbname) + 16;
	out = malloc(cap);
	if (!out) {
		PQconninfoFree(opts);
		return NULL;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		const char *v = strcmp(o->keyword, "dbname") == 0 ? dbname : o->val;
		if (!v || (!*v && strcmp(o->keyword, "dbname") != 0))
			continue;
		len += (size_t)snprintf(out + len, cap - len, "%s%s='", len ? " " : "", o->keyword);
		for (; *v; v++) {
			if (*v == '\'' || *v == '\\')
				out[len++] = '\\';
			out[len++] = *v;
		}
		out[len++] = '\'';
		out[len] = '\0';
	}
	if (!strstr(out, "dbname="))
		snprintf(out + len, cap - len, "%sdbname='%s'", len ? " " : "", dbname);
	PQconninfoFree(opts);
	return out;
}

/* "database does not exist, skipping" is not news. */
static void quiet_notices(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* The bench's view of the server, for the report. */
struct server {
	char version[64];
	char sync[16];      /* synchronous_commit as the server has it */
	char dbname[64];
};

/* Drops and recreates dbname on the resolved server, migrates it, and
 * returns a connection to it and its conninfo (both caller-owned). Returns
 * an exit status. */
static int scratch_db(const char *dbname, struct server *srv, PGconn **ret_conn,
                      char **ret_conninfo)
{
	lote_error err = { 0 };
	char *base = NULL, *info = NULL, *ident = NULL, *v = NULL, sql[256];
	PGconn *admin = cli_connect("bench", &base), *conn = NULL;
	int rc = EXIT_DB;

	if (!admin)
		return EXIT_DB;
	PQsetNoticeProcessor(admin, quiet_notices, NULL);
	ident = PQescapeIdentifier(admin, dbname, strlen(dbname));
	if (!ident) {
		cli_error("bench", "bad database name \"%s\"", dbname);
		goto out;
	}
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", ident);
	if (lote__db_exec(admin, sql, &err) < 0)
		goto fail;
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", ident);
	if (lote__db_exec(admin, sql, &err) < 0)
		goto fail;
	info = conninfo_with_db(base, dbname);
	if (!info) {
		cli_error("bench", "cannot parse the database address");
		goto out;
	}
	if (lote__db_connect(info, "lote bench", &conn, &err) < 0 ||
	    lote_migrate(conn, NULL, &err) < 0)
		goto fail;
	if (lote__db_value(conn, "SELECT split_part(current_setting('server_version'), ' ', 1)", 0, NULL, &v, &err) < 0)
		goto fail;
	snprintf(srv->version, sizeof(srv->version), "%s", v ? v : "?");
	free(v);
	v = NULL;
	if (lote__db_value(conn, "SELECT current_setting('synchronous_commit')", 0, NULL, &v,
	                   &err) < 0)
		goto fail;
	snprintf(srv->sync, sizeof(srv->sync), "%s", v ? v : "?");
	snprintf(srv->dbname, sizeof(srv->dbname), "%s", dbname);
	*ret_conn = conn;
	*ret_conninfo = info;
	conn = NULL;
	info = NULL;
	rc = EXIT_OK;
	goto out;
fail:
	cli_error("bench", "scratch database %s: %s", dbname, err.message);
out:
	free(v);
	PQfreemem(ident);
	PQfinish(admin);
	PQfinish(conn);
	free(base);
	free(info);
	return rc;
}

/* Empties the hot tables, then VACUUM ANALYZE and CHECKPOINT, so the
 * measured phase starts from a clean state. */
static int settle(PGconn *conn)
{
	static bool warned;
	lote_error err = { 0 };

	if (lote__db_exec(conn, "VACUUM ANALYZE", &err) < 0) {
		cli_error("bench", "%s", err.message);
		return -1;
	}
	if (lote__db_exec(conn, "CHECKPOINT", &err) < 0 && !warned) {
		cli_error("bench", "warning: CHECKPOINT not allowed, measuring without it (%s)",
		          err.message);
		warned = true;
	}
	return 0;
}

static int exec_or_report(PGconn *conn, const char *sql)
{
	lote_error err = { 0 };
	if (lote__db_exec(conn, sql, &err) < 0) {
		cli_error("bench", "%s", err.message);
		return -1;
	}
	return 0;
}

static int reset_tables(PGconn *conn)
{
	if (exec_or_report(conn, "TRUNCATE lote.commands, lote.events, lote.batches, lote.workers") < 0)
		return -1;
	return settle(conn);
}

/* Runs sql with one integer parameter; 0 or -1 after printing why. */
static int exec_int(PGconn *conn, const char *sql, long n)
{
	char arg[24];
	const char *params[1] = { arg };
	lote_error err = { 0 };

	snprintf(arg, sizeof(arg), "%ld", n);
	if (lote__db_value(conn, sql, 1, params, NULL, &err) < 0) {
		cli_error("bench", "%s", err.message);
		return -1;
	}
	return 0;
}

static long query_long(PGconn *conn, const char *sql)
{
	lote_error err = { 0 };
	char *v = NULL;
	long n = -1;

	if (lote__db_value(conn, sql, 0, NULL, &v, &err) < 0)
		cli_error("bench", "%s", err.message);
	else
		n = v ? atol(v) : 0;
	free(v);
	return n;
}

/* ---------------------------------------------------------------------
 * Reporting: a human table, or JSON records like the peer harness's.
 */

struct opts {
	long n;             /* 0: the measurement's default */
	int workers, batch;
	double rate, seconds, max_seconds;
	int reps;           /* batch: plain/batch pairs, alternated */
	const char *dbname;
	bool json;
	/* worker mode */
	const char *db, *handler, *types;
	bool wait_go;
};

/* Emits rec (taken) as one JSON line, with the common fields added. */
static void emit_json(json_t *rec, const struct server *srv)
{
	char ts[32], *line;
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(rec, "ts", json_string(ts));
	json_object_set_new(rec, "synchronous_commit", json_string(srv->sync));
	json_object_set_new(rec, "server_version", json_string(srv->version));
	line = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
	if (line)
		printf("%s\n", line);
	fflush(stdout);
	free(line);
	json_decref(rec);
}

/* 12345678 -> "12,345,678" */
static const char *thousands(double x, char *buf, size_t len)
{
	char digits[32];
	int n = snprintf(digits, sizeof(digits), "%.0f", x), o = 0;

	for (int i = 0; i < n && (size_t)o < len - 1; i++) {
		if (i > 0 && (n - i) % 3 == 0 && digits[0] != '-' && (size_t)o < len - 2)
			buf[o++] = ',';
		buf[o++] = digits[i];
	}
	buf[o] = '\0';
	return buf;
}

static void header_once(const struct opts *o, const struct server *srv)
{
	static bool done;
	if (done || o->json)
		return;
	done = true;
	printf("lote bench: PostgreSQL %s, synchronous_commit %s, scratch database %s\n\n",
	       srv->version, srv->sync, srv->dbname);
	printf("  %-46s %9s %9s %12s\n", "measurement", "n", "seconds", "per second");
}

static void rate_row(const struct opts *o, const struct server *srv, const char *what,
                     long n, double secs, const char *note)
{
	char buf[32];
	header_once(o, srv);
	printf("  %-46s %9ld %9.3f %12s%s%s\n", what, n, secs,
	       thousands(secs > 0 ? n / secs : 0, buf, sizeof(buf)), note ? "  " : "",
	       note ? note : "");
	fflush(stdout);
}

static json_t *rate_record(const char *bench, long n, double secs)
{
	json_int_t rate = (json_int_t)round_pos(secs > 0 ? n / secs : 0);
	/* jobs_per_sec is the peer harness's name, commands_per_sec lote's */
	return json_pack("{s:s, s:s, s:I, s:f, s:I, s:I}", "peer", "lote", "bench", bench,
	                 "n", (json_int_t)n, "seconds", round3(secs),
	                 "jobs_per_sec", rate, "commands_per_sec", rate);
}

/* ---------------------------------------------------------------------
 * enqueue
 */

static int enqueue_single(PGconn *conn, long n, int warmup, double *ret_secs)
{
	PGresult *res = PQprepare(conn, "bench_enqueue", "SELECT lote.enqueue($1, $2::jsonb)",
	                          2, NULL);
	double t0 = 0;
	int rc = 0;

	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		cli_error("bench", "%s", PQresultErrorMessage(res));
		PQclear(res);
		return -1;
	}
	PQclear(res);
	for (long i = -warmup; i < n && rc == 0; i++) {
		char payload[48];
		const char *params[2] = { "noop", payload };

		if (i == 0)
			t0 = mono_s();
		snprintf(payload, sizeof(payload), "{\"i\": %ld}", i);
		res = PQexecPrepared(conn, "bench_enqueue", 2, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			cli_error("bench", "enqueue: %s", PQresultErrorMessage(res));
			rc = -1;
		}
		PQclear(res);
	}
	*ret_secs = mono_s() - t0;
	PQclear(PQexec(conn, "DEALLOCATE bench_enqueue"));
	return rc;
}

/* One statement, one transaction; the clock covers the round trip. */
static int timed_int(PGconn *conn, const char *sql, long n, double *ret_secs)
{
	double t0 = mono_s();
	int rc = exec_int(conn, sql, n);
	*ret_secs = mono_s() - t0;
	return rc;
}

static const char bulk_enqueue_sql[] =
	"SELECT count(lote.enqueue('noop', jsonb_build_object('i', g)))"
	" FROM generate_series(1, $1::int) g";
static const char bulk_insert_sql[] =
	"INSERT INTO lote.commands (institution_id, type, data)"
	" SELECT '" NIL_UUID "', 'noop', jsonb_build_object('i', g)"
	" FROM generate_series(1, $1::int) g";

/* One bulk enqueue case: a 10-row warm-up, then n rows timed in one
 * statement on empty tables, reported as bench (JSON) or label. */
static int bulk_case(const struct opts *o, PGconn *conn, const struct server *srv,
                     const char *sql, long n, const char *bench, const char *label)
{
	double secs;

	if (reset_tables(conn) < 0 || exec_int(conn, sql, 10) < 0 ||
	    reset_tables(conn) < 0 || timed_int(conn, sql, n, &secs) < 0)
		return -1;
	if (o->json)
		emit_json(rate_record(bench, n, secs), srv);
	else
		rate_row(o, srv, label, n, secs, NULL);
	return 0;
}

static int bench_enqueue(const struct opts *o, PGconn *conn, const struct server *srv)
{
	long n = o->n ? o->n : 20000;
	double secs;

	/* warm-up of the single path happens inside enqueue_single */
	if (reset_tables(conn) < 0 || enqueue_single(conn, 0, WARMUP_SINGLE, &secs) < 0 ||
	    reset_tables(conn) < 0 || enqueue_single(conn, n, 1, &secs) < 0)
		return EXIT_FAIL;
	if (o->json)
		emit_json(rate_record("enqueue-single", n, secs), srv);
	else
		rate_row(o, srv, "enqueue, one by one (1 client, 1 txn each)", n, secs, NULL);

	if (bulk_case(o, conn, srv, bulk_enqueue_sql, n, "enqueue-bulk",
	              "enqueue, bulk: n x lote.enqueue in 1 statement") < 0 ||
	    bulk_case(o, conn, srv, bulk_insert_sql, n, "enqueue-bulk-insert",
	              "enqueue, bulk: raw INSERT ... SELECT") < 0)
		return EXIT_FAIL;
	return EXIT_OK;
}

/* ---------------------------------------------------------------------
 * drain
 */

/* The prefill of `lote bench batch`: one batch of $1 no-op members and a
 * no-op follow-up. */
static const char batch_prefill_sql[] =
	"SELECT lote.batch('bench', (SELECT jsonb_agg(jsonb_build_object('type', 'noop',"
	" 'data', jsonb_build_object('i', g))) FROM generate_series(1, $1::int) g),"
	" '{\"type\": \"noop\"}')";

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

/* CPU seconds the PostgreSQL server has used so far: the postmaster, its
 * live children (backends, walwriter, ...) and the children it reaped
 * (the engine's connections, once closed). Negative when the server is
 * not on this machine or /proc is not readable. */
static double server_cpu_s(PGconn *conn)
{
	long backend = query_long(conn, "SELECT pg_backend_pid()"), postmaster, ppid;
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

/* Drains n plain commands, or (as_batch) one batch of n members whose
 * follow-up must also have run; *ret_rate (may be NULL) gets members/s. */
static int bench_drain(const struct opts *o, PGconn *conn, const char *conninfo,
                       const struct server *srv, bool as_batch, double *ret_rate)
{
	long n = o->n ? o->n : 50000, handled = 0, left, ok;
	long expect = as_batch ? n + 1 : n; /* the follow-up runs too */
	int workers = o->workers ? o->workers : 2, batch = o->batch ? o->batch : default_batch(), st;
	struct shared *sh = shared_new(0);
	char name[64], what[96], note[96];
	double t0, t_handlers, t_done, cpu = 0, srv_cpu0, srv_cpu = -1;
	bool complete = true;
	pid_t pid = -1;
	int rc = EXIT_FAIL;

	if (!sh) {
		cli_error("bench", "mmap: %s", strerror(errno));
		return EXIT_FAIL;
	}
	if (reset_tables(conn) < 0)
		goto out;
	for (long i = 0; !as_batch && i < n; i += PREFILL_CHUNK) {
		long k = n - i < PREFILL_CHUNK ? n - i : PREFILL_CHUNK;
		if (exec_int(conn, bulk_enqueue_sql, k) < 0)
			goto out;
	}
	if (as_batch && exec_int(conn, batch_prefill_sql, n) < 0)
		goto out;
	if (settle(conn) < 0)
		goto out;
	snprintf(name, sizeof(name), "lote-bench-%d", (int)getpid());
	struct engine_spec sp = { .conninfo = conninfo, .name = name, .types = "noop",
	                          .workers = workers, .batch = batch, .fn = noop_handler,
	                          .sh = sh };
	srv_cpu0 = server_cpu_s(conn);
	t0 = mono_s();
	pid = engine_start(&sp);
	if (pid < 0)
		goto out;
	for (;;) {
		handled = atomic_load(&sh->handled);
		if (handled >= expect)
			break;
		if (engine_gone(pid, &st)) {
			cli_error("bench", "drain: the engine exited (status %d) after %ld of %ld",
			          st, handled, n);
			pid = -1;
			goto out;
		}
		if (mono_s() - t0 > o->max_seconds) {
			complete = false;
			break;
		}
		sleep_ms(1);
	}
	t_handlers = mono_s();
	/* Outcomes are counted after their COMMIT, so this normally holds at
	 * once; it is the same stop rule as the peers' (nothing unfinished). */
	while (complete && (left = query_long(conn,
	           "SELECT count(*) FROM lote.commands"
	           " WHERE status IN ('awaiting', 'pending', 'processing')")) != 0) {
		if (left < 0)
			goto stop;
		sleep_ms(5);
	}
	t_done = mono_s();
	if (engine_stop(pid, &cpu) != 0)
		cli_error("bench", "warning: the engine did not stop cleanly");
	pid = -1;
	if (srv_cpu0 >= 0) {
		sleep_ms(50); /* the postmaster reaps the closed connections */
		srv_cpu = server_cpu_s(conn);
		srv_cpu = srv_cpu >= srv_cpu0 ? srv_cpu - srv_cpu0 : -1;
	}
	ok = query_long(conn, "SELECT count(*) FROM lote.commands WHERE status = 'success'");
	if (complete && ok != expect) {
		cli_error("bench", "drain: %ld of %ld commands are success", ok, expect);
		goto out;
	}
	if (complete && as_batch &&
	    query_long(conn, "SELECT count(*) FROM lote.batches WHERE status = 'success'") != 1) {
		cli_error("bench", "batch: the batch did not complete");
		goto out;
	}
	if (ret_rate)
		*ret_rate = (complete ? n : handled) / (t_done - t0);
	handled = atomic_load(&sh->handled);
	long counted = complete ? n : handled; /* what the rates are of */
	if (o->json) {
		json_t *rec = rate_record(as_batch ? "drain-batch" : "drain", counted,
		                          t_done - t0);
		json_object_set_new(rec, "n", json_integer(n));
		json_object_set_new(rec, "workers", json_integer(workers));
		json_object_set_new(rec, "batch", json_integer(batch));
		json_object_set_new(rec, "complete", json_boolean(complete));
		json_object_set_new(rec, "handled", json_integer(handled));
		json_object_set_new(rec, "handlers_seconds",
		                    json_real(round3(t_handlers - t0)));
		json_object_set_new(rec, "engine_cpu_seconds", json_real(round3(cpu)));
		if (srv_cpu >= 0) {
			json_object_set_new(rec, "server_cpu_seconds", json_real(round3(srv_cpu)));
			json_object_set_new(rec, "server_cpu_us_per_command",
			                    json_real(round3(srv_cpu * 1e6 / (double)counted)));
		}
		json_object_set_new(rec, "engine_cpu_us_per_command",
		                    json_real(round3(cpu * 1e6 / (double)counted)));
		emit_json(rec, srv);
	} else {
		snprintf(what, sizeof(what), "%s, %d worker%s x batch %d%s",
		         as_batch ? "drain one batch" : "drain", workers,
		         workers == 1 ? "" : "s", batch, complete ? "" : " (INCOMPLETE)");
		if (srv_cpu >= 0)
			snprintf(note, sizeof(note), "CPU/command: engine %.0f us, server %.0f us",
			         cpu * 1e6 / (double)counted,
			         srv_cpu * 1e6 / (double)counted);
		else
			snprintf(note, sizeof(note), "engine CPU %.2f s", cpu);
		rate_row(o, srv, what, counted, t_done - t0, note);
	}
	rc = complete ? EXIT_OK : EXIT_FAIL;
	goto out;
stop:
	engine_stop(pid, NULL);
	pid = -1;
out:
	if (pid > 0)
		engine_stop(pid, NULL);
	shared_free(sh);
	return rc;
}

/* ---------------------------------------------------------------------
 * latency
 */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int cmp_stamp(const void *a, const void *b)
{
	int64_t x = atomic_load(&((const struct stamp *)a)->id);
	int64_t y = atomic_load(&((const struct stamp *)b)->id);
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v (the peer harness's definition). */
static double pct(const double *v, long n, double p)
{
	double rank = p / 100.0 * (double)n;
	long k = (long)rank;

	if ((double)k < rank)
		k++; /* ceil */
	k--;
	if (k < 0)
		k = 0;
	if (k >= n)
		k = n - 1;
	return v[k];
}

static json_t *latency_stats(double *v, long n)
{
	double sum = 0;
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	for (long i = 0; i < n; i++)
		sum += v[i];
#define R3(x) round3(x)
	return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f}", "n", (json_int_t)n,
	                 "min", R3(v[0]), "p50", R3(pct(v, n, 50)), "p95", R3(pct(v, n, 95)),
	                 "p99", R3(pct(v, n, 99)), "max", R3(v[n - 1]), "avg", R3(sum / n));
#undef R3
}

/* The stamp of command id, or 0 when its handler has not started. Linear:
 * used only during the warm-up, while there are few stamps. */
static int64_t stamp_of(struct shared *sh, int64_t id)
{
	long n = atomic_load(&sh->nstamps);
	for (long i = 0; i < n && i < sh->cap; i++)
		if (atomic_load_explicit(&sh->stamps[i].id, memory_order_acquire) == id)
			return sh->stamps[i].ns;
	return 0;
}

static int enqueue_one(PGconn *conn, int64_t *ret_id)
{
	PGresult *res = PQexecParams(conn, "SELECT lote.enqueue('lat', '{}')", 0, NULL, NULL,
	                             NULL, NULL, 0);
	int rc = 0;
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		cli_error("bench", "enqueue: %s", PQresultErrorMessage(res));
		rc = -1;
	} else {
		*ret_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	}
	PQclear(res);
	return rc;
}

static void latency_row(const char *what, const json_t *s)
{
	printf("    %-14s p50 %7.3f   p95 %7.3f   p99 %7.3f   max %8.3f   (%lld samples)\n", what,
	       json_real_value(json_object_get(s, "p50")), json_real_value(json_object_get(s, "p95")),
	       json_real_value(json_object_get(s, "p99")), json_real_value(json_object_get(s, "max")),
	       (long long)json_integer_value(json_object_get(s, "n")));
}

static int bench_latency(const struct opts *o, PGconn *conn, const char *conninfo,
                         const struct server *srv)
{
	long total = (long)round_pos(o->rate * o->seconds), got;
	int workers = o->workers ? o->workers : 2, batch = o->batch ? o->batch : default_batch();
	struct shared *sh = NULL;
	int64_t *ids = calloc((size_t)total + 1, sizeof(int64_t));
	int64_t *sent = calloc((size_t)total + 1, sizeof(int64_t));
	int64_t *acked = calloc((size_t)total + 1, sizeof(int64_t));
	double *from_commit = calloc((size_t)total + 1, sizeof(double));
	double *from_call = calloc((size_t)total + 1, sizeof(double));
	char name[64], *now_ts = NULL;
	lote_error err = { 0 };
	pid_t pid = -1;
	int rc = EXIT_FAIL;

	if (total < 1 || total > MAX_LATENCY_SAMPLES) {
		cli_error("bench", "latency: rate x seconds must give 1 to %d samples", MAX_LATENCY_SAMPLES);
		rc = EXIT_USAGE;
		goto out;
	}
	sh = shared_new(total + WARMUP_LATENCY + 64);
	if (!ids || !sent || !acked || !from_commit || !from_call || !sh) {
		cli_error("bench", "out of memory");
		goto out;
	}
	if (reset_tables(conn) < 0 ||
	    lote__db_value(conn, "SELECT now()", 0, NULL, &now_ts, &err) < 0)
		goto out;
	snprintf(name, sizeof(name), "lote-bench-%d", (int)getpid());
	struct engine_spec sp = { .conninfo = conninfo, .name = name, .types = "lat",
	                          .workers = workers, .batch = batch, .fn = stamp_handler,
	                          .sh = sh };
	pid = engine_start(&sp);
	if (pid < 0 || wait_listening(conn, name, now_ts, workers, pid) < 0)
		goto out;
	for (int i = 0; i < WARMUP_LATENCY; i++) {
		int64_t id = 0;
		double deadline = mono_s() + 30;
		if (enqueue_one(conn, &id) < 0)
			goto out;
		while (stamp_of(sh, id) == 0) {
			if (mono_s() > deadline) {
				cli_error("bench", "latency: warm-up command %lld never started", (long long)id);
				goto out;
			}
			sleep_ms(1);
		}
	}
	sleep_ms(1000);
	{
		int64_t base = clock_ns(CLOCK_MONOTONIC), period = round_pos(1e9 / o->rate);
		for (long i = 0; i < total; i++) {
			int64_t at = base + i * period;
			struct timespec ts = { (time_t)(at / 1000000000), (long)(at % 1000000000) };
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
				;
			sent[i] = clock_ns(CLOCK_REALTIME);
			if (enqueue_one(conn, &ids[i]) < 0)
				goto out;
			acked[i] = clock_ns(CLOCK_REALTIME);
		}
	}
	/* Every sampled command must have started (bounded wait). */
	{
		double deadline = mono_s() + 60;
		long want = WARMUP_LATENCY + total;
		while (atomic_load(&sh->nstamps) < want && mono_s() < deadline)
			sleep_ms(5);
	}
	engine_stop(pid, NULL);
	pid = -1;
	got = atomic_load(&sh->nstamps);
	if (got > sh->cap)
		got = sh->cap;
	qsort(sh->stamps, (size_t)got, sizeof(struct stamp), cmp_stamp);
	for (long i = 0; i < total; i++) {
		struct stamp key = { .id = ids[i] };
		struct stamp *s = bsearch(&key, sh->stamps, (size_t)got, sizeof(key), cmp_stamp);
		if (!s) {
			cli_error("bench", "latency: command %lld never started", (long long)ids[i]);
			goto out;
		}
		from_commit[i] = (double)(s->ns - acked[i]) / 1e6;
		from_call[i] = (double)(s->ns - sent[i]) / 1e6;
	}
	json_t *commit_stats = latency_stats(from_commit, total);
	json_t *call_stats = latency_stats(from_call, total);
	char config[64];
	snprintf(config, sizeof(config), "workers %d, batch %d", workers, batch);
	if (o->json) {
		/* the commit->start percentiles also at the top level */
		double p50 = json_real_value(json_object_get(commit_stats, "p50"));
		double p95 = json_real_value(json_object_get(commit_stats, "p95"));
		double p99 = json_real_value(json_object_get(commit_stats, "p99"));
		json_t *rec = json_pack("{s:s, s:s, s:s, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:o, s:o}",
		                        "peer", "lote", "bench", "latency", "config", config,
		                        "workers", workers, "batch", batch, "rate", o->rate,
		                        "seconds", o->seconds, "p50_ms", p50, "p95_ms", p95,
		                        "p99_ms", p99, "commit_to_start_ms", commit_stats,
		                        "enqueue_call_to_start_ms", call_stats);
		emit_json(rec, srv);
	} else {
		header_once(o, srv);
		printf("  latency, %g/s for %g s, %s (ms):\n", o->rate, o->seconds, config);
		latency_row("commit->start", commit_stats);
		latency_row("call->start", call_stats);
		json_decref(commit_stats);
		json_decref(call_stats);
		fflush(stdout);
	}
	rc = EXIT_OK;
out:
	if (pid > 0)
		engine_stop(pid, NULL);
	free(now_ts);
	free(ids);
	free(sent);
	free(acked);
	free(from_commit);
	free(from_call);
	shared_free(sh);
	return rc;
}

/* ---------------------------------------------------------------------
 * worker: the peer harness's worker CLI
 */

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static int bench_worker(const struct opts *o)
{
	lote_error err = { 0 };
	struct shared *sh = NULL;
	struct sigaction sa = { 0 };
	char name[64], *now_ts = NULL, line[64];
	PGconn *conn;
	pid_t pid = -1;
	long reported = -1;
	bool stamp = strcmp(o->handler, "stamp") == 0, asked = false;
	int rc = EXIT_FAIL, st = 0;

	if (!stamp && strcmp(o->handler, "noop") != 0) {
		cli_error("bench worker", "--handler must be noop or stamp, got \"%s\"", o->handler);
		return EXIT_USAGE;
	}
	if (o->db && setenv("LOTE_DATABASE_URL", o->db, 1) < 0)
		return EXIT_FAIL;
	if (!getenv("LOTE_DATABASE_URL")) {
		cli_error("bench worker", "--db URL is required (or LOTE_DATABASE_URL)");
		return EXIT_USAGE;
	}
	char *conninfo = NULL;
	conn = cli_connect_ready("bench worker", &conninfo);
	if (!conn)
		return EXIT_DB;
	sh = shared_new(0);
	if (!sh) {
		cli_error("bench worker", "mmap: %s", strerror(errno));
		goto out;
	}
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	snprintf(name, sizeof(name), "lote-bench-%d", (int)getpid());
	struct engine_spec sp = { .conninfo = conninfo, .name = name, .types = o->types,
	                          .workers = o->workers ? o->workers : 2,
	                          .batch = o->batch ? o->batch : default_batch(),
	                          .fn = stamp ? print_stamp_handler : noop_handler, .sh = sh };
	if (o->wait_go) {
		char go[64];
		write_line("READY\n", 6);
		if (!fgets(go, sizeof(go), stdin)) {
			if (stop_requested)
				rc = EXIT_OK;
			else
				cli_error("bench worker", "standard input closed before GO");
			goto out;
		}
		pid = engine_start(&sp);
		if (pid < 0)
			goto out;
	} else {
		if (lote__db_value(conn, "SELECT now()", 0, NULL, &now_ts, &err) < 0) {
			cli_error("bench worker", "%s", err.message);
			goto out;
		}
		pid = engine_start(&sp);
		if (pid < 0 || wait_listening(conn, name, now_ts, sp.workers, pid) < 0)
			goto out;
		write_line("READY\n", 6);
	}
	PQfinish(conn);
	conn = NULL;
	for (;;) {
		long h = atomic_load(&sh->handled);
		bool gone = engine_gone(pid, &st);

		if (h != reported) {
			int len = snprintf(line, sizeof(line), "HANDLED %ld\n", h);
			write_line(line, (size_t)len);
			reported = h;
		}
		if (gone) {
			pid = -1;
			if (!asked) {
				cli_error("bench worker", "the engine exited unexpectedly (status %d)", st);
				goto out;
			}
			rc = st == 0 ? EXIT_OK : EXIT_FAIL;
			break;
		}
		if (stop_requested && !asked) {
			kill(pid, SIGTERM);
			asked = true;
		}
		sleep_ms(HANDLED_EVERY_MS);
	}
out:
	if (pid > 0)
		engine_stop(pid, NULL);
	PQfinish(conn);
	free(conninfo);
	free(now_ts);
	shared_free(sh);
	return rc;
}

/* ---------------------------------------------------------------------
 * Command line
 */

enum { OPT_N = 256, OPT_WORKERS, OPT_BATCH, OPT_RATE, OPT_SECONDS, OPT_MAX_SECONDS,
       OPT_DATABASE, OPT_JSON, OPT_DB, OPT_HANDLER, OPT_CONCURRENCY, OPT_TYPES, OPT_WAIT_GO, OPT_REPS };

static bool parse_num(const char *opt, const char *arg, double lo, double hi, double *ret)
{
	char *end;
	double v = strtod(arg, &end);
	if (*arg == '\0' || *end != '\0' || !(v >= lo && v <= hi)) {
		cli_error("bench", "--%s wants a number from %.10g to %.10g, got \"%s\"", opt, lo, hi, arg);
		return false;
	}
	*ret = v;
	return true;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "n", required_argument, NULL, OPT_N },
		{ "commands", required_argument, NULL, OPT_N },
		{ "workers", required_argument, NULL, OPT_WORKERS },
		{ "batch", required_argument, NULL, OPT_BATCH },
		{ "rate", required_argument, NULL, OPT_RATE },
		{ "seconds", required_argument, NULL, OPT_SECONDS },
		{ "max-seconds", required_argument, NULL, OPT_MAX_SECONDS },
		{ "database", required_argument, NULL, OPT_DATABASE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "db", required_argument, NULL, OPT_DB },
		{ "handler", required_argument, NULL, OPT_HANDLER },
		{ "concurrency", required_argument, NULL, OPT_CONCURRENCY },
		{ "types", required_argument, NULL, OPT_TYPES },
		{ "wait-go", no_argument, NULL, OPT_WAIT_GO },
		{ "reps", required_argument, NULL, OPT_REPS },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;
	double v;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h': fputs(usage, stdout); return -1;
		case OPT_N:
			if (!parse_num("n", optarg, 1, MAX_N, &v))
				return EXIT_USAGE;
			o->n = (long)v;
			break;
		case OPT_WORKERS:
		case OPT_CONCURRENCY:
			if (!parse_num(c == OPT_WORKERS ? "workers" : "concurrency", optarg, 1, 256, &v))
				return EXIT_USAGE;
			o->workers = (int)v;
			break;
		case OPT_BATCH:
			if (!parse_num("batch", optarg, 1, 1000, &v))
				return EXIT_USAGE;
			o->batch = (int)v;
			break;
		case OPT_RATE:
			if (!parse_num("rate", optarg, 0.1, 10000, &o->rate))
				return EXIT_USAGE;
			break;
		case OPT_SECONDS:
			if (!parse_num("seconds", optarg, 0.1, 3600, &o->seconds))
				return EXIT_USAGE;
			break;
		case OPT_MAX_SECONDS:
			if (!parse_num("max-seconds", optarg, 1, 86400, &o->max_seconds))
				return EXIT_USAGE;
			break;
		case OPT_REPS:
			if (!parse_num("reps", optarg, 1, 99, &v))
				return EXIT_USAGE;
			o->reps = (int)v;
			break;
		case OPT_DATABASE: o->dbname = optarg; break;
		case OPT_JSON: o->json = true; break;
		case OPT_DB: o->db = optarg; break;
		case OPT_HANDLER: o->handler = optarg; break;
		case OPT_TYPES: o->types = optarg; break;
		case OPT_WAIT_GO: o->wait_go = true; break;
		default:
			fputs("see lote bench --help\n", stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		cli_error("bench", "unexpected argument \"%s\" (see lote bench --help)", argv[optind]);
		return EXIT_USAGE;
	}
	return 0;
}

/* `lote bench batch`: the same N drained as plain commands and as the
 * members of one batch, on fresh scratch databases, and the ratio. */
static double median_of(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Plain drain and batch drain, alternated reps times (a noisy minute then
 * hits one pair, not every plain or every batch run); the ratio is the
 * median of the pairs' ratios. */
static int bench_batch(struct opts *o, struct server *srv)
{
	double plain[99], members[99], ratio[99];
	PGconn *conn = NULL;
	char *conninfo = NULL;
	int rc, reps = o->reps ? o->reps : 3;

	if (!o->n)
		o->n = 100000;
	if (!o->workers)
		o->workers = 8;
	for (int r = 0; r < reps; r++) {
		for (int k = 0; k < 2; k++) {
			if ((rc = scratch_db(o->dbname, srv, &conn, &conninfo)) != EXIT_OK)
				return rc;
			rc = bench_drain(o, conn, conninfo, srv, k == 1, k == 0 ? &plain[r] : &members[r]);
			PQfinish(conn);
			free(conninfo);
			if (rc != EXIT_OK)
				return rc;
		}
		ratio[r] = plain[r] > 0 ? members[r] / plain[r] : 0;
	}
	double mr = median_of(ratio, reps), mp = median_of(plain, reps), mm = median_of(members, reps);
	if (o->json) {
		json_t *rec = json_pack("{ss sI sI sI si sf sf sf}", "bench", "batch-ratio", "n", (json_int_t)o->n,
		                        "workers", (json_int_t)o->workers,
		                        "batch", (json_int_t)(o->batch ? o->batch : default_batch()), "reps", reps,
		                        "plain_commands_per_sec", round3(mp),
		                        "batch_members_per_sec", round3(mm), "ratio", round3(mr));
		emit_json(rec, srv);
	} else {
		printf("one batch drains at %.0f%% of the plain rate (median of %d pairs;"
		       " medians %.0f vs %.0f commands/s; pairs:", 100 * mr, reps, mm, mp);
		for (int r = 0; r < reps; r++)
			printf(" %.0f%%", 100 * ratio[r]);
		printf(")\n");
	}
	return EXIT_OK;
}

int cmd_bench(int argc, char **argv)
{
	struct opts o = { .rate = 20, .seconds = 10, .max_seconds = 300, .dbname = "lote_bench",
	                  .handler = "noop", .types = "noop,lat" };
	struct server srv = { 0 };
	const char *sub;
	char *conninfo = NULL;
	PGconn *conn = NULL;
	int rc;

	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	sub = argv[1];
	rc = parse_opts(argc - 1, argv + 1, &o);
	if (rc != 0)
		return rc < 0 ? EXIT_OK : rc;
	/* The engine's own log lines would drown the report. */
	lote__log_set_level("warn");
	if (strcmp(sub, "worker") == 0)
		return bench_worker(&o);
	if (strcmp(sub, "batch") == 0)
		return bench_batch(&o, &srv);
	if (strcmp(sub, "enqueue") != 0 && strcmp(sub, "drain") != 0 &&
	    strcmp(sub, "latency") != 0 && strcmp(sub, "all") != 0) {
		cli_error("bench", "unknown measurement \"%s\" (enqueue, drain, batch, latency, all, worker)", sub);
		return EXIT_USAGE;
	}
	bool all = strcmp(sub, "all") == 0;
	long n = o.n;
	if (all || strcmp(sub, "enqueue") == 0) {
		if ((rc = scratch_db(o.dbname, &srv, &conn, &conninfo)) != EXIT_OK)
			return rc;
		rc = bench_enqueue(&o, conn, &srv);
		PQfinish(conn);
		free(conninfo);
		conn = NULL;
		conninfo = NULL;
		if (rc != EXIT_OK)
			return rc;
	}
	if (all || strcmp(sub, "drain") == 0) {
		/* in `all`, --n sizes the enqueue run; drain gets 2.5x (the
		 * peers' 20,000 / 50,000) */
		o.n = all && n ? n * 5 / 2 : n;
		if ((rc = scratch_db(o.dbname, &srv, &conn, &conninfo)) != EXIT_OK)
			return rc;
		rc = bench_drain(&o, conn, conninfo, &srv, false, NULL);
		PQfinish(conn);
		free(conninfo);
		conn = NULL;
		conninfo = NULL;
		if (rc != EXIT_OK)
			return rc;
	}
	if (all || strcmp(sub, "latency") == 0) {
		if ((rc = scratch_db(o.dbname, &srv, &conn, &conninfo)) != EXIT_OK)
			return rc;
		rc = bench_latency(&o, conn, conninfo, &srv);
		PQfinish(conn);
		free(conninfo);
	}
	return rc;
}
