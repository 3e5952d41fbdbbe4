/*
 * observe_events.h - structs shared by bpf/observe.bpf.c and
 * agent/observe/observe.c (request latency and database query timing).
 *
 * Fixed-size fields and no includes, like events.h: the BPF side gets the
 * __uN types from vmlinux.h, userspace from <linux/types.h> included first.
 * The pinned maps (obs_watched, obs_endpoints, obs_drops) are read by
 * operators with `bpftool map dump pinned`, so every field is named for
 * them. Durations in the histograms are microseconds, bucketed exactly as
 * include/hotpath/hist.h does (bucket i: 2^(i-1) < v <= 2^i, bucket 0:
 * v <= 1, clamped at the last), so userspace merges them into a struct hist
 * without conversion. Timestamps are bpf_ktime_get_ns() (CLOCK_MONOTONIC).
 */
#ifndef HOTPATH_OBSERVE_EVENTS_H
#define HOTPATH_OBSERVE_EVENTS_H

#define OBS_HIST_BUCKETS 32     /* == HIST_BUCKETS */
#define OBS_FIFO 8              /* outstanding requests tracked per connection */
#define OBS_TEXT_MAX 512        /* bytes of request head / query text sent */
#define OBS_PATH_MAX 192        /* bytes of an HTTP path that feed the route hash */
#define OBS_CMD_MAX 32          /* bytes of a RESP command name */
#define OBS_PG_NAME_MAX 64      /* bytes of a PG prepared statement name skipped */

/* Protocols: same numbers as enum hp_protocol (0 = auto / not yet known). */
#define OBS_PROTO_AUTO 0
#define OBS_PROTO_HTTP 1
#define OBS_PROTO_RESP 2
#define OBS_PROTO_POSTGRES 3
#define OBS_PROTO_NONE 255      /* sniffed and not one we understand */

/* Direction of a watched port, seen from the process doing the syscall. */
#define OBS_DIR_IN 1            /* local port matches: the process serves */
#define OBS_DIR_OUT 2           /* remote port matches: the process is a client */

/* Event kinds (first field of every ring buffer record). */
#define OBS_EV_REQ 1            /* one completed request (or pipelined batch) */
#define OBS_EV_TEXT 2           /* first bytes of a new endpoint's request */

/* obs_watched: filled by userspace. Key: port in host order + direction. */
struct obs_watch_key {
	__u16 port;
	__u16 dir;              /* OBS_DIR_IN or OBS_DIR_OUT */
};

struct obs_watch {
	__u32 service_id;       /* index in the agent's service table */
	__u32 protocol;         /* OBS_PROTO_*, AUTO = sniff the first request */
	__u32 pid;              /* only this process (tgid), 0 = any */
	__u32 cgroup_level;     /* depth of cgroup_id in the v2 hierarchy */
	__u64 cgroup_id;        /* only tasks in this cgroup or below, 0 = any */
};

/* obs_endpoints: per service and endpoint, written by the kernel. */
struct obs_ep_key {
	__u32 service_id;
	__u32 pad;
	__u64 ep_hash;          /* route / command / query-text hash, see observe.bpf.c */
};

/*
 * The counters a completion writes come first and the histogram last: in a
 * slot of obs_ep_table (64-byte aligned) the tag and these seven words are
 * one cache line, so a request's completion touches that line and its
 * bucket's, where the histogram first spread them over three or four (a
 * server's own work evicts them between its requests: each is a miss).
 */
struct obs_ep_stats {
	__u64 count;            /* requests completed */
	__u64 sum_us;
	__u64 errors;           /* HTTP 5xx, RESP '-' reply, PG ErrorResponse */
	__u64 rows;             /* PG CommandComplete row counts, when visible */
	__u64 max_us;           /* racy max: a concurrent update may win */
	__u64 last_ns;
	__u64 first_ns;
	__u32 protocol;
	__u32 dir;
	__u64 hist_us[OBS_HIST_BUCKETS];
};

/*
 * obs_ep_table: the statistics of most endpoints, in a table direct-mapped
 * by tag (obs_ep_slot_of() in observe.bpf.c), which the kernel reads and
 * updates without a call: an endpoint whose slot another one holds is in
 * obs_endpoints instead, never in both. A slot is taken for the agent's
 * lifetime (cleared when it starts). Memory-mappable: the agent reads it
 * in place.
 */
#define OBS_EP_BITS 12
#define OBS_EP_SLOTS (1 << OBS_EP_BITS)
struct obs_ep_slot {
	__u64 tag;              /* the owner's tag, from service_id and ep_hash; 0 = free */
	struct obs_ep_stats st;
	struct obs_ep_key key;  /* set once the slot is taken, before first_ns */
} __attribute__((aligned(64)));

_Static_assert(__builtin_offsetof(struct obs_ep_slot, st.protocol) == 64,
	       "a slot's tag and counters in its first cache line");

/* A slot's tag: never 0 (free). */
static inline __u64 obs_ep_tag(__u32 service_id, __u64 ep_hash)
{
	return (ep_hash ^ ((__u64)service_id * 0x9E3779B97F4A7C15ULL)) | 1;
}

/* How far the kernel side has got in reading socket buffers' page
 * fragments in place (frag_state in observe.bpf.c's .bss). */
#define OBS_FRAG_LEARN 0         /* their addresses' constant not yet found */
#define OBS_FRAG_CHECK 1         /* found; being checked against copied reads */
#define OBS_FRAG_ON 2            /* read in place */
#define OBS_FRAG_OFF 3           /* read through the kernel's copy, for good */

/* What the programs learnt for a kind of read made in place, in their
 * .bss: `frag` (socket buffers' page fragments), `user` (user memory). */
struct obs_inplace {
	__u64 base;             /* frag: the constant that turns a fragment's struct
				 * page into its kernel address (base + page * 64);
				 * user: the kernel's direct-map base */
	__u32 state;            /* OBS_FRAG_* */
	__u32 count;            /* checks passed, or searches that failed */
};

/* obs_drops: per-CPU counters of what the kernel side did not report. */
struct obs_drops {
	__u64 ev_fast_dropped;  /* request events over the budget (fast requests) */
	__u64 ev_slow_dropped;  /* request events over the budget (slow requests) */
	__u64 ringbuf_full;     /* ring buffer had no room */
	__u64 fifo_full;        /* request not timed: OBS_FIFO already outstanding */
	__u64 text_dropped;     /* endpoint text event lost (re-asked by userspace) */
	__u64 unmatched;        /* response with no outstanding request */
	__u64 ep_evicted;       /* endpoint entry recreated after LRU eviction */
};

/*
 * obs_tokens[cpu]: a CPU's request event budget, one cache line found by
 * the CPU's number (an array, not a per-CPU one, whose lookup loads the
 * value's address from the map's pointer table first). fast_dropped
 * counts the fast requests' events the budget refused that are not yet in
 * obs_drops' ev_fast_dropped, which gets them OBS_DROP_BATCH at a time: a
 * server past its budget touches this one line for most requests, where
 * it touched four (two pointer tables, two values). Readers of the total
 * add the pending ones.
 */
#define OBS_DROP_BATCH 64

struct obs_bucket {
	__u64 tokens;
	__u64 refill_ns;
	__u64 fast_dropped;
	__u64 pad[5];
} __attribute__((aligned(64)));

struct obs_req_event {
	__u32 kind;             /* OBS_EV_REQ */
	__u32 service_id;
	__u64 ep_hash;
	__u64 end_ns;
	__u64 dur_ns;
	__u32 pid;              /* tgid */
	__u32 rows;
	__u16 status;           /* HTTP status, 0 otherwise */
	__u8 protocol;
	__u8 dir;
	__u8 err;
	__u8 n;                 /* requests in this pipelined batch (RESP) */
	__u8 pad[2];
};

struct obs_text_event {
	__u32 kind;             /* OBS_EV_TEXT */
	__u32 service_id;
	__u64 ep_hash;
	__u32 protocol;
	__u32 len;              /* bytes valid in text */
	char text[OBS_TEXT_MAX];
};

#endif
