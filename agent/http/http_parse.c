/*
 * http_parse.c - strict, bounded HTTP/1.1 head parser and chunked decoder.
 *
 * What: the HTTP/1.1 wire grammar of RFC 9112 for both sides of the proxy,
 * requests from clients and responses from backends, plus the chunked
 * transfer coding and HTTP dates.
 *
 * How: one forward pass over the head. Line ends must be CRLF; a CR not
 * followed by LF, or an LF not preceded by CR, is an error (RFC 9112 2.2
 * lets a recipient accept bare LF; we do not, because the backend behind us
 * may split lines differently, which is the root of request smuggling).
 * Field names must be tokens with the colon right after them, values may
 * hold VCHAR, SP, HTAB and obs-text only, obs-fold is refused. Framing is
 * decided here and nowhere else (section 6.3): Transfer-Encoding must end in
 * "chunked" and name it once; a request with both Transfer-Encoding and
 * Content-Length, with two Content-Length fields (even equal ones), or with
 * Transfer-Encoding in HTTP/1.0 is refused. Everything is bounded by struct
 * http_limits and the right status is reported: 414 for a long request
 * line, 431 for too many or too large fields, 501 for an unknown transfer
 * coding, 505 for an unsupported version, 400 for the rest. The parser is
 * stateless per head (re-run on more bytes) and the chunked decoder is a
 * byte-level state machine that yields data runs pointing into the input,
 * so no body byte is copied.
 *
 * Why hand-written: llhttp is not packaged in Debian 12 and
 * libhttp-parser-dev (its predecessor) is unmaintained and lenient in
 * exactly the places that matter here (it accepts bare LF, and several
 * Content-Length handling quirks have been smuggling CVEs). nginx, haproxy
 * and Varnish all carry their own parser for the same reasons; this one is
 * written from the RFC, not from theirs, and is fuzzed (tests/fuzz/fuzz_http.c).
 *
 * What it does not do: HTTP/2, absolute-form rewriting (the proxy does
 * that), decoding of content codings, or any allocation.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "hotpath/http_parse.h"

#define HTTP_MAX_LEADING_CRLF 4

void http_limits_default(struct http_limits *lim)
{
	lim->max_start_line = 8192;
	lim->max_head = 32768;
	lim->max_headers = 100;
	lim->max_chunk_line = 4096;
	lim->max_trailer = 8192;
}

/* RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" /
 * "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
bool http_is_tchar(unsigned char c)
{
	if (isalnum(c))
		return true;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-vchar = VCHAR / obs-text, plus SP and HTAB inside a value. */
static inline bool is_field_byte(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

bool http_ieq(const char *a, size_t alen, const char *lit)
{
	size_t n = strlen(lit);

	return alen == n && strncasecmp(a, lit, n) == 0;
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

bool http_list_has(const char *v, size_t vlen, const char *tok)
{
	size_t i = 0;

	while (i < vlen) {
		size_t s, e;

		while (i < vlen && (is_ows(v[i]) || v[i] == ','))
			i++;
		s = i;
		while (i < vlen && v[i] != ',')
			i++;
		e = i;
		while (e > s && is_ows(v[e - 1]))
			e--;
		if (e > s && http_ieq(v + s, e - s, tok))
			return true;
	}
	return false;
}

int http_header_find(const struct http_msg *m, const char *name, int from)
{
	for (unsigned i = from < 0 ? 0 : (unsigned)from; i < m->nheaders; i++)
		if (http_ieq(m->headers[i].name, m->headers[i].nlen, name))
			return (int)i;
	return -1;
}

const char *http_header_get(const struct http_msg *m, const char *name, size_t *vlen)
{
	int i = http_header_find(m, name, 0);

	if (i < 0)
		return NULL;
	*vlen = m->headers[i].vlen;
	return m->headers[i].value;
}

static int fail(struct http_msg *m, unsigned status, const char *why)
{
	m->error_status = m->request ? status : 502;
	m->why = why;
	return HTTP_PARSE_ERROR;
}

/*
 * Find the end of the line starting at p (bounded by end). Returns the
 * index of the CR of the CRLF, -1 if the line is incomplete, -2 on a bare
 * CR or bare LF or a NUL.
 */
static long line_end(const char *p, const char *end)
{
	const char *q = p;

	for (; q < end; q++) {
		if (*q == '\r') {
			if (q + 1 == end)
				return -1;
			if (q[1] != '\n')
				return -2;
			return q - p;
		}
		if (*q == '\n' || *q == '\0')
			return -2;
	}
	return -1;
}

static enum http_method method_of(const char *s, size_t n)
{
	static const struct { const char *name; enum http_method m; } tab[] = {
		{ "GET", HTTP_M_GET }, { "HEAD", HTTP_M_HEAD }, { "POST", HTTP_M_POST },
		{ "PUT", HTTP_M_PUT }, { "DELETE", HTTP_M_DELETE }, { "OPTIONS", HTTP_M_OPTIONS },
		{ "PATCH", HTTP_M_PATCH }, { "CONNECT", HTTP_M_CONNECT }, { "TRACE", HTTP_M_TRACE },
	};

	/* Methods are case-sensitive (RFC 9110 9.1). */
	for (unsigned i = 0; i < HP_ARRAY_SIZE(tab); i++)
		if (strlen(tab[i].name) == n && memcmp(tab[i].name, s, n) == 0)
			return tab[i].m;
	return HTTP_M_OTHER;
}

/* "HTTP/" DIGIT "." DIGIT -> 10/11; -1 malformed; -2 well-formed but unsupported. */
static int parse_version(const char *s, size_t n)
{
	if (n != 8 || memcmp(s, "HTTP/", 5) != 0 || !isdigit((unsigned char)s[5]) || s[6] != '.' ||
	    !isdigit((unsigned char)s[7]))
		return -1;
	if (s[5] != '1')
		return -2;
	return s[7] == '0' ? 10 : 11;
}

static int parse_request_line(const char *p, size_t n, const struct http_limits *lim,
			      struct http_msg *m)
{
	const char *sp1, *sp2;
	int v;

	sp1 = memchr(p, ' ', n);
	if (!sp1 || sp1 == p)
		return fail(m, 400, "malformed request line");
	for (const char *q = p; q < sp1; q++)
		if (!http_is_tchar((unsigned char)*q))
			return fail(m, 400, "invalid character in method");
	sp2 = memchr(sp1 + 1, ' ', (size_t)(p + n - sp1 - 1));
	if (!sp2 || sp2 == sp1 + 1)
		return fail(m, 400, "malformed request line");
	m->method = p;
	m->method_len = (size_t)(sp1 - p);
	m->meth = method_of(p, m->method_len);
	m->target = sp1 + 1;
	m->target_len = (size_t)(sp2 - sp1 - 1);
	for (size_t i = 0; i < m->target_len; i++) {
		unsigned char c = (unsigned char)m->target[i];

		if (c <= 0x20 || c >= 0x7f)
			return fail(m, 400, "invalid character in request target");
	}
	v = parse_version(sp2 + 1, (size_t)(p + n - sp2 - 1));
	if (v == -2)
		return fail(m, 505, "HTTP version not supported");
	if (v < 0)
		return fail(m, 400, "malformed HTTP version");
	m->version = (unsigned)v;
	(void)lim;
	/* Target forms (RFC 9112 3.2): origin, absolute, authority (CONNECT),
	 * asterisk (OPTIONS). */
	if (m->meth == HTTP_M_CONNECT)
		return fail(m, 501, "CONNECT is not supported by this proxy");
	if (m->target[0] == '*') {
		if (m->target_len != 1 || m->meth != HTTP_M_OPTIONS)
			return fail(m, 400, "asterisk-form target outside OPTIONS");
	} else if (m->target[0] != '/') {
		size_t sl = 0;

		while (sl < m->target_len && m->target[sl] != ':')
			sl++;
		if (sl == 0 || sl + 3 > m->target_len || memcmp(m->target + sl, "://", 3) != 0)
			return fail(m, 400, "request target is not origin-form or absolute-form");
		for (size_t i = 0; i < sl; i++)
			if (!isalnum((unsigned char)m->target[i]) && !strchr("+-.", m->target[i]))
				return fail(m, 400, "invalid URI scheme");
	}
	return HTTP_PARSE_OK;
}

static int parse_status_line(const char *p, size_t n, struct http_msg *m)
{
	int v;

	if (n < 12 || p[8] != ' ')
		return fail(m, 502, "malformed status line");
	v = parse_version(p, 8);
	if (v < 0)
		return fail(m, 502, "unsupported HTTP version in status line");
	m->version = (unsigned)v;
	if (!isdigit((unsigned char)p[9]) || !isdigit((unsigned char)p[10]) ||
	    !isdigit((unsigned char)p[11]) || p[9] < '1')
		return fail(m, 502, "malformed status code");
	m->status = (unsigned)((p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0'));
	if (n > 12) {
		if (p[12] != ' ')
			return fail(m, 502, "malformed status line");
		m->reason = p + 13;
		m->reason_len = n - 13;
		for (size_t i = 0; i < m->reason_len; i++)
			if (!is_field_byte((unsigned char)m->reason[i]))
				return fail(m, 502, "invalid character in reason phrase");
	} else {
		/* "HTTP/1.1 200" without SP: seen in the wild, unambiguous. */
		m->reason = p + 12;
		m->reason_len = 0;
	}
	return HTTP_PARSE_OK;
}

/* Strict 1*DIGIT, bounded to 2^62. */
static bool parse_u64(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 18)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return true;
}

/*
 * Apply Transfer-Encoding's list: it must end in chunked, name chunked once,
 * and every other coding is one we do not implement (501).
 */
static int check_te(struct http_msg *m, const char *v, size_t vlen, bool *chunked_last,
		    unsigned *nchunked, bool *other)
{
	size_t i = 0;

	while (i < vlen) {
		size_t s, e;

		while (i < vlen && (is_ows(v[i]) || v[i] == ','))
			i++;
		if (i >= vlen)
			break;
		s = i;
		while (i < vlen && v[i] != ',')
			i++;
		e = i;
		while (e > s && is_ows(v[e - 1]))
			e--;
		/* transfer-coding = token *( OWS ";" OWS transfer-parameter ) */
		for (size_t k = s; k < e; k++)
			if (!http_is_tchar((unsigned char)v[k]))
				return fail(m, 400, "malformed Transfer-Encoding");
		if (http_ieq(v + s, e - s, "chunked")) {
			(*nchunked)++;
			*chunked_last = true;
		} else {
			*other = true;
			*chunked_last = false;
		}
	}
	return HTTP_PARSE_OK;
}

int http_parse_head(const char *buf, size_t len, bool request, enum http_method req_meth,
		    const struct http_limits *lim, struct http_msg *m)
{
	const char *p = buf, *end = buf + len;
	unsigned leading = 0, nte = 0, nchunked = 0, ncl = 0, nhost = 0;
	bool te_chunked_last = false, te_other = false, conn_close = false, conn_ka = false;
	bool conn_upgrade = false, has_upgrade = false;
	long le;
	int rc;

	memset(m, 0, offsetof(struct http_msg, headers));
	m->nheaders = 0;
	m->head_len = 0;
	m->body = HTTP_BODY_NONE;
	m->content_length = 0;
	m->keep_alive = m->expect_continue = m->upgrade = false;
	m->host = NULL;
	m->host_len = 0;
	m->error_status = 0;
	m->why = NULL;
	m->request = request;

	/* RFC 9112 2.2: ignore at least one empty line before a request-line. */
	while (request && end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
		if (++leading > HTTP_MAX_LEADING_CRLF)
			return fail(m, 400, "too many empty lines before the request line");
		p += 2;
	}
	le = line_end(p, end);
	if (le == -2)
		return fail(m, 400, "bare CR or LF, or NUL, in the start line");
	if (le == -1) {
		if ((size_t)(end - p) > lim->max_start_line)
			return fail(m, request ? 414 : 502,
				    request ? "request line too long" : "status line too long");
		return HTTP_PARSE_NEED_MORE;
	}
	if ((size_t)le > lim->max_start_line)
		return fail(m, request ? 414 : 502,
			    request ? "request line too long" : "status line too long");
	rc = request ? parse_request_line(p, (size_t)le, lim, m) : parse_status_line(p, (size_t)le, m);
	if (rc != HTTP_PARSE_OK)
		return rc;
	p += le + 2;
	/* RFC 9112 2.2: whitespace between the start line and the first field
	 * must be rejected (it could hide a field from one parser). */
	if (p < end && is_ows(*p))
		return fail(m, 400, "whitespace after the start line");

	for (;;) {
		const char *colon, *v, *ve;
		struct http_header *h;

		if ((size_t)(p - buf) > lim->max_head + leading * 2)
			return fail(m, 431, "header section too large");
		le = line_end(p, end);
		if (le == -2)
			return fail(m, 400, "bare CR or LF, or NUL, in a header field");
		if (le == -1) {
			if ((size_t)(end - buf) > lim->max_head + leading * 2 + 2)
				return fail(m, 431, "header section too large");
			return HTTP_PARSE_NEED_MORE;
		}
		if (le == 0) {
			p += 2;
			break;
		}
		if (is_ows(*p))
			return fail(m, 400, "obsolete line folding (obs-fold) is not accepted");
		if (m->nheaders >= lim->max_headers || m->nheaders >= HTTP_MAX_HEADERS)
			return fail(m, 431, "too many header fields");
		colon = memchr(p, ':', (size_t)le);
		if (!colon || colon == p)
			return fail(m, 400, "header field without a name");
		for (const char *q = p; q < colon; q++)
			if (!http_is_tchar((unsigned char)*q))
				return fail(m, 400, is_ows(*q) ?
					    "whitespace between a field name and the colon" :
					    "invalid character in a field name");
		v = colon + 1;
		ve = p + le;
		while (v < ve && is_ows(*v))
			v++;
		while (ve > v && is_ows(ve[-1]))
			ve--;
		for (const char *q = v; q < ve; q++)
			if (!is_field_byte((unsigned char)*q))
				return fail(m, 400, "invalid character in a field value");
		h = &m->headers[m->nheaders++];
		h->name = p;
		h->nlen = (size_t)(colon - p);
		h->value = v;
		h->vlen = (size_t)(ve - v);
		p += le + 2;

		if (http_ieq(h->name, h->nlen, "content-length")) {
			if (++ncl > 1)
				return fail(m, 400, "more than one Content-Length");
			if (!parse_u64(h->value, h->vlen, &m->content_length))
				return fail(m, 400, "Content-Length is not a decimal number");
		} else if (http_ieq(h->name, h->nlen, "transfer-encoding")) {
			nte++;
			rc = check_te(m, h->value, h->vlen, &te_chunked_last, &nchunked, &te_other);
			if (rc != HTTP_PARSE_OK)
				return rc;
		} else if (http_ieq(h->name, h->nlen, "host")) {
			if (++nhost > 1)
				return fail(m, 400, "more than one Host");
			for (size_t k = 0; k < h->vlen; k++) {
				unsigned char c = (unsigned char)h->value[k];

				if (c <= 0x20 || c >= 0x7f || strchr("/?#@\\\"<>{}|^`", c))
					return fail(m, 400, "invalid character in Host");
			}
			m->host = h->value;
			m->host_len = h->vlen;
		} else if (http_ieq(h->name, h->nlen, "connection")) {
			if (http_list_has(h->value, h->vlen, "close"))
				conn_close = true;
			if (http_list_has(h->value, h->vlen, "keep-alive"))
				conn_ka = true;
			if (http_list_has(h->value, h->vlen, "upgrade"))
				conn_upgrade = true;
		} else if (http_ieq(h->name, h->nlen, "upgrade")) {
			has_upgrade = true;
		} else if (request && http_ieq(h->name, h->nlen, "expect")) {
			if (http_ieq(h->value, h->vlen, "100-continue"))
				m->expect_continue = true;
			else
				return fail(m, 417, "unsupported Expect value");
		}
	}
	m->head_len = (size_t)(p - buf);
	m->keep_alive = m->version >= 11 ? !conn_close : (conn_ka && !conn_close);
	m->upgrade = conn_upgrade && has_upgrade;

	/* ---- framing, RFC 9112 6.3 ---- */
	if (nte) {
		if (m->version < 11)
			return fail(m, 400, "Transfer-Encoding in an HTTP/1.0 message");
		if (ncl)
			return fail(m, 400, "both Transfer-Encoding and Content-Length");
		if (nchunked > 1)
			return fail(m, 400, "chunked applied more than once");
		if (request) {
			if (te_other)
				return fail(m, te_chunked_last ? 501 : 400,
					    te_chunked_last ? "unsupported transfer coding" :
					    "Transfer-Encoding does not end in chunked");
			if (!te_chunked_last)
				return fail(m, 400, "Transfer-Encoding does not end in chunked");
		}
	}
	if (request) {
		if (m->version >= 11 && nhost == 0)
			return fail(m, 400, "HTTP/1.1 request without Host");
		if (nte)
			m->body = HTTP_BODY_CHUNKED;
		else if (ncl && m->content_length > 0)
			m->body = HTTP_BODY_LENGTH;
		return HTTP_PARSE_OK;
	}
	/* responses */
	if (req_meth == HTTP_M_HEAD || (m->status >= 100 && m->status < 200) || m->status == 204 ||
	    m->status == 304) {
		m->body = HTTP_BODY_NONE;
		if (m->status == 204 && (nte || (ncl && m->content_length)))
			return fail(m, 502, "204 response with a body");
	} else if (nte) {
		if (te_chunked_last && !te_other)
			m->body = HTTP_BODY_CHUNKED;
		else if (te_chunked_last)
			return fail(m, 502, "unsupported transfer coding in a response");
		else {
			m->body = HTTP_BODY_EOF;  /* RFC 9112 6.3 item 4 */
			m->keep_alive = false;
		}
	} else if (ncl) {
		m->body = m->content_length ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
	} else {
		m->body = HTTP_BODY_EOF;
		m->keep_alive = false;
	}
	return HTTP_PARSE_OK;
}

/* ---- chunked ---------------------------------------------------------------- */

enum {
	CK_SIZE = 0,      /* reading hex digits */
	CK_EXT,           /* after digits: extensions up to CR */
	CK_SIZE_LF,       /* saw CR after size line */
	CK_DATA,
	CK_DATA_CR,
	CK_DATA_LF,
	CK_TRAILER_START, /* start of a trailer line (or the final CRLF) */
	CK_TRAILER_NAME,
	CK_TRAILER_VALUE,
	CK_TRAILER_LF,    /* saw CR ending a trailer field */
	CK_END_LF,        /* saw CR of the final empty line */
	CK_DONE,
};

void http_chunked_init(struct http_chunked *d)
{
	memset(d, 0, sizeof(*d));
}

static int ck_fail(struct http_chunked *d, const char *why)
{
	d->why = why;
	return HTTP_CHUNK_ERROR;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (unsigned char)tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int http_chunked_feed(struct http_chunked *d, const struct http_limits *lim, const char *in,
		      size_t len, size_t *consumed, const char **data, size_t *dlen)
{
	size_t i = 0;

	*data = NULL;
	*dlen = 0;
	while (i < len) {
		unsigned char c = (unsigned char)in[i];

		switch (d->state) {
		case CK_SIZE: {
			int h = hexval(c);

			if (h >= 0) {
				if (d->digits >= 15)
					return ck_fail(d, "chunk size too large");
				d->remaining = d->remaining * 16 + (uint64_t)h;
				d->digits++;
				d->line++;
				i++;
				break;
			}
			if (d->digits == 0)
				return ck_fail(d, "chunk size is not hexadecimal");
			d->state = CK_EXT;
			break;
		}
		case CK_EXT:
			/* chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ):
			 * we validate the bytes and bound the line, values are ignored. */
			if (++d->line > lim->max_chunk_line)
				return ck_fail(d, "chunk size line too long");
			i++;
			if (c == '\r') {
				d->state = CK_SIZE_LF;
			} else if (c == ';') {
				d->ext = true;
			} else if (is_ows((char)c)) {
				;
			} else if (!d->ext || !(http_is_tchar(c) || c == '=' || c == '"' ||
					       c == '\\' || (c >= 0x20 && c != 0x7f))) {
				return ck_fail(d, "invalid character in a chunk size line");
			}
			break;
		case CK_SIZE_LF:
			if (c != '\n')
				return ck_fail(d, "bare CR in a chunk size line");
			i++;
			d->line = 0;
			d->digits = 0;
			d->ext = false;
			d->state = d->remaining ? CK_DATA : CK_TRAILER_START;
			break;
		case CK_DATA: {
			size_t n = len - i;

			if (n > d->remaining)
				n = (size_t)d->remaining;
			*data = in + i;
			*dlen = n;
			d->remaining -= n;
			d->total += n;
			i += n;
			if (d->remaining == 0)
				d->state = CK_DATA_CR;
			*consumed = i;
			return HTTP_CHUNK_DATA;
		}
		case CK_DATA_CR:
			if (c != '\r')
				return ck_fail(d, "chunk data not followed by CRLF");
			i++;
			d->state = CK_DATA_LF;
			break;
		case CK_DATA_LF:
			if (c != '\n')
				return ck_fail(d, "chunk data not followed by CRLF");
			i++;
			d->state = CK_SIZE;
			d->remaining = 0;
			break;
		case CK_TRAILER_START:
			if (c == '\r') {
				i++;
				d->state = CK_END_LF;
				break;
			}
			if (!http_is_tchar(c))
				return ck_fail(d, is_ows((char)c) ? "obs-fold in the trailer section"
						   : "invalid character in a trailer field name");
			d->state = CK_TRAILER_NAME;
			d->line = 0;
			break;
		case CK_TRAILER_NAME:
			if (++d->trailer > lim->max_trailer)
				return ck_fail(d, "trailer section too large");
			i++;
			if (c == ':') {
				d->state = CK_TRAILER_VALUE;
			} else if (!http_is_tchar(c)) {
				return ck_fail(d, "invalid character in a trailer field name");
			}
			break;
		case CK_TRAILER_VALUE:
			if (++d->trailer > lim->max_trailer)
				return ck_fail(d, "trailer section too large");
			i++;
			if (c == '\r')
				d->state = CK_TRAILER_LF;
			else if (!is_field_byte(c))
				return ck_fail(d, "invalid character in a trailer field value");
			break;
		case CK_TRAILER_LF:
			if (c != '\n')
				return ck_fail(d, "bare CR in the trailer section");
			i++;
			d->state = CK_TRAILER_START;
			break;
		case CK_END_LF:
			if (c != '\n')
				return ck_fail(d, "bare CR at the end of a chunked body");
			i++;
			d->state = CK_DONE;
			*consumed = i;
			return HTTP_CHUNK_DONE;
		case CK_DONE:
			*consumed = i;
			return HTTP_CHUNK_DONE;
		default:
			return ck_fail(d, "chunked decoder in a bad state");
		}
	}
	*consumed = i;
	if (d->state == CK_DONE)
		return HTTP_CHUNK_DONE;
	if (d->state == CK_DATA && d->remaining == 0)
		d->state = CK_DATA_CR;
	return HTTP_CHUNK_AGAIN;
}

/* ---- dates -------------------------------------------------------------------- */

static int month_of(const char *s)
{
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

	for (int i = 0; i < 12; i++)
		if (memcmp(s, mon[i], 3) == 0)
			return i;
	return -1;
}

int64_t http_date_parse(const char *s, size_t len)
{
	char tmp[64], mon[4] = { 0 }, wd[16];
	struct tm tm;
	int d, y, H, M, S, n = 0;

	if (len == 0 || len >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	memset(&tm, 0, sizeof(tm));
	/* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
	if (sscanf(tmp, "%3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d GMT%n", wd, &d, mon, &y, &H,
		   &M, &S, &n) == 7 && n == (int)len) {
		;
	} else if (sscanf(tmp, "%15[A-Za-z], %2d-%3[A-Za-z]-%2d %2d:%2d:%2d GMT%n", wd, &d, mon,
			  &y, &H, &M, &S, &n) == 7 && n == (int)len) {
		/* RFC 850: two-digit year, RFC 9110 5.6.7 says interpret as the
		 * most recent past year with those digits. */
		y += y < 70 ? 2000 : 1900;
	} else if (sscanf(tmp, "%3[A-Za-z] %3[A-Za-z] %2d %2d:%2d:%2d %4d%n", wd, mon, &d, &H, &M,
			  &S, &y, &n) == 7 && n == (int)len) {
		;   /* asctime */
	} else {
		return -1;
	}
	tm.tm_mon = month_of(mon);
	if (tm.tm_mon < 0 || d < 1 || d > 31 || H > 23 || M > 59 || S > 60 || y < 1900)
		return -1;
	tm.tm_mday = d;
	tm.tm_year = y - 1900;
	tm.tm_hour = H;
	tm.tm_min = M;
	tm.tm_sec = S;
	return (int64_t)timegm(&tm);
}

size_t http_date_format(int64_t t, char *out, size_t outlen)
{
	struct tm tm;
	time_t tt = (time_t)t;
	size_t n;

	if (!gmtime_r(&tt, &tm))
		return 0;
	n = strftime(out, outlen, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	return n;
}
