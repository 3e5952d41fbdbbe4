/*
 * test_hist.c - log2 histogram buckets, merge and quantile estimates.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>
#include "hotpath/hist.h"

static void test_buckets(void **state)
{
	unsigned i;

	(void)state;
	assert_int_equal(hist_bucket(0), 0);
	assert_int_equal(hist_bucket(1), 0);
	assert_int_equal(hist_bucket(2), 1);
	assert_int_equal(hist_bucket(3), 2);
	assert_int_equal(hist_bucket(4), 2);
	assert_int_equal(hist_bucket(5), 3);
	assert_int_equal(hist_bucket(1024), 10);
	assert_int_equal(hist_bucket(1025), 11);
	assert_int_equal(hist_bucket((uint64_t)1 << 31), 31);
	assert_int_equal(hist_bucket(((uint64_t)1 << 31) + 1), 31);   /* clamped */
	assert_int_equal(hist_bucket(UINT64_MAX), 31);
	assert_int_equal(hist_bucket_upper(0), 1);
	assert_int_equal(hist_bucket_upper(10), 1024);
	/* Every bucket's upper bound lands in that bucket, the next value does not. */
	for (i = 0; i < HIST_BUCKETS - 1; i++) {
		assert_int_equal(hist_bucket(hist_bucket_upper(i)), i);
		assert_int_equal(hist_bucket(hist_bucket_upper(i) + 1), i + 1);
	}
}

static void test_record_merge(void **state)
{
	struct hist a, b;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	hist_record(&a, 1);
	hist_record(&a, 3);
	hist_record(&a, 100);
	hist_record(&b, 3);
	assert_int_equal(a.count, 3);
	assert_int_equal(a.sum, 104);
	assert_int_equal(a.buckets[0], 1);
	assert_int_equal(a.buckets[2], 1);
	assert_int_equal(a.buckets[7], 1);
	hist_merge(&b, &a);
	assert_int_equal(b.count, 4);
	assert_int_equal(b.sum, 107);
	assert_int_equal(b.buckets[2], 2);
	assert_int_equal(a.count, 3);
}

static void test_quantiles(void **state)
{
	struct hist h;
	double q;
	int i;

	(void)state;
	memset(&h, 0, sizeof(h));
	assert_true(hist_quantile(&h, 0.5) == 0.0);
	/* 100 values in (512, 1024]: quantiles interpolate inside the bucket. */
	for (i = 0; i < 100; i++)
		hist_record(&h, 600);
	q = hist_quantile(&h, 0.5);
	assert_true(q > 512 && q <= 1024);
	assert_true(hist_quantile(&h, 0.5) < hist_quantile(&h, 0.99));
	assert_true(hist_quantile(&h, 1.0) == 1024.0);
	/* Add 900 small values: p50 falls in the small bucket, p99.9 stays high. */
	for (i = 0; i < 900; i++)
		hist_record(&h, 1);
	assert_true(hist_quantile(&h, 0.5) <= 1.0);
	q = hist_quantile(&h, 0.999);
	assert_true(q > 512 && q <= 1024);
	/* Monotonic in q, and bounded by the estimate error (factor 2). */
	assert_true(hist_quantile(&h, 0.9) <= hist_quantile(&h, 0.95));
	assert_true(hist_quantile(&h, 2.0) == 1024.0);
	assert_true(hist_quantile(&h, -1.0) >= 0.0);
}

static void *recorder(void *arg)
{
	int i;

	for (i = 0; i < 100000; i++)
		hist_record(arg, (uint64_t)(i % 5000));
	return NULL;
}

static void test_threads(void **state)
{
	static struct hist h;
	pthread_t t[4];
	uint64_t total = 0;
	unsigned i;

	(void)state;
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, recorder, &h), 0);
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < HIST_BUCKETS; i++)
		total += h.buckets[i];
	assert_int_equal(h.count, 400000);
	assert_int_equal(total, 400000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buckets),
		cmocka_unit_test(test_record_merge),
		cmocka_unit_test(test_quantiles),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
