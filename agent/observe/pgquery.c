/*
 * pgquery.c - query fingerprints with libpg_query (see pgquery.h).
 *
 * The fingerprint is libpg_query's: the same for queries that differ only
 * in literals, whitespace or comments, as pg_stat_statements' queryid is
 * (not the same number). The normalised text comes from pg_query_normalize.
 * We never normalise SQL ourselves: a home-made tokenizer gets quoting,
 * dollar-quotes and comments wrong. Text that does not parse (truncated
 * captures, other dialects) is reported as -EINVAL and grouped by the
 * caller on its raw text.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pg_query.h>
#include "hotpath/pgquery.h"

int pgquery_fingerprint(const char *sql, size_t len, uint64_t *fp, char *norm, size_t normlen)
{
	PgQueryFingerprintResult fr;
	PgQueryNormalizeResult nr;
	char *s;
	int err = 0;

	if (!normlen)
		return -EINVAL;
	s = strndup(sql, len);
	if (!s)
		return -ENOMEM;
	fr = pg_query_fingerprint(s);
	if (fr.error) {
		err = -EINVAL;
		snprintf(norm, normlen, "%s", s);
	} else {
		*fp = fr.fingerprint;
		nr = pg_query_normalize(s);
		snprintf(norm, normlen, "%s", nr.error || !nr.normalized_query ? s : nr.normalized_query);
		pg_query_free_normalize_result(nr);
	}
	pg_query_free_fingerprint_result(fr);
	free(s);
	return err;
}
