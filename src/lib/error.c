/* error.c - the lote_error helpers and code names. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

const char *lote_code_name(int code)
{
	switch (code) {
	case LOTE_OK: return "OK";
	case LOTE_EINVAL: return "EINVAL";
	case LOTE_ENOMEM: return "ENOMEM";
	case LOTE_EDB: return "EDB";
	case LOTE_ECONN: return "ECONN";
	case LOTE_ESCHEMA: return "ESCHEMA";
	case LOTE_ESYS: return "ESYS";
	case LOTE_ENOTFOUND: return "ENOTFOUND";
	case LOTE_EHANDLER: return "EHANDLER";
	case LOTE_ESTATE: return "ESTATE";
	case LOTE_ETIMEOUT: return "ETIMEOUT";
	}
	return "E?";
}

static void vset(lote_error *err, int code, const char *fmt, va_list ap)
{
	if (!err)
		return;
	err->code = code;
	err->sqlstate[0] = '\0';
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
}

int lote__fail(lote_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(err, code, fmt, ap);
	va_end(ap);
	return code;
}

int lote__fail_errno(lote_error *err, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	vset(err, LOTE_ESYS, fmt, ap);
	va_end(ap);
	if (err) {
		size_t n = strlen(err->message);
		snprintf(err->message + n, sizeof(err->message) - n, ": %s", strerror(saved));
	}
	return LOTE_ESYS;
}

/* Trims the trailing newline libpq puts on its messages. */
static void chomp(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
}

int lote__fail_pg(lote_error *err, PGconn *conn, const PGresult *res,
                  const char *context)
{
	int code = LOTE_EDB;
	const char *msg = NULL, *state = NULL, *hint = NULL;

	if (res) {
		msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	}
	if (!msg && conn)
		msg = PQerrorMessage(conn);
	if (!msg || !*msg)
		msg = "unknown database error";
	if (conn && PQstatus(conn) != CONNECTION_OK)
		code = LOTE_ECONN;
	if (!err)
		return code;
	err->code = code;
	snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", state ? state : "");
	if (hint)
		snprintf(err->message, sizeof(err->message), "%s%s%s (hint: %s)",
		         context ? context : "", context ? ": " : "", msg, hint);
	else
		snprintf(err->message, sizeof(err->message), "%s%s%s",
		         context ? context : "", context ? ": " : "", msg);
	chomp(err->message);
	return code;
}
