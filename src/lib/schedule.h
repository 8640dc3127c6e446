/* schedule.h - scheduled routines (archive, retention, users' periodic
 * commands): run by every daemon's supervisor, coordinated through the
 * database so each tick runs exactly once across all daemons. */
#ifndef LOTE_SCHEDULE_H
#define LOTE_SCHEDULE_H

#include "lote.h"

/* Called by the supervisor's upkeep (every couple of seconds) on its own
 * connection (borrowed, idle, not in a transaction). Runs whatever is due.
 * Must return quickly or do its work in bounded chunks: the supervisor
 * does nothing else meanwhile. */
LOTE_MUSTCHECK int lote__schedule_tick(PGconn *conn, lote_error *err);

#endif
