/* pgembed.h - the embedded PostgreSQL cluster lote runs when no
 * LOTE_DATABASE_URL is set: initdb on first use under .lote/ (or LOTE_HOME),
 * started on demand, as the `postgres` system user when lote runs as root. */
#ifndef LOTE_PGEMBED_H
#define LOTE_PGEMBED_H

#include <stdio.h>

#include "lote.h"

/* The database to use: LOTE_DATABASE_URL when set (any libpq URI or
 * conninfo), else the embedded cluster, initialised and started if needed.
 * *ret_conninfo is malloc'd (caller frees). */
LOTE_MUSTCHECK int lote__db_resolve(char **ret_conninfo, lote_error *err);

/* The embedded cluster's home: LOTE_HOME, else ./.lote (malloc'd). */
LOTE_MUSTCHECK int lote__pg_home(char **ret_home, lote_error *err);

/* Makes sure the cluster of home exists and runs (two processes calling at
 * once never both initdb); *ret_conninfo (malloc'd) connects to its `lote`
 * database. When, as root, it has to put a new cluster outside home (the
 * postgres user cannot enter home), it prints one line to stderr saying
 * where. */
LOTE_MUSTCHECK int lote__pg_ensure(const char *home, char **ret_conninfo,
                                   lote_error *err);

/* Writes a human status of the cluster of home to out; returns 0 when it
 * runs, LOTE_ENOTFOUND when it does not exist or is stopped (still
 * printing why). */
int lote__pg_status(const char *home, FILE *out, lote_error *err);

/* Stops the cluster of home (fast shutdown); 0 if it was not running. */
LOTE_MUSTCHECK int lote__pg_stop(const char *home, lote_error *err);

#endif
