/* schedule.h - scheduled routines (archive, retention, users' periodic
 * commands): run by every daemon's supervisor, coordinated through the
 * database so each tick runs exactly once across all daemons. */
#ifndef LOTE_SCHEDULE_H
#define LOTE_SCHEDULE_H

#include "lote.h"

/* Called by the supervisor's upkeep (every couple of seconds) on its own
 * connection (borrowed, idle, not in a transaction). Runs whatever is due.
 * Must return quickly or do its work in bounded chunks: the supervisor
 * does nothing else meanwhile.
 *
 * Each due row of lote.schedules is claimed with FOR UPDATE SKIP LOCKED in
 * a transaction that advances next_run_at: a command schedule's commands
 * are enqueued in that same transaction (exactly once per tick); a
 * routine's claim also takes a lease (locked_until) and the routine runs
 * after the commit, in bounded chunks, so a daemon killed mid-routine
 * only delays it. Returns the number of schedules it ran. */
LOTE_MUSTCHECK int lote__schedule_tick(PGconn *conn, lote_error *err);

/* Computes next_run_at of the enabled schedules that have none (added from
 * SQL, or whose cron changed), disabling the ones whose cron does not
 * parse (last_error says why). Also done by every tick; the CLI calls it
 * after `schedules add` so `schedules ls` shows the next run at once.
 * Returns how many it updated. */
LOTE_MUSTCHECK int lote__schedule_init_next(PGconn *conn, lote_error *err);

#endif
