/*
 * api_body.h - pure validation of the REST API's inputs.
 *
 * Everything a client sends the API (JSON bodies, query parameters, URL
 * path segments) is checked here, by functions that take bytes and return
 * either a filled C struct or a one-line message naming the offending field.
 * They touch no daemon state and no sockets, so unit tests and fuzzers drive
 * them directly; agent/api/api*.c only turns the result into a 400 or an
 * action. Output helpers shared by the API and /metrics (UTF-8 check,
 * Prometheus label escaping, secret detection) live here for the same
 * reason.
 *
 * Every message written to `err` is a single line (bounded by errlen,
 * NUL-terminated) meant to be returned to the client as is.
 */
#ifndef HOTPATH_API_BODY_H
#define HOTPATH_API_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "hotpath/buf.h"
#include "hotpath/common.h"
#include "hotpath/l1.h"
#include "hotpath/warm.h"

#define API_JSON_MAX_DEPTH     16      /* nesting of arrays/objects in bodies */
#define API_PATTERN_MAX        1024    /* bytes of a glob pattern */
#define API_KEYS_DEFAULT_COUNT 100
#define API_KEYS_MAX_COUNT     1000
#define API_SERIES_MAX_POINTS  3600
#define API_DEFAULT_RANGE_S    300     /* time_range when absent: 5m */

/* Which tiers a request addresses. */
enum api_tier { API_TIER_ALL = 0, API_TIER_L1 = 1 };

struct api_pattern_req {                /* /cache/clear and /cache/invalidate */
	int tier;                       /* enum api_tier */
	bool has_pattern;               /* false: everything (clear only) */
	char pattern[API_PATTERN_MAX];
	size_t patlen;                  /* may contain NUL bytes */
};

struct api_stats_query {                /* /cache/statistics */
	int tier;                       /* enum api_tier */
	unsigned range_s;               /* seconds of history */
	unsigned gran_s;                /* seconds per point */
	unsigned points;                /* ceil(range_s / gran_s) */
};

struct api_profile_req {               /* POST /performance/profiling */
	unsigned pid;                   /* 0 = not given */
	char service[80];               /* "" = not given */
	unsigned seconds;
};

/*
 * Parse a request body as one JSON object: bounded nesting (checked on the
 * raw bytes before jansson recurses), duplicate keys rejected, trailing
 * garbage rejected. Returns a new reference (caller json_decref's) or NULL
 * with the reason (and position) in err.
 */
json_t *api_json_parse(const char *body, size_t len, char *err, size_t errlen);

/* POST /cache/clear {cache_scope: "all"|"l1", clear_pattern?: glob}. 0 or -EINVAL. */
int api_body_clear(const json_t *root, struct api_pattern_req *out, char *err,
		   size_t errlen) HP_MUST_CHECK;
/*
 * POST /performance/profiling {pid?: N, service?: "name", seconds?: 1..max
 * (default 10)}: at most one of pid and service. 0 or -EINVAL.
 */
int api_body_profile(const json_t *root, unsigned max_seconds, struct api_profile_req *out,
		     char *err, size_t errlen) HP_MUST_CHECK;
/* DELETE /performance/cache/invalidate {invalidation_pattern: glob, scope?: "all"|"l1"}. */
int api_body_invalidate(const json_t *root, struct api_pattern_req *out, char *err,
			size_t errlen) HP_MUST_CHECK;
struct api_optimize_req {               /* POST /performance/optimize */
	char type[32];                  /* "index_recommendations" | "reset_query_stats" */
	bool has_database;              /* scope "database:NAME" */
	char database[64];
};
/*
 * POST /performance/optimize {optimization_type, scope?}: optimization_type
 * "index_recommendations" or "reset_query_stats"; scope "all" or "db"
 * (every database, the default) or "database:NAME". 0 or -EINVAL.
 */
int api_body_optimize(const json_t *root, struct api_optimize_req *out, char *err,
		      size_t errlen) HP_MUST_CHECK;
/*
 * GET /performance/recommendations query values: scope "db" (default),
 * "cache" or "all" (*scope_out points at a static string); analysis_period
 * a duration up to 30d (0 = absent). 0 or -EINVAL.
 */
int api_query_recommendations(const char *scope, const char *period, const char **scope_out,
			      uint64_t *period_ms, char *err, size_t errlen) HP_MUST_CHECK;
/*
 * POST /performance/cache/warm {cache_scope?: "all"|"l1", data_sources: [
 * {type: "keys", keys: [..]} | {type: "pattern", pattern, limit?} |
 * {type: "sql", loader, limit?} | {type: "snapshot"}]}: bounded counts and
 * lengths (warm.h), unknown fields refused. Fills out (zeroed by the
 * caller; free it with warm_request_free also on failure). 0, -EINVAL or
 * -ENOMEM with the reason in err.
 */
int api_body_warm(const json_t *root, struct warm_request *out, char *err,
		  size_t errlen) HP_MUST_CHECK;
/*
 * POST /cache/policies {policy_definitions: [{name, prefix, max_memory,
 * default_ttl, priority}]}: max_memory is "64mb" or bytes, default_ttl "30s"
 * or milliseconds, priority "low"|"normal"|"high" (default normal). Names
 * and prefixes must be unique and non-empty; at most `max` entries. Fills
 * parts[0..*n). 0 or -EINVAL.
 */
int api_body_policies(const json_t *root, struct l1_partition *parts, unsigned max,
		      unsigned *n, char *err, size_t errlen) HP_MUST_CHECK;

/*
 * GET /cache/statistics query values (already URL-decoded, NULL = absent):
 * cache_tier "l1"|"all" (default all); time_range a duration, 1s..max_range_s
 * (default 5m, clamped to max_range_s); granularity a duration of whole
 * seconds >= 1s and <= time_range (default: time_range/60, at least 1s);
 * at most API_SERIES_MAX_POINTS points. 0 or -EINVAL.
 */
int api_query_statistics(const char *tier, const char *range, const char *gran,
			 unsigned max_range_s, struct api_stats_query *out, char *err,
			 size_t errlen) HP_MUST_CHECK;
/* GET /cache/keys query values: cursor (unsigned, default 0), count
 * (1..API_KEYS_MAX_COUNT, default API_KEYS_DEFAULT_COUNT). 0 or -EINVAL. */
int api_query_keys(const char *cursor, const char *count, uint64_t *cur, size_t *cnt,
		   char *err, size_t errlen) HP_MUST_CHECK;

/*
 * Percent-decode in[0..inlen) into out (at most outmax bytes; NUL-terminated
 * when room remains). '+' stays '+' (path semantics). Returns 0 and *outlen,
 * -EINVAL on a malformed escape, -E2BIG if it does not fit.
 */
int api_url_decode(const char *in, size_t inlen, char *out, size_t outmax,
		   size_t *outlen) HP_MUST_CHECK;

/* True if s[0..len) is well-formed UTF-8 (no overlongs, surrogates, > U+10FFFF). */
bool api_utf8_valid(const char *s, size_t len);
/* The length (1..4) of the well-formed UTF-8 character that starts s[0..len),
 * 0 if none does. */
size_t api_utf8_seq(const char *s, size_t len);

/* Append s[0..len) to b as a Prometheus label value: \ " and newline escaped.
 * 0 or -ENOBUFS/-ENOMEM. */
int api_prom_escape(struct buf *b, const char *s, size_t len) HP_MUST_CHECK;

/* True if a config key holds a secret the API must not show (passwords ...). */
bool api_config_key_secret(const char *section, const char *key);

#endif
