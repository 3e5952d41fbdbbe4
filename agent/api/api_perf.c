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
 *
 * POST /api/v2/performance/profiling and GET .../profiling/{id} run the
 * same window in the background (see below).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
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

/* The pid behind a service name; false after replying 404/400. */
static bool service_target(struct api_call *c, const char *svc, unsigned given_pid,
			   unsigned *pid)
{
	int p = api_service_pid(c->d, svc);

	if (p == -ENOENT) {
		api_reply_error(c, 404, "not_found", "no service named '%s' is configured", svc);
		return false;
	}
	if (p < 0) {
		api_reply_error(c, 404, "not_found", "no process is listening on the port "
				"of service '%s'", svc);
		return false;
	}
	if (given_pid && (unsigned)p != given_pid) {
		api_reply_error(c, 400, "invalid_query", "pid and service name different "
				"processes; give one");
		return false;
	}
	*pid = (unsigned)p;
	return true;
}

/* Render a profile in `fmt` and reply 200 (takes res). */
static void reply_profile(struct api_call *c, const struct profile_result *res, const char *fmt,
			  unsigned pid, unsigned seconds)
{
	struct buf out;
	char *text;
	int rc;

	buf_init(&out, PERF_OUT_MAX);
	if (!strcmp(fmt, "svg")) {
		char title[96];

		if (pid)
			snprintf(title, sizeof(title), "CPU flame graph, pid %u%s, %us", pid,
				 res->tree ? " and its descendants" : "", seconds);
		else
			snprintf(title, sizeof(title), "CPU flame graph, all processes, %us", seconds);
		rc = profile_write_svg(res, title, &out);
	} else if (!strcmp(fmt, "folded")) {
		rc = profile_write_folded(res, &out);
	} else {
		rc = profile_write_json(res, 0, &out);
	}
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

static const char *const profiler_off = "the CPU profiler is not running: it needs BPF and "
				       "perf events (see GET /api/v2/health features)";

static bool format_ok(struct api_call *c, const char *fmt)
{
	if (strcmp(fmt, "svg") && strcmp(fmt, "folded") && strcmp(fmt, "json")) {
		api_reply_error(c, 400, "invalid_query", "format must be svg, folded or json");
		return false;
	}
	return true;
}

void api_h_flamegraph(struct api_call *c)
{
	static const char *const allowed[] = { "pid", "service", "seconds", "format", NULL };
	char pidbuf[32], secbuf[32], fmtbuf[16], svcbuf[80];
	const char *pids, *secs, *fmt, *svc;
	unsigned pid = 0, seconds = 10, max_s;
	struct profile_result *res = NULL;
	bool bad = false;
	int rc;

	if (!c->d->profiler) {
		api_reply_error(c, 501, "not_implemented", "%s", profiler_off);
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
	if (svc && !service_target(c, svc, pids ? pid : 0, &pid))
		return;
	if (!fmt)
		fmt = "svg";
	if (!format_ok(c, fmt))
		return;
	/* a service is its listener and the processes it forks (PostgreSQL's
	 * backends, nginx's workers) */
	rc = profiler_collect(c->d->profiler, (int)pid, svc != NULL, seconds, &res);
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
	reply_profile(c, res, fmt, pid, seconds);
	profile_result_free(res);
}

/*
 * Profiles in the background: POST /api/v2/performance/profiling starts a
 * window on a thread of its own and answers 202 with a request id;
 * GET /api/v2/performance/profiling/{id}?format= answers 202 with the
 * progress while it runs, then the profile (the same renderings as
 * /flamegraph). The last PROFILE_JOBS_KEPT are kept; one window runs at a
 * time (the profiler's rule), so a second start while one runs is a 409.
 */
#define PROFILE_JOBS_KEPT 8

enum { PJ_FREE, PJ_RUNNING, PJ_DONE, PJ_FAILED };

struct profile_job {
	uint64_t id;
	int state;
	unsigned pid, seconds;
	bool tree;                      /* a service: pid and its descendants */
	char target[128];               /* "service web (pid 12 and its descendants)", "pid 12", "all processes" */
	uint64_t started_ms, ended_ms;
	int err;                        /* PJ_FAILED: -errno from profiler_collect */
	struct profile_result *res;     /* PJ_DONE */
	struct profiler *profiler;
	pthread_t thread;
	bool joinable;
};

static struct {
	pthread_mutex_t lock;
	struct profile_job jobs[PROFILE_JOBS_KEPT];
	uint64_t next_id;
} pjobs = { .lock = PTHREAD_MUTEX_INITIALIZER, .next_id = 1 };

static void *profile_job_run(void *arg)
{
	struct profile_job *j = arg;
	struct profile_result *res = NULL;
	int rc = profiler_collect(j->profiler, (int)j->pid, j->tree, j->seconds, &res);

	pthread_mutex_lock(&pjobs.lock);
	j->ended_ms = hp_now_ms();
	j->err = rc;
	j->res = rc ? NULL : res;
	j->state = rc ? PJ_FAILED : PJ_DONE;
	pthread_mutex_unlock(&pjobs.lock);
	return NULL;
}

/* A slot for a new job (lock held): a free one, else the oldest finished
 * one (its thread joined, its result freed). NULL while one runs. */
static struct profile_job *pjob_slot(void)
{
	struct profile_job *pick = NULL;

	for (unsigned i = 0; i < PROFILE_JOBS_KEPT; i++) {
		struct profile_job *j = &pjobs.jobs[i];

		if (j->state == PJ_RUNNING)
			return NULL;
		if (j->state == PJ_FREE) {
			if (!pick || pick->state != PJ_FREE)
				pick = j;
		} else if (!pick || (pick->state != PJ_FREE && j->id < pick->id)) {
			pick = j;
		}
	}
	if (pick && pick->joinable) {
		pthread_join(pick->thread, NULL);
		pick->joinable = false;
	}
	if (pick) {
		profile_result_free(pick->res);
		memset(pick, 0, sizeof(*pick));
	}
	return pick;
}

static json_t *pjob_json(const struct profile_job *j)
{
	static const char *const names[] = { "free", "running", "done", "failed" };
	uint64_t now = hp_now_ms(), end = j->state == PJ_RUNNING ? now : j->ended_ms;
	json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:I}", "request_id", "", "status",
			      names[j->state], "target", j->target, "seconds", (int)j->seconds,
			      "elapsed_ms", (json_int_t)(end - j->started_ms));
	char id[24];

	snprintf(id, sizeof(id), "%llu", (unsigned long long)j->id);
	json_object_set_new(o, "request_id", json_string(id));
	if (j->state == PJ_FAILED)
		json_object_set_new(o, "error", json_string(j->err == -ESRCH ? "the process exited"
						 : j->err == -EBUSY ? "another profile window was running"
						 : strerror(-j->err)));
	return o;
}

void api_h_profile_start(struct api_call *c)
{
	struct api_profile_req rq;
	struct profile_job *j;
	char err[256];
	unsigned max_s, pid;
	json_t *root, *o;
	int rc;

	if (!c->d->profiler) {
		api_reply_error(c, 501, "not_implemented", "%s", profiler_off);
		return;
	}
	if (!api_query_only(c, (const char *const[]){ NULL }))
		return;
	pthread_rwlock_rdlock(&c->d->cfg_lock);
	max_s = c->d->cfg->profile_max_seconds;
	pthread_rwlock_unlock(&c->d->cfg_lock);
	root = api_json_parse(c->body, c->body_len, err, sizeof(err));
	if (!root) {
		api_reply_error(c, 400, "invalid_body", "%s", err);
		return;
	}
	rc = api_body_profile(root, max_s, &rq, err, sizeof(err));
	json_decref(root);
	if (rc) {
		api_reply_error(c, 400, "invalid_body", "%s", err);
		return;
	}
	pid = rq.pid;
	if (rq.service[0] && !service_target(c, rq.service, 0, &pid))
		return;
	if (pid && kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
		api_reply_error(c, 404, "not_found", "process %u does not exist", pid);
		return;
	}
	pthread_mutex_lock(&pjobs.lock);
	j = pjob_slot();
	if (!j) {
		pthread_mutex_unlock(&pjobs.lock);
		api_reply_error(c, 409, "busy", "another profile window is running; retry when "
				"it ends");
		return;
	}
	j->id = pjobs.next_id++;
	j->state = PJ_RUNNING;
	j->pid = pid;
	j->tree = rq.service[0] != '\0';
	j->seconds = rq.seconds;
	j->profiler = c->d->profiler;
	j->started_ms = hp_now_ms();
	if (rq.service[0])
		snprintf(j->target, sizeof(j->target), "service %s (pid %u and its descendants)",
			 rq.service, pid);
	else if (pid)
		snprintf(j->target, sizeof(j->target), "pid %u", pid);
	else
		snprintf(j->target, sizeof(j->target), "all processes");
	rc = pthread_create(&j->thread, NULL, profile_job_run, j);
	if (rc) {
		memset(j, 0, sizeof(*j));
		pthread_mutex_unlock(&pjobs.lock);
		api_reply_error(c, 503, "unavailable", "cannot start the profile: %s", strerror(rc));
		return;
	}
	j->joinable = true;
	o = pjob_json(j);
	pthread_mutex_unlock(&pjobs.lock);
	{
		char url[80];

		snprintf(url, sizeof(url), "/api/v2/performance/profiling/%s",
			 json_string_value(json_object_get(o, "request_id")));
		json_object_set_new(o, "status_url", json_string(url));
	}
	api_reply_json(c, 202, o);
}

void api_h_profile_get(struct api_call *c)
{
	static const char *const allowed[] = { "format", NULL };
	char fmtbuf[16], *end;
	const char *fmt;
	struct profile_job *j = NULL;
	unsigned long long id;
	bool bad = false;

	if (!c->d->profiler) {
		api_reply_error(c, 501, "not_implemented", "%s", profiler_off);
		return;
	}
	if (!api_query_only(c, allowed))
		return;
	fmt = api_query_get(c, "format", fmtbuf, sizeof(fmtbuf), &bad);
	if (bad)
		return;
	if (!fmt)
		fmt = "json";
	if (!format_ok(c, fmt))
		return;
	errno = 0;
	id = c->rest ? strtoull(c->rest, &end, 10) : 0;
	if (!c->rest || errno || *end || c->rest[0] < '0' || c->rest[0] > '9' ||
	    strlen(c->rest) > 20) {
		api_reply_error(c, 400, "bad_request", "a profiling request id is a decimal number");
		return;
	}
	pthread_mutex_lock(&pjobs.lock);
	for (unsigned i = 0; i < PROFILE_JOBS_KEPT; i++)
		if (pjobs.jobs[i].state != PJ_FREE && pjobs.jobs[i].id == id)
			j = &pjobs.jobs[i];
	if (!j) {
		pthread_mutex_unlock(&pjobs.lock);
		api_reply_error(c, 404, "not_found", "no profiling request %llu (the last %d are "
				"kept)", id, PROFILE_JOBS_KEPT);
		return;
	}
	if (j->state != PJ_DONE) {
		json_t *o = pjob_json(j);

		pthread_mutex_unlock(&pjobs.lock);
		api_reply_json(c, j->state == PJ_RUNNING ? 202 : 200, o);
		return;
	}
	/* The result stays the job's: render under the lock (a finished job is
	 * only reused by a later start, which takes the lock too). */
	reply_profile(c, j->res, fmt, j->pid, j->seconds);
	pthread_mutex_unlock(&pjobs.lock);
}

void api_perf_shutdown(struct hp_daemon *d)
{
	if (d->profiler)
		profiler_cancel(d->profiler);
	pthread_mutex_lock(&pjobs.lock);
	for (unsigned i = 0; i < PROFILE_JOBS_KEPT; i++) {
		struct profile_job *j = &pjobs.jobs[i];

		if (j->joinable) {
			pthread_mutex_unlock(&pjobs.lock);
			pthread_join(j->thread, NULL);
			pthread_mutex_lock(&pjobs.lock);
			j->joinable = false;
		}
		profile_result_free(j->res);
		memset(j, 0, sizeof(*j));
	}
	pthread_mutex_unlock(&pjobs.lock);
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
