/* log.c - see log.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

int lote__log_level = LOTE_LOG_INFO;
static char context[64] = "lote";

int lote__log_set_level(const char *name)
{
	static const char *names[] = { "debug", "info", "warn", "error" };
	for (int i = 0; i < 4; i++) {
		if (strcmp(name, names[i]) == 0) {
			lote__log_level = i;
			return 0;
		}
	}
	return LOTE_EINVAL;
}

void lote__log_set_context(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(context, sizeof(context), fmt, ap);
	va_end(ap);
}

void lote__log_write(int level, const char *fmt, ...)
{
	static const char *tags[] = { "debug", "info", "warn", "error" };
	char line[2048], stamp[32];
	struct timeval tv;
	struct tm tm;
	int n;
	va_list ap;

	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "%s.%03d %s[%d] %s: ", stamp,
	             (int)(tv.tv_usec / 1000), context, (int)getpid(), tags[level]);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line so lines of several processes never interleave. */
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nothing sensible left to do */
	}
}
