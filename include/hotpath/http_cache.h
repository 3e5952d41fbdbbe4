/*
 * http_cache.h - RFC 9111 decisions and the stored-response format of the
 * HTTP proxy's cache, as pure functions (no I/O, clock passed in).
 *
 * A stored response is one L1 value: a fixed little header (times,
 * freshness lifetime worked out once at store time, flags, validators)
 * followed by the status line and header fields to send (hop-by-hop and
 * framing fields removed) and the body. A hit therefore costs one L1 copy
 * and arithmetic on the header, no re-parse. Responses with Vary are
 * stored under a secondary key derived from the request's values of the
 * Vary fields; the primary key then holds a small "vary record" naming the
 * fields and a generation number, so replacing or purging the record makes
 * every old variant unreachable at once.
 */
#ifndef HOTPATH_HTTP_CACHE_H
#define HOTPATH_HTTP_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hotpath/buf.h"
#include "hotpath/common.h"
#include "hotpath/http_parse.h"

#define HC_MAGIC_OBJ  0x31435048u   /* "HPC1" */
#define HC_MAGIC_VARY 0x31565048u   /* "HPV1" */
#define HC_NONE (-1)

/* Cache-Control directives of one message (RFC 9111 5.2). */
struct http_cc {
	bool no_store, no_cache, private_, public_, must_revalidate, proxy_revalidate;
	bool only_if_cached, must_understand, immutable, no_transform;
	int64_t max_age, s_maxage, max_stale, min_fresh, swr, sie;   /* HC_NONE if absent */
	bool max_stale_any;
	bool invalid;                  /* a freshness directive with a bad value */
};

/* Parse every Cache-Control field of m (and Pragma: no-cache for requests without CC). */
void http_cc_parse(const struct http_msg *m, struct http_cc *cc);

/* Fixed header of a stored response. */
struct hc_obj {
	uint32_t magic;
	uint16_t status;
	uint16_t flags;
	int64_t request_time, response_time;   /* wall seconds */
	int64_t date, age_value;
	int64_t lifetime;                      /* freshness lifetime, seconds */
	int64_t swr, sie;                      /* seconds or HC_NONE */
	int64_t last_modified;                 /* or HC_NONE */
	uint32_t head_len, body_len;           /* head: status line + fields, CRLF-ended lines */
	uint32_t etag_off, etag_len;           /* within head; len 0 = none */
	uint32_t vary_len;                     /* request Vary signature after the body */
	uint32_t reserved;
};

#define HC_F_NO_CACHE        (1u << 0)   /* must revalidate before every use */
#define HC_F_MUST_REVALIDATE (1u << 1)   /* never served stale */
#define HC_F_HEURISTIC       (1u << 2)
#define HC_F_AUTH_OK         (1u << 3)   /* may answer requests with Authorization */
#define HC_F_COMPRESSED      (1u << 4)   /* a variant we compressed */
#define HC_F_COMPRESSIBLE    (1u << 5)   /* identity that may be served compressed */
#define HC_F_VARY_AE         (1u << 6)   /* add Vary: Accept-Encoding when serving */

/* A stored object viewed in place (points into the L1 value copy). */
struct hc_view {
	const struct hc_obj *o;
	const char *head;
	const char *body;
	const char *vary_sig;
};

/* Validate an L1 value as a stored object. 0 or -EINVAL. */
int hc_view(const char *val, size_t len, struct hc_view *v) HP_MUST_CHECK;

/* Vary record: generation and the lowercase field names, comma separated. */
struct hc_vary {
	uint64_t gen;
	char fields[256];
	bool star;                     /* Vary: * (never matches) */
};
int hc_vary_parse(const char *val, size_t len, struct hc_vary *v) HP_MUST_CHECK;
int hc_vary_build(struct buf *out, const struct hc_vary *v) HP_MUST_CHECK;
/* Fields named by the response's Vary headers, lowercased; false if none. */
bool hc_vary_from_response(const struct http_msg *resp, struct hc_vary *v);
/* Signature of the request's values for v's fields (normalised). */
int hc_vary_signature(const struct http_msg *req, const struct hc_vary *v, struct buf *out)
	HP_MUST_CHECK;

/*
 * May this response be stored by a shared cache (RFC 9111 3)? Returns
 * true, or false with *why set to a short reason for Cache-Status
 * ("no-store", "private", "status", "authorization", ...).
 */
bool hc_storable(const struct http_msg *req, const struct http_cc *rqcc,
		 const struct http_msg *resp, const struct http_cc *rscc, const char **why);

/*
 * Build a stored object from a response head and its (decoded) body.
 * request_time/response_time are wall seconds around the fetch; the
 * response's Date, Age, Expires, Last-Modified and Cache-Control set the
 * lifetime (s-maxage, max-age, Expires - Date, else 10% of Date -
 * Last-Modified capped at a day when heuristics are allowed). Framing and
 * hop-by-hop fields are dropped, a Date is added if missing. `vary_sig`
 * (may be empty) is kept to confirm variant matches. 0 or -ENOBUFS/-ENOMEM.
 */
int hc_build(struct buf *out, const struct http_msg *resp, const struct http_cc *rscc,
	     const char *body, size_t body_len, int64_t request_time, int64_t response_time,
	     bool auth_ok, const char *vary_sig, size_t vary_len) HP_MUST_CHECK;

/*
 * Freshen a stored object with a 304 (RFC 9111 4.3.4): fields of the 304
 * replace stored ones of the same name (except Content-Length and
 * framing), times and lifetime are recomputed. The result goes to out.
 */
int hc_update_304(struct buf *out, const struct hc_view *old, const struct http_msg *r304,
		  int64_t request_time, int64_t response_time) HP_MUST_CHECK;

/*
 * Build the compressed representation of a stored identity object `id`:
 * the same times, lifetime and status, its fields plus
 * `Content-Encoding: coding` (and `Vary: Accept-Encoding` when id has
 * HC_F_VARY_AE), the ETag replaced by `etag` (none when etag_len is 0) and
 * `body` as the body. Flagged HC_F_COMPRESSED. 0 or -ENOBUFS/-ENOMEM.
 */
int hc_build_encoded(struct buf *out, const struct hc_view *id, const char *coding,
		     const char *etag, size_t etag_len, const char *body, size_t body_len)
	HP_MUST_CHECK;

/* Current age in seconds (RFC 9111 4.2.3). */
int64_t hc_age(const struct hc_obj *o, int64_t now);

enum hc_use {
	HC_USE_FRESH = 0,          /* serve */
	HC_USE_STALE_SWR,          /* serve stale, revalidate in the background */
	HC_USE_REVALIDATE,         /* ask the origin (conditional if validators) */
};
/* How may the stored object answer this request now? */
enum hc_use hc_decide(const struct hc_obj *o, const struct http_cc *rqcc, int64_t now);
/* May it be served stale after an origin error (stale-if-error)? */
bool hc_stale_if_error_ok(const struct hc_obj *o, const struct http_cc *rqcc, int64_t now);
/* Seconds the L1 entry should live: fresh time left plus the stale windows. */
int64_t hc_keep_seconds(const struct hc_obj *o, int64_t now, int64_t keep_stale);

/*
 * Client conditionals against the stored object (RFC 9110 13.2.2):
 * true if a 304 should be sent. If-None-Match (weak comparison) takes
 * precedence over If-Modified-Since.
 */
bool hc_not_modified(const struct http_msg *req, const struct hc_view *v, const char *etag,
		     size_t etag_len);

/*
 * A single byte range of a stored 200 (RFC 9110 14): 1 and *start, *len
 * when one satisfiable range applies (If-Range honoured), -1 when it is
 * unsatisfiable (416), 0 when the whole body should be sent.
 */
int hc_range(const struct http_msg *req, const struct hc_view *v, uint64_t *start, uint64_t *len);

/* Is this an HTTP field that must not be forwarded (hop-by-hop, RFC 9110 7.6.1)? */
bool hc_hop_by_hop(const char *name, size_t nlen, const struct http_msg *m);

#endif
