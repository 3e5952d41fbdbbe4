/*
 * api_body.c - validation of REST inputs (see include/hotpath/api_body.h).
 *
 * The API's handlers never look at a raw json_t or query string: they call
 * one function here that either fills a plain struct or explains, in one
 * line naming the field, why the request is wrong. Validation is strict by
 * design - unknown fields, wrong types, values out of range and duplicate
 * keys are all errors - because a caching agent silently ignoring a typo in
 * a policy ("defualt_ttl") is worse than refusing it.
 *
 * JSON parsing is jansson's json_loadb with JSON_REJECT_DUPLICATES; before
 * that, a single pass over the bytes bounds the nesting depth so a body of
 * "[[[[..." cannot make the recursive parser use much stack. Sizes and
 * durations reuse the config parser's units (config_parse_size,
 * config_parse_duration_ms) so "64mb" and "30s" mean the same everywhere.
 *
 * Not here: authentication (tokens.c), acting on the request (api_cache.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "hotpath/api_body.h"
#include "hotpath/config.h"

static void HP_PRINTF(3, 4) seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Depth of the deepest array/object in a JSON text, ignoring strings. */
static unsigned json_depth(const char *s, size_t len)
{
	unsigned depth = 0, max = 0;
	bool in_str = false, esc = false;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (in_str) {
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"')
				in_str = false;
			continue;
		}
		if (c == '"') {
			in_str = true;
		} else if (c == '[' || c == '{') {
			if (++depth > max)
				max = depth;
			if (max > API_JSON_MAX_DEPTH)
				return max;   /* enough to refuse */
		} else if ((c == ']' || c == '}') && depth > 0) {
			depth--;
		}
	}
	return max;
}

json_t *api_json_parse(const char *body, size_t len, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root;

	if (!body || len == 0) {
		seterr(err, errlen, "request body is empty: a JSON object is required");
		return NULL;
	}
	if (json_depth(body, len) > API_JSON_MAX_DEPTH) {
		seterr(err, errlen, "JSON nested deeper than %d levels", API_JSON_MAX_DEPTH);
		return NULL;
	}
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		seterr(err, errlen, "malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
		       jerr.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		seterr(err, errlen, "request body must be a JSON object");
		return NULL;
	}
	return root;
}

/* Refuse any member of `obj` not listed in `allowed` (NULL-terminated). */
static int check_fields(const json_t *obj, const char *const *allowed, const char *where,
			char *err, size_t errlen)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)obj, k, v) {
		bool ok = false;
		(void)v;
		for (unsigned i = 0; allowed[i] && !ok; i++)
			ok = strcmp(k, allowed[i]) == 0;
		if (!ok) {
			char list[256] = "";
			size_t used = 0;
			for (unsigned i = 0; allowed[i]; i++) {
				int n = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "",
						 allowed[i]);
				if (n < 0 || (size_t)n >= sizeof(list) - used)
					break;
				used += (size_t)n;
			}
			seterr(err, errlen, "unknown field '%s%.100s' (allowed: %s)", where, k, list);
			return -EINVAL;
		}
	}
	return 0;
}

/* A route's body: a JSON object with only the members in `allowed`. */
static int body_fields(const json_t *root, const char *const *allowed, char *err, size_t errlen)
{
	if (!json_is_object(root)) {
		seterr(err, errlen, "request body must be a JSON object");
		return -EINVAL;
	}
	return check_fields(root, allowed, "", err, errlen);
}

static int parse_tier(const json_t *v, const char *field, int *tier, char *err, size_t errlen)
{
	const char *s;

	if (!v) {
		*tier = API_TIER_ALL;
		return 0;
	}
	if (!json_is_string(v)) {
		seterr(err, errlen, "'%s' must be a string: \"all\" or \"l1\"", field);
		return -EINVAL;
	}
	s = json_string_value(v);
	if (strcmp(s, "all") == 0) {
		*tier = API_TIER_ALL;
	} else if (strcmp(s, "l1") == 0) {
		*tier = API_TIER_L1;
	} else {
		seterr(err, errlen, "'%s' must be \"all\" or \"l1\" (the tiers this agent runs), "
		       "not \"%.64s\"", field, s);
		return -EINVAL;
	}
	return 0;
}

static int parse_pattern(const json_t *v, const char *field, struct api_pattern_req *out,
			 char *err, size_t errlen)
{
	size_t n;

	if (!json_is_string(v)) {
		seterr(err, errlen, "'%s' must be a string (a glob such as \"user:*\")", field);
		return -EINVAL;
	}
	n = json_string_length(v);
	if (n == 0) {
		seterr(err, errlen, "'%s' must not be empty (use \"*\" for every key)", field);
		return -EINVAL;
	}
	if (n >= API_PATTERN_MAX) {
		seterr(err, errlen, "'%s' is longer than %d bytes", field, API_PATTERN_MAX - 1);
		return -EINVAL;
	}
	memcpy(out->pattern, json_string_value(v), n);
	out->pattern[n] = '\0';
	out->patlen = n;
	out->has_pattern = true;
	return 0;
}

int api_body_clear(const json_t *root, struct api_pattern_req *out, char *err, size_t errlen)
{
	static const char *const allowed[] = { "cache_scope", "clear_pattern", NULL };
	const json_t *pat;

	memset(out, 0, sizeof(*out));
	if (body_fields(root, allowed, err, errlen))
		return -EINVAL;
	if (parse_tier(json_object_get(root, "cache_scope"), "cache_scope", &out->tier, err, errlen))
		return -EINVAL;
	pat = json_object_get(root, "clear_pattern");
	if (pat && !json_is_null(pat) && parse_pattern(pat, "clear_pattern", out, err, errlen))
		return -EINVAL;
	return 0;
}

int api_body_profile(const json_t *root, unsigned max_seconds, struct api_profile_req *out,
		     char *err, size_t errlen)
{
	static const char *const allowed[] = { "pid", "service", "seconds", NULL };
	const json_t *pid, *svc, *secs;

	memset(out, 0, sizeof(*out));
	out->seconds = 10 < max_seconds ? 10 : max_seconds;
	if (body_fields(root, allowed, err, errlen))
		return -EINVAL;
	pid = json_object_get(root, "pid");
	svc = json_object_get(root, "service");
	secs = json_object_get(root, "seconds");
	if (pid && svc) {
		seterr(err, errlen, "give one of 'pid' and 'service', not both");
		return -EINVAL;
	}
	if (pid) {
		if (!json_is_integer(pid) || json_integer_value(pid) < 1 ||
		    json_integer_value(pid) > 4194304) {
			seterr(err, errlen, "'pid' must be a process id (1..4194304)");
			return -EINVAL;
		}
		out->pid = (unsigned)json_integer_value(pid);
	}
	if (svc) {
		size_t n = json_is_string(svc) ? json_string_length(svc) : 0;

		if (!n || n >= sizeof(out->service) || memchr(json_string_value(svc), '\0', n)) {
			seterr(err, errlen, "'service' must be a service name of 1..%zu bytes",
			       sizeof(out->service) - 1);
			return -EINVAL;
		}
		memcpy(out->service, json_string_value(svc), n + 1);
	}
	if (secs) {
		if (!json_is_integer(secs) || json_integer_value(secs) < 1 ||
		    json_integer_value(secs) > (json_int_t)max_seconds) {
			seterr(err, errlen, "'seconds' must be an integer 1..%u "
			       "(bpf.profile_max_seconds)", max_seconds);
			return -EINVAL;
		}
		out->seconds = (unsigned)json_integer_value(secs);
	}
	return 0;
}

int api_body_optimize(const json_t *root, struct api_optimize_req *out, char *err, size_t errlen)
{
	static const char *const allowed[] = { "optimization_type", "scope", NULL };
	static const char *const types[] = { "index_recommendations", "reset_query_stats", NULL };
	const json_t *t, *sc;
	const char *v;
	unsigned i;

	memset(out, 0, sizeof(*out));
	if (body_fields(root, allowed, err, errlen))
		return -EINVAL;
	t = json_object_get(root, "optimization_type");
	if (!t) {
		seterr(err, errlen, "'optimization_type' is required (index_recommendations or "
		       "reset_query_stats)");
		return -EINVAL;
	}
	if (!json_is_string(t)) {
		seterr(err, errlen, "'optimization_type' must be a string");
		return -EINVAL;
	}
	v = json_string_value(t);
	for (i = 0; types[i]; i++)
		if (json_string_length(t) == strlen(types[i]) && !strcmp(v, types[i]))
			break;
	if (!types[i]) {
		seterr(err, errlen, "unknown 'optimization_type' (index_recommendations or "
		       "reset_query_stats)");
		return -EINVAL;
	}
	snprintf(out->type, sizeof(out->type), "%s", types[i]);
	sc = json_object_get(root, "scope");
	if (!sc || json_is_null(sc))
		return 0;
	if (!json_is_string(sc)) {
		seterr(err, errlen, "'scope' must be a string: \"all\", \"db\" or \"database:NAME\"");
		return -EINVAL;
	}
	v = json_string_value(sc);
	if (!strcmp(v, "all") || !strcmp(v, "db"))
		return 0;
	if (strncmp(v, "database:", 9) == 0) {
		size_t n = json_string_length(sc) - 9;

		if (n == 0 || n >= sizeof(out->database) || memchr(v + 9, '\0', n)) {
			seterr(err, errlen, "'scope' database:NAME needs a name of 1..%zu bytes",
			       sizeof(out->database) - 1);
			return -EINVAL;
		}
		memcpy(out->database, v + 9, n);
		out->database[n] = '\0';
		out->has_database = true;
		return 0;
	}
	seterr(err, errlen, "'scope' must be \"all\", \"db\" or \"database:NAME\"");
	return -EINVAL;
}

int api_query_recommendations(const char *scope, const char *period, const char **scope_out,
			      uint64_t *period_ms, char *err, size_t errlen)
{
	*scope_out = "db";
	*period_ms = 0;
	if (scope) {
		if (!strcmp(scope, "db") || !strcmp(scope, "cache") || !strcmp(scope, "all")) {
			*scope_out = !strcmp(scope, "db") ? "db" : !strcmp(scope, "cache") ? "cache" : "all";
		} else {
			seterr(err, errlen, "scope must be db, cache or all");
			return -EINVAL;
		}
	}
	if (period && (config_parse_duration_ms(period, period_ms) != 0 || *period_ms == 0 ||
		       *period_ms > 30ull * 86400000ull)) {
		seterr(err, errlen, "analysis_period must be a duration such as 15m, 1h or 7d "
		       "(at most 30d)");
		return -EINVAL;
	}
	return 0;
}

int api_body_invalidate(const json_t *root, struct api_pattern_req *out, char *err,
			size_t errlen)
{
	static const char *const allowed[] = { "invalidation_pattern", "scope", NULL };
	const json_t *pat;

	memset(out, 0, sizeof(*out));
	if (body_fields(root, allowed, err, errlen))
		return -EINVAL;
	pat = json_object_get(root, "invalidation_pattern");
	if (!pat) {
		seterr(err, errlen, "missing required field 'invalidation_pattern'");
		return -EINVAL;
	}
	if (parse_pattern(pat, "invalidation_pattern", out, err, errlen))
		return -EINVAL;
	return parse_tier(json_object_get(root, "scope"), "scope", &out->tier, err, errlen);
}

static bool policy_name_valid(const char *s, size_t n)
{
	if (n == 0 || n >= sizeof(((struct l1_partition *)0)->name))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

/* How one quantity field of a policy reads: its name, its text parser, and
 * what to tell a user who got it wrong. */
struct quantity_field {
	const char *name;                           /* "max_memory" */
	int (*parse)(const char *s, uint64_t *out); /* config_parse_size / _duration_ms */
	const char *what, *like, *examples, *integer_unit;
};

static const struct quantity_field size_field = {
	"max_memory", config_parse_size, "size", "\"64mb\"", "\"64mb\", \"1gb\", 1048576", "bytes",
};
static const struct quantity_field ttl_field = {
	"default_ttl", config_parse_duration_ms, "duration", "\"30s\"",
	"\"30s\", \"5m\", \"1h\", 1500 for ms",
	"milliseconds",
};

/* A text quantity ("64mb", "30s") or a non-negative integer; absent = 0. */
static int parse_quantity(const json_t *v, const struct quantity_field *f, const char *where,
			  uint64_t *out, char *err, size_t errlen)
{
	if (!v || json_is_null(v)) {
		*out = 0;
		return 0;
	}
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);
		if (i < 0) {
			seterr(err, errlen, "%s.%s must not be negative", where, f->name);
			return -EINVAL;
		}
		*out = (uint64_t)i;
		return 0;
	}
	if (json_is_string(v)) {
		if (f->parse(json_string_value(v), out) == 0)
			return 0;
		seterr(err, errlen, "%s.%s: \"%.32s\" is not a %s (examples: %s)", where, f->name,
		       json_string_value(v), f->what, f->examples);
		return -EINVAL;
	}
	seterr(err, errlen, "%s.%s must be a %s string like %s or an integer of %s", where,
	       f->name, f->what, f->like, f->integer_unit);
	return -EINVAL;
}

static int parse_policy(const json_t *o, unsigned idx, struct l1_partition *p, char *err,
			size_t errlen)
{
	static const char *const allowed[] = {
		"name", "prefix", "max_memory", "default_ttl", "priority", NULL
	};
	char where[48];
	const json_t *v;
	size_t n;

	snprintf(where, sizeof(where), "policy_definitions[%u]", idx);
	memset(p, 0, sizeof(*p));
	if (!json_is_object(o)) {
		seterr(err, errlen, "%s must be an object", where);
		return -EINVAL;
	}
	{
		char prefix[56];
		snprintf(prefix, sizeof(prefix), "%s.", where);
		if (check_fields(o, allowed, prefix, err, errlen))
			return -EINVAL;
	}
	v = json_object_get(o, "name");
	if (!json_is_string(v)) {
		seterr(err, errlen, "%s.name is required and must be a string", where);
		return -EINVAL;
	}
	n = json_string_length(v);
	if (!policy_name_valid(json_string_value(v), n)) {
		seterr(err, errlen, "%s.name must be 1-%zu characters of A-Z a-z 0-9 _ . -", where,
		       sizeof(p->name) - 1);
		return -EINVAL;
	}
	if (strcmp(json_string_value(v), "default") == 0) {
		seterr(err, errlen, "%s.name 'default' is reserved for the implicit partition "
		       "(prefix \"\")", where);
		return -EINVAL;
	}
	memcpy(p->name, json_string_value(v), n + 1);

	v = json_object_get(o, "prefix");
	if (!json_is_string(v)) {
		seterr(err, errlen, "%s.prefix is required and must be a string", where);
		return -EINVAL;
	}
	n = json_string_length(v);
	if (n == 0) {
		seterr(err, errlen, "%s.prefix must not be empty (the default partition already "
		       "holds every key no prefix matches)", where);
		return -EINVAL;
	}
	if (n >= sizeof(p->prefix)) {
		seterr(err, errlen, "%s.prefix is longer than %zu bytes", where, sizeof(p->prefix) - 1);
		return -EINVAL;
	}
	memcpy(p->prefix, json_string_value(v), n + 1);

	if (parse_quantity(json_object_get(o, "max_memory"), &size_field, where, &p->max_memory,
			   err, errlen))
		return -EINVAL;
	if (parse_quantity(json_object_get(o, "default_ttl"), &ttl_field, where,
			   &p->default_ttl_ms, err, errlen))
		return -EINVAL;

	p->priority = L1_PRIO_NORMAL;
	v = json_object_get(o, "priority");
	if (v && !json_is_null(v)) {
		const char *s = json_is_string(v) ? json_string_value(v) : NULL;
		if (s && strcmp(s, "low") == 0)
			p->priority = L1_PRIO_LOW;
		else if (s && strcmp(s, "normal") == 0)
			p->priority = L1_PRIO_NORMAL;
		else if (s && strcmp(s, "high") == 0)
			p->priority = L1_PRIO_HIGH;
		else {
			seterr(err, errlen, "%s.priority must be \"low\", \"normal\" or \"high\"", where);
			return -EINVAL;
		}
	}
	return 0;
}

int api_body_policies(const json_t *root, struct l1_partition *parts, unsigned max,
		      unsigned *n, char *err, size_t errlen)
{
	static const char *const allowed[] = { "policy_definitions", NULL };
	const json_t *arr, *o;
	size_t i;

	*n = 0;
	if (body_fields(root, allowed, err, errlen))
		return -EINVAL;
	arr = json_object_get(root, "policy_definitions");
	if (!arr) {
		seterr(err, errlen, "missing required field 'policy_definitions'");
		return -EINVAL;
	}
	if (!json_is_array(arr)) {
		seterr(err, errlen, "'policy_definitions' must be an array of objects");
		return -EINVAL;
	}
	if (json_array_size(arr) > max) {
		seterr(err, errlen, "'policy_definitions' has %zu entries; at most %u are allowed",
		       json_array_size(arr), max);
		return -EINVAL;
	}
	json_array_foreach((json_t *)arr, i, o) {
		if (parse_policy(o, (unsigned)i, &parts[i], err, errlen))
			return -EINVAL;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(parts[j].name, parts[i].name) == 0) {
				seterr(err, errlen, "policy_definitions[%zu].name '%s' repeats "
				       "policy_definitions[%zu]", i, parts[i].name, j);
				return -EINVAL;
			}
			if (strcmp(parts[j].prefix, parts[i].prefix) == 0) {
				seterr(err, errlen, "policy_definitions[%zu].prefix repeats the prefix of "
				       "policy_definitions[%zu] ('%s')", i, j, parts[j].name);
				return -EINVAL;
			}
		}
	}
	*n = (unsigned)json_array_size(arr);
	return 0;
}

/* A duration query value in whole seconds. */
static int parse_seconds(const char *s, const char *field, uint64_t *out, char *err,
			 size_t errlen)
{
	uint64_t ms;

	if (s[0] == '\0' || config_parse_duration_ms(s, &ms) != 0) {
		seterr(err, errlen, "query parameter %s=\"%.32s\" is not a duration (examples: 10s, "
		       "5m, 1h)", field, s);
		return -EINVAL;
	}
	if (ms < 1000) {
		seterr(err, errlen, "query parameter %s must be at least 1s (a bare number means "
		       "milliseconds; write 10s, 5m, 1h)", field);
		return -EINVAL;
	}
	if (ms % 1000) {
		seterr(err, errlen, "query parameter %s must be whole seconds", field);
		return -EINVAL;
	}
	*out = ms / 1000;
	return 0;
}

int api_query_statistics(const char *tier, const char *range, const char *gran,
			 unsigned max_range_s, struct api_stats_query *out, char *err,
			 size_t errlen)
{
	uint64_t r, g;

	memset(out, 0, sizeof(*out));
	if (max_range_s == 0)
		max_range_s = 1;
	if (!tier || strcmp(tier, "all") == 0) {
		out->tier = API_TIER_ALL;
	} else if (strcmp(tier, "l1") == 0) {
		out->tier = API_TIER_L1;
	} else {
		seterr(err, errlen, "query parameter cache_tier must be \"l1\" or \"all\"");
		return -EINVAL;
	}
	if (range) {
		if (parse_seconds(range, "time_range", &r, err, errlen))
			return -EINVAL;
		if (r > max_range_s) {
			seterr(err, errlen, "query parameter time_range=%s exceeds the %us of history "
			       "kept", range, max_range_s);
			return -EINVAL;
		}
	} else {
		r = API_DEFAULT_RANGE_S < max_range_s ? API_DEFAULT_RANGE_S : max_range_s;
	}
	if (gran) {
		if (parse_seconds(gran, "granularity", &g, err, errlen))
			return -EINVAL;
		if (g > r) {
			seterr(err, errlen, "query parameter granularity=%s is longer than "
			       "time_range (%" PRIu64 "s)", gran, r);
			return -EINVAL;
		}
	} else {
		g = (r + 59) / 60;
	}
	if ((r + g - 1) / g > API_SERIES_MAX_POINTS) {
		seterr(err, errlen, "time_range/granularity gives more than %d points; use a coarser "
		       "granularity", API_SERIES_MAX_POINTS);
		return -EINVAL;
	}
	out->range_s = (unsigned)r;
	out->gran_s = (unsigned)g;
	out->points = (unsigned)((r + g - 1) / g);
	return 0;
}

/* Strict unsigned decimal: digits only, no sign, no overflow. */
static int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!s[0])
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		unsigned d;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int api_query_keys(const char *cursor, const char *count, uint64_t *cur, size_t *cnt,
		   char *err, size_t errlen)
{
	uint64_t v;

	*cur = 0;
	*cnt = API_KEYS_DEFAULT_COUNT;
	if (cursor && parse_u64(cursor, cur)) {
		seterr(err, errlen, "query parameter cursor must be an unsigned integer (the "
		       "next_cursor of the previous page, 0 to start)");
		return -EINVAL;
	}
	if (count) {
		if (parse_u64(count, &v) || v == 0 || v > API_KEYS_MAX_COUNT) {
			seterr(err, errlen, "query parameter count must be an integer from 1 to %d",
			       API_KEYS_MAX_COUNT);
			return -EINVAL;
		}
		*cnt = (size_t)v;
	}
	return 0;
}

static int hexdig(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int api_url_decode(const char *in, size_t inlen, char *out, size_t outmax, size_t *outlen)
{
	size_t o = 0;

	for (size_t i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '%') {
			int hi, lo;
			if (inlen - i < 3)
				return -EINVAL;
			hi = hexdig((unsigned char)in[i + 1]);
			lo = hexdig((unsigned char)in[i + 2]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		}
		if (o >= outmax)
			return -E2BIG;
		out[o++] = (char)c;
	}
	if (o < outmax)
		out[o] = '\0';
	*outlen = o;
	return 0;
}

bool api_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		uint32_t cp;
		unsigned need;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i - 1 < need)
			return false;
		for (unsigned k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

size_t api_utf8_seq(const char *s, size_t len)
{
	/* a lead byte says how long its character is: one length can be valid */
	for (size_t k = 1; k <= 4 && k <= len; k++)
		if (api_utf8_valid(s, k))
			return k;
	return 0;
}

int api_prom_escape(struct buf *b, const char *s, size_t len)
{
	size_t start = 0;
	int rc;

	for (size_t i = 0; i < len; i++) {
		const char *rep = s[i] == '\\' ? "\\\\" : s[i] == '"' ? "\\\"" : s[i] == '\n' ? "\\n"
											     : NULL;
		if (!rep)
			continue;
		if ((rc = buf_append(b, s + start, i - start)) || (rc = buf_append_str(b, rep)))
			return rc;
		start = i + 1;
	}
	return buf_append(b, s + start, len - start);
}

bool api_config_key_secret(const char *section, const char *key)
{
	size_t n = strlen(key);

	(void)section;
	/* password_file and tokens_file name files, which are not secret. */
	if (n >= 5 && strcmp(key + n - 5, "_file") == 0)
		return false;
	return strcasestr(key, "password") || strcasestr(key, "secret") ||
	       strcasestr(key, "passphrase") || strcasecmp(key, "token") == 0 ||
	       strcasestr(key, "api_key") || strcasestr(key, "private_key");
}

/* ---- POST /performance/cache/warm --------------------------------------------- */

static int parse_limit(const json_t *o, uint64_t *out, const char *where, char *err,
		       size_t errlen)
{
	const json_t *v = json_object_get(o, "limit");

	*out = WARM_LIMIT_DEFAULT;
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > WARM_LIMIT_MAX) {
		seterr(err, errlen, "'%slimit' must be an integer from 1 to %d", where,
		       WARM_LIMIT_MAX);
		return -EINVAL;
	}
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int parse_warm_source(const json_t *o, unsigned idx, struct warm_source *s, char *err,
			     size_t errlen)
{
	static const char *const keys_f[] = { "type", "keys", NULL };
	static const char *const pat_f[] = { "type", "pattern", "limit", NULL };
	static const char *const sql_f[] = { "type", "loader", "limit", NULL };
	static const char *const snap_f[] = { "type", NULL };
	char where[48];
	const json_t *type, *v;
	const char *t;

	snprintf(where, sizeof(where), "data_sources[%u].", idx);
	if (!json_is_object(o)) {
		seterr(err, errlen, "data_sources[%u] must be an object with a 'type'", idx);
		return -EINVAL;
	}
	type = json_object_get(o, "type");
	if (!json_is_string(type)) {
		seterr(err, errlen, "'%stype' must be \"keys\", \"pattern\", \"sql\" or "
		       "\"snapshot\"", where);
		return -EINVAL;
	}
	t = json_string_value(type);
	if (strcmp(t, "keys") == 0) {
		size_t n;

		s->type = WARM_SRC_KEYS;
		if (check_fields(o, keys_f, where, err, errlen))
			return -EINVAL;
		v = json_object_get(o, "keys");
		if (!json_is_array(v) || json_array_size(v) == 0) {
			seterr(err, errlen, "'%skeys' must be a non-empty array of strings", where);
			return -EINVAL;
		}
		n = json_array_size(v);
		if (n > WARM_MAX_KEYS) {
			seterr(err, errlen, "'%skeys' holds %zu keys, at most %d per source", where, n,
			       WARM_MAX_KEYS);
			return -EINVAL;
		}
		s->keys = calloc(n, sizeof(*s->keys));
		s->klens = calloc(n, sizeof(*s->klens));
		if (!s->keys || !s->klens) {
			seterr(err, errlen, "out of memory");
			return -ENOMEM;
		}
		for (size_t i = 0; i < n; i++) {
			const json_t *k = json_array_get(v, i);
			size_t kl;

			if (!json_is_string(k) || json_string_length(k) == 0 ||
			    json_string_length(k) > WARM_KEY_MAX) {
				seterr(err, errlen, "'%skeys[%zu]' must be a string of 1 to %d bytes",
				       where, i, WARM_KEY_MAX);
				return -EINVAL;
			}
			kl = json_string_length(k);
			s->keys[i] = malloc(kl);
			if (!s->keys[i]) {
				seterr(err, errlen, "out of memory");
				return -ENOMEM;
			}
			memcpy(s->keys[i], json_string_value(k), kl);
			s->klens[i] = kl;
			s->nkeys++;
		}
		return 0;
	}
	if (strcmp(t, "pattern") == 0) {
		s->type = WARM_SRC_PATTERN;
		if (check_fields(o, pat_f, where, err, errlen))
			return -EINVAL;
		v = json_object_get(o, "pattern");
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) >= WARM_PATTERN_MAX) {
			seterr(err, errlen, "'%spattern' must be a glob of 1 to %d bytes", where,
			       WARM_PATTERN_MAX - 1);
			return -EINVAL;
		}
		s->plen = json_string_length(v);
		memcpy(s->pattern, json_string_value(v), s->plen);
		return parse_limit(o, &s->limit, where, err, errlen);
	}
	if (strcmp(t, "sql") == 0) {
		s->type = WARM_SRC_SQL;
		if (check_fields(o, sql_f, where, err, errlen))
			return -EINVAL;
		v = json_object_get(o, "loader");
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) >= sizeof(s->loader) ||
		    !policy_name_valid(json_string_value(v), json_string_length(v))) {
			seterr(err, errlen, "'%sloader' must name a [loader.NAME] section", where);
			return -EINVAL;
		}
		memcpy(s->loader, json_string_value(v), json_string_length(v));
		return parse_limit(o, &s->limit, where, err, errlen);
	}
	if (strcmp(t, "snapshot") == 0) {
		s->type = WARM_SRC_SNAPSHOT;
		return check_fields(o, snap_f, where, err, errlen) ? -EINVAL : 0;
	}
	seterr(err, errlen, "'%stype' must be \"keys\", \"pattern\", \"sql\" or \"snapshot\", "
	       "not \"%.32s\"", where, t);
	return -EINVAL;
}

int api_body_warm(const json_t *root, struct warm_request *out, char *err, size_t errlen)
{
	static const char *const allowed[] = { "cache_scope", "data_sources", NULL };
	const json_t *src;
	int tier;

	if (body_fields(root, allowed, err, errlen))
		return -EINVAL;
	if (parse_tier(json_object_get(root, "cache_scope"), "cache_scope", &tier, err, errlen))
		return -EINVAL;
	out->scope_all = tier == API_TIER_ALL;
	src = json_object_get(root, "data_sources");
	if (!json_is_array(src) || json_array_size(src) == 0) {
		seterr(err, errlen, "'data_sources' must be a non-empty array of sources, e.g. "
		       "[{\"type\": \"keys\", \"keys\": [\"user:1\"]}]");
		return -EINVAL;
	}
	if (json_array_size(src) > WARM_MAX_SOURCES) {
		seterr(err, errlen, "'data_sources' holds %zu sources, at most %d",
		       json_array_size(src), WARM_MAX_SOURCES);
		return -EINVAL;
	}
	for (size_t i = 0; i < json_array_size(src); i++) {
		int rc = parse_warm_source(json_array_get(src, i), (unsigned)i, &out->src[i], err,
					   errlen);

		out->n = (unsigned)i + 1;     /* so warm_request_free frees it */
		if (rc)
			return rc;
	}
	return 0;
}
