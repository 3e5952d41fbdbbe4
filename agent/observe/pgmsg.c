/*
 * pgmsg.c - PostgreSQL v3 message walker (see pgmsg.h).
 *
 * Used on what bpf/observe.bpf.c captured: the first bytes of a frontend
 * buffer (to get a query's text for libpg_query) and, in tests, backend
 * buffers (errors, CommandComplete rows, ReadyForQuery), the same facts the
 * kernel extracts from a response's first and last bytes. Every length in
 * the input is untrusted: a message claiming more bytes than the capture
 * holds is reported as truncated, never read past. Written here rather than
 * taken from libpq because libpq parses only a live connection's stream.
 */
#include <errno.h>
#include <string.h>
#include "hotpath/pgmsg.h"

static uint32_t be32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

int pgmsg_next(const char *b, size_t len, struct pgmsg_msg *m)
{
	uint32_t l;
	size_t span;

	if (len < 5)
		return 0;
	l = be32(b + 1);
	if (l < 4 || l > 0x3fffffff)
		return -EINVAL;
	m->type = b[0];
	m->len = l - 4;
	m->body = b + 5;
	m->avail = len - 5 < m->len ? len - 5 : m->len;
	span = 5 + m->avail;
	return (int)span;
}

int pgmsg_query_text(const char *b, size_t len, const char **text, size_t *tlen,
		      bool *truncated)
{
	struct pgmsg_msg m;
	const char *p, *nul;
	size_t left;
	int r = pgmsg_next(b, len, &m);

	if (r <= 0)
		return -EINVAL;
	p = m.body;
	left = m.avail;
	if (m.type == 'P') {
		nul = memchr(p, '\0', left);     /* statement name */
		if (!nul)
			return -EINVAL;
		left -= (size_t)(nul - p) + 1;
		p = nul + 1;
	} else if (m.type != 'Q') {
		return -ENOENT;
	}
	nul = memchr(p, '\0', left);
	*text = p;
	*tlen = nul ? (size_t)(nul - p) : left;
	*truncated = nul == NULL;
	return 0;
}

int64_t pgmsg_tag_rows(const char *tag, size_t len)
{
	size_t end = len, start;
	int64_t rows = 0;

	while (end && tag[end - 1] == '\0')
		end--;
	start = end;
	while (start && tag[start - 1] >= '0' && tag[start - 1] <= '9')
		start--;
	if (start == end || start == 0 || tag[start - 1] != ' ' || end - start > 18)
		return -1;
	for (size_t i = start; i < end; i++)
		rows = rows * 10 + (tag[i] - '0');
	return rows;
}

int pgmsg_summarise_backend(const char *b, size_t len, struct pgmsg_summary *s)
{
	size_t at = 0;

	memset(s, 0, sizeof(*s));
	s->rows = -1;
	while (at < len) {
		struct pgmsg_msg m;
		int r = pgmsg_next(b + at, len - at, &m);

		if (r == 0)
			break;
		if (r < 0)
			return -EINVAL;
		s->messages++;
		if (m.type == 'E')
			s->errors++;
		else if (m.type == 'C' && m.avail == m.len)
			s->rows = pgmsg_tag_rows(m.body, m.avail);
		else if (m.type == 'Z' && m.avail >= 1) {
			s->ready = true;
			s->status = m.body[0];
		}
		at += (size_t)r;
	}
	return 0;
}
