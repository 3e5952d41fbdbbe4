/*
 * timeseries.h - per-second history of the agent's counters, kept in a
 * fixed ring in memory, so /api/v2/cache/statistics can answer
 * time_range/granularity queries without an external TSDB.
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

#endif
