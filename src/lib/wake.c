/* wake.c - one claim per wake-up among the idle workers (see wake.h).
 *
 * One atomic holds the scout and its stage: 0 nobody, +(i+1) worker i
 * elected but its claim not sent, -(i+1) its claim sent (at sent_ns). A
 * worker woken before the scout's claim was sent has nothing to note: the
 * commit behind its wake-up came before it was woken, so before that
 * claim's snapshot. Usually the same NOTIFY woke them both. A worker woken
 * after the claim was sent notes the wake-up as missed.
 * missed and the scout are a Dekker pair: the loser writes missed, then
 * reads the scout; the scout clears itself, then reads missed. With
 * sequentially consistent atomics at least one of them sees the other's
 * write, so a wake-up that arrives as the scout finishes is never dropped:
 * either the loser finds the role free and takes it, or the scout finds
 * the note and acts on it. */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "wake.h"

struct lote__wake_slot {
	atomic_int asleep; /* 1 while the worker sleeps and nobody called it */
	int fd;            /* its eventfd */
};

struct lote__wake {
	atomic_int scout;          /* see above */
	_Atomic int64_t sent_ns;   /* when the scout sent its claim */
	atomic_int missed;         /* a wake-up came after the scout sent its claim */
	int n;
	struct lote__wake_slot slot[];
};

static size_t wake_size(int n)
{
	return sizeof(struct lote__wake) + (size_t)n * sizeof(struct lote__wake_slot);
}

int lote__wake_new(int n, lote__wake **ret, lote_error *err)
{
	lote__wake *wk = mmap(NULL, wake_size(n), PROT_READ | PROT_WRITE,
	                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	*ret = NULL;
	if (wk == MAP_FAILED)
		return lote__fail_errno(err, "cannot map the wake-up state");
	atomic_init(&wk->scout, 0);
	atomic_init(&wk->sent_ns, 0);
	atomic_init(&wk->missed, 0);
	wk->n = n;
	for (int i = 0; i < n; i++) {
		atomic_init(&wk->slot[i].asleep, 0);
		wk->slot[i].fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (wk->slot[i].fd < 0) {
			int rc = lote__fail_errno(err, "cannot make a wake-up eventfd");
			wk->n = i;
			lote__wake_free(wk);
			return rc;
		}
	}
	*ret = wk;
	return 0;
}

void lote__wake_free(lote__wake *wk)
{
	if (!wk)
		return;
	for (int i = 0; i < wk->n; i++)
		close(wk->slot[i].fd);
	munmap(wk, wake_size(wk->n));
}

int64_t lote__wake_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int lote__wake_fd(const lote__wake *wk, int i)
{
	return wk->slot[i].fd;
}

/* Wakes one sleeping worker other than self, if there is one. */
static void call_one(lote__wake *wk, int self)
{
	static const uint64_t one = 1;

	for (int k = 1; k <= wk->n; k++) {
		int i = (self + k) % wk->n; /* start past self: spread the calls */
		int expect = 1;

		if (i != self && atomic_compare_exchange_strong(&wk->slot[i].asleep, &expect, 0)) {
			/* a full counter (never: it is read at every rise) would
			 * only mean the worker is already called */
			if (write(wk->slot[i].fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
				continue;
			return;
		}
	}
}

bool lote__wake_elect(lote__wake *wk, int i, int64_t woke_ns)
{
	int me = i + 1;

	for (;;) {
		int v = 0;

		if (atomic_compare_exchange_strong(&wk->scout, &v, me) || v == me || v == -me)
			return true;
		/* its claim is not sent, or was sent after we were woken: it
		 * sees our commit (sent_ns is stored before the stage changes) */
		if (v > 0 || woke_ns <= atomic_load(&wk->sent_ns))
			return false;
		atomic_store(&wk->missed, 1);
		/* the scout may have ended its turn before it could see the note */
		if (atomic_load(&wk->scout) != 0)
			return false;
	}
}

void lote__wake_claiming(lote__wake *wk, int i)
{
	int me = i + 1;

	if (atomic_load(&wk->scout) == me) {
		atomic_store(&wk->sent_ns, lote__wake_clock());
		atomic_compare_exchange_strong(&wk->scout, &me, -me);
	}
}

/* Ends worker i's turn as the scout: true if it was the scout. */
static bool end_turn(lote__wake *wk, int i)
{
	int me = i + 1, sent = -(i + 1);

	return atomic_compare_exchange_strong(&wk->scout, &sent, 0) ||
	       atomic_compare_exchange_strong(&wk->scout, &me, 0);
}

bool lote__wake_claimed(lote__wake *wk, int i, int n, int asked)
{
	bool again = false;

	if (end_turn(wk, i) && atomic_exchange(&wk->missed, 0)) {
		if (n == 0)
			again = true;      /* nobody else will claim for that wake-up */
		else if (n < asked)
			call_one(wk, i);   /* we are busy: someone else claims for it */
	}
	if (n > 0 && n >= asked)
		call_one(wk, i);           /* there is more than one claim's worth */
	return again;
}

void lote__wake_sleep(lote__wake *wk, int i)
{
	atomic_store(&wk->slot[i].asleep, 1);
}

bool lote__wake_rise(lote__wake *wk, int i)
{
	uint64_t v;
	bool called = atomic_exchange(&wk->slot[i].asleep, 0) == 0;

	/* A call whose write came after our poll returned is read here or
	 * at the next rise; reading it then only wakes us once more. */
	if (read(wk->slot[i].fd, &v, sizeof(v)) == sizeof(v))
		called = true;
	return called;
}

void lote__wake_lost(lote__wake *wk, int i)
{
	atomic_store(&wk->slot[i].asleep, 0);
	if (end_turn(wk, i))
		call_one(wk, i); /* its claim may never have happened */
}
