/*
 * l2.h - the L2 tier: Redis or Redis Cluster through hiredis.
 *
 * Pooled connections per Redis node (connect and command timeouts), each
 * request sent as one pipeline (GET + PTTL for a read-through, ASKING +
 * command after an ASK redirect, batches of UNLINK). In cluster mode keys
 * are routed by slot (CRC16-XMODEM of the key or its {hash tag}, modulo
 * 16384), the slot map comes from CLUSTER SLOTS, MOVED updates it and
 * triggers a refresh, ASK is followed once, and a node that fails makes
 * the map refresh so a promoted replica takes over.
 *
 * Coherence: with tracking on, every node has one invalidation connection
 * subscribed to __redis__:invalidate (RESP2) and to the cross-agent
 * channel; each data connection runs CLIENT TRACKING on REDIRECT <its
 * node's invalidation connection>. An event thread reads those connections
 * and calls back: keys invalidated, channel messages, and coherence lost /
 * regained when an invalidation connection drops or comes back (the
 * caller must then assume it missed invalidations).
 *
 * Asynchronous calls (l2_get_async, l2_set_async, l2_command_async): a
 * dispatcher thread owns one non-blocking pipelined connection per node.
 * Callers hand it
 * requests through a bounded queue (queue_max requests queued or in
 * flight, then -EAGAIN at once); each loop turn it writes everything
 * queued for a node as one pipeline (one write for many requests) and
 * answers each request from its own thread as its replies come back, in
 * order. Redirects (MOVED, ASK, TRYAGAIN), tracking registration,
 * timeouts and the refused-node back-off behave as for the blocking
 * calls.
 *
 * Thread-safety: every function may be called from any thread; blocking
 * calls block for at most about connect_timeout + command_timeout per
 * node tried; asynchronous ones never block.
 */
#ifndef HOTPATH_L2_H
#define HOTPATH_L2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hotpath/buf.h"
#include "hotpath/common.h"
#include "hotpath/config.h"
#include "hotpath/hist.h"

struct l2;
struct redisReply;

#define L2_SLOTS 16384
#define L2_MAX_NODES 64

struct l2_events {
	/* Redis says `key` changed; key NULL: everything (FLUSHALL). */
	void (*invalidate)(void *arg, const char *key, size_t klen);
	/* A message arrived on the cross-agent channel. */
	void (*message)(void *arg, const char *msg, size_t len);
	/* ok=false: an invalidation connection was lost; ok=true: one that
	 * had been lost is back. Either way invalidations may have been
	 * missed in between. */
	void (*coherence)(void *arg, bool ok);
	void *arg;
};

struct l2_options {
	char address[HP_ADDR_MAX];       /* standalone "host:port", or "" */
	char cluster[HP_LIST_MAX];       /* cluster seeds "h:p,h:p", or "" */
	unsigned pool_size;              /* connections per node; 0 = 4 */
	uint64_t connect_timeout_ms;     /* 0 = 500 */
	uint64_t command_timeout_ms;     /* 0 = 200 */
	bool tracking;                   /* CLIENT TRACKING + invalidation thread */
	unsigned queue_max;              /* async requests queued + in flight; 0 = 4096 */
	char channel[HP_NAME_MAX];       /* cross-agent channel, "" = none */
	struct l2_events ev;
};

struct l2_value {
	char *val;                       /* malloc'd, caller frees (l2_value_free) */
	size_t len;
	int64_t pttl_ms;                 /* -1: no TTL */
	bool cacheable;                  /* read on a connection tracked by a live
					  * invalidation connection */
};

struct l2_node_stats {
	char addr[HP_ADDR_MAX + 8];
	bool up, tracking_up;
	unsigned slots;
};

struct l2_stats {
	bool cluster, coherent;
	unsigned n_nodes;
	struct l2_node_stats nodes[L2_MAX_NODES];
	uint64_t calls, errors, timeouts, moved, ask, reconnects, topology_refreshes;
	uint64_t invalidations, invalidation_flushes, messages, coherence_losses;
	struct hist usec;
	/* the dispatcher: requests queued now (not yet written), written and
	 * awaiting replies now, pipelined writes, requests done, refused
	 * because the queue was full, timed out */
	uint64_t async_queued, async_inflight, async_batches, async_requests;
	uint64_t async_rejected, async_timeouts;
	unsigned async_queue_max;
	struct hist async_batch_size;    /* requests per pipelined write */
};

/*
 * Connect (the first node, or the cluster map) and start the event thread.
 * A Redis that is down at start is not an error: calls fail until it is
 * back. NULL with a message in err on bad options or ENOMEM.
 */
struct l2 *l2_new(const struct l2_options *o, char *err, size_t errlen);
void l2_free(struct l2 *l);

/*
 * GET + PTTL of key, pipelined. 1 found (*out filled, free with
 * l2_value_free), 0 no such key, -ETIMEDOUT / -ECONNREFUSED / -EIO /
 * -EPROTO (message in err).
 */
int l2_get(struct l2 *l, const char *key, size_t klen, struct l2_value *out,
	   char *err, size_t errlen) HP_MUST_CHECK;
void l2_value_free(struct l2_value *v);

/*
 * Asynchronous GET + PTTL (l2_get_async) or SET key val [PX ttl_ms]
 * (l2_set_async, ttl 0 = none) through the dispatcher. Returns 0 when
 * queued: fn is then called exactly once, on the dispatcher thread (or
 * in l2_free with -ESHUTDOWN), with rc as l2_get (1 found, 0 not found;
 * a SET gives 0 for OK) or -errno and a message in err; v (GET found
 * only) and err are valid during the call only, and v->val is not to be
 * freed. fn must not block. Returns -EAGAIN when the queue is full,
 * -ENOMEM, or -ESHUTDOWN, and fn is not called. The key and value are
 * copied.
 */
/* The dispatcher holds queue_max requests now (a hint: it may change). */
bool l2_async_full(struct l2 *l);
typedef void (*l2_done_fn)(void *arg, int rc, const struct l2_value *v, const char *err);
int l2_get_async(struct l2 *l, const char *key, size_t klen, l2_done_fn fn,
		 void *arg) HP_MUST_CHECK;
int l2_set_async(struct l2 *l, const char *key, size_t klen, const char *val, size_t vlen,
		 uint64_t ttl_ms, l2_done_fn fn, void *arg) HP_MUST_CHECK;
/*
 * Any command with a key at argv[key_index] (>= 1, it routes the command)
 * through the dispatcher, its reply handed back: fn is called exactly once
 * as for l2_get_async, with rc 0 and r the reply (a Redis error reply is
 * a reply, as for l2_command; r valid during the call only, freed by the
 * dispatcher) or rc -errno, r NULL and a message in err. Not for commands
 * that block in Redis (BLPOP...): they would hold every request queued
 * behind them on the node's connection. The arguments are copied.
 * Returns as l2_get_async, or -EINVAL for a bad key_index.
 */
typedef void (*l2_reply_fn)(void *arg, int rc, const struct redisReply *r, const char *err);
int l2_command_async(struct l2 *l, int argc, const char *const *argv, const size_t *lens,
		     int key_index, l2_reply_fn fn, void *arg) HP_MUST_CHECK;

/*
 * Run one command; routed by argv[key_index] (0: any node). On success
 * (also for a Redis error reply, which is a reply) returns 0 and *reply,
 * freed with l2_reply_free. -errno as l2_get on transport failure.
 */
int l2_command(struct l2 *l, int argc, const char *const *argv, const size_t *lens,
	       int key_index, struct redisReply **reply, char *err, size_t errlen) HP_MUST_CHECK;
void l2_reply_free(struct redisReply *r);
/* Append a hiredis reply as RESP2. 0 or -ENOBUFS/-ENOMEM. */
int l2_reply_to_resp(const struct redisReply *r, struct buf *out) HP_MUST_CHECK;
/* True if the reply is a Redis error. */
bool l2_reply_is_error(const struct redisReply *r);

/* PUBLISH on the cross-agent channel. 0 or -errno. */
int l2_publish(struct l2 *l, const char *msg, size_t len, char *err, size_t errlen) HP_MUST_CHECK;

/*
 * Delete every key matching the glob on every master (SCAN MATCH +
 * pipelined UNLINK). *deleted counts keys removed. 0 or -errno (keys
 * deleted before the failure stay deleted and are counted).
 */
int l2_delete_pattern(struct l2 *l, const char *pattern, size_t plen, uint64_t *deleted,
		      char *err, size_t errlen) HP_MUST_CHECK;
/* Visit keys matching the glob on every master (for warming), at most
 * `max`; fn returns false to stop. 0 or -errno. */
int l2_scan(struct l2 *l, const char *pattern, size_t plen, uint64_t max,
	    bool (*fn)(const char *key, size_t klen, void *arg), void *arg,
	    char *err, size_t errlen) HP_MUST_CHECK;

/* Every node's invalidation connection is up (always true without tracking). */
bool l2_coherent(struct l2 *l);
void l2_get_stats(struct l2 *l, struct l2_stats *out);

/* Redis Cluster's key slot: CRC16-XMODEM of the key or of its first
 * non-empty {hash tag}, modulo 16384. */
unsigned l2_key_slot(const char *key, size_t klen);
uint16_t l2_crc16(const char *p, size_t n);
/*
 * Parse a cluster redirect error text, "MOVED 3999 127.0.0.1:6381" or
 * "ASK 3999 [::1]:6381" (`kind` is "MOVED" or "ASK"), NUL-terminated.
 * true with slot, host and port filled; false for anything else (slot out
 * of range, bad address, trailing text).
 */
bool l2_parse_redirect(const char *s, const char *kind, unsigned *slot, char *host,
		       size_t hostlen, uint16_t *port);

#endif
