/* Batches and chains against real PostgreSQL: the follow-up is released
 * exactly once — all succeed, one fails, repair by reprocess, empty,
 * cancel, nesting, two daemons × 8 workers on 10 000 members, and kill -9
 * of workers mid-batch. Every handler records its runs in `runs`. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

static char *db;

/* A member: fails while the switch named in data.switch is on. */
static int h_member(lote_ctx *ctx, void *udata)
{
	json_t *sw = json_object_get(lote_ctx_data(ctx), "switch");
	(void)udata;
	if (json_is_string(sw)) {
		const char *p[1] = { json_string_value(sw) };
		PGconn *c = lote_ctx_conn(ctx);
		PGresult *res = PQexecParams(c, "SELECT 1 FROM switches WHERE name = $1 AND on_",
		                             1, NULL, p, NULL, NULL, 0);
		int on = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0;
		PQclear(res);
		if (on)
			return lote_ctx_fail(ctx, "switch %s is on", p[0]);
	}
	if (json_is_true(json_object_get(lote_ctx_data(ctx), "slow")))
		usleep(200 * 1000);
	return tl_record_run(ctx);
}

/* Creates a batch of data.n members (with data.member as their data) and a
 * follow-up data.next (an object or absent). */
static int h_make_batch(lote_ctx *ctx, void *udata)
{
	json_t *d = lote_ctx_data(ctx), *members = json_array();
	json_t *next = json_object_get(d, "next");
	json_t *member = json_object_get(d, "member");
	lote_error err = { 0 };
	int n = (int)json_integer_value(json_object_get(d, "n")), rc;
	(void)udata;
	for (int i = 0; i < n; i++)
		json_array_append_new(members, json_pack("{ss sO}", "type", "Member", "data",
		                                         member ? member : json_object()));
	rc = tl_record_run(ctx);
	if (rc == 0 && lote_ctx_batch(ctx, "Nested", members, next, NULL, &err) < 0)
		rc = lote_ctx_fail(ctx, "batch: %s", err.message);
	json_decref(members);
	return rc;
}

static void register_all(lote_engine *e)
{
	tl_on_command(e, "Member", h_member, NULL, 0);
	tl_on_command(e, "FollowUp", h_member, NULL, 0);
	tl_on_command(e, "MakeBatch", h_make_batch, NULL, 0);
}

static pid_t engine(int workers, int batch)
{
	lote_engine_options o;
	lote_engine_options_init(&o);
	o.workers = workers;
	o.batch = batch;
	o.grace_ms = 10000;
	return tl_start_engine(db, &o, register_all);
}

static PGconn *fresh(const char *name)
{
	PGconn *c = tl_fresh_runs(name, &db);
	tl_exec(c, "CREATE TABLE switches (name text PRIMARY KEY, on_ boolean)");
	return c;
}

/* The members array of n Member commands with the given data. */
static char *members(int n, const char *data)
{
	char *s = NULL;
	if (asprintf(&s, "(SELECT jsonb_agg(jsonb_build_object('type', 'Member', 'data', '%s'::jsonb))"
	                 " FROM generate_series(1, %d))", data, n) < 0)
		fail_msg("oom");
	return s;
}

static long long follow_up_runs(PGconn *c, long long batch)
{
	return tl_int(c, "SELECT count(*) FROM runs r JOIN lote.batches b ON b.next_command_id = r.id"
	                 " WHERE b.id = %lld", batch);
}

static void all_members_succeed_then_follow_up_runs_once(void **state)
{
	PGconn *c = fresh("batch_ok");
	char *m = members(50, "{}");
	(void)state;
	long long b = tl_int(c, "SELECT lote.batch('Emails', %s, '{\"type\":\"FollowUp\"}',"
	                        " 'aaaaaaaa-0000-0000-0000-000000000001')", m);
	assert_string_equal(tl_value(c, "SELECT concat_ws('|', b.status, b.size, f.status, f.institution_id)"
	                                " FROM lote.batches b JOIN lote.commands f ON f.id = b.next_command_id"
	                                " WHERE b.id = %lld", b),
	                    "pending|50|awaiting|aaaaaaaa-0000-0000-0000-000000000001");
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands WHERE batch_id = %lld"
	                           " AND institution_id = 'aaaaaaaa-0000-0000-0000-000000000001'", b), 50);
	pid_t e = engine(4, 10);
	assert_true(tl_wait(c, 20000, "SELECT status = 'success' FROM lote.batches WHERE id = %lld", b));
	assert_true(tl_wait(c, 10000, "SELECT f.status = 'success' FROM lote.batches b"
	                              " JOIN lote.commands f ON f.id = b.next_command_id WHERE b.id = %lld", b));
	assert_int_equal(follow_up_runs(c, b), 1);
	/* released only after the last member finished */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands m, lote.batches b, runs f"
	                           " WHERE m.batch_id = b.id AND f.id = b.next_command_id AND b.id = %lld"
	                           " AND m.finished_at > f.at", b), 0);
	assert_true(tl_int(c, "SELECT (started_at IS NOT NULL AND finished_at >= started_at)::int"
	                      " FROM lote.batches WHERE id = %lld", b));
	assert_int_equal(tl_stop(e, SIGTERM, 15000), 0);
	free(m);
	PQfinish(c);
}

static void failed_member_then_repair_by_reprocess(void **state)
{
	PGconn *c = fresh("batch_repair");
	char *m = members(9, "{}");
	(void)state;
	tl_exec(c, "INSERT INTO switches VALUES ('smtp', true)");
	long long b = tl_int(c, "SELECT lote.batch('Emails', %s || '[{\"type\":\"Member\","
	                        "\"data\":{\"switch\":\"smtp\"},\"max_attempts\":1}]'::jsonb,"
	                        " '{\"type\":\"FollowUp\"}')", m);
	pid_t e = engine(2, 10);
	assert_true(tl_wait(c, 20000, "SELECT status = 'error' FROM lote.batches WHERE id = %lld", b));
	long long bad = tl_int(c, "SELECT id FROM lote.commands WHERE batch_id = %lld AND status = 'error'", b);
	const char *why = tl_value(c, "SELECT error FROM lote.batches WHERE id = %lld", b);
	if (!strstr(why, "switch smtp is on"))
		fail_msg("batch error: %s", why);
	/* the follow-up waits and never runs while the batch is in error */
	usleep(1500 * 1000);
	assert_string_equal(tl_value(c, "SELECT f.status FROM lote.batches b JOIN lote.commands f"
	                                " ON f.id = b.next_command_id WHERE b.id = %lld", b), "awaiting");
	assert_int_equal(follow_up_runs(c, b), 0);
	/* only finished commands can be reprocessed */
	char *e2 = tl_try(c, "SELECT lote.reprocess(next_command_id) FROM lote.batches WHERE id = %lld", b);
	assert_non_null(e2);
	assert_non_null(strstr(e2, "only finished commands"));
	free(e2);

	/* repair: the copy takes the failed member's place */
	tl_exec(c, "UPDATE switches SET on_ = false");
	long long copy = tl_int(c, "SELECT lote.reprocess(%lld)", bad);
	assert_string_equal(tl_value(c, "SELECT concat_ws('|', original_id, batch_id, data->>'switch', max_attempts)"
	                                " FROM lote.commands WHERE id = %lld", copy),
	                    tl_value(c, "SELECT concat_ws('|', %lld, %lld, 'smtp', 1)", bad, b));
	assert_int_equal(tl_int(c, "SELECT replaced_by FROM lote.commands WHERE id = %lld", bad), copy);
	/* reprocessing again is refused while the copy is live */
	e2 = tl_try(c, "SELECT lote.reprocess(%lld)", bad);
	if (e2 && !strstr(e2, "already has a live copy"))
		fail_msg("second reprocess: %s", e2);
	int members = 11; /* 10, the failed one, its copy */
	if (!e2) {
		/* the copy may have finished already; then a second copy is fine,
		 * and a twelfth member */
		assert_true(tl_int(c, "SELECT (status = 'success')::int FROM lote.commands WHERE id = %lld", copy));
		members = 12;
	}
	free(e2);
	assert_true(tl_wait(c, 20000, "SELECT status = 'success' FROM lote.batches WHERE id = %lld", b));
	assert_true(tl_wait(c, 10000, "SELECT count(*) = 1 FROM runs r JOIN lote.batches b"
	                              " ON b.next_command_id = r.id WHERE b.id = %lld", b));
	usleep(500 * 1000);
	assert_int_equal(follow_up_runs(c, b), 1);
	assert_int_equal(tl_stop(e, SIGTERM, 15000), 0);
	/* every member (10, the failed one, its copies) is found by the
	 * batch's id range, done ones included, from SQL and from the CLI */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands WHERE batch_id = %lld", b), members);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands WHERE batch_id = %lld AND id BETWEEN"
	                           " lote.batch_first_member(%lld) AND lote.batch_last_member(%lld)", b, b, b),
	                 members);
	char bid[32], *out = NULL;
	snprintf(bid, sizeof bid, "%lld", b);
	assert_int_equal(tl_run_lote(db, &out, "commands", "ls", "--batch", bid, "--json", NULL), 0);
	int listed = 0;
	for (const char *p = out; (p = strstr(p, "\"batch_id\":")); p++)
		listed++;
	assert_int_equal(listed, members);
	free(out);
	free(m);
	PQfinish(c);
}

static void empty_batch_completes_at_once(void **state)
{
	PGconn *c = fresh("batch_empty");
	(void)state;
	long long b = tl_int(c, "SELECT lote.batch('Nothing', '[]', '{\"type\":\"FollowUp\"}')");
	assert_string_equal(tl_value(c, "SELECT concat_ws('|', b.status, b.size, f.status) FROM lote.batches b"
	                                " JOIN lote.commands f ON f.id = b.next_command_id WHERE b.id = %lld", b),
	                    "success|0|pending");
	long long alone = tl_int(c, "SELECT lote.batch('Nothing', '[]')");
	assert_string_equal(tl_value(c, "SELECT status FROM lote.batches WHERE id = %lld", alone), "success");
	pid_t e = engine(1, 10);
	assert_true(tl_wait(c, 10000, "SELECT count(*) = 1 FROM runs"));
	usleep(300 * 1000);
	assert_int_equal(follow_up_runs(c, b), 1);
	assert_int_equal(tl_stop(e, SIGTERM, 15000), 0);
	PQfinish(c);
}

static void cancel_batch_cancels_members_and_follow_up(void **state)
{
	PGconn *c = fresh("batch_cancel");
	(void)state;
	long long b = tl_int(c, "SELECT lote.batch('Later', (SELECT jsonb_agg(jsonb_build_object("
	                        "'type', 'Member', 'delay_ms', 3600000)) FROM generate_series(1, 5)),"
	                        " '{\"type\":\"FollowUp\"}')");
	assert_int_equal(tl_int(c, "SELECT lote.cancel_batch(%lld)", b), 6);
	assert_string_equal(tl_value(c, "SELECT status FROM lote.batches WHERE id = %lld", b), "cancelled");
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands WHERE status <> 'cancelled'"), 0);
	/* cancelling again is a no-op; an unknown batch is an error */
	assert_int_equal(tl_int(c, "SELECT lote.cancel_batch(%lld)", b), 0);
	char *e = tl_try(c, "SELECT lote.cancel_batch(999999)");
	assert_non_null(strstr(e, "no batch 999999"));
	free(e);
	/* a single pending command */
	long long id = tl_int(c, "SELECT lote.enqueue('Member', '{}', NULL, '{\"delay_ms\":3600000}')");
	assert_string_equal(tl_value(c, "SELECT lote.cancel(%lld)::text", id), "true");
	assert_string_equal(tl_value(c, "SELECT lote.cancel(%lld)::text", id), "false");
	PQfinish(c);
}

/* The batch counts its done members (lote.batch_progress): a success
 * member reprocessed while its batch is open is done no longer — its copy
 * stands in — so the batch waits for the copy even when every other
 * member is done; and members finished by one statement, across two
 * batches, count once each. Driven from SQL, as a worker's statements. */
static void reprocessed_success_member_is_counted_again(void **state)
{
	PGconn *c = fresh("batch_count");
	char *two = members(2, "{}"), *three = members(3, "{}");
	(void)state;
	long long b = tl_int(c, "SELECT lote.batch('Two', %s, '{\"type\":\"FollowUp\"}')", two);
	long long b2 = tl_int(c, "SELECT lote.batch('Three', %s)", three);
	free(two);
	free(three);
	long long m1 = tl_int(c, "SELECT min(id) FROM lote.commands WHERE batch_id = %lld", b);
	long long m2 = tl_int(c, "SELECT max(id) FROM lote.commands WHERE batch_id = %lld", b);
#define DONE(id) "UPDATE lote.commands SET status = 'success', finished_at = now() WHERE id IN (" id ")"
#define STATUS(x) tl_value(c, "SELECT status FROM lote.batches WHERE id = %lld", x)
	tl_exec(c, DONE("%lld"), m1);
	assert_int_equal(tl_int(c, "SELECT lote.batch_check(ARRAY[%lld])", b), 0);
	long long copy = tl_int(c, "SELECT lote.reprocess(%lld)", m1);
	assert_int_equal(tl_int(c, "SELECT lote.batch_done(%lld)", b), 0);
	/* m2 done: two of two originals have succeeded, but the copy runs */
	tl_exec(c, DONE("%lld"), m2);
	assert_int_equal(tl_int(c, "SELECT lote.batch_check(ARRAY[%lld])", b), 0);
	assert_string_equal(STATUS(b), "pending");
	assert_string_equal(tl_value(c, "SELECT f.status FROM lote.batches b JOIN lote.commands f"
	                                " ON f.id = b.next_command_id WHERE b.id = %lld", b), "awaiting");
	tl_exec(c, DONE("%lld"), copy);
	assert_int_equal(tl_int(c, "SELECT lote.batch_check(ARRAY[%lld])", b), 1);
	assert_string_equal(STATUS(b), "success");
	assert_string_equal(tl_value(c, "SELECT f.status FROM lote.batches b JOIN lote.commands f"
	                                " ON f.id = b.next_command_id WHERE b.id = %lld", b), "pending");
	/* one statement finishing members of two batches (and a plain
	 * command): each batch gets its own count */
	long long plain = tl_int(c, "SELECT lote.enqueue('Plain')");
	tl_exec(c, DONE("SELECT id FROM lote.commands WHERE batch_id = %lld AND id < (SELECT max(id)"
	               " FROM lote.commands WHERE batch_id = %lld) UNION ALL SELECT %lld"), b2, b2, plain);
	assert_int_equal(tl_int(c, "SELECT lote.batch_done(%lld)", b2), 2);
	/* the sweep finds nothing to do yet; after the last member it
	 * completes the batch a worker left unchecked */
	assert_int_equal(tl_int(c, "SELECT lote.batch_sweep()"), 0);
	tl_exec(c, DONE("SELECT max(id) FROM lote.commands WHERE batch_id = %lld"), b2);
	assert_string_equal(STATUS(b2), "pending");
	assert_int_equal(tl_int(c, "SELECT lote.batch_sweep()"), 1);
	assert_string_equal(STATUS(b2), "success");
	/* counts are dropped with their batch */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.batch_progress"), 0);
#undef DONE
#undef STATUS
	PQfinish(c);
}

static void batch_validation_errors(void **state)
{
	PGconn *c = fresh("batch_invalid");
	static const struct { const char *sql, *want; } bad[] = {
		{ "SELECT lote.batch('B', '{}')", "commands must be a JSON array" },
		{ "SELECT lote.batch('B', '[1]')", "command 1: must be an object" },
		{ "SELECT lote.batch('B', '[{\"data\":{}}]')", "command 1: \"type\" must be a string" },
		{ "SELECT lote.batch('B', '[{\"type\":\"A\"},{\"type\":\"A\",\"retries\":2}]')", "command 2: unknown option \"retries\"" },
		{ "SELECT lote.batch('B', '[{\"type\":\"A\",\"data\":[]}]')", "command 1: data must be a JSON object" },
		{ "SELECT lote.batch('B', '[]', '[]')", "next must be an object" },
		{ "SELECT lote.batch('B', '[]', '{\"type\":\"F\",\"max_attempts\":0}')", "max_attempts must be an integer" },
		{ "SELECT lote.batch('bad type', '[]')", "invalid type" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		tl_rejected(c, bad[i].sql, bad[i].want, NULL);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.batches"), 0);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands"), 0);
	PQfinish(c);
}

static void nested_batches_and_lineage(void **state)
{
	PGconn *c = fresh("batch_nested");
	(void)state;
	/* a command makes a batch of 3 whose follow-up makes a batch of 2 whose
	 * follow-up is FollowUp; a member of the first makes a child batch */
	long long root = tl_int(c, "SELECT lote.enqueue('MakeBatch', '{\"n\":3,"
		"\"next\":{\"type\":\"MakeBatch\",\"data\":{\"n\":2,\"next\":{\"type\":\"FollowUp\"}}}}')");
	long long side = tl_int(c, "SELECT lote.batch('Outer', '[{\"type\":\"MakeBatch\",\"data\":{\"n\":2}},"
	                           "{\"type\":\"Member\"}]', '{\"type\":\"FollowUp\"}')");
	pid_t e = engine(2, 5);
	assert_true(tl_wait(c, 30000, "SELECT count(*) = 4 AND bool_and(status = 'success') FROM lote.batches"));
	assert_true(tl_wait(c, 10000, "SELECT count(*) = 0 FROM lote.commands WHERE status <> 'success'"));
	/* root → batch 1 (origin root) → follow-up MakeBatch → batch 2 → FollowUp */
	long long b1 = tl_int(c, "SELECT id FROM lote.batches WHERE parent_id = %lld", root);
	long long f1 = tl_int(c, "SELECT next_command_id FROM lote.batches WHERE id = %lld", b1);
	long long b2 = tl_int(c, "SELECT id FROM lote.batches WHERE parent_id = %lld", f1);
	long long f2 = tl_int(c, "SELECT next_command_id FROM lote.batches WHERE id = %lld", b2);
	assert_string_equal(tl_value(c, "SELECT type FROM lote.commands WHERE id = %lld", f2), "FollowUp");
	/* the inner follow-up ran after every member of its batch */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands m, runs f WHERE m.batch_id = %lld"
	                           " AND f.id = %lld AND m.finished_at > f.at", b2, f2), 0);
	/* lineage from SQL */
	assert_int_equal(tl_int(c, "SELECT (lote.lineage(%lld)->>'follow_up_of')::bigint", f1), b1);
	assert_int_equal(tl_int(c, "SELECT (lote.lineage(%lld)->>'parent_id')::bigint", f1), root);
	assert_int_equal(tl_int(c, "SELECT jsonb_array_length(lote.lineage(%lld)->'batches')", root), 1);
	assert_int_equal(tl_int(c, "SELECT (lote.lineage(%lld)->'batches'->>0)::bigint", f1), b2);
	/* a member made a child batch of its own */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.batches c JOIN lote.commands m ON m.id = c.parent_id"
	                           " WHERE m.batch_id = %lld", side), 1);
	/* every follow-up ran exactly once */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.batches b WHERE next_command_id IS NOT NULL"
	                           " AND (SELECT count(*) FROM runs r WHERE r.id = b.next_command_id) <> 1"), 0);
	assert_int_equal(tl_stop(e, SIGTERM, 15000), 0);
	PQfinish(c);
}

static void two_daemons_release_the_follow_up_once(void **state)
{
	PGconn *c = fresh("batch_concurrent");
	char *m = members(10000, "{}");
	(void)state;
	long long b = tl_int(c, "SELECT lote.batch('Big', %s, '{\"type\":\"FollowUp\"}')", m);
	pid_t e1 = engine(8, 20), e2 = engine(8, 20);
	assert_true(tl_wait(c, 180000, "SELECT status = 'success' FROM lote.batches WHERE id = %lld", b));
	assert_true(tl_wait(c, 10000, "SELECT count(*) = 1 FROM runs r JOIN lote.batches b"
	                              " ON b.next_command_id = r.id WHERE b.id = %lld", b));
	usleep(1000 * 1000);
	assert_int_equal(follow_up_runs(c, b), 1);
	assert_int_equal(tl_int(c, "SELECT count(DISTINCT id) FROM runs"), 10001);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM runs"), 10001);
	assert_true(tl_int(c, "SELECT count(DISTINCT pid) FROM runs") >= 8);
	assert_int_equal(tl_stop(e1, SIGTERM, 15000), 0);
	assert_int_equal(tl_stop(e2, SIGTERM, 15000), 0);
	free(m);
	PQfinish(c);
}

static void kill_9_of_workers_mid_batch(void **state)
{
	PGconn *c = fresh("batch_kill9");
	char *m = members(60, "{\"slow\":true}");
	(void)state;
	long long b = tl_int(c, "SELECT lote.batch('Slow', %s, '{\"type\":\"FollowUp\"}')", m);
	pid_t e = engine(3, 5);
	for (int round = 0; round < 4; round++) {
		assert_true(tl_wait(c, 10000, "SELECT count(*) > 0 FROM lote.commands WHERE status = 'processing'"));
		long long victim = tl_int(c, "SELECT pid FROM lote.workers ORDER BY random() LIMIT 1");
		kill((pid_t)victim, SIGKILL);
		usleep(300 * 1000);
	}
	assert_true(tl_wait(c, 60000, "SELECT status = 'success' FROM lote.batches WHERE id = %lld", b));
	assert_true(tl_wait(c, 10000, "SELECT count(*) = 1 FROM runs r JOIN lote.batches b"
	                              " ON b.next_command_id = r.id WHERE b.id = %lld", b));
	usleep(500 * 1000);
	assert_int_equal(follow_up_runs(c, b), 1);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM runs"), 61);
	assert_int_equal(tl_int(c, "SELECT count(DISTINCT id) FROM runs"), 61);
	assert_int_equal(tl_stop(e, SIGTERM, 15000), 0);
	free(m);
	PQfinish(c);
}

static void exec_handler_creates_a_batch(void **state)
{
	PGconn *c = fresh("batch_exec");
	char *script = tl_script("batch.sh",
		"cat >/dev/null\n"
		"echo '{\"batch\":{\"type\":\"Emails\",\"commands\":[{\"type\":\"Send\",\"data\":{\"to\":1}},"
		"{\"type\":\"Send\",\"data\":{\"to\":2},\"max_attempts\":1}],\"next\":{\"type\":\"Notify\"}},"
		"\"enqueue\":[{\"type\":\"Audit\"}]}'");
	char *spec = NULL, *send = NULL, *notify = NULL, *log = tl_tmp_path("batch-exec.log");
	(void)state;
	if (asprintf(&spec, "Start=%s", script) < 0 || asprintf(&send, "Send=true") < 0 ||
	    asprintf(&notify, "Notify=true") < 0)
		fail_msg("oom");
	long long id = tl_int(c, "SELECT lote.enqueue('Start', '{}', 'aaaaaaaa-0000-0000-0000-000000000009')");
	pid_t e = tl_spawn_lote(db, log, "run", "--exec", spec, "--exec", send, "--exec", notify,
	                        "--exec", "Audit=true", NULL);
	assert_true(tl_wait(c, 20000, "SELECT count(*) = 1 FROM lote.batches WHERE status = 'success'"));
	assert_true(tl_wait(c, 20000, "SELECT count(*) = 5 AND bool_and(status = 'success') FROM lote.commands"));
	assert_string_equal(tl_value(c, "SELECT concat_ws('|', type, size, parent_id, institution_id)"
	                                " FROM lote.batches"),
	                    tl_value(c, "SELECT concat_ws('|', 'Emails', 2, %lld, 'aaaaaaaa-0000-0000-0000-000000000009')", id));
	assert_int_equal(tl_int(c, "SELECT max_attempts FROM lote.commands WHERE data->>'to' = '2'"), 1);
	assert_int_equal(tl_stop(e, SIGTERM, 15000), 0);
	/* bad batch output fails the command and keeps nothing of it */
	char *bad = tl_script("badbatch.sh", "cat >/dev/null\n"
		"echo '{\"batch\":{\"type\":\"B\",\"commands\":[{\"type\":\"Send\",\"oops\":1}]},"
		"\"enqueue\":[{\"type\":\"Audit\"}]}'");
	free(spec);
	if (asprintf(&spec, "Start=%s", bad) < 0)
		fail_msg("oom");
	long long id2 = tl_int(c, "SELECT lote.enqueue('Start', '{}', NULL, '{\"max_attempts\":1}')");
	e = tl_spawn_lote(db, log, "run", "--exec", spec, "--exec", send, "--exec", "Audit=true", NULL);
	assert_true(tl_wait(c, 20000, "SELECT status = 'error' FROM lote.commands WHERE id = %lld", id2));
	const char *why = tl_value(c, "SELECT error FROM lote.commands WHERE id = %lld", id2);
	if (!strstr(why, "unknown option \"oops\""))
		fail_msg("error: %s", why);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.batches"), 1);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands WHERE parent_id = %lld", id2), 0);
	assert_int_equal(tl_stop(e, SIGTERM, 15000), 0);
	unlink(script);
	unlink(bad);
	unlink(log);
	free(script);
	free(bad);
	free(spec);
	free(send);
	free(notify);
	free(log);
	PQfinish(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(all_members_succeed_then_follow_up_runs_once),
		cmocka_unit_test(failed_member_then_repair_by_reprocess),
		cmocka_unit_test(empty_batch_completes_at_once),
		cmocka_unit_test(cancel_batch_cancels_members_and_follow_up),
		cmocka_unit_test(reprocessed_success_member_is_counted_again),
		cmocka_unit_test(batch_validation_errors),
		cmocka_unit_test(nested_batches_and_lineage),
		cmocka_unit_test(two_daemons_release_the_follow_up_once),
		cmocka_unit_test(kill_9_of_workers_mid_batch),
		cmocka_unit_test(exec_handler_creates_a_batch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
