/*
 * fuzz_l2_redirect.c - libFuzzer target for the Redis Cluster redirect
 * parser and key slot function (agent/cache/l2.c): error texts come from
 * the network. The input (capped at 4 KiB, NUL-terminated copy) is parsed
 * as MOVED and as ASK; a success must give a slot below 16384, a non-empty
 * host and a port above 0. Every input is also hashed to a slot, which must
 * be below 16384.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/l2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char buf[4097];
	char host[HP_ADDR_MAX];
	unsigned slot;
	uint16_t port;

	if (size > 4096)
		size = 4096;
	memcpy(buf, data, size);
	buf[size] = '\0';
	for (int k = 0; k < 2; k++) {
		if (l2_parse_redirect(buf, k ? "ASK" : "MOVED", &slot, host, sizeof(host), &port) &&
		    (slot >= L2_SLOTS || !host[0] || port == 0))
			abort();
	}
	if (l2_key_slot((const char *)data, size) >= L2_SLOTS)
		abort();
	return 0;
}
