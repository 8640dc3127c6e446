/* http.c - see http.h. libmicrohttpd with a thread per connection (so a
 * Server-Sent Events stream may simply wait), a small pool of database
 * connections, and routing to api.c. Every /api/ request needs a bearer
 * token; the dashboard's own files load without one and ask for it. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "api.h"
#include "db.h"
#include "error.h"
#include "http.h"
#include "jsontext.h"
#include "log.h"
#include "utf8.h"

/* ---------------------------------------------------------------------
 * Listening socket
 */

int lote__http_listen(const char *addr, int *ret_fd, int *ret_port, lote_error *err)
{
	struct addrinfo hints = { 0 }, *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[256], *colon;
	const char *port;
	int fd = -1, one = 1, rc;

	if (!addr || strlen(addr) >= sizeof(host))
		return lote__fail(err, LOTE_EINVAL, "listen address: want ADDR:PORT, e.g. 127.0.0.1:8080");
	strcpy(host, addr);
	colon = strrchr(host, ':');
	if (!colon || !colon[1])
		return lote__fail(err, LOTE_EINVAL, "listen address \"%s\": want ADDR:PORT, e.g. 127.0.0.1:8080", addr);
	*colon = '\0';
	port = colon + 1;
	for (const char *p = port; *p; p++)
		if (*p < '0' || *p > '9')
			return lote__fail(err, LOTE_EINVAL, "listen address \"%s\": bad port \"%s\"", addr, port);
	if (strlen(port) > 5 || atoi(port) > 65535)
		return lote__fail(err, LOTE_EINVAL, "listen address \"%s\": port out of range", addr);
	char *h = host;
	if (h[0] == '[') {
		size_t n = strlen(h);
		if (n < 2 || h[n - 1] != ']')
			return lote__fail(err, LOTE_EINVAL, "listen address \"%s\": bad IPv6 address", addr);
		h[n - 1] = '\0';
		h++;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(*h ? h : NULL, port, &hints, &ai)) != 0)
		return lote__fail(err, LOTE_EINVAL, "listen address \"%s\": %s", addr, gai_strerror(rc));
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0) {
		freeaddrinfo(ai);
		return lote__fail_errno(err, "socket");
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		int e = errno;
		freeaddrinfo(ai);
		close(fd);
		if (e == EADDRINUSE)
			return lote__fail(err, LOTE_ESYS, "%s is already in use (another lote web or lote run --http?"
			                  " pick another port)", addr);
		errno = e;
		return lote__fail_errno(err, "cannot listen on %s", addr);
	}
	freeaddrinfo(ai);
	if (listen(fd, 64) < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		close(fd);
		return lote__fail_errno(err, "cannot listen on %s", addr);
	}
	*ret_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
	                                     : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	*ret_fd = fd;
	return 0;
}

/* ---------------------------------------------------------------------
 * Database connection pool
 */

struct pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	const char *conninfo;
	PGconn *idle[LOTE_HTTP_POOL];
	int nidle;
	int total;  /* idle + lent */
};

static atomic_bool stopping;

static PGconn *pool_get(struct pool *p, lote_error *err)
{
	PGconn *c = NULL;

	pthread_mutex_lock(&p->mu);
	while (p->nidle == 0 && p->total >= LOTE_HTTP_POOL)
		pthread_cond_wait(&p->cv, &p->mu);
	if (p->nidle > 0)
		c = p->idle[--p->nidle];
	else
		p->total++;
	pthread_mutex_unlock(&p->mu);
	if (c && PQstatus(c) != CONNECTION_OK) {
		PQfinish(c);
		c = NULL;
	}
	if (!c) {
		if (lote__db_connect(p->conninfo, "lote web", &c, err) < 0) {
			pthread_mutex_lock(&p->mu);
			p->total--;
			pthread_cond_signal(&p->cv);
			pthread_mutex_unlock(&p->mu);
			return NULL;
		}
		/* The planner overestimates the archive views; JIT compiling a
		 * plan that reads ten rows costs more than running it. */
		lote__db_try(c, "SET jit = off");
	}
	return c;
}

static void pool_put(struct pool *p, PGconn *c)
{
	if (c && PQtransactionStatus(c) != PQTRANS_IDLE) {
		/* a request left a transaction open or broke the link */
		PQfinish(c);
		c = NULL;
	}
	pthread_mutex_lock(&p->mu);
	if (c)
		p->idle[p->nidle++] = c;
	else
		p->total--;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

/* ---------------------------------------------------------------------
 * Requests
 */

struct server {
	struct pool pool;
	bool schema_ok;
};

/* Per-request state across the access handler's calls. */
struct request {
	char *body;
	size_t len;
	bool too_big;
};

static enum MHD_Result send_raw(struct MHD_Connection *c, unsigned status, const char *type,
                                const void *data, size_t len, bool copy, bool cache)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data,
	                                                        copy ? MHD_RESPMEM_MUST_COPY
	                                                             : MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ok;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "Cache-Control", cache ? "public, max-age=300" : "no-store");
	if (strncmp(type, "text/html", 9) == 0)
		MHD_add_response_header(r, "Content-Security-Policy",
		                        "default-src 'self'; img-src 'self' data:; style-src 'self';"
		                        " script-src 'self'; connect-src 'self'; frame-ancestors 'none';"
		                        " base-uri 'none'; form-action 'none'");
	ok = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ok;
}

/* Sends v (reference taken) as JSON; NULL (it could not be built: out of
 * memory) sends a fixed 500. */
static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *v)
{
	static const char oom[] = "{\"error\":\"the answer could not be built (out of memory)\"}";
	char *s = lote__json_text(v, JSON_COMPACT);
	enum MHD_Result ok;

	json_decref(v);
	if (!s)
		return send_raw(c, 500, "application/json", oom, sizeof(oom) - 1, false, false);
	ok = send_raw(c, status, "application/json", s, strlen(s), true, false);
	free(s);
	return ok;
}

/* Sends {"error": msg}. msg may quote what the client sent, cut anywhere:
 * what is not UTF-8 becomes '?', so the answer is still JSON. */
static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
	char *clean = strdup(msg);
	json_t *v;

	if (!clean)
		return send_json(c, status, NULL);
	lote__utf8_sanitize(clean, strlen(clean));
	v = json_pack("{ss}", "error", clean);
	free(clean);
	return send_json(c, status, v);
}

/* The HTTP status for a library error. */
static unsigned status_for(int code)
{
	switch (code) {
	case LOTE_EINVAL: return 422;
	case LOTE_ENOTFOUND: return 404;
	case LOTE_ESTATE: return 409;
	case LOTE_ECONN: case LOTE_ESCHEMA: return 503;
	default: return 500;
	}
}

static enum MHD_Result send_result(struct MHD_Connection *c, int rc, json_t *v, const lote_error *err)
{
	if (rc < 0) {
		unsigned st = status_for(rc);
		if (st >= 500)
			log_error("api: %s", err->message);
		return send_error(c, st, err->message);
	}
	return send_json(c, 200, v);
}

/* Collects query parameters into a filter; the first bad one wins. */
struct args {
	lote__api_filter *f;
	lote__api_kind kind;
	lote_error *err;
	int rc;
};

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
	struct args *a = cls;
	(void)kind;
	if (a->rc == 0)
		a->rc = lote__api_filter_set(a->f, a->kind, key, value ? value : "", a->err);
	return MHD_YES;
}

/* Splits "/api/v1/commands/42/reprocess" after the prefix into up to 3
 * segments. Returns how many, or -1 when there are more. */
static int split(const char *path, char seg[3][64])
{
	int n = 0;

	while (*path == '/')
		path++;
	while (*path) {
		size_t len = strcspn(path, "/");
		if (n == 3 || len >= 64)
			return -1;
		memcpy(seg[n], path, len);
		seg[n++][len] = '\0';
		path += len;
		while (*path == '/')
			path++;
	}
	return n;
}

static bool parse_pos_id(const char *s, int64_t *ret)
{
	char *end;
	long long v;

	if (!*s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end || v <= 0 || errno)
		return false;
	*ret = v;
	return true;
}

/* Authenticates the bearer token; fills actor, or sends the 401. */
static bool authenticate(struct MHD_Connection *c, PGconn *db, lote__api_actor *actor,
                         enum MHD_Result *ret)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	lote_error err = { 0 };

	if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
		static const char msg[] = "{\"error\":\"missing token: send Authorization: Bearer TOKEN"
		                          " (create one with lote tokens add)\"}";
		struct MHD_Response *r = MHD_create_response_from_buffer(sizeof(msg) - 1, (void *)msg,
		                                                        MHD_RESPMEM_PERSISTENT);
		if (!r)
			return (*ret = MHD_NO), false;
		MHD_add_response_header(r, "Content-Type", "application/json");
		MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"lote\"");
		*ret = MHD_queue_response(c, 401, r);
		MHD_destroy_response(r);
		return false;
	}
	if (lote__api_token_check(db, h + 7, actor, &err) < 0) {
		*ret = err.code == LOTE_ENOTFOUND ? send_error(c, 401, "unknown or revoked token")
		                                  : send_error(c, 503, err.message);
		return false;
	}
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr) {
		const struct sockaddr *sa = ci->client_addr;
		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, actor->remote,
			          sizeof(actor->remote));
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, actor->remote,
			          sizeof(actor->remote));
	}
	return true;
}

/* CSRF defence for POST: a bearer header is never sent by a browser on its
 * own, and on top of that a cross-site request (by Origin or
 * Sec-Fetch-Site) and a non-JSON body are refused. */
static const char *csrf_refusal(struct MHD_Connection *c, const struct request *rq)
{
	const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
	const char *site = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
	const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");

	if (site && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)
		return "cross-site request refused";
	if (origin && strcmp(origin, "null") != 0) {
		const char *o = strstr(origin, "://");
		if (!host || !o || strcmp(o + 3, host) != 0)
			return "cross-origin request refused";
	}
	if (rq->len > 0 && (!type || strncasecmp(type, "application/json", 16) != 0))
		return "a request body must be Content-Type: application/json";
	return NULL;
}

/* State of one Server-Sent Events stream. */
struct sse {
	struct server *srv;
	lote__api_actor actor;
	char *buf;      /* what is left to send */
	size_t off, len;
	int64_t next_ms;
	unsigned seq;
};

static void sse_free(void *cls)
{
	struct sse *s = cls;
	free(s->buf);
	free(s);
}

static ssize_t sse_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct sse *s = cls;
	(void)pos;

	while (s->off == s->len) {
		lote_error err = { 0 };
		json_t *sum = NULL;
		PGconn *db;
		char *j;

		if (atomic_load(&stopping))
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (lote__mono_ms() < s->next_ms) {
			struct timespec ts = { 0, 100 * 1000 * 1000 };
			nanosleep(&ts, NULL);
			continue;
		}
		s->next_ms = lote__mono_ms() + LOTE_HTTP_SSE_MS;
		free(s->buf);
		s->buf = NULL;
		s->off = s->len = 0;
		db = pool_get(&s->srv->pool, &err);
		if (db) {
			if (lote__api_summary(db, &s->actor, &sum, &err) < 0)
				sum = NULL;
			pool_put(&s->srv->pool, db);
		}
		if (!sum) {
			/* keep the stream; say why in a comment line */
			if (asprintf(&s->buf, ": %s\n\n", "summary unavailable") < 0)
				return MHD_CONTENT_READER_END_WITH_ERROR;
		} else {
			j = lote__json_text(sum, JSON_COMPACT);
			json_decref(sum);
			if (!j || asprintf(&s->buf, "id: %u\nevent: summary\ndata: %s\n\n", ++s->seq, j) < 0) {
				free(j);
				return MHD_CONTENT_READER_END_WITH_ERROR;
			}
			free(j);
		}
		s->len = strlen(s->buf);
	}
	size_t n = s->len - s->off < max ? s->len - s->off : max;
	memcpy(out, s->buf + s->off, n);
	s->off += n;
	return (ssize_t)n;
}

static enum MHD_Result start_sse(struct MHD_Connection *c, struct server *srv,
                                 const lote__api_actor *actor)
{
	struct sse *s = calloc(1, sizeof(*s));
	struct MHD_Response *r;
	enum MHD_Result ok;

	if (!s)
		return MHD_NO;
	s->srv = srv;
	s->actor = *actor;
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 8192, sse_read, s, sse_free);
	if (!r) {
		free(s);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "text/event-stream");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Accel-Buffering", "no");
	ok = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ok;
}

/* Routes one authenticated /api/v1 request. */
static enum MHD_Result route_api(struct MHD_Connection *c, struct server *srv, PGconn *db,
                                 const lote__api_actor *actor, const char *method,
                                 const char *rest, struct request *rq)
{
	char seg[3][64];
	int n = split(rest, seg), kind;
	bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
	lote_error err = { 0 };
	json_t *v = NULL;
	int64_t id = 0;
	int rc;

	if (n <= 0)
		return send_error(c, 404, "no such API route");
	if (!get && !post)
		return send_error(c, 405, "method not allowed");
	if (post) {
		const char *why = csrf_refusal(c, rq);
		if (why)
			return send_error(c, 403, why);
		if (!lote__api_can_act(actor))
			return send_error(c, 403, "this token's role (viewer) cannot act; an operator or admin token can");
	}
	kind = lote__api_kind_parse(seg[0]);

	if (n == 1 && get && kind >= 0) {
		lote__api_filter f;
		struct args a = { 0 };
		lote__api_filter_init(&f);
		a.f = &f;
		a.kind = kind;
		a.err = &err;
		MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_arg, &a);
		rc = a.rc < 0 ? a.rc : lote__api_list(db, kind, &f, actor, &v, &err);
		lote__api_filter_done(&f);
		return send_result(c, rc, v, &err);
	}
	if (n == 2 && kind >= 0 && strcmp(seg[1], "reprocess") == 0 && kind == LOTE_API_COMMANDS) {
		if (!post)
			return send_error(c, 405, "use POST");
		json_error_t je;
		json_t *body = rq->len ? json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES, &je)
		                       : json_object();
		static const char *const skip[] = { "dry_run", NULL };
		lote__api_filter f;
		if (!body) {
			char msg[256];
			snprintf(msg, sizeof(msg), "malformed JSON body: %s", je.text);
			return send_error(c, 400, msg);
		}
		json_t *dry = json_object_get(body, "dry_run");
		if (dry && !json_is_boolean(dry)) {
			json_decref(body);
			return send_error(c, 422, "dry_run: must be true or false");
		}
		/* a page is not a filter here: bulk reprocess takes every match */
		if (json_object_get(body, "limit") || json_object_get(body, "cursor")) {
			json_decref(body);
			return send_error(c, 422, "limit and cursor are not filters of a bulk reprocess"
			                          " (it takes up to 10000 matches a call; \"more\" says if there are more)");
		}
		lote__api_filter_init(&f);
		rc = lote__api_filter_from_json(&f, LOTE_API_COMMANDS, body, skip, &err);
		if (rc == 0)
			rc = lote__api_reprocess_bulk(db, &f, json_is_true(dry), actor, &v, &err);
		lote__api_filter_done(&f);
		json_decref(body);
		return send_result(c, rc, v, &err);
	}
	if (n >= 2 && kind >= 0) {
		if (!parse_pos_id(seg[1], &id))
			return send_error(c, 404, "not found: an id is a positive integer");
		if (n == 2) {
			if (!get)
				return send_error(c, 405, "use GET");
			rc = lote__api_get(db, kind, id, actor, &v, &err);
			return send_result(c, rc, v, &err);
		}
		/* an unknown action is a 404 whatever the method; a known one
		 * asked with GET is a 405 */
		bool reprocess = n == 3 && strcmp(seg[2], "reprocess") == 0 && kind == LOTE_API_COMMANDS;
		bool cancel = n == 3 && strcmp(seg[2], "cancel") == 0 && kind != LOTE_API_EVENTS;
		if (!reprocess && !cancel)
			return send_error(c, 404, "no such action");
		if (!post)
			return send_error(c, 405, "use POST");
		if (reprocess)
			rc = lote__api_reprocess(db, id, actor, &v, &err);
		else
			rc = lote__api_cancel(db, kind, id, actor, &v, &err);
		return send_result(c, rc, v, &err);
	}
	if (n == 1 && get) {
		if (strcmp(seg[0], "summary") == 0)
			rc = lote__api_summary(db, actor, &v, &err);
		else if (strcmp(seg[0], "workers") == 0)
			rc = lote__api_workers(db, &v, &err);
		else if (strcmp(seg[0], "schedules") == 0)
			rc = lote__api_schedules(db, &v, &err);
		else if (strcmp(seg[0], "errors") == 0)
			rc = lote__api_errors(db, actor, &v, &err);
		else if (strcmp(seg[0], "audit") == 0) {
			const char *cur = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "cursor");
			int64_t cursor = 0;
			if (cur && !parse_pos_id(cur, &cursor))
				return send_error(c, 422, "cursor: not a positive integer");
			rc = lote__api_audit(db, actor, cursor, 100, &v, &err);
		} else if (strcmp(seg[0], "me") == 0) {
			v = json_pack("{sIssss?}", "token_id", (json_int_t)actor->token_id, "role", actor->role,
			              "institution_id", actor->institution[0] ? actor->institution : NULL);
			rc = 0;
		} else if (strcmp(seg[0], "stream") == 0) {
			return start_sse(c, srv, actor);
		} else {
			return send_error(c, 404, "no such API route");
		}
		if (rc == 0 && json_is_array(v))
			v = json_pack("{so}", "items", v);
		return send_result(c, rc, v, &err);
	}
	return send_error(c, 404, "no such API route");
}

static enum MHD_Result serve_static(struct MHD_Connection *c, const char *url)
{
	if (strcmp(url, "/") == 0)
		url = "/index.html";
	for (int i = 0; i < lote__web_assets_count; i++) {
		const struct lote__web_asset *a = &lote__web_assets[i];
		if (strcmp(a->path, url) == 0)
			return send_raw(c, 200, a->content_type, a->data, a->len, false,
			                strcmp(a->path, "/index.html") != 0);
	}
	return send_raw(c, 404, "text/plain; charset=utf-8", "not found\n", 10, false, false);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls)
{
	struct server *srv = cls;
	struct request *rq = *con_cls;
	lote_error err = { 0 };
	lote__api_actor actor;
	enum MHD_Result ret;
	PGconn *db;
	(void)version;

	if (!rq) {
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
		if (!(rq = calloc(1, sizeof(*rq))))
			return MHD_NO;
		*con_cls = rq;
		if (cl && strtoull(cl, NULL, 10) > LOTE_HTTP_BODY_MAX)
			rq->too_big = true;
		return MHD_YES;
	}
	if (*upload_size) {
		if (!rq->too_big && rq->len + *upload_size <= LOTE_HTTP_BODY_MAX) {
			char *b = realloc(rq->body, rq->len + *upload_size + 1);
			if (!b)
				return MHD_NO;
			memcpy(b + rq->len, upload, *upload_size);
			rq->body = b;
			rq->len += *upload_size;
			b[rq->len] = '\0';
		} else {
			rq->too_big = true;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	log_debug("%s %s", method, url);
	if (rq->too_big)
		return send_error(c, 413, "request body over the limit of 65536 bytes");
	if (strncmp(url, "/api/", 5) != 0) {
		if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
			return send_error(c, 405, "method not allowed");
		return serve_static(c, url);
	}
	if (strncmp(url, "/api/v1/", 8) != 0)
		return send_error(c, 404, "no such API version (this server speaks /api/v1)");
	if (!(db = pool_get(&srv->pool, &err)))
		return send_error(c, 503, err.message);
	if (!srv->schema_ok) {
		if (lote_schema_check(db, &err) < 0) {
			pool_put(&srv->pool, db);
			return send_error(c, 503, err.message);
		}
		srv->schema_ok = true;
	}
	if (authenticate(c, db, &actor, &ret))
		ret = route_api(c, srv, db, &actor, method, url + 7, rq);
	pool_put(&srv->pool, db);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct request *rq = *con_cls;
	(void)cls;
	(void)c;
	(void)toe;
	if (rq) {
		free(rq->body);
		free(rq);
		*con_cls = NULL;
	}
}

/* libmicrohttpd's own messages go to the log, one line each: a client
 * that went away mid-response (an event stream closed by its browser) at
 * debug level, since the server goes on; anything else as a warning. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\r\n")] = '\0';
	if (strstr(msg, "no longer available") || strstr(msg, "reset by peer") ||
	    strstr(msg, "closed by"))
		log_debug("http: %s", msg);
	else
		log_warn("http: %s", msg);
}

int lote__http_serve(int fd, const char *conninfo, lote_error *err)
{
	struct server srv = { 0 };
	struct MHD_Daemon *d;
	sigset_t set, old;
	int sig;

	pthread_mutex_init(&srv.pool.mu, NULL);
	pthread_cond_init(&srv.pool.cv, NULL);
	srv.pool.conninfo = conninfo;
	atomic_store(&stopping, false);
	/* Block the stop signals before MHD starts its threads, so they all
	 * inherit the mask and the signal comes to sigwait below. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	signal(SIGPIPE, SIG_IGN);
	d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
	                     MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, &srv,
	                     MHD_OPTION_LISTEN_SOCKET, fd,
	                     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)LOTE_HTTP_HEADER_MAX,
	                     MHD_OPTION_CONNECTION_LIMIT, (unsigned)LOTE_HTTP_CONNECTIONS,
	                     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
	                     MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
	                     MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
	                     MHD_OPTION_END);
	if (!d) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		return lote__fail(err, LOTE_ESYS, "could not start the HTTP server");
	}
	log_info("serving the dashboard and API");
	sigwait(&set, &sig);
	log_info("http: stopping (%s)", strsignal(sig));
	atomic_store(&stopping, true);
	MHD_stop_daemon(d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	for (int i = 0; i < srv.pool.nidle; i++)
		PQfinish(srv.pool.idle[i]);
	pthread_mutex_destroy(&srv.pool.mu);
	pthread_cond_destroy(&srv.pool.cv);
	return 0;
}
