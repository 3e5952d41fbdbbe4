/*
 * pgplan.c - findings from EXPLAIN (FORMAT JSON) plans (see pgplan.h).
 *
 * How: jansson parses the text (bounded in size; the walk bounded in
 * depth), then one recursive pass over "Plan" / "Plans" looks at each
 * node. The rules are the usual ones from the PostgreSQL docs' "Using
 * EXPLAIN" chapter: a Seq Scan with a Filter that kept a small share of
 * many rows (with ANALYZE, from "Rows Removed by Filter"; without it we
 * cannot know the table's size here, so only the scan is listed), actual
 * rows (x loops) and estimated rows more than a factor apart, "Sort Space
 * Type": "Disk", "Hash Batches" > 1, and a Nested Loop whose inner side
 * produced many rows over all its loops. Thresholds are parameters so the
 * caller (and tests) can tune them.
 *
 * What not: no advice text beyond one line per finding, no buffers or
 * I/O timing analysis, no parallel-worker breakdown.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>
#include "hotpath/pgplan.h"

static double num(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_number(v) ? json_number_value(v) : 0.0;
}

static const char *str(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static void relname(const json_t *n, char *out, size_t len)
{
	const char *rel = str(n, "Relation Name"), *sch = str(n, "Schema");

	if (!rel)
		snprintf(out, len, "%s", "");
	else if (sch)
		snprintf(out, len, "%s.%s", sch, rel);
	else
		snprintf(out, len, "%s", rel);
}

static struct pgplan_finding *add(struct pgplan_report *r, int kind, const json_t *n)
{
	struct pgplan_finding *f;

	if (r->n_findings >= PGPLAN_FINDINGS)
		return NULL;
	f = &r->findings[r->n_findings++];
	memset(f, 0, sizeof(*f));
	f->kind = kind;
	snprintf(f->node, sizeof(f->node), "%s", str(n, "Node Type") ? str(n, "Node Type") : "?");
	relname(n, f->relation, sizeof(f->relation));
	f->est_rows = num(n, "Plan Rows");
	f->actual_rows = num(n, "Actual Rows");
	f->loops = num(n, "Actual Loops");
	f->removed_rows = num(n, "Rows Removed by Filter");
	return f;
}

static void walk(const json_t *n, const struct pgplan_thresholds *th, struct pgplan_report *r,
		 unsigned depth)
{
	const char *type = str(n, "Node Type"), *idx = str(n, "Index Name");
	bool an = json_object_get(n, "Actual Rows") != NULL;
	double loops = num(n, "Actual Loops");
	const json_t *kids = json_object_get(n, "Plans"), *k;
	struct pgplan_finding *f;
	size_t i;

	if (depth > PGPLAN_DEPTH_MAX || !json_is_object(n) || !type)
		return;
	if (loops < 1)
		loops = 1;
	if (idx && r->n_indexes < PGPLAN_INDEXES)
		snprintf(r->indexes[r->n_indexes++], sizeof(r->indexes[0]), "%s", idx);
	if (!strcmp(type, "Seq Scan")) {
		char rel[128];

		relname(n, rel, sizeof(rel));
		if (r->n_seq_scans < PGPLAN_INDEXES)
			snprintf(r->seq_scans[r->n_seq_scans++], sizeof(r->seq_scans[0]), "%s", rel);
		if (str(n, "Filter")) {
			double kept = num(n, "Actual Rows") * loops;
			double removed = num(n, "Rows Removed by Filter") * loops;
			double read = kept + removed;

			if (!an || (read >= th->seq_scan_min_rows && kept <= th->seq_scan_max_kept * read)) {
				f = add(r, PGPLAN_SEQ_SCAN, n);
				if (f && an)
					snprintf(f->detail, sizeof(f->detail), "Seq Scan on %s read %.0f rows "
						 "to keep %.0f (%.2f%%) with filter %s", rel, read, kept,
						 read > 0 ? 100.0 * kept / read : 0.0, str(n, "Filter"));
				else if (f)
					snprintf(f->detail, sizeof(f->detail), "Seq Scan on %s with filter %s "
						 "(estimated %.0f rows kept)", rel, str(n, "Filter"),
						 num(n, "Plan Rows"));
			}
		}
	}
	if (an) {
		double est = num(n, "Plan Rows"), act = num(n, "Actual Rows");
		double hi = est > act ? est : act, lo = est > act ? act : est;

		if (hi >= th->estimate_min_rows && (lo < 1 ? hi : hi / lo) >= th->estimate_factor &&
		    (f = add(r, PGPLAN_ROW_ESTIMATE, n)))
			snprintf(f->detail, sizeof(f->detail), "%s%s%s: planner estimated %.0f rows, "
				 "got %.0f per loop (%.0fx off); ANALYZE the table or raise its "
				 "statistics target", type, f->relation[0] ? " on " : "", f->relation,
				 est, act, lo < 1 ? hi : hi / lo);
	}
	if (!strcmp(type, "Sort")) {
		const char *space = str(n, "Sort Space Type");

		if (space && !strcmp(space, "Disk") && (f = add(r, PGPLAN_SORT_SPILL, n)))
			snprintf(f->detail, sizeof(f->detail), "Sort (%s) spilled %.0f kB to disk; "
				 "raise work_mem or sort fewer rows", str(n, "Sort Method") ?
				 str(n, "Sort Method") : "?", num(n, "Sort Space Used"));
	}
	if (!strcmp(type, "Hash") && num(n, "Hash Batches") > 1 && (f = add(r, PGPLAN_HASH_SPILL, n)))
		snprintf(f->detail, sizeof(f->detail), "Hash in %.0f batches (planned %.0f), "
			 "%.0f kB peak: it spilled to disk; raise work_mem", num(n, "Hash Batches"),
			 num(n, "Original Hash Batches"), num(n, "Peak Memory Usage"));
	if (!strcmp(type, "Nested Loop") && json_array_size(kids) >= 2) {
		const json_t *outer = json_array_get(kids, 0), *inner = json_array_get(kids, 1);
		double runs = an ? num(outer, "Actual Rows") * num(outer, "Actual Loops")
				 : num(outer, "Plan Rows");
		double inner_rows = an ? num(inner, "Actual Rows") * num(inner, "Actual Loops")
				       : num(inner, "Plan Rows") * runs;

		if (inner_rows >= th->nested_loop_rows && (f = add(r, PGPLAN_NESTED_LOOP, n)))
			snprintf(f->detail, sizeof(f->detail), "Nested Loop ran its inner %s %.0f "
				 "times (%.0f rows in all%s); an index on the join key or a hash "
				 "join may do better", str(inner, "Node Type") ? str(inner, "Node Type") : "?",
				 runs, inner_rows, an ? "" : ", estimated");
	}
	json_array_foreach(kids, i, k)
		walk(k, th, r, depth + 1);
}

int pgplan_analyze(const char *text, size_t len, const struct pgplan_thresholds *th_in,
		   struct pgplan_report *out, char *err, size_t errlen)
{
	struct pgplan_thresholds th = { 10000, 0.1, 10, 100, 100000 };
	json_error_t je;
	json_t *root, *top, *plan;

	memset(out, 0, sizeof(*out));
	if (th_in) {
		if (th_in->seq_scan_min_rows > 0) th.seq_scan_min_rows = th_in->seq_scan_min_rows;
		if (th_in->seq_scan_max_kept > 0) th.seq_scan_max_kept = th_in->seq_scan_max_kept;
		if (th_in->estimate_factor > 0) th.estimate_factor = th_in->estimate_factor;
		if (th_in->estimate_min_rows > 0) th.estimate_min_rows = th_in->estimate_min_rows;
		if (th_in->nested_loop_rows > 0) th.nested_loop_rows = th_in->nested_loop_rows;
	}
	if (len > PGPLAN_JSON_MAX) {
		snprintf(err, errlen, "EXPLAIN output longer than %u bytes", PGPLAN_JSON_MAX);
		return -EINVAL;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		snprintf(err, errlen, "EXPLAIN output is not JSON: %s at %d", je.text, je.position);
		return -EINVAL;
	}
	top = json_is_array(root) ? json_array_get(root, 0) : root;
	plan = json_object_get(top, "Plan");
	if (!json_is_object(plan) || !str(plan, "Node Type")) {
		json_decref(root);
		snprintf(err, errlen, "EXPLAIN output has no \"Plan\" with a \"Node Type\"");
		return -EINVAL;
	}
	out->analyzed = json_object_get(plan, "Actual Rows") != NULL;
	out->total_cost = num(plan, "Total Cost");
	out->startup_cost = num(plan, "Startup Cost");
	out->plan_rows = num(plan, "Plan Rows");
	out->execution_ms = num(top, "Execution Time");
	out->planning_ms = num(top, "Planning Time");
	snprintf(out->top_node, sizeof(out->top_node), "%s", str(plan, "Node Type"));
	walk(plan, &th, out, 0);
	json_decref(root);
	if (!isfinite(out->total_cost) || out->total_cost < 0) {
		snprintf(err, errlen, "EXPLAIN output has a bad \"Total Cost\"");
		return -EINVAL;
	}
	return 0;
}

const char *pgplan_kind_name(int kind)
{
	switch (kind) {
	case PGPLAN_SEQ_SCAN: return "seq_scan";
	case PGPLAN_ROW_ESTIMATE: return "row_estimate";
	case PGPLAN_SORT_SPILL: return "sort_spill";
	case PGPLAN_HASH_SPILL: return "hash_spill";
	case PGPLAN_NESTED_LOOP: return "nested_loop";
	default: return "unknown";
	}
}

bool pgplan_uses_index(const struct pgplan_report *r, const char *name)
{
	for (unsigned i = 0; i < r->n_indexes; i++)
		if (strstr(r->indexes[i], name))
			return true;
	return false;
}
