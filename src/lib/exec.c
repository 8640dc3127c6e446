/* exec.c - handlers in any language (see exec.h and docs/config.md).
 *
 * One run: the command (or event) as a JSON object on the program's stdin,
 * LOTE_* variables in its environment, stdout and stderr collected through
 * pipes with poll() so that neither side can block the other, the process
 * group killed at the timeout. Then the exit status decides, and stdout may
 * ask for commands to be enqueued in the handler's own transaction. Only
 * the public lote_ctx_* API is used, so exec handlers are ordinary handlers
 * to the engine. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db.h"
#include "error.h"
#include "exec.h"
#include "jsontext.h"
#include "utf8.h"

extern char **environ;

/* Bytes moved per read()/write() on the pipes. */
#define IO_CHUNK 65536
/* Without a pidfd (old kernels) the exit is noticed by polling this often. */
#define REAP_POLL_MS 100
/* After the program exits, at most this much stderr is still read (a
 * grandchild holding the pipe could otherwise keep us reading forever). */
#define DRAIN_MAX (1024 * 1024)
/* Room for the fixed words around the stderr tail in an error message. */
#define MESSAGE_MAX (LOTE_EXEC_STDERR_TAIL + 256)

struct lote__exec {
	char *program;      /* owned; run with /bin/sh -c */
	int64_t timeout_ms; /* 0: no limit of its own */
};

int lote__exec_new(const char *program, int64_t timeout_ms,
                   lote__exec **ret_exec, lote_error *err)
{
	lote__exec *x;

	if (!program || !*program)
		return lote__fail(err, LOTE_EINVAL, "exec: empty program");
	if (timeout_ms < 0)
		return lote__fail(err, LOTE_EINVAL, "exec: negative timeout");
	x = calloc(1, sizeof(*x));
	if (!x || !(x->program = strdup(program))) {
		free(x);
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	}
	x->timeout_ms = timeout_ms;
	*ret_exec = x;
	return 0;
}

void lote__exec_free(void *exec)
{
	lote__exec *x = exec;

	if (x)
		free(x->program);
	free(x);
}

/* ---------------------------------------------------------------------
 * Text helpers
 */

/* A one-line excerpt of program output for error messages, in buf. */
static void excerpt(const char *out, size_t len, char *buf, size_t size)
{
	size_t n;

	while (len > 0 && isspace((unsigned char)*out)) {
		out++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)out[len - 1]))
		len--;
	n = len < LOTE_EXEC_EXCERPT ? len : LOTE_EXEC_EXCERPT;

	if (n > size - 4)
		n = size - 4;
	/* Stop before a cut UTF-8 sequence rather than show a '?'. */
	while (n > 0 && n < len && ((unsigned char)out[n] & 0xC0) == 0x80)
		n--;
	memcpy(buf, out, n);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7F)
			buf[i] = ' ';
	lote__utf8_sanitize(buf, n);
	if (n < len)
		memcpy(buf + n, "...", 4);
	else
		buf[n] = '\0';
}

/* Trims ASCII whitespace at both ends of s[0..len) in place; returns the
 * new start and sets *len. */
static char *trim(char *s, size_t *len)
{
	size_t n = *len;

	while (n > 0 && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	s[n] = '\0';
	*len = n;
	return s;
}

/* ---------------------------------------------------------------------
 * Output parsing (pure)
 */

static const char *json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: case JSON_REAL: return "a number";
	case JSON_TRUE: case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "?";
}

static int bad_output(lote_error *err, const char *out, size_t len,
                      const char *fmt, ...) LOTE_PRINTF(4, 5);

static int bad_output(lote_error *err, const char *out, size_t len,
                      const char *fmt, ...)
{
	char why[512], ex[LOTE_EXEC_EXCERPT + 8];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	excerpt(out, len, ex, sizeof(ex));
	return lote__fail(err, LOTE_EINVAL,
	                  "invalid handler output: %s (stdout was: %s)", why, ex);
}

static bool is_uuid(const char *s)
{
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return s[36] == '\0';
}

static int check_item(const json_t *item, size_t i, const char *out,
                      size_t len, lote_error *err)
{
	static const char *const known[] = { "type", "data", "options", "institution_id" };
	const char *key;
	json_t *v;

	if (!json_is_object(item))
		return bad_output(err, out, len, "enqueue[%zu] must be an object, got %s",
		                  i, json_kind(item));
	json_object_foreach((json_t *)item, key, v) {
		size_t k = 0;
		while (k < sizeof(known) / sizeof(known[0]) && strcmp(key, known[k]) != 0)
			k++;
		if (k == sizeof(known) / sizeof(known[0]))
			return bad_output(err, out, len,
			                  "enqueue[%zu]: unknown key \"%.64s\" (expected type, data, options, institution_id)",
			                  i, key);
	}
	v = json_object_get(item, "type");
	if (!v)
		return bad_output(err, out, len, "enqueue[%zu] has no \"type\"", i);
	if (!json_is_string(v) || json_string_length(v) == 0)
		return bad_output(err, out, len,
		                  "enqueue[%zu].type must be a non-empty string, got %s",
		                  i, json_is_string(v) ? "\"\"" : json_kind(v));
	v = json_object_get(item, "data");
	if (v && !json_is_object(v))
		return bad_output(err, out, len, "enqueue[%zu].data must be an object, got %s",
		                  i, json_kind(v));
	v = json_object_get(item, "options");
	if (v && !json_is_object(v))
		return bad_output(err, out, len, "enqueue[%zu].options must be an object, got %s",
		                  i, json_kind(v));
	v = json_object_get(item, "institution_id");
	if (v && (!json_is_string(v) || !is_uuid(json_string_value(v))))
		return bad_output(err, out, len,
		                  "enqueue[%zu].institution_id must be a UUID string, got %s",
		                  i, json_kind(v));
	return 0;
}

/* The "batch" object: type, commands (an array of objects) and next (an
 * object or null); lote.batch checks each member like lote.enqueue. */
static int check_batch(const json_t *batch, const char *out, size_t len, lote_error *err)
{
	const char *key;
	json_t *v, *item;
	size_t i;

	if (!json_is_object(batch))
		return bad_output(err, out, len, "\"batch\" must be an object, got %s", json_kind(batch));
	json_object_foreach((json_t *)batch, key, v) {
		if (strcmp(key, "type") != 0 && strcmp(key, "commands") != 0 && strcmp(key, "next") != 0)
			return bad_output(err, out, len,
			                  "batch: unknown key \"%.64s\" (expected type, commands, next)", key);
	}
	v = json_object_get(batch, "type");
	if (!json_is_string(v) || json_string_length(v) == 0)
		return bad_output(err, out, len, "batch.type must be a non-empty string, got %s",
		                  v ? json_kind(v) : "nothing");
	v = json_object_get(batch, "commands");
	if (!json_is_array(v))
		return bad_output(err, out, len, "batch.commands must be an array, got %s",
		                  v ? json_kind(v) : "nothing");
	if (json_array_size(v) > LOTE_EXEC_ENQUEUE_MAX)
		return bad_output(err, out, len, "batch.commands has %zu items, over the limit of %d",
		                  json_array_size(v), LOTE_EXEC_ENQUEUE_MAX);
	json_array_foreach(v, i, item) {
		if (!json_is_object(item))
			return bad_output(err, out, len, "batch.commands[%zu] must be an object, got %s",
			                  i, json_kind(item));
	}
	v = json_object_get(batch, "next");
	if (v && !json_is_object(v) && !json_is_null(v))
		return bad_output(err, out, len, "batch.next must be an object or null, got %s",
		                  json_kind(v));
	return 0;
}

int lote__exec_parse_output(const char *out, size_t len, json_t **ret_enqueue,
                            json_t **ret_batch, lote_error *err)
{
	json_t *root = NULL, *list, *item;
	json_error_t jerr;
	const char *key;
	size_t i = 0;
	int rc;

	while (i < len && isspace((unsigned char)out[i]))
		i++;
	if (i == len) {
		*ret_enqueue = NULL;
		*ret_batch = NULL;
		return 0;
	}
	if (memchr(out, '\0', len))
		return bad_output(err, out, len, "it contains a NUL byte");
	root = json_loadb(out, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!root)
		return bad_output(err, out, len, "not JSON: %s (line %d, column %d)",
		                  jerr.text, jerr.line, jerr.column);
	if (!json_is_object(root)) {
		rc = bad_output(err, out, len, "expected a JSON object, got %s", json_kind(root));
		goto fail;
	}
	json_object_foreach(root, key, item) {
		if (strcmp(key, "enqueue") == 0 || strcmp(key, "batch") == 0)
			continue;
		rc = bad_output(err, out, len,
		                "unknown key \"%.64s\" (expected \"enqueue\" and/or \"batch\")", key);
		goto fail;
	}
	if (json_object_get(root, "batch") &&
	    (rc = check_batch(json_object_get(root, "batch"), out, len, err)) < 0)
		goto fail;
	list = json_object_get(root, "enqueue");
	if (list && !json_is_array(list)) {
		rc = bad_output(err, out, len, "\"enqueue\" must be an array, got %s", json_kind(list));
		goto fail;
	}
	if (list && json_array_size(list) > LOTE_EXEC_ENQUEUE_MAX) {
		rc = bad_output(err, out, len, "\"enqueue\" has %zu items, over the limit of %d",
		                json_array_size(list), LOTE_EXEC_ENQUEUE_MAX);
		goto fail;
	}
	json_array_foreach(list, i, item) {
		if ((rc = check_item(item, i, out, len, err)) < 0)
			goto fail;
	}
	*ret_enqueue = list && json_array_size(list) > 0 ? json_incref(list) : NULL;
	*ret_batch = json_incref(json_object_get(root, "batch"));
	json_decref(root);
	return 0;
fail:
	json_decref(root);
	return rc;
}

/* ---------------------------------------------------------------------
 * Running the program
 */

/* In the child between fork and exec: only async-signal-safe calls. */
static void child(int in, int out, int errfd, pid_t parent,
                  const char *const argv[], char *const envp[])
{
	struct sigaction dfl;
	sigset_t none;
	int fds[3] = { in, out, errfd };

	setpgid(0, 0);
	/* Dies with the worker, so a killed worker leaves no program behind. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	/* Ignored signals and the mask survive exec: give the program the
	 * defaults a shell would. */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Move the pipe ends above 2 first so no dup2 clobbers another. */
	for (int i = 0; i < 3; i++)
		if ((fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3)) < 0)
			_exit(127);
	for (int i = 0; i < 3; i++)
		if (dup2(fds[i], i) < 0)
			_exit(127);
	execve("/bin/sh", (char *const *)argv, envp);
	_exit(127);
}

/* Appends to the stderr window, keeping at least the last TAIL bytes. */
static void tail_add(char *win, size_t *len, bool *cut, const char *buf, size_t n)
{
	const size_t cap = 2 * LOTE_EXEC_STDERR_TAIL;

	if (n >= LOTE_EXEC_STDERR_TAIL) {
		*cut = *cut || *len > 0 || n > LOTE_EXEC_STDERR_TAIL;
		memcpy(win, buf + n - LOTE_EXEC_STDERR_TAIL, LOTE_EXEC_STDERR_TAIL);
		*len = LOTE_EXEC_STDERR_TAIL;
		return;
	}
	if (*len + n > cap) {
		size_t keep = LOTE_EXEC_STDERR_TAIL - n;
		memmove(win, win + *len - keep, keep);
		*len = keep;
		*cut = true;
	}
	memcpy(win + *len, buf, n);
	*len += n;
}

/* The state of one run's pipes. */
struct io {
	int in, out, err;       /* our ends; -1 once closed */
	const char *input;      /* borrowed */
	size_t input_len, written;
	char *out_buf;          /* owned */
	size_t out_len, out_cap;
	bool overflow;
	char win[2 * LOTE_EXEC_STDERR_TAIL];
	size_t win_len;
	bool cut;
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void io_write(struct io *io)
{
	while (io->written < io->input_len) {
		size_t n = io->input_len - io->written;
		ssize_t w = write(io->in, io->input + io->written, n < IO_CHUNK ? n : IO_CHUNK);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return;
		if (w < 0) {
			/* EPIPE: the program does not read its stdin, which is fine. */
			break;
		}
		io->written += (size_t)w;
	}
	close_fd(&io->in);
}

/* Read what a pipe holds now, at most limit bytes (a drain cap). */
static int io_read_out(struct io *io, size_t limit, lote_error *err)
{
	for (size_t got = 0; got < limit;) {
		ssize_t r;
		if (io->out_cap - io->out_len < IO_CHUNK + 1) {
			size_t cap = io->out_cap ? io->out_cap * 2 : 2 * IO_CHUNK;
			char *p = realloc(io->out_buf, cap);
			if (!p)
				return lote__fail(err, LOTE_ENOMEM, "exec: out of memory reading stdout");
			io->out_buf = p;
			io->out_cap = cap;
		}
		r = read(io->out, io->out_buf + io->out_len, IO_CHUNK);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return 0;
		if (r < 0)
			return lote__fail_errno(err, "exec: reading stdout");
		if (r == 0) {
			close_fd(&io->out);
			return 0;
		}
		io->out_len += (size_t)r;
		got += (size_t)r;
		if (io->out_len > LOTE_EXEC_STDOUT_MAX) {
			io->overflow = true;
			return 0;
		}
	}
	return 0;
}

static int io_read_err(struct io *io, size_t limit, lote_error *err)
{
	char buf[LOTE_EXEC_STDERR_TAIL];

	for (size_t got = 0; got < limit;) {
		ssize_t r = read(io->err, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return 0;
		if (r < 0)
			return lote__fail_errno(err, "exec: reading stderr");
		if (r == 0) {
			close_fd(&io->err);
			return 0;
		}
		tail_add(io->win, &io->win_len, &io->cut, buf, (size_t)r);
		got += (size_t)r;
	}
	return 0;
}

/* Moves data until the program exits (or closes its output and exits),
 * the deadline passes, or stdout overflows. Returns with *exited set when
 * the program is known to have ended; *ret_status then holds its status if
 * it was already reaped (*reaped). */
static int pump(struct io *io, pid_t pid, int pidfd, int64_t timeout_ms,
                bool *timed_out, bool *reaped, int *ret_status, lote_error *err)
{
	int64_t deadline = timeout_ms > 0 ? lote__mono_ms() + timeout_ms : 0;
	bool exited = false;

	if (io->input_len == 0)
		close_fd(&io->in);
	for (;;) {
		struct pollfd p[4];
		int np = 0, wait = -1, in_i = -1, out_i = -1, err_i = -1, pid_i = -1;

		if (pidfd < 0 && !exited) {
			pid_t r = waitpid(pid, ret_status, WNOHANG);
			if (r == pid)
				exited = *reaped = true;
		}
		if (exited) {
			/* What the program wrote before it ended is in the pipes. */
			if (io->out >= 0 && io_read_out(io, LOTE_EXEC_STDOUT_MAX, err) < 0)
				return LOTE_ESYS;
			if (io->err >= 0 && io_read_err(io, DRAIN_MAX, err) < 0)
				return LOTE_ESYS;
			return 0;
		}
		if (io->overflow)
			return 0;
		if (deadline) {
			int64_t left = deadline - lote__mono_ms();
			if (left <= 0) {
				*timed_out = true;
				return 0;
			}
			wait = left > 60000 ? 60000 : (int)left;
		}
		if (pidfd < 0 && (wait < 0 || wait > REAP_POLL_MS))
			wait = REAP_POLL_MS;
		if (io->in >= 0) {
			in_i = np;
			p[np++] = (struct pollfd){ .fd = io->in, .events = POLLOUT };
		}
		if (io->out >= 0) {
			out_i = np;
			p[np++] = (struct pollfd){ .fd = io->out, .events = POLLIN };
		}
		if (io->err >= 0) {
			err_i = np;
			p[np++] = (struct pollfd){ .fd = io->err, .events = POLLIN };
		}
		if (pidfd >= 0) {
			pid_i = np;
			p[np++] = (struct pollfd){ .fd = pidfd, .events = POLLIN };
		}
		if (poll(p, (nfds_t)np, wait) < 0) {
			if (errno == EINTR)
				continue;
			return lote__fail_errno(err, "exec: poll");
		}
		if (in_i >= 0 && p[in_i].revents)
			io_write(io);
		if (out_i >= 0 && p[out_i].revents && io_read_out(io, 4 * IO_CHUNK, err) < 0)
			return LOTE_ESYS;
		if (err_i >= 0 && p[err_i].revents && io_read_err(io, 4 * IO_CHUNK, err) < 0)
			return LOTE_ESYS;
		if (pid_i >= 0 && p[pid_i].revents)
			exited = true;
	}
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void finish_tail(struct io *io, lote__exec_result *r)
{
	size_t start = io->win_len > LOTE_EXEC_STDERR_TAIL ? io->win_len - LOTE_EXEC_STDERR_TAIL : 0;
	size_t n = io->win_len - start;
	char *s;

	memcpy(r->tail, io->win + start, n);
	r->tail_cut = io->cut || start > 0;
	s = r->tail;
	/* A cut may fall inside a UTF-8 sequence: start at the next one. */
	while (r->tail_cut && n > 0 && ((unsigned char)*s & 0xC0) == 0x80) {
		s++;
		n--;
	}
	lote__utf8_sanitize(s, n);
	s = trim(s, &n);
	memmove(r->tail, s, n + 1);
	r->tail_len = n;
}

int lote__exec_run(const char *program, const char *input, size_t input_len,
                   char *const envp[], int64_t timeout_ms,
                   lote__exec_result *ret, lote_error *err)
{
	const char *argv[] = { "sh", "-c", program, NULL };
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, errp[2] = { -1, -1 };
	int pidfd = -1, status = 0, rc = 0;
	bool timed_out = false, reaped = false;
	struct sigaction dfl = { 0 }, ign = { 0 }, old_chld, old_pipe;
	struct io *io = NULL;
	pid_t pid, parent = getpid();

	io = calloc(1, sizeof(*io));
	if (!io)
		return lote__fail(err, LOTE_ENOMEM, "out of memory");
	io->in = io->out = io->err = -1;
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 ||
	    pipe2(errp, O_CLOEXEC) < 0) {
		rc = lote__fail_errno(err, "exec: pipe");
		goto fail;
	}
	/* Reaping is ours while the program runs: an inherited SIGCHLD handler
	 * that waits for any child would take its exit status. */
	dfl.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &dfl, &old_chld);
	pid = fork();
	if (pid < 0) {
		rc = lote__fail_errno(err, "exec: fork");
		sigaction(SIGCHLD, &old_chld, NULL);
		goto fail;
	}
	if (pid == 0)
		child(in[0], out[1], errp[1], parent, argv, envp);
	/* Both sides set the group, so it exists before either goes on. */
	setpgid(pid, pid);
	close_fd(&in[0]);
	close_fd(&out[1]);
	close_fd(&errp[1]);
	io->in = in[1];
	io->out = out[0];
	io->err = errp[0];
	in[1] = out[0] = errp[0] = -1;
	io->input = input;
	io->input_len = input_len;
	set_nonblock(io->in);
	set_nonblock(io->out);
	set_nonblock(io->err);
#ifdef SYS_pidfd_open
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
	/* A program that does not read its stdin must not kill us. */
	ign.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &ign, &old_pipe);
	rc = pump(io, pid, pidfd, timeout_ms, &timed_out, &reaped, &status, err);
	sigaction(SIGPIPE, &old_pipe, NULL);
	if (rc < 0 || timed_out || io->overflow) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
	}
	while (!reaped && waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	sigaction(SIGCHLD, &old_chld, NULL);
	if (pidfd >= 0)
		close(pidfd);
	close_fd(&io->in);
	close_fd(&io->out);
	close_fd(&io->err);
	if (rc < 0)
		goto fail;
	if (!io->out_buf && !(io->out_buf = malloc(1))) {
		rc = lote__fail(err, LOTE_ENOMEM, "out of memory");
		goto fail;
	}
	memset(ret, 0, sizeof(*ret));
	ret->status = status;
	ret->timed_out = timed_out;
	ret->stdout_overflow = io->overflow;
	ret->out = io->out_buf;
	ret->out_len = io->out_len;
	ret->out[ret->out_len] = '\0';
	finish_tail(io, ret);
	free(io);
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		close_fd(&in[i]);
		close_fd(&out[i]);
		close_fd(&errp[i]);
	}
	free(io->out_buf);
	free(io);
	return rc;
}

void lote__exec_result_done(lote__exec_result *r)
{
	if (!r)
		return;
	free(r->out);
	r->out = NULL;
}

bool lote__exec_result_ok(const lote__exec_result *r, int64_t timeout_ms,
                          char *buf, size_t len)
{
	const char *sep = r->tail_len ? ": " : "";

	if (r->timed_out) {
		/* The same words as a C handler's timeout. */
		snprintf(buf, len, "timeout after %g s%s%s", timeout_ms / 1000.0, sep, r->tail);
		return false;
	}
	if (r->stdout_overflow) {
		snprintf(buf, len, "handler wrote more than %d MiB on stdout",
		         LOTE_EXEC_STDOUT_MAX / (1024 * 1024));
		return false;
	}
	if (WIFSIGNALED(r->status)) {
		const char *abbrev = sigabbrev_np(WTERMSIG(r->status));
		snprintf(buf, len, "killed by signal %d (SIG%s)%s%s", WTERMSIG(r->status),
		         abbrev ? abbrev : "?", sep, r->tail);
		return false;
	}
	if (WIFEXITED(r->status) && WEXITSTATUS(r->status) != 0) {
		snprintf(buf, len, "exit status %d%s%s", WEXITSTATUS(r->status), sep, r->tail);
		return false;
	}
	return true;
}

/* ---------------------------------------------------------------------
 * The handler
 */

static json_t *id_or_null(int64_t id)
{
	return id ? json_integer(id) : json_null();
}

/* The JSON object the program reads on stdin (malloc'd, newline-ended so
 * line readers see a whole line), or NULL when out of memory. */
static char *build_input(lote_ctx *ctx)
{
	json_t *o;
	char *text;

	if (lote_ctx_kind(ctx) == LOTE_EVENT)
		o = json_pack("{s:I, s:s?, s:s?, s:s?, s:s?, s:O, s:i}",
		              "id", (json_int_t)lote_ctx_id(ctx),
		              "type", lote_ctx_type(ctx),
		              "institution_id", lote_ctx_institution(ctx),
		              "entity_type", lote_ctx_entity_type(ctx),
		              "entity_id", lote_ctx_entity_id(ctx),
		              "data", lote_ctx_data(ctx),
		              "attempt", lote_ctx_attempt(ctx));
	else
		o = json_pack("{s:I, s:s?, s:s?, s:O, s:i, s:i, s:o, s:o, s:o, s:o}",
		              "id", (json_int_t)lote_ctx_id(ctx),
		              "type", lote_ctx_type(ctx),
		              "institution_id", lote_ctx_institution(ctx),
		              "data", lote_ctx_data(ctx),
		              "attempt", lote_ctx_attempt(ctx),
		              "max_attempts", lote_ctx_max_attempts(ctx),
		              "event_id", id_or_null(lote_ctx_event_id(ctx)),
		              "parent_id", id_or_null(lote_ctx_parent_id(ctx)),
		              "original_id", id_or_null(lote_ctx_original_id(ctx)),
		              "batch_id", id_or_null(lote_ctx_batch_id(ctx)));
	if (!o)
		return NULL;
	text = lote__json_text(o, JSON_COMPACT);
	json_decref(o);
	if (text) {
		size_t n = strlen(text);
		char *t = realloc(text, n + 2);
		if (!t) {
			free(text);
			return NULL;
		}
		text = t;
		memcpy(text + n, "\n", 2);
	}
	return text;
}

/* The variables exec sets; inherited ones of these names are dropped so a
 * program never sees a stale value of the other kind. */
static const char *const env_names[] = {
	"LOTE_COMMAND_ID", "LOTE_COMMAND_TYPE", "LOTE_EVENT_ID", "LOTE_EVENT_TYPE",
	"LOTE_ENTITY_TYPE", "LOTE_ENTITY_ID", "LOTE_INSTITUTION_ID", "LOTE_ATTEMPT",
};
#define NENV (sizeof(env_names) / sizeof(env_names[0]))

struct env {
	char **vec; /* owned array; entries from `own` on are owned too */
	size_t n, own;
};

static void env_free(struct env *e)
{
	if (!e->vec)
		return;
	for (size_t i = e->own; i < e->n; i++)
		free(e->vec[i]);
	free(e->vec);
	e->vec = NULL;
}

static bool env_ours(const char *entry)
{
	for (size_t i = 0; i < NENV; i++) {
		size_t n = strlen(env_names[i]);
		if (strncmp(entry, env_names[i], n) == 0 && entry[n] == '=')
			return true;
	}
	return false;
}

static int env_add(struct env *e, const char *name, const char *fmt, ...) LOTE_PRINTF(3, 4);

static int env_add(struct env *e, const char *name, const char *fmt, ...)
{
	char value[256], *s = NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(value, sizeof(value), fmt, ap);
	va_end(ap);
	if (asprintf(&s, "%s=%s", name, value) < 0)
		return LOTE_ENOMEM;
	e->vec[e->n++] = s;
	return 0;
}

static int build_env(lote_ctx *ctx, struct env *e)
{
	size_t count = 0;
	const char *inst = lote_ctx_institution(ctx) ? lote_ctx_institution(ctx) : "";
	int rc = 0;

	while (environ && environ[count])
		count++;
	e->vec = calloc(count + NENV + 1, sizeof(char *));
	if (!e->vec)
		return LOTE_ENOMEM;
	for (size_t i = 0; i < count; i++)
		if (!env_ours(environ[i]))
			e->vec[e->n++] = environ[i];
	e->own = e->n;
	if (lote_ctx_kind(ctx) == LOTE_EVENT) {
		rc |= env_add(e, "LOTE_EVENT_ID", "%lld", (long long)lote_ctx_id(ctx));
		rc |= env_add(e, "LOTE_EVENT_TYPE", "%s", lote_ctx_type(ctx));
		rc |= env_add(e, "LOTE_ENTITY_TYPE", "%s",
		              lote_ctx_entity_type(ctx) ? lote_ctx_entity_type(ctx) : "");
		rc |= env_add(e, "LOTE_ENTITY_ID", "%s",
		              lote_ctx_entity_id(ctx) ? lote_ctx_entity_id(ctx) : "");
	} else {
		rc |= env_add(e, "LOTE_COMMAND_ID", "%lld", (long long)lote_ctx_id(ctx));
		rc |= env_add(e, "LOTE_COMMAND_TYPE", "%s", lote_ctx_type(ctx));
	}
	rc |= env_add(e, "LOTE_INSTITUTION_ID", "%s", inst);
	rc |= env_add(e, "LOTE_ATTEMPT", "%d", lote_ctx_attempt(ctx));
	return rc ? LOTE_ENOMEM : 0;
}

/* Enqueues into another institution than the handler's: lote_ctx_enqueue
 * always uses the handler's, so this goes through lote.enqueue on the
 * handler's connection (lineage comes from the settings the engine sets
 * around each handler). */
static int enqueue_elsewhere(lote_ctx *ctx, const char *type, json_t *data,
                             json_t *options, const char *institution,
                             lote_error *err)
{
	PGconn *conn = lote_ctx_conn(ctx);
	char *d = NULL, *o = NULL;
	const char *params[4];
	int rc;

	if (!conn)
		return lote__fail(err, LOTE_ESTATE, "the handler has no transaction");
	d = data ? lote__json_text(data, JSON_COMPACT) : strdup("{}");
	o = options ? lote__json_text(options, JSON_COMPACT) : NULL;
	if (!d || (options && !o)) {
		rc = lote__fail(err, LOTE_ENOMEM, "out of memory");
		goto done;
	}
	params[0] = type;
	params[1] = d;
	params[2] = institution;
	params[3] = o;
	rc = lote__db_value(conn, "SELECT lote.enqueue($1, $2::jsonb, $3::uuid, $4::jsonb)",
	                    4, params, NULL, err);
done:
	free(d);
	free(o);
	return rc;
}

static int enqueue_all(lote_ctx *ctx, json_t *items)
{
	const char *own = lote_ctx_institution(ctx);
	json_t *item;
	size_t i;

	json_array_foreach(items, i, item) {
		const char *type = json_string_value(json_object_get(item, "type"));
		const char *inst = json_string_value(json_object_get(item, "institution_id"));
		json_t *data = json_object_get(item, "data");
		json_t *options = json_object_get(item, "options");
		lote_error err = { 0 };
		int rc;

		if (inst && !(own && strcasecmp(inst, own) == 0)) {
			rc = enqueue_elsewhere(ctx, type, data, options, inst, &err);
		} else {
			json_t *empty = data ? NULL : json_object();
			rc = lote_ctx_enqueue(ctx, type, data ? data : empty, options, NULL, &err);
			json_decref(empty);
		}
		if (rc < 0)
			return lote_ctx_fail(ctx, "enqueue[%zu] (%s) from handler output: %s",
			                     i, type, err.message);
	}
	return 0;
}

/* A failing program may say how to retry on stdout: {"permanent": true}
 * (no retry) or {"retry_in_ms": N} (retry after N ms instead of the
 * policy's back-off). Anything else on stdout is ignored on failure. */
static int fail_as_told(lote_ctx *ctx, const lote__exec_result *r, const char *msg)
{
	json_t *root = r->out_len ? json_loadb(r->out, r->out_len, 0, NULL) : NULL;
	json_t *permanent = json_object_get(root, "permanent");
	json_t *retry = json_object_get(root, "retry_in_ms");
	/* a directive that cannot be followed is said, not silently dropped */
	const char *note = "";
	int rc;

	if (permanent && !json_is_boolean(permanent))
		note = " (\"permanent\" ignored: it must be true or false)";
	else if (retry && !(json_is_integer(retry) && json_integer_value(retry) >= 0))
		note = " (\"retry_in_ms\" ignored: it must be a whole number of milliseconds, 0 or more)";
	else if (json_is_integer(retry) && json_integer_value(retry) > LOTE_RETRY_IN_MAX_MS)
		note = " (retry_in_ms cut to one year)";
	if (json_is_true(permanent))
		rc = lote_ctx_fail_permanent(ctx, "%s%s", msg, note);
	else if (json_is_integer(retry) && json_integer_value(retry) >= 0)
		rc = lote_ctx_retry_in(ctx, json_integer_value(retry), "%s%s", msg, note);
	else
		rc = lote_ctx_fail(ctx, "%s%s", msg, note);
	json_decref(root);
	return rc;
}

int lote__exec_handler(lote_ctx *ctx, void *udata)
{
	lote__exec *x = udata;
	lote_error err = { 0 };
	struct env env = { 0 };
	lote__exec_result r = { 0 };
	json_t *items = NULL, *batch = NULL;
	char *input = NULL, *msg = NULL;
	int rc;

	input = build_input(ctx);
	msg = malloc(MESSAGE_MAX);
	if (!input || !msg || build_env(ctx, &env) < 0) {
		rc = lote_ctx_fail(ctx, "exec: out of memory");
		goto done;
	}
	if (lote__exec_run(x->program, input, strlen(input), env.vec, x->timeout_ms,
	                   &r, &err) < 0) {
		rc = lote_ctx_fail(ctx, "could not run the handler program: %s", err.message);
		goto done;
	}
	if (!lote__exec_result_ok(&r, x->timeout_ms, msg, MESSAGE_MAX)) {
		rc = fail_as_told(ctx, &r, msg);
		goto done;
	}
	if (lote__exec_parse_output(r.out, r.out_len, &items, &batch, &err) < 0) {
		lote__utf8_sanitize(err.message, strlen(err.message));
		rc = lote_ctx_fail(ctx, "%s", err.message);
		goto done;
	}
	rc = items ? enqueue_all(ctx, items) : 0;
	if (rc == 0 && batch) {
		json_t *next = json_object_get(batch, "next");
		if (lote_ctx_batch(ctx, json_string_value(json_object_get(batch, "type")),
		                   json_object_get(batch, "commands"),
		                   json_is_null(next) ? NULL : next, NULL, &err) < 0)
			rc = lote_ctx_fail(ctx, "batch from handler output: %s", err.message);
	}
done:
	json_decref(items);
	json_decref(batch);
	lote__exec_result_done(&r);
	env_free(&env);
	free(input);
	free(msg);
	return rc;
}
