/* common.c - see cli.h. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "db.h"
#include "jsontext.h"
#include "pgembed.h"
#include "utf8.h"

void cli_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "lote%s%s: ", cmd ? " " : "", cmd ? cmd : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_exit_for(int code)
{
	switch (code) {
	case 0: return EXIT_OK;
	case LOTE_EINVAL: return EXIT_USAGE;
	case LOTE_ECONN: case LOTE_ESCHEMA: return EXIT_DB;
	case LOTE_ENOTFOUND: return EXIT_NOTFOUND;
	default: return EXIT_FAIL;
	}
}

int cli_wants_help(int argc, char **argv, const char *usage)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(usage, stdout);
			return 1;
		}
	}
	return 0;
}

PGconn *cli_connect(const char *cmd, char **ret_conninfo)
{
	lote_error err = { 0 };
	char *info = NULL, app[64];
	PGconn *conn = NULL;

	if (lote__db_resolve(&info, &err) < 0) {
		cli_error(cmd, "%s", err.message);
		return NULL;
	}
	snprintf(app, sizeof(app), "lote %s", cmd);
	if (lote__db_connect(info, app, &conn, &err) < 0) {
		cli_error(cmd, "%s", err.message);
		free(info);
		return NULL;
	}
	if (ret_conninfo)
		*ret_conninfo = info;
	else
		free(info);
	return conn;
}

PGconn *cli_connect_ready(const char *cmd, char **ret_conninfo)
{
	lote_error err = { 0 };
	PGconn *conn = cli_connect(cmd, ret_conninfo);

	if (!conn)
		return NULL;
	if (lote_schema_check(conn, &err) < 0) {
		cli_error(cmd, "%s", err.message);
		PQfinish(conn);
		if (ret_conninfo) {
			free(*ret_conninfo);
			*ret_conninfo = NULL;
		}
		return NULL;
	}
	return conn;
}

int cli_json_only(const char *cmd, int argc, char **argv, const char *usage, bool *ret_json)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	*ret_json = false;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage, stdout);
			return EXIT_OK;
		}
		if (c != 'j') {
			fprintf(stderr, "see lote %s --help\n", cmd);
			return EXIT_USAGE;
		}
		*ret_json = true;
	}
	if (optind < argc) {
		cli_error(cmd, "unexpected argument \"%s\"", argv[optind]);
		return EXIT_USAGE;
	}
	/* "go on" must differ from EXIT_OK after --help */
	return -1;
}

void cli_print_json(const json_t *v)
{
	char *s = lote__json_text(v, JSON_INDENT(2));
	puts(s ? s : "null");
	free(s);
}

const char *cli_format_ms(double ms, char *buf, size_t len)
{
	char num[48];

	snprintf(num, sizeof(num), "%.3f", ms);
	/* drop the trailing zeros of the decimals, then a bare '.' */
	if (strchr(num, '.')) {
		size_t n = strlen(num);
		while (num[n - 1] == '0')
			num[--n] = '\0';
		if (num[n - 1] == '.')
			num[--n] = '\0';
	}
	snprintf(buf, len, "%s ms", strcmp(num, "-0") == 0 ? "0" : num);
	return buf;
}

int cli_parse_int64(const char *s, int64_t *ret)
{
	const char *digits = s && *s == '-' ? s + 1 : s;
	char *end;
	long long v;

	/* strtoll also takes leading blanks and '+': not here */
	if (!digits || !isdigit((unsigned char)*digits))
		return CLI_NUM_BAD;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end)
		return CLI_NUM_BAD;
	if (errno == ERANGE)
		return CLI_NUM_RANGE;
	*ret = (int64_t)v;
	return 0;
}

int cli_parse_id(const char *cmd, const char *s, int64_t *ret)
{
	int64_t v = 0;
	int rc = cli_parse_int64(s, &v);

	if (rc == CLI_NUM_RANGE && *s != '-') {
		cli_error(cmd, "\"%s\" is not an id: out of range (ids go up to %lld)", s,
		          (long long)INT64_MAX);
		return -1;
	}
	if (rc < 0 || v <= 0) {
		cli_error(cmd, "\"%s\" is not an id (a positive integer)", s);
		return -1;
	}
	*ret = v;
	return 0;
}

bool cli_valid_utf8(const char *s, size_t *ret_offset)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s);

	for (size_t i = 0; i < len;) {
		size_t n = lote__utf8_seq(p + i, len - i);
		if (n == 0) {
			if (ret_offset)
				*ret_offset = i;
			return false;
		}
		i += n;
	}
	return true;
}
