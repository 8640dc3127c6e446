/* bench_drain.c - `lote bench drain`: N queued no-op commands, from worker
 * start to nothing unfinished; `lote bench batch`: the same as the members
 * of one batch, and the ratio of the two rates. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"

/* The prefill of `lote bench batch`: one batch of $1 no-op members and a
 * no-op follow-up. */
static const char batch_prefill_sql[] =
	"SELECT lote.batch('bench', (SELECT jsonb_agg(jsonb_build_object('type', 'noop',"
	" 'data', jsonb_build_object('i', g))) FROM generate_series(1, $1::int) g),"
	" '{\"type\": \"noop\"}')";

/* Drains n plain commands, or (as_batch) one batch of n members whose
 * follow-up must also have run; *ret_rate (may be NULL) gets members/s. */
int bench_drain(const struct bench_opts *o, PGconn *conn, const char *conninfo,
                       const struct bench_server *srv, bool as_batch, double *ret_rate)
{
	long n = o->n ? o->n : 50000, handled = 0, left, ok;
	long expect = as_batch ? n + 1 : n; /* the follow-up runs too */
	int workers = o->workers ? o->workers : 2, batch = o->batch ? o->batch : bench_default_batch(), st;
	struct bench_shared *sh = bench_shared_new(0);
	char name[64], what[96], note[160];
	double t0, t_handlers, t_checked, cpu = 0, srv_cpu0, srv_cpu = -1;
	/* Memory of the supervisor and its workers (PSS), read at a quarter,
	 * half and three quarters of the drain: /proc is not free to scan. */
	long pss_kb = -1, next_pss = expect / 4;
	int pss_procs = 0;
	bool complete = true;
	pid_t pid = -1;
	int rc = EXIT_FAIL;

	if (!sh) {
		cli_error("bench", "mmap: %s", strerror(errno));
		return EXIT_FAIL;
	}
	if (bench_reset_tables(conn) < 0)
		goto out;
	if (as_batch ? bench_exec_int(conn, batch_prefill_sql, n) < 0
	             : bench_prefill(conn, bench_bulk_enqueue_sql, n) < 0)
		goto out;
	if (bench_settle(conn) < 0)
		goto out;
	snprintf(name, sizeof(name), "lote-bench-%d", (int)getpid());
	struct bench_engine_spec sp = { .conninfo = conninfo, .name = name, .types = "noop",
	                          .workers = workers, .batch = batch, .fn = bench_noop_handler,
	                          .sh = sh };
	srv_cpu0 = bench_server_cpu_s(conn);
	t0 = bench_mono_s();
	pid = bench_engine_start(&sp);
	if (pid < 0)
		goto out;
	for (;;) {
		handled = atomic_load(&sh->handled);
		if (handled >= expect)
			break;
		if (handled >= next_pss && next_pss < expect) {
			int procs = 0;
			long kb = bench_tree_pss_kb(pid, &procs);
			if (kb > pss_kb) {
				pss_kb = kb;
				pss_procs = procs;
			}
			next_pss += expect / 4 > 0 ? expect / 4 : expect;
		}
		if (bench_engine_gone(pid, &st)) {
			cli_error("bench", "drain: the engine exited (status %d) after %ld of %ld",
			          st, handled, n);
			pid = -1;
			goto out;
		}
		if (bench_mono_s() - t0 > o->max_seconds) {
			complete = false;
			break;
		}
		bench_sleep_ms(1);
	}
	t_handlers = bench_mono_s();
	/* The clock stops here: the engine counts an outcome after its COMMIT,
	 * so the last one is in. The peers' stop rule (nothing unfinished) is
	 * then checked outside the clock: its query walks every dead entry the
	 * drain left in the claim and lease indexes (~50 ms after 100 000),
	 * work of the check, not of the engine. A run that fails it has no
	 * rate (the success count below). */
	while (complete && (left = bench_query_long(conn,
	           "SELECT count(*) FROM lote.commands"
	           " WHERE status IN ('awaiting', 'pending', 'processing')")) != 0) {
		if (left < 0)
			goto stop;
		if (bench_mono_s() - t_handlers > 10) {
			cli_error("bench", "drain: %ld commands still unfinished 10 s after the last outcome", left);
			goto stop;
		}
		bench_sleep_ms(5);
	}
	t_checked = bench_mono_s();
	if (bench_engine_stop(pid, &cpu) != 0)
		cli_error("bench", "warning: the engine did not stop cleanly");
	pid = -1;
	if (srv_cpu0 >= 0) {
		bench_sleep_ms(50); /* the postmaster reaps the closed connections */
		srv_cpu = bench_server_cpu_s(conn);
		srv_cpu = srv_cpu >= srv_cpu0 ? srv_cpu - srv_cpu0 : -1;
	}
	ok = bench_query_long(conn, "SELECT count(*) FROM lote.commands WHERE status = 'success'");
	if (complete && ok != expect) {
		cli_error("bench", "drain: %ld of %ld commands are success", ok, expect);
		goto out;
	}
	if (complete && as_batch &&
	    bench_query_long(conn, "SELECT count(*) FROM lote.batches WHERE status = 'success'") != 1) {
		cli_error("bench", "batch: the batch did not complete");
		goto out;
	}
	if (ret_rate)
		*ret_rate = (complete ? n : handled) / (t_handlers - t0);
	handled = atomic_load(&sh->handled);
	long counted = complete ? n : handled; /* what the rates are of */
	if (o->json) {
		/* inside `lote bench batch` (ret_rate set) the plain half is not
		 * the drain measurement: named apart */
		json_t *rec = bench_rate_record(as_batch ? "drain-batch" : ret_rate ? "drain-plain" : "drain",
		                                counted, t_handlers - t0);
		json_object_set_new(rec, "n", json_integer(n));
		json_object_set_new(rec, "workers", json_integer(workers));
		json_object_set_new(rec, "batch", json_integer(batch));
		json_object_set_new(rec, "complete", json_boolean(complete));
		json_object_set_new(rec, "handled", json_integer(handled));
		json_object_set_new(rec, "handlers_seconds",
		                    json_real(bench_round3(t_handlers - t0)));
		json_object_set_new(rec, "check_seconds", json_real(bench_round3(t_checked - t_handlers)));
		json_object_set_new(rec, "engine_cpu_seconds", json_real(bench_round3(cpu)));
		if (srv_cpu >= 0) {
			json_object_set_new(rec, "server_cpu_seconds", json_real(bench_round3(srv_cpu)));
			json_object_set_new(rec, "server_cpu_us_per_command",
			                    json_real(bench_round3(srv_cpu * 1e6 / (double)counted)));
		}
		if (pss_kb >= 0) {
			json_object_set_new(rec, "engine_pss_kb", json_integer(pss_kb));
			json_object_set_new(rec, "engine_processes", json_integer(pss_procs));
		}
		json_object_set_new(rec, "engine_cpu_us_per_command",
		                    json_real(bench_round3(cpu * 1e6 / (double)counted)));
		bench_emit_json(rec, srv);
	} else {
		snprintf(what, sizeof(what), "%s, %d worker%s x batch %d%s",
		         as_batch ? "drain one batch" : "drain", workers,
		         workers == 1 ? "" : "s", batch, complete ? "" : " (INCOMPLETE)");
		if (srv_cpu >= 0)
			snprintf(note, sizeof(note), "CPU/command: engine %.0f us, server %.0f us",
			         cpu * 1e6 / (double)counted,
			         srv_cpu * 1e6 / (double)counted);
		else
			snprintf(note, sizeof(note), "engine CPU %.2f s", cpu);
		if (pss_kb >= 0) {
			size_t len = strlen(note);
			snprintf(note + len, sizeof(note) - len, "; PSS %.1f MB (%d processes)",
			         pss_kb / 1024.0, pss_procs);
		}
		bench_rate_row(o, srv, what, counted, t_handlers - t0, note);
	}
	rc = complete ? EXIT_OK : EXIT_FAIL;
	goto out;
stop:
	bench_engine_stop(pid, NULL);
	pid = -1;
out:
	if (pid > 0)
		bench_engine_stop(pid, NULL);
	bench_shared_free(sh);
	return rc;
}


/* Plain drain and batch drain, alternated reps times (a noisy minute then
 * hits one pair, not every plain or every batch run); the ratio is the
 * median of the pairs' ratios. */
int bench_batch(struct bench_opts *o, struct bench_server *srv)
{
	double plain[99], members[99], ratio[99];
	PGconn *conn = NULL;
	char *conninfo = NULL;
	int rc, reps = o->reps ? o->reps : 3;

	if (!o->n)
		o->n = 100000;
	if (!o->workers)
		o->workers = 8;
	for (int r = 0; r < reps; r++) {
		for (int k = 0; k < 2; k++) {
			if ((rc = bench_scratch_db(o->dbname, srv, &conn, &conninfo)) != EXIT_OK)
				return rc;
			rc = bench_drain(o, conn, conninfo, srv, k == 1, k == 0 ? &plain[r] : &members[r]);
			PQfinish(conn);
			free(conninfo);
			if (rc != EXIT_OK)
				return rc;
		}
		ratio[r] = plain[r] > 0 ? members[r] / plain[r] : 0;
	}
	double mr = bench_median(ratio, reps), mp = bench_median(plain, reps), mm = bench_median(members, reps);
	if (o->json) {
		json_t *rec = json_pack("{ss sI sI sI si sf sf sf}", "bench", "batch-ratio", "n", (json_int_t)o->n,
		                        "workers", (json_int_t)o->workers,
		                        "batch", (json_int_t)(o->batch ? o->batch : bench_default_batch()), "reps", reps,
		                        "plain_commands_per_sec", bench_round3(mp),
		                        "batch_members_per_sec", bench_round3(mm), "ratio", bench_round3(mr));
		bench_emit_json(rec, srv);
	} else {
		printf("one batch drains at %.0f%% of the plain rate (median of %d pairs;"
		       " medians %.0f vs %.0f commands/s; pairs:", 100 * mr, reps, mm, mp);
		for (int r = 0; r < reps; r++)
			printf(" %.0f%%", 100 * ratio[r]);
		printf(")\n");
	}
	return EXIT_OK;
}

