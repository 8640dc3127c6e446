/* The SQL API from a client's point of view: lote.emit and lote.enqueue
 * inside the application's transactions, their validation, and the
 * wake-up notifications. */
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

static char *db;
static PGconn *c;

static int setup(void **state)
{
	(void)state;
	if (!db)
		db = tl_fresh_db("sqlapi", true);
	c = tl_connect(db);
	tl_exec(c, "TRUNCATE lote.events, lote.commands");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	PQfinish(c);
	return 0;
}

/* Asserts that sql fails with a message containing want and leaves no row. */
static void rejected(const char *sql, const char *want)
{
	tl_rejected(c, sql, want, "SELECT (SELECT count(*) FROM lote.commands) + (SELECT count(*) FROM lote.events)");
}

static void emit_records_an_event(void **state)
{
	(void)state;
	long long id = tl_int(c, "SELECT lote.emit('aaaaaaaa-0000-0000-0000-000000000001', 'ClassActivity', '42',"
	                         " 'ClassActivityCreated', '{\"title\":\"t\"}')");
	assert_true(id > 0);
	assert_string_equal(tl_value(c, "SELECT concat_ws('|', institution_id, entity_type, entity_id, type, data::text, status, attempt)"
	                                " FROM lote.events WHERE id = %lld", id),
	                    "aaaaaaaa-0000-0000-0000-000000000001|ClassActivity|42|ClassActivityCreated|{\"title\": \"t\"}|pending|0");
	/* data defaults to {} */
	id = tl_int(c, "SELECT lote.emit('00000000-0000-0000-0000-000000000000', 'System', '1', 'Tick')");
	assert_string_equal(tl_value(c, "SELECT data::text FROM lote.events WHERE id = %lld", id), "{}");
}

static void enqueue_applies_defaults_and_options(void **state)
{
	(void)state;
	long long id = tl_int(c, "SELECT lote.enqueue('SendEmail')");
	assert_string_equal(tl_value(c, "SELECT concat_ws('|', institution_id, data::text, status, queue, priority, attempt, max_attempts,"
	                                " run_at <= now(), event_id IS NULL AND parent_id IS NULL AND original_id IS NULL AND batch_id IS NULL)"
	                                " FROM lote.commands WHERE id = %lld", id),
	                    "00000000-0000-0000-0000-000000000000|{}|pending|default|0|0|3|t|t");
	id = tl_int(c, "SELECT lote.enqueue('SendEmail', '{\"to\":\"a@b\"}', 'aaaaaaaa-0000-0000-0000-000000000001',"
	               " '{\"queue\":\"mail\",\"priority\":-5,\"max_attempts\":7,\"delay_ms\":60000}')");
	assert_string_equal(tl_value(c, "SELECT concat_ws('|', institution_id, queue, priority, max_attempts,"
	                                " run_at BETWEEN now() + interval '59 s' AND now() + interval '61 s')"
	                                " FROM lote.commands WHERE id = %lld", id),
	                    "aaaaaaaa-0000-0000-0000-000000000001|mail|-5|7|t");
	id = tl_int(c, "SELECT lote.enqueue('SendEmail', '{}', NULL, '{\"run_at\":\"2030-01-02T03:04:05Z\"}')");
	assert_string_equal(tl_value(c, "SELECT run_at AT TIME ZONE 'UTC' FROM lote.commands WHERE id = %lld", id),
	                    "2030-01-02 03:04:05");
}

static void invalid_input_is_rejected_clearly(void **state)
{
	(void)state;
	rejected("SELECT lote.enqueue('T', '[1,2]')", "data must be a JSON object, got array");
	rejected("SELECT lote.enqueue('T', '\"x\"')", "data must be a JSON object, got string");
	rejected("SELECT lote.enqueue('T', NULL)", "data must be a JSON object, got NULL");
	rejected("SELECT lote.enqueue('T', '{bad')", "invalid input syntax for type json");
	rejected("SELECT lote.enqueue('T', '{}', NULL, '{\"retries\":3}')", "unknown option \"retries\"");
	rejected("SELECT lote.enqueue('T', '{}', NULL, '[]')", "options must be a JSON object");
	rejected("SELECT lote.enqueue('T', '{}', NULL, '{\"max_attempts\":0}')", "max_attempts must be an integer from 1 to 1000");
	rejected("SELECT lote.enqueue('T', '{}', NULL, '{\"max_attempts\":\"3\"}')", "max_attempts must be an integer");
	rejected("SELECT lote.enqueue('T', '{}', NULL, '{\"priority\":1.5}')", "priority must be an integer");
	rejected("SELECT lote.enqueue('T', '{}', NULL, '{\"priority\":40000}')", "priority must be an integer from -32768 to 32767");
	rejected("SELECT lote.enqueue('T', '{}', NULL, '{\"queue\":\"\"}')", "queue must be a name");
	rejected("SELECT lote.enqueue('T', '{}', NULL, '{\"delay_ms\":-1}')", "delay_ms must be a number of milliseconds >= 0");
	rejected("SELECT lote.enqueue('T', '{}', NULL, '{\"run_at\":\"tomorrow\"}')", "run_at must be an ISO 8601 timestamp");
	rejected("SELECT lote.enqueue('T', '{}', NULL, '{\"run_at\":\"2030-01-01\",\"delay_ms\":5}')", "run_at or delay_ms, not both");
	rejected("SELECT lote.enqueue('', '{}')", "invalid type");
	rejected("SELECT lote.enqueue(NULL, '{}')", "invalid type NULL");
	rejected("SELECT lote.enqueue('has space', '{}')", "invalid type");
	/* the rule's edges: 1 to 200 ASCII characters, the first a letter or "_" */
	rejected("SELECT lote.enqueue('1st', '{}')", "invalid type");
	rejected("SELECT lote.enqueue('caf\u00e9', '{}')", "invalid type");
	rejected("SELECT lote.enqueue('a' || repeat('b', 200), '{}')", "invalid type");
	rejected("SELECT lote.batch('B', jsonb_build_array(jsonb_build_object('type', 'a' || repeat('b', 200))))",
	         "command 1: invalid type");
	assert_true(tl_int(c, "SELECT lote.enqueue('_' || repeat('b', 199), '{}')") > 0);
	assert_true(tl_int(c, "SELECT lote.enqueue('A.b:c-d_9', '{}')") > 0);
	/* the queue rule's edges: 1 to 100 ASCII letters, digits, "_", ".", ":", "-" */
	rejected("SELECT lote.enqueue('T', '{}', NULL, jsonb_build_object('queue', repeat('q', 101)))", "queue must be a name");
	rejected("SELECT lote.enqueue('T', '{}', NULL, '{\"queue\":\"caf\u00e9\"}')", "queue must be a name");
	rejected("SELECT lote.enqueue('T', '{}', NULL, '{\"queue\":\"a b\"}')", "queue must be a name");
	rejected("SELECT lote.enqueue('T', '{}', NULL, '{\"queue\":7}')", "queue must be a name");
	rejected("SELECT lote.batch('B', jsonb_build_array(jsonb_build_object('type', 'T', 'queue', 'x/y')))",
	         "command 1: queue must be a name");
	long long q = tl_int(c, "SELECT lote.enqueue('T', '{}', NULL, jsonb_build_object('queue', repeat('q', 100)))");
	assert_int_equal(tl_int(c, "SELECT length(queue) FROM lote.commands WHERE id = %lld", q), 100);
	q = tl_int(c, "SELECT lote.enqueue('T', '{}', NULL, '{\"queue\":\"9.a:b-c_d\"}')");
	assert_string_equal(tl_value(c, "SELECT queue FROM lote.commands WHERE id = %lld", q), "9.a:b-c_d");
	rejected("SELECT lote.emit(NULL, 'E', '1', 'T')", "institution_id must not be NULL");
	rejected("SELECT lote.emit('00000000-0000-0000-0000-000000000000', '', '1', 'T')", "entity_type and entity_id must be non-empty");
	rejected("SELECT lote.emit('00000000-0000-0000-0000-000000000000', 'E', '1', 'T', '[]')", "data must be a JSON object");
	rejected("SELECT lote.emit('00000000-0000-0000-0000-000000000000', 'E', '1', 'bad type!')", "invalid type");
}

/* lote.enqueue_many: one statement, ids in the order of the data, the
 * options on every command, the same checks as lote.enqueue naming the
 * element, and nothing written when one element is bad. */
static void enqueue_many_inserts_all_or_nothing(void **state)
{
	(void)state;
	const char *ids = tl_value(c, "SELECT lote.enqueue_many('SendEmail',"
	                              " ARRAY['{\"to\":\"a\"}', '{\"to\":\"b\"}', '{\"to\":\"c\"}']::jsonb[],"
	                              " 'aaaaaaaa-0000-0000-0000-000000000001',"
	                              " '{\"queue\":\"mail\",\"priority\":-5,\"max_attempts\":7}')::text");
	/* the ids, in data order, are those of a, b, c */
	assert_string_equal(tl_value(c, "SELECT string_agg(data->>'to', '' ORDER BY ord)"
	                                " FROM unnest('%s'::bigint[]) WITH ORDINALITY AS u(id, ord)"
	                                " JOIN lote.commands c USING (id)", ids), "abc");
	assert_string_equal(tl_value(c, "SELECT string_agg(DISTINCT concat_ws('|', institution_id, type, status,"
	                                " queue, priority, max_attempts, run_at <= now()), ',')"
	                                " FROM lote.commands"),
	                    "aaaaaaaa-0000-0000-0000-000000000001|SendEmail|pending|mail|-5|7|t");
	/* defaults: the nil institution, the type's policy */
	tl_exec(c, "INSERT INTO lote.policies (kind, type, max_attempts) VALUES ('command', 'Pol', 9)"
	           " ON CONFLICT (kind, type) DO UPDATE SET max_attempts = 9");
	assert_string_equal(tl_value(c, "SELECT array_length(lote.enqueue_many('Pol', ARRAY['{}', '{}']::jsonb[]), 1)"), "2");
	assert_string_equal(tl_value(c, "SELECT string_agg(DISTINCT concat_ws('|', institution_id, queue, priority, max_attempts), ',')"
	                                " FROM lote.commands WHERE type = 'Pol'"),
	                    "00000000-0000-0000-0000-000000000000|default|0|9");
	assert_string_equal(tl_value(c, "SELECT lote.enqueue_many('T', '{}'::jsonb[])::text"), "{}");
	tl_exec(c, "DELETE FROM lote.policies WHERE type = 'Pol'");
	tl_exec(c, "TRUNCATE lote.commands");
	/* one bad element fails the call, naming it; nothing is written */
	rejected("SELECT lote.enqueue_many('T', ARRAY['{}', '[1]', '{}']::jsonb[])",
	         "lote.enqueue_many: data[2]: data must be a JSON object, got array");
	rejected("SELECT lote.enqueue_many('T', ARRAY['{}', NULL]::jsonb[])",
	         "lote.enqueue_many: data[2]: data must be a JSON object, got NULL");
	rejected("SELECT lote.enqueue_many('T', NULL)", "data must be an array of JSON objects, got NULL");
	rejected("SELECT lote.enqueue_many('bad type', ARRAY['{}']::jsonb[])", "lote.enqueue_many: invalid type");
	rejected("SELECT lote.enqueue_many('T', ARRAY['{}']::jsonb[], NULL, '{\"retries\":3}')",
	         "unknown option \"retries\"");
	tl_exec(c, "SET lote.max_payload_bytes = 100");
	rejected("SELECT lote.enqueue_many('T', ARRAY['{}', jsonb_build_object('x', repeat('a', 200))])",
	         "data[2]: data is");
	tl_exec(c, "RESET lote.max_payload_bytes");
}

static void oversized_payload_is_rejected(void **state)
{
	(void)state;
	rejected("SELECT lote.enqueue('T', jsonb_build_object('x', repeat('a', 1100000)))", "over the limit of 1048576 bytes");
	/* the limit is a setting */
	tl_exec(c, "SET lote.max_payload_bytes = 100");
	rejected("SELECT lote.enqueue('T', jsonb_build_object('x', repeat('a', 200)))", "over the limit of 100 bytes");
	rejected("SELECT lote.emit('00000000-0000-0000-0000-000000000000', 'E', '1', 'T', jsonb_build_object('x', repeat('a', 200)))", "over the limit of 100 bytes");
	tl_exec(c, "RESET lote.max_payload_bytes");
	assert_true(tl_int(c, "SELECT lote.enqueue('T', jsonb_build_object('x', repeat('a', 200)))") > 0);
}

static void event_exists_iff_transaction_commits(void **state)
{
	(void)state;
	tl_exec(c, "CREATE TABLE IF NOT EXISTS activity (id serial PRIMARY KEY, title text)");
	/* rolled back: neither the row nor the event */
	tl_exec(c, "BEGIN");
	tl_exec(c, "INSERT INTO activity (title) VALUES ('draft')");
	tl_exec(c, "SELECT lote.emit('00000000-0000-0000-0000-000000000000', 'Activity', currval('activity_id_seq')::text, 'ActivityCreated')");
	tl_exec(c, "SELECT lote.enqueue('Follow')");
	tl_exec(c, "ROLLBACK");
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.events"), 0);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands"), 0);
	/* committed: both */
	tl_exec(c, "BEGIN");
	tl_exec(c, "INSERT INTO activity (title) VALUES ('published')");
	tl_exec(c, "SELECT lote.emit('00000000-0000-0000-0000-000000000000', 'Activity', currval('activity_id_seq')::text, 'ActivityCreated')");
	tl_exec(c, "COMMIT");
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.events e JOIN activity a ON a.id::text = e.entity_id"
	                           " WHERE a.title = 'published'"), 1);
	/* a failing statement later in the transaction takes the event with it */
	tl_exec(c, "BEGIN");
	tl_exec(c, "SELECT lote.emit('00000000-0000-0000-0000-000000000000', 'Activity', '99', 'ActivityCreated')");
	free(tl_try(c, "SELECT 1/0"));
	tl_exec(c, "ROLLBACK");
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.events"), 1);
}

/* Reads the notifications that arrived on conn. */
static int drain_notifies(PGconn *conn)
{
	int n = 0;
	PGnotify *note;
	PQconsumeInput(conn);
	while ((note = PQnotifies(conn)) != NULL) {
		n++;
		PQfreemem(note);
	}
	return n;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The payloads of the notifications that arrived on conn, sorted and
 * joined by spaces (a static buffer, valid until the next call). */
static const char *payloads(PGconn *conn)
{
	static char buf[4096];
	char *got[64];
	int n = 0;
	PGnotify *note;
	PQconsumeInput(conn);
	while ((note = PQnotifies(conn)) != NULL) {
		assert_true(n < 64);
		got[n++] = strdup(note->extra);
		PQfreemem(note);
	}
	qsort(got, (size_t)n, sizeof(got[0]), cmp_str);
	buf[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (i > 0)
			strncat(buf, " ", sizeof(buf) - strlen(buf) - 1);
		strncat(buf, got[i], sizeof(buf) - strlen(buf) - 1);
		free(got[i]);
	}
	return buf;
}

/* Asserts that exactly one notification reached conn, with payload want. */
static void one_notify(PGconn *conn, const char *want)
{
	tl_exec(conn, "SELECT 1");
	PQconsumeInput(conn);
	PGnotify *note = PQnotifies(conn);
	assert_non_null(note);
	assert_string_equal(note->extra, want);
	PQfreemem(note);
	assert_int_equal(drain_notifies(conn), 0);
}

/* A call without options takes its own path (migration 016: one INSERT
 * that checks the rules itself). It must write what the general path
 * writes for options that only restate the defaults: institution, policy,
 * lineage from the handler's settings, wake-up; and fail the same way. */
static void enqueue_without_options_matches_the_general_path(void **state)
{
	(void)state;
	static const char *const calls[] = {
		"lote.enqueue('Pol', '{\"k\":1}', 'aaaaaaaa-0000-0000-0000-000000000001')",
		"lote.enqueue('Pol', '{\"k\":1}', 'aaaaaaaa-0000-0000-0000-000000000001', NULL)",
		"lote.enqueue('Pol', '{\"k\":1}', 'aaaaaaaa-0000-0000-0000-000000000001', '{}')",
		/* the general path: an option equal to its default */
		"lote.enqueue('Pol', '{\"k\":1}', 'aaaaaaaa-0000-0000-0000-000000000001', '{\"queue\":\"default\"}')",
	};
	PGconn *listener = tl_connect(db);
	tl_exec(listener, "LISTEN lote_wakeup");
	tl_exec(c, "INSERT INTO lote.policies (kind, type, max_attempts) VALUES ('command', 'Pol', 9)"
	           " ON CONFLICT (kind, type) DO UPDATE SET max_attempts = 9");
	for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
		/* as inside a handler: lineage from the transaction's settings */
		tl_exec(c, "BEGIN");
		tl_exec(c, "SELECT set_config('lote.event_id', '41', true), set_config('lote.command_id', '42', true)");
		long long id = tl_int(c, "SELECT %s", calls[i]);
		tl_exec(c, "COMMIT");
		assert_string_equal(tl_value(c, "SELECT concat_ws('|', institution_id, type, data::text, status, queue,"
		                                " priority, attempt, max_attempts, retry IS NULL,"
		                                " run_at BETWEEN created_at AND now(), event_id, parent_id,"
		                                " original_id IS NULL AND batch_id IS NULL)"
		                                " FROM lote.commands WHERE id = %lld", id),
		                    "aaaaaaaa-0000-0000-0000-000000000001|Pol|{\"k\": 1}|pending|default|0|0|9|t|t|41|42|t");
		/* one wake-up per call, sent at commit, naming the type */
		one_notify(listener, "c:Pol");
	}
	/* both rules broken: the type is reported first, on both paths */
	rejected("SELECT lote.enqueue('bad type', '[1]')", "invalid type");
	rejected("SELECT lote.enqueue('bad type', '[1]', NULL, '{\"priority\":1}')", "invalid type");
	rejected("SELECT lote.enqueue('T', '[1]')", "data must be a JSON object, got array");
	tl_exec(c, "DELETE FROM lote.policies WHERE type = 'Pol'");
	PQfinish(listener);
}

/* Wake-ups: one NOTIFY per call (or, for events, per statement), only for
 * work claimable now, only after commit. */
static void notify_once_per_call_not_per_row(void **state)
{
	PGconn *listener = tl_connect(db);
	long long done;
	(void)state;
	/* NOTIFY dedups equal payloads within a transaction, so counting
	 * notifications cannot tell per-row from per-statement triggers: the
	 * catalogue can (tgtype bit 0 set = FOR EACH ROW). Commands have no
	 * INSERT trigger since migration 009: their functions notify. */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid"
	                           " WHERE t.tgrelid = 'lote.commands'::regclass AND p.proname LIKE 'notify%%'"), 0);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid"
	                           " WHERE t.tgrelid = 'lote.events'::regclass"
	                           " AND p.proname LIKE 'notify%%' AND t.tgtype & 1 = 0"), 1);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid"
	                           " WHERE t.tgrelid = 'lote.events'::regclass"
	                           " AND p.proname LIKE 'notify%%' AND t.tgtype & 1 = 1"), 0);
	tl_exec(listener, "LISTEN lote_wakeup");
	/* 1000 rows in one statement: one notification */
	tl_exec(c, "SELECT lote.enqueue('T', jsonb_build_object('i', i)) FROM generate_series(1, 1000) i");
	tl_exec(listener, "SELECT 1");
	assert_int_equal(drain_notifies(listener), 1);
	/* delayed work wakes nobody: the daemon finds it by run_at */
	tl_exec(c, "SELECT lote.enqueue('T', '{}', NULL, '{\"delay_ms\":60000}')");
	tl_exec(c, "SELECT lote.enqueue_many('T', ARRAY['{}'::jsonb, '{}'], NULL, '{\"delay_ms\":60000}')");
	tl_exec(c, "SELECT lote.batch('B', '[{\"type\": \"T\", \"delay_ms\": 60000}]')");
	/* nor does an empty enqueue_many, nor a follow-up left awaiting */
	tl_exec(c, "SELECT lote.enqueue_many('T', '{}')");
	tl_exec(c, "SELECT lote.insert_command('test', 'T', '{}', NULL, '{}', 'awaiting', NULL)");
	tl_exec(listener, "SELECT 1");
	assert_int_equal(drain_notifies(listener), 0);
	/* each path that inserts claimable commands wakes, once; a call of
	 * one type names it */
	tl_exec(c, "SELECT lote.enqueue_many('T', ARRAY['{}'::jsonb, '{}', '{}'])");
	one_notify(listener, "c:T");
	/* a batch names its due members' types (migration 017), not its
	 * follow-up's, which waits */
	long long b = tl_int(c, "SELECT lote.batch('B', '[{\"type\": \"T\"}, {\"type\": \"T\"}]', '{\"type\": \"N\"}')");
	one_notify(listener, "c:T");
	tl_exec(c, "SELECT lote.batch('B', '[{\"type\": \"U\"}, {\"type\": \"T\"}, {\"type\": \"U\"}]')");
	tl_exec(listener, "SELECT 1");
	assert_string_equal(payloads(listener), "c:T c:U");
	/* another queue than the default is named after the type */
	tl_exec(c, "SELECT lote.enqueue('T', '{}', NULL, '{\"queue\": \"mail\"}')");
	one_notify(listener, "c:T@mail");
	tl_exec(c, "SELECT lote.enqueue('T', '{}', NULL, '{\"queue\": \"default\", \"priority\": 1}')");
	one_notify(listener, "c:T");
	tl_exec(c, "SELECT lote.enqueue_many('T', ARRAY['{}'::jsonb, '{}'], NULL, '{\"queue\": \"mail\"}')");
	one_notify(listener, "c:T@mail");
	tl_exec(c, "SELECT lote.batch('B', '[{\"type\": \"T\"}, {\"type\": \"T\", \"queue\": \"mail\"},"
	           " {\"type\": \"U\", \"queue\": \"mail\"}, {\"type\": \"U\", \"queue\": \"mail\"}]')");
	tl_exec(listener, "SELECT 1");
	assert_string_equal(payloads(listener), "c:T c:T@mail c:U@mail");
	long long qb = tl_int(c, "SELECT lote.batch('B', '[{\"type\": \"T\", \"queue\": \"mail\"}]',"
	                         " '{\"type\": \"N\", \"queue\": \"mail\"}')");
	one_notify(listener, "c:T@mail");
	tl_exec(c, "UPDATE lote.commands SET status = 'success', finished_at = now() WHERE batch_id = %lld", qb);
	assert_int_equal(tl_int(c, "SELECT lote.batch_check(ARRAY[%lld::bigint])", qb), 1);
	one_notify(listener, "c:N@mail");
	long long qm = tl_int(c, "SELECT min(id) FROM lote.commands WHERE batch_id = %lld", qb);
	tl_exec(c, "SELECT lote.reprocess(%lld)", qm);
	one_notify(listener, "c:T@mail");
	/* a type or queue no API accepts is not named */
	assert_string_equal(tl_value(c, "SELECT lote.wakeup_payload('c', 'T', repeat('q', 101))"), "c");
	assert_string_equal(tl_value(c, "SELECT lote.wakeup_payload('c', repeat('t', 201), 'mail')"), "c");
	/* a delayed member's type is not named */
	tl_exec(c, "SELECT lote.batch('B', '[{\"type\": \"U\", \"delay_ms\": 60000}, {\"type\": \"T\"}]')");
	one_notify(listener, "c:T");
	/* up to 32 types, one wake-up each; past 32, one for all */
	tl_exec(c, "SELECT lote.batch('B', (SELECT jsonb_agg(jsonb_build_object('type', 'T' || i))"
	           " FROM generate_series(1, 32) i))");
	tl_exec(listener, "SELECT 1");
	assert_int_equal(drain_notifies(listener), 32);
	tl_exec(c, "SELECT lote.batch('B', (SELECT jsonb_agg(jsonb_build_object('type', 'T' || i))"
	           " FROM generate_series(1, 33) i))");
	one_notify(listener, "c");
	/* the released follow-up names its type */
	tl_exec(c, "UPDATE lote.commands SET status = 'success', finished_at = now() WHERE batch_id = %lld", b);
	assert_int_equal(tl_int(c, "SELECT lote.batch_check(ARRAY[%lld::bigint])", b), 1);
	one_notify(listener, "c:N");
	/* a reprocessed copy names its type */
	tl_exec(c, "UPDATE lote.commands SET status = 'error', finished_at = now() WHERE type = 'T'"
	           " AND id = (SELECT min(id) FROM lote.commands WHERE type = 'T' AND batch_id IS NULL)");
	done = tl_int(c, "SELECT min(id) FROM lote.commands WHERE status = 'error'");
	tl_exec(c, "SELECT lote.reprocess(%lld)", done);
	one_notify(listener, "c:T");
	/* nothing before commit, one after */
	tl_exec(c, "BEGIN");
	tl_exec(c, "SELECT lote.enqueue('T')");
	tl_exec(c, "SELECT lote.emit('00000000-0000-0000-0000-000000000000', 'E', '1', 'T')");
	tl_exec(listener, "SELECT 1");
	assert_int_equal(drain_notifies(listener), 0);
	tl_exec(c, "COMMIT");
	tl_exec(listener, "SELECT 1");
	/* two payloads: the command's type, the event's (migration 018) */
	assert_string_equal(payloads(listener), "c:T e:T");
	/* an INSERT of events names each due type once; delayed ones wake
	 * nobody; past 32 types, one wake-up for all */
	tl_exec(c, "INSERT INTO lote.events (institution_id, entity_type, entity_id, type, run_at)"
	           " SELECT '00000000-0000-0000-0000-000000000000', 'E', i::text, t, now() + d"
	           " FROM generate_series(1, 3) i, (VALUES ('EvA', '0'::interval), ('EvB', '0'),"
	           "  ('EvLater', '1 hour')) v(t, d)");
	tl_exec(listener, "SELECT 1");
	assert_string_equal(payloads(listener), "e:EvA e:EvB");
	/* one due type beside a delayed one: the one-type path */
	tl_exec(c, "INSERT INTO lote.events (institution_id, entity_type, entity_id, type, run_at)"
	           " VALUES ('00000000-0000-0000-0000-000000000000', 'E', '1', 'EvA', now()),"
	           "  ('00000000-0000-0000-0000-000000000000', 'E', '1', 'EvLater', now() + interval '1 hour')");
	one_notify(listener, "e:EvA");
	/* a reprocessed event names its type */
	tl_exec(c, "UPDATE lote.events SET status = 'success', finished_at = now()"
	           " WHERE id = (SELECT min(id) FROM lote.events WHERE type = 'EvB')");
	tl_exec(c, "SELECT lote.reprocess_event((SELECT min(id) FROM lote.events WHERE type = 'EvB'))");
	one_notify(listener, "e:EvB");
	/* a type no API accepts, inserted by hand, is not put in the payload
	 * (it may not fit: a payload must stay under 8000 bytes) */
	tl_exec(c, "INSERT INTO lote.events (institution_id, entity_type, entity_id, type)"
	           " VALUES ('00000000-0000-0000-0000-000000000000', 'E', '1', repeat('x', 9000))");
	one_notify(listener, "e");
	tl_exec(c, "INSERT INTO lote.events (institution_id, entity_type, entity_id, type)"
	           " SELECT '00000000-0000-0000-0000-000000000000', 'E', '1', 'Ev' || i"
	           " FROM generate_series(1, 33) i");
	one_notify(listener, "e");
	PQfinish(listener);
}

/* The kept counters of finished work (lote.stats_all): a row counts once
 * when it reaches success, error or cancelled from another status, by any
 * statement; a finished row written again without a new status does not. */
static long long finished(const char *type, const char *status)
{
	return tl_int(c, "SELECT coalesce(sum(n), 0) FROM lote.stats_all WHERE kind = 'command'"
	                 " AND type = '%s' AND status = '%s'", type, status);
}

static void finished_work_counts_once_per_transition(void **state)
{
	(void)state;
	tl_exec(c, "SELECT lote.enqueue('S', jsonb_build_object('i', i)) FROM generate_series(1, 5) i");
	tl_exec(c, "UPDATE lote.commands SET status = 'processing' WHERE type = 'S'");
	assert_int_equal(finished("S", "processing"), 0);
	/* a completion: no old row finished (the trigger's shortcut) */
	tl_exec(c, "UPDATE lote.commands SET status = CASE WHEN data->>'i' = '5' THEN 'error' ELSE 'success' END"
	           " WHERE type = 'S' AND data->>'i' <> '4'");
	assert_int_equal(finished("S", "success"), 3);
	assert_int_equal(finished("S", "error"), 1);
	/* finished rows written again, status unchanged, beside a row that
	 * does finish: only that one counts (the joined path) */
	tl_exec(c, "UPDATE lote.commands SET status = 'success', error = NULL WHERE type = 'S'"
	           " AND data->>'i' IN ('1', '2', '4')");
	assert_int_equal(finished("S", "success"), 4);
	/* finished to finished with a new status counts the new one */
	tl_exec(c, "UPDATE lote.commands SET status = 'cancelled' WHERE type = 'S' AND data->>'i' = '5'");
	assert_int_equal(finished("S", "cancelled"), 1);
	assert_int_equal(finished("S", "error"), 1);
	/* the same after a fold */
	tl_exec(c, "SELECT lote.stats_fold()");
	assert_int_equal(finished("S", "success"), 4);
	assert_int_equal(finished("S", "cancelled"), 1);
}

static void unhandled_view_reports_waiting_types(void **state)
{
	(void)state;
	tl_exec(c, "DELETE FROM lote.workers");
	tl_exec(c, "SELECT lote.enqueue('Orphan') FROM generate_series(1, 3)");
	tl_exec(c, "SELECT lote.enqueue('Handled')");
	tl_exec(c, "INSERT INTO lote.workers (host, pid, command_types) VALUES ('h', 1, '{Handled}')");
	assert_int_equal(tl_int(c, "SELECT pending FROM lote.unhandled WHERE kind = 'command' AND type = 'Orphan'"), 3);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.unhandled WHERE type = 'Handled'"), 0);
	/* a worker that stopped beating no longer counts */
	tl_exec(c, "UPDATE lote.workers SET heartbeat_at = now() - interval '5 minutes'");
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.unhandled WHERE type = 'Handled'"), 1);
	tl_exec(c, "DELETE FROM lote.workers");
}

/* lote.heartbeat, as the supervisor calls it (lease 30 s, heartbeat 10 s):
 * it renews the leases of its workers' rows that end within 25 s, leaves
 * fresher leases, other workers' rows and rows locked by a transaction
 * alone, and stamps the workers with what they run. */
static void heartbeat_renews_only_leases_due(void **state)
{
	(void)state;
	tl_exec(c, "DELETE FROM lote.workers");
	long long w = tl_int(c, "INSERT INTO lote.workers (host, pid, heartbeat_at) VALUES ('h', 7, now() - interval '9 s') RETURNING id");
	long long o = tl_int(c, "INSERT INTO lote.workers (host, pid) VALUES ('other', 7) RETURNING id");
	long long fresh = tl_int(c, "SELECT lote.enqueue('T')");
	long long due = tl_int(c, "SELECT lote.enqueue('T')");
	long long locked = tl_int(c, "SELECT lote.enqueue('T')");
	long long theirs = tl_int(c, "SELECT lote.enqueue('T')");
	long long pending = tl_int(c, "SELECT lote.enqueue('T')");
	long long ev = tl_int(c, "SELECT lote.emit('00000000-0000-0000-0000-000000000000', 'E', '1', 'Ev')");
	tl_exec(c, "UPDATE lote.commands SET status = 'processing', attempt = 1, worker_id = %lld,"
	           " lease_until = now() + CASE id WHEN %lld THEN interval '29 s' ELSE interval '20 s' END"
	           " WHERE id IN (%lld, %lld, %lld)", w, fresh, fresh, due, locked);
	tl_exec(c, "UPDATE lote.commands SET status = 'processing', attempt = 1, worker_id = %lld,"
	           " lease_until = now() + interval '1 s' WHERE id = %lld", o, theirs);
	tl_exec(c, "UPDATE lote.events SET status = 'processing', attempt = 1, worker_id = %lld,"
	           " lease_until = now() + interval '2 s' WHERE id = %lld", w, ev);
	tl_exec(c, "CREATE TEMP TABLE before AS SELECT id, lease_until FROM lote.commands");
	/* a worker's transaction holds one of its rows */
	PGconn *other = tl_connect(db);
	tl_exec(other, "BEGIN");
	tl_exec(other, "SELECT 1 FROM lote.commands WHERE id = %lld FOR UPDATE", locked);

	assert_int_equal(tl_int(c, "SELECT lote.heartbeat('h', '{7}', '{1}', ARRAY[%lld]::bigint[], 30000, 10000)",
	                        fresh), 2);
	tl_exec(other, "COMMIT");
	PQfinish(other);
#define SAME "SELECT (c.lease_until IS NOT DISTINCT FROM b.lease_until)::int FROM lote.commands c JOIN before b USING (id) WHERE id = %lld"
	assert_int_equal(tl_int(c, SAME, fresh), 1);
	assert_int_equal(tl_int(c, SAME, locked), 1);
	assert_int_equal(tl_int(c, SAME, theirs), 1);
	assert_int_equal(tl_int(c, SAME, pending), 1);
#undef SAME
	assert_int_equal(tl_int(c, "SELECT (lease_until BETWEEN now() + interval '29 s' AND now() + interval '30 s')::int FROM lote.commands WHERE id = %lld", due), 1);
	assert_int_equal(tl_int(c, "SELECT (lease_until BETWEEN now() + interval '29 s' AND now() + interval '30 s')::int FROM lote.events WHERE id = %lld", ev), 1);
	/* the worker says what it runs, the other worker is not touched */
	assert_int_equal(tl_int(c, "SELECT current_command_id FROM lote.workers WHERE id = %lld", w), fresh);
	assert_int_equal(tl_int(c, "SELECT (heartbeat_at > now() - interval '2 s')::int FROM lote.workers WHERE id = %lld", w), 1);
	assert_int_equal(tl_int(c, "SELECT (current_command_id IS NULL)::int FROM lote.workers WHERE id = %lld", o), 1);
	tl_exec(c, "DELETE FROM lote.workers");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(emit_records_an_event, setup, teardown),
		cmocka_unit_test_setup_teardown(enqueue_applies_defaults_and_options, setup, teardown),
		cmocka_unit_test_setup_teardown(invalid_input_is_rejected_clearly, setup, teardown),
		cmocka_unit_test_setup_teardown(enqueue_without_options_matches_the_general_path, setup, teardown),
		cmocka_unit_test_setup_teardown(enqueue_many_inserts_all_or_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(oversized_payload_is_rejected, setup, teardown),
		cmocka_unit_test_setup_teardown(event_exists_iff_transaction_commits, setup, teardown),
		cmocka_unit_test_setup_teardown(notify_once_per_call_not_per_row, setup, teardown),
		cmocka_unit_test_setup_teardown(finished_work_counts_once_per_transition, setup, teardown),
		cmocka_unit_test_setup_teardown(unhandled_view_reports_waiting_types, setup, teardown),
		cmocka_unit_test_setup_teardown(heartbeat_renews_only_leases_due, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
