/*
 * loader.h - where cache strategies read missing keys and write changed
 * ones: a PostgreSQL query through libpq, or an HTTP origin.
 *
 * One struct loader per [loader.NAME]. SQL loaders keep a small bounded
 * pool of libpq connections (opened on demand, at most pool_size; a caller
 * waits up to `timeout` for one) and run every statement with
 * PQexecParams: the key's glob captures (and, for writes, the value) are
 * parameters, never pasted into SQL text. statement_timeout bounds each
 * statement on the server; connect_timeout bounds connects. HTTP loaders
 * GET their URL template with the captures percent-encoded, one
 * connection per load (Connection: close), every wait bounded by poll,
 * and the response head parsed by agent/http/http_parse.c.
 *
 * Each loader has a circuit breaker: when half of its last 20 calls failed
 * (or took longer than the timeout), calls are refused at once
 * (-EHOSTDOWN) for breaker_open_time, then probed.
 *
 * Values travel as text: a capture or value with a NUL byte is refused for
 * SQL (use HTTP or base64 for binary data).
 */
#ifndef HOTPATH_LOADER_H
#define HOTPATH_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hotpath/breaker.h"
#include "hotpath/common.h"
#include "hotpath/strategy.h"

struct loader;
struct hp_loader_conf;

struct loader_stats {
	char name[64];
	const char *kind;               /* "sql" or "http" */
	uint64_t loads, found, not_found, errors, rejected;
	uint64_t writes, write_errors, rows_written;
	uint64_t load_us_sum;           /* total time of loads, for averages */
	unsigned pool_size, pool_open, pool_busy;
	struct breaker_stats breaker;
};

/* One write (or delete) of a batch. caps point into key. */
struct loader_write {
	const char *key;
	size_t klen;
	struct strat_capture caps[STRAT_MAX_CAPTURES];
	int ncap;
	const char *val;                /* NULL: delete */
	size_t vlen;
};

/* NULL with the reason in err (bad URL, ENOMEM). Connects lazily. */
struct loader *loader_new(const struct hp_loader_conf *c, char *err, size_t errlen);
/* Closes the pool. NULL is a no-op. Callers must be gone. */
void loader_free(struct loader *l);
const char *loader_name(const struct loader *l);
bool loader_reads(const struct loader *l);
bool loader_writes(const struct loader *l);
bool loader_deletes(const struct loader *l);
bool loader_warms(const struct loader *l);
uint64_t loader_timeout_ms(const struct loader *l);

/*
 * Read `key`: 1 and a malloc'd value (*val, *vlen; caller frees) if found,
 * 0 if the origin has no such key, -EHOSTDOWN while the breaker is open,
 * -ETIMEDOUT, -E2BIG (value over max_value_size) or another -errno on
 * failure, with the reason in err.
 */
int loader_load(struct loader *l, const char *key, size_t klen, const struct strat_capture *caps,
		int ncap, char **val, size_t *vlen, char *err, size_t errlen) HP_MUST_CHECK;

/*
 * Apply n writes in one transaction (write_query, or delete_query for
 * deletes; a delete without delete_query is skipped). 0, or -errno with
 * the reason in err and nothing applied. -ECANCELED for a write that can
 * never succeed (NUL byte in a value): do not retry it.
 */
int loader_write(struct loader *l, const struct loader_write *w, size_t n, char *err,
		 size_t errlen) HP_MUST_CHECK;

/*
 * Run warm_query and call fn for each (key, value) row, at most max rows.
 * Returns the number of rows visited or -errno (reason in err). fn returns
 * false to stop.
 */
long loader_warm_rows(struct loader *l, uint64_t max,
		      bool (*fn)(const char *key, size_t klen, const char *val, size_t vlen,
				 void *arg),
		      void *arg, char *err, size_t errlen);

void loader_get_stats(struct loader *l, struct loader_stats *out);

/*
 * Split "http://host[:port]/path" (host may be [v6]); path includes the
 * leading '/', "" becomes "/". 0 or -EINVAL. Exported for tests.
 */
int loader_parse_url(const char *url, char *host, size_t hostlen, uint16_t *port, char *path,
		     size_t pathlen) HP_MUST_CHECK;

#endif
