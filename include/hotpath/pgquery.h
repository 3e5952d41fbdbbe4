/*
 * pgquery.h - SQL fingerprints and normalised text through libpg_query
 * (the PostgreSQL parser as a library), for per-query statistics.
 */
#ifndef HOTPATH_PGQUERY_H
#define HOTPATH_PGQUERY_H

#include <stddef.h>
#include <stdint.h>
#include "hotpath/common.h"

/*
 * Fingerprint `sql` (len bytes, need not be NUL-terminated) and write its
 * normalised form (literals as $1, $2 ...) into norm (NUL-terminated,
 * truncated to normlen). 0; -EINVAL if libpg_query cannot parse it (norm
 * then holds the text as given); -ENOMEM.
 */
int pgquery_fingerprint(const char *sql, size_t len, uint64_t *fp, char *norm,
			size_t normlen) HP_MUST_CHECK;

#endif
