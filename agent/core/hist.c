/*
 * hist.c - log2 latency histograms (see include/hotpath/hist.h).
 *
 * What: a fixed array of 32 counters where bucket i holds values in
 * (2^(i-1), 2^i]; values past the last bound are clamped into it. How:
 * the bucket index is a count-leading-zeros of v-1, recording is three
 * relaxed atomic adds (bucket, count, sum), so worker threads may share one
 * histogram or keep their own and merge them for reports. Quantiles walk
 * the cumulative counts and interpolate linearly inside the bucket that
 * holds the rank.
 *
 * What not: no exact percentiles, no allocation, no locking, and no
 * consistency between the fields of a histogram read while it is being
 * written (a report may see a count one ahead of a bucket; harmless for
 * monitoring). The layout is that of the BPF-side histograms, which is why
 * this is a dozen lines rather than HdrHistogram.
 */
#include <stdint.h>
#include "hotpath/hist.h"

unsigned hist_bucket(uint64_t v)
{
	unsigned i;

	if (v <= 1)
		return 0;
	i = 64u - (unsigned)__builtin_clzll(v - 1);   /* ceil(log2(v)) */
	return i < HIST_BUCKETS ? i : HIST_BUCKETS - 1;
}

uint64_t hist_bucket_upper(unsigned i)
{
	if (i >= 64)
		return UINT64_MAX;
	return (uint64_t)1 << i;
}

void hist_record(struct hist *h, uint64_t v)
{
	__atomic_fetch_add(&h->buckets[hist_bucket(v)], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&h->count, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&h->sum, v, __ATOMIC_RELAXED);
}

void hist_record_local(struct hist *h, uint64_t v)
{
	uint64_t *b = &h->buckets[hist_bucket(v)];

	__atomic_store_n(b, __atomic_load_n(b, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
	__atomic_store_n(&h->count, __atomic_load_n(&h->count, __ATOMIC_RELAXED) + 1,
			 __ATOMIC_RELAXED);
	__atomic_store_n(&h->sum, __atomic_load_n(&h->sum, __ATOMIC_RELAXED) + v,
			 __ATOMIC_RELAXED);
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	unsigned i;

	for (i = 0; i < HIST_BUCKETS; i++)
		dst->buckets[i] += __atomic_load_n(&src->buckets[i], __ATOMIC_RELAXED);
	dst->count += __atomic_load_n(&src->count, __ATOMIC_RELAXED);
	dst->sum += __atomic_load_n(&src->sum, __ATOMIC_RELAXED);
}

double hist_quantile(const struct hist *h, double q)
{
	uint64_t snap[HIST_BUCKETS], total = 0, cum = 0;
	double rank, lo, hi;
	unsigned i;

	/* Use the buckets' own total, not h->count, so a concurrent writer
	 * cannot make the rank point past the last non-empty bucket. */
	for (i = 0; i < HIST_BUCKETS; i++) {
		snap[i] = __atomic_load_n(&h->buckets[i], __ATOMIC_RELAXED);
		total += snap[i];
	}
	if (total == 0)
		return 0.0;
	if (!(q > 0.0))
		q = 0.0;
	if (q > 1.0)
		q = 1.0;
	rank = q * (double)total;
	for (i = 0; i < HIST_BUCKETS; i++) {
		if (snap[i] == 0)
			continue;
		if ((double)(cum + snap[i]) >= rank) {
			lo = i == 0 ? 0.0 : (double)hist_bucket_upper(i - 1);
			hi = (double)hist_bucket_upper(i);
			return lo + (hi - lo) * ((rank - (double)cum) / (double)snap[i]);
		}
		cum += snap[i];
	}
	return (double)hist_bucket_upper(HIST_BUCKETS - 1);
}
