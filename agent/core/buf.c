/*
 * buf.c - bounded growable byte buffer (see include/hotpath/buf.h).
 *
 * Data lives in data[off .. off+len). Consuming from the front only moves
 * `off`; the bytes are moved back to the start lazily (buf_compact, or when
 * an append needs the room), so a reader that drains a buffer in small
 * pieces costs O(n) overall. Growth doubles up to `max`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/buf.h"

void buf_init(struct buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max ? max : SIZE_MAX;
}

void buf_free(struct buf *b)
{
	size_t max = b->max;

	free(b->data);
	memset(b, 0, sizeof(*b));
	b->max = max;
}

int buf_reserve(struct buf *b, size_t n)
{
	size_t need, ncap;
	char *p;

	if (n > b->max || b->len > b->max - n)
		return -ENOBUFS;
	need = b->len + n;
	if (b->off + need <= b->cap)
		return 0;
	if (need <= b->cap) {           /* room exists once compacted */
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
		return 0;
	}
	ncap = b->cap ? b->cap : 256;
	while (ncap < need)
		ncap = ncap > SIZE_MAX / 2 ? SIZE_MAX : ncap * 2;
	if (ncap > b->max)
		ncap = b->max;
	if (b->off) {
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
	}
	p = realloc(b->data, ncap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = ncap;
	return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	int err;

	if (n == 0)
		return 0;
	err = buf_reserve(b, n);
	if (err)
		return err;
	memcpy(b->data + b->off + b->len, p, n);
	b->len += n;
	return 0;
}

int buf_append_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n, err;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return -EINVAL;
	err = buf_reserve(b, (size_t)n + 1);
	if (err)
		return err;
	vsnprintf(b->data + b->off + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int err;

	va_start(ap, fmt);
	err = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return err;
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		b->off = 0;
		return;
	}
	b->off += n;
	b->len -= n;
}

void buf_compact(struct buf *b)
{
	if (b->len == 0 && b->cap > 64 * 1024) {
		/* Give back memory after a burst (large pipeline or value). */
		free(b->data);
		b->data = NULL;
		b->cap = 0;
		b->off = 0;
		return;
	}
	if (b->off) {
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
	}
}

struct buf_argv *buf_argv_dup(int argc, const char *const *argv, const size_t *len)
{
	struct buf_argv *a;
	size_t bytes = 0;
	char *p;

	for (int i = 0; i < argc; i++)
		bytes += len[i];
	a = malloc(sizeof(*a) + (size_t)argc * (sizeof(char *) + sizeof(size_t)) + bytes);
	if (!a)
		return NULL;
	a->argc = argc;
	a->argv = (const char **)(a + 1);
	a->len = (size_t *)(a->argv + argc);
	p = (char *)(a->len + argc);
	for (int i = 0; i < argc; i++) {
		memcpy(p, argv[i], len[i]);
		a->argv[i] = p;
		a->len[i] = len[i];
		p += len[i];
	}
	return a;
}
