// SPDX-License-Identifier: GPL-2.0
/*
 * profile.bpf.c - where the CPUs spend their time: sampled stacks counted
 * in the kernel.
 *
 * Userspace opens one PERF_COUNT_SW_CPU_CLOCK event per online CPU (there is
 * no hardware PMU on the target, and cpu-clock needs none) at a fixed
 * frequency (49 Hz by default: off the beat of 50/100 Hz timers, so periodic
 * work is not always or never sampled) and attaches hp_profile_sample to
 * each. On every sample the program records the user and the kernel stack
 * with bpf_get_stackid into "profile_stacks" (identical stacks share an id)
 * and adds one to "profile_counts" under (tgid, user id, kernel id, comm).
 * Nothing is sent per sample: at the end of a window userspace reads the
 * counts and the stacks once, so the cost does not depend on how hot the
 * host is. The process filter (a mode in a writable global, .bss mmapped
 * by libbpf, and a set of tgids in a map) is changed between windows
 * without reloading: every process, the set, or the set's tree (a service:
 * PostgreSQL's postmaster and its backends, nginx's master and workers; a
 * child forked during the window joins on its first sample, its parent
 * being in the set). Idle (tgid 0) is skipped
 * unless include_idle is set before load. The program deliberately does not
 * symbolise, walk DWARF or copy user memory: frame-pointer stacks as the
 * kernel gives them, symbols resolved in userspace.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "hotpath/profile_events.h"

#define EFAULT 14
#define EEXIST 17

const volatile bool include_idle = false;
/* PROFILE_ALL, PROFILE_PIDS or PROFILE_TREE; set by userspace before each
 * window, with profile_pids. */
__u32 filter_mode = PROFILE_ALL;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PROFILE_PIDS_MAX);
	__type(key, __u32);          /* tgid */
	__type(value, __u32);        /* unused */
} profile_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 8192);   /* resized by the loader before load */
	__uint(key_size, sizeof(__u32));
	__uint(value_size, PROFILE_MAX_DEPTH * sizeof(__u64));
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} profile_stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);  /* resized by the loader before load */
	__type(key, struct profile_key);
	__type(value, struct profile_count);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} profile_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct profile_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} profile_stats SEC(".maps");

/* Is this process one the window samples? Under PROFILE_TREE a process
 * whose parent is in the set joins it (when there is room), so its own
 * children are found by the same test. */
static __always_inline bool wanted(__u32 tgid)
{
	struct task_struct *task;
	__u32 ppid, one = 1;

	if (filter_mode == PROFILE_ALL || bpf_map_lookup_elem(&profile_pids, &tgid))
		return true;
	if (filter_mode != PROFILE_TREE)
		return false;
	task = bpf_get_current_task_btf();
	ppid = task->real_parent->tgid;
	if (!bpf_map_lookup_elem(&profile_pids, &ppid))
		return false;
	bpf_map_update_elem(&profile_pids, &tgid, &one, BPF_NOEXIST);
	return true;
}

SEC("perf_event")
int hp_profile_sample(struct bpf_perf_event_data *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id;
	struct profile_count one = { .samples = 1 }, *cnt;
	struct profile_key key = {};
	struct profile_stats *st;
	__u32 zero = 0;
	long err;

	st = bpf_map_lookup_elem(&profile_stats, &zero);
	if (!st)
		return 0;
	if ((tid == 0 && !include_idle) || !wanted(tgid)) {
		st->filtered++;
		return 0;
	}
	st->samples++;
	key.tgid = tgid;
	bpf_get_current_comm(&key.comm, sizeof(key.comm));
	key.user_stack_id = bpf_get_stackid(ctx, &profile_stacks, BPF_F_USER_STACK);
	if (key.user_stack_id < 0 && key.user_stack_id != -EFAULT)
		st->user_stack_lost++;
	key.kern_stack_id = bpf_get_stackid(ctx, &profile_stacks, 0);
	if (key.kern_stack_id < 0 && key.kern_stack_id != -EFAULT)
		st->kern_stack_lost++;

	cnt = bpf_map_lookup_elem(&profile_counts, &key);
	if (cnt) {
		__sync_fetch_and_add(&cnt->samples, 1);
		return 0;
	}
	err = bpf_map_update_elem(&profile_counts, &key, &one, BPF_NOEXIST);
	if (err == -EEXIST) {   /* the other CPU inserted it meanwhile */
		cnt = bpf_map_lookup_elem(&profile_counts, &key);
		if (cnt)
			__sync_fetch_and_add(&cnt->samples, 1);
	} else if (err) {
		st->counts_full++;
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
