/*
 * lote-academic - the academic example: a small academic-management backend
 * on liblote that runs the two reference flows of the design for real.
 *
 *   flow 1: publish-activity inserts an activity and emits
 *           ClassActivityCreated in one transaction; the daemon turns it into
 *           NotifyNewClassActivity, which writes one notification per student
 *           and a batch of SendNewClassActivityEmail (real SMTP, libcurl)
 *           whose follow-up NotifyTeacherEmailsSent notifies the teacher once.
 *   flow 2: create-institution emits InstitutionCreated; the daemon seeds the
 *           institution with a chain of commands, each enqueuing the next.
 *
 * See docs/academic.md and `lote-academic --help`.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "lote.h"

extern const char academic_schema_sql[]; /* schema.sql, embedded */

/* attempts of each email before it ends in error (then its batch) */
#define MAIL_ATTEMPTS 5

static const char *g_smtp_url = "smtp://127.0.0.1:2525";
static const char *g_mail_from = "no-reply@academic.example";

static const char usage_text[] =
	"NAME\n"
	"    lote-academic - the academic example of lote: both reference flows\n"
	"\n"
	"SYNOPSIS\n"
	"    lote-academic run [--workers N] [--smtp URL] [--from ADDR]\n"
	"    lote-academic create-institution --name NAME [--students N]\n"
	"    lote-academic publish-activity --class ID --title TITLE\n"
	"    lote-academic classes [--institution UUID]\n"
	"    lote-academic students --class ID\n"
	"    lote-academic --help\n"
	"\n"
	"DESCRIPTION\n"
	"    A small academic-management backend on liblote. Every subcommand\n"
	"    first migrates schema lote and applies the example's own schema\n"
	"    `academic` (examples/academic/schema.sql, embedded; idempotent).\n"
	"\n"
	"    Flow 1: publish-activity inserts an activity; the trigger that\n"
	"    lote.capture installed on academic.activities records the event\n"
	"    ClassActivityCreated in the same transaction (rows inserted with\n"
	"    notify_students = false, like the seed's, record none). It returns\n"
	"    at once.\n"
	"    The daemon runs NotifyNewClassActivity (one notification for each\n"
	"    student of the class) and a batch SendNewClassActivityEmails of one\n"
	"    SendNewClassActivityEmail per student, sent over SMTP, each retried\n"
	"    on its own; when every email went, its follow-up\n"
	"    NotifyTeacherEmailsSent records the teacher's notification, once.\n"
	"    Each email carries X-Lote-Idempotency-Key (activity and student, the\n"
	"    same on every attempt and reprocess) so a repeated send is known.\n"
	"\n"
	"    Flow 2: create-institution inserts an institution and emits\n"
	"    InstitutionCreated with an explicit lote.emit; the daemon seeds it\n"
	"    with a chain of commands, each enqueuing the next: SeedCourses,\n"
	"    SeedDisciplines,\n"
	"    SeedCurricula, SeedStudents, SeedTeachers, SeedClasses (with the\n"
	"    enrollments), SeedLessons, SeedAttendances, SeedActivities,\n"
	"    SeedGrades.\n"
	"\n"
	"COMMANDS\n"
	"    run\n"
	"        The daemon with the example's handlers, until SIGTERM or SIGINT\n"
	"        (graceful drain). The dashboard is `lote web` on the same\n"
	"        database.\n"
	"    create-institution --name NAME [--students N]\n"
	"        Prints the new institution's id (a UUID, also its lote tenant).\n"
	"        N students are seeded (default 300, 1..100000).\n"
	"    publish-activity --class ID --title TITLE\n"
	"        Prints the new activity's id and its event's id.\n"
	"    classes [--institution UUID]\n"
	"        Lists classes: id, institution, students enrolled, name.\n"
	"    students --class ID\n"
	"        Lists the students of a class: id, email, name.\n"
	"\n"
	"OPTIONS\n"
	"    --database-url URL\n"
	"        The PostgreSQL (libpq URI or key=value string); default\n"
	"        $LOTE_DATABASE_URL (`build/lote pg url` prints the embedded one).\n"
	"    --workers N\n"
	"        Worker processes of run, default 4.\n"
	"    --smtp URL\n"
	"        The SMTP server of run, default $ACADEMIC_SMTP_URL, else\n"
	"        smtp://127.0.0.1:2525 (examples/academic/smtp-sink.py).\n"
	"    --from ADDR\n"
	"        The sender of the emails, default no-reply@academic.example.\n"
	"    -h, --help\n"
	"        Show this text.\n"
	"\n"
	"EXIT STATUS\n"
	"    0  success (run: stopped gracefully)\n"
	"    1  a database, SMTP or engine error (the message says which)\n"
	"    2  usage error\n";

static void usage_error(const char *fmt, ...) LOTE_PRINTF(1, 2);
static void usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("lote-academic: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs("\n(see lote-academic --help)\n", stderr);
	va_end(ap);
	exit(2);
}

/* ---------------------------------------------------------------------
 * SQL helpers for handlers: parameters are text; types may be given.
 */

/* Runs sql on the handler's connection; returns the result (caller
 * clears) or NULL after failing the handler with the database's message
 * (then *rc is set to the handler's return value). */
static PGresult *hq(lote_ctx *ctx, int *rc, const char *sql, int n, const Oid *types,
                    const char *const *params)
{
	PGconn *c = lote_ctx_conn(ctx);
	if (!c) {
		*rc = lote_ctx_fail(ctx, "no transaction");
		return NULL;
	}
	PGresult *res = PQexecParams(c, sql, n, types, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		*rc = lote_ctx_fail(ctx, "%s", PQresultErrorMessage(res));
		PQclear(res);
		return NULL;
	}
	return res;
}

static const char *data_str(lote_ctx *ctx, const char *key)
{
	return json_string_value(json_object_get(lote_ctx_data(ctx), key));
}

static long long data_int(lote_ctx *ctx, const char *key)
{
	return json_integer_value(json_object_get(lote_ctx_data(ctx), key));
}

/* ---------------------------------------------------------------------
 * Flow 1: a class activity was published.
 */

/* Event ClassActivityCreated → command NotifyNewClassActivity. */
static int on_class_activity_created(lote_ctx *ctx, void *udata)
{
	lote_error err = { 0 };
	/* the captured row's columns (see schema.sql: lote.capture) */
	json_t *id = json_object_get(lote_ctx_data(ctx), "id");
	(void)udata;
	if (!json_is_integer(id))
		return lote_ctx_fail_permanent(ctx, "ClassActivityCreated without the activity's id");
	json_t *data = json_pack("{sO}", "activity_id", id);
	int rc = lote_ctx_enqueue(ctx, "NotifyNewClassActivity", data, NULL, NULL, &err);
	json_decref(data);
	return rc < 0 ? lote_ctx_fail(ctx, "enqueue: %s", err.message) : 0;
}

/* One notification for every student of the class, and the batch of their
 * emails with the teacher's notification as its follow-up. */
static int notify_new_class_activity(lote_ctx *ctx, void *udata)
{
	int rc = 0;
	char aid[32];
	lote_error err = { 0 };
	(void)udata;
	snprintf(aid, sizeof aid, "%lld", data_int(ctx, "activity_id"));
	const char *p1[1] = { aid };
	PGresult *a = hq(ctx, &rc,
		"SELECT a.title, c.name, c.teacher_id, a.institution_id"
		" FROM academic.activities a JOIN academic.classes c ON c.id = a.class_id"
		" WHERE a.id = $1", 1, NULL, p1);
	if (!a)
		return rc;
	if (PQntuples(a) == 0) {
		PQclear(a);
		return lote_ctx_fail_permanent(ctx, "no activity %s", aid);
	}
	json_t *title = json_string(PQgetvalue(a, 0, 0));
	json_t *klass = json_string(PQgetvalue(a, 0, 1));
	long long teacher = strtoll(PQgetvalue(a, 0, 2), NULL, 10);
	PQclear(a);

	PGresult *n = hq(ctx, &rc,
		"INSERT INTO academic.notifications (institution_id, kind, activity_id, title)"
		" SELECT a.institution_id, 'activity_created', a.id, 'New activity: ' || a.title"
		" FROM academic.activities a WHERE a.id = $1 RETURNING id", 1, NULL, p1);
	if (!n)
		goto out;
	long long nid = strtoll(PQgetvalue(n, 0, 0), NULL, 10);
	char nids[32];
	snprintf(nids, sizeof nids, "%lld", nid);
	PQclear(n);

	const char *p2[2] = { aid, nids };
	PGresult *s = hq(ctx, &rc,
		"WITH st AS (SELECT s.id, s.name, s.email, s.institution_id"
		"  FROM academic.activities a"
		"  JOIN academic.enrollments e ON e.class_id = a.class_id"
		"  JOIN academic.students s ON s.id = e.student_id"
		"  WHERE a.id = $1),"
		" un AS (INSERT INTO academic.user_notifications"
		"  (institution_id, notification_id, user_kind, user_id)"
		"  SELECT institution_id, $2, 'student', id FROM st)"
		" SELECT id, name, email FROM st ORDER BY id", 2, NULL, p2);
	if (!s)
		goto out;
	json_t *members = json_array();
	for (int i = 0; i < PQntuples(s); i++)
		json_array_append_new(members, json_pack(
			"{ss si s{sIsIsIsssssOsO}}", "type", "SendNewClassActivityEmail",
			/* lote.batch does not read the type's policy (sql/002_batches.sql
			 * defaults members to 3 attempts), so members say it */
			"max_attempts", MAIL_ATTEMPTS, "data",
			"activity_id", (json_int_t)data_int(ctx, "activity_id"),
			"notification_id", (json_int_t)nid,
			"student_id", (json_int_t)strtoll(PQgetvalue(s, i, 0), NULL, 10),
			"name", PQgetvalue(s, i, 1), "to", PQgetvalue(s, i, 2),
			"title", title, "class", klass));
	PQclear(s);
	json_t *next = json_pack("{ss s{sIsIsO}}", "type", "NotifyTeacherEmailsSent", "data",
	                         "activity_id", (json_int_t)data_int(ctx, "activity_id"),
	                         "teacher_id", (json_int_t)teacher, "title", title);
	if (lote_ctx_batch(ctx, "SendNewClassActivityEmails", members, next, NULL, &err) < 0)
		rc = lote_ctx_fail(ctx, "batch: %s", err.message);
	json_decref(members);
	json_decref(next);
out:
	json_decref(title);
	json_decref(klass);
	return rc;
}

struct payload {
	const char *buf;
	size_t len, off;
};

static size_t read_payload(char *dst, size_t size, size_t nmemb, void *udata)
{
	struct payload *p = udata;
	size_t n = size * nmemb;
	if (n > p->len - p->off)
		n = p->len - p->off;
	memcpy(dst, p->buf + p->off, n);
	p->off += n;
	return n;
}

/* Sends one message over SMTP; 0 or -1 with a message in err. */
static int smtp_send(const char *to, const char *message, char *err, size_t errlen)
{
	char curlerr[CURL_ERROR_SIZE] = "";
	struct payload p = { message, strlen(message), 0 };
	CURL *c = curl_easy_init();
	if (!c) {
		snprintf(err, errlen, "curl_easy_init failed");
		return -1;
	}
	struct curl_slist *rcpt = curl_slist_append(NULL, to);
	curl_easy_setopt(c, CURLOPT_URL, g_smtp_url);
	curl_easy_setopt(c, CURLOPT_MAIL_FROM, g_mail_from);
	curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, read_payload);
	curl_easy_setopt(c, CURLOPT_READDATA, &p);
	curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curlerr);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	CURLcode rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		long code = 0;
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		snprintf(err, errlen, "SMTP %s to %s: %s (reply %ld)", g_smtp_url, to,
		         curlerr[0] ? curlerr : curl_easy_strerror(rc), code);
	}
	curl_slist_free_all(rcpt);
	curl_easy_cleanup(c);
	return rc == CURLE_OK ? 0 : -1;
}

/* One student's email; then the student's notification records it. */
static int send_new_class_activity_email(lote_ctx *ctx, void *udata)
{
	const char *to = data_str(ctx, "to"), *name = data_str(ctx, "name");
	const char *title = data_str(ctx, "title"), *klass = data_str(ctx, "class");
	long long aid = data_int(ctx, "activity_id"), sid = data_int(ctx, "student_id");
	char date[64], *msg = NULL, err[512];
	int rc = 0;
	(void)udata;
	if (!to || !name || !title || !klass)
		return lote_ctx_fail_permanent(ctx, "SendNewClassActivityEmail needs to, name, title, class");
	time_t now = time(NULL);
	struct tm tm;
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", gmtime_r(&now, &tm));
	if (asprintf(&msg,
	             "Date: %s\r\n"
	             "From: Academic <%s>\r\n"
	             "To: %s <%s>\r\n"
	             "Subject: New activity in %s: %s\r\n"
	             "Message-ID: <activity-%lld.student-%lld@academic.example>\r\n"
	             "X-Lote-Idempotency-Key: academic:activity-%lld:student-%lld\r\n"
	             "X-Lote-Command: %lld\r\n"
	             "X-Lote-Attempt: %d\r\n"
	             "Content-Type: text/plain; charset=utf-8\r\n"
	             "\r\n"
	             "Hello %s,\r\n\r\nA new activity was published in %s: %s.\r\n",
	             date, g_mail_from, name, to, klass, title, aid, sid, aid, sid,
	             (long long)lote_ctx_id(ctx), lote_ctx_attempt(ctx), name, klass,
	             title) < 0)
		return lote_ctx_fail(ctx, "out of memory");
	int sent = smtp_send(to, msg, err, sizeof err);
	free(msg);
	if (sent < 0)
		return lote_ctx_fail(ctx, "%s", err);
	char nid[32], sids[32];
	snprintf(nid, sizeof nid, "%lld", data_int(ctx, "notification_id"));
	snprintf(sids, sizeof sids, "%lld", sid);
	const char *p[2] = { nid, sids };
	PGresult *res = hq(ctx, &rc,
		"UPDATE academic.user_notifications SET emailed_at = now()"
		" WHERE notification_id = $1 AND user_kind = 'student' AND user_id = $2",
		2, NULL, p);
	PQclear(res);
	return rc;
}

/* The batch's follow-up: every email went; the teacher is told, once. */
static int notify_teacher_emails_sent(lote_ctx *ctx, void *udata)
{
	char aid[32], tid[32];
	int rc = 0;
	(void)udata;
	snprintf(aid, sizeof aid, "%lld", data_int(ctx, "activity_id"));
	snprintf(tid, sizeof tid, "%lld", data_int(ctx, "teacher_id"));
	const char *p[2] = { aid, tid };
	PGresult *res = hq(ctx, &rc,
		"WITH n AS (INSERT INTO academic.notifications (institution_id, kind, activity_id, title)"
		"  SELECT a.institution_id, 'activity_emails_sent', a.id,"
		"   'Every student was emailed about: ' || a.title"
		"  FROM academic.activities a WHERE a.id = $1 RETURNING id, institution_id)"
		" INSERT INTO academic.user_notifications (institution_id, notification_id, user_kind, user_id)"
		" SELECT institution_id, id, 'teacher', $2 FROM n",
		2, NULL, p);
	if (!res)
		return rc;
	if (strcmp(PQcmdTuples(res), "1") != 0)
		rc = lote_ctx_fail_permanent(ctx, "no activity %s", aid);
	PQclear(res);
	return rc;
}

/* ---------------------------------------------------------------------
 * Flow 2: seeding a new institution, a chain of commands.
 * $1 is the institution (uuid), $2 the number of students (int4).
 */

struct seed_step {
	const char *type, *next, *sql;
};

static const struct seed_step seed_steps[] = {
	{ "SeedCourses", "SeedDisciplines",
	  "INSERT INTO academic.courses (institution_id, name)"
	  " SELECT $1, c FROM unnest(ARRAY['Computer Science', 'Mathematics', 'Physics']) c" },
	{ "SeedDisciplines", "SeedCurricula",
	  "INSERT INTO academic.disciplines (institution_id, course_id, name)"
	  " SELECT $1, c.id, c.name || ': ' || (ARRAY['Foundations', 'Methods', 'Laboratory', 'Seminar'])[d]"
	  " FROM academic.courses c, generate_series(1, 4) d WHERE c.institution_id = $1"
	  " ORDER BY c.id, d" },
	{ "SeedCurricula", "SeedStudents",
	  "INSERT INTO academic.curricula (institution_id, course_id, discipline_id, semester)"
	  " SELECT $1, d.course_id, d.id, row_number() OVER (PARTITION BY d.course_id ORDER BY d.id)"
	  " FROM academic.disciplines d WHERE d.institution_id = $1" },
	{ "SeedStudents", "SeedTeachers",
	  "WITH cs AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k, count(*) OVER () AS n"
	  "  FROM academic.courses WHERE institution_id = $1)"
	  " INSERT INTO academic.students (institution_id, course_id, name, email)"
	  " SELECT $1, cs.id, 'Student ' || g,"
	  "  'student' || g || '.' || left($1::text, 8) || '@academic.example'"
	  " FROM generate_series(1, $2) g JOIN cs ON cs.k = g % cs.n ORDER BY g" },
	{ "SeedTeachers", "SeedClasses",
	  "INSERT INTO academic.teachers (institution_id, name, email)"
	  " SELECT $1, 'Teacher ' || g, 'teacher' || g || '.' || left($1::text, 8) || '@academic.example'"
	  " FROM generate_series(1, greatest(2, $2 / 25)) g" },
	{ "SeedClasses", "SeedLessons",
	  "WITH t AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k, count(*) OVER () AS n"
	  "  FROM academic.teachers WHERE institution_id = $1),"
	  " d AS (SELECT id, course_id, name, row_number() OVER (ORDER BY id) - 1 AS k"
	  "  FROM academic.disciplines WHERE institution_id = $1),"
	  " cl AS (INSERT INTO academic.classes (institution_id, discipline_id, teacher_id, name)"
	  "  SELECT $1, d.id, t.id, d.name || ', class A' FROM d JOIN t ON t.k = d.k % t.n"
	  "  RETURNING id, discipline_id)"
	  " INSERT INTO academic.enrollments (institution_id, class_id, student_id)"
	  " SELECT $1, cl.id, s.id FROM cl JOIN d ON d.id = cl.discipline_id"
	  " JOIN academic.students s ON s.course_id = d.course_id AND s.institution_id = $1" },
	{ "SeedLessons", "SeedAttendances",
	  "INSERT INTO academic.lessons (institution_id, class_id, held_on, topic)"
	  " SELECT $1, c.id, current_date - 70 + 7 * g, 'Lesson ' || g"
	  " FROM academic.classes c, generate_series(1, 10) g WHERE c.institution_id = $1" },
	{ "SeedAttendances", "SeedActivities",
	  "INSERT INTO academic.attendances (institution_id, lesson_id, student_id, present)"
	  " SELECT $1, l.id, e.student_id, random() > 0.1"
	  " FROM academic.lessons l JOIN academic.enrollments e ON e.class_id = l.class_id"
	  " WHERE l.institution_id = $1" },
	/* past coursework: the students are not told again */
	{ "SeedActivities", "SeedGrades",
	  "INSERT INTO academic.activities (institution_id, class_id, title, due_on, notify_students)"
	  " SELECT $1, c.id, 'Assignment ' || g, current_date + 7 * g, false"
	  " FROM academic.classes c, generate_series(1, 2) g WHERE c.institution_id = $1" },
	{ "SeedGrades", NULL,
	  "INSERT INTO academic.grades (institution_id, activity_id, student_id, value)"
	  " SELECT $1, a.id, e.student_id, round((random() * 10)::numeric, 2)"
	  " FROM academic.activities a JOIN academic.enrollments e ON e.class_id = a.class_id"
	  " WHERE a.institution_id = $1" },
};

static int seed(lote_ctx *ctx, void *udata)
{
	const struct seed_step *step = udata;
	static const Oid types[2] = { 2950 /* uuid */, 23 /* int4 */ };
	char students[32];
	int rc = 0;
	lote_error err = { 0 };
	long long n = data_int(ctx, "students");
	if (n < 1 || n > 100000)
		return lote_ctx_fail_permanent(ctx, "students must be 1..100000, got %lld", n);
	snprintf(students, sizeof students, "%lld", n);
	const char *p[2] = { lote_ctx_institution(ctx), students };
	PGresult *res = hq(ctx, &rc, step->sql, 2, types, p);
	if (!res)
		return rc;
	PQclear(res);
	if (step->next &&
	    lote_ctx_enqueue(ctx, step->next, lote_ctx_data(ctx), NULL, NULL, &err) < 0)
		return lote_ctx_fail(ctx, "enqueue %s: %s", step->next, err.message);
	return 0;
}

/* Event InstitutionCreated → the first step of the chain. */
static int on_institution_created(lote_ctx *ctx, void *udata)
{
	lote_error err = { 0 };
	json_t *n = json_object_get(lote_ctx_data(ctx), "students");
	(void)udata;
	json_t *data = json_pack("{sI}", "students", json_is_integer(n) ? json_integer_value(n) : 300);
	int rc = lote_ctx_enqueue(ctx, seed_steps[0].type, data, NULL, NULL, &err);
	json_decref(data);
	return rc < 0 ? lote_ctx_fail(ctx, "enqueue: %s", err.message) : 0;
}

/* ---------------------------------------------------------------------
 * The program.
 */

struct args {
	const char *database_url, *name, *title, *klass, *institution;
	int workers, students;
};

static int parse_int(const char *flag, const char *v, int lo, int hi)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || *end || end == v || n < lo || n > hi)
		usage_error("%s: %s is not an integer from %d to %d", flag, v, lo, hi);
	return (int)n;
}

static void parse(int argc, char **argv, struct args *a)
{
	for (int i = 2; i < argc; i++) {
		const char *f = argv[i];
		if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
			fputs(usage_text, stdout);
			exit(0);
		}
		if (i + 1 >= argc)
			usage_error("unknown option or missing value: %s", f);
		const char *v = argv[++i];
		if (!strcmp(f, "--database-url"))
			a->database_url = v;
		else if (!strcmp(f, "--workers"))
			a->workers = parse_int(f, v, 1, 256);
		else if (!strcmp(f, "--students"))
			a->students = parse_int(f, v, 1, 100000);
		else if (!strcmp(f, "--smtp"))
			g_smtp_url = v;
		else if (!strcmp(f, "--from"))
			g_mail_from = v;
		else if (!strcmp(f, "--name"))
			a->name = v;
		else if (!strcmp(f, "--title"))
			a->title = v;
		else if (!strcmp(f, "--class"))
			a->klass = v;
		else if (!strcmp(f, "--institution"))
			a->institution = v;
		else
			usage_error("unknown option %s", f);
	}
}

static int die_pg(PGconn *c, PGresult *res, const char *what)
{
	fprintf(stderr, "lote-academic: %s: %s", what,
	        res ? PQresultErrorMessage(res) : PQerrorMessage(c));
	PQclear(res);
	PQfinish(c);
	return 1;
}

static PGresult *q(PGconn *c, const char *sql, int n, const char *const *params)
{
	PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return res;
	fprintf(stderr, "lote-academic: %s", PQresultErrorMessage(res));
	PQclear(res);
	return NULL;
}

static void quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* Connects, migrates schema lote and applies schema academic. */
static PGconn *setup(const char *url)
{
	lote_error err = { 0 };
	PGconn *c = PQconnectdb(url);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "lote-academic: connect: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, quiet, NULL); /* "already exists, skipping" */
	if (lote_migrate(c, NULL, &err) < 0) {
		fprintf(stderr, "lote-academic: migrate: %s\n", err.message);
		PQfinish(c);
		return NULL;
	}
	PGresult *res = PQexec(c, "SELECT pg_advisory_lock(hashtext('lote-academic schema'))");
	PQclear(res);
	res = PQexec(c, academic_schema_sql);
	/* the script ends with SELECT lote.capture(…) */
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
	if (!ok)
		fprintf(stderr, "lote-academic: schema academic: %s", PQresultErrorMessage(res));
	PQclear(res);
	PQclear(PQexec(c, "SELECT pg_advisory_unlock(hashtext('lote-academic schema'))"));
	if (!ok) {
		PQfinish(c);
		return NULL;
	}
	return c;
}

static int cmd_create_institution(PGconn *c, const struct args *a)
{
	char students[32];
	if (!a->name)
		usage_error("create-institution needs --name NAME");
	snprintf(students, sizeof students, "%d", a->students ? a->students : 300);
	const char *p[2] = { a->name, students };
	PGresult *res = q(c,
		"WITH i AS (INSERT INTO academic.institutions (name) VALUES ($1) RETURNING id, name)"
		" SELECT i.id, lote.emit(i.id, 'Institution', i.id::text, 'InstitutionCreated',"
		"  jsonb_build_object('name', i.name, 'students', $2::int)) FROM i", 2, p);
	if (!res)
		return die_pg(c, NULL, "create-institution");
	printf("%s\n", PQgetvalue(res, 0, 0));
	fprintf(stderr, "lote-academic: institution %s created (event %s); seeding %s students\n",
	        PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), students);
	PQclear(res);
	PQfinish(c);
	return 0;
}

static int cmd_publish_activity(PGconn *c, const struct args *a)
{
	if (!a->klass || !a->title)
		usage_error("publish-activity needs --class ID and --title TITLE");
	parse_int("--class", a->klass, 1, 2147483647);
	const char *p[2] = { a->klass, a->title };
	/* One statement is one transaction: the capture trigger records the
	 * event with the row, so both commit together or not at all. The
	 * event's id is the last the session drew from lote.events' sequence. */
	PGresult *res = q(c,
		"WITH a AS (INSERT INTO academic.activities (institution_id, class_id, title, due_on)"
		"  SELECT c.institution_id, c.id, $2, current_date + 7 FROM academic.classes c"
		"  WHERE c.id = $1::bigint RETURNING id)"
		" SELECT id FROM a", 2, p);
	if (!res)
		return die_pg(c, NULL, "publish-activity");
	if (PQntuples(res) == 0) {
		fprintf(stderr, "lote-academic: publish-activity: no class %s\n", a->klass);
		PQclear(res);
		PQfinish(c);
		return 1;
	}
	PGresult *ev = q(c, "SELECT currval(pg_get_serial_sequence('lote.events', 'id'))", 0, NULL);
	if (!ev) {
		PQclear(res);
		return die_pg(c, NULL, "publish-activity");
	}
	printf("%s %s\n", PQgetvalue(res, 0, 0), PQgetvalue(ev, 0, 0));
	PQclear(ev);
	PQclear(res);
	PQfinish(c);
	return 0;
}

static int cmd_classes(PGconn *c, const struct args *a)
{
	const char *p[1] = { a->institution };
	PGresult *res = q(c,
		"SELECT c.id, c.institution_id, (SELECT count(*) FROM academic.enrollments e"
		"  WHERE e.class_id = c.id), c.name FROM academic.classes c"
		" WHERE $1::uuid IS NULL OR c.institution_id = $1::uuid ORDER BY c.id", 1, p);
	if (!res)
		return die_pg(c, NULL, "classes");
	for (int i = 0; i < PQntuples(res); i++)
		printf("%s\t%s\t%s\t%s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
		       PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
	PQclear(res);
	PQfinish(c);
	return 0;
}

static int cmd_students(PGconn *c, const struct args *a)
{
	if (!a->klass)
		usage_error("students needs --class ID");
	parse_int("--class", a->klass, 1, 2147483647);
	const char *p[1] = { a->klass };
	PGresult *res = q(c,
		"SELECT s.id, s.email, s.name FROM academic.enrollments e"
		" JOIN academic.students s ON s.id = e.student_id"
		" WHERE e.class_id = $1::bigint ORDER BY s.id", 1, p);
	if (!res)
		return die_pg(c, NULL, "students");
	for (int i = 0; i < PQntuples(res); i++)
		printf("%s\t%s\t%s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
		       PQgetvalue(res, i, 2));
	PQclear(res);
	PQfinish(c);
	return 0;
}

static int reg_command(lote_engine *e, const char *type, lote_handler_fn fn, void *udata,
                       const lote_handler_opts *o)
{
	lote_error err = { 0 };
	if (lote_engine_on_command(e, type, fn, udata, o, &err) < 0) {
		fprintf(stderr, "lote-academic: register %s: %s\n", type, err.message);
		return -1;
	}
	return 0;
}

static int cmd_run(const struct args *a)
{
	lote_engine_options o;
	lote_engine *e = NULL;
	lote_error err = { 0 };
	lote_engine_options_init(&o);
	o.conninfo = a->database_url;
	o.workers = a->workers ? a->workers : 4;
	o.name = "lote-academic";
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "lote-academic: curl_global_init failed\n");
		return 1;
	}
	if (lote_engine_new(&o, &e, &err) < 0) {
		fprintf(stderr, "lote-academic: %s\n", err.message);
		return 1;
	}
	/* Each email retried on its own, quickly: a local server that said
	 * "try later" usually means it. */
	lote_handler_opts mail = { .max_attempts = MAIL_ATTEMPTS, .timeout_ms = 60000,
	                           .retry = { LOTE_RETRY_EXPONENTIAL, 500, 30000, 0.2 } };
	int bad = 0;
	if (lote_engine_on_event(e, "ClassActivityCreated", on_class_activity_created, NULL, NULL,
	                         &err) < 0 ||
	    lote_engine_on_event(e, "InstitutionCreated", on_institution_created, NULL, NULL,
	                         &err) < 0) {
		fprintf(stderr, "lote-academic: register: %s\n", err.message);
		bad = 1;
	}
	bad |= reg_command(e, "NotifyNewClassActivity", notify_new_class_activity, NULL, NULL);
	bad |= reg_command(e, "SendNewClassActivityEmail", send_new_class_activity_email, NULL,
	                   &mail);
	bad |= reg_command(e, "NotifyTeacherEmailsSent", notify_teacher_emails_sent, NULL, NULL);
	for (size_t i = 0; i < sizeof seed_steps / sizeof seed_steps[0]; i++)
		bad |= reg_command(e, seed_steps[i].type, seed, (void *)&seed_steps[i], NULL);
	if (bad) {
		lote_engine_free(e);
		return 1;
	}
	fprintf(stderr, "lote-academic: running, %d workers, SMTP %s\n", o.workers, g_smtp_url);
	int rc = lote_engine_run(e, &err);
	if (rc < 0)
		fprintf(stderr, "lote-academic: %s\n", err.message);
	lote_engine_free(e);
	curl_global_cleanup();
	return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct args a = { 0 };
	if (argc < 2)
		usage_error("a command is needed: run, create-institution, publish-activity, classes, students");
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (getenv("ACADEMIC_SMTP_URL") && *getenv("ACADEMIC_SMTP_URL"))
		g_smtp_url = getenv("ACADEMIC_SMTP_URL");
	parse(argc, argv, &a);
	if (!a.database_url)
		a.database_url = getenv("LOTE_DATABASE_URL");
	if (!a.database_url || !*a.database_url)
		usage_error("no database: give --database-url URL or set LOTE_DATABASE_URL"
		            " (build/lote pg url prints the embedded cluster's)");
	if (strcmp(cmd, "run") && strcmp(cmd, "create-institution") &&
	    strcmp(cmd, "publish-activity") && strcmp(cmd, "classes") && strcmp(cmd, "students"))
		usage_error("unknown command %s", cmd);
	PGconn *c = setup(a.database_url);
	if (!c)
		return 1;
	if (!strcmp(cmd, "create-institution"))
		return cmd_create_institution(c, &a);
	if (!strcmp(cmd, "publish-activity"))
		return cmd_publish_activity(c, &a);
	if (!strcmp(cmd, "classes"))
		return cmd_classes(c, &a);
	if (!strcmp(cmd, "students"))
		return cmd_students(c, &a);
	PQfinish(c);
	return cmd_run(&a);
}
