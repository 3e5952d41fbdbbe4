/*
 * metrics.h - the agent's reporting side: Prometheus text for /metrics and
 * the read side of the per-second time series (timeseries.h holds the
 * write side called by the main thread; readers are the REST API).
 */
#ifndef HOTPATH_METRICS_H
#define HOTPATH_METRICS_H

#include <stdint.h>
#include "hotpath/buf.h"
#include "hotpath/common.h"
#include "hotpath/daemon.h"
#include "hotpath/timeseries.h"

/* One aggregated point of the time series: counters are deltas over the
 * bucket, gauges (keys, memory, connections) the last value seen in it. */
struct ts_point {
	uint64_t wall_ms;               /* wall clock of the newest sample in the bucket */
	unsigned samples;               /* per-second samples that fell in the bucket */
	uint64_t hits, misses, sets, deletes, evictions, expired;
	uint64_t commands;              /* RESP commands executed */
	uint64_t keys, memory;          /* gauges */
	uint64_t connections;           /* gauge: RESP clients */
};

/* Seconds of history the ring can hold (the `seconds` given to timeseries_new). */
unsigned timeseries_capacity(const struct timeseries *ts);

/*
 * Aggregate the last `range_s` seconds into buckets of `gran_s` seconds,
 * oldest first, into out[0..max). Buckets with no sample (the agent has not
 * run that long) are skipped. Returns the number of points written.
 */
unsigned timeseries_query(struct timeseries *ts, unsigned range_s, unsigned gran_s,
			  struct ts_point *out, unsigned max);

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
int metrics_render(struct hp_daemon *d, const struct metrics_api_stats *api,
		   struct buf *out) HP_MUST_CHECK;

#endif
