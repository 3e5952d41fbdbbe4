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

#endif
