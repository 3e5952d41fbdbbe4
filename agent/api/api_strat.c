/*
 * api_strat.c - what the REST API and /metrics show of the per-pattern
 * strategies, their loaders and the warm jobs: GET /api/v2/cache/strategies,
 * POST /api/v2/performance/cache/warm, GET .../cache/warm/{id}, and the
 * hotpath_strategy_*, hotpath_loader_* and hotpath_warm_* families.
 *
 * How: from the modules' snapshot accessors only (strategies_get_stats,
 * loader_get_stats, warm_job_get), so nothing here holds their locks. A
 * warm request is validated by api_body_warm (pure, fuzzed) and handed to
 * warm_submit, which queues it on the task processor and returns its id
 * at once (202).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/metrics.h"
#include "api_int.h"
#include "hotpath/api_body.h"
#include "hotpath/loader.h"
#include "hotpath/log.h"
#include "hotpath/strategy.h"
#include "hotpath/tier.h"
#include "hotpath/warm.h"

static json_t *strategy_json(const struct strategy_stats *s)
{
	json_t *j = json_pack("{s:s,s:s,s:s,s:s}", "name", s->name, "pattern", s->pattern,
			      "loader", s->loader, "write", s->write);

	json_object_set_new(j, "fresh_hits", api_json_u64(s->fresh_hits));
	json_object_set_new(j, "stale_served", api_json_u64(s->stale_served));
	json_object_set_new(j, "stale_if_error_served", api_json_u64(s->stale_if_error_served));
	json_object_set_new(j, "loads", api_json_u64(s->loads));
	json_object_set_new(j, "load_errors", api_json_u64(s->load_errors));
	json_object_set_new(j, "not_found", api_json_u64(s->not_found));
	json_object_set_new(j, "coalesced", api_json_u64(s->coalesced));
	json_object_set_new(j, "parked", api_json_u64(s->parked));
	json_object_set_new(j, "park_refused", api_json_u64(s->park_refused));
	json_object_set_new(j, "refreshes_queued", api_json_u64(s->refreshes_queued));
	json_object_set_new(j, "refreshes_shed", api_json_u64(s->refreshes_shed));
	json_object_set_new(j, "writes", api_json_u64(s->writes));
	json_object_set_new(j, "write_errors", api_json_u64(s->write_errors));
	json_object_set_new(j, "write_behind", json_pack(
		"{s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "queued", api_json_u64(s->wb_queued),
		"rejected", api_json_u64(s->wb_rejected), "written", api_json_u64(s->wb_written),
		"batches", api_json_u64(s->wb_batches),
		"failed_attempts", api_json_u64(s->wb_failed_attempts),
		"dead", api_json_u64(s->wb_dead), "pending", api_json_u64(s->wb_pending)));
	return j;
}

static json_t *loader_json(const struct loader_stats *l)
{
	json_t *j = json_pack("{s:s,s:s}", "name", l->name, "kind", l->kind);

	json_object_set_new(j, "loads", api_json_u64(l->loads));
	json_object_set_new(j, "found", api_json_u64(l->found));
	json_object_set_new(j, "not_found", api_json_u64(l->not_found));
	json_object_set_new(j, "errors", api_json_u64(l->errors));
	json_object_set_new(j, "rejected", api_json_u64(l->rejected));
	json_object_set_new(j, "writes", api_json_u64(l->writes));
	json_object_set_new(j, "write_errors", api_json_u64(l->write_errors));
	json_object_set_new(j, "rows_written", api_json_u64(l->rows_written));
	json_object_set_new(j, "load_avg_us",
			    api_json_u64(l->loads ? l->load_us_sum / l->loads : 0));
	json_object_set_new(j, "pool", json_pack("{s:i,s:i,s:i}", "size", (int)l->pool_size,
						 "open", (int)l->pool_open, "busy",
						 (int)l->pool_busy));
	json_object_set_new(j, "breaker", json_pack("{s:s,s:o,s:o}", "state",
						    breaker_state_name(l->breaker.state),
						    "opened", api_json_u64(l->breaker.opened),
						    "rejected", api_json_u64(l->breaker.rejected)));
	return j;
}

void api_h_cache_strategies(struct api_call *c)
{
	struct strategies *ss = c->d->tier ? tier_strategies_hold(c->d->tier) : NULL;
	json_t *sa = json_array(), *la = json_array();

	if (!api_query_only(c, (const char *const[]){ NULL }))
		return;
	for (unsigned i = 0; i < strategies_count(ss); i++) {
		struct strategy_stats s;

		strategies_get_stats(ss, i, &s);
		json_array_append_new(sa, strategy_json(&s));
	}
	for (unsigned i = 0; i < strategies_loader_count(ss); i++) {
		struct loader_stats l;

		strategies_loader_stats(ss, i, &l);
		json_array_append_new(la, loader_json(&l));
	}
	strategies_release(ss);
	api_reply_json(c, 200, json_pack("{s:o,s:o}", "strategies", sa, "loaders", la));
}

static json_t *job_json(const struct warm_job_info *w)
{
	json_t *j = json_pack("{s:o,s:s,s:s}", "job_id", api_json_u64(w->id), "status",
			      warm_status_name(w->status), "cache_scope", w->scope_all ? "all" : "l1");

	json_object_set_new(j, "sources", json_integer(w->n_sources));
	json_object_set_new(j, "keys_seen", api_json_u64(w->seen));
	json_object_set_new(j, "keys_warmed", api_json_u64(w->warmed));
	json_object_set_new(j, "keys_missing", api_json_u64(w->missing));
	json_object_set_new(j, "keys_failed", api_json_u64(w->failed));
	json_object_set_new(j, "created_ms", api_json_u64(w->created_wall_ms));
	json_object_set_new(j, "finished_ms", w->finished_wall_ms ?
			    api_json_u64(w->finished_wall_ms) : json_null());
	json_object_set_new(j, "error", w->error[0] ? json_string(w->error) : json_null());
	return j;
}

void api_h_cache_warm(struct api_call *c)
{
	struct warm_request *rq;
	char err[256];
	json_t *root, *j;
	uint64_t id;
	int rc;

	if (!c->d->tier || !c->d->tasks) {
		api_reply_error(c, 503, "unavailable", "the cache tiers are not running");
		return;
	}
	root = api_json_parse(c->body, c->body_len, err, sizeof(err));
	if (!root) {
		api_reply_error(c, 400, "bad_json", "%s", err);
		return;
	}
	rq = calloc(1, sizeof(*rq));
	if (!rq) {
		json_decref(root);
		api_reply_error(c, 500, "internal", "out of memory");
		return;
	}
	rc = api_body_warm(root, rq, err, sizeof(err));
	json_decref(root);
	if (rc) {
		warm_request_free(rq);
		api_reply_error(c, 400, "bad_request", "%s", err);
		return;
	}
	rc = warm_submit(c->d, rq, &id, err, sizeof(err));   /* takes rq */
	if (rc == -EAGAIN) {
		api_reply_error(c, 429, "busy", "%s", err);
		return;
	}
	if (rc) {
		api_reply_error(c, rc == -EINVAL ? 400 : 503, rc == -EINVAL ? "bad_request" :
				"unavailable", "%s", err);
		return;
	}
	log_info("api: warm job %" PRIu64 " queued by token '%s'", id, c->token_name);
	j = json_pack("{s:o,s:s,s:s}", "job_id", api_json_u64(id), "status", "queued",
		      "status_url", "");
	{
		char url[96];

		snprintf(url, sizeof(url), "/api/v2/performance/cache/warm/%" PRIu64, id);
		json_object_set_new(j, "status_url", json_string(url));
	}
	api_reply_json(c, 202, j);
}

void api_h_cache_warm_status(struct api_call *c)
{
	struct warm_job_info w;
	char *end;
	unsigned long long id;

	if (!api_query_only(c, (const char *const[]){ NULL }))
		return;
	if (!c->rest || !*c->rest) {
		json_t *a = json_array();

		for (unsigned i = 0; warm_job_at(i, &w); i++)
			json_array_append_new(a, job_json(&w));
		api_reply_json(c, 200, json_pack("{s:o}", "jobs", a));
		return;
	}
	errno = 0;
	id = strtoull(c->rest, &end, 10);
	if (errno || *end || c->rest[0] < '0' || c->rest[0] > '9' || strlen(c->rest) > 20) {
		api_reply_error(c, 400, "bad_request", "warm job id must be a decimal number");
		return;
	}
	if (!warm_job_get(id, &w)) {
		api_reply_error(c, 404, "not_found", "no warm job %llu (the last %d are kept)", id,
				WARM_JOBS_KEPT);
		return;
	}
	api_reply_json(c, 200, job_json(&w));
}


int strat_metrics_render(struct hp_daemon *d, struct buf *b)
{
	struct strategies *ss = d->tier ? tier_strategies_hold(d->tier) : NULL;
	struct warm_totals wt;
	int rc = 0;

	if (strategies_count(ss)) {
		rc |= metrics_family(b, "hotpath_strategy_reads_total", "counter",
			  "GETs of keys covered by a strategy, by outcome.");
		for (unsigned i = 0; i < strategies_count(ss); i++) {
			struct strategy_stats s;

			strategies_get_stats(ss, i, &s);
			rc |= buf_printf(b,
				"hotpath_strategy_reads_total{strategy=\"%s\",result=\"fresh\"} %" PRIu64 "\n"
				"hotpath_strategy_reads_total{strategy=\"%s\",result=\"stale\"} %" PRIu64 "\n"
				"hotpath_strategy_reads_total{strategy=\"%s\",result=\"stale_if_error\"} %" PRIu64 "\n"
				"hotpath_strategy_reads_total{strategy=\"%s\",result=\"coalesced\"} %" PRIu64 "\n"
				"hotpath_strategy_reads_total{strategy=\"%s\",result=\"parked\"} %" PRIu64 "\n"
				"hotpath_strategy_reads_total{strategy=\"%s\",result=\"park_refused\"} %" PRIu64 "\n",
				s.name, s.fresh_hits, s.name, s.stale_served, s.name,
				s.stale_if_error_served, s.name, s.coalesced, s.name, s.parked,
				s.name, s.park_refused);
		}
		rc |= metrics_family(b, "hotpath_strategy_refreshes_total", "counter",
			  "Background reloads (refresh-ahead, stale-while-revalidate) queued or shed.");
		rc |= metrics_family(b, "hotpath_strategy_write_behind_total", "counter",
			  "Write-behind writes by outcome (queued, rejected: queue full, written, dead).");
		rc |= metrics_family(b, "hotpath_strategy_write_behind_pending", "gauge",
			  "Write-behind writes queued or in flight.");
		for (unsigned i = 0; i < strategies_count(ss); i++) {
			struct strategy_stats s;

			strategies_get_stats(ss, i, &s);
			rc |= buf_printf(b,
				"hotpath_strategy_refreshes_total{strategy=\"%s\",result=\"queued\"} %" PRIu64 "\n"
				"hotpath_strategy_refreshes_total{strategy=\"%s\",result=\"shed\"} %" PRIu64 "\n"
				"hotpath_strategy_write_behind_total{strategy=\"%s\",result=\"queued\"} %" PRIu64 "\n"
				"hotpath_strategy_write_behind_total{strategy=\"%s\",result=\"rejected\"} %" PRIu64 "\n"
				"hotpath_strategy_write_behind_total{strategy=\"%s\",result=\"written\"} %" PRIu64 "\n"
				"hotpath_strategy_write_behind_total{strategy=\"%s\",result=\"dead\"} %" PRIu64 "\n"
				"hotpath_strategy_write_behind_pending{strategy=\"%s\"} %" PRIu64 "\n",
				s.name, s.refreshes_queued, s.name, s.refreshes_shed, s.name,
				s.wb_queued, s.name, s.wb_rejected, s.name, s.wb_written, s.name,
				s.wb_dead, s.name, s.wb_pending);
		}
	}
	if (strategies_loader_count(ss)) {
		rc |= metrics_family(b, "hotpath_loader_calls_total", "counter",
			  "Loader reads by result (found, not_found, error, rejected by the breaker).");
		rc |= metrics_family(b, "hotpath_loader_writes_total", "counter",
			  "Loader write transactions by result.");
		rc |= metrics_family(b, "hotpath_loader_load_seconds_total", "counter",
			  "Time spent in loader reads.");
		rc |= metrics_family(b, "hotpath_loader_breaker_state", "gauge",
			  "Loader breaker: 0 closed, 1 open, 2 half-open.");
		for (unsigned i = 0; i < strategies_loader_count(ss); i++) {
			struct loader_stats l;

			strategies_loader_stats(ss, i, &l);
			rc |= buf_printf(b,
				"hotpath_loader_calls_total{loader=\"%s\",result=\"found\"} %" PRIu64 "\n"
				"hotpath_loader_calls_total{loader=\"%s\",result=\"not_found\"} %" PRIu64 "\n"
				"hotpath_loader_calls_total{loader=\"%s\",result=\"error\"} %" PRIu64 "\n"
				"hotpath_loader_calls_total{loader=\"%s\",result=\"rejected\"} %" PRIu64 "\n"
				"hotpath_loader_writes_total{loader=\"%s\",result=\"ok\"} %" PRIu64 "\n"
				"hotpath_loader_writes_total{loader=\"%s\",result=\"error\"} %" PRIu64 "\n"
				"hotpath_loader_load_seconds_total{loader=\"%s\"} %.6f\n"
				"hotpath_loader_breaker_state{loader=\"%s\"} %d\n",
				l.name, l.found, l.name, l.not_found, l.name, l.errors, l.name,
				l.rejected, l.name, l.writes - l.write_errors, l.name, l.write_errors,
				l.name, (double)l.load_us_sum / 1e6, l.name, (int)l.breaker.state);
		}
	}
	strategies_release(ss);
	warm_totals(&wt);
	rc |= metrics_family(b, "hotpath_warm_jobs_total", "counter", "Warm jobs by final status.");
	rc |= buf_printf(b, "hotpath_warm_jobs_total{status=\"done\"} %" PRIu64 "\n"
			    "hotpath_warm_jobs_total{status=\"failed\"} %" PRIu64 "\n",
			 wt.done, wt.failed);
	rc |= metrics_family(b, "hotpath_warm_keys_total", "counter", "Keys put into the cache by warm jobs.");
	rc |= buf_printf(b, "hotpath_warm_keys_total %" PRIu64 "\n", wt.keys);
	return rc ? -ENOBUFS : 0;
}
