/*
 * api_http.c - REST and Prometheus views of the HTTP proxy: backends of
 * the upstream group with their health, ejection and breaker state, the
 * breakers with their recent transitions, and the proxy's cache counters.
 *
 * How: everything is read through proxy_get_stats, balance_get_stats and
 * balance_transitions (snapshots taken under the balancer's mutex) and
 * rendered as JSON with jansson or as Prometheus text into the bounded
 * buffer metrics.c passes in. Nothing here changes state.
 *
 * What not: changing weights or forcing a breaker over the API (the
 * config and SIGHUP are the way to change a group); breakers of other
 * subsystems (the L2 breaker) are reported by their own modules.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "hotpath/api_body.h"
#include "hotpath/balance.h"
#include "hotpath/proxy.h"
#include "hotpath/metrics.h"
#include "api_int.h"

static bool proxy_running(struct api_call *c)
{
	if (c->d->http)
		return true;
	api_reply_error(c, 501, "not_implemented",
			"the HTTP proxy is not running here (http.upstream is empty)");
	return false;
}

static json_t *backend_json(struct balancer *b, unsigned i, uint64_t now)
{
	struct balance_backend_stats st;

	balance_get_stats(b, i, now, &st);
	return json_pack("{s:s, s:i, s:f, s:b, s:b, s:b, s:s, s:o, s:o, s:o, s:o, s:f, s:o}",
			 "name", st.name, "weight", (json_int_t)st.weight,
			 "effective_weight", st.effective_weight, "healthy", st.healthy,
			 "ejected", st.ejected, "available", st.available,
			 "breaker", breaker_state_name(st.breaker),
			 "inflight", api_json_u64(st.inflight),
			 "requests", api_json_u64(st.requests),
			 "failures", api_json_u64(st.failures),
			 "ejections", api_json_u64(st.ejections),
			 "ewma_latency_ms", st.ewma_us / 1000.0,
			 "ejected_for_ms", api_json_u64(st.ejected_until_ms > now ?
							st.ejected_until_ms - now : 0));
}

void api_h_http_backends(struct api_call *c)
{
	struct proxy *p;
	struct balancer *b;
	struct proxy_stats ps;
	json_t *arr, *cache, *comp, *root;
	uint64_t now = hp_now_ms();

	if (!proxy_running(c))
		return;
	p = c->d->http;
	b = proxy_balancer(p);
	arr = json_array();
	for (unsigned i = 0; i < balance_count(b); i++)
		json_array_append_new(arr, backend_json(b, i, now));
	proxy_get_stats(p, &ps);
	cache = json_object();
	for (unsigned r = 0; r < PX_RESULTS; r++)
		json_object_set_new(cache, proxy_result_name(r), api_json_u64(ps.results[r]));
	json_object_set_new(cache, "stored", api_json_u64(ps.stored));
	json_object_set_new(cache, "store_failed", api_json_u64(ps.store_failed));
	json_object_set_new(cache, "invalidations", api_json_u64(ps.invalidations));
	json_object_set_new(cache, "not_modified", api_json_u64(ps.not_modified));
	json_object_set_new(cache, "l2_hits", api_json_u64(ps.l2_hits));
	json_object_set_new(cache, "l2_stored", api_json_u64(ps.l2_stored));
	json_object_set_new(cache, "l2_errors", api_json_u64(ps.l2_errors));
	comp = json_object();
	for (unsigned i = 1; i < HC_CODINGS; i++)
		json_object_set_new(comp, compress_coding_name(i), api_json_u64(ps.compressed[i]));
	comp = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:f, s:o}", "responses", comp,
			 "streamed", api_json_u64(ps.compress_streamed),
			 "built", api_json_u64(ps.compress_built),
			 "no_gain", api_json_u64(ps.compress_no_gain),
			 "in_bytes", api_json_u64(ps.compress_in),
			 "out_bytes", api_json_u64(ps.compress_out),
			 "time_ms", ps.compress_us / 1000.0,
			 "saved_bytes", api_json_u64(ps.compress_saved));
	root = json_pack("{s:s, s:b, s:o, s:o, s:{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}}",
			 "upstream", proxy_upstream_name(p), "panic", balance_in_panic(b, now),
			 "backends", arr, "cache", cache, "proxy",
			 "connections", api_json_u64(ps.connections),
			 "requests", api_json_u64(ps.requests),
			 "upstream_requests", api_json_u64(ps.upstream_requests),
			 "upstream_errors", api_json_u64(ps.upstream_errors),
			 "retries", api_json_u64(ps.retries),
			 "timeouts", api_json_u64(ps.timeouts),
			 "pool_reused", api_json_u64(ps.pool_reused),
			 "pool_new", api_json_u64(ps.pool_new));
	json_object_set_new(root, "compression", comp);
	{
		json_t *adm = json_object(), *cls = json_object();

		for (unsigned i = 0; i < ADMIT_CLASSES; i++)
			json_object_set_new(cls, admit_class_name(i),
					    json_pack("{s:o, s:o, s:o}",
						      "admitted", api_json_u64(ps.admitted[i]),
						      "queued", api_json_u64(ps.queued[i]),
						      "shed", api_json_u64(ps.shed[i])));
		json_object_set_new(adm, "classes", cls);
		json_object_set_new(adm, "shed_queue_full", api_json_u64(ps.shed_full));
		json_object_set_new(adm, "shed_codel", api_json_u64(ps.shed_codel));
		json_object_set_new(adm, "shed_timeout", api_json_u64(ps.shed_timeout));
		json_object_set_new(adm, "inflight", api_json_u64(ps.inflight_now));
		json_object_set_new(adm, "limit", api_json_u64(ps.limit_now));
		json_object_set_new(adm, "queued", api_json_u64(ps.queued_now));
		json_object_set_new(root, "admission", adm);
	}
	api_reply_json(c, 200, root);
}

void api_h_http_breakers(struct api_call *c)
{
	struct balancer *b;
	struct balance_transition tr[BALANCE_TRANSITIONS];
	json_t *arr, *trs;
	uint64_t now = hp_now_ms();
	unsigned n;

	if (!proxy_running(c))
		return;
	b = proxy_balancer(c->d->http);
	arr = json_array();
	for (unsigned i = 0; i < balance_count(b); i++) {
		struct balance_backend_stats st;
		char name[200];

		balance_get_stats(b, i, now, &st);
		snprintf(name, sizeof(name), "http:%s/%s", proxy_upstream_name(c->d->http), st.name);
		json_array_append_new(arr, json_pack(
			"{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "name", name,
			"state", breaker_state_name(st.bstats.state),
			"calls", api_json_u64(st.bstats.calls),
			"failures", api_json_u64(st.bstats.failures),
			"slow", api_json_u64(st.bstats.slow),
			"rejected", api_json_u64(st.bstats.rejected),
			"opened", api_json_u64(st.bstats.opened),
			"closed", api_json_u64(st.bstats.closed),
			"open_for_ms", api_json_u64(st.bstats.open_until_ms > now ?
						    st.bstats.open_until_ms - now : 0)));
	}
	n = balance_transitions(b, tr, BALANCE_TRANSITIONS);
	trs = json_array();
	for (unsigned i = 0; i < n; i++) {
		struct balance_backend_stats st;

		balance_get_stats(b, tr[i].backend, now, &st);
		json_array_append_new(trs, json_pack("{s:o, s:s, s:s, s:s, s:s}",
						     "at_ms", api_json_u64(tr[i].at_wall_ms),
						     "backend", st.name, "what", tr[i].what,
						     "from", tr[i].from, "to", tr[i].to));
	}
	api_reply_json(c, 200, json_pack("{s:o, s:o}", "breakers", arr, "transitions", trs));
}

/* ---- /metrics ------------------------------------------------------------------- */



int proxy_metrics_render(struct proxy *p, struct buf *b)
{
	static const char *const states[] = { "closed", "open", "half_open" };
	struct balancer *bal = proxy_balancer(p);
	const char *up = proxy_upstream_name(p);
	struct proxy_stats ps;
	uint64_t now = hp_now_ms();
	char code[8];
	int rc;

	proxy_get_stats(p, &ps);
	if ((rc = metrics_family(b, "hotpath_http_requests_total", "counter",
		      "Client requests the HTTP proxy answered, by cache result.")))
		return rc;
	for (unsigned r = 0; r < PX_RESULTS; r++)
		if ((rc = metrics_sample2(b, "hotpath_http_requests_total", "result", proxy_result_name(r), NULL,
			      NULL, ps.results[r])))
			return rc;
	if ((rc = metrics_family(b, "hotpath_http_responses_total", "counter",
		      "Responses sent to clients, by status class.")))
		return rc;
	for (unsigned k = 0; k < 6; k++) {
		snprintf(code, sizeof(code), k ? "%uxx" : "other", k);
		if ((rc = metrics_sample2(b, "hotpath_http_responses_total", "code", code, NULL, NULL,
			      ps.status[k])))
			return rc;
	}
	if ((rc = metrics_family(b, "hotpath_http_connections", "gauge", "Client connections open now.")) ||
	    (rc = buf_printf(b, "hotpath_http_connections %" PRIu64 "\n", ps.connections)) ||
	    (rc = metrics_family(b, "hotpath_http_bad_requests_total", "counter",
		      "Requests refused by the parser (400, 413, 414, 431, 501, 505).")) ||
	    (rc = buf_printf(b, "hotpath_http_bad_requests_total %" PRIu64 "\n", ps.bad_requests)) ||
	    (rc = metrics_family(b, "hotpath_http_upstream_requests_total", "counter",
		      "Requests sent to backends (retries included).")) ||
	    (rc = buf_printf(b, "hotpath_http_upstream_requests_total %" PRIu64 "\n",
			     ps.upstream_requests)) ||
	    (rc = metrics_family(b, "hotpath_http_upstream_errors_total", "counter",
		      "Backend exchanges that failed (connect, reset, timeout, bad response).")) ||
	    (rc = buf_printf(b, "hotpath_http_upstream_errors_total %" PRIu64 "\n",
			     ps.upstream_errors)) ||
	    (rc = metrics_family(b, "hotpath_http_cache_stored_total", "counter",
		      "Responses stored in the L1 cache.")) ||
	    (rc = buf_printf(b, "hotpath_http_cache_stored_total %" PRIu64 "\n", ps.stored)) ||
	    (rc = metrics_family(b, "hotpath_http_cache_invalidations_total", "counter",
		      "Invalidations after unsafe methods.")) ||
	    (rc = buf_printf(b, "hotpath_http_cache_invalidations_total %" PRIu64 "\n",
			     ps.invalidations)) ||
	    (rc = metrics_family(b, "hotpath_http_bytes_total", "counter", "Bytes from and to clients.")) ||
	    (rc = metrics_sample2(b, "hotpath_http_bytes_total", "direction", "in", NULL, NULL, ps.bytes_in)) ||
	    (rc = metrics_sample2(b, "hotpath_http_bytes_total", "direction", "out", NULL, NULL, ps.bytes_out)))
		return rc;
	if ((rc = metrics_family(b, "hotpath_http_cache_l2_total", "counter",
		      "Cached responses through L2 (Redis): found there, written, errors.")) ||
	    (rc = metrics_sample2(b, "hotpath_http_cache_l2_total", "op", "hit", NULL, NULL, ps.l2_hits)) ||
	    (rc = metrics_sample2(b, "hotpath_http_cache_l2_total", "op", "stored", NULL, NULL,
		      ps.l2_stored)) ||
	    (rc = metrics_sample2(b, "hotpath_http_cache_l2_total", "op", "error", NULL, NULL,
		      ps.l2_errors)))
		return rc;
	if ((rc = metrics_family(b, "hotpath_http_admission_total", "counter",
		      "Requests to backends by priority class and outcome (admitted, "
		      "queued, shed).")))
		return rc;
	for (unsigned i = 0; i < ADMIT_CLASSES; i++) {
		static const char *const outcome[] = { "admitted", "queued", "shed" };
		const uint64_t v[] = { ps.admitted[i], ps.queued[i], ps.shed[i] };

		for (unsigned j = 0; j < 3; j++)
			if ((rc = metrics_sample2(b, "hotpath_http_admission_total", "class", admit_class_name(i),
				      "outcome", outcome[j], v[j])))
				return rc;
	}
	if ((rc = metrics_family(b, "hotpath_http_admission_shed_total", "counter",
		      "Shed requests by reason.")) ||
	    (rc = metrics_sample2(b, "hotpath_http_admission_shed_total", "reason", "queue_full", NULL, NULL,
		      ps.shed_full)) ||
	    (rc = metrics_sample2(b, "hotpath_http_admission_shed_total", "reason", "codel", NULL, NULL,
		      ps.shed_codel)) ||
	    (rc = metrics_sample2(b, "hotpath_http_admission_shed_total", "reason", "timeout", NULL, NULL,
		      ps.shed_timeout)) ||
	    (rc = metrics_family(b, "hotpath_http_admission_inflight", "gauge",
		      "Admitted requests in flight to backends now.")) ||
	    (rc = buf_printf(b, "hotpath_http_admission_inflight %" PRIu64 "\n", ps.inflight_now)) ||
	    (rc = metrics_family(b, "hotpath_http_admission_limit", "gauge",
		      "Requests allowed in flight to backends now (all workers).")) ||
	    (rc = buf_printf(b, "hotpath_http_admission_limit %" PRIu64 "\n", ps.limit_now)) ||
	    (rc = metrics_family(b, "hotpath_http_admission_queued", "gauge",
		      "Requests waiting for admission now.")) ||
	    (rc = buf_printf(b, "hotpath_http_admission_queued %" PRIu64 "\n", ps.queued_now)))
		return rc;
	if ((rc = metrics_family(b, "hotpath_http_compressed_total", "counter",
		      "Responses sent compressed from the cache, by content coding.")))
		return rc;
	for (unsigned i = 1; i < HC_CODINGS; i++)
		if ((rc = metrics_sample2(b, "hotpath_http_compressed_total", "coding", compress_coding_name(i),
			      NULL, NULL, ps.compressed[i])))
			return rc;
	if ((rc = metrics_family(b, "hotpath_http_compression_builds_total", "counter",
		      "Compressed variants built from stored responses.")) ||
	    (rc = buf_printf(b, "hotpath_http_compression_builds_total %" PRIu64 "\n",
			     ps.compress_built)) ||
	    (rc = metrics_family(b, "hotpath_http_compression_streamed_total", "counter",
		      "Forwarded responses compressed on the way (not from the cache).")) ||
	    (rc = buf_printf(b, "hotpath_http_compression_streamed_total %" PRIu64 "\n",
			     ps.compress_streamed)) ||
	    (rc = metrics_family(b, "hotpath_http_compression_no_gain_total", "counter",
		      "Compressions that did not make the body smaller (identity is served).")) ||
	    (rc = buf_printf(b, "hotpath_http_compression_no_gain_total %" PRIu64 "\n",
			     ps.compress_no_gain)) ||
	    (rc = metrics_family(b, "hotpath_http_compression_bytes_total", "counter",
		      "Bytes into and out of the encoders.")) ||
	    (rc = metrics_sample2(b, "hotpath_http_compression_bytes_total", "direction", "in", NULL, NULL,
		      ps.compress_in)) ||
	    (rc = metrics_sample2(b, "hotpath_http_compression_bytes_total", "direction", "out", NULL, NULL,
		      ps.compress_out)) ||
	    (rc = metrics_family(b, "hotpath_http_compression_seconds_total", "counter",
		      "Time spent compressing.")) ||
	    (rc = buf_printf(b, "hotpath_http_compression_seconds_total %.6f\n",
			     ps.compress_us / 1e6)) ||
	    (rc = metrics_family(b, "hotpath_http_compression_saved_bytes_total", "counter",
		      "Body bytes not sent because responses went out compressed.")) ||
	    (rc = buf_printf(b, "hotpath_http_compression_saved_bytes_total %" PRIu64 "\n",
			     ps.compress_saved)))
		return rc;
	if ((rc = metrics_family(b, "hotpath_http_backend_available", "gauge",
		      "1 if the backend takes requests (healthy, not ejected, breaker not open).")))
		return rc;
	for (unsigned i = 0; i < balance_count(bal); i++) {
		struct balance_backend_stats st;

		balance_get_stats(bal, i, now, &st);
		if ((rc = metrics_sample2(b, "hotpath_http_backend_available", "upstream", up, "backend", st.name,
			      st.available)))
			return rc;
	}
	if ((rc = metrics_family(b, "hotpath_http_backend_breaker_state", "gauge",
		      "Circuit breaker state of a backend (1 for the current state).")))
		return rc;
	for (unsigned i = 0; i < balance_count(bal); i++) {
		struct balance_backend_stats st;

		balance_get_stats(bal, i, now, &st);
		for (unsigned s = 0; s < 3; s++) {
			if ((rc = buf_printf(b, "hotpath_http_backend_breaker_state{backend=\"")) ||
			    (rc = api_prom_escape(b, st.name, strlen(st.name))) ||
			    (rc = buf_printf(b, "\",state=\"%s\"} %d\n", states[s],
					     (unsigned)st.breaker == s)))
				return rc;
		}
	}
	{
		static const struct { const char *name, *help; } fams[] = {
			{ "hotpath_http_backend_breaker_opened_total", "Times a backend's breaker opened." },
			{ "hotpath_http_backend_ejections_total", "Times a backend was ejected as an outlier." },
			{ "hotpath_http_backend_requests_total", "Requests sent to a backend." },
		};

		for (unsigned f = 0; f < HP_ARRAY_SIZE(fams); f++) {
			if ((rc = metrics_family(b, fams[f].name, "counter", fams[f].help)))
				return rc;
			for (unsigned i = 0; i < balance_count(bal); i++) {
				struct balance_backend_stats st;
				uint64_t v;

				balance_get_stats(bal, i, now, &st);
				v = f == 0 ? st.bstats.opened : f == 1 ? st.ejections : st.requests;
				if ((rc = metrics_sample2(b, fams[f].name, "upstream", up, "backend", st.name, v)))
					return rc;
			}
		}
	}
	return 0;
}
