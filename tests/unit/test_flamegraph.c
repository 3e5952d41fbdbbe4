/*
 * test_flamegraph.c - the three renderings of a CPU profile (folded, SVG,
 * JSON) from a synthetic profile_result: exact folded text, well-formed and
 * escaped XML whose frame widths follow the samples, JSON whose percentages
 * add up, plus sanitising of odd names and the output bound.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "hotpath/buf.h"
#include "hotpath/profile.h"

#define U PROFILE_FRAME_USER
#define K PROFILE_FRAME_KERNEL

/* 100 samples:
 *   60 app  main;work;burn
 *   20 app  main;work;parse<T>&
 *   15 app  main;idle;entry_SYSCALL_64[k];do_syscall_64[k]
 *    5 db;x (no frames -> [unknown]) */
static struct profile_result *sample_result(void)
{
	static const char *const s1[] = { "main", "work", "burn" };
	static const char *const s2[] = { "main", "work", "parse<T>&" };
	static const char *const s3[] = { "main", "idle", "entry_SYSCALL_64", "do_syscall_64" };
	static const uint8_t k3[] = { U, U, K, K };
	struct profile_result *r = profile_result_new(42, 49, 5);

	assert_non_null(r);
	assert_int_equal(profile_result_add(r, 42, "app", s1, NULL, 3, 60), 0);
	assert_int_equal(profile_result_add(r, 42, "app", s2, NULL, 3, 20), 0);
	assert_int_equal(profile_result_add(r, 42, "app", s3, k3, 4, 15), 0);
	assert_int_equal(profile_result_add(r, 43, "db;x", NULL, NULL, 0, 5), 0);
	return r;
}

static char *render(struct profile_result *r, int which)
{
	struct buf b;
	char *s;
	int err;

	buf_init(&b, 0);
	err = which == 0 ? profile_write_folded(r, &b)
	    : which == 1 ? profile_write_svg(r, "test <&> graph", &b)
	    : profile_write_json(r, 0, &b);
	assert_int_equal(err, 0);
	s = strndup(buf_head(&b), buf_used(&b));
	buf_free(&b);
	assert_non_null(s);
	return s;
}

static void test_folded(void **state)
{
	struct profile_result *r = sample_result();
	char *s;
	static const char *const again[] = { "main", "work", "burn" };

	(void)state;
	/* another process with the same comm and stack: merged into one line */
	assert_int_equal(profile_result_add(r, 44, "app", again, NULL, 3, 1), 0);
	s = render(r, 0);
	assert_string_equal(s,
		"app;main;idle;entry_SYSCALL_64_[k];do_syscall_64_[k] 15\n"
		"app;main;work;burn 61\n"
		"app;main;work;parse<T>& 20\n"
		"db:x;[unknown] 5\n");
	free(s);
	profile_result_free(r);
}

/* A minimal XML well-formedness check: balanced, properly nested tags,
 * quoted attributes, no raw '<' or '&' outside markup, CDATA skipped. */
static int xml_check(const char *s, char *why, size_t whylen)
{
	char stack[64][32];
	int depth = 0, elements = 0;
	const char *p = s;

	while (*p) {
		if (strncmp(p, "<![CDATA[", 9) == 0) {
			const char *e = strstr(p, "]]>");

			if (!e)
				return snprintf(why, whylen, "open CDATA"), -1;
			p = e + 3;
		} else if (strncmp(p, "<?", 2) == 0) {
			const char *e = strstr(p, "?>");

			if (!e)
				return snprintf(why, whylen, "open PI"), -1;
			p = e + 2;
		} else if (*p == '<') {
			bool close = p[1] == '/';
			const char *n = p + 1 + close, *e;
			size_t len = strcspn(n, " \t\n/>");
			bool self = false;

			for (e = n + len; *e && *e != '>'; e++) {
				if (*e == '"') {
					e = strchr(e + 1, '"');
					if (!e)
						return snprintf(why, whylen, "open quote"), -1;
				} else if (*e == '<') {
					return snprintf(why, whylen, "'<' inside a tag"), -1;
				}
			}
			if (!*e)
				return snprintf(why, whylen, "open tag"), -1;
			self = e[-1] == '/';
			if (len == 0 || len >= 32)
				return snprintf(why, whylen, "bad tag name"), -1;
			if (close) {
				if (depth == 0 || strncmp(stack[depth - 1], n, len) != 0 ||
				    stack[depth - 1][len])
					return snprintf(why, whylen, "mismatched </%.*s>", (int)len, n), -1;
				depth--;
			} else if (!self) {
				if (depth == 64)
					return snprintf(why, whylen, "too deep"), -1;
				memcpy(stack[depth], n, len);
				stack[depth++][len] = '\0';
				elements++;
			} else {
				elements++;
			}
			p = e + 1;
		} else if (*p == '&') {
			if (strncmp(p, "&amp;", 5) && strncmp(p, "&lt;", 4) && strncmp(p, "&gt;", 4) &&
			    strncmp(p, "&quot;", 6) && strncmp(p, "&apos;", 6))
				return snprintf(why, whylen, "raw '&' at %.20s", p), -1;
			p++;
		} else if (*p == '>' ) {
			return snprintf(why, whylen, "raw '>' at %.20s", p), -1;
		} else {
			p++;
		}
	}
	if (depth)
		return snprintf(why, whylen, "%d unclosed, innermost <%s>", depth, stack[depth - 1]), -1;
	return elements;
}

static size_t count(const char *s, const char *needle)
{
	size_t n = 0;

	for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* width="..." of the rect following the title that starts with `title` */
static double rect_width(const char *svg, const char *title)
{
	char key[256];
	const char *p;

	snprintf(key, sizeof(key), "<title>%s", title);
	p = strstr(svg, key);
	assert_non_null(p);
	p = strstr(p, "width=\"");
	assert_non_null(p);
	return strtod(p + 7, NULL);
}

static void test_svg(void **state)
{
	struct profile_result *r = sample_result();
	char why[128] = "", *s;
	int n;

	(void)state;
	s = render(r, 1);
	assert_true(strncmp(s, "<?xml", 5) == 0);
	n = xml_check(s, why, sizeof(why));
	if (n < 0)
		fail_msg("SVG is not well-formed: %s", why);
	/* frames: all, app, db:x, main, work, burn, parse, idle, 2 kernel, [unknown] */
	assert_int_equal(count(s, "<g class=\"f\">"), 11);
	assert_int_equal(count(s, "<g "), count(s, "</g>"));
	assert_non_null(strstr(s, "parse&lt;T&gt;&amp; (20 samples, 20.00%)"));
	assert_null(strstr(s, "parse<T>"));
	assert_non_null(strstr(s, "test &lt;&amp;&gt; graph"));
	assert_non_null(strstr(s, "<title>all (100 samples, 100.00%)</title>"));
	assert_non_null(strstr(s, "<title>burn (60 samples, 60.00%)</title>"));
	assert_non_null(strstr(s, "<title>db:x (5 samples, 5.00%)</title>"));
	/* widths follow the samples: 1180 px for 100 samples */
	assert_true(fabs(rect_width(s, "all ") - 1180.0) < 0.01);
	assert_true(fabs(rect_width(s, "burn ") - 708.0) < 0.01);
	assert_true(fabs(rect_width(s, "app ") + rect_width(s, "db:x ") - 1180.0) < 0.02);
	assert_true(fabs(rect_width(s, "work ") - rect_width(s, "burn ") -
			 rect_width(s, "parse&lt;") ) < 0.02);
	assert_non_null(strstr(s, "<script"));
	free(s);
	profile_result_free(r);

	/* empty profile: still a valid document */
	r = profile_result_new(0, 49, 1);
	s = render(r, 1);
	assert_true(xml_check(s, why, sizeof(why)) >= 0);
	free(s);
	profile_result_free(r);
}

static void test_json(void **state)
{
	struct profile_result *r = sample_result();
	json_t *root, *hot, *tot, *e;
	json_error_t jerr;
	double self_sum = 0;
	size_t i;
	char *s;

	(void)state;
	s = render(r, 2);
	root = json_loads(s, 0, &jerr);
	assert_non_null(root);
	assert_int_equal(json_integer_value(json_object_get(root, "samples")), 100);
	assert_int_equal(json_integer_value(json_object_get(root, "pid")), 42);
	hot = json_object_get(root, "hot_paths");
	tot = json_object_get(root, "by_total");
	assert_true(json_is_array(hot) && json_array_size(hot) == 4);

	e = json_array_get(hot, 0);
	assert_string_equal(json_string_value(json_object_get(e, "function")), "burn");
	assert_int_equal(json_integer_value(json_object_get(e, "self_samples")), 60);
	assert_true(fabs(json_real_value(json_object_get(e, "self_percent")) - 60.0) < 1e-9);
	assert_false(json_is_true(json_object_get(e, "kernel")));
	e = json_array_get(hot, 1);
	assert_string_equal(json_string_value(json_object_get(e, "function")), "parse<T>&");
	e = json_array_get(hot, 2);
	assert_string_equal(json_string_value(json_object_get(e, "function")), "do_syscall_64");
	assert_true(json_is_true(json_object_get(e, "kernel")));
	json_array_foreach(hot, i, e)
		self_sum += json_real_value(json_object_get(e, "self_percent"));
	assert_true(fabs(self_sum - 100.0) < 1e-6);

	e = json_array_get(tot, 0);
	assert_string_equal(json_string_value(json_object_get(e, "function")), "main");
	assert_true(fabs(json_real_value(json_object_get(e, "total_percent")) - 95.0) < 1e-9);
	assert_int_equal(json_integer_value(json_object_get(e, "self_samples")), 0);
	e = json_array_get(tot, 1);
	assert_string_equal(json_string_value(json_object_get(e, "function")), "work");
	assert_true(fabs(json_real_value(json_object_get(e, "total_percent")) - 80.0) < 1e-9);
	json_array_foreach(tot, i, e)
		assert_true(json_real_value(json_object_get(e, "total_percent")) <= 100.0);

	e = json_array_get(json_object_get(root, "processes"), 0);
	assert_string_equal(json_string_value(json_object_get(e, "comm")), "app");
	assert_int_equal(json_integer_value(json_object_get(e, "samples")), 95);
	e = json_array_get(json_object_get(root, "top_stacks"), 0);
	assert_int_equal(json_integer_value(json_object_get(e, "samples")), 60);
	assert_int_equal(json_array_size(json_object_get(e, "frames")), 3);
	json_decref(root);
	free(s);
	profile_result_free(r);
}

static void test_recursion_counts_once(void **state)
{
	static const char *const rec[] = { "main", "f", "f", "f" };
	struct profile_result *r = profile_result_new(0, 49, 1);
	json_t *root, *e;
	char *s;

	(void)state;
	assert_int_equal(profile_result_add(r, 1, "x", rec, NULL, 4, 10), 0);
	s = render(r, 2);
	root = json_loads(s, 0, NULL);
	e = json_array_get(json_object_get(root, "hot_paths"), 0);
	assert_string_equal(json_string_value(json_object_get(e, "function")), "f");
	assert_int_equal(json_integer_value(json_object_get(e, "total_samples")), 10);
	json_decref(root);
	free(s);
	profile_result_free(r);
}

static void test_sanitize_and_bounds(void **state)
{
	static const char *const odd[] = { "bad\xff" "utf8", "ctl\x01;semi", "caf\xc3\xa9" };
	struct profile_result *r = profile_result_new(0, 49, 1);
	struct buf b;
	char why[128], *s;
	json_t *j;

	(void)state;
	assert_int_equal(profile_result_add(r, 1, "c\xe2\x82", odd, NULL, 3, 3), 0);
	s = render(r, 0);
	assert_string_equal(s, "c??;bad?utf8;ctl?:semi;caf\xc3\xa9 3\n");
	free(s);
	s = render(r, 1);
	assert_true(xml_check(s, why, sizeof(why)) > 0);
	free(s);
	s = render(r, 2);
	j = json_loads(s, 0, NULL);
	assert_non_null(j);
	json_decref(j);
	free(s);
	/* identical names interned once */
	assert_int_equal(profile_result_add(r, 1, "c", odd, NULL, 3, 1), 0);
	assert_int_equal(r->nnames, 3);

	buf_init(&b, 100);
	assert_int_equal(profile_write_svg(r, NULL, &b), -ENOBUFS);
	buf_free(&b);
	assert_int_equal(profile_result_add(r, 1, "c", NULL, NULL, 1, 1), -EINVAL);
	profile_result_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_folded),
		cmocka_unit_test(test_svg),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_recursion_counts_once),
		cmocka_unit_test(test_sanitize_and_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
