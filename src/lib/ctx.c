/* ctx.c - what a handler sees: the claimed row, its payload, and the
 * connection of the transaction its writes commit in.
 *
 * Each row runs inside a savepoint of the worker's transaction, opened only
 * when the handler first asks for the connection: a handler that never
 * touches the database costs no round trip. The savepoint also carries the
 * row's id in transaction-local settings, so any lote.enqueue the handler's
 * SQL makes is linked to it (lineage) without the handler saying so. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "engine_int.h"
#include "error.h"
#include "jsontext.h"
#include "utf8.h"

void lote__ctx_reset(lote_ctx *ctx, struct lote__tx *tx)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->tx = tx;
	ctx->retry_ms = -1;
}

void lote__ctx_done(lote_ctx *ctx)
{
	json_decref(ctx->data);
	ctx->data = NULL;
	free(ctx->failure);
	ctx->failure = NULL;
}

lote_kind lote_ctx_kind(const lote_ctx *ctx) { return ctx->kind; }
int64_t lote_ctx_id(const lote_ctx *ctx) { return ctx->id; }
const char *lote_ctx_type(const lote_ctx *ctx) { return ctx->type; }
const char *lote_ctx_institution(const lote_ctx *ctx) { return ctx->institution; }
int lote_ctx_attempt(const lote_ctx *ctx) { return ctx->attempt; }
int lote_ctx_max_attempts(const lote_ctx *ctx) { return ctx->max_attempts; }
const char *lote_ctx_data_text(const lote_ctx *ctx) { return ctx->data_text; }
int64_t lote_ctx_event_id(const lote_ctx *ctx) { return ctx->event_id; }
int64_t lote_ctx_parent_id(const lote_ctx *ctx) { return ctx->parent_id; }
int64_t lote_ctx_original_id(const lote_ctx *ctx) { return ctx->original_id; }
int64_t lote_ctx_batch_id(const lote_ctx *ctx) { return ctx->batch_id; }
const char *lote_ctx_entity_type(const lote_ctx *ctx) { return ctx->entity_type; }
const char *lote_ctx_entity_id(const lote_ctx *ctx) { return ctx->entity_id; }

json_t *lote_ctx_data(const lote_ctx *ctx)
{
	lote_ctx *c = (lote_ctx *)ctx; /* parsing lazily is not a visible change */

	if (!c->data) {
		c->data = json_loads(c->data_text, JSON_DECODE_ANY, NULL);
		/* The column is jsonb holding an object (checked on insert), so
		 * this only fails on out-of-memory; never hand out NULL. */
		if (!c->data || !json_is_object(c->data)) {
			json_decref(c->data);
			c->data = json_object();
		}
	}
	return c->data;
}

static int vfail(lote_ctx *ctx, const char *fmt, va_list ap)
{
	char *msg = NULL;

	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	/* a message may quote any bytes; the outcome is JSON and a text column */
	if (msg)
		lote__utf8_sanitize(msg, strlen(msg));
	free(ctx->failure);
	ctx->failure = msg ? msg : strdup("handler failed (and out of memory)");
	return LOTE_EHANDLER;
}

int lote_ctx_fail(lote_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vfail(ctx, fmt, ap);
	va_end(ap);
	return rc;
}

int lote_ctx_fail_permanent(lote_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vfail(ctx, fmt, ap);
	va_end(ap);
	ctx->permanent = true;
	return rc;
}

int lote_ctx_retry_in(lote_ctx *ctx, int64_t delay_ms, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vfail(ctx, fmt, ap);
	va_end(ap);
	/* the completion adds it to now(): past PostgreSQL's interval range
	 * that failed and left the row claimed for good */
	ctx->retry_ms = delay_ms < 0 ? 0 : delay_ms > LOTE_RETRY_IN_MAX_MS ? LOTE_RETRY_IN_MAX_MS : delay_ms;
	return rc;
}

PGconn *lote_ctx_conn(lote_ctx *ctx)
{
	struct lote__tx *tx = ctx->tx;
	char *sql = NULL;
	lote_error err = { 0 };
	int rc;

	if (ctx->savepoint)
		return tx->conn;
	if (tx->broken)
		return NULL;
	/* BEGIN with the lock of the group's rows (first row to need it), the
	 * row's savepoint and its lineage settings go in one round trip. */
	if (asprintf(&sql,
	             "%sSAVEPOINT lote_row;"
	             "SELECT set_config('lote.command_id', '%lld', true),"
	             "       set_config('lote.event_id', '%lld', true)",
	             tx->open ? "" : tx->begin,
	             ctx->kind == LOTE_COMMAND ? (long long)ctx->id : 0LL,
	             ctx->kind == LOTE_EVENT ? (long long)ctx->id : 0LL) < 0) {
		lote_ctx_fail(ctx, "out of memory");
		return NULL;
	}
	rc = lote__db_exec(tx->conn, sql, &err);
	free(sql);
	if (rc < 0) {
		lote_ctx_fail(ctx, "cannot open the handler's transaction: %s", err.message);
		if (PQtransactionStatus(tx->conn) != PQTRANS_IDLE)
			tx->open = true;
		return NULL;
	}
	tx->open = true;
	ctx->savepoint = true;
	return tx->conn;
}

/* Runs a lote.* SQL function returning an id on the handler's connection,
 * with two JSON arguments encoded from a and b (NULL: given as a_null /
 * SQL NULL). */
static int call_id(lote_ctx *ctx, const char *sql, const char *type, json_t *a,
                   const char *a_null, json_t *b, int64_t *ret_id, lote_error *err)
{
	PGconn *conn = lote_ctx_conn(ctx);
	char *a_text = NULL, *b_text = NULL, *id = NULL;
	const char *params[4];
	int rc;

	if (!conn)
		return lote__fail(err, LOTE_ESTATE, "%s",
		                  ctx->failure ? ctx->failure : "no transaction");
	if (!type)
		return lote__fail(err, LOTE_EINVAL, "type is NULL");
	a_text = a ? lote__json_text(a, JSON_COMPACT | JSON_ENCODE_ANY) : (a_null ? strdup(a_null) : NULL);
	b_text = b ? lote__json_text(b, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	if ((a || a_null) && !a_text) {
		rc = lote__fail(err, LOTE_ENOMEM, "cannot encode the JSON argument");
		goto out;
	}
	if (b && !b_text) {
		rc = lote__fail(err, LOTE_ENOMEM, "cannot encode the JSON argument");
		goto out;
	}
	params[0] = type;
	params[1] = a_text;
	params[2] = ctx->institution;
	params[3] = b_text;
	rc = lote__db_value(conn, sql, 4, params, &id, err);
	if (rc == 0 && ret_id)
		*ret_id = id ? strtoll(id, NULL, 10) : 0;
out:
	free(id);
	free(a_text);
	free(b_text);
	return rc;
}

int lote_ctx_enqueue(lote_ctx *ctx, const char *type, json_t *data,
                     json_t *options, int64_t *ret_id, lote_error *err)
{
	json_t *empty = options ? NULL : json_object();
	int rc = call_id(ctx, "SELECT lote.enqueue($1, $2::jsonb, $3::uuid, $4::jsonb)",
	                 type, data, "{}", options ? options : empty, ret_id, err);
	json_decref(empty);
	return rc;
}

int lote_ctx_batch(lote_ctx *ctx, const char *type, json_t *commands, json_t *next,
                   int64_t *ret_batch_id, lote_error *err)
{
	return call_id(ctx, "SELECT lote.batch($1, $2::jsonb, $4::jsonb, $3::uuid)",
	               type, commands, "[]", next, ret_batch_id, err);
}

int lote__ctx_finish(lote_ctx *ctx, int rc, char **ret_error)
{
	struct lote__tx *tx = ctx->tx;
	PGTransactionStatusType st;
	char *why = NULL;

	if (rc != 0 && !ctx->failure)
		lote_ctx_fail(ctx, "handler failed (%s)", lote_code_name(rc));
	if (!ctx->savepoint)
		goto out;
	st = PQtransactionStatus(tx->conn);
	if (st == PQTRANS_IDLE || st == PQTRANS_UNKNOWN) {
		/* The handler committed, rolled back or lost the connection: its
		 * atomicity with the status is gone, so it fails. */
		tx->open = false;
		tx->broken = (st == PQTRANS_UNKNOWN);
		if (rc == 0 || !ctx->failure)
			lote_ctx_fail(ctx, "%s", st == PQTRANS_IDLE
			              ? "the handler ended the transaction itself (handlers must not COMMIT or ROLLBACK)"
			              : "the database connection was lost during the handler");
		rc = LOTE_EHANDLER;
		goto out;
	}
	if (rc == 0 && st == PQTRANS_INERROR) {
		/* A statement failed but the handler said success: the failed SQL
		 * wins, since its writes are gone. */
		const char *m = PQerrorMessage(tx->conn);
		lote_ctx_fail(ctx, "the handler's SQL failed: %.*s",
		              (int)strcspn(m, "\n"), m);
		rc = LOTE_EHANDLER;
	}
	if (rc == 0) {
		if (lote__db_exec(tx->conn, "RELEASE SAVEPOINT lote_row", NULL) == 0)
			goto out;
		lote_ctx_fail(ctx, "cannot release the savepoint: %s", PQerrorMessage(tx->conn));
		rc = LOTE_EHANDLER;
	}
	if (lote__db_exec(tx->conn,
	                  "ROLLBACK TO SAVEPOINT lote_row; RELEASE SAVEPOINT lote_row",
	                  NULL) < 0)
		tx->broken = true; /* the worker rolls the whole transaction back */
out:
	if (rc != 0) {
		why = ctx->failure;
		ctx->failure = NULL;
	}
	*ret_error = why;
	ctx->savepoint = false;
	return rc;
}
