/*
 * api_cache.c - the REST API's route handlers: health, /metrics, config
 * and the /cache routes.
 *
 * Each handler validates its input with api_body.c (which names the bad
 * field), acts through the public accessors of the subsystem it reports on
 * (l1_*, resp_server_stats, timeseries_query, config_visit) and builds the
 * reply with jansson. Handlers run in libmicrohttpd's threads; the store is
 * thread-safe, and the config is read under d->cfg_lock.
 *
 * Counters are sent as JSON integers; uint64 cursors as decimal strings,
 * because JavaScript clients lose precision past 2^53. Keys are binary-safe
 * in the store but JSON strings are UTF-8, so a key that is not valid UTF-8
 * is shown with U+FFFD replacements plus its exact bytes in "key_base64".
 *
 * Deliberately not here: anything about the L0/L2 tiers, which answer as
 * absent until their subsystems exist; policies set here are live only and
 * not written back to the config file.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "hotpath/api_body.h"
#include "hotpath/config.h"
#include "hotpath/l1.h"
#include "hotpath/log.h"
#include "hotpath/metrics.h"
#include "hotpath/timeseries.h"
#include "hotpath/server.h"
#include "api_int.h"

#define METRICS_MAX_BYTES (8u << 20)
#define KEYS_HARD_CAP     (4 * API_KEYS_MAX_COUNT)   /* keys kept for one page */
#define KEYS_MAX_STEPS    64                         /* l1_scan calls for one page */

static const char *prio_name(int p)
{
	return p == L1_PRIO_LOW ? "low" : p == L1_PRIO_HIGH ? "high" : "normal";
}

static json_t *ratio(uint64_t hits, uint64_t misses)
{
	if (hits + misses == 0)
		return json_null();
	return json_real((double)hits / (double)(hits + misses));
}

static bool need_l1(struct api_call *c)
{
	if (c->d->l1)
		return true;
	api_reply_error(c, 503, "unavailable", "the L1 cache is not running");
	return false;
}

/* Read a body that must be a JSON object; replies 400 on failure. */
static json_t *body_object(struct api_call *c)
{
	char err[256];
	json_t *j = api_json_parse(c->body, c->body_len, err, sizeof(err));

	if (!j)
		api_reply_error(c, 400, "invalid_json", "%s", err);
	return j;
}

static struct l1_stats *l1_stats_new(struct api_call *c)
{
	struct l1_stats *st = malloc(sizeof(*st));

	if (!st) {
		api_reply_error(c, 500, "internal", "out of memory");
		return NULL;
	}
	l1_get_stats(c->d->l1, st);
	if (st->n_partitions > L1_MAX_PARTITIONS)
		st->n_partitions = L1_MAX_PARTITIONS;
	return st;
}

static json_t *partition_json(const struct l1_part_stats *p, bool counters)
{
	json_t *o = json_pack("{s:o,s:o,s:o,s:o,s:s,s:o,s:o}",
			      "name", api_json_bytes(p->name, strnlen(p->name, sizeof(p->name))),
			      "prefix", api_json_bytes(p->prefix, strnlen(p->prefix, sizeof(p->prefix))),
			      "max_memory_bytes", api_json_u64(p->max_memory),
			      "default_ttl_ms", api_json_u64(p->default_ttl_ms),
			      "priority", prio_name(p->priority),
			      "keys", api_json_u64(p->keys),
			      "memory_bytes", api_json_u64(p->memory));
	if (o && counters) {
		json_object_set_new(o, "hits", api_json_u64(p->hits));
		json_object_set_new(o, "misses", api_json_u64(p->misses));
		json_object_set_new(o, "sets", api_json_u64(p->sets));
		json_object_set_new(o, "evictions", api_json_u64(p->evictions));
		json_object_set_new(o, "expired", api_json_u64(p->expired));
		json_object_set_new(o, "hit_ratio", ratio(p->hits, p->misses));
	}
	return o;
}

static json_t *partitions_json(const struct l1_stats *st, bool counters)
{
	json_t *a = json_array();

	for (unsigned i = 0; a && i < st->n_partitions; i++)
		json_array_append_new(a, partition_json(&st->partitions[i], counters));
	return a;
}

/* ---- GET /api/v2/health ------------------------------------------------------- */

void api_h_health(struct api_call *c)
{
	struct hp_daemon *d = c->d;
	uint64_t now = hp_now_ms();
	json_t *feats = json_array();
	bool degraded = !d->l1 || !d->resp;

	if (!api_query_only(c, (const char *const[]){ NULL }))
		return;
	for (unsigned i = 0; feats && i < d->n_features && i < HP_MAX_FEATURES; i++) {
		const struct hp_feature *f = &d->features[i];
		json_t *o = json_pack("{s:s,s:b}", "name", f->name ? f->name : "?", "available",
				      f->available);
		if (o && !f->available && f->reason[0])
			json_object_set_new(o, "reason", api_json_bytes(f->reason,
									 strnlen(f->reason, sizeof(f->reason))));
		json_array_append_new(feats, o);
	}
	api_reply_json(c, 200, json_pack("{s:s,s:s,s:o,s:o,s:o,s:{s:b,s:b,s:b,s:b}}",
					 "status", degraded ? "degraded" : "ok",
					 "version", d->version ? d->version : "unknown",
					 "uptime_seconds",
					 api_json_u64(now > d->start_mono_ms ? (now - d->start_mono_ms) / 1000 : 0),
					 "started_at_ms", api_json_u64(d->start_wall_ms),
					 "features", feats,
					 "subsystems", "l1", d->l1 != NULL, "resp", d->resp != NULL,
					 "bpf_accept", d->bpf_accept != NULL, "timeseries", d->ts != NULL));
}

/* ---- GET /metrics ----------------------------------------------------------------- */

void api_h_metrics(struct api_call *c)
{
	struct metrics_api_stats st;
	struct buf b;
	int rc;

	memset(&st, 0, sizeof(st));
	api_stats_snapshot(c->api, &st);
	buf_init(&b, METRICS_MAX_BYTES);
	rc = metrics_render(c->d, &st, &b);
	if (rc) {
		buf_free(&b);
		api_reply_error(c, 500, "internal", "rendering metrics failed: %s", strerror(-rc));
		return;
	}
	/* The buffer's storage becomes the response (freed by libmicrohttpd). */
	if (b.off)
		memmove(b.data, b.data + b.off, b.len);
	api_reply_text(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
}

/* ---- GET /api/v2/config --------------------------------------------------------- */

static void config_one(const char *section, const char *key, const char *value,
		       bool reloadable, void *arg)
{
	json_t *sections = arg, *sec = json_object_get(sections, section);

	if (!sec) {
		sec = json_object();
		if (!sec || json_object_set_new(sections, section, sec))
			return;
	}
	json_object_set_new(sec, key, json_pack("{s:o,s:b}", "value",
						api_config_key_secret(section, key) && value[0]
						? json_string("<redacted>")
						: api_json_bytes(value, strlen(value)),
						"reloadable", reloadable));
}

void api_h_config(struct api_call *c)
{
	json_t *sections = json_object();
	char source[HP_PATH_MAX];

	if (!api_query_only(c, (const char *const[]){ NULL }))
		return;
	if (!sections) {
		api_reply_error(c, 500, "internal", "out of memory");
		return;
	}
	pthread_rwlock_rdlock(&c->d->cfg_lock);
	config_visit(c->d->cfg, config_one, sections);
	snprintf(source, sizeof(source), "%s", c->d->cfg->source);
	pthread_rwlock_unlock(&c->d->cfg_lock);
	api_reply_json(c, 200, json_pack("{s:o,s:o}", "source",
					 source[0] ? api_json_bytes(source, strlen(source)) : json_null(),
					 "sections", sections));
}

/* ---- GET /api/v2/cache/status ------------------------------------------------------ */

void api_h_cache_status(struct api_call *c)
{
	struct api_cfg_view cfg;
	struct l1_stats *st;
	json_t *j;

	if (!api_query_only(c, (const char *const[]){ NULL }) || !need_l1(c))
		return;
	api_cfg_view(c->d, &cfg);
	st = l1_stats_new(c);
	if (!st)
		return;
	j = json_pack("{s:{s:{s:b,s:o,s:o,s:o,s:o,s:o,s:s}},s:o,s:{s:s,s:s}}",
		      "tiers", "l1", "present", 1,
		      "keys", api_json_u64(st->keys),
		      "keys_with_ttl", api_json_u64(st->keys_with_ttl),
		      "memory_bytes", api_json_u64(st->memory),
		      "max_memory_bytes", api_json_u64(st->max_memory),
		      "effective_max_memory_bytes", api_json_u64(st->effective_max_memory),
		      "policy", config_eviction_name(cfg.eviction),
		      "partitions", partitions_json(st, false),
		      "absent_tiers",
		      "l0", "the kernel (sk_skb) tier is not running in this build",
		      "l2", "the Redis tier is not running in this build");
	free(st);
	api_reply_json(c, 200, j);
}

/* ---- POST /api/v2/cache/clear, DELETE /api/v2/performance/cache/invalidate ------- */

static void reply_deleted(struct api_call *c, const char *field, const struct api_pattern_req *rq,
			  uint64_t n)
{
	json_t *j = json_pack("{s:{s:o},s:o,s:o}", field, "l1", api_json_u64(n),
			      "total", api_json_u64(n),
			      "pattern", rq->has_pattern ? api_json_bytes(rq->pattern, rq->patlen)
							 : json_null());
	api_reply_json(c, 200, j);
}

/*
 * The shared front of the clear and invalidate routes: no query, L1 running,
 * a valid body read by `parse`. Returns 1 if *rq is filled and the caller
 * goes on with L1 alone, 0 if a reply was already given (an error, or the
 * tiers did the work: every tier, ordered L2 -> L1/L0 -> peers).
 */
static int pattern_route(struct api_call *c, const char *verb,
			 int (*parse)(const json_t *, struct api_pattern_req *, char *, size_t),
			 struct api_pattern_req *rq)
{
	char err[256];
	json_t *body;
	int rc;

	if (!api_query_only(c, (const char *const[]){ NULL }) || !need_l1(c))
		return 0;
	if (!(body = body_object(c)))
		return 0;
	rc = parse(body, rq, err, sizeof(err));
	json_decref(body);
	if (rc) {
		api_reply_error(c, 400, "invalid_body", "%s", err);
		return 0;
	}
	if (c->d->tier) {
		api_tier_invalidate(c, verb, rq);
		return 0;
	}
	return 1;
}

void api_h_cache_clear(struct api_call *c)
{
	struct api_pattern_req rq;
	uint64_t n;

	if (!pattern_route(c, "deleted", api_body_clear, &rq))
		return;
	n = rq.has_pattern ? l1_delete_pattern(c->d->l1, rq.pattern, rq.patlen)
			   : l1_flush(c->d->l1);
	log_info("api: cache clear by token '%s' (%s): %" PRIu64 " key(s) deleted", c->token_name,
		 rq.has_pattern ? "pattern" : "everything", n);
	reply_deleted(c, "deleted", &rq, n);
}

void api_h_cache_invalidate(struct api_call *c)
{
	struct api_pattern_req rq;
	uint64_t n;

	if (!pattern_route(c, "invalidated", api_body_invalidate, &rq))
		return;
	n = l1_delete_pattern(c->d->l1, rq.pattern, rq.patlen);
	log_info("api: invalidate by token '%s': %" PRIu64 " key(s) deleted", c->token_name, n);
	reply_deleted(c, "invalidated", &rq, n);
}

/* ---- GET /api/v2/cache/statistics -------------------------------------------------- */

static json_t *series_json(struct api_call *c, const struct api_stats_query *q)
{
	struct ts_point *pts;
	unsigned n;
	json_t *arr = json_array();

	if (!arr || !c->d->ts)
		return arr;
	pts = calloc(q->points, sizeof(*pts));
	if (!pts)
		return arr;
	n = timeseries_query(c->d->ts, q->range_s, q->gran_s, pts, q->points);
	for (unsigned i = 0; i < n; i++) {
		const struct ts_point *p = &pts[i];
		json_array_append_new(arr, json_pack("{s:o,s:i,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}",
						     "timestamp_ms", api_json_u64(p->wall_ms),
						     "samples", (int)p->samples,
						     "hits", api_json_u64(p->hits),
						     "misses", api_json_u64(p->misses),
						     "sets", api_json_u64(p->sets),
						     "deletes", api_json_u64(p->deletes),
						     "evictions", api_json_u64(p->evictions),
						     "expired", api_json_u64(p->expired),
						     "commands", api_json_u64(p->commands),
						     "memory_bytes", api_json_u64(p->memory),
						     "keys", api_json_u64(p->keys),
						     "connections", api_json_u64(p->connections),
						     "hit_ratio", ratio(p->hits, p->misses)));
	}
	free(pts);
	return arr;
}

void api_h_cache_statistics(struct api_call *c)
{
	static const char *const allowed[] = { "cache_tier", "time_range", "granularity", NULL };
	char tb[32], rb[32], gb[32], err[256];
	const char *tier, *range, *gran;
	struct api_stats_query q;
	struct l1_stats *st;
	uint64_t ev = 0;
	bool bad = false;
	unsigned cap;
	json_t *j;

	if (!api_query_only(c, allowed))
		return;
	tier = api_query_get(c, "cache_tier", tb, sizeof(tb), &bad);
	range = bad ? NULL : api_query_get(c, "time_range", rb, sizeof(rb), &bad);
	gran = bad ? NULL : api_query_get(c, "granularity", gb, sizeof(gb), &bad);
	if (bad)
		return;
	cap = c->d->ts ? timeseries_capacity(c->d->ts) : 3600;
	if (api_query_statistics(tier, range, gran, cap, &q, err, sizeof(err))) {
		api_reply_error(c, 400, "invalid_query", "%s", err);
		return;
	}
	if (!need_l1(c) || !(st = l1_stats_new(c)))
		return;
	for (unsigned i = 0; i < L1_EVICT_REASONS; i++)
		ev += st->evictions[i];
	j = json_pack("{s:s,s:i,s:i,s:{s:{s:o,s:o,s:o,s:o,s:o,s:{s:o,s:o,s:o},s:{s:o,s:o},s:o,s:o,s:o}},"
		      "s:o,s:o}",
		      "cache_tier", q.tier == API_TIER_L1 ? "l1" : "all",
		      "time_range_seconds", (int)q.range_s,
		      "granularity_seconds", (int)q.gran_s,
		      "totals", "l1",
		      "hits", api_json_u64(st->hits),
		      "misses", api_json_u64(st->misses),
		      "hit_ratio", ratio(st->hits, st->misses),
		      "sets", api_json_u64(st->sets),
		      "deletes", api_json_u64(st->deletes),
		      "evictions", "memory", api_json_u64(st->evictions[L1_EVICT_MEMORY]),
		      "quota", api_json_u64(st->evictions[L1_EVICT_QUOTA]),
		      "pressure", api_json_u64(st->evictions[L1_EVICT_PRESSURE]),
		      "expired", "lazy", api_json_u64(st->expired_lazy),
		      "active", api_json_u64(st->expired_active),
		      "keys", api_json_u64(st->keys),
		      "memory_bytes", api_json_u64(st->memory),
		      "evictions_total", api_json_u64(ev),
		      "partitions", partitions_json(st, true),
		      "series", series_json(c, &q));
	free(st);
	api_reply_json(c, 200, j);
}

/* ---- POST /api/v2/cache/policies -------------------------------------------------- */

void api_h_cache_policies(struct api_call *c)
{
	struct l1_partition *parts;
	struct l1_stats *st;
	char err[256];
	json_t *body;
	unsigned n = 0;
	int rc;

	if (!api_query_only(c, (const char *const[]){ NULL }) || !need_l1(c))
		return;
	if (!(body = body_object(c)))
		return;
	parts = calloc(L1_MAX_PARTITIONS, sizeof(*parts));
	if (!parts) {
		json_decref(body);
		api_reply_error(c, 500, "internal", "out of memory");
		return;
	}
	/* One slot stays for the store's implicit default partition. */
	rc = api_body_policies(body, parts, L1_MAX_PARTITIONS - 1, &n, err, sizeof(err));
	json_decref(body);
	if (rc) {
		free(parts);
		api_reply_error(c, 400, "invalid_body", "%s", err);
		return;
	}
	rc = l1_set_partitions(c->d->l1, parts, n);
	free(parts);
	if (rc == -EINVAL) {
		api_reply_error(c, 400, "invalid_body", "the cache refused the partition table "
				"(duplicate or conflicting name/prefix); nothing changed");
		return;
	}
	if (rc) {
		api_reply_error(c, 500, "internal", "applying the partition table failed: %s; "
				"nothing changed", strerror(-rc));
		return;
	}
	log_info("api: partition table replaced by token '%s' (%u partition(s))", c->token_name, n);
	if (!(st = l1_stats_new(c)))
		return;
	api_reply_json(c, 200, json_pack("{s:b,s:o}", "applied", 1, "partitions",
					 partitions_json(st, false)));
	free(st);
}

/* ---- GET /api/v2/cache/keys/{pattern} ------------------------------------------- */

struct key_list {
	size_t n, cap;
	struct { char *k; size_t len; } *v;
	bool oom;
};

/* Runs under a shard lock: copy and return. */
static bool collect_key(const char *key, size_t klen, void *arg)
{
	struct key_list *kl = arg;
	char *copy;

	if (kl->oom || kl->n >= KEYS_HARD_CAP)
		return false;
	if (kl->n == kl->cap) {
		size_t ncap = kl->cap ? kl->cap * 2 : 64;
		void *nv = realloc(kl->v, ncap * sizeof(*kl->v));
		if (!nv) {
			kl->oom = true;
			return false;
		}
		kl->v = nv;
		kl->cap = ncap;
	}
	copy = malloc(klen ? klen : 1);
	if (!copy) {
		kl->oom = true;
		return false;
	}
	memcpy(copy, key, klen);
	kl->v[kl->n].k = copy;
	kl->v[kl->n].len = klen;
	kl->n++;
	return true;
}

static json_t *key_json(const char *k, size_t len, int64_t ttl)
{
	json_t *o = json_pack("{s:o,s:o}", "key", api_json_bytes(k, len),
			      "ttl_ms", ttl >= 0 ? json_integer(ttl) : json_null());

	if (o && !api_utf8_valid(k, len)) {
		int b64len = 4 * (int)((len + 2) / 3);
		char *b64 = malloc((size_t)b64len + 1);
		if (b64) {
			EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)k, (int)len);
			json_object_set_new(o, "key_base64", json_stringn(b64, (size_t)b64len));
			free(b64);
		}
	}
	return o;
}

void api_h_cache_keys(struct api_call *c)
{
	static const char *const allowed[] = { "cursor", "count", NULL };
	char pat[API_PATTERN_MAX], cb[32], nb[32], err[256], next[24];
	const char *cursor_s, *count_s;
	struct key_list kl = { 0 };
	size_t patlen = 0, count;
	uint64_t cursor, nextc;
	bool bad = false;
	json_t *keys;

	if (!api_query_only(c, allowed))
		return;
	if (api_url_decode(c->rest, strlen(c->rest), pat, sizeof(pat) - 1, &patlen)) {
		api_reply_error(c, 400, "invalid_pattern", "the key pattern in the path is not validly "
				"percent-encoded or is longer than %d bytes", API_PATTERN_MAX - 1);
		return;
	}
	if (patlen == 0) {
		pat[0] = '*';
		patlen = 1;
	}
	cursor_s = api_query_get(c, "cursor", cb, sizeof(cb), &bad);
	count_s = bad ? NULL : api_query_get(c, "count", nb, sizeof(nb), &bad);
	if (bad)
		return;
	if (api_query_keys(cursor_s, count_s, &cursor, &count, err, sizeof(err))) {
		api_reply_error(c, 400, "invalid_query", "%s", err);
		return;
	}
	if (!need_l1(c))
		return;
	/* A scan step visits about `count` slots, not keys: keep stepping until
	 * the page holds `count` keys, the iteration ends, or a step budget is
	 * spent (sparse matches must not make one request scan everything). */
	nextc = cursor;
	for (unsigned step = 0; step < KEYS_MAX_STEPS; step++) {
		nextc = l1_scan(c->d->l1, nextc, count - kl.n, pat, patlen, collect_key, &kl);
		if (nextc == 0 || kl.n >= count || kl.oom || kl.n >= KEYS_HARD_CAP)
			break;
	}
	keys = json_array();
	for (size_t i = 0; i < kl.n; i++) {
		int64_t ttl = l1_pttl(c->d->l1, kl.v[i].k, kl.v[i].len);
		if (ttl != -2 && keys)   /* -2: deleted since the scan saw it */
			json_array_append_new(keys, key_json(kl.v[i].k, kl.v[i].len, ttl));
		free(kl.v[i].k);
	}
	free(kl.v);
	if (kl.oom) {
		json_decref(keys);
		api_reply_error(c, 500, "internal", "out of memory listing keys");
		return;
	}
	snprintf(cb, sizeof(cb), "%" PRIu64, cursor);
	snprintf(next, sizeof(next), "%" PRIu64, nextc);
	api_reply_json(c, 200, json_pack("{s:o,s:s,s:s,s:b,s:i,s:o}",
					 "pattern", api_json_bytes(pat, patlen),
					 "cursor", cb, "next_cursor", next,
					 "complete", nextc == 0,
					 "count", (int)json_array_size(keys),
					 "keys", keys));
}

/* ---- routes of subsystems that are not running ------------------------------------- */

void api_h_not_running(struct api_call *c)
{
	api_reply_error(c, 501, "not_implemented", "%s", c->note ? c->note
								 : "this route's subsystem is not running");
}
