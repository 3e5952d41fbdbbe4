/*
 * balance.c - backend selection and health for an upstream group (see
 * include/hotpath/balance.h).
 *
 * How: every backend carries its configured weight, an effective weight
 * (ramped linearly from 10% to 100% over slow_start_ms after it becomes
 * available again), the smooth weighted round robin "current weight"
 * (nginx's algorithm: add each effective weight, take the largest, subtract
 * the total, which interleaves 5:1:1 as a a b a c a a rather than in
 * bursts), requests in flight, a peak-EWMA of latency (a sample above the
 * average replaces it at once, below it decays in with a time constant, so
 * a backend that turns slow is avoided within one request and forgiven
 * gradually), active health (rise/fall counters), passive outlier state
 * (consecutive failures, ejection deadline, times ejected) and a circuit
 * breaker. least_request and ewma draw two distinct available backends at
 * random and keep the better one (power of two choices: nearly the best
 * of the global choice without its herd behaviour). hash uses a ring of
 * 160 points per unit of weight per backend (FNV-1a of "name#i"), looked
 * up by binary search and walked clockwise past unavailable backends, so
 * removing a backend moves only its own keys.
 *
 * What not: no locality or priority tiers, no retries (the proxy decides),
 * no I/O: active checks are run by the proxy and reported here.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/balance.h"

#define RING_POINTS 160

struct backend {
	struct balance_backend_conf conf;
	uint64_t id;
	int64_t current;               /* smooth WRR */
	uint64_t inflight, requests, failures, ejections;
	double ewma_us;
	uint64_t ewma_at_ms;
	bool healthy;
	unsigned rise, fall;           /* consecutive passing / failing checks */
	unsigned consecutive_fail;
	uint64_t ejected_until_ms;
	bool ejected;
	uint64_t available_since_ms;   /* for slow start; 0 = since the start */
	bool was_available;
	enum breaker_state last_breaker;
	struct breaker br;
};

struct ring_point {
	uint64_t h;
	unsigned idx;
};

struct balancer {
	pthread_mutex_t mu;
	struct balance_options o;
	unsigned n;
	struct backend be[BALANCE_MAX_BACKENDS];
	struct ring_point *ring;
	unsigned nring;
	uint64_t rng;
	struct balance_transition tr[BALANCE_TRANSITIONS];
	unsigned ntr, tr_pos;
};

uint64_t balance_hash(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 1099511628211ULL;
	}
	/* FNV's low bits mix poorly for ring placement: finish with a murmur step. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

static uint64_t rnd(struct balancer *b)
{
	/* xorshift64* */
	b->rng ^= b->rng >> 12;
	b->rng ^= b->rng << 25;
	b->rng ^= b->rng >> 27;
	return b->rng * 2685821657736338717ULL;
}

static int ring_cmp(const void *a, const void *c)
{
	const struct ring_point *x = a, *y = c;

	return x->h < y->h ? -1 : x->h > y->h;
}

const char *balance_algo_name(enum balance_algo a)
{
	switch (a) {
	case BAL_ROUND_ROBIN: return "round_robin";
	case BAL_LEAST_REQUEST: return "least_request";
	case BAL_EWMA: return "ewma";
	case BAL_HASH: return "hash";
	}
	return "?";
}

struct balancer *balance_new(const struct balance_options *o,
			     const struct balance_backend_conf *backends, unsigned n, uint64_t seed)
{
	struct balancer *b;
	unsigned total = 0;

	if (n == 0 || n > BALANCE_MAX_BACKENDS)
		return NULL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->o = *o;
	if (!b->o.health_rise)
		b->o.health_rise = 2;
	if (!b->o.health_fall)
		b->o.health_fall = 3;
	if (!b->o.eject_consecutive)
		b->o.eject_consecutive = 5;
	if (!b->o.eject_base_ms)
		b->o.eject_base_ms = 5000;
	if (!b->o.eject_max_ms)
		b->o.eject_max_ms = 300000;
	if (!b->o.eject_max_pct || b->o.eject_max_pct > 100)
		b->o.eject_max_pct = 50;
	if (!b->o.panic_pct || b->o.panic_pct > 100)
		b->o.panic_pct = 50;
	if (!b->o.ewma_decay_ms)
		b->o.ewma_decay_ms = 10000;
	b->n = n;
	b->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
	for (unsigned i = 0; i < n; i++) {
		struct backend *e = &b->be[i];

		e->conf = backends[i];
		if (!e->conf.weight)
			e->conf.weight = 1;
		if (e->conf.weight > 1000)
			e->conf.weight = 1000;
		e->id = balance_hash(e->conf.name, strlen(e->conf.name));
		e->healthy = true;
		e->was_available = true;
		breaker_init(&e->br, &b->o.breaker);
		total += e->conf.weight;
	}
	if (b->o.algo == BAL_HASH) {
		b->ring = calloc((size_t)total * RING_POINTS, sizeof(*b->ring));
		if (!b->ring) {
			balance_free(b);
			return NULL;
		}
		for (unsigned i = 0; i < n; i++) {
			for (unsigned k = 0; k < b->be[i].conf.weight * RING_POINTS; k++) {
				char tmp[160];
				int l = snprintf(tmp, sizeof(tmp), "%s#%u", b->be[i].conf.name, k);

				b->ring[b->nring].h = balance_hash(tmp, (size_t)l);
				b->ring[b->nring++].idx = i;
			}
		}
		qsort(b->ring, b->nring, sizeof(*b->ring), ring_cmp);
	}
	pthread_mutex_init(&b->mu, NULL);
	return b;
}

void balance_free(struct balancer *b)
{
	if (!b)
		return;
	for (unsigned i = 0; i < b->n; i++)
		breaker_destroy(&b->be[i].br);
	pthread_mutex_destroy(&b->mu);
	free(b->ring);
	free(b);
}

unsigned balance_count(const struct balancer *b)
{
	return b->n;
}

static void transition(struct balancer *b, unsigned idx, const char *what, const char *from,
		       const char *to, uint64_t wall_ms)
{
	struct balance_transition *t = &b->tr[b->tr_pos];

	t->at_wall_ms = wall_ms;
	t->backend = idx;
	snprintf(t->what, sizeof(t->what), "%s", what);
	snprintf(t->from, sizeof(t->from), "%s", from);
	snprintf(t->to, sizeof(t->to), "%s", to);
	b->tr_pos = (b->tr_pos + 1) % BALANCE_TRANSITIONS;
	if (b->ntr < BALANCE_TRANSITIONS)
		b->ntr++;
}

static void note_breaker(struct balancer *b, unsigned idx, uint64_t now_ms, uint64_t wall_ms)
{
	struct backend *e = &b->be[idx];
	enum breaker_state s = breaker_state(&e->br, now_ms);

	if (s != e->last_breaker) {
		transition(b, idx, "breaker", breaker_state_name(e->last_breaker),
			   breaker_state_name(s), wall_ms);
		e->last_breaker = s;
	}
}

/* Healthy and not ejected (the breaker is asked separately: asking admits). */
static bool up(struct balancer *b, struct backend *e, uint64_t now_ms)
{
	(void)b;
	if (e->ejected && now_ms >= e->ejected_until_ms)
		e->ejected = false;
	return e->healthy && !e->ejected;
}

/* Weight scaled by 1000 so slow start has resolution at weight 1. */
static unsigned wscaled(struct balancer *b, struct backend *e, uint64_t now_ms)
{
	uint64_t since;

	if (!b->o.slow_start_ms || !e->available_since_ms)
		return e->conf.weight * 1000;
	since = now_ms - e->available_since_ms;
	if (since >= b->o.slow_start_ms)
		return e->conf.weight * 1000;
	return (unsigned)(e->conf.weight * (100 + 900 * since / b->o.slow_start_ms));
}

/* Update availability edges (slow start begins when a backend comes back). */
static void refresh(struct balancer *b, uint64_t now_ms, bool avail[])
{
	for (unsigned i = 0; i < b->n; i++) {
		struct backend *e = &b->be[i];
		bool a = up(b, e, now_ms) && breaker_state(&e->br, now_ms) != BREAKER_OPEN;

		if (a && !e->was_available)
			e->available_since_ms = now_ms ? now_ms : 1;
		e->was_available = a;
		avail[i] = a;
	}
}

static bool panic_now(struct balancer *b, const bool avail[])
{
	unsigned na = 0;

	for (unsigned i = 0; i < b->n; i++)
		na += avail[i];
	return na * 100 < b->o.panic_pct * b->n;
}

bool balance_in_panic(struct balancer *b, uint64_t now_ms)
{
	bool avail[BALANCE_MAX_BACKENDS], p;

	pthread_mutex_lock(&b->mu);
	refresh(b, now_ms, avail);
	p = panic_now(b, avail);
	pthread_mutex_unlock(&b->mu);
	return p;
}

static double score(struct balancer *b, struct backend *e, uint64_t now_ms)
{
	double w = (double)wscaled(b, e, now_ms) / 1000.0;

	if (b->o.algo == BAL_EWMA) {
		/* Decay toward zero while idle so a once-slow backend gets retried. */
		double age = (double)(now_ms - e->ewma_at_ms);
		double decay = age > 0 ? (double)b->o.ewma_decay_ms / ((double)b->o.ewma_decay_ms + age)
				       : 1.0;

		return (e->ewma_us * decay + 1.0) * (double)(e->inflight + 1) / w;
	}
	return (double)(e->inflight + 1) / w;
}

static int choose(struct balancer *b, const bool cand[], uint64_t hash, uint64_t now_ms)
{
	unsigned idx[BALANCE_MAX_BACKENDS], nc = 0;

	for (unsigned i = 0; i < b->n; i++)
		if (cand[i])
			idx[nc++] = i;
	if (nc == 0)
		return -EAGAIN;
	switch (b->o.algo) {
	case BAL_ROUND_ROBIN: {
		int64_t total = 0;
		int best = -1;

		for (unsigned k = 0; k < nc; k++) {
			struct backend *e = &b->be[idx[k]];
			int64_t w = wscaled(b, e, now_ms);

			e->current += w;
			total += w;
			if (best < 0 || e->current > b->be[best].current)
				best = (int)idx[k];
		}
		b->be[best].current -= total;
		return best;
	}
	case BAL_LEAST_REQUEST:
	case BAL_EWMA: {
		unsigned x, y;

		if (nc == 1)
			return (int)idx[0];
		x = (unsigned)(rnd(b) % nc);
		y = (unsigned)(rnd(b) % (nc - 1));
		if (y >= x)
			y++;
		return score(b, &b->be[idx[x]], now_ms) <= score(b, &b->be[idx[y]], now_ms) ?
		       (int)idx[x] : (int)idx[y];
	}
	case BAL_HASH: {
		unsigned lo = 0, hi = b->nring;

		while (lo < hi) {
			unsigned mid = (lo + hi) / 2;

			if (b->ring[mid].h < hash)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (unsigned k = 0; k < b->nring; k++) {
			unsigned i = b->ring[(lo + k) % b->nring].idx;

			if (cand[i])
				return (int)i;
		}
		return -EAGAIN;
	}
	}
	return -EAGAIN;
}

int balance_pick(struct balancer *b, uint64_t hash, uint64_t exclude, uint64_t now_ms)
{
	bool avail[BALANCE_MAX_BACKENDS], cand[BALANCE_MAX_BACKENDS];
	int pick = -EAGAIN;

	pthread_mutex_lock(&b->mu);
	refresh(b, now_ms, avail);
	if (panic_now(b, avail))
		for (unsigned i = 0; i < b->n; i++)
			avail[i] = true;    /* panic: health and ejection are ignored */
	for (unsigned i = 0; i < b->n; i++)
		cand[i] = avail[i] && !(i < 64 && (exclude >> i) & 1);
	/* The breaker has the last word; a refusal removes it and we pick again. */
	for (unsigned tries = 0; tries < b->n; tries++) {
		pick = choose(b, cand, hash, now_ms);
		if (pick < 0)
			break;
		if (breaker_allow(&b->be[pick].br, now_ms))
			break;
		cand[pick] = false;
		pick = -EAGAIN;
	}
	if (pick >= 0) {
		b->be[pick].inflight++;
		b->be[pick].requests++;
	}
	pthread_mutex_unlock(&b->mu);
	return pick;
}

int balance_pick_this(struct balancer *b, unsigned idx, uint64_t now_ms)
{
	int rc = -EAGAIN;

	if (idx >= b->n)
		return -EINVAL;
	pthread_mutex_lock(&b->mu);
	if (up(b, &b->be[idx], now_ms) && breaker_allow(&b->be[idx].br, now_ms)) {
		b->be[idx].inflight++;
		b->be[idx].requests++;
		rc = (int)idx;
	}
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static unsigned n_ejected(struct balancer *b, uint64_t now_ms)
{
	unsigned n = 0;

	for (unsigned i = 0; i < b->n; i++) {
		(void)up(b, &b->be[i], now_ms);
		n += b->be[i].ejected;
	}
	return n;
}

void balance_done(struct balancer *b, unsigned idx, bool ok, uint64_t latency_us,
		  uint64_t now_ms, uint64_t wall_ms)
{
	struct backend *e;

	if (idx >= b->n)
		return;
	e = &b->be[idx];
	breaker_record(&e->br, ok, latency_us, now_ms);
	pthread_mutex_lock(&b->mu);
	if (e->inflight)
		e->inflight--;
	/* peak-EWMA */
	if ((double)latency_us > e->ewma_us || e->ewma_at_ms == 0) {
		e->ewma_us = (double)latency_us;
	} else {
		double dt = (double)(now_ms - e->ewma_at_ms);
		double w = dt / (dt + (double)b->o.ewma_decay_ms / 10.0);

		e->ewma_us = e->ewma_us * (1.0 - w) + (double)latency_us * w;
		if (w == 0)
			e->ewma_us = e->ewma_us * 0.9 + (double)latency_us * 0.1;
	}
	e->ewma_at_ms = now_ms ? now_ms : 1;
	if (ok) {
		e->consecutive_fail = 0;
	} else {
		e->failures++;
		if (++e->consecutive_fail >= b->o.eject_consecutive && !e->ejected) {
			unsigned ej = n_ejected(b, now_ms);

			/* at least one may always be ejected; beyond that the cap */
			if (ej == 0 || (ej + 1) * 100 <= b->o.eject_max_pct * b->n) {
				uint64_t t = b->o.eject_base_ms * (e->ejections + 1);

				if (t > b->o.eject_max_ms)
					t = b->o.eject_max_ms;
				e->ejected = true;
				e->ejected_until_ms = now_ms + t;
				e->ejections++;
				e->consecutive_fail = 0;
				transition(b, idx, "ejection", "in", "ejected", wall_ms);
			}
		}
	}
	note_breaker(b, idx, now_ms, wall_ms);
	pthread_mutex_unlock(&b->mu);
}

void balance_health(struct balancer *b, unsigned idx, bool ok, uint64_t now_ms, uint64_t wall_ms)
{
	struct backend *e;

	if (idx >= b->n)
		return;
	e = &b->be[idx];
	pthread_mutex_lock(&b->mu);
	if (ok) {
		e->fall = 0;
		if (!e->healthy && ++e->rise >= b->o.health_rise) {
			e->healthy = true;
			e->rise = 0;
			transition(b, idx, "health", "unhealthy", "healthy", wall_ms);
		}
	} else {
		e->rise = 0;
		if (e->healthy && ++e->fall >= b->o.health_fall) {
			e->healthy = false;
			e->fall = 0;
			transition(b, idx, "health", "healthy", "unhealthy", wall_ms);
		}
	}
	note_breaker(b, idx, now_ms, wall_ms);
	pthread_mutex_unlock(&b->mu);
}

int balance_find_id(const struct balancer *b, uint64_t id)
{
	for (unsigned i = 0; i < b->n; i++)
		if (b->be[i].id == id)
			return (int)i;
	return -ENOENT;
}

uint64_t balance_backend_id(const struct balancer *b, unsigned idx)
{
	return idx < b->n ? b->be[idx].id : 0;
}

void balance_get_stats(struct balancer *b, unsigned idx, uint64_t now_ms,
		       struct balance_backend_stats *out)
{
	struct backend *e;

	memset(out, 0, sizeof(*out));
	if (idx >= b->n)
		return;
	e = &b->be[idx];
	pthread_mutex_lock(&b->mu);
	snprintf(out->name, sizeof(out->name), "%s", e->conf.name);
	out->weight = e->conf.weight;
	out->effective_weight = (double)wscaled(b, e, now_ms) / 1000.0;
	out->healthy = e->healthy;
	out->ejected = !up(b, e, now_ms) && e->healthy;
	breaker_get_stats(&e->br, now_ms, &out->bstats);
	out->breaker = out->bstats.state;
	out->available = e->healthy && !e->ejected && out->breaker != BREAKER_OPEN;
	out->inflight = e->inflight;
	out->requests = e->requests;
	out->failures = e->failures;
	out->ejections = e->ejections;
	out->ejected_until_ms = e->ejected ? e->ejected_until_ms : 0;
	out->ewma_us = e->ewma_us;
	pthread_mutex_unlock(&b->mu);
}

unsigned balance_transitions(struct balancer *b, struct balance_transition *out, unsigned max)
{
	unsigned n, start;

	pthread_mutex_lock(&b->mu);
	n = b->ntr < max ? b->ntr : max;
	start = (b->tr_pos + BALANCE_TRANSITIONS - n) % BALANCE_TRANSITIONS;
	for (unsigned i = 0; i < n; i++)
		out[i] = b->tr[(start + i) % BALANCE_TRANSITIONS];
	pthread_mutex_unlock(&b->mu);
	return n;
}
