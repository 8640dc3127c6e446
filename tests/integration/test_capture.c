/* The interceptor: lote.capture installs a trigger that records an event in
 * the same transaction as the application's row; lote.uncapture removes
 * it. Also what a bad capture or a bad row is told. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

static char *db;
static PGconn *c;

static int setup(void **state)
{
	(void)state;
	if (!db)
		db = tl_fresh_db("capture", true);
	c = tl_connect(db);
	tl_exec(c, "DROP SCHEMA IF EXISTS app CASCADE; CREATE SCHEMA app;"
	           "CREATE TABLE app.items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	           "  institution_id uuid, title text NOT NULL, price int, secret text);"
	           "TRUNCATE lote.events, lote.capture_defs");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	PQfinish(c);
	return 0;
}

#define INST "aaaaaaaa-0000-0000-0000-000000000001"

static long long events(void)
{
	return tl_int(c, "SELECT count(*) FROM lote.events");
}

/* sql must fail saying want, and leave the events and the items as they were */
static void rejected(const char *sql, const char *want)
{
	tl_rejected(c, sql, want, "SELECT (SELECT count(*) FROM lote.events) || '/' || (SELECT count(*) FROM app.items)");
}

static void insert_records_event_in_same_transaction(void **state)
{
	(void)state;
	const char *trig = tl_value(c, "SELECT lote.capture('app.items', 'ItemCreated', columns => ARRAY['title','price'])");
	assert_true(strncmp(trig, "lote_capture_ItemCreated_", 25) == 0);
	assert_string_equal(tl_value(c, "SELECT trigger_name || ' ' || operations::text FROM lote.captures"
	                                " WHERE \"table\" = 'app.items'::regclass AND event_type = 'ItemCreated'"),
	                    tl_value(c, "SELECT '%s {insert}'", trig));
	tl_exec(c, "INSERT INTO app.items (institution_id, title, price, secret) VALUES ('" INST "', 'pen', 3, 'x')");
	assert_string_equal(tl_value(c, "SELECT concat_ws('|', institution_id, entity_type, entity_id, type, data::text, status)"
	                                " FROM lote.events"),
	                    INST "|items|1|ItemCreated|{\"price\": 3, \"title\": \"pen\"}|pending");
	/* several rows in one statement: one event each */
	tl_exec(c, "INSERT INTO app.items (institution_id, title) SELECT '" INST "', 'n' || g FROM generate_series(1, 5) g");
	assert_int_equal(events(), 6);
	assert_int_equal(tl_int(c, "SELECT count(DISTINCT entity_id) FROM lote.events"), 6);
	/* rolled back with the row: no event */
	tl_exec(c, "BEGIN; INSERT INTO app.items (institution_id, title) VALUES ('" INST "', 'gone'); ROLLBACK");
	assert_int_equal(events(), 6);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM app.items WHERE title = 'gone'"), 0);
	/* the row and its event commit together in the application's transaction */
	tl_exec(c, "BEGIN; INSERT INTO app.items (institution_id, title) VALUES ('" INST "', 'kept')");
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.events WHERE data->>'title' = 'kept'"), 1);
	tl_exec(c, "COMMIT");
	assert_int_equal(events(), 7);
	/* updates are not captured unless asked */
	tl_exec(c, "UPDATE app.items SET price = 9");
	assert_int_equal(events(), 7);
}

static void defaults_take_every_column_and_options_apply(void **state)
{
	(void)state;
	/* every column, entity type given, system events (no institution column) */
	tl_exec(c, "SELECT lote.capture('app.items', 'ItemAdded', entity_type => 'Item', institution_column => NULL)");
	tl_exec(c, "INSERT INTO app.items (title, price) VALUES ('cup', 2)");
	assert_string_equal(tl_value(c, "SELECT concat_ws('|', institution_id, entity_type, entity_id, data->>'title',"
	                                " data->>'price', data ? 'secret', data ? 'institution_id') FROM lote.events"),
	                    "00000000-0000-0000-0000-000000000000|Item|1|cup|2|t|t");
	/* the event type's policy applies as with lote.emit */
	tl_exec(c, "INSERT INTO lote.policies (kind, type, max_attempts) VALUES ('event', 'ItemAdded', 9)"
	           " ON CONFLICT (kind, type) DO UPDATE SET max_attempts = 9");
	tl_exec(c, "INSERT INTO app.items (title) VALUES ('mug')");
	assert_int_equal(tl_int(c, "SELECT max_attempts FROM lote.events WHERE data->>'title' = 'mug'"), 9);
	tl_exec(c, "DELETE FROM lote.policies WHERE kind = 'event' AND type = 'ItemAdded'");
}

static void updates_and_deletes_by_option(void **state)
{
	(void)state;
	tl_exec(c, "INSERT INTO app.items (institution_id, title, price) VALUES ('" INST "', 'pen', 1)");
	tl_exec(c, "SELECT lote.capture('app.items', 'ItemRepriced', columns => ARRAY['price'], operations => ARRAY['update'])");
	tl_exec(c, "SELECT lote.capture('app.items', 'ItemRemoved', columns => ARRAY['title'], operations => ARRAY['DELETE'])");
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.captures WHERE \"table\" = 'app.items'::regclass"), 2);
	/* an update that leaves the captured columns alone is no event */
	tl_exec(c, "UPDATE app.items SET title = 'ink pen'");
	assert_int_equal(events(), 0);
	tl_exec(c, "UPDATE app.items SET price = 1");
	assert_int_equal(events(), 0);
	tl_exec(c, "UPDATE app.items SET price = 4");
	assert_string_equal(tl_value(c, "SELECT type || ' ' || data::text FROM lote.events"), "ItemRepriced {\"price\": 4}");
	/* a delete records the row as it was */
	tl_exec(c, "DELETE FROM app.items");
	assert_string_equal(tl_value(c, "SELECT type || ' ' || entity_id || ' ' || data::text FROM lote.events ORDER BY id DESC LIMIT 1"),
	                    "ItemRemoved 1 {\"title\": \"ink pen\"}");
	/* one capture for several operations */
	tl_exec(c, "SELECT lote.capture('app.items', 'ItemChanged', columns => ARRAY['title'],"
	           " operations => ARRAY['insert','update','delete'])");
	tl_exec(c, "INSERT INTO app.items (institution_id, title) VALUES ('" INST "', 'a');"
	           "UPDATE app.items SET title = 'b'; DELETE FROM app.items");
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.events WHERE type = 'ItemChanged'"), 3);
}

static void a_condition_chooses_the_rows(void **state)
{
	(void)state;
	tl_exec(c, "SELECT lote.capture('app.items', 'ExpensiveItemCreated', columns => ARRAY['price'],"
	           " condition => 'NEW.price >= 100')");
	tl_exec(c, "SELECT lote.capture('app.items', 'ItemPriceRaised', columns => ARRAY['price'],"
	           " operations => ARRAY['update'], condition => 'NEW.price > OLD.price')");
	assert_string_equal(tl_value(c, "SELECT string_agg(condition, ' ; ' ORDER BY event_type) FROM lote.captures"),
	                    "NEW.price >= 100 ; NEW.price > OLD.price");
	tl_exec(c, "INSERT INTO app.items (institution_id, title, price) VALUES"
	           " ('" INST "', 'pen', 3), ('" INST "', 'desk', 300), ('" INST "', 'lamp', NULL)");
	assert_string_equal(tl_value(c, "SELECT string_agg(type || ':' || entity_id, ',') FROM lote.events"),
	                    "ExpensiveItemCreated:2");
	tl_exec(c, "UPDATE app.items SET price = price - 1");
	assert_int_equal(events(), 1);
	tl_exec(c, "UPDATE app.items SET price = 5 WHERE title = 'pen'");
	assert_string_equal(tl_value(c, "SELECT type || ':' || entity_id || ':' || data::text FROM lote.events ORDER BY id DESC LIMIT 1"),
	                    "ItemPriceRaised:1:{\"price\": 5}");
	/* PostgreSQL checks the condition when the capture is installed */
	rejected("SELECT lote.capture('app.items', 'X', condition => 'NEW.nope > 1')", "nope");
	rejected("SELECT lote.capture('app.items', 'X', condition => 'OLD.price > 1')", "INSERT trigger's WHEN condition cannot reference OLD values");
	rejected("SELECT lote.capture('app.items', 'X', condition => '  ')", "condition is empty");
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.captures"), 2);
}

static void recapture_replaces_and_uncapture_removes(void **state)
{
	(void)state;
	tl_exec(c, "SELECT lote.capture('app.items', 'ItemCreated', columns => ARRAY['title'])");
	tl_exec(c, "SELECT lote.capture('app.items', 'ItemCreated', columns => ARRAY['price'])");
	/* replaced, not doubled: one trigger, one event per row, new columns */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'app.items'::regclass AND NOT tgisinternal"), 1);
	tl_exec(c, "INSERT INTO app.items (institution_id, title, price) VALUES ('" INST "', 'pen', 5)");
	assert_string_equal(tl_value(c, "SELECT string_agg(data::text, ',') FROM lote.events"), "{\"price\": 5}");
	tl_exec(c, "SELECT lote.capture('app.items', 'ItemAlsoCreated')");
	assert_int_equal(tl_int(c, "SELECT lote.uncapture('app.items', 'ItemCreated')"), 1);
	assert_int_equal(tl_int(c, "SELECT lote.uncapture('app.items', 'ItemCreated')"), 0);
	tl_exec(c, "INSERT INTO app.items (institution_id, title) VALUES ('" INST "', 'cup')");
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.events WHERE type = 'ItemCreated'"), 1);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.events WHERE type = 'ItemAlsoCreated'"), 1);
	/* NULL event type: every capture on the table */
	tl_exec(c, "SELECT lote.capture('app.items', 'ItemCreated')");
	assert_int_equal(tl_int(c, "SELECT lote.uncapture('app.items')"), 2);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'app.items'::regclass AND NOT tgisinternal"), 0);
	tl_exec(c, "INSERT INTO app.items (institution_id, title) VALUES ('" INST "', 'bowl')");
	assert_int_equal(events(), 2);
	/* a dropped table leaves no capture behind in lote.captures */
	tl_exec(c, "CREATE TABLE app.tmp (id int PRIMARY KEY, institution_id uuid)");
	tl_exec(c, "SELECT lote.capture('app.tmp', 'TmpCreated')");
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.captures"), 1);
	tl_exec(c, "DROP TABLE app.tmp");
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.captures"), 0);
}

static void bad_captures_are_refused_clearly(void **state)
{
	(void)state;
	rejected("SELECT lote.capture('app.nope', 'X')", "relation \"app.nope\" does not exist");
	rejected("SELECT lote.capture('app.items', 'bad type!')", "invalid type 'bad type!'");
	rejected("SELECT lote.capture('app.items', 'X', columns => ARRAY['title','nope'])", "app.items has no column nope");
	rejected("SELECT lote.capture('app.items', 'X', columns => ARRAY[]::text[])", "columns is empty");
	rejected("SELECT lote.capture('app.items', 'X', id_column => 'uid')", "has no column uid for the entity id");
	rejected("SELECT lote.capture('app.items', 'X', institution_column => 'title')", "app.items.title is text, not uuid");
	rejected("SELECT lote.capture('app.items', 'X', institution_column => 'org')", "has no column org for the institution");
	rejected("SELECT lote.capture('app.items', 'X', operations => ARRAY['truncate'])", "unknown operation");
	rejected("SELECT lote.capture('app.items', 'X', operations => ARRAY[]::text[])", "at least one of insert, update, delete");
	rejected("SELECT lote.capture('lote.events', 'X')", "belongs to lote itself");
	tl_exec(c, "CREATE OR REPLACE VIEW app.v AS SELECT * FROM app.items");
	rejected("SELECT lote.capture('app.v', 'X')", "app.v is not a table");
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.capture_defs"), 0);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'app.items'::regclass AND NOT tgisinternal"), 0);
}

static void a_row_without_institution_is_refused_with_its_event(void **state)
{
	(void)state;
	tl_exec(c, "SELECT lote.capture('app.items', 'ItemCreated')");
	/* the row would record an event without institution: the insert fails
	 * whole, with a message that says why and how to fix it */
	rejected("INSERT INTO app.items (title) VALUES ('orphan')", "has no institution (column institution_id is NULL)");
	/* a bulk insert with one bad row writes nothing */
	rejected("INSERT INTO app.items (institution_id, title) VALUES ('" INST "', 'a'), (NULL, 'b')", "has no institution");
	/* payload limit applies as to lote.emit */
	tl_exec(c, "SET lote.max_payload_bytes = 100");
	rejected("INSERT INTO app.items (institution_id, title) VALUES ('" INST "', repeat('x', 200))", "over the limit of 100 bytes");
	tl_exec(c, "RESET lote.max_payload_bytes");
}

static int on_item(lote_ctx *ctx, void *udata)
{
	(void)udata;
	return tl_record_run(ctx);
}

static void register_item(lote_engine *e)
{
	tl_on_event(e, "ItemCreated", on_item, NULL);
}

static void captured_events_are_handled_by_the_engine(void **state)
{
	(void)state;
	tl_runs_table(c);
	tl_exec(c, "TRUNCATE runs");
	tl_exec(c, "SELECT lote.capture('app.items', 'ItemCreated', columns => ARRAY['title'])");
	lote_engine_options o;
	lote_engine_options_init(&o);
	o.workers = 2;
	o.grace_ms = 10000;
	pid_t pid = tl_start_engine(db, &o, register_item);
	tl_exec(c, "INSERT INTO app.items (institution_id, title) SELECT '" INST "', 'n' || g FROM generate_series(1, 50) g");
	assert_true(tl_wait(c, 30000, "SELECT count(*) = 50 FROM lote.events WHERE status = 'success'"));
	/* each captured event handled once */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM runs WHERE kind = 'event'"), 50);
	assert_int_equal(tl_int(c, "SELECT count(DISTINCT id) FROM runs WHERE kind = 'event'"), 50);
	assert_int_equal(tl_stop(pid, SIGTERM, 15000), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(insert_records_event_in_same_transaction, setup, teardown),
		cmocka_unit_test_setup_teardown(defaults_take_every_column_and_options_apply, setup, teardown),
		cmocka_unit_test_setup_teardown(updates_and_deletes_by_option, setup, teardown),
		cmocka_unit_test_setup_teardown(a_condition_chooses_the_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(recapture_replaces_and_uncapture_removes, setup, teardown),
		cmocka_unit_test_setup_teardown(bad_captures_are_refused_clearly, setup, teardown),
		cmocka_unit_test_setup_teardown(a_row_without_institution_is_refused_with_its_event, setup, teardown),
		cmocka_unit_test_setup_teardown(captured_events_are_handled_by_the_engine, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
