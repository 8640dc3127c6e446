/* config.h - lote's settings: one table (name, type, default, bounds, help)
 * drives the config file, the command-line flags, `lote run --help` and
 * docs/config.md. */
#ifndef LOTE_CONFIG_H
#define LOTE_CONFIG_H

#include <stdio.h>

#include "lote.h"

/* One handler program from --exec / --exec-event or a config section. */
typedef struct lote__handler_spec {
	lote_kind kind;     /* LOTE_COMMAND or LOTE_EVENT */
	char *type;         /* owned */
	char *program;      /* owned; run with /bin/sh -c */
	int64_t timeout_ms; /* 0: the engine's default */
} lote__handler_spec;

/* Everything `lote run` needs. Strings are owned by the config. */
typedef struct lote__config {
	lote_engine_options engine; /* engine.conninfo/queues/name owned */
	char *database_url;         /* NULL: LOTE_DATABASE_URL or embedded */
	char *log_level;            /* debug|info|warn|error */
	lote__handler_spec *handlers;
	int nhandlers;
} lote__config;

/* Fills the defaults. */
void lote__config_init(lote__config *cfg);
/* Frees what cfg owns (cfg itself is the caller's). */
void lote__config_done(lote__config *cfg);

/* Loads an INI file (format in docs/config.md). Unknown keys, bad values
 * and unreadable files are errors naming the file and line. */
LOTE_MUSTCHECK int lote__config_load_file(lote__config *cfg, const char *path,
                                          lote_error *err);

/* Sets one setting of the table by name ("workers", "poll", …) from text,
 * as a flag or a file would. */
LOTE_MUSTCHECK int lote__config_set(lote__config *cfg, const char *name,
                                    const char *value, lote_error *err);

/* Adds a handler from "TYPE=PROGRAM" (the --exec / --exec-event form). */
LOTE_MUSTCHECK int lote__config_add_handler(lote__config *cfg, lote_kind kind,
                                            const char *spec, lote_error *err);

/* Prints the settings table (name, default, help) for --help. */
void lote__config_print_help(FILE *out);

#endif
