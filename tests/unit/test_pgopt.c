/*
 * test_pgopt.c - the pure parts of query analysis: EXPLAIN (FORMAT JSON)
 * findings on plans captured from PostgreSQL 15 (tests/unit/data/
 * explain_*.json), statement facts from libpg_query's parse tree (kinds,
 * tables read and written, predicate columns, literals paired with the
 * normaliser's $n), CommandComplete row counts and Bind parameters.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "hotpath/pgplan.h"
#include "hotpath/pgtree.h"
#include "hotpath/qstats.h"

#define DATA_DIR "tests/unit/data"

static char *slurp(const char *name, size_t *len)
{
	char path[256];
	FILE *f;
	char *buf = malloc(1 << 20);

	snprintf(path, sizeof(path), "%s/%s", DATA_DIR, name);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(buf);
	*len = fread(buf, 1, (1 << 20) - 1, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

/* (out of line: GCC cannot see that find() returned non-NULL) */
static __attribute__((noinline)) bool has(const char *s, const char *sub)
{
	return strstr(s, sub) != NULL;
}

static const struct pgplan_finding *find(const struct pgplan_report *r, int kind)
{
	for (unsigned i = 0; i < r->n_findings; i++)
		if (r->findings[i].kind == kind)
			return &r->findings[i];
	return NULL;
}

static void test_plan_seq_scan(void **state)
{
	struct pgplan_report r;
	const struct pgplan_finding *f;
	char err[256];
	size_t n;
	char *j = slurp("explain_seqscan_analyze.json", &n);

	(void)state;
	assert_int_equal(pgplan_analyze(j, n, NULL, &r, err, sizeof(err)), 0);
	assert_true(r.analyzed);
	assert_true(r.total_cost > 1000);
	assert_true(r.execution_ms > 0);
	f = find(&r, PGPLAN_SEQ_SCAN);
	assert_non_null(f);
	assert_string_equal(f->relation, "t");   /* Schema only with VERBOSE */
	assert_true(has(f->detail, "Seq Scan on t read"));
	assert_true(f->removed_rows > 1000);
	assert_int_equal(r.n_seq_scans, 1);
	assert_int_equal(r.n_indexes, 0);
	free(j);

	/* without ANALYZE the scan is still listed, from estimates */
	j = slurp("explain_seqscan_plain.json", &n);
	assert_int_equal(pgplan_analyze(j, n, NULL, &r, err, sizeof(err)), 0);
	assert_false(r.analyzed);
	assert_non_null(find(&r, PGPLAN_SEQ_SCAN));
	assert_null(find(&r, PGPLAN_ROW_ESTIMATE));
	free(j);
}

static void test_plan_spills_and_loops(void **state)
{
	struct pgplan_report r;
	struct pgplan_thresholds th = { .nested_loop_rows = 100 };
	const struct pgplan_finding *f;
	char err[256];
	size_t n;
	char *j = slurp("explain_sort_spill.json", &n);

	(void)state;
	assert_int_equal(pgplan_analyze(j, n, NULL, &r, err, sizeof(err)), 0);
	f = find(&r, PGPLAN_SORT_SPILL);
	assert_non_null(f);
	assert_true(has(f->detail, "spilled"));
	free(j);

	j = slurp("explain_misestimate_nestloop.json", &n);
	assert_int_equal(pgplan_analyze(j, n, NULL, &r, err, sizeof(err)), 0);
	assert_null(find(&r, PGPLAN_NESTED_LOOP));      /* 200 inner rows: below the default */
	f = find(&r, PGPLAN_ROW_ESTIMATE);
	assert_non_null(f);
	assert_true(f->actual_rows >= 100 && f->est_rows <= 2);
	assert_int_equal(pgplan_analyze(j, n, &th, &r, err, sizeof(err)), 0);
	assert_non_null(find(&r, PGPLAN_NESTED_LOOP));
	free(j);

	/* a Hash in several batches; an index scan is reported by name */
	{
		static const char hash[] =
			"[{\"Plan\": {\"Node Type\": \"Hash Join\", \"Total Cost\": 10.5, "
			"\"Plan Rows\": 5, \"Plans\": [{\"Node Type\": \"Index Scan\", "
			"\"Index Name\": \"<13975>btree_t_a\", \"Relation Name\": \"t\", "
			"\"Plan Rows\": 5}, {\"Node Type\": \"Hash\", \"Plan Rows\": 9, "
			"\"Actual Rows\": 9, \"Actual Loops\": 1, \"Hash Batches\": 8, "
			"\"Original Hash Batches\": 1, \"Peak Memory Usage\": 4100}]}}]";

		assert_int_equal(pgplan_analyze(hash, strlen(hash), NULL, &r, err, sizeof(err)), 0);
		assert_non_null(find(&r, PGPLAN_HASH_SPILL));
		assert_true(pgplan_uses_index(&r, "btree_t_a"));
		assert_false(pgplan_uses_index(&r, "btree_t_b"));
		assert_string_equal(r.top_node, "Hash Join");
	}
}

static void test_plan_bad_input(void **state)
{
	struct pgplan_report r;
	char err[256];

	(void)state;
	assert_int_equal(pgplan_analyze("", 0, NULL, &r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not JSON"));
	assert_int_equal(pgplan_analyze("[{}]", 4, NULL, &r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no \"Plan\""));
	assert_int_equal(pgplan_analyze("[{\"Plan\":{\"Node Type\":\"Result\",\"Total Cost\":-1}}]",
					51, NULL, &r, err, sizeof(err)), -EINVAL);
	assert_int_equal(pgplan_analyze("{\"a\":1,\"a\":2}", 13, NULL, &r, err, sizeof(err)),
			 -EINVAL);
}

static void test_tree_select(void **state)
{
	static const char q[] = "SELECT o.id FROM orders o JOIN customers c ON c.id = o.cust_id "
				"WHERE o.email = 'a''b' AND o.total > -1.5 AND c.flag = true "
				"AND o.n IN (1, 2) ORDER BY o.created DESC LIMIT 10";
	struct pgt_info *t = malloc(sizeof(*t));
	char err[256];

	(void)state;
	assert_non_null(t);
	assert_int_equal(pgt_analyze(q, strlen(q), t, err, sizeof(err)), 0);
	assert_int_equal(t->kind, PGT_SELECT);
	assert_int_equal(t->n_read, 2);
	assert_string_equal(t->read[0].name, "orders");
	assert_string_equal(t->read[0].alias, "o");
	assert_int_equal(t->n_written, 0);
	/* columns: join keys, equality, range, IN, ORDER BY, resolved by alias */
	{
		int seen = 0;

		for (unsigned i = 0; i < t->n_cols; i++) {
			const struct pgt_col *c = &t->cols[i];

			if (!strcmp(c->name, "email") && c->table == 0 && c->use == PGT_USE_EQ)
				seen |= 1;
			if (!strcmp(c->name, "total") && c->table == 0 && c->use == PGT_USE_RANGE)
				seen |= 2;
			if (!strcmp(c->name, "cust_id") && c->table == 0 && c->use == PGT_USE_JOIN)
				seen |= 4;
			if (!strcmp(c->name, "id") && c->table == 1 && c->use == PGT_USE_JOIN)
				seen |= 8;
			if (!strcmp(c->name, "created") && c->use == PGT_USE_ORDER && c->desc)
				seen |= 16;
			if (!strcmp(c->name, "n") && c->use == PGT_USE_EQ)
				seen |= 32;
		}
		assert_int_equal(seen, 63);
	}
	/* literals in $n order, numbers read from the text (negative too) */
	assert_true(t->params_ok);
	assert_int_equal(t->n_params, 6);
	{
		char *norm = pgt_normalize(q, strlen(q));

		assert_non_null(norm);
		assert_non_null(strstr(norm, "o.email = $1"));
		free(norm);
	}
	assert_string_equal(t->params[0], "a'b");
	assert_string_equal(t->params[1], "-1.5");
	assert_string_equal(t->params[2], "true");
	free(t);
}

static void test_tree_limit_numbering(void **state)
{
	/* the normaliser numbers OFFSET before LIMIT: the pairing follows it */
	static const char q[] = "SELECT * FROM t WHERE a = 0 AND b = false LIMIT 5 OFFSET 7";
	struct pgt_info *t = malloc(sizeof(*t));
	char err[256], *norm;

	(void)state;
	assert_int_equal(pgt_analyze(q, strlen(q), t, err, sizeof(err)), 0);
	assert_true(t->params_ok);
	assert_int_equal(t->n_params, 4);
	norm = pgt_normalize(q, strlen(q));
	assert_string_equal(norm, "SELECT * FROM t WHERE a = $1 AND b = $2 LIMIT $4 OFFSET $3");
	assert_string_equal(t->params[0], "0");
	assert_string_equal(t->params[1], "false");
	assert_string_equal(t->params[2], "7");
	assert_string_equal(t->params[3], "5");
	free(norm);
	free(t);
}

static void test_tree_writes(void **state)
{
	static const struct { const char *q; int kind; const char *w0; unsigned nw; bool opaque; }
	cases[] = {
		{ "UPDATE public.orders SET x = 1 WHERE id = 3", PGT_WRITE, "orders", 1 },
		{ "INSERT INTO t2 (a) VALUES (1)", PGT_WRITE, "t2", 1 },
		{ "DELETE FROM t3 WHERE a < 4", PGT_WRITE, "t3", 1 },
		{ "TRUNCATE t4, t5", PGT_WRITE, "t4", 2 },
		{ "COPY t6 FROM STDIN", PGT_WRITE, "t6", 1 },
		{ "COPY t6 TO STDOUT", PGT_OTHER, NULL, 0 },
		{ "WITH d AS (DELETE FROM t7 RETURNING *) SELECT * FROM d", PGT_WRITE, "t7", 1 },
		{ "SELECT * FROM t8 FOR UPDATE", PGT_SELECT_LOCKING, NULL, 0 },
		{ "BEGIN", PGT_TXN, NULL, 0 },
		{ "SET search_path = x", PGT_OTHER, NULL, 0, false },
		{ "SELECT 1; UPDATE t9 SET a = 1", PGT_WRITE, "t9", 1 },
		/* what these run is not in the text */
		{ "EXECUTE upd(1)", PGT_OTHER, NULL, 0, true },
		{ "CALL p(2)", PGT_OTHER, NULL, 0, true },
		{ "DO $$BEGIN DELETE FROM t10; END$$", PGT_OTHER, NULL, 0, true },
		{ "PREPARE u AS UPDATE t11 SET a = 1; EXECUTE u", PGT_OTHER, NULL, 0, true },
		{ "DROP TABLE t12", PGT_OTHER, NULL, 0, true },
		{ "REVOKE SELECT ON t13 FROM app", PGT_OTHER, NULL, 0, true },
		{ "ALTER TABLE t14 RENAME TO t15", PGT_OTHER, NULL, 0, true },
		{ "CREATE INDEX ON t16 (a)", PGT_OTHER, NULL, 0, false },
		{ "SHOW work_mem", PGT_OTHER, NULL, 0, false },
		{ "LISTEN ch", PGT_OTHER, NULL, 0, false },
	};
	struct pgt_info *t = malloc(sizeof(*t));
	char err[256];

	(void)state;
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(pgt_analyze(cases[i].q, strlen(cases[i].q), t, err, sizeof(err)), 0);
		assert_int_equal(t->kind, cases[i].kind);
		assert_int_equal(t->n_written, cases[i].nw);
		assert_int_equal(t->opaque, cases[i].opaque);
		if (cases[i].w0)
			assert_string_equal(t->written[0].name, cases[i].w0);
	}
	assert_int_equal(pgt_analyze("SELEC 1", 7, t, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "does not parse"));
	assert_int_equal(pgt_analyze("SELECT\0 1", 9, t, err, sizeof(err)), -EINVAL);
	free(t);

	assert_false(pgt_maybe_write("  /* c */ -- x\n (SELECT 1)", 26));
	assert_false(pgt_maybe_write("select 1", 8));
	assert_true(pgt_maybe_write("selectx", 7));
	assert_true(pgt_maybe_write("UPDATE t SET a = 1", 18));
	assert_true(pgt_maybe_write("WITH x AS (DELETE FROM t) SELECT 1", 34));
	assert_true(pgt_maybe_write("/* open", 7));
}

static void test_tag_rows_and_bind(void **state)
{
	uint64_t rows = 0;
	char vals[4][PGT_PARAM_MAX];
	bool nulls[4];
	unsigned n;

	(void)state;
	assert_true(qstats_tag_rows("SELECT 5", 9, &rows));
	assert_int_equal(rows, 5);
	assert_true(qstats_tag_rows("INSERT 0 3", 10, &rows));
	assert_int_equal(rows, 3);
	assert_false(qstats_tag_rows("BEGIN", 6, &rows));
	assert_false(qstats_tag_rows("5", 1, &rows));
	assert_false(qstats_tag_rows("X 123456789012345678901", 23, &rows));

	/* one text format for all, two params, the second NULL */
	{
		static const uint8_t b[] = { 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, '4', '2',
					     0xff, 0xff, 0xff, 0xff, 0, 0 };

		assert_int_equal(qstats_bind_params(b, sizeof(b), vals, nulls, 4, &n), 0);
		assert_int_equal(n, 2);
		assert_string_equal(vals[0], "42");
		assert_true(nulls[1]);
	}
	{
		static const uint8_t bin[] = { 0, 1, 0, 1, 0, 1, 0, 0, 0, 4, 0, 0, 0, 42, 0, 0 };
		static const uint8_t shortb[] = { 0, 0, 0, 1, 0, 0, 0, 9, 'x' };
		static const uint8_t fmts[] = { 0, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0 };

		assert_int_equal(qstats_bind_params(bin, sizeof(bin), vals, nulls, 4, &n), -ENOTSUP);
		assert_int_equal(qstats_bind_params(shortb, sizeof(shortb), vals, nulls, 4, &n),
				 -EINVAL);
		assert_int_equal(qstats_bind_params(fmts, sizeof(fmts), vals, nulls, 4, &n), -EINVAL);
	}
}

static uint64_t mk(const char *s)
{
	return qstats_memo_key(s, strlen(s), 7);
}

static void test_memo_key(void **state)
{
	(void)state;
	/* literals and comments do not matter ... */
	assert_true(mk("SELECT * FROM t WHERE a = 1 AND b = 'x'") ==
		    mk("SELECT * FROM t WHERE a = 42.5e3 AND b = 'it''s'-- note"));
	assert_true(mk("SELECT $$a$$, $q$b$q$/* c /* nested */ */ FROM t") ==
		    mk("SELECT $$zz$$, $q$y$$y$q$ FROM t"));
	assert_true(mk("SELECT E'a\\'b' FROM t") == mk("SELECT E'' FROM t"));
	/* ... identifiers, parameters and structure do */
	assert_true(mk("SELECT a1 FROM t") != mk("SELECT a2 FROM t"));
	assert_true(mk("SELECT \"1\" FROM t") != mk("SELECT \"2\" FROM t"));
	assert_true(mk("SELECT * FROM t WHERE a = $1") != mk("SELECT * FROM t WHERE a = $2"));
	assert_true(mk("SELECT * FROM t WHERE a = 1") != mk("SELECT * FROM t WHERE b = 1"));
	/* a standard string ends at its quote: backslash is not an escape */
	assert_true(mk("SELECT 'a\\', b FROM t") != mk("SELECT 'a\\', c FROM t"));
	/* unterminated: the text as it is */
	assert_true(mk("SELECT 'open") != mk("SELECT 'opem"));
	assert_true(mk("SELECT 1x") != mk("SELECT 2x"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan_seq_scan),
		cmocka_unit_test(test_plan_spills_and_loops),
		cmocka_unit_test(test_plan_bad_input),
		cmocka_unit_test(test_tree_select),
		cmocka_unit_test(test_tree_limit_numbering),
		cmocka_unit_test(test_tree_writes),
		cmocka_unit_test(test_tag_rows_and_bind),
		cmocka_unit_test(test_memo_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
