/*
 * pool.c - server-connection pools of the PostgreSQL pooler: lending,
 * waiting, sizing, upkeep and statistics.
 *
 * What: one pool per (database, client user). A pool lends idle server
 * connections most-recently-used first (warm caches, and the least used
 * ones age out through server_idle_timeout), opens new ones while it is
 * under its limit, and otherwise queues the client FIFO. A queued client
 * that waits longer than pooler.query_wait_timeout gets a FATAL error
 * naming the pool, its limit and what to change. A server connection
 * coming back is reset (session mode: pooler.server_reset_query), handed
 * to the longest waiter, parked, or closed when it outlived
 * server_lifetime or the pool shrank. Once a second idle connections past
 * server_idle_timeout are closed down to min_pool_size, and the pool is
 * topped up to min_pool_size.
 *
 * Adaptive sizing (pooler.adaptive_pool_size): the limit moves within
 * [adaptive_min_pool_size, default_pool_size] once a second, in the
 * manner of Netflix concurrency-limits' gradient limiter: a long-term
 * baseline of the mean query time (EWMA) is compared with the last
 * second's mean; when the recent mean rises past the baseline the
 * database is saturating and the limit is cut by the ratio (never below
 * half), when clients had to wait and latency holds, the limit grows by
 * its square root. A new pool starts at the lower bound. Every change is
 * logged and kept (16 per pool) for
 * GET /api/v2/pools. The controller only caps new connections; it never
 * interrupts a transaction.
 *
 * Statistics are relaxed atomics written by the loop thread and read by
 * pooler_stats()/pooler_metrics_render() from API threads; histograms
 * are hist.h log2 microsecond buckets (wait, query, transaction).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/log.h"
#include "pooler_int.h"

void pool_list_add(struct server **head, struct server *s)
{
	s->prev = NULL;
	s->next = *head;
	if (*head)
		(*head)->prev = s;
	*head = s;
}

void pool_list_del(struct server **head, struct server *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else if (*head == s)
		*head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
}

struct pool *pool_get(struct pooler *p, int db, const char *user)
{
	unsigned n = atomic_load(&p->npools);
	struct pool *pl;

	for (unsigned i = 0; i < n; i++)
		if (p->pools[i]->db == db && strcmp(p->pools[i]->user, user) == 0)
			return p->pools[i];
	if (n == POOLER_MAX_POOLS)
		return NULL;
	pl = calloc(1, sizeof(*pl));
	if (!pl)
		return NULL;
	pl->p = p;
	pl->idx = n;
	pl->db = db;
	snprintf(pl->user, sizeof(pl->user), "%s", user);
	/* The controller starts low and grows on measured waits (slow start). */
	pl->limit = p->set.adaptive ? p->set.adaptive_min : p->set.default_pool_size;
	pl->st.limit = pl->limit;
	p->pools[n] = pl;
	atomic_store_explicit(&p->npools, n + 1, memory_order_release);
	return pl;
}

void pool_set_error(struct pool *pl, const char *msg)
{
	pthread_mutex_lock(&pl->p->stats_mu);
	snprintf(pl->last_error, sizeof(pl->last_error), "%s", msg);
	pthread_mutex_unlock(&pl->p->stats_mu);
}

void pool_note_query(struct pool *pl, uint64_t us)
{
	ST_INC(pl->st.queries);
	hist_record(&pl->st.query_us, us);
	pl->win_queries++;
	pl->win_query_us += us;
}

void pool_note_wait(struct pool *pl, uint64_t us)
{
	hist_record(&pl->st.wait_us, us);
	if (us >= 1000) {
		pl->win_waited++;
		pl->win_wait_us += us;
	}
}

int pool_launch(struct pool *pl)
{
	struct server *s;
	int rc;

	if (pl->p->stopping || pl->n_servers >= pl->limit || pooler_ms(pl->p) < pl->next_connect_ms)
		return -EAGAIN;
	rc = pooler_server_connect(pl, &s);
	if (rc)
		pl->next_connect_ms = pooler_ms(pl->p) + 500;
	return rc;
}

static unsigned waiting_count(const struct pool *pl)
{
	return (unsigned)ST_GET(pl->st.clients_waiting);
}

struct server *pool_acquire(struct pool *pl, struct client *c)
{
	struct server *s = pl->idle;

	if (s) {
		pooler_link(c, s);
		hist_record(&pl->st.wait_us, 0);
		return s;
	}
	c->waiting = true;
	c->wait_since_us = pooler_us(pl->p);
	c->wnext = NULL;
	c->wprev = pl->wait_tail;
	if (pl->wait_tail)
		pl->wait_tail->wnext = c;
	else
		pl->wait_head = c;
	pl->wait_tail = c;
	ST_INC(pl->st.clients_waiting);
	if (pl->n_connecting < waiting_count(pl))
		(void)pool_launch(pl);
	pooler_update(&c->io);
	return NULL;
}

void pool_unqueue(struct pool *pl, struct client *c)
{
	if (!c->waiting)
		return;
	if (c->wprev)
		c->wprev->wnext = c->wnext;
	else
		pl->wait_head = c->wnext;
	if (c->wnext)
		c->wnext->wprev = c->wprev;
	else
		pl->wait_tail = c->wprev;
	c->wprev = c->wnext = NULL;
	c->waiting = false;
	ST_DEC(pl->st.clients_waiting);
}

static bool server_expired(const struct pool *pl, const struct server *s, uint64_t now)
{
	const struct pooler_settings *set = &pl->p->set;

	return s->must_close || pl->p->stopping || pl->n_servers > pl->limit ||
	       (set->lifetime_ms && now - s->created_ms >= set->lifetime_ms);
}

void pool_server_free(struct pool *pl, struct server *s)
{
	uint64_t now = pooler_ms(pl->p);

	if (server_expired(pl, s, now)) {
		pooler_server_close(s, s->must_close ? "marked for closing" :
				    pl->p->stopping ? "pooler stopping" :
				    pl->n_servers > pl->limit ? "pool shrank" : "server_lifetime reached");
		return;
	}
	if (s->dirty && pl->p->set.pool_mode == HP_POOL_SESSION && pl->p->set.reset_query[0]) {
		pooler_server_reset(s);
		return;
	}
	pooler_server_idle(s);
	if (pl->wait_head)
		pool_give_idle(pl);
}

void pool_server_ready(struct pool *pl, struct server *s)
{
	while (pl->welcome)
		pooler_client_welcome(pl->welcome);
	pooler_server_idle(s);
	if (pl->wait_head)
		pool_give_idle(pl);
}

/* Hand idle servers to waiters while both exist. */
void pool_give_idle(struct pool *pl)
{
	while (pl->wait_head && pl->idle) {
		struct client *c = pl->wait_head;
		struct server *s = pl->idle;

		pool_unqueue(pl, c);
		pool_note_wait(pl, pooler_us(pl->p) - c->wait_since_us);
		pooler_link(c, s);
		pooler_client_resume(c);
	}
}

static void adapt(struct pool *pl, uint64_t now_ms)
{
	const struct pooler_settings *set = &pl->p->set;
	double short_ms, grad, target, wait_ms;
	unsigned from = pl->limit, to, lo = set->adaptive_min, hi = set->default_pool_size;
	char reason[96];

	if (!pl->win_queries)
		goto reset;
	short_ms = (double)pl->win_query_us / (double)pl->win_queries / 1000.0;
	wait_ms = pl->win_waited ? (double)pl->win_wait_us / (double)pl->win_waited / 1000.0 : 0;
	if (pl->long_ms <= 0)
		pl->long_ms = short_ms;
	grad = pl->long_ms / (short_ms > 1e-6 ? short_ms : 1e-6);
	if (grad > 1.0)
		grad = 1.0;
	if (grad < 0.5)
		grad = 0.5;
	target = from;
	reason[0] = '\0';
	if (grad < 0.8) {
		target = from * grad;
		snprintf(reason, sizeof(reason), "query time rose to %.2f ms over a %.2f ms "
			 "baseline: shrink", short_ms, pl->long_ms);
	} else if (pl->win_waited) {
		target = from + sqrt((double)from);
		snprintf(reason, sizeof(reason), "%" PRIu64 " clients waited %.2f ms on average "
			 "with query time steady: grow", pl->win_waited, wait_ms);
	}
	/* baseline follows slowly, and faster downwards */
	pl->long_ms = short_ms < pl->long_ms ? 0.5 * pl->long_ms + 0.5 * short_ms :
					       0.95 * pl->long_ms + 0.05 * short_ms;
	to = (unsigned)floor(target + 0.5);
	if (to < lo)
		to = lo;
	if (to > hi)
		to = hi;
	if (to == from)
		goto reset;
	pl->limit = to;
	__atomic_store_n(&pl->st.limit, to, __ATOMIC_RELAXED);
	log_info("pooler: %s/%s: pool limit %u -> %u (%s)", pl->p->dbs[pl->db].conf.name,
		 pl->user, from, to, reason);
	pthread_mutex_lock(&pl->p->stats_mu);
	{
		struct pooler_decision *d = &pl->dec[pl->dec_head];

		d->wall_ms = hp_wall_ms();
		d->from = from;
		d->to = to;
		d->short_ms = short_ms;
		d->long_ms = pl->long_ms;
		d->wait_ms = wait_ms;
		d->waited = (unsigned)pl->win_waited;
		snprintf(d->reason, sizeof(d->reason), "%s", reason);
		pl->dec_head = (pl->dec_head + 1) % POOLER_DECISIONS;
		if (pl->n_dec < POOLER_DECISIONS)
			pl->n_dec++;
	}
	pthread_mutex_unlock(&pl->p->stats_mu);
reset:
	(void)now_ms;
	pl->win_queries = pl->win_query_us = pl->win_waited = pl->win_wait_us = 0;
}

void pool_tick(struct pool *pl, uint64_t now, bool second)
{
	const struct pooler_settings *set = &pl->p->set;
	uint64_t now_u = pooler_us(pl->p);
	struct server *s, *nx;

	/* wait-queue and welcome timeouts */
	while (pl->wait_head && set->query_wait_timeout_ms &&
	       now_u - pl->wait_head->wait_since_us >= set->query_wait_timeout_ms * 1000) {
		struct client *c = pl->wait_head;
		char msg[640];

		ST_INC(pl->st.wait_timeouts);
		pthread_mutex_lock(&pl->p->stats_mu);
		snprintf(msg, sizeof(msg), "query_wait_timeout: no server connection of pool "
			 "%s/%s became free within %" PRIu64 " ms (limit %u, %u in use)%s%s; "
			 "raise pooler.default_pool_size or pooler.query_wait_timeout",
			 pl->p->dbs[pl->db].conf.name, pl->user, set->query_wait_timeout_ms,
			 pl->limit, (unsigned)ST_GET(pl->st.servers_active),
			 pl->last_error[0] && !pl->n_servers ? "; last server error: " : "",
			 pl->last_error[0] && !pl->n_servers ? pl->last_error : "");
		pthread_mutex_unlock(&pl->p->stats_mu);
		log_warn("pooler: %s", msg);
		pooler_client_fail(c, "08P01", msg);
	}
	while (pl->welcome && set->query_wait_timeout_ms &&
	       now_u - pl->welcome->wait_since_us >= set->query_wait_timeout_ms * 1000) {
		ST_INC(pl->st.wait_timeouts);
		pooler_client_fail(pl->welcome, "08P01", "query_wait_timeout: could not log in "
				   "to the database server in time");
	}
	/* connections that take too long to log in */
	for (s = pl->others; s; s = nx) {
		nx = s->next;
		if ((s->state == SV_CONNECTING || s->state == SV_LOGIN) && set->connect_timeout_ms &&
		    now - s->state_since_ms >= set->connect_timeout_ms) {
			pool_set_error(pl, "server_connect_timeout: the server did not answer");
			pl->next_connect_ms = now + 500;
			pooler_server_close(s, "server_connect_timeout");
		}
	}
	/* demand that nobody is connecting for (after a failure's backoff) */
	if ((pl->wait_head || pl->welcome) && pl->n_connecting == 0)
		(void)pool_launch(pl);
	if (!second)
		return;
	for (s = pl->idle; s; s = nx) {
		nx = s->next;
		if (s->must_close || pl->n_servers > pl->limit ||
		    (set->lifetime_ms && now - s->created_ms >= set->lifetime_ms) ||
		    (set->idle_timeout_ms && now - s->last_used_ms >= set->idle_timeout_ms &&
		     pl->n_servers > set->min_pool_size))
			pooler_server_close(s, "idle timeout, lifetime or pool shrink");
	}
	if (pl->have_welcome && pl->n_servers < set->min_pool_size && pl->n_connecting == 0)
		(void)pool_launch(pl);
	if (set->adaptive)
		adapt(pl, now);
	else if (pl->limit != set->default_pool_size)
		pl->limit = set->default_pool_size;
	__atomic_store_n(&pl->st.limit, pl->limit, __ATOMIC_RELAXED);
}

/* ---- statistics --------------------------------------------------------------- */

static void hist_copy(struct hist *dst, const struct hist *src)
{
	memset(dst, 0, sizeof(*dst));
	hist_merge(dst, src);
}

int pooler_stats(struct pooler *p, struct pooler_pool_stats **out, unsigned *nout,
		 struct pooler_global_stats *g)
{
	unsigned n = atomic_load_explicit(&p->npools, memory_order_acquire);
	struct pooler_pool_stats *v = calloc(n ? n : 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		struct pool *pl = p->pools[i];
		struct pooler_pool_stats *o = &v[i];

		snprintf(o->database, sizeof(o->database), "%s", p->dbs[pl->db].conf.name);
		snprintf(o->user, sizeof(o->user), "%s", pl->user);
		o->mode = p->set.pool_mode;
		o->limit = ST_GET(pl->st.limit);
		o->max_size = p->set.default_pool_size;
		o->min_size = p->set.adaptive ? p->set.adaptive_min : p->set.min_pool_size;
		o->adaptive = p->set.adaptive;
		o->clients = ST_GET(pl->st.clients);
		o->clients_active = ST_GET(pl->st.clients_active);
		o->clients_waiting = ST_GET(pl->st.clients_waiting);
		o->servers_active = ST_GET(pl->st.servers_active);
		o->servers_idle = ST_GET(pl->st.servers_idle);
		o->servers_connecting = ST_GET(pl->st.servers_connecting);
		o->servers_other = ST_GET(pl->st.servers_other);
		o->transactions = ST_GET(pl->st.transactions);
		o->queries = ST_GET(pl->st.queries);
		o->wait_timeouts = ST_GET(pl->st.wait_timeouts);
		o->servers_opened = ST_GET(pl->st.servers_opened);
		o->servers_closed = ST_GET(pl->st.servers_closed);
		o->server_login_failures = ST_GET(pl->st.server_login_failures);
		o->stmt_prepares = ST_GET(pl->st.stmt_prepares);
		o->stmt_reprepares = ST_GET(pl->st.stmt_reprepares);
		o->bytes_in = ST_GET(pl->st.bytes_in);
		o->bytes_out = ST_GET(pl->st.bytes_out);
		hist_copy(&o->wait_us, &pl->st.wait_us);
		hist_copy(&o->query_us, &pl->st.query_us);
		hist_copy(&o->xact_us, &pl->st.xact_us);
		pthread_mutex_lock(&p->stats_mu);
		snprintf(o->last_server_error, sizeof(o->last_server_error), "%s", pl->last_error);
		o->n_decisions = pl->n_dec;
		for (unsigned k = 0; k < pl->n_dec; k++)
			o->decisions[k] = pl->dec[(pl->dec_head + POOLER_DECISIONS - 1 - k) %
						  POOLER_DECISIONS];
		pthread_mutex_unlock(&p->stats_mu);
	}
	if (g) {
		g->clients = ST_GET(p->g.clients);
		g->accepted = ST_GET(p->g.accepted);
		g->rejected_max_clients = ST_GET(p->g.rejected_max_clients);
		g->auth_failures = ST_GET(p->g.auth_failures);
		g->cancels_forwarded = ST_GET(p->g.cancels_forwarded);
		g->cancels_ignored = ST_GET(p->g.cancels_ignored);
		g->ssl_refused = ST_GET(p->g.ssl_refused);
		g->port = p->port;
	}
	*out = v;
	*nout = n;
	return 0;
}

/* ---- Prometheus ------------------------------------------------------------------ */

static int prom_escape(struct buf *b, const char *s)
{
	int rc = 0;

	for (; *s && !rc; s++) {
		if (*s == '\\' || *s == '"')
			rc = buf_printf(b, "\\%c", *s);
		else if (*s == '\n')
			rc = buf_append_str(b, "\\n");
		else
			rc = buf_append(b, s, 1);
	}
	return rc;
}

static int labels(struct buf *b, const struct pooler_pool_stats *o)
{
	int rc = buf_append_str(b, "{database=\"");

	if (!rc)
		rc = prom_escape(b, o->database);
	if (!rc)
		rc = buf_append_str(b, "\",user=\"");
	if (!rc)
		rc = prom_escape(b, o->user);
	return rc ? rc : buf_append_str(b, "\"");
}

static int gauge(struct buf *b, const char *name, const char *type, const char *help,
		 const struct pooler_pool_stats *v, unsigned n, size_t off, const char *extra)
{
	int rc = buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);

	for (unsigned i = 0; i < n && !rc; i++) {
		uint64_t x;

		memcpy(&x, (const char *)&v[i] + off, sizeof(x));
		rc = buf_append_str(b, name);
		if (!rc)
			rc = labels(b, &v[i]);
		if (!rc)
			rc = buf_printf(b, "%s} %" PRIu64 "\n", extra ? extra : "", x);
	}
	return rc;
}

static int histogram(struct buf *b, const char *name, const char *help,
		     const struct pooler_pool_stats *v, unsigned n, size_t off)
{
	int rc = buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);

	for (unsigned i = 0; i < n && !rc; i++) {
		const struct hist *h = (const struct hist *)((const char *)&v[i] + off);
		uint64_t cum = 0;
		unsigned last = 0;

		for (unsigned k = 0; k < HIST_BUCKETS; k++)
			if (h->buckets[k])
				last = k;
		for (unsigned k = 0; k <= last && !rc; k++) {
			cum += h->buckets[k];
			rc = buf_printf(b, "%s_bucket", name);
			if (!rc)
				rc = labels(b, &v[i]);
			if (!rc)
				rc = buf_printf(b, ",le=\"%g\"} %" PRIu64 "\n",
						(double)hist_bucket_upper(k) / 1e6, cum);
		}
		for (unsigned k = last + 1; k < HIST_BUCKETS; k++)
			cum += h->buckets[k];
		if (!rc)
			rc = buf_printf(b, "%s_bucket", name);
		if (!rc)
			rc = labels(b, &v[i]);
		if (!rc)
			rc = buf_printf(b, ",le=\"+Inf\"} %" PRIu64 "\n", cum);
		if (!rc)
			rc = buf_printf(b, "%s_sum", name);
		if (!rc)
			rc = labels(b, &v[i]);
		if (!rc)
			rc = buf_printf(b, "} %.6f\n", (double)h->sum / 1e6);
		if (!rc)
			rc = buf_printf(b, "%s_count", name);
		if (!rc)
			rc = labels(b, &v[i]);
		if (!rc)
			rc = buf_printf(b, "} %" PRIu64 "\n", cum);
	}
	return rc;
}

#define OFF(m) offsetof(struct pooler_pool_stats, m)

int pooler_metrics_render(struct pooler *p, struct buf *b)
{
	struct pooler_pool_stats *v;
	struct pooler_global_stats g;
	unsigned n;
	int rc;

	if (!p)
		return 0;
	rc = pooler_stats(p, &v, &n, &g);
	if (rc)
		return rc;
	rc = buf_printf(b, "# HELP hotpath_pooler_clients Client connections to the pooler now.\n"
			"# TYPE hotpath_pooler_clients gauge\nhotpath_pooler_clients %" PRIu64 "\n"
			"# HELP hotpath_pooler_client_events_total Pooler-wide client events.\n"
			"# TYPE hotpath_pooler_client_events_total counter\n"
			"hotpath_pooler_client_events_total{event=\"accepted\"} %" PRIu64 "\n"
			"hotpath_pooler_client_events_total{event=\"rejected_max_clients\"} %" PRIu64 "\n"
			"hotpath_pooler_client_events_total{event=\"auth_failed\"} %" PRIu64 "\n"
			"hotpath_pooler_client_events_total{event=\"ssl_refused\"} %" PRIu64 "\n"
			"hotpath_pooler_client_events_total{event=\"cancel_forwarded\"} %" PRIu64 "\n"
			"hotpath_pooler_client_events_total{event=\"cancel_ignored\"} %" PRIu64 "\n",
			g.clients, g.accepted, g.rejected_max_clients, g.auth_failures, g.ssl_refused,
			g.cancels_forwarded, g.cancels_ignored);
	if (!rc)
		rc = gauge(b, "hotpath_pool_clients", "gauge", "Logged-in clients of the pool.",
			   v, n, OFF(clients), NULL);
	if (!rc)
		rc = gauge(b, "hotpath_pool_clients_active", "gauge",
			   "Clients holding a server connection now.", v, n, OFF(clients_active), NULL);
	if (!rc)
		rc = gauge(b, "hotpath_pool_clients_waiting", "gauge",
			   "Clients queued for a server connection now.", v, n,
			   OFF(clients_waiting), NULL);
	if (!rc)
		rc = gauge(b, "hotpath_pool_servers", "gauge", "Server connections by state.", v, n,
			   OFF(servers_active), ",state=\"active\"");
	if (!rc) {
		/* more samples of the same family, without HELP/TYPE again */
		static const struct { size_t off; const char *st; } more[] = {
			{ OFF(servers_idle), "idle" }, { OFF(servers_connecting), "login" },
			{ OFF(servers_other), "reset" },
		};

		for (size_t k = 0; k < HP_ARRAY_SIZE(more) && !rc; k++)
			for (unsigned i = 0; i < n && !rc; i++) {
				uint64_t x;

				memcpy(&x, (const char *)&v[i] + more[k].off, sizeof(x));
				rc = buf_append_str(b, "hotpath_pool_servers");
				if (!rc)
					rc = labels(b, &v[i]);
				if (!rc)
					rc = buf_printf(b, ",state=\"%s\"} %" PRIu64 "\n", more[k].st, x);
			}
	}
	if (!rc)
		rc = buf_append_str(b, "# HELP hotpath_pool_size_limit Server connections the pool "
				    "may open now (adaptive or configured).\n"
				    "# TYPE hotpath_pool_size_limit gauge\n");
	for (unsigned i = 0; i < n && !rc; i++) {
		rc = buf_append_str(b, "hotpath_pool_size_limit");
		if (!rc)
			rc = labels(b, &v[i]);
		if (!rc)
			rc = buf_printf(b, "} %u\n", v[i].limit);
	}
	if (!rc)
		rc = gauge(b, "hotpath_pool_transactions_total", "counter",
			   "Transactions completed through the pool.", v, n, OFF(transactions), NULL);
	if (!rc)
		rc = gauge(b, "hotpath_pool_queries_total", "counter",
			   "Queries (simple queries and Syncs) completed through the pool.", v, n,
			   OFF(queries), NULL);
	if (!rc)
		rc = gauge(b, "hotpath_pool_wait_timeouts_total", "counter",
			   "Clients refused after query_wait_timeout.", v, n, OFF(wait_timeouts), NULL);
	if (!rc)
		rc = gauge(b, "hotpath_pool_server_connections_opened_total", "counter",
			   "Server connections opened.", v, n, OFF(servers_opened), NULL);
	if (!rc)
		rc = gauge(b, "hotpath_pool_server_connections_closed_total", "counter",
			   "Server connections closed.", v, n, OFF(servers_closed), NULL);
	if (!rc)
		rc = gauge(b, "hotpath_pool_server_login_failures_total", "counter",
			   "Failed logins to the database server.", v, n, OFF(server_login_failures),
			   NULL);
	if (!rc)
		rc = gauge(b, "hotpath_pool_statement_reprepares_total", "counter",
			   "Prepared statements re-sent to another server connection "
			   "(transaction mode).", v, n, OFF(stmt_reprepares), NULL);
	if (!rc)
		rc = gauge(b, "hotpath_pool_bytes_to_server_total", "counter",
			   "Bytes sent to database servers.", v, n, OFF(bytes_in), NULL);
	if (!rc)
		rc = gauge(b, "hotpath_pool_bytes_to_client_total", "counter",
			   "Bytes sent to clients.", v, n, OFF(bytes_out), NULL);
	if (!rc)
		rc = histogram(b, "hotpath_pool_wait_seconds", "Time clients waited for a server "
			       "connection.", v, n, OFF(wait_us));
	if (!rc)
		rc = histogram(b, "hotpath_pool_query_seconds", "Query time seen by the pooler "
			       "(request sent to ReadyForQuery).", v, n, OFF(query_us));
	if (!rc)
		rc = histogram(b, "hotpath_pool_transaction_seconds", "Time a client held a "
			       "server connection.", v, n, OFF(xact_us));
	free(v);
	return rc;
}
