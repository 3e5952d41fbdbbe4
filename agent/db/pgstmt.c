/*
 * pgstmt.c - prepared statements across pooled server connections, and
 * the per-server queue of owed responses (see include/hotpath/pgstmt.h).
 *
 * How: a client's statements live in a chained hash table keyed by the
 * client's name (bounded in count and bytes); server-side names are
 * "hp_" + the XXH3-128 of the statement's query text and parameter types,
 * so two clients preparing the same text share one server statement and
 * no global registry is needed (a 128-bit collision is not a practical
 * concern). What each server connection has prepared is an
 * open-addressing set of those ids with a use tick for LRU eviction
 * (backward-shift deletion, no tombstones). The response queue is a ring
 * of small entries, one per message that gets an answer.
 *
 * Not here: sockets or message bytes beyond the synthetic ParseComplete
 * and CloseComplete; statements created with SQL PREPARE/DEALLOCATE are
 * not tracked (as in PgBouncer); the pooler clears a server's set when it
 * sees DISCARD ALL or DEALLOCATE ALL complete.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include "hotpath/pgstmt.h"
#include "hotpath/pgwire.h"

void pgs_id_name(const struct pgs_id *id, char out[PGS_SNAME_LEN])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t w[2] = { id->hi, id->lo };
	int k = 3;

	memcpy(out, "hp_", 3);
	for (int i = 0; i < 2; i++)
		for (int sh = 60; sh >= 0; sh -= 4)
			out[k++] = hex[(w[i] >> sh) & 15];
	out[k] = '\0';
}

struct pgs_id pgs_id_of(const void *rest, size_t len)
{
	XXH128_hash_t h = XXH3_128bits(rest, len);
	struct pgs_id id = { .lo = h.low64, .hi = h.high64 };

	if (!id.lo && !id.hi)
		id.lo = 1;
	return id;
}

/* ---- client map ------------------------------------------------------------ */

int pgs_map_init(struct pgs_map *m, unsigned max, size_t max_bytes)
{
	memset(m, 0, sizeof(*m));
	m->max = max;
	m->max_bytes = max_bytes;
	return 0;
}

void pgs_map_clear(struct pgs_map *m)
{
	for (unsigned i = 0; i < m->nbuckets; i++) {
		struct pgs_stmt *s = m->b[i], *nx;

		for (; s; s = nx) {
			nx = s->next;
			free(s);
		}
		m->b[i] = NULL;
	}
	m->n = 0;
	m->bytes = 0;
}

void pgs_map_free(struct pgs_map *m)
{
	pgs_map_clear(m);
	free(m->b);
	memset(m, 0, sizeof(*m));
}

static uint64_t name_hash(const char *s)
{
	return XXH3_64bits(s, strlen(s));
}

static int map_grow(struct pgs_map *m)
{
	unsigned nb = m->nbuckets ? m->nbuckets * 2 : 16;
	struct pgs_stmt **b = calloc(nb, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (unsigned i = 0; i < m->nbuckets; i++) {
		struct pgs_stmt *s = m->b[i], *nx;

		for (; s; s = nx) {
			nx = s->next;
			s->next = b[s->name_hash & (nb - 1)];
			b[s->name_hash & (nb - 1)] = s;
		}
	}
	free(m->b);
	m->b = b;
	m->nbuckets = nb;
	return 0;
}

struct pgs_stmt *pgs_map_get(const struct pgs_map *m, const char *cname)
{
	uint64_t h;
	struct pgs_stmt *s;

	if (!m->nbuckets)
		return NULL;
	h = name_hash(cname);
	for (s = m->b[h & (m->nbuckets - 1)]; s; s = s->next)
		if (s->name_hash == h && strcmp(s->cname, cname) == 0)
			return s;
	return NULL;
}

bool pgs_map_del(struct pgs_map *m, const char *cname)
{
	uint64_t h;
	struct pgs_stmt **pp;

	if (!m->nbuckets)
		return false;
	h = name_hash(cname);
	for (pp = &m->b[h & (m->nbuckets - 1)]; *pp; pp = &(*pp)->next) {
		struct pgs_stmt *s = *pp;

		if (s->name_hash == h && strcmp(s->cname, cname) == 0) {
			*pp = s->next;
			m->n--;
			m->bytes -= s->rest_len;
			free(s);
			return true;
		}
	}
	return false;
}

int pgs_map_put(struct pgs_map *m, const char *cname, const void *rest, size_t rest_len,
		struct pgs_stmt **out)
{
	size_t nl = strlen(cname);
	struct pgs_stmt *s;
	int rc;

	if (nl >= sizeof(s->cname))
		return -EINVAL;
	pgs_map_del(m, cname);
	if (m->n >= m->max || rest_len > m->max_bytes || m->bytes > m->max_bytes - rest_len)
		return -ENOSPC;
	if (m->n + 1 > m->nbuckets && (rc = map_grow(m)))
		return rc;
	s = malloc(sizeof(*s) + rest_len);
	if (!s)
		return -ENOMEM;
	memset(s, 0, sizeof(*s));
	s->name_hash = name_hash(cname);
	memcpy(s->cname, cname, nl + 1);
	s->id = pgs_id_of(rest, rest_len);
	pgs_id_name(&s->id, s->sname);
	s->rest_len = rest_len;
	memcpy(s->rest, rest, rest_len);
	s->next = m->b[s->name_hash & (m->nbuckets - 1)];
	m->b[s->name_hash & (m->nbuckets - 1)] = s;
	m->n++;
	m->bytes += rest_len;
	*out = s;
	return 0;
}

/* ---- server set -------------------------------------------------------------- */

int pgs_set_init(struct pgs_set *s, unsigned max)
{
	unsigned cap = 16;

	memset(s, 0, sizeof(*s));
	while (cap < max * 4 + 4)
		cap *= 2;
	s->s = calloc(cap, sizeof(*s->s));
	if (!s->s)
		return -ENOMEM;
	s->cap = cap;
	s->max = max;
	return 0;
}

void pgs_set_free(struct pgs_set *s)
{
	free(s->s);
	memset(s, 0, sizeof(*s));
}

void pgs_set_clear(struct pgs_set *s)
{
	if (s->s)
		memset(s->s, 0, s->cap * sizeof(*s->s));
	s->n = 0;
}

static unsigned set_slot(const struct pgs_set *s, const struct pgs_id *id)
{
	return (unsigned)(id->lo ^ (id->hi >> 7)) & (s->cap - 1);
}

static int set_find(const struct pgs_set *s, const struct pgs_id *id)
{
	unsigned i;

	if (!s->cap)
		return -1;
	for (i = set_slot(s, id); s->s[i].used; i = (i + 1) & (s->cap - 1))
		if (s->s[i].id.lo == id->lo && s->s[i].id.hi == id->hi)
			return (int)i;
	return -1;
}

bool pgs_set_has(struct pgs_set *s, const struct pgs_id *id)
{
	int i = set_find(s, id);

	if (i < 0)
		return false;
	s->s[i].used = ++s->tick;
	return true;
}

/* Remove slot i, shifting back the entries of its probe run. */
static void set_remove_at(struct pgs_set *s, unsigned i)
{
	unsigned j = i, mask = s->cap - 1;

	s->s[i].used = 0;
	s->n--;
	for (;;) {
		unsigned k;

		j = (j + 1) & mask;
		if (!s->s[j].used)
			return;
		k = set_slot(s, &s->s[j].id);
		/* move j into the hole at i if its home k is not in (i, j] */
		if ((i <= j) ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		s->s[i] = s->s[j];
		s->s[j].used = 0;
		i = j;
	}
}

void pgs_set_del(struct pgs_set *s, const struct pgs_id *id)
{
	int i = set_find(s, id);

	if (i >= 0)
		set_remove_at(s, (unsigned)i);
}

int pgs_set_add(struct pgs_set *s, const struct pgs_id *id, bool force, struct pgs_id *evicted)
{
	int evict = 0;
	unsigned i;

	if (!s->cap)
		return 0;
	if (set_find(s, id) >= 0) {
		pgs_set_has(s, id);
		return 0;
	}
	if (!force && s->n >= s->max && s->n > 0) {
		unsigned lru = 0;
		uint64_t best = UINT64_MAX;

		for (i = 0; i < s->cap; i++)
			if (s->s[i].used && s->s[i].used < best) {
				best = s->s[i].used;
				lru = i;
			}
		if (evicted)
			*evicted = s->s[lru].id;
		set_remove_at(s, lru);
		evict = 1;
	}
	if (s->n + 1 >= s->cap)
		return evict;                   /* full even when forced: forget it */
	for (i = set_slot(s, id); s->s[i].used; i = (i + 1) & (s->cap - 1))
		;
	s->s[i].id = *id;
	s->s[i].used = ++s->tick;
	s->n++;
	return evict;
}

/* ---- owed responses ---------------------------------------------------------- */

int pgs_q_init(struct pgs_queue *q, unsigned cap, struct pgs_set *set)
{
	memset(q, 0, sizeof(*q));
	q->e = calloc(cap, sizeof(*q->e));
	if (!q->e)
		return -ENOMEM;
	q->cap = cap;
	q->set = set;
	return 0;
}

void pgs_q_free(struct pgs_queue *q)
{
	free(q->e);
	memset(q, 0, sizeof(*q));
}

void pgs_q_reset(struct pgs_queue *q)
{
	q->head = 0;
	q->n = 0;
	q->err_skip = false;
}

static struct pgs_pend *q_at(struct pgs_queue *q, unsigned i)
{
	return &q->e[(q->head + i) % q->cap];
}

static void q_pop(struct pgs_queue *q)
{
	q->head = (q->head + 1) % q->cap;
	q->n--;
}

int pgs_q_push(struct pgs_queue *q, enum pgs_kind kind, const struct pgs_id *id, uint64_t t_us)
{
	struct pgs_pend *p;

	if (q->err_skip) {
		if (kind != PGS_SYNC)
			return 1;
		q->err_skip = false;
	}
	if (q->n == q->cap)
		return -ENOBUFS;
	p = q_at(q, q->n);
	p->kind = (uint8_t)kind;
	if (id)
		p->id = *id;
	else
		memset(&p->id, 0, sizeof(p->id));
	p->t_us = t_us;
	q->n++;
	return 0;
}

/* The server did not run this entry (error earlier in the batch). */
static void q_undo(struct pgs_queue *q, const struct pgs_pend *p)
{
	if (!q->set)
		return;
	if (p->kind == PGS_PARSE || p->kind == PGS_PARSE_HIDDEN)
		pgs_set_del(q->set, &p->id);
	else if (p->kind == PGS_CLOSE_HIDDEN)
		pgs_set_add(q->set, &p->id, true, NULL);
}

/* An ErrorResponse ended the extended-protocol message at the head. */
static void q_error(struct pgs_queue *q, bool *hidden_err)
{
	struct pgs_pend *h = q_at(q, 0);

	if (h->kind == PGS_PARSE_HIDDEN || h->kind == PGS_CLOSE_HIDDEN)
		*hidden_err = true;
	q_undo(q, h);
	q_pop(q);
	while (q->n && q_at(q, 0)->kind != PGS_SYNC) {
		q_undo(q, q_at(q, 0));
		q_pop(q);
	}
	if (!q->n)
		q->err_skip = true;
}

int pgs_q_on_server(struct pgs_queue *q, char type, uint64_t *done_t_us, bool *hidden_err)
{
	struct pgs_pend *h;
	int act = PGS_FORWARD;

	*done_t_us = 0;
	*hidden_err = false;
	if (type == 'S' || type == 'N' || type == 'A')
		return PGS_FORWARD;             /* asynchronous: any time */
	if (!q->n)
		return type == 'E' ? PGS_FORWARD : -EPROTO;
	h = q_at(q, 0);
	switch (h->kind) {
	case PGS_QUERY:
	case PGS_QUERY_HIDDEN:
		act = h->kind == PGS_QUERY_HIDDEN ? PGS_SWALLOW : PGS_FORWARD;
		if (type == 'E' && h->kind == PGS_QUERY_HIDDEN)
			*hidden_err = true;
		if (type == 'Z') {
			if (h->kind == PGS_QUERY)
				*done_t_us = h->t_us ? h->t_us : 1;
			q_pop(q);
		}
		return act;
	case PGS_SYNC:
		if (type == 'E')
			return PGS_FORWARD;     /* e.g. a deferred constraint at commit */
		if (type != 'Z')
			return -EPROTO;
		*done_t_us = h->t_us ? h->t_us : 1;
		q_pop(q);
		return PGS_FORWARD;
	case PGS_PARSE_FAKE:
	case PGS_CLOSE_FAKE:
		return -EPROTO;                 /* drained before anything arrives */
	default:
		break;
	}
	if (type == 'E') {
		q_error(q, hidden_err);
		return PGS_FORWARD;
	}
	switch (h->kind) {
	case PGS_PARSE:
	case PGS_PARSE_HIDDEN:
		if (type != '1')
			return -EPROTO;
		act = h->kind == PGS_PARSE_HIDDEN ? PGS_SWALLOW : PGS_FORWARD;
		break;
	case PGS_BIND:
		if (type != '2')
			return -EPROTO;
		break;
	case PGS_DESC_STMT:
		if (type == 't')
			return PGS_FORWARD;
		if (type != 'T' && type != 'n')
			return -EPROTO;
		break;
	case PGS_DESC_PORTAL:
		if (type != 'T' && type != 'n')
			return -EPROTO;
		break;
	case PGS_EXECUTE:
		if (type == 'D' || type == 'G' || type == 'H' || type == 'd' || type == 'c')
			return PGS_FORWARD;
		if (type != 'C' && type != 'I' && type != 's')
			return -EPROTO;
		break;
	case PGS_CLOSE:
	case PGS_CLOSE_HIDDEN:
		if (type != '3')
			return -EPROTO;
		act = h->kind == PGS_CLOSE_HIDDEN ? PGS_SWALLOW : PGS_FORWARD;
		break;
	default:
		return -EPROTO;
	}
	q_pop(q);
	return act;
}

int pgs_q_drain_fake(struct pgs_queue *q, struct buf *to_client)
{
	int rc;

	while (q->n) {
		struct pgs_pend *h = q_at(q, 0);

		if (h->kind == PGS_PARSE_FAKE)
			rc = pgw_put_empty(to_client, '1');
		else if (h->kind == PGS_CLOSE_FAKE)
			rc = pgw_put_empty(to_client, '3');
		else
			return 0;
		if (rc)
			return rc;
		q_pop(q);
	}
	return 0;
}
