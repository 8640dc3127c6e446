/* log.h - daemon logging: one line per message on stderr, level checked
 * before formatting, a per-process context prefix (supervisor, worker 3). */
#ifndef LOTE_LOG_H
#define LOTE_LOG_H

#include "lote.h"

enum lote_log_level { LOTE_LOG_DEBUG, LOTE_LOG_INFO, LOTE_LOG_WARN, LOTE_LOG_ERROR };

extern int lote__log_level;

/* Sets the minimum level shown; parses "debug|info|warn|error". */
int lote__log_set_level(const char *name);
/* Sets the process's prefix (copied), e.g. "worker 2". */
void lote__log_set_context(const char *fmt, ...) LOTE_PRINTF(1, 2);
void lote__log_write(int level, const char *fmt, ...) LOTE_PRINTF(2, 3);
/* Writes text into buf (size bytes, at least 64) as one log line: each
 * run of line breaks becomes " | ", leading and trailing ones go. A text
 * that does not fit keeps the start of its first line and its end (where
 * a program's last words are), joined by " ... ", cut at UTF-8 character
 * boundaries. Returns buf; text is only read. */
const char *lote__log_oneline(char *buf, size_t size, const char *text);

#define lote__log(level, ...) \
	do { if ((level) >= lote__log_level) lote__log_write((level), __VA_ARGS__); } while (0)
#define log_debug(...) lote__log(LOTE_LOG_DEBUG, __VA_ARGS__)
#define log_info(...) lote__log(LOTE_LOG_INFO, __VA_ARGS__)
#define log_warn(...) lote__log(LOTE_LOG_WARN, __VA_ARGS__)
#define log_error(...) lote__log(LOTE_LOG_ERROR, __VA_ARGS__)

#endif
