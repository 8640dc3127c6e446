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
/* A claim that came back short (the queue had no more it could take) but
 * took longer than LOTE__CLAIM_SLOW_US read past rows it could not take:
 * delayed ones, mostly (claimsql.h). The worker then claims with the skip
 * form for LOTE__CLAIM_SKIP_US before trying the plain one again. For
 * scale: a short claim of a shallow queue takes well under 1 ms, one
 * behind 1 000 000 delayed rows 40 ms. Full claims never switch: with 8
 * workers on 2 cores a full one of 150 rows takes 20-25 ms of contention
 * alone, and there the skip form (~25 us more a claim) cost about 13 % of
 * a drain's rate. So while claims come back full, due rows of a less
 * urgent priority than a large delayed backlog are still claimed by the
 * plain scan, which reads past the delayed rows every time. */
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
