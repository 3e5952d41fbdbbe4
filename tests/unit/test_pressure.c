/* test_pressure.c - the L1 budget decision under memory pressure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "hotpath/pressure.h"

static void test_shrinks_and_recovers(void **state)
{
	struct pressure_sample hi = { .have_psi = true, .some_avg10 = 35.0 };
	struct pressure_sample mid = { .have_psi = true, .some_avg10 = 5.0 };
	struct pressure_sample lo = { .have_psi = true, .some_avg10 = 0.0 };
	unsigned p = 1000;

	(void)state;
	p = pressure_next_permille(p, &hi);
	assert_int_equal(p, 900);
	for (int i = 0; i < 10; i++)
		p = pressure_next_permille(p, &hi);
	assert_int_equal(p, PRESSURE_MIN_PERMILLE);   /* never below the floor */
	assert_int_equal(pressure_next_permille(p, &mid), p); /* hysteresis: hold */
	p = pressure_next_permille(p, &lo);
	assert_int_equal(p, 550);
	for (int i = 0; i < 20; i++)
		p = pressure_next_permille(p, &lo);
	assert_int_equal(p, 1000);
}

static void test_cgroup(void **state)
{
	struct pressure_sample full = { .have_cgroup = true, .cg_current = 95, .cg_max = 100 };
	struct pressure_sample some = { .have_cgroup = true, .cg_current = 85, .cg_max = 100 };
	struct pressure_sample none = { 0 };

	(void)state;
	assert_int_equal(pressure_next_permille(1000, &full), 900);
	assert_int_equal(pressure_next_permille(900, &some), 900);
	/* no information at all: recover toward the full budget */
	assert_int_equal(pressure_next_permille(900, &none), 950);
	/* either signal alone is enough to shrink */
	full.have_psi = true;
	full.some_avg10 = 0.0;
	assert_int_equal(pressure_next_permille(1000, &full), 900);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shrinks_and_recovers),
		cmocka_unit_test(test_cgroup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
