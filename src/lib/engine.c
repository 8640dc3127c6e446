/* engine.c - the handler registry and the supervisor.
 *
 * The supervisor forks the worker processes (the PostgreSQL / nginx model:
 * a crashing handler takes down one worker, never the supervisor or its
 * siblings), restarts workers that die, returns the work of dead workers to
 * the queue at once, rescues expired leases, and on SIGTERM/SIGINT stops
 * the workers gracefully within the grace period. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db.h"
#include "engine_int.h"
#include "error.h"
#include "log.h"
#include "schedule.h"

/* Restart back-off of a worker that keeps dying: 100 ms doubling to 30 s,
 * reset once a worker has lived this long. */
#define RESTART_MIN_MS 100
#define RESTART_MAX_MS 30000
#define RESTART_STABLE_MS 60000
/* How often the supervisor looks for expired leases and dead workers. */
#define RESCUE_EVERY_MS 2000
/* Worker rows of other hosts whose heartbeat is older are dropped. */
#define STALE_WORKER_SQL "interval '10 minutes'"
#define MAX_WORKERS 256

void lote_engine_options_init(lote_engine_options *o)
{
	memset(o, 0, sizeof(*o));
	o->workers = 2;
	o->batch = 1000;
	o->poll_ms = 1000;
	o->lease_ms = 30 * 1000;
	o->heartbeat_ms = 0; /* lease / 3 */
	o->grace_ms = 30 * 1000;
	o->timeout_ms = 5 * 60 * 1000;
	o->listen = true;
	o->shared_tx = true;
	o->name = "lote";
}

static char *dup_or_null(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

int lote_engine_new(const lote_engine_options *opts, lote_engine **ret_engine,
                    lote_error *err)
{
	lote_engine *e;

	if (!opts || !opts->conninfo || !*opts->conninfo)
		return lote__fail(err, LOTE_EINVAL, "engine: no database conninfo given");
	if (opts->workers < 1 || opts->workers > MAX_WORKERS)
		return lote__fail(err, LOTE_EINVAL, "engine: workers must be 1 to %d, got %d",
		                  MAX_WORKERS, opts->workers);
	if (opts->batch < 1 || opts->batch > 1000)
		return lote__fail(err, LOTE_EINVAL, "engine: batch must be 1 to 1000, got %d",
		                  opts->batch);
	/* one message per rule, naming the option and its value */
	if (opts->poll_ms < 10)
		return lote__fail(err, LOTE_EINVAL, "engine: poll must be at least 10ms, got %lldms",
		                  (long long)opts->poll_ms);
	if (opts->lease_ms < 1000)
		return lote__fail(err, LOTE_EINVAL, "engine: lease must be at least 1s, got %lldms",
		                  (long long)opts->lease_ms);
	if (opts->heartbeat_ms < 0 || opts->heartbeat_ms >= opts->lease_ms)
		return lote__fail(err, LOTE_EINVAL,
		                  "engine: heartbeat must be shorter than the lease (%lldms), got %lldms",
		                  (long long)opts->lease_ms, (long long)opts->heartbeat_ms);
	if (opts->grace_ms < 0 || opts->timeout_ms < 0)
		return lote__fail(err, LOTE_EINVAL, "engine: grace and timeout must be 0 or more");
	e = calloc(1, sizeof(*e));
	if (!e)
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	e->opts = *opts;
	if (e->opts.heartbeat_ms <= 0)
		e->opts.heartbeat_ms = e->opts.lease_ms / 3;
	e->conninfo = strdup(opts->conninfo);
	e->queues = dup_or_null(opts->queues);
	e->name = strdup(opts->name && *opts->name ? opts->name : "lote");
	if (!e->conninfo || !e->name || (opts->queues && *opts->queues && !e->queues)) {
		lote_engine_free(e);
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	}
	e->opts.conninfo = e->conninfo;
	e->opts.queues = e->queues;
	e->opts.name = e->name;
	*ret_engine = e;
	return 0;
}

static void handler_done(struct lote__handler *h)
{
	if (h->opts.free_udata)
		h->opts.free_udata(h->udata);
	free(h->type);
}

void lote_engine_free(lote_engine *e)
{
	if (!e)
		return;
	for (int i = 0; i < e->ncommands; i++)
		handler_done(&e->commands[i]);
	free(e->commands);
	for (int i = 0; i < e->nevents; i++) {
		for (int j = 0; j < e->events[i].nhandlers; j++)
			handler_done(&e->events[i].handlers[j]);
		free(e->events[i].handlers);
		free(e->events[i].type);
	}
	free(e->events);
	free(e->conninfo);
	free(e->queues);
	free(e->name);
	free(e);
}

/* The same rule as lote.check_type in SQL, so a typo fails at start-up
 * rather than leaving work unhandled. */
static bool valid_type(const char *t)
{
	size_t n = t ? strlen(t) : 0;
	if (n == 0 || n > 200 || !(t[0] == '_' || (t[0] >= 'A' && t[0] <= 'Z') ||
	                           (t[0] >= 'a' && t[0] <= 'z')))
		return false;
	return strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-") == n;
}

static int check_opts(const char *type, const lote_handler_opts *opts, lote_error *err)
{
	if (opts && (opts->max_attempts < 0 || opts->max_attempts > 1000 ||
	             opts->retry.strategy < 0 || opts->retry.strategy > LOTE_RETRY_FIXED ||
	             opts->retry.base_ms < 0 || opts->retry.max_ms < 0 ||
	             !(opts->retry.jitter >= 0 && opts->retry.jitter <= 1) || opts->timeout_ms < 0))
		return lote__fail(err, LOTE_EINVAL,
		                  "%s: invalid handler options (max_attempts 0..1000, retry base/max >= 0, "
		                  "jitter 0..1, timeout >= 0)", type);
	return 0;
}

static int make_handler(struct lote__handler *h, const char *type, lote_handler_fn fn,
                        void *udata, const lote_handler_opts *opts, lote_error *err)
{
	memset(h, 0, sizeof(*h));
	h->type = strdup(type);
	if (!h->type)
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	h->fn = fn;
	h->udata = udata;
	if (opts)
		h->opts = *opts;
	return 0;
}

int lote_engine_on_command(lote_engine *e, const char *type, lote_handler_fn fn,
                           void *udata, const lote_handler_opts *opts, lote_error *err)
{
	struct lote__handler *grown;
	int rc;

	if (!fn || !valid_type(type))
		return lote__fail(err, LOTE_EINVAL, "invalid command type \"%s\"", type ? type : "(null)");
	if ((rc = check_opts(type, opts, err)) < 0)
		return rc;
	for (int i = 0; i < e->ncommands; i++)
		if (strcmp(e->commands[i].type, type) == 0)
			return lote__fail(err, LOTE_EINVAL,
			                  "command type \"%s\" already has a handler", type);
	grown = realloc(e->commands, (e->ncommands + 1) * sizeof(*grown));
	if (!grown)
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	e->commands = grown;
	if ((rc = make_handler(&e->commands[e->ncommands], type, fn, udata, opts, err)) < 0)
		return rc;
	e->ncommands++;
	return 0;
}

int lote_engine_on_event(lote_engine *e, const char *type, lote_handler_fn fn,
                         void *udata, const lote_handler_opts *opts, lote_error *err)
{
	struct lote__event_type *et = NULL;
	struct lote__handler *grown;
	int rc;

	if (!fn || !valid_type(type))
		return lote__fail(err, LOTE_EINVAL, "invalid event type \"%s\"", type ? type : "(null)");
	if ((rc = check_opts(type, opts, err)) < 0)
		return rc;
	for (int i = 0; i < e->nevents; i++)
		if (strcmp(e->events[i].type, type) == 0)
			et = &e->events[i];
	if (!et) {
		struct lote__event_type *g = realloc(e->events, (e->nevents + 1) * sizeof(*g));
		if (!g)
			return lote__fail(err, LOTE_ENOMEM, "out of memory");
		e->events = g;
		et = &e->events[e->nevents];
		memset(et, 0, sizeof(*et));
		et->type = strdup(type);
		if (!et->type)
			return lote__fail(err, LOTE_ENOMEM, "out of memory");
		e->nevents++;
	}
	grown = realloc(et->handlers, (et->nhandlers + 1) * sizeof(*grown));
	if (!grown)
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	et->handlers = grown;
	if ((rc = make_handler(&et->handlers[et->nhandlers], type, fn, udata, opts, err)) < 0)
		return rc;
	et->nhandlers++;
	return 0;
}

static int cmp_handler(const void *a, const void *b)
{
	return strcmp(((const struct lote__handler *)a)->type,
	              ((const struct lote__handler *)b)->type);
}

static int cmp_event(const void *a, const void *b)
{
	return strcmp(((const struct lote__event_type *)a)->type,
	              ((const struct lote__event_type *)b)->type);
}

const struct lote__handler *lote__engine_command(const lote_engine *e, const char *type)
{
	struct lote__handler key = { .type = (char *)type };
	if (e->ncommands == 0)
		return NULL;
	return bsearch(&key, e->commands, e->ncommands, sizeof(key), cmp_handler);
}

const struct lote__event_type *lote__engine_event(const lote_engine *e, const char *type)
{
	struct lote__event_type key = { .type = (char *)type };
	if (e->nevents == 0)
		return NULL;
	return bsearch(&key, e->events, e->nevents, sizeof(key), cmp_event);
}

void lote_engine_stop(lote_engine *e)
{
	e->stop = 1;
	if (e->supervisor_pid > 0)
		kill(e->supervisor_pid, SIGTERM);
}

/* ---------------------------------------------------------------------
 * Supervisor
 */

struct slot {
	pid_t pid;          /* 0: not running */
	int64_t started_ms; /* monotonic */
	int64_t restart_at; /* monotonic; when to start it again */
	int64_t backoff_ms;
};

struct supervisor {
	lote_engine *e;
	PGconn *conn;
	char host[256];
	struct slot *slots;
	int n;
	sigset_t old_mask;
	bool outage;        /* the database is unreachable (logged once) */
};

/* Back-off of a worker restart while the database is unreachable: short,
 * so work resumes soon after it is back. */
#define RECONNECT_MAX_MS 5000

/* Notes an outage: logged when it starts and when it ends, not for every
 * worker and every retry in between. */
static void set_outage(struct supervisor *s, bool down, const char *why)
{
	if (down && !s->outage)
		log_warn("database connection lost (%s); workers reconnect with back-off", why);
	else if (!down && s->outage)
		log_info("database connection back");
	s->outage = down;
}

/* Set in worker processes by SIGTERM/SIGINT. */
static lote_engine *worker_engine;

static void on_worker_signal(int sig)
{
	(void)sig;
	if (worker_engine)
		worker_engine->stop = 1;
}

static pid_t start_worker(struct supervisor *s, int index)
{
	pid_t pid = fork();

	if (pid < 0) {
		log_error("cannot fork worker %d: %s", index + 1, strerror(errno));
		return -1;
	}
	if (pid == 0) {
		struct sigaction sa = { 0 };
		int status;

		/* The child never touches the supervisor's connection: PQfinish
		 * here would end the parent's session. */
		/* A worker never outlives its supervisor: if that is killed, the
		 * worker stops gracefully and its claims come back. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != s->e->supervisor_pid)
			_exit(0);
		worker_engine = s->e;
		sa.sa_handler = on_worker_signal; /* no SA_RESTART: wakes poll() */
		sigemptyset(&sa.sa_mask);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		signal(SIGCHLD, SIG_DFL);
		sigprocmask(SIG_SETMASK, &s->old_mask, NULL);
		lote__log_set_context("worker %d", index + 1);
		status = lote__worker_main(s->e, index + 1);
		_exit(status);
	}
	s->slots[index].pid = pid;
	s->slots[index].started_ms = lote__mono_ms();
	log_debug("started worker %d (pid %d)", index + 1, (int)pid);
	return pid;
}

/* Hands back the work of a dead worker process of this host right away
 * instead of waiting for its leases: the row it was running (kind/id, 0
 * when none) fails with reason; the rest goes back untouched. */
static void worker_lost(struct supervisor *s, pid_t pid, int kind, int64_t id,
                        const char *reason, const char *outcome)
{
	char pidtext[16], idtext[24], *v = NULL;
	const char *params[6] = { s->host, pidtext, kind == LOTE_EVENT ? "event" : "command",
	                          idtext, reason, outcome };
	lote_error err = { 0 };

	snprintf(pidtext, sizeof(pidtext), "%d", (int)pid);
	snprintf(idtext, sizeof(idtext), "%lld", (long long)(kind ? id : 0));
	if (lote__db_value(s->conn,
	        "SELECT coalesce(sum(lote.worker_lost(id, $3, $4::bigint, $5, $6)), 0)"
	        " FROM lote.workers WHERE host = $1 AND pid = $2::int",
	        6, params, &v, &err) < 0) {
		/* During an outage the next upkeep after it hands the work back
		 * (the worker's row names a dead pid). */
		if (!s->outage)
			log_error("cannot hand back the work of dead worker pid %d: %s", (int)pid,
			          err.message);
	}
	else if (v && atoi(v) > 0)
		log_warn("handed back %s row%s of dead worker pid %d%s", v, atoi(v) == 1 ? "" : "s",
		         (int)pid, kind ? "" : " (none was running)");
	free(v);
}

/* The heartbeat, done by the supervisor for its workers so that a handler
 * running for hours keeps its lease without the worker doing anything:
 * stamps the live workers' rows with what they run now and renews the
 * leases of the rows they hold that end within lease - heartbeat / 2
 * (lote.heartbeat: a fresh claim is left alone, so its group completes by
 * the ctids its claim returned). Rows a worker's transaction has locked
 * are skipped — that lock protects them from rescue anyway. */
static void heartbeat(struct supervisor *s)
{
	char pids[4096], kinds[4096], ids[8192], lease[24], beat[24];
	size_t op = 0, ok = 0, oi = 0;
	const char *params[6] = { s->host, pids, kinds, ids, lease, beat };
	int n = 0;
	lote_error err = { 0 };

	op += snprintf(pids, sizeof(pids), "{");
	ok += snprintf(kinds, sizeof(kinds), "{");
	oi += snprintf(ids, sizeof(ids), "{");
	for (int i = 0; i < s->n; i++) {
		struct lote__slot *cur = &s->e->slots[i];
		if (s->slots[i].pid <= 0)
			continue;
		op += snprintf(pids + op, sizeof(pids) - op, "%s%d", n ? "," : "", (int)s->slots[i].pid);
		ok += snprintf(kinds + ok, sizeof(kinds) - ok, "%s%d", n ? "," : "", cur->kind);
		oi += snprintf(ids + oi, sizeof(ids) - oi, "%s%lld", n ? "," : "",
		               (long long)(cur->kind ? cur->id : 0));
		n++;
	}
	snprintf(pids + op, sizeof(pids) - op, "}");
	snprintf(kinds + ok, sizeof(kinds) - ok, "}");
	snprintf(ids + oi, sizeof(ids) - oi, "}");
	snprintf(lease, sizeof(lease), "%lld", (long long)s->e->opts.lease_ms);
	snprintf(beat, sizeof(beat), "%lld", (long long)s->e->opts.heartbeat_ms);
	if (n == 0)
		return;
	if (lote__db_value(s->conn,
	        "SELECT lote.heartbeat($1, $2::int[], $3::int[], $4::bigint[], $5::bigint, $6::bigint)",
	        6, params, NULL, &err) < 0)
		log_warn("heartbeat failed: %s", err.message);
}

/* Periodic upkeep: expired leases, worker rows of processes of this host
 * that no longer exist (a daemon killed with -9), stale rows elsewhere. */
static void upkeep(struct supervisor *s)
{
	PGresult *res;
	pid_t dead[256];
	int ndead = 0;
	const char *params[1] = { s->host };
	char *v = NULL;
	lote_error err = { 0 };

	if (PQstatus(s->conn) != CONNECTION_OK || lote__db_exec(s->conn, "SELECT 1", NULL) < 0) {
		PQreset(s->conn);
		if (PQstatus(s->conn) != CONNECTION_OK) {
			set_outage(s, true, "the supervisor cannot connect");
			return;
		}
	}
	set_outage(s, false, NULL);
	res = PQexecParams(s->conn, "SELECT DISTINCT pid FROM lote.workers WHERE host = $1",
	                   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK) {
		for (int i = 0; i < PQntuples(res) && ndead < 256; i++) {
			pid_t pid = atoi(PQgetvalue(res, i, 0));
			if (kill(pid, 0) < 0 && errno == ESRCH)
				dead[ndead++] = pid;
		}
	}
	PQclear(res);
	/* Processes of this host that are gone (a daemon killed with -9 and
	 * started again): nothing says which row was at fault. */
	for (int i = 0; i < ndead; i++)
		worker_lost(s, dead[i], 0, 0, "worker process gone", "crashed");
	if (lote__db_value(s->conn, "SELECT lote.rescue()", 0, NULL, &v, &err) < 0)
		log_error("lease rescue failed: %s", err.message);
	else if (v && atoi(v) > 0)
		log_warn("rescued %s row%s whose lease expired", v, atoi(v) == 1 ? "" : "s");
	free(v);
	v = NULL;
	lote__db_try(s->conn,
		"DELETE FROM lote.workers WHERE heartbeat_at < now() - " STALE_WORKER_SQL);
	if (lote__db_value(s->conn, "SELECT lote.batch_sweep()", 0, NULL, &v, &err) < 0)
		log_error("batch sweep failed: %s", err.message);
	else if (v && atoi(v) > 0)
		log_info("completed %s batch%s a worker had left unchecked", v, atoi(v) == 1 ? "" : "es");
	free(v);
	if (lote__schedule_tick(s->conn, &err) < 0)
		log_error("scheduled routines: %s", err.message);
}

static int slot_of(struct supervisor *s, pid_t pid)
{
	for (int i = 0; i < s->n; i++)
		if (s->slots[i].pid == pid)
			return i;
	return -1;
}

/* Reaps exited workers; while running, schedules their restart. */
static void reap(struct supervisor *s, bool stopping)
{
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		int i = slot_of(s, pid);
		struct slot *sl;
		struct lote__slot *cur;
		bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;

		if (i < 0)
			continue;
		sl = &s->slots[i];
		cur = &s->e->slots[i];
		sl->pid = 0;
		lote__wake_lost(s->e->wake, i);
		if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) {
			log_warn("worker %d (pid %d) stopped: %s %lld ran past its timeout", i + 1,
			         (int)pid, cur->kind == LOTE_EVENT ? "event" : "command", (long long)cur->id);
			char why[64];
			snprintf(why, sizeof(why), "timeout after %g s", cur->timeout_ms / 1000.0);
			worker_lost(s, pid, cur->kind, cur->id, why, "timeout");
		} else if (!clean) {
			char why[64];
			const char *abbrev = WIFSIGNALED(st) ? sigabbrev_np(WTERMSIG(st)) : NULL;
			if (WIFSIGNALED(st))
				snprintf(why, sizeof(why), "crashed: signal %d (SIG%s)", WTERMSIG(st),
				         abbrev ? abbrev : "?");
			else if (WEXITSTATUS(st) == LOTE__EXIT_CONNECTION)
				snprintf(why, sizeof(why), "database connection lost");
			else
				snprintf(why, sizeof(why), "crashed: exit status %d", WEXITSTATUS(st));
			if (WIFEXITED(st) && WEXITSTATUS(st) == LOTE__EXIT_CONNECTION)
				set_outage(s, true, "a worker lost its connection");
			else
				log_warn("worker %d (pid %d) %s", i + 1, (int)pid, why);
			worker_lost(s, pid, cur->kind, cur->id, why, "crashed");
		}
		cur->kind = 0;
		if (stopping)
			continue;
		if (lote__mono_ms() - sl->started_ms > RESTART_STABLE_MS)
			sl->backoff_ms = RESTART_MIN_MS;
		else
			sl->backoff_ms = sl->backoff_ms ? sl->backoff_ms * 2 : RESTART_MIN_MS;
		if (sl->backoff_ms > RESTART_MAX_MS)
			sl->backoff_ms = RESTART_MAX_MS;
		if (s->outage && sl->backoff_ms > RECONNECT_MAX_MS)
			sl->backoff_ms = RECONNECT_MAX_MS;
		sl->restart_at = lote__mono_ms() + sl->backoff_ms;
	}
}

static int running(struct supervisor *s)
{
	int n = 0;
	for (int i = 0; i < s->n; i++)
		n += s->slots[i].pid > 0;
	return n;
}

static void signal_all(struct supervisor *s, int sig)
{
	for (int i = 0; i < s->n; i++)
		if (s->slots[i].pid > 0)
			kill(s->slots[i].pid, sig);
}

/* The policy as the JSON of lote.policies.retry (malloc'd), or NULL when
 * it is all defaults. */
static char *retry_json(const lote_retry_policy *r)
{
	static const char *names[] = { NULL, "exponential", "linear", "fixed" };
	json_t *o;
	char *out;

	if (r->strategy == LOTE_RETRY_DEFAULT && !r->base_ms && !r->max_ms && r->jitter == 0)
		return NULL;
	o = json_object();
	if (r->strategy > 0 && r->strategy <= LOTE_RETRY_FIXED)
		json_object_set_new(o, "strategy", json_string(names[r->strategy]));
	if (r->base_ms)
		json_object_set_new(o, "base_ms", json_integer(r->base_ms));
	if (r->max_ms)
		json_object_set_new(o, "max_ms", json_integer(r->max_ms));
	if (r->jitter > 0)
		json_object_set_new(o, "jitter", json_real(r->jitter));
	out = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return out;
}

static int register_policy(PGconn *conn, const char *kind, const struct lote__handler *h,
                           lote_error *err)
{
	char max[16], *retry = retry_json(&h->opts.retry);
	const char *params[4] = { kind, h->type, max, retry };
	int rc;

	if (!h->opts.max_attempts && !retry)
		return 0;
	snprintf(max, sizeof(max), "%d", h->opts.max_attempts);
	rc = lote__db_value(conn,
		"INSERT INTO lote.policies (kind, type, max_attempts, retry)"
		" VALUES ($1, $2, nullif($3::int, 0), $4::jsonb)"
		" ON CONFLICT (kind, type) DO UPDATE SET max_attempts = excluded.max_attempts,"
		"  retry = excluded.retry, updated_at = now()", 4, params, NULL, err);
	free(retry);
	return rc;
}

/* Publishes the retry policies of this daemon's types in lote.policies,
 * where lote.enqueue and the back-off read them. */
static int register_policies(lote_engine *e, PGconn *conn, lote_error *err)
{
	int rc = 0;
	for (int i = 0; i < e->ncommands && rc == 0; i++)
		rc = register_policy(conn, "command", &e->commands[i], err);
	for (int i = 0; i < e->nevents && rc == 0; i++)
		for (int j = 0; j < e->events[i].nhandlers && rc == 0; j++)
			rc = register_policy(conn, "event", &e->events[i].handlers[j], err);
	return rc;
}

int lote_engine_run(lote_engine *e, lote_error *err)
{
	struct supervisor s = { .e = e };
	sigset_t set;
	int rc = 0;
	int64_t next_upkeep = 0, next_beat = 0, deadline = 0;
	bool stopping = false;
	char app[128];

	if (e->ncommands == 0 && e->nevents == 0)
		return lote__fail(err, LOTE_EINVAL, "no handlers registered: nothing to run");
	if (e->ncommands > 1)
		qsort(e->commands, e->ncommands, sizeof(*e->commands), cmp_handler);
	if (e->nevents > 1)
		qsort(e->events, e->nevents, sizeof(*e->events), cmp_event);

	snprintf(app, sizeof(app), "%s supervisor", e->name);
	rc = lote__db_connect(e->conninfo, app, &s.conn, err);
	if (rc < 0)
		return rc;
	rc = lote_schema_check(s.conn, err);
	if (rc < 0)
		goto out;
	rc = register_policies(e, s.conn, err);
	if (rc < 0)
		goto out;
	gethostname(s.host, sizeof(s.host) - 1);
	s.n = e->opts.workers;
	s.slots = calloc(s.n, sizeof(*s.slots));
	e->slots = mmap(NULL, s.n * sizeof(*e->slots), PROT_READ | PROT_WRITE,
	                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (e->slots == MAP_FAILED) {
		e->slots = NULL;
		rc = lote__fail_errno(err, "cannot map the worker slots");
		goto out;
	}
	if (!s.slots) {
		rc = lote__fail(err, LOTE_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = lote__wake_new(s.n, &e->wake, err)) < 0)
		goto out;

	/* Signals are taken synchronously with sigtimedwait: no handler runs
	 * in the middle of the supervisor's own work. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &s.old_mask);
	e->supervisor_pid = getpid();
	e->stop = 0;
	lote__log_set_context("%s", e->name);
	log_info("starting %d worker%s (%d command type%s, %d event type%s)", s.n,
	         s.n == 1 ? "" : "s", e->ncommands, e->ncommands == 1 ? "" : "s",
	         e->nevents, e->nevents == 1 ? "" : "s");
	upkeep(&s); /* work left by a previous run of this host comes back first */
	for (int i = 0; i < s.n; i++)
		start_worker(&s, i);

	for (;;) {
		struct timespec ts = { 0, 200 * 1000000L };
		siginfo_t info;
		int sig = sigtimedwait(&set, &info, &ts);
		int64_t now = lote__mono_ms();

		if ((sig == SIGTERM || sig == SIGINT || e->stop) && !stopping) {
			stopping = true;
			deadline = now + e->opts.grace_ms;
			log_info("stopping: finishing in-flight work (grace %lld ms)",
			         (long long)e->opts.grace_ms);
			signal_all(&s, SIGTERM);
		}
		reap(&s, stopping);
		if (stopping) {
			if (running(&s) == 0)
				break;
			if (now >= deadline) {
				log_warn("grace period over: killing %d worker%s", running(&s),
				         running(&s) == 1 ? "" : "s");
				signal_all(&s, SIGKILL);
				deadline = now + 60000; /* SIGKILL cannot be ignored */
			}
			continue;
		}
		for (int i = 0; i < s.n; i++)
			if (s.slots[i].pid == 0 && now >= s.slots[i].restart_at)
				start_worker(&s, i);
		if (now >= next_beat) {
			heartbeat(&s);
			next_beat = now + e->opts.heartbeat_ms;
		}
		if (now >= next_upkeep) {
			upkeep(&s);
			next_upkeep = now + RESCUE_EVERY_MS;
		}
	}
	log_info("stopped");
	sigprocmask(SIG_SETMASK, &s.old_mask, NULL);
	e->supervisor_pid = 0;
out:
	if (e->slots)
		munmap(e->slots, s.n * sizeof(*e->slots));
	e->slots = NULL;
	lote__wake_free(e->wake);
	e->wake = NULL;
	free(s.slots);
	PQfinish(s.conn);
	return rc;
}
