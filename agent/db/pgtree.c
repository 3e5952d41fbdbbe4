/*
 * pgtree.c - statement facts from libpg_query's parse tree (see pgtree.h).
 *
 * How: pg_query_parse gives the raw parse tree as JSON; jansson reads it
 * and a few bounded recursive walks pick out RangeVars (tables), the
 * targets of writes, predicates (A_Expr, NullTest, BoolExpr) and sort
 * keys. Literal values: the A_Const nodes give each literal's type and
 * its location in the text. To learn which $n pg_query_normalize gave a
 * literal, the normalised text is parsed too and its ParamRefs, taken in
 * text order, are paired with the literals in text order (the
 * normaliser replaces each literal where it stands, so the orders agree;
 * the numbers themselves follow the parser's walk, not the text). Numbers
 * are read from the original text at the literal's location, because
 * libpg_query's JSON output drops negative integers; strings come from
 * the tree, already unescaped.
 *
 * What not: no catalog lookups (an unqualified column in a query over
 * several tables stays unresolved: table -1), no semantic analysis (a
 * CTE name in FROM is reported as a table), and parameters are only
 * recovered when the normalised text parses again (e.g. `DATE '...'`
 * literals normalise to `DATE $1`, which does not: params_ok is false).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <pg_query.h>
#include "hotpath/pgtree.h"

struct lit {
	long loc;
	bool null;
	char val[PGT_PARAM_MAX];
	bool ok;
};

struct walk {
	struct pgt_info *o;
	const char *sql;
	size_t len;
	struct lit *lits;
	unsigned n_lits, max_lits;
	long *plocs;                    /* ParamRef locations (normalised tree) */
	int *pnums;
	unsigned n_params;
	bool lits_overflow;
};

static const char *jstr(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static void copy_name(char *dst, const char *src)
{
	snprintf(dst, PGT_NAME_MAX, "%s", src ? src : "");
}

/* ---- tables ----------------------------------------------------------------- */

static int table_add(struct pgt_table *arr, unsigned *n, bool *trunc, const json_t *rv)
{
	const char *name = jstr(rv, "relname"), *schema = jstr(rv, "schemaname");
	const json_t *alias = json_object_get(rv, "alias");
	const char *aname = NULL;

	if (!name)
		return -1;
	if (json_is_object(alias))
		aname = jstr(alias, "aliasname");
	for (unsigned i = 0; i < *n; i++) {
		if (!strcmp(arr[i].name, name) && !strcmp(arr[i].schema, schema ? schema : "") &&
		    !strcmp(arr[i].alias, aname ? aname : ""))
			return (int)i;
	}
	if (*n >= PGT_MAX_TABLES) {
		*trunc = true;
		return -1;
	}
	copy_name(arr[*n].schema, schema);
	copy_name(arr[*n].name, name);
	copy_name(arr[*n].alias, aname);
	return (int)(*n)++;
}

/* Every RangeVar under v goes to the read list. */
/*
 * What a visitor does with one member of a parse-tree object: true when it
 * consumed the member, false to have walk_tree descend into it.
 */
typedef bool (*visit_fn)(struct walk *w, const char *key, json_t *x, unsigned depth);

/* Depth-first over a libpg_query JSON tree, bounded by PGT_DEPTH_MAX: every
 * member of every object goes to visit. */
static void walk_tree(struct walk *w, const json_t *v, unsigned depth, visit_fn visit)
{
	const char *k;
	json_t *x;
	size_t i;

	if (depth > PGT_DEPTH_MAX)
		return;
	if (json_is_array(v)) {
		json_array_foreach(v, i, x)
			walk_tree(w, x, depth + 1, visit);
		return;
	}
	if (!json_is_object(v))
		return;
	json_object_foreach((json_t *)v, k, x)
		if (!visit(w, k, x, depth))
			walk_tree(w, x, depth + 1, visit);
}

/* Every RangeVar goes to the read list. */
static bool visit_table(struct walk *w, const char *k, json_t *x, unsigned depth)
{
	(void)depth;
	if ((!strcmp(k, "RangeVar") || !strcmp(k, "relation")) && json_is_object(x) &&
	    jstr(x, "relname"))
		(void)table_add(w->o->read, &w->o->n_read, &w->o->tables_truncated, x);
	return false;
}

/* ---- literals ----------------------------------------------------------------- */

/* A number as written at sql[loc]: [-] blanks digits [. digits] [e [+-] digits]. */
static bool number_at(const char *sql, size_t len, long loc, char *out, size_t outlen)
{
	size_t i = (size_t)loc, o = 0;

	if (loc < 0 || (size_t)loc >= len)
		return false;
	if (sql[i] == '-' || sql[i] == '+') {
		if (sql[i] == '-')
			out[o++] = '-';
		i++;
		while (i < len && isspace((unsigned char)sql[i]))
			i++;
	}
	while (i < len && o + 1 < outlen) {
		char ch = sql[i];

		if (isdigit((unsigned char)ch) || ch == '.' || ch == '_') {
			if (ch != '_')
				out[o++] = ch;
		} else if ((ch == 'e' || ch == 'E') && o && i + 1 < len) {
			out[o++] = ch;
			if (sql[i + 1] == '-' || sql[i + 1] == '+')
				out[o++] = sql[++i];
		} else {
			break;
		}
		i++;
	}
	out[o] = '\0';
	return o > 0 && isdigit((unsigned char)out[o - 1]);
}

static void lit_add(struct walk *w, const json_t *ac)
{
	const json_t *loc = json_object_get(ac, "location"), *x;
	struct lit *l;

	if (!json_is_integer(loc))
		return;
	if (w->n_lits >= w->max_lits) {
		w->lits_overflow = true;
		return;
	}
	l = &w->lits[w->n_lits++];
	memset(l, 0, sizeof(*l));
	l->loc = (long)json_integer_value(loc);
	l->ok = true;
	if (json_is_true(json_object_get(ac, "isnull"))) {
		l->null = true;
	} else if ((x = json_object_get(ac, "sval"))) {
		const char *s = jstr(x, "sval");

		if (s && strlen(s) >= PGT_PARAM_MAX)
			l->ok = false;
		else
			snprintf(l->val, sizeof(l->val), "%s", s ? s : "");
	} else if ((x = json_object_get(ac, "bsval"))) {
		const char *s = jstr(x, "bsval");

		if (!s || strlen(s) >= PGT_PARAM_MAX)
			l->ok = false;
		else
			snprintf(l->val, sizeof(l->val), "%s", s);
	} else if (json_object_get(ac, "boolval")) {
		snprintf(l->val, sizeof(l->val), "%s",
			 json_is_true(json_object_get(json_object_get(ac, "boolval"), "boolval")) ?
			 "true" : "false");
	} else if (json_object_get(ac, "ival") || json_object_get(ac, "fval")) {
		l->ok = number_at(w->sql, w->len, l->loc, l->val, sizeof(l->val));
	} else {
		l->ok = false;
	}
}

static bool visit_lit(struct walk *w, const char *k, json_t *x, unsigned depth)
{
	(void)depth;
	if (strcmp(k, "A_Const") || !json_is_object(x))
		return false;
	lit_add(w, x);
	return true;
}

static bool visit_paramref(struct walk *w, const char *k, json_t *x, unsigned depth)
{
	const json_t *num, *loc;

	(void)depth;
	if (strcmp(k, "ParamRef") || !json_is_object(x))
		return false;
	num = json_object_get(x, "number");
	loc = json_object_get(x, "location");
	if (w->n_params >= w->max_lits) {
		w->lits_overflow = true;
		return true;
	}
	w->pnums[w->n_params] = json_is_integer(num) ? (int)json_integer_value(num) : 0;
	w->plocs[w->n_params++] = json_is_integer(loc) ? (long)json_integer_value(loc) : -1;
	return true;
}

static int cmp_lit(const void *a, const void *b)
{
	const struct lit *x = a, *y = b;

	return (x->loc > y->loc) - (x->loc < y->loc);
}

/* Pair literals with the normalised text's $n; sets params_ok. */
static void pair_params(struct walk *w, json_t *orig)
{
	struct pgt_info *o = w->o;
	PgQueryNormalizeResult nr;
	PgQueryParseResult pr;
	json_t *ntree = NULL;
	bool any_param_before;

	o->params_ok = false;
	w->n_lits = 0;
	w->n_params = 0;
	walk_tree(w, orig, 0, visit_paramref);
	any_param_before = w->n_params > 0;
	walk_tree(w, orig, 0, visit_lit);
	if (w->lits_overflow || any_param_before)
		return;     /* the client sent $n itself: its Bind has the values */
	if (w->n_lits == 0) {
		o->params_ok = true;
		return;
	}
	qsort(w->lits, w->n_lits, sizeof(*w->lits), cmp_lit);
	{
		char *s = strndup(w->sql, w->len);

		if (!s)
			return;
		nr = pg_query_normalize(s);
		free(s);
	}
	if (nr.error || !nr.normalized_query) {
		pg_query_free_normalize_result(nr);
		return;
	}
	pr = pg_query_parse(nr.normalized_query);
	pg_query_free_normalize_result(nr);
	if (!pr.error && pr.parse_tree)
		ntree = json_loads(pr.parse_tree, 0, NULL);
	pg_query_free_parse_result(pr);
	if (!ntree)
		return;
	w->n_params = 0;
	walk_tree(w, ntree, 0, visit_paramref);
	json_decref(ntree);
	if (w->lits_overflow || w->n_params != w->n_lits || w->n_lits > PGT_MAX_PARAMS)
		return;
	/* ParamRefs in text order (insertion sort: at most PGT_MAX_PARAMS). */
	for (unsigned i = 1; i < w->n_params; i++) {
		for (unsigned j = i; j > 0 && w->plocs[j - 1] > w->plocs[j]; j--) {
			long tl = w->plocs[j];
			int tn = w->pnums[j];

			w->plocs[j] = w->plocs[j - 1];
			w->pnums[j] = w->pnums[j - 1];
			w->plocs[j - 1] = tl;
			w->pnums[j - 1] = tn;
		}
	}
	memset(o->params, 0, sizeof(o->params));
	for (unsigned i = 0; i < w->n_params; i++) {
		int num = w->pnums[i];

		if (num < 1 || num > (int)w->n_lits || !w->lits[i].ok || w->lits[i].null)
			return;   /* NULL literals: EXPLAIN would need a type; rare */
		snprintf(o->params[num - 1], PGT_PARAM_MAX, "%s", w->lits[i].val);
	}
	o->n_params = w->n_lits;
	o->params_ok = true;
}

/* ---- predicate columns ---------------------------------------------------- */

static int resolve_table(const struct pgt_info *o, const char *schema, const char *qual)
{
	int found = -1;

	if (!qual) {
		/* unqualified: the only table, if there is one */
		return o->n_read == 1 ? 0 : -1;
	}
	for (unsigned i = 0; i < o->n_read; i++) {
		const struct pgt_table *t = &o->read[i];

		if (schema && strcmp(t->schema, schema))
			continue;
		if ((t->alias[0] && !strcmp(t->alias, qual)) || (!t->alias[0] && !strcmp(t->name, qual))) {
			if (found >= 0 && found != (int)i)
				return -1;
			found = (int)i;
		}
	}
	return found;
}

/* A ColumnRef's table and column; false for `*` or anything odd. */
static bool colref(const struct pgt_info *o, const json_t *node, int *table, const char **col)
{
	const json_t *cr = json_object_get(node, "ColumnRef"), *f;
	const char *parts[3];
	size_t n;

	if (!json_is_object(cr))
		return false;
	f = json_object_get(cr, "fields");
	n = json_array_size(f);
	if (n < 1 || n > 3)
		return false;
	for (size_t i = 0; i < n; i++) {
		const json_t *s = json_object_get(json_array_get(f, i), "String");

		parts[i] = json_is_object(s) ? jstr(s, "sval") : NULL;
		if (!parts[i])
			return false;
	}
	*col = parts[n - 1];
	*table = resolve_table(o, n == 3 ? parts[0] : NULL, n >= 2 ? parts[n - 2] : NULL);
	return true;
}

static void col_add(struct pgt_info *o, int table, const char *name, int use, bool desc)
{
	for (unsigned i = 0; i < o->n_cols; i++) {
		struct pgt_col *c = &o->cols[i];

		if (c->table == table && !strcmp(c->name, name)) {
			/* equality is the strongest use for an index's leading column */
			if (use == PGT_USE_EQ || (use == PGT_USE_RANGE && c->use == PGT_USE_ORDER))
				c->use = (uint8_t)use;
			return;
		}
	}
	if (o->n_cols >= PGT_MAX_COLS)
		return;
	o->cols[o->n_cols].table = table;
	copy_name(o->cols[o->n_cols].name, name);
	o->cols[o->n_cols].use = (uint8_t)use;
	o->cols[o->n_cols].desc = desc;
	o->n_cols++;
}

/* Strip a TypeCast around an expression ('x'::text, col::date). */
static const json_t *uncast(const json_t *n)
{
	for (int i = 0; i < 4 && json_is_object(n); i++) {
		const json_t *tc = json_object_get(n, "TypeCast");

		if (!json_is_object(tc))
			break;
		n = json_object_get(tc, "arg");
	}
	return n;
}

static bool is_value(const json_t *n)
{
	n = uncast(n);
	return json_is_object(n) && (json_object_get(n, "A_Const") || json_object_get(n, "ParamRef") ||
				     json_object_get(n, "List") || json_object_get(n, "FuncCall"));
}

static void walk_pred(struct walk *w, const json_t *n, unsigned depth)
{
	const json_t *x;

	if (depth > PGT_DEPTH_MAX || !json_is_object(n))
		return;
	if ((x = json_object_get(n, "BoolExpr"))) {
		const json_t *a;
		size_t i;

		json_array_foreach(json_object_get(x, "args"), i, a)
			walk_pred(w, a, depth + 1);
		return;
	}
	if ((x = json_object_get(n, "NullTest"))) {
		int t;
		const char *c;

		if (colref(w->o, uncast(json_object_get(x, "arg")), &t, &c))
			col_add(w->o, t, c, PGT_USE_EQ, false);
		return;
	}
	if ((x = json_object_get(n, "A_Expr"))) {
		const char *kind = jstr(x, "kind");
		const json_t *l = uncast(json_object_get(x, "lexpr")), *r = uncast(json_object_get(x, "rexpr"));
		const json_t *nm = json_object_get(json_object_get(json_array_get(json_object_get(x, "name"), 0)
								  , "String"), "sval");
		const char *op = json_is_string(nm) ? json_string_value(nm) : "";
		int tl, tr, use;
		const char *cl, *cr;
		bool lc, rc;

		if (!kind)
			return;
		lc = colref(w->o, l, &tl, &cl);
		rc = colref(w->o, r, &tr, &cr);
		if (!strcmp(kind, "AEXPR_OP")) {
			if (!strcmp(op, "="))
				use = PGT_USE_EQ;
			else if (!strcmp(op, "<") || !strcmp(op, ">") || !strcmp(op, "<=") ||
				 !strcmp(op, ">="))
				use = PGT_USE_RANGE;
			else
				return;
			if (lc && rc) {
				if (use == PGT_USE_EQ) {
					col_add(w->o, tl, cl, PGT_USE_JOIN, false);
					col_add(w->o, tr, cr, PGT_USE_JOIN, false);
				}
			} else if (lc && is_value(r)) {
				col_add(w->o, tl, cl, use, false);
			} else if (rc && is_value(l)) {
				col_add(w->o, tr, cr, use, false);
			}
		} else if (!strcmp(kind, "AEXPR_IN") && lc) {
			col_add(w->o, tl, cl, PGT_USE_EQ, false);
		} else if ((!strcmp(kind, "AEXPR_BETWEEN") || !strcmp(kind, "AEXPR_LIKE")) && lc) {
			col_add(w->o, tl, cl, PGT_USE_RANGE, false);
		}
	}
}

static bool visit_cols(struct walk *w, const char *k, json_t *x, unsigned depth)
{
	if (!strcmp(k, "whereClause") || !strcmp(k, "quals")) {
		walk_pred(w, x, depth + 1);
	} else if (!strcmp(k, "sortClause") && json_is_array(x)) {
		json_t *sb;
		size_t i;

		json_array_foreach(x, i, sb) {
			const json_t *s = json_object_get(sb, "SortBy");
			const char *dir, *c;
			int t;

			if (!json_is_object(s) || !colref(w->o, json_object_get(s, "node"), &t, &c))
				continue;
			dir = jstr(s, "sortby_dir");
			col_add(w->o, t, c, PGT_USE_ORDER, dir && !strcmp(dir, "SORTBY_DESC"));
		}
	}
	return false;
}

/* ---- statements ----------------------------------------------------------------- */

/* A statement's WITH: bare in libpg_query 15's JSON, wrapped in older ones. */
static const json_t *with_clause(const json_t *st)
{
	const json_t *w = json_object_get(st, "withClause"), *inner = json_object_get(w, "WithClause");

	return inner ? inner : w;
}

static bool cte_writes(const json_t *sel)
{
	const json_t *wc = with_clause(sel), *cte;
	size_t i;

	json_array_foreach(json_object_get(wc, "ctes"), i, cte) {
		const json_t *q = json_object_get(json_object_get(cte, "CommonTableExpr"), "ctequery");

		if (json_object_get(q, "InsertStmt") || json_object_get(q, "UpdateStmt") ||
		    json_object_get(q, "DeleteStmt") || json_object_get(q, "MergeStmt"))
			return true;
	}
	return false;
}

static void add_written(struct pgt_info *o, const json_t *rv)
{
	const json_t *r = json_object_get(rv, "RangeVar");

	/* lists hold {"RangeVar": {...}}; a statement's "relation" is bare */
	if (!json_is_object(r))
		r = rv;
	if (json_is_object(r) && jstr(r, "relname"))
		(void)table_add(o->written, &o->n_written, &o->tables_truncated, r);
}

static const char *const write_stmts[] = { "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt" };

/* Targets of data-modifying CTEs in a statement's WITH. */
static void add_cte_writes(struct pgt_info *o, const json_t *st)
{
	const json_t *wc = with_clause(st), *cte;
	size_t i;

	json_array_foreach(json_object_get(wc, "ctes"), i, cte) {
		const json_t *q = json_object_get(json_object_get(cte, "CommonTableExpr"), "ctequery");

		for (unsigned k = 0; k < HP_ARRAY_SIZE(write_stmts); k++) {
			const json_t *ws = json_object_get(q, write_stmts[k]);

			if (ws)
				add_written(o, json_object_get(ws, "relation"));
		}
	}
}

/* Kind of one statement node; written tables recorded. */
static int stmt_kind(struct pgt_info *o, const json_t *stmt)
{
	const json_t *x;

	if ((x = json_object_get(stmt, "SelectStmt"))) {
		if (cte_writes(x)) {
			add_cte_writes(o, x);
			return PGT_WRITE;
		}
		if (json_object_get(x, "lockingClause") || json_object_get(x, "intoClause"))
			return PGT_SELECT_LOCKING;
		return PGT_SELECT;
	}
	for (unsigned k = 0; k < HP_ARRAY_SIZE(write_stmts); k++) {
		if ((x = json_object_get(stmt, write_stmts[k]))) {
			add_written(o, json_object_get(x, "relation"));
			add_cte_writes(o, x);
			return PGT_WRITE;
		}
	}
	if ((x = json_object_get(stmt, "TruncateStmt"))) {
		const json_t *r;
		size_t i;

		json_array_foreach(json_object_get(x, "relations"), i, r)
			add_written(o, r);
		return PGT_WRITE;
	}
	if ((x = json_object_get(stmt, "CopyStmt"))) {
		if (json_is_true(json_object_get(x, "is_from"))) {
			add_written(o, json_object_get(x, "relation"));
			return PGT_WRITE;
		}
		return PGT_OTHER;
	}
	if (json_object_get(stmt, "TransactionStmt"))
		return PGT_TXN;
	/* Any other statement may change what a read returns in ways its text
	 * does not name (EXECUTE, CALL, DO, DROP/ALTER, GRANT, CREATE RULE or
	 * POLICY or FUNCTION, ...), except these, which change no rows nor
	 * what a query may see. */
	{
		static const char *const inert[] = {
			"VariableSetStmt", "VariableShowStmt", "DiscardStmt", "ListenStmt",
			"UnlistenStmt", "NotifyStmt", "PrepareStmt", "DeallocateStmt",
			"DeclareCursorStmt", "FetchStmt", "ClosePortalStmt", "LockStmt",
			"VacuumStmt", "CheckPointStmt", "ExplainStmt", "CreateStmt", "IndexStmt",
			"CreateSeqStmt", "CommentStmt", "ConstraintsSetStmt",
		};
		void *it = json_object_iter((json_t *)stmt);
		const char *node = it ? json_object_iter_key(it) : "";
		bool known = false;

		for (unsigned k = 0; k < HP_ARRAY_SIZE(inert) && !known; k++)
			known = !strcmp(node, inert[k]);
		if (!known)
			o->opaque = true;
	}
	return PGT_OTHER;
}

int pgt_analyze(const char *sql, size_t len, struct pgt_info *out, char *err, size_t errlen)
{
	struct lit *lits = NULL;
	long *plocs = NULL;
	int *pnums = NULL;
	PgQueryParseResult pr;
	json_t *tree = NULL, *stmts, *s;
	struct walk w;
	char *text;
	size_t i;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (len > PGT_SQL_MAX) {
		snprintf(err, errlen, "query text longer than %u bytes", PGT_SQL_MAX);
		return -EINVAL;
	}
	if (memchr(sql, '\0', len)) {
		snprintf(err, errlen, "query text contains a NUL byte");
		return -EINVAL;
	}
	text = strndup(sql, len);
	if (!text)
		return -ENOMEM;
	pr = pg_query_parse(text);
	if (pr.error) {
		snprintf(err, errlen, "does not parse: %s", pr.error->message ? pr.error->message : "?");
		rc = -EINVAL;
		goto out;
	}
	tree = json_loads(pr.parse_tree, 0, NULL);
	if (!tree) {
		snprintf(err, errlen, "parse tree is not JSON");
		rc = -EINVAL;
		goto out;
	}
	lits = calloc(4 * PGT_MAX_PARAMS, sizeof(*lits));
	plocs = calloc(4 * PGT_MAX_PARAMS, sizeof(*plocs));
	pnums = calloc(4 * PGT_MAX_PARAMS, sizeof(*pnums));
	if (!lits || !plocs || !pnums) {
		rc = -ENOMEM;
		goto out;
	}
	memset(&w, 0, sizeof(w));
	w.o = out;
	w.sql = text;
	w.len = len;
	w.lits = lits;
	w.plocs = plocs;
	w.pnums = pnums;
	w.max_lits = 4 * PGT_MAX_PARAMS;
	stmts = json_object_get(tree, "stmts");
	out->kind = PGT_SELECT;
	json_array_foreach(stmts, i, s) {
		int k = stmt_kind(out, json_object_get(s, "stmt"));

		out->n_stmts++;
		if (k == PGT_WRITE || out->kind == PGT_WRITE)
			out->kind = PGT_WRITE;
		else if (k == PGT_SELECT_LOCKING || out->kind == PGT_SELECT_LOCKING)
			out->kind = PGT_SELECT_LOCKING;
		else if (k != PGT_SELECT)
			out->kind = k;
	}
	if (!out->n_stmts)
		out->kind = PGT_OTHER;
	walk_tree(&w, stmts, 0, visit_table);
	walk_tree(&w, stmts, 0, visit_cols);
	pair_params(&w, stmts);
out:
	json_decref(tree);
	free(lits);
	free(plocs);
	free(pnums);
	pg_query_free_parse_result(pr);
	free(text);
	return rc;
}

char *pgt_normalize(const char *sql, size_t len)
{
	PgQueryNormalizeResult nr;
	char *s = strndup(sql, len), *r = NULL;

	if (!s)
		return NULL;
	nr = pg_query_normalize(s);
	if (!nr.error && nr.normalized_query)
		r = strdup(nr.normalized_query);
	pg_query_free_normalize_result(nr);
	free(s);
	return r;
}

bool pgt_maybe_write(const char *sql, size_t len)
{
	static const char *const reads[] = { "select", "values", "table", "show", "explain" };
	size_t i = 0, n = 0;
	char word[8];

	while (i < len) {
		if (isspace((unsigned char)sql[i]) || sql[i] == '(') {
			i++;
		} else if (sql[i] == '-' && i + 1 < len && sql[i + 1] == '-') {
			while (i < len && sql[i] != '\n')
				i++;
		} else if (sql[i] == '/' && i + 1 < len && sql[i + 1] == '*') {
			const char *e = memmem(sql + i + 2, len - i - 2, "*/", 2);

			if (!e)
				return true;
			i = (size_t)(e - sql) + 2;
		} else {
			break;
		}
	}
	while (i < len && n < sizeof(word) - 1 && isalpha((unsigned char)sql[i]))
		word[n++] = (char)tolower((unsigned char)sql[i++]);
	word[n] = '\0';
	if (i < len && isalpha((unsigned char)sql[i]))
		return true;
	for (unsigned k = 0; k < HP_ARRAY_SIZE(reads); k++)
		if (!strcmp(word, reads[k]))
			return false;
	return true;
}

const char *pgt_kind_name(int kind)
{
	switch (kind) {
	case PGT_SELECT: return "select";
	case PGT_SELECT_LOCKING: return "select_locking";
	case PGT_WRITE: return "write";
	case PGT_TXN: return "transaction";
	default: return "other";
	}
}
