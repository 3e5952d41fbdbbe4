// SPDX-License-Identifier: GPL-2.0
/*
 * acceptcount.bpf.c - counts the connections made to hotpathd's own
 * listeners, as the kernel sees them.
 *
 * The smallest useful kernel program, there from day one so the BPF build
 * pipeline (clang -> .bpf.o -> bpftool skeleton -> loader) is always
 * exercised. Userspace compares the kernel's count with its own accept
 * count (/metrics: hotpath_bpf_accepts_total) and the map is pinned at
 * /sys/fs/bpf/hotpath/accept_stats for bpftool.
 *
 * The hook is the BTF tracepoint sock:inet_sock_set_state, which fires on
 * a TCP socket's state changes (a handful per connection), filtered by the
 * socket's local port against a bitmap of the agent's listening ports
 * (`agent_ports`, written by userspace as each listener starts): a child
 * socket going SYN_RECV -> ESTABLISHED is a connection the agent's
 * accept() will return, one of them going to CLOSE has ended. The first
 * version hooked syscalls:sys_exit_accept{,4}; enabling any syscall
 * tracepoint puts every syscall of every task on the host on the traced
 * slow path, which is what the services this agent watches paid for a
 * counter of the agent's own accepts (docs/benchmarks.md). It
 * deliberately does not look at other processes' ports: service
 * observation is a separate program.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "hotpath/events.h"

#define TCP_ESTABLISHED 1
#define TCP_SYN_RECV 3
#define TCP_CLOSE 7
#define TCP_LISTEN 10

/* One bit per local port the agent listens on (set by userspace). */
__u64 agent_ports[65536 / 64] = {};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct accept_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} accept_stats SEC(".maps");

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(hp_accept_state, struct sock *sk, int oldstate, int newstate)
{
	struct accept_stats *st;
	__u32 zero = 0;
	__u16 port;

	if (newstate != TCP_CLOSE && newstate != TCP_ESTABLISHED)
		return 0;
	if (sk->__sk_common.skc_family != 2 /* AF_INET */ &&
	    sk->__sk_common.skc_family != 10 /* AF_INET6 */)
		return 0;
	/* inet_sport, not skc_num: going to CLOSE the socket leaves its bind
	 * bucket (inet_num = 0) before the tracepoint fires. */
	port = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	if (!((agent_ports[(port >> 6) & 1023] >> (port & 63)) & 1))
		return 0;
	st = bpf_map_lookup_elem(&accept_stats, &zero);
	if (!st)
		return 0;
	if (newstate == TCP_ESTABLISHED && oldstate == TCP_SYN_RECV)
		st->accepted++;
	else if (newstate == TCP_CLOSE && oldstate != TCP_LISTEN && oldstate != TCP_SYN_RECV)
		st->closed++;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
