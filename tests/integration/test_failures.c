/* What happens when things go wrong: retry policies (computed and
 * observed), permanent failures and handler-chosen delays, the attempts
 * history, leases kept alive by the heartbeat and rescued when they
 * expire, exec programs saying how to retry, and a worker whose database
 * connection is cut. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

static char *db;

static int h_fail(lote_ctx *ctx, void *udata)
{
	(void)udata;
	return lote_ctx_fail(ctx, "nope %d", lote_ctx_attempt(ctx));
}

static int h_permanent(lote_ctx *ctx, void *udata)
{
	(void)udata;
	return lote_ctx_fail_permanent(ctx, "bad input");
}

static int h_retry_in(lote_ctx *ctx, void *udata)
{
	(void)udata;
	if (lote_ctx_attempt(ctx) == 1)
		return lote_ctx_retry_in(ctx, 700, "rate limited");
	return tl_record_run(ctx);
}

/* Runs for 3 s (longer than the test's 1.5 s lease), then records. */
static int h_long(lote_ctx *ctx, void *udata)
{
	(void)udata;
	sleep(3);
	return tl_record_run(ctx);
}

static int h_record(lote_ctx *ctx, void *udata)
{
	(void)udata;
	return tl_record_run(ctx);
}

/* Its worker's connection is cut (pg_terminate_backend) on first run. */
static int h_cut(lote_ctx *ctx, void *udata)
{
	PGconn *c = lote_ctx_conn(ctx);
	(void)udata;
	if (lote_ctx_attempt(ctx) == 1 && c)
		PQclear(PQexec(c, "SELECT pg_terminate_backend(pg_backend_pid())"));
	return tl_record_run(ctx);
}

/* An event handler that fails until the switch table says otherwise. */
static int h_event(lote_ctx *ctx, void *udata)
{
	PGconn *c = lote_ctx_conn(ctx);
	PGresult *res;
	int on;
	(void)udata;
	if (!c)
		return LOTE_EDB;
	res = PQexec(c, "SELECT 1 FROM switches WHERE on_");
	on = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0;
	PQclear(res);
	if (on)
		return lote_ctx_fail(ctx, "switched off");
	return tl_record_run(ctx);
}

static int h_slow_record(lote_ctx *ctx, void *udata)
{
	(void)udata;
	usleep(1000);
	return tl_record_run(ctx);
}

static void register_all(lote_engine *e)
{
	lote_error err = { 0 };
	lote_handler_opts linear = { .max_attempts = 4,
	                             .retry = { .strategy = LOTE_RETRY_LINEAR, .base_ms = 200 } };
	tl_on_command(e, "Fail", h_fail, NULL, 0);
	if (lote_engine_on_command(e, "FailLinear", h_fail, NULL, &linear, &err) < 0)
		_exit(1);
	tl_on_command(e, "Permanent", h_permanent, NULL, 0);
	tl_on_command(e, "RetryIn", h_retry_in, NULL, 0);
	tl_on_command(e, "Long", h_long, NULL, 0);
	tl_on_command(e, "Record", h_record, NULL, 0);
	tl_on_command(e, "Cut", h_cut, NULL, 0);
	tl_on_command(e, "SlowRecord", h_slow_record, NULL, 0);
	lote_handler_opts two = { .max_attempts = 2,
	                          .retry = { .strategy = LOTE_RETRY_FIXED, .base_ms = 100 } };
	if (lote_engine_on_event(e, "Happened", h_event, NULL, &two, &err) < 0)
		_exit(1);
}

static pid_t engine(int64_t lease_ms)
{
	lote_engine_options o;
	lote_engine_options_init(&o);
	o.workers = 2;
	o.batch = 10;
	o.grace_ms = 10000;
	if (lease_ms)
		o.lease_ms = lease_ms;
	return tl_start_engine(db, &o, register_all);
}

static PGconn *fresh(const char *name)
{
	return tl_fresh_runs(name, &db);
}

static void backoff_strategies_computed(void **state)
{
	PGconn *c = fresh("fail_backoff");
	(void)state;
	/* ms of lote.backoff for attempt 1..4 of each policy, jitter 0 */
	assert_string_equal(tl_value(c, "SELECT string_agg((extract(epoch FROM lote.backoff('command', 'X', a,"
	                                " '{\"strategy\":\"exponential\",\"base_ms\":100,\"max_ms\":500}'))"
	                                " * 1000)::int::text, ',' ORDER BY a) FROM generate_series(1, 4) a"),
	                    "100,200,400,500");
	assert_string_equal(tl_value(c, "SELECT string_agg((extract(epoch FROM lote.backoff('command', 'X', a,"
	                                " '{\"strategy\":\"linear\",\"base_ms\":100}')) * 1000)::int::text, ','"
	                                " ORDER BY a) FROM generate_series(1, 4) a"),
	                    "100,200,300,400");
	assert_string_equal(tl_value(c, "SELECT string_agg((extract(epoch FROM lote.backoff('command', 'X', a,"
	                                " '{\"strategy\":\"fixed\",\"base_ms\":250}')) * 1000)::int::text, ','"
	                                " ORDER BY a) FROM generate_series(1, 3) a"),
	                    "250,250,250");
	/* the default: exponential from 1 s, capped at 1 h */
	assert_string_equal(tl_value(c, "SELECT string_agg(extract(epoch FROM lote.backoff('command', 'X', a, NULL))::text,"
	                                " ',' ORDER BY a) FROM unnest(ARRAY[1, 2, 3, 30]) a"),
	                    "1.000000,2.000000,4.000000,3600.000000");
	/* jitter takes up to its share off, never adds */
	assert_true(tl_int(c, "SELECT bool_and(w BETWEEN interval '500 ms' AND interval '1 s')::int FROM"
	                      " (SELECT lote.backoff('command', 'X', 1, '{\"base_ms\":1000,\"jitter\":0.5}') w"
	                      "  FROM generate_series(1, 200)) s"));
	assert_true(tl_int(c, "SELECT (count(DISTINCT w) > 100)::int FROM"
	                      " (SELECT lote.backoff('command', 'X', 1, '{\"base_ms\":1000,\"jitter\":0.5}') w"
	                      "  FROM generate_series(1, 200)) s"));
	/* a type's registered policy applies when the row has none */
	tl_exec(c, "INSERT INTO lote.policies (kind, type, max_attempts, retry)"
	           " VALUES ('command', 'Typed', 9, '{\"strategy\":\"fixed\",\"base_ms\":42}')");
	assert_int_equal(tl_int(c, "SELECT (extract(epoch FROM lote.backoff('command', 'Typed', 5, NULL)) * 1000)::int"), 42);
	/* batch members too, and their own retry option is kept */
	long long tb = tl_int(c, "SELECT lote.batch('B', '[{\"type\":\"Typed\"},"
	                         "{\"type\":\"Typed\",\"retry\":{\"strategy\":\"linear\"}}]')");
	assert_string_equal(tl_value(c, "SELECT string_agg(concat_ws(':', max_attempts, retry->>'strategy'), ','"
	                                " ORDER BY id) FROM lote.commands WHERE batch_id = %lld", tb),
	                    "9,9:linear");
	long long t1 = tl_int(c, "SELECT lote.enqueue('Typed')");
	long long t2 = tl_int(c, "SELECT lote.enqueue('Typed', '{}', NULL, '{\"max_attempts\":2}')");
	assert_int_equal(tl_int(c, "SELECT max_attempts FROM lote.commands WHERE id = %lld", t1), 9);
	assert_int_equal(tl_int(c, "SELECT max_attempts FROM lote.commands WHERE id = %lld", t2), 2);
	/* bad retry options are refused */
	static const struct { const char *opt, *want; } bad[] = {
		{ "{\"retry\":1}", "retry must be an object" },
		{ "{\"retry\":{\"strategy\":\"random\"}}", "retry.strategy must be" },
		{ "{\"retry\":{\"base_ms\":-1}}", "retry.base_ms must be" },
		{ "{\"retry\":{\"jitter\":1.5}}", "retry.jitter must be a number from 0 to 1" },
		{ "{\"retry\":{\"tries\":3}}", "retry: unknown key \"tries\"" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *e = tl_try(c, "SELECT lote.enqueue('T', '{}', NULL, '%s')", bad[i].opt);
		if (!e || !strstr(e, bad[i].want))
			fail_msg("%s: %s", bad[i].opt, e ? e : "accepted");
		free(e);
	}
	PQfinish(c);
}

static void retries_follow_the_policy_and_keep_history(void **state)
{
	PGconn *c = fresh("fail_history");
	(void)state;
	long long id = tl_int(c, "SELECT lote.enqueue('Fail', '{}', NULL,"
	                         " '{\"max_attempts\":3,\"retry\":{\"strategy\":\"fixed\",\"base_ms\":300}}')");
	/* the type's policy (linear 200 ms, 4 attempts) from the C API */
	long long lin = tl_int(c, "SELECT lote.enqueue('FailLinear')");
	pid_t e = engine(0);
	assert_int_equal(tl_int(c, "SELECT max_attempts FROM lote.commands WHERE id = %lld", lin), 3);
	assert_true(tl_wait(c, 15000, "SELECT status = 'error' FROM lote.commands WHERE id = %lld", id));
	assert_string_equal(tl_value(c, "SELECT concat_ws('|', attempt, error) FROM lote.commands WHERE id = %lld", id),
	                    "3|nope 3");
	/* one history row per failed attempt, with its worker and times */
	assert_string_equal(tl_value(c, "SELECT string_agg(concat_ws(':', attempt, outcome, error, retry_at IS NOT NULL,"
	                                " host IS NOT NULL AND pid > 0, finished_at >= started_at), ',' ORDER BY attempt)"
	                                " FROM lote.attempts WHERE kind = 'command' AND row_id = %lld", id),
	                    "1:failed:nope 1:t:t:t,2:failed:nope 2:t:t:t,3:failed:nope 3:f:t:t");
	/* observed: each retry started no earlier than 300 ms after the failure */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.attempts a JOIN lote.attempts b"
	                           " ON b.row_id = a.row_id AND b.kind = a.kind AND b.attempt = a.attempt + 1"
	                           " WHERE a.row_id = %lld AND (b.started_at < a.retry_at"
	                           "  OR a.retry_at - a.finished_at < interval '290 ms')", id), 0);
	assert_true(tl_wait(c, 15000, "SELECT status = 'error' FROM lote.commands WHERE id = %lld", lin));
	/* the row's max_attempts was fixed at enqueue (3, before the daemon
	 * registered its policy); the linear waits grow 200, 400 ms */
	assert_string_equal(tl_value(c, "SELECT string_agg(round(extract(epoch FROM retry_at - finished_at) * 10)::text, ','"
	                                " ORDER BY attempt) FROM lote.attempts WHERE row_id = %lld AND retry_at IS NOT NULL", lin),
	                    "2,4");
	/* now the policy is known: new commands of the type get 4 attempts */
	long long again = tl_int(c, "SELECT lote.enqueue('FailLinear')");
	assert_int_equal(tl_int(c, "SELECT max_attempts FROM lote.commands WHERE id = %lld", again), 4);
	assert_int_equal(tl_stop(e, SIGTERM, 15000), 0);
	PQfinish(c);
}

static void permanent_failure_and_chosen_delay(void **state)
{
	PGconn *c = fresh("fail_permanent");
	(void)state;
	long long p = tl_int(c, "SELECT lote.enqueue('Permanent', '{}', NULL, '{\"max_attempts\":5}')");
	long long r = tl_int(c, "SELECT lote.enqueue('RetryIn', '{}', NULL, '{\"retry\":{\"base_ms\":60000}}')");
	pid_t e = engine(0);
	assert_true(tl_wait(c, 10000, "SELECT status = 'error' FROM lote.commands WHERE id = %lld", p));
	assert_string_equal(tl_value(c, "SELECT concat_ws('|', attempt, error) FROM lote.commands WHERE id = %lld", p),
	                    "1|bad input");
	/* the handler's 700 ms wins over the row's 60 s back-off */
	assert_true(tl_wait(c, 10000, "SELECT status = 'success' FROM lote.commands WHERE id = %lld", r));
	assert_true(tl_int(c, "SELECT (c.started_at - a.finished_at BETWEEN interval '690 ms' AND interval '5 s')::int"
	                      " FROM lote.commands c JOIN lote.attempts a ON a.row_id = c.id WHERE c.id = %lld", r));
	assert_int_equal(tl_stop(e, SIGTERM, 15000), 0);
	PQfinish(c);
}

static void heartbeat_keeps_a_long_handler_leased(void **state)
{
	PGconn *c = fresh("fail_heartbeat");
	(void)state;
	long long id = tl_int(c, "SELECT lote.enqueue('Long')");
	pid_t e = engine(1500);
	/* while it runs, the worker row says what it runs */
	assert_true(tl_wait(c, 5000, "SELECT count(*) = 1 FROM lote.workers WHERE current_command_id = %lld", id));
	assert_true(tl_wait(c, 10000, "SELECT status = 'success' FROM lote.commands WHERE id = %lld", id));
	/* 3 s on a 1.5 s lease: renewed, never rescued, ran once */
	assert_int_equal(tl_int(c, "SELECT attempt FROM lote.commands WHERE id = %lld", id), 1);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.attempts"), 0);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM runs"), 1);
	assert_int_equal(tl_stop(e, SIGTERM, 15000), 0);
	PQfinish(c);
}

static void expired_lease_of_a_lost_host_is_rescued(void **state)
{
	PGconn *c = fresh("fail_lease");
	(void)state;
	/* a worker of another host claimed two rows and vanished */
	tl_exec(c, "INSERT INTO lote.workers (host, pid, heartbeat_at) VALUES ('gone-host', 4242, now() - interval '1 hour')");
	long long a = tl_int(c, "SELECT lote.enqueue('Record')");
	long long b = tl_int(c, "SELECT lote.enqueue('Record', '{}', NULL, '{\"max_attempts\":1}')");
	tl_exec(c, "UPDATE lote.commands SET status = 'processing', attempt = 1, started_at = now() - interval '1 min',"
	           " lease_until = now() - interval '1 s',"
	           " worker_id = (SELECT id FROM lote.workers WHERE host = 'gone-host')");
	pid_t e = engine(0);
	assert_true(tl_wait(c, 15000, "SELECT status = 'success' FROM lote.commands WHERE id = %lld", a));
	assert_true(tl_wait(c, 15000, "SELECT status = 'error' FROM lote.commands WHERE id = %lld", b));
	assert_int_equal(tl_int(c, "SELECT attempt FROM lote.commands WHERE id = %lld", a), 2);
	assert_string_equal(tl_value(c, "SELECT string_agg(concat_ws(':', row_id = %lld, outcome, host, error), ','"
	                                " ORDER BY row_id) FROM lote.attempts", a),
	                    "t:lease_expired:gone-host:lease expired,f:lease_expired:gone-host:lease expired");
	assert_int_equal(tl_int(c, "SELECT count(*) FROM runs"), 1);
	assert_int_equal(tl_stop(e, SIGTERM, 15000), 0);
	PQfinish(c);
}

static void stale_worker_never_overwrites_a_newer_attempt(void **state)
{
	PGconn *c = fresh("fail_fence");
	(void)state;
	long long id = tl_int(c, "SELECT lote.enqueue('Long')");
	pid_t e = engine(0);
	/* while attempt 1 sleeps in its handler, the row is taken from it (as
	 * a rescue would) and another worker starts attempt 2 */
	assert_true(tl_wait(c, 5000, "SELECT status = 'processing' FROM lote.commands WHERE id = %lld", id));
	usleep(300 * 1000);
	tl_exec(c, "UPDATE lote.commands SET status = 'pending', worker_id = NULL, lease_until = NULL"
	           " WHERE id = %lld", id);
	assert_true(tl_wait(c, 5000, "SELECT attempt = 2 AND status = 'processing' FROM lote.commands WHERE id = %lld", id));
	assert_true(tl_wait(c, 15000, "SELECT status = 'success' FROM lote.commands WHERE id = %lld", id));
	usleep(500 * 1000);
	/* attempt 1 finished first, but its writes and outcome did not land */
	assert_string_equal(tl_value(c, "SELECT string_agg(attempt::text, ',') FROM runs WHERE id = %lld", id), "2");
	assert_int_equal(tl_int(c, "SELECT attempt FROM lote.commands WHERE id = %lld", id), 2);
	assert_int_equal(tl_stop(e, SIGTERM, 15000), 0);
	PQfinish(c);
}

static void exec_program_says_how_to_retry(void **state)
{
	PGconn *c = fresh("fail_exec");
	char *perm = tl_script("perm.sh", "cat >/dev/null\necho '{\"permanent\": true}'\necho 'bad address' >&2\nexit 1");
	char *later = tl_script("later.sh", "cat >/dev/null\n[ \"$LOTE_ATTEMPT\" = 2 ] && exit 0\n"
	                                    "echo '{\"retry_in_ms\": 600}'\nexit 75");
	char *a = NULL, *b = NULL, *log = tl_tmp_path("fail-exec.log");
	(void)state;
	if (asprintf(&a, "Perm=%s", perm) < 0 || asprintf(&b, "Later=%s", later) < 0)
		fail_msg("oom");
	long long p = tl_int(c, "SELECT lote.enqueue('Perm', '{}', NULL, '{\"max_attempts\":4}')");
	long long l = tl_int(c, "SELECT lote.enqueue('Later', '{}', NULL, '{\"retry\":{\"base_ms\":60000}}')");
	pid_t e = tl_spawn_lote(db, log, "run", "--exec", a, "--exec", b, NULL);
	assert_true(tl_wait(c, 15000, "SELECT status = 'error' FROM lote.commands WHERE id = %lld", p));
	assert_string_equal(tl_value(c, "SELECT concat_ws('|', attempt, error) FROM lote.commands WHERE id = %lld", p),
	                    "1|exit status 1: bad address");
	assert_true(tl_wait(c, 15000, "SELECT status = 'success' FROM lote.commands WHERE id = %lld", l));
	/* the program's 600 ms, not the row's 60 s back-off (the upper bound
	 * leaves room for a loaded machine between finish and completion) */
	assert_true(tl_int(c, "SELECT (retry_at - finished_at BETWEEN interval '590 ms' AND interval '5 s')::int"
	                      " FROM lote.attempts WHERE row_id = %lld", l));
	assert_int_equal(tl_stop(e, SIGTERM, 15000), 0);
	unlink(perm);
	unlink(later);
	unlink(log);
	free(perm);
	free(later);
	free(a);
	free(b);
	free(log);
	PQfinish(c);
}

static void cut_connection_loses_and_repeats_nothing(void **state)
{
	PGconn *c = fresh("fail_cut");
	(void)state;
	tl_exec(c, "SELECT lote.enqueue('Record') FROM generate_series(1, 50)");
	tl_exec(c, "SELECT lote.enqueue('Cut') FROM generate_series(1, 3)");
	tl_exec(c, "SELECT lote.enqueue('Record') FROM generate_series(1, 50)");
	pid_t e = engine(0);
	assert_true(tl_wait(c, 30000, "SELECT count(*) = 103 FROM lote.commands WHERE status = 'success'"));
	/* every command's writes exactly once; the cut rows were blamed once
	 * and ran on their second attempt */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM runs"), 103);
	assert_int_equal(tl_int(c, "SELECT count(DISTINCT id) FROM runs"), 103);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands WHERE type = 'Cut' AND attempt = 2"), 3);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands WHERE type = 'Record' AND attempt = 1"), 100);
	assert_string_equal(tl_value(c, "SELECT string_agg(DISTINCT error, ',') FROM lote.attempts"),
	                    "database connection lost");
	/* and the terminated backends' listeners came back: new work still
	 * starts at once (60 s poll would be too slow for this wait) */
	long long id = tl_int(c, "SELECT lote.enqueue('Record')");
	assert_true(tl_wait(c, 5000, "SELECT status = 'success' FROM lote.commands WHERE id = %lld", id));
	assert_int_equal(tl_stop(e, SIGTERM, 15000), 0);
	PQfinish(c);
}

static void events_retry_by_type_policy_and_reprocess(void **state)
{
	PGconn *c = fresh("fail_events");
	(void)state;
	tl_exec(c, "CREATE TABLE switches (on_ boolean)");
	tl_exec(c, "INSERT INTO switches VALUES (true)");
	pid_t e = engine(0);
	/* the daemon registered the event type's policy: 2 attempts, fixed 100 ms */
	assert_true(tl_wait(c, 5000, "SELECT count(*) = 1 FROM lote.policies WHERE kind = 'event'"));
	long long ev = tl_int(c, "SELECT lote.emit('00000000-0000-0000-0000-000000000000', 'Thing', '1', 'Happened')");
	assert_int_equal(tl_int(c, "SELECT max_attempts FROM lote.events WHERE id = %lld", ev), 2);
	assert_true(tl_wait(c, 10000, "SELECT status = 'error' FROM lote.events WHERE id = %lld", ev));
	assert_string_equal(tl_value(c, "SELECT string_agg(concat_ws(':', attempt, outcome,"
	                                " round(extract(epoch FROM retry_at - finished_at) * 10)), ',' ORDER BY attempt)"
	                                " FROM lote.attempts WHERE kind = 'event' AND row_id = %lld", ev),
	                    "1:failed:1,2:failed");
	/* reprocess: a linked copy, processed once the handler works */
	tl_exec(c, "UPDATE switches SET on_ = false");
	long long copy = tl_int(c, "SELECT lote.reprocess_event(%lld)", ev);
	assert_int_equal(tl_int(c, "SELECT original_id FROM lote.events WHERE id = %lld", copy), ev);
	assert_int_equal(tl_int(c, "SELECT replaced_by FROM lote.events WHERE id = %lld", ev), copy);
	assert_true(tl_wait(c, 10000, "SELECT status = 'success' FROM lote.events WHERE id = %lld", copy));
	assert_int_equal(tl_int(c, "SELECT count(*) FROM runs WHERE kind = 'event' AND id = %lld", copy), 1);
	char *err = tl_try(c, "SELECT lote.reprocess_event(999999)");
	assert_non_null(strstr(err, "no event 999999"));
	free(err);
	assert_int_equal(tl_stop(e, SIGTERM, 15000), 0);
	PQfinish(c);
}

/* Runs a shell command with the cluster's user when root. */
static void as_postgres(const char *inner)
{
	char cmd[2048];
	snprintf(cmd, sizeof(cmd), "%s%s", getuid() == 0 ? "runuser -u postgres -- " : "", inner);
	if (system(cmd) != 0)
		fail_msg("failed: %s", cmd);
}

static void postgres_restart_mid_run(void **state)
{
	/* a cluster of its own: restarting the suite's would hit other tests */
	const char *root = getenv("LOTE_SOURCE_ROOT");
	char dir[] = "/tmp/lote-pgrestart-XXXXXX", cmd[1024], info[512] = "";
	char bindir[512] = "";
	FILE *p;
	PGconn *c;
	(void)state;
	assert_non_null(root);
	assert_non_null(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd), "%s/tests/pg-start.sh %s/pg", root, dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	if (!fgets(info, sizeof(info), p))
		info[0] = '\0';
	pclose(p);
	info[strcspn(info, "\n")] = '\0';
	assert_true(info[0] != '\0');
	p = popen("ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1", "r");
	if (!fgets(bindir, sizeof(bindir), p))
		bindir[0] = '\0';
	pclose(p);
	bindir[strcspn(bindir, "\n")] = '\0';

	free(db);
	db = strdup(info);
	c = tl_connect(db);
	lote_error err = { 0 };
	assert_int_equal(lote_migrate(c, NULL, &err), 0);
	tl_runs_table(c);
	tl_exec(c, "SELECT lote.enqueue('SlowRecord', '{}', NULL, '{\"max_attempts\":10}')"
	           " FROM generate_series(1, 5000)");
	pid_t e = engine(0);
	assert_true(tl_wait(c, 30000, "SELECT count(*) > 500 FROM runs"));
	PQfinish(c);
	snprintf(cmd, sizeof(cmd), "%s/pg_ctl -D %s/pg/data -m fast -w -t 60 restart >/dev/null", bindir, dir);
	as_postgres(cmd);
	for (int i = 0; i < 100; i++) {
		c = PQconnectdb(db);
		if (PQstatus(c) == CONNECTION_OK)
			break;
		PQfinish(c);
		c = NULL;
		usleep(100 * 1000);
	}
	assert_non_null(c);
	PQsetNoticeProcessor(c, NULL, NULL);
	assert_true(tl_wait(c, 120000, "SELECT count(*) = 5000 FROM lote.commands WHERE status = 'success'"));
	assert_int_equal(tl_int(c, "SELECT count(*) FROM runs"), 5000);
	assert_int_equal(tl_int(c, "SELECT count(DISTINCT id) FROM runs"), 5000);
	assert_int_equal(tl_stop(e, SIGTERM, 15000), 0);
	PQfinish(c);
	snprintf(cmd, sizeof(cmd), "%s/tests/pg-stop.sh %s/pg; rm -rf %s", root, dir, dir);
	if (system(cmd) != 0)
		print_message("# cleanup of %s failed\n", dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(backoff_strategies_computed),
		cmocka_unit_test(retries_follow_the_policy_and_keep_history),
		cmocka_unit_test(permanent_failure_and_chosen_delay),
		cmocka_unit_test(heartbeat_keeps_a_long_handler_leased),
		cmocka_unit_test(expired_lease_of_a_lost_host_is_rescued),
		cmocka_unit_test(stale_worker_never_overwrites_a_newer_attempt),
		cmocka_unit_test(exec_program_says_how_to_retry),
		cmocka_unit_test(cut_connection_loses_and_repeats_nothing),
		cmocka_unit_test(events_retry_by_type_policy_and_reprocess),
		cmocka_unit_test(postgres_restart_mid_run),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
