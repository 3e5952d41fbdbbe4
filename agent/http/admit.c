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
 * What not: no adaptive limit (gradient/Vegas); the concurrency limit is
 * configured. Cache hits are never queued: they cost no backend work.
 */
#include <errno.h>
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
