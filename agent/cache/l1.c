/*
 * l1.c - the L1 tier: a sharded, memory-bounded in-memory key/value store
 * (API and thread-safety contract in include/hotpath/l1.h).
 *
 * Layout. The store is 2^k shards; a key's 64-bit XXH3 hash (seeded per
 * store from getrandom, so clients cannot aim many keys at one chain) picks
 * the shard with its top k bits and the bucket with its low bits. Each shard
 * owns one mutex, a chained hash table whose power-of-two bucket array
 * doubles when the load factor passes 1 and shrinks when it falls under
 * 1/8, its eviction queues, its ghost table, its counters and a 1/2^k share
 * of every byte limit. A resize rehashes the whole shard at once under its
 * lock: sharding keeps each shard small enough that this costs well under a
 * millisecond, which is simpler than Redis's incremental rehash and keeps
 * lookups to a single table. Everything a shard touches is guarded by that
 * shard's lock, so GET is: hash, lock, short chain walk, callback, bump a
 * 2-bit counter, count a hit, unlock.
 *
 * Memory accounting (max_memory 0 means unlimited, as in Redis). A shard charges sizeof(struct l1_entry) + key + value
 * for every entry, plus its index (bucket array and ghost slots, 24 bytes
 * per bucket). The limit is hard: l1_set first checks that the entry could
 * fit if everything else were evicted (-E2BIG if it exceeds the shard's
 * share of max_memory or of its partition's quota, -ENOMEM if the share is
 * taken by the index or the allocation fails), allocates, and only then
 * evicts, so a failed SET changes nothing. The index only grows when the
 * growth itself fits under the limit.
 *
 * Eviction policy: S3-FIFO (Yang et al., SOSP'23), per priority class. New
 * keys enter a small FIFO (~10% of the class's bytes); a hit only bumps a
 * 2-bit frequency counter, never moves anything. Evicting from the small
 * queue promotes entries hit while there to the main FIFO and drops the rest
 * into a ghost table of hashes; evicting from main reinserts entries with a
 * non-zero counter (decrementing it), i.e. CLOCK. A new key found in the
 * ghost goes straight to main. Why this one:
 *   - vs LRU: a hit under LRU is a list splice (two cache lines dirtied and a
 *     write on every GET); S3-FIFO's hit is a counter bump. LRU lets one
 *     sequential scan flush the hot set; here scanned keys die in the small
 *     queue. Most keys in caching workloads are one-hit wonders, and the
 *     small queue filters them before they cost main-queue space.
 *   - vs SIEVE: similar hit path and simpler, but SIEVE keeps new keys in the
 *     same queue as the hot ones, so scans and one-hit wonders still dilute
 *     it, and its hand walks over retained entries on every eviction.
 *   - vs W-TinyLFU: comparable miss ratios, but it needs a count-min sketch
 *     updated on every access (several random writes per GET), periodic
 *     aging and an LRU window; more state and more hot-path work for a store
 *     whose GET is meant to be one lock and one counter.
 * LRU stays selectable (doubly linked list, move to front on hit) for
 * comparison; bench/cachesim.c measures both against Belady's optimum.
 *
 * Priorities: each shard keeps one set of queues per priority class and
 * evicts from the lowest non-empty class first, so a low entry always goes
 * before a normal one and a normal one before a high one.
 *
 * Partitions: keys map to the partition with the longest matching prefix
 * (index 0 is the default, prefix ""). A quota is split per shard exactly
 * like the global limit (quota / shards) rather than accounted globally with
 * atomics: a global counter would let one shard be over its fair part while
 * the SET in another shard has nothing of that partition to evict, forcing
 * either cross-shard locking (lock-order hazards on the hot path) or
 * spurious failures. The per-shard split needs no extra synchronisation and,
 * since keys hash uniformly, is within noise of the global figure for any
 * partition with more than a handful of keys. Quota eviction walks the same
 * queues from the cold end (lowest class, small then main) picking only the
 * partition's entries: FIFO/LRU order within the partition, ignoring the
 * frequency bits. Each shard holds a pointer to the (immutable) partition
 * table it uses; l1_set_partitions swaps it shard by shard under the shard
 * lock while re-accounting that shard's keys, and frees the old table only
 * once no shard points to it.
 *
 * Expiry: absolute monotonic ms per entry, checked lazily whenever a key is
 * touched, and actively by l1_active_expire, which walks buckets with a
 * persistent reverse-binary cursor (the same one SCAN uses), so repeated
 * calls visit every bucket even while tables resize.
 *
 * SCAN: the cursor keeps the shard index in its low bits and, above them, a
 * bucket cursor incremented in bit-reversed order (the technique Redis's
 * dictScan uses): because table sizes are powers of two, all buckets a key
 * could be in after a grow or shrink are visited after the one it was in,
 * so keys present throughout are returned at least once.
 *
 * Not done here, deliberately: no persistence, no value types beyond byte
 * strings, no per-entry allocation beyond one malloc (key and value share
 * it), no background threads (callers drive l1_active_expire).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>
#include <xxhash.h>
#include "hotpath/l1.h"

#define L1_DEFAULT_SHARDS   64u
#define L1_MAX_SHARDS       4096u
#define L1_MIN_BUCKETS      16u
#define L1_GHOST_WAYS       4u
#define L1_SMALL_PERMILLE   100u  /* S3-FIFO small queue: 10% of the class */
#define L1_FREQ_MAX         3u    /* 2-bit counter */
#define L1_PROMOTE_FREQ     1u    /* hits in small needed to move to main */

enum { Q_SMALL = 0, Q_MAIN = 1, Q_COUNT = 2 };

#define E_PRIO_FROM_PART 0x1u     /* priority came from the partition default */
#define E_IN_L0 0x2u              /* copied into the kernel's L0 map */
#define L1_HEAT_MAX 255u

struct l1_entry {
	struct l1_entry *hnext;       /* hash chain */
	struct l1_entry *prev, *next; /* policy queue; head = newest */
	uint64_t hash;
	uint64_t expire_at;           /* 0 = none */
	uint32_t klen, vlen;
	uint8_t prio, queue, freq, part, flags;
	uint8_t heat;                 /* GETs since the last hot scan (halved each scan) */
	char data[];                  /* key bytes, then value bytes */
};

struct l1_list {
	struct l1_entry *head, *tail;
};

struct l1_class {
	struct l1_list q[Q_COUNT];
	uint64_t bytes[Q_COUNT];
};

struct l1_ghost_slot {
	uint64_t hash;
	uint32_t seq;                 /* 0 = empty */
	uint32_t unused;
};

struct l1_pacct {
	uint64_t keys, mem, hits, misses, sets, evictions, expired;
};

/* Immutable once published; replaced as a whole by l1_set_partitions. */
struct l1_ptable {
	unsigned n;
	struct l1_partition p[L1_MAX_PARTITIONS];
	size_t plen[L1_MAX_PARTITIONS];
	unsigned order[L1_MAX_PARTITIONS]; /* longest prefix first */
};

struct l1_shard {
	pthread_mutex_t lock;
	const struct l1 *owner;       /* for the L0 hook */
	struct l1_entry **buckets;
	uint64_t mask;                /* buckets - 1 */
	struct l1_ghost_slot *ghost;  /* mask + 1 slots, in groups of 4 */
	uint32_t gseq;
	enum l1_policy policy;
	const struct l1_ptable *pt;
	uint64_t count, ttl_count, mem, index_bytes;
	uint64_t limit;               /* share of the effective limit */
	uint64_t max_share;           /* share of max_memory (E2BIG bound) */
	struct l1_class cls[L1_PRIO_COUNT];
	uint64_t hits, misses, sets, deletes, expired_lazy, expired_active;
	uint64_t evictions[L1_EVICT_REASONS];
	struct l1_pacct pacct[L1_MAX_PARTITIONS];
} __attribute__((aligned(64)));

struct l1 {
	struct l1_shard *shards;
	unsigned nshards, shard_bits;
	uint64_t seed;
	uint64_t (*now_ms)(void *arg);
	void *now_arg;
	/* Serialises configuration writers and l1_get_stats. */
	pthread_mutex_t cfg_lock;
	struct l1_ptable *pt;
	uint64_t max_memory;          /* 0 = unlimited */
	unsigned permille;
	/* Told, under the shard lock, when an entry copied to L0 changes or
	 * goes (see l1_set_l0_hook). Set once before any traffic. */
	l1_l0_hook_fn l0_hook;
	void *l0_hook_arg;
	/* Active expiry cursor, one caller at a time. */
	pthread_mutex_t expire_lock;
	uint64_t expire_cursor;
};

/* ---- small helpers ------------------------------------------------------ */

static uint64_t l1_default_clock(void *arg)
{
	(void)arg;
	return hp_now_ms();
}

static uint64_t l1_now(const struct l1 *l)
{
	return l->now_ms(l->now_arg);
}

static uint64_t l1_hash(const struct l1 *l, const char *key, size_t klen)
{
	return XXH3_64bits_withSeed(key, klen, l->seed);
}

static struct l1_shard *l1_shard_of(struct l1 *l, uint64_t h)
{
	return l->shard_bits ? &l->shards[h >> (64 - l->shard_bits)] : &l->shards[0];
}

static uint64_t entry_size(size_t klen, size_t vlen)
{
	return sizeof(struct l1_entry) + klen + vlen;
}

static uint64_t entry_bytes(const struct l1_entry *e)
{
	return entry_size(e->klen, e->vlen);
}

static bool entry_expired(const struct l1_entry *e, uint64_t now)
{
	return e->expire_at != L1_NO_TTL && e->expire_at <= now;
}

static uint64_t index_bytes(uint64_t nbuckets)
{
	return nbuckets * (sizeof(struct l1_entry *) + sizeof(struct l1_ghost_slot));
}

/* Share of `total` for one shard; 0 means unlimited. */
static uint64_t l1_share(const struct l1 *l, uint64_t total)
{
	uint64_t s;

	if (total == 0)
		return UINT64_MAX;
	s = total / l->nshards;
	return s ? s : 1;
}

static uint64_t l1_effective(const struct l1 *l)
{
	uint64_t m = l->max_memory;

	if (m == 0)
		return 0;
	return m / 1000 * l->permille + m % 1000 * l->permille / 1000;
}

static uint64_t l1_limit_share(const struct l1 *l)
{
	uint64_t eff = l1_share(l, l1_effective(l));

	/* The empty index is the floor: a limit below it cannot be honoured. */
	return eff < index_bytes(L1_MIN_BUCKETS) ? index_bytes(L1_MIN_BUCKETS) : eff;
}

static uint64_t bit_reverse64(uint64_t v)
{
	v = ((v >> 1) & 0x5555555555555555ull) | ((v & 0x5555555555555555ull) << 1);
	v = ((v >> 2) & 0x3333333333333333ull) | ((v & 0x3333333333333333ull) << 2);
	v = ((v >> 4) & 0x0f0f0f0f0f0f0f0full) | ((v & 0x0f0f0f0f0f0f0f0full) << 4);
	return __builtin_bswap64(v);
}

/* Next bucket cursor in reverse-binary order; 0 once every bucket was seen. */
static uint64_t cursor_next(uint64_t v, uint64_t mask)
{
	v |= ~mask;
	v = bit_reverse64(v);
	v++;
	return bit_reverse64(v);
}

/* ---- policy queues ------------------------------------------------------ */

static void list_push_head(struct l1_list *q, struct l1_entry *e)
{
	e->prev = NULL;
	e->next = q->head;
	if (q->head)
		q->head->prev = e;
	else
		q->tail = e;
	q->head = e;
}

static void list_unlink(struct l1_list *q, struct l1_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		q->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		q->tail = e->prev;
	e->prev = e->next = NULL;
}

static void queue_add(struct l1_shard *s, struct l1_entry *e)
{
	struct l1_class *c = &s->cls[e->prio];

	list_push_head(&c->q[e->queue], e);
	c->bytes[e->queue] += entry_bytes(e);
}

static void queue_del(struct l1_shard *s, struct l1_entry *e)
{
	struct l1_class *c = &s->cls[e->prio];

	list_unlink(&c->q[e->queue], e);
	c->bytes[e->queue] -= entry_bytes(e);
}

/* ---- ghost: hashes of keys recently evicted from the small queue -------- */

static uint64_t ghost_groups(const struct l1_shard *s)
{
	return (s->mask + 1) / L1_GHOST_WAYS;
}

static uint32_t ghost_window(const struct l1_shard *s)
{
	uint64_t w = s->count < 16 ? 16 : s->count;

	return w > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uint32_t)w;
}

static bool ghost_fresh(const struct l1_shard *s, const struct l1_ghost_slot *g)
{
	return g->seq != 0 && (uint32_t)(s->gseq - g->seq) < ghost_window(s);
}

/* Put (h, seq) in its group, over an empty/stale slot or else the oldest. */
static void ghost_put(const struct l1_shard *s, struct l1_ghost_slot *tab, uint64_t ngroups,
		      uint64_t h, uint32_t seq)
{
	struct l1_ghost_slot *grp = &tab[((h >> 32) & (ngroups - 1)) * L1_GHOST_WAYS];
	struct l1_ghost_slot *victim = &grp[0];
	uint32_t oldest = 0;

	for (unsigned i = 0; i < L1_GHOST_WAYS; i++) {
		uint32_t age;

		if (!ghost_fresh(s, &grp[i])) {
			victim = &grp[i];
			break;
		}
		age = s->gseq - grp[i].seq;
		if (age >= oldest) {
			oldest = age;
			victim = &grp[i];
		}
	}
	victim->hash = h;
	victim->seq = seq;
}

static void ghost_add(struct l1_shard *s, uint64_t h)
{
	if (++s->gseq == 0)
		s->gseq = 1;
	ghost_put(s, s->ghost, ghost_groups(s), h, s->gseq);
}

/* True (and forget it) if h was evicted from the small queue recently. */
static bool ghost_take(struct l1_shard *s, uint64_t h)
{
	struct l1_ghost_slot *grp = &s->ghost[((h >> 32) & (ghost_groups(s) - 1)) * L1_GHOST_WAYS];

	for (unsigned i = 0; i < L1_GHOST_WAYS; i++) {
		if (grp[i].hash == h && ghost_fresh(s, &grp[i])) {
			grp[i].seq = 0;
			return true;
		}
	}
	return false;
}

/* ---- partition table ---------------------------------------------------- */

static unsigned ptable_lookup(const struct l1_ptable *pt, const char *key, size_t klen)
{
	if (pt->n == 1)
		return 0;
	for (unsigned i = 0; i < pt->n; i++) {
		unsigned idx = pt->order[i];

		if (pt->plen[idx] <= klen && memcmp(pt->p[idx].prefix, key, pt->plen[idx]) == 0)
			return idx;
	}
	return 0;
}

static uint64_t part_share(const struct l1 *l, const struct l1_ptable *pt, unsigned part)
{
	return l1_share(l, pt->p[part].max_memory);
}

/* ---- hash table --------------------------------------------------------- */

static struct l1_entry *shard_find(const struct l1_shard *s, uint64_t h, const char *key, size_t klen)
{
	struct l1_entry *e;

	for (e = s->buckets[h & s->mask]; e; e = e->hnext)
		if (e->hash == h && e->klen == klen && memcmp(e->data, key, klen) == 0)
			return e;
	return NULL;
}

/* Insert into the chain, the queues and the accounting. */
static void shard_link(struct l1_shard *s, struct l1_entry *e)
{
	struct l1_entry **b = &s->buckets[e->hash & s->mask];
	uint64_t sz = entry_bytes(e);

	e->hnext = *b;
	*b = e;
	queue_add(s, e);
	s->count++;
	s->mem += sz;
	if (e->expire_at != L1_NO_TTL)
		s->ttl_count++;
	s->pacct[e->part].keys++;
	s->pacct[e->part].mem += sz;
}

/* The entry's L0 copy is about to be wrong: have it removed first. */
static void entry_l0_drop(struct l1_shard *s, struct l1_entry *e)
{
	if (!(e->flags & E_IN_L0))
		return;
	e->flags &= (uint8_t)~E_IN_L0;
	if (s->owner->l0_hook)
		s->owner->l0_hook(e->data, e->klen, s->owner->l0_hook_arg);
}

/* Remove from the chain, the queues and the accounting; does not free. */
static void shard_unlink(struct l1_shard *s, struct l1_entry *e)
{
	struct l1_entry **pp = &s->buckets[e->hash & s->mask];
	uint64_t sz = entry_bytes(e);

	entry_l0_drop(s, e);
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	e->hnext = NULL;
	queue_del(s, e);
	s->count--;
	s->mem -= sz;
	if (e->expire_at != L1_NO_TTL)
		s->ttl_count--;
	s->pacct[e->part].keys--;
	s->pacct[e->part].mem -= sz;
}

static void shard_remove(struct l1_shard *s, struct l1_entry *e)
{
	shard_unlink(s, e);
	free(e);
}

static void shard_expire_entry(struct l1_shard *s, struct l1_entry *e, bool active)
{
	if (active)
		s->expired_active++;
	else
		s->expired_lazy++;
	s->pacct[e->part].expired++;
	shard_remove(s, e);
}

/* Rehash into `n` buckets (a power of two); on ENOMEM keeps the old table. */
static void shard_resize(struct l1_shard *s, uint64_t n)
{
	struct l1_entry **nb = calloc(n, sizeof(*nb));
	struct l1_ghost_slot *ng = calloc(n, sizeof(*ng));
	uint64_t ngroups = n / L1_GHOST_WAYS;

	if (!nb || !ng) {
		free(nb);
		free(ng);
		return;
	}
	for (uint64_t i = 0; i <= s->mask; i++) {
		struct l1_entry *e = s->buckets[i], *next;

		for (; e; e = next) {
			next = e->hnext;
			e->hnext = nb[e->hash & (n - 1)];
			nb[e->hash & (n - 1)] = e;
		}
	}
	for (uint64_t i = 0; i <= s->mask; i++)
		if (ghost_fresh(s, &s->ghost[i]))
			ghost_put(s, ng, ngroups, s->ghost[i].hash, s->ghost[i].seq);
	free(s->buckets);
	free(s->ghost);
	s->buckets = nb;
	s->ghost = ng;
	s->mask = n - 1;
	s->mem -= s->index_bytes;
	s->index_bytes = index_bytes(n);
	s->mem += s->index_bytes;
}

/* Grow past load factor 1 (if the growth fits), shrink under 1/8. Never
 * called while a caller is walking the buckets. */
static void shard_maybe_resize(struct l1_shard *s)
{
	uint64_t nb = s->mask + 1;

	if (s->count > nb) {
		if (s->mem + index_bytes(nb) <= s->limit)
			shard_resize(s, nb * 2);
	} else if (nb > L1_MIN_BUCKETS && s->count * 8 < nb) {
		uint64_t n = L1_MIN_BUCKETS;

		while (n < s->count * 2)
			n <<= 1;
		shard_resize(s, n);
	}
}

/* Find a live entry; an expired one is removed (lazy expiry) and missed. */
static struct l1_entry *shard_lookup(struct l1 *l, struct l1_shard *s, uint64_t h,
				     const char *key, size_t klen)
{
	struct l1_entry *e = shard_find(s, h, key, klen);

	if (e && e->expire_at != L1_NO_TTL && entry_expired(e, l1_now(l))) {
		shard_expire_entry(s, e, false);
		return NULL;
	}
	return e;
}

/* ---- eviction ----------------------------------------------------------- */

static struct l1_entry *s3fifo_victim(struct l1_shard *s, struct l1_class *c)
{
	for (;;) {
		struct l1_entry *e;
		uint64_t total = c->bytes[Q_SMALL] + c->bytes[Q_MAIN];

		if (c->q[Q_SMALL].tail &&
		    (!c->q[Q_MAIN].tail || c->bytes[Q_SMALL] * 1000 >= total * L1_SMALL_PERMILLE)) {
			e = c->q[Q_SMALL].tail;
			if (e->freq >= L1_PROMOTE_FREQ) {
				queue_del(s, e);
				e->queue = Q_MAIN;
				e->freq = 0;
				queue_add(s, e);
				continue;
			}
			ghost_add(s, e->hash);
			return e;
		}
		e = c->q[Q_MAIN].tail;
		if (!e)
			return NULL;
		if (e->freq > 0) {
			e->freq--;
			list_unlink(&c->q[Q_MAIN], e);
			list_push_head(&c->q[Q_MAIN], e);
			continue;
		}
		return e;
	}
}

static void shard_evict_entry(struct l1_shard *s, struct l1_entry *e, enum l1_evict_reason why)
{
	s->evictions[why]++;
	s->pacct[e->part].evictions++;
	shard_remove(s, e);
}

/* Evict one entry from the lowest non-empty priority class. False if empty. */
static bool shard_evict_one(struct l1_shard *s, enum l1_evict_reason why)
{
	for (unsigned p = 0; p < L1_PRIO_COUNT; p++) {
		struct l1_class *c = &s->cls[p];
		struct l1_entry *e;

		if (!c->q[Q_SMALL].tail && !c->q[Q_MAIN].tail)
			continue;
		if (s->policy == L1_POLICY_S3FIFO)
			e = s3fifo_victim(s, c);
		else
			e = c->q[Q_MAIN].tail ? c->q[Q_MAIN].tail : c->q[Q_SMALL].tail;
		if (e) {
			shard_evict_entry(s, e, why);
			return true;
		}
	}
	return false;
}

/* Evict entries of `part`, coldest first, until it uses at most `target`. */
static void shard_evict_part(struct l1_shard *s, unsigned part, uint64_t target)
{
	for (unsigned p = 0; p < L1_PRIO_COUNT; p++) {
		for (unsigned q = 0; q < Q_COUNT; q++) {
			struct l1_entry *e = s->cls[p].q[q].tail, *prev;

			for (; e && s->pacct[part].mem > target; e = prev) {
				prev = e->prev;
				if (e->part != part)
					continue;
				if (q == Q_SMALL && s->policy == L1_POLICY_S3FIFO)
					ghost_add(s, e->hash);
				shard_evict_entry(s, e, L1_EVICT_QUOTA);
			}
			if (s->pacct[part].mem <= target)
				return;
		}
	}
}

static void shard_evict_down(struct l1_shard *s, enum l1_evict_reason why)
{
	while (s->mem > s->limit) {
		if (!shard_evict_one(s, why))
			break;
		if (s->count * 8 < s->mask + 1)
			shard_maybe_resize(s);
	}
	shard_maybe_resize(s);
}

/* ---- lifecycle ---------------------------------------------------------- */

static struct l1_ptable *ptable_default(void)
{
	struct l1_ptable *pt = calloc(1, sizeof(*pt));

	if (!pt)
		return NULL;
	pt->n = 1;
	strcpy(pt->p[0].name, "default");
	pt->p[0].priority = L1_PRIO_NORMAL;
	return pt;
}

static uint64_t l1_random_seed(const void *salt)
{
	uint64_t seed;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed))
		return seed;
	/* Entropy pool not ready (early boot): weaker, but never blocks. */
	return hp_now_us() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)salt;
}

static void shard_free_entries(struct l1_shard *s)
{
	for (uint64_t i = 0; i <= s->mask; i++) {
		struct l1_entry *e = s->buckets[i], *next;

		for (; e; e = next) {
			next = e->hnext;
			entry_l0_drop(s, e);
			free(e);
		}
		s->buckets[i] = NULL;
	}
}

struct l1 *l1_new(const struct l1_options *o)
{
	struct l1 *l;
	unsigned n;

	if (!o || (o->policy != L1_POLICY_S3FIFO && o->policy != L1_POLICY_LRU) ||
	    o->shards > L1_MAX_SHARDS)
		return NULL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	n = o->shards ? o->shards : L1_DEFAULT_SHARDS;
	l->nshards = 1;
	while (l->nshards < n) {
		l->nshards <<= 1;
		l->shard_bits++;
	}
	l->now_ms = o->now_ms ? o->now_ms : l1_default_clock;
	l->now_arg = o->now_arg;
	l->max_memory = o->max_memory;
	l->permille = 1000;
	l->seed = l1_random_seed(l);
	pthread_mutex_init(&l->cfg_lock, NULL);
	pthread_mutex_init(&l->expire_lock, NULL);
	l->pt = ptable_default();
	if (!l->pt || posix_memalign((void **)&l->shards, 64, l->nshards * sizeof(*l->shards))) {
		free(l->pt);
		pthread_mutex_destroy(&l->cfg_lock);
		pthread_mutex_destroy(&l->expire_lock);
		free(l);
		return NULL;
	}
	memset(l->shards, 0, l->nshards * sizeof(*l->shards));
	for (unsigned i = 0; i < l->nshards; i++) {
		struct l1_shard *s = &l->shards[i];

		s->buckets = calloc(L1_MIN_BUCKETS, sizeof(*s->buckets));
		s->ghost = calloc(L1_MIN_BUCKETS, sizeof(*s->ghost));
		pthread_mutex_init(&s->lock, NULL);
		s->owner = l;
		s->mask = L1_MIN_BUCKETS - 1;
		s->index_bytes = s->mem = index_bytes(L1_MIN_BUCKETS);
		s->policy = o->policy;
		s->pt = l->pt;
		s->limit = l1_limit_share(l);
		s->max_share = l1_share(l, l->max_memory);
		if (!s->buckets || !s->ghost) {
			/* Later shards are zeroed: free(NULL) is fine for them. */
			for (unsigned j = i + 1; j < l->nshards; j++)
				pthread_mutex_init(&l->shards[j].lock, NULL);
			l1_free(l);
			return NULL;
		}
	}
	return l;
}

void l1_free(struct l1 *l)
{
	if (!l)
		return;
	for (unsigned i = 0; i < l->nshards; i++) {
		struct l1_shard *s = &l->shards[i];

		if (s->buckets)
			shard_free_entries(s);
		free(s->buckets);
		free(s->ghost);
		pthread_mutex_destroy(&s->lock);
	}
	free(l->shards);
	free(l->pt);
	pthread_mutex_destroy(&l->cfg_lock);
	pthread_mutex_destroy(&l->expire_lock);
	free(l);
}

/* ---- point operations --------------------------------------------------- */

static void entry_touch(struct l1_shard *s, struct l1_entry *e)
{
	if (e->freq < L1_FREQ_MAX)
		e->freq++;
	if (e->heat < L1_HEAT_MAX)
		e->heat++;
	if (s->policy == L1_POLICY_LRU) {
		struct l1_list *q = &s->cls[e->prio].q[e->queue];

		if (q->head != e) {
			list_unlink(q, e);
			list_push_head(q, e);
		}
	}
}

/*
 * A counted read, shard lock held: the live entry handed to fn and counted
 * as a hit, or NULL counted as a miss of the key's partition.
 */
static struct l1_entry *shard_read(struct l1 *l, struct l1_shard *s, uint64_t h,
				   const char *key, size_t klen, l1_value_fn fn, void *arg)
{
	struct l1_entry *e = shard_lookup(l, s, h, key, klen);

	if (!e) {
		s->misses++;
		s->pacct[ptable_lookup(s->pt, key, klen)].misses++;
		return NULL;
	}
	if (fn)
		fn(e->data + e->klen, e->vlen, e->expire_at, arg);
	s->hits++;
	s->pacct[e->part].hits++;
	return e;
}

int l1_get(struct l1 *l, const char *key, size_t klen, l1_value_fn fn, void *arg)
{
	uint64_t h = l1_hash(l, key, klen);
	struct l1_shard *s = l1_shard_of(l, h);
	struct l1_entry *e;

	pthread_mutex_lock(&s->lock);
	e = shard_read(l, s, h, key, klen, fn, arg);
	if (e)
		entry_touch(s, e);
	pthread_mutex_unlock(&s->lock);
	return e != NULL;
}

/*
 * The SET path, shard lock held. Validates everything and allocates before
 * touching the store, so every failure leaves it unchanged.
 */
static int shard_set(struct l1 *l, struct l1_shard *s, uint64_t h, const char *key, size_t klen,
		     const char *val, size_t vlen, uint64_t expire_at, int prio, unsigned flags,
		     l1_value_fn fn, void *arg)
{
	const struct l1_ptable *pt = s->pt;
	struct l1_entry *old, *e;
	uint64_t need = entry_size(klen, vlen), qshare, exp, now = 0;
	unsigned part;

	if (prio != L1_PRIO_DEFAULT && (prio < 0 || prio >= L1_PRIO_COUNT))
		return -EINVAL;
	if (klen > UINT32_MAX || vlen > UINT32_MAX)
		return -E2BIG;
	old = shard_lookup(l, s, h, key, klen);
	if (((flags & L1_SET_NX) && old) || ((flags & L1_SET_XX) && !old)) {
		if ((flags & L1_SET_GET) && old && fn)
			fn(old->data + old->klen, old->vlen, old->expire_at, arg);
		return 0;
	}
	part = old ? old->part : ptable_lookup(pt, key, klen);
	qshare = part_share(l, pt, part);
	if (need > s->max_share || need > qshare)
		return -E2BIG;
	if (need + s->index_bytes > s->limit)
		return -ENOMEM;

	if ((flags & L1_SET_KEEPTTL) && old) {
		exp = old->expire_at;
	} else if (expire_at != L1_NO_TTL) {
		exp = expire_at;
		now = l1_now(l);
		if (exp <= now) {
			/* Already expired: Redis stores nothing and drops the old key. */
			if ((flags & L1_SET_GET) && old && fn)
				fn(old->data + old->klen, old->vlen, old->expire_at, arg);
			if (old) {
				s->deletes++;
				shard_remove(s, old);
				shard_maybe_resize(s);
			}
			s->sets++;
			s->pacct[part].sets++;
			return 1;
		}
	} else if (pt->p[part].default_ttl_ms) {
		exp = l1_now(l) + pt->p[part].default_ttl_ms;
	} else {
		exp = L1_NO_TTL;
	}

	e = malloc(need);
	if (!e)
		return -ENOMEM;
	memcpy(e->data, key, klen);
	if (vlen)
		memcpy(e->data + klen, val, vlen);
	e->hnext = e->prev = e->next = NULL;
	e->hash = h;
	e->expire_at = exp;
	e->klen = (uint32_t)klen;
	e->vlen = (uint32_t)vlen;
	e->part = (uint8_t)part;
	e->flags = prio == L1_PRIO_DEFAULT ? E_PRIO_FROM_PART : 0;
	e->prio = (uint8_t)(prio == L1_PRIO_DEFAULT ? pt->p[part].priority : prio);
	e->freq = 0;
	e->heat = 0;
	e->queue = Q_SMALL;

	if ((flags & L1_SET_GET) && old && fn)
		fn(old->data + old->klen, old->vlen, old->expire_at, arg);
	if (old) {
		/* An overwrite is an access: keep the queue, bump the counter. */
		e->queue = s->policy == L1_POLICY_LRU ? Q_MAIN : old->queue;
		e->freq = (uint8_t)(old->freq < L1_FREQ_MAX ? old->freq + 1u : L1_FREQ_MAX);
		e->heat = old->heat;
		shard_remove(s, old);   /* runs the L0 hook first if it was copied */
	} else if (s->policy == L1_POLICY_LRU || ghost_take(s, h)) {
		e->queue = Q_MAIN;
	}
	if (qshare != UINT64_MAX && s->pacct[part].mem + need > qshare)
		shard_evict_part(s, part, qshare - need);
	while (s->mem + need > s->limit && shard_evict_one(s, L1_EVICT_MEMORY))
		;
	shard_link(s, e);
	s->sets++;
	s->pacct[part].sets++;
	shard_maybe_resize(s);
	return 1;
}

int l1_set(struct l1 *l, const char *key, size_t klen, const char *val, size_t vlen,
	   uint64_t expire_at_ms, int prio, unsigned flags, l1_value_fn fn, void *arg)
{
	uint64_t h = l1_hash(l, key, klen);
	struct l1_shard *s = l1_shard_of(l, h);
	int rc;

	pthread_mutex_lock(&s->lock);
	rc = shard_set(l, s, h, key, klen, val, vlen, expire_at_ms, prio, flags, fn, arg);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int l1_getdel(struct l1 *l, const char *key, size_t klen, l1_value_fn fn, void *arg)
{
	uint64_t h = l1_hash(l, key, klen);
	struct l1_shard *s = l1_shard_of(l, h);
	struct l1_entry *e;

	pthread_mutex_lock(&s->lock);
	e = shard_read(l, s, h, key, klen, fn, arg);
	if (e) {
		s->deletes++;
		shard_remove(s, e);
		shard_maybe_resize(s);
	}
	pthread_mutex_unlock(&s->lock);
	return e != NULL;
}

int l1_del(struct l1 *l, const char *key, size_t klen)
{
	uint64_t h = l1_hash(l, key, klen);
	struct l1_shard *s = l1_shard_of(l, h);
	struct l1_entry *e;

	pthread_mutex_lock(&s->lock);
	e = shard_lookup(l, s, h, key, klen);
	if (e) {
		s->deletes++;
		shard_remove(s, e);
		shard_maybe_resize(s);
	}
	pthread_mutex_unlock(&s->lock);
	return e != NULL;
}

int l1_exists(struct l1 *l, const char *key, size_t klen)
{
	uint64_t h = l1_hash(l, key, klen);
	struct l1_shard *s = l1_shard_of(l, h);
	bool found;

	pthread_mutex_lock(&s->lock);
	found = shard_lookup(l, s, h, key, klen) != NULL;
	pthread_mutex_unlock(&s->lock);
	return found;
}

int l1_expire(struct l1 *l, const char *key, size_t klen, uint64_t expire_at_ms, unsigned flags)
{
	uint64_t h = l1_hash(l, key, klen);
	struct l1_shard *s = l1_shard_of(l, h);
	struct l1_entry *e;
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	e = shard_lookup(l, s, h, key, klen);
	if (!e)
		goto out;
	/* Redis 7: no TTL counts as an infinite one for GT/LT. */
	if ((flags & L1_EXPIRE_NX) && e->expire_at != L1_NO_TTL)
		goto out;
	if ((flags & L1_EXPIRE_XX) && e->expire_at == L1_NO_TTL)
		goto out;
	if ((flags & L1_EXPIRE_GT) && (e->expire_at == L1_NO_TTL || expire_at_ms <= e->expire_at))
		goto out;
	if ((flags & L1_EXPIRE_LT) && e->expire_at != L1_NO_TTL && expire_at_ms >= e->expire_at)
		goto out;
	rc = 1;
	if (expire_at_ms <= l1_now(l)) {
		s->deletes++;
		shard_remove(s, e);
		shard_maybe_resize(s);
		goto out;
	}
	if (e->expire_at == L1_NO_TTL)
		s->ttl_count++;
	entry_l0_drop(s, e);   /* the L0 copy carries the old deadline */
	e->expire_at = expire_at_ms;
out:
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int l1_persist(struct l1 *l, const char *key, size_t klen)
{
	uint64_t h = l1_hash(l, key, klen);
	struct l1_shard *s = l1_shard_of(l, h);
	struct l1_entry *e;
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	e = shard_lookup(l, s, h, key, klen);
	if (e && e->expire_at != L1_NO_TTL) {
		entry_l0_drop(s, e);
		e->expire_at = L1_NO_TTL;
		s->ttl_count--;
		rc = 1;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int64_t l1_pttl(struct l1 *l, const char *key, size_t klen)
{
	uint64_t h = l1_hash(l, key, klen);
	struct l1_shard *s = l1_shard_of(l, h);
	struct l1_entry *e;
	int64_t rc = -2;

	pthread_mutex_lock(&s->lock);
	e = shard_lookup(l, s, h, key, klen);
	if (e) {
		if (e->expire_at == L1_NO_TTL) {
			rc = -1;
		} else {
			uint64_t now = l1_now(l), left = e->expire_at > now ? e->expire_at - now : 0;

			rc = left > INT64_MAX ? INT64_MAX : (int64_t)left;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

size_t l1_strlen(struct l1 *l, const char *key, size_t klen)
{
	uint64_t h = l1_hash(l, key, klen);
	struct l1_shard *s = l1_shard_of(l, h);
	struct l1_entry *e;
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	e = shard_lookup(l, s, h, key, klen);
	if (e)
		n = e->vlen;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/*
 * Parse a base-10 int64 the way Redis's string2ll does: optional '-', no
 * '+', no spaces, no leading zeros ("0" alone is fine, "-0" is not).
 */
static bool l1_parse_ll(const char *p, size_t len, int64_t *out)
{
	uint64_t v = 0, lim;
	bool neg = false;
	size_t i = 0;

	if (len == 0)
		return false;
	if (len == 1 && p[0] == '0') {
		*out = 0;
		return true;
	}
	if (p[0] == '-') {
		neg = true;
		i = 1;
	}
	if (i >= len || p[i] < '1' || p[i] > '9')
		return false;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < len; i++) {
		unsigned d;

		if (p[i] < '0' || p[i] > '9')
			return false;
		d = (unsigned)(p[i] - '0');
		if (v > (lim - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return true;
}

static size_t l1_format_ll(int64_t v, char *buf)
{
	char tmp[24];
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	size_t n = 0, len = 0;

	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		buf[len++] = '-';
	while (n)
		buf[len++] = tmp[--n];
	return len;
}

int l1_incrby(struct l1 *l, const char *key, size_t klen, int64_t delta, int64_t *result)
{
	uint64_t h = l1_hash(l, key, klen);
	struct l1_shard *s = l1_shard_of(l, h);
	struct l1_entry *e;
	int64_t cur = 0, sum;
	char buf[24];
	int prio = L1_PRIO_DEFAULT, rc;

	pthread_mutex_lock(&s->lock);
	e = shard_lookup(l, s, h, key, klen);
	if (e) {
		if (!l1_parse_ll(e->data + e->klen, e->vlen, &cur)) {
			rc = -EINVAL;
			goto out;
		}
		if (!(e->flags & E_PRIO_FROM_PART))
			prio = e->prio;
	}
	if (__builtin_add_overflow(cur, delta, &sum)) {
		rc = -ERANGE;
		goto out;
	}
	rc = shard_set(l, s, h, key, klen, buf, l1_format_ll(sum, buf), L1_NO_TTL, prio,
		       L1_SET_KEEPTTL, NULL, NULL);
	if (rc == 1) {
		*result = sum;
		rc = 0;
	} else if (rc >= 0 || rc == -E2BIG) {
		rc = -ENOMEM;
	}
out:
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* ---- iteration ---------------------------------------------------------- */

/*
 * SCAN. `count` bounds the keys examined (matching or not); at most
 * 10 * count buckets are visited per call so sparse tables still return
 * promptly. When fn returns false the scan stops after the current bucket;
 * the rest of that bucket is still passed to fn so no key is skipped.
 */
uint64_t l1_scan(struct l1 *l, uint64_t cursor, size_t count, const char *pattern,
		 size_t patlen, l1_key_fn fn, void *arg)
{
	unsigned si = (unsigned)(cursor & (l->nshards - 1));
	uint64_t v = cursor >> l->shard_bits, now = l1_now(l);
	size_t seen = 0, visited = 0, max_visit;
	bool stop = false;

	if (count == 0)
		count = 10;
	max_visit = count > SIZE_MAX / 10 ? SIZE_MAX : count * 10;
	for (;;) {
		struct l1_shard *s = &l->shards[si];

		pthread_mutex_lock(&s->lock);
		do {
			struct l1_entry *e = s->buckets[v & s->mask], *next;

			for (; e; e = next) {
				next = e->hnext;
				if (entry_expired(e, now)) {
					shard_expire_entry(s, e, false);
					continue;
				}
				seen++;
				if (pattern && !glob_match(pattern, patlen, e->data, e->klen, false))
					continue;
				if (fn && !fn(e->data, e->klen, arg))
					stop = true;
			}
			v = cursor_next(v, s->mask);
			visited++;
		} while (v != 0 && seen < count && visited < max_visit && !stop);
		shard_maybe_resize(s);
		pthread_mutex_unlock(&s->lock);
		if (v == 0 && ++si == l->nshards)
			return 0;
		if (seen >= count || visited >= max_visit || stop)
			return (v << l->shard_bits) | si;
	}
}

uint64_t l1_dbsize(struct l1 *l)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < l->nshards; i++) {
		pthread_mutex_lock(&l->shards[i].lock);
		n += l->shards[i].count;
		pthread_mutex_unlock(&l->shards[i].lock);
	}
	return n;
}

uint64_t l1_flush(struct l1 *l)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < l->nshards; i++) {
		struct l1_shard *s = &l->shards[i];

		pthread_mutex_lock(&s->lock);
		shard_free_entries(s);
		n += s->count;
		s->deletes += s->count;
		s->count = s->ttl_count = 0;
		s->mem = s->index_bytes;
		memset(s->cls, 0, sizeof(s->cls));
		memset(s->ghost, 0, (s->mask + 1) * sizeof(*s->ghost));
		for (unsigned p = 0; p < L1_MAX_PARTITIONS; p++)
			s->pacct[p].keys = s->pacct[p].mem = 0;
		shard_maybe_resize(s);
		pthread_mutex_unlock(&s->lock);
	}
	return n;
}

static bool glob_is_literal(const char *pat, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (pat[i] == '*' || pat[i] == '?' || pat[i] == '[' || pat[i] == '\\')
			return false;
	return true;
}

uint64_t l1_delete_pattern(struct l1 *l, const char *pattern, size_t patlen)
{
	uint64_t n = 0, now = l1_now(l);

	if (glob_is_literal(pattern, patlen))
		return (uint64_t)l1_del(l, pattern, patlen);
	for (unsigned i = 0; i < l->nshards; i++) {
		struct l1_shard *s = &l->shards[i];

		pthread_mutex_lock(&s->lock);
		for (uint64_t b = 0; b <= s->mask; b++) {
			struct l1_entry *e = s->buckets[b], *next;

			for (; e; e = next) {
				next = e->hnext;
				if (entry_expired(e, now)) {
					shard_expire_entry(s, e, false);
				} else if (glob_match(pattern, patlen, e->data, e->klen, false)) {
					s->deletes++;
					shard_remove(s, e);
					n++;
				}
			}
		}
		shard_maybe_resize(s);
		pthread_mutex_unlock(&s->lock);
	}
	return n;
}

/*
 * Active expiry. The budget counts keys with a TTL examined; buckets are
 * processed whole (a cursor cannot point inside a chain), so one call may
 * overshoot by the rest of one chain. Empty and TTL-less buckets are bounded
 * separately (4 * budget + 64 visits) and shards without TTL keys are skipped.
 */
unsigned l1_active_expire(struct l1 *l, unsigned budget)
{
	unsigned si, removed = 0, examined = 0, shards_done = 0;
	uint64_t v, now, visited = 0, max_visit = (uint64_t)budget * 4 + 64;

	if (budget == 0)
		return 0;
	pthread_mutex_lock(&l->expire_lock);
	si = (unsigned)(l->expire_cursor & (l->nshards - 1));
	v = l->expire_cursor >> l->shard_bits;
	now = l1_now(l);
	while (examined < budget && visited < max_visit && shards_done <= l->nshards) {
		struct l1_shard *s = &l->shards[si];

		pthread_mutex_lock(&s->lock);
		if (s->ttl_count == 0) {
			v = 0;
		} else {
			do {
				struct l1_entry *e = s->buckets[v & s->mask], *next;

				for (; e; e = next) {
					next = e->hnext;
					if (e->expire_at == L1_NO_TTL)
						continue;
					examined++;
					if (e->expire_at <= now) {
						shard_expire_entry(s, e, true);
						removed++;
					}
				}
				v = cursor_next(v, s->mask);
				visited++;
			} while (v != 0 && examined < budget && visited < max_visit);
			shard_maybe_resize(s);
		}
		pthread_mutex_unlock(&s->lock);
		if (v == 0) {
			si = (si + 1) & (l->nshards - 1);
			shards_done++;
		}
	}
	l->expire_cursor = (v << l->shard_bits) | si;
	pthread_mutex_unlock(&l->expire_lock);
	return removed;
}

/* ---- configuration ------------------------------------------------------ */

static int ptable_build(const struct l1_partition *parts, unsigned n, struct l1_ptable **out)
{
	struct l1_ptable *pt;
	bool have_default = false;

	if (n > L1_MAX_PARTITIONS || (n && !parts))
		return -EINVAL;
	pt = ptable_default();
	if (!pt)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		const struct l1_partition *p = &parts[i];
		size_t nl = strnlen(p->name, sizeof(p->name));
		size_t pl = strnlen(p->prefix, sizeof(p->prefix));
		int prio = p->priority == L1_PRIO_DEFAULT ? L1_PRIO_NORMAL : p->priority;
		unsigned idx;

		if (nl == 0 || nl == sizeof(p->name) || pl == sizeof(p->prefix) ||
		    prio < 0 || prio >= L1_PRIO_COUNT)
			goto inval;
		if (pl == 0) {
			if (have_default)
				goto inval;
			have_default = true;
			idx = 0;
		} else {
			if (pt->n == L1_MAX_PARTITIONS)
				goto inval; /* the implicit default takes one slot */
			idx = pt->n++;
		}
		pt->p[idx] = *p;
		pt->p[idx].priority = prio;
		pt->plen[idx] = pl;
	}
	for (unsigned i = 0; i < pt->n; i++)
		for (unsigned j = i + 1; j < pt->n; j++)
			if (!strcmp(pt->p[i].name, pt->p[j].name) ||
			    !strcmp(pt->p[i].prefix, pt->p[j].prefix))
				goto inval;
	/* Longest prefix first; the default (length 0) ends up last. */
	for (unsigned i = 0; i < pt->n; i++) {
		unsigned j = i;

		while (j > 0 && pt->plen[pt->order[j - 1]] < pt->plen[i]) {
			pt->order[j] = pt->order[j - 1];
			j--;
		}
		pt->order[j] = i;
	}
	*out = pt;
	return 0;
inval:
	free(pt);
	return -EINVAL;
}

/* Move a shard to a new partition table, re-accounting every key. */
static void shard_repartition(struct l1 *l, struct l1_shard *s, const struct l1_ptable *npt)
{
	const struct l1_ptable *opt = s->pt;
	struct l1_pacct acct[L1_MAX_PARTITIONS];

	memset(acct, 0, sizeof(acct));
	/* Counters follow the partition's name across the swap. */
	for (unsigned i = 0; i < npt->n; i++) {
		for (unsigned j = 0; j < opt->n; j++) {
			if (!strcmp(npt->p[i].name, opt->p[j].name)) {
				acct[i] = s->pacct[j];
				acct[i].keys = acct[i].mem = 0;
				break;
			}
		}
	}
	for (uint64_t b = 0; b <= s->mask; b++) {
		for (struct l1_entry *e = s->buckets[b]; e; e = e->hnext) {
			unsigned p = ptable_lookup(npt, e->data, e->klen);

			e->part = (uint8_t)p;
			acct[p].keys++;
			acct[p].mem += entry_bytes(e);
			if ((e->flags & E_PRIO_FROM_PART) && e->prio != npt->p[p].priority) {
				queue_del(s, e);
				e->prio = (uint8_t)npt->p[p].priority;
				queue_add(s, e);
			}
		}
	}
	memcpy(s->pacct, acct, sizeof(acct));
	s->pt = npt;
	for (unsigned p = 0; p < npt->n; p++) {
		uint64_t q = part_share(l, npt, p);

		if (q != UINT64_MAX && s->pacct[p].mem > q)
			shard_evict_part(s, p, q);
	}
	shard_maybe_resize(s);
}

/*
 * The table holds at most L1_MAX_PARTITIONS entries including the default,
 * so that l1_stats can report every one: n may be 64 only if one of them has
 * the prefix "" (it then configures the default partition). Keys keep their
 * TTLs; entries whose priority came from their old partition take the new
 * partition's; quotas that are now exceeded are enforced at once.
 */
int l1_set_partitions(struct l1 *l, const struct l1_partition *parts, unsigned n)
{
	struct l1_ptable *npt, *old;
	int rc = ptable_build(parts, n, &npt);

	if (rc)
		return rc;
	pthread_mutex_lock(&l->cfg_lock);
	for (unsigned i = 0; i < l->nshards; i++) {
		pthread_mutex_lock(&l->shards[i].lock);
		shard_repartition(l, &l->shards[i], npt);
		pthread_mutex_unlock(&l->shards[i].lock);
	}
	old = l->pt;
	l->pt = npt;
	pthread_mutex_unlock(&l->cfg_lock);
	free(old);
	return 0;
}

/* Push new limits to every shard and evict down; cfg_lock held. */
static void l1_apply_limits(struct l1 *l, enum l1_evict_reason why)
{
	for (unsigned i = 0; i < l->nshards; i++) {
		struct l1_shard *s = &l->shards[i];

		pthread_mutex_lock(&s->lock);
		s->limit = l1_limit_share(l);
		s->max_share = l1_share(l, l->max_memory);
		shard_evict_down(s, why);
		pthread_mutex_unlock(&s->lock);
	}
}

void l1_set_max_memory(struct l1 *l, uint64_t bytes)
{
	pthread_mutex_lock(&l->cfg_lock);
	l->max_memory = bytes;
	l1_apply_limits(l, L1_EVICT_MEMORY);
	pthread_mutex_unlock(&l->cfg_lock);
}

void l1_set_pressure_limit(struct l1 *l, unsigned permille)
{
	pthread_mutex_lock(&l->cfg_lock);
	l->permille = permille > 1000 ? 1000 : permille;
	l1_apply_limits(l, L1_EVICT_PRESSURE);
	pthread_mutex_unlock(&l->cfg_lock);
}

/*
 * LRU keeps everything in the main list; switching to it splices each small
 * queue (the newest entries) in front of main. Switching back leaves all
 * entries in main with their counters, and new keys start filling small.
 */
void l1_set_policy(struct l1 *l, enum l1_policy p)
{
	if (p != L1_POLICY_S3FIFO && p != L1_POLICY_LRU)
		return;
	pthread_mutex_lock(&l->cfg_lock);
	for (unsigned i = 0; i < l->nshards; i++) {
		struct l1_shard *s = &l->shards[i];

		pthread_mutex_lock(&s->lock);
		if (p == L1_POLICY_LRU && s->policy != L1_POLICY_LRU) {
			for (unsigned c = 0; c < L1_PRIO_COUNT; c++) {
				struct l1_class *k = &s->cls[c];
				struct l1_list *sm = &k->q[Q_SMALL], *mn = &k->q[Q_MAIN];

				if (!sm->head)
					continue;
				for (struct l1_entry *e = sm->head; e; e = e->next)
					e->queue = Q_MAIN;
				if (mn->head) {
					sm->tail->next = mn->head;
					mn->head->prev = sm->tail;
				} else {
					mn->tail = sm->tail;
				}
				mn->head = sm->head;
				sm->head = sm->tail = NULL;
				k->bytes[Q_MAIN] += k->bytes[Q_SMALL];
				k->bytes[Q_SMALL] = 0;
			}
		}
		s->policy = p;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&l->cfg_lock);
}

void l1_set_l0_hook(struct l1 *l, l1_l0_hook_fn fn, void *arg)
{
	l->l0_hook = fn;
	l->l0_hook_arg = arg;
}

void l1_hot_scan(struct l1 *l, size_t max_klen, size_t max_vlen, unsigned min_heat,
		 l1_hot_fn fn, void *arg)
{
	uint64_t now = l1_now(l);

	for (unsigned i = 0; i < l->nshards; i++) {
		struct l1_shard *s = &l->shards[i];

		pthread_mutex_lock(&s->lock);
		for (uint64_t b = 0; b <= s->mask; b++) {
			for (struct l1_entry *e = s->buckets[b]; e; e = e->hnext) {
				if (e->heat >= min_heat && e->klen <= max_klen &&
				    e->vlen <= max_vlen && !entry_expired(e, now))
					fn(e->data, e->klen, e->vlen, e->heat, arg);
				e->heat >>= 1;
			}
		}
		pthread_mutex_unlock(&s->lock);
	}
}

int l1_l0_mark(struct l1 *l, const char *key, size_t klen, l1_value_fn fn, void *arg)
{
	uint64_t h = l1_hash(l, key, klen);
	struct l1_shard *s = l1_shard_of(l, h);
	struct l1_entry *e;
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	e = shard_lookup(l, s, h, key, klen);
	if (e && !(e->flags & E_IN_L0)) {
		e->flags |= E_IN_L0;
		fn(e->data + e->klen, e->vlen, e->expire_at, arg);
		rc = 1;
	} else if (e) {
		rc = 2;     /* already in L0 with this value */
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int l1_l0_unmark(struct l1 *l, const char *key, size_t klen, void (*fn)(void *arg), void *arg)
{
	uint64_t h = l1_hash(l, key, klen);
	struct l1_shard *s = l1_shard_of(l, h);
	struct l1_entry *e;
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	e = shard_find(s, h, key, klen);
	if (e && (e->flags & E_IN_L0)) {
		if (fn)
			fn(arg);
		e->flags &= (uint8_t)~E_IN_L0;
		rc = 1;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int l1_l0_credit(struct l1 *l, const char *key, size_t klen, unsigned gets)
{
	uint64_t h = l1_hash(l, key, klen);
	struct l1_shard *s = l1_shard_of(l, h);
	struct l1_entry *e;

	if (gets == 0)
		return 0;
	pthread_mutex_lock(&s->lock);
	e = shard_find(s, h, key, klen);
	if (e) {
		entry_touch(s, e);
		e->heat = (uint8_t)(gets - 1 >= L1_HEAT_MAX - e->heat ? L1_HEAT_MAX
								      : e->heat + gets - 1);
	}
	pthread_mutex_unlock(&s->lock);
	return e != NULL;
}

void l1_get_stats(struct l1 *l, struct l1_stats *out)
{
	const struct l1_ptable *pt;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&l->cfg_lock);
	pt = l->pt;
	out->max_memory = l->max_memory;
	out->effective_max_memory = l1_effective(l);
	out->policy = l->nshards ? (int)l->shards[0].policy : L1_POLICY_S3FIFO;
	out->n_partitions = pt->n;
	for (unsigned p = 0; p < pt->n; p++) {
		struct l1_part_stats *ps = &out->partitions[p];

		memcpy(ps->name, pt->p[p].name, sizeof(ps->name));
		memcpy(ps->prefix, pt->p[p].prefix, sizeof(ps->prefix));
		ps->max_memory = pt->p[p].max_memory;
		ps->default_ttl_ms = pt->p[p].default_ttl_ms;
		ps->priority = pt->p[p].priority;
	}
	for (unsigned i = 0; i < l->nshards; i++) {
		struct l1_shard *s = &l->shards[i];

		pthread_mutex_lock(&s->lock);
		out->keys += s->count;
		out->memory += s->mem;
		out->hits += s->hits;
		out->misses += s->misses;
		out->sets += s->sets;
		out->deletes += s->deletes;
		out->expired_lazy += s->expired_lazy;
		out->expired_active += s->expired_active;
		out->keys_with_ttl += s->ttl_count;
		for (unsigned r = 0; r < L1_EVICT_REASONS; r++)
			out->evictions[r] += s->evictions[r];
		for (unsigned p = 0; p < pt->n; p++) {
			struct l1_part_stats *ps = &out->partitions[p];
			const struct l1_pacct *a = &s->pacct[p];

			ps->keys += a->keys;
			ps->memory += a->mem;
			ps->hits += a->hits;
			ps->misses += a->misses;
			ps->sets += a->sets;
			ps->evictions += a->evictions;
			ps->expired += a->expired;
		}
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&l->cfg_lock);
}

const char *l1_policy_name(enum l1_policy p)
{
	switch (p) {
	case L1_POLICY_S3FIFO:
		return "s3fifo";
	case L1_POLICY_LRU:
		return "lru";
	}
	return "unknown";
}

int l1_policy_parse(const char *s, enum l1_policy *out)
{
	if (!strcasecmp(s, "s3fifo") || !strcasecmp(s, "s3-fifo")) {
		*out = L1_POLICY_S3FIFO;
		return 0;
	}
	if (!strcasecmp(s, "lru")) {
		*out = L1_POLICY_LRU;
		return 0;
	}
	return -EINVAL;
}
