/*
 * l2_int.h - what l2.c shares with its dispatcher (l2_async.c): the node
 * table, the slot map and the connection helpers. Not a public API.
 */
#ifndef HOTPATH_L2_INT_H
#define HOTPATH_L2_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <hiredis/hiredis.h>
#include "hotpath/l2.h"

#define L2_NO_NODE 0xffff
#define L2_MAX_REDIRECTS 5
#define L2_MAX_PIPE 4
#define L2_DOWN_BACKOFF_MS 300
#define L2_REFRESH_MIN_MS 100
#define L2_UNLINK_BATCH 512

struct l2_conn {
	redisContext *c;
	bool busy;
	uint64_t track_gen;            /* node->ic_gen it registered with */
};

struct l2_node {
	char host[HP_ADDR_MAX];
	uint16_t port;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned idx;                  /* in l2->nodes[] */
	struct l2_conn *pool;
	_Atomic uint64_t down_until_ms;
	/* invalidation connection: touched by the event thread only */
	redisContext *ic;
	uint64_t ic_retry_ms;
	bool ic_was_lost;
	_Atomic long long ic_id;
	_Atomic uint64_t ic_gen;       /* bumped on every (re)connect and loss */
	_Atomic bool ic_up;
	_Atomic bool up;               /* last data connect worked */
};

struct l2 {
	struct l2_options o;
	bool cluster;
	struct l2_node *nodes[L2_MAX_NODES];
	_Atomic unsigned n_nodes;
	pthread_mutex_t nodes_mu;      /* serialises node additions */
	pthread_rwlock_t topo;
	uint16_t slots[L2_SLOTS];
	_Atomic uint64_t last_refresh_ms;
	char seeds[HP_LIST_MAX];
	pthread_t ev_thread;
	bool ev_started;
	_Atomic bool stop;
	_Atomic uint64_t calls, errors, timeouts, moved, ask, reconnects, refreshes;
	_Atomic uint64_t invalidations, inval_flushes, messages, coherence_losses;
	struct hist usec;
	struct l2_disp *disp;          /* asynchronous calls (l2_async.c) */
};

struct l2_disp;

/* hiredis context error as -errno (-ETIMEDOUT, -ECONNREFUSED, -EIO...). */
int l2_ctx_errno(const redisContext *c);
/* Find or add the node host:port (*idx its index); NULL when full/ENOMEM. */
struct l2_node *l2_node_get(struct l2 *l, const char *host, uint16_t port, unsigned *idx);
/* The node serving `slot` (-1 or standalone: the first), NULL if none. */
struct l2_node *l2_node_for_slot(struct l2 *l, int slot);
/* Reload the cluster slot map (blocking; rate limited unless force). */
void l2_cluster_refresh(struct l2 *l, bool force);

/* l2_async.c: start / stop the dispatcher (l2_new / l2_free). */
int l2_disp_start(struct l2 *l, char *err, size_t errlen);
void l2_disp_stop(struct l2 *l);
/* Fill the async_* fields of out. */
void l2_disp_stats(struct l2 *l, struct l2_stats *out);

#endif
