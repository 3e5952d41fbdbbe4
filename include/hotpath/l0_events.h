/*
 * l0_events.h - structs shared by bpf/l0.bpf.c and agent/cache/l0.c.
 *
 * Fixed-size fields, no includes (the BPF side gets __u32/__u64 from
 * vmlinux.h, userspace from <linux/types.h>). These are what
 * `bpftool map dump pinned /sys/fs/bpf/hotpath/l0_cache` prints.
 */
#ifndef HOTPATH_L0_EVENTS_H
#define HOTPATH_L0_EVENTS_H

#define L0_KEY_MAX 128                  /* longest key L0 holds */
#define L0_VALUE_MAX 1024               /* longest value L0 holds */
#define L0_REPLY_MAX (L0_VALUE_MAX + 16)  /* "$1024\r\n" + value + "\r\n" */
#define L0_BATCH_MAX 16                 /* GETs answered from one segment */
#define L0_OUT_MAX (L0_BATCH_MAX * L0_REPLY_MAX)
#define L0_CONN_SLOTS 65536             /* per-connection state, by cookie hash */
#define L0_LOCAL_MAX 4096               /* largest request or reply answered on the send side */
#define L0_RELAY_SNAPS 256              /* kernel answers on their way through the relay at most */

/*
 * The verdict program marks each segment it redirects to the relay socket
 * in skb->priority, which the relay's sk_msg program reads from the head
 * of the relay's queue (bpf/l0.bpf.c): a pass for the daemon, or an
 * answer whose replies are in l0_relay_snaps[priority & 0xffff].
 */
#define L0_RELAY_PASS 0x4c300000u
#define L0_RELAY_ANSWER 0x4c310000u
#define L0_RELAY_KIND_MASK 0xffff0000u

/* Key of map l0_cache: the key bytes, zero-padded. */
struct l0_key {
	__u32 len;
	char data[L0_KEY_MAX];        /* char: bpftool prints printable keys as text */
};

/* Value of map l0_cache: the ready-made RESP reply for a GET. */
struct l0_value {
	__u64 expire_ns;                /* CLOCK_MONOTONIC deadline, 0 = none */
	__u64 hits;                     /* GETs the kernel answered with it (the refresher
					 * credits them to L1's heat) */
	__u32 reply_len;
	__u32 value_len;
	char reply[L0_REPLY_MAX];       /* "$<len>\r\n<value>\r\n" */
};

/*
 * One connection of the RESP front (array l0_conns, slot = cookie % slots).
 * The kernel may answer on this connection only while every byte it passed
 * to the daemon has been read and answered: passed == done. The verdict
 * program writes `passed`, the daemon writes `done` (through mmap).
 */
struct l0_conn {
	__u64 cookie;                   /* owner of the slot; 0 = free */
	__u64 passed;                   /* bytes handed to the daemon */
	__u64 done;                     /* bytes the daemon read and answered */
	__u64 hits;                     /* GETs answered in the kernel */
	/* Relayed segments (kernel answers of the verdict program, see
	 * bpf/l0.bpf.c): written by the kernel only. */
	__u64 pass_end;                 /* `passed` after the last segment passed through the relay */
	__u32 relay_out;                /* segments queued on the relay socket, not yet forwarded */
	__u32 relay_bytes;              /* bytes of the replies among them */
	__u32 relay_end;                /* the front's write_seq once every relayed reply is written */
	__u32 relay_valid;              /* relay_end holds: kernel answers since the last pass */
};

/* The replies of a relayed answer, as the verdict program saw L0. */
struct l0_relay_snap {
	__u32 busy;                     /* 1 from the verdict's copy to the relay's */
	__u32 len;
	__u8 out[L0_OUT_MAX];
};

/*
 * A connection between a local client and the RESP front, as the front's
 * socket sees it (keys of l0_pairs and l0_clients). Addresses in network
 * order, ports in host order.
 */
struct l0_tuple {
	__u32 lip, rip;                 /* the front's address, the client's */
	__u32 lport, rport;             /* the front's port, the client's */
};

/*
 * Value of l0_pairs: which of the two ends sock_ops has enrolled, and the
 * bytes the client's writes sent on to the daemon. `sent` is counted from
 * the client's first byte, whether or not the front was enrolled yet (a
 * client may write before the front's side of the handshake completes),
 * and compared with the daemon's `done`, also counted from the first byte.
 */
struct l0_pair {
	__u64 front_cookie;             /* the front's socket (its l0_conns slot); 0 = not yet */
	__u64 front_sk;                 /* its struct sock, to read what the daemon wrote */
	__u64 client_sk;                /* the client's, to read what it has read */
	__u64 sent;                     /* bytes the client's writes sent to the daemon */
	__u32 client;                   /* 1: the client's socket is in l0_clients */
	__u32 pad;
};

/* Per-CPU counters (map l0_stats). */
struct l0_stats {
	__u64 hits;                     /* GETs answered in the kernel */
	__u64 segments_answered;        /* segments rewritten into replies */
	__u64 pass_miss;                /* segments passed: a key not in L0 or expired */
	__u64 pass_busy;                /* passed: earlier commands still in the daemon or unread */
	__u64 pass_other;               /* passed: not only complete GETs */
	__u64 pass_error;               /* passed: rewrite or redirect failed */
	__u64 pass_size;                /* passed: replies too short or too long */
	__u64 conns;                    /* connections enrolled by sock_ops */
	__u64 conn_collisions;          /* enrolment refused: slot in use */
	__u64 local_conns;              /* connections answered on the client's send side */
	__u64 local_answered;           /* client writes answered on the send side */
	__u64 pass_room;                /* passed: the client's unread kernel answers fill its rcvbuf,
					 * or a remote client's send buffer or the relay is full */
	__u64 relay_answered;           /* kernel answers the relay socket forwarded to the client */
	__u64 relay_passed;             /* segments passed to the daemon through the relay socket */
	__u64 relay_lost;               /* relayed segments whose client was gone (discarded) */
	__u64 pass_remote;              /* passed: a connection only the relay could answer, while
					 * it is off ([l0] remote = no, or no relay socket) */
};

#endif
