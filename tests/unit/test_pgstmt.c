/*
 * test_pgstmt.c - statement-name mapping for transaction pooling: client
 * maps, per-server LRU sets with eviction, and the queue of owed responses
 * (hidden answers swallowed, fake answers produced in order, skipping
 * after an error up to Sync).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>
#include "hotpath/pgstmt.h"

static void test_client_map(void **state)
{
	struct pgs_map m;
	struct pgs_stmt *a, *b, *c;

	(void)state;
	assert_int_equal(pgs_map_init(&m, 2, 1024), 0);
	assert_int_equal(pgs_map_put(&m, "s1", "SELECT 1\0\0", 11, &a), 0);
	assert_int_equal(pgs_map_put(&m, "s2", "SELECT 1\0\0", 11, &b), 0);
	/* same text, same server name: clients share server statements */
	assert_string_equal(a->sname, b->sname);
	assert_int_equal(strncmp(a->sname, "hp_", 3), 0);
	assert_int_equal(strlen(a->sname), 35);
	assert_int_equal(pgs_map_put(&m, "s3", "SELECT 2\0\0", 11, &c), -ENOSPC);
	assert_true(pgs_map_del(&m, "s1"));
	assert_false(pgs_map_del(&m, "s1"));
	assert_int_equal(pgs_map_put(&m, "s3", "SELECT 2\0\0", 11, &c), 0);
	assert_string_not_equal(c->sname, b->sname);
	assert_ptr_equal(pgs_map_get(&m, "s3"), c);
	assert_null(pgs_map_get(&m, "s1"));
	/* redefining a name replaces it */
	assert_int_equal(pgs_map_put(&m, "s3", "SELECT 3\0\0", 11, &c), 0);
	assert_int_equal(m.n, 2);
	/* DISCARD ALL seen: every statement goes, the bounds stay */
	pgs_map_clear(&m);
	assert_int_equal(m.n, 0);
	assert_int_equal(m.bytes, 0);
	assert_null(pgs_map_get(&m, "s3"));
	assert_int_equal(pgs_map_put(&m, "s1", "SELECT 1\0\0", 11, &a), 0);
	assert_int_equal(pgs_map_put(&m, "s2", "SELECT 1\0\0", 11, &b), 0);
	assert_int_equal(pgs_map_put(&m, "s4", "SELECT 4\0\0", 11, &c), -ENOSPC);
	pgs_map_free(&m);
}

static void test_server_set_lru(void **state)
{
	struct pgs_set s;
	struct pgs_id ids[5], ev;

	(void)state;
	for (int i = 0; i < 5; i++)
		ids[i] = pgs_id_of(&i, sizeof(i));
	assert_int_equal(pgs_set_init(&s, 3), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pgs_set_add(&s, &ids[i], false, &ev), 0);
	assert_true(pgs_set_has(&s, &ids[0]));          /* 0 is now the most recent */
	assert_int_equal(pgs_set_add(&s, &ids[3], false, &ev), 1);
	assert_memory_equal(&ev, &ids[1], sizeof(ev));  /* 1 was least recently used */
	assert_false(pgs_set_has(&s, &ids[1]));
	assert_true(pgs_set_has(&s, &ids[0]) && pgs_set_has(&s, &ids[2]) && pgs_set_has(&s, &ids[3]));
	pgs_set_del(&s, &ids[2]);
	assert_false(pgs_set_has(&s, &ids[2]));
	assert_true(pgs_set_has(&s, &ids[3]));
	assert_int_equal(pgs_set_add(&s, &ids[4], true, NULL), 0);
	pgs_set_clear(&s);
	assert_false(pgs_set_has(&s, &ids[0]));
	pgs_set_free(&s);
}

static int on(struct pgs_queue *q, char type, uint64_t *done)
{
	bool herr;

	return pgs_q_on_server(q, type, done, &herr);
}

static void test_queue_hidden_and_fake(void **state)
{
	struct pgs_set s;
	struct pgs_queue q;
	struct pgs_id id = pgs_id_of("x", 1);
	struct buf out;
	uint64_t done;

	(void)state;
	assert_int_equal(pgs_set_init(&s, 4), 0);
	assert_int_equal(pgs_q_init(&q, 16, &s), 0);
	buf_init(&out, 1024);
	/* Bind on a server that lacked the statement: injected Parse, then Bind,
	 * Execute, Sync; a later client Parse the server has: fake answer. */
	pgs_set_add(&s, &id, false, NULL);
	assert_int_equal(pgs_q_push(&q, PGS_PARSE_HIDDEN, &id, 0), 0);
	assert_int_equal(pgs_q_push(&q, PGS_BIND, NULL, 0), 0);
	assert_int_equal(pgs_q_push(&q, PGS_PARSE_FAKE, NULL, 0), 0);
	assert_int_equal(pgs_q_push(&q, PGS_EXECUTE, NULL, 0), 0);
	assert_int_equal(pgs_q_push(&q, PGS_SYNC, NULL, 42), 0);
	assert_int_equal(pgs_q_drain_fake(&q, &out), 0);
	assert_int_equal(buf_used(&out), 0);            /* not at the head yet */
	assert_int_equal(on(&q, '1', &done), PGS_SWALLOW);
	assert_int_equal(on(&q, '2', &done), PGS_FORWARD);
	assert_int_equal(pgs_q_drain_fake(&q, &out), 0);
	assert_int_equal(buf_used(&out), 5);            /* ParseComplete, in order */
	assert_int_equal(buf_head(&out)[0], '1');
	assert_int_equal(on(&q, 'D', &done), PGS_FORWARD);
	assert_int_equal(on(&q, 'S', &done), PGS_FORWARD);   /* ParameterStatus: any time */
	assert_int_equal(on(&q, 'C', &done), PGS_FORWARD);
	assert_int_equal(on(&q, 'Z', &done), PGS_FORWARD);
	assert_int_equal(done, 42);
	assert_int_equal(pgs_q_len(&q), 0);
	assert_int_equal(on(&q, '2', &done), -EPROTO);  /* answers nothing we sent */
	buf_free(&out);
	pgs_q_free(&q);
	pgs_set_free(&s);
}

static void test_queue_error_skips_to_sync(void **state)
{
	struct pgs_set s;
	struct pgs_queue q;
	struct pgs_id a = pgs_id_of("a", 1), b = pgs_id_of("b", 1);
	uint64_t done;

	(void)state;
	assert_int_equal(pgs_set_init(&s, 4), 0);
	assert_int_equal(pgs_q_init(&q, 16, &s), 0);
	pgs_set_add(&s, &a, false, NULL);
	pgs_set_add(&s, &b, false, NULL);
	assert_int_equal(pgs_q_push(&q, PGS_PARSE, &a, 0), 0);
	assert_int_equal(pgs_q_push(&q, PGS_PARSE_HIDDEN, &b, 0), 0);
	assert_int_equal(pgs_q_push(&q, PGS_BIND, NULL, 0), 0);
	assert_int_equal(pgs_q_push(&q, PGS_SYNC, NULL, 1), 0);
	/* the first Parse fails: the server skips to Sync; neither statement exists */
	assert_int_equal(on(&q, 'E', &done), PGS_FORWARD);
	assert_false(pgs_set_has(&s, &a));
	assert_false(pgs_set_has(&s, &b));
	assert_int_equal(pgs_q_len(&q), 1);
	assert_int_equal(on(&q, 'Z', &done), PGS_FORWARD);
	/* an error with no Sync queued: later messages are skipped until one */
	assert_int_equal(pgs_q_push(&q, PGS_BIND, NULL, 0), 0);
	assert_int_equal(on(&q, 'E', &done), PGS_FORWARD);
	assert_int_equal(pgs_q_push(&q, PGS_EXECUTE, NULL, 0), 1);
	assert_int_equal(pgs_q_push(&q, PGS_SYNC, NULL, 1), 0);
	assert_int_equal(on(&q, 'Z', &done), PGS_FORWARD);
	/* simple query: everything up to Z; hidden ones swallowed */
	assert_int_equal(pgs_q_push(&q, PGS_QUERY_HIDDEN, NULL, 0), 0);
	assert_int_equal(on(&q, 'C', &done), PGS_SWALLOW);
	assert_int_equal(on(&q, 'Z', &done), PGS_SWALLOW);
	assert_int_equal(done, 0);
	pgs_q_free(&q);
	pgs_set_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_client_map),
		cmocka_unit_test(test_server_set_lru),
		cmocka_unit_test(test_queue_hidden_and_fake),
		cmocka_unit_test(test_queue_error_skips_to_sync),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
