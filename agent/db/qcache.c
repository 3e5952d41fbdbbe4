/*
 * qcache.c - result caching of chosen read-only queries in the pooler,
 * through the shared cache tiers (tier.h), invalidated by the writes the
 * pooler sees.
 *
 * What is cached: a request whose statement's fingerprint is listed in
 * query_cache.fingerprints, that is one plain SELECT (no FOR UPDATE/SHARE,
 * no data-modifying CTE, no SELECT INTO), sent outside a transaction block
 * (no server held in transaction mode; status 'I' and nothing owed in
 * session mode) on a server connection that owes nothing else, and whose
 * whole answer (everything the server sent up to ReadyForQuery 'I') fits
 * query_cache.max_result_size and has no ErrorResponse. The request is a
 * simple Query, or an extended-protocol [Parse] Bind [Describe] Execute
 * Sync (the pooler picks these out, pgw_parse_batch, and passes what
 * shapes the answer besides the text: which messages, parameter types,
 * the Bind's formats and values). The key is
 * "hpq:DB:USER:HASH|table|table|": the hash covers the exact text, those
 * extended-protocol parts and the session parameters that change how
 * results are printed (encoding, DateStyle, TimeZone, ...), the user keeps
 * row-level security and privileges apart, and the tables read are in the
 * key so that a write can drop every entry reading a table with one glob.
 *
 * Invalidation: a simple Query or a Bind of a statement that may write
 * (first keyword not SELECT/VALUES/TABLE/SHOW/EXPLAIN) is parsed with
 * libpg_query; each table it writes (INSERT, UPDATE, DELETE, MERGE,
 * TRUNCATE, COPY FROM, data-modifying CTEs; EXECUTE, CALL and DO, whose
 * statements are not in the text, DDL and GRANTs, which change what reads
 * return or may see (pgt_info.opaque), and Binds of unknown statements
 * count as writing every table of the database) gets its generation
 * bumped and its entries deleted (tier_invalidate, local scope plus L2
 * when configured) when the write is sent, and again when the transaction
 * that did it ends (ReadyForQuery 'I'), so a read that ran in between and
 * saw the old rows does not stay cached. A read stores its answer only if none
 * of its tables' generations moved while it ran. Entries also expire after
 * query_cache.ttl: writes that do not go through this pooler (other
 * clients, triggers writing other tables, functions with side effects) are
 * not seen, which is why caching is opt-in per fingerprint.
 *
 * All of it runs on the pooler's thread, which never waits for Redis: a
 * lookup tries L1 inline, and on an L1 miss with an L2 configured it
 * hands the read to the tiers' L2 dispatcher (tier_read_async) and
 * returns QCACHE_WAIT: the pooler parks that client's request and serves
 * the others. The dispatcher's thread files the answer on a done list
 * and wakes the pooler, which drains the list (qcache_drain) and runs the
 * parked request again; the second lookup of the same key takes the
 * answer instead of reading again (a hit is refused if a table it reads
 * was written while it waited). Stores are fire-and-forget through the
 * same dispatcher (tier_store_async). Pattern invalidations of L2 (after
 * writes) still make their round trips on this thread. Texts are parsed
 * at most once per distinct text (a memo).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include "hotpath/log.h"
#include "hotpath/pgquery.h"
#include "hotpath/pgtree.h"
#include "hotpath/tier.h"
#include "hotpath/qcache.h"

#define QC_MAX_FPS 64
#define QC_MEMO 4096
#define QC_TABLES 4096
#define QC_KEY_MAX 768
#define QC_TBL_PER_QUERY 8

struct memo {
	uint64_t h;                     /* text hash, 0 = empty */
	bool read_known, write_known;   /* which question was answered for it */
	bool cacheable;                 /* listed fingerprint, plain SELECT, tables named */
	bool writes;
	unsigned ntab;
	uint32_t tab[QC_TBL_PER_QUERY]; /* slots in tables[]; a write with none: flush the db */
};

struct tstate {
	bool used;
	uint64_t gen;
	bool dirty;                     /* entries may exist */
	char name[64 + 1 + 130];        /* "db\tschema.table" */
};

struct qcache {
	unsigned nfps;
	uint64_t fps[QC_MAX_FPS];
	uint64_t ttl_ms;
	size_t max_result;
	struct memo *memo;
	struct tstate *tables;
	unsigned ntables;
	struct qcache_stats st;         /* atomics: read by the API */
	/* L2 reads in flight (qwait): answered on the dispatcher's thread */
	pthread_mutex_t done_mu;
	struct qwait *done;             /* answered, not drained yet (done_mu) */
	void (*wake)(void *arg);        /* tells the pooler's loop to drain */
	void *wake_arg;
	unsigned waits;                 /* not freed yet (atomic) */
};

/* A lookup waiting for L2 for one parked request. */
struct qwait {
	struct tier_wait w;             /* first: the tiers call back with it */
	struct qcache *qc;
	void *owner;                    /* the parked client; NULL once it left */
	struct qwait *next;             /* on qc->done */
	bool resolved;                  /* drained (pooler thread) */
	int rc;                         /* 1 found, 0 not (or error: a miss) */
	struct buf val;
	struct qcap *cap;               /* key and table generations of the lookup */
};

struct qcap {
	struct buf data;
	uint64_t gens[QC_TBL_PER_QUERY];
	uint32_t tab[QC_TBL_PER_QUERY];
	unsigned ntab;
	char key[QC_KEY_MAX];
	size_t klen;
	bool bad;
};

#define QC_INC(x) __atomic_fetch_add(&(x), 1, __ATOMIC_RELAXED)

/* ---- set-up ------------------------------------------------------------------- */

void qcache_configure(struct qcache *qc, const char *fps, uint64_t ttl_ms, uint64_t max_result)
{
	const char *s = fps ? fps : "";
	unsigned n = 0;

	while (*s && n < QC_MAX_FPS) {
		char *end;

		while (*s == ' ' || *s == ',' || *s == '\t')
			s++;
		if (!*s)
			break;
		qc->fps[n++] = strtoull(s, &end, 16);
		s = end;
	}
	__atomic_store_n(&qc->nfps, n, __ATOMIC_RELAXED);
	qc->ttl_ms = ttl_ms;
	qc->max_result = (size_t)max_result;
	/* which texts are cacheable was decided against the old list */
	memset(qc->memo, 0, QC_MEMO * sizeof(*qc->memo));
}

struct qcache *qcache_new(const char *fps, uint64_t ttl_ms, uint64_t max_result)
{
	struct qcache *qc;

	if (!fps || !*fps)
		return NULL;
	qc = calloc(1, sizeof(*qc));
	if (!qc)
		return NULL;
	pthread_mutex_init(&qc->done_mu, NULL);
	qc->memo = calloc(QC_MEMO, sizeof(*qc->memo));
	qc->tables = calloc(QC_TABLES, sizeof(*qc->tables));
	if (!qc->memo || !qc->tables) {
		qcache_free(qc);
		return NULL;
	}
	qcache_configure(qc, fps, ttl_ms, max_result);
	return qc;
}

static void qwait_free(struct qwait *w);

void qcache_free(struct qcache *qc)
{
	uint64_t end = hp_now_ms() + 5000;

	if (!qc)
		return;
	/* reads still at the dispatcher will file their answers here */
	while (__atomic_load_n(&qc->waits, __ATOMIC_ACQUIRE) && hp_now_ms() < end) {
		qcache_drain(qc, NULL);
		usleep(1000);
	}
	qcache_drain(qc, NULL);
	if (__atomic_load_n(&qc->waits, __ATOMIC_ACQUIRE)) {
		log_warn("query_cache: L2 reads still out at shutdown; the cache is not freed");
		return;
	}
	pthread_mutex_destroy(&qc->done_mu);
	free(qc->memo);
	free(qc->tables);
	free(qc);
}

void qcache_get_stats(const struct qcache *qc, struct qcache_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!qc)
		return;
	out->hits = __atomic_load_n(&qc->st.hits, __ATOMIC_RELAXED);
	out->misses = __atomic_load_n(&qc->st.misses, __ATOMIC_RELAXED);
	out->stores = __atomic_load_n(&qc->st.stores, __ATOMIC_RELAXED);
	out->not_stored = __atomic_load_n(&qc->st.not_stored, __ATOMIC_RELAXED);
	out->invalidations = __atomic_load_n(&qc->st.invalidations, __ATOMIC_RELAXED);
	out->l2_waits = __atomic_load_n(&qc->st.l2_waits, __ATOMIC_RELAXED);
	out->fingerprints = __atomic_load_n(&qc->nfps, __ATOMIC_RELAXED);
}

/* ---- tables ------------------------------------------------------------------ */

/* Characters that would make a table name a glob or break the key. */
static bool name_plain(const char *s)
{
	return !strpbrk(s, "*?[]\\|:\t");
}

/* Slot of table `schema.name` in db; UINT32_MAX when full or not plain. */
static uint32_t table_slot(struct qcache *qc, const char *db, const struct pgt_table *t)
{
	char name[sizeof(qc->tables[0].name)];
	uint64_t h;
	uint32_t i;

	if (!name_plain(t->name) || !name_plain(t->schema) || !name_plain(db))
		return UINT32_MAX;
	/* unqualified names are taken as public's: the usual search_path */
	snprintf(name, sizeof(name), "%s\t%s.%s", db, t->schema[0] ? t->schema : "public", t->name);
	h = XXH3_64bits(name, strlen(name));
	for (uint32_t probe = 0; probe < QC_TABLES; probe++) {
		i = (uint32_t)((h + probe) & (QC_TABLES - 1));
		if (qc->tables[i].used && !strcmp(qc->tables[i].name, name))
			return i;
		if (!qc->tables[i].used) {
			if (qc->ntables >= QC_TABLES * 3 / 4)
				return UINT32_MAX;
			qc->tables[i].used = true;
			snprintf(qc->tables[i].name, sizeof(qc->tables[i].name), "%s", name);
			qc->ntables++;
			return i;
		}
	}
	return UINT32_MAX;
}

/* Bump a table's generation and drop its entries (if any were stored). */
static void table_invalidate(struct qcache *qc, uint32_t slot)
{
	struct tstate *ts = &qc->tables[slot];
	struct tier *t = tier_current();

	ts->gen++;
	if (!ts->dirty || !t)
		return;
	{
		char pat[QC_KEY_MAX], err[128];
		const char *tab = strchr(ts->name, '\t');
		struct tier_inval_result res;
		int n;

		n = snprintf(pat, sizeof(pat), "hpq:%.*s:*|%s|*", (int)(tab - ts->name), ts->name,
			     tab + 1);
		if (n <= 0 || (size_t)n >= sizeof(pat))
			return;
		if (tier_invalidate(t, pat, (size_t)n, TIER_SCOPE_LOCAL | TIER_SCOPE_L2, &res, err,
				    sizeof(err)) != 0)
			log_warn("query_cache: invalidating %s in L2 failed: %s (L1 cleared)", pat,
				 err);
		ts->dirty = false;
		QC_INC(qc->st.invalidations);
	}
}

/* ---- texts --------------------------------------------------------------------- */

static bool fp_listed(const struct qcache *qc, uint64_t fp)
{
	for (unsigned i = 0; i < qc->nfps; i++)
		if (qc->fps[i] == fp)
			return true;
	return false;
}

/* What a text is, parsed once per distinct text. NULL on ENOMEM. */
static struct memo *classify(struct qcache *qc, const char *db, const char *sql, size_t len,
			     bool want_read)
{
	uint64_t h = XXH3_64bits_withSeed(sql, len, XXH3_64bits(db, strlen(db))) | 1;
	struct memo *m = &qc->memo[h & (QC_MEMO - 1)];
	struct pgt_info *info;
	char err[128];

	if (m->h == h && (want_read ? m->read_known : m->write_known))
		return m;
	if (m->h != h) {
		memset(m, 0, sizeof(*m));
		m->h = h;
	}
	if (want_read)
		m->read_known = true;
	else
		m->write_known = true;
	/* reads are only ever looked up for texts that cannot write, and
	 * writes only parsed for texts that may: the two never share tab[] */
	if (want_read == pgt_maybe_write(sql, len))
		return m;
	if (want_read) {
		uint64_t fp;
		char norm[8];

		/* only listed fingerprints are worth the full parse */
		if (pgquery_fingerprint(sql, len, &fp, norm, sizeof(norm)) != 0 || !fp_listed(qc, fp))
			return m;
	}
	info = malloc(sizeof(*info));
	if (!info)
		return NULL;
	if (pgt_analyze(sql, len, info, err, sizeof(err)) != 0) {
		/* a text that may write and does not parse (cut, or another
		 * dialect): assume it writes anything */
		m->writes = !want_read;
	} else {
		if (!want_read && info->opaque) {
			m->writes = true;       /* ntab 0: flush the database */
		} else if (info->kind == PGT_WRITE) {
			m->writes = true;
			for (unsigned i = 0; i < info->n_written && m->ntab < QC_TBL_PER_QUERY; i++) {
				uint32_t s = table_slot(qc, db, &info->written[i]);

				if (s != UINT32_MAX)
					m->tab[m->ntab++] = s;
			}
			/* can't name every table written: flush the database's entries */
			if (info->tables_truncated || m->ntab < info->n_written)
				m->ntab = 0;
		} else if (want_read && info->kind == PGT_SELECT && info->n_stmts == 1 &&
			   info->n_read > 0 && info->n_read <= QC_TBL_PER_QUERY &&
			   !info->tables_truncated) {
			m->cacheable = true;
			for (unsigned i = 0; i < info->n_read; i++) {
				uint32_t s = table_slot(qc, db, &info->read[i]);

				if (s == UINT32_MAX) {
					m->cacheable = false;
					break;
				}
				/* the same table under two aliases: once */
				for (unsigned k = 0; k < m->ntab; k++)
					if (m->tab[k] == s)
						s = UINT32_MAX;
				if (s != UINT32_MAX)
					m->tab[m->ntab++] = s;
			}
		}
	}
	free(info);
	return m;
}

static void flush_db(struct qcache *qc, const char *db)
{
	struct tier *t = tier_current();
	char pat[128], err[128];
	struct tier_inval_result res;
	int n;

	for (uint32_t i = 0; i < QC_TABLES; i++)
		if (qc->tables[i].used && !strncmp(qc->tables[i].name, db, strlen(db)) &&
		    qc->tables[i].name[strlen(db)] == '\t')
			qc->tables[i].gen++;
	n = snprintf(pat, sizeof(pat), "hpq:%s:*", db);
	if (t && n > 0 && (size_t)n < sizeof(pat) && name_plain(db) &&
	    tier_invalidate(t, pat, (size_t)n, TIER_SCOPE_LOCAL | TIER_SCOPE_L2, &res, err,
			    sizeof(err)) != 0)
		log_warn("query_cache: invalidating %s in L2 failed: %s", pat, err);
	QC_INC(qc->st.invalidations);
}

int qcache_note_write(struct qcache *qc, const char *db, const char *sql, size_t len,
		      struct qcache_pending *pend)
{
	struct memo *m = sql ? classify(qc, db, sql, len, false) : NULL;

	if (sql && (!m || !m->writes))
		return 0;
	if (!m || !m->ntab) {
		flush_db(qc, db);
		pend->flush = true;
		return 1;
	}
	for (unsigned i = 0; i < m->ntab; i++) {
		bool have = false;

		table_invalidate(qc, m->tab[i]);
		for (unsigned k = 0; k < pend->n; k++)
			have |= pend->tab[k] == m->tab[i];
		if (have)
			continue;
		if (pend->n < QCACHE_PENDING)
			pend->tab[pend->n++] = m->tab[i];
		else
			pend->flush = true;
	}
	return 1;
}

void qcache_txn_end(struct qcache *qc, const char *db, struct qcache_pending *pend)
{
	if (pend->flush)
		flush_db(qc, db);
	else
		for (unsigned i = 0; i < pend->n; i++)
			table_invalidate(qc, pend->tab[i]);
	pend->n = 0;
	pend->flush = false;
}

/* ---- reads -------------------------------------------------------------------------- */

/* ---- waiting for L2 ------------------------------------------------------------ */

static void qwait_free(struct qwait *w)
{
	struct qcache *qc = w->qc;

	if (w->cap)
		qcache_finish(qc, w->cap, false);
	buf_free(&w->val);
	free(w);
	__atomic_fetch_sub(&qc->waits, 1, __ATOMIC_RELEASE);
}

/* The dispatcher's answer (its thread, or the pooler's when it was not
 * queued): file it and wake the pooler. */
static void qwait_done(struct tier_wait *tw, int rc, const char *val, size_t vlen,
		       const char *err)
{
	struct qwait *w = (struct qwait *)tw;
	struct qcache *qc = w->qc;
	bool first;

	(void)err;
	w->rc = rc > 0 && vlen > 0 && buf_append(&w->val, val, vlen) == 0 ? 1 : 0;
	pthread_mutex_lock(&qc->done_mu);
	first = !qc->done;
	w->next = qc->done;
	qc->done = w;
	pthread_mutex_unlock(&qc->done_mu);
	if (first && qc->wake)
		qc->wake(qc->wake_arg);
}

void qcache_set_waker(struct qcache *qc, void (*wake)(void *arg), void *arg)
{
	qc->wake = wake;
	qc->wake_arg = arg;
}

void qcache_drain(struct qcache *qc, void (*ready)(void *owner))
{
	struct qwait *w, *next;

	if (!qc)
		return;
	pthread_mutex_lock(&qc->done_mu);
	w = qc->done;
	qc->done = NULL;
	pthread_mutex_unlock(&qc->done_mu);
	for (; w; w = next) {
		next = w->next;
		w->resolved = true;
		if (!w->owner || !ready)
			qwait_free(w);          /* its client left (or we are stopping) */
		else
			ready(w->owner);
	}
}

void qcache_wait_drop(struct qwait *w)
{
	if (!w)
		return;
	if (w->resolved)
		qwait_free(w);
	else
		w->owner = NULL;            /* freed when its answer is drained */
}

/* A parked lookup's answer, for the same key: 1 hit (appended to out),
 * 0 miss (the capture goes to *cap). Frees w. */
static int qwait_take(struct qcache *qc, struct qwait *w, struct buf *out, struct qcap **cap)
{
	struct qcap *c = w->cap;
	bool fresh = true;

	w->cap = NULL;
	/* a write to a table it reads ran while it waited: not that answer */
	for (unsigned i = 0; i < c->ntab; i++)
		fresh &= qc->tables[c->tab[i]].gen == c->gens[i];
	if (fresh && w->rc == 1 && buf_append(out, buf_head(&w->val), buf_used(&w->val)) == 0) {
		qwait_free(w);
		free(c);
		QC_INC(qc->st.hits);
		return 1;
	}
	qwait_free(w);
	QC_INC(qc->st.misses);
	buf_init(&c->data, qc->max_result);
	*cap = c;
	return 0;
}

/* ---- lookups ---------------------------------------------------------------------- */

int qcache_lookup(struct qcache *qc, const char *db, const char *user, const void *session,
		  size_t slen, const char *sql, size_t len, const struct iovec *ext, unsigned next,
		  struct buf *out, struct qcap **cap, struct qwait **wait, void *owner)
{
	struct tier *t = tier_current();
	struct memo *m;
	struct qcap *c;
	struct qwait *w;
	uint64_t hv[2];
	size_t o;
	int rc;

	*cap = NULL;
	if (!t || !name_plain(user) || !name_plain(db))
		return 0;
	m = classify(qc, db, sql, len, true);
	if (!m || !m->cacheable)
		return 0;
	c = calloc(1, sizeof(*c));
	if (!c)
		return 0;
	if (!next) {
		XXH128_hash_t a = XXH3_128bits_withSeed(sql, len, XXH3_64bits(session, slen));

		hv[0] = a.low64;
		hv[1] = a.high64;
	} else {
		/* each part with its length, so parts cannot run into each other */
		XXH3_state_t *st = XXH3_createState();
		XXH128_hash_t a;

		if (!st) {
			free(c);
			return 0;
		}
		XXH3_128bits_reset_withSeed(st, XXH3_64bits(session, slen));
		XXH3_128bits_update(st, "X", 1);
		for (unsigned i = 0; i < next; i++) {
			uint64_t l = ext[i].iov_len;

			XXH3_128bits_update(st, &l, sizeof(l));
			XXH3_128bits_update(st, ext[i].iov_base, ext[i].iov_len);
		}
		XXH3_128bits_update(st, sql, len);
		a = XXH3_128bits_digest(st);
		XXH3_freeState(st);
		hv[0] = a.low64;
		hv[1] = a.high64;
	}
	o = (size_t)snprintf(c->key, sizeof(c->key), "hpq:%s:%s:%016" PRIx64 "%016" PRIx64 "|",
			     db, user, hv[1], hv[0]);
	for (unsigned i = 0; i < m->ntab && o < sizeof(c->key); i++) {
		const char *tn = strchr(qc->tables[m->tab[i]].name, '\t') + 1;

		o += (size_t)snprintf(c->key + o, sizeof(c->key) - o, "%s|", tn);
		c->tab[i] = m->tab[i];
		c->gens[i] = qc->tables[m->tab[i]].gen;
	}
	if (o >= sizeof(c->key)) {
		free(c);
		return 0;
	}
	c->klen = o;
	c->ntab = m->ntab;
	/* the answer to this request's parked lookup */
	if ((w = *wait) && w->resolved) {
		*wait = NULL;
		if (w->cap->klen == c->klen && memcmp(w->cap->key, c->key, c->klen) == 0) {
			free(c);
			return qwait_take(qc, w, out, cap);
		}
		qwait_free(w);              /* another request: look it up anew */
	} else if (w) {
		free(c);
		return QCACHE_WAIT;         /* still out (the caller should not ask) */
	}
	rc = tier_l1_peek(t, c->key, c->klen, out);
	if (rc == 1) {
		free(c);
		QC_INC(qc->st.hits);
		return 1;
	}
	if (tier_l2(t) && owner && (w = calloc(1, sizeof(*w)))) {
		w->qc = qc;
		w->owner = owner;
		w->cap = c;
		w->w.fn = qwait_done;
		buf_init(&w->val, qc->max_result + 1);
		__atomic_fetch_add(&qc->waits, 1, __ATOMIC_RELAXED);
		if (tier_read_async(t, c->key, c->klen, &w->w) == 0) {
			*wait = w;
			QC_INC(qc->st.l2_waits);
			return QCACHE_WAIT;
		}
		/* breaker open or out of memory: the database answers */
		w->cap = NULL;
		qwait_free(w);
	}
	QC_INC(qc->st.misses);
	buf_init(&c->data, qc->max_result);
	*cap = c;
	return 0;
}

void qcap_add(struct qcap *c, const void *p, size_t n)
{
	if (!c->bad && buf_append(&c->data, p, n) != 0)
		c->bad = true;          /* larger than max_result_size */
}

void qcap_abort(struct qcap *c)
{
	c->bad = true;
}

void qcache_finish(struct qcache *qc, struct qcap *c, bool ok)
{
	struct tier *t = tier_current();

	if (!c)
		return;
	for (unsigned i = 0; ok && i < c->ntab; i++)
		if (qc->tables[c->tab[i]].gen != c->gens[i])
			ok = false;     /* a write ran meanwhile */
	if (ok && !c->bad && t && buf_used(&c->data)) {
		for (unsigned i = 0; i < c->ntab; i++)
			qc->tables[c->tab[i]].dirty = true;
		if (tier_store_async(t, c->key, c->klen, buf_head(&c->data), buf_used(&c->data),
				     qc->ttl_ms) == 0)
			QC_INC(qc->st.stores);
		else
			QC_INC(qc->st.not_stored);
	} else {
		QC_INC(qc->st.not_stored);
	}
	buf_free(&c->data);
	free(c);
}
