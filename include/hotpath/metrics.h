/*
 * metrics.h - Prometheus text for /metrics, and the REST API's own
 * counters shown there.
 */
#ifndef HOTPATH_METRICS_H
#define HOTPATH_METRICS_H

#include <stdint.h>
#include "hotpath/buf.h"
#include "hotpath/common.h"
#include "hotpath/daemon.h"

/* Counters the REST API keeps about itself, shown on /metrics. */
#define METRICS_API_CODES 11
struct metrics_api_stats {
	uint64_t requests[METRICS_API_CODES];   /* indexed like metrics_api_code() */
	uint64_t auth_failures;                 /* 401 answers */
	uint64_t token_reloads, token_reload_failures;
	unsigned tokens;                        /* tokens loaded now */
};
/* Index of an HTTP status in metrics_api_stats.requests (last = "other"). */
unsigned metrics_api_code(unsigned status);
unsigned metrics_api_code_status(unsigned idx);   /* 0 for "other" */

/*
 * Render every metric in Prometheus text format 0.0.4 into `out` (appended).
 * Reads each running subsystem through its accessors. `api` may be NULL.
 * 0, -ENOBUFS if `out` hit its bound, -ENOMEM.
 */
/* Writers for the renderers of each subsystem: a family's HELP and TYPE
 * lines, and one sample with up to two escaped labels (l1n NULL: none,
 * l2n NULL: one). 0 or buf_printf's error. */
int metrics_family(struct buf *b, const char *name, const char *type, const char *help)
	HP_MUST_CHECK;
int metrics_sample2(struct buf *b, const char *name, const char *l1n, const char *l1v,
		    const char *l2n, const char *l2v, uint64_t v) HP_MUST_CHECK;

int metrics_render(struct hp_daemon *d, const struct metrics_api_stats *api,
		   struct buf *out) HP_MUST_CHECK;

#endif
