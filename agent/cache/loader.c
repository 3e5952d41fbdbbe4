/*
 * loader.c - SQL (libpq) and HTTP origin loaders for cache strategies
 * (include/hotpath/loader.h).
 *
 * SQL: a fixed array of pool_size slots, each NULL or an open PGconn,
 * guarded by one mutex and a condition variable. A caller takes a free
 * slot (opening its connection if it has none) or waits for one up to the
 * loader's timeout; a connection that reports an error or a bad status is
 * closed and its slot emptied, so the next caller reconnects. Statements
 * run synchronously with PQexecParams on the caller's thread; the server's
 * statement_timeout (set once per connection) bounds them, connect_timeout
 * bounds connects. Writes of a batch run as BEGIN, one statement per
 * write, COMMIT: all or nothing, so a retried batch never half-applies.
 *
 * HTTP: one short-lived connection per load, non-blocking connect and
 * poll()ed reads and writes under one deadline. The response head goes
 * through http_parse_head (the proxy's strict parser); bodies framed by
 * Content-Length, chunked (http_chunked_feed) or connection close, bounded
 * by max_value_size. No keep-alive, no TLS, no redirects: an origin that
 * needs those belongs behind the HTTP proxy.
 *
 * What not: no prepared statements (each call is parsed by the server;
 * the pooler's owners may add statement caching), no COPY for batches.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <postgresql/libpq-fe.h>   /* Debian puts libpq here */
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "hotpath/config.h"
#include "hotpath/http_parse.h"
#include "hotpath/loader.h"
#include "hotpath/log.h"

#define LOADER_POOL_MAX 64
#define HTTP_HEAD_MAX (32 * 1024)

struct loader {
	struct hp_loader_conf c;
	bool http;
	char host[HP_ADDR_MAX];
	uint16_t port;
	char path[HP_LIST_MAX];
	struct breaker br;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	PGconn *conns[LOADER_POOL_MAX];
	bool busy[LOADER_POOL_MAX];
	_Atomic uint64_t loads, found, not_found, errors, rejected;
	_Atomic uint64_t writes, write_errors, rows_written, load_us_sum;
};

const char *loader_name(const struct loader *l)
{
	return l->c.name;
}

bool loader_reads(const struct loader *l)
{
	return l->http || l->c.query[0];
}

bool loader_writes(const struct loader *l)
{
	return !l->http && l->c.write_query[0];
}

bool loader_deletes(const struct loader *l)
{
	return !l->http && l->c.delete_query[0];
}

uint64_t loader_timeout_ms(const struct loader *l)
{
	return l->c.timeout_ms;
}

bool loader_warms(const struct loader *l)
{
	return !l->http && l->c.warm_query[0];
}

int loader_parse_url(const char *url, char *host, size_t hostlen, uint16_t *port, char *path,
		     size_t pathlen)
{
	const char *p, *hs, *he, *slash;
	unsigned long v = 80;

	if (strncmp(url, "http://", 7) != 0)
		return -EINVAL;
	p = url + 7;
	slash = strchr(p, '/');
	if (!slash)
		slash = p + strlen(p);
	if (*p == '[') {
		hs = p + 1;
		he = memchr(hs, ']', (size_t)(slash - hs));
		if (!he)
			return -EINVAL;
		p = he + 1;
	} else {
		hs = p;
		he = memchr(p, ':', (size_t)(slash - p));
		if (!he)
			he = slash;
		p = he;
	}
	if (he == hs || (size_t)(he - hs) >= hostlen)
		return -EINVAL;
	if (p < slash) {
		char *end;

		if (*p != ':' || p + 1 == slash)
			return -EINVAL;
		errno = 0;
		v = strtoul(p + 1, &end, 10);
		if (errno || end != slash || v == 0 || v > 65535)
			return -EINVAL;
	}
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	for (const char *q = host; *q; q++)
		if ((unsigned char)*q <= ' ')
			return -EINVAL;
	*port = (uint16_t)v;
	if ((size_t)snprintf(path, pathlen, "%s", *slash ? slash : "/") >= pathlen)
		return -EINVAL;
	for (const char *q = path; *q; q++)
		if ((unsigned char)*q <= ' ' || *q == 0x7f)
			return -EINVAL;    /* no request splitting through the template */
	return 0;
}

struct loader *loader_new(const struct hp_loader_conf *c, char *err, size_t errlen)
{
	struct loader *l = calloc(1, sizeof(*l));
	struct breaker_options bo;

	if (!l) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->c = *c;
	if (l->c.pool_size > LOADER_POOL_MAX)
		l->c.pool_size = LOADER_POOL_MAX;
	if (!l->c.pool_size)
		l->c.pool_size = 1;
	if (c->url[0]) {
		l->http = true;
		if (loader_parse_url(c->url, l->host, sizeof(l->host), &l->port, l->path,
				     sizeof(l->path)) != 0) {
			snprintf(err, errlen, "loader.%s.url: not a valid http://host[:port]/path",
				 c->name);
			free(l);
			return NULL;
		}
	}
	memset(&bo, 0, sizeof(bo));
	bo.failure_pct = c->breaker_failure_pct;
	bo.slow_pct = 100;
	bo.slow_call_us = c->timeout_ms * 1000;
	bo.open_ms = c->breaker_open_ms;
	breaker_init(&l->br, &bo);
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	return l;
}

void loader_free(struct loader *l)
{
	if (!l)
		return;
	for (unsigned i = 0; i < LOADER_POOL_MAX; i++)
		if (l->conns[i])
			PQfinish(l->conns[i]);
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	breaker_destroy(&l->br);
	free(l);
}

/* ---- SQL pool ---------------------------------------------------------------- */

static PGconn *sql_connect(struct loader *l, char *err, size_t errlen)
{
	char ct[24], setting[64];
	const char *keys[] = { "dbname", "connect_timeout", "application_name", NULL };
	const char *vals[] = { l->c.dsn, ct, "hotpath-loader", NULL };
	PGconn *pg;
	PGresult *r;

	/* libpq counts whole seconds and treats 1 as 2 */
	snprintf(ct, sizeof(ct), "%llu", (unsigned long long)((l->c.timeout_ms + 999) / 1000 < 2 ?
							     2 : (l->c.timeout_ms + 999) / 1000));
	pg = PQconnectdbParams(keys, vals, 1);
	if (!pg || PQstatus(pg) != CONNECTION_OK) {
		snprintf(err, errlen, "connect: %s", pg ? PQerrorMessage(pg) : "out of memory");
		if (pg)
			PQfinish(pg);
		return NULL;
	}
	snprintf(setting, sizeof(setting), "SET statement_timeout = %llu",
		 (unsigned long long)l->c.timeout_ms);
	r = PQexec(pg, setting);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		snprintf(err, errlen, "%s", PQerrorMessage(pg));
		PQclear(r);
		PQfinish(pg);
		return NULL;
	}
	PQclear(r);
	return pg;
}

/* A slot index with an open connection, or -errno. */
static int pool_take(struct loader *l, char *err, size_t errlen)
{
	struct timespec ts;
	int slot = -1;
	PGconn *pg;

	hp_abstime_in(&ts, CLOCK_REALTIME, l->c.timeout_ms);
	pthread_mutex_lock(&l->mu);
	for (;;) {
		for (unsigned i = 0; i < l->c.pool_size && slot < 0; i++)
			if (!l->busy[i] && l->conns[i])
				slot = (int)i;
		for (unsigned i = 0; i < l->c.pool_size && slot < 0; i++)
			if (!l->busy[i])
				slot = (int)i;
		if (slot >= 0)
			break;
		if (pthread_cond_timedwait(&l->cv, &l->mu, &ts) == ETIMEDOUT) {
			pthread_mutex_unlock(&l->mu);
			snprintf(err, errlen, "no free connection within %llu ms (pool_size %u)",
				 (unsigned long long)l->c.timeout_ms, l->c.pool_size);
			return -ETIMEDOUT;
		}
	}
	l->busy[slot] = true;
	pg = l->conns[slot];
	pthread_mutex_unlock(&l->mu);
	if (pg && PQstatus(pg) == CONNECTION_OK)
		return slot;
	if (pg)
		PQfinish(pg);
	pg = sql_connect(l, err, errlen);
	pthread_mutex_lock(&l->mu);
	l->conns[slot] = pg;
	if (!pg) {
		l->busy[slot] = false;
		pthread_cond_signal(&l->cv);
	}
	pthread_mutex_unlock(&l->mu);
	return pg ? slot : -ECONNREFUSED;
}

static void pool_give(struct loader *l, int slot, bool broken)
{
	pthread_mutex_lock(&l->mu);
	if (broken || PQstatus(l->conns[slot]) != CONNECTION_OK ||
	    PQtransactionStatus(l->conns[slot]) != PQTRANS_IDLE) {
		PQfinish(l->conns[slot]);
		l->conns[slot] = NULL;
	}
	l->busy[slot] = false;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

/* Fill params from captures (+ value). -ECANCELED for NUL bytes. */
static int sql_params(const char *key, const struct strat_capture *caps, int ncap,
		      const char *val, size_t vlen, char **params, char *err, size_t errlen)
{
	int n = 0;

	for (int i = 0; i < ncap; i++) {
		if (memchr(key + caps[i].off, '\0', caps[i].len)) {
			snprintf(err, errlen, "capture %d of the key holds a NUL byte", i + 1);
			goto fail;
		}
		params[n] = strndup(key + caps[i].off, caps[i].len);
		if (!params[n++])
			goto oom;
	}
	if (val) {
		if (memchr(val, '\0', vlen)) {
			snprintf(err, errlen, "value holds a NUL byte (SQL writers take text)");
			goto fail;
		}
		params[n] = strndup(val, vlen);
		if (!params[n++])
			goto oom;
	}
	return n;
oom:
	snprintf(err, errlen, "out of memory");
	for (int i = 0; i < n; i++)
		free(params[i]);
	return -ENOMEM;
fail:
	for (int i = 0; i < n; i++)
		free(params[i]);
	return -ECANCELED;
}

static void params_free(char **params, int n)
{
	for (int i = 0; i < n; i++)
		free(params[i]);
}

static void pg_err(PGconn *pg, PGresult *r, char *err, size_t errlen)
{
	const char *m = r ? PQresultErrorMessage(r) : NULL;
	size_t n;

	snprintf(err, errlen, "%s", m && *m ? m : PQerrorMessage(pg));
	n = strlen(err);
	while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
		err[--n] = '\0';
}

static int sql_load(struct loader *l, const char *key, const struct strat_capture *caps,
		    int ncap, char **val, size_t *vlen, char *err, size_t errlen)
{
	char *params[STRAT_MAX_CAPTURES + 1];
	PGresult *r;
	int np, slot, rc;

	np = sql_params(key, caps, ncap, NULL, 0, params, err, errlen);
	if (np < 0)
		return np;
	slot = pool_take(l, err, errlen);
	if (slot < 0) {
		params_free(params, np);
		return slot;
	}
	r = PQexecParams(l->conns[slot], l->c.query, np, NULL, (const char *const *)params, NULL,
			 NULL, 0);
	params_free(params, np);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		pg_err(l->conns[slot], r, err, errlen);
		PQclear(r);
		pool_give(l, slot, PQstatus(l->conns[slot]) != CONNECTION_OK);
		return -EIO;
	}
	if (PQntuples(r) == 0 || PQnfields(r) < 1 || PQgetisnull(r, 0, 0)) {
		rc = 0;
	} else if ((uint64_t)PQgetlength(r, 0, 0) > l->c.max_value_size) {
		snprintf(err, errlen, "value of %d bytes over loader max_value_size",
			 PQgetlength(r, 0, 0));
		rc = -E2BIG;
	} else {
		*vlen = (size_t)PQgetlength(r, 0, 0);
		*val = malloc(*vlen + 1);
		if (*val) {
			memcpy(*val, PQgetvalue(r, 0, 0), *vlen);
			rc = 1;
		} else {
			snprintf(err, errlen, "out of memory");
			rc = -ENOMEM;
		}
	}
	PQclear(r);
	pool_give(l, slot, false);
	return rc;
}

static bool sql_simple(PGconn *pg, const char *q, char *err, size_t errlen)
{
	PGresult *r = PQexec(pg, q);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;

	if (!ok)
		pg_err(pg, r, err, errlen);
	PQclear(r);
	return ok;
}

int loader_write(struct loader *l, const struct loader_write *w, size_t n, char *err,
		 size_t errlen)
{
	uint64_t t0 = hp_now_us();
	int slot, rc = 0;
	size_t done = 0;
	PGconn *pg;

	if (!loader_writes(l)) {
		snprintf(err, errlen, "loader %s has no write_query", l->c.name);
		return -ECANCELED;
	}
	if (!breaker_allow(&l->br, hp_now_ms())) {
		atomic_fetch_add(&l->rejected, 1);
		snprintf(err, errlen, "loader %s: circuit breaker open", l->c.name);
		return -EHOSTDOWN;
	}
	slot = pool_take(l, err, errlen);
	if (slot < 0) {
		breaker_record(&l->br, false, hp_now_us() - t0, hp_now_ms());
		atomic_fetch_add(&l->write_errors, 1);
		return slot;
	}
	pg = l->conns[slot];
	if (n > 1 && !sql_simple(pg, "BEGIN", err, errlen)) {
		rc = -EIO;
		goto out;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		const char *q = w[i].val ? l->c.write_query : l->c.delete_query;
		char *params[STRAT_MAX_CAPTURES + 1];
		PGresult *r;
		int np;

		if (!*q)
			continue;     /* DEL without a delete_query: cache only */
		np = sql_params(w[i].key, w[i].caps, w[i].ncap, w[i].val, w[i].vlen, params, err,
				errlen);
		if (np < 0) {
			rc = np;
			break;
		}
		r = PQexecParams(pg, q, np, NULL, (const char *const *)params, NULL, NULL, 0);
		params_free(params, np);
		if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
			pg_err(pg, r, err, errlen);
			rc = -EIO;
		} else {
			done++;
		}
		PQclear(r);
	}
	if (n > 1) {
		char scratch[160];

		if (rc)
			(void)sql_simple(pg, "ROLLBACK", scratch, sizeof(scratch));
		else if (!sql_simple(pg, "COMMIT", err, errlen))
			rc = -EIO;
	}
out:
	pool_give(l, slot, PQstatus(pg) != CONNECTION_OK);
	/* a bad value is the caller's problem, not the database's health */
	breaker_record(&l->br, rc == 0 || rc == -ECANCELED, hp_now_us() - t0, hp_now_ms());
	atomic_fetch_add(&l->writes, 1);
	if (rc)
		atomic_fetch_add(&l->write_errors, 1);
	else
		atomic_fetch_add(&l->rows_written, done);
	return rc;
}

long loader_warm_rows(struct loader *l, uint64_t max,
		      bool (*fn)(const char *key, size_t klen, const char *val, size_t vlen,
				 void *arg),
		      void *arg, char *err, size_t errlen)
{
	PGresult *r;
	long seen = 0;
	int slot;

	if (!loader_warms(l)) {
		snprintf(err, errlen, "loader %s has no warm_query", l->c.name);
		return -EINVAL;
	}
	slot = pool_take(l, err, errlen);
	if (slot < 0)
		return slot;
	r = PQexecParams(l->conns[slot], l->c.warm_query, 0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		pg_err(l->conns[slot], r, err, errlen);
		PQclear(r);
		pool_give(l, slot, PQstatus(l->conns[slot]) != CONNECTION_OK);
		return -EIO;
	}
	if (PQnfields(r) < 2) {
		snprintf(err, errlen, "warm_query must return (key, value) columns");
		PQclear(r);
		pool_give(l, slot, false);
		return -EINVAL;
	}
	for (int i = 0; i < PQntuples(r) && (uint64_t)seen < max; i++) {
		if (PQgetisnull(r, i, 0) || PQgetisnull(r, i, 1) || PQgetlength(r, i, 0) == 0 ||
		    (uint64_t)PQgetlength(r, i, 1) > l->c.max_value_size)
			continue;
		seen++;
		if (!fn(PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0), PQgetvalue(r, i, 1),
			(size_t)PQgetlength(r, i, 1), arg))
			break;
	}
	PQclear(r);
	pool_give(l, slot, false);
	return seen;
}

/* ---- HTTP origin --------------------------------------------------------------- */

static int wait_fd(int fd, short ev, uint64_t deadline_ms)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = ev };
		uint64_t now = hp_now_ms();
		int rc;

		if (now >= deadline_ms)
			return -ETIMEDOUT;
		rc = poll(&p, 1, (int)(deadline_ms - now));
		if (rc > 0)
			return 0;
		if (rc == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

static int http_connect(struct loader *l, uint64_t deadline, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	char port[8];
	int fd = -1, rc, soerr = 0;
	socklen_t sl = sizeof(soerr);

	snprintf(port, sizeof(port), "%u", l->port);
	rc = getaddrinfo(l->host, port, &hints, &res);
	if (rc != 0 || !res) {
		snprintf(err, errlen, "resolve %s: %s", l->host, gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		freeaddrinfo(res);
		snprintf(err, errlen, "socket: %s", strerror(-rc));
		return rc;
	}
	rc = connect(fd, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	if (rc != 0 && errno != EINPROGRESS) {
		rc = -errno;
		goto fail;
	}
	if (rc != 0) {
		rc = wait_fd(fd, POLLOUT, deadline);
		if (rc)
			goto fail;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr) {
			rc = -(soerr ? soerr : errno);
			goto fail;
		}
	}
	return fd;
fail:
	snprintf(err, errlen, "connect %s:%u: %s", l->host, l->port, strerror(-rc));
	close(fd);
	return rc;
}

static int http_load(struct loader *l, const char *key, const struct strat_capture *caps,
		     int ncap, char **val, size_t *vlen, char *err, size_t errlen)
{
	uint64_t deadline = hp_now_ms() + l->c.timeout_ms;
	size_t cap = HTTP_HEAD_MAX + l->c.max_value_size, used = 0, off;
	struct http_limits lim;
	struct http_msg *msg = NULL;
	char path[HP_LIST_MAX * 3], *req = NULL, *in = NULL;
	int fd, rc, reqlen;
	bool eof = false;

	rc = strat_expand_url(l->path, key, caps, ncap, path, sizeof(path));
	if (rc) {
		snprintf(err, errlen, "url template of loader %s: %s", l->c.name,
			 rc == -E2BIG ? "expanded URL too long" : "bad {N} reference");
		return -ECANCELED;
	}
	fd = http_connect(l, deadline, err, errlen);
	if (fd < 0)
		return fd;
	reqlen = asprintf(&req, "GET %s HTTP/1.1\r\nHost: %s:%u\r\nUser-Agent: hotpath-loader\r\n"
				"Accept: */*\r\nConnection: close\r\n\r\n",
			  path, l->host, l->port);
	in = malloc(cap);
	msg = malloc(sizeof(*msg));
	if (reqlen < 0 || !in || !msg) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	for (off = 0; off < (size_t)reqlen;) {
		ssize_t w = send(fd, req + off, (size_t)reqlen - off, MSG_NOSIGNAL);

		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			rc = wait_fd(fd, POLLOUT, deadline);
			if (rc)
				goto io_err;
			continue;
		}
		rc = -errno;
		goto io_err;
	}
	http_limits_default(&lim);
	/* read until the head parses, then until the body is complete */
	for (;;) {
		ssize_t r;

		rc = http_parse_head(in, used, false, HTTP_M_GET, &lim, msg);
		if (rc == HTTP_PARSE_ERROR) {
			snprintf(err, errlen, "origin %s:%u sent a bad response: %s", l->host, l->port,
				 msg->why);
			rc = -EPROTO;
			goto out;
		}
		if (rc == HTTP_PARSE_OK) {
			size_t body = used - msg->head_len;

			if (msg->body == HTTP_BODY_NONE)
				break;
			if (msg->body == HTTP_BODY_LENGTH) {
				if (msg->content_length > l->c.max_value_size && msg->status == 200) {
					snprintf(err, errlen, "origin value of %llu bytes over "
						 "max_value_size", (unsigned long long)msg->content_length);
					rc = -E2BIG;
					goto out;
				}
				if (body >= msg->content_length)
					break;
			}
			if (eof && msg->body != HTTP_BODY_LENGTH)
				break;
		}
		if (eof) {
			snprintf(err, errlen, "origin %s:%u closed before a complete response",
				 l->host, l->port);
			rc = -EPROTO;
			goto out;
		}
		if (used == cap) {
			snprintf(err, errlen, "origin response over %zu bytes", cap);
			rc = -E2BIG;
			goto out;
		}
		r = recv(fd, in + used, cap - used, 0);
		if (r > 0) {
			used += (size_t)r;
		} else if (r == 0) {
			eof = true;
		} else if (errno == EAGAIN || errno == EINTR) {
			rc = wait_fd(fd, POLLIN, deadline);
			if (rc)
				goto io_err;
		} else {
			rc = -errno;
			goto io_err;
		}
	}
	if (msg->status == 404 || msg->status == 410) {
		rc = 0;
		goto out;
	}
	if (msg->status != 200) {
		snprintf(err, errlen, "origin answered %u", msg->status);
		rc = -EIO;
		goto out;
	}
	{
		const char *b = in + msg->head_len;
		size_t blen = used - msg->head_len;

		if (msg->body == HTTP_BODY_LENGTH) {
			blen = (size_t)msg->content_length;
		} else if (msg->body == HTTP_BODY_CHUNKED) {
			/* decode in place: data runs never overtake the input */
			struct http_chunked dec;
			size_t ipos = 0, opos = 0;
			char *o = in + msg->head_len;

			http_chunked_init(&dec);
			for (;;) {
				size_t used_n = 0, dlen = 0;
				const char *data = NULL;
				int c = http_chunked_feed(&dec, &lim, b + ipos, blen - ipos, &used_n,
							  &data, &dlen);

				ipos += used_n;
				if (c == HTTP_CHUNK_DATA) {
					memmove(o + opos, data, dlen);
					opos += dlen;
					continue;
				}
				if (c == HTTP_CHUNK_DONE)
					break;
				snprintf(err, errlen, "origin sent bad chunked body: %s",
					 c == HTTP_CHUNK_ERROR ? dec.why : "truncated");
				rc = -EPROTO;
				goto out;
			}
			blen = opos;
		} else if (msg->body == HTTP_BODY_NONE) {
			blen = 0;
		}
		if (blen > l->c.max_value_size) {
			snprintf(err, errlen, "origin value of %zu bytes over max_value_size", blen);
			rc = -E2BIG;
			goto out;
		}
		*val = malloc(blen + 1);
		if (!*val) {
			rc = -ENOMEM;
			goto out;
		}
		memcpy(*val, b, blen);
		*vlen = blen;
		rc = 1;
	}
	goto out;
io_err:
	snprintf(err, errlen, "origin %s:%u: %s", l->host, l->port,
		 rc == -ETIMEDOUT ? "timed out" : strerror(-rc));
out:
	free(req);
	free(in);
	free(msg);
	close(fd);
	return rc;
}

/* ---- common ---------------------------------------------------------------------- */

int loader_load(struct loader *l, const char *key, size_t klen, const struct strat_capture *caps,
		int ncap, char **val, size_t *vlen, char *err, size_t errlen)
{
	uint64_t t0 = hp_now_us(), dt;
	int rc;

	(void)klen;
	*val = NULL;
	*vlen = 0;
	if (!loader_reads(l)) {
		snprintf(err, errlen, "loader %s has no query", l->c.name);
		return -ECANCELED;
	}
	if (!breaker_allow(&l->br, hp_now_ms())) {
		atomic_fetch_add(&l->rejected, 1);
		snprintf(err, errlen, "loader %s: circuit breaker open", l->c.name);
		return -EHOSTDOWN;
	}
	rc = l->http ? http_load(l, key, caps, ncap, val, vlen, err, errlen)
		     : sql_load(l, key, caps, ncap, val, vlen, err, errlen);
	dt = hp_now_us() - t0;
	breaker_record(&l->br, rc >= 0 || rc == -ECANCELED || rc == -E2BIG, dt, hp_now_ms());
	atomic_fetch_add(&l->loads, 1);
	atomic_fetch_add(&l->load_us_sum, dt);
	if (rc > 0)
		atomic_fetch_add(&l->found, 1);
	else if (rc == 0)
		atomic_fetch_add(&l->not_found, 1);
	else
		atomic_fetch_add(&l->errors, 1);
	return rc;
}

void loader_get_stats(struct loader *l, struct loader_stats *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", l->c.name);
	out->kind = l->http ? "http" : "sql";
	out->loads = atomic_load(&l->loads);
	out->found = atomic_load(&l->found);
	out->not_found = atomic_load(&l->not_found);
	out->errors = atomic_load(&l->errors);
	out->rejected = atomic_load(&l->rejected);
	out->writes = atomic_load(&l->writes);
	out->write_errors = atomic_load(&l->write_errors);
	out->rows_written = atomic_load(&l->rows_written);
	out->load_us_sum = atomic_load(&l->load_us_sum);
	out->pool_size = l->http ? 0 : l->c.pool_size;
	pthread_mutex_lock(&l->mu);
	for (unsigned i = 0; i < l->c.pool_size && !l->http; i++) {
		out->pool_open += l->conns[i] != NULL;
		out->pool_busy += l->busy[i];
	}
	pthread_mutex_unlock(&l->mu);
	breaker_get_stats(&l->br, hp_now_ms(), &out->breaker);
}
