/*
 * compress.h - content codings for the HTTP proxy: Accept-Encoding
 * negotiation (RFC 9110 12.5.3), the rules for which responses may be
 * compressed, and one-shot gzip (zlib), br (libbrotli) and zstd (libzstd)
 * encoders with a bounded output. Pure functions, no daemon state.
 */
#ifndef HOTPATH_COMPRESS_H
#define HOTPATH_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hotpath/buf.h"
#include "hotpath/common.h"

enum hc_coding {
	HC_CODING_IDENTITY = 0,
	HC_CODING_GZIP,
	HC_CODING_BR,
	HC_CODING_ZSTD,
	HC_CODINGS
};

#define COMPRESS_ACCEPT_MAX 4096     /* longest Accept-Encoding value parsed */
#define COMPRESS_TYPES_MAX  512

/* Token of a coding as it appears in Content-Encoding ("identity", "gzip", ...). */
const char *compress_coding_name(enum hc_coding c);
/* Coding named by a token (case-insensitive, x-gzip = gzip); -1 if unknown. */
int compress_coding_parse(const char *s, size_t n);

/*
 * What one request accepts: a q-value in thousandths (0..1000) per known
 * coding, -1 for a coding it does not name; `star` the same for "*".
 */
struct compress_accept {
	int q[HC_CODINGS];
	int star;
};

void compress_accept_init(struct compress_accept *a);
/*
 * Add one Accept-Encoding field value to a (call once per field line, the
 * lines form one list). Unknown codings are skipped; a coding named twice
 * keeps its first weight. Returns 0, or -EINVAL with *why set to a fixed
 * message for a malformed value (bad token, bad or out of range q-value,
 * a parameter other than q, a value over COMPRESS_ACCEPT_MAX); then `a` must
 * not be used for negotiation.
 */
int compress_accept_parse(struct compress_accept *a, const char *v, size_t n, const char **why)
	HP_MUST_CHECK;

/*
 * Pick the coding to send. `pref` lists the codings the proxy offers, in
 * its order of preference (used to break ties between equal q-values). A
 * coding is acceptable when its q (or the star's, when it is not named)
 * is above 0; the highest wins. Identity wins only when the client names
 * it with a q higher than every offered coding's. Returns
 * HC_CODING_IDENTITY when nothing else applies (identity is also what is
 * sent when the client refuses it and accepts nothing offered: RFC 9110
 * 12.5.3 allows that rather than a 415/406).
 */
enum hc_coding compress_choose(const struct compress_accept *a, const enum hc_coding *pref,
			       unsigned npref);

/* Settings of the proxy's compression ([http] compress*). */
struct compress_options {
	enum hc_coding pref[HC_CODINGS];  /* offered codings, preferred first */
	unsigned npref;                   /* 0: compression off */
	int level[HC_CODINGS];            /* per coding */
	uint64_t min_size, max_size;      /* bodies compressed: min_size <= len <= max_size */
	unsigned max_streams;             /* streaming encoders at once (forwarded bodies) */
	char types[COMPRESS_TYPES_MAX];   /* media type globs, comma separated */
};

void compress_options_default(struct compress_options *o);
/*
 * Parse a comma separated list of coding names into o->pref. Returns 0, or
 * -EINVAL with *why for an unknown or repeated name, or for identity.
 */
int compress_parse_list(struct compress_options *o, const char *list, const char **why)
	HP_MUST_CHECK;

/* Does the media type of a Content-Type value (parameters ignored) match one of the globs? */
bool compress_type_ok(const char *ctype, size_t n, const char *types);

/*
 * Compress in[0..n) with coding c at the given level, appending to out.
 * The output is never allowed to reach n bytes: compression that gains
 * nothing returns -ENOSPC (the caller serves identity). Memory used is at
 * most n bytes of output plus the library's working state. 0, -ENOSPC,
 * -ENOMEM, -ENOBUFS (out's bound), -EINVAL (unknown coding or library error).
 */
int compress_encode(enum hc_coding c, int level, const char *in, size_t n, struct buf *out)
	HP_MUST_CHECK;

/*
 * Streaming encoder, for responses compressed while they are forwarded.
 * Each feed compresses its input and flushes, so what the backend sent is
 * on its way to the client at once (a little ratio traded for latency);
 * the last feed has finish set and ends the stream. Window sizes are kept
 * small (gzip 32 KiB, br 256 KiB, zstd 512 KiB) so that one stream's
 * state stays around a megabyte at most.
 */
struct compress_stream;
/* NULL on ENOMEM or an unknown coding. */
struct compress_stream *compress_stream_new(enum hc_coding c, int level);
/* Append the compressed form of in[0..n) to out. 0, -ENOBUFS (out's bound), -ENOMEM, -EINVAL. */
int compress_stream_feed(struct compress_stream *zs, const char *in, size_t n, bool finish,
			 struct buf *out) HP_MUST_CHECK;
void compress_stream_free(struct compress_stream *zs);

/*
 * The entity tag of a compressed representation, derived from the
 * identity one (RFC 9110 8.8.3: a different representation needs a
 * different tag): the coding name is added inside the quotes and the
 * strength kept (`"abc"` -> `"abc-gzip"`, `W/"abc"` -> `W/"abc-gzip"`).
 * Returns the length written, or 0 when the tag is malformed or out is
 * too small (the compressed representation then has no ETag).
 */
size_t compress_etag(const char *etag, size_t n, enum hc_coding c, char *out, size_t outlen);

#endif
