// SPDX-License-Identifier: GPL-2.0
/*
 * acceptcount.bpf.c - counts the connections hotpathd itself accepts.
 *
 * The smallest useful kernel program, there from day one so the BPF build
 * pipeline (clang -> .bpf.o -> bpftool skeleton -> loader) is always
 * exercised: sys_exit_accept4/sys_exit_accept tracepoints, filtered to the
 * agent's own tgid (set as a const volatile before load), add to a per-CPU
 * counter. Userspace compares the kernel's count with its own accept count
 * (/metrics: hotpath_bpf_accepts_total) and the map is pinned at
 * /sys/fs/bpf/hotpath/accept_stats for bpftool. It deliberately does not
 * look at other processes: service observation is a separate program.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "hotpath/events.h"

const volatile __u32 target_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct accept_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} accept_stats SEC(".maps");

static __always_inline int count_exit(long ret)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 zero = 0;
	struct accept_stats *st;

	if (tgid != target_tgid)
		return 0;
	st = bpf_map_lookup_elem(&accept_stats, &zero);
	if (!st)
		return 0;
	if (ret >= 0)
		st->accepted++;
	else if (ret == -11 /* EAGAIN */)
		st->would_block++;
	else
		st->failed++;
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int hp_exit_accept4(struct trace_event_raw_sys_exit *ctx)
{
	return count_exit(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int hp_exit_accept(struct trace_event_raw_sys_exit *ctx)
{
	return count_exit(ctx->ret);
}

char LICENSE[] SEC("license") = "GPL";
