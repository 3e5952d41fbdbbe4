/*
 * compress.c - content codings for the HTTP proxy (include/hotpath/compress.h).
 *
 * What: Accept-Encoding negotiation with q-values (RFC 9110 12.5.3), the
 * media-type filter, the derived entity tag of a compressed
 * representation, and one-shot encoders for gzip (zlib), br (libbrotli)
 * and zstd (libzstd).
 *
 * How: the proxy compresses stored objects, whose bodies are whole and
 * bounded by http.max_object_size and http.compress_max_size, so every
 * encoder runs one-shot into an output the size of the input: if the
 * result would not be smaller it fails with -ENOSPC rather than growing,
 * which bounds memory at twice the body and tells the caller that this
 * representation gains nothing. Negotiation parses the header strictly
 * (a malformed value gets identity, the one coding every client accepts)
 * into a q-value per known coding, then picks the highest, breaking ties
 * by the proxy's own order of preference.
 *
 * Responses that are forwarded rather than served from the cache are
 * compressed by a streaming encoder with small windows, flushed after
 * every piece the backend sends.
 *
 * What not: no "deflate" (zlib-wrapped deflate
 * is ambiguous in practice and every client that sends it sends gzip),
 * no compression dictionaries.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <brotli/encode.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>
#include "hotpath/compress.h"
#include "hotpath/l1.h"

static const char *const coding_names[HC_CODINGS] = { "identity", "gzip", "br", "zstd" };

const char *compress_coding_name(enum hc_coding c)
{
	return (unsigned)c < HC_CODINGS ? coding_names[c] : "?";
}

static bool tok_eq(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

int compress_coding_parse(const char *s, size_t n)
{
	for (unsigned i = 0; i < HC_CODINGS; i++)
		if (tok_eq(s, n, coding_names[i]))
			return (int)i;
	if (tok_eq(s, n, "x-gzip"))    /* RFC 9110 8.4.1.3 */
		return HC_CODING_GZIP;
	return -1;
}

/* ---- Accept-Encoding ----------------------------------------------------------- */

static bool ows(char c)
{
	return c == ' ' || c == '\t';
}

static bool tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in thousandths; -1 if bad. */
static int qvalue(const char *s, size_t n)
{
	int v, scale = 100;

	if (n == 0 || (s[0] != '0' && s[0] != '1'))
		return -1;
	v = (s[0] - '0') * 1000;
	if (n == 1)
		return v;
	if (s[1] != '.' || n > 5)
		return -1;
	for (size_t i = 2; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v += (s[i] - '0') * scale;
		scale /= 10;
	}
	return v > 1000 ? -1 : v;
}

void compress_accept_init(struct compress_accept *a)
{
	for (unsigned i = 0; i < HC_CODINGS; i++)
		a->q[i] = -1;
	a->star = -1;
}

int compress_accept_parse(struct compress_accept *a, const char *v, size_t n, const char **why)
{
	size_t i = 0;

	if (n > COMPRESS_ACCEPT_MAX) {
		*why = "Accept-Encoding value too long";
		return -EINVAL;
	}
	while (i < n) {
		size_t ts, te;
		int q = 1000, c;

		while (i < n && (ows(v[i]) || v[i] == ','))
			i++;
		if (i >= n)
			break;
		ts = i;
		while (i < n && tchar((unsigned char)v[i]))
			i++;
		te = i;
		if (te == ts) {
			*why = "Accept-Encoding: bad coding token";
			return -EINVAL;
		}
		while (i < n && ows(v[i]))
			i++;
		if (i < n && v[i] == ';') {
			size_t qs;

			i++;
			while (i < n && ows(v[i]))
				i++;
			if (i + 2 > n || (v[i] != 'q' && v[i] != 'Q') || v[i + 1] != '=') {
				*why = "Accept-Encoding: a parameter other than q";
				return -EINVAL;
			}
			i += 2;
			qs = i;
			while (i < n && !ows(v[i]) && v[i] != ',')
				i++;
			q = qvalue(v + qs, i - qs);
			if (q < 0) {
				*why = "Accept-Encoding: bad q-value";
				return -EINVAL;
			}
			while (i < n && ows(v[i]))
				i++;
		}
		if (i < n && v[i] != ',') {
			*why = "Accept-Encoding: expected a comma";
			return -EINVAL;
		}
		if (te - ts == 1 && v[ts] == '*') {
			if (a->star < 0)
				a->star = q;
		} else if ((c = compress_coding_parse(v + ts, te - ts)) >= 0) {
			if (a->q[c] < 0)
				a->q[c] = q;
		}
	}
	return 0;
}

enum hc_coding compress_choose(const struct compress_accept *a, const enum hc_coding *pref,
			       unsigned npref)
{
	enum hc_coding best = HC_CODING_IDENTITY;
	int best_q = 0, id_q;

	for (unsigned i = 0; i < npref; i++) {
		enum hc_coding c = pref[i];
		int q;

		if ((unsigned)c >= HC_CODINGS || c == HC_CODING_IDENTITY)
			continue;
		q = a->q[c] >= 0 ? a->q[c] : a->star >= 0 ? a->star : 0;
		if (q > best_q) {
			best = c;
			best_q = q;
		}
	}
	/* Identity is always acceptable unless refused, but it only carries a
	 * preference when the client names it: "identity;q=1, gzip;q=0.5"
	 * keeps identity, "gzip;q=0.5" alone compresses. */
	id_q = a->q[HC_CODING_IDENTITY];
	if (best != HC_CODING_IDENTITY && id_q > best_q)
		return HC_CODING_IDENTITY;
	return best;
}

/* ---- options --------------------------------------------------------------------- */

void compress_options_default(struct compress_options *o)
{
	memset(o, 0, sizeof(*o));
	o->pref[0] = HC_CODING_BR;
	o->pref[1] = HC_CODING_ZSTD;
	o->pref[2] = HC_CODING_GZIP;
	o->npref = 3;
	o->level[HC_CODING_GZIP] = 6;
	o->level[HC_CODING_BR] = 5;
	o->level[HC_CODING_ZSTD] = 3;
	o->min_size = 256;
	o->max_size = 1 << 20;
	o->max_streams = 64;
	snprintf(o->types, sizeof(o->types), "%s",
		 "text/*, application/json, application/*+json, application/javascript, "
		 "application/xml, application/*+xml, image/svg+xml, application/wasm");
}

int compress_parse_list(struct compress_options *o, const char *list, const char **why)
{
	const char *s = list;
	unsigned n = 0;

	while (*s) {
		const char *e;
		int c;

		while (*s == ' ' || *s == ',')
			s++;
		if (!*s)
			break;
		e = s;
		while (*e && *e != ',' && *e != ' ')
			e++;
		c = compress_coding_parse(s, (size_t)(e - s));
		if (c < 0 || c == HC_CODING_IDENTITY) {
			*why = "unknown coding (gzip, br and zstd are offered)";
			return -EINVAL;
		}
		for (unsigned i = 0; i < n; i++)
			if (o->pref[i] == (enum hc_coding)c) {
				*why = "a coding is named twice";
				return -EINVAL;
			}
		if (n >= HC_CODINGS - 1) {
			*why = "too many codings";
			return -EINVAL;
		}
		o->pref[n++] = (enum hc_coding)c;
		s = e;
	}
	o->npref = n;
	return 0;
}

bool compress_type_ok(const char *ctype, size_t n, const char *types)
{
	const char *t = types;
	size_t e = 0;

	/* media type = up to ';' minus surrounding whitespace */
	while (e < n && ctype[e] != ';')
		e++;
	while (e > 0 && ows(ctype[e - 1]))
		e--;
	while (n && e && ows(*ctype)) {
		ctype++;
		e--;
	}
	if (e == 0)
		return false;
	while (*t) {
		const char *te;

		while (*t == ' ' || *t == ',')
			t++;
		te = t;
		while (*te && *te != ',' && *te != ' ')
			te++;
		if (te > t && glob_match(t, (size_t)(te - t), ctype, e, true))
			return true;
		t = te;
	}
	return false;
}

/* ---- encoders ------------------------------------------------------------------------ */

static int enc_gzip(int level, const char *in, size_t n, char *out, size_t cap, size_t *len)
{
	z_stream z;
	int rc;

	memset(&z, 0, sizeof(z));
	/* 15 + 16: a gzip wrapper (RFC 1952) around a 32 KiB-window deflate stream */
	if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)n;
	z.next_out = (Bytef *)out;
	z.avail_out = (uInt)cap;
	rc = deflate(&z, Z_FINISH);
	*len = cap - z.avail_out;
	deflateEnd(&z);
	if (rc == Z_STREAM_END)
		return 0;
	return rc == Z_OK || rc == Z_BUF_ERROR ? -ENOSPC : -EINVAL;
}

static int enc_br(int level, const char *in, size_t n, char *out, size_t cap, size_t *len)
{
	size_t sz = cap;

	if (!BrotliEncoderCompress(level, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_TEXT, n,
				   (const uint8_t *)in, &sz, (uint8_t *)out))
		return -ENOSPC;   /* the only failure of the one-shot API: output too small */
	*len = sz;
	return 0;
}

static int enc_zstd(int level, const char *in, size_t n, char *out, size_t cap, size_t *len)
{
	size_t r = ZSTD_compress(out, cap, in, n, level);

	if (ZSTD_isError(r))
		return ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall ? -ENOSPC : -EINVAL;
	*len = r;
	return 0;
}

int compress_encode(enum hc_coding c, int level, const char *in, size_t n, struct buf *out)
{
	size_t cap = n ? n - 1 : 0, len = 0;
	char *dst;
	int rc;

	if (n > UINT32_MAX)
		return -EINVAL;
	if (cap < 32)
		return -ENOSPC;    /* nothing this small gains after the coding's framing */
	if ((rc = buf_reserve(out, cap)))
		return rc;
	dst = buf_head(out) + buf_used(out);
	switch (c) {
	case HC_CODING_GZIP:
		rc = enc_gzip(level, in, n, dst, cap, &len);
		break;
	case HC_CODING_BR:
		rc = enc_br(level, in, n, dst, cap, &len);
		break;
	case HC_CODING_ZSTD:
		rc = enc_zstd(level, in, n, dst, cap, &len);
		break;
	default:
		return -EINVAL;
	}
	if (rc)
		return rc;
	out->len += len;
	return 0;
}

/* ---- streaming -------------------------------------------------------------------------- */

struct compress_stream {
	enum hc_coding c;
	z_stream z;
	BrotliEncoderState *br;
	ZSTD_CCtx *zc;
	bool finished;
};

struct compress_stream *compress_stream_new(enum hc_coding c, int level)
{
	struct compress_stream *zs = calloc(1, sizeof(*zs));

	if (!zs)
		return NULL;
	zs->c = c;
	switch (c) {
	case HC_CODING_GZIP:
		if (deflateInit2(&zs->z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK)
			return zs;
		break;
	case HC_CODING_BR:
		zs->br = BrotliEncoderCreateInstance(NULL, NULL, NULL);
		if (zs->br && BrotliEncoderSetParameter(zs->br, BROTLI_PARAM_QUALITY, (uint32_t)level) &&
		    BrotliEncoderSetParameter(zs->br, BROTLI_PARAM_LGWIN, 18) &&
		    BrotliEncoderSetParameter(zs->br, BROTLI_PARAM_MODE, BROTLI_MODE_TEXT))
			return zs;
		if (zs->br)
			BrotliEncoderDestroyInstance(zs->br);
		break;
	case HC_CODING_ZSTD:
		zs->zc = ZSTD_createCCtx();
		if (zs->zc && !ZSTD_isError(ZSTD_CCtx_setParameter(zs->zc, ZSTD_c_compressionLevel,
								     level)) &&
		    !ZSTD_isError(ZSTD_CCtx_setParameter(zs->zc, ZSTD_c_windowLog, 19)))
			return zs;
		ZSTD_freeCCtx(zs->zc);
		break;
	default:
		break;
	}
	free(zs);
	return NULL;
}

#define ZS_CHUNK 16384

int compress_stream_feed(struct compress_stream *zs, const char *in, size_t n, bool finish,
			 struct buf *out)
{
	int rc;

	if (zs->finished)
		return n ? -EINVAL : 0;
	switch (zs->c) {
	case HC_CODING_GZIP: {
		int zr;

		zs->z.next_in = (Bytef *)(uintptr_t)in;
		zs->z.avail_in = (uInt)n;
		do {
			if ((rc = buf_reserve(out, ZS_CHUNK)))
				return rc;
			zs->z.next_out = (Bytef *)(buf_head(out) + buf_used(out));
			zs->z.avail_out = ZS_CHUNK;
			zr = deflate(&zs->z, finish ? Z_FINISH : Z_SYNC_FLUSH);
			if (zr == Z_STREAM_ERROR)
				return -EINVAL;
			out->len += ZS_CHUNK - zs->z.avail_out;
		} while (zs->z.avail_out == 0 || (finish && zr != Z_STREAM_END));
		break;
	}
	case HC_CODING_BR: {
		const uint8_t *next_in = (const uint8_t *)in;
		size_t avail_in = n;
		BrotliEncoderOperation op = finish ? BROTLI_OPERATION_FINISH : BROTLI_OPERATION_FLUSH;

		do {
			uint8_t *next_out;
			size_t avail_out = ZS_CHUNK;

			if ((rc = buf_reserve(out, ZS_CHUNK)))
				return rc;
			next_out = (uint8_t *)(buf_head(out) + buf_used(out));
			if (!BrotliEncoderCompressStream(zs->br, op, &avail_in, &next_in, &avail_out,
							 &next_out, NULL))
				return -EINVAL;
			out->len += ZS_CHUNK - avail_out;
		} while (avail_in || BrotliEncoderHasMoreOutput(zs->br) ||
			 (finish && !BrotliEncoderIsFinished(zs->br)));
		break;
	}
	case HC_CODING_ZSTD: {
		ZSTD_inBuffer ib = { in, n, 0 };
		size_t left;

		do {
			ZSTD_outBuffer ob;

			if ((rc = buf_reserve(out, ZS_CHUNK)))
				return rc;
			ob.dst = buf_head(out) + buf_used(out);
			ob.size = ZS_CHUNK;
			ob.pos = 0;
			left = ZSTD_compressStream2(zs->zc, &ob, &ib, finish ? ZSTD_e_end : ZSTD_e_flush);
			if (ZSTD_isError(left))
				return -EINVAL;
			out->len += ob.pos;
		} while (left != 0 || ib.pos < ib.size);
		break;
	}
	default:
		return -EINVAL;
	}
	zs->finished = finish;
	return 0;
}

void compress_stream_free(struct compress_stream *zs)
{
	if (!zs)
		return;
	if (zs->c == HC_CODING_GZIP)
		deflateEnd(&zs->z);
	if (zs->br)
		BrotliEncoderDestroyInstance(zs->br);
	if (zs->zc)
		ZSTD_freeCCtx(zs->zc);
	free(zs);
}

size_t compress_etag(const char *etag, size_t n, enum hc_coding c, char *out, size_t outlen)
{
	bool weak = n >= 2 && etag[0] == 'W' && etag[1] == '/';
	size_t s = weak ? 2 : 0;
	int w;

	if (n < s + 2 || etag[s] != '"' || etag[n - 1] != '"')
		return 0;
	for (size_t i = s + 1; i + 1 < n; i++) {
		unsigned char ch = (unsigned char)etag[i];

		/* etagc = %x21 / %x23-7E / obs-text (RFC 9110 8.8.3) */
		if (!(ch == 0x21 || (ch >= 0x23 && ch <= 0x7e) || ch >= 0x80))
			return 0;
	}
	w = snprintf(out, outlen, "%s\"%.*s-%s\"", weak ? "W/" : "", (int)(n - s - 2),
		     etag + s + 1, compress_coding_name(c));
	return w < 0 || (size_t)w >= outlen ? 0 : (size_t)w;
}
