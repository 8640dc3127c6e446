/* api.c - see api.h. Every filter value reaches PostgreSQL as a query
 * parameter; only fixed SQL fragments are ever pasted into the text. */
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "api.h"
#include "error.h"

#define MAX_PARAMS 24

static const char *const kind_names[] = { "events", "commands", "batches" };

int lote__api_kind_parse(const char *name)
{
	for (int i = 0; i < 3; i++)
		if (name && strcmp(name, kind_names[i]) == 0)
			return i;
	return -1;
}

const char *lote__api_kind_name(lote__api_kind kind)
{
	return kind_names[kind];
}

void lote__api_actor_cli(lote__api_actor *actor)
{
	struct passwd *pw = getpwuid(getuid());
	char host[64] = "";

	memset(actor, 0, sizeof(*actor));
	strcpy(actor->role, "admin");
	gethostname(host, sizeof(host) - 1);
	snprintf(actor->name, sizeof(actor->name), "cli %s@%s", pw ? pw->pw_name : "?", host);
}

bool lote__api_can_act(const lote__api_actor *actor)
{
	return strcmp(actor->role, "operator") == 0 || strcmp(actor->role, "admin") == 0;
}

/* ---------------------------------------------------------------------
 * Filters
 */

void lote__api_filter_init(lote__api_filter *f)
{
	memset(f, 0, sizeof(*f));
	f->limit = LOTE_API_LIMIT_DEFAULT;
}

void lote__api_filter_done(lote__api_filter *f)
{
	if (!f)
		return;
	free(f->type);
	free(f->status);
	free(f->institution);
	free(f->entity_type);
	free(f->entity_id);
	free(f->from);
	free(f->to);
	free(f->error);
	lote__api_filter_init(f);
}

static bool is_uuid(const char *s)
{
	static const char pat[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
	if (strlen(s) != sizeof(pat) - 1)
		return false;
	for (size_t i = 0; pat[i]; i++)
		if (pat[i] == '-' ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* A type as lote.check_type accepts it. */
static bool is_type(const char *s, size_t n)
{
	if (n == 0 || n > 200 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("_.:-", s[i]))
			return false;
	return true;
}

/* ISO 8601 date or date-time, as far as characters go (PostgreSQL checks
 * the rest and its complaint becomes a 422 too). */
static bool is_timestamp(const char *s)
{
	size_t n = strlen(s);
	if (n < 10 || n > 40)
		return false;
	for (size_t i = 0; i < 10; i++)
		if (i == 4 || i == 7 ? s[i] != '-' : !isdigit((unsigned char)s[i]))
			return false;
	if (n > 10 && s[10] != 'T' && s[10] != ' ')
		return false;
	for (size_t i = 11; i < n; i++)
		if (!isdigit((unsigned char)s[i]) && !strchr(":.+-Z", s[i]))
			return false;
	return true;
}

static int parse_id(const char *key, const char *value, int64_t *ret, lote_error *err)
{
	char *end;
	long long v;

	if (!*value || !isdigit((unsigned char)*value))
		goto bad;
	errno = 0;
	v = strtoll(value, &end, 10);
	if (*end || v <= 0 || errno == ERANGE)
		goto bad;
	*ret = v;
	return 0;
bad:
	return lote__fail(err, LOTE_EINVAL, "%s: \"%.60s\" is not a positive integer id", key, value);
}

static const char *const statuses[3][7] = {
	{ "pending", "processing", "success", "error", NULL },
	{ "awaiting", "pending", "processing", "success", "error", "cancelled", NULL },
	{ "pending", "processing", "success", "error", "cancelled", NULL },
};

static int check_statuses(lote__api_kind kind, const char *value, lote_error *err)
{
	const char *p = value;

	if (!*value)
		return lote__fail(err, LOTE_EINVAL, "status: empty");
	while (*p) {
		size_t n = strcspn(p, ",");
		bool ok = false;
		for (int i = 0; statuses[kind][i]; i++)
			if (strlen(statuses[kind][i]) == n && strncmp(statuses[kind][i], p, n) == 0)
				ok = true;
		if (!ok) {
			char allowed[128] = "";
			for (int i = 0; statuses[kind][i]; i++) {
				strcat(allowed, i ? ", " : "");
				strcat(allowed, statuses[kind][i]);
			}
			return lote__fail(err, LOTE_EINVAL, "status: \"%.*s\" is not a status of %s (%s)",
			                  (int)(n > 40 ? 40 : n), p, kind_names[kind], allowed);
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

static int set_str(char **dst, const char *value, lote_error *err)
{
	char *c = strdup(value);
	if (!c)
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	free(*dst);
	*dst = c;
	return 0;
}

int lote__api_filter_set(lote__api_filter *f, lote__api_kind kind, const char *key,
                         const char *value, lote_error *err)
{
	if (strlen(value) > LOTE_API_TEXT_MAX)
		return lote__fail(err, LOTE_EINVAL, "%s: longer than %d bytes", key, LOTE_API_TEXT_MAX);
	if (strcmp(key, "type") == 0) {
		const char *p = value;
		do {
			size_t n = strcspn(p, ",");
			if (!is_type(p, n))
				return lote__fail(err, LOTE_EINVAL,
				                  "type: \"%.*s\" is not a type name (letters, digits, _ . : -)",
				                  (int)(n > 60 ? 60 : n), p);
			p += n;
		} while (*p++ == ',');
		return set_str(&f->type, value, err);
	}
	if (strcmp(key, "status") == 0) {
		int rc = check_statuses(kind, value, err);
		return rc < 0 ? rc : set_str(&f->status, value, err);
	}
	if (strcmp(key, "institution") == 0) {
		if (!is_uuid(value))
			return lote__fail(err, LOTE_EINVAL, "institution: \"%.60s\" is not a UUID", value);
		return set_str(&f->institution, value, err);
	}
	if (strcmp(key, "entity") == 0) {
		const char *colon = strchr(value, ':');
		size_t n = colon ? (size_t)(colon - value) : strlen(value);
		if (!is_type(value, n) || (colon && !colon[1]))
			return lote__fail(err, LOTE_EINVAL,
			                  "entity: \"%.60s\" is not ENTITY_TYPE or ENTITY_TYPE:ID", value);
		free(f->entity_type);
		free(f->entity_id);
		f->entity_type = strndup(value, n);
		f->entity_id = colon ? strdup(colon + 1) : NULL;
		if (!f->entity_type || (colon && !f->entity_id))
			return lote__fail(err, LOTE_ENOMEM, "out of memory");
		return 0;
	}
	if (strcmp(key, "from") == 0 || strcmp(key, "to") == 0) {
		if (!is_timestamp(value))
			return lote__fail(err, LOTE_EINVAL,
			                  "%s: \"%.60s\" is not an ISO 8601 date or time (2026-01-31 or 2026-01-31T12:00:00Z)",
			                  key, value);
		return set_str(key[0] == 'f' ? &f->from : &f->to, value, err);
	}
	if (strcmp(key, "error") == 0) {
		if (!*value)
			return lote__fail(err, LOTE_EINVAL, "error: empty");
		return set_str(&f->error, value, err);
	}
	if (strcmp(key, "batch") == 0) {
		if (kind == LOTE_API_EVENTS)
			return lote__fail(err, LOTE_EINVAL, "batch: events do not belong to batches");
		return parse_id(key, value, &f->batch, err);
	}
	if (strcmp(key, "origin") == 0) {
		if (kind == LOTE_API_EVENTS)
			return lote__fail(err, LOTE_EINVAL, "origin: events have no origin");
		if (strncmp(value, "event:", 6) == 0)
			return parse_id(key, value + 6, &f->event, err);
		if (strncmp(value, "command:", 8) == 0)
			return parse_id(key, value + 8, &f->parent, err);
		return lote__fail(err, LOTE_EINVAL, "origin: \"%.60s\" is not event:ID or command:ID", value);
	}
	if (strcmp(key, "cursor") == 0) {
		/* "ID", or "US_ID" from a list ordered by created_at */
		const char *us = strchr(value, '_');
		char head[24];
		if (!us) {
			f->cursor_us = 0;
			return parse_id(key, value, &f->cursor, err);
		}
		if ((size_t)(us - value) >= sizeof(head) || parse_id(key, us + 1, &f->cursor, err) < 0)
			return lote__fail(err, LOTE_EINVAL, "cursor: \"%.60s\" is not a next_cursor", value);
		memcpy(head, value, (size_t)(us - value));
		head[us - value] = '\0';
		if (parse_id(key, head, &f->cursor_us, err) < 0)
			return lote__fail(err, LOTE_EINVAL, "cursor: \"%.60s\" is not a next_cursor", value);
		return 0;
	}
	if (strcmp(key, "limit") == 0) {
		int64_t v = 0;
		if (parse_id(key, value, &v, err) < 0 || v > LOTE_API_LIMIT_MAX)
			return lote__fail(err, LOTE_EINVAL, "limit: \"%.20s\" is not a number from 1 to %d",
			                  value, LOTE_API_LIMIT_MAX);
		f->limit = (int)v;
		return 0;
	}
	return lote__fail(err, LOTE_EINVAL,
	                  "unknown filter \"%.40s\" (allowed: type, status, institution, entity, from, to,"
	                  " error, batch, origin, cursor, limit)", key);
}

int lote__api_filter_from_json(lote__api_filter *f, lote__api_kind kind, json_t *obj,
                               const char *const *ignore, lote_error *err)
{
	const char *key;
	json_t *v;

	if (!json_is_object(obj))
		return lote__fail(err, LOTE_EINVAL, "the body must be a JSON object");
	json_object_foreach(obj, key, v) {
		char num[32];
		const char *text;
		bool skip = false;
		int rc;

		for (int i = 0; ignore && ignore[i]; i++)
			if (strcmp(ignore[i], key) == 0)
				skip = true;
		if (skip)
			continue;
		if (json_is_string(v)) {
			text = json_string_value(v);
		} else if (json_is_integer(v)) {
			snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
			text = num;
		} else {
			return lote__fail(err, LOTE_EINVAL, "%.40s: must be a string or an integer", key);
		}
		if ((rc = lote__api_filter_set(f, kind, key, text, err)) < 0)
			return rc;
	}
	return 0;
}

/* ---------------------------------------------------------------------
 * Query building: SQL text in a memstream, values as parameters.
 */

struct query {
	char *sql;
	size_t len;
	FILE *out;
	const char *params[MAX_PARAMS];
	char nums[MAX_PARAMS][24];
	int n;
};

static void q_init(struct query *q)
{
	memset(q, 0, sizeof(*q));
	q->out = open_memstream(&q->sql, &q->len);
}

static void q_done(struct query *q)
{
	if (q->out)
		fclose(q->out);
	free(q->sql);
}

/* Adds a parameter and returns its number ($n). */
static int q_param(struct query *q, const char *value)
{
	if (q->n == MAX_PARAMS)
		return 1; /* not reachable with the filters we have */
	q->params[q->n] = value;
	return ++q->n;
}

static int q_param_id(struct query *q, int64_t v)
{
	snprintf(q->nums[q->n], sizeof(q->nums[0]), "%lld", (long long)v);
	return q_param(q, q->nums[q->n]);
}

/* Runs the query; its one result column (JSON text) parsed into *ret.
 * With a name, as that prepared statement of the connection, prepared on
 * first use: for a query whose planning costs more than its run (the
 * lineage tree reads the archive view several times: ~10 ms to plan at
 * 18 leaves, under 1 ms to run). The name must stand for one SQL text. */
static int q_run_json_as(struct query *q, PGconn *conn, const char *name, json_t **ret,
                         lote_error *err)
{
	PGresult *res;
	json_t *v = NULL;
	int rc = 0;

	if (!q->out || fflush(q->out) != 0)
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	if (!name) {
		res = PQexecParams(conn, q->sql, q->n, NULL, q->params, NULL, NULL, 0);
	} else {
		const char *st;
		res = PQexecPrepared(conn, name, q->n, q->params, NULL, NULL, 0);
		st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (PQresultStatus(res) == PGRES_FATAL_ERROR && st && strcmp(st, "26000") == 0) {
			/* not prepared on this connection yet */
			PQclear(res);
			res = PQprepare(conn, name, q->sql, q->n, NULL);
			if (PQresultStatus(res) == PGRES_COMMAND_OK) {
				PQclear(res);
				res = PQexecPrepared(conn, name, q->n, q->params, NULL, NULL, 0);
			}
		}
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		rc = lote__fail_pg(err, conn, res, NULL);
		/* a value PostgreSQL rejects (a date like 2026-13-45) is bad input */
		if (st && strncmp(st, "22", 2) == 0)
			rc = err ? (err->code = LOTE_EINVAL) : LOTE_EINVAL;
		else if (st && strcmp(st, "P0002") == 0)
			rc = err ? (err->code = LOTE_ENOTFOUND) : LOTE_ENOTFOUND;
		else if (st && strcmp(st, "55000") == 0)
			rc = err ? (err->code = LOTE_ESTATE) : LOTE_ESTATE;
		goto done;
	}
	if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
		rc = lote__fail(err, LOTE_ENOTFOUND, "not found");
		goto done;
	}
	v = json_loads(PQgetvalue(res, 0, 0), JSON_DECODE_ANY, NULL);
	if (!v)
		rc = lote__fail(err, LOTE_ENOMEM, "could not parse the database's JSON");
	else
		*ret = v;
done:
	PQclear(res);
	return rc;
}

static int q_run_json(struct query *q, PGconn *conn, json_t **ret, lote_error *err)
{
	return q_run_json_as(q, conn, NULL, ret, err);
}

static bool has_relation(PGconn *conn, const char *name)
{
	const char *p[1] = { name };
	PGresult *res = PQexecParams(conn, "SELECT to_regclass($1) IS NOT NULL", 1, NULL, p,
	                             NULL, NULL, 0);
	bool yes = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	           strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return yes;
}

const char *lote__api_source(PGconn *conn, lote__api_kind kind)
{
	static const char *const all[] = { "lote.events_all", "lote.commands_all", "lote.batches_all" };
	static const char *const hot[] = { "lote.events", "lote.commands", "lote.batches" };
	return has_relation(conn, all[kind]) ? all[kind] : hot[kind];
}

/* A row as JSON with the SQL column names; duration in milliseconds. */
#define ROW_JSON(alias, drop) \
	"(to_jsonb(" alias ") - 'duration'" drop " || jsonb_build_object('duration'," \
	" round(extract(epoch FROM " alias ".duration) * 1000, 3)))"

/* A time range lists newest first by created_at: the (created_at, id)
 * index of each archive leaf then serves it (created_at cannot prune the
 * archive, partitioned by finished_at; ordered by id, the planner walked
 * every leaf's id index: seconds at 10M rows). */
static bool by_time(const lote__api_filter *f)
{
	return f && (f->from || f->to);
}

/* How many distinct values a comma list holds; *ret_dup says whether one
 * repeats. */
static int count_values(const char *list, bool *ret_dup)
{
	int n = 0;
	*ret_dup = false;
	for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
		size_t len = strcspn(p, ",");
		for (const char *o = list; o < p; o += strcspn(o, ",") + 1)
			if (strcspn(o, ",") == len && strncmp(o, p, len) == 0)
				*ret_dup = true;
		n++;
	}
	return n;
}

/* Appends " AND …" for the actor's scope and every filter; with type_k
 * > 0, the type filter keeps only the type_k-th value of its list. */
static void add_where_k(struct query *q, PGconn *conn, lote__api_kind kind,
                        const lote__api_filter *f, const lote__api_actor *actor, int type_k)
{
	if (actor && actor->institution[0])
		fprintf(q->out, " AND t.institution_id = $%d::uuid", q_param(q, actor->institution));
	if (!f)
		return;
	/* One value as equality: the (type, id) index of each archive leaf
	 * then yields rows in id order; "= ANY (array)" cannot, and each leaf
	 * is walked by id until the page is full (160 ms at 10M rows). */
	if (f->type && type_k > 0)
		fprintf(q->out, " AND t.type = (string_to_array($%d, ','))[%d]", q_param(q, f->type), type_k);
	else if (f->type)
		fprintf(q->out, strchr(f->type, ',') ? " AND t.type = ANY (string_to_array($%d, ','))"
		                                      : " AND t.type = $%d", q_param(q, f->type));
	if (f->status)
		fprintf(q->out, strchr(f->status, ',') ? " AND t.status = ANY (string_to_array($%d, ','))"
		                                        : " AND t.status = $%d", q_param(q, f->status));
	if (f->institution)
		fprintf(q->out, " AND t.institution_id = $%d::uuid", q_param(q, f->institution));
	if (f->entity_type) {
		if (kind == LOTE_API_EVENTS) {
			fprintf(q->out, " AND t.entity_type = $%d", q_param(q, f->entity_type));
			if (f->entity_id)
				fprintf(q->out, " AND t.entity_id = $%d", q_param(q, f->entity_id));
		} else if (f->entity_id) {
			/* one entity's events, few: their ids as an array, so each
			 * leaf's (event_id, id) index is probed (as "IN (SELECT …)"
			 * the planner walked every leaf by id: 3 s at 10M rows) */
			int et = q_param(q, f->entity_type), ei = q_param(q, f->entity_id);
			fprintf(q->out, " AND t.event_id = ANY (ARRAY(SELECT e.id FROM %s e"
			                " WHERE e.entity_type = $%d AND e.entity_id = $%d))",
			        lote__api_source(conn, LOTE_API_EVENTS), et, ei);
		} else {
			fprintf(q->out, " AND t.event_id IN (SELECT e.id FROM %s e WHERE e.entity_type = $%d)",
			        lote__api_source(conn, LOTE_API_EVENTS), q_param(q, f->entity_type));
		}
	}
	if (f->from)
		fprintf(q->out, " AND t.created_at >= $%d::timestamptz", q_param(q, f->from));
	if (f->to)
		fprintf(q->out, " AND t.created_at < $%d::timestamptz", q_param(q, f->to));
	if (f->error)
		fprintf(q->out, " AND strpos(lower(t.error), lower($%d)) > 0", q_param(q, f->error));
	if (f->batch) {
		int k = q_param_id(q, f->batch);
		/* members by their id range (sql/006_batch_members.sql): the
		 * primary key finds them, not an index entry per row version */
		if (kind == LOTE_API_BATCHES)
			fprintf(q->out, " AND t.id = $%d::bigint", k);
		else
			fprintf(q->out, " AND t.batch_id = $%d::bigint AND t.id BETWEEN"
			        " lote.batch_first_member($%d::bigint) AND lote.batch_last_member($%d::bigint)",
			        k, k, k);
	}
	if (f->event)
		fprintf(q->out, " AND t.event_id = $%d::bigint", q_param_id(q, f->event));
	if (f->parent)
		fprintf(q->out, " AND t.parent_id = $%d::bigint", q_param_id(q, f->parent));
	if (f->cursor && !by_time(f))
		fprintf(q->out, " AND t.id < $%d::bigint", q_param_id(q, f->cursor));
	else if (f->cursor && f->cursor_us)
		fprintf(q->out, " AND (t.created_at, t.id) < ('epoch'::timestamptz + $%d::bigint"
		                " * interval '1 microsecond', $%d::bigint)",
		        q_param_id(q, f->cursor_us), q_param_id(q, f->cursor));
	else if (f->cursor) { /* a plain id: that row's place */
		int id = q_param_id(q, f->cursor);
		fprintf(q->out, " AND (t.created_at, t.id) < ((SELECT c.created_at FROM %s c"
		                " WHERE c.id = $%d::bigint), $%d::bigint)",
		        lote__api_source(conn, kind), id, id);
	}
}

static void add_where(struct query *q, PGconn *conn, lote__api_kind kind,
                      const lote__api_filter *f, const lote__api_actor *actor)
{
	add_where_k(q, conn, kind, f, actor, 0);
}

/* Progress of a batch from its members (replaced members left out). */
#define BATCH_PROGRESS(alias) \
	"(SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM (SELECT c.status, count(*) AS n" \
	" FROM lote.commands c WHERE c.batch_id = " alias ".id AND c.replaced_by IS NULL" \
	" AND c.id BETWEEN lote.batch_first_member(" alias ".id) AND lote.batch_last_member(" alias ".id)" \
	" GROUP BY c.status) s)"

/* The same once the archive exists: an archived batch's members moved
 * with it (sql/003_archive.sql), so each branch runs only for its side
 * (a one-time filter) and a hot batch costs what it did. In the archive
 * every row of the batch is a member: its (batch_id, id) index finds
 * them without the id range. */
#define BATCH_PROGRESS_ALL(alias) \
	"(SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM (SELECT c.status, count(*) AS n FROM (" \
	"SELECT c.status FROM lote.commands c WHERE NOT " alias ".archived" \
	" AND c.batch_id = " alias ".id AND c.replaced_by IS NULL" \
	" AND c.id BETWEEN lote.batch_first_member(" alias ".id) AND lote.batch_last_member(" alias ".id)" \
	" UNION ALL SELECT c.status FROM lote.commands_archive c WHERE " alias ".archived" \
	" AND c.batch_id = " alias ".id AND c.replaced_by IS NULL) c" \
	" GROUP BY c.status) s)"

/* The progress of batch "t" read from src (lote__api_source()'s). */
static const char *batch_progress(const char *src)
{
	return strcmp(src, "lote.batches_all") == 0 ? BATCH_PROGRESS_ALL("t") : BATCH_PROGRESS("t");
}

int lote__api_list(PGconn *conn, lote__api_kind kind, const lote__api_filter *f,
                   const lote__api_actor *actor, json_t **ret, lote_error *err)
{
	const char *order = by_time(f) ? "t.created_at DESC, t.id DESC" : "t.id DESC";
	const char *key = by_time(f) ? "round(extract(epoch FROM t.created_at) * 1000000)::bigint || '_' || t.id"
	                             : "t.id::text";
	bool dup = false;
	const char *src = lote__api_source(conn, kind);
	int types = f->type ? count_values(f->type, &dup) : 0;
	struct query q;
	json_t *page = NULL, *items, *keys, *out;
	int rc;

	/* The page's rows first, JSON only for them (built for every matching
	 * row before the LIMIT, it cost as much as the search); "keys" holds
	 * each row's cursor. */
	q_init(&q);
	if (q.out) {
		fprintf(q.out, "SELECT jsonb_build_object('items', coalesce(jsonb_agg(%s%s%s%s ORDER BY %s), '[]'),"
		               " 'keys', coalesce(jsonb_agg(%s ORDER BY %s), '[]')) FROM (",
		        ROW_JSON("t", " - 'data'"),
		        kind == LOTE_API_BATCHES ? " || jsonb_build_object('progress', " : "",
		        kind == LOTE_API_BATCHES ? batch_progress(src) : "",
		        kind == LOTE_API_BATCHES ? ")" : "",
		        order, key, order);
		if (types > 1 && types <= LOTE_API_TYPES_MERGED && !dup) {
			/* Several types: one ordered index read per type, merged
			 * (as "= ANY" the newest rows of any of them were searched
			 * by id through every leaf: seconds at 10M rows). Every
			 * branch sends the same parameters. */
			fputs("SELECT * FROM (", q.out);
			for (int k = 1; k <= types; k++) {
				q.n = 0;
				fprintf(q.out, "%s(SELECT * FROM %s t WHERE true", k > 1 ? " UNION ALL " : "",
				        src);
				add_where_k(&q, conn, kind, f, actor, k);
				fprintf(q.out, " ORDER BY %s LIMIT %d)", order, f->limit + 1);
			}
			fprintf(q.out, ") t ORDER BY %s LIMIT %d) t", order, f->limit + 1);
		} else {
			fprintf(q.out, "SELECT * FROM %s t WHERE true", src);
			add_where(&q, conn, kind, f, actor);
			fprintf(q.out, " ORDER BY %s LIMIT %d) t", order, f->limit + 1);
		}
	}
	rc = q_run_json(&q, conn, &page, err);
	q_done(&q);
	if (rc < 0)
		return rc;
	items = json_incref(json_object_get(page, "items"));
	keys = json_object_get(page, "keys");
	out = json_object();
	if (!items || !out) {
		json_decref(items);
		json_decref(out);
		json_decref(page);
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	}
	if (json_array_size(items) > (size_t)f->limit) {
		json_array_remove(items, (size_t)f->limit);
		json_object_set(out, "next_cursor", json_array_get(keys, (size_t)f->limit - 1));
	} else {
		json_object_set_new(out, "next_cursor", json_null());
	}
	json_object_set_new(out, "items", items);
	json_decref(page);
	*ret = out;
	return 0;
}

/* ---------------------------------------------------------------------
 * Details
 */

/* The whole family of a command: from its topmost ancestor (and that
 * one's event) down, bounded by LOTE_API_TREE_MAX nodes. */
static const char tree_sql[] =
	"WITH RECURSIVE up AS ("
	"  SELECT id, parent_id, event_id, 0 AS depth FROM %1$s WHERE id = $1"
	"  UNION ALL SELECT c.id, c.parent_id, c.event_id, up.depth + 1 FROM %1$s c"
	"  JOIN up ON c.id = up.parent_id WHERE up.depth < 100),"
	" root AS (SELECT id, event_id FROM up ORDER BY depth DESC LIMIT 1),"
	" down AS ("
	"  SELECT c.id, c.type, c.status, c.parent_id, c.event_id, c.batch_id, c.original_id,"
	"         c.replaced_by, c.institution_id, c.created_at, c.error, 0 AS depth"
	"  FROM %1$s c WHERE c.id = (SELECT id FROM root)"
	"  UNION ALL"
	"  SELECT c.id, c.type, c.status, c.parent_id, c.event_id, c.batch_id, c.original_id,"
	"         c.replaced_by, c.institution_id, c.created_at, c.error, 0"
	"  FROM %1$s c WHERE c.event_id = (SELECT event_id FROM root) AND c.parent_id IS NULL"
	"    AND c.id <> (SELECT id FROM root)"
	"  UNION ALL"
	"  SELECT c.id, c.type, c.status, c.parent_id, c.event_id, c.batch_id, c.original_id,"
	"         c.replaced_by, c.institution_id, c.created_at, c.error, down.depth + 1"
	"  FROM %1$s c JOIN down ON c.parent_id = down.id WHERE down.depth < 50),"
	" nodes AS (SELECT * FROM down LIMIT %3$d + 1)"
	"SELECT jsonb_build_object("
	" 'event', (SELECT to_jsonb(e) - 'data' FROM %2$s e, root WHERE e.id = root.event_id),"
	" 'commands', (SELECT coalesce(jsonb_agg(to_jsonb(n) - 'depth' ORDER BY n.id), '[]')"
	"              FROM (SELECT * FROM nodes ORDER BY id LIMIT %3$d) n),"
	" 'batches', (SELECT coalesce(jsonb_agg(to_jsonb(b) - 'duration' ORDER BY b.id), '[]') FROM %4$s b"
	"             WHERE b.id IN (SELECT batch_id FROM nodes UNION SELECT b2.id FROM %4$s b2"
	"                            WHERE b2.next_command_id IN (SELECT id FROM nodes))),"
	" 'truncated', (SELECT count(*) > %3$d FROM nodes))";

int lote__api_get(PGconn *conn, lote__api_kind kind, int64_t id, const lote__api_actor *actor,
                  json_t **ret, lote_error *err)
{
	const char *src = lote__api_source(conn, kind);
	struct query q;
	json_t *out = NULL, *tree = NULL;
	int rc;

	q_init(&q);
	if (!q.out)
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	q_param_id(&q, id);
	switch (kind) {
	case LOTE_API_COMMANDS:
		fprintf(q.out, "SELECT jsonb_build_object('command', %s,"
		               " 'lineage', lote.lineage(t.id),"
		               " 'follow_up_of', (SELECT b.id FROM %s b WHERE b.next_command_id = t.id LIMIT 1))"
		               " FROM %s t WHERE t.id = $1",
		        ROW_JSON("t", ""), lote__api_source(conn, LOTE_API_BATCHES), src);
		break;
	case LOTE_API_EVENTS:
		fprintf(q.out, "SELECT jsonb_build_object('event', %s,"
		               " 'commands', (SELECT coalesce(jsonb_agg(%s ORDER BY c.id), '[]') FROM"
		               "   (SELECT * FROM %s c WHERE c.event_id = t.id ORDER BY c.id LIMIT %d) c))"
		               " FROM %s t WHERE t.id = $1",
		        ROW_JSON("t", ""), ROW_JSON("c", " - 'data'"),
		        lote__api_source(conn, LOTE_API_COMMANDS), LOTE_API_TREE_MAX, src);
		break;
	case LOTE_API_BATCHES:
		fprintf(q.out, "SELECT jsonb_build_object('batch', %s,"
		               " 'progress', %s,"
		               " 'next', (SELECT %s FROM %s c WHERE c.id = t.next_command_id),"
		               " 'members', (SELECT coalesce(jsonb_agg(%s ORDER BY c.id), '[]') FROM"
		               "   (SELECT * FROM %s c WHERE c.batch_id = t.id AND c.id BETWEEN"
		               "    lote.batch_first_member(t.id) AND lote.batch_last_member(t.id)"
		               "    ORDER BY c.id LIMIT %d) c))"
		               " FROM %s t WHERE t.id = $1",
		        ROW_JSON("t", ""), batch_progress(src), ROW_JSON("c", " - 'data'"),
		        lote__api_source(conn, LOTE_API_COMMANDS), ROW_JSON("c", " - 'data'"),
		        lote__api_source(conn, LOTE_API_COMMANDS), LOTE_API_TREE_MAX, src);
		break;
	}
	add_where(&q, conn, kind, NULL, actor);
	rc = q_run_json(&q, conn, &out, err);
	q_done(&q);
	if (rc == 0 && kind != LOTE_API_BATCHES) {
		/* the attempts that did not succeed (issue 4's history) */
		const char *att = has_relation(conn, "lote.attempts_all") ? "lote.attempts_all"
		                : has_relation(conn, "lote.attempts") ? "lote.attempts" : NULL;
		json_t *a = NULL;
		if (att) {
			q_init(&q);
			if (q.out) {
				q_param_id(&q, id);
				fprintf(q.out, "SELECT coalesce(jsonb_agg(to_jsonb(a) ORDER BY a.attempt, a.id), '[]')"
				               " FROM %s a WHERE a.kind = '%s' AND a.row_id = $1",
				        att, kind == LOTE_API_COMMANDS ? "command" : "event");
				rc = q_run_json(&q, conn, &a, err);
			}
			q_done(&q);
		}
		json_object_set_new(out, "attempts", a ? a : json_array());
		if (rc < 0) {
			json_decref(out);
			return rc;
		}
	}
	if (rc < 0) {
		if (rc == LOTE_ENOTFOUND)
			lote__fail(err, rc, "no %s %lld", kind == LOTE_API_BATCHES ? "batch"
			           : kind == LOTE_API_EVENTS ? "event" : "command", (long long)id);
		return rc;
	}
	if (kind == LOTE_API_COMMANDS) {
		q_init(&q);
		if (!q.out) {
			json_decref(out);
			return lote__fail(err, LOTE_ENOMEM, "out of memory");
		}
		q_param_id(&q, id);
		fprintf(q.out, tree_sql, src, lote__api_source(conn, LOTE_API_EVENTS), LOTE_API_TREE_MAX,
		        lote__api_source(conn, LOTE_API_BATCHES));
		/* one name per text: the sources are the hot tables until the
		 * archive's views exist */
		rc = q_run_json_as(&q, conn, strcmp(src, "lote.commands") == 0 ? "lote_api_tree_hot"
		                                                               : "lote_api_tree_all",
		                   &tree, err);
		q_done(&q);
		if (rc < 0) {
			json_decref(out);
			return rc;
		}
		json_object_set_new(out, "tree", tree);
	}
	*ret = out;
	return 0;
}

/* ---------------------------------------------------------------------
 * Summary, workers, schedules, errors, audit
 */

/* %1$s: " AND institution_id = $1::uuid" or "" */
static const char summary_sql[] =
	/* one status per branch, so each reads its partial index (the hot
	 * tables may hold many finished rows until they are archived) */
	"WITH live AS ("
	"  SELECT 'command' AS kind, type, 'awaiting' AS status, count(*) AS n FROM lote.commands"
	"  WHERE status = 'awaiting'%1$s GROUP BY type"
	"  UNION ALL SELECT 'command', type, 'pending', count(*) FROM lote.commands"
	"  WHERE status = 'pending'%1$s GROUP BY type"
	"  UNION ALL SELECT 'command', type, 'processing', count(*) FROM lote.commands"
	"  WHERE status = 'processing'%1$s GROUP BY type"
	"  UNION ALL SELECT 'event', type, 'pending', count(*) FROM lote.events"
	"  WHERE status = 'pending'%1$s GROUP BY type"
	"  UNION ALL SELECT 'event', type, 'processing', count(*) FROM lote.events"
	"  WHERE status = 'processing'%1$s GROUP BY type),"
	" done AS ("
	"  SELECT kind, type, status, sum(n)::bigint AS n FROM lote.stats_total_all WHERE true%1$s"
	"  GROUP BY kind, type, status),"
	" recent AS ("
	"  SELECT kind, bucket, status, sum(n)::bigint AS n FROM lote.stats_all"
	"  WHERE bucket >= date_trunc('minute', now()) - interval '59 minutes'%1$s"
	"  GROUP BY kind, bucket, status),"
	" allc AS (SELECT * FROM live UNION ALL SELECT * FROM done)"
	"SELECT jsonb_build_object("
	" 'now', now(),"
	" 'institution', %2$s,"
	" 'commands', jsonb_build_object("
	"   'by_status', (SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM"
	"      (SELECT status, sum(n)::bigint AS n FROM allc WHERE kind = 'command' GROUP BY status) s),"
	"   'by_type', (SELECT coalesce(jsonb_agg(jsonb_build_object('type', type) || st ORDER BY type), '[]') FROM"
	"      (SELECT type, jsonb_object_agg(status, n) AS st FROM"
	"        (SELECT type, status, sum(n)::bigint AS n FROM allc WHERE kind = 'command' GROUP BY type, status) s"
	"       GROUP BY type) s),"
	"   'oldest_pending_age_s', (SELECT round(extract(epoch FROM now() - min(run_at))::numeric, 1)"
	"      FROM lote.commands WHERE status = 'pending' AND run_at <= now()%1$s)),"
	" 'events', jsonb_build_object("
	"   'by_status', (SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM"
	"      (SELECT status, sum(n)::bigint AS n FROM allc WHERE kind = 'event' GROUP BY status) s),"
	"   'oldest_pending_age_s', (SELECT round(extract(epoch FROM now() - min(run_at))::numeric, 1)"
	"      FROM lote.events WHERE status = 'pending' AND run_at <= now()%1$s)),"
	" 'batches', jsonb_build_object('open', (SELECT count(*) FROM lote.batches"
	"      WHERE status IN ('pending', 'processing', 'error')%1$s),"
	"   'failed', (SELECT count(*) FROM lote.batches WHERE status = 'error'%1$s)),"
	" 'throughput', (SELECT jsonb_agg(jsonb_build_object('t', m,"
	"      'success', coalesce((SELECT sum(n) FROM recent r WHERE r.kind = 'command' AND r.bucket = m"
	"                            AND r.status = 'success'), 0),"
	"      'error', coalesce((SELECT sum(n) FROM recent r WHERE r.kind = 'command' AND r.bucket = m"
	"                            AND r.status = 'error'), 0),"
	"      'events', coalesce((SELECT sum(n) FROM recent r WHERE r.kind = 'event' AND r.bucket = m), 0))"
	"      ORDER BY m)"
	"    FROM generate_series(date_trunc('minute', now()) - interval '59 minutes',"
	"                         date_trunc('minute', now()), interval '1 minute') m),"
	/* coalesce: with no error in the hour the filtered sum is NULL */
	" 'error_rate_1h', (SELECT CASE WHEN sum(n) > 0 THEN round(coalesce(sum(n) FILTER (WHERE status = 'error'), 0)"
	"      ::numeric / sum(n), 4) ELSE 0 END FROM recent WHERE kind = 'command'),"
	" 'by_institution', %3$s,"
	" 'workers', (SELECT count(*) FROM lote.workers WHERE heartbeat_at > now() - interval '1 minute'))";

static const char by_institution_sql[] =
	"(SELECT coalesce(jsonb_agg(jsonb_build_object('institution_id', institution_id,"
	" 'finished', n) ORDER BY n DESC), '[]') FROM (SELECT institution_id, sum(n)::bigint AS n"
	" FROM lote.stats_total_all WHERE kind = 'command' GROUP BY institution_id"
	" ORDER BY n DESC LIMIT 20) s)";

int lote__api_summary(PGconn *conn, const lote__api_actor *actor, json_t **ret, lote_error *err)
{
	bool scoped = actor && actor->institution[0];
	struct query q;
	int rc;

	/* best effort: fresher counters; skipped when another process folds */
	PQclear(PQexec(conn, "SELECT lote.stats_fold()"));
	q_init(&q);
	if (!q.out)
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	if (scoped)
		q_param(&q, actor->institution);
	fprintf(q.out, summary_sql, scoped ? " AND institution_id = $1::uuid" : "",
	        scoped ? "to_jsonb($1::text)" : "NULL::jsonb",
	        scoped ? "'[]'::jsonb" : by_institution_sql);
	rc = q_run_json(&q, conn, ret, err);
	q_done(&q);
	return rc;
}

int lote__api_workers(PGconn *conn, json_t **ret, lote_error *err)
{
	struct query q;
	int rc;

	q_init(&q);
	if (!q.out)
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	fputs("SELECT coalesce(jsonb_agg(to_jsonb(w) || jsonb_build_object("
	      " 'running', (SELECT coalesce(jsonb_agg(jsonb_build_object('id', c.id, 'type', c.type,"
	      "   'institution_id', c.institution_id, 'started_at', c.started_at) ORDER BY c.id), '[]')"
	      "   FROM (SELECT * FROM lote.commands c WHERE c.status = 'processing' AND c.worker_id = w.id"
	      "         ORDER BY c.id LIMIT 20) c),"
	      " 'alive', w.heartbeat_at > now() - interval '1 minute')"
	      " ORDER BY w.host, w.pid), '[]') FROM lote.workers w", q.out);
	rc = q_run_json(&q, conn, ret, err);
	q_done(&q);
	return rc;
}

int lote__api_schedules(PGconn *conn, json_t **ret, lote_error *err)
{
	struct query q;
	int rc;

	if (!has_relation(conn, "lote.schedules")) {
		*ret = json_array();
		return 0;
	}
	q_init(&q);
	if (!q.out)
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	fputs("SELECT coalesce(jsonb_agg(to_jsonb(s)), '[]') FROM lote.schedules s", q.out);
	rc = q_run_json(&q, conn, ret, err);
	q_done(&q);
	return rc;
}

int lote__api_errors(PGconn *conn, const lote__api_actor *actor, json_t **ret, lote_error *err)
{
	struct query q;
	int rc;

	q_init(&q);
	if (!q.out)
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	/* The message with its "attempt N: " prefix and digits blurred, so
	 * "timeout after 3012ms" and "… 2998ms" are one group. Reads the
	 * newest 10000 failures: a dashboard question, not a report. */
	fprintf(q.out,
	        "SELECT coalesce(jsonb_agg(g ORDER BY g.count DESC, g.type), '[]') FROM ("
	        " SELECT type, left(regexp_replace(regexp_replace(coalesce(error, ''), '^attempt \\d+: ', ''),"
	        "   '\\d+', 'N', 'g'), 200) AS message, count(*) AS count, max(finished_at) AS last_at,"
	        "   min(id) AS example_id,"
	        "   min(left(regexp_replace(coalesce(error, ''), '^attempt \\d+: ', ''), 200)) AS example"
	        " FROM (SELECT * FROM %s t WHERE t.status = 'error' AND t.replaced_by IS NULL",
	        lote__api_source(conn, LOTE_API_COMMANDS));
	add_where(&q, conn, LOTE_API_COMMANDS, NULL, actor);
	fputs(" ORDER BY t.id DESC LIMIT 10000) t GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 50) g", q.out);
	rc = q_run_json(&q, conn, ret, err);
	q_done(&q);
	return rc;
}

int lote__api_audit(PGconn *conn, const lote__api_actor *actor, int64_t cursor, int limit,
                    json_t **ret, lote_error *err)
{
	struct query q;
	int rc;

	q_init(&q);
	if (!q.out)
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	fputs("SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.id DESC), '[]') FROM"
	      " (SELECT * FROM lote.audit_log t WHERE true", q.out);
	if (actor && actor->institution[0])
		fprintf(q.out, " AND t.institution_id = $%d::uuid", q_param(&q, actor->institution));
	if (cursor)
		fprintf(q.out, " AND t.id < $%d::bigint", q_param_id(&q, cursor));
	fprintf(q.out, " ORDER BY t.id DESC LIMIT %d) t", limit);
	rc = q_run_json(&q, conn, ret, err);
	q_done(&q);
	return rc;
}

/* ---------------------------------------------------------------------
 * Actions
 */

static int begin(PGconn *conn, lote_error *err)
{
	PGresult *res = PQexec(conn, "BEGIN");
	int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : lote__fail_pg(err, conn, res, NULL);
	PQclear(res);
	return rc;
}

static int commit(PGconn *conn, lote_error *err)
{
	PGresult *res = PQexec(conn, "COMMIT");
	int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : lote__fail_pg(err, conn, res, NULL);
	PQclear(res);
	return rc;
}

static void rollback(PGconn *conn)
{
	PQclear(PQexec(conn, "ROLLBACK"));
}

/* Records an action in the audit log (inside the action's transaction). */
static int audit(PGconn *conn, const lote__api_actor *actor, const char *action,
                 const char *target, json_t *detail, lote_error *err)
{
	char tok[24];
	char *d = json_dumps(detail ? detail : json_object(), JSON_COMPACT);
	const char *p[7] = { actor->name, NULL, actor->institution[0] ? actor->institution : NULL,
	                     action, target, d, actor->remote[0] ? actor->remote : NULL };
	PGresult *res;
	int rc = 0;

	if (actor->token_id) {
		snprintf(tok, sizeof(tok), "%lld", (long long)actor->token_id);
		p[1] = tok;
	}
	res = PQexecParams(conn, "INSERT INTO lote.audit_log (actor, token_id, institution_id,"
	                         " action, target, detail, remote_addr)"
	                         " VALUES ($1, $2, $3, $4, $5, $6, $7)", 7, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = lote__fail_pg(err, conn, res, "audit log");
	PQclear(res);
	free(d);
	return rc;
}

/* Runs an action query (one JSON column) plus its audit entry in one
 * transaction. detail is borrowed. */
static int act(PGconn *conn, struct query *q, const lote__api_actor *actor, const char *action,
               const char *target, json_t **ret, lote_error *err)
{
	json_t *out = NULL;
	int rc;

	if ((rc = begin(conn, err)) < 0)
		return rc;
	if ((rc = q_run_json(q, conn, &out, err)) < 0 ||
	    (rc = audit(conn, actor, action, target, out, err)) < 0 ||
	    (rc = commit(conn, err)) < 0) {
		rollback(conn);
		json_decref(out);
		return rc;
	}
	*ret = out;
	return 0;
}

/* The scope check for actions: the row exists and the actor may see it. */
static int check_scope(PGconn *conn, lote__api_kind kind, int64_t id,
                       const lote__api_actor *actor, lote_error *err)
{
	struct query q;
	json_t *v = NULL;
	int rc;

	q_init(&q);
	if (!q.out)
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	q_param_id(&q, id);
	fprintf(q.out, "SELECT to_jsonb(t.id) FROM %s t WHERE t.id = $1",
	        kind == LOTE_API_BATCHES ? "lote.batches" : "lote.commands");
	add_where(&q, conn, kind, NULL, actor);
	rc = q_run_json(&q, conn, &v, err);
	q_done(&q);
	json_decref(v);
	if (rc == LOTE_ENOTFOUND)
		lote__fail(err, rc, "no %s %lld", kind == LOTE_API_BATCHES ? "batch" : "command",
		           (long long)id);
	return rc;
}

int lote__api_reprocess(PGconn *conn, int64_t id, const lote__api_actor *actor, json_t **ret,
                        lote_error *err)
{
	struct query q;
	char target[48];
	int rc;

	if ((rc = check_scope(conn, LOTE_API_COMMANDS, id, actor, err)) < 0)
		return rc;
	q_init(&q);
	if (!q.out)
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	q_param_id(&q, id);
	fputs("SELECT jsonb_build_object('id', lote.reprocess($1::bigint), 'original_id', $1::bigint)", q.out);
	snprintf(target, sizeof(target), "command %lld", (long long)id);
	rc = act(conn, &q, actor, "command.reprocess", target, ret, err);
	q_done(&q);
	return rc;
}

int lote__api_cancel(PGconn *conn, lote__api_kind kind, int64_t id, const lote__api_actor *actor,
                     json_t **ret, lote_error *err)
{
	struct query q;
	char target[48];
	int rc;

	if (kind == LOTE_API_EVENTS)
		return lote__fail(err, LOTE_EINVAL, "events cannot be cancelled");
	if ((rc = check_scope(conn, kind, id, actor, err)) < 0)
		return rc;
	q_init(&q);
	if (!q.out)
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	q_param_id(&q, id);
	if (kind == LOTE_API_COMMANDS)
		fputs("SELECT jsonb_build_object('id', $1::bigint, 'cancelled', lote.cancel($1::bigint))", q.out);
	else
		fputs("SELECT jsonb_build_object('id', $1::bigint, 'cancelled', lote.cancel_batch($1::bigint))", q.out);
	snprintf(target, sizeof(target), "%s %lld", kind == LOTE_API_COMMANDS ? "command" : "batch",
	         (long long)id);
	rc = act(conn, &q, actor, kind == LOTE_API_COMMANDS ? "command.cancel" : "batch.cancel",
	         target, ret, err);
	q_done(&q);
	return rc;
}

/* The filter as JSON, for the audit log's target. */
static char *filter_text(const lote__api_filter *f)
{
	json_t *o = json_object();
	char *s;
#define PUT(k, v) do { if (v) json_object_set_new(o, k, json_string(v)); } while (0)
	PUT("type", f->type);
	PUT("status", f->status);
	PUT("institution", f->institution);
	PUT("entity_type", f->entity_type);
	PUT("entity_id", f->entity_id);
	PUT("from", f->from);
	PUT("to", f->to);
	PUT("error", f->error);
#undef PUT
	if (f->batch)
		json_object_set_new(o, "batch", json_integer(f->batch));
	if (f->event)
		json_object_set_new(o, "event", json_integer(f->event));
	if (f->parent)
		json_object_set_new(o, "parent", json_integer(f->parent));
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}

/* Whether f narrows the rows at all (limit and cursor only page them). */
static bool filter_narrows(const lote__api_filter *f)
{
	return f->type || f->status || f->institution || f->entity_type || f->from || f->to ||
	       f->error || f->batch || f->event || f->parent;
}

int lote__api_reprocess_bulk(PGconn *conn, const lote__api_filter *f, bool dry_run,
                             const lote__api_actor *actor, json_t **ret, lote_error *err)
{
	lote__api_filter g = *f;
	struct query q;
	char *target;
	int rc;

	/* no filter would run every failed command again (up to 10000 a
	 * call): that takes a filter said on purpose */
	if (!dry_run && !filter_narrows(f))
		return lote__fail(err, LOTE_EINVAL, "give at least one filter (status error for every"
		                  " failed command), or make it a dry run");
	if (f->status) {
		/* only finished work can run again */
		const char *p = f->status;
		while (*p) {
			size_t n = strcspn(p, ",");
			if (!((n == 5 && !strncmp(p, "error", 5)) || (n == 7 && !strncmp(p, "success", 7)) ||
			      (n == 9 && !strncmp(p, "cancelled", 9))))
				return lote__fail(err, LOTE_EINVAL,
				                  "status: only finished commands (error, success, cancelled) can be reprocessed");
			p += n + (p[n] == ',');
		}
	}
	g.status = f->status ? f->status : (char *)"error";
	g.cursor = 0;
	q_init(&q);
	if (!q.out)
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	/* Candidates in the hot table only: that is where lote.reprocess
	 * works. The newest copy of a chain is the one to run again. */
	fputs("WITH m AS (SELECT t.id FROM lote.commands t WHERE t.replaced_by IS NULL", q.out);
	add_where(&q, conn, LOTE_API_COMMANDS, &g, actor);
	fprintf(q.out, " ORDER BY t.id LIMIT %d + 1 %s),", LOTE_API_BULK_MAX,
	        dry_run ? "" : "FOR UPDATE SKIP LOCKED");
	fprintf(q.out, " n AS (SELECT count(*) AS n FROM m),"
	               " pick AS (SELECT id FROM m ORDER BY id LIMIT %d)", LOTE_API_BULK_MAX);
	if (dry_run)
		fputs(" SELECT jsonb_build_object('dry_run', true, 'matched', (SELECT count(*) FROM pick),"
		      " 'reprocessed', 0, 'ids', (SELECT coalesce(jsonb_agg(id ORDER BY id), '[]') FROM pick),"
		      " 'more', (SELECT n FROM n) > (SELECT count(*) FROM pick))", q.out);
	else
		fputs(", done AS (SELECT lote.reprocess(id) AS new_id FROM pick)"
		      " SELECT jsonb_build_object('dry_run', false, 'matched', (SELECT count(*) FROM pick),"
		      " 'reprocessed', (SELECT count(*) FROM done),"
		      " 'ids', (SELECT coalesce(jsonb_agg(new_id ORDER BY new_id), '[]') FROM done),"
		      " 'more', (SELECT n FROM n) > (SELECT count(*) FROM pick))", q.out);
	if (dry_run) {
		rc = q_run_json(&q, conn, ret, err);
	} else {
		target = filter_text(&g);
		rc = act(conn, &q, actor, "commands.reprocess", target, ret, err);
		free(target);
	}
	q_done(&q);
	return rc;
}

/* ---------------------------------------------------------------------
 * Tokens
 */

int lote__api_token_add(PGconn *conn, const char *name, const char *role, const char *institution,
                        int64_t *ret_id, char **ret_token, lote_error *err)
{
	unsigned char raw[24];
	char token[8 + 2 * sizeof(raw)];
	const char *p[4];
	PGresult *res;
	int rc = 0;

	if (!role || (strcmp(role, "viewer") && strcmp(role, "operator") && strcmp(role, "admin")))
		return lote__fail(err, LOTE_EINVAL, "role: \"%s\" is not viewer, operator or admin",
		                  role ? role : "");
	if (institution && *institution && !is_uuid(institution))
		return lote__fail(err, LOTE_EINVAL, "institution: \"%.60s\" is not a UUID", institution);
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return lote__fail_errno(err, "getrandom");
	strcpy(token, "lote_");
	for (size_t i = 0; i < sizeof(raw); i++)
		sprintf(token + 5 + 2 * i, "%02x", raw[i]);
	p[0] = name ? name : "";
	p[1] = role;
	p[2] = institution && *institution ? institution : NULL;
	p[3] = token;
	res = PQexecParams(conn, "INSERT INTO lote.api_tokens (name, role, institution_id, token_hash)"
	                         " VALUES ($1, $2, $3::uuid, sha256(convert_to($4, 'UTF8'))) RETURNING id",
	                   4, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = lote__fail_pg(err, conn, res, "tokens");
		goto done;
	}
	if (!(*ret_token = strdup(token))) {
		rc = lote__fail(err, LOTE_ENOMEM, "out of memory");
		goto done;
	}
	if (ret_id)
		*ret_id = atoll(PQgetvalue(res, 0, 0));
done:
	PQclear(res);
	return rc;
}

int lote__api_token_check(PGconn *conn, const char *token, lote__api_actor *ret_actor,
                          lote_error *err)
{
	const char *p[1] = { token };
	PGresult *res;
	int rc = 0;

	if (!token || strlen(token) > 200)
		return lote__fail(err, LOTE_ENOTFOUND, "unknown token");
	res = PQexecParams(conn, "UPDATE lote.api_tokens SET last_used_at = now()"
	                         " WHERE token_hash = sha256(convert_to($1, 'UTF8')) AND revoked_at IS NULL"
	                         " RETURNING id, role, coalesce(institution_id::text, ''), name",
	                   1, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		rc = lote__fail_pg(err, conn, res, "tokens");
	} else if (PQntuples(res) != 1) {
		rc = lote__fail(err, LOTE_ENOTFOUND, "unknown or revoked token");
	} else {
		memset(ret_actor, 0, sizeof(*ret_actor));
		ret_actor->token_id = atoll(PQgetvalue(res, 0, 0));
		snprintf(ret_actor->role, sizeof(ret_actor->role), "%s", PQgetvalue(res, 0, 1));
		snprintf(ret_actor->institution, sizeof(ret_actor->institution), "%s", PQgetvalue(res, 0, 2));
		snprintf(ret_actor->name, sizeof(ret_actor->name), "token %s%s%s%s",
		         PQgetvalue(res, 0, 0), *PQgetvalue(res, 0, 3) ? " (" : "",
		         PQgetvalue(res, 0, 3), *PQgetvalue(res, 0, 3) ? ")" : "");
	}
	PQclear(res);
	return rc;
}

int lote__api_token_list(PGconn *conn, json_t **ret, lote_error *err)
{
	struct query q;
	int rc;

	q_init(&q);
	if (!q.out)
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	fputs("SELECT coalesce(jsonb_agg(to_jsonb(t) - 'token_hash' ORDER BY t.id), '[]')"
	      " FROM lote.api_tokens t", q.out);
	rc = q_run_json(&q, conn, ret, err);
	q_done(&q);
	return rc;
}

int lote__api_token_revoke(PGconn *conn, int64_t id, lote_error *err)
{
	char buf[24];
	const char *p[1] = { buf };
	PGresult *res;
	int rc = 0;

	snprintf(buf, sizeof(buf), "%lld", (long long)id);
	res = PQexecParams(conn, "UPDATE lote.api_tokens SET revoked_at = coalesce(revoked_at, now())"
	                         " WHERE id = $1", 1, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = lote__fail_pg(err, conn, res, "tokens");
	else if (strcmp(PQcmdTuples(res), "0") == 0)
		rc = lote__fail(err, LOTE_ENOTFOUND, "no token %lld", (long long)id);
	PQclear(res);
	return rc;
}
