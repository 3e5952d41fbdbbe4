/*
 * test_route_norm.c - route normalisation and hashing (httproute.c), the
 * HTTP/RESP first-bytes classifiers (wireproto.c) and the PostgreSQL
 * message walker (pgmsg.c): the userspace twins of what
 * bpf/observe.bpf.c decides in the kernel.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include "hotpath/httproute.h"
#include "hotpath/pgmsg.h"
#include "hotpath/wireproto.h"

static void norm_is(const char *in, const char *want)
{
	char out[256];
	int n = route_normalise(in, strlen(in), out, sizeof(out));

	assert_true(n >= 0);
	assert_string_equal(out, want);
	assert_int_equal((size_t)n, strlen(want));
}

static void test_normalise(void **state)
{
	(void)state;
	norm_is("/users/42", "/users/{id}");
	norm_is("/users/42/orders/7?x=1", "/users/{id}/orders/{id}");
	norm_is("/users/me", "/users/me");
	norm_is("/c/0a1b2c3d4e5f", "/c/{id}");
	norm_is("/c/deadbeef", "/c/deadbeef");           /* hex without a digit: a word */
	norm_is("/c/abc123", "/c/abc123");               /* short hex stays */
	norm_is("/o/123e4567-e89b-12d3-a456-426614174000/x", "/o/{id}/x");
	norm_is("/o/123e4567-e89b-12d3-a456-42661417400", "/o/123e4567-e89b-12d3-a456-42661417400");
	norm_is("/", "/");
	norm_is("/a//b/", "/a//b/");
	norm_is("/v1/items#frag", "/v1/items");
	norm_is("/x HTTP/1.1", "/x");
	norm_is("", "");
}

static void test_normalise_bounds(void **state)
{
	char big[400], out[300], tiny[4];

	(void)state;
	memset(big, 'a', sizeof(big));
	big[0] = '/';
	assert_int_equal(route_normalise(big, sizeof(big), out, sizeof(out)), ROUTE_PATH_MAX);
	assert_int_equal(route_normalise("/users/42", 9, tiny, sizeof(tiny)), -ENOBUFS);
	assert_string_equal(tiny, "");
}

static void test_hash_consistent(void **state)
{
	const char *raw = "/users/42/orders/123e4567-e89b-12d3-a456-426614174000?q=1";
	char out[256];
	int n;

	(void)state;
	n = route_normalise(raw, strlen(raw), out, sizeof(out));
	assert_true(n > 0);
	assert_true(route_hash("GET", 3, raw, strlen(raw)) == route_hash("GET", 3, out, (size_t)n));
	assert_true(route_hash("GET", 3, "/users/1", 8) == route_hash("GET", 3, "/users/999", 10));
	assert_true(route_hash("GET", 3, "/users/1", 8) != route_hash("POST", 4, "/users/1", 8));
	assert_true(route_hash("GET", 3, "/users/1", 8) != route_hash("GET", 3, "/users/1/", 9));
	assert_true(route_hash("GET", 3, "/a/b", 4) != route_hash("GET", 3, "/ab", 3));
	/* the constant the kernel computes for "GET /" */
	assert_true(route_hash("GET", 3, "/", 1) == route_hash("GET", 3, "/?x", 3));
}

static void test_http_classify(void **state)
{
	const char *req = "DELETE /users/7 HTTP/1.1\r\nHost: x\r\n\r\n", *m, *p;
	size_t ml, pl;

	(void)state;
	assert_int_equal(wire_sniff(req, strlen(req)), WIRE_HTTP);
	assert_int_equal(wire_http_request(req, strlen(req), &m, &ml, &p, &pl), 0);
	assert_int_equal(ml, 6);
	assert_memory_equal(p, "/users/7", pl);
	assert_int_equal(wire_http_method_len("GETX /", 6), 0);
	assert_int_equal(wire_http_request("HELLO", 5, &m, &ml, &p, &pl), -EINVAL);
	assert_int_equal(wire_http_status("HTTP/1.1 503 Service Unavailable\r\n", 34), 503);
	assert_int_equal(wire_http_status("HTTP/1.0 200 OK", 15), 200);
	assert_int_equal(wire_http_status("HTTP/1.1 2x0 OK", 15), -EINVAL);
	assert_int_equal(wire_http_status("HTTP/1.1", 8), -EINVAL);
}

static void test_resp_classify(void **state)
{
	char cmd[33];
	const char *get = "*2\r\n$3\r\nget\r\n$3\r\nkey\r\n";
	bool err;

	(void)state;
	assert_int_equal(wire_sniff(get, strlen(get)), WIRE_RESP);
	assert_int_equal(wire_resp_command(get, strlen(get), cmd, sizeof(cmd)), 3);
	assert_string_equal(cmd, "GET");
	assert_int_equal(wire_resp_command("PING\r\n", 6, cmd, sizeof(cmd)), 4);
	assert_string_equal(cmd, "PING");
	assert_int_equal(wire_resp_command("*1\r\n:3\r\n", 8, cmd, sizeof(cmd)), -EINVAL);
	assert_int_equal(wire_resp_command("*1\r\n", 4, cmd, sizeof(cmd)), -EINVAL);
	assert_true(wire_resp_reply("-ERR x\r\n", 8, &err) && err);
	assert_true(wire_resp_reply("+OK\r\n", 5, &err) && !err);
	assert_true(wire_resp_reply("$3\r\nabc\r\n", 9, &err) && !err);
	assert_false(wire_resp_reply("hello", 5, &err));
	assert_false(wire_resp_reply("", 0, &err));
}

static void test_pg_classify(void **state)
{
	static const char startup[] = "\0\0\0\x08\0\x03\0\0";
	static const char q[] = "Q\0\0\0\x0eSELECT 1;\0";
	static const char parse[] = "P\0\0\0\x13s1\0SELECT $1\0\0\0";
	static const char bind[] = "B\0\0\0\x0c\0s1\0\0\0\0\0";
	const char *t;
	size_t tl;
	bool trunc;

	(void)state;
	assert_int_equal(wire_sniff(startup, 8), WIRE_POSTGRES);
	assert_int_equal(wire_sniff(q, sizeof(q) - 1), WIRE_POSTGRES);
	assert_int_equal(pgmsg_query_text(q, sizeof(q) - 1, &t, &tl, &trunc), 0);
	assert_int_equal(tl, 9);
	assert_memory_equal(t, "SELECT 1;", 9);
	assert_false(trunc);
	assert_int_equal(pgmsg_query_text(q, 10, &t, &tl, &trunc), 0);   /* truncated capture */
	assert_true(trunc);
	assert_int_equal(tl, 5);
	assert_int_equal(pgmsg_query_text(parse, sizeof(parse) - 1, &t, &tl, &trunc), 0);
	assert_memory_equal(t, "SELECT $1", 9);
	assert_int_equal(pgmsg_query_text(bind, sizeof(bind) - 1, &t, &tl, &trunc), -ENOENT);
	assert_int_equal(pgmsg_query_text("Q\0\0\0\x02", 5, &t, &tl, &trunc), -EINVAL);
}

static void test_pg_backend(void **state)
{
	/* T D C Z for "SELECT 5" then an error response */
	static const char ok[] =
		"C\0\0\0\x0dSELECT 5\0"
		"Z\0\0\0\x05I";
	static const char bad[] = "E\0\0\0\x0cSERROR\0\0Z\0\0\0\x05I";
	struct pgmsg_summary s;

	(void)state;
	assert_int_equal(pgmsg_summarise_backend(ok, sizeof(ok) - 1, &s), 0);
	assert_int_equal(s.rows, 5);
	assert_true(s.ready);
	assert_int_equal(s.status, 'I');
	assert_int_equal(s.errors, 0);
	assert_int_equal(pgmsg_summarise_backend(bad, sizeof(bad) - 1, &s), 0);
	assert_int_equal(s.errors, 1);
	assert_int_equal(s.rows, -1);
	assert_int_equal(pgmsg_tag_rows("INSERT 0 3", 10), 3);
	assert_int_equal(pgmsg_tag_rows("UPDATE 12\0", 10), 12);
	assert_int_equal(pgmsg_tag_rows("BEGIN", 5), -1);
	assert_int_equal(pgmsg_tag_rows("5", 1), -1);
	assert_int_equal(pgmsg_summarise_backend("Z\0\0\0\x01", 5, &s), -EINVAL);
}

static void test_guess_port(void **state)
{
	(void)state;
	assert_int_equal(wire_guess_port(5432), WIRE_POSTGRES);
	assert_int_equal(wire_guess_port(6379), WIRE_RESP);
	assert_int_equal(wire_guess_port(8080), WIRE_HTTP);
	assert_int_equal(wire_guess_port(22), WIRE_UNKNOWN);
	assert_string_equal(wire_proto_name(WIRE_POSTGRES), "postgres");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normalise),
		cmocka_unit_test(test_normalise_bounds),
		cmocka_unit_test(test_hash_consistent),
		cmocka_unit_test(test_http_classify),
		cmocka_unit_test(test_resp_classify),
		cmocka_unit_test(test_pg_classify),
		cmocka_unit_test(test_pg_backend),
		cmocka_unit_test(test_guess_port),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
