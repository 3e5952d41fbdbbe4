/*
 * tier_int.h - what tier.c lends the strategy runtime (strat_run.c) and
 * the warm jobs (warm.c): its coherence primitives. Not a public API.
 */
#ifndef HOTPATH_TIER_INT_H
#define HOTPATH_TIER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hotpath/loader.h"
#include "hotpath/strategy.h"
#include "hotpath/tier.h"

struct strategies;

/* Note the key's "caching in progress" snapshot before asking an origin. */
void tier_read_begin(struct tier *t, const char *key, size_t klen, uint64_t *seq,
		     uint64_t *epoch);
/* Store a fetched value in L1 (expire_at_ms absolute, 0 = none) unless an
 * invalidation of the key happened since tier_read_begin. true if stored. */
bool tier_fill(struct tier *t, const char *key, size_t klen, const char *val, size_t vlen,
	       uint64_t expire_at_ms, uint64_t seq, uint64_t epoch);
/* Drop the key from L1 and L0 (a write is about to change it). */
void tier_drop_key(struct tier *t, const char *key, size_t klen);
/* L2 through the tier's breaker: 1 hit (v filled), 0 miss, -errno. */
int tier_l2_read(struct tier *t, const char *key, size_t klen, struct l2_value *v, char *err,
		 size_t errlen);
/* SET key val PX ttl_ms on L2 (ttl 0 = none), then drop local copies. */
int tier_l2_write(struct tier *t, const char *key, size_t klen, const char *val, size_t vlen,
		  uint64_t ttl_ms, char *err, size_t errlen);
/* The -BUSY a client gets when it may not park (resp.max_parked_clients),
 * waiting for "L2" or "loads". */
int tier_reply_park_refused(struct buf *out, const char *waiting_for);
/*
 * Work that may wait (blocking round trips) for a RESP client: the client
 * is parked and run(arg, out) goes to the task processor (high priority,
 * one attempt); the reply it builds in out is handed to the client.
 * release(arg) runs exactly once, after run or instead of it (the client
 * then hears "nothing was <undone>": task queue full, shutdown).
 * tier_park_task returns TIER_PARKED, or, when the client may not park
 * (-BUSY ... waiting for <waiting_for>) or on ENOMEM, what appending that
 * error to out returned.
 */
struct tier_park_job {
	const char *kind;                /* the task's kind (static) */
	const char *waiting_for;         /* "L2", "writes" */
	const char *undone;              /* "invalidated", "written" */
	int (*run)(void *arg, struct buf *out);
	void (*release)(void *arg);
	void *arg;
};
struct tasks;
int tier_park_task(struct tasks *tasks, const struct resp_defer *defer,
		   const struct tier_park_job *job, const char *label, size_t llen,
		   struct buf *out);
/* Hand a parked client its reply b (arc: how building it went; an error
 * replaces it if that failed), then free b's storage. */
void tier_deliver_reply(const struct resp_defer *defer, void *ticket, struct buf *b, int arc);
struct l1 *tier_l1(struct tier *t);
/* Hand the strategies to the tier (NULL to take them back). */
void tier_set_strategies(struct tier *t, struct strategies *s);
/* Use the current strategies without a lock: the calling thread names
 * them in its hazard slot until tier_strat_leave (nests). NULL: none. */
struct strategies *tier_strat_enter(struct tier *t);
void tier_strat_leave(void);
/* Install `s` (may be NULL) and retire the current set: it is freed once
 * it is idle and no thread names it. 0, or -EBUSY (too many retired sets
 * still draining; nothing changed, message in err). */
int tier_swap_strategies(struct tier *t, struct strategies *s, char *err, size_t errlen);
/* A hold keeps a set alive past the hazard that found it. */
void strategies_hold(struct strategies *s);
/* No hold left and no write-behind write pending. */
bool strategies_idle(struct strategies *s);

/* strat_run.c, for tier.c */
struct strategies *strategies_new(const struct hp_config *c, struct tier *t, struct tasks *tasks,
				  char *err, size_t errlen);
void strategies_free(struct strategies *s);
/* Queue pending write-behind batches (maintenance tick, shutdown). */
void strategies_tick(struct strategies *s);
/* GET of a key: 1 and the reply appended if a strategy covers it, 0 if
 * not (the caller goes on), TIER_PARKED if it needs its loader and
 * `defer` (may be NULL) parked the client (the load runs on the task
 * processor, the reply goes to defer->done), -ENOBUFS/-ENOMEM from the
 * buffer. */
int strategies_get(struct strategies *s, const char *key, size_t klen, struct buf *out,
		   const struct resp_defer *defer);
/* A command from the RESP front: TIER_LOCAL if no strategy with a writer
 * covers its keys (the caller goes on), TIER_PARKED if `defer` (may be
 * NULL) parked the client while the write runs on the task processor (the
 * loader's write and the L2 store may wait; the reply goes to
 * defer->done), else 0 or -ENOBUFS/-ENOMEM. */
int strategies_exec(struct strategies *s, const char *name, const char *const *argv,
		    const size_t *len, size_t argc, int first, int last, int step, bool write,
		    struct buf *out, const struct resp_defer *defer);
/* Load one key through its strategy into the caches (warming):
 * 1 loaded, 0 no strategy with a loader covers it / not found, -errno. */
int strategies_warm_key(struct strategies *s, const char *key, size_t klen, char *err,
			size_t errlen);
/* TTL a strategy gives a key (fresh + stale windows), 0 if none covers it. */
uint64_t strategies_key_ttl(struct strategies *s, const char *key, size_t klen);
struct loader *strategies_loader(struct strategies *s, const char *name);

#endif
