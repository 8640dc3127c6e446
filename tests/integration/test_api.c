/* The JSON API, the dashboard server and the CLI lists against a real
 * PostgreSQL: `lote web` is started per test on a free port and spoken to
 * over a plain socket, as any client would. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

#define INST_A "aaaaaaaa-0000-0000-0000-000000000001"
#define INST_B "bbbbbbbb-0000-0000-0000-000000000002"

struct web {
	char *db;
	PGconn *conn;
	pid_t pid;
	int port;
	char *admin, *viewer, *scoped; /* tokens */
};

/* Runs `lote tokens add ARGS` and returns the token (its last line). */
static char *token(const char *db, const char *role, const char *inst)
{
	char *out = NULL, *last, *t;
	int rc = inst ? tl_run_lote(db, &out, "tokens", "add", "--role", role, "--institution", inst, NULL)
	              : tl_run_lote(db, &out, "tokens", "add", "--role", role, "--name", "test", NULL);
	if (rc != 0)
		fail_msg("lote tokens add: %d\n%s", rc, out);
	out[strcspn(out, "\0")] = '\0';
	while (strlen(out) && out[strlen(out) - 1] == '\n')
		out[strlen(out) - 1] = '\0';
	last = strrchr(out, '\n');
	t = strdup(last ? last + 1 : out);
	free(out);
	assert_int_equal(strncmp(t, "lote_", 5), 0);
	return t;
}

/* Reads the port from the "listening on http://127.0.0.1:PORT/" line. */
static int wait_port(const char *log, pid_t pid)
{
	for (int i = 0; i < 500; i++) {
		FILE *f = fopen(log, "r");
		char line[512];
		while (f && fgets(line, sizeof(line), f)) {
			char *p = strstr(line, "http://127.0.0.1:");
			if (p) {
				fclose(f);
				return atoi(p + strlen("http://127.0.0.1:"));
			}
		}
		if (f)
			fclose(f);
		if (waitpid(pid, NULL, WNOHANG) == pid)
			break;
		usleep(20000);
	}
	fail_msg("the server did not say where it listens (log %s)", log);
	return 0;
}

/* The server a test started, stopped by the teardown if the test failed
 * before it could stop it. */
static pid_t live_server;

static int teardown(void **state)
{
	(void)state;
	if (live_server > 0)
		tl_stop(live_server, SIGKILL, 5000);
	live_server = 0;
	return 0;
}

static void start(struct web *w, const char *name)
{
	char *log = tl_tmp_path(name);
	memset(w, 0, sizeof(*w));
	w->db = tl_fresh_db(name, true);
	w->conn = tl_connect(w->db);
	w->admin = token(w->db, "admin", NULL);
	w->viewer = token(w->db, "viewer", NULL);
	w->scoped = token(w->db, "operator", INST_A);
	unlink(log);
	w->pid = tl_spawn_lote(w->db, log, "web", "--http", "127.0.0.1:0", NULL);
	live_server = w->pid;
	w->port = wait_port(log, w->pid);
	free(log);
}

static void stop(struct web *w)
{
	live_server = 0;
	assert_int_equal(tl_stop(w->pid, SIGTERM, 10000), 0);
	PQfinish(w->conn);
	free(w->db);
	free(w->admin);
	free(w->viewer);
	free(w->scoped);
}

/* One HTTP/1.0 exchange with raw request text; returns the status and the
 * body (malloc'd) in *ret_body. */
static int raw(int port, const char *req, size_t len, char **ret_body)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), status = 0;
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	ssize_t r;

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fail_msg("connect to port %d failed", port);
	for (size_t off = 0; off < len; off += (size_t)r)
		if ((r = write(fd, req + off, len - off)) <= 0)
			break; /* the server may answer (413) before reading it all */
	while ((r = read(fd, buf + n, cap - n - 1)) > 0) {
		n += (size_t)r;
		if (n + 1 == cap)
			buf = realloc(buf, cap *= 2);
	}
	buf[n] = '\0';
	close(fd);
	sscanf(buf, "HTTP/1.%*d %d", &status);
	if (ret_body) {
		char *b = strstr(buf, "\r\n\r\n");
		*ret_body = strdup(b ? b + 4 : "");
	}
	free(buf);
	return status;
}

/* A request with an optional token, JSON body and extra header lines. */
static int req(struct web *w, const char *method, const char *path, const char *tok,
               const char *body, const char *extra, char **ret_body)
{
	char *r = NULL;
	int n = asprintf(&r, "%s %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n%s%s%s%s%s"
	                     "Content-Length: %zu\r\n\r\n%s",
	                 method, path, w->port, tok ? "Authorization: Bearer " : "", tok ? tok : "",
	                 tok ? "\r\n" : "", body ? "Content-Type: application/json\r\n" : "",
	                 extra ? extra : "", body ? strlen(body) : 0, body ? body : "");
	int st = raw(w->port, r, (size_t)n, ret_body);
	free(r);
	return st;
}

/* GET with the admin token; the body parsed. Fails unless status is want. */
static json_t *get_json(struct web *w, const char *tok, const char *path, int want)
{
	char *body = NULL;
	int st = req(w, "GET", path, tok, NULL, NULL, &body);
	json_t *j = json_loads(body, 0, NULL);
	if (st != want || !j)
		fail_msg("GET %s: %d (wanted %d): %s", path, st, want, body);
	free(body);
	return j;
}

static json_t *post_json(struct web *w, const char *tok, const char *path, const char *body, int want)
{
	char *out = NULL;
	int st = req(w, "POST", path, tok, body, NULL, &out);
	json_t *j = json_loads(out, 0, NULL);
	if (st != want || !j)
		fail_msg("POST %s: %d (wanted %d): %s", path, st, want, out);
	free(out);
	return j;
}

/* The ids of a list answer, as "3,2,1". */
static char *ids(json_t *list)
{
	static char buf[4096];
	json_t *it;
	size_t i;
	buf[0] = '\0';
	json_array_foreach(json_object_get(list, "items"), i, it)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%lld", i ? "," : "",
		         (long long)json_integer_value(json_object_get(it, "id")));
	json_decref(list);
	return buf;
}

/* Data: an event of institution A whose "handler" enqueued a command that
 * made a batch of two with a follow-up; a failed command in each
 * institution; a few pending ones. Ids are fixed by the order. */
static void seed(PGconn *c)
{
	tl_exec(c, "SELECT lote.emit('" INST_A "', 'Activity', '42', 'ActivityCreated', '{\"n\": 1}')"); /* e1 */
	tl_exec(c, "BEGIN; SET LOCAL lote.event_id = '1';"
	           " SELECT lote.enqueue('Fanout', '{}', '" INST_A "'); COMMIT"); /* c1 */
	tl_exec(c, "BEGIN; SET LOCAL lote.command_id = '1';"
	           " SELECT lote.batch('Mails', '[{\"type\": \"SendEmail\", \"data\": {\"to\": \"a\"}},"
	           " {\"type\": \"SendEmail\", \"data\": {\"to\": \"b\"}}]', '{\"type\": \"NotifyTeacher\"}',"
	           " '" INST_A "'); COMMIT"); /* b1: c2 follow-up, c3 c4 members */
	tl_exec(c, "SELECT lote.enqueue('SendEmail', '{\"to\": \"x\"}', '" INST_B "')"); /* c5 */
	tl_exec(c, "SELECT lote.enqueue('Report', '{}', '" INST_B "')");                /* c6 */
	tl_exec(c, "UPDATE lote.commands SET status = 'success', attempt = 1, finished_at = now()"
	           " WHERE id = 1");
	tl_exec(c, "UPDATE lote.commands SET status = 'error', attempt = 3, finished_at = now(),"
	           " error = 'attempt 3: SMTP timeout after 30' || id || 'ms' WHERE id IN (3, 5)");
	tl_exec(c, "UPDATE lote.events SET status = 'success', attempt = 1, finished_at = now()");
}

static void auth_and_roles(void **state)
{
	struct web w;
	char *body = NULL;
	(void)state;
	start(&w, "api_auth");
	seed(w.conn);
	assert_int_equal(req(&w, "GET", "/api/v1/commands", NULL, NULL, NULL, &body), 401);
	assert_non_null(strstr(body, "token"));
	free(body);
	assert_int_equal(req(&w, "GET", "/api/v1/commands", "lote_nope", NULL, NULL, NULL), 401);
	/* the dashboard page itself loads without a token */
	assert_int_equal(req(&w, "GET", "/", NULL, NULL, NULL, &body), 200);
	assert_non_null(strstr(body, "<html"));
	free(body);
	/* a viewer reads but cannot act */
	json_decref(get_json(&w, w.viewer, "/api/v1/summary", 200));
	assert_int_equal(req(&w, "POST", "/api/v1/commands/3/reprocess", w.viewer, NULL, NULL, &body), 403);
	free(body);
	assert_int_equal(tl_int(w.conn, "SELECT count(*) FROM lote.commands WHERE original_id = 3"), 0);
	/* revoked: refused at once */
	char *out = NULL;
	long long vid = tl_int(w.conn, "SELECT min(id) + 1 FROM lote.api_tokens");
	char id[24];
	snprintf(id, sizeof(id), "%lld", vid);
	assert_int_equal(tl_run_lote(w.db, &out, "tokens", "revoke", id, NULL), 0);
	free(out);
	assert_int_equal(req(&w, "GET", "/api/v1/summary", w.viewer, NULL, NULL, NULL), 401);
	/* only a hash is stored */
	assert_int_equal(tl_int(w.conn, "SELECT count(*) FROM lote.api_tokens WHERE"
	                                " encode(token_hash, 'escape') LIKE 'lote_%%'"), 0);
	stop(&w);
}

static void lists_filters_and_pages(void **state)
{
	struct web w;
	json_t *j;
	(void)state;
	start(&w, "api_lists");
	seed(w.conn);
	assert_string_equal(ids(get_json(&w, w.admin, "/api/v1/commands", 200)), "6,5,4,3,2,1");
	assert_string_equal(ids(get_json(&w, w.admin, "/api/v1/commands?status=error", 200)), "5,3");
	assert_string_equal(ids(get_json(&w, w.admin, "/api/v1/commands?status=pending,awaiting", 200)), "6,4,2");
	assert_string_equal(ids(get_json(&w, w.admin, "/api/v1/commands?type=SendEmail", 200)), "5,4,3");
	assert_string_equal(ids(get_json(&w, w.admin, "/api/v1/commands?type=Report,Fanout", 200)), "6,1");
	assert_string_equal(ids(get_json(&w, w.admin, "/api/v1/commands?type=SendEmail,SendEmail", 200)), "5,4,3");
	assert_string_equal(ids(get_json(&w, w.admin, "/api/v1/commands?type=Report,SendEmail,Fanout&limit=2&cursor=5",
	                                 200)), "4,3");
	assert_string_equal(ids(get_json(&w, w.admin, "/api/v1/commands?type=Report,SendEmail&from=2000-01-01&status=error",
	                                 200)), "5,3");
	assert_string_equal(ids(get_json(&w, w.admin, "/api/v1/commands?institution=" INST_B, 200)), "6,5");
	assert_string_equal(ids(get_json(&w, w.admin, "/api/v1/commands?error=smtp%20TIMEOUT", 200)), "5,3");
	assert_string_equal(ids(get_json(&w, w.admin, "/api/v1/commands?batch=1", 200)), "4,3");
	assert_string_equal(ids(get_json(&w, w.admin, "/api/v1/commands?origin=command:1", 200)), "4,3,2");
	assert_string_equal(ids(get_json(&w, w.admin, "/api/v1/commands?origin=event:1", 200)), "1");
	assert_string_equal(ids(get_json(&w, w.admin, "/api/v1/commands?entity=Activity:42", 200)), "1");
	assert_string_equal(ids(get_json(&w, w.admin, "/api/v1/events?entity=Activity", 200)), "1");
	assert_string_equal(ids(get_json(&w, w.admin, "/api/v1/events?entity=Activity:7", 200)), "");
	assert_string_equal(ids(get_json(&w, w.admin, "/api/v1/commands?from=2000-01-01&to=2999-01-01T00:00:00Z", 200)),
	                    "6,5,4,3,2,1");
	assert_string_equal(ids(get_json(&w, w.admin, "/api/v1/commands?from=2999-01-01", 200)), "");
	assert_string_equal(ids(get_json(&w, w.admin, "/api/v1/batches", 200)), "1");
	/* keyset pages: 2 + 2 + 2, then no cursor */
	j = get_json(&w, w.admin, "/api/v1/commands?limit=2", 200);
	assert_string_equal(json_string_value(json_object_get(j, "next_cursor")), "5");
	assert_string_equal(ids(j), "6,5");
	j = get_json(&w, w.admin, "/api/v1/commands?limit=2&cursor=5", 200);
	assert_string_equal(json_string_value(json_object_get(j, "next_cursor")), "3");
	assert_string_equal(ids(j), "4,3");
	j = get_json(&w, w.admin, "/api/v1/commands?limit=2&cursor=3", 200);
	assert_true(json_is_null(json_object_get(j, "next_cursor")));
	assert_string_equal(ids(j), "2,1");
	/* a time range lists by (created_at, id): the cursor carries both, and
	 * a plain id cursor still works (that row's place) */
	{
		char path[128], cur[64];
		j = get_json(&w, w.admin, "/api/v1/commands?from=2000-01-01&limit=2", 200);
		snprintf(cur, sizeof(cur), "%s", json_string_value(json_object_get(j, "next_cursor")));
		assert_string_equal(ids(j), "6,5");
		assert_non_null(strchr(cur, '_'));
		snprintf(path, sizeof(path), "/api/v1/commands?from=2000-01-01&limit=2&cursor=%s", cur);
		j = get_json(&w, w.admin, path, 200);
		snprintf(cur, sizeof(cur), "%s", json_string_value(json_object_get(j, "next_cursor")));
		assert_string_equal(ids(j), "4,3");
		snprintf(path, sizeof(path), "/api/v1/commands?from=2000-01-01&limit=2&cursor=%s", cur);
		j = get_json(&w, w.admin, path, 200);
		assert_true(json_is_null(json_object_get(j, "next_cursor")));
		assert_string_equal(ids(j), "2,1");
		assert_string_equal(ids(get_json(&w, w.admin, "/api/v1/commands?to=2999-01-01&limit=2&cursor=5", 200)),
		                    "4,3");
	}
	/* items carry the SQL column names; lists leave the payload out */
	j = get_json(&w, w.admin, "/api/v1/commands?limit=1", 200);
	json_t *it = json_array_get(json_object_get(j, "items"), 0);
	static const char *cols[] = { "id", "type", "status", "institution_id", "queue", "attempt",
	                              "max_attempts", "created_at", "batch_id", "parent_id", "event_id",
	                              "original_id", "replaced_by", "error" };
	for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++)
		if (!json_object_get(it, cols[i]))
			fail_msg("item has no %s", cols[i]);
	assert_null(json_object_get(it, "data"));
	json_decref(j);
	/* bad values: 422 with a message naming the parameter */
	static const char *bad[] = {
		"status=bogus", "status=awaiting", "institution=nope", "limit=0", "limit=501",
		"limit=x", "cursor=-1", "cursor=1_x", "cursor=x_1", "batch=abc", "from=yesterday", "to=2026-13-45",
		"type=has%20space", "origin=x:1", "entity=:", "colour=red",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char path[128], *body = NULL;
		const char *kind = strncmp(bad[i], "status=awaiting", 15) == 0 ? "events" : "commands";
		snprintf(path, sizeof(path), "/api/v1/%s?%s", kind, bad[i]);
		int st = req(&w, "GET", path, w.admin, NULL, NULL, &body);
		if ((st != 422 && st != 400) || !strstr(body, "\"error\""))
			fail_msg("GET %s: %d %s", path, st, body);
		free(body);
	}
	/* SQL injection strings in every filter: refused or harmless */
	static const char *inj[] = { "type", "status", "institution", "entity", "from", "to", "error",
	                             "batch", "origin", "cursor", "limit" };
	for (size_t i = 0; i < sizeof(inj) / sizeof(inj[0]); i++) {
		char path[256], *body = NULL;
		snprintf(path, sizeof(path), "/api/v1/commands?%s=x'%%3B%%20DROP%%20TABLE%%20lote.commands%%3B--",
		         inj[i]);
		int st = req(&w, "GET", path, w.admin, NULL, NULL, &body);
		if (st != 422 && !(st == 200 && strstr(body, "\"items\":[]")))
			fail_msg("GET %s: %d %s", path, st, body);
		free(body);
	}
	assert_int_equal(tl_int(w.conn, "SELECT count(*) FROM lote.commands"), 6);
	stop(&w);
}

/* What the client sent is quoted in errors: bytes that are not UTF-8, or
 * a character cut by a length limit, still give a JSON error, and the
 * server goes on (it used to crash on both). */
static void errors_quote_bad_bytes(void **state)
{
	struct web w;
	json_t *j;
	char path[256] = "/api/v1/commands?a";
	(void)state;
	start(&w, "api_bytes");
	j = get_json(&w, w.viewer, "/api/v1/commands?type=%FF", 422);
	assert_non_null(strstr(json_string_value(json_object_get(j, "error")), "?"));
	json_decref(j);
	for (int i = 0; i < 30; i++)
		strcat(path, "%C3%A9");
	strcat(path, "=1");
	json_decref(get_json(&w, w.viewer, path, 422));
	json_decref(get_json(&w, w.viewer, "/api/v1/commands", 200));
	/* numbers past int64 are refused, not clamped */
	json_decref(get_json(&w, w.viewer, "/api/v1/commands?batch=99999999999999999999", 422));
	char *out = NULL;
	assert_int_equal(tl_run_lote(w.db, &out, "web", "--http", "127.0.0.1:4294967377", NULL), 2);
	free(out);
	/* an unknown action is a 404 whatever the method (GET said 405
	 * "use POST", then POST said 404); a known one asked with GET, 405 */
	json_decref(get_json(&w, w.viewer, "/api/v1/commands/1/bogus", 404));
	json_decref(get_json(&w, w.viewer, "/api/v1/commands/1/reprocess", 405));
	json_decref(get_json(&w, w.viewer, "/api/v1/events/1/cancel", 404));
	/* the kind of a missing row, in the singular */
	j = get_json(&w, w.viewer, "/api/v1/batches/999", 404);
	assert_string_equal(json_string_value(json_object_get(j, "error")), "no batch 999");
	json_decref(j);
	stop(&w);
}

static void details_and_tenants(void **state)
{
	struct web w;
	json_t *j, *tree;
	(void)state;
	start(&w, "api_details");
	seed(w.conn);
	tl_exec(w.conn, "INSERT INTO lote.attempts (kind, row_id, institution_id, attempt, outcome, error)"
	                " VALUES ('command', 3, '" INST_A "', 1, 'failed', 'SMTP timeout')");
	/* a member's tree goes up to the event and down through the batch */
	j = get_json(&w, w.admin, "/api/v1/commands/3", 200);
	assert_int_equal(json_array_size(json_object_get(j, "attempts")), 1);
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(j, "command"), "data"), "to")), "a");
	tree = json_object_get(j, "tree");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(tree, "event"), "id")), 1);
	assert_int_equal(json_array_size(json_object_get(tree, "commands")), 4);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(tree, "batches"), 0),
	                                                    "next_command_id")), 2);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "lineage"), "batch_id")), 1);
	json_decref(j);
	/* a payload's numbers come back as stored, every digit */
	long long priced = tl_int(w.conn, "SELECT lote.enqueue('Priced',"
	                                  " '{\"amount\": 1234567890.12345, \"price\": 0.1}', '" INST_A "')");
	char path[64];
	snprintf(path, sizeof(path), "/api/v1/commands/%lld", priced);
	j = get_json(&w, w.admin, path, 200);
	json_t *data = json_object_get(json_object_get(j, "command"), "data");
	assert_true(json_real_value(json_object_get(data, "amount")) == 1234567890.12345);
	assert_true(json_real_value(json_object_get(data, "price")) == 0.1);
	json_decref(j);
	tl_exec(w.conn, "DELETE FROM lote.commands WHERE id = %lld", priced);
	j = get_json(&w, w.admin, "/api/v1/batches/1", 200);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "progress"), "error")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "next"), "id")), 2);
	assert_int_equal(json_array_size(json_object_get(j, "members")), 2);
	json_decref(j);
	j = get_json(&w, w.admin, "/api/v1/events/1", 200);
	assert_int_equal(json_array_size(json_object_get(j, "commands")), 1);
	json_decref(j);
	json_decref(get_json(&w, w.admin, "/api/v1/commands/999", 404));
	json_decref(get_json(&w, w.admin, "/api/v1/commands/abc", 404));
	/* a token of institution A: B's rows do not exist for it */
	assert_string_equal(ids(get_json(&w, w.scoped, "/api/v1/commands", 200)), "4,3,2,1");
	assert_string_equal(ids(get_json(&w, w.scoped, "/api/v1/commands?institution=" INST_B, 200)), "");
	json_decref(get_json(&w, w.scoped, "/api/v1/commands/5", 404));
	json_decref(get_json(&w, w.scoped, "/api/v1/commands/3", 200));
	json_decref(post_json(&w, w.scoped, "/api/v1/commands/5/reprocess", NULL, 404));
	j = get_json(&w, w.scoped, "/api/v1/summary", 200);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(j, "commands"),
	                                                                    "by_status"), "error")), 1);
	json_decref(j);
	j = get_json(&w, w.admin, "/api/v1/summary", 200);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(j, "commands"),
	                                                                    "by_status"), "error")), 2);
	assert_int_equal(json_array_size(json_object_get(j, "throughput")), 60);
	json_decref(j);
	j = get_json(&w, w.scoped, "/api/v1/errors", 200);
	assert_int_equal(json_array_size(json_object_get(j, "items")), 1);
	json_decref(j);
	j = get_json(&w, w.admin, "/api/v1/errors", 200);
	/* "…after 303ms" and "…after 305ms" are one group */
	assert_int_equal(json_array_size(json_object_get(j, "items")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(j, "items"), 0), "count")), 2);
	json_decref(j);
	json_decref(get_json(&w, w.admin, "/api/v1/workers", 200));
	json_decref(get_json(&w, w.admin, "/api/v1/schedules", 200));
	stop(&w);
}

static void actions_and_audit(void **state)
{
	struct web w;
	json_t *j;
	char *body = NULL;
	(void)state;
	start(&w, "api_actions");
	seed(w.conn);
	j = post_json(&w, w.admin, "/api/v1/commands/3/reprocess", NULL, 200);
	long long copy = json_integer_value(json_object_get(j, "id"));
	json_decref(j);
	assert_int_equal(tl_int(w.conn, "SELECT replaced_by FROM lote.commands WHERE id = 3"), copy);
	assert_int_equal(tl_int(w.conn, "SELECT batch_id FROM lote.commands WHERE id = %lld", copy), 1);
	/* a pending command cannot be reprocessed: 409 and why */
	j = post_json(&w, w.admin, "/api/v1/commands/6/reprocess", NULL, 409);
	assert_non_null(strstr(json_string_value(json_object_get(j, "error")), "only finished"));
	json_decref(j);
	j = post_json(&w, w.admin, "/api/v1/commands/6/cancel", NULL, 200);
	assert_true(json_is_true(json_object_get(j, "cancelled")));
	json_decref(j);
	j = post_json(&w, w.admin, "/api/v1/batches/1/cancel", NULL, 200);
	json_decref(j);
	assert_string_equal(tl_value(w.conn, "SELECT status FROM lote.batches WHERE id = 1"), "cancelled");
	/* bulk: dry run changes nothing, then the real one */
	j = post_json(&w, w.admin, "/api/v1/commands/reprocess",
	              "{\"status\": \"error\", \"error\": \"SMTP\", \"dry_run\": true}", 200);
	assert_int_equal(json_integer_value(json_object_get(j, "matched")), 1); /* 3 has a copy */
	json_decref(j);
	assert_int_equal(tl_int(w.conn, "SELECT count(*) FROM lote.commands WHERE original_id = 5"), 0);
	j = post_json(&w, w.admin, "/api/v1/commands/reprocess", "{\"type\": \"SendEmail\"}", 200);
	assert_int_equal(json_integer_value(json_object_get(j, "reprocessed")), 1);
	json_decref(j);
	assert_int_equal(tl_int(w.conn, "SELECT count(*) FROM lote.commands WHERE original_id = 5"), 1);
	j = post_json(&w, w.admin, "/api/v1/commands/reprocess", "{\"status\": \"pending\"}", 422);
	json_decref(j);
	j = post_json(&w, w.admin, "/api/v1/commands/reprocess", "{\"dry_run\": \"yes\"}", 422);
	json_decref(j);
	/* no filter (an empty body, {} or only "dry_run": false) changes
	 * nothing: it would reprocess every failed command */
	long long copies = tl_int(w.conn, "SELECT count(*) FROM lote.commands WHERE original_id IS NOT NULL");
	assert_int_equal(req(&w, "POST", "/api/v1/commands/reprocess", w.admin, NULL, NULL, &body), 422);
	assert_non_null(strstr(body, "at least one filter"));
	free(body);
	json_decref(post_json(&w, w.admin, "/api/v1/commands/reprocess", "{}", 422));
	json_decref(post_json(&w, w.admin, "/api/v1/commands/reprocess", "{\"dry_run\": false}", 422));
	json_decref(post_json(&w, w.admin, "/api/v1/commands/reprocess", "{\"limit\": 1}", 422));
	json_decref(post_json(&w, w.admin, "/api/v1/commands/reprocess", "{\"cursor\": 5, \"dry_run\": true}", 422));
	json_decref(post_json(&w, w.admin, "/api/v1/commands/reprocess", "{\"dry_run\": true}", 200));
	/* a key given twice is refused, not settled by the last one */
	json_decref(post_json(&w, w.admin, "/api/v1/commands/reprocess",
	                      "{\"status\": \"error\", \"status\": \"success\"}", 400));
	assert_int_equal(tl_int(w.conn, "SELECT count(*) FROM lote.commands WHERE original_id IS NOT NULL"), copies);
	/* malformed JSON, oversize body, cross-site, not JSON */
	assert_int_equal(req(&w, "POST", "/api/v1/commands/reprocess", w.admin, "{\"status\":", NULL, &body), 400);
	free(body);
	char *big = malloc(200 * 1024);
	memset(big, ' ', 200 * 1024 - 1);
	big[200 * 1024 - 1] = '\0';
	big[0] = '{';
	assert_int_equal(req(&w, "POST", "/api/v1/commands/reprocess", w.admin, big, NULL, &body), 413);
	free(body);
	free(big);
	assert_int_equal(req(&w, "POST", "/api/v1/commands/5/cancel", w.admin, NULL,
	                     "Origin: http://evil.example\r\n", &body), 403);
	free(body);
	assert_int_equal(req(&w, "POST", "/api/v1/commands/5/cancel", w.admin, NULL,
	                     "Sec-Fetch-Site: cross-site\r\n", &body), 403);
	free(body);
	assert_int_equal(req(&w, "GET", "/api/v1/commands/5/cancel", w.admin, NULL, NULL, &body), 405);
	free(body);
	/* every action is in the audit log, with who did it */
	j = get_json(&w, w.admin, "/api/v1/audit", 200);
	assert_int_equal(json_array_size(json_object_get(j, "items")), 4);
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "items"), 3),
	                                                      "action")), "command.reprocess");
	assert_non_null(strstr(json_string_value(json_object_get(json_array_get(json_object_get(j, "items"), 3),
	                                                        "actor")), "token"));
	json_decref(j);
	/* the scoped token sees none of those (they were not its institution's) */
	j = get_json(&w, w.scoped, "/api/v1/audit", 200);
	assert_int_equal(json_array_size(json_object_get(j, "items")), 0);
	json_decref(j);
	stop(&w);
}

static void static_files_sse_and_ports(void **state)
{
	struct web w;
	char *body = NULL, *out = NULL;
	(void)state;
	start(&w, "api_http");
	assert_int_equal(req(&w, "GET", "/app.js", NULL, NULL, NULL, &body), 200);
	free(body);
	static const char *trav[] = { "/../../etc/passwd", "/..%2f..%2fetc%2fpasswd", "/%2e%2e/sql/001_core.sql",
	                              "/web/index.html", "/api/v2/commands" };
	for (size_t i = 0; i < sizeof(trav) / sizeof(trav[0]); i++) {
		int st = req(&w, "GET", trav[i], NULL, NULL, NULL, &body);
		if (st != 404 && st != 400)
			fail_msg("GET %s: %d", trav[i], st);
		assert_null(strstr(body, "root:"));
		free(body);
	}
	/* oversized headers: refused by the server, which lives on */
	char *hdr = malloc(64 * 1024);
	memset(hdr, 'a', 64 * 1024);
	memcpy(hdr, "X-Big: ", 7);
	strcpy(hdr + 64 * 1024 - 3, "\r\n");
	int st = req(&w, "GET", "/api/v1/summary", w.admin, NULL, hdr, &body);
	assert_true(st == 431 || st == 413 || st == 0);
	free(body);
	free(hdr);
	json_decref(get_json(&w, w.admin, "/api/v1/me", 200));
	/* Server-Sent Events: the first summary comes at once */
	{
		char r[512];
		int n = snprintf(r, sizeof(r), "GET /api/v1/stream HTTP/1.0\r\nAuthorization: Bearer %s\r\n\r\n",
		                 w.admin);
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)w.port) };
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		char buf[8192];
		size_t got = 0;
		inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
		assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		assert_int_equal(write(fd, r, (size_t)n), n);
		while (got < sizeof(buf) - 1 && !strstr(buf, "\n\n{") ) {
			ssize_t k = read(fd, buf + got, sizeof(buf) - 1 - got);
			if (k <= 0)
				break;
			got += (size_t)k;
			buf[got] = '\0';
			if (strstr(buf, "event: summary\ndata: {"))
				break;
		}
		close(fd);
		assert_non_null(strstr(buf, "text/event-stream"));
		assert_non_null(strstr(buf, "event: summary\ndata: {"));
	}
	/* the same port again: a clear error at start-up */
	char addr[32];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", w.port);
	assert_int_equal(tl_run_lote(w.db, &out, "web", "--http", addr, NULL), 1);
	assert_non_null(strstr(out, "already in use"));
	free(out);
	assert_int_equal(tl_run_lote(w.db, &out, "web", "--http", "nonsense", NULL), 2);
	free(out);
	stop(&w);
}

static void cli_mirrors_the_api(void **state)
{
	char *db = tl_fresh_db("api_cli", true);
	PGconn *c = tl_connect(db);
	char *out = NULL;
	json_t *j;
	(void)state;
	seed(c);
	assert_int_equal(tl_run_lote(db, &out, "commands", "ls", "--status", "error", "--json", NULL), 0);
	j = json_loads(out, 0, NULL);
	assert_true(json_is_array(j));
	assert_int_equal(json_array_size(j), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(j, 0), "id")), 5);
	json_decref(j);
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "commands", "ls", "--type", "SendEmail", NULL), 0);
	assert_non_null(strstr(out, "STATUS"));
	assert_non_null(strstr(out, "SMTP timeout"));
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "commands", "show", "3", NULL), 0);
	if (!strstr(out, "event 1 ActivityCreated") || !strstr(out, "* command 3") ||
	    !strstr(out, "follow-up of batch 1"))
		fail_msg("show:\n%s", out);
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "commands", "ls", "--status", "nope", NULL), 2);
	assert_non_null(strstr(out, "not a status"));
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "commands", "show", "999", NULL), 4);
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "commands", "reprocess", "--status", "error",
	                             "--institution", INST_B, "--error-like", "smtp", "--dry-run", NULL), 0);
	assert_non_null(strstr(out, "1 command matched"));
	free(out);
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.commands WHERE original_id IS NOT NULL"), 0);
	assert_int_equal(tl_run_lote(db, &out, "commands", "reprocess", "3", NULL), 0);
	assert_non_null(strstr(out, "reprocessed as command"));
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "commands", "reprocess", "6", NULL), 1);
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "commands", "cancel", "6", NULL), 0);
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "batches", "ls", "--json", NULL), 0);
	j = json_loads(out, 0, NULL);
	assert_int_equal(json_array_size(j), 1);
	json_decref(j);
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "events", "show", "1", NULL), 0);
	assert_non_null(strstr(out, "Fanout"));
	free(out);
	assert_int_equal(tl_run_lote(db, &out, "workers", "--json", NULL), 0);
	free(out);
	/* CLI actions are audited too */
	assert_int_equal(tl_int(c, "SELECT count(*) FROM lote.audit_log WHERE actor LIKE 'cli %%'"), 2);
	PQfinish(c);
	free(db);
}

/* Progress counts a batch's members where they are: after `lote archive`
 * moved a finished batch they are in the archive, and the list, the
 * detail and the CLI still show them all (a replaced member left out). */
static void archived_batch_keeps_progress(void **state)
{
	struct web w;
	json_t *j;
	char *out = NULL;
	(void)state;
	start(&w, "api_archived_batch");
	long long b = tl_int(w.conn, "SELECT lote.batch('Mails', (SELECT jsonb_agg(jsonb_build_object("
	                             "'type', 'SendEmail')) FROM generate_series(1, 100)))");
	long long bad = tl_int(w.conn, "SELECT min(id) FROM lote.commands WHERE batch_id = %lld", b);
	tl_exec(w.conn, "UPDATE lote.commands SET status = CASE WHEN id = %lld THEN 'error' ELSE 'success' END,"
	                " attempt = 1, finished_at = now() WHERE batch_id = %lld", bad, b);
	tl_exec(w.conn, "SELECT lote.batch_check(ARRAY[%lld::bigint])", b);
	assert_string_equal(tl_value(w.conn, "SELECT status FROM lote.batches WHERE id = %lld", b), "error");
	/* the failed member is repaired: its copy stands in */
	long long copy = tl_int(w.conn, "SELECT lote.reprocess(%lld)", bad);
	tl_exec(w.conn, "UPDATE lote.commands SET status = 'success', attempt = 1, finished_at = now()"
	                " WHERE id = %lld", copy);
	tl_exec(w.conn, "SELECT lote.batch_check(ARRAY[%lld::bigint])", b);
	assert_string_equal(tl_value(w.conn, "SELECT status FROM lote.batches WHERE id = %lld", b), "success");
	assert_int_equal(tl_run_lote(w.db, &out, "archive", "--older-than", "0s", NULL), 0);
	free(out);
	assert_int_equal(tl_int(w.conn, "SELECT count(*) FROM lote.commands_archive WHERE batch_id = %lld", b), 101);
	j = get_json(&w, w.admin, "/api/v1/batches", 200);
	json_t *p = json_object_get(json_array_get(json_object_get(j, "items"), 0), "progress");
	assert_int_equal(json_object_size(p), 1);
	assert_int_equal(json_integer_value(json_object_get(p, "success")), 100);
	json_decref(j);
	j = get_json(&w, w.admin, "/api/v1/batches/1", 200);
	p = json_object_get(j, "progress");
	assert_int_equal(json_object_size(p), 1);
	assert_int_equal(json_integer_value(json_object_get(p, "success")), 100);
	assert_int_equal(json_array_size(json_object_get(j, "members")), 101);
	json_decref(j);
	assert_int_equal(tl_run_lote(w.db, &out, "batches", "ls", NULL), 0);
	if (!strstr(out, "100/100"))
		fail_msg("batches ls:\n%s", out);
	free(out);
	assert_int_equal(tl_run_lote(w.db, &out, "batches", "show", "1", NULL), 0);
	if (!strstr(out, "progress         success 100\n"))
		fail_msg("batches show:\n%s", out);
	free(out);
	stop(&w);
}

/* The error rate of the last hour is 0 when work finished without errors,
 * not null. */
static void summary_error_rate(void **state)
{
	struct web w;
	json_t *j, *r;
	(void)state;
	start(&w, "api_error_rate");
	tl_exec(w.conn, "SELECT lote.enqueue('Noop') FROM generate_series(1, 3)");
	tl_exec(w.conn, "UPDATE lote.commands SET status = 'success', attempt = 1, finished_at = now()");
	j = get_json(&w, w.admin, "/api/v1/summary", 200);
	r = json_object_get(j, "error_rate_1h");
	if (!json_is_number(r) || json_number_value(r) != 0)
		fail_msg("error_rate_1h: %s", json_dumps(r, JSON_ENCODE_ANY));
	json_decref(j);
	tl_exec(w.conn, "UPDATE lote.commands SET status = 'error', finished_at = now() WHERE id = 1");
	j = get_json(&w, w.admin, "/api/v1/summary", 200);
	r = json_object_get(j, "error_rate_1h");
	assert_true(json_is_number(r) && json_number_value(r) > 0);
	json_decref(j);
	stop(&w);
}

/* The pid of the newest "serving" line of the HTTP server other than
 * not, waiting up to 10 s for one. */
static int server_pid(const char *log, int not)
{
	for (int i = 0; i < 500; i++) {
		FILE *f = fopen(log, "r");
		char line[512];
		int pid = 0;
		while (f && fgets(line, sizeof(line), f)) {
			char *p = strstr(line, " http[");
			if (p && strstr(line, "serving the dashboard"))
				pid = atoi(p + 6);
		}
		if (f)
			fclose(f);
		if (pid > 0 && pid != not)
			return pid;
		usleep(20000);
	}
	return 0;
}

static void run_serves_http(void **state)
{
	char *db = tl_fresh_db("api_run", true);
	char *log = tl_tmp_path("api_run.log");
	struct web w = { 0 };
	(void)state;
	w.admin = token(db, "admin", NULL);
	unlink(log);
	w.pid = tl_spawn_lote(db, log, "run", "--exec", "Noop=true", "--workers", "1",
	                      "--http", "127.0.0.1:0", NULL);
	live_server = w.pid;
	w.port = wait_port(log, w.pid);
	PGconn *c = tl_connect(db);
	tl_exec(c, "SELECT lote.enqueue('Noop') FROM generate_series(1, 3)");
	assert_true(tl_wait(c, 10000, "SELECT count(*) = 3 FROM lote.commands WHERE status = 'success'"));
	json_t *j = get_json(&w, w.admin, "/api/v1/summary", 200);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(j, "commands"),
	                                                                    "by_status"), "success")), 3);
	json_decref(j);
	/* the HTTP server process is restarted when it dies */
	int server = server_pid(log, 0);
	assert_true(server > 0);
	kill(server, SIGKILL);
	int again = server_pid(log, server);
	assert_true(again > 0 && again != server);
	json_decref(get_json(&w, w.admin, "/api/v1/me", 200));
	live_server = 0;
	assert_int_equal(tl_stop(w.pid, SIGTERM, 15000), 0);
	PQfinish(c);
	free(w.admin);
	free(log);
	free(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(auth_and_roles, teardown),
		cmocka_unit_test_teardown(lists_filters_and_pages, teardown),
		cmocka_unit_test_teardown(errors_quote_bad_bytes, teardown),
		cmocka_unit_test_teardown(details_and_tenants, teardown),
		cmocka_unit_test_teardown(actions_and_audit, teardown),
		cmocka_unit_test_teardown(static_files_sse_and_ports, teardown),
		cmocka_unit_test_teardown(cli_mirrors_the_api, teardown),
		cmocka_unit_test_teardown(archived_batch_keeps_progress, teardown),
		cmocka_unit_test_teardown(summary_error_rate, teardown),
		cmocka_unit_test_teardown(run_serves_http, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
