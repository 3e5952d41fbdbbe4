/*
 * wireproto.c - HTTP/1.x and RESP first-bytes classifiers (wireproto.h).
 *
 * The kernel side decides from a request's first bytes whether it starts a
 * request, which endpoint it is and whether a response is an error; these
 * are the same decisions in userspace, used to name endpoints from the text
 * events and tested with cmocka (tests/unit/test_route_norm.c), since BPF
 * code cannot be linked into a unit test. They look only at the first
 * line: no header parsing, no chunked bodies, no RESP3 attributes.
 */
#include <errno.h>
#include <string.h>
#include "hotpath/wireproto.h"

static const char *const methods[] = {
	"GET ", "PUT ", "POST ", "HEAD ", "PATCH ", "DELETE ", "OPTIONS ",
};

size_t wire_http_method_len(const char *b, size_t len)
{
	if (len < 5)
		return 0;
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		size_t ml = strlen(methods[i]);

		if (len >= ml && memcmp(b, methods[i], ml) == 0)
			return ml - 1;
	}
	return 0;
}

static unsigned be32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	return (unsigned)u[0] << 24 | (unsigned)u[1] << 16 | (unsigned)u[2] << 8 | u[3];
}

enum wire_proto wire_sniff(const char *b, size_t len)
{
	if (len >= 5 && wire_http_method_len(b, len))
		return WIRE_HTTP;
	if (len >= 4 && b[0] == '*' && b[1] >= '0' && b[1] <= '9')
		return WIRE_RESP;
	if (len >= 8) {
		unsigned l = be32(b), v = be32(b + 4);

		if (l >= 8 && l < 10000 && (v == 196608 || v == 80877103 || v == 80877104))
			return WIRE_POSTGRES;
	}
	if (len >= 6 && (b[0] == 'Q' || b[0] == 'P') && be32(b + 1) >= 4)
		return WIRE_POSTGRES;
	return WIRE_UNKNOWN;
}

int wire_http_request(const char *b, size_t len, const char **method, size_t *mlen,
		      const char **path, size_t *plen)
{
	size_t ml = wire_http_method_len(b, len), i;

	if (!ml)
		return -EINVAL;
	*method = b;
	*mlen = ml;
	*path = b + ml + 1;
	for (i = ml + 1; i < len; i++)
		if (b[i] == ' ' || b[i] == '\r' || b[i] == '\n' || b[i] == '\0')
			break;
	*plen = i - (ml + 1);
	return 0;
}

int wire_http_status(const char *b, size_t len)
{
	if (len < 12 || memcmp(b, "HTTP/", 5) != 0 || b[8] != ' ')
		return -EINVAL;
	for (int i = 9; i < 12; i++)
		if (b[i] < '0' || b[i] > '9')
			return -EINVAL;
	return (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
}

int wire_resp_command(const char *b, size_t len, char *out, size_t outlen)
{
	size_t at = 0, o = 0;

	if (!outlen || len < 4)
		return -EINVAL;
	if (b[0] == '*') {
		const char *nl = memchr(b, '\n', len);

		if (!nl || (size_t)(nl - b) + 1 >= len || nl[1] != '$')
			return -EINVAL;
		at = (size_t)(nl - b) + 1;
		nl = memchr(b + at, '\n', len - at);
		if (!nl)
			return -EINVAL;
		at = (size_t)(nl - b) + 1;
	} else if (!((b[0] >= 'A' && b[0] <= 'Z') || (b[0] >= 'a' && b[0] <= 'z'))) {
		return -EINVAL;
	}
	for (; at < len && o + 1 < outlen && o < 32; at++) {
		char c = b[at];

		if (c == '\r' || c == ' ' || c == '\n' || c == '\0')
			break;
		if (c >= 'a' && c <= 'z')
			c = (char)(c - ('a' - 'A'));
		out[o++] = c;
	}
	out[o] = '\0';
	return o ? (int)o : -EINVAL;
}

bool wire_resp_reply(const char *b, size_t len, bool *is_error)
{
	*is_error = false;
	if (!len || !strchr("+-:$*_,#%~(=!|>", b[0]) || b[0] == '\0')
		return false;
	*is_error = b[0] == '-' || b[0] == '!';
	return true;
}

enum wire_proto wire_guess_port(unsigned port)
{
	switch (port) {
	case 80: case 443: case 8000: case 8008: case 8080: case 8443: case 8479: case 9479:
		return WIRE_HTTP;
	case 6379: case 6380: case 6479:
		return WIRE_RESP;
	case 5432: case 5433: case 5479: case 6432:
		return WIRE_POSTGRES;
	default:
		return WIRE_UNKNOWN;
	}
}

const char *wire_proto_name(int p)
{
	switch (p) {
	case WIRE_HTTP: return "http";
	case WIRE_RESP: return "resp";
	case WIRE_POSTGRES: return "postgres";
	default: return "auto";
	}
}
