/* exec.c - STUB, being written (see exec.h). */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "exec.h"

struct lote__exec { char *program; int64_t timeout_ms; };

int lote__exec_new(const char *program, int64_t timeout_ms, lote__exec **ret_exec, lote_error *err)
{
	lote__exec *x = calloc(1, sizeof(*x));
	if (!x)
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	x->program = strdup(program);
	x->timeout_ms = timeout_ms;
	*ret_exec = x;
	return 0;
}

void lote__exec_free(void *exec)
{
	lote__exec *x = exec;
	if (x)
		free(x->program);
	free(x);
}

int lote__exec_handler(lote_ctx *ctx, void *udata)
{
	(void)udata;
	return lote_ctx_fail(ctx, "exec handlers: not yet");
}
