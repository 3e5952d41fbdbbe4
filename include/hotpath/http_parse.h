/*
 * http_parse.h - strict, bounded HTTP/1.1 message parsing (RFC 9112).
 *
 * http_parse_head() reads one request or response head (start line and
 * header section) from the front of a buffer without copying: every string
 * in struct http_msg points into the caller's buffer. It is stateless: with
 * more bytes the caller calls it again and it starts over (a head is small
 * and bounded, so re-walking it costs little), which keeps the network
 * layer simple and the fuzzer's job exhaustive.
 *
 * It is strict where RFC 9112 says a recipient must or may reject, because
 * a proxy that is lenient where its backend is strict (or the reverse) is
 * how request smuggling happens: bare CR or bare LF line ends, obs-fold,
 * whitespace before the colon, invalid token or field-value bytes,
 * Content-Length twice or not a plain number, Content-Length together with
 * Transfer-Encoding, a transfer coding other than chunked last, chunked
 * twice, Transfer-Encoding in HTTP/1.0, a missing or repeated Host in 1.1.
 * Each rejection says which rule in http_msg.why and which status to send.
 *
 * Message bodies are framed by the caller from http_msg.body (RFC 9112
 * section 6.3) and, for chunked bodies, decoded with the incremental
 * struct http_chunked, which also validates and bounds chunk extensions
 * and the trailer section.
 */
#ifndef HOTPATH_HTTP_PARSE_H
#define HOTPATH_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hotpath/common.h"

#define HTTP_MAX_HEADERS 128      /* hard cap on http_limits.max_headers */

struct http_limits {
	size_t max_start_line;    /* request line: 414 past it; status line: error */
	size_t max_head;          /* whole header section: 431 past it */
	unsigned max_headers;     /* field lines: 431 past it (<= HTTP_MAX_HEADERS) */
	size_t max_chunk_line;    /* chunk-size line incl. extensions */
	size_t max_trailer;       /* trailer section bytes */
};

/* Defaults in the spirit of nginx/haproxy: 8 KiB lines, 32 KiB head, 100 fields. */
void http_limits_default(struct http_limits *lim);

enum http_method {
	HTTP_M_OTHER = 0, HTTP_M_GET, HTTP_M_HEAD, HTTP_M_POST, HTTP_M_PUT,
	HTTP_M_DELETE, HTTP_M_OPTIONS, HTTP_M_PATCH, HTTP_M_CONNECT, HTTP_M_TRACE,
};

enum http_body {
	HTTP_BODY_NONE = 0,       /* no body (or Content-Length: 0) */
	HTTP_BODY_LENGTH,         /* content_length bytes */
	HTTP_BODY_CHUNKED,        /* chunked transfer coding */
	HTTP_BODY_EOF,            /* responses only: until the connection closes */
};

struct http_header {
	const char *name;
	size_t nlen;
	const char *value;        /* leading/trailing whitespace trimmed */
	size_t vlen;
};

struct http_msg {
	bool request;
	/* request line */
	const char *method;
	size_t method_len;
	enum http_method meth;
	const char *target;
	size_t target_len;
	/* status line */
	unsigned status;
	const char *reason;
	size_t reason_len;
	unsigned version;         /* 10 or 11 */
	/* header section */
	unsigned nheaders;
	struct http_header headers[HTTP_MAX_HEADERS];
	size_t head_len;          /* bytes of start line + headers + final CRLF */
	/* framing and connection semantics */
	enum http_body body;
	uint64_t content_length;
	bool keep_alive;          /* per version and Connection */
	bool expect_continue;     /* Expect: 100-continue */
	bool upgrade;             /* Connection: upgrade with an Upgrade field */
	const char *host;         /* requests: Host value (NULL if absent, 1.0) */
	size_t host_len;
	/* on error */
	unsigned error_status;    /* 400, 413, 414, 417, 431, 501, 505 (502 for responses) */
	const char *why;          /* static text naming the rule */
};

enum http_parse_rc {
	HTTP_PARSE_ERROR = -1,    /* msg->error_status and msg->why set */
	HTTP_PARSE_NEED_MORE = 0, /* incomplete, and within the limits */
	HTTP_PARSE_OK = 1,        /* msg->head_len bytes form the head */
};

/*
 * Parse one head from buf[0..len). `request` selects request or response
 * grammar; for a response, `req_meth` is the method of the request it
 * answers (HEAD and CONNECT change framing) and `req_meth` is ignored for
 * requests. Returns HTTP_PARSE_OK with every field set, HTTP_PARSE_NEED_MORE
 * (nothing consumed; also when a limit could still be met), or
 * HTTP_PARSE_ERROR with error_status/why. Up to 4 empty lines before a
 * request line are skipped (RFC 9112 2.2) and counted in head_len.
 */
int http_parse_head(const char *buf, size_t len, bool request, enum http_method req_meth,
		    const struct http_limits *lim, struct http_msg *msg) HP_MUST_CHECK;

/* Find a header (case-insensitive). Returns its index or -1; `from` starts the scan. */
int http_header_find(const struct http_msg *m, const char *name, int from);
/* Value of the first `name` header, or NULL; *vlen set. */
const char *http_header_get(const struct http_msg *m, const char *name, size_t *vlen);

/* True if `tok` (case-insensitive) is a member of the comma-separated list. */
bool http_list_has(const char *v, size_t vlen, const char *tok);
/* Case-insensitive equality of a counted string and a C string. */
bool http_ieq(const char *a, size_t alen, const char *lit);

/* ---- chunked transfer coding ---------------------------------------------- */

struct http_chunked {
	int state;
	uint64_t remaining;       /* data bytes left in the current chunk */
	size_t line;              /* bytes of the current size/trailer line seen */
	size_t trailer;           /* trailer bytes seen */
	unsigned digits;
	bool ext;                 /* inside a chunk extension */
	uint64_t total;           /* data bytes decoded so far */
	const char *why;
};

enum http_chunk_rc {
	HTTP_CHUNK_ERROR = -1,    /* dec->why set; the message is malformed */
	HTTP_CHUNK_AGAIN = 0,     /* all input consumed, need more */
	HTTP_CHUNK_DATA = 1,      /* *data, *dlen is body data (points into input) */
	HTTP_CHUNK_DONE = 2,      /* last chunk and trailers consumed */
};

void http_chunked_init(struct http_chunked *dec);
/*
 * Feed in[0..len). Consumes framing bytes and at most one run of data per
 * call: sets *consumed (bytes of `in` used, framing included) and returns
 * DATA with the run in *data, *dlen, AGAIN when everything was framing and
 * more is needed, DONE at the end of the trailer section (bytes after it
 * are not consumed), or ERROR. Chunk sizes are bounded to 2^60, lines to
 * lim->max_chunk_line, trailers to lim->max_trailer; trailer fields are
 * validated like header fields and otherwise discarded.
 */
int http_chunked_feed(struct http_chunked *dec, const struct http_limits *lim, const char *in,
		      size_t len, size_t *consumed, const char **data, size_t *dlen) HP_MUST_CHECK;

/* ---- small helpers shared by the proxy and the cache ----------------------- */

/* Parse an IMF-fixdate / RFC 850 / asctime date into epoch seconds; -1 if invalid. */
int64_t http_date_parse(const char *s, size_t len);
/* Format epoch seconds as IMF-fixdate into out (>= 30 bytes). Returns length. */
size_t http_date_format(int64_t t, char *out, size_t outlen);
/* Token check: RFC 9110 tchar. */
bool http_is_tchar(unsigned char c);

#endif
