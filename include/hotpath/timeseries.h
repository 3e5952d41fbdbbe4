/*
 * timeseries.h - per-second history of the agent's counters, kept in a
 * fixed ring in memory, so /api/v2/cache/statistics can answer
 * time_range/granularity queries without an external TSDB. The main thread
 * writes (timeseries_tick), the REST API reads (timeseries_query).
 */
#ifndef HOTPATH_TIMESERIES_H
#define HOTPATH_TIMESERIES_H

#include <stdint.h>
#include "hotpath/daemon.h"

struct timeseries;

/* Keep `seconds` samples (bounded memory). NULL on ENOMEM. */
struct timeseries *timeseries_new(unsigned seconds);
/* Take one sample of the daemon's counters; called once a second by the
 * main thread. Thread-safe against concurrent readers. */
void timeseries_tick(struct timeseries *ts, struct hp_daemon *d);
void timeseries_free(struct timeseries *ts);

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

#endif
