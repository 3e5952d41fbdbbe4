/*
 * test_glob.c - unit tests for glob_match (agent/cache/glob.c).
 *
 * The cases are a table of (pattern, subject, nocase, expected) covering
 * what Redis's KEYS/SCAN MATCH accept: stars, '?', sets, ranges (including
 * reversed ones), negation, escapes inside and outside sets, unterminated
 * sets and case folding. Separate tests cover binary (NUL-containing) input
 * and that pathological star patterns finish in linear-ish time, the
 * failure mode behind Redis's glob recursion CVE.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include "hotpath/l1.h"

struct glob_case {
	const char *pat, *str;
	bool nocase, want;
};

static const struct glob_case glob_cases[] = {
	/* literals and stars */
	{ "", "", false, true },
	{ "", "a", false, false },
	{ "a", "", false, false },
	{ "*", "", false, true },
	{ "*", "anything", false, true },
	{ "**", "x", false, true },
	{ "foo", "foo", false, true },
	{ "foo", "fo", false, false },
	{ "foo", "fooo", false, false },
	{ "foo*", "foo", false, true },
	{ "foo*", "foobar", false, true },
	{ "foo*", "fo", false, false },
	{ "*bar", "foobar", false, true },
	{ "*bar", "foobaz", false, false },
	{ "f*o*o", "fxoyo", false, true },
	{ "f*o*o", "fxoy", false, false },
	{ "*a*b*c*", "xaybzc", false, true },
	{ "*a*b*c*", "xaybz", false, false },
	{ "a*b", "ab", false, true },
	{ "a*b", "axxbxb", false, true },
	{ "a*b", "axxbx", false, false },
	/* ? */
	{ "?", "a", false, true },
	{ "?", "", false, false },
	{ "f?o", "foo", false, true },
	{ "f?o", "fo", false, false },
	{ "??", "ab", false, true },
	{ "*?", "", false, false },
	{ "*?", "a", false, true },
	/* sets, ranges, negation */
	{ "[abc]", "b", false, true },
	{ "[abc]", "d", false, false },
	{ "h[ae]llo", "hello", false, true },
	{ "h[ae]llo", "hallo", false, true },
	{ "h[ae]llo", "hillo", false, false },
	{ "h[^e]llo", "hallo", false, true },
	{ "h[^e]llo", "hello", false, false },
	{ "h[a-b]llo", "hbllo", false, true },
	{ "h[a-b]llo", "hcllo", false, false },
	{ "[z-a]", "m", false, true },    /* reversed range is swapped */
	{ "[^a-c]x", "dx", false, true },
	{ "[^a-c]x", "bx", false, false },
	{ "[-a]", "-", false, true },      /* a leading '-' is literal */
	{ "[a-]", "a", false, true },      /* Redis: range a..']', set unterminated */
	{ "[a-]", "-", false, false },
	{ "[]", "a", false, false },       /* empty set matches nothing */
	{ "[^]", "a", false, true },       /* empty negated set: any byte */
	{ "[]a]", "]", false, false },     /* first ']' closes the set */
	{ "[]a]", "]a]", false, false },
	{ "[]a]", "a]", false, false },
	{ "[\\]]", "]", false, true },     /* escaped ']' inside a set */
	{ "[\\-]", "-", false, true },
	{ "[a\\-z]", "m", false, false },  /* escaped '-' is not a range */
	{ "[a\\-z]", "z", false, true },
	{ "[abc", "b", false, true },      /* unterminated set runs to the end */
	{ "[abc", "bc", false, false },
	{ "x[", "x", false, false },
	{ "*[a-c]", "zzb", false, true },
	/* escapes */
	{ "\\*", "*", false, true },
	{ "\\*", "a", false, false },
	{ "\\?", "?", false, true },
	{ "\\[a]", "[a]", false, true },
	{ "a\\\\b", "a\\b", false, true },
	{ "\\", "\\", false, true },       /* a lone trailing backslash is literal */
	{ "ab\\", "ab\\", false, true },
	/* nocase */
	{ "HELLO", "hello", true, true },
	{ "HELLO", "hello", false, false },
	{ "h[A-C]llo", "hbllo", true, true },
	{ "h[a-c]llo", "hBllo", true, true },
	{ "h[a-c]llo", "hBllo", false, false },
	{ "[^A]x", "ax", true, false },
	{ "*WORLD", "hello world", true, true },
	{ "\\A", "a", true, true },
	/* realistic keys */
	{ "user:*:profile", "user:42:profile", false, true },
	{ "user:*:profile", "user:42:settings", false, false },
	{ "session:[0-9][0-9]", "session:07", false, true },
	{ "session:[0-9][0-9]", "session:7a", false, false },
};

static void test_glob_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(glob_cases) / sizeof(glob_cases[0]); i++) {
		const struct glob_case *c = &glob_cases[i];
		bool got = glob_match(c->pat, strlen(c->pat), c->str, strlen(c->str), c->nocase);

		if (got != c->want)
			fail_msg("glob_match(\"%s\", \"%s\", nocase=%d) = %d, want %d",
				 c->pat, c->str, c->nocase, got, c->want);
	}
}

static void test_glob_binary(void **state)
{
	const char pat[] = { 'a', '\0', '*', 'z' };
	const char yes[] = { 'a', '\0', 'x', '\0', 'z' };
	const char no[] = { 'a', 'x', 'z' };
	const char qpat[] = { '?', '?' };
	const char nul2[] = { '\0', '\0' };

	(void)state;
	assert_true(glob_match(pat, sizeof(pat), yes, sizeof(yes), false));
	assert_false(glob_match(pat, sizeof(pat), no, sizeof(no), false));
	assert_true(glob_match(qpat, sizeof(qpat), nul2, sizeof(nul2), false));
	/* High bytes compare as unsigned values. */
	assert_true(glob_match("[\x80-\xff]", 5, "\xc3", 1, false));
	assert_false(glob_match("[\x80-\xff]", 5, "a", 1, false));
}

static void test_glob_length_bounds(void **state)
{
	(void)state;
	/* Lengths, not NUL terminators, bound the inputs. */
	assert_true(glob_match("abcdef", 3, "abcxyz", 3, false));
	assert_true(glob_match("[abc]", 3, "a", 1, false)); /* "[ab", unterminated */
	assert_false(glob_match("[abc]", 3, "c", 1, false));
	assert_true(glob_match("*", 1, NULL, 0, false));
}

static double glob_elapsed_ms(const char *pat, size_t plen, const char *s, size_t slen, bool *res)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	*res = glob_match(pat, plen, s, slen, false);
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
}

static void test_glob_pathological(void **state)
{
	static char s[100000];
	static char pat[2001];
	bool res;
	double ms;

	(void)state;
	memset(s, 'a', sizeof(s));
	ms = glob_elapsed_ms("a*a*a*a*a*a*a*a*a*b", 19, s, sizeof(s), &res);
	assert_false(res);
	assert_true(ms < 200.0);

	/* Many stars: exponential for a recursive matcher. */
	for (size_t i = 0; i < 1000; i++) {
		pat[2 * i] = 'a';
		pat[2 * i + 1] = '*';
	}
	pat[2000] = 'b';
	ms = glob_elapsed_ms(pat, sizeof(pat), s, 5000, &res);
	assert_false(res);
	assert_true(ms < 500.0);

	ms = glob_elapsed_ms("*a*a*a*a*a*a*a*a*a*a", 20, s, sizeof(s), &res);
	assert_true(res);
	assert_true(ms < 200.0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_glob_table),
		cmocka_unit_test(test_glob_binary),
		cmocka_unit_test(test_glob_length_bounds),
		cmocka_unit_test(test_glob_pathological),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
