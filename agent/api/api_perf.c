/*
 * api_perf.c - performance routes: CPU flame graphs.
 *
 * GET /api/v2/performance/flamegraph?pid=&service=&seconds=&format=
 * runs one sampling window of the CPU profiler (bpf/profile.bpf.c) and
 * answers with an SVG flame graph the agent draws itself, folded stacks
 * (Brendan Gregg's format, for other tools) or JSON "hot paths". The
 * request blocks for the window (bounded by bpf.profile_max_seconds); the
 * API's thread pool is sized so that one running profile does not hold up
 * other routes, and only one window runs at a time (a second caller gets
 * 409 rather than a queue).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/api_body.h"
#include "hotpath/buf.h"
#include "hotpath/config.h"
#include "hotpath/observe.h"
#include "hotpath/profile.h"
#include "hotpath/sockets.h"
#include "api_int.h"

#define PERF_OUT_MAX (64u << 20)    /* rendered profile bound */

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

void api_h_flamegraph(struct api_call *c)
{
	static const char *const allowed[] = { "pid", "service", "seconds", "format", NULL };
	char pidbuf[32], secbuf[32], fmtbuf[16], svcbuf[80];
	const char *pids, *secs, *fmt, *svc;
	unsigned pid = 0, seconds = 10, max_s;
	struct profile_result *res = NULL;
	struct buf out;
	bool bad = false;
	char *text;
	int rc;

	if (!c->d->profiler) {
		api_reply_error(c, 501, "not_implemented", "the CPU profiler is not running: it "
				"needs BPF and perf events (see GET /api/v2/health features)");
		return;
	}
	if (!api_query_only(c, allowed))
		return;
	pids = api_query_get(c, "pid", pidbuf, sizeof(pidbuf), &bad);
	secs = api_query_get(c, "seconds", secbuf, sizeof(secbuf), &bad);
	fmt = api_query_get(c, "format", fmtbuf, sizeof(fmtbuf), &bad);
	svc = api_query_get(c, "service", svcbuf, sizeof(svcbuf), &bad);
	if (bad)
		return;
	pthread_rwlock_rdlock(&c->d->cfg_lock);
	max_s = c->d->cfg->profile_max_seconds;
	pthread_rwlock_unlock(&c->d->cfg_lock);
	if (secs && (parse_uint(secs, max_s, &seconds) != 0 || seconds == 0)) {
		api_reply_error(c, 400, "invalid_query", "seconds must be 1..%u "
				"(bpf.profile_max_seconds)", max_s);
		return;
	}
	if (pids && (parse_uint(pids, 4194304, &pid) != 0 || pid == 0)) {
		api_reply_error(c, 400, "invalid_query", "pid must be a process id");
		return;
	}
	if (svc) {
		int p = api_service_pid(c->d, svc);

		if (p == -ENOENT) {
			api_reply_error(c, 404, "not_found", "no service named '%s' is configured", svc);
			return;
		}
		if (p < 0) {
			api_reply_error(c, 404, "not_found", "no process is listening on the port "
					"of service '%s'", svc);
			return;
		}
		if (pids && (unsigned)p != pid) {
			api_reply_error(c, 400, "invalid_query", "pid and service name different "
					"processes; give one");
			return;
		}
		pid = (unsigned)p;
	}
	if (!fmt)
		fmt = "svg";
	if (strcmp(fmt, "svg") && strcmp(fmt, "folded") && strcmp(fmt, "json")) {
		api_reply_error(c, 400, "invalid_query", "format must be svg, folded or json");
		return;
	}
	rc = profiler_collect(c->d->profiler, (int)pid, seconds, &res);
	if (rc == -ESRCH) {
		api_reply_error(c, 404, "not_found", "process %u does not exist", pid);
		return;
	}
	if (rc == -EBUSY) {
		api_reply_error(c, 409, "busy", "another profile window is running; retry when "
				"it ends");
		return;
	}
	if (rc) {
		api_reply_error(c, 500, "internal", "profile failed: %s", strerror(-rc));
		return;
	}
	buf_init(&out, PERF_OUT_MAX);
	if (!strcmp(fmt, "svg")) {
		char title[96];

		if (pid)
			snprintf(title, sizeof(title), "CPU flame graph, pid %u, %us", pid, seconds);
		else
			snprintf(title, sizeof(title), "CPU flame graph, all processes, %us", seconds);
		rc = profile_write_svg(res, title, &out);
	} else if (!strcmp(fmt, "folded")) {
		rc = profile_write_folded(res, &out);
	} else {
		rc = profile_write_json(res, 0, &out);
	}
	profile_result_free(res);
	if (rc) {
		buf_free(&out);
		api_reply_error(c, 500, "internal", "rendering the profile failed: %s", strerror(-rc));
		return;
	}
	/* Hand the bytes to libmicrohttpd without a copy. */
	buf_compact(&out);
	text = out.data ? out.data : strdup("");
	api_reply_text(c, 200, !strcmp(fmt, "svg") ? "image/svg+xml" :
			       !strcmp(fmt, "json") ? "application/json" : "text/plain; charset=utf-8",
		       text, out.data ? out.len : 0);
}

int api_service_pid(struct hp_daemon *d, const char *name)
{
	uint32_t port = 0;
	bool found = false;

	pthread_rwlock_rdlock(&d->cfg_lock);
	for (unsigned i = 0; i < d->cfg->n_services; i++) {
		if (strcmp(d->cfg->services[i].name, name) == 0) {
			port = d->cfg->services[i].port;
			found = true;
			break;
		}
	}
	pthread_rwlock_unlock(&d->cfg_lock);
	if (!found)
		return -ENOENT;
	{
		int pid = sockets_port_pid((uint16_t)port);

		return pid > 0 ? pid : -ESRCH;
	}
}

/* ---- request and query observation (agent/observe/observe.c) -------------- */

static bool perf_observe_running(struct api_call *c)
{
	if (c->d->observe)
		return true;
	api_reply_error(c, 501, "not_implemented", "request and query observation is not "
			"running: it needs BPF and tracefs (see GET /api/v2/health features)");
	return false;
}

/* "5m", "1h", "300s", "90000" (ms) -> ms, bounded to a day. */
static int parse_range(const char *s, uint64_t *ms)
{
	if (config_parse_duration_ms(s, ms) != 0 || *ms == 0 || *ms > 86400000ull)
		return -EINVAL;
	return 0;
}

void api_h_perf_metrics(struct api_call *c)
{
	static const char *const allowed[] = { "service_name", "metric_types", "time_range", NULL };
	char svc[80], types[128], range[32];
	const char *s, *t, *r;
	uint64_t range_ms = 300000;
	bool bad = false;
	json_t *j;

	if (!perf_observe_running(c) || !api_query_only(c, allowed))
		return;
	s = api_query_get(c, "service_name", svc, sizeof(svc), &bad);
	t = api_query_get(c, "metric_types", types, sizeof(types), &bad);
	r = api_query_get(c, "time_range", range, sizeof(range), &bad);
	if (bad)
		return;
	if (r && parse_range(r, &range_ms) != 0) {
		api_reply_error(c, 400, "invalid_query", "time_range must be a duration such as "
				"30s, 5m or 1h, at most 1d");
		return;
	}
	if (t) {
		/* Every type is part of each endpoint's figures; refuse unknown
		 * names rather than silently ignoring them. */
		char tmp[128], *save = NULL;

		snprintf(tmp, sizeof(tmp), "%s", t);
		for (char *tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			if (strcmp(tok, "latency") && strcmp(tok, "throughput") &&
			    strcmp(tok, "errors") && strcmp(tok, "all")) {
				api_reply_error(c, 400, "invalid_query", "unknown metric type '%s' "
						"(latency, throughput, errors, all)", tok);
				return;
			}
		}
	}
	j = observe_metrics_json(c->d->observe, s, range_ms);
	if (!j) {
		api_reply_error(c, 500, "internal", "out of memory");
		return;
	}
	if (s && json_is_object(j)) {
		json_t *svcs = json_object_get(j, "services");

		if (json_is_array(svcs) && json_array_size(svcs) == 0) {
			json_decref(j);
			api_reply_error(c, 404, "not_found", "no service named '%s' is watched", s);
			return;
		}
	}
	api_reply_json(c, 200, j);
}

void api_h_perf_queries(struct api_call *c)
{
	static const char *const allowed[] = { "limit", NULL };
	char lim[16];
	const char *l;
	unsigned limit = 50;
	bool bad = false;
	json_t *j;

	if (!perf_observe_running(c) || !api_query_only(c, allowed))
		return;
	l = api_query_get(c, "limit", lim, sizeof(lim), &bad);
	if (bad)
		return;
	if (l && (parse_uint(l, 1000, &limit) != 0 || limit == 0)) {
		api_reply_error(c, 400, "invalid_query", "limit must be 1..1000");
		return;
	}
	j = observe_queries_json(c->d->observe, limit);
	if (!j) {
		api_reply_error(c, 500, "internal", "out of memory");
		return;
	}
	api_reply_json(c, 200, j);
}

void api_h_perf_services(struct api_call *c)
{
	static const char *const allowed[] = { NULL };
	json_t *j;

	if (!perf_observe_running(c) || !api_query_only(c, allowed))
		return;
	j = observe_services_json(c->d->observe);
	if (!j) {
		api_reply_error(c, 500, "internal", "out of memory");
		return;
	}
	api_reply_json(c, 200, j);
}
