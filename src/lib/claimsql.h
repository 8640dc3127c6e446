/* claimsql.h - the text of the statements that read the claim index of
 * commands: the claim, and the next due time of an idle worker.
 *
 * The claim comes in two forms that claim the same rows in the same order
 * (due, pending, of the worker's types and queues, by priority, run_at,
 * id, skipping rows other claims hold). The claim index leads with
 * priority and PostgreSQL 15 cannot skip within an index, so the plain
 * form's one scan reads past every delayed row of a priority before it
 * reaches the next priority: with 1 000 000 delayed commands a claim took
 * 40 ms even when nothing was due. The skip form finds the distinct
 * priorities first (one descent each) and scans each priority's due range
 * alone (0.2 ms), but costs about 25 us more a claim when nothing is
 * delayed - at 20 commands/s, +0.1 ms on the commit-to-start latency. So a
 * worker uses the plain form and switches to the skip form for a while
 * after a plain claim that came back short and slow (claimsize.h:
 * lote__claim_slow). The next due time always goes priority by priority
 * (a plain min(run_at) read every pending row: 143 ms with 1 000 000
 * delayed commands, at every idle poll; 0.3 ms so).
 *
 * Both functions write the statement into buf (size bytes) and return its
 * length, or -1 when buf is too small. */
#ifndef LOTE_CLAIMSQL_H
#define LOTE_CLAIMSQL_H

#include <stdbool.h>
#include <stddef.h>

/* Parameters: $1 types (text[]), $2 limit, $3 lease in ms, $4 worker id,
 * $5 queues (text[], only when `queues`). Returns the claimed rows. */
int lote__claim_commands_sql(char *buf, size_t size, bool skip, bool queues);

/* Parameters: $1 command types, $2 event types (text[]), $3 queues (text[],
 * only when `queues`). Returns the milliseconds until the earliest pending
 * command or event of those is due (<= 0: due now), NULL when none is. */
int lote__next_due_sql(char *buf, size_t size, bool queues);

#endif
