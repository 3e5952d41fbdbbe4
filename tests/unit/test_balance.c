/*
 * test_balance.c - backend selection, outlier ejection, slow start, panic
 * and breaker transitions of an upstream group, with a hand-driven clock.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "hotpath/balance.h"

static struct balancer *mk(enum balance_algo algo, unsigned n, const unsigned *weights,
			   struct balance_options *o_in)
{
	struct balance_backend_conf c[8];
	struct balance_options o = { 0 };

	if (o_in)
		o = *o_in;
	o.algo = algo;
	for (unsigned i = 0; i < n; i++) {
		snprintf(c[i].name, sizeof(c[i].name), "10.0.0.%u:80", i + 1);
		c[i].weight = weights ? weights[i] : 1;
	}
	return balance_new(&o, c, n, 42);
}

static void test_smooth_wrr(void **state)
{
	static const unsigned w[] = { 5, 1, 1 };
	struct balancer *b = mk(BAL_ROUND_ROBIN, 3, w, NULL);
	char seq[8] = { 0 };

	(void)state;
	for (int i = 0; i < 7; i++) {
		int p = balance_pick(b, 0, 0, 1000);

		assert_true(p >= 0);
		seq[i] = (char)('a' + p);
		balance_done(b, (unsigned)p, true, 100, 1000, 0);
	}
	/* nginx's smooth sequence for 5:1:1 */
	assert_string_equal(seq, "aabacaa");
	balance_free(b);
}

static void test_least_request_p2c(void **state)
{
	struct balancer *b = mk(BAL_LEAST_REQUEST, 3, NULL, NULL);
	int count[3] = { 0 };

	(void)state;
	/* backend 0 holds 50 requests in flight */
	for (int i = 0; i < 50; i++)
		assert_int_equal(balance_pick_this(b, 0, 1), 0);
	for (int i = 0; i < 300; i++) {
		int p = balance_pick(b, 0, 0, 1);

		count[p]++;
		balance_done(b, (unsigned)p, true, 10, 1, 0);
	}
	/* power of two choices: 0 loses every pair it is drawn in */
	assert_int_equal(count[0], 0);
	assert_true(count[1] > 100 && count[2] > 100);
	balance_free(b);
}

static void test_ewma_avoids_slow(void **state)
{
	struct balancer *b = mk(BAL_EWMA, 3, NULL, NULL);
	int count[3] = { 0 };
	uint64_t now = 1000;

	(void)state;
	for (int i = 0; i < 600; i++, now++) {
		int p = balance_pick(b, 0, 0, now);

		count[p]++;
		balance_done(b, (unsigned)p, true, p == 2 ? 100000 : 1000, now, 0);
	}
	assert_true(count[2] < 60);
	balance_free(b);
}

static void test_hash_ring_consistency(void **state)
{
	struct balance_options o = { .panic_pct = 1, .eject_consecutive = 1, .eject_max_pct = 100 };
	struct balancer *b = mk(BAL_HASH, 4, NULL, &o);
	int before[1000], moved = 0, moved_other = 0;

	(void)state;
	for (int k = 0; k < 1000; k++) {
		char key[32];
		int l = snprintf(key, sizeof(key), "/item/%d", k);

		before[k] = balance_pick(b, balance_hash(key, (size_t)l), 0, 1);
		assert_true(before[k] >= 0);
		balance_done(b, (unsigned)before[k], true, 10, 1, 0);
		assert_int_equal(balance_pick(b, balance_hash(key, (size_t)l), 0, 1), before[k]);
		balance_done(b, (unsigned)before[k], true, 10, 1, 0);
	}
	/* eject backend 1: only its keys move */
	balance_done(b, 1, false, 10, 2, 0);
	for (int k = 0; k < 1000; k++) {
		char key[32];
		int l = snprintf(key, sizeof(key), "/item/%d", k);
		int p = balance_pick(b, balance_hash(key, (size_t)l), 0, 3);

		assert_true(p >= 0 && p != 1);
		balance_done(b, (unsigned)p, true, 10, 3, 0);
		if (p != before[k]) {
			moved++;
			if (before[k] != 1)
				moved_other++;
		}
	}
	assert_int_equal(moved_other, 0);
	assert_true(moved > 150 && moved < 350);   /* about a quarter */
	balance_free(b);
}

static void test_ejection_grows_and_caps(void **state)
{
	struct balance_options o = { .eject_consecutive = 3, .eject_base_ms = 1000,
				     .eject_max_pct = 50, .panic_pct = 1 };
	struct balancer *b = mk(BAL_ROUND_ROBIN, 4, NULL, &o);
	struct balance_backend_stats st;

	(void)state;
	for (int i = 0; i < 3; i++)
		balance_done(b, 0, false, 10, 100, 0);
	balance_get_stats(b, 0, 100, &st);
	assert_true(st.ejected);
	assert_int_equal(st.ejected_until_ms, 1100);
	for (int i = 0; i < 50; i++) {
		int p = balance_pick(b, 0, 0, 500);

		assert_int_not_equal(p, 0);
		balance_done(b, (unsigned)p, true, 10, 500, 0);
	}
	/* back after 1 s, second ejection lasts 2 s */
	balance_get_stats(b, 0, 1100, &st);
	assert_false(st.ejected);
	for (int i = 0; i < 3; i++)
		balance_done(b, 0, false, 10, 1200, 0);
	balance_get_stats(b, 0, 1200, &st);
	assert_int_equal(st.ejected_until_ms, 3200);
	/* cap: 50% of 4 = 2 ejected at most */
	for (int i = 0; i < 3; i++)
		balance_done(b, 1, false, 10, 1200, 0);
	for (int i = 0; i < 3; i++)
		balance_done(b, 2, false, 10, 1200, 0);
	balance_get_stats(b, 1, 1200, &st);
	assert_true(st.ejected);
	balance_get_stats(b, 2, 1200, &st);
	assert_false(st.ejected);
	balance_free(b);
}

static void test_slow_start_and_panic(void **state)
{
	struct balance_options o = { .slow_start_ms = 10000, .health_fall = 1, .health_rise = 1,
				     .panic_pct = 50 };
	struct balancer *b = mk(BAL_ROUND_ROBIN, 2, NULL, &o);
	struct balance_backend_stats st;
	int count[2] = { 0 };

	(void)state;
	balance_health(b, 1, false, 1000, 0);
	/* one of two down = 50% available: not below the threshold */
	assert_false(balance_in_panic(b, 1000));
	for (int i = 0; i < 10; i++) {
		int p = balance_pick(b, 0, 0, 1000);

		assert_int_equal(p, 0);
		balance_done(b, 0, true, 10, 1000, 0);
	}
	balance_health(b, 1, true, 2000, 0);
	assert_int_equal(balance_pick(b, 0, 0, 2000) >= 0, 1);   /* marks it available */
	balance_get_stats(b, 1, 2000, &st);
	assert_true(st.effective_weight < 0.2);
	for (int i = 0; i < 1000; i++) {
		int p = balance_pick(b, 0, 0, 2001);

		count[p]++;
		balance_done(b, (unsigned)p, true, 10, 2001, 0);
	}
	assert_true(count[1] < 150);   /* about 10% while ramping */
	balance_get_stats(b, 1, 12500, &st);
	assert_true(st.effective_weight > 0.99);
	/* both down: panic, picks still succeed */
	balance_health(b, 0, false, 13000, 0);
	balance_health(b, 1, false, 13000, 0);
	assert_true(balance_in_panic(b, 13000));
	assert_true(balance_pick(b, 0, 0, 13000) >= 0);
	balance_free(b);
}

static void test_breaker_transitions(void **state)
{
	struct balance_options o = { .eject_consecutive = 1000, .panic_pct = 1,
				     .breaker = { .window = 10, .min_calls = 4, .failure_pct = 50,
						  .open_ms = 1000, .probes = 1 } };
	struct balancer *b = mk(BAL_ROUND_ROBIN, 2, NULL, &o);
	struct balance_transition tr[8];
	unsigned n;

	(void)state;
	for (int i = 0; i < 4; i++) {
		assert_int_equal(balance_pick_this(b, 0, 100), 0);
		balance_done(b, 0, false, 10, 100, 5);
	}
	/* open: picks go to 1 only */
	for (int i = 0; i < 5; i++) {
		int p = balance_pick(b, 0, 0, 200);

		assert_int_equal(p, 1);
		balance_done(b, 1, true, 10, 200, 0);
	}
	/* after open_ms one probe; success closes */
	assert_int_equal(balance_pick_this(b, 0, 1200), 0);
	balance_done(b, 0, true, 10, 1200, 7);
	n = balance_transitions(b, tr, 8);
	assert_true(n >= 2);
	assert_string_equal(tr[0].what, "breaker");
	assert_string_equal(tr[0].from, "closed");
	assert_string_equal(tr[0].to, "open");
	assert_string_equal(tr[n - 1].to, "closed");
	balance_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_smooth_wrr),
		cmocka_unit_test(test_least_request_p2c),
		cmocka_unit_test(test_ewma_avoids_slow),
		cmocka_unit_test(test_hash_ring_consistency),
		cmocka_unit_test(test_ejection_grows_and_caps),
		cmocka_unit_test(test_slow_start_and_panic),
		cmocka_unit_test(test_breaker_transitions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
