/*
 * pgstmt.h - prepared statements across pooled server connections, and
 * the queue of responses a server connection still owes.
 *
 * In transaction pooling a client's next transaction may run on another
 * server connection than the one it prepared a statement on. Like
 * PgBouncer 1.21+, the pooler keeps each client's named statements
 * (client name -> query text and parameter types), gives every distinct
 * statement a server-side name derived from a 128-bit hash of its text
 * and types ("hp_<32 hex>"), remembers which of those each server
 * connection has prepared (an LRU set bounded by
 * pooler.max_prepared_statements), re-sends Parse before a Bind or
 * Describe that needs it, and answers Parse/Close it did not forward with
 * ParseComplete/CloseComplete of its own, in order.
 *
 * The order is kept by a per-server queue of what each forwarded message
 * will answer (struct pgs_queue): a server message pops the entry it
 * completes, hidden entries (messages the pooler injected) have their
 * answers swallowed, fake entries (client messages the pooler answered
 * itself) produce their answer when they reach the head. After an error
 * in the extended protocol the server skips everything up to Sync; so does
 * the queue.
 */
#ifndef HOTPATH_PGSTMT_H
#define HOTPATH_PGSTMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hotpath/buf.h"
#include "hotpath/common.h"

#define PGS_SNAME_LEN 36                /* "hp_" + 32 hex + NUL */

struct pgs_id {
	uint64_t lo, hi;
};

/* Server-side name of a statement: "hp_" + hex of its 128-bit id. */
void pgs_id_name(const struct pgs_id *id, char out[PGS_SNAME_LEN]);
/* Id of the rest of a Parse message (query, NUL, ntypes, types). */
struct pgs_id pgs_id_of(const void *rest, size_t len);

/* ---- a client's named statements ---- */
struct pgs_stmt {
	struct pgs_stmt *next;
	uint64_t name_hash;
	struct pgs_id id;
	char sname[PGS_SNAME_LEN];
	char cname[64];
	size_t rest_len;
	uint8_t rest[];                 /* query, NUL, ntypes, types */
};

struct pgs_map {
	unsigned nbuckets, n, max;
	size_t bytes, max_bytes;
	struct pgs_stmt **b;
};

/* Empty map holding at most `max` statements and `max_bytes` of text. */
int pgs_map_init(struct pgs_map *m, unsigned max, size_t max_bytes) HP_MUST_CHECK;
void pgs_map_free(struct pgs_map *m);
/* Forget every statement; the bounds stay. */
void pgs_map_clear(struct pgs_map *m);
/*
 * Add or replace statement `cname` (its Parse rest). *out points at the
 * entry (owned by the map). 0, -ENOSPC over a bound, -ENOMEM.
 */
int pgs_map_put(struct pgs_map *m, const char *cname, const void *rest, size_t rest_len,
		struct pgs_stmt **out) HP_MUST_CHECK;
struct pgs_stmt *pgs_map_get(const struct pgs_map *m, const char *cname);
/* Remove; true if it existed. */
bool pgs_map_del(struct pgs_map *m, const char *cname);

/* ---- statements prepared on one server connection (LRU, bounded) ---- */
struct pgs_set {
	unsigned cap, max, n;           /* cap: slots (power of two) */
	uint64_t tick;
	struct pgs_slot { struct pgs_id id; uint64_t used; } *s;   /* used 0 = empty */
};
int pgs_set_init(struct pgs_set *s, unsigned max) HP_MUST_CHECK;
void pgs_set_free(struct pgs_set *s);
void pgs_set_clear(struct pgs_set *s);
/* True if present (and marks it recently used). */
bool pgs_set_has(struct pgs_set *s, const struct pgs_id *id);
/*
 * Insert. When the set already holds `max`, the least recently used entry
 * is removed first and returned in *evicted (the caller closes it on the
 * server): returns 1 then, else 0. `force` inserts without evicting (up to
 * the slot capacity), for statements known to exist.
 */
int pgs_set_add(struct pgs_set *s, const struct pgs_id *id, bool force, struct pgs_id *evicted);
void pgs_set_del(struct pgs_set *s, const struct pgs_id *id);

/* ---- what a server connection still owes ---- */
enum pgs_kind {
	PGS_PARSE = 1,          /* client Parse forwarded: '1' forwarded */
	PGS_PARSE_HIDDEN,       /* injected Parse: '1' swallowed */
	PGS_PARSE_FAKE,         /* client Parse not forwarded: we answer '1' */
	PGS_BIND,               /* '2' */
	PGS_DESC_STMT,          /* 't' then 'T' or 'n' */
	PGS_DESC_PORTAL,        /* 'T' or 'n' */
	PGS_EXECUTE,            /* rows, then 'C', 'I' or 's' */
	PGS_CLOSE,              /* '3' */
	PGS_CLOSE_HIDDEN,       /* injected Close: '3' swallowed */
	PGS_CLOSE_FAKE,         /* client Close not forwarded: we answer '3' */
	PGS_SYNC,               /* 'Z' */
	PGS_QUERY,              /* simple query or function call: all up to 'Z' */
	PGS_QUERY_HIDDEN,       /* injected query: all up to 'Z' swallowed */
};

struct pgs_pend {
	uint8_t kind;
	struct pgs_id id;               /* parse/close entries */
	uint64_t t_us;                  /* sync/query: when sent */
};

struct pgs_queue {
	unsigned head, n, cap;
	bool err_skip;                  /* server skips until the next Sync */
	struct pgs_pend *e;
	struct pgs_set *set;            /* statements of this server, or NULL */
};

int pgs_q_init(struct pgs_queue *q, unsigned cap, struct pgs_set *set) HP_MUST_CHECK;
void pgs_q_free(struct pgs_queue *q);
void pgs_q_reset(struct pgs_queue *q);
static inline unsigned pgs_q_len(const struct pgs_queue *q) { return q->n; }
static inline unsigned pgs_q_space(const struct pgs_queue *q) { return q->cap - q->n; }
/*
 * Record a message sent (or, for fakes, answered) in order. Returns 0, 1
 * when the server will skip it (an error is pending until Sync: don't
 * expect an answer, and for Parse don't count the statement as prepared),
 * -ENOBUFS when full.
 */
int pgs_q_push(struct pgs_queue *q, enum pgs_kind kind, const struct pgs_id *id,
	       uint64_t t_us) HP_MUST_CHECK;

enum pgs_action { PGS_FORWARD = 0, PGS_SWALLOW = 1 };
/*
 * A message of `type` arrived from the server. Returns PGS_FORWARD or
 * PGS_SWALLOW, or -EPROTO when it answers nothing we sent (the caller
 * drops the connection). When it completes a Sync or a client's query,
 * *done_t_us gets the time that was pushed with it (else 0); *hidden_err
 * is set when an injected message failed. After forwarding, call
 * pgs_q_drain_fake.
 */
int pgs_q_on_server(struct pgs_queue *q, char type, uint64_t *done_t_us, bool *hidden_err)
	HP_MUST_CHECK;
/* Answer fake entries now at the head (ParseComplete/CloseComplete). */
int pgs_q_drain_fake(struct pgs_queue *q, struct buf *to_client) HP_MUST_CHECK;

#endif
