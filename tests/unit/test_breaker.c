/*
 * test_breaker.c - circuit breaker: opening on failures and on slow calls,
 * fast refusal while open, half-open probes that close or reopen it; the
 * count window and the time window (one-second buckets) sliding.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <cmocka.h>
#include "hotpath/breaker.h"

static void test_opens_on_failures(void **state)
{
	struct breaker_options o = { .window = 10, .min_calls = 4, .failure_pct = 50,
				     .open_ms = 1000, .probes = 2 };
	struct breaker b;
	struct breaker_stats st;
	uint64_t now = 5000;

	(void)state;
	breaker_init(&b, &o);
	/* successes never open it */
	for (int i = 0; i < 50; i++) {
		assert_true(breaker_allow(&b, now));
		breaker_record(&b, true, 100, now);
	}
	/* 3 failures among the last 10 (3/10 < 50%): still closed */
	for (int i = 0; i < 3; i++) {
		assert_true(breaker_allow(&b, now));
		breaker_record(&b, false, 100, now);
	}
	assert_int_equal(breaker_state(&b, now), BREAKER_CLOSED);
	/* two more: 5/10 -> open */
	breaker_record(&b, false, 100, now);
	breaker_record(&b, false, 100, now);
	assert_int_equal(breaker_state(&b, now), BREAKER_OPEN);
	assert_false(breaker_allow(&b, now + 999));
	/* half-open after open_ms: two probes, the third waits */
	assert_true(breaker_allow(&b, now + 1000));
	assert_int_equal(breaker_state(&b, now + 1000), BREAKER_HALF_OPEN);
	assert_true(breaker_allow(&b, now + 1000));
	assert_false(breaker_allow(&b, now + 1000));
	/* a probe fails: open again for another open_ms */
	breaker_record(&b, false, 100, now + 1001);
	assert_int_equal(breaker_state(&b, now + 1500), BREAKER_OPEN);
	/* then two good probes close it */
	assert_true(breaker_allow(&b, now + 2001));
	breaker_record(&b, true, 100, now + 2001);
	assert_int_equal(breaker_state(&b, now + 2001), BREAKER_HALF_OPEN);
	assert_true(breaker_allow(&b, now + 2002));
	breaker_record(&b, true, 100, now + 2002);
	assert_int_equal(breaker_state(&b, now + 2002), BREAKER_CLOSED);
	breaker_get_stats(&b, now + 2002, &st);
	assert_int_equal(st.opened, 2);
	assert_int_equal(st.closed, 1);
	assert_int_equal(st.rejected, 2);
	/* fresh window: 3 failures of 4 calls open it again */
	breaker_record(&b, true, 100, now + 3000);
	for (int i = 0; i < 3; i++)
		breaker_record(&b, false, 100, now + 3000);
	assert_int_equal(breaker_state(&b, now + 3000), BREAKER_OPEN);
	breaker_destroy(&b);
}

static void test_min_calls_and_slow(void **state)
{
	struct breaker_options o = { .window = 10, .min_calls = 5, .slow_pct = 60,
				     .slow_call_us = 50000, .open_ms = 100 };
	struct breaker b;

	(void)state;
	breaker_init(&b, &o);
	/* 4 failures: below min_calls, stays closed */
	for (int i = 0; i < 4; i++)
		breaker_record(&b, false, 10, 0);
	assert_int_equal(breaker_state(&b, 0), BREAKER_CLOSED);
	breaker_destroy(&b);

	breaker_init(&b, &o);
	/* successful but slow calls: 6 of 10 slow -> open */
	for (int i = 0; i < 4; i++)
		breaker_record(&b, true, 10, 0);
	for (int i = 0; i < 5; i++)
		breaker_record(&b, true, 60000, 0);
	assert_int_equal(breaker_state(&b, 0), BREAKER_CLOSED);   /* 5/9 < 60% */
	breaker_record(&b, true, 60000, 0);
	assert_int_equal(breaker_state(&b, 0), BREAKER_OPEN);      /* 6/10 */
	/* a slow probe reopens */
	assert_true(breaker_allow(&b, 100));
	breaker_record(&b, true, 60000, 100);
	assert_int_equal(breaker_state(&b, 100), BREAKER_OPEN);
	/* trip forces open from closed */
	breaker_destroy(&b);
	breaker_init(&b, &o);
	breaker_trip(&b, 10);
	assert_false(breaker_allow(&b, 50));
	assert_true(breaker_allow(&b, 110));
	assert_string_equal(breaker_state_name(breaker_state(&b, 110)), "half_open");
	breaker_destroy(&b);
}

static void test_window_slides(void **state)
{
	struct breaker_options o = { .window = 4, .min_calls = 4, .failure_pct = 75 };
	struct breaker b;

	(void)state;
	breaker_init(&b, &o);
	/* 1 = success: never 3 failures within the last 4 */
	int seq[] = { 0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0 };

	for (unsigned i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
		breaker_record(&b, seq[i], 10, 0);
		assert_int_equal(breaker_state(&b, 0), BREAKER_CLOSED);
	}
	breaker_record(&b, false, 10, 0);  /* last 4: S F F F */
	assert_int_equal(breaker_state(&b, 0), BREAKER_OPEN);
	breaker_destroy(&b);
	breaker_init(&b, &o);
	for (int i = 0; i < 3; i++)
		breaker_record(&b, false, 10, 0);  /* 3 < min_calls */
	assert_int_equal(breaker_state(&b, 0), BREAKER_CLOSED);
	breaker_record(&b, true, 10, 0);   /* F F F S: 75% */
	assert_int_equal(breaker_state(&b, 0), BREAKER_OPEN);
	breaker_destroy(&b);
}

static struct breaker_options time_opts(void)
{
	struct breaker_options o = { .window_type = BREAKER_WINDOW_TIME, .window = 10,
				     .min_calls = 4, .failure_pct = 50, .slow_pct = 100,
				     .slow_call_us = 1000000, .open_ms = 1000, .probes = 1 };
	return o;
}

static void record_n(struct breaker *b, int n, bool ok, uint64_t now_ms)
{
	for (int i = 0; i < n; i++)
		breaker_record(b, ok, 100, now_ms);
}

static void test_time_window_ages_out(void **state)
{
	struct breaker_options o = time_opts();
	struct breaker b;

	(void)state;
	breaker_init(&b, &o);
	/* three failures at second 100: fewer than min_calls */
	record_n(&b, 3, false, 100000);
	assert_int_equal(breaker_state(&b, 100000), BREAKER_CLOSED);
	/* second 109 is still inside [100, 109]: a fourth failure opens it */
	record_n(&b, 1, false, 109999);
	assert_int_equal(breaker_state(&b, 109999), BREAKER_OPEN);
	breaker_destroy(&b);

	breaker_init(&b, &o);
	record_n(&b, 3, false, 100000);
	/* at second 110 the calls of second 100 have left the window */
	record_n(&b, 1, false, 110000);
	assert_int_equal(breaker_state(&b, 110000), BREAKER_CLOSED);
	assert_int_equal(b.ring_len, 1);
	record_n(&b, 2, false, 115500);
	assert_int_equal(breaker_state(&b, 115500), BREAKER_CLOSED);
	record_n(&b, 1, false, 119999);      /* 110, 115, 115, 119: four in the window */
	assert_int_equal(breaker_state(&b, 119999), BREAKER_OPEN);
	breaker_destroy(&b);

	/* a gap longer than the window empties it, however long */
	breaker_init(&b, &o);
	record_n(&b, 1, false, 200000);
	record_n(&b, 4, true, 205000);          /* 1 of 5: closed */
	assert_int_equal(b.ring_len, 5);
	record_n(&b, 1, false, 9000000);
	assert_int_equal(b.ring_len, 1);
	assert_int_equal(b.nfail, 1);
	assert_int_equal(breaker_state(&b, 9000000), BREAKER_CLOSED);
	breaker_destroy(&b);
}

static void test_time_window_counts_every_call(void **state)
{
	struct breaker_options o = time_opts();
	struct breaker b;

	(void)state;
	breaker_init(&b, &o);
	/* far more calls than BREAKER_WINDOW_MAX within the window all count */
	for (int sec = 0; sec < 10; sec++)
		record_n(&b, 100, true, 50000 + sec * 1000);
	record_n(&b, 999, false, 59000);
	assert_int_equal(b.ring_len, 1999);
	assert_int_equal(breaker_state(&b, 59000), BREAKER_CLOSED);    /* 999 of 1999 */
	record_n(&b, 1, false, 59000);                                  /* 1000 of 2000 */
	assert_int_equal(breaker_state(&b, 59000), BREAKER_OPEN);
	/* half-open after open_ms, one probe closes it with an empty window */
	assert_true(breaker_allow(&b, 60000));
	breaker_record(&b, true, 100, 60000);
	assert_int_equal(breaker_state(&b, 60000), BREAKER_CLOSED);
	assert_int_equal(b.ring_len, 0);
	/* slow calls use the same buckets */
	breaker_destroy(&b);
	o.slow_pct = 50;
	o.slow_call_us = 1000;
	breaker_init(&b, &o);
	for (int i = 0; i < 3; i++)
		breaker_record(&b, true, 5000, 70000 + (uint64_t)i * 2000);
	assert_int_equal(breaker_state(&b, 74000), BREAKER_CLOSED);
	breaker_record(&b, true, 10, 75000);            /* 3 slow of 4: opens */
	assert_int_equal(breaker_state(&b, 75000), BREAKER_OPEN);
	breaker_destroy(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_opens_on_failures),
		cmocka_unit_test(test_min_calls_and_slow),
		cmocka_unit_test(test_window_slides),
		cmocka_unit_test(test_time_window_ages_out),
		cmocka_unit_test(test_time_window_counts_every_call),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
