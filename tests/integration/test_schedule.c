/* The scheduler: a tick runs once across three daemons, missed ticks
 * follow their policy, schedules added from SQL get their next run, bad
 * input is refused clearly. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schedule.h"
#include "testlib.h"

/* Sets the schedule's next run `minutes` ago, on a minute boundary, and
 * remembers it in t0 (a temp table). */
static void rewind_schedule(PGconn *c, const char *name, int minutes)
{
	tl_exec(c, "UPDATE lote.schedules SET next_run_at = date_trunc('minute', now()) - interval '%d minutes'"
	           " WHERE name = '%s'", minutes, name);
}

static void once_per_tick_with_three_daemons(void **state)
{
	char *db = tl_fresh_db("schedule_three", true);
	PGconn *c = tl_connect(db);
	pid_t d[3];
	char *logs[3];
	(void)state;

	tl_exec(c, "SELECT lote.schedule('tick', '* * * * *', 'Tick', '{\"n\": 1}', '{\"missed\": \"catch_up\"}')");
	/* the built-in archive is due at once (not at the next minute) */
	tl_exec(c, "UPDATE lote.schedules SET next_run_at = now() WHERE name = 'lote.archive'");
	for (int round = 0; round < 3; round++) {
		/* One transaction: from round 1 on the daemons are running, and
		 * one that ticked between a committed rewind and the DELETE had
		 * its 31 commands deleted under the count below. A tick skips
		 * the locked schedule row until COMMIT, then sees all three. */
		tl_exec(c, "BEGIN");
		tl_exec(c, "DELETE FROM lote.commands WHERE type = 'Tick'");
		rewind_schedule(c, "tick", 30);
		tl_exec(c, "CREATE TABLE IF NOT EXISTS t0 AS SELECT 0 AS x");
		tl_exec(c, "DROP TABLE t0; CREATE TABLE t0 AS SELECT next_run_at AS t FROM lote.schedules WHERE name = 'tick'");
		tl_exec(c, "COMMIT");
		if (round == 0)
			for (int i = 0; i < 3; i++) {
				char name[32];
				snprintf(name, sizeof(name), "schedule_d%d.log", i);
				logs[i] = tl_tmp_path(name);
				d[i] = tl_spawn_lote(db, logs[i], "run", "--exec", "Other=true", "--workers", "1", NULL);
			}
		assert_true(tl_wait(c, 30000, "SELECT next_run_at > now() FROM lote.schedules WHERE name = 'tick'"));
		/* one command per tick from t0 up to (not including) the next run */
		long long ticks = tl_int(c, "SELECT extract(epoch FROM s.next_run_at - t0.t)::bigint / 60"
		                            " FROM lote.schedules s, t0 WHERE s.name = 'tick'");
		assert_true(ticks >= 31);
		assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands WHERE type = 'Tick'"), ticks);
		assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands WHERE type = 'Tick' AND data->>'n' = '1'"), ticks);
	}
	/* the built-in archive routine ran too, once per claim, and released */
	assert_true(tl_wait(c, 20000, "SELECT runs >= 1 AND locked_until IS NULL AND last_status = 'ok'"
	                              " FROM lote.schedules WHERE name = 'lote.archive'"));
	for (int i = 0; i < 3; i++) {
		assert_int_equal(tl_stop(d[i], SIGTERM, 15000), 0);
		free(logs[i]);
	}
	PQfinish(c);
	free(db);
}

static void missed_ticks_by_policy(void **state)
{
	char *db = tl_fresh_db("schedule_missed", true);
	PGconn *c = tl_connect(db);
	lote_error err = { 0 };
	(void)state;

	tl_exec(c, "UPDATE lote.schedules SET enabled = false WHERE name LIKE 'lote.%%'");
	tl_exec(c, "SELECT lote.schedule('s_skip', '*/5 * * * *', 'Skip', '{}', '{\"missed\": \"skip\", \"timezone\": \"UTC\"}')");
	tl_exec(c, "SELECT lote.schedule('s_once', '*/5 * * * *', 'Once', '{}', '{\"missed\": \"once\", \"timezone\": \"UTC\"}')");
	tl_exec(c, "SELECT lote.schedule('s_all', '*/5 * * * *', 'All', '{}', '{\"missed\": \"catch_up\", \"timezone\": \"UTC\", \"queue\": \"cron\", \"institution_id\": \"aaaaaaaa-0000-0000-0000-000000000001\"}')");
	/* added from SQL: no next run until a tick computes it */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.schedules WHERE next_run_at IS NULL AND name LIKE 's_%%'"), 3);
	assert_int_equal(lote__schedule_tick(c, &err), 3);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.schedules WHERE name LIKE 's_%%'"
	                           " AND next_run_at > now() AND extract(minute FROM next_run_at)::int %% 5 = 0"), 3);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands"), 0);

	/* downtime: the last run was due 1 h ago (aligned to the 5 minutes) */
	tl_exec(c, "UPDATE lote.schedules SET next_run_at = to_timestamp(floor(extract(epoch FROM now()) / 300) * 300)"
	           " - interval '1 hour' WHERE name LIKE 's_%%'");
	tl_exec(c, "CREATE TABLE t0 AS SELECT next_run_at AS t FROM lote.schedules WHERE name = 's_all'");
	assert_int_equal(lote__schedule_tick(c, &err), 3);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands WHERE type = 'Skip'"), 0);
	assert_string_equal(tl_value(c, "SELECT last_status FROM lote.schedules WHERE name = 's_skip'"), "skipped");
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands WHERE type = 'Once'"), 1);
	long long ticks = tl_int(c, "SELECT extract(epoch FROM s.next_run_at - t0.t)::bigint / 300"
	                            " FROM lote.schedules s, t0 WHERE s.name = 's_all'");
	assert_true(ticks >= 13);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands WHERE type = 'All' AND queue = 'cron'"
	                           " AND institution_id = 'aaaaaaaa-0000-0000-0000-000000000001'"), ticks);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.schedules WHERE name LIKE 's_%%' AND next_run_at > now()"), 3);
	/* nothing is due now: a second tick does nothing */
	assert_int_equal(lote__schedule_tick(c, &err), 0);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands"), ticks + 1);

	/* a changed cron means a new next run; a cron broken behind the
	 * API's back disables its schedule with the reason */
	tl_exec(c, "UPDATE lote.schedules SET cron = '0 0 1 1 *' WHERE name = 's_once'");
	assert_null(tl_value(c, "SELECT next_run_at FROM lote.schedules WHERE name = 's_once'"));
	tl_exec(c, "ALTER TABLE lote.schedules DISABLE TRIGGER USER");
	tl_exec(c, "UPDATE lote.schedules SET cron = '0 0 30 2 *', next_run_at = now() - interval '1 minute'"
	           " WHERE name = 's_skip'");
	tl_exec(c, "ALTER TABLE lote.schedules ENABLE TRIGGER USER");
	assert_true(lote__schedule_tick(c, &err) >= 1);
	assert_true(tl_int(c, "SELECT count(*) FROM lote.schedules WHERE name = 's_once'"
	                      " AND next_run_at > now() + interval '1 day'") == 1);
	assert_non_null(strstr(tl_value(c, "SELECT enabled || ': ' || last_error FROM lote.schedules WHERE name = 's_skip'"),
	                       "false: the cron expression never matches"));
	PQfinish(c);
	free(db);
}

static void schedules_api_and_cli(void **state)
{
	char *db = tl_fresh_db("schedule_api", true);
	PGconn *c = tl_connect(db);
	char *out = NULL, *e;
	(void)state;

	static const struct { const char *call, *want; } bad[] = {
		{ "SELECT lote.schedule('a', '* * *', 'T')", "has 3 fields, expected 5" },
		{ "SELECT lote.schedule('a', '99 * * * *', 'T')", "minute 99 out of range 0-59" },
		{ "SELECT lote.schedule('a', '@often', 'T')", "unknown cron macro" },
		{ "SELECT lote.schedule('a', '* * * * *', 'bad type')", "invalid type" },
		{ "SELECT lote.schedule('lote.mine', '* * * * *', 'T')", "reserved" },
		{ "SELECT lote.schedule('a b', '* * * * *', 'T')", "invalid schedule name" },
		{ "SELECT lote.schedule('a', '* * * * *', 'T', '[]')", "must be a JSON object" },
		{ "SELECT lote.schedule('a', '* * * * *', 'T', '{}', '{\"every\": 1}')", "unknown option \"every\"" },
		{ "SELECT lote.schedule('a', '* * * * *', 'T', '{}', '{\"missed\": \"never\"}')", "missed must be" },
		{ "SELECT lote.schedule('a', '* * * * *', 'T', '{}', '{\"timezone\": \"Mars/Base\"}')", "unknown time zone" },
		{ "SELECT lote.schedule('a', '* * * * *', 'T', '{}', '{\"priority\": 99999}')", "priority must be" },
		{ "SELECT lote.unschedule('lote.archive')", "built-in routine" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e = tl_try(c, "%s", bad[i].call);
		if (!e || !strstr(e, bad[i].want))
			fail_msg("%s: got %s, want %s", bad[i].call, e ? e : "success", bad[i].want);
		free(e);
	}
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.schedules"), 2);

	assert_int_equal(tl_run_lote(db, &out, "schedules", "add", "report", "0 6 * * mon", "Report",
	                             "{\"to\": \"ops\"}", "--timezone", "Europe/Lisbon", "--missed", "skip", NULL), 0);
	assert_non_null(strstr(out, "report: next run at"));
	/* the time as ls prints it (ISO 8601, as every list) */
	char next[64] = "";
	sscanf(out, "report: next run at %63s", next);
	free(out);
	assert_string_equal(tl_value(c, "SELECT concat_ws('|', cron, timezone, command_type, data->>'to', missed,"
	                                " to_char(next_run_at AT TIME ZONE timezone, 'Dy HH24:MI'))"
	                                " FROM lote.schedules WHERE name = 'report'"),
	                    "0 6 * * mon|Europe/Lisbon|Report|ops|skip|Mon 06:00");
	/* lote.retention has the database's TimeZone of migrate time: the
	 * same zone as the archive's UTC under another name is shown as UTC */
	tl_exec(c, "UPDATE lote.schedules SET timezone = 'Etc/UTC' WHERE name = 'lote.retention'");
	assert_int_equal(tl_run_lote(db, &out, "schedules", "ls", NULL), 0);
	assert_non_null(strstr(out, "report"));
	assert_non_null(strstr(out, "lote.archive"));
	assert_non_null(strstr(out, "lote.retention"));
	if (!strchr(next, 'T') || !strstr(out, next))
		fail_msg("add said next run at \"%s\", ls:\n%s", next, out);
	if (strstr(out, "Etc/UTC") || !strstr(out, "Europe/Lisbon"))
		fail_msg("schedules ls time zones:\n%s", out);
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "schedules", "ls", "--json", NULL), 0);
	assert_non_null(strstr(out, "\"command_type\": \"Report\""));
	/* --json keeps the stored name */
	assert_non_null(strstr(out, "\"timezone\": \"Etc/UTC\""));
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "schedules", "add", "x", "0 25 * * *", "T", NULL), 2);
	assert_non_null(strstr(out, "hour 25 out of range 0-23"));
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "schedules", "add", "x", "* * * * *", "T", "{", NULL), 2);
	free(out);
	/* parses but never fires: refused, nothing stored (was stored, and
	 * disabled by the daemon later) */
	assert_int_equal(tl_run_lote(db, &out, "schedules", "add", "never", "* * 31 2 *", "T", NULL), 2);
	if (!strstr(out, "never matches"))
		fail_msg("schedules add '* * 31 2 *':\n%s", out);
	free(out);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.schedules WHERE name = 'never'"), 0);
	/* once in four years is not never */
	assert_int_equal(tl_run_lote(db, &out, "schedules", "add", "leap", "0 0 29 2 *", "T", NULL), 0);
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "schedules", "rm", "leap", NULL), 0);
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "schedules", "add", "x", "* * * * *", "T",
	                             "--priority", "99999999999999999999", NULL), 2);
	assert_non_null(strstr(out, "out of range"));
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "schedules", "rm", "report", NULL), 0);
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "schedules", "rm", "report", NULL), 4);
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "schedules", "frob", NULL), 2);
	free(out);
	PQfinish(c);
	free(db);
}

static void schedules_from_c(void **state)
{
	char *db = tl_fresh_db("sched_c", true);
	PGconn *c = tl_connect(db);
	lote_error err = { 0 };
	json_t *data = json_pack("{ss}", "report", "daily");
	json_t *opts = json_pack("{ss ss si}", "timezone", "UTC", "missed", "skip", "priority", 3);
	(void)state;
	assert_int_equal(lote_schedule_add(c, "nightly-report", "30 2 * * *", "SendReport", data, opts, &err), 0);
	assert_string_equal(tl_value(c, "SELECT concat_ws('|', cron, command_type, data->>'report', timezone, missed)"
	                                " FROM lote.schedules WHERE name = 'nightly-report'"),
	                    "30 2 * * *|SendReport|daily|UTC|skip");
	/* replacing keeps one row */
	assert_int_equal(lote_schedule_add(c, "nightly-report", "@hourly", "SendReport", NULL, NULL, &err), 0);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.schedules WHERE name = 'nightly-report'"), 1);
	assert_string_equal(tl_value(c, "SELECT cron FROM lote.schedules WHERE name = 'nightly-report'"), "@hourly");
	/* a bad cron expression is a clear error and writes nothing */
	assert_int_equal(lote_schedule_add(c, "bad", "61 * * * *", "SendReport", NULL, NULL, &err), LOTE_EDB);
	assert_non_null(strstr(err.message, "61"));
	assert_string_equal(err.sqlstate, "22023");
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.schedules WHERE name = 'bad'"), 0);
	assert_int_equal(lote_schedule_remove(c, "nightly-report", &err), 1);
	assert_int_equal(lote_schedule_remove(c, "nightly-report", &err), 0);
	json_decref(data);
	json_decref(opts);
	PQfinish(c);
	free(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(missed_ticks_by_policy),
		cmocka_unit_test(schedules_api_and_cli),
		cmocka_unit_test(schedules_from_c),
		cmocka_unit_test(once_per_tick_with_three_daemons),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
