/*
 * cachesim.c - replay synthetic traces through the real L1 store and compare
 * its eviction policies with each other and with Belady's offline optimum.
 *
 *   build/cachesim [--trace zipf|scan|loop|all] [--keys N] [--requests N]
 *                  [--cache-pct P] [--seed S] [--shards N]
 *
 * Traces (all generated from --seed, so runs are reproducible):
 *   zipf  Zipf(alpha 0.99) over N keys, ranks shuffled onto key ids.
 *   scan  the same Zipf stream, interrupted after every 4*C Zipf requests by
 *         a sequential scan of 2*C never-seen-before keys (C = cache size in
 *         objects): about a third of all requests are one-hit scan keys.
 *   loop  keys 0..L-1 requested cyclically with L = 1.1 * C, the classic
 *         case where recency is exactly wrong.
 *
 * Method: each request is an l1_get; a miss is followed by an l1_set of a
 * fixed 100-byte value (read-through cache). Both policies get the same
 * memory budget, P% of what N entries cost in the store (measured, not
 * assumed). Belady's MIN needs a capacity in objects; it is measured too,
 * by filling a store at that budget with distinct keys and reading back how
 * many it holds. Keys have a fixed width so every entry costs the same and
 * the object capacity is exact. MIN runs with bypass (an object whose next
 * use is farther than everything cached is not admitted), driven by a
 * precomputed next-use array and a max-heap with lazy invalidation. Compulsory
 * (first-access) misses count for every policy alike.
 *
 * What it does not do: no timing (see bench/resp for throughput), no TTLs,
 * no variable object sizes, no real-world traces.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/l1.h"

#define SIM_VALUE_LEN 100
#define SIM_KEY_FMT "k%010u"
#define SIM_KEY_LEN 11
#define SIM_NEVER UINT32_MAX

struct sim_opts {
	const char *trace;
	uint32_t keys;
	uint32_t requests;
	double cache_pct;
	uint64_t seed;
	unsigned shards;
};

struct sim_trace {
	const char *name;
	uint32_t *req;
	uint32_t n;
	uint32_t key_space; /* ids are < key_space */
};

/* ---- randomness ----------------------------------------------------------- */

static uint64_t sim_rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double sim_rng_unit(uint64_t *s)
{
	return (double)(sim_rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* Zipf sampler: inverse CDF by binary search over precomputed sums. */
struct sim_zipf {
	double *cdf;
	uint32_t *perm; /* rank -> key id */
	uint32_t n;
};

static int sim_zipf_init(struct sim_zipf *z, uint32_t n, double alpha, uint64_t *rng)
{
	double sum = 0;

	z->n = n;
	z->cdf = malloc(n * sizeof(*z->cdf));
	z->perm = malloc(n * sizeof(*z->perm));
	if (!z->cdf || !z->perm)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		sum += 1.0 / pow((double)(i + 1), alpha);
		z->cdf[i] = sum;
	}
	for (uint32_t i = 0; i < n; i++) {
		z->cdf[i] /= sum;
		z->perm[i] = i;
	}
	for (uint32_t i = n - 1; i > 0; i--) {
		uint32_t j = (uint32_t)(sim_rng_next(rng) % (i + 1));
		uint32_t t = z->perm[i];

		z->perm[i] = z->perm[j];
		z->perm[j] = t;
	}
	return 0;
}

static uint32_t sim_zipf_draw(const struct sim_zipf *z, uint64_t *rng)
{
	double u = sim_rng_unit(rng);
	uint32_t lo = 0, hi = z->n - 1;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (z->cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return z->perm[lo];
}

static void sim_zipf_free(struct sim_zipf *z)
{
	free(z->cdf);
	free(z->perm);
}

/* ---- traces --------------------------------------------------------------- */

static int sim_make_trace(struct sim_trace *t, const char *name, const struct sim_opts *o,
			  uint32_t cap)
{
	uint64_t rng = o->seed ^ (uint64_t)name[0] * 0x100000001b3ull;
	struct sim_zipf z;

	t->name = name;
	t->n = o->requests;
	t->req = malloc((size_t)t->n * sizeof(*t->req));
	if (!t->req)
		return -ENOMEM;
	if (!strcmp(name, "loop")) {
		uint32_t len = cap + cap / 10;

		for (uint32_t i = 0; i < t->n; i++)
			t->req[i] = i % len;
		t->key_space = len;
		return 0;
	}
	if (sim_zipf_init(&z, o->keys, 0.99, &rng))
		return -ENOMEM;
	if (!strcmp(name, "zipf")) {
		for (uint32_t i = 0; i < t->n; i++)
			t->req[i] = sim_zipf_draw(&z, &rng);
		t->key_space = o->keys;
	} else {
		uint32_t zipf_run = 4 * cap, scan_run = 2 * cap, cold = o->keys, i = 0;

		while (i < t->n) {
			for (uint32_t j = 0; j < zipf_run && i < t->n; j++)
				t->req[i++] = sim_zipf_draw(&z, &rng);
			for (uint32_t j = 0; j < scan_run && i < t->n; j++)
				t->req[i++] = cold++;
		}
		t->key_space = cold;
	}
	sim_zipf_free(&z);
	return 0;
}

/* ---- L1 replay ------------------------------------------------------------ */

static struct l1 *sim_store(uint64_t budget, enum l1_policy p, unsigned shards)
{
	struct l1_options o = { .max_memory = budget, .policy = p, .shards = shards };

	return l1_new(&o);
}

static int sim_key(char *buf, uint32_t id)
{
	return snprintf(buf, SIM_KEY_LEN + 1, SIM_KEY_FMT, id);
}

static int sim_replay(const struct sim_trace *t, uint64_t budget, enum l1_policy p,
		      unsigned shards, uint64_t *hits)
{
	static const char value[SIM_VALUE_LEN];
	struct l1 *l = sim_store(budget, p, shards);
	char key[SIM_KEY_LEN + 1];

	if (!l)
		return -ENOMEM;
	*hits = 0;
	for (uint32_t i = 0; i < t->n; i++) {
		int n = sim_key(key, t->req[i]);
		int rc;

		if (l1_get(l, key, (size_t)n, NULL, NULL)) {
			(*hits)++;
			continue;
		}
		rc = l1_set(l, key, (size_t)n, value, sizeof(value), L1_NO_TTL, L1_PRIO_DEFAULT, 0,
			    NULL, NULL);
		if (rc != 1) {
			fprintf(stderr, "cachesim: l1_set failed: %d\n", rc);
			l1_free(l);
			return rc < 0 ? rc : -EIO;
		}
	}
	l1_free(l);
	return 0;
}

/* Bytes one simulated entry costs in the store (with its index share). */
static int sim_entry_cost(unsigned shards, uint64_t *cost)
{
	static const char value[SIM_VALUE_LEN];
	struct l1 *l = sim_store(0, L1_POLICY_LRU, shards);
	struct l1_stats a, b;
	char key[SIM_KEY_LEN + 1];
	const uint32_t n = 100000;

	if (!l)
		return -ENOMEM;
	l1_get_stats(l, &a);
	for (uint32_t i = 0; i < n; i++) {
		int kl = sim_key(key, i);

		if (l1_set(l, key, (size_t)kl, value, sizeof(value), L1_NO_TTL, L1_PRIO_DEFAULT, 0,
			   NULL, NULL) != 1) {
			l1_free(l);
			return -ENOMEM;
		}
	}
	l1_get_stats(l, &b);
	*cost = (b.memory - a.memory + n - 1) / n;
	l1_free(l);
	return 0;
}

/* How many distinct entries the store holds at `budget`. */
static int sim_capacity(uint64_t budget, unsigned shards, uint64_t expect, uint32_t *cap)
{
	static const char value[SIM_VALUE_LEN];
	struct l1 *l = sim_store(budget, L1_POLICY_LRU, shards);
	char key[SIM_KEY_LEN + 1];
	struct l1_stats st;

	if (!l)
		return -ENOMEM;
	for (uint64_t i = 0; i < expect * 2 + 1000; i++) {
		int kl = sim_key(key, (uint32_t)i);

		if (l1_set(l, key, (size_t)kl, value, sizeof(value), L1_NO_TTL, L1_PRIO_DEFAULT, 0,
			   NULL, NULL) != 1) {
			l1_free(l);
			return -ENOMEM;
		}
	}
	l1_get_stats(l, &st);
	*cap = (uint32_t)st.keys;
	l1_free(l);
	return 0;
}

/* ---- Belady's MIN ----------------------------------------------------------- */

struct sim_heap_item {
	uint32_t next;  /* index of the next request for this key */
	uint32_t key;
};

struct sim_heap {
	struct sim_heap_item *a;
	size_t n, cap;
};

static int sim_heap_push(struct sim_heap *h, struct sim_heap_item it)
{
	size_t i;

	if (h->n == h->cap) {
		size_t ncap = h->cap ? h->cap * 2 : 1024;
		struct sim_heap_item *na = realloc(h->a, ncap * sizeof(*na));

		if (!na)
			return -ENOMEM;
		h->a = na;
		h->cap = ncap;
	}
	i = h->n++;
	while (i > 0 && h->a[(i - 1) / 2].next < it.next) {
		h->a[i] = h->a[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h->a[i] = it;
	return 0;
}

static void sim_heap_pop(struct sim_heap *h)
{
	struct sim_heap_item last = h->a[--h->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->a[c + 1].next > h->a[c].next)
			c++;
		if (h->a[c].next <= last.next)
			break;
		h->a[i] = h->a[c];
		i = c;
	}
	if (h->n)
		h->a[i] = last;
}

static int sim_belady(const struct sim_trace *t, uint32_t cap, uint64_t *hits)
{
	uint32_t *next = malloc((size_t)t->n * sizeof(*next));
	uint32_t *last = malloc((size_t)t->key_space * sizeof(*last));
	uint32_t *cur = malloc((size_t)t->key_space * sizeof(*cur)); /* SIM_NEVER = not cached */
	struct sim_heap h = { 0 };
	uint32_t size = 0;
	int rc = -ENOMEM;

	if (!next || !last || !cur)
		goto out;
	for (uint32_t k = 0; k < t->key_space; k++)
		last[k] = cur[k] = SIM_NEVER;
	for (uint32_t i = t->n; i-- > 0;) {
		next[i] = last[t->req[i]];
		last[t->req[i]] = i;
	}
	*hits = 0;
	for (uint32_t i = 0; i < t->n; i++) {
		uint32_t k = t->req[i];

		if (cur[k] != SIM_NEVER) {
			(*hits)++;
			if (next[i] == SIM_NEVER) {
				cur[k] = SIM_NEVER; /* dead: drop it now, frees a slot */
				size--;
				continue;
			}
			cur[k] = next[i];
			if (sim_heap_push(&h, (struct sim_heap_item){ next[i], k }))
				goto out;
			continue;
		}
		if (next[i] == SIM_NEVER)
			continue; /* never used again: bypass */
		if (size == cap) {
			/* Drop stale heap entries, then compare with the farthest. */
			while (h.n && cur[h.a[0].key] != h.a[0].next)
				sim_heap_pop(&h);
			if (!h.n || h.a[0].next <= next[i])
				continue; /* bypass: everything cached is needed sooner */
			cur[h.a[0].key] = SIM_NEVER;
			sim_heap_pop(&h);
			size--;
		}
		cur[k] = next[i];
		size++;
		if (sim_heap_push(&h, (struct sim_heap_item){ next[i], k }))
			goto out;
	}
	rc = 0;
out:
	free(next);
	free(last);
	free(cur);
	free(h.a);
	return rc;
}

/* ---- main ----------------------------------------------------------------- */

static void sim_usage(FILE *f)
{
	fprintf(f, "usage: cachesim [--trace zipf|scan|loop|all] [--keys N] [--requests N]\n"
		   "                [--cache-pct P] [--seed S] [--shards N]\n");
}

static int sim_parse(int argc, char **argv, struct sim_opts *o)
{
	static const struct option lopts[] = {
		{ "trace", required_argument, NULL, 't' },
		{ "keys", required_argument, NULL, 'k' },
		{ "requests", required_argument, NULL, 'r' },
		{ "cache-pct", required_argument, NULL, 'c' },
		{ "seed", required_argument, NULL, 's' },
		{ "shards", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct sim_opts){ .trace = "all", .keys = 100000, .requests = 2000000,
				.cache_pct = 10.0, .seed = 42, .shards = 1 };
	while ((c = getopt_long(argc, argv, "t:k:r:c:s:S:h", lopts, NULL)) != -1) {
		char *end = NULL;
		unsigned long long v = 0;

		if (c != 't' && c != 'h' && c != 'c') {
			errno = 0;
			v = strtoull(optarg, &end, 10);
			if (errno || !end || *end || v == 0 || v > UINT32_MAX) {
				fprintf(stderr, "cachesim: bad number: %s\n", optarg);
				return -EINVAL;
			}
		}
		switch (c) {
		case 't':
			if (strcmp(optarg, "zipf") && strcmp(optarg, "scan") && strcmp(optarg, "loop") &&
			    strcmp(optarg, "all")) {
				fprintf(stderr, "cachesim: unknown trace %s\n", optarg);
				return -EINVAL;
			}
			o->trace = optarg;
			break;
		case 'k':
			o->keys = (uint32_t)v;
			break;
		case 'r':
			o->requests = (uint32_t)v;
			break;
		case 'c':
			o->cache_pct = strtod(optarg, &end);
			if (!end || *end || !(o->cache_pct > 0 && o->cache_pct <= 100)) {
				fprintf(stderr, "cachesim: --cache-pct must be in (0, 100]\n");
				return -EINVAL;
			}
			break;
		case 's':
			o->seed = v;
			break;
		case 'S':
			o->shards = (unsigned)v;
			break;
		case 'h':
			sim_usage(stdout);
			exit(0);
		default:
			sim_usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		sim_usage(stderr);
		return -EINVAL;
	}
	return 0;
}

static int sim_run_trace(const char *name, const struct sim_opts *o, uint64_t budget, uint32_t cap)
{
	struct sim_trace t;
	uint64_t hs3, hlru, hmin;
	double mlru, ms3, mmin;
	int rc;

	rc = sim_make_trace(&t, name, o, cap);
	if (rc)
		return rc;
	rc = sim_replay(&t, budget, L1_POLICY_S3FIFO, o->shards, &hs3);
	if (!rc)
		rc = sim_replay(&t, budget, L1_POLICY_LRU, o->shards, &hlru);
	if (!rc)
		rc = sim_belady(&t, cap, &hmin);
	if (!rc) {
		mlru = 1.0 - (double)hlru / t.n;
		ms3 = 1.0 - (double)hs3 / t.n;
		mmin = 1.0 - (double)hmin / t.n;
		printf("%-6s %-8s %9.4f %10.4f %12.3f\n", name, "s3fifo", 1.0 - ms3, ms3,
		       mlru > 0 ? ms3 / mlru : 0.0);
		printf("%-6s %-8s %9.4f %10.4f %12.3f\n", name, "lru", 1.0 - mlru, mlru, 1.0);
		printf("%-6s %-8s %9.4f %10.4f %12.3f\n", name, "belady", 1.0 - mmin, mmin,
		       mlru > 0 ? mmin / mlru : 0.0);
	}
	free(t.req);
	return rc;
}

int main(int argc, char **argv)
{
	static const char *const all[] = { "zipf", "scan", "loop" };
	struct sim_opts o;
	uint64_t cost, budget;
	uint32_t cap;
	int rc;

	if (sim_parse(argc, argv, &o))
		return 2;
	rc = sim_entry_cost(o.shards, &cost);
	if (rc)
		goto fail;
	budget = (uint64_t)((double)o.keys * (double)cost * o.cache_pct / 100.0);
	rc = sim_capacity(budget, o.shards, budget / cost, &cap);
	if (rc)
		goto fail;
	if (cap == 0) {
		fprintf(stderr, "cachesim: budget too small to hold any entry\n");
		return 1;
	}
	printf("cachesim: keys=%u requests=%u cache=%.1f%% seed=%llu shards=%u value=%dB\n",
	       o.keys, o.requests, o.cache_pct, (unsigned long long)o.seed, o.shards, SIM_VALUE_LEN);
	printf("budget=%llu bytes (~%llu B/entry incl. index) -> capacity %u objects (used for Belady)\n\n",
	       (unsigned long long)budget, (unsigned long long)cost, cap);
	printf("%-6s %-8s %9s %10s %12s\n", "trace", "policy", "hit", "miss", "miss/LRU");
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (strcmp(o.trace, "all") && strcmp(o.trace, all[i]))
			continue;
		rc = sim_run_trace(all[i], &o, budget, cap);
		if (rc)
			goto fail;
	}
	return 0;
fail:
	fprintf(stderr, "cachesim: %s\n", strerror(-rc));
	return 1;
}
