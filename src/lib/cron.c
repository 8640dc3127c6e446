/* cron.c - 5-field cron expressions (see cron.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cron.h"
#include "error.h"

/* A cron expression longer than this is certainly a mistake. */
#define CRON_MAX_LEN 256
/* How far lote__cron_next looks before saying "never": 8 years covers
 * every leap-day schedule (Feb 29 on a given weekday repeats within 28
 * years, but Feb 29 alone within 8). */
#define CRON_HORIZON_YEARS 8

static const char *const field_names[5] = { "minute", "hour", "day of month", "month",
	                                    "day of week" };
static const int field_lo[5] = { 0, 0, 1, 1, 0 };
static const int field_hi[5] = { 59, 23, 31, 12, 7 };
static const char *const month_names[12] = { "jan", "feb", "mar", "apr", "may", "jun",
	                                     "jul", "aug", "sep", "oct", "nov", "dec" };
static const char *const day_names[7] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };

/* Reads a number or a name at *p; advances *p. Returns -1 if none. */
static int read_value(const char **p, int field)
{
	const char *s = *p;
	if (isdigit((unsigned char)*s)) {
		long v = 0;
		int digits = 0;
		while (isdigit((unsigned char)*s)) {
			if (++digits > 4)
				return -1;
			v = v * 10 + (*s++ - '0');
		}
		*p = s;
		return (int)v;
	}
	if (field == 3 || field == 4) {
		const char *const *names = field == 3 ? month_names : day_names;
		int n = field == 3 ? 12 : 7, base = field == 3 ? 1 : 0;
		for (int i = 0; i < n; i++)
			if (strncasecmp(s, names[i], 3) == 0 && !isalpha((unsigned char)s[3])) {
				*p = s + 3;
				return base + i;
			}
	}
	return -1;
}

/* Parses one field (text of length len) into the bit set *ret. */
static int parse_field(const char *text, size_t len, int field, uint64_t *ret_bits,
                       bool *ret_star, const char *expr, lote_error *err)
{
	char buf[CRON_MAX_LEN + 1];
	const char *p;
	uint64_t bits = 0;
	int lo = field_lo[field], hi = field_hi[field];

	memcpy(buf, text, len);
	buf[len] = '\0';
	p = buf;
	for (;;) {
		int a, b, step = 1;
		if (*p == '*') {
			a = lo;
			b = hi;
			p++;
		} else {
			const char *start = p;
			a = read_value(&p, field);
			if (a < 0)
				goto bad;
			if (a < lo || a > hi)
				return lote__fail(err, LOTE_EINVAL,
				                  "%s %.*s out of range %d-%d in \"%s\"", field_names[field],
				                  (int)(p - start), start, lo, hi, expr);
			b = a;
			if (*p == '-') {
				p++;
				start = p;
				b = read_value(&p, field);
				if (b < 0)
					goto bad;
				if (b < lo || b > hi)
					return lote__fail(err, LOTE_EINVAL,
					                  "%s %.*s out of range %d-%d in \"%s\"", field_names[field],
					                  (int)(p - start), start, lo, hi, expr);
				if (b < a)
					return lote__fail(err, LOTE_EINVAL,
					                  "backwards range %d-%d in %s field of \"%s\"", a, b,
					                  field_names[field], expr);
			}
		}
		if (*p == '/') {
			p++;
			if (!isdigit((unsigned char)*p))
				goto bad;
			step = read_value(&p, 0);
			/* read_value gives -1 for too many digits: show the text */
			if (step < 1 || step > hi)
				return lote__fail(err, LOTE_EINVAL, "step out of range in %s field \"%s\" (1 to %d)",
				                  field_names[field], buf, hi);
		}
		for (int v = a; v <= b; v += step)
			bits |= (uint64_t)1 << v;
		if (*p == '\0')
			break;
		if (*p != ',')
			goto bad;
		p++;
	}
	if (field == 4 && (bits & (1u << 7))) /* 7 is Sunday too */
		bits = (bits | 1u) & ~(uint64_t)(1u << 7);
	*ret_bits = bits;
	*ret_star = buf[0] == '*';
	return 0;
bad:
	return lote__fail(err, LOTE_EINVAL,
	                  "bad %s field \"%s\" in \"%s\": a field is *, N, N-M or a comma list of them, "
	                  "each optionally /STEP%s",
	                  field_names[field], buf, expr,
	                  field == 3 ? " (months may be jan..dec)" :
	                  field == 4 ? " (days may be sun..sat)" : "");
}

int lote__cron_parse(const char *expr, lote__cron *ret, lote_error *err)
{
	static const struct { const char *name, *expansion; } macros[] = {
		{ "@yearly", "0 0 1 1 *" },   { "@annually", "0 0 1 1 *" },
		{ "@monthly", "0 0 1 * *" },  { "@weekly", "0 0 * * 0" },
		{ "@daily", "0 0 * * *" },    { "@midnight", "0 0 * * *" },
		{ "@hourly", "0 * * * *" },
	};
	const char *p, *start[5];
	size_t len[5];
	int n = 0;
	lote__cron c = { 0 };
	uint64_t bits = 0;
	bool star = false;
	char trimmed[CRON_MAX_LEN + 1];
	size_t tl;

	if (!expr)
		return lote__fail(err, LOTE_EINVAL, "empty cron expression");
	while (isspace((unsigned char)*expr))
		expr++;
	tl = strlen(expr);
	if (tl > CRON_MAX_LEN)
		return lote__fail(err, LOTE_EINVAL, "cron expression longer than %d characters",
		                  CRON_MAX_LEN);
	while (tl > 0 && isspace((unsigned char)expr[tl - 1]))
		tl--;
	memcpy(trimmed, expr, tl);
	trimmed[tl] = '\0';
	if (tl == 0)
		return lote__fail(err, LOTE_EINVAL, "empty cron expression");
	if (trimmed[0] == '@') {
		for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++)
			if (strcasecmp(trimmed, macros[i].name) == 0)
				return lote__cron_parse(macros[i].expansion, ret, err);
		return lote__fail(err, LOTE_EINVAL,
		                  "unknown cron macro \"%s\" (macros: @yearly @annually @monthly "
		                  "@weekly @daily @midnight @hourly)", trimmed);
	}
	p = trimmed;
	while (*p) {
		while (isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		if (n == 5) {
			n++;
			break;
		}
		start[n] = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
		len[n] = (size_t)(p - start[n]);
		n++;
	}
	if (n != 5) {
		int count = n;
		if (n > 5) /* count them all for the message */
			for (count = 0, p = trimmed; *p;) {
				while (isspace((unsigned char)*p))
					p++;
				if (*p)
					count++;
				while (*p && !isspace((unsigned char)*p))
					p++;
			}
		return lote__fail(err, LOTE_EINVAL,
		                  "cron expression \"%s\" has %d field%s, expected 5 "
		                  "(minute hour day-of-month month day-of-week)",
		                  trimmed, count, count == 1 ? "" : "s");
	}
	for (int f = 0; f < 5; f++) {
		int rc = parse_field(start[f], len[f], f, &bits, &star, trimmed, err);
		if (rc < 0)
			return rc;
		switch (f) {
		case 0: c.minutes = bits; break;
		case 1: c.hours = (uint32_t)bits; break;
		case 2: c.mdays = (uint32_t)bits; c.mday_star = star; break;
		case 3: c.months = (uint16_t)bits; break;
		case 4: c.wdays = (uint8_t)bits; c.wday_star = star; break;
		}
	}
	*ret = c;
	return 0;
}

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
	static const int dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	return m == 2 && leap(y) ? 29 : dim[m - 1];
}

/* 0 = Sunday (Sakamoto's method). */
static int weekday(int y, int m, int d)
{
	static const int t[12] = { 0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4 };
	if (m < 3)
		y -= 1;
	return (y + y / 4 - y / 100 + y / 400 + t[m - 1] + d) % 7;
}

static bool day_matches(const lote__cron *c, int y, int m, int d)
{
	bool md = (c->mdays >> d) & 1, wd = (c->wdays >> weekday(y, m, d)) & 1;
	if (c->mday_star || c->wday_star)
		return md && wd;
	return md || wd;
}

/* Carries overflowing fields upwards. */
static void normalize(lote__civil *t)
{
	if (t->minute >= 60) {
		t->minute = 0;
		t->hour++;
	}
	if (t->hour >= 24) {
		t->hour = 0;
		t->day++;
	}
	/* month first: the caller may have stepped it past December (with
	 * day 1), and days_in_month needs a valid one */
	if (t->month > 12) {
		t->month = 1;
		t->year++;
	}
	if (t->day > days_in_month(t->year, t->month)) {
		t->day = 1;
		t->month++;
		if (t->month > 12) {
			t->month = 1;
			t->year++;
		}
	}
}

int lote__cron_next(const lote__cron *c, const lote__civil *after, lote__civil *ret,
                    lote_error *err)
{
	lote__civil t = *after;

	if (t.month < 1 || t.month > 12 || t.day < 1 || t.day > days_in_month(t.year, t.month) ||
	    t.hour < 0 || t.hour > 23 || t.minute < 0 || t.minute > 59)
		return lote__fail(err, LOTE_EINVAL, "invalid date %04d-%02d-%02d %02d:%02d", t.year,
		                  t.month, t.day, t.hour, t.minute);
	t.minute++;
	normalize(&t);
	while (t.year <= after->year + CRON_HORIZON_YEARS) {
		if (!((c->months >> t.month) & 1)) {
			t.month++;
			t.day = 1;
			t.hour = t.minute = 0;
			normalize(&t);
		} else if (!day_matches(c, t.year, t.month, t.day)) {
			t.day++;
			t.hour = t.minute = 0;
			normalize(&t);
		} else if (!((c->hours >> t.hour) & 1)) {
			t.hour++;
			t.minute = 0;
			normalize(&t);
		} else if (!((c->minutes >> t.minute) & 1)) {
			t.minute++;
			normalize(&t);
		} else {
			*ret = t;
			return 0;
		}
	}
	return lote__fail(err, LOTE_ENOTFOUND, "the cron expression never matches (looked %d years ahead)",
	                  CRON_HORIZON_YEARS);
}

int lote__civil_parse(const char *text, lote__civil *ret)
{
	lote__civil c;
	char tail;
	if (!text || sscanf(text, "%d-%d-%d %d:%d%c", &c.year, &c.month, &c.day, &c.hour,
	                    &c.minute, &tail) != 5)
		return LOTE_EINVAL;
	if (c.month < 1 || c.month > 12 || c.day < 1 || c.day > days_in_month(c.year, c.month) ||
	    c.hour < 0 || c.hour > 23 || c.minute < 0 || c.minute > 59)
		return LOTE_EINVAL;
	*ret = c;
	return 0;
}

void lote__civil_format(const lote__civil *c, char *buf, size_t len)
{
	snprintf(buf, len, "%04d-%02d-%02d %02d:%02d", c->year, c->month, c->day, c->hour,
	         c->minute);
}

int lote__civil_cmp(const lote__civil *a, const lote__civil *b)
{
	const int x[5] = { a->year, a->month, a->day, a->hour, a->minute };
	const int y[5] = { b->year, b->month, b->day, b->hour, b->minute };
	for (int i = 0; i < 5; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}
