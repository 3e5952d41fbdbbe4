/*
 * pgwire.c - PostgreSQL protocol v3 framing, readers and writers.
 *
 * What: the byte-level half of the pooler. pgw_frame() looks at the five
 * header bytes of a regular message and says how large it is, bounded by
 * the caller's maximum, without needing the body (the pooler streams
 * large DataRow/CopyData messages through and only buffers whole the
 * messages it must read). pgw_startup_parse() takes the length-prefixed
 * packets of the startup phase (StartupMessage, SSLRequest,
 * GSSENCRequest, CancelRequest), bounded to the server's own 10000-byte
 * limit. The readers take apart exactly the client messages the pooler
 * rewrites for prepared statements in transaction mode (Parse, Bind,
 * Describe, Close) and the fields of ErrorResponse; the writers build the
 * messages the pooler itself sends (errors, authentication requests,
 * ParameterStatus, BackendKeyData, ReadyForQuery, renamed Parse/Bind,
 * StartupMessage, CancelRequest).
 *
 * How: a cursor (struct pgw_rd) that never reads past the body and turns
 * every shortfall into a `bad` flag, so callers check once at the end;
 * writers append to a bounded struct buf and patch the length field last.
 *
 * Not here: sockets, state machines, authentication (pgauth.c) and the
 * statement bookkeeping (pgstmt.c). libpq is a client library and exposes
 * no message parser, so this small layer is written here from the
 * protocol documentation (PostgreSQL 15, "Frontend/Backend Protocol").
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include "hotpath/pgwire.h"

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int pgw_frame(const uint8_t *p, size_t n, size_t max, char *type, size_t *total)
{
	uint32_t len;

	if (n < PGW_HDR)
		return PGW_NEED_MORE;
	len = rd32(p + 1);
	if (len < 4)
		return -EPROTO;
	*type = (char)p[0];
	*total = (size_t)len + 1;
	if (*total > max)
		return -EMSGSIZE;
	return 0;
}

/* ---- startup packets ---------------------------------------------------- */

int pgw_startup_parse(const uint8_t *p, size_t n, struct pgw_startup *s, const char **why)
{
	uint32_t len, code;
	const char *q, *end;

	*why = NULL;
	memset(s, 0, sizeof(*s));
	if (n < 8)
		return 0;
	len = rd32(p);
	code = rd32(p + 4);
	if (len < 8 || len > PGW_STARTUP_MAX) {
		*why = "invalid length of startup packet";
		return -EPROTO;
	}
	if (n < len)
		return 0;
	s->code = code;
	switch (code) {
	case PGW_SSL_REQUEST:
	case PGW_GSSENC_REQUEST:
		if (len != 8) {
			*why = "invalid length of SSL/GSS request";
			return -EPROTO;
		}
		return (int)len;
	case PGW_CANCEL_REQUEST:
		if (len != 16) {
			*why = "invalid length of cancel request";
			return -EPROTO;
		}
		s->cancel_pid = rd32(p + 8);
		s->cancel_key = rd32(p + 12);
		return (int)len;
	case PGW_PROTO_V3:
		break;
	default:
		*why = (code >> 16) == 3 || (code >> 16) == 2 ?
			"unsupported frontend protocol: only 3.0 is served" :
			"unknown startup request code";
		return -EPROTONOSUPPORT;
	}
	/* name\0value\0 ... \0 */
	q = (const char *)p + 8;
	end = (const char *)p + len;
	for (;;) {
		const char *nz, *vz;

		if (q >= end) {
			*why = "startup packet has no terminator";
			return -EPROTO;
		}
		if (*q == '\0') {
			if (q + 1 != end) {
				*why = "garbage after startup packet terminator";
				return -EPROTO;
			}
			break;
		}
		nz = memchr(q, '\0', (size_t)(end - q));
		if (!nz || nz + 1 >= end) {
			*why = "startup parameter without value";
			return -EPROTO;
		}
		vz = memchr(nz + 1, '\0', (size_t)(end - nz - 1));
		if (!vz) {
			*why = "startup parameter value without terminator";
			return -EPROTO;
		}
		if (s->nparams == PGW_MAX_PARAMS) {
			*why = "too many startup parameters";
			return -EPROTO;
		}
		s->name[s->nparams] = q;
		s->value[s->nparams] = nz + 1;
		s->nparams++;
		q = vz + 1;
	}
	q = pgw_startup_get(s, "user");
	if (!q || !*q) {
		*why = "no PostgreSQL user name specified in startup packet";
		return -EPROTO;
	}
	return (int)len;
}

const char *pgw_startup_get(const struct pgw_startup *s, const char *name)
{
	for (unsigned i = 0; i < s->nparams; i++)
		if (strcmp(s->name[i], name) == 0)
			return s->value[i];
	return NULL;
}

/* ---- readers ------------------------------------------------------------ */

uint8_t pgw_get_u8(struct pgw_rd *r)
{
	if (r->bad || r->n - r->off < 1) {
		r->bad = true;
		return 0;
	}
	return r->p[r->off++];
}

uint16_t pgw_get_u16(struct pgw_rd *r)
{
	uint16_t v;

	if (r->bad || r->n - r->off < 2) {
		r->bad = true;
		return 0;
	}
	v = (uint16_t)(r->p[r->off] << 8 | r->p[r->off + 1]);
	r->off += 2;
	return v;
}

uint32_t pgw_get_u32(struct pgw_rd *r)
{
	uint32_t v;

	if (r->bad || r->n - r->off < 4) {
		r->bad = true;
		return 0;
	}
	v = rd32(r->p + r->off);
	r->off += 4;
	return v;
}

const char *pgw_get_str(struct pgw_rd *r, size_t *len)
{
	const uint8_t *z;
	const char *s;

	if (len)
		*len = 0;
	if (r->bad || r->off >= r->n) {
		r->bad = true;
		return "";
	}
	z = memchr(r->p + r->off, '\0', r->n - r->off);
	if (!z) {
		r->bad = true;
		return "";
	}
	s = (const char *)r->p + r->off;
	if (len)
		*len = (size_t)(z - (r->p + r->off));
	r->off = (size_t)(z - r->p) + 1;
	return s;
}

const uint8_t *pgw_get_bytes(struct pgw_rd *r, size_t n)
{
	const uint8_t *p;

	if (r->bad || r->n - r->off < n) {
		r->bad = true;
		return NULL;
	}
	p = r->p + r->off;
	r->off += n;
	return p;
}

int pgw_parse_parse(const uint8_t *body, size_t n, struct pgw_parse *out)
{
	struct pgw_rd r;
	size_t nl;

	pgw_rd_init(&r, body, n);
	out->name = pgw_get_str(&r, &nl);
	out->rest = body + r.off;
	out->query = pgw_get_str(&r, &out->query_len);
	out->ntypes = pgw_get_u16(&r);
	pgw_get_bytes(&r, (size_t)out->ntypes * 4);
	if (r.bad || r.off != n || nl >= PGW_NAME_MAX)
		return -EPROTO;
	out->rest_len = (size_t)(body + n - out->rest);
	return 0;
}

int pgw_parse_bind(const uint8_t *body, size_t n, struct pgw_bind *out)
{
	struct pgw_rd r;
	size_t pl, sl;

	pgw_rd_init(&r, body, n);
	out->portal = pgw_get_str(&r, &pl);
	out->stmt = pgw_get_str(&r, &sl);
	if (r.bad || pl >= PGW_NAME_MAX || sl >= PGW_NAME_MAX)
		return -EPROTO;
	out->rest = body + r.off;
	out->rest_len = n - r.off;
	return 0;
}

int pgw_parse_target(const uint8_t *body, size_t n, struct pgw_target *out)
{
	struct pgw_rd r;
	size_t nl;

	pgw_rd_init(&r, body, n);
	out->kind = (char)pgw_get_u8(&r);
	out->name = pgw_get_str(&r, &nl);
	if (r.bad || r.off != n || nl >= PGW_NAME_MAX || (out->kind != 'S' && out->kind != 'P'))
		return -EPROTO;
	return 0;
}

int pgw_parse_batch(const uint8_t *p, size_t n, size_t max, struct pgw_batch *out)
{
	/* the messages in order; '?' marks an optional one */
	static const char shape[] = "P?BD?ES";
	size_t off = 0;
	unsigned i = 0;

	memset(out, 0, sizeof(*out));
	while (shape[i]) {
		const uint8_t *body;
		size_t total, bn;
		char type;
		bool opt = shape[i + 1] == '?';

		if (pgw_frame(p + off, n - off, max, &type, &total) != 0 || total > n - off)
			return 0;
		if (type != shape[i]) {
			if (!opt)
				return 0;
			i += 2;
			continue;
		}
		body = p + off + PGW_HDR;
		bn = total - PGW_HDR;
		switch (type) {
		case 'P':
			if (pgw_parse_parse(body, bn, &out->parse) != 0)
				return 0;
			out->has_parse = true;
			break;
		case 'B':
			if (pgw_parse_bind(body, bn, &out->bind) != 0)
				return 0;
			break;
		case 'D': {
			struct pgw_target t;

			if (pgw_parse_target(body, bn, &t) != 0)
				return 0;
			out->desc = t.kind;
			out->desc_name = t.name;
			break;
		}
		case 'E': {
			struct pgw_rd r;
			size_t pl;

			pgw_rd_init(&r, body, bn);
			out->portal = pgw_get_str(&r, &pl);
			out->max_rows = pgw_get_u32(&r);
			if (r.bad || r.off != bn || pl >= PGW_NAME_MAX)
				return 0;
			break;
		}
		default:                /* 'S' */
			if (bn != 0)
				return 0;
			break;
		}
		off += total;
		i += opt ? 2 : 1;
	}
	out->total = off;
	return 1;
}

const char *pgw_error_field(const uint8_t *body, size_t n, char code)
{
	struct pgw_rd r;

	pgw_rd_init(&r, body, n);
	for (;;) {
		char c = (char)pgw_get_u8(&r);
		const char *v;

		if (r.bad || c == '\0')
			return NULL;
		v = pgw_get_str(&r, NULL);
		if (r.bad)
			return NULL;
		if (c == code)
			return v;
	}
}

/* ---- writers ------------------------------------------------------------ */

long pgw_begin(struct buf *b, char type)
{
	static const uint8_t zero[4];
	long at;
	int rc;

	if (type && (rc = buf_append(b, &type, 1)))
		return rc;
	at = (long)buf_used(b);
	if ((rc = buf_append(b, zero, 4)))
		return rc;
	return at;
}

int pgw_put_u8(struct buf *b, uint8_t v)
{
	return buf_append(b, &v, 1);
}

int pgw_put_u16(struct buf *b, uint16_t v)
{
	uint16_t be = htons(v);

	return buf_append(b, &be, 2);
}

int pgw_put_u32(struct buf *b, uint32_t v)
{
	uint32_t be = htonl(v);

	return buf_append(b, &be, 4);
}

int pgw_put_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s) + 1);
}

int pgw_put_bytes(struct buf *b, const void *p, size_t n)
{
	return buf_append(b, p, n);
}

void pgw_end(struct buf *b, long at)
{
	uint32_t be = htonl((uint32_t)(buf_used(b) - (size_t)at));

	memcpy(buf_head(b) + at, &be, 4);
}

/* Run a builder: begin, fields, end; on failure cut the partial message. */
#define PGW_BUILD(b, type, body)                                   \
	do {                                                       \
		size_t pgw_mark_ = buf_used(b);                    \
		long pgw_at_ = pgw_begin((b), (type));             \
		int pgw_rc_ = pgw_at_ < 0 ? (int)pgw_at_ : 0;      \
		if (!pgw_rc_)                                      \
			pgw_rc_ = (body);                          \
		if (pgw_rc_) {                                     \
			(b)->len = pgw_mark_;                      \
			return pgw_rc_;                            \
		}                                                  \
		pgw_end((b), pgw_at_);                             \
		return 0;                                          \
	} while (0)

int pgw_put_error(struct buf *b, const char *severity, const char *sqlstate, const char *msg)
{
	PGW_BUILD(b, 'E',
		  pgw_put_u8(b, 'S') || pgw_put_str(b, severity) ||
		  pgw_put_u8(b, 'V') || pgw_put_str(b, severity) ||
		  pgw_put_u8(b, 'C') || pgw_put_str(b, sqlstate) ||
		  pgw_put_u8(b, 'M') || pgw_put_str(b, msg) ||
		  pgw_put_u8(b, 0) ? -ENOBUFS : 0);
}

int pgw_put_auth(struct buf *b, uint32_t code, const void *data, size_t n)
{
	PGW_BUILD(b, 'R', pgw_put_u32(b, code) || pgw_put_bytes(b, data, n) ? -ENOBUFS : 0);
}

int pgw_put_param_status(struct buf *b, const char *name, const char *value)
{
	PGW_BUILD(b, 'S', pgw_put_str(b, name) || pgw_put_str(b, value) ? -ENOBUFS : 0);
}

int pgw_put_backend_key(struct buf *b, uint32_t pid, uint32_t key)
{
	PGW_BUILD(b, 'K', pgw_put_u32(b, pid) || pgw_put_u32(b, key) ? -ENOBUFS : 0);
}

int pgw_put_ready(struct buf *b, char status)
{
	PGW_BUILD(b, 'Z', pgw_put_u8(b, (uint8_t)status) ? -ENOBUFS : 0);
}

int pgw_put_empty(struct buf *b, char type)
{
	PGW_BUILD(b, type, 0);
}

int pgw_put_query(struct buf *b, const char *sql)
{
	PGW_BUILD(b, 'Q', pgw_put_str(b, sql) ? -ENOBUFS : 0);
}

int pgw_put_parse(struct buf *b, const char *name, const uint8_t *rest, size_t rest_len)
{
	PGW_BUILD(b, 'P', pgw_put_str(b, name) || pgw_put_bytes(b, rest, rest_len) ? -ENOBUFS : 0);
}

int pgw_put_bind(struct buf *b, const char *portal, const char *stmt, const uint8_t *rest,
		 size_t rest_len)
{
	PGW_BUILD(b, 'B', pgw_put_str(b, portal) || pgw_put_str(b, stmt) ||
		  pgw_put_bytes(b, rest, rest_len) ? -ENOBUFS : 0);
}

int pgw_put_target(struct buf *b, char type, char kind, const char *name)
{
	PGW_BUILD(b, type, pgw_put_u8(b, (uint8_t)kind) || pgw_put_str(b, name) ? -ENOBUFS : 0);
}

static int pgw_put_kv(struct buf *b, const char *const *kv)
{
	for (; kv[0] && kv[1]; kv += 2)
		if (pgw_put_str(b, kv[0]) || pgw_put_str(b, kv[1]))
			return -ENOBUFS;
	return pgw_put_u8(b, 0);
}

int pgw_put_startup(struct buf *b, const char *const *kv)
{
	PGW_BUILD(b, 0, pgw_put_u32(b, PGW_PROTO_V3) || pgw_put_kv(b, kv) ? -ENOBUFS : 0);
}

int pgw_put_cancel(struct buf *b, uint32_t pid, uint32_t key)
{
	PGW_BUILD(b, 0, pgw_put_u32(b, PGW_CANCEL_REQUEST) || pgw_put_u32(b, pid) ||
		  pgw_put_u32(b, key) ? -ENOBUFS : 0);
}
