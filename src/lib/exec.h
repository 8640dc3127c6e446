/* exec.h - handlers in any language: a program gets the command or event
 * as JSON on stdin, says success by exit status 0 and may enqueue work by
 * printing {"enqueue":[…]} on stdout. See docs/config.md. */
#ifndef LOTE_EXEC_H
#define LOTE_EXEC_H

#include <stdbool.h>
#include <sys/types.h>

#include "lote.h"

/* The most of a program's stderr kept as the error message. */
#define LOTE_EXEC_STDERR_TAIL 4096
/* The most stdout read from a program; past it the command fails. */
#define LOTE_EXEC_STDOUT_MAX (16 * 1024 * 1024)
/* The most commands one run may enqueue: each is a statement in the
 * handler's transaction, so more than this belongs in a batch. */
#define LOTE_EXEC_ENQUEUE_MAX 10000
/* How much of bad output is quoted in an "invalid handler output" error. */
#define LOTE_EXEC_EXCERPT 120
/* The engine's own timeout for an exec handler is the program's plus this,
 * so the program is always stopped by exec (with a clear message and its
 * process group killed) before the engine steps in. */
#define LOTE_EXEC_KILL_MARGIN_MS 5000

typedef struct lote__exec lote__exec;

/* Creates the spec of one exec handler: program is run with /bin/sh -c
 * (copied). timeout_ms: 0 = no limit of its own. Caller-owned. */
LOTE_MUSTCHECK int lote__exec_new(const char *program, int64_t timeout_ms,
                                  lote__exec **ret_exec, lote_error *err);
void lote__exec_free(void *exec); /* a lote_handler_opts.free_udata */

/* The lote_handler_fn of exec handlers; udata is a lote__exec. */
int lote__exec_handler(lote_ctx *ctx, void *udata);

/* ---------------------------------------------------------------------
 * The parts of the handler, exposed so unit tests cover them without a
 * database.
 */

/* What one run of a program gave. */
typedef struct lote__exec_result {
	int status;           /* waitpid() status; meaningless if timed_out */
	bool timed_out;       /* killed (with its process group) at the limit */
	bool stdout_overflow; /* killed for writing over LOTE_EXEC_STDOUT_MAX */
	char *out;            /* stdout, NUL-terminated (owned; never NULL) */
	size_t out_len;
	char tail[LOTE_EXEC_STDERR_TAIL + 1]; /* last bytes of stderr, NUL-term. */
	size_t tail_len;
	bool tail_cut;        /* stderr was longer than the tail */
} lote__exec_result;

/* Runs `/bin/sh -c program` in its own process group with input on its
 * stdin and envp as its environment (borrowed), collecting stdout and the
 * tail of stderr; kills the group after timeout_ms (0: no limit). Fails
 * only when the program could not be started; *ret is then untouched.
 * On success free ret with lote__exec_result_done. */
LOTE_MUSTCHECK int lote__exec_run(const char *program, const char *input,
                                  size_t input_len, char *const envp[],
                                  int64_t timeout_ms, lote__exec_result *ret,
                                  lote_error *err);
void lote__exec_result_done(lote__exec_result *r);

/* Whether the run succeeded (exit status 0, no timeout, no overflow);
 * otherwise writes the command's error message (valid UTF-8) to buf. */
bool lote__exec_result_ok(const lote__exec_result *r, int64_t timeout_ms,
                          char *buf, size_t len);

/* Checks what a program printed on stdout: nothing (only whitespace), or
 * an object with "enqueue":[{"type":…, "data":{…}, "options":{…},
 * "institution_id":…}] and/or "batch":{"type":…, "commands":[…],
 * "next":{…}}. *ret_enqueue gets the enqueue array and *ret_batch the batch
 * object (caller-owned, json_decref), each NULL when absent (or, for
 * enqueue, empty). Errors are LOTE_EINVAL with a message "invalid handler
 * output: <why>" quoting the start of the output; the outputs are then
 * untouched. The batch's members are checked by lote.batch itself. */
LOTE_MUSTCHECK int lote__exec_parse_output(const char *out, size_t len,
                                           json_t **ret_enqueue,
                                           json_t **ret_batch,
                                           lote_error *err);

#endif
