/*
 * pgtree.h - facts about one SQL text taken from libpg_query's parse tree:
 * what kind of statement it is, which tables it reads and writes, the
 * literal values in it (in the order pg_query_normalize numbers them $1,
 * $2 ...), and the columns its predicates, join keys and ORDER BY use
 * (the raw material of index candidates).
 *
 * Pure: no daemon state, no I/O; unit tests and a fuzzer drive it. The
 * parse tree is libpg_query's JSON (pg_query_parse), walked with jansson
 * to a bounded depth. Nothing here tokenises SQL itself.
 */
#ifndef HOTPATH_PGTREE_H
#define HOTPATH_PGTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hotpath/common.h"

#define PGT_SQL_MAX     (64 * 1024)     /* longer texts are refused */
#define PGT_NAME_MAX    64              /* NAMEDATALEN */
#define PGT_MAX_TABLES  16
#define PGT_MAX_COLS    32
#define PGT_MAX_PARAMS  64
#define PGT_PARAM_MAX   256             /* bytes kept of one literal */
#define PGT_DEPTH_MAX   128             /* parse-tree nesting walked */

enum pgt_kind {
	PGT_OTHER = 0,                  /* utility, DDL, SET, ... */
	PGT_SELECT,                     /* plain read: SELECT / VALUES / TABLE */
	PGT_SELECT_LOCKING,             /* SELECT ... FOR UPDATE/SHARE, or SELECT INTO */
	PGT_WRITE,                      /* INSERT/UPDATE/DELETE/MERGE/TRUNCATE/COPY FROM,
					 * or a SELECT with a data-modifying CTE */
	PGT_TXN,                        /* BEGIN/COMMIT/ROLLBACK/SAVEPOINT ... */
};

enum pgt_use {
	PGT_USE_EQ = 1,                 /* col = const, col IN (...), col IS NULL */
	PGT_USE_RANGE,                  /* col < > <= >= const, BETWEEN */
	PGT_USE_JOIN,                   /* col = other_col */
	PGT_USE_ORDER,                  /* ORDER BY col */
};

struct pgt_table {
	char schema[PGT_NAME_MAX];      /* "" = not qualified */
	char name[PGT_NAME_MAX];
	char alias[PGT_NAME_MAX];       /* "" = none */
};

struct pgt_col {
	int table;                      /* index in tables, -1 = unqualified and ambiguous */
	char name[PGT_NAME_MAX];
	uint8_t use;                    /* enum pgt_use */
	bool desc;                      /* ORDER BY ... DESC */
};

struct pgt_info {
	int kind;                       /* enum pgt_kind */
	unsigned n_stmts;
	unsigned n_read, n_written;
	struct pgt_table read[PGT_MAX_TABLES];     /* every relation named (FROM, JOIN, subqueries) */
	struct pgt_table written[PGT_MAX_TABLES];  /* targets of writes */
	bool tables_truncated;          /* more than PGT_MAX_TABLES */
	bool opaque;                    /* may change rows or what reads see beyond its
					 * text: EXECUTE, CALL, DO, DDL, GRANT, ... */
	unsigned n_cols;
	struct pgt_col cols[PGT_MAX_COLS];
	unsigned n_params;              /* literals, in $n order */
	char params[PGT_MAX_PARAMS][PGT_PARAM_MAX];
	bool params_ok;                 /* every literal kept (else EXPLAIN can't use them) */
};

/*
 * Parse `sql` (len bytes) and fill *out. 0; -EINVAL when libpg_query
 * cannot parse it or it is too long (reason in err); -ENOMEM.
 */
int pgt_analyze(const char *sql, size_t len, struct pgt_info *out, char *err,
		size_t errlen) HP_MUST_CHECK;

/*
 * Normalise `sql` (literals as $1 ...) into a malloc'd string the caller
 * frees; NULL if it does not parse. With pgt_analyze's params this is a
 * statement that EXPLAIN can run with the literals as real parameters.
 */
char *pgt_normalize(const char *sql, size_t len);

/* Cheap guess, without parsing, whether text may write: its first keyword
 * (after blanks, comments and parentheses) is not SELECT/VALUES/TABLE/SHOW
 * /EXPLAIN. Used to skip the parser on the pooler's hot path. */
bool pgt_maybe_write(const char *sql, size_t len);

const char *pgt_kind_name(int kind);

#endif
