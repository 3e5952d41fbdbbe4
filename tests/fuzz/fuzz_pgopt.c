/*
 * fuzz_pgopt.c - libFuzzer target for the parsers behind query analysis:
 * EXPLAIN (FORMAT JSON) text (pgplan.c), SQL texts through libpg_query's
 * parse tree (pgtree.c), CommandComplete tags and Bind parameter blocks
 * (qstats.c), and the literal-masking memo key of query texts - all of it
 * comes from servers or clients.
 *
 * Byte 0 picks the parser. Properties: each either succeeds with values in
 * their documented bounds or fails with a NUL-terminated message; nothing
 * reads or writes out of bounds (ASan) or hits undefined behaviour (UBSan).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/pgplan.h"
#include "hotpath/pgtree.h"
#include "hotpath/qstats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(const char *err, size_t len)
{
	if (!memchr(err, '\0', len))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data + 1;
	char err[256];
	size_t n;

	if (size < 1)
		return 0;
	n = size - 1;
	switch (data[0] % 4) {
	case 0: {
		struct pgplan_report r;

		if (pgplan_analyze(in, n, NULL, &r, err, sizeof(err)) == 0) {
			if (r.n_findings > PGPLAN_FINDINGS || r.n_indexes > PGPLAN_INDEXES ||
			    r.total_cost < 0)
				abort();
			for (unsigned i = 0; i < r.n_findings; i++)
				if (!memchr(r.findings[i].detail, '\0', sizeof(r.findings[i].detail)))
					abort();
		} else {
			check_err(err, sizeof(err));
		}
		break;
	}
	case 1: {
		struct pgt_info *t = malloc(sizeof(*t));

		if (!t)
			return 0;
		if (pgt_analyze(in, n, t, err, sizeof(err)) == 0) {
			if (t->n_read > PGT_MAX_TABLES || t->n_written > PGT_MAX_TABLES ||
			    t->n_cols > PGT_MAX_COLS || t->n_params > PGT_MAX_PARAMS)
				abort();
			for (unsigned i = 0; i < t->n_cols; i++)
				if (t->cols[i].table >= (int)t->n_read || t->cols[i].use < PGT_USE_EQ ||
				    t->cols[i].use > PGT_USE_ORDER)
					abort();
		} else {
			check_err(err, sizeof(err));
		}
		free(t);
		(void)pgt_maybe_write(in, n);
		break;
	}
	case 2: {
		uint64_t rows;

		(void)qstats_tag_rows(in, n, &rows);
		(void)qstats_memo_key(in, n, 1);
		break;
	}
	case 3: {
		char (*vals)[PGT_PARAM_MAX] = malloc(8 * sizeof(*vals));
		bool nulls[8];
		unsigned np = 99;

		if (!vals)
			return 0;
		if (qstats_bind_params((const uint8_t *)in, n, vals, nulls, 8, &np) == 0) {
			if (np > 8)
				abort();
			for (unsigned i = 0; i < np; i++)
				if (!nulls[i] && !memchr(vals[i], '\0', PGT_PARAM_MAX))
					abort();
		} else if (np != 0) {
			abort();
		}
		free(vals);
		break;
	}
	}
	return 0;
}
