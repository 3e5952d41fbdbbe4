/*
 * qstats.h - per-fingerprint query statistics from the pooler's own timing.
 *
 * The pooler's event loop hands every finished statement (a simple
 * Query, or an extended-protocol Execute; agent/db/qtrack.c) to
 * qstats_record: a copy of the text (bounded), the Bind parameters when
 * there were some, its time, the rows counted from the CommandComplete
 * tags and whether an ErrorResponse came. The copy goes
 * on a bounded queue (full: the sample is dropped and counted - the loop
 * never waits); an aggregator thread fingerprints it with libpg_query
 * (the same fingerprint as pgquery.h and the kernel's statistics; a
 * direct-mapped memo of recent texts skips the parser for repeated texts
 * such as prepared statements; the statement's tables and literals are
 * parsed for a new fingerprint and at most once a second after) and
 * folds it into a bounded
 * table of fingerprints per database: calls, errors, rows, a latency
 * histogram (p50/p95/p99), total/max, first/last seen, the statement kind,
 * the tables it reads and writes (pgtree.h), and the latest sample with
 * its parameters, which the advisor (pgadvise.h) uses for EXPLAIN.
 *
 * Thread-safe: qstats_record from one producer thread, every reader from
 * any thread (a mutex guards the table; readers copy out).
 */
#ifndef HOTPATH_QSTATS_H
#define HOTPATH_QSTATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hotpath/buf.h"
#include "hotpath/common.h"
#include "hotpath/hist.h"
#include "hotpath/pgtree.h"

struct qstats;

struct qstats_options {
	unsigned max_fingerprints;      /* table bound; 0 = 1000 */
	unsigned queue_max;             /* samples waiting; 0 = 4096 */
	size_t max_text;                /* bytes of query text kept; 0 = 4096 */
};

/* What the pooler hands over (all pointers borrowed for the call). */
struct qstats_sample {
	const char *db;                 /* [database.NAME] */
	const char *text;               /* query text (simple Query or the Parse) */
	size_t len;
	const uint8_t *bind;            /* Bind after the two names (formats, values, ...), or NULL */
	size_t bind_len;
	uint64_t dur_us;
	uint64_t rows;
	bool error;
};

#define QSTATS_TABLES 8

/* One fingerprint, copied out. Strings are NUL-terminated; `query` and
 * `sample` are malloc'd and freed by qstats_entries_free. */
struct qstats_entry {
	char fingerprint[17];           /* libpg_query's, hex; "" = text did not parse */
	char db[64];
	char *query;                    /* normalised text */
	char *sample;                   /* latest raw text */
	bool sample_is_bind;            /* sample's params came from a Bind */
	bool sample_params_ok;
	unsigned n_params;
	char (*params)[PGT_PARAM_MAX];  /* malloc'd, n_params entries */
	bool *param_null;
	int kind;                       /* enum pgt_kind */
	unsigned n_read, n_written;
	char read[QSTATS_TABLES][130];  /* "schema.name" or "name" */
	char written[QSTATS_TABLES][130];
	uint64_t calls, errors, rows, total_us, max_us;
	struct hist h;
	uint64_t first_ms, last_ms;     /* wall clock */
};

struct qstats_totals {
	uint64_t samples, dropped_queue, dropped_table, fingerprints, parse_failures;
	uint64_t memo_hits;
	unsigned max_fingerprints;
};

struct qstats *qstats_new(const struct qstats_options *o);
/* Stops the aggregator thread, frees everything. NULL no-op. */
void qstats_free(struct qstats *q);

/* Bytes of text kept from now on (SIGHUP); call from the producer thread. */
void qstats_set_max_text(struct qstats *q, size_t max_text);
/* Copy and queue a sample. 0, -EAGAIN (queue full: dropped, counted), -ENOMEM. */
int qstats_record(struct qstats *q, const struct qstats_sample *s);
/* Wait until the queue is empty (tests, the advisor). 0 or -ETIMEDOUT. */
int qstats_flush(struct qstats *q, uint64_t timeout_ms) HP_MUST_CHECK;

/*
 * Copy out the entries (all databases when db is NULL) with last_ms >=
 * since_ms, sorted by total time, at most `limit` (0 = all). *out is
 * malloc'd; free with qstats_entries_free. 0 or -ENOMEM.
 */
int qstats_entries(struct qstats *q, const char *db, uint64_t since_ms, unsigned limit,
		   struct qstats_entry **out, unsigned *n) HP_MUST_CHECK;
void qstats_entries_free(struct qstats_entry *e, unsigned n);
void qstats_totals(struct qstats *q, struct qstats_totals *t);
/* Forget every fingerprint. */
void qstats_reset(struct qstats *q);

/* ---- pure parsers of what servers and clients send, exported for tests ---- */

/* Rows of a CommandComplete tag ("SELECT 5", "INSERT 0 3", "UPDATE 2"):
 * true and *rows when the tag ends in a count. */
bool qstats_tag_rows(const char *tag, size_t len, uint64_t *rows);
/*
 * Text-format parameters of a Bind (the part after portal and statement
 * names: format codes, values, result formats). Fills vals/nulls (at most
 * max) and *n. 0; -EINVAL when malformed; -ENOTSUP when a parameter is in
 * binary format or longer than PGT_PARAM_MAX - 1 (not sampled).
 */
int qstats_bind_params(const uint8_t *p, size_t len, char (*vals)[PGT_PARAM_MAX], bool *nulls,
		       unsigned max, unsigned *n) HP_MUST_CHECK;
/*
 * Memo key of a query text: a hash with literals masked and comments
 * dropped, so texts that differ only there (and thus share libpg_query's
 * fingerprint) share a key; unterminated literals or comments hash the
 * text as is.
 */
uint64_t qstats_memo_key(const char *s, size_t n, uint64_t seed);

#endif
