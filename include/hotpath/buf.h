/*
 * buf.h - a growable byte buffer with a hard upper bound.
 *
 * Every buffer in hotpath that grows with input (query buffers, reply
 * buffers, JSON and metrics output) is a struct buf with a `max`: appending
 * past it fails with -ENOBUFS instead of growing, so memory stays bounded
 * under load and callers push back (stop reading) rather than queue more.
 */
#ifndef HOTPATH_BUF_H
#define HOTPATH_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include "hotpath/common.h"

struct buf {
	char *data;
	size_t len;   /* bytes in use, starting at data[off] */
	size_t off;   /* bytes already consumed at the front */
	size_t cap;   /* allocated size of data */
	size_t max;   /* hard bound on cap; 0 means SIZE_MAX */
};

/* Initialise an empty buffer that will never hold more than `max` bytes. */
void buf_init(struct buf *b, size_t max);
/* Free the storage; the buffer is empty and reusable afterwards. */
void buf_free(struct buf *b);
/* Make room for `n` more bytes. 0, -ENOBUFS past max, -ENOMEM. */
int buf_reserve(struct buf *b, size_t n) HP_MUST_CHECK;
/* Append bytes. 0 or -ENOBUFS / -ENOMEM (buffer unchanged on failure). */
int buf_append(struct buf *b, const void *p, size_t n) HP_MUST_CHECK;
int buf_append_str(struct buf *b, const char *s) HP_MUST_CHECK;
int buf_printf(struct buf *b, const char *fmt, ...) HP_PRINTF(2, 3) HP_MUST_CHECK;
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) HP_MUST_CHECK;
/* Pointer to the first unconsumed byte, and how many there are. */
static inline char *buf_head(const struct buf *b) { return b->data + b->off; }
static inline size_t buf_used(const struct buf *b) { return b->len; }
/* Drop `n` bytes from the front (after they were written or parsed). */
void buf_consume(struct buf *b, size_t n);
/* Move the unconsumed bytes to the front, shrinking if mostly empty. */
void buf_compact(struct buf *b);
/* Drop everything but keep the allocation. */
static inline void buf_reset(struct buf *b) { b->len = 0; b->off = 0; }

/*
 * A copy of an argument vector (a command that outlives the client's
 * query buffer) in one allocation: the struct, the pointers, the lengths,
 * then the bytes. The caller frees it with free(). NULL on ENOMEM.
 */
struct buf_argv {
	int argc;
	const char **argv;
	size_t *len;
};
struct buf_argv *buf_argv_dup(int argc, const char *const *argv, const size_t *len);

#endif
