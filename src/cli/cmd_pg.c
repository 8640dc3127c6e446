/* cmd_pg.c - `lote pg status|start|stop|url`: the embedded cluster. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pgembed.h"

static const char usage[] =
	"NAME\n"
	"    lote pg - the embedded PostgreSQL cluster\n"
	"\n"
	"SYNOPSIS\n"
	"    lote pg status\n"
	"    lote pg start\n"
	"    lote pg stop\n"
	"    lote pg url\n"
	"\n"
	"DESCRIPTION\n"
	"    Without LOTE_DATABASE_URL, lote runs its own PostgreSQL cluster under\n"
	"    ./.lote (or $LOTE_HOME): created with initdb on first use and started\n"
	"    on demand by any lote command; it listens on a private unix socket\n"
	"    only. Its database is `lote`. Concurrent lote processes take turns\n"
	"    through a lock file, so the cluster is created once.\n"
	"\n"
	"    PostgreSQL refuses to run as root: as root the cluster runs as the\n"
	"    `postgres` system user (created if missing). When that user cannot\n"
	"    enter the home directory (e.g. under /root or a `mktemp -d` folder),\n"
	"    the cluster lives in /var/lib/lote/clusters/ instead, lote says so\n"
	"    once, and the home's cluster-location file names it.\n"
	"\n"
	"    The output of initdb and pg_ctl goes to pg.log in the home; the\n"
	"    server's log is server.log beside the data directory.\n"
	"\n"
	"    These commands act on the embedded cluster even when\n"
	"    LOTE_DATABASE_URL is set (then other commands do not use it).\n"
	"\n"
	"COMMANDS\n"
	"    status  Print the home, data directory, state, socket, conninfo and\n"
	"            PostgreSQL version.\n"
	"    start   Create and start the cluster if needed; print its conninfo.\n"
	"    stop    Stop the cluster (fast shutdown: sessions are ended).\n"
	"    url     Print the conninfo, starting the cluster if needed, e.g.\n"
	"            psql \"$(lote pg url)\".\n"
	"\n"
	"ENVIRONMENT\n"
	"    LOTE_HOME       the home of the cluster (default ./.lote)\n"
	"    LOTE_PG_BINDIR  where initdb, pg_ctl and postgres are (default:\n"
	"                    an existing cluster's own major version,\n"
	"                    /usr/lib/postgresql/$PG_VERSION/bin, if installed;\n"
	"                    else pg_config --bindir; else the newest\n"
	"                    /usr/lib/postgresql/*/bin)\n"
	"\n"
	"EXIT STATUS\n"
	"    0  success (status: the cluster runs)\n"
	"    1  the operation failed (the message says why)\n"
	"    2  bad command line\n"
	"    3  the cluster could not be created or started\n"
	"    4  status: the cluster is stopped or not created\n";

int cmd_pg(int argc, char **argv)
{
	lote_error err = { 0 };
	const char *sub, *url = getenv("LOTE_DATABASE_URL");
	char *home = NULL, *info = NULL;
	int rc, status = EXIT_OK;

	if (cli_wants_help(argc, argv, usage))
		return EXIT_OK;
	if (argc < 2) {
		cli_error("pg", "missing command: status, start, stop or url (see lote pg --help)");
		return EXIT_USAGE;
	}
	sub = argv[1];
	if (strcmp(sub, "status") != 0 && strcmp(sub, "start") != 0 &&
	    strcmp(sub, "stop") != 0 && strcmp(sub, "url") != 0) {
		cli_error("pg", "unknown command \"%s\" (see lote pg --help)", sub);
		return EXIT_USAGE;
	}
	if (argc > 2) {
		cli_error("pg", "unexpected argument \"%s\" (see lote pg --help)", argv[2]);
		return EXIT_USAGE;
	}
	if (url && *url)
		cli_error("pg", "note: LOTE_DATABASE_URL is set, so other lote commands use that "
		          "server, not this embedded cluster");
	if ((rc = lote__pg_home(&home, &err)) < 0)
		goto fail;
	if (strcmp(sub, "status") == 0) {
		rc = lote__pg_status(home, stdout, &err);
		if (rc == LOTE_ENOTFOUND)
			status = EXIT_NOTFOUND;
		else if (rc < 0)
			goto fail;
	} else if (strcmp(sub, "stop") == 0) {
		if ((rc = lote__pg_stop(home, &err)) < 0)
			goto fail;
		printf("the cluster of %s is stopped\n", home);
	} else {
		/* start and url: the same ensure; start is the verb people look
		 * for, url the one for scripts. */
		if ((rc = lote__pg_ensure(home, &info, &err)) < 0)
			goto fail;
		printf("%s\n", info);
	}
	free(home);
	free(info);
	return status;
fail:
	cli_error("pg", "%s", err.message);
	free(home);
	free(info);
	/* A cluster that cannot be created or started is a database that
	 * cannot be reached. */
	return err.code == LOTE_EINVAL ? EXIT_USAGE : err.code == LOTE_ENOMEM ? EXIT_FAIL
	       : strcmp(sub, "stop") == 0 || strcmp(sub, "status") == 0 ? EXIT_FAIL : EXIT_DB;
}
