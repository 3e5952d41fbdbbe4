/*
 * api.c - the REST API server: listening, routing, authentication, request
 * bodies and error replies (handlers live in api_cache.c).
 *
 * libmicrohttpd runs its own threads (a pool of two, each with an epoll
 * loop) and calls api_access() several times per request: once when the
 * headers are in, once per chunk of body, and once more when the body is
 * complete. Everything that can be decided from the headers alone is decided
 * on the first call, before any body is read - unknown route (404), wrong
 * method (405, with Allow), missing or bad token (401, with
 * WWW-Authenticate), missing scope (403), a Content-Length over
 * api_max_body (413) - so an unauthenticated or oversized upload is refused
 * without being received. Bodies without a length (chunked) are counted as
 * they stream in; past the limit the rest is discarded, up to a bound, and
 * the request is answered 413 (beyond that bound the connection is closed).
 *
 * The route table is a flat array: method, path (exact or prefix), the
 * scopes that grant it, and the handler. Routes of the contract whose
 * subsystem does not exist yet answer 501 "not_implemented" saying so,
 * after authentication, rather than 404, so clients can tell "wrong URL"
 * from "not running here".
 *
 * Paths and query values are percent-decoded here (libmicrohttpd's own
 * unescaping is replaced by an identity callback) so that a key pattern may
 * contain any byte, "%2F" and "%00" included, with its exact length.
 *
 * Tokens live behind a rwlock: requests verify under the read lock,
 * api_reload() swaps the whole set under the write lock and keeps the old
 * set if the new file is refused. Every reply, errors included, is JSON
 * except /metrics.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include "hotpath/api.h"
#include "hotpath/api_body.h"
#include "hotpath/buf.h"
#include "hotpath/log.h"
#include "hotpath/metrics.h"
#include "hotpath/tokens.h"
#include "api_int.h"

#define API_POOL_THREADS   4    /* a profile window may hold one for its duration */
#define API_TIMEOUT_S      30
#define API_DISCARD_MAX    (4u << 20)   /* body bytes we drop after a 413 before closing */
#define API_AUTH_NONE      0u
#define API_AUTH_METRICS   (1u << 31)   /* /metrics: metrics:read only if configured */

struct api {
	struct hp_daemon *d;
	struct MHD_Daemon *mhd;
	uint16_t port;
	pthread_rwlock_t tok_lock;
	struct tokens *tokens;
	struct metrics_api_stats stats;     /* counters updated with atomics */
};

struct api_route {
	const char *method;                 /* "GET" also answers HEAD */
	const char *path;
	bool prefix;                        /* path is a prefix ending in '/' */
	uint32_t scopes;                    /* any of these grants access */
	void (*fn)(struct api_call *c);
	const char *note;
};

#define NOT_RUNNING_PERF "performance analysis (the observe subsystem) is not running in this build"

static const struct api_route routes[] = {
	{ "GET", "/api/v2/health", false, API_AUTH_NONE, api_h_health, NULL },
	{ "GET", "/metrics", false, API_AUTH_METRICS, api_h_metrics, NULL },
	{ "GET", "/api/v2/config", false, TOKENS_SCOPE_PERF_READ | TOKENS_SCOPE_CACHE_READ,
	  api_h_config, NULL },
	{ "GET", "/api/v2/cache/status", false, TOKENS_SCOPE_CACHE_READ, api_h_cache_status, NULL },
	{ "POST", "/api/v2/cache/clear", false, TOKENS_SCOPE_CACHE_ADMIN, api_h_cache_clear, NULL },
	{ "GET", "/api/v2/cache/statistics", false, TOKENS_SCOPE_CACHE_READ, api_h_cache_statistics,
	  NULL },
	{ "POST", "/api/v2/cache/policies", false, TOKENS_SCOPE_CACHE_POLICY, api_h_cache_policies,
	  NULL },
	{ "GET", "/api/v2/cache/keys/", true, TOKENS_SCOPE_CACHE_READ, api_h_cache_keys, NULL },
	{ "GET", "/api/v2/cache/keys", false, TOKENS_SCOPE_CACHE_READ, api_h_cache_keys, NULL },
	{ "GET", "/api/v2/cache/tiers", false, TOKENS_SCOPE_CACHE_READ, api_h_cache_tiers, NULL },
	{ "DELETE", "/api/v2/performance/cache/invalidate", false, TOKENS_SCOPE_CACHE_INVALIDATE,
	  api_h_cache_invalidate, NULL },
	{ "GET", "/api/v2/performance/flamegraph", false, TOKENS_SCOPE_PROFILE_READ,
	  api_h_flamegraph, NULL },
	{ "GET", "/api/v2/backends", false, TOKENS_SCOPE_PERF_READ, api_h_http_backends, NULL },
	{ "GET", "/api/v2/breakers", false, TOKENS_SCOPE_PERF_READ, api_h_http_breakers, NULL },
	{ "GET", "/api/v2/pools", false, TOKENS_SCOPE_PERF_READ, api_h_pools, NULL },
	{ "GET", "/api/v2/performance/metrics", false, TOKENS_SCOPE_PERF_READ, api_h_perf_metrics,
	  NULL },
	{ "GET", "/api/v2/performance/queries", false, TOKENS_SCOPE_PERF_READ, api_h_queries,
	  NULL },
	{ "GET", "/api/v2/performance/services", false, TOKENS_SCOPE_PERF_READ,
	  api_h_perf_services, NULL },
	{ "POST", "/api/v2/performance/optimize", false, TOKENS_SCOPE_PERF_OPTIMIZE,
	  api_h_optimize, NULL },
	{ "GET", "/api/v2/performance/optimize/", true,
	  TOKENS_SCOPE_PERF_OPTIMIZE | TOKENS_SCOPE_PERF_READ, api_h_optimize_job, NULL },
	{ "POST", "/api/v2/performance/profiling", false, TOKENS_SCOPE_PROFILE_READ,
	  api_h_profile_start, NULL },
	{ "GET", "/api/v2/performance/profiling/", true, TOKENS_SCOPE_PROFILE_READ,
	  api_h_profile_get, NULL },
	{ "POST", "/api/v2/performance/cache/warm", false, TOKENS_SCOPE_CACHE_ADMIN,
	  api_h_cache_warm, NULL },
	{ "GET", "/api/v2/performance/cache/warm/", true,
	  TOKENS_SCOPE_CACHE_ADMIN | TOKENS_SCOPE_CACHE_READ, api_h_cache_warm_status, NULL },
	{ "GET", "/api/v2/cache/strategies", false, TOKENS_SCOPE_CACHE_READ,
	  api_h_cache_strategies, NULL },
	{ "GET", "/api/v2/performance/recommendations", false, TOKENS_SCOPE_PERF_READ,
	  api_h_recommendations, NULL },
};

/* Per-request state, kept in libmicrohttpd's con_cls. */
struct api_req {
	const struct api_route *route;
	struct buf body;
	bool too_large;
	uint64_t discarded;
	char token_name[TOKENS_NAME_MAX];
};

/* ---- replies ---------------------------------------------------------------- */

json_t *api_json_u64(uint64_t v)
{
	if (v > (uint64_t)INT64_MAX)
		return json_real((double)v);
	return json_integer((json_int_t)v);
}

json_t *api_json_bytes(const char *s, size_t len)
{
	char *tmp;
	size_t o = 0;
	json_t *j;

	if (api_utf8_valid(s, len))
		return json_stringn(s, len);
	/* Each invalid byte becomes U+FFFD (3 bytes); valid sequences are kept. */
	tmp = malloc(len * 3 + 1);
	if (!tmp)
		return NULL;
	for (size_t i = 0; i < len;) {
		size_t k = api_utf8_seq(s + i, len - i);

		if (k) {
			memcpy(tmp + o, s + i, k);
			o += k;
			i += k;
		} else {
			memcpy(tmp + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	j = json_stringn(tmp, o);
	free(tmp);
	return j;
}

void api_reply_text(struct api_call *c, unsigned status, const char *ctype, char *text,
		    size_t len)
{
	free(c->out);
	c->status = status;
	c->ctype = ctype;
	c->out = text;
	c->out_len = len;
}

void api_reply_json(struct api_call *c, unsigned status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (!s) {
		static const char oom[] =
			"{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
		s = strdup(oom);
		status = 500;
		if (!s) {
			api_reply_text(c, 500, "application/json", NULL, 0);
			return;
		}
	}
	api_reply_text(c, status, "application/json", s, strlen(s));
}

void api_reply_error(struct api_call *c, unsigned status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_t *j;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Messages may quote client bytes: keep them printable. */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	j = json_pack("{s:{s:s,s:o}}", "error", "code", code, "message",
		      api_json_bytes(msg, strlen(msg)));
	api_reply_json(c, status, j);
}

/* ---- query parameters --------------------------------------------------------- */

struct query_check {
	const char *const *allowed;
	char bad[128];
};

static enum MHD_Result query_check_one(void *cls, enum MHD_ValueKind kind, const char *key,
				       const char *value)
{
	struct query_check *q = cls;

	(void)kind;
	(void)value;
	for (unsigned i = 0; q->allowed[i]; i++)
		if (strcmp(key, q->allowed[i]) == 0)
			return MHD_YES;
	snprintf(q->bad, sizeof(q->bad), "%s", key);
	return MHD_NO;
}

bool api_query_only(struct api_call *c, const char *const *allowed)
{
	struct query_check q = { .allowed = allowed };

	MHD_get_connection_values(c->conn, MHD_GET_ARGUMENT_KIND, query_check_one, &q);
	if (q.bad[0]) {
		char list[256] = "";
		size_t used = 0;
		for (unsigned i = 0; allowed[i]; i++) {
			int n = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "",
					 allowed[i]);
			if (n < 0 || (size_t)n >= sizeof(list) - used)
				break;
			used += (size_t)n;
		}
		api_reply_error(c, 400, "invalid_query", "unknown query parameter '%.64s' (allowed: %s)",
				q.bad, allowed[0] ? list : "none");
		return false;
	}
	return true;
}

const char *api_query_get(struct api_call *c, const char *name, char *buf, size_t buflen,
			  bool *bad)
{
	const char *v = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, name);
	size_t n;

	if (!v)
		return NULL;
	if (api_url_decode(v, strlen(v), buf, buflen - 1, &n) != 0 || memchr(buf, '\0', n)) {
		api_reply_error(c, 400, "invalid_query", "query parameter %s is not validly "
				"percent-encoded or is too long", name);
		*bad = true;
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

/* ---- config and stats ------------------------------------------------------- */

void api_cfg_view(struct hp_daemon *d, struct api_cfg_view *v)
{
	pthread_rwlock_rdlock(&d->cfg_lock);
	v->max_body = d->cfg->api_max_body;
	v->metrics_auth = d->cfg->api_metrics_auth;
	v->eviction = d->cfg->eviction;
	pthread_rwlock_unlock(&d->cfg_lock);
}

void api_stats_snapshot(struct api *a, struct metrics_api_stats *out)
{
	for (unsigned i = 0; i < METRICS_API_CODES; i++)
		out->requests[i] = __atomic_load_n(&a->stats.requests[i], __ATOMIC_RELAXED);
	out->auth_failures = __atomic_load_n(&a->stats.auth_failures, __ATOMIC_RELAXED);
	out->token_reloads = __atomic_load_n(&a->stats.token_reloads, __ATOMIC_RELAXED);
	out->token_reload_failures =
		__atomic_load_n(&a->stats.token_reload_failures, __ATOMIC_RELAXED);
	pthread_rwlock_rdlock(&a->tok_lock);
	out->tokens = tokens_count(a->tokens);
	pthread_rwlock_unlock(&a->tok_lock);
}

/* ---- routing and auth ---------------------------------------------------------- */

static bool method_is(const char *m, const char *route_method)
{
	if (strcmp(m, route_method) == 0)
		return true;
	return strcmp(route_method, "GET") == 0 && strcmp(m, "HEAD") == 0;
}

/*
 * Find the route for `path`. *path_known tells whether some route has this
 * path (for 405 vs 404); *allow gets the Allow header of the path.
 */
static const struct api_route *route_find(const char *method, const char *path,
					  bool *path_known, const char **allow)
{
	*path_known = false;
	for (unsigned i = 0; i < HP_ARRAY_SIZE(routes); i++) {
		const struct api_route *r = &routes[i];
		bool match = r->prefix ? strncmp(path, r->path, strlen(r->path)) == 0
				       : strcmp(path, r->path) == 0;
		if (!match)
			continue;
		*path_known = true;
		*allow = strcmp(r->method, "GET") == 0 ? "GET, HEAD" : r->method;
		if (method_is(method, r->method))
			return r;
	}
	return NULL;
}

/* Bearer token of the request, or NULL; *len its length. */
static const char *bearer_token(struct MHD_Connection *conn, size_t *len)
{
	const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_AUTHORIZATION);
	const char *end;

	if (!h)
		return NULL;
	while (*h == ' ' || *h == '\t')
		h++;
	if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
		return NULL;
	h += 6;
	while (*h == ' ' || *h == '\t')
		h++;
	end = h + strlen(h);
	while (end > h && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*len = (size_t)(end - h);
	return *len ? h : NULL;
}

/* Names of the scopes in `set`, "a or b". */
static void scopes_or(uint32_t set, char *out, size_t outlen)
{
	size_t used = 0;

	out[0] = '\0';
	for (unsigned i = 0; i < TOKENS_SCOPE_COUNT; i++) {
		int n;
		if (!(set & (1u << i)))
			continue;
		n = snprintf(out + used, outlen - used, "%s%s", used ? " or " : "",
			     tokens_scope_name(1u << i));
		if (n < 0 || (size_t)n >= outlen - used)
			return;
		used += (size_t)n;
	}
}

/* Check the token for `r`. Returns true if allowed, else fills the reply. */
static bool api_authorize(struct api *a, struct api_call *c, const struct api_route *r,
			  const struct api_cfg_view *cfg, char *name, size_t namelen)
{
	uint32_t need = r->scopes, have = 0;
	const char *tok;
	size_t len = 0;
	int rc;

	name[0] = '\0';
	if (need == API_AUTH_METRICS)
		need = cfg->metrics_auth ? TOKENS_SCOPE_METRICS_READ : API_AUTH_NONE;
	if (need == API_AUTH_NONE)
		return true;
	tok = bearer_token(c->conn, &len);
	if (!tok) {
		c->www_auth = "Bearer realm=\"hotpath\"";
		api_reply_error(c, 401, "unauthorized", "missing bearer token: send 'Authorization: "
				"Bearer <token>' (create one with: hotpathctl token new NAME SCOPES)");
		return false;
	}
	pthread_rwlock_rdlock(&a->tok_lock);
	rc = tokens_verify(a->tokens, tok, len, &have, name, namelen);
	pthread_rwlock_unlock(&a->tok_lock);
	if (rc) {
		c->www_auth = "Bearer realm=\"hotpath\", error=\"invalid_token\"";
		api_reply_error(c, 401, "unauthorized", "invalid bearer token");
		return false;
	}
	if (!(have & need)) {
		char scopes[160];
		scopes_or(need, scopes, sizeof(scopes));
		api_reply_error(c, 403, "forbidden", "token '%s' lacks the scope %s needed for %s %s",
				name, scopes, r->method, r->path);
		return false;
	}
	return true;
}

/* ---- libmicrohttpd callbacks ----------------------------------------------------- */

static enum MHD_Result api_send(struct api *a, struct api_call *c, const char *method,
				const char *url)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (!c->status)
		api_reply_error(c, 500, "internal", "handler produced no reply");
	resp = MHD_create_response_from_buffer(c->out_len, c->out, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(c->out);
		c->out = NULL;
		return MHD_NO;
	}
	c->out = NULL;      /* owned by the response now */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, c->ctype);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	if (c->allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, c->allow);
	if (c->www_auth)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, c->www_auth);
	ret = MHD_queue_response(c->conn, c->status, resp);
	MHD_destroy_response(resp);
	__atomic_fetch_add(&a->stats.requests[metrics_api_code(c->status)], 1, __ATOMIC_RELAXED);
	if (c->status == 401)
		__atomic_fetch_add(&a->stats.auth_failures, 1, __ATOMIC_RELAXED);
	if (c->status >= 500 && c->status != 501)
		log_warn("api: %s %.200s -> %u", method, url, c->status);
	else
		log_debug("api: %s %.200s -> %u", method, url, c->status);
	return ret;
}

static void call_init(struct api_call *c, struct api *a, struct MHD_Connection *conn,
		      const struct api_route *r, const char *url)
{
	memset(c, 0, sizeof(*c));
	c->api = a;
	c->d = a->d;
	c->conn = conn;
	c->ctype = "application/json";
	c->token_name = "";
	if (r) {
		c->rest = r->prefix ? url + strlen(r->path) : "";
		c->note = r->note;
	}
}

/* Decide what the headers alone decide. Returns true if a reply is ready. */
static bool api_first_call(struct api *a, struct api_call *c, struct api_req *rq,
			   const char *method, const char *url)
{
	struct api_cfg_view cfg;
	const char *allow = NULL, *cl;
	bool known;
	const struct api_route *r = route_find(method, url, &known, &allow);

	api_cfg_view(a->d, &cfg);
	if (!r) {
		if (known) {
			c->allow = allow;
			api_reply_error(c, 405, "method_not_allowed", "%s is not allowed here; use %s",
					method, allow);
		} else {
			api_reply_error(c, 404, "not_found", "no such route: %.200s", url);
		}
		return true;
	}
	rq->route = r;
	call_init(c, a, c->conn, r, url);
	if (!api_authorize(a, c, r, &cfg, rq->token_name, sizeof(rq->token_name)))
		return true;
	cl = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl) {
		char *end;
		unsigned long long n;
		errno = 0;
		n = strtoull(cl, &end, 10);
		if (errno || end == cl || n > cfg.max_body) {
			api_reply_error(c, 413, "payload_too_large", "request body of %s bytes exceeds "
					"api max_body (%llu bytes)", cl,
					(unsigned long long)cfg.max_body);
			return true;
		}
	}
	buf_init(&rq->body, cfg.max_body ? (size_t)cfg.max_body : 1);
	return false;
}

static enum MHD_Result api_access(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct api *a = cls;
	struct api_req *rq = *con_cls;
	struct api_call c;
	enum MHD_Result ret;

	(void)version;
	if (!rq) {
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		*con_cls = rq;
		call_init(&c, a, conn, NULL, url);
		if (api_first_call(a, &c, rq, method, url)) {
			rq->route = NULL;       /* answered: ignore any body */
			rq->too_large = true;
			return api_send(a, &c, method, url);
		}
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (!rq->too_large && buf_append(&rq->body, upload_data, *upload_data_size) != 0) {
			rq->too_large = true;
			buf_free(&rq->body);
		}
		if (rq->too_large) {
			rq->discarded += *upload_data_size;
			if (rq->discarded > API_DISCARD_MAX)
				return MHD_NO;  /* close: the client keeps sending */
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (!rq->route)
		return MHD_YES;         /* already answered on the first call */
	call_init(&c, a, conn, rq->route, url);
	c.token_name = rq->token_name;
	if (rq->too_large) {
		api_reply_error(&c, 413, "payload_too_large", "request body exceeds api max_body "
				"(%zu bytes)", rq->body.max);
	} else {
		c.body = buf_used(&rq->body) ? buf_head(&rq->body) : NULL;
		c.body_len = buf_used(&rq->body);
		rq->route->fn(&c);
	}
	ret = api_send(a, &c, method, url);
	return ret;
}

static void api_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			  enum MHD_RequestTerminationCode toe)
{
	struct api_req *rq = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (!rq)
		return;
	buf_free(&rq->body);
	free(rq);
	*con_cls = NULL;
}

/* We percent-decode ourselves (see the top of the file). */
static size_t api_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
	(void)cls;
	(void)conn;
	return strlen(s);
}

static void api_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	log_warn("api: libmicrohttpd: %s", line);
}

/* ---- lifecycle ------------------------------------------------------------------- */

/* Load the tokens named by `path` into *out; "" gives an empty set. */
static int api_load_tokens(const char *path, struct tokens **out)
{
	char err[2048];
	int rc;

	if (path[0] == '\0') {
		rc = tokens_parse("", 0, "tokens", out, err, sizeof(err));
		if (rc == 0)
			log_warn("api: [api] tokens_file is not set: every authenticated route answers "
				 "401 (create tokens with: hotpathctl token new NAME SCOPES)");
		return rc;
	}
	rc = tokens_load_file(path, out, err, sizeof(err));
	if (rc) {
		/* One log line per problem. */
		char *save = NULL;
		for (char *l = strtok_r(err, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
			log_error("api: tokens: %s", l);
		return rc;
	}
	if (tokens_count(*out) == 0)
		log_warn("api: %s holds no tokens: every authenticated route answers 401", path);
	else
		log_info("api: %u token(s) loaded from %s", tokens_count(*out), path);
	return 0;
}

/* Bind host:port exactly; returns the listening fd or -errno (logged). */
static int api_listen(const char *listen_addr, int *family)
{
	char host[HP_ADDR_MAX], portstr[8];
	struct addrinfo hints, *res = NULL;
	uint16_t port;
	int fd, rc, one = 1;

	if (config_parse_hostport(listen_addr, host, sizeof(host), &port)) {
		log_error("api: listen = %s: expected HOST:PORT", listen_addr);
		return -EINVAL;
	}
	snprintf(portstr, sizeof(portstr), "%u", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &res);
	if (rc != 0 || !res) {
		log_error("api: listen = %s: cannot resolve '%s': %s", listen_addr, host,
			  gai_strerror(rc));
		return -EINVAL;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		rc = -errno;
		log_error("api: socket: %s", strerror(-rc));
		freeaddrinfo(res);
		return rc;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
		log_warn("api: SO_REUSEADDR: %s", strerror(errno));
	if (res->ai_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 128) != 0) {
		rc = -errno;
		log_error("api: cannot listen on %s: %s", listen_addr, strerror(-rc));
		close(fd);
		freeaddrinfo(res);
		return rc;
	}
	*family = res->ai_family;
	freeaddrinfo(res);
	return fd;
}

struct api *api_start(struct hp_daemon *d)
{
	char listen_addr[HP_ADDR_MAX], tokens_path[HP_PATH_MAX];
	unsigned max_conn;
	struct api *a;
	const union MHD_DaemonInfo *info;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
	int fd, family = AF_INET;

	if (!d || !d->cfg)
		return NULL;
	pthread_rwlock_rdlock(&d->cfg_lock);
	snprintf(listen_addr, sizeof(listen_addr), "%s", d->cfg->api_listen);
	snprintf(tokens_path, sizeof(tokens_path), "%s", d->cfg->api_tokens_file);
	max_conn = d->cfg->api_max_connections;
	pthread_rwlock_unlock(&d->cfg_lock);
	if (max_conn < API_POOL_THREADS)
		max_conn = API_POOL_THREADS;

	a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->d = d;
	if (pthread_rwlock_init(&a->tok_lock, NULL) != 0) {
		free(a);
		return NULL;
	}
	if (api_load_tokens(tokens_path, &a->tokens))
		goto fail;
	fd = api_listen(listen_addr, &family);
	if (fd < 0)
		goto fail;
	if (family == AF_INET6)
		flags |= MHD_USE_IPv6;
	a->mhd = MHD_start_daemon(flags, 0, NULL, NULL, api_access, a,
				  MHD_OPTION_EXTERNAL_LOGGER, api_mhd_log, NULL,
				  MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
				  MHD_OPTION_THREAD_POOL_SIZE, (unsigned)API_POOL_THREADS,
				  MHD_OPTION_CONNECTION_LIMIT, max_conn,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)API_TIMEOUT_S,
				  MHD_OPTION_NOTIFY_COMPLETED, api_completed, a,
				  MHD_OPTION_UNESCAPE_CALLBACK, api_unescape, NULL,
				  MHD_OPTION_END);
	if (!a->mhd) {
		log_error("api: cannot start the HTTP server on %s", listen_addr);
		close(fd);
		goto fail;
	}
	info = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_BIND_PORT);
	if (info && info->port) {
		a->port = info->port;
	} else {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
			a->port = ntohs(ss.ss_family == AF_INET6
					? ((struct sockaddr_in6 *)&ss)->sin6_port
					: ((struct sockaddr_in *)&ss)->sin_port);
	}
	log_info("api: REST API and /metrics on %s (port %u)", listen_addr, a->port);
	return a;
fail:
	tokens_free(a->tokens);
	pthread_rwlock_destroy(&a->tok_lock);
	free(a);
	return NULL;
}

int api_reload(struct api *a, const struct hp_config *cfg)
{
	struct tokens *nt = NULL, *old;
	int rc;

	if (!a || !cfg)
		return -EINVAL;
	rc = api_load_tokens(cfg->api_tokens_file, &nt);
	if (rc) {
		__atomic_fetch_add(&a->stats.token_reload_failures, 1, __ATOMIC_RELAXED);
		log_error("api: tokens file refused; keeping the %u token(s) loaded before",
			  tokens_count(a->tokens));
		return rc;
	}
	pthread_rwlock_wrlock(&a->tok_lock);
	old = a->tokens;
	a->tokens = nt;
	pthread_rwlock_unlock(&a->tok_lock);
	tokens_free(old);
	__atomic_fetch_add(&a->stats.token_reloads, 1, __ATOMIC_RELAXED);
	return 0;
}

uint16_t api_port(const struct api *a)
{
	return a ? a->port : 0;
}

void api_stop(struct api *a)
{
	if (!a)
		return;
	if (a->mhd)
		MHD_stop_daemon(a->mhd);
	api_perf_shutdown(a->d);
	tokens_free(a->tokens);
	pthread_rwlock_destroy(&a->tok_lock);
	free(a);
}
