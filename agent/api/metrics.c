/*
 * metrics.c - Prometheus text exposition (format 0.0.4) of every running
 * subsystem, for GET /metrics.
 *
 * The page is rendered fresh for each scrape into a bounded struct buf from
 * the subsystems' own snapshot accessors (l1_get_stats, resp_server_stats,
 * bpf_accept_read, the daemon's feature table); nothing is cached between
 * scrapes and nothing here holds a lock of another module for longer than
 * its accessor does. Each family gets its HELP and TYPE line once, followed
 * by its samples; label values go through api_prom_escape.
 *
 * RESP latency histograms come from hist.h's log2 microsecond buckets: the
 * upper bound of bucket i becomes le="<seconds>", counts are made
 * cumulative, and +Inf and _count are the cumulative total (rather than the
 * separately incremented `count`, which a concurrent recording can make
 * disagree by one) so every histogram we print is self-consistent. Only
 * commands that have been called are listed, to keep a scrape small.
 *
 * Deliberately not here: a client library. The format is a few printf
 * shapes and the upstream C client (prometheus-client-c) is not packaged
 * in Debian; writing the lines ourselves is smaller than vendoring it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/api_body.h"
#include "hotpath/bpf_accept.h"
#include "hotpath/hist.h"
#include "hotpath/l1.h"
#include "hotpath/l0.h"
#include "hotpath/metrics.h"
#include "hotpath/observe.h"
#include "hotpath/pooler.h"
#include "hotpath/pgadvise.h"
#include "hotpath/resp_cmd.h"
#include "hotpath/proxy.h"
#include "hotpath/server.h"
#include "hotpath/tier.h"

static const unsigned api_codes[METRICS_API_CODES - 1] = {
	200, 400, 401, 403, 404, 405, 413, 500, 501, 503,
};

unsigned metrics_api_code(unsigned status)
{
	for (unsigned i = 0; i < HP_ARRAY_SIZE(api_codes); i++)
		if (api_codes[i] == status)
			return i;
	return METRICS_API_CODES - 1;
}

unsigned metrics_api_code_status(unsigned idx)
{
	return idx < HP_ARRAY_SIZE(api_codes) ? api_codes[idx] : 0;
}

/* "# HELP name text\n# TYPE name type\n" */
int metrics_family(struct buf *b, const char *name, const char *type, const char *help)
{
	return buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One label pair, escaped: name="value" (with a leading comma if `more`). */
static int label(struct buf *b, bool more, const char *name, const char *value)
{
	int rc;

	if ((rc = buf_printf(b, "%s%s=\"", more ? "," : "", name)))
		return rc;
	if ((rc = api_prom_escape(b, value, strlen(value))))
		return rc;
	return buf_append_str(b, "\"");
}

/* name{l1="v1"[,l2="v2"]} value */
int metrics_sample2(struct buf *b, const char *name, const char *l1n, const char *l1v,
		    const char *l2n, const char *l2v, uint64_t v)
{
	int rc;

	if ((rc = buf_append_str(b, name)))
		return rc;
	if (l1n) {
		if ((rc = buf_append_str(b, "{")) || (rc = label(b, false, l1n, l1v)))
			return rc;
		if (l2n && (rc = label(b, true, l2n, l2v)))
			return rc;
		if ((rc = buf_append_str(b, "}")))
			return rc;
	}
	return buf_printf(b, " %" PRIu64 "\n", v);
}

static int sample(struct buf *b, const char *name, uint64_t v)
{
	return metrics_sample2(b, name, NULL, NULL, NULL, NULL, v);
}

static int render_l1(struct hp_daemon *d, struct buf *b)
{
	static const char *const reasons[L1_EVICT_REASONS] = { "memory", "quota", "pressure" };
	struct l1_stats *st;
	struct l0_totals l0t = { 0 };
	uint64_t ph = 0, pm = 0;
	bool has_default = false;
	int rc;

	if (!d->l1)
		return 0;
	if (d->l0)
		l0_get_totals(d->l0, &l0t);
	st = malloc(sizeof(*st));
	if (!st)
		return -ENOMEM;
	l1_get_stats(d->l1, st);
	if (st->n_partitions > L1_MAX_PARTITIONS)
		st->n_partitions = L1_MAX_PARTITIONS;

	if ((rc = metrics_family(b, "hotpath_cache_operations_total", "counter",
			 "Cache operations by tier and operation (get = hits + misses).")) ||
	    (rc = metrics_sample2(b, "hotpath_cache_operations_total", "tier", "l1", "op", "get",
			  st->hits + st->misses)) ||
	    (rc = metrics_sample2(b, "hotpath_cache_operations_total", "tier", "l1", "op", "set", st->sets)) ||
	    (rc = metrics_sample2(b, "hotpath_cache_operations_total", "tier", "l1", "op", "delete",
			  st->deletes)))
		goto out;
	/* L0 answers GETs only: its gets are its hits plus the segments it
	 * passed because a key was not there. */
	if (d->l0 && (rc = metrics_sample2(b, "hotpath_cache_operations_total", "tier", "l0", "op", "get",
				   l0t.hits + l0t.pass_miss)))
		goto out;

	/* Per partition; keys outside every named prefix count in the implicit
	 * default partition. If the store does not list it, report the rest. */
	for (unsigned i = 0; i < st->n_partitions; i++) {
		st->partitions[i].name[sizeof(st->partitions[i].name) - 1] = '\0';
		ph += st->partitions[i].hits;
		pm += st->partitions[i].misses;
		if (st->partitions[i].prefix[0] == '\0')
			has_default = true;
	}
	if ((rc = metrics_family(b, "hotpath_cache_hits_total", "counter", "Cache hits by tier and partition.")))
		goto out;
	for (unsigned i = 0; i < st->n_partitions; i++)
		if ((rc = metrics_sample2(b, "hotpath_cache_hits_total", "tier", "l1", "partition",
				  st->partitions[i].name, st->partitions[i].hits)))
			goto out;
	if (!has_default && (rc = metrics_sample2(b, "hotpath_cache_hits_total", "tier", "l1", "partition",
					  "default", st->hits > ph ? st->hits - ph : 0)))
		goto out;
	if (d->l0 && (rc = metrics_sample2(b, "hotpath_cache_hits_total", "tier", "l0", "partition", "all",
				   l0t.hits)))
		goto out;
	if ((rc = metrics_family(b, "hotpath_cache_misses_total", "counter",
			 "Cache misses by tier and partition.")))
		goto out;
	for (unsigned i = 0; i < st->n_partitions; i++)
		if ((rc = metrics_sample2(b, "hotpath_cache_misses_total", "tier", "l1", "partition",
				  st->partitions[i].name, st->partitions[i].misses)))
			goto out;
	if (!has_default && (rc = metrics_sample2(b, "hotpath_cache_misses_total", "tier", "l1", "partition",
					  "default", st->misses > pm ? st->misses - pm : 0)))
		goto out;
	if (d->l0 && (rc = metrics_sample2(b, "hotpath_cache_misses_total", "tier", "l0", "partition", "all",
				   l0t.pass_miss)))
		goto out;

	if ((rc = metrics_family(b, "hotpath_cache_evictions_total", "counter",
			 "Entries evicted, by tier and reason (memory limit, partition quota, "
			 "host memory pressure).")))
		goto out;
	for (unsigned i = 0; i < L1_EVICT_REASONS; i++)
		if ((rc = metrics_sample2(b, "hotpath_cache_evictions_total", "tier", "l1", "reason", reasons[i],
				  st->evictions[i])))
			goto out;
	if ((rc = metrics_family(b, "hotpath_cache_expired_total", "counter",
			 "Entries removed because their TTL passed, by mode (lazy on access, active "
			 "by the expiry timer).")) ||
	    (rc = metrics_sample2(b, "hotpath_cache_expired_total", "tier", "l1", "mode", "lazy",
			  st->expired_lazy)) ||
	    (rc = metrics_sample2(b, "hotpath_cache_expired_total", "tier", "l1", "mode", "active",
			  st->expired_active)))
		goto out;
	if ((rc = metrics_family(b, "hotpath_cache_keys", "gauge", "Keys stored now.")) ||
	    (rc = metrics_sample2(b, "hotpath_cache_keys", "tier", "l1", NULL, NULL, st->keys)) ||
	    (d->l0 && (rc = metrics_sample2(b, "hotpath_cache_keys", "tier", "l0", NULL, NULL, l0t.keys))) ||
	    (rc = metrics_family(b, "hotpath_cache_keys_with_ttl", "gauge", "Keys stored now that have a TTL.")) ||
	    (rc = metrics_sample2(b, "hotpath_cache_keys_with_ttl", "tier", "l1", NULL, NULL,
			  st->keys_with_ttl)) ||
	    (rc = metrics_family(b, "hotpath_cache_memory_bytes", "gauge",
			 "Memory accounted to entries (keys, values, per-entry overhead).")) ||
	    (rc = metrics_sample2(b, "hotpath_cache_memory_bytes", "tier", "l1", NULL, NULL, st->memory)) ||
	    (rc = metrics_family(b, "hotpath_cache_max_memory_bytes", "gauge", "Configured memory limit.")) ||
	    (rc = metrics_sample2(b, "hotpath_cache_max_memory_bytes", "tier", "l1", NULL, NULL,
			  st->max_memory)) ||
	    (rc = metrics_family(b, "hotpath_cache_effective_max_memory_bytes", "gauge",
			 "Memory limit in force now (lower than the configured one under host "
			 "memory pressure).")) ||
	    (rc = metrics_sample2(b, "hotpath_cache_effective_max_memory_bytes", "tier", "l1", NULL, NULL,
			  st->effective_max_memory)))
		goto out;
	if ((rc = metrics_family(b, "hotpath_cache_partition_keys", "gauge", "Keys stored now, by partition.")))
		goto out;
	for (unsigned i = 0; i < st->n_partitions; i++)
		if ((rc = metrics_sample2(b, "hotpath_cache_partition_keys", "tier", "l1", "partition",
				  st->partitions[i].name, st->partitions[i].keys)))
			goto out;
	if ((rc = metrics_family(b, "hotpath_cache_partition_memory_bytes", "gauge",
			 "Memory accounted now, by partition.")))
		goto out;
	for (unsigned i = 0; i < st->n_partitions; i++)
		if ((rc = metrics_sample2(b, "hotpath_cache_partition_memory_bytes", "tier", "l1", "partition",
				  st->partitions[i].name, st->partitions[i].memory)))
			goto out;
	if (d->l0) {
		if ((rc = metrics_family(b, "hotpath_l0_passed_total", "counter",
				 "Writes or segments the kernel passed to the daemon instead of "
				 "answering, by reason (miss: a key not in L0; busy: earlier "
				 "commands of the connection still in the daemon, or their "
				 "replies not yet read; other: not only GETs; error: rewrite "
				 "failed; size: a local client's replies too short or too long; "
				 "room: the client's unread kernel answers fill its receive "
				 "buffer, or a remote client's send buffer or the relay's "
				 "snapshots are full; remote: a connection only the relay "
				 "could answer, while it is off: [l0] remote = no, or no "
				 "relay socket).")))
			goto out;
		const struct { const char *reason; uint64_t n; } passed[] = {
			{ "miss", l0t.pass_miss }, { "busy", l0t.pass_busy },
			{ "other", l0t.pass_other }, { "error", l0t.pass_error },
			{ "size", l0t.pass_size }, { "room", l0t.pass_room },
			{ "remote", l0t.pass_remote },
		};
		for (unsigned i = 0; i < sizeof(passed) / sizeof(passed[0]); i++)
			if ((rc = metrics_sample2(b, "hotpath_l0_passed_total", "reason", passed[i].reason,
						  NULL, NULL, passed[i].n)))
				goto out;
		if ((rc = metrics_family(b, "hotpath_l0_local_answered_total", "counter",
				 "Writes of local clients answered on their send side (sk_msg).")) ||
		    (rc = sample(b, "hotpath_l0_local_answered_total", l0t.local_answered)) ||
		    (rc = metrics_family(b, "hotpath_l0_local_connections_total", "counter",
				 "Connections of local clients enrolled for send-side answers.")) ||
		    (rc = sample(b, "hotpath_l0_local_connections_total", l0t.local_conns)) ||
		    (rc = metrics_family(b, "hotpath_l0_segments_answered_total", "counter",
				 "Received segments of remote clients answered in the kernel "
				 "(sent to the relay socket).")) ||
		    (rc = sample(b, "hotpath_l0_segments_answered_total", l0t.segments_answered)) ||
		    (rc = metrics_family(b, "hotpath_l0_relay_answered_total", "counter",
				 "Kernel answers the relay socket wrote to remote clients.")) ||
		    (rc = sample(b, "hotpath_l0_relay_answered_total", l0t.relay_answered)) ||
		    (rc = metrics_family(b, "hotpath_l0_relay_passed_total", "counter",
				 "Segments handed to the daemon through the relay socket, behind "
				 "kernel answers still on their way.")) ||
		    (rc = sample(b, "hotpath_l0_relay_passed_total", l0t.relay_passed)) ||
		    (rc = metrics_family(b, "hotpath_l0_relay_lost_total", "counter",
				 "Relayed segments whose client was gone (discarded).")) ||
		    (rc = sample(b, "hotpath_l0_relay_lost_total", l0t.relay_lost)) ||
		    (rc = metrics_family(b, "hotpath_l0_relay_closed_total", "counter",
				 "Client connections shut down because a relay socket the "
				 "kernel stopped lost their kernel answers or requests.")) ||
		    (rc = sample(b, "hotpath_l0_relay_closed_total", l0t.relay_closed)) ||
		    (rc = metrics_family(b, "hotpath_l0_relay_up", "gauge",
				 "1 while the relay socket answers remote clients in the kernel "
				 "(0 with [l0] remote = no).")) ||
		    (rc = sample(b, "hotpath_l0_relay_up", l0t.relay_on ? 1 : 0)) ||
		    (rc = metrics_family(b, "hotpath_l0_connections_total", "counter",
				 "Connections enrolled for in-kernel answers (sock_ops).")) ||
		    (rc = sample(b, "hotpath_l0_connections_total", l0t.conns)) ||
		    (rc = metrics_family(b, "hotpath_l0_invalidations_total", "counter",
				 "Keys removed from L0 by a write, expiry or eviction in L1.")) ||
		    (rc = sample(b, "hotpath_l0_invalidations_total", l0t.invalidations)) ||
		    (rc = metrics_family(b, "hotpath_l0_enabled", "gauge",
				 "1 while the kernel answers GETs (l0.enabled).")) ||
		    (rc = sample(b, "hotpath_l0_enabled", l0t.enabled ? 1 : 0)))
			goto out;
	}
out:
	free(st);
	return rc;
}

/* The histogram of one command, in seconds. */
static int render_hist(struct buf *b, const char *cmd, const struct hist *h)
{
	static const char name[] = "hotpath_resp_command_duration_seconds";
	uint64_t cum = 0;
	int rc;

	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		cum += h->buckets[i];
		if ((rc = buf_append_str(b, name)) || (rc = buf_append_str(b, "_bucket{")) ||
		    (rc = label(b, false, "command", cmd)) ||
		    (rc = buf_printf(b, ",le=\"%.10g\"} %" PRIu64 "\n",
				     (double)hist_bucket_upper(i) / 1e6, cum)))
			return rc;
	}
	if ((rc = buf_printf(b, "%s_bucket{", name)) || (rc = label(b, false, "command", cmd)) ||
	    (rc = buf_printf(b, ",le=\"+Inf\"} %" PRIu64 "\n", cum)) ||
	    (rc = buf_printf(b, "%s_sum{", name)) || (rc = label(b, false, "command", cmd)) ||
	    (rc = buf_printf(b, "} %.9g\n", (double)h->sum / 1e6)) ||
	    (rc = buf_printf(b, "%s_count{", name)) || (rc = label(b, false, "command", cmd)) ||
	    (rc = buf_printf(b, "} %" PRIu64 "\n", cum)))
		return rc;
	return 0;
}

static int render_resp(struct hp_daemon *d, struct buf *b)
{
	struct resp_server_stats rs;
	unsigned n;
	int rc;

	if (!d->resp)
		return 0;
	memset(&rs, 0, sizeof(rs));
	if ((rc = resp_server_stats(d->resp, &rs)))
		return rc;
	n = rs.cmd ? rs.n_commands : 0;
	if ((rc = metrics_family(b, "hotpath_resp_connections", "gauge", "RESP clients connected now.")) ||
	    (rc = sample(b, "hotpath_resp_connections", rs.connected)) ||
	    (rc = metrics_family(b, "hotpath_resp_connections_total", "counter", "RESP connections accepted.")) ||
	    (rc = sample(b, "hotpath_resp_connections_total", rs.accepted)) ||
	    (rc = metrics_family(b, "hotpath_resp_connections_rejected_total", "counter",
			 "RESP connections refused because max clients was reached.")) ||
	    (rc = sample(b, "hotpath_resp_connections_rejected_total", rs.rejected)) ||
	    (rc = metrics_family(b, "hotpath_resp_connections_closed_total", "counter",
			 "RESP connections closed by the server, by reason.")) ||
	    (rc = metrics_sample2(b, "hotpath_resp_connections_closed_total", "reason", "idle", NULL, NULL,
			  rs.closed_idle)) ||
	    (rc = metrics_sample2(b, "hotpath_resp_connections_closed_total", "reason", "buffer_limit", NULL,
			  NULL, rs.closed_limit)) ||
	    (rc = metrics_family(b, "hotpath_resp_protocol_errors_total", "counter",
			 "Malformed RESP requests.")) ||
	    (rc = sample(b, "hotpath_resp_protocol_errors_total", rs.proto_errors)) ||
	    (rc = metrics_family(b, "hotpath_resp_received_bytes_total", "counter", "Bytes read from RESP clients.")) ||
	    (rc = sample(b, "hotpath_resp_received_bytes_total", rs.bytes_in)) ||
	    (rc = metrics_family(b, "hotpath_resp_sent_bytes_total", "counter", "Bytes written to RESP clients.")) ||
	    (rc = sample(b, "hotpath_resp_sent_bytes_total", rs.bytes_out)) ||
	    (rc = metrics_family(b, "hotpath_resp_output_buffer_bytes", "gauge",
			 "Reply bytes waiting in output buffers now.")) ||
	    (rc = sample(b, "hotpath_resp_output_buffer_bytes", rs.out_buffer_bytes)) ||
	    (rc = metrics_family(b, "hotpath_resp_workers", "gauge", "RESP worker threads.")) ||
	    (rc = sample(b, "hotpath_resp_workers", rs.workers)))
		goto out;

	if ((rc = metrics_family(b, "hotpath_resp_commands_total", "counter",
			 "RESP commands executed, by command (commands never called are omitted).")))
		goto out;
	for (unsigned i = 0; i < n; i++)
		if (rs.cmd[i].calls &&
		    (rc = metrics_sample2(b, "hotpath_resp_commands_total", "command", resp_command_name(i),
				  NULL, NULL, rs.cmd[i].calls)))
			goto out;
	if ((rc = metrics_family(b, "hotpath_resp_command_errors_total", "counter",
			 "RESP commands answered with an error, by command.")))
		goto out;
	for (unsigned i = 0; i < n; i++)
		if (rs.cmd[i].calls &&
		    (rc = metrics_sample2(b, "hotpath_resp_command_errors_total", "command",
				  resp_command_name(i), NULL, NULL, rs.cmd[i].failed)))
			goto out;
	if ((rc = metrics_family(b, "hotpath_resp_command_duration_seconds", "histogram",
			 "Time to execute a RESP command (parsing and network excluded).")))
		goto out;
	for (unsigned i = 0; i < n; i++)
		if (rs.cmd[i].calls && (rc = render_hist(b, resp_command_name(i), &rs.cmd[i].usec)))
			goto out;
out:
	free(rs.cmd);
	return rc;
}

static int render_api(const struct metrics_api_stats *api, struct buf *b)
{
	int rc;

	if (!api)
		return 0;
	if ((rc = metrics_family(b, "hotpath_api_requests_total", "counter",
			 "REST API requests answered, by HTTP status.")))
		return rc;
	for (unsigned i = 0; i < METRICS_API_CODES; i++) {
		char code[16];
		unsigned st = metrics_api_code_status(i);
		snprintf(code, sizeof(code), "%s", st ? "" : "other");
		if (st)
			snprintf(code, sizeof(code), "%u", st);
		if ((rc = metrics_sample2(b, "hotpath_api_requests_total", "code", code, NULL, NULL,
				  __atomic_load_n(&api->requests[i], __ATOMIC_RELAXED))))
			return rc;
	}
	if ((rc = metrics_family(b, "hotpath_api_tokens", "gauge", "Bearer tokens loaded from the tokens file.")) ||
	    (rc = sample(b, "hotpath_api_tokens", api->tokens)) ||
	    (rc = metrics_family(b, "hotpath_api_token_reloads_total", "counter",
			 "Re-reads of the tokens file, by result.")) ||
	    (rc = metrics_sample2(b, "hotpath_api_token_reloads_total", "result", "success", NULL, NULL,
			  api->token_reloads)) ||
	    (rc = metrics_sample2(b, "hotpath_api_token_reloads_total", "result", "failure", NULL, NULL,
			  api->token_reload_failures)))
		return rc;
	return 0;
}

int metrics_render(struct hp_daemon *d, const struct metrics_api_stats *api, struct buf *b)
{
	uint64_t now = hp_now_ms();
	int rc;

	if ((rc = metrics_family(b, "hotpath_build_info", "gauge", "Build of the running agent (always 1).")) ||
	    (rc = metrics_sample2(b, "hotpath_build_info", "version", d->version ? d->version : "unknown",
			  NULL, NULL, 1)) ||
	    (rc = metrics_family(b, "hotpath_uptime_seconds", "gauge", "Seconds since the agent started.")) ||
	    (rc = sample(b, "hotpath_uptime_seconds",
			 now > d->start_mono_ms ? (now - d->start_mono_ms) / 1000 : 0)) ||
	    (rc = metrics_family(b, "hotpath_config_reloads_total", "counter",
			 "Configuration reloads (SIGHUP), by result.")) ||
	    (rc = metrics_sample2(b, "hotpath_config_reloads_total", "result", "success", NULL, NULL,
			  __atomic_load_n(&d->reloads, __ATOMIC_RELAXED))) ||
	    (rc = metrics_sample2(b, "hotpath_config_reloads_total", "result", "failure", NULL, NULL,
			  __atomic_load_n(&d->reload_failures, __ATOMIC_RELAXED))))
		return rc;

	if ((rc = metrics_family(b, "hotpath_feature_available", "gauge",
			 "Kernel features probed at start: 1 if working, 0 if switched off.")))
		return rc;
	for (unsigned i = 0; i < d->n_features && i < HP_MAX_FEATURES; i++)
		if (d->features[i].name &&
		    (rc = metrics_sample2(b, "hotpath_feature_available", "feature", d->features[i].name, NULL,
				  NULL, d->features[i].available ? 1 : 0)))
			return rc;

	if (d->bpf_accept) {
		uint64_t acc = 0, closed = 0;
		if (bpf_accept_read(d->bpf_accept, &acc, &closed) == 0 &&
		    ((rc = metrics_family(b, "hotpath_bpf_accepts_total", "counter",
				  "Connections made to the agent's listeners, counted in the kernel by BPF.")) ||
		     (rc = sample(b, "hotpath_bpf_accepts_total", acc)) ||
		     (rc = metrics_family(b, "hotpath_bpf_accepted_closed_total", "counter",
				  "Of those connections, how many have closed, counted in the kernel by BPF.")) ||
		     (rc = sample(b, "hotpath_bpf_accepted_closed_total", closed))))
			return rc;
	}
	if ((rc = render_l1(d, b)) || (rc = render_resp(d, b)) || (rc = render_api(api, b)))
		return rc;
	if (d->pooler && (rc = pooler_metrics_render(d->pooler, b)))
		return rc;
	if (d->pooler && (rc = pgadvise_metrics_render(d, b)))   /* query statistics */
		return rc;
	if (d->http && (rc = proxy_metrics_render(d->http, b)))   /* api_http.c */
		return rc;
	if ((rc = tier_metrics_render(d, b)))   /* tiers, L2, tasks (api_tier.c) */
		return rc;
	if (d->observe && (rc = observe_write_prometheus(d->observe, b)))
		return rc;
	return 0;
}
