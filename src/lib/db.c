/* db.c - see db.h. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "error.h"

int lote__db_connect(const char *conninfo, const char *appname,
                     PGconn **ret_conn, lote_error *err)
{
	const char *keys[] = { "dbname", "application_name", "connect_timeout", NULL };
	const char *vals[] = { conninfo, appname ? appname : "lote", "10", NULL };
	PGconn *conn;

	if (!conninfo)
		return lote__fail(err, LOTE_EINVAL, "no database given");
	/* expand_dbname: conninfo may be a URI or a key=value string; the
	 * keys after it (application_name, connect_timeout) override it. */
	conn = PQconnectdbParams(keys, vals, 1);
	if (!conn)
		return lote__fail(err, LOTE_ENOMEM, "out of memory connecting");
	if (PQstatus(conn) != CONNECTION_OK) {
		int rc = lote__fail(err, LOTE_ECONN, "cannot connect to PostgreSQL: %s",
		                    PQerrorMessage(conn));
		if (err) {
			size_t n = strlen(err->message);
			while (n > 0 && err->message[n - 1] == '\n')
				err->message[--n] = '\0';
		}
		PQfinish(conn);
		return rc;
	}
	*ret_conn = conn;
	return 0;
}

int lote__db_exec(PGconn *conn, const char *sql, lote_error *err)
{
	PGresult *res;
	int rc = 0;

	if (!PQsendQuery(conn, sql))
		return lote__fail_pg(err, conn, NULL, NULL);
	while ((res = PQgetResult(conn)) != NULL) {
		ExecStatusType st = PQresultStatus(res);
		if (rc == 0 && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
		    st != PGRES_EMPTY_QUERY)
			rc = lote__fail_pg(err, conn, res, NULL);
		PQclear(res);
	}
	return rc;
}

void lote__db_try(PGconn *conn, const char *sql)
{
	if (lote__db_exec(conn, sql, NULL) < 0) {
		/* ignored on purpose, see db.h */
	}
}

int lote__db_value(PGconn *conn, const char *sql, int nparams,
                   const char *const *params, char **ret_value, lote_error *err)
{
	PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	int rc = 0;

	if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK) {
		rc = lote__fail_pg(err, conn, res, NULL);
	} else if (ret_value) {
		char *v = NULL;
		if (PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0)) {
			v = strdup(PQgetvalue(res, 0, 0));
			if (!v)
				rc = lote__fail(err, LOTE_ENOMEM, "out of memory");
		}
		if (rc == 0)
			*ret_value = v;
	}
	PQclear(res);
	return rc;
}

int64_t lote__now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t lote__mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
