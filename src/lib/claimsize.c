/* claimsize.c - the size of a worker's next claim (see claimsize.h). */
#include "claimsize.h"

int lote__claim_first(int max)
{
	return max < LOTE__CLAIM_START ? max : LOTE__CLAIM_START;
}

int lote__claim_next(int asked, int got, int64_t spent_us, int max)
{
	int64_t per_row = got > 0 && spent_us / got > 0 ? spent_us / got : 1;
	int64_t fit = LOTE__CLAIM_TARGET_US / per_row;
	int next = fit < 1 ? 1 : fit > max ? max : (int)fit;

	if (next <= asked)
		return next;
	/* Grow only from a full claim (a short one says the queue is shallow:
	 * more would not have come back), and at most double. */
	if (got < asked)
		return asked;
	return next > 2 * asked ? 2 * asked : next;
}

bool lote__claim_slow(int asked, int got, int64_t claim_us)
{
	return got < asked && claim_us > LOTE__CLAIM_SLOW_US;
}
