/* jsontext.c - see jsontext.h. */
#include <stdio.h>
#include <stdlib.h>

#include "jsontext.h"

/* The fewest significant digits, 15 to 17, that give back d: 15 holds any
 * decimal of up to 15 digits as written; 17 holds every double. */
static int real_digits(double d)
{
	char buf[40];

	for (int p = 15; p < 17; p++) {
		snprintf(buf, sizeof(buf), "%.*g", p, d);
		if (strtod(buf, NULL) == d)
			return p;
	}
	return 17;
}

/* The most digits a real of v needs (15 when it has none). */
static int most_digits(const json_t *v)
{
	const char *key;
	json_t *item;
	size_t i;
	int most = 15, d;

	switch (json_typeof(v)) {
	case JSON_REAL:
		return real_digits(json_real_value(v));
	case JSON_OBJECT:
		json_object_foreach((json_t *)v, key, item) {
			if ((d = most_digits(item)) > most)
				most = d;
		}
		return most;
	case JSON_ARRAY:
		json_array_foreach(v, i, item) {
			if ((d = most_digits(item)) > most)
				most = d;
		}
		return most;
	default:
		return most;
	}
}

char *lote__json_text(const json_t *v, size_t flags)
{
	/* as json_dumps: no value, no text */
	return v ? json_dumps(v, flags | JSON_REAL_PRECISION(most_digits(v))) : NULL;
}
