/*
 * lote.h - the public C API of liblote, a durable asynchronous processing
 * engine for PostgreSQL.
 *
 * An application records domain events (lote.emit) and commands
 * (lote.enqueue) in its own transactions; an engine opened here claims them,
 * runs the registered handlers atomically and records the outcome.
 *
 * Error contract (the same for every function in this header):
 *   - functions that can fail return int: 0 (or a count) on success, a
 *     negative LOTE_E* code on failure;
 *   - when an `lote_error *err` argument is given (it may be NULL), it is
 *     filled with a message and, for database errors, the SQLSTATE;
 *   - outputs are named ret_* and are left untouched on failure.
 *
 * Ownership: every pointer returned by a lote_ctx_* accessor is borrowed and
 * valid only until the handler returns. Pointers passed in are borrowed
 * unless the comment says "taken".
 */
#ifndef LOTE_H
#define LOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libpq-fe.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LOTE_VERSION "0.1.0"

#if defined(__GNUC__)
#define LOTE_MUSTCHECK __attribute__((warn_unused_result))
#define LOTE_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define LOTE_MUSTCHECK
#define LOTE_PRINTF(f, a)
#endif

/* Error codes, always negative. */
enum lote_code {
	LOTE_OK = 0,
	LOTE_EINVAL = -1,    /* bad argument or bad input (message says which) */
	LOTE_ENOMEM = -2,    /* allocation failed */
	LOTE_EDB = -3,       /* the database reported an error (see sqlstate) */
	LOTE_ECONN = -4,     /* could not connect / connection lost */
	LOTE_ESCHEMA = -5,   /* schema missing, or newer than this build knows */
	LOTE_ESYS = -6,      /* a system call failed (message has strerror) */
	LOTE_ENOTFOUND = -7, /* no such row / file / type */
	LOTE_EHANDLER = -8,  /* a handler failed (lote_ctx_fail) */
	LOTE_ESTATE = -9,    /* call not valid in the current state */
	LOTE_ETIMEOUT = -10, /* an operation ran past its deadline */
};

/* Filled by failing calls. Plain struct: lives on the caller's stack. */
typedef struct lote_error {
	int code;          /* one of enum lote_code */
	char sqlstate[6];  /* "" unless code == LOTE_EDB */
	char message[1024];
} lote_error;

/* Name of a code, e.g. "EINVAL". Static string. */
const char *lote_code_name(int code);

/* Parses a duration written "500ms", "3s", "5m", "1h", "2d" (or a bare
 * number of milliseconds; "0" is allowed). */
LOTE_MUSTCHECK int lote_duration_parse(const char *text, int64_t *ret_ms,
                                       lote_error *err);
/* Formats ms as the shortest exact unit ("1500ms", "3s", "5m"). Writes at
 * most len bytes (NUL included); returns buf. */
char *lote_duration_format(int64_t ms, char *buf, size_t len);

/* ---------------------------------------------------------------------
 * Schema
 */

/* Applies every embedded migration the database lacks, each in its own
 * transaction, under an advisory lock (safe from several hosts at once).
 * Fails with LOTE_ESCHEMA when the database is newer than this build.
 * ret_applied (may be NULL) gets how many migrations ran. */
LOTE_MUSTCHECK int lote_migrate(PGconn *conn, int *ret_applied,
                                lote_error *err);

/* The newest schema version this build knows. */
int lote_schema_version(void);

/* Reads the database's schema version into *ret_version (0: never
 * migrated). */
LOTE_MUSTCHECK int lote_schema_current(PGconn *conn, int *ret_version,
                                       lote_error *err);

/* Fails with LOTE_ESCHEMA and a message saying what to do unless the
 * database's schema is exactly this build's version. */
LOTE_MUSTCHECK int lote_schema_check(PGconn *conn, lote_error *err);

/* ---------------------------------------------------------------------
 * Schedules: periodic commands, enqueued once per tick across all daemons
 * (the SQL functions lote.schedule / lote.unschedule; docs/archive.md).
 */

/* Adds or replaces the schedule `name`: command_type is enqueued at every
 * tick of cron (5 fields, ranges, lists, steps, names, or @hourly, @daily
 * …) with data (borrowed, may be NULL) and options (borrowed, may be NULL:
 * queue, priority, max_attempts, institution_id, timezone, missed —
 * once|skip|catch_up —, enabled). Runs in the caller's transaction on conn. */
LOTE_MUSTCHECK int lote_schedule_add(PGconn *conn, const char *name, const char *cron,
                                     const char *command_type, json_t *data,
                                     json_t *options, lote_error *err);

/* Removes the schedule `name`; returns 1 when it existed, 0 when not. */
LOTE_MUSTCHECK int lote_schedule_remove(PGconn *conn, const char *name, lote_error *err);

/* ---------------------------------------------------------------------
 * Engine: handler registry + supervisor + workers.
 */

typedef struct lote_engine lote_engine;
typedef struct lote_ctx lote_ctx;

/* What a claimed row is. */
typedef enum lote_kind { LOTE_COMMAND = 1, LOTE_EVENT = 2 } lote_kind;

/* A handler: returns 0 on success. Return lote_ctx_fail(...) (or any
 * negative code) to fail; the command's writes are then rolled back. */
typedef int (*lote_handler_fn)(lote_ctx *ctx, void *udata);

/* How long to wait before the next attempt of a failed row. Zeroes mean
 * the defaults: exponential, base 1 s, cap 1 h, no jitter. */
typedef enum lote_retry_strategy {
	LOTE_RETRY_DEFAULT = 0,
	LOTE_RETRY_EXPONENTIAL, /* base · 2^(attempt-1) */
	LOTE_RETRY_LINEAR,      /* base · attempt */
	LOTE_RETRY_FIXED,       /* base */
} lote_retry_strategy;

typedef struct lote_retry_policy {
	lote_retry_strategy strategy;
	int64_t base_ms;  /* 0: 1000 */
	int64_t max_ms;   /* cap; 0: one hour */
	double jitter;    /* 0..1: take up to this share off each wait at random */
} lote_retry_policy;

/* Per-type options; zero-initialise and set what you need. */
typedef struct lote_handler_opts {
	int timeout_ms; /* 0: the engine default; the handler is stopped and
	                   its command failed when it runs longer */
	int max_attempts;        /* 0: 3. A command's own max_attempts wins */
	lote_retry_policy retry; /* a command's own "retry" option wins */
	void (*free_udata)(void *udata); /* called by lote_engine_free */
} lote_handler_opts;

/* Engine settings; lote_engine_options_init fills the defaults (see
 * docs/config.md for what each means). Strings are borrowed until
 * lote_engine_new returns (they are copied). */
typedef struct lote_engine_options {
	const char *conninfo;   /* libpq URI or key=value string; required */
	int workers;            /* worker processes, default 2 */
	int batch;              /* most rows per claim, default 1000 (claims are
	                         * sized to take ~25 ms, see worker.c) */
	int64_t poll_ms;        /* polling fallback, default 1000 */
	int64_t lease_ms;       /* claim lease, default 30 s; renewed by the
	                           heartbeat while the worker lives */
	int64_t heartbeat_ms;   /* 0: lease / 3 */
	int64_t grace_ms;       /* shutdown grace period, default 30 s */
	int64_t timeout_ms;     /* default handler timeout, default 5 minutes */
	const char *queues;     /* comma list; NULL or "" = every queue */
	bool listen;            /* LISTEN/NOTIFY wake-ups (default true) */
	bool shared_tx;         /* run a claimed group in one transaction with
	                           a savepoint per row (default true) */
	const char *name;       /* application_name prefix, default "lote" */
	/* Called in the worker process each time the outcomes of n rows have
	 * committed (successes and failures alike); for metrics and
	 * benchmarks. Runs on the worker's hot path: keep it cheap. */
	void (*on_committed)(lote_kind kind, int n, void *udata);
	void *on_committed_udata;
} lote_engine_options;

void lote_engine_options_init(lote_engine_options *opts);

/* Creates an engine; nothing is connected yet. The engine is caller-owned:
 * free it with lote_engine_free. */
LOTE_MUSTCHECK int lote_engine_new(const lote_engine_options *opts,
                                   lote_engine **ret_engine, lote_error *err);

/* Frees the engine (NULL is fine). Calls free_udata of each handler. */
void lote_engine_free(lote_engine *engine);

/* Registers the handler of a command type (one per type). type is copied;
 * udata is borrowed (or freed by opts->free_udata). opts may be NULL. */
LOTE_MUSTCHECK int lote_engine_on_command(lote_engine *engine, const char *type,
                                          lote_handler_fn fn, void *udata,
                                          const lote_handler_opts *opts,
                                          lote_error *err);

/* Registers a handler of an event type. Several handlers may be registered
 * for one type: all of them run, in registration order, in one transaction
 * with the event's status change. */
LOTE_MUSTCHECK int lote_engine_on_event(lote_engine *engine, const char *type,
                                        lote_handler_fn fn, void *udata,
                                        const lote_handler_opts *opts,
                                        lote_error *err);

/* Runs the supervisor in the calling process: forks the workers, restarts
 * crashed ones, rescues expired leases, and returns 0 after a graceful stop
 * (SIGTERM, SIGINT or lote_engine_stop). Installs handlers for SIGTERM,
 * SIGINT and SIGCHLD for its duration. Needs at least one handler. */
LOTE_MUSTCHECK int lote_engine_run(lote_engine *engine, lote_error *err);

/* Asks a running engine to stop gracefully. Async-signal-safe. */
void lote_engine_stop(lote_engine *engine);

/* ---------------------------------------------------------------------
 * Inside a handler. ctx is borrowed and valid only during the call.
 */

lote_kind lote_ctx_kind(const lote_ctx *ctx);
int64_t lote_ctx_id(const lote_ctx *ctx);
const char *lote_ctx_type(const lote_ctx *ctx);
const char *lote_ctx_institution(const lote_ctx *ctx); /* uuid text */
int lote_ctx_attempt(const lote_ctx *ctx);             /* 1 on first run */
int lote_ctx_max_attempts(const lote_ctx *ctx);
/* The payload, parsed (borrowed; never NULL, an object). */
json_t *lote_ctx_data(const lote_ctx *ctx);
/* The payload as the JSON text stored in the row (borrowed). */
const char *lote_ctx_data_text(const lote_ctx *ctx);
/* Lineage; 0 when absent. For events, entity_* are set. */
int64_t lote_ctx_event_id(const lote_ctx *ctx);
int64_t lote_ctx_parent_id(const lote_ctx *ctx);
int64_t lote_ctx_original_id(const lote_ctx *ctx);
int64_t lote_ctx_batch_id(const lote_ctx *ctx);
const char *lote_ctx_entity_type(const lote_ctx *ctx); /* events only */
const char *lote_ctx_entity_id(const lote_ctx *ctx);   /* events only */

/* The connection of the handler's transaction (borrowed). Everything run on
 * it commits if and only if the handler succeeds. Do not COMMIT, ROLLBACK or
 * close it. Returns NULL when the transaction could not be opened (the
 * reason is then the command's error). */
PGconn *lote_ctx_conn(lote_ctx *ctx);

/* Enqueues a command in the handler's transaction, with this command (or
 * event) as its parent. data: a JSON object (borrowed; NULL = {}); options:
 * the lote.enqueue options object (borrowed; may be NULL); the institution
 * defaults to the handler's own. ret_id may be NULL. */
LOTE_MUSTCHECK int lote_ctx_enqueue(lote_ctx *ctx, const char *type,
                                    json_t *data, json_t *options,
                                    int64_t *ret_id, lote_error *err);

/* Creates a batch in the handler's transaction (see lote.batch in
 * docs/sql.md): commands is a JSON array of {"type", "data", option keys of
 * lote.enqueue} objects, next the follow-up object or NULL (both borrowed).
 * The follow-up is released, exactly once, when every member succeeded. The
 * handler's command (or event) is recorded as the batch's origin; the
 * institution is the handler's. ret_batch_id may be NULL. */
LOTE_MUSTCHECK int lote_ctx_batch(lote_ctx *ctx, const char *type,
                                  json_t *commands, json_t *next,
                                  int64_t *ret_batch_id, lote_error *err);

/* Marks the handler failed with a formatted message and returns
 * LOTE_EHANDLER, so `return lote_ctx_fail(ctx, "...");` is the idiom. The
 * row is retried by its retry policy while attempts remain. */
int lote_ctx_fail(lote_ctx *ctx, const char *fmt, ...) LOTE_PRINTF(2, 3);

/* Like lote_ctx_fail, but for good: the row ends in error now, whatever
 * attempts remain (bad input that no retry will fix). */
int lote_ctx_fail_permanent(lote_ctx *ctx, const char *fmt, ...) LOTE_PRINTF(2, 3);

/* The longest delay lote_ctx_retry_in takes: one year (a longer one is
 * cut to it). */
#define LOTE_RETRY_IN_MAX_MS INT64_C(31536000000)

/* Like lote_ctx_fail, but the next attempt (if any remain) runs after
 * delay_ms instead of the policy's back-off (a rate limit said when);
 * negative is 0, more than LOTE_RETRY_IN_MAX_MS is cut to it. */
int lote_ctx_retry_in(lote_ctx *ctx, int64_t delay_ms, const char *fmt, ...)
	LOTE_PRINTF(3, 4);

#ifdef __cplusplus
}
#endif

#endif /* LOTE_H */
