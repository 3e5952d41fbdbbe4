/*
 * fuzz_http.c - libFuzzer target for the HTTP/1.1 head parser and the
 * chunked decoder.
 *
 * The first byte picks the grammar (request or response, and the request
 * method a response answers); the rest is a byte stream parsed the way the
 * proxy does: heads one after another, each followed by its body framed as
 * the parser said (Content-Length skipped, chunked decoded). Besides
 * memory safety it checks the contract: head_len never exceeds the input,
 * every header lies inside the head, any strict prefix of a parsed head is
 * NEED_MORE (the parser is stateless and the proxy re-parses), an error
 * always names a status and a reason, and the chunked decoder never
 * consumes past its input or yields data outside it, whole or fed in
 * small pieces with the same result.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/http_parse.h"

static void check_head(const struct http_msg *m, const char *in, size_t len)
{
	if (m->head_len == 0 || m->head_len > len)
		abort();
	for (unsigned i = 0; i < m->nheaders; i++) {
		const struct http_header *h = &m->headers[i];

		if (h->name < in || h->name + h->nlen > in + m->head_len ||
		    h->value < in || h->value + h->vlen > in + m->head_len || h->nlen == 0)
			abort();
	}
}

/* Decode a chunked body from in; returns bytes used or 0 on error/incomplete. */
static size_t decode(const struct http_limits *lim, const char *in, size_t len, size_t step,
		     uint64_t *total)
{
	struct http_chunked d;
	size_t off = 0;

	http_chunked_init(&d);
	*total = 0;
	while (off < len) {
		size_t n = len - off < step ? len - off : step, used = 0, dl = 0;
		const char *data;
		int rc = http_chunked_feed(&d, lim, in + off, n, &used, &data, &dl);

		if (used > n)
			abort();
		if (rc == HTTP_CHUNK_DATA && (data < in + off || data + dl > in + off + used))
			abort();
		off += used;
		if (rc == HTTP_CHUNK_DATA)
			*total += dl;
		if (rc == HTTP_CHUNK_ERROR) {
			if (!d.why)
				abort();
			return 0;
		}
		if (rc == HTTP_CHUNK_DONE)
			return off;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_msg m, m2;
	struct http_limits lim;
	const char *in = (const char *)data + 1;
	size_t len, off = 0;
	bool request;
	enum http_method rm;

	if (size < 1)
		return 0;
	http_limits_default(&lim);
	lim.max_head = 4096;
	lim.max_start_line = 1024;
	lim.max_headers = 32;
	lim.max_chunk_line = 256;
	lim.max_trailer = 512;
	request = !(data[0] & 1);
	rm = (data[0] >> 1) & 1 ? HTTP_M_HEAD : HTTP_M_GET;
	len = size - 1;

	for (int msgs = 0; msgs < 16 && off < len; msgs++) {
		const char *p = in + off;
		size_t n = len - off;
		int rc = http_parse_head(p, n, request, rm, &lim, &m);

		if (rc == HTTP_PARSE_ERROR) {
			if (!m.why || m.error_status < 400 || m.error_status > 599)
				abort();
			return 0;
		}
		if (rc == HTTP_PARSE_NEED_MORE)
			return 0;
		if (rc != HTTP_PARSE_OK)
			abort();
		check_head(&m, p, n);
		/* a strict prefix of the head is never complete */
		if (m.head_len > 1 &&
		    http_parse_head(p, m.head_len - 1, request, rm, &lim, &m2) == HTTP_PARSE_OK)
			abort();
		off += m.head_len;
		if (m.body == HTTP_BODY_LENGTH) {
			if (m.content_length > len - off)
				return 0;
			off += (size_t)m.content_length;
		} else if (m.body == HTTP_BODY_CHUNKED) {
			uint64_t t1, t2;
			size_t u1 = decode(&lim, in + off, len - off, len, &t1);
			size_t u2 = decode(&lim, in + off, len - off, 3, &t2);

			if (u1 != u2 || (u1 && t1 != t2))
				abort();
			if (!u1)
				return 0;
			off += u1;
		} else if (m.body == HTTP_BODY_EOF) {
			return 0;
		}
	}
	return 0;
}
