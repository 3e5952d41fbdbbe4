/*
 * pooler.c - the PostgreSQL pooler's event loop and protocol handling.
 *
 * What: a wire-protocol v3 proxy on pooler.listen. A client connects,
 * its SSLRequest/GSSENCRequest is answered 'N' (no TLS here: clients with
 * sslmode=prefer go on in clear, sslmode=require fail with libpq's own
 * "server does not support SSL" message), it authenticates against the
 * auth_file (SCRAM-SHA-256, md5 or trust; pgauth.c), gets the pool's
 * server parameters, a BackendKeyData of ours and ReadyForQuery. Its
 * first message borrows a server connection from the pool of (database,
 * user) (pool.c); the server goes back at the end of the transaction
 * (ReadyForQuery with status 'I' and nothing else owed: transaction
 * mode) or when the client leaves (session mode, after the reset query).
 * Cancel requests carry our key; they are forwarded with the real
 * server's key to the server the client holds at that moment.
 *
 * How: one thread, one epoll set, level-triggered, every socket
 * non-blocking - the shape PgBouncer has, because the work per message is
 * a few hundred nanoseconds and a second thread would only add locks. A
 * connection's interest set is recomputed from its state after each
 * event (pooler_update), which is also where back-pressure lives: a side
 * stops being read while the other side's output holds more than 256 KiB
 * or its server owes too many responses. Messages are framed with
 * pgwire.c: the ones the pooler must read (authentication, Parse/Bind/
 * Describe/Close in transaction mode, ReadyForQuery, ParameterStatus,
 * CommandComplete, ErrorResponse) are buffered whole up to
 * pooler.max_message_size, DataRow and CopyData are streamed through.
 * Every message sent to a server that gets an answer is recorded in the
 * server's response queue (pgstmt.c), which is how transaction ends are
 * told apart from pipelined work, how injected messages' answers are
 * swallowed and how prepared statements are renamed and re-prepared in
 * transaction mode. Objects closed during an event batch are freed after
 * it, so a pointer taken in the batch stays valid.
 *
 * A connection per transaction (pgbench -C, short-lived workers) makes
 * the login path hot, so it does little beyond the syscalls it needs: the
 * listener defers accept until the startup packet is in and it is read at
 * once, TCP_NODELAY is inherited from the listener, cancel keys and md5
 * salts come from a getrandom buffer, the pool's ParameterStatus
 * messages are serialised once, client objects are reused with their
 * buffers, and close() alone takes a socket out of the epoll set.
 *
 * Not here: TLS, replication connections, LISTEN/NOTIFY or SQL-level
 * PREPARE across transactions in transaction mode (as with PgBouncer),
 * auth_query, online restart.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include "hotpath/log.h"
#include "hotpath/sock.h"
#include "hotpath/pgwire.h"
#include "hotpath/qstats.h"
#include "pooler_int.h"

#define READ_CHUNK (64 * 1024)
#define AUTH_MSG_MAX 8192
#define MAX_EVENTS 256
#define MAX_CANCELS 256
#define TICK_MS 100
#define SLOT_BITS 20
#define SPARE_CLIENTS 64                /* client objects kept for reuse */
#define SPARE_OUT_MAX 4096              /* ... when their output buffer stayed this small */

const char *const pooler_param_names[PV_COUNT] = {
	"client_encoding", "DateStyle", "TimeZone", "IntervalStyle",
	"standard_conforming_strings", "application_name", "extra_float_digits",
};

int pooler_param_index(const char *name)
{
	for (int i = 0; i < PV_COUNT; i++)
		if (strcasecmp(pooler_param_names[i], name) == 0)
			return i;
	return -1;
}

struct pcancel {
	struct pio io;
	struct buf out;
	uint64_t deadline_ms;
	struct pcancel *next;
};

static void client_close(struct client *c);
static void welcome_del(struct client *c);
static void client_process(struct client *c);
static void server_process(struct server *s);
static int server_flush(struct server *s);
static int client_flush(struct client *c);
static void qc_server_clear(struct server *s);

/* ---- epoll plumbing ------------------------------------------------------- */

static struct pooler *io_pooler(struct pio *io)
{
	if (io->kind == PIO_CLIENT)
		return ((struct client *)io)->p;
	return ((struct server *)io)->pool->p;
}

static void io_set(struct pooler *p, struct pio *io, uint32_t ev)
{
	struct epoll_event e = { .events = ev, .data.ptr = io };

	if (io->fd < 0 || ev == io->events)
		return;
	if (epoll_ctl(p->epfd, EPOLL_CTL_MOD, io->fd, &e) != 0)
		log_debug("pooler: epoll_ctl fd %d: %s", io->fd, strerror(errno));
	io->events = ev;
}

static int io_add(struct pooler *p, struct pio *io, uint32_t ev)
{
	struct epoll_event e = { .events = ev, .data.ptr = io };

	if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, io->fd, &e) != 0)
		return -errno;
	io->events = ev;
	return 0;
}

void pooler_update(struct pio *io)
{
	struct pooler *p = io_pooler(io);
	uint32_t ev = 0;

	if (io->fd < 0)
		return;
	if (io->kind == PIO_CLIENT) {
		struct client *c = (struct client *)io;
		struct server *s = c->server;
		bool rd = c->state != CL_CLOSING && c->state != CL_WELCOME_WAIT && !c->waiting &&
			  !c->qc_parked && buf_used(&c->in) < c->in.max;

		if (s && (buf_used(&s->out) >= POOLER_OUT_HIGH ||
			  pgs_q_space(&s->q) < POOLER_Q_ROOM))
			rd = false;
		if (rd)
			ev |= EPOLLIN | EPOLLRDHUP;
		if (buf_used(&c->out))
			ev |= EPOLLOUT;
	} else {
		struct server *s = (struct server *)io;

		if (s->state != SV_CONNECTING &&
		    (!s->client || buf_used(&s->client->out) < POOLER_OUT_HIGH))
			ev |= EPOLLIN | EPOLLRDHUP;
		if (s->state == SV_CONNECTING || buf_used(&s->out))
			ev |= EPOLLOUT;
	}
	io_set(p, io, ev);
}

/* Read what is there into b (bounded by b->max). >0 bytes, 0 EOF,
 * -EAGAIN, -ENOBUFS (buffer at its bound), other -errno. */
static ssize_t io_read(int fd, struct buf *b)
{
	size_t room = READ_CHUNK;
	ssize_t n;

	if (b->max - b->len < room)
		room = b->max - b->len;
	if (room == 0)
		return -ENOBUFS;
	if (buf_reserve(b, room) != 0)
		return -ENOMEM;
	n = read(fd, b->data + b->off + b->len, room);
	if (n < 0)
		return errno == EINTR ? -EAGAIN : -errno;
	b->len += (size_t)n;
	return n;
}

/* Write as much of b as the socket takes. 0 or -errno (not EAGAIN). */
static int io_write(int fd, struct buf *b)
{
	while (buf_used(b)) {
		ssize_t n = write(fd, buf_head(b), buf_used(b));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -errno;
		}
		buf_consume(b, (size_t)n);
	}
	if (!buf_used(b))
		buf_compact(b);
	return 0;
}

/* ---- clients: errors and closing ------------------------------------------- */

/* n (<= 256) unpredictable bytes from the loop's getrandom buffer. 0 or -EIO. */
static int loop_random(struct pooler *p, void *out, size_t n)
{
	if (n > sizeof(p->rnd))
		return -EIO;
	if (p->rnd_left < n) {
		if (getrandom(p->rnd, sizeof(p->rnd), 0) != (ssize_t)sizeof(p->rnd))
			return -EIO;
		p->rnd_left = sizeof(p->rnd);
	}
	p->rnd_left -= (unsigned)n;
	memcpy(out, p->rnd + p->rnd_left, n);
	OPENSSL_cleanse(p->rnd + p->rnd_left, n);
	return 0;
}

void pooler_client_fail(struct client *c, const char *sqlstate, const char *msg)
{
	if (c->io.fd < 0 || c->state == CL_CLOSING)
		return;
	log_debug("pooler: client %s: %s", c->user[0] ? c->user : "?", msg);
	if (c->waiting && c->pool)
		pool_unqueue(c->pool, c);
	welcome_del(c);
	if (pgw_put_error(&c->out, "FATAL", sqlstate, msg) != 0) {
		client_close(c);
		return;
	}
	c->state = CL_CLOSING;
	buf_reset(&c->in);
	if (client_flush(c) < 0 || !buf_used(&c->out)) {
		client_close(c);
		return;
	}
	pooler_update(&c->io);
}

static void welcome_del(struct client *c)
{
	struct pool *pl = c->pool;

	if (!c->in_welcome || !pl)
		return;
	c->in_welcome = false;
	if (c->wprev)
		c->wprev->wnext = c->wnext;
	else
		pl->welcome = c->wnext;
	if (c->wnext)
		c->wnext->wprev = c->wprev;
	c->wprev = c->wnext = NULL;
}

static void server_unlink(struct server *s)
{
	struct client *c = s->client;

	qtrack_server_clear(s);
	qc_server_clear(s);
	if (!c)
		return;
	if (c->xact_start_us)
		hist_record(&s->pool->st.xact_us, pooler_us(s->pool->p) - c->xact_start_us);
	c->server = NULL;
	s->client = NULL;
	ST_DEC(s->pool->st.clients_active);
}

static void client_close(struct client *c)
{
	struct pooler *p = c->p;
	struct server *s = c->server;

	if (c->io.fd < 0)
		return;
	if (c->waiting)
		pool_unqueue(c->pool, c);
	welcome_del(c);
	if (s) {
		bool clean = s->status == 'I' && pgs_q_len(&s->q) == 0 && !c->stream_left &&
			     !s->stream_left && buf_used(&s->in) == 0;

		server_unlink(s);
		if (clean) {
			pool_server_free(s->pool, s);
		} else {
			pooler_server_close(s, "client disconnected inside a transaction");
		}
	}
	close(c->io.fd);                /* leaves the epoll set: the fd is never dup'ed */
	c->io.fd = -1;
	if (c->pool && c->state != CL_STARTUP && c->state != CL_AUTH_MD5 &&
	    c->state != CL_AUTH_SASL_INIT && c->state != CL_AUTH_SASL_FINAL)
		ST_DEC(c->pool->st.clients);
	if (p->slots[c->slot] == c)
		p->slots[c->slot] = NULL;
	p->nclients--;
	ST_DEC(p->g.clients);
	c->dead = p->dead_clients;
	p->dead_clients = c;
}

/* A client object for a new connection: a spare one with its buffers
 * (PgBouncer keeps its objects in slabs for the same reason: a connection
 * per transaction would otherwise allocate and free 64 KiB each time), or
 * a new one. NULL when out of memory. */
static struct client *client_alloc(struct pooler *p)
{
	struct client *c = p->spare;

	if (c) {
		struct buf in = c->in, out = c->out;

		p->spare = c->dead;
		p->nspare--;
		memset(c, 0, sizeof(*c));
		c->in = in;
		c->out = out;
		return c;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	buf_init(&c->in, p->set.max_message + READ_CHUNK);
	buf_init(&c->out, p->set.max_message + POOLER_OUT_HIGH);
	return c;
}

static void client_free(struct client *c)
{
	struct pooler *p = c->p;

	pgs_map_free(&c->stmts);
	qtrack_client_clear(c);
	if (c->qc_next)
		qcache_finish(c->p->qcache, c->qc_next, false);
	qcache_wait_drop(c->qc_wait);
	c->qc_wait = NULL;
	free(c->qc_unnamed);
	if (c->scram) {
		OPENSSL_cleanse(c->scram, sizeof(*c->scram));
		free(c->scram);
	}
	OPENSSL_cleanse(c->md5_stored, sizeof(c->md5_stored));
	if (p->nspare < SPARE_CLIENTS && !p->stopping && c->in.cap <= READ_CHUNK &&
	    c->out.cap <= SPARE_OUT_MAX) {
		buf_reset(&c->in);
		buf_reset(&c->out);
		c->dead = p->spare;
		p->spare = c;
		p->nspare++;
		return;
	}
	buf_free(&c->in);
	buf_free(&c->out);
	free(c);
}

static void spare_free(struct pooler *p)
{
	while (p->spare) {
		struct client *c = p->spare;

		p->spare = c->dead;
		buf_free(&c->in);
		buf_free(&c->out);
		free(c);
	}
	p->nspare = 0;
}

static int client_flush(struct client *c)
{
	size_t before = buf_used(&c->out);
	int rc = io_write(c->io.fd, &c->out);

	if (c->pool && before > buf_used(&c->out))
		ST_ADD(c->pool->st.bytes_out, before - buf_used(&c->out));
	return rc;
}

static int server_flush(struct server *s)
{
	size_t before = buf_used(&s->out);
	int rc = io_write(s->io.fd, &s->out);

	if (before > buf_used(&s->out))
		ST_ADD(s->pool->st.bytes_in, before - buf_used(&s->out));
	return rc;
}

/* ---- servers ----------------------------------------------------------------- */

static struct server *server_new(struct pool *pl)
{
	struct pooler *p = pl->p;
	struct server *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->pool = pl;
	s->io.kind = PIO_SERVER;
	s->io.fd = -1;
	s->status = 'I';
	buf_init(&s->in, p->set.max_message + READ_CHUNK);
	buf_init(&s->out, p->set.max_message + POOLER_OUT_HIGH);
	if (pgs_set_init(&s->stmts, p->set.max_prepared ? p->set.max_prepared : 1) != 0 ||
	    pgs_q_init(&s->q, POOLER_QUEUE_CAP, &s->stmts) != 0) {
		pgs_set_free(&s->stmts);
		free(s);
		return NULL;
	}
	s->created_ms = s->last_used_ms = s->state_since_ms = pooler_ms(p);
	return s;
}

static void server_free(struct server *s)
{
	buf_free(&s->in);
	buf_free(&s->out);
	pgs_set_free(&s->stmts);
	pgs_q_free(&s->q);
	qtrack_server_clear(s);
	qc_server_clear(s);
	free(s->scram);
	free(s);
}

static void server_stat_leave(struct server *s)
{
	struct pool *pl = s->pool;

	switch (s->state) {
	case SV_CONNECTING:
	case SV_LOGIN:
		ST_DEC(pl->st.servers_connecting);
		pl->n_connecting--;
		break;
	case SV_IDLE:
		ST_DEC(pl->st.servers_idle);
		break;
	case SV_ACTIVE:
		ST_DEC(pl->st.servers_active);
		break;
	default:
		ST_DEC(pl->st.servers_other);
		break;
	}
}

static void server_stat_enter(struct server *s, enum server_state st)
{
	struct pool *pl = s->pool;

	s->state = st;
	s->state_since_ms = pooler_ms(pl->p);
	switch (st) {
	case SV_CONNECTING:
	case SV_LOGIN:
		ST_INC(pl->st.servers_connecting);
		pl->n_connecting++;
		break;
	case SV_IDLE:
		ST_INC(pl->st.servers_idle);
		break;
	case SV_ACTIVE:
		ST_INC(pl->st.servers_active);
		break;
	default:
		ST_INC(pl->st.servers_other);
		break;
	}
}

/* Move s to state `st`, keeping the gauges right. LOGIN counts as
 * connecting; IDLE lives on the idle list, the rest on `others`. */
static void server_set_state(struct server *s, enum server_state st)
{
	struct pool *pl = s->pool;
	bool was_idle = s->state == SV_IDLE;

	if ((s->state == SV_CONNECTING || s->state == SV_LOGIN) &&
	    (st == SV_CONNECTING || st == SV_LOGIN)) {
		s->state = st;
		return;
	}
	server_stat_leave(s);
	if (was_idle && st != SV_IDLE) {
		pool_list_del(&pl->idle, s);
		pool_list_add(&pl->others, s);
	} else if (!was_idle && st == SV_IDLE) {
		pool_list_del(&pl->others, s);
		pool_list_add(&pl->idle, s);
	}
	server_stat_enter(s, st);
}

void pooler_server_close(struct server *s, const char *why)
{
	struct pool *pl = s->pool;
	struct pooler *p = pl->p;
	struct client *c = s->client;

	if (s->closed)
		return;
	s->closed = true;
	log_debug("pooler: closing server connection of %s/%s: %s",
		  p->dbs[pl->db].conf.name, pl->user, why);
	if (c) {
		char msg[300];

		server_unlink(s);
		snprintf(msg, sizeof(msg), "server connection lost: %s", why);
		pooler_client_fail(c, "08006", msg);
	}
	server_stat_leave(s);
	if (s->state == SV_IDLE)
		pool_list_del(&pl->idle, s);
	else
		pool_list_del(&pl->others, s);
	pl->n_servers--;
	ST_INC(pl->st.servers_closed);
	if (s->io.fd >= 0) {
		epoll_ctl(p->epfd, EPOLL_CTL_DEL, s->io.fd, NULL);
		close(s->io.fd);
	}
	s->io.fd = -1;
	s->dead = p->dead_servers;
	p->dead_servers = s;
}

static int resolve(struct pooler_db *d)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	char port[8];
	int rc;

	if (d->conf.host[0] == '/') {
		struct sockaddr_un *un = (struct sockaddr_un *)&d->addr;
		int n;

		memset(un, 0, sizeof(*un));
		un->sun_family = AF_UNIX;
		n = snprintf(un->sun_path, sizeof(un->sun_path), "%s/.s.PGSQL.%u", d->conf.host,
			     d->conf.port);
		if (n < 0 || (size_t)n >= sizeof(un->sun_path))
			return -ENAMETOOLONG;
		d->addrlen = sizeof(*un);
		return 0;
	}
	snprintf(port, sizeof(port), "%u", d->conf.port);
	rc = getaddrinfo(d->conf.host, port, &hints, &res);
	if (rc != 0 || !res)
		return -EHOSTUNREACH;
	memcpy(&d->addr, res->ai_addr, res->ai_addrlen);
	d->addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static int connect_to(const struct pooler_db *d)
{
	int fd = socket(d->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -errno;
	if (d->addr.ss_family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)&d->addr, d->addrlen) != 0 && errno != EINPROGRESS) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static const char *server_user(const struct pool *pl)
{
	const struct pooler_db *d = &pl->p->dbs[pl->db];

	return d->conf.user[0] ? d->conf.user : pl->user;
}

int pooler_server_connect(struct pool *pl, struct server **out)
{
	struct pooler *p = pl->p;
	struct pooler_db *d = &p->dbs[pl->db];
	const char *kv[] = { "user", server_user(pl), "database", d->conf.dbname, NULL, NULL };
	struct server *s;
	int fd;

	if (!d->addrlen && resolve(d) != 0) {
		char msg[200];

		snprintf(msg, sizeof(msg), "cannot resolve host %s of database %s", d->conf.host,
			 d->conf.name);
		pool_set_error(pl, msg);
		return -EHOSTUNREACH;
	}
	s = server_new(pl);
	if (!s)
		return -ENOMEM;
	fd = connect_to(d);
	if (fd < 0) {
		char msg[200];

		snprintf(msg, sizeof(msg), "connect to %s:%u: %s", d->conf.host, d->conf.port,
			 strerror(-fd));
		pool_set_error(pl, msg);
		server_free(s);
		return fd;
	}
	s->io.fd = fd;
	if (pgw_put_startup(&s->out, kv) != 0 || io_add(p, &s->io, EPOLLOUT) != 0) {
		close(fd);
		server_free(s);
		return -ENOMEM;
	}
	s->state = SV_CONNECTING;
	server_stat_enter(s, SV_CONNECTING);
	pool_list_add(&pl->others, s);
	pl->n_servers++;
	ST_INC(pl->st.servers_opened);
	*out = s;
	return 0;
}

/* Login failed or the server went away before it was ready. */
static void server_login_failed(struct server *s, const char *sqlstate, const char *msg)
{
	struct pool *pl = s->pool;
	char text[256];
	bool fatal_for_clients = sqlstate && (strncmp(sqlstate, "28", 2) == 0 ||
					      strcmp(sqlstate, "3D000") == 0);

	snprintf(text, sizeof(text), "server login failed: %s", msg);
	log_warn("pooler: %s/%s: %s", pl->p->dbs[pl->db].conf.name, pl->user, text);
	pool_set_error(pl, text);
	ST_INC(pl->st.server_login_failures);
	pl->next_connect_ms = pooler_ms(pl->p) + 500;
	pooler_server_close(s, text);
	/* Clients that can't be served by any retry get the reason now. */
	if (fatal_for_clients || !pl->have_welcome) {
		while (pl->welcome) {
			struct client *c = pl->welcome;

			pooler_client_fail(c, sqlstate ? sqlstate : "08006", text);
		}
	}
	if (fatal_for_clients)
		while (pl->wait_head)
			pooler_client_fail(pl->wait_head, sqlstate, text);
}

static int server_send_password(struct server *s, const char *pw)
{
	long at = pgw_begin(&s->out, 'p');

	if (at < 0 || pgw_put_str(&s->out, pw))
		return -ENOBUFS;
	pgw_end(&s->out, at);
	return 0;
}

/* The password the pooler logs in with, or NULL. md5_ok: an md5 hash
 * from the auth_file is usable (md5 method only). */
static const char *server_password(struct server *s, bool md5_ok)
{
	struct pool *pl = s->pool;
	struct pooler_db *d = &pl->p->dbs[pl->db];
	const struct pga_user *u;

	if (d->password[0])
		return d->password;
	u = pga_userlist_find(pl->p->users, server_user(pl));
	if (u && (u->kind == PGA_PLAIN || (md5_ok && u->kind == PGA_MD5)))
		return u->pass;
	return NULL;
}

static int server_auth(struct server *s, const uint8_t *body, size_t n)
{
	struct pgw_rd r;
	uint32_t code;
	const char *pw;
	char out[PGA_MSG_MAX], md5[36], stored[36];
	int len;

	pgw_rd_init(&r, body, n);
	code = pgw_get_u32(&r);
	if (r.bad)
		return -EPROTO;
	switch (code) {
	case PGW_AUTH_OK:
		return 0;
	case PGW_AUTH_CLEARTEXT:
		pw = server_password(s, false);
		if (!pw)
			return -ENOKEY;
		return server_send_password(s, pw);
	case PGW_AUTH_MD5: {
		const uint8_t *salt = pgw_get_bytes(&r, 4);

		pw = server_password(s, true);
		if (!salt)
			return -EPROTO;
		if (!pw)
			return -ENOKEY;
		if (strncmp(pw, "md5", 3) == 0 && strlen(pw) == 35)
			memcpy(stored, pw, 36);
		else
			pga_md5_stored(server_user(s->pool), pw, stored);
		pga_md5_response(stored, salt, md5);
		return server_send_password(s, md5);
	}
	case PGW_AUTH_SASL: {
		bool scram = false;
		long at;

		for (;;) {
			const char *mech = pgw_get_str(&r, NULL);

			if (r.bad || !*mech)
				break;
			if (strcmp(mech, "SCRAM-SHA-256") == 0)
				scram = true;
		}
		if (!scram)
			return -EOPNOTSUPP;
		pw = server_password(s, false);
		if (!pw)
			return -ENOKEY;
		s->scram = calloc(1, sizeof(*s->scram));
		if (!s->scram)
			return -ENOMEM;
		len = pga_scram_client_first(s->scram, NULL, out, sizeof(out));
		if (len < 0)
			return len;
		at = pgw_begin(&s->out, 'p');
		if (at < 0 || pgw_put_str(&s->out, "SCRAM-SHA-256") ||
		    pgw_put_u32(&s->out, (uint32_t)len) || pgw_put_bytes(&s->out, out, (size_t)len))
			return -ENOBUFS;
		pgw_end(&s->out, at);
		return 0;
	}
	case PGW_AUTH_SASL_CONTINUE: {
		long at;

		pw = server_password(s, false);
		if (!s->scram || !pw)
			return -EPROTO;
		len = pga_scram_client_final(s->scram, pw, (const char *)body + 4, n - 4, out,
					     sizeof(out));
		if (len < 0)
			return len;
		at = pgw_begin(&s->out, 'p');
		if (at < 0 || pgw_put_bytes(&s->out, out, (size_t)len))
			return -ENOBUFS;
		pgw_end(&s->out, at);
		return 0;
	}
	case PGW_AUTH_SASL_FINAL:
		if (!s->scram)
			return -EPROTO;
		len = pga_scram_client_verify(s->scram, (const char *)body + 4, n - 4);
		hp_free_null(&s->scram);
		return len;
	default:
		return -EOPNOTSUPP;
	}
}

static void welcome_store(struct pool *pl, const char *name, const char *value)
{
	unsigned i;

	if (strlen(name) >= POOLER_PARAM_LEN || strlen(value) >= POOLER_PARAM_LEN)
		return;
	for (i = 0; i < pl->n_welcome; i++)
		if (strcmp(pl->wname[i], name) == 0)
			break;
	if (i == pl->n_welcome) {
		if (pl->n_welcome == POOLER_WELCOME_MAX)
			return;
		pl->n_welcome++;
	}
	snprintf(pl->wname[i], POOLER_PARAM_LEN, "%s", name);
	snprintf(pl->wvalue[i], POOLER_PARAM_LEN, "%s", value);
}

/* Serialise the pool's welcome (its ParameterStatus messages) once, so a
 * login copies bytes instead of building messages. 0 or -ENOMEM. */
static int welcome_build(struct pool *pl)
{
	buf_init(&pl->wmsg, 0);
	for (unsigned i = 0; i < pl->n_welcome; i++) {
		pl->woff[i] = (uint16_t)buf_used(&pl->wmsg);
		pl->widx[i] = (int8_t)pooler_param_index(pl->wname[i]);
		if (pgw_put_param_status(&pl->wmsg, pl->wname[i], pl->wvalue[i]) != 0) {
			buf_free(&pl->wmsg);
			return -ENOMEM;
		}
	}
	pl->woff[pl->n_welcome] = (uint16_t)buf_used(&pl->wmsg);
	return 0;
}

/* One message from a server that is still logging in. 0 or closed (-1). */
static int server_login_msg(struct server *s, char type, const uint8_t *body, size_t n)
{
	struct pool *pl = s->pool;
	struct pgw_rd r;
	int rc;

	switch (type) {
	case 'R':
		rc = server_auth(s, body, n);
		if (rc) {
			char msg[200];

			snprintf(msg, sizeof(msg), "%s",
				 rc == -ENOKEY ? "the server asks for a password and none is "
				 "configured (set password or password_file in [database.NAME], "
				 "or a plaintext entry in auth_file)" :
				 rc == -EACCES ? "the server's SCRAM signature is wrong" :
				 rc == -EOPNOTSUPP ? "the server asks for an authentication method "
				 "the pooler does not support" : "malformed authentication message");
			server_login_failed(s, "28000", msg);
			return -1;
		}
		if (buf_used(&s->out) && server_flush(s) < 0) {
			server_login_failed(s, "08006", "write to server failed");
			return -1;
		}
		return 0;
	case 'S': {
		const char *name, *value;
		int idx;

		pgw_rd_init(&r, body, n);
		name = pgw_get_str(&r, NULL);
		value = pgw_get_str(&r, NULL);
		if (r.bad)
			return 0;
		idx = pooler_param_index(name);
		if (idx >= 0)
			snprintf(s->params[idx], POOLER_PARAM_LEN, "%s", value);
		if (!pl->have_welcome)
			welcome_store(pl, name, value);
		return 0;
	}
	case 'K':
		pgw_rd_init(&r, body, n);
		s->be_pid = pgw_get_u32(&r);
		s->be_key = pgw_get_u32(&r);
		return 0;
	case 'E': {
		const char *m = pgw_error_field(body, n, 'M'), *code = pgw_error_field(body, n, 'C');

		server_login_failed(s, code, m ? m : "error without message");
		return -1;
	}
	case 'N':
		return 0;
	case 'Z':
		s->status = n ? (char)body[0] : 'I';
		s->dirty = false;
		if (!pl->have_welcome) {
			if (welcome_build(pl) != 0) {
				server_login_failed(s, "53200", "out of memory");
				return -1;
			}
			for (int i = 0; i < PV_COUNT; i++)
				memcpy(pl->defaults[i], s->params[i], POOLER_PARAM_LEN);
			pl->have_welcome = true;
		}
		log_debug("pooler: server connection for %s/%s ready (backend pid %u)",
			  pl->p->dbs[pl->db].conf.name, pl->user, s->be_pid);
		pool_server_ready(pl, s);
		return 0;
	default:
		server_login_failed(s, "08P01", "unexpected message during login");
		return -1;
	}
}

/* Append a quoted SQL literal. */
static int put_literal(struct buf *b, const char *v)
{
	int rc = buf_append_str(b, "'");

	for (; !rc && *v; v++)
		rc = *v == '\'' ? buf_append(b, "''", 2) : buf_append(b, v, 1);
	return rc ? rc : buf_append_str(b, "'");
}

/* Bring the server's session parameters in line with the client's. */
static int server_sync_params(struct server *s, struct client *c)
{
	struct buf q;
	int rc = 0;

	buf_init(&q, 4096);
	for (int i = 0; i < PV_COUNT && !rc; i++) {
		if (!(c->pset & 1u << i) || strcmp(c->params[i], s->params[i]) == 0)
			continue;
		rc = buf_printf(&q, "SET %s TO ", pooler_param_names[i]);
		if (!rc)
			rc = put_literal(&q, c->params[i]);
		if (!rc)
			rc = buf_append_str(&q, ";");
		memcpy(s->params[i], c->params[i], POOLER_PARAM_LEN);
	}
	if (!rc && buf_used(&q)) {
		rc = buf_append(&q, "", 1);
		if (!rc)
			rc = pgw_put_query(&s->out, buf_head(&q));
		if (!rc)
			rc = pgs_q_push(&s->q, PGS_QUERY_HIDDEN, NULL, 0) < 0 ? -ENOBUFS : 0;
	}
	buf_free(&q);
	return rc;
}

void pooler_link(struct client *c, struct server *s)
{
	c->server = s;
	s->client = c;
	server_set_state(s, SV_ACTIVE);
	s->dirty = true;
	s->last_used_ms = pooler_ms(s->pool->p);
	c->xact_start_us = pooler_us(s->pool->p);
	ST_INC(s->pool->st.clients_active);
	if (server_sync_params(s, c) != 0)
		s->must_close = true;
}

void pooler_server_idle(struct server *s)
{
	server_set_state(s, SV_IDLE);
	s->last_used_ms = pooler_ms(s->pool->p);
	pooler_update(&s->io);
}

void pooler_server_reset(struct server *s)
{
	struct pooler *p = s->pool->p;

	server_set_state(s, SV_RESET);
	if (pgw_put_query(&s->out, p->set.reset_query) != 0 ||
	    pgs_q_push(&s->q, PGS_QUERY_HIDDEN, NULL, 0) != 0 || server_flush(s) < 0) {
		pooler_server_close(s, "reset query could not be sent");
		return;
	}
	/* DISCARD ALL (or whatever resets) puts parameters back to the
	 * login defaults; prepared statements are gone in any case only if
	 * the query says so: the CommandComplete tag is checked. */
	for (int i = 0; i < PV_COUNT; i++)
		memcpy(s->params[i], s->pool->defaults[i], POOLER_PARAM_LEN);
	pooler_update(&s->io);
}

/* A message from a server in use (or resetting). Returns 1 when the
 * server was released or closed, else 0. The message was consumed. */
static int server_msg(struct server *s, char type, const uint8_t *d, size_t total)
{
	struct pool *pl = s->pool;
	struct client *c = s->client;
	const uint8_t *body = d + PGW_HDR;
	size_t n = total - PGW_HDR;
	uint64_t done = 0;
	bool herr = false;
	int act = pgs_q_on_server(&s->q, type, &done, &herr);

	if (act < 0) {
		log_warn("pooler: %s/%s: server sent '%c' when nothing expected it; closing",
			 pl->p->dbs[pl->db].conf.name, pl->user, type);
		pooler_server_close(s, "protocol out of step");
		return 1;
	}
	switch (type) {
	case 'Z':
		s->status = n ? (char)body[0] : 'I';
		break;
	case 'S': {
		struct pgw_rd r;
		const char *name, *value;
		int idx;

		pgw_rd_init(&r, body, n);
		name = pgw_get_str(&r, NULL);
		value = pgw_get_str(&r, NULL);
		idx = r.bad ? -1 : pooler_param_index(name);
		if (idx >= 0 && strlen(value) < POOLER_PARAM_LEN) {
			memcpy(s->params[idx], value, strlen(value) + 1);
			if (c && act == PGS_FORWARD) {
				memcpy(c->params[idx], value, strlen(value) + 1);
				c->pset |= 1u << idx;
			}
		}
		break;
	}
	case 'C':
		if ((n >= 12 && memcmp(body, "DISCARD ALL", 12) == 0) ||
		    (n >= 15 && memcmp(body, "DEALLOCATE ALL", 15) == 0)) {
			pgs_set_clear(&s->stmts);
			/* statements kept for tracking only are gone on the server */
			if (c && act == PGS_FORWARD && !(pl->p->set.pool_mode == HP_POOL_TRANSACTION &&
							 pl->p->set.max_prepared > 0))
				pgs_map_clear(&c->stmts);
		}
		break;
	case 'E':
		if (herr) {
			const char *m = pgw_error_field(body, n, 'M');

			log_warn("pooler: %s/%s: a statement the pooler sent failed: %s",
				 pl->p->dbs[pl->db].conf.name, pl->user, m ? m : "?");
			if (s->state != SV_ACTIVE)
				s->must_close = true;
		}
		break;
	default:
		break;
	}
	if (s->qc_cap && act == PGS_FORWARD && c) {
		qcap_add(s->qc_cap, d, total);
		if (type == 'E')
			qcap_abort(s->qc_cap);
	}
	if (act == PGS_FORWARD && c) {
		if (type == 'C' || type == 'E' || type == 'I' || type == 's')
			qtrack_server(s, type, body, n);
		if (buf_append(&c->out, d, total) != 0) {
			pooler_server_close(s, "client output buffer full");
			return 1;
		}
	}
	if (c && pgs_q_drain_fake(&s->q, &c->out) != 0) {
		pooler_server_close(s, "client output buffer full");
		return 1;
	}
	if (done && c && s->qc_cap && type == 'Z') {
		qcache_finish(pl->p->qcache, s->qc_cap, s->status == 'I');
		s->qc_cap = NULL;
	}
	if (type == 'Z' && s->status == 'I' && (s->qc_pend.n || s->qc_pend.flush))
		qcache_txn_end(pl->p->qcache, pl->p->dbs[pl->db].conf.name, &s->qc_pend);
	if (done && c) {
		qtrack_done(s);
		pool_note_query(pl, pooler_us(pl->p) - done);
		if (type == 'Z' && s->status == 'I')
			ST_INC(pl->st.transactions);
	}
	if (type != 'Z' || pgs_q_len(&s->q) || s->status != 'I')
		return 0;
	/* Nothing owed and no transaction open. */
	if (s->state == SV_ACTIVE) {
		if (pl->p->set.pool_mode != HP_POOL_TRANSACTION || !c)
			return 0;
		server_unlink(s);
		s->last_used_ms = pooler_ms(pl->p);
		pool_server_free(pl, s);
		return 1;
	}
	if (s->state == SV_RESET || s->state == SV_CHECK) {
		s->dirty = false;
		pool_server_free(pl, s);
		return 1;
	}
	return 0;
}

static bool server_streamable(char type)
{
	return type == 'D' || type == 'd';
}

static void server_process(struct server *s)
{
	struct pooler *p = s->pool->p;
	struct client *c0 = s->client;

	while (s->io.fd >= 0 && buf_used(&s->in)) {
		struct client *c = s->client;
		const uint8_t *d = (const uint8_t *)buf_head(&s->in);
		size_t avail = buf_used(&s->in), total;
		char type;
		int rc;

		if (c && buf_used(&c->out) >= POOLER_OUT_HIGH)
			break;
		if (s->stream_left) {
			size_t k = avail < s->stream_left ? avail : s->stream_left;

			if (c && !s->stream_drop && buf_append(&c->out, d, k) != 0) {
				pooler_server_close(s, "client output buffer full");
				break;
			}
			buf_consume(&s->in, k);
			s->stream_left -= k;
			continue;
		}
		rc = pgw_frame(d, avail, p->set.max_message, &type, &total);
		if (rc == PGW_NEED_MORE)
			break;
		if (rc < 0) {
			pooler_server_close(s, rc == -EMSGSIZE ? "server message larger than "
					    "pooler.max_message_size" : "malformed server message");
			break;
		}
		if (total > avail && server_streamable(type) &&
		    (s->state == SV_ACTIVE || s->state == SV_RESET || s->state == SV_CHECK)) {
			uint64_t done;
			bool herr;
			int act = pgs_q_on_server(&s->q, type, &done, &herr);

			if (act < 0) {
				pooler_server_close(s, "protocol out of step");
				break;
			}
			if (act == PGS_FORWARD && c && buf_append(&c->out, d, avail) != 0) {
				pooler_server_close(s, "client output buffer full");
				break;
			}
			if (s->qc_cap)
				qcap_abort(s->qc_cap);   /* a row larger than the buffer: too big */
			buf_consume(&s->in, avail);
			s->stream_left = total - avail;
			s->stream_drop = act != PGS_FORWARD;
			continue;
		}
		if (total > avail)
			break;
		if (s->state == SV_LOGIN) {
			rc =  server_login_msg(s, type, d + PGW_HDR, total - PGW_HDR);
			if (s->io.fd >= 0)
				buf_consume(&s->in, total);
			if (rc < 0)
				break;
			continue;
		}
		if (s->state == SV_IDLE) {
			/* Unsolicited: a FATAL before the server closes, or a notice. */
			if (type == 'E') {
				const char *m = pgw_error_field(d + PGW_HDR, total - PGW_HDR, 'M');

				pool_set_error(s->pool, m ? m : "server error");
				buf_consume(&s->in, total);
				pooler_server_close(s, m ? m : "server error while idle");
				break;
			}
			buf_consume(&s->in, total);
			continue;
		}
		/* server_msg may hand s to a waiting client, which only
		 * appends to s->out: the message stays valid until consumed. */
		server_msg(s, type, d, total);
		if (s->io.fd >= 0)
			buf_consume(&s->in, total);
	}
	if (c0 && c0->io.fd >= 0) {
		if (client_flush(c0) < 0)
			client_close(c0);
		else
			pooler_update(&c0->io);
	}
	if (s->io.fd >= 0 && s->client && s->client != c0) {
		if (client_flush(s->client) < 0)
			client_close(s->client);
		else
			pooler_update(&s->client->io);
	}
	if (s->io.fd >= 0) {
		if (buf_used(&s->out) && server_flush(s) < 0)
			pooler_server_close(s, "write to server failed");
		else
			pooler_update(&s->io);
	}
	/* Released: the old client may have more requests buffered. */
	if (c0 && c0->io.fd >= 0 && !c0->server && buf_used(&c0->in) && c0->state == CL_READY)
		client_process(c0);
}

/* ---- client messages -------------------------------------------------------- */

/* Evict if needed, then inject a Parse of st on s (its answer swallowed
 * when `hidden`). 0 or -ENOBUFS. */
static int server_prepare(struct server *s, const struct pgs_stmt *st, bool hidden)
{
	struct pgs_id ev;
	int r = pgs_set_add(&s->stmts, &st->id, false, &ev);

	if (r == 1) {
		char name[PGS_SNAME_LEN];

		pgs_id_name(&ev, name);
		r = pgs_q_push(&s->q, PGS_CLOSE_HIDDEN, &ev, 0);
		if (r < 0)
			return r;
		if (r == 0 && pgw_put_target(&s->out, 'C', 'S', name) != 0)
			return -ENOBUFS;
		if (r == 1)
			pgs_set_add(&s->stmts, &ev, true, NULL);
	}
	r = pgs_q_push(&s->q, hidden ? PGS_PARSE_HIDDEN : PGS_PARSE, &st->id, 0);
	if (r < 0)
		return r;
	if (r == 1) {
		pgs_set_del(&s->stmts, &st->id);
		return 0;
	}
	if (hidden)
		ST_INC(s->pool->st.stmt_reprepares);
	else
		ST_INC(s->pool->st.stmt_prepares);
	return pgw_put_parse(&s->out, st->sname, st->rest, st->rest_len);
}

/* Transaction mode: a named statement used by Bind/Describe must exist on s. */
static int server_need(struct server *s, const struct pgs_stmt *st)
{
	if (pgs_set_has(&s->stmts, &st->id))
		return 0;
	return server_prepare(s, st, true);
}

/* ---- result cache (qcache.c) ------------------------------------------------- */

/* A server connection leaves its client: forget a capture; writes of an
 * unfinished transaction drop their tables' entries once more. */
static void qc_server_clear(struct server *s)
{
	struct pooler *p = s->pool->p;

	if (!p->qcache)
		return;
	if (s->qc_cap)
		qcache_finish(p->qcache, s->qc_cap, false);
	s->qc_cap = NULL;
	if (s->qc_pend.n || s->qc_pend.flush)
		qcache_txn_end(p->qcache, p->dbs[s->pool->db].conf.name, &s->qc_pend);
}

/* An extended-protocol request at d, whole in the buffer, of the shape
 * [Parse ""] Bind [Describe] Execute Sync, running the unnamed statement
 * it parses or a named statement the client prepared earlier: look it up
 * with everything that shapes its answer in the key. A named Parse is not
 * answered (the server must get it). On a hit the unnamed statement the
 * client believes prepared is not on the server: it is kept to be sent
 * before anything else uses it. */
static int qc_try_batch(struct client *c, const uint8_t *d, size_t avail)
{
	struct pooler *p = c->p;
	struct pgw_batch bt;
	const uint8_t *rest;
	size_t rest_len, tl;
	const void *nul;
	struct iovec ext[3];
	char shape[16];
	int n, rc;

	if (pgw_parse_batch(d, avail, p->set.max_message, &bt) != 1 || bt.bind.portal[0] ||
	    bt.portal[0] || (bt.desc == 'P' && bt.desc_name[0]) ||
	    (bt.desc == 'S' && strcmp(bt.desc_name, bt.bind.stmt) != 0))
		return 0;
	if (bt.has_parse) {
		if (bt.parse.name[0] || bt.bind.stmt[0])
			return 0;
		rest = bt.parse.rest;
		rest_len = bt.parse.rest_len;
	} else {
		const struct pgs_stmt *st = bt.bind.stmt[0] ? pgs_map_get(&c->stmts, bt.bind.stmt)
							    : NULL;

		if (!st)
			return 0;
		rest = st->rest;
		rest_len = st->rest_len;
	}
	nul = memchr(rest, '\0', rest_len);
	if (!nul)
		return 0;
	tl = (size_t)((const uint8_t *)nul - rest);
	/* which answers come (ParseComplete? which Describe?), the row limit,
	 * the parameter types, then the Bind's formats, values and result
	 * formats */
	n = snprintf(shape, sizeof(shape), "%c%c%08x", bt.has_parse ? 'P' : '-',
		     bt.desc ? bt.desc : '-', bt.max_rows);
	ext[0] = (struct iovec){ shape, (size_t)n };
	ext[1] = (struct iovec){ (void *)(rest + tl + 1), rest_len - tl - 1 };
	ext[2] = (struct iovec){ (void *)bt.bind.rest, bt.bind.rest_len };
	rc = qcache_lookup(p->qcache, p->dbs[c->db].conf.name, c->user, c->params,
			   sizeof(c->params), (const char *)rest, tl, ext, 3, &c->out, &c->qc_next,
			   &c->qc_wait, c);
	if (rc != 1)
		return rc;
	if (bt.has_parse) {
		qtrack_parse(c, &bt.parse);
		if (c->qc_unnamed_cap < rest_len) {
			uint8_t *nb = realloc(c->qc_unnamed, rest_len);

			if (!nb)
				return -1;
			c->qc_unnamed = nb;
			c->qc_unnamed_cap = rest_len;
		}
		memcpy(c->qc_unnamed, rest, rest_len);
		c->qc_unnamed_len = rest_len;
	}
	buf_consume(&c->in, bt.total);
	return 1;
}

/* The request at the head of c->in: answer it from the cache (1), park
 * it while its lookup reads L2 (QCACHE_WAIT: c->qc_parked until
 * pooler_qc_ready), or let it go on (0), maybe with a capture waiting in
 * c->qc_next. Only at a request boundary, outside a transaction block and
 * on a server connection that owes nothing. */
static int qc_try(struct client *c, const uint8_t *d, size_t avail)
{
	struct pooler *p = c->p;
	struct server *s = c->server;
	size_t total, len;
	char type;
	int rc;

	if (c->qc_next || c->ext_open)
		return 0;               /* looked up already, or inside a request */
	if (s && (s->status != 'I' || pgs_q_len(&s->q) || s->state != SV_ACTIVE))
		return 0;
	if (d[0] != 'Q') {
		rc = qc_try_batch(c, d, avail);
		if (rc < 0)
			pooler_client_fail(c, "53200", "pooler out of memory");
	} else {
		rc = pgw_frame(d, avail, p->set.max_message, &type, &total);
		if (rc != 0 || total > avail || total <= PGW_HDR)
			return 0;
		len = strnlen((const char *)d + PGW_HDR, total - PGW_HDR);
		rc = qcache_lookup(p->qcache, p->dbs[c->db].conf.name, c->user, c->params,
				   sizeof(c->params), (const char *)d + PGW_HDR, len, NULL, 0,
				   &c->out, &c->qc_next, &c->qc_wait, c);
		if (rc == 1)
			buf_consume(&c->in, total);
	}
	if (rc == QCACHE_WAIT)
		c->qc_parked = true;
	return rc < 0 ? 1 : rc;
}

/* The L2 read of a parked request is back (pooler thread): run it again. */
static void pooler_qc_ready(void *owner)
{
	struct client *c = owner;

	c->qc_parked = false;
	if (c->io.fd >= 0)
		client_process(c);
}

/* The dispatcher's thread: wake the loop to drain the answers. */
static void pooler_qc_wake(void *arg)
{
	struct pooler *p = arg;
	uint64_t one = 1;

	if (write(p->wake.fd, &one, sizeof(one)) < 0) {
		/* saturated: the loop is awake anyway */
	}
}

/* The first message of a request that was looked up goes to s: capture
 * its answer if s owes nothing before it (everything s forwards up to the
 * next ReadyForQuery is then this request's answer). */
static void qc_attach(struct client *c, struct server *s)
{
	struct qcap *cap = c->qc_next;

	c->qc_next = NULL;
	if (!pgs_q_len(&s->q) && !s->qc_cap && s->status == 'I')
		s->qc_cap = cap;
	else
		qcache_finish(c->p->qcache, cap, false);
}

/* An unnamed statement answered from the cache is about to be used by a
 * Bind or Describe without a Parse of its own: prepare it on s first. */
static int qc_unnamed_restore(struct client *c, struct server *s)
{
	size_t len = c->qc_unnamed_len;
	int r = pgs_q_push(&s->q, PGS_PARSE_HIDDEN, NULL, 0);

	c->qc_unnamed_len = 0;
	if (r < 0)
		return r;
	return r == 1 ? 0 : pgw_put_parse(&s->out, "", c->qc_unnamed, len);
}

static int push(struct server *s, enum pgs_kind k, uint64_t t)
{
	return pgs_q_push(&s->q, k, NULL, t) < 0 ? -ENOBUFS : 0;
}

/* One whole client message while linked to s. 0, or -1 when c was
 * closed or failed. */
static int client_msg(struct client *c, struct server *s, char type, const uint8_t *d,
		      size_t total)
{
	struct pooler *p = c->p;
	const uint8_t *body = d + PGW_HDR;
	size_t n = total - PGW_HDR;
	bool rename = p->set.pool_mode == HP_POOL_TRANSACTION && p->set.max_prepared > 0;
	/* Not renaming (session mode, or max_prepared_statements = 0): named
	 * statements go to the server as they are, and their texts are kept
	 * only so statistics and the result cache know what a Bind runs. */
	bool track = !rename && (p->qstats || p->qcache);
	int rc = 0;

	if (c->qc_next)
		qc_attach(c, s);
	if (type == 'S' || type == 'Q' || type == 'F')
		c->ext_open = false;
	else if (type == 'P' || type == 'B' || type == 'D' || type == 'E' || type == 'C' ||
		 type == 'H')
		c->ext_open = true;
	switch (type) {
	case 'Q':
	case 'F':
		rc = push(s, PGS_QUERY, pooler_us(p));
		if (!rc)
			qtrack_query(c, s, type, body, n);
		if (!rc && p->qcache && type == 'Q')
			(void)qcache_note_write(p->qcache, p->dbs[c->db].conf.name, (const char *)body,
						strnlen((const char *)body, n), &s->qc_pend);
		break;
	case 'S':
		rc = push(s, PGS_SYNC, pooler_us(p));
		if (!rc)
			qtrack_sync(c, s);
		break;
	case 'E':
		rc = push(s, PGS_EXECUTE, 0);
		if (!rc)
			qtrack_execute(c, s);
		break;
	case 'P': {
		struct pgw_parse ps;
		struct pgs_stmt *st;

		if (pgw_parse_parse(body, n, &ps) != 0) {
			pooler_client_fail(c, "08P01", "malformed Parse message");
			return -1;
		}
		qtrack_parse(c, &ps);
		if (!ps.name[0])
			c->qc_unnamed_len = 0;  /* replaced on the server */
		if (!rename || !ps.name[0]) {
			/* over the bound: the name is forgotten, its Binds count
			 * as unknown (no statistics, the cache assumes a write) */
			if (track && ps.name[0] &&
			    pgs_map_put(&c->stmts, ps.name, ps.rest, ps.rest_len, &st) != 0)
				st = NULL;
			rc = push(s, PGS_PARSE, 0);
			break;
		}
		rc = pgs_map_put(&c->stmts, ps.name, ps.rest, ps.rest_len, &st);
		if (rc == -ENOSPC) {
			pooler_client_fail(c, "53400", "too many prepared statements for one "
					   "client (pooler.max_prepared_statements, "
					   "pooler.max_message_size)");
			return -1;
		}
		if (rc)
			break;
		if (pgs_set_has(&s->stmts, &st->id)) {
			rc = pgs_q_push(&s->q, PGS_PARSE_FAKE, NULL, 0) < 0 ? -ENOBUFS : 0;
			if (!rc)
				rc = pgs_q_drain_fake(&s->q, &c->out);
		} else {
			rc = server_prepare(s, st, false);
		}
		return rc ? (pooler_client_fail(c, "53200", "pooler buffer full"), -1) : 0;
	}
	case 'B': {
		struct pgw_bind b;
		struct pgs_stmt *st;

		if (pgw_parse_bind(body, n, &b) != 0) {
			pooler_client_fail(c, "08P01", "malformed Bind message");
			return -1;
		}
		st = (rename || track) && b.stmt[0] ? pgs_map_get(&c->stmts, b.stmt) : NULL;
		qtrack_bind(c, &b, st);
		if (p->qcache) {
			size_t tl;
			const char *text = qtrack_bind_text(c, &b, st, &tl);

			/* a statement we do not know may write anything */
			(void)qcache_note_write(p->qcache, p->dbs[c->db].conf.name, text, tl,
						&s->qc_pend);
		}
		if (!b.stmt[0] && c->qc_unnamed_len && qc_unnamed_restore(c, s) != 0) {
			pooler_client_fail(c, "53200", "pooler buffer full");
			return -1;
		}
		if (!st || !rename) {
			rc = push(s, PGS_BIND, 0);
			break;
		}
		rc = server_need(s, st);
		if (!rc)
			rc = push(s, PGS_BIND, 0);
		if (!rc)
			rc = pgw_put_bind(&s->out, b.portal, st->sname, b.rest, b.rest_len);
		return rc ? (pooler_client_fail(c, "53200", "pooler buffer full"), -1) : 0;
	}
	case 'D':
	case 'C': {
		struct pgw_target t;
		struct pgs_stmt *st;

		if (pgw_parse_target(body, n, &t) != 0) {
			pooler_client_fail(c, "08P01", "malformed Describe/Close message");
			return -1;
		}
		st = rename && t.kind == 'S' && t.name[0] ? pgs_map_get(&c->stmts, t.name) : NULL;
		if (track && type == 'C' && t.kind == 'S' && t.name[0])
			pgs_map_del(&c->stmts, t.name);
		if (t.kind == 'S' && !t.name[0] && c->qc_unnamed_len &&
		    qc_unnamed_restore(c, s) != 0) {
			pooler_client_fail(c, "53200", "pooler buffer full");
			return -1;
		}
		if (type == 'D') {
			if (!st) {
				rc = push(s, t.kind == 'S' ? PGS_DESC_STMT : PGS_DESC_PORTAL, 0);
				break;
			}
			rc = server_need(s, st);
			if (!rc)
				rc = push(s, PGS_DESC_STMT, 0);
			if (!rc)
				rc = pgw_put_target(&s->out, 'D', 'S', st->sname);
		} else {
			if (!st) {
				rc = push(s, PGS_CLOSE, 0);
				break;
			}
			/* Keep the server's statement for whoever prepares it next. */
			pgs_map_del(&c->stmts, t.name);
			rc = pgs_q_push(&s->q, PGS_CLOSE_FAKE, NULL, 0) < 0 ? -ENOBUFS : 0;
			if (!rc)
				rc = pgs_q_drain_fake(&s->q, &c->out);
		}
		return rc ? (pooler_client_fail(c, "53200", "pooler buffer full"), -1) : 0;
	}
	default:
		break;
	}
	if (!rc)
		rc = buf_append(&s->out, d, total);
	if (rc) {
		pooler_client_fail(c, "53200", "pooler buffer full");
		return -1;
	}
	return 0;
}

static void client_process(struct client *c)
{
	struct pooler *p = c->p;
	struct server *s = NULL;

	while (c->io.fd >= 0 && c->state == CL_READY && buf_used(&c->in) && !c->qc_parked) {
		const uint8_t *d = (const uint8_t *)buf_head(&c->in);
		size_t avail = buf_used(&c->in), total;
		char type;
		int rc;

		if (p->qcache && !c->stream_left && avail >= PGW_HDR &&
		    (d[0] == 'Q' || d[0] == 'P' || d[0] == 'B') &&
		    (rc = qc_try(c, d, avail)) != 0) {
			if (rc == QCACHE_WAIT)
				break;          /* parked until its L2 read is back */
			continue;               /* answered from the result cache */
		}
		s = c->server;
		if (!s) {
			if (avail >= PGW_HDR && d[0] == 'X') {
				client_close(c);
				return;
			}
			s = pool_acquire(c->pool, c);
			if (!s)
				break;              /* queued; resumed by pool_server_free */
		}
		if (buf_used(&s->out) >= POOLER_OUT_HIGH || pgs_q_space(&s->q) < POOLER_Q_ROOM)
			break;
		if (c->stream_left) {
			size_t k = avail < c->stream_left ? avail : c->stream_left;

			if (buf_append(&s->out, d, k) != 0) {
				pooler_client_fail(c, "53200", "pooler buffer full");
				return;
			}
			buf_consume(&c->in, k);
			c->stream_left -= k;
			continue;
		}
		rc = pgw_frame(d, avail, p->set.max_message, &type, &total);
		if (rc == PGW_NEED_MORE)
			break;
		if (rc < 0) {
			pooler_client_fail(c, "08P01", rc == -EMSGSIZE ?
					   "message larger than pooler.max_message_size" :
					   "invalid message length");
			return;
		}
		if (type == 'X') {
			client_close(c);
			return;
		}
		if (total > avail && type == 'd') {
			if (buf_append(&s->out, d, avail) != 0) {
				pooler_client_fail(c, "53200", "pooler buffer full");
				return;
			}
			buf_consume(&c->in, avail);
			c->stream_left = total - avail;
			continue;
		}
		if (total > avail)
			break;
		if (client_msg(c, s, type, d, total) < 0)
			return;
		buf_consume(&c->in, total);
	}
	if (c->io.fd < 0)
		return;
	s = c->server;
	if (s && buf_used(&s->out) && server_flush(s) < 0) {
		pooler_server_close(s, "write to server failed");
		return;
	}
	if (buf_used(&c->out) && client_flush(c) < 0) {
		client_close(c);
		return;
	}
	if (s)
		pooler_update(&s->io);
	pooler_update(&c->io);
}

void pooler_client_resume(struct client *c)
{
	if (c->io.fd < 0)
		return;
	if (buf_used(&c->in))
		client_process(c);
	else
		pooler_update(&c->io);
}

/* ---- client login ------------------------------------------------------------- */

static void auth_failed(struct client *c)
{
	char msg[160];

	ST_INC(c->p->g.auth_failures);
	snprintf(msg, sizeof(msg), "password authentication failed for user \"%s\"", c->user);
	log_info("pooler: %s", msg);
	pooler_client_fail(c, "28P01", msg);
}

/* The pool's serialised welcome messages [from, to) onto c's output. */
static int welcome_copy(struct client *c, const struct pool *pl, unsigned from, unsigned to)
{
	size_t n = pl->woff[to] - pl->woff[from];

	return n ? buf_append(&c->out, pl->wmsg.data + pl->woff[from], n) : 0;
}

void pooler_client_welcome(struct client *c)
{
	struct pool *pl = c->pool;
	int rc = 0;

	unsigned from = 0;              /* pool's messages not yet copied */

	welcome_del(c);
	/* The pool's messages as they are, except the parameters the client
	 * chose itself, which it sees with its own value. */
	for (unsigned i = 0; i < pl->n_welcome && !rc; i++) {
		int idx = pl->widx[i];

		if (idx < 0)
			continue;
		if (!(c->pset & 1u << idx)) {
			memcpy(c->params[idx], pl->wvalue[i], POOLER_PARAM_LEN);
			c->pset |= 1u << idx;
			continue;
		}
		rc = welcome_copy(c, pl, from, i);
		if (!rc)
			rc = pgw_put_param_status(&c->out, pl->wname[i], c->params[idx]);
		from = i + 1;
	}
	if (!rc)
		rc = welcome_copy(c, pl, from, pl->n_welcome);
	if (!rc)
		rc = pgw_put_backend_key(&c->out, c->pid, c->key);
	if (!rc)
		rc = pgw_put_ready(&c->out, 'I');
	if (rc) {
		client_close(c);
		return;
	}
	c->state = CL_READY;
	if (client_flush(c) < 0) {
		client_close(c);
		return;
	}
	if (buf_used(&c->in))
		client_process(c);
	else
		pooler_update(&c->io);
}

static void login_ok(struct client *c)
{
	struct pool *pl = pool_get(c->p, c->db, c->user);

	if (!pl) {
		pooler_client_fail(c, "53300", "too many pools (database/user pairs)");
		return;
	}
	c->pool = pl;
	ST_INC(pl->st.clients);
	if (pgw_put_auth(&c->out, PGW_AUTH_OK, NULL, 0) != 0) {
		client_close(c);
		return;
	}
	if (pl->have_welcome) {
		pooler_client_welcome(c);
		return;
	}
	c->state = CL_WELCOME_WAIT;
	c->in_welcome = true;
	c->wait_since_us = pooler_us(c->p);
	c->wprev = NULL;
	c->wnext = pl->welcome;
	if (pl->welcome)
		pl->welcome->wprev = c;
	pl->welcome = c;
	if (client_flush(c) < 0) {
		client_close(c);
		return;
	}
	if (pl->n_connecting == 0)
		pool_launch(pl);
	if (c->io.fd >= 0)
		pooler_update(&c->io);
}

static void client_startup(struct client *c, const struct pgw_startup *st)
{
	struct pooler *p = c->p;
	const char *user = pgw_startup_get(st, "user");
	const char *dbname = pgw_startup_get(st, "database");
	const struct pga_user *u;
	char msg[200];

	if (!dbname || !*dbname)
		dbname = user;
	if (strlen(user) >= sizeof(c->user)) {
		pooler_client_fail(c, "08P01", "user name too long");
		return;
	}
	snprintf(c->user, sizeof(c->user), "%s", user);
	for (unsigned i = 0; i < st->nparams; i++) {
		const char *k = st->name[i], *v = st->value[i];
		int idx;

		if (!strcmp(k, "user") || !strcmp(k, "database"))
			continue;
		if (!strcmp(k, "replication")) {
			pooler_client_fail(c, "08P01", "replication connections are not "
					   "supported by the pooler");
			return;
		}
		idx = pooler_param_index(k);
		if (idx >= 0 && strlen(v) < POOLER_PARAM_LEN) {
			snprintf(c->params[idx], POOLER_PARAM_LEN, "%s", v);
			c->pset |= 1u << idx;
			continue;
		}
		if (!strcmp(k, "options") && !*v)
			continue;
		snprintf(msg, sizeof(msg), "unsupported startup parameter: %.60s", k);
		pooler_client_fail(c, "08P01", msg);
		return;
	}
	c->db = -1;
	for (unsigned i = 0; i < p->ndbs; i++)
		if (strcmp(p->dbs[i].conf.name, dbname) == 0)
			c->db = (int)i;
	if (c->db < 0) {
		snprintf(msg, sizeof(msg), "database \"%.63s\" is not served by this pooler "
			 "(no [database.%.63s] section)", dbname, dbname);
		pooler_client_fail(c, "3D000", msg);
		return;
	}
	if (p->set.auth_type == HP_AUTH_TRUST) {
		login_ok(c);
		return;
	}
	u = pga_userlist_find(p->users, c->user);
	if (!u) {
		auth_failed(c);
		return;
	}
	if (u->kind == PGA_MD5 || (p->set.auth_type == HP_AUTH_MD5 && u->kind == PGA_PLAIN)) {
		if (u->kind == PGA_MD5)
			memcpy(c->md5_stored, u->pass, 36);
		else
			pga_md5_stored(c->user, u->pass, c->md5_stored);
		if (loop_random(p, c->salt, sizeof(c->salt)) != 0 ||
		    pgw_put_auth(&c->out, PGW_AUTH_MD5, c->salt, 4) != 0) {
			client_close(c);
			return;
		}
		c->state = CL_AUTH_MD5;
	} else {
		static const char mech[] = "SCRAM-SHA-256\0";

		c->scram = calloc(1, sizeof(*c->scram));
		if (!c->scram || pgw_put_auth(&c->out, PGW_AUTH_SASL, mech, sizeof(mech)) != 0) {
			client_close(c);
			return;
		}
		c->scram->secret = u->scram;
		c->state = CL_AUTH_SASL_INIT;
	}
	if (client_flush(c) < 0)
		client_close(c);
}

static void client_auth_msg(struct client *c, char type, const uint8_t *body, size_t n)
{
	char out[PGA_MSG_MAX];
	int len;

	if (type != 'p') {
		pooler_client_fail(c, "08P01", "expected a password message");
		return;
	}
	if (c->state == CL_AUTH_MD5) {
		if (n != 36 || body[35] != '\0') {
			auth_failed(c);
			return;
		}
		pga_md5_response(c->md5_stored, c->salt, out);
		if (CRYPTO_memcmp(body, out, 35) != 0) {
			auth_failed(c);
			return;
		}
		login_ok(c);
		return;
	}
	if (c->state == CL_AUTH_SASL_INIT) {
		struct pgw_rd r;
		const char *mech;
		uint32_t dl;
		const uint8_t *data;
		struct pga_scram_secret sec = c->scram->secret;

		pgw_rd_init(&r, body, n);
		mech = pgw_get_str(&r, NULL);
		dl = pgw_get_u32(&r);
		data = r.bad || dl == UINT32_MAX ? NULL : pgw_get_bytes(&r, dl);
		if (r.bad || !data) {
			pooler_client_fail(c, "08P01", "malformed SASLInitialResponse");
			return;
		}
		if (strcmp(mech, "SCRAM-SHA-256") != 0) {
			pooler_client_fail(c, "28000", "client selected an invalid SASL "
					   "authentication mechanism");
			return;
		}
		len = pga_scram_server_first(c->scram, &sec, (const char *)data, dl, NULL, out,
					     sizeof(out));
		OPENSSL_cleanse(&sec, sizeof(sec));
		if (len < 0) {
			pooler_client_fail(c, "08P01", len == -EOPNOTSUPP ?
					   "channel binding is not supported (the pooler "
					   "serves no TLS)" : "malformed SCRAM message");
			return;
		}
		if (pgw_put_auth(&c->out, PGW_AUTH_SASL_CONTINUE, out, (size_t)len) != 0) {
			client_close(c);
			return;
		}
		c->state = CL_AUTH_SASL_FINAL;
		if (client_flush(c) < 0)
			client_close(c);
		return;
	}
	/* SASL final */
	len = pga_scram_server_final(c->scram, (const char *)body, n, out, sizeof(out), NULL);
	OPENSSL_cleanse(c->scram, sizeof(*c->scram));
	hp_free_null(&c->scram);
	if (len == -EACCES) {
		auth_failed(c);
		return;
	}
	if (len < 0) {
		pooler_client_fail(c, "08P01", "malformed SCRAM message");
		return;
	}
	if (pgw_put_auth(&c->out, PGW_AUTH_SASL_FINAL, out, (size_t)len) != 0) {
		client_close(c);
		return;
	}
	login_ok(c);
}

/* ---- cancel requests ---------------------------------------------------------- */

static void cancel_free(struct pooler *p, struct pcancel *k)
{
	struct pcancel **pp;

	for (pp = &p->cancels; *pp; pp = &(*pp)->next)
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	if (k->io.fd >= 0) {
		epoll_ctl(p->epfd, EPOLL_CTL_DEL, k->io.fd, NULL);
		close(k->io.fd);
	}
	buf_free(&k->out);
	free(k);
	p->ncancels--;
}

static void client_cancel(struct pooler *p, uint32_t pid, uint32_t key)
{
	unsigned slot = pid & ((1u << SLOT_BITS) - 1);
	struct client *c = slot < p->nslots ? p->slots[slot] : NULL;
	struct server *s;
	struct pcancel *k;
	int fd;

	if (!c || c->pid != pid || CRYPTO_memcmp(&c->key, &key, sizeof(key)) != 0 ||
	    !(s = c->server) || s->state != SV_ACTIVE || p->ncancels >= MAX_CANCELS) {
		ST_INC(p->g.cancels_ignored);
		return;
	}
	fd = connect_to(&p->dbs[s->pool->db]);
	if (fd < 0) {
		ST_INC(p->g.cancels_ignored);
		return;
	}
	k = calloc(1, sizeof(*k));
	if (!k) {
		close(fd);
		return;
	}
	k->io.fd = fd;
	k->io.kind = PIO_CANCEL;
	buf_init(&k->out, 64);
	k->deadline_ms = pooler_ms(p) + 5000;
	k->next = p->cancels;
	p->cancels = k;
	p->ncancels++;
	if (pgw_put_cancel(&k->out, s->be_pid, s->be_key) != 0 || io_add(p, &k->io, EPOLLOUT) != 0) {
		cancel_free(p, k);
		return;
	}
	ST_INC(p->g.cancels_forwarded);
	log_debug("pooler: cancel for client pid %u forwarded to backend %u", pid, s->be_pid);
}

static void cancel_event(struct pooler *p, struct pcancel *k)
{
	int err = 0;
	socklen_t el = sizeof(err);

	if (getsockopt(k->io.fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0)
		(void)io_write(k->io.fd, &k->out);
	if (err || !buf_used(&k->out))
		cancel_free(p, k);
}

/* ---- client events -------------------------------------------------------------- */

static void client_startup_read(struct client *c)
{
	while (c->io.fd >= 0 && c->state == CL_STARTUP && buf_used(&c->in)) {
		struct pgw_startup st;
		const char *why;
		int n = pgw_startup_parse((const uint8_t *)buf_head(&c->in), buf_used(&c->in), &st,
					  &why);

		if (n == 0)
			return;
		if (n < 0) {
			pooler_client_fail(c, n == -EPROTONOSUPPORT ? "0A000" : "08P01", why);
			return;
		}
		if (st.code == PGW_SSL_REQUEST || st.code == PGW_GSSENC_REQUEST) {
			buf_consume(&c->in, (size_t)n);
			if (st.code == PGW_SSL_REQUEST)
				ST_INC(c->p->g.ssl_refused);
			if (buf_append(&c->out, "N", 1) != 0 || client_flush(c) < 0) {
				client_close(c);
				return;
			}
			continue;
		}
		if (st.code == PGW_CANCEL_REQUEST) {
			client_cancel(c->p, st.cancel_pid, st.cancel_key);
			client_close(c);
			return;
		}
		buf_consume(&c->in, (size_t)n);     /* st still points at the bytes */
		client_startup(c, &st);
		return;
	}
}

static void client_read_event(struct client *c)
{
	for (int rounds = 0; rounds < 4 && c->io.fd >= 0; rounds++) {
		ssize_t n = io_read(c->io.fd, &c->in);

		if (n == -EAGAIN || n == -ENOBUFS)
			break;
		if (n <= 0) {
			client_close(c);
			return;
		}
		if ((size_t)n < READ_CHUNK)
			break;
	}
	if (c->io.fd < 0)
		return;
	switch (c->state) {
	case CL_STARTUP:
		client_startup_read(c);
		break;
	case CL_AUTH_MD5:
	case CL_AUTH_SASL_INIT:
	case CL_AUTH_SASL_FINAL: {
		char type;
		size_t total;
		int rc = pgw_frame((const uint8_t *)buf_head(&c->in), buf_used(&c->in),
				   AUTH_MSG_MAX, &type, &total);

		if (rc < 0) {
			pooler_client_fail(c, "08P01", "invalid authentication message");
			return;
		}
		if (rc == PGW_NEED_MORE || total > buf_used(&c->in))
			break;
		/* Consume first: a login that completes may go on to process
		 * what follows. buf_consume leaves the bytes in place, and
		 * nothing appends to c->in meanwhile. */
		{
			const uint8_t *m = (const uint8_t *)buf_head(&c->in);

			buf_consume(&c->in, total);
			client_auth_msg(c, type, m + PGW_HDR, total - PGW_HDR);
		}
		break;
	}
	case CL_READY:
		client_process(c);
		return;
	case CL_WELCOME_WAIT:
	case CL_CLOSING:
		break;
	}
	if (c->io.fd >= 0)
		pooler_update(&c->io);
}

static void client_event(struct client *c, uint32_t ev)
{
	if (ev & EPOLLOUT) {
		if (client_flush(c) < 0) {
			client_close(c);
			return;
		}
		if (c->state == CL_CLOSING && !buf_used(&c->out)) {
			client_close(c);
			return;
		}
		/* Room again: let the server's buffered answers through. */
		if (c->server && buf_used(&c->server->in) && buf_used(&c->out) < POOLER_OUT_HIGH)
			server_process(c->server);
	}
	if (c->io.fd >= 0 && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
		client_read_event(c);
	if (c->io.fd >= 0)
		pooler_update(&c->io);
}

/* ---- server events -------------------------------------------------------------- */

static void server_event(struct server *s, uint32_t ev)
{
	if (s->state == SV_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof(err);

		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (getsockopt(s->io.fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
			err = errno;
		if (err) {
			struct pooler_db *d = &s->pool->p->dbs[s->pool->db];
			char msg[200];

			snprintf(msg, sizeof(msg), "connect to %s:%u: %s", d->conf.host,
				 d->conf.port, strerror(err));
			server_login_failed(s, NULL, msg);
			return;
		}
		server_set_state(s, SV_LOGIN);
	}
	if (ev & EPOLLOUT) {
		if (server_flush(s) < 0) {
			if (s->state == SV_LOGIN)
				server_login_failed(s, NULL, "write to server failed");
			else
				pooler_server_close(s, "write to server failed");
			return;
		}
		/* Room again: the client may go on. */
		if (s->client && buf_used(&s->client->in) && buf_used(&s->out) < POOLER_OUT_HIGH)
			client_process(s->client);
	}
	if (s->io.fd >= 0 && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
		for (int rounds = 0; rounds < 4 && s->io.fd >= 0; rounds++) {
			ssize_t n = io_read(s->io.fd, &s->in);

			if (n == -EAGAIN || n == -ENOBUFS)
				break;
			if (n <= 0) {
				/* Let the client see what arrived (e.g. a FATAL) first. */
				server_process(s);
				if (s->io.fd < 0)
					return;
				if (s->state == SV_LOGIN)
					server_login_failed(s, NULL, "server closed the connection "
							    "during login");
				else
					pooler_server_close(s, n == 0 ? "server closed the "
							    "connection" : strerror((int)-n));
				return;
			}
			if ((size_t)n < READ_CHUNK)
				break;
		}
		server_process(s);
	}
	if (s->io.fd >= 0)
		pooler_update(&s->io);
}

/* ---- accept ------------------------------------------------------------------------ */

static int slot_take(struct pooler *p, struct client *c)
{
	for (unsigned k = 0; k < p->nslots; k++) {
		unsigned i = (p->free_hint + k) % p->nslots;

		if (!p->slots[i]) {
			p->slots[i] = c;
			p->free_hint = (i + 1) % p->nslots;
			c->slot = i;
			p->gen = (p->gen + 1) & 0x7ff;
			if (!p->gen)
				p->gen = 1;
			c->pid = p->gen << SLOT_BITS | i;
			return 0;
		}
	}
	return -ENOSPC;
}

static void on_accept(struct pooler *p)
{
	for (int i = 0; i < 64; i++) {
		int fd = accept4(p->listen.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct client *c;

		if (fd < 0)
			return;
		ST_INC(p->g.accepted);
		if (p->stopping || p->nclients >= p->set.max_client_conn) {
			struct buf b;

			buf_init(&b, 512);
			if (pgw_put_error(&b, "FATAL", p->stopping ? "57P01" : "53300",
					  p->stopping ? "the pooler is shutting down" :
					  "no more connections allowed (pooler.max_client_conn)") == 0)
				(void)!write(fd, buf_head(&b), buf_used(&b));
			buf_free(&b);
			close(fd);
			ST_INC(p->g.rejected_max_clients);
			continue;
		}
		c = client_alloc(p);
		if (!c) {
			close(fd);
			continue;
		}
		c->p = p;
		c->io.fd = fd;
		c->io.kind = PIO_CLIENT;
		c->db = -1;
		c->connect_ms = pooler_ms(p);
		if (pgs_map_init(&c->stmts, (p->set.max_prepared ? p->set.max_prepared : 200) * 4,
				 p->set.max_message) != 0 ||
		    slot_take(p, c) != 0 || loop_random(p, &c->key, sizeof(c->key)) != 0 ||
		    io_add(p, &c->io, EPOLLIN | EPOLLRDHUP) != 0) {
			if (p->slots[c->slot] == c)
				p->slots[c->slot] = NULL;
			close(fd);
			buf_free(&c->in);
			buf_free(&c->out);
			free(c);
			continue;
		}
		p->nclients++;
		ST_INC(p->g.clients);
		/* The listener defers accept until the client's first bytes
		 * (its startup packet) are in: read them now rather than after
		 * another trip through epoll_wait. */
		client_read_event(c);
	}
}

/* ---- the loop ------------------------------------------------------------------------ */

static void free_dead(struct pooler *p)
{
	while (p->dead_clients) {
		struct client *c = p->dead_clients;

		p->dead_clients = c->dead;
		client_free(c);
	}
	while (p->dead_servers) {
		struct server *s = p->dead_servers;

		p->dead_servers = s->dead;
		server_free(s);
	}
}

/* The loop's side of a reload of [query_analysis] and [query_cache]:
 * new bounds and fingerprints. A result cache switched on now has not seen
 * the writes of transactions already open: their ends flush the
 * database's entries. */
static void reload_query_settings(struct pooler *p, const struct pooler_settings *old)
{
	const struct pooler_settings *n = &p->set;

	p->qt_max_text = n->qt_max_text;
	qstats_set_max_text(p->qstats, n->qt_max_text);
	if (!strcmp(old->qc_fps, n->qc_fps) && old->qc_ttl_ms == n->qc_ttl_ms &&
	    old->qc_max_result == n->qc_max_result)
		return;
	if (p->qcache) {
		qcache_configure(p->qcache, n->qc_fps, n->qc_ttl_ms, n->qc_max_result);
	} else if (n->qc_fps[0]) {
		struct qcache *qc = qcache_new(n->qc_fps, n->qc_ttl_ms, n->qc_max_result);

		if (!qc) {
			log_error("pooler: reload: cannot start the result cache");
			return;
		}
		for (unsigned i = 0; i < atomic_load(&p->npools); i++)
			for (struct server *s = p->pools[i]->others; s; s = s->next)
				if (s->status != 'I' || pgs_q_len(&s->q))
					s->qc_pend.flush = true;
		qcache_set_waker(qc, pooler_qc_wake, p);
		__atomic_store_n(&p->qcache, qc, __ATOMIC_RELEASE);
	}
	log_info("pooler: reload: result cache %s%s (ttl %llu ms)",
		 n->qc_fps[0] ? "on for " : "off", n->qc_fps, (unsigned long long)n->qc_ttl_ms);
}

static void apply_reload(struct pooler *p)
{
	pthread_mutex_lock(&p->reload_mu);
	if (p->reload_pending) {
		unsigned max_client = p->set.max_client_conn;
		uint64_t max_msg = p->set.max_message;
		unsigned max_prep = p->set.max_prepared;
		struct pooler_settings old = p->set;

		p->set = p->new_set;
		reload_query_settings(p, &old);
		/* sized at start: keep */
		p->set.max_client_conn = max_client;
		p->set.max_message = max_msg;
		if (!!max_prep != !!p->set.max_prepared || p->set.max_prepared > max_prep)
			p->set.max_prepared = max_prep;
		if (p->new_users) {
			pga_userlist_free(p->users);
			p->users = p->new_users;
			p->new_users = NULL;
		}
		for (unsigned i = 0; i < p->ndbs; i++)
			memcpy(p->dbs[i].password, p->new_dbs[i].password, PGA_PASS_MAX);
		p->reload_pending = false;
		for (unsigned i = 0; i < atomic_load(&p->npools); i++)
			if (!p->set.adaptive || p->pools[i]->limit > p->set.default_pool_size)
				p->pools[i]->limit = p->set.default_pool_size;
	}
	pthread_mutex_unlock(&p->reload_mu);
}

static void tick(struct pooler *p)
{
	uint64_t now = pooler_ms(p);
	bool second = now - p->last_second_ms >= 1000;
	struct pcancel *k, *nx;

	if (second)
		p->last_second_ms = now;
	for (unsigned i = 0; i < atomic_load(&p->npools); i++)
		pool_tick(p->pools[i], now, second);
	for (k = p->cancels; k; k = nx) {
		nx = k->next;
		if (now > k->deadline_ms)
			cancel_free(p, k);
	}
}

static bool drained(struct pooler *p)
{
	for (unsigned i = 0; i < atomic_load(&p->npools); i++)
		if (ST_GET(p->pools[i]->st.clients_active))
			return false;
	return true;
}

static void close_all(struct pooler *p)
{
	for (unsigned i = 0; i < p->nslots; i++)
		if (p->slots[i])
			client_close(p->slots[i]);
	for (unsigned i = 0; i < atomic_load(&p->npools); i++) {
		struct pool *pl = p->pools[i];

		while (pl->idle)
			pooler_server_close(pl->idle, "pooler stopping");
		while (pl->others)
			pooler_server_close(pl->others, "pooler stopping");
	}
	while (p->cancels)
		cancel_free(p, p->cancels);
	free_dead(p);
	spare_free(p);
}

static void *loop(void *arg)
{
	struct pooler *p = arg;
	struct epoll_event evs[MAX_EVENTS];

	for (;;) {
		int n = epoll_wait(p->epfd, evs, MAX_EVENTS, -1);

		p->clock_us = hp_now_us();

		if (n < 0 && errno != EINTR) {
			log_error("pooler: epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			struct pio *io = evs[i].data.ptr;

			if (io->fd < 0)
				continue;           /* closed earlier in this batch */
			switch (io->kind) {
			case PIO_LISTEN:
				on_accept(p);
				break;
			case PIO_CLIENT:
				client_event((struct client *)io, evs[i].events);
				break;
			case PIO_SERVER:
				server_event((struct server *)io, evs[i].events);
				break;
			case PIO_CANCEL:
				cancel_event(p, (struct pcancel *)io);
				break;
			case PIO_TIMER: {
				uint64_t t;

				if (read(io->fd, &t, sizeof(t)) > 0)
					tick(p);
				break;
			}
			case PIO_WAKE: {
				uint64_t t;

				if (read(io->fd, &t, sizeof(t)) > 0)
					apply_reload(p);
				qcache_drain(p->qcache, pooler_qc_ready);
				break;
			}
			default:
				break;
			}
		}
		free_dead(p);
		if (atomic_load(&p->stop_requested) && !p->stopping) {
			p->stopping = true;
			epoll_ctl(p->epfd, EPOLL_CTL_DEL, p->listen.fd, NULL);
		}
		if (p->stopping) {
			/* Clients without a server go now; the rest finish their
			 * transaction or meet the deadline. */
			for (unsigned i = 0; i < p->nslots; i++) {
				struct client *c = p->slots[i];

				if (c && !c->server && c->state != CL_CLOSING)
					client_close(c);
			}
			free_dead(p);
			if (drained(p) || hp_now_ms() >= atomic_load(&p->stop_deadline_ms))
				break;
		}
	}
	close_all(p);
	return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------------- */

static int read_password_file(const char *path, char *out, size_t outlen)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return -errno;
	if (!fgets(out, (int)outlen, f)) {
		fclose(f);
		out[0] = '\0';
		return -EINVAL;
	}
	fclose(f);
	n = strcspn(out, "\r\n");
	out[n] = '\0';
	return 0;
}

static void settings_from(struct pooler_settings *s, const struct hp_config *c)
{
	memset(s, 0, sizeof(*s));
	s->auth_type = c->pooler_auth_type;
	s->pool_mode = c->pooler_pool_mode;
	s->default_pool_size = c->pooler_default_pool_size;
	s->min_pool_size = c->pooler_min_pool_size;
	s->max_client_conn = c->pooler_max_client_conn;
	s->query_wait_timeout_ms = c->pooler_query_wait_timeout_ms;
	s->connect_timeout_ms = c->pooler_server_connect_timeout_ms;
	s->idle_timeout_ms = c->pooler_server_idle_timeout_ms;
	s->lifetime_ms = c->pooler_server_lifetime_ms;
	snprintf(s->reset_query, sizeof(s->reset_query), "%s", c->pooler_server_reset_query);
	s->max_prepared = c->pooler_max_prepared_statements;
	s->max_message = c->pooler_max_message_size;
	s->adaptive = c->pooler_adaptive;
	s->adaptive_min = c->pooler_adaptive_min_pool_size;
	if (s->adaptive_min > s->default_pool_size)
		s->adaptive_min = s->default_pool_size;
	s->qt_max_text = (size_t)c->qa_max_query_length;
	snprintf(s->qc_fps, sizeof(s->qc_fps), "%s", c->qc_fingerprints);
	s->qc_ttl_ms = c->qc_ttl_ms;
	s->qc_max_result = c->qc_max_result_size;
}

/* Passwords of [database.*] (password_file read now). 0 or -errno (logged). */
static int load_dbs(struct pooler_db *dbs, const struct hp_config *c)
{
	for (unsigned i = 0; i < c->n_databases; i++) {
		struct pooler_db *d = &dbs[i];

		d->conf = c->databases[i];
		if (d->conf.password_file[0]) {
			int rc = read_password_file(d->conf.password_file, d->password,
						    sizeof(d->password));

			if (rc) {
				log_error("pooler: database.%s.password_file %s: %s", d->conf.name,
					  d->conf.password_file, strerror(-rc));
				return rc;
			}
		} else {
			snprintf(d->password, sizeof(d->password), "%s", d->conf.password);
		}
	}
	return 0;
}

struct pooler *pooler_start(const struct hp_config *cfg)
{
	struct pooler *p;
	struct itimerspec its = { .it_interval = { 0, TICK_MS * 1000000L },
				  .it_value = { 0, TICK_MS * 1000000L } };
	char err[512];
	int rc;

	if (!cfg->n_databases)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->epfd = p->listen.fd = p->timer.fd = p->wake.fd = -1;
	pthread_mutex_init(&p->reload_mu, NULL);
	pthread_mutex_init(&p->stats_mu, NULL);
	settings_from(&p->set, cfg);
	p->ndbs = cfg->n_databases;
	if (load_dbs(p->dbs, cfg) != 0)
		goto fail;
	if (cfg->pooler_auth_file[0]) {
		p->users = pga_userlist_load(cfg->pooler_auth_file, err, sizeof(err));
		if (!p->users) {
			log_error("pooler: auth_file: %s", err);
			goto fail;
		}
	}
	p->nslots = p->set.max_client_conn;
	if (p->nslots > (1u << SLOT_BITS))
		p->nslots = 1u << SLOT_BITS;
	p->slots = calloc(p->nslots, sizeof(*p->slots));
	if (!p->slots)
		goto fail;
	p->port = 0;
	rc = sock_listen(cfg->pooler_listen, false, &p->port);
	if (rc < 0) {
		log_error("pooler: cannot listen on %s: %s", cfg->pooler_listen, strerror(-rc));
		goto fail;
	}
	p->listen.fd = rc;
	p->listen.kind = PIO_LISTEN;
	/* A PostgreSQL client speaks first (startup packet or SSLRequest):
	 * have the kernel hand over a connection once those bytes are in,
	 * as PgBouncer does by default (tcp_defer_accept). A client that
	 * sends nothing is still accepted after about a second. TCP_NODELAY
	 * is inherited by the accepted sockets: one setsockopt, not one per
	 * client. */
	{
		int one = 1;

		if (setsockopt(rc, IPPROTO_TCP, TCP_DEFER_ACCEPT, &one, sizeof(one)) != 0)
			log_debug("pooler: TCP_DEFER_ACCEPT: %s", strerror(errno));
		if (setsockopt(rc, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
			log_warn("pooler: TCP_NODELAY: %s", strerror(errno));
	}
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	p->timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	p->timer.kind = PIO_TIMER;
	p->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	p->wake.kind = PIO_WAKE;
	if (p->epfd < 0 || p->timer.fd < 0 || p->wake.fd < 0 ||
	    timerfd_settime(p->timer.fd, 0, &its, NULL) != 0 ||
	    io_add(p, &p->listen, EPOLLIN) != 0 || io_add(p, &p->timer, EPOLLIN) != 0 ||
	    io_add(p, &p->wake, EPOLLIN) != 0) {
		log_error("pooler: event loop setup: %s", strerror(errno));
		goto fail;
	}
	p->qt_max_text = (size_t)cfg->qa_max_query_length;
	if (cfg->qc_fingerprints[0]) {
		p->qcache = qcache_new(cfg->qc_fingerprints, cfg->qc_ttl_ms, cfg->qc_max_result_size);
		if (!p->qcache) {
			log_error("pooler: cannot start the result cache");
			goto fail;
		}
		qcache_set_waker(p->qcache, pooler_qc_wake, p);
		log_info("pooler: result cache on for %s (ttl %llu ms)", cfg->qc_fingerprints,
			 (unsigned long long)cfg->qc_ttl_ms);
	}
	if (cfg->qa_stats) {
		struct qstats_options qo = {
			.max_fingerprints = cfg->qa_max_fingerprints,
			.max_text = (size_t)cfg->qa_max_query_length,
		};

		p->qt_max_text = qo.max_text;
		p->qstats = qstats_new(&qo);
		if (!p->qstats) {
			log_error("pooler: cannot start query statistics");
			goto fail;
		}
	}
	p->g.port = p->port;
	p->clock_us = hp_now_us();
	p->last_second_ms = pooler_ms(p);
	if (pthread_create(&p->thread, NULL, loop, p) != 0) {
		log_error("pooler: cannot start its thread");
		goto fail;
	}
	pthread_setname_np(p->thread, "hp-pooler");
	p->thread_started = true;
	log_info("pooler: listening on %s (port %u), %u database(s), %s pooling, auth %s",
		 cfg->pooler_listen, p->port, p->ndbs,
		 p->set.pool_mode == HP_POOL_TRANSACTION ? "transaction" : "session",
		 p->set.auth_type == HP_AUTH_SCRAM ? "scram-sha-256" :
		 p->set.auth_type == HP_AUTH_MD5 ? "md5" : "trust");
	return p;
fail:
	pooler_free(p);
	return NULL;
}

void pooler_reload(struct pooler *p, const struct hp_config *cfg)
{
	struct pga_userlist *users = NULL;
	struct pooler_db dbs[HP_MAX_DATABASES];
	char err[512];
	uint64_t one = 1;

	if (!p)
		return;
	memset(dbs, 0, sizeof(dbs));
	if (cfg->pooler_auth_file[0]) {
		users = pga_userlist_load(cfg->pooler_auth_file, err, sizeof(err));
		if (!users)
			log_error("pooler: reload: auth_file: %s; keeping the old users", err);
	}
	if (cfg->n_databases != p->ndbs || load_dbs(dbs, cfg) != 0) {
		log_warn("pooler: reload: [database.*] changes need a restart; passwords kept");
		for (unsigned i = 0; i < p->ndbs; i++)
			memcpy(dbs[i].password, p->dbs[i].password, PGA_PASS_MAX);
	}
	pthread_mutex_lock(&p->reload_mu);
	settings_from(&p->new_set, cfg);
	pga_userlist_free(p->new_users);
	p->new_users = users;
	memcpy(p->new_dbs, dbs, sizeof(dbs));
	p->reload_pending = true;
	pthread_mutex_unlock(&p->reload_mu);
	OPENSSL_cleanse(dbs, sizeof(dbs));
	if (write(p->wake.fd, &one, sizeof(one)) < 0)
		log_warn("pooler: reload: cannot wake the loop");
	if (users)
		log_info("pooler: reload: %u users from %s", pga_userlist_count(users),
			 cfg->pooler_auth_file);
}

void pooler_stop(struct pooler *p, uint64_t timeout_ms)
{
	uint64_t one = 1;

	if (!p || !p->thread_started)
		return;
	atomic_store(&p->stop_deadline_ms, hp_now_ms() + timeout_ms);
	atomic_store(&p->stop_requested, true);
	if (write(p->wake.fd, &one, sizeof(one)) < 0)
		log_warn("pooler: cannot wake the loop to stop");
	pthread_join(p->thread, NULL);
	p->thread_started = false;
}

void pooler_free(struct pooler *p)
{
	if (!p)
		return;
	pooler_stop(p, 0);
	/* first: it waits for L2 reads still out, whose answers wake p->wake */
	qcache_free(p->qcache);
	p->qcache = NULL;
	for (unsigned i = 0; i < atomic_load(&p->npools); i++) {
		buf_free(&p->pools[i]->wmsg);
		free(p->pools[i]);
	}
	if (p->listen.fd >= 0)
		close(p->listen.fd);
	if (p->timer.fd >= 0)
		close(p->timer.fd);
	if (p->wake.fd >= 0)
		close(p->wake.fd);
	if (p->epfd >= 0)
		close(p->epfd);
	pga_userlist_free(p->users);
	pga_userlist_free(p->new_users);
	OPENSSL_cleanse(p->rnd, sizeof(p->rnd));
	qstats_free(p->qstats);
	free(p->slots);
	OPENSSL_cleanse(p->dbs, sizeof(p->dbs));
	OPENSSL_cleanse(p->new_dbs, sizeof(p->new_dbs));
	pthread_mutex_destroy(&p->reload_mu);
	pthread_mutex_destroy(&p->stats_mu);
	free(p);
}

void pooler_qcache_stats(struct pooler *p, struct qcache_stats *out)
{
	qcache_get_stats(p ? __atomic_load_n(&p->qcache, __ATOMIC_ACQUIRE) : NULL, out);
}

struct qstats *pooler_qstats(struct pooler *p)
{
	return p ? p->qstats : NULL;
}

int pooler_db_login(struct pooler *p, const char *db, struct hp_database_conf *conf,
		    char *password, size_t pwlen)
{
	int rc = -ENOENT;

	if (!p)
		return -ENOENT;
	pthread_mutex_lock(&p->reload_mu);
	for (unsigned i = 0; i < p->ndbs; i++) {
		if (strcmp(p->dbs[i].conf.name, db))
			continue;
		*conf = p->dbs[i].conf;
		snprintf(password, pwlen, "%s", p->dbs[i].password);
		rc = 0;
		break;
	}
	pthread_mutex_unlock(&p->reload_mu);
	return rc;
}

unsigned pooler_db_names(struct pooler *p, char (*names)[64], unsigned max)
{
	unsigned n = 0;

	if (!p)
		return 0;
	for (unsigned i = 0; i < p->ndbs && n < max; i++)
		snprintf(names[n++], 64, "%s", p->dbs[i].conf.name);
	return n;
}

uint16_t pooler_port(const struct pooler *p)
{
	return p ? p->port : 0;
}
