/*
 * l1.h - the L1 tier: a sharded in-memory key/value store.
 *
 * Keys and values are binary-safe byte strings. The store is split into
 * shards (a power of two), each with its own lock, hash table, eviction
 * queues and a share of the memory limit, so the worker threads rarely
 * contend. Memory accounting counts key, value and per-entry overhead, and
 * the limit is hard: a SET that cannot fit after eviction fails with
 * -ENOMEM (the RESP front answers with Redis's OOM error).
 *
 * Eviction policy is S3-FIFO by default (LRU selectable for comparison); see
 * agent/cache/l1.c for why. Entries carry a priority: low-priority entries
 * are evicted before normal ones, normal before high. Keys are grouped into
 * partitions by longest matching prefix; a partition may carry its own
 * memory quota, default TTL and priority, and partitions can be replaced
 * live (the REST /cache/policies route).
 *
 * TTLs are absolute monotonic milliseconds. Expired keys are removed lazily
 * when touched and actively by l1_active_expire() called from a timer.
 *
 * Thread-safety: every function may be called from any thread. Callbacks
 * (l1_value_fn, l1_key_fn) run with a shard lock held: they must copy what
 * they need and must not call back into the store.
 */
#ifndef HOTPATH_L1_H
#define HOTPATH_L1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hotpath/common.h"

struct l1;

enum l1_policy { L1_POLICY_S3FIFO = 0, L1_POLICY_LRU = 1 };
enum l1_prio { L1_PRIO_LOW = 0, L1_PRIO_NORMAL = 1, L1_PRIO_HIGH = 2, L1_PRIO_COUNT = 3 };
/* Priority given by the caller of l1_set, or the partition's default. */
#define L1_PRIO_DEFAULT (-1)

#define L1_MAX_PARTITIONS 64
#define L1_NO_TTL 0 /* expire_at_ms value meaning "never expires" */

struct l1_options {
	uint64_t max_memory;        /* bytes, hard limit over all shards */
	enum l1_policy policy;
	unsigned shards;            /* rounded up to a power of two; 0 = 64 */
	/* Clock in monotonic ms; NULL = hp_now_ms. Tests inject their own. */
	uint64_t (*now_ms)(void *arg);
	void *now_arg;
};

struct l1_partition {
	char name[64];
	char prefix[128];           /* "" matches every key (the default partition) */
	uint64_t max_memory;        /* 0 = no quota beyond the global limit */
	uint64_t default_ttl_ms;    /* 0 = none */
	int priority;               /* enum l1_prio */
};

enum l1_evict_reason {
	L1_EVICT_MEMORY = 0,        /* global memory limit */
	L1_EVICT_QUOTA,             /* partition quota */
	L1_EVICT_PRESSURE,          /* shrink under host memory pressure */
	L1_EVICT_REASONS
};

struct l1_part_stats {
	char name[64];
	char prefix[128];
	uint64_t max_memory, default_ttl_ms;
	int priority;
	uint64_t keys, memory;
	uint64_t hits, misses, sets, evictions, expired;
};

struct l1_stats {
	uint64_t keys, memory, max_memory, effective_max_memory;
	uint64_t hits, misses, sets, deletes;
	uint64_t expired_lazy, expired_active;
	uint64_t evictions[L1_EVICT_REASONS];
	uint64_t keys_with_ttl;
	int policy;                 /* enum l1_policy in use */
	unsigned n_partitions;
	struct l1_part_stats partitions[L1_MAX_PARTITIONS];
};

/* Value access callback: value bytes, length, absolute expiry (0 = none). */
typedef void (*l1_value_fn)(const char *val, size_t len, uint64_t expire_at_ms, void *arg);
/* Key iteration callback; return false to stop early. */
typedef bool (*l1_key_fn)(const char *key, size_t klen, void *arg);
/* L0 coherence hook: the entry `key` was copied to L0 and is about to
 * change or go; the hook must remove the L0 copy before returning. */
typedef void (*l1_l0_hook_fn)(const char *key, size_t klen, void *arg);
/* Hot-key callback: `heat` ~ GETs since the previous scan. */
typedef void (*l1_hot_fn)(const char *key, size_t klen, size_t vlen, unsigned heat, void *arg);

/* Create a store. Returns NULL (and frees partial state) on bad options or ENOMEM. */
struct l1 *l1_new(const struct l1_options *o);
/* Free the store and every entry. NULL is a no-op. */
void l1_free(struct l1 *l);

/*
 * Look up `key`. On a hit calls fn (may be NULL) under the shard lock and
 * returns 1; returns 0 on a miss (expired keys count as misses and are
 * removed). Counts hits/misses and feeds the eviction policy.
 */
int l1_get(struct l1 *l, const char *key, size_t klen, l1_value_fn fn, void *arg);

/* Flags for l1_set. */
#define L1_SET_NX      (1u << 0)  /* only if absent */
#define L1_SET_XX      (1u << 1)  /* only if present */
#define L1_SET_KEEPTTL (1u << 2)  /* keep the existing TTL */
#define L1_SET_GET     (1u << 3)  /* report the old value through fn */

/*
 * Store `key`=`val`. `expire_at_ms` is absolute (L1_NO_TTL for none; then
 * the partition's default TTL applies unless KEEPTTL). `prio` is an
 * enum l1_prio or L1_PRIO_DEFAULT. With L1_SET_GET the old value (if any) is
 * passed to fn before it is replaced. Returns 1 if stored, 0 if NX/XX
 * prevented it, -ENOMEM if it cannot fit within the limits (nothing
 * changed), -E2BIG if a single entry exceeds its shard's share.
 */
int l1_set(struct l1 *l, const char *key, size_t klen, const char *val, size_t vlen,
	   uint64_t expire_at_ms, int prio, unsigned flags, l1_value_fn fn, void *arg) HP_MUST_CHECK;

/* GETDEL: calls fn with the value and deletes. 1 if it existed, else 0. */
int l1_getdel(struct l1 *l, const char *key, size_t klen, l1_value_fn fn, void *arg);
/* Delete; 1 if it existed, else 0. */
int l1_del(struct l1 *l, const char *key, size_t klen);
/* 1 if present and not expired (does not count as a hit). */
int l1_exists(struct l1 *l, const char *key, size_t klen);

#define L1_EXPIRE_NX (1u << 0)
#define L1_EXPIRE_XX (1u << 1)
#define L1_EXPIRE_GT (1u << 2)
#define L1_EXPIRE_LT (1u << 3)
/* Set absolute expiry (a time in the past deletes the key). 1 if set, 0 if
 * the key is missing or a flag prevented it. */
int l1_expire(struct l1 *l, const char *key, size_t klen, uint64_t expire_at_ms, unsigned flags);
/* Remove the TTL. 1 if a TTL was removed, 0 otherwise. */
int l1_persist(struct l1 *l, const char *key, size_t klen);
/* Remaining TTL in ms; -1 if the key has none, -2 if it does not exist. */
int64_t l1_pttl(struct l1 *l, const char *key, size_t klen);
/* Value length, 0 if missing. */
size_t l1_strlen(struct l1 *l, const char *key, size_t klen);

/*
 * INCRBY: atomically parse the value as a base-10 int64 (missing = 0), add
 * delta, store the result keeping the TTL. 0 and *result on success;
 * -EINVAL if the value is not an integer, -ERANGE on overflow, -ENOMEM.
 */
int l1_incrby(struct l1 *l, const char *key, size_t klen, int64_t delta, int64_t *result) HP_MUST_CHECK;

/*
 * SCAN: visit up to about `count` keys starting at `cursor` (0 to start),
 * calling fn for those matching the glob `pattern` (NULL = all). Returns
 * the next cursor, 0 when the iteration is complete. Keys present for the
 * whole iteration are returned at least once, even across resizes.
 */
uint64_t l1_scan(struct l1 *l, uint64_t cursor, size_t count, const char *pattern,
		 size_t patlen, l1_key_fn fn, void *arg);
/* Number of live keys (approximate under concurrent writes). */
uint64_t l1_dbsize(struct l1 *l);
/* Delete every key. Returns how many were deleted. */
uint64_t l1_flush(struct l1 *l);
/* Delete keys matching a glob; returns how many. Bounded by the key count. */
uint64_t l1_delete_pattern(struct l1 *l, const char *pattern, size_t patlen);

/* Active expiry: examine at most `budget` keys with a TTL across shards,
 * removing expired ones. Returns how many were removed. */
unsigned l1_active_expire(struct l1 *l, unsigned budget);

/*
 * Replace the partition table (at most L1_MAX_PARTITIONS entries; an
 * implicit default partition with prefix "" always exists). Existing keys
 * are re-accounted to their new partitions. 0 or -EINVAL (duplicate name or
 * prefix, too many) / -ENOMEM; on failure the old table stays.
 */
int l1_set_partitions(struct l1 *l, const struct l1_partition *parts, unsigned n) HP_MUST_CHECK;

/* Change the global memory limit (config reload) and evict down to it. */
void l1_set_max_memory(struct l1 *l, uint64_t bytes);
/*
 * Shrink or restore the effective limit under host memory pressure:
 * `permille` of max_memory (1000 = all of it). Evictions caused by this are
 * counted under L1_EVICT_PRESSURE.
 */
void l1_set_pressure_limit(struct l1 *l, unsigned permille);
/* Switch policy at runtime (existing entries keep their queue positions
 * approximately). */
void l1_set_policy(struct l1 *l, enum l1_policy p);

/* ---- L0 support (agent/cache/l0.c) -------------------------------------
 * An entry copied into the kernel's L0 map carries a flag; whenever such
 * an entry is replaced, deleted, evicted, expired, flushed or has its TTL
 * changed, the hook runs under the shard lock before the change is
 * visible, so a write is never acknowledged while L0 still holds the old
 * value. */

/* Install the hook (once, before traffic). */
void l1_set_l0_hook(struct l1 *l, l1_l0_hook_fn fn, void *arg);
/*
 * Walk every entry once: report those with key <= max_klen, value <=
 * max_vlen and heat >= min_heat to fn (under the shard lock: copy what you
 * need), then halve every entry's heat so it measures recent traffic.
 */
void l1_hot_scan(struct l1 *l, size_t max_klen, size_t max_vlen, unsigned min_heat,
		 l1_hot_fn fn, void *arg);
/*
 * Flag `key` as copied to L0 and call fn with its value and deadline under
 * the shard lock, so the caller inserts into L0 atomically with respect to
 * writers of that key. 1 if done, 2 if it was already flagged (fn not
 * called: L0 holds the current value), 0 if the key is missing or expired.
 */
int l1_l0_mark(struct l1 *l, const char *key, size_t klen, l1_value_fn fn, void *arg);
/* Clear the flag (the caller has removed, or will remove, the L0 copy
 * under the same rules). 1 if it was set. fn, if not NULL, runs under the
 * shard lock while the flag is still set. */
int l1_l0_unmark(struct l1 *l, const char *key, size_t klen, void (*fn)(void *arg), void *arg);
/*
 * Credit `gets` GETs that L0 answered in the kernel to the entry, as if L1
 * had served them: its heat (so a key stays in L0 while the kernel serves
 * it, instead of cooling because L1 no longer sees its GETs) and its
 * eviction standing. 1 if the key exists, else 0.
 */
int l1_l0_credit(struct l1 *l, const char *key, size_t klen, unsigned gets);

void l1_get_stats(struct l1 *l, struct l1_stats *out);
const char *l1_policy_name(enum l1_policy p);
int l1_policy_parse(const char *s, enum l1_policy *out) HP_MUST_CHECK;

/* Redis-compatible glob match (*, ?, [a-z], [^x], \x escapes). */
bool glob_match(const char *pat, size_t patlen, const char *s, size_t slen, bool nocase);
/* One glob token at pat[pi] (not '*') against byte c: whether it matches,
 * and its length in *tlen (strategy captures walk patterns with it). */
bool glob_token(const unsigned char *pat, size_t plen, size_t pi, unsigned char c,
		bool nocase, size_t *tlen);

#endif
