/*
 * http_cache.c - RFC 9111 rules for the proxy's shared cache, and the
 * stored-object format (see include/hotpath/http_cache.h).
 *
 * How: directives are parsed once per message into struct http_cc;
 * storability, freshness lifetime and the flags that matter at use time
 * (no-cache, must-revalidate, stale windows) are decided when a response
 * is stored and written into the object's fixed header, so a hit is
 * arithmetic on that header plus one copy of its head and body. Ages
 * follow RFC 9111 4.2.3 exactly (apparent age from Date, corrected by the
 * response delay, plus resident time). Heuristic freshness is 10% of
 * (Date - Last-Modified), at most a day, and only for the status codes the
 * RFC calls heuristically cacheable or with `public`.
 *
 * What not: no storage of partial content (206) or of responses to
 * methods other than GET; qualified no-cache="field" and private="field"
 * are treated as their unqualified forms (allowed, and safe).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "hotpath/http_cache.h"

#define HC_HEURISTIC_MAX 86400
#define HC_DELTA_MAX 2147483648LL   /* RFC 9111 1.2.2: cap at 2^31 */

static bool ows(char c)
{
	return c == ' ' || c == '\t';
}

/* delta-seconds = 1*DIGIT; -1 if malformed. Values past 2^31 are capped. */
static int64_t delta_seconds(const char *s, size_t n)
{
	int64_t v = 0;

	if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
		s++;
		n -= 2;   /* tolerated on receipt (RFC 9111 5.2) */
	}
	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		if (v < HC_DELTA_MAX)
			v = v * 10 + (s[i] - '0');
	}
	return v > HC_DELTA_MAX ? HC_DELTA_MAX : v;
}

static void set_delta(int64_t *slot, bool *invalid, const char *v, size_t vl, bool has_v)
{
	int64_t d = has_v ? delta_seconds(v, vl) : -1;

	if (*slot != HC_NONE)
		return;            /* first occurrence wins */
	if (d < 0) {
		*invalid = true;
		*slot = 0;         /* an invalid value makes the response stale */
		return;
	}
	*slot = d;
}

static void cc_directives(const char *s, size_t n, struct http_cc *cc)
{
	size_t i = 0;

	while (i < n) {
		size_t ns, ne, vs = 0, ve = 0;
		bool has_v = false;

		while (i < n && (ows(s[i]) || s[i] == ','))
			i++;
		if (i >= n)
			break;
		ns = i;
		while (i < n && s[i] != '=' && s[i] != ',' && !ows(s[i]))
			i++;
		ne = i;
		while (i < n && ows(s[i]))
			i++;
		if (i < n && s[i] == '=') {
			i++;
			while (i < n && ows(s[i]))
				i++;
			vs = i;
			if (i < n && s[i] == '"') {
				i++;
				while (i < n && s[i] != '"') {
					if (s[i] == '\\' && i + 1 < n)
						i++;
					i++;
				}
				if (i < n)
					i++;
			} else {
				while (i < n && s[i] != ',' && !ows(s[i]))
					i++;
			}
			ve = i;
			has_v = true;
		}
		while (i < n && s[i] != ',')
			i++;
#define D(lit) http_ieq(s + ns, ne - ns, lit)
		if (D("no-store"))
			cc->no_store = true;
		else if (D("no-cache"))
			cc->no_cache = true;
		else if (D("private"))
			cc->private_ = true;
		else if (D("public"))
			cc->public_ = true;
		else if (D("must-revalidate"))
			cc->must_revalidate = true;
		else if (D("proxy-revalidate"))
			cc->proxy_revalidate = true;
		else if (D("only-if-cached"))
			cc->only_if_cached = true;
		else if (D("must-understand"))
			cc->must_understand = true;
		else if (D("immutable"))
			cc->immutable = true;
		else if (D("no-transform"))
			cc->no_transform = true;
		else if (D("max-age"))
			set_delta(&cc->max_age, &cc->invalid, s + vs, ve - vs, has_v);
		else if (D("s-maxage"))
			set_delta(&cc->s_maxage, &cc->invalid, s + vs, ve - vs, has_v);
		else if (D("min-fresh"))
			set_delta(&cc->min_fresh, &cc->invalid, s + vs, ve - vs, has_v);
		else if (D("stale-while-revalidate"))
			set_delta(&cc->swr, &cc->invalid, s + vs, ve - vs, has_v);
		else if (D("stale-if-error"))
			set_delta(&cc->sie, &cc->invalid, s + vs, ve - vs, has_v);
		else if (D("max-stale")) {
			if (!has_v)
				cc->max_stale_any = true;
			else
				set_delta(&cc->max_stale, &cc->invalid, s + vs, ve - vs, true);
		}
#undef D
	}
}

void http_cc_parse(const struct http_msg *m, struct http_cc *cc)
{
	bool any = false;

	memset(cc, 0, sizeof(*cc));
	cc->max_age = cc->s_maxage = cc->max_stale = cc->min_fresh = HC_NONE;
	cc->swr = cc->sie = HC_NONE;
	for (int i = http_header_find(m, "cache-control", 0); i >= 0;
	     i = http_header_find(m, "cache-control", i + 1)) {
		cc_directives(m->headers[i].value, m->headers[i].vlen, cc);
		any = true;
	}
	/* RFC 9111 5.4: Pragma: no-cache only counts without Cache-Control. */
	if (!any && m->request) {
		size_t vl;
		const char *v = http_header_get(m, "pragma", &vl);

		if (v && http_list_has(v, vl, "no-cache"))
			cc->no_cache = true;
	}
}

/* ---- objects ---------------------------------------------------------------- */

int hc_view(const char *val, size_t len, struct hc_view *v)
{
	const struct hc_obj *o = (const void *)val;

	if (len < sizeof(*o) || ((uintptr_t)val & 7) || o->magic != HC_MAGIC_OBJ)
		return -EINVAL;
	if ((uint64_t)o->head_len + o->body_len + o->vary_len > len - sizeof(*o) ||
	    (uint64_t)o->etag_off + o->etag_len > o->head_len)
		return -EINVAL;
	v->o = o;
	v->head = val + sizeof(*o);
	v->body = v->head + o->head_len;
	v->vary_sig = v->body + o->body_len;
	return 0;
}

int hc_vary_parse(const char *val, size_t len, struct hc_vary *v)
{
	uint32_t magic;

	if (len < 12 || len - 12 >= sizeof(v->fields))
		return -EINVAL;
	memcpy(&magic, val, 4);
	if (magic != HC_MAGIC_VARY)
		return -EINVAL;
	memcpy(&v->gen, val + 4, 8);
	memcpy(v->fields, val + 12, len - 12);
	v->fields[len - 12] = '\0';
	v->star = false;
	return 0;
}

int hc_vary_build(struct buf *out, const struct hc_vary *v)
{
	uint32_t magic = HC_MAGIC_VARY;
	int rc;

	if ((rc = buf_append(out, &magic, 4)) || (rc = buf_append(out, &v->gen, 8)))
		return rc;
	return buf_append_str(out, v->fields);
}

bool hc_vary_from_response(const struct http_msg *resp, struct hc_vary *v)
{
	size_t n = 0;

	memset(v, 0, sizeof(*v));
	for (int i = http_header_find(resp, "vary", 0); i >= 0;
	     i = http_header_find(resp, "vary", i + 1)) {
		const char *s = resp->headers[i].value;
		size_t sl = resp->headers[i].vlen, k = 0;

		while (k < sl) {
			size_t a, e;

			while (k < sl && (ows(s[k]) || s[k] == ','))
				k++;
			a = k;
			while (k < sl && s[k] != ',')
				k++;
			e = k;
			while (e > a && ows(s[e - 1]))
				e--;
			if (e == a)
				continue;
			if (e - a == 1 && s[a] == '*') {
				v->star = true;
				continue;
			}
			if (n + (e - a) + 2 >= sizeof(v->fields)) {
				v->star = true;   /* too many to track: never match */
				continue;
			}
			if (n)
				v->fields[n++] = ',';
			for (size_t j = a; j < e; j++)
				v->fields[n++] = (char)tolower((unsigned char)s[j]);
		}
	}
	v->fields[n] = '\0';
	return n > 0 || v->star;
}

int hc_vary_signature(const struct http_msg *req, const struct hc_vary *v, struct buf *out)
{
	const char *f = v->fields;
	int rc;

	while (*f) {
		const char *e = strchr(f, ',');
		size_t fl = e ? (size_t)(e - f) : strlen(f);
		char name[128];
		bool first = true;

		if (fl >= sizeof(name))
			fl = sizeof(name) - 1;
		memcpy(name, f, fl);
		name[fl] = '\0';
		if ((rc = buf_printf(out, "%s:", name)))
			return rc;
		/* combine field lines with ", " and squeeze whitespace runs */
		for (int i = http_header_find(req, name, 0); i >= 0;
		     i = http_header_find(req, name, i + 1)) {
			const char *s = req->headers[i].value;
			size_t n = req->headers[i].vlen;
			bool sp = false;

			if (!first && (rc = buf_append(out, ",", 1)))
				return rc;
			first = false;
			for (size_t k = 0; k < n; k++) {
				if (ows(s[k])) {
					sp = true;
					continue;
				}
				if (sp && (rc = buf_append(out, " ", 1)))
					return rc;
				sp = false;
				if ((rc = buf_append(out, s + k, 1)))
					return rc;
			}
		}
		if ((rc = buf_append(out, "\n", 1)))
			return rc;
		f += fl;
		if (*f == ',')
			f++;
	}
	return 0;
}

/* RFC 9110 15.1: heuristically cacheable status codes. */
static bool heuristic_status(unsigned s)
{
	switch (s) {
	case 200: case 203: case 204: case 206: case 300: case 301: case 308:
	case 404: case 405: case 410: case 414: case 501:
		return true;
	}
	return false;
}

/* Status codes whose semantics this cache understands well enough to store. */
static bool understood_status(unsigned s)
{
	switch (s) {
	case 200: case 203: case 204: case 300: case 301: case 302: case 303:
	case 307: case 308: case 404: case 405: case 410: case 414:
	case 500: case 501: case 502: case 503: case 504:
		return true;
	}
	return false;
}

bool hc_storable(const struct http_msg *req, const struct http_cc *rqcc,
		 const struct http_msg *resp, const struct http_cc *rscc, const char **why)
{
	size_t vl;

	if (req->meth != HTTP_M_GET) {
		*why = "method";
		return false;
	}
	if (resp->status == 206 || resp->status == 304 || resp->status < 200) {
		*why = "status";
		return false;
	}
	if (rscc->must_understand) {
		if (!understood_status(resp->status)) {
			*why = "must-understand";
			return false;
		}
	} else if (rscc->no_store) {
		*why = "no-store";
		return false;
	}
	if (rqcc->no_store) {
		*why = "request no-store";
		return false;
	}
	if (rscc->private_) {
		*why = "private";
		return false;
	}
	if (http_header_get(req, "authorization", &vl) &&
	    !(rscc->public_ || rscc->must_revalidate || rscc->s_maxage != HC_NONE)) {
		*why = "authorization";
		return false;
	}
	if (!understood_status(resp->status) && !heuristic_status(resp->status)) {
		*why = "status";
		return false;
	}
	if (rscc->public_ || rscc->max_age != HC_NONE || rscc->s_maxage != HC_NONE ||
	    http_header_get(resp, "expires", &vl) || heuristic_status(resp->status) ||
	    rscc->no_cache)
		return true;
	*why = "no freshness";
	return false;
}

static int64_t date_of(const struct http_msg *m, const char *name)
{
	size_t vl;
	const char *v = http_header_get(m, name, &vl);

	/* two fields of a singleton: treat as absent/invalid */
	if (!v || http_header_find(m, name, http_header_find(m, name, 0) + 1) >= 0)
		return HC_NONE;
	return http_date_parse(v, vl);
}

static int64_t lifetime_of(const struct http_msg *resp, const struct http_cc *cc, int64_t date,
			   int64_t lm, bool *heuristic)
{
	size_t vl;
	const char *exp;

	*heuristic = false;
	if (cc->s_maxage != HC_NONE)
		return cc->s_maxage;
	if (cc->max_age != HC_NONE)
		return cc->max_age;
	exp = http_header_get(resp, "expires", &vl);
	if (exp) {
		int64_t e = date_of(resp, "expires");

		/* invalid Expires (e.g. "0") means already expired */
		if (e == HC_NONE)
			return 0;
		return e > date ? e - date : 0;
	}
	if ((heuristic_status(resp->status) || cc->public_) && lm != HC_NONE && lm < date) {
		int64_t h = (date - lm) / 10;

		*heuristic = true;
		return h > HC_HEURISTIC_MAX ? HC_HEURISTIC_MAX : h;
	}
	return 0;
}

bool hc_hop_by_hop(const char *name, size_t nlen, const struct http_msg *m)
{
	static const char *const hop[] = {
		"connection", "keep-alive", "proxy-connection", "te", "transfer-encoding",
		"upgrade", "trailer", "proxy-authenticate", "proxy-authorization",
	};

	for (unsigned i = 0; i < HP_ARRAY_SIZE(hop); i++)
		if (http_ieq(name, nlen, hop[i]))
			return true;
	/* fields named by Connection */
	for (int i = http_header_find(m, "connection", 0); i >= 0;
	     i = http_header_find(m, "connection", i + 1)) {
		char tmp[64];

		if (nlen >= sizeof(tmp))
			continue;
		memcpy(tmp, name, nlen);
		tmp[nlen] = '\0';
		if (http_list_has(m->headers[i].value, m->headers[i].vlen, tmp))
			return true;
	}
	return false;
}

/* Fields a stored object never keeps: framing and ones we regenerate. */
static bool not_stored(const char *name, size_t nlen, const struct http_msg *m)
{
	return hc_hop_by_hop(name, nlen, m) || http_ieq(name, nlen, "content-length") ||
	       http_ieq(name, nlen, "age") || http_ieq(name, nlen, "cache-status");
}

/* Write the head and the object header (lengths patched by the caller). */
static int build_common(struct buf *out, struct hc_obj *o, const struct http_msg *resp,
			const struct http_cc *cc, int64_t request_time, int64_t response_time)
{
	size_t head_start;
	int64_t date;
	bool heur;
	char dbuf[40];
	int rc;

	memset(o, 0, sizeof(*o));
	o->magic = HC_MAGIC_OBJ;
	o->status = (uint16_t)resp->status;
	o->request_time = request_time;
	o->response_time = response_time;
	date = date_of(resp, "date");
	if (date == HC_NONE)
		date = response_time;
	o->date = date;
	{
		/* Age must be one field line holding delta-seconds; anything
		 * else (a list, a sign, a fraction, parameters, a second line)
		 * makes the response stale rather than guessing. */
		size_t vl;
		int first = http_header_find(resp, "age", 0);
		const char *a = first >= 0 ? resp->headers[first].value : NULL;
		int64_t av = 0;

		if (a) {
			vl = resp->headers[first].vlen;
			av = (vl && a[0] != '"') ? delta_seconds(a, vl) : -1;
			if (http_header_find(resp, "age", first + 1) >= 0)
				av = -1;
		}
		o->age_value = av < 0 ? HC_DELTA_MAX : av;
	}
	o->last_modified = date_of(resp, "last-modified");
	o->lifetime = lifetime_of(resp, cc, date, o->last_modified, &heur);
	o->swr = cc->swr;
	o->sie = cc->sie;
	if (cc->no_cache)
		o->flags |= HC_F_NO_CACHE;
	if (cc->must_revalidate || cc->proxy_revalidate || cc->s_maxage != HC_NONE)
		o->flags |= HC_F_MUST_REVALIDATE;   /* s-maxage implies proxy-revalidate */
	if (heur)
		o->flags |= HC_F_HEURISTIC;
	if ((rc = buf_reserve(out, sizeof(*o) + 7)))
		return rc;
	/* keep the object 8-byte aligned inside the buffer */
	rc = buf_append(out, o, sizeof(*o));
	if (rc)
		return rc;
	head_start = buf_used(out);
	if ((rc = buf_printf(out, "HTTP/1.1 %u %.*s\r\n", resp->status, (int)resp->reason_len,
			     resp->reason)))
		return rc;
	for (unsigned i = 0; i < resp->nheaders; i++) {
		const struct http_header *h = &resp->headers[i];

		if (not_stored(h->name, h->nlen, resp))
			continue;
		if (http_ieq(h->name, h->nlen, "etag")) {
			o->etag_off = (uint32_t)(buf_used(out) - head_start + h->nlen + 2);
			o->etag_len = (uint32_t)h->vlen;
		}
		if ((rc = buf_printf(out, "%.*s: %.*s\r\n", (int)h->nlen, h->name, (int)h->vlen,
				     h->value)))
			return rc;
	}
	if (http_header_find(resp, "date", 0) < 0) {
		http_date_format(response_time, dbuf, sizeof(dbuf));
		if ((rc = buf_printf(out, "Date: %s\r\n", dbuf)))
			return rc;
	}
	o->head_len = (uint32_t)(buf_used(out) - head_start);
	return 0;
}

/* Find the ETag in a built head if it came from the old head (304 update). */
static void find_etag(struct hc_obj *o, const char *head)
{
	const char *p = head;
	const char *end = head + o->head_len;

	o->etag_off = o->etag_len = 0;
	while (p < end) {
		const char *le = memchr(p, '\n', (size_t)(end - p));

		if (!le)
			break;
		if ((size_t)(le - p) > 5 && strncasecmp(p, "etag:", 5) == 0) {
			const char *v = p + 5, *ve = le;

			while (v < ve && ows(*v))
				v++;
			while (ve > v && (ve[-1] == '\r' || ows(ve[-1])))
				ve--;
			o->etag_off = (uint32_t)(v - head);
			o->etag_len = (uint32_t)(ve - v);
			return;
		}
		p = le + 1;
	}
}

int hc_build(struct buf *out, const struct http_msg *resp, const struct http_cc *rscc,
	     const char *body, size_t body_len, int64_t request_time, int64_t response_time,
	     bool auth_ok, const char *vary_sig, size_t vary_len)
{
	struct hc_obj o;
	size_t start = buf_used(out);
	int rc;

	if (body_len > UINT32_MAX || vary_len > UINT32_MAX)
		return -ENOBUFS;
	rc = build_common(out, &o, resp, rscc, request_time, response_time);
	if (rc)
		return rc;
	if (auth_ok)
		o.flags |= HC_F_AUTH_OK;
	o.body_len = (uint32_t)body_len;
	o.vary_len = (uint32_t)vary_len;
	if ((body_len && (rc = buf_append(out, body, body_len))) ||
	    (vary_len && (rc = buf_append(out, vary_sig, vary_len))))
		return rc;
	memcpy(buf_head(out) + start, &o, sizeof(o));
	return 0;
}

int hc_update_304(struct buf *out, const struct hc_view *old, const struct http_msg *r304,
		  int64_t request_time, int64_t response_time)
{
	struct http_msg *merged = malloc(sizeof(*merged));
	struct http_cc cc;
	struct hc_obj o;
	struct buf tmp;
	size_t start = buf_used(out);
	int rc;

	if (!merged)
		return -ENOMEM;
	/* Parse the stored head + the 304's fields as one message so the
	 * lifetime is computed from the updated fields. */
	buf_init(&tmp, 1 << 20);
	rc = buf_append(&tmp, old->head, old->o->head_len);
	for (unsigned i = 0; !rc && i < r304->nheaders; i++) {
		const struct http_header *h = &r304->headers[i];

		/* RFC 9111 3.2: these describe the stored body, or identify it,
		 * and are not taken from a 304 */
		if (not_stored(h->name, h->nlen, r304) ||
		    http_ieq(h->name, h->nlen, "content-encoding") ||
		    http_ieq(h->name, h->nlen, "content-md5") ||
		    http_ieq(h->name, h->nlen, "content-range") ||
		    http_ieq(h->name, h->nlen, "etag"))
			continue;
		rc = buf_printf(&tmp, "%.*s: %.*s\r\n", (int)h->nlen, h->name, (int)h->vlen,
				h->value);
	}
	if (!rc)
		rc = buf_append(&tmp, "\r\n", 2);
	if (!rc) {
		struct http_limits lim;
		/* Later fields win: build a message where the 304's copy replaces
		 * the stored one by dropping stored duplicates. */
		http_limits_default(&lim);
		lim.max_head = buf_used(&tmp) + 16;
		lim.max_headers = HTTP_MAX_HEADERS;
		if (http_parse_head(buf_head(&tmp), buf_used(&tmp), false, HTTP_M_GET, &lim,
				    merged) != HTTP_PARSE_OK) {
			rc = -EINVAL;
		} else {
			unsigned stored_n = 0;

			/* headers from the stored head come first; drop those the 304 replaced */
			for (unsigned i = 0; i < merged->nheaders; i++)
				if ((size_t)(merged->headers[i].name - buf_head(&tmp)) <
				    old->o->head_len)
					stored_n = i + 1;
			{
				unsigned w = 0;

				for (unsigned i = 0; i < merged->nheaders; i++) {
					struct http_header h = merged->headers[i];
					bool replaced = false;

					if (i < stored_n) {
						char nm[128];

						if (h.nlen < sizeof(nm)) {
							memcpy(nm, h.name, h.nlen);
							nm[h.nlen] = '\0';
							for (unsigned j = stored_n; j < merged->nheaders; j++)
								if (http_ieq(merged->headers[j].name,
									     merged->headers[j].nlen, nm))
									replaced = true;
						}
					}
					if (!replaced)
						merged->headers[w++] = h;
				}
				merged->nheaders = w;
			}
			http_cc_parse(merged, &cc);
			rc = build_common(out, &o, merged, &cc, request_time, response_time);
		}
	}
	if (!rc) {
		o.flags |= old->o->flags & (HC_F_AUTH_OK | HC_F_COMPRESSED | HC_F_COMPRESSIBLE |
					     HC_F_VARY_AE);
		o.body_len = old->o->body_len;
		o.vary_len = old->o->vary_len;
		if ((o.body_len && (rc = buf_append(out, old->body, o.body_len))) ||
		    (o.vary_len && (rc = buf_append(out, old->vary_sig, o.vary_len))))
			;
		else {
			find_etag(&o, buf_head(out) + start + sizeof(o));
			memcpy(buf_head(out) + start, &o, sizeof(o));
		}
	}
	buf_free(&tmp);
	free(merged);
	return rc;
}

int hc_build_encoded(struct buf *out, const struct hc_view *id, const char *coding,
		     const char *etag, size_t etag_len, const char *body, size_t body_len)
{
	struct hc_obj o = *id->o;
	const char *p = id->head, *end = id->head + id->o->head_len;
	size_t start = buf_used(out), head_start;
	int rc;

	if (body_len > UINT32_MAX)
		return -ENOBUFS;
	o.flags = (uint16_t)((o.flags & ~(HC_F_COMPRESSIBLE | HC_F_VARY_AE)) | HC_F_COMPRESSED);
	o.body_len = (uint32_t)body_len;
	if ((rc = buf_append(out, &o, sizeof(o))))
		return rc;
	head_start = buf_used(out);
	while (p < end) {
		const char *le = memchr(p, '\n', (size_t)(end - p));
		size_t ll = le ? (size_t)(le + 1 - p) : (size_t)(end - p);

		/* the identity's validator names the identity bytes: not ours */
		if (!(ll > 5 && strncasecmp(p, "etag:", 5) == 0) &&
		    (rc = buf_append(out, p, ll)))
			return rc;
		p += ll;
	}
	if ((etag_len && (rc = buf_printf(out, "ETag: %.*s\r\n", (int)etag_len, etag))) ||
	    (rc = buf_printf(out, "Content-Encoding: %s\r\n", coding)) ||
	    ((id->o->flags & HC_F_VARY_AE) &&
	     (rc = buf_append_str(out, "Vary: Accept-Encoding\r\n"))))
		return rc;
	o.head_len = (uint32_t)(buf_used(out) - head_start);
	if ((body_len && (rc = buf_append(out, body, body_len))) ||
	    (o.vary_len && (rc = buf_append(out, id->vary_sig, o.vary_len))))
		return rc;
	find_etag(&o, buf_head(out) + head_start);
	memcpy(buf_head(out) + start, &o, sizeof(o));
	return 0;
}

/* ---- use ---------------------------------------------------------------------- */

int64_t hc_age(const struct hc_obj *o, int64_t now)
{
	int64_t apparent = o->response_time - o->date;
	int64_t delay = o->response_time - o->request_time;
	int64_t corrected_age = o->age_value + (delay > 0 ? delay : 0);
	int64_t initial = apparent > corrected_age ? apparent : corrected_age;
	int64_t resident = now - o->response_time;

	if (initial < 0)
		initial = 0;
	return initial + (resident > 0 ? resident : 0);
}

enum hc_use hc_decide(const struct hc_obj *o, const struct http_cc *rq, int64_t now)
{
	int64_t age = hc_age(o, now), life = o->lifetime;

	if (o->flags & HC_F_NO_CACHE)
		return HC_USE_REVALIDATE;
	if (rq->no_cache)
		return HC_USE_REVALIDATE;
	if (rq->max_age != HC_NONE && age > rq->max_age)
		return HC_USE_REVALIDATE;
	if (rq->min_fresh != HC_NONE && life - age < rq->min_fresh)
		return HC_USE_REVALIDATE;
	if (age < life)
		return HC_USE_FRESH;
	if (o->flags & HC_F_MUST_REVALIDATE)
		return HC_USE_REVALIDATE;
	if (rq->max_stale_any || (rq->max_stale != HC_NONE && age - life <= rq->max_stale))
		return HC_USE_FRESH;
	if (o->swr != HC_NONE && age - life < o->swr)
		return HC_USE_STALE_SWR;
	return HC_USE_REVALIDATE;
}

bool hc_stale_if_error_ok(const struct hc_obj *o, const struct http_cc *rq, int64_t now)
{
	int64_t stale = hc_age(o, now) - o->lifetime;

	if (o->flags & (HC_F_MUST_REVALIDATE | HC_F_NO_CACHE))
		return false;
	if (rq->sie != HC_NONE && stale <= rq->sie)
		return true;
	return o->sie != HC_NONE && stale <= o->sie;
}

int64_t hc_keep_seconds(const struct hc_obj *o, int64_t now, int64_t keep_stale)
{
	int64_t left = o->lifetime - hc_age(o, now), extra = keep_stale;

	if (o->swr != HC_NONE && o->swr > extra)
		extra = o->swr;
	if (o->sie != HC_NONE && o->sie > extra)
		extra = o->sie;
	if (left < 0)
		left = 0;
	return left + extra;
}

/* Does list `v` hold an entity-tag weakly equal to `etag`? */
static bool etag_in_list(const char *v, size_t vl, const char *etag, size_t el)
{
	size_t i = 0;

	if (el > 2 && etag[0] == 'W' && etag[1] == '/') {
		etag += 2;
		el -= 2;
	}
	while (i < vl) {
		size_t a, e;

		while (i < vl && (ows(v[i]) || v[i] == ','))
			i++;
		a = i;
		if (i + 1 < vl && v[i] == 'W' && v[i + 1] == '/')
			i += 2;
		if (i < vl && v[i] == '"') {
			i++;
			while (i < vl && v[i] != '"')
				i++;
			if (i < vl)
				i++;
		} else {
			while (i < vl && v[i] != ',')
				i++;
		}
		e = i;
		if (e - a > 2 && v[a] == 'W' && v[a + 1] == '/')
			a += 2;
		if (e - a == el && memcmp(v + a, etag, el) == 0)
			return true;
	}
	return false;
}

bool hc_not_modified(const struct http_msg *req, const struct hc_view *v, const char *etag,
		     size_t etag_len)
{
	size_t vl;
	const char *inm = http_header_get(req, "if-none-match", &vl);

	if (req->meth != HTTP_M_GET && req->meth != HTTP_M_HEAD)
		return false;
	if (inm) {
		for (size_t k = 0; k < vl; k++)
			if (inm[k] == '*')
				return true;
		return etag_len && etag_in_list(inm, vl, etag, etag_len);
	}
	inm = http_header_get(req, "if-modified-since", &vl);
	if (inm) {
		int64_t ims = http_date_parse(inm, vl);
		int64_t lm = v->o->last_modified != HC_NONE ? v->o->last_modified : v->o->date;

		return ims != -1 && lm <= ims;
	}
	return false;
}

int hc_range(const struct http_msg *req, const struct hc_view *v, uint64_t *start, uint64_t *len)
{
	size_t vl, il;
	const char *r = http_header_get(req, "range", &vl);
	const char *ir = http_header_get(req, "if-range", &il);
	uint64_t size = v->o->body_len, a = 0, b = 0;
	size_t i = 6;
	bool has_a = false, has_b = false;

	if (!r || req->meth != HTTP_M_GET || v->o->status != 200)
		return 0;
	if (ir) {
		/* If-Range: a strong ETag match, or the exact Last-Modified date */
		bool ok = false;

		if (il > 2 && ir[0] == '"')
			ok = v->o->etag_len == il && memcmp(v->head + v->o->etag_off, ir, il) == 0;
		else
			ok = v->o->last_modified != HC_NONE &&
			     http_date_parse(ir, il) == v->o->last_modified;
		if (!ok)
			return 0;
	}
	if (vl < 7 || strncasecmp(r, "bytes=", 6) != 0)
		return 0;
	while (i < vl && r[i] >= '0' && r[i] <= '9' && a < (UINT64_C(1) << 60)) {
		a = a * 10 + (uint64_t)(r[i++] - '0');
		has_a = true;
	}
	if (i >= vl || r[i] != '-')
		return 0;
	i++;
	while (i < vl && r[i] >= '0' && r[i] <= '9' && b < (UINT64_C(1) << 60)) {
		b = b * 10 + (uint64_t)(r[i++] - '0');
		has_b = true;
	}
	if (i != vl)
		return 0;       /* several ranges or junk: send the whole body */
	if (!has_a && !has_b)
		return 0;
	if (!has_a) {           /* suffix: the last b bytes */
		if (b == 0)
			return -1;
		*start = b >= size ? 0 : size - b;
		*len = size - *start;
		return 1;
	}
	if (a >= size)
		return -1;
	if (!has_b || b >= size)
		b = size - 1;
	if (b < a)
		return 0;
	*start = a;
	*len = b - a + 1;
	return 1;
}
