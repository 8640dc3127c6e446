/* cmd_enqueue.c - `lote enqueue` and `lote emit`: the SQL API from the shell,
 * each call one transaction. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "db.h"

/* The largest JSON read from stdin; lote.max_payload_bytes (1 MiB by
 * default) is checked by the database, this only bounds memory. */
#define STDIN_MAX (64 * 1024 * 1024)

static const char enqueue_usage[] =
	"NAME\n"
	"    lote enqueue - enqueue a command\n"
	"\n"
	"SYNOPSIS\n"
	"    lote enqueue [OPTIONS] TYPE [JSON | -]\n"
	"\n"
	"DESCRIPTION\n"
	"    Calls lote.enqueue(TYPE, JSON, institution, options) in one\n"
	"    transaction and prints the new command's id. JSON is the payload, a\n"
	"    JSON object (default {}); - reads it from standard input.\n"
	"\n"
	"OPTIONS\n"
	"    --institution UUID   the tenant (default: the nil UUID, system work)\n"
	"    --queue NAME         queue (default: default)\n"
	"    --priority N         lower runs first (default 0)\n"
	"    --max-attempts N     attempts before it ends in error (default: its\n"
	"                         type's policy in lote.policies, else 3)\n"
	"    --delay DURATION     run no earlier than now + DURATION (500ms, 3s, 5m)\n"
	"    --run-at TIMESTAMP   run no earlier than this ISO 8601 time\n"
	"    --json               print {\"id\": N} instead of the bare id\n"
	"\n"
	"EXIT STATUS\n"
	"    0 enqueued; 2 invalid input (the message says what); 3 database\n"
	"    unreachable or not migrated; 1 other failure.\n";

static const char emit_usage[] =
	"NAME\n"
	"    lote emit - record a domain event\n"
	"\n"
	"SYNOPSIS\n"
	"    lote emit [OPTIONS] TYPE ENTITY_TYPE ENTITY_ID [JSON | -]\n"
	"\n"
	"DESCRIPTION\n"
	"    Calls lote.emit(institution, ENTITY_TYPE, ENTITY_ID, TYPE, JSON) in\n"
	"    one transaction and prints the new event's id. Applications call\n"
	"    lote.emit inside their own transactions; this is for scripts and\n"
	"    trying things out.\n"
	"\n"
	"OPTIONS\n"
	"    --institution UUID   the tenant (default: the nil UUID, system work)\n"
	"    --json               print {\"id\": N} instead of the bare id\n"
	"\n"
	"EXIT STATUS\n"
	"    As for lote enqueue.\n";

/* Reads all of standard input into *ret (malloc'd, NUL-terminated) and
 * its length into *ret_len. Returns 0, or -1 after printing the error. */
static int read_stdin(const char *cmd, char **ret, size_t *ret_len)
{
	size_t len = 0, cap = 65536;
	char *text = malloc(cap);

	while (text) {
		size_t got = fread(text + len, 1, cap - len - 1, stdin);
		len += got;
		if (got == 0)
			break;
		if (len + 1 == cap) {
			if (cap >= STDIN_MAX) {
				cli_error(cmd, "payload on standard input is over %d bytes", STDIN_MAX);
				free(text);
				return -1;
			}
			char *g = realloc(text, cap * 2);
			if (!g) {
				free(text);
				text = NULL;
				break;
			}
			text = g;
			cap *= 2;
		}
	}
	if (!text) {
		cli_error(cmd, "out of memory");
		return -1;
	}
	if (ferror(stdin)) {
		cli_error(cmd, "cannot read standard input");
		free(text);
		return -1;
	}
	text[len] = '\0';
	*ret = text;
	*ret_len = len;
	return 0;
}

/* Reads the payload argument: inline JSON, "-" for stdin, or NULL for {}.
 * Checks it is a JSON object so a typo gets a precise message here, and
 * that all of it is: a NUL byte (from stdin) would cut the text short.
 * Returns the text as given (malloc'd), for jsonb to keep its numbers as
 * written (jansson would print 0.1 back as 0.10000000000000001), or NULL
 * after printing the error. */
static char *read_payload(const char *cmd, const char *arg)
{
	json_error_t jerr;
	json_t *v;
	char *text = NULL, *nul;
	size_t len;

	if (!arg)
		return strdup("{}");
	if (strcmp(arg, "-") == 0) {
		if (read_stdin(cmd, &text, &len) < 0)
			return NULL;
		if ((nul = memchr(text, '\0', len))) {
			cli_error(cmd, "the payload contains a NUL byte at offset %zu", (size_t)(nul - text));
			free(text);
			return NULL;
		}
		arg = text;
	} else {
		len = strlen(arg);
	}
	v = json_loadb(arg, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (!v) {
		cli_error(cmd, "invalid JSON payload: %s (line %d, column %d)", jerr.text,
		          jerr.line, jerr.column);
		free(text);
		return NULL;
	}
	if (!json_is_object(v)) {
		cli_error(cmd, "the payload must be a JSON object, like {\"key\": \"value\"}");
		json_decref(v);
		free(text);
		return NULL;
	}
	json_decref(v);
	return text ? text : strdup(arg);
}

/* Calls the SQL function and prints the id. */
static int call(const char *cmd, const char *sql, int nparams, const char **params,
                bool as_json)
{
	lote_error err = { 0 };
	char *id = NULL;
	PGconn *conn = cli_connect_ready(cmd, NULL);
	int rc;

	if (!conn)
		return EXIT_DB;
	rc = lote__db_value(conn, sql, nparams, params, &id, &err);
	PQfinish(conn);
	if (rc < 0) {
		cli_error(cmd, "%s", err.message);
		/* SQLSTATE class 22 (data exception) and 54 (limit exceeded):
		 * the input was at fault. */
		if (strncmp(err.sqlstate, "22", 2) == 0 || strncmp(err.sqlstate, "54", 2) == 0)
			return EXIT_USAGE;
		return cli_exit_for(rc);
	}
	if (as_json)
		printf("{\"id\": %s}\n", id);
	else
		printf("%s\n", id);
	free(id);
	return EXIT_OK;
}

enum { OPT_INSTITUTION = 256, OPT_QUEUE, OPT_PRIORITY, OPT_MAX_ATTEMPTS, OPT_DELAY,
       OPT_RUN_AT, OPT_JSON };

int cmd_enqueue(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "institution", required_argument, NULL, OPT_INSTITUTION },
		{ "queue", required_argument, NULL, OPT_QUEUE },
		{ "priority", required_argument, NULL, OPT_PRIORITY },
		{ "max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS },
		{ "delay", required_argument, NULL, OPT_DELAY },
		{ "run-at", required_argument, NULL, OPT_RUN_AT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *institution = NULL;
	json_t *opts = json_object();
	bool as_json = false;
	char *payload = NULL, *opts_text = NULL;
	int c, rc = EXIT_USAGE;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		lote_error err = { 0 };
		int64_t ms, n;

		switch (c) {
		case 'h':
			fputs(enqueue_usage, stdout);
			rc = EXIT_OK;
			goto out;
		case OPT_INSTITUTION: institution = optarg; break;
		case OPT_QUEUE: json_object_set_new(opts, "queue", json_string(optarg)); break;
		case OPT_PRIORITY:
		case OPT_MAX_ATTEMPTS:
			switch (cli_parse_int64(optarg, &n)) {
			case 0:
				break;
			case CLI_NUM_RANGE:
				cli_error("enqueue", "--%s: %s is out of range",
				          c == OPT_PRIORITY ? "priority" : "max-attempts", optarg);
				goto out;
			default:
				cli_error("enqueue", "--%s wants an integer, got \"%s\"",
				          c == OPT_PRIORITY ? "priority" : "max-attempts", optarg);
				goto out;
			}
			json_object_set_new(opts, c == OPT_PRIORITY ? "priority" : "max_attempts",
			                    json_integer(n));
			break;
		case OPT_DELAY:
			if (lote_duration_parse(optarg, &ms, &err) < 0) {
				cli_error("enqueue", "--delay: %s", err.message);
				goto out;
			}
			json_object_set_new(opts, "delay_ms", json_integer(ms));
			break;
		case OPT_RUN_AT: json_object_set_new(opts, "run_at", json_string(optarg)); break;
		case OPT_JSON: as_json = true; break;
		default:
			fputs("see lote enqueue --help\n", stderr);
			goto out;
		}
	}
	if (optind >= argc || argc - optind > 2) {
		cli_error("enqueue", "want TYPE and an optional JSON payload (see lote enqueue --help)");
		goto out;
	}
	payload = read_payload("enqueue", optind + 1 < argc ? argv[optind + 1] : NULL);
	if (!payload)
		goto out;
	opts_text = json_dumps(opts, JSON_COMPACT);
	{
		const char *params[4] = { argv[optind], payload, institution, opts_text };
		rc = call("enqueue", "SELECT lote.enqueue($1, $2::jsonb, $3::uuid, $4::jsonb)",
		          4, params, as_json);
	}
out:
	json_decref(opts);
	free(payload);
	free(opts_text);
	return rc;
}

int cmd_emit(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "institution", required_argument, NULL, OPT_INSTITUTION },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *institution = "00000000-0000-0000-0000-000000000000";
	bool as_json = false;
	char *payload;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(emit_usage, stdout);
			return EXIT_OK;
		case OPT_INSTITUTION: institution = optarg; break;
		case OPT_JSON: as_json = true; break;
		default:
			fputs("see lote emit --help\n", stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind < 3 || argc - optind > 4) {
		cli_error("emit", "want TYPE ENTITY_TYPE ENTITY_ID and an optional JSON payload (see lote emit --help)");
		return EXIT_USAGE;
	}
	payload = read_payload("emit", optind + 3 < argc ? argv[optind + 3] : NULL);
	if (!payload)
		return EXIT_USAGE;
	const char *params[5] = { institution, argv[optind + 1], argv[optind + 2],
	                          argv[optind], payload };
	rc = call("emit", "SELECT lote.emit($1::uuid, $2, $3, $4, $5::jsonb)", 5, params, as_json);
	free(payload);
	return rc;
}
