/*
 * fuzz_pgmsg.c - libFuzzer target for the PostgreSQL message walker
 * (agent/observe/pgmsg.c) and the first-bytes classifiers it sits next
 * to: every byte string, as a frontend or a backend capture, must be
 * walked without reading past its end.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/httproute.h"
#include "hotpath/pgmsg.h"
#include "hotpath/wireproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* exact-size heap copy so ASan sees any overread */
	char *b = malloc(size ? size : 1);
	struct pgmsg_summary s;
	const char *t, *m, *p;
	size_t tl, ml, pl;
	bool trunc, err;
	char out[64];

	if (!b)
		return 0;
	memcpy(b, data, size);
	if (pgmsg_query_text(b, size, &t, &tl, &trunc) == 0 && tl)
		(void)(t[0] + t[tl - 1]);
	(void)pgmsg_summarise_backend(b, size, &s);
	(void)pgmsg_tag_rows(b, size);
	(void)wire_sniff(b, size);
	(void)wire_resp_command(b, size, out, sizeof(out));
	(void)wire_resp_reply(b, size, &err);
	(void)wire_http_status(b, size);
	if (wire_http_request(b, size, &m, &ml, &p, &pl) == 0) {
		(void)route_hash(m, ml, p, pl);
		(void)route_normalise(p, pl, out, sizeof(out));
	}
	free(b);
	return 0;
}
