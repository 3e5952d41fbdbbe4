/*
 * test_resp.c - RESP2 parser and reply encoders.
 *
 * Every well-formed input is also fed at every split point: a prefix must
 * give RESP_NEED_MORE without consuming, the whole must give the same argv
 * (the parser is stateless, and the network layer relies on that).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <limits.h>
#include <cmocka.h>
#include "hotpath/resp.h"

#define MAX_ARGS 16

struct pctx {
	struct resp_cmd cmd;
	const char *argv[MAX_ARGS];
	size_t argvlen[MAX_ARGS];
	char scratch[RESP_INLINE_MAX];
	struct resp_limits lim;
};

static struct pctx *pctx_new(void)
{
	struct pctx *p = calloc(1, sizeof(*p));

	assert_non_null(p);
	p->cmd.cap = MAX_ARGS;
	p->cmd.argv = p->argv;
	p->cmd.argvlen = p->argvlen;
	p->cmd.scratch = p->scratch;
	p->cmd.scratch_cap = sizeof(p->scratch);
	p->lim.max_args = MAX_ARGS;
	p->lim.max_bulk = 1024;
	p->lim.max_query = 1 << 20;
	return p;
}

static enum resp_status parse(struct pctx *p, const char *in, size_t n, size_t *consumed,
			      const char **err)
{
	*consumed = 0;
	*err = NULL;
	return resp_parse(in, n, &p->lim, &p->cmd, consumed, err);
}

/* Parse `in` whole and at every split point; expect `argc` args `want`. */
static void check_ok(const char *in, size_t n, size_t argc, const char *const *want,
		     const size_t *wlen)
{
	struct pctx *p = pctx_new();
	size_t consumed, i, cut;
	const char *err;

	for (cut = 0; cut < n; cut++) {
		char *copy = malloc(cut + 1);

		memcpy(copy, in, cut);
		consumed = 12345;
		*(volatile char *)&copy[cut] = 0;
		assert_int_equal(resp_parse(copy, cut, &p->lim, &p->cmd, &consumed, &err),
				 RESP_NEED_MORE);
		assert_int_equal(consumed, 12345);
		free(copy);
	}
	assert_int_equal(parse(p, in, n, &consumed, &err), RESP_DONE);
	assert_int_equal(consumed, n);
	assert_int_equal(p->cmd.argc, argc);
	for (i = 0; i < argc; i++) {
		size_t l = wlen ? wlen[i] : strlen(want[i]);

		assert_int_equal(p->cmd.argvlen[i], l);
		assert_memory_equal(p->cmd.argv[i], want[i], l);
	}
	free(p);
}

static void check_err(struct pctx *p, const char *in, size_t n, const char *msg)
{
	size_t consumed;
	const char *err;
	enum resp_status st = parse(p, in, n, &consumed, &err);

	if (st != RESP_PROTO_ERROR)
		fail_msg("'%.*s': status %d, expected error '%s'", (int)n, in, st, msg);
	assert_non_null(err);
	assert_string_equal(err, msg);
	assert_null(strpbrk(err, "\r\n"));
}

#define S(x) x, sizeof(x) - 1

static void test_multibulk(void **state)
{
	static const char *const w1[] = { "SET", "k", "hello" };
	static const char *const w2[] = { "GET", "" };
	static const char *const w3[] = { "PING" };
	static const char *const wb[] = { "a\r\nb", "\0\0" };
	static const size_t wbl[] = { 4, 2 };

	(void)state;
	check_ok(S("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n"), 3, w1, NULL);
	check_ok(S("*2\r\n$3\r\nGET\r\n$0\r\n\r\n"), 2, w2, NULL);
	check_ok(S("*1\r\n$4\r\nPING\r\n"), 1, w3, NULL);
	check_ok(S("*2\r\n$4\r\na\r\nb\r\n$2\r\n\0\0\r\n"), 2, wb, wbl);
}

static void test_inline(void **state)
{
	static const char *const w1[] = { "SET", "k", "v" };
	static const char *const w2[] = { "PING" };
	static const char *const w3[] = { "set", "a b", "c\"d" };
	static const char *const w4[] = { "echo", "A\n\r\t\b\a\\x", "\x7f" };
	static const char *const w5[] = { "echo", "it's", "ab c" };
	static const char *const w6[] = { "x", "\\n" };
	static const char *const w7[] = { "a", "" };

	(void)state;
	check_ok(S("SET k v\r\n"), 3, w1, NULL);
	check_ok(S("SET  k\tv\n"), 3, w1, NULL);
	check_ok(S("  PING  \r\n"), 1, w2, NULL);
	check_ok(S("set \"a b\" 'c\"d'\r\n"), 3, w3, NULL);
	check_ok(S("echo \"\\x41\\n\\r\\t\\b\\a\\\\\\x\" \"\\x7f\"\r\n"), 3, w4, NULL);
	check_ok(S("echo 'it\\'s' a\"b c\"\r\n"), 3, w5, NULL);
	check_ok(S("x '\\n'\r\n"), 2, w6, NULL);
	check_ok(S("a \"\"\r\n"), 2, w7, NULL);
}

static void test_inline_nul_ends_line(void **state)
{
	struct pctx *p = pctx_new();
	size_t consumed;
	const char *err;

	(void)state;
	/* Like Redis (which splits a C string), a NUL ends the line. */
	assert_int_equal(parse(p, S("PING\0 ignored\r\n"), &consumed, &err), RESP_DONE);
	assert_int_equal(p->cmd.argc, 1);
	assert_int_equal(consumed, 15);
	free(p);
}

static void test_empty(void **state)
{
	struct pctx *p = pctx_new();
	size_t consumed;
	const char *err;

	(void)state;
	assert_int_equal(parse(p, S("*0\r\nPING\r\n"), &consumed, &err), RESP_EMPTY);
	assert_int_equal(consumed, 4);
	assert_int_equal(parse(p, S("*-1\r\n"), &consumed, &err), RESP_EMPTY);
	assert_int_equal(consumed, 5);
	assert_int_equal(parse(p, S("\r\n"), &consumed, &err), RESP_EMPTY);
	assert_int_equal(consumed, 2);
	assert_int_equal(parse(p, S("   \t \n"), &consumed, &err), RESP_EMPTY);
	assert_int_equal(consumed, 6);
	assert_int_equal(parse(p, "", 0, &consumed, &err), RESP_NEED_MORE);
	assert_int_equal(parse(p, S("*0\r"), &consumed, &err), RESP_NEED_MORE);
	free(p);
}

static void test_pipeline(void **state)
{
	struct pctx *p = pctx_new();
	static const char in[] = "*1\r\n$4\r\nPING\r\nGET k\r\n*0\r\n*2\r\n$3\r\nGET\r\n$1\r\nx\r\n*1\r\n$3\r\nGE";
	const char *names[] = { "PING", "GET", NULL, "GET" };
	size_t off = 0, n = sizeof(in) - 1, consumed, i = 0;
	const char *err;
	enum resp_status st;

	(void)state;
	for (;;) {
		st = parse(p, in + off, n - off, &consumed, &err);
		if (st == RESP_NEED_MORE)
			break;
		assert_true(i < 4);
		if (names[i]) {
			assert_int_equal(st, RESP_DONE);
			assert_memory_equal(p->cmd.argv[0], names[i], strlen(names[i]));
		} else {
			assert_int_equal(st, RESP_EMPTY);
		}
		off += consumed;
		i++;
	}
	assert_int_equal(i, 4);
	assert_int_equal(n - off, strlen("*1\r\n$3\r\nGE"));
	free(p);
}

static void test_errors(void **state)
{
	struct pctx *p = pctx_new();
	char *big;

	(void)state;
	check_err(p, S("*a\r\n"), "Protocol error: invalid multibulk length");
	check_err(p, S("*\r\n"), "Protocol error: invalid multibulk length");
	check_err(p, S("*+1\r\n"), "Protocol error: invalid multibulk length");
	check_err(p, S("*3000000000\r\n"), "Protocol error: invalid multibulk length");
	check_err(p, S("*1\rX"), "Protocol error: invalid multibulk length");
	check_err(p, S("*1234567890123456789012345"), "Protocol error: invalid multibulk length");
	check_err(p, S("*17\r\n"), "Protocol error: too many arguments (17, max 16)");
	check_err(p, S("*1\r\nx"), "Protocol error: expected '$', got 'x'");
	check_err(p, S("*1\r\n\r"), "Protocol error: expected '$', got ' '");
	check_err(p, S("*1\r\n$-1\r\n"), "Protocol error: invalid bulk length");
	check_err(p, S("*1\r\n$a\r\n"), "Protocol error: invalid bulk length");
	check_err(p, S("*1\r\n$01\r\n"), "Protocol error: invalid bulk length");
	check_err(p, S("*1\r\n$1025\r\n"), "Protocol error: invalid bulk length");
	check_err(p, S("*1\r\n$1\r\nab\r\n"), "Protocol error: bulk data is not followed by CRLF");
	check_err(p, S("*2\r\n$3\r\nfoo\r\n$3\r\nbarXX\r\n"),
		  "Protocol error: bulk data is not followed by CRLF");
	check_err(p, S("set \"a\"b c\r\n"), "Protocol error: unbalanced quotes in request");
	check_err(p, S("set 'a\r\n"), "Protocol error: unbalanced quotes in request");
	check_err(p, S("set \"a\r\n"), "Protocol error: unbalanced quotes in request");
	check_err(p, S("set 'a'b\r\n"), "Protocol error: unbalanced quotes in request");
	check_err(p, S("set \"a\\\"\r\n"), "Protocol error: unbalanced quotes in request");
	check_err(p, S("a b c d e f g h i j k l m n o p q\r\n"),
		  "Protocol error: too many arguments (max 16)");
	/* An inline line without newline past RESP_INLINE_MAX. */
	big = malloc(RESP_INLINE_MAX + 1);
	memset(big, 'a', RESP_INLINE_MAX + 1);
	check_err(p, big, RESP_INLINE_MAX, "Protocol error: too big inline request");
	check_err(p, big, RESP_INLINE_MAX + 1, "Protocol error: too big inline request");
	free(big);
	/* Whole command over max_query: refused from the headers alone. */
	p->lim.max_query = 100;
	check_err(p, S("*2\r\n$3\r\nSET\r\n$90\r\n"),
		  "Protocol error: request is larger than the query buffer limit (100 bytes)");
	check_err(p, S("SETxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		       "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
		  "Protocol error: too big inline request");
	free(p);
}

static void test_need_more_is_bounded(void **state)
{
	struct pctx *p = pctx_new();
	size_t consumed;
	const char *err;

	(void)state;
	/* Partial but plausible inputs wait; they never consume. */
	assert_int_equal(parse(p, S("*2\r\n$3\r\nGET\r\n$100"), &consumed, &err), RESP_NEED_MORE);
	assert_int_equal(parse(p, S("*2\r\n$3\r\nGET\r\n$1000\r\nabc"), &consumed, &err),
			 RESP_NEED_MORE);
	assert_int_equal(consumed, 0);
	assert_int_equal(parse(p, S("SET k"), &consumed, &err), RESP_NEED_MORE);
	free(p);
}

static void test_limits_exact(void **state)
{
	struct pctx *p = pctx_new();
	char in[2048];
	size_t consumed, n;
	const char *err;

	(void)state;
	n = (size_t)snprintf(in, sizeof(in), "*1\r\n$1024\r\n");
	memset(in + n, 'v', 1024);
	memcpy(in + n + 1024, "\r\n", 2);
	n += 1026;
	assert_int_equal(parse(p, in, n, &consumed, &err), RESP_DONE);
	assert_int_equal(p->cmd.argvlen[0], 1024);
	p->lim.max_query = n;
	assert_int_equal(parse(p, in, n, &consumed, &err), RESP_DONE);
	p->lim.max_query = n - 1;
	assert_int_equal(parse(p, in, n, &consumed, &err), RESP_PROTO_ERROR);
	/* cmd->cap bounds argc even when max_args is larger. */
	p->lim.max_query = 1 << 20;
	p->lim.max_args = 1000;
	p->cmd.cap = 2;
	assert_int_equal(parse(p, S("*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"), &consumed, &err),
			 RESP_PROTO_ERROR);
	assert_int_equal(parse(p, S("a b c\r\n"), &consumed, &err), RESP_PROTO_ERROR);
	free(p);
}

static void check_reply(struct buf *b, const char *want, size_t n)
{
	assert_int_equal(buf_used(b), n);
	assert_memory_equal(buf_head(b), want, n);
	buf_reset(b);
}

static void test_encoders(void **state)
{
	struct buf b;
	char longmsg[600];

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(resp_add_simple(&b, "OK"), 0);
	check_reply(&b, S("+OK\r\n"));
	assert_int_equal(resp_add_error(&b, "ERR bad\r\nthing"), 0);
	check_reply(&b, S("-ERR bad  thing\r\n"));
	assert_int_equal(resp_add_errorf(&b, "ERR %s %d", "x", 5), 0);
	check_reply(&b, S("-ERR x 5\r\n"));
	memset(longmsg, 'm', sizeof(longmsg) - 1);
	longmsg[sizeof(longmsg) - 1] = '\0';
	longmsg[10] = '\n';
	assert_int_equal(resp_add_errorf(&b, "ERR %s", longmsg), 0);
	assert_int_equal(buf_used(&b), 1 + 4 + 599 + 2);
	assert_null(memchr(buf_head(&b), '\n', buf_used(&b) - 1));
	buf_reset(&b);
	assert_int_equal(resp_add_int(&b, 0), 0);
	check_reply(&b, S(":0\r\n"));
	assert_int_equal(resp_add_int(&b, LLONG_MIN), 0);
	check_reply(&b, S(":-9223372036854775808\r\n"));
	assert_int_equal(resp_add_int(&b, LLONG_MAX), 0);
	check_reply(&b, S(":9223372036854775807\r\n"));
	assert_int_equal(resp_add_bulk(&b, "a\0b", 3), 0);
	check_reply(&b, S("$3\r\na\0b\r\n"));
	assert_int_equal(resp_add_bulk(&b, NULL, 0), 0);
	check_reply(&b, S("$0\r\n\r\n"));
	assert_int_equal(resp_add_bulk_str(&b, "hello"), 0);
	check_reply(&b, S("$5\r\nhello\r\n"));
	assert_int_equal(resp_add_null(&b), 0);
	check_reply(&b, S("$-1\r\n"));
	assert_int_equal(resp_add_null_array(&b), 0);
	check_reply(&b, S("*-1\r\n"));
	assert_int_equal(resp_add_array(&b, 12), 0);
	check_reply(&b, S("*12\r\n"));
	buf_free(&b);
	/* The bound holds and a failed append leaves the buffer unchanged. */
	buf_init(&b, 8);
	assert_int_equal(resp_add_bulk(&b, "abcdefgh", 8), -ENOBUFS);
	assert_int_equal(buf_used(&b), 0);
	assert_int_equal(resp_add_simple(&b, "OK"), 0);
	assert_int_equal(resp_add_error(&b, "ERR xx"), -ENOBUFS);
	assert_int_equal(resp_add_errorf(&b, "ERR %0300d", 1), -ENOBUFS);
	check_reply(&b, S("+OK\r\n"));
	buf_free(&b);
}

static void test_arg_helpers(void **state)
{
	static const struct { const char *s; int rc; long long v; } cases[] = {
		{ "0", 0, 0 }, { "1", 0, 1 }, { "-1", 0, -1 }, { "123", 0, 123 },
		{ "9223372036854775807", 0, LLONG_MAX },
		{ "-9223372036854775808", 0, LLONG_MIN },
		{ "9223372036854775808", -ERANGE, 0 }, { "-9223372036854775809", -ERANGE, 0 },
		{ "99999999999999999999", -ERANGE, 0 },
		{ "", -EINVAL, 0 }, { "-", -EINVAL, 0 }, { "-0", -EINVAL, 0 },
		{ "01", -EINVAL, 0 }, { "+1", -EINVAL, 0 }, { " 1", -EINVAL, 0 },
		{ "1 ", -EINVAL, 0 }, { "1.5", -EINVAL, 0 }, { "abc", -EINVAL, 0 },
		{ "123456789012345678901", -EINVAL, 0 },
	};
	unsigned i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long long v = 42;
		int rc = resp_arg_ll(cases[i].s, strlen(cases[i].s), &v);

		if (rc != cases[i].rc)
			fail_msg("resp_arg_ll('%s') = %d, want %d", cases[i].s, rc, cases[i].rc);
		if (rc == 0)
			assert_true(v == cases[i].v);
	}
	assert_true(resp_arg_is("GeT", 3, "get"));
	assert_true(resp_arg_is("", 0, ""));
	assert_false(resp_arg_is("ge", 2, "get"));
	assert_false(resp_arg_is("gets", 4, "get"));
	assert_false(resp_arg_is("g\0t", 3, "get"));
	assert_false(resp_arg_is("[et", 3, "{et"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_multibulk),
		cmocka_unit_test(test_inline),
		cmocka_unit_test(test_inline_nul_ends_line),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_pipeline),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_need_more_is_bounded),
		cmocka_unit_test(test_limits_exact),
		cmocka_unit_test(test_encoders),
		cmocka_unit_test(test_arg_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
