/*
 * test_http_parse.c - the HTTP/1.1 head parser and chunked decoder.
 *
 * The core is a table of request-smuggling and malformation cases, each
 * with the status the proxy must answer; well-formed inputs are also fed
 * at every split point (a prefix must be NEED_MORE, the parser is
 * stateless). The chunked decoder is fed one byte at a time as well as
 * whole, and must give the same body.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "hotpath/http_parse.h"

static struct http_limits lim;
static struct http_msg msg;

static int parse_req(const char *s)
{
	return http_parse_head(s, strlen(s), true, HTTP_M_OTHER, &lim, &msg);
}

struct bad_case {
	const char *name;
	const char *req;
	unsigned status;
};

static const struct bad_case bad_requests[] = {
	{ "CL and TE together", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
	  "Transfer-Encoding: chunked\r\n\r\n", 400 },
	{ "TE and CL together", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	  "Content-Length: 5\r\n\r\n", 400 },
	{ "duplicate CL, equal", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
	  "Content-Length: 5\r\n\r\n", 400 },
	{ "duplicate CL, different", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
	  "Content-Length: 6\r\n\r\n", 400 },
	{ "CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400 },
	{ "CL sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400 },
	{ "CL negative", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400 },
	{ "CL hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 400 },
	{ "CL overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
	  400 },
	{ "CL empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400 },
	{ "TE not chunked last", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
	  400 },
	{ "TE gzip only", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400 },
	{ "TE gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	  501 },
	{ "TE chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	  "Transfer-Encoding: chunked\r\n\r\n", 400 },
	{ "TE chunked, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
	  400 },
	{ "TE xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 400 },
	{ "TE with vertical tab", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0b" "chunked\r\n\r\n",
	  400 },
	{ "TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400 },
	{ "space before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
	  400 },
	{ "tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400 },
	{ "obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400 },
	{ "obs-fold TE", "POST / HTTP/1.1\r\nHost: a\r\nX: y\r\n\tTransfer-Encoding: chunked\r\n\r\n",
	  400 },
	{ "ws after start line", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400 },
	{ "bare LF in header", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400 },
	{ "bare LF line ends", "GET / HTTP/1.1\nHost: a\n\n", 400 },
	{ "bare CR in header", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400 },
	{ "bare CR in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400 },
	{ "NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 400 },
	{ "DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f" "b\r\n\r\n", 400 },
	{ "ctl in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01" "b\r\n\r\n", 400 },
	{ "bad name char", "GET / HTTP/1.1\r\nHost: a\r\nX@Y: b\r\n\r\n", 400 },
	{ "empty name", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400 },
	{ "no colon", "GET / HTTP/1.1\r\nHost: a\r\nXYZ\r\n\r\n", 400 },
	{ "no Host in 1.1", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 400 },
	{ "two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400 },
	{ "bad Host", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400 },
	{ "Host with @", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400 },
	{ "two spaces in line", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
	{ "tab in request line", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
	{ "space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
	{ "ctl in target", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
	{ "8-bit in target", "GET /a\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
	{ "bad method char", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
	{ "lowercase version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400 },
	{ "version 2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505 },
	{ "version 1.10", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400 },
	{ "no version", "GET /\r\nHost: a\r\n\r\n", 400 },
	{ "CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501 },
	{ "asterisk with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
	{ "authority-form GET", "GET a.example:80 HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
	{ "Expect other", "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417 },
	{ "too many empty lines", "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
};

static void test_smuggling_table(void **state)
{
	(void)state;
	for (unsigned i = 0; i < HP_ARRAY_SIZE(bad_requests); i++) {
		const struct bad_case *c = &bad_requests[i];
		size_t n = strlen(c->req);
		int rc;

		/* a few cases hold a NUL: measure them by the second CRLFCRLF */
		if (strstr(c->name, "NUL"))
			n = sizeof("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n") - 1;
		rc = http_parse_head(c->req, n, true, HTTP_M_OTHER, &lim, &msg);
		if (rc != HTTP_PARSE_ERROR || msg.error_status != c->status)
			fail_msg("case '%s': rc %d status %u (%s), want error %u", c->name, rc,
				 msg.error_status, msg.why ? msg.why : "-", c->status);
		assert_non_null(msg.why);
	}
}

static void test_good_request_all_splits(void **state)
{
	static const char req[] =
		"\r\nPOST /a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\nContent-Length: 12\r\n"
		"Connection: keep-alive, Upgrade\r\nX-Empty:\r\nX-Sp:   padded value \t\r\n"
		"Expect: 100-continue\r\nX-Obs: caf\xc3\xa9\r\n\r\nhello world!";
	size_t hl = strlen(req) - 12;

	(void)state;
	for (size_t cut = 0; cut < hl; cut++)
		assert_int_equal(http_parse_head(req, cut, true, HTTP_M_OTHER, &lim, &msg),
				 HTTP_PARSE_NEED_MORE);
	assert_int_equal(http_parse_head(req, strlen(req), true, HTTP_M_OTHER, &lim, &msg),
			 HTTP_PARSE_OK);
	assert_int_equal(msg.head_len, hl);
	assert_int_equal(msg.meth, HTTP_M_POST);
	assert_true(http_ieq(msg.target, msg.target_len, "/a/b?c=d"));
	assert_int_equal(msg.version, 11);
	assert_int_equal(msg.body, HTTP_BODY_LENGTH);
	assert_int_equal(msg.content_length, 12);
	assert_true(msg.keep_alive);
	assert_true(msg.expect_continue);
	assert_false(msg.upgrade);
	assert_true(http_ieq(msg.host, msg.host_len, "example.com:8080"));
	assert_int_equal(msg.nheaders, 7);
	assert_int_equal(msg.headers[3].vlen, 0);
	assert_true(http_ieq(msg.headers[4].value, msg.headers[4].vlen, "padded value"));
}

static void test_versions_and_connection(void **state)
{
	(void)state;
	assert_int_equal(parse_req("GET / HTTP/1.0\r\n\r\n"), HTTP_PARSE_OK);
	assert_false(msg.keep_alive);
	assert_null(msg.host);
	assert_int_equal(parse_req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), HTTP_PARSE_OK);
	assert_true(msg.keep_alive);
	assert_int_equal(parse_req("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n"),
			 HTTP_PARSE_OK);
	assert_false(msg.keep_alive);
	assert_int_equal(parse_req("GET http://a.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n"),
			 HTTP_PARSE_OK);
	assert_int_equal(parse_req("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_OK);
	assert_int_equal(parse_req("PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_OK);
	assert_int_equal(msg.meth, HTTP_M_OTHER);
	assert_int_equal(parse_req("get / HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_PARSE_OK);
	assert_int_equal(msg.meth, HTTP_M_OTHER);   /* methods are case-sensitive */
	assert_int_equal(parse_req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"),
			 HTTP_PARSE_OK);
	assert_int_equal(msg.body, HTTP_BODY_CHUNKED);
	assert_int_equal(parse_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"),
			 HTTP_PARSE_OK);
	assert_int_equal(msg.body, HTTP_BODY_NONE);
}

static void test_limits(void **state)
{
	char *big = malloc(70000);
	size_t n;

	(void)state;
	assert_non_null(big);
	/* long request line: 414, even before the line ends */
	n = (size_t)sprintf(big, "GET /");
	memset(big + n, 'a', 9000);
	big[n + 9000] = '\0';
	assert_int_equal(parse_req(big), HTTP_PARSE_ERROR);
	assert_int_equal(msg.error_status, 414);
	/* too many fields: 431 */
	n = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: a\r\n");
	for (int i = 0; i < 120; i++)
		n += (size_t)sprintf(big + n, "X-%d: v\r\n", i);
	strcpy(big + n, "\r\n");
	assert_int_equal(parse_req(big), HTTP_PARSE_ERROR);
	assert_int_equal(msg.error_status, 431);
	/* one huge field: 431, also while incomplete */
	n = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
	memset(big + n, 'v', 40000);
	big[n + 40000] = '\0';
	assert_int_equal(parse_req(big), HTTP_PARSE_ERROR);
	assert_int_equal(msg.error_status, 431);
	free(big);
}

static int parse_resp(const char *s, enum http_method m)
{
	return http_parse_head(s, strlen(s), false, m, &lim, &msg);
}

static void test_responses(void **state)
{
	(void)state;
	assert_int_equal(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", HTTP_M_GET),
			 HTTP_PARSE_OK);
	assert_int_equal(msg.status, 200);
	assert_int_equal(msg.body, HTTP_BODY_LENGTH);
	assert_true(msg.keep_alive);
	assert_int_equal(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", HTTP_M_HEAD),
			 HTTP_PARSE_OK);
	assert_int_equal(msg.body, HTTP_BODY_NONE);
	assert_int_equal(parse_resp("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", HTTP_M_GET),
			 HTTP_PARSE_OK);
	assert_int_equal(msg.body, HTTP_BODY_NONE);
	assert_int_equal(parse_resp("HTTP/1.1 200\r\n\r\n", HTTP_M_GET), HTTP_PARSE_OK);
	assert_int_equal(msg.body, HTTP_BODY_EOF);
	assert_false(msg.keep_alive);
	assert_int_equal(parse_resp("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", HTTP_M_GET),
			 HTTP_PARSE_OK);
	assert_false(msg.keep_alive);
	assert_int_equal(parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", HTTP_M_GET),
			 HTTP_PARSE_OK);
	assert_int_equal(msg.body, HTTP_BODY_EOF);
	assert_int_equal(parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
				    "Content-Length: 3\r\n\r\n", HTTP_M_GET), HTTP_PARSE_ERROR);
	assert_int_equal(msg.error_status, 502);
	assert_int_equal(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
				    HTTP_M_GET), HTTP_PARSE_ERROR);
	assert_int_equal(parse_resp("HTTP/1.1 20 OK\r\n\r\n", HTTP_M_GET), HTTP_PARSE_ERROR);
	assert_int_equal(parse_resp("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", HTTP_M_GET),
			 HTTP_PARSE_ERROR);
	assert_int_equal(parse_resp("HTTP/1.1 200 OK\nX: a\r\n\r\n", HTTP_M_GET), HTTP_PARSE_ERROR);
	assert_int_equal(parse_resp("ICY 200 OK\r\n\r\n", HTTP_M_GET), HTTP_PARSE_ERROR);
}

/* Decode `in` whole and byte by byte; both must give `want`. */
static void chunk_check(const char *in, size_t n, const char *want, size_t rest)
{
	struct http_chunked d;
	char out[256];
	size_t olen = 0, off = 0, used, dl;
	const char *data;
	int rc;

	/* whole */
	http_chunked_init(&d);
	for (;;) {
		rc = http_chunked_feed(&d, &lim, in + off, n - off, &used, &data, &dl);
		assert_true(rc >= 0);
		off += used;
		if (rc == HTTP_CHUNK_DATA) {
			memcpy(out + olen, data, dl);
			olen += dl;
			continue;
		}
		if (rc == HTTP_CHUNK_DONE)
			break;
		fail_msg("decoder wants more at %zu", off);
	}
	assert_int_equal(olen, strlen(want));
	assert_memory_equal(out, want, olen);
	assert_int_equal(n - off, rest);
	/* one byte at a time */
	http_chunked_init(&d);
	olen = 0;
	for (off = 0; off < n - rest; off++) {
		rc = http_chunked_feed(&d, &lim, in + off, 1, &used, &data, &dl);
		assert_true(rc >= 0);
		assert_int_equal(used, 1);
		if (rc == HTTP_CHUNK_DATA) {
			memcpy(out + olen, data, dl);
			olen += dl;
		}
		if (off == n - rest - 1)
			assert_int_equal(rc, HTTP_CHUNK_DONE);
		else
			assert_int_not_equal(rc, HTTP_CHUNK_DONE);
	}
	assert_int_equal(olen, strlen(want));
	assert_memory_equal(out, want, olen);
}

static int chunk_bad(const char *in)
{
	struct http_chunked d;
	size_t off = 0, n = strlen(in), used, dl;
	const char *data;
	int rc;

	http_chunked_init(&d);
	do {
		rc = http_chunked_feed(&d, &lim, in + off, n - off, &used, &data, &dl);
		off += used;
	} while (rc == HTTP_CHUNK_DATA);
	return rc;
}

static void test_chunked(void **state)
{
	static const char a[] = "5\r\nhello\r\n6;ext=1;q=\"x y\"\r\n world\r\n0\r\n\r\nNEXT";
	static const char b[] = "A\r\n0123456789\r\n0\r\nX-Trailer: yes\r\nX-T2: \t v\r\n\r\n";

	(void)state;
	chunk_check(a, sizeof(a) - 1, "hello world", 4);
	chunk_check(b, sizeof(b) - 1, "0123456789", 0);
	assert_int_equal(chunk_bad("5\r\nhelloX\r\n0\r\n\r\n"), HTTP_CHUNK_ERROR);
	assert_int_equal(chunk_bad("5\nhello\r\n0\r\n\r\n"), HTTP_CHUNK_ERROR);
	assert_int_equal(chunk_bad("5\r\nhello\n0\r\n\r\n"), HTTP_CHUNK_ERROR);
	assert_int_equal(chunk_bad("-5\r\nhello\r\n0\r\n\r\n"), HTTP_CHUNK_ERROR);
	assert_int_equal(chunk_bad("0x5\r\nhello\r\n0\r\n\r\n"), HTTP_CHUNK_ERROR);
	assert_int_equal(chunk_bad("ffffffffffffffffff\r\n"), HTTP_CHUNK_ERROR);
	assert_int_equal(chunk_bad("5 junk\r\nhello\r\n0\r\n\r\n"), HTTP_CHUNK_ERROR);
	assert_int_equal(chunk_bad("0\r\nX: a\r\n b\r\n\r\n"), HTTP_CHUNK_ERROR);
	assert_int_equal(chunk_bad("0\r\nX a\r\n\r\n"), HTTP_CHUNK_ERROR);
	assert_int_equal(chunk_bad("0\r\n\r\r"), HTTP_CHUNK_ERROR);
	assert_int_equal(chunk_bad("5;\x01\r\nhello\r\n0\r\n\r\n"), HTTP_CHUNK_ERROR);
}

static void test_dates_and_lists(void **state)
{
	char buf[64];

	(void)state;
	assert_int_equal(http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", 29), 784111777);
	assert_int_equal(http_date_parse("Sunday, 06-Nov-94 08:49:37 GMT", 30), 784111777);
	assert_int_equal(http_date_parse("Sun Nov  6 08:49:37 1994", 24), 784111777);
	assert_int_equal(http_date_parse("yesterday", 9), -1);
	assert_int_equal(http_date_parse("0", 1), -1);
	assert_int_equal(http_date_format(784111777, buf, sizeof(buf)), 29);
	assert_string_equal(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
	assert_true(http_list_has("a, b ,Chunked", 13, "chunked"));
	assert_false(http_list_has("a, bchunked", 11, "chunked"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_smuggling_table),
		cmocka_unit_test(test_good_request_all_splits),
		cmocka_unit_test(test_versions_and_connection),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_responses),
		cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_dates_and_lists),
	};

	http_limits_default(&lim);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
