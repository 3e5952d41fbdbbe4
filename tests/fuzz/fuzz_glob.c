/*
 * fuzz_glob.c - libFuzzer target for glob_match (agent/cache/glob.c).
 *
 * Input layout: byte 0 holds flags (bit 0 = nocase); the rest is split at
 * the first 0xff byte into pattern and subject (no 0xff: the subject is
 * empty), so both sides may contain NULs. Lengths are capped at 4 KiB each
 * so that one run's work (O(pattern * subject) by design) stays bounded.
 *
 * Besides "no crash, no hang" it checks properties that must hold for any
 * input: every subject matches "*", itself with every byte escaped, and
 * itself with every byte turned into '?' (and not one byte fewer). Any
 * violation aborts so the fuzzer records it. (Case folding is not monotone:
 * "[^a]" matches "A" only case-sensitively, as in Redis, so no property
 * relates the two modes.)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/l1.h"

#define FUZZ_MAX_LEN 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char esc[2 * FUZZ_MAX_LEN], any[FUZZ_MAX_LEN];
	const char *pat, *str, *sep;
	size_t plen, slen;
	bool nocase;

	if (size < 1)
		return 0;
	nocase = data[0] & 1;
	pat = (const char *)data + 1;
	sep = memchr(pat, 0xff, size - 1);
	plen = sep ? (size_t)(sep - pat) : size - 1;
	str = sep ? sep + 1 : pat + plen;
	slen = sep ? size - 1 - plen - 1 : 0;
	if (plen > FUZZ_MAX_LEN)
		plen = FUZZ_MAX_LEN;
	if (slen > FUZZ_MAX_LEN)
		slen = FUZZ_MAX_LEN;

	(void)glob_match(pat, plen, str, slen, nocase);

	if (!glob_match("*", 1, str, slen, nocase))
		abort();
	for (size_t i = 0; i < slen; i++) {
		esc[2 * i] = '\\';
		esc[2 * i + 1] = str[i];
		any[i] = '?';
	}
	if (!glob_match(esc, 2 * slen, str, slen, nocase))
		abort();
	if (!glob_match(any, slen, str, slen, nocase))
		abort();
	if (slen && glob_match(any, slen - 1, str, slen, nocase))
		abort();
	return 0;
}
