/*
 * glob.c - Redis-compatible glob matching for KEYS/SCAN MATCH and
 * l1_delete_pattern (declared in include/hotpath/l1.h).
 *
 * Syntax, as Redis's stringmatchlen understands it: `*` any run of bytes,
 * `?` one byte, `[abc]` a set, `[a-z]` a range (reversed ends are swapped),
 * `[^...]` a negated set, `\x` the literal x (also inside a set), and an
 * unterminated `[` set that runs to the end of the pattern. A trailing lone
 * `\` matches a literal backslash. `nocase` folds ASCII case everywhere.
 *
 * How: every token other than `*` matches exactly one byte, so the classic
 * "remember the last star" two-pointer walk is exact: on a mismatch we only
 * ever retry from the most recent `*`, one byte further into the subject.
 * Earlier stars never need revisiting, because whatever they could absorb the
 * last star can absorb as well. The work is therefore bounded by
 * O(|pattern| * |string|) with no recursion and no stack growth, whereas the
 * recursive matcher Redis used to have went exponential on patterns such as
 * "a*a*a*a*a*b" (the reason Redis later added a nesting limit). Inputs are
 * length-delimited, never read past `patlen`/`slen`, and may contain NULs.
 *
 * What it deliberately does not do: no locale-aware case folding (ASCII
 * only), and bytes are compared as unsigned values (Redis compares plain
 * `char`, which makes ranges over bytes >= 0x80 platform-dependent there).
 */
#include <stdbool.h>
#include <stddef.h>
#include "hotpath/l1.h"

static unsigned char glob_fold(unsigned char c, bool nocase)
{
	if (nocase && c >= 'A' && c <= 'Z')
		return (unsigned char)(c - 'A' + 'a');
	return c;
}

/*
 * Match the single token starting at pat[pi] (which is not '*') against
 * byte c. Stores the token's length in *tlen; returns whether it matched.
 */
bool glob_token(const unsigned char *pat, size_t plen, size_t pi,
		unsigned char c, bool nocase, size_t *tlen)
{
	size_t i = pi;
	bool neg = false, hit = false;

	c = glob_fold(c, nocase);
	switch (pat[i]) {
	case '?':
		*tlen = 1;
		return true;
	case '\\':
		if (i + 1 < plen) {
			*tlen = 2;
			return glob_fold(pat[i + 1], nocase) == c;
		}
		*tlen = 1;
		return c == '\\';
	case '[':
		i++;
		if (i < plen && pat[i] == '^') {
			neg = true;
			i++;
		}
		while (i < plen && pat[i] != ']') {
			if (pat[i] == '\\' && i + 1 < plen) {
				if (glob_fold(pat[i + 1], nocase) == c)
					hit = true;
				i += 2;
			} else if (i + 2 < plen && pat[i + 1] == '-') {
				unsigned char lo = glob_fold(pat[i], nocase);
				unsigned char hi = glob_fold(pat[i + 2], nocase);

				if (lo > hi) {
					unsigned char t = lo;
					lo = hi;
					hi = t;
				}
				if (c >= lo && c <= hi)
					hit = true;
				i += 3;
			} else {
				if (glob_fold(pat[i], nocase) == c)
					hit = true;
				i++;
			}
		}
		if (i < plen)
			i++; /* the closing ']'; an unterminated set ends the pattern */
		*tlen = i - pi;
		return hit != neg;
	default:
		*tlen = 1;
		return glob_fold(pat[i], nocase) == c;
	}
}

bool glob_match(const char *pattern, size_t patlen, const char *string, size_t slen, bool nocase)
{
	const unsigned char *pat = (const unsigned char *)pattern;
	const unsigned char *s = (const unsigned char *)string;
	size_t pi = 0, si = 0, star_pi = 0, star_si = 0, tlen;
	bool have_star = false;

	while (si < slen) {
		if (pi < patlen && pat[pi] == '*') {
			while (pi < patlen && pat[pi] == '*')
				pi++;
			if (pi == patlen)
				return true; /* a trailing star absorbs the rest */
			have_star = true;
			star_pi = pi;
			star_si = si;
			continue;
		}
		if (pi < patlen && glob_token(pat, patlen, pi, s[si], nocase, &tlen)) {
			pi += tlen;
			si++;
			continue;
		}
		if (!have_star)
			return false;
		/* Let the last star swallow one more byte and retry after it. */
		star_si++;
		si = star_si;
		pi = star_pi;
	}
	while (pi < patlen && pat[pi] == '*')
		pi++;
	return pi == patlen;
}
