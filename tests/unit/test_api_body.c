/*
 * test_api_body.c - validation of the REST API's inputs (api_body.c):
 * JSON bodies of each route, query parameters, percent-decoding, UTF-8
 * checks, Prometheus label escaping and secret detection. Pure functions,
 * no daemon, no sockets.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "hotpath/api_body.h"

static json_t *parse(const char *s)
{
	char err[256];
	json_t *j = api_json_parse(s, strlen(s), err, sizeof(err));

	if (!j)
		fail_msg("parse failed: %s", err);
	return j;
}

static void parse_bad(const char *s, const char *needle)
{
	char err[256];
	json_t *j = api_json_parse(s, s ? strlen(s) : 0, err, sizeof(err));

	assert_null(j);
	if (!strstr(err, needle))
		fail_msg("message '%s' lacks '%s'", err, needle);
}

static void test_json_parse(void **state)
{
	char deep[64];

	(void)state;
	json_decref(parse("{}"));
	json_decref(parse(" {\"a\": [1, {\"b\": \"[[[[\"}]} "));
	parse_bad(NULL, "empty");
	parse_bad("", "empty");
	parse_bad("[1]", "must be a JSON object");
	parse_bad("\"x\"", "malformed JSON");        /* jansson wants an object/array */
	parse_bad("{\"a\":1,\"a\":2}", "duplicate");
	parse_bad("{\"a\":1} x", "malformed JSON");
	parse_bad("{\"a\":", "malformed JSON at line 1");
	memset(deep, '[', sizeof(deep));
	deep[0] = '{';
	deep[1] = '"';
	deep[2] = 'a';
	deep[3] = '"';
	deep[4] = ':';
	deep[sizeof(deep) - 1] = '\0';
	parse_bad(deep, "nested deeper than");
	/* Brackets inside strings do not count towards depth. */
	json_decref(parse("{\"a\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[[\"}"));
}

static void test_clear(void **state)
{
	struct api_pattern_req r;
	char err[256];
	json_t *j;

	(void)state;
	j = parse("{}");
	assert_int_equal(api_body_clear(j, &r, err, sizeof(err)), 0);
	assert_int_equal(r.tier, API_TIER_ALL);
	assert_false(r.has_pattern);
	json_decref(j);

	j = parse("{\"cache_scope\":\"l1\",\"clear_pattern\":\"user:*\"}");
	assert_int_equal(api_body_clear(j, &r, err, sizeof(err)), 0);
	assert_int_equal(r.tier, API_TIER_L1);
	assert_true(r.has_pattern);
	assert_int_equal(r.patlen, 6);
	assert_memory_equal(r.pattern, "user:*", 6);
	json_decref(j);

	j = parse("{\"cache_scope\":\"l1\",\"clear_pattern\":null}");
	assert_int_equal(api_body_clear(j, &r, err, sizeof(err)), 0);
	assert_false(r.has_pattern);
	json_decref(j);

	j = parse("{\"cache_scope\":\"l2\"}");
	assert_int_equal(api_body_clear(j, &r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cache_scope"));
	json_decref(j);
	j = parse("{\"cache_scope\":1}");
	assert_int_equal(api_body_clear(j, &r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "must be a string"));
	json_decref(j);
	j = parse("{\"clear_pattern\":5}");
	assert_int_equal(api_body_clear(j, &r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "clear_pattern"));
	json_decref(j);
	j = parse("{\"clear_pattern\":\"\"}");
	assert_int_equal(api_body_clear(j, &r, err, sizeof(err)), -EINVAL);
	json_decref(j);
	j = parse("{\"cache_scop\":\"all\"}");
	assert_int_equal(api_body_clear(j, &r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown field 'cache_scop'"));
	json_decref(j);
}

static void test_profile(void **state)
{
	struct api_profile_req r;
	char err[256];
	json_t *j;

	(void)state;
	j = parse("{}");
	assert_int_equal(api_body_profile(j, 60, &r, err, sizeof(err)), 0);
	assert_int_equal(r.seconds, 10);
	assert_int_equal(r.pid, 0);
	assert_string_equal(r.service, "");
	json_decref(j);
	j = parse("{}");
	assert_int_equal(api_body_profile(j, 5, &r, err, sizeof(err)), 0);
	assert_int_equal(r.seconds, 5);             /* default capped by the maximum */
	json_decref(j);
	j = parse("{\"service\":\"web\",\"seconds\":3}");
	assert_int_equal(api_body_profile(j, 60, &r, err, sizeof(err)), 0);
	assert_string_equal(r.service, "web");
	assert_int_equal(r.seconds, 3);
	json_decref(j);
	j = parse("{\"pid\":42,\"service\":\"web\"}");
	assert_int_equal(api_body_profile(j, 60, &r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not both"));
	json_decref(j);
	j = parse("{\"pid\":0}");
	assert_int_equal(api_body_profile(j, 60, &r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "'pid'"));
	json_decref(j);
	j = parse("{\"seconds\":61}");
	assert_int_equal(api_body_profile(j, 60, &r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "1..60"));
	json_decref(j);
	j = parse("{\"seconds\":\"5\"}");
	assert_int_equal(api_body_profile(j, 60, &r, err, sizeof(err)), -EINVAL);
	json_decref(j);
	j = parse("{\"service\":\"\"}");
	assert_int_equal(api_body_profile(j, 60, &r, err, sizeof(err)), -EINVAL);
	json_decref(j);
	j = parse("{\"sevice\":\"web\"}");
	assert_int_equal(api_body_profile(j, 60, &r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown field 'sevice'"));
	json_decref(j);
}

static void test_invalidate(void **state)
{
	struct api_pattern_req r;
	char err[256], big[API_PATTERN_MAX + 64];
	json_t *j;

	(void)state;
	j = parse("{\"invalidation_pattern\":\"a*\",\"scope\":\"all\"}");
	assert_int_equal(api_body_invalidate(j, &r, err, sizeof(err)), 0);
	assert_int_equal(r.patlen, 2);
	json_decref(j);
	j = parse("{\"scope\":\"all\"}");
	assert_int_equal(api_body_invalidate(j, &r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "missing required field 'invalidation_pattern'"));
	json_decref(j);
	j = parse("{\"invalidation_pattern\":[\"a\"]}");
	assert_int_equal(api_body_invalidate(j, &r, err, sizeof(err)), -EINVAL);
	json_decref(j);
	j = parse("{\"invalidation_pattern\":\"a\",\"scope\":\"everything\"}");
	assert_int_equal(api_body_invalidate(j, &r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "scope"));
	json_decref(j);
	snprintf(big, sizeof(big), "{\"invalidation_pattern\":\"%0*d\"}", API_PATTERN_MAX, 0);
	j = parse(big);
	assert_int_equal(api_body_invalidate(j, &r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "longer than"));
	json_decref(j);
}

static int policies(const char *text, struct l1_partition *p, unsigned *n, char *err)
{
	json_t *j = parse(text);
	int rc = api_body_policies(j, p, 8, n, err, 256);

	json_decref(j);
	return rc;
}

static void test_policies(void **state)
{
	struct l1_partition p[8];
	unsigned n = 99;
	char err[256];

	(void)state;
	assert_int_equal(policies("{\"policy_definitions\":[]}", p, &n, err), 0);
	assert_int_equal(n, 0);

	assert_int_equal(policies("{\"policy_definitions\":["
				  "{\"name\":\"sess\",\"prefix\":\"sess:\",\"max_memory\":\"64mb\","
				  "\"default_ttl\":\"30s\",\"priority\":\"high\"},"
				  "{\"name\":\"img\",\"prefix\":\"img:\",\"max_memory\":1024,"
				  "\"default_ttl\":1500},"
				  "{\"name\":\"x.y-z_1\",\"prefix\":\"x\",\"priority\":\"low\"}]}",
				  p, &n, err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(p[0].name, "sess");
	assert_string_equal(p[0].prefix, "sess:");
	assert_int_equal(p[0].max_memory, 64ull << 20);
	assert_int_equal(p[0].default_ttl_ms, 30000);
	assert_int_equal(p[0].priority, L1_PRIO_HIGH);
	assert_int_equal(p[1].max_memory, 1024);
	assert_int_equal(p[1].default_ttl_ms, 1500);
	assert_int_equal(p[1].priority, L1_PRIO_NORMAL);
	assert_int_equal(p[2].max_memory, 0);
	assert_int_equal(p[2].default_ttl_ms, 0);
	assert_int_equal(p[2].priority, L1_PRIO_LOW);

	struct { const char *body, *needle; } bad[] = {
		{ "{}", "missing required field 'policy_definitions'" },
		{ "{\"policy_definitions\":{}}", "must be an array" },
		{ "{\"policy_definitions\":[],\"x\":1}", "unknown field 'x'" },
		{ "{\"policy_definitions\":[1]}", "policy_definitions[0] must be an object" },
		{ "{\"policy_definitions\":[{\"prefix\":\"a\"}]}", "policy_definitions[0].name is required" },
		{ "{\"policy_definitions\":[{\"name\":\"a b\",\"prefix\":\"a\"}]}", "name must be" },
		{ "{\"policy_definitions\":[{\"name\":\"default\",\"prefix\":\"a\"}]}", "reserved" },
		{ "{\"policy_definitions\":[{\"name\":\"a\"}]}", "prefix is required" },
		{ "{\"policy_definitions\":[{\"name\":\"a\",\"prefix\":\"\"}]}", "must not be empty" },
		{ "{\"policy_definitions\":[{\"name\":\"a\",\"prefix\":\"p\",\"max_memory\":\"lots\"}]}",
		  "policy_definitions[0].max_memory" },
		{ "{\"policy_definitions\":[{\"name\":\"a\",\"prefix\":\"p\",\"max_memory\":-1}]}",
		  "negative" },
		{ "{\"policy_definitions\":[{\"name\":\"a\",\"prefix\":\"p\",\"max_memory\":1.5}]}",
		  "max_memory must be" },
		{ "{\"policy_definitions\":[{\"name\":\"a\",\"prefix\":\"p\",\"default_ttl\":\"soon\"}]}",
		  "default_ttl" },
		{ "{\"policy_definitions\":[{\"name\":\"a\",\"prefix\":\"p\",\"default_ttl\":true}]}",
		  "default_ttl must be" },
		{ "{\"policy_definitions\":[{\"name\":\"a\",\"prefix\":\"p\",\"priority\":\"urgent\"}]}",
		  "priority" },
		{ "{\"policy_definitions\":[{\"name\":\"a\",\"prefix\":\"p\",\"ttl\":1}]}",
		  "unknown field 'policy_definitions[0].ttl'" },
		{ "{\"policy_definitions\":[{\"name\":\"a\",\"prefix\":\"p\"},{\"name\":\"a\",\"prefix\":\"q\"}]}",
		  "policy_definitions[1].name 'a' repeats" },
		{ "{\"policy_definitions\":[{\"name\":\"a\",\"prefix\":\"p\"},{\"name\":\"b\",\"prefix\":\"p\"}]}",
		  "prefix repeats" },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (policies(bad[i].body, p, &n, err) != -EINVAL)
			fail_msg("accepted: %s", bad[i].body);
		if (!strstr(err, bad[i].needle))
			fail_msg("%s: message '%s' lacks '%s'", bad[i].body, err, bad[i].needle);
	}
	/* More than `max` entries. */
	{
		char big[2048] = "{\"policy_definitions\":[";
		for (int i = 0; i < 9; i++) {
			char one[64];
			snprintf(one, sizeof(one), "%s{\"name\":\"n%d\",\"prefix\":\"p%d\"}", i ? "," : "", i, i);
			strcat(big, one);
		}
		strcat(big, "]}");
		assert_int_equal(policies(big, p, &n, err), -EINVAL);
		assert_non_null(strstr(err, "at most 8"));
	}
}

static void test_query_statistics(void **state)
{
	struct api_stats_query q;
	char err[256];

	(void)state;
	assert_int_equal(api_query_statistics(NULL, NULL, NULL, 3600, &q, err, sizeof(err)), 0);
	assert_int_equal(q.tier, API_TIER_ALL);
	assert_int_equal(q.range_s, 300);
	assert_int_equal(q.gran_s, 5);
	assert_int_equal(q.points, 60);
	assert_int_equal(api_query_statistics("l1", "5m", "10s", 3600, &q, err, sizeof(err)), 0);
	assert_int_equal(q.tier, API_TIER_L1);
	assert_int_equal(q.range_s, 300);
	assert_int_equal(q.gran_s, 10);
	assert_int_equal(q.points, 30);
	assert_int_equal(api_query_statistics("all", "1h", "1s", 3600, &q, err, sizeof(err)), 0);
	assert_int_equal(q.points, 3600);
	assert_int_equal(api_query_statistics(NULL, "70s", "30s", 3600, &q, err, sizeof(err)), 0);
	assert_int_equal(q.points, 3);
	/* Default range is clamped to a smaller ring. */
	assert_int_equal(api_query_statistics(NULL, NULL, NULL, 60, &q, err, sizeof(err)), 0);
	assert_int_equal(q.range_s, 60);

	assert_int_equal(api_query_statistics("l2", NULL, NULL, 3600, &q, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cache_tier"));
	assert_int_equal(api_query_statistics(NULL, "2h", NULL, 3600, &q, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "exceeds"));
	assert_int_equal(api_query_statistics(NULL, "5m", "500ms", 3600, &q, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "at least 1s"));
	assert_int_equal(api_query_statistics(NULL, "5m", "1500ms", 3600, &q, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "whole seconds"));
	assert_int_equal(api_query_statistics(NULL, "5m", "10m", 3600, &q, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "longer than"));
	assert_int_equal(api_query_statistics(NULL, "abc", NULL, 3600, &q, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "time_range"));
	assert_int_equal(api_query_statistics(NULL, "", NULL, 3600, &q, err, sizeof(err)), -EINVAL);
	assert_int_equal(api_query_statistics(NULL, "2h", "1s", 7200, &q, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "points"));
}

static void test_query_keys(void **state)
{
	uint64_t cur;
	size_t cnt;
	char err[256];

	(void)state;
	assert_int_equal(api_query_keys(NULL, NULL, &cur, &cnt, err, sizeof(err)), 0);
	assert_int_equal(cur, 0);
	assert_int_equal(cnt, API_KEYS_DEFAULT_COUNT);
	assert_int_equal(api_query_keys("18446744073709551615", "1000", &cur, &cnt, err, sizeof(err)), 0);
	assert_true(cur == UINT64_MAX);
	assert_int_equal(cnt, 1000);
	assert_int_equal(api_query_keys("18446744073709551616", NULL, &cur, &cnt, err, sizeof(err)), -EINVAL);
	assert_int_equal(api_query_keys("-1", NULL, &cur, &cnt, err, sizeof(err)), -EINVAL);
	assert_int_equal(api_query_keys("1x", NULL, &cur, &cnt, err, sizeof(err)), -EINVAL);
	assert_int_equal(api_query_keys("", NULL, &cur, &cnt, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cursor"));
	assert_int_equal(api_query_keys(NULL, "0", &cur, &cnt, err, sizeof(err)), -EINVAL);
	assert_int_equal(api_query_keys(NULL, "1001", &cur, &cnt, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "count"));
}

static void test_url_decode(void **state)
{
	char out[16];
	size_t n;

	(void)state;
	assert_int_equal(api_url_decode("a%2Fb%2a+c", 10, out, sizeof(out), &n), 0);
	assert_int_equal(n, 6);
	assert_string_equal(out, "a/b*+c");
	assert_int_equal(api_url_decode("x%00y", 5, out, sizeof(out), &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(out, "x\0y", 3);
	assert_int_equal(api_url_decode("%", 1, out, sizeof(out), &n), -EINVAL);
	assert_int_equal(api_url_decode("%4", 2, out, sizeof(out), &n), -EINVAL);
	assert_int_equal(api_url_decode("%zz", 3, out, sizeof(out), &n), -EINVAL);
	assert_int_equal(api_url_decode("abcd", 4, out, 4, &n), 0);     /* fits, no NUL room */
	assert_int_equal(n, 4);
	assert_int_equal(api_url_decode("abcde", 5, out, 4, &n), -E2BIG);
	assert_int_equal(api_url_decode("", 0, out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
}

static void test_utf8(void **state)
{
	(void)state;
	assert_true(api_utf8_valid("", 0));
	assert_true(api_utf8_valid("plain", 5));
	assert_true(api_utf8_valid("caf\xc3\xa9", 5));
	assert_true(api_utf8_valid("\xe2\x82\xac", 3));
	assert_true(api_utf8_valid("\xf0\x9f\x98\x80", 4));
	assert_true(api_utf8_valid("a\0b", 3));
	assert_false(api_utf8_valid("\xff", 1));
	assert_false(api_utf8_valid("\xc3", 1));                /* truncated */
	assert_false(api_utf8_valid("\xc0\xaf", 2));            /* overlong */
	assert_false(api_utf8_valid("\xe0\x80\xaf", 3));        /* overlong */
	assert_false(api_utf8_valid("\xed\xa0\x80", 3));        /* surrogate */
	assert_false(api_utf8_valid("\xf4\x90\x80\x80", 4));    /* > U+10FFFF */
	assert_false(api_utf8_valid("\xe2\x28\xa1", 3));
	/* the character at the start: its length, 0 if none */
	assert_int_equal(api_utf8_seq("ab", 2), 1);
	assert_int_equal(api_utf8_seq("\xc3\xa9x", 3), 2);
	assert_int_equal(api_utf8_seq("\xf0\x9f\x98\x80", 4), 4);
	assert_int_equal(api_utf8_seq("\xf0\x9f\x98", 3), 0);   /* cut short */
	assert_int_equal(api_utf8_seq("\xff", 1), 0);
	assert_int_equal(api_utf8_seq("", 0), 0);
}

static void test_prom_escape(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 64);
	assert_int_equal(api_prom_escape(&b, "a\"b\\c\nd", 7), 0);
	assert_int_equal(buf_used(&b), 10);
	assert_memory_equal(buf_head(&b), "a\\\"b\\\\c\\nd", 10);
	buf_free(&b);
	buf_init(&b, 4);
	assert_int_equal(api_prom_escape(&b, "\"\"\"", 3), -ENOBUFS);
	buf_free(&b);
}

static void test_secrets(void **state)
{
	(void)state;
	assert_true(api_config_key_secret("database.main", "password"));
	assert_true(api_config_key_secret("redis", "auth_password"));
	assert_true(api_config_key_secret("x", "client_secret"));
	assert_false(api_config_key_secret("database.main", "password_file"));
	assert_false(api_config_key_secret("api", "tokens_file"));
	assert_false(api_config_key_secret("pooler", "auth_type"));
	assert_false(api_config_key_secret("resp", "listen"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_parse),
		cmocka_unit_test(test_clear),
		cmocka_unit_test(test_invalidate),
		cmocka_unit_test(test_profile),
		cmocka_unit_test(test_policies),
		cmocka_unit_test(test_query_statistics),
		cmocka_unit_test(test_query_keys),
		cmocka_unit_test(test_url_decode),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_prom_escape),
		cmocka_unit_test(test_secrets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
