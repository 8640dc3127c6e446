/* The chaos run (suite "chaos", not part of `make test`: run it with
 * `make chaos`). 20 000 commands whose handler writes one effect row in the
 * command's transaction, and parents whose handler (a C function, or an
 * exec program under `lote run`) enqueues one child,
 * while random workers and whole daemons are killed with -9 every few
 * hundred milliseconds and PostgreSQL is restarted. At the end: every
 * command final, nothing stuck, exactly one effect per successful command,
 * exactly one child per successful parent, and every batch's follow-up run
 * exactly once. LOTE_CHAOS_SECONDS sets the length (default 60). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

#define COMMANDS 20000
#define PARENTS 2000
#define DAEMONS 2

static char *db;

static int h_effect(lote_ctx *ctx, void *udata)
{
	char id[24];
	const char *p[1] = { id };
	(void)udata;
	snprintf(id, sizeof(id), "%lld", (long long)lote_ctx_id(ctx));
	usleep(200); /* keep work in flight for the killer */
	return tl_ctx_sql(ctx, "INSERT INTO effects (command_id) VALUES ($1)", 1, p);
}

static int h_parent(lote_ctx *ctx, void *udata)
{
	lote_error err = { 0 };
	json_t *data = json_pack("{sI}", "parent", (json_int_t)lote_ctx_id(ctx));
	int rc = lote_ctx_enqueue(ctx, "Child", data, NULL, NULL, &err);
	(void)udata;
	json_decref(data);
	return rc < 0 ? lote_ctx_fail(ctx, "%s", err.message) : 0;
}

static void register_all(lote_engine *e)
{
	tl_on_command(e, "Effect", h_effect, NULL, 0);
	tl_on_command(e, "Parent", h_parent, NULL, 0);
	tl_on_command(e, "Child", h_effect, NULL, 0);
	tl_on_command(e, "FollowUp", h_effect, NULL, 0);
}

static pid_t daemon_start(void)
{
	lote_engine_options o;
	lote_engine_options_init(&o);
	o.workers = 3;
	o.batch = 50;
	o.lease_ms = 3000;
	o.grace_ms = 5000;
	return tl_start_engine(db, &o, register_all);
}

/* Restarts the test cluster (tests/run.sh exports where it lives). */
static void restart_postgres(void)
{
	const char *data = getenv("LOTE_TEST_PGDATA");
	char cmd[1024];
	if (!data)
		return;
	snprintf(cmd, sizeof(cmd), "%s pg_ctl -D '%s' -m fast -w -t 60 restart >/dev/null 2>&1",
	         getuid() == 0 ? "runuser -u postgres --" : "", data);
	/* pg_ctl may not be on PATH: the harness puts its bindir there */
	if (system(cmd) != 0)
		print_message("# postgres restart failed\n");
}

static PGconn *connect_retry(void)
{
	for (int i = 0; i < 300; i++) {
		PGconn *c = PQconnectdb(db);
		if (PQstatus(c) == CONNECTION_OK)
			return c;
		PQfinish(c);
		usleep(100 * 1000);
	}
	fail_msg("database unreachable after the chaos");
	return NULL;
}

static void chaos(void **state)
{
	PGconn *c;
	pid_t daemons[DAEMONS];
	int seconds = getenv("LOTE_CHAOS_SECONDS") ? atoi(getenv("LOTE_CHAOS_SECONDS")) : 60;
	int kills = 0, daemon_kills = 0, restarts = 0;
	time_t end;
	(void)state;

	db = tl_fresh_db("chaos", true);
	c = tl_connect(db);
	tl_exec(c, "CREATE TABLE effects (command_id bigint NOT NULL, at timestamptz DEFAULT clock_timestamp())");
	tl_exec(c, "SELECT lote.enqueue('Effect', jsonb_build_object('i', i), NULL, '{\"max_attempts\":25}')"
	           " FROM generate_series(1, %d) i", COMMANDS);
	tl_exec(c, "SELECT lote.enqueue('Parent', '{}', NULL, '{\"max_attempts\":25}') FROM generate_series(1, %d)",
	        PARENTS);
	for (int b = 0; b < 20; b++)
		tl_exec(c, "SELECT lote.batch('Chaos', (SELECT jsonb_agg(jsonb_build_object('type', 'Effect',"
		           " 'max_attempts', 25)) FROM generate_series(1, 50)), '{\"type\":\"FollowUp\",\"max_attempts\":25}')");
	PQfinish(c);

	/* exec handlers too: a `lote run` whose program enqueues a child */
	char *script = tl_script("chaos-parent.sh", "cat >/dev/null\n"
	                         "echo '{\"enqueue\":[{\"type\":\"Child\",\"options\":{\"max_attempts\":25}}]}'");
	char *spec = NULL, *log = tl_tmp_path("chaos-exec.log");
	if (asprintf(&spec, "ExecParent=%s", script) < 0)
		fail_msg("oom");
	c = tl_connect(db);
	tl_exec(c, "SELECT lote.enqueue('ExecParent', '{}', NULL, '{\"max_attempts\":25}') FROM generate_series(1, %d)",
	        PARENTS);
	PQfinish(c);
	pid_t exec_daemon = tl_spawn_lote(db, log, "run", "--exec", spec, "--lease", "3s", NULL);
	for (int i = 0; i < DAEMONS; i++)
		daemons[i] = daemon_start();
	srand((unsigned)time(NULL));
	end = time(NULL) + seconds;
	while (time(NULL) < end) {
		usleep((200 + rand() % 300) * 1000);
		c = PQconnectdb(db);
		if (PQstatus(c) != CONNECTION_OK) {
			PQfinish(c);
			continue;
		}
		int r = rand() % 100;
		if (r < 70) {
			/* a random worker */
			PGresult *res = PQexec(c, "SELECT pid FROM lote.workers ORDER BY random() LIMIT 1");
			if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
			    kill(atoi(PQgetvalue(res, 0, 0)), SIGKILL) == 0)
				kills++;
			PQclear(res);
		} else if (r < 80) {
			/* the exec daemon, supervisor first */
			kill(exec_daemon, SIGKILL);
			waitpid(exec_daemon, NULL, 0);
			exec_daemon = tl_spawn_lote(db, log, "run", "--exec", spec, "--lease", "3s", NULL);
			daemon_kills++;
		} else if (r < 97) {
			/* a whole daemon, supervisor and workers at once */
			int d = rand() % DAEMONS;
			PGresult *res = PQexec(c, "SELECT pid FROM lote.workers");
			kill(daemons[d], SIGKILL);
			for (int i = 0; PQresultStatus(res) == PGRES_TUPLES_OK && i < PQntuples(res); i++)
				if (rand() % DAEMONS == 0)
					kill(atoi(PQgetvalue(res, i, 0)), SIGKILL);
			PQclear(res);
			waitpid(daemons[d], NULL, 0);
			daemons[d] = daemon_start();
			daemon_kills++;
		} else {
			PQfinish(c);
			c = NULL;
			restart_postgres();
			restarts++;
		}
		PQfinish(c);
	}
	print_message("# chaos: %d workers and %d daemons killed, %d PostgreSQL restarts in %d s\n",
	              kills, daemon_kills, restarts, seconds);

	/* Calm: the daemons finish everything. */
	c = connect_retry();
	if (!tl_wait(c, 300000, "SELECT count(*) = 0 FROM lote.commands WHERE status NOT IN ('success', 'error', 'cancelled')"))
		fail_msg("stuck: %s", tl_value(c, "SELECT string_agg(status || ' ' || n, ', ') FROM"
		                                  " (SELECT status, count(*) n FROM lote.commands GROUP BY 1) s"));
	for (int i = 0; i < DAEMONS; i++)
		assert_int_equal(tl_stop(daemons[i], SIGTERM, 30000), 0);
	assert_int_equal(tl_stop(exec_daemon, SIGTERM, 30000), 0);

	/* every command final, none stuck */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands WHERE status NOT IN ('success', 'error')"), 0);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands WHERE status = 'error'"), 0);
	/* exactly one effect per successful command, none for others */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM (SELECT command_id FROM effects GROUP BY 1"
	                           " HAVING count(*) > 1) d"), 0);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands c WHERE c.type IN ('Effect', 'Child', 'FollowUp')"
	                           " AND c.status = 'success' AND NOT EXISTS (SELECT 1 FROM effects e WHERE e.command_id = c.id)"), 0);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM effects e JOIN lote.commands c ON c.id = e.command_id"
	                           " WHERE c.status <> 'success'"), 0);
	/* exactly one child per successful parent, C or exec */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands p WHERE p.type IN ('Parent', 'ExecParent') AND"
	                           " (SELECT count(*) FROM lote.commands k WHERE k.parent_id = p.id) <> 1"), 0);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands WHERE type = 'ExecParent' AND status = 'success'"),
	                 PARENTS);
	/* every batch complete, its follow-up run once */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.batches WHERE status <> 'success'"), 0);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.batches b WHERE"
	                           " (SELECT count(*) FROM effects e WHERE e.command_id = b.next_command_id) <> 1"), 0);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands WHERE type = 'Effect'"), COMMANDS + 20 * 50);
	PQfinish(c);
	unlink(script);
	free(script);
	free(spec);
	free(log);
}

int main(void)
{
	const struct CMUnitTest tests[] = { cmocka_unit_test(chaos) };
	return cmocka_run_group_tests(tests, NULL, NULL);
}
