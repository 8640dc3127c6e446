/* db.h - libpq helpers shared by every module: connect, run SQL text with
 * every result checked. A PGresult never leaves the function that got it. */
#ifndef LOTE_DB_H
#define LOTE_DB_H

#include "lote.h"

/* Connects; application_name is set to appname (may be NULL). The
 * connection is caller-owned (PQfinish). */
LOTE_MUSTCHECK int lote__db_connect(const char *conninfo, const char *appname,
                                    PGconn **ret_conn, lote_error *err);

/* Runs one or more ';'-separated statements without parameters and checks
 * every result; stops at the first error. */
LOTE_MUSTCHECK int lote__db_exec(PGconn *conn, const char *sql, lote_error *err);

/* Best effort, for cleanup paths (ROLLBACK after a failure, unlock): runs
 * sql and ignores the outcome, which the caller cannot act on anyway. */
void lote__db_try(PGconn *conn, const char *sql);

/* Runs a parameterised statement returning at most one row of one column,
 * copying that value (malloc'd, caller frees) to *ret_value, or NULL when no
 * row came back or it was NULL. ret_value may be NULL. */
LOTE_MUSTCHECK int lote__db_value(PGconn *conn, const char *sql, int nparams,
                                  const char *const *params, char **ret_value,
                                  lote_error *err);

/* Microseconds since the epoch (CLOCK_REALTIME) and a monotonic clock. */
int64_t lote__now_us(void);
int64_t lote__mono_ms(void);

#endif
