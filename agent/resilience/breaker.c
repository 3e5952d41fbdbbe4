/*
 * breaker.c - circuit breaker (see include/hotpath/breaker.h).
 *
 * How: with a count window the closed state keeps the outcomes of the
 * last `window` calls in a ring of flag bytes with running counts of
 * failed and slow ones, so a decision is O(1). With a time window it keeps
 * `window` one-second buckets (calls, failed, slow) indexed by second
 * modulo the window, with the same running totals: when a call lands in a
 * later second than the newest one recorded, the buckets of the seconds in
 * between (at most the whole window) are subtracted and cleared first, so
 * the totals always cover exactly the last `window` seconds. Open has a deadline; the first breaker_allow after it
 * moves to half-open, where a bounded number of probe calls may be in
 * flight. The clock is passed in, so tests step time by hand and the
 * module has no notion of the daemon.
 *
 * What not: no per-error-class policies; callers decide what counts as a failure (a Redis "nil" is a
 * success, a timeout or a connection error is not).
 */
#include <string.h>
#include "hotpath/breaker.h"

#define F_FAIL 1u
#define F_SLOW 2u

void breaker_init(struct breaker *b, const struct breaker_options *o)
{
	memset(b, 0, sizeof(*b));
	if (o)
		b->o = *o;
	if (!b->o.window || b->o.window > BREAKER_WINDOW_MAX)
		b->o.window = b->o.window ? BREAKER_WINDOW_MAX : 20;
	if (!b->o.min_calls)
		b->o.min_calls = 5;
	if (b->o.window_type != BREAKER_WINDOW_TIME && b->o.min_calls > b->o.window)
		b->o.min_calls = b->o.window;   /* a time window may hold more calls than seconds */
	if (!b->o.failure_pct || b->o.failure_pct > 100)
		b->o.failure_pct = 50;
	if (!b->o.slow_pct || b->o.slow_pct > 100)
		b->o.slow_pct = 80;
	if (!b->o.slow_call_us)
		b->o.slow_call_us = 100000;
	if (!b->o.open_ms)
		b->o.open_ms = 2000;
	if (!b->o.probes)
		b->o.probes = 2;
	pthread_mutex_init(&b->mu, NULL);
}

void breaker_destroy(struct breaker *b)
{
	pthread_mutex_destroy(&b->mu);
}

static void window_reset(struct breaker *b)
{
	b->ring_pos = b->ring_len = b->nfail = b->nslow = 0;
	memset(b->bucket, 0, sizeof(b->bucket));
	b->last_sec = 0;
}

/* Time window: drop the seconds that left the window before now_ms. */
static void time_advance(struct breaker *b, uint64_t sec)
{
	uint64_t from = b->last_sec + 1, n;

	if (b->ring_len == 0) {         /* empty: nothing to drop */
		b->last_sec = sec;
		return;
	}
	if (sec <= b->last_sec)
		return;                 /* same second (or a clock step back: keep) */
	n = sec - b->last_sec;
	if (n > b->o.window)
		n = b->o.window;
	if (sec - from + 1 > n)
		from = sec - n + 1;
	for (uint64_t s = from; s <= sec; s++) {
		struct breaker_bucket *k = &b->bucket[s % b->o.window];

		b->ring_len -= k->calls;
		b->nfail -= k->fail;
		b->nslow -= k->slow;
		memset(k, 0, sizeof(*k));
	}
	b->last_sec = sec;
}

/* Add one closed-state outcome to the window. */
static void window_add(struct breaker *b, bool ok, bool slow, uint64_t now_ms)
{
	if (b->o.window_type == BREAKER_WINDOW_TIME) {
		uint64_t sec = now_ms / 1000;
		struct breaker_bucket *k;

		time_advance(b, sec);
		k = &b->bucket[(sec < b->last_sec ? b->last_sec : sec) % b->o.window];
		k->calls++;
		k->fail += !ok;
		k->slow += slow;
		b->ring_len++;
		b->nfail += !ok;
		b->nslow += slow;
		return;
	}
	if (b->ring_len == b->o.window) {
		uint8_t old = b->ring[b->ring_pos];

		b->nfail -= (old & F_FAIL) != 0;
		b->nslow -= (old & F_SLOW) != 0;
	} else {
		b->ring_len++;
	}
	b->ring[b->ring_pos] = (uint8_t)((ok ? 0 : F_FAIL) | (slow ? F_SLOW : 0));
	b->ring_pos = (b->ring_pos + 1) % b->o.window;
	b->nfail += !ok;
	b->nslow += slow;
}

static void to_open(struct breaker *b, uint64_t now_ms)
{
	if (b->state != BREAKER_OPEN)
		b->opened++;
	b->state = BREAKER_OPEN;
	b->open_until_ms = now_ms + b->o.open_ms;
	b->probes_inflight = b->probes_ok = 0;
	window_reset(b);
}

/* Open's deadline passed: probe. */
static void tick(struct breaker *b, uint64_t now_ms)
{
	if (b->state == BREAKER_OPEN && now_ms >= b->open_until_ms) {
		b->state = BREAKER_HALF_OPEN;
		b->probes_inflight = b->probes_ok = 0;
	}
}

bool breaker_allow(struct breaker *b, uint64_t now_ms)
{
	bool ok = true;

	pthread_mutex_lock(&b->mu);
	tick(b, now_ms);
	if (b->state == BREAKER_OPEN) {
		ok = false;
	} else if (b->state == BREAKER_HALF_OPEN) {
		if (b->probes_inflight >= b->o.probes)
			ok = false;
		else
			b->probes_inflight++;
	}
	if (!ok)
		b->rejected++;
	pthread_mutex_unlock(&b->mu);
	return ok;
}

void breaker_record(struct breaker *b, bool ok, uint64_t dur_us, uint64_t now_ms)
{
	bool slow = dur_us > b->o.slow_call_us;
	uint8_t f = (uint8_t)((ok ? 0 : F_FAIL) | (slow ? F_SLOW : 0));

	pthread_mutex_lock(&b->mu);
	b->calls++;
	b->failures += !ok;
	b->slow += slow;
	if (b->state == BREAKER_HALF_OPEN) {
		if (b->probes_inflight)
			b->probes_inflight--;
		if (f) {
			to_open(b, now_ms);
		} else if (++b->probes_ok >= b->o.probes) {
			b->state = BREAKER_CLOSED;
			b->closed++;
			window_reset(b);
		}
	} else if (b->state == BREAKER_CLOSED) {
		window_add(b, ok, slow, now_ms);
		if (b->ring_len >= b->o.min_calls &&
		    (b->nfail * 100 >= b->o.failure_pct * b->ring_len ||
		     b->nslow * 100 >= b->o.slow_pct * b->ring_len))
			to_open(b, now_ms);
	}
	/* An outcome arriving while open (a call allowed before it opened)
	 * changes nothing. */
	pthread_mutex_unlock(&b->mu);
}

void breaker_trip(struct breaker *b, uint64_t now_ms)
{
	pthread_mutex_lock(&b->mu);
	to_open(b, now_ms);
	pthread_mutex_unlock(&b->mu);
}

enum breaker_state breaker_state(struct breaker *b, uint64_t now_ms)
{
	enum breaker_state s;

	pthread_mutex_lock(&b->mu);
	tick(b, now_ms);
	s = b->state;
	pthread_mutex_unlock(&b->mu);
	return s;
}

void breaker_get_stats(struct breaker *b, uint64_t now_ms, struct breaker_stats *out)
{
	pthread_mutex_lock(&b->mu);
	tick(b, now_ms);
	out->state = b->state;
	out->calls = b->calls;
	out->failures = b->failures;
	out->slow = b->slow;
	out->rejected = b->rejected;
	out->opened = b->opened;
	out->closed = b->closed;
	out->open_until_ms = b->state == BREAKER_OPEN ? b->open_until_ms : 0;
	pthread_mutex_unlock(&b->mu);
}

const char *breaker_state_name(enum breaker_state s)
{
	switch (s) {
	case BREAKER_CLOSED: return "closed";
	case BREAKER_OPEN: return "open";
	case BREAKER_HALF_OPEN: return "half_open";
	}
	return "?";
}
