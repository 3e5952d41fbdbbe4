/*
 * fuzz_sockdiag.c - libFuzzer target for the sock_diag reply parser
 * (sockets_parse_diag, agent/observe/sockets.c): any bytes, at any
 * alignment, must be walked without reading past their end or writing
 * past `max` listeners, and end in one of the documented results.
 *
 * Input: the first byte picks `max` (0..7) and whether the buffer starts
 * at an odd address; the rest is the buffer.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/sockets.h"

#define FUZZ_MAX 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sock_listener out[FUZZ_MAX + 1], guard;
	size_t max, n = 0, skew, len;
	uint8_t *b;
	int rc;

	if (size < 1)
		return 0;
	max = data[0] & 7;
	skew = (data[0] >> 3) & 1;
	len = size - 1;
	/* exact-size heap copy (after the skew) so ASan sees any overread */
	b = malloc(len + skew ? len + skew : 1);
	if (!b)
		return 0;
	memcpy(b + skew, data + 1, len);
	memset(out, 0x5a, sizeof(out));
	guard = out[max];
	rc = sockets_parse_diag(b + skew, len, out, max, &n);
	free(b);
	if (rc > 1 || rc < -4095 || n > max || memcmp(&out[max], &guard, sizeof(guard)) != 0)
		abort();
	for (size_t i = 0; i < n; i++) {
		static const uint8_t zero[12];

		if (out[i].v6 > 1 || out[i].pid != 0 || out[i].comm[0] != '\0' ||
		    out[i].inode > UINT32_MAX ||
		    (!out[i].v6 && memcmp(out[i].addr + 4, zero, sizeof(zero)) != 0))
			abort();
	}
	return 0;
}
