/*
 * server.c - the RESP front's network layer.
 *
 * How it works: W worker threads (cfg workers, default one per CPU), each
 * with its own epoll instance and its own listening socket bound to the same
 * address with SO_REUSEPORT, so the kernel spreads new connections across
 * workers and a connection lives its whole life on one thread: no locks on
 * the connection path, the only shared state is the L1 store (sharded
 * locks) and a few atomic counters. Each connection has a bounded query
 * buffer (resp.max_query_buffer) and a bounded reply buffer
 * (resp.max_output_buffer). A read parses and executes every complete
 * command in the buffer (pipelining), then writes the replies at once; when
 * pending replies pass a high-water mark the worker stops reading that
 * client until they drain, so a client that pipelines without reading
 * gets back-pressure instead of unbounded memory.
 *
 * Limits: above resp.max_clients a new connection gets Redis's
 * "-ERR max number of clients reached" and is closed; connections idle for
 * resp.idle_timeout are closed by a once-a-second sweep; a command larger
 * than the query buffer or a protocol error gets an error reply and the
 * connection is closed, as redis-server does.
 *
 * Shutdown: resp_server_stop() closes the listeners, lets every worker
 * finish the commands already received and flush their replies, closes
 * idle connections at once and the rest at the deadline.
 *
 * Parked clients: a command that must wait for a slow origin (a GET that
 * misses and needs its strategy's loader) parks its client through
 * resp_ctx.defer instead of blocking the thread: the load runs on the
 * task processor, the worker goes on serving its other connections, and
 * the client's later (pipelined) commands stay unread in its query buffer
 * so replies keep their order (the socket is still read, up to 64 KiB
 * ahead, so parking costs no epoll_ctl). The loader thread hands the reply back
 * through the worker's completion list and eventfd; the worker appends it
 * and resumes the client. At most resp.max_parked_clients clients wait at
 * once; beyond that the command gets -BUSY at once. A parked client keeps
 * its L0 slot closed (the kernel must not answer ahead of the parked
 * reply), is not idle, and is waited for at shutdown; one that
 * disconnects while parked is freed and its reply dropped when it comes.
 *
 * What it deliberately does not do: TLS, AUTH, blocking commands or
 * pub/sub.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include "hotpath/l0.h"
#include "hotpath/log.h"
#include "hotpath/server.h"
#include "hotpath/sock.h"
#include "hotpath/version.h"

#define SERVER_MAX_WORKERS 64
#define SERVER_READ_CHUNK (16 * 1024)
#define SERVER_OUT_HIGH_WATER (256 * 1024)   /* stop parsing above this */
#define SERVER_PARKED_READ_MAX (64 * 1024)   /* read ahead of a parked client */
#define SERVER_MAX_EVENTS 256
#define SERVER_LISTEN_BACKLOG 1024

struct conn {
	int fd;
	bool reading_paused;        /* EPOLLIN off until replies drain */
	uint32_t events;            /* epoll events registered now */
	bool closing;               /* close once wbuf is flushed */
	uint64_t last_active_ms;
	uint64_t bytes_read;        /* for the L0 ordering protocol */
	uint64_t cookie;            /* socket cookie, 0 if unknown */
	struct l0_conn *l0c;        /* L0 slot if the kernel may answer here */
	bool l0_checked;            /* looked the slot up again after accept */
	struct buf rbuf, wbuf;
	struct resp_client cl;
	struct parked *park;        /* waiting for a deferred reply, or NULL */
	struct conn *prev, *next;   /* worker's connection list */
};

/* A resp_defer ticket: owned by whoever produces the reply until done()
 * queues it on its worker, then by the worker. */
struct parked {
	struct parked *next;
	struct worker *w;
	struct conn *c;             /* NULL once the client is gone (worker-only) */
	struct buf reply;
};

struct worker {
	struct resp_server *srv;
	unsigned idx;
	pthread_t thread;
	bool thread_started;
	int epfd;
	int lfd;
	int evfd;                   /* wakes the worker for stop/reload */
	struct conn *conns;
	unsigned nconns;
	struct resp_ctx ctx;
	struct resp_cmd cmd;
	char *scratch;
	struct resp_cmdstat *cmdstats;
	struct resp_defer defer;
	struct conn *running;       /* connection whose command runs now */
	uint64_t tickets;           /* parked replies not yet back (worker-only) */
	pthread_mutex_t done_mu;    /* completion list, filled by loader threads */
	struct parked *done_head, *done_tail;
	_Atomic uint64_t accepted, closed_idle, closed_limit, proto_errors, commands;
	_Atomic uint64_t bytes_in, bytes_out, out_bytes;
	_Atomic uint64_t reload_gen;
	uint64_t seen_gen;
	uint64_t last_sweep_ms;
};

struct resp_server {
	unsigned nworkers;
	struct worker *workers;
	uint16_t port;
	char listen_addr[HP_ADDR_MAX];
	struct l1 *l1;
	struct l0 *l0;              /* NULL without L0 */
	_Atomic uint64_t connected;
	_Atomic uint64_t rejected;
	_Atomic uint64_t next_client_id;
	_Atomic bool stopping;
	_Atomic uint64_t deadline_ms;   /* 0 until stop */
	uint64_t start_ms;
	/* reloadable settings, read by workers when reload_gen moves */
	pthread_mutex_t cfg_mu;
	struct resp_limits lim;
	uint64_t max_key_len, max_value_size, max_ttl_ms;
	uint64_t max_output;
	_Atomic uint32_t max_clients;
	_Atomic uint32_t idle_timeout_s;
	_Atomic uint32_t max_parked;
	_Atomic uint64_t parked_now, parked_total, parked_refused;
};

static void server_info(struct buf *text, const char *section, void *arg);

/* ---- sockets -------------------------------------------------------------- */

/* ---- connections ------------------------------------------------------------ */

static void conn_update_events(struct worker *w, struct conn *c)
{
	struct epoll_event ev = { .data.ptr = c };
	bool want_write = buf_used(&c->wbuf) > 0;
	/* a parked client stays readable while little is read ahead, so that
	 * parking and resuming cost no epoll_ctl in the usual case (a client
	 * waiting for its reply sends nothing meanwhile) */
	bool want_read = !c->reading_paused && !c->closing &&
			 (!c->park || buf_used(&c->rbuf) < SERVER_PARKED_READ_MAX);

	ev.events = (want_read ? EPOLLIN : 0) | (want_write ? EPOLLOUT : 0) | EPOLLRDHUP;
	if (ev.events == c->events)
		return;     /* the common case: no syscall */
	if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0)
		log_debug("resp: epoll_ctl MOD fd %d: %s", c->fd, strerror(errno));
	c->events = ev.events;
}

static void conn_close(struct worker *w, struct conn *c)
{
	if (w->srv->l0)
		l0_conn_release(w->srv->l0, c->cookie);
	if (c->park)
		c->park->c = NULL;  /* its reply is dropped when it comes */
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	atomic_fetch_sub_explicit(&w->out_bytes, buf_used(&c->wbuf), memory_order_relaxed);
	buf_free(&c->rbuf);
	buf_free(&c->wbuf);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nconns--;
	atomic_fetch_sub(&w->srv->connected, 1);
	free(c);
}

/* Write as much of wbuf as the socket takes. 0, or -1 if the peer is gone. */
static int conn_flush(struct worker *w, struct conn *c)
{
	while (buf_used(&c->wbuf) > 0) {
		ssize_t n = write(c->fd, buf_head(&c->wbuf), buf_used(&c->wbuf));

		if (n > 0) {
			buf_consume(&c->wbuf, (size_t)n);
			atomic_fetch_add_explicit(&w->bytes_out, (uint64_t)n, memory_order_relaxed);
			atomic_fetch_sub_explicit(&w->out_bytes, (uint64_t)n, memory_order_relaxed);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return -1;
	}
	if (c->wbuf.cap > SERVER_OUT_HIGH_WATER)
		buf_compact(&c->wbuf);
	return 0;
}

/* Send an error line and mark the connection to close once it is flushed. */
static void conn_fail(struct worker *w, struct conn *c, const char *msg)
{
	size_t before = buf_used(&c->wbuf);

	if (buf_printf(&c->wbuf, "-ERR %s\r\n", msg) == 0)
		atomic_fetch_add_explicit(&w->out_bytes, buf_used(&c->wbuf) - before,
					  memory_order_relaxed);
	c->closing = true;
}

/*
 * Parse and run every complete command in rbuf while replies stay under
 * the high-water mark. Returns -1 if the connection must close now.
 */
static int conn_process(struct worker *w, struct conn *c)
{
	struct resp_server *s = w->srv;

	while (buf_used(&c->rbuf) > 0 && !c->closing && !c->park) {
		size_t consumed = 0, before;
		const char *err = NULL;
		enum resp_status st;
		int rc;

		if (buf_used(&c->wbuf) >= SERVER_OUT_HIGH_WATER) {
			c->reading_paused = true;   /* resumes when replies drain */
			break;
		}
		st = resp_parse(buf_head(&c->rbuf), buf_used(&c->rbuf), &w->ctx.lim, &w->cmd,
				&consumed, &err);
		if (st == RESP_NEED_MORE) {
			if (buf_used(&c->rbuf) >= s->lim.max_query) {
				atomic_fetch_add_explicit(&w->closed_limit, 1, memory_order_relaxed);
				conn_fail(w, c, "Protocol error: query larger than resp.max_query_buffer");
			}
			break;
		}
		if (st == RESP_PROTO_ERROR) {
			atomic_fetch_add_explicit(&w->proto_errors, 1, memory_order_relaxed);
			conn_fail(w, c, err ? err : "Protocol error");
			break;
		}
		if (st == RESP_EMPTY) {
			buf_consume(&c->rbuf, consumed);
			continue;
		}
		before = buf_used(&c->wbuf);
		w->running = c;
		rc = resp_exec(&w->ctx, &c->cl, &w->cmd, &c->wbuf);
		w->running = NULL;
		buf_consume(&c->rbuf, consumed);
		if (rc == RESP_PARKED) {
			/* its reply comes through server_defer_done; the commands
			 * after it wait in rbuf */
			atomic_fetch_add_explicit(&w->commands, 1, memory_order_relaxed);
			break;
		}
		atomic_fetch_add_explicit(&w->commands, 1, memory_order_relaxed);
		if (buf_used(&c->wbuf) > before)
			atomic_fetch_add_explicit(&w->out_bytes, buf_used(&c->wbuf) - before,
						  memory_order_relaxed);
		if (rc != 0) {
			/* The reply did not fit the output limit: Redis closes such
			 * clients too (client-output-buffer-limit). */
			atomic_fetch_add_explicit(&w->closed_limit, 1, memory_order_relaxed);
			log_info("resp: closing client %s: reply exceeds resp.max_output_buffer",
				 c->cl.addr);
			return -1;
		}
		if (c->cl.quit)
			c->closing = true;
	}
	if (buf_used(&c->rbuf) == 0)
		buf_compact(&c->rbuf);
	return 0;
}

static bool conn_pump(struct worker *w, struct conn *c);

static void conn_on_readable(struct worker *w, struct conn *c)
{
	for (;;) {
		ssize_t n;
		int err = buf_reserve(&c->rbuf, SERVER_READ_CHUNK);
		size_t room;

		if (err == -ENOBUFS) {
			/* Query buffer full: take whatever room is left. */
			room = c->rbuf.max - buf_used(&c->rbuf);
			if (room == 0 || buf_reserve(&c->rbuf, room) != 0) {
				if (conn_process(w, c) != 0) {
					conn_close(w, c);
					return;
				}
				break;
			}
		} else if (err) {
			conn_close(w, c);
			return;
		} else {
			room = c->rbuf.cap - c->rbuf.off - c->rbuf.len;
		}
		n = read(c->fd, c->rbuf.data + c->rbuf.off + c->rbuf.len, room);
		if (n > 0) {
			c->rbuf.len += (size_t)n;
			c->bytes_read += (uint64_t)n;
			w->ctx.clock_us = hp_now_us();  /* command times start here */
			atomic_fetch_add_explicit(&w->bytes_in, (uint64_t)n, memory_order_relaxed);
			if (conn_process(w, c) != 0) {
				conn_close(w, c);
				return;
			}
			if ((size_t)n < room || c->reading_paused || c->closing ||
			    (c->park && buf_used(&c->rbuf) >= SERVER_PARKED_READ_MAX))
				break;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		/* EOF or error: replies to a closed peer are pointless. */
		conn_close(w, c);
		return;
	}
	c->last_active_ms = hp_now_ms();
	conn_pump(w, c);
}

/*
 * After reading or on writability: write what is pending and, while the
 * socket takes it all and the client was paused for back-pressure, run the
 * commands it already sent. Returns false if the connection was closed.
 */
static bool conn_pump(struct worker *w, struct conn *c)
{
	for (;;) {
		if (conn_flush(w, c) != 0 || (c->closing && buf_used(&c->wbuf) == 0)) {
			conn_close(w, c);
			return false;
		}
		if (!c->reading_paused || buf_used(&c->wbuf) >= SERVER_OUT_HIGH_WATER / 2)
			break;
		c->reading_paused = false;
		w->ctx.clock_us = 0;    /* resumed later: time from now */
		if (conn_process(w, c) != 0) {
			conn_close(w, c);
			return false;
		}
	}
	if (w->srv->l0) {
		if (!c->l0c && !c->l0_checked) {
			/* sock_ops may have enrolled it after accept() returned */
			c->l0_checked = true;
			c->l0c = l0_conn_lookup(w->srv->l0, c->fd, &c->cookie);
		}
		/* Everything read is answered and sent: the kernel may answer
		 * this connection's next GETs itself. */
		if (c->l0c && !c->park && buf_used(&c->rbuf) == 0 && buf_used(&c->wbuf) == 0)
			l0_conn_publish(c->l0c, c->bytes_read);
	}
	conn_update_events(w, c);
	return true;
}

static bool conn_on_writable(struct worker *w, struct conn *c)
{
	return conn_pump(w, c);
}

/* A connection closed before it became a struct conn: free its L0 slot. */
static void server_l0_forget(struct resp_server *s, int fd)
{
	uint64_t cookie;

	if (s->l0) {
		l0_conn_lookup(s->l0, fd, &cookie);
		l0_conn_release(s->l0, cookie);
	}
}

static void worker_accept(struct worker *w)
{
	struct resp_server *s = w->srv;

	for (;;) {
		int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;
		struct epoll_event ev;
		struct conn *c;

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_warn("resp: accept: %s", strerror(errno));
			return;
		}
		atomic_fetch_add_explicit(&w->accepted, 1, memory_order_relaxed);
		if (atomic_load(&s->connected) >= atomic_load(&s->max_clients)) {
			static const char msg[] = "-ERR max number of clients reached\r\n";

			atomic_fetch_add(&s->rejected, 1);
			if (write(fd, msg, sizeof(msg) - 1) < 0) {
				/* the refusal is best effort */
			}
			server_l0_forget(s, fd);
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		if (!c) {
			server_l0_forget(s, fd);
			close(fd);
			continue;
		}
		c->fd = fd;
		buf_init(&c->rbuf, s->lim.max_query);
		buf_init(&c->wbuf, s->max_output);
		c->cl.id = atomic_fetch_add(&s->next_client_id, 1) + 1;
		c->cl.created_ms = hp_wall_ms();
		sock_peer_name(fd, true, c->cl.addr, sizeof(c->cl.addr));
		if (s->l0)
			c->l0c = l0_conn_lookup(s->l0, fd, &c->cookie);
		c->last_active_ms = hp_now_ms();
		ev.events = EPOLLIN | EPOLLRDHUP;
		ev.data.ptr = c;
		c->events = ev.events;
		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
			server_l0_forget(s, fd);
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
		atomic_fetch_add(&s->connected, 1);
	}
}

/* ---- parked clients ----------------------------------------------------------- */

static void worker_wake(struct worker *w);

/* resp_defer.park: called on the worker thread by the running command. */
static void *server_defer_park(void *arg)
{
	struct worker *w = arg;
	struct resp_server *s = w->srv;
	struct parked *p;
	struct conn *c = w->running;

	if (!c || c->park)
		return NULL;
	if (atomic_fetch_add(&s->parked_now, 1) >= atomic_load(&s->max_parked)) {
		atomic_fetch_sub(&s->parked_now, 1);
		atomic_fetch_add(&s->parked_refused, 1);
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		atomic_fetch_sub(&s->parked_now, 1);
		return NULL;
	}
	p->w = w;
	p->c = c;
	buf_init(&p->reply, 0);
	c->park = p;
	w->tickets++;
	atomic_fetch_add(&s->parked_total, 1);
	return p;
}

/* resp_defer.done: any thread; the worker picks the reply up. */
static void server_defer_done(void *ticket, struct buf *reply)
{
	struct parked *p = ticket;
	struct worker *w = p->w;

	bool first;

	p->reply = *reply;
	buf_init(reply, reply->max);
	pthread_mutex_lock(&w->done_mu);
	first = !w->done_head;
	if (w->done_tail)
		w->done_tail->next = p;
	else
		w->done_head = p;
	w->done_tail = p;
	pthread_mutex_unlock(&w->done_mu);
	/* one wakeup per batch: the worker takes the whole list */
	if (first)
		worker_wake(w);
}

/* On the worker: write the replies that came back, resume their clients. */
static void worker_resume_parked(struct worker *w)
{
	struct parked *p, *next;

	pthread_mutex_lock(&w->done_mu);
	p = w->done_head;
	w->done_head = w->done_tail = NULL;
	pthread_mutex_unlock(&w->done_mu);
	for (; p; p = next) {
		struct conn *c = p->c;

		next = p->next;
		w->tickets--;
		atomic_fetch_sub(&w->srv->parked_now, 1);
		if (c) {
			size_t n = buf_used(&p->reply);

			c->park = NULL;
			if (buf_append(&c->wbuf, buf_head(&p->reply), n) != 0) {
				atomic_fetch_add_explicit(&w->closed_limit, 1, memory_order_relaxed);
				conn_close(w, c);
			} else {
				atomic_fetch_add_explicit(&w->out_bytes, n, memory_order_relaxed);
				c->last_active_ms = hp_now_ms();
				w->ctx.clock_us = 0;
				if (conn_process(w, c) != 0)
					conn_close(w, c);
				else
					conn_pump(w, c);
			}
		}
		buf_free(&p->reply);
		free(p);
	}
}

static void worker_apply_settings(struct worker *w)
{
	struct resp_server *s = w->srv;

	pthread_mutex_lock(&s->cfg_mu);
	w->ctx.lim = s->lim;
	w->ctx.max_key_len = s->max_key_len;
	w->ctx.max_value_size = s->max_value_size;
	w->ctx.max_ttl_ms = s->max_ttl_ms;
	for (struct conn *c = w->conns; c; c = c->next) {
		c->rbuf.max = s->lim.max_query > buf_used(&c->rbuf) ? s->lim.max_query
								    : buf_used(&c->rbuf);
		c->wbuf.max = s->max_output > buf_used(&c->wbuf) ? s->max_output
								 : buf_used(&c->wbuf);
	}
	pthread_mutex_unlock(&s->cfg_mu);
}

/* Once a second: idle timeout, and during shutdown, closing what is done. */
static void worker_sweep(struct worker *w, uint64_t now)
{
	struct resp_server *s = w->srv;
	uint32_t idle_s = atomic_load(&s->idle_timeout_s);
	bool stopping = atomic_load(&s->stopping);
	uint64_t deadline = atomic_load(&s->deadline_ms);
	struct conn *c, *next;

	for (c = w->conns; c; c = next) {
		next = c->next;
		if (stopping) {
			bool idle = buf_used(&c->wbuf) == 0 && !c->park;

			if (idle || (deadline && now >= deadline))
				conn_close(w, c);
			continue;
		}
		if (idle_s && now - c->last_active_ms >= (uint64_t)idle_s * 1000u &&
		    buf_used(&c->wbuf) == 0 && !c->park) {
			atomic_fetch_add_explicit(&w->closed_idle, 1, memory_order_relaxed);
			conn_close(w, c);
		}
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct resp_server *s = w->srv;
	struct epoll_event evs[SERVER_MAX_EVENTS];
	char name[16];

	snprintf(name, sizeof(name), "hp-resp-%u", w->idx);
	pthread_setname_np(pthread_self(), name);
	for (;;) {
		bool stopping = atomic_load(&s->stopping);
		int n = epoll_wait(w->epfd, evs, SERVER_MAX_EVENTS, stopping ? 100 : 1000);
		uint64_t now;

		if (n < 0 && errno != EINTR) {
			log_error("resp: epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;

			if (p == &w->lfd) {
				worker_accept(w);
			} else if (p == &w->evfd) {
				uint64_t v;

				if (read(w->evfd, &v, sizeof(v)) < 0) {
					/* spurious wakeup: nothing to drain */
				}
				worker_resume_parked(w);
				if (atomic_load(&s->stopping) && w->lfd >= 0) {
					epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->lfd, NULL);
					close(w->lfd);
					w->lfd = -1;
				}
			} else {
				struct conn *c = p;
				uint32_t e = evs[i].events;

				if ((e & EPOLLOUT) && !conn_on_writable(w, c))
					continue;
				if (e & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))
					conn_on_readable(w, c);
			}
		}
		if (atomic_load(&w->reload_gen) != w->seen_gen) {
			w->seen_gen = atomic_load(&w->reload_gen);
			worker_apply_settings(w);
		}
		now = hp_now_ms();
		stopping = atomic_load(&s->stopping);
		if (stopping || now - w->last_sweep_ms >= 1000) {
			w->last_sweep_ms = now;
			worker_sweep(w, now);
		}
		/* loads still out will hand their tickets back to this worker */
		if (stopping && w->nconns == 0 && w->tickets == 0)
			break;
	}
	while (w->conns)
		conn_close(w, w->conns);
	worker_resume_parked(w);
	return NULL;
}

/* ---- lifecycle ------------------------------------------------------------ */

static void server_take_settings(struct resp_server *s, const struct hp_config *cfg)
{
	pthread_mutex_lock(&s->cfg_mu);
	s->lim.max_args = cfg->resp_max_args;
	s->lim.max_query = cfg->resp_max_query_buffer;
	/* Bulks are bounded by the whole query buffer so that an oversized
	 * value gets an error reply (resp_exec checks max_value_size) instead
	 * of a dropped connection. */
	s->lim.max_bulk = cfg->resp_max_query_buffer;
	s->max_key_len = cfg->resp_max_key_len;
	s->max_value_size = cfg->resp_max_value_size;
	s->max_ttl_ms = cfg->max_ttl_ms;
	s->max_output = cfg->resp_max_output_buffer;
	atomic_store(&s->max_clients, cfg->resp_max_clients);
	atomic_store(&s->idle_timeout_s, cfg->resp_idle_timeout_s);
	atomic_store(&s->max_parked, cfg->resp_max_parked_clients);
	pthread_mutex_unlock(&s->cfg_mu);
}

static void worker_free(struct worker *w)
{
	if (w->lfd >= 0)
		close(w->lfd);
	if (w->evfd >= 0)
		close(w->evfd);
	if (w->epfd >= 0)
		close(w->epfd);
	free(w->cmd.argv);
	free(w->cmd.argvlen);
	free(w->scratch);
	free(w->cmdstats);
	while (w->done_head) {
		struct parked *p = w->done_head;

		w->done_head = p->next;
		buf_free(&p->reply);
		free(p);
	}
	pthread_mutex_destroy(&w->done_mu);
}

static int worker_init(struct resp_server *s, struct worker *w, unsigned idx,
		       const char *hostport, uint16_t port)
{
	struct epoll_event ev;
	size_t cap = s->lim.max_args;

	w->srv = s;
	w->idx = idx;
	w->epfd = w->lfd = w->evfd = -1;
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->epfd < 0 || w->evfd < 0)
		return -errno;
	w->lfd = sock_listen(hostport, true, &port);
	if (w->lfd < 0)
		return w->lfd;
	/* argv arrays sized for the largest max_args a reload may set. */
	if (cap < 1024 * 1024)
		cap = 1024 * 1024 > cap * 4 ? cap * 4 : 1024 * 1024;
	w->cmd.cap = cap;
	w->cmd.argv = calloc(cap, sizeof(*w->cmd.argv));
	w->cmd.argvlen = calloc(cap, sizeof(*w->cmd.argvlen));
	w->scratch = malloc(RESP_INLINE_MAX);
	w->cmdstats = calloc(resp_command_count(), sizeof(*w->cmdstats));
	if (!w->cmd.argv || !w->cmd.argvlen || !w->scratch || !w->cmdstats)
		return -ENOMEM;
	w->cmd.scratch = w->scratch;
	w->cmd.scratch_cap = RESP_INLINE_MAX;
	w->ctx.l1 = s->l1;
	w->ctx.stats = w->cmdstats;
	w->ctx.info = server_info;
	w->ctx.info_arg = s;
	w->defer.park = server_defer_park;
	w->defer.done = server_defer_done;
	w->defer.arg = w;
	w->ctx.defer = &w->defer;
	worker_apply_settings(w);
	ev.events = EPOLLIN;
	ev.data.ptr = &w->lfd;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->lfd, &ev) != 0)
		return -errno;
	ev.data.ptr = &w->evfd;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev) != 0)
		return -errno;
	return 0;
}

struct resp_server *resp_server_start(const struct hp_config *cfg, struct l1 *l1, struct l0 *l0)
{
	struct resp_server *s;
	char host[HP_ADDR_MAX];
	uint16_t port;
	long ncpu;
	unsigned n;
	int err;

	if (config_parse_hostport(cfg->resp_listen, host, sizeof(host), &port) != 0) {
		log_error("resp: invalid listen address '%s'", cfg->resp_listen);
		return NULL;
	}
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	n = cfg->workers ? cfg->workers : (unsigned)(ncpu > 0 ? ncpu : 1);
	if (n > SERVER_MAX_WORKERS)
		n = SERVER_MAX_WORKERS;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	pthread_mutex_init(&s->cfg_mu, NULL);
	s->l1 = l1;
	s->l0 = l0;
	s->start_ms = hp_now_ms();
	snprintf(s->listen_addr, sizeof(s->listen_addr), "%s", cfg->resp_listen);
	server_take_settings(s, cfg);
	s->workers = calloc(n, sizeof(*s->workers));
	if (!s->workers)
		goto fail;
	for (unsigned i = 0; i < n; i++) {
		s->workers[i].epfd = s->workers[i].lfd = s->workers[i].evfd = -1;
		pthread_mutex_init(&s->workers[i].done_mu, NULL);
	}
	s->nworkers = n;
	for (unsigned i = 0; i < n; i++) {
		err = worker_init(s, &s->workers[i], i, cfg->resp_listen, port);
		if (err) {
			log_error("resp: cannot listen on %s: %s", cfg->resp_listen, strerror(-err));
			goto fail;
		}
		if (i == 0 && port == 0)
			port = sock_local_port(s->workers[0].lfd); /* others join this port */
	}
	s->port = sock_local_port(s->workers[0].lfd);
	for (unsigned i = 0; i < n; i++) {
		if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0) {
			log_error("resp: cannot start worker thread %u", i);
			resp_server_stop(s, 0);
			resp_server_free(s);
			return NULL;
		}
		s->workers[i].thread_started = true;
	}
	log_info("resp: listening on %s (port %u) with %u worker threads",
		 cfg->resp_listen, s->port, n);
	return s;
fail:
	resp_server_free(s);
	return NULL;
}

static void worker_wake(struct worker *w)
{
	uint64_t one = 1;

	if (w->evfd >= 0 && write(w->evfd, &one, sizeof(one)) < 0) {
		/* counter saturated: the worker is awake anyway */
	}
}

void resp_server_reload(struct resp_server *s, const struct hp_config *cfg)
{
	server_take_settings(s, cfg);
	for (unsigned i = 0; i < s->nworkers; i++) {
		atomic_fetch_add(&s->workers[i].reload_gen, 1);
		worker_wake(&s->workers[i]);
	}
}

void resp_server_stop(struct resp_server *s, uint64_t timeout_ms)
{
	if (!s)
		return;
	atomic_store(&s->deadline_ms, hp_now_ms() + timeout_ms);
	atomic_store(&s->stopping, true);
	for (unsigned i = 0; i < s->nworkers; i++)
		worker_wake(&s->workers[i]);
	for (unsigned i = 0; i < s->nworkers; i++) {
		if (s->workers[i].thread_started) {
			pthread_join(s->workers[i].thread, NULL);
			s->workers[i].thread_started = false;
		}
	}
}

void resp_server_free(struct resp_server *s)
{
	if (!s)
		return;
	if (s->workers) {
		for (unsigned i = 0; i < s->nworkers; i++)
			worker_free(&s->workers[i]);
		free(s->workers);
	}
	pthread_mutex_destroy(&s->cfg_mu);
	free(s);
}

uint16_t resp_server_port(const struct resp_server *s)
{
	return s ? s->port : 0;
}

int resp_server_stats(struct resp_server *s, struct resp_server_stats *out)
{
	unsigned ncmd = resp_command_count();

	memset(out, 0, sizeof(*out));
	out->cmd = calloc(ncmd, sizeof(*out->cmd));
	if (!out->cmd)
		return -ENOMEM;
	out->n_commands = ncmd;
	out->workers = s->nworkers;
	out->connected = atomic_load(&s->connected);
	out->rejected = atomic_load(&s->rejected);
	out->parked = atomic_load(&s->parked_now);
	out->parked_total = atomic_load(&s->parked_total);
	out->parked_refused = atomic_load(&s->parked_refused);
	for (unsigned i = 0; i < s->nworkers; i++) {
		struct worker *w = &s->workers[i];

		out->accepted += atomic_load(&w->accepted);
		out->closed_idle += atomic_load(&w->closed_idle);
		out->closed_limit += atomic_load(&w->closed_limit);
		out->proto_errors += atomic_load(&w->proto_errors);
		out->commands += atomic_load(&w->commands);
		out->bytes_in += atomic_load(&w->bytes_in);
		out->bytes_out += atomic_load(&w->bytes_out);
		out->out_buffer_bytes += atomic_load(&w->out_bytes);
		if (!w->cmdstats)
			continue;
		for (unsigned k = 0; k < ncmd; k++) {
			out->cmd[k].calls += __atomic_load_n(&w->cmdstats[k].calls, __ATOMIC_RELAXED);
			out->cmd[k].failed += __atomic_load_n(&w->cmdstats[k].failed, __ATOMIC_RELAXED);
			hist_merge(&out->cmd[k].usec, &w->cmdstats[k].usec);
		}
	}
	return 0;
}

/* INFO server / clients sections (the command module adds the others). */
static void server_info(struct buf *text, const char *section, void *arg)
{
	struct resp_server *s = arg;
	bool all = !strcmp(section, "all") || !strcmp(section, "default") ||
		   !strcmp(section, "everything");
	int rc = 0;

	if (all || !strcmp(section, "server"))
		rc |= buf_printf(text,
				 "# Server\r\nredis_version:7.0.0\r\nhotpath_version:%s\r\n"
				 "redis_mode:standalone\r\nos:Linux\r\nprocess_id:%d\r\n"
				 "tcp_port:%u\r\nuptime_in_seconds:%llu\r\n"
				 "io_threads_active:%u\r\n\r\n",
				 HOTPATH_VERSION, (int)getpid(), s->port,
				 (unsigned long long)((hp_now_ms() - s->start_ms) / 1000),
				 s->nworkers);
	if (all || !strcmp(section, "clients"))
		rc |= buf_printf(text,
				 "# Clients\r\nconnected_clients:%llu\r\nmaxclients:%u\r\n"
				 "blocked_clients:%llu\r\nrejected_connections:%llu\r\n\r\n",
				 (unsigned long long)atomic_load(&s->connected),
				 atomic_load(&s->max_clients),
				 (unsigned long long)atomic_load(&s->parked_now),
				 (unsigned long long)atomic_load(&s->rejected));
	(void)rc; /* INFO text is bounded by the reply buffer; a cut section is harmless */
}
