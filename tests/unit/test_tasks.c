/*
 * test_tasks.c - the async task processor: backoff with jitter, the CoDel
 * decision, and a live processor (completion, retries into dead letters,
 * push-back on a full queue, priorities, shedding of optional work).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <stdatomic.h>
#include <unistd.h>
#include <cmocka.h>
#include "hotpath/tasks.h"

static void test_backoff(void **state)
{
	(void)state;
	/* attempt 1: base 100 -> 50..100 */
	assert_int_equal(tasks_backoff_ms(1, 100, 30000, 0), 50);
	assert_int_equal(tasks_backoff_ms(1, 100, 30000, 50), 100);
	assert_int_equal(tasks_backoff_ms(1, 100, 30000, 51), 50);
	/* doubling: attempt 4 -> 800 -> 400..800 */
	assert_int_equal(tasks_backoff_ms(4, 100, 30000, 0), 400);
	assert_int_equal(tasks_backoff_ms(4, 100, 30000, 400), 800);
	/* capped */
	assert_int_equal(tasks_backoff_ms(30, 100, 1000, 0), 500);
	assert_int_equal(tasks_backoff_ms(200, 100, 1000, 500), 1000);
	/* never 0 with a base, within bounds for any rnd */
	for (uint64_t r = 0; r < 5000; r += 7) {
		uint64_t d = tasks_backoff_ms(3, 10, 1000, r * 2654435761u);

		assert_true(d >= 20 && d <= 40);
	}
	assert_int_equal(tasks_backoff_ms(0, 1, 10, 0), 1);
}

static void test_codel(void **state)
{
	struct codel c = { 0 };
	uint64_t now = 1000000, target = 5000, interval = 100000;
	unsigned drops = 0;

	(void)state;
	/* below target: never drop */
	for (int i = 0; i < 100; i++, now += 10000)
		assert_false(codel_should_drop(&c, 1000, now, target, interval));
	/* above target: no drop until a whole interval has passed */
	assert_false(codel_should_drop(&c, 20000, now, target, interval));
	now += interval / 2;
	assert_false(codel_should_drop(&c, 20000, now, target, interval));
	now += interval / 2;
	assert_true(codel_should_drop(&c, 20000, now, target, interval));
	assert_true(c.dropping);
	/* while dropping, drops come faster and faster */
	for (int i = 0; i < 100; i++) {
		now += 10000;
		drops += codel_should_drop(&c, 20000, now, target, interval);
	}
	assert_true(drops >= 8);       /* 1 s of overload: sqrt law gives ~10+ */
	/* one good sojourn ends the dropping state */
	assert_false(codel_should_drop(&c, 100, now + 1, target, interval));
	assert_false(c.dropping);
	assert_int_equal(c.first_above_us, 0);
}

static atomic_int ran, freed;

static int ok_fn(void *arg, char *err, size_t n)
{
	(void)arg; (void)err; (void)n;
	atomic_fetch_add(&ran, 1);
	return 0;
}

static int fail_fn(void *arg, char *err, size_t n)
{
	(void)arg;
	atomic_fetch_add(&ran, 1);
	snprintf(err, n, "origin down");
	return -EIO;
}

static int fatal_fn(void *arg, char *err, size_t n)
{
	(void)arg;
	atomic_fetch_add(&ran, 1);
	snprintf(err, n, "bad row");
	return -ECANCELED;
}

static void free_fn(void *arg)
{
	(void)arg;
	atomic_fetch_add(&freed, 1);
}

static void test_run_retry_dead(void **state)
{
	struct tasks_options o = { .workers = 2, .backoff_base_ms = 2, .backoff_max_ms = 10,
				   .max_attempts = 3 };
	struct tasks *t = tasks_new(&o);
	struct task_spec s = { .kind = "ok", .run = ok_fn, .free = free_fn };
	struct tasks_stats st;
	struct tasks_dead dl[4];

	(void)state;
	atomic_store(&ran, 0);
	atomic_store(&freed, 0);
	assert_non_null(t);
	for (int i = 0; i < 10; i++)
		assert_int_equal(tasks_submit(t, &s), 0);
	s.kind = "flaky";
	s.run = fail_fn;
	snprintf(s.label, sizeof(s.label), "user:42");
	assert_int_equal(tasks_submit(t, &s), 0);
	s.kind = "fatal";
	s.run = fatal_fn;
	assert_int_equal(tasks_submit(t, &s), 0);
	assert_int_equal(tasks_drain(t, 5000), 0);
	tasks_get_stats(t, &st);
	assert_int_equal(st.completed, 10);
	assert_int_equal(st.failed_attempts, 4);       /* 3 + 1 */
	assert_int_equal(st.retried, 2);
	assert_int_equal(st.dead, 2);
	assert_int_equal(atomic_load(&ran), 14);
	assert_int_equal(atomic_load(&freed), 12);
	assert_int_equal(tasks_dead_list(t, dl, 4), 2);
	/* newest first: the fatal one died at once, the flaky one after retries */
	assert_string_equal(dl[1].kind, "fatal");
	assert_int_equal(dl[1].attempts, 1);
	assert_string_equal(dl[1].error, "bad row");
	assert_string_equal(dl[0].kind, "flaky");
	assert_string_equal(dl[0].label, "user:42");
	assert_string_equal(dl[0].error, "origin down");
	assert_int_equal(dl[0].attempts, 3);
	assert_int_equal(tasks_dead_clear(t), 2);
	assert_int_equal(tasks_dead_list(t, dl, 4), 0);
	tasks_free(t);
}

static atomic_int gate;

static int slow_fn(void *arg, char *err, size_t n)
{
	(void)arg; (void)err; (void)n;
	while (!atomic_load(&gate))
		usleep(1000);
	atomic_fetch_add(&ran, 1);
	return 0;
}

static int order[16];
static atomic_int norder;

static int record_fn(void *arg, char *err, size_t n)
{
	(void)err; (void)n;
	order[atomic_fetch_add(&norder, 1)] = (int)(intptr_t)arg;
	return 0;
}

static void test_pushback_and_priority(void **state)
{
	struct tasks_options o = { .workers = 1, .queue_max = 4 };
	struct tasks *t = tasks_new(&o);
	struct task_spec slow = { .kind = "slow", .run = slow_fn, .free = free_fn };
	struct task_spec rec = { .kind = "rec", .run = record_fn };
	struct tasks_stats st;

	(void)state;
	atomic_store(&ran, 0);
	atomic_store(&freed, 0);
	atomic_store(&gate, 0);
	atomic_store(&norder, 0);
	assert_non_null(t);
	assert_int_equal(tasks_submit(t, &slow), 0);   /* occupies the worker */
	usleep(20000);
	rec.prio = TASK_PRIO_LOW; rec.arg = (void *)3;
	assert_int_equal(tasks_submit(t, &rec), 0);
	rec.prio = TASK_PRIO_NORMAL; rec.arg = (void *)2;
	assert_int_equal(tasks_submit(t, &rec), 0);
	rec.prio = TASK_PRIO_HIGH; rec.arg = (void *)1;
	assert_int_equal(tasks_submit(t, &rec), 0);
	/* 4 held: full, push back */
	assert_int_equal(tasks_submit(t, &rec), -EAGAIN);
	assert_int_equal(tasks_submit_wait(t, &rec, 30), -EAGAIN);
	tasks_get_stats(t, &st);
	assert_int_equal(st.rejected, 2);
	assert_int_equal(st.depth[TASK_PRIO_HIGH], 1);
	assert_int_equal(st.running, 1);
	atomic_store(&gate, 1);
	assert_int_equal(tasks_drain(t, 5000), 0);
	assert_int_equal(atomic_load(&norder), 3);
	assert_int_equal(order[0], 1);
	assert_int_equal(order[1], 2);
	assert_int_equal(order[2], 3);
	/* bad specs */
	rec.prio = 7;
	assert_int_equal(tasks_submit(t, &rec), -EINVAL);
	tasks_free(t);
}

static void test_shed(void **state)
{
	/* 1 worker, each task takes 2 ms, target 1 ms: sojourn climbs */
	struct tasks_options o = { .workers = 1, .queue_max = 400, .codel_target_us = 1000,
				   .codel_interval_us = 20000 };
	struct tasks *t = tasks_new(&o);
	struct task_spec s = { .kind = "refresh", .run = slow_fn, .free = free_fn,
			       .sheddable = true };
	struct tasks_stats st;
	int accepted = 0;

	(void)state;
	atomic_store(&gate, 1);
	atomic_store(&freed, 0);
	assert_non_null(t);
	for (int i = 0; i < 300; i++) {
		if (tasks_submit(t, &s) == 0)
			accepted++;
		if (i % 50 == 0)
			usleep(5000);
	}
	assert_int_equal(tasks_drain(t, 10000), 0);
	tasks_get_stats(t, &st);
	/* everything accepted was either run or shed, and freed */
	assert_int_equal(st.completed + st.shed, (uint64_t)accepted);
	assert_int_equal(atomic_load(&freed), accepted);
	tasks_free(t);
}

static int slow2_fn(void *arg, char *err, size_t n)
{
	(void)arg; (void)err; (void)n;
	usleep(2000);
	return 0;
}

static void test_shed_under_overload(void **state)
{
	struct tasks_options o = { .workers = 1, .queue_max = 1000, .codel_target_us = 1000,
				   .codel_interval_us = 10000 };
	struct tasks *t = tasks_new(&o);
	struct task_spec s = { .kind = "refresh", .run = slow2_fn, .sheddable = true };
	struct task_spec must = { .kind = "write-behind", .run = slow2_fn };
	struct tasks_stats st;
	int continue_count = 0;

	(void)state;
	assert_non_null(t);
	for (int i = 0; i < 200; i++) {
		if (tasks_submit(t, &s) != 0)
			continue_count++;
		assert_int_equal(tasks_submit(t, &must), 0);
	}
	assert_int_equal(tasks_drain(t, 20000), 0);
	tasks_get_stats(t, &st);
	assert_true(st.shed + (uint64_t)continue_count > 0);
	assert_int_equal(st.rejected, (uint64_t)continue_count);
	/* what must not be lost was not */
	for (unsigned i = 0; i < st.n_kinds; i++)
		if (strcmp(st.kinds[i].kind, "write-behind") == 0) {
			assert_int_equal(st.kinds[i].completed, 200);
			assert_int_equal(st.kinds[i].shed, 0);
		}
	tasks_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_codel),
		cmocka_unit_test(test_run_retry_dead),
		cmocka_unit_test(test_pushback_and_priority),
		cmocka_unit_test(test_shed),
		cmocka_unit_test(test_shed_under_overload),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
