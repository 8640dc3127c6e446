/* config.h - lote's settings: one table (name, type, default, bounds, help)
 * drives the config file, the command-line flags, `lote run --help` and
 * docs/config.md. */
#ifndef LOTE_CONFIG_H
#define LOTE_CONFIG_H

#include <stdio.h>

#include "lote.h"

/* The longest line of a config file. */
#define LOTE_CONFIG_LINE_MAX 4096
/* The most handler programs one config may name. */
#define LOTE_CONFIG_HANDLERS_MAX 1000

/* One handler program from --exec / --exec-event or a config section. */
typedef struct lote__handler_spec {
	lote_kind kind;     /* LOTE_COMMAND or LOTE_EVENT */
	char *type;         /* owned */
	char *program;      /* owned; run with /bin/sh -c */
	int64_t timeout_ms; /* 0: the engine's default */
	int max_attempts;   /* 0: the default (3) */
	lote_retry_policy retry; /* zeroes: the default */
	int line;           /* line of its section in the config file; 0 for
	                       a flag */
} lote__handler_spec;

/* Everything `lote run` needs. Strings are owned by the config. */
typedef struct lote__config {
	lote_engine_options engine; /* engine.queues points at queues below;
	                               engine.conninfo is the caller's to set
	                               (borrowed, never freed here) */
	char *database_url;         /* NULL: LOTE_DATABASE_URL or embedded */
	char *log_level;            /* debug|info|warn|error */
	char *queues;               /* NULL: every queue */
	lote__handler_spec *handlers;
	int nhandlers;
	char *file;                 /* the config file loaded, for messages */
} lote__config;

/* One setting of the table, described for flags, --help and docs. */
typedef struct lote__setting_info {
	const char *name;  /* file key */
	char flag[48];     /* the flag: name with '_' as '-', without the "--" */
	const char *type;  /* "int", "duration", "string" or "bool" */
	const char *arg;   /* placeholder in --help: N, DURATION, URL… (NULL
	                      for bools, which are --name / --no-name) */
	const char *def;   /* default as written in a file; NULL: unset */
	const char *help;  /* what it does, one or two sentences */
	char range[64];    /* allowed values, e.g. "1..256" */
} lote__setting_info;

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

/* Adds a handler from "TYPE=PROGRAM" (the --exec / --exec-event form).
 * Flags override the file: the first flag for a type replaces the
 * handlers the config file gave that type. A command type takes one
 * handler; an event type takes several. */
LOTE_MUSTCHECK int lote__config_add_handler(lote__config *cfg, lote_kind kind,
                                            const char *spec, lote_error *err);

/* How many settings the table has, and the i-th one (0-based). */
int lote__config_setting_count(void);
void lote__config_setting(int i, lote__setting_info *ret);

/* Prints the settings table (name, default, help) for --help. */
void lote__config_print_help(FILE *out);

/* Prints the settings table as the Markdown table of docs/config.md. */
void lote__config_print_markdown(FILE *out);

#endif
