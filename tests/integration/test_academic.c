/* The academic example (examples/academic) end to end, on real PostgreSQL
 * and a real SMTP server (examples/academic/smtp-sink.py, Debian's
 * python3-aiosmtpd) on a free port: the seed chain of flow 2 in order with
 * its row counts; flow 1 with N students → exactly N emails, each once, the
 * teacher notified once after the last, and the lineage event → command →
 * batch → follow-up; a delivery failing twice retried alone; a delivery
 * failing for good → batch error, then reprocess → success, teacher notified
 * once; an activity whose transaction rolled back → no event, no email. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

#define STUDENTS 60

static char *db, *maildir, *failfile, *smtp_url;
static pid_t smtp_pid, daemon_pid;
static PGconn *conn;
static char institution[64];

static const char *academic_bin(void)
{
	const char *b = getenv("LOTE_ACADEMIC_BIN");
	if (!b)
		fail_msg("LOTE_ACADEMIC_BIN is not set (run through meson test)");
	return b;
}

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 ||
	    getsockname(s, (struct sockaddr *)&a, &len) < 0)
		fail_msg("free port: %s", strerror(errno));
	close(s);
	return ntohs(a.sin_port);
}

static bool port_open(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int s = socket(AF_INET, SOCK_STREAM, 0);
	bool ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
	close(s);
	return ok;
}

/* Forks and execs argv with stdout+stderr appended to log. */
static pid_t spawn(char *const argv[], const char *log)
{
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* Runs lote-academic to completion; returns its first stdout line
 * (malloc'd) or fails the test. */
static char *academic(const char *args)
{
	char *cmd = NULL, line[256] = "";
	if (asprintf(&cmd, "'%s' %s --database-url '%s'", academic_bin(), args, db) < 0)
		fail_msg("oom");
	FILE *p = popen(cmd, "r");
	if (!p || !fgets(line, sizeof line, p))
		line[0] = '\0';
	int st = p ? pclose(p) : -1;
	if (st != 0)
		fail_msg("%s: exit status %d", cmd, st);
	free(cmd);
	line[strcspn(line, "\n")] = '\0';
	return strdup(line);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f)
		fail_msg("cannot write %s", path);
	fputs(text, f);
	fclose(f);
}

/* Emails received for the activity, and how many distinct students. */
static int emails_for(long long activity, int *ret_distinct)
{
	char key[128];
	int n = 0, distinct = 0;
	static char seen[100000];
	memset(seen, 0, sizeof seen);
	snprintf(key, sizeof key, "X-Lote-Idempotency-Key: academic:activity-%lld:student-", activity);
	DIR *d = opendir(maildir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (!strstr(e->d_name, ".eml") || strstr(e->d_name, ".tmp"))
			continue;
		char path[1024], buf[8192];
		snprintf(path, sizeof path, "%s/%s", maildir, e->d_name);
		FILE *f = fopen(path, "r");
		size_t len = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
		if (f)
			fclose(f);
		buf[len] = '\0';
		char *k = strstr(buf, key);
		if (!k)
			continue;
		n++;
		long s = strtol(k + strlen(key), NULL, 10);
		if (s > 0 && s < (long)sizeof seen && !seen[s]++)
			distinct++;
	}
	if (d)
		closedir(d);
	if (ret_distinct)
		*ret_distinct = distinct;
	return n;
}

static int group_setup(void **state)
{
	(void)state;
	db = tl_fresh_db("academic", true);
	conn = tl_connect(db);
	maildir = tl_tmp_path("mail");
	failfile = tl_tmp_path("smtp-fail");
	unlink(failfile);
	char *rm = NULL;
	if (asprintf(&rm, "rm -rf '%s'", maildir) >= 0 && system(rm) != 0)
		fail_msg("rm");
	free(rm);
	int port = free_port();
	char ports[16], *script = NULL, *log = tl_tmp_path("smtp.log");
	snprintf(ports, sizeof ports, "%d", port);
	const char *root = getenv("LOTE_SOURCE_ROOT") ? getenv("LOTE_SOURCE_ROOT") : ".";
	if (asprintf(&script, "%s/examples/academic/smtp-sink.py", root) < 0 ||
	    asprintf(&smtp_url, "smtp://127.0.0.1:%d", port) < 0)
		fail_msg("oom");
	/* Debian's python (python3-aiosmtpd), not whatever python3 is first
	 * on PATH */
	char *sargv[] = { "/usr/bin/python3", script, "--port", ports, "--dir", maildir,
	                  "--fail-file", failfile, NULL };
	smtp_pid = spawn(sargv, log);
	for (int i = 0; i < 500 && !port_open(port); i++)
		usleep(20 * 1000);
	if (!port_open(port))
		fail_msg("smtp-sink did not start (see %s; is python3-aiosmtpd installed?)", log);
	free(script);
	free(log);
	/* the institution first, then the daemon: its seed chain must run */
	char args[64];
	snprintf(args, sizeof args, "create-institution --name Escola --students %d", STUDENTS);
	char *inst = academic(args);
	snprintf(institution, sizeof institution, "%s", inst);
	free(inst);
	char *dlog = tl_tmp_path("daemon.log");
	char *dargv[] = { (char *)academic_bin(), "run", "--database-url", db, "--smtp", smtp_url,
	                  "--workers", "4", NULL };
	daemon_pid = spawn(dargv, dlog);
	free(dlog);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (daemon_pid > 0 && tl_stop(daemon_pid, SIGTERM, 20000) != 0)
		fprintf(stderr, "# lote-academic did not stop cleanly\n");
	if (smtp_pid > 0)
		tl_stop(smtp_pid, SIGTERM, 5000);
	PQfinish(conn);
	free(smtp_url);
	free(maildir);
	free(failfile);
	free(db);
	return 0;
}

static long long count_in(const char *table)
{
	return tl_int(conn, "SELECT count(*) FROM academic.%s WHERE institution_id = '%s'", table,
	              institution);
}

static void seed_chain_completes_in_order(void **state)
{
	static const char *chain[] = { "SeedCourses", "SeedDisciplines", "SeedCurricula",
	                               "SeedStudents", "SeedTeachers", "SeedClasses",
	                               "SeedLessons", "SeedAttendances", "SeedActivities",
	                               "SeedGrades" };
	(void)state;
	assert_true(tl_wait(conn, 60000, "SELECT EXISTS (SELECT 1 FROM lote.commands"
	                                 " WHERE type = 'SeedGrades' AND status = 'success')"));
	/* one command per step, each the child of the one before, the first
	 * enqueued by the event */
	long long prev = 0;
	for (size_t i = 0; i < sizeof chain / sizeof chain[0]; i++) {
		assert_int_equal(tl_int(conn, "SELECT count(*) FROM lote.commands WHERE type = '%s'"
		                              " AND status = 'success' AND institution_id = '%s'",
		                        chain[i], institution), 1);
		long long id = tl_int(conn, "SELECT id FROM lote.commands WHERE type = '%s'", chain[i]);
		if (i == 0)
			assert_string_equal(tl_value(conn, "SELECT e.type || '|' || e.entity_id"
			                                   " FROM lote.commands c JOIN lote.events e"
			                                   " ON e.id = c.event_id WHERE c.id = %lld", id),
			                    tl_value(conn, "SELECT 'InstitutionCreated|' || '%s'", institution));
		else
			assert_int_equal(tl_int(conn, "SELECT parent_id FROM lote.commands WHERE id = %lld",
			                        id), prev);
		prev = id;
	}
	/* 3 courses × 4 disciplines; each student in the 4 classes of its
	 * course; 10 lessons and 2 activities a class */
	assert_int_equal(count_in("courses"), 3);
	assert_int_equal(count_in("disciplines"), 12);
	assert_int_equal(count_in("curricula"), 12);
	assert_int_equal(count_in("students"), STUDENTS);
	assert_int_equal(count_in("teachers"), 2);
	assert_int_equal(count_in("classes"), 12);
	assert_int_equal(count_in("enrollments"), STUDENTS * 4);
	assert_int_equal(count_in("lessons"), 120);
	assert_int_equal(count_in("attendances"), 10 * STUDENTS * 4);
	assert_int_equal(count_in("activities"), 24);
	assert_int_equal(count_in("grades"), 2 * STUDENTS * 4);
	/* the seed's activities are past coursework (notify_students = false):
	 * the capture's condition kept them from announcing themselves */
	assert_int_equal(tl_int(conn, "SELECT count(*) FROM lote.events WHERE type = 'ClassActivityCreated'"), 0);
}

/* A class of the institution and its number of students. */
static long long pick_class(int nth, long long *ret_students)
{
	long long c = tl_int(conn, "SELECT id FROM academic.classes WHERE institution_id = '%s'"
	                           " ORDER BY id OFFSET %d LIMIT 1", institution, nth);
	*ret_students = tl_int(conn, "SELECT count(*) FROM academic.enrollments WHERE class_id = %lld", c);
	return c;
}

static long long publish(long long klass, const char *title)
{
	char args[256];
	snprintf(args, sizeof args, "publish-activity --class %lld --title '%s'", klass, title);
	char *out = academic(args);
	long long id = strtoll(out, NULL, 10);
	free(out);
	assert_true(id > 0);
	return id;
}

static long long teacher_notifications(long long activity)
{
	return tl_int(conn, "SELECT count(*) FROM academic.user_notifications u"
	                    " JOIN academic.notifications n ON n.id = u.notification_id"
	                    " WHERE n.activity_id = %lld AND u.user_kind = 'teacher'", activity);
}

/* The batch of the activity's emails (its lineage from the event). */
static long long batch_of(long long activity)
{
	return tl_int(conn, "SELECT b.id FROM lote.events e"
	                    " JOIN lote.commands c ON c.event_id = e.id AND c.type = 'NotifyNewClassActivity'"
	                    " JOIN lote.batches b ON b.parent_id = c.id"
	                    " WHERE e.type = 'ClassActivityCreated' AND e.entity_type = 'ClassActivity'"
	                    " AND e.entity_id = '%lld'", activity);
}

static bool wait_batch_row(long long activity, int ms)
{
	return tl_wait(conn, ms, "SELECT EXISTS (SELECT 1 FROM lote.events e"
	                         " JOIN lote.commands c ON c.event_id = e.id"
	                         " JOIN lote.batches b ON b.parent_id = c.id"
	                         " WHERE e.entity_id = '%lld' AND e.type = 'ClassActivityCreated')",
	               activity);
}

static void publish_emails_each_student_once_then_teacher(void **state)
{
	long long n, klass = pick_class(0, &n);
	(void)state;
	assert_true(n > 0);
	long long a = publish(klass, "Essay on graphs");
	/* flow 1's event comes from the interceptor, lote.capture's trigger on
	 * academic.activities, with the row's chosen columns */
	assert_string_equal(tl_value(conn, "SELECT event_type || '|' || columns::text || '|' || condition"
	                                   " FROM lote.captures WHERE \"table\" = 'academic.activities'::regclass"),
	                    "ClassActivityCreated|{id,class_id,title}|NEW.notify_students");
	assert_string_equal(tl_value(conn, "SELECT concat_ws('|', entity_type, data->>'id', data->>'class_id', data->>'title')"
	                                   " FROM lote.events WHERE type = 'ClassActivityCreated' AND entity_id = '%lld'", a),
	                    tl_value(conn, "SELECT 'ClassActivity|%lld|%lld|Essay on graphs'", a, klass));
	assert_true(wait_batch_row(a, 30000));
	long long b = batch_of(a);
	assert_true(tl_wait(conn, 30000, "SELECT f.status = 'success' FROM lote.batches b"
	                                 " JOIN lote.commands f ON f.id = b.next_command_id"
	                                 " WHERE b.id = %lld", b));
	/* lineage: event → command → batch (N members) → follow-up */
	assert_string_equal(tl_value(conn, "SELECT concat_ws('|', b.status, b.size, b.type, f.type,"
	                                   " (f.batch_id IS NULL)::text)"
	                                   " FROM lote.batches b JOIN lote.commands f ON f.id = b.next_command_id"
	                                   " WHERE b.id = %lld", b),
	                    tl_value(conn, "SELECT 'success|%lld|SendNewClassActivityEmails|"
	                                   "NotifyTeacherEmailsSent|true'", n));
	assert_int_equal(tl_int(conn, "SELECT count(*) FROM lote.commands WHERE batch_id = %lld"
	                              " AND type = 'SendNewClassActivityEmail' AND status = 'success'", b), n);
	/* one notification per student, each emailed */
	assert_int_equal(tl_int(conn, "SELECT count(*) FROM academic.user_notifications u"
	                              " JOIN academic.notifications n ON n.id = u.notification_id"
	                              " WHERE n.activity_id = %lld AND u.user_kind = 'student'"
	                              " AND u.emailed_at IS NOT NULL", a), n);
	/* N emails at the SMTP server, one per student */
	int distinct = 0;
	assert_int_equal(emails_for(a, &distinct), n);
	assert_int_equal(distinct, n);
	/* the teacher, once, after the last email */
	assert_int_equal(teacher_notifications(a), 1);
	assert_int_equal(tl_int(conn, "SELECT count(*) FROM lote.commands m, academic.notifications n"
	                              " WHERE m.batch_id = %lld AND n.activity_id = %lld"
	                              " AND n.kind = 'activity_emails_sent' AND m.finished_at > n.created_at",
	                        b, a), 0);
}

static void one_delivery_failing_twice_is_retried_alone(void **state)
{
	long long n, klass = pick_class(1, &n);
	(void)state;
	const char *victim = tl_value(conn, "SELECT s.email FROM academic.enrollments e"
	                                    " JOIN academic.students s ON s.id = e.student_id"
	                                    " WHERE e.class_id = %lld ORDER BY s.id LIMIT 1", klass);
	char line[256];
	snprintf(line, sizeof line, "%s 2\n", victim);
	write_file(failfile, line);
	long long a = publish(klass, "Lab report");
	assert_true(wait_batch_row(a, 30000));
	long long b = batch_of(a);
	assert_true(tl_wait(conn, 60000, "SELECT f.status = 'success' FROM lote.batches b"
	                                 " JOIN lote.commands f ON f.id = b.next_command_id"
	                                 " WHERE b.id = %lld", b));
	unlink(failfile);
	/* only that email was retried: attempt 3 for it, 1 for the others */
	assert_int_equal(tl_int(conn, "SELECT count(*) FROM lote.commands WHERE batch_id = %lld"
	                              " AND attempt = 3 AND data->>'to' = '%s'", b, victim), 1);
	assert_int_equal(tl_int(conn, "SELECT count(*) FROM lote.commands WHERE batch_id = %lld"
	                              " AND attempt = 1", b), n - 1);
	assert_int_equal(tl_int(conn, "SELECT count(*) FROM lote.attempts a JOIN lote.commands c"
	                              " ON a.kind = 'command' AND a.row_id = c.id WHERE c.batch_id = %lld", b), 2);
	int distinct = 0;
	assert_int_equal(emails_for(a, &distinct), n);
	assert_int_equal(distinct, n);
	assert_int_equal(teacher_notifications(a), 1);
}

static void delivery_failing_for_good_then_reprocess(void **state)
{
	long long n, klass = pick_class(2, &n);
	(void)state;
	const char *victim = tl_value(conn, "SELECT s.email FROM academic.enrollments e"
	                                    " JOIN academic.students s ON s.id = e.student_id"
	                                    " WHERE e.class_id = %lld ORDER BY s.id DESC LIMIT 1", klass);
	char line[256];
	snprintf(line, sizeof line, "%s *\n", victim);
	write_file(failfile, line);
	long long a = publish(klass, "Final exam");
	assert_true(wait_batch_row(a, 30000));
	long long b = batch_of(a);
	/* 5 attempts with back-off 0.5 s, 1 s, 2 s, 4 s (jitter takes off) */
	assert_true(tl_wait(conn, 60000, "SELECT status = 'error' FROM lote.batches WHERE id = %lld", b));
	assert_int_equal(teacher_notifications(a), 0);
	assert_string_equal(tl_value(conn, "SELECT f.status FROM lote.batches b"
	                                   " JOIN lote.commands f ON f.id = b.next_command_id"
	                                   " WHERE b.id = %lld", b), "awaiting");
	assert_int_equal(emails_for(a, NULL), n - 1);
	/* the server is repaired; the failed member reprocessed */
	unlink(failfile);
	long long failed = tl_int(conn, "SELECT id FROM lote.commands WHERE batch_id = %lld"
	                                " AND status = 'error'", b);
	assert_int_equal(tl_int(conn, "SELECT attempt FROM lote.commands WHERE id = %lld", failed), 5);
	tl_exec(conn, "SELECT lote.reprocess(%lld)", failed);
	assert_true(tl_wait(conn, 30000, "SELECT f.status = 'success' FROM lote.batches b"
	                                 " JOIN lote.commands f ON f.id = b.next_command_id"
	                                 " WHERE b.id = %lld AND b.status = 'success'", b));
	int distinct = 0;
	assert_int_equal(emails_for(a, &distinct), n);
	assert_int_equal(distinct, n);
	assert_int_equal(teacher_notifications(a), 1);
}

static void rolled_back_activity_has_no_event_no_email(void **state)
{
	long long n, klass = pick_class(3, &n);
	(void)state;
	tl_exec(conn, "BEGIN");
	/* the insert alone records the event (lote.capture's trigger) ... */
	long long a = tl_int(conn,
		"INSERT INTO academic.activities (institution_id, class_id, title)"
		" SELECT institution_id, id, 'Never' FROM academic.classes WHERE id = %lld RETURNING id",
		klass);
	assert_int_equal(tl_int(conn, "SELECT count(*) FROM lote.events WHERE type = 'ClassActivityCreated'"
	                              " AND entity_id = '%lld'", a), 1);
	/* ... and goes with it */
	tl_exec(conn, "ROLLBACK");
	/* a later activity goes through, so the daemon had every chance */
	long long later = publish(klass, "After the rollback");
	assert_true(tl_wait(conn, 30000, "SELECT EXISTS (SELECT 1 FROM academic.notifications"
	                                 " WHERE activity_id = %lld AND kind = 'activity_emails_sent')", later));
	assert_int_equal(tl_int(conn, "SELECT count(*) FROM lote.events WHERE entity_type = 'ClassActivity'"
	                              " AND entity_id = '%lld'", a), 0);
	assert_int_equal(emails_for(a, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(seed_chain_completes_in_order),
		cmocka_unit_test(publish_emails_each_student_once_then_teacher),
		cmocka_unit_test(one_delivery_failing_twice_is_retried_alone),
		cmocka_unit_test(delivery_failing_for_good_then_reprocess),
		cmocka_unit_test(rolled_back_activity_has_no_event_no_email),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
