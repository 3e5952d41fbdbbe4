/*
 * test_admit.c - priority rules of the HTTP proxy's admission control:
 * parsing (with the messages a bad rule gets) and classification of real
 * parsed requests by target glob and by header value; the gradient limit
 * driven with made-up latencies.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "hotpath/admit.h"

static enum admit_class classify(const struct admit_rules *r, const char *head)
{
	struct http_limits lim;
	struct http_msg m;

	http_limits_default(&lim);
	assert_int_equal(http_parse_head(head, strlen(head), true, HTTP_M_OTHER, &lim, &m),
			 HTTP_PARSE_OK);
	return admit_classify(r, &m);
}

static void test_rules_classify(void **state)
{
	struct admit_rules r = { 0 };
	const char *why = NULL;

	(void)state;
	assert_int_equal(admit_rules_add(&r, ADMIT_HIGH, " /checkout/* , header:X-Priority=high",
					 &why), 0);
	assert_int_equal(admit_rules_add(&r, ADMIT_LOW, "/reports/*,/img/*.png?*,"
					 "header:User-Agent=*bot*", &why), 0);
	assert_int_equal(r.n, 5);
	assert_string_equal(r.r[0].glob, "/checkout/*");
	assert_true(r.r[1].header);
	assert_string_equal(r.r[1].name, "X-Priority");
	assert_string_equal(r.r[1].glob, "high");
	assert_int_equal(classify(&r, "GET /checkout/pay HTTP/1.1\r\nHost: a\r\n\r\n"), ADMIT_HIGH);
	assert_int_equal(classify(&r, "GET /reports/q1 HTTP/1.1\r\nHost: a\r\n\r\n"), ADMIT_LOW);
	assert_int_equal(classify(&r, "GET /img/a.png?v=1 HTTP/1.1\r\nHost: a\r\n\r\n"), ADMIT_LOW);
	assert_int_equal(classify(&r, "GET /img/a.png HTTP/1.1\r\nHost: a\r\n\r\n"), ADMIT_NORMAL);
	assert_int_equal(classify(&r, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"), ADMIT_NORMAL);
	/* header rules: the field name is case-insensitive, the value glob is not */
	assert_int_equal(classify(&r, "GET /reports/x HTTP/1.1\r\nHost: a\r\nx-priority: high\r\n\r\n"),
			 ADMIT_HIGH);     /* high rules win over low ones */
	assert_int_equal(classify(&r, "GET / HTTP/1.1\r\nHost: a\r\nX-Priority: HIGH\r\n\r\n"),
			 ADMIT_NORMAL);
	assert_int_equal(classify(&r, "GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: googlebot/2\r\n\r\n"),
			 ADMIT_LOW);
	assert_string_equal(admit_class_name(ADMIT_LOW), "low");
	assert_string_equal(admit_class_name(ADMIT_HIGH), "high");
	/* no rules: everything is normal */
	memset(&r, 0, sizeof(r));
	assert_int_equal(admit_rules_add(&r, ADMIT_HIGH, "", &why), 0);
	assert_int_equal(classify(&r, "GET /checkout/pay HTTP/1.1\r\nHost: a\r\n\r\n"), ADMIT_NORMAL);
}

static void test_bad_rules(void **state)
{
	static const struct { const char *list, *why; } bad[] = {
		{ "header:X-P", "a header rule is header:NAME=GLOB" },
		{ "header:=x", "bad header name in a priority rule" },
		{ "header:X=", "empty priority rule glob" },
	};
	struct admit_rules r;
	const char *why = NULL;
	char big[400];

	(void)state;
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&r, 0, sizeof(r));
		assert_int_equal(admit_rules_add(&r, ADMIT_LOW, bad[i].list, &why), -EINVAL);
		assert_string_equal(why, bad[i].why);
	}
	memset(big, 'a', sizeof(big) - 1);
	big[0] = '/';
	big[sizeof(big) - 1] = '\0';
	memset(&r, 0, sizeof(r));
	assert_int_equal(admit_rules_add(&r, ADMIT_LOW, big, &why), -EINVAL);
	assert_string_equal(why, "priority rule glob too long");
	memset(&r, 0, sizeof(r));
	for (unsigned i = 0; i < ADMIT_MAX_RULES; i++)
		assert_int_equal(admit_rules_add(&r, ADMIT_LOW, "/x", &why), 0);
	assert_int_equal(admit_rules_add(&r, ADMIT_LOW, "/y", &why), -EINVAL);
	assert_string_equal(why, "too many priority rules (at most 32)");
}

static void test_gradient_follows_latency(void **state)
{
	struct gradient g;
	unsigned l = 0;

	(void)state;
	gradient_init(&g, 20, 1, 200);
	assert_int_equal((unsigned)g.limit, 20);
	/* steady 1 ms with the limit in use: it grows (queue allowance) up to the cap */
	for (int i = 0; i < 2000; i++)
		l = gradient_update(&g, 1000, (unsigned)g.limit);
	assert_int_equal(l, 200);
	/* the backends slow down 10x: the limit falls well below the cap */
	for (int i = 0; i < 60; i++)
		l = gradient_update(&g, 10000, (unsigned)g.limit);
	assert_true(l < 60);
	assert_true(l >= 1);
	/* and back to normal: it recovers */
	for (int i = 0; i < 3000; i++)
		l = gradient_update(&g, 1000, (unsigned)g.limit);
	assert_true(l > 150);
	/* little in flight: steady latency does not grow the limit ... */
	gradient_init(&g, 50, 1, 100);
	for (int i = 0; i < 100; i++)
		l = gradient_update(&g, 1000, 3);
	assert_int_equal(l, 50);
	/* ... but rising latency still shrinks it */
	for (int i = 0; i < 100; i++)
		l = gradient_update(&g, 50000, 3);
	assert_true(l < 25);
	/* bounds */
	gradient_init(&g, 500, 4, 10);
	assert_int_equal((unsigned)g.limit, 10);
	for (int i = 0; i < 500; i++)
		l = gradient_update(&g, 1000 + (uint64_t)i * 1000, 10);
	assert_true(l >= 4 && l <= 10);
	assert_int_equal(gradient_update(&g, 0, 10) >= 4, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules_classify),
		cmocka_unit_test(test_bad_rules),
		cmocka_unit_test(test_gradient_follows_latency),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
