/* test_buf.c - the bounded buffer: growth, the hard limit, consume/compact. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "hotpath/buf.h"

static void test_append_and_consume(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 0);
	assert_int_equal(buf_append(&b, "hello ", 6), 0);
	assert_int_equal(buf_printf(&b, "%s %d", "world", 42), 0);
	assert_int_equal(buf_used(&b), 14);
	assert_memory_equal(buf_head(&b), "hello world 42", 14);
	buf_consume(&b, 6);
	assert_memory_equal(buf_head(&b), "world 42", 8);
	buf_compact(&b);
	assert_int_equal(b.off, 0);
	assert_memory_equal(b.data, "world 42", 8);
	buf_consume(&b, 100);
	assert_int_equal(buf_used(&b), 0);
	buf_free(&b);
}

static void test_hard_limit(void **state)
{
	struct buf b;
	char chunk[100];

	(void)state;
	memset(chunk, 'x', sizeof(chunk));
	buf_init(&b, 250);
	assert_int_equal(buf_append(&b, chunk, 100), 0);
	assert_int_equal(buf_append(&b, chunk, 100), 0);
	assert_int_equal(buf_append(&b, chunk, 100), -ENOBUFS);
	assert_int_equal(buf_used(&b), 200);     /* unchanged on failure */
	assert_int_equal(buf_append(&b, chunk, 50), 0);
	assert_true(b.cap <= 250);
	assert_int_equal(buf_printf(&b, "x"), -ENOBUFS);
	/* consuming makes room again without growing past max */
	buf_consume(&b, 150);
	assert_int_equal(buf_append(&b, chunk, 100), 0);
	assert_true(b.cap <= 250);
	buf_free(&b);
}

static void test_overflow_sizes(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 0);
	assert_int_equal(buf_append(&b, "a", 1), 0);
	assert_int_equal(buf_reserve(&b, SIZE_MAX), -ENOBUFS);
	buf_free(&b);
}

/* A command copied in one block outlives its source, NUL bytes included. */
static void test_argv_dup(void **state)
{
	char src[3][8] = { "SET", "k\0y", "" };
	const char *argv[3] = { src[0], src[1], src[2] };
	size_t len[3] = { 3, 3, 0 };
	struct buf_argv *a;

	(void)state;
	a = buf_argv_dup(3, argv, len);
	assert_non_null(a);
	memset(src, 'x', sizeof(src));
	assert_int_equal(a->argc, 3);
	assert_int_equal(a->len[0], 3);
	assert_memory_equal(a->argv[0], "SET", 3);
	assert_int_equal(a->len[1], 3);
	assert_memory_equal(a->argv[1], "k\0y", 3);
	assert_int_equal(a->len[2], 0);
	free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_and_consume),
		cmocka_unit_test(test_hard_limit),
		cmocka_unit_test(test_overflow_sizes),
		cmocka_unit_test(test_argv_dup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
