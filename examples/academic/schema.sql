-- The academic example's own schema, beside schema lote. Applied by
-- lote-academic at start (idempotent, under an advisory lock). Every table
-- carries institution_id, the lote tenant, so it distributes like lote's.
CREATE SCHEMA IF NOT EXISTS academic;

CREATE TABLE IF NOT EXISTS academic.institutions (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	name text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS academic.courses (
	id bigserial PRIMARY KEY,
	institution_id uuid NOT NULL REFERENCES academic.institutions,
	name text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS academic.disciplines (
	id bigserial PRIMARY KEY,
	institution_id uuid NOT NULL REFERENCES academic.institutions,
	course_id bigint NOT NULL REFERENCES academic.courses,
	name text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

-- which discipline a course teaches in which semester
CREATE TABLE IF NOT EXISTS academic.curricula (
	id bigserial PRIMARY KEY,
	institution_id uuid NOT NULL REFERENCES academic.institutions,
	course_id bigint NOT NULL REFERENCES academic.courses,
	discipline_id bigint NOT NULL REFERENCES academic.disciplines,
	semester int NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS academic.students (
	id bigserial PRIMARY KEY,
	institution_id uuid NOT NULL REFERENCES academic.institutions,
	course_id bigint REFERENCES academic.courses,
	name text NOT NULL,
	email text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS academic.teachers (
	id bigserial PRIMARY KEY,
	institution_id uuid NOT NULL REFERENCES academic.institutions,
	name text NOT NULL,
	email text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS academic.classes (
	id bigserial PRIMARY KEY,
	institution_id uuid NOT NULL REFERENCES academic.institutions,
	discipline_id bigint NOT NULL REFERENCES academic.disciplines,
	teacher_id bigint NOT NULL REFERENCES academic.teachers,
	name text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS academic.enrollments (
	id bigserial PRIMARY KEY,
	institution_id uuid NOT NULL REFERENCES academic.institutions,
	class_id bigint NOT NULL REFERENCES academic.classes,
	student_id bigint NOT NULL REFERENCES academic.students,
	created_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (class_id, student_id)
);

CREATE TABLE IF NOT EXISTS academic.lessons (
	id bigserial PRIMARY KEY,
	institution_id uuid NOT NULL REFERENCES academic.institutions,
	class_id bigint NOT NULL REFERENCES academic.classes,
	held_on date NOT NULL,
	topic text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS academic.attendances (
	id bigserial PRIMARY KEY,
	institution_id uuid NOT NULL REFERENCES academic.institutions,
	lesson_id bigint NOT NULL REFERENCES academic.lessons,
	student_id bigint NOT NULL REFERENCES academic.students,
	present boolean NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS academic.activities (
	id bigserial PRIMARY KEY,
	institution_id uuid NOT NULL REFERENCES academic.institutions,
	class_id bigint NOT NULL REFERENCES academic.classes,
	title text NOT NULL,
	due_on date,
	notify_students boolean NOT NULL DEFAULT true,
	created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE academic.activities ADD COLUMN IF NOT EXISTS notify_students boolean NOT NULL DEFAULT true;

CREATE TABLE IF NOT EXISTS academic.grades (
	id bigserial PRIMARY KEY,
	institution_id uuid NOT NULL REFERENCES academic.institutions,
	activity_id bigint NOT NULL REFERENCES academic.activities,
	student_id bigint NOT NULL REFERENCES academic.students,
	value numeric(4,2) NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

-- one notification per thing that happened; user_notifications fan it out
-- to the people who should see it (and record when its email went)
CREATE TABLE IF NOT EXISTS academic.notifications (
	id bigserial PRIMARY KEY,
	institution_id uuid NOT NULL REFERENCES academic.institutions,
	kind text NOT NULL,           -- 'activity_created' | 'activity_emails_sent'
	activity_id bigint REFERENCES academic.activities,
	title text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS academic.user_notifications (
	id bigserial PRIMARY KEY,
	institution_id uuid NOT NULL REFERENCES academic.institutions,
	notification_id bigint NOT NULL REFERENCES academic.notifications,
	user_kind text NOT NULL CHECK (user_kind IN ('student', 'teacher')),
	user_id bigint NOT NULL,
	emailed_at timestamptz,
	read_at timestamptz,
	created_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (notification_id, user_kind, user_id)
);

CREATE INDEX IF NOT EXISTS enrollments_student ON academic.enrollments (student_id);
CREATE INDEX IF NOT EXISTS activities_class ON academic.activities (class_id);
CREATE INDEX IF NOT EXISTS lessons_class ON academic.lessons (class_id);
CREATE INDEX IF NOT EXISTS user_notifications_user ON academic.user_notifications (user_kind, user_id);

-- Flow 1's event is recorded by the interceptor: every activity inserted
-- with notify_students records ClassActivityCreated in the inserting
-- transaction, carrying the row's id, class and title. (Flow 2's
-- InstitutionCreated is emitted explicitly with lote.emit instead.)
SELECT lote.capture('academic.activities', 'ClassActivityCreated',
                    columns => ARRAY['id', 'class_id', 'title'],
                    entity_type => 'ClassActivity',
                    condition => 'NEW.notify_students');
