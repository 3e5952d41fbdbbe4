/*
 * pgwire.h - PostgreSQL frontend/backend protocol v3: bounded framing,
 * readers for the messages the pooler inspects, writers for the ones it
 * builds. Pure functions over byte ranges: no sockets, no allocation
 * except through struct buf, so tests and the fuzzer link it alone.
 */
#ifndef HOTPATH_PGWIRE_H
#define HOTPATH_PGWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hotpath/buf.h"
#include "hotpath/common.h"

#define PGW_HDR 5                       /* type byte + int32 length */
#define PGW_PROTO_V3 196608u            /* 3.0 */
#define PGW_SSL_REQUEST 80877103u
#define PGW_GSSENC_REQUEST 80877104u
#define PGW_CANCEL_REQUEST 80877102u
#define PGW_STARTUP_MAX 10000u          /* as the server's MAX_STARTUP_PACKET_LENGTH */
#define PGW_MAX_PARAMS 32               /* startup parameters kept */
#define PGW_NAME_MAX 64                 /* NAMEDATALEN */

/* Authentication request codes ('R' messages). */
enum {
	PGW_AUTH_OK = 0,
	PGW_AUTH_CLEARTEXT = 3,
	PGW_AUTH_MD5 = 5,
	PGW_AUTH_SASL = 10,
	PGW_AUTH_SASL_CONTINUE = 11,
	PGW_AUTH_SASL_FINAL = 12,
};

/*
 * Frame one regular message (type, int32 length that counts itself) at
 * p[0..n). Returns PGW_NEED_MORE when fewer than 5 bytes are there, else
 * 0 with *type and *total (whole message size, 1 + length) set even when
 * the body is still incomplete (n < *total), so callers can stream large
 * messages. -EPROTO for a length below 4, -EMSGSIZE above max (bytes,
 * the whole message).
 */
#define PGW_NEED_MORE 1
int pgw_frame(const uint8_t *p, size_t n, size_t max, char *type, size_t *total) HP_MUST_CHECK;

/* A startup-phase packet: StartupMessage, SSLRequest, GSSENCRequest or
 * CancelRequest. Parameter names and values point into the input. */
struct pgw_startup {
	uint32_t code;                  /* PGW_PROTO_V3 or a request code */
	uint32_t cancel_pid, cancel_key;
	unsigned nparams;
	const char *name[PGW_MAX_PARAMS];
	const char *value[PGW_MAX_PARAMS];
};

/*
 * Parse a startup-phase packet (int32 length, int32 code, body) at
 * p[0..n). Returns its size (> 0) when complete, 0 when more bytes are
 * needed, or a negative errno with a reason in *why: -EPROTO (malformed:
 * bad length, missing terminators, empty user, too many parameters),
 * -EPROTONOSUPPORT (a protocol version other than 3.0, or an unknown
 * request code).
 */
int pgw_startup_parse(const uint8_t *p, size_t n, struct pgw_startup *s,
		      const char **why) HP_MUST_CHECK;
/* Value of a startup parameter, NULL if absent. */
const char *pgw_startup_get(const struct pgw_startup *s, const char *name);

/* A cursor over a message body. Readers set `bad` and return empty
 * values when the body is too short or a string has no terminator. */
struct pgw_rd {
	const uint8_t *p;
	size_t n, off;
	bool bad;
};
static inline void pgw_rd_init(struct pgw_rd *r, const uint8_t *p, size_t n)
{
	r->p = p;
	r->n = n;
	r->off = 0;
	r->bad = false;
}
uint8_t pgw_get_u8(struct pgw_rd *r);
uint16_t pgw_get_u16(struct pgw_rd *r);
uint32_t pgw_get_u32(struct pgw_rd *r);
/* NUL-terminated string; *len gets its length if non-NULL. */
const char *pgw_get_str(struct pgw_rd *r, size_t *len);
/* n raw bytes. */
const uint8_t *pgw_get_bytes(struct pgw_rd *r, size_t n);

/* Parse ('P'): statement name, query text, parameter types. */
struct pgw_parse {
	const char *name;
	const char *query;
	size_t query_len;
	uint16_t ntypes;
	const uint8_t *rest;            /* query text to the end of the body */
	size_t rest_len;                /* (query, NUL, ntypes, types) */
};
/* 0 or -EPROTO (malformed, or a name longer than NAMEDATALEN-1). */
int pgw_parse_parse(const uint8_t *body, size_t n, struct pgw_parse *out) HP_MUST_CHECK;

/* Bind ('B'): portal and statement names; `rest` is everything after. */
struct pgw_bind {
	const char *portal;
	const char *stmt;
	const uint8_t *rest;
	size_t rest_len;
};
int pgw_parse_bind(const uint8_t *body, size_t n, struct pgw_bind *out) HP_MUST_CHECK;

/* Describe ('D') and Close ('C') from the client: kind 'S' or 'P', name. */
struct pgw_target {
	char kind;
	const char *name;
};
int pgw_parse_target(const uint8_t *body, size_t n, struct pgw_target *out) HP_MUST_CHECK;

/*
 * One extended-protocol request of the shape drivers send for a single
 * statement: [Parse] Bind [Describe] Execute Sync, every message whole in
 * p[0..n). Names and parameters point into p. The result cache answers
 * such a request as a unit.
 */
struct pgw_batch {
	bool has_parse;
	struct pgw_parse parse;
	struct pgw_bind bind;
	char desc;                      /* 0 (none), 'S' or 'P' */
	const char *desc_name;
	const char *portal;             /* of the Execute */
	uint32_t max_rows;              /* of the Execute; 0 = all */
	size_t total;                   /* bytes from p through the Sync */
};
/* 1 when p starts with such a request, 0 when it does not or is not
 * whole yet (messages over `max` bytes: not); never reads past n. */
int pgw_parse_batch(const uint8_t *p, size_t n, size_t max, struct pgw_batch *out);

/* Field `code` ('C' SQLSTATE, 'M' message, 'S' severity, ...) of an
 * ErrorResponse/NoticeResponse body; NULL if absent or malformed. */
const char *pgw_error_field(const uint8_t *body, size_t n, char code);

/* ---- writers: append whole messages to a buffer (0 or -ENOBUFS/-ENOMEM) ---- */

/* Start a message of `type` (0: no type byte, startup packets); returns
 * the offset to pass to pgw_end, or a negative errno. */
long pgw_begin(struct buf *b, char type) HP_MUST_CHECK;
int pgw_put_u8(struct buf *b, uint8_t v) HP_MUST_CHECK;
int pgw_put_u16(struct buf *b, uint16_t v) HP_MUST_CHECK;
int pgw_put_u32(struct buf *b, uint32_t v) HP_MUST_CHECK;
int pgw_put_str(struct buf *b, const char *s) HP_MUST_CHECK;   /* with its NUL */
int pgw_put_bytes(struct buf *b, const void *p, size_t n) HP_MUST_CHECK;
/* Fill in the length of the message begun at `at`. */
void pgw_end(struct buf *b, long at);

/* ErrorResponse: severity ("ERROR"/"FATAL"), SQLSTATE, message. */
int pgw_put_error(struct buf *b, const char *severity, const char *sqlstate,
		  const char *msg) HP_MUST_CHECK;
/* 'R' with a code and optional payload. */
int pgw_put_auth(struct buf *b, uint32_t code, const void *data, size_t n) HP_MUST_CHECK;
int pgw_put_param_status(struct buf *b, const char *name, const char *value) HP_MUST_CHECK;
int pgw_put_backend_key(struct buf *b, uint32_t pid, uint32_t key) HP_MUST_CHECK;
int pgw_put_ready(struct buf *b, char status) HP_MUST_CHECK;
/* A bodiless message: ParseComplete '1', CloseComplete '3', Sync 'S'... */
int pgw_put_empty(struct buf *b, char type) HP_MUST_CHECK;
/* Simple query 'Q'. */
int pgw_put_query(struct buf *b, const char *sql) HP_MUST_CHECK;
/* Parse with statement `name` and the rest of a client's Parse. */
int pgw_put_parse(struct buf *b, const char *name, const uint8_t *rest, size_t rest_len)
	HP_MUST_CHECK;
/* Bind with statement renamed. */
int pgw_put_bind(struct buf *b, const char *portal, const char *stmt, const uint8_t *rest,
		 size_t rest_len) HP_MUST_CHECK;
/* Describe/Close ('D'/'C') of kind 'S'/'P' and a name. */
int pgw_put_target(struct buf *b, char type, char kind, const char *name) HP_MUST_CHECK;
/* StartupMessage v3 with NULL-terminated name/value pairs. */
int pgw_put_startup(struct buf *b, const char *const *kv) HP_MUST_CHECK;
/* CancelRequest packet. */
int pgw_put_cancel(struct buf *b, uint32_t pid, uint32_t key) HP_MUST_CHECK;

#endif
