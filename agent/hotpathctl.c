/*
 * hotpathctl.c - command-line client of hotpathd's REST API.
 *
 *   hotpathctl [--url URL] [--token-file F] [--json] [--timeout S] COMMAND
 *     status                      health, features and cache status
 *     stats                       cache statistics (last 5 minutes)
 *     keys PATTERN                keys matching a glob (follows cursors)
 *     invalidate PATTERN          delete keys matching a glob
 *     warm keys K...|pattern GLOB|sql LOADER|snapshot   start cache warming
 *     top                         services by latency
 *     queries                     top query fingerprints
 *     profile [--pid N|--service S] [--seconds N]      hot functions
 *     flamegraph [--pid N|--service S] [--seconds N] [--format svg|folded]
 *                [-o FILE]        flame graph to a file or stdout
 *     recommendations             what the agent suggests changing
 *     pools                       database pools
 *     breakers                    circuit breakers
 *     token new NAME SCOPES       print a fresh token and its tokens-file line
 *
 * Every command is one (or, for status and keys, a few) requests to a route
 * of docs/api.md; hotpathctl never makes up an answer. Where the daemon
 * does not serve a route (501 not running, 404 no such route), the command
 * prints the daemon's error and exits 4. With --json the command prints
 * exactly one JSON document on stdout (the route's answer, or for status
 * and keys the answers combined), for scripts; without it, answers are
 * printed for people: known shapes (status, stats, keys) as lines, other
 * answers by one generic renderer - top-level scalars as "name: value",
 * the first array of objects as an aligned table whose columns are the
 * objects' scalar members. The generic renderer is deliberate: the routes
 * behind top, queries, pools, breakers and recommendations belong to other
 * subsystems, and a table built from what the daemon sends cannot drift
 * from it.
 *
 * The token comes from --token-file (the first line of the file) or the
 * HOTPATH_TOKEN environment variable. Exit status: 0 ok, 1 usage, 2 cannot
 * reach the daemon, 3 authentication/authorisation refused (401/403), 4
 * other API error.
 *
 * HTTP is spoken by a tiny built-in HTTP/1.1 client over a TCP socket
 * rather than libcurl: the binary links only what the daemon links (no
 * libcurl), and the API it talks to is our own, on loopback, plain HTTP.
 * The client sends one request with "Connection: close", reads the whole
 * answer with a timeout and a hard size bound (16 MiB), and understands
 * Content-Length, chunked and read-to-close bodies. No TLS, no redirects,
 * no proxies: deliberately not a general HTTP client.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <jansson.h>
#include "hotpath/buf.h"
#include "hotpath/tokens.h"
#include "hotpath/version.h"

#define CTL_DEFAULT_URL  "http://127.0.0.1:9479"
#define CTL_MAX_RESPONSE (16u << 20)
#define CTL_TIMEOUT_S    15         /* per read; profiles add their window */
#define CTL_COL_MAX      48         /* widest table cell, in bytes */
#define CTL_COLS_MAX     16         /* most table columns shown */
#define CTL_KEYS_PAGES   100000     /* bound on cursor pages followed */

enum { EXIT_USAGE = 1, EXIT_CONNECT = 2, EXIT_AUTH = 3, EXIT_API = 4 };

struct ctl {
	char host[256];
	char port[8];
	char token[TOKENS_TOKEN_MAX + 1];
	bool json;
	unsigned timeout_s;
	const char *url;
};

struct http_resp {
	int status;
	struct buf raw;         /* the whole answer as read */
	const char *body;
	size_t body_len;
	char *decoded;          /* de-chunked body, if chunked */
};

static void HP_PRINTF(1, 2) die_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("hotpathctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nusage: hotpathctl [--url URL] [--token-file FILE] [--json] [--timeout SECONDS] "
	      "COMMAND\n"
	      "  status | stats | keys PATTERN | invalidate PATTERN\n"
	      "  warm keys KEY... | warm pattern GLOB | warm sql LOADER | warm snapshot\n"
	      "  top | queries | pools | breakers\n"
	      "  recommendations [--scope db|cache|all] [--period DURATION]\n"
	      "  optimize [index_recommendations|reset_query_stats] [--scope all|db|database:NAME]\n"
	      "  profile [--pid N | --service NAME] [--seconds N]\n"
	      "  flamegraph [--pid N | --service NAME] [--seconds N] [--format svg|folded] "
	      "[-o FILE]\n"
	      "  token new NAME SCOPES\n"
	      "see hotpathctl(1)\n", stderr);
	exit(EXIT_USAGE);
}

/* "http://host:port[/]" -> host, port. */
static int parse_url(const char *url, struct ctl *c)
{
	const char *p = url, *hend, *colon;
	size_t hl;

	if (strncmp(p, "http://", 7) != 0)
		return -EINVAL;
	p += 7;
	if (*p == '[') {                            /* [::1]:9479 */
		hend = strchr(p, ']');
		if (!hend)
			return -EINVAL;
		hl = (size_t)(hend - p - 1);
		if (hl == 0 || hl >= sizeof(c->host))
			return -EINVAL;
		memcpy(c->host, p + 1, hl);
		c->host[hl] = '\0';
		colon = hend[1] == ':' ? hend + 1 : NULL;
		p = hend + 1;
	} else {
		hend = p + strcspn(p, ":/");
		hl = (size_t)(hend - p);
		if (hl == 0 || hl >= sizeof(c->host))
			return -EINVAL;
		memcpy(c->host, p, hl);
		c->host[hl] = '\0';
		colon = *hend == ':' ? hend : NULL;
		p = hend;
	}
	if (colon) {
		size_t pl = strspn(colon + 1, "0123456789");
		if (pl == 0 || pl >= sizeof(c->port) || (colon[1 + pl] && colon[1 + pl] != '/'))
			return -EINVAL;
		memcpy(c->port, colon + 1, pl);
		c->port[pl] = '\0';
		p = colon + 1 + pl;
	} else {
		snprintf(c->port, sizeof(c->port), "80");
	}
	if (*p && strcmp(p, "/") != 0)
		return -EINVAL;                     /* no base paths */
	return 0;
}

static int connect_to(const struct ctl *c)
{
	struct addrinfo hints, *res, *ai;
	int fd = -1, rc, err = ECONNREFUSED;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(c->host, c->port, &hints, &res);
	if (rc != 0) {
		fprintf(stderr, "hotpathctl: cannot resolve %s: %s\n", c->host, gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		struct timeval tv = { (time_t)c->timeout_s, 0 };
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			err = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		fprintf(stderr, "hotpathctl: cannot connect to %s: %s%s\n", c->url, strerror(err),
			err == ECONNREFUSED ? " (is hotpathd running? see: systemctl status hotpathd)"
					    : "");
		return -err;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Decode a chunked body in place into a new allocation. 0 or -EPROTO. */
static int dechunk(const char *p, size_t n, char **out, size_t *outlen)
{
	char *d = malloc(n + 1);
	size_t o = 0, i = 0;

	if (!d)
		return -ENOMEM;
	for (;;) {
		char *end;
		unsigned long sz;
		const char *eol = memmem(p + i, n - i, "\r\n", 2);
		if (!eol)
			goto bad;
		errno = 0;
		sz = strtoul(p + i, &end, 16);
		if (errno || end == p + i || end > eol)
			goto bad;
		i = (size_t)(eol - p) + 2;
		if (sz == 0)
			break;
		if (sz > n - i || n - i - sz < 2)
			goto bad;
		memcpy(d + o, p + i, sz);
		o += sz;
		i += sz + 2;
	}
	d[o] = '\0';
	*out = d;
	*outlen = o;
	return 0;
bad:
	free(d);
	return -EPROTO;
}

/* Find a header value (case-insensitive name) in the head [p, end). */
static const char *find_header(const char *p, const char *end, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);

	while (p < end) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (!eol)
			eol = end;
		if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			*vlen = (size_t)(eol - v);
			return v;
		}
		p = eol + 2;
	}
	return NULL;
}

/* One request; fills r. 0, or the exit code to use. */
static int http_do(const struct ctl *c, const char *method, const char *path, const char *body,
		   struct http_resp *r)
{
	struct buf req;
	const char *head_end, *te, *cl;
	size_t tl, cll;
	int fd, rc;

	memset(r, 0, sizeof(*r));
	buf_init(&r->raw, CTL_MAX_RESPONSE);
	buf_init(&req, 1u << 20);
	if (buf_printf(&req, "%s %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: hotpathctl/%s\r\n"
		       "Accept: application/json\r\nConnection: close\r\n", method, path, c->host,
		       c->port, HOTPATH_VERSION) ||
	    (c->token[0] && buf_printf(&req, "Authorization: Bearer %s\r\n", c->token)) ||
	    (body && buf_printf(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
				strlen(body))) ||
	    buf_append_str(&req, "\r\n") || (body && buf_append_str(&req, body))) {
		fprintf(stderr, "hotpathctl: request too large\n");
		buf_free(&req);
		return EXIT_USAGE;
	}
	fd = connect_to(c);
	if (fd < 0) {
		buf_free(&req);
		return EXIT_CONNECT;
	}
	rc = send_all(fd, buf_head(&req), buf_used(&req));
	buf_free(&req);
	if (rc) {
		fprintf(stderr, "hotpathctl: sending to %s: %s\n", c->url, strerror(-rc));
		close(fd);
		return EXIT_CONNECT;
	}
	for (;;) {
		ssize_t n;
		if (buf_reserve(&r->raw, 16384)) {
			fprintf(stderr, "hotpathctl: answer larger than %u bytes\n", CTL_MAX_RESPONSE);
			close(fd);
			return EXIT_API;
		}
		n = recv(fd, r->raw.data + r->raw.off + r->raw.len, 16384, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "hotpathctl: reading from %s: %s\n", c->url,
				errno == EAGAIN ? "timed out" : strerror(errno));
			close(fd);
			return EXIT_CONNECT;
		}
		if (n == 0)
			break;
		r->raw.len += (size_t)n;
	}
	close(fd);
	if (buf_append(&r->raw, "", 1))     /* NUL for sscanf/strtoul; not counted below */
		return EXIT_API;
	r->raw.len--;
	head_end = memmem(buf_head(&r->raw), r->raw.len, "\r\n\r\n", 4);
	if (!head_end || sscanf(buf_head(&r->raw), "HTTP/1.%*d %d", &r->status) != 1) {
		fprintf(stderr, "hotpathctl: %s did not answer HTTP\n", c->url);
		return EXIT_API;
	}
	r->body = head_end + 4;
	r->body_len = r->raw.len - (size_t)(r->body - buf_head(&r->raw));
	te = find_header(buf_head(&r->raw), head_end, "Transfer-Encoding", &tl);
	cl = find_header(buf_head(&r->raw), head_end, "Content-Length", &cll);
	if (te && tl >= 7 && strncasecmp(te, "chunked", 7) == 0) {
		size_t dl;
		if (dechunk(r->body, r->body_len, &r->decoded, &dl)) {
			fprintf(stderr, "hotpathctl: bad chunked answer\n");
			return EXIT_API;
		}
		r->body = r->decoded;
		r->body_len = dl;
	} else if (cl) {
		unsigned long long want = strtoull(cl, NULL, 10);
		if (want > r->body_len) {
			fprintf(stderr, "hotpathctl: answer truncated\n");
			return EXIT_API;
		}
		r->body_len = (size_t)want;
	}
	return 0;
}

static void http_free(struct http_resp *r)
{
	buf_free(&r->raw);
	free(r->decoded);
}

/* Turn a non-2xx answer into a message and exit code. */
static int api_error(const struct http_resp *r)
{
	json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
	const char *code = NULL, *msg = NULL;

	if (j)
		json_unpack(j, "{s:{s:s,s:s}}", "error", "code", &code, "message", &msg);
	if (r->status == 401)
		fprintf(stderr, "hotpathctl: authentication failed (HTTP 401): %s\n  set HOTPATH_TOKEN "
			"or --token-file to a token listed in the daemon's tokens_file\n",
			msg ? msg : "missing or invalid token");
	else if (r->status == 403)
		fprintf(stderr, "hotpathctl: permission denied (HTTP 403): %s\n",
			msg ? msg : "the token lacks a scope");
	else
		fprintf(stderr, "hotpathctl: HTTP %d %s: %s\n", r->status, code ? code : "error",
			msg ? msg : "(no message)");
	if (r->status == 404 && msg && strncmp(msg, "no such route", 13) == 0)
		fprintf(stderr, "  this hotpathd does not serve the route (a build without that "
			"subsystem?)\n");
	else if (r->status == 501)
		fprintf(stderr, "  the route exists but its subsystem is not running in this "
			"hotpathd\n");
	json_decref(j);
	return r->status == 401 || r->status == 403 ? EXIT_AUTH : EXIT_API;
}

/* GET/POST/DELETE and parse the JSON answer. 0 and *out, or an exit code. */
static int call_json(const struct ctl *c, const char *method, const char *path,
		     const char *body, json_t **out)
{
	struct http_resp r;
	json_error_t jerr;
	int rc = http_do(c, method, path, body, &r);

	*out = NULL;
	if (rc) {
		http_free(&r);
		return rc;
	}
	if (r.status < 200 || r.status > 299) {
		rc = api_error(&r);
		http_free(&r);
		return rc;
	}
	*out = json_loadb(r.body, r.body_len, 0, &jerr);
	http_free(&r);
	if (!*out) {
		fprintf(stderr, "hotpathctl: bad JSON from the daemon: %s\n", jerr.text);
		return EXIT_API;
	}
	return 0;
}

static long long jint(json_t *o, const char *path1, const char *path2)
{
	json_t *v = json_object_get(o, path1);

	if (path2)
		v = json_object_get(v, path2);
	return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

/* --json: one document on stdout. Takes a reference to j. */
static int print_json(json_t *j)
{
	int rc = json_dumpf(j, stdout, JSON_INDENT(2)) == 0 ? 0 : EXIT_API;

	fputc('\n', stdout);
	json_decref(j);
	return rc;
}

/* A scalar as table text; arrays and objects as compact JSON. Caller frees. */
static char *cell_text(json_t *v)
{
	char *s = NULL;

	if (!v || json_is_null(v))
		return strdup("-");
	if (json_is_string(v))
		return strdup(json_string_value(v));
	if (json_is_true(v))
		return strdup("yes");
	if (json_is_false(v))
		return strdup("no");
	if (json_is_integer(v)) {
		if (asprintf(&s, "%" JSON_INTEGER_FORMAT, json_integer_value(v)) < 0)
			return NULL;
		return s;
	}
	if (json_is_real(v)) {
		if (asprintf(&s, "%.3g", json_real_value(v)) < 0)
			return NULL;
		return s;
	}
	return json_dumps(v, JSON_COMPACT);
}

/* Clip to CTL_COL_MAX bytes (on a UTF-8 boundary), control bytes as '?'. */
static void cell_clip(char *s)
{
	size_t n = 0;

	for (char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	n = strlen(s);
	if (n > CTL_COL_MAX) {
		n = CTL_COL_MAX - 3;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
		memcpy(s + n, "...", 4);
	}
}

/* Display width of UTF-8 text: one column per code point. */
static size_t text_width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

/*
 * Print an array of objects as a table: a column per scalar member name, in
 * the order they first appear (at most CTL_COLS_MAX), numbers right-aligned.
 * Members holding arrays or objects are shown as compact JSON.
 */
static void print_table(json_t *rows)
{
	const char *cols[CTL_COLS_MAX];
	size_t ncols = 0, width[CTL_COLS_MAX], i, r;
	bool numeric[CTL_COLS_MAX];
	json_t *row, *v;
	const char *k;

	json_array_foreach(rows, r, row) {
		json_object_foreach(row, k, v) {
			for (i = 0; i < ncols && strcmp(cols[i], k) != 0; i++)
				;
			if (i == ncols && ncols < CTL_COLS_MAX) {
				cols[ncols] = k;
				width[ncols] = text_width(k);
				numeric[ncols] = true;
				ncols++;
			}
		}
	}
	if (!ncols) {
		printf("(%zu rows without fields)\n", json_array_size(rows));
		return;
	}
	json_array_foreach(rows, r, row) {
		for (i = 0; i < ncols; i++) {
			json_t *cv = json_object_get(row, cols[i]);
			char *t = cell_text(cv);

			if (!t)
				continue;
			cell_clip(t);
			if (text_width(t) > width[i])
				width[i] = text_width(t);
			if (cv && !json_is_number(cv) && !json_is_null(cv))
				numeric[i] = false;
			free(t);
		}
	}
	for (i = 0; i < ncols; i++)
		printf("%s%-*s", i ? "  " : "", i + 1 < ncols ? (int)width[i] : 0, cols[i]);
	putchar('\n');
	json_array_foreach(rows, r, row) {
		for (i = 0; i < ncols; i++) {
			char *t = cell_text(json_object_get(row, cols[i]));
			size_t pad;

			if (!t)
				t = strdup("?");
			if (!t)
				break;
			cell_clip(t);
			pad = width[i] - text_width(t);
			if (i)
				fputs("  ", stdout);
			if (numeric[i])
				printf("%*s%s", (int)pad, "", t);
			else if (i + 1 < ncols)
				printf("%s%*s", t, (int)pad, "");
			else
				fputs(t, stdout);
			free(t);
		}
		putchar('\n');
	}
}

static bool is_table(json_t *v)
{
	size_t i;
	json_t *e;

	if (!json_is_array(v))
		return false;
	json_array_foreach(v, i, e)
		if (!json_is_object(e))
			return false;
	return true;
}

/*
 * Generic human rendering of an answer whose shape belongs to another
 * subsystem: scalars as "name: value", arrays of objects as tables (each
 * after a "name:" line), nested objects one level down as "name.sub: value".
 */
static void print_generic(json_t *doc)
{
	const char *k, *k2;
	json_t *v, *v2;

	if (is_table(doc)) {
		print_table(doc);
		return;
	}
	json_object_foreach(doc, k, v) {
		if (is_table(v)) {
			printf("%s: %zu\n", k, json_array_size(v));
			if (json_array_size(v))
				print_table(v);
		} else if (json_is_object(v)) {
			json_object_foreach(v, k2, v2) {
				char *t = cell_text(v2);

				if (t) {
					printf("%s.%s: %s\n", k, k2, t);
					free(t);
				}
			}
		} else {
			char *t = cell_text(v);

			if (t) {
				printf("%s: %s\n", k, t);
				free(t);
			}
		}
	}
}

/* One GET (or a body-carrying method) rendered by print_generic or --json. */
static int cmd_generic(const struct ctl *c, const char *method, const char *path,
		       const char *body)
{
	json_t *r;
	int rc = call_json(c, method, path, body, &r);

	if (rc)
		return rc;
	if (c->json)
		return print_json(r);
	print_generic(r);
	json_decref(r);
	return 0;
}

static const char *jstr(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));

	return v ? v : "";
}

static double jnum(json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

static int url_encode(const char *s, char *out, size_t outlen);

/* recommendations [--scope db|cache|all] [--period DURATION] */
static int cmd_recommendations(const struct ctl *c, int argc, char **argv)
{
	const char *scope = "all", *period = NULL;
	char path[256], pe[64];
	json_t *r, *recs, *x, *an, *plans;
	size_t i;
	int rc;

	for (int k = 1; k < argc; k++) {
		if (!strcmp(argv[k], "--scope") && k + 1 < argc)
			scope = argv[++k];
		else if (!strcmp(argv[k], "--period") && k + 1 < argc)
			period = argv[++k];
		else
			die_usage("recommendations [--scope db|cache|all] [--period DURATION]");
	}
	if (strcmp(scope, "db") && strcmp(scope, "cache") && strcmp(scope, "all"))
		die_usage("--scope is db, cache or all");
	if (period && url_encode(period, pe, sizeof(pe)))
		die_usage("--period too long");
	snprintf(path, sizeof(path), "/api/v2/performance/recommendations?scope=%s%s%s", scope,
		 period ? "&analysis_period=" : "", period ? pe : "");
	rc = call_json(c, "GET", path, NULL, &r);
	if (rc)
		return rc;
	if (c->json)
		return print_json(r);
	recs = json_object_get(r, "recommendations");
	an = json_object_get(r, "analysis");
	printf("%zu recommendation(s); advisor: %lld run(s), %lld queries analysed, last run %s\n",
	       json_array_size(recs), jint(an, "runs", NULL), jint(an, "queries_analysed", NULL),
	       jint(an, "last_run_ms", NULL) ? "done" : "not yet (hotpathctl optimize)");
	json_array_foreach(recs, i, x) {
		json_t *ev = json_object_get(x, "evidence");

		if (!strcmp(jstr(x, "type"), "index")) {
			json_t *ps = json_object_get(json_object_get(x, "sample"), "params"), *p;
			size_t k;

			printf("\n%zu. %s;\n", i + 1, jstr(x, "statement"));
			printf("   saves ~%.1f ms: %.1f%% of the plan's cost (%.1f -> %.1f) over %lld "
			       "calls of mean %.3f ms\n", jnum(x, "estimated_time_saved_ms"),
			       100 * jnum(x, "estimated_fraction_saved"), jnum(ev, "cost_before"),
			       jnum(ev, "cost_after"), jint(ev, "calls", NULL), jnum(ev, "mean_ms"));
			printf("   plan %s -> %s (hypothetical index %s)\n", jstr(ev, "plan_before"),
			       jstr(ev, "plan_after"), jstr(ev, "hypothetical_index"));
			printf("   query [%s %s]: %s\n", jstr(x, "database"), jstr(x, "fingerprint"),
			       jstr(x, "query"));
			printf("   sampled parameters:");
			json_array_foreach(ps, k, p)
				printf(" %s", json_is_string(p) ? json_string_value(p) : "NULL");
			printf("%s\n", json_array_size(ps) ? "" : " (none)");
		} else {
			printf("\n%zu. cache the results of [%s %s]: %s\n", i + 1, jstr(x, "database"),
			       jstr(x, "fingerprint"), jstr(x, "query"));
			printf("   saves ~%.1f ms: %lld calls of mean %.3f ms, %lld writes to its "
			       "tables\n   config: %s\n", jnum(x, "estimated_time_saved_ms"),
			       jint(x, "calls", NULL), jnum(x, "mean_ms"),
			       jint(x, "writes_to_tables", NULL), jstr(x, "config"));
		}
	}
	plans = json_object_get(r, "analysed_queries");
	json_array_foreach(plans, i, x) {
		json_t *fs = json_object_get(json_object_get(x, "plan"), "findings"), *f;
		size_t k;

		json_array_foreach(fs, k, f)
			printf("%s[%s %s] %s: %s\n", i == 0 && k == 0 ? "\nplan findings:\n  " : "  ",
			       jstr(x, "database"), jstr(x, "fingerprint"), jstr(f, "type"),
			       jstr(f, "detail"));
	}
	json_array_foreach(json_object_get(an, "errors"), i, x)
		printf("%s%s\n", i == 0 ? "\nadvisor notes:\n  " : "  ", json_string_value(x));
	json_decref(r);
	return 0;
}

/* optimize [TYPE] [--scope all|db|database:NAME]: queue a job, wait for it. */
static int cmd_optimize(const struct ctl *c, int argc, char **argv)
{
	const char *type = "index_recommendations", *scope = "all";
	char path[128];
	json_t *body, *r, *job;
	char *text;
	int rc;

	for (int k = 1; k < argc; k++) {
		if (!strcmp(argv[k], "--scope") && k + 1 < argc)
			scope = argv[++k];
		else if (argv[k][0] != '-' && k == 1)
			type = argv[k];
		else
			die_usage("optimize [index_recommendations|reset_query_stats] "
				  "[--scope all|db|database:NAME]");
	}
	body = json_pack("{s:s, s:s}", "optimization_type", type, "scope", scope);
	text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!text)
		die_usage("arguments must be valid UTF-8");
	rc = call_json(c, "POST", "/api/v2/performance/optimize", text, &r);
	free(text);
	if (rc)
		return rc;
	job = json_object_get(r, "job");
	snprintf(path, sizeof(path), "%s", jstr(job, "status_url"));
	json_decref(r);
	/* poll until it ends, within --timeout */
	for (unsigned waited = 0;; waited++) {
		const char *st;

		rc = call_json(c, "GET", path, NULL, &r);
		if (rc)
			return rc;
		st = jstr(json_object_get(r, "job"), "status");
		if (strcmp(st, "queued") && strcmp(st, "running"))
			break;
		json_decref(r);
		if (waited >= c->timeout_s * 4) {
			fprintf(stderr, "hotpathctl: job still %s after %us: %s\n", st, c->timeout_s,
				path);
			return EXIT_API;
		}
		usleep(250000);
	}
	if (c->json)
		return print_json(r);
	job = json_object_get(r, "job");
	printf("%s %s (%s): %s\n", jstr(job, "id"), jstr(job, "optimization_type"),
	       jstr(job, "scope"), jstr(job, "status"));
	print_generic(json_object_get(job, "result"));
	rc = strcmp(jstr(job, "status"), "succeeded") ? EXIT_API : 0;
	json_decref(r);
	return rc;
}

static int cmd_status(const struct ctl *c)
{
	json_t *h, *s, *l1, *parts;
	size_t i;
	int rc = call_json(c, "GET", "/api/v2/health", NULL, &h);

	if (rc)
		return rc;
	rc = call_json(c, "GET", "/api/v2/cache/status", NULL, &s);
	if (rc) {
		json_decref(h);
		return rc;
	}
	if (c->json)
		return print_json(json_pack("{s:o,s:o}", "health", h, "cache", s));
	{
		json_t *feats = json_object_get(h, "features"), *f;
		printf("hotpathd %s: %s, up %llds\n", json_string_value(json_object_get(h, "version")),
		       json_string_value(json_object_get(h, "status")), jint(h, "uptime_seconds", NULL));
		printf("features:");
		json_array_foreach(feats, i, f)
			printf(" %s%s", json_is_true(json_object_get(f, "available")) ? "+" : "-",
			       json_string_value(json_object_get(f, "name")));
		printf("\n");
		l1 = json_object_get(json_object_get(s, "tiers"), "l1");
		printf("l1: %lld keys, %lld / %lld bytes, policy %s\n", jint(l1, "keys", NULL),
		       jint(l1, "memory_bytes", NULL), jint(l1, "max_memory_bytes", NULL),
		       json_string_value(json_object_get(l1, "policy")));
		json_array_foreach(feats, i, f)
			if (!json_is_true(json_object_get(f, "available")))
				printf("  %s off: %s\n", json_string_value(json_object_get(f, "name")),
				       json_string_value(json_object_get(f, "reason")));
		parts = json_object_get(s, "partitions");
		if (is_table(parts) && json_array_size(parts)) {
			printf("partitions:\n");
			print_table(parts);
		}
	}
	json_decref(h);
	json_decref(s);
	return 0;
}

static int cmd_stats(const struct ctl *c)
{
	json_t *s, *t, *ratio;
	int rc = call_json(c, "GET", "/api/v2/cache/statistics?time_range=5m&granularity=10s",
			   NULL, &s);

	if (rc)
		return rc;
	if (c->json)
		return print_json(s);
	{
		t = json_object_get(json_object_get(s, "totals"), "l1");
		ratio = json_object_get(t, "hit_ratio");
		char rbuf[32] = "n/a";
		if (json_is_real(ratio))
			snprintf(rbuf, sizeof(rbuf), "%.1f%%", 100 * json_real_value(ratio));
		printf("l1: hits %lld misses %lld (hit ratio %s) sets %lld deletes %lld\n",
		       jint(t, "hits", NULL), jint(t, "misses", NULL), rbuf, jint(t, "sets", NULL),
		       jint(t, "deletes", NULL));
		printf("    keys %lld memory %lld bytes evictions %lld expired %lld\n",
		       jint(t, "keys", NULL), jint(t, "memory_bytes", NULL),
		       jint(t, "evictions_total", NULL),
		       jint(t, "expired", "lazy") + jint(t, "expired", "active"));
	}
	json_decref(s);
	return 0;
}

/* Percent-encode everything but unreserved characters. */
static int url_encode(const char *s, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    ch == '-' || ch == '_' || ch == '.' || ch == '~' || ch == '*' || ch == ':') {
			if (o + 1 >= outlen)
				return -E2BIG;
			out[o++] = (char)ch;
		} else {
			if (o + 3 >= outlen)
				return -E2BIG;
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	out[o] = '\0';
	return 0;
}

static int cmd_keys(const struct ctl *c, const char *pattern)
{
	char enc[4096], path[4300], cursor[32] = "0";
	json_t *all = c->json ? json_array() : NULL;
	long total = 0;

	if (url_encode(pattern, enc, sizeof(enc)))
		die_usage("pattern too long");
	for (unsigned page = 0; page < CTL_KEYS_PAGES; page++) {
		json_t *r, *keys, *k;
		const char *next;
		size_t i;
		int rc;

		snprintf(path, sizeof(path), "/api/v2/cache/keys/%s?count=1000&cursor=%s", enc, cursor);
		rc = call_json(c, "GET", path, NULL, &r);
		if (rc) {
			json_decref(all);
			return rc;
		}
		keys = json_object_get(r, "keys");
		if (all) {
			json_array_extend(all, keys);
		} else {
			json_array_foreach(keys, i, k) {
				json_t *ttl = json_object_get(k, "ttl_ms");
				if (json_is_integer(ttl))
					printf("%s\tttl=%lldms\n", json_string_value(json_object_get(k, "key")),
					       (long long)json_integer_value(ttl));
				else
					printf("%s\n", json_string_value(json_object_get(k, "key")));
			}
		}
		total += (long)json_array_size(keys);
		next = json_string_value(json_object_get(r, "next_cursor"));
		snprintf(cursor, sizeof(cursor), "%s", next ? next : "0");
		json_decref(r);
		if (strcmp(cursor, "0") == 0)
			break;
	}
	if (all)
		return print_json(json_pack("{s:s,s:o,s:i}", "pattern", pattern, "keys", all,
					    "count", (json_int_t)total));
	fprintf(stderr, "%ld key(s)\n", total);
	return 0;
}

static int cmd_invalidate(const struct ctl *c, const char *pattern)
{
	json_t *body = json_pack("{s:s,s:s}", "invalidation_pattern", pattern, "scope", "all"), *r;
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	int rc;

	json_decref(body);
	if (!text)
		die_usage("pattern must be valid UTF-8");
	rc = call_json(c, "DELETE", "/api/v2/performance/cache/invalidate", text, &r);
	free(text);
	if (rc)
		return rc;
	if (c->json)
		return print_json(r);
	printf("%lld key(s) invalidated\n", jint(r, "total", NULL));
	json_decref(r);
	return 0;
}

/*
 * warm keys K... | pattern GLOB | sql LOADER | snapshot: POST
 * /api/v2/performance/cache/warm {cache_scope, data_sources} with one data
 * source object {"type": ..., ...}. The warming job runs in the daemon; the
 * answer (its id and progress) is printed as the daemon sends it.
 */
static int cmd_warm(const struct ctl *c, int argc, char **argv)
{
	json_t *src = NULL, *body;
	char *text;
	int rc;

	if (argc >= 3 && strcmp(argv[1], "keys") == 0) {
		json_t *keys = json_array();

		for (int i = 2; i < argc; i++)
			if (json_array_append_new(keys, json_string(argv[i])))
				die_usage("keys must be valid UTF-8");
		src = json_pack("{s:s,s:o}", "type", "keys", "keys", keys);
	} else if (argc == 3 && strcmp(argv[1], "pattern") == 0) {
		src = json_pack("{s:s,s:s}", "type", "pattern", "pattern", argv[2]);
	} else if (argc == 3 && strcmp(argv[1], "sql") == 0) {
		src = json_pack("{s:s,s:s}", "type", "sql", "loader", argv[2]);
	} else if (argc == 2 && strcmp(argv[1], "snapshot") == 0) {
		src = json_pack("{s:s}", "type", "snapshot");
	} else {
		die_usage("warm keys KEY... | warm pattern GLOB | warm sql LOADER | warm snapshot");
	}
	if (!src)
		die_usage("arguments must be valid UTF-8");
	body = json_pack("{s:s,s:[o]}", "cache_scope", "all", "data_sources", src);
	text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!text)
		return EXIT_API;
	rc = cmd_generic(c, "POST", "/api/v2/performance/cache/warm", text);
	free(text);
	return rc;
}

struct profile_args {
	const char *pid, *service, *seconds, *format, *out;
};

/* --pid N | --service NAME, --seconds N, --format F, -o FILE after the verb. */
static void profile_parse(int argc, char **argv, struct profile_args *a, bool flame)
{
	static const struct option o[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "service", required_argument, NULL, 's' },
		{ "seconds", required_argument, NULL, 'n' },
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	memset(a, 0, sizeof(*a));
	optind = 0;     /* glibc: restart the scan over this argv */
	while ((opt = getopt_long(argc, argv, "+p:s:n:f:o:", o, NULL)) != -1) {
		switch (opt) {
		case 'p': a->pid = optarg; break;
		case 's': a->service = optarg; break;
		case 'n': a->seconds = optarg; break;
		case 'f': if (flame) { a->format = optarg; break; } /* fall through */
		case 'o': if (flame) { a->out = optarg; break; }    /* fall through */
		default: die_usage("%s [--pid N | --service NAME] [--seconds N]%s", argv[0],
				   flame ? " [--format svg|folded] [-o FILE]" : "");
		}
	}
	if (optind != argc)
		die_usage("%s: unexpected argument %s", argv[0], argv[optind]);
	if (a->pid && a->service)
		die_usage("give --pid or --service, not both");
	if (a->pid && a->pid[strspn(a->pid, "0123456789")] != '\0')
		die_usage("--pid takes a process id");
	if (a->seconds && (!a->seconds[0] || a->seconds[strspn(a->seconds, "0123456789")] ||
			   strlen(a->seconds) > 5))
		die_usage("--seconds takes a whole number of seconds");
	if (a->format && strcmp(a->format, "svg") != 0 && strcmp(a->format, "folded") != 0)
		die_usage("--format is svg or folded (profile gives the json view)");
}

static int profile_path(const struct profile_args *a, const char *format, char *path, size_t n)
{
	char enc[256] = "";

	if (a->service && url_encode(a->service, enc, sizeof(enc)))
		die_usage("service name too long");
	if ((size_t)snprintf(path, n, "/api/v2/performance/flamegraph?format=%s%s%s%s%s%s%s",
			     format, a->pid ? "&pid=" : "", a->pid ? a->pid : "",
			     a->service ? "&service=" : "", enc, a->seconds ? "&seconds=" : "",
			     a->seconds ? a->seconds : "") >= n)
		die_usage("arguments too long");
	return 0;
}

/* The read timeout must outlast the profile window. */
static void profile_timeout(struct ctl *c, const struct profile_args *a)
{
	unsigned long secs = a->seconds ? strtoul(a->seconds, NULL, 10) : 10;

	c->timeout_s += (unsigned)(secs > 3600 ? 3600 : secs);
}

/* profile: the flame graph's json view (hot functions) as a table. */
static int cmd_profile(struct ctl *c, int argc, char **argv)
{
	struct profile_args a;
	char path[512];

	profile_parse(argc, argv, &a, false);
	profile_path(&a, "json", path, sizeof(path));
	profile_timeout(c, &a);
	if (!c->json)
		fprintf(stderr, "sampling for %s s...\n", a.seconds ? a.seconds : "10");
	return cmd_generic(c, "GET", path, NULL);
}

/* flamegraph: the SVG (or folded stacks) to -o FILE or stdout. */
static int cmd_flamegraph(struct ctl *c, int argc, char **argv)
{
	struct profile_args a;
	struct http_resp r;
	char path[512];
	FILE *f = stdout;
	int rc;

	profile_parse(argc, argv, &a, true);
	profile_path(&a, a.format ? a.format : "svg", path, sizeof(path));
	profile_timeout(c, &a);
	if (!a.out && isatty(STDOUT_FILENO))
		die_usage("flamegraph writes %s: give -o FILE or redirect stdout",
			  a.format ? a.format : "svg");
	rc = http_do(c, "GET", path, NULL, &r);
	if (rc == 0 && (r.status < 200 || r.status > 299))
		rc = api_error(&r);
	if (rc == 0 && a.out && !(f = fopen(a.out, "we"))) {
		fprintf(stderr, "hotpathctl: %s: %s\n", a.out, strerror(errno));
		rc = EXIT_USAGE;
	}
	if (rc == 0) {
		if (fwrite(r.body, 1, r.body_len, f) != r.body_len || fflush(f) != 0) {
			fprintf(stderr, "hotpathctl: writing %s: %s\n", a.out ? a.out : "stdout",
				strerror(errno));
			rc = EXIT_USAGE;
		}
		if (f != stdout && fclose(f) != 0 && rc == 0) {
			fprintf(stderr, "hotpathctl: writing %s: %s\n", a.out, strerror(errno));
			rc = EXIT_USAGE;
		}
		if (rc == 0 && a.out)
			fprintf(stderr, "wrote %zu bytes to %s\n", r.body_len, a.out);
	}
	http_free(&r);
	return rc;
}

static int cmd_token_new(const char *name, const char *scopes)
{
	char tok[64], hex[2 * TOKENS_HASH_LEN + 1], err[256], norm[256];
	uint32_t set;

	if (!tokens_name_valid(name, strlen(name)))
		die_usage("token name must be 1-63 characters of A-Z a-z 0-9 _ . @ -");
	if (tokens_scopes_parse(scopes, strlen(scopes), &set, err, sizeof(err)))
		die_usage("%s", err);
	if (tokens_generate(tok, sizeof(tok)) || tokens_hash_hex(tok, strlen(tok), hex)) {
		fprintf(stderr, "hotpathctl: cannot generate a token: %s\n", strerror(errno));
		return EXIT_API;
	}
	tokens_scopes_format(set, norm, sizeof(norm));
	printf("token: %s\n", tok);
	printf("add this line to the tokens file (then: systemctl reload hotpathd):\n");
	printf("%s %s %s\n", name, hex, norm);
	fprintf(stderr, "the token is shown only now; the file keeps only its SHA-256\n");
	return 0;
}

static void read_token_file(const char *path, struct ctl *c)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f) {
		fprintf(stderr, "hotpathctl: %s: %s\n", path, strerror(errno));
		exit(EXIT_USAGE);
	}
	if (!fgets(c->token, sizeof(c->token), f))
		c->token[0] = '\0';
	fclose(f);
	n = strcspn(c->token, "\r\n");
	c->token[n] = '\0';
	while (n > 0 && (c->token[n - 1] == ' ' || c->token[n - 1] == '\t'))
		c->token[--n] = '\0';
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "token-file", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "timeout", required_argument, NULL, 'T' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl c;
	const char *token_file = NULL, *env;
	int opt;

	memset(&c, 0, sizeof(c));
	c.url = CTL_DEFAULT_URL;
	c.timeout_s = CTL_TIMEOUT_S;
	while ((opt = getopt_long(argc, argv, "+u:t:jh", opts, NULL)) != -1) {
		switch (opt) {
		case 'u': c.url = optarg; break;
		case 't': token_file = optarg; break;
		case 'j': c.json = true; break;
		case 'T': {
			char *end;
			unsigned long t = strtoul(optarg, &end, 10);

			if (!*optarg || *end || t < 1 || t > 3600)
				die_usage("--timeout takes 1..3600 seconds");
			c.timeout_s = (unsigned)t;
			break;
		}
		case 'V': printf("hotpathctl %s\n", HOTPATH_VERSION); return 0;
		case 'h':
		default: die_usage(opt == 'h' ? "help" : "bad option");
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		die_usage("no command");
	if (strcmp(argv[0], "token") == 0) {
		if (argc != 4 || strcmp(argv[1], "new") != 0)
			die_usage("token new NAME SCOPES   (SCOPES: comma list, or '*')");
		return cmd_token_new(argv[2], argv[3]);
	}
	if (parse_url(c.url, &c))
		die_usage("--url must look like http://HOST:PORT");
	if (token_file)
		read_token_file(token_file, &c);
	else if ((env = getenv("HOTPATH_TOKEN")) != NULL)
		snprintf(c.token, sizeof(c.token), "%s", env);

	if (strcmp(argv[0], "status") == 0 && argc == 1)
		return cmd_status(&c);
	if (strcmp(argv[0], "stats") == 0 && argc == 1)
		return cmd_stats(&c);
	if (strcmp(argv[0], "keys") == 0 && argc == 2)
		return cmd_keys(&c, argv[1]);
	if (strcmp(argv[0], "invalidate") == 0 && argc == 2)
		return cmd_invalidate(&c, argv[1]);
	if (strcmp(argv[0], "warm") == 0)
		return cmd_warm(&c, argc, argv);
	if (strcmp(argv[0], "profile") == 0)
		return cmd_profile(&c, argc, argv);
	if (strcmp(argv[0], "flamegraph") == 0)
		return cmd_flamegraph(&c, argc, argv);
	/* Routes of other subsystems: shown as the daemon answers them. */
	if (strcmp(argv[0], "top") == 0 && argc == 1)
		return cmd_generic(&c, "GET", "/api/v2/performance/metrics?metric_types=latency"
				   "&time_range=5m", NULL);
	if (strcmp(argv[0], "queries") == 0 && argc == 1)
		return cmd_generic(&c, "GET", "/api/v2/performance/queries", NULL);
	if (strcmp(argv[0], "recommendations") == 0)
		return cmd_recommendations(&c, argc, argv);
	if (strcmp(argv[0], "optimize") == 0)
		return cmd_optimize(&c, argc, argv);
	if (strcmp(argv[0], "pools") == 0 && argc == 1)
		return cmd_generic(&c, "GET", "/api/v2/pools", NULL);
	if (strcmp(argv[0], "breakers") == 0 && argc == 1)
		return cmd_generic(&c, "GET", "/api/v2/breakers", NULL);
	die_usage("unknown command or wrong arguments: %s", argv[0]);
	return EXIT_USAGE;
}
