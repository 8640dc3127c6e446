/* pgembed.c - the embedded PostgreSQL cluster (see pgembed.h).
 *
 * HOME (LOTE_HOME, else ./.lote) holds what lote itself writes:
 *   HOME/lock              flock'd while checking, creating, starting and
 *                          stopping the cluster: concurrent lote processes
 *                          take turns, so only the first one runs initdb
 *   HOME/pg.log            output of initdb, pg_ctl, postgres --single,
 *                          useradd (appended, each run under a "== " line)
 *   HOME/cluster-location  only when the cluster lives elsewhere: the path
 *                          of its data directory
 * The cluster directory CDIR is HOME itself, or /var/lib/lote/clusters/HASH
 * when lote runs as root and the postgres user cannot enter HOME:
 *   CDIR/pgdata       the data directory. initdb writes CDIR/pgdata.new,
 *                     renamed once the `lote` database exists in it, so
 *                     "pgdata exists" means "fully initialised"
 *   CDIR/run          the socket directory, private to the cluster's user
 *   CDIR/server.log   the server's own log
 *
 * PostgreSQL refuses to run as root, so as root every server program runs
 * as the owner of the data directory: the `postgres` system user, created
 * when missing. As anyone else the cluster runs as that user.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <grp.h>
#include <locale.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "error.h"
#include "pgembed.h"

#define PGE_PORT "5432"
#define PGE_CLUSTERS "/var/lib/lote/clusters"
/* sun_path holds 107 characters; PostgreSQL puts "/.s.PGSQL.5432.lock"
 * (19) after the socket directory. */
#define PGE_SOCKDIR_MAX (107 - 19)
#define PGE_TAIL 600 /* the most of a log quoted in an error */

/* One cluster, resolved from its home. Every string is owned. */
struct pge {
	char *home;
	char *cdir;       /* HOME, or the relocated cluster directory */
	char *data;       /* CDIR/pgdata */
	char *sock;       /* socket directory */
	char *slog;       /* CDIR/server.log */
	bool relocated;   /* HOME/cluster-location names the data directory */
	char *bindir;     /* server programs; found on first use */
	int lockfd;       /* HOME/lock, -1 until locked */
	int logfd;        /* HOME/pg.log, -1 until opened */
	/* The user the server programs run as, when lote is root. */
	bool switch_user;
	uid_t uid;
	gid_t gid;
	gid_t groups[64];
	int ngroups;
};

static void pge_free(struct pge *c)
{
	free(c->home);
	free(c->cdir);
	free(c->data);
	free(c->sock);
	free(c->slog);
	free(c->bindir);
	if (c->logfd >= 0)
		close(c->logfd);
	if (c->lockfd >= 0)
		close(c->lockfd); /* also releases the flock */
}

static int join(char **ret, lote_error *err, const char *fmt, ...) LOTE_PRINTF(3, 4);
static int join(char **ret, lote_error *err, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	free(*ret);
	*ret = s;
	return 0;
}

/* FNV-1a: names a relocated cluster or socket directory after a path. */
static uint64_t path_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The first line of a small file (malloc'd); LOTE_ENOTFOUND if missing. */
static int read_line(const char *path, char **ret, lote_error *err)
{
	char buf[4096];
	size_t n;
	FILE *f = fopen(path, "r");

	if (!f) {
		if (errno == ENOENT)
			return LOTE_ENOTFOUND;
		return lote__fail_errno(err, "cannot read %s", path);
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (!(*ret = strdup(buf)))
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	return 0;
}

/* Reads from offset (or the last PGE_TAIL bytes, whichever is later) of a
 * log into buf, from a line start, trimmed: what a failed program said. */
static const char *log_tail(const char *path, off_t offset, char *buf, size_t len)
{
	struct stat st;
	ssize_t n;
	char *s = buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	buf[0] = '\0';
	if (fd < 0)
		return buf;
	if (fstat(fd, &st) == 0 && st.st_size - offset > (off_t)len - 1)
		offset = st.st_size - (off_t)len + 1;
	n = pread(fd, buf, len - 1, offset < 0 ? 0 : offset);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	if (n == (ssize_t)len - 1 && strchr(buf, '\n'))
		s = strchr(buf, '\n') + 1;
	n = (ssize_t)strlen(s);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
	return s;
}

/* Quotes a conninfo value when it needs it (libpq's '...' with \ escapes). */
static int conn_value(char **ret, const char *v, lote_error *err)
{
	size_t n = strlen(v);
	char *q, *p;

	if (*v && !strpbrk(v, " \t\n'\\=")) {
		if (!(*ret = strdup(v)))
			return lote__fail(err, LOTE_ENOMEM, "out of memory");
		return 0;
	}
	if (!(q = p = malloc(2 * n + 3)))
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	*p++ = '\'';
	for (; *v; v++) {
		if (*v == '\'' || *v == '\\')
			*p++ = '\\';
		*p++ = *v;
	}
	*p++ = '\'';
	*p = '\0';
	*ret = q;
	return 0;
}

static int conninfo(const struct pge *c, const char *db, char **ret, lote_error *err)
{
	char *host = NULL, *s = NULL;
	int rc = conn_value(&host, c->sock, err);

	if (rc == 0)
		rc = join(&s, err, "host=%s port=" PGE_PORT " user=postgres dbname=%s", host, db);
	free(host);
	if (rc == 0)
		*ret = s;
	return rc;
}

/* Whether the server answers on its socket (ping: no database needed). */
static PGPing pge_ping(const struct pge *c)
{
	char *info = NULL;
	PGPing p = PQPING_NO_ATTEMPT;

	if (conninfo(c, "postgres", &info, NULL) == 0)
		p = PQping(info);
	free(info);
	return p;
}

/* Resolves the paths of home's cluster; creates nothing. */
static int pge_layout(struct pge *c, const char *home, lote_error *err)
{
	char *loc = NULL, *tmp = NULL;
	int rc;

	if (!c->home && !(c->home = strdup(home)))
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	if ((rc = join(&tmp, err, "%s/cluster-location", home)) < 0)
		return rc;
	rc = read_line(tmp, &loc, err);
	free(tmp);
	if (rc == 0 && loc[0] != '/') {
		rc = lote__fail(err, LOTE_ESTATE, "%s/cluster-location does not hold an absolute path", home);
		free(loc);
		return rc;
	}
	if (rc == 0) {
		free(c->data);
		c->data = loc;
		c->relocated = true;
		if ((rc = join(&c->cdir, err, "%s", loc)) < 0)
			return rc;
		*strrchr(c->cdir, '/') = '\0';
	} else if (rc == LOTE_ENOTFOUND) {
		c->relocated = false;
		if ((rc = join(&c->cdir, err, "%s", home)) < 0 ||
		    (rc = join(&c->data, err, "%s/pgdata", home)) < 0)
			return rc;
	} else {
		return rc;
	}
	if ((rc = join(&c->slog, err, "%s/server.log", c->cdir)) < 0 ||
	    (rc = join(&c->sock, err, "%s/run", c->cdir)) < 0)
		return rc;
	/* A deep home cannot hold a socket: use a short name in /tmp then,
	 * still private (pge_own_dir checks its owner). */
	if (strlen(c->sock) > PGE_SOCKDIR_MAX)
		rc = join(&c->sock, err, "/tmp/lote-%016llx",
		          (unsigned long long)path_hash(c->cdir));
	return rc;
}

/* Makes the server programs run as user pw (when lote is root). The group
 * list is computed here because between fork and exec only async-signal-
 * safe calls are allowed (lote may have threads). */
static int pge_set_user(struct pge *c, const struct passwd *pw, lote_error *err)
{
	c->ngroups = (int)(sizeof(c->groups) / sizeof(c->groups[0]));
	if (getgrouplist(pw->pw_name, pw->pw_gid, c->groups, &c->ngroups) < 0) {
		c->groups[0] = pw->pw_gid;
		c->ngroups = 1;
	}
	c->switch_user = true;
	c->uid = pw->pw_uid;
	c->gid = pw->pw_gid;
	return 0;
}

/* Writes "== time pid: argv" to pg.log so that each run can be told apart
 * (and initdb runs counted). */
static void log_header(const struct pge *c, char *const argv[])
{
	char when[32];
	time_t now = time(NULL);
	struct tm tm;

	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
	dprintf(c->logfd, "== %s lote[%d]:", when, (int)getpid());
	for (int i = 0; argv[i]; i++)
		dprintf(c->logfd, " %s", argv[i]);
	dprintf(c->logfd, "\n");
}

/* Runs argv[0] with stdout and stderr to pg.log, stdin from input (may be
 * NULL: /dev/null), as the cluster's user when as_owner, and waits for it.
 * *ret_status gets the exit status (128+signal when killed). */
static int pge_run(struct pge *c, bool as_owner, char *const argv[],
                   const char *input, int *ret_status, lote_error *err)
{
	int in[2] = { -1, -1 }, st = 0, devnull;
	pid_t pid;

	log_header(c, argv);
	if ((devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		return lote__fail_errno(err, "cannot open /dev/null");
	if (input && pipe2(in, O_CLOEXEC) < 0) {
		close(devnull);
		return lote__fail_errno(err, "pipe");
	}
	pid = fork();
	if (pid < 0) {
		lote__fail_errno(err, "fork");
		goto fail;
	}
	if (pid == 0) {
		/* Only async-signal-safe calls from here to exec. */
		if (dup2(input ? in[0] : devnull, 0) < 0 || dup2(c->logfd, 1) < 0 ||
		    dup2(c->logfd, 2) < 0)
			_exit(127);
		/* Nothing else of ours (the lock above all) may live on in a
		 * postmaster. */
		close_range(3, ~0U, 0);
		if (as_owner && c->switch_user &&
		    (setgroups((size_t)c->ngroups, c->groups) < 0 ||
		     setgid(c->gid) < 0 || setuid(c->uid) < 0))
			_exit(126);
		/* The caller's directory may be closed to that user. */
		if (chdir("/") < 0)
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	if (input) {
		/* Our own read end stays open while writing, so a child that
		 * quit early cannot SIGPIPE us; input is small (pipe buffer). */
		size_t len = strlen(input);
		for (size_t off = 0; off < len;) {
			ssize_t n = write(in[1], input + off, len - off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				break;
			off += (size_t)n;
		}
		close(in[1]);
		close(in[0]);
	}
	close(devnull);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return lote__fail_errno(err, "waitpid %s", argv[0]);
	*ret_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return 0;
fail:
	if (in[0] >= 0) {
		close(in[0]);
		close(in[1]);
	}
	close(devnull);
	return LOTE_ESYS;
}

/* Runs argv and fails with the tail of what it wrote (to pg.log, or to the
 * server log when server_log) unless it exits 0. */
static int pge_must_run(struct pge *c, bool as_owner, char *const argv[],
                        const char *input, bool server_log, int code,
                        lote_error *err)
{
	char tail[PGE_TAIL + 1], *logp = NULL;
	const char *path;
	off_t at;
	int st = 0, rc;

	if ((rc = join(&logp, err, "%s/pg.log", c->home)) < 0)
		return rc;
	path = server_log ? c->slog : logp;
	{
		struct stat sb;
		at = stat(path, &sb) == 0 ? sb.st_size : 0;
	}
	if ((rc = pge_run(c, as_owner, argv, input, &st, err)) < 0)
		goto done;
	if (st != 0)
		rc = lote__fail(err, code, "%s failed (exit status %d): %s (see %s)",
		                strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0],
		                st, log_tail(path, at, tail, sizeof(tail)), path);
done:
	free(logp);
	return rc;
}

/* Runs `pg_config --bindir`; NULL when pg_config is missing or fails. */
static char *pg_config_bindir(void)
{
	char buf[4096];
	int fd[2], st = 0;
	ssize_t n, got = 0;
	pid_t pid;

	if (pipe2(fd, O_CLOEXEC) < 0)
		return NULL;
	pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);
		if (dup2(fd[1], 1) < 0 || dup2(devnull, 2) < 0 || dup2(devnull, 0) < 0)
			_exit(127);
		execlp("pg_config", "pg_config", "--bindir", (char *)NULL);
		_exit(127);
	}
	close(fd[1]);
	while (pid > 0 && got < (ssize_t)sizeof(buf) - 1 &&
	       ((n = read(fd[0], buf + got, sizeof(buf) - 1 - (size_t)got)) > 0 ||
	        (n < 0 && errno == EINTR)))
		got += n > 0 ? n : 0;
	close(fd[0]);
	if (pid < 0)
		return NULL;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return NULL;
	buf[got] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return buf[0] ? strdup(buf) : NULL;
}

static bool has_initdb(const char *bindir)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/initdb", bindir);
	return access(path, X_OK) == 0;
}

/* Finds the server programs: $LOTE_PG_BINDIR; else those of the data
 * directory's major version when installed; else `pg_config --bindir`;
 * else the newest /usr/lib/postgresql/N/bin. */
static int pge_bindir(struct pge *c, lote_error *err)
{
	const char *env = getenv("LOTE_PG_BINDIR");
	char *major = NULL, *path = NULL, *found = NULL;
	glob_t g = { 0 };
	int rc = 0;

	if (c->bindir)
		return 0;
	if (env && *env) {
		if (!has_initdb(env))
			return lote__fail(err, LOTE_ENOTFOUND,
			                  "LOTE_PG_BINDIR=%s has no initdb in it", env);
		if (!(c->bindir = strdup(env)))
			return lote__fail(err, LOTE_ENOMEM, "out of memory");
		return 0;
	}
	if ((rc = join(&path, err, "%s/PG_VERSION", c->data)) < 0)
		return rc;
	if (read_line(path, &major, NULL) == 0 &&
	    join(&path, err, "/usr/lib/postgresql/%s/bin", major) == 0 &&
	    has_initdb(path)) {
		found = path;
		path = NULL;
	}
	free(major);
	free(path);
	if (!found && (found = pg_config_bindir()) && !has_initdb(found)) {
		free(found);
		found = NULL;
	}
	if (!found && glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) == 0) {
		const char *best = NULL;
		for (size_t i = 0; i < g.gl_pathc; i++)
			if (!best || strverscmp(g.gl_pathv[i], best) > 0)
				best = g.gl_pathv[i];
		if (best && (found = strdup(best)))
			*strrchr(found, '/') = '\0';
		globfree(&g);
	}
	if (!found)
		return lote__fail(err, LOTE_ENOTFOUND,
		                  "the PostgreSQL server programs (initdb, pg_ctl) are not installed: "
		                  "install the Debian package postgresql-15 (or set LOTE_PG_BINDIR, "
		                  "or LOTE_DATABASE_URL to use another server)");
	c->bindir = found;
	return 0;
}

/* mkdir -p of a directory lote itself owns (home and its parents). */
static int mkdir_p(const char *path, mode_t mode, lote_error *err)
{
	char *p = strdup(path);
	int rc = 0;

	if (!p)
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST) {
			rc = lote__fail_errno(err, "cannot create %s", p);
			break;
		}
		*s = c;
		if (!c)
			break;
	}
	free(p);
	if (rc == 0 && !is_dir(path))
		rc = lote__fail(err, LOTE_ESTATE, "%s exists and is not a directory", path);
	return rc;
}

/* Creates (or checks) a directory that belongs to the cluster's user,
 * mode 0700. An existing one must already be that user's: it may be a
 * socket directory in /tmp, where anyone could have made it first. */
static int pge_own_dir(const struct pge *c, const char *path, lote_error *err)
{
	uid_t uid = c->switch_user ? c->uid : geteuid();
	struct stat st;

	if (mkdir(path, 0700) == 0) {
		if (c->switch_user && chown(path, c->uid, c->gid) < 0)
			return lote__fail_errno(err, "cannot give %s to the cluster's user", path);
		return 0;
	}
	if (errno != EEXIST)
		return lote__fail_errno(err, "cannot create %s", path);
	if (lstat(path, &st) < 0)
		return lote__fail_errno(err, "cannot stat %s", path);
	if (!S_ISDIR(st.st_mode) || st.st_uid != uid)
		return lote__fail(err, LOTE_ESTATE,
		                  "%s is not a directory of the cluster's user (uid %d): remove it",
		                  path, (int)uid);
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return (flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT ? -1 : 0;
}

/* The `postgres` system user, created when missing (lote runs as root). */
static int pge_postgres_user(struct pge *c, lote_error *err)
{
	char *argv[] = { "useradd", "--system", "--home-dir", "/var/lib/postgresql",
	                 "--no-create-home", "--shell", "/bin/sh", "postgres", NULL };
	struct passwd *pw = getpwnam("postgres");
	int st = 0, rc;

	if (!pw) {
		/* useradd may be in /usr/sbin or /sbin; a concurrent lote may
		 * create the user first, so only the lookup after it counts. */
		argv[0] = access("/usr/sbin/useradd", X_OK) == 0 ? "/usr/sbin/useradd" : "/sbin/useradd";
		if ((rc = pge_run(c, false, argv, NULL, &st, err)) < 0)
			return rc;
		pw = getpwnam("postgres");
	}
	if (!pw)
		return lote__fail(err, LOTE_ESYS,
		                  "PostgreSQL cannot run as root and the `postgres` user could not be "
		                  "created (useradd exit status %d, see %s/pg.log)", st, c->home);
	return pge_set_user(c, pw, err);
}

/* Whether the cluster's user can enter path (tried as that user). */
static bool pge_can_enter(const struct pge *c, const char *path)
{
	int st = 0;
	pid_t pid = fork();

	if (pid == 0) {
		if (setgroups((size_t)c->ngroups, c->groups) < 0 || setgid(c->gid) < 0 ||
		    setuid(c->uid) < 0)
			_exit(2);
		_exit(access(path, X_OK) == 0 ? 0 : 1);
	}
	if (pid < 0)
		return false;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Root only, before initdb: when the postgres user cannot enter home,
 * moves the cluster to PGE_CLUSTERS/HASH, records that in
 * home/cluster-location and says so on stderr (the interface allows it). */
static int pge_relocate(struct pge *c, lote_error *err)
{
	char *cdir = NULL, *loc = NULL, *tmp = NULL;
	FILE *f = NULL;
	int rc;

	if (pge_can_enter(c, c->home))
		return 0;
	if ((rc = join(&cdir, err, PGE_CLUSTERS "/%016llx",
	               (unsigned long long)path_hash(c->home))) < 0 ||
	    (rc = join(&loc, err, "%s/cluster-location", c->home)) < 0 ||
	    (rc = join(&tmp, err, "%s.new", loc)) < 0)
		goto done;
	if ((rc = mkdir_p(PGE_CLUSTERS, 0755, err)) < 0 ||
	    (rc = pge_own_dir(c, cdir, err)) < 0)
		goto done;
	/* Written aside and renamed: a reader sees all of it or nothing. */
	if (!(f = fopen(tmp, "w")) || fprintf(f, "%s/pgdata\n", cdir) < 0 ||
	    fclose(f) != 0) {
		f = NULL;
		rc = lote__fail_errno(err, "cannot write %s", tmp);
		goto done;
	}
	f = NULL;
	if (rename(tmp, loc) < 0) {
		rc = lote__fail_errno(err, "cannot write %s", loc);
		goto done;
	}
	if ((rc = pge_layout(c, c->home, err)) < 0)
		goto done;
	fprintf(stderr, "lote: PostgreSQL cluster for %s lives in %s (the postgres user cannot enter %s)\n",
	        c->home, c->data, c->home);
done:
	if (f)
		fclose(f);
	free(cdir);
	free(loc);
	free(tmp);
	return rc;
}

/* initdb into pgdata.new, configure, create the `lote` database, then
 * rename to pgdata. Runs under the lock. */
static int pge_create(struct pge *c, lote_error *err)
{
	static const char conf[] =
		"\n# Added by lote: an embedded cluster reached only through its\n"
		"# private unix socket (no TCP).\n"
		"listen_addresses = ''\n"
		"port = " PGE_PORT "\n"
		"unix_socket_permissions = 0700\n"
		"max_connections = 100\n"
		"shared_buffers = 128MB\n"
		"log_min_messages = warning\n"
		"log_timezone = 'UTC'\n";
	char *tmp = NULL, *initdb = NULL, *postgres = NULL, *confp = NULL, *locale = NULL;
	locale_t probe;
	FILE *f = NULL;
	int rc;

	if (geteuid() == 0) {
		if ((rc = pge_postgres_user(c, err)) < 0)
			goto done;
		if (!c->relocated && (rc = pge_relocate(c, err)) < 0)
			goto done;
		if (c->relocated && (rc = pge_own_dir(c, c->cdir, err)) < 0)
			goto done;
	}
	/* postgresql.conf quotes it with '...'. */
	if (strchr(c->sock, '\'')) {
		rc = lote__fail(err, LOTE_EINVAL, "the socket directory %s has a quote in its name", c->sock);
		goto done;
	}
	if ((rc = pge_bindir(c, err)) < 0 ||
	    (rc = join(&tmp, err, "%s.new", c->data)) < 0 ||
	    (rc = join(&initdb, err, "%s/initdb", c->bindir)) < 0 ||
	    (rc = join(&postgres, err, "%s/postgres", c->bindir)) < 0 ||
	    (rc = join(&confp, err, "%s/postgresql.conf", tmp)) < 0)
		goto done;
	/* C.UTF-8 sorts by code point and handles all of Unicode; plain C
	 * where it is not installed. */
	probe = newlocale(LC_ALL_MASK, "C.UTF-8", (locale_t)0);
	if ((rc = join(&locale, err, "--locale=%s", probe ? "C.UTF-8" : "C")) < 0)
		goto done;
	if (probe)
		freelocale(probe);
	/* A leftover is an initdb that died half-way: we hold the lock, so
	 * nobody else is writing it. */
	if (is_dir(tmp) && nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0) {
		rc = lote__fail_errno(err, "cannot remove the unfinished %s", tmp);
		goto done;
	}
	if ((rc = pge_own_dir(c, tmp, err)) < 0)
		goto done;
	{
		char *argv[] = { initdb, "-D", tmp, "-U", "postgres", "--auth=trust",
		                 "-E", "UTF8", locale, NULL };
		if ((rc = pge_must_run(c, true, argv, NULL, false, LOTE_ESYS, err)) < 0)
			goto done;
	}
	if (!(f = fopen(confp, "a")) || fputs(conf, f) < 0 ||
	    fprintf(f, "unix_socket_directories = '%s'\n", c->sock) < 0 || fclose(f) != 0) {
		f = NULL;
		rc = lote__fail_errno(err, "cannot write %s", confp);
		goto done;
	}
	f = NULL;
	{
		/* Single-user mode: the database exists before pgdata does. */
		char *argv[] = { postgres, "--single", "-D", tmp, "-c", "exit_on_error=on",
		                 "postgres", NULL };
		if ((rc = pge_must_run(c, true, argv, "CREATE DATABASE lote;\n", false,
		                       LOTE_ESYS, err)) < 0)
			goto done;
	}
	if (rename(tmp, c->data) < 0)
		rc = lote__fail_errno(err, "cannot rename %s to %s", tmp, c->data);
done:
	if (f)
		fclose(f);
	free(tmp);
	free(initdb);
	free(postgres);
	free(confp);
	free(locale);
	return rc;
}

/* As root, the server programs run as the owner of the data directory. */
static int pge_owner(struct pge *c, lote_error *err)
{
	struct stat st;
	struct passwd *pw;

	if (geteuid() != 0)
		return 0;
	if (stat(c->data, &st) < 0)
		return lote__fail_errno(err, "cannot stat %s", c->data);
	if (st.st_uid == 0)
		return lote__fail(err, LOTE_ESTATE,
		                  "the data directory %s belongs to root, and PostgreSQL refuses to run as root",
		                  c->data);
	if (!(pw = getpwuid(st.st_uid)))
		return lote__fail(err, LOTE_ESTATE, "the owner (uid %d) of %s is not a known user",
		                  (int)st.st_uid, c->data);
	return pge_set_user(c, pw, err);
}

/* The pid in the first line of postmaster.pid, 0 when there is none. */
static long pge_pid(const struct pge *c)
{
	char *path = NULL, *line = NULL;
	long pid = 0;

	if (join(&path, NULL, "%s/postmaster.pid", c->data) == 0 &&
	    read_line(path, &line, NULL) == 0)
		pid = strtol(line, NULL, 10);
	free(path);
	free(line);
	return pid;
}

/* Whether pid is a live process (a zombie is not: it only waits for its
 * parent, often an init that reaps slowly, to collect it). */
static bool pid_alive(long pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	size_t n;

	if (pid <= 0 || (kill((pid_t)pid, 0) < 0 && errno != EPERM))
		return false;
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if (!(f = fopen(path, "r")))
		return true;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return !(p && p[1] == ' ' && p[2] == 'Z');
}

/* pg_ctl start, unless the server already answers. Runs under the lock. */
static int pge_start(struct pge *c, lote_error *err)
{
	char *pg_ctl = NULL;
	int rc, fd;

	if (pge_ping(c) == PQPING_OK)
		return 0;
	if ((rc = pge_bindir(c, err)) < 0 ||
	    (rc = join(&pg_ctl, err, "%s/pg_ctl", c->bindir)) < 0 ||
	    (rc = pge_own_dir(c, c->sock, err)) < 0)
		goto done;
	/* pg_ctl opens the server log as the cluster's user, who may not be
	 * able to create it in home. */
	if ((fd = open(c->slog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0) {
		rc = lote__fail_errno(err, "cannot create %s", c->slog);
		goto done;
	}
	if (c->switch_user && fchown(fd, c->uid, c->gid) < 0) {
		rc = lote__fail_errno(err, "cannot give %s to the cluster's user", c->slog);
		close(fd);
		goto done;
	}
	close(fd);
	{
		char *argv[] = { pg_ctl, "-D", c->data, "-l", c->slog, "-w", "-t", "60",
		                 "start", NULL };
		/* After a kill -9 of the postmaster, postmaster.pid stays and
		 * PostgreSQL refuses to start while that pid lingers as a zombie
		 * or its backends still hold the shared memory: wait it out. */
		bool stale = pge_pid(c) > 0 && !pid_alive(pge_pid(c));
		int64_t deadline = lote__mono_ms() + 15000;
		while ((rc = pge_must_run(c, true, argv, NULL, true, LOTE_ECONN, err)) < 0 &&
		       stale && lote__mono_ms() < deadline)
			usleep(300 * 1000);
	}
done:
	free(pg_ctl);
	return rc;
}

/* Opens pg.log and takes the lock of home (creating home when create). */
static int pge_lock(struct pge *c, bool create, lote_error *err)
{
	char *path = NULL;
	int rc;

	if (create && (rc = mkdir_p(c->home, 0755, err)) < 0)
		return rc;
	if ((rc = join(&path, err, "%s/pg.log", c->home)) < 0)
		return rc;
	c->logfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (c->logfd < 0) {
		rc = lote__fail_errno(err, "cannot open %s", path);
		goto done;
	}
	if ((rc = join(&path, err, "%s/lock", c->home)) < 0)
		goto done;
	/* O_CLOEXEC: a postmaster started under the lock must not inherit it
	 * (flock locks belong to the open file, not to the process). */
	c->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (c->lockfd < 0) {
		rc = lote__fail_errno(err, "cannot open %s", path);
		goto done;
	}
	while (flock(c->lockfd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			rc = lote__fail_errno(err, "cannot lock %s", path);
			goto done;
		}
	}
done:
	free(path);
	return rc;
}

int lote__pg_home(char **ret_home, lote_error *err)
{
	const char *env = getenv("LOTE_HOME");
	char *cwd = NULL, *home = NULL;
	int rc = 0;

	if (env && *env == '/') {
		rc = join(&home, err, "%s", env);
	} else {
		if (!(cwd = getcwd(NULL, 0)))
			return lote__fail_errno(err, "cannot get the current directory");
		rc = join(&home, err, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd,
		          env && *env ? env : ".lote");
	}
	free(cwd);
	if (rc < 0)
		return rc;
	/* One spelling per home: it names the relocated cluster. */
	for (size_t n = strlen(home); n > 1 && home[n - 1] == '/';)
		home[--n] = '\0';
	*ret_home = home;
	return 0;
}

int lote__db_resolve(char **ret_conninfo, lote_error *err)
{
	const char *url = getenv("LOTE_DATABASE_URL");
	char *home = NULL;
	int rc;

	if (url && *url) {
		if (!(*ret_conninfo = strdup(url)))
			return lote__fail(err, LOTE_ENOMEM, "out of memory");
		return 0;
	}
	if ((rc = lote__pg_home(&home, err)) < 0)
		return rc;
	rc = lote__pg_ensure(home, ret_conninfo, err);
	free(home);
	return rc;
}

int lote__pg_ensure(const char *home, char **ret_conninfo, lote_error *err)
{
	struct pge c = { .lockfd = -1, .logfd = -1 };
	char *info = NULL;
	int rc;

	if ((rc = pge_layout(&c, home, err)) < 0 || (rc = pge_lock(&c, true, err)) < 0)
		goto done;
	/* Again under the lock: another lote may have relocated it. */
	if ((rc = pge_layout(&c, home, err)) < 0)
		goto done;
	if (!is_dir(c.data) && (rc = pge_create(&c, err)) < 0)
		goto done;
	if ((rc = pge_owner(&c, err)) < 0 || (rc = pge_start(&c, err)) < 0 ||
	    (rc = conninfo(&c, "lote", &info, err)) < 0)
		goto done;
	*ret_conninfo = info;
done:
	pge_free(&c);
	return rc;
}

int lote__pg_status(const char *home, FILE *out, lote_error *err)
{
	struct pge c = { .lockfd = -1, .logfd = -1 };
	char *info = NULL, *version = NULL, *path = NULL;
	PGPing ping;
	long pid;
	int rc;

	if ((rc = pge_layout(&c, home, err)) < 0)
		goto done;
	fprintf(out, "home:       %s\n", c.home);
	if (!is_dir(c.data)) {
		fprintf(out, "data:       %s\n"
		             "state:      not created (lote creates it on first use, "
		             "e.g. `lote migrate` or `lote pg start`)\n", c.data);
		rc = LOTE_ENOTFOUND;
		goto done;
	}
	fprintf(out, "data:       %s%s\n", c.data,
	        c.relocated ? " (outside home: the postgres user cannot enter it)" : "");
	if ((rc = conninfo(&c, "lote", &info, err)) < 0)
		goto done;
	ping = pge_ping(&c);
	pid = pge_pid(&c);
	if (ping == PQPING_OK) {
		PGconn *conn = NULL;
		fprintf(out, "state:      running (pid %ld)\n", pid);
		if (lote__db_connect(info, "lote pg status", &conn, NULL) == 0) {
			if (lote__db_value(conn, "SHOW server_version", 0, NULL, &version, NULL) < 0)
				version = NULL;
			PQfinish(conn);
		}
	} else if (ping == PQPING_REJECT) {
		fprintf(out, "state:      starting or stopping (pid %ld)\n", pid);
		rc = LOTE_ENOTFOUND;
	} else if (pid_alive(pid)) {
		fprintf(out, "state:      not answering on its socket (pid %ld)\n", pid);
		rc = LOTE_ENOTFOUND;
	} else {
		fprintf(out, "state:      stopped\n");
		rc = LOTE_ENOTFOUND;
	}
	if (!version && join(&path, NULL, "%s/PG_VERSION", c.data) == 0)
		(void)read_line(path, &version, NULL);
	fprintf(out, "socket:     %s\n"
	             "server log: %s\n"
	             "conninfo:   %s\n"
	             "version:    PostgreSQL %s\n",
	        c.sock, c.slog, info, version ? version : "(unknown)");
done:
	free(info);
	free(version);
	free(path);
	pge_free(&c);
	return rc;
}

int lote__pg_stop(const char *home, lote_error *err)
{
	struct pge c = { .lockfd = -1, .logfd = -1 };
	char *pg_ctl = NULL;
	int rc, st = 0;

	if ((rc = pge_layout(&c, home, err)) < 0)
		goto done;
	if (!is_dir(c.home) || !is_dir(c.data))
		goto done; /* never created: nothing runs */
	if ((rc = pge_lock(&c, false, err)) < 0 || (rc = pge_layout(&c, home, err)) < 0 ||
	    (rc = pge_owner(&c, err)) < 0 || (rc = pge_bindir(&c, err)) < 0 ||
	    (rc = join(&pg_ctl, err, "%s/pg_ctl", c.bindir)) < 0)
		goto done;
	{
		/* status exits 3 when no server runs (a stale pid file included). */
		char *argv[] = { pg_ctl, "-D", c.data, "status", NULL };
		if ((rc = pge_run(&c, true, argv, NULL, &st, err)) < 0 || st == 3)
			goto done;
	}
	{
		char *argv[] = { pg_ctl, "-D", c.data, "-m", "fast", "-w", "-t", "60",
		                 "stop", NULL };
		rc = pge_must_run(&c, true, argv, NULL, false, LOTE_ESYS, err);
	}
done:
	free(pg_ctl);
	pge_free(&c);
	return rc;
}
