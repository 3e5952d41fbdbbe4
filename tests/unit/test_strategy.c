/*
 * test_strategy.c - the pure parts of cache strategies and warm restarts:
 * glob captures (agent/cache/strategy.c), strategy selection, loader URL
 * templates and URL parsing (agent/cache/loader.c), and the snapshot file
 * format (agent/cache/snapshot.c): round trip, bounds, corruption.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "hotpath/loader.h"
#include "hotpath/snapshot.h"
#include "hotpath/strategy.h"

static void cap_is(const char *key, const struct strat_capture *c, const char *want)
{
	assert_int_equal(c->len, strlen(want));
	assert_memory_equal(key + c->off, want, c->len);
}

static void test_captures(void **state)
{
	struct strat_capture c[STRAT_MAX_CAPTURES];
	const char *k;

	(void)state;
	k = "user:42";
	assert_int_equal(strat_capture("user:*", 6, k, strlen(k), c), 1);
	cap_is(k, &c[0], "42");
	k = "user:42:profile";
	assert_int_equal(strat_capture("user:*:profile", 14, k, strlen(k), c), 1);
	cap_is(k, &c[0], "42");
	k = "t:a:b:c";
	assert_int_equal(strat_capture("t:*:*", 5, k, strlen(k), c), 2);
	cap_is(k, &c[0], "a");           /* the first star takes the least */
	cap_is(k, &c[1], "b:c");
	k = "ab9";
	assert_int_equal(strat_capture("a?[0-9]", 7, k, 3, c), 1);
	cap_is(k, &c[0], "b");
	k = "x*y";
	assert_int_equal(strat_capture("x\\*y", 4, k, 3, c), 0);   /* escaped: no capture */
	assert_int_equal(strat_capture("user:*", 6, "usr:1", 5, c), -1);
	assert_int_equal(strat_capture("user:*", 6, "user:", 5, c), 1);
	assert_int_equal(c[0].len, 0);
	/* backtracking rewrites captures after the last star */
	k = "a1b2b3";
	assert_int_equal(strat_capture("a*b?", 4, k, 6, c), 2);
	cap_is(k, &c[0], "1b2");
	cap_is(k, &c[1], "3");
	assert_int_equal(strat_capture("*:*:*:*:*:*:*:*:*", 17, "a", 1, c), -E2BIG);
	assert_int_equal(strat_pattern_captures("a*[?]\\?b?", 9), 2);
}

static void test_select(void **state)
{
	const char *pats[] = { "user:*:profile", "user:*", "*" };
	struct strat_capture c[STRAT_MAX_CAPTURES];
	int n;

	(void)state;
	assert_int_equal(strat_select(pats, 3, "user:1:profile", 14, c, &n), 0);
	assert_int_equal(strat_select(pats, 3, "user:1", 6, c, &n), 1);
	assert_int_equal(n, 1);
	assert_int_equal(strat_select(pats, 3, "zzz", 3, c, &n), 2);
	assert_int_equal(strat_select(pats, 2, "zzz", 3, c, &n), -1);
}

static void test_url(void **state)
{
	struct strat_capture c[STRAT_MAX_CAPTURES];
	const char *k = "item:a b/é";
	char out[128], host[64], path[128];
	uint16_t port;

	(void)state;
	assert_int_equal(strat_capture("item:*", 6, k, strlen(k), c), 1);
	assert_int_equal(strat_expand_url("/items/{1}?x={{", k, c, 1, out, sizeof(out)), 0);
	assert_string_equal(out, "/items/a%20b%2F%C3%A9?x={");
	assert_int_equal(strat_expand_url("/{2}", k, c, 1, out, sizeof(out)), -EINVAL);
	assert_int_equal(strat_expand_url("/{x}", k, c, 1, out, sizeof(out)), -EINVAL);
	assert_int_equal(strat_expand_url("/items/{1}", k, c, 1, out, 8), -E2BIG);

	assert_int_equal(loader_parse_url("http://127.0.0.1:8080/a/{1}", host, sizeof(host), &port,
					  path, sizeof(path)), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 8080);
	assert_string_equal(path, "/a/{1}");
	assert_int_equal(loader_parse_url("http://[::1]", host, sizeof(host), &port, path,
					  sizeof(path)), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 80);
	assert_string_equal(path, "/");
	assert_int_equal(loader_parse_url("https://x/", host, sizeof(host), &port, path,
					  sizeof(path)), -EINVAL);
	assert_int_equal(loader_parse_url("http://x:0/", host, sizeof(host), &port, path,
					  sizeof(path)), -EINVAL);
	assert_int_equal(loader_parse_url("http://x/a b", host, sizeof(host), &port, path,
					  sizeof(path)), -EINVAL);
}

struct seen {
	unsigned n;
	char keys[4][16];
	uint64_t exp[4];
};

static int collect(const char *key, size_t klen, const char *val, size_t vlen, uint64_t exp,
		   void *arg)
{
	struct seen *s = arg;

	(void)val;
	(void)vlen;
	memcpy(s->keys[s->n], key, klen);
	s->keys[s->n][klen] = '\0';
	s->exp[s->n++] = exp;
	return 0;
}

static void test_snapshot_format(void **state)
{
	struct snapshot_limits lim = { .max_bytes = 4096, .max_keys = 10, .max_klen = 16,
				       .max_vlen = 100 };
	struct seen s = { 0 };
	struct buf b;
	char err[256], *copy;
	uint32_t count;
	uint64_t saved;

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(snapshot_begin(&b, 1234), 0);
	assert_int_equal(snapshot_add(&b, "k1", 2, "v1", 2, 0), 0);
	assert_int_equal(snapshot_add(&b, "k2", 2, "", 0, 99), 0);
	assert_int_equal(snapshot_end(&b, 2), 0);
	assert_int_equal(snapshot_parse(buf_head(&b), buf_used(&b), &lim, collect, &s, &saved,
					&count, err, sizeof(err)), 0);
	assert_int_equal(count, 2);
	assert_int_equal(saved, 1234);
	assert_string_equal(s.keys[1], "k2");
	assert_int_equal(s.exp[1], 99);

	copy = malloc(buf_used(&b));
	/* every truncation is refused */
	for (size_t n = 0; n < buf_used(&b); n++)
		assert_int_not_equal(snapshot_parse(buf_head(&b), n, &lim, NULL, NULL, NULL, NULL,
						    err, sizeof(err)), 0);
	/* every single flipped byte is refused */
	for (size_t i = 0; i < buf_used(&b); i++) {
		memcpy(copy, buf_head(&b), buf_used(&b));
		copy[i] ^= 0x40;
		assert_int_not_equal(snapshot_parse(copy, buf_used(&b), &lim, NULL, NULL, NULL,
						    NULL, err, sizeof(err)), 0);
	}
	free(copy);
	/* limits */
	lim.max_keys = 1;
	assert_int_equal(snapshot_parse(buf_head(&b), buf_used(&b), &lim, NULL, NULL, NULL, NULL,
					err, sizeof(err)), -E2BIG);
	assert_non_null(strstr(err, "more than the limit"));
	lim.max_keys = 10;
	lim.max_klen = 1;
	assert_int_equal(snapshot_parse(buf_head(&b), buf_used(&b), &lim, NULL, NULL, NULL, NULL,
					err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "key length"));
	buf_free(&b);

	/* a full buffer refuses the entry and stays valid */
	buf_init(&b, SNAPSHOT_HEADER + SNAPSHOT_ENTRY_HEADER + 4 + SNAPSHOT_TRAILER);
	assert_int_equal(snapshot_begin(&b, 0), 0);
	assert_int_equal(snapshot_add(&b, "ab", 2, "cd", 2, 0), 0);
	assert_int_equal(snapshot_add(&b, "x", 1, "", 0, 0), -ENOBUFS);
	assert_int_equal(snapshot_end(&b, 1), 0);
	lim.max_klen = 16;
	assert_int_equal(snapshot_parse(buf_head(&b), buf_used(&b), &lim, NULL, NULL, NULL, &count,
					err, sizeof(err)), 0);
	assert_int_equal(count, 1);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_captures),
		cmocka_unit_test(test_select),
		cmocka_unit_test(test_url),
		cmocka_unit_test(test_snapshot_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
