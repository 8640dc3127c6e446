/* utf8.h - UTF-8 checks for the text lote passes on: a program's output
 * into a text column, a message into JSON (jansson and PostgreSQL both
 * refuse what is not UTF-8). */
#ifndef LOTE_UTF8_H
#define LOTE_UTF8_H

#include <stddef.h>

/* The length, 1 to 4, of the valid UTF-8 sequence at s (n bytes left), or
 * 0: not a sequence, cut short, overlong, a surrogate, past U+10FFFF or a
 * NUL byte. */
size_t lote__utf8_seq(const unsigned char *s, size_t n);

/* Replaces each byte of s[0..len) that does not begin a valid sequence
 * (and each NUL byte) by '?', in place. */
void lote__utf8_sanitize(char *s, size_t len);

#endif
