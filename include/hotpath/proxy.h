/*
 * proxy.h - the HTTP caching reverse proxy (port 8479): worker threads
 * with their own epoll loops in front of one upstream group, an RFC 9111
 * cache in the shared L1, balancing and health from hotpath/balance.h.
 */
#ifndef HOTPATH_PROXY_H
#define HOTPATH_PROXY_H

#include <stdbool.h>
#include <stdint.h>
#include "hotpath/admit.h"
#include "hotpath/balance.h"
#include "hotpath/common.h"
#include "hotpath/compress.h"
#include "hotpath/config.h"
#include "hotpath/l1.h"

struct proxy;

struct proxy_options {
	char listen[HP_ADDR_MAX];
	unsigned workers;                 /* 0 = one per CPU */
	char upstream[HP_NAME_MAX];
	char servers[HP_LIST_MAX];        /* HOST:PORT,... */
	unsigned weights[BALANCE_MAX_BACKENDS];
	struct balance_options bal;
	char hash_key[HP_NAME_MAX];       /* "path", "header:NAME", "cookie:NAME" */
	char sticky_cookie[HP_NAME_MAX];  /* "" = no sticky sessions */
	char health_path[HP_PATH_MAX];    /* "" = no active checks */
	uint64_t health_interval_ms;
	/* limits */
	size_t max_request_line, max_header_size;
	unsigned max_headers;
	uint64_t max_body, max_object;
	unsigned max_clients;
	/* timeouts, ms */
	uint64_t header_timeout_ms, keepalive_timeout_ms, connect_timeout_ms;
	uint64_t upstream_timeout_ms, send_timeout_ms;
	uint64_t keep_stale_s;            /* keep stale objects with validators this long */
	bool cache;                       /* false: a plain balancing proxy */
	struct compress_options comp;     /* comp.npref 0: no compression */
	/* admission control: 0 = off; else requests to backends in flight at
	 * once (split evenly across workers), the rest queued by class */
	unsigned max_inflight, queue_size, retry_after_s;
	bool gradient_limit;              /* max_inflight is the ceiling of a gradient limit */
	uint64_t queue_timeout_ms, queue_target_ms, queue_interval_ms;
	struct admit_rules prio;
};

/* Fill defaults (the config table's defaults when a key exists there). */
void proxy_options_default(struct proxy_options *o);

/* Bind, resolve backends and start workers and the health checker. NULL on failure (logged). */
struct proxy *proxy_start(const struct proxy_options *o, struct l1 *l1);
/* Stop accepting; let in-flight exchanges finish for up to timeout_ms. */
void proxy_stop(struct proxy *p, uint64_t timeout_ms);
/* Start from the [http] section and the [upstream.NAME] it names. NULL on failure (logged). */
struct proxy *proxy_start_config(const struct hp_config *c, struct l1 *l1);
/* Free everything; the proxy must be stopped. NULL is a no-op. */
void proxy_free(struct proxy *p);
uint16_t proxy_port(const struct proxy *p);
struct balancer *proxy_balancer(struct proxy *p);
const char *proxy_upstream_name(const struct proxy *p);

enum proxy_cache_result {
	PX_HIT = 0, PX_STALE, PX_REVALIDATED, PX_MISS, PX_BYPASS, PX_UNCACHEABLE,
	PX_COLLAPSED, PX_STALE_ERROR, PX_RESULTS
};

struct proxy_stats {
	uint64_t connections, accepted, rejected;
	uint64_t requests, upstream_requests, upstream_errors, retries;
	uint64_t results[PX_RESULTS];
	uint64_t status[6];               /* 1xx..5xx by hundreds, [0] other */
	uint64_t bad_requests;            /* 4xx from the parser */
	uint64_t stored, store_failed, invalidations, not_modified;
	uint64_t bytes_in, bytes_out;
	uint64_t pool_reused, pool_new;
	uint64_t timeouts;
	/* compression: responses sent per coding, variants built, builds that
	 * gained nothing, bytes in and out of the encoders and the time they
	 * took, and body bytes not sent thanks to compressed responses */
	uint64_t compressed[HC_CODINGS];
	uint64_t compress_built, compress_no_gain, compress_in, compress_out, compress_us;
	uint64_t compress_saved;
	uint64_t compress_streamed;       /* forwarded responses compressed on the way */
	/* admission control, per class: admitted at once or after queueing,
	 * queued, shed; shed by reason; in flight and queued now */
	uint64_t admitted[ADMIT_CLASSES], queued[ADMIT_CLASSES], shed[ADMIT_CLASSES];
	uint64_t shed_full, shed_codel, shed_timeout;
	uint64_t inflight_now, queued_now, limit_now;
	/* L2 (Redis) through the shared tier: objects found there, written, errors */
	uint64_t l2_hits, l2_stored, l2_errors;
};
void proxy_get_stats(struct proxy *p, struct proxy_stats *out);
const char *proxy_result_name(enum proxy_cache_result r);
/* Prometheus text for /metrics (agent/api/api_http.c). 0 or -ENOBUFS/-ENOMEM. */
struct buf;
int proxy_metrics_render(struct proxy *p, struct buf *b) HP_MUST_CHECK;

#endif
