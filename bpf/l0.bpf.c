// SPDX-License-Identifier: GPL-2.0
/*
 * l0.bpf.c - the L0 cache tier: GETs of hot keys answered in the kernel.
 *
 * Three programs:
 *  - sock_ops (cgroup): when a connection to the RESP front's port is
 *    established, enrol it in the sockhash l0_socks (so its received data
 *    goes through the verdict program from the very first byte) and give it
 *    a slot in l0_conns.
 *  - sk_skb verdict on l0_socks: each received segment is either rewritten
 *    in place into the replies of the GETs it holds and redirected to the
 *    egress of the same socket (every command a complete `GET key`, every
 *    key in l0_cache and fresh, nothing of this connection still in the
 *    daemon, and the replies exactly as long as the requests - see the
 *    comment at that check), or passed to the daemon untouched.
 *  - nothing else: L0 never writes to the daemon's state.
 *
 * Ordering: replies on a connection keep the order of the commands. The
 * kernel answers only while passed == done (every byte it passed has been
 * read and answered by the daemon, which publishes `done` after flushing).
 * A segment passed after kernel replies waits behind them in the psock's
 * backlog, so the daemon cannot answer before those replies were sent.
 *
 * What it deliberately does not do: any command but GET, inline commands,
 * segments holding more than L0_BATCH_MAX commands or a partial command
 * (all passed to the daemon, which handles everything).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "hotpath/l0_events.h"

#define SK_PASS 1
#define SK_DROP 0
#define CMD_PREFIX 14           /* "*2\r\n$3\r\nGET\r\n$" */
#define CMD_MAX (CMD_PREFIX + 3 + 2 + L0_KEY_MAX + 2)

/* Runtime switches, set by the daemon through the skeleton's .bss. */
__u32 resp_port = 0;            /* host order; 0 = enrol nothing */
__u32 l0_on = 0;                /* 0 = pass everything */

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, L0_CONN_SLOTS);
	__type(key, __u64);         /* socket cookie */
	__type(value, __u64);
} l0_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, L0_CONN_SLOTS);
	__type(key, __u32);
	__type(value, struct l0_conn);
} l0_conns SEC(".maps");

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
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct l0_scratch);
} l0_scratch SEC(".maps");

static __always_inline struct l0_stats *stats(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&l0_stats, &zero);
}

SEC("sockops")
int hp_l0_sockops(struct bpf_sock_ops *ops)
{
	struct l0_stats *st;
	struct l0_conn *c;
	__u64 cookie;
	__u32 slot;

	if (ops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	if (!resp_port || ops->local_port != resp_port)
		return 1;
	cookie = bpf_get_socket_cookie(ops);
	slot = (__u32)(cookie % L0_CONN_SLOTS);
	c = bpf_map_lookup_elem(&l0_conns, &slot);
	st = stats();
	if (!c)
		return 1;
	if (c->cookie && c->cookie != cookie) {
		/* Slot taken by a live connection: this one is served by the
		 * daemon alone (correct, only slower). */
		if (st)
			__sync_fetch_and_add(&st->conn_collisions, 1);
		return 1;
	}
	c->cookie = cookie;
	c->passed = 0;
	c->done = 0;
	c->hits = 0;
	if (bpf_sock_hash_update(ops, &l0_socks, &cookie, BPF_NOEXIST) == 0 && st)
		__sync_fetch_and_add(&st->conns, 1);
	return 1;
}

/* Parse one "*2\r\n$3\r\nGET\r\n$<n>\r\n<key>\r\n" at `off`; fill s->key.
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
	if (bpf_skb_load_bytes(skb, off, c, (__u32)n) < 0)
		return 0;
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
	if (bpf_skb_load_bytes(skb, off + p, s->key.data, klen) < 0)
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
	w->out = out + rl;
	w->off += n;
	w->hits++;
	return 0;
}

SEC("sk_skb")    /* attached as BPF_SK_SKB_VERDICT (libbpf 1.1 has no section for it) */
int hp_l0_verdict(struct __sk_buff *skb)
{
	struct l0_stats *st = stats();
	struct walk w = {};
	struct l0_conn *c;
	__u32 zero = 0, slot, out;
	__u64 cookie;

	if (!st)
		return SK_PASS;
	cookie = bpf_get_socket_cookie(skb);
	slot = (__u32)(cookie % L0_CONN_SLOTS);
	c = bpf_map_lookup_elem(&l0_conns, &slot);
	if (!c || c->cookie != cookie)
		return SK_PASS;     /* not enrolled: the daemon owns it */
	w.len = skb->len;
	if (!l0_on)
		goto pass;
	if (c->passed != *(volatile __u64 *)&c->done) {
		__sync_fetch_and_add(&st->pass_busy, 1);
		goto pass;
	}
	w.s = bpf_map_lookup_elem(&l0_scratch, &zero);
	if (!w.s)
		goto pass;
	w.skb = skb;
	w.now = bpf_ktime_get_ns();
	bpf_loop(L0_BATCH_MAX + 1, walk_one, &w, 0);
	if (w.verdict == L0W_MISS) {
		__sync_fetch_and_add(&st->pass_miss, 1);
		goto pass;
	}
	if (w.verdict != L0W_DONE || w.off != w.len || w.hits == 0) {
		__sync_fetch_and_add(&st->pass_other, 1);
		goto pass;
	}
	out = w.out;
	if (out == 0 || out > L0_OUT_MAX)
		goto pass;
	/*
	 * The kernel advances the socket's copied_seq by the length of the
	 * redirected skb as it is after this program (tcp_eat_skb runs on the
	 * rewritten skb). A reply longer than the request pushes copied_seq past
	 * rcv_nxt, so later data never wakes the socket (a stall); a shorter one
	 * leaves it behind, so the socket looks readable forever. Until the
	 * stream-parser path is used, answer only when the replies are exactly
	 * as long as the requests, which keeps TCP's accounting exact.
	 */
	if (out != w.len) {
		__sync_fetch_and_add(&st->pass_size, 1);
		goto pass;
	}
	if (bpf_skb_change_tail(skb, out, 0) < 0) {
		__sync_fetch_and_add(&st->pass_error, 1);
		goto pass;      /* unchanged: the daemon answers */
	}
	if (bpf_skb_store_bytes(skb, 0, w.s->out, out, 0) < 0) {
		/* Resized but not rewritten: neither the daemon nor the client
		 * may see it. Never seen in practice; counted loudly. */
		__sync_fetch_and_add(&st->pass_error, 1);
		return SK_DROP;
	}
	__sync_fetch_and_add(&st->hits, w.hits);
	__sync_fetch_and_add(&st->segments_answered, 1);
	c->hits += w.hits;
	return bpf_sk_redirect_hash(skb, &l0_socks, &cookie, 0);
pass:
	c->passed += w.len;
	return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
