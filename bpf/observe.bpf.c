// SPDX-License-Identifier: GPL-2.0
/*
 * observe.bpf.c - request latency of the services on this host, both sides:
 * what a server takes to answer (inbound) and what its calls to databases
 * and caches take (outbound), for HTTP/1.x, RESP and the PostgreSQL wire
 * protocol.
 *
 * How. Two BTF tracepoints hand over the struct sock of every socket
 * transfer: sock:sock_recv_length (sock_recvmsg: how many bytes were
 * read) and tcp:tcp_sendmsg_locked (the message about to be sent, its
 * iovecs already the kernel's copy), or sock:sock_send_length
 * (sock_sendmsg) on kernels before 6.16. The target kernel has no kprobes
 * and refuses fentry; what it costs here decided the rest (measured with
 * a syscall loop, min of 200 runs):
 * syscalls:sys_enter/exit_read pairs add ~300 ns to every read of the
 * host, file reads included; a raw sys_exit tracepoint ~80 ns to every
 * syscall; these two nothing outside socket I/O. The first test is a
 * port bitmap (watch_bits, mirrored from obs_watched: local port for
 * OBS_DIR_IN, remote port for OBS_DIR_OUT), so an unwatched socket costs a
 * few loads. A watched one keeps its state in a slot of obs_slots picked
 * by its socket cookie (or, when another live socket holds that slot, in
 * socket-local storage, obs_conns), created on its first transfer with
 * the service's pid or cgroup restriction checked then. A local caller
 * of a [service] port whose requests this host's service socket already
 * times (server_side_bits) is
 * classified OBS_PROTO_NONE then, so a request is worked on once, not
 * twice: on loopback each of a request's four transfers (server read and
 * write, client write and read) cost ~400 ns in this program against
 * ~50 ns for the tracepoint dispatch (bench/overhead.sh). A read's buffer
 * is where the syscall's arguments, still in the task's saved user
 * registers, say (read, readv, recvfrom, recvmsg; reads made for splice,
 * io_uring or recvmmsg are not looked at); a send's is in its message
 * (any syscall; sendfile and splice, which send pages rather than user
 * memory, are not looked at). The first bytes that moved (for PostgreSQL
 * also the last ones) are read with bpf_probe_read_user (text: HTTP
 * request lines and HTTP/RESP reply heads, with bpf_probe_read_user_str):
 *  - request side (server read, client write): a buffer that starts a
 *    request pushes {start time, endpoint hash, batch size} on the
 *    connection's FIFO (OBS_FIFO entries: pipelining-aware,
 *    never ping-pong). A read is timed by the socket's TCP clock (when
 *    its bytes arrived), a write by the clock when it returns: a server's
 *    request starts at its arrival, a client's after its own send
 *    (microseconds on loopback) and ends at the response's arrival.
 *  - response side: a buffer that starts a response (HTTP "HTTP/1.",
 *    any RESP reply type, a PG buffer that ENDS with ReadyForQuery) pops
 *    the oldest entry and records its duration. Nothing is read while no
 *    request is outstanding, and an HTTP/RESP head (16 bytes) is read
 *    onto the stack rather than into the task's scratch; so is a PG
 *    response, whole when it is at most TAIL bytes in one chunk (one
 *    read for its head and its tail), else its head and its tail apart.
 * Endpoint hashes: HTTP = method + path with numeric, hex (>= 8, with a
 * digit) and uuid segments hashed as "{id}" and the query string dropped
 * (agent/observe/httproute.c computes the same hash from the normalised
 * route); RESP = upper-cased command name; PostgreSQL = the query text as
 * sent with its literals masked (Q, or P's query; a B without P hashes the
 * statement name), which userspace groups by libpg_query fingerprint. The
 * mask only keeps the kernel's table small (pgbench -S sends a new literal
 * every query): digit runs not preceded by a letter, digit, '_' or '$' and
 * '...' strings hash as one '?'. It is not a normaliser: names, grouping
 * and statistics come from libpg_query's fingerprint of the text.
 *
 * Counted where. Every completed request lands in its endpoint's
 * statistics (log2 µs histogram, count, sum, errors, rows, max,
 * first/last seen) in the kernel, in obs_ep_table or obs_endpoints:
 * these counts are complete and never wake userspace. Individual
 * completions go to the ring buffer obs_events under a per-CPU token
 * bucket refilled to ev_per_sec once a second; fast requests may only use
 * the first three quarters of it, the last quarter is kept for requests
 * slower than slow_ns. What does not fit is dropped and counted in
 * obs_drops (per CPU). The first request of a new endpoint also sends a
 * text event (request head / query text, up to OBS_TEXT_MAX bytes) outside
 * the budget: there are only as many as endpoints; a lost one is asked for
 * again by userspace through obs_wanttext.
 *
 * What not. One response is recognised per syscall: a pipelined RESP batch
 * (one read holding N commands, counted up to the first 256 bytes) is
 * answered by one write and recorded as N samples of the batch time under
 * its first command. HTTP time ends at the write of the status line, not
 * the end of the body. No TLS (encrypted bytes carry no method), no HTTP/2,
 * no pipelining of more than OBS_FIFO requests (counted as fifo_full).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>
#include "hotpath/observe_events.h"

/* A typed, read-only view of a kernel pointer (inlined by the verifier:
 * no call). */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define NSEC_PER_SEC 1000000000ULL

#define FNV_OFF 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

#define PEEK 256                 /* head bytes examined (power of two) */
#define SCRATCH 1024             /* per-CPU scratch (power of two) */
#define TAIL 128                 /* tail bytes examined for PG (C + Z), power of two */
#define MAX_IOV 8                /* iovecs walked to find a buffer's tail */

const volatile __u64 slow_ns = 10000000;       /* 10 ms */
const volatile __u32 ev_per_sec = 2000;        /* request events per CPU per second */

/* Bumped by userspace whenever obs_watched changes: connections classified
 * before are classified again. */
__u32 watch_gen = 0;
/* Bumped by userspace when it asks for endpoint texts again (obs_known). */
__u32 text_gen = 0;
/* Where the saved user registers are, from the task's stack (task_regs()). */
__u64 regs_off = 0;
/* The sk_prot of TCP sockets without an upper-layer protocol (tcp_prot,
 * tcpv6_prot), learned from the first ones hp_obs_rx meets: a socket
 * with one of them has no ULP (kernel TLS, like every ULP, replaces
 * sk_prot), known from the socket's first line, which the stack has just
 * read, instead of icsk_ulp_ops's, which a read does not touch. */
__u64 plain_prot[2] = {};
/* Reads made in place (skb_read(), user_read()): what was learnt from
 * the traffic and how far that has got (struct obs_inplace). */
struct obs_inplace frag = {}, user = {};
/* These are read on every watched transfer. Declared together they
 * share one cache line of .bss (its variables keep their declaration
 * order); apart they took two, missed again after each request of a
 * server whose own work evicts them. */

/* One bit per port and direction (OBS_DIR_IN: local port, OBS_DIR_OUT:
 * remote port), mirrored by userspace from obs_watched: the test every
 * socket transfer of the host takes before any map lookup. */
__u64 watch_bits[2][65536 / 64] = {};

/* Inbound ports whose local callers are timed by the service's own socket
 * only ([service.NAME] ports watched without pid or cgroup, unless
 * [bpf] observe_local_callers): a client socket of this host to one of
 * them is classified OBS_PROTO_NONE once, and its later transfers stop
 * after the socket storage lookup. */
__u64 server_side_bits[65536 / 64] = {};

/* The PostgreSQL text walk's state: kept in a map value (the task's
 * scratch, or the connection for a head on the stack), whose contents the
 * verifier does not track, so the bpf_loop body converges instead of
 * being explored once per value of the previous byte. */
struct pg_hstate {
	__u64 h;
	__u8 prev, in_str, in_num, pad[5];
};

struct obs_fifo_ent {
	__u64 start_ns;
	__u64 ep_hash;
	__u32 n;
	__u32 pad;
};

/*
 * A connection's state. What every transfer reads or writes is in the
 * first 64 bytes (one cache line: a slot is 64-byte aligned), with the
 * memo of its protocol (HTTP's and PostgreSQL's share the room), then the
 * FIFO (a request's entry is written by its read and read by its
 * response), then the state of a PostgreSQL text walk (queries the memo
 * does not take): a transfer touches two lines.
 */
struct obs_conn {
	__u64 cookie;                /* obs_slots: the owner's socket cookie, 0 = free */
	union {                      /* a connection speaks one protocol */
		struct {
			/* http_request_head()'s memo: the last request
			 * line's first bytes up to and including the one
			 * that ended its path (memo_len <= 32, 0 = none),
			 * and their route hash. */
			__u64 memo[4];
			__u64 memo_hash;
		};
		struct {
			/* pg_request_head()'s shape memo (pg_shape()) */
			__u64 pgm_lit[2];    /* which of the head's 128 bytes were a numeric literal's digits,
					      * its last literal's not counted */
			__u64 pgm_shape;     /* pg_shape() of that head */
			__u64 pgm_hash;      /* its text's hash */
			__u8 pgm_end;        /* where its text's NUL is, 0 = none */
			__u8 pg_err;         /* ErrorResponse seen since the last ReadyForQuery */
			__u8 pgm_la;         /* where its last numeric literal starts, 0 = it has none */
			__u8 pgm_ll;         /* and how many digits that one has */
			__u8 pgm_miss;       /* queries in a row that missed it */
		};
	};
	__u32 gen;                   /* watch_gen when classified */
	__u32 send_end;              /* hp_obs_sendmsg: write_seq + left of the last send seen */
	__u16 service_id;            /* the agent's service index (< 256) */
	__u8 head;                   /* index of oldest, mod OBS_FIFO */
	__u8 len;
	__u8 dir;
	__u8 protocol;               /* as configured, or as sniffed when AUTO */
	__u8 memo_len;
	__u8 cfg_proto;              /* as configured when classified */
	/* hp_obs_rx: the sequence number after the bytes looked at, 0 = none
	 * yet (a read that starts before it takes bytes already seen: after a
	 * MSG_PEEK, or a small read of a buffer). Next to the FIFO's first
	 * entry, in the line a request touches. */
	__u32 recv_next;
	/* text_gen + 1 when the memo's endpoint (memo_hash, pgm_hash) was
	 * last found known (obs_known) under that generation, 0 = not since
	 * the memo was set: a request that takes the memo queues without
	 * obs_known's lookup, a line missed on every request of a server
	 * whose own work empties the caches between them. */
	__u32 memo_known;
	struct obs_fifo_ent q[OBS_FIFO];
	struct pg_hstate pg;         /* pg_request_head()'s walk */
} __attribute__((aligned(64)));

_Static_assert(__builtin_offsetof(struct obs_conn, recv_next) == 64,
	       "a transfer's fields in one cache line");
_Static_assert(__builtin_offsetof(struct obs_conn, q[1]) + sizeof(struct obs_fifo_ent) <= 128,
	       "the FIFO's first entries in the next");

/* What a connection is watched as (classify's answer). */
struct obs_class {
	__u32 service_id;
	__u8 dir;
	__u8 protocol;               /* OBS_PROTO_NONE: not watched */
};

/* Where a syscall's buffer is, read off the saved user registers. */
struct obs_pending {
	__u64 buf;                   /* buffer, iovec array or msghdr */
	__u64 len;                   /* buffer length or iovcnt */
	__u32 vec;                   /* VEC_* */
};

/* Keep the verifier's view of an index bounded: clang drops a mask it can
 * prove redundant, the verifier (tracking 32-bit moves loosely) cannot. */
#define IDX(x, mask) ({ __u64 i_ = (x); asm volatile("%0 &= " #mask : "+r"(i_)); i_; })

#define VEC_NONE 0
#define VEC_IOV 1
#define VEC_MSG 2

struct obs_scratch_buf {
	char b[SCRATCH];
	struct pg_hstate pg;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct obs_watch_key);
	__type(value, struct obs_watch);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} obs_watched SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct obs_ep_key);
	__type(value, struct obs_ep_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} obs_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, OBS_EP_SLOTS);
	__type(key, __u32);
	__type(value, struct obs_ep_slot);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} obs_ep_table SEC(".maps");

/*
 * Endpoints this CPU has seen exist lately, direct-mapped by hash: a hit
 * skips ensure_endpoint's two hash lookups, which every request would
 * otherwise pay to find the rare new endpoint. An entry holds the
 * text_gen it was filled under; userspace bumps text_gen when it asks for
 * a text again (obs_wanttext), which sends every endpoint back through
 * ensure_endpoint once.
 */
#define OBS_KNOWN 256
struct obs_known {
	struct {                     /* one cache line holds four: one miss a lookup */
		__u64 hash;
		__u32 sid;
		__u32 gen;
	} e[OBS_KNOWN];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct obs_known);
} obs_known SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct obs_drops);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} obs_drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct obs_ep_key);
	__type(value, __u32);
} obs_wanttext SEC(".maps");

/*
 * Per-connection state. Most connections keep it in obs_slots, a table
 * direct-mapped by the socket's cookie (a number the kernel gives a
 * socket once, unique for the host's uptime): the slot is found with a
 * mask and a load, and is the socket's while it holds its
 * cookie. bpf_sk_storage_get(), a helper call on every transfer, cost
 * 0.5% of nginx's core. A socket whose slot another live socket holds
 * keeps its state in the socket itself (obs_conns, socket-local storage:
 * freed with the socket); a slot is given back when its socket reaches
 * TCP_CLOSE (hp_obs_close), after which no transfer of it is looked at.
 *
 * conn_slots is set by the agent ([bpf] observe_conn_slots, a power of
 * two): slot_of() takes the cookie's low bits. 0: socket storage only.
 */
const volatile __u32 conn_slots = 1 << 14;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);  /* values start page-aligned: a slot on its cache lines */
	__uint(max_entries, 1 << 14);        /* the agent sets it: conn_slots (1 if 0) */
	__type(key, __u32);
	__type(value, struct obs_conn);
} obs_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct obs_conn);
} obs_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);  /* values start page-aligned: a bucket a line */
	__uint(max_entries, 1);              /* the agent sets it: possible CPUs */
	__type(key, __u32);
	__type(value, struct obs_bucket);
} obs_tokens SEC(".maps");

/*
 * Scratch space for the bytes a transfer moved, per task rather than per
 * CPU: tracing programs run with migration disabled but can be preempted,
 * and a program preempted on a CPU by the same program in another task
 * found its per-CPU buffer rewritten (seen under CPU load as queries
 * hashed from the wrong bytes).
 */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct obs_scratch_buf);
} obs_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} obs_events SEC(".maps");

/*
 * Wake the agent only once a batch has built up (or let its 100 ms timer
 * collect it): a wakeup per event made context switches most of the agent's
 * CPU under load (perf, pgbench -S at 10k tps), CPU taken from the services
 * it watches.
 */
#define OBS_RB_WAKE_BYTES (64 * 1024)

static __always_inline __u64 rb_flags(void)
{
	return bpf_ringbuf_query(&obs_events, BPF_RB_AVAIL_DATA) >= OBS_RB_WAKE_BYTES
		       ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

static __always_inline struct obs_drops *drops(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&obs_drops, &zero);
}

#define DROP(field) do { struct obs_drops *d_ = drops(); if (d_) d_->field++; } while (0)

/* ---- socket -> connection --------------------------------------------- */

static __always_inline int port_bit(__u32 dir, __u16 port)
{
	return (watch_bits[dir & 1][(port >> 6) & 1023] >> (port & 63)) & 1;
}

static __always_inline int server_side(__u16 port)
{
	return (server_side_bits[(port >> 6) & 1023] >> (port & 63)) & 1;
}

/* Is the other end of this connection on this host? A loopback address,
 * or the same address as ours (what a connection to one of the host's own
 * addresses gets as its source). */
static __always_inline int peer_is_local(struct sock *sk)
{
	__u16 family = sk->__sk_common.skc_family;

	if (family == AF_INET) {
		__u32 d = sk->__sk_common.skc_daddr;

		return (bpf_ntohl(d) >> 24) == 127 || d == sk->__sk_common.skc_rcv_saddr;
	}
	if (family == AF_INET6) {
		__u32 d0 = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[0];
		__u32 d1 = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[1];
		__u32 d2 = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[2];
		__u32 d3 = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[3];

		if (!d0 && !d1 && ((!d2 && d3 == bpf_htonl(1)) ||
				   (d2 == bpf_htonl(0xffff) && (bpf_ntohl(d3) >> 24) == 127)))
			return 1;
		return d0 == sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[0] &&
		       d1 == sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[1] &&
		       d2 == sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[2] &&
		       d3 == sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[3];
	}
	return 0;
}

/*
 * What a watched socket is: service, direction and protocol from
 * obs_watched, or OBS_PROTO_NONE when the service is restricted to another
 * pid or cgroup, or when this is a local caller of a service whose own
 * socket times its requests (server_side_bits).
 */
static __noinline void classify(__u16 lport, __u16 rport, int local, struct obs_class *c)
{
	struct obs_watch_key wk = { .port = lport, .dir = OBS_DIR_IN };
	struct obs_watch *w = NULL;

	c->protocol = OBS_PROTO_NONE;
	if (port_bit(OBS_DIR_IN, lport))
		w = bpf_map_lookup_elem(&obs_watched, &wk);
	if (!w && port_bit(OBS_DIR_OUT, rport)) {
		if (local && server_side(rport))
			return;
		wk.port = rport;
		wk.dir = OBS_DIR_OUT;
		w = bpf_map_lookup_elem(&obs_watched, &wk);
	}
	if (!w)
		return;
	if (w->pid && w->pid != bpf_get_current_pid_tgid() >> 32)
		return;
	if (w->cgroup_id && w->cgroup_id != bpf_get_current_ancestor_cgroup_id(w->cgroup_level))
		return;
	c->dir = (__u8)wk.dir;
	c->service_id = w->service_id;
	c->protocol = (__u8)w->protocol;
}

/* ---- buffers: head and tail of what moved -------------------------------- */

struct obs_iov_view {
	const struct sk_buff *skb;   /* a read seen in the socket buffer (hp_obs_rx): the
				      * bytes are at skb_off there; else user memory */
	__u64 skb_off;
	__u64 iov;                   /* user address of the iovec array, 0 = plain */
	__u64 cnt;
	__u64 base0;                 /* first chunk */
	__u64 len0;
	__u64 moved;                 /* bytes the syscall transferred */
	__u64 tail_base;             /* the last chunk's moved bytes, when the caller */
	__u64 tail_len;              /* found them (0: from iov or base0) */
};

static __always_inline int view_init(const struct obs_pending *st, struct obs_iov_view *v)
{
	struct iovec first = {};

	v->skb = NULL;
	v->skb_off = 0;
	v->iov = 0;
	v->cnt = 1;
	v->moved = 0;
	v->tail_len = 0;
	v->base0 = st->buf;
	v->len0 = st->len;
	if (st->vec == VEC_NONE)
		return 0;
	if (st->vec == VEC_MSG) {
		struct user_msghdr mh = {};

		if (bpf_probe_read_user(&mh, sizeof(mh), (void *)st->buf))
			return -1;
		v->iov = (__u64)mh.msg_iov;
		v->cnt = mh.msg_iovlen;
	} else {
		v->iov = st->buf;
		v->cnt = st->len;
	}
	if (!v->iov || !v->cnt)
		return -1;
	if (bpf_probe_read_user(&first, sizeof(first), (void *)v->iov))
		return -1;
	v->base0 = (__u64)first.iov_base;
	v->len0 = first.iov_len;
	return 0;
}

extern int bpf_dynptr_from_skb(struct __sk_buff *s, __u64 flags,
			       struct bpf_dynptr *ptr__uninit) __ksym __weak;

/*
 * Socket buffers read in place. A read through a dynptr is a kfunc call
 * and a helper call into skb_copy_bits(): 0.7-1.2% of nginx's throughput
 * and 0.2-0.5% of PostgreSQL's under load, side by side
 * (docs/benchmarks.md), for
 * bytes that sit in kernel memory. Inline loads through a typed read-only
 * view (bpf_rdonly_cast(): the JIT's fault-checked loads, no call) read
 * them where they are: the linear part at skb->data; a page fragment at
 * its page's address in the kernel's direct map. That address is
 * page_offset_base + (page - vmemmap_base) / sizeof(struct page) *
 * PAGE_SIZE, which on x86-64 (struct page of 64 bytes, pages of 4 KiB) is
 * frag.base + page * 64, frag.base a constant of the kernel's memory layout.
 * The layout is randomised (KASLR) and its two bases are not symbols a
 * program can read, so frag.base is learnt from the traffic: both bases are
 * aligned to 1 GiB; a socket buffer's head is itself in the direct map,
 * at most ram_span (the top of RAM) above page_offset_base; a page's
 * struct page at most ram_span / 64 above vmemmap_base. The first reads
 * through the dynptr (OBS_FRAG_LEARN) try the few candidates that leaves
 * against the bytes the dynptr read (a bad guess faults to 0: the loads
 * are fault-checked); the one that matches is then compared on
 * FRAG_CHECKS later reads of other buffers (OBS_FRAG_CHECK) before reads go
 * in place (OBS_FRAG_ON). No match in FRAG_TRIES searches, or one mismatch:
 * OBS_FRAG_OFF, every read through the dynptr, as before. Only x86-64;
 * ram_span = 0 (the agent could not read /proc/iomem) turns it off.
 */
#define FRAG_CHECKS 64
#define FRAG_TRIES 16
#define FRAG_CANDIDATES 4096
#define GIB (1ULL << 30)
#define INPLACE_MAX 256          /* longest read taken in place */

const volatile __u64 ram_span = 0;     /* top of RAM, bytes, to 1 GiB; both readers; 0 = off */

/* 8 bytes at a kernel address, 0 if it faults: an inline load through a
 * read-only view (linux_mib: an array of unsigned longs at offset 0). */
static __always_inline __u64 kload(__u64 a)
{
	const struct linux_mib *w = bpf_rdonly_cast((void *)a, bpf_core_type_id_kernel(struct linux_mib));

	return w->mibs[0];
}

/* n (<= max, a constant) bytes at kernel address a into dst, in 8-byte
 * loads through a view: dst takes n rounded up to 8. A loop, not
 * max / 8 copies of its body: 2.4 KiB less code in skb_read(). */
static __always_inline void kcopy(void *dst, __u64 a, __u32 n, const __u32 max)
{
	__u64 *d = dst;

#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < max / 8; i++) {
		if (i * 8 >= n)
			break;
		d[i] = kload(a + i * 8);
	}
}

/* A check of what was learnt against a read through a call: FRAG_CHECKS
 * in a row put reads in place, one mismatch turns them off for good. */
static __always_inline void inplace_checked(struct obs_inplace *p, int ok)
{
	if (!ok)
		p->state = OBS_FRAG_OFF;
	else if (++p->count >= FRAG_CHECKS)
		p->state = OBS_FRAG_ON;
}

/* A search's outcome: a base to check, or one more failure of
 * FRAG_TRIES. */
static __always_inline void inplace_searched(struct obs_inplace *p, __u64 found)
{
	if (found) {
		p->base = found;
		p->count = 0;
		p->state = OBS_FRAG_CHECK;
	} else if (++p->count >= FRAG_TRIES) {
		p->state = OBS_FRAG_OFF;
	}
}

/* Where n bytes from byte `off` of a socket buffer's data are, all in one
 * piece: the linear part's kernel address; or (*page set to the struct
 * page's address) a fragment's page * 64 + the bytes' offset in it,
 * frag.base short of their address; 0 if they span pieces or are not host
 * memory (the first 4 fragments are looked at). */
static __always_inline __u64 skb_where(const struct sk_buff *skb, __u64 off, __u32 n, __u64 *page)
{
	__u32 headlen = skb->len - skb->data_len;
	const struct skb_shared_info *sh;
	__u64 at = 0;
	__u32 nr;

	if (off + n <= headlen)
		return (__u64)skb->data + off;
	if (off < headlen)
		return 0;
	off -= headlen;
	sh = bpf_rdonly_cast(skb->head + skb->end, bpf_core_type_id_kernel(struct skb_shared_info));
	nr = sh->nr_frags;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u32 fl = sh->frags[i].len;

		if (i < nr && !at && off < fl) {
			__u64 nm = sh->frags[i].netmem;

			/* bit 0: a net_iov (device memory), not a page */
			at = off + n <= fl && !(nm & 1) ? nm * 64 + sh->frags[i].offset + off : 1;
			*page = nm;
		}
		if (!at)
			off -= fl;
	}
	return at == 1 ? 0 : at;
}

struct frag_search {
	__u64 at, pob0, vmb0, want, found;
	__u32 nvmb;
};

static long frag_try(__u64 i, struct frag_search *s)
{
	__u64 pob = s->pob0 - i / s->nvmb * GIB, vmb = s->vmb0 - i % s->nvmb * GIB;

	if (kload(pob - vmb * 64 + s->at) != s->want)
		return 0;
	s->found = pob - vmb * 64;
	return 1;
}

/* A read through the dynptr put the 8 bytes `want` at fragment place `at`
 * of struct page `page` (skb_where()): learn frag.base from them, or check
 * it. Not inlined: run by the first reads only. */
static __noinline void frag_learn(const struct sk_buff *skb, __u64 page, __u64 at, __u64 want)
{
	struct frag_search s = { .at = at, .want = want };
	__u64 span = ram_span, npob;

	if (!want)      /* what a fault reads */
		return;
	if (frag.state == OBS_FRAG_CHECK) {
		inplace_checked(&frag, kload(frag.base + at) == want);
		return;
	}
	npob = span / GIB + 1;
	s.nvmb = (__u32)(span / 64 / GIB + 1);
	if (!span || bpf_core_type_size(struct page) != 64 || npob * s.nvmb > FRAG_CANDIDATES) {
		frag.state = OBS_FRAG_OFF;
		return;
	}
	s.pob0 = (__u64)skb->head & ~(GIB - 1);
	s.vmb0 = page & ~(GIB - 1);
	bpf_loop((__u32)(npob * s.nvmb), frag_try, &s, 0);
	inplace_searched(&frag, s.found);
}

/*
 * User memory read in place. A send's bytes are in the sender's memory,
 * which bpf_probe_read_user() reads with a call (its user-access checks
 * and copy routine): the response's read, ~1.4 points of nginx's
 * throughput. Every user page is also in the kernel's direct map, at
 * page_offset_base + its physical address, which the task's page tables
 * give: four loads (five with 5-level paging) of page-table entries
 * through the direct map, then the bytes, all inline through read-only
 * views. page_offset_base is learnt as frag.base is: it is 1 GiB aligned
 * and at most ram_span below the task's own top-level table (mm->pgd,
 * itself in the direct map); the first reads through the call try those
 * candidates against the bytes the call read, the one that matches is
 * compared on FRAG_CHECKS later reads, and a mismatch turns it off for
 * good (OBS_FRAG_* in user.state). Only x86-64, where the agent sets
 * user_levels.
 */
const volatile __u32 user_levels = 0;    /* page-table levels: 4 or 5; 0 = off */

#define PTE_ADDR 0x000ffffffffff000ULL   /* a page-table entry's physical address */
#define PTE_PRESENT 1ULL
#define PTE_HUGE 0x80ULL                 /* PSE: a 1 GiB (PUD) or 2 MiB (PMD) page */
#define MIB2 (1ULL << 21)

/* The direct-map address of user address u, through the page tables
 * at pgd, were the direct map at pob; 0 if a level is not present. */
static __always_inline __u64 user_addr(__u64 pob, __u64 pgd, __u64 u)
{
	__u64 e, t = pgd;

	if (user_levels == 5) {
		e = kload(t + (u >> 48 & 511) * 8);
		if (!(e & PTE_PRESENT))
			return 0;
		t = pob + (e & PTE_ADDR);
	}
	e = kload(t + (u >> 39 & 511) * 8);
	if (!(e & PTE_PRESENT))
		return 0;
	e = kload(pob + (e & PTE_ADDR) + (u >> 30 & 511) * 8);
	if (!(e & PTE_PRESENT))
		return 0;
	if (e & PTE_HUGE)
		return pob + (e & PTE_ADDR & ~(GIB - 1)) + (u & (GIB - 1));
	e = kload(pob + (e & PTE_ADDR) + (u >> 21 & 511) * 8);
	if (!(e & PTE_PRESENT))
		return 0;
	if (e & PTE_HUGE)
		return pob + (e & PTE_ADDR & ~(MIB2 - 1)) + (u & (MIB2 - 1));
	e = kload(pob + (e & PTE_ADDR) + (u >> 12 & 511) * 8);
	if (!(e & PTE_PRESENT))
		return 0;
	return pob + (e & PTE_ADDR) + (u & 4095);
}

struct pob_search {
	__u64 pgd, u, top, want, found;
};

static long pob_try(__u64 i, struct pob_search *s)
{
	__u64 a = user_addr(s->top - i * GIB, s->pgd, s->u);

	if (!a || kload(a) != s->want)
		return 0;
	s->found = s->top - i * GIB;
	return 1;
}

/* A user read through the call put the 8 bytes `want` at u (within one
 * page): learn user.base from them, or check it. */
static __noinline void user_learn(__u64 pgd, __u64 u, __u64 want)
{
	struct pob_search s = { .pgd = pgd, .u = u, .want = want };
	__u64 npob = ram_span / GIB + 1, a;

	if (!want)      /* what a fault reads */
		return;
	if (user.state == OBS_FRAG_CHECK) {
		a = user_addr(user.base, pgd, u);
		inplace_checked(&user, a && kload(a) == want);
		return;
	}
	if (!ram_span || npob > FRAG_CANDIDATES) {
		user.state = OBS_FRAG_OFF;
		return;
	}
	s.top = pgd & ~(GIB - 1);
	bpf_loop((__u32)npob, pob_try, &s, 0);
	inplace_searched(&user, s.found);
}

#define USER_INPLACE 128

/*
 * The walk's answers, remembered: a software TLB. A server sends from the
 * same few buffers (a PostgreSQL backend's send buffer, nginx's pools),
 * and a walk is a chain of six loads that miss in a busy server
 * (task->mm, mm->pgd, then an entry a level, on lines the hardware's
 * walker has no need to touch while its TLB holds the page): ~70% of
 * user_read()'s samples in nginx's twins. An entry holds a user page's
 * direct-map address for one address space (its context id, which x86
 * never hands out twice) at one TLB generation of it (mm->context
 * .tlb_gen). The kernel moves the generation on with every change to the
 * address space's page tables that a TLB must let go of, before the
 * pages concerned are freed: an unmap, a migration, copy on write,
 * reclaim, a huge page made or split. (Not with INVLPGB, whose broadcast
 * flushes leave it as it was after a batched unmap: the agent turns the
 * table off there, xlat_on.) So an entry is used only while the
 * translation it was made from could still be in a TLB, and a hit costs
 * the line of mm->context (which every switch to the task reads) and the
 * entry's. Per CPU, direct-mapped; a tracepoint's program runs with
 * preemption disabled and none of these runs in an interrupt, so an
 * entry is never written by two at once.
 */
#define XLAT_WAYS 32

const volatile __u32 xlat_on = 0;        /* the agent's: 0 where the CPU has INVLPGB */

struct obs_xlat {
	struct {
		__u64 ctx_id;        /* 0 = empty (x86 starts them at 1) */
		__u64 tlb_gen;
		__u64 upage;         /* user address, page-aligned */
		__u64 kpage;         /* its direct-map address */
	} e[XLAT_WAYS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct obs_xlat);
} obs_xlat SEC(".maps");

/* n (<= USER_INPLACE) bytes of the current task's memory at u into dst,
 * in place where it can (above), else with the call: as a string (text:
 * dst has room for n + 1; stops at a NUL) or as bytes. Returns how many
 * bytes it put there, 0 if none. */
static __noinline long user_read(void *dst, __u32 n, __u64 u, int text)
{
	__u32 state = user.state, zero = 0, way = 0;
	__u64 pgd = 0, a = 0, ctx = 0, gen = 0, upage = u & ~4095ULL;
	/* in place: learnt, and the bytes, rounded up to words, in one page */
	int in_page = state == OBS_FRAG_ON && (u & 4095) + ((n + 7) & ~7U) <= 4096;
	struct obs_xlat *x = NULL;
	long r;

#if defined(__TARGET_ARCH_x86)
	if (state != OBS_FRAG_OFF && user_levels && n && n <= USER_INPLACE) {
		struct mm_struct *mm = bpf_get_current_task_btf()->mm;
		const struct linux_mib *mv;

		/* remembered */
		if (xlat_on && in_page) {
			ctx = mm->context.ctx_id;       /* 0 without an mm (a load that faults) */
			gen = mm->context.tlb_gen.counter;
			way = (__u32)((upage >> 12) ^ (upage >> 21) ^ ctx) & (XLAT_WAYS - 1);
			x = ctx ? bpf_map_lookup_elem(&obs_xlat, &zero) : NULL;
			if (x && x->e[way].ctx_id == ctx && x->e[way].tlb_gen == gen &&
			    x->e[way].upage == upage) {
				kcopy(dst, x->e[way].kpage + (u & 4095), n, USER_INPLACE);
				return n;
			}
		}
		/* mm->pgd loaded as a number (through an array view of the
		 * mm_struct), not as a typed pointer, which refuses arithmetic */
		mv = bpf_rdonly_cast(mm, bpf_core_type_id_kernel(struct linux_mib));
		pgd = mv->mibs[bpf_core_field_offset(struct mm_struct, pgd) / 8];
	}
	if (pgd && in_page)
		a = user_addr(user.base, pgd, u);
	if (a) {
		if (x) {
			x->e[way].ctx_id = ctx;
			x->e[way].tlb_gen = gen;
			x->e[way].upage = upage;
			x->e[way].kpage = a - (u & 4095);
		}
		kcopy(dst, a, n, USER_INPLACE);
		return n;
	}
#endif
	if (text) {
		r = bpf_probe_read_user_str(dst, n + 1, (void *)u);
		r = r < 1 ? 0 : r - 1;
	} else {
		r = bpf_probe_read_user(dst, n, (void *)u) ? 0 : n;
	}
	if (pgd && state < OBS_FRAG_ON && r >= 8 && (u & 4095) <= 4096 - 8)
		user_learn(pgd, u, *(const __u64 *)dst);
	return r;
}

/* n bytes of a socket-buffer view from byte `at` of its transfer, in
 * place where it can (above), else through skb_copy_bits. Not inlined:
 * the dynptr's stack slot must end with the read (the verifier refuses a
 * later write over a live dynptr, and the compiler would reuse the slot
 * for the caller's next buffer). */
static __noinline long skb_read(const struct obs_iov_view *v, void *dst, __u32 n, __u64 at)
{
	const struct sk_buff *skb = v->skb;
	__u32 state = frag.state;
	struct bpf_dynptr p;
	__u64 a = 0, page = 0, va;
	long r;

#if defined(__TARGET_ARCH_x86)
	if (state != OBS_FRAG_OFF && n && n <= INPLACE_MAX)
		a = skb_where(skb, v->skb_off + at, n, &page);
	/* in place: the linear part, or a fragment once frag.base is known; the
	 * last word may run past the bytes, but not into another page */
	va = !page ? a : a && state == OBS_FRAG_ON ? a + frag.base : 0;
	if (va && !(((va + n - 1) ^ (va + ((n + 7) & ~7U) - 1)) & ~4095ULL)) {
		kcopy(dst, va, n, INPLACE_MAX);
		return 0;
	}
#endif
	if (bpf_dynptr_from_skb((struct __sk_buff *)skb, 0, &p))
		return -1;
	r = bpf_dynptr_read(dst, n, &p, v->skb_off + at, 0);
	if (!r && a && page && n >= 8 && state < OBS_FRAG_ON)
		frag_learn(skb, page, a, *(const __u64 *)dst);
	return r;
}

#define STAGE 128                /* a short head goes through the stack (power of two) */

/*
 * Copy up to `want` (<= SCRATCH) head bytes of a `moved`-byte transfer into
 * s->b. Returns the number copied. bpf_probe_read_user() into a map value
 * pays the kernel's hardened-usercopy check of a heap object on every call
 * (__check_object_size, __virt_addr_valid: more than the copy of a short
 * request); into the stack it is a bounds test. So a head of up to STAGE
 * bytes is read onto this function's stack and copied on with
 * bpf_probe_read_kernel(), which checks nothing of the kind; a longer one
 * is read in place. Not inlined: the stage is off the stack while the
 * caller goes on to hash (the frames of a call chain share 512 bytes).
 */
static __noinline __u32 read_head(const struct obs_iov_view *v, __u64 moved,
				  struct obs_scratch_buf *s, __u32 want)
{
	__u64 n = v->len0 < moved ? v->len0 : moved;
	char stage[STAGE];

	if (n > want)
		n = want;
	n &= SCRATCH - 1;
	if (!n)
		return 0;
	if (v->skb)     /* kernel memory: no usercopy check to avoid */
		return skb_read(v, s->b, (__u32)n, 0) ? 0 : (__u32)n;
	if (n <= STAGE) {
		n = IDX(n, 255);
		if (!n || n > STAGE || bpf_probe_read_user(stage, n, (void *)v->base0) ||
		    bpf_probe_read_kernel(s->b, n, stage))
			return 0;
		return (__u32)n;
	}
	if (bpf_probe_read_user(s->b, n, (void *)v->base0))
		return 0;
	return (__u32)n;
}

/* Copy the last up to TAIL bytes of the transfer into out; returns how many
 * (they must sit in one iovec chunk; fewer if the last chunk is short). */
static __always_inline __u32 read_tail(const struct obs_iov_view *v, __u64 moved, char *out)
{
	__u64 base = v->base0, len = v->len0, n;

	if (v->skb) {
		n = moved < TAIL ? moved : TAIL;
		if (!n || n > TAIL || skb_read(v, out, (__u32)n, moved - n))
			return 0;
		return (__u32)n;
	}
	if (v->tail_len) {
		/* found by the caller (a send's kernel copy of the iovecs) */
		base = v->tail_base;
		len = v->tail_len;
		goto found;
	}
	if (!v->cnt)
		return 0;
	if (v->iov) {
		__u64 left = moved;

		for (int i = 0; i < MAX_IOV; i++) {
			struct iovec io = {};

			if (i >= v->cnt)
				return 0;
			if (bpf_probe_read_user(&io, sizeof(io), (void *)(v->iov + i * sizeof(io))))
				return 0;
			if (io.iov_len >= left) {
				base = (__u64)io.iov_base;
				len = left;
				goto found;
			}
			left -= io.iov_len;
		}
		return 0;
	}
	len = moved;
found:
	n = len < TAIL ? len : TAIL;
	if (!n || n > TAIL)
		return 0;
	if (bpf_probe_read_user(out, n, (void *)(base + len - n)))
		return 0;
	return (__u32)n;
}

/* ---- protocol recognisers on the first bytes ----------------------------- */

static __always_inline __u64 fnv(__u64 h, __u8 c)
{
	return (h ^ c) * FNV_PRIME;
}

/* Length of the HTTP method at b (0 if not a request line). */
static __always_inline __u32 http_method_len(const char *b, __u32 n)
{
	if (n < 5)
		return 0;
	if (b[0] == 'G' && b[1] == 'E' && b[2] == 'T' && b[3] == ' ')
		return 3;
	if (b[0] == 'P' && b[1] == 'U' && b[2] == 'T' && b[3] == ' ')
		return 3;
	if (b[0] == 'P' && b[1] == 'O' && b[2] == 'S' && b[3] == 'T' && b[4] == ' ')
		return 4;
	if (b[0] == 'H' && b[1] == 'E' && b[2] == 'A' && b[3] == 'D' && b[4] == ' ')
		return 4;
	if (n >= 6 && b[0] == 'P' && b[1] == 'A' && b[2] == 'T' && b[3] == 'C' && b[4] == 'H' && b[5] == ' ')
		return 5;
	if (n >= 7 && b[0] == 'D' && b[1] == 'E' && b[2] == 'L' && b[3] == 'E' && b[4] == 'T' &&
	    b[5] == 'E' && b[6] == ' ')
		return 6;
	if (n >= 8 && b[0] == 'O' && b[1] == 'P' && b[2] == 'T' && b[3] == 'I' && b[4] == 'O' &&
	    b[5] == 'N' && b[6] == 'S' && b[7] == ' ')
		return 7;
	return 0;
}

/*
 * Comparisons as arithmetic (1 or 0), for values below 2^32: the route
 * walk's per-byte classification and segment test take no branch, so the
 * CPU has none to mispredict on path bytes and the verifier no paths to
 * multiply through the bpf_loop body (a branch it can decide marks the
 * walk's counters precise, and the body is then checked once per value
 * they take). The empty asm keeps clang from folding them back into
 * compares, which the BPF backend turns into branches.
 */
static __always_inline __u64 opaque(__u64 x)
{
	asm volatile("" : "+r"(x));
	return x;
}
#define EQ(a, b) ((opaque((__u64)((a) ^ (b))) - 1) >> 63)
#define LT(a, b) ((opaque((__u64)(a)) - (__u64)(b)) >> 63)
#define ID_SEG (((((((FNV_OFF ^ '{') * FNV_PRIME) ^ 'i') * FNV_PRIME) ^ 'd') * FNV_PRIME ^ '}') * FNV_PRIME)

static __always_inline __u64 seg_mix(__u64 h, __u64 seg, __u32 len, __u32 digits, __u32 hex,
				     __u32 dashes)
{
	/* "{id}" hashed as a segment: numeric, long hex with a digit, uuid;
	 * an empty segment (len 0) leaves h as it is. */
	__u64 some = 1 - EQ(len, 0), has_digit = 1 - EQ(digits, 0);
	__u64 id = EQ(digits, len) |
		   ((1 - LT(len, 8)) & EQ(hex, len) & has_digit) |
		   (EQ(len, 36) & EQ(dashes, 4) & EQ(hex + dashes, len) & has_digit);
	__u64 mixed;

	seg ^= (seg ^ ID_SEG) & -id;
	mixed = (h ^ seg) * FNV_PRIME;
	return h ^ ((h ^ mixed) & -some);
}

/* Route hash of "METHOD /path..." in b[0..n). Mirrors route_hash().
 * The path walk runs under bpf_loop so the verifier checks its body once;
 * one callback per buffer kind (the scratch, the stack head of
 * http_request_head()) around one route_word(), which differ only in the
 * mask that bounds the index. */
struct route_walk {
	const char *b;
	__u64 h, seg;
	__u32 n, at, len, digits, hex, dashes, stopped, stop_at;
};

/* One path byte; 1 = the path ended at it. */
static __always_inline long route_byte(struct route_walk *w, __u8 c)
{
	if (c == ' ' || c == '?' || c == '#' || c == '\r' || c == '\n' || c == 0) {
		w->stopped = 1;
		return 1;
	}
	if (c == '/') {
		w->h = seg_mix(w->h, w->seg, w->len, w->digits, w->hex, w->dashes);
		w->h = fnv(w->h, '/');
		w->seg = FNV_OFF;
		w->len = w->digits = w->hex = w->dashes = 0;
		return 0;
	}
	{
		__u64 digit = LT((__u8)(c - '0'), 10);

		w->seg = fnv(w->seg, c);
		w->len++;
		w->digits += digit;
		w->hex += digit | LT((__u8)((c | 0x20) - 'a'), 6);
		w->dashes += EQ(c, '-');
	}
	return 0;
}

/* Eight path bytes a bpf_loop call (each call and return costs a
 * mispredicted return here, see complete()); `mask` bounds the index into
 * the buffer for the verifier. */
static __always_inline long route_word(struct route_walk *w, __u32 i, __u32 mask)
{
	__u32 at = w->at + i * 8;

	for (int k = 0; k < 8; k++) {
		if (at + k >= w->n)
			return 1;
		if (route_byte(w, w->b[(at + k) & mask])) {
			w->stop_at = at + k;
			return 1;
		}
	}
	return 0;
}

static long route_step(__u32 i, void *arg)
{
	return route_word(arg, i, SCRATCH - 1);
}

#define HTTP_HEAD 128            /* request-line bytes read onto the stack (power of two) */

static long route_step_head(__u32 i, void *arg)
{
	return route_word(arg, i, HTTP_HEAD - 1);
}

static __always_inline void route_begin(struct route_walk *w, const char *b, __u32 n, __u32 mlen)
{
	__u32 i;

	w->b = b;
	w->h = w->seg = FNV_OFF;
	w->n = n;
	for (i = 0; i < 8; i++) {
		if (i >= mlen)
			break;
		w->h = fnv(w->h, b[i]);
	}
	w->h = fnv(w->h, ' ');
	w->at = mlen + 1;
}

static __noinline __u64 http_route_hash(struct obs_scratch_buf *s, __u32 n, __u32 mlen)
{
	struct route_walk w = {};

	route_begin(&w, s->b, n, mlen);
	bpf_loop(OBS_PATH_MAX / 8, route_step, &w, 0);
	return seg_mix(w.h, w.seg, w.len, w.digits, w.hex, w.dashes);
}

/* Byte walks under bpf_loop: FNV until a stop byte, find a byte, count
 * "\n*" (RESP frames). */
struct byte_walk {
	struct obs_scratch_buf *s;
	__u64 h;
	__u32 n, at, count, found;
	__u8 want, resp;             /* resp: stop at CR/SP/LF and upper-case */
	__u8 pad[6];
};

static long hash_step(__u32 i, void *arg)
{
	struct byte_walk *w = arg;
	__u32 at = w->at + i;
	__u8 c;

	if (at >= w->n)
		return 1;
	c = w->s->b[at & (SCRATCH - 1)];
	if (!c)
		return 1;
	if (w->resp) {
		if (c == '\r' || c == ' ' || c == '\n')
			return 1;
		if (c >= 'a' && c <= 'z')
			c -= 'a' - 'A';
	}
	w->h = fnv(w->h, c);
	w->count++;
	return 0;
}

static __always_inline int is_ident(__u8 c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       c == '_' || c == '$' || c >= 0x80;
}

/* FNV of SQL text with '...' strings and free-standing digit runs as one
 * '?' each (see the header: a grouping key, not a normaliser). One byte;
 * 1 = stop (end of text). */
static __always_inline int pg_byte(struct pg_hstate *s, __u8 c)
{
	if (!c)
		return 1;
	if (s->in_str) {
		if (c == '\'')
			s->in_str = 0;
		return 0;
	}
	if (c == '\'') {
		s->in_str = 1;
		s->in_num = 0;
		s->h = fnv(s->h, '?');
		s->prev = c;
		return 0;
	}
	if (c >= '0' && c <= '9') {
		if (s->in_num)
			return 0;
		if (!is_ident(s->prev)) {
			s->in_num = 1;
			s->h = fnv(s->h, '?');
			return 0;
		}
	} else {
		s->in_num = 0;
	}
	s->h = fnv(s->h, c);
	s->prev = c;
	return 0;
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
#define LOWS 0x7f7f7f7f7f7f7f7fULL

/* SWAR tests on 8 ASCII bytes (Anderson's bit hacks): any byte zero, any
 * byte strictly between m and n. */
#define HAS_ZERO(x) (((x) - ONES) & ~(x) & HIGHS)
#define HAS_BETWEEN(x, m, n) \
	((ONES * (127 + (n)) - ((x) & LOWS)) & ~(x) & (((x) & LOWS) + ONES * (127 - (m))) & HIGHS)

/* The eight bytes at b[a] (a bounded by the caller, b 8-byte aligned with
 * room for a word past a), from the two aligned words around them: one
 * load each, where a copy from an unaligned address is eight byte loads
 * (BPF wants its stack accesses aligned). */
static __always_inline __u64 word_at(const char *b, __u32 a)
{
	const __u64 *p = (const __u64 *)&b[a & ~7];
	__u32 sh = (a & 7) * 8;
	__u64 x = p[0] >> sh;

	if (sh)
		x |= p[1] << (64 - sh);
	return x;
}

/* A word's bytes 0..last (all eight from last = 7 on) as a mask. */
static __always_inline __u64 bytes_upto(__u32 last)
{
	return last < 7 ? (1ULL << ((last + 1) * 8)) - 1 : ~0ULL;
}

/* The text walk over a buffer: the scratch or a stack head, 8-byte aligned
 * (pg_word() reads it a word at a time). */
struct pg_walk {
	const char *b;
	struct pg_hstate *st;
	__u32 n, at, ended;
	__u32 end;                   /* where the text's NUL is, once ended */
	__u64 lit[2];                /* positions (< 128) of digits hashed as a literal */
	__u32 lit_at, lit_end;       /* the last of those runs: [lit_at, lit_end) */
	__u32 str;                   /* a '...' string was seen */
};

/*
 * Eight bytes a step: a word of plain ASCII without digits, quotes or the
 * terminating NUL (most of a query's text) is hashed in one go, the rest
 * byte by byte; either way the hash is FNV over the same masked bytes, so
 * it does not depend on where words start. `mask` (a power of two less
 * one) bounds the index for the verifier; the buffer has 8 bytes of room
 * past it for the word read.
 */
static __always_inline long pg_word(struct pg_walk *w, __u32 i, __u32 mask)
{
	struct pg_hstate *s = w->st;
	__u32 at = w->at + i * 8;
	__u64 x;

	if (at >= w->n)
		return 1;
	x = word_at(w->b, at & mask);
	if (at + 8 <= w->n && !s->in_str && !(x & HIGHS) && !HAS_ZERO(x) &&
	    !HAS_ZERO(x ^ (ONES * '\'')) && !HAS_BETWEEN(x, '0' - 1, '9' + 1)) {
		__u64 h = s->h;

		for (int k = 0; k < 8; k++)
			h = fnv(h, (__u8)(x >> (8 * k)));
		s->h = h;
		s->in_num = 0;
		s->prev = (__u8)(x >> 56);
		return 0;
	}
	for (int k = 0; k < 8; k++) {
		__u32 p = at + k;

		if (p >= w->n)
			return 1;
		if (pg_byte(s, w->b[p & mask])) {
			w->ended = 1;
			w->end = p;
			return 1;
		}
		/* for the shape memo (positions past 127 never make one) */
		if (s->in_num) {
			w->lit[(p >> 6) & 1] |= 1ULL << (p & 63);
			if (p != w->lit_end)
				w->lit_at = p;
			w->lit_end = p + 1;
		}
		w->str |= s->in_str;
	}
	return 0;
}

static long pg_step(__u32 i, void *arg)
{
	return pg_word(arg, i, SCRATCH - 1);
}

#define PG_HEAD 128              /* query bytes read onto the stack (power of two) */

static long pg_step_head(__u32 i, void *arg)
{
	return pg_word(arg, i, PG_HEAD - 1);
}

static __always_inline void pg_walk_begin(struct pg_walk *w, struct pg_hstate *st, const char *b,
					  __u32 n, __u32 at)
{
	w->b = b;
	w->st = st;
	w->n = n;
	w->at = at;
	w->ended = 0;
	w->end = 0;
	w->lit[0] = w->lit[1] = 0;
	w->lit_at = w->lit_end = 0;
	w->str = 0;
	st->h = FNV_OFF;
	st->prev = ' ';
	st->in_str = st->in_num = 0;
}

static long find_step(__u32 i, void *arg)
{
	struct byte_walk *w = arg;
	__u32 at = w->at + i;

	if (at >= w->n)
		return 1;
	if (w->s->b[at & (SCRATCH - 1)] == w->want) {
		w->found = at + 1;
		return 1;
	}
	return 0;
}

static long frame_step(__u32 i, void *arg)
{
	struct byte_walk *w = arg;
	__u32 at = w->at + i;

	if (at + 1 >= w->n)
		return 1;
	if (w->s->b[at & (SCRATCH - 1)] == '\n' && w->s->b[(at + 1) & (SCRATCH - 1)] == '*')
		w->count++;
	return 0;
}

/* Offset just past the first `want` byte at or after `at` (within `max`
 * bytes), 0 if none. */
static __always_inline __u32 find_byte(struct obs_scratch_buf *s, __u32 n, __u32 at, __u8 want,
				       __u32 max)
{
	struct byte_walk w = { .s = s, .n = n, .at = at, .want = want };

	bpf_loop(max, find_step, &w, 0);
	return w.found;
}

/* RESP command: "*N\r\n$L\r\nNAME\r\n" or inline "NAME ...". Hash of the
 * upper-cased name, 0 if this is not a RESP request. *batch gets the number
 * of commands that start in the first PEEK bytes. */
static __noinline __u64 resp_cmd_hash(struct obs_scratch_buf *s, __u32 n, __u32 *batch)
{
	struct byte_walk w = { .s = s, .h = FNV_OFF, .n = n, .resp = 1 };
	__u32 at = 0;
	__u8 c0 = s->b[0];

	if (n < 4)
		return 0;
	if (c0 == '*') {
		at = find_byte(s, n, 1, '\n', 16);
		if (!at || at >= n || s->b[at & (SCRATCH - 1)] != '$')
			return 0;
		at = find_byte(s, n, at, '\n', 16);
		if (!at)
			return 0;
	} else if (!(c0 >= 'A' && c0 <= 'Z') && !(c0 >= 'a' && c0 <= 'z')) {
		return 0;
	}
	w.at = at;
	bpf_loop(OBS_CMD_MAX, hash_step, &w, 0);
	if (!w.count)
		return 0;
	*batch = 1;
	if (c0 == '*') {
		struct byte_walk f = { .s = s, .n = n < PEEK ? n : PEEK, .at = 1 };

		bpf_loop(PEEK, frame_step, &f, 0);
		*batch += f.count;
	}
	return w.h;
}

static __always_inline __u32 be32(const char *p)
{
	return ((__u32)(__u8)p[0] << 24) | ((__u32)(__u8)p[1] << 16) |
	       ((__u32)(__u8)p[2] << 8) | (__u32)(__u8)p[3];
}

/* PG frontend message that starts a query: Q (simple), P or B (extended).
 * Hash of the query text (or "B" + statement name), 0 otherwise. */
static __noinline __u64 pg_query_hash(struct obs_scratch_buf *s, __u32 n)
{
	struct byte_walk w = { .s = s, .h = FNV_OFF, .n = n, .at = 5 };
	struct pg_walk pw;
	__u8 t = s->b[0];

	if (n < 6 || (t != 'Q' && t != 'P' && t != 'B'))
		return 0;
	if (be32(&s->b[1]) < 4)
		return 0;
	if (t == 'P' || t == 'B') {
		/* P: statement name, query. B: portal name, statement name. */
		w.at = find_byte(s, n, 5, 0, OBS_PG_NAME_MAX);
		if (!w.at)
			return 0;
		if (t == 'B') {
			w.h = fnv(w.h, 'B');
			bpf_loop(OBS_PG_NAME_MAX, hash_step, &w, 0);
			return w.h;
		}
	}
	pg_walk_begin(&pw, &s->pg, s->b, n, w.at);
	bpf_loop(OBS_TEXT_MAX / 8, pg_step, &pw, 0);
	return s->pg.h;
}

/* First bytes of a client's first message: which protocol is it? */
static __always_inline __u8 sniff(struct obs_scratch_buf *s, __u32 n)
{
	if (n >= 5 && http_method_len(s->b, n))
		return OBS_PROTO_HTTP;
	if (n >= 4 && s->b[0] == '*' && s->b[1] >= '0' && s->b[1] <= '9')
		return OBS_PROTO_RESP;
	if (n >= 8) {
		__u32 len = be32(&s->b[0]), ver = be32(&s->b[4]);

		/* StartupMessage 3.0, SSLRequest, GSSENCRequest */
		if (len >= 8 && len < 10000 &&
		    (ver == 196608 || ver == 80877103 || ver == 80877104))
			return OBS_PROTO_POSTGRES;
	}
	if (n >= 6 && (s->b[0] == 'Q' || s->b[0] == 'P') && be32(&s->b[1]) >= 4)
		return OBS_PROTO_POSTGRES;
	return OBS_PROTO_NONE;
}

/* ---- recording ------------------------------------------------------------- */

static __always_inline __u32 log2_bucket(__u64 us)
{
	/* hist_bucket(): ceil(log2(us)), 0 for us <= 1, clamped. */
	__u64 v;
	__u32 r = 0;

	if (us <= 1)
		return 0;
	v = us - 1;
	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	r += 1;
	return r < OBS_HIST_BUCKETS ? r : OBS_HIST_BUCKETS - 1;
}

/*
 * An endpoint's slot in obs_ep_table, and its tag there. Completing a
 * request in the slot is a multiplication and loads; the hash map
 * (obs_endpoints), for an endpoint whose slot another holds, is a call
 * into the hash table's lookup (0.3% of nginx's core, and its return
 * through the return thunk, when every request paid it).
 */
static __always_inline struct obs_ep_slot *ep_slot(__u64 tag)
{
	__u32 i = (tag * 0xC2B2AE3D27D4EB4FULL) >> (64 - OBS_EP_BITS);

	return bpf_map_lookup_elem(&obs_ep_table, &i);
}

/* The endpoint's statistics, NULL if it has none yet. */
static __always_inline struct obs_ep_stats *ep_stats(__u32 sid, __u64 hash)
{
	struct obs_ep_key k = { .service_id = sid, .ep_hash = hash };
	__u64 tag = obs_ep_tag(sid, hash);
	struct obs_ep_slot *sl = ep_slot(tag);

	if (sl && sl->tag == tag)
		return &sl->st;
	return bpf_map_lookup_elem(&obs_endpoints, &k);
}

/* Create an endpoint's entry, in its slot if free, else in obs_endpoints:
 * the cold path of its first request, or of a request whose endpoint the
 * LRU evicted meanwhile. 0 = created here. */
static __noinline int ep_create(const struct obs_conn *cn, __u64 hash)
{
	struct obs_ep_key k = { .service_id = cn->service_id, .ep_hash = hash };
	__u64 tag = obs_ep_tag(cn->service_id, hash);
	struct obs_ep_slot *sl = ep_slot(tag);
	struct obs_ep_stats zero = {};

	if (sl && !sl->tag && __sync_val_compare_and_swap(&sl->tag, 0, tag) == 0) {
		sl->key = k;
		sl->st.protocol = cn->protocol;
		sl->st.dir = cn->dir;
		/* first_ns last: the agent reads a slot once it is set */
		asm volatile("" ::: "memory");
		*(volatile __u64 *)&sl->st.first_ns = bpf_ktime_get_ns();
		return 0;
	}
	if (sl && sl->tag == tag)
		return -1;              /* another CPU took the slot for it just now */
	zero.first_ns = bpf_ktime_get_ns();
	zero.protocol = cn->protocol;
	zero.dir = cn->dir;
	return bpf_map_update_elem(&obs_endpoints, &k, &zero, BPF_NOEXIST) ? -1 : 0;
}

/* Make sure the endpoint exists; send its text the first time (or when
 * userspace asks for it again). */
static __noinline void ensure_endpoint(struct obs_conn *cn, __u64 hash, struct obs_scratch_buf *s, __u32 n)
{
	struct obs_ep_key k = { .service_id = cn->service_id, .ep_hash = hash };
	struct obs_text_event *ev;
	int want = 0;

	if (!ep_stats(cn->service_id, hash)) {
		if (ep_create(cn, hash))
			return;
		want = 1;
	} else if (bpf_map_lookup_elem(&obs_wanttext, &k)) {
		bpf_map_delete_elem(&obs_wanttext, &k);
		want = 1;
	}
	if (!want)
		return;
	ev = bpf_ringbuf_reserve(&obs_events, sizeof(*ev), 0);
	if (!ev) {
		DROP(text_dropped);
		return;
	}
	ev->kind = OBS_EV_TEXT;
	ev->service_id = cn->service_id;
	ev->ep_hash = hash;
	ev->protocol = cn->protocol;
	n &= SCRATCH - 1;
	if (n > OBS_TEXT_MAX)
		n = OBS_TEXT_MAX;
	ev->len = n;
	bpf_probe_read_kernel(ev->text, n, s->b);
	bpf_ringbuf_submit(ev, rb_flags());
}

/* May this request send its event? This CPU's bucket (obs_tokens) is
 * refilled each second; a fast request may take a token while more than
 * a quarter are left, a slow one any. A fast request refused is counted
 * in the bucket's own line, and moved to obs_drops OBS_DROP_BATCH at a
 * time. (A tp_btf program runs with preemption disabled: a CPU's bucket
 * is not written by two programs at once.) */
static __always_inline int budget_allows(__u64 dur_ns, __u64 now)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct obs_bucket *b;

	b = bpf_map_lookup_elem(&obs_tokens, &cpu);
	if (!b)
		return 0;
	if (now - b->refill_ns >= NSEC_PER_SEC) {
		b->tokens = ev_per_sec;
		b->refill_ns = now;
	}
	if (dur_ns >= slow_ns) {
		if (!b->tokens) {
			DROP(ev_slow_dropped);
			return 0;
		}
	} else if (b->tokens <= ev_per_sec / 4) {
		if (++b->fast_dropped >= OBS_DROP_BATCH) {
			struct obs_drops *d = drops();

			if (d)
				d->ev_fast_dropped += b->fast_dropped;
			b->fast_dropped = 0;
		}
		return 0;
	}
	b->tokens--;
	return 1;
}

#define OUTCOME(err, status, rows) ((__u64)(rows) << 32 | (__u64)(status) << 8 | (err))

/* One request's event for the ring buffer (at most ev_per_sec a CPU a
 * second: out of the per-request path). */
static __noinline void send_req_event(struct obs_conn *cn, const struct obs_fifo_ent *e, __u64 now,
				      __u64 dur, __u64 outcome)
{
	struct obs_req_event *ev;
	__u32 n = e->n ? e->n : 1;

	ev = bpf_ringbuf_reserve(&obs_events, sizeof(*ev), 0);
	if (!ev) {
		DROP(ringbuf_full);
		return;
	}
	ev->kind = OBS_EV_REQ;
	ev->service_id = cn->service_id;
	ev->ep_hash = e->ep_hash;
	ev->end_ns = now;
	ev->dur_ns = dur;
	ev->pid = bpf_get_current_pid_tgid() >> 32;
	ev->rows = outcome >> 32;
	ev->status = (outcome >> 8) & 0xffff;
	ev->protocol = cn->protocol;
	ev->dir = cn->dir;
	ev->err = outcome & 1;
	ev->n = n > 255 ? 255 : (__u8)n;
	ev->pad[0] = ev->pad[1] = 0;
	bpf_ringbuf_submit(ev, rb_flags());
}

/*
 * Record a completed request in its endpoint's histogram. Inlined, like
 * the rest of a transfer's common path: this machine's kernel returns
 * through a return thunk (the SRSO "safe RET" mitigation), so every call
 * and return between BPF functions costs a mispredicted return; the
 * cold paths (a new or evicted endpoint, an event) stay functions.
 */
static __always_inline void complete(struct obs_conn *cn, struct obs_fifo_ent *e, __u64 now, __u64 outcome)
{
	struct obs_ep_stats *st;
	__u64 dur = now > e->start_ns ? now - e->start_ns : 0;
	__u64 us = dur / 1000, n = e->n ? e->n : 1;
	__u32 b = log2_bucket(us), rows = outcome >> 32;

	st = ep_stats(cn->service_id, e->ep_hash);
	if (!st) {
		/* evicted from obs_endpoints since the request started (LRU) */
		ep_create(cn, e->ep_hash);
		st = ep_stats(cn->service_id, e->ep_hash);
		if (!st)
			return;
		DROP(ep_evicted);
	}
	__sync_fetch_and_add(&st->hist_us[b & (OBS_HIST_BUCKETS - 1)], n);
	__sync_fetch_and_add(&st->count, n);
	__sync_fetch_and_add(&st->sum_us, us * n);
	if (outcome & 1)
		__sync_fetch_and_add(&st->errors, n);
	if (rows)
		__sync_fetch_and_add(&st->rows, rows);
	if (us > st->max_us)
		st->max_us = us;
	st->last_ns = now;
	if (budget_allows(dur, now))
		send_req_event(cn, e, now, dur, outcome);
}

/* ---- request and response sides ------------------------------------------- */

/* Has this CPU seen the endpoint lately (obs_known)? With remember, it
 * counts as seen from now on (the caller makes sure it exists). */
static __always_inline int endpoint_known(struct obs_conn *cn, __u64 hash, int remember)
{
	__u32 zero = 0, i = (__u32)(hash ^ (hash >> 32) ^ cn->service_id) & (OBS_KNOWN - 1);
	struct obs_known *kn = bpf_map_lookup_elem(&obs_known, &zero);
	__u32 gen = text_gen;

	if (kn && kn->e[i].hash == hash && kn->e[i].sid == cn->service_id && kn->e[i].gen == gen)
		return 1;
	if (kn && remember) {
		kn->e[i].hash = hash;
		kn->e[i].sid = cn->service_id;
		kn->e[i].gen = gen;
	}
	return 0;
}

static __always_inline void fifo_push(struct obs_conn *cn, __u64 hash, __u32 batch, __u64 ts)
{
	__u32 slot = (cn->head + cn->len) & (OBS_FIFO - 1);

	cn->q[slot].start_ns = ts;
	cn->q[slot].ep_hash = hash;
	cn->q[slot].n = batch;
	cn->len++;
}

static __noinline void on_request(struct obs_conn *cn, struct obs_scratch_buf *s, __u32 n, __u64 ts)
{
	__u64 hash = 0;
	__u32 batch = 1, mlen;

	if (cn->protocol == OBS_PROTO_AUTO)
		cn->protocol = sniff(s, n);
	if (cn->protocol == OBS_PROTO_HTTP) {
		mlen = http_method_len(s->b, n);
		if (!mlen)
			return;
		hash = http_route_hash(s, n, mlen);
	} else if (cn->protocol == OBS_PROTO_RESP) {
		hash = resp_cmd_hash(s, n, &batch);
	} else if (cn->protocol == OBS_PROTO_POSTGRES) {
		hash = pg_query_hash(s, n);
	}
	if (!hash)
		return;
	if (cn->len >= OBS_FIFO) {
		DROP(fifo_full);
		return;
	}
	if (!endpoint_known(cn, hash, 1))
		ensure_endpoint(cn, hash, s, n);
	fifo_push(cn, hash, batch, ts);
}

/* Read up to `max` (<= 255) head bytes of a transfer onto the stack at b;
 * returns how many, 0 if none could be read. */
static __always_inline __u64 read_stack_head(char *b, const struct obs_iov_view *v, __u64 n,
					     __u64 max)
{
	if (n > max)
		n = max;
	n = IDX(n, 255);
	if (!n || n > max)
		return 0;
	if (v->skb)
		return skb_read(v, b, (__u32)n, 0) ? 0 : n;
	return user_read(b, (__u32)n, v->base0, 0) == n ? n : 0;
}

/* The same for text (a request line, a reply head), read as a string:
 * bpf_probe_read_user_str() copies with strncpy_from_user(), without the
 * hardened-usercopy check of the destination and the string copy's
 * start-up cost that bpf_probe_read_user() pays (0.4-0.6% of nginx's
 * core, side by side). The last byte is given up for the NUL, and a NUL
 * within ends the text early: none has one. Needs n >= 2; returns the
 * bytes before the NUL, 0 if none. */
static __always_inline __u64 read_stack_text(char *b, const struct obs_iov_view *v, __u64 n,
					     __u64 max)
{
	long r;

	if (n > max)
		n = max;
	n = IDX(n, 255);
	if (n < 2 || n > max)
		return 0;
	if (v->skb)     /* the same bytes: all but the last, which a NUL would take */
		return skb_read(v, b, (__u32)n - 1, 0) ? 0 : n - 1;
	r = user_read(b, (__u32)n - 1, v->base0, 1);
	return r < 1 ? 0 : r;
}

/* Queue a stack head's request of a known endpoint (1), unless the FIFO
 * is full (counted). */
static __always_inline int queue_one(struct obs_conn *cn, __u64 hash, __u64 ts)
{
	if (cn->len >= OBS_FIFO) {
		DROP(fifo_full);
		return 1;
	}
	fifo_push(cn, hash, 1, ts);
	return 1;
}

/* A stack head's request of an endpoint this CPU has seen: queue it (1).
 * 0: unknown here, the scratch path must create it and send its text. */
static __always_inline int queue_known(struct obs_conn *cn, __u64 hash, __u64 ts)
{
	if (!endpoint_known(cn, hash, 0))
		return 0;
	return queue_one(cn, hash, ts);
}

/*
 * A request that takes the connection's memo (its last request line or
 * query shape again): queue_known() for the memo's endpoint, which asks
 * obs_known once a text generation and then remembers the answer in the
 * connection, in the line the FIFO's first entry shares.
 */
static __always_inline int queue_memo(struct obs_conn *cn, __u64 hash, __u64 ts)
{
	__u32 known = text_gen + 1;

	if (cn->memo_known != known) {
		if (!endpoint_known(cn, hash, 0))
			return 0;
		cn->memo_known = known;
	}
	return queue_one(cn, hash, ts);
}

/*
 * Does this request line start with the bytes of the connection's last
 * one, up to the byte that ended its path? Then its route hash is the
 * same (a pure function of those bytes): a keep-alive client asking for
 * one endpoint again (a poller, a health check, a load generator) skips
 * the path walk. Four word compares; a different path costs just these.
 */
static __always_inline int memo_match(const struct obs_conn *cn, const char *b, __u64 n)
{
	__u32 len = cn->memo_len;

	if (!len || len > n || len > 32)
		return 0;
	for (int k = 0; k < 4; k++) {
		__u64 x, m = ~0ULL;
		__u32 left;

		if (k * 8 >= len)
			break;
		left = len - k * 8;
		if (left < 8)
			m = (1ULL << (left * 8)) - 1;
		__builtin_memcpy(&x, &b[k * 8], 8);
		if ((x ^ cn->memo[k]) & m)
			return 0;
	}
	return 1;
}

/*
 * A transfer's first (or last) bytes, on the program's stack: a request
 * line, a query, a response's tail. One per transfer, declared in
 * on_transfer() and lent to whichever path reads: the program's frame
 * holds one buffer, not one per path. Not zeroed: bytes past the count
 * read are never used. 8 bytes past the 128 read are room for the
 * verifier's view of a masked word read.
 */
#define HEAD_BUF 128
struct head_buf {
	char b[HEAD_BUF + 8] __attribute__((aligned(8)));
};
_Static_assert(HTTP_HEAD <= HEAD_BUF && PG_HEAD <= HEAD_BUF && TAIL <= HEAD_BUF,
	       "every stack head fits the transfer's buffer");

/*
 * A request line that is not the connection's last one: its path walked
 * and hashed on the stack, and queued if this CPU has seen the endpoint.
 * 1 = done, 0 = take the scratch path (a new endpoint, whose text must be
 * sent; a path that may go on past what was read).
 */
__noinline int http_request_line(struct obs_conn *cn, struct head_buf *l, __u64 n, __u64 ts)
{
	struct route_walk w = {};
	__u32 mlen;
	__u64 hash;

	if (!cn || !l || !n || n > HTTP_HEAD)
		return 0;
	mlen = http_method_len(l->b, n);
	if (!mlen)
		return 1;               /* not a request line: on_request ignores it too */
	route_begin(&w, l->b, n, mlen);
	bpf_loop(HTTP_HEAD / 8, route_step_head, &w, 0);
	if (!w.stopped)
		return 0;
	/* mixed here, not after obs_known's lookup: clang would keep its six
	 * inputs across the call, in the stack frame */
	hash = opaque(seg_mix(w.h, w.seg, w.len, w.digits, w.hex, w.dashes));
	if (w.stop_at < 32) {
		/* the new memo, queued as pg_request_head() queues its own */
		__builtin_memcpy(cn->memo, l->b, 32);
		cn->memo_len = w.stop_at + 1;
		cn->memo_hash = hash;
		cn->memo_known = 0;
		return queue_memo(cn, hash, ts);
	}
	return queue_known(cn, hash, ts);
}

/*
 * An HTTP request whose request line fits in HTTP_HEAD bytes, of an
 * endpoint this CPU has seen: read onto the stack, hashed and queued,
 * without the task storage scratch (whose heap destination costs
 * bpf_probe_read_user the kernel's hardened-usercopy object check on
 * every request). The connection's last request line again (memo_match)
 * is queued here, inlined: no call and return through the thunk. 1 =
 * done, 0 = take the scratch path.
 */
static __always_inline int http_request_head(struct obs_conn *cn, const struct obs_iov_view *v,
					     __u64 n, __u64 ts, struct head_buf *l)
{
	/* read as text: a line whose path ends at the last byte read takes
	 * the scratch path */
	n = read_stack_text(l->b, v, n, HTTP_HEAD);
	if (!n)
		return 0;
	if (memo_match(cn, l->b, n))
		return queue_memo(cn, cn->memo_hash, ts);
	return http_request_line(cn, l, n, ts);
}

/* Eight bits (byte j of a word: bit j) as a byte mask: 0xff where set. */
static __always_inline __u64 bits_to_bytes(__u64 bits)
{
	bits = (bits * ONES) & 0x8040201008040201ULL;   /* byte j keeps bit j */
	return (((bits + LOWS) & HIGHS) >> 7) * 0xff;
}

#define SHAPE_MIX(h, x) ({ __u64 _h = ((h) ^ (x)) * 0x9E3779B97F4A7C15ULL; _h ^ (_h >> 29); })
#define PG_LIT_MAX 20            /* digits of a last literal the memo lets vary */

/*
 * A query head's shape: its first end + 1 bytes (message type and text up
 * to its NUL at end; not the message's length) with the digits of its
 * numeric literals (lit) masked out, mixed one word at a time; 0 when a
 * byte lit names is not a digit here. With la, the ll digits of a last
 * literal at la are left out whatever their number: the bytes before la
 * and the ones from la + ll to end are mixed, the latter a word at a time
 * from la + ll, wherever it falls. Two heads of the same shape differ at
 * most in the digits of their literals (the last one's also in their
 * number): their texts, literals masked, are the same, and so is their
 * hash (the walk's, pg_byte()), without walking them again. pgbench -S,
 * or an application's lookups by id: the same statement with another
 * number, of any length.
 */
static __always_inline __u64 pg_shape(const char *b, __u32 end, const __u64 *lit, __u32 la, __u32 ll)
{
	__u32 pend = la ? la - 1 : end;  /* the last byte mixed in place */
	__u64 h = la ? (1ULL << 40) | ((__u64)(end - la - ll) << 8) | la : end + 1;

	for (int i = 0; i < PG_HEAD / 8; i++) {
		__u64 x, m, bits, keep;

		if (i * 8 > pend)
			break;
		keep = bytes_upto(pend - i * 8);
		__builtin_memcpy(&x, &b[i * 8], 8);
		x &= keep;
		if (!i)
			x &= ~0xffffffff00ULL;  /* the message's length */
		/* which of this word's bytes were literal digits: most words
		 * have none, and skip the mask and the digit test */
		bits = (lit[(i >> 3) & 1] >> ((i & 7) * 8)) & 0xff;
		if (bits) {
			m = bits_to_bytes(bits) & keep;
			if (m & HIGHS & ~HAS_BETWEEN(x, '0' - 1, '9' + 1))
				return 0;
			x &= ~m;
		}
		h = SHAPE_MIX(h, x);
	}
	if (!la)
		return h | 1;
	for (int i = 0; i < PG_HEAD / 8; i++) {
		__u32 at = la + ll + i * 8;

		if (at > end)
			break;
		h = SHAPE_MIX(h, word_at(b, IDX(at, 127)) & bytes_upto(end - at));
	}
	return h | 1;
}

/* How many digits there are at `at` (1 to PG_LIT_MAX - 1, before a byte
 * that is not one, within n); 0 if none or more. */
static __always_inline __u32 pg_digits(const char *b, __u32 at, __u32 n)
{
	for (int k = 0; k < PG_LIT_MAX; k++) {
		__u32 p = at + k;
		__u8 c;

		if (p >= n || p >= PG_HEAD)
			return 0;
		c = b[IDX(p, 127)];
		if (c < '0' || c > '9')
			return k;
	}
	return 0;
}

/* Bits [from, to) of a 128-bit set cleared (to <= 128). */
static __always_inline void bits_clear(__u64 *set, __u32 from, __u32 to)
{
	for (int j = 0; j < 2; j++) {
		__u32 lo = from > j * 64 ? from - j * 64 : 0, hi = to > j * 64 ? to - j * 64 : 0;

		if (lo > 64)
			lo = 64;
		if (hi > 64)
			hi = 64;
		if (lo < hi)
			set[j] &= ~(hi - lo == 64 ? ~0ULL : ((1ULL << (hi - lo)) - 1) << lo);
	}
}

/*
 * A PostgreSQL query (Q, or P of the unnamed statement) whose text ends
 * within PG_HEAD bytes, of an endpoint this CPU has seen: read onto the
 * stack and hashed there, the walk's state in the connection, as
 * http_request_head() does for HTTP (no task storage, no second copy).
 * When the connection's last such query had the same shape (the same
 * text but for the digits of numeric literals, of which the last one may
 * have more or fewer, no '...' string), its hash is taken again and the
 * text is not walked: pgbench -S's ids of 1 to 6 digits all take it (with
 * the length fixed, one query in three missed). 1 = done, 0 = take the
 * scratch path (a new endpoint, a longer text, a named statement or a
 * Bind).
 */
__noinline int pg_request_head(struct obs_conn *cn, struct head_buf *l, __u64 n, __u64 ts)
{
	struct pg_walk w;
	__u32 at, end, la, ll = 0;
	char *b;

	if (!cn || !l || n > PG_HEAD)
		return 0;
	b = l->b;
	if (n < 7 || be32(&b[1]) < 4)
		return 0;
	if (b[0] == 'Q')
		at = 5;
	else if (b[0] == 'P' && !b[5])
		at = 6;
	else
		return 0;
	end = cn->pgm_end;
	la = cn->pgm_la;
	if (end && la) {
		/* the last literal's digits may be more or fewer: its end
		 * moves the NUL's place */
		ll = pg_digits(b, la, n);
		end = ll ? end - cn->pgm_ll + ll : 0;
	}
	/* (a shape is never 0 where one was remembered: pg_shape() returns
	 * 0 for a mismatch only). A text of the shape has its NUL at end:
	 * another statement, most often of another length, fails that test
	 * before the shape is computed. */
	if (end && end < n && end < PG_HEAD && !b[IDX(end, 127)] &&
	    pg_shape(b, end, cn->pgm_lit, la, ll) == cn->pgm_shape) {
		cn->pgm_miss = 0;
		return queue_memo(cn, cn->pgm_hash, ts);
	}
	cn->pgm_miss++;                 /* (a u8: past 255 it counts again from 0) */
	pg_walk_begin(&w, &cn->pg, b, n, at);
	bpf_loop(PG_HEAD / 8, pg_step_head, &w, 0);
	if (!w.ended)
		return 0;               /* the text may go on past what was read */
	/* A connection whose queries keep missing the memo goes through
	 * several statements (an application's, pgbench's transaction): the
	 * memo is made again from every fourth one only (the shape is a
	 * second pass over the text, which the next query would not take),
	 * and kept meanwhile (it still names its statement's hash). */
	if (!w.str && w.end < PG_HEAD && (cn->pgm_miss <= 2 || !(cn->pgm_miss & 3))) {
		la = 0;
		ll = 0;
		cn->pgm_lit[0] = w.lit[0];
		cn->pgm_lit[1] = w.lit[1];
		if (w.lit_end && w.lit_end - w.lit_at < PG_LIT_MAX) {
			la = w.lit_at;
			ll = w.lit_end - w.lit_at;
			bits_clear(cn->pgm_lit, la, w.lit_end);
		}
		cn->pgm_la = la;
		cn->pgm_ll = ll;
		cn->pgm_shape = pg_shape(b, w.end, cn->pgm_lit, la, ll);
		cn->pgm_hash = cn->pg.h;
		cn->pgm_end = w.end;
		cn->memo_known = 0;
		return queue_memo(cn, cn->pg.h, ts);
	}
	return queue_known(cn, cn->pg.h, ts);
}

static __always_inline struct obs_fifo_ent *fifo_pop(struct obs_conn *cn)
{
	struct obs_fifo_ent *e;

	if (!cn->len) {
		DROP(unmatched);
		return NULL;
	}
	e = &cn->q[cn->head & (OBS_FIFO - 1)];
	cn->len--;
	/* Emptied, the FIFO starts again at its first entry: a client that
	 * waits for each response (most do) keeps using q[0], in the line
	 * next to the connection's first, not one of three lines in turn. */
	cn->head = cn->len ? (cn->head + 1) & (OBS_FIFO - 1) : 0;
	return e;
}

/* Rows from the CommandComplete just before the final ReadyForQuery in the
 * tail: ... 'C' int32(len) "SELECT 5\0" 'Z' 00 00 00 05 status. The tag's
 * last word is the row count when it is a number. */
static __noinline __u32 pg_tail_rows(const char *t, __u32 n)
{
	__u32 rows = 0, mul = 1, j;

	if (n < 6 + 8 || n > TAIL || t[(n - 7) & (TAIL - 1)] != 0)
		return 0;
	for (j = 0; j < 10; j++) {
		__u8 c = t[(n - 8 - j) & (TAIL - 1)];

		if (c == ' ')
			return j ? rows : 0;
		if (c < '0' || c > '9')
			return 0;
		rows += (c - '0') * mul;
		mul *= 10;
	}
	return 0;
}

/*
 * HTTP and RESP: the response's first bytes (a status line, a reply type
 * byte) are all that is needed, read into the program's stack rather than
 * the task's scratch: no task storage lookup, and the kernel's usercopy
 * check of a stack destination is a bounds test where a heap one walks the
 * slab (half the cost of the copy, in perf, when it went to the scratch).
 */
#define HEAD_SMALL 16            /* HTTP status line, RESP type byte */
#define HEAD_PG 32               /* a PostgreSQL response's first messages */

static __always_inline void on_reply_head(struct obs_conn *cn, const char *b, __u32 n, __u64 now)
{
	struct obs_fifo_ent *e;
	__u16 status = 0;
	__u8 err = 0, c;

	if (!cn->len || !n || n > HEAD_SMALL)
		return;
	if (cn->protocol == OBS_PROTO_HTTP) {
		if (n < 12 || b[0] != 'H' || b[1] != 'T' || b[2] != 'T' || b[3] != 'P' || b[4] != '/')
			return;
		status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
		err = b[9] == '5';
	} else if (cn->protocol == OBS_PROTO_RESP) {
		c = b[0];
		if (!(c == '+' || c == '-' || c == ':' || c == '$' || c == '*' || c == '_' ||
		      c == ',' || c == '#' || c == '%' || c == '~' || c == '(' || c == '=' ||
		      c == '!' || c == '|' || c == '>'))
			return;
		err = c == '-' || c == '!';
	} else {
		return;
	}
	e = fifo_pop(cn);
	if (e)
		complete(cn, e, now, OUTCOME(err, status, 0));
}

/*
 * PostgreSQL: a response ends with ReadyForQuery; ErrorResponse may come
 * among its first messages, CommandComplete's row count just before Z.
 * A response of up to TAIL bytes in one chunk (a few rows, then C and Z:
 * most of an OLTP application's) is read once, for its head and its tail;
 * a longer one twice; its tail goes to the transfer's buffer. The bytes
 * of t past what was read are never looked at, so t is not zeroed.
 */
static __always_inline void on_pg_reply(struct obs_conn *cn, const struct obs_iov_view *v, __u64 now,
					char *t)
{
	__u64 n = v->len0 < v->moved ? v->len0 : v->moved;
	struct obs_fifo_ent *e;
	const char *b = t;
	__u32 at = 0, tn = 0;

	if (!cn->len)
		return;
	/* the head, then (a longer response) the tail over it: the head's
	 * bytes are done with before the tail is read */
	if (v->moved <= TAIL && v->len0 >= v->moved) {
		tn = read_stack_head(t, v, n, TAIL);
		n = tn < HEAD_PG ? tn : HEAD_PG;
	} else {
		n = read_stack_head(t, v, n, HEAD_PG);
	}
	if (!n || n > HEAD_PG)
		return;
	/* ErrorResponse among the first messages (after 1/2/n/3, five
	 * bytes each: within HEAD_PG). */
	for (int i = 0; i < 4; i++) {
		__u8 c;

		if (at + 5 > n)
			break;
		c = b[IDX(at, 31)];
		if (c == 'E') {
			cn->pg_err = 1;
			break;
		}
		if (c != '1' && c != '2' && c != 'n' && c != '3')
			break;
		at += 1 + be32(&b[IDX(at + 1, 31)]);
	}
	if (!tn)
		tn = read_tail(v, v->moved, t);
	if (tn < 6 || tn > TAIL)
		return;
	if (t[(tn - 6) & (TAIL - 1)] != 'Z' || t[(tn - 5) & (TAIL - 1)] != 0 ||
	    t[(tn - 4) & (TAIL - 1)] != 0 || t[(tn - 3) & (TAIL - 1)] != 0 ||
	    t[(tn - 2) & (TAIL - 1)] != 5)
		return;
	e = fifo_pop(cn);
	if (e)
		complete(cn, e, now, OUTCOME(cn->pg_err, 0, pg_tail_rows(t, tn)));
	cn->pg_err = 0;
}

/* ---- syscall exit ------------------------------------------------------------ */

static __always_inline int is_request(const struct obs_conn *cn, __u32 is_write)
{
	return cn->dir == OBS_DIR_IN ? !is_write : is_write;
}

/*
 * A response's head, read onto the stack: an HTTP status line, a RESP
 * reply's first bytes (a PostgreSQL response's head and tail:
 * on_pg_reply()). Inlined in the programs, with complete(): a server's
 * every response comes here, and a call and its return (through the
 * return thunk) is what it would cost on top.
 */
static __always_inline void on_reply(struct obs_conn *cn, const struct obs_iov_view *v, __u64 ts,
				     struct head_buf *buf)
{
	char *h = buf->b;
	__u64 hn = v->len0 < v->moved ? v->len0 : v->moved;

	if (cn->protocol == OBS_PROTO_POSTGRES) {
		on_pg_reply(cn, v, ts, buf->b);
		return;
	}
	/* An HTTP status line or a RESP reply's first bytes: text, unless a
	 * lone type byte (no room for the NUL). */
	hn = hn < 2 ? read_stack_head(h, v, hn, 1) : read_stack_text(h, v, hn, HEAD_SMALL);
	if (hn)
		on_reply_head(cn, h, (__u32)hn, ts);
}

/*
 * A request that the stack heads did not take (a new endpoint, whose text
 * must be sent; a longer request line or query; RESP; a protocol still to
 * be sniffed): through the task's scratch. A static function: a socket
 * buffer's pointer in the view keeps its type only where the verifier
 * follows the caller (a global function is checked with unknown
 * arguments).
 */
static __noinline int on_request_scratch(struct obs_conn *cn, struct obs_iov_view *v, __u64 ts)
{
	struct obs_scratch_buf *s;
	__u32 n, want;

	s = bpf_task_storage_get(&obs_scratch, bpf_get_current_task_btf(), 0,
				 BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!s)
		return 0;
	want = cn->protocol == OBS_PROTO_POSTGRES || cn->protocol == OBS_PROTO_AUTO ?
	       OBS_TEXT_MAX + OBS_PG_NAME_MAX + 8 : PEEK;
	n = read_head(v, v->moved, s, want);
	if (!n)
		return 0;
	on_request(cn, s, n, ts);   /* may settle AUTO as NONE */
	return 0;
}

/*
 * A watched transfer. The callers have left already when this is a
 * response and no request is outstanding (the rest of a long response, a
 * server's greeting): nothing is read then.
 */
static __always_inline int on_transfer(struct obs_conn *cn, struct obs_iov_view *v, __u64 is_write,
				       __u64 seen_ns)
{
	__u64 ts = seen_ns ? seen_ns : bpf_ktime_get_ns();
	__u64 n = v->len0 < v->moved ? v->len0 : v->moved;
	struct head_buf buf;

	if (!is_request(cn, is_write)) {
		on_reply(cn, v, ts, &buf);
		return 0;
	}
	if (cn->protocol == OBS_PROTO_HTTP && http_request_head(cn, v, n, ts, &buf))
		return 0;
	if (cn->protocol == OBS_PROTO_POSTGRES) {
		n = read_stack_head(buf.b, v, n, PG_HEAD);
		if (pg_request_head(cn, &buf, n, ts))
			return 0;
	}
	return on_request_scratch(cn, v, ts);
}

/*
 * Syscall numbers and argument registers. The socket tracepoints below run
 * inside the syscall; its arguments are still in the task's saved user
 * registers (x86-64: di, si, dx; arm64 keeps the first one in orig_x0
 * because x0 is the return value slot).
 */
#if defined(__TARGET_ARCH_x86)
#define NR_read 0
#define NR_write 1
#define NR_readv 19
#define NR_writev 20
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47
#define SYS_NR(r) ((r)->orig_ax)
#define SYS_ARG2(r) ((r)->si)
#define SYS_ARG3(r) ((r)->dx)
#elif defined(__TARGET_ARCH_arm64)
#define NR_read 63
#define NR_write 64
#define NR_readv 65
#define NR_writev 66
#define NR_sendto 206
#define NR_recvfrom 207
#define NR_sendmsg 211
#define NR_recvmsg 212
#define SYS_NR(r) ((r)->syscallno)
#define SYS_ARG2(r) ((r)->regs[1])
#define SYS_ARG3(r) ((r)->regs[2])
#else
#error "observe.bpf.c: syscall numbers for this architecture are missing"
#endif

#define MSG_PEEK 2
#define PF_KTHREAD 0x00200000

/*
 * The task's saved user registers: at a fixed offset from its kernel stack
 * on every task of this kernel (THREAD_SIZE less the top padding and
 * struct pt_regs), learnt from bpf_task_pt_regs() on first use, then one
 * addition and a typed view (bpf_rdonly_cast, inlined): no helper call and
 * its return on every socket transfer. (regs_off is declared with
 * watch_gen.)
 */

static __always_inline struct pt_regs *task_regs(struct task_struct *task)
{
	__u64 stack = (__u64)task->stack, off = regs_off;

	if (!off) {
		off = (__u64)bpf_task_pt_regs(task) - stack;
		regs_off = off;
	}
	return bpf_rdonly_cast((void *)(stack + off), bpf_core_type_id_kernel(struct pt_regs));
}

/*
 * sock:sock_recv_length (and sock:sock_send_length, on kernels without
 * tcp:tcp_sendmsg_locked) fire in sock_recvmsg/sock_sendmsg, so only
 * socket transfers pay (not every syscall, as a raw sys_exit would: +80 ns
 * on getppid here; not every file read, as syscalls:sys_exit_read would:
 * +210 ns on a /dev/zero read), and they hand over the socket itself. The
 * first test is the port bitmap (watched_sock()); the syscall (from the
 * saved registers) says where the user's buffer is. Transfers made by the
 * kernel for sendfile/splice, io_uring or recvmmsg/sendmmsg come with
 * other syscall numbers and are not looked at.
 */
/* The socket as a tcp_sock: a typed read-only view, no call. */
static __always_inline struct tcp_sock *tcp_view(struct sock *sk)
{
	return bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct tcp_sock));
}

/* On a watched port (either direction)? The socket's first line only,
 * which the stack has just used. */
static __always_inline int watched_port(struct sock *sk)
{
	__u16 lport = sk->__sk_common.skc_num, rport = bpf_ntohs(sk->__sk_common.skc_dport);

	if (port_bit(OBS_DIR_IN, lport))
		return 1;
	if (!port_bit(OBS_DIR_OUT, rport))
		return 0;
	/* A local caller of a service whose own socket times its requests
	 * (classify() would say OBS_PROTO_NONE): done before the registers
	 * and the socket storage are looked up. */
	return !(server_side(rport) && peer_is_local(sk));
}

/* An IPv4/IPv6 TCP socket? sk_protocol is in the socket's transmit
 * group of lines, which a read does not touch: the hooks that see only
 * TCP sockets, or know them by their sk_prot (plain_tcp()), do without
 * it. One cold line fewer a read (602 of hp_obs_rx's 2 114 samples in
 * nginx's twins followed its load: bench/jitprof.sh, TWINS=1); the rate
 * did not move beyond noise, that miss having overlapped the connection
 * slot's. */
static __always_inline int inet_tcp(struct sock *sk)
{
	__u16 family = sk->__sk_common.skc_family;

	return (family == AF_INET || family == AF_INET6) && sk->sk_protocol == IPPROTO_TCP;
}

static __always_inline int watched_sock(struct sock *sk)
{
	return watched_port(sk) && inet_tcp(sk);
}

static __always_inline struct obs_conn *slot_of(__u64 cookie)
{
	/* The cookie's low bits. Cookies are handed out in sequence (in
	 * batches of 4096 a CPU) and only to sockets someone asks about
	 * (here: watched ones), so a host's live connections fall on
	 * distinct slots, next to each other: the slots of a server's
	 * connections share pages (TLB entries) and cache lines' neighbours.
	 * Not the socket's addresses: the local port is gone (0) when a
	 * socket reaches TCP_CLOSE, and the slot must be found again then. */
	__u32 i = cookie & (conn_slots - 1);

	if (!conn_slots)
		return NULL;
	return bpf_map_lookup_elem(&obs_slots, &i);
}

/* The slot this cookie holds, NULL if none. */
static __always_inline struct obs_conn *slot_held(__u64 cookie)
{
	struct obs_conn *sl = slot_of(cookie);

	return sl && cookie && sl->cookie == cookie ? sl : NULL;
}

/* A connection's state zeroed, all but the cookie: a slot stays its
 * socket's (when reclassified) or is freed by the caller after. */
static __always_inline void conn_reset(struct obs_conn *cn)
{
	__builtin_memset(&cn->memo, 0, sizeof(*cn) - __builtin_offsetof(struct obs_conn, memo));
}

/* The socket's state, when it has none in its slot: in the socket's
 * storage if it has some there, else in its cookie's slot if the slot is
 * free and the socket not closed, else in new storage (cookie 0: a
 * socket without one, seen where it cannot be made). */
static __noinline struct obs_conn *conn_claim(struct sock *sk, __u64 cookie)
{
	struct obs_conn *sl, *cn;

	cn = bpf_sk_storage_get(&obs_conns, sk, 0, 0);
	if (cn)
		return cn;
	sl = slot_of(cookie);
	if (sl && !sl->cookie && sk->__sk_common.skc_state != TCP_CLOSE) {
		/* A freed slot was zeroed (gen 0: classified anew). */
		if (cookie && __sync_val_compare_and_swap(&sl->cookie, 0, cookie) == 0)
			return sl;
	}
	return bpf_sk_storage_get(&obs_conns, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
}

/* The connection's state, created on its first watched transfer and
 * classified again when the watch list changed; NULL when not watched.
 * make_cookie: sk may be given to bpf_get_socket_cookie(), which makes the
 * cookie on first use (a socket buffer's socket may not: hp_obs_close
 * makes it when a watched connection is established). */
static __always_inline struct obs_conn *sock_conn(struct sock *sk, bool make_cookie)
{
	__u64 cookie = sk->__sk_common.skc_cookie.counter;
	struct obs_conn *cn = slot_held(cookie);
	__u32 gen;

	if (!cn)
		cn = conn_claim(sk, make_cookie ? bpf_get_socket_cookie(sk) : cookie);
	if (!cn)
		return NULL;
	gen = watch_gen;
	if (cn->gen != gen) {
		struct obs_class c = {};

		classify(sk->__sk_common.skc_num, bpf_ntohs(sk->__sk_common.skc_dport),
			 peer_is_local(sk), &c);
		/* A change elsewhere in the watch list (a listener found or
		 * gone) must not lose the requests in flight here: keep the
		 * state when the connection is watched as it was. */
		if (!cn->gen || c.protocol == OBS_PROTO_NONE || c.service_id != cn->service_id ||
		    c.dir != cn->dir || c.protocol != cn->cfg_proto) {
			conn_reset(cn);
			cn->service_id = c.service_id;
			cn->dir = c.dir;
			cn->protocol = c.protocol;
			cn->cfg_proto = c.protocol;
		}
		cn->gen = gen;
	}
	if (cn->protocol == OBS_PROTO_NONE)
		return NULL;
	return cn;
}

/* How a syscall of one direction passes its buffer: two take it plain,
 * one an iovec array, one a msghdr; -1 for any other syscall. */
static __always_inline int vec_of(long nr, long plain, long plain2, long iov, long msg)
{
	if (nr == plain || nr == plain2)
		return VEC_NONE;
	if (nr == iov)
		return VEC_IOV;
	if (nr == msg)
		return VEC_MSG;
	return -1;
}

static __always_inline int on_sock(struct sock *sk, int ret, __u32 is_write)
{
	struct obs_pending stk = {};
	struct task_struct *task;
	struct obs_iov_view v;
	struct pt_regs *regs;
	struct obs_conn *cn;
	__u64 seen = 0;
	long nr;
	int vec;

	if (ret <= 0 || !sk || !watched_sock(sk))
		return 0;
	/* A kernel thread's (NFS, kernel TLS...) saved registers are not a
	 * syscall's. */
	task = bpf_get_current_task_btf();
	if (task->flags & PF_KTHREAD)
		return 0;
	regs = task_regs(task);
	nr = SYS_NR(regs);
	vec = is_write ? vec_of(nr, NR_write, NR_sendto, NR_writev, NR_sendmsg) :
			 vec_of(nr, NR_read, NR_recvfrom, NR_readv, NR_recvmsg);
	if (vec < 0)
		return 0;
	stk.vec = vec;
	cn = sock_conn(sk, true);
	if (!cn || (!is_request(cn, is_write) && !cn->len))
		return 0;
	stk.buf = SYS_ARG2(regs);
	stk.len = SYS_ARG3(regs);
	if (view_init(&stk, &v))
		return 0;
	v.moved = (__u32)ret;
	/* A read's time is the socket's TCP clock, which the stack set when
	 * the bytes arrived (tcp_rcv_established refreshes it per segment,
	 * from the same CLOCK_MONOTONIC): a load instead of a clock read,
	 * whose clocksource call and rdtsc cost ~0.2% of nginx's core per
	 * read. So a server's request is timed from its arrival, a
	 * client's response to its arrival. A write takes the clock: its
	 * data may be queued (autocork) without the stack taking the time. */
	if (!is_write)
		seen = tcp_view(sk)->tcp_clock_cache;
	return on_transfer(cn, &v, is_write, seen);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(hp_obs_recv, struct sock *sk, int ret, int flags)
{
	if (flags & MSG_PEEK)
		return 0;
	return on_sock(sk, ret, 0);
}

/* A TCP socket without an upper-layer protocol (not kernel TLS)? Its
 * sk_prot is one of plain_prot's, or it is a TCP socket whose
 * icsk_ulp_ops says so (and its sk_prot joins them while there is room:
 * they are TCP's, so a match also says the socket is TCP). */
static __always_inline int plain_tcp(struct sock *sk)
{
	__u64 prot = (__u64)sk->__sk_common.skc_prot;

	if (prot == plain_prot[0] || prot == plain_prot[1])
		return 1;
	if (!inet_tcp(sk) || tcp_view(sk)->inet_conn.icsk_ulp_ops)
		return 0;
	if (!plain_prot[0])
		plain_prot[0] = prot;
	else if (!plain_prot[1])
		plain_prot[1] = prot;
	return 1;
}

/*
 * A read seen in the socket buffer, before its bytes are copied out
 * (skb:skb_copy_datagram_iovec, once for each buffer a read takes bytes
 * from): the bytes are kernel memory, read through a dynptr over the
 * socket buffer, where sock_recv_length has them in the user's buffer
 * behind a user copy (~60 ns before its first byte here) and the saved
 * registers; and a read that finds nothing (EAGAIN: a PostgreSQL backend's
 * every other read) fires nothing. Where this chunk starts is the socket's
 * copied_seq, which the copy advances after it; a chunk that starts before
 * what was already seen (the buffer's bytes are all looked at the first
 * time: a MSG_PEEK, or a small read) is skipped. Kernel TLS (a ULP on the
 * socket) copies records, not the stream: not looked at. The agent loads
 * this one where the kernel lets a tracing program build a dynptr over a
 * socket buffer (6.15 on), else hp_obs_recv.
 */
SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(hp_obs_rx, const struct sk_buff *skb, int len)
{
	struct obs_iov_view v;
	struct sock *sk = skb->sk;
	struct tcp_sock *tp;
	struct obs_conn *cn;
	__u32 seq, off, avail;

	if (len <= 0 || !sk || !watched_port(sk) || !plain_tcp(sk))
		return 0;
	tp = tcp_view(sk);
	cn = sock_conn(sk, false);
	if (!cn || (!is_request(cn, 0) && !cn->len))
		return 0;
	seq = tp->copied_seq;
	if (cn->recv_next && (__s32)(cn->recv_next - seq) > 0)
		return 0;
	off = seq - ((const struct tcp_skb_cb *)skb->cb)->seq;
	if (off >= skb->len)
		return 0;
	/* The transfer is what arrived in this buffer from here on, not only
	 * what this read takes of it: a reader that peeks at a few bytes,
	 * or takes a message in small reads, still shows the request whole;
	 * its later reads of the same bytes are not looked at again. */
	avail = skb->len - off;
	cn->recv_next = seq + avail;
	/* filled here, not zeroed where declared: clang stores the zeroes at
	 * the program's entry, for every TCP read of the host */
	v = (struct obs_iov_view){ .skb = skb, .skb_off = off, .cnt = 1, .len0 = avail,
				   .moved = avail };
	return on_transfer(cn, &v, 0, tp->tcp_clock_cache);
}

/* Kernels without tcp:tcp_sendmsg_locked (before 6.16): the agent loads
 * this one instead of hp_obs_sendmsg. */
SEC("tp_btf/sock_send_length")
int BPF_PROG(hp_obs_send, struct sock *sk, int ret, int flags)
{
	return on_sock(sk, ret, 1);
}

/*
 * A TCP send, from inside tcp_sendmsg_locked(): the message itself is at
 * hand, its iovecs already copied into the kernel by the syscall, so no
 * saved registers and no user read of an iovec (writev: nginx's every
 * response). Any syscall that sends on a TCP socket comes here (write,
 * writev, send*, sendmmsg, io_uring's send); sendfile/splice (page
 * vectors, not user memory) are not looked at. The tracepoint fires on
 * every round of the function's copy loop and again when a send resumes
 * after waiting for room; the end of what this call sends,
 * write_seq + what is left, is the same at each of them and for a send
 * that finishes the rest of an earlier partial one (non-blocking, EAGAIN),
 * and different for any other send: only its first sighting is looked at.
 * What is timed and read is what the call was asked to send, not (as
 * with sock_send_length) what it did.
 */
SEC("tp_btf/tcp_sendmsg_locked")
int BPF_PROG(hp_obs_sendmsg, struct sock *sk, struct msghdr *msg, struct sk_buff *skb, int size_goal)
{
	const struct iov_iter *it = &msg->msg_iter;
	struct obs_iov_view v;
	struct obs_conn *cn;
	__u64 left, off;
	__u32 end;
	__u8 type;

	if (!watched_port(sk))        /* TCP's own tracepoint: a TCP socket */
		return 0;
	type = it->iter_type;
	if (type != ITER_UBUF && type != ITER_IOVEC)
		return 0;
	cn = sock_conn(sk, true);
	if (!cn)
		return 0;
	left = it->count;
	end = tcp_view(sk)->write_seq + (__u32)left;
	if (cn->send_end == end)
		return 0;
	cn->send_end = end;
	if (!is_request(cn, 1) && !cn->len)
		return 0;
	off = it->iov_offset;
	v = (struct obs_iov_view){ .moved = left, .cnt = 1 };      /* not at entry: see hp_obs_rx */
	if (type == ITER_UBUF) {
		v.base0 = (__u64)it->ubuf + off;
		v.len0 = left;
	} else {
		const struct iovec *iov = it->__iov;
		__u64 nr = it->nr_segs, rest = left;

		v.base0 = (__u64)iov[0].iov_base + off;
		v.len0 = iov[0].iov_len - off;
		/* The last chunk, for a PostgreSQL response's tail: the
		 * kernel's copy of the iovecs, read without a user copy. */
		if (cn->protocol == OBS_PROTO_POSTGRES) {
			v.cnt = 0;              /* not found: no tail */
			for (int i = 0; i < MAX_IOV; i++) {
				__u64 b = (__u64)iov[i].iov_base, l = iov[i].iov_len;

				if (i >= nr)
					break;
				if (!i) {
					b += off;
					l -= off;
				}
				if (l >= rest) {
					v.tail_base = b;
					v.tail_len = rest;
					v.cnt = 1;
					break;
				}
				rest -= l;
			}
		}
	}
	return on_transfer(cn, &v, 1, 0);
}

/* A socket that reaches TCP_CLOSE gives its slot back, zeroed, so the
 * next socket to claim it starts unclassified. A watched one that is
 * established gets its cookie (its slot's key) now: hp_obs_rx, which
 * sees its first request, cannot make one. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(hp_obs_close, struct sock *sk, int oldstate, int newstate)
{
	__u64 cookie;
	struct obs_conn *sl;

	if (!sk)
		return 0;
	if (newstate == TCP_ESTABLISHED) {
		if (watched_sock(sk))
			bpf_get_socket_cookie(sk);
		return 0;
	}
	cookie = sk->__sk_common.skc_cookie.counter;
	if (newstate != TCP_CLOSE || !(sl = slot_held(cookie)))
		return 0;
	conn_reset(sl);
	__sync_val_compare_and_swap(&sl->cookie, cookie, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
