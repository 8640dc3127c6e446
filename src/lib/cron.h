/* cron.h - standard 5-field cron expressions: parse, and find the next
 * matching minute. Pure calendar arithmetic on wall-clock times (no time
 * zones: the scheduler converts to and from the schedule's zone in SQL),
 * no allocation, no database.
 *
 * Grammar: MINUTE HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK, each field a comma
 * list of `*`, `N` or `N-M`, each optionally `/STEP`; months may be jan..dec
 * and days sun..sat (case-insensitive); day of week 0-7 (0 and 7: Sunday).
 * Macros: @yearly @annually @monthly @weekly @daily @midnight @hourly.
 * As in Vixie cron, when both day of month and day of week are restricted
 * (neither is `*`), a day matches if either matches. */
#ifndef LOTE_CRON_H
#define LOTE_CRON_H

#include <stdbool.h>
#include <stdint.h>

#include "lote.h"

/* A parsed expression: one bit per allowed value. */
typedef struct lote__cron {
	uint64_t minutes; /* bits 0-59 */
	uint32_t hours;   /* bits 0-23 */
	uint32_t mdays;   /* bits 1-31 */
	uint16_t months;  /* bits 1-12 */
	uint8_t wdays;    /* bits 0-6, Sunday = 0 */
	bool mday_star;   /* day-of-month field was `*` (or a `*`/STEP) */
	bool wday_star;
} lote__cron;

/* A wall-clock minute. */
typedef struct lote__civil {
	int year, month, day, hour, minute; /* month 1-12, day 1-31 */
} lote__civil;

/* Parses expr into *ret (untouched on failure). Fails with LOTE_EINVAL and
 * a message naming the field and what is wrong. */
LOTE_MUSTCHECK int lote__cron_parse(const char *expr, lote__cron *ret,
                                    lote_error *err);

/* The first matching minute strictly after `after` into *ret. Fails with
 * LOTE_ENOTFOUND when nothing matches in the next 8 years (e.g. "0 0 30 2 *").
 * `after` must be a valid date. */
LOTE_MUSTCHECK int lote__cron_next(const lote__cron *cron, const lote__civil *after,
                                   lote__civil *ret, lote_error *err);

/* "YYYY-MM-DD HH:MM" (as PostgreSQL's to_char gives) to civil and back.
 * buf needs 17 bytes. */
LOTE_MUSTCHECK int lote__civil_parse(const char *text, lote__civil *ret);
void lote__civil_format(const lote__civil *c, char *buf, size_t len);

/* <0, 0, >0 as a is before, equal to, after b. */
int lote__civil_cmp(const lote__civil *a, const lote__civil *b);

#endif
