/*
 * common.h - small helpers every module of hotpath may use.
 *
 * Only what is truly shared lives here: attribute macros, array sizing and
 * the two clocks (monotonic for durations and TTLs, wall clock for what is
 * shown to users). Nothing here allocates or depends on the daemon.
 */
#ifndef HOTPATH_COMMON_H
#define HOTPATH_COMMON_H

#include <stdint.h>
#include <stddef.h>
#include <pthread.h>
#include <time.h>

#define HP_MUST_CHECK __attribute__((warn_unused_result))
#define HP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define HP_UNUSED __attribute__((unused))
#define HP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define hp_likely(x) __builtin_expect(!!(x), 1)
#define hp_unlikely(x) __builtin_expect(!!(x), 0)

/* Free *pp and set it to NULL (haproxy's ha_free habit). */
#define hp_free_null(pp) do { free(*(pp)); *(pp) = NULL; } while (0)

/* Monotonic milliseconds: durations, TTL deadlines, timeouts. */
static inline uint64_t hp_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Monotonic microseconds: latency measurement. */
static inline uint64_t hp_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The absolute time `ms` from now on `clock`, for pthread_cond_timedwait
 * (CLOCK_REALTIME for a default condition variable, CLOCK_MONOTONIC for one
 * created with that clock). */
static inline void hp_abstime_in(struct timespec *ts, clockid_t clock, uint64_t ms)
{
	clock_gettime(clock, ts);
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* A condition variable whose timed waits use CLOCK_MONOTONIC (deadlines
 * from hp_abstime_in(ts, CLOCK_MONOTONIC, ms)): a wall-clock step neither
 * cuts a wait short nor stretches it. */
static inline void hp_cond_init_monotonic(pthread_cond_t *c)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(c, &ca);
	pthread_condattr_destroy(&ca);
}

/* Wall-clock milliseconds since the epoch: timestamps shown to users. */
static inline uint64_t hp_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif
