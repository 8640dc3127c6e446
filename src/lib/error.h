/* error.h - filling lote_error (the one error pattern of liblote). */
#ifndef LOTE_ERROR_H
#define LOTE_ERROR_H

#include "lote.h"

/* Sets err (if not NULL) and returns code, so `return lote__fail(...)`. */
int lote__fail(lote_error *err, int code, const char *fmt, ...) LOTE_PRINTF(3, 4);

/* Fills err from a failed PGresult (message + SQLSTATE) and returns
 * LOTE_EDB, or LOTE_ECONN when the connection is gone. context is put in
 * front of the server's message. res is borrowed (not cleared). */
int lote__fail_pg(lote_error *err, PGconn *conn, const PGresult *res,
                  const char *context);

/* Like lote__fail with ": strerror(errno)" appended; returns LOTE_ESYS. */
int lote__fail_errno(lote_error *err, const char *fmt, ...) LOTE_PRINTF(2, 3);

#endif
