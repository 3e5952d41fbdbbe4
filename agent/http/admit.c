/*
 * admit.c - priority classes and CoDel for the HTTP proxy's admission
 * control (include/hotpath/admit.h).
 *
 * What: the proxy limits the requests it has in flight to its backends
 * (http.max_inflight); requests over the limit wait in a bounded queue
 * per worker, served highest class first. Under overload the lowest class
 * is shed first: a full queue makes room by refusing its newest
 * lowest-class request (or the arrival, when nothing queued is lower), and
 * when CoDel says the queue is standing the request shed is the oldest of
 * the lowest class present. This file holds the pure parts: classifying a
 * request from the configured rules.
 *
 * How: rules are globs (agent/cache/glob.c) over the request target or a
 * header value, checked in order, high rules first. The proxy's CoDel is
 * codel_should_drop() of hotpath/tasks.h, the one the task queue uses.
 *
 * The limit is either the configured one or a gradient limit (below) that
 * follows the backends' latency: when they slow down it falls, so requests
 * wait in the queue (and the low class is shed) instead of piling onto
 * backends that are already struggling.
 *
 * What not: no Vegas/AIMD variants. Cache hits are never queued: they cost
 * no backend work.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "hotpath/admit.h"
#include "hotpath/l1.h"

static const char *const class_names[ADMIT_CLASSES] = { "low", "normal", "high" };

const char *admit_class_name(enum admit_class c)
{
	return (unsigned)c < ADMIT_CLASSES ? class_names[c] : "?";
}

int admit_rules_add(struct admit_rules *r, enum admit_class cls, const char *list,
		    const char **why)
{
	const char *s = list;

	while (*s) {
		const char *e, *g, *next;
		struct admit_rule *ru;
		size_t gl;

		while (*s == ' ' || *s == ',')
			s++;
		if (!*s)
			break;
		e = s;
		while (*e && *e != ',')
			e++;
		next = e;
		while (e > s && e[-1] == ' ')
			e--;
		if (r->n >= ADMIT_MAX_RULES) {
			*why = "too many priority rules (at most 32)";
			return -EINVAL;
		}
		ru = &r->r[r->n];
		memset(ru, 0, sizeof(*ru));
		ru->cls = (uint8_t)cls;
		g = s;
		if ((size_t)(e - s) > 7 && strncmp(s, "header:", 7) == 0) {
			const char *eq = memchr(s + 7, '=', (size_t)(e - s - 7));
			size_t nl;

			if (!eq) {
				*why = "a header rule is header:NAME=GLOB";
				return -EINVAL;
			}
			nl = (size_t)(eq - s - 7);
			if (nl == 0 || nl >= sizeof(ru->name)) {
				*why = "bad header name in a priority rule";
				return -EINVAL;
			}
			memcpy(ru->name, s + 7, nl);
			ru->header = true;
			g = eq + 1;
		}
		gl = (size_t)(e - g);
		if (gl == 0 || gl >= sizeof(ru->glob)) {
			*why = gl ? "priority rule glob too long" : "empty priority rule glob";
			return -EINVAL;
		}
		memcpy(ru->glob, g, gl);
		r->n++;
		s = next;
	}
	return 0;
}

static bool rule_matches(const struct admit_rule *ru, const struct http_msg *m)
{
	if (ru->header) {
		size_t vl;
		const char *v = http_header_get(m, ru->name, &vl);

		return v && glob_match(ru->glob, strlen(ru->glob), v, vl, false);
	}
	return glob_match(ru->glob, strlen(ru->glob), m->target, m->target_len, false);
}

enum admit_class admit_classify(const struct admit_rules *r, const struct http_msg *m)
{
	for (unsigned i = 0; i < r->n; i++)
		if (r->r[i].cls == ADMIT_HIGH && rule_matches(&r->r[i], m))
			return ADMIT_HIGH;
	for (unsigned i = 0; i < r->n; i++)
		if (r->r[i].cls == ADMIT_LOW && rule_matches(&r->r[i], m))
			return ADMIT_LOW;
	return ADMIT_NORMAL;
}

/* ---- gradient limit ---------------------------------------------------------------- */

#define GRAD_SHORT_ALPHA (2.0 / 11.0)     /* ~10-sample window */
#define GRAD_SMOOTHING   0.2

void gradient_init(struct gradient *g, unsigned initial, unsigned min_limit, unsigned max_limit)
{
	memset(g, 0, sizeof(*g));
	g->min_limit = min_limit ? min_limit : 1;
	g->max_limit = max_limit > g->min_limit ? max_limit : g->min_limit;
	g->limit = initial < g->min_limit ? g->min_limit :
		   initial > g->max_limit ? g->max_limit : initial;
	g->tolerance = 1.5;
}

unsigned gradient_update(struct gradient *g, uint64_t rtt_us, unsigned inflight)
{
	double rtt = rtt_us ? (double)rtt_us : 1.0, noload, grad, target;

	if (g->samples++ == 0) {
		g->short_rtt = g->min_cur = g->min_prev = rtt;
	} else {
		g->short_rtt += GRAD_SHORT_ALPHA * (rtt - g->short_rtt);
		if (rtt < g->min_cur)
			g->min_cur = rtt;
	}
	/* A minimum (not an average) of recent samples: an average would
	 * drift up with the load it is meant to detect. Two windows, so the
	 * minimum forgets an old fast period after one to two windows. */
	if (++g->in_window >= GRADIENT_WINDOW) {
		g->min_prev = g->min_cur;
		g->min_cur = rtt;
		g->in_window = 0;
	}
	noload = g->min_cur < g->min_prev ? g->min_cur : g->min_prev;
	grad = g->tolerance * noload / g->short_rtt;
	if (grad > 1.0)
		grad = 1.0;
	if (grad < 0.5)
		grad = 0.5;
	target = g->limit * grad + sqrt(g->limit);
	/* With few requests in flight the limit is not what holds them back:
	 * nothing says more would fit, so it does not grow (Gradient2's rule);
	 * it may still shrink, since rising latency is a warning either way. */
	if ((double)inflight < g->limit / 2.0 && target > g->limit)
		return (unsigned)g->limit;
	g->limit = g->limit * (1.0 - GRAD_SMOOTHING) + target * GRAD_SMOOTHING;
	if (g->limit < g->min_limit)
		g->limit = g->min_limit;
	if (g->limit > g->max_limit)
		g->limit = g->max_limit;
	return (unsigned)g->limit;
}
