/*
 * warm.c - cache warming jobs and the warm-restart snapshot
 * (include/hotpath/warm.h, include/hotpath/snapshot.h).
 *
 * Jobs: a fixed ring of WARM_JOBS_KEPT job records under one mutex; a job
 * is one task ("warm", low priority, not sheddable, one attempt: a warm
 * that fails half-way reports what it did rather than starting over). The
 * task walks its sources in order and updates the record's counters as it
 * goes, so GET .../warm/{id} shows progress while it runs. A job record
 * being overwritten while its task still runs is prevented by refusing new
 * jobs when every slot holds a queued or running one.
 *
 * Per key, the origin is chosen in this order: the key's strategy loader
 * (strategies_warm_key, which fills L1 and L2 like a read-through), L2
 * (read and copy into L1, as a GET would), the value in hand (SQL rows,
 * snapshot entries). Every fill goes through tier_fill, so warming never
 * resurrects a key invalidated while the job ran.
 *
 * Snapshot: at shutdown l1_hot_scan reports every key read since the last
 * scan with its heat; a bounded min-heap keeps the warm.snapshot_keys
 * hottest; their values and expiry times are then read (l1_get) and
 * written into a snapshot_max_bytes-bounded buffer, hottest first, and
 * the file is replaced atomically. Expiry times are stored as wall-clock
 * times so a restart (a new monotonic clock) keeps the remaining TTLs;
 * entries that expired while the agent was down are skipped.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hotpath/daemon.h"
#include "hotpath/l1.h"
#include "hotpath/l2.h"
#include "hotpath/loader.h"
#include "hotpath/log.h"
#include "hotpath/snapshot.h"
#include "hotpath/strategy.h"
#include "hotpath/tasks.h"
#include "hotpath/warm.h"
#include "tier_int.h"

struct warm_job {
	struct warm_job_info info;
	struct warm_request *rq;
	struct hp_daemon *d;
};

static pthread_mutex_t jobs_mu = PTHREAD_MUTEX_INITIALIZER;
static struct warm_job jobs[WARM_JOBS_KEPT];
static uint64_t next_id = 1;
static struct warm_totals totals;

const char *warm_status_name(int s)
{
	static const char *const n[] = { "queued", "running", "done", "failed" };

	return s >= 0 && s <= WARM_FAILED ? n[s] : "unknown";
}

void warm_request_free(struct warm_request *rq)
{
	if (!rq)
		return;
	for (unsigned i = 0; i < rq->n; i++) {
		for (unsigned k = 0; k < rq->src[i].nkeys; k++)
			free(rq->src[i].keys[k]);
		free(rq->src[i].keys);
		free(rq->src[i].klens);
	}
	free(rq);
}

static struct warm_job *job_of(uint64_t id)
{
	struct warm_job *j = &jobs[id % WARM_JOBS_KEPT];

	return j->info.id == id ? j : NULL;
}

bool warm_job_get(uint64_t id, struct warm_job_info *out)
{
	struct warm_job *j;
	bool ok = false;

	pthread_mutex_lock(&jobs_mu);
	j = id ? job_of(id) : NULL;
	if (j) {
		*out = j->info;
		ok = true;
	}
	pthread_mutex_unlock(&jobs_mu);
	return ok;
}

bool warm_job_at(unsigned i, struct warm_job_info *out)
{
	bool ok = false;

	pthread_mutex_lock(&jobs_mu);
	if (i < WARM_JOBS_KEPT && next_id > 1 + i) {
		struct warm_job *j = job_of(next_id - 1 - i);

		if (j) {
			*out = j->info;
			ok = true;
		}
	}
	pthread_mutex_unlock(&jobs_mu);
	return ok;
}

void warm_totals(struct warm_totals *out)
{
	pthread_mutex_lock(&jobs_mu);
	*out = totals;
	pthread_mutex_unlock(&jobs_mu);
}

/* ---- per key ------------------------------------------------------------------ */

struct run {
	struct hp_daemon *d;
	uint64_t id;
	bool scope_all;
};

static void note(struct run *r, int outcome, const char *err)
{
	struct warm_job *j;

	pthread_mutex_lock(&jobs_mu);
	j = job_of(r->id);
	if (j) {
		j->info.seen++;
		if (outcome > 0)
			j->info.warmed++;
		else if (outcome == 0)
			j->info.missing++;
		else
			j->info.failed++;
		if (outcome < 0 && err && !j->info.error[0])
			snprintf(j->info.error, sizeof(j->info.error), "%s", err);
	}
	if (outcome > 0)
		totals.keys++;
	pthread_mutex_unlock(&jobs_mu);
}

/* Warm one key from its best origin; `val` (may be NULL) is a value in
 * hand with its absolute monotonic expiry (0 = none). 1 warmed, 0 nothing
 * to warm from, -errno. */
static int warm_key(struct run *r, const char *key, size_t klen, const char *val, size_t vlen,
		    uint64_t expire_at_ms, char *err, size_t errlen)
{
	struct tier *t = r->d->tier;
	struct strategies *ss = tier_strategies_hold(t);
	uint64_t seq, ep, ttl;
	int rc;

	if (ss) {
		rc = strategies_warm_key(ss, key, klen, err, errlen);
		if (rc != 0 || strategies_key_ttl(ss, key, klen)) {
			strategies_release(ss);
			return rc;      /* the loader answered (or the key is its to answer) */
		}
		strategies_release(ss);
	}
	if (!val && tier_l2(t)) {
		struct l2_value v;

		tier_read_begin(t, key, klen, &seq, &ep);
		rc = tier_l2_read(t, key, klen, &v, err, errlen);
		if (rc <= 0)
			return rc;
		rc = v.cacheable && tier_fill(t, key, klen, v.val, v.len, v.pttl_ms > 0 ?
					      hp_now_ms() + (uint64_t)v.pttl_ms : 0, seq, ep);
		l2_value_free(&v);
		return rc ? 1 : 0;
	}
	if (!val)
		return 0;
	ttl = expire_at_ms ? expire_at_ms - hp_now_ms() : 0;
	if (r->scope_all && tier_l2(t)) {
		rc = tier_l2_write(t, key, klen, val, vlen, ttl, err, errlen);
		if (rc)
			return rc;
	}
	tier_read_begin(t, key, klen, &seq, &ep);
	return tier_fill(t, key, klen, val, vlen, expire_at_ms, seq, ep) ? 1 : -ENOMEM;
}

static bool sql_row(const char *key, size_t klen, const char *val, size_t vlen, void *arg)
{
	struct run *r = arg;
	char err[200] = "";

	note(r, warm_key(r, key, klen, val, vlen, 0, err, sizeof(err)), err);
	return true;
}

struct scan_keys {
	char **keys;
	size_t *lens;
	size_t n, max;
};

static bool scan_key(const char *key, size_t klen, void *arg)
{
	struct scan_keys *s = arg;
	char *k;

	if (s->n >= s->max)
		return false;
	k = malloc(klen ? klen : 1);
	if (!k)
		return false;
	memcpy(k, key, klen);
	s->keys[s->n] = k;
	s->lens[s->n++] = klen;
	return true;
}

static int snap_entry(const char *key, size_t klen, const char *val, size_t vlen,
		      uint64_t expire_wall_ms, void *arg)
{
	struct run *r = arg;
	uint64_t wall = hp_wall_ms(), exp = 0;
	char err[200] = "";

	if (expire_wall_ms) {
		if (expire_wall_ms <= wall) {
			note(r, 0, NULL);        /* expired while we were down */
			return 0;
		}
		exp = hp_now_ms() + (expire_wall_ms - wall);
	}
	note(r, warm_key(r, key, klen, val, vlen, exp, err, sizeof(err)), err);
	return 0;
}

static int run_source(struct run *r, const struct warm_source *src, char *err, size_t errlen)
{
	const struct hp_config *c = r->d->cfg;
	int rc = 0;

	switch (src->type) {
	case WARM_SRC_KEYS:
		for (unsigned i = 0; i < src->nkeys; i++) {
			char kerr[200] = "";

			note(r, warm_key(r, src->keys[i], src->klens[i], NULL, 0, 0, kerr,
					 sizeof(kerr)), kerr);
		}
		return 0;
	case WARM_SRC_PATTERN: {
		struct scan_keys sk = { .max = src->limit };

		sk.keys = calloc(sk.max, sizeof(*sk.keys));
		sk.lens = calloc(sk.max, sizeof(*sk.lens));
		if (!sk.keys || !sk.lens) {
			free(sk.keys);
			free(sk.lens);
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		rc = l2_scan(tier_l2(r->d->tier), src->pattern, src->plen, src->limit, scan_key, &sk,
			     err, errlen);
		for (size_t i = 0; i < sk.n; i++) {
			char kerr[200] = "";

			if (rc == 0)
				note(r, warm_key(r, sk.keys[i], sk.lens[i], NULL, 0, 0, kerr,
						 sizeof(kerr)), kerr);
			free(sk.keys[i]);
		}
		free(sk.keys);
		free(sk.lens);
		return rc;
	}
	case WARM_SRC_SQL: {
		struct strategies *ss = tier_strategies_hold(r->d->tier);
		struct loader *l = strategies_loader(ss, src->loader);
		long n;

		if (!l) {
			strategies_release(ss);
			snprintf(err, errlen, "no loader named '%s'", src->loader);
			return -EINVAL;
		}
		n = loader_warm_rows(l, src->limit, sql_row, r, err, errlen);
		strategies_release(ss);
		return n < 0 ? (int)n : 0;
	}
	case WARM_SRC_SNAPSHOT: {
		struct snapshot_limits lim = {
			.max_bytes = c->warm_snapshot_max_bytes, .max_keys = c->warm_snapshot_keys,
			.max_klen = c->resp_max_key_len ? c->resp_max_key_len : 512 * 1024 * 1024,
			.max_vlen = c->resp_max_value_size,
		};
		char *data;
		size_t len;

		if (!c->warm_snapshot_file[0]) {
			snprintf(err, errlen, "warm.snapshot_file is not set");
			return -EINVAL;
		}
		rc = snapshot_read_file(c->warm_snapshot_file, lim.max_bytes, &data, &len, err,
					errlen);
		if (rc)
			return rc;
		rc = snapshot_parse(data, len, &lim, snap_entry, r, NULL, NULL, err, errlen);
		free(data);
		return rc;
	}
	}
	snprintf(err, errlen, "unknown source type");
	return -EINVAL;
}

static int job_run(void *arg, char *err, size_t errlen)
{
	struct warm_job *jp = arg;
	struct warm_request *rq;
	struct run r;
	int rc = 0;

	pthread_mutex_lock(&jobs_mu);
	jp->info.status = WARM_RUNNING;
	rq = jp->rq;
	r.d = jp->d;
	r.id = jp->info.id;
	r.scope_all = rq->scope_all;
	pthread_mutex_unlock(&jobs_mu);
	for (unsigned i = 0; i < rq->n; i++) {
		char serr[200] = "";
		int src = run_source(&r, &rq->src[i], serr, sizeof(serr));

		if (src && !rc) {
			rc = src;
			snprintf(err, errlen, "source %u: %s", i + 1, serr);
		}
	}
	pthread_mutex_lock(&jobs_mu);
	jp->info.status = rc ? WARM_FAILED : WARM_DONE;
	if (rc && !jp->info.error[0])
		snprintf(jp->info.error, sizeof(jp->info.error), "%s", err);
	jp->info.finished_wall_ms = hp_wall_ms();
	if (rc)
		totals.failed++;
	else
		totals.done++;
	log_info("warm job %llu %s: %llu keys warmed, %llu missing, %llu failed%s%s",
		 (unsigned long long)jp->info.id, rc ? "failed" : "done",
		 (unsigned long long)jp->info.warmed, (unsigned long long)jp->info.missing,
		 (unsigned long long)jp->info.failed, rc ? ": " : "", rc ? jp->info.error : "");
	pthread_mutex_unlock(&jobs_mu);
	return rc ? -ECANCELED : 0;     /* never retried: the record says what happened */
}

static void job_free(void *arg)
{
	struct warm_job *jp = arg;
	struct warm_request *rq;

	pthread_mutex_lock(&jobs_mu);
	rq = jp->rq;
	jp->rq = NULL;
	if (jp->info.status == WARM_QUEUED) {       /* dropped at shutdown */
		jp->info.status = WARM_FAILED;
		snprintf(jp->info.error, sizeof(jp->info.error), "dropped: the agent stopped");
	}
	pthread_mutex_unlock(&jobs_mu);
	warm_request_free(rq);
}

int warm_submit(struct hp_daemon *d, struct warm_request *rq, uint64_t *id, char *err,
		size_t errlen)
{
	struct task_spec spec = { .kind = "warm", .run = job_run, .free = job_free,
				  .prio = TASK_PRIO_LOW, .max_attempts = 1 };
	struct warm_job *jp;
	int rc;

	for (unsigned i = 0; i < rq->n; i++) {
		const struct warm_source *s = &rq->src[i];

		if (s->type == WARM_SRC_PATTERN && !tier_l2(d->tier)) {
			snprintf(err, errlen, "data_sources[%u]: a pattern source scans L2, and no "
				 "[redis] is configured", i);
			rc = -EINVAL;
			goto fail;
		}
		if (s->type == WARM_SRC_SQL) {
			struct strategies *ss = tier_strategies_hold(d->tier);
			struct loader *l = strategies_loader(ss, s->loader);
			bool warms = l && loader_warms(l);

			strategies_release(ss);
			if (!warms) {
				snprintf(err, errlen, "data_sources[%u]: no [loader.%s] with a "
					 "warm_query", i, s->loader);
				rc = -EINVAL;
				goto fail;
			}
		}
		if (s->type == WARM_SRC_SNAPSHOT && !d->cfg->warm_snapshot_file[0]) {
			snprintf(err, errlen, "data_sources[%u]: warm.snapshot_file is not set", i);
			rc = -EINVAL;
			goto fail;
		}
	}
	pthread_mutex_lock(&jobs_mu);
	jp = &jobs[next_id % WARM_JOBS_KEPT];
	if (jp->rq) {
		pthread_mutex_unlock(&jobs_mu);
		snprintf(err, errlen, "%d warm jobs are already queued or running", WARM_JOBS_KEPT);
		rc = -EAGAIN;
		goto fail;
	}
	memset(jp, 0, sizeof(*jp));
	jp->info.id = next_id;
	jp->info.status = WARM_QUEUED;
	jp->info.scope_all = rq->scope_all;
	jp->info.n_sources = rq->n;
	jp->info.created_wall_ms = hp_wall_ms();
	jp->rq = rq;
	jp->d = d;
	spec.arg = jp;
	snprintf(spec.label, sizeof(spec.label), "warm job %llu", (unsigned long long)next_id);
	rc = tasks_submit(d->tasks, &spec);
	if (rc) {
		jp->rq = NULL;
		jp->info.id = 0;
		pthread_mutex_unlock(&jobs_mu);
		snprintf(err, errlen, "the task processor refused the job (%s)",
			 rc == -EAGAIN ? "queue full" : strerror(-rc));
		rc = rc == -EAGAIN ? -EAGAIN : -EIO;
		goto fail;
	}
	*id = next_id++;
	pthread_mutex_unlock(&jobs_mu);
	return 0;
fail:
	warm_request_free(rq);
	return rc;
}

/* ---- the snapshot at shutdown ---------------------------------------------------------- */

struct hot {
	char *key;
	size_t klen;
	unsigned heat;
};

struct heap {
	struct hot *h;
	size_t n, max;
};

static void heap_down(struct heap *hp, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		struct hot tmp;

		if (l < hp->n && hp->h[l].heat < hp->h[m].heat)
			m = l;
		if (l + 1 < hp->n && hp->h[l + 1].heat < hp->h[m].heat)
			m = l + 1;
		if (m == i)
			return;
		tmp = hp->h[i];
		hp->h[i] = hp->h[m];
		hp->h[m] = tmp;
		i = m;
	}
}

static void heap_up(struct heap *hp, size_t i)
{
	while (i) {
		size_t p = (i - 1) / 2;
		struct hot tmp;

		if (hp->h[p].heat <= hp->h[i].heat)
			return;
		tmp = hp->h[i];
		hp->h[i] = hp->h[p];
		hp->h[p] = tmp;
		i = p;
	}
}

/* Keep the hottest `max` keys: a min-heap whose root is the coolest kept. */
static void hot_key(const char *key, size_t klen, size_t vlen, unsigned heat, void *arg)
{
	struct heap *hp = arg;
	char *k;

	(void)vlen;
	if (hp->n == hp->max && heat <= hp->h[0].heat)
		return;
	k = malloc(klen ? klen : 1);
	if (!k)
		return;
	memcpy(k, key, klen);
	if (hp->n == hp->max) {
		free(hp->h[0].key);
		hp->h[0] = (struct hot){ k, klen, heat };
		heap_down(hp, 0);
	} else {
		hp->h[hp->n] = (struct hot){ k, klen, heat };
		heap_up(hp, hp->n++);
	}
}

static int cmp_hot_desc(const void *a, const void *b)
{
	const struct hot *x = a, *y = b;

	return x->heat < y->heat ? 1 : x->heat > y->heat ? -1 : 0;
}

struct snap_add {
	struct buf *b;
	uint32_t count;
	bool full;
	int err;
};

static void snap_value(const char *val, size_t len, uint64_t expire_at_ms, void *arg)
{
	struct snap_add *sa = ((void **)arg)[0];
	const struct hot *h = ((void **)arg)[1];
	uint64_t now = hp_now_ms(), wall = 0;
	int rc;

	if (expire_at_ms) {
		if (expire_at_ms <= now)
			return;
		wall = hp_wall_ms() + (expire_at_ms - now);
	}
	rc = snapshot_add(sa->b, h->key, h->klen, val, len, wall);
	if (rc == -ENOBUFS)
		sa->full = true;
	else if (rc)
		sa->err = rc;
	else
		sa->count++;
}

long warm_snapshot_save(struct hp_daemon *d)
{
	const struct hp_config *c = d->cfg;
	struct heap hp = { 0 };
	struct snap_add sa = { 0 };
	struct buf b;
	char err[256];
	long rc;

	if (!c->warm_snapshot_file[0] || !d->l1)
		return 0;
	hp.max = c->warm_snapshot_keys;
	hp.h = calloc(hp.max, sizeof(*hp.h));
	if (!hp.h)
		return -ENOMEM;
	l1_hot_scan(d->l1, c->resp_max_key_len ? c->resp_max_key_len : SIZE_MAX,
		    c->warm_snapshot_max_bytes, 1, hot_key, &hp);
	qsort(hp.h, hp.n, sizeof(*hp.h), cmp_hot_desc);
	buf_init(&b, c->warm_snapshot_max_bytes);
	sa.b = &b;
	rc = snapshot_begin(&b, hp_wall_ms());
	for (size_t i = 0; i < hp.n && !rc && !sa.full && !sa.err; i++) {
		void *args[2] = { &sa, &hp.h[i] };

		l1_get(d->l1, hp.h[i].key, hp.h[i].klen, snap_value, args);
	}
	for (size_t i = 0; i < hp.n; i++)
		free(hp.h[i].key);
	free(hp.h);
	if (!rc)
		rc = sa.err;
	if (!rc)
		rc = snapshot_end(&b, sa.count);
	if (!rc)
		rc = snapshot_write_file(c->warm_snapshot_file, buf_head(&b), buf_used(&b), err,
					 sizeof(err));
	else
		snprintf(err, sizeof(err), "%s", strerror((int)-rc));
	buf_free(&b);
	if (rc) {
		log_warn("warm: hot-key snapshot not saved: %s", err);
		return rc;
	}
	log_info("warm: saved %u hot keys to %s%s", sa.count, c->warm_snapshot_file,
		 sa.full ? " (snapshot_max_bytes reached)" : "");
	return sa.count;
}

void warm_restore_start(struct hp_daemon *d)
{
	struct warm_request *rq;
	char err[256];
	uint64_t id;

	if (!d->cfg->warm_snapshot_file[0] || !d->cfg->warm_restore || !d->tasks)
		return;
	if (access(d->cfg->warm_snapshot_file, F_OK) != 0) {
		log_info("warm: no snapshot at %s yet: starting cold", d->cfg->warm_snapshot_file);
		return;
	}
	rq = calloc(1, sizeof(*rq));
	if (!rq)
		return;
	rq->n = 1;
	rq->src[0].type = WARM_SRC_SNAPSHOT;
	if (warm_submit(d, rq, &id, err, sizeof(err)) != 0)
		log_warn("warm: cannot start the warm restart: %s", err);
	else
		log_info("warm: warming L1 from %s (job %llu)", d->cfg->warm_snapshot_file,
			 (unsigned long long)id);
}
