/* exec.h - handlers in any language: a program gets the command or event
 * as JSON on stdin, says success by exit status 0 and may enqueue work by
 * printing {"enqueue":[…]} on stdout. See docs/config.md. */
#ifndef LOTE_EXEC_H
#define LOTE_EXEC_H

#include "lote.h"

/* The most of a program's stderr kept as the error message. */
#define LOTE_EXEC_STDERR_TAIL 4096
/* The most stdout read from a program; past it the command fails. */
#define LOTE_EXEC_STDOUT_MAX (16 * 1024 * 1024)

typedef struct lote__exec lote__exec;

/* Creates the spec of one exec handler: program is run with /bin/sh -c
 * (copied). timeout_ms: 0 = no limit of its own. Caller-owned. */
LOTE_MUSTCHECK int lote__exec_new(const char *program, int64_t timeout_ms,
                                  lote__exec **ret_exec, lote_error *err);
void lote__exec_free(void *exec); /* a lote_handler_opts.free_udata */

/* The lote_handler_fn of exec handlers; udata is a lote__exec. */
int lote__exec_handler(lote_ctx *ctx, void *udata);

#endif
