/*
 * strat_run.c - the running per key-pattern strategies behind the tiers
 * (include/hotpath/strategy.h, agent/cache/tier_int.h).
 *
 * Freshness without extra metadata: a value loaded or written through a
 * strategy is stored with expiry = now + ttl + stale, where stale is the
 * longer of its stale-while-revalidate and stale-if-error windows. A read
 * recovers "fresh until" as expiry - stale, so L1 (and L2, which gets the
 * same PX) carries everything the decision needs:
 *
 *   fresh                  serve; past refresh_ahead% of ttl also queue a
 *                          sheddable background reload
 *   stale, within SWR      serve the old value, queue one background reload
 *   stale, otherwise       reload now; if the loader fails and we are within
 *                          stale-if-error, serve the old value
 *   miss                   L2 (if any), then the loader; nothing = null
 *
 * Single-flight: loads in progress are kept in a small chained table keyed
 * by the key; a miss that finds its key there waits (bounded by the
 * loader's timeout) for that load's result instead of calling the loader.
 * Reloads queued in the background are deduplicated by a second table.
 * Every fill goes through tier_fill, so a value loaded while the key was
 * invalidated is served to its reader but never cached.
 *
 * Write-behind: each strategy keeps a bounded FIFO of pending writes (SET
 * value or DEL). A write that does not fit is refused, so the client
 * hears about it (-BUSY) and nothing is lost silently. At most one batch
 * per strategy is in the task processor at a time, which keeps writes to
 * one key in order across retries; it takes up to batch_max writes and
 * applies them in one transaction, is retried with the processor's
 * jittered exponential backoff, and after max_attempts becomes a dead
 * letter (the writes it held are counted as lost and named in the log).
 * While a batch is out, new writes accumulate into the next one.
 *
 * Write-through: the loader's write runs first; only when it succeeded is
 * the cache updated and the client answered. A write from the RESP front
 * (through or behind: the store in L2 may wait too) runs on the task
 * processor with its client parked, never on the worker thread.
 *
 * Asynchronous loads: a GET from the RESP front that needs its loader
 * (a miss, or a copy stale past its windows) does not wait on the worker
 * thread. It parks its client (resp_defer), joins or starts the key's
 * flight, and the load runs on the task processor at high priority; when
 * it finishes, every parked client of that flight gets its reply (the
 * value, nil, its stale copy under stale-if-error, or -LOADFAIL) through
 * its worker. The parked clients are capped by the front
 * (resp.max_parked_clients, then -BUSY); the loads by the task queue.
 * Warm jobs and background reloads, which already run on the task
 * processor, load synchronously and share the same flights.
 *
 * The L2 read before the loader does not hold the worker either: the
 * client parks and the read goes through the tiers' L2 dispatcher
 * (tier_read_async, the value stored with the strategy's lifetime, not
 * L2's capped one); a miss there (or an L2 that is unavailable) goes on
 * to the load from the dispatcher's thread with the same ticket.
 *
 * An MGET (tier.c) hands each of its keys a resp_defer of its own, so
 * its misses park and load the same way and its reply is assembled when
 * the last key is back.
 *
 * What not: no negative caching of "not found"; keys covered by a
 * writer accept only SET/DEL (INCR and friends would change the cache
 * behind the writer's back); write-behind writes still queued at shutdown
 * after the drain timeout are lost and logged.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "hotpath/config.h"
#include "hotpath/l1.h"
#include "hotpath/l2.h"
#include "hotpath/loader.h"
#include "hotpath/log.h"
#include "hotpath/resp.h"
#include "hotpath/strategy.h"
#include "hotpath/tasks.h"
#include "tier_int.h"

#define SF_BUCKETS 256
#define STRAT_ERR 256

struct flight {
	struct flight *next;
	char *key;
	size_t klen;
	bool done;
	int rc;                          /* loader_load's result */
	char *val;
	size_t vlen;
	char err[STRAT_ERR];
	unsigned waiters;                /* synchronous waiters (warm, refresh) */
	struct awaiter *aw;              /* parked clients waiting for it */
	pthread_cond_t cv;
};

/* A RESP client parked until a load finishes (resp_defer ticket). */
struct awaiter {
	struct awaiter *next;
	struct strat *s;
	const struct resp_defer *defer;
	void *ticket;
	char *stale;                     /* its stale copy for stale-if-error, or NULL */
	size_t stale_len;
};

struct wb_item {
	struct wb_item *next;
	struct loader_write w;           /* key/val point into the item's own copy */
	char *key, *val;
};

struct strat;

struct wb_batch {
	struct strat *s;
	struct wb_item *items;
	size_t n;
	bool written;
};

struct strat {
	struct hp_strategy_conf c;
	struct strategies *owner;
	struct loader *ld;
	uint64_t stale_ms;               /* max(swr, sie) */
	pthread_mutex_t wb_mu;
	struct wb_item *head, *tail;
	uint64_t queued, inflight;
	bool batch_out;                  /* a batch is in the task processor */
	_Atomic uint64_t fresh_hits, stale_served, loads, load_errors, not_found, coalesced;
	_Atomic uint64_t refreshes_queued, refreshes_shed, sie_served, writes, write_errors;
	_Atomic uint64_t wb_queued, wb_rejected, wb_written, wb_batches, wb_failed, wb_dead;
	_Atomic uint64_t parked, park_refused;   /* misses answered asynchronously / refused */
};

struct strategies {
	struct tier *t;
	struct tasks *tasks;
	unsigned n;
	struct strat s[HP_MAX_STRATEGIES];
	const char *pats[HP_MAX_STRATEGIES];
	unsigned nloaders;
	struct loader *loaders[HP_MAX_LOADERS];
	_Atomic long holds;              /* work that outlives a call (tier.c) */
	pthread_mutex_t sf_mu;
	struct flight *flights[SF_BUCKETS];
	struct flight *refreshing[SF_BUCKETS];   /* queued reloads (done unused) */
};

/* ---- holds: a retired set is freed once none is left (tier.c) ---------------- */

static void hold(struct strategies *ss)
{
	atomic_fetch_add(&ss->holds, 1);
}

void strategies_hold(struct strategies *ss)
{
	hold(ss);
}

void strategies_release(struct strategies *ss)
{
	if (ss)
		atomic_fetch_sub(&ss->holds, 1);
}

bool strategies_idle(struct strategies *ss)
{
	return atomic_load(&ss->holds) == 0 && strategies_pending(ss) == 0;
}

/* ---- lookup ------------------------------------------------------------------ */

static struct strat *match(struct strategies *ss, const char *key, size_t klen,
			   struct strat_capture *caps, int *ncap)
{
	int i = strat_select(ss->pats, ss->n, key, klen, caps, ncap);

	return i < 0 ? NULL : &ss->s[i];
}

static unsigned bucket(const char *key, size_t klen)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < klen; i++)
		h = (h ^ (uint8_t)key[i]) * 1099511628211ULL;
	return (unsigned)(h % SF_BUCKETS);
}

static struct flight **find(struct flight **tab, const char *key, size_t klen)
{
	struct flight **pp = &tab[bucket(key, klen)];

	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->klen == klen && memcmp((*pp)->key, key, klen) == 0)
			return pp;
	return pp;
}

static void flight_free(struct flight *f)
{
	pthread_cond_destroy(&f->cv);
	free(f->key);
	free(f->val);
	free(f);
}

static struct flight *flight_new(const char *key, size_t klen)
{
	struct flight *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->key = malloc(klen ? klen : 1);
	if (!f->key) {
		free(f);
		return NULL;
	}
	memcpy(f->key, key, klen);
	f->klen = klen;
	pthread_cond_init(&f->cv, NULL);
	return f;
}

/* ---- loading -------------------------------------------------------------------- */

/* Store a loaded value in the tiers, unless invalidated since (seq, ep). */
static void store_loaded(struct strat *s, const char *key, size_t klen, const char *val,
			 size_t vlen, uint64_t seq, uint64_t ep)
{
	struct tier *t = s->owner->t;
	uint64_t life = s->c.ttl_ms + s->stale_ms;

	if (tier_l2(t)) {
		char err[STRAT_ERR];

		/* best effort: other agents share it; our copy follows anyway */
		if (tier_l2_write(t, key, klen, val, vlen, life, err, sizeof(err)) != 0)
			log_debug("strategy %s: could not store %.*s in L2: %s", s->c.name,
				  (int)(klen > 64 ? 64 : klen), key, err);
		/* the L2 write dropped our copy and moved the stripe: read anew */
		tier_read_begin(t, key, klen, &seq, &ep);
	}
	(void)tier_fill(t, key, klen, val, vlen, hp_now_ms() + life, seq, ep);
}

struct peek {
	char *val;
	size_t len;
	uint64_t exp;
	bool hit, oom;
};

static int reply_load_error(struct strat *s, struct buf *out, int rc, const char *err);

/* Answer one parked client with a load's result, then free the awaiter. */
static void awaiter_deliver(struct awaiter *a, int rc, const char *val, size_t vlen,
			    const char *err)
{
	struct buf b;
	int arc;

	buf_init(&b, 0);
	if (rc > 0) {
		arc = resp_add_bulk(&b, val, vlen);
	} else if (rc == 0) {
		arc = resp_add_null(&b);
	} else if (a->stale && a->s->c.sie_ms) {
		atomic_fetch_add(&a->s->sie_served, 1);
		arc = resp_add_bulk(&b, a->stale, a->stale_len);
	} else {
		arc = reply_load_error(a->s, &b, rc, err);
	}
	tier_deliver_reply(a->defer, a->ticket, &b, arc);
	free(a->stale);
	free(a);
}

/*
 * A load finished (rc as loader_load; val/err its result): take the
 * flight out of the table, hand the result to synchronous waiters, answer
 * the parked clients, and free the flight unless a waiter still holds it.
 */
static void flight_finish(struct strategies *ss, struct flight *f, int rc, const char *val,
			  size_t vlen, const char *err)
{
	struct flight **pp;
	struct awaiter *aw;
	bool free_now;

	pthread_mutex_lock(&ss->sf_mu);
	pp = find(ss->flights, f->key, f->klen);
	if (*pp == f)
		*pp = f->next;
	f->rc = rc;
	if (rc > 0 && f->waiters) {
		f->val = malloc(vlen + 1);
		if (f->val) {
			memcpy(f->val, val, vlen);
			f->vlen = vlen;
		} else {
			f->rc = -ENOMEM;
			snprintf(f->err, sizeof(f->err), "out of memory");
		}
	} else if (rc < 0) {
		snprintf(f->err, sizeof(f->err), "%s", err);
	}
	f->done = true;
	pthread_cond_broadcast(&f->cv);
	aw = f->aw;
	f->aw = NULL;
	free_now = f->waiters == 0;
	pthread_mutex_unlock(&ss->sf_mu);
	/* out of the table and without waiters: nobody else can reach it */
	if (free_now)
		flight_free(f);
	while (aw) {
		struct awaiter *nx = aw->next;

		awaiter_deliver(aw, rc, val, vlen, err);
		aw = nx;
	}
}

static void count_result(struct strat *s, int rc)
{
	if (rc == 0)
		atomic_fetch_add(&s->not_found, 1);
	else if (rc < 0)
		atomic_fetch_add(&s->load_errors, 1);
}

/*
 * Load through the strategy's loader with single-flight, on the calling
 * thread (warm jobs, background reloads). Returns like loader_load (1
 * found with *val malloc'd, 0 not found, -errno).
 */
static int load_key(struct strat *s, const char *key, size_t klen,
		    const struct strat_capture *caps, int ncap, char **val, size_t *vlen,
		    char *err, size_t errlen)
{
	struct strategies *ss = s->owner;
	struct flight **pp, *f;
	uint64_t seq, ep;
	int rc;

	*val = NULL;
	*vlen = 0;
	if (!s->c.single_flight) {
		tier_read_begin(ss->t, key, klen, &seq, &ep);
		atomic_fetch_add(&s->loads, 1);
		rc = loader_load(s->ld, key, klen, caps, ncap, val, vlen, err, errlen);
		if (rc > 0)
			store_loaded(s, key, klen, *val, *vlen, seq, ep);
		count_result(s, rc);
		return rc;
	}
	pthread_mutex_lock(&ss->sf_mu);
	pp = find(ss->flights, key, klen);
	if (*pp) {
		struct timespec ts;

		f = *pp;
		f->waiters++;
		atomic_fetch_add(&s->coalesced, 1);
		clock_gettime(CLOCK_REALTIME, &ts);
		/* the loader bounds its own call; this only guards against a bug
		 * (or a load still queued behind a busy task processor) */
		ts.tv_sec += (time_t)(2 * loader_timeout_ms(s->ld) / 1000 + 1);
		while (!f->done)
			if (pthread_cond_timedwait(&f->cv, &ss->sf_mu, &ts) != 0)
				break;
		if (f->done) {
			rc = f->rc;
			if (rc > 0) {
				*val = malloc(f->vlen + 1);
				if (*val) {
					memcpy(*val, f->val, f->vlen);
					*vlen = f->vlen;
				} else {
					rc = -ENOMEM;
				}
			} else if (rc < 0) {
				snprintf(err, errlen, "%s", f->err);
			}
		} else {
			snprintf(err, errlen, "timed out waiting for another load of the key");
			rc = -ETIMEDOUT;
		}
		if (--f->waiters == 0 && f->done)
			flight_free(f);
		pthread_mutex_unlock(&ss->sf_mu);
		return rc;
	}
	f = flight_new(key, klen);
	if (!f) {
		pthread_mutex_unlock(&ss->sf_mu);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	*pp = f;
	pthread_mutex_unlock(&ss->sf_mu);

	tier_read_begin(ss->t, key, klen, &seq, &ep);
	atomic_fetch_add(&s->loads, 1);
	rc = loader_load(s->ld, key, klen, caps, ncap, val, vlen, err, errlen);
	if (rc > 0)
		store_loaded(s, key, klen, *val, *vlen, seq, ep);
	count_result(s, rc);
	flight_finish(ss, f, rc, *val, *vlen, err);
	return rc;
}

/* ---- asynchronous loads for parked clients ------------------------------------------ */

struct aload {
	struct strat *s;
	struct flight *f;                /* NULL once finished */
	bool had_stale;                  /* the reader saw a stale copy */
};

static int aload_run(void *arg, char *err, size_t errlen)
{
	struct aload *a = arg;
	struct strat *s = a->s;
	struct flight *f = a->f;
	struct strat_capture caps[STRAT_MAX_CAPTURES];
	char *val = NULL;
	size_t vlen = 0;
	uint64_t seq, ep;
	int ncap, rc;

	ncap = strat_capture(s->c.pattern, strlen(s->c.pattern), f->key, f->klen, caps);
	if (ncap < 0) {
		snprintf(err, errlen, "key no longer matches the strategy's pattern");
		rc = -EINVAL;
	} else {
		tier_read_begin(s->owner->t, f->key, f->klen, &seq, &ep);
		atomic_fetch_add(&s->loads, 1);
		rc = loader_load(s->ld, f->key, f->klen, caps, ncap, &val, &vlen, err, errlen);
		if (rc > 0)
			store_loaded(s, f->key, f->klen, val, vlen, seq, ep);
		else if (rc == 0 && a->had_stale)
			tier_drop_key(s->owner->t, f->key, f->klen);   /* gone at the origin */
		count_result(s, rc);
	}
	a->f = NULL;
	flight_finish(s->owner, f, rc, val, vlen, err);
	free(val);
	/* a failed load was answered to its clients; not a task failure */
	return 0;
}

static void aload_free(void *arg)
{
	struct aload *a = arg;
	struct strategies *ss = a->s->owner;

	/* dropped without running (the task processor is stopping) */
	if (a->f)
		flight_finish(ss, a->f, -ESHUTDOWN, NULL, 0,
			      "the load was dropped: the agent is shutting down");
	free(a);
	strategies_release(ss);
}

/*
 * Park the client and load `key` on the task processor; the reply goes to
 * defer->done when the load (or the one it joins) finishes. Takes p->val
 * (the stale copy, if any). Returns TIER_PARKED, or 0/-ENOBUFS after
 * appending an error when the client may not park.
 */
static void load_parked(struct strat *s, const char *key, size_t klen, struct peek *p,
			const struct resp_defer *defer, void *ticket);

static int load_async(struct strat *s, const char *key, size_t klen, struct peek *p,
		      const struct resp_defer *defer, struct buf *out)
{
	void *ticket = defer->park(defer->arg);

	if (!ticket) {
		free(p->val);
		atomic_fetch_add(&s->park_refused, 1);
		return tier_reply_park_refused(out, "loads");
	}
	atomic_fetch_add(&s->parked, 1);
	load_parked(s, key, klen, p, defer, ticket);
	return TIER_PARKED;
}

/* A GET of a key its strategy does not hold, parked while L2 is read
 * (then, if L2 has nothing, while its loader runs). */
struct sread {
	struct tier_wait w;
	struct strat *s;
	const struct resp_defer *defer;
	void *ticket;
	uint64_t seq, ep;                /* tier_read_begin before the read */
	size_t klen;
	char key[];
};

/* The L2 answer (the dispatcher's thread, or the worker's when the read
 * was not queued): the value, or on to the loader. */
static void sread_done(struct tier_wait *w, int rc, const char *val, size_t vlen,
		       const char *err)
{
	struct sread *r = (struct sread *)w;
	struct strat *s = r->s;
	struct strategies *ss = s->owner;
	struct buf b;
	int arc;

	(void)err;
	if (rc <= 0 && s->ld) {
		struct peek p = { 0 };

		/* not there, or L2 unavailable: the origin decides, as on
		 * the worker before */
		load_parked(s, r->key, r->klen, &p, r->defer, r->ticket);
	} else {
		if (rc > 0 && w->cacheable) {
			uint64_t life = w->pttl_ms > 0 ? (uint64_t)w->pttl_ms : 0;

			(void)tier_fill(ss->t, r->key, r->klen, val, vlen,
					life ? hp_now_ms() + life : 0, r->seq, r->ep);
		}
		buf_init(&b, 0);
		arc = rc > 0 ? resp_add_bulk(&b, val, vlen) : resp_add_null(&b);
		tier_deliver_reply(r->defer, r->ticket, &b, arc);
	}
	free(r);
	strategies_release(ss);
}

/* strat_get's L1 miss with an L2: park, read L2 through the dispatcher. */
static int l2_read_async(struct strat *s, const char *key, size_t klen,
			 const struct resp_defer *defer, struct buf *out)
{
	struct tier *t = s->owner->t;
	struct sread *r = calloc(1, sizeof(*r) + klen + 1);
	int rc;

	if (!r)
		return resp_add_error(out, "ERR out of memory");
	r->ticket = defer->park(defer->arg);
	if (!r->ticket) {
		free(r);
		atomic_fetch_add(&s->park_refused, 1);
		return tier_reply_park_refused(out, "loads");
	}
	atomic_fetch_add(&s->parked, 1);
	r->s = s;
	r->defer = defer;
	r->klen = klen;
	memcpy(r->key, key, klen);
	r->w.fn = sread_done;
	r->w.flags = TIER_WAIT_NOFILL;  /* stored with the strategy's lifetime */
	hold(s->owner);                 /* released by sread_done */
	tier_read_begin(t, key, klen, &r->seq, &r->ep);
	rc = tier_read_async(t, key, klen, &r->w);
	if (rc != 0)
		sread_done(&r->w, rc, NULL, 0, "L2 unavailable");
	return TIER_PARKED;
}

/* The client behind `ticket` is parked already: join or start the key's
 * load; the reply goes to defer->done. Takes p->val. Any thread. */
static void load_parked(struct strat *s, const char *key, size_t klen, struct peek *p,
			const struct resp_defer *defer, void *ticket)
{
	struct strategies *ss = s->owner;
	struct task_spec spec = { .kind = "load", .run = aload_run, .free = aload_free,
				  .prio = TASK_PRIO_HIGH, .max_attempts = 1 };
	struct awaiter *aw = calloc(1, sizeof(*aw));
	struct aload *a = calloc(1, sizeof(*a));
	struct flight **pp = NULL, *f = NULL;
	int rc;

	if (!aw || !a) {
		struct buf b;

		free(aw);
		free(a);
		free(p->val);
		buf_init(&b, 0);
		tier_deliver_reply(defer, ticket, &b,
				   resp_add_error(&b, "ERR out of memory starting a load"));
		return;
	}
	aw->ticket = ticket;
	aw->s = s;
	aw->defer = defer;
	if (p->hit) {
		aw->stale = p->val;
		aw->stale_len = p->len;
	} else {
		free(p->val);
	}
	p->val = NULL;
	pthread_mutex_lock(&ss->sf_mu);
	if (s->c.single_flight) {
		pp = find(ss->flights, key, klen);
		if (*pp) {
			/* join the load in progress */
			aw->next = (*pp)->aw;
			(*pp)->aw = aw;
			atomic_fetch_add(&s->coalesced, 1);
			pthread_mutex_unlock(&ss->sf_mu);
			free(a);
			return;
		}
	}
	f = flight_new(key, klen);
	if (!f) {
		pthread_mutex_unlock(&ss->sf_mu);
		free(a);
		awaiter_deliver(aw, -ENOMEM, NULL, 0, "out of memory");
		return;
	}
	f->aw = aw;
	if (pp)
		*pp = f;                /* later misses of the key join it */
	pthread_mutex_unlock(&ss->sf_mu);
	a->s = s;
	a->f = f;
	a->had_stale = aw->stale != NULL;
	spec.arg = a;
	snprintf(spec.label, sizeof(spec.label), "%.*s", (int)(klen > 90 ? 90 : klen), key);
	hold(ss);
	rc = tasks_submit(ss->tasks, &spec);
	if (rc != 0) {
		strategies_release(ss);
		/* every client that joined meanwhile gets the refusal too */
		flight_finish(ss, f, rc == -EAGAIN ? -EAGAIN : rc, NULL, 0,
			      rc == -EAGAIN ? "the task queue is full ([tasks] queue_max)"
					    : "cannot queue the load");
		free(a);
	}
}

/* ---- background reloads ------------------------------------------------------------ */

struct refresh {
	struct strat *s;
	char *key;
	size_t klen;
};

static void refresh_done(struct strategies *ss, const char *key, size_t klen)
{
	struct flight **pp, *f;

	pthread_mutex_lock(&ss->sf_mu);
	pp = find(ss->refreshing, key, klen);
	f = *pp;
	if (f)
		*pp = f->next;
	pthread_mutex_unlock(&ss->sf_mu);
	if (f)
		flight_free(f);
}

static void refresh_free(void *arg)
{
	struct refresh *r = arg;
	struct strategies *ss = r->s->owner;

	refresh_done(ss, r->key, r->klen);
	free(r->key);
	free(r);
	strategies_release(ss);
}

static int refresh_run(void *arg, char *err, size_t errlen)
{
	struct refresh *r = arg;
	struct strat_capture caps[STRAT_MAX_CAPTURES];
	char *val;
	size_t vlen;
	int ncap, rc;

	ncap = strat_capture(r->s->c.pattern, strlen(r->s->c.pattern), r->key, r->klen, caps);
	if (ncap < 0)
		return -ECANCELED;
	rc = load_key(r->s, r->key, r->klen, caps, ncap, &val, &vlen, err, errlen);
	free(val);
	if (rc == 0)
		tier_drop_key(r->s->owner->t, r->key, r->klen);   /* gone at the origin */
	/* a failed reload is not retried: the next read decides again */
	return rc < 0 ? -ECANCELED : 0;
}

static void refresh_submit(struct strat *s, const char *key, size_t klen)
{
	struct strategies *ss = s->owner;
	struct task_spec spec = { .kind = "refresh", .run = refresh_run, .free = refresh_free,
				  .prio = TASK_PRIO_LOW, .max_attempts = 1, .sheddable = true };
	struct flight **pp, *mark;
	struct refresh *r;

	if (!ss->tasks)
		return;
	pthread_mutex_lock(&ss->sf_mu);
	pp = find(ss->refreshing, key, klen);
	if (*pp || *find(ss->flights, key, klen)) {
		pthread_mutex_unlock(&ss->sf_mu);
		return;                 /* already being reloaded */
	}
	mark = flight_new(key, klen);
	if (mark)
		*pp = mark;
	pthread_mutex_unlock(&ss->sf_mu);
	if (!mark)
		return;
	r = calloc(1, sizeof(*r));
	if (r)
		r->key = malloc(klen ? klen : 1);
	if (!r || !r->key) {
		free(r);
		refresh_done(ss, key, klen);
		return;
	}
	memcpy(r->key, key, klen);
	r->klen = klen;
	r->s = s;
	spec.arg = r;
	snprintf(spec.label, sizeof(spec.label), "%.*s", (int)(klen > 90 ? 90 : klen), key);
	hold(ss);               /* refresh_free releases it, whatever happens */
	if (tasks_submit(ss->tasks, &spec) != 0) {
		atomic_fetch_add(&s->refreshes_shed, 1);
		refresh_free(r);
		return;
	}
	atomic_fetch_add(&s->refreshes_queued, 1);
}

/* ---- reads ----------------------------------------------------------------------------- */

static void peek_copy(const char *val, size_t len, uint64_t expire_at_ms, void *arg)
{
	struct peek *p = arg;

	p->hit = true;
	p->exp = expire_at_ms;
	p->val = malloc(len + 1);
	if (!p->val) {
		p->oom = true;
		return;
	}
	memcpy(p->val, val, len);
	p->len = len;
}

static int reply_load_error(struct strat *s, struct buf *out, int rc, const char *err)
{
	return resp_add_errorf(out, "LOADFAIL strategy %s: loader %s %s: %s", s->c.name,
			       loader_name(s->ld), rc == -EHOSTDOWN ? "unavailable" : "failed", err);
}

static int strat_get(struct strat *s, const char *key, size_t klen,
		     const struct strat_capture *caps, int ncap, struct buf *out,
		     const struct resp_defer *defer)
{
	struct tier *t = s->owner->t;
	struct peek p = { 0 };
	char err[STRAT_ERR] = "", *val = NULL;
	size_t vlen = 0;
	uint64_t now = hp_now_ms();
	int rc;

	if (l1_get(tier_l1(t), key, klen, peek_copy, &p) && !p.oom) {
		uint64_t fresh_until = p.exp ? p.exp - (p.exp > s->stale_ms ? s->stale_ms : p.exp) : 0;

		if (!p.exp || now < fresh_until) {
			atomic_fetch_add_explicit(&s->fresh_hits, 1, memory_order_relaxed);
			if (s->ld && s->c.refresh_ahead_pct && p.exp &&
			    now + s->c.ttl_ms * (100 - s->c.refresh_ahead_pct) / 100 >= fresh_until)
				refresh_submit(s, key, klen);
			rc = resp_add_bulk(out, p.val, p.len);
			free(p.val);
			return rc;
		}
		/* stale */
		if (s->ld && s->c.swr_ms && now < fresh_until + s->c.swr_ms) {
			atomic_fetch_add(&s->stale_served, 1);
			refresh_submit(s, key, klen);
			rc = resp_add_bulk(out, p.val, p.len);
			free(p.val);
			return rc;
		}
	} else if (!p.hit || p.oom) {
		free(p.val);
		p.val = NULL;
		p.hit = false;
		/* miss: the shared tier first, without holding the worker */
		if (tier_l2(t) && defer && s->owner->tasks)
			return l2_read_async(s, key, klen, defer, out);
		if (tier_l2(t)) {
			struct l2_value v;
			uint64_t seq, ep;

			tier_read_begin(t, key, klen, &seq, &ep);
			rc = tier_l2_read(t, key, klen, &v, err, sizeof(err));
			if (rc > 0) {
				uint64_t life = v.pttl_ms > 0 ? (uint64_t)v.pttl_ms : 0;

				if (v.cacheable)
					(void)tier_fill(t, key, klen, v.val, v.len,
							life ? hp_now_ms() + life : 0, seq, ep);
				rc = resp_add_bulk(out, v.val, v.len);
				l2_value_free(&v);
				return rc;
			}
		}
	}
	if (!s->ld) {
		free(p.val);
		return resp_add_null(out);      /* cache-aside: the application fills */
	}
	if (defer && s->owner->tasks)
		return load_async(s, key, klen, &p, defer, out);
	rc = load_key(s, key, klen, caps, ncap, &val, &vlen, err, sizeof(err));
	if (rc > 0) {
		free(p.val);
		rc = resp_add_bulk(out, val, vlen);
		free(val);
		return rc;
	}
	if (rc == 0) {
		if (p.hit)
			tier_drop_key(t, key, klen);
		free(p.val);
		return resp_add_null(out);
	}
	if (p.hit && s->c.sie_ms) {
		/* the stale copy is still in L1 only while within the windows */
		atomic_fetch_add(&s->sie_served, 1);
		rc = resp_add_bulk(out, p.val, p.len);
		free(p.val);
		return rc;
	}
	free(p.val);
	return reply_load_error(s, out, rc, err);
}

int strategies_get(struct strategies *ss, const char *key, size_t klen, struct buf *out,
		   const struct resp_defer *defer)
{
	struct strat_capture caps[STRAT_MAX_CAPTURES];
	int ncap, rc;
	struct strat *s = match(ss, key, klen, caps, &ncap);

	if (!s)
		return 0;
	rc = strat_get(s, key, klen, caps, ncap, out, defer);
	return rc < 0 || rc == TIER_PARKED ? rc : 1;
}

int strategies_warm_key(struct strategies *ss, const char *key, size_t klen, char *err,
			size_t errlen)
{
	struct strat_capture caps[STRAT_MAX_CAPTURES];
	char *val;
	size_t vlen;
	int ncap, rc;
	struct strat *s = match(ss, key, klen, caps, &ncap);

	if (!s || !s->ld || !loader_reads(s->ld))
		return 0;
	rc = load_key(s, key, klen, caps, ncap, &val, &vlen, err, errlen);
	free(val);
	return rc;
}

uint64_t strategies_key_ttl(struct strategies *ss, const char *key, size_t klen)
{
	struct strat_capture caps[STRAT_MAX_CAPTURES];
	int ncap;
	struct strat *s = ss ? match(ss, key, klen, caps, &ncap) : NULL;

	return s ? s->c.ttl_ms + s->stale_ms : 0;
}

/* ---- write-behind ------------------------------------------------------------------------ */

static void wb_item_free(struct wb_item *it)
{
	free(it->key);
	free(it->val);
	free(it);
}

static int wb_run(void *arg, char *err, size_t errlen);
static void wb_free(void *arg);

/* Send the next batch if none is out. Called with wb_mu held. */
static void wb_kick_locked(struct strat *s)
{
	struct task_spec spec = { .kind = "write-behind", .run = wb_run, .free = wb_free,
				  .prio = TASK_PRIO_NORMAL, .max_attempts = s->c.max_attempts };
	struct wb_batch *b;
	struct wb_item **pp;
	size_t n = 0;

	if (s->batch_out || !s->head || !s->owner->tasks)
		return;
	b = calloc(1, sizeof(*b));
	if (!b)
		return;
	b->s = s;
	b->items = s->head;
	for (pp = &s->head; *pp && n < s->c.batch_max; pp = &(*pp)->next)
		n++;
	s->head = *pp;
	*pp = NULL;
	if (!s->head)
		s->tail = NULL;
	b->n = n;
	{
		int kl = (int)(b->items->w.klen > 40 ? 40 : b->items->w.klen);
		int w = snprintf(spec.label, sizeof(spec.label), "%.30s: %zu write%s from ",
				 s->c.name, n, n == 1 ? "" : "s");

		if (w > 0 && (size_t)w < sizeof(spec.label))
			snprintf(spec.label + w, sizeof(spec.label) - (size_t)w, "%.*s", kl,
				 b->items->key);
	}
	spec.arg = b;
	if (tasks_submit(s->owner->tasks, &spec) != 0) {
		/* the processor is full: put them back in front, the tick retries */
		struct wb_item *last = b->items;

		while (last->next)
			last = last->next;
		last->next = s->head;
		s->head = b->items;
		if (!s->tail)
			s->tail = last;
		free(b);
		return;
	}
	hold(s->owner);         /* released by wb_free */
	s->queued -= n;
	s->inflight += n;
	s->batch_out = true;
	atomic_fetch_add(&s->wb_batches, 1);
}

static int wb_run(void *arg, char *err, size_t errlen)
{
	struct wb_batch *b = arg;
	struct loader_write w[256];
	struct wb_item *it = b->items;
	size_t done = 0;
	int rc = 0;

	/* in slices of the stack array, inside one transaction per slice */
	while (it && !rc) {
		size_t k = 0;
		struct wb_item *start = it;

		for (; it && k < HP_ARRAY_SIZE(w); it = it->next)
			w[k++] = it->w;
		rc = loader_write(b->s->ld, w, k, err, errlen);
		if (rc) {
			/* already-written slices stay written; retry from here */
			b->items = start;
			b->n -= done;
			break;
		}
		done += k;
		/* drop the written slice now so a retry does not repeat it */
		while (b->items != it) {
			struct wb_item *nx = b->items->next;

			wb_item_free(b->items);
			b->items = nx;
		}
	}
	if (rc) {
		atomic_fetch_add(&b->s->wb_failed, 1);
		pthread_mutex_lock(&b->s->wb_mu);
		b->s->inflight -= done;
		pthread_mutex_unlock(&b->s->wb_mu);
		atomic_fetch_add(&b->s->wb_written, done);
		return rc;
	}
	atomic_fetch_add(&b->s->wb_written, done);
	pthread_mutex_lock(&b->s->wb_mu);
	b->s->inflight -= done;
	pthread_mutex_unlock(&b->s->wb_mu);
	b->n = 0;
	b->written = true;
	return 0;
}

static void wb_free(void *arg)
{
	struct wb_batch *b = arg;
	struct strat *s = b->s;

	if (!b->written && b->n) {
		/* a dead letter, or dropped at shutdown: the writes are lost */
		atomic_fetch_add(&s->wb_dead, b->n);
		log_warn("strategy %s: write-behind gave up on %zu write%s (first key '%.*s')",
			 s->c.name, b->n, b->n == 1 ? "" : "s", (int)(b->items->w.klen > 64 ? 64 :
			 b->items->w.klen), b->items->w.key);
	}
	while (b->items) {
		struct wb_item *nx = b->items->next;

		wb_item_free(b->items);
		b->items = nx;
	}
	pthread_mutex_lock(&s->wb_mu);
	s->inflight -= b->n;
	s->batch_out = false;
	wb_kick_locked(s);
	pthread_mutex_unlock(&s->wb_mu);
	free(b);
	strategies_release(s->owner);
}

/* Queue a write; -EAGAIN when the strategy's queue is full. */
static int wb_enqueue(struct strat *s, const char *key, size_t klen,
		      const struct strat_capture *caps, int ncap, const char *val, size_t vlen)
{
	struct wb_item *it = calloc(1, sizeof(*it));

	if (!it)
		return -ENOMEM;
	it->key = malloc(klen ? klen : 1);
	it->val = val ? malloc(vlen ? vlen : 1) : NULL;
	if (!it->key || (val && !it->val)) {
		wb_item_free(it);
		return -ENOMEM;
	}
	memcpy(it->key, key, klen);
	if (val)
		memcpy(it->val, val, vlen);
	it->w.key = it->key;
	it->w.klen = klen;
	memcpy(it->w.caps, caps, sizeof(it->w.caps[0]) * (size_t)ncap);
	it->w.ncap = ncap;
	it->w.val = it->val;
	it->w.vlen = vlen;
	pthread_mutex_lock(&s->wb_mu);
	if (s->queued + s->inflight >= s->c.queue_max) {
		pthread_mutex_unlock(&s->wb_mu);
		wb_item_free(it);
		atomic_fetch_add(&s->wb_rejected, 1);
		return -EAGAIN;
	}
	if (s->tail)
		s->tail->next = it;
	else
		s->head = it;
	s->tail = it;
	s->queued++;
	atomic_fetch_add(&s->wb_queued, 1);
	wb_kick_locked(s);
	pthread_mutex_unlock(&s->wb_mu);
	return 0;
}

void strategies_tick(struct strategies *ss)
{
	if (!ss)
		return;
	for (unsigned i = 0; i < ss->n; i++) {
		struct strat *s = &ss->s[i];

		if (s->c.write != HP_WRITE_BEHIND)
			continue;
		pthread_mutex_lock(&s->wb_mu);
		wb_kick_locked(s);
		pthread_mutex_unlock(&s->wb_mu);
	}
}

uint64_t strategies_pending(struct strategies *ss)
{
	uint64_t n = 0;

	for (unsigned i = 0; ss && i < ss->n; i++) {
		pthread_mutex_lock(&ss->s[i].wb_mu);
		n += ss->s[i].queued + ss->s[i].inflight;
		pthread_mutex_unlock(&ss->s[i].wb_mu);
	}
	return n;
}

/* ---- writes from the RESP front ---------------------------------------------------------- */

/* Cache side of a write: the new value (or none) in every tier. */
static int cache_after_write(struct strat *s, const char *key, size_t klen, const char *val,
			     size_t vlen, uint64_t ttl_ms, char *err, size_t errlen)
{
	struct tier *t = s->owner->t;
	uint64_t seq, ep;

	if (tier_l2(t)) {
		int rc = val ? tier_l2_write(t, key, klen, val, vlen, ttl_ms, err, errlen) : 0;

		if (!val) {
			const char *argv[2] = { "UNLINK", key };
			size_t lens[2] = { 6, klen };
			struct buf scratch;

			buf_init(&scratch, 4096);
			rc = tier_exec(t, "unlink", argv, lens, 2, 1, 1, 1, true, &scratch, NULL);
			buf_free(&scratch);
		}
		if (rc)
			return rc;
	}
	tier_drop_key(t, key, klen);
	if (!val)
		return 0;
	tier_read_begin(t, key, klen, &seq, &ep);
	(void)tier_fill(t, key, klen, val, vlen, ttl_ms ? hp_now_ms() + ttl_ms : 0, seq, ep);
	return 0;
}

/* SET key value [EX s|PX ms]: parse the subset writers support. */
static int parse_set(const char *const *argv, const size_t *len, size_t argc, uint64_t *ttl_ms)
{
	*ttl_ms = 0;
	if (argc == 3)
		return 0;
	if (argc == 5) {
		char num[24], *end;
		unsigned long long v;

		if (len[4] == 0 || len[4] >= sizeof(num))
			return -EINVAL;
		memcpy(num, argv[4], len[4]);
		num[len[4]] = '\0';
		errno = 0;
		v = strtoull(num, &end, 10);
		if (errno || *end || v == 0 || num[0] == '-')
			return -EINVAL;
		if (len[3] == 2 && strncasecmp(argv[3], "ex", 2) == 0 && v < UINT64_MAX / 1000)
			*ttl_ms = v * 1000;
		else if (len[3] == 2 && strncasecmp(argv[3], "px", 2) == 0)
			*ttl_ms = v;
		else
			return -EINVAL;
		return 0;
	}
	return -EINVAL;
}

static int write_one(struct strat *s, const char *key, size_t klen,
		     const struct strat_capture *caps, int ncap, const char *val, size_t vlen,
		     uint64_t ttl_ms, struct buf *out, bool *ok)
{
	char err[STRAT_ERR] = "";
	int rc;

	*ok = false;
	if (s->c.write == HP_WRITE_THROUGH) {
		struct loader_write w = { .key = key, .klen = klen, .ncap = ncap, .val = val,
					  .vlen = vlen };

		memcpy(w.caps, caps, sizeof(caps[0]) * (size_t)ncap);
		atomic_fetch_add(&s->writes, 1);
		if (val || loader_deletes(s->ld)) {
			rc = loader_write(s->ld, &w, 1, err, sizeof(err));
			if (rc) {
				atomic_fetch_add(&s->write_errors, 1);
				return resp_add_errorf(out, "WRITEFAIL strategy %s: loader %s: %s "
						       "(nothing changed)", s->c.name,
						       loader_name(s->ld), err);
			}
		}
	} else {
		rc = wb_enqueue(s, key, klen, caps, ncap, val, vlen);
		if (rc == -EAGAIN)
			return resp_add_errorf(out, "BUSY write-behind queue of strategy %s is full "
					       "(%u writes pending): retry later", s->c.name,
					       s->c.queue_max);
		if (rc)
			return resp_add_error(out, "ERR out of memory queueing the write");
		atomic_fetch_add(&s->writes, 1);
	}
	rc = cache_after_write(s, key, klen, val, vlen, ttl_ms, err, sizeof(err));
	if (rc)
		return resp_add_errorf(out, "L2DOWN origin written but L2 failed: %s", err);
	*ok = true;
	return 0;
}

/*
 * The write itself: SET, or DEL/UNLINK with at least one key covered by a
 * writer strategy (s, the first). It may wait (the loader's write, the
 * store in L2): the RESP front runs it on the task processor.
 */
static int strat_write(struct strategies *ss, struct strat *s, bool set, const char *const *argv,
		       const size_t *len, size_t argc, struct buf *out)
{
	struct strat_capture caps[STRAT_MAX_CAPTURES];
	int ncap, rc;
	bool ok;

	if (set) {
		uint64_t ttl = 0;

		(void)parse_set(argv, len, argc, &ttl);     /* checked by the caller */
		match(ss, argv[1], len[1], caps, &ncap);
		rc = write_one(s, argv[1], len[1], caps, ncap, argv[2], len[2],
			       ttl ? ttl : s->c.ttl_ms + s->stale_ms, out, &ok);
		return rc || !ok ? rc : resp_add_simple(out, "OK");
	}
	{
		long long n = 0;

		for (size_t i = 1; i < argc; i++) {
			struct strat *m = match(ss, argv[i], len[i], caps, &ncap);
			bool existed = l1_exists(tier_l1(ss->t), argv[i], len[i]) == 1;

			if (m && m->c.write != HP_WRITE_NONE) {
				/* on failure the error write_one appended is the reply
				 * (keys before this one are already deleted, as with a
				 * Redis DEL cut short) */
				rc = write_one(m, argv[i], len[i], caps, ncap, NULL, 0, 0, out, &ok);
				if (rc || !ok)
					return rc;
			} else {
				tier_drop_key(ss->t, argv[i], len[i]);
			}
			n += existed;
		}
		return resp_add_int(out, n);
	}
}

/* A write from the RESP front on the task processor, its client parked. */
struct swrite {
	struct strategies *ss;           /* held */
	struct strat *s;
	bool set;
	struct buf_argv *cmd;
};

static int swrite_run(void *arg, struct buf *out)
{
	struct swrite *w = arg;

	return strat_write(w->ss, w->s, w->set, w->cmd->argv, w->cmd->len, (size_t)w->cmd->argc,
			   out);
}

static void swrite_free(void *arg)
{
	struct swrite *w = arg;

	free(w->cmd);
	strategies_release(w->ss);
	free(w);
}

static int write_parked(struct strategies *ss, struct strat *s, bool set, const char *const *argv,
			const size_t *len, size_t argc, struct buf *out,
			const struct resp_defer *defer)
{
	struct tier_park_job job = { .kind = "write", .waiting_for = "writes",
				     .undone = "written", .run = swrite_run,
				     .release = swrite_free };
	struct swrite *w = calloc(1, sizeof(*w));
	int rc;

	if (w)
		w->cmd = buf_argv_dup((int)argc, argv, len);
	if (!w || !w->cmd) {
		free(w);
		return resp_add_error(out, "ERR out of memory");
	}
	w->ss = ss;
	w->s = s;
	w->set = set;
	strategies_hold(ss);
	job.arg = w;
	rc = tier_park_task(ss->tasks, defer, &job, argv[1], len[1], out);
	atomic_fetch_add(rc == TIER_PARKED ? &s->parked : &s->park_refused, 1);
	return rc;
}

int strategies_exec(struct strategies *ss, const char *name, const char *const *argv,
		    const size_t *len, size_t argc, int first, int last, int step, bool write,
		    struct buf *out, const struct resp_defer *defer)
{
	struct strat_capture caps[STRAT_MAX_CAPTURES];
	struct strat *s = NULL;
	uint64_t ttl;
	int ncap;
	bool set;

	if (!write || first <= 0)
		return TIER_LOCAL;
	if (last < 0)
		last = (int)argc + last;
	/* does a strategy with a writer cover any of the keys? */
	for (int i = first; i <= last && i < (int)argc; i += step > 0 ? step : 1) {
		struct strat *m = match(ss, argv[i], len[i], caps, &ncap);

		if (m && m->c.write != HP_WRITE_NONE) {
			s = m;
			break;
		}
	}
	if (!s)
		return TIER_LOCAL;
	set = strcmp(name, "set") == 0;
	if (!set && strcmp(name, "del") != 0 && strcmp(name, "unlink") != 0)
		return resp_add_errorf(out, "ERR key covered by strategy %s (write = %s): only SET "
				       "and DEL may change it", s->c.name,
				       s->c.write == HP_WRITE_THROUGH ? "through" : "behind");
	if (set && parse_set(argv, len, argc, &ttl) != 0)
		return resp_add_errorf(out, "ERR keys of strategy %s (write = %s) take "
				       "SET key value [EX s|PX ms] only", s->c.name,
				       s->c.write == HP_WRITE_THROUGH ? "through" : "behind");
	if (defer && ss->tasks)
		return write_parked(ss, s, set, argv, len, argc, out, defer);
	return strat_write(ss, s, set, argv, len, argc, out);
}

/* ---- lifecycle and stats ----------------------------------------------------------------- */

struct strategies *strategies_new(const struct hp_config *c, struct tier *t, struct tasks *tasks,
				  char *err, size_t errlen)
{
	struct strategies *ss;

	if (!c->n_strategies)
		return NULL;
	ss = calloc(1, sizeof(*ss));
	if (!ss) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ss->t = t;
	ss->tasks = tasks;
	pthread_mutex_init(&ss->sf_mu, NULL);
	for (unsigned i = 0; i < c->n_loaders; i++) {
		ss->loaders[i] = loader_new(&c->loaders[i], err, errlen);
		if (!ss->loaders[i]) {
			strategies_free(ss);
			return NULL;
		}
		ss->nloaders++;
	}
	for (unsigned i = 0; i < c->n_strategies; i++) {
		struct strat *s = &ss->s[i];

		s->c = c->strategies[i];
		s->owner = ss;
		s->stale_ms = s->c.swr_ms > s->c.sie_ms ? s->c.swr_ms : s->c.sie_ms;
		s->ld = s->c.loader[0] ? strategies_loader(ss, s->c.loader) : NULL;
		if (s->ld && !loader_reads(s->ld) && s->c.write == HP_WRITE_NONE)
			s->ld = NULL;
		pthread_mutex_init(&s->wb_mu, NULL);
		if (strat_pattern_captures(s->c.pattern, strlen(s->c.pattern)) > STRAT_MAX_CAPTURES) {
			snprintf(err, errlen, "strategy.%s.pattern has more than %d * and ? captures",
				 s->c.name, STRAT_MAX_CAPTURES);
			ss->n = i + 1;
			strategies_free(ss);
			return NULL;
		}
		ss->pats[i] = s->c.pattern;
		ss->n = i + 1;
	}
	return ss;
}

void strategies_free(struct strategies *ss)
{
	if (!ss)
		return;
	for (unsigned i = 0; i < ss->n; i++) {
		struct strat *s = &ss->s[i];

		if (s->queued)
			log_warn("strategy %s: %llu write-behind writes still queued at shutdown "
				 "are lost", s->c.name, (unsigned long long)s->queued);
		while (s->head) {
			struct wb_item *nx = s->head->next;

			wb_item_free(s->head);
			s->head = nx;
		}
		pthread_mutex_destroy(&s->wb_mu);
	}
	for (unsigned b = 0; b < SF_BUCKETS; b++)
		while (ss->refreshing[b]) {
			struct flight *f = ss->refreshing[b];

			ss->refreshing[b] = f->next;
			flight_free(f);
		}
	for (unsigned i = 0; i < ss->nloaders; i++)
		loader_free(ss->loaders[i]);
	pthread_mutex_destroy(&ss->sf_mu);
	free(ss);
}

struct loader *strategies_loader(struct strategies *ss, const char *name)
{
	for (unsigned i = 0; ss && i < ss->nloaders; i++)
		if (strcmp(loader_name(ss->loaders[i]), name) == 0)
			return ss->loaders[i];
	return NULL;
}

unsigned strategies_count(struct strategies *ss)
{
	return ss ? ss->n : 0;
}

unsigned strategies_loader_count(struct strategies *ss)
{
	return ss ? ss->nloaders : 0;
}

void strategies_loader_stats(struct strategies *ss, unsigned i, struct loader_stats *out)
{
	loader_get_stats(ss->loaders[i], out);
}

void strategies_get_stats(struct strategies *ss, unsigned i, struct strategy_stats *o)
{
	struct strat *s = &ss->s[i];
	static const char *const wm[] = { "none", "through", "behind" };

	memset(o, 0, sizeof(*o));
	snprintf(o->name, sizeof(o->name), "%s", s->c.name);
	snprintf(o->pattern, sizeof(o->pattern), "%s", s->c.pattern);
	snprintf(o->loader, sizeof(o->loader), "%s", s->c.loader);
	o->write = wm[s->c.write >= 0 && s->c.write <= 2 ? s->c.write : 0];
	o->fresh_hits = atomic_load(&s->fresh_hits);
	o->stale_served = atomic_load(&s->stale_served);
	o->loads = atomic_load(&s->loads);
	o->load_errors = atomic_load(&s->load_errors);
	o->not_found = atomic_load(&s->not_found);
	o->coalesced = atomic_load(&s->coalesced);
	o->refreshes_queued = atomic_load(&s->refreshes_queued);
	o->refreshes_shed = atomic_load(&s->refreshes_shed);
	o->stale_if_error_served = atomic_load(&s->sie_served);
	o->writes = atomic_load(&s->writes);
	o->write_errors = atomic_load(&s->write_errors);
	o->wb_queued = atomic_load(&s->wb_queued);
	o->wb_rejected = atomic_load(&s->wb_rejected);
	o->wb_written = atomic_load(&s->wb_written);
	o->wb_batches = atomic_load(&s->wb_batches);
	o->wb_failed_attempts = atomic_load(&s->wb_failed);
	o->wb_dead = atomic_load(&s->wb_dead);
	o->parked = atomic_load(&s->parked);
	o->park_refused = atomic_load(&s->park_refused);
	pthread_mutex_lock(&s->wb_mu);
	o->wb_pending = s->queued + s->inflight;
	pthread_mutex_unlock(&s->wb_mu);
}
