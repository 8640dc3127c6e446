/* config.c - STUB, being written (see config.h). */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"

void lote__config_init(lote__config *cfg) { memset(cfg, 0, sizeof(*cfg)); lote_engine_options_init(&cfg->engine); }
void lote__config_done(lote__config *cfg) { (void)cfg; }
int lote__config_load_file(lote__config *cfg, const char *path, lote_error *err) { (void)cfg; (void)path; return lote__fail(err, LOTE_ESTATE, "todo"); }
int lote__config_set(lote__config *cfg, const char *name, const char *value, lote_error *err) { (void)cfg; (void)name; (void)value; return lote__fail(err, LOTE_ESTATE, "todo"); }
int lote__config_add_handler(lote__config *cfg, lote_kind kind, const char *spec, lote_error *err) { (void)cfg; (void)kind; (void)spec; return lote__fail(err, LOTE_ESTATE, "todo"); }
void lote__config_print_help(FILE *out) { (void)out; }
