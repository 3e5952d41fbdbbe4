/*
 * qtrack.c - the pooler's side of query statistics: which statement each
 * answer completes, with its text, parameters, rows and errors, handed to
 * qstats (qstats.h) when it completes.
 *
 * How: every simple Query (and FunctionCall) and every Execute a client
 * sends pushes one record on its server connection's FIFO, in the order
 * the server will answer. An Execute's record carries the statement of the
 * Bind before it (the text of the named statement, or of the last unnamed
 * Parse, and the Bind's parameters), so a client that Binds and Executes a
 * statement N times before one Sync, or Parses it once and Executes it
 * over many requests, is N calls. Each record knows the ReadyForQuery
 * that ends its request (the count of Queries and Syncs sent before it):
 * an Execute's record completes at its CommandComplete, EmptyQueryResponse,
 * PortalSuspended or ErrorResponse, timed from when it was sent or the
 * previous answer on that connection, whichever is later (the server runs
 * one statement at a time); a Query's record collects the row counts of
 * its CommandCompletes and completes at its ReadyForQuery. At a
 * ReadyForQuery, Executes of that request still open were skipped by the
 * server after an error and are dropped, not counted. Answers of a later
 * request never touch an earlier record. Injected messages (parameter
 * SETs, re-prepares, the reset query) are swallowed before they reach
 * here. Everything is bounded: the FIFO by the server's response queue
 * (POOLER_QUEUE_CAP), texts by query_analysis.max_query_length.
 *
 * Named statements are found in the client's map (pgstmt.h): in
 * transaction mode it is what renames them, in session mode (or with
 * pooler.max_prepared_statements = 0) the pooler keeps it only for this
 * and the result cache, bounded the same way; a name beyond the bound is
 * not recorded.
 *
 * What not: function calls are not recorded; a portal run by several
 * row-limited Executes counts once (the first); requests answered by the
 * result cache never reach the server and are not counted.
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
	uint64_t zidx;                  /* the ReadyForQuery that ends its request */
	uint64_t rows;
	bool error;
	bool exec;                      /* an Execute's (else a Query's) */
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

/* A record that can't be allocated is simply missing: the others still
 * find their answers by their request's index. */
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
	r = len ? qreq_new((const char *)body, len, NULL, 0, false, c->p->qt_max_text) : NULL;
	if (r) {
		r->zidx = s->qt_zsent;
		push(s, r);
	}
	s->qt_zsent++;
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

void qtrack_execute(struct client *c, struct server *s)
{
	struct qreq *r = c->qt_open;

	if (!c->p->qstats)
		return;
	/* every Execute gets exactly one answer: one without a statement to
	 * record (the same portal again, an unknown statement) still takes
	 * its place, empty */
	if (!r)
		r = qreq_new("", 0, NULL, 0, false, 0);
	if (!r)
		return;
	c->qt_open = NULL;
	r->exec = true;
	r->zidx = s->qt_zsent;
	r->t_us = mono_us();
	push(s, r);
}

void qtrack_sync(struct client *c, struct server *s)
{
	if (!c->p->qstats)
		return;
	free(c->qt_open);               /* a Bind never executed */
	c->qt_open = NULL;
	s->qt_zsent++;
}

static struct qreq *pop(struct server *s)
{
	struct qreq *r = s->qt_head;

	s->qt_head = r->next;
	if (!s->qt_head)
		s->qt_tail = NULL;
	return r;
}

static void complete(struct server *s, struct qreq *r, uint64_t now)
{
	struct pooler *p = s->pool->p;
	uint64_t from = r->t_us;

	/* the server ran it after whatever it answered before */
	if (r->exec && s->qt_last_us > from)
		from = s->qt_last_us;
	if (r->len && p->qstats) {
		struct qstats_sample smp = {
			.db = p->dbs[s->pool->db].conf.name,
			.text = (const char *)r->data,
			.len = r->len,
			.bind = r->has_bind ? r->data + r->len + 1 : NULL,
			.bind_len = r->bind_len,
			.dur_us = now - from,
			.rows = r->rows,
			.error = r->error,
		};

		(void)qstats_record(p->qstats, &smp);   /* full: dropped and counted there */
	}
	free(r);
}

void qtrack_server(struct server *s, char type, const uint8_t *body, size_t n)
{
	struct qreq *r = s->qt_head;
	uint64_t rows, now;

	if (!r || r->zidx != s->qt_zdone)
		return;                 /* nothing of this request is recorded */
	if (type == 'E')
		r->error = true;
	else if (type == 'C' && qstats_tag_rows((const char *)body, n, &rows))
		r->rows += rows;
	if (!r->exec || (type != 'C' && type != 'E' && type != 'I' && type != 's'))
		return;
	now = mono_us();
	complete(s, pop(s), now);
	s->qt_last_us = now;
}

void qtrack_done(struct server *s)
{
	uint64_t now;

	if (!s->pool->p->qstats)
		return;
	now = mono_us();
	while (s->qt_head && s->qt_head->zidx <= s->qt_zdone) {
		struct qreq *r = pop(s);

		if (r->exec)
			free(r);        /* skipped by the server after an error */
		else
			complete(s, r, now);
	}
	s->qt_zdone++;
	s->qt_last_us = now;
}

void qtrack_server_clear(struct server *s)
{
	while (s->qt_head) {
		struct qreq *n = s->qt_head->next;

		free(s->qt_head);
		s->qt_head = n;
	}
	s->qt_tail = NULL;
	s->qt_zsent = s->qt_zdone = 0;
}

void qtrack_client_clear(struct client *c)
{
	free(c->qt_text);
	c->qt_text = NULL;
	free(c->qt_open);
	c->qt_open = NULL;
}
