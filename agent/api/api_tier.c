/*
 * api_tier.c - what the REST API and /metrics show of the cache tiers
 * and the task processor: GET /api/v2/cache/tiers, the tier-wide part of
 * the invalidate/clear routes, and the hotpath_tier_*, hotpath_l2_* and
 * hotpath_tasks_* families on /metrics.
 *
 * How: each answer is built from the modules' snapshot accessors
 * (tier_get_stats, l2_get_stats, tasks_get_stats, tasks_dead_list), so
 * nothing here holds their locks. Invalidation runs tier_invalidate, which
 * orders L2 -> L1/L0 -> other agents; the reply is sent only after it
 * returns, which is what makes "no read after the acknowledgement sees the
 * old value" hold for REST callers too.
 *
 * What not: no control of the tiers (breaker reset, task replay) yet.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/metrics.h"
#include "api_int.h"
#include "hotpath/api_body.h"
#include "hotpath/l2.h"
#include "hotpath/log.h"
#include "hotpath/tasks.h"
#include "hotpath/tier.h"

#define DEAD_SHOWN 50

static json_t *breaker_json(const struct breaker_stats *b)
{
	return json_pack("{s:s,s:o,s:o,s:o,s:o,s:o,s:o}",
			 "state", breaker_state_name(b->state),
			 "calls", api_json_u64(b->calls),
			 "failures", api_json_u64(b->failures),
			 "slow", api_json_u64(b->slow),
			 "rejected", api_json_u64(b->rejected),
			 "opened", api_json_u64(b->opened),
			 "closed", api_json_u64(b->closed));
}

static json_t *tier_json(struct tier *t)
{
	struct tier_stats s;
	json_t *j;

	tier_get_stats(t, &s);
	j = json_pack("{s:b,s:b,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}",
		      "l2_configured", s.l2_configured, "coherent", s.coherent,
		      "l1_hits", api_json_u64(s.l1_hits),
		      "l2_hits", api_json_u64(s.l2_hits),
		      "l2_misses", api_json_u64(s.l2_misses),
		      "l2_errors", api_json_u64(s.l2_errors),
		      "l2_rejected", api_json_u64(s.l2_rejected),
		      "l1_fills", api_json_u64(s.l1_fills),
		      "fills_skipped", api_json_u64(s.fills_skipped),
		      "writes", api_json_u64(s.writes),
		      "write_errors", api_json_u64(s.write_errors));
	json_object_set_new(j, "key_invalidations", api_json_u64(s.key_invalidations));
	json_object_set_new(j, "pattern_invalidations", api_json_u64(s.pattern_invalidations));
	json_object_set_new(j, "flushes", api_json_u64(s.flushes));
	json_object_set_new(j, "peer_messages_in", api_json_u64(s.peer_messages_in));
	json_object_set_new(j, "peer_messages_out", api_json_u64(s.peer_messages_out));
	json_object_set_new(j, "stale_served", api_json_u64(s.stale_served));
	json_object_set_new(j, "l2_async_reads", api_json_u64(s.l2_async_reads));
	json_object_set_new(j, "l2_coalesced", api_json_u64(s.l2_coalesced));
	json_object_set_new(j, "l2_parked", api_json_u64(s.l2_parked));
	json_object_set_new(j, "l2_queue_full", api_json_u64(s.l2_queue_full));
	json_object_set_new(j, "l2_async_stores", api_json_u64(s.l2_async_stores));
	json_object_set_new(j, "l2_store_errors", api_json_u64(s.l2_store_errors));
	json_object_set_new(j, "breaker", breaker_json(&s.breaker));
	return j;
}

static json_t *l2_json(struct l2 *l)
{
	struct l2_stats *s = malloc(sizeof(*s));
	json_t *j, *nodes;

	if (!s)
		return json_null();
	l2_get_stats(l, s);
	nodes = json_array();
	for (unsigned i = 0; i < s->n_nodes; i++)
		json_array_append_new(nodes, json_pack("{s:s,s:b,s:b,s:i}", "address",
						       s->nodes[i].addr, "up", s->nodes[i].up,
						       "tracking", s->nodes[i].tracking_up,
						       "slots", (int)s->nodes[i].slots));
	j = json_pack("{s:b,s:b,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}",
		      "cluster", s->cluster, "coherent", s->coherent, "nodes", nodes,
		      "calls", api_json_u64(s->calls), "errors", api_json_u64(s->errors),
		      "timeouts", api_json_u64(s->timeouts), "moved", api_json_u64(s->moved),
		      "ask", api_json_u64(s->ask), "reconnects", api_json_u64(s->reconnects),
		      "topology_refreshes", api_json_u64(s->topology_refreshes));
	json_object_set_new(j, "invalidations", api_json_u64(s->invalidations));
	json_object_set_new(j, "invalidation_flushes", api_json_u64(s->invalidation_flushes));
	json_object_set_new(j, "messages", api_json_u64(s->messages));
	json_object_set_new(j, "coherence_losses", api_json_u64(s->coherence_losses));
	json_object_set_new(j, "latency_p99_us",
			    api_json_u64((uint64_t)hist_quantile(&s->usec, 0.99)));
	json_object_set_new(j, "dispatcher", json_pack(
		"{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}",
		"queue_max", api_json_u64(s->async_queue_max),
		"queued", api_json_u64(s->async_queued),
		"inflight", api_json_u64(s->async_inflight),
		"batches", api_json_u64(s->async_batches),
		"requests", api_json_u64(s->async_requests),
		"rejected", api_json_u64(s->async_rejected),
		"timeouts", api_json_u64(s->async_timeouts),
		"batch_size_p50", api_json_u64((uint64_t)hist_quantile(&s->async_batch_size, 0.5)),
		"batch_size_p99", api_json_u64((uint64_t)hist_quantile(&s->async_batch_size, 0.99))));
	free(s);
	return j;
}

json_t *api_tasks_json(struct tasks *tk)
{
	struct tasks_stats s;
	struct tasks_dead *dead = calloc(DEAD_SHOWN, sizeof(*dead));
	json_t *j, *kinds = json_array(), *dl = json_array();
	unsigned nd;

	tasks_get_stats(tk, &s);
	for (unsigned i = 0; i < s.n_kinds; i++)
		json_array_append_new(kinds, json_pack(
			"{s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "kind", s.kinds[i].kind,
			"submitted", api_json_u64(s.kinds[i].submitted),
			"completed", api_json_u64(s.kinds[i].completed),
			"failed_attempts", api_json_u64(s.kinds[i].failed_attempts),
			"retried", api_json_u64(s.kinds[i].retried),
			"dead", api_json_u64(s.kinds[i].dead),
			"shed", api_json_u64(s.kinds[i].shed),
			"rejected", api_json_u64(s.kinds[i].rejected)));
	nd = dead ? tasks_dead_list(tk, dead, DEAD_SHOWN) : 0;
	for (unsigned i = 0; i < nd; i++)
		json_array_append_new(dl, json_pack("{s:s,s:o,s:s,s:i,s:o}", "kind", dead[i].kind,
						    "label", api_json_bytes(dead[i].label,
									    strlen(dead[i].label)),
						    "error", dead[i].error, "attempts",
						    (int)dead[i].attempts, "at_ms",
						    api_json_u64(dead[i].wall_ms)));
	free(dead);
	j = json_pack("{s:i,s:o,s:{s:o,s:o,s:o},s:o,s:o,s:o,s:o,s:o,s:o}",
		      "workers", (int)s.workers, "queue_max", api_json_u64(s.queue_max),
		      "depth", "high", api_json_u64(s.depth[TASK_PRIO_HIGH]),
		      "normal", api_json_u64(s.depth[TASK_PRIO_NORMAL]),
		      "low", api_json_u64(s.depth[TASK_PRIO_LOW]),
		      "delayed", api_json_u64(s.delayed), "running", api_json_u64(s.running),
		      "submitted", api_json_u64(s.submitted),
		      "completed", api_json_u64(s.completed),
		      "failed_attempts", api_json_u64(s.failed_attempts),
		      "retried", api_json_u64(s.retried));
	json_object_set_new(j, "dead", api_json_u64(s.dead));
	json_object_set_new(j, "shed", api_json_u64(s.shed));
	json_object_set_new(j, "rejected", api_json_u64(s.rejected));
	json_object_set_new(j, "shedding", json_boolean(s.shedding));
	json_object_set_new(j, "completed_per_s", json_real(s.completed_per_s));
	json_object_set_new(j, "submitted_per_s", json_real(s.submitted_per_s));
	json_object_set_new(j, "sojourn_p99_us", api_json_u64(s.sojourn_p99_us));
	json_object_set_new(j, "kinds", kinds);
	json_object_set_new(j, "dead_letters", dl);
	return j;
}

void api_h_cache_tiers(struct api_call *c)
{
	json_t *j;

	if (!api_query_only(c, (const char *const[]){ NULL }))
		return;
	if (!c->d->tier) {
		api_reply_error(c, 503, "unavailable", "the cache tiers are not running");
		return;
	}
	j = json_pack("{s:o,s:o,s:o}", "tier", tier_json(c->d->tier),
		      "l2", c->d->l2 ? l2_json(c->d->l2) : json_null(),
		      "tasks", c->d->tasks ? api_tasks_json(c->d->tasks) : json_null());
	api_reply_json(c, 200, j);
}

void api_tier_invalidate(struct api_call *c, const char *field, const struct api_pattern_req *rq)
{
	struct tier_inval_result res;
	const char *pat = rq->has_pattern ? rq->pattern : "*";
	size_t plen = rq->has_pattern ? rq->patlen : 1;
	unsigned scope = rq->tier == API_TIER_L1 ? TIER_SCOPE_LOCAL : TIER_SCOPE_ALL;
	char err[256];
	json_t *j;
	int rc;

	rc = tier_invalidate(c->d->tier, pat, plen, scope, &res, err, sizeof(err));
	log_info("api: %s by token '%s' (%s, %s): %" PRIu64 " L1 key(s), %" PRIu64
		 " L2 key(s)%s", field, c->token_name, rq->has_pattern ? "pattern" : "everything",
		 scope == TIER_SCOPE_LOCAL ? "l1" : "all tiers", res.l1_deleted, res.l2_deleted,
		 rc ? " - L2 FAILED" : "");
	if (rc) {
		api_reply_error(c, 503, "l2_unavailable",
				"L1 cleared (%" PRIu64 " keys) but Redis could not be: %s",
				res.l1_deleted, err);
		return;
	}
	j = json_pack("{s:{s:o,s:o},s:o,s:o,s:b}", field, "l1", api_json_u64(res.l1_deleted),
		      "l2", api_json_u64(res.l2_deleted), "total",
		      api_json_u64(res.l1_deleted + res.l2_deleted), "pattern",
		      rq->has_pattern ? api_json_bytes(rq->pattern, rq->patlen) : json_null(),
		      "peers_notified", res.peers_told);
	api_reply_json(c, 200, j);
}

/* ---- /metrics ------------------------------------------------------------ */


int tier_metrics_render(struct hp_daemon *d, struct buf *b)
{
	int rc = 0;

	if (d->tier) {
		struct tier_stats s;

		tier_get_stats(d->tier, &s);
		rc |= metrics_family(b, "hotpath_tier_reads_total", "counter",
			  "GETs through the tiers by where they were answered.");
		rc |= buf_printf(b, "hotpath_tier_reads_total{result=\"l1_hit\"} %" PRIu64 "\n"
				    "hotpath_tier_reads_total{result=\"l2_hit\"} %" PRIu64 "\n"
				    "hotpath_tier_reads_total{result=\"l2_miss\"} %" PRIu64 "\n"
				    "hotpath_tier_reads_total{result=\"l2_error\"} %" PRIu64 "\n"
				    "hotpath_tier_reads_total{result=\"l2_rejected\"} %" PRIu64 "\n",
				 s.l1_hits, s.l2_hits, s.l2_misses, s.l2_errors, s.l2_rejected);
		rc |= metrics_family(b, "hotpath_tier_l2_async_total", "counter",
			  "L1 misses read from Redis without holding their thread: reads started, "
			  "misses that joined a read of the same key in flight, clients parked for "
			  "them, refused (dispatcher queue full), stores queued, stores failed.");
		rc |= buf_printf(b, "hotpath_tier_l2_async_total{event=\"read\"} %" PRIu64 "\n"
				    "hotpath_tier_l2_async_total{event=\"coalesced\"} %" PRIu64 "\n"
				    "hotpath_tier_l2_async_total{event=\"parked\"} %" PRIu64 "\n"
				    "hotpath_tier_l2_async_total{event=\"queue_full\"} %" PRIu64 "\n"
				    "hotpath_tier_l2_async_total{event=\"store\"} %" PRIu64 "\n"
				    "hotpath_tier_l2_async_total{event=\"store_error\"} %" PRIu64 "\n",
				 s.l2_async_reads, s.l2_coalesced, s.l2_parked, s.l2_queue_full,
				 s.l2_async_stores, s.l2_store_errors);
		rc |= metrics_family(b, "hotpath_tier_l1_fills_total", "counter",
			  "L2 values copied into L1 (stored) or not (skipped: raced an "
			  "invalidation, or coherence lost).");
		rc |= buf_printf(b, "hotpath_tier_l1_fills_total{result=\"stored\"} %" PRIu64 "\n"
				    "hotpath_tier_l1_fills_total{result=\"skipped\"} %" PRIu64 "\n",
				 s.l1_fills, s.fills_skipped);
		rc |= metrics_family(b, "hotpath_tier_invalidations_total", "counter",
			  "Invalidations applied to L1/L0, by kind.");
		rc |= buf_printf(b, "hotpath_tier_invalidations_total{kind=\"key\"} %" PRIu64 "\n"
				    "hotpath_tier_invalidations_total{kind=\"pattern\"} %" PRIu64 "\n"
				    "hotpath_tier_invalidations_total{kind=\"flush\"} %" PRIu64 "\n",
				 s.key_invalidations, s.pattern_invalidations, s.flushes);
		rc |= metrics_family(b, "hotpath_tier_writes_total", "counter",
			  "Writes sent through to Redis, and how many failed.");
		rc |= buf_printf(b, "hotpath_tier_writes_total{result=\"ok\"} %" PRIu64 "\n"
				    "hotpath_tier_writes_total{result=\"error\"} %" PRIu64 "\n",
				 s.writes - s.write_errors, s.write_errors);
		rc |= metrics_family(b, "hotpath_l2_breaker_state", "gauge",
			  "Circuit breaker on the L2 path: 0 closed, 1 open, 2 half-open.");
		rc |= buf_printf(b, "hotpath_l2_breaker_state %d\n", (int)s.breaker.state);
		rc |= metrics_family(b, "hotpath_l2_breaker_opened_total", "counter",
			  "Times the L2 breaker opened.");
		rc |= buf_printf(b, "hotpath_l2_breaker_opened_total %" PRIu64 "\n", s.breaker.opened);
		rc |= metrics_family(b, "hotpath_l2_coherent", "gauge",
			  "1 while every Redis invalidation connection is up.");
		rc |= buf_printf(b, "hotpath_l2_coherent %d\n", s.coherent ? 1 : 0);
	}
	if (d->l2) {
		struct l2_stats *s = malloc(sizeof(*s));

		if (!s)
			return -ENOMEM;
		l2_get_stats(d->l2, s);
		rc |= metrics_family(b, "hotpath_l2_calls_total", "counter", "Requests sent to Redis.");
		rc |= buf_printf(b, "hotpath_l2_calls_total %" PRIu64 "\n", s->calls);
		rc |= metrics_family(b, "hotpath_l2_errors_total", "counter",
			  "Redis requests that failed (transport, timeout, redirect loop).");
		rc |= buf_printf(b, "hotpath_l2_errors_total %" PRIu64 "\n", s->errors);
		rc |= metrics_family(b, "hotpath_l2_redirects_total", "counter",
			  "Redis Cluster redirects followed.");
		rc |= buf_printf(b, "hotpath_l2_redirects_total{kind=\"moved\"} %" PRIu64 "\n"
				    "hotpath_l2_redirects_total{kind=\"ask\"} %" PRIu64 "\n",
				 s->moved, s->ask);
		rc |= metrics_family(b, "hotpath_l2_tracking_invalidations_total", "counter",
			  "Keys Redis told us changed (client tracking).");
		rc |= buf_printf(b, "hotpath_l2_tracking_invalidations_total %" PRIu64 "\n",
				 s->invalidations);
		/* the dispatcher's figures: one sample each */
		const struct { const char *name, *type, *help; uint64_t v; } disp[] = {
			{ "hotpath_l2_dispatcher_queue_depth", "gauge",
			  "L1 misses and stores handed to the L2 dispatcher, not yet written to Redis.",
			  s->async_queued },
			{ "hotpath_l2_dispatcher_inflight", "gauge",
			  "Dispatcher requests written to Redis and waiting for their replies.",
			  s->async_inflight },
			{ "hotpath_l2_dispatcher_queue_max", "gauge",
			  "Dispatcher requests allowed queued and in flight (redis.queue_max).",
			  s->async_queue_max },
			{ "hotpath_l2_dispatcher_batches_total", "counter",
			  "Pipelined writes to Redis by the dispatcher (each carries one or more requests).",
			  s->async_batches },
			{ "hotpath_l2_dispatcher_requests_total", "counter",
			  "Dispatcher requests answered (found, not found or failed).",
			  s->async_requests },
			{ "hotpath_l2_dispatcher_rejected_total", "counter",
			  "Requests refused because the dispatcher's queue was full.",
			  s->async_rejected },
			{ "hotpath_l2_dispatcher_timeouts_total", "counter",
			  "Dispatcher connections dropped because Redis did not answer in time.",
			  s->async_timeouts },
		};

		for (size_t i = 0; i < sizeof(disp) / sizeof(disp[0]); i++) {
			rc |= metrics_family(b, disp[i].name, disp[i].type, disp[i].help);
			rc |= buf_printf(b, "%s %" PRIu64 "\n", disp[i].name, disp[i].v);
		}
		free(s);
	}
	if (d->tasks) {
		struct tasks_stats s;

		tasks_get_stats(d->tasks, &s);
		rc |= metrics_family(b, "hotpath_tasks_workers", "gauge", "Background task worker threads.");
		rc |= buf_printf(b, "hotpath_tasks_workers %u\n", s.workers);
		rc |= metrics_family(b, "hotpath_tasks_queue_depth", "gauge",
			  "Background tasks ready to run, by priority.");
		rc |= buf_printf(b, "hotpath_tasks_queue_depth{priority=\"high\"} %" PRIu64 "\n"
				    "hotpath_tasks_queue_depth{priority=\"normal\"} %" PRIu64 "\n"
				    "hotpath_tasks_queue_depth{priority=\"low\"} %" PRIu64 "\n",
				 s.depth[0], s.depth[1], s.depth[2]);
		rc |= metrics_family(b, "hotpath_tasks_delayed", "gauge", "Tasks waiting for a retry.");
		rc |= buf_printf(b, "hotpath_tasks_delayed %" PRIu64 "\n", s.delayed);
		rc |= metrics_family(b, "hotpath_tasks_total", "counter", "Background tasks by outcome.");
		rc |= buf_printf(b, "hotpath_tasks_total{outcome=\"submitted\"} %" PRIu64 "\n"
				    "hotpath_tasks_total{outcome=\"completed\"} %" PRIu64 "\n"
				    "hotpath_tasks_total{outcome=\"failed_attempt\"} %" PRIu64 "\n"
				    "hotpath_tasks_total{outcome=\"retried\"} %" PRIu64 "\n"
				    "hotpath_tasks_total{outcome=\"dead\"} %" PRIu64 "\n"
				    "hotpath_tasks_total{outcome=\"shed\"} %" PRIu64 "\n"
				    "hotpath_tasks_total{outcome=\"rejected\"} %" PRIu64 "\n",
				 s.submitted, s.completed, s.failed_attempts, s.retried, s.dead,
				 s.shed, s.rejected);
	}
	if (!rc && strat_metrics_render(d, b))   /* strategies, loaders, warm (api_strat.c) */
		return -ENOBUFS;
	return rc ? -ENOBUFS : 0;
}
