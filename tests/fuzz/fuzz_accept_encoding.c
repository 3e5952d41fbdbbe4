/*
 * fuzz_accept_encoding.c - libFuzzer target for the Accept-Encoding parser
 * and negotiation, and the derived ETag (agent/http/compress.c).
 *
 * The input is one field value; when it holds a 0xff byte it is also
 * parsed as two field lines split there. Besides "no crash, no hang, no
 * read past the value" it checks: every q stays in -1..1000; a parse that
 * fails says why; the choice is a coding the proxy offers or identity,
 * never one the client refused with q=0. The ETag derived from the input
 * (when it is a valid tag) is longer and is itself a valid tag.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/compress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct compress_accept *a)
{
	static const enum hc_coding pref[] = { HC_CODING_BR, HC_CODING_ZSTD, HC_CODING_GZIP };
	enum hc_coding c;
	int q;

	for (unsigned i = 0; i < HC_CODINGS; i++)
		if (a->q[i] < -1 || a->q[i] > 1000)
			abort();
	if (a->star < -1 || a->star > 1000)
		abort();
	c = compress_choose(a, pref, 3);
	if ((unsigned)c >= HC_CODINGS)
		abort();
	if (c != HC_CODING_IDENTITY) {
		q = a->q[c] >= 0 ? a->q[c] : a->star;
		if (q <= 0)
			abort();    /* chose a coding the client refused */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct compress_accept a;
	const char *why = NULL, *v = (const char *)data, *sep;
	char *copy, out[512], again[600];
	size_t n;

	/* an exact-size heap copy so ASan sees any read past the value */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, v, size);
	compress_accept_init(&a);
	if (compress_accept_parse(&a, copy, size, &why) == 0)
		check(&a);
	else if (!why)
		abort();
	sep = memchr(copy, 0xff, size);
	if (sep) {
		size_t l1 = (size_t)(sep - copy);

		compress_accept_init(&a);
		why = NULL;
		if (compress_accept_parse(&a, copy, l1, &why) == 0 &&
		    compress_accept_parse(&a, sep + 1, size - l1 - 1, &why) == 0)
			check(&a);
		else if (!why)
			abort();
	}
	n = compress_etag(copy, size, HC_CODING_GZIP, out, sizeof(out));
	if (n && (n <= size || out[n - 1] != '"' ||
		  compress_etag(out, n, HC_CODING_BR, again, sizeof(again)) == 0))
		abort();
	free(copy);
	return 0;
}
