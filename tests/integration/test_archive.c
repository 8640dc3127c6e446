/* Archive and retention: rows move exactly once (kill -9 mid-run, then
 * rerun), batches move whole and only when final, lineage resolves across
 * hot and archive, partitions are created ahead and dropped per status,
 * the attempts history moves and goes with its rows, archived commands
 * can be reprocessed. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "testlib.h"

#define NIL "'00000000-0000-0000-0000-000000000000'"

/* n finished commands straight into the hot table, finished `age` ago. */
static void finished_commands(PGconn *c, int n, const char *status, const char *age)
{
	tl_exec(c, "INSERT INTO lote.commands (institution_id, type, data, status, attempt,"
	           " started_at, finished_at, duration)"
	           " SELECT " NIL ", 'Done' || (i %% 7), jsonb_build_object('i', i), '%s', 1,"
	           " now() - interval '%s' - interval '1 second', now() - interval '%s', interval '1 second'"
	           " FROM generate_series(1, %d) i", status, age, age, n);
}

/* From `lote stats` text output, the archive rows of `kind` ("~N" when
 * estimated) and the rest of its line (the rows per status). */
static void stats_line(const char *out, const char *kind, char *rows, size_t len, char *by, size_t by_len)
{
	const char *l = out;
	size_t k = strlen(kind);
	while (l && !(strncmp(l, kind, k) == 0 && l[k] == ' '))
		l = (l = strchr(l, '\n')) ? l + 1 : NULL;
	assert_non_null(l);
	char name[16], unit[8];
	double size;
	long long hot;
	int end = 0;
	/* kind, hot rows, hot size (number and unit), archive rows */
	assert_int_equal(sscanf(l, "%15s %lld %lf %7s %31s%n", name, &hot, &size, unit, rows, &end), 5);
	assert_true(strlen(rows) < len);
	snprintf(by, by_len, "%.*s", (int)strcspn(l + end, "\n"), l + end);
}

static void exactly_once_with_kill9(void **state)
{
	char *db = tl_fresh_db("archive_kill9", true);
	PGconn *c = tl_connect(db);
	char *log = tl_tmp_path("archive_kill9.log");
	const int total = 200000;
	(void)state;

	finished_commands(c, total, "success", "1 hour");
	tl_exec(c, "SELECT lote.enqueue('Live') FROM generate_series(1, 100)");
	/* small chunks, so the kill lands mid-run with certainty */
	pid_t p = tl_spawn_lote(db, log, "archive", "--older-than", "0", "--chunk", "500", NULL);
	assert_true(tl_wait(c, 60000, "SELECT count(*) > 20000 FROM lote.commands_archive"));
	kill(p, SIGKILL);
	tl_stop(p, SIGKILL, 5000);
	long long moved = tl_int(c, "SELECT count(*) FROM lote.commands_archive");
	assert_true(moved > 0 && moved < total);
	/* nothing lost, nothing in both places, nothing twice */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands_all WHERE type <> 'Live'"), total);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands h JOIN lote.commands_archive a USING (id)"), 0);
	assert_int_equal(tl_int(c, "SELECT count(*) - count(DISTINCT id) FROM lote.commands_archive"), 0);

	char *out = NULL;
	assert_int_equal(tl_run_lote(db, &out, "archive", "--older-than", "0", "--json", NULL), 0);
	assert_non_null(strstr(out, "\"commands\":"));
	free(out);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands_archive"), total);
	assert_int_equal(tl_int(c, "SELECT count(DISTINCT id) FROM lote.commands_archive"), total);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands"), 100);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands WHERE status = 'pending'"), 100);
	/* too large to count in `lote stats`: a catalog estimate, marked so */
	assert_true(tl_int(c, "SELECT max(pg_relation_size(('lote.' || partition)::regclass)) / 8192"
	                      " FROM lote.archive_partitions WHERE archive = 'commands'") > 1024);
	tl_exec(c, "ANALYZE lote.commands_archive");
	assert_int_equal(tl_run_lote(db, &out, "stats", "--json", NULL), 0);
	json_t *j = json_loads(out, 0, NULL);
	json_t *ka = json_object_get(json_object_get(j, "commands"), "archive");
	assert_true(json_is_false(json_object_get(ka, "exact")));
	long long est = json_integer_value(json_object_get(ka, "rows_estimate"));
	assert_true(est > total * 9 / 10 && est < total * 11 / 10);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(j, "commands"), "hot"),
	                                                    "rows")), 100);
	json_decref(j);
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "stats", NULL), 0);
	char rows[32], by[256];
	stats_line(out, "commands", rows, sizeof(rows), by, sizeof(by));
	assert_true(rows[0] == '~' && strstr(by, " success ~"));
	free(out);
	/* data intact */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands_archive WHERE (data->>'i')::int"
	                           " BETWEEN 1 AND %d AND status = 'success' AND type LIKE 'Done%%'", total), total);
	/* a second run finds nothing; the age is respected */
	assert_int_equal(tl_run_lote(db, &out, "archive", "--older-than", "0", NULL), 0);
	assert_non_null(strstr(out, "archived 0 events, 0 commands, 0 batches"));
	free(out);
	finished_commands(c, 10, "error", "1 minute");
	assert_int_equal(tl_run_lote(db, &out, "archive", "--older-than", "5m", "--dry-run", NULL), 0);
	assert_non_null(strstr(out, "would archive 0 events, 0 commands"));
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "archive", "--older-than", "30s", "--dry-run", NULL), 0);
	assert_non_null(strstr(out, "would archive 0 events, 10 commands"));
	free(out);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands WHERE status = 'error'"), 10);
	assert_int_equal(tl_run_lote(db, &out, "archive", "--older-than", "soon", NULL), 2);
	free(out);
	PQfinish(c);
	free(log);
	free(db);
}

/* Marks members of batch b finished with status s. */
static void finish_members(PGconn *c, long long b, const char *where, const char *status)
{
	tl_exec(c, "UPDATE lote.commands SET status = '%s', attempt = 1, started_at = now(),"
	           " finished_at = now(), error = CASE WHEN '%s' = 'error' THEN 'boom' END"
	           " WHERE batch_id = %lld AND %s", status, status, b, where);
	tl_exec(c, "SELECT lote.batch_check(ARRAY[%lld::bigint])", b);
}

static void batches_and_lineage(void **state)
{
	char *db = tl_fresh_db("archive_batches", true);
	PGconn *c = tl_connect(db);
	char *out = NULL;
	(void)state;

	long long e = tl_int(c, "SELECT lote.emit(" NIL ", 'Activity', '42', 'Created')");
	tl_exec(c, "UPDATE lote.events SET status = 'success', finished_at = now() WHERE id = %lld", e);
	long long p = tl_int(c, "INSERT INTO lote.commands (institution_id, type, status, event_id, finished_at)"
	                        " VALUES (" NIL ", 'Fanout', 'success', %lld, now()) RETURNING id", e);
	/* two batches made by p's handler: b1 will succeed, b2 fails */
	tl_exec(c, "BEGIN; SELECT set_config('lote.command_id', '%lld', true)", p);
	long long b1 = tl_int(c, "SELECT lote.batch('Emails', '[{\"type\": \"Mail\"}, {\"type\": \"Mail\"}]',"
	                         " '{\"type\": \"Notify\"}')");
	long long b2 = tl_int(c, "SELECT lote.batch('Emails', '[{\"type\": \"Mail\"}, {\"type\": \"Mail\"}]',"
	                         " '{\"type\": \"Notify\"}')");
	tl_exec(c, "COMMIT");
	long long f1 = tl_int(c, "SELECT next_command_id FROM lote.batches WHERE id = %lld", b1);
	long long m1 = tl_int(c, "SELECT min(id) FROM lote.commands WHERE batch_id = %lld", b1);
	finish_members(c, b1, "true", "success");
	assert_string_equal(tl_value(c, "SELECT status FROM lote.batches WHERE id = %lld", b1), "success");
	tl_exec(c, "UPDATE lote.commands SET status = 'success', finished_at = now() WHERE id = %lld", f1);
	long long bad = tl_int(c, "SELECT min(id) FROM lote.commands WHERE batch_id = %lld", b2);
	char where[128];
	snprintf(where, sizeof(where), "id <> %lld", bad);
	finish_members(c, b2, where, "success");
	snprintf(where, sizeof(where), "id = %lld", bad);
	finish_members(c, b2, where, "error");
	assert_string_equal(tl_value(c, "SELECT status FROM lote.batches WHERE id = %lld", b2), "error");

	assert_int_equal(tl_run_lote(db, &out, "archive", "--older-than", "0", NULL), 0);
	free(out);
	/* b1 moved whole, with its follow-up; b2 (error, recent) stays hot whole */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.batches_archive WHERE id = %lld", b1), 1);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands_archive WHERE batch_id = %lld", b1), 2);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands_archive WHERE id IN (%lld, %lld)", f1, p), 2);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.events_archive WHERE id = %lld", e), 1);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.batches WHERE id = %lld", b2), 1);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands WHERE batch_id = %lld", b2), 2);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands_archive WHERE batch_id = %lld", b2), 0);

	/* lineage across hot and archive */
	assert_string_equal(tl_value(c, "SELECT concat_ws('|', l->>'archived', l->>'batch_id', l->>'parent_id')"
	                                " FROM lote.lineage(%lld) l", m1),
	                    tl_value(c, "SELECT 'true|%lld|%lld'", b1, p));
	assert_string_equal(tl_value(c, "SELECT lote.lineage(%lld)->>'follow_up_of'", f1),
	                    tl_value(c, "SELECT '%lld'", b1));
	assert_string_equal(tl_value(c, "SELECT lote.lineage(%lld)->>'batches'", p),
	                    tl_value(c, "SELECT '[%lld, %lld]'", b1, b2));
	assert_int_equal(tl_int(c, "SELECT jsonb_array_length(lote.lineage(%lld)->'children')", p), 6);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands_all WHERE event_id = %lld", e), 1);
	assert_string_equal(tl_value(c, "SELECT archived::text FROM lote.events_all WHERE id = %lld", e), "true");

	/* repair b2: its copy stands in, the batch succeeds, everything moves */
	long long copy = tl_int(c, "SELECT lote.reprocess(%lld)", bad);
	tl_exec(c, "UPDATE lote.commands SET status = 'success', finished_at = now() WHERE id = %lld", copy);
	tl_exec(c, "SELECT lote.batch_check(ARRAY[%lld::bigint])", b2);
	long long f2 = tl_int(c, "SELECT next_command_id FROM lote.batches WHERE id = %lld", b2);
	assert_string_equal(tl_value(c, "SELECT status FROM lote.commands WHERE id = %lld", f2), "pending");
	assert_int_equal(tl_run_lote(db, &out, "archive", "--older-than", "0", NULL), 0);
	free(out);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands_archive WHERE batch_id = %lld", b2), 3);
	/* the released follow-up is live work: it stays */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands WHERE id = %lld", f2), 1);
	assert_string_equal(tl_value(c, "SELECT lote.lineage(%lld)->>'replaced_by'", bad),
	                    tl_value(c, "SELECT '%lld'", copy));
	assert_string_equal(tl_value(c, "SELECT lote.lineage(%lld)->>'original_id'", copy),
	                    tl_value(c, "SELECT '%lld'", bad));

	/* a batch in error past error_batch_after moves, final; its follow-up
	 * is cancelled, never released; an open batch's members stay hot */
	long long b3 = tl_int(c, "SELECT lote.batch('Emails', '[{\"type\": \"Mail\"}]', '{\"type\": \"Notify\"}')");
	long long b4 = tl_int(c, "SELECT lote.batch('Emails', '[{\"type\": \"Mail\"}, {\"type\": \"Mail\"}]')");
	long long f3 = tl_int(c, "SELECT next_command_id FROM lote.batches WHERE id = %lld", b3);
	finish_members(c, b3, "true", "error");
	snprintf(where, sizeof(where), "id = (SELECT min(id) FROM lote.commands WHERE batch_id = %lld)", b4);
	finish_members(c, b4, where, "success");
	assert_string_equal(tl_value(c, "SELECT status FROM lote.batches WHERE id = %lld", b3), "error");
	assert_int_equal(tl_run_lote(db, &out, "archive", "--older-than", "0", NULL), 0);
	free(out);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.batches WHERE id IN (%lld, %lld)", b3, b4), 2);
	tl_exec(c, "UPDATE lote.batches SET created_at = now() - interval '8 days' WHERE id = %lld", b3);
	assert_int_equal(tl_run_lote(db, &out, "archive", "--older-than", "0", NULL), 0);
	free(out);
	assert_string_equal(tl_value(c, "SELECT status || '|' || archived FROM lote.batches_all WHERE id = %lld", b3),
	                    "error|true");
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands_archive WHERE batch_id = %lld", b3), 1);
	assert_non_null(strstr(tl_value(c, "SELECT status || ': ' || error FROM lote.commands_all WHERE id = %lld", f3),
	                       "cancelled: batch"));
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands WHERE batch_id = %lld", b4), 2);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.batches WHERE id = %lld", b4), 1);
	/* an archived batch in error is final: its members are not reprocessed */
	char *msg = tl_try(c, "SELECT lote.reprocess(%lld)",
	                   (long long)tl_int(c, "SELECT id FROM lote.commands_archive WHERE batch_id = %lld", b3));
	assert_non_null(msg);
	assert_non_null(strstr(msg, "archived in error: an archived batch is final"));
	free(msg);

	/* a batch in error past error_batch_after waits while a member still
	 * runs (looked for in its id range), then moves whole */
	long long b5 = tl_int(c, "SELECT lote.batch('Emails', '[{\"type\": \"Mail\"}, {\"type\": \"Mail\"},"
	                         " {\"type\": \"Mail\"}]')");
	long long m5 = tl_int(c, "SELECT max(id) FROM lote.commands WHERE batch_id = %lld", b5);
	snprintf(where, sizeof(where), "id = (SELECT min(id) FROM lote.commands WHERE batch_id = %lld)", b5);
	finish_members(c, b5, where, "error");
	tl_exec(c, "UPDATE lote.commands SET status = 'processing', attempt = 1, lease_until = now() + interval '1 h'"
	           " WHERE id = %lld", m5);
	tl_exec(c, "UPDATE lote.batches SET created_at = now() - interval '8 days' WHERE id = %lld", b5);
	assert_string_equal(tl_value(c, "SELECT status FROM lote.batches WHERE id = %lld", b5), "error");
	assert_int_equal(tl_run_lote(db, &out, "archive", "--older-than", "0", NULL), 0);
	free(out);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.batches WHERE id = %lld", b5), 1);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands WHERE batch_id = %lld", b5), 3);
	snprintf(where, sizeof(where), "status <> 'error'");
	finish_members(c, b5, where, "success");
	assert_int_equal(tl_run_lote(db, &out, "archive", "--older-than", "0", NULL), 0);
	free(out);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.batches WHERE id = %lld", b5), 0);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands_archive WHERE batch_id = %lld", b5), 3);
	PQfinish(c);
	free(db);
}

static void partitions_and_retention(void **state)
{
	char *db = tl_fresh_db("archive_retention", true);
	PGconn *c = tl_connect(db);
	char *out = NULL;
	(void)state;

	/* created ahead at migrate time (weeks, from Monday, UTC), for every
	 * archive and status: events 2, commands 3, batches 3, attempts 3 */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.archive_partitions"
	                           " WHERE (now() AT TIME ZONE 'UTC')::date + 7 >= day"
	                           " AND (now() AT TIME ZONE 'UTC')::date + 7 < until AND status IS NOT NULL"), 11);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.archive_partitions"
	                           " WHERE status IS NOT NULL AND until - day <> 7 OR extract(isodow FROM day) <> 1"), 0);
	assert_string_equal(tl_value(c, "SELECT array_to_string(reloptions, ',') FROM pg_class"
	                                " WHERE relname = 'commands_archive_w' || to_char(date_trunc('week',"
	                                " (now() AT TIME ZONE 'UTC')::date), 'YYYYMMDD') || '_success'"),
	                    "fillfactor=100,autovacuum_vacuum_insert_scale_factor=0.05");
	finished_commands(c, 5, "success", "40 days");
	finished_commands(c, 6, "error", "40 days");
	finished_commands(c, 7, "error", "100 days");
	finished_commands(c, 8, "success", "2 days");
	finished_commands(c, 9, "cancelled", "40 days");
	/* two failed attempts before each row's last one */
	tl_exec(c, "INSERT INTO lote.attempts (kind, row_id, institution_id, attempt, outcome, error)"
	           " SELECT 'command', id, institution_id, a, 'failed', 'try ' || a"
	           " FROM lote.commands, generate_series(1, 2) a");
	assert_int_equal(tl_run_lote(db, &out, "archive", "--older-than", "0", NULL), 0);
	free(out);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands_archive"), 35);
	/* the attempts history moved with its rows, into their week and status */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.attempts"), 0);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.attempts_archive a JOIN lote.commands_archive k"
	                           " ON k.id = a.row_id AND k.status = a.row_status"
	                           " AND k.finished_at = a.row_finished_at"), 70);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.attempts_all WHERE archived"), 70);
	/* old weeks got their partitions when rows needed them, no others */
	assert_int_equal(tl_int(c, "SELECT count(DISTINCT day) FROM lote.archive_partitions"
	                           " WHERE until < now() - interval '8 days'"), 2);

	assert_int_equal(tl_run_lote(db, &out, "retention", "--dry-run", "--json", NULL), 0);
	assert_non_null(strstr(out, "\"dry_run\":true"));
	free(out);
	/* success 30d, cancelled 30d, error 90d */
	assert_int_equal(tl_run_lote(db, &out, "retention", NULL), 0);
	free(out);
	assert_string_equal(tl_value(c, "SELECT string_agg(status || ':' || n, ',' ORDER BY status, n) FROM"
	                                " (SELECT status, count(*) n FROM lote.commands_archive GROUP BY status,"
	                                "  finished_at::date) s"), "error:6,success:8");
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.archive_partitions"
	                           " WHERE day < now() - interval '99 days'"), 0);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.archive_partitions"
	                           " WHERE day < now() - interval '39 days' AND status = 'error'"), 4);
	/* the attempts of dropped rows went with them */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.attempts_archive"), 28);
	/* keep errors a shorter time: they go too */
	assert_int_equal(tl_run_lote(db, &out, "retention", "set", "error", "30d", NULL), 0);
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "retention", "set", "error", "1h", NULL), 2);
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "retention", "run", NULL), 0);
	free(out);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands_archive"), 8);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.attempts_archive"), 16);
	assert_int_equal(tl_run_lote(db, &out, "stats", "--json", NULL), 0);
	assert_non_null(strstr(out, "\"rows_estimate\""));
	free(out);
	PQfinish(c);
	free(db);
}

/* An archived standalone command can be reprocessed: a new hot copy with
 * original_id pointing at it; lineage finds the copy from either side. */
static void reprocess_archived(void **state)
{
	char *db = tl_fresh_db("archive_reprocess", true);
	PGconn *c = tl_connect(db);
	char *out = NULL;
	(void)state;

	finished_commands(c, 3, "error", "1 hour");
	long long id = tl_int(c, "SELECT min(id) FROM lote.commands");
	assert_int_equal(tl_run_lote(db, &out, "archive", "--older-than", "0", NULL), 0);
	free(out);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands"), 0);

	long long copy = tl_int(c, "SELECT lote.reprocess(%lld)", id);
	assert_true(copy > id);
	assert_string_equal(tl_value(c, "SELECT concat_ws('|', status, original_id = %lld, type, data->>'i')"
	                                " FROM lote.commands WHERE id = %lld", id, copy),
	                    tl_value(c, "SELECT concat_ws('|', 'pending', true, type, data->>'i')"
	                                " FROM lote.commands_archive WHERE id = %lld", id));
	/* the archived row is untouched; lineage links both ways */
	assert_true(tl_int(c, "SELECT count(*) FROM lote.commands_archive WHERE id = %lld"
	                      " AND replaced_by IS NULL AND status = 'error'", id) == 1);
	assert_string_equal(tl_value(c, "SELECT concat_ws('|', l->>'replaced_by', l->>'archived')"
	                                " FROM lote.lineage(%lld) l", id),
	                    tl_value(c, "SELECT '%lld|true'", copy));
	assert_string_equal(tl_value(c, "SELECT lote.lineage(%lld)->>'original_id'", copy),
	                    tl_value(c, "SELECT '%lld'", id));
	/* one live copy at a time */
	char *e = tl_try(c, "SELECT lote.reprocess(%lld)", id);
	assert_non_null(e);
	assert_non_null(strstr(e, "already has a live copy"));
	free(e);
	/* once the copy is finished (and archived too), again */
	tl_exec(c, "UPDATE lote.commands SET status = 'error', finished_at = now() WHERE id = %lld", copy);
	assert_int_equal(tl_run_lote(db, &out, "archive", "--older-than", "0", NULL), 0);
	free(out);
	long long copy2 = tl_int(c, "SELECT lote.reprocess(%lld)", id);
	assert_true(copy2 > copy);
	assert_string_equal(tl_value(c, "SELECT lote.lineage(%lld)->>'replaced_by'", id),
	                    tl_value(c, "SELECT '%lld'", copy2));
	/* unknown ids still say so */
	e = tl_try(c, "SELECT lote.reprocess(42424242)");
	assert_non_null(e);
	assert_non_null(strstr(e, "no command 42424242"));
	free(e);
	assert_null(tl_value(c, "SELECT lote.lineage(42424242)"));
	PQfinish(c);
	free(db);
}

/* Right after archiving a handful of rows into fresh partitions (never
 * analyzed), `lote stats` says exactly how many: a small archive is
 * counted, not guessed from its pages (one page is not 40 rows). */
static void stats_exact_when_small(void **state)
{
	char *db = tl_fresh_db("archive_stats", true);
	PGconn *c = tl_connect(db);
	char *out = NULL, rows[32], by[256];
	(void)state;

	finished_commands(c, 3, "success", "1 hour");
	finished_commands(c, 2, "error", "1 hour");
	finished_commands(c, 1, "cancelled", "1 hour");
	tl_exec(c, "INSERT INTO lote.events (institution_id, entity_type, entity_id, type, status, attempt,"
	           " started_at, finished_at)"
	           " SELECT " NIL ", 'order', i::text, 'Placed', 'success', 1, now() - interval '1 hour',"
	           " now() - interval '1 hour' FROM generate_series(1, 4) i");
	assert_int_equal(tl_run_lote(db, &out, "archive", "--older-than", "0s", NULL), 0);
	free(out);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands_archive"), 6);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.events_archive"), 4);

	/* in SQL too (migration 019): the written-rows counters, once the
	 * archiving session has reported them as it ended */
	assert_true(tl_wait(c, 5000, "SELECT (SELECT sum(rows_estimate) FROM lote.archive_partitions"
	                             " WHERE archive = 'commands' AND status IS NOT NULL) = 6"));
	assert_int_equal(tl_int(c, "SELECT rows_estimate FROM lote.archive_partitions"
	                           " WHERE archive = 'commands' AND status = 'cancelled'"
	                           " AND rows_estimate > 0"), 1);
	assert_int_equal(tl_int(c, "SELECT (lote.stats()->'events'->'archive'->>'rows_estimate')::int"), 4);

	assert_int_equal(tl_run_lote(db, &out, "stats", "--json", NULL), 0);
	json_t *j = json_loads(out, 0, NULL);
	assert_non_null(j);
	json_t *ka = json_object_get(json_object_get(j, "commands"), "archive");
	json_t *ea = json_object_get(json_object_get(j, "events"), "archive");
	json_t *ba = json_object_get(json_object_get(j, "batches"), "archive");
	assert_int_equal(json_integer_value(json_object_get(ka, "rows_estimate")), 6);
	assert_true(json_is_true(json_object_get(ka, "exact")));
	json_t *ks = json_object_get(ka, "by_status");
	assert_int_equal(json_integer_value(json_object_get(ks, "success")), 3);
	assert_int_equal(json_integer_value(json_object_get(ks, "error")), 2);
	assert_int_equal(json_integer_value(json_object_get(ks, "cancelled")), 1);
	assert_int_equal(json_integer_value(json_object_get(ea, "rows_estimate")), 4);
	assert_true(json_is_true(json_object_get(ea, "exact")));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(ea, "by_status"), "success")), 4);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(ea, "by_status"), "error")), 0);
	assert_int_equal(json_integer_value(json_object_get(ba, "rows_estimate")), 0);
	assert_true(json_is_true(json_object_get(ba, "exact")));
	json_decref(j);
	free(out);

	assert_int_equal(tl_run_lote(db, &out, "stats", NULL), 0);
	stats_line(out, "commands", rows, sizeof(rows), by, sizeof(by));
	assert_string_equal(rows, "6");
	assert_non_null(strstr(by, " success 3"));
	assert_non_null(strstr(by, " error 2"));
	assert_non_null(strstr(by, " cancelled 1"));
	assert_null(strchr(by, '~'));
	stats_line(out, "events", rows, sizeof(rows), by, sizeof(by));
	assert_string_equal(rows, "4");
	assert_non_null(strstr(by, " success 4"));
	free(out);
	PQfinish(c);
	free(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(exactly_once_with_kill9),
		cmocka_unit_test(batches_and_lineage),
		cmocka_unit_test(partitions_and_retention),
		cmocka_unit_test(reprocess_archived),
		cmocka_unit_test(stats_exact_when_small),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
