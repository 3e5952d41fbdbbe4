/*
 * resp.h - RESP2 request parsing and reply encoding.
 *
 * resp_parse() reads one command (a multibulk array of bulk strings, or an
 * inline command line) from the front of a buffer without copying: argv
 * points into the caller's buffer. It is stateless and re-entrant: called
 * again with more bytes it starts over, which costs only a header walk
 * because bulk lengths let it skip payloads. Every size is bounded by
 * struct resp_limits and violations return Redis's own error texts, so a
 * client sees the same message it would get from redis-server.
 *
 * The reply helpers append RESP2 to a bounded struct buf.
 */
#ifndef HOTPATH_RESP_H
#define HOTPATH_RESP_H

#include <stddef.h>
#include <stdint.h>
#include "hotpath/buf.h"
#include "hotpath/common.h"

#define RESP_INLINE_MAX (64 * 1024) /* Redis's PROTO_INLINE_MAX_SIZE */

struct resp_limits {
	size_t max_args;        /* arguments per command */
	size_t max_bulk;        /* bytes per argument (value size limit) */
	size_t max_query;       /* bytes for one whole command */
};

struct resp_cmd {
	size_t argc;
	size_t cap;             /* capacity of argv/argvlen (>= max_args) */
	const char **argv;      /* point into the parsed buffer */
	size_t *argvlen;
	/* Inline commands are unquoted into this scratch space (owned by the
	 * caller, at least RESP_INLINE_MAX bytes); argv then points here. */
	char *scratch;
	size_t scratch_cap;
};

enum resp_status {
	RESP_DONE = 0,          /* one command parsed; *consumed bytes used */
	RESP_NEED_MORE = 1,     /* incomplete; call again with more bytes */
	RESP_EMPTY = 2,         /* consumed an empty inline line, no command */
	RESP_PROTO_ERROR = -1,  /* *err set: send "-ERR <err>" and close */
};

/*
 * Parse one command from buf[0..len). On RESP_DONE, cmd->argc/argv are set
 * and *consumed is the number of bytes the command used. On
 * RESP_PROTO_ERROR, *err points to a static message such as
 * "Protocol error: invalid multibulk length"; the connection must be closed
 * after replying, as Redis does. RESP_NEED_MORE never consumes.
 */
enum resp_status resp_parse(const char *buf, size_t len, const struct resp_limits *lim,
			    struct resp_cmd *cmd, size_t *consumed, const char **err);

/* Reply encoders. All return 0 or -ENOBUFS/-ENOMEM from the buffer. */
int resp_add_simple(struct buf *b, const char *s) HP_MUST_CHECK;      /* +s */
int resp_add_error(struct buf *b, const char *s) HP_MUST_CHECK;       /* -s (no '-' in s) */
int resp_add_errorf(struct buf *b, const char *fmt, ...) HP_PRINTF(2, 3) HP_MUST_CHECK;
int resp_add_int(struct buf *b, long long v) HP_MUST_CHECK;           /* :v */
int resp_add_bulk(struct buf *b, const char *p, size_t n) HP_MUST_CHECK; /* $n p */
int resp_add_bulk_str(struct buf *b, const char *s) HP_MUST_CHECK;
int resp_add_null(struct buf *b) HP_MUST_CHECK;                       /* $-1 */
int resp_add_null_array(struct buf *b) HP_MUST_CHECK;                 /* *-1 */
int resp_add_array(struct buf *b, long long n) HP_MUST_CHECK;         /* *n */

/* Case-insensitive comparison of a counted argument with a C string. */
int resp_arg_is(const char *arg, size_t len, const char *lit);
/* Strict base-10 int64 parse of a counted argument, as Redis string2ll. */
int resp_arg_ll(const char *arg, size_t len, long long *out) HP_MUST_CHECK;

#endif
