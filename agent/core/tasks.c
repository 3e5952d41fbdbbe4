/*
 * tasks.c - the async task processor (see include/hotpath/tasks.h).
 *
 * How: one mutex guards three ready FIFOs (one per priority), a list of
 * tasks waiting for a retry sorted by due time, and the dead-letter ring.
 * Workers sleep on a condition variable (CLOCK_MONOTONIC) until a task is
 * ready or the earliest retry falls due; producers that want to wait for
 * room sleep on another. The bound counts every task the processor holds
 * (ready + waiting to retry + running), so a retry always has its place and
 * a producer is pushed back before memory grows. On dequeue each task's
 * sojourn time feeds the CoDel controller; only tasks marked sheddable are
 * actually dropped, and while CoDel is dropping, new sheddable tasks are
 * refused at the door so producers of optional work back off early.
 * Retries use "equal jitter" backoff so a burst of failures (Redis
 * restarting, a loader's database down) does not come back in lockstep.
 *
 * Why hand-written: background work here is small in-process closures
 * that need priorities, bounded queues with push-back and per-kind
 * statistics; none of the C thread-pool libraries Debian ships (e.g.
 * libthpool-like code bases are not packaged) offers shedding or dead
 * letters, and a pool is a page of pthread code.
 *
 * What not: no persistence (tasks die with the process; write-behind
 * callers flush on shutdown through tasks_drain), no per-task timeouts (a
 * task bounds its own I/O), no cancellation of a queued task.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/hist.h"
#include "hotpath/log.h"
#include "hotpath/tasks.h"

#define RATE_SECONDS 10

struct task {
	struct task *next;
	struct task_spec spec;
	unsigned attempts;
	unsigned kind;                 /* index in kinds[] */
	uint64_t enq_us;               /* entered the ready queue */
	uint64_t due_ms;               /* retry time while delayed */
	char err[160];
};

struct fifo {
	struct task *head, *tail;
	uint64_t len;
};

struct tasks {
	struct tasks_options o;
	pthread_mutex_t mu;
	pthread_cond_t work, space, idle;
	pthread_t *threads;
	unsigned nthreads;
	bool stopping;

	struct fifo ready[TASK_PRIO_COUNT];
	struct task *delayed;          /* sorted by due_ms */
	uint64_t ndelayed, running;
	uint64_t rnd;                  /* xorshift state */
	struct codel codel;

	uint64_t submitted, completed, failed_attempts, retried, dead, shed, rejected;
	unsigned n_kinds;
	struct tasks_kind_stats kinds[TASKS_KIND_MAX];
	struct hist sojourn;

	struct tasks_dead *deadring;
	unsigned dead_head, dead_count;

	uint64_t rate_sec[RATE_SECONDS];
	uint64_t rate_done[RATE_SECONDS], rate_sub[RATE_SECONDS];
};

/* ---- pure logic ------------------------------------------------------------ */

uint64_t tasks_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t max_ms, uint64_t rnd)
{
	uint64_t d = base_ms, half;

	if (attempt == 0)
		attempt = 1;
	for (unsigned i = 1; i < attempt && d < max_ms; i++)
		d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2;
	if (max_ms && d > max_ms)
		d = max_ms;
	half = d / 2;
	return d - half + (half ? rnd % (half + 1) : 0);
}

static uint64_t codel_next(uint64_t t, uint64_t interval_us, unsigned count)
{
	return t + (uint64_t)((double)interval_us / sqrt((double)(count ? count : 1)));
}

bool codel_should_drop(struct codel *c, uint64_t sojourn_us, uint64_t now_us,
		       uint64_t target_us, uint64_t interval_us)
{
	bool ok_to_drop = false;

	if (sojourn_us < target_us) {
		c->first_above_us = 0;
	} else if (c->first_above_us == 0) {
		c->first_above_us = now_us + interval_us;
	} else if (now_us >= c->first_above_us) {
		ok_to_drop = true;
	}
	if (c->dropping) {
		if (!ok_to_drop) {
			c->dropping = false;
			return false;
		}
		if (now_us >= c->drop_next_us) {
			c->count++;
			c->drop_next_us = codel_next(c->drop_next_us, interval_us, c->count);
			return true;
		}
		return false;
	}
	if (!ok_to_drop)
		return false;
	c->dropping = true;
	/* Re-entering soon after the last dropping period: resume near the
	 * drop rate that was controlling the queue then. */
	if (c->count > 2 && now_us - c->drop_next_us < 8 * interval_us)
		c->count -= 2;
	else
		c->count = 1;
	c->drop_next_us = codel_next(now_us, interval_us, c->count);
	return true;
}

/* ---- helpers (mu held) ----------------------------------------------------- */

static uint64_t tasks_rand(struct tasks *t)
{
	uint64_t x = t->rnd;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	t->rnd = x;
	return x;
}

static uint64_t tasks_held(const struct tasks *t)
{
	uint64_t n = t->ndelayed + t->running;

	for (int p = 0; p < TASK_PRIO_COUNT; p++)
		n += t->ready[p].len;
	return n;
}

static void fifo_push(struct fifo *f, struct task *k)
{
	k->next = NULL;
	if (f->tail)
		f->tail->next = k;
	else
		f->head = k;
	f->tail = k;
	f->len++;
}

static struct task *fifo_pop(struct fifo *f)
{
	struct task *k = f->head;

	if (!k)
		return NULL;
	f->head = k->next;
	if (!f->head)
		f->tail = NULL;
	f->len--;
	return k;
}

static unsigned kind_index(struct tasks *t, const char *kind)
{
	unsigned i;

	for (i = 0; i < t->n_kinds; i++)
		if (strcmp(t->kinds[i].kind, kind) == 0)
			return i;
	if (t->n_kinds < TASKS_KIND_MAX) {
		snprintf(t->kinds[t->n_kinds].kind, sizeof(t->kinds[0].kind), "%s", kind);
		return t->n_kinds++;
	}
	return TASKS_KIND_MAX - 1;     /* the last slot also takes the overflow */
}

static void rate_add(struct tasks *t, bool done)
{
	uint64_t sec = hp_now_ms() / 1000;
	unsigned i = (unsigned)(sec % RATE_SECONDS);

	if (t->rate_sec[i] != sec) {
		t->rate_sec[i] = sec;
		t->rate_done[i] = 0;
		t->rate_sub[i] = 0;
	}
	if (done)
		t->rate_done[i]++;
	else
		t->rate_sub[i]++;
}

static void task_release(struct task *k)
{
	if (k->spec.free)
		k->spec.free(k->spec.arg);
	free(k);
}

static void dead_add(struct tasks *t, struct task *k)
{
	struct tasks_dead *d;
	unsigned slot;

	t->dead++;
	t->kinds[k->kind].dead++;
	slot = (t->dead_head + t->dead_count) % t->o.dead_max;
	if (t->dead_count == t->o.dead_max)
		t->dead_head = (t->dead_head + 1) % t->o.dead_max;  /* oldest goes */
	else
		t->dead_count++;
	d = &t->deadring[slot];
	snprintf(d->kind, sizeof(d->kind), "%s", k->spec.kind);
	snprintf(d->label, sizeof(d->label), "%s", k->spec.label);
	snprintf(d->error, sizeof(d->error), "%s", k->err[0] ? k->err : "failed");
	d->attempts = k->attempts;
	d->wall_ms = hp_wall_ms();
	log_warn("tasks: %s task '%s' dead after %u attempt(s): %s", d->kind, d->label,
		 d->attempts, d->error);
}

static void delayed_insert(struct tasks *t, struct task *k)
{
	struct task **pp = &t->delayed;

	while (*pp && (*pp)->due_ms <= k->due_ms)
		pp = &(*pp)->next;
	k->next = *pp;
	*pp = k;
	t->ndelayed++;
}

static void promote_due(struct tasks *t, uint64_t now_ms)
{
	while (t->delayed && t->delayed->due_ms <= now_ms) {
		struct task *k = t->delayed;

		t->delayed = k->next;
		t->ndelayed--;
		k->enq_us = hp_now_us();
		fifo_push(&t->ready[k->spec.prio], k);
	}
}

/* ---- workers --------------------------------------------------------------- */

static void *worker_main(void *arg)
{
	struct tasks *t = arg;

	pthread_mutex_lock(&t->mu);
	while (!t->stopping) {
		struct task *k = NULL;
		uint64_t now_ms = hp_now_ms(), now_us;
		int p, rc;

		promote_due(t, now_ms);
		for (p = 0; p < TASK_PRIO_COUNT && !k; p++)
			k = fifo_pop(&t->ready[p]);
		if (!k) {
			struct timespec ts;

			if (t->delayed) {
				hp_abstime_in(&ts, CLOCK_MONOTONIC, t->delayed->due_ms - now_ms);
				pthread_cond_timedwait(&t->work, &t->mu, &ts);
			} else {
				pthread_cond_wait(&t->work, &t->mu);
			}
			continue;
		}
		now_us = hp_now_us();
		hist_record(&t->sojourn, now_us - k->enq_us);
		if (codel_should_drop(&t->codel, now_us - k->enq_us, now_us,
				      t->o.codel_target_us, t->o.codel_interval_us) &&
		    k->spec.sheddable) {
			t->shed++;
			t->kinds[k->kind].shed++;
			pthread_cond_broadcast(&t->space);
			pthread_mutex_unlock(&t->mu);
			task_release(k);
			pthread_mutex_lock(&t->mu);
			if (tasks_held(t) == 0)
				pthread_cond_broadcast(&t->idle);
			continue;
		}
		t->running++;
		k->attempts++;
		pthread_mutex_unlock(&t->mu);
		k->err[0] = '\0';
		rc = k->spec.run(k->spec.arg, k->err, sizeof(k->err));
		pthread_mutex_lock(&t->mu);
		t->running--;
		if (rc == 0) {
			t->completed++;
			t->kinds[k->kind].completed++;
			rate_add(t, true);
			pthread_mutex_unlock(&t->mu);
			task_release(k);
			pthread_mutex_lock(&t->mu);
		} else {
			t->failed_attempts++;
			t->kinds[k->kind].failed_attempts++;
			if (rc == -ECANCELED || k->attempts >= k->spec.max_attempts) {
				dead_add(t, k);
				pthread_mutex_unlock(&t->mu);
				task_release(k);
				pthread_mutex_lock(&t->mu);
			} else {
				t->retried++;
				t->kinds[k->kind].retried++;
				k->due_ms = hp_now_ms() +
					tasks_backoff_ms(k->attempts, t->o.backoff_base_ms,
							 t->o.backoff_max_ms, tasks_rand(t));
				delayed_insert(t, k);
				pthread_cond_signal(&t->work);
			}
		}
		pthread_cond_broadcast(&t->space);
		if (tasks_held(t) == 0)
			pthread_cond_broadcast(&t->idle);
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

/* ---- public ---------------------------------------------------------------- */

struct tasks *tasks_new(const struct tasks_options *o)
{
	struct tasks *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	if (o)
		t->o = *o;
	if (!t->o.workers)
		t->o.workers = 2;
	if (t->o.workers > 64)
		goto fail_alloc;
	if (!t->o.queue_max)
		t->o.queue_max = 10000;
	if (!t->o.dead_max)
		t->o.dead_max = 1000;
	if (!t->o.max_attempts)
		t->o.max_attempts = 5;
	if (!t->o.backoff_base_ms)
		t->o.backoff_base_ms = 100;
	if (!t->o.backoff_max_ms)
		t->o.backoff_max_ms = 30000;
	if (!t->o.codel_target_us)
		t->o.codel_target_us = 5000;
	if (!t->o.codel_interval_us)
		t->o.codel_interval_us = 100000;
	t->rnd = hp_now_us() | 1;
	t->deadring = calloc(t->o.dead_max, sizeof(*t->deadring));
	t->threads = calloc(t->o.workers, sizeof(*t->threads));
	if (!t->deadring || !t->threads)
		goto fail_alloc;
	pthread_mutex_init(&t->mu, NULL);
	hp_cond_init_monotonic(&t->work);
	hp_cond_init_monotonic(&t->space);
	hp_cond_init_monotonic(&t->idle);
	for (unsigned i = 0; i < t->o.workers; i++) {
		if (pthread_create(&t->threads[i], NULL, worker_main, t) != 0) {
			log_error("tasks: cannot start worker thread %u", i);
			tasks_free(t);
			return NULL;
		}
		t->nthreads++;
	}
	return t;
fail_alloc:
	free(t->deadring);
	free(t->threads);
	free(t);
	return NULL;
}

void tasks_free(struct tasks *t)
{
	struct task *k;

	if (!t)
		return;
	pthread_mutex_lock(&t->mu);
	t->stopping = true;
	pthread_cond_broadcast(&t->work);
	pthread_cond_broadcast(&t->space);
	pthread_cond_broadcast(&t->idle);
	pthread_mutex_unlock(&t->mu);
	for (unsigned i = 0; i < t->nthreads; i++)
		pthread_join(t->threads[i], NULL);
	for (int p = 0; p < TASK_PRIO_COUNT; p++)
		while ((k = fifo_pop(&t->ready[p])) != NULL)
			task_release(k);
	while ((k = t->delayed) != NULL) {
		t->delayed = k->next;
		task_release(k);
	}
	pthread_cond_destroy(&t->work);
	pthread_cond_destroy(&t->space);
	pthread_cond_destroy(&t->idle);
	pthread_mutex_destroy(&t->mu);
	free(t->deadring);
	free(t->threads);
	free(t);
}

static int submit_locked(struct tasks *t, const struct task_spec *s, uint64_t deadline_ms)
{
	struct task *k;
	unsigned ki;

	for (;;) {
		if (t->stopping)
			return -ESHUTDOWN;
		if (tasks_held(t) < t->o.queue_max && !(s->sheddable && t->codel.dropping))
			break;
		if (!deadline_ms || hp_now_ms() >= deadline_ms) {
			t->rejected++;
			t->kinds[kind_index(t, s->kind)].rejected++;
			return -EAGAIN;
		}
		{
			struct timespec ts;

			hp_abstime_in(&ts, CLOCK_MONOTONIC, deadline_ms - hp_now_ms());
			pthread_cond_timedwait(&t->space, &t->mu, &ts);
		}
	}
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->spec = *s;
	if (!k->spec.max_attempts)
		k->spec.max_attempts = t->o.max_attempts;
	ki = kind_index(t, s->kind);
	k->kind = ki;
	k->enq_us = hp_now_us();
	fifo_push(&t->ready[s->prio], k);
	t->submitted++;
	t->kinds[ki].submitted++;
	rate_add(t, false);
	pthread_cond_signal(&t->work);
	return 0;
}

static int submit(struct tasks *t, const struct task_spec *s, uint64_t timeout_ms, bool wait)
{
	int rc;

	if (!t || !s || !s->run || !s->kind || s->prio < 0 || s->prio >= TASK_PRIO_COUNT)
		return -EINVAL;
	pthread_mutex_lock(&t->mu);
	rc = submit_locked(t, s, wait ? hp_now_ms() + (timeout_ms ? timeout_ms : 1) : 0);
	pthread_mutex_unlock(&t->mu);
	return rc;
}

int tasks_submit(struct tasks *t, const struct task_spec *spec)
{
	return submit(t, spec, 0, false);
}

int tasks_submit_wait(struct tasks *t, const struct task_spec *spec, uint64_t timeout_ms)
{
	return submit(t, spec, timeout_ms, true);
}

int tasks_drain(struct tasks *t, uint64_t timeout_ms)
{
	uint64_t deadline = hp_now_ms() + timeout_ms;
	int rc = 0;

	pthread_mutex_lock(&t->mu);
	while (tasks_held(t) > 0 && !t->stopping) {
		struct timespec ts;
		uint64_t now = hp_now_ms();

		if (now >= deadline) {
			rc = -ETIMEDOUT;
			break;
		}
		hp_abstime_in(&ts, CLOCK_MONOTONIC, deadline - now < 50 ? deadline - now : 50);
		pthread_cond_timedwait(&t->idle, &t->mu, &ts);
	}
	pthread_mutex_unlock(&t->mu);
	return rc;
}

void tasks_get_stats(struct tasks *t, struct tasks_stats *out)
{
	uint64_t sec = hp_now_ms() / 1000, done = 0, sub = 0;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&t->mu);
	out->workers = t->nthreads;
	out->queue_max = t->o.queue_max;
	for (int p = 0; p < TASK_PRIO_COUNT; p++)
		out->depth[p] = t->ready[p].len;
	out->delayed = t->ndelayed;
	out->running = t->running;
	out->submitted = t->submitted;
	out->completed = t->completed;
	out->failed_attempts = t->failed_attempts;
	out->retried = t->retried;
	out->dead = t->dead;
	out->shed = t->shed;
	out->rejected = t->rejected;
	out->dead_kept = t->dead_count;
	out->shedding = t->codel.dropping;
	out->sojourn_p99_us = (uint64_t)hist_quantile(&t->sojourn, 0.99);
	for (unsigned i = 0; i < RATE_SECONDS; i++) {
		/* whole seconds only: the current one is still filling */
		if (t->rate_sec[i] + RATE_SECONDS >= sec && t->rate_sec[i] < sec) {
			done += t->rate_done[i];
			sub += t->rate_sub[i];
		}
	}
	out->completed_per_s = (double)done / (RATE_SECONDS - 1);
	out->submitted_per_s = (double)sub / (RATE_SECONDS - 1);
	out->n_kinds = t->n_kinds;
	memcpy(out->kinds, t->kinds, sizeof(out->kinds));
	pthread_mutex_unlock(&t->mu);
}

unsigned tasks_dead_list(struct tasks *t, struct tasks_dead *out, unsigned max)
{
	unsigned n = 0;

	pthread_mutex_lock(&t->mu);
	while (n < max && n < t->dead_count) {
		unsigned slot = (t->dead_head + t->dead_count - 1 - n) % t->o.dead_max;

		out[n++] = t->deadring[slot];
	}
	pthread_mutex_unlock(&t->mu);
	return n;
}

unsigned tasks_dead_clear(struct tasks *t)
{
	unsigned n;

	pthread_mutex_lock(&t->mu);
	n = t->dead_count;
	t->dead_count = 0;
	t->dead_head = 0;
	pthread_mutex_unlock(&t->mu);
	return n;
}
