/* archive.c - the archive routine and retention (see archive.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "db.h"
#include "error.h"

/* A retention DROP waits at most this long for its lock: a DROP queued
 * behind a long dashboard query would block every new reader meanwhile. */
#define RETENTION_LOCK_TIMEOUT "5s"
/* Batches per chunk: chunk_rows / this (a batch moves with its members). */
#define ROWS_PER_BATCH_GUESS 100

/* The interval SQL both paths share: $1 = older-than ms or NULL. */
#define OLDER_THAN_SQL \
	"coalesce($1::bigint * interval '1 millisecond'," \
	" (SELECT archive_after FROM lote.archive_settings))"
#define ERROR_AFTER_SQL "(SELECT error_batch_after FROM lote.archive_settings)"

void lote__archive_opts_init(lote__archive_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->older_than_ms = -1;
}

/* Runs one chunk statement (autocommit: one transaction); returns the
 * values of its single row as integers in out[0..n-1]. */
static int run_chunk(PGconn *conn, const char *sql, const char *const *params, int nparams,
                     int64_t *out, int n, lote_error *err)
{
	PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	int rc = 0;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) < n) {
		rc = lote__fail_pg(err, conn, res, "archive");
	} else {
		for (int i = 0; i < n; i++)
			out[i] = PQgetisnull(res, 0, i) ? 0 : strtoll(PQgetvalue(res, 0, i), NULL, 10);
	}
	PQclear(res);
	return rc;
}

int lote__archive_run(PGconn *conn, const lote__archive_opts *opts,
                      lote__archive_stats *ret_stats, lote_error *err)
{
	lote__archive_stats st = { 0 };
	char older[32], chunk[24], batches[24];
	const char *params[2] = { NULL, chunk };
	int64_t deadline = opts->budget_ms > 0 ? lote__mono_ms() + opts->budget_ms : 0;
	int64_t v[3];
	int64_t rows;
	char *s = NULL;
	int rc = 0;

	if (opts->older_than_ms >= 0) {
		snprintf(older, sizeof(older), "%lld", (long long)opts->older_than_ms);
		params[0] = older;
	}
	if (opts->chunk_rows > 0) {
		rows = opts->chunk_rows;
	} else {
		rc = lote__db_value(conn, "SELECT chunk_rows FROM lote.archive_settings", 0, NULL,
		                    &s, err);
		if (rc < 0)
			goto out;
		rows = s ? atoll(s) : 5000;
		free(s);
	}
	snprintf(chunk, sizeof(chunk), "%lld", (long long)rows);
	snprintf(batches, sizeof(batches), "%lld",
	         (long long)(rows / ROWS_PER_BATCH_GUESS > 0 ? rows / ROWS_PER_BATCH_GUESS : 1));

	if (opts->dry_run) {
		int64_t d[4];
		rc = run_chunk(conn,
			"SELECT events, commands, batches, batch_members FROM lote.archive_pending("
			OLDER_THAN_SQL ", " ERROR_AFTER_SQL ")", params, 1, d, 4, err);
		if (rc == 0) {
			st.events = d[0];
			st.commands = d[1] + d[3];
			st.batches = d[2];
		}
		goto out;
	}

	/* Events, then standalone commands, then batches with their members;
	 * each phase until a chunk comes back short. */
	for (int phase = 0; phase < 3; phase++) {
		for (;;) {
			if (deadline && lote__mono_ms() >= deadline) {
				st.more = true;
				goto out;
			}
			if (phase == 0) {
				rc = run_chunk(conn, "SELECT lote.archive_events_chunk(" OLDER_THAN_SQL ", $2::int)",
				               params, 2, v, 1, err);
				if (rc < 0)
					goto out;
				st.events += v[0];
			} else if (phase == 1) {
				rc = run_chunk(conn, "SELECT lote.archive_commands_chunk(" OLDER_THAN_SQL ", $2::int)",
				               params, 2, v, 1, err);
				if (rc < 0)
					goto out;
				st.commands += v[0];
			} else {
				const char *bp[2] = { params[0], batches };
				rc = run_chunk(conn,
					"SELECT batches, commands FROM lote.archive_batches_chunk("
					OLDER_THAN_SQL ", " ERROR_AFTER_SQL ", $2::int)", bp, 2, v, 2, err);
				if (rc < 0)
					goto out;
				st.batches += v[0];
				st.commands += v[1];
				st.chunks++;
				if (v[0] < atoll(batches))
					break;
				continue;
			}
			st.chunks++;
			if (v[0] < rows)
				break;
		}
	}
out:
	if (ret_stats)
		*ret_stats = st;
	return rc;
}

int lote__archive_ensure_ahead(PGconn *conn, lote_error *err)
{
	char *v = NULL;
	int rc = lote__db_value(conn, "SELECT lote.archive_ensure_ahead()", 0, NULL, &v, err);
	if (rc < 0)
		return rc;
	rc = v ? atoi(v) : 0;
	free(v);
	return rc;
}

int lote__retention_run(PGconn *conn, bool dry_run, lote__retention_item **ret_items,
                        int *ret_n, lote_error *err)
{
	PGresult *res = PQexec(conn,
		"SELECT archive, day, status, partition, rows_estimate, bytes"
		" FROM lote.retention_due ORDER BY day, archive, status");
	lote__retention_item *items = NULL;
	int n = 0, rc = 0;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = lote__fail_pg(err, conn, res, "retention");
		PQclear(res);
		return rc;
	}
	n = PQntuples(res);
	if (n > 0) {
		items = calloc((size_t)n, sizeof(*items));
		if (!items) {
			PQclear(res);
			return lote__fail(err, LOTE_ENOMEM, "out of memory");
		}
	}
	for (int i = 0; i < n; i++) {
		snprintf(items[i].archive, sizeof(items[i].archive), "%s", PQgetvalue(res, i, 0));
		snprintf(items[i].day, sizeof(items[i].day), "%s", PQgetvalue(res, i, 1));
		snprintf(items[i].status, sizeof(items[i].status), "%s", PQgetvalue(res, i, 2));
		snprintf(items[i].partition, sizeof(items[i].partition), "%s", PQgetvalue(res, i, 3));
		items[i].rows_estimate = strtoll(PQgetvalue(res, i, 4), NULL, 10);
		items[i].bytes = strtoll(PQgetvalue(res, i, 5), NULL, 10);
	}
	PQclear(res);
	for (int i = 0; i < n && !dry_run; i++) {
		const char *params[1] = { items[i].partition };
		rc = lote__db_exec(conn, "BEGIN; SET LOCAL lock_timeout = '" RETENTION_LOCK_TIMEOUT "'",
		                   err);
		if (rc < 0)
			goto fail;
		res = PQexecParams(conn, "SELECT lote.retention_drop($1)", 1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
			bool lock_busy = state && strcmp(state, "55P03") == 0;
			if (!lock_busy)
				rc = lote__fail_pg(err, conn, res, items[i].partition);
			PQclear(res);
			lote__db_try(conn, "ROLLBACK");
			if (!lock_busy)
				goto fail;
			continue; /* busy: the next run drops it */
		}
		items[i].dropped = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		PQclear(res);
		rc = lote__db_exec(conn, "COMMIT", err);
		if (rc < 0) {
			items[i].dropped = false;
			goto fail;
		}
	}
	if (ret_items)
		*ret_items = items;
	else
		free(items);
	*ret_n = n;
	return 0;
fail:
	free(items);
	return rc;
}
