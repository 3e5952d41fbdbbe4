/*
 * tasks.h - the async task processor: background work shared by every
 * module (write-behind flushes, cache warming, refresh-ahead loads, later
 * optimisation jobs).
 *
 * A task is a function with an argument, a kind (for statistics and dead
 * letters), a priority and a retry budget. Worker threads take the oldest
 * task of the highest non-empty priority. A task that fails is retried
 * after an exponential backoff with jitter; one that exhausts its attempts
 * (or fails permanently) becomes a dead letter: kept, bounded, listed by
 * the API, and its argument freed. Queues are bounded: a producer that
 * finds the queue full gets -EAGAIN (push-back) or waits with
 * tasks_submit_wait. Sheddable tasks (work that may be skipped, such as a
 * refresh-ahead load) are dropped by a CoDel-style controller when their
 * time in the queue stays above a target for a whole interval; tasks that
 * must not be lost (write-behind) are never shed.
 *
 * The pure parts (backoff delay, CoDel decision) are exported for tests.
 */
#ifndef HOTPATH_TASKS_H
#define HOTPATH_TASKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hotpath/common.h"

struct tasks;

enum task_prio { TASK_PRIO_HIGH = 0, TASK_PRIO_NORMAL = 1, TASK_PRIO_LOW = 2, TASK_PRIO_COUNT = 3 };

/* Returned by a task function: done, or failed. -ECANCELED means "failed
 * for good": no retry, straight to the dead letters. Any other negative
 * value is retried while attempts remain. `err` takes a message. */
typedef int (*task_fn)(void *arg, char *err, size_t errlen);
/* Frees a task's argument once the task is done, dead or dropped. */
typedef void (*task_free_fn)(void *arg);

struct task_spec {
	const char *kind;           /* static string: "write-behind", "warm", ... */
	char label[96];             /* shown with dead letters, e.g. the key */
	task_fn run;
	task_free_fn free;          /* may be NULL */
	void *arg;
	int prio;                   /* enum task_prio */
	unsigned max_attempts;      /* 0 = the processor's default */
	bool sheddable;             /* CoDel may drop it under overload */
};

struct tasks_options {
	unsigned workers;           /* threads; 0 = 2 */
	unsigned queue_max;         /* queued + waiting to retry; 0 = 10000 */
	unsigned dead_max;          /* dead letters kept; 0 = 1000 */
	unsigned max_attempts;      /* default per task; 0 = 5 */
	uint64_t backoff_base_ms;   /* first retry delay; 0 = 100 */
	uint64_t backoff_max_ms;    /* cap; 0 = 30000 */
	uint64_t codel_target_us;   /* acceptable queue sojourn; 0 = 5000 */
	uint64_t codel_interval_us; /* window above target before shedding; 0 = 100000 */
};

#define TASKS_KIND_MAX 8

struct tasks_kind_stats {
	char kind[32];
	uint64_t submitted, completed, failed_attempts, retried, dead, shed, rejected;
};

struct tasks_stats {
	unsigned workers;
	uint64_t queue_max;
	uint64_t depth[TASK_PRIO_COUNT];  /* ready to run now */
	uint64_t delayed;                 /* waiting for a retry */
	uint64_t running;
	uint64_t submitted, completed, failed_attempts, retried, dead, shed, rejected;
	uint64_t dead_kept;               /* dead letters held now */
	double completed_per_s;           /* over the last 10 s */
	double submitted_per_s;
	uint64_t sojourn_p99_us;          /* queue wait of recent tasks */
	bool shedding;                    /* CoDel in its dropping state */
	unsigned n_kinds;
	struct tasks_kind_stats kinds[TASKS_KIND_MAX];
};

struct tasks_dead {
	char kind[32];
	char label[96];
	char error[160];
	unsigned attempts;
	uint64_t wall_ms;                 /* when it died */
};

/* Start the workers. NULL (nothing left running) on bad options or ENOMEM. */
struct tasks *tasks_new(const struct tasks_options *o);
/*
 * Stop: tasks already running finish, queued and delayed ones are freed
 * without running (their free callbacks run). Joins the threads, frees
 * everything. NULL is a no-op.
 */
void tasks_free(struct tasks *t);

/*
 * Queue a task. Returns 0 (the processor owns spec->arg now), -EAGAIN when
 * the queue is full or, for a sheddable task, while CoDel is shedding
 * (push-back: the caller still owns arg), -EINVAL for a bad spec,
 * -ESHUTDOWN while stopping, -ENOMEM.
 */
int tasks_submit(struct tasks *t, const struct task_spec *spec) HP_MUST_CHECK;
/* As tasks_submit, but waits up to timeout_ms for room when full. */
int tasks_submit_wait(struct tasks *t, const struct task_spec *spec,
		      uint64_t timeout_ms) HP_MUST_CHECK;

/* Wait until nothing is queued, delayed or running, up to timeout_ms.
 * 0 or -ETIMEDOUT. */
int tasks_drain(struct tasks *t, uint64_t timeout_ms) HP_MUST_CHECK;

void tasks_get_stats(struct tasks *t, struct tasks_stats *out);
/* Copy up to max dead letters, newest first; returns how many. */
unsigned tasks_dead_list(struct tasks *t, struct tasks_dead *out, unsigned max);
/* Forget every dead letter; returns how many there were. */
unsigned tasks_dead_clear(struct tasks *t);

/* ---- pure logic, exported for tests ---------------------------------- */

/*
 * Delay before retry number `attempt` (1 = first retry): "equal jitter"
 * exponential backoff, half of min(max, base * 2^(attempt-1)) plus a random
 * share of the other half taken from `rnd`. Never 0 unless base is 0.
 */
uint64_t tasks_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t max_ms, uint64_t rnd);

/* CoDel state (Nichols & Jacobson, "Controlling Queue Delay", 2012). */
struct codel {
	uint64_t first_above_us;    /* when sojourn may first count as persistently high */
	uint64_t drop_next_us;      /* next drop while dropping */
	unsigned count;             /* drops in this dropping period */
	bool dropping;
};

/*
 * Decide for a task leaving the queue after `sojourn_us`: true = drop it.
 * Sojourn below target resets the state; above target for a whole interval
 * enters the dropping state, where drops come at interval/sqrt(count).
 */
bool codel_should_drop(struct codel *c, uint64_t sojourn_us, uint64_t now_us,
		       uint64_t target_us, uint64_t interval_us);

#endif
