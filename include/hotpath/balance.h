/*
 * balance.h - choosing a backend of an upstream group, and keeping score of
 * its health.
 *
 * One struct balancer per [upstream.NAME], shared by every proxy worker.
 * It picks a backend with the configured algorithm - smooth weighted round
 * robin, least-request with the power of two choices, peak-EWMA latency, or
 * consistent hashing on a ring - among the backends that are available:
 * passing their active health checks (rise/fall), not ejected as outliers
 * (consecutive failures; the ejection lasts longer each time and only a
 * capped share of the group may be ejected at once) and allowed by their
 * circuit breaker (hotpath/breaker.h). A backend that becomes available
 * again ramps its weight up over slow_start_ms. When fewer than
 * panic_pct of the backends are available the group is "in panic" and
 * picks among all of them (Envoy's panic threshold): better some errors
 * than none served.
 *
 * Pure logic with the clock passed in and a random source seeded by the
 * caller, so unit tests drive it alone. Thread-safe through one mutex per
 * balancer; every call is O(backends) at most (ring lookup O(log ring)).
 */
#ifndef HOTPATH_BALANCE_H
#define HOTPATH_BALANCE_H

#include <stdbool.h>
#include <stdint.h>
#include "hotpath/breaker.h"
#include "hotpath/common.h"

#define BALANCE_MAX_BACKENDS 64
#define BALANCE_TRANSITIONS 32     /* breaker/health transitions remembered */

enum balance_algo { BAL_ROUND_ROBIN = 0, BAL_LEAST_REQUEST, BAL_EWMA, BAL_HASH };

struct balance_options {
	enum balance_algo algo;
	unsigned health_rise;          /* passing checks to become healthy; 0 = 2 */
	unsigned health_fall;          /* failing checks to become unhealthy; 0 = 3 */
	unsigned eject_consecutive;    /* consecutive failures that eject; 0 = 5 */
	uint64_t eject_base_ms;        /* first ejection; n-th lasts n times this; 0 = 5000 */
	uint64_t eject_max_ms;         /* cap on one ejection; 0 = 300000 */
	unsigned eject_max_pct;        /* most of the group ejected at once; 0 = 50 */
	uint64_t slow_start_ms;        /* weight ramp after returning; 0 = off */
	unsigned panic_pct;            /* below this share available: panic; 0 = 50 */
	uint64_t ewma_decay_ms;        /* peak-EWMA time constant; 0 = 10000 */
	struct breaker_options breaker;
};

struct balance_backend_conf {
	char name[128];                /* HOST:PORT, shown in the API */
	unsigned weight;               /* 1..1000; 0 = 1 */
};

struct balance_transition {
	uint64_t at_wall_ms;
	unsigned backend;
	char what[24];                 /* "breaker", "health", "ejection" */
	char from[16], to[16];
};

struct balance_backend_stats {
	char name[128];
	unsigned weight;
	double effective_weight;        /* lower during slow start */
	bool healthy, ejected, available;
	enum breaker_state breaker;
	uint64_t inflight, requests, failures, ejections;
	uint64_t ejected_until_ms;
	double ewma_us;
	struct breaker_stats bstats;
};

struct balancer;

/* Create for n backends (1..BALANCE_MAX_BACKENDS). NULL on bad input or ENOMEM. */
struct balancer *balance_new(const struct balance_options *o,
			     const struct balance_backend_conf *backends, unsigned n,
			     uint64_t seed);
void balance_free(struct balancer *b);
unsigned balance_count(const struct balancer *b);

/*
 * Pick a backend for a request and count it in flight. `hash` is used by
 * BAL_HASH (and ignored otherwise); `exclude` is a bit mask of backends
 * already tried for this request. Returns the backend index, or -EAGAIN when
 * no backend may take it (all excluded, or every breaker open). The caller
 * must call balance_done() exactly once for a picked backend.
 */
int balance_pick(struct balancer *b, uint64_t hash, uint64_t exclude, uint64_t now_ms)
	HP_MUST_CHECK;
/* Like pick, but a specific backend (sticky session); -EAGAIN if unavailable. */
int balance_pick_this(struct balancer *b, unsigned idx, uint64_t now_ms) HP_MUST_CHECK;
/*
 * Outcome of a picked request: ok, or a failure that counts against the
 * backend (connect error, timeout, 5xx from it, broken response), and how
 * long it took (feeds EWMA and the breaker's slow-call rate).
 */
void balance_done(struct balancer *b, unsigned idx, bool ok, uint64_t latency_us,
		  uint64_t now_ms, uint64_t wall_ms);
/* Active health check result. */
void balance_health(struct balancer *b, unsigned idx, bool ok, uint64_t now_ms, uint64_t wall_ms);

/* Index of the backend whose name's hash is `h` (sticky cookies); -ENOENT. */
int balance_find_id(const struct balancer *b, uint64_t id);
/* Stable id of a backend for sticky cookies (hash of its name). */
uint64_t balance_backend_id(const struct balancer *b, unsigned idx);
/* Is the group in panic now (too few backends available)? */
bool balance_in_panic(struct balancer *b, uint64_t now_ms);

void balance_get_stats(struct balancer *b, unsigned idx, uint64_t now_ms,
		       struct balance_backend_stats *out);
/* Copy up to max of the most recent transitions (oldest first); returns count. */
unsigned balance_transitions(struct balancer *b, struct balance_transition *out, unsigned max);
const char *balance_algo_name(enum balance_algo a);

/* 64-bit FNV-1a, used for hash keys and backend ids. */
uint64_t balance_hash(const void *p, size_t n);

#endif
