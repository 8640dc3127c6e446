/* cmd_run.c - `lote run`: reads the config file and flags, registers one
 * exec handler per --exec / --exec-event / config section, and runs the
 * engine until SIGTERM or SIGINT. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "db.h"
#include "exec.h"
#include "http.h"
#include "log.h"

static const char usage_head[] =
	"NAME\n"
	"    lote run - run the daemon: a supervisor and its worker processes\n"
	"\n"
	"SYNOPSIS\n"
	"    lote run [--config FILE] [--exec TYPE=PROGRAM]...\n"
	"             [--exec-event TYPE=PROGRAM]... [OPTIONS]\n"
	"\n"
	"DESCRIPTION\n"
	"    Claims pending commands and events from the database and runs their\n"
	"    handlers in worker processes, each command atomically with its\n"
	"    status, retrying failures, until stopped by a signal.\n"
	"\n"
	"    Handlers are programs in any language, run with /bin/sh -c PROGRAM.\n"
	"    A command handler reads the command as one JSON object on stdin\n"
	"    (id, type, institution_id, data, attempt, max_attempts, event_id,\n"
	"    parent_id, original_id, batch_id) and finds LOTE_COMMAND_ID,\n"
	"    LOTE_COMMAND_TYPE, LOTE_INSTITUTION_ID and LOTE_ATTEMPT in its\n"
	"    environment. Exit status 0 means success; anything else fails the\n"
	"    command with the end of stderr (last 4 KiB) as its error. Stdout may\n"
	"    be empty, or {\"enqueue\":[{\"type\":...,\"data\":{...}},...]} to enqueue\n"
	"    commands and/or {\"batch\":{\"type\":...,\"commands\":[...],\"next\":...}}\n"
	"    to create a batch, in the same transaction as the success; anything\n"
	"    else fails the command (\"invalid handler output\"). A failing run\n"
	"    may print {\"permanent\":true} (no retry) or {\"retry_in_ms\":N}\n"
	"    (retry after N ms instead of the back-off). Event handlers get\n"
	"    id, type, institution_id, entity_type, entity_id, data and attempt,\n"
	"    and LOTE_EVENT_ID, LOTE_EVENT_TYPE, LOTE_ENTITY_TYPE, LOTE_ENTITY_ID,\n"
	"    LOTE_INSTITUTION_ID and LOTE_ATTEMPT.\n"
	"\n"
	"    At least one handler is needed. Flags override the config file,\n"
	"    whatever their order. See docs/config.md. A DURATION is a number\n"
	"    with a unit: ms, s, m, h or d (500ms, 30s, 5m); a bare number is\n"
	"    milliseconds.\n"
	"\n"
	"OPTIONS\n"
	"    --config FILE\n"
	"        Read settings and handlers from FILE (INI: a [lote] section,\n"
	"        [command TYPE] and [event TYPE] sections with exec = PROGRAM and\n"
	"        optional timeout, max_attempts, retry, retry_base, retry_max and\n"
	"        retry_jitter; see docs/config.md).\n"
	"    --exec TYPE=PROGRAM\n"
	"        Run PROGRAM for commands of TYPE. Repeatable, once per type.\n"
	"    --exec-event TYPE=PROGRAM\n"
	"        Run PROGRAM for events of TYPE. Repeatable; several programs for\n"
	"        one type all run, in order, in one transaction.\n"
	"    --http ADDR:PORT\n"
	"        Also serve the dashboard and the JSON API (as `lote web` does)\n"
	"        on ADDR:PORT, from a process of its own that is restarted if it\n"
	"        dies. Off by default, so several daemons can share a host. A port\n"
	"        in use stops the daemon at start-up (exit 1), as does a malformed\n"
	"        ADDR:PORT (exit 2).\n"
	"    -h, --help\n"
	"        Show this text.\n";

static const char usage_tail[] =
	"\n"
	"SIGNALS\n"
	"    SIGTERM, SIGINT\n"
	"        Stop claiming work, let in-flight handlers finish within the\n"
	"        grace period (--grace), then exit 0. Handlers still running at\n"
	"        the end of it are killed and their work is retried later.\n"
	"\n"
	"EXIT STATUS\n"
	"    0  stopped by SIGTERM or SIGINT after a graceful drain\n"
	"    1  the engine failed (the message says why)\n"
	"    2  bad command line or config file, or no handlers\n"
	"    3  the database cannot be reached, or its schema is not migrated\n"
	"    4  the config file does not exist\n";

/* Option values: the fixed options, then settings from OPT_SETTING on
 * (OPT_NEGATE on for --no-NAME of bools). */
enum {
	OPT_CONFIG = 0x100,
	OPT_EXEC,
	OPT_EXEC_EVENT,
	OPT_HTTP,
	OPT_SETTING = 0x200,
	OPT_NEGATE = 0x400,
};

/* What the command line said, applied after the config file. */
struct flags {
	const char *config;    /* borrowed from argv */
	struct { int setting; const char *value; } *sets; /* in order */
	int nsets;
	struct { lote_kind kind; const char *spec; } *execs;
	int nexecs;
	bool database_url;     /* --database-url given */
	const char *http;      /* --http ADDR:PORT, borrowed from argv */
};

static void usage(FILE *out)
{
	fputs(usage_head, out);
	lote__config_print_help(out);
	fputs(usage_tail, out);
}

/* Builds the getopt_long table: fixed options and two per bool setting.
 * Names are malloc'd into *ret_names (freed by the caller). */
static struct option *long_options(char ***ret_names)
{
	int n = lote__config_setting_count(), k = 0, m = 0;
	struct option *o = calloc((size_t)(2 * n + 6), sizeof(*o));
	char **names = calloc((size_t)(2 * n + 1), sizeof(char *));

	if (!o || !names)
		goto fail;
	o[k++] = (struct option){ "config", required_argument, NULL, OPT_CONFIG };
	o[k++] = (struct option){ "exec", required_argument, NULL, OPT_EXEC };
	o[k++] = (struct option){ "exec-event", required_argument, NULL, OPT_EXEC_EVENT };
	o[k++] = (struct option){ "help", no_argument, NULL, 'h' };
	o[k++] = (struct option){ "http", required_argument, NULL, OPT_HTTP };
	for (int i = 0; i < n; i++) {
		lote__setting_info s;
		bool is_bool;
		lote__config_setting(i, &s);
		is_bool = strcmp(s.type, "bool") == 0;
		if (asprintf(&names[m], "%s", s.flag) < 0)
			goto fail;
		o[k++] = (struct option){ names[m], is_bool ? no_argument : required_argument,
		                          NULL, OPT_SETTING + i };
		if (is_bool) {
			if (asprintf(&names[m + 1], "no-%s", names[m]) < 0)
				goto fail;
			o[k++] = (struct option){ names[m + 1], no_argument, NULL, OPT_NEGATE + i };
			m++;
		}
		m++;
	}
	*ret_names = names;
	return o;
fail:
	for (int i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
	free(o);
	return NULL;
}

/* Parses argv into fl. Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct flags *fl)
{
	char **names = NULL;
	struct option *opts = long_options(&names);
	int c, status = -1;

	fl->sets = calloc((size_t)argc, sizeof(*fl->sets));
	fl->execs = calloc((size_t)argc, sizeof(*fl->execs));
	if (!opts || !fl->sets || !fl->execs) {
		cli_error("run", "out of memory");
		status = EXIT_FAIL;
		goto done;
	}
	opterr = 0;
	optind = 1;
	while (status < 0 && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		lote__setting_info s;
		switch (c) {
		case 'h':
			usage(stdout);
			status = EXIT_OK;
			break;
		case OPT_CONFIG:
			fl->config = optarg;
			break;
		case OPT_HTTP:
			fl->http = optarg;
			break;
		case OPT_EXEC:
		case OPT_EXEC_EVENT:
			fl->execs[fl->nexecs].kind = c == OPT_EXEC ? LOTE_COMMAND : LOTE_EVENT;
			fl->execs[fl->nexecs++].spec = optarg;
			break;
		case ':':
			cli_error("run", "%s needs a value (see lote run --help)", argv[optind - 1]);
			status = EXIT_USAGE;
			break;
		case '?':
			cli_error("run", "unknown option \"%s\" (see lote run --help)", argv[optind - 1]);
			status = EXIT_USAGE;
			break;
		default:
			if (c >= OPT_NEGATE) {
				fl->sets[fl->nsets].setting = c - OPT_NEGATE;
				fl->sets[fl->nsets++].value = "false";
			} else {
				fl->sets[fl->nsets].setting = c - OPT_SETTING;
				lote__config_setting(c - OPT_SETTING, &s);
				fl->sets[fl->nsets++].value = strcmp(s.type, "bool") == 0 ? "true" : optarg;
				if (strcmp(s.name, "database_url") == 0)
					fl->database_url = true;
			}
			break;
		}
	}
	if (status < 0 && optind < argc) {
		cli_error("run", "unexpected argument \"%s\" (see lote run --help)", argv[optind]);
		status = EXIT_USAGE;
	}
done:
	for (int i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
	free(opts);
	return status;
}

/* The file first, then the flags over it. Returns 0 or an exit status. */
static int configure(lote__config *cfg, const struct flags *fl)
{
	lote_error err = { 0 };

	if (fl->config && lote__config_load_file(cfg, fl->config, &err) < 0) {
		cli_error("run", "%s", err.message);
		return cli_exit_for(err.code);
	}
	for (int i = 0; i < fl->nsets; i++) {
		lote__setting_info s;
		lote__config_setting(fl->sets[i].setting, &s);
		if (lote__config_set(cfg, s.name, fl->sets[i].value, &err) < 0) {
			/* the message starts with the setting's name: say the flag */
			size_t n = strlen(s.name);
			cli_error("run", "--%s%s", s.flag,
			          strncmp(err.message, s.name, n) == 0 ? err.message + n : err.message);
			return EXIT_USAGE;
		}
	}
	for (int i = 0; i < fl->nexecs; i++) {
		if (lote__config_add_handler(cfg, fl->execs[i].kind, fl->execs[i].spec, &err) < 0) {
			cli_error("run", "%s", err.message);
			return cli_exit_for(err.code);
		}
	}
	if (cfg->nhandlers == 0) {
		cli_error("run", "no handlers: give --exec TYPE=PROGRAM, --exec-event TYPE=PROGRAM, "
		          "or a --config file with [command TYPE] or [event TYPE] sections "
		          "(see lote run --help)");
		return EXIT_USAGE;
	}
	if (lote__log_set_level(cfg->log_level) < 0) {
		cli_error("run", "log_level: \"%s\" is not a log level", cfg->log_level);
		return EXIT_USAGE;
	}
	return 0;
}

/* Registers one exec handler per spec. */
static int register_handlers(lote_engine *engine, const lote__config *cfg,
                             lote_error *err)
{
	for (int i = 0; i < cfg->nhandlers; i++) {
		const lote__handler_spec *h = &cfg->handlers[i];
		int64_t timeout = h->timeout_ms ? h->timeout_ms : cfg->engine.timeout_ms;
		int64_t engine_timeout = timeout + LOTE_EXEC_KILL_MARGIN_MS;
		lote_handler_opts opts = { 0 };
		lote__exec *x = NULL;
		int rc;

		if ((rc = lote__exec_new(h->program, timeout, &x, err)) < 0)
			return rc;
		opts.timeout_ms = engine_timeout > INT_MAX ? INT_MAX : (int)engine_timeout;
		opts.max_attempts = h->max_attempts;
		opts.retry = h->retry;
		opts.free_udata = lote__exec_free;
		if (h->kind == LOTE_EVENT)
			rc = lote_engine_on_event(engine, h->type, lote__exec_handler, x, &opts, err);
		else
			rc = lote_engine_on_command(engine, h->type, lote__exec_handler, x, &opts, err);
		if (rc < 0) {
			/* Not registered, so not the engine's to free. */
			lote__exec_free(x);
			return rc;
		}
		log_debug("%s %s: exec %s (timeout %lld ms)", h->kind == LOTE_EVENT ? "event" : "command",
		          h->type, h->program, (long long)timeout);
	}
	return 0;
}

/* The HTTP keeper: a child of the supervisor that runs the HTTP server in
 * a grandchild and starts it again when it dies (the supervisor reaps
 * every child it has, so it could not watch the server itself). The
 * server is a process of its own, so its threads never share an address
 * space with the supervisor, which forks workers. */
static void http_keeper(int fd, const char *conninfo)
{
	int64_t backoff = 100;
	sigset_t set;
	pid_t child = 0;

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	lote__log_set_context("http");
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	for (;;) {
		siginfo_t info;
		int64_t started = lote__mono_ms(), st;
		int sig, wst;

		child = fork();
		if (child == 0) {
			lote_error err = { 0 };
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			if (lote__http_serve(fd, conninfo, &err) < 0) {
				log_error("%s", err.message);
				_exit(1);
			}
			_exit(0);
		}
		if (child < 0) {
			log_error("cannot fork the HTTP server: %s", strerror(errno));
			_exit(1);
		}
		do
			sig = sigwaitinfo(&set, &info);
		while (sig == SIGCHLD && waitpid(child, &wst, WNOHANG) == 0);
		if (sig != SIGCHLD) {
			kill(child, SIGTERM);
			waitpid(child, NULL, 0);
			_exit(0);
		}
		st = lote__mono_ms() - started;
		backoff = st > 10000 ? 100 : (backoff * 2 > 30000 ? 30000 : backoff * 2);
		log_warn("the HTTP server (pid %d) %s %d; restarting it in %lld ms", (int)child,
		         WIFSIGNALED(wst) ? "was killed by signal" : "exited with status",
		         WIFSIGNALED(wst) ? WTERMSIG(wst) : WEXITSTATUS(wst), (long long)backoff);
		struct timespec ts = { backoff / 1000, (backoff % 1000) * 1000000 };
		sigset_t stop;
		sigemptyset(&stop);
		sigaddset(&stop, SIGTERM);
		sigaddset(&stop, SIGINT);
		if (sigtimedwait(&stop, &info, &ts) > 0)
			_exit(0);
	}
}

/* Binds --http ADDR:PORT and forks the keeper. Returns its pid, 0 when
 * --http was not given, or -1 after printing why with the exit status in
 * *ret_status: 2 for a malformed address (as lote web), else 1. */
static pid_t start_http(const char *addr, const char *conninfo, int *ret_status)
{
	lote_error err = { 0 };
	int fd, port;
	pid_t pid;

	if (!addr)
		return 0;
	*ret_status = EXIT_FAIL;
	if (lote__http_listen(addr, &fd, &port, &err) < 0) {
		cli_error("run", "--http: %s", err.message);
		if (err.code == LOTE_EINVAL)
			*ret_status = EXIT_USAGE;
		return -1;
	}
	pid = fork();
	if (pid == 0) {
		http_keeper(fd, conninfo);
		_exit(0);
	}
	close(fd);
	if (pid < 0) {
		cli_error("run", "cannot fork the HTTP server: %s", strerror(errno));
		return -1;
	}
	log_info("dashboard and API on http://%.*s:%d/", (int)(strrchr(addr, ':') - addr), addr, port);
	return pid;
}

int cmd_run(int argc, char **argv)
{
	struct flags fl = { 0 };
	lote__config cfg;
	lote_engine *engine = NULL;
	lote_error err = { 0 };
	char *conninfo = NULL;
	PGconn *conn;
	pid_t http = 0;
	int status;

	lote__config_init(&cfg);
	if ((status = parse_args(argc, argv, &fl)) >= 0)
		goto done;
	if ((status = configure(&cfg, &fl)) != 0)
		goto done;
	/* --database-url beats $LOTE_DATABASE_URL, which beats the file. */
	if (cfg.database_url && setenv("LOTE_DATABASE_URL", cfg.database_url, fl.database_url) < 0) {
		cli_error("run", "out of memory");
		status = EXIT_FAIL;
		goto done;
	}
	conn = cli_connect_ready("run", &conninfo);
	if (!conn) {
		status = EXIT_DB;
		goto done;
	}
	PQfinish(conn);
	cfg.engine.conninfo = conninfo;
	if ((http = start_http(fl.http, conninfo, &status)) < 0)
		goto done;
	if (lote_engine_new(&cfg.engine, &engine, &err) < 0 ||
	    register_handlers(engine, &cfg, &err) < 0 ||
	    lote_engine_run(engine, &err) < 0) {
		cli_error("run", "%s", err.message);
		status = err.code == LOTE_EINVAL ? EXIT_USAGE : cli_exit_for(err.code);
		goto done;
	}
	status = EXIT_OK;
done:
	if (http > 0) {
		kill(http, SIGTERM);
		waitpid(http, NULL, 0);
	}
	lote_engine_free(engine);
	lote__config_done(&cfg);
	free(conninfo);
	free(fl.sets);
	free(fl.execs);
	return status;
}
