/* duration.c - durations as people write them: 500ms, 3s, 5m, 1h, 2d. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* The largest duration accepted: 100 years, far beyond any sane setting,
 * and far from int64 overflow. */
#define DURATION_MAX_MS (100LL * 365 * 24 * 3600 * 1000)

int lote_duration_parse(const char *text, int64_t *ret_ms, lote_error *err)
{
	static const struct { const char *unit; int64_t ms; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
		{ "d", 86400000 }, { "", 1 },
	};
	char *end;
	long long n;

	if (!text || !*text)
		return lote__fail(err, LOTE_EINVAL, "empty duration (write e.g. 500ms, 3s, 5m, 1h)");
	if (!isdigit((unsigned char)text[0]))
		return lote__fail(err, LOTE_EINVAL,
		                  "invalid duration \"%s\" (write e.g. 500ms, 3s, 5m, 1h)", text);
	errno = 0;
	n = strtoll(text, &end, 10);
	if (errno == ERANGE)
		return lote__fail(err, LOTE_EINVAL, "duration \"%s\" is too large", text);
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].unit) != 0)
			continue;
		if (n > DURATION_MAX_MS / units[i].ms)
			return lote__fail(err, LOTE_EINVAL, "duration \"%s\" is too large", text);
		*ret_ms = n * units[i].ms;
		return 0;
	}
	return lote__fail(err, LOTE_EINVAL,
	                  "invalid duration \"%s\": unit must be ms, s, m, h or d", text);
}

char *lote_duration_format(int64_t ms, char *buf, size_t len)
{
	if (ms != 0 && ms % 86400000 == 0)
		snprintf(buf, len, "%lldd", (long long)(ms / 86400000));
	else if (ms != 0 && ms % 3600000 == 0)
		snprintf(buf, len, "%lldh", (long long)(ms / 3600000));
	else if (ms != 0 && ms % 60000 == 0)
		snprintf(buf, len, "%lldm", (long long)(ms / 60000));
	else if (ms != 0 && ms % 1000 == 0)
		snprintf(buf, len, "%llds", (long long)(ms / 1000));
	else
		snprintf(buf, len, "%lldms", (long long)ms);
	return buf;
}
