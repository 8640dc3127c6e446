/* bench_worker.c - `lote bench worker`: the worker CLI the peer harness
 * drives (../shared/peers/README.md §6): READY, GO, HANDLED, START. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"
#include "db.h"

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

int bench_worker(const struct bench_opts *o)
{
	lote_error err = { 0 };
	struct bench_shared *sh = NULL;
	struct sigaction sa = { 0 };
	char name[64], *now_ts = NULL, line[64];
	PGconn *conn;
	pid_t pid = -1;
	long reported = -1;
	bool stamp = strcmp(o->handler, "stamp") == 0, asked = false;
	int rc = EXIT_FAIL, st = 0;

	if (!stamp && strcmp(o->handler, "noop") != 0) {
		cli_error("bench worker", "--handler must be noop or stamp, got \"%s\"", o->handler);
		return EXIT_USAGE;
	}
	if (o->db && setenv("LOTE_DATABASE_URL", o->db, 1) < 0)
		return EXIT_FAIL;
	if (!getenv("LOTE_DATABASE_URL")) {
		cli_error("bench worker", "--db URL is required (or LOTE_DATABASE_URL)");
		return EXIT_USAGE;
	}
	char *conninfo = NULL;
	conn = cli_connect_ready("bench worker", &conninfo);
	if (!conn)
		return EXIT_DB;
	sh = bench_shared_new(0);
	if (!sh) {
		cli_error("bench worker", "mmap: %s", strerror(errno));
		goto out;
	}
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	snprintf(name, sizeof(name), "lote-bench-%d", (int)getpid());
	struct bench_engine_spec sp = { .conninfo = conninfo, .name = name, .types = o->types,
	                          .workers = o->workers ? o->workers : 2,
	                          .batch = o->batch ? o->batch : bench_default_batch(),
	                          .fn = stamp ? bench_print_stamp_handler : bench_noop_handler, .sh = sh };
	if (o->wait_go) {
		char go[64];
		bench_write_line("READY\n", 6);
		if (!fgets(go, sizeof(go), stdin)) {
			if (stop_requested)
				rc = EXIT_OK;
			else
				cli_error("bench worker", "standard input closed before GO");
			goto out;
		}
		pid = bench_engine_start(&sp);
		if (pid < 0)
			goto out;
	} else {
		if (lote__db_value(conn, "SELECT now()", 0, NULL, &now_ts, &err) < 0) {
			cli_error("bench worker", "%s", err.message);
			goto out;
		}
		pid = bench_engine_start(&sp);
		if (pid < 0 || bench_wait_listening(conn, name, now_ts, sp.workers, pid) < 0)
			goto out;
		bench_write_line("READY\n", 6);
	}
	PQfinish(conn);
	conn = NULL;
	for (;;) {
		long h = atomic_load(&sh->handled);
		bool gone = bench_engine_gone(pid, &st);

		if (h != reported) {
			int len = snprintf(line, sizeof(line), "HANDLED %ld\n", h);
			bench_write_line(line, (size_t)len);
			reported = h;
		}
		if (gone) {
			pid = -1;
			if (!asked) {
				cli_error("bench worker", "the engine exited unexpectedly (status %d)", st);
				goto out;
			}
			rc = st == 0 ? EXIT_OK : EXIT_FAIL;
			break;
		}
		if (stop_requested && !asked) {
			kill(pid, SIGTERM);
			asked = true;
		}
		bench_sleep_ms(HANDLED_EVERY_MS);
	}
out:
	if (pid > 0)
		bench_engine_stop(pid, NULL);
	PQfinish(conn);
	free(conninfo);
	free(now_ts);
	bench_shared_free(sh);
	return rc;
}

