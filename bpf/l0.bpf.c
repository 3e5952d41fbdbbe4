// SPDX-License-Identifier: GPL-2.0
/*
 * l0.bpf.c - the L0 cache tier: GETs of hot keys answered in the kernel.
 *
 * Two ways to answer, chosen per connection when it is established:
 *
 *  - Local clients (the common case: the front listens on loopback). The
 *    sock_ops program, attached to the root cgroup (v2), sees both ends of
 *    a connection to the front's port: it puts the client's socket in
 *    l0_clients, which carries the sk_msg program hp_l0_msg, and notes
 *    both sockets in l0_pairs. Each write of the client runs hp_l0_msg in
 *    the client's own sendmsg(): if it holds only GETs of fresh L0 keys, it
 *    is rewritten into the replies (up to L0_OUT_MAX bytes) and
 *    redirected into the client's own receive side (its psock's ingress
 *    queue, which its recv() reads before TCP's). Neither the requests nor
 *    the replies enter TCP, so both sockets' TCP accounting stays exact;
 *    nothing is deferred to a workqueue, no packet is built and the daemon
 *    is not woken.
 *  - Other clients (remote, or local ones connected while L0 was off). The
 *    front's socket goes in l0_socks, which carries the sk_skb verdict
 *    program. A received segment of only GETs of fresh L0 keys is not
 *    rewritten where it is: the receive side cannot change a segment's
 *    length (tcp_eat_skb() accounts the front's copied_seq by the length
 *    the program leaves). The program snapshots the replies (l0_relay_snaps),
 *    marks the segment in skb->priority and redirects it, unchanged, to the
 *    egress of the relay socket, one end of a loopback pair the daemon owns
 *    (l0_relays). The relay's psock work item sends it on that socket,
 *    which runs hp_l0_relay (sk_msg) on it: the segment it is sending is the
 *    head of the relay's psock queue, whose skb->sk is the front's socket
 *    and whose priority names the snapshot, so the program rewrites the
 *    bytes into the replies (any length, the same code as the local path)
 *    and redirects them to the egress of the front's socket.
 *    With [l0] remote = no (remote_on = 0) it answers nothing: every segment
 *    goes to the daemon (counted as passed, reason "remote").
 *
 * Either way nothing but the connection's slot in l0_conns is shared with
 * the daemon: L0 never writes to the daemon's state.
 *
 * Ordering: replies on a connection keep the order of the commands. The
 * kernel answers only while every byte that went to the daemon (counted by
 * hp_l0_msg in l0_pairs before it leaves the client, or by the verdict
 * program in l0_conns as it passes a segment) has been read and answered
 * by the daemon, which publishes `done` after its replies are written. A
 * send-side answer is queued only once the client has also read all of
 * those replies (it would otherwise overtake them, since recv() reads the
 * ingress queue first), and a reply the daemon writes later is read after
 * the kernel's answers still queued. A relayed answer is written by the
 * relay's work item after the verdict returned, so a later segment for
 * the daemon goes straight to it only once every relayed answer is in the
 * front's socket (its write_seq reached relay_end) and every earlier
 * segment sent through the relay reached the daemon; otherwise it goes
 * through the relay too, behind them (see to_daemon()).
 *
 * What it deliberately does not do: any command but GET, inline commands,
 * segments holding more than L0_BATCH_MAX commands or a partial command
 * (all passed to the daemon, which handles everything).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "hotpath/l0_events.h"

#define SK_PASS 1
#define SK_DROP 0
#define AF_INET 2
#define TCP_CLOSE 7
#define CMD_PREFIX 14           /* "*2\r\n$3\r\nGET\r\n$" */
#define CMD_MAX (CMD_PREFIX + 3 + 2 + L0_KEY_MAX + 2)

/* Runtime switches, set by the daemon through the skeleton's .bss. */
__u32 resp_port = 0;            /* host order; 0 = enrol nothing */
__u32 l0_on = 0;                /* 0 = pass everything */
__u32 relay_on = 0;             /* 1 = the relay socket is in l0_relays */
__u32 remote_on = 0;            /* 1 = answer segments through the relay ([l0] remote) */

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, L0_CONN_SLOTS);
	__type(key, __u64);         /* socket cookie */
	__type(value, __u64);
} l0_socks SEC(".maps");

/* Local connections: the clients' sockets (with hp_l0_msg attached, and
 * answered into their own receive side) and which ends are enrolled. Both
 * keyed by the connection as the front sees it. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, L0_CONN_SLOTS);
	__type(key, struct l0_tuple);
	__type(value, __u64);
} l0_clients SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, L0_CONN_SLOTS);
	__type(key, struct l0_tuple);
	__type(value, struct l0_pair);
} l0_pairs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, L0_CONN_SLOTS);
	__type(key, __u32);
	__type(value, struct l0_conn);
} l0_conns SEC(".maps");

/* The front's sockets of verdict connections, by slot (read with
 * bpf_probe_read_kernel, as l0_pairs' are: see hp_l0_msg). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, L0_CONN_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} l0_conn_sks SEC(".maps");

/* The relay socket (key 0), owned by the daemon, with hp_l0_relay. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} l0_relays SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, L0_RELAY_SNAPS);
	__type(key, __u32);
	__type(value, struct l0_relay_snap);
} l0_relay_snaps SEC(".maps");

/* Per CPU: where the next snapshot is looked for. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} l0_relay_next SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);  /* resized by the daemon before load */
	__type(key, struct l0_key);
	__type(value, struct l0_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} l0_cache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct l0_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} l0_stats SEC(".maps");

struct l0_scratch {
	struct l0_key key;
	__u8 cmd[256];              /* >= CMD_MAX, indexes masked with 255 */
	__u8 out[L0_OUT_MAX];
	__u8 req[L0_LOCAL_MAX];     /* a client's write (hp_l0_msg) */
};

/*
 * Per-CPU scratch, two levels deep: the sk_msg programs run in a client's
 * send() or the relay's work item with softirqs enabled, and the verdict program also runs from a
 * socket's backlog in process context, so either may be interrupted by the
 * verdict program in softirq on the same CPU. Each run takes the next
 * level and gives it back on every way out (interrupts nest, so levels are
 * handed out and back in order); a third level is never needed, and if it
 * were the write simply goes to the daemon.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);     /* one per level */
	__type(key, __u32);
	__type(value, struct l0_scratch);
} l0_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} l0_depth SEC(".maps");

static __always_inline struct l0_scratch *scratch_enter(__u32 **set, __u32 *depth)
{
	__u32 zero = 0, d;
	__u32 *dp = bpf_map_lookup_elem(&l0_depth, &zero);
	struct l0_scratch *s;

	*set = NULL;
	if (!dp)
		return NULL;
	d = *dp;
	if (d >= 2)
		return NULL;
	s = bpf_map_lookup_elem(&l0_scratch, &d);
	if (!s)
		return NULL;
	*dp = d + 1;
	*set = dp;
	*depth = d;
	return s;
}

static __always_inline void scratch_leave(__u32 *dp, __u32 depth)
{
	if (dp)
		*dp = depth;
}

static __always_inline struct l0_stats *stats(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&l0_stats, &zero);
}

/* Give the front's new socket its slot in l0_conns; 0 if taken. */
static __always_inline __u64 conn_slot_init(struct bpf_sock_ops *ops, struct l0_stats *st)
{
	__u64 cookie = bpf_get_socket_cookie(ops);
	__u32 slot = (__u32)(cookie % L0_CONN_SLOTS);
	struct l0_conn *c = bpf_map_lookup_elem(&l0_conns, &slot);

	if (!c)
		return 0;
	if (c->cookie && c->cookie != cookie) {
		/* Slot taken by a live connection: this one is served by the
		 * daemon alone (correct, only slower). */
		if (st)
			__sync_fetch_and_add(&st->conn_collisions, 1);
		return 0;
	}
	c->cookie = cookie;
	c->passed = 0;
	c->done = 0;
	c->hits = 0;
	c->pass_end = 0;
	c->relay_out = 0;
	c->relay_bytes = 0;
	c->relay_end = 0;
	c->relay_valid = 0;
	return cookie;
}

static __always_inline bool is_local_addr(__u32 a)
{
	return (bpf_ntohl(a) >> 24) == 127;
}

/* A local client connected to the front: its writes go through hp_l0_msg. */
static __always_inline void enrol_client(struct bpf_sock_ops *ops)
{
	struct l0_pair pr = { .client = 1, .client_sk = (__u64)(long)ops->sk };
	/* each field read once (clang would otherwise select between ctx
	 * offsets, which the verifier refuses) */
	__u32 rip = *(volatile __u32 *)&ops->remote_ip4;
	__u32 lip = *(volatile __u32 *)&ops->local_ip4;
	struct l0_tuple t;

	if (!l0_on || ops->family != AF_INET)
		return;
	if (!is_local_addr(rip) && rip != lip)
		return;
	t.lip = rip;
	t.rip = lip;
	t.lport = resp_port;
	t.rport = ops->local_port;
	if (bpf_sock_hash_update(ops, &l0_clients, &t, BPF_ANY) != 0)
		return;
	bpf_map_update_elem(&l0_pairs, &t, &pr, BPF_ANY);
	bpf_sock_ops_cb_flags_set(ops, ops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

/* A local connection's key in l0_pairs, the front's view of it, from
 * either end (IPv4 only). */
static __always_inline void front_tuple(struct bpf_sock_ops *ops, struct l0_tuple *t)
{
	if (ops->local_port == resp_port) {
		t->lip = ops->local_ip4;
		t->rip = ops->remote_ip4;
		t->lport = ops->local_port;
		t->rport = bpf_ntohl(ops->remote_port);
	} else {
		t->lip = ops->remote_ip4;
		t->rip = ops->local_ip4;
		t->lport = bpf_ntohl(ops->remote_port);
		t->rport = ops->local_port;
	}
}

/* The front accepted a connection: send-side answers if its client was
 * enrolled (it was, if local, before it could send: the client's
 * ESTABLISHED comes before the ACK that makes ours), else the verdict. */
static __always_inline void enrol_front(struct bpf_sock_ops *ops)
{
	struct l0_stats *st = stats();
	struct bpf_sock *sk = *(struct bpf_sock *volatile *)&ops->sk;  /* read once */
	struct l0_pair *pr;
	struct l0_tuple t;
	__u64 cookie = conn_slot_init(ops, st), skv;
	__u32 slot;

	if (!cookie)
		return;
	if (ops->family == AF_INET) {
		front_tuple(ops, &t);
		pr = bpf_map_lookup_elem(&l0_pairs, &t);
		if (pr && pr->client && sk) {
			pr->front_sk = (__u64)(long)sk;
			/* last: hp_l0_msg reads the slot only once it is set */
			*(volatile __u64 *)&pr->front_cookie = cookie;
			bpf_sock_ops_cb_flags_set(ops, ops->bpf_sock_ops_cb_flags |
						  BPF_SOCK_OPS_STATE_CB_FLAG);
			if (st) {
				__sync_fetch_and_add(&st->conns, 1);
				__sync_fetch_and_add(&st->local_conns, 1);
			}
			return;
		}
	}
	slot = (__u32)(cookie % L0_CONN_SLOTS);
	skv = (__u64)(long)sk;
	bpf_map_update_elem(&l0_conn_sks, &slot, &skv, BPF_ANY);
	if (bpf_sock_hash_update(ops, &l0_socks, &cookie, BPF_NOEXIST) == 0 && st)
		__sync_fetch_and_add(&st->conns, 1);
}

/* Either end of a local connection closed: forget the pair. */
static __always_inline void forget_pair(struct bpf_sock_ops *ops)
{
	struct l0_tuple t;

	if (ops->family != AF_INET)
		return;
	front_tuple(ops, &t);
	bpf_map_delete_elem(&l0_pairs, &t);
}

SEC("sockops")
int hp_l0_sockops(struct bpf_sock_ops *ops)
{
	if (!resp_port)
		return 1;
	switch (ops->op) {
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		if (ops->local_port == resp_port)
			enrol_front(ops);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		if (bpf_ntohl(ops->remote_port) == resp_port)
			enrol_client(ops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (ops->args[1] == TCP_CLOSE)
			forget_pair(ops);
		break;
	}
	return 1;
}

/* Parse one "*2\r\n$3\r\nGET\r\n$<n>\r\n<key>\r\n" at `off`; fill s->key.
 * Reads the segment, or s->req (a client's write) when skb is NULL.
 * Returns the command's length, or 0 if it is anything else. */
static __always_inline __u32 parse_get(struct __sk_buff *skb, __u32 off, __u32 avail,
				       struct l0_scratch *s)
{
	__u64 n = avail;
	__u32 klen = 0, p;
	__u8 *c = s->cmd;

	if (n > CMD_MAX)
		n = CMD_MAX;
	n &= 0xff;              /* for the verifier: 0..255, and <= CMD_MAX here */
	if (n < CMD_PREFIX + 5 || n > CMD_MAX)
		return 0;
	if (skb) {
		if (bpf_skb_load_bytes(skb, off, c, (__u32)n) < 0)
			return 0;
	} else {
		if (off >= L0_LOCAL_MAX ||
		    bpf_probe_read_kernel(c, (__u32)n, &s->req[off & (L0_LOCAL_MAX - 1)]) < 0)
			return 0;
	}
	if (c[0] != '*' || c[1] != '2' || c[2] != '\r' || c[3] != '\n' || c[4] != '$' ||
	    c[5] != '3' || c[6] != '\r' || c[7] != '\n' || (c[8] | 0x20) != 'g' ||
	    (c[9] | 0x20) != 'e' || (c[10] | 0x20) != 't' || c[11] != '\r' || c[12] != '\n' ||
	    c[13] != '$')
		return 0;
	p = CMD_PREFIX;
	if (c[p] < '1' || c[p] > '9')
		return 0;
	klen = c[p++] - '0';
	if (c[p] >= '0' && c[p] <= '9') {
		klen = klen * 10 + (c[p++] - '0');
		if (c[p] >= '0' && c[p] <= '9')
			klen = klen * 10 + (c[p++] - '0');
	}
	if (klen == 0 || klen > L0_KEY_MAX)
		return 0;
	if (p > CMD_PREFIX + 3 || c[p & 255] != '\r' || c[(p + 1) & 255] != '\n')
		return 0;
	p += 2;
	if (p + klen + 2 > n)
		return 0;
	if (c[(p + klen) & 255] != '\r' || c[(p + klen + 1) & 255] != '\n')
		return 0;
	__builtin_memset(&s->key, 0, sizeof(s->key));
	s->key.len = klen;
	if (bpf_probe_read_kernel(s->key.data, klen, &c[p & 255]) < 0)
		return 0;
	return p + klen + 2;
}

/* State of one segment's walk, shared with the bpf_loop callback. */
struct walk {
	struct __sk_buff *skb;
	struct l0_scratch *s;
	__u64 now;
	__u32 off, len, out, hits;
	int verdict;                /* 0 = go on, else why it stopped */
};

enum { L0W_MORE = 0, L0W_DONE, L0W_OTHER, L0W_MISS, L0W_FAIL };

/* One command per call; bpf_loop keeps verification to one pass over it. */
static long walk_one(__u32 i, struct walk *w)
{
	struct l0_scratch *s = w->s;
	struct l0_value *v;
	__u32 n, rl, out = w->out;

	(void)i;
	if (w->off >= w->len) {
		w->verdict = L0W_DONE;
		return 1;
	}
	n = parse_get(w->skb, w->off, w->len - w->off, s);
	if (!n) {
		w->verdict = L0W_OTHER;
		return 1;
	}
	v = bpf_map_lookup_elem(&l0_cache, &s->key);
	if (!v || (v->expire_ns && v->expire_ns <= w->now)) {
		w->verdict = L0W_MISS;
		return 1;
	}
	rl = v->reply_len;
	if (rl == 0 || rl > L0_REPLY_MAX || out > L0_OUT_MAX - L0_REPLY_MAX) {
		w->verdict = L0W_FAIL;
		return 1;
	}
	if (bpf_probe_read_kernel(&s->out[out], rl, v->reply) < 0) {
		w->verdict = L0W_FAIL;
		return 1;
	}
	/* Counted even if a later command sends the whole write to the
	 * daemon (which then counts it again in L1): heat is an estimate. */
	__sync_fetch_and_add(&v->hits, 1);
	w->out = out + rl;
	w->off += n;
	w->hits++;
	return 0;
}

/*
 * Walk the bytes in w (a segment or a client's write) command by command:
 * true when every one is a GET of a fresh L0 key and their replies are in
 * w->s->out; otherwise the reason is counted and the bytes go to the
 * daemon.
 */
static __always_inline bool walk_answers(struct walk *w, struct l0_stats *st)
{
	w->now = bpf_ktime_get_ns();
	bpf_loop(L0_BATCH_MAX + 1, walk_one, w, 0);
	if (w->verdict == L0W_MISS) {
		__sync_fetch_and_add(&st->pass_miss, 1);
		return false;
	}
	if (w->verdict != L0W_DONE || w->off != w->len || w->hits == 0) {
		__sync_fetch_and_add(&st->pass_other, 1);
		return false;
	}
	return true;
}

/* What the verdict program reads of the front's socket. */
struct front_state {
	__u32 write_seq;
	int wmem_queued, sndbuf;
};

static __always_inline int front_read(__u32 slot, struct front_state *f)
{
	__u64 *skp = bpf_map_lookup_elem(&l0_conn_sks, &slot);
	struct sock *sk;

	if (!skp || !*skp)
		return -1;
	sk = (struct sock *)(long)*skp;
	if (bpf_probe_read_kernel(&f->write_seq, sizeof(f->write_seq),
				  &((struct tcp_sock *)sk)->write_seq) ||
	    bpf_probe_read_kernel(&f->wmem_queued, sizeof(f->wmem_queued), &sk->sk_wmem_queued) ||
	    bpf_probe_read_kernel(&f->sndbuf, sizeof(f->sndbuf), &sk->sk_sndbuf))
		return -1;
	return 0;
}

/* A free snapshot slot, taken (busy), or -1. The slot's busy word is a
 * try-lock built from plain atomic adds: whoever makes it 1 owns it. */
static __always_inline int snap_take(void)
{
	__u32 zero = 0, *next = bpf_map_lookup_elem(&l0_relay_next, &zero);
	struct l0_relay_snap *sn;
	__u32 k, idx;

	if (!next)
		return -1;
	for (k = 0; k < 4; k++) {
		idx = (*next * 16 + (bpf_get_smp_processor_id() & 15)) % L0_RELAY_SNAPS;
		*next += 1;
		sn = bpf_map_lookup_elem(&l0_relay_snaps, &idx);
		if (!sn)
			return -1;
		__sync_fetch_and_add(&sn->busy, 1);
		if (*(volatile __u32 *)&sn->busy == 1)
			return (int)idx;
		__sync_fetch_and_add(&sn->busy, -1);
	}
	return -1;
}

/*
 * A segment for the daemon. Kernel answers of this connection may still be
 * on their way through the relay socket (the relay forwards them after
 * this program returns, in the relay's work item); a segment passed
 * straight to the daemon could then be answered first. So it is passed
 * straight only when every earlier relayed answer is written into the
 * front's socket (its write_seq reached relay_end) and every earlier pass
 * through the relay reached the daemon (it has read up to pass_end);
 * otherwise it is redirected to the relay too, which hands it to the
 * daemon (the front's receive queue) after the answers before it. The
 * front's copied_seq counts the segment once either way: at the redirect
 * (tcp_eat_skb), and never again when the daemon reads it, since this
 * kernel counts only bytes that came from the socket's own queue
 * (__sk_msg_recvmsg's copied_from_self).
 */
static __always_inline int to_daemon(struct __sk_buff *skb, struct l0_conn *c, __u32 slot,
				     __u32 len, struct l0_stats *st)
{
	struct front_state f;
	__u32 zero = 0;
	bool straight;

	if (c->relay_valid)
		straight = front_read(slot, &f) == 0 && f.write_seq == c->relay_end;
	else
		straight = *(volatile __u32 *)&c->relay_out == 0 &&
			   *(volatile __u64 *)&c->done >= c->pass_end;
	c->relay_valid = 0;         /* the daemon may write from now on */
	c->passed += len;
	if (straight || !relay_on)
		return SK_PASS;
	skb->priority = L0_RELAY_PASS;
	if (bpf_sk_redirect_hash(skb, &l0_relays, &zero, 0) != SK_PASS) {
		/* No relay socket: only while the daemon replaces a failed
		 * one, whose queued answers are lost anyway. */
		__sync_fetch_and_add(&st->pass_error, 1);
		return SK_PASS;
	}
	__sync_fetch_and_add(&c->relay_out, 1);
	c->pass_end = c->passed;
	return SK_PASS;             /* redirected */
}

/*
 * The replies in w.s->out answer the whole segment: snapshot them for the
 * relay and redirect the segment, unchanged, to the relay socket. Returns
 * 0 if redirected, else the segment goes to the daemon.
 */
static __always_inline int relay_answer(struct __sk_buff *skb, struct l0_conn *c, __u32 slot,
					struct l0_scratch *s, __u32 out, struct l0_stats *st)
{
	struct l0_relay_snap *sn;
	struct front_state f;
	__u32 zero = 0, idx;
	int i;

	if (front_read(slot, &f) != 0) {
		__sync_fetch_and_add(&st->pass_error, 1);
		return -1;
	}
	/* The daemon writes nothing until the segment after these replies,
	 * so the room seen now is there when the relay writes them. */
	if ((__s64)f.wmem_queued + 2 * ((__s64)c->relay_bytes + out) > (__s64)f.sndbuf) {
		__sync_fetch_and_add(&st->pass_room, 1);
		return -1;
	}
	i = snap_take();
	if (i < 0) {
		__sync_fetch_and_add(&st->pass_room, 1);
		return -1;
	}
	idx = (__u32)i;
	sn = bpf_map_lookup_elem(&l0_relay_snaps, &idx);
	if (!sn)
		return -1;
	if (out > L0_OUT_MAX || bpf_probe_read_kernel(sn->out, out, s->out) < 0) {
		__sync_fetch_and_add(&sn->busy, -1);
		__sync_fetch_and_add(&st->pass_error, 1);
		return -1;
	}
	sn->len = out;
	skb->priority = L0_RELAY_ANSWER | idx;
	if (bpf_sk_redirect_hash(skb, &l0_relays, &zero, 0) != SK_PASS) {
		__sync_fetch_and_add(&sn->busy, -1);
		__sync_fetch_and_add(&st->pass_error, 1);
		return -1;
	}
	/* One write to the relay's socket per segment if it can be: the
	 * relay program then sees the whole segment at once (it corks
	 * otherwise). */
	bpf_skb_pull_data(skb, skb->len);
	/* passed == done: the daemon has written all it will write before
	 * this, and every earlier relayed answer is written too (see
	 * to_daemon), so write_seq is exact here. */
	if (!c->relay_valid) {
		c->relay_end = f.write_seq;
		c->relay_valid = 1;
	}
	c->relay_end += out;
	__sync_fetch_and_add(&c->relay_bytes, out);
	__sync_fetch_and_add(&c->relay_out, 1);
	return 0;
}

SEC("sk_skb")    /* attached as BPF_SK_SKB_VERDICT (libbpf 1.1 has no section for it) */
int hp_l0_verdict(struct __sk_buff *skb)
{
	struct l0_stats *st = stats();
	__u32 *ss = NULL;
	struct walk w = {};
	struct l0_conn *c;
	__u32 slot, out, depth = 0;
	__u64 cookie;

	if (!st)
		return SK_PASS;
	cookie = bpf_get_socket_cookie(skb);
	slot = (__u32)(cookie % L0_CONN_SLOTS);
	c = bpf_map_lookup_elem(&l0_conns, &slot);
	if (!c || c->cookie != cookie)
		return SK_PASS;     /* not enrolled: the daemon owns it */
	w.len = skb->len;
	/* An empty skb (a FIN) carries nothing for anyone; redirected to the
	 * relay it would make the relay's work item stop with EPIPE
	 * (skb_send_sock() of nothing returns 0). */
	if (w.len == 0)
		return SK_PASS;
	if (!l0_on)
		goto pass;
	/* [l0] remote = no (or no relay socket): the daemon answers; a pass
	 * still follows answers queued before on the relay (to_daemon). */
	if (!remote_on || !relay_on) {
		__sync_fetch_and_add(&st->pass_remote, 1);
		goto pass;
	}
	if (c->passed != *(volatile __u64 *)&c->done) {
		__sync_fetch_and_add(&st->pass_busy, 1);
		goto pass;
	}
	w.s = scratch_enter(&ss, &depth);
	if (!w.s)
		goto pass;
	w.skb = skb;
	if (!walk_answers(&w, st))
		goto pass;
	out = w.out;
	if (out == 0 || out > L0_OUT_MAX)
		goto pass;
	if (relay_answer(skb, c, slot, w.s, out, st) != 0)
		goto pass;
	__sync_fetch_and_add(&st->hits, w.hits);
	__sync_fetch_and_add(&st->segments_answered, 1);
	c->hits += w.hits;
	scratch_leave(ss, depth);
	return SK_PASS;     /* redirected */
pass:
	scratch_leave(ss, depth);
	return to_daemon(skb, c, slot, w.len, st);
}

/*
 * Copy of the replies into one window of a client's resized write (the
 * bytes [base, base + len) of the write, made linear by
 * bpf_msg_pull_data()).
 */
struct fill {
	struct sk_msg_md *msg;
	struct l0_scratch *s;
	__u32 base, len;
	int err;
};

#define L0_WINDOWS (L0_OUT_MAX / L0_LOCAL_MAX + 2)

/* Copy the step-sized piece i of the window (the last one overlapping the
 * piece before it); `step` is a constant after inlining, so the copy is one
 * load and store of a word, or a 256-byte memcpy. Returns 1 to stop. */
static __always_inline long fill_step(__u32 i, struct fill *f, const __u32 step)
{
	struct sk_msg_md *msg = f->msg;
	__u32 off = i * step, len = f->len;
	void *data, *end, *p;
	__u64 idx;

	if (off >= len)
		return 1;
	if (off + step > len)
		off = len - step;   /* the tail overlaps the previous piece */
	idx = (__u64)f->base + off;
	barrier_var(idx);       /* check and use the same register */
	if (off > L0_LOCAL_MAX || idx > L0_OUT_MAX - step) {
		f->err = 1;
		return 1;
	}
	data = (void *)(long)msg->data;
	end = (void *)(long)msg->data_end;
	p = data + off;
	if (p + step > end) {
		f->err = 1;
		return 1;
	}
	if (step == 8)
		*(__u64 *)p = *(__u64 *)&f->s->out[idx];
	else
		__builtin_memcpy(p, &f->s->out[idx], 256);
	return 0;
}

/* bpf_loop callbacks: a word a call, or 256 bytes a call for a window of at
 * least 256 bytes (a window of 1 KiB replies would otherwise take 512). */
static long fill_word(__u32 i, struct fill *f)
{
	return fill_step(i, f, 8);
}

static long fill_chunk(__u32 i, struct fill *f)
{
	return fill_step(i, f, 256);
}

/* A window shorter than a word (a reply of 6 or 7 bytes, or the last bytes
 * before the write's own): byte by byte. */
static long fill_byte(__u32 i, struct fill *f)
{
	struct sk_msg_md *msg = f->msg;
	__u64 idx = (__u64)f->base + i;
	void *data, *end, *p;

	barrier_var(idx);       /* check and use the same register */
	if (i >= f->len)
		return 1;
	if (i > 8 || idx > L0_OUT_MAX - 1) {
		f->err = 1;
		return 1;
	}
	data = (void *)(long)msg->data;
	end = (void *)(long)msg->data_end;
	p = data + i;
	if (p + 1 > end) {
		f->err = 1;
		return 1;
	}
	*(__u8 *)p = f->s->out[idx];
	return 0;
}

/*
 * Rewrite a write of `size` bytes (an sk_msg) into the `out` bytes of
 * replies in s->out: resize it, then copy the replies a window of at most
 * a page at a time, each made linear by bpf_msg_pull_data(); no window
 * straddles the end of the pushed bytes, so a pull inside one element
 * needs no allocation. Returns 0 when done, -1 if the write is unchanged,
 * 1 if it is neither the request nor the replies any more.
 */
static __always_inline int rewrite_msg(struct sk_msg_md *msg, struct l0_scratch *s, __u32 size,
				       __u32 out)
{
	struct fill f = {};
	__u32 split, start = 0, end_off, k;

	if (out > size) {
		if (bpf_msg_push_data(msg, 0, out - size, 0) < 0)
			return -1;
	} else if (out < size) {
		if (bpf_msg_pop_data(msg, 0, size - out, 0) < 0)
			return -1;
	}
	f.msg = msg;
	f.s = s;
	split = out > size ? out - size : out;
	for (k = 0; k < L0_WINDOWS && start < out; k++) {
		end_off = start + L0_LOCAL_MAX;
		if (start < split && end_off > split)
			end_off = split;
		if (end_off > out)
			end_off = out;
		if (bpf_msg_pull_data(msg, start, end_off, 0) < 0) {
			f.err = 1;
			break;
		}
		f.base = start;
		f.len = end_off - start;
		if (f.len >= 256)
			bpf_loop(L0_LOCAL_MAX / 256 + 1, fill_chunk, &f, 0);
		else if (f.len >= 8)
			bpf_loop(256 / 8 + 1, fill_word, &f, 0);
		else
			bpf_loop(8, fill_byte, &f, 0);
		if (f.err)
			break;
		start = end_off;
	}
	return f.err || start != out ? 1 : 0;
}

/*
 * A local client's write, in its own sendmsg() (see the top of the file).
 * Answered only if it is nothing but complete GETs of fresh L0 keys, no
 * earlier command of the connection is still in the daemon or its reply
 * unread, and the client's unread kernel answers leave room for these.
 */
SEC("sk_msg")
int hp_l0_msg(struct sk_msg_md *msg)
{
	struct l0_stats *st = stats();
	__u32 *ss = NULL;
	struct walk w = {};
	struct l0_pair *pr;
	struct l0_conn *c;
	struct l0_tuple t;
	__u64 cookie, udata;
	__u32 slot, size, out, depth = 0, wseq, cseq, queued;
	int rcvbuf, err;
	void *data, *end;

	if (!st || msg->family != AF_INET)
		return SK_PASS;
	t.lip = msg->remote_ip4;
	t.rip = msg->local_ip4;
	t.lport = bpf_ntohl(msg->remote_port);
	t.rport = msg->local_port;
	pr = bpf_map_lookup_elem(&l0_pairs, &t);
	if (!pr)
		return SK_PASS;     /* not enrolled (or forgotten): the daemon owns it */
	size = msg->size;
	cookie = *(volatile __u64 *)&pr->front_cookie;
	if (!cookie)
		goto pass;          /* the front is not enrolled (yet) */
	slot = (__u32)(cookie % L0_CONN_SLOTS);
	c = bpf_map_lookup_elem(&l0_conns, &slot);
	if (!c || c->cookie != cookie)
		goto pass;
	if (!l0_on || size == 0)
		goto pass;
	if (pr->sent != *(volatile __u64 *)&c->done) {
		__sync_fetch_and_add(&st->pass_busy, 1);
		goto pass;
	}
	if (size > L0_LOCAL_MAX) {
		__sync_fetch_and_add(&st->pass_other, 1);
		goto pass;
	}
	w.s = scratch_enter(&ss, &depth);
	if (!w.s)
		goto pass;
	if (bpf_msg_pull_data(msg, 0, size, 0) < 0) {
		__sync_fetch_and_add(&st->pass_error, 1);
		goto pass;
	}
	data = (void *)(long)msg->data;
	end = (void *)(long)msg->data_end;
	if (size == 0 || size > L0_LOCAL_MAX || data + size > end ||
	    bpf_probe_read_kernel(w.s->req, size, data) < 0) {
		__sync_fetch_and_add(&st->pass_error, 1);
		goto pass;
	}
	w.len = size;
	if (!walk_answers(&w, st))
		goto pass;
	out = w.out;
	if (out < 6 || out > L0_OUT_MAX) {
		__sync_fetch_and_add(&st->pass_size, 1);
		goto pass;
	}
	/*
	 * The replies go into the client's own receive side (the psock's
	 * ingress queue), which its recv() reads before the TCP receive
	 * queue. So answer only when the client has read every byte the
	 * daemon wrote on this connection (front's write_seq == client's
	 * copied_seq: nothing of the daemon's is in flight or unread), and
	 * the queue of earlier kernel answers it has not read yet leaves room
	 * for these within its receive buffer (the kernel does not bound that
	 * queue itself). The sockets are read at the addresses sock_ops noted
	 * (sk_msg may not hold a reference to another socket): TCP sockets
	 * are freed only after an RCU grace period and this runs under RCU,
	 * and the slot's cookie above says the connection is still open.
	 */
	if (!pr->front_sk || !pr->client_sk ||
	    bpf_probe_read_kernel(&wseq, sizeof(wseq),
				  &((struct tcp_sock *)(long)pr->front_sk)->write_seq) ||
	    bpf_probe_read_kernel(&cseq, sizeof(cseq),
				  &((struct tcp_sock *)(long)pr->client_sk)->copied_seq) ||
	    bpf_probe_read_kernel(&udata, sizeof(udata),
				  &((struct sock *)(long)pr->client_sk)->sk_user_data) ||
	    bpf_probe_read_kernel(&rcvbuf, sizeof(rcvbuf),
				  &((struct sock *)(long)pr->client_sk)->sk_rcvbuf) ||
	    !(udata & ~7ull) ||     /* SK_USER_DATA_PTRMASK: the psock */
	    bpf_probe_read_kernel(&queued, sizeof(queued),
				  &((struct sk_psock *)(long)(udata & ~7ull))->msg_tot_len)) {
		__sync_fetch_and_add(&st->pass_error, 1);
		goto pass;
	}
	if (wseq != cseq) {
		__sync_fetch_and_add(&st->pass_busy, 1);
		goto pass;
	}
	if ((__s64)queued + out > (__s64)rcvbuf) {
		__sync_fetch_and_add(&st->pass_room, 1);
		goto pass;
	}
	err = rewrite_msg(msg, w.s, size, out);
	scratch_leave(ss, depth);
	if (err < 0) {
		__sync_fetch_and_add(&st->pass_error, 1);
		goto pass_left;     /* nothing changed */
	}
	if (err > 0) {
		__sync_fetch_and_add(&st->pass_error, 1);
		return SK_DROP;     /* the client's send fails (EACCES) */
	}
	__sync_fetch_and_add(&st->hits, w.hits);
	__sync_fetch_and_add(&st->local_answered, 1);
	c->hits += w.hits;
	return bpf_msg_redirect_hash(msg, &l0_clients, &t, BPF_F_INGRESS);
pass:
	scratch_leave(ss, depth);
pass_left:
	/* one writer: tcp_bpf_sendmsg() runs this under the client's socket lock */
	pr->sent += size;
	return SK_PASS;
}

/* The snapshot's replies into s->out: their length, or 0. */
static __always_inline __u32 snap_copy(struct l0_scratch *s, struct l0_relay_snap *sn)
{
	__u64 n = *(volatile __u32 *)&sn->len;

	if (n < 6 || n > L0_OUT_MAX)
		return 0;
	barrier_var(n);
	if (bpf_probe_read_kernel(s->out, n, sn->out) < 0)
		return 0;
	return (__u32)n;
}

/* The segment the relay socket's work item is sending: the head of its
 * psock's queue (sk_psock_backlog() peeks it and dequeues it only once it
 * is sent), read through the socket the program runs for. */
struct relay_head {
	__u32 priority, len;
	__u64 cookie;               /* the front's socket it was received on */
	int err;                    /* that socket's sk_err */
	__u8 shutdown, state;
};

static __always_inline int relay_head_read(struct sk_msg_md *msg, struct relay_head *h)
{
	struct bpf_sock *bs = msg->sk;
	struct tcp_sock *tp;
	struct sk_psock *ps;
	struct sk_buff *skb = NULL;
	struct sock *from = NULL;
	__u64 udata = 0;

	if (!bs)
		return -1;
	tp = bpf_skc_to_tcp_sock(bs);
	if (!tp ||
	    bpf_probe_read_kernel(&udata, sizeof(udata), &tp->inet_conn.icsk_inet.sk.sk_user_data) ||
	    !(udata & ~7ull))
		return -1;
	ps = (struct sk_psock *)(long)(udata & ~7ull);   /* SK_USER_DATA_PTRMASK */
	if (bpf_probe_read_kernel(&skb, sizeof(skb), &ps->ingress_skb.next) || !skb ||
	    (void *)skb == (void *)&ps->ingress_skb ||
	    bpf_probe_read_kernel(&h->priority, sizeof(h->priority), &skb->priority) ||
	    bpf_probe_read_kernel(&h->len, sizeof(h->len), &skb->len) ||
	    bpf_probe_read_kernel(&from, sizeof(from), &skb->sk) || !from ||
	    bpf_probe_read_kernel(&h->cookie, sizeof(h->cookie), &from->__sk_common.skc_cookie) ||
	    bpf_probe_read_kernel(&h->err, sizeof(h->err), &from->sk_err) ||
	    bpf_probe_read_kernel(&h->shutdown, sizeof(h->shutdown), &from->sk_shutdown) ||
	    bpf_probe_read_kernel(&h->state, sizeof(h->state), (const void *)&from->__sk_common.skc_state))
		return -1;
	return 0;
}

/*
 * Whether the front's socket can take a write now. A write the kernel
 * refuses (the client reset the connection, the daemon closed it) would
 * make the relay's work item stop for good; checked here, it can still
 * happen only if the reset arrives between this check and the write,
 * and then the daemon replaces the relay socket and shuts down the
 * connections whose segments were queued on it (l0.c).
 */
static __always_inline bool relay_can_write(const struct relay_head *h)
{
	return h->err == 0 && !(h->shutdown & 2 /* SEND_SHUTDOWN */) &&
	       (h->state == 1 /* TCP_ESTABLISHED */ || h->state == 8 /* TCP_CLOSE_WAIT */);
}

/*
 * The relay socket's sk_msg program (see the top of the file): runs in the
 * relay's work item as it sends a segment the verdict program redirected
 * to it. An answer is rewritten into the replies the verdict snapshotted
 * and sent on the front's socket; a pass goes, unchanged, into the front's
 * receive side for the daemon. Never drops (that would stop the relay for
 * every connection): what cannot be delivered is let through to the
 * relay's peer, which the daemon drains, and counted as lost.
 */
SEC("sk_msg")
int hp_l0_relay(struct sk_msg_md *msg)
{
	struct l0_stats *st = stats();
	struct l0_relay_snap *sn;
	struct relay_head h;
	struct l0_conn *c;
	__u32 *ss = NULL, slot, idx, out, size = msg->size, depth = 0;
	struct l0_scratch *s;
	bool mine;
	long r;
	int err;

	if (!st)
		return SK_PASS;
	if (size == 0 || relay_head_read(msg, &h) != 0 || size > h.len) {
		__sync_fetch_and_add(&st->relay_lost, 1);
		return SK_PASS;
	}
	slot = (__u32)(h.cookie % L0_CONN_SLOTS);
	c = bpf_map_lookup_elem(&l0_conns, &slot);
	/* not ours if closed: the slot is someone else's */
	mine = c && *(volatile __u64 *)&c->cookie == h.cookie;
	/*
	 * The work item sends an skb's head and each fragment in a write of
	 * its own. A pass goes on piece by piece: the verdict below applies
	 * to the whole segment (bpf_msg_apply_bytes), so this program runs
	 * once for it. An answer needs the whole request first: corked until
	 * it is all here (the verdict program made it linear, so this is
	 * rare), then this program runs again on all of it.
	 */
	if ((h.priority & L0_RELAY_KIND_MASK) == L0_RELAY_PASS) {
		if (c && mine)
			__sync_fetch_and_add(&c->relay_out, -1);
		if (size < h.len)
			bpf_msg_apply_bytes(msg, h.len);
		r = relay_can_write(&h) ?
		    bpf_msg_redirect_hash(msg, &l0_socks, &h.cookie, BPF_F_INGRESS) : SK_DROP;
		__sync_fetch_and_add(r == SK_PASS ? &st->relay_passed : &st->relay_lost, 1);
		return SK_PASS;
	}
	if (size < h.len) {
		bpf_msg_cork_bytes(msg, h.len);
		return SK_PASS;
	}
	if ((h.priority & L0_RELAY_KIND_MASK) != L0_RELAY_ANSWER) {
		__sync_fetch_and_add(&st->relay_lost, 1);
		return SK_PASS;
	}
	idx = h.priority & 0xffff;
	sn = bpf_map_lookup_elem(&l0_relay_snaps, &idx);
	if (!sn) {
		__sync_fetch_and_add(&st->relay_lost, 1);
		return SK_PASS;
	}
	out = sn->len;
	if (c && mine) {
		__sync_fetch_and_add(&c->relay_out, -1);
		__sync_fetch_and_add(&c->relay_bytes, -(int)out);
	}
	s = scratch_enter(&ss, &depth);
	out = s ? snap_copy(s, sn) : 0;
	err = out ? rewrite_msg(msg, s, size, out) : 1;
	scratch_leave(ss, depth);
	__sync_fetch_and_add(&sn->busy, -1);
	if (err == 0 && relay_can_write(&h) &&
	    bpf_msg_redirect_hash(msg, &l0_socks, &h.cookie, 0) == SK_PASS) {
		__sync_fetch_and_add(&st->relay_answered, 1);
		return SK_PASS;     /* redirected */
	}
	__sync_fetch_and_add(&st->relay_lost, 1);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
