/*
 * timeseries.c - per-second history of the agent's counters (timeseries.h).
 *
 * A fixed ring of `seconds` samples, allocated once: memory is bounded
 * (about 100 bytes a second, 360 KB for an hour) whatever the load. The main
 * thread calls timeseries_tick() once a second; it reads the subsystems'
 * counters *outside* the lock, then takes the mutex only to store the
 * sample, so a slow reader never delays the cache. Samples hold cumulative
 * counters and gauges, stamped with the monotonic second they were taken.
 *
 * A query aggregates by time, not by sample count: bucket b holds the
 * samples whose age (relative to the newest sample) falls in
 * [b*gran, (b+1)*gran). A counter's value for a bucket is the newest sample
 * in it minus the newest sample of the next older non-empty bucket (or the
 * oldest sample in the bucket itself when nothing older is kept), so a late
 * or missed tick shifts a point but never double counts. Gauges take the
 * newest sample. Aggregation runs under the mutex; it touches at most
 * `seconds` samples.
 *
 * Deliberately not here: persistence, downsampling for longer ranges,
 * per-partition series (the API reports partitions as totals).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/l1.h"
#include "hotpath/metrics.h"
#include "hotpath/server.h"
#include "hotpath/timeseries.h"

struct ts_sample {
	uint64_t mono_s, wall_ms;
	uint64_t hits, misses, sets, deletes, evictions, expired, commands;
	uint64_t keys, memory, connections;
};

struct timeseries {
	pthread_mutex_t lock;
	unsigned cap;           /* samples in the ring */
	unsigned n;             /* samples stored (<= cap) */
	unsigned head;          /* index of the next write */
	struct ts_sample *ring;
};

struct timeseries *timeseries_new(unsigned seconds)
{
	struct timeseries *ts;

	if (seconds == 0 || seconds > 7 * 86400)
		return NULL;
	ts = calloc(1, sizeof(*ts));
	if (!ts)
		return NULL;
	ts->ring = calloc(seconds, sizeof(*ts->ring));
	if (!ts->ring || pthread_mutex_init(&ts->lock, NULL) != 0) {
		free(ts->ring);
		free(ts);
		return NULL;
	}
	ts->cap = seconds;
	return ts;
}

void timeseries_free(struct timeseries *ts)
{
	if (!ts)
		return;
	pthread_mutex_destroy(&ts->lock);
	free(ts->ring);
	free(ts);
}

unsigned timeseries_capacity(const struct timeseries *ts)
{
	return ts ? ts->cap : 0;
}

void timeseries_tick(struct timeseries *ts, struct hp_daemon *d)
{
	struct ts_sample s;

	if (!ts || !d)
		return;
	memset(&s, 0, sizeof(s));
	s.mono_s = hp_now_ms() / 1000;
	s.wall_ms = hp_wall_ms();
	if (d->l1) {
		/* ~17 KB: keep it off the stack of whoever calls us. */
		struct l1_stats *st = malloc(sizeof(*st));
		if (st) {
			l1_get_stats(d->l1, st);
			s.hits = st->hits;
			s.misses = st->misses;
			s.sets = st->sets;
			s.deletes = st->deletes;
			for (unsigned i = 0; i < L1_EVICT_REASONS; i++)
				s.evictions += st->evictions[i];
			s.expired = st->expired_lazy + st->expired_active;
			s.keys = st->keys;
			s.memory = st->memory;
			free(st);
		}
	}
	if (d->resp) {
		struct resp_server_stats rs;
		memset(&rs, 0, sizeof(rs));
		if (resp_server_stats(d->resp, &rs) == 0) {
			s.commands = rs.commands;
			s.connections = rs.connected;
			free(rs.cmd);
		}
	}
	pthread_mutex_lock(&ts->lock);
	ts->ring[ts->head] = s;
	ts->head = (ts->head + 1) % ts->cap;
	if (ts->n < ts->cap)
		ts->n++;
	pthread_mutex_unlock(&ts->lock);
}

static uint64_t delta(uint64_t newer, uint64_t older)
{
	return newer >= older ? newer - older : 0;
}

unsigned timeseries_query(struct timeseries *ts, unsigned range_s, unsigned gran_s,
			  struct ts_point *out, unsigned max)
{
	unsigned nb, written = 0;
	/* Per bucket (plus one older, as the base): newest and oldest sample. */
	int *newest, *oldest;
	unsigned *count;
	const struct ts_sample *last;

	if (!ts || gran_s == 0 || range_s == 0 || max == 0)
		return 0;
	nb = (range_s + gran_s - 1) / gran_s;
	if (nb > max)
		nb = max;
	newest = malloc((nb + 1) * sizeof(*newest));
	oldest = malloc((nb + 1) * sizeof(*oldest));
	count = calloc(nb + 1, sizeof(*count));
	if (!newest || !oldest || !count)
		goto out;
	for (unsigned b = 0; b <= nb; b++)
		newest[b] = oldest[b] = -1;

	pthread_mutex_lock(&ts->lock);
	if (ts->n == 0) {
		pthread_mutex_unlock(&ts->lock);
		goto out;
	}
	last = &ts->ring[(ts->head + ts->cap - 1) % ts->cap];
	for (unsigned k = 0; k < ts->n; k++) {      /* newest to oldest */
		unsigned idx = (ts->head + ts->cap - 1 - k) % ts->cap;
		uint64_t age = delta(last->mono_s, ts->ring[idx].mono_s);
		uint64_t b = age / gran_s;

		if (age >= range_s)
			b = nb;     /* outside the range: only a base for the oldest bucket */
		if (b > nb)
			b = nb;
		if (newest[b] < 0)
			newest[b] = (int)idx;
		else if (b == nb)
			break;      /* one base sample is all we need */
		oldest[b] = (int)idx;
		count[b]++;
	}
	/* Oldest bucket first; base = newest sample of the next older bucket. */
	for (int b = (int)nb - 1; b >= 0; b--) {
		const struct ts_sample *n, *o = NULL;
		struct ts_point *p;

		if (newest[b] < 0)
			continue;
		for (unsigned j = (unsigned)b + 1; j <= nb && !o; j++)
			if (newest[j] >= 0)
				o = &ts->ring[newest[j]];
		if (!o)
			o = &ts->ring[oldest[b]];
		n = &ts->ring[newest[b]];
		p = &out[written++];
		p->wall_ms = n->wall_ms;
		p->samples = count[b];
		p->hits = delta(n->hits, o->hits);
		p->misses = delta(n->misses, o->misses);
		p->sets = delta(n->sets, o->sets);
		p->deletes = delta(n->deletes, o->deletes);
		p->evictions = delta(n->evictions, o->evictions);
		p->expired = delta(n->expired, o->expired);
		p->commands = delta(n->commands, o->commands);
		p->keys = n->keys;
		p->memory = n->memory;
		p->connections = n->connections;
	}
	pthread_mutex_unlock(&ts->lock);
out:
	free(newest);
	free(oldest);
	free(count);
	return written;
}
