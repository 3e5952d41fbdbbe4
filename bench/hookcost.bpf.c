// SPDX-License-Identifier: GPL-2.0
/*
 * hookcost.bpf.c - what a kernel hook costs before our program does
 * anything: bench/overhead.sh attaches these (build/hookcost PROG...) in
 * place of hotpathd, side by side with no program and with the real
 * observation, so the gap between "empty" and "agent" is what
 * bpf/observe.bpf.c's body costs and the gap between "none" and "empty" is
 * the floor of the hook itself.
 *
 *  - empty_recv/empty_send: the two BTF tracepoints observe.bpf.c uses,
 *    returning at once (the dispatch: bpf_trace_run3, RCU, the indirect
 *    call).
 *  - bits_recv/bits_send: the same plus observe.bpf.c's first test (the
 *    port bitmap, all bits clear): what an unwatched socket pays.
 *  - sysexit: syscalls:sys_exit_accept4, empty (the syscall slow path).
 *  - enrol (sock_ops) + msg_pass (sk_msg) / skb_pass (sk_skb verdict): the
 *    alternative that runs only for watched sockets: sock_ops puts a
 *    socket whose local or remote port is in `watch_ports` (up to four)
 *    into a sockhash when it is established, and the sk_msg / sk_skb
 *    programs attached to that sockhash run on its sends / receives only.
 *  - price_*: the price of one call of what observation cannot do without,
 *    amplified: on each read(2) of a socket whose local port is in
 *    `watch_ports` (build/sockloop's server: one a round), PRICE_N calls
 *    of bpf_ktime_get_ns (clock), bpf_probe_read_user_str (str) or
 *    bpf_probe_read_user (read) of 128 bytes of the read's buffer, or
 *    PRICE_N locked adds (atomic); price_base does the same tests and
 *    finds the same buffer, and calls nothing. (arm - base) / PRICE_N of
 *    a round's time is one call's price.
 *
 * Bench-only: not loaded by the agent.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

const volatile __u32 watch_ports[4] = {};

__u64 bits[2][65536 / 64] = {};
__u64 hits = 0;

SEC("tp_btf/sock_recv_length")
int BPF_PROG(empty_recv, struct sock *sk, int ret, int flags)
{
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(empty_send, struct sock *sk, int ret, int flags)
{
	return 0;
}

/* The agent's hooks since 6.15/6.16: a read seen in the socket buffer, a
 * send inside tcp_sendmsg_locked() (observe.bpf.c's hp_obs_rx and
 * hp_obs_sendmsg), empty: what their dispatch alone costs. */
SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(empty_rx, const struct sk_buff *skb, int len)
{
	return 0;
}

SEC("tp_btf/tcp_sendmsg_locked")
int BPF_PROG(empty_tx, struct sock *sk, struct msghdr *msg, struct sk_buff *skb, int size_goal)
{
	return 0;
}

static __always_inline int bit_test(struct sock *sk)
{
	__u16 lport = sk->__sk_common.skc_num;
	__u16 rport = bpf_ntohs(sk->__sk_common.skc_dport);

	if (((bits[0][(lport >> 6) & 1023] >> (lport & 63)) & 1) ||
	    ((bits[1][(rport >> 6) & 1023] >> (rport & 63)) & 1))
		hits++;
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(bits_recv, struct sock *sk, int ret, int flags)
{
	if (ret <= 0 || !sk)
		return 0;
	return bit_test(sk);
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(bits_send, struct sock *sk, int ret, int flags)
{
	if (ret <= 0 || !sk)
		return 0;
	return bit_test(sk);
}

/*
 * sysexit: an empty program on one syscall exit tracepoint (what the accept
 * counter used to attach): enabling any syscall tracepoint puts every
 * syscall of every task on the traced slow path, not only accept4.
 */
SEC("tracepoint/syscalls/sys_exit_accept4")
int sysexit(void *ctx)
{
	return 0;
}

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u64);
} socks SEC(".maps");

SEC("sockops")
int enrol(struct bpf_sock_ops *ops)
{
	__u64 key;

	if (ops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB &&
	    ops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
		return 1;
	for (int i = 0; i < 4; i++)
		if (watch_ports[i] && (ops->local_port == watch_ports[i] ||
				       bpf_ntohl(ops->remote_port) == watch_ports[i]))
			goto watched;
	return 1;
watched:
	key = bpf_get_socket_cookie(ops);
	bpf_sock_hash_update(ops, &socks, &key, BPF_ANY);
	return 1;
}

/* ---- prices ------------------------------------------------------------ */

#define PRICE_N 8
#define PRICE_LEN 128
__u64 sink = 0;

/* Is this socket's local port one of watch_ports? */
static __always_inline bool priced_sock(const struct sock *sk)
{
	__u16 lport = sk ? sk->__sk_common.skc_num : 0;

	for (int i = 0; lport && i < 4; i++)
		if (watch_ports[i] && watch_ports[i] == lport)
			return true;
	return false;
}

/* The user buffer of a read(2) on a socket whose local port is watched,
 * else 0. */
static __always_inline __u64 priced_buf(struct sock *sk, int ret)
{
	struct pt_regs *regs;

	if (ret <= 0 || !priced_sock(sk))
		return 0;
	regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	if (regs->orig_ax != 0)         /* read(2) only */
		return 0;
	return regs->si;
}

/* A price arm: on a priced read, PRICE_N times `expr` (with `decl` in
 * scope), its values summed into sink so that no call is left out. */
#define PRICE(name, decl, expr)						\
SEC("tp_btf/sock_recv_length")						\
int BPF_PROG(name, struct sock *sk, int ret, int flags)		\
{									\
	__u64 buf = priced_buf(sk, ret);				\
	decl;								\
									\
	if (!buf)							\
		return 0;						\
	for (int i = 0; i < PRICE_N; i++)				\
		sink += (expr);						\
	return 0;							\
}

PRICE(price_base, , buf)
PRICE(price_clock, , bpf_ktime_get_ns())
PRICE(price_str, char b[PRICE_LEN], bpf_probe_read_user_str(b, sizeof(b), (void *)buf))
PRICE(price_str16, char b[16], bpf_probe_read_user_str(b, sizeof(b), (void *)buf))
PRICE(price_str64, char b[64], bpf_probe_read_user_str(b, sizeof(b), (void *)buf))
PRICE(price_read, char b[PRICE_LEN], bpf_probe_read_user(b, sizeof(b), (void *)buf) + b[i])
PRICE(price_read16, char b[16], bpf_probe_read_user(b, sizeof(b), (void *)buf) + b[i])
PRICE(price_atomic, , (__sync_fetch_and_add(&hits, buf), 0))

/*
 * A read's first bytes, two ways: rx_user as observe.bpf.c reads them
 * today (sock:sock_recv_length after the copy, the user buffer through
 * the saved registers, bpf_probe_read_user), rx_skb from the socket buffer
 * before the copy (skb:skb_copy_datagram_iovec, the offset from the
 * socket's copied_seq, bpf_dynptr_from_skb + bpf_dynptr_read: kernel
 * memory, and no hook at all on a read that finds nothing).
 */
#define RX_LEN 64

SEC("tp_btf/sock_recv_length")
int BPF_PROG(rx_user, struct sock *sk, int ret, int flags)
{
	__u64 buf = priced_buf(sk, ret);
	char b[RX_LEN];

	if (!buf || bpf_probe_read_user(b, sizeof(b), (void *)buf))
		return 0;
	sink += b[0];
	return 0;
}

extern int bpf_dynptr_from_skb(struct __sk_buff *s, __u64 flags, struct bpf_dynptr *ptr__uninit) __ksym;
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(rx_skb, const struct sk_buff *skb, int len)
{
	struct sock *sk = skb->sk;
	const struct tcp_skb_cb *cb = (const void *)skb->cb;
	struct tcp_sock *tp;
	struct bpf_dynptr p;
	char b[RX_LEN];

	if (!priced_sock(sk))
		return 0;
	tp = bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct tcp_sock));
	if (bpf_dynptr_from_skb((struct __sk_buff *)skb, 0, &p) ||
	    bpf_dynptr_read(b, sizeof(b), &p, (tp->copied_seq - cb->seq) & 0xffff, 0))
		return 0;
	sink += b[0];
	return 0;
}

/*
 * lines0/lines4/lines16: on each read and send of a socket whose local
 * port is watched (the first of two twins, not the second), touch that
 * many cache lines picked at random in 64 MiB: what many lines missed a
 * request cost a server, in its own time as well as the loads' (the
 * lines evict the server's own). lines0 does the same tests and touches
 * none.
 */
#define LINES_MAP (1 << 20)             /* 64-byte lines: 64 MiB */
struct cold_line {
	__u64 v[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LINES_MAP);
	__type(key, __u32);
	__type(value, struct cold_line);
} cold SEC(".maps");

/* An arm's two programs: on each read and each send, `body`. */
#define RX_TX(name, body)							\
SEC("tp_btf/sock_recv_length")							\
int BPF_PROG(name##_recv, struct sock *sk, int ret, int flags)		\
{										\
	return ret > 0 ? (body) : 0;						\
}										\
SEC("tp_btf/sock_send_length")							\
int BPF_PROG(name##_send, struct sock *sk, int ret, int flags)		\
{										\
	return ret > 0 ? (body) : 0;						\
}

/*
 * kpage8/vpage8: the same 448 cache lines (28 KiB), eight of them picked
 * at random on each read and send of the first twin; kpage8's in a map
 * small enough for kmalloc (the kernel's direct map: 1 GiB pages, one TLB
 * entry), vpage8's one line a page in a vmalloc'd map (4 KiB pages, each
 * its own TLB entry; the line within the page varies, so the caches'
 * sets are the same spread). The difference is what a TLB miss on a
 * map's page costs a server, the caches' misses being the same.
 */
#define PAGES 448
struct big_page {
	struct cold_line l[64];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PAGES);
	__type(key, __u32);
	__type(value, struct cold_line);
} kpages SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PAGES);
	__type(key, __u32);
	__type(value, struct big_page);
} vpages SEC(".maps");

enum { IN_COLD, IN_KPAGES, IN_VPAGES };

/* On a priced socket's transfer, k loads of lines picked at random in
 * `cold`, `kpages` or one a page of `vpages`. */
static __always_inline int touch(struct sock *sk, int k, int where)
{
	if (!priced_sock(sk))
		return 0;
	for (int i = 0; i < k; i++) {
		__u32 r = bpf_get_prandom_u32(), idx = where == IN_COLD ? r & (LINES_MAP - 1) : r % PAGES;
		struct cold_line *l;

		if (where == IN_COLD) {
			l = bpf_map_lookup_elem(&cold, &idx);
		} else if (where == IN_KPAGES) {
			l = bpf_map_lookup_elem(&kpages, &idx);
		} else {
			struct big_page *p = bpf_map_lookup_elem(&vpages, &idx);

			l = p ? &p->l[idx & 63] : NULL;
		}
		if (l)
			sink += l->v[0];
	}
	return 0;
}

RX_TX(lines0, touch(sk, 0, IN_COLD))
RX_TX(lines4, touch(sk, 4, IN_COLD))
RX_TX(lines16, touch(sk, 16, IN_COLD))
RX_TX(kpage8, touch(sk, 8, IN_KPAGES))
RX_TX(vpage8, touch(sk, 8, IN_VPAGES))

SEC("sk_msg")
int msg_pass(struct sk_msg_md *msg)
{
	return SK_PASS;
}

SEC("sk_skb/stream_verdict")
int skb_pass(struct __sk_buff *skb)
{
	return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
