/*
 * admit.h - request priority classes for the HTTP proxy's admission
 * control (its CoDel is the one in hotpath/tasks.h). Pure logic.
 */
#ifndef HOTPATH_ADMIT_H
#define HOTPATH_ADMIT_H

#include <stdbool.h>
#include <stdint.h>
#include "hotpath/common.h"
#include "hotpath/http_parse.h"

enum admit_class { ADMIT_LOW = 0, ADMIT_NORMAL, ADMIT_HIGH, ADMIT_CLASSES };

#define ADMIT_MAX_RULES 32

/*
 * One rule: a glob on the request target (path and query), or, written
 * `header:NAME=GLOB`, a glob on the value of a request header field.
 */
struct admit_rule {
	uint8_t cls;
	bool header;
	char name[64];
	char glob[192];
};

struct admit_rules {
	unsigned n;
	struct admit_rule r[ADMIT_MAX_RULES];
};

const char *admit_class_name(enum admit_class c);
/*
 * Add the comma separated rules of `list` for class cls. 0, or -EINVAL
 * with *why (a fixed message) for an empty glob, a header rule without
 * "=", a name or glob too long, or more than ADMIT_MAX_RULES rules.
 */
int admit_rules_add(struct admit_rules *r, enum admit_class cls, const char *list,
		    const char **why) HP_MUST_CHECK;
/* Class of a request: the first matching rule, high rules before low; else normal. */
enum admit_class admit_classify(const struct admit_rules *r, const struct http_msg *m);

/*
 * Gradient concurrency limit (after Netflix's concurrency-limits Gradient
 * limit): the limit follows the ratio of the no-load latency (the fastest
 * recent request: the minimum over the last one or two windows of
 * GRADIENT_WINDOW samples, so it can move up when the backends really got
 * slower) to the current one (a short EWMA). When requests wait longer
 * than `tolerance` times the no-load latency the ratio falls below 1 and
 * the limit shrinks; otherwise it grows by a queue allowance of
 * sqrt(limit). Smoothed, and bounded to [min, max].
 */
#define GRADIENT_WINDOW 250

struct gradient {
	double limit;
	double short_rtt;              /* microseconds, EWMA of ~10 samples */
	double min_cur, min_prev;      /* minimum of this window and of the last */
	unsigned in_window;
	unsigned samples;
	unsigned min_limit, max_limit;
	double tolerance;              /* latency growth tolerated before shrinking (1.5) */
};

void gradient_init(struct gradient *g, unsigned initial, unsigned min_limit, unsigned max_limit);
/*
 * One completed request took rtt_us with `inflight` requests in flight
 * when it finished. Returns the new limit (whole requests).
 */
unsigned gradient_update(struct gradient *g, uint64_t rtt_us, unsigned inflight);

#endif
