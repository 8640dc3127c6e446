/* claimsize.h - how many rows a worker asks for in its next claim.
 *
 * A claim costs one round trip, two commits and a scan of the queue
 * index's head (whose dead entries pile up between vacuums), shared by the
 * claimed rows: with no-op handlers 2 workers drained 35k commands/s at
 * 100 rows per claim and 55-60k/s at 1000 (lote bench drain, 2 cores).
 * But the rows of one claim wait for each other, another worker cannot
 * take them, and a new high-priority row waits for a worker to finish its
 * group. So each worker aims for groups that
 * take about LOTE__CLAIM_TARGET_US from claim to completion: it starts at
 * LOTE__CLAIM_START rows, at most doubles from one full claim to the next,
 * shrinks at once, and never asks for more than the `batch` option.
 * Pure arithmetic, no state of its own: the worker keeps the size. */
#ifndef LOTE_CLAIMSIZE_H
#define LOTE_CLAIMSIZE_H

#include <stdbool.h>
#include <stdint.h>

#define LOTE__CLAIM_TARGET_US 25000
#define LOTE__CLAIM_START 10
/* A claim statement slower than this that came back short read past rows
 * it could not take (delayed ones, mostly: claimsql.h); the worker then
 * claims with the skip form for LOTE__CLAIM_SKIP_US before trying the
 * plain one again. A plain claim of up to 1 000 due rows takes 1-15 ms
 * when it is full; a short one of a shallow queue, well under 1 ms. */
#define LOTE__CLAIM_SLOW_US 5000
#define LOTE__CLAIM_SKIP_US 60000000

/* The first claim's size under the limit `max` (the batch option). */
int lote__claim_first(int max);

/* The next claim's size after a group: `asked` rows were asked for, `got`
 * (>= 1) came back and took `spent_us` from claim to completion. */
int lote__claim_next(int asked, int got, int64_t spent_us, int max);

/* Whether a plain claim statement that asked for `asked` rows, got `got`
 * and took `claim_us` (the statement alone) says: skip over delayed rows. */
bool lote__claim_slow(int asked, int got, int64_t claim_us);

#endif
