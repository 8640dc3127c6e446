/* wake.h - one claim per wake-up among the idle workers of an engine.
 *
 * Every worker LISTENs, so a NOTIFY wakes every idle worker of the engine,
 * and each used to claim: with 8 idle workers, one single-row enqueue cost
 * eight claims (seven empty) and eight next-due queries. At 200 enqueues a
 * second that quadrupled the server's CPU and took the commit-to-start
 * p99 from under 1 ms to 7 ms. Now the woken workers elect one scout: it
 * claims, the others go back to sleep. What a scout cannot take alone is
 * handed on: a claim that came back full (there is more) wakes one
 * sleeping worker, which claims without an election, and so on down the
 * chain; a wake-up that arrived once the scout had sent its claim is claimed
 * again at once by the scout (if it got nothing) or by a sleeper woken for
 * it (if it got work). Workers asleep past the poll interval or the next
 * due time claim on their own, as before, so a scout that died mid-claim
 * costs at most one poll interval (the supervisor also clears its role).
 *
 * The state lives in a shared anonymous mapping made by the supervisor
 * before it forks the workers; each worker has an eventfd to be woken by
 * the others. Worker indexes count from 0 here. */
#ifndef LOTE_WAKE_H
#define LOTE_WAKE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

typedef struct lote__wake lote__wake;

/* Maps the state of n workers. Returns 0, or a LOTE_E* code with err set. The caller
 * owns *ret (lote__wake_free); forked workers share it. */
int lote__wake_new(int n, lote__wake **ret, lote_error *err);
void lote__wake_free(lote__wake *wk);

/* Worker side. */

/* The eventfd worker i polls while asleep. */
int lote__wake_fd(const lote__wake *wk, int i);

/* The clock of woke_ns below (monotonic, ns). */
int64_t lote__wake_clock(void);

/* Woken by a NOTIFY at woke_ns (at or after the notification arrived):
 * true if worker i became the scout and should claim; false if another
 * worker is claiming (the wake-up is noted for it if need be). */
bool lote__wake_elect(lote__wake *wk, int i, int64_t woke_ns);

/* Worker i is about to send a claim: if it is the scout, wake-ups from
 * now on may come after the claim's snapshot (they are noted as missed). */
void lote__wake_claiming(lote__wake *wk, int i);

/* Worker i claimed and got n rows of the `asked` it asked for. Wakes a
 * sleeper when the claim was full; if i was the scout, ends its turn and
 * returns true when i must claim again at once (a wake-up came during its
 * empty claim). */
bool lote__wake_claimed(lote__wake *wk, int i, int n, int asked);

/* Around the sleep of worker i: before poll(), and after it (returns true
 * when another worker woke i to help, i.e. i should claim without an
 * election). */
void lote__wake_sleep(lote__wake *wk, int i);
bool lote__wake_rise(lote__wake *wk, int i);

/* Supervisor side: worker i is gone (its role and its sleep are cleared;
 * if it was the scout, a sleeper is woken in its place). */
void lote__wake_lost(lote__wake *wk, int i);

#endif
