/* migrate.h - the embedded migrations (generated from sql/ at build). */
#ifndef LOTE_MIGRATE_H
#define LOTE_MIGRATE_H

struct lote__migration {
	int version;      /* 1, 2, 3 … without gaps */
	const char *name; /* file name without number and extension */
	const char *sql;  /* the whole file */
};

extern const struct lote__migration lote__migrations[];
extern const int lote__migrations_count;

#endif
