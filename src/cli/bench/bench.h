/* bench.h - the parts of `lote bench` its measurements share (internal to
 * the CLI): the engine in a child process, the memory its handlers report
 * through, the scratch database, CPU and memory read from /proc, and the
 * report (a human table or JSON records like the peer harness's).
 *
 * Speed targets live in these benchmarks only, never in timed tests. Each
 * measurement runs in a scratch database (lote_bench) dropped, recreated and
 * migrated first, so figures of different runs start from the same state.
 *
 * Processes: the engine runs in a forked child (its supervisor forks the
 * workers); the handlers report through a MAP_SHARED anonymous mapping made
 * before that fork, so the bench learns what committed without polling the
 * database: on_committed adds to a counter, stamping handlers write their
 * start time into a slot.
 *
 * Errors: functions returning int give 0 (or an EXIT_* status where they
 * say so) or -1 after printing why with cli_error. */
#ifndef LOTE_CLI_BENCH_H
#define LOTE_CLI_BENCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "lote.h"

/* The largest inputs a user can make the bench allocate or wait for. */
#define MAX_N 10000000          /* commands per measurement */
#define MAX_LATENCY_SAMPLES 200000
#define WARMUP_SINGLE 200       /* enqueue calls before the clock starts */
#define WARMUP_LATENCY 20       /* commands run one at a time before sampling */
#define PREFILL_CHUNK 10000     /* prefills: commands per statement */
#define READY_TIMEOUT_MS 30000  /* engine start-up, worker mode and latency */
#define HANDLED_EVERY_MS 5      /* worker mode: HANDLED lines at most this often */
#define NIL_UUID "00000000-0000-0000-0000-000000000000"

/* ---- shared memory between the bench and the engine's processes */

struct bench_stamp {
	_Atomic int64_t id;  /* written last (release): 0 while incomplete */
	int64_t ns;          /* CLOCK_REALTIME when the handler started */
};

struct bench_shared {
	_Atomic long handled;  /* outcomes committed (on_committed) */
	_Atomic long nstamps;  /* slots taken in stamps */
	long busy_us;          /* bench_busy_handler: how long each one works */
	long members;          /* bench_fanout_handler: members per batch */
	long cap;              /* slots in stamps */
	struct bench_stamp stamps[]; /* start times, in start order */
};

/* Maps a shared region with room for cap stamps; NULL on failure. Owned by
 * the caller (bench_shared_free); forked children inherit it. */
struct bench_shared *bench_shared_new(long cap);
void bench_shared_free(struct bench_shared *sh);

/* ---- clocks and numbers */

int64_t bench_clock_ns(clockid_t clk);
double bench_mono_s(void);
int64_t bench_round_pos(double x);  /* x >= 0, without libm */
double bench_round3(double x);      /* 3 decimals, for the records */
void bench_sleep_ms(double ms);
int bench_cmp_double(const void *a, const void *b);
double bench_median(double *v, int n); /* sorts v */

/* ---- handlers; they run in the engine's worker processes, udata is the
 * struct bench_shared */

int bench_noop_handler(lote_ctx *ctx, void *udata);
int bench_stamp_handler(lote_ctx *ctx, void *udata);       /* start time into a slot */
int bench_busy_handler(lote_ctx *ctx, void *udata);        /* sleeps busy_us */
int bench_fanout_handler(lote_ctx *ctx, void *udata);      /* event -> batch of members */
int bench_print_stamp_handler(lote_ctx *ctx, void *udata); /* START <id> <ns> line */
/* One write() per line, so lines of concurrent processes never interleave. */
void bench_write_line(const char *line, size_t len);

/* ---- the engine in a child process */

struct bench_handler {
	const char *type;
	lote_handler_fn fn;
	bool event;             /* an event listener, not a command handler */
};

struct bench_engine_spec {
	const char *conninfo;
	const char *name;       /* application_name prefix, unique per bench */
	const char *types;      /* comma list of command types handled by fn */
	int workers, batch;
	lote_handler_fn fn;
	struct bench_handler more[4]; /* further handlers; type NULL ends */
	struct bench_shared *sh;      /* handler udata and on_committed counter */
};

/* Without --batch, the engine's own default: the bench measures what an
 * untuned `lote run` does. */
int bench_default_batch(void);
/* Forks the engine; returns its pid, or -1 after printing why. */
pid_t bench_engine_start(const struct bench_engine_spec *sp);
/* Stops it gracefully and reaps it; returns its exit status (-1: killed by
 * a signal). cpu_s (may be NULL) gets the CPU seconds of it and its workers. */
int bench_engine_stop(pid_t pid, double *cpu_s);
/* Whether it has exited (reaping it if so). */
bool bench_engine_gone(pid_t pid, int *ret_status);
/* Waits until its `workers` workers registered since since_ts and LISTEN. */
int bench_wait_listening(PGconn *conn, const char *name, const char *since_ts,
                         int workers, pid_t engine);

/* ---- /proc: CPU of the server, memory of a process tree */

/* CPU seconds the PostgreSQL server behind conn has used so far; negative
 * when the server is not on this machine. */
double bench_server_cpu_s(PGconn *conn);
/* Summed PSS (KiB) of pid and its children (smaps_rollup); *ret_procs gets
 * how many processes that is. Negative when /proc cannot tell. */
long bench_tree_pss_kb(pid_t pid, int *ret_procs);

/* ---- the scratch database */

struct bench_server {
	char version[64];
	char sync[16];      /* synchronous_commit as the server has it */
	char dbname[64];
};

/* Drops, recreates and migrates dbname; returns a connection to it and its
 * conninfo (both caller-owned), and an EXIT_* status. */
int bench_scratch_db(const char *dbname, struct bench_server *srv, PGconn **ret_conn,
                     char **ret_conninfo);
int bench_settle(PGconn *conn);       /* VACUUM ANALYZE, CHECKPOINT */
int bench_reset_tables(PGconn *conn); /* empty hot tables, then settle */
int bench_exec(PGconn *conn, const char *sql);
int bench_exec_int(PGconn *conn, const char *sql, long n); /* one integer $1 */
/* sql (its $1: how many rows) run for n rows, PREFILL_CHUNK at a time */
int bench_prefill(PGconn *conn, const char *sql, long n);
long bench_query_long(PGconn *conn, const char *sql);     /* -1 on error */
/* lote.enqueue_many of $1 'noop' commands, one statement */
extern const char bench_bulk_enqueue_sql[];

/* ---- options and report */

struct bench_opts {
	long n;             /* 0: the measurement's default */
	int workers, batch;
	double rate, seconds, max_seconds;
	int reps;           /* batch, fanout: repetitions */
	long backlog;       /* latency-backlog: commands queued ahead */
	long busy_us;       /* latency-backlog: work of each backlog command */
	int priority;       /* latency-backlog: of the measured commands */
	long members;       /* fanout: members of the batch */
	long delayed;       /* latency: commands queued first, due in a day */
	bool events;        /* latency: the engine also listens to an event type */
	const char *dbname;
	bool json;
	/* worker mode */
	const char *db, *handler, *types;
	bool wait_go;
};

/* Emits rec (taken) as one JSON line, with the common fields added. */
void bench_emit_json(json_t *rec, const struct bench_server *srv);
void bench_header_once(const struct bench_opts *o, const struct bench_server *srv);
void bench_rate_row(const struct bench_opts *o, const struct bench_server *srv,
                    const char *what, long n, double secs, const char *note);
json_t *bench_rate_record(const char *bench, long n, double secs);

/* ---- the measurements; each returns an EXIT_* status */

int bench_enqueue(const struct bench_opts *o, PGconn *conn, const struct bench_server *srv);
int bench_drain(const struct bench_opts *o, PGconn *conn, const char *conninfo,
                const struct bench_server *srv, bool as_batch, double *ret_rate);
int bench_batch(struct bench_opts *o, struct bench_server *srv);
int bench_latency(const struct bench_opts *o, PGconn *conn, const char *conninfo,
                  const struct bench_server *srv);
int bench_fanout(const struct bench_opts *o, struct bench_server *srv);
int bench_worker(const struct bench_opts *o);

#endif
