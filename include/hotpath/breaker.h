/*
 * breaker.h - a circuit breaker for calls to a dependency (Redis L2, later
 * HTTP backends and loaders).
 *
 * Closed: calls go through and their outcomes fill a sliding window: the
 * last N calls (count window), or the calls of the last N seconds (time
 * window, resilience4j's TIME_BASED: one bucket per second, the oldest
 * dropped as time moves). When the window holds at least min_calls and the share of failed
 * calls, or of slow calls (longer than slow_call_us), reaches its
 * threshold, the breaker opens. Open: calls are refused at once for
 * open_ms. Then half-open: up to `probes` calls at a time go through; if
 * `probes` of them succeed in a row the breaker closes with a fresh window,
 * one failure (or slow call) opens it again.
 *
 * Pure logic with an injected clock (times are arguments), thread-safe
 * through an internal mutex, no allocation: tests drive it alone.
 */
#ifndef HOTPATH_BREAKER_H
#define HOTPATH_BREAKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define BREAKER_WINDOW_MAX 128

enum breaker_state { BREAKER_CLOSED = 0, BREAKER_OPEN = 1, BREAKER_HALF_OPEN = 2 };
enum breaker_window_type { BREAKER_WINDOW_COUNT = 0, BREAKER_WINDOW_TIME = 1 };

struct breaker_options {
	enum breaker_window_type window_type;
	unsigned window;            /* calls (count) or seconds (time) remembered,
				     * <= BREAKER_WINDOW_MAX; 0 = 20 */
	unsigned min_calls;         /* before the window may open it; 0 = 5 */
	unsigned failure_pct;       /* 1..100; 0 = 50 */
	unsigned slow_pct;          /* 1..100; 0 = 80 */
	uint64_t slow_call_us;      /* a call slower than this counts as slow; 0 = 100 ms */
	uint64_t open_ms;           /* time spent open before probing; 0 = 2000 */
	unsigned probes;            /* half-open probes needed to close; 0 = 2 */
};

struct breaker_stats {
	enum breaker_state state;
	uint64_t calls, failures, slow, rejected, opened, closed;
	uint64_t open_until_ms;     /* while open */
};

struct breaker {
	pthread_mutex_t mu;
	struct breaker_options o;
	enum breaker_state state;
	uint8_t ring[BREAKER_WINDOW_MAX];   /* count window: bit 0 failed, bit 1 slow */
	unsigned ring_pos, ring_len, nfail, nslow;   /* ring_len: calls in the window */
	struct breaker_bucket {             /* time window: one per second */
		uint32_t calls, fail, slow;
	} bucket[BREAKER_WINDOW_MAX];
	uint64_t last_sec;                  /* newest second recorded */
	uint64_t open_until_ms;
	unsigned probes_inflight, probes_ok;
	uint64_t calls, failures, slow, rejected, opened, closed;
};

/* Initialise (options copied, zeros take the defaults above). */
void breaker_init(struct breaker *b, const struct breaker_options *o);
void breaker_destroy(struct breaker *b);

/*
 * May a call start now? true: make the call and report it with
 * breaker_record. false: refuse it at once (counted as rejected).
 */
bool breaker_allow(struct breaker *b, uint64_t now_ms);
/* Outcome of an allowed call: ok or not, and how long it took. */
void breaker_record(struct breaker *b, bool ok, uint64_t dur_us, uint64_t now_ms);
/* Force open (e.g. the connection is known lost) until now + open_ms. */
void breaker_trip(struct breaker *b, uint64_t now_ms);

enum breaker_state breaker_state(struct breaker *b, uint64_t now_ms);
void breaker_get_stats(struct breaker *b, uint64_t now_ms, struct breaker_stats *out);
const char *breaker_state_name(enum breaker_state s);

#endif
