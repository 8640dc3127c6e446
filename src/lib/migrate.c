/* migrate.c - applies the embedded sql/ migrations once each.
 *
 * Safe to run from many hosts at once: a session advisory lock serialises
 * runners, and each migration commits in its own transaction together with
 * its row in lote.migrations, so a crash leaves either all of it or none. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "error.h"
#include "migrate.h"

/* Arbitrary but fixed: the key of the advisory lock ("lote" in ASCII). */
#define MIGRATE_LOCK_KEY 0x6c6f7465

int lote_schema_version(void)
{
	return lote__migrations_count;
}

int lote_schema_current(PGconn *conn, int *ret_version, lote_error *err)
{
	char *v = NULL;
	int rc = lote__db_value(conn, "SELECT to_regclass('lote.migrations') IS NOT NULL",
	                        0, NULL, &v, err);
	if (rc < 0)
		return rc;
	if (!v || strcmp(v, "t") != 0) {
		free(v);
		*ret_version = 0;
		return 0;
	}
	free(v);
	v = NULL;
	rc = lote__db_value(conn, "SELECT coalesce(max(version), 0) FROM lote.migrations",
	                    0, NULL, &v, err);
	if (rc < 0)
		return rc;
	*ret_version = v ? atoi(v) : 0;
	free(v);
	return 0;
}

int lote_schema_check(PGconn *conn, lote_error *err)
{
	int version = 0;
	int rc = lote_schema_current(conn, &version, err);

	if (rc < 0)
		return rc;
	if (version < lote__migrations_count)
		return lote__fail(err, LOTE_ESCHEMA,
		                  "the database schema is at version %d, this lote needs %d: run `lote migrate` first",
		                  version, lote__migrations_count);
	if (version > lote__migrations_count)
		return lote__fail(err, LOTE_ESCHEMA,
		                  "the database schema is at version %d, newer than this lote knows (%d): upgrade lote",
		                  version, lote__migrations_count);
	return 0;
}

int lote_migrate(PGconn *conn, int *ret_applied, lote_error *err)
{
	char lock[128];
	int version = 0, applied = 0, rc;

	snprintf(lock, sizeof(lock), "SELECT pg_advisory_lock(%d)", MIGRATE_LOCK_KEY);
	rc = lote__db_exec(conn, lock, err);
	if (rc < 0)
		return rc;
	/* Quiet the NOTICEs of IF NOT EXISTS for this session's bootstrap. */
	rc = lote__db_exec(conn,
		"SET client_min_messages = warning;"
		"CREATE SCHEMA IF NOT EXISTS lote;"
		"CREATE TABLE IF NOT EXISTS lote.migrations ("
		"  version integer PRIMARY KEY,"
		"  name text NOT NULL,"
		"  applied_at timestamptz NOT NULL DEFAULT now());"
		"RESET client_min_messages", err);
	if (rc < 0)
		goto out;
	rc = lote_schema_current(conn, &version, err);
	if (rc < 0)
		goto out;
	if (version > lote__migrations_count) {
		rc = lote__fail(err, LOTE_ESCHEMA,
			"the database schema is at version %d but this lote knows only up to %d; "
			"upgrade lote (refusing to run against a newer schema)",
			version, lote__migrations_count);
		goto out;
	}
	for (int i = version; i < lote__migrations_count; i++) {
		const struct lote__migration *m = &lote__migrations[i];
		char ctx[128], ver[16];
		const char *params[2] = { ver, m->name };
		PGresult *res;

		snprintf(ver, sizeof(ver), "%d", m->version);
		snprintf(ctx, sizeof(ctx), "migration %03d_%s", m->version, m->name);
		rc = lote__db_exec(conn, "BEGIN", err);
		if (rc < 0)
			goto out;
		rc = lote__db_exec(conn, m->sql, err);
		if (rc < 0) {
			if (err) {
				char inner[sizeof(err->message)];
				size_t n = strlen(ctx);
				memcpy(inner, err->message, sizeof(inner));
				snprintf(err->message, sizeof(err->message), "%s: ", ctx);
				snprintf(err->message + n + 2, sizeof(err->message) - n - 2, "%.*s",
				         (int)(sizeof(err->message) - n - 3), inner);
			}
			lote__db_try(conn, "ROLLBACK");
			goto out;
		}
		res = PQexecParams(conn,
			"INSERT INTO lote.migrations (version, name) VALUES ($1, $2)",
			2, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			rc = lote__fail_pg(err, conn, res, ctx);
			PQclear(res);
			lote__db_try(conn, "ROLLBACK");
			goto out;
		}
		PQclear(res);
		rc = lote__db_exec(conn, "COMMIT", err);
		if (rc < 0)
			goto out;
		applied++;
	}
	rc = 0;
	if (ret_applied)
		*ret_applied = applied;
out:
	snprintf(lock, sizeof(lock), "SELECT pg_advisory_unlock(%d)", MIGRATE_LOCK_KEY);
	lote__db_try(conn, lock);
	return rc;
}
