/* cli.h - what the subcommands of `lote` share. Every cmd_* returns the
 * process exit status (see the EXIT STATUS section of `lote --help`). */
#ifndef LOTE_CLI_H
#define LOTE_CLI_H

#include <stdio.h>

#include "lote.h"

/* Exit statuses that mean something (documented in lote --help). */
enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,   /* the operation failed (message on stderr) */
	EXIT_USAGE = 2,  /* bad command line */
	EXIT_DB = 3,     /* cannot reach the database, or schema problem */
	EXIT_NOTFOUND = 4,
};

int cmd_migrate(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_pg(int argc, char **argv);
int cmd_enqueue(int argc, char **argv);
int cmd_emit(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_archive(int argc, char **argv);
int cmd_retention(int argc, char **argv);
int cmd_schedules(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_web(int argc, char **argv);
int cmd_tokens(int argc, char **argv);
int cmd_events(int argc, char **argv);
int cmd_commands(int argc, char **argv);
int cmd_batches(int argc, char **argv);
int cmd_workers(int argc, char **argv);

/* Prints "lote CMD: message" to stderr. */
void cli_error(const char *cmd, const char *fmt, ...) LOTE_PRINTF(2, 3);
/* Maps a lote code to an exit status. */
int cli_exit_for(int code);
/* Whether argv has -h/--help among its options; then prints usage. */
int cli_wants_help(int argc, char **argv, const char *usage);

/* Parses the options of a command that takes only --json and --help (and
 * no arguments). Returns -1 to go on, or the exit status to return at once
 * (EXIT_OK after printing usage for --help). */
int cli_json_only(const char *cmd, int argc, char **argv, const char *usage, bool *ret_json);

/* Parses all of s as a decimal integer into *ret: digits with an optional
 * leading '-', nothing before or after them. Returns 0, CLI_NUM_BAD when s
 * is not such an integer, CLI_NUM_RANGE when it is one outside int64_t
 * (strtoll would have clamped it). */
enum { CLI_NUM_BAD = -1, CLI_NUM_RANGE = -2 };
int cli_parse_int64(const char *s, int64_t *ret);

/* Parses s as an id (1 to INT64_MAX) into *ret; else prints why, as
 * "lote CMD: ...", and returns -1. */
int cli_parse_id(const char *cmd, const char *s, int64_t *ret);

/* Whether s is valid UTF-8 (no overlong forms, surrogates or code points
 * past U+10FFFF); if not, *ret_offset gets the offset of the first bad
 * byte. */
bool cli_valid_utf8(const char *s, size_t *ret_offset);

/* Prints v (borrowed) as indented JSON and a newline on stdout: what every
 * --json option prints. */
void cli_print_json(const json_t *v);

/* Text output's one form of a duration: milliseconds with at most 3
 * decimals and the unit, "6.208 ms", "12 ms". Returns buf. */
const char *cli_format_ms(double ms, char *buf, size_t len);

/* Resolves the database (LOTE_DATABASE_URL or the embedded cluster) and
 * connects; prints the error and returns NULL on failure. The connection is
 * caller-owned. If ret_conninfo is not NULL it gets the conninfo
 * (malloc'd). */
PGconn *cli_connect(const char *cmd, char **ret_conninfo);
/* Like cli_connect, and fails with a clear message when the schema is not
 * migrated to this build's version. */
PGconn *cli_connect_ready(const char *cmd, char **ret_conninfo);

#endif
