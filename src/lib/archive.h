/* archive.h - moving finished work to the archive tables, and retention
 * (sql/003_archive.sql holds the tables and the per-chunk functions; this
 * module loops over chunks, each in its own transaction, under a time
 * budget). Used by the scheduler (the daemon) and by `lote archive` /
 * `lote retention`. */
#ifndef LOTE_ARCHIVE_H
#define LOTE_ARCHIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "lote.h"

/* What an archive run moved (or, dry, would move). */
typedef struct lote__archive_stats {
	int64_t events;
	int64_t commands; /* standalone and batch members */
	int64_t batches;
	int chunks;                   /* transactions committed */
	bool more;                    /* stopped by the budget with work left */
} lote__archive_stats;

/* Archive-run parameters; zero means "from lote.archive_settings". */
typedef struct lote__archive_opts {
	int64_t older_than_ms; /* < 0: settings' archive_after; 0: everything finished */
	int chunk_rows;        /* 0: settings' chunk_rows */
	int64_t budget_ms;     /* 0: until nothing is left */
	bool dry_run;          /* count only, move nothing */
} lote__archive_opts;

/* Sets the defaults: older_than_ms = -1 (settings), the rest 0. */
void lote__archive_opts_init(lote__archive_opts *opts);

/* Archives finished events, commands and complete batches with their
 * members (each row with its attempts history), chunk by chunk, each chunk one transaction (a crash loses and
 * duplicates nothing). conn is borrowed, idle, not in a transaction.
 * Fills *ret_stats (may be NULL) also on failure, with what was done. */
LOTE_MUSTCHECK int lote__archive_run(PGconn *conn, const lote__archive_opts *opts,
                                     lote__archive_stats *ret_stats, lote_error *err);

/* Creates the archive partitions (whole UTC weeks) of yesterday, today
 * and the configured days ahead that are missing. Returns how many tables
 * it created. */
LOTE_MUSTCHECK int lote__archive_ensure_ahead(PGconn *conn, lote_error *err);

/* One partition retention dropped (or would drop). */
typedef struct lote__retention_item {
	char archive[16];   /* events | commands | batches | attempts */
	char day[11];       /* the week's Monday, YYYY-MM-DD (UTC) */
	char status[16];
	char partition[80];
	int64_t rows_estimate;
	int64_t bytes;
	bool dropped;
} lote__retention_item;

/* Drops every status partition past its retention (lote.retention_due),
 * each in its own short transaction with a lock timeout, so it never
 * queues behind long dashboard queries for long. dry_run only lists. On
 * success *ret_items (malloc'd, caller frees; may be NULL when none) and
 * *ret_n get what was dropped; a partition it could not lock in time is
 * listed with dropped = false and left for the next run. */
LOTE_MUSTCHECK int lote__retention_run(PGconn *conn, bool dry_run,
                                       lote__retention_item **ret_items, int *ret_n,
                                       lote_error *err);

#endif
