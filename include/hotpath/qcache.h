/*
 * qcache.h - result caching of chosen read-only queries in the pooler
 * (query_cache.*), through the shared cache tiers, invalidated by the
 * writes the pooler sees. See agent/db/qcache.c for what is cached and
 * why. Everything but qcache_get_stats runs on the pooler's thread.
 */
#ifndef HOTPATH_QCACHE_H
#define HOTPATH_QCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include "hotpath/buf.h"

struct qcache;
struct qcap;                            /* one answer being captured */
struct qwait;                           /* a lookup waiting for L2 */

struct qcache_stats {
	uint64_t hits, misses, stores, not_stored, invalidations;
	uint64_t l2_waits;                      /* lookups parked for an L2 read */
	unsigned fingerprints;
};

#define QCACHE_PENDING 16

/* Tables written by a server connection's open transaction. */
struct qcache_pending {
	unsigned n;
	bool flush;                     /* too many, or unnamed: flush the database */
	uint32_t tab[QCACHE_PENDING];
};

/* NULL when `fps` (query_cache.fingerprints, validated by the config) is
 * empty, or on ENOMEM. */
struct qcache *qcache_new(const char *fps, uint64_t ttl_ms, uint64_t max_result);
void qcache_free(struct qcache *qc);
/* Replace the fingerprints, ttl and size bound (SIGHUP). Entries stored
 * stay until their ttl or a write; writes are watched as before, so an
 * entry of a fingerprint listed again later is still fresh. */
void qcache_configure(struct qcache *qc, const char *fps, uint64_t ttl_ms, uint64_t max_result);
void qcache_get_stats(const struct qcache *qc, struct qcache_stats *out);

/*
 * A request running `sql` about to be sent outside a transaction block: a
 * simple Query (next 0), or an extended-protocol request whose other
 * parts - which messages, parameter types, the Bind's values and formats
 * - are in ext[0..next) and belong to the key. 1: answered from the cache
 * (the stored answer appended to out); 0: send it, and when *cap is set
 * capture its answer (qcap_add for every message forwarded to the client,
 * qcap_abort on an error, qcache_finish at its ReadyForQuery). `session`
 * is a digest of the session settings.
 *
 * QCACHE_WAIT: not in L1 and read from L2 without waiting (only when
 * `owner` is not NULL): *wait is set, the request must stay where it is
 * and its client must not go on until qcache_drain hands `owner` to its
 * `ready` callback; then the same call again answers from that read. The
 * caller owns *wait and gives it up with qcache_wait_drop if the client
 * leaves (or the request is not looked up again).
 */
#define QCACHE_WAIT 2
int qcache_lookup(struct qcache *qc, const char *db, const char *user, const void *session,
		  size_t slen, const char *sql, size_t len, const struct iovec *ext, unsigned next,
		  struct buf *out, struct qcap **cap, struct qwait **wait, void *owner);
/* How the L2 dispatcher's thread tells the pooler's loop to call
 * qcache_drain (called once per batch of answers; must not block). */
void qcache_set_waker(struct qcache *qc, void (*wake)(void *arg), void *arg);
/* Pooler thread: take the answers back; ready(owner) for each parked
 * request whose client is still there (ready NULL: drop them all). */
void qcache_drain(struct qcache *qc, void (*ready)(void *owner));
/* The parked request's client left (NULL no-op). */
void qcache_wait_drop(struct qwait *w);
void qcap_add(struct qcap *c, const void *p, size_t n);
void qcap_abort(struct qcap *c);
/* Store the captured answer if ok, complete, small enough and no table it
 * reads was written meanwhile; frees c (NULL no-op). */
void qcache_finish(struct qcache *qc, struct qcap *c, bool ok);

/* A statement about to run: if it may write, drop the entries of the
 * tables it writes and remember them in pend. 1 if it writes. sql NULL:
 * a statement whose text is not known (a named statement the pooler did
 * not keep), taken as writing anything in db. */
int qcache_note_write(struct qcache *qc, const char *db, const char *sql, size_t len,
		      struct qcache_pending *pend);
/* The server's transaction ended: drop those tables' entries again. */
void qcache_txn_end(struct qcache *qc, const char *db, struct qcache_pending *pend);

#endif
