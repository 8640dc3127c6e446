/* The wake-up election among idle workers (wake.h), step by step in one
 * process: who claims, when a wake-up is noted as missed, who gets called
 * to help, and that a dead scout's role is freed. Across processes (races,
 * lost wake-ups) it is tested by integration/engine,
 * idle_workers_claim_once_per_wake_up. */
#include <poll.h>

#include "testlib.h"
#include "wake.h"

static lote__wake *wk;

static int setup(void **state)
{
	lote_error err = { 0 };
	(void)state;
	assert_int_equal(lote__wake_new(4, &wk, &err), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	lote__wake_free(wk);
	wk = NULL;
	return 0;
}

/* Worker i sleeps; after others acted, returns whether it was called (and
 * that its eventfd said so to poll). */
static bool called_while_asleep(int i, void (*act)(void))
{
	struct pollfd p = { .fd = lote__wake_fd(wk, i), .events = POLLIN };
	lote__wake_sleep(wk, i);
	act();
	bool readable = poll(&p, 1, 0) == 1;
	bool called = lote__wake_rise(wk, i);
	assert_int_equal(readable, called);
	return called;
}

static void nothing(void) {}

static void herd_then_claim(void)
{
	assert_true(lote__wake_elect(wk, 0, lote__wake_clock()));
	/* woken by the same NOTIFY before the scout sent its claim: nothing
	 * to note, the claim will see the commit */
	assert_false(lote__wake_elect(wk, 1, lote__wake_clock()));
	assert_false(lote__wake_elect(wk, 2, lote__wake_clock()));
	assert_true(lote__wake_elect(wk, 0, lote__wake_clock())); /* still ours */
	lote__wake_claiming(wk, 0);
	assert_false(lote__wake_claimed(wk, 0, 1, 10));
}

static void late_reader_woken_before_the_claim(void)
{
	int64_t woke = lote__wake_clock();
	assert_true(lote__wake_elect(wk, 0, lote__wake_clock()));
	lote__wake_claiming(wk, 0);
	/* it reads its wake-up only now, but was woken before the claim was
	 * sent: the claim saw the commit, nothing to note */
	assert_false(lote__wake_elect(wk, 1, woke));
	assert_false(lote__wake_claimed(wk, 0, 1, 10));
}

/* What counts is when the loser was woken, not when it got the CPU. */
static void wake_up_before_the_claim_was_sent_is_not_missed(void **state)
{
	(void)state;
	assert_false(called_while_asleep(3, late_reader_woken_before_the_claim));
}

static void one_scout_per_wake_up(void **state)
{
	(void)state;
	/* nothing was missed: nobody is called to help */
	assert_false(called_while_asleep(3, herd_then_claim));
	/* the role is free again */
	assert_true(lote__wake_elect(wk, 3, lote__wake_clock()));
	lote__wake_claiming(wk, 3);
	assert_false(lote__wake_claimed(wk, 3, 0, 10));
}

/* A wake-up after the claim was sent may be for a row its snapshot
 * missed: a scout that got nothing claims again itself. */
static void missed_wake_up_during_an_empty_claim_claims_again(void **state)
{
	(void)state;
	assert_true(lote__wake_elect(wk, 0, lote__wake_clock()));
	lote__wake_claiming(wk, 0);
	assert_false(lote__wake_elect(wk, 1, lote__wake_clock()));
	assert_true(lote__wake_claimed(wk, 0, 0, 10));
	/* the note was used up */
	assert_true(lote__wake_elect(wk, 0, lote__wake_clock()));
	lote__wake_claiming(wk, 0);
	assert_false(lote__wake_claimed(wk, 0, 0, 10));
}

static void scout_gets_work_and_misses_a_wake_up(void)
{
	assert_true(lote__wake_elect(wk, 0, lote__wake_clock()));
	lote__wake_claiming(wk, 0);
	assert_false(lote__wake_elect(wk, 1, lote__wake_clock()));
	assert_false(lote__wake_claimed(wk, 0, 3, 10)); /* busy now */
}

/* A scout that got work hands a missed wake-up to a sleeper. */
static void busy_scout_calls_a_sleeper_for_a_missed_wake_up(void **state)
{
	(void)state;
	assert_true(called_while_asleep(2, scout_gets_work_and_misses_a_wake_up));
}

static void full_claim(void)
{
	assert_false(lote__wake_claimed(wk, 1, 10, 10));
}

static void short_claim(void)
{
	assert_false(lote__wake_claimed(wk, 1, 9, 10));
}

/* Any worker whose claim came back full calls one sleeper to help; a
 * short claim calls nobody; with nobody asleep a call is dropped. */
static void full_claims_call_a_sleeper(void **state)
{
	(void)state;
	assert_true(called_while_asleep(3, full_claim));
	assert_false(called_while_asleep(3, short_claim));
	full_claim();             /* nobody asleep */
	assert_false(called_while_asleep(3, nothing)); /* and nothing left over */
}

static void two_full_claims(void)
{
	full_claim();
	full_claim();
}

/* One call per sleeper: two full claims with two asleep call both. */
static void each_call_wakes_another_sleeper(void **state)
{
	struct pollfd p[2] = { { .fd = lote__wake_fd(wk, 2), .events = POLLIN },
	                       { .fd = lote__wake_fd(wk, 3), .events = POLLIN } };
	(void)state;
	lote__wake_sleep(wk, 2);
	lote__wake_sleep(wk, 3);
	two_full_claims();
	assert_int_equal(poll(p, 2, 0), 2);
	assert_true(lote__wake_rise(wk, 2));
	assert_true(lote__wake_rise(wk, 3));
}

static void scout_dies(void)
{
	assert_true(lote__wake_elect(wk, 0, lote__wake_clock()));
	lote__wake_claiming(wk, 0);
	lote__wake_lost(wk, 0);
}

/* The supervisor frees a dead scout's role and calls a sleeper in its
 * place (its claim may never have happened). */
static void dead_scout_is_replaced(void **state)
{
	(void)state;
	assert_true(called_while_asleep(1, scout_dies));
	assert_true(lote__wake_elect(wk, 2, lote__wake_clock()));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(one_scout_per_wake_up, setup, teardown),
		cmocka_unit_test_setup_teardown(wake_up_before_the_claim_was_sent_is_not_missed, setup, teardown),
		cmocka_unit_test_setup_teardown(missed_wake_up_during_an_empty_claim_claims_again, setup, teardown),
		cmocka_unit_test_setup_teardown(busy_scout_calls_a_sleeper_for_a_missed_wake_up, setup, teardown),
		cmocka_unit_test_setup_teardown(full_claims_call_a_sleeper, setup, teardown),
		cmocka_unit_test_setup_teardown(each_call_wakes_another_sleeper, setup, teardown),
		cmocka_unit_test_setup_teardown(dead_scout_is_replaced, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
