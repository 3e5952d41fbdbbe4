/*
 * strategy.c - the pure part of per key-pattern strategies (see
 * include/hotpath/strategy.h): glob captures, strategy selection and URL
 * template expansion.
 *
 * Captures use glob.c's own token matcher, so a strategy pattern means
 * exactly what the same text means to KEYS, SCAN MATCH and invalidation.
 * The walk is glob_match's "remember the last star" two-pointer loop with
 * one addition: every `*` and `?` writes its capture slot as it is passed,
 * and when the walk retries from the last star the slots after that star
 * are simply rewritten. Earlier stars keep the extent they had when the
 * later star was reached, which is why a star takes the shortest run that
 * lets the rest match. Bounded by O(|pattern| * |key|), no recursion.
 *
 * What not: no named captures, no case folding (strategy patterns are
 * case-sensitive, as Redis keys are).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "hotpath/l1.h"
#include "hotpath/strategy.h"

unsigned strat_pattern_captures(const char *pattern, size_t plen)
{
	const unsigned char *pat = (const unsigned char *)pattern;
	unsigned n = 0;
	size_t pi = 0, tlen;

	while (pi < plen) {
		if (pat[pi] == '*' || pat[pi] == '?') {
			n++;
			pi++;
			continue;
		}
		(void)glob_token(pat, plen, pi, 0, false, &tlen);
		pi += tlen ? tlen : 1;
	}
	return n;
}

int strat_capture(const char *pattern, size_t plen, const char *key, size_t klen,
		  struct strat_capture *caps)
{
	const unsigned char *pat = (const unsigned char *)pattern;
	const unsigned char *s = (const unsigned char *)key;
	size_t pi = 0, si = 0, star_pi = 0, star_si = 0, tlen;
	int ci = 0, star_ci = -1;

	if (strat_pattern_captures(pattern, plen) > STRAT_MAX_CAPTURES)
		return -E2BIG;
	while (si < klen) {
		if (pi < plen && pat[pi] == '*') {
			caps[ci].off = si;
			caps[ci].len = 0;
			star_ci = ci++;
			star_pi = ++pi;
			star_si = si;
			continue;
		}
		if (pi < plen && glob_token(pat, plen, pi, s[si], false, &tlen)) {
			if (pat[pi] == '?') {
				caps[ci].off = si;
				caps[ci++].len = 1;
			}
			pi += tlen;
			si++;
			continue;
		}
		if (star_ci < 0)
			return -1;
		/* the last star takes one more byte; what follows it is redone */
		star_si++;
		caps[star_ci].len = star_si - caps[star_ci].off;
		si = star_si;
		pi = star_pi;
		ci = star_ci + 1;
	}
	while (pi < plen && pat[pi] == '*') {
		caps[ci].off = si;
		caps[ci++].len = 0;
		pi++;
	}
	return pi == plen ? ci : -1;
}

int strat_select(const char *const *pats, unsigned n, const char *key, size_t klen,
		 struct strat_capture *caps, int *ncap)
{
	for (unsigned i = 0; i < n; i++) {
		int rc = strat_capture(pats[i], strlen(pats[i]), key, klen, caps);

		if (rc >= 0) {
			*ncap = rc;
			return (int)i;
		}
	}
	return -1;
}

static bool url_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

int strat_expand_url(const char *tmpl, const char *key, const struct strat_capture *caps,
		     int ncap, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (!outlen)
		return -E2BIG;
	for (const char *p = tmpl; *p; p++) {
		if (*p == '{' && p[1] == '{') {
			if (o + 1 >= outlen)
				return -E2BIG;
			out[o++] = '{';
			p++;
			continue;
		}
		if (*p == '{') {
			int n;

			if (p[1] < '1' || p[1] > '9' || p[2] != '}')
				return -EINVAL;
			n = p[1] - '0';
			if (n > ncap)
				return -EINVAL;
			for (size_t i = 0; i < caps[n - 1].len; i++) {
				unsigned char c = (unsigned char)key[caps[n - 1].off + i];

				if (o + 3 >= outlen)
					return -E2BIG;
				if (url_unreserved(c)) {
					out[o++] = (char)c;
				} else {
					out[o++] = '%';
					out[o++] = hex[c >> 4];
					out[o++] = hex[c & 15];
				}
			}
			p += 2;
			continue;
		}
		if (o + 1 >= outlen)
			return -E2BIG;
		out[o++] = *p;
	}
	out[o] = '\0';
	return 0;
}
