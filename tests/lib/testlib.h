/* testlib.h - helpers for the integration tests: a fresh migrated database
 * per test, SQL one-liners, the lote binary as a child process, waiting for
 * a condition. Every helper fails the running cmocka test on error, so a
 * test reads as a list of steps. Strings returned are malloc'd unless the
 * comment says otherwise. */
#ifndef LOTE_TESTLIB_H
#define LOTE_TESTLIB_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "lote.h"

/* A new database (dropped first if it exists) created from the admin URL of
 * tests/run.sh, migrated unless migrate is false. Returns its conninfo. */
char *tl_fresh_db(const char *name, bool migrate);
PGconn *tl_connect(const char *conninfo);

/* Runs SQL (printf format); fails the test on error. */
void tl_exec(PGconn *conn, const char *fmt, ...) LOTE_PRINTF(2, 3);
/* Runs SQL and returns the error message (malloc'd), or NULL if it worked. */
char *tl_try(PGconn *conn, const char *fmt, ...) LOTE_PRINTF(2, 3);
/* Fails unless sql is refused with a message containing want and, when
 * state_sql is given, that query's one value is the same after as before
 * (nothing was written). */
void tl_rejected(PGconn *conn, const char *sql, const char *want, const char *state_sql);
/* The first column of the first row as text, or NULL for SQL NULL or no
 * row. The string is testlib's (freed at exit), so it can go straight into
 * an assertion. */
const char *tl_value(PGconn *conn, const char *fmt, ...) LOTE_PRINTF(2, 3);
/* The first column of the first row as an integer (fails on NULL). */
long long tl_int(PGconn *conn, const char *fmt, ...) LOTE_PRINTF(2, 3);

/* Polls the query (must return a boolean) every 20 ms until true or
 * timeout_ms; returns whether it became true. */
bool tl_wait(PGconn *conn, int timeout_ms, const char *fmt, ...) LOTE_PRINTF(3, 4);

/* Path of build/lote (from LOTE_BIN). */
const char *tl_lote_bin(void);
/* Starts the lote binary with args (NULL-terminated), LOTE_DATABASE_URL set
 * to conninfo, stdout+stderr to log_path (may be NULL: inherit). */
pid_t tl_spawn_lote(const char *conninfo, const char *log_path, ...);
/* Runs lote to completion; returns its exit status and its stdout+stderr
 * (malloc'd) in *ret_output (may be NULL). */
int tl_run_lote(const char *conninfo, char **ret_output, ...);
/* Sends sig and waits up to timeout_ms; returns the exit status, or -1 if
 * it did not exit (then it is killed). */
int tl_stop(pid_t pid, int sig, int timeout_ms);
/* Returns a temporary file path for this test (malloc'd). */
char *tl_tmp_path(const char *name);
/* Writes an executable shell script and returns its path (malloc'd). */
char *tl_script(const char *name, const char *body);

/* Runs an engine (supervisor + forked workers) in a child process until
 * SIGTERM: opts (conninfo taken from conninfo; NULL opts: the defaults with
 * a 10 s grace) and reg, which registers the handlers. The child exits 0
 * after a clean stop. */
pid_t tl_start_engine(const char *conninfo, const lote_engine_options *opts,
                      void (*reg)(lote_engine *e));
/* For reg functions: registers or exits the child with a message. */
void tl_on_command(lote_engine *e, const char *type, lote_handler_fn fn, void *udata,
                   int timeout_ms);
void tl_on_event(lote_engine *e, const char *type, lote_handler_fn fn, void *udata);

/* For handlers: runs SQL with parameters on the handler's connection;
 * returns 0 or fails the handler with the database's message. */
int tl_ctx_sql(lote_ctx *ctx, const char *sql, int n, const char *const *params);
/* For handlers: records a run in the table runs(kind, id, attempt, pid, at)
 * that tl_runs_table creates. */
int tl_record_run(lote_ctx *ctx);
void tl_runs_table(PGconn *conn);
/* A fresh migrated database with the runs table: *db (freed first if set)
 * gets its conninfo; returns a connection to it. */
PGconn *tl_fresh_runs(const char *name, char **db);

#endif
