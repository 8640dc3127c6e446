/* cmd_migrate.c - `lote migrate`. */
#include <stdio.h>

#include "cli.h"

static const char usage[] =
	"NAME\n"
	"    lote migrate - create or upgrade the lote schema\n"
	"\n"
	"SYNOPSIS\n"
	"    lote migrate\n"
	"\n"
	"DESCRIPTION\n"
	"    Applies every migration embedded in this binary that the database\n"
	"    lacks, each in its own transaction. Safe to run from several hosts at\n"
	"    once (an advisory lock serialises them). Refuses to touch a schema\n"
	"    newer than this binary knows (exit 3).\n";

int cmd_migrate(int argc, char **argv)
{
	lote_error err = { 0 };
	int applied = 0;
	PGconn *conn;

	if (cli_wants_help(argc, argv, usage))
		return EXIT_OK;
	if (argc > 1) {
		cli_error("migrate", "unexpected argument \"%s\" (see lote migrate --help)", argv[1]);
		return EXIT_USAGE;
	}
	conn = cli_connect("migrate", NULL);
	if (!conn)
		return EXIT_DB;
	if (lote_migrate(conn, &applied, &err) < 0) {
		cli_error("migrate", "%s", err.message);
		PQfinish(conn);
		return err.code == LOTE_EDB ? EXIT_FAIL : cli_exit_for(err.code);
	}
	PQfinish(conn);
	printf("schema at version %d (%d migration%s applied)\n",
	       lote_schema_version(), applied, applied == 1 ? "" : "s");
	return EXIT_OK;
}
