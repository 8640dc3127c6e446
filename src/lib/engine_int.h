/* engine_int.h - what engine.c (supervisor), worker.c (claim loop) and
 * ctx.c (handler context) share. Not part of the public API. */
#ifndef LOTE_ENGINE_INT_H
#define LOTE_ENGINE_INT_H

#include <signal.h>
#include <sys/types.h>

#include "lote.h"
#include "wake.h"

/* A registered handler. */
struct lote__handler {
	char *type;            /* owned */
	lote_handler_fn fn;
	void *udata;           /* freed with opts.free_udata if set */
	lote_handler_opts opts;
};

/* The handlers of one event type, in registration order. */
struct lote__event_type {
	char *type;            /* owned */
	struct lote__handler *handlers;
	int nhandlers;
};

/* What a worker process is running now, in memory shared with the
 * supervisor, so that when the worker dies the supervisor knows which row
 * to blame (and that the others it had claimed did nothing wrong). */
struct lote__slot {
	volatile int kind;    /* 0: none, else lote_kind */
	volatile int64_t id;
	volatile int64_t timeout_ms; /* of the handler running now */
};

struct lote_engine {
	lote_engine_options opts;   /* strings below are owned copies */
	char *conninfo;
	char *queues;               /* NULL: every queue */
	char *name;

	struct lote__handler *commands;   /* sorted by type at run time */
	int ncommands;
	struct lote__event_type *events; /* sorted by type at run time */
	int nevents;

	struct lote__slot *slots;    /* one per worker, shared (mmap) */
	lote__wake *wake;            /* who claims for a wake-up (wake.h), shared;
	                              * made before any worker starts */
	volatile sig_atomic_t stop;  /* set by lote_engine_stop / signals */
	pid_t supervisor_pid;        /* while running */
};

/* Looks a handler up by type (bsearch; the arrays are sorted in run). */
const struct lote__handler *lote__engine_command(const lote_engine *e, const char *type);
const struct lote__event_type *lote__engine_event(const lote_engine *e, const char *type);

/* Exit status of a worker whose database connection was lost. */
#define LOTE__EXIT_CONNECTION 3

/* The body of a worker process; returns its exit status. index counts from 1. */
int lote__worker_main(lote_engine *e, int index);

/* ---------------------------------------------------------------------
 * Handler context (ctx.c). One claimed row, seen by its handler(s).
 */

/* The transaction a group of claimed rows runs in. The worker owns it;
 * contexts open it lazily, so handlers that never touch the database cost
 * no round trip. */
struct lote__tx {
	PGconn *conn;      /* borrowed from the worker */
	const char *begin; /* sent to open it: BEGIN and the lock of the
	                      group's rows (borrowed from the worker) */
	bool open;         /* begin was sent */
	bool broken;       /* a handler ended the transaction itself */
};

struct lote_ctx {
	struct lote__tx *tx;     /* borrowed */
	lote_kind kind;
	int64_t id;
	const char *type;        /* borrowed from the claim result */
	const char *institution;
	const char *data_text;
	const char *entity_type; /* events */
	const char *entity_id;
	int attempt;
	int max_attempts;
	int64_t event_id, parent_id, original_id, batch_id;

	json_t *data;            /* parsed on first use; owned */
	bool savepoint;          /* this row's savepoint is established */
	char *failure;           /* lote_ctx_fail's message; owned */
	bool permanent;          /* failed for good: no retry */
	int64_t retry_ms;        /* the handler's own wait before a retry; -1: the policy's */
};

/* Prepares ctx for a new row (fields are set by the caller after). */
void lote__ctx_reset(lote_ctx *ctx, struct lote__tx *tx);
/* Frees what ctx owns. */
void lote__ctx_done(lote_ctx *ctx);
/* Ends the row's savepoint after its handler(s) ran with result rc: keeps
 * the writes when rc == 0 and the transaction is healthy, else rolls them
 * back. Returns the final result: rc, or a failure when the handler's SQL
 * broke the transaction; *ret_error then describes it (malloc'd). */
int lote__ctx_finish(lote_ctx *ctx, int rc, char **ret_error);

#endif
