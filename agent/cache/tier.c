/*
 * tier.c - L1 + L2 behind the RESP front, kept coherent
 * (see include/hotpath/tier.h).
 *
 * How: 256 key stripes, each a mutex and a sequence number, plus one
 * global epoch. A per-key invalidation bumps its stripe's sequence and
 * deletes the key from L1 (and L0 via the hook) under the stripe lock; a
 * pattern invalidation or a flush takes every stripe lock just long
 * enough to bump the epoch, then deletes. A read-through copies its L2
 * value into L1 only if, under the stripe lock, neither number moved since
 * before it asked Redis: that is the "caching in progress" placeholder
 * without storing one per key, and a false positive (another key of the
 * same stripe changed) only costs a later miss. Writes go to Redis first
 * and then invalidate locally, before the caller replies.
 *
 * Reads that must not wait (the RESP workers, the pooler) are
 * asynchronous: an L1 hit is answered inline; a miss parks its client and
 * becomes a "flight" in its key's stripe list, read by the L2 dispatcher
 * (l2_get_async). The flight keeps the stripe's sequence and the epoch of
 * its start, so its fill obeys the same check; later misses of the key
 * join it (one read to Redis) only while neither moved, since a read that
 * began before an invalidation may return the value it invalidated. The
 * dispatcher's thread completes the flight: breaker outcome, counters, the
 * fill under the stripe lock, then each waiter's callback (which hands a
 * reply to its worker's completion list). An MGET answers each key into
 * a slot, parks once when the first key must wait (strategy keys see
 * their slot as their own resp_defer) and counts its outstanding keys
 * down; the last one builds the reply in key order. The blocking
 * tier_get stays for threads that may wait. Every other command with
 * keys the front forwards (the writes, the reads of key metadata) parks
 * its client the same way (l2_command_async); a write's completion does
 * what the blocking write does, in the same order: breaker, then the
 * keys dropped, then the reply. Pattern invalidations and flushes from
 * the front run on the task processor with their client parked.
 *
 * Commands from the RESP front: GET/MGET read through; FLUSHALL/FLUSHDB
 * clear every tier; other commands with keys run on Redis (the source of
 * truth) and, if they write, drop their keys from L1; keyless commands
 * (PING, INFO, DBSIZE, KEYS, SCAN...) run locally and show L1.
 *
 * A maintenance thread ends the stale-if-error window: once the
 * invalidation connection has been lost for redis.stale_if_error, L1 is
 * flushed (and again when the connection is back).
 *
 * Strategies are swapped whole on SIGHUP (tier_reload_strategies). Readers
 * never lock for them: a thread announces the object it uses in its own
 * hazard slot (tier_strat_enter: publish, then check it is still the
 * current one) and clears it when done; work that outlives the call (a
 * load task, a background reload, a write-behind batch, a warm job) takes
 * a hold on the object while its hazard is up. A replaced object is
 * retired: it keeps flushing its own write-behind queue, and the
 * maintenance thread frees it once no hazard slot names it, no hold is
 * left and its queue is empty.
 *
 * What not: no negative caching of L2 misses (a miss is not remembered),
 * no L2 population from L1-only writes (with L2 every write goes to
 * Redis), no cross-slot MGET splitting beyond one GET per key; the
 * blocking calls (tier_get, tier_set, tier_del, tier_invalidate) stay for
 * callers that may wait (docs/tiers.md lists them).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hotpath/daemon.h"
#include "hotpath/log.h"
#include "hotpath/resp.h"
#include "hotpath/tasks.h"
#include "hotpath/tier.h"
#include "hotpath/warm.h"
#include "tier_int.h"

#define TIER_STRIPES 256
#define TIER_ERR 256
#define TIER_MAX_RETIRED 16    /* replaced strategies still draining */

struct tflight;

struct stripe {
	pthread_mutex_t mu;
	_Atomic uint64_t seq;
	struct tflight *flights;       /* asynchronous L2 reads in progress (mu) */
} __attribute__((aligned(64)));

struct tier {
	struct tier_options o;
	struct l1 *l1;
	struct l2 *l2;
	struct breaker br;
	struct tasks *tasks;                  /* the front's parked invalidations */
	struct stripe stripes[TIER_STRIPES];
	_Atomic uint64_t epoch;
	_Atomic uint64_t lost_at_ms;          /* 0: coherent */
	_Atomic bool flushed_for_loss;
	struct tier_hooks hooks;
	_Atomic(struct strategies *) strat;   /* [strategy.*], NULL = none */
	pthread_mutex_t retire_mu;
	struct strategies *retired[TIER_MAX_RETIRED];
	unsigned nretired;
	pthread_t maint;
	bool maint_started;
	_Atomic bool stop;
	pthread_mutex_t maint_mu;             /* maint_cv's: wakes an idle maint */
	pthread_cond_t maint_cv;
	_Atomic uint64_t l1_hits, l2_hits, l2_misses, l2_errors, l2_rejected;
	_Atomic uint64_t l1_fills, fills_skipped, writes, write_errors;
	_Atomic uint64_t key_inv, pat_inv, flushes, peer_in, peer_out, stale_served;
	_Atomic uint64_t l2_async_reads, l2_coalesced, l2_parked, l2_queue_full;
	_Atomic uint64_t l2_async_stores, l2_store_errors;
};

static _Atomic(struct tier *) installed;

void tier_install(struct tier *t)
{
	atomic_store(&installed, t);
}

struct tier *tier_current(void)
{
	return atomic_load_explicit(&installed, memory_order_acquire);
}

struct l2 *tier_l2(struct tier *t)
{
	return t ? t->l2 : NULL;
}

bool tier_routes(struct tier *t)
{
	return t && (t->l2 || atomic_load_explicit(&t->strat, memory_order_relaxed));
}

struct l1 *tier_l1(struct tier *t)
{
	return t->l1;
}

struct strategies *tier_strategies(struct tier *t)
{
	return t ? atomic_load(&t->strat) : NULL;
}

static void maint_kick(struct tier *t);

void tier_set_strategies(struct tier *t, struct strategies *s)
{
	atomic_store(&t->strat, s);
	maint_kick(t);
}

/* ---- hazard slots for the swappable strategies ----------------------------- */

struct hazard {
	_Atomic(struct strategies *) ptr;
	unsigned depth;                  /* nested enters of its thread */
	_Atomic bool used;               /* owned by a live thread */
	struct hazard *next;
};

static pthread_mutex_t hz_mu = PTHREAD_MUTEX_INITIALIZER;
static struct hazard *_Atomic hz_list;   /* slots are reused, never freed */
static pthread_key_t hz_key;
static pthread_once_t hz_once = PTHREAD_ONCE_INIT;
static __thread struct hazard *hz_mine;

static void hz_thread_gone(void *p)
{
	struct hazard *h = p;

	atomic_store(&h->ptr, NULL);
	atomic_store(&h->used, false);
}

static void hz_init(void)
{
	if (pthread_key_create(&hz_key, hz_thread_gone) != 0)
		log_warn("tier: no thread-exit hook for hazard slots: they will not be reused");
}

static struct hazard *hz_slot(void)
{
	struct hazard *h;

	if (hz_mine)
		return hz_mine;
	pthread_once(&hz_once, hz_init);
	pthread_mutex_lock(&hz_mu);
	for (h = atomic_load(&hz_list); h; h = h->next)
		if (!atomic_load(&h->used))
			break;
	if (!h) {
		h = calloc(1, sizeof(*h));
		if (!h) {
			pthread_mutex_unlock(&hz_mu);
			return NULL;
		}
		h->next = atomic_load(&hz_list);
		atomic_store(&hz_list, h);
	}
	atomic_store(&h->used, true);
	h->depth = 0;
	pthread_mutex_unlock(&hz_mu);
	pthread_setspecific(hz_key, h);
	hz_mine = h;
	return h;
}

struct strategies *tier_strat_enter(struct tier *t)
{
	struct hazard *h = hz_slot();
	struct strategies *ss;

	if (!h) {
		/* no slot (ENOMEM): fall back to a hold taken under the retire lock */
		return NULL;
	}
	if (h->depth++ > 0)
		return atomic_load(&h->ptr);
	do {
		ss = atomic_load(&t->strat);
		atomic_store(&h->ptr, ss);       /* seq_cst: seen by the reaper's scan */
	} while (atomic_load(&t->strat) != ss);
	return ss;
}

void tier_strat_leave(void)
{
	struct hazard *h = hz_mine;

	if (h && h->depth > 0 && --h->depth == 0)
		atomic_store(&h->ptr, NULL);
}

static bool hz_names(struct strategies *ss)
{
	for (struct hazard *h = atomic_load(&hz_list); h; h = h->next)
		if (atomic_load(&h->ptr) == ss)
			return true;
	return false;
}

/* Maintenance thread: tick the retired strategies, free the idle ones. */
static void reap_retired(struct tier *t, bool all)
{
	pthread_mutex_lock(&t->retire_mu);
	for (unsigned i = 0; i < t->nretired;) {
		struct strategies *ss = t->retired[i];

		strategies_tick(ss);
		if (all || (!hz_names(ss) && strategies_idle(ss))) {
			if (!all)
				log_info("strategies: a replaced set has drained and is freed");
			strategies_free(ss);
			t->retired[i] = t->retired[--t->nretired];
			continue;
		}
		i++;
	}
	pthread_mutex_unlock(&t->retire_mu);
}

int tier_swap_strategies(struct tier *t, struct strategies *ss, char *err, size_t errlen)
{
	struct strategies *old;

	pthread_mutex_lock(&t->retire_mu);
	old = atomic_load(&t->strat);
	if (old && t->nretired == TIER_MAX_RETIRED) {
		pthread_mutex_unlock(&t->retire_mu);
		snprintf(err, errlen, "%u replaced strategy sets are still draining (loads "
			 "or write-behind writes in flight): try again later", TIER_MAX_RETIRED);
		return -EBUSY;
	}
	atomic_store(&t->strat, ss);
	if (old)
		t->retired[t->nretired++] = old;
	pthread_mutex_unlock(&t->retire_mu);
	maint_kick(t);
	return 0;
}

void tier_set_flush_hook(struct tier *t, const struct tier_hooks *h)
{
	if (h)
		t->hooks = *h;
	else
		memset(&t->hooks, 0, sizeof(t->hooks));
}

static struct stripe *stripe_of(struct tier *t, const char *key, size_t klen)
{
	/* FNV-1a: cheap and well spread for short keys */
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < klen; i++)
		h = (h ^ (uint8_t)key[i]) * 1099511628211ULL;
	return &t->stripes[h % TIER_STRIPES];
}

static void lock_all(struct tier *t)
{
	for (unsigned i = 0; i < TIER_STRIPES; i++)
		pthread_mutex_lock(&t->stripes[i].mu);
}

static void unlock_all(struct tier *t)
{
	for (unsigned i = TIER_STRIPES; i-- > 0;)
		pthread_mutex_unlock(&t->stripes[i].mu);
}

/* ---- local invalidation ---------------------------------------------------- */

static void inval_key(struct tier *t, const char *key, size_t klen)
{
	struct stripe *s = stripe_of(t, key, klen);

	pthread_mutex_lock(&s->mu);
	atomic_fetch_add(&s->seq, 1);
	l1_del(t->l1, key, klen);
	if (t->hooks.key)
		t->hooks.key(t->hooks.arg, key, klen);
	pthread_mutex_unlock(&s->mu);
	atomic_fetch_add(&t->key_inv, 1);
}

void tier_drop_key(struct tier *t, const char *key, size_t klen)
{
	inval_key(t, key, klen);
}

void tier_read_begin(struct tier *t, const char *key, size_t klen, uint64_t *seq,
		     uint64_t *epoch)
{
	*seq = atomic_load(&stripe_of(t, key, klen)->seq);
	*epoch = atomic_load(&t->epoch);
}

bool tier_fill(struct tier *t, const char *key, size_t klen, const char *val, size_t vlen,
	       uint64_t expire_at_ms, uint64_t seq, uint64_t epoch)
{
	struct stripe *st = stripe_of(t, key, klen);
	bool stored = false;

	if (t->l2 && atomic_load(&t->lost_at_ms)) {
		atomic_fetch_add(&t->fills_skipped, 1);
		return false;          /* no invalidations reach us now */
	}
	pthread_mutex_lock(&st->mu);
	if (atomic_load(&st->seq) == seq && atomic_load(&t->epoch) == epoch)
		stored = l1_set(t->l1, key, klen, val, vlen, expire_at_ms ? expire_at_ms : L1_NO_TTL,
				L1_PRIO_DEFAULT, 0, NULL, NULL) == 1;
	pthread_mutex_unlock(&st->mu);
	atomic_fetch_add(stored ? &t->l1_fills : &t->fills_skipped, 1);
	return stored;
}

/* Bump the epoch so that no read started before now stores its result;
 * a read that passed its check has finished storing once we hold every
 * stripe lock. */
static void epoch_bump(struct tier *t)
{
	lock_all(t);
	atomic_fetch_add(&t->epoch, 1);
	unlock_all(t);
}

static uint64_t inval_pattern_local(struct tier *t, const char *pat, size_t plen)
{
	uint64_t n;

	epoch_bump(t);
	if (plen == 1 && pat[0] == '*') {
		n = l1_flush(t->l1);
		if (t->hooks.flush)
			t->hooks.flush(t->hooks.arg);
	} else {
		n = l1_delete_pattern(t->l1, pat, plen);
		if (t->hooks.pattern)
			t->hooks.pattern(t->hooks.arg, pat, plen);
	}
	atomic_fetch_add(&t->pat_inv, 1);
	return n;
}

static void flush_all(struct tier *t, const char *why)
{
	uint64_t n;

	epoch_bump(t);
	n = l1_flush(t->l1);
	if (t->hooks.flush)
		t->hooks.flush(t->hooks.arg);
	atomic_fetch_add(&t->flushes, 1);
	log_info("tier: L1 flushed (%llu keys): %s", (unsigned long long)n, why);
}

/* ---- L2 events (l2 event thread) ------------------------------------------- */

static void on_invalidate(void *arg, const char *key, size_t klen)
{
	struct tier *t = arg;

	if (key)
		inval_key(t, key, klen);
	else
		flush_all(t, "Redis was flushed");
}

static void on_message(void *arg, const char *msg, size_t len)
{
	struct tier *t = arg;
	const char *tab = memchr(msg, '\t', len);
	size_t ilen;

	if (!tab)
		return;
	ilen = (size_t)(tab - msg);
	if (ilen == strlen(t->o.instance) && memcmp(msg, t->o.instance, ilen) == 0)
		return;                /* our own broadcast */
	atomic_fetch_add(&t->peer_in, 1);
	inval_pattern_local(t, tab + 1, len - ilen - 1);
	log_debug("tier: pattern invalidation from agent %.*s: %.*s", (int)ilen, msg,
		  (int)(len - ilen - 1), tab + 1);
}

static void on_coherence(void *arg, bool ok)
{
	struct tier *t = arg;

	if (!ok) {
		uint64_t zero = 0;

		/* reads in flight must not store what they fetch */
		epoch_bump(t);
		if (atomic_compare_exchange_strong(&t->lost_at_ms, &zero, hp_now_ms()))
			atomic_store(&t->flushed_for_loss, false);
		if (t->o.stale_if_error_ms == 0 && !atomic_exchange(&t->flushed_for_loss, true))
			flush_all(t, "invalidation connection lost (stale_if_error = 0)");
		return;
	}
	flush_all(t, "invalidation connection back: invalidations may have been missed");
	if (t->l2 && l2_coherent(t->l2))
		atomic_store(&t->lost_at_ms, 0);
}

/*
 * The maintenance thread's pause: 50 ms while it has work that needs
 * ticking (an L2 whose coherence it watches, strategies' write-behind
 * batches, replaced strategies draining), else until maint_kick. A daemon
 * without L2 and strategies (the default) then does not wake 20 times a
 * second for nothing: each wake-up may take a core from the services on a
 * small host.
 */
static void maint_sleep(struct tier *t, uint64_t lost)
{
	struct timespec ts;
	bool busy;

	pthread_mutex_lock(&t->retire_mu);
	busy = t->l2 || lost || atomic_load(&t->strat) || t->nretired;
	pthread_mutex_unlock(&t->retire_mu);
	pthread_mutex_lock(&t->maint_mu);
	if (!atomic_load(&t->stop)) {
		if (busy) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_nsec += 50000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&t->maint_cv, &t->maint_mu, &ts);
		} else {
			pthread_cond_wait(&t->maint_cv, &t->maint_mu);
		}
	}
	pthread_mutex_unlock(&t->maint_mu);
}

/* Something for the maintenance thread to tick (or stop): wake it. */
static void maint_kick(struct tier *t)
{
	pthread_mutex_lock(&t->maint_mu);
	pthread_cond_signal(&t->maint_cv);
	pthread_mutex_unlock(&t->maint_mu);
}

static void *maint_main(void *arg)
{
	struct tier *t = arg;

	while (!atomic_load(&t->stop)) {
		uint64_t lost = atomic_load(&t->lost_at_ms);

		maint_sleep(t, lost);
		if (atomic_load(&t->stop))
			break;
		if (atomic_load(&t->strat)) {
			strategies_tick(tier_strat_enter(t));   /* write-behind batches pushed back */
			tier_strat_leave();
		}
		reap_retired(t, false);
		if (!lost)
			continue;
		if (hp_now_ms() - lost >= t->o.stale_if_error_ms &&
		    !atomic_exchange(&t->flushed_for_loss, true))
			flush_all(t, "stale_if_error window over and Redis invalidations still lost");
		if (t->l2 && l2_coherent(t->l2)) {
			/* came back through a path that did not call us (first
			 * connect of a new master) */
			atomic_store(&t->lost_at_ms, 0);
		}
	}
	return NULL;
}

/* ---- reads ----------------------------------------------------------------- */

struct sink {
	struct buf *out;
	int err;
};

static void sink_bulk(const char *val, size_t len, uint64_t expire_at_ms, void *arg)
{
	struct sink *s = arg;

	(void)expire_at_ms;
	s->err = resp_add_bulk(s->out, val, len);
}

static int reply_down(struct tier *t, struct buf *out, const char *why)
{
	(void)t;
	return resp_add_errorf(out, "L2DOWN L2 cache unavailable and key not in L1: %s", why);
}

/* L1 part of a read: true and the value appended on a hit (*rc the
 * buffer's verdict). Strategies are the caller's business. */
static bool l1_reply(struct tier *t, const char *key, size_t klen, struct buf *out, int *rc)
{
	struct sink s = { out, 0 };

	if (!l1_get(t->l1, key, klen, sink_bulk, &s))
		return false;
	atomic_fetch_add_explicit(&t->l1_hits, 1, memory_order_relaxed);
	if (atomic_load_explicit(&t->lost_at_ms, memory_order_relaxed))
		atomic_fetch_add_explicit(&t->stale_served, 1, memory_order_relaxed);
	*rc = s.err;
	return true;
}

/*
 * A value read from L2 into L1, with L2's TTL capped by l1_ttl, unless
 * it was read on an untracked connection, coherence is lost, or the key
 * (or everything) was invalidated since the read began (seq0/ep0).
 * Called with the key's stripe lock held.
 */
static void fill_locked(struct tier *t, struct stripe *st, const char *key, size_t klen,
			const struct l2_value *v, uint64_t seq0, uint64_t ep0)
{
	bool stored = false;

	if (v->cacheable && v->pttl_ms != 0 && v->pttl_ms >= -1 && !atomic_load(&t->lost_at_ms)) {
		uint64_t ttl = t->o.l1_ttl_ms;

		if (v->pttl_ms > 0 && (uint64_t)v->pttl_ms < ttl)
			ttl = (uint64_t)v->pttl_ms;
		if (atomic_load(&st->seq) == seq0 && atomic_load(&t->epoch) == ep0)
			stored = l1_set(t->l1, key, klen, v->val, v->len, hp_now_ms() + ttl,
					L1_PRIO_DEFAULT, 0, NULL, NULL) == 1;
	}
	atomic_fetch_add(stored ? &t->l1_fills : &t->fills_skipped, 1);
}

static void sink_raw(const char *val, size_t len, uint64_t expire_at_ms, void *arg)
{
	struct sink *s = arg;

	(void)expire_at_ms;
	s->err = buf_append(s->out, val, len);
}

int tier_l1_peek(struct tier *t, const char *key, size_t klen, struct buf *out)
{
	struct sink s = { out, 0 };

	if (!l1_get(t->l1, key, klen, sink_raw, &s))
		return 0;
	atomic_fetch_add_explicit(&t->l1_hits, 1, memory_order_relaxed);
	return s.err ? s.err : 1;
}

/* The blocking read-through, for callers that may wait. */
int tier_get(struct tier *t, const char *key, size_t klen, struct buf *out)
{
	struct l2_value v;
	struct stripe *st;
	uint64_t seq0, ep0, t0, now;
	char err[TIER_ERR];
	int rc;

	if (atomic_load_explicit(&t->strat, memory_order_relaxed)) {
		struct strategies *ss = tier_strat_enter(t);

		rc = ss ? strategies_get(ss, key, klen, out, NULL) : 0;
		tier_strat_leave();
		if (rc != 0)
			return rc < 0 ? rc : 0;
	}
	if (l1_reply(t, key, klen, out, &rc))
		return rc;
	if (!t->l2)
		return resp_add_null(out);
	now = hp_now_ms();
	if (!breaker_allow(&t->br, now)) {
		atomic_fetch_add(&t->l2_rejected, 1);
		return reply_down(t, out, "circuit breaker open");
	}
	st = stripe_of(t, key, klen);
	seq0 = atomic_load(&st->seq);
	ep0 = atomic_load(&t->epoch);
	t0 = hp_now_us();
	rc = l2_get(t->l2, key, klen, &v, err, sizeof(err));
	breaker_record(&t->br, rc >= 0, hp_now_us() - t0, hp_now_ms());
	if (rc < 0) {
		atomic_fetch_add(&t->l2_errors, 1);
		return reply_down(t, out, err);
	}
	if (rc == 0) {
		atomic_fetch_add(&t->l2_misses, 1);
		return resp_add_null(out);
	}
	atomic_fetch_add(&t->l2_hits, 1);
	pthread_mutex_lock(&st->mu);
	fill_locked(t, st, key, klen, &v, seq0, ep0);
	pthread_mutex_unlock(&st->mu);
	rc = resp_add_bulk(out, v.val, v.len);
	l2_value_free(&v);
	return rc;
}

/* ---- asynchronous reads ------------------------------------------------------ */

/*
 * One L2 read in progress through the dispatcher, with everyone waiting
 * for it. It sits in its key's stripe list while it may be joined: a
 * later miss of the same key joins it only if neither the stripe's
 * sequence nor the epoch moved since it began (otherwise the value it
 * fetches may predate a write the later reader must see, so that reader
 * starts its own read, which replaces it in the list).
 */
struct tflight {
	struct tflight *next;
	struct tier *t;
	struct stripe *st;
	uint64_t seq, epoch, t0_us;
	unsigned flags;                  /* its first waiter's */
	struct tier_wait *waiters;
	size_t klen;
	char key[];
};

static void flight_unlink_locked(struct stripe *st, struct tflight *f)
{
	for (struct tflight **pp = &st->flights; *pp; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			return;
		}
}

static void flight_deliver(struct tier_wait *w, int rc, const struct l2_value *v,
			   const char *err)
{
	while (w) {
		struct tier_wait *next = w->next;

		w->pttl_ms = rc > 0 ? v->pttl_ms : -1;
		w->cacheable = rc > 0 && v->cacheable;
		w->fn(w, rc, rc > 0 ? v->val : NULL, rc > 0 ? v->len : 0, err);   /* may free w */
		w = next;
	}
}

/* The dispatcher's answer (its thread; or the caller's when the queue
 * refused the read). */
static void flight_done(void *arg, int rc, const struct l2_value *v, const char *err)
{
	struct tflight *f = arg;
	struct tier *t = f->t;
	struct tier_wait *w;

	breaker_record(&t->br, rc >= 0, hp_now_us() - f->t0_us, hp_now_ms());
	atomic_fetch_add(rc < 0 ? &t->l2_errors : rc == 0 ? &t->l2_misses : &t->l2_hits, 1);
	pthread_mutex_lock(&f->st->mu);
	flight_unlink_locked(f->st, f);
	if (rc > 0 && !(f->flags & TIER_WAIT_NOFILL))
		fill_locked(t, f->st, f->key, f->klen, v, f->seq, f->epoch);
	w = f->waiters;
	pthread_mutex_unlock(&f->st->mu);
	flight_deliver(w, rc, v, err);
	free(f);
}

int tier_read_async(struct tier *t, const char *key, size_t klen, struct tier_wait *w)
{
	struct stripe *st = stripe_of(t, key, klen);
	uint64_t seq, ep;
	struct tflight *f;
	int rc;

	w->next = NULL;
	pthread_mutex_lock(&st->mu);
	seq = atomic_load(&st->seq);
	ep = atomic_load(&t->epoch);
	for (f = st->flights; f; f = f->next)
		if (f->klen == klen && memcmp(f->key, key, klen) == 0 && f->seq == seq &&
		    f->epoch == ep && f->flags == w->flags) {
			w->next = f->waiters;
			f->waiters = w;
			pthread_mutex_unlock(&st->mu);
			atomic_fetch_add(&t->l2_coalesced, 1);
			return 0;
		}
	if (l2_async_full(t->l2)) {
		/* refused before the breaker hears of it: load is not failure */
		pthread_mutex_unlock(&st->mu);
		atomic_fetch_add(&t->l2_queue_full, 1);
		return -EAGAIN;
	}
	if (!breaker_allow(&t->br, hp_now_ms())) {
		pthread_mutex_unlock(&st->mu);
		atomic_fetch_add(&t->l2_rejected, 1);
		return -EHOSTDOWN;
	}
	f = malloc(sizeof(*f) + klen + 1);
	if (!f) {
		pthread_mutex_unlock(&st->mu);
		breaker_record(&t->br, true, 0, hp_now_ms());   /* not Redis' fault */
		return -ENOMEM;
	}
	memset(f, 0, sizeof(*f));
	f->t = t;
	f->st = st;
	f->seq = seq;
	f->epoch = ep;
	f->klen = klen;
	f->flags = w->flags;
	memcpy(f->key, key, klen);
	f->waiters = w;
	f->next = st->flights;
	st->flights = f;
	pthread_mutex_unlock(&st->mu);
	atomic_fetch_add(&t->l2_async_reads, 1);
	f->t0_us = hp_now_us();
	rc = l2_get_async(t->l2, key, klen, flight_done, f);
	if (rc != 0) {
		/* the queue filled since the check above (or the agent is
		 * stopping): a failure for the breaker, which let it through;
		 * whoever joined meanwhile hears it too */
		if (rc == -EAGAIN)
			atomic_fetch_add(&t->l2_queue_full, 1);
		flight_done(f, rc, NULL, rc == -EAGAIN ? "the L2 dispatcher queue is full "
			    "(redis.queue_max)" : "cannot queue the L2 read");
	}
	return 0;
}

static void store_done(void *arg, int rc, const struct l2_value *v, const char *err)
{
	struct tier *t = arg;

	(void)v;
	if (rc < 0) {
		atomic_fetch_add(&t->l2_store_errors, 1);
		log_debug("tier: an L2 store failed: %s", err);
	}
}

int tier_store_async(struct tier *t, const char *key, size_t klen, const char *val,
		     size_t vlen, uint64_t ttl_ms)
{
	int rc;

	if (!t->l2)
		return tier_set(t, key, klen, val, vlen, ttl_ms, NULL, 0);
	/* our copy goes first, as with tier_set: the next read fetches anew */
	inval_key(t, key, klen);
	rc = l2_set_async(t->l2, key, klen, val, vlen, ttl_ms, store_done, t);
	if (rc == 0)
		atomic_fetch_add(&t->l2_async_stores, 1);
	else
		atomic_fetch_add(&t->l2_store_errors, 1);
	return rc;
}

int tier_reply_park_refused(struct buf *out, const char *waiting_for)
{
	return resp_add_errorf(out, "BUSY too many clients waiting for %s "
			       "(resp.max_parked_clients): retry later", waiting_for);
}

/* The error a parked reader gets for rc (< 0); err NULL: said by rc, for a
 * read the dispatcher never took. */
static int reply_read_error(struct buf *out, int rc, const char *err)
{
	if (rc == -EAGAIN)
		return resp_add_errorf(out, "BUSY too many L2 reads waiting for Redis "
				       "(redis.queue_max): retry later");
	if (!err)
		err = rc == -EHOSTDOWN ? "circuit breaker open" : "out of memory";
	return resp_add_errorf(out, "L2DOWN L2 cache unavailable and key not in L1: %s", err);
}

/* The reply of a finished L2 read into b (reset first): the value, nil or
 * the error; if even that cannot be built, an out-of-memory error. */
static void read_reply(struct buf *b, int rc, const char *val, size_t vlen, const char *err)
{
	int arc;

	buf_reset(b);
	if (rc > 0)
		arc = resp_add_bulk(b, val, vlen);
	else if (rc == 0)
		arc = resp_add_null(b);
	else
		arc = reply_read_error(b, rc, err);
	if (arc) {
		buf_reset(b);
		(void)!resp_add_error(b, "ERR out of memory building the reply");
	}
}

/* A GET parked for its L2 read. */
struct get_wait {
	struct tier_wait w;
	const struct resp_defer *defer;
	void *ticket;
};

void tier_deliver_reply(const struct resp_defer *defer, void *ticket, struct buf *b, int arc)
{
	if (arc != 0) {
		buf_reset(b);
		(void)!resp_add_error(b, "ERR out of memory building the reply");
	}
	defer->done(ticket, b);
	buf_free(b);
}

static void get_wait_done(struct tier_wait *w, int rc, const char *val, size_t vlen,
			  const char *err)
{
	struct get_wait *g = (struct get_wait *)w;
	struct buf b;

	buf_init(&b, 0);
	read_reply(&b, rc, val, vlen, err);
	tier_deliver_reply(g->defer, g->ticket, &b, 0);
	free(g);
}

/* GET from the RESP front: L1 inline, an L1 miss parks the client. */
static int get_front(struct tier *t, const char *key, size_t klen, struct buf *out,
		     const struct resp_defer *defer)
{
	struct get_wait *g;
	int rc;

	if (l1_reply(t, key, klen, out, &rc))
		return rc;
	if (!defer)
		return tier_get(t, key, klen, out);
	g = calloc(1, sizeof(*g));
	if (!g)
		return resp_add_error(out, "ERR out of memory");
	g->defer = defer;
	g->ticket = defer->park(defer->arg);
	if (!g->ticket) {
		free(g);
		return tier_reply_park_refused(out, "L2");
	}
	atomic_fetch_add(&t->l2_parked, 1);
	g->w.fn = get_wait_done;
	rc = tier_read_async(t, key, klen, &g->w);
	if (rc != 0)
		get_wait_done(&g->w, rc, NULL, 0, NULL);
	return TIER_PARKED;
}

/*
 * MGET: every key answered like a GET into its own slot - inline (an L1
 * hit, a fresh strategy value), or later (an L2 read through the
 * dispatcher, a strategy's L2 read or load, which sees the slot as its
 * own resp_defer). The client is parked only when the first key has to
 * wait, so an MGET of hits is answered inline as before; otherwise the
 * last key back assembles the array from the slots in key order, and the
 * misses of one MGET leave in the same dispatcher turn (one pipeline).
 */
struct mslot {
	struct tier_wait w;              /* a plain key's L2 read */
	struct resp_defer d;             /* a strategy key's park/done */
	struct mget *m;
	struct buf reply;                /* this key's RESP reply */
};

struct mget {
	const struct resp_defer *defer;  /* the client's */
	void *ticket;                    /* set once a key had to wait */
	size_t n;
	_Atomic size_t left;             /* keys not answered, + 1 while starting */
	struct mslot slot[];
};

static void mget_free(struct mget *m)
{
	for (size_t i = 0; i < m->n; i++)
		buf_free(&m->slot[i].reply);
	free(m);
}

/* The whole array: "*n" and each slot's reply, in key order. */
static int mget_assemble(struct mget *m, struct buf *out)
{
	int rc = resp_add_array(out, (long long)m->n);

	for (size_t i = 0; i < m->n && rc == 0; i++)
		rc = buf_append(out, buf_head(&m->slot[i].reply), buf_used(&m->slot[i].reply));
	return rc;
}

static void mget_key_done(struct mget *m)
{
	struct buf b;

	if (atomic_fetch_sub(&m->left, 1) != 1)
		return;
	buf_init(&b, 0);
	tier_deliver_reply(m->defer, m->ticket, &b, mget_assemble(m, &b));
	mget_free(m);
}

/* Park the client for the first key that must wait (the worker's
 * thread): the slot itself is the key's ticket. NULL when refused. */
static void *mslot_park(void *arg)
{
	struct mslot *sl = arg;
	struct mget *m = sl->m;

	if (!m->ticket)
		m->ticket = m->defer->park(m->defer->arg);
	return m->ticket ? sl : NULL;
}

static void mslot_done(void *ticket, struct buf *reply)
{
	struct mslot *sl = ticket;

	buf_free(&sl->reply);
	sl->reply = *reply;              /* taken, as resp_defer.done says */
	buf_init(reply, reply->max);
	mget_key_done(sl->m);
}

static void mslot_read_done(struct tier_wait *w, int rc, const char *val, size_t vlen,
			    const char *err)
{
	struct mslot *sl = (struct mslot *)w;

	read_reply(&sl->reply, rc, val, vlen, err);
	mget_key_done(sl->m);
}

/* One key of an MGET: 0 answered into its slot, 1 it will be. */
static int mget_key(struct tier *t, struct strategies *ss, struct mslot *sl, const char *key,
		    size_t klen)
{
	int rc = 0;

	if (ss) {
		rc = strategies_get(ss, key, klen, &sl->reply, &sl->d);
		if (rc == TIER_PARKED)
			return 1;
		if (rc != 0)
			return 0;        /* answered (or the slot's buffer failed) */
	}
	if (l1_reply(t, key, klen, &sl->reply, &rc))
		return 0;
	if (!t->l2) {
		rc = resp_add_null(&sl->reply);
		return 0;
	}
	if (!mslot_park(sl)) {
		rc = tier_reply_park_refused(&sl->reply, "L2");
		return 0;
	}
	sl->w.fn = mslot_read_done;
	rc = tier_read_async(t, key, klen, &sl->w);
	if (rc == 0)
		return 1;
	read_reply(&sl->reply, rc, NULL, 0, NULL);
	return 0;
}

static int mget_front(struct tier *t, struct strategies *ss, const char *const *argv,
		      const size_t *len, size_t argc, struct buf *out,
		      const struct resp_defer *defer)
{
	size_t n = argc - 1;
	struct mget *m;
	int rc;

	if (!defer) {
		/* a caller that may wait: the blocking read-through per key */
		rc = resp_add_array(out, (long long)n);
		for (size_t i = 1; i < argc && rc == 0; i++)
			rc = tier_get(t, argv[i], len[i], out);
		return rc;
	}
	if (!ss) {
		/* all in L1 (the common case): straight into out, as a plain
		 * MGET without an L2; at the first miss, start over in slots */
		size_t before = buf_used(out), i;

		rc = resp_add_array(out, (long long)n);
		for (i = 1; i < argc && rc == 0; i++)
			if (!l1_reply(t, argv[i], len[i], out, &rc))
				break;
		if (i == argc || rc)
			return rc;
		out->len = before;
	}
	m = calloc(1, sizeof(*m) + n * sizeof(m->slot[0]));
	if (!m)
		return resp_add_error(out, "ERR out of memory");
	m->defer = defer;
	m->n = n;
	atomic_store(&m->left, n + 1);  /* + 1: not finished before the loop ends */
	for (size_t i = 0; i < n; i++) {
		struct mslot *sl = &m->slot[i];

		sl->m = m;
		buf_init(&sl->reply, 0);
		sl->d.park = mslot_park;
		sl->d.done = mslot_done;
		sl->d.arg = sl;
		if (mget_key(t, ss, sl, argv[i + 1], len[i + 1]) == 0)
			atomic_fetch_sub(&m->left, 1);
	}
	if (!m->ticket) {
		/* every key answered inline (nothing can be out without a ticket) */
		rc = mget_assemble(m, out);
		mget_free(m);
		return rc;
	}
	atomic_fetch_add(&t->l2_parked, 1);
	mget_key_done(m);               /* drop the + 1; maybe the last one */
	return TIER_PARKED;
}

/* ---- commands with keys: writes and reads of Redis ---------------------------- */

/* Drop the written keys argv[first..last by step] (last < 0 counts from
 * the end) from L1 and L0. */
static void inval_keys(struct tier *t, int argc, const char *const *argv, const size_t *lens,
		       int first, int last, int step)
{
	if (last < 0)
		last = argc + last;
	for (int i = first; i >= 0 && i <= last && i < argc; i += step > 0 ? step : 1)
		inval_key(t, argv[i], lens[i]);
}

/*
 * Redis answered a command with keys (r) or failed to (rc, err), t0 when
 * it was asked: the breaker hears of it and, for a write, whatever
 * happened in Redis (even a timeout, which may have applied), the local
 * copies of the keys go before anyone is answered. The reply goes to out
 * (NULL: only the verdict is returned). Shared by the blocking and the
 * parked commands.
 */
static int cmd_finish(struct tier *t, bool write, int rc, const struct redisReply *r,
		      uint64_t t0, int argc, const char *const *argv, const size_t *lens,
		      int first, int last, int step, struct buf *out, const char *err)
{
	breaker_record(&t->br, rc == 0, hp_now_us() - t0, hp_now_ms());
	if (write) {
		atomic_fetch_add(&t->writes, 1);
		inval_keys(t, argc, argv, lens, first, last, step);
		if (rc)
			atomic_fetch_add(&t->write_errors, 1);
	}
	if (rc)
		return out ? reply_down(t, out, err) : rc;
	if (out)
		return l2_reply_to_resp(r, out);
	return l2_reply_is_error(r) ? -EPROTO : 0;
}

/* The blocking path, for callers that may wait (tier_set, tier_del, the
 * front without a resp_defer). */
static int cmd_argv(struct tier *t, bool write, int argc, const char *const *argv,
		    const size_t *lens, int first, int last, int step, struct buf *out, char *err,
		    size_t errlen)
{
	struct redisReply *r = NULL;
	uint64_t t0;
	int rc;

	if (!breaker_allow(&t->br, hp_now_ms())) {
		atomic_fetch_add(&t->l2_rejected, 1);
		snprintf(err, errlen, "circuit breaker open");
		return out ? reply_down(t, out, err) : -EHOSTDOWN;
	}
	t0 = hp_now_us();
	rc = l2_command(t->l2, argc, argv, lens, first, &r, err, errlen);
	rc = cmd_finish(t, write, rc, r, t0, argc, argv, lens, first, last, step, out, err);
	l2_reply_free(r);
	return rc;
}

/*
 * A command with keys from the RESP front parked for its Redis reply:
 * every write the front forwards (SET..., DEL, UNLINK, GETDEL, INCR...,
 * EXPIRE..., PERSIST, MSET, SETNX, SETEX, PSETEX) and the reads of key
 * metadata (EXISTS, TTL, PTTL, STRLEN, TYPE). None of them blocks in
 * Redis (the front has no blocking commands), so they may share the
 * dispatcher's pipelined connection. Its completion (on the dispatcher's
 * thread) runs cmd_finish as the blocking path does, so a write's keys
 * leave L1 and L0 after Redis answered and before the client is answered.
 * A write's keys are copied: the client's buffer moves on.
 */
struct cmd_wait {
	struct tier *t;
	const struct resp_defer *defer;
	void *ticket;
	uint64_t t0;
	bool write;
	int nkeys;
	const char **keys;               /* in this allocation */
	size_t *klens;
};

static void cmd_wait_done(void *arg, int rc, const struct redisReply *r, const char *err)
{
	struct cmd_wait *w = arg;
	struct buf b;

	buf_init(&b, 0);
	tier_deliver_reply(w->defer, w->ticket, &b,
		      cmd_finish(w->t, w->write, rc, r, w->t0, w->nkeys, w->keys, w->klens, 0, -1,
				 1, &b, err));
	free(w);
}

static int cmd_front(struct tier *t, bool write, int argc, const char *const *argv,
		     const size_t *lens, int first, int last, int step, struct buf *out,
		     const struct resp_defer *defer)
{
	struct cmd_wait *w;
	size_t bytes = 0, n = 0;
	struct buf b;
	char *p;
	int rc, l = last < 0 ? argc + last : last;

	for (int i = first; write && i >= 0 && i <= l && i < argc; i += step > 0 ? step : 1) {
		bytes += lens[i];
		n++;
	}
	w = malloc(sizeof(*w) + n * (sizeof(char *) + sizeof(size_t)) + bytes);
	if (!w)
		return resp_add_error(out, "ERR out of memory");
	w->t = t;
	w->defer = defer;
	w->write = write;
	w->nkeys = (int)n;
	w->keys = (const char **)(w + 1);
	w->klens = (size_t *)(w->keys + n);
	p = (char *)(w->klens + n);
	n = 0;
	for (int i = first; write && i >= 0 && i <= l && i < argc; i += step > 0 ? step : 1) {
		memcpy(p, argv[i], lens[i]);
		w->keys[n] = p;
		w->klens[n++] = lens[i];
		p += lens[i];
	}
	w->t0 = hp_now_us();
	if (!breaker_allow(&t->br, hp_now_ms())) {
		free(w);
		atomic_fetch_add(&t->l2_rejected, 1);
		return reply_down(t, out, "circuit breaker open");
	}
	w->ticket = defer->park(defer->arg);
	rc = w->ticket ? l2_command_async(t->l2, argc, argv, lens, first, cmd_wait_done, w)
		       : -EBUSY;
	if (rc != 0) {
		/* nothing reached Redis: nothing to drop, and not Redis' fault */
		breaker_record(&t->br, true, 0, hp_now_ms());
		if (rc == -EAGAIN)
			atomic_fetch_add(&t->l2_queue_full, 1);
		if (!w->ticket) {
			free(w);
			return tier_reply_park_refused(out, "L2");
		}
		buf_init(&b, 0);
		tier_deliver_reply(defer, w->ticket, &b,
			      rc == -EAGAIN ? resp_add_errorf(&b, "BUSY too many L2 requests "
							      "waiting for Redis (redis.queue_max): "
							      "retry later")
					    : reply_down(t, &b, "cannot queue the L2 command"));
		free(w);
		return TIER_PARKED;
	}
	atomic_fetch_add(&t->l2_parked, 1);
	return TIER_PARKED;
}

int tier_set(struct tier *t, const char *key, size_t klen, const char *val, size_t vlen,
	     uint64_t ttl_ms, char *err, size_t errlen)
{
	char ttl[24];
	const char *argv[5] = { "SET", key, val, "PX", ttl };
	size_t lens[5] = { 3, klen, vlen, 2, 0 };

	if (!t->l2) {
		int rc;

		/* drop the old copies (L0's too) first: after the set, the
		 * value must stay in L1 */
		inval_key(t, key, klen);
		rc = l1_set(t->l1, key, klen, val, vlen, ttl_ms ? hp_now_ms() + ttl_ms : L1_NO_TTL,
			    L1_PRIO_DEFAULT, 0, NULL, NULL);
		return rc < 0 ? rc : 0;
	}
	lens[4] = (size_t)snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)ttl_ms);
	return cmd_argv(t, true, ttl_ms ? 5 : 3, argv, lens, 1, 1, 1, NULL, err, errlen);
}

int tier_del(struct tier *t, const char *key, size_t klen, char *err, size_t errlen)
{
	const char *argv[2] = { "UNLINK", key };
	size_t lens[2] = { 6, klen };

	if (!t->l2) {
		inval_key(t, key, klen);
		return 0;
	}
	return cmd_argv(t, true, 2, argv, lens, 1, 1, 1, NULL, err, errlen);
}

int tier_l2_read(struct tier *t, const char *key, size_t klen, struct l2_value *v, char *err,
		 size_t errlen)
{
	uint64_t t0;
	int rc;

	if (!t->l2)
		return 0;
	if (!breaker_allow(&t->br, hp_now_ms())) {
		atomic_fetch_add(&t->l2_rejected, 1);
		snprintf(err, errlen, "circuit breaker open");
		return -EHOSTDOWN;
	}
	t0 = hp_now_us();
	rc = l2_get(t->l2, key, klen, v, err, errlen);
	breaker_record(&t->br, rc >= 0, hp_now_us() - t0, hp_now_ms());
	atomic_fetch_add(rc < 0 ? &t->l2_errors : rc == 0 ? &t->l2_misses : &t->l2_hits, 1);
	return rc;
}

int tier_l2_write(struct tier *t, const char *key, size_t klen, const char *val, size_t vlen,
		  uint64_t ttl_ms, char *err, size_t errlen)
{
	return tier_set(t, key, klen, val, vlen, ttl_ms, err, errlen);
}

int tier_invalidate(struct tier *t, const char *pat, size_t plen, unsigned scope,
		    struct tier_inval_result *res, char *err, size_t errlen)
{
	int rc = 0;

	memset(res, 0, sizeof(*res));
	if (err && errlen)
		err[0] = '\0';
	/* 1. the source of truth, so that reads from now on fetch nothing old */
	if ((scope & TIER_SCOPE_L2) && t->l2) {
		rc = l2_delete_pattern(t->l2, pat, plen, &res->l2_deleted, err, errlen);
		res->l2_done = rc == 0;
	}
	/* 2. this agent's copies (and any read that fetched before step 1) */
	if (scope & (TIER_SCOPE_LOCAL | TIER_SCOPE_L2))
		res->l1_deleted = inval_pattern_local(t, pat, plen);
	/* 3. the other agents sharing this Redis */
	if ((scope & TIER_SCOPE_PEERS) && t->l2) {
		char *msg = malloc(strlen(t->o.instance) + 1 + plen);

		if (msg) {
			size_t il = strlen(t->o.instance);
			char perr[TIER_ERR];

			memcpy(msg, t->o.instance, il);
			msg[il] = '\t';
			memcpy(msg + il + 1, pat, plen);
			if (l2_publish(t->l2, msg, il + 1 + plen, perr, sizeof(perr)) == 0) {
				res->peers_told = true;
				atomic_fetch_add(&t->peer_out, 1);
			} else {
				log_warn("tier: could not tell other agents about '%.*s': %s",
					 (int)plen, pat, perr);
			}
			free(msg);
		}
	}
	return rc;
}

/* ---- RESP front ------------------------------------------------------------ */

/* The strategies' part of tier_exec: TIER_LOCAL when they leave the
 * command to the tiers. Called under the caller's hazard on ss. */
static int tier_exec_strat(struct tier *t, struct strategies *ss, const char *name,
			   const char *const *argv, const size_t *len, size_t argc, int first,
			   int last, int step, bool write, struct buf *out,
			   const struct resp_defer *defer)
{
	int rc;

	{
		if (strcmp(name, "get") == 0) {
			rc = strategies_get(ss, argv[1], len[1], out, defer);
			if (rc == TIER_PARKED)
				return rc;
			if (rc != 0)
				return rc < 0 ? rc : 0;
		} else if (strcmp(name, "mget") == 0) {
			return mget_front(t, ss, argv, len, argc, out, defer);
		} else {
			rc = strategies_exec(ss, name, argv, len, argc, first, last, step, write, out,
					     defer);
			if (rc != TIER_LOCAL)
				return rc;
		}
	}
	return TIER_LOCAL;
}

/* ---- work that may wait, for a parked client, on the task processor ---------- */

struct ptask {
	struct tier_park_job job;
	const struct resp_defer *defer;
	void *ticket;                    /* NULL once answered */
};

static int ptask_run(void *arg, char *err, size_t errlen)
{
	struct ptask *p = arg;
	struct buf b;

	(void)err;
	(void)errlen;
	buf_init(&b, 0);
	tier_deliver_reply(p->defer, p->ticket, &b, p->job.run(p->job.arg, &b));
	p->ticket = NULL;
	return 0;                        /* the client has the outcome: no retry */
}

static void ptask_free(void *arg)
{
	struct ptask *p = arg;
	struct buf b;

	if (p->ticket) {
		/* dropped without running: the agent is stopping */
		buf_init(&b, 0);
		tier_deliver_reply(p->defer, p->ticket, &b,
				   resp_add_errorf(&b, "ERR the agent is shutting down: nothing "
						   "was %s", p->job.undone));
	}
	p->job.release(p->job.arg);
	free(p);
}

int tier_park_task(struct tasks *tasks, const struct resp_defer *defer,
		   const struct tier_park_job *job, const char *label, size_t llen,
		   struct buf *out)
{
	struct task_spec spec = { .kind = job->kind, .run = ptask_run, .free = ptask_free,
				  .prio = TASK_PRIO_HIGH, .max_attempts = 1 };
	struct ptask *p = malloc(sizeof(*p));
	struct buf b;
	int rc;

	if (!p) {
		job->release(job->arg);
		return resp_add_error(out, "ERR out of memory");
	}
	p->job = *job;
	p->defer = defer;
	p->ticket = defer->park(defer->arg);
	if (!p->ticket) {
		free(p);
		job->release(job->arg);
		return tier_reply_park_refused(out, job->waiting_for);
	}
	snprintf(spec.label, sizeof(spec.label), "%.*s", (int)(llen > 80 ? 80 : llen), label);
	spec.arg = p;
	rc = tasks_submit(tasks, &spec);
	if (rc != 0) {
		/* not queued: still ours, nothing was done */
		buf_init(&b, 0);
		tier_deliver_reply(defer, p->ticket, &b,
				   rc == -EAGAIN ? resp_add_errorf(&b, "BUSY the task queue is full "
								   "(tasks.queue_max): nothing "
								   "was %s, retry later",
								   job->undone)
						 : resp_add_errorf(&b, "ERR cannot queue the task: "
								   "nothing was %s", job->undone));
		p->ticket = NULL;
		ptask_free(p);
	}
	return TIER_PARKED;
}

/*
 * A pattern invalidation or a flush from the RESP front. It makes blocking
 * round trips to every master (SCAN + UNLINK, then PUBLISH), so when the
 * client can park it runs on the task processor and the client is
 * answered from there once every tier dropped the keys; the worker goes
 * on serving its other clients. A LOCAL one (no Redis) runs inline.
 */
struct inval_job {
	struct tier *t;
	unsigned scope;
	bool flush;                      /* FLUSHALL/FLUSHDB: +OK */
	size_t plen;
	char pat[];
};

static int inval_reply(struct tier *t, struct buf *out, bool flush, int rc,
		       const struct tier_inval_result *res, const char *err)
{
	if (flush)
		return rc ? reply_down(t, out, err) : resp_add_simple(out, "OK");
	if (rc)
		return resp_add_errorf(out, "L2DOWN L1 invalidated (%llu keys) but L2 failed: %s",
				       (unsigned long long)res->l1_deleted, err);
	return resp_add_int(out, (long long)(res->l1_deleted + res->l2_deleted));
}

static int inval_run(struct tier *t, const char *pat, size_t plen, unsigned scope, bool flush,
		     struct buf *out)
{
	struct tier_inval_result res;
	char err[TIER_ERR];
	int rc = tier_invalidate(t, pat, plen, scope, &res, err, sizeof(err));

	return inval_reply(t, out, flush, rc, &res, err);
}

static int inval_job_run(void *arg, struct buf *out)
{
	struct inval_job *j = arg;

	return inval_run(j->t, j->pat, j->plen, j->scope, j->flush, out);
}

static int inval_front(struct tier *t, const char *pat, size_t plen, unsigned scope, bool flush,
		       struct buf *out, const struct resp_defer *defer)
{
	struct tier_park_job job = { .kind = "invalidate", .waiting_for = "L2",
				     .undone = "invalidated", .run = inval_job_run, .release = free };
	struct inval_job *j;
	int rc;

	if (!defer || !t->tasks || !t->l2 || !(scope & (TIER_SCOPE_L2 | TIER_SCOPE_PEERS)))
		return inval_run(t, pat, plen, scope, flush, out);
	j = malloc(sizeof(*j) + plen);
	if (!j)
		return resp_add_error(out, "ERR out of memory");
	j->t = t;
	j->scope = scope;
	j->flush = flush;
	j->plen = plen;
	memcpy(j->pat, pat, plen);
	job.arg = j;
	rc = tier_park_task(t->tasks, defer, &job, pat, plen, out);
	if (rc == TIER_PARKED)
		atomic_fetch_add(&t->l2_parked, 1);
	return rc;
}

int tier_exec(struct tier *t, const char *name, const char *const *argv, const size_t *len,
	      size_t argc, int first, int last, int step, bool write, struct buf *out,
	      const struct resp_defer *defer)
{
	char err[TIER_ERR];
	int rc;

	if (atomic_load_explicit(&t->strat, memory_order_relaxed)) {
		struct strategies *ss = tier_strat_enter(t);

		rc = ss ? tier_exec_strat(t, ss, name, argv, len, argc, first, last, step, write,
					  out, defer)
			: TIER_LOCAL;
		tier_strat_leave();
		if (rc != TIER_LOCAL)
			return rc;
	}
	if (!t->l2)
		return TIER_LOCAL;
	if (strcmp(name, "get") == 0)
		return get_front(t, argv[1], len[1], out, defer);
	if (strcmp(name, "mget") == 0)
		return mget_front(t, NULL, argv, len, argc, out, defer);
	if (strcmp(name, "flushall") == 0 || strcmp(name, "flushdb") == 0)
		return inval_front(t, "*", 1, TIER_SCOPE_ALL, true, out, defer);
	if (first <= 0)
		return TIER_LOCAL;
	/* a write goes through (its keys then leave L1/L0); a read of key
	 * metadata asks Redis, the source of truth */
	if (defer)
		return cmd_front(t, write, (int)argc, argv, len, first, last, step, out, defer);
	return cmd_argv(t, write, (int)argc, argv, len, first, last, step, out, err, sizeof(err));
}

int tier_resp_ext(struct resp_ctx *ctx, struct resp_client *cl, const struct resp_cmd *cmd,
		  struct buf *out)
{
	struct tier *t = tier_current();
	unsigned scope = TIER_SCOPE_ALL;
	int rc;

	(void)cl;
	if (!t || cmd->argc < 1 || !resp_arg_is(cmd->argv[0], cmd->argvlen[0], "hotpath.invalidate"))
		return 0;
	if (cmd->argc < 2 || cmd->argc > 3) {
		rc = resp_add_error(out, "ERR wrong number of arguments for 'hotpath.invalidate' "
					 "command (HOTPATH.INVALIDATE pattern [LOCAL|ALL])");
		(void)rc;
		return 1;
	}
	if (cmd->argc == 3) {
		if (resp_arg_is(cmd->argv[2], cmd->argvlen[2], "local")) {
			scope = TIER_SCOPE_LOCAL;
		} else if (!resp_arg_is(cmd->argv[2], cmd->argvlen[2], "all")) {
			rc = resp_add_error(out, "ERR syntax error: scope is LOCAL or ALL");
			(void)rc;
			return 1;
		}
	}
	rc = inval_front(t, cmd->argv[1], cmd->argvlen[1], scope, false, out, ctx->defer);
	/* A reply that did not fit shows up as the connection's output limit. */
	return rc == TIER_PARKED ? TIER_PARKED : 1;
}

/* ---- lifecycle ------------------------------------------------------------- */

struct tier *tier_new(const struct tier_options *o)
{
	struct tier *t;

	if (!o || !o->l1)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->o = *o;
	t->l1 = o->l1;
	t->l2 = o->l2;
	if (!t->o.l1_ttl_ms)
		t->o.l1_ttl_ms = 60000;
	if (!t->o.instance[0]) {
		char host[48] = "";

		gethostname(host, sizeof(host) - 1);
		snprintf(t->o.instance, sizeof(t->o.instance), "%.40s/%d/%llx", host, (int)getpid(),
			 (unsigned long long)(hp_now_us() & 0xffffff));
	}
	breaker_init(&t->br, &o->breaker);
	pthread_mutex_init(&t->retire_mu, NULL);
	pthread_mutex_init(&t->maint_mu, NULL);
	hp_cond_init_monotonic(&t->maint_cv);
	for (unsigned i = 0; i < TIER_STRIPES; i++)
		pthread_mutex_init(&t->stripes[i].mu, NULL);
	if (pthread_create(&t->maint, NULL, maint_main, t) != 0) {
		tier_free(t);
		return NULL;
	}
	t->maint_started = true;
	return t;
}

/* Stop the maintenance thread (it reads t->l2: before l2_free). */
static void maint_stop(struct tier *t)
{
	atomic_store(&t->stop, true);
	maint_kick(t);
	if (t->maint_started)
		pthread_join(t->maint, NULL);
	t->maint_started = false;
}

void tier_free(struct tier *t)
{
	if (!t)
		return;
	maint_stop(t);
	for (unsigned i = 0; i < TIER_STRIPES; i++)
		pthread_mutex_destroy(&t->stripes[i].mu);
	breaker_destroy(&t->br);
	pthread_mutex_destroy(&t->retire_mu);
	pthread_mutex_destroy(&t->maint_mu);
	pthread_cond_destroy(&t->maint_cv);
	free(t);
}

void tier_get_stats(struct tier *t, struct tier_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->l2_configured = t->l2 != NULL;
	out->coherent = t->l2 ? l2_coherent(t->l2) && !atomic_load(&t->lost_at_ms) : true;
	out->l1_hits = atomic_load(&t->l1_hits);
	out->l2_hits = atomic_load(&t->l2_hits);
	out->l2_misses = atomic_load(&t->l2_misses);
	out->l2_errors = atomic_load(&t->l2_errors);
	out->l2_rejected = atomic_load(&t->l2_rejected);
	out->l1_fills = atomic_load(&t->l1_fills);
	out->fills_skipped = atomic_load(&t->fills_skipped);
	out->writes = atomic_load(&t->writes);
	out->write_errors = atomic_load(&t->write_errors);
	out->key_invalidations = atomic_load(&t->key_inv);
	out->pattern_invalidations = atomic_load(&t->pat_inv);
	out->flushes = atomic_load(&t->flushes);
	out->peer_messages_in = atomic_load(&t->peer_in);
	out->peer_messages_out = atomic_load(&t->peer_out);
	out->stale_served = atomic_load(&t->stale_served);
	out->l2_async_reads = atomic_load(&t->l2_async_reads);
	out->l2_coalesced = atomic_load(&t->l2_coalesced);
	out->l2_parked = atomic_load(&t->l2_parked);
	out->l2_queue_full = atomic_load(&t->l2_queue_full);
	out->l2_async_stores = atomic_load(&t->l2_async_stores);
	out->l2_store_errors = atomic_load(&t->l2_store_errors);
	breaker_get_stats(&t->br, hp_now_ms(), &out->breaker);
}

/* ---- daemon glue ------------------------------------------------------------ */

int tier_start(struct hp_daemon *d)
{
	const struct hp_config *c = d->cfg;
	struct tasks_options to = {
		.workers = c->tasks_workers,
		.queue_max = c->tasks_queue_max,
		.dead_max = c->tasks_dead_max,
		.max_attempts = c->tasks_max_attempts,
		.backoff_base_ms = c->tasks_backoff_base_ms,
		.backoff_max_ms = c->tasks_backoff_max_ms,
	};
	struct tier_options o = {
		.l1 = d->l1,
		.l1_ttl_ms = c->redis_l1_ttl_ms,
		.stale_if_error_ms = c->redis_stale_if_error_ms,
		.breaker = {
			.failure_pct = c->redis_breaker_failure_pct,
			.slow_pct = c->redis_breaker_failure_pct,
			.slow_call_us = c->redis_slow_call_ms * 1000,
			.open_ms = c->redis_breaker_open_ms,
		},
	};
	char err[TIER_ERR];

	d->tasks = tasks_new(&to);
	if (!d->tasks) {
		log_error("tasks: cannot start the task processor");
		return -ENOMEM;
	}
	d->tier = tier_new(&o);
	if (!d->tier) {
		log_error("tier: out of memory");
		return -ENOMEM;
	}
	d->tier->tasks = d->tasks;
	if (c->redis_address[0] || c->redis_cluster[0]) {
		struct l2_options lo = {
			.pool_size = c->redis_pool_size,
			.queue_max = c->redis_queue_max,
			.connect_timeout_ms = c->redis_connect_timeout_ms,
			.command_timeout_ms = c->redis_command_timeout_ms,
			.tracking = c->redis_tracking,
			.ev = { on_invalidate, on_message, on_coherence, d->tier },
		};

		snprintf(lo.address, sizeof(lo.address), "%s", c->redis_address);
		snprintf(lo.cluster, sizeof(lo.cluster), "%s", c->redis_cluster);
		snprintf(lo.channel, sizeof(lo.channel), "%s", c->redis_channel);
		d->l2 = l2_new(&lo, err, sizeof(err));
		if (!d->l2) {
			log_error("l2: %s", err);
			return -EINVAL;
		}
		d->tier->l2 = d->l2;
		maint_kick(d->tier);    /* it has coherence to watch now */
		log_info("l2: Redis %s %s (pool %u per node, tracking %s, channel '%s')",
			 c->redis_cluster[0] ? "cluster" : "server",
			 c->redis_cluster[0] ? c->redis_cluster : c->redis_address,
			 c->redis_pool_size, c->redis_tracking ? "on" : "off", c->redis_channel);
	}
	if (c->n_strategies) {
		struct strategies *ss = strategies_new(c, d->tier, d->tasks, err, sizeof(err));

		if (!ss) {
			log_error("strategies: %s", err);
			return -EINVAL;
		}
		tier_set_strategies(d->tier, ss);
		log_info("strategies: %u key pattern%s, %u loader%s", c->n_strategies,
			 c->n_strategies == 1 ? "" : "s", c->n_loaders, c->n_loaders == 1 ? "" : "s");
	}
	tier_install(d->tier);
	warm_restore_start(d);          /* warm restart, in the background */
	return 0;
}

struct strategies *tier_strategies_hold(struct tier *t)
{
	struct strategies *ss;

	if (!t || !atomic_load(&t->strat))
		return NULL;
	ss = tier_strat_enter(t);
	if (ss)
		strategies_hold(ss);
	tier_strat_leave();
	return ss;
}

bool tier_strategies_changed(const struct hp_config *a, const struct hp_config *b)
{
	return a->n_strategies != b->n_strategies || a->n_loaders != b->n_loaders ||
	       memcmp(a->strategies, b->strategies, a->n_strategies * sizeof(a->strategies[0])) ||
	       memcmp(a->loaders, b->loaders, a->n_loaders * sizeof(a->loaders[0]));
}

int tier_reload_strategies(struct hp_daemon *d, const struct hp_config *nc, char *err,
			   size_t errlen)
{
	struct strategies *ss = NULL;
	int rc;

	if (!d->tier) {
		snprintf(err, errlen, "no tier running");
		return -EINVAL;
	}
	if (nc->n_strategies) {
		ss = strategies_new(nc, d->tier, d->tasks, err, errlen);
		if (!ss)
			return -EINVAL;
	}
	rc = tier_swap_strategies(d->tier, ss, err, errlen);
	if (rc) {
		strategies_free(ss);
		return rc;
	}
	log_info("strategies: now %u key pattern%s, %u loader%s (the previous set drains, "
		 "then is freed)", nc->n_strategies, nc->n_strategies == 1 ? "" : "s",
		 nc->n_loaders, nc->n_loaders == 1 ? "" : "s");
	return 0;
}

/* Shutdown: every strategy set (current and retired) leaves, once no
 * thread names it any more (bounded wait; a set still named is leaked
 * rather than freed under its user). */
static void strategies_stop(struct tier *t)
{
	struct strategies *cur;
	uint64_t end = hp_now_ms() + 2000;
	bool named;

	pthread_mutex_lock(&t->retire_mu);
	cur = atomic_exchange(&t->strat, NULL);
	if (cur && t->nretired < TIER_MAX_RETIRED)
		t->retired[t->nretired++] = cur;
	else if (cur)
		log_warn("strategies: too many sets draining at shutdown; one is not freed");
	pthread_mutex_unlock(&t->retire_mu);
	do {
		named = false;
		pthread_mutex_lock(&t->retire_mu);
		for (unsigned i = 0; i < t->nretired; i++)
			named |= hz_names(t->retired[i]);
		pthread_mutex_unlock(&t->retire_mu);
		if (!named)
			reap_retired(t, true);      /* nobody can name them again */
		else
			usleep(10000);
	} while (named && hp_now_ms() < end);
	if (named)
		log_warn("strategies: still in use at shutdown, not freed");
}

void tier_stop(struct hp_daemon *d)
{
	uint64_t wait_ms = d->cfg ? d->cfg->shutdown_timeout_ms : 2000;

	(void)warm_snapshot_save(d);    /* while L1 still holds the hot keys */
	tier_install(NULL);
	/* write-behind writes still queued get their chance to land first */
	if (d->tier) {
		strategies_tick(tier_strat_enter(d->tier));
		tier_strat_leave();
	}
	if (d->tasks && tasks_drain(d->tasks, wait_ms > 2000 ? wait_ms : 2000) != 0)
		log_warn("tasks: background tasks still queued at shutdown are dropped");
	tasks_free(d->tasks);
	d->tasks = NULL;
	if (d->tier)
		strategies_stop(d->tier);   /* after the tasks that use them */
	if (d->tier)
		maint_stop(d->tier);
	l2_free(d->l2);            /* joins the event thread and the dispatcher, which
				    * call into the tier (the dispatcher answers what
				    * it still holds) */
	d->l2 = NULL;
	tier_free(d->tier);
	d->tier = NULL;
}
