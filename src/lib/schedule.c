/* schedule.c - STUB, being written (see schedule.h). */
#include "schedule.h"

int lote__schedule_tick(PGconn *conn, lote_error *err)
{
	(void)conn;
	(void)err;
	return 0;
}
