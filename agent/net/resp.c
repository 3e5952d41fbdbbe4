/*
 * resp.c - RESP2 request parser and reply encoders (see include/hotpath/resp.h).
 *
 * What: resp_parse() turns the front of a query buffer into an argv of
 * counted strings, for both forms Redis accepts: multibulk arrays
 * ("*N\r\n$len\r\n...\r\n", what every client library sends) and inline
 * lines ("SET k v\r\n", what telnet and redis-benchmark's PING_INLINE send),
 * with Redis's quoting rules for the latter. The encoders append RESP2
 * replies to a bounded struct buf.
 *
 * How: the parser is stateless. Multibulk argv entries point straight into
 * the caller's buffer; a call that finds the command incomplete returns
 * RESP_NEED_MORE without consuming, and the next call walks the headers
 * again, skipping payloads by their declared lengths, so a GET costs one
 * pass over ~30 bytes and no allocation. Every length is checked against
 * struct resp_limits before it is trusted, and a declared size that could
 * never fit is rejected as soon as its header is seen rather than after
 * the bytes have been buffered. Header lines are at most RESP_HDR_MAX bytes,
 * so a peer cannot make us scan far for a "\r". Inline lines are unquoted
 * into cmd->scratch (unquoting only shrinks text, so the line length bounds
 * it).
 *
 * What not: no RESP3, no reply parsing (hiredis does that for the L2 tier),
 * no state kept between calls, and no silent resynchronisation after a
 * framing error: like redis-server, a protocol error is fatal to the
 * connection, so the caller replies with the message and closes. Error
 * messages are Redis's own texts where Redis has one; they never contain
 * CR or LF, so the caller may send them verbatim after "-ERR ".
 *
 * Hand-written rather than taken from hiredis: hiredis parses replies, not
 * requests, and the server side needs zero-copy argv and Redis's inline
 * quoting, which no packaged library provides.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "hotpath/resp.h"

/* Longest "*N" / "$N" header line (with CRLF) worth waiting for: "-" plus
 * 19 digits is the longest valid int64. */
#define RESP_HDR_MAX 24

/* Formatted protocol errors (they name a limit or a byte) live here; one per
 * thread, valid until that thread's next resp_parse(). */
static __thread char resp_errbuf[128];

static enum resp_status resp_fail(const char **err, const char *msg)
{
	*err = msg;
	return RESP_PROTO_ERROR;
}

static enum resp_status resp_failf(const char **err, const char *fmt, ...) HP_PRINTF(2, 3);
static enum resp_status resp_failf(const char **err, const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	vsnprintf(resp_errbuf, sizeof(resp_errbuf), fmt, ap);
	va_end(ap);
	/* The message goes out as one RESP error line. */
	for (p = resp_errbuf; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
			*p = ' ';
	*err = resp_errbuf;
	return RESP_PROTO_ERROR;
}

/* As Redis string2ll: optional '-', no leading zeros, no '+', no spaces. */
int resp_arg_ll(const char *arg, size_t len, long long *out)
{
	unsigned long long v = 0, lim;
	bool neg = false;
	size_t i = 0;

	if (len == 0 || len > 20)
		return -EINVAL;
	if (len == 1 && arg[0] == '0') {
		*out = 0;
		return 0;
	}
	if (arg[0] == '-') {
		neg = true;
		i = 1;
		if (len == 1)
			return -EINVAL;
	}
	if (arg[i] < '1' || arg[i] > '9')
		return -EINVAL;
	lim = neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
	for (; i < len; i++) {
		unsigned d = (unsigned)(arg[i] - '0');

		if (d > 9)
			return -EINVAL;
		if (v > (lim - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	if (neg)
		*out = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
	else
		*out = (long long)v;
	return 0;
}

static inline unsigned char resp_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

int resp_arg_is(const char *arg, size_t len, const char *lit)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (lit[i] == '\0' ||
		    resp_lower((unsigned char)arg[i]) != resp_lower((unsigned char)lit[i]))
			return 0;
	}
	return lit[len] == '\0';
}

/*
 * Find the "\r\n" that ends a header starting at p (after its type byte).
 * 1: found, *hlen is the number of bytes before "\r". 0: need more bytes.
 * -1: malformed (too long, or CR not followed by LF).
 */
static int resp_header_end(const char *p, size_t avail, size_t *hlen)
{
	size_t win = avail < RESP_HDR_MAX ? avail : RESP_HDR_MAX;
	const char *cr = memchr(p, '\r', win);

	if (!cr)
		return avail >= RESP_HDR_MAX ? -1 : 0;
	if ((size_t)(cr - p) + 1 >= avail)
		return 0;
	if (cr[1] != '\n')
		return -1;
	*hlen = (size_t)(cr - p);
	return 1;
}

static enum resp_status resp_parse_multibulk(const char *buf, size_t len,
					     const struct resp_limits *lim,
					     struct resp_cmd *cmd, size_t *consumed,
					     const char **err)
{
	size_t pos = 1, hlen, argc, i, max_args;
	long long n;
	int rc;

	rc = resp_header_end(buf + 1, len - 1, &hlen);
	if (rc == 0)
		return RESP_NEED_MORE;
	if (rc < 0 || resp_arg_ll(buf + 1, hlen, &n) != 0 || n > INT_MAX)
		return resp_fail(err, "Protocol error: invalid multibulk length");
	pos = 1 + hlen + 2;
	if (n <= 0) {
		/* "*0" and "*-1": Redis consumes them and runs nothing. */
		*consumed = pos;
		return RESP_EMPTY;
	}
	max_args = lim->max_args < cmd->cap ? lim->max_args : cmd->cap;
	if ((size_t)n > max_args)
		return resp_failf(err, "Protocol error: too many arguments (%lld, max %zu)",
				  n, max_args);
	argc = (size_t)n;
	for (i = 0; i < argc; i++) {
		long long blen;

		if (pos >= len)
			return RESP_NEED_MORE;
		if (hp_unlikely(buf[pos] != '$'))
			return resp_failf(err, "Protocol error: expected '$', got '%c'", buf[pos]);
		rc = resp_header_end(buf + pos + 1, len - pos - 1, &hlen);
		if (rc == 0)
			return RESP_NEED_MORE;
		if (rc < 0 || resp_arg_ll(buf + pos + 1, hlen, &blen) != 0 || blen < 0 ||
		    (unsigned long long)blen > lim->max_bulk)
			return resp_fail(err, "Protocol error: invalid bulk length");
		pos += 1 + hlen + 2;
		/* Refuse a command that cannot fit before buffering it. */
		if (pos > lim->max_query || (size_t)blen + 2 > lim->max_query - pos)
			return resp_failf(err, "Protocol error: request is larger than the query "
					  "buffer limit (%zu bytes)", lim->max_query);
		if (len - pos < (size_t)blen + 2)
			return RESP_NEED_MORE;
		if (hp_unlikely(buf[pos + blen] != '\r' || buf[pos + blen + 1] != '\n'))
			return resp_fail(err, "Protocol error: bulk data is not followed by CRLF");
		cmd->argv[i] = buf + pos;
		cmd->argvlen[i] = (size_t)blen;
		pos += (size_t)blen + 2;
	}
	cmd->argc = argc;
	*consumed = pos;
	return RESP_DONE;
}

static inline bool resp_is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static inline int resp_hex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = resp_lower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * Split one inline line as Redis's sdssplitargs does: whitespace separates
 * arguments; "..." understands \n \r \t \b \a \xHH and \<any>; '...'
 * understands only \'; a closing quote must be followed by whitespace or the
 * end; quotes may start mid-argument (a"b c" is one argument). Like Redis,
 * a NUL byte ends the line.
 */
static enum resp_status resp_split_inline(const char *line, size_t n, size_t max_args,
					  struct resp_cmd *cmd, const char **err)
{
	const char *p = line, *end;
	const char *nul = memchr(line, '\0', n);
	char *w = cmd->scratch;
	size_t argc = 0;

	end = nul ? nul : line + n;
	if (cmd->scratch == NULL || cmd->scratch_cap < (size_t)(end - line))
		return resp_fail(err, "Protocol error: too big inline request");
	for (;;) {
		bool inq = false, insq = false, done = false;
		char *start;

		while (p < end && resp_is_space((unsigned char)*p))
			p++;
		if (p == end)
			break;
		if (argc == max_args)
			return resp_failf(err, "Protocol error: too many arguments (max %zu)",
					  max_args);
		start = w;
		while (!done) {
			if (inq) {
				if (p == end)
					return resp_fail(err, "Protocol error: unbalanced quotes in request");
				if (*p == '\\' && end - p >= 4 && p[1] == 'x' &&
				    resp_hex((unsigned char)p[2]) >= 0 &&
				    resp_hex((unsigned char)p[3]) >= 0) {
					*w++ = (char)(resp_hex((unsigned char)p[2]) * 16 +
						      resp_hex((unsigned char)p[3]));
					p += 3;
				} else if (*p == '\\' && end - p >= 2) {
					char c;

					p++;
					switch (*p) {
					case 'n': c = '\n'; break;
					case 'r': c = '\r'; break;
					case 't': c = '\t'; break;
					case 'b': c = '\b'; break;
					case 'a': c = '\a'; break;
					default: c = *p; break;
					}
					*w++ = c;
				} else if (*p == '"') {
					if (p + 1 < end && !resp_is_space((unsigned char)p[1]))
						return resp_fail(err, "Protocol error: unbalanced quotes in request");
					done = true;
				} else {
					*w++ = *p;
				}
			} else if (insq) {
				if (p == end)
					return resp_fail(err, "Protocol error: unbalanced quotes in request");
				if (*p == '\\' && end - p >= 2 && p[1] == '\'') {
					p++;
					*w++ = '\'';
				} else if (*p == '\'') {
					if (p + 1 < end && !resp_is_space((unsigned char)p[1]))
						return resp_fail(err, "Protocol error: unbalanced quotes in request");
					done = true;
				} else {
					*w++ = *p;
				}
			} else {
				if (p == end)
					break;
				switch (*p) {
				case ' ': case '\n': case '\r': case '\t':
					done = true;
					break;
				case '"':
					inq = true;
					break;
				case '\'':
					insq = true;
					break;
				default:
					*w++ = *p;
					break;
				}
			}
			if (p < end)
				p++;
		}
		cmd->argv[argc] = start;
		cmd->argvlen[argc] = (size_t)(w - start);
		argc++;
	}
	cmd->argc = argc;
	return argc ? RESP_DONE : RESP_EMPTY;
}

static enum resp_status resp_parse_inline(const char *buf, size_t len,
					  const struct resp_limits *lim,
					  struct resp_cmd *cmd, size_t *consumed,
					  const char **err)
{
	size_t limit = RESP_INLINE_MAX, win, n, max_args;
	const char *nl;
	enum resp_status st;

	if (lim->max_query < limit)
		limit = lim->max_query;
	win = len < limit ? len : limit;
	nl = memchr(buf, '\n', win);
	if (!nl) {
		if (len >= limit)
			return resp_fail(err, "Protocol error: too big inline request");
		return RESP_NEED_MORE;
	}
	n = (size_t)(nl - buf);
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	max_args = lim->max_args < cmd->cap ? lim->max_args : cmd->cap;
	st = resp_split_inline(buf, n, max_args, cmd, err);
	if (st == RESP_PROTO_ERROR)
		return st;
	*consumed = (size_t)(nl - buf) + 1;
	return st;
}

enum resp_status resp_parse(const char *buf, size_t len, const struct resp_limits *lim,
			    struct resp_cmd *cmd, size_t *consumed, const char **err)
{
	cmd->argc = 0;
	if (len == 0)
		return RESP_NEED_MORE;
	if (buf[0] == '*')
		return resp_parse_multibulk(buf, len, lim, cmd, consumed, err);
	return resp_parse_inline(buf, len, lim, cmd, consumed, err);
}

/* ---- reply encoders ------------------------------------------------------ */

/* Decimal digits of v into the end of tmp[21]; returns the start. */
static char *resp_fmt_ll(char tmp[21], long long v)
{
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	char *p = tmp + 21;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	return p;
}

/* "<type><v>\r\n" in one append. */
static int resp_add_prefixed_ll(struct buf *b, char type, long long v)
{
	char tmp[24], *p;

	tmp[21] = '\r';
	tmp[22] = '\n';
	p = resp_fmt_ll(tmp, v);
	*--p = type;
	return buf_append(b, p, (size_t)(tmp + 23 - p));
}

int resp_add_simple(struct buf *b, const char *s)
{
	size_t n = strlen(s);
	int err = buf_reserve(b, n + 3);

	if (err)
		return err;
	{
		char *w = b->data + b->off + b->len;

		w[0] = '+';
		memcpy(w + 1, s, n);
		w[n + 1] = '\r';
		w[n + 2] = '\n';
		b->len += n + 3;
	}
	return 0;
}

int resp_add_error(struct buf *b, const char *s)
{
	size_t n = strlen(s), i;
	int err = buf_reserve(b, n + 3);
	char *w;

	if (err)
		return err;
	w = b->data + b->off + b->len;
	w[0] = '-';
	/* An error is one line: Redis turns CR/LF in messages into spaces. */
	for (i = 0; i < n; i++)
		w[1 + i] = (s[i] == '\r' || s[i] == '\n') ? ' ' : s[i];
	w[n + 1] = '\r';
	w[n + 2] = '\n';
	b->len += n + 3;
	return 0;
}

int resp_add_errorf(struct buf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return resp_add_error(b, "ERR");
	if ((size_t)n >= sizeof(small)) {
		/* Long message (rare): format into the buffer, then fix it up. */
		size_t start = b->len, i;
		char *w;
		int err;

		err = buf_append(b, "-", 1);
		if (err)
			return err;
		va_start(ap, fmt);
		err = buf_vprintf(b, fmt, ap);
		va_end(ap);
		if (!err)
			err = buf_append(b, "\r\n", 2);
		if (err) {
			b->len = start;
			return err;
		}
		w = b->data + b->off + start;
		for (i = 1; i < b->len - start - 2; i++)
			if (w[i] == '\r' || w[i] == '\n')
				w[i] = ' ';
		return 0;
	}
	return resp_add_error(b, small);
}

int resp_add_int(struct buf *b, long long v)
{
	return resp_add_prefixed_ll(b, ':', v);
}

int resp_add_array(struct buf *b, long long n)
{
	return resp_add_prefixed_ll(b, '*', n);
}

int resp_add_bulk(struct buf *b, const char *p, size_t n)
{
	char tmp[24], *h;
	size_t hlen;
	char *w;
	int err;

	tmp[21] = '\r';
	tmp[22] = '\n';
	h = resp_fmt_ll(tmp, (long long)n);
	*--h = '$';
	hlen = (size_t)(tmp + 23 - h);
	if (n > SIZE_MAX - hlen - 2)
		return -ENOBUFS;
	err = buf_reserve(b, hlen + n + 2);
	if (err)
		return err;
	w = b->data + b->off + b->len;
	memcpy(w, h, hlen);
	if (n)
		memcpy(w + hlen, p, n);
	w[hlen + n] = '\r';
	w[hlen + n + 1] = '\n';
	b->len += hlen + n + 2;
	return 0;
}

int resp_add_bulk_str(struct buf *b, const char *s)
{
	return resp_add_bulk(b, s, strlen(s));
}

int resp_add_null(struct buf *b)
{
	return buf_append(b, "$-1\r\n", 5);
}

int resp_add_null_array(struct buf *b)
{
	return buf_append(b, "*-1\r\n", 5);
}
