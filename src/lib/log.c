/* log.c - see log.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

static bool is_break(char c)
{
	return c == '\n' || c == '\r';
}

/* Copies text with its line breaks joined as " | " into out, which has
 * room for 3 * strlen(text) + 1 bytes. Returns the length written. */
static size_t join_lines(char *out, const char *text)
{
	size_t n = 0;

	while (*text && is_break(*text))
		text++;
	while (*text) {
		if (is_break(*text)) {
			while (is_break(*text))
				text++;
			if (*text) {
				memcpy(out + n, " | ", 3);
				n += 3;
			}
			continue;
		}
		out[n++] = *text++;
	}
	out[n] = '\0';
	return n;
}

/* Whether byte c continues a UTF-8 character (never starts one). */
static bool utf8_continuation(char c)
{
	return ((unsigned char)c & 0xC0) == 0x80;
}

const char *lote__log_oneline(char *buf, size_t size, const char *text)
{
	static const char gap[] = " ... ";
	size_t len = strlen(text), n, head, tail;
	char *joined = malloc(3 * len + 1);

	if (!joined) {
		/* no memory for the whole: the start of the first line */
		snprintf(buf, size, "%.*s", (int)strcspn(text, "\r\n"), text);
		return buf;
	}
	n = join_lines(joined, text);
	if (n < size) {
		memcpy(buf, joined, n + 1);
		free(joined);
		return buf;
	}
	/* the start of the first line, at most a third of the room, then the end */
	const char *bar = strstr(joined, " | ");
	head = bar ? (size_t)(bar - joined) : n;
	if (head > (size - 1) / 3)
		head = (size - 1) / 3;
	while (head > 0 && utf8_continuation(joined[head]))
		head--;
	tail = size - 1 - head - (sizeof(gap) - 1);
	while (tail > 0 && utf8_continuation(joined[n - tail]))
		tail--;
	memcpy(buf, joined, head);
	memcpy(buf + head, gap, sizeof(gap) - 1);
	memcpy(buf + head + sizeof(gap) - 1, joined + n - tail, tail + 1);
	free(joined);
	return buf;
}
