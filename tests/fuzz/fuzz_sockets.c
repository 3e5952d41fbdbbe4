/* fuzz_sockets.c - /proc/net/tcp line parser: never crash, never read past
 * the line, and only report LISTEN for well-formed lines. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/sockets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sock_listener l;
	/* An exact-size heap copy so ASan sees any overread. */
	char *line = malloc(size ? size : 1);
	int rc;

	if (!line)
		return 0;
	memcpy(line, data, size);
	rc = sockets_parse_line(line, size, &l);
	if (rc != 1 && rc != 0 && rc != -22)
		abort();
	free(line);
	return 0;
}
