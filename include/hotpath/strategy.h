/*
 * strategy.h - per key-pattern cache strategies: which keys a strategy
 * covers and what a key's glob captures are (the pure part), and the
 * running strategies behind the tiers (agent/cache/strat_run.c).
 *
 * A strategy ([strategy.NAME] in the config) covers the keys matching a
 * Redis glob; the first strategy in file order whose pattern matches wins.
 * The bytes matched by each `*` and `?` of the pattern are the key's
 * captures, numbered from 1 left to right: "user:*:profile" on
 * "user:42:profile" captures "42", which a loader receives as $1 (SQL,
 * as a separate parameter) or {1} (URL, percent-encoded).
 *
 * The pure functions here touch no daemon state, so unit tests and the
 * config fuzzer drive them directly.
 */
#ifndef HOTPATH_STRATEGY_H
#define HOTPATH_STRATEGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hotpath/common.h"

#define STRAT_MAX_CAPTURES 8

struct strat_capture {
	size_t off, len;                /* into the key */
};

/*
 * Match `key` against the glob `pat` (the syntax of glob_match: `*`, `?`,
 * `[set]`, `\x`) and record the captures of its `*` and `?` tokens, left
 * to right. Returns the number of captures (0..STRAT_MAX_CAPTURES), -1 if
 * the key does not match, -E2BIG if the pattern has more than
 * STRAT_MAX_CAPTURES capturing tokens. A `*` takes as few bytes as it can
 * while the rest still matches (leftmost, shortest), except the last `*`,
 * which takes what remains before the pattern's tail. Work is bounded by
 * O(|pat| * |key|), no recursion.
 */
int strat_capture(const char *pat, size_t plen, const char *key, size_t klen,
		  struct strat_capture *caps);

/* Number of capturing tokens (`*`, `?` outside sets and escapes) in a glob. */
unsigned strat_pattern_captures(const char *pat, size_t plen);

/*
 * Pick the strategy for a key: the first of `pats` (n globs, NUL-terminated)
 * that matches. Returns its index and fills caps and *ncap, or -1.
 */
int strat_select(const char *const *pats, unsigned n, const char *key, size_t klen,
		 struct strat_capture *caps, int *ncap);

/*
 * Expand an HTTP loader URL template: "{N}" (1..9) becomes capture N,
 * percent-encoded (RFC 3986 unreserved bytes kept); "{{" is a literal '{'.
 * 0 and the NUL-terminated result in out, -EINVAL for a reference to a
 * capture that does not exist or a stray '{', -E2BIG if it does not fit.
 */
int strat_expand_url(const char *tmpl, const char *key, const struct strat_capture *caps,
		     int ncap, char *out, size_t outlen) HP_MUST_CHECK;

/* ---- the running strategies (strat_run.c) --------------------------------- */

struct strategies;
struct tier;
struct tasks;
struct hp_config;
struct buf;
struct breaker_stats;

struct strategy_stats {
	char name[64];
	char pattern[128];
	char loader[64];
	const char *write;              /* "none", "through", "behind" */
	uint64_t fresh_hits, stale_served, loads, load_errors, not_found;
	uint64_t coalesced;             /* misses that waited for another's load */
	uint64_t refreshes_queued, refreshes_shed, stale_if_error_served;
	uint64_t writes, write_errors;
	uint64_t wb_queued, wb_rejected, wb_written, wb_batches, wb_failed_attempts, wb_dead;
	uint64_t wb_pending;            /* queued + in flight now */
	uint64_t parked;                /* misses whose client waited off-thread */
	uint64_t park_refused;          /* misses refused: too many parked clients */
};

struct loader_stats;

/* The installed tier's strategies (NULL: none configured). Only for the
 * tier's owner (start/stop): a SIGHUP may replace them at any time. */
struct strategies *tier_strategies(struct tier *t);
/* The current strategies with a hold that keeps them alive (they may be
 * replaced by a reload meanwhile) until strategies_release. NULL: none. */
struct strategies *tier_strategies_hold(struct tier *t);
void strategies_release(struct strategies *s);
unsigned strategies_count(struct strategies *s);
/* Snapshot of strategy i's counters (i < strategies_count). */
void strategies_get_stats(struct strategies *s, unsigned i, struct strategy_stats *out);
unsigned strategies_loader_count(struct strategies *s);
void strategies_loader_stats(struct strategies *s, unsigned i, struct loader_stats *out);
/* Pending write-behind writes (queued + in flight), all strategies. */
uint64_t strategies_pending(struct strategies *s);

#endif
