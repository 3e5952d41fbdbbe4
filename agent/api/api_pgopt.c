/*
 * api_pgopt.c - query statistics, recommendations and optimisation jobs.
 *
 * GET  /api/v2/performance/queries?source=&limit=&database=
 *      per-fingerprint statistics: the pooler's own (qstats.h), the
 *      kernel's (observe.c), or both merged by fingerprint.
 * GET  /api/v2/performance/recommendations?scope=&analysis_period=
 *      the advisor's index recommendations and plan findings (scope db),
 *      result-cache suggestions (cache), or both (all).
 * POST /api/v2/performance/optimize {optimization_type, scope}
 *      queue a job on the task processor: 202 with its id and status URL.
 * GET  /api/v2/performance/optimize/{id}
 *      the job's status and result.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/api_body.h"
#include "hotpath/hist.h"
#include "hotpath/observe.h"
#include "hotpath/pgadvise.h"
#include "hotpath/pgtree.h"
#include "hotpath/pooler.h"
#include "hotpath/qcache.h"
#include "hotpath/qstats.h"
#include "api_int.h"

static double r3(double v)
{
	return round(v * 1000.0) / 1000.0;
}

static json_t *entry_json(const struct qstats_entry *e)
{
	double c = (double)e->calls;
	json_t *j = json_object(), *rt = json_array(), *wt = json_array();

	if (!j || !rt || !wt) {
		json_decref(j);
		json_decref(rt);
		json_decref(wt);
		return NULL;
	}
	for (unsigned i = 0; i < e->n_read; i++)
		json_array_append_new(rt, json_string(e->read[i]));
	for (unsigned i = 0; i < e->n_written; i++)
		json_array_append_new(wt, json_string(e->written[i]));
	json_object_set_new(j, "fingerprint", json_string(e->fingerprint));
	json_object_set_new(j, "query", api_json_bytes(e->query ? e->query : "",
						      e->query ? strlen(e->query) : 0));
	json_object_set_new(j, "source", json_string("pooler"));
	json_object_set_new(j, "database", json_string(e->db));
	json_object_set_new(j, "kind", json_string(pgt_kind_name(e->kind)));
	json_object_set_new(j, "tables_read", rt);
	json_object_set_new(j, "tables_written", wt);
	json_object_set_new(j, "calls", api_json_u64(e->calls));
	json_object_set_new(j, "errors", api_json_u64(e->errors));
	json_object_set_new(j, "rows", api_json_u64(e->rows));
	json_object_set_new(j, "total_ms", json_real(r3((double)e->total_us / 1000.0)));
	json_object_set_new(j, "mean_ms", json_real(c ? r3((double)e->total_us / c / 1000.0) : 0));
	json_object_set_new(j, "p50_ms", json_real(r3(hist_quantile(&e->h, 0.50) / 1000.0)));
	json_object_set_new(j, "p95_ms", json_real(r3(hist_quantile(&e->h, 0.95) / 1000.0)));
	json_object_set_new(j, "p99_ms", json_real(r3(hist_quantile(&e->h, 0.99) / 1000.0)));
	json_object_set_new(j, "max_ms", json_real(r3((double)e->max_us / 1000.0)));
	json_object_set_new(j, "quantiles", json_string("histogram"));
	json_object_set_new(j, "first_seen_ms", api_json_u64(e->first_ms));
	json_object_set_new(j, "last_seen_ms", api_json_u64(e->last_ms));
	return j;
}

/* Does the kernel list a client-side entry for fingerprint fp? */
static bool kernel_client_has(const json_t *kq, const char *fp)
{
	size_t k;
	json_t *x;

	json_array_foreach(kq, k, x) {
		const char *f = json_string_value(json_object_get(x, "fingerprint"));
		const char *side = json_string_value(json_object_get(x, "side"));

		if (f && side && !strcmp(f, fp) && !strcmp(side, "client"))
			return true;
	}
	return false;
}

static double total_of(const json_t *q)
{
	return json_number_value(json_object_get(q, "total_ms"));
}

static int cmp_total(const void *a, const void *b)
{
	double x = total_of(*(json_t *const *)a), y = total_of(*(json_t *const *)b);

	return (x < y) - (x > y);
}

void api_h_queries(struct api_call *c)
{
	static const char *const allowed[] = { "limit", "source", "database", NULL };
	char lim[16], src[16], dbb[80];
	const char *l, *s, *db;
	unsigned long limit = 50;
	bool bad = false, want_pool, want_kernel;
	struct qstats *qs = pooler_qstats(c->d->pooler);
	json_t *root, *arr, *kq = NULL, *kernel = NULL;
	json_t **v = NULL;
	size_t nv = 0;

	if (!api_query_only(c, allowed))
		return;
	l = api_query_get(c, "limit", lim, sizeof(lim), &bad);
	s = api_query_get(c, "source", src, sizeof(src), &bad);
	db = api_query_get(c, "database", dbb, sizeof(dbb), &bad);
	if (bad)
		return;
	if (l) {
		char *end;

		limit = strtoul(l, &end, 10);
		if (!*l || *end || *l == '-' || limit == 0 || limit > 1000) {
			api_reply_error(c, 400, "invalid_query", "limit must be 1..1000");
			return;
		}
	}
	if (s && strcmp(s, "pooler") && strcmp(s, "kernel") && strcmp(s, "all")) {
		api_reply_error(c, 400, "invalid_query", "source must be pooler, kernel or all");
		return;
	}
	want_pool = !s || strcmp(s, "kernel");
	want_kernel = !s || strcmp(s, "pooler");
	if (want_pool && !qs && s && !strcmp(s, "pooler")) {
		api_reply_error(c, 501, "not_implemented", "the pooler's query statistics are not "
				"running: they need a [database.NAME] and query_analysis.stats = yes");
		return;
	}
	if (want_kernel && !c->d->observe && s && !strcmp(s, "kernel")) {
		api_reply_error(c, 501, "not_implemented", "request and query observation is not "
				"running: it needs BPF and tracefs (see GET /api/v2/health features)");
		return;
	}
	if (!qs && !c->d->observe) {
		api_reply_error(c, 501, "not_implemented", "no query statistics are running: the "
				"pooler's need a [database.NAME], the kernel's need BPF and tracefs");
		return;
	}
	root = json_object();
	arr = json_array();
	if (!root || !arr)
		goto oom;
	if (want_kernel && c->d->observe) {
		kernel = observe_queries_json(c->d->observe, 1000);
		if (!kernel)
			goto oom;
		kq = json_object_get(kernel, "queries");
		json_object_set(root, "kernel_dropped", json_object_get(kernel, "dropped"));
	}
	if (want_pool && qs) {
		struct qstats_entry *es = NULL;

		/* samples queued a moment ago count: read what was just run */
		if (qstats_flush(qs, 200) != 0)
			json_object_set_new(root, "pooler_backlog", json_true());
		struct qstats_totals t;
		unsigned n = 0;

		if (qstats_entries(qs, db, 0, 0, &es, &n) != 0)
			goto oom;
		for (unsigned i = 0; i < n; i++) {
			json_t *j = entry_json(&es[i]);
			size_t k;
			json_t *x;

			if (!j)
				continue;
			/* the kernel saw the same fingerprint: show its figures too,
			 * from the client side of the server connections (the
			 * pooler's own vantage point) when it has both sides */
			json_array_foreach(kq, k, x) {
				const char *fp = json_string_value(json_object_get(x, "fingerprint"));
				const char *side = json_string_value(json_object_get(x, "side"));
				bool client = side && !strcmp(side, "client");

				if (es[i].fingerprint[0] && fp && !strcmp(fp, es[i].fingerprint) &&
				    !json_object_get(x, "merged") && (client || !kernel_client_has(kq, fp))) {
					json_t *kc = json_deep_copy(x);

					json_object_del(kc, "fingerprint");
					json_object_del(kc, "query");
					json_object_set_new(j, "kernel", kc);
					json_object_set_new(j, "source", json_string("pooler+kernel"));
					json_object_set_new(x, "merged", json_true());
					break;
				}
			}
			json_array_append_new(arr, j);
		}
		qstats_entries_free(es, n);
		qstats_totals(qs, &t);
		{
			struct qcache_stats qcs;

			pooler_qcache_stats(c->d->pooler, &qcs);
			json_object_set_new(root, "query_cache", json_pack("{s:i, s:o, s:o, s:o, s:o, s:o, s:o}",
				"fingerprints", (int)qcs.fingerprints, "hits", api_json_u64(qcs.hits),
				"misses", api_json_u64(qcs.misses), "stores", api_json_u64(qcs.stores),
				"not_stored", api_json_u64(qcs.not_stored),
				"invalidations", api_json_u64(qcs.invalidations),
				"l2_waits", api_json_u64(qcs.l2_waits)));
		}
		json_object_set_new(root, "pooler", json_pack("{s:o, s:o, s:o, s:o, s:o, s:i}",
			"samples", api_json_u64(t.samples), "dropped_queue", api_json_u64(t.dropped_queue),
			"dropped_table", api_json_u64(t.dropped_table),
			"unparsed", api_json_u64(t.parse_failures),
			"fingerprints", api_json_u64(t.fingerprints),
			"max_fingerprints", (int)t.max_fingerprints));
	}
	if (kq && !db) {
		size_t k;
		json_t *x;

		json_array_foreach(kq, k, x) {
			if (json_object_get(x, "merged"))
				continue;
			json_object_set_new(x, "source", json_string("kernel"));
			json_array_append(arr, x);
		}
	}
	/* most total time first, then the limit */
	nv = json_array_size(arr);
	v = calloc(nv ? nv : 1, sizeof(*v));
	if (!v)
		goto oom;
	for (size_t i = 0; i < nv; i++)
		v[i] = json_incref(json_array_get(arr, i));
	qsort(v, nv, sizeof(*v), cmp_total);
	json_array_clear(arr);
	for (size_t i = 0; i < nv; i++) {
		if (i < limit)
			json_array_append(arr, v[i]);
		json_decref(v[i]);
	}
	free(v);
	json_decref(kernel);
	json_object_set_new(root, "queries", arr);
	api_reply_json(c, 200, root);
	return;
oom:
	json_decref(kernel);
	json_decref(root);
	json_decref(arr);
	api_reply_error(c, 500, "internal", "out of memory");
}

static bool advisor_running(struct api_call *c)
{
	if (c->d->advisor)
		return true;
	api_reply_error(c, 501, "not_implemented", "query analysis is not running: it needs a "
			"[database.NAME] (the pooler) and query_analysis.stats = yes");
	return false;
}

void api_h_recommendations(struct api_call *c)
{
	static const char *const allowed[] = { "scope", "analysis_period", NULL };
	char sb[16], pb[32], err[200];
	const char *s, *p, *scope;
	uint64_t period_ms;
	bool bad = false;
	json_t *j;

	if (!api_query_only(c, allowed))
		return;
	s = api_query_get(c, "scope", sb, sizeof(sb), &bad);
	p = api_query_get(c, "analysis_period", pb, sizeof(pb), &bad);
	if (bad)
		return;
	if (api_query_recommendations(s, p, &scope, &period_ms, err, sizeof(err)) != 0) {
		api_reply_error(c, 400, "invalid_query", "%s", err);
		return;
	}
	if (!advisor_running(c))
		return;
	if (pooler_qstats(c->d->pooler) && qstats_flush(pooler_qstats(c->d->pooler), 200) != 0)
		(void)0;                /* a busy collector: answer with what is folded */
	j = pgadvise_recommendations_json(c->d->advisor, scope, period_ms);
	if (!j) {
		api_reply_error(c, 500, "internal", "out of memory");
		return;
	}
	api_reply_json(c, 200, j);
}

void api_h_optimize(struct api_call *c)
{
	struct api_optimize_req rq;
	char err[256], id[24];
	json_t *root, *job;
	int rc;

	if (!advisor_running(c))
		return;
	root = api_json_parse(c->body, c->body_len, err, sizeof(err));
	if (!root) {
		api_reply_error(c, 400, "invalid_body", "%s", err);
		return;
	}
	rc = api_body_optimize(root, &rq, err, sizeof(err));
	json_decref(root);
	if (rc) {
		api_reply_error(c, 400, "invalid_body", "%s", err);
		return;
	}
	rc = pgadvise_submit(c->d->advisor, rq.type, rq.has_database ? rq.database : NULL, id,
			     sizeof(id), err, sizeof(err));
	if (rc == -EINVAL) {
		api_reply_error(c, 400, "invalid_body", "%s", err);
		return;
	}
	if (rc == -EAGAIN) {
		api_reply_error(c, 503, "busy", "%s", err);
		return;
	}
	if (rc) {
		api_reply_error(c, 500, "internal", "cannot queue the job: %s", strerror(-rc));
		return;
	}
	job = pgadvise_job_json(c->d->advisor, id);
	if (!job) {
		api_reply_error(c, 500, "internal", "the job vanished");
		return;
	}
	api_reply_json(c, 202, json_pack("{s:o}", "job", job));
}

void api_h_optimize_job(struct api_call *c)
{
	static const char *const allowed[] = { NULL };
	char id[32];
	size_t n;
	json_t *job;

	if (!api_query_only(c, allowed))
		return;
	if (api_url_decode(c->rest, strlen(c->rest), id, sizeof(id), &n) != 0 || n == 0 ||
	    memchr(id, '\0', n)) {
		api_reply_error(c, 400, "invalid_path", "a job id such as job-1 is expected");
		return;
	}
	if (!advisor_running(c))
		return;
	job = pgadvise_job_json(c->d->advisor, id);
	if (!job) {
		api_reply_error(c, 404, "not_found", "no optimisation job '%s' (the last 32 are kept)",
				id);
		return;
	}
	api_reply_json(c, 200, json_pack("{s:o}", "job", job));
}
