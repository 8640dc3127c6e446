/* claimsql.h - the text of the statement that claims commands.
 *
 * Two forms that claim the same rows in the same order (due, pending, of
 * the worker's types and queues, by priority, run_at, id, skipping rows
 * other claims hold). The claim index leads with priority and PostgreSQL
 * 15 cannot skip within an index, so the plain form's one scan reads past
 * every delayed row of a priority before it reaches the next priority:
 * with 1 000 000 delayed commands a claim took 40 ms even when nothing was
 * due. The skip form finds the distinct priorities first (one descent
 * each) and scans each priority's due range alone (0.2 ms), but costs
 * about 25 us more a claim when nothing is delayed - at 20 commands/s,
 * +0.1 ms on the commit-to-start latency. So a worker uses the plain form
 * and switches to the skip form for a while after a plain claim that came
 * back short and slow (claimsize.h: lote__claim_slow).
 *
 * Parameters: $1 types (text[]), $2 limit, $3 lease in ms, $4 worker id,
 * $5 queues (text[], only when `queues`). Returns the claimed rows. */
#ifndef LOTE_CLAIMSQL_H
#define LOTE_CLAIMSQL_H

#include <stdbool.h>
#include <stddef.h>

/* Writes the statement into buf (size bytes); returns its length, or -1
 * when buf is too small. */
int lote__claim_commands_sql(char *buf, size_t size, bool skip, bool queues);

#endif
