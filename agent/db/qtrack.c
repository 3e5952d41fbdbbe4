/*
 * qtrack.c - the pooler's side of query statistics: which request each
 * ReadyForQuery completes, with its text, parameters, rows and errors,
 * handed to qstats (qstats.h) when it completes.
 *
 * How: every simple Query (and FunctionCall) and every Sync a client
 * sends pushes one record on its server connection's FIFO, in the order
 * the server will answer; the record of a Sync carries the statement of
 * the last Bind before it (the text of the named statement, or of the
 * last unnamed Parse, and the Bind's parameters). CommandComplete tags
 * add their row counts to the oldest record, an ErrorResponse marks it,
 * and the ReadyForQuery that pgstmt.c reports as completing a client's
 * request pops it. Injected messages (parameter SETs, re-prepares, the
 * reset query) are swallowed before they reach here, so the FIFO stays in
 * step. Everything is bounded: the FIFO by the server's response queue
 * (POOLER_QUEUE_CAP), texts by query_analysis.max_query_length.
 *
 * Named statements are found in the client's map (pgstmt.h): in
 * transaction mode it is what renames them, in session mode (or with
 * pooler.max_prepared_statements = 0) the pooler keeps it only for this
 * and the result cache, bounded the same way; a name beyond the bound is
 * not recorded.
 *
 * What not: function calls are timed as a request with no text and not
 * recorded; a batch with several Executes before one Sync is recorded
 * under its last statement.
 */
#include <stdlib.h>
#include <string.h>
#include "hotpath/log.h"
#include "hotpath/pgwire.h"
#include "hotpath/qstats.h"
#include "pooler_int.h"

struct qreq {
	struct qreq *next;
	uint64_t t_us;
	uint64_t rows;
	bool error;
	size_t len;                     /* 0: nothing to record */
	size_t bind_len;
	bool has_bind;
	uint8_t data[];                 /* text, NUL, bind */
};

static uint64_t mono_us(void)
{
	return hp_now_us();
}

static struct qreq *qreq_new(const char *text, size_t len, const uint8_t *bind, size_t blen,
			     bool has_bind, size_t max)
{
	struct qreq *r;

	if (len > max)
		len = max;
	if (blen > 64 * 1024)
		has_bind = false, blen = 0;
	r = malloc(sizeof(*r) + len + 1 + blen);
	if (!r)
		return NULL;
	memset(r, 0, sizeof(*r));
	r->t_us = mono_us();
	r->len = len;
	if (len)
		memcpy(r->data, text, len);
	r->data[len] = '\0';
	r->has_bind = has_bind;
	r->bind_len = blen;
	if (blen)
		memcpy(r->data + len + 1, bind, blen);
	return r;
}

static void push(struct server *s, struct qreq *r)
{
	r->next = NULL;
	if (s->qt_tail)
		s->qt_tail->next = r;
	else
		s->qt_head = r;
	s->qt_tail = r;
}

/* A record that can't be allocated still has to keep the FIFO in step:
 * an empty one costs a small allocation, and if even that fails we push
 * nothing and drop the whole FIFO at the next ReadyForQuery mismatch. */
void qtrack_query(struct client *c, struct server *s, char type, const uint8_t *body, size_t n)
{
	struct qreq *r;
	size_t len = 0;

	if (!c->p->qstats)
		return;
	if (type == 'Q' && n) {
		const void *nul = memchr(body, '\0', n);

		len = nul ? (size_t)((const uint8_t *)nul - body) : n;
	}
	r = qreq_new((const char *)body, len, NULL, 0, false, c->p->qt_max_text);
	if (r)
		push(s, r);
}

void qtrack_parse(struct client *c, const struct pgw_parse *ps)
{
	size_t len;

	if ((!c->p->qstats && !c->p->qcache) || ps->name[0])
		return;
	len = ps->query_len < c->p->qt_max_text ? ps->query_len : c->p->qt_max_text;
	free(c->qt_text);
	c->qt_text = malloc(len + 1);
	c->qt_len = 0;
	if (!c->qt_text)
		return;
	memcpy(c->qt_text, ps->query, len);
	c->qt_text[len] = '\0';
	c->qt_len = len;
}

const char *qtrack_bind_text(struct client *c, const struct pgw_bind *b,
			     const struct pgs_stmt *st, size_t *len)
{
	if (st) {
		const void *nul = memchr(st->rest, '\0', st->rest_len);

		*len = nul ? (size_t)((const uint8_t *)nul - st->rest) : st->rest_len;
		return (const char *)st->rest;
	}
	if (!b->stmt[0] && c->qt_text) {
		*len = c->qt_len;
		return c->qt_text;
	}
	*len = 0;
	return NULL;
}

void qtrack_bind(struct client *c, const struct pgw_bind *b, const struct pgs_stmt *st)
{
	const char *text;
	size_t len = 0;

	if (!c->p->qstats)
		return;
	text = qtrack_bind_text(c, b, st, &len);
	free(c->qt_open);
	c->qt_open = text ? qreq_new(text, len, b->rest, b->rest_len, true, c->p->qt_max_text) : NULL;
}

void qtrack_sync(struct client *c, struct server *s)
{
	struct qreq *r = c->qt_open;

	if (!c->p->qstats)
		return;
	c->qt_open = NULL;
	if (!r)
		r = qreq_new("", 0, NULL, 0, false, 0);
	if (r)
		push(s, r);
}

void qtrack_server(struct server *s, char type, const uint8_t *body, size_t n)
{
	struct qreq *r = s->qt_head;
	uint64_t rows;

	if (!r)
		return;
	if (type == 'E')
		r->error = true;
	else if (type == 'C' && qstats_tag_rows((const char *)body, n, &rows))
		r->rows += rows;
}

void qtrack_done(struct server *s)
{
	struct pooler *p = s->pool->p;
	struct qreq *r = s->qt_head;

	if (!r)
		return;
	s->qt_head = r->next;
	if (!s->qt_head)
		s->qt_tail = NULL;
	if (r->len && p->qstats) {
		struct qstats_sample smp = {
			.db = p->dbs[s->pool->db].conf.name,
			.text = (const char *)r->data,
			.len = r->len,
			.bind = r->has_bind ? r->data + r->len + 1 : NULL,
			.bind_len = r->bind_len,
			.dur_us = mono_us() - r->t_us,
			.rows = r->rows,
			.error = r->error,
		};

		(void)qstats_record(p->qstats, &smp);   /* full: dropped and counted there */
	}
	free(r);
}

void qtrack_server_clear(struct server *s)
{
	while (s->qt_head) {
		struct qreq *n = s->qt_head->next;

		free(s->qt_head);
		s->qt_head = n;
	}
	s->qt_tail = NULL;
}

void qtrack_client_clear(struct client *c)
{
	free(c->qt_text);
	c->qt_text = NULL;
	free(c->qt_open);
	c->qt_open = NULL;
}
