/* api.h - the queries and actions behind the JSON API, the dashboard and
 * the CLI lists: one filter parser, one list query, one bulk reprocess, so
 * `lote commands ls` and GET /api/v1/commands can never disagree.
 *
 * Everything returns 0 or a negative LOTE_E* code with err filled, and
 * hands back JSON (new references, caller-owned) in ret_* outputs.
 * LOTE_EINVAL means bad input (an HTTP 422), LOTE_ENOTFOUND an unknown or
 * out-of-scope id (404), LOTE_ESTATE a refused action (409). */
#ifndef LOTE_API_H
#define LOTE_API_H

#include "lote.h"

/* Named limits. */
#define LOTE_API_LIMIT_DEFAULT 50   /* rows per page when limit is absent */
#define LOTE_API_LIMIT_MAX 500      /* a page never holds more */
#define LOTE_API_BULK_MAX 10000     /* commands one bulk reprocess touches */
#define LOTE_API_TREE_MAX 500       /* nodes of a lineage tree */
#define LOTE_API_TEXT_MAX 200       /* bytes of a text filter */
#define LOTE_API_TYPES_MERGED 8     /* a list filtered by up to this many types reads
                                     * each type's index in order and merges them */

typedef enum lote__api_kind {
	LOTE_API_EVENTS,
	LOTE_API_COMMANDS,
	LOTE_API_BATCHES,
} lote__api_kind;

/* Parses "events" / "commands" / "batches"; -1 when none. */
int lote__api_kind_parse(const char *name);
const char *lote__api_kind_name(lote__api_kind kind);

/* Who asks: the scope every query is limited to. */
typedef struct lote__api_actor {
	int64_t token_id;        /* 0: the CLI */
	char role[16];           /* viewer | operator | admin */
	char institution[40];    /* "" : every institution */
	char name[128];          /* for the audit log */
	char remote[64];         /* remote address, "" for the CLI */
} lote__api_actor;

/* The CLI's actor: admin over everything, named after the OS user. */
void lote__api_actor_cli(lote__api_actor *actor);
/* Whether the actor's role may run actions. */
bool lote__api_can_act(const lote__api_actor *actor);

/* A validated list filter. Strings are owned by the filter. */
typedef struct lote__api_filter {
	char *type;          /* comma list of types */
	char *status;        /* comma list of statuses, each checked */
	char *institution;   /* uuid */
	char *entity_type;   /* entity=Type or entity=Type:id */
	char *entity_id;
	char *from, *to;     /* ISO 8601, on created_at */
	char *error;         /* substring of error, case-insensitive */
	int64_t batch;       /* batch_id, 0: any */
	int64_t event;       /* origin: event_id, 0: any */
	int64_t parent;      /* origin: parent_id, 0: any */
	int64_t cursor;      /* keyset: the id of the previous page's last row, 0: from the newest */
	int64_t cursor_us;   /* and its created_at in µs since 1970 (cursor "US_ID"), for lists
	                      * ordered by created_at (from/to given); 0: looked up by id */
	int limit;           /* 1..LOTE_API_LIMIT_MAX */
} lote__api_filter;

void lote__api_filter_init(lote__api_filter *f);
void lote__api_filter_done(lote__api_filter *f);
/* Sets one filter from its query-parameter name (type, status,
 * institution, entity, from, to, error, batch, origin, cursor, limit) and
 * text value, checking it for kind. LOTE_EINVAL with a message naming the
 * parameter on bad input or an unknown name. */
LOTE_MUSTCHECK int lote__api_filter_set(lote__api_filter *f, lote__api_kind kind,
                                        const char *key, const char *value,
                                        lote_error *err);
/* Sets the filter from a JSON object of the same keys (the body of a bulk
 * reprocess); values may be strings or integers. Keys in `ignore` (a NULL
 * terminated list, may be NULL) are skipped. */
LOTE_MUSTCHECK int lote__api_filter_from_json(lote__api_filter *f, lote__api_kind kind,
                                              json_t *obj, const char *const *ignore,
                                              lote_error *err);

/* The relation lists read for kind: the archive-inclusive view
 * (lote.commands_all …) when the schema has it, else the hot table. */
const char *lote__api_source(PGconn *conn, lote__api_kind kind);

/* One page: {"items": [...], "next_cursor": "123" | null}. Items carry the
 * SQL column names (data left out; duration in milliseconds). Newest
 * first by id; with from or to, newest first by (created_at, id), and the
 * cursor is "US_ID" (created_at in microseconds since 1970, id). */
LOTE_MUSTCHECK int lote__api_list(PGconn *conn, lote__api_kind kind,
                                  const lote__api_filter *f,
                                  const lote__api_actor *actor,
                                  json_t **ret, lote_error *err);

/* One row with everything: {"<kind singular>": {...}, ...}. Commands add
 * "lineage" (lote.lineage) and "tree"; batches add "progress" and
 * "members" (first LOTE_API_TREE_MAX); events add "commands". */
LOTE_MUSTCHECK int lote__api_get(PGconn *conn, lote__api_kind kind, int64_t id,
                                 const lote__api_actor *actor, json_t **ret,
                                 lote_error *err);

/* Counts and rates; never count(*) over finished work. */
LOTE_MUSTCHECK int lote__api_summary(PGconn *conn, const lote__api_actor *actor,
                                     json_t **ret, lote_error *err);
/* Live workers with what they run. */
LOTE_MUSTCHECK int lote__api_workers(PGconn *conn, json_t **ret, lote_error *err);
/* Schedules (empty until the schedules table exists). */
LOTE_MUSTCHECK int lote__api_schedules(PGconn *conn, json_t **ret, lote_error *err);
/* Failed commands grouped by type and message, biggest groups first. */
LOTE_MUSTCHECK int lote__api_errors(PGconn *conn, const lote__api_actor *actor,
                                    json_t **ret, lote_error *err);
/* The newest audit entries in the actor's scope. */
LOTE_MUSTCHECK int lote__api_audit(PGconn *conn, const lote__api_actor *actor,
                                   int64_t cursor, int limit, json_t **ret,
                                   lote_error *err);

/* Actions. Each runs in its own transaction with its audit entry.
 * reprocess: {"id": new id, "original_id": id}. cancel: {"cancelled": bool}
 * for a command, {"cancelled": n} for a batch. */
LOTE_MUSTCHECK int lote__api_reprocess(PGconn *conn, int64_t id,
                                       const lote__api_actor *actor,
                                       json_t **ret, lote_error *err);
LOTE_MUSTCHECK int lote__api_cancel(PGconn *conn, lote__api_kind kind, int64_t id,
                                    const lote__api_actor *actor,
                                    json_t **ret, lote_error *err);
/* Reprocesses every finished, not yet replaced command the filter matches
 * (status defaults to error), at most LOTE_API_BULK_MAX:
 * {"matched": n, "reprocessed": n, "ids": [new ids], "dry_run": b,
 * "more": b}. With dry_run nothing changes and ids lists the matches.
 * A filter that narrows nothing (limit and cursor do not) is LOTE_EINVAL
 * unless dry_run. */
LOTE_MUSTCHECK int lote__api_reprocess_bulk(PGconn *conn, const lote__api_filter *f,
                                            bool dry_run, const lote__api_actor *actor,
                                            json_t **ret, lote_error *err);

/* Tokens. add: a new token of role (viewer|operator|admin) limited to
 * institution (NULL or "": all); *ret_token gets it (malloc'd), shown only
 * this once. check: looks the token up and fills actor; LOTE_ENOTFOUND
 * when unknown or revoked. */
LOTE_MUSTCHECK int lote__api_token_add(PGconn *conn, const char *name, const char *role,
                                       const char *institution, int64_t *ret_id,
                                       char **ret_token, lote_error *err);
LOTE_MUSTCHECK int lote__api_token_check(PGconn *conn, const char *token,
                                         lote__api_actor *ret_actor, lote_error *err);
LOTE_MUSTCHECK int lote__api_token_list(PGconn *conn, json_t **ret, lote_error *err);
LOTE_MUSTCHECK int lote__api_token_revoke(PGconn *conn, int64_t id, lote_error *err);

#endif
