/* Migrations: fresh, repeated, concurrent from many processes, and the
 * refusal to run against a newer schema. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

static void fresh_database_gets_every_migration(void **state)
{
	char *db = tl_fresh_db("migrate_fresh", false);
	PGconn *c = tl_connect(db);
	lote_error err = { 0 };
	int applied = -1;
	(void)state;
	assert_int_equal(lote_migrate(c, &applied, &err), 0);
	assert_int_equal(applied, lote_schema_version());
	assert_int_equal(tl_int(c, "SELECT max(version) FROM lote.migrations"), lote_schema_version());
	for (const char *const *t = (const char *const[]){ "events", "commands", "batches", "workers", NULL }; *t; t++)
		assert_int_equal(tl_int(c, "SELECT count(*) FROM pg_tables WHERE schemaname = 'lote' AND tablename = '%s'", *t), 1);
	/* the statuses are readable text, checked by the table */
	char *e = tl_try(c, "INSERT INTO lote.commands (institution_id, type, status) VALUES (gen_random_uuid(), 'T', 'done')");
	assert_non_null(e);
	free(e);
	/* repeated: nothing to do, nothing changes */
	applied = -1;
	assert_int_equal(lote_migrate(c, &applied, &err), 0);
	assert_int_equal(applied, 0);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.migrations"), lote_schema_version());
	PQfinish(c);
	free(db);
}

static void concurrent_migrations_apply_once(void **state)
{
	char *db = tl_fresh_db("migrate_concurrent", false);
	pid_t kids[6];
	(void)state;
	for (int i = 0; i < 6; i++) {
		kids[i] = fork();
		if (kids[i] == 0) {
			PGconn *c = PQconnectdb(db);
			lote_error err = { 0 };
			int rc = PQstatus(c) == CONNECTION_OK ? lote_migrate(c, NULL, &err) : -1;
			PQfinish(c);
			_exit(rc == 0 ? 0 : 1);
		}
	}
	for (int i = 0; i < 6; i++) {
		int st;
		waitpid(kids[i], &st, 0);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	PGconn *c = tl_connect(db);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.migrations"), lote_schema_version());
	PQfinish(c);
	free(db);
}

static void newer_schema_is_refused(void **state)
{
	char *db = tl_fresh_db("migrate_newer", true);
	PGconn *c = tl_connect(db);
	lote_error err = { 0 };
	char *out = NULL;
	(void)state;
	tl_exec(c, "INSERT INTO lote.migrations (version, name) VALUES (%d, 'from_the_future')",
	        lote_schema_version() + 1);
	assert_int_equal(lote_migrate(c, NULL, &err), LOTE_ESCHEMA);
	assert_non_null(strstr(err.message, "newer"));
	/* the CLI says so too, with exit status 3, and so does lote run */
	assert_int_equal(tl_run_lote(db, &out, "migrate", NULL), 3);
	assert_non_null(strstr(out, "upgrade lote"));
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "enqueue", "T", NULL), 3);
	free(out);
	PQfinish(c);
	free(db);
}

static void commands_refuse_an_unmigrated_database(void **state)
{
	char *db = tl_fresh_db("migrate_missing", false);
	char *out = NULL;
	(void)state;
	assert_int_equal(tl_run_lote(db, &out, "enqueue", "T", NULL), 3);
	assert_non_null(strstr(out, "lote migrate"));
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "migrate", NULL), 0);
	assert_non_null(strstr(out, "schema at version"));
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "enqueue", "T", NULL), 0);
	free(out);
	free(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fresh_database_gets_every_migration),
		cmocka_unit_test(concurrent_migrations_apply_once),
		cmocka_unit_test(newer_schema_is_refused),
		cmocka_unit_test(commands_refuse_an_unmigrated_database),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
