/*
 * test_pgwire.c - PostgreSQL protocol framing and messages: bounds of
 * pgw_frame, startup-phase packets, Parse/Bind/Describe/Close readers and
 * the writers the pooler uses (a written message re-reads the same).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>
#include "hotpath/pgwire.h"

static void test_frame(void **state)
{
	const uint8_t q[] = { 'Q', 0, 0, 0, 13, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '1', 0 };
	const uint8_t bad[] = { 'Q', 0, 0, 0, 3 };
	const uint8_t big[] = { 'D', 0x7f, 0, 0, 0 };
	size_t total;
	char type;

	(void)state;
	assert_int_equal(pgw_frame(q, 4, 1024, &type, &total), PGW_NEED_MORE);
	assert_int_equal(pgw_frame(q, 5, 1024, &type, &total), 0);      /* header is enough */
	assert_int_equal(type, 'Q');
	assert_int_equal(total, sizeof(q));
	assert_int_equal(pgw_frame(bad, 5, 1024, &type, &total), -EPROTO);
	assert_int_equal(pgw_frame(big, 5, 1 << 20, &type, &total), -EMSGSIZE);
}

static void test_startup(void **state)
{
	struct buf b;
	struct pgw_startup st;
	const char *why;
	const char *kv[] = { "user", "app", "database", "db", "application_name", "x", NULL, NULL };
	const uint8_t ssl[] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };
	const uint8_t v2[] = { 0, 0, 0, 8, 0, 2, 0, 0 };
	int n;

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(pgw_put_startup(&b, kv), 0);
	n = pgw_startup_parse((const uint8_t *)buf_head(&b), buf_used(&b), &st, &why);
	assert_int_equal(n, (int)buf_used(&b));
	assert_int_equal(st.code, PGW_PROTO_V3);
	assert_int_equal(st.nparams, 3);
	assert_string_equal(pgw_startup_get(&st, "database"), "db");
	/* incomplete: need more */
	assert_int_equal(pgw_startup_parse((const uint8_t *)buf_head(&b), buf_used(&b) - 1, &st,
					   &why), 0);
	/* no user */
	buf_reset(&b);
	assert_int_equal(pgw_put_startup(&b, (const char *[]){ "database", "x", NULL, NULL }), 0);
	assert_int_equal(pgw_startup_parse((const uint8_t *)buf_head(&b), buf_used(&b), &st, &why),
			 -EPROTO);
	assert_non_null(strstr(why, "user"));
	assert_int_equal(pgw_startup_parse(ssl, sizeof(ssl), &st, &why), 8);
	assert_int_equal(st.code, PGW_SSL_REQUEST);
	assert_int_equal(pgw_startup_parse(v2, sizeof(v2), &st, &why), -EPROTONOSUPPORT);
	buf_reset(&b);
	assert_int_equal(pgw_put_cancel(&b, 77, 0xdeadbeef), 0);
	assert_int_equal(pgw_startup_parse((const uint8_t *)buf_head(&b), buf_used(&b), &st, &why),
			 16);
	assert_int_equal(st.cancel_pid, 77);
	assert_int_equal(st.cancel_key, 0xdeadbeef);
	buf_free(&b);
}

static void test_extended_messages(void **state)
{
	const uint8_t rest[] = "SELECT $1\0\0\1\0\0\0\x17";
	struct buf b;
	struct pgw_parse p;
	struct pgw_bind bi;
	struct pgw_target t;
	size_t total;
	char type;

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(pgw_put_parse(&b, "hp_x", rest, sizeof(rest) - 1), 0);
	assert_int_equal(pgw_frame((const uint8_t *)buf_head(&b), buf_used(&b), 4096, &type, &total), 0);
	assert_int_equal(type, 'P');
	assert_int_equal(total, buf_used(&b));
	assert_int_equal(pgw_parse_parse((const uint8_t *)buf_head(&b) + 5, total - 5, &p), 0);
	assert_string_equal(p.name, "hp_x");
	assert_string_equal(p.query, "SELECT $1");
	assert_int_equal(p.ntypes, 1);
	assert_int_equal(p.rest_len, sizeof(rest) - 1);
	/* types count promising more than there is */
	assert_int_equal(pgw_parse_parse((const uint8_t *)"s\0q\0\0\2\0\0\0\1", 11, &p), -EPROTO);

	buf_reset(&b);
	assert_int_equal(pgw_put_bind(&b, "", "stmt", (const uint8_t *)"\0\0\0\0\0\0", 6), 0);
	assert_int_equal(pgw_parse_bind((const uint8_t *)buf_head(&b) + 5, buf_used(&b) - 5, &bi), 0);
	assert_string_equal(bi.portal, "");
	assert_string_equal(bi.stmt, "stmt");
	assert_int_equal(bi.rest_len, 6);

	buf_reset(&b);
	assert_int_equal(pgw_put_target(&b, 'D', 'S', "s1"), 0);
	assert_int_equal(pgw_parse_target((const uint8_t *)buf_head(&b) + 5, buf_used(&b) - 5, &t), 0);
	assert_int_equal(t.kind, 'S');
	assert_string_equal(t.name, "s1");
	assert_int_equal(pgw_parse_target((const uint8_t *)"Xa", 3, &t), -EPROTO);
	buf_free(&b);
}

/* Exec/Sync written by hand: the pooler never sends them itself. */
static void put_exec_sync(struct buf *b, uint32_t max_rows)
{
	long at = pgw_begin(b, 'E');

	assert_true(at >= 0);
	assert_int_equal(pgw_put_str(b, ""), 0);
	assert_int_equal(pgw_put_u32(b, max_rows), 0);
	pgw_end(b, at);
	assert_int_equal(pgw_put_empty(b, 'S'), 0);
}

static void test_batch(void **state)
{
	const uint8_t rest[] = "SELECT $1\0\0\0";
	const uint8_t brest[] = "\0\0\0\1\0\0\0\1" "5\0\0";
	struct pgw_batch bt;
	struct buf b;
	const uint8_t *h;

	(void)state;
	buf_init(&b, 4096);
	/* Parse Bind Describe(P) Execute Sync, then more */
	assert_int_equal(pgw_put_parse(&b, "", rest, sizeof(rest) - 1), 0);
	assert_int_equal(pgw_put_bind(&b, "", "", brest, sizeof(brest) - 1), 0);
	assert_int_equal(pgw_put_target(&b, 'D', 'P', ""), 0);
	put_exec_sync(&b, 0);
	size_t whole = buf_used(&b);
	assert_int_equal(pgw_put_query(&b, "SELECT 1"), 0);
	h = (const uint8_t *)buf_head(&b);
	assert_int_equal(pgw_parse_batch(h, buf_used(&b), 4096, &bt), 1);
	assert_true(bt.has_parse);
	assert_string_equal(bt.parse.query, "SELECT $1");
	assert_int_equal(bt.bind.rest_len, sizeof(brest) - 1);
	assert_int_equal(bt.desc, 'P');
	assert_int_equal(bt.max_rows, 0);
	assert_int_equal(bt.total, whole);
	/* every cut short of the Sync: not whole yet */
	for (size_t cut = 0; cut < whole; cut++)
		assert_int_equal(pgw_parse_batch(h, cut, 4096, &bt), 0);
	/* a message over the bound */
	assert_int_equal(pgw_parse_batch(h, whole, 16, &bt), 0);

	/* Bind of a named statement, no Describe, a row limit */
	buf_reset(&b);
	assert_int_equal(pgw_put_bind(&b, "", "s1", brest, sizeof(brest) - 1), 0);
	put_exec_sync(&b, 10);
	h = (const uint8_t *)buf_head(&b);
	assert_int_equal(pgw_parse_batch(h, buf_used(&b), 4096, &bt), 1);
	assert_false(bt.has_parse);
	assert_string_equal(bt.bind.stmt, "s1");
	assert_int_equal(bt.desc, 0);
	assert_int_equal(bt.max_rows, 10);

	/* other shapes: Parse and Sync alone, two Executes, a Query */
	buf_reset(&b);
	assert_int_equal(pgw_put_parse(&b, "s1", rest, sizeof(rest) - 1), 0);
	assert_int_equal(pgw_put_empty(&b, 'S'), 0);
	assert_int_equal(pgw_parse_batch((const uint8_t *)buf_head(&b), buf_used(&b), 4096, &bt), 0);
	buf_reset(&b);
	assert_int_equal(pgw_put_bind(&b, "", "", brest, sizeof(brest) - 1), 0);
	put_exec_sync(&b, 0);
	b.len -= 5;             /* drop the Sync, add an Execute and a Sync */
	put_exec_sync(&b, 0);
	assert_int_equal(pgw_parse_batch((const uint8_t *)buf_head(&b), buf_used(&b), 4096, &bt), 0);
	buf_reset(&b);
	assert_int_equal(pgw_put_query(&b, "SELECT 1"), 0);
	assert_int_equal(pgw_parse_batch((const uint8_t *)buf_head(&b), buf_used(&b), 4096, &bt), 0);
	buf_free(&b);
}

static void test_error_response(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(pgw_put_error(&b, "FATAL", "28P01", "nope"), 0);
	assert_int_equal(buf_head(&b)[0], 'E');
	assert_string_equal(pgw_error_field((const uint8_t *)buf_head(&b) + 5, buf_used(&b) - 5, 'C'),
			    "28P01");
	assert_string_equal(pgw_error_field((const uint8_t *)buf_head(&b) + 5, buf_used(&b) - 5, 'M'),
			    "nope");
	assert_null(pgw_error_field((const uint8_t *)buf_head(&b) + 5, buf_used(&b) - 5, 'D'));
	assert_null(pgw_error_field((const uint8_t *)"Mx", 2, 'M'));     /* no terminator */
	/* a bounded buffer refuses and leaves no partial message */
	buf_free(&b);
	buf_init(&b, 8);
	assert_int_not_equal(pgw_put_error(&b, "FATAL", "28P01", "too long for 8 bytes"), 0);
	assert_int_equal(buf_used(&b), 0);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame),
		cmocka_unit_test(test_startup),
		cmocka_unit_test(test_extended_messages),
		cmocka_unit_test(test_batch),
		cmocka_unit_test(test_error_response),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
