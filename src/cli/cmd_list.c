/* cmd_list.c - `lote events|commands|batches ls|show|reprocess|cancel` and
 * `lote workers`: the CLI face of the same library functions as the JSON
 * API (api.c), so both filter, page and act alike. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "cli.h"
#include "db.h"
#include "jsontext.h"

static const char usage_fmt[] =
	"NAME\n"
	"    lote %1$s - list%2$s %1$s\n"
	"\n"
	"SYNOPSIS\n"
	"    lote %1$s ls [FILTERS] [--limit N] [--cursor CURSOR] [--json]\n"
	"    lote %1$s show ID [--json]\n"
	"%3$s"
	"\n"
	"DESCRIPTION\n"
	"    ls prints the newest first (by created_at with --from or --to),\n"
	"    one page (default 50, at most 500); when there are more it says\n"
	"    which --cursor gives the next page; list is an alias of ls.\n"
	"    The archive is included once it exists. --json prints a JSON array\n"
	"    of objects with the SQL column names (duration in milliseconds).\n"
	"    show prints one row with its payload%4$s.\n"
	"%5$s"
	"    Each subcommand refuses the options it does not take (exit 2).\n"
	"\n"
	"FILTERS (the query parameters of GET /api/v1/%1$s, see docs/api.md)\n"
	"    --type T[,T...]        type, exactly\n"
	"    --status S[,S...]      %6$s\n"
	"    --institution UUID\n"
	"    --entity TYPE[:ID]     the entity%7$s\n"
	"    --from TIME, --to TIME created at or after / before (ISO 8601)\n"
	"    --error TEXT           the error contains TEXT (any case); also --error-like\n"
	"%8$s"
	"\n"
	"EXIT STATUS\n"
	"    0 done; 1 the action was refused (e.g. not finished); 2 bad command\n"
	"    line or filter; 3 database unreachable or not migrated; 4 no such id.\n";

static void usage(FILE *out, lote__api_kind kind)
{
	switch (kind) {
	case LOTE_API_COMMANDS:
		fprintf(out, usage_fmt, "commands", ", show, reprocess and cancel",
		        "    lote commands reprocess ID... [--json]\n"
		        "    lote commands reprocess FILTERS [--dry-run] [--json]\n"
		        "    lote commands cancel ID... [--json]\n",
		        ", its lineage (event,\n"
		        "    enqueuing command, batch, follow-up, copies) and the tree of\n"
		        "    everything its origin caused",
		        "    reprocess ID runs a finished command again as a new linked command.\n"
		        "    With filters instead of ids it reprocesses every matching finished\n"
		        "    command that has no copy yet (status defaults to error; at most\n"
		        "    10000 per call); --dry-run only counts and lists them. --dry-run\n"
		        "    goes with filters only: with ids it is refused (exit 2).\n"
		        "    cancel stops commands that have not started.\n"
		        "    ls marks a reprocessed command \"(replaced by N)\": N is its copy.\n",
		        "awaiting, pending, processing, success, error,\n"
		        "                           cancelled",
		        " of the event that caused it",
		        "    --batch ID             members of batch ID\n"
		        "    --origin event:ID|command:ID  enqueued by that event or command\n");
		break;
	case LOTE_API_EVENTS:
		fprintf(out, usage_fmt, "events", " and show", "", " and the commands it caused",
		        "    ls marks a reprocessed event \"(replaced by N)\": N is its copy.\n",
		        "pending, processing, success, error", "", "");
		break;
	case LOTE_API_BATCHES:
		fprintf(out, usage_fmt, "batches", ", show and cancel",
		        "    lote batches cancel ID... [--json]\n",
		        ", its progress, members and follow-up",
		        "    cancel stops a batch: members not started and its follow-up.\n",
		        "pending, processing, success, error, cancelled", " of the event that caused it",
		        "    --batch ID             batch ID only\n"
		        "    --origin event:ID|command:ID  created by that event or command\n");
		break;
	}
}

static const char *str(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_string(v) ? json_string_value(v) : "";
}

static long long num(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

/* "2026-01-31T12:00:00.123+00:00" as "01-31 12:00:00". */
static const char *short_time(const char *t, char *buf, size_t len)
{
	if (strlen(t) < 19)
		return t;
	snprintf(buf, len, "%.5s %.8s", t + 5, t + 11);
	return buf;
}

/* One line of text, at most n bytes, without newlines. */
static void clip(const char *s, char *out, size_t n)
{
	size_t i = 0;
	for (; s[i] && i + 1 < n; i++)
		out[i] = s[i] == '\n' || s[i] == '\t' ? ' ' : s[i];
	out[i] = '\0';
	if (s[i] && n > 4)
		strcpy(out + n - 4, "...");
}

static void print_table(lote__api_kind kind, json_t *items)
{
	json_t *r;
	size_t i;
	char t[32], e[61];

	switch (kind) {
	case LOTE_API_COMMANDS:
		printf("%-8s  %-28s  %-10s  %-7s  %-8s  %-14s  %s\n", "ID", "TYPE", "STATUS", "ATTEMPT",
		       "INST", "CREATED", "ERROR");
		break;
	case LOTE_API_EVENTS:
		printf("%-8s  %-28s  %-10s  %-24s  %-8s  %-14s  %s\n", "ID", "TYPE", "STATUS", "ENTITY",
		       "INST", "CREATED", "ERROR");
		break;
	case LOTE_API_BATCHES:
		printf("%-8s  %-28s  %-10s  %-13s  %-8s  %-14s  %s\n", "ID", "TYPE", "STATUS", "DONE/SIZE",
		       "INST", "CREATED", "ERROR");
		break;
	}
	json_array_foreach(items, i, r) {
		/* a reprocessed row says so before its error: the dashboard's
		 * Errors page leaves it out, the copy has taken its place */
		if (kind != LOTE_API_BATCHES && num(r, "replaced_by") > 0) {
			char full[600];
			snprintf(full, sizeof(full), "(replaced by %lld)%s%.512s", num(r, "replaced_by"),
			         *str(r, "error") ? " " : "", str(r, "error"));
			clip(full, e, sizeof(e));
		} else {
			clip(str(r, "error"), e, sizeof(e));
		}
		printf("%-8lld  %-28s  %-10s  ", num(r, "id"), str(r, "type"), str(r, "status"));
		if (kind == LOTE_API_COMMANDS) {
			char a[16];
			snprintf(a, sizeof(a), "%lld/%lld", num(r, "attempt"), num(r, "max_attempts"));
			printf("%-7s  ", a);
		} else if (kind == LOTE_API_EVENTS) {
			char ent[25];
			char full[256];
			snprintf(full, sizeof(full), "%s:%s", str(r, "entity_type"), str(r, "entity_id"));
			clip(full, ent, sizeof(ent));
			printf("%-24s  ", ent);
		} else {
			char d[24];
			snprintf(d, sizeof(d), "%lld/%lld",
			         num(json_object_get(r, "progress"), "success"), num(r, "size"));
			printf("%-13s  ", d);
		}
		printf("%-8.8s  %-14s  %s\n", str(r, "institution_id"),
		       short_time(str(r, "created_at"), t, sizeof(t)), e);
	}
}

/* The lineage tree: the origin event, then commands under their parents,
 * members of one batch grouped, the shown command marked. */
static void print_node(json_t *cmds, json_t *batches, json_t *n, long long mark, int depth)
{
	json_t *c, *b;
	size_t i, j;
	long long id = num(n, "id");

	printf("%*s%s command %lld %s [%s]", depth * 2, "", id == mark ? "*" : "-", id,
	       str(n, "type"), str(n, "status"));
	if (!json_is_null(json_object_get(n, "original_id")) && json_object_get(n, "original_id"))
		printf(" (reprocesses %lld)", num(n, "original_id"));
	if (num(n, "batch_id"))
		printf(" (batch %lld)", num(n, "batch_id"));
	json_array_foreach(batches, j, b)
		if (num(b, "next_command_id") == id)
			printf(" (follow-up of batch %lld)", num(b, "id"));
	putchar('\n');
	json_array_foreach(cmds, i, c)
		if (num(c, "parent_id") == id)
			print_node(cmds, batches, c, mark, depth + 1);
}

static void print_tree(json_t *tree, long long mark)
{
	json_t *cmds = json_object_get(tree, "commands"), *ev = json_object_get(tree, "event"), *c;
	json_t *batches = json_object_get(tree, "batches");
	size_t i;
	int depth = 0;

	puts("\nlineage:");
	if (json_is_object(ev)) {
		printf("- event %lld %s %s:%s [%s]\n", num(ev, "id"), str(ev, "type"), str(ev, "entity_type"),
		       str(ev, "entity_id"), str(ev, "status"));
		depth = 1;
	}
	json_array_foreach(cmds, i, c) {
		long long p = num(c, "parent_id");
		bool has_parent = false;
		json_t *d;
		size_t k;
		json_array_foreach(cmds, k, d)
			if (p && num(d, "id") == p)
				has_parent = true;
		if (!has_parent)
			print_node(cmds, batches, c, mark, depth);
	}
	if (json_is_true(json_object_get(tree, "truncated")))
		printf("  … (more than %d commands, cut)\n", LOTE_API_TREE_MAX);
}

static void print_row(json_t *row)
{
	const char *k;
	json_t *v;

	json_object_foreach(row, k, v) {
		char ms[64];
		if (strcmp(k, "data") == 0 || json_is_null(v))
			continue;
		if (strcmp(k, "duration") == 0 && json_is_number(v)) {
			printf("%-16s %s\n", k, cli_format_ms(json_number_value(v), ms, sizeof(ms)));
			continue;
		}
		char *s = json_is_string(v) ? strdup(json_string_value(v))
		                            : lote__json_text(v, JSON_ENCODE_ANY);
		printf("%-16s %s\n", k, s ? s : "");
		free(s);
	}
	if (json_object_get(row, "data")) {
		char *s = lote__json_text(json_object_get(row, "data"), JSON_INDENT(2));
		printf("data\n%s\n", s ? s : "");
		free(s);
	}
}

static int show(PGconn *conn, lote__api_kind kind, long long id, bool json)
{
	lote__api_actor actor;
	lote_error err = { 0 };
	json_t *v = NULL;
	int rc;

	lote__api_actor_cli(&actor);
	if ((rc = lote__api_get(conn, kind, id, &actor, &v, &err)) < 0) {
		cli_error(lote__api_kind_name(kind), "%s", err.message);
		return cli_exit_for(rc);
	}
	if (json) {
		cli_print_json(v);
	} else if (kind == LOTE_API_COMMANDS) {
		json_t *a;
		size_t i;
		print_row(json_object_get(v, "command"));
		if (json_array_size(json_object_get(v, "attempts")))
			puts("\nfailed attempts:");
		json_array_foreach(json_object_get(v, "attempts"), i, a)
			printf("  %lld  %-13s %s\n", num(a, "attempt"), str(a, "outcome"), str(a, "error"));
		print_tree(json_object_get(v, "tree"), id);
	} else if (kind == LOTE_API_EVENTS) {
		print_row(json_object_get(v, "event"));
		puts("\ncommands:");
		print_table(LOTE_API_COMMANDS, json_object_get(v, "commands"));
	} else {
		json_t *p = json_object_get(v, "progress"), *n;
		const char *k;
		print_row(json_object_get(v, "batch"));
		printf("progress        ");
		json_object_foreach(p, k, n)
			printf(" %s %lld", k, (long long)json_integer_value(n));
		putchar('\n');
		if (json_is_object(json_object_get(v, "next")))
			printf("follow-up        command %lld %s [%s]\n", num(json_object_get(v, "next"), "id"),
			       str(json_object_get(v, "next"), "type"), str(json_object_get(v, "next"), "status"));
		puts("\nmembers:");
		print_table(LOTE_API_COMMANDS, json_object_get(v, "members"));
	}
	json_decref(v);
	return EXIT_OK;
}

static int parse_ids(const char *cmd, int argc, char **argv, int from, long long **ret, int *ret_n)
{
	long long *ids = calloc((size_t)argc + 1, sizeof(*ids));
	int n = 0;

	if (!ids) {
		cli_error(cmd, "out of memory");
		return -1;
	}
	for (int i = from; i < argc; i++) {
		int64_t v;
		if (cli_parse_id(cmd, argv[i], &v) < 0) {
			free(ids);
			return -1;
		}
		ids[n++] = v;
	}
	*ret = ids;
	*ret_n = n;
	return 0;
}

/* A batch's status in the hot table (malloc'd), NULL if it is not there. */
static char *batch_status(PGconn *conn, long long id)
{
	lote_error err = { 0 };
	char idtext[24], *status = NULL;
	const char *params[1] = { idtext };

	snprintf(idtext, sizeof(idtext), "%lld", id);
	if (lote__db_value(conn, "SELECT status FROM lote.batches WHERE id = $1::bigint", 1, params,
	                   &status, &err) < 0)
		return NULL;
	return status;
}

static bool is_status(const char *status, const char *want)
{
	return status && strcmp(status, want) == 0;
}

/* The subcommands, and the options each takes. */
enum sub { SUB_LS, SUB_SHOW, SUB_REPROCESS, SUB_CANCEL, SUB_UNKNOWN };

static enum sub sub_of(lote__api_kind kind, const char *sub)
{
	if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0)
		return SUB_LS;
	if (strcmp(sub, "show") == 0)
		return SUB_SHOW;
	if (strcmp(sub, "reprocess") == 0 && kind == LOTE_API_COMMANDS)
		return SUB_REPROCESS;
	if (strcmp(sub, "cancel") == 0 && kind != LOTE_API_EVENTS)
		return SUB_CANCEL;
	return SUB_UNKNOWN;
}

/* Whether name is in the NULL-terminated list. */
static bool among(const char *name, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(name, *list) == 0)
			return true;
	return false;
}

static const char *const filter_opts[] = { "type", "status", "institution", "entity", "from",
                                           "to", "error", "error-like", "batch", "origin", NULL };

static int list_main(lote__api_kind kind, int argc, char **argv)
{
	enum { O_JSON = 0x100, O_DRY, O_HELP };
	static const struct option longopts[] = {
		{ "type", required_argument, NULL, 't' },
		{ "status", required_argument, NULL, 's' },
		{ "institution", required_argument, NULL, 'i' },
		{ "entity", required_argument, NULL, 'e' },
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 'T' },
		{ "error", required_argument, NULL, 'E' },
		{ "error-like", required_argument, NULL, 'E' },
		{ "batch", required_argument, NULL, 'b' },
		{ "origin", required_argument, NULL, 'o' },
		{ "cursor", required_argument, NULL, 'c' },
		{ "limit", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, O_JSON },
		{ "dry-run", no_argument, NULL, O_DRY },
		{ "help", no_argument, NULL, O_HELP },
		{ 0 },
	};
	static const struct { int opt; const char *key; } keys[] = {
		{ 't', "type" }, { 's', "status" }, { 'i', "institution" }, { 'e', "entity" },
		{ 'f', "from" }, { 'T', "to" }, { 'E', "error" }, { 'b', "batch" }, { 'o', "origin" },
		{ 'c', "cursor" }, { 'n', "limit" },
	};
	const char *cmd = lote__api_kind_name(kind), *sub;
	/* the options given, in order, once each: indexes into longopts */
	int given[sizeof(longopts) / sizeof(longopts[0])], ngiven = 0;
	enum sub which;
	lote__api_filter f;
	lote__api_actor actor;
	lote_error err = { 0 };
	bool json = false, dry = false, filtered = false;
	long long *ids = NULL;
	int nids = 0, c, idx, status = EXIT_OK, rc;
	PGconn *conn = NULL;
	json_t *v = NULL;

	if (argc < 2) {
		usage(stderr, kind);
		return EXIT_USAGE;
	}
	sub = argv[1];
	if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
		usage(stdout, kind);
		return EXIT_OK;
	}
	lote__api_filter_init(&f);
	lote__api_actor_cli(&actor);
	optind = 1;
	opterr = 0;
	argc--;
	argv++;
	while (idx = -1, (c = getopt_long(argc, argv, ":h", longopts, &idx)) != -1) {
		bool found = false;
		if (c == 'h' || c == O_HELP) {
			usage(stdout, kind);
			goto done;
		}
		if (idx >= 0) {
			bool dup = false;
			for (int k = 0; k < ngiven; k++)
				dup = dup || given[k] == idx;
			if (!dup)
				given[ngiven++] = idx;
		}
		if (c == O_JSON) {
			json = true;
			continue;
		}
		if (c == O_DRY) {
			dry = true;
			continue;
		}
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			if (keys[k].opt != c)
				continue;
			found = true;
			if (lote__api_filter_set(&f, kind, keys[k].key, optarg, &err) < 0) {
				cli_error(cmd, "--%s", err.message);
				status = EXIT_USAGE;
				goto done;
			}
			if (c != 'c' && c != 'n')
				filtered = true;
		}
		if (!found) {
			cli_error(cmd, "%s \"%s\" (see lote %s --help)",
			          c == ':' ? "option needs a value:" : "unknown option", argv[optind - 1], cmd);
			status = EXIT_USAGE;
			goto done;
		}
	}
	which = sub_of(kind, sub);
	if (which == SUB_UNKNOWN) {
		cli_error(cmd, "unknown subcommand \"%s\" (see lote %s --help)", sub, cmd);
		status = EXIT_USAGE;
		goto done;
	}
	if (which == SUB_REPROCESS && parse_ids(cmd, argc, argv, optind, &ids, &nids) < 0) {
		status = EXIT_USAGE;
		goto done;
	}
	/* An option a subcommand does not use is refused, not ignored: above
	 * all --dry-run with ids, which would act for real. */
	if (which == SUB_REPROCESS && nids > 0 && dry) {
		cli_error(cmd, "--dry-run goes with filters (lote commands reprocess --status error "
		          "--dry-run), not with ids: nothing was reprocessed");
		status = EXIT_USAGE;
		goto done;
	}
	for (int k = 0; k < ngiven; k++) {
		const char *name = longopts[given[k]].name;
		bool ok = strcmp(name, "json") == 0;
		if (which == SUB_LS)
			ok = ok || strcmp(name, "dry-run") != 0;
		else if (which == SUB_REPROCESS && nids == 0)
			ok = ok || strcmp(name, "dry-run") == 0 || among(name, filter_opts);
		else if (which == SUB_REPROCESS)
			/* ids and filters: the message below says which to give */
			ok = ok || among(name, filter_opts);
		if (!ok) {
			cli_error(cmd, "%s does not take --%s (see lote %s --help)", sub, name, cmd);
			status = EXIT_USAGE;
			goto done;
		}
	}
	if (which == SUB_LS) {
		if (optind < argc) {
			cli_error(cmd, "unexpected argument \"%s\"", argv[optind]);
			status = EXIT_USAGE;
			goto done;
		}
		if (!(conn = cli_connect_ready(cmd, NULL))) {
			status = EXIT_DB;
			goto done;
		}
		lote__db_try(conn, "SET jit = off"); /* see http.c */
		if ((rc = lote__api_list(conn, kind, &f, &actor, &v, &err)) < 0) {
			cli_error(cmd, "%s", err.message);
			status = cli_exit_for(rc);
			goto done;
		}
		if (json) {
			cli_print_json(json_object_get(v, "items"));
		} else {
			print_table(kind, json_object_get(v, "items"));
		}
		if (json_is_string(json_object_get(v, "next_cursor")))
			fprintf(stderr, "more: lote %s ls … --cursor %s\n", cmd,
			        json_string_value(json_object_get(v, "next_cursor")));
		goto done;
	}
	if (which == SUB_SHOW) {
		if (parse_ids(cmd, argc, argv, optind, &ids, &nids) < 0 || nids != 1) {
			if (nids != 1 && ids)
				cli_error(cmd, "want: lote %s show ID", cmd);
			status = EXIT_USAGE;
			goto done;
		}
		if (!(conn = cli_connect_ready(cmd, NULL))) {
			status = EXIT_DB;
			goto done;
		}
		lote__db_try(conn, "SET jit = off");
		status = show(conn, kind, ids[0], json);
		goto done;
	}
	{
		bool reprocess = which == SUB_REPROCESS;
		if (!reprocess && parse_ids(cmd, argc, argv, optind, &ids, &nids) < 0) {
			status = EXIT_USAGE;
			goto done;
		}
		if ((nids == 0) == !(reprocess && filtered)) {
			cli_error(cmd, reprocess ? "give ids, or filters (--status, --type, --institution, "
			                           "--error-like …), not both and not neither"
			                         : "want: lote %s cancel ID...", cmd);
			status = EXIT_USAGE;
			goto done;
		}
		if (!(conn = cli_connect_ready(cmd, NULL))) {
			status = EXIT_DB;
			goto done;
		}
		if (nids == 0) {
			if ((rc = lote__api_reprocess_bulk(conn, &f, dry, &actor, &v, &err)) < 0) {
				cli_error(cmd, "%s", err.message);
				status = cli_exit_for(rc);
				goto done;
			}
			if (json) {
				cli_print_json(v);
			} else {
				char *s = json_dumps(json_object_get(v, "ids"), JSON_COMPACT);
				printf("%s%lld command%s matched; %lld reprocessed%s; %s: %s\n",
				       dry ? "dry run: " : "", num(v, "matched"), num(v, "matched") == 1 ? "" : "s",
				       num(v, "reprocessed"),
				       json_is_true(json_object_get(v, "more")) ? " (more remain: run it again)" : "",
				       dry ? "ids" : "new ids", s);
				free(s);
			}
			goto done;
		}
		for (int i = 0; i < nids; i++) {
			json_t *r = NULL;
			/* lote.cancel_batch returns 0 both for a batch it leaves alone
			 * (success or cancelled already) and for an open batch it
			 * cancels with no member left to stop: the status tells. */
			char *before = !reprocess && !json && kind == LOTE_API_BATCHES
			                   ? batch_status(conn, ids[i]) : NULL;
			rc = reprocess ? lote__api_reprocess(conn, ids[i], &actor, &r, &err)
			               : lote__api_cancel(conn, kind, ids[i], &actor, &r, &err);
			if (rc < 0) {
				cli_error(cmd, "%lld: %s", ids[i], err.message);
				status = rc == LOTE_ESTATE ? EXIT_FAIL : cli_exit_for(rc);
				free(before);
				continue;
			}
			if (json) {
				char *s = json_dumps(r, JSON_COMPACT);
				puts(s);
				free(s);
			} else if (reprocess) {
				printf("command %lld reprocessed as command %lld\n", ids[i], num(r, "id"));
			} else if (json_is_boolean(json_object_get(r, "cancelled"))) {
				if (json_is_true(json_object_get(r, "cancelled")))
					printf("command %lld cancelled\n", ids[i]);
				else {
					printf("command %lld not cancelled: it has started or finished\n", ids[i]);
					status = EXIT_FAIL;
				}
			} else {
				char *after = batch_status(conn, ids[i]);
				long long n = num(r, "cancelled");
				if (is_status(before, "cancelled")) {
					printf("batch %lld not cancelled: it was already cancelled\n", ids[i]);
					status = EXIT_FAIL;
				} else if (is_status(after, "cancelled")) {
					printf("batch %lld cancelled (%lld command%s)\n", ids[i], n,
					       n == 1 ? "" : "s");
				} else {
					/* finished, or archived (no longer among the hot
					 * batches), or its status could not be read */
					printf("batch %lld not cancelled: it has finished (%s)\n", ids[i],
					       after ? after : before ? before : "archived");
					status = EXIT_FAIL;
				}
				free(after);
			}
			free(before);
			json_decref(r);
		}
	}
done:
	json_decref(v);
	free(ids);
	lote__api_filter_done(&f);
	if (conn)
		PQfinish(conn);
	return status;
}

int cmd_events(int argc, char **argv)
{
	return list_main(LOTE_API_EVENTS, argc, argv);
}

int cmd_commands(int argc, char **argv)
{
	return list_main(LOTE_API_COMMANDS, argc, argv);
}

int cmd_batches(int argc, char **argv)
{
	return list_main(LOTE_API_BATCHES, argc, argv);
}

static const char workers_usage[] =
	"NAME\n"
	"    lote workers - worker processes and what they run\n"
	"\n"
	"SYNOPSIS\n"
	"    lote workers [--json]\n"
	"\n"
	"DESCRIPTION\n"
	"    Every registered worker process: host, pid, heartbeat, whether it\n"
	"    beat in the last minute, and the commands it is running.\n"
	"\n"
	"EXIT STATUS\n"
	"    0 done; 2 bad command line; 3 database unreachable or not migrated.\n";

int cmd_workers(int argc, char **argv)
{
	lote_error err = { 0 };
	bool json;
	json_t *v = NULL, *w;
	PGconn *conn;
	size_t i;
	int rc;

	if ((rc = cli_json_only("workers", argc, argv, workers_usage, &json)) >= 0)
		return rc;
	if (!(conn = cli_connect_ready("workers", NULL)))
		return EXIT_DB;
	rc = lote__api_workers(conn, &v, &err);
	PQfinish(conn);
	if (rc < 0) {
		cli_error("workers", "%s", err.message);
		return cli_exit_for(rc);
	}
	if (json) {
		cli_print_json(v);
	} else {
		char t[32];
		printf("%-6s  %-20s  %-8s  %-5s  %-14s  %s\n", "ID", "HOST", "PID", "ALIVE", "HEARTBEAT", "RUNNING");
		json_array_foreach(v, i, w) {
			json_t *run = json_object_get(w, "running"), *r;
			size_t j;
			printf("%-6lld  %-20s  %-8lld  %-5s  %-14s ", num(w, "id"), str(w, "host"), num(w, "pid"),
			       json_is_true(json_object_get(w, "alive")) ? "yes" : "no",
			       short_time(str(w, "heartbeat_at"), t, sizeof(t)));
			json_array_foreach(run, j, r)
				printf(" %s#%lld", str(r, "type"), num(r, "id"));
			putchar('\n');
		}
	}
	json_decref(v);
	return EXIT_OK;
}
