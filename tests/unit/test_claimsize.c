/* Claim sizing: fast handlers climb to the batch limit by doublings, slow
 * ones drop to one row at once, a shallow queue does not inflate claims. */
#include "claimsize.h"
#include "testlib.h"

static void starts_small(void **state)
{
	(void)state;
	assert_int_equal(lote__claim_first(1000), LOTE__CLAIM_START);
	assert_int_equal(lote__claim_first(4), 4);
	assert_int_equal(lote__claim_first(1), 1);
}

/* No-op handlers: a group takes about 2 ms of fixed cost (the claim's
 * scan, round trips, commits) plus 20 us a row. 10, 20, 40, … doubling,
 * capped by the batch option. */
static void fast_handlers_grow_to_the_limit(void **state)
{
	int size = lote__claim_first(1000), steps = 0;
	(void)state;
	while (size < 1000 && steps < 20) {
		int next = lote__claim_next(size, size, 2000 + (int64_t)size * 20, 1000);
		assert_true(next > size);
		assert_true(next <= 2 * size);
		size = next;
		steps++;
	}
	assert_int_equal(size, 1000);
	assert_true(steps <= 7);
	/* and stays there */
	assert_int_equal(lote__claim_next(1000, 1000, 22000, 1000), 1000);
	/* at 30 us a row it settles where a group takes ~25 ms */
	assert_int_equal(lote__claim_next(1000, 1000, 2000 + 1000 * 30, 1000), 781);
	/* a lower limit is respected */
	assert_int_equal(lote__claim_next(80, 80, 80 * 30, 100), 100);
}

/* 100 ms handlers: after one group, one row at a time. */
static void slow_handlers_shrink_at_once(void **state)
{
	(void)state;
	assert_int_equal(lote__claim_next(1000, 1000, 1000LL * 100000, 1000), 1);
	assert_int_equal(lote__claim_next(10, 10, 10LL * 100000, 1000), 1);
	/* 5 ms handlers: five to a group of ~25 ms */
	assert_int_equal(lote__claim_next(640, 640, 640LL * 5000, 1000), 5);
	/* a slow handler followed by fast ones grows back */
	assert_int_equal(lote__claim_next(1, 1, 30, 1000), 2);
}

/* A claim that came back short says the queue is shallow: asking for
 * more would not have brought more, so the size holds. */
static void short_claims_do_not_grow(void **state)
{
	(void)state;
	assert_int_equal(lote__claim_next(10, 3, 3 * 30, 1000), 10);
	assert_int_equal(lote__claim_next(640, 100, 100 * 30, 1000), 640);
	/* but they still shrink when slow */
	assert_int_equal(lote__claim_next(640, 2, 2 * 100000, 1000), 1);
}

/* A clock that did not move (a group faster than a microsecond) counts
 * as fast, never divides by zero. */
static void zero_time(void **state)
{
	(void)state;
	assert_int_equal(lote__claim_next(10, 10, 0, 1000), 20);
	assert_int_equal(lote__claim_next(10, 10, -5, 1000), 20);
}

/* A claim that came back short and took long read past rows it could not
 * take. A full slow one is a busy server, a short fast one a shallow
 * queue. */
static void slow_claims_switch_to_skipping(void **state)
{
	(void)state;
	assert_true(lote__claim_slow(10, 0, 40000));        /* idle, behind delayed rows */
	assert_true(lote__claim_slow(1000, 999, LOTE__CLAIM_SLOW_US + 1));
	assert_false(lote__claim_slow(10, 1, 300));         /* a shallow queue */
	assert_false(lote__claim_slow(10, 0, LOTE__CLAIM_SLOW_US));
	assert_false(lote__claim_slow(1000, 1000, 15000));  /* 1 000 due rows */
	assert_false(lote__claim_slow(158, 158, 25000));    /* 8 workers on 2 cores */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(starts_small),
		cmocka_unit_test(fast_handlers_grow_to_the_limit),
		cmocka_unit_test(slow_handlers_shrink_at_once),
		cmocka_unit_test(short_claims_do_not_grow),
		cmocka_unit_test(zero_time),
		cmocka_unit_test(slow_claims_switch_to_skipping),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
