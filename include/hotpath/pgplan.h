/*
 * pgplan.h - reading PostgreSQL's EXPLAIN (FORMAT JSON) output: the plan's
 * total cost and time, which indexes it uses, and the findings a DBA
 * looks for first - sequential scans that filter away most of a large
 * table, row estimates off by an order of magnitude, sorts and hashes
 * that spill to disk, nested loops that run their inner side many times.
 *
 * Pure (jansson only): unit tests feed it stored plans, a fuzzer feeds it
 * anything. Works with and without ANALYZE; the findings that need actual
 * row counts only appear with ANALYZE.
 */
#ifndef HOTPATH_PGPLAN_H
#define HOTPATH_PGPLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hotpath/common.h"

#define PGPLAN_JSON_MAX   (4u << 20)    /* longer EXPLAIN output is refused */
#define PGPLAN_DEPTH_MAX  64            /* plan nesting walked */
#define PGPLAN_FINDINGS   16
#define PGPLAN_INDEXES    16

enum pgplan_kind {
	PGPLAN_SEQ_SCAN = 1,            /* big table read whole to keep few rows */
	PGPLAN_ROW_ESTIMATE,            /* planner's rows off by >= 10x */
	PGPLAN_SORT_SPILL,              /* Sort on disk */
	PGPLAN_HASH_SPILL,              /* Hash in several batches */
	PGPLAN_NESTED_LOOP,             /* inner side run over many rows */
};

struct pgplan_finding {
	int kind;                       /* enum pgplan_kind */
	char node[32];                  /* "Seq Scan", "Sort", ... */
	char relation[128];             /* schema.table when known */
	double est_rows, actual_rows, removed_rows, loops;
	char detail[256];               /* one readable line */
};

struct pgplan_thresholds {
	double seq_scan_min_rows;       /* rows read (kept + removed) to call a scan large; 0 = 10000 */
	double seq_scan_max_kept;       /* at most this share kept; 0 = 0.1 */
	double estimate_factor;         /* off by this factor; 0 = 10 */
	double estimate_min_rows;       /* ignore below this many rows; 0 = 100 */
	double nested_loop_rows;        /* inner rows x loops; 0 = 100000 */
};

struct pgplan_report {
	bool analyzed;                  /* had actual figures */
	double total_cost, startup_cost;
	double plan_rows;
	double execution_ms, planning_ms;   /* ANALYZE only, else 0 */
	char top_node[32];
	unsigned n_findings;
	struct pgplan_finding findings[PGPLAN_FINDINGS];
	unsigned n_indexes;             /* indexes the plan scans */
	char indexes[PGPLAN_INDEXES][128];
	unsigned n_seq_scans;
	char seq_scans[PGPLAN_INDEXES][128];  /* relations read by Seq Scan */
};

/*
 * Read EXPLAIN (FORMAT JSON) text (the single-row result: a JSON array of
 * one object with "Plan"). th may be NULL (defaults). 0, or -EINVAL with
 * the reason in err.
 */
int pgplan_analyze(const char *json, size_t len, const struct pgplan_thresholds *th,
		   struct pgplan_report *out, char *err, size_t errlen) HP_MUST_CHECK;

const char *pgplan_kind_name(int kind);
/* True if the plan scans an index whose name contains `name`. */
bool pgplan_uses_index(const struct pgplan_report *r, const char *name);

#endif
