/* cmd_archive.c - `lote archive`: move finished work to the archive now. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "cli.h"
#include "db.h"

static const char usage[] =
	"NAME\n"
	"    lote archive - move finished work from the hot tables to the archive\n"
	"\n"
	"SYNOPSIS\n"
	"    lote archive [--older-than DURATION] [--chunk N] [--dry-run] [--json]\n"
	"\n"
	"DESCRIPTION\n"
	"    Moves finished events and commands (success, error, cancelled) and\n"
	"    complete batches with all their members from lote.events,\n"
	"    lote.commands and lote.batches to lote.events_archive,\n"
	"    lote.commands_archive and lote.batches_archive, in chunks, each chunk\n"
	"    one transaction (one DELETE … RETURNING feeding one INSERT), so an\n"
	"    interrupted run loses and duplicates nothing: run it again.\n"
	"\n"
	"    Members of a batch move with their batch, once it is complete\n"
	"    (success, cancelled) and all of them are finished. A batch in error\n"
	"    stays hot, with its members, until it is repaired, cancelled, or\n"
	"    older than error_batch_after (lote.archive_settings, default 7 days);\n"
	"    archived, it is final, and its follow-up is cancelled.\n"
	"\n"
	"    The daemon does this continuously (schedule lote.archive, every\n"
	"    minute, and again at once while a backlog remains); this command is\n"
	"    for operators and scripts. See docs/archive.md.\n"
	"\n"
	"OPTIONS\n"
	"    --older-than DURATION   only work finished longer ago than this\n"
	"                            (default: archive_after in\n"
	"                            lote.archive_settings, 5m); 0 archives\n"
	"                            everything finished now\n"
	"    --chunk N               rows per transaction (default: chunk_rows,\n"
	"                            5000)\n"
	"    --dry-run               count what would move; move nothing\n"
	"    --json                  {\"dry_run\": …, \"events\": N, \"commands\": N,\n"
	"                            \"batches\": N, \"chunks\": N, \"seconds\": S}\n"
	"\n"
	"EXIT STATUS\n"
	"    0 done (also when there was nothing to move); 1 a chunk failed (what\n"
	"    was moved before stays moved); 2 bad command line; 3 database\n"
	"    unreachable or not migrated.\n";

int cmd_archive(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "older-than", required_argument, NULL, 'o' },
		{ "chunk", required_argument, NULL, 'c' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	lote__archive_opts o;
	lote__archive_stats st = { 0 };
	lote_error err = { 0 };
	bool as_json = false;
	PGconn *conn;
	int64_t t0, took_ms;
	double secs;
	int c, rc;

	lote__archive_opts_init(&o);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage, stdout);
			return EXIT_OK;
		case 'o':
			if (lote_duration_parse(optarg, &o.older_than_ms, &err) < 0) {
				cli_error("archive", "--older-than: %s", err.message);
				return EXIT_USAGE;
			}
			break;
		case 'c': {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (*end || n < 1 || n > 100000) {
				cli_error("archive", "--chunk must be a number of rows from 1 to 100000, got \"%s\"", optarg);
				return EXIT_USAGE;
			}
			o.chunk_rows = (int)n;
			break;
		}
		case 'n':
			o.dry_run = true;
			break;
		case 'j':
			as_json = true;
			break;
		default:
			fputs("see lote archive --help\n", stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		cli_error("archive", "unexpected argument \"%s\"", argv[optind]);
		return EXIT_USAGE;
	}
	conn = cli_connect_ready("archive", NULL);
	if (!conn)
		return EXIT_DB;
	t0 = lote__mono_ms();
	rc = lote__archive_run(conn, &o, &st, &err);
	took_ms = lote__mono_ms() - t0;
	secs = (double)took_ms / 1000.0;
	PQfinish(conn);
	if (as_json) {
		json_t *j = json_pack("{s:b, s:I, s:I, s:I, s:i, s:f}", "dry_run", o.dry_run,
		                      "events", (json_int_t)st.events, "commands", (json_int_t)st.commands,
		                      "batches", (json_int_t)st.batches, "chunks", st.chunks,
		                      "seconds", secs);
		char *s = json_dumps(j, JSON_COMPACT);
		puts(s);
		free(s);
		json_decref(j);
	} else {
		char took[64];
		printf("%s %lld event%s, %lld command%s, %lld batch%s",
		       o.dry_run ? "would archive" : "archived", (long long)st.events,
		       st.events == 1 ? "" : "s", (long long)st.commands, st.commands == 1 ? "" : "s",
		       (long long)st.batches, st.batches == 1 ? "" : "es");
		if (!o.dry_run)
			printf(" in %d chunk%s, %s", st.chunks, st.chunks == 1 ? "" : "s",
			       cli_format_ms((double)took_ms, took, sizeof(took)));
		putchar('\n');
	}
	if (rc < 0) {
		cli_error("archive", "%s", err.message);
		return cli_exit_for(rc);
	}
	return EXIT_OK;
}
