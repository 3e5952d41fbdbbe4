/*
 * l2_async.c - the L2 dispatcher: GET + PTTL, SET and single-key writes
 * with their reply (l2_command_async) on Redis for callers that must not
 * wait for it (the RESP workers, the pooler). See
 * include/hotpath/l2.h for the contract.
 *
 * How: one thread with its own epoll set owns one non-blocking hiredis
 * context per node (hiredis' plain context in non-blocking mode, read
 * with redisBufferRead/redisGetReplyFromReader: the loop is ours, so the
 * async adapter layer would add nothing). Callers append a request to a
 * mutex-protected list and write the thread's eventfd only when the list
 * was empty, so a burst costs one wakeup. Each loop turn the thread takes
 * the whole list, routes every request to its node (slot map in cluster
 * mode), appends all of a node's requests to that node's output buffer
 * and writes it at once: many concurrent misses become one pipelined
 * write. Replies come back in order, so a node's requests in flight are
 * a FIFO and each reply goes to its head. A request is answered on this
 * thread through its callback.
 *
 * The bound: requests queued, routed or in flight are counted; past
 * queue_max a caller gets -EAGAIN at once (it answers its client with a
 * clear error) instead of growing a queue behind a slow Redis.
 *
 * Failures: the oldest request in flight on a connection older than
 * command_timeout, or a connect older than connect_timeout, fails every
 * request on that connection (-ETIMEDOUT) and drops it; the next request
 * reconnects. A refused connect marks the node down for the same short
 * back-off as the blocking calls, during which its requests fail at once.
 * MOVED updates the slot and resends, ASK resends once with ASKING in
 * front, TRYAGAIN/CLUSTERDOWN resend after 20 ms, up to the blocking
 * calls' redirect limit; in cluster mode a connection that failed (not
 * timed out) refreshes the slot map and resends what it held to the
 * slot's new owner. With tracking on, a connection registers CLIENT
 * TRACKING on REDIRECT <the node's invalidation connection> in front of
 * its next pipeline whenever that connection changed, and a value is
 * "cacheable" only if read while the registration is current, as in l2.c.
 *
 * What not: one connection per node (Redis executes a connection's
 * commands in order anyway; a second would only help a Redis with I/O
 * threads); the cluster map refresh after a failed connection is the
 * blocking one and holds this thread for its duration.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include "hotpath/log.h"
#include "l2_int.h"

#define DISP_RETRY_MS 20
#define DISP_MAX_EVENTS 64
#define DISP_TICK_MS 10

enum op_kind { OP_GET, OP_SET, OP_CMD, OP_TRACK };

struct l2_op {
	struct l2_op *next;
	enum op_kind kind;
	int slot;                      /* -1: standalone */
	unsigned redirects;
	bool asking;                   /* ASKING goes in front of it */
	unsigned skip;                 /* replies to drop before its own */
	unsigned nrep, got;
	redisReply *rep[2];
	uint64_t t0_us, deadline_ms, retry_at_ms;
	uint64_t ttl_ms;
	uint64_t gen;                  /* OP_TRACK: the generation it registers */
	l2_done_fn fn;
	l2_reply_fn rfn;               /* OP_CMD */
	void *arg;
	struct buf_argv *cmd;          /* OP_CMD: its own copy of the command */
	size_t klen, vlen;
	char *val;                     /* in data[], after the key */
	char data[];                   /* the key, then the value */
};

struct dconn {
	redisContext *c;
	bool connecting;
	uint32_t events;
	uint64_t connect_deadline_ms;
	uint64_t track_gen, track_sent;   /* registered / asked for */
	struct l2_op *pend_head, *pend_tail;   /* routed, not yet written */
	struct l2_op *fly_head, *fly_tail;     /* written, replies owed */
	struct l2_disp *d;
	unsigned idx;
};

struct l2_disp {
	struct l2 *l;
	pthread_t thread;
	bool started;
	int epfd, evfd;
	pthread_mutex_t mu;
	struct l2_op *q_head, *q_tail; /* submitted, not taken yet (mu) */
	bool wake_pending;             /* eventfd written since the last take (mu) */
	unsigned queue_max;
	_Atomic unsigned outstanding;  /* submitted and not answered */
	_Atomic uint64_t inflight, batches, requests, rejected, timeouts;
	_Atomic bool stop;
	struct l2_op *retry;           /* TRYAGAIN: resent at retry_at_ms (thread) */
	struct dconn conns[L2_MAX_NODES];
	struct hist batch_size;
};

/* ---- requests ------------------------------------------------------------------ */

static struct l2_op *op_new(enum op_kind kind, const char *key, size_t klen, const char *val,
			    size_t vlen)
{
	struct l2_op *op = malloc(sizeof(*op) + klen + vlen + 1);

	if (!op)
		return NULL;
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	op->klen = klen;
	op->vlen = vlen;
	memcpy(op->data, key, klen);
	op->val = op->data + klen;
	if (vlen)
		memcpy(op->val, val, vlen);
	return op;
}

static void op_free(struct l2_op *op)
{
	free(op->cmd);
	free(op);
}

static void op_clear_replies(struct l2_op *op)
{
	for (unsigned i = 0; i < op->got; i++)
		freeReplyObject(op->rep[i]);
	op->got = 0;
}

/* Answer and free a request. */
static void op_done(struct l2_disp *d, struct l2_op *op, int rc, const struct l2_value *v,
		    const char *err)
{
	struct l2 *l = d->l;

	if (op->kind != OP_TRACK) {
		hist_record(&l->usec, hp_now_us() - op->t0_us);
		if (rc < 0)
			atomic_fetch_add(&l->errors, 1);
		atomic_fetch_add(&d->requests, 1);
		if (op->rfn)
			op->rfn(op->arg, rc, rc == 0 && op->got ? op->rep[0] : NULL, err ? err : "");
		else if (op->fn)
			op->fn(op->arg, rc, v, err ? err : "");
		atomic_fetch_sub(&d->outstanding, 1);
	}
	op_clear_replies(op);
	op_free(op);
}

static void op_fail(struct l2_disp *d, struct l2_op *op, int rc, const char *fmt,
		    const char *host, unsigned port, const char *why)
{
	char err[HP_ADDR_MAX + 256];

	snprintf(err, sizeof(err), fmt, host, port, why);
	op_done(d, op, rc, NULL, err);
}

static void list_push(struct l2_op **head, struct l2_op **tail, struct l2_op *op)
{
	op->next = NULL;
	if (*tail)
		(*tail)->next = op;
	else
		*head = op;
	*tail = op;
}

static int submit(struct l2 *l, struct l2_op *op)
{
	struct l2_disp *d = l->disp;
	bool wake;

	if (!d || atomic_load(&d->stop)) {
		op_free(op);
		return -ESHUTDOWN;
	}
	if (atomic_fetch_add(&d->outstanding, 1) >= d->queue_max) {
		atomic_fetch_sub(&d->outstanding, 1);
		atomic_fetch_add(&d->rejected, 1);
		op_free(op);
		return -EAGAIN;
	}
	atomic_fetch_add(&l->calls, 1);
	op->slot = l->cluster ? (int)l2_key_slot(op->data, op->klen) : -1;
	op->t0_us = hp_now_us();
	pthread_mutex_lock(&d->mu);
	list_push(&d->q_head, &d->q_tail, op);
	wake = !d->wake_pending;
	d->wake_pending = true;
	pthread_mutex_unlock(&d->mu);
	if (wake) {
		uint64_t one = 1;

		if (write(d->evfd, &one, sizeof(one)) < 0) {
			/* saturated counter: the thread is awake anyway */
		}
	}
	return 0;
}

bool l2_async_full(struct l2 *l)
{
	return l->disp && atomic_load(&l->disp->outstanding) >= l->disp->queue_max;
}

int l2_get_async(struct l2 *l, const char *key, size_t klen, l2_done_fn fn, void *arg)
{
	struct l2_op *op = op_new(OP_GET, key, klen, NULL, 0);

	if (!op)
		return -ENOMEM;
	op->nrep = 2;
	op->fn = fn;
	op->arg = arg;
	return submit(l, op);
}

int l2_set_async(struct l2 *l, const char *key, size_t klen, const char *val, size_t vlen,
		 uint64_t ttl_ms, l2_done_fn fn, void *arg)
{
	struct l2_op *op = op_new(OP_SET, key, klen, val, vlen);

	if (!op)
		return -ENOMEM;
	op->nrep = 1;
	op->ttl_ms = ttl_ms;
	op->fn = fn;
	op->arg = arg;
	return submit(l, op);
}

int l2_command_async(struct l2 *l, int argc, const char *const *argv, const size_t *lens,
		     int key_index, l2_reply_fn fn, void *arg)
{
	struct l2_op *op;

	if (argc < 1 || key_index < 1 || key_index >= argc)
		return -EINVAL;
	op = op_new(OP_CMD, argv[key_index], lens[key_index], NULL, 0);
	if (!op)
		return -ENOMEM;
	op->cmd = buf_argv_dup(argc, argv, lens);
	if (!op->cmd) {
		free(op);
		return -ENOMEM;
	}
	op->nrep = 1;
	op->rfn = fn;
	op->arg = arg;
	return submit(l, op);
}

/* ---- connections ------------------------------------------------------------- */

static void conn_events(struct dconn *dc, uint32_t ev)
{
	struct epoll_event e = { .events = ev, .data.ptr = dc };

	if (!dc->c || dc->events == ev)
		return;
	if (epoll_ctl(dc->d->epfd, EPOLL_CTL_MOD, dc->c->fd, &e) == 0)
		dc->events = ev;
}

static void route(struct l2_disp *d, struct l2_op *op, struct l2_node *n);

/*
 * The connection failed (rc, why): drop it and fail what it held. In
 * cluster mode a transport failure (not a timeout) refreshes the map
 * and resends each request whose slot moved to another node.
 */
static void conn_fail(struct l2_disp *d, struct dconn *dc, int rc, const char *why)
{
	struct l2 *l = d->l;
	struct l2_node *n = l->nodes[dc->idx];
	struct l2_op *ops, *tail, *op;
	bool refreshed = false;
	char msg[160];

	snprintf(msg, sizeof(msg), "%s", why);
	if (dc->c) {
		epoll_ctl(d->epfd, EPOLL_CTL_DEL, dc->c->fd, NULL);
		redisFree(dc->c);
		dc->c = NULL;
	}
	dc->connecting = false;
	dc->events = 0;
	dc->track_gen = dc->track_sent = 0;
	/* in flight first, then not yet written: their original order */
	ops = dc->fly_head;
	tail = dc->fly_tail;
	if (tail)
		tail->next = dc->pend_head;
	else
		ops = dc->pend_head;
	dc->fly_head = dc->fly_tail = dc->pend_head = dc->pend_tail = NULL;
	if (rc == -ETIMEDOUT)
		atomic_fetch_add(&l->timeouts, 1);
	while ((op = ops)) {
		ops = op->next;
		op_clear_replies(op);
		op->skip = 0;
		if (op->kind == OP_TRACK) {
			op_done(d, op, rc, NULL, NULL);
			continue;
		}
		if (l->cluster && rc != -ETIMEDOUT && rc != -ESHUTDOWN && op->redirects < L2_MAX_REDIRECTS) {
			struct l2_node *m;

			if (!refreshed) {
				l2_cluster_refresh(l, true);
				refreshed = true;
			}
			m = l2_node_for_slot(l, op->slot);
			if (m && m != n) {
				op->redirects++;
				op->asking = false;
				route(d, op, m);
				continue;
			}
		}
		op_fail(d, op, rc, "redis %s:%u: %s", n->host, n->port, msg);
	}
}

/* Start a non-blocking connect to n. 0, or -errno with why filled. */
static int conn_open(struct l2_disp *d, struct l2_node *n, char *why, size_t whylen)
{
	struct dconn *dc = &d->conns[n->idx];
	struct epoll_event e = { .events = EPOLLOUT | EPOLLIN, .data.ptr = dc };
	redisContext *c = redisConnectNonBlock(n->host, n->port);

	if (!c || c->err) {
		int rc = c ? l2_ctx_errno(c) : -ENOMEM;

		snprintf(why, whylen, "%s", c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		atomic_store(&n->down_until_ms, hp_now_ms() + L2_DOWN_BACKOFF_MS);
		atomic_store(&n->up, false);
		return rc == -EIO ? -ECONNREFUSED : rc;
	}
	if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, c->fd, &e) != 0) {
		snprintf(why, whylen, "epoll: %s", strerror(errno));
		redisFree(c);
		return -EIO;
	}
	redisEnableKeepAlive(c);
	dc->c = c;
	dc->events = e.events;
	dc->connecting = true;
	dc->connect_deadline_ms = hp_now_ms() + d->l->o.connect_timeout_ms;
	dc->track_gen = dc->track_sent = 0;
	return 0;
}

/* The socket became writable while connecting: did the connect work? */
static bool conn_connected(struct l2_disp *d, struct dconn *dc)
{
	struct l2_node *n = d->l->nodes[dc->idx];
	int soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (getsockopt(dc->c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
		soerr = errno;
	if (soerr) {
		atomic_store(&n->down_until_ms, hp_now_ms() + L2_DOWN_BACKOFF_MS);
		atomic_store(&n->up, false);
		conn_fail(d, dc, soerr == ECONNREFUSED ? -ECONNREFUSED : -EIO, strerror(soerr));
		return false;
	}
	dc->connecting = false;
	atomic_store(&n->up, true);
	atomic_fetch_add(&d->l->reconnects, 1);
	return true;
}

/* Hand a request to node n (NULL: the one its slot maps to). */
static void route(struct l2_disp *d, struct l2_op *op, struct l2_node *n)
{
	struct l2 *l = d->l;
	struct dconn *dc;
	char why[128];
	int rc;

	if (!n)
		n = l2_node_for_slot(l, op->slot);
	if (!n && l->cluster) {
		l2_cluster_refresh(l, false);
		n = l2_node_for_slot(l, op->slot);
	}
	if (!n) {
		char err[96];

		snprintf(err, sizeof(err), "redis cluster: no node serves slot %d", op->slot);
		op_done(d, op, -EHOSTUNREACH, NULL, err);
		return;
	}
	dc = &d->conns[n->idx];
	if (!dc->c) {
		if (atomic_load(&n->down_until_ms) > hp_now_ms()) {
			op_fail(d, op, -ECONNREFUSED, "redis %s:%u: %s", n->host, n->port,
				"down (connection refused recently)");
			return;
		}
		rc = conn_open(d, n, why, sizeof(why));
		if (rc) {
			op_fail(d, op, rc, "redis %s:%u: %s", n->host, n->port, why);
			return;
		}
	}
	list_push(&dc->pend_head, &dc->pend_tail, op);
}

/* Append a node's routed requests as one pipeline and write it. */
static void conn_flush(struct l2_disp *d, struct dconn *dc)
{
	struct l2 *l = d->l;
	struct l2_node *n = l->nodes[dc->idx];
	uint64_t now = hp_now_ms(), nops = 0;
	int done = 0;

	if (!dc->c || dc->connecting)
		return;
	if (dc->pend_head && l->o.tracking && atomic_load(&n->ic_up)) {
		uint64_t gen = atomic_load(&n->ic_gen);

		if (gen != dc->track_sent) {
			struct l2_op *t = op_new(OP_TRACK, "", 0, NULL, 0);
			char id[32];

			if (t) {
				snprintf(id, sizeof(id), "%lld", atomic_load(&n->ic_id));
				redisAppendCommand(dc->c, "CLIENT TRACKING on REDIRECT %s", id);
				t->nrep = 1;
				t->gen = gen;
				t->deadline_ms = now + l->o.command_timeout_ms;
				dc->track_sent = gen;
				list_push(&dc->fly_head, &dc->fly_tail, t);
			}
		}
	}
	while (dc->pend_head) {
		struct l2_op *op = dc->pend_head;

		dc->pend_head = op->next;
		if (!dc->pend_head)
			dc->pend_tail = NULL;
		if (op->asking) {
			redisAppendCommand(dc->c, "ASKING");
			op->skip = 1;
		}
		if (op->kind == OP_GET) {
			const char *a1[2] = { "GET", op->data }, *a2[2] = { "PTTL", op->data };
			size_t l1[2] = { 3, op->klen }, l2v[2] = { 4, op->klen };

			redisAppendCommandArgv(dc->c, 2, a1, l1);
			redisAppendCommandArgv(dc->c, 2, a2, l2v);
		} else if (op->kind == OP_CMD) {
			redisAppendCommandArgv(dc->c, op->cmd->argc, op->cmd->argv, op->cmd->len);
		} else {
			char ttl[24];
			const char *a[5] = { "SET", op->data, op->val, "PX", ttl };
			size_t al[5] = { 3, op->klen, op->vlen, 2, 0 };

			al[4] = (size_t)snprintf(ttl, sizeof(ttl), "%llu",
						 (unsigned long long)op->ttl_ms);
			redisAppendCommandArgv(dc->c, op->ttl_ms ? 5 : 3, a, al);
		}
		op->deadline_ms = now + l->o.command_timeout_ms;
		list_push(&dc->fly_head, &dc->fly_tail, op);
		nops++;
	}
	if (nops) {
		atomic_fetch_add(&d->batches, 1);
		atomic_fetch_add(&d->inflight, nops);
		hist_record(&d->batch_size, nops);
	}
	if (redisBufferWrite(dc->c, &done) != REDIS_OK) {
		conn_fail(d, dc, l2_ctx_errno(dc->c), dc->c->errstr);
		return;
	}
	/* the rest goes when the socket takes it */
	conn_events(dc, done ? EPOLLIN : EPOLLIN | EPOLLOUT);
}

/* ---- replies ----------------------------------------------------------------- */

/* A redirect or retry answer to op (an error reply r): true when op was
 * sent again (or parked for a retry) and must not be answered now. */
static bool op_redirect(struct l2_disp *d, struct l2_op *op, const redisReply *r)
{
	struct l2 *l = d->l;
	char host[HP_ADDR_MAX];
	uint16_t port;
	unsigned s, idx;
	struct l2_node *n;

	if (!l->cluster || op->redirects >= L2_MAX_REDIRECTS)
		return false;
	if (l2_parse_redirect(r->str, "MOVED", &s, host, sizeof(host), &port)) {
		atomic_fetch_add(&l->moved, 1);
		n = l2_node_get(l, host, port, &idx);
		if (!n)
			return false;
		pthread_rwlock_wrlock(&l->topo);
		l->slots[s] = (uint16_t)idx;
		pthread_rwlock_unlock(&l->topo);
		op->asking = false;
	} else if (l2_parse_redirect(r->str, "ASK", &s, host, sizeof(host), &port)) {
		atomic_fetch_add(&l->ask, 1);
		n = l2_node_get(l, host, port, NULL);
		if (!n)
			return false;
		op->asking = true;
	} else if (strncmp(r->str, "TRYAGAIN", 8) == 0 || strncmp(r->str, "CLUSTERDOWN", 11) == 0) {
		op_clear_replies(op);
		op->redirects++;
		op->asking = false;
		op->retry_at_ms = hp_now_ms() + DISP_RETRY_MS;
		op->next = d->retry;
		d->retry = op;
		return true;
	} else {
		return false;
	}
	op_clear_replies(op);
	op->redirects++;
	route(d, op, n);
	return true;
}

/* Every reply of op is in: answer it (or resend it after a redirect). */
static void op_complete(struct l2_disp *d, struct dconn *dc, struct l2_op *op)
{
	struct l2 *l = d->l;
	struct l2_node *n = l->nodes[dc->idx];
	redisReply *r = op->rep[0];
	char err[256];

	if (op->kind == OP_TRACK) {
		if (r->type == REDIS_REPLY_ERROR) {
			log_warn("l2: CLIENT TRACKING on %s:%u refused: %s", n->host, n->port, r->str);
			dc->track_sent = dc->track_gen;     /* ask again next time */
		} else {
			dc->track_gen = op->gen;
		}
		op_done(d, op, 0, NULL, NULL);
		return;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		if (op_redirect(d, op, r))
			return;
		if (op->kind == OP_CMD) {
			op_done(d, op, 0, NULL, NULL);   /* an error reply is a reply */
			return;
		}
		snprintf(err, sizeof(err), "redis: %s", r->str);
		op_done(d, op, -EPROTO, NULL, err);
		return;
	}
	if (op->kind == OP_SET || op->kind == OP_CMD) {
		op_done(d, op, 0, NULL, NULL);
		return;
	}
	if (r->type == REDIS_REPLY_NIL) {
		op_done(d, op, 0, NULL, NULL);
	} else if (r->type == REDIS_REPLY_STRING) {
		struct l2_value v = {
			.val = r->str,
			.len = r->len,
			.pttl_ms = op->rep[1]->type == REDIS_REPLY_INTEGER ? op->rep[1]->integer : -1,
			.cacheable = !l->o.tracking ||
				     (atomic_load(&n->ic_up) &&
				      dc->track_gen == atomic_load(&n->ic_gen)),
		};

		op_done(d, op, 1, &v, NULL);
	} else {
		op_done(d, op, -EPROTO, NULL, "redis: unexpected reply type to GET");
	}
}

static void conn_read(struct l2_disp *d, struct dconn *dc)
{
	if (redisBufferRead(dc->c) != REDIS_OK) {
		conn_fail(d, dc, l2_ctx_errno(dc->c), dc->c->errstr);
		return;
	}
	while (dc->c) {
		struct l2_op *op = dc->fly_head;
		void *rp;

		if (redisGetReplyFromReader(dc->c, &rp) != REDIS_OK) {
			conn_fail(d, dc, -EPROTO, "protocol error");
			return;
		}
		if (!rp)
			return;
		if (!op) {
			freeReplyObject(rp);
			conn_fail(d, dc, -EPROTO, "a reply nobody asked for");
			return;
		}
		if (op->skip) {
			op->skip--;             /* ASKING's +OK */
			freeReplyObject(rp);
			continue;
		}
		op->rep[op->got++] = rp;
		if (op->got < op->nrep)
			continue;
		dc->fly_head = op->next;
		if (!dc->fly_head)
			dc->fly_tail = NULL;
		if (op->kind != OP_TRACK)
			atomic_fetch_sub(&d->inflight, 1);
		op_complete(d, dc, op);
	}
}

/* ---- the thread ----------------------------------------------------------------- */

static void take_queue(struct l2_disp *d)
{
	struct l2_op *op, *next;
	uint64_t v;

	if (read(d->evfd, &v, sizeof(v)) < 0) {
		/* nothing to drain */
	}
	pthread_mutex_lock(&d->mu);
	op = d->q_head;
	d->q_head = d->q_tail = NULL;
	d->wake_pending = false;
	pthread_mutex_unlock(&d->mu);
	for (; op; op = next) {
		next = op->next;
		route(d, op, NULL);
	}
}

static void check_timers(struct l2_disp *d, uint64_t now)
{
	struct l2_op **pp = &d->retry, *due = NULL;
	unsigned n = atomic_load(&d->l->n_nodes);

	while (*pp) {
		struct l2_op *op = *pp;

		if (op->retry_at_ms <= now) {
			*pp = op->next;
			op->next = due;
			due = op;
		} else {
			pp = &op->next;
		}
	}
	while (due) {
		struct l2_op *op = due;

		due = op->next;
		route(d, op, NULL);
	}
	for (unsigned i = 0; i < n; i++) {
		struct dconn *dc = &d->conns[i];

		if (!dc->c)
			continue;
		if (dc->connecting && now >= dc->connect_deadline_ms) {
			atomic_fetch_add(&d->timeouts, 1);
			conn_fail(d, dc, -ETIMEDOUT, "connect timed out");
		} else if (dc->fly_head && now >= dc->fly_head->deadline_ms) {
			atomic_fetch_add(&d->timeouts, 1);
			conn_fail(d, dc, -ETIMEDOUT, "command timed out");
		}
	}
}

static void *disp_main(void *arg)
{
	struct l2_disp *d = arg;
	struct epoll_event evs[DISP_MAX_EVENTS];

	pthread_setname_np(pthread_self(), "hp-l2-disp");
	while (!atomic_load(&d->stop)) {
		bool busy = atomic_load(&d->outstanding) > 0 || d->retry;
		int n = epoll_wait(d->epfd, evs, DISP_MAX_EVENTS, busy ? DISP_TICK_MS : 500);
		unsigned nn;

		if (n < 0 && errno != EINTR) {
			log_error("l2: dispatcher epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			struct dconn *dc = evs[i].data.ptr;
			uint32_t e = evs[i].events;

			if (evs[i].data.ptr == &d->evfd) {
				take_queue(d);
				continue;
			}
			if (!dc->c)
				continue;       /* dropped earlier in this batch */
			if (dc->connecting) {
				if (!(e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) || !conn_connected(d, dc))
					continue;
			}
			if (e & (EPOLLIN | EPOLLERR | EPOLLHUP))
				conn_read(d, dc);
			if (dc->c && (e & EPOLLOUT) && !dc->pend_head)
				conn_flush(d, dc);      /* the rest of a partial write */
		}
		check_timers(d, hp_now_ms());
		nn = atomic_load(&d->l->n_nodes);
		for (unsigned i = 0; i < nn; i++)
			if (d->conns[i].pend_head)
				conn_flush(d, &d->conns[i]);
	}
	return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------ */

int l2_disp_start(struct l2 *l, char *err, size_t errlen)
{
	struct l2_disp *d = calloc(1, sizeof(*d));
	struct epoll_event e = { .events = EPOLLIN };

	if (!d) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	d->l = l;
	d->queue_max = l->o.queue_max ? l->o.queue_max : 4096;
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	d->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&d->mu, NULL);
	for (unsigned i = 0; i < L2_MAX_NODES; i++) {
		d->conns[i].d = d;
		d->conns[i].idx = i;
	}
	e.data.ptr = &d->evfd;
	if (d->epfd < 0 || d->evfd < 0 || epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->evfd, &e) != 0) {
		snprintf(err, errlen, "L2 dispatcher: %s", strerror(errno));
		goto fail;
	}
	l->disp = d;
	if (pthread_create(&d->thread, NULL, disp_main, d) != 0) {
		snprintf(err, errlen, "cannot start the L2 dispatcher thread");
		l->disp = NULL;
		goto fail;
	}
	d->started = true;
	return 0;
fail:
	if (d->epfd >= 0)
		close(d->epfd);
	if (d->evfd >= 0)
		close(d->evfd);
	pthread_mutex_destroy(&d->mu);
	free(d);
	return -EIO;
}

void l2_disp_stop(struct l2 *l)
{
	struct l2_disp *d = l->disp;
	struct l2_op *op;
	uint64_t one = 1;

	if (!d)
		return;
	atomic_store(&d->stop, true);
	if (write(d->evfd, &one, sizeof(one)) < 0) {
		/* the thread sees stop within a tick anyway */
	}
	if (d->started)
		pthread_join(d->thread, NULL);
	/* whatever is left is answered, so no caller waits forever */
	for (unsigned i = 0; i < L2_MAX_NODES; i++)
		if (d->conns[i].c || d->conns[i].pend_head || d->conns[i].fly_head)
			conn_fail(d, &d->conns[i], -ESHUTDOWN, "the agent is shutting down");
	while ((op = d->retry)) {
		d->retry = op->next;
		op_done(d, op, -ESHUTDOWN, NULL, "the agent is shutting down");
	}
	pthread_mutex_lock(&d->mu);
	op = d->q_head;
	d->q_head = d->q_tail = NULL;
	pthread_mutex_unlock(&d->mu);
	while (op) {
		struct l2_op *next = op->next;

		op_done(d, op, -ESHUTDOWN, NULL, "the agent is shutting down");
		op = next;
	}
	close(d->epfd);
	close(d->evfd);
	pthread_mutex_destroy(&d->mu);
	l->disp = NULL;
	free(d);
}

void l2_disp_stats(struct l2 *l, struct l2_stats *out)
{
	struct l2_disp *d = l->disp;
	uint64_t outst, fly;

	if (!d)
		return;
	outst = atomic_load(&d->outstanding);
	fly = atomic_load(&d->inflight);
	out->async_inflight = fly;
	out->async_queued = outst > fly ? outst - fly : 0;
	out->async_batches = atomic_load(&d->batches);
	out->async_requests = atomic_load(&d->requests);
	out->async_rejected = atomic_load(&d->rejected);
	out->async_timeouts = atomic_load(&d->timeouts);
	out->async_queue_max = d->queue_max;
	hist_merge(&out->async_batch_size, &d->batch_size);
}
