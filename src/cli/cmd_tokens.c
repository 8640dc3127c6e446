/* cmd_tokens.c - `lote tokens add|ls|revoke`: the API's bearer tokens. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "cli.h"

static const char usage[] =
	"NAME\n"
	"    lote tokens - bearer tokens of the JSON API and the dashboard\n"
	"\n"
	"SYNOPSIS\n"
	"    lote tokens add --role viewer|operator|admin [--institution UUID]\n"
	"                    [--name NAME]\n"
	"    lote tokens ls [--json]\n"
	"    lote tokens revoke ID\n"
	"\n"
	"DESCRIPTION\n"
	"    add creates a token and prints it on its last line; it is shown only\n"
	"    this once (the database keeps a SHA-256 of it). A viewer reads; an\n"
	"    operator also reprocesses and cancels; an admin can do what an\n"
	"    operator can. Every token sees the audit log of its scope. With\n"
	"    --institution the token sees only that institution's events,\n"
	"    commands, batches, counts and audit log; other ids answer 404.\n"
	"\n"
	"    ls lists tokens (never the tokens themselves). revoke stops a token\n"
	"    at once. create is an alias of add, list of ls.\n"
	"\n"
	"    The CLI itself needs no token: it works on the database directly.\n"
	"\n"
	"EXIT STATUS\n"
	"    0 done; 2 bad command line; 3 database unreachable or not migrated;\n"
	"    4 no such token.\n";

/* Prints the library's error once prefixed: its messages from the
 * database start with "tokens: " already. Returns the exit status: a
 * data exception (SQLSTATE class 22) is bad input. */
static int fail(int rc, const lote_error *err)
{
	const char *msg = err->message;

	if (strncmp(msg, "tokens: ", 8) == 0)
		msg += 8;
	cli_error("tokens", "%s", msg);
	if (strncmp(err->sqlstate, "22", 2) == 0)
		return EXIT_USAGE;
	return cli_exit_for(rc);
}

static int add(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "role", required_argument, NULL, 'r' },
		{ "institution", required_argument, NULL, 'i' },
		{ "name", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *role = NULL, *inst = NULL, *name = "";
	lote_error err = { 0 };
	char *token = NULL;
	int64_t id = 0;
	size_t bad;
	PGconn *conn;
	int c, rc;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		switch (c) {
		case 'r': role = optarg; break;
		case 'i': inst = optarg; break;
		case 'n': name = optarg; break;
		case 'h':
			fputs(usage, stdout);
			return EXIT_OK;
		default:
			cli_error("tokens", "bad option \"%s\" (see lote tokens --help)", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (!role || optind < argc) {
		cli_error("tokens", "want: lote tokens add --role viewer|operator|admin [--institution UUID]");
		return EXIT_USAGE;
	}
	if (!cli_valid_utf8(name, &bad)) {
		cli_error("tokens", "--name is not valid UTF-8 (at byte %zu: 0x%02x)", bad,
		          (unsigned char)name[bad]);
		return EXIT_USAGE;
	}
	if (!(conn = cli_connect_ready("tokens", NULL)))
		return EXIT_DB;
	rc = lote__api_token_add(conn, name, role, inst, &id, &token, &err);
	PQfinish(conn);
	if (rc < 0)
		return fail(rc, &err);
	printf("token %lld: role %s, %s%s\n%s\n", (long long)id, role,
	       inst && *inst ? "institution " : "every institution", inst && *inst ? inst : "", token);
	free(token);
	return EXIT_OK;
}

int cmd_tokens(int argc, char **argv)
{
	lote_error err = { 0 };
	PGconn *conn;
	int rc;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	if (strcmp(argv[1], "add") == 0 || strcmp(argv[1], "create") == 0)
		return add(argc - 1, argv + 1);
	if (strcmp(argv[1], "ls") == 0 || strcmp(argv[1], "list") == 0) {
		bool json;
		json_t *v = NULL, *t;
		size_t i;
		if ((rc = cli_json_only("tokens", argc - 1, argv + 1, usage, &json)) >= 0)
			return rc;
		if (!(conn = cli_connect_ready("tokens", NULL)))
			return EXIT_DB;
		rc = lote__api_token_list(conn, &v, &err);
		PQfinish(conn);
		if (rc < 0)
			return fail(rc, &err);
		if (json) {
			cli_print_json(v);
		} else {
			printf("%-5s  %-8s  %-36s  %-20s  %s\n", "ID", "ROLE", "INSTITUTION", "NAME", "STATE");
			json_array_foreach(v, i, t) {
				printf("%-5lld  %-8s  %-36s  %-20s  %s\n",
				       (long long)json_integer_value(json_object_get(t, "id")),
				       json_string_value(json_object_get(t, "role")),
				       json_is_string(json_object_get(t, "institution_id"))
				           ? json_string_value(json_object_get(t, "institution_id")) : "(all)",
				       json_string_value(json_object_get(t, "name")),
				       json_is_null(json_object_get(t, "revoked_at")) ? "active" : "revoked");
			}
		}
		json_decref(v);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "revoke") == 0) {
		int64_t id;
		if (argc != 3) {
			cli_error("tokens", "want: lote tokens revoke ID");
			return EXIT_USAGE;
		}
		if (cli_parse_id("tokens", argv[2], &id) < 0)
			return EXIT_USAGE;
		if (!(conn = cli_connect_ready("tokens", NULL)))
			return EXIT_DB;
		rc = lote__api_token_revoke(conn, id, &err);
		PQfinish(conn);
		if (rc < 0)
			return fail(rc, &err);
		printf("token %lld revoked\n", (long long)id);
		return EXIT_OK;
	}
	cli_error("tokens", "unknown subcommand \"%s\" (add, ls, revoke)", argv[1]);
	return EXIT_USAGE;
}
