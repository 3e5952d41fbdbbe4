/*
 * hist.h - log2 latency histograms.
 *
 * Bucket i counts values v (microseconds) with 2^(i-1) < v <= 2^i
 * (bucket 0: v <= 1). 32 buckets cover up to ~35 minutes. Recording is one
 * relaxed atomic increment, so a histogram may be shared by threads;
 * snapshots are merged for reporting. Quantiles are interpolated inside the
 * bucket, so they are estimates with at most a factor-2 bucket error, the
 * standard trade-off of HdrHistogram-lite designs (and what the kernel side
 * can keep in a BPF map).
 */
#ifndef HOTPATH_HIST_H
#define HOTPATH_HIST_H

#include <stdint.h>

#define HIST_BUCKETS 32

struct hist {
	uint64_t buckets[HIST_BUCKETS];
	uint64_t count;
	uint64_t sum;       /* same unit as the recorded values */
};

/* Index of the bucket for v. */
unsigned hist_bucket(uint64_t v);
/* Upper bound (inclusive) of bucket i. */
uint64_t hist_bucket_upper(unsigned i);
/* Record one value (thread-safe, relaxed atomics). */
void hist_record(struct hist *h, uint64_t v);
/* Record one value into a histogram only this thread writes (per-worker
 * arrays): no locked instructions, readers still see whole values. */
void hist_record_local(struct hist *h, uint64_t v);
/* dst += src (src read with relaxed atomics). */
void hist_merge(struct hist *dst, const struct hist *src);
/* Estimated q-quantile (0 < q <= 1); 0 for an empty histogram. */
double hist_quantile(const struct hist *h, double q);

#endif
