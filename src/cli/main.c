/* main.c - `lote`: one binary, one subcommand per job. Parses nothing but
 * the subcommand name; each cmd_* owns its options. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "migrate", cmd_migrate, "create or upgrade the lote schema" },
	{ "run", cmd_run, "run the daemon: supervisor and worker processes" },
	{ "pg", cmd_pg, "the embedded PostgreSQL cluster: status, start, stop, url" },
	{ "enqueue", cmd_enqueue, "enqueue a command" },
	{ "emit", cmd_emit, "record a domain event" },
	{ "status", cmd_status, "queues, workers, and work no daemon handles" },
	{ "bench", cmd_bench, "measure enqueue, drain and latency" },
	{ "archive", cmd_archive, "move finished work to the archive now" },
	{ "retention", cmd_retention, "drop archived work past its retention; show, set it" },
	{ "schedules", cmd_schedules, "periodic commands (cron) and built-in routines: ls, add, rm" },
	{ "stats", cmd_stats, "sizes of the hot tables and the archive" },
	{ "web", cmd_web, "serve the dashboard and the JSON API" },
	{ "events", cmd_events, "list and show events" },
	{ "commands", cmd_commands, "list, show, reprocess and cancel commands" },
	{ "batches", cmd_batches, "list, show and cancel batches" },
	{ "workers", cmd_workers, "worker processes and what they run" },
	{ "tokens", cmd_tokens, "API tokens: add, ls, revoke" },
};

static void usage(FILE *out)
{
	fputs("NAME\n"
	      "    lote - durable asynchronous processing engine for PostgreSQL\n"
	      "\n"
	      "SYNOPSIS\n"
	      "    lote COMMAND [OPTIONS] [ARGS]\n"
	      "    lote --help | --version\n"
	      "    lote COMMAND --help\n"
	      "\n"
	      "COMMANDS\n", out);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "    %-10s %s\n", commands[i].name, commands[i].summary);
	fputs("\n"
	      "DATABASE\n"
	      "    LOTE_DATABASE_URL (a libpq URI or key=value conninfo) names the\n"
	      "    PostgreSQL to use. Without it lote runs its own embedded cluster\n"
	      "    under ./.lote (or $LOTE_HOME), created and started on demand; see\n"
	      "    `lote pg --help`.\n"
	      "\n"
	      "DURATIONS\n"
	      "    Written 500ms, 3s, 5m, 1h or 2d.\n"
	      "\n"
	      "EXIT STATUS\n"
	      "    0  success\n"
	      "    1  the operation failed (the message says why)\n"
	      "    2  bad command line or bad input\n"
	      "    3  the database cannot be reached, or its schema is missing or newer\n"
	      "    4  not found\n", out);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("lote %s (schema %d)\n", LOTE_VERSION, lote_schema_version());
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "lote: unknown command \"%s\" (see lote --help)\n", argv[1]);
	return EXIT_USAGE;
}
