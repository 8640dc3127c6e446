/* bench_fanout.c - `lote bench fanout`: one event whose listener creates a
 * batch of M no-op members with a follow-up command, end to end: from the
 * moment the event's COMMIT returns to the follow-up's outcome committed,
 * with the first and last member's start and the follow-up's start on the
 * way (one clock, CLOCK_REALTIME in every process). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"
#include "db.h"

#define FANOUT_TIMEOUT_S 120

/* One run's times, ms after the event's commit. */
struct fanout_run {
	double first_member, last_member, followup_start, followup_done;
};

static int cmp_stamp_ns(const void *a, const void *b)
{
	int64_t x = ((const struct bench_stamp *)a)->ns, y = ((const struct bench_stamp *)b)->ns;
	return (x > y) - (x < y);
}

static int fanout_once(const struct bench_opts *o, PGconn *conn, const char *conninfo,
                       long members, struct fanout_run *run)
{
	struct bench_shared *sh = bench_shared_new(members + 8);
	char name[64], *now_ts = NULL, *v = NULL;
	lote_error err = { 0 };
	int64_t committed_ns, done_ns, followup_id;
	long want = members + 2; /* the event, the members, the follow-up */
	double deadline;
	pid_t pid = -1;
	int rc = -1, st;

	if (!sh) {
		cli_error("bench", "out of memory");
		return -1;
	}
	sh->members = members;
	if (bench_reset_tables(conn) < 0 ||
	    lote__db_value(conn, "SELECT now()", 0, NULL, &now_ts, &err) < 0)
		goto fail;
	snprintf(name, sizeof(name), "lote-bench-%d", (int)getpid());
	struct bench_engine_spec sp = {
		.conninfo = conninfo, .name = name, .types = "member",
		.workers = o->workers ? o->workers : 2,
		.batch = o->batch ? o->batch : bench_default_batch(),
		.fn = bench_stamp_handler,
		.more = { { "bench.fanout", bench_fanout_handler, true },
		          { "followup", bench_stamp_handler, false } },
		.sh = sh };
	pid = bench_engine_start(&sp);
	if (pid < 0 || bench_wait_listening(conn, name, now_ts, sp.workers, pid) < 0)
		goto out;
	if (lote__db_value(conn, "SELECT lote.emit('" NIL_UUID "', 'bench', '1', 'bench.fanout')",
	                   0, NULL, NULL, &err) < 0)
		goto fail;
	committed_ns = bench_clock_ns(CLOCK_REALTIME);
	deadline = bench_mono_s() + FANOUT_TIMEOUT_S;
	while (atomic_load(&sh->handled) < want) {
		if (bench_engine_gone(pid, &st)) {
			cli_error("bench", "fanout: the engine exited (status %d)", st);
			pid = -1;
			goto out;
		}
		if (bench_mono_s() > deadline) {
			cli_error("bench", "fanout: %ld of %ld outcomes after %d s",
			          atomic_load(&sh->handled), want, FANOUT_TIMEOUT_S);
			goto out;
		}
		bench_sleep_ms(0.2);
	}
	done_ns = bench_clock_ns(CLOCK_REALTIME);
	/* What the counter says must be what the database holds. */
	if (bench_query_long(conn, "SELECT count(*) FROM lote.batches WHERE status = 'success'"
	                           " AND size = (SELECT count(*) FROM lote.commands"
	                           "              WHERE type = 'member' AND status = 'success')") != 1 ||
	    lote__db_value(conn, "SELECT id FROM lote.commands WHERE type = 'followup'"
	                         " AND status = 'success'", 0, NULL, &v, &err) < 0 || !v) {
		cli_error("bench", "fanout: the batch or its follow-up did not succeed%s%s",
		          err.message[0] ? ": " : "", err.message);
		goto out;
	}
	followup_id = strtoll(v, NULL, 10);
	long n = atomic_load(&sh->nstamps);
	if (n != members + 1) {
		cli_error("bench", "fanout: %ld handlers started, want %ld", n, members + 1);
		goto out;
	}
	qsort(sh->stamps, (size_t)n, sizeof(struct bench_stamp), cmp_stamp_ns);
	run->first_member = run->last_member = run->followup_start = -1;
	for (long i = 0; i < n; i++) {
		double ms = (double)(sh->stamps[i].ns - committed_ns) / 1e6;
		if (atomic_load(&sh->stamps[i].id) == followup_id) {
			run->followup_start = ms;
			continue;
		}
		if (run->first_member < 0)
			run->first_member = ms;
		run->last_member = ms;
	}
	run->followup_done = (double)(done_ns - committed_ns) / 1e6;
	rc = 0;
	goto out;
fail:
	cli_error("bench", "fanout: %s", err.message);
out:
	if (pid > 0)
		bench_engine_stop(pid, NULL);
	free(v);
	free(now_ts);
	bench_shared_free(sh);
	return rc;
}

int bench_fanout(const struct bench_opts *o, struct bench_server *srv)
{
	long members = o->members ? o->members : 1000;
	int reps = o->reps ? o->reps : 5;
	double first[99], last[99], fstart[99], done[99];
	json_t *runs = json_array(); /* end-to-end ms of each run, in order */
	PGconn *conn = NULL;
	char *conninfo = NULL;
	int rc;

	if (!runs)
		return EXIT_FAIL;
	if ((rc = bench_scratch_db(o->dbname, srv, &conn, &conninfo)) != EXIT_OK)
		return rc;
	for (int r = 0; r < reps; r++) {
		struct fanout_run run;
		if (fanout_once(o, conn, conninfo, members, &run) < 0) {
			rc = EXIT_FAIL;
			goto out;
		}
		first[r] = run.first_member;
		last[r] = run.last_member;
		fstart[r] = run.followup_start;
		done[r] = run.followup_done;
		json_array_append_new(runs, json_real(bench_round3(run.followup_done)));
	}
	double mfirst = bench_median(first, reps), mlast = bench_median(last, reps);
	double mstart = bench_median(fstart, reps), mdone = bench_median(done, reps);
	if (o->json) {
		json_t *rec = json_pack("{s:s, s:s, s:I, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:I, s:o}",
			"peer", "lote", "bench", "fanout", "members", (json_int_t)members,
			"workers", o->workers ? o->workers : 2, "reps", reps,
			"seconds", bench_round3(mdone / 1000),
			"event_to_first_member_ms", bench_round3(mfirst),
			"event_to_last_member_ms", bench_round3(mlast),
			"event_to_followup_start_ms", bench_round3(mstart),
			"event_to_followup_committed_ms", bench_round3(mdone),
			"members_per_sec", (json_int_t)bench_round_pos(members / (mdone / 1000)),
			"runs_ms", json_incref(runs));
		bench_emit_json(rec, srv);
	} else {
		bench_header_once(o, srv);
		printf("  fan-out: 1 event -> batch of %ld members -> follow-up, median of %d (ms"
		       " after the event's commit):\n"
		       "    first member starts %8.2f   last member starts %8.2f\n"
		       "    follow-up starts    %8.2f   follow-up committed %7.2f"
		       "   (%.0f members/s end to end)\n",
		       members, reps, mfirst, mlast, mstart, mdone, members / (mdone / 1000));
		fflush(stdout);
	}
	rc = EXIT_OK;
out:
	json_decref(runs);
	PQfinish(conn);
	free(conninfo);
	return rc;
}
