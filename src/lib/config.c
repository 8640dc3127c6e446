/* config.c - the settings table and everything it drives: the INI config
 * file (read with libinih), `lote run` flags, --help and the table in
 * docs/config.md (a unit test keeps that file equal to
 * lote__config_print_markdown).
 *
 * The file is fed to inih through our own line reader, which gives exact
 * line numbers for every message, checks [section] headers as it meets
 * them, and turns off the inih features that would surprise someone
 * writing a shell command as a value: inline ';' comments, continuation
 * lines, and the 200-byte line buffer. */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "config.h"
#include "error.h"

enum stype { S_INT, S_DURATION, S_STRING, S_BOOL };

struct setting {
	const char *name;
	enum stype type;
	size_t off;        /* the field in lote__config */
	const char *arg;   /* placeholder in --help */
	const char *def;   /* default, as a file would write it; NULL: unset */
	int64_t min, max;  /* ints; durations in ms */
	int (*check)(const char *value, lote_error *err); /* strings */
	const char *help;
};

static int check_nonempty(const char *value, lote_error *err);
static int check_queues(const char *value, lote_error *err);
static int check_log_level(const char *value, lote_error *err);

#define F(field) offsetof(lote__config, field)
#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

/* The one table. Bounds say what is sane, not what is possible: a typo
 * such as poll = 1 (one millisecond) is caught here. */
static const struct setting settings[] = {
	{ "database_url", S_STRING, F(database_url), "URL", NULL, 0, 0, check_nonempty,
	  "The PostgreSQL to use, as a libpq URI or key=value string. Unset: "
	  "$LOTE_DATABASE_URL, else the embedded cluster under ./.lote. "
	  "--database-url beats $LOTE_DATABASE_URL, which beats the file." },
	{ "workers", S_INT, F(engine.workers), "N", "2", 1, 256, NULL,
	  "Worker processes, each with its own database connection." },
	{ "batch", S_INT, F(engine.batch), "N", "1000", 1, 1000, NULL,
	  "The most rows a worker claims in one round trip. Each worker sizes "
	  "its claims so that a group takes about 25 ms from claim to completion "
	  "(large groups for fast handlers, one row at a time for slow ones), "
	  "starting at 10 and never above this." },
	{ "poll", S_DURATION, F(engine.poll_ms), "DURATION", "1s", 10, HOUR, NULL,
	  "How long an idle worker waits before looking for work again when no "
	  "notification woke it (the fallback of listen)." },
	{ "lease", S_DURATION, F(engine.lease_ms), "DURATION", "30s", SEC, 7 * DAY, NULL,
	  "How long a claim holds a row unless renewed. The supervisor renews the "
	  "leases of its live workers every heartbeat, so only the work of a lost "
	  "host or daemon waits for its lease to end (a worker that dies on this "
	  "host hands its work back at once)." },
	{ "heartbeat", S_DURATION, F(engine.heartbeat_ms), "DURATION", "0", 0, DAY, NULL,
	  "How often the supervisor stamps its workers' heartbeat and renews "
	  "their leases (those that end within lease - heartbeat / 2, so a fresh "
	  "claim is not rewritten); 0: a third of the lease. Must be shorter than "
	  "the lease." },
	{ "grace", S_DURATION, F(engine.grace_ms), "DURATION", "30s", 0, DAY, NULL,
	  "On SIGTERM or SIGINT, how long in-flight work may take to finish "
	  "before the workers are killed." },
	{ "timeout", S_DURATION, F(engine.timeout_ms), "DURATION", "5m", 10, 7 * DAY, NULL,
	  "Default handler timeout: a handler running longer is stopped and its "
	  "command failed. A [command TYPE] or [event TYPE] timeout overrides it." },
	{ "queues", S_STRING, F(queues), "LIST", "", 0, 0, check_queues,
	  "Comma-separated queues to take commands from; empty: every queue." },
	{ "listen", S_BOOL, F(engine.listen), NULL, "true", 0, 0, NULL,
	  "Wake workers with LISTEN/NOTIFY as soon as work arrives, instead of "
	  "at the next poll." },
	{ "shared_tx", S_BOOL, F(engine.shared_tx), NULL, "true", 0, 0, NULL,
	  "Run the rows of one claim in one transaction with a savepoint per row "
	  "(fewer commits); false: one transaction per row." },
	{ "log_level", S_STRING, F(log_level), "LEVEL", "info", 0, 0, check_log_level,
	  "Least severity logged on stderr: debug, info, warn or error." },
};
#define NSETTINGS ((int)(sizeof(settings) / sizeof(settings[0])))

static const struct setting *find_setting(const char *name)
{
	for (int i = 0; i < NSETTINGS; i++)
		if (strcmp(settings[i].name, name) == 0)
			return &settings[i];
	return NULL;
}

/* ---------------------------------------------------------------------
 * Values
 */

static int check_nonempty(const char *value, lote_error *err)
{
	return *value ? 0 : lote__fail(err, LOTE_EINVAL, "must not be empty");
}

/* The queue names lote.enqueue accepts. */
static bool valid_queue(const char *s, size_t n)
{
	if (n < 1 || n > 100)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("_.:-", s[i]))
			return false;
	return true;
}

static int check_queues(const char *value, lote_error *err)
{
	const char *p = value;

	if (!*value)
		return 0;
	for (;;) {
		size_t n = strcspn(p, ",");
		if (!valid_queue(p, n))
			return lote__fail(err, LOTE_EINVAL,
			                  "invalid queue name \"%.*s\" (a queue is 1 to 100 letters, "
			                  "digits, \"_\", \".\", \":\" or \"-\"; separate them with commas)",
			                  (int)(n > 100 ? 100 : n), p);
		if (!p[n])
			return 0;
		p += n + 1;
	}
}

static int check_log_level(const char *value, lote_error *err)
{
	static const char *const levels[] = { "debug", "info", "warn", "error" };

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (strcmp(value, levels[i]) == 0)
			return 0;
	return lote__fail(err, LOTE_EINVAL,
	                  "\"%s\" is not a log level (debug, info, warn or error)", value);
}

/* The type names lote.enqueue and lote.emit accept. */
static bool valid_type(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 200 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("_.:-", s[i]))
			return false;
	return true;
}

static void format_range(const struct setting *s, char *buf, size_t len)
{
	char a[32], b[32];

	switch (s->type) {
	case S_INT:
		snprintf(buf, len, "%lld..%lld", (long long)s->min, (long long)s->max);
		break;
	case S_DURATION:
		/* "0" reads better than "0ms" for "no grace at all". */
		snprintf(buf, len, "%s..%s", s->min ? lote_duration_format(s->min, a, sizeof(a)) : "0",
		         lote_duration_format(s->max, b, sizeof(b)));
		break;
	case S_BOOL:
		snprintf(buf, len, "true, false");
		break;
	case S_STRING:
		if (s->check == check_log_level)
			snprintf(buf, len, "debug, info, warn, error");
		else if (s->check == check_queues)
			snprintf(buf, len, "queue names");
		else
			snprintf(buf, len, "text");
		break;
	}
}

static int parse_duration(const struct setting *s, const char *value,
                          int64_t *ret_ms, lote_error *err)
{
	char range[64];
	int64_t ms;

	if (lote_duration_parse(value, &ms, err) < 0)
		return LOTE_EINVAL;
	if (ms < s->min || ms > s->max) {
		format_range(s, range, sizeof(range));
		return lote__fail(err, LOTE_EINVAL, "%s is out of range (%s)", value, range);
	}
	*ret_ms = ms;
	return 0;
}

static int parse_bool(const char *value, bool *ret, lote_error *err)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (int i = 0; i < 4; i++) {
		if (strcasecmp(value, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcasecmp(value, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return lote__fail(err, LOTE_EINVAL,
	                  "\"%s\" is not a boolean (true/false, yes/no, on/off, 1/0)", value);
}

/* Sets s from text; messages are "NAME: why". */
static int set_value(lote__config *cfg, const struct setting *s,
                     const char *value, lote_error *err)
{
	void *field = (char *)cfg + s->off;
	lote_error e = { 0 };
	char range[64];
	int rc = 0;

	switch (s->type) {
	case S_INT: {
		char *end;
		long long n;
		errno = 0;
		n = strtoll(value, &end, 10);
		if (!*value || *end || errno == ERANGE) {
			rc = lote__fail(&e, LOTE_EINVAL, "\"%s\" is not an integer", value);
			break;
		}
		if (n < s->min || n > s->max) {
			format_range(s, range, sizeof(range));
			rc = lote__fail(&e, LOTE_EINVAL, "%lld is out of range (%s)", n, range);
			break;
		}
		*(int *)field = (int)n;
		break;
	}
	case S_DURATION:
		rc = parse_duration(s, value, (int64_t *)field, &e);
		break;
	case S_BOOL:
		rc = parse_bool(value, (bool *)field, &e);
		break;
	case S_STRING: {
		char **slot = field, *copy = NULL;
		if (s->check && (rc = s->check(value, &e)) < 0)
			break;
		/* An empty list means "every queue": the engine wants NULL. */
		if (*value && !(copy = strdup(value))) {
			rc = lote__fail(&e, LOTE_ENOMEM, "out of memory");
			break;
		}
		free(*slot);
		*slot = copy;
		break;
	}
	}
	cfg->engine.queues = cfg->queues;
	if (rc < 0)
		return lote__fail(err, e.code, "%s: %s", s->name, e.message);
	return 0;
}

void lote__config_init(lote__config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	lote_engine_options_init(&cfg->engine);
	cfg->engine.conninfo = NULL;
	cfg->engine.queues = NULL;
	/* The defaults are constants of the table: only memory can fail them,
	 * and a config left without a log level is still safe. */
	for (int i = 0; i < NSETTINGS; i++)
		if (settings[i].def)
			(void)set_value(cfg, &settings[i], settings[i].def, NULL);
}

void lote__config_done(lote__config *cfg)
{
	if (!cfg)
		return;
	for (int i = 0; i < cfg->nhandlers; i++) {
		free(cfg->handlers[i].type);
		free(cfg->handlers[i].program);
	}
	free(cfg->handlers);
	free(cfg->database_url);
	free(cfg->log_level);
	free(cfg->queues);
	free(cfg->file);
	memset(cfg, 0, sizeof(*cfg));
}

int lote__config_set(lote__config *cfg, const char *name, const char *value,
                     lote_error *err)
{
	const struct setting *s = find_setting(name);

	if (!s)
		return lote__fail(err, LOTE_EINVAL, "unknown setting \"%s\"", name);
	return set_value(cfg, s, value, err);
}

/* ---------------------------------------------------------------------
 * Handlers
 */

/* Appends a handler; type is copied. Returns its index or an error. */
static int handler_add(lote__config *cfg, lote_kind kind, const char *type,
                       int line, lote_error *err)
{
	lote__handler_spec *h;

	if (cfg->nhandlers >= LOTE_CONFIG_HANDLERS_MAX)
		return lote__fail(err, LOTE_EINVAL, "more than %d handlers",
		                  LOTE_CONFIG_HANDLERS_MAX);
	h = realloc(cfg->handlers, (size_t)(cfg->nhandlers + 1) * sizeof(*h));
	if (!h)
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	cfg->handlers = h;
	h = &cfg->handlers[cfg->nhandlers];
	memset(h, 0, sizeof(*h));
	h->kind = kind;
	h->line = line;
	if (!(h->type = strdup(type)))
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	return cfg->nhandlers++;
}

static void handler_remove(lote__config *cfg, int i)
{
	free(cfg->handlers[i].type);
	free(cfg->handlers[i].program);
	memmove(&cfg->handlers[i], &cfg->handlers[i + 1],
	        (size_t)(cfg->nhandlers - i - 1) * sizeof(cfg->handlers[0]));
	cfg->nhandlers--;
}

static const lote__handler_spec *handler_find(const lote__config *cfg,
                                              lote_kind kind, const char *type)
{
	for (int i = 0; i < cfg->nhandlers; i++)
		if (cfg->handlers[i].kind == kind && strcmp(cfg->handlers[i].type, type) == 0)
			return &cfg->handlers[i];
	return NULL;
}

int lote__config_add_handler(lote__config *cfg, lote_kind kind,
                             const char *spec, lote_error *err)
{
	const char *flag = kind == LOTE_EVENT ? "--exec-event" : "--exec";
	const char *eq = strchr(spec, '=');
	const lote__handler_spec *dup;
	char *type = NULL;
	int i, rc = 0;

	if (!eq)
		return lote__fail(err, LOTE_EINVAL, "%s \"%s\": expected TYPE=PROGRAM", flag, spec);
	if (!(type = strndup(spec, (size_t)(eq - spec))))
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	if (!valid_type(type)) {
		rc = lote__fail(err, LOTE_EINVAL,
		                "%s: invalid type \"%.200s\" (1 to 200 letters, digits, \"_\", \".\", "
		                "\":\" or \"-\", starting with a letter or \"_\")", flag, type);
		goto done;
	}
	if (!eq[1]) {
		rc = lote__fail(err, LOTE_EINVAL, "%s %s=: empty program", flag, type);
		goto done;
	}
	/* Flags beat the file whatever their order: drop what it gave. */
	for (i = cfg->nhandlers - 1; i >= 0; i--)
		if (cfg->handlers[i].line > 0 && cfg->handlers[i].kind == kind &&
		    strcmp(cfg->handlers[i].type, type) == 0)
			handler_remove(cfg, i);
	dup = handler_find(cfg, kind, type);
	if (kind == LOTE_COMMAND && dup) {
		rc = lote__fail(err, LOTE_EINVAL,
		                "duplicate handler for command type %s (--exec given twice; "
		                "a command type has one handler)", type);
		goto done;
	}
	if ((i = handler_add(cfg, kind, type, 0, err)) < 0) {
		rc = i;
		goto done;
	}
	if (!(cfg->handlers[i].program = strdup(eq + 1))) {
		handler_remove(cfg, i);
		rc = lote__fail(err, LOTE_ENOMEM, "out of memory");
	}
done:
	free(type);
	return rc;
}

/* ---------------------------------------------------------------------
 * The file
 */

/* Stands for ';' while inih splits a line, so ';' is never an inline
 * comment (it is common in shell commands). */
#define SEMI '\x01'
/* Stands for a value too long for inih's line buffer (kept aside). */
#define LONG_VALUE "\x02"

enum section { SEC_NONE, SEC_LOTE, SEC_HANDLER };

/* The state of one load, shared by the reader and the value handler. */
/* The keys of a [command TYPE] or [event TYPE] section. */
enum { KEY_EXEC, KEY_TIMEOUT, KEY_MAX_ATTEMPTS, KEY_RETRY, KEY_RETRY_BASE, KEY_RETRY_MAX,
       KEY_RETRY_JITTER, HANDLER_KEYS };
static const char *const handler_keys[HANDLER_KEYS] = {
	"exec", "timeout", "max_attempts", "retry", "retry_base", "retry_max", "retry_jitter",
};
#define HANDLER_KEYS_TEXT "exec, timeout, max_attempts, retry, retry_base, retry_max, retry_jitter"

struct load {
	lote__config *cfg;     /* borrowed */
	const char *path;      /* borrowed */
	FILE *f;               /* owned */
	lote_error *err;       /* borrowed */
	int rc;                /* the first error, 0 so far */
	int line;              /* the line inih is handling */
	char *buf;             /* getline's buffer (owned) */
	size_t cap;
	char *long_value;      /* owned; see LONG_VALUE */
	enum section sec;
	int sec_line;          /* where the current section began */
	int handler;           /* its index in cfg->handlers (SEC_HANDLER) */
	int key_line[HANDLER_KEYS]; /* where its keys were set */
	int set_line[NSETTINGS]; /* where each [lote] key was set */
};

static int load_fail(struct load *l, int line, const char *fmt, ...) LOTE_PRINTF(3, 4);

static int load_fail(struct load *l, int line, const char *fmt, ...)
{
	char msg[sizeof(l->err->message)];
	va_list ap;

	if (l->rc)
		return l->rc;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	l->rc = lote__fail(l->err, LOTE_EINVAL, "%s:%d: %s", l->path, line, msg);
	return l->rc;
}

static const char *kind_word(lote_kind kind)
{
	return kind == LOTE_EVENT ? "event" : "command";
}

/* Closes the current section: a handler section needs its program. */
static void end_section(struct load *l)
{
	if (l->sec == SEC_HANDLER && !l->rc) {
		const lote__handler_spec *h = &l->cfg->handlers[l->handler];
		if (!h->program)
			load_fail(l, l->sec_line, "[%s %s] has no exec (the program to run)",
			          kind_word(h->kind), h->type);
	}
	l->sec = SEC_NONE;
}

/* A "[...]" line (s is trimmed and starts with '['). */
static void begin_section(struct load *l, char *s)
{
	char *close = strchr(s, ']'), *rest, *name = s + 1, *type;
	lote_kind kind;
	int i;

	end_section(l);
	if (l->rc)
		return;
	if (!close) {
		load_fail(l, l->line, "section header without \"]\"");
		return;
	}
	rest = close + 1;
	while (isspace((unsigned char)*rest))
		rest++;
	if (*rest && *rest != ';' && *rest != '#') {
		load_fail(l, l->line, "unexpected text after the section header");
		return;
	}
	*close = '\0';
	if (strcmp(name, "lote") == 0) {
		l->sec = SEC_LOTE;
		l->sec_line = l->line;
		return;
	}
	type = name + strcspn(name, " \t");
	if (*type) {
		*type++ = '\0';
		while (*type == ' ' || *type == '\t')
			type++;
		for (char *e = type + strlen(type); e > type && isspace((unsigned char)e[-1]);)
			*--e = '\0';
	}
	if (strcmp(name, "command") == 0)
		kind = LOTE_COMMAND;
	else if (strcmp(name, "event") == 0)
		kind = LOTE_EVENT;
	else {
		load_fail(l, l->line,
		          "unknown section [%.100s%s%.100s] (expected [lote], [command TYPE] or [event TYPE])",
		          name, *type ? " " : "", type);
		return;
	}
	if (!*type) {
		load_fail(l, l->line, "[%s] needs a type: [%s TYPE]", name, name);
		return;
	}
	if (!valid_type(type)) {
		load_fail(l, l->line,
		          "invalid %s type \"%.200s\" (1 to 200 letters, digits, \"_\", \".\", \":\" "
		          "or \"-\", starting with a letter or \"_\")", name, type);
		return;
	}
	if (kind == LOTE_COMMAND) {
		const lote__handler_spec *dup = handler_find(l->cfg, kind, type);
		if (dup) {
			load_fail(l, l->line,
			          "duplicate handler for command type %s (first on line %d; a "
			          "command type has one handler)", type, dup->line);
			return;
		}
	}
	if ((i = handler_add(l->cfg, kind, type, l->line, l->err)) < 0) {
		l->rc = i;
		return;
	}
	l->sec = SEC_HANDLER;
	l->sec_line = l->line;
	l->handler = i;
	memset(l->key_line, 0, sizeof(l->key_line));
}

/* inih's line source: feeds it one line at a time (see the top comment). */
static char *reader(char *str, int num, void *stream)
{
	struct load *l = stream;
	ssize_t n;
	char *s, *eq;

	if (l->rc)
		return NULL;
	n = getline(&l->buf, &l->cap, l->f);
	if (n < 0) {
		if (ferror(l->f))
			load_fail(l, l->line + 1, "read error");
		end_section(l);
		return NULL;
	}
	l->line++;
	s = l->buf;
	if (l->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0) {
		s += 3; /* a UTF-8 byte order mark */
		n -= 3;
	}
	if ((size_t)n != strlen(s)) {
		load_fail(l, l->line, "NUL byte in the line");
		return NULL;
	}
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	if (n > LOTE_CONFIG_LINE_MAX) {
		load_fail(l, l->line, "line longer than %d bytes", LOTE_CONFIG_LINE_MAX);
		return NULL;
	}
	/* Without leading blanks inih never sees a continuation line. */
	while (isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	if (*s == '[') {
		begin_section(l, s);
		if (l->rc)
			return NULL;
		snprintf(str, (size_t)num, "[s]");
		return str;
	}
	if (*s == ';' || *s == '#' || !*s) {
		str[0] = '\0';
		return str;
	}
	if (strchr(s, SEMI) || strchr(s, LONG_VALUE[0])) {
		load_fail(l, l->line, "control character in the line");
		return NULL;
	}
	for (char *p = s; (p = strchr(p, ';'));)
		*p = SEMI;
	if (n < num - 1) {
		memcpy(str, s, (size_t)n + 1);
		return str;
	}
	/* Too long for inih: give it the key and keep the value aside. */
	eq = strchr(s, '=');
	if (!eq || eq - s > 64) {
		load_fail(l, l->line, "expected key = value");
		return NULL;
	}
	*eq++ = '\0';
	while (isspace((unsigned char)*eq))
		eq++;
	free(l->long_value);
	if (!(l->long_value = strdup(eq))) {
		l->rc = lote__fail(l->err, LOTE_ENOMEM, "out of memory");
		return NULL;
	}
	snprintf(str, (size_t)num, "%s=%s", s, LONG_VALUE);
	return str;
}

static int lote_key(struct load *l, const char *name, const char *value)
{
	const struct setting *s = find_setting(name);
	lote_error e = { 0 };
	int i;

	if (!s)
		return load_fail(l, l->line, "unknown key \"%.64s\" in [lote]", name);
	i = (int)(s - settings);
	if (l->set_line[i])
		return load_fail(l, l->line, "%s is set twice (first on line %d)", name,
		                 l->set_line[i]);
	l->set_line[i] = l->line;
	if (set_value(l->cfg, s, value, &e) < 0)
		return load_fail(l, l->line, "%s", e.message);
	return 0;
}

/* Parses a number with bounds for the handler keys below. */
static int parse_real(const char *value, double lo, double hi, double *ret, lote_error *err)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(value, &end);
	if (!*value || *end || errno || !(v >= lo && v <= hi))
		return lote__fail(err, LOTE_EINVAL, "\"%s\" is not a number from %g to %g", value, lo, hi);
	*ret = v;
	return 0;
}

static int handler_key(struct load *l, const char *name, const char *value)
{
	lote__handler_spec *h = &l->cfg->handlers[l->handler];
	lote_error e = { 0 };
	int k;
	double v;

	for (k = 0; k < HANDLER_KEYS; k++)
		if (strcmp(name, handler_keys[k]) == 0)
			break;
	if (k == HANDLER_KEYS)
		return load_fail(l, l->line, "unknown key \"%.64s\" in [%s %s] (expected %s)",
		                 name, kind_word(h->kind), h->type, HANDLER_KEYS_TEXT);
	if (l->key_line[k])
		return load_fail(l, l->line, "%s is set twice in [%s %s] (first on line %d)",
		                 name, kind_word(h->kind), h->type, l->key_line[k]);
	l->key_line[k] = l->line;
	switch (k) {
	case KEY_EXEC:
		if (!*value)
			return load_fail(l, l->line, "exec: empty program");
		if (!(h->program = strdup(value)))
			return l->rc = lote__fail(l->err, LOTE_ENOMEM, "out of memory");
		return 0;
	case KEY_TIMEOUT:
		/* The bounds of the timeout setting apply. */
		if (parse_duration(find_setting("timeout"), value, &h->timeout_ms, &e) < 0)
			return load_fail(l, l->line, "timeout: %s", e.message);
		return 0;
	case KEY_MAX_ATTEMPTS:
		if (parse_real(value, 1, 1000, &v, &e) < 0 || v != (int)v)
			return load_fail(l, l->line, "max_attempts: \"%s\" is not an integer from 1 to 1000",
			                 value);
		h->max_attempts = (int)v;
		return 0;
	case KEY_RETRY:
		if (strcmp(value, "exponential") == 0)
			h->retry.strategy = LOTE_RETRY_EXPONENTIAL;
		else if (strcmp(value, "linear") == 0)
			h->retry.strategy = LOTE_RETRY_LINEAR;
		else if (strcmp(value, "fixed") == 0)
			h->retry.strategy = LOTE_RETRY_FIXED;
		else
			return load_fail(l, l->line, "retry: \"%.64s\" is not exponential, linear or fixed",
			                 value);
		return 0;
	case KEY_RETRY_BASE:
	case KEY_RETRY_MAX:
		if (lote_duration_parse(value, k == KEY_RETRY_BASE ? &h->retry.base_ms : &h->retry.max_ms,
		                        &e) < 0)
			return load_fail(l, l->line, "%s: %s", name, e.message);
		return 0;
	case KEY_RETRY_JITTER:
		if (parse_real(value, 0, 1, &h->retry.jitter, &e) < 0)
			return load_fail(l, l->line, "retry_jitter: %s", e.message);
		return 0;
	}
	return 0;
}

/* inih's callback for each key = value. */
static int on_value(void *user, const char *section, const char *name,
                    const char *raw)
{
	struct load *l = user;
	char *value;

	(void)section; /* sections are tracked by the reader */
	if (l->rc)
		return 1;
	value = strdup(strcmp(raw, LONG_VALUE) == 0 && l->long_value ? l->long_value : raw);
	if (!value) {
		l->rc = lote__fail(l->err, LOTE_ENOMEM, "out of memory");
		return 1;
	}
	for (char *p = value; (p = strchr(p, SEMI));)
		*p = ';';
	if (l->sec == SEC_LOTE)
		lote_key(l, name, value);
	else if (l->sec == SEC_HANDLER)
		handler_key(l, name, value);
	else
		load_fail(l, l->line,
		          "\"%.64s\" is outside any section (settings go under [lote])", name);
	free(value);
	return 1;
}

int lote__config_load_file(lote__config *cfg, const char *path, lote_error *err)
{
	struct load l = { .cfg = cfg, .path = path, .err = err };
	int r;

	l.f = fopen(path, "r");
	if (!l.f) {
		if (errno == ENOENT)
			return lote__fail(err, LOTE_ENOTFOUND, "config file %s: no such file", path);
		return lote__fail_errno(err, "config file %s", path);
	}
	free(cfg->file);
	if (!(cfg->file = strdup(path))) {
		l.rc = lote__fail(err, LOTE_ENOMEM, "out of memory");
		goto done;
	}
	r = ini_parse_stream(reader, &l, on_value, &l);
	end_section(&l);
	if (!l.rc && r == -2)
		l.rc = lote__fail(err, LOTE_ENOMEM, "out of memory");
	else if (!l.rc && r != 0)
		load_fail(&l, r, "expected [section], key = value, or a comment");
done:
	fclose(l.f);
	free(l.buf);
	free(l.long_value);
	return l.rc;
}

/* ---------------------------------------------------------------------
 * Descriptions
 */

static void flag_name(const char *name, char *buf, size_t len);

static const char *type_name(enum stype t)
{
	static const char *const names[] = { "int", "duration", "string", "bool" };
	return names[t];
}

int lote__config_setting_count(void)
{
	return NSETTINGS;
}

void lote__config_setting(int i, lote__setting_info *ret)
{
	const struct setting *s = &settings[i];

	ret->name = s->name;
	flag_name(s->name, ret->flag, sizeof(ret->flag));
	ret->type = type_name(s->type);
	ret->arg = s->arg;
	ret->def = s->def;
	ret->help = s->help;
	format_range(s, ret->range, sizeof(ret->range));
}

/* The flag of a setting: --name with '_' as '-'. */
static void flag_name(const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s", name);
	for (char *p = buf; *p; p++)
		if (*p == '_')
			*p = '-';
}

/* Prints text wrapped at width, each line after indent spaces. */
static void wrap(FILE *out, const char *text, int indent, int width)
{
	const char *p = text;

	while (*p) {
		int n = (int)strlen(p), cut = n;
		if (n > width) {
			cut = width;
			while (cut > 0 && p[cut] != ' ')
				cut--;
			if (cut == 0)
				cut = width;
		}
		fprintf(out, "%*s%.*s\n", indent, "", cut, p);
		p += cut;
		while (*p == ' ')
			p++;
	}
}

void lote__config_print_help(FILE *out)
{
	for (int i = 0; i < NSETTINGS; i++) {
		const struct setting *s = &settings[i];
		char flag[64], range[64], text[1024];

		flag_name(s->name, flag, sizeof(flag));
		if (s->type == S_BOOL)
			fprintf(out, "    --%s, --no-%s\n", flag, flag);
		else
			fprintf(out, "    --%s %s\n", flag, s->arg);
		format_range(s, range, sizeof(range));
		snprintf(text, sizeof(text), "%s Default: %s%s%s. File key: %s.", s->help,
		         !s->def ? "unset" : *s->def ? s->def : "empty",
		         s->type == S_INT || s->type == S_DURATION ? "; " : "",
		         s->type == S_INT || s->type == S_DURATION ? range : "", s->name);
		wrap(out, text, 8, 68);
	}
}

void lote__config_print_markdown(FILE *out)
{
	fputs("| key | flag | type | default | allowed | meaning |\n"
	      "|---|---|---|---|---|---|\n", out);
	for (int i = 0; i < NSETTINGS; i++) {
		const struct setting *s = &settings[i];
		char flag[64], range[64];

		flag_name(s->name, flag, sizeof(flag));
		format_range(s, range, sizeof(range));
		fprintf(out, "| `%s` | ", s->name);
		if (s->type == S_BOOL)
			fprintf(out, "`--%s`, `--no-%s`", flag, flag);
		else
			fprintf(out, "`--%s %s`", flag, s->arg);
		fprintf(out, " | %s | %s%s%s | %s | %s |\n", type_name(s->type),
		        s->def && *s->def ? "`" : "", !s->def ? "unset" : *s->def ? s->def : "empty",
		        s->def && *s->def ? "`" : "", range, s->help);
	}
}
