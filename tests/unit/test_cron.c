/* Cron expressions: every valid form, the next match (leap days, month
 * ends, Vixie day-of-month OR day-of-week), and clear errors. */
#include <string.h>

#include "cron.h"
#include "testlib.h"

/* Next match after `after` ("YYYY-MM-DD HH:MM") as text. */
static const char *next_of(const char *expr, const char *after)
{
	static char buf[32];
	lote__cron c;
	lote__civil a, n;
	lote_error err = { 0 };
	if (lote__cron_parse(expr, &c, &err) < 0)
		fail_msg("%s: %s", expr, err.message);
	assert_int_equal(lote__civil_parse(after, &a), 0);
	if (lote__cron_next(&c, &a, &n, &err) < 0)
		return "never";
	lote__civil_format(&n, buf, sizeof(buf));
	return buf;
}

static void valid_forms(void **state)
{
	(void)state;
	assert_string_equal(next_of("* * * * *", "2026-01-01 00:00"), "2026-01-01 00:01");
	assert_string_equal(next_of("*/15 * * * *", "2026-01-01 00:14"), "2026-01-01 00:15");
	assert_string_equal(next_of("*/15 * * * *", "2026-01-01 00:45"), "2026-01-01 01:00");
	assert_string_equal(next_of("5,10-12 * * * *", "2026-01-01 00:10"), "2026-01-01 00:11");
	assert_string_equal(next_of("0 9-17/4 * * *", "2026-01-01 09:00"), "2026-01-01 13:00");
	assert_string_equal(next_of("0 3 * * *", "2026-01-31 03:00"), "2026-02-01 03:00");
	assert_string_equal(next_of("0 0 1 * *", "2026-12-15 10:00"), "2027-01-01 00:00");
	assert_string_equal(next_of("0 0 29 2 *", "2026-03-01 00:00"), "2028-02-29 00:00");
	assert_string_equal(next_of("0 0 31 * *", "2026-04-01 00:00"), "2026-05-31 00:00");
	/* names, case-insensitive; 7 is Sunday */
	assert_string_equal(next_of("0 12 * JAN-mar mon-FRI", "2026-03-31 12:00"), "2027-01-01 12:00");
	assert_string_equal(next_of("0 0 * * sun", "2026-11-29 00:00"), "2026-12-06 00:00");
	assert_string_equal(next_of("0 0 * * 7", "2026-11-29 00:00"), "2026-12-06 00:00");
	assert_string_equal(next_of("0 0 * * 0", "2026-11-28 23:59"), "2026-11-29 00:00");
	/* both day fields restricted: either matches (the 13th or a Friday) */
	assert_string_equal(next_of("0 0 13 * 5", "2026-11-01 00:00"), "2026-11-06 00:00");
	assert_string_equal(next_of("0 0 13 * 5", "2026-11-06 00:00"), "2026-11-13 00:00");
	/* one restricted: both must hold (*, so only Fridays) */
	assert_string_equal(next_of("0 0 * * 5", "2026-11-06 00:00"), "2026-11-13 00:00");
	/* macros and spacing */
	assert_string_equal(next_of("@hourly", "2026-01-01 00:30"), "2026-01-01 01:00");
	assert_string_equal(next_of("@daily", "2026-01-01 00:30"), "2026-01-02 00:00");
	assert_string_equal(next_of("@midnight", "2026-01-01 00:30"), "2026-01-02 00:00");
	assert_string_equal(next_of("@weekly", "2026-11-29 00:00"), "2026-12-06 00:00");
	assert_string_equal(next_of("@monthly", "2026-01-01 00:00"), "2026-02-01 00:00");
	assert_string_equal(next_of("@YEARLY", "2026-01-01 00:00"), "2027-01-01 00:00");
	assert_string_equal(next_of("@annually", "2026-06-01 00:00"), "2027-01-01 00:00");
	assert_string_equal(next_of("  0   3 * *   * ", "2026-01-01 00:00"), "2026-01-01 03:00");
	/* year end */
	assert_string_equal(next_of("59 23 31 12 *", "2026-12-31 23:59"), "2027-12-31 23:59");
	/* never */
	assert_string_equal(next_of("0 0 30 2 *", "2026-01-01 00:00"), "never");
}

static void errors(void **state)
{
	static const struct { const char *expr, *want; } bad[] = {
		{ "", "empty cron expression" },
		{ "   ", "empty cron expression" },
		{ "* * * *", "has 4 fields, expected 5" },
		{ "* * * * * *", "has 6 fields, expected 5" },
		{ "60 * * * *", "minute 60 out of range 0-59" },
		{ "* 24 * * *", "hour 24 out of range 0-23" },
		{ "* * 0 * *", "day of month 0 out of range 1-31" },
		{ "* * 32 * *", "day of month 32 out of range 1-31" },
		{ "* * * 13 *", "month 13 out of range 1-12" },
		{ "* * * * 8", "day of week 8 out of range 0-7" },
		{ "5-1 * * * *", "backwards range 5-1 in minute field" },
		{ "*/0 * * * *", "step out of range in minute field \"*/0\" (1 to 59)" },
		{ "*/61 * * * *", "step out of range in minute field \"*/61\"" },
		/* too many digits: the text, not a number it never was */
		{ "*/99999999999 * * * *", "step out of range in minute field \"*/99999999999\" (1 to 59)" },
		{ "a * * * *", "bad minute field \"a\"" },
		{ "1,,2 * * * *", "bad minute field \"1,,2\"" },
		{ "* * * foo *", "bad month field \"foo\"" },
		{ "* * * * monday", "bad day of week field \"monday\"" },
		{ "* * * jan-* *", "bad month field" },
		{ "1- * * * *", "bad minute field" },
		{ "*/ * * * *", "bad minute field" },
		{ "-1 * * * *", "bad minute field" },
		{ "99999 * * * *", "bad minute field" },
		{ "@often", "unknown cron macro \"@often\"" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		lote__cron c;
		lote_error err = { 0 };
		int rc = lote__cron_parse(bad[i].expr, &c, &err);
		if (rc != LOTE_EINVAL || !strstr(err.message, bad[i].want))
			fail_msg("\"%s\": got %d \"%s\", want \"%s\"", bad[i].expr, rc, err.message, bad[i].want);
	}
	assert_int_equal(lote__cron_parse(NULL, &(lote__cron){ 0 }, NULL), LOTE_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_forms),
		cmocka_unit_test(errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
