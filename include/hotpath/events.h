/*
 * events.h - every struct shared by BPF programs and userspace.
 *
 * Fixed-size fields and no includes (bcc libbpf-tools habit): the BPF side
 * gets __u32/__u64 from vmlinux.h, userspace from <linux/types.h>, included
 * before this file. Layouts are part of what `bpftool map dump` shows
 * operators, so fields are named for them.
 */
#ifndef HOTPATH_EVENTS_H
#define HOTPATH_EVENTS_H

/* acceptcount.bpf.c: the agent's own accepted connections, counted by the
 * kernel (map "accept_stats", per-CPU, one entry). */
struct accept_stats {
	__u64 accepted;     /* handshakes completed on the agent's listening ports */
	__u64 closed;       /* of those connections, how many have closed since */
};

#endif
