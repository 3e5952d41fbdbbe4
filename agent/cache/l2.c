/*
 * l2.c - L2 tier on Redis / Redis Cluster with hiredis 0.14
 * (see include/hotpath/l2.h).
 *
 * How: nodes are kept in an append-only array (a node is never freed while
 * the l2 lives, so a pointer to it stays valid without reference counts);
 * each has a small pool of blocking hiredis contexts with a mutex and a
 * condition variable, and, with tracking on, one invalidation context
 * owned by the event thread. A request is a pipeline of up to four
 * commands written with redisAppendCommandArgv and read back with
 * redisGetReply, so GET + PTTL cost one round trip. The cluster slot map
 * is a 16384-entry array of node indexes under a rwlock; MOVED writes the
 * one slot and asks for a full CLUSTER SLOTS refresh (rate limited), ASK
 * resends once with ASKING in front, a transport error in cluster mode
 * refreshes the map before the retry, so a replica promoted after its
 * master died is found. Nodes that just refused a connection are skipped
 * for a short back-off, which keeps failures fast.
 *
 * Tracking: a data connection is "tracked" when it ran CLIENT TRACKING on
 * REDIRECT <id> with the id of its node's current invalidation
 * connection; every (re)connect of that connection bumps the node's
 * generation, so data connections re-register lazily and a reply read on
 * a connection whose generation is stale is reported as not cacheable.
 * The event thread polls the invalidation connections (poll + one
 * redisBufferRead per readable fd, so it never blocks on one node),
 * reconnects them, and refreshes the cluster map once a second.
 *
 * Two paths. The blocking calls here (pooled blocking hiredis contexts,
 * timeouts bounding each call) serve threads that may wait: the task
 * processor, warm jobs, the API, writes. Reads for the RESP workers and
 * the pooler, which must not wait, go through the dispatcher in
 * l2_async.c (pipelined non-blocking connections on their own thread),
 * which shares the node table, slot map and back-off kept here.
 *
 * What not: no replicas reads (READONLY), no TLS or AUTH, no RESP3.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <hiredis/hiredis.h>
#include "hotpath/l2.h"
#include "hotpath/log.h"
#include "hotpath/resp.h"
#include "l2_int.h"


/* ---- slots ----------------------------------------------------------------- */

uint16_t l2_crc16(const char *p, size_t n)
{
	uint16_t crc = 0;

	for (size_t i = 0; i < n; i++) {
		crc ^= (uint16_t)((uint8_t)p[i] << 8);
		for (int b = 0; b < 8; b++)
			crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
	}
	return crc;
}

unsigned l2_key_slot(const char *key, size_t klen)
{
	const char *open = memchr(key, '{', klen), *close;

	if (open) {
		size_t rest = klen - (size_t)(open - key) - 1;

		close = memchr(open + 1, '}', rest);
		if (close && close > open + 1)
			return l2_crc16(open + 1, (size_t)(close - open - 1)) & (L2_SLOTS - 1);
	}
	return l2_crc16(key, klen) & (L2_SLOTS - 1);
}

/* ---- errors ---------------------------------------------------------------- */

int l2_ctx_errno(const redisContext *c)
{
	if (!c)
		return -ENOMEM;
	switch (c->err) {
	case REDIS_ERR_IO:
		if (strstr(c->errstr, "temporarily unavailable") || strstr(c->errstr, "timed out"))
			return -ETIMEDOUT;
		if (strstr(c->errstr, "refused"))
			return -ECONNREFUSED;
		return -EIO;
	case REDIS_ERR_EOF:
		return -ECONNRESET;
	case REDIS_ERR_PROTOCOL:
		return -EPROTO;
	case REDIS_ERR_OOM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

static void seterr(char *err, size_t errlen, const char *fmt, const char *a, unsigned port,
		   const char *why)
{
	if (err && errlen)
		snprintf(err, errlen, fmt, a, port, why);
}

/* ---- nodes ----------------------------------------------------------------- */

static struct l2_node *node_find(struct l2 *l, const char *host, uint16_t port, unsigned *idx)
{
	unsigned n = atomic_load(&l->n_nodes);

	for (unsigned i = 0; i < n; i++)
		if (l->nodes[i]->port == port && strcmp(l->nodes[i]->host, host) == 0) {
			if (idx)
				*idx = i;
			return l->nodes[i];
		}
	return NULL;
}

/* Find or add; NULL when the table is full or on ENOMEM. */
struct l2_node *l2_node_get(struct l2 *l, const char *host, uint16_t port, unsigned *idx)
{
	struct l2_node *n;
	unsigned i;

	if ((n = node_find(l, host, port, idx)))
		return n;
	pthread_mutex_lock(&l->nodes_mu);
	if ((n = node_find(l, host, port, idx)))
		goto out;
	i = atomic_load(&l->n_nodes);
	if (i >= L2_MAX_NODES)
		goto out;
	n = calloc(1, sizeof(*n));
	if (!n)
		goto out;
	n->pool = calloc(l->o.pool_size, sizeof(*n->pool));
	if (!n->pool) {
		free(n);
		n = NULL;
		goto out;
	}
	snprintf(n->host, sizeof(n->host), "%s", host);
	n->port = port;
	n->idx = i;
	pthread_mutex_init(&n->mu, NULL);
	hp_cond_init_monotonic(&n->cv);
	atomic_store(&n->up, true);
	l->nodes[i] = n;
	atomic_store(&l->n_nodes, i + 1);
	if (idx)
		*idx = i;
out:
	pthread_mutex_unlock(&l->nodes_mu);
	return n;
}

static void node_free(struct l2 *l, struct l2_node *n)
{
	for (unsigned i = 0; i < l->o.pool_size; i++)
		if (n->pool[i].c)
			redisFree(n->pool[i].c);
	if (n->ic)
		redisFree(n->ic);
	pthread_mutex_destroy(&n->mu);
	pthread_cond_destroy(&n->cv);
	free(n->pool);
	free(n);
}

static struct timeval tv_ms(uint64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000 };

	return tv;
}

static redisContext *connect_node(struct l2 *l, struct l2_node *n, char *err, size_t errlen)
{
	redisContext *c = redisConnectWithTimeout(n->host, n->port, tv_ms(l->o.connect_timeout_ms));

	if (!c || c->err) {
		seterr(err, errlen, "redis %s:%u: %s", n->host, n->port,
		       c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		atomic_store(&n->down_until_ms, hp_now_ms() + L2_DOWN_BACKOFF_MS);
		atomic_store(&n->up, false);
		return NULL;
	}
	redisSetTimeout(c, tv_ms(l->o.command_timeout_ms));
	redisEnableKeepAlive(c);
	atomic_store(&n->up, true);
	atomic_fetch_add(&l->reconnects, 1);
	return c;
}

/* Register tracking on a data connection if its node's invalidation
 * connection changed since. Returns 0 or -errno (connection then broken). */
static int conn_track(struct l2 *l, struct l2_node *n, struct l2_conn *k)
{
	uint64_t gen = atomic_load(&n->ic_gen);
	long long id = atomic_load(&n->ic_id);
	redisReply *r;
	char idbuf[32];

	if (!l->o.tracking || k->track_gen == gen || !atomic_load(&n->ic_up))
		return 0;
	snprintf(idbuf, sizeof(idbuf), "%lld", id);
	r = redisCommand(k->c, "CLIENT TRACKING on REDIRECT %s", idbuf);
	if (!r)
		return l2_ctx_errno(k->c);
	if (r->type == REDIS_REPLY_ERROR)
		log_warn("l2: CLIENT TRACKING on %s:%u refused: %s", n->host, n->port, r->str);
	else
		k->track_gen = gen;
	freeReplyObject(r);
	return 0;
}

/*
 * Take a pooled connection of node n, connected and tracked. NULL with a
 * message on failure; *rc -errno.
 */
static struct l2_conn *conn_get(struct l2 *l, struct l2_node *n, int *rc, char *err,
				size_t errlen)
{
	struct l2_conn *k = NULL;
	uint64_t deadline = hp_now_ms() + l->o.command_timeout_ms;

	if (atomic_load(&n->down_until_ms) > hp_now_ms()) {
		seterr(err, errlen, "redis %s:%u: %s", n->host, n->port,
		       "down (connection refused recently)");
		*rc = -ECONNREFUSED;
		return NULL;
	}
	pthread_mutex_lock(&n->mu);
	for (;;) {
		for (unsigned i = 0; i < l->o.pool_size && !k; i++)
			if (!n->pool[i].busy)
				k = &n->pool[i];
		if (k)
			break;
		{
			struct timespec ts;
			uint64_t now = hp_now_ms();

			if (now >= deadline) {
				pthread_mutex_unlock(&n->mu);
				seterr(err, errlen, "redis %s:%u: %s", n->host, n->port,
				       "no free connection in the pool");
				*rc = -ETIMEDOUT;
				return NULL;
			}
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_nsec += (long)((deadline - now) % 1000) * 1000000L;
			ts.tv_sec += (time_t)((deadline - now) / 1000) + ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			pthread_cond_timedwait(&n->cv, &n->mu, &ts);
		}
	}
	k->busy = true;
	pthread_mutex_unlock(&n->mu);
	if (k->c && k->c->err) {
		redisFree(k->c);
		k->c = NULL;
	}
	if (!k->c) {
		k->c = connect_node(l, n, err, errlen);
		k->track_gen = 0;
		if (!k->c) {
			*rc = -ECONNREFUSED;
			goto fail;
		}
	}
	if ((*rc = conn_track(l, n, k)) != 0) {
		seterr(err, errlen, "redis %s:%u: %s", n->host, n->port, k->c->errstr);
		goto fail;
	}
	return k;
fail:
	pthread_mutex_lock(&n->mu);
	if (k->c && k->c->err) {
		redisFree(k->c);
		k->c = NULL;
	}
	k->busy = false;
	pthread_cond_signal(&n->cv);
	pthread_mutex_unlock(&n->mu);
	return NULL;
}

static void conn_put(struct l2_node *n, struct l2_conn *k)
{
	pthread_mutex_lock(&n->mu);
	if (k->c && k->c->err) {
		redisFree(k->c);
		k->c = NULL;
	}
	k->busy = false;
	pthread_cond_signal(&n->cv);
	pthread_mutex_unlock(&n->mu);
}

/* ---- cluster map ----------------------------------------------------------- */

static int refresh_from(struct l2 *l, const char *host, uint16_t port)
{
	struct timeval tv = tv_ms(l->o.connect_timeout_ms);
	redisContext *c = redisConnectWithTimeout(host, port, tv);
	redisReply *r = NULL;
	uint16_t *map;
	int rc = -EIO;

	if (!c || c->err)
		goto out;
	redisSetTimeout(c, tv_ms(l->o.command_timeout_ms * 2));
	r = redisCommand(c, "CLUSTER SLOTS");
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0)
		goto out;
	map = malloc(sizeof(l->slots));
	if (!map)
		goto out;
	for (unsigned i = 0; i < L2_SLOTS; i++)
		map[i] = L2_NO_NODE;
	for (size_t i = 0; i < r->elements; i++) {
		redisReply *e = r->element[i], *m;
		unsigned idx;
		const char *h;

		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3)
			continue;
		m = e->element[2];
		if (e->element[0]->type != REDIS_REPLY_INTEGER ||
		    e->element[1]->type != REDIS_REPLY_INTEGER || m->type != REDIS_REPLY_ARRAY ||
		    m->elements < 2 || m->element[0]->type != REDIS_REPLY_STRING ||
		    m->element[1]->type != REDIS_REPLY_INTEGER)
			continue;
		h = m->element[0]->len ? m->element[0]->str : host;
		if (m->element[1]->integer <= 0 || m->element[1]->integer > 65535 ||
		    !l2_node_get(l, h, (uint16_t)m->element[1]->integer, &idx))
			continue;
		for (long long s = e->element[0]->integer;
		     s <= e->element[1]->integer && s < L2_SLOTS; s++)
			if (s >= 0)
				map[s] = (uint16_t)idx;
	}
	pthread_rwlock_wrlock(&l->topo);
	memcpy(l->slots, map, sizeof(l->slots));
	pthread_rwlock_unlock(&l->topo);
	free(map);
	atomic_fetch_add(&l->refreshes, 1);
	rc = 0;
out:
	if (r)
		freeReplyObject(r);
	if (c)
		redisFree(c);
	return rc;
}

/* Refresh the slot map from any node that answers (known nodes first,
 * then the seeds). Rate limited unless `force`. */
void l2_cluster_refresh(struct l2 *l, bool force)
{
	uint64_t now = hp_now_ms(), last = atomic_load(&l->last_refresh_ms);
	unsigned n;
	char seeds[HP_LIST_MAX], *save = NULL, *tok;

	if (!l->cluster)
		return;
	if (!force && now - last < L2_REFRESH_MIN_MS)
		return;
	if (!atomic_compare_exchange_strong(&l->last_refresh_ms, &last, now) && !force)
		return;
	n = atomic_load(&l->n_nodes);
	for (unsigned i = 0; i < n; i++) {
		struct l2_node *nd = l->nodes[i];

		if (atomic_load(&nd->down_until_ms) > now)
			continue;
		if (refresh_from(l, nd->host, nd->port) == 0)
			return;
	}
	snprintf(seeds, sizeof(seeds), "%s", l->seeds);
	for (tok = strtok_r(seeds, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char host[HP_ADDR_MAX];
		uint16_t port;

		while (*tok == ' ')
			tok++;
		if (config_parse_hostport(tok, host, sizeof(host), &port) == 0 &&
		    refresh_from(l, host, port) == 0)
			return;
	}
}

struct l2_node *l2_node_for_slot(struct l2 *l, int slot)
{
	unsigned idx;

	if (!l->cluster || slot < 0)
		return atomic_load(&l->n_nodes) ? l->nodes[0] : NULL;
	pthread_rwlock_rdlock(&l->topo);
	idx = l->slots[slot];
	pthread_rwlock_unlock(&l->topo);
	if (idx == L2_NO_NODE) {
		/* any master */
		pthread_rwlock_rdlock(&l->topo);
		for (unsigned s = 0; s < L2_SLOTS && idx == L2_NO_NODE; s += 512)
			idx = l->slots[s];
		pthread_rwlock_unlock(&l->topo);
	}
	return idx == L2_NO_NODE ? NULL : l->nodes[idx];
}

bool l2_parse_redirect(const char *s, const char *kind, unsigned *slot, char *host,
		       size_t hostlen, uint16_t *port)
{
	size_t kl = strlen(kind);
	const char *p, *sp;
	char *end;
	unsigned long v;

	if (strncmp(s, kind, kl) != 0 || s[kl] != ' ')
		return false;
	p = s + kl + 1;
	v = strtoul(p, &end, 10);
	if (end == p || *end != ' ' || v >= L2_SLOTS)
		return false;
	*slot = (unsigned)v;
	sp = end + 1;
	return config_parse_hostport(sp, host, hostlen, port) == 0 && *port != 0 && host[0];
}

/* ---- requests -------------------------------------------------------------- */

struct l2_req {
	int ncmd;
	int argc[L2_MAX_PIPE];
	const char *const *argv[L2_MAX_PIPE];
	const size_t *lens[L2_MAX_PIPE];
	redisReply *rep[L2_MAX_PIPE];
	bool tracked;                  /* read on a tracked connection */
	struct l2_node *node;          /* where it ran */
};

static void req_clear(struct l2_req *q)
{
	for (int i = 0; i < q->ncmd; i++)
		if (q->rep[i]) {
			freeReplyObject(q->rep[i]);
			q->rep[i] = NULL;
		}
}

/* Send the pipeline on node n; 0 with replies, or -errno (conn broken). */
static int req_send(struct l2 *l, struct l2_node *n, struct l2_req *q, bool asking,
		    char *err, size_t errlen)
{
	struct l2_conn *k;
	int rc = 0, i;
	void *rp;

	k = conn_get(l, n, &rc, err, errlen);
	if (!k)
		return rc;
	if (asking)
		redisAppendCommand(k->c, "ASKING");
	for (i = 0; i < q->ncmd; i++)
		redisAppendCommandArgv(k->c, q->argc[i], (const char **)q->argv[i], q->lens[i]);
	if (asking) {
		if (redisGetReply(k->c, &rp) != REDIS_OK)
			goto io;
		freeReplyObject(rp);
	}
	for (i = 0; i < q->ncmd; i++) {
		if (redisGetReply(k->c, &rp) != REDIS_OK)
			goto io;
		q->rep[i] = rp;
	}
	q->tracked = l->o.tracking && atomic_load(&n->ic_up) &&
		     k->track_gen == atomic_load(&n->ic_gen);
	q->node = n;
	conn_put(n, k);
	return 0;
io:
	rc = l2_ctx_errno(k->c);
	if (rc == -ETIMEDOUT)
		atomic_fetch_add(&l->timeouts, 1);
	seterr(err, errlen, "redis %s:%u: %s", n->host, n->port, k->c->errstr);
	req_clear(q);
	conn_put(n, k);
	return rc;
}

/* Run a request for `slot` (-1: any node) following redirects. */
static int req_run(struct l2 *l, int slot, struct l2_req *q, char *err, size_t errlen)
{
	struct l2_node *n = l2_node_for_slot(l, slot);
	bool asking = false;
	uint64_t t0 = hp_now_us();
	int rc = -EIO;

	atomic_fetch_add(&l->calls, 1);
	for (int attempt = 0; attempt < L2_MAX_REDIRECTS; attempt++) {
		char host[HP_ADDR_MAX];
		unsigned s;
		uint16_t port;
		redisReply *r0;

		if (!n) {
			l2_cluster_refresh(l, false);
			n = l2_node_for_slot(l, slot);
			if (!n) {
				if (err && errlen)
					snprintf(err, errlen, "redis cluster: no node serves slot %d", slot);
				rc = -EHOSTUNREACH;
				break;
			}
		}
		rc = req_send(l, n, q, asking, err, errlen);
		asking = false;
		if (rc) {
			if (!l->cluster || rc == -ETIMEDOUT)
				break;
			/* The node may have failed over: refresh and retry once
			 * on whatever the map says now. */
			l2_cluster_refresh(l, true);
			{
				struct l2_node *m = l2_node_for_slot(l, slot);

				if (m == n || !m)
					break;
				n = m;
			}
			continue;
		}
		r0 = q->rep[0];
		if (r0->type != REDIS_REPLY_ERROR)
			break;
		if (l2_parse_redirect(r0->str, "MOVED", &s, host, sizeof(host), &port)) {
			unsigned idx;

			atomic_fetch_add(&l->moved, 1);
			req_clear(q);
			n = l2_node_get(l, host, port, &idx);
			if (n) {
				pthread_rwlock_wrlock(&l->topo);
				l->slots[s] = (uint16_t)idx;
				pthread_rwlock_unlock(&l->topo);
			}
			l2_cluster_refresh(l, false);
			rc = -EIO;
			continue;
		}
		if (l2_parse_redirect(r0->str, "ASK", &s, host, sizeof(host), &port)) {
			atomic_fetch_add(&l->ask, 1);
			req_clear(q);
			n = l2_node_get(l, host, port, NULL);
			asking = true;
			rc = -EIO;
			continue;
		}
		if (strncmp(r0->str, "TRYAGAIN", 8) == 0 || strncmp(r0->str, "CLUSTERDOWN", 11) == 0) {
			req_clear(q);
			usleep(20000);
			l2_cluster_refresh(l, false);
			n = l2_node_for_slot(l, slot);
			rc = -EAGAIN;
			if (err && errlen)
				snprintf(err, errlen, "redis cluster: %s", r0->str);
			continue;
		}
		break;                 /* an ordinary error reply */
	}
	hist_record(&l->usec, hp_now_us() - t0);
	if (rc) {
		atomic_fetch_add(&l->errors, 1);
		if (rc == -EIO && err && errlen && !err[0])
			snprintf(err, errlen, "redis: too many redirects");
	}
	return rc;
}

/* ---- public data calls ----------------------------------------------------- */

int l2_get(struct l2 *l, const char *key, size_t klen, struct l2_value *out, char *err,
	   size_t errlen)
{
	static const char *const get[] = { "GET", NULL }, *const pttl[] = { "PTTL", NULL };
	const char *a1[2] = { get[0], key }, *a2[2] = { pttl[0], key };
	size_t l1[2] = { 3, klen }, l2v[2] = { 4, klen };
	struct l2_req q = { .ncmd = 2, .argc = { 2, 2 }, .argv = { a1, a2 }, .lens = { l1, l2v } };
	redisReply *r;
	int rc;

	memset(out, 0, sizeof(*out));
	if (err && errlen)
		err[0] = '\0';
	rc = req_run(l, l->cluster ? (int)l2_key_slot(key, klen) : -1, &q, err, errlen);
	if (rc)
		return rc;
	r = q.rep[0];
	if (r->type == REDIS_REPLY_NIL) {
		rc = 0;
	} else if (r->type == REDIS_REPLY_STRING) {
		out->val = malloc(r->len ? r->len : 1);
		if (!out->val) {
			rc = -ENOMEM;
		} else {
			memcpy(out->val, r->str, r->len);
			out->len = r->len;
			out->pttl_ms = q.rep[1]->type == REDIS_REPLY_INTEGER ? q.rep[1]->integer : -1;
			out->cacheable = q.tracked || !l->o.tracking;
			rc = 1;
		}
	} else {
		if (err && errlen)
			snprintf(err, errlen, "redis: %s", r->type == REDIS_REPLY_ERROR ? r->str :
				 "unexpected reply type to GET");
		rc = -EPROTO;
	}
	req_clear(&q);
	return rc;
}

void l2_value_free(struct l2_value *v)
{
	if (v)
		hp_free_null(&v->val);
}

int l2_command(struct l2 *l, int argc, const char *const *argv, const size_t *lens,
	       int key_index, struct redisReply **reply, char *err, size_t errlen)
{
	struct l2_req q = { .ncmd = 1, .argc = { argc }, .argv = { argv }, .lens = { lens } };
	int slot = -1, rc;

	*reply = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (argc <= 0)
		return -EINVAL;
	if (l->cluster && key_index > 0 && key_index < argc)
		slot = (int)l2_key_slot(argv[key_index], lens[key_index]);
	rc = req_run(l, slot, &q, err, errlen);
	if (rc == 0)
		*reply = q.rep[0];
	return rc;
}

void l2_reply_free(struct redisReply *r)
{
	if (r)
		freeReplyObject(r);
}

bool l2_reply_is_error(const struct redisReply *r)
{
	return r && r->type == REDIS_REPLY_ERROR;
}

int l2_reply_to_resp(const struct redisReply *r, struct buf *out)
{
	int rc;

	switch (r->type) {
	case REDIS_REPLY_STRING:
		return resp_add_bulk(out, r->str, r->len);
	case REDIS_REPLY_STATUS:
		return resp_add_simple(out, r->str);
	case REDIS_REPLY_ERROR:
		return resp_add_error(out, r->str);
	case REDIS_REPLY_INTEGER:
		return resp_add_int(out, r->integer);
	case REDIS_REPLY_NIL:
		return resp_add_null(out);
	case REDIS_REPLY_ARRAY:
		if ((rc = resp_add_array(out, (long long)r->elements)))
			return rc;
		for (size_t i = 0; i < r->elements; i++)
			if ((rc = l2_reply_to_resp(r->element[i], out)))
				return rc;
		return 0;
	default:
		return resp_add_error(out, "ERR unexpected reply from L2");
	}
}

int l2_publish(struct l2 *l, const char *msg, size_t len, char *err, size_t errlen)
{
	const char *argv[3] = { "PUBLISH", l->o.channel, msg };
	size_t lens[3] = { 7, strlen(l->o.channel), len };
	redisReply *r;
	int rc;

	if (!l->o.channel[0])
		return 0;
	rc = l2_command(l, 3, argv, lens, 0, &r, err, errlen);
	if (rc == 0 && l2_reply_is_error(r)) {
		if (err && errlen)
			snprintf(err, errlen, "redis: %s", r->str);
		rc = -EPROTO;
	}
	l2_reply_free(r);
	return rc;
}

/* Masters: nodes that own at least one slot (standalone: node 0). */
static unsigned masters(struct l2 *l, struct l2_node **out)
{
	unsigned n = 0, total = atomic_load(&l->n_nodes);
	bool seen[L2_MAX_NODES] = { 0 };

	if (!l->cluster) {
		if (total)
			out[n++] = l->nodes[0];
		return n;
	}
	pthread_rwlock_rdlock(&l->topo);
	for (unsigned s = 0; s < L2_SLOTS; s++)
		if (l->slots[s] != L2_NO_NODE && l->slots[s] < total && !seen[l->slots[s]]) {
			seen[l->slots[s]] = true;
			out[n++] = l->nodes[l->slots[s]];
		}
	pthread_rwlock_unlock(&l->topo);
	return n;
}

struct scan_ctx {
	bool unlink;
	uint64_t max, seen, deleted;
	bool (*fn)(const char *key, size_t klen, void *arg);
	void *arg;
	bool stop;
};

/* SCAN one node to the end (or max), then UNLINK what it found in
 * pipelined batches, or hand each key to fn. */
static int scan_node(struct l2 *l, struct l2_node *n, const char *pat, size_t plen,
		     struct scan_ctx *sc, char *err, size_t errlen)
{
	char cursor[32] = "0";
	struct l2_conn *k;
	int rc = 0;

	k = conn_get(l, n, &rc, err, errlen);
	if (!k)
		return rc;
	do {
		const char *argv[6] = { "SCAN", cursor, "MATCH", pat, "COUNT", "1000" };
		size_t lens[6] = { 4, strlen(cursor), 5, plen, 5, 4 };
		redisReply *r = redisCommandArgv(k->c, 6, argv, lens), *keys;
		size_t pending = 0;

		if (!r) {
			rc = l2_ctx_errno(k->c);
			seterr(err, errlen, "redis %s:%u: %s", n->host, n->port, k->c->errstr);
			break;
		}
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			seterr(err, errlen, "redis %s:%u: %s", n->host, n->port,
			       r->type == REDIS_REPLY_ERROR ? r->str : "bad SCAN reply");
			freeReplyObject(r);
			rc = -EPROTO;
			break;
		}
		snprintf(cursor, sizeof(cursor), "%.*s", (int)r->element[0]->len, r->element[0]->str);
		keys = r->element[1];
		for (size_t i = 0; i < keys->elements && !sc->stop; i++) {
			redisReply *key = keys->element[i];

			if (key->type != REDIS_REPLY_STRING)
				continue;
			if (sc->unlink) {
				const char *ua[2] = { "UNLINK", key->str };
				size_t ul[2] = { 6, key->len };

				redisAppendCommandArgv(k->c, 2, ua, ul);
				pending++;
			} else {
				sc->seen++;
				if (!sc->fn(key->str, key->len, sc->arg) || sc->seen >= sc->max)
					sc->stop = true;
			}
		}
		freeReplyObject(r);
		while (pending) {
			void *rp;

			if (redisGetReply(k->c, &rp) != REDIS_OK) {
				rc = l2_ctx_errno(k->c);
				seterr(err, errlen, "redis %s:%u: %s", n->host, n->port, k->c->errstr);
				break;
			}
			if (((redisReply *)rp)->type == REDIS_REPLY_INTEGER)
				sc->deleted += (uint64_t)((redisReply *)rp)->integer;
			freeReplyObject(rp);
			pending--;
		}
	} while (rc == 0 && !sc->stop && strcmp(cursor, "0") != 0);
	conn_put(n, k);
	return rc;
}

int l2_delete_pattern(struct l2 *l, const char *pattern, size_t plen, uint64_t *deleted,
		      char *err, size_t errlen)
{
	struct l2_node *ms[L2_MAX_NODES];
	struct scan_ctx sc = { .unlink = true };
	unsigned n;
	int rc = 0;

	if (err && errlen)
		err[0] = '\0';
	l2_cluster_refresh(l, false);
	n = masters(l, ms);
	if (n == 0) {
		if (err && errlen)
			snprintf(err, errlen, "redis: no node reachable");
		rc = -EHOSTUNREACH;
	}
	for (unsigned i = 0; i < n; i++) {
		int r = scan_node(l, ms[i], pattern, plen, &sc, err, errlen);

		if (r && !rc)
			rc = r;
	}
	*deleted = sc.deleted;
	return rc;
}

int l2_scan(struct l2 *l, const char *pattern, size_t plen, uint64_t max,
	    bool (*fn)(const char *key, size_t klen, void *arg), void *arg, char *err,
	    size_t errlen)
{
	struct l2_node *ms[L2_MAX_NODES];
	struct scan_ctx sc = { .max = max ? max : UINT64_MAX, .fn = fn, .arg = arg };
	unsigned n;
	int rc = 0;

	if (err && errlen)
		err[0] = '\0';
	n = masters(l, ms);
	for (unsigned i = 0; i < n && !sc.stop; i++) {
		int r = scan_node(l, ms[i], pattern, plen, &sc, err, errlen);

		if (r && !rc)
			rc = r;
	}
	return rc;
}

/* ---- invalidation connections (event thread) ------------------------------ */

static void ic_lost(struct l2 *l, struct l2_node *n, const char *why_in)
{
	char why[128];

	/* why_in may be the context's own errstr, freed below */
	snprintf(why, sizeof(why), "%s", why_in);
	if (n->ic) {
		redisFree(n->ic);
		n->ic = NULL;
	}
	if (atomic_load(&n->ic_up)) {
		atomic_store(&n->ic_up, false);
		atomic_fetch_add(&n->ic_gen, 1);
		n->ic_was_lost = true;
		atomic_fetch_add(&l->coherence_losses, 1);
		log_warn("l2: invalidation connection to %s:%u lost (%s): L1 may miss "
			 "invalidations until it is back", n->host, n->port, why);
		if (l->o.ev.coherence)
			l->o.ev.coherence(l->o.ev.arg, false);
	}
}

static void ic_connect(struct l2 *l, struct l2_node *n)
{
	redisContext *c;
	redisReply *r;
	long long id;
	const char *argv[3] = { "SUBSCRIBE", "__redis__:invalidate", l->o.channel };
	size_t lens[3] = { 9, 20, strlen(l->o.channel) };
	int nsub = l->o.channel[0] ? 2 : 1;

	n->ic_retry_ms = hp_now_ms() + L2_DOWN_BACKOFF_MS;
	c = redisConnectWithTimeout(n->host, n->port, tv_ms(l->o.connect_timeout_ms));
	if (!c || c->err) {
		if (c)
			redisFree(c);
		return;
	}
	redisSetTimeout(c, tv_ms(l->o.command_timeout_ms * 2));
	redisEnableKeepAlive(c);
	r = redisCommand(c, "CLIENT ID");
	if (!r || r->type != REDIS_REPLY_INTEGER)
		goto fail;
	id = r->integer;
	freeReplyObject(r);
	r = redisCommandArgv(c, 1 + nsub, argv, lens);
	if (!r || r->type != REDIS_REPLY_ARRAY)
		goto fail;
	freeReplyObject(r);
	for (int i = 1; i < nsub; i++) {
		void *rp;

		if (redisGetReply(c, &rp) != REDIS_OK)
			goto fail_noreply;
		freeReplyObject(rp);
	}
	n->ic = c;
	atomic_store(&n->ic_id, id);
	atomic_fetch_add(&n->ic_gen, 1);
	atomic_store(&n->ic_up, true);
	log_info("l2: invalidation connection to %s:%u up (client id %lld)", n->host, n->port, id);
	if (n->ic_was_lost) {
		n->ic_was_lost = false;
		if (l->o.ev.coherence)
			l->o.ev.coherence(l->o.ev.arg, true);
	}
	return;
fail:
	if (r)
		freeReplyObject(r);
fail_noreply:
	redisFree(c);
}

static void ic_message(struct l2 *l, redisReply *r)
{
	redisReply *ch, *payload;

	if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    strcmp(r->element[0]->str, "message") != 0)
		return;        /* subscribe confirmations, pongs */
	ch = r->element[1];
	payload = r->element[2];
	if (ch->type != REDIS_REPLY_STRING)
		return;
	if (strcmp(ch->str, "__redis__:invalidate") == 0) {
		if (payload->type == REDIS_REPLY_ARRAY) {
			for (size_t i = 0; i < payload->elements; i++)
				if (payload->element[i]->type == REDIS_REPLY_STRING) {
					atomic_fetch_add(&l->invalidations, 1);
					if (l->o.ev.invalidate)
						l->o.ev.invalidate(l->o.ev.arg, payload->element[i]->str,
								   payload->element[i]->len);
				}
		} else {
			/* nil: FLUSHALL/FLUSHDB on that node */
			atomic_fetch_add(&l->inval_flushes, 1);
			if (l->o.ev.invalidate)
				l->o.ev.invalidate(l->o.ev.arg, NULL, 0);
		}
	} else if (l->o.channel[0] && strcmp(ch->str, l->o.channel) == 0 &&
		   payload->type == REDIS_REPLY_STRING) {
		atomic_fetch_add(&l->messages, 1);
		if (l->o.ev.message)
			l->o.ev.message(l->o.ev.arg, payload->str, payload->len);
	}
}

static void *ev_main(void *arg)
{
	struct l2 *l = arg;
	uint64_t last_refresh = 0;

	while (!atomic_load(&l->stop)) {
		struct pollfd pfd[L2_MAX_NODES];
		struct l2_node *who[L2_MAX_NODES];
		unsigned n = atomic_load(&l->n_nodes), np = 0;
		uint64_t now = hp_now_ms();
		struct l2_node *ms[L2_MAX_NODES];
		unsigned nm;
		bool is_master[L2_MAX_NODES] = { 0 };

		if (l->cluster && now - last_refresh >= 1000) {
			last_refresh = now;
			l2_cluster_refresh(l, true);
			n = atomic_load(&l->n_nodes);
		}
		nm = masters(l, ms);
		for (unsigned i = 0; i < nm; i++)
			for (unsigned j = 0; j < n; j++)
				if (l->nodes[j] == ms[i])
					is_master[j] = true;
		for (unsigned i = 0; i < n; i++) {
			struct l2_node *nd = l->nodes[i];

			if (!l->o.tracking && !l->o.channel[0])
				break;
			/* Nodes that own no slot (a failed master, a replica
			 * seen in a redirect) need no invalidations. */
			if (!is_master[i] && l->cluster) {
				if (nd->ic) {
					redisFree(nd->ic);
					nd->ic = NULL;
					atomic_store(&nd->ic_up, false);
					atomic_fetch_add(&nd->ic_gen, 1);
				}
				continue;
			}
			if (!nd->ic && now >= nd->ic_retry_ms)
				ic_connect(l, nd);
			if (nd->ic) {
				pfd[np].fd = nd->ic->fd;
				pfd[np].events = POLLIN;
				pfd[np].revents = 0;
				who[np++] = nd;
			}
		}
		if (poll(pfd, np, 100) <= 0)
			continue;
		for (unsigned i = 0; i < np; i++) {
			struct l2_node *nd = who[i];
			void *rp;

			if (!pfd[i].revents)
				continue;
			if (redisBufferRead(nd->ic) != REDIS_OK) {
				ic_lost(l, nd, nd->ic->errstr);
				continue;
			}
			for (;;) {
				if (redisGetReplyFromReader(nd->ic, &rp) != REDIS_OK) {
					ic_lost(l, nd, "protocol error");
					break;
				}
				if (!rp)
					break;
				ic_message(l, rp);
				freeReplyObject(rp);
			}
		}
	}
	return NULL;
}

/* ---- lifecycle ------------------------------------------------------------- */

struct l2 *l2_new(const struct l2_options *o, char *err, size_t errlen)
{
	struct l2 *l = calloc(1, sizeof(*l));
	char host[HP_ADDR_MAX];
	uint16_t port;

	if (!l) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->o = *o;
	if (!l->o.pool_size)
		l->o.pool_size = 4;
	if (!l->o.connect_timeout_ms)
		l->o.connect_timeout_ms = 500;
	if (!l->o.command_timeout_ms)
		l->o.command_timeout_ms = 200;
	pthread_mutex_init(&l->nodes_mu, NULL);
	pthread_rwlock_init(&l->topo, NULL);
	for (unsigned i = 0; i < L2_SLOTS; i++)
		l->slots[i] = L2_NO_NODE;
	if (o->cluster[0]) {
		char seeds[HP_LIST_MAX], *save = NULL, *tok;

		l->cluster = true;
		snprintf(l->seeds, sizeof(l->seeds), "%s", o->cluster);
		snprintf(seeds, sizeof(seeds), "%s", o->cluster);
		for (tok = strtok_r(seeds, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			while (*tok == ' ')
				tok++;
			if (config_parse_hostport(tok, host, sizeof(host), &port) != 0) {
				snprintf(err, errlen, "redis.cluster: bad address '%s'", tok);
				goto fail;
			}
		}
		l2_cluster_refresh(l, true);
		if (atomic_load(&l->n_nodes) == 0)
			log_warn("l2: no cluster seed answered CLUSTER SLOTS yet (%s); retrying "
				 "in the background", o->cluster);
	} else {
		if (config_parse_hostport(o->address, host, sizeof(host), &port) != 0) {
			snprintf(err, errlen, "redis.address: bad address '%s'", o->address);
			goto fail;
		}
		if (!l2_node_get(l, host, port, NULL)) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	if (l2_disp_start(l, err, errlen) != 0)
		goto fail;
	if (l->o.tracking || l->o.channel[0]) {
		if (pthread_create(&l->ev_thread, NULL, ev_main, l) != 0) {
			snprintf(err, errlen, "cannot start the L2 event thread");
			goto fail;
		}
		l->ev_started = true;
	}
	return l;
fail:
	l2_free(l);
	return NULL;
}

void l2_free(struct l2 *l)
{
	unsigned n;

	if (!l)
		return;
	l2_disp_stop(l);           /* answers what it still holds */
	atomic_store(&l->stop, true);
	if (l->ev_started)
		pthread_join(l->ev_thread, NULL);
	n = atomic_load(&l->n_nodes);
	for (unsigned i = 0; i < n; i++)
		node_free(l, l->nodes[i]);
	pthread_rwlock_destroy(&l->topo);
	pthread_mutex_destroy(&l->nodes_mu);
	free(l);
}

bool l2_coherent(struct l2 *l)
{
	struct l2_node *ms[L2_MAX_NODES];
	unsigned n;

	if (!l->o.tracking)
		return true;
	n = masters(l, ms);
	if (n == 0)
		return false;
	for (unsigned i = 0; i < n; i++)
		if (!atomic_load(&ms[i]->ic_up))
			return false;
	return true;
}

void l2_get_stats(struct l2 *l, struct l2_stats *out)
{
	unsigned n = atomic_load(&l->n_nodes);
	unsigned counts[L2_MAX_NODES] = { 0 };

	memset(out, 0, sizeof(*out));
	out->cluster = l->cluster;
	out->coherent = l2_coherent(l);
	out->n_nodes = n;
	if (l->cluster) {
		pthread_rwlock_rdlock(&l->topo);
		for (unsigned s = 0; s < L2_SLOTS; s++)
			if (l->slots[s] < n)
				counts[l->slots[s]]++;
		pthread_rwlock_unlock(&l->topo);
	}
	for (unsigned i = 0; i < n; i++) {
		struct l2_node *nd = l->nodes[i];

		snprintf(out->nodes[i].addr, sizeof(out->nodes[i].addr), "%s:%u", nd->host, nd->port);
		out->nodes[i].up = atomic_load(&nd->up) &&
				   atomic_load(&nd->down_until_ms) <= hp_now_ms();
		out->nodes[i].tracking_up = atomic_load(&nd->ic_up);
		out->nodes[i].slots = l->cluster ? counts[i] : L2_SLOTS;
	}
	out->calls = atomic_load(&l->calls);
	out->errors = atomic_load(&l->errors);
	out->timeouts = atomic_load(&l->timeouts);
	out->moved = atomic_load(&l->moved);
	out->ask = atomic_load(&l->ask);
	out->reconnects = atomic_load(&l->reconnects);
	out->topology_refreshes = atomic_load(&l->refreshes);
	out->invalidations = atomic_load(&l->invalidations);
	out->invalidation_flushes = atomic_load(&l->inval_flushes);
	out->messages = atomic_load(&l->messages);
	out->coherence_losses = atomic_load(&l->coherence_losses);
	hist_merge(&out->usec, &l->usec);
	l2_disp_stats(l, out);
}
