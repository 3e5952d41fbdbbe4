/*
 * tier.h - the cache tiers behind the RESP front, as one interface:
 * L0 (kernel map, hooked in by its owner), L1 (process memory), L2 (Redis
 * or Redis Cluster), with coherent invalidation across them.
 *
 * Reads: L1, then L2 (read-through); an L2 hit is copied into L1 with
 * L2's TTL capped by redis.l1_ttl, unless an invalidation for that key
 * (or a pattern/flush) happened while the read was in flight: every read
 * takes a "caching in progress" snapshot (per-key-stripe sequence number
 * plus a global epoch) before asking Redis and only stores its result if
 * neither moved, checked and stored under the stripe lock that
 * invalidations take. Writes go to Redis first, then the keys are removed
 * from L1 (and L0 through the hooks) before the reply is sent, so no read
 * after the acknowledgement sees the old value. A circuit breaker guards
 * the L2 path: when it is open, reads of keys not in L1 and every write
 * get a "-L2DOWN ..." error at once.
 *
 * Coherence with writers that bypass the agent comes from Redis client
 * tracking (l2.h); a lost invalidation connection starts the stale-if-
 * error window (L1 keeps serving what it holds for redis.stale_if_error),
 * after which, or as soon as the connection is back, L1 and L0 are
 * flushed. Pattern invalidations are published on redis.channel so other
 * agents sharing the Redis drop their copies too.
 *
 * One tier is "installed" for the RESP front (tier_install); without it
 * the front works on L1 alone, as before.
 */
#ifndef HOTPATH_TIER_H
#define HOTPATH_TIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hotpath/breaker.h"
#include "hotpath/buf.h"
#include "hotpath/common.h"
#include "hotpath/l1.h"
#include "hotpath/l2.h"
#include "hotpath/resp_cmd.h"

struct tier;
struct tasks;
struct hp_daemon;

/* Hooks for the tier below L1 (L0): called before the change is
 * acknowledged, from any thread, with no tier lock held except the key's
 * stripe lock for `key` (so a hook must not call back into the tier). */
struct tier_hooks {
	void (*key)(void *arg, const char *key, size_t klen);        /* drop one key */
	void (*pattern)(void *arg, const char *pat, size_t plen);    /* drop a glob */
	void (*flush)(void *arg);                                     /* drop everything */
	void *arg;
};

struct tier_options {
	struct l1 *l1;                 /* required */
	struct l2 *l2;                 /* NULL: L1 only */
	uint64_t l1_ttl_ms;            /* cap on L2-derived TTLs in L1; 0 = 60 s */
	uint64_t stale_if_error_ms;    /* see above; 0 = flush at once */
	struct breaker_options breaker;
	char instance[64];             /* id in cross-agent messages; "" = random */
};

struct tier_stats {
	bool l2_configured, coherent;
	uint64_t l1_hits, l2_hits, l2_misses, l2_errors, l2_rejected;
	uint64_t l1_fills, fills_skipped;        /* L2 values copied / not copied to L1 */
	uint64_t writes, write_errors;
	uint64_t key_invalidations, pattern_invalidations, flushes;
	uint64_t peer_messages_in, peer_messages_out;
	uint64_t stale_served;                   /* L1 hits while L2 coherence was lost */
	/* asynchronous L2 reads: started (one per key in flight), misses that
	 * joined one already in flight, clients parked waiting for them,
	 * refused because the dispatcher's queue was full; stores handed to
	 * the dispatcher, and those that failed */
	uint64_t l2_async_reads, l2_coalesced, l2_parked, l2_queue_full;
	uint64_t l2_async_stores, l2_store_errors;
	struct breaker_stats breaker;
};

/* Invalidation scopes. */
#define TIER_SCOPE_LOCAL 1u    /* L0 + L1 of this agent */
#define TIER_SCOPE_L2    2u    /* Redis: SCAN + UNLINK on every master */
#define TIER_SCOPE_PEERS 4u    /* publish to the other agents */
#define TIER_SCOPE_ALL   (TIER_SCOPE_LOCAL | TIER_SCOPE_L2 | TIER_SCOPE_PEERS)

struct tier_inval_result {
	uint64_t l1_deleted, l2_deleted;
	bool l2_done, peers_told;
};

/* NULL on ENOMEM / missing l1. Takes no ownership of l1 or l2. */
struct tier *tier_new(const struct tier_options *o);
/* Frees the tier (uninstall it and stop its users first). NULL no-op. */
void tier_free(struct tier *t);

/* The tier the RESP front uses (NULL: none). Install after tier_new,
 * uninstall (NULL) before tier_free. */
void tier_install(struct tier *t);
struct tier *tier_current(void);

/* Set the L0 hooks (NULL clears them). */
void tier_set_flush_hook(struct tier *t, const struct tier_hooks *h);

/*
 * Read-through GET: append the RESP reply for `key` to out (bulk, null,
 * or a -L2DOWN error). 0, or -ENOBUFS/-ENOMEM from the buffer.
 */
int tier_get(struct tier *t, const char *key, size_t klen, struct buf *out) HP_MUST_CHECK;
/* L1 only: append key's raw value to out. 1 hit, 0 miss, or
 * -ENOBUFS/-ENOMEM from the buffer (counted as an L1 hit either way). */
int tier_l1_peek(struct tier *t, const char *key, size_t klen, struct buf *out) HP_MUST_CHECK;
/*
 * Asynchronous L2 read (L1 is the caller's to try first), for threads
 * that must not wait: the RESP workers, the pooler. The caller embeds a
 * struct tier_wait in its own object and sets fn. Returns 0: fn is called
 * exactly once - on the L2 dispatcher's thread, or on the calling thread
 * before the return when the read could not be queued - with rc 1 (val
 * valid during the call only), 0 not found, or -errno and err (-EAGAIN:
 * the dispatcher's queue is full). The value is copied into L1 under the
 * same rules as tier_get. Misses of one key in flight at once share one
 * read unless the key was invalidated in between. Returns -EHOSTDOWN
 * (breaker open), -EAGAIN (the dispatcher's queue is full: not counted
 * by the breaker) or -ENOMEM without calling fn.
 */
struct tier_wait {
	struct tier_wait *next;                      /* the tier's */
	void (*fn)(struct tier_wait *w, int rc, const char *val, size_t vlen, const char *err);
	/* set by the caller: TIER_WAIT_NOFILL, the value is not copied into
	 * L1 (the caller stores it by its own rules, with tier_fill and a
	 * tier_read_begin snapshot taken before tier_read_async) */
	unsigned flags;
	/* set by the tier before fn (rc 1): the value's Redis PTTL (-1 none)
	 * and whether it may be cached (read on a tracked connection) */
	int64_t pttl_ms;
	bool cacheable;
};
#define TIER_WAIT_NOFILL 1u
int tier_read_async(struct tier *t, const char *key, size_t klen,
		    struct tier_wait *w) HP_MUST_CHECK;
/*
 * Fire-and-forget SET key value [PX ttl_ms] through the dispatcher: the
 * key leaves L1/L0 now, Redis gets the value soon (a failure is counted,
 * not reported). 0, or -EAGAIN/-ENOMEM/-ESHUTDOWN when it was not queued.
 * Without L2 it is tier_set.
 */
int tier_store_async(struct tier *t, const char *key, size_t klen, const char *val,
		     size_t vlen, uint64_t ttl_ms) HP_MUST_CHECK;
/*
 * Write-through SET key value [PX ttl_ms] (ttl_ms 0 = none): Redis first,
 * then the key leaves L1/L0. 0, -EHOSTDOWN (breaker open), or the L2
 * error (message in err).
 */
int tier_set(struct tier *t, const char *key, size_t klen, const char *val, size_t vlen,
	     uint64_t ttl_ms, char *err, size_t errlen) HP_MUST_CHECK;
/* DEL through Redis, then L1/L0. 0 or -errno as tier_set. */
int tier_del(struct tier *t, const char *key, size_t klen, char *err, size_t errlen) HP_MUST_CHECK;
/*
 * Pattern (glob) invalidation over `scope`, ordered L2 -> L1/L0 -> peers
 * so that once it returns no read through this agent returns a value
 * deleted by it. 0, or -errno if the L2 part failed (L1 is still cleared).
 */
int tier_invalidate(struct tier *t, const char *pat, size_t plen, unsigned scope,
		    struct tier_inval_result *res, char *err, size_t errlen) HP_MUST_CHECK;

/*
 * The RESP front's hook: run a parsed command through the tiers. Returns
 * TIER_LOCAL when the command should run against L1 as usual (keyless
 * commands, or no L2), TIER_PARKED when `defer` (may be NULL) was used to
 * park the client while a loader, Redis (through the L2 dispatcher) or an
 * invalidation (on the task processor) works (the reply comes through
 * defer->done), else 0 or -ENOBUFS/-ENOMEM like resp_exec. Without
 * `defer` the Redis round trips block the caller.
 * first/last/step are the command's key positions as COMMAND reports them
 * (first 0: no keys; last -1: the last argument); `write` says whether it
 * modifies keys. `name` is the lowercase command name.
 */
#define TIER_LOCAL 1
#define TIER_PARKED 2
int tier_exec(struct tier *t, const char *name, const char *const *argv, const size_t *len,
	      size_t argc, int first, int last, int step, bool write,
	      struct buf *out, const struct resp_defer *defer) HP_MUST_CHECK;
/* Extension commands (resp_ctx.ext signature): HOTPATH.INVALIDATE pattern
 * [LOCAL|ALL]. 1 if handled, TIER_PARKED if handled by parking the client
 * through ctx->defer (the Redis part runs on the task processor, the
 * reply comes through defer->done once every tier dropped the keys), 0
 * if not ours. Works on the installed tier. */
int tier_resp_ext(struct resp_ctx *ctx, struct resp_client *cl, const struct resp_cmd *cmd,
		  struct buf *out);

void tier_get_stats(struct tier *t, struct tier_stats *out);
/* Prometheus families of the tiers, L2 and tasks (agent/api/api_tier.c).
 * 0 or -ENOBUFS/-ENOMEM. */
struct buf;
int tier_metrics_render(struct hp_daemon *d, struct buf *b) HP_MUST_CHECK;
struct l2 *tier_l2(struct tier *t);
/* True when the RESP front must pass commands to tier_exec: an L2 or
 * per-pattern strategies ([strategy.NAME]) are configured. */
bool tier_routes(struct tier *t);

/*
 * Daemon glue: build tasks, L2 and the tier from d->cfg and install it
 * (d->tasks, d->l2, d->tier); tier_stop undoes it. tier_start returns 0,
 * or -errno after logging why (the daemon then refuses to start: an L2
 * that is configured but cannot be set up is a configuration error).
 */
int tier_start(struct hp_daemon *d) HP_MUST_CHECK;
void tier_stop(struct hp_daemon *d);
struct hp_config;
/* SIGHUP: true if `nc`'s [strategy.*]/[loader.*] differ from d->cfg's. */
bool tier_strategies_changed(const struct hp_config *old, const struct hp_config *nc);
/* Build the strategies and loaders of `nc` and swap them in; the old set
 * drains (its write-behind queue, its loads) and is freed when idle.
 * 0, or -errno with the reason in err (the old set stays). */
int tier_reload_strategies(struct hp_daemon *d, const struct hp_config *nc, char *err,
			   size_t errlen) HP_MUST_CHECK;

#endif
