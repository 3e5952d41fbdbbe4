/*
 * api_pool.c - GET /api/v2/pools: the PostgreSQL pooler's pools as JSON.
 *
 * What: one object per pool (database, user) with clients
 * active/waiting, server connections by state, the current connection
 * limit and its bounds, transaction and query counters, wait, query and
 * transaction time histograms (log2 µs buckets with p50/p95/p99
 * estimates) and the adaptive controller's recent decisions, newest
 * first; plus pooler-wide counters. How: a snapshot from pooler_stats()
 * (thread-safe) rendered with jansson. Not here: changing pools (the
 * config and SIGHUP do that).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "api_int.h"
#include "hotpath/hist.h"
#include "hotpath/pooler.h"

static json_t *hist_json(const struct hist *h)
{
	json_t *buckets = json_array();
	unsigned last = 0;

	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		if (h->buckets[i])
			last = i;
	for (unsigned i = 0; buckets && h->count && i <= last; i++)
		json_array_append_new(buckets, json_pack("{s:o,s:o}", "le_us",
							 api_json_u64(hist_bucket_upper(i)),
							 "count", api_json_u64(h->buckets[i])));
	return json_pack("{s:o,s:o,s:f,s:f,s:f,s:o}", "count", api_json_u64(h->count),
			 "sum_us", api_json_u64(h->sum),
			 "p50_us", hist_quantile(h, 0.50), "p95_us", hist_quantile(h, 0.95),
			 "p99_us", hist_quantile(h, 0.99), "buckets", buckets ? buckets : json_null());
}

static json_t *decisions_json(const struct pooler_pool_stats *s)
{
	json_t *a = json_array();

	for (unsigned i = 0; a && i < s->n_decisions; i++) {
		const struct pooler_decision *d = &s->decisions[i];

		json_array_append_new(a, json_pack("{s:o,s:i,s:i,s:f,s:f,s:f,s:i,s:s}",
						   "time_ms", api_json_u64(d->wall_ms),
						   "from", (json_int_t)d->from, "to", (json_int_t)d->to,
						   "recent_query_ms", d->short_ms,
						   "baseline_query_ms", d->long_ms,
						   "mean_wait_ms", d->wait_ms,
						   "clients_waited", (json_int_t)d->waited,
						   "reason", d->reason));
	}
	return a;
}

static json_t *pool_json(const struct pooler_pool_stats *s)
{
	return json_pack("{s:s,s:s,s:s,s:{s:i,s:i,s:i,s:b},s:{s:o,s:o,s:o},"
			 "s:{s:o,s:o,s:o,s:o},s:{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o},"
			 "s:o,s:o,s:o,s:s,s:o}",
			 "database", s->database, "user", s->user,
			 "pool_mode", s->mode == HP_POOL_TRANSACTION ? "transaction" : "session",
			 "size", "limit", (json_int_t)s->limit, "min", (json_int_t)s->min_size,
			 "max", (json_int_t)s->max_size, "adaptive", s->adaptive,
			 "clients", "connected", api_json_u64(s->clients),
			 "active", api_json_u64(s->clients_active),
			 "waiting", api_json_u64(s->clients_waiting),
			 "servers", "active", api_json_u64(s->servers_active),
			 "idle", api_json_u64(s->servers_idle),
			 "login", api_json_u64(s->servers_connecting),
			 "reset", api_json_u64(s->servers_other),
			 "totals", "transactions", api_json_u64(s->transactions),
			 "queries", api_json_u64(s->queries),
			 "wait_timeouts", api_json_u64(s->wait_timeouts),
			 "servers_opened", api_json_u64(s->servers_opened),
			 "servers_closed", api_json_u64(s->servers_closed),
			 "server_login_failures", api_json_u64(s->server_login_failures),
			 "statements_prepared", api_json_u64(s->stmt_prepares),
			 "statements_reprepared", api_json_u64(s->stmt_reprepares),
			 "bytes_to_server", api_json_u64(s->bytes_in),
			 "bytes_to_client", api_json_u64(s->bytes_out),
			 "wait_time", hist_json(&s->wait_us),
			 "query_time", hist_json(&s->query_us),
			 "transaction_time", hist_json(&s->xact_us),
			 "last_server_error", s->last_server_error,
			 "adaptive_decisions", decisions_json(s));
}

void api_h_pools(struct api_call *c)
{
	struct pooler_pool_stats *v;
	struct pooler_global_stats g;
	json_t *pools, *j;
	unsigned n;
	int rc;

	if (!api_query_only(c, (const char *const[]){ NULL }))
		return;
	if (!c->d->pooler) {
		api_reply_error(c, 501, "not_implemented", "the PostgreSQL pooler is not running: "
				"it starts when the config has a [database.NAME] section");
		return;
	}
	rc = pooler_stats(c->d->pooler, &v, &n, &g);
	if (rc) {
		api_reply_error(c, 500, "internal", "pool statistics: %s", strerror(-rc));
		return;
	}
	pools = json_array();
	for (unsigned i = 0; pools && i < n; i++)
		json_array_append_new(pools, pool_json(&v[i]));
	free(v);
	j = json_pack("{s:i,s:{s:o,s:o,s:o,s:o,s:o,s:o,s:o},s:o}", "port", (json_int_t)g.port,
		      "clients", "connected", api_json_u64(g.clients),
		      "accepted", api_json_u64(g.accepted),
		      "rejected_max_clients", api_json_u64(g.rejected_max_clients),
		      "auth_failures", api_json_u64(g.auth_failures),
		      "ssl_refused", api_json_u64(g.ssl_refused),
		      "cancels_forwarded", api_json_u64(g.cancels_forwarded),
		      "cancels_ignored", api_json_u64(g.cancels_ignored),
		      "pools", pools ? pools : json_null());
	api_reply_json(c, 200, j);
}
