/* cmd_bench.c - `lote bench`: its command line and which measurement runs.
 * The measurements live in bench/ (bench/bench.h says what they share). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "cli.h"
#include "log.h"

static const char usage[] =
	"NAME\n"
	"    lote bench - measure enqueue, drain, latency, batches and fan-out\n"
	"\n"
	"SYNOPSIS\n"
	"    lote bench enqueue [--n N] [COMMON]\n"
	"    lote bench drain [--n N] [--workers W] [--batch B] [COMMON]\n"
	"    lote bench batch [--n N] [--workers W] [--batch B] [--reps R] [COMMON]\n"
	"    lote bench latency [--rate R] [--seconds S] [--workers W] [--batch B] [--events]\n"
	"                      [--delayed N]\n"
	"                      [COMMON]\n"
	"    lote bench latency-backlog [--backlog N] [--work-ms MS] [--priority P]\n"
	"                      [--rate R] [--seconds S] [--workers W] [--batch B] [COMMON]\n"
	"    lote bench fanout [--members M] [--reps R] [--workers W] [--batch B] [COMMON]\n"
	"    lote bench all [OPTIONS] [COMMON]\n"
	"    lote bench worker --db URL [--handler noop|stamp] [--concurrency C]\n"
	"                      [--batch B] [--types LIST] [--wait-go]\n"
	"\n"
	"DESCRIPTION\n"
	"    Measures the engine with no-op handlers built into this command. Each\n"
	"    measurement drops, recreates and migrates a scratch database (default\n"
	"    lote_bench) on the server named by LOTE_DATABASE_URL (or the embedded\n"
	"    cluster), then runs VACUUM ANALYZE and CHECKPOINT before the clock\n"
	"    starts. The role needs CREATEDB; CHECKPOINT is skipped with a warning\n"
	"    when it is not allowed. Shared machines are noisy: compare medians of\n"
	"    several runs, side by side in one run (bench/run.sh does that with\n"
	"    graphile-worker and pg-boss; see BENCHMARKS.md).\n"
	"\n"
	"    enqueue\n"
	"        One by one: N calls of lote.enqueue from one client, each its own\n"
	"        autocommit transaction (after 200 warm-up calls). Bulk: one call\n"
	"        of lote.enqueue_many with N payloads (one transaction), then N in\n"
	"        calls of 100, each its own transaction; and bulk raw: one\n"
	"        INSERT ... SELECT of N rows into lote.commands (the floor under\n"
	"        any bulk path).\n"
	"    drain\n"
	"        Prefills N commands (bulk, checkpointed), starts an engine with W\n"
	"        worker processes claiming B rows at a time, and times from its\n"
	"        start until the engine has counted all N outcomes (it counts an\n"
	"        outcome after its COMMIT). Worker start-up is inside the figure,\n"
	"        process creation barely. Then, outside the clock (check_seconds),\n"
	"        checks that no command is left pending or processing and that N\n"
	"        rows are success.\n"
	"    batch\n"
	"        Drains N plain commands (as drain), then one batch of N members with\n"
	"        a follow-up, with the same workers, and reports both rates and their\n"
	"        ratio: what batch membership and exactly-once completion cost. The\n"
	"        batch's clock stops when its follow-up has run and committed.\n"
	"        The two alternate --reps times (default 3); the ratio reported\n"
	"        is the median of the pairs' ratios. Defaults: N 100000, W 8.\n"
	"    latency\n"
	"        With an idle engine running, enqueues one command every 1/R s for\n"
	"        S s, each in its own transaction (after 20 warm-up commands). The\n"
	"        handler stamps CLOCK_REALTIME on entry. commit->start is that stamp\n"
	"        minus the moment the enqueue's COMMIT returned; call->start counts\n"
	"        from just before the call. Reports p50, p95, p99 and max in ms.\n"
	"        With --delayed N, N commands of the samples' type and priority are\n"
	"        queued first, due in a day: what a large delayed backlog costs\n"
	"        the claims.\n"
	"    latency-backlog\n"
	"        The same samples, enqueued with priority P (default -10; lower runs\n"
	"        first) while the workers are busy with a backlog of N commands\n"
	"        (default 50000) queued ahead of them, each working MS ms (default\n"
	"        1, a sleep, like a handler waiting on I/O), so the workers stay\n"
	"        busy to the last sample (checked: the measurement fails if the\n"
	"        backlog ran out). What it shows: how long a new urgent command\n"
	"        waits for a worker to finish the group it is running.\n"
	"    fanout\n"
	"        One event whose listener creates a batch of M no-op members\n"
	"        (default 1000) with a follow-up command: the times from the event's\n"
	"        COMMIT to the first and last member starting, the follow-up\n"
	"        starting and its outcome committed; median of R runs (default 5).\n"
	"    all\n"
	"        enqueue, drain and latency, in that order.\n"
	"    worker\n"
	"        The worker of the peer harness (bench/engine.sql, bench/run.sh):\n"
	"        runs an engine on the database URL with --concurrency worker\n"
	"        processes claiming --batch rows at a time, for the command types\n"
	"        in --types (default noop,lat). Prints READY, then HANDLED <n>\n"
	"        (commands whose outcome committed, cumulative) at most every 5 ms\n"
	"        when it changed. --handler stamp prints START <id> <CLOCK_REALTIME\n"
	"        ns> on entering the handler. Without --wait-go, READY means every\n"
	"        worker process has registered and issued LISTEN (they may already\n"
	"        be claiming). With --wait-go, READY means the database is reachable\n"
	"        and migrated; the engine (fork, connect, LISTEN, claim) starts only\n"
	"        after a line (GO) is read on standard input, so worker start-up is\n"
	"        inside the harness's clock. SIGTERM or SIGINT stops the engine\n"
	"        gracefully (in-flight commands finish and commit), prints the final\n"
	"        HANDLED and exits 0.\n"
	"\n"
	"    With --json, drain, batch and enqueue records carry commands_per_sec\n"
	"    (and jobs_per_sec, the peer harness's name); latency records carry\n"
	"    p50_ms, p95_ms and p99_ms of commit->start at the top level.\n"
	"\n"
	"OPTIONS\n"
	"    --n N, --commands N\n"
	"                     commands (enqueue: 20000, drain: 50000)\n"
	"    --workers W      worker processes (default 2, the engine default; batch: 8)\n"
	"    --batch B        most rows per claim (default: the engine's, 1000)\n"
	"    --rate R         latency: commands per second (default 20)\n"
	"    --seconds S      latency: how long to enqueue (default 10)\n"
	"    --reps R         batch: plain/batch pairs (default 3); fanout: runs (5)\n"
	"    --backlog N      latency-backlog: commands queued ahead (default 50000)\n"
	"    --work-ms MS     latency-backlog: work of each backlog command (1)\n"
	"    --priority P     latency-backlog: priority of the samples (-10)\n"
	"    --delayed N      latency, latency-backlog: commands queued first, due in\n"
	"                     a day (default none)\n"
	"    --members M      fanout: members of the batch (default 1000)\n"
	"    --events         latency, latency-backlog: the engine also listens to an\n"
	"                     event type, as a daemon that handles events and commands\n"
	"                     does (its workers then claim events too)\n"
	"    --max-seconds S  drain: give up and report a partial rate after S s\n"
	"                     (default 300)\n"
	"    --database NAME  the scratch database (default lote_bench); it is\n"
	"                     DROPPED and recreated\n"
	"    --json           one JSON object per measurement on standard output\n"
	"                     (the record format of the peer harness), nothing else\n"
	"    -h, --help       show this text\n"
	"\n"
	"WORKER OPTIONS\n"
	"    --db URL         database (default LOTE_DATABASE_URL); must be migrated\n"
	"    --handler NAME   noop (default) or stamp\n"
	"    --concurrency C  worker processes (default 2)\n"
	"    --batch B        most rows per claim (default: the engine's, 1000)\n"
	"    --types LIST     comma-separated command types to handle (noop,lat)\n"
	"    --wait-go        start the engine only after reading GO on stdin\n"
	"\n"
	"EXIT STATUS\n"
	"    0 measured (worker: stopped by a signal); 1 a measurement failed or\n"
	"    did not complete; 2 bad command line; 3 database unreachable, or the\n"
	"    scratch database cannot be created or migrated.\n";

/* ---------------------------------------------------------------------
 * Command line
 */

enum { OPT_N = 256, OPT_WORKERS, OPT_BATCH, OPT_RATE, OPT_SECONDS, OPT_MAX_SECONDS,
       OPT_DATABASE, OPT_JSON, OPT_DB, OPT_HANDLER, OPT_CONCURRENCY, OPT_TYPES, OPT_WAIT_GO, OPT_REPS,
       OPT_BACKLOG, OPT_WORK_MS, OPT_PRIORITY, OPT_MEMBERS, OPT_EVENTS, OPT_DELAYED };

static bool parse_num(const char *opt, const char *arg, double lo, double hi, double *ret)
{
	char *end;
	double v = strtod(arg, &end);
	if (*arg == '\0' || *end != '\0' || !(v >= lo && v <= hi)) {
		cli_error("bench", "--%s wants a number from %.10g to %.10g, got \"%s\"", opt, lo, hi, arg);
		return false;
	}
	*ret = v;
	return true;
}

static int parse_opts(int argc, char **argv, struct bench_opts *o)
{
	static const struct option longopts[] = {
		{ "n", required_argument, NULL, OPT_N },
		{ "commands", required_argument, NULL, OPT_N },
		{ "workers", required_argument, NULL, OPT_WORKERS },
		{ "batch", required_argument, NULL, OPT_BATCH },
		{ "rate", required_argument, NULL, OPT_RATE },
		{ "seconds", required_argument, NULL, OPT_SECONDS },
		{ "max-seconds", required_argument, NULL, OPT_MAX_SECONDS },
		{ "database", required_argument, NULL, OPT_DATABASE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "db", required_argument, NULL, OPT_DB },
		{ "handler", required_argument, NULL, OPT_HANDLER },
		{ "concurrency", required_argument, NULL, OPT_CONCURRENCY },
		{ "types", required_argument, NULL, OPT_TYPES },
		{ "wait-go", no_argument, NULL, OPT_WAIT_GO },
		{ "reps", required_argument, NULL, OPT_REPS },
		{ "backlog", required_argument, NULL, OPT_BACKLOG },
		{ "work-ms", required_argument, NULL, OPT_WORK_MS },
		{ "priority", required_argument, NULL, OPT_PRIORITY },
		{ "members", required_argument, NULL, OPT_MEMBERS },
		{ "events", no_argument, NULL, OPT_EVENTS },
		{ "delayed", required_argument, NULL, OPT_DELAYED },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;
	double v;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h': fputs(usage, stdout); return -1;
		case OPT_N:
			if (!parse_num("n", optarg, 1, MAX_N, &v))
				return EXIT_USAGE;
			o->n = (long)v;
			break;
		case OPT_WORKERS:
		case OPT_CONCURRENCY:
			if (!parse_num(c == OPT_WORKERS ? "workers" : "concurrency", optarg, 1, 256, &v))
				return EXIT_USAGE;
			o->workers = (int)v;
			break;
		case OPT_BATCH:
			if (!parse_num("batch", optarg, 1, 1000, &v))
				return EXIT_USAGE;
			o->batch = (int)v;
			break;
		case OPT_RATE:
			if (!parse_num("rate", optarg, 0.1, 10000, &o->rate))
				return EXIT_USAGE;
			break;
		case OPT_SECONDS:
			if (!parse_num("seconds", optarg, 0.1, 3600, &o->seconds))
				return EXIT_USAGE;
			break;
		case OPT_MAX_SECONDS:
			if (!parse_num("max-seconds", optarg, 1, 86400, &o->max_seconds))
				return EXIT_USAGE;
			break;
		case OPT_REPS:
			if (!parse_num("reps", optarg, 1, 99, &v))
				return EXIT_USAGE;
			o->reps = (int)v;
			break;
		case OPT_BACKLOG:
			if (!parse_num("backlog", optarg, 1, MAX_N, &v))
				return EXIT_USAGE;
			o->backlog = (long)v;
			break;
		case OPT_DELAYED:
			if (!parse_num("delayed", optarg, 1, MAX_N, &v))
				return EXIT_USAGE;
			o->delayed = (long)v;
			break;
		case OPT_WORK_MS:
			if (!parse_num("work-ms", optarg, 0, 60000, &v))
				return EXIT_USAGE;
			o->busy_us = (long)(v * 1000);
			break;
		case OPT_PRIORITY:
			if (!parse_num("priority", optarg, -32768, 32767, &v))
				return EXIT_USAGE;
			o->priority = (int)v;
			break;
		case OPT_MEMBERS:
			if (!parse_num("members", optarg, 1, 1000000, &v))
				return EXIT_USAGE;
			o->members = (long)v;
			break;
		case OPT_DATABASE: o->dbname = optarg; break;
		case OPT_JSON: o->json = true; break;
		case OPT_DB: o->db = optarg; break;
		case OPT_HANDLER: o->handler = optarg; break;
		case OPT_TYPES: o->types = optarg; break;
		case OPT_WAIT_GO: o->wait_go = true; break;
		case OPT_EVENTS: o->events = true; break;
		default:
			fputs("see lote bench --help\n", stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		cli_error("bench", "unexpected argument \"%s\" (see lote bench --help)", argv[optind]);
		return EXIT_USAGE;
	}
	return 0;
}

int cmd_bench(int argc, char **argv)
{
	struct bench_opts o = { .rate = 20, .seconds = 10, .max_seconds = 300, .dbname = "lote_bench",
	                        .handler = "noop", .types = "noop,lat",
	                        .busy_us = 1000, .priority = -10 /* latency-backlog */ };
	struct bench_server srv = { 0 };
	const char *sub;
	char *conninfo = NULL;
	PGconn *conn = NULL;
	int rc;

	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	sub = argv[1];
	rc = parse_opts(argc - 1, argv + 1, &o);
	if (rc != 0)
		return rc < 0 ? EXIT_OK : rc;
	/* The engine's own log lines would drown the report. */
	lote__log_set_level("warn");
	if (strcmp(sub, "worker") == 0)
		return bench_worker(&o);
	if (strcmp(sub, "batch") == 0)
		return bench_batch(&o, &srv);
	if (strcmp(sub, "fanout") == 0)
		return bench_fanout(&o, &srv);
	if (o.delayed && strcmp(sub, "latency") != 0 && strcmp(sub, "latency-backlog") != 0) {
		cli_error("bench", "--delayed belongs to latency and latency-backlog");
		return EXIT_USAGE;
	}
	if (strcmp(sub, "latency-backlog") == 0) {
		if (!o.backlog)
			o.backlog = 50000;
		if ((rc = bench_scratch_db(o.dbname, &srv, &conn, &conninfo)) != EXIT_OK)
			return rc;
		rc = bench_latency(&o, conn, conninfo, &srv);
		PQfinish(conn);
		free(conninfo);
		return rc;
	}
	if (o.backlog) {
		cli_error("bench", "--backlog belongs to latency-backlog");
		return EXIT_USAGE;
	}
	if (strcmp(sub, "enqueue") != 0 && strcmp(sub, "drain") != 0 &&
	    strcmp(sub, "latency") != 0 && strcmp(sub, "all") != 0) {
		cli_error("bench", "unknown measurement \"%s\" (enqueue, drain, batch, latency,"
		          " latency-backlog, fanout, all, worker)", sub);
		return EXIT_USAGE;
	}
	bool all = strcmp(sub, "all") == 0;
	long n = o.n;
	if (all || strcmp(sub, "enqueue") == 0) {
		if ((rc = bench_scratch_db(o.dbname, &srv, &conn, &conninfo)) != EXIT_OK)
			return rc;
		rc = bench_enqueue(&o, conn, &srv);
		PQfinish(conn);
		free(conninfo);
		conn = NULL;
		conninfo = NULL;
		if (rc != EXIT_OK)
			return rc;
	}
	if (all || strcmp(sub, "drain") == 0) {
		/* in `all`, --n sizes the enqueue run; drain gets 2.5x (the
		 * peers' 20,000 / 50,000) */
		o.n = all && n ? n * 5 / 2 : n;
		if ((rc = bench_scratch_db(o.dbname, &srv, &conn, &conninfo)) != EXIT_OK)
			return rc;
		rc = bench_drain(&o, conn, conninfo, &srv, false, NULL);
		PQfinish(conn);
		free(conninfo);
		conn = NULL;
		conninfo = NULL;
		if (rc != EXIT_OK)
			return rc;
	}
	if (all || strcmp(sub, "latency") == 0) {
		if ((rc = bench_scratch_db(o.dbname, &srv, &conn, &conninfo)) != EXIT_OK)
			return rc;
		rc = bench_latency(&o, conn, conninfo, &srv);
		PQfinish(conn);
		free(conninfo);
	}
	return rc;
}

