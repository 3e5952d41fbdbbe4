/*
 * pgadvise.c - EXPLAIN capture, plan findings and HypoPG index
 * recommendations for the slow queries the pooler measured (pgadvise.h).
 *
 * How a run goes, per database: take the fingerprints whose mean time
 * reaches query_analysis.slow_query_threshold, most total time first
 * (top_n of them); open one libpq connection with the [database.NAME]
 * login (application_name hotpath-advisor, statement_timeout set); make
 * sure HypoPG is there (CREATE EXTENSION IF NOT EXISTS when allowed).
 * For each fingerprint, the sample the pooler kept becomes a statement
 * with parameters - the client's own $n and Bind values, or the
 * normalised text ($1 for each literal) with the literals libpg_query
 * found as values - and is EXPLAINed through PQexecParams: parameters are
 * never spliced into SQL. Plain SELECTs are also run under EXPLAIN
 * ANALYZE inside BEGIN READ ONLY ... ROLLBACK for the findings that need
 * actual rows. Index candidates come from the parse tree (pgtree.h):
 * each column used by an equality, range, join or ORDER BY, and one
 * multi-column index of the equality columns followed by one range or
 * order column. Each candidate is created with hypopg_create_index
 * (its CREATE INDEX text passed as a parameter, identifiers quoted with
 * PQescapeIdentifier), the query EXPLAINed again, and kept only if the
 * plan uses it and its cost falls by min_improvement percent. The best
 * per query is recommended, ranked by calls x mean x fraction of cost
 * saved, with the CREATE INDEX CONCURRENTLY statement and the evidence.
 *
 * What not: no index on expressions, partial or covering indexes, no
 * check of write overhead of a new index, one recommendation per query
 * (the best), and the cost model is the planner's: the test that proves a
 * recommendation is measured time after creating the index.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <postgresql/libpq-fe.h>
#include "hotpath/config.h"
#include "hotpath/daemon.h"
#include "hotpath/log.h"
#include "hotpath/pgadvise.h"
#include "hotpath/pgplan.h"
#include "hotpath/pgtree.h"
#include "hotpath/pooler.h"
#include "hotpath/qstats.h"
#include "hotpath/qcache.h"
#include "hotpath/tasks.h"

#define MAX_JOBS 32
#define MAX_DBS 16
#define MAX_CANDIDATES 8
#define ERRS_KEPT 16

enum job_state { JOB_QUEUED = 0, JOB_RUNNING, JOB_DONE, JOB_FAILED };
static const char *const job_state_names[] = { "queued", "running", "succeeded", "failed" };

struct job {
	bool used;
	char id[24];
	char type[32];
	char db[64];                    /* "" = all */
	int state;
	uint64_t created_ms, started_ms, finished_ms;
	char error[256];
	json_t *result;                 /* under mu */
};

struct opts {
	uint64_t slow_us;
	unsigned top_n;
	bool analyze, create_ext;
	uint64_t timeout_ms;
	double min_improvement;         /* fraction */
	char cached_fps[HP_LIST_MAX];
};

struct pgadvise {
	struct hp_daemon *d;
	struct pooler *pooler;
	struct qstats *qs;
	struct tasks *tasks;
	struct opts o;
	uint64_t interval_ms;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_mutex_t run_mu;         /* one analysis at a time */
	pthread_t timer;
	bool timer_started, stopping;
	unsigned next_job;
	struct job jobs[MAX_JOBS];
	json_t *recs;                   /* array of index recommendations (all dbs) */
	json_t *plans;                  /* array of analysed queries with findings */
	json_t *errors;                 /* array of strings from the last run */
	uint64_t last_run_ms, runs, analysed, explain_errors;
};

struct job_arg {
	struct pgadvise *a;
	unsigned slot;
	char id[24];
};

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static double round3(double v)
{
	return (double)(int64_t)(v * 1000.0 + (v >= 0 ? 0.5 : -0.5)) / 1000.0;
}

/* ---- one run ------------------------------------------------------------------ */

struct run {
	struct pgadvise *a;
	const struct opts *o;           /* taken when the run started (reload may change a->o) */
	PGconn *conn;
	const char *db;
	bool hypopg;
	json_t *recs, *plans, *errors;
	unsigned analysed;
};

static void run_error(struct run *r, const char *fmt, ...) HP_PRINTF(2, 3);
static void run_error(struct run *r, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (json_array_size(r->errors) < ERRS_KEPT)
		json_array_append_new(r->errors, json_string(msg));
	log_info("advisor: %s", msg);
}

static const char *pg_msg(PGconn *c)
{
	const char *m = PQerrorMessage(c);
	static __thread char one[256];
	size_t n;

	snprintf(one, sizeof(one), "%s", m ? m : "?");
	n = strlen(one);
	while (n && (one[n - 1] == '\n' || one[n - 1] == ' '))
		one[--n] = '\0';
	return one;
}

/* Run a statement without a result worth keeping. */
static bool exec_ok(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

	PQclear(res);
	return ok;
}

/* EXPLAIN `stmt` with the entry's parameters. Returns malloc'd JSON text
 * or NULL (error in err). */
static char *explain(PGconn *c, const char *opts, const char *stmt, unsigned np,
		     const char *const *vals, char *err, size_t errlen)
{
	size_t n = strlen(opts) + strlen(stmt) + 16;
	char *sql = malloc(n), *out = NULL;
	PGresult *res;

	if (!sql)
		return NULL;
	snprintf(sql, n, "EXPLAIN (%s) %s", opts, stmt);
	res = PQexecParams(c, sql, (int)np, NULL, vals, NULL, NULL, 0);
	free(sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1) {
		snprintf(err, errlen, "%s", pg_msg(c));
		PQclear(res);
		return NULL;
	}
	out = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return out;
}

struct tbl {
	char oid[16];
	char qname[260];                /* quoted schema.name */
	char shown[130];                /* schema.name */
	double reltuples;
};

/* Resolve a parse-tree table to the catalog. */
static bool table_lookup(PGconn *c, const struct pgt_table *t, struct tbl *out)
{
	char *qs = NULL, *qn, name[200];
	const char *v[1];
	PGresult *res;
	bool ok;

	qn = PQescapeIdentifier(c, t->name, strlen(t->name));
	if (t->schema[0])
		qs = PQescapeIdentifier(c, t->schema, strlen(t->schema));
	if (!qn || (t->schema[0] && !qs)) {
		PQfreemem(qn);
		PQfreemem(qs);
		return false;
	}
	snprintf(name, sizeof(name), "%s%s%s", qs ? qs : "", qs ? "." : "", qn);
	PQfreemem(qn);
	PQfreemem(qs);
	v[0] = name;
	res = PQexecParams(c, "SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname), "
			   "n.nspname || '.' || c.relname, c.reltuples FROM pg_class c "
			   "JOIN pg_namespace n ON n.oid = c.relnamespace "
			   "WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'm', 'p')",
			   1, NULL, v, NULL, NULL, 0);
	ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
	if (ok) {
		snprintf(out->oid, sizeof(out->oid), "%s", PQgetvalue(res, 0, 0));
		snprintf(out->qname, sizeof(out->qname), "%s", PQgetvalue(res, 0, 1));
		snprintf(out->shown, sizeof(out->shown), "%s", PQgetvalue(res, 0, 2));
		out->reltuples = strtod(PQgetvalue(res, 0, 3), NULL);
	}
	PQclear(res);
	return ok;
}

static bool column_exists(PGconn *c, const char *oid, const char *col)
{
	const char *v[2] = { oid, col };
	PGresult *res = PQexecParams(c, "SELECT 1 FROM pg_attribute WHERE attrelid = $1::oid "
				     "AND attname = $2 AND attnum > 0 AND NOT attisdropped",
				     2, NULL, v, NULL, NULL, 0);
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;

	PQclear(res);
	return ok;
}

struct cand {
	int table;                      /* index in tbls */
	unsigned ncols;
	char cols[3][PGT_NAME_MAX];
};

static bool cand_same(const struct cand *x, const struct cand *y)
{
	if (x->table != y->table || x->ncols != y->ncols)
		return false;
	for (unsigned i = 0; i < x->ncols; i++)
		if (strcmp(x->cols[i], y->cols[i]))
			return false;
	return true;
}

static void cand_add(struct cand *cs, unsigned *n, const struct cand *c)
{
	for (unsigned i = 0; i < *n; i++)
		if (cand_same(&cs[i], c))
			return;
	if (*n < MAX_CANDIDATES)
		cs[(*n)++] = *c;
}

/* CREATE INDEX text for a candidate; `concurrently` for the user's copy. */
static int index_sql(PGconn *c, const struct tbl *t, const struct cand *k, bool concurrently,
		     char *out, size_t len)
{
	size_t o = (size_t)snprintf(out, len, "CREATE INDEX %sON %s (",
				    concurrently ? "CONCURRENTLY " : "", t->qname);

	for (unsigned i = 0; i < k->ncols; i++) {
		/* the server's quote_ident: quotes only where needed, as a DBA writes it */
		const char *v[1] = { k->cols[i] };
		PGresult *res = PQexecParams(c, "SELECT quote_ident($1)", 1, NULL, v, NULL, NULL, 0);

		if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
			PQclear(res);
			return -EIO;
		}
		o += (size_t)snprintf(out + o, o < len ? len - o : 0, "%s%s", i ? ", " : "",
				      PQgetvalue(res, 0, 0));
		PQclear(res);
	}
	o += (size_t)snprintf(out + o, o < len ? len - o : 0, ")");
	return o < len ? 0 : -ENAMETOOLONG;
}

/* Cost of the statement with candidate k hypothetically present. */
static bool try_candidate(struct run *r, const char *stmt, unsigned np, const char *const *vals,
			  const struct tbl *t, const struct cand *k, struct pgplan_report *after,
			  char *hypo_name, size_t hlen)
{
	char sql[1024], err[256];
	const char *v[1] = { sql };
	PGresult *res;
	char *plan;
	bool ok = false;

	if (index_sql(r->conn, t, k, false, sql, sizeof(sql)) != 0)
		return false;
	res = PQexecParams(r->conn, "SELECT indexname FROM hypopg_create_index($1)", 1, NULL, v,
			   NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		run_error(r, "%s: hypopg_create_index(%s) failed: %s", r->db, sql, pg_msg(r->conn));
		PQclear(res);
		return false;
	}
	snprintf(hypo_name, hlen, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	plan = explain(r->conn, "FORMAT JSON", stmt, np, vals, err, sizeof(err));
	if (plan && pgplan_analyze(plan, strlen(plan), NULL, after, err, sizeof(err)) == 0)
		ok = pgplan_uses_index(after, hypo_name);
	else
		run_error(r, "%s: EXPLAIN with a hypothetical index failed: %s", r->db, err);
	free(plan);
	(void)exec_ok(r->conn, "SELECT hypopg_reset()");
	return ok;
}

static json_t *findings_json(const struct pgplan_report *p)
{
	json_t *arr = json_array();

	for (unsigned i = 0; arr && i < p->n_findings; i++) {
		const struct pgplan_finding *f = &p->findings[i];

		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:f, s:f, s:f, s:f, s:s}",
			"type", pgplan_kind_name(f->kind), "node", f->node, "relation", f->relation,
			"estimated_rows", f->est_rows, "actual_rows", f->actual_rows,
			"rows_removed", f->removed_rows, "loops", f->loops, "detail", f->detail));
	}
	return arr;
}

static json_t *params_json(const struct qstats_entry *e)
{
	json_t *arr = json_array();

	for (unsigned i = 0; arr && i < e->n_params; i++)
		json_array_append_new(arr, e->param_null[i] ? json_null() : json_string(e->params[i]));
	return arr;
}

/* Analyse one fingerprint. */
static void analyse_one(struct run *r, const struct qstats_entry *e)
{
	const char *vals[PGT_MAX_PARAMS];
	struct pgplan_report before, analyzed, after, best_after;
	struct pgt_info *info = NULL;
	struct tbl tbls[PGT_MAX_TABLES];
	struct cand cands[MAX_CANDIDATES], best;
	int res[PGT_MAX_COLS];
	unsigned ncand = 0, np = e->n_params;
	char *stmt = NULL, *plan = NULL, err[512], best_hypo[128] = "";
	double mean_ms = e->calls ? (double)e->total_us / (double)e->calls / 1000.0 : 0;
	double best_frac = 0;
	bool have_best = false, have_analyzed = false;
	json_t *jplan;

	if (!e->sample || !e->fingerprint[0])
		return;
	if (!e->sample_params_ok) {
		run_error(r, "%s: query %s: the parameters of its sample could not be recovered "
			  "(binary Bind values, or literals libpg_query cannot renumber); not "
			  "analysed", r->db, e->fingerprint);
		return;
	}
	info = malloc(sizeof(*info));
	if (!info)
		return;
	if (pgt_analyze(e->sample, strlen(e->sample), info, err, sizeof(err)) != 0) {
		run_error(r, "%s: query %s: %s", r->db, e->fingerprint, err);
		goto out;
	}
	if (info->kind != PGT_SELECT && info->kind != PGT_SELECT_LOCKING && info->kind != PGT_WRITE)
		goto out;
	if (e->sample_is_bind || np == 0)
		stmt = strdup(e->sample);
	else
		stmt = pgt_normalize(e->sample, strlen(e->sample));
	if (!stmt)
		goto out;
	for (unsigned i = 0; i < np; i++)
		vals[i] = e->param_null[i] ? NULL : e->params[i];
	r->analysed++;
	plan = explain(r->conn, "FORMAT JSON", stmt, np, vals, err, sizeof(err));
	if (!plan || pgplan_analyze(plan, strlen(plan), NULL, &before, err, sizeof(err)) != 0) {
		run_error(r, "%s: query %s: EXPLAIN failed: %s", r->db, e->fingerprint, err);
		__atomic_fetch_add(&r->a->explain_errors, 1, __ATOMIC_RELAXED);
		goto out;
	}
	if (r->o->analyze && info->kind == PGT_SELECT && info->n_stmts == 1) {
		char *ap = NULL;

		if (exec_ok(r->conn, "BEGIN READ ONLY")) {
			ap = explain(r->conn, "ANALYZE, BUFFERS, FORMAT JSON", stmt, np, vals, err,
				     sizeof(err));
			(void)exec_ok(r->conn, "ROLLBACK");
		}
		if (ap && pgplan_analyze(ap, strlen(ap), NULL, &analyzed, err, sizeof(err)) == 0)
			have_analyzed = true;
		else
			run_error(r, "%s: query %s: EXPLAIN ANALYZE failed: %s", r->db, e->fingerprint,
				  err);
		free(ap);
	}
	/* tables in the catalog, and index candidates from the predicates */
	for (unsigned i = 0; i < info->n_read; i++)
		if (!table_lookup(r->conn, &info->read[i], &tbls[i]))
			tbls[i].oid[0] = '\0';
	/* each column's table, checked in the catalog (-1: not found) */
	for (unsigned i = 0; i < info->n_cols; i++) {
		const struct pgt_col *col = &info->cols[i];
		int t = col->table;

		if (t < 0) {
			for (unsigned k = 0; k < info->n_read; k++) {
				if (tbls[k].oid[0] && column_exists(r->conn, tbls[k].oid, col->name)) {
					t = (int)k;
					break;
				}
			}
		} else if (!tbls[t].oid[0] || !column_exists(r->conn, tbls[t].oid, col->name)) {
			t = -1;
		}
		res[i] = t;
	}
	/* first one composite per table (equality columns, then one range or
	 * order column), then every column alone, up to MAX_CANDIDATES */
	for (unsigned t = 0; t < info->n_read; t++) {
		struct cand c = { .table = (int)t };
		const char *tail = NULL;

		for (unsigned i = 0; i < info->n_cols; i++) {
			const struct pgt_col *col = &info->cols[i];

			if (res[i] != (int)t)
				continue;
			if ((col->use == PGT_USE_EQ || col->use == PGT_USE_JOIN) && c.ncols < 2)
				snprintf(c.cols[c.ncols++], PGT_NAME_MAX, "%s", col->name);
			else if ((col->use == PGT_USE_RANGE || col->use == PGT_USE_ORDER) && !tail)
				tail = col->name;
		}
		if (tail && c.ncols < 3)
			snprintf(c.cols[c.ncols++], PGT_NAME_MAX, "%s", tail);
		if (c.ncols >= 2)
			cand_add(cands, &ncand, &c);
	}
	for (unsigned i = 0; i < info->n_cols; i++) {
		struct cand c = { .table = res[i], .ncols = 1 };

		if (res[i] < 0)
			continue;
		snprintf(c.cols[0], PGT_NAME_MAX, "%s", info->cols[i].name);
		cand_add(cands, &ncand, &c);
	}
	if (r->hypopg) {
		for (unsigned i = 0; i < ncand; i++) {
			char hypo[128];
			double frac;

			if (!try_candidate(r, stmt, np, vals, &tbls[cands[i].table], &cands[i], &after,
					   hypo, sizeof(hypo)))
				continue;
			if (before.total_cost <= 0 || after.total_cost >= before.total_cost)
				continue;
			frac = 1.0 - after.total_cost / before.total_cost;
			/* a wider index must do clearly better than a narrower one */
			if (!have_best || frac > best_frac + 0.02 ||
			    (frac > best_frac - 0.02 && cands[i].ncols < best.ncols)) {
				have_best = true;
				best_frac = frac;
				best = cands[i];
				best_after = after;
				snprintf(best_hypo, sizeof(best_hypo), "%s", hypo);
			}
		}
	}
	jplan = json_pack("{s:s, s:s, s:s, s:s, s:I, s:f, s:f, s:{s:f, s:s, s:o, s:o}}",
			  "database", r->db, "fingerprint", e->fingerprint,
			  "query", e->query ? e->query : "", "kind", pgt_kind_name(info->kind),
			  "calls", (json_int_t)e->calls, "mean_ms", round3(mean_ms),
			  "total_ms", round3((double)e->total_us / 1000.0),
			  "plan", "total_cost", before.total_cost, "top_node", before.top_node,
			  "findings", findings_json(have_analyzed ? &analyzed : &before),
			  "seq_scans", json_array());
	if (jplan) {
		json_t *ss = json_object_get(json_object_get(jplan, "plan"), "seq_scans");

		for (unsigned i = 0; i < before.n_seq_scans; i++)
			json_array_append_new(ss, json_string(before.seq_scans[i]));
		if (have_analyzed)
			json_object_set_new(json_object_get(jplan, "plan"), "execution_ms",
					    json_real(round3(analyzed.execution_ms)));
		json_object_set_new(jplan, "analyzed", json_boolean(have_analyzed));
		json_array_append_new(r->plans, jplan);
	}
	if (have_best && best_frac * 100.0 >= r->o->min_improvement * 100.0) {
		char create[1024];
		json_t *cols = json_array(), *rec;
		double saved = (double)e->calls * mean_ms * best_frac;

		if (index_sql(r->conn, &tbls[best.table], &best, true, create, sizeof(create)) != 0)
			goto out;
		for (unsigned i = 0; i < best.ncols; i++)
			json_array_append_new(cols, json_string(best.cols[i]));
		rec = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:f, s:f, s:{s:s, s:o, s:b}, "
				"s:{s:f, s:f, s:s, s:s, s:s, s:f, s:I, s:f, s:f}}",
				"type", "index", "database", r->db, "fingerprint", e->fingerprint,
				"query", e->query ? e->query : "", "table", tbls[best.table].shown,
				"columns", cols, "statement", create,
				"estimated_time_saved_ms", round3(saved),
				"estimated_fraction_saved", round3(best_frac),
				"sample", "query", e->sample, "params", params_json(e),
				"params_from_bind", e->sample_is_bind,
				"evidence", "cost_before", before.total_cost,
				"cost_after", best_after.total_cost,
				"plan_before", before.top_node, "plan_after", best_after.top_node,
				"hypothetical_index", best_hypo,
				"table_rows_estimate", tbls[best.table].reltuples,
				"calls", (json_int_t)e->calls, "mean_ms", round3(mean_ms),
				"total_ms", round3((double)e->total_us / 1000.0));
		if (rec) {
			json_object_set_new(rec, "created_ms", json_integer((json_int_t)wall_ms()));
			json_array_append_new(r->recs, rec);
		} else {
			json_decref(cols);
		}
	}
out:
	free(plan);
	free(stmt);
	free(info);
}

static PGconn *connect_db(struct pgadvise *a, const struct opts *o, const char *db, char *err,
			  size_t errlen)
{
	struct hp_database_conf conf;
	char pw[256], port[16], opts[64];
	const char *keys[9], *vals[9];
	PGconn *c;
	int n = 0;

	if (pooler_db_login(a->pooler, db, &conf, pw, sizeof(pw)) != 0) {
		snprintf(err, errlen, "database %.64s is not configured", db);
		return NULL;
	}
	if (!conf.user[0]) {
		snprintf(err, errlen, "database.%.64s.user is empty (the pooler logs in as each "
			 "client): the advisor needs a user of its own there", db);
		return NULL;
	}
	snprintf(port, sizeof(port), "%u", conf.port);
	snprintf(opts, sizeof(opts), "-c statement_timeout=%llu",
		 (unsigned long long)o->timeout_ms);
	keys[n] = "host"; vals[n++] = conf.host;
	keys[n] = "port"; vals[n++] = port;
	keys[n] = "dbname"; vals[n++] = conf.dbname;
	keys[n] = "user"; vals[n++] = conf.user;
	keys[n] = "password"; vals[n++] = pw;
	keys[n] = "application_name"; vals[n++] = "hotpath-advisor";
	keys[n] = "connect_timeout"; vals[n++] = "10";
	keys[n] = "options"; vals[n++] = opts;
	keys[n] = NULL; vals[n] = NULL;
	c = PQconnectdbParams(keys, vals, 0);
	memset(pw, 0, sizeof(pw));
	if (!c || PQstatus(c) != CONNECTION_OK) {
		snprintf(err, errlen, "cannot connect to database %.64s: %s", db,
			 c ? pg_msg(c) : "out of memory");
		PQfinish(c);
		return NULL;
	}
	return c;
}

static bool hypopg_ready(struct run *r)
{
	PGresult *res = PQexec(r->conn, "SELECT 1 FROM pg_extension WHERE extname = 'hypopg'");
	bool have = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;

	PQclear(res);
	if (have)
		return true;
	if (!r->o->create_ext) {
		run_error(r, "%s: HypoPG is not installed (CREATE EXTENSION hypopg in it, or set "
			  "query_analysis.create_extension = yes): no index recommendations", r->db);
		return false;
	}
	if (exec_ok(r->conn, "CREATE EXTENSION IF NOT EXISTS hypopg"))
		return true;
	run_error(r, "%s: CREATE EXTENSION hypopg failed: %s; a superuser must run it once in "
		  "this database (package postgresql-15-hypopg): no index recommendations",
		  r->db, pg_msg(r->conn));
	return false;
}

static int cmp_saved(const void *x, const void *y)
{
	double a = json_real_value(json_object_get(*(json_t *const *)x, "estimated_time_saved_ms"));
	double b = json_real_value(json_object_get(*(json_t *const *)y, "estimated_time_saved_ms"));

	return (a < b) - (a > b);
}

/* Sort an array of recommendations by time saved, biggest first. */
static void sort_recs(json_t *arr)
{
	size_t n = json_array_size(arr);
	json_t **v = calloc(n ? n : 1, sizeof(*v));

	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(arr, i));
	qsort(v, n, sizeof(*v), cmp_saved);
	json_array_clear(arr);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, v[i]);
	free(v);
}

/* Analyse database `db` (or all). Replaces the results of those databases. */
static int analyse(struct pgadvise *a, const char *only_db, json_t **summary)
{
	char names[MAX_DBS][64];
	unsigned ndb = pooler_db_names(a->pooler, names, MAX_DBS);
	json_t *recs = json_array(), *plans = json_array(), *errors = json_array();
	unsigned analysed = 0;
	struct opts o;

	if (!recs || !plans || !errors) {
		json_decref(recs);
		json_decref(plans);
		json_decref(errors);
		return -ENOMEM;
	}
	pthread_mutex_lock(&a->run_mu);
	pthread_mutex_lock(&a->mu);
	o = a->o;
	pthread_mutex_unlock(&a->mu);
	if (qstats_flush(a->qs, 2000) != 0)
		log_debug("advisor: statistics still queued; analysing what is folded");
	for (unsigned i = 0; i < ndb; i++) {
		struct run r = { .a = a, .o = &o, .db = names[i], .recs = recs, .plans = plans,
				 .errors = errors };
		struct qstats_entry *es = NULL;
		unsigned n = 0, taken = 0;
		char err[512];

		if (only_db && strcmp(only_db, names[i]))
			continue;
		if (qstats_entries(a->qs, names[i], 0, 0, &es, &n) != 0)
			continue;
		for (unsigned k = 0; k < n; k++) {
			uint64_t mean = es[k].calls ? es[k].total_us / es[k].calls : 0;

			if (mean < o.slow_us || !es[k].fingerprint[0])
				continue;
			if (!r.conn) {
				r.conn = connect_db(a, &o, names[i], err, sizeof(err));
				if (!r.conn) {
					run_error(&r, "%s", err);
					break;
				}
				r.hypopg = hypopg_ready(&r);
			}
			analyse_one(&r, &es[k]);
			if (++taken >= o.top_n)
				break;
		}
		analysed += r.analysed;
		PQfinish(r.conn);
		qstats_entries_free(es, n);
	}
	sort_recs(recs);
	pthread_mutex_lock(&a->mu);
	/* keep the other databases' results when only one was analysed */
	if (only_db && a->recs) {
		size_t k;
		json_t *x;

		json_array_foreach(a->recs, k, x)
			if (strcmp(json_string_value(json_object_get(x, "database")), only_db))
				json_array_append(recs, x);
		json_array_foreach(a->plans, k, x)
			if (strcmp(json_string_value(json_object_get(x, "database")), only_db))
				json_array_append(plans, x);
		sort_recs(recs);
	}
	*summary = json_pack("{s:I, s:I, s:O}", "queries_analysed", (json_int_t)analysed,
			     "recommendations", (json_int_t)json_array_size(recs), "errors", errors);
	json_decref(a->recs);
	json_decref(a->plans);
	json_decref(a->errors);
	a->recs = recs;
	a->plans = plans;
	a->errors = errors;
	a->last_run_ms = wall_ms();
	a->runs++;
	a->analysed += analysed;
	pthread_mutex_unlock(&a->mu);
	pthread_mutex_unlock(&a->run_mu);
	return 0;
}

/* ---- jobs -------------------------------------------------------------------------- */

static int job_run(void *arg, char *err, size_t errlen)
{
	struct job_arg *ja = arg;
	struct pgadvise *a = ja->a;
	struct job *j = &a->jobs[ja->slot];
	char type[32], db[64];
	json_t *summary = NULL;
	int rc = 0;

	pthread_mutex_lock(&a->mu);
	if (a->stopping || strcmp(j->id, ja->id)) {   /* shutting down, or slot reused */
		pthread_mutex_unlock(&a->mu);
		return 0;
	}
	j->state = JOB_RUNNING;
	j->started_ms = wall_ms();
	snprintf(type, sizeof(type), "%s", j->type);
	snprintf(db, sizeof(db), "%s", j->db);
	pthread_mutex_unlock(&a->mu);
	if (!strcmp(type, PGADVISE_JOB_INDEX)) {
		rc = analyse(a, db[0] ? db : NULL, &summary);
	} else if (!strcmp(type, PGADVISE_JOB_RESET)) {
		qstats_reset(a->qs);
		summary = json_pack("{s:b}", "reset", 1);
	}
	pthread_mutex_lock(&a->mu);
	if (!strcmp(j->id, ja->id)) {
		j->finished_ms = wall_ms();
		j->state = rc == 0 ? JOB_DONE : JOB_FAILED;
		if (rc)
			snprintf(j->error, sizeof(j->error), "%s", strerror(-rc));
		json_decref(j->result);
		j->result = summary;
		summary = NULL;
	}
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	json_decref(summary);
	(void)err;
	(void)errlen;
	return 0;
}

int pgadvise_submit(struct pgadvise *a, const char *type, const char *db, char *id, size_t idlen,
		    char *err, size_t errlen)
{
	struct task_spec spec = { .kind = "optimize", .run = job_run, .free = free,
				  .prio = TASK_PRIO_LOW, .max_attempts = 1 };
	struct job_arg *ja;
	struct job *j = NULL;
	unsigned slot = 0;
	uint64_t oldest = UINT64_MAX;
	int rc;

	if (strcmp(type, PGADVISE_JOB_INDEX) && strcmp(type, PGADVISE_JOB_RESET)) {
		snprintf(err, errlen, "unknown optimization_type '%s' (%s, %s)", type,
			 PGADVISE_JOB_INDEX, PGADVISE_JOB_RESET);
		return -EINVAL;
	}
	if (db) {
		struct hp_database_conf conf;
		char pw[256];

		if (pooler_db_login(a->pooler, db, &conf, pw, sizeof(pw)) != 0) {
			snprintf(err, errlen, "no [database.%s] is configured", db);
			return -EINVAL;
		}
		memset(pw, 0, sizeof(pw));
	}
	pthread_mutex_lock(&a->mu);
	for (unsigned i = 0; i < MAX_JOBS; i++) {
		struct job *x = &a->jobs[i];

		if (x->used && (x->state == JOB_QUEUED || x->state == JOB_RUNNING) &&
		    !strcmp(x->type, type) && !strcmp(x->db, db ? db : "")) {
			snprintf(id, idlen, "%s", x->id);
			pthread_mutex_unlock(&a->mu);
			return 0;
		}
	}
	/* a free slot, else the oldest finished job's */
	for (unsigned i = 0; i < MAX_JOBS; i++) {
		struct job *x = &a->jobs[i];

		if (!x->used) {
			slot = i;
			oldest = 0;
			break;
		}
		if ((x->state == JOB_DONE || x->state == JOB_FAILED) && x->created_ms < oldest) {
			oldest = x->created_ms;
			slot = i;
		}
	}
	if (oldest == UINT64_MAX) {
		pthread_mutex_unlock(&a->mu);
		snprintf(err, errlen, "%u optimisation jobs are already queued or running",
			 MAX_JOBS);
		return -EAGAIN;
	}
	ja = calloc(1, sizeof(*ja));
	if (!ja) {
		pthread_mutex_unlock(&a->mu);
		return -ENOMEM;
	}
	j = &a->jobs[slot];
	json_decref(j->result);
	memset(j, 0, sizeof(*j));
	j->used = true;
	snprintf(j->id, sizeof(j->id), "job-%u", ++a->next_job);
	snprintf(j->type, sizeof(j->type), "%s", type);
	snprintf(j->db, sizeof(j->db), "%s", db ? db : "");
	j->state = JOB_QUEUED;
	j->created_ms = wall_ms();
	ja->a = a;
	ja->slot = slot;
	snprintf(ja->id, sizeof(ja->id), "%s", j->id);
	snprintf(id, idlen, "%s", j->id);
	snprintf(spec.label, sizeof(spec.label), "%s %s %s", j->id, type, db ? db : "all");
	spec.arg = ja;
	pthread_mutex_unlock(&a->mu);
	rc = tasks_submit(a->tasks, &spec);
	if (rc) {
		free(ja);
		pthread_mutex_lock(&a->mu);
		if (!strcmp(j->id, id)) {
			j->state = JOB_FAILED;
			j->finished_ms = wall_ms();
			snprintf(j->error, sizeof(j->error), "the task queue refused it: %s",
				 strerror(-rc));
		}
		pthread_mutex_unlock(&a->mu);
		snprintf(err, errlen, "the background task queue is full; retry later");
		return rc == -EAGAIN ? -EAGAIN : rc;
	}
	return 0;
}

json_t *pgadvise_job_json(struct pgadvise *a, const char *id)
{
	json_t *j = NULL;

	pthread_mutex_lock(&a->mu);
	for (unsigned i = 0; i < MAX_JOBS; i++) {
		struct job *x = &a->jobs[i];

		if (!x->used || strcmp(x->id, id))
			continue;
		j = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "id", x->id, "optimization_type",
			      x->type, "scope", x->db[0] ? x->db : "all", "status",
			      job_state_names[x->state], "created_ms", (json_int_t)x->created_ms,
			      "status_url", "");
		if (!j)
			break;
		{
			char url[96];

			snprintf(url, sizeof(url), "/api/v2/performance/optimize/%s", x->id);
			json_object_set_new(j, "status_url", json_string(url));
		}
		if (x->started_ms)
			json_object_set_new(j, "started_ms", json_integer((json_int_t)x->started_ms));
		if (x->finished_ms)
			json_object_set_new(j, "finished_ms", json_integer((json_int_t)x->finished_ms));
		if (x->error[0])
			json_object_set_new(j, "error", json_string(x->error));
		if (x->result)
			json_object_set_new(j, "result", json_deep_copy(x->result));
		break;
	}
	pthread_mutex_unlock(&a->mu);
	return j;
}

int pgadvise_job_wait(struct pgadvise *a, const char *id, uint64_t timeout_ms)
{
	struct timespec ts;
	int rc = -ENOENT;

	hp_abstime_in(&ts, CLOCK_REALTIME, timeout_ms);
	pthread_mutex_lock(&a->mu);
	for (;;) {
		struct job *j = NULL;

		for (unsigned i = 0; i < MAX_JOBS; i++)
			if (a->jobs[i].used && !strcmp(a->jobs[i].id, id))
				j = &a->jobs[i];
		if (!j) {
			rc = -ENOENT;
			break;
		}
		if (j->state == JOB_DONE || j->state == JOB_FAILED) {
			rc = 0;
			break;
		}
		if (pthread_cond_timedwait(&a->cv, &a->mu, &ts) != 0) {
			rc = -ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&a->mu);
	return rc;
}

/* ---- result-cache suggestions ------------------------------------------------------ */

static bool fp_listed(const char *list, const char *fp)
{
	const char *p = list;
	size_t n = strlen(fp);

	while ((p = strstr(p, fp))) {
		if ((p == list || p[-1] == ',' || p[-1] == ' ') &&
		    (p[n] == '\0' || p[n] == ',' || p[n] == ' '))
			return true;
		p += n;
	}
	return false;
}

/* SELECTs called often whose tables are rarely written through the pooler. */
static json_t *cache_suggestions(struct pgadvise *a, uint64_t since_ms)
{
	struct qstats_entry *es = NULL;
	unsigned n = 0;
	json_t *arr = json_array();
	char fps[HP_LIST_MAX];

	pthread_mutex_lock(&a->mu);
	memcpy(fps, a->o.cached_fps, sizeof(fps));
	pthread_mutex_unlock(&a->mu);
	if (!arr || qstats_entries(a->qs, NULL, since_ms, 0, &es, &n) != 0)
		return arr;
	for (unsigned i = 0; i < n; i++) {
		const struct qstats_entry *e = &es[i];
		uint64_t writes = 0;
		double mean_ms, ratio, saved;
		json_t *tabs;

		if (e->kind != PGT_SELECT || !e->fingerprint[0] || e->calls < 20 || !e->n_read ||
		    e->errors * 10 > e->calls || fp_listed(fps, e->fingerprint))
			continue;
		for (unsigned k = 0; k < n; k++)
			for (unsigned w = 0; w < es[k].n_written; w++)
				for (unsigned r = 0; r < e->n_read; r++)
					if (!strcmp(es[k].written[w], e->read[r]) &&
					    !strcmp(es[k].db, e->db))
						writes += es[k].calls;
		ratio = (double)writes / (double)e->calls;
		if (ratio > 0.1)
			continue;
		mean_ms = (double)e->total_us / (double)e->calls / 1000.0;
		saved = (double)e->calls * mean_ms * (1.0 - ratio);
		tabs = json_array();
		for (unsigned r = 0; r < e->n_read; r++)
			json_array_append_new(tabs, json_string(e->read[r]));
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:o, s:I, s:f, s:I, s:f, s:s}",
			"type", "query_cache", "database", e->db, "fingerprint", e->fingerprint,
			"query", e->query ? e->query : "", "tables", tabs, "calls", (json_int_t)e->calls,
			"mean_ms", round3(mean_ms), "writes_to_tables", (json_int_t)writes,
			"estimated_time_saved_ms", round3(saved),
			"config", "[query_cache] fingerprints = <add this fingerprint>"));
		{
			char cfg[HP_LIST_MAX + 64];
			json_t *last = json_array_get(arr, json_array_size(arr) - 1);

			snprintf(cfg, sizeof(cfg), "[query_cache] fingerprints = %s%s%s",
				 fps, fps[0] ? "," : "", e->fingerprint);
			json_object_set_new(last, "config", json_string(cfg));
		}
	}
	qstats_entries_free(es, n);
	sort_recs(arr);
	return arr;
}

json_t *pgadvise_recommendations_json(struct pgadvise *a, const char *scope, uint64_t period_ms)
{
	bool db = !strcmp(scope, "db") || !strcmp(scope, "all");
	bool cache = !strcmp(scope, "cache") || !strcmp(scope, "all");
	uint64_t since = period_ms ? wall_ms() - period_ms : 0;
	json_t *root = json_object(), *recs = json_array(), *plans = json_array();

	if (!root || !recs || !plans) {
		json_decref(root);
		json_decref(recs);
		json_decref(plans);
		return NULL;
	}
	pthread_mutex_lock(&a->mu);
	if (db) {
		size_t i;
		json_t *x;

		/* only recommendations for queries seen within the period */
		json_array_foreach(a->recs, i, x)
			json_array_append_new(recs, json_deep_copy(x));
		json_array_foreach(a->plans, i, x)
			json_array_append_new(plans, json_deep_copy(x));
	}
	json_object_set_new(root, "scope", json_string(scope));
	json_object_set_new(root, "analysis", json_pack("{s:I, s:I, s:I, s:O?, s:I, s:f}",
		"last_run_ms", (json_int_t)a->last_run_ms, "runs", (json_int_t)a->runs,
		"queries_analysed", (json_int_t)a->analysed, "errors", a->errors,
		"interval_ms", (json_int_t)a->interval_ms,
		"slow_query_threshold_ms", round3((double)a->o.slow_us / 1000.0)));
	pthread_mutex_unlock(&a->mu);
	if (since && db) {
		struct qstats_entry *es = NULL;
		unsigned n = 0;
		json_t *keep = json_array();

		if (keep && qstats_entries(a->qs, NULL, since, 0, &es, &n) == 0) {
			size_t i;
			json_t *x;

			json_array_foreach(recs, i, x) {
				const char *fp = json_string_value(json_object_get(x, "fingerprint"));
				const char *dbn = json_string_value(json_object_get(x, "database"));

				for (unsigned k = 0; k < n; k++)
					if (fp && dbn && !strcmp(es[k].fingerprint, fp) &&
					    !strcmp(es[k].db, dbn)) {
						json_array_append(keep, x);
						break;
					}
			}
			qstats_entries_free(es, n);
			json_decref(recs);
			recs = keep;
		} else {
			json_decref(keep);
		}
	}
	if (cache) {
		json_t *cs = cache_suggestions(a, since);

		json_array_extend(recs, cs);
		json_decref(cs);
		sort_recs(recs);
	}
	json_object_set_new(root, "recommendations", recs);
	if (db)
		json_object_set_new(root, "analysed_queries", plans);
	else
		json_decref(plans);
	return root;
}

/* ---- metrics ---------------------------------------------------------------------- */

static int prom_escape(struct buf *b, const char *s)
{
	for (; *s; s++) {
		int rc = *s == '\\' || *s == '"' ? buf_printf(b, "\\%c", *s) :
			 *s == '\n' ? buf_append_str(b, "\\n") : buf_append(b, s, 1);

		if (rc)
			return rc;
	}
	return 0;
}

int pgadvise_metrics_render(struct hp_daemon *d, struct buf *b)
{
	struct qstats *qs = pooler_qstats(d->pooler);
	struct pgadvise *a = d->advisor;
	struct qstats_entry *es = NULL;
	struct qstats_totals t;
	unsigned n = 0;
	int rc = 0;

	if (!qs)
		return 0;
	qstats_totals(qs, &t);
	rc |= buf_printf(b, "# HELP hotpath_query_fingerprints Query fingerprints tracked by the pooler.\n"
			 "# TYPE hotpath_query_fingerprints gauge\nhotpath_query_fingerprints %" PRIu64 "\n"
			 "# HELP hotpath_query_samples_dropped_total Pooler query samples not counted "
			 "(queue or table full).\n# TYPE hotpath_query_samples_dropped_total counter\n"
			 "hotpath_query_samples_dropped_total{reason=\"queue\"} %" PRIu64 "\n"
			 "hotpath_query_samples_dropped_total{reason=\"table\"} %" PRIu64 "\n",
			 t.fingerprints, t.dropped_queue, t.dropped_table);
	/* per fingerprint: the top 50 by total time keep the series bounded */
	if (!rc && qstats_entries(qs, NULL, 0, 50, &es, &n) == 0) {
		static const char *const fam[][3] = {
			{ "hotpath_query_calls_total", "counter", "Calls per query fingerprint (pooler)." },
			{ "hotpath_query_errors_total", "counter", "Errors per query fingerprint (pooler)." },
			{ "hotpath_query_rows_total", "counter", "Rows per query fingerprint (pooler)." },
			{ "hotpath_query_time_seconds_total", "counter", "Time per query fingerprint (pooler)." },
		};

		for (unsigned f = 0; f < 4 && !rc; f++) {
			rc |= buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", fam[f][0], fam[f][2], fam[f][0],
					 fam[f][1]);
			for (unsigned i = 0; i < n && !rc; i++) {
				const struct qstats_entry *e = &es[i];

				if (!e->fingerprint[0])
					continue;
				rc |= buf_printf(b, "%s{database=\"", fam[f][0]);
				rc |= prom_escape(b, e->db);
				rc |= buf_printf(b, "\",fingerprint=\"%s\"} ", e->fingerprint);
				if (f == 0)
					rc |= buf_printf(b, "%" PRIu64 "\n", e->calls);
				else if (f == 1)
					rc |= buf_printf(b, "%" PRIu64 "\n", e->errors);
				else if (f == 2)
					rc |= buf_printf(b, "%" PRIu64 "\n", e->rows);
				else
					rc |= buf_printf(b, "%.6f\n", (double)e->total_us / 1e6);
			}
		}
		qstats_entries_free(es, n);
	}
	if (!rc) {
		struct qcache_stats q;

		pooler_qcache_stats(d->pooler, &q);
		rc |= buf_printf(b, "# HELP hotpath_query_cache_events_total Result cache of the pooler.\n"
				 "# TYPE hotpath_query_cache_events_total counter\n"
				 "hotpath_query_cache_events_total{event=\"hit\"} %" PRIu64 "\n"
				 "hotpath_query_cache_events_total{event=\"miss\"} %" PRIu64 "\n"
				 "hotpath_query_cache_events_total{event=\"store\"} %" PRIu64 "\n"
				 "hotpath_query_cache_events_total{event=\"not_stored\"} %" PRIu64 "\n"
				 "hotpath_query_cache_events_total{event=\"invalidation\"} %" PRIu64 "\n"
				 "hotpath_query_cache_events_total{event=\"l2_wait\"} %" PRIu64 "\n",
				 q.hits, q.misses, q.stores, q.not_stored, q.invalidations, q.l2_waits);
	}
	if (a && !rc) {
		pthread_mutex_lock(&a->mu);
		rc |= buf_printf(b, "# HELP hotpath_advisor_runs_total Query advisor runs.\n"
				 "# TYPE hotpath_advisor_runs_total counter\nhotpath_advisor_runs_total %" PRIu64 "\n"
				 "# HELP hotpath_advisor_recommendations Index recommendations from the last run.\n"
				 "# TYPE hotpath_advisor_recommendations gauge\n"
				 "hotpath_advisor_recommendations %zu\n", a->runs, json_array_size(a->recs));
		pthread_mutex_unlock(&a->mu);
	}
	return rc ? -ENOBUFS : 0;
}

/* ---- lifecycle ---------------------------------------------------------------------- */

static void *timer_main(void *arg)
{
	struct pgadvise *a = arg;

	pthread_mutex_lock(&a->mu);
	while (!a->stopping) {
		struct timespec ts;
		uint64_t ms = a->interval_ms;

		/* 0: only on demand, until a reload sets an interval */
		if (!ms) {
			pthread_cond_wait(&a->cv, &a->mu);
			continue;
		}
		hp_abstime_in(&ts, CLOCK_REALTIME, ms);
		if (pthread_cond_timedwait(&a->cv, &a->mu, &ts) == 0 || a->stopping)
			continue;
		pthread_mutex_unlock(&a->mu);
		{
			char id[24], err[160];

			if (pgadvise_submit(a, PGADVISE_JOB_INDEX, NULL, id, sizeof(id), err,
					    sizeof(err)) != 0)
				log_warn("advisor: scheduled analysis not queued: %s", err);
		}
		pthread_mutex_lock(&a->mu);
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

/* [query_analysis] and query_cache.fingerprints into a (under a->mu once
 * the timer runs). */
static void opts_from(struct pgadvise *a, const struct hp_config *c)
{
	a->o.slow_us = c->qa_slow_ms * 1000;
	a->o.top_n = c->qa_top_n;
	a->o.analyze = c->qa_explain_analyze;
	a->o.create_ext = c->qa_create_extension;
	a->o.timeout_ms = c->qa_statement_timeout_ms;
	a->o.min_improvement = c->qa_min_improvement_pct / 100.0;
	snprintf(a->o.cached_fps, sizeof(a->o.cached_fps), "%s", c->qc_fingerprints);
	a->interval_ms = c->qa_advisor ? c->qa_interval_ms : 0;
}

void pgadvise_reload(struct pgadvise *a, const struct hp_config *c)
{
	uint64_t old;

	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	old = a->interval_ms;
	opts_from(a, c);
	/* a new interval counts from now */
	if (a->interval_ms != old)
		pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	log_info("advisor: reloaded (%s, slow queries from %llu ms, top %u)",
		 a->interval_ms ? "every interval and on demand" : "on demand only",
		 (unsigned long long)c->qa_slow_ms, c->qa_top_n);
}

struct pgadvise *pgadvise_start(struct hp_daemon *d)
{
	const struct hp_config *c = d->cfg;
	struct pgadvise *a;

	if (!d->pooler || !pooler_qstats(d->pooler) || !d->tasks)
		return NULL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->d = d;
	a->pooler = d->pooler;
	a->qs = pooler_qstats(d->pooler);
	a->tasks = d->tasks;
	opts_from(a, c);
	a->recs = json_array();
	a->plans = json_array();
	a->errors = json_array();
	pthread_mutex_init(&a->mu, NULL);
	pthread_mutex_init(&a->run_mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	if (!a->recs || !a->plans || !a->errors) {
		pgadvise_stop(a);
		return NULL;
	}
	/* always: a reload may set an interval later */
	if (pthread_create(&a->timer, NULL, timer_main, a) != 0) {
		pgadvise_stop(a);
		return NULL;
	}
	pthread_setname_np(a->timer, "hp-advisor");
	a->timer_started = true;
	log_info("advisor: query analysis on (%s, slow queries from %llu ms, top %u)",
		 a->interval_ms ? "every interval and on demand" : "on demand only",
		 (unsigned long long)c->qa_slow_ms, a->o.top_n);
	return a;
}

void pgadvise_stop(struct pgadvise *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	a->stopping = true;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
	if (a->timer_started)
		pthread_join(a->timer, NULL);
	/* Queued jobs hold a pointer to us: let them run out (they see
	 * `stopping` and return at once; a running analysis is bounded by
	 * statement_timeout). If that does not happen in time, leak rather
	 * than free memory a task may still use. */
	if (tasks_drain(a->tasks, 60000) != 0) {
		log_warn("advisor: an analysis is still running at shutdown; not freed");
		return;
	}
	for (unsigned i = 0; i < MAX_JOBS; i++)
		json_decref(a->jobs[i].result);
	json_decref(a->recs);
	json_decref(a->plans);
	json_decref(a->errors);
	pthread_mutex_destroy(&a->mu);
	pthread_mutex_destroy(&a->run_mu);
	pthread_cond_destroy(&a->cv);
	free(a);
}
