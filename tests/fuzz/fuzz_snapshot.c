/*
 * fuzz_snapshot.c - libFuzzer target for the hot-key snapshot reader
 * (snapshot_parse, agent/cache/snapshot.c), the parser a warm restart
 * feeds with a file from disk.
 *
 * Two inputs per run: the raw bytes as a file (mostly refused by the
 * checksum, which exercises the header checks), and the same bytes with a
 * valid checksum appended, so the fuzzer reaches the entry walk. Property
 * checked: a file the reader accepts hands out exactly `count` entries,
 * each inside the limits; re-encoding them with the writer gives a file
 * the reader accepts with the same count.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "hotpath/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct acc {
	struct buf out;
	uint32_t n;
	const struct snapshot_limits *lim;
};

static int entry(const char *key, size_t klen, const char *val, size_t vlen, uint64_t exp,
		 void *arg)
{
	struct acc *a = arg;

	if (klen == 0 || klen > a->lim->max_klen || vlen > a->lim->max_vlen)
		abort();
	if (snapshot_add(&a->out, key, klen, val, vlen, exp) != 0)
		abort();
	a->n++;
	return 0;
}

static void one(const char *buf, size_t len)
{
	struct snapshot_limits lim = { .max_bytes = 1 << 20, .max_keys = 1000, .max_klen = 512,
				       .max_vlen = 65536 };
	struct acc a = { .lim = &lim };
	char err[256];
	uint32_t count = 0, count2 = 0;
	uint64_t saved = 0;

	buf_init(&a.out, 4 << 20);
	if (snapshot_begin(&a.out, 0) != 0)
		abort();
	if (snapshot_parse(buf, len, &lim, entry, &a, &saved, &count, err, sizeof(err)) == 0) {
		if (a.n != count)
			abort();
		if (snapshot_end(&a.out, a.n) != 0)
			abort();
		if (snapshot_parse(buf_head(&a.out), buf_used(&a.out), &lim, NULL, NULL, NULL,
				   &count2, err, sizeof(err)) != 0 || count2 != count)
			abort();
	} else if (!err[0]) {
		abort();        /* every refusal says why */
	}
	buf_free(&a.out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *fixed;
	uLong c;

	if (size > (1 << 20))
		return 0;
	one((const char *)data, size);
	fixed = malloc(size + 4);
	if (!fixed)
		return 0;
	memcpy(fixed, data, size);
	c = crc32(0L, Z_NULL, 0);
	c = crc32(c, data, (uInt)size);
	for (int i = 0; i < 4; i++)
		fixed[size + (size_t)i] = (uint8_t)(c >> (8 * i));
	one((const char *)fixed, size + 4);
	free(fixed);
	return 0;
}
