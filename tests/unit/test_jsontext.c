/* Unit tests of the JSON text of reals (no database). */
#include <stdlib.h>
#include <string.h>

#include "jsontext.h"
#include "testlib.h"

static void text_of(const char *in, size_t flags, const char *want)
{
	json_error_t jerr;
	json_t *v = json_loads(in, JSON_DECODE_ANY, &jerr);
	assert_non_null(v);
	char *s = lote__json_text(v, flags);
	assert_non_null(s);
	assert_string_equal(s, want);
	free(s);
	json_decref(v);
}

/* Decimals of up to 15 digits come out as written. */
static void decimals_as_written(void **state)
{
	(void)state;
	text_of("{\"price\":0.1,\"rate\":[1.5,2.25e-5,19.99],\"n\":3}", JSON_COMPACT,
	        "{\"price\":0.1,\"rate\":[1.5,2.25e-5,19.99],\"n\":3}");
	text_of("[123456789.123456]", JSON_COMPACT, "[123456789.123456]");
	text_of("{\"a\":{\"b\":[{\"c\":0.3}]}}", JSON_COMPACT, "{\"a\":{\"b\":[{\"c\":0.3}]}}");
	text_of("{\"whole\":2.0}", JSON_COMPACT, "{\"whole\":2.0}");
}

/* A double that needs 17 digits keeps them (and every real of the value
 * is written with as many): nothing read back differs. */
static void every_double_reads_back(void **state)
{
	static const double values[] = { 0.1 + 0.2, 1.0 / 3.0, 2.0 / 3.0, 1e-300, 123456.789e10, 0.1 };
	(void)state;
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		json_t *v = json_pack("{sfsf}", "x", values[i], "y", 0.1);
		char *s = lote__json_text(v, JSON_COMPACT);
		json_t *back = json_loads(s, 0, NULL);
		assert_non_null(back);
		assert_true(json_real_value(json_object_get(back, "x")) == values[i]);
		assert_true(json_real_value(json_object_get(back, "y")) == 0.1);
		json_decref(back);
		free(s);
		json_decref(v);
	}
	json_t *v = json_pack("[ff]", 0.1 + 0.2, 0.5);
	char *s = lote__json_text(v, JSON_COMPACT);
	assert_string_equal(s, "[0.30000000000000004,0.5]");
	free(s);
	json_decref(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(decimals_as_written),
		cmocka_unit_test(every_double_reads_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
