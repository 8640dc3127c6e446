/* Unit tests of duration parsing and formatting (no database). */
#include <string.h>

#include "testlib.h"

static void parses_units(void **state)
{
	static const struct { const char *in; int64_t ms; } ok[] = {
		{ "0", 0 }, { "250", 250 }, { "500ms", 500 }, { "3s", 3000 },
		{ "5m", 300000 }, { "1h", 3600000 }, { "2d", 172800000 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int64_t ms = -1;
		lote_error err = { 0 };
		assert_int_equal(lote_duration_parse(ok[i].in, &ms, &err), 0);
		assert_int_equal(ms, ok[i].ms);
	}
}

static void rejects_bad_input_and_leaves_output(void **state)
{
	static const char *bad[] = { "", "s", "-1s", "3x", "3 s", "1.5s", "3sec",
	                             "99999999999999999999ms", "999999999d" };
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t ms = 42;
		lote_error err = { 0 };
		assert_int_equal(lote_duration_parse(bad[i], &ms, &err), LOTE_EINVAL);
		assert_int_equal(ms, 42);
		assert_int_equal(err.code, LOTE_EINVAL);
		assert_true(strlen(err.message) > 0);
	}
	assert_int_equal(lote_duration_parse(NULL, NULL, NULL), LOTE_EINVAL);
}

static void formats_shortest_exact_unit(void **state)
{
	char buf[32];
	(void)state;
	assert_string_equal(lote_duration_format(1500, buf, sizeof(buf)), "1500ms");
	assert_string_equal(lote_duration_format(3000, buf, sizeof(buf)), "3s");
	assert_string_equal(lote_duration_format(300000, buf, sizeof(buf)), "5m");
	assert_string_equal(lote_duration_format(3600000, buf, sizeof(buf)), "1h");
	assert_string_equal(lote_duration_format(0, buf, sizeof(buf)), "0ms");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parses_units),
		cmocka_unit_test(rejects_bad_input_and_leaves_output),
		cmocka_unit_test(formats_shortest_exact_unit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
