/* cmd_web.c - `lote web`: the dashboard and JSON API, standalone. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "http.h"
#include "log.h"

static const char usage[] =
	"NAME\n"
	"    lote web - serve the dashboard and the JSON API\n"
	"\n"
	"SYNOPSIS\n"
	"    lote web [--http ADDR:PORT] [--log-level LEVEL]\n"
	"\n"
	"DESCRIPTION\n"
	"    Serves the dashboard at / and the JSON API under /api/v1 (see\n"
	"    docs/api.md) until SIGTERM or SIGINT. Every API call needs a token\n"
	"    (Authorization: Bearer TOKEN), on loopback too; create one with\n"
	"    `lote tokens add --role viewer|operator|admin`. The dashboard page\n"
	"    loads without one and asks for it; http://HOST:PORT/#token=TOKEN\n"
	"    logs in directly. `lote run --http ADDR:PORT` serves the same from\n"
	"    the daemon.\n"
	"\n"
	"    On start it prints \"lote web: listening on http://ADDR:PORT/\" on\n"
	"    stderr (with the port picked when PORT is 0).\n"
	"\n"
	"OPTIONS\n"
	"    --http ADDR:PORT, --listen ADDR:PORT\n"
	"        Where to listen, default 127.0.0.1:8080. Plain HTTP: put a TLS\n"
	"        proxy in front of any address other than loopback.\n"
	"    --log-level LEVEL\n"
	"        debug (logs every request), info, warn or error; default info.\n"
	"    -h, --help\n"
	"        Show this text.\n"
	"\n"
	"EXIT STATUS\n"
	"    0  stopped by SIGTERM or SIGINT\n"
	"    1  the address is in use or cannot be bound\n"
	"    2  bad command line\n"
	"    3  the database cannot be reached, or its schema is not migrated\n";

int cmd_web(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "http", required_argument, NULL, 'l' },
		{ "listen", required_argument, NULL, 'l' },
		{ "log-level", required_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *addr = "127.0.0.1:8080";
	lote_error err = { 0 };
	char *conninfo = NULL;
	PGconn *conn;
	int c, fd, port, status = EXIT_OK;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage, stdout);
			return EXIT_OK;
		case 'l':
			addr = optarg;
			break;
		case 'v':
			if (lote__log_set_level(optarg) < 0) {
				cli_error("web", "--log-level: \"%s\" is not debug, info, warn or error", optarg);
				return EXIT_USAGE;
			}
			break;
		case ':':
			cli_error("web", "%s needs a value (see lote web --help)", argv[optind - 1]);
			return EXIT_USAGE;
		default:
			cli_error("web", "unknown option \"%s\" (see lote web --help)", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		cli_error("web", "unexpected argument \"%s\"", argv[optind]);
		return EXIT_USAGE;
	}
	conn = cli_connect_ready("web", &conninfo);
	if (!conn)
		return EXIT_DB;
	PQfinish(conn);
	if (lote__http_listen(addr, &fd, &port, &err) < 0) {
		cli_error("web", "%s", err.message);
		free(conninfo);
		return err.code == LOTE_EINVAL ? EXIT_USAGE : EXIT_FAIL;
	}
	{
		char shown[300];
		const char *colon = strrchr(addr, ':');
		snprintf(shown, sizeof(shown), "%.*s:%d", (int)(colon - addr), addr, port);
		fprintf(stderr, "lote web: listening on http://%s/\n", shown);
	}
	lote__log_set_context("web");
	if (lote__http_serve(fd, conninfo, &err) < 0) {
		cli_error("web", "%s", err.message);
		status = EXIT_FAIL;
	}
	close(fd);
	free(conninfo);
	return status;
}
