/*
 * l0.h - the L0 tier: hot keys answered by the kernel (bpf/l0.bpf.c).
 *
 * The daemon decides what lives in L0 (the hottest small keys of L1, within
 * a budget, refreshed every second), keeps it coherent with L1 (an L1 hook
 * removes a key from L0 before any write to it is acknowledged), and
 * enrols the RESP front's connections so the kernel can answer GETs on
 * them without waking userspace. See agent/cache/l0.c for the design.
 */
#ifndef HOTPATH_L0_H
#define HOTPATH_L0_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>
#include "hotpath/common.h"
#include "hotpath/l0_events.h"
#include "hotpath/l1.h"

struct l0;

struct l0_options {
	const char *pin_path;       /* "" = no pinning */
	unsigned max_keys;          /* L0 map size (the budget) */
	unsigned max_value;         /* largest value copied, <= L0_VALUE_MAX */
	unsigned min_heat;          /* GETs per refresh interval to qualify */
	bool enabled;
	bool remote;                /* answer remote clients through the relay socket */
};

struct l0_totals {
	uint64_t hits, segments_answered;
	uint64_t pass_miss, pass_busy, pass_other, pass_error, pass_size;
	uint64_t conns, conn_collisions;
	uint64_t local_conns, local_answered, pass_room;
	uint64_t relay_answered, relay_passed, relay_lost, pass_remote;
	uint64_t relay_closed;      /* connections shut down: their relayed segments were lost */
	uint64_t keys;              /* keys in L0 after the last refresh */
	uint64_t inserts, removals; /* by the refresher */
	uint64_t invalidations;     /* removed by a write (L1 hook) */
	bool enabled;
	bool relay_on;              /* the relay socket answers remote clients ([l0] remote) */
};

/*
 * Load and attach (sock_ops on the cgroup v2 root, the verdict program on
 * l0_socks, the sk_msg program on l0_clients), pin l0_cache and l0_stats, and install the L1 hook. NULL with
 * a one-line reason when the kernel or privileges don't allow it.
 */
struct l0 *l0_start(struct l1 *l1, const struct l0_options *o, char *why, size_t whylen);
/* Enrol connections accepted on this local port (0 = none). */
void l0_set_port(struct l0 *l0, uint16_t port);
/* Switch answering on or off at runtime; off also empties L0 and detaches
 * the sock_ops program from the root cgroup, on attaches it again. 0, or
 * -errno with a reason in why when it cannot be attached (L0 stays off). */
int l0_set_enabled(struct l0 *l0, bool on, char *why, size_t whylen) HP_MUST_CHECK;
/* Answer remote clients through the relay socket, or leave them to the
 * daemon. On opens the relay socket if there is none (0, or -errno with a
 * reason in why: remote clients stay with the daemon); off stops new
 * relayed answers at once and keeps the socket, so the answers already on
 * it are written and a pass behind them keeps its place. */
int l0_set_remote(struct l0 *l0, bool on, char *why, size_t whylen) HP_MUST_CHECK;
/* Re-pick the hot keys (main thread, about once a second). */
void l0_refresh(struct l0 *l0);
/* Remove every key (FLUSHALL also does it through the L1 hook). */
void l0_flush(struct l0 *l0);
void l0_get_totals(struct l0 *l0, struct l0_totals *out);
/* Detach, unpin, clear L1's flags' hook and free. NULL is a no-op. */
void l0_stop(struct l0 *l0);

/* ---- per-connection protocol (agent/net/server.c) -------------------------
 * The kernel answers on a connection only while every byte it passed to
 * the daemon has been read and answered: the daemon publishes the bytes it
 * has read whenever it has no partial command buffered and no reply
 * unsent. */

/* The connection's slot (mmap'd) if sock_ops enrolled it, else NULL;
 * *cookie gets the socket cookie either way (0 if unknown). An enrolled
 * connection's fd is noted: if a relay socket the kernel stopped lost its
 * answers, L0 shuts the connection down (the caller still owns the fd and
 * closes it when its read ends). */
struct l0_conn *l0_conn_lookup(struct l0 *l0, int fd, uint64_t *cookie);
static inline void l0_conn_publish(struct l0_conn *c, uint64_t bytes_read)
{
	__atomic_store_n(&c->done, bytes_read, __ATOMIC_RELEASE);
}
/* Free the connection's slot at close. */
void l0_conn_release(struct l0 *l0, uint64_t cookie);

#endif
