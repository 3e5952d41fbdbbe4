/*
 * api_int.h - what the REST API's files share privately: the request being
 * answered (struct api_call), the reply helpers and the route handlers.
 * Not installed, not used outside agent/api/.
 */
#ifndef HOTPATH_API_INT_H
#define HOTPATH_API_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <microhttpd.h>
#include "hotpath/common.h"
#include "hotpath/daemon.h"

struct api;

/* One request being answered. Handlers read the inputs and call exactly
 * one api_reply_* function. */
struct api_call {
	struct api *api;
	struct hp_daemon *d;
	struct MHD_Connection *conn;
	const char *rest;               /* raw (undecoded) path after a prefix route */
	const char *body;
	size_t body_len;
	const char *token_name;         /* "" for routes without auth */
	const char *note;               /* the route's note (501 routes: what is missing) */

	/* reply, filled by api_reply_* */
	unsigned status;
	char *out;                      /* malloc'd, freed by libmicrohttpd */
	size_t out_len;
	const char *ctype;
	const char *allow;              /* 405: the Allow header */
	const char *www_auth;           /* 401: the WWW-Authenticate header */
};

/* Reply with `j` serialised (takes the reference, also on failure). */
void api_reply_json(struct api_call *c, unsigned status, json_t *j);
/* Reply {"error":{"code":code,"message":...}}. */
void api_reply_error(struct api_call *c, unsigned status, const char *code, const char *fmt, ...)
	HP_PRINTF(4, 5);
/* Reply with text the caller malloc'd (ownership passes). */
void api_reply_text(struct api_call *c, unsigned status, const char *ctype, char *text,
		    size_t len);

/*
 * Refuse query parameters not in `allowed` (NULL-terminated) with a 400.
 * Returns true if the request may go on.
 */
bool api_query_only(struct api_call *c, const char *const *allowed);
/*
 * Value of query parameter `name`, percent-decoded into buf. NULL if absent.
 * On a malformed escape replies 400 and sets *bad.
 */
const char *api_query_get(struct api_call *c, const char *name, char *buf, size_t buflen,
			  bool *bad);

/* json_t string from bytes that may not be UTF-8 (invalid bytes -> U+FFFD). */
json_t *api_json_bytes(const char *s, size_t len);
/* JSON number for counters: jansson integers are signed 64-bit. */
json_t *api_json_u64(uint64_t v);

/* The configuration values the API reads on each request. */
struct api_cfg_view {
	uint64_t max_body;
	bool metrics_auth;
	int eviction;
};
void api_cfg_view(struct hp_daemon *d, struct api_cfg_view *v);

/* Tokens loaded now and the API's own counters (for /metrics). */
struct metrics_api_stats;
void api_stats_snapshot(struct api *a, struct metrics_api_stats *out);

/* Handlers (api_cache.c). */
void api_h_health(struct api_call *c);
void api_h_metrics(struct api_call *c);
void api_h_config(struct api_call *c);
void api_h_cache_status(struct api_call *c);
void api_h_cache_clear(struct api_call *c);
void api_h_cache_statistics(struct api_call *c);
void api_h_cache_policies(struct api_call *c);
void api_h_cache_keys(struct api_call *c);
void api_h_cache_invalidate(struct api_call *c);
void api_h_not_running(struct api_call *c);
/* Cache tiers and task processor (api_tier.c). */
struct api_pattern_req;
void api_h_cache_tiers(struct api_call *c);
/* Invalidate over the tiers (L2 -> L1/L0 -> peers) and reply; `field` is
 * "invalidated" or "deleted". */
void api_tier_invalidate(struct api_call *c, const char *field, const struct api_pattern_req *rq);
struct buf;
/* Strategies, loaders and warm jobs (api_strat.c). */
void api_h_cache_strategies(struct api_call *c);
void api_h_cache_warm(struct api_call *c);
void api_h_cache_warm_status(struct api_call *c);
int strat_metrics_render(struct hp_daemon *d, struct buf *b) HP_MUST_CHECK;
/* PostgreSQL pools (api_pool.c). */
void api_h_pools(struct api_call *c);
/* Performance routes (api_perf.c). */
void api_h_flamegraph(struct api_call *c);
void api_h_profile_start(struct api_call *c);
void api_h_profile_get(struct api_call *c);
/* Cancel a running background profile and join its thread (api_stop). */
void api_perf_shutdown(struct hp_daemon *d);
void api_h_perf_metrics(struct api_call *c);
void api_h_perf_services(struct api_call *c);
/* Query statistics, recommendations, optimisation jobs (api_pgopt.c). */
void api_h_queries(struct api_call *c);
void api_h_recommendations(struct api_call *c);
void api_h_optimize(struct api_call *c);
void api_h_optimize_job(struct api_call *c);
/* HTTP proxy routes (api_http.c). */
void api_h_http_backends(struct api_call *c);
void api_h_http_breakers(struct api_call *c);
/* Pid listening on the port of [service.NAME]; -ENOENT no such service,
 * -ESRCH nobody listens there. */
int api_service_pid(struct hp_daemon *d, const char *name);

#endif
