/* jsontext.h - the JSON text of a jansson value, with its real numbers
 * written as short as still reads back to the same doubles: a payload's
 * 0.1 stays 0.1 on its way through lote (jansson's default of 17
 * significant digits writes 0.10000000000000001, which jsonb then keeps
 * as a different decimal). jansson takes one precision for a whole
 * value, so a value holding a real that needs 17 digits (0.1 + 0.2)
 * writes all its reals with 17: each still reads back as the same
 * double, but not as the decimal it was written as. */
#ifndef LOTE_JSONTEXT_H
#define LOTE_JSONTEXT_H

#include <jansson.h>

/* As json_dumps(v, flags) (flags without a JSON_REAL_PRECISION): a
 * malloc'd string the caller frees, or NULL when out of memory or v is
 * NULL. The
 * precision is the fewest digits, 15 to 17, that give back every real of
 * v. */
char *lote__json_text(const json_t *v, size_t flags);

#endif
