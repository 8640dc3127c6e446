/* schedule.c - scheduled routines, exactly once per tick (schedule.h).
 *
 * Time zones stay in PostgreSQL: the claim reads the due tick and "now" as
 * wall-clock minutes in the schedule's zone, cron.c finds the next
 * wall-clock minute, and SQL turns it back into a timestamptz
 * (`timestamp AT TIME ZONE zone`). A wall-clock minute skipped by a DST
 * change runs at the same clock time after the change (PostgreSQL's
 * reading of a nonexistent local time); one repeated runs once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "cron.h"
#include "db.h"
#include "error.h"
#include "jsontext.h"
#include "log.h"
#include "schedule.h"

/* Schedules handled per tick call, so the supervisor stays responsive. */
#define SCHEDULE_MAX_PER_TICK 20
/* Missed ticks enqueued per schedule per call under missed = catch_up; the
 * rest follow at the next calls (every ~2 s). */
#define SCHEDULE_CATCHUP_MAX 100
/* A tick later than this counts as missed (policy skip). The daemon looks
 * every ~2 s, so only downtime or an overloaded database gets here. */
#define SCHEDULE_MISFIRE_SQL "interval '1 minute'"
/* A routine's lease: another daemon takes over a routine whose daemon died
 * once it expires. Far above the routine budget. */
#define ROUTINE_LEASE_SQL "interval '10 minutes'"
/* Time a routine may hold the supervisor per tick; an archive with work
 * left asks to run again at the next tick (archiving is continuous while
 * there is a backlog). */
#define ROUTINE_BUDGET_MS 500

enum { COL_NAME, COL_CRON, COL_ROUTINE, COL_TYPE, COL_DATA, COL_INST, COL_OPTIONS, COL_MISSED,
       COL_UNSET, COL_NEXT_LOCAL, COL_NOW_LOCAL, COL_LATE, COL_NEXT };

static int exec_params(PGconn *conn, const char *sql, int n, const char *const *params,
                       const char *context, lote_error *err)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
	int rc = 0;
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		rc = lote__fail_pg(err, conn, res, context);
	PQclear(res);
	return rc;
}

/* The next run after `from` (wall clock), formatted into buf. */
static int next_after(const lote__cron *cron, const char *from, char *buf, size_t len,
                      lote__civil *ret, lote_error *err)
{
	lote__civil c, n;
	int rc;
	if (lote__civil_parse(from, &c) < 0)
		return lote__fail(err, LOTE_EINVAL, "bad wall-clock time \"%s\"", from);
	rc = lote__cron_next(cron, &c, &n, err);
	if (rc < 0)
		return rc;
	lote__civil_format(&n, buf, len);
	if (ret)
		*ret = n;
	return 0;
}

/* Marks a schedule broken (its cron does not parse or never matches). */
static void disable(PGconn *conn, const char *name, const char *why)
{
	const char *params[2] = { name, why };
	lote_error err = { 0 };
	if (exec_params(conn,
	        "UPDATE lote.schedules SET enabled = false, next_run_at = NULL,"
	        " last_status = 'error', last_error = $2 WHERE name = $1",
	        2, params, "schedule", &err) < 0)
		log_error("schedule %s: %s", name, err.message);
	else
		log_error("schedule %s disabled: %s", name, why);
}

int lote__schedule_init_next(PGconn *conn, lote_error *err)
{
	PGresult *res = PQexec(conn,
		"SELECT name, cron, to_char(now() AT TIME ZONE timezone, 'YYYY-MM-DD HH24:MI')"
		" FROM lote.schedules WHERE enabled AND next_run_at IS NULL ORDER BY name LIMIT 100");
	int rc = 0, done = 0;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = lote__fail_pg(err, conn, res, "schedules");
		PQclear(res);
		return rc;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		const char *name = PQgetvalue(res, i, 0);
		lote__cron cron;
		lote_error perr = { 0 };
		char next[32];
		const char *params[2] = { name, next };

		if (lote__cron_parse(PQgetvalue(res, i, 1), &cron, &perr) < 0 ||
		    next_after(&cron, PQgetvalue(res, i, 2), next, sizeof(next), NULL, &perr) < 0) {
			disable(conn, name, perr.message);
			continue;
		}
		rc = exec_params(conn,
			"UPDATE lote.schedules SET next_run_at = $2::timestamp AT TIME ZONE timezone"
			" WHERE name = $1 AND next_run_at IS NULL",
			2, params, "schedules", err);
		if (rc < 0)
			break;
		done++;
	}
	PQclear(res);
	return rc < 0 ? rc : done;
}

/* Runs a built-in routine; *ret_more when it stopped with work left. */
static int run_routine(PGconn *conn, const char *routine, bool *ret_more, char *summary,
                       size_t len, lote_error *err)
{
	int rc;
	*ret_more = false;
	summary[0] = '\0';
	if (strcmp(routine, "archive") == 0) {
		lote__archive_opts o;
		lote__archive_stats st;
		rc = lote__archive_ensure_ahead(conn, err);
		if (rc < 0)
			return rc;
		lote__archive_opts_init(&o);
		o.budget_ms = ROUTINE_BUDGET_MS;
		rc = lote__archive_run(conn, &o, &st, err);
		*ret_more = st.more;
		snprintf(summary, len, "archived %lld events, %lld commands, %lld batches%s",
		         (long long)st.events, (long long)st.commands, (long long)st.batches,
		         st.more ? " (more to do)" : "");
		if (st.events + st.commands + st.batches > 0)
			log_info("%s", summary);
		return rc;
	}
	if (strcmp(routine, "retention") == 0) {
		lote__retention_item *items = NULL;
		int n = 0, dropped = 0;
		rc = lote__retention_run(conn, false, &items, &n, err);
		if (rc < 0)
			return rc;
		for (int i = 0; i < n; i++)
			dropped += items[i].dropped;
		free(items);
		snprintf(summary, len, "dropped %d of %d partitions past retention", dropped, n);
		if (n > 0)
			log_info("retention: %s", summary);
		rc = lote__archive_ensure_ahead(conn, err);
		return rc < 0 ? rc : 0;
	}
	return lote__fail(err, LOTE_EINVAL, "unknown routine \"%s\"", routine);
}

/* Claims and runs at most one due schedule. *ret_ran: whether one was. */
static int tick_one(PGconn *conn, bool *ret_ran, lote_error *err)
{
	PGresult *res;
	lote__cron cron;
	lote_error perr = { 0 };
	char next[32], nruns[16];
	const char *name;
	bool late, routine;
	int runs = 0, rc;

	*ret_ran = false;
	rc = lote__db_exec(conn, "BEGIN", err);
	if (rc < 0)
		return rc;
	res = PQexec(conn,
		"SELECT name, cron, routine, command_type, data::text, institution_id::text,"
		" options::text, missed, next_run_at IS NULL,"
		" to_char(next_run_at AT TIME ZONE timezone, 'YYYY-MM-DD HH24:MI'),"
		" to_char(now() AT TIME ZONE timezone, 'YYYY-MM-DD HH24:MI'),"
		" coalesce(now() - next_run_at > " SCHEDULE_MISFIRE_SQL ", false), next_run_at::text"
		" FROM lote.schedules"
		" WHERE enabled AND (next_run_at IS NULL OR next_run_at <= now())"
		"   AND (locked_until IS NULL OR locked_until < now())"
		" ORDER BY next_run_at NULLS FIRST, name LIMIT 1 FOR UPDATE SKIP LOCKED");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = lote__fail_pg(err, conn, res, "schedules");
		goto fail;
	}
	if (PQntuples(res) == 0) {
		PQclear(res);
		return lote__db_exec(conn, "COMMIT", err);
	}
	*ret_ran = true;
	name = PQgetvalue(res, 0, COL_NAME);
	routine = !PQgetisnull(res, 0, COL_ROUTINE);
	late = strcmp(PQgetvalue(res, 0, COL_LATE), "t") == 0;
	if (lote__cron_parse(PQgetvalue(res, 0, COL_CRON), &cron, &perr) < 0)
		goto broken;
	if (strcmp(PQgetvalue(res, 0, COL_UNSET), "t") == 0) {
		/* Added from SQL or cron changed: first tick after now. */
		const char *params[2] = { name, next };
		if (next_after(&cron, PQgetvalue(res, 0, COL_NOW_LOCAL), next, sizeof(next), NULL, &perr) < 0)
			goto broken;
		rc = exec_params(conn,
			"UPDATE lote.schedules SET next_run_at = $2::timestamp AT TIME ZONE timezone"
			" WHERE name = $1", 2, params, "schedules", err);
		if (rc < 0)
			goto fail;
		PQclear(res);
		return lote__db_exec(conn, "COMMIT", err);
	}
	if (strcmp(PQgetvalue(res, 0, COL_MISSED), "catch_up") == 0) {
		/* Every missed tick runs, oldest first, a bounded number per call. */
		lote__civil t, now;
		if (lote__civil_parse(PQgetvalue(res, 0, COL_NEXT_LOCAL), &t) < 0 ||
		    lote__civil_parse(PQgetvalue(res, 0, COL_NOW_LOCAL), &now) < 0) {
			rc = lote__fail(err, LOTE_EINVAL, "schedule %s: bad times", name);
			goto fail;
		}
		while (lote__civil_cmp(&t, &now) <= 0 && runs < SCHEDULE_CATCHUP_MAX) {
			runs++;
			if (lote__cron_next(&cron, &t, &t, &perr) < 0)
				goto broken;
		}
		lote__civil_format(&t, next, sizeof(next));
	} else {
		/* once: the missed ticks collapse into one run now; skip: a tick
		 * more than a minute late does not run at all. */
		runs = strcmp(PQgetvalue(res, 0, COL_MISSED), "skip") == 0 && late ? 0 : 1;
		if (next_after(&cron, PQgetvalue(res, 0, COL_NOW_LOCAL), next, sizeof(next), NULL, &perr) < 0)
			goto broken;
	}
	snprintf(nruns, sizeof(nruns), "%d", runs);

	if (!routine) {
		const char *ep[5] = { PQgetvalue(res, 0, COL_TYPE), PQgetvalue(res, 0, COL_DATA),
		                      PQgetvalue(res, 0, COL_INST), PQgetvalue(res, 0, COL_OPTIONS),
		                      nruns };
		const char *up[3] = { name, next, nruns };
		if (runs > 0 &&
		    exec_params(conn,
		        "SELECT count(lote.enqueue($1, $2::jsonb, $3::uuid, $4::jsonb))"
		        " FROM generate_series(1, $5::int)", 5, ep, name, &perr) < 0) {
			/* The command cannot be enqueued (e.g. its options are no
			 * longer valid): record why and move on to the next tick. */
			char *why = strdup(perr.message);
			const char *fp[4] = { name, next, why ? why : "enqueue failed",
			                      PQgetvalue(res, 0, COL_NEXT) };
			lote__db_try(conn, "ROLLBACK");
			log_error("schedule %s: %s", name, perr.message);
			rc = exec_params(conn,
				"UPDATE lote.schedules SET next_run_at = $2::timestamp AT TIME ZONE timezone,"
				" last_run_at = now(), last_status = 'error', last_error = $3"
				" WHERE name = $1 AND next_run_at = $4::timestamptz", 4, fp, "schedules", err);
			free(why);
			PQclear(res);
			return rc;
		}
		rc = exec_params(conn,
			"UPDATE lote.schedules SET next_run_at = $2::timestamp AT TIME ZONE timezone,"
			" runs = runs + $3::int,"
			" last_run_at = CASE WHEN $3::int > 0 THEN now() ELSE last_run_at END,"
			" last_status = CASE WHEN $3::int > 0 THEN 'ok' ELSE 'skipped' END, last_error = NULL"
			" WHERE name = $1", 3, up, "schedules", err);
		if (rc < 0)
			goto fail;
		PQclear(res);
		return lote__db_exec(conn, "COMMIT", err);
	}

	/* A routine: claim it (lease), commit, then run it outside. */
	{
		const char *up[3] = { name, next, nruns };
		char *rname = NULL, *rroutine = NULL, summary[256];
		int64_t t0;
		bool more = false;
		lote_error rerr = { 0 };
		char dur[32];
		const char *fin[5];

		rc = exec_params(conn,
			"UPDATE lote.schedules SET next_run_at = $2::timestamp AT TIME ZONE timezone,"
			" locked_until = CASE WHEN $3::int > 0 THEN now() + " ROUTINE_LEASE_SQL " END,"
			" runs = runs + $3::int,"
			" last_run_at = CASE WHEN $3::int > 0 THEN now() ELSE last_run_at END,"
			" last_status = CASE WHEN $3::int > 0 THEN 'running' ELSE 'skipped' END"
			" WHERE name = $1", 3, up, "schedules", err);
		if (rc < 0)
			goto fail;
		rname = strdup(name);
		rroutine = strdup(PQgetvalue(res, 0, COL_ROUTINE));
		PQclear(res);
		res = NULL;
		if (!rname || !rroutine) {
			free(rname);
			free(rroutine);
			lote__db_try(conn, "ROLLBACK");
			return lote__fail(err, LOTE_ENOMEM, "out of memory");
		}
		rc = lote__db_exec(conn, "COMMIT", err);
		if (rc < 0 || runs == 0) {
			free(rname);
			free(rroutine);
			return rc;
		}
		t0 = lote__mono_ms();
		rc = run_routine(conn, rroutine, &more, summary, sizeof(summary), &rerr);
		if (rc < 0)
			log_error("routine %s: %s", rname, rerr.message);
		snprintf(dur, sizeof(dur), "%lld", (long long)(lote__mono_ms() - t0));
		fin[0] = rname;
		fin[1] = rc < 0 ? "error" : "ok";
		fin[2] = rc < 0 ? rerr.message : summary;
		fin[3] = dur;
		fin[4] = more ? "t" : "f";
		rc = exec_params(conn,
			"UPDATE lote.schedules SET locked_until = NULL, last_status = $2,"
			" last_error = CASE WHEN $2 = 'error' THEN $3 END,"
			" last_duration = $4::bigint * interval '1 millisecond',"
			" next_run_at = CASE WHEN $5::boolean THEN least(next_run_at, now()) ELSE next_run_at END"
			" WHERE name = $1", 5, fin, "schedules", err);
		free(rname);
		free(rroutine);
		return rc;
	}

broken:
	lote__db_try(conn, "ROLLBACK");
	disable(conn, name, perr.message);
	PQclear(res);
	return 0;
fail:
	PQclear(res);
	lote__db_try(conn, "ROLLBACK");
	return rc;
}

int lote__schedule_tick(PGconn *conn, lote_error *err)
{
	int ran = 0;
	for (int i = 0; i < SCHEDULE_MAX_PER_TICK; i++) {
		bool one = false;
		int rc = tick_one(conn, &one, err);
		if (rc < 0)
			return rc;
		if (!one)
			break;
		ran++;
	}
	return ran;
}

/* ---------------------------------------------------------------------
 * The public C API over lote.schedule / lote.unschedule.
 */

int lote_schedule_add(PGconn *conn, const char *name, const char *cron,
                      const char *command_type, json_t *data, json_t *options,
                      lote_error *err)
{
	char *d = data ? lote__json_text(data, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	char *o = options ? lote__json_text(options, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	const char *params[5] = { name, cron, command_type, d ? d : "{}", o ? o : "{}" };
	int rc;

	if ((data && !d) || (options && !o))
		rc = lote__fail(err, LOTE_ENOMEM, "out of memory");
	else
		rc = lote__db_value(conn, "SELECT lote.schedule($1, $2, $3, $4::jsonb, $5::jsonb)",
		                    5, params, NULL, err);
	free(d);
	free(o);
	return rc;
}

int lote_schedule_remove(PGconn *conn, const char *name, lote_error *err)
{
	const char *params[1] = { name };
	char *v = NULL;
	int rc = lote__db_value(conn, "SELECT lote.unschedule($1)", 1, params, &v, err);

	if (rc == 0)
		rc = v && strcmp(v, "t") == 0 ? 1 : 0;
	free(v);
	return rc;
}
