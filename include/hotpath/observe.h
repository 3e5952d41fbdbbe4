/*
 * observe.h - request latency and database query timing of the services on
 * this host, measured by bpf/observe.bpf.c (see agent/observe/observe.c for
 * the design: what is counted in the kernel, what is sampled, what is
 * dropped).
 *
 * A struct observe is opaque and thread-safe: a background thread polls the
 * kernel's ring buffer and snapshots its histograms, and the *_json /
 * prometheus functions may be called from any thread (API workers).
 */
#ifndef HOTPATH_OBSERVE_H
#define HOTPATH_OBSERVE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "hotpath/buf.h"
#include "hotpath/common.h"
#include "hotpath/config.h"

struct observe;

/*
 * Load and attach the kernel programs, pin the maps users inspect under
 * pin_path (NULL or "" = default /sys/fs/bpf/hotpath), watch the services
 * of cfg ([service.NAME], [database.NAME], [redis]) plus PostgreSQL 5432
 * and Redis 6379 as outbound targets plus every listening TCP socket found
 * on the host, and start the polling thread. cfg is copied from; the
 * caller keeps it. Returns NULL when it cannot (no privileges, no tracefs,
 * verifier rejection ...) with a one-line reason in why; the agent runs on
 * without it.
 */
/* A [service] cgroup path to its cgroup v2 id and depth; -errno. */
int observe_cgroup_resolve(const char *path, uint64_t *id, uint32_t *level);

struct observe *observe_start(const struct hp_config *cfg, const char *pin_path, char *why,
			      size_t whylen);
/* Stop the thread, detach, unpin, free. NULL is a no-op. */
void observe_stop(struct observe *o);

/*
 * {"services": [...]}: every watched service (configured, default outbound
 * targets, discovered listeners) with port, direction, protocol and where
 * it came from, the processes listening, and what the traffic showed.
 * New reference (caller json_decref's), NULL on allocation failure.
 */
json_t *observe_services_json(struct observe *o);

/*
 * Per service (NULL or "" = all; matches name) and endpoint over the last
 * range_ms milliseconds (0 = since start): requests, request_rate (/s),
 * errors, error_rate (fraction), mean/p50/p95/p99/max in ms, and
 * "quantiles": "exact" when every request of the range has its own event
 * timing, "histogram" (log2 buckets, interpolated) otherwise.
 * New reference, NULL on allocation failure.
 */
json_t *observe_metrics_json(struct observe *o, const char *service, uint64_t range_ms);

/*
 * PostgreSQL statements by libpg_query fingerprint, both sides (client and
 * server), top `limit` by total time (0 = all): calls, errors, rows, total,
 * mean, p50/p95/p99, max, first and last seen. New reference or NULL.
 */
json_t *observe_queries_json(struct observe *o, unsigned limit);

/* Append the latency histograms and drop counters in Prometheus text
 * format 0.0.4. 0 or -ENOBUFS / -ENOMEM (out may hold a partial write). */
int observe_write_prometheus(struct observe *o, struct buf *out) HP_MUST_CHECK;

#endif
