/* bench_latency.c - `lote bench latency`: from the moment an enqueue's
 * COMMIT returns to the handler's first instruction, one clock
 * (CLOCK_REALTIME in both processes), at a fixed rate; and the same for
 * high-priority commands while the workers are busy with a backlog. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"
#include "db.h"

static int cmp_stamp(const void *a, const void *b)
{
	int64_t x = atomic_load(&((const struct bench_stamp *)a)->id);
	int64_t y = atomic_load(&((const struct bench_stamp *)b)->id);
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v (the peer harness's definition). */
static double pct(const double *v, long n, double p)
{
	double rank = p / 100.0 * (double)n;
	long k = (long)rank;

	if ((double)k < rank)
		k++; /* ceil */
	k--;
	if (k < 0)
		k = 0;
	if (k >= n)
		k = n - 1;
	return v[k];
}

static json_t *latency_stats(double *v, long n)
{
	double sum = 0;
	qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
	for (long i = 0; i < n; i++)
		sum += v[i];
#define R3(x) bench_round3(x)
	return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f}", "n", (json_int_t)n,
	                 "min", R3(v[0]), "p50", R3(pct(v, n, 50)), "p95", R3(pct(v, n, 95)),
	                 "p99", R3(pct(v, n, 99)), "max", R3(v[n - 1]), "avg", R3(sum / n));
#undef R3
}

/* The stamp of command id, or 0 when its handler has not started. Linear:
 * used only during the warm-up, while there are few stamps. */
static int64_t stamp_of(struct bench_shared *sh, int64_t id)
{
	long n = atomic_load(&sh->nstamps);
	for (long i = 0; i < n && i < sh->cap; i++)
		if (atomic_load_explicit(&sh->stamps[i].id, memory_order_acquire) == id)
			return sh->stamps[i].ns;
	return 0;
}

/* One 'lat' command in its own transaction, with options (a jsonb text,
 * e.g. the priority); *ret_id gets its id. */
static int enqueue_one(PGconn *conn, const char *options, int64_t *ret_id)
{
	const char *params[1] = { options };
	PGresult *res = PQexecParams(conn, "SELECT lote.enqueue('lat', '{}', NULL, $1::jsonb)",
	                             1, NULL, params, NULL, NULL, 0);
	int rc = 0;
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		cli_error("bench", "enqueue: %s", PQresultErrorMessage(res));
		rc = -1;
	} else {
		*ret_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	}
	PQclear(res);
	return rc;
}

/* The backlog: n 'busy' commands queued ahead, each working busy_us. */
static const char backlog_sql[] =
	"SELECT cardinality(lote.enqueue_many('busy',"
	" (SELECT array_agg(jsonb_build_object('i', g)) FROM generate_series(1, $1::int) g)))";

/* Delayed commands of the samples' type and priority 0, due in a day. */
static const char delayed_sql[] =
	"SELECT cardinality(lote.enqueue_many('lat',"
	" (SELECT array_agg(jsonb_build_object('i', g)) FROM generate_series(1, $1::int) g),"
	" NULL, '{\"delay_ms\": 86400000}'))";

static void latency_row(const char *what, const json_t *s)
{
	printf("    %-14s p50 %7.3f   p95 %7.3f   p99 %7.3f   max %8.3f   (%lld samples)\n", what,
	       json_real_value(json_object_get(s, "p50")), json_real_value(json_object_get(s, "p95")),
	       json_real_value(json_object_get(s, "p99")), json_real_value(json_object_get(s, "max")),
	       (long long)json_integer_value(json_object_get(s, "n")));
}

/* Without o->backlog: `lote bench latency`. With it: `lote bench
 * latency-backlog`, the same samples enqueued with o->priority while the
 * workers are busy with o->backlog commands queued ahead of them. */
int bench_latency(const struct bench_opts *o, PGconn *conn, const char *conninfo,
                  const struct bench_server *srv)
{
	long total = (long)bench_round_pos(o->rate * o->seconds), got;
	int workers = o->workers ? o->workers : 2, batch = o->batch ? o->batch : bench_default_batch();
	struct bench_shared *sh = NULL;
	int64_t *ids = calloc((size_t)total + 1, sizeof(int64_t));
	int64_t *sent = calloc((size_t)total + 1, sizeof(int64_t));
	int64_t *acked = calloc((size_t)total + 1, sizeof(int64_t));
	double *from_commit = calloc((size_t)total + 1, sizeof(double));
	double *from_call = calloc((size_t)total + 1, sizeof(double));
	char name[64], *now_ts = NULL, options[48];
	lote_error err = { 0 };
	pid_t pid = -1;
	long backlog_left = -1;
	int rc = EXIT_FAIL;

	snprintf(options, sizeof(options), "{\"priority\": %d}", o->backlog ? o->priority : 0);

	if (total < 1 || total > MAX_LATENCY_SAMPLES) {
		cli_error("bench", "latency: rate x seconds must give 1 to %d samples", MAX_LATENCY_SAMPLES);
		rc = EXIT_USAGE;
		goto out;
	}
	sh = bench_shared_new(total + WARMUP_LATENCY + 64);
	if (!ids || !sent || !acked || !from_commit || !from_call || !sh) {
		cli_error("bench", "out of memory");
		goto out;
	}
	if (bench_reset_tables(conn) < 0)
		goto out;
	if (bench_prefill(conn, backlog_sql, o->backlog) < 0 ||
	    bench_prefill(conn, delayed_sql, o->delayed) < 0)
		goto out;
	sh->busy_us = o->busy_us;
	if (((o->backlog || o->delayed) && bench_settle(conn) < 0) ||
	    lote__db_value(conn, "SELECT now()", 0, NULL, &now_ts, &err) < 0)
		goto out;
	snprintf(name, sizeof(name), "lote-bench-%d", (int)getpid());
	struct bench_engine_spec sp = { .conninfo = conninfo, .name = name, .types = "lat",
	                          .workers = workers, .batch = batch, .fn = bench_stamp_handler,
	                          .more = { { "busy", bench_busy_handler, false },
	                                    { o->events ? "BenchEvent" : NULL, bench_busy_handler, true } },
	                          .sh = sh };
	pid = bench_engine_start(&sp);
	if (pid < 0 || bench_wait_listening(conn, name, now_ts, workers, pid) < 0)
		goto out;
	for (int i = 0; i < WARMUP_LATENCY; i++) {
		int64_t id = 0;
		double deadline = bench_mono_s() + 30;
		if (enqueue_one(conn, options, &id) < 0)
			goto out;
		while (stamp_of(sh, id) == 0) {
			if (bench_mono_s() > deadline) {
				cli_error("bench", "latency: warm-up command %lld never started", (long long)id);
				goto out;
			}
			bench_sleep_ms(1);
		}
	}
	bench_sleep_ms(1000);
	{
		int64_t base = bench_clock_ns(CLOCK_MONOTONIC), period = bench_round_pos(1e9 / o->rate);
		for (long i = 0; i < total; i++) {
			int64_t at = base + i * period;
			struct timespec ts = { (time_t)(at / 1000000000), (long)(at % 1000000000) };
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
				;
			sent[i] = bench_clock_ns(CLOCK_REALTIME);
			if (enqueue_one(conn, options, &ids[i]) < 0)
				goto out;
			acked[i] = bench_clock_ns(CLOCK_REALTIME);
		}
	}
	/* Every sampled command must have started (bounded wait). */
	{
		double deadline = bench_mono_s() + 60;
		long want = WARMUP_LATENCY + total;
		while (atomic_load(&sh->nstamps) < want && bench_mono_s() < deadline)
			bench_sleep_ms(5);
	}
	/* Busy to the end, or the figure is not one under a backlog. */
	if (o->backlog) {
		backlog_left = bench_query_long(conn, "SELECT count(*) FROM lote.commands"
		                                      " WHERE type = 'busy' AND status = 'pending'");
		if (backlog_left <= 0) {
			cli_error("bench", "latency-backlog: the backlog ran out before the last sample"
			          " (raise --backlog or --busy-us)");
			goto out;
		}
	}
	bench_engine_stop(pid, NULL);
	pid = -1;
	got = atomic_load(&sh->nstamps);
	if (got > sh->cap)
		got = sh->cap;
	qsort(sh->stamps, (size_t)got, sizeof(struct bench_stamp), cmp_stamp);
	for (long i = 0; i < total; i++) {
		struct bench_stamp key = { .id = ids[i] };
		struct bench_stamp *s = bsearch(&key, sh->stamps, (size_t)got, sizeof(key), cmp_stamp);
		if (!s) {
			cli_error("bench", "latency: command %lld never started", (long long)ids[i]);
			goto out;
		}
		from_commit[i] = (double)(s->ns - acked[i]) / 1e6;
		from_call[i] = (double)(s->ns - sent[i]) / 1e6;
	}
	json_t *commit_stats = latency_stats(from_commit, total);
	json_t *call_stats = latency_stats(from_call, total);
	char config[64];
	snprintf(config, sizeof(config), "workers %d, batch %d", workers, batch);
	if (o->json) {
		/* the commit->start percentiles also at the top level */
		double p50 = json_real_value(json_object_get(commit_stats, "p50"));
		double p95 = json_real_value(json_object_get(commit_stats, "p95"));
		double p99 = json_real_value(json_object_get(commit_stats, "p99"));
		json_t *rec = json_pack("{s:s, s:s, s:s, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:o, s:o}",
		                        "peer", "lote", "bench",
		                        o->backlog ? "latency-backlog" : o->delayed ? "latency-delayed" : "latency",
		                        "config", config,
		                        "workers", workers, "batch", batch, "rate", o->rate,
		                        "seconds", o->seconds, "p50_ms", p50, "p95_ms", p95,
		                        "p99_ms", p99, "commit_to_start_ms", commit_stats,
		                        "enqueue_call_to_start_ms", call_stats);
		if (o->delayed)
			json_object_set_new(rec, "delayed", json_integer(o->delayed));
		if (o->events)
			json_object_set_new(rec, "events", json_true());
		if (o->backlog) {
			json_object_set_new(rec, "backlog", json_integer(o->backlog));
			json_object_set_new(rec, "busy_us", json_integer(o->busy_us));
			json_object_set_new(rec, "priority", json_integer(o->priority));
			json_object_set_new(rec, "backlog_left", json_integer(backlog_left));
		}
		bench_emit_json(rec, srv);
	} else {
		bench_header_once(o, srv);
		printf("  latency, %g/s for %g s, %s (ms)", o->rate, o->seconds, config);
		if (o->delayed)
			printf(", %ld delayed commands queued", o->delayed);
		if (o->backlog)
			printf(", priority %d behind a backlog of %ld commands of %ld us"
			       " (%ld still queued at the end)", o->priority, o->backlog, o->busy_us,
			       backlog_left);
		printf(":\n");
		latency_row("commit->start", commit_stats);
		latency_row("call->start", call_stats);
		json_decref(commit_stats);
		json_decref(call_stats);
		fflush(stdout);
	}
	rc = EXIT_OK;
out:
	if (pid > 0)
		bench_engine_stop(pid, NULL);
	free(now_ts);
	free(ids);
	free(sent);
	free(acked);
	free(from_commit);
	free(from_call);
	bench_shared_free(sh);
	return rc;
}

