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
 *
 * Bench-only: not loaded by the agent.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

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
