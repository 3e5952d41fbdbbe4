/*
 * proxy.c - the HTTP caching reverse proxy.
 *
 * What: HTTP/1.1 on both sides in front of one upstream group, with an
 * RFC 9111 shared cache kept in the L1 tier, request coalescing, Cache-Status
 * (RFC 9211) on every response, balancing, outlier ejection, breakers and
 * active health checks (hotpath/balance.h).
 *
 * How: like the RESP front (agent/net/server.c), W worker threads each own
 * an epoll loop and an SO_REUSEPORT listener, and every connection - client
 * or upstream - lives its whole life on one worker, so the request path
 * takes no lock but the L1 shard's, the balancer's and (on a miss) the
 * coalescing table's. A client connection handles one exchange at a time:
 * pipelined requests wait, unparsed, in its bounded read buffer, so
 * responses go out in order and a client that pipelines faster than it
 * reads is paused rather than buffered. An exchange ("tx") that needs the
 * origin copies the request head (the read buffer may move), takes a
 * pooled upstream connection of the picked backend or connects, streams
 * the request body through (the proxy answers Expect: 100-continue itself),
 * and streams the response back, decoding chunked and re-framing it for
 * the client, while it also collects the body for the cache when the
 * response is storable and not larger than max_object. Writes to a client
 * stop reading its upstream above a high-water mark (back-pressure).
 * A stale hit with stale-while-revalidate is served at once and refreshed
 * by a tx without a client. Concurrent misses for one key wait for the
 * first one's fetch (a global table of flights; waiters are woken through
 * their worker's eventfd and look the cache up again). Every phase has a
 * deadline checked by a sweep five times a second: request head, idle
 * keep-alive, upstream connect, upstream response, client send.
 *
 * Cache keys are "http:GET:" + lowercased host + target, so the shared
 * invalidation path purges one URL (DEL, or the REST invalidate route with
 * the exact key) or bans a pattern (a glob such as "http:GET:host/img/" followed by a star).
 * Vary is handled with a vary record at the primary key and variants under
 * "KEY#v<gen>:<hash>"; unsafe methods delete the primary key of the target
 * and of same-host Location/Content-Location. With [redis] configured the
 * same keys go through the shared tier (L2), written through and read back
 * so that Redis client tracking keeps every agent's L1 copy coherent.
 *
 * Compression (hotpath/compress.h): a stored identity response is
 * compressed once per coding into a variant kept next to it
 * ("KEY#ce:<coding>:<hash of its header>"), so hits on it are plain hits;
 * a forwarded response goes through a bounded number of streaming
 * encoders. Admission control (hotpath/admit.h): requests that need a
 * backend take a slot of their worker's share of http.max_inflight (fixed,
 * or a gradient limit that follows the backends' latency); the others
 * wait in a per-worker queue, highest class first, and the lowest class is
 * shed first (queue full, CoDel, timeout) with 503 and Retry-After.
 *
 * What it deliberately does not do: TLS, HTTP/2, CONNECT and Upgrade
 * (refused), caching of ranges (Range requests are forwarded; a stored
 * full response may answer them with 200), asynchronous L2 access (a
 * Redis round trip blocks the worker on an L1 miss and on a store).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include "hotpath/buf.h"
#include "hotpath/http_cache.h"
#include "hotpath/http_parse.h"
#include "hotpath/log.h"
#include "hotpath/sock.h"
#include "hotpath/proxy.h"
#include "hotpath/tasks.h"
#include "hotpath/tier.h"

#define PX_MAX_WORKERS 64
#define PX_MAX_EVENTS 256
#define PX_READ_CHUNK (16 * 1024)
#define PX_HIGH_WATER (256 * 1024)
#define PX_POOL_MAX 64
#define PX_POOL_IDLE_MS 30000
#define PX_FLIGHT_BUCKETS 256
#define PX_MAX_TRIES 3
#define PX_UP_RBUF (64 * 1024)

enum { K_LISTEN = 1, K_EVFD, K_CLIENT, K_UP };

struct pworker;
struct ptx;

struct cconn {
	int kind;
	int fd;
	struct pworker *w;
	unsigned slot;
	uint64_t id;
	struct buf rbuf, wbuf;
	struct ptx *tx;
	bool closing;              /* close after wbuf drains */
	bool waiting;              /* parked on a flight */
	bool retry_after_wait;     /* woken from a flight: do not wait again */
	uint32_t events;
	uint64_t deadline_ms;      /* header/keep-alive/send deadline */
	uint64_t wait_until_ms;
	char peer[64];
	struct cconn *prev, *next;
	/* admission queue */
	bool queued;               /* in its worker's admission queue (waiting too) */
	bool granted;              /* a slot was reserved for its next request */
	uint8_t qclass;
	uint64_t queued_at_ms;
	struct cconn *qprev, *qnext;
};

struct upconn {
	int kind;
	int fd;
	struct pworker *w;
	unsigned be;
	struct buf rbuf, wbuf;
	struct ptx *tx;
	bool connected, reused, in_pool;
	uint32_t events;
	uint64_t idle_since_ms;
	struct upconn *pnext;
};

enum out_framing { OUT_LENGTH, OUT_CHUNKED, OUT_CLOSE };

struct ptx {
	struct pworker *w;
	struct cconn *c;           /* NULL: background revalidation */
	char *reqhead;             /* private copy of the request head */
	struct http_msg req;
	struct http_cc rqcc;
	char key[1024];            /* primary key */
	size_t klen;
	char vkey[1100];           /* variant key ("" if none) */
	size_t vklen;
	char *stored;              /* copy of the stored object (stale/revalidation) */
	size_t stored_len;
	struct hc_view sv;
	bool revalidating;         /* sent our own validators */
	bool cacheable_req;        /* GET whose response may be stored */
	bool is_flight_leader;
	bool client_head_sent;
	bool head_only;            /* client asked HEAD */
	enum proxy_cache_result result;
	char fwd_reason[24];
	/* request body to upstream */
	uint64_t req_remaining;
	struct http_chunked req_dec;
	bool req_chunked, req_body_done, sent_continue;
	/* upstream */
	struct upconn *u;
	int be;
	uint64_t exclude;
	unsigned tries;
	uint64_t t_start_us, req_time_s;
	uint64_t deadline_ms;
	struct buf upreq;          /* rewritten request head, kept for retries */
	/* response */
	char *resphead;
	struct http_msg *resp;
	struct http_cc rscc;
	struct http_chunked resp_dec;
	uint64_t resp_remaining;
	bool resp_done;
	enum out_framing out;
	bool storing;
	struct buf body;
	const char *nostore_why;
	bool sticky_set;
	bool reported;             /* balance_done called for this try */
	bool vary_ae;              /* forwarded response may be compressed later: Vary it */
	bool holds_slot;           /* counts in its worker's admission in-flight */
	bool from_l2;              /* the stored object came from Redis (Cache-Status) */
	struct compress_stream *zs; /* compressing the forwarded body, or NULL */
	enum hc_coding zc;
	uint64_t zin, zout;        /* bytes into and out of zs */
	struct buf zbuf;           /* zs output before it is framed for the client */
	struct ptx *prev, *next;   /* worker's tx list */
};

struct mail {
	unsigned slot;
	uint64_t id;
};

struct pworker {
	struct proxy *p;
	unsigned idx;
	pthread_t thread;
	bool started;
	int epfd, lfd, evfd;
	struct ev_tag { int kind; } ltag, etag;
	struct cconn *conns;
	unsigned nconns;
	struct cconn **slots;
	unsigned nslots, slot_cap;
	struct ptx *txs;
	struct upconn *pool[BALANCE_MAX_BACKENDS];
	unsigned npool[BALANCE_MAX_BACKENDS];
	pthread_mutex_t mail_mu;
	struct mail *mail;
	unsigned nmail, mail_cap;
	uint64_t next_id;
	uint64_t last_sweep_ms;
	/* Liveness probes for the event handlers: cleared when the object
	 * they point to is closed, pooled or freed during a callback. */
	struct upconn *cur_up;
	struct ptx *cur_tx;
	struct http_limits lim;
	/* admission control (http.max_inflight): FIFO per class, CoDel over all */
	struct cconn *aq_head[ADMIT_CLASSES], *aq_tail[ADMIT_CLASSES];
	unsigned aq_len, inflight, limit;
	bool aq_kick;              /* a slot was freed: run the queue */
	struct codel codel;
	struct gradient grad;      /* http.inflight_limit = gradient */
};

struct flight {
	char *key;
	struct waiter { unsigned worker, slot; uint64_t id; } *w;
	unsigned nw, cap;
	struct flight *next;
};

struct backend_addr {
	struct sockaddr_storage ss;
	socklen_t sl;
	char name[128];
};

struct proxy {
	struct proxy_options o;
	struct l1 *l1;
	struct tier *tier;         /* HTTP objects also in L2 (Redis); NULL: L1 only */
	struct balancer *bal;
	unsigned nbe;
	struct backend_addr be[BALANCE_MAX_BACKENDS];
	unsigned nworkers;
	struct pworker *w;
	uint16_t port;
	_Atomic bool stopping;
	_Atomic uint64_t deadline_ms;
	_Atomic uint64_t connected;
	pthread_mutex_t flights_mu;
	struct flight *flights[PX_FLIGHT_BUCKETS];
	pthread_t health_thread;
	bool health_started;
	int health_evfd;
	/* stats */
	_Atomic uint64_t st_accepted, st_rejected, st_requests, st_up_requests, st_up_errors;
	_Atomic uint64_t st_retries, st_results[PX_RESULTS], st_status[6], st_bad;
	_Atomic uint64_t st_stored, st_store_failed, st_invalidations, st_not_modified;
	_Atomic uint64_t st_bytes_in, st_bytes_out, st_pool_reused, st_pool_new, st_timeouts;
	_Atomic uint64_t st_compressed[HC_CODINGS], st_comp_built, st_comp_no_gain;
	_Atomic uint64_t st_comp_in, st_comp_out, st_comp_us, st_comp_saved;
	_Atomic uint64_t st_admitted[ADMIT_CLASSES], st_queued[ADMIT_CLASSES], st_shed[ADMIT_CLASSES];
	_Atomic uint64_t st_shed_full, st_shed_codel, st_shed_timeout;
	_Atomic int64_t st_inflight_now, st_queued_now, st_limit_now;
	_Atomic uint64_t st_l2_hits, st_l2_stored, st_l2_errors;
	_Atomic unsigned streams;  /* streaming encoders alive (http.compress_streams) */
	_Atomic uint64_t st_comp_streamed;
};

#define ST_INC(p, f) atomic_fetch_add_explicit(&(p)->f, 1, memory_order_relaxed)
#define ST_ADD(p, f, n) atomic_fetch_add_explicit(&(p)->f, (n), memory_order_relaxed)

static const char *const result_names[PX_RESULTS] = {
	"hit", "stale", "revalidated", "miss", "bypass", "uncacheable", "collapsed", "stale_error",
};

const char *proxy_result_name(enum proxy_cache_result r)
{
	return (unsigned)r < PX_RESULTS ? result_names[r] : "?";
}

void proxy_options_default(struct proxy_options *o)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->listen, sizeof(o->listen), "127.0.0.1:8479");
	o->max_request_line = 8192;
	o->max_header_size = 32768;
	o->max_headers = 100;
	o->max_body = 64ull << 20;
	o->max_object = 8ull << 20;
	o->max_clients = 10000;
	o->header_timeout_ms = 10000;
	o->keepalive_timeout_ms = 60000;
	o->connect_timeout_ms = 2000;
	o->upstream_timeout_ms = 30000;
	o->send_timeout_ms = 30000;
	o->keep_stale_s = 3600;
	o->health_interval_ms = 2000;
	o->cache = true;
	compress_options_default(&o->comp);
	o->queue_size = 1024;
	o->retry_after_s = 1;
	o->queue_timeout_ms = 1000;
	o->queue_target_ms = 20;
	o->queue_interval_ms = 100;
	snprintf(o->hash_key, sizeof(o->hash_key), "path");
}

/* ---- small helpers ---------------------------------------------------------- */

static int64_t wall_s(void)
{
	return (int64_t)(hp_wall_ms() / 1000);
}

static void status_count(struct proxy *p, unsigned status)
{
	unsigned k = status / 100;

	ST_INC(p, st_status[k >= 1 && k <= 5 ? k : 0]);
}

static const char *reason_of(unsigned s)
{
	switch (s) {
	case 100: return "Continue";
	case 200: return "OK";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 417: return "Expectation Failed";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	}
	return "Unknown";
}

static uint64_t flight_hash(const char *k, size_t n)
{
	return balance_hash(k, n) % PX_FLIGHT_BUCKETS;
}

/* ---- connections: events and close ------------------------------------------- */

static void set_events(struct pworker *w, int fd, void *ptr, uint32_t *cur, uint32_t want)
{
	struct epoll_event ev = { .events = want, .data.ptr = ptr };

	if (*cur == want)
		return;
	if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, fd, &ev) != 0)
		log_debug("http: epoll_ctl MOD fd %d: %s", fd, strerror(errno));
	*cur = want;
}

static void client_update(struct cconn *c)
{
	uint32_t want = EPOLLRDHUP;
	bool rpaused = c->closing || c->waiting ||
		       buf_used(&c->rbuf) >= c->rbuf.max ||
		       buf_used(&c->wbuf) >= PX_HIGH_WATER;

	if (!rpaused)
		want |= EPOLLIN;
	if (buf_used(&c->wbuf))
		want |= EPOLLOUT;
	set_events(c->w, c->fd, c, &c->events, want);
}

static void up_update(struct upconn *u)
{
	uint32_t want = EPOLLRDHUP;
	struct ptx *t = u->tx;

	if (!u->connected) {
		want |= EPOLLOUT;
	} else {
		bool paused = t && t->c && buf_used(&t->c->wbuf) >= PX_HIGH_WATER;

		if (!paused && buf_used(&u->rbuf) < u->rbuf.max)
			want |= EPOLLIN;
		if (buf_used(&u->wbuf))
			want |= EPOLLOUT;
	}
	set_events(u->w, u->fd, u, &u->events, want);
}

static void up_close(struct upconn *u)
{
	struct pworker *w = u->w;

	if (w->cur_up == u)
		w->cur_up = NULL;
	if (u->in_pool) {
		struct upconn **pp = &w->pool[u->be];

		while (*pp && *pp != u)
			pp = &(*pp)->pnext;
		if (*pp) {
			*pp = u->pnext;
			w->npool[u->be]--;
		}
	}
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, u->fd, NULL);
	close(u->fd);
	buf_free(&u->rbuf);
	buf_free(&u->wbuf);
	free(u);
}

static void tx_free(struct ptx *t);
static void flight_finish(struct ptx *t);
static void aq_unlink(struct cconn *c);
static void slot_release(struct pworker *w);

static void client_close(struct cconn *c)
{
	struct pworker *w = c->w;

	if (c->queued)
		aq_unlink(c);
	if (c->granted) {
		c->granted = false;
		slot_release(w);
	}

	if (c->tx) {
		struct ptx *t = c->tx;

		/* a storable fetch may finish for the cache without us */
		t->c = NULL;
		c->tx = NULL;
		if (!t->storing || !t->u) {
			if (t->u) {
				up_close(t->u);
				t->u = NULL;
				if (!t->reported)
					/* A response, even a 5xx, is the application speaking: only
			 * transport failures (connect, reset, timeout, garbage)
			 * count against a backend's health and breaker. */
			balance_done(w->p->bal, (unsigned)t->be, true,
						     hp_now_us() - t->t_start_us, hp_now_ms(),
						     hp_wall_ms());
			}
			flight_finish(t);
			tx_free(t);
		}
	}
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	buf_free(&c->rbuf);
	buf_free(&c->wbuf);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->slots[c->slot] = NULL;
	w->nconns--;
	atomic_fetch_sub(&w->p->connected, 1);
	free(c);
}

/* ---- responses the proxy makes itself ------------------------------------------ */

static void cache_status(struct buf *b, struct ptx *t, const char *extra)
{
	const char *tn = t && t->from_l2 ? "l2" : "l1";   /* the tier that answered */
	int rc = 0;

	switch (t ? t->result : PX_BYPASS) {
	case PX_HIT:
		rc = buf_printf(b, "Cache-Status: hotpath; hit; detail=%s%s\r\n", tn, extra);
		break;
	case PX_COLLAPSED:
		rc = buf_printf(b, "Cache-Status: hotpath; hit; detail=\"%s collapsed\"%s\r\n", tn,
				extra);
		break;
	case PX_STALE:
		rc = buf_printf(b, "Cache-Status: hotpath; hit; detail=\"%s stale-while-revalidate\"%s\r\n",
				tn, extra);
		break;
	case PX_STALE_ERROR:
		rc = buf_printf(b, "Cache-Status: hotpath; hit; detail=\"%s stale-if-error\"%s\r\n",
				tn, extra);
		break;
	case PX_REVALIDATED:
		rc = buf_printf(b, "Cache-Status: hotpath; fwd=stale; fwd-status=304; detail=%s%s\r\n",
				tn, extra);
		break;
	default:
		rc = buf_printf(b, "Cache-Status: hotpath; fwd=%s%s\r\n",
				t && t->fwd_reason[0] ? t->fwd_reason : "bypass", extra);
	}
	(void)rc;
}

static void send_error(struct cconn *c, unsigned status, const char *why, bool close_after)
{
	char body[256];
	int n = snprintf(body, sizeof(body), "%u %s: %s\n", status, reason_of(status), why);
	int rc;

	rc = buf_printf(&c->wbuf,
			"HTTP/1.1 %u %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
			"Cache-Status: hotpath; fwd=bypass; detail=\"error\"\r\n%s\r\n%s",
			status, reason_of(status), n, close_after ? "Connection: close\r\n" : "",
			body);
	(void)rc;
	status_count(c->w->p, status);
	if (close_after)
		c->closing = true;
}

/* ---- flights (request coalescing) ----------------------------------------------- */

/* Join or lead the flight for key. Returns true if c must wait. */
static bool flight_join(struct proxy *p, struct cconn *c, const char *key, size_t klen,
			bool *leader)
{
	uint64_t h = flight_hash(key, klen);
	struct flight *f;
	bool wait = false;

	*leader = false;
	pthread_mutex_lock(&p->flights_mu);
	for (f = p->flights[h]; f; f = f->next)
		if (strcmp(f->key, key) == 0)
			break;
	if (f) {
		if (f->nw == f->cap) {
			unsigned nc = f->cap ? f->cap * 2 : 4;
			struct waiter *nw = nc <= 4096 ? realloc(f->w, nc * sizeof(*nw)) : NULL;

			if (nw) {
				f->w = nw;
				f->cap = nc;
			}
		}
		if (f->nw < f->cap) {
			f->w[f->nw].worker = c->w->idx;
			f->w[f->nw].slot = c->slot;
			f->w[f->nw].id = c->id;
			f->nw++;
			wait = true;
		}
	} else {
		f = calloc(1, sizeof(*f));
		if (f)
			f->key = strdup(key);
		if (f && f->key) {
			f->next = p->flights[h];
			p->flights[h] = f;
			*leader = true;
		} else if (f) {
			free(f);
		}
	}
	pthread_mutex_unlock(&p->flights_mu);
	return wait;
}

static void mail_post(struct pworker *w, unsigned slot, uint64_t id)
{
	uint64_t one = 1;

	pthread_mutex_lock(&w->mail_mu);
	if (w->nmail == w->mail_cap) {
		unsigned nc = w->mail_cap ? w->mail_cap * 2 : 16;
		struct mail *m = realloc(w->mail, nc * sizeof(*m));

		if (m) {
			w->mail = m;
			w->mail_cap = nc;
		}
	}
	if (w->nmail < w->mail_cap) {
		w->mail[w->nmail].slot = slot;
		w->mail[w->nmail].id = id;
		w->nmail++;
	}
	pthread_mutex_unlock(&w->mail_mu);
	if (write(w->evfd, &one, sizeof(one)) < 0) {
		/* the counter saturates only if never read: nothing to do */
	}
}

static void flight_finish(struct ptx *t)
{
	struct proxy *p = t->w->p;
	uint64_t h;
	struct flight **pp, *f;

	if (!t->is_flight_leader)
		return;
	t->is_flight_leader = false;
	h = flight_hash(t->key, t->klen);
	pthread_mutex_lock(&p->flights_mu);
	for (pp = &p->flights[h]; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->key, t->key) == 0)
			break;
	f = *pp;
	if (f)
		*pp = f->next;
	pthread_mutex_unlock(&p->flights_mu);
	if (!f)
		return;
	for (unsigned i = 0; i < f->nw; i++)
		mail_post(&p->w[f->w[i].worker], f->w[i].slot, f->w[i].id);
	free(f->w);
	free(f->key);
	free(f);
}

/* ---- cache access ------------------------------------------------------------------ */

struct copy_arg {
	char *p;
	size_t len;
	size_t max;
};

static void copy_cb(const char *val, size_t len, uint64_t exp, void *arg)
{
	struct copy_arg *a = arg;

	(void)exp;
	if (len > a->max)
		return;
	a->p = malloc(len ? len : 1);
	if (a->p) {
		memcpy(a->p, val, len);
		a->len = len;
	}
}

/*
 * Get a copy (malloc'd, 8-byte aligned) of a cached value, or NULL: from
 * L1, else, when HTTP objects go to L2, through the shared tier (which
 * also copies an L2 hit into L1). *from_l2 (may be NULL) says which.
 */
static char *cache_get_from(struct proxy *p, const char *key, size_t klen, size_t *len,
			    bool *from_l2)
{
	struct copy_arg a = { .max = p->o.max_object + 65536 + 4096 };
	struct buf r;
	char *v = NULL;

	if (l1_get(p->l1, key, klen, copy_cb, &a) == 1 && a.p) {
		*len = a.len;
		return a.p;
	}
	if (!p->tier)
		return NULL;
	buf_init(&r, a.max + 32);
	if (tier_get(p->tier, key, klen, &r) == 0 && buf_used(&r) > 3 && buf_head(&r)[0] == '$') {
		/* a bulk reply: $<n>\r\n<n bytes>\r\n (null is $-1, errors start with -) */
		const char *d = buf_head(&r), *nl = memchr(d, '\n', buf_used(&r));
		char *end;
		unsigned long n = strtoul(d + 1, &end, 10);

		if (nl && d[1] != '-' && end == nl - 1 && n <= a.max &&
		    (size_t)(nl + 1 - d) + n + 2 <= buf_used(&r)) {
			v = malloc(n ? n : 1);
			if (v) {
				memcpy(v, nl + 1, n);
				*len = n;
				if (from_l2)
					*from_l2 = true;
				ST_INC(p, st_l2_hits);
			}
		}
	} else if (buf_used(&r) && buf_head(&r)[0] == '-') {
		ST_INC(p, st_l2_errors);    /* L2 down or breaker open: a miss here */
	}
	buf_free(&r);
	return v;
}

static char *cache_get(struct proxy *p, const char *key, size_t klen, size_t *len)
{
	return cache_get_from(p, key, klen, len, NULL);
}

/*
 * Store a value in L1, or, when HTTP objects go to L2, in Redis through
 * the tier (write-through: the tier drops the key from L1 and L0) and
 * then read it back through the tier: that read fills L1 the way every
 * L2 read does, and registers the key with Redis client tracking, so a
 * purge by another agent or a writer that bypasses hotpath reaches this
 * agent's copy too (a copy set straight into L1 would not be tracked).
 * Returns 1 if the value is in L1 afterwards (as l1_set).
 */
static int cache_put(struct proxy *p, const char *key, size_t klen, const char *val,
		     size_t vlen, uint64_t exp_ms)
{
	if (p->tier) {
		uint64_t now = hp_now_ms();
		char err[160];
		struct buf r;
		int rc;

		if (tier_set(p->tier, key, klen, val, vlen, exp_ms > now ? exp_ms - now : 1, err,
			     sizeof(err)) == 0) {
			ST_INC(p, st_l2_stored);
			buf_init(&r, vlen + 64);
			rc = tier_get(p->tier, key, klen, &r);
			buf_free(&r);
			return rc == 0 ? 1 : 0;
		}
		ST_INC(p, st_l2_errors);
		log_debug("http: storing %.*s in L2: %s; keeping it in L1 only", (int)klen, key,
			  err);
	}
	return l1_set(p->l1, key, klen, val, vlen, exp_ms, L1_PRIO_DEFAULT, 0, NULL, NULL);
}

/* Delete a key from every tier (Redis, L1, L0) or from L1 alone. */
static void cache_del(struct proxy *p, const char *key, size_t klen)
{
	if (p->tier) {
		char err[160];

		if (tier_del(p->tier, key, klen, err, sizeof(err)) == 0)
			return;
		ST_INC(p, st_l2_errors);
		log_debug("http: deleting %.*s from L2: %s", (int)klen, key, err);
	}
	l1_del(p->l1, key, klen);
}

/* Host of the request, lowercased into out. */
static void req_host(const struct http_msg *m, const struct proxy *p, char *out, size_t outlen,
		     const char **path, size_t *plen)
{
	const char *h = m->host;
	size_t hl = m->host_len, i;

	*path = m->target;
	*plen = m->target_len;
	if (m->target[0] != '/' && m->target[0] != '*') {
		/* absolute-form: authority wins over Host (RFC 9112 3.2.2) */
		const char *a = strstr(m->target, "://");

		if (a && a < m->target + m->target_len) {
			const char *e;

			a += 3;
			e = a;
			while (e < m->target + m->target_len && *e != '/' && *e != '?')
				e++;
			h = a;
			hl = (size_t)(e - a);
			*path = e < m->target + m->target_len ? e : "/";
			*plen = e < m->target + m->target_len ? (size_t)(m->target + m->target_len - e) : 1;
		}
	}
	if (!h) {
		h = p->o.upstream;
		hl = strlen(h);
	}
	if (hl >= outlen)
		hl = outlen - 1;
	for (i = 0; i < hl; i++)
		out[i] = (char)((h[i] >= 'A' && h[i] <= 'Z') ? h[i] + 32 : h[i]);
	out[hl] = '\0';
}

static size_t make_key(const struct ptx *t, const struct proxy *p, char *out, size_t outlen,
		       const char *host, const char *path, size_t plen)
{
	int n = snprintf(out, outlen, "http:GET:%s%.*s", host, (int)plen, path);

	(void)t;
	(void)p;
	return n < 0 || (size_t)n >= outlen ? 0 : (size_t)n;
}

/* Key of a same-host URI reference (Location, Content-Location), or 0. */
static size_t uri_key(const char *host, const char *v, size_t vl, char *out, size_t outlen)
{
	int n;

	if (vl && v[0] == '/') {
		n = snprintf(out, outlen, "http:GET:%s%.*s", host, (int)vl, v);
	} else {
		const char *a = memmem(v, vl, "://", 3), *e;
		size_t hl = strlen(host);

		if (!a)
			return 0;
		a += 3;
		e = a;
		while (e < v + vl && *e != '/')
			e++;
		if ((size_t)(e - a) != hl || strncasecmp(a, host, hl) != 0)
			return 0;   /* another host: not ours to invalidate */
		n = snprintf(out, outlen, "http:GET:%s%.*s", host, (int)(v + vl - e),
			     e < v + vl ? e : "/");
	}
	return n < 0 || (size_t)n >= outlen ? 0 : (size_t)n;
}

static void invalidate_after_unsafe(struct ptx *t)
{
	struct proxy *p = t->w->p;
	static const char *const fields[] = { "location", "content-location" };
	char host[256], k[1100];
	const char *path;
	size_t plen;

	cache_del(p, t->key, t->klen);
	ST_INC(p, st_invalidations);
	req_host(&t->req, p, host, sizeof(host), &path, &plen);
	for (unsigned i = 0; i < HP_ARRAY_SIZE(fields); i++) {
		size_t vl, kl;
		const char *v = http_header_get(t->resp, fields[i], &vl);

		if (v && (kl = uri_key(host, v, vl, k, sizeof(k))) > 0)
			cache_del(p, k, kl);
	}
}

/* Look up the object for the request: resolves vary records. Returns a malloc'd
 * copy and fills t->vkey when a variant matched. */
static char *lookup(struct ptx *t, size_t *len)
{
	struct proxy *p = t->w->p;
	size_t vl;
	char *v = cache_get_from(p, t->key, t->klen, &vl, &t->from_l2);
	struct hc_vary vr;
	struct buf sig;

	t->vkey[0] = '\0';
	t->vklen = 0;
	if (!v)
		return NULL;
	if (hc_vary_parse(v, vl, &vr) != 0) {
		*len = vl;
		return v;     /* a plain object (checked by hc_view later) */
	}
	free(v);
	buf_init(&sig, 16384);
	if (hc_vary_signature(&t->req, &vr, &sig) == 0) {
		uint64_t h = balance_hash(buf_head(&sig), buf_used(&sig));
		int n = snprintf(t->vkey, sizeof(t->vkey), "%s#v%" PRIx64 ":%016" PRIx64, t->key,
				 vr.gen, h);

		if (n > 0 && (size_t)n < sizeof(t->vkey)) {
			t->vklen = (size_t)n;
			v = cache_get_from(p, t->vkey, t->vklen, &vl, &t->from_l2);
			if (v) {
				struct hc_view hv;

				if (hc_view(v, vl, &hv) == 0 && hv.o->vary_len == buf_used(&sig) &&
				    memcmp(hv.vary_sig, buf_head(&sig), buf_used(&sig)) == 0) {
					buf_free(&sig);
					*len = vl;
					return v;
				}
				free(v);
			}
		}
	}
	buf_free(&sig);
	return NULL;
}

/* Serve a stored object to the client (200 or 304 to a conditional). */
static void serve_stored(struct ptx *t, const struct hc_view *v, bool allow_304)
{
	struct cconn *c = t->c;
	int64_t now = wall_s();
	int64_t age = hc_age(v->o, now);
	bool nm = allow_304 && hc_not_modified(&t->req, v, v->head + v->o->etag_off, v->o->etag_len);
	const char *le = memchr(v->head, '\n', v->o->head_len);
	size_t first = le ? (size_t)(le + 1 - v->head) : v->o->head_len;
	unsigned status = v->o->status;
	uint64_t rstart = 0, rlen = 0;
	int range = nm ? 0 : hc_range(&t->req, v, &rstart, &rlen);
	int rc = 0;
	char ttl[48] = "";

	if (!c)
		return;
	if (t->result == PX_HIT || t->result == PX_COLLAPSED)
		snprintf(ttl, sizeof(ttl), "; ttl=%" PRId64, v->o->lifetime - age);
	if (nm) {
		/* 304: the fields RFC 9110 15.4.5 says to send */
		static const char *const keep[] = { "cache-control", "content-location", "date",
						     "etag", "expires", "vary", "last-modified" };
		const char *p = v->head + first, *end = v->head + v->o->head_len;

		rc = buf_append_str(&c->wbuf, "HTTP/1.1 304 Not Modified\r\n");
		while (!rc && p < end) {
			const char *e = memchr(p, '\n', (size_t)(end - p));
			const char *colon = memchr(p, ':', e ? (size_t)(e - p) : 0);

			if (!e)
				break;
			for (unsigned i = 0; colon && i < HP_ARRAY_SIZE(keep); i++)
				if (http_ieq(p, (size_t)(colon - p), keep[i]))
					rc = buf_append(&c->wbuf, p, (size_t)(e + 1 - p));
			p = e + 1;
		}
		status = 304;
		ST_INC(t->w->p, st_not_modified);
	} else if (range == 1) {
		/* 206 from the stored whole: same fields, another status line */
		rc = buf_append_str(&c->wbuf, "HTTP/1.1 206 Partial Content\r\n");
		if (!rc)
			rc = buf_append(&c->wbuf, v->head + first, v->o->head_len - first);
		if (!rc)
			rc = buf_printf(&c->wbuf, "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/%u\r\n",
					rstart, rstart + rlen - 1, v->o->body_len);
		status = 206;
	} else if (range < 0) {
		rc = buf_printf(&c->wbuf, "HTTP/1.1 416 Range Not Satisfiable\r\n"
				"Content-Range: bytes */%u\r\n", v->o->body_len);
		status = 416;
		rlen = 0;
	} else {
		rc = buf_append(&c->wbuf, v->head, v->o->head_len);
	}
	if (!rc && (v->o->flags & HC_F_VARY_AE))
		rc = buf_append_str(&c->wbuf, "Vary: Accept-Encoding\r\n");
	if (!rc)
		rc = buf_printf(&c->wbuf, "Age: %" PRId64 "\r\n", age < 0 ? 0 : age);
	cache_status(&c->wbuf, t, ttl);
	if (!rc && !nm && range != 0)
		rc = buf_printf(&c->wbuf, "Content-Length: %" PRIu64 "\r\n", rlen);
	else if (!rc && !nm && status != 204 && status != 304)
		rc = buf_printf(&c->wbuf, "Content-Length: %u\r\n", v->o->body_len);
	if (!rc && !t->req.keep_alive) {
		rc = buf_append_str(&c->wbuf, "Connection: close\r\n");
		c->closing = true;
	}
	if (!rc)
		rc = buf_append(&c->wbuf, "\r\n", 2);
	if (!rc && !nm && !t->head_only && range == 1)
		rc = buf_append(&c->wbuf, v->body + rstart, rlen);
	else if (!rc && !nm && !t->head_only && range == 0 && status != 204 && status != 304)
		rc = buf_append(&c->wbuf, v->body, v->o->body_len);
	if (rc)
		c->closing = true;
	status_count(t->w->p, status);
	ST_INC(t->w->p, st_results[t->result]);
}

/* ---- compression ----------------------------------------------------------------------- */

/*
 * May this response be compressed (later, from the stored object)? Only a
 * 200 whose body the backend sent as identity, of a configured media type
 * and size (body_len < 0: not known yet), without no-transform (RFC 9110
 * 7.7) and without Content-Range. *vary_ae is set when the response does
 * not already name Accept-Encoding in its Vary.
 */
static bool resp_compressible(const struct proxy *p, const struct http_msg *r,
			      const struct http_cc *rscc, int64_t body_len, bool *vary_ae)
{
	const struct compress_options *co = &p->o.comp;
	struct hc_vary vr;
	const char *v;
	size_t vl;

	*vary_ae = false;
	if (!co->npref || r->status != 200 || rscc->no_transform ||
	    http_header_get(r, "content-range", &vl))
		return false;
	v = http_header_get(r, "content-encoding", &vl);
	if (v && !http_ieq(v, vl, "identity"))
		return false;
	v = http_header_get(r, "content-type", &vl);
	if (!v || !compress_type_ok(v, vl, co->types))
		return false;
	if (body_len >= 0 && ((uint64_t)body_len < co->min_size || (uint64_t)body_len > co->max_size))
		return false;
	if (hc_vary_from_response(r, &vr)) {
		if (vr.star)
			return false;
		/* fields are lowercase, comma separated */
		for (const char *f = vr.fields; (f = strstr(f, "accept-encoding")) != NULL; f += 15)
			if ((f == vr.fields || f[-1] == ',') && (f[15] == ',' || f[15] == '\0'))
				return true;
	}
	*vary_ae = true;
	return true;
}

/* Mark a just-built stored object as compressible when its response is. */
static void mark_compressible(struct ptx *t, struct buf *obj)
{
	struct hc_obj o;
	bool vary_ae;

	if (buf_used(obj) < sizeof(o) ||
	    !resp_compressible(t->w->p, t->resp, &t->rscc, (int64_t)buf_used(&t->body), &vary_ae))
		return;
	memcpy(&o, buf_head(obj), sizeof(o));
	o.flags |= HC_F_COMPRESSIBLE | (vary_ae ? HC_F_VARY_AE : 0);
	memcpy(buf_head(obj), &o, sizeof(o));
}

#define PX_NO_GAIN "HPN1"   /* stored at a variant key: compression gained nothing */

/*
 * The coding this request should get (RFC 9110 12.5.3), or identity: also
 * for range requests (a 206 is cut from the identity bytes) and for a
 * malformed Accept-Encoding.
 */
static enum hc_coding request_coding(const struct ptx *t)
{
	const struct compress_options *co = &t->w->p->o.comp;
	struct compress_accept acc;
	const char *why;
	size_t al;

	if (!co->npref || http_header_get(&t->req, "range", &al))
		return HC_CODING_IDENTITY;
	compress_accept_init(&acc);
	for (int i = http_header_find(&t->req, "accept-encoding", 0); i >= 0;
	     i = http_header_find(&t->req, "accept-encoding", i + 1))
		if (compress_accept_parse(&acc, t->req.headers[i].value, t->req.headers[i].vlen,
					  &why) != 0) {
			log_debug("http: %s: serving identity", why);
			return HC_CODING_IDENTITY;
		}
	return compress_choose(&acc, co->pref, co->npref);
}

/*
 * Compress a forwarded response on the way (a miss, or one that is not
 * stored) when it and the request allow, within http.compress_streams
 * encoders at once. Sets t->vary_ae for every compressible response, since
 * another client's request would get a compressed one.
 */
static void stream_setup(struct ptx *t)
{
	struct proxy *p = t->w->p;
	const struct http_msg *r = t->resp;
	enum hc_coding c;
	bool vary_ae;

	if (!resp_compressible(p, r, &t->rscc,
			       r->body == HTTP_BODY_LENGTH ? (int64_t)r->content_length : -1,
			       &vary_ae))
		return;
	t->vary_ae = vary_ae;
	if (!t->c || t->head_only || r->body == HTTP_BODY_NONE ||
	    (r->body == HTTP_BODY_LENGTH && r->content_length == 0))
		return;
	c = request_coding(t);
	if (c == HC_CODING_IDENTITY)
		return;
	if (atomic_fetch_add(&p->streams, 1) >= p->o.comp.max_streams) {
		atomic_fetch_sub(&p->streams, 1);
		return;        /* at the bound: this one goes out identity */
	}
	t->zs = compress_stream_new(c, p->o.comp.level[c]);
	if (!t->zs) {
		atomic_fetch_sub(&p->streams, 1);
		return;
	}
	t->zc = c;
	buf_init(&t->zbuf, 2 * PX_HIGH_WATER);
	ST_INC(p, st_compressed[c]);
	ST_INC(p, st_comp_streamed);
}

/* Pass body bytes (finish: the end) through the stream; the output goes to out. */
static int stream_feed(struct ptx *t, const char *d, size_t n, bool finish)
{
	int rc;

	buf_reset(&t->zbuf);
	rc = compress_stream_feed(t->zs, d, n, finish, &t->zbuf);
	t->zin += n;
	t->zout += buf_used(&t->zbuf);
	if (finish && t->zin > t->zout)
		ST_ADD(t->w->p, st_comp_saved, t->zin - t->zout);
	return rc;
}

/*
 * The compressed representation of the stored identity object v that
 * this request should get, if any: a malloc'd (8-byte aligned) object
 * viewed in *cv, its coding in *coding, or NULL to serve v itself.
 * Variants live at "<object key>#ce:<coding>:<hash of v's fixed header>",
 * so a refreshed or replaced identity object (new times) makes its old
 * variants unreachable, as the vary generation does, and a purge of the
 * URL purges them. A missing variant is built here, once per worker that
 * misses it, from the whole stored body (bounded by compress_max_size).
 */
static char *encoded_variant(struct ptx *t, const struct hc_view *v, struct hc_view *cv,
			     enum hc_coding *coding)
{
	struct proxy *p = t->w->p;
	const struct compress_options *co = &p->o.comp;
	enum hc_coding c;
	const char *base = t->vklen ? t->vkey : t->key;
	char ck[1200], etag[256];
	size_t vl, el = 0;
	struct buf body, obj;
	uint64_t h, t0;
	int64_t keep, now = wall_s();
	char *val;
	int n, rc;

	if (!(v->o->flags & HC_F_COMPRESSIBLE) || !co->npref || v->o->status != 200 ||
	    v->o->body_len > co->max_size)
		return NULL;
	c = request_coding(t);
	if (c == HC_CODING_IDENTITY)
		return NULL;
	h = balance_hash(v->o, sizeof(*v->o));
	n = snprintf(ck, sizeof(ck), "%s#ce:%s:%016" PRIx64, base, compress_coding_name(c), h);
	if (n <= 0 || (size_t)n >= sizeof(ck))
		return NULL;
	val = cache_get(p, ck, (size_t)n, &vl);
	if (val) {
		if (hc_view(val, vl, cv) == 0 && (cv->o->flags & HC_F_COMPRESSED)) {
			*coding = c;
			return val;
		}
		free(val);       /* the no-gain marker, or garbage */
		return NULL;
	}
	keep = hc_keep_seconds(v->o, now, (v->o->etag_len || v->o->last_modified != HC_NONE) ?
			       (int64_t)p->o.keep_stale_s : 0);
	if (keep <= 0)
		keep = 1;
	buf_init(&body, v->o->body_len);
	t0 = hp_now_us();
	rc = compress_encode(c, co->level[c], v->body, v->o->body_len, &body);
	ST_ADD(p, st_comp_us, hp_now_us() - t0);
	if (rc) {
		if (rc == -ENOSPC) {
			ST_INC(p, st_comp_no_gain);
			if (cache_put(p, ck, (size_t)n, PX_NO_GAIN, 4,
				      hp_now_ms() + (uint64_t)keep * 1000) != 1)
				ST_INC(p, st_store_failed);
		}
		buf_free(&body);
		return NULL;
	}
	ST_INC(p, st_comp_built);
	ST_ADD(p, st_comp_in, v->o->body_len);
	ST_ADD(p, st_comp_out, buf_used(&body));
	if (v->o->etag_len)
		el = compress_etag(v->head + v->o->etag_off, v->o->etag_len, c, etag, sizeof(etag));
	buf_init(&obj, sizeof(struct hc_obj) + v->o->head_len + 512 + buf_used(&body) +
		       v->o->vary_len);
	rc = hc_build_encoded(&obj, v, compress_coding_name(c), etag, el, buf_head(&body),
			      buf_used(&body));
	buf_free(&body);
	if (rc || obj.off != 0 || hc_view(obj.data, buf_used(&obj), cv) != 0) {
		buf_free(&obj);
		return NULL;
	}
	if (cache_put(p, ck, (size_t)n, buf_head(&obj), buf_used(&obj),
		      hp_now_ms() + (uint64_t)keep * 1000) != 1)
		ST_INC(p, st_store_failed);
	*coding = c;
	return obj.data;    /* ownership passes to the caller; obj is not freed */
}

/* Serve a stored object, compressed when it and the request allow. */
static void serve_object(struct ptx *t, const struct hc_view *v, bool allow_304)
{
	struct hc_view cv;
	enum hc_coding coding = HC_CODING_IDENTITY;
	char *enc = t->c ? encoded_variant(t, v, &cv, &coding) : NULL;

	if (!enc) {
		serve_stored(t, v, allow_304);
		return;
	}
	serve_stored(t, &cv, allow_304);
	ST_INC(t->w->p, st_compressed[coding]);
	if (!t->head_only && v->o->body_len > cv.o->body_len)
		ST_ADD(t->w->p, st_comp_saved, v->o->body_len - cv.o->body_len);
	free(enc);
}

/* ---- upstream ------------------------------------------------------------------------- */

static void tx_fail(struct ptx *t, unsigned status, const char *why);
static void tx_complete(struct ptx *t);
static void tx_on_up_readable(struct ptx *t);
static void client_process(struct cconn *c);

static int up_connect(struct pworker *w, unsigned be, struct upconn **out)
{
	struct proxy *p = w->p;
	struct upconn *u;
	int fd, one = 1;
	struct epoll_event ev;

	fd = socket(p->be[be].ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&p->be[be].ss, p->be[be].sl) != 0 &&
	    errno != EINPROGRESS) {
		int err = -errno;

		close(fd);
		return err;
	}
	u = calloc(1, sizeof(*u));
	if (!u) {
		close(fd);
		return -ENOMEM;
	}
	u->kind = K_UP;
	u->fd = fd;
	u->w = w;
	u->be = be;
	buf_init(&u->rbuf, PX_UP_RBUF + p->o.max_header_size);
	buf_init(&u->wbuf, PX_HIGH_WATER + p->o.max_header_size + 65536);
	u->events = EPOLLOUT | EPOLLRDHUP;
	ev.events = u->events;
	ev.data.ptr = u;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		int err = -errno;

		close(fd);
		buf_free(&u->rbuf);
		buf_free(&u->wbuf);
		free(u);
		return err;
	}
	ST_INC(p, st_pool_new);
	*out = u;
	return 0;
}

static struct upconn *pool_take(struct pworker *w, unsigned be)
{
	struct upconn *u = w->pool[be];

	if (!u)
		return NULL;
	w->pool[be] = u->pnext;
	w->npool[be]--;
	u->in_pool = false;
	u->pnext = NULL;
	u->reused = true;
	ST_INC(w->p, st_pool_reused);
	return u;
}

static void pool_put(struct upconn *u)
{
	struct pworker *w = u->w;

	if (w->cur_up == u)
		w->cur_up = NULL;
	u->tx = NULL;
	if (atomic_load(&w->p->stopping) || w->npool[u->be] >= PX_POOL_MAX ||
	    buf_used(&u->rbuf) || buf_used(&u->wbuf)) {
		up_close(u);
		return;
	}
	buf_reset(&u->rbuf);
	buf_compact(&u->rbuf);
	u->in_pool = true;
	u->idle_since_ms = hp_now_ms();
	u->pnext = w->pool[u->be];
	w->pool[u->be] = u;
	w->npool[u->be]++;
	up_update(u);
}

/* Hash for BAL_HASH from the configured key source. */
static uint64_t request_hash(struct ptx *t)
{
	const char *hk = t->w->p->o.hash_key;
	size_t vl;
	const char *v;

	if (strncmp(hk, "header:", 7) == 0) {
		v = http_header_get(&t->req, hk + 7, &vl);
		if (v)
			return balance_hash(v, vl);
	} else if (strncmp(hk, "cookie:", 7) == 0) {
		size_t nl = strlen(hk + 7);

		v = http_header_get(&t->req, "cookie", &vl);
		for (const char *q = v; q && q + nl < v + vl; q++) {
			if ((q == v || q[-1] == ' ' || q[-1] == ';') && strncmp(q, hk + 7, nl) == 0 &&
			    q[nl] == '=') {
				const char *s = q + nl + 1, *e = s;

				while (e < v + vl && *e != ';')
					e++;
				return balance_hash(s, (size_t)(e - s));
			}
		}
	}
	return balance_hash(t->req.target, t->req.target_len);
}

/* Backend named by the sticky cookie, or -1. */
static int sticky_backend(struct ptx *t)
{
	const char *name = t->w->p->o.sticky_cookie;
	size_t vl, nl = strlen(name);
	const char *v;

	if (!name[0])
		return -1;
	v = http_header_get(&t->req, "cookie", &vl);
	for (const char *q = v; q && q + nl < v + vl; q++) {
		if ((q == v || q[-1] == ' ' || q[-1] == ';') && strncmp(q, name, nl) == 0 &&
		    q[nl] == '=') {
			uint64_t id = strtoull(q + nl + 1, NULL, 16);

			return balance_find_id(t->w->p->bal, id);
		}
	}
	return -1;
}

/* Build the request head sent upstream into t->upreq. */
static int build_upreq(struct ptx *t)
{
	struct proxy *p = t->w->p;
	const struct http_msg *m = &t->req;
	char host[256];
	const char *path;
	size_t plen;
	int rc;

	buf_reset(&t->upreq);
	req_host(m, p, host, sizeof(host), &path, &plen);
	rc = buf_printf(&t->upreq, "%.*s %.*s HTTP/1.1\r\n", (int)m->method_len, m->method,
			(int)plen, path);
	for (unsigned i = 0; !rc && i < m->nheaders; i++) {
		const struct http_header *h = &m->headers[i];

		if (hc_hop_by_hop(h->name, h->nlen, m) || http_ieq(h->name, h->nlen, "expect") ||
		    http_ieq(h->name, h->nlen, "content-length"))
			continue;
		if (t->revalidating && (http_ieq(h->name, h->nlen, "if-none-match") ||
					http_ieq(h->name, h->nlen, "if-modified-since") ||
					http_ieq(h->name, h->nlen, "range") ||
					http_ieq(h->name, h->nlen, "if-range")))
			continue;
		if (http_ieq(h->name, h->nlen, "host"))
			continue;
		rc = buf_printf(&t->upreq, "%.*s: %.*s\r\n", (int)h->nlen, h->name, (int)h->vlen,
				h->value);
	}
	if (!rc)
		rc = buf_printf(&t->upreq, "Host: %s\r\n", host);
	if (!rc && t->revalidating) {
		if (t->sv.o->etag_len)
			rc = buf_printf(&t->upreq, "If-None-Match: %.*s\r\n", (int)t->sv.o->etag_len,
					t->sv.head + t->sv.o->etag_off);
		if (!rc && t->sv.o->last_modified != HC_NONE) {
			char d[40];

			http_date_format(t->sv.o->last_modified, d, sizeof(d));
			rc = buf_printf(&t->upreq, "If-Modified-Since: %s\r\n", d);
		}
	}
	if (!rc && t->c)
		rc = buf_printf(&t->upreq, "X-Forwarded-For: %s\r\n", t->c->peer);
	if (!rc)
		rc = buf_append_str(&t->upreq, "Via: 1.1 hotpath\r\n");
	if (!rc && m->body == HTTP_BODY_CHUNKED)
		rc = buf_append_str(&t->upreq, "Transfer-Encoding: chunked\r\n");
	else if (!rc && m->body == HTTP_BODY_LENGTH)
		rc = buf_printf(&t->upreq, "Content-Length: %" PRIu64 "\r\n", m->content_length);
	else if (!rc && http_header_find(m, "content-length", 0) >= 0)
		rc = buf_append_str(&t->upreq, "Content-Length: 0\r\n");
	if (!rc)
		rc = buf_append(&t->upreq, "\r\n", 2);
	return rc;
}

/* Move request body bytes from the client buffer to the upstream. */
static void pump_req_body(struct ptx *t)
{
	struct cconn *c = t->c;
	struct upconn *u = t->u;

	if (t->req_body_done || !c || !u)
		return;
	while (buf_used(&c->rbuf) && buf_used(&u->wbuf) < PX_HIGH_WATER) {
		size_t avail = buf_used(&c->rbuf), n;

		if (!t->req_chunked) {
			n = avail < t->req_remaining ? avail : (size_t)t->req_remaining;
			if (buf_append(&u->wbuf, buf_head(&c->rbuf), n) != 0)
				break;
			buf_consume(&c->rbuf, n);
			t->req_remaining -= n;
			if (t->req_remaining == 0)
				t->req_body_done = true;
		} else {
			const char *d;
			size_t used = 0, dl;
			int rc = http_chunked_feed(&t->req_dec, &t->w->lim, buf_head(&c->rbuf),
						   avail, &used, &d, &dl);

			if (rc == HTTP_CHUNK_ERROR) {
				tx_fail(t, 400, t->req_dec.why);
				return;
			}
			if (t->req_dec.total > t->w->p->o.max_body) {
				tx_fail(t, 413, "request body larger than http.max_body");
				return;
			}
			if (buf_append(&u->wbuf, buf_head(&c->rbuf), used) != 0)
				break;
			buf_consume(&c->rbuf, used);
			if (rc == HTTP_CHUNK_DONE)
				t->req_body_done = true;
			if (rc == HTTP_CHUNK_AGAIN)
				break;
		}
		if (t->req_body_done)
			break;
	}
	if (t->req_body_done)
		t->deadline_ms = hp_now_ms() + t->w->p->o.upstream_timeout_ms;
}

static int up_flush(struct upconn *u)
{
	while (buf_used(&u->wbuf)) {
		ssize_t n = send(u->fd, buf_head(&u->wbuf), buf_used(&u->wbuf), MSG_NOSIGNAL);

		if (n > 0) {
			buf_consume(&u->wbuf, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return -1;
	}
	buf_compact(&u->wbuf);
	return 0;
}

/* Pick a backend and send the request. Returns 0, or a status to fail with. */
static unsigned tx_send(struct ptx *t)
{
	struct pworker *w = t->w;
	struct proxy *p = w->p;
	uint64_t now = hp_now_ms();
	int be = -1, sb;

	if (t->tries >= PX_MAX_TRIES || t->tries >= p->nbe + 1)
		return 502;
	sb = t->tries == 0 ? sticky_backend(t) : -1;
	if (sb >= 0)
		be = balance_pick_this(p->bal, (unsigned)sb, now);
	if (be < 0)
		be = balance_pick(p->bal, request_hash(t), t->exclude, now);
	if (be < 0)
		return t->tries ? 502 : 503;
	t->sticky_set = p->o.sticky_cookie[0] && be != sb;
	t->be = be;
	t->reported = false;
	t->tries++;
	t->t_start_us = hp_now_us();
	t->req_time_s = (uint64_t)wall_s();
	t->u = pool_take(w, (unsigned)be);
	if (!t->u) {
		int rc = up_connect(w, (unsigned)be, &t->u);

		if (rc) {
			balance_done(p->bal, (unsigned)be, false, 0, now, hp_wall_ms());
			t->exclude |= 1ull << be;
			t->u = NULL;
			return tx_send(t);
		}
		t->deadline_ms = now + p->o.connect_timeout_ms;
	} else {
		t->deadline_ms = now + p->o.upstream_timeout_ms;
	}
	t->u->tx = t;
	ST_INC(p, st_up_requests);
	if (buf_append(&t->u->wbuf, buf_head(&t->upreq), buf_used(&t->upreq)) != 0)
		return 502;
	if (t->c && t->req.expect_continue && !t->sent_continue && !t->req_body_done &&
	    buf_used(&t->c->rbuf) == 0) {
		if (buf_append_str(&t->c->wbuf, "HTTP/1.1 100 Continue\r\n\r\n") == 0)
			t->sent_continue = true;
		client_update(t->c);
	}
	pump_req_body(t);
	if (t->u && t->u->connected)
		(void)up_flush(t->u);   /* a failure shows on the read side */
	if (t->u)
		up_update(t->u);
	return 0;
}

/* The upstream failed before a usable response: retry or fail. */
static void tx_up_error(struct ptx *t, const char *why, bool count_backend)
{
	struct proxy *p = t->w->p;
	bool fresh_conn = t->u && !t->u->reused;
	bool no_resp = !t->resp;
	bool body_sent = t->req.body != HTTP_BODY_NONE;
	unsigned st;

	if (t->u) {
		up_close(t->u);
		t->u = NULL;
	}
	/* a pooled connection the backend closed while idle is not its fault */
	if (!t->reported)
		balance_done(p->bal, (unsigned)t->be, !(count_backend || fresh_conn),
			     hp_now_us() - t->t_start_us, hp_now_ms(), hp_wall_ms());
	t->reported = true;
	ST_INC(p, st_up_errors);
	if (no_resp && !body_sent && !t->client_head_sent) {
		if (fresh_conn || count_backend)
			t->exclude |= 1ull << t->be;
		ST_INC(p, st_retries);
		st = tx_send(t);
		if (st == 0)
			return;
		tx_fail(t, st, why);
		return;
	}
	tx_fail(t, 502, why);
}

/* ---- the response --------------------------------------------------------------------- */

static void client_write_data(struct ptx *t, const char *d, size_t n)
{
	struct cconn *c = t->c;
	int rc = 0;

	if (!c || t->head_only || n == 0)
		return;
	if (t->zs) {
		if (stream_feed(t, d, n, false) != 0) {
			c->closing = true;
			return;
		}
		d = buf_head(&t->zbuf);
		n = buf_used(&t->zbuf);
		if (n == 0)
			return;
	}
	if (t->out == OUT_CHUNKED)
		rc = buf_printf(&c->wbuf, "%zx\r\n", n);
	if (!rc)
		rc = buf_append(&c->wbuf, d, n);
	if (!rc && t->out == OUT_CHUNKED)
		rc = buf_append(&c->wbuf, "\r\n", 2);
	if (rc)
		c->closing = true;
}

static void store_data(struct ptx *t, const char *d, size_t n)
{
	if (!t->storing)
		return;
	if (buf_append(&t->body, d, n) != 0) {
		t->storing = false;
		t->nostore_why = "too large";
		buf_free(&t->body);
	}
}

/* Store the finished response; for revalidations also serve. */
static void store_response(struct ptx *t)
{
	struct proxy *p = t->w->p;
	struct hc_vary vr;
	struct buf obj, sig;
	bool has_vary = hc_vary_from_response(t->resp, &vr);
	int64_t now = wall_s();
	size_t vl;
	int rc;

	if (has_vary && vr.star)
		return;
	buf_init(&obj, p->o.max_object + 65536);
	buf_init(&sig, 16384);
	if (has_vary) {
		/* keep the existing generation if the same fields are named */
		size_t ol;
		char *old = cache_get(p, t->key, t->klen, &ol);
		struct hc_vary ov;

		if (old && hc_vary_parse(old, ol, &ov) == 0 && strcmp(ov.fields, vr.fields) == 0)
			vr.gen = ov.gen;
		else
			vr.gen = balance_hash(&t, sizeof(t)) ^ hp_now_us();
		free(old);
		if (hc_vary_signature(&t->req, &vr, &sig) != 0)
			goto out;
	}
	rc = hc_build(&obj, t->resp, &t->rscc, buf_head(&t->body), buf_used(&t->body),
		      (int64_t)t->req_time_s, now, http_header_get(&t->req, "authorization", &vl) != NULL,
		      buf_head(&sig), buf_used(&sig));
	if (rc == 0)
		mark_compressible(t, &obj);
	if (rc == 0) {
		struct hc_view v;
		int64_t keep;
		uint64_t exp;

		if (hc_view(buf_head(&obj), buf_used(&obj), &v) != 0)
			goto out;
		keep = hc_keep_seconds(v.o, now, (v.o->etag_len || v.o->last_modified != HC_NONE) ?
				       (int64_t)p->o.keep_stale_s : 0);
		if (keep <= 0 && !(v.o->flags & HC_F_NO_CACHE) && !v.o->etag_len &&
		    v.o->last_modified == HC_NONE)
			goto out;   /* already stale and nothing to revalidate with */
		if (keep <= 0)
			keep = (int64_t)p->o.keep_stale_s;
		exp = hp_now_ms() + (uint64_t)keep * 1000;
		if (has_vary) {
			struct buf rec;
			uint64_t h = balance_hash(buf_head(&sig), buf_used(&sig));
			char vk[1100];
			int n = snprintf(vk, sizeof(vk), "%s#v%" PRIx64 ":%016" PRIx64, t->key,
					 vr.gen, h);

			buf_init(&rec, 1024);
			if (hc_vary_build(&rec, &vr) == 0 && n > 0 && (size_t)n < sizeof(vk) &&
			    cache_put(p, t->key, t->klen, buf_head(&rec), buf_used(&rec),
				      hp_now_ms() + (uint64_t)(keep + 3600) * 1000) == 1 &&
			    cache_put(p, vk, (size_t)n, buf_head(&obj), buf_used(&obj), exp) == 1)
				ST_INC(p, st_stored);
			else
				ST_INC(p, st_store_failed);
			buf_free(&rec);
		} else if (cache_put(p, t->key, t->klen, buf_head(&obj), buf_used(&obj), exp) == 1) {
			ST_INC(p, st_stored);
		} else {
			ST_INC(p, st_store_failed);
		}
	}
out:
	buf_free(&obj);
	buf_free(&sig);
}

/* Write the client response head for a forwarded response. */
static void client_head(struct ptx *t)
{
	struct cconn *c = t->c;
	const struct http_msg *r = t->resp;
	char extra[64] = "";
	int rc;

	if (!c)
		return;
	t->client_head_sent = true;
	if (r->body == HTTP_BODY_NONE)
		t->out = OUT_LENGTH;
	else if (r->body == HTTP_BODY_LENGTH && !t->zs)
		t->out = OUT_LENGTH;
	else if (t->req.version >= 11)
		t->out = OUT_CHUNKED;
	else
		t->out = OUT_CLOSE;
	rc = buf_printf(&c->wbuf, "HTTP/1.1 %u %.*s\r\n", r->status, (int)r->reason_len, r->reason);
	for (unsigned i = 0; !rc && i < r->nheaders; i++) {
		const struct http_header *h = &r->headers[i];

		if (hc_hop_by_hop(h->name, h->nlen, r) ||
		    (http_ieq(h->name, h->nlen, "content-length") && !t->head_only &&
		     r->status != 304))
			continue;
		if (t->zs && http_ieq(h->name, h->nlen, "etag")) {
			/* Streamed output (flushed per read) is not byte-identical to
			 * the variant built later from the stored body: the tag can
			 * only be weak (RFC 9110 8.8.1). Malformed: no tag at all. */
			char et[300];
			size_t el = compress_etag(h->value, h->vlen, t->zc, et, sizeof(et));

			if (el)
				rc = buf_printf(&c->wbuf, "ETag: %s%.*s\r\n", et[0] == 'W' ? "" : "W/",
						(int)el, et);
			continue;
		}
		rc = buf_printf(&c->wbuf, "%.*s: %.*s\r\n", (int)h->nlen, h->name, (int)h->vlen,
				h->value);
	}
	if (!rc && t->zs)
		rc = buf_printf(&c->wbuf, "Content-Encoding: %s\r\n", compress_coding_name(t->zc));
	if (!rc && http_header_find(r, "date", 0) < 0) {
		char d[40];

		http_date_format(wall_s(), d, sizeof(d));
		rc = buf_printf(&c->wbuf, "Date: %s\r\n", d);
	}
	if (!rc && t->vary_ae)
		rc = buf_append_str(&c->wbuf, "Vary: Accept-Encoding\r\n");
	if (!rc && t->sticky_set) {
		rc = buf_printf(&c->wbuf, "Set-Cookie: %s=%016" PRIx64 "; Path=/; HttpOnly\r\n",
				t->w->p->o.sticky_cookie, balance_backend_id(t->w->p->bal,
									     (unsigned)t->be));
	}
	if (t->storing)
		snprintf(extra, sizeof(extra), "; stored");
	if (!rc)
		cache_status(&c->wbuf, t, extra);
	if (!rc && !t->head_only && r->status != 304) {
		if (t->out == OUT_LENGTH && !(r->status == 204 || (r->status >= 100 && r->status < 200)))
			rc = buf_printf(&c->wbuf, "Content-Length: %" PRIu64 "\r\n",
					r->body == HTTP_BODY_LENGTH ? r->content_length : 0);
		else if (t->out == OUT_CHUNKED)
			rc = buf_append_str(&c->wbuf, "Transfer-Encoding: chunked\r\n");
	}
	if (!rc && (!t->req.keep_alive || t->out == OUT_CLOSE || atomic_load(&t->w->p->stopping))) {
		rc = buf_append_str(&c->wbuf, "Connection: close\r\n");
		c->closing = true;
	}
	if (!rc)
		rc = buf_append(&c->wbuf, "\r\n", 2);
	if (rc)
		c->closing = true;
	status_count(t->w->p, r->status);
	ST_INC(t->w->p, st_results[t->result]);
}

/* Decide what to do with a response head. Returns false if t was finished. */
static bool on_resp_head(struct ptx *t)
{
	struct proxy *p = t->w->p;
	struct http_msg *r = t->resp;
	bool safe = t->req.meth == HTTP_M_GET || t->req.meth == HTTP_M_HEAD ||
		    t->req.meth == HTTP_M_OPTIONS || t->req.meth == HTTP_M_TRACE;
	const char *why = NULL;

	http_cc_parse(r, &t->rscc);
	if (!safe && r->status < 400)
		invalidate_after_unsafe(t);
	/* revalidation answered 304: freshen and serve from the cache */
	if (t->revalidating && r->status == 304 && t->stored) {
		struct buf nb;
		struct hc_view nv;

		buf_init(&nb, p->o.max_object + 65536);
		if (hc_update_304(&nb, &t->sv, r, (int64_t)t->req_time_s, wall_s()) == 0 &&
		    hc_view(buf_head(&nb), buf_used(&nb), &nv) == 0) {
			const char *k = t->vklen ? t->vkey : t->key;
			size_t kl = t->vklen ? t->vklen : t->klen;
			int64_t keep = hc_keep_seconds(nv.o, wall_s(), (int64_t)p->o.keep_stale_s);
			int src;

			src = cache_put(p, k, kl, buf_head(&nb), buf_used(&nb),
					hp_now_ms() + (uint64_t)(keep > 0 ? keep : 1) * 1000);
			(void)src;
			t->result = PX_REVALIDATED;
			if (t->c) {
				t->head_only = t->head_only || t->req.meth == HTTP_M_HEAD;
				serve_object(t, &nv, true);
			}
			t->client_head_sent = true;
		}
		buf_free(&nb);
		if (!t->client_head_sent)
			return true;   /* fall through to forwarding the 304 */
		t->resp_done = r->body == HTTP_BODY_NONE;
		return true;
	}
	/* origin error: stale-if-error */
	if (r->status >= 500 && t->stored &&
	    hc_stale_if_error_ok(t->sv.o, &t->rqcc, wall_s())) {
		t->result = PX_STALE_ERROR;
		serve_object(t, &t->sv, true);
		t->client_head_sent = true;
		t->storing = false;
		return true;
	}
	if (t->cacheable_req && p->o.cache) {
		if (hc_storable(&t->req, &t->rqcc, r, &t->rscc, &why)) {
			if (r->body == HTTP_BODY_LENGTH && r->content_length > p->o.max_object) {
				t->nostore_why = "too large";
			} else {
				t->storing = true;
				buf_init(&t->body, p->o.max_object);
			}
		} else {
			t->nostore_why = why;
		}
	}
	if (t->stored && t->result != PX_REVALIDATED)
		snprintf(t->fwd_reason, sizeof(t->fwd_reason), "stale");
	stream_setup(t);
	if (t->c)
		client_head(t);
	else
		t->client_head_sent = true;
	return true;
}

/* Feed upstream bytes through the response parser/decoder. */
static void tx_on_up_readable(struct ptx *t)
{
	struct upconn *u = t->u;
	struct pworker *w = t->w;

	while (u && buf_used(&u->rbuf)) {
		if (!t->resp) {
			struct http_msg *m = t->resp ? t->resp : malloc(sizeof(*m));
			int rc;

			if (!m) {
				tx_fail(t, 502, "out of memory");
				return;
			}
			rc = http_parse_head(buf_head(&u->rbuf), buf_used(&u->rbuf), false,
					     t->req.meth, &w->lim, m);
			if (rc == HTTP_PARSE_NEED_MORE) {
				free(m);
				return;
			}
			if (rc == HTTP_PARSE_ERROR) {
				log_debug("http: bad response from %s: %s", w->p->be[t->be].name, m->why);
				free(m);
				tx_up_error(t, "invalid response from the backend", true);
				return;
			}
			if (m->status >= 100 && m->status < 200) {
				/* interim responses: 100 was ours to send; drop them */
				unsigned interim = m->status;

				buf_consume(&u->rbuf, m->head_len);
				free(m);
				if (interim == 101) {
					tx_up_error(t, "backend switched protocols", true);
					return;
				}
				continue;
			}
			t->resphead = malloc(m->head_len);
			if (!t->resphead) {
				free(m);
				tx_fail(t, 502, "out of memory");
				return;
			}
			memcpy(t->resphead, buf_head(&u->rbuf), m->head_len);
			buf_consume(&u->rbuf, m->head_len);
			if (http_parse_head(t->resphead, m->head_len, false, t->req.meth, &w->lim, m) !=
			    HTTP_PARSE_OK) {
				free(m);
				tx_fail(t, 502, "response re-parse failed");
				return;
			}
			t->resp = m;
			t->deadline_ms = hp_now_ms() + w->p->o.upstream_timeout_ms;
			t->resp_remaining = m->content_length;
			http_chunked_init(&t->resp_dec);
			if (m->body == HTTP_BODY_NONE)
				t->resp_done = true;
			/* A response, even a 5xx, is the application speaking: only
			 * transport failures (connect, reset, timeout, garbage)
			 * count against a backend's health and breaker. */
			balance_done(w->p->bal, (unsigned)t->be, true,
				     hp_now_us() - t->t_start_us, hp_now_ms(), hp_wall_ms());
			t->reported = true;
			if (!on_resp_head(t))
				return;
			if (t->resp_done)
				break;
			continue;
		}
		if (t->resp_done)
			break;
		if (t->c && buf_used(&t->c->wbuf) >= PX_HIGH_WATER)
			break;   /* back-pressure: resume on client writable */
		switch (t->resp->body) {
		case HTTP_BODY_LENGTH: {
			size_t n = buf_used(&u->rbuf);

			if (n > t->resp_remaining)
				n = (size_t)t->resp_remaining;
			if (t->result != PX_STALE_ERROR && t->result != PX_REVALIDATED)
				client_write_data(t, buf_head(&u->rbuf), n);
			store_data(t, buf_head(&u->rbuf), n);
			buf_consume(&u->rbuf, n);
			t->resp_remaining -= n;
			if (t->resp_remaining == 0)
				t->resp_done = true;
			break;
		}
		case HTTP_BODY_CHUNKED: {
			const char *d;
			size_t used, dl;
			int rc = http_chunked_feed(&t->resp_dec, &w->lim, buf_head(&u->rbuf),
						   buf_used(&u->rbuf), &used, &d, &dl);

			if (rc == HTTP_CHUNK_ERROR) {
				tx_fail(t, 502, t->resp_dec.why);
				return;
			}
			if (rc == HTTP_CHUNK_DATA) {
				if (t->result != PX_STALE_ERROR && t->result != PX_REVALIDATED)
					client_write_data(t, d, dl);
				store_data(t, d, dl);
			}
			buf_consume(&u->rbuf, used);
			if (rc == HTTP_CHUNK_DONE)
				t->resp_done = true;
			if (rc == HTTP_CHUNK_AGAIN && buf_used(&u->rbuf) == 0)
				break;
			break;
		}
		case HTTP_BODY_EOF: {
			size_t n = buf_used(&u->rbuf);

			if (t->result != PX_STALE_ERROR && t->result != PX_REVALIDATED)
				client_write_data(t, buf_head(&u->rbuf), n);
			store_data(t, buf_head(&u->rbuf), n);
			buf_consume(&u->rbuf, n);
			break;
		}
		default:
			t->resp_done = true;
		}
		if (t->resp_done)
			break;
	}
	if (t->resp_done)
		tx_complete(t);
}

static void tx_complete(struct ptx *t)
{
	struct cconn *c = t->c;
	struct upconn *u = t->u;

	if (c && t->zs && t->result != PX_STALE_ERROR && t->result != PX_REVALIDATED) {
		/* the end of the compressed stream, framed like the rest */
		if (stream_feed(t, NULL, 0, true) != 0) {
			c->closing = true;
		} else if (buf_used(&t->zbuf)) {
			int rc = 0;

			if (t->out == OUT_CHUNKED)
				rc = buf_printf(&c->wbuf, "%zx\r\n", buf_used(&t->zbuf));
			if (!rc)
				rc = buf_append(&c->wbuf, buf_head(&t->zbuf), buf_used(&t->zbuf));
			if (!rc && t->out == OUT_CHUNKED)
				rc = buf_append(&c->wbuf, "\r\n", 2);
			if (rc)
				c->closing = true;
		}
	}
	if (c && t->out == OUT_CHUNKED && t->result != PX_STALE_ERROR &&
	    t->result != PX_REVALIDATED && !t->head_only && t->resp &&
	    t->resp->body != HTTP_BODY_NONE) {
		if (buf_append(&c->wbuf, "0\r\n\r\n", 5) != 0)
			c->closing = true;
	}
	if (c && t->out == OUT_CLOSE)
		c->closing = true;
	if (t->storing && t->resp && t->result != PX_STALE_ERROR)
		store_response(t);
	if (t->holds_slot && t->resp && t->w->p->o.gradient_limit) {
		/* the backend answered: its latency steers the limit */
		struct pworker *w = t->w;
		unsigned nl = gradient_update(&w->grad, hp_now_us() - t->t_start_us, w->inflight);

		if (nl != w->limit) {
			atomic_fetch_add(&w->p->st_limit_now, (int64_t)nl - (int64_t)w->limit);
			w->limit = nl;
			w->aq_kick = true;
		}
	}
	t->u = NULL;
	if (u) {
		if (t->resp && t->resp->keep_alive && t->req_body_done && !buf_used(&u->rbuf))
			pool_put(u);
		else
			up_close(u);
	}
	flight_finish(t);
	if (c) {
		c->tx = NULL;
		c->deadline_ms = hp_now_ms() + t->w->p->o.keepalive_timeout_ms;
	}
	tx_free(t);
	if (c) {
		client_process(c);
	}
}

static void tx_fail(struct ptx *t, unsigned status, const char *why)
{
	struct cconn *c = t->c;
	struct proxy *p = t->w->p;

	if (t->u) {
		up_close(t->u);
		t->u = NULL;
		if (t->be >= 0 && !t->reported)
			balance_done(p->bal, (unsigned)t->be, false, hp_now_us() - t->t_start_us,
				     hp_now_ms(), hp_wall_ms());
		t->reported = true;
	}
	if (c) {
		if (t->client_head_sent) {
			c->closing = true;    /* mid-body: the only signal left is closing */
		} else if (t->stored && status >= 500 &&
			   hc_stale_if_error_ok(t->sv.o, &t->rqcc, wall_s())) {
			t->result = PX_STALE_ERROR;
			serve_object(t, &t->sv, true);
		} else {
			send_error(c, status, why, true);
		}
		c->tx = NULL;
	}
	flight_finish(t);
	tx_free(t);
	if (c)
		client_update(c);
}

static void tx_free(struct ptx *t)
{
	struct pworker *w = t->w;

	if (w->cur_tx == t)
		w->cur_tx = NULL;
	if (t->holds_slot)
		slot_release(w);
	if (t->prev)
		t->prev->next = t->next;
	else
		w->txs = t->next;
	if (t->next)
		t->next->prev = t->prev;
	if (t->zs) {
		compress_stream_free(t->zs);
		atomic_fetch_sub(&w->p->streams, 1);
	}
	buf_free(&t->zbuf);
	free(t->reqhead);
	free(t->stored);
	free(t->resphead);
	free(t->resp);
	buf_free(&t->upreq);
	buf_free(&t->body);
	free(t);
}

/* ---- requests --------------------------------------------------------------------------- */

static struct ptx *tx_new(struct pworker *w, struct cconn *c, const char *head, size_t hlen)
{
	struct ptx *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->w = w;
	t->c = c;
	t->be = -1;
	t->reqhead = malloc(hlen);
	if (!t->reqhead) {
		free(t);
		return NULL;
	}
	memcpy(t->reqhead, head, hlen);
	if (http_parse_head(t->reqhead, hlen, true, HTTP_M_OTHER, &w->lim, &t->req) != HTTP_PARSE_OK) {
		free(t->reqhead);
		free(t);
		return NULL;
	}
	buf_init(&t->upreq, hlen + 4096);
	buf_init(&t->body, 1);
	buf_init(&t->zbuf, 1);
	t->next = w->txs;
	if (w->txs)
		w->txs->prev = t;
	w->txs = t;
	return t;
}

/* Start a background revalidation of a stale object (stale-while-revalidate). */
static void revalidate_in_background(struct ptx *fg)
{
	struct pworker *w = fg->w;
	struct ptx *t;
	bool leader;

	if (flight_join(w->p, NULL, fg->key, fg->klen, &leader) || !leader)
		return;   /* someone is already fetching it */
	t = tx_new(w, NULL, fg->reqhead, fg->req.head_len);
	if (!t) {
		struct ptx tmp = { .w = w, .is_flight_leader = true };

		memcpy(tmp.key, fg->key, fg->klen + 1);
		tmp.klen = fg->klen;
		flight_finish(&tmp);
		return;
	}
	t->is_flight_leader = true;
	memcpy(t->key, fg->key, fg->klen + 1);
	t->klen = fg->klen;
	memcpy(t->vkey, fg->vkey, fg->vklen + 1);
	t->vklen = fg->vklen;
	t->stored = fg->stored;
	t->stored_len = fg->stored_len;
	fg->stored = NULL;
	if (hc_view(t->stored, t->stored_len, &t->sv) != 0) {
		flight_finish(t);
		tx_free(t);
		return;
	}
	t->rqcc = fg->rqcc;
	t->cacheable_req = true;
	t->revalidating = true;
	t->req_body_done = true;
	t->result = PX_MISS;
	snprintf(t->fwd_reason, sizeof(t->fwd_reason), "stale");
	if (build_upreq(t) != 0 || tx_send(t) != 0) {
		if (t->u) {
			up_close(t->u);
			t->u = NULL;
		}
		flight_finish(t);
		tx_free(t);
	}
}

/* ---- admission control ---------------------------------------------------------------------- */

static void slot_release(struct pworker *w)
{
	if (w->inflight) {
		w->inflight--;
		atomic_fetch_sub(&w->p->st_inflight_now, 1);
	}
	w->aq_kick = true;   /* run the queue from the event loop, not from here */
}

static void aq_unlink(struct cconn *c)
{
	struct pworker *w = c->w;
	unsigned k = c->qclass;

	if (!c->queued)
		return;
	if (c->qprev)
		c->qprev->qnext = c->qnext;
	else
		w->aq_head[k] = c->qnext;
	if (c->qnext)
		c->qnext->qprev = c->qprev;
	else
		w->aq_tail[k] = c->qprev;
	c->qprev = c->qnext = NULL;
	c->queued = false;
	c->waiting = false;
	w->aq_len--;
	atomic_fetch_sub(&w->p->st_queued_now, 1);
}

static void aq_push(struct pworker *w, struct cconn *c, enum admit_class k)
{
	c->qclass = (uint8_t)k;
	c->queued = true;
	c->waiting = true;        /* reading paused, like a coalesced waiter */
	c->queued_at_ms = hp_now_ms();
	c->wait_until_ms = c->queued_at_ms + w->p->o.queue_timeout_ms;
	c->qnext = NULL;
	c->qprev = w->aq_tail[k];
	if (w->aq_tail[k])
		w->aq_tail[k]->qnext = c;
	else
		w->aq_head[k] = c;
	w->aq_tail[k] = c;
	w->aq_len++;
	atomic_fetch_add(&w->p->st_queued_now, 1);
	ST_INC(w->p, st_queued[k]);
}

/*
 * Answer the request at the front of c->rbuf with 503 and Retry-After.
 * A request without a body is consumed and the connection kept; one with
 * a body (not read) closes it.
 */
static void send_shed(struct cconn *c, enum admit_class k, const char *why)
{
	struct proxy *p = c->w->p;
	struct http_msg *m = malloc(sizeof(*m));
	bool keep = false;
	char body[160];
	int n, rc;

	if (m && http_parse_head(buf_head(&c->rbuf), buf_used(&c->rbuf), true, HTTP_M_OTHER,
				 &c->w->lim, m) == HTTP_PARSE_OK && m->body == HTTP_BODY_NONE) {
		buf_consume(&c->rbuf, m->head_len);
		keep = m->keep_alive;
	}
	free(m);
	n = snprintf(body, sizeof(body), "503 Service Unavailable: overloaded, %s request shed (%s)\n",
		     admit_class_name(k), why);
	rc = buf_printf(&c->wbuf,
			"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
			"Content-Length: %d\r\nRetry-After: %u\r\n"
			"Cache-Status: hotpath; fwd=bypass; detail=\"shed\"\r\n%s\r\n%s",
			n, p->o.retry_after_s, keep ? "" : "Connection: close\r\n", body);
	if (rc || !keep)
		c->closing = true;
	status_count(p, 503);
	ST_INC(p, st_shed[k]);
}

/* Shed a queued request of another connection (it is flushed by its own events). */
static void shed_queued(struct cconn *c, const char *why)
{
	enum admit_class k = c->qclass;

	aq_unlink(c);
	c->retry_after_wait = false;
	send_shed(c, k, why);
	client_update(c);
}

enum { ADMIT_GO = 0, ADMIT_QUEUED = 1, ADMIT_SHED = -1 };

/*
 * May this request go to a backend now? ADMIT_GO with a slot held by t,
 * ADMIT_QUEUED (c parked in the queue, its head left in rbuf for the
 * retry), or ADMIT_SHED (the caller answers 503).
 */
static int admit(struct cconn *c, struct ptx *t, enum admit_class *kout)
{
	struct pworker *w = c->w;
	struct proxy *p = w->p;
	enum admit_class k;
	unsigned l;

	*kout = ADMIT_NORMAL;
	if (!p->o.max_inflight || t->holds_slot)
		return ADMIT_GO;
	k = admit_classify(&p->o.prio, &t->req);
	*kout = k;
	if (c->granted) {             /* dequeued: its slot is already counted */
		c->granted = false;
		t->holds_slot = true;
		ST_INC(p, st_admitted[k]);
		return ADMIT_GO;
	}
	if (w->inflight < w->limit && w->aq_len == 0) {
		w->inflight++;
		atomic_fetch_add(&p->st_inflight_now, 1);
		t->holds_slot = true;
		ST_INC(p, st_admitted[k]);
		return ADMIT_GO;
	}
	if (w->aq_len >= p->o.queue_size) {
		/* full: make room by shedding the newest request of a lower class */
		for (l = 0; l < (unsigned)k && !w->aq_tail[l]; l++)
			;
		if (l >= (unsigned)k) {
			ST_INC(p, st_shed_full);
			return ADMIT_SHED;
		}
		ST_INC(p, st_shed_full);
		shed_queued(w->aq_tail[l], "queue full");
	}
	aq_push(w, c, k);
	return ADMIT_QUEUED;
}

/* Give freed slots to queued requests, highest class first; CoDel sheds the lowest. */
static void admission_run(struct pworker *w)
{
	uint64_t now = hp_now_ms();

	w->aq_kick = false;
	while (w->aq_len && w->inflight < w->limit) {
		struct cconn *head = NULL, *oldest = NULL, *c;
		int k;

		for (k = ADMIT_CLASSES - 1; k >= 0; k--) {
			c = w->aq_head[k];
			if (!c)
				continue;
			if (!head)
				head = c;
			if (!oldest || c->queued_at_ms < oldest->queued_at_ms)
				oldest = c;
		}
		if (codel_should_drop(&w->codel, (now - oldest->queued_at_ms) * 1000, now * 1000,
				      w->p->o.queue_target_ms * 1000,
				      w->p->o.queue_interval_ms * 1000)) {
			for (k = 0; k < ADMIT_CLASSES && !w->aq_head[k]; k++)
				;
			ST_INC(w->p, st_shed_codel);
			shed_queued(w->aq_head[k], "queue delay over http.queue_target");
			continue;
		}
		aq_unlink(head);
		head->granted = true;
		head->retry_after_wait = false;
		w->inflight++;
		atomic_fetch_add(&w->p->st_inflight_now, 1);
		client_process(head);
		if (w->slots[head->slot] == head && head->granted) {
			/* answered without a backend (now in the cache, or refused) */
			head->granted = false;
			w->inflight--;
			atomic_fetch_sub(&w->p->st_inflight_now, 1);
		}
	}
	if (!w->aq_len) {
		/* an empty queue is not a standing one */
		w->codel.first_above_us = 0;
		w->codel.dropping = false;
	}
}

/*
 * Admission for t (a no-op once it holds a slot): true to go on; false when
 * it was queued (t freed, *ret false: wait) or shed (503 sent, *ret says
 * whether the connection goes on).
 */
static bool admitted(struct cconn *c, struct ptx *t, bool *ret)
{
	enum admit_class k;
	int ad = admit(c, t, &k);

	if (ad == ADMIT_GO)
		return true;
	c->tx = NULL;
	tx_free(t);
	if (ad == ADMIT_QUEUED) {
		*ret = false;
	} else {
		send_shed(c, k, "queue full");
		*ret = !c->closing;
	}
	return false;
}

/*
 * Handle one parsed request whose head is at the front of c->rbuf. Returns
 * true if the next pipelined request may be handled now.
 */
static bool handle_request(struct cconn *c, const struct http_msg *m)
{
	struct pworker *w = c->w;
	struct proxy *p = w->p;
	struct ptx *t;
	char host[256];
	const char *path;
	size_t plen;
	unsigned st;
	bool ret;

	ST_INC(p, st_requests);
	if (m->upgrade) {
		send_error(c, 501, "protocol upgrades are not supported", true);
		return false;
	}
	if (m->body == HTTP_BODY_LENGTH && m->content_length > p->o.max_body) {
		send_error(c, 413, "request body larger than http.max_body", true);
		return false;
	}
	t = tx_new(w, c, buf_head(&c->rbuf), m->head_len);
	if (!t) {
		send_error(c, 503, "out of memory", true);
		return false;
	}
	c->tx = t;
	http_cc_parse(&t->req, &t->rqcc);
	t->head_only = t->req.meth == HTTP_M_HEAD;
	t->req_body_done = t->req.body == HTTP_BODY_NONE;
	t->req_chunked = t->req.body == HTTP_BODY_CHUNKED;
	t->req_remaining = t->req.content_length;
	http_chunked_init(&t->req_dec);
	req_host(&t->req, p, host, sizeof(host), &path, &plen);
	t->klen = make_key(t, p, t->key, sizeof(t->key), host, path, plen);
	t->result = PX_BYPASS;
	snprintf(t->fwd_reason, sizeof(t->fwd_reason), "bypass");

	if (p->o.cache && t->klen && (t->req.meth == HTTP_M_GET || t->req.meth == HTTP_M_HEAD)) {
		size_t vl = 0;
		char *v = lookup(t, &vl);
		struct hc_view hv;
		bool have = v && hc_view(v, vl, &hv) == 0;
		size_t al;
		bool auth = http_header_get(&t->req, "authorization", &al) != NULL;

		t->cacheable_req = t->req.meth == HTTP_M_GET;
		t->result = PX_MISS;
		snprintf(t->fwd_reason, sizeof(t->fwd_reason), have ? "stale" : "uri-miss");
		if (have && auth && !(hv.o->flags & HC_F_AUTH_OK))
			have = false;
		if (have) {
			enum hc_use use = hc_decide(hv.o, &t->rqcc, wall_s());

			t->stored = v;
			t->stored_len = vl;
			t->sv = hv;
			v = NULL;
			if (use == HC_USE_FRESH || use == HC_USE_STALE_SWR) {
				t->result = c->retry_after_wait ? PX_COLLAPSED :
					    use == HC_USE_FRESH ? PX_HIT : PX_STALE;
				serve_object(t, &t->sv, true);
				if (use == HC_USE_STALE_SWR)
					revalidate_in_background(t);
				c->tx = NULL;
				c->retry_after_wait = false;
				tx_free(t);
				buf_consume(&c->rbuf, m->head_len);
				return true;
			}
			if (t->rqcc.no_cache || t->rqcc.max_age != HC_NONE)
				snprintf(t->fwd_reason, sizeof(t->fwd_reason), "request");
			t->revalidating = t->req.meth == HTTP_M_GET &&
					  (hv.o->etag_len || hv.o->last_modified != HC_NONE);
		} else {
			free(v);
			if (t->rqcc.only_if_cached) {
				c->tx = NULL;
				tx_free(t);
				buf_consume(&c->rbuf, m->head_len);
				send_error(c, 504, "only-if-cached and not in the cache", false);
				return true;
			}
			/* admission before coalescing: a queued leader would wait on itself */
			if (!admitted(c, t, &ret))
				return ret;
			/* coalesce plain misses */
			if (t->cacheable_req && !auth && !c->retry_after_wait &&
			    !http_header_get(&t->req, "range", &al) && !t->rqcc.no_cache) {
				bool leader;

				if (flight_join(p, c, t->key, t->klen, &leader)) {
					c->waiting = true;
					c->wait_until_ms = hp_now_ms() + p->o.upstream_timeout_ms;
					c->tx = NULL;
					/* the head stays in rbuf for the retry */
					tx_free(t);
					return false;
				}
				t->is_flight_leader = leader;
			}
		}
		if (t->rqcc.only_if_cached) {
			c->tx = NULL;
			tx_free(t);
			buf_consume(&c->rbuf, m->head_len);
			send_error(c, 504, "only-if-cached and the stored response is stale", false);
			return true;
		}
	}
	if (!admitted(c, t, &ret))
		return ret;
	c->retry_after_wait = false;
	buf_consume(&c->rbuf, m->head_len);
	if (build_upreq(t) != 0) {
		c->tx = NULL;
		flight_finish(t);
		tx_free(t);
		send_error(c, 431, "request head too large to forward", true);
		return false;
	}
	t->deadline_ms = hp_now_ms() + p->o.upstream_timeout_ms;
	st = tx_send(t);
	if (st) {
		tx_fail(t, st, st == 503 ? "no backend available" : "cannot reach a backend");
		return false;
	}
	return false;
}

static void client_process(struct cconn *c)
{
	struct pworker *w = c->w;
	struct http_msg *m = malloc(sizeof(*m));

	if (!m) {
		c->closing = true;
		client_update(c);
		return;
	}
	while (!c->tx && !c->closing && !c->waiting && buf_used(&c->rbuf) &&
	       buf_used(&c->wbuf) < PX_HIGH_WATER) {
		int rc = http_parse_head(buf_head(&c->rbuf), buf_used(&c->rbuf), true, HTTP_M_OTHER,
					 &w->lim, m);

		if (rc == HTTP_PARSE_NEED_MORE) {
			if (buf_used(&c->rbuf) >= c->rbuf.max) {
				send_error(c, 431, "request head too large", true);
				ST_INC(w->p, st_bad);
			}
			break;
		}
		if (rc == HTTP_PARSE_ERROR) {
			ST_INC(w->p, st_bad);
			send_error(c, m->error_status, m->why, true);
			break;
		}
		c->deadline_ms = hp_now_ms() + w->p->o.header_timeout_ms;
		if (!handle_request(c, m))
			break;
		c->deadline_ms = hp_now_ms() + w->p->o.keepalive_timeout_ms;
	}
	free(m);
	if (c->tx)
		pump_req_body(c->tx);
	if (c->tx && c->tx->u) {
		if (c->tx->u->connected)
			(void)up_flush(c->tx->u);
		up_update(c->tx->u);
	}
	client_update(c);
}

/* ---- I/O events ---------------------------------------------------------------------------- */

static int client_flush(struct cconn *c)
{
	while (buf_used(&c->wbuf)) {
		ssize_t n = send(c->fd, buf_head(&c->wbuf), buf_used(&c->wbuf), MSG_NOSIGNAL);

		if (n > 0) {
			buf_consume(&c->wbuf, (size_t)n);
			ST_ADD(c->w->p, st_bytes_out, (uint64_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return -1;
	}
	if (c->wbuf.cap > PX_HIGH_WATER)
		buf_compact(&c->wbuf);
	return 0;
}

static void client_after_io(struct cconn *c)
{
	if (client_flush(c) != 0 || (c->closing && !buf_used(&c->wbuf) && !c->tx)) {
		client_close(c);
		return;
	}
	if (!buf_used(&c->wbuf) && !c->tx)
		c->deadline_ms = c->deadline_ms;  /* keep the keep-alive deadline */
	/* back-pressure released: let the upstream continue */
	if (c->tx && c->tx->u && buf_used(&c->wbuf) < PX_HIGH_WATER) {
		struct ptx *t = c->tx;
		struct pworker *w = c->w;

		w->cur_tx = t;
		tx_on_up_readable(t);
		if (w->cur_tx == t && c->tx == t && t->u)
			up_update(t->u);
	}
	if (!c->tx)
		client_process(c);
	else
		client_update(c);
}

static void client_on_event(struct cconn *c, uint32_t e)
{
	struct pworker *w = c->w;

	if (e & EPOLLIN) {
		for (;;) {
			size_t room;
			ssize_t n;

			if (buf_used(&c->rbuf) >= c->rbuf.max)
				break;
			if (buf_reserve(&c->rbuf, PX_READ_CHUNK) != 0 &&
			    buf_reserve(&c->rbuf, c->rbuf.max - buf_used(&c->rbuf)) != 0)
				break;
			room = c->rbuf.cap - c->rbuf.off - c->rbuf.len;
			n = recv(c->fd, c->rbuf.data + c->rbuf.off + c->rbuf.len, room, 0);
			if (n > 0) {
				c->rbuf.len += (size_t)n;
				ST_ADD(w->p, st_bytes_in, (uint64_t)n);
				if ((size_t)n < room)
					break;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			/* EOF: finish what was asked if we can, else close */
			if (!c->tx && !buf_used(&c->wbuf)) {
				client_close(c);
				return;
			}
			c->closing = true;
			break;
		}
		if (!c->tx && !c->waiting)
			client_process(c);
		else if (c->tx) {
			pump_req_body(c->tx);
			if (c->tx && c->tx->u) {
				if (c->tx->u->connected)
					(void)up_flush(c->tx->u);
				up_update(c->tx->u);
			}
		}
	} else if (e & (EPOLLHUP | EPOLLERR)) {
		client_close(c);
		return;
	}
	client_after_io(c);
}

static void up_on_event(struct upconn *u, uint32_t e)
{
	struct ptx *t = u->tx;

	if (u->in_pool) {
		/* an idle pooled connection spoke or closed: drop it */
		up_close(u);
		return;
	}
	if (!t) {
		up_close(u);
		return;
	}
	if (!u->connected) {
		int err = 0;
		socklen_t sl = sizeof(err);

		if (e & (EPOLLERR | EPOLLHUP) ||
		    getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0 || err) {
			tx_up_error(t, "cannot connect to the backend", true);
			return;
		}
		u->connected = true;
		t->deadline_ms = hp_now_ms() + t->w->p->o.upstream_timeout_ms;
	}
	if (e & EPOLLOUT || buf_used(&u->wbuf)) {
		if (up_flush(u) != 0) {
			tx_up_error(t, "backend closed the connection", !u->reused);
			return;
		}
		u->w->cur_tx = t;
		u->w->cur_up = u;
		pump_req_body(t);
		if (u->w->cur_tx != t || u->w->cur_up != u || t->u != u)
			return;
		if (up_flush(u) != 0) {
			tx_up_error(t, "backend closed the connection", !u->reused);
			return;
		}
	}
	if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
		for (;;) {
			ssize_t n;
			size_t room;

			if (buf_used(&u->rbuf) >= u->rbuf.max)
				break;
			if (t->c && buf_used(&t->c->wbuf) >= PX_HIGH_WATER)
				break;
			if (buf_reserve(&u->rbuf, PX_READ_CHUNK) != 0 &&
			    buf_reserve(&u->rbuf, u->rbuf.max - buf_used(&u->rbuf)) != 0)
				break;
			room = u->rbuf.cap - u->rbuf.off - u->rbuf.len;
			n = recv(u->fd, u->rbuf.data + u->rbuf.off + u->rbuf.len, room, 0);
			if (n > 0) {
				struct pworker *w = u->w;

				u->rbuf.len += (size_t)n;
				w->cur_up = u;
				w->cur_tx = t;
				tx_on_up_readable(t);
				if (w->cur_up != u || w->cur_tx != t || u->tx != t)
					return;   /* completed, failed or retried elsewhere */
				if ((size_t)n < room)
					break;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			/* EOF */
			if (t->resp && t->resp->body == HTTP_BODY_EOF) {
				t->resp_done = true;
				t->resp->keep_alive = false;
				tx_complete(t);
				return;
			}
			if (!t->resp && buf_used(&u->rbuf) == 0 && u->reused) {
				tx_up_error(t, "pooled connection closed", false);
				return;
			}
			tx_up_error(t, "backend closed the connection early", true);
			return;
		}
	}
	if (t->u == u)
		up_update(u);
	if (t->c)
		client_update(t->c);
}

static void worker_accept(struct pworker *w)
{
	struct proxy *p = w->p;

	for (;;) {
		int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;
		struct epoll_event ev;
		struct cconn *c;

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("http: accept: %s", strerror(errno));
			return;
		}
		ST_INC(p, st_accepted);
		if (atomic_load(&p->connected) >= p->o.max_clients) {
			static const char msg[] = "HTTP/1.1 503 Service Unavailable\r\n"
				"Content-Length: 0\r\nConnection: close\r\n\r\n";

			ST_INC(p, st_rejected);
			if (send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL) < 0) {
				/* best effort */
			}
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		if (w->nslots == w->slot_cap) {
			unsigned nc = w->slot_cap ? w->slot_cap * 2 : 64;
			struct cconn **ns = realloc(w->slots, nc * sizeof(*ns));

			if (!ns) {
				free(c);
				close(fd);
				continue;
			}
			memset(ns + w->slot_cap, 0, (nc - w->slot_cap) * sizeof(*ns));
			w->slots = ns;
			w->slot_cap = nc;
		}
		/* find a free slot */
		{
			unsigned s = w->nslots;

			for (unsigned i = 0; i < w->nslots; i++)
				if (!w->slots[i]) {
					s = i;
					break;
				}
			if (s == w->nslots)
				w->nslots++;
			c->slot = s;
			w->slots[s] = c;
		}
		c->kind = K_CLIENT;
		c->fd = fd;
		c->w = w;
		c->id = ++w->next_id;
		buf_init(&c->rbuf, p->o.max_header_size + p->o.max_request_line + 4096);
		buf_init(&c->wbuf, p->o.max_object + PX_HIGH_WATER + 65536);
		c->deadline_ms = hp_now_ms() + p->o.header_timeout_ms;
		sock_peer_name(fd, false, c->peer, sizeof(c->peer));
		c->events = EPOLLIN | EPOLLRDHUP;
		ev.events = c->events;
		ev.data.ptr = c;
		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
			w->slots[c->slot] = NULL;
			close(fd);
			buf_free(&c->rbuf);
			buf_free(&c->wbuf);
			free(c);
			continue;
		}
		c->next = w->conns;
		if (w->conns)
			w->conns->prev = c;
		w->conns = c;
		w->nconns++;
		atomic_fetch_add(&p->connected, 1);
	}
}

static void worker_mail(struct pworker *w)
{
	struct mail *m;
	unsigned n;
	uint64_t v;

	if (read(w->evfd, &v, sizeof(v)) < 0) {
		/* nothing pending */
	}
	pthread_mutex_lock(&w->mail_mu);
	m = w->mail;
	n = w->nmail;
	w->mail = NULL;
	w->nmail = w->mail_cap = 0;
	pthread_mutex_unlock(&w->mail_mu);
	for (unsigned i = 0; i < n; i++) {
		struct cconn *c = m[i].slot < w->nslots ? w->slots[m[i].slot] : NULL;

		if (!c || c->id != m[i].id || !c->waiting)
			continue;
		c->waiting = false;
		c->retry_after_wait = true;
		client_process(c);
		if (w->slots[m[i].slot] == c)
			client_after_io(c);
	}
	free(m);
	if (atomic_load(&w->p->stopping) && w->lfd >= 0) {
		epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->lfd, NULL);
		close(w->lfd);
		w->lfd = -1;
	}
}

static void worker_sweep(struct pworker *w, uint64_t now)
{
	struct proxy *p = w->p;
	bool stopping = atomic_load(&p->stopping);
	uint64_t deadline = atomic_load(&p->deadline_ms);
	struct ptx *t, *tn;
	struct cconn *c, *cn;

	for (t = w->txs; t; t = tn) {
		tn = t->next;
		if (t->deadline_ms && now >= t->deadline_ms) {
			ST_INC(p, st_timeouts);
			if (t->u && !t->resp && !t->u->connected) {
				tx_up_error(t, "connect to the backend timed out", true);
			} else {
				if (t->be >= 0 && t->u && !t->reported)
					balance_done(p->bal, (unsigned)t->be, false,
						     hp_now_us() - t->t_start_us, now, hp_wall_ms());
				t->reported = true;
				tx_fail(t, 504, "the backend did not answer in time");
			}
			tn = w->txs;   /* the list changed */
		}
	}
	for (c = w->conns; c; c = cn) {
		cn = c->next;
		if (c->queued && now >= c->wait_until_ms) {
			ST_INC(p, st_shed_timeout);
			shed_queued(c, "waited http.queue_timeout");
			continue;
		}
		if (c->queued)
			continue;
		if (c->waiting && now >= c->wait_until_ms) {
			c->waiting = false;
			c->retry_after_wait = true;
			client_process(c);
			if (w->slots[c->slot] == c)
				client_after_io(c);
			continue;
		}
		if (c->tx || c->waiting)
			continue;
		if ((stopping && (!buf_used(&c->wbuf) || (deadline && now >= deadline))) ||
		    now >= c->deadline_ms) {
			if (!stopping && buf_used(&c->rbuf) && !buf_used(&c->wbuf)) {
				ST_INC(p, st_timeouts);
				send_error(c, 408, "request head not received in time", true);
				client_after_io(c);
				continue;
			}
			client_close(c);
		}
	}
	for (unsigned b = 0; b < p->nbe; b++) {
		struct upconn *u, *un;

		for (u = w->pool[b]; u; u = un) {
			un = u->pnext;
			if (stopping || now - u->idle_since_ms > PX_POOL_IDLE_MS)
				up_close(u);
		}
	}
}

static void *worker_main(void *arg)
{
	struct pworker *w = arg;
	struct proxy *p = w->p;
	struct epoll_event evs[PX_MAX_EVENTS];
	char name[16];

	snprintf(name, sizeof(name), "hp-http-%u", w->idx);
	pthread_setname_np(pthread_self(), name);
	for (;;) {
		bool stopping = atomic_load(&p->stopping);
		int n = epoll_wait(w->epfd, evs, PX_MAX_EVENTS, 200);
		uint64_t now;

		if (n < 0 && errno != EINTR) {
			log_error("http: epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			int kind = *(int *)evs[i].data.ptr;

			if (kind == K_LISTEN)
				worker_accept(w);
			else if (kind == K_EVFD)
				worker_mail(w);
			else if (kind == K_CLIENT)
				client_on_event(evs[i].data.ptr, evs[i].events);
			else if (kind == K_UP)
				up_on_event(evs[i].data.ptr, evs[i].events);
		}
		if (w->aq_kick)
			admission_run(w);
		now = hp_now_ms();
		if (now - w->last_sweep_ms >= 200 || stopping) {
			w->last_sweep_ms = now;
			worker_sweep(w, now);
		}
		if (stopping && !w->conns && !w->txs)
			break;
		if (stopping && atomic_load(&p->deadline_ms) && now >= atomic_load(&p->deadline_ms) + 1000)
			break;
	}
	/* whatever is left after the deadline */
	while (w->txs) {
		struct ptx *t = w->txs;

		if (t->u) {
			up_close(t->u);
			t->u = NULL;
		}
		if (t->c)
			t->c->tx = NULL;
		flight_finish(t);
		tx_free(t);
	}
	while (w->conns)
		client_close(w->conns);
	for (unsigned b = 0; b < p->nbe; b++)
		while (w->pool[b])
			up_close(w->pool[b]);
	return NULL;
}

/* ---- active health checks ------------------------------------------------------------------- */

/* One blocking GET with short timeouts; true if the answer is 2xx/3xx. */
static bool health_probe(struct proxy *p, unsigned be)
{
	struct timeval tv = { .tv_sec = 1, .tv_usec = 0 };
	char req[1024], resp[64];
	int fd = socket(p->be[be].ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), n;
	bool ok = false;

	if (fd < 0)
		return false;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
		     "User-Agent: hotpath-health\r\n\r\n", p->o.health_path, p->be[be].name);
	if (connect(fd, (struct sockaddr *)&p->be[be].ss, p->be[be].sl) == 0 &&
	    send(fd, req, (size_t)n, MSG_NOSIGNAL) == n) {
		ssize_t r = recv(fd, resp, sizeof(resp) - 1, MSG_WAITALL);
		char drain[512];
		unsigned left = 64;

		if (r >= 12) {
			resp[r] = '\0';
			ok = strncmp(resp, "HTTP/1.", 7) == 0 && (resp[9] == '2' || resp[9] == '3');
		}
		/* read to the end (bounded) so the server is not reset mid-reply */
		while (r > 0 && left-- && (r = recv(fd, drain, sizeof(drain), 0)) > 0)
			;
	}
	close(fd);
	return ok;
}

static void *health_main(void *arg)
{
	struct proxy *p = arg;

	pthread_setname_np(pthread_self(), "hp-http-health");
	while (!atomic_load(&p->stopping)) {
		struct epoll_event ev;
		int ep = epoll_create1(EPOLL_CLOEXEC);

		for (unsigned i = 0; i < p->nbe && !atomic_load(&p->stopping); i++)
			balance_health(p->bal, i, health_probe(p, i), hp_now_ms(), hp_wall_ms());
		if (ep >= 0) {
			ev.events = EPOLLIN;
			ev.data.fd = p->health_evfd;
			epoll_ctl(ep, EPOLL_CTL_ADD, p->health_evfd, &ev);
			epoll_wait(ep, &ev, 1, (int)p->o.health_interval_ms);
			close(ep);
		}
	}
	return NULL;
}

/* ---- lifecycle ---------------------------------------------------------------------------------- */

static int resolve(const char *hostport, struct backend_addr *out)
{
	char host[HP_ADDR_MAX];
	uint16_t port;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	char ps[8];
	int rc;

	if (config_parse_hostport(hostport, host, sizeof(host), &port) != 0)
		return -EINVAL;
	snprintf(ps, sizeof(ps), "%u", port);
	rc = getaddrinfo(host, ps, &hints, &res);
	if (rc != 0 || !res)
		return -EHOSTUNREACH;
	memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
	out->sl = res->ai_addrlen;
	snprintf(out->name, sizeof(out->name), "%s", hostport);
	freeaddrinfo(res);
	return 0;
}

struct proxy *proxy_start(const struct proxy_options *o, struct l1 *l1)
{
	struct proxy *p = calloc(1, sizeof(*p));
	struct balance_backend_conf bc[BALANCE_MAX_BACKENDS];
	char list[HP_LIST_MAX], *save = NULL, *tok;
	long ncpu;

	if (!p)
		return NULL;
	p->o = *o;
	p->l1 = l1;
	p->health_evfd = -1;
	pthread_mutex_init(&p->flights_mu, NULL);
	snprintf(list, sizeof(list), "%s", o->servers);
	for (tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		if (p->nbe >= BALANCE_MAX_BACKENDS) {
			log_error("http: upstream %s: more than %d servers", o->upstream,
				  BALANCE_MAX_BACKENDS);
			goto fail;
		}
		if (resolve(tok, &p->be[p->nbe]) != 0) {
			log_error("http: upstream %s: cannot resolve %s", o->upstream, tok);
			goto fail;
		}
		memset(&bc[p->nbe], 0, sizeof(bc[0]));
		snprintf(bc[p->nbe].name, sizeof(bc[0].name), "%s", tok);
		bc[p->nbe].weight = o->weights[p->nbe] ? o->weights[p->nbe] : 1;
		p->nbe++;
	}
	if (!p->nbe) {
		log_error("http: upstream %s has no servers", o->upstream);
		goto fail;
	}
	p->bal = balance_new(&o->bal, bc, p->nbe, hp_now_us());
	if (!p->bal)
		goto fail;
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	p->nworkers = o->workers ? o->workers : (ncpu > 0 ? (unsigned)ncpu : 1);
	if (p->nworkers > PX_MAX_WORKERS)
		p->nworkers = PX_MAX_WORKERS;
	p->w = calloc(p->nworkers, sizeof(*p->w));
	if (!p->w)
		goto fail;
	for (unsigned i = 0; i < p->nworkers; i++) {
		struct pworker *w = &p->w[i];
		struct epoll_event ev;
		int fd;

		w->p = p;
		w->idx = i;
		w->epfd = w->lfd = w->evfd = -1;
		pthread_mutex_init(&w->mail_mu, NULL);
		http_limits_default(&w->lim);
		w->lim.max_start_line = o->max_request_line;
		w->lim.max_head = o->max_header_size;
		w->lim.max_headers = o->max_headers;
		/* the in-flight limit is split so each worker decides alone */
		w->limit = o->max_inflight ? (o->max_inflight + p->nworkers - 1) / p->nworkers : 0;
		if (w->limit && o->gradient_limit) {
			gradient_init(&w->grad, w->limit < 20 ? w->limit : 20, 1, w->limit);
			w->limit = (unsigned)w->grad.limit;
		}
		atomic_fetch_add(&p->st_limit_now, w->limit);
		fd = sock_listen(o->listen, true, &p->port);
		if (fd < 0) {
			log_error("http: cannot listen on %s: %s", o->listen, strerror(-fd));
			goto fail;
		}
		w->lfd = fd;
		w->epfd = epoll_create1(EPOLL_CLOEXEC);
		w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (w->epfd < 0 || w->evfd < 0)
			goto fail;
		w->ltag.kind = K_LISTEN;
		w->etag.kind = K_EVFD;
		ev.events = EPOLLIN;
		ev.data.ptr = &w->ltag;
		epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->lfd, &ev);
		ev.data.ptr = &w->etag;
		epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev);
	}
	for (unsigned i = 0; i < p->nworkers; i++) {
		if (pthread_create(&p->w[i].thread, NULL, worker_main, &p->w[i]) != 0)
			goto fail;
		p->w[i].started = true;
	}
	if (o->health_path[0]) {
		p->health_evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (p->health_evfd >= 0 &&
		    pthread_create(&p->health_thread, NULL, health_main, p) == 0)
			p->health_started = true;
	}
	log_info("http: proxy on port %u -> upstream %s (%u servers, %s, %u workers%s)", p->port,
		 o->upstream, p->nbe, balance_algo_name(o->bal.algo), p->nworkers,
		 o->cache ? ", caching in L1" : "");
	return p;
fail:
	proxy_stop(p, 0);
	proxy_free(p);
	return NULL;
}

void proxy_stop(struct proxy *p, uint64_t timeout_ms)
{
	uint64_t one = 1;

	if (!p)
		return;
	atomic_store(&p->deadline_ms, hp_now_ms() + timeout_ms);
	atomic_store(&p->stopping, true);
	if (p->health_evfd >= 0 && write(p->health_evfd, &one, sizeof(one)) < 0) {
		/* the health thread also checks the flag each round */
	}
	for (unsigned i = 0; p->w && i < p->nworkers; i++)
		if (p->w[i].evfd >= 0 && write(p->w[i].evfd, &one, sizeof(one)) < 0) {
			/* it wakes within 200 ms anyway */
		}
	for (unsigned i = 0; p->w && i < p->nworkers; i++)
		if (p->w[i].started) {
			pthread_join(p->w[i].thread, NULL);
			p->w[i].started = false;
		}
	if (p->health_started) {
		pthread_join(p->health_thread, NULL);
		p->health_started = false;
	}
}

void proxy_free(struct proxy *p)
{
	if (!p)
		return;
	for (unsigned i = 0; p->w && i < p->nworkers; i++) {
		struct pworker *w = &p->w[i];

		if (w->lfd >= 0)
			close(w->lfd);
		if (w->epfd >= 0)
			close(w->epfd);
		if (w->evfd >= 0)
			close(w->evfd);
		free(w->slots);
		free(w->mail);
		pthread_mutex_destroy(&w->mail_mu);
	}
	for (unsigned b = 0; b < PX_FLIGHT_BUCKETS; b++)
		while (p->flights[b]) {
			struct flight *f = p->flights[b];

			p->flights[b] = f->next;
			free(f->w);
			free(f->key);
			free(f);
		}
	if (p->health_evfd >= 0)
		close(p->health_evfd);
	free(p->w);
	balance_free(p->bal);
	pthread_mutex_destroy(&p->flights_mu);
	free(p);
}

uint16_t proxy_port(const struct proxy *p)
{
	return p->port;
}

struct balancer *proxy_balancer(struct proxy *p)
{
	return p ? p->bal : NULL;
}

const char *proxy_upstream_name(const struct proxy *p)
{
	return p->o.upstream;
}

void proxy_get_stats(struct proxy *p, struct proxy_stats *s)
{
	memset(s, 0, sizeof(*s));
	s->connections = atomic_load(&p->connected);
	s->accepted = atomic_load(&p->st_accepted);
	s->rejected = atomic_load(&p->st_rejected);
	s->requests = atomic_load(&p->st_requests);
	s->upstream_requests = atomic_load(&p->st_up_requests);
	s->upstream_errors = atomic_load(&p->st_up_errors);
	s->retries = atomic_load(&p->st_retries);
	for (unsigned i = 0; i < PX_RESULTS; i++)
		s->results[i] = atomic_load(&p->st_results[i]);
	for (unsigned i = 0; i < 6; i++)
		s->status[i] = atomic_load(&p->st_status[i]);
	s->bad_requests = atomic_load(&p->st_bad);
	s->stored = atomic_load(&p->st_stored);
	s->store_failed = atomic_load(&p->st_store_failed);
	s->invalidations = atomic_load(&p->st_invalidations);
	s->not_modified = atomic_load(&p->st_not_modified);
	s->bytes_in = atomic_load(&p->st_bytes_in);
	s->bytes_out = atomic_load(&p->st_bytes_out);
	s->pool_reused = atomic_load(&p->st_pool_reused);
	s->pool_new = atomic_load(&p->st_pool_new);
	s->timeouts = atomic_load(&p->st_timeouts);
	for (unsigned i = 0; i < HC_CODINGS; i++)
		s->compressed[i] = atomic_load(&p->st_compressed[i]);
	s->compress_built = atomic_load(&p->st_comp_built);
	s->compress_no_gain = atomic_load(&p->st_comp_no_gain);
	s->compress_in = atomic_load(&p->st_comp_in);
	s->compress_out = atomic_load(&p->st_comp_out);
	s->compress_us = atomic_load(&p->st_comp_us);
	s->compress_saved = atomic_load(&p->st_comp_saved);
	s->compress_streamed = atomic_load(&p->st_comp_streamed);
	for (unsigned i = 0; i < ADMIT_CLASSES; i++) {
		s->admitted[i] = atomic_load(&p->st_admitted[i]);
		s->queued[i] = atomic_load(&p->st_queued[i]);
		s->shed[i] = atomic_load(&p->st_shed[i]);
	}
	s->shed_full = atomic_load(&p->st_shed_full);
	s->shed_codel = atomic_load(&p->st_shed_codel);
	s->shed_timeout = atomic_load(&p->st_shed_timeout);
	s->l2_hits = atomic_load(&p->st_l2_hits);
	s->l2_stored = atomic_load(&p->st_l2_stored);
	s->l2_errors = atomic_load(&p->st_l2_errors);
	{
		int64_t a = atomic_load(&p->st_inflight_now), q = atomic_load(&p->st_queued_now);

		int64_t l = atomic_load(&p->st_limit_now);

		s->inflight_now = a > 0 ? (uint64_t)a : 0;
		s->queued_now = q > 0 ? (uint64_t)q : 0;
		s->limit_now = l > 0 ? (uint64_t)l : 0;
	}
}

/* ---- from the configuration ------------------------------------------------------------------ */

struct proxy *proxy_start_config(const struct hp_config *c, struct l1 *l1)
{
	const struct hp_upstream_conf *u = NULL;
	struct proxy_options *o;
	struct proxy *p;

	for (unsigned i = 0; i < c->n_upstreams; i++)
		if (strcmp(c->upstreams[i].name, c->http_upstream) == 0)
			u = &c->upstreams[i];
	if (!u) {
		log_error("http: http.upstream names [upstream.%s], which is not defined",
			  c->http_upstream);
		return NULL;
	}
	o = malloc(sizeof(*o));
	if (!o)
		return NULL;
	proxy_options_default(o);
	snprintf(o->listen, sizeof(o->listen), "%s", c->http_listen);
	o->workers = c->workers;
	snprintf(o->upstream, sizeof(o->upstream), "%s", u->name);
	snprintf(o->servers, sizeof(o->servers), "%s", u->servers);
	{
		char tmp[sizeof(u->weights)], *save = NULL, *tok;
		unsigned n = 0;

		snprintf(tmp, sizeof(tmp), "%s", u->weights);
		for (tok = strtok_r(tmp, ", ", &save); tok && n < BALANCE_MAX_BACKENDS;
		     tok = strtok_r(NULL, ", ", &save))
			o->weights[n++] = (unsigned)strtoul(tok, NULL, 10);
	}
	o->bal.algo = u->balance == HP_BAL_LEAST_REQUEST ? BAL_LEAST_REQUEST :
		      u->balance == HP_BAL_EWMA ? BAL_EWMA :
		      u->balance == HP_BAL_HASH ? BAL_HASH : BAL_ROUND_ROBIN;
	o->bal.health_rise = u->health_rise;
	o->bal.health_fall = u->health_fall;
	o->bal.eject_consecutive = u->eject_consecutive;
	o->bal.eject_base_ms = u->eject_time_ms;
	o->bal.eject_max_pct = u->eject_max_pct;
	o->bal.slow_start_ms = u->slow_start_ms;
	o->bal.panic_pct = u->panic_pct;
	o->bal.breaker.window = u->breaker_window;
	o->bal.breaker.window_type = u->breaker_window_type ? BREAKER_WINDOW_TIME :
				     BREAKER_WINDOW_COUNT;
	if (u->breaker_min_calls)
		o->bal.breaker.min_calls = u->breaker_min_calls;
	else if (u->breaker_window_type)
		o->bal.breaker.min_calls = 10;
	else
		o->bal.breaker.min_calls = u->breaker_window / 2 ? u->breaker_window / 2 : 1;
	o->bal.breaker.failure_pct = u->breaker_failure_pct;
	o->bal.breaker.slow_pct = u->breaker_slow_pct;
	o->bal.breaker.slow_call_us = u->breaker_slow_call_ms * 1000;
	o->bal.breaker.open_ms = u->breaker_open_ms;
	o->bal.breaker.probes = u->breaker_probes;
	snprintf(o->hash_key, sizeof(o->hash_key), "%s", u->hash_key[0] ? u->hash_key : "path");
	snprintf(o->sticky_cookie, sizeof(o->sticky_cookie), "%s", u->sticky_cookie);
	snprintf(o->health_path, sizeof(o->health_path), "%s", u->health_path);
	o->health_interval_ms = u->health_interval_ms;
	o->max_request_line = c->http_max_request_line;
	o->max_header_size = c->http_max_header_size;
	o->max_headers = c->http_max_headers;
	o->max_body = c->http_max_body;
	o->max_object = c->http_max_object_size;
	o->max_clients = c->http_max_clients;
	o->header_timeout_ms = c->http_header_timeout_ms;
	o->keepalive_timeout_ms = c->http_keepalive_timeout_ms;
	o->connect_timeout_ms = c->http_connect_timeout_ms;
	o->upstream_timeout_ms = c->http_upstream_timeout_ms;
	o->send_timeout_ms = c->http_upstream_timeout_ms;
	o->keep_stale_s = c->http_stale_keep_ms / 1000;
	o->cache = c->http_cache;
	{
		const char *why;

		if (compress_parse_list(&o->comp, c->http_compress, &why) != 0) {
			log_error("http: http.compress: %s", why);
			free(o);
			return NULL;
		}
	}
	o->comp.level[HC_CODING_GZIP] = (int)c->http_compress_level_gzip;
	o->comp.level[HC_CODING_BR] = (int)c->http_compress_level_br;
	o->comp.level[HC_CODING_ZSTD] = (int)c->http_compress_level_zstd;
	o->max_inflight = c->http_max_inflight;
	o->gradient_limit = c->http_inflight_limit == 1;
	o->queue_size = c->http_queue_size;
	o->queue_timeout_ms = c->http_queue_timeout_ms;
	o->queue_target_ms = c->http_queue_target_ms;
	o->queue_interval_ms = c->http_queue_interval_ms;
	o->retry_after_s = c->http_retry_after_s;
	{
		const char *why;

		if (admit_rules_add(&o->prio, ADMIT_HIGH, c->http_priority_high, &why) != 0 ||
		    admit_rules_add(&o->prio, ADMIT_LOW, c->http_priority_low, &why) != 0) {
			log_error("http: http.priority_high/low: %s", why);
			free(o);
			return NULL;
		}
	}
	o->comp.max_streams = c->http_compress_streams;
	o->comp.min_size = c->http_compress_min_size;
	o->comp.max_size = c->http_compress_max_size;
	snprintf(o->comp.types, sizeof(o->comp.types), "%s", c->http_compress_types);
	p = proxy_start(o, l1);
	free(o);
	/* HTTP objects go through the shared tier (L2 and its invalidation)
	 * when Redis is configured; the tier was started before the proxy */
	if (p && c->http_l2 && tier_current() && tier_l2(tier_current())) {
		p->tier = tier_current();
		log_info("http: cached responses are also stored in L2 (Redis)");
	}
	return p;
}
