/*
 * fuzz_api_body.c - libFuzzer target for the REST input validators
 * (agent/api/api_body.c).
 *
 * Byte 0 picks what the rest of the input is fed to: a JSON body for each
 * route's validator, the statistics or keys query parameters (split at NUL
 * bytes), the percent-decoder, the UTF-8 checker, or the Prometheus label
 * escaper. Properties: validators either succeed with values in their
 * documented bounds or fail with a NUL-terminated message; the decoder never
 * writes past its bound and never grows its input; escaping output contains
 * no raw newline and escaping plain text is the identity.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/api_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(const char *err, size_t len)
{
	if (!memchr(err, '\0', len))
		abort();
}

/* The next NUL-separated field, or NULL when the input ran out. */
static const char *field(const char **p, const char *end, char *buf, size_t buflen)
{
	const char *s = *p, *nul;
	size_t n;

	if (s >= end)
		return NULL;
	nul = memchr(s, '\0', (size_t)(end - s));
	n = nul ? (size_t)(nul - s) : (size_t)(end - s);
	if (n >= buflen)
		n = buflen - 1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	*p = nul ? nul + 1 : end;
	return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	const char *in = (const char *)data + 1;
	size_t n;

	if (size < 1)
		return 0;
	n = size - 1;
	switch (data[0] % 8) {
	case 0: case 1: case 2: {
		json_t *j = api_json_parse(in, n, err, sizeof(err));
		struct api_pattern_req r;
		struct l1_partition parts[L1_MAX_PARTITIONS];
		unsigned np;

		if (!j) {
			check_err(err, sizeof(err));
			break;
		}
		if (api_body_clear(j, &r, err, sizeof(err)) == 0) {
			if (r.has_pattern && (r.patlen == 0 || r.patlen >= API_PATTERN_MAX))
				abort();
		}
		if (api_body_invalidate(j, &r, err, sizeof(err)) == 0) {
			if (!r.has_pattern || r.patlen == 0 || r.patlen >= API_PATTERN_MAX)
				abort();
		}
		{
			struct api_optimize_req o;

			if (api_body_optimize(j, &o, err, sizeof(err)) == 0) {
				if (!o.type[0] || (o.has_database && (!o.database[0] ||
					memchr(o.database, '\0', sizeof(o.database)) == NULL)))
					abort();
			} else {
				check_err(err, sizeof(err));
			}
		}
		if (api_body_policies(j, parts, L1_MAX_PARTITIONS - 1, &np, err, sizeof(err)) == 0) {
			if (np > L1_MAX_PARTITIONS - 1)
				abort();
			for (unsigned i = 0; i < np; i++)
				if (!parts[i].name[0] || !parts[i].prefix[0] || parts[i].priority < 0 ||
				    parts[i].priority > L1_PRIO_HIGH)
					abort();
		} else {
			check_err(err, sizeof(err));
		}
		{
			/* POST /performance/profiling: one target, seconds in bounds */
			struct api_profile_req pr;

			if (api_body_profile(j, 60, &pr, err, sizeof(err)) == 0) {
				if (pr.seconds < 1 || pr.seconds > 60 || (pr.pid && pr.service[0]) ||
				    pr.pid > 4194304 || !memchr(pr.service, '\0', sizeof(pr.service)))
					abort();
			} else {
				check_err(err, sizeof(err));
			}
		}
		{
			/* POST /performance/cache/warm: bounded sources and keys */
			struct warm_request *w = calloc(1, sizeof(*w));

			if (w && api_body_warm(j, w, err, sizeof(err)) == 0) {
				if (w->n == 0 || w->n > WARM_MAX_SOURCES)
					abort();
				for (unsigned i = 0; i < w->n; i++)
					if (w->src[i].nkeys > WARM_MAX_KEYS ||
					    w->src[i].plen >= WARM_PATTERN_MAX ||
					    (w->src[i].type != WARM_SRC_KEYS &&
					     w->src[i].type != WARM_SRC_SNAPSHOT && !w->src[i].limit))
						abort();
			} else if (w) {
				check_err(err, sizeof(err));
			}
			warm_request_free(w);
		}
		json_decref(j);
		break;
	}
	case 3: {
		char a[64], b[64], c[64];
		const char *p = in, *end = in + n, *tier, *range, *gran;
		struct api_stats_query q;

		tier = field(&p, end, a, sizeof(a));
		range = field(&p, end, b, sizeof(b));
		gran = field(&p, end, c, sizeof(c));
		if (api_query_statistics(tier, range, gran, 3600, &q, err, sizeof(err)) == 0) {
			if (q.range_s == 0 || q.range_s > 3600 || q.gran_s == 0 || q.gran_s > q.range_s ||
			    q.points == 0 || q.points > API_SERIES_MAX_POINTS)
				abort();
		} else {
			check_err(err, sizeof(err));
		}
		break;
	}
	case 4: {
		char a[64], b[64];
		const char *p = in, *end = in + n, *cur, *cnt;
		uint64_t cursor;
		size_t count;

		cur = field(&p, end, a, sizeof(a));
		cnt = field(&p, end, b, sizeof(b));
		if (api_query_keys(cur, cnt, &cursor, &count, err, sizeof(err)) == 0) {
			if (count == 0 || count > API_KEYS_MAX_COUNT)
				abort();
		}
		{
			const char *scope;
			uint64_t ms;

			if (api_query_recommendations(cur, cnt, &scope, &ms, err, sizeof(err)) == 0) {
				if (strcmp(scope, "db") && strcmp(scope, "cache") && strcmp(scope, "all"))
					abort();
			} else {
				check_err(err, sizeof(err));
			}
		}
		break;
	}
	case 5: {
		char out[API_PATTERN_MAX + 1];
		size_t outlen = 0;
		/* Guard byte after the bound: must never be written. */
		out[API_PATTERN_MAX - 16] = 0x5a;
		if (api_url_decode(in, n, out, API_PATTERN_MAX - 16, &outlen) == 0 &&
		    (outlen > n || outlen > API_PATTERN_MAX - 16))
			abort();
		if (outlen < API_PATTERN_MAX - 16 && out[API_PATTERN_MAX - 16] != 0x5a)
			abort();
		break;
	}
	case 6: {
		/* UTF-8 validity is preserved by splitting at a char boundary. */
		bool ok = api_utf8_valid(in, n);
		if (ok && n > 0) {
			size_t cut = n / 2;
			while (cut > 0 && ((unsigned char)in[cut] & 0xc0) == 0x80)
				cut--;
			if (!api_utf8_valid(in, cut) || !api_utf8_valid(in + cut, n - cut))
				abort();
		}
		break;
	}
	case 7: {
		struct buf b;
		bool plain = !memchr(in, '\\', n) && !memchr(in, '"', n) && !memchr(in, '\n', n);
		buf_init(&b, 4 * n + 16);
		if (api_prom_escape(&b, in, n) != 0)
			abort();
		if (memchr(buf_head(&b), '\n', buf_used(&b)))
			abort();
		if (plain && (buf_used(&b) != n || memcmp(buf_head(&b), in, n) != 0))
			abort();
		buf_free(&b);
		break;
	}
	}
	return 0;
}
