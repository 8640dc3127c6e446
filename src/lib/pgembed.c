/* pgembed.c - STUB, being written (see pgembed.h). */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "pgembed.h"

int lote__db_resolve(char **ret_conninfo, lote_error *err)
{
	const char *url = getenv("LOTE_DATABASE_URL");
	if (!url || !*url)
		return lote__fail(err, LOTE_ECONN, "LOTE_DATABASE_URL is not set");
	*ret_conninfo = strdup(url);
	return 0;
}

int lote__pg_home(char **ret_home, lote_error *err) { (void)ret_home; return lote__fail(err, LOTE_ESTATE, "todo"); }
int lote__pg_ensure(const char *home, char **ret_conninfo, lote_error *err) { (void)home; (void)ret_conninfo; return lote__fail(err, LOTE_ESTATE, "todo"); }
int lote__pg_status(const char *home, FILE *out, lote_error *err) { (void)home; (void)out; return lote__fail(err, LOTE_ESTATE, "todo"); }
int lote__pg_stop(const char *home, lote_error *err) { (void)home; return lote__fail(err, LOTE_ESTATE, "todo"); }
