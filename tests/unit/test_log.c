/* Unit tests of the one-line form of a multi-line text in the log (no
 * database). */
#include <string.h>

#include "log.h"
#include "testlib.h"

static void joins_lines(void **state)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "", "" },
		{ "one", "one" },
		{ "exit status 1: send-email\nSMTP timeout after 30ms\n",
		  "exit status 1: send-email | SMTP timeout after 30ms" },
		{ "\n\na\r\n\r\nb\n\n", "a | b" },
		{ "a|b\nc", "a|b | c" },
	};
	char buf[256];
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(lote__log_oneline(buf, sizeof(buf), cases[i].in), cases[i].out);
}

/* A long text keeps the start of its first line and its end, and fits. */
static void keeps_first_words_and_last_words(void **state)
{
	char text[4096], buf[128];
	(void)state;
	strcpy(text, "exit status 1: mailer");
	for (int i = 0; i < 200; i++)
		strcat(text, "\nnoise line");
	strcat(text, "\nSMTP timeout after 30ms");
	lote__log_oneline(buf, sizeof(buf), text);
	assert_true(strlen(buf) == sizeof(buf) - 1);
	assert_true(strncmp(buf, "exit status 1: mailer ... ", 26) == 0);
	assert_non_null(strstr(buf, " | SMTP timeout after 30ms"));
	assert_int_equal(strcmp(buf + strlen(buf) - 25, "| SMTP timeout after 30ms"), 0);
	assert_null(strchr(buf, '\n'));
}

/* Cuts never split a UTF-8 character. */
static void cuts_at_character_boundaries(void **state)
{
	char text[2048] = "", buf[64];
	(void)state;
	for (int i = 0; i < 300; i++)
		strcat(text, "é"); /* two bytes each, one long first line */
	for (size_t size = 64; size > 40; size--) {
		lote__log_oneline(buf, size, text);
		assert_true(strlen(buf) < size);
		const char *gap = strstr(buf, " ... ");
		assert_non_null(gap);
		/* both sides are whole characters: even byte counts of é */
		assert_int_equal((gap - buf) % 2, 0);
		assert_int_equal(strlen(gap + 5) % 2, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(joins_lines),
		cmocka_unit_test(keeps_first_words_and_last_words),
		cmocka_unit_test(cuts_at_character_boundaries),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
