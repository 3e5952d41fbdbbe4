/*
 * l0.c - the L0 tier: the hottest small keys, answered by the kernel.
 *
 * How it works. bpf/l0.bpf.c holds a hash map l0_cache of ready-made GET
 * replies. A sock_ops program on the root of the cgroup v2 hierarchy sees
 * every connection to the RESP port the moment it is established and gives
 * it a slot in an mmap'd array of per-connection counters. If the client is
 * local, its own socket gets an sk_msg program: each of its writes that is
 * nothing but GETs of fresh L0 keys is rewritten, in the client's
 * sendmsg(), into the replies and put straight into the client's own
 * receive side (any reply length, no TCP, no workqueue, the daemon not
 * woken).
 * Otherwise an sk_skb verdict program on the front's socket sends a
 * received segment of such GETs, unchanged, to a relay socket this module
 * owns (one end of a loopback pair), whose sk_msg program rewrites it into
 * the replies and writes them on the client's connection: the receive side
 * cannot change a segment's length itself (docs/l0.md says why). With
 * [l0] remote = no the verdict program answers nothing and the relay is
 * not created (switched off at runtime, it stays open but gets no new
 * answers: closing it would drop those still queued on it).
 *
 * Ordering. The kernel answers only while passed == done: `passed` counts
 * the bytes that went to the daemon, `done` the bytes the daemon has read,
 * executed and whose replies it has written (server.c publishes it when its
 * query buffer holds no partial command and its reply buffer is empty). A
 * send-side answer is in addition queued only once the client has read
 * every reply the daemon wrote (the client reads the kernel's answers
 * first); a segment the verdict program passes after kernel replies queues
 * behind them in the psock backlog. Hence replies arrive in command order
 * whatever mix of kernel and daemon answers a pipeline gets.
 *
 * Coherence. What is in L0 is decided here, once a second on the main
 * thread: L1 counts each entry's GETs since the previous scan (its "heat");
 * the hottest keys with small values (up to [l0] max_keys) are flagged in
 * L1 and copied to L0 under the L1 shard lock, and keys that cooled are
 * removed. Any write, delete, TTL change, eviction, expiry or flush of a
 * flagged entry runs l0_hook under the same shard lock, which deletes the
 * key from L0 before the change becomes visible, so no GET after a write's
 * acknowledgement can be answered with the old value. L0 entries carry
 * L1's deadline, checked by the kernel against CLOCK_MONOTONIC.
 *
 * What it does not do: pick keys by anything but recent GET counts,
 * answer anything but GET, or survive a restart (the map is emptied at
 * start: a pinned map from a crashed run may hold stale values).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xxhash.h>
#include "hotpath/bpfmap.h"
#include "hotpath/cgroup.h"
#include "hotpath/l0.h"
#include "hotpath/log.h"
#include "l0.skel.h"

struct l0_cand {
	unsigned heat;
	uint32_t klen;
	uint64_t khits;             /* the kernel's hit count of its L0 entry, last seen */
	char key[L0_KEY_MAX];
};

/* Open-addressing table from key hash to an index into a candidate array. */
struct l0_index {
	uint64_t *hash;             /* 0 = empty */
	uint32_t *idx;
	size_t mask;
};

#define L0_READ_BATCH 128       /* entries per bpf_map_lookup_batch() */

struct l0 {
	struct l1 *l1;
	struct l0_bpf *skel;
	struct bpf_link *sockops_link;
	int cgroup_fd;
	int cache_fd, socks_fd, verdict_fd, clients_fd, msg_fd, relays_fd, relay_fd;
	bool verdict_attached, msg_attached, relay_attached;
	int relay_a, relay_b;       /* the relay socket (in l0_relays) and its peer */
	uint64_t relay_drained;     /* bytes read from the peer: undeliverable segments */
	struct l0_conn *conns;      /* mmap'd l0_conns */
	int *conn_fds;              /* per slot: the front's fd + 1 as the server saw it, 0 = none */
	_Atomic uint64_t relay_closed;  /* connections closed: their relayed segments were lost */
	size_t conns_len;
	char pin_path[512];
	unsigned max_keys, max_value, min_heat;
	bool remote;                /* [l0] remote: answer through the relay */
	/* refresher state (main thread only) */
	struct l0_cand *heap, *cur, *next;
	unsigned nheap, ncur;
	struct l0_index hot;        /* the heap's keys */
	struct l0_index in;         /* cur's keys */
	struct l0_key *rkeys;       /* L0_READ_BATCH of each, for reading the map */
	struct l0_value *rvals;
	/* counters */
	uint64_t inserts, removals;
	_Atomic uint64_t invalidations;
	_Atomic int64_t live;       /* keys in the kernel map now */
};

static uint64_t key_hash(const char *k, size_t n)
{
	uint64_t h = XXH3_64bits(k, n);

	return h ? h : 1;   /* 0 marks an empty slot */
}

/* Index `cands[0..n)` by key (n at most a quarter of the table's size). */
static void index_build(struct l0_index *x, const struct l0_cand *cands, unsigned n)
{
	memset(x->hash, 0, (x->mask + 1) * sizeof(*x->hash));
	for (unsigned k = 0; k < n; k++) {
		uint64_t h = key_hash(cands[k].key, cands[k].klen);
		size_t i = h & x->mask;

		while (x->hash[i] != 0 && x->hash[i] != h)
			i = (i + 1) & x->mask;
		x->hash[i] = h;
		x->idx[i] = k;
	}
}

/* The candidate with this key, or NULL. */
static struct l0_cand *index_find(const struct l0_index *x, struct l0_cand *cands,
				  const char *key, size_t klen)
{
	uint64_t h = key_hash(key, klen);

	for (size_t i = h & x->mask; x->hash[i] != 0; i = (i + 1) & x->mask) {
		struct l0_cand *c = &cands[x->idx[i]];

		if (x->hash[i] == h && c->klen == klen && memcmp(c->key, key, klen) == 0)
			return c;
	}
	return NULL;
}

static int index_init(struct l0_index *x, size_t slots)
{
	x->hash = calloc(slots, sizeof(*x->hash));
	x->idx = calloc(slots, sizeof(*x->idx));
	x->mask = slots - 1;
	return x->hash && x->idx ? 0 : -ENOMEM;
}

static void index_free(struct l0_index *x)
{
	free(x->hash);
	free(x->idx);
}

static void key_fill(struct l0_key *k, const char *key, size_t klen)
{
	memset(k, 0, sizeof(*k));
	k->len = (__u32)klen;
	memcpy(k->data, key, klen);
}

/* L1 hook: an entry copied to L0 is about to change (shard lock held). */
static void l0_hook(const char *key, size_t klen, void *arg)
{
	struct l0 *l0 = arg;
	struct l0_key k;

	if (klen > L0_KEY_MAX)
		return;
	key_fill(&k, key, klen);
	if (bpf_map_delete_elem(l0->cache_fd, &k) == 0) {
		atomic_fetch_add_explicit(&l0->invalidations, 1, memory_order_relaxed);
		atomic_fetch_sub_explicit(&l0->live, 1, memory_order_relaxed);
	}
}

/*
 * sock_ops on the root cgroup runs for every TCP connection of the host,
 * so it is attached only while L0 is on (at start, or when switched on)
 * and detached when L0 is switched off: an L0 that is off costs the host
 * nothing. Connections opened while it is off are never seen by it and
 * stay with the daemon alone; those enrolled before keep their state (the
 * socket maps) and are answered again once L0 is back on. A pair entry
 * of a local connection that closes while it is off stays in l0_pairs
 * until its tuple is used again (bounded by the map; a full map only
 * sends new local connections to the verdict path).
 */
static int sockops_attach(struct l0 *l0, char *why, size_t whylen)
{
	if (l0->sockops_link)
		return 0;
	l0->sockops_link = bpf_program__attach_cgroup(l0->skel->progs.hp_l0_sockops,
						      l0->cgroup_fd);
	if (!l0->sockops_link) {
		int err = errno;

		snprintf(why, whylen, "cannot attach sock_ops to the root cgroup: %s",
			 strerror(err));
		return err ? -err : -EIO;
	}
	return 0;
}

/* The root of the cgroup v2 hierarchy (as this process sees it), opened:
 * sock_ops there sees the front's sockets and those of its local clients. */
static int open_root_cgroup(char *why, size_t whylen)
{
	char mnt[512] = "";
	int fd;

	if (cgroup2_mountpoint(mnt, sizeof(mnt)) != 0) {
		snprintf(why, whylen, "no cgroup v2 hierarchy mounted (sock_ops needs one)");
		return -1;
	}
	fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		snprintf(why, whylen, "cannot open cgroup %s: %s", mnt, strerror(errno));
	return fd;
}

/* ---- the relay socket ------------------------------------------------------
 * A connected loopback pair the daemon owns: `relay_a` is in l0_relays with
 * hp_l0_relay, which rewrites the answers the verdict program redirects to
 * it and sends them on the client's connection; `relay_b` receives only
 * what hp_l0_relay could not deliver (a client gone), drained and counted
 * in l0_refresh. */

static void relay_close(struct l0 *l0)
{
	if (l0->skel && l0->skel->bss)
		__atomic_store_n(&l0->skel->bss->relay_on, 0u, __ATOMIC_RELEASE);
	if (l0->relay_a >= 0)
		close(l0->relay_a);   /* also leaves l0_relays */
	if (l0->relay_b >= 0)
		close(l0->relay_b);
	l0->relay_a = l0->relay_b = -1;
}

/* Create the pair and put its first socket in l0_relays. 0 or -errno. */
static int relay_open(struct l0 *l0)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	__u32 key = 0;
	__u64 fd;
	int lfd, err = 0;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return -errno;
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 1) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &len) != 0) {
		err = -errno;
		goto out;
	}
	l0->relay_a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l0->relay_a < 0 || connect(l0->relay_a, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		err = -errno;
		goto out;
	}
	l0->relay_b = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (l0->relay_b < 0) {
		err = -errno;
		goto out;
	}
	fd = (__u64)l0->relay_a;
	if (bpf_map_update_elem(l0->relays_fd, &key, &fd, BPF_ANY) != 0) {
		err = -errno;
		goto out;
	}
	__atomic_store_n(&l0->skel->bss->relay_on, 1u, __ATOMIC_RELEASE);
out:
	close(lfd);
	if (err)
		relay_close(l0);
	return err;
}

/*
 * Shut the front's connection in `slot` down if it is still the one with
 * this cookie: its client sees the connection end, and the worker that
 * owns it closes it as for any client that hung up. The fd is the
 * server's and may be closed or reused meanwhile, so this works on a
 * duplicate whose cookie is checked: it is then the same socket.
 */
static bool conn_shut(struct l0 *l0, size_t slot, uint64_t cookie)
{
	int fd = __atomic_load_n(&l0->conn_fds[slot], __ATOMIC_RELAXED) - 1;
	uint64_t ck = 0;
	socklen_t len = sizeof(ck);
	bool shut = false;

	if (fd < 0 || (fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
		return false;
	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &ck, &len) == 0 && ck == cookie)
		shut = shutdown(fd, SHUT_RDWR) == 0;
	close(fd);
	return shut;
}

/*
 * Forget what was queued on a relay socket that is gone: its segments were
 * dropped with it, so their snapshots are free. The connections they
 * belonged to (relay_out > 0: a kernel answer or a request for the daemon
 * lost) would wait forever for those replies, so they are shut down and
 * their clients reconnect. relay_on is 0 here; the pause lets a verdict
 * program that read it as 1 finish first (a run takes microseconds).
 * Returns the number of connections shut down.
 */
static unsigned relay_reset(struct l0 *l0)
{
	int snaps = bpf_map__fd(l0->skel->maps.l0_relay_snaps);
	struct l0_relay_snap *sn = calloc(1, sizeof(*sn));
	unsigned closed = 0;

	usleep(20000);
	for (__u32 i = 0; sn && i < L0_RELAY_SNAPS; i++)
		if (bpf_map_update_elem(snaps, &i, sn, BPF_ANY) != 0)
			log_debug("l0: cannot reset relay snapshot %u: %s", i, strerror(errno));
	free(sn);
	for (size_t i = 0; i < L0_CONN_SLOTS; i++) {
		struct l0_conn *c = &l0->conns[i];
		uint64_t cookie = __atomic_load_n(&c->cookie, __ATOMIC_ACQUIRE);

		if (cookie && __atomic_load_n(&c->relay_out, __ATOMIC_RELAXED) != 0 &&
		    conn_shut(l0, i, cookie))
			closed++;
		__atomic_store_n(&c->relay_out, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&c->relay_bytes, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&c->relay_valid, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&c->pass_end, 0, __ATOMIC_RELAXED);
	}
	atomic_fetch_add_explicit(&l0->relay_closed, closed, memory_order_relaxed);
	return closed;
}

/*
 * About once a second: drain the peer, and replace a relay socket that
 * failed. The kernel stops a psock's work item for good on a hard send
 * error (a client's socket torn down while its answer was being written);
 * the answers queued on it then are lost, and their connections are shut
 * down (relay_reset); later ones use the new socket.
 */
static void relay_check(struct l0 *l0)
{
	char buf[4096];
	ssize_t n;
	int soerr = 0, rc;
	socklen_t len = sizeof(soerr);
	unsigned closed;

	if (l0->relay_b >= 0)
		while ((n = read(l0->relay_b, buf, sizeof(buf))) > 0)
			l0->relay_drained += (uint64_t)n;
	if (l0->relay_a < 0 || l0->relays_fd < 0)
		return;
	if (getsockopt(l0->relay_a, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr == 0)
		return;
	relay_close(l0);
	closed = relay_reset(l0);
	log_warn("l0: the relay socket failed (%s): %s; answers queued on it were lost, "
		 "%u client connection%s waiting for them closed", strerror(soerr),
		 l0->remote ? "replaced" : "closed", closed, closed == 1 ? "" : "s");
	if (!l0->remote)
		return;
	rc = relay_open(l0);
	if (rc != 0)
		log_warn("l0: no relay socket (%s): remote clients are served by the daemon",
			 strerror(-rc));
}

struct l0 *l0_start(struct l1 *l1, const struct l0_options *o, char *why, size_t whylen)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	struct l0 *l0 = calloc(1, sizeof(*l0));
	size_t n;
	int err;

	if (!l0) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	l0->l1 = l1;
	l0->cgroup_fd = l0->cache_fd = l0->socks_fd = l0->verdict_fd = -1;
	l0->clients_fd = l0->msg_fd = l0->relays_fd = l0->relay_fd = -1;
	l0->relay_a = l0->relay_b = -1;
	l0->max_keys = o->max_keys ? o->max_keys : 4096;
	l0->max_value = o->max_value && o->max_value <= L0_VALUE_MAX ? o->max_value : L0_VALUE_MAX;
	l0->min_heat = o->min_heat ? o->min_heat : 2;
	l0->remote = o->remote;
	l0->conn_fds = calloc(L0_CONN_SLOTS, sizeof(*l0->conn_fds));
	l0->heap = calloc(l0->max_keys, sizeof(*l0->heap));
	l0->cur = calloc(l0->max_keys, sizeof(*l0->cur));
	l0->next = calloc(l0->max_keys, sizeof(*l0->next));
	l0->rkeys = calloc(L0_READ_BATCH, sizeof(*l0->rkeys));
	l0->rvals = calloc(L0_READ_BATCH, sizeof(*l0->rvals));
	for (n = 16; n < (size_t)l0->max_keys * 4; n <<= 1)
		;
	if (!l0->conn_fds || !l0->heap || !l0->cur || !l0->next || !l0->rkeys || !l0->rvals ||
	    index_init(&l0->hot, n) != 0 || index_init(&l0->in, n) != 0) {
		snprintf(why, whylen, "out of memory");
		goto fail;
	}
	if (o->pin_path && o->pin_path[0]) {
		char p[600];

		snprintf(l0->pin_path, sizeof(l0->pin_path), "%s", o->pin_path);
		/* A pin left by a crashed run may hold stale values or have
		 * another size: start from fresh maps. */
		snprintf(p, sizeof(p), "%s/l0_cache", o->pin_path);
		unlink(p);
		snprintf(p, sizeof(p), "%s/l0_stats", o->pin_path);
		unlink(p);
		opts.pin_root_path = l0->pin_path;
	}
	l0->skel = l0_bpf__open_opts(&opts);
	if (!l0->skel) {
		snprintf(why, whylen, "cannot open the L0 BPF object: %s", strerror(errno));
		goto fail;
	}
	bpf_map__set_max_entries(l0->skel->maps.l0_cache, l0->max_keys);
	if (!l0->pin_path[0]) {
		bpf_map__set_pin_path(l0->skel->maps.l0_cache, NULL);
		bpf_map__set_pin_path(l0->skel->maps.l0_stats, NULL);
	}
	err = l0_bpf__load(l0->skel);
	if (err) {
		snprintf(why, whylen, "kernel refused to load the L0 programs: %s", strerror(-err));
		goto fail;
	}
	l0->cache_fd = bpf_map__fd(l0->skel->maps.l0_cache);
	l0->socks_fd = bpf_map__fd(l0->skel->maps.l0_socks);
	l0->verdict_fd = bpf_program__fd(l0->skel->progs.hp_l0_verdict);
	l0->conns = bpf_array_mmap(l0->skel->maps.l0_conns, &l0->conns_len, why, whylen);
	if (!l0->conns)
		goto fail;
	if (bpf_prog_attach(l0->verdict_fd, l0->socks_fd, BPF_SK_SKB_VERDICT, 0) != 0) {
		snprintf(why, whylen, "cannot attach the sk_skb verdict program: %s",
			 strerror(errno));
		goto fail;
	}
	l0->verdict_attached = true;
	l0->clients_fd = bpf_map__fd(l0->skel->maps.l0_clients);
	l0->msg_fd = bpf_program__fd(l0->skel->progs.hp_l0_msg);
	if (bpf_prog_attach(l0->msg_fd, l0->clients_fd, BPF_SK_MSG_VERDICT, 0) != 0) {
		snprintf(why, whylen, "cannot attach the sk_msg program: %s", strerror(errno));
		goto fail;
	}
	l0->msg_attached = true;
	l0->relays_fd = bpf_map__fd(l0->skel->maps.l0_relays);
	l0->relay_fd = bpf_program__fd(l0->skel->progs.hp_l0_relay);
	if (bpf_prog_attach(l0->relay_fd, l0->relays_fd, BPF_SK_MSG_VERDICT, 0) != 0) {
		snprintf(why, whylen, "cannot attach the relay's sk_msg program: %s", strerror(errno));
		goto fail;
	}
	l0->relay_attached = true;
	if (l0->remote) {
		err = relay_open(l0);
		if (err)
			log_warn("l0: no relay socket (%s): remote clients are served by the daemon",
				 strerror(-err));
	}
	l0->skel->bss->remote_on = l0->remote ? 1 : 0;
	l0->cgroup_fd = open_root_cgroup(why, whylen);
	if (l0->cgroup_fd < 0)
		goto fail;
	if (o->enabled && sockops_attach(l0, why, whylen) != 0)
		goto fail;
	l0->skel->bss->l0_on = o->enabled ? 1 : 0;
	l1_set_l0_hook(l1, l0_hook, l0);
	return l0;
fail:
	l0_stop(l0);
	return NULL;
}

void l0_set_port(struct l0 *l0, uint16_t port)
{
	__atomic_store_n(&l0->skel->bss->resp_port, port, __ATOMIC_RELEASE);
}

/* ---- refresher ------------------------------------------------------------ */

static void heap_sift_down(struct l0_cand *hp, unsigned n, unsigned i)
{
	for (;;) {
		unsigned l = 2 * i + 1, r = l + 1, m = i;
		struct l0_cand t;

		if (l < n && hp[l].heat < hp[m].heat)
			m = l;
		if (r < n && hp[r].heat < hp[m].heat)
			m = r;
		if (m == i)
			return;
		t = hp[i];
		hp[i] = hp[m];
		hp[m] = t;
		i = m;
	}
}

/* Keep the max_keys hottest candidates: a min-heap on heat. */
static void collect_hot(const char *key, size_t klen, size_t vlen, unsigned heat, void *arg)
{
	struct l0 *l0 = arg;
	struct l0_cand *c;

	(void)vlen;
	if (l0->nheap < l0->max_keys) {
		unsigned i = l0->nheap++;

		c = &l0->heap[i];
		c->heat = heat;
		c->klen = (uint32_t)klen;
		memcpy(c->key, key, klen);
		while (i > 0 && l0->heap[(i - 1) / 2].heat > l0->heap[i].heat) {
			struct l0_cand t = l0->heap[i];

			l0->heap[i] = l0->heap[(i - 1) / 2];
			l0->heap[(i - 1) / 2] = t;
			i = (i - 1) / 2;
		}
		return;
	}
	if (heat <= l0->heap[0].heat)
		return;
	c = &l0->heap[0];
	c->heat = heat;
	c->klen = (uint32_t)klen;
	memcpy(c->key, key, klen);
	heap_sift_down(l0->heap, l0->nheap, 0);
}

struct put_ctx {
	struct l0 *l0;
	const struct l0_cand *c;
	int rc;
};

/* Runs under the L1 shard lock: copy the value into L0. */
static void put_value(const char *val, size_t vlen, uint64_t expire_at_ms, void *arg)
{
	struct put_ctx *p = arg;
	struct l0_key k;
	struct l0_value *v;
	int hdr;

	p->rc = -E2BIG;
	if (vlen > p->l0->max_value)
		return;
	v = malloc(sizeof(*v));
	if (!v) {
		p->rc = -ENOMEM;
		return;
	}
	memset(v, 0, sizeof(*v));   /* no heap bytes leak into a map users dump */
	hdr = snprintf(v->reply, 16, "$%zu\r\n", vlen);
	memcpy(v->reply + hdr, val, vlen);
	memcpy(v->reply + hdr + vlen, "\r\n", 2);
	v->reply_len = (__u32)(hdr + vlen + 2);
	v->value_len = (__u32)vlen;
	v->expire_ns = expire_at_ms ? expire_at_ms * 1000000ull : 0;
	key_fill(&k, p->c->key, p->c->klen);
	p->rc = bpf_map_update_elem(p->l0->cache_fd, &k, v, BPF_ANY) ? -errno : 0;
	free(v);
}

struct del_ctx {
	struct l0 *l0;
	const struct l0_cand *c;
};

static void del_value(void *arg)
{
	struct del_ctx *d = arg;
	struct l0_key k;

	key_fill(&k, d->c->key, d->c->klen);
	if (bpf_map_delete_elem(d->l0->cache_fd, &k) == 0)
		atomic_fetch_sub_explicit(&d->l0->live, 1, memory_order_relaxed);
}

static void drop_all(struct l0 *l0)
{
	for (unsigned i = 0; i < l0->ncur; i++) {
		struct del_ctx d = { l0, &l0->cur[i] };

		if (l1_l0_unmark(l0->l1, l0->cur[i].key, l0->cur[i].klen, del_value, &d))
			l0->removals++;
	}
	l0->ncur = 0;
}

/*
 * GETs the kernel answered never reach L1, so without this a key would
 * cool in L1 while L0 serves it, leave L0 a few seconds later, come back
 * once the daemon's GETs of it heat it again, and so on (the bench saw
 * L0's key count swing between all and a tenth under a steady load).
 * Read each entry's hit count (in batches: one value is a KiB) and credit
 * the GETs since the last refresh to L1, before the scan ranks the keys.
 */
static void credit_hits(struct l0 *l0)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	__u32 token = 0, count;
	bool first = true;
	int err;

	index_build(&l0->in, l0->cur, l0->ncur);
	do {
		count = L0_READ_BATCH;
		err = bpf_map_lookup_batch(l0->cache_fd, first ? NULL : &token, &token, l0->rkeys,
					   l0->rvals, &count, &opts);
		if (err < 0)
			err = -errno;
		first = false;
		for (__u32 k = 0; k < count && k < L0_READ_BATCH; k++) {
			const struct l0_key *key = &l0->rkeys[k];
			uint64_t hits = l0->rvals[k].hits, gets;
			struct l0_cand *c;

			if (key->len > L0_KEY_MAX ||
			    !(c = index_find(&l0->in, l0->cur, key->data, key->len)))
				continue;
			/* fewer than last time: the entry was replaced since */
			gets = hits >= c->khits ? hits - c->khits : hits;
			c->khits = hits;
			if (gets)
				l1_l0_credit(l0->l1, key->data, key->len,
					     gets > UINT32_MAX ? UINT32_MAX : (unsigned)gets);
		}
	} while (err == 0);
	if (err != -ENOENT)
		log_debug("l0: cannot read the hit counts: %s", strerror(-err));
}

void l0_refresh(struct l0 *l0)
{
	struct l0_cand *t;
	unsigned n = 0;

	relay_check(l0);
	if (!__atomic_load_n(&l0->skel->bss->l0_on, __ATOMIC_ACQUIRE))
		return;
	credit_hits(l0);            /* also indexes cur in l0->in */
	l0->nheap = 0;
	l1_hot_scan(l0->l1, L0_KEY_MAX, l0->max_value, l0->min_heat, collect_hot, l0);
	index_build(&l0->hot, l0->heap, l0->nheap);
	/* Keys that cooled leave first, so the map has room for new ones. */
	for (unsigned i = 0; i < l0->ncur; i++) {
		struct del_ctx d = { l0, &l0->cur[i] };

		if (index_find(&l0->hot, l0->heap, l0->cur[i].key, l0->cur[i].klen))
			continue;
		if (l1_l0_unmark(l0->l1, l0->cur[i].key, l0->cur[i].klen, del_value, &d))
			l0->removals++;
	}
	for (unsigned i = 0; i < l0->nheap; i++) {
		struct l0_cand *h = &l0->heap[i], *was;
		struct put_ctx p = { l0, h, 0 };
		int rc = l1_l0_mark(l0->l1, h->key, h->klen, put_value, &p);

		if (rc == 0)
			continue;               /* gone since the scan */
		if (rc == 1 && p.rc != 0) {
			/* Not copied: unflag it so a later refresh tries again. */
			log_debug("l0: cannot insert a key: %s", strerror(-p.rc));
			l1_l0_unmark(l0->l1, h->key, h->klen, NULL, NULL);
			continue;
		}
		if (rc == 1) {
			l0->inserts++;
			atomic_fetch_add_explicit(&l0->live, 1, memory_order_relaxed);
			h->khits = 0;   /* a fresh entry counts from 0 */
		} else {
			was = index_find(&l0->in, l0->cur, h->key, h->klen);
			h->khits = was ? was->khits : 0;
		}
		l0->next[n++] = *h;
	}
	l0->ncur = n;
	t = l0->cur;
	l0->cur = l0->next;
	l0->next = t;
}

void l0_flush(struct l0 *l0)
{
	drop_all(l0);
}

int l0_set_enabled(struct l0 *l0, bool on, char *why, size_t whylen)
{
	int rc = on ? sockops_attach(l0, why, whylen) : 0;

	if (rc)
		return rc;
	__atomic_store_n(&l0->skel->bss->l0_on, on ? 1u : 0u, __ATOMIC_RELEASE);
	if (!on) {
		drop_all(l0);
		bpf_link__destroy(l0->sockops_link);
		l0->sockops_link = NULL;
	}
	return 0;
}

int l0_set_remote(struct l0 *l0, bool on, char *why, size_t whylen)
{
	int rc = 0;

	if (on && l0->relay_a < 0) {
		rc = relay_open(l0);
		if (rc) {
			snprintf(why, whylen, "cannot open the relay socket: %s", strerror(-rc));
			return rc;
		}
	}
	l0->remote = on;
	__atomic_store_n(&l0->skel->bss->remote_on, on ? 1u : 0u, __ATOMIC_RELEASE);
	return 0;
}

void l0_get_totals(struct l0 *l0, struct l0_totals *out)
{
	int ncpu = libbpf_num_possible_cpus();
	struct l0_stats *per;
	__u32 zero = 0;

	memset(out, 0, sizeof(*out));
	out->enabled = __atomic_load_n(&l0->skel->bss->l0_on, __ATOMIC_ACQUIRE) != 0;
	{
		int64_t live = atomic_load_explicit(&l0->live, memory_order_relaxed);

		out->keys = live > 0 ? (uint64_t)live : 0;
	}
	out->inserts = l0->inserts;
	out->removals = l0->removals;
	out->invalidations = atomic_load_explicit(&l0->invalidations, memory_order_relaxed);
	out->relay_closed = atomic_load_explicit(&l0->relay_closed, memory_order_relaxed);
	out->relay_on = __atomic_load_n(&l0->skel->bss->relay_on, __ATOMIC_ACQUIRE) != 0 &&
			__atomic_load_n(&l0->skel->bss->remote_on, __ATOMIC_ACQUIRE) != 0;
	if (ncpu <= 0)
		return;
	per = calloc((size_t)ncpu, sizeof(*per));
	if (!per)
		return;
	if (bpf_map_lookup_elem(bpf_map__fd(l0->skel->maps.l0_stats), &zero, per) == 0) {
		for (int i = 0; i < ncpu; i++) {
			out->hits += per[i].hits;
			out->segments_answered += per[i].segments_answered;
			out->pass_miss += per[i].pass_miss;
			out->pass_busy += per[i].pass_busy;
			out->pass_other += per[i].pass_other;
			out->pass_error += per[i].pass_error;
			out->pass_size += per[i].pass_size;
			out->conns += per[i].conns;
			out->conn_collisions += per[i].conn_collisions;
			out->local_conns += per[i].local_conns;
			out->local_answered += per[i].local_answered;
			out->pass_room += per[i].pass_room;
			out->relay_answered += per[i].relay_answered;
			out->relay_passed += per[i].relay_passed;
			out->relay_lost += per[i].relay_lost;
			out->pass_remote += per[i].pass_remote;
		}
	}
	free(per);
}

/* ---- connections ------------------------------------------------------------ */

struct l0_conn *l0_conn_lookup(struct l0 *l0, int fd, uint64_t *cookie)
{
	uint64_t ck = 0;
	socklen_t len = sizeof(ck);
	struct l0_conn *c;

	*cookie = 0;
	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &ck, &len) != 0 || ck == 0)
		return NULL;
	*cookie = ck;
	c = &l0->conns[ck % L0_CONN_SLOTS];
	if (__atomic_load_n(&c->cookie, __ATOMIC_ACQUIRE) != ck)
		return NULL;
	__atomic_store_n(&l0->conn_fds[ck % L0_CONN_SLOTS], fd + 1, __ATOMIC_RELAXED);
	return c;
}

void l0_conn_release(struct l0 *l0, uint64_t cookie)
{
	struct l0_conn *c;
	__u64 expect = cookie;

	if (!cookie)
		return;
	c = &l0->conns[cookie % L0_CONN_SLOTS];
	__atomic_compare_exchange_n(&c->cookie, &expect, 0, false, __ATOMIC_ACQ_REL,
				    __ATOMIC_RELAXED);
}

void l0_stop(struct l0 *l0)
{
	if (!l0)
		return;
	if (l0->l1)
		l1_set_l0_hook(l0->l1, NULL, NULL);
	if (l0->skel && l0->skel->bss) {
		l0->skel->bss->l0_on = 0;
		l0->skel->bss->resp_port = 0;
	}
	bpf_link__destroy(l0->sockops_link);
	relay_close(l0);
	if (l0->relay_attached)
		bpf_prog_detach2(l0->relay_fd, l0->relays_fd, BPF_SK_MSG_VERDICT);
	if (l0->verdict_attached)
		bpf_prog_detach2(l0->verdict_fd, l0->socks_fd, BPF_SK_SKB_VERDICT);
	if (l0->msg_attached)
		bpf_prog_detach2(l0->msg_fd, l0->clients_fd, BPF_SK_MSG_VERDICT);
	if (l0->conns)
		munmap(l0->conns, l0->conns_len);
	if (l0->cgroup_fd >= 0)
		close(l0->cgroup_fd);
	if (l0->skel) {
		if (l0->pin_path[0]) {
			bpf_map__unpin(l0->skel->maps.l0_cache, NULL);
			bpf_map__unpin(l0->skel->maps.l0_stats, NULL);
		}
		l0_bpf__destroy(l0->skel);
	}
	free(l0->conn_fds);
	free(l0->heap);
	free(l0->cur);
	free(l0->next);
	free(l0->rkeys);
	free(l0->rvals);
	index_free(&l0->hot);
	index_free(&l0->in);
	free(l0);
}
