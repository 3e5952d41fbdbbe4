/*
 * profile_events.h - structs shared by bpf/profile.bpf.c and the CPU
 * profiler's loader (agent/observe/profile.c).
 *
 * Fixed-size fields and no includes, like events.h: the BPF side gets
 * __u32/__u64 from vmlinux.h, userspace from <linux/types.h> included before
 * this file. These are the key and value types of the pinned maps, so
 * `bpftool map dump pinned /sys/fs/bpf/hotpath/profile_counts` shows them
 * by these field names. The key has no padding (4+4+4+16 bytes, 4-aligned):
 * the kernel hashes every byte of it.
 */
#ifndef HOTPATH_PROFILE_EVENTS_H
#define HOTPATH_PROFILE_EVENTS_H

#define PROFILE_COMM_LEN 16
/* Frames kept per stack: the kernel's default perf_event_max_stack. */
#define PROFILE_MAX_DEPTH 127

/* Which processes a window samples (profile.bpf.c's filter_mode). */
#define PROFILE_ALL  0        /* every process but idle */
#define PROFILE_PIDS 1        /* the tgids in "profile_pids" */
#define PROFILE_TREE 2        /* those and the children they fork in the window */
/* Processes a window may name (a service's process tree). */
#define PROFILE_PIDS_MAX 4096

/* Map "profile_counts" (hash): one entry per distinct sampled stack pair. */
struct profile_key {
	__u32 tgid;           /* process (thread group) id; 0 = idle/swapper */
	__s32 user_stack_id;  /* id in "profile_stacks", or -errno (-EFAULT: no user part) */
	__s32 kern_stack_id;  /* id in "profile_stacks", or -errno (-EFAULT: no kernel part) */
	char comm[PROFILE_COMM_LEN]; /* task comm of the sampled thread */
};

struct profile_count {
	__u64 samples;        /* cpu-clock samples that landed on this key */
};

/* Map "profile_stats" (per-CPU array, one entry): what the program saw. */
struct profile_stats {
	__u64 samples;        /* samples that passed the filters */
	__u64 filtered;       /* samples dropped by the process filter or as idle */
	__u64 user_stack_lost;/* user stack not recorded (map full, hash collision) */
	__u64 kern_stack_lost;/* kernel stack not recorded */
	__u64 counts_full;    /* "profile_counts" was full: sample not counted */
};

#endif
