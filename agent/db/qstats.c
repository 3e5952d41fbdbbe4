/*
 * qstats.c - per-fingerprint statistics of the queries the pooler runs
 * (see qstats.h for what and why).
 *
 * How: a singly linked FIFO of malloc'd samples, bounded by count, under
 * one mutex with a condition variable; the aggregator thread takes the
 * whole list at once, then works without the queue lock. Fingerprinting
 * costs tens of microseconds of libpg_query per distinct text, which is
 * why it happens here and not on the pooler's loop. The table is open
 * addressing on (fingerprint, database) with linear probing, sized to a
 * power of two at least twice max_fingerprints, never shrinking: entries
 * are only removed by qstats_reset, so there are no tombstones. A text
 * that does not parse is grouped under its raw (truncated) text with an
 * empty fingerprint.
 *
 * What not: no time windows (figures are since first seen; `since_ms`
 * selects entries by last use), no per-user split.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define XXH_STATIC_LINKING_ONLY        /* XXH3_state_t on the stack */
#include <xxhash.h>
#include <pg_query.h>
#include "hotpath/log.h"
#include "hotpath/pgwire.h"
#include "hotpath/qstats.h"

#define MEMO_SIZE 8192                  /* direct-mapped: text hash -> slot */
#define NORM_MAX 4096
#define BATCH_WAKE 256                  /* samples that wake the aggregator */
#define BATCH_MS 20                     /* else it looks this often */
#define SAMPLE_MS 1000                  /* refresh a literal sample at most this often */

struct sample {
	struct sample *next;
	struct qstats_sample s;
	char db[64];
	uint8_t data[];                 /* text, then bind */
};

struct ent {
	bool used;
	uint64_t fp;
	uint64_t sample_ms;             /* when the sample's facts were last parsed */
	uint64_t key;                   /* hash of fp + db (or of raw text + db) */
	struct qstats_entry e;
};

struct memo {
	uint64_t text_hash;             /* 0 = empty */
	uint32_t slot;
};

struct qstats {
	struct qstats_options o;
	pthread_t thread;
	bool started;
	pthread_mutex_t qmu;
	pthread_cond_t qcv, idle_cv;
	struct sample *head, *tail;
	unsigned qlen;
	bool busy;                      /* aggregator working on a batch */
	bool flush_wanted;              /* a reader waits: don't wait for a full batch */
	bool stop;
	pthread_mutex_t mu;             /* the table */
	struct ent *tab;
	unsigned cap, n;
	struct memo *memo;
	struct qstats_totals t;         /* under mu, except dropped_queue (atomic) */
};

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- pure parsers ----------------------------------------------------------------- */

bool qstats_tag_rows(const char *tag, size_t len, uint64_t *rows)
{
	size_t end = len, i;
	uint64_t v = 0;

	while (end && tag[end - 1] == '\0')
		end--;
	i = end;
	while (i && tag[i - 1] >= '0' && tag[i - 1] <= '9')
		i--;
	if (i == end || end - i > 19 || i == 0 || tag[i - 1] != ' ')
		return false;
	for (size_t k = i; k < end; k++)
		v = v * 10 + (uint64_t)(tag[k] - '0');
	*rows = v;
	return true;
}

int qstats_bind_params(const uint8_t *p, size_t len, char (*vals)[PGT_PARAM_MAX], bool *nulls,
		       unsigned max, unsigned *n)
{
	struct pgw_rd r;
	uint16_t nfmt, nparam, fmt_all = 0;
	const uint8_t *fmts;

	*n = 0;
	pgw_rd_init(&r, p, len);
	nfmt = pgw_get_u16(&r);
	fmts = pgw_get_bytes(&r, (size_t)nfmt * 2);
	nparam = pgw_get_u16(&r);
	if (r.bad || (nfmt > 1 && nfmt != nparam))
		return -EINVAL;
	if (nfmt == 1)
		fmt_all = (uint16_t)(fmts[0] << 8 | fmts[1]);
	if (nparam > max)
		return -ENOTSUP;
	for (unsigned i = 0; i < nparam; i++) {
		uint32_t plen = pgw_get_u32(&r);
		uint16_t fmt = nfmt == 0 ? 0 : nfmt == 1 ? fmt_all :
			       (uint16_t)(fmts[2 * i] << 8 | fmts[2 * i + 1]);
		const uint8_t *v;

		if (r.bad)
			return -EINVAL;
		if (plen == 0xffffffffu) {
			nulls[i] = true;
			vals[i][0] = '\0';
			continue;
		}
		if (plen > len)
			return -EINVAL;
		v = pgw_get_bytes(&r, plen);
		if (r.bad)
			return -EINVAL;
		if (fmt != 0 || plen >= PGT_PARAM_MAX || memchr(v, '\0', plen))
			return -ENOTSUP;
		nulls[i] = false;
		memcpy(vals[i], v, plen);
		vals[i][plen] = '\0';
	}
	*n = nparam;
	return 0;
}

/* ---- producer -------------------------------------------------------------------- */

void qstats_set_max_text(struct qstats *q, size_t max_text)
{
	if (q && max_text)
		q->o.max_text = max_text;       /* read by the producer only */
}

int qstats_record(struct qstats *q, const struct qstats_sample *s)
{
	size_t tl = s->len < q->o.max_text ? s->len : q->o.max_text;
	size_t bl = s->bind && s->bind_len <= 64 * 1024 ? s->bind_len : 0;
	struct sample *m;

	if (__atomic_load_n(&q->qlen, __ATOMIC_RELAXED) >= q->o.queue_max) {
		__atomic_fetch_add(&q->t.dropped_queue, 1, __ATOMIC_RELAXED);
		return -EAGAIN;
	}
	m = malloc(sizeof(*m) + tl + 1 + bl);
	if (!m)
		return -ENOMEM;
	m->next = NULL;
	m->s = *s;
	snprintf(m->db, sizeof(m->db), "%s", s->db);
	memcpy(m->data, s->text, tl);
	m->data[tl] = '\0';
	m->s.text = (const char *)m->data;
	m->s.len = tl;
	m->s.bind = bl ? m->data + tl + 1 : NULL;
	if (bl)
		memcpy(m->data + tl + 1, s->bind, bl);
	m->s.bind_len = bl;
	m->s.db = m->db;
	pthread_mutex_lock(&q->qmu);
	if (q->qlen >= q->o.queue_max) {
		pthread_mutex_unlock(&q->qmu);
		free(m);
		__atomic_fetch_add(&q->t.dropped_queue, 1, __ATOMIC_RELAXED);
		return -EAGAIN;
	}
	if (q->tail)
		q->tail->next = m;
	else
		q->head = m;
	q->tail = m;
	__atomic_store_n(&q->qlen, q->qlen + 1, __ATOMIC_RELAXED);
	/* Wake the aggregator per batch, not per sample: a wake-up per query
	 * (two context switches) cost more than the statistics themselves.
	 * Below a batch it takes what is there every BATCH_MS. */
	if (q->qlen == BATCH_WAKE)
		pthread_cond_signal(&q->qcv);
	pthread_mutex_unlock(&q->qmu);
	return 0;
}

/* ---- the memo key: text with its literals masked ------------------------------------ */

static bool ident_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '$' || c >= 0x80;
}

/*
 * Hash of `s` with every literal (number, '...' string, E'...' string,
 * $tag$...$tag$ string) replaced by one marker byte, comments dropped, the
 * rest kept byte for byte. Two texts with the same key differ only in
 * literal values and comments, which libpg_query's fingerprint ignores,
 * so they have the same fingerprint: the key is only ever finer than the
 * fingerprint (e.g. "-1" and "1" differ here), never coarser. This is a
 * memo of libpg_query's answer, not a second normaliser: a text whose
 * literal or comment does not end is hashed as it is.
 */
uint64_t qstats_memo_key(const char *s, size_t n, uint64_t seed)
{
	static const char mark = '\x01';
	XXH3_state_t st;
	size_t i = 0, run = 0;         /* run: start of bytes kept verbatim */

	if (XXH3_64bits_reset_withSeed(&st, seed) != XXH_OK)
		return XXH3_64bits_withSeed(s, n, seed);
#define FLUSH(to) do { if ((to) > run) XXH3_64bits_update(&st, s + run, (to) - run); } while (0)
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		bool prev_ident = i > 0 && ident_char((unsigned char)s[i - 1]);

		if (c == '\'') {
			/* E'...' (not part of a longer identifier) takes backslash escapes */
			bool esc = i > 0 && (s[i - 1] == 'E' || s[i - 1] == 'e') &&
				   !(i > 1 && ident_char((unsigned char)s[i - 2]));
			size_t j = i + 1;

			for (;;) {
				if (j >= n)
					goto raw;
				if (esc && s[j] == '\\') {
					j += 2;
					continue;
				}
				if (s[j] == '\'') {
					if (j + 1 < n && s[j + 1] == '\'') {
						j += 2;
						continue;
					}
					break;
				}
				j++;
			}
			FLUSH(i);
			XXH3_64bits_update(&st, &mark, 1);
			i = run = j + 1;
		} else if (c == '"') {
			size_t j = i + 1;

			while (j < n && !(s[j] == '"' && !(j + 1 < n && s[j + 1] == '"')))
				j += s[j] == '"' ? 2 : 1;
			if (j >= n)
				goto raw;
			i = j + 1;             /* identifiers stay */
		} else if (c == '-' && i + 1 < n && s[i + 1] == '-') {
			size_t j = i;

			while (j < n && s[j] != '\n')
				j++;
			FLUSH(i);
			i = run = j;
		} else if (c == '/' && i + 1 < n && s[i + 1] == '*') {
			size_t j = i + 2;
			unsigned depth = 1;

			while (j < n && depth) {
				if (s[j] == '/' && j + 1 < n && s[j + 1] == '*')
					depth++, j += 2;
				else if (s[j] == '*' && j + 1 < n && s[j + 1] == '/')
					depth--, j += 2;
				else
					j++;
			}
			if (depth)
				goto raw;
			FLUSH(i);
			i = run = j;
		} else if (c == '$' && !prev_ident) {
			/* $tag$...$tag$ ($1 is a parameter: kept) */
			size_t j = i + 1, tl;
			const char *end;

			while (j < n && s[j] != '$' && ident_char((unsigned char)s[j]) &&
			       !(j == i + 1 && s[j] >= '0' && s[j] <= '9'))
				j++;
			if (j >= n || s[j] != '$') {
				i = j > i + 1 ? j : i + 1;
				continue;
			}
			tl = j + 1 - i;
			end = memmem(s + j + 1, n - j - 1, s + i, tl);
			if (!end)
				goto raw;
			FLUSH(i);
			XXH3_64bits_update(&st, &mark, 1);
			i = run = (size_t)(end - s) + tl;
		} else if (!prev_ident && ((c >= '0' && c <= '9') ||
					   (c == '.' && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9'))) {
			size_t j = i;

			while (j < n && ((s[j] >= '0' && s[j] <= '9') || s[j] == '.' || s[j] == '_'))
				j++;
			if (j < n && (s[j] == 'e' || s[j] == 'E')) {
				size_t k = j + 1;

				if (k < n && (s[k] == '+' || s[k] == '-'))
					k++;
				if (k < n && s[k] >= '0' && s[k] <= '9') {
					j = k;
					while (j < n && s[j] >= '0' && s[j] <= '9')
						j++;
				}
			}
			if (j < n && ident_char((unsigned char)s[j]))
				goto raw;      /* 1abc, 0x1F: not a plain number */
			FLUSH(i);
			XXH3_64bits_update(&st, &mark, 1);
			i = run = j;
		} else {
			i++;
		}
	}
	FLUSH(n);
#undef FLUSH
	return XXH3_64bits_digest(&st);
raw:
	return XXH3_64bits_withSeed(s, n, seed) ^ 0x9e3779b97f4a7c15ull;
}

/* ---- aggregator ------------------------------------------------------------------ */

static void entry_clear(struct qstats_entry *e)
{
	free(e->query);
	free(e->sample);
	free(e->params);
	free(e->param_null);
	memset(e, 0, sizeof(*e));
}

static void table_names(char (*dst)[130], unsigned *n, const struct pgt_table *src, unsigned ns)
{
	*n = 0;
	for (unsigned i = 0; i < ns && *n < QSTATS_TABLES; i++) {
		bool dup = false;
		char name[130];

		snprintf(name, sizeof(name), "%s%s%s", src[i].schema, src[i].schema[0] ? "." : "",
			 src[i].name);
		for (unsigned k = 0; k < *n; k++)
			dup |= !strcmp(dst[k], name);
		if (!dup)
			snprintf(dst[(*n)++], 130, "%s", name);
	}
}

/* Keep s as the entry's latest sample, with its parameters. */
static void keep_sample(struct qstats_entry *e, const struct qstats_sample *s,
			const struct pgt_info *info)
{
	char (*vals)[PGT_PARAM_MAX] = NULL;
	bool *nulls = NULL, ok = false, from_bind = false;
	unsigned n = 0;
	char *txt = strndup(s->text, s->len);

	if (!txt)
		return;
	if (s->bind) {
		vals = calloc(PGT_MAX_PARAMS, sizeof(*vals));
		nulls = calloc(PGT_MAX_PARAMS, sizeof(*nulls));
		from_bind = true;
		ok = vals && nulls && qstats_bind_params(s->bind, s->bind_len, vals, nulls,
							  PGT_MAX_PARAMS, &n) == 0;
	} else if (info && info->params_ok) {
		n = info->n_params;
		vals = calloc(n ? n : 1, sizeof(*vals));
		nulls = calloc(n ? n : 1, sizeof(*nulls));
		ok = vals && nulls;
		if (ok)
			memcpy(vals, info->params, n * sizeof(*vals));
	}
	free(e->sample);
	free(e->params);
	free(e->param_null);
	e->sample = txt;
	e->params = vals;
	e->param_null = nulls;
	e->n_params = ok ? n : 0;
	e->sample_params_ok = ok;
	e->sample_is_bind = from_bind;
}

static struct ent *table_find(struct qstats *q, uint64_t key, bool *fresh)
{
	unsigned i = (unsigned)key & (q->cap - 1);

	*fresh = false;
	for (unsigned probes = 0; probes < q->cap; probes++, i = (i + 1) & (q->cap - 1)) {
		if (q->tab[i].used && q->tab[i].key == key)
			return &q->tab[i];
		if (!q->tab[i].used) {
			if (q->n >= q->o.max_fingerprints)
				return NULL;
			q->tab[i].used = true;
			q->tab[i].key = key;
			q->n++;
			*fresh = true;
			return &q->tab[i];
		}
	}
	return NULL;
}

static void fold(struct qstats *q, const struct qstats_sample *s)
{
	uint64_t seed = XXH3_64bits(s->db, strlen(s->db));
	uint64_t th = XXH3_64bits_withSeed(s->text, s->len, seed) | 1;
	uint64_t mk = qstats_memo_key(s->text, s->len, seed) | 1;
	struct memo *mm = &q->memo[mk & (MEMO_SIZE - 1)];
	struct pgt_info *info = NULL;
	char *norm = NULL, err[160];
	struct ent *en = NULL;
	uint64_t fp = 0, key = 0, now = wall_ms();
	bool fresh = false, parsed = false;

	pthread_mutex_lock(&q->mu);
	q->t.samples++;
	if (mm->text_hash == mk && mm->slot < q->cap && q->tab[mm->slot].used &&
	    (q->tab[mm->slot].sample_ms + SAMPLE_MS > now || !q->tab[mm->slot].e.fingerprint[0])) {
		en = &q->tab[mm->slot];
		q->t.memo_hits++;
		/* keep the lock: fold below (the kept sample is less than
		 * SAMPLE_MS old; otherwise the path below refreshes it) */
	} else {
		pthread_mutex_unlock(&q->mu);
	}
	if (!en) {
		/* One parse per text for the fingerprint, outside the lock. The
		 * full statement facts (a second and third parse) only for a new
		 * fingerprint, or to refresh its sample once a second: under
		 * pgbench -S every text differs, and parsing each three times
		 * would cost more CPU than the pooler itself. */
		PgQueryFingerprintResult fr;
		char *txt = strndup(s->text, s->len);
		bool need;

		if (!txt)
			return;
		fr = pg_query_fingerprint(txt);
		parsed = !fr.error;
		fp = parsed ? fr.fingerprint : 0;
		pg_query_free_fingerprint_result(fr);
		free(txt);
		key = parsed ? XXH3_64bits_withSeed(&fp, sizeof(fp), XXH3_64bits(s->db, strlen(s->db)))
			     : th;
		pthread_mutex_lock(&q->mu);
		if (!parsed)
			q->t.parse_failures++;
		en = table_find(q, key, &fresh);
		if (!en) {
			q->t.dropped_table++;
			pthread_mutex_unlock(&q->mu);
			return;
		}
		mm->text_hash = mk;
		mm->slot = (uint32_t)(en - q->tab);
		if (fresh) {
			struct qstats_entry *e = &en->e;

			en->fp = fp;
			if (parsed)
				snprintf(e->fingerprint, sizeof(e->fingerprint), "%016" PRIx64, fp);
			snprintf(e->db, sizeof(e->db), "%s", s->db);
			e->first_ms = now;
			e->kind = PGT_OTHER;
			q->t.fingerprints = q->n;
		}
		need = fresh || (parsed && now - en->sample_ms >= SAMPLE_MS);
		if (need) {
			pthread_mutex_unlock(&q->mu);
			info = malloc(sizeof(*info));
			if (info && (!parsed || pgt_analyze(s->text, s->len, info, err, sizeof(err)) != 0)) {
				free(info);
				info = NULL;
			}
			if (fresh) {
				norm = parsed ? pgt_normalize(s->text, s->len) : NULL;
				if (!norm)
					norm = strndup(s->text, s->len < NORM_MAX ? s->len : NORM_MAX);
			}
			pthread_mutex_lock(&q->mu);
			if (!en->used || en->key != key) {      /* reset meanwhile */
				pthread_mutex_unlock(&q->mu);
				goto out;
			}
			en->sample_ms = now;
			if (fresh && !en->e.query) {
				en->e.query = norm;
				norm = NULL;
			}
			if (info && fresh) {
				struct qstats_entry *e = &en->e;

				e->kind = info->kind;
				table_names(e->read, &e->n_read, info->read, info->n_read);
				table_names(e->written, &e->n_written, info->written, info->n_written);
			}
		}
	}
	{
		struct qstats_entry *e = &en->e;

		e->calls++;
		e->errors += s->error;
		e->rows += s->rows;
		e->total_us += s->dur_us;
		if (s->dur_us > e->max_us)
			e->max_us = s->dur_us;
		hist_record_local(&e->h, s->dur_us);
		e->last_ms = now;
		/* a fresh parse, or a Bind (values differ at each call) */
		if (info || (s->bind && !s->error) || !e->sample)
			keep_sample(e, s, info);
	}
	pthread_mutex_unlock(&q->mu);
out:
	free(norm);
	free(info);
}

static void *agg_main(void *arg)
{
	struct qstats *q = arg;

	pthread_mutex_lock(&q->qmu);
	for (;;) {
		struct sample *batch;

		while (!q->stop && !q->flush_wanted && q->qlen < BATCH_WAKE) {
			struct timespec ts;

			hp_abstime_in(&ts, CLOCK_REALTIME, BATCH_MS);
			if (pthread_cond_timedwait(&q->qcv, &q->qmu, &ts) != 0 && q->head)
				break;
		}
		if (!q->head) {
			q->flush_wanted = false;
			pthread_cond_broadcast(&q->idle_cv);
			if (q->stop)
				break;
			continue;
		}
		batch = q->head;
		q->head = q->tail = NULL;
		__atomic_store_n(&q->qlen, 0, __ATOMIC_RELAXED);
		q->busy = true;
		pthread_mutex_unlock(&q->qmu);
		while (batch) {
			struct sample *next = batch->next;

			fold(q, &batch->s);
			free(batch);
			batch = next;
		}
		pthread_mutex_lock(&q->qmu);
		q->busy = false;
		pthread_cond_broadcast(&q->idle_cv);
	}
	pthread_mutex_unlock(&q->qmu);
	return NULL;
}

int qstats_flush(struct qstats *q, uint64_t timeout_ms)
{
	struct timespec ts;
	int rc = 0;

	hp_abstime_in(&ts, CLOCK_REALTIME, timeout_ms);
	pthread_mutex_lock(&q->qmu);
	if (q->head) {
		q->flush_wanted = true;
		pthread_cond_signal(&q->qcv);
	}
	while ((q->head || q->busy) && rc == 0)
		rc = pthread_cond_timedwait(&q->idle_cv, &q->qmu, &ts);
	pthread_mutex_unlock(&q->qmu);
	return rc ? -ETIMEDOUT : 0;
}

/* ---- readers ---------------------------------------------------------------------- */

static int cmp_total(const void *a, const void *b)
{
	const struct qstats_entry *x = a, *y = b;

	return (x->total_us < y->total_us) - (x->total_us > y->total_us);
}

static int entry_copy(struct qstats_entry *dst, const struct qstats_entry *src)
{
	*dst = *src;
	dst->query = src->query ? strdup(src->query) : NULL;
	dst->sample = src->sample ? strdup(src->sample) : NULL;
	dst->params = NULL;
	dst->param_null = NULL;
	if (src->n_params) {
		dst->params = malloc(src->n_params * sizeof(*dst->params));
		dst->param_null = malloc(src->n_params * sizeof(*dst->param_null));
		if (dst->params && dst->param_null) {
			memcpy(dst->params, src->params, src->n_params * sizeof(*dst->params));
			memcpy(dst->param_null, src->param_null, src->n_params * sizeof(bool));
		}
	}
	if ((src->query && !dst->query) || (src->sample && !dst->sample) ||
	    (src->n_params && (!dst->params || !dst->param_null))) {
		entry_clear(dst);
		return -ENOMEM;
	}
	return 0;
}

int qstats_entries(struct qstats *q, const char *db, uint64_t since_ms, unsigned limit,
		   struct qstats_entry **out, unsigned *n)
{
	struct qstats_entry *arr;
	unsigned k = 0;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&q->mu);
	arr = calloc(q->n ? q->n : 1, sizeof(*arr));
	if (!arr) {
		pthread_mutex_unlock(&q->mu);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < q->cap; i++) {
		const struct qstats_entry *e = &q->tab[i].e;

		if (!q->tab[i].used || !e->calls || e->last_ms < since_ms || (db && strcmp(e->db, db)))
			continue;
		if (entry_copy(&arr[k], e) != 0) {
			pthread_mutex_unlock(&q->mu);
			qstats_entries_free(arr, k);
			return -ENOMEM;
		}
		k++;
	}
	pthread_mutex_unlock(&q->mu);
	qsort(arr, k, sizeof(*arr), cmp_total);
	if (limit && k > limit) {
		for (unsigned i = limit; i < k; i++)
			entry_clear(&arr[i]);
		k = limit;
	}
	*out = arr;
	*n = k;
	return 0;
}

void qstats_entries_free(struct qstats_entry *e, unsigned n)
{
	if (!e)
		return;
	for (unsigned i = 0; i < n; i++)
		entry_clear(&e[i]);
	free(e);
}

void qstats_totals(struct qstats *q, struct qstats_totals *t)
{
	pthread_mutex_lock(&q->mu);
	*t = q->t;
	t->fingerprints = q->n;
	t->max_fingerprints = q->o.max_fingerprints;
	pthread_mutex_unlock(&q->mu);
	t->dropped_queue = __atomic_load_n(&q->t.dropped_queue, __ATOMIC_RELAXED);
}

void qstats_reset(struct qstats *q)
{
	pthread_mutex_lock(&q->mu);
	for (unsigned i = 0; i < q->cap; i++) {
		if (q->tab[i].used)
			entry_clear(&q->tab[i].e);
		q->tab[i].used = false;
	}
	q->n = 0;
	memset(q->memo, 0, MEMO_SIZE * sizeof(*q->memo));
	pthread_mutex_unlock(&q->mu);
}

/* ---- lifecycle --------------------------------------------------------------------- */

struct qstats *qstats_new(const struct qstats_options *o)
{
	struct qstats *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->o = *o;
	if (!q->o.max_fingerprints)
		q->o.max_fingerprints = 1000;
	if (!q->o.queue_max)
		q->o.queue_max = 4096;
	if (!q->o.max_text)
		q->o.max_text = 4096;
	q->cap = 16;
	while (q->cap < 2 * q->o.max_fingerprints)
		q->cap <<= 1;
	q->tab = calloc(q->cap, sizeof(*q->tab));
	q->memo = calloc(MEMO_SIZE, sizeof(*q->memo));
	pthread_mutex_init(&q->qmu, NULL);
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->qcv, NULL);
	pthread_cond_init(&q->idle_cv, NULL);
	if (!q->tab || !q->memo || pthread_create(&q->thread, NULL, agg_main, q) != 0) {
		qstats_free(q);
		return NULL;
	}
	q->started = true;
	return q;
}

void qstats_free(struct qstats *q)
{
	if (!q)
		return;
	if (q->started) {
		pthread_mutex_lock(&q->qmu);
		q->stop = true;
		pthread_cond_signal(&q->qcv);
		pthread_mutex_unlock(&q->qmu);
		pthread_join(q->thread, NULL);
	}
	while (q->head) {
		struct sample *n = q->head->next;

		free(q->head);
		q->head = n;
	}
	if (q->tab)
		for (unsigned i = 0; i < q->cap; i++)
			if (q->tab[i].used)
				entry_clear(&q->tab[i].e);
	free(q->tab);
	free(q->memo);
	pthread_mutex_destroy(&q->qmu);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->qcv);
	pthread_cond_destroy(&q->idle_cv);
	free(q);
}
