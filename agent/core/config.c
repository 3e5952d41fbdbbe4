/*
 * config.c - hotpath's configuration: one declarative key table drives it all.
 *
 * Every key of the INI file is one row of cfg_keys[] (plain sections) or of
 * a small per-kind table (named sections such as [partition.NAME]): section,
 * key, type, where it lands in struct hp_config (offsetof + sizeof), default
 * as text, range, flags (reloadable, required, ...) and a one-line doc. The
 * habit is pgbouncer's bouncer_params[] and redis's standardConfig, written
 * here from scratch. From those rows come: config_defaults (each default is
 * parsed by the same code as the file, so a default can't disagree with its
 * parser), parsing and validation, config_visit (the API's view),
 * config_write_ini (etc/hotpath.ini and `hotpathd -t -v`),
 * config_write_markdown (docs/configuration.md), config_write_man
 * (hotpath.ini(5)), config_key_reloadable and
 * config_diff_restart (SIGHUP). Checks that span several keys live in
 * cfg_checks[], which documents itself the same way.
 *
 * Parsing is a line loop over a bounded buffer (1 MiB, 4096-byte lines, no
 * NUL): `[section]`, `key = value`, `#`/`;` comments. A `#` or `;` that
 * starts an unquoted value or follows a blank begins a trailing comment;
 * double quotes keep a value verbatim (`\"` and `\\` are the only escapes).
 * Plain numbers are bytes for sizes and MILLISECONDS for durations. Errors
 * are collected, line-numbered and capped at CFG_MAX_ERRORS; the result is
 * built in a private copy, so the caller's struct only changes on success
 * and a failed SIGHUP reload keeps the old config.
 *
 * Deliberately not here: includes, environment expansion, and anything that
 * touches the system (resolving hosts, checking that files exist). The
 * module depends only on libc, so tests and the fuzzer link it alone. No
 * INI library is used: the ones Debian ships (inih, iniparser) have neither
 * line-numbered error collection nor typed, table-driven keys, and the
 * parser is the small part of this file.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include "hotpath/admit.h"
#include "hotpath/compress.h"
#include "hotpath/config.h"
#include "hotpath/log.h"

#define CFG_MAX_FILE (1024 * 1024)
#define CFG_MAX_LINE 4096
#define CFG_MAX_ERRORS 20
#define CFG_SNIP 40                    /* user text echoed in messages */
#define CFG_MAX_INSTANCES 64           /* largest HP_MAX_* */
#define CFG_MAX_KIND_KEYS 24
#define CFG_WRAP 76

#define KB (UINT64_C(1) << 10)
#define MB (UINT64_C(1) << 20)
#define GB (UINT64_C(1) << 30)
#define TB (UINT64_C(1) << 40)
#define SEC UINT64_C(1000)
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

enum cfg_type {
	CT_BOOL,
	CT_UINT,
	CT_SIZE,
	CT_DURATION,
	CT_STRING,
	CT_ENUM,
	CT_HOSTPORT,
	CT_HOSTPORT_LIST,
	CT_HOST,                       /* name, IP, or Unix socket directory */
	CT_PATH,
	CT_NAME,                       /* refers to a named section */
};

enum {
	CF_RELOAD = 1 << 0,            /* applied on SIGHUP */
	CF_REQUIRED = 1 << 1,          /* named sections: must be set */
	CF_OPTIONAL = 1 << 2,          /* an empty value is allowed */
	CF_POW2 = 1 << 3,
	CF_SECONDS = 1 << 4,           /* duration stored in whole seconds */
	CF_ABSOLUTE = 1 << 5,          /* path must start with '/' */
	CF_SECRET = 1 << 6,            /* masked by config_visit */
	CF_DEFAULT_NAME = 1 << 7,      /* empty means the section's NAME */
};

struct cfg_key {
	const char *section;           /* plain section, or kind for named */
	const char *key;
	enum cfg_type type;
	size_t off, width;             /* target inside its struct */
	const char *def;               /* NULL only with CF_REQUIRED */
	uint64_t min, max;             /* CT_UINT/SIZE/DURATION (ms) */
	const char *const *names;      /* CT_ENUM, NULL-terminated */
	unsigned flags;
	const char *doc;
	const char *example;           /* named sections: shown in examples */
};

#define CFG_AT(type, m) .off = offsetof(type, m), .width = sizeof(((type *)0)->m)
#define G(m) CFG_AT(struct hp_config, m)

static const char *const log_level_names[] = { "error", "warn", "info", "debug", NULL };
static const char *const eviction_names[] = { "s3fifo", "lru", NULL };
static const char *const send_hook_names[] = { "auto", "socket", NULL };
static const char *const priority_names[] = { "low", "normal", "high", NULL };
static const char *const balance_names[] = {
	"round_robin", "least_request", "ewma", "hash", NULL };
static const char *const auth_type_names[] = { "scram-sha-256", "md5", "trust", NULL };
static const char *const pool_mode_names[] = { "session", "transaction", NULL };
static const char *const protocol_names[] = { "auto", "http", "resp", "postgres", NULL };
static const char *const write_mode_names[] = { "none", "through", "behind", NULL };
static const char *const breaker_window_names[] = { "count", "time", NULL };
static const char *const inflight_limit_names[] = { "fixed", "gradient", NULL };

_Static_assert(HP_LOG_ERROR == 0 && HP_LOG_DEBUG == 3, "log_level_names order");
_Static_assert(HP_EVICT_S3FIFO == 0 && HP_EVICT_LRU == 1, "eviction_names order");
_Static_assert(HP_SEND_HOOK_AUTO == 0 && HP_SEND_HOOK_SOCKET == 1, "send_hook_names order");
_Static_assert(HP_PRIO_LOW == 0 && HP_PRIO_HIGH == 2, "priority_names order");
_Static_assert(HP_BAL_ROUND_ROBIN == 0 && HP_BAL_HASH == 3, "balance_names order");
_Static_assert(HP_AUTH_SCRAM == 0 && HP_AUTH_TRUST == 2, "auth_type_names order");
_Static_assert(HP_POOL_SESSION == 0 && HP_POOL_TRANSACTION == 1, "pool_mode_names order");
_Static_assert(HP_PROTO_AUTO == 0 && HP_PROTO_POSTGRES == 3, "protocol_names order");
_Static_assert(HP_WRITE_NONE == 0 && HP_WRITE_BEHIND == 2, "write_mode_names order");

struct cfg_section {
	const char *name;
	const char *doc;
};

/* Plain sections, in the order files and docs show them. */
static const struct cfg_section cfg_sections[] = {
	{ "core", "Process-wide settings: logging, worker threads, shutdown." },
	{ "resp", "The RESP (Redis protocol) cache front that applications talk to." },
	{ "api", "The REST API, /metrics and /dashboard." },
	{ "cache", "The L1 cache in the daemon's memory." },
	{ "l0", "The L0 cache: the hottest keys copied into a kernel map and "
		"answered there, without a trip through the daemon." },
	{ "bpf", "Kernel observation with eBPF: request latency, CPU profiles and "
		 "query times of the services on this host. Without root or BPF "
		 "support the daemon runs without it and says so once in the log." },
	{ "redis", "The optional L2 cache on Redis. Leave both keys empty for no L2." },
	{ "tasks", "The background task processor shared by write-behind, cache "
		   "warming and refresh-ahead: worker threads, a bounded queue that "
		   "pushes back on producers, retries with jittered exponential "
		   "backoff, and dead letters for tasks that keep failing." },
	{ "http", "The HTTP caching reverse proxy. It runs when `upstream` names "
		  "an [upstream.NAME] section." },
	{ "pooler", "The PostgreSQL connection pooler. It runs when at least one "
		    "[database.NAME] section exists." },
	{ "warm", "Cache warming: the hot-key snapshot saved at shutdown and "
		  "loaded at start (warm restart). Warm jobs from the API run on "
		  "the task processor." },
	{ "query_analysis", "Query analysis behind the pooler: statistics per query "
			    "fingerprint from the pooler's own timing, EXPLAIN plans of "
			    "the slow ones with sampled parameters, and index "
			    "recommendations checked with HypoPG (docs/pooler.md)." },
	{ "query_cache", "Result caching of chosen read-only queries that pass "
			 "through the pooler, in the shared cache tiers, invalidated "
			 "when the pooler sees writes to the tables they read." },
};

static const struct cfg_key cfg_keys[] = {
	/* [core] */
	{ .section = "core", .key = "log_level", .type = CT_ENUM, G(log_level),
	  .def = "info", .names = log_level_names, .flags = CF_RELOAD,
	  .doc = "Least severe message that is logged (to stderr, and to the "
		 "journal under systemd)." },
	{ .section = "core", .key = "workers", .type = CT_UINT, G(workers),
	  .def = "0", .min = 0, .max = 64,
	  .doc = "Worker threads serving client connections; 0 starts one per "
		 "online CPU." },
	{ .section = "core", .key = "shutdown_timeout", .type = CT_DURATION,
	  G(shutdown_timeout_ms), .def = "5s", .min = 0, .max = HOUR,
	  .flags = CF_RELOAD,
	  .doc = "On SIGTERM, how long in-flight requests may take to finish "
		 "before connections are closed; 0 closes them at once." },

	/* [resp] */
	{ .section = "resp", .key = "listen", .type = CT_HOSTPORT, G(resp_listen),
	  .def = "127.0.0.1:6479",
	  .doc = "Address the RESP server listens on." },
	{ .section = "resp", .key = "max_clients", .type = CT_UINT,
	  G(resp_max_clients), .def = "10000", .min = 1, .max = 1000000,
	  .flags = CF_RELOAD,
	  .doc = "Client connections served at once; a client beyond this gets "
		 "an error reply and is disconnected." },
	{ .section = "resp", .key = "idle_timeout", .type = CT_DURATION,
	  G(resp_idle_timeout_s), .def = "300s", .min = 0, .max = 30 * DAY,
	  .flags = CF_RELOAD | CF_SECONDS,
	  .doc = "Close client connections idle for this long; 0 never closes "
		 "them. Whole seconds." },
	{ .section = "resp", .key = "max_parked_clients", .type = CT_UINT,
	  G(resp_max_parked_clients), .def = "1024", .min = 1, .max = 1000000,
	  .flags = CF_RELOAD,
	  .doc = "Clients waiting at once for a cache load (a GET that missed "
		 "and needs its strategy's loader) while the worker serves the "
		 "others; a miss beyond this gets -BUSY at once." },
	{ .section = "resp", .key = "max_key_len", .type = CT_SIZE,
	  G(resp_max_key_len), .def = "512", .min = 1, .max = MB,
	  .flags = CF_RELOAD,
	  .doc = "Longest key accepted, in bytes; a command with a longer key "
		 "gets an error reply." },
	{ .section = "resp", .key = "max_value_size", .type = CT_SIZE,
	  G(resp_max_value_size), .def = "1mb", .min = 1, .max = 512 * MB,
	  .flags = CF_RELOAD,
	  .doc = "Largest value accepted by SET and the other writing commands; "
		 "larger values get an error reply." },
	{ .section = "resp", .key = "max_args", .type = CT_UINT,
	  G(resp_max_args), .def = "1024", .min = 1, .max = 1048576,
	  .flags = CF_RELOAD,
	  .doc = "Most arguments in one command, the command name included (an "
		 "MSET counts every key and every value)." },
	{ .section = "resp", .key = "max_query_buffer", .type = CT_SIZE,
	  G(resp_max_query_buffer), .def = "8mb", .min = 1 * KB, .max = 4 * GB,
	  .flags = CF_RELOAD,
	  .doc = "Most unparsed input buffered for one client; a client that "
		 "sends more is disconnected. Must hold a key of max_key_len plus "
		 "a value of max_value_size." },
	{ .section = "resp", .key = "max_output_buffer", .type = CT_SIZE,
	  G(resp_max_output_buffer), .def = "64mb", .min = 64 * KB, .max = 64 * GB,
	  .flags = CF_RELOAD,
	  .doc = "Most reply bytes pending for one client; a client that reads "
		 "too slowly to stay under it is disconnected. At least "
		 "max_value_size." },

	/* [api] */
	{ .section = "api", .key = "listen", .type = CT_HOSTPORT, G(api_listen),
	  .def = "127.0.0.1:9479",
	  .doc = "Address the REST API, /metrics and /dashboard listen on." },
	{ .section = "api", .key = "tokens_file", .type = CT_PATH,
	  G(api_tokens_file), .def = "", .flags = CF_OPTIONAL | CF_RELOAD,
	  .doc = "File of API tokens, one `NAME SHA256-HEX-OF-TOKEN SCOPE,SCOPE` "
		 "a line (`#` starts a comment); `hotpathctl token new NAME "
		 "SCOPES` prints a token and its line. Empty: there are no "
		 "tokens, so every route that needs one answers 401, and the "
		 "daemon logs this at start." },
	{ .section = "api", .key = "metrics_auth", .type = CT_BOOL,
	  G(api_metrics_auth), .def = "no", .flags = CF_RELOAD,
	  .doc = "Require a token with the metrics:read scope for GET /metrics. "
		 "With no, /metrics is open to whoever can reach api.listen." },
	{ .section = "api", .key = "max_body", .type = CT_SIZE, G(api_max_body),
	  .def = "1mb", .min = 1 * KB, .max = 64 * MB, .flags = CF_RELOAD,
	  .doc = "Largest request body accepted; a larger one gets 413." },
	{ .section = "api", .key = "max_connections", .type = CT_UINT,
	  G(api_max_connections), .def = "256", .min = 1, .max = 65536,
	  .doc = "API connections served at once." },

	/* [cache] */
	{ .section = "cache", .key = "l1_max_memory", .type = CT_SIZE,
	  G(l1_max_memory), .def = "256mb", .min = 64 * KB, .max = 4 * TB,
	  .flags = CF_RELOAD,
	  .doc = "Memory the L1 cache may use for keys, values and their "
		 "bookkeeping; eviction keeps it under this." },
	{ .section = "cache", .key = "eviction", .type = CT_ENUM, G(eviction),
	  .def = "s3fifo", .names = eviction_names, .flags = CF_RELOAD,
	  .doc = "Eviction policy: s3fifo (scan-resistant: keys read once leave "
		 "first) or lru (least recently used leaves first)." },
	{ .section = "cache", .key = "l1_shards", .type = CT_UINT, G(l1_shards),
	  .def = "64", .min = 1, .max = 1024, .flags = CF_POW2,
	  .doc = "Independent shards, each with its own lock, the L1 is split "
		 "into; a power of two." },
	{ .section = "cache", .key = "active_expire_hz", .type = CT_UINT,
	  G(active_expire_hz), .def = "10", .min = 1, .max = 500,
	  .flags = CF_RELOAD,
	  .doc = "Times a second a background pass removes expired keys." },
	{ .section = "cache", .key = "memory_pressure", .type = CT_BOOL,
	  G(memory_pressure), .def = "yes", .flags = CF_RELOAD,
	  .doc = "Shrink the cache when the kernel reports memory pressure "
		 "(PSI, cgroup memory limits)." },
	{ .section = "cache", .key = "max_ttl", .type = CT_DURATION, G(max_ttl_ms),
	  .def = "0", .min = 0, .max = 3650 * DAY, .flags = CF_RELOAD,
	  .doc = "Longest TTL a key may have; longer TTLs are shortened to it. "
		 "0 = no cap." },

	/* [l0] */
	{ .section = "l0", .key = "enabled", .type = CT_BOOL, G(l0_enabled),
	  .def = "yes", .flags = CF_RELOAD,
	  .doc = "Serve the hottest keys from the kernel map. Needs [bpf] "
		 "enabled and BPF support; without them L0 stays off and the "
		 "daemon says so once in the log. While off, its sock_ops "
		 "program is not attached to the root cgroup." },
	{ .section = "l0", .key = "remote", .type = CT_BOOL, G(l0_remote),
	  .def = "no", .flags = CF_RELOAD,
	  .doc = "Answer clients the send side cannot serve (remote or IPv6 "
		 "ones) in the kernel too, through the relay socket. Off by "
		 "default: measured slower than the daemon on a small machine, "
		 "and a client reset can stop the relay (docs/l0.md); with `no` "
		 "they are served by the daemon and no relay socket is created. "
		 "Switched off at runtime, an open relay socket stays open but "
		 "gets no new answers." },
	{ .section = "l0", .key = "max_keys", .type = CT_UINT, G(l0_max_keys),
	  .def = "4096", .min = 16, .max = 65536,
	  .doc = "Most keys L0 holds (the size of the kernel map l0_cache). Every "
		 "second the hottest keys of L1 with small values are copied in and "
		 "keys that cooled are removed." },
	{ .section = "l0", .key = "max_value_size", .type = CT_SIZE, G(l0_max_value_size),
	  .def = "1kb", .min = 1, .max = 1024,
	  .doc = "Largest value copied to L0 (at most 1kb: the kernel builds the "
		 "reply in one pass)." },
	{ .section = "l0", .key = "min_hits", .type = CT_UINT, G(l0_min_hits),
	  .def = "2", .min = 1, .max = 1000000,
	  .doc = "GETs a key needs in the last second (decayed) to be considered "
		 "hot enough for L0." },

	/* [bpf] */
	{ .section = "bpf", .key = "enabled", .type = CT_BOOL, G(bpf_enabled),
	  .def = "yes",
	  .doc = "Load the eBPF programs that observe the services on this host." },
	{ .section = "bpf", .key = "pin_path", .type = CT_PATH, G(bpf_pin_path),
	  .def = "/sys/fs/bpf/hotpath", .flags = CF_ABSOLUTE,
	  .doc = "bpffs directory where the maps users inspect are pinned: "
		 "`bpftool map dump pinned PATH/NAME`." },
	{ .section = "bpf", .key = "observe_events_per_sec", .type = CT_UINT,
	  G(observe_events_per_sec), .def = "2000", .min = 0, .max = 1000000,
	  .doc = "Individual request events the kernel may send per CPU per "
		 "second (the exact percentiles of /performance/metrics come from "
		 "them); the last quarter is kept for slow requests. Counts and "
		 "histograms are kept in the kernel for every request whatever "
		 "this is; events over the budget are dropped and counted." },
	{ .section = "bpf", .key = "observe_slow_threshold", .type = CT_DURATION,
	  G(observe_slow_threshold_ms), .def = "10ms", .min = 1, .max = 3600 * SEC,
	  .doc = "A request at least this slow may use the reserved last quarter "
		 "of the event budget." },
	{ .section = "bpf", .key = "observe_local_callers", .type = CT_BOOL,
	  G(observe_local_callers), .def = "no",
	  .doc = "Also time the client side (outbound) of connections from this "
		 "host to a [service.NAME] port that is watched here without pid or "
		 "cgroup: such a request is then recorded twice, by the service's "
		 "socket and by its caller's, and pays the kernel's work twice. With "
		 "no, it is timed once, as the service saw it; remote callers, and "
		 "[database]/[redis] connections, are timed on the client side either "
		 "way." },
	{ .section = "bpf", .key = "observe_discover", .type = CT_BOOL,
	  G(observe_discover), .def = "yes",
	  .doc = "Watch every listening TCP socket of the host, found every 5 s "
		 "(its protocol guessed from the port, else sniffed from the first "
		 "request), besides the [service.NAME], [database.NAME] and [redis] "
		 "sections and the default ports; not the agent's own listeners, "
		 "whose requests it counts itself (a [service.NAME] on one is "
		 "watched). no: only those; a listener nobody declared is neither "
		 "listed nor timed." },
	{ .section = "bpf", .key = "observe_send_hook", .type = CT_ENUM,
	  G(observe_send_hook), .def = "auto", .names = send_hook_names,
	  .doc = "Where sends are seen. auto: the tcp:tcp_sendmsg_locked "
		 "tracepoint where the kernel has it (6.16 on), whose message "
		 "carries the kernel's copy of the iovecs (no user read of them, "
		 "and sendmmsg and io_uring sends are seen), else "
		 "sock:sock_send_length. socket: sock:sock_send_length always "
		 "(the syscall's saved registers say where the buffer is)." },
	{ .section = "bpf", .key = "observe_recv_hook", .type = CT_ENUM,
	  G(observe_recv_hook), .def = "auto", .names = send_hook_names,
	  .doc = "Where reads are seen. auto: the skb:skb_copy_datagram_iovec "
		 "tracepoint, where the kernel lets a tracing program read a "
		 "socket buffer (6.15 on): the bytes are read in the kernel before "
		 "they are copied out, and a read that finds nothing costs nothing; "
		 "else sock:sock_recv_length. socket: sock:sock_recv_length always "
		 "(the bytes read from the user's buffer, found through the "
		 "syscall's saved registers; kernel TLS sockets are seen only "
		 "there)." },
	{ .section = "bpf", .key = "observe_conn_slots", .type = CT_UINT,
	  G(observe_conn_slots), .def = "16384", .min = 0, .max = 262144, .flags = CF_POW2,
	  .doc = "Watched connections whose state the kernel keeps in a table "
		 "(320 bytes a slot, allocated when observation starts: 5 MiB by "
		 "default), found without a helper call on each transfer; a "
		 "connection whose slot another holds, and every connection with 0, "
		 "keeps its state in socket-local storage instead, a helper call on "
		 "each transfer (0.5% of nginx's core serving a 1 KiB file: "
		 "docs/benchmarks.md). A power of two." },
	{ .section = "bpf", .key = "profile_hz", .type = CT_UINT, G(profile_hz),
	  .def = "49", .min = 1, .max = 1000,
	  .doc = "CPU profile sampling rate per CPU while a profile window runs "
		 "(perf_event software cpu-clock). 49 Hz keeps the cost negligible "
		 "and avoids lockstep with timers that fire at round rates." },
	{ .section = "bpf", .key = "profile_max_seconds", .type = CT_UINT,
	  G(profile_max_seconds), .def = "60", .min = 1, .max = 300, .flags = CF_RELOAD,
	  .doc = "Longest profile window one API request may ask for." },

	/* [redis] */
	{ .section = "redis", .key = "address", .type = CT_HOSTPORT,
	  G(redis_address), .def = "", .flags = CF_OPTIONAL,
	  .doc = "A single Redis server used as the L2 cache. Empty: no L2." },
	{ .section = "redis", .key = "cluster", .type = CT_HOSTPORT_LIST,
	  G(redis_cluster), .def = "", .flags = CF_OPTIONAL,
	  .doc = "Seed nodes of a Redis Cluster used as the L2 cache, "
		 "HOST:PORT,HOST:PORT,... Use instead of address." },
	{ .section = "redis", .key = "pool_size", .type = CT_UINT, G(redis_pool_size),
	  .def = "4", .min = 1, .max = 256,
	  .doc = "Connections kept to each Redis node; a request waits up to "
		 "command_timeout for a free one." },
	{ .section = "redis", .key = "queue_max", .type = CT_UINT, G(redis_queue_max),
	  .def = "4096", .min = 16, .max = 1024 * 1024,
	  .doc = "Requests handed to the L2 dispatcher (the RESP front's L1 "
		 "misses and the commands it forwards to Redis, the pooler's "
		 "misses and stores) that may be queued or waiting for Redis at "
		 "once; past it a command gets a -BUSY error at once instead of "
		 "queueing behind a slow Redis." },
	{ .section = "redis", .key = "connect_timeout", .type = CT_DURATION,
	  G(redis_connect_timeout_ms), .def = "500ms", .min = 1, .max = MIN,
	  .doc = "Longest wait for a connection to a Redis node." },
	{ .section = "redis", .key = "command_timeout", .type = CT_DURATION,
	  G(redis_command_timeout_ms), .def = "200ms", .min = 1, .max = MIN,
	  .doc = "Longest wait for a Redis reply; a timeout counts as a failure "
		 "for the circuit breaker." },
	{ .section = "redis", .key = "l1_ttl", .type = CT_DURATION, G(redis_l1_ttl_ms),
	  .def = "60s", .min = 1, .max = 30 * DAY,
	  .doc = "Longest time a value read from Redis stays in L1: its Redis "
		 "TTL, capped by this." },
	{ .section = "redis", .key = "stale_if_error", .type = CT_DURATION,
	  G(redis_stale_if_error_ms), .def = "30s", .min = 0, .max = DAY,
	  .doc = "When the invalidation connection to Redis is lost, L1 keeps "
		 "serving the keys it holds for this long (they may be stale by "
		 "at most this much); then, or as soon as the connection is "
		 "back, L1 and L0 are flushed. 0 flushes at once." },
	{ .section = "redis", .key = "tracking", .type = CT_BOOL, G(redis_tracking),
	  .def = "yes",
	  .doc = "Keep L1 coherent with writers that bypass hotpath, through "
		 "Redis client tracking (CLIENT TRACKING ... REDIRECT). With no, "
		 "L1 copies live until l1_ttl." },
	{ .section = "redis", .key = "channel", .type = CT_STRING, G(redis_channel),
	  .def = "hotpath:invalidate", .flags = CF_OPTIONAL,
	  .doc = "Pub/sub channel on which agents sharing this Redis tell each "
		 "other about pattern invalidations. Empty: not used." },
	{ .section = "redis", .key = "breaker_failure_pct", .type = CT_UINT,
	  G(redis_breaker_failure_pct), .def = "50", .min = 1, .max = 100,
	  .doc = "Share of failed (or slow) calls among the last 20 that opens "
		 "the circuit breaker on the L2 path." },
	{ .section = "redis", .key = "breaker_open_time", .type = CT_DURATION,
	  G(redis_breaker_open_ms), .def = "2s", .min = 10, .max = HOUR,
	  .doc = "How long the breaker stays open before half-open probes." },
	{ .section = "redis", .key = "slow_call", .type = CT_DURATION,
	  G(redis_slow_call_ms), .def = "100ms", .min = 1, .max = MIN,
	  .doc = "A Redis call slower than this counts as slow for the breaker." },

	/* [tasks] */
	{ .section = "tasks", .key = "workers", .type = CT_UINT, G(tasks_workers),
	  .def = "2", .min = 1, .max = 64,
	  .doc = "Threads running background tasks." },
	{ .section = "tasks", .key = "queue_max", .type = CT_UINT, G(tasks_queue_max),
	  .def = "10000", .min = 1, .max = 10000000,
	  .doc = "Tasks held at once (queued, waiting to retry or running); a "
		 "producer beyond it is pushed back." },
	{ .section = "tasks", .key = "dead_letters", .type = CT_UINT, G(tasks_dead_max),
	  .def = "1000", .min = 1, .max = 1000000,
	  .doc = "Failed tasks remembered for inspection (oldest forgotten first)." },
	{ .section = "tasks", .key = "max_attempts", .type = CT_UINT,
	  G(tasks_max_attempts), .def = "5", .min = 1, .max = 100,
	  .doc = "Attempts before a failing task becomes a dead letter." },
	{ .section = "tasks", .key = "backoff_base", .type = CT_DURATION,
	  G(tasks_backoff_base_ms), .def = "100ms", .min = 1, .max = HOUR,
	  .doc = "Delay before the first retry; doubled at each further retry, "
		 "with jitter." },
	{ .section = "tasks", .key = "backoff_max", .type = CT_DURATION,
	  G(tasks_backoff_max_ms), .def = "30s", .min = 1, .max = DAY,
	  .doc = "Longest delay between retries." },

	/* [http] */
	{ .section = "http", .key = "listen", .type = CT_HOSTPORT, G(http_listen),
	  .def = "127.0.0.1:8479",
	  .doc = "Address the HTTP caching proxy listens on." },
	{ .section = "http", .key = "upstream", .type = CT_NAME, G(http_upstream),
	  .def = "", .flags = CF_OPTIONAL,
	  .doc = "NAME of the [upstream.NAME] section requests are forwarded "
		 "to. Empty: the proxy is off." },
	{ .section = "http", .key = "max_request_line", .type = CT_SIZE,
	  G(http_max_request_line), .def = "8kb", .min = 256, .max = 1 * MB,
	  .doc = "Longest request line (method, target, version); a longer one "
		 "gets 414." },
	{ .section = "http", .key = "max_header_size", .type = CT_SIZE,
	  G(http_max_header_size), .def = "32kb", .min = 1 * KB, .max = 1 * MB,
	  .doc = "Largest request or response header section; a larger request "
		 "head gets 431, a larger response head 502." },
	{ .section = "http", .key = "max_headers", .type = CT_UINT, G(http_max_headers),
	  .def = "100", .min = 8, .max = 128,
	  .doc = "Most header fields in one message; more get 431." },
	{ .section = "http", .key = "max_body", .type = CT_SIZE, G(http_max_body),
	  .def = "64mb", .min = 0, .max = 64 * GB,
	  .doc = "Largest request body forwarded; a larger Content-Length (or "
		 "chunked body) gets 413." },
	{ .section = "http", .key = "max_object_size", .type = CT_SIZE,
	  G(http_max_object_size), .def = "8mb", .min = 1 * KB, .max = 512 * MB,
	  .doc = "Largest response body stored in the cache; larger ones are "
		 "streamed through without being stored." },
	{ .section = "http", .key = "max_clients", .type = CT_UINT, G(http_max_clients),
	  .def = "10000", .min = 1, .max = 1000000,
	  .doc = "Client connections served at once; beyond it a new connection "
		 "gets 503 and is closed." },
	{ .section = "http", .key = "header_timeout", .type = CT_DURATION,
	  G(http_header_timeout_ms), .def = "10s", .min = 100, .max = HOUR,
	  .doc = "Time a client has to send a complete request head; then 408." },
	{ .section = "http", .key = "keepalive_timeout", .type = CT_DURATION,
	  G(http_keepalive_timeout_ms), .def = "60s", .min = 100, .max = DAY,
	  .doc = "Idle time after which a keep-alive client connection is closed." },
	{ .section = "http", .key = "connect_timeout", .type = CT_DURATION,
	  G(http_connect_timeout_ms), .def = "2s", .min = 10, .max = 10 * MIN,
	  .doc = "Time to connect to a backend before trying another one." },
	{ .section = "http", .key = "upstream_timeout", .type = CT_DURATION,
	  G(http_upstream_timeout_ms), .def = "30s", .min = 10, .max = HOUR,
	  .doc = "Time a backend may take to start answering, and the longest "
		 "pause between two reads of its answer; then 504." },
	{ .section = "http", .key = "stale_keep", .type = CT_DURATION,
	  G(http_stale_keep_ms), .def = "1h", .min = 0, .max = 30 * DAY,
	  .doc = "How long a stale response with a validator (ETag or "
		 "Last-Modified) stays in the cache to be revalidated." },
	{ .section = "http", .key = "cache", .type = CT_BOOL, G(http_cache),
	  .def = "yes",
	  .doc = "Cache responses (RFC 9111) in L1; no makes a plain balancing "
		 "proxy." },
	{ .section = "http", .key = "l2", .type = CT_BOOL, G(http_l2), .def = "yes",
	  .doc = "With [redis] configured, also store cached responses in L2 "
		 "through the shared tier, so agents sharing the Redis answer "
		 "each other's stored responses; purge and ban reach it as for "
		 "any key." },
	{ .section = "http", .key = "compress", .type = CT_STRING, G(http_compress),
	  .def = "br,zstd,gzip", .flags = CF_OPTIONAL,
	  .doc = "Content codings the proxy offers for stored responses, "
		 "preferred first when a client's Accept-Encoding weighs several "
		 "equally (gzip, br, zstd). Compressed variants are cached next to "
		 "the identity response. Empty: no compression." },
	{ .section = "http", .key = "compress_types", .type = CT_STRING,
	  G(http_compress_types),
	  .def = "text/*, application/json, application/*+json, application/javascript, "
		 "application/xml, application/*+xml, image/svg+xml, application/wasm",
	  .flags = CF_OPTIONAL,
	  .doc = "Media types (globs, comma separated) that are compressed." },
	{ .section = "http", .key = "compress_min_size", .type = CT_SIZE,
	  G(http_compress_min_size), .def = "256", .min = 0, .max = 512 * MB,
	  .doc = "Smallest body compressed; smaller ones gain too little." },
	{ .section = "http", .key = "compress_max_size", .type = CT_SIZE,
	  G(http_compress_max_size), .def = "1mb", .min = 1 * KB, .max = 512 * MB,
	  .doc = "Largest body compressed (compression runs on the worker that "
		 "serves the first request for a variant)." },
	{ .section = "http", .key = "compress_streams", .type = CT_UINT,
	  G(http_compress_streams), .def = "64", .min = 0, .max = 100000,
	  .doc = "Forwarded responses (misses, responses that are not stored) "
		 "compressed on the way at once, each with up to ~1 MB of encoder "
		 "state; beyond it they go out identity. 0: only cached responses "
		 "are compressed." },
	{ .section = "http", .key = "compress_level_gzip", .type = CT_UINT,
	  G(http_compress_level_gzip), .def = "6", .min = 1, .max = 9,
	  .doc = "zlib level for gzip." },
	{ .section = "http", .key = "compress_level_br", .type = CT_UINT,
	  G(http_compress_level_br), .def = "5", .min = 0, .max = 11,
	  .doc = "Brotli quality for br (11 is the smallest and far the slowest)." },
	{ .section = "http", .key = "compress_level_zstd", .type = CT_UINT,
	  G(http_compress_level_zstd), .def = "3", .min = 1, .max = 19,
	  .doc = "zstd level." },
	{ .section = "http", .key = "max_inflight", .type = CT_UINT, G(http_max_inflight),
	  .def = "0", .min = 0, .max = 1000000,
	  .doc = "Admission control: requests in flight to the backends at once "
		 "(split evenly across workers; cache hits never count). Requests "
		 "over it wait in a queue, highest priority class first, and the "
		 "lowest class is shed first (503 with Retry-After). 0: no limit." },
	{ .section = "http", .key = "inflight_limit", .type = CT_ENUM,
	  G(http_inflight_limit), .def = "fixed", .names = inflight_limit_names,
	  .doc = "`fixed`: max_inflight is the limit. `gradient`: the limit "
		 "follows the backends' latency (long-term over short-term average, "
		 "as Netflix's Gradient2), between 1 and max_inflight: it falls "
		 "when they slow down, so requests queue and the low class is shed "
		 "instead of piling onto them." },
	{ .section = "http", .key = "queue_size", .type = CT_UINT, G(http_queue_size),
	  .def = "1024", .min = 1, .max = 1000000,
	  .doc = "Requests waiting for admission per worker; when full, the "
		 "newest request of a lower class than the arrival is shed, or "
		 "the arrival." },
	{ .section = "http", .key = "queue_timeout", .type = CT_DURATION,
	  G(http_queue_timeout_ms), .def = "1s", .min = 1, .max = 10 * MIN,
	  .doc = "Longest wait for admission; then 503." },
	{ .section = "http", .key = "queue_target", .type = CT_DURATION,
	  G(http_queue_target_ms), .def = "20ms", .min = 1, .max = MIN,
	  .doc = "CoDel target: when the oldest waiting request has waited "
		 "longer than this for a whole queue_interval, requests of the "
		 "lowest class queued are shed, more often while it lasts." },
	{ .section = "http", .key = "queue_interval", .type = CT_DURATION,
	  G(http_queue_interval_ms), .def = "100ms", .min = 1, .max = MIN,
	  .doc = "CoDel interval (see queue_target)." },
	{ .section = "http", .key = "retry_after", .type = CT_UINT, G(http_retry_after_s),
	  .def = "1", .min = 0, .max = 86400,
	  .doc = "Seconds sent in Retry-After with a shed request's 503." },
	{ .section = "http", .key = "priority_high", .type = CT_STRING,
	  G(http_priority_high), .def = "", .flags = CF_OPTIONAL,
	  .doc = "Requests of the high class: comma separated globs on the "
		 "request target (`/checkout/*`) or `header:NAME=GLOB` "
		 "(`header:X-Priority=high`). Checked before priority_low; "
		 "anything else is normal." },
	{ .section = "http", .key = "priority_low", .type = CT_STRING,
	  G(http_priority_low), .def = "", .flags = CF_OPTIONAL,
	  .doc = "Requests of the low class, shed first; same syntax as "
		 "priority_high." },

	/* [pooler] */
	{ .section = "pooler", .key = "listen", .type = CT_HOSTPORT,
	  G(pooler_listen), .def = "127.0.0.1:5479",
	  .doc = "Address the PostgreSQL pooler listens on; clients connect "
		 "with the database name NAME of a [database.NAME] section." },
	{ .section = "pooler", .key = "auth_type", .type = CT_ENUM,
	  G(pooler_auth_type), .def = "scram-sha-256", .names = auth_type_names,
	  .doc = "How clients authenticate: scram-sha-256 or md5 with the "
		 "passwords in auth_file, or trust (no password; only for "
		 "loopback use)." },
	{ .section = "pooler", .key = "auth_file", .type = CT_PATH,
	  G(pooler_auth_file), .def = "", .flags = CF_OPTIONAL,
	  .doc = "Users and passwords of clients, in PgBouncer's userlist.txt "
		 "format (`\"user\" \"password-or-hash\"` a line). Needed "
		 "unless auth_type is trust." },
	{ .section = "pooler", .key = "pool_mode", .type = CT_ENUM,
	  G(pooler_pool_mode), .def = "transaction", .names = pool_mode_names,
	  .doc = "When a server connection goes back to the pool: transaction "
		 "(at the end of each transaction) or session (when the client "
		 "disconnects)." },
	{ .section = "pooler", .key = "default_pool_size", .type = CT_UINT,
	  G(pooler_default_pool_size), .def = "20", .min = 1, .max = 10000,
	  .flags = CF_RELOAD,
	  .doc = "Most server connections one pool (a database and user pair) "
		 "opens. With adaptive_pool_size, the upper bound of the "
		 "controller." },
	{ .section = "pooler", .key = "min_pool_size", .type = CT_UINT,
	  G(pooler_min_pool_size), .def = "0", .min = 0, .max = 10000,
	  .flags = CF_RELOAD,
	  .doc = "Server connections a pool keeps open even when idle, once "
		 "a client has used it." },
	{ .section = "pooler", .key = "max_client_conn", .type = CT_UINT,
	  G(pooler_max_client_conn), .def = "1000", .min = 1, .max = 1000000,
	  .doc = "Client connections served at once; one more gets a FATAL "
		 "error (53300) and is closed." },
	{ .section = "pooler", .key = "query_wait_timeout", .type = CT_DURATION,
	  G(pooler_query_wait_timeout_ms), .def = "120s", .min = 0, .max = DAY,
	  .flags = CF_RELOAD,
	  .doc = "Longest a client waits for a server connection; then it "
		 "gets a FATAL error naming the pool and its limit. 0 = wait "
		 "forever." },
	{ .section = "pooler", .key = "server_connect_timeout", .type = CT_DURATION,
	  G(pooler_server_connect_timeout_ms), .def = "15s", .min = 100, .max = HOUR,
	  .flags = CF_RELOAD,
	  .doc = "Longest a new server connection may take to connect and log "
		 "in." },
	{ .section = "pooler", .key = "server_idle_timeout", .type = CT_DURATION,
	  G(pooler_server_idle_timeout_ms), .def = "600s", .min = 0, .max = 30 * DAY,
	  .flags = CF_RELOAD,
	  .doc = "Close server connections idle for this long (above "
		 "min_pool_size). 0 = never." },
	{ .section = "pooler", .key = "server_lifetime", .type = CT_DURATION,
	  G(pooler_server_lifetime_ms), .def = "3600s", .min = 0, .max = 30 * DAY,
	  .flags = CF_RELOAD,
	  .doc = "Close a server connection this old when it is next free. "
		 "0 = never." },
	{ .section = "pooler", .key = "server_reset_query", .type = CT_STRING,
	  G(pooler_server_reset_query), .def = "DISCARD ALL",
	  .flags = CF_RELOAD | CF_OPTIONAL,
	  .doc = "Query run on a server connection when a session-mode client "
		 "leaves, before another client gets it. Empty = none. Not run "
		 "in transaction mode." },
	{ .section = "pooler", .key = "max_prepared_statements", .type = CT_UINT,
	  G(pooler_max_prepared_statements), .def = "200", .min = 0, .max = 100000,
	  .flags = CF_RELOAD,
	  .doc = "Transaction mode: protocol-level prepared statements kept per "
		 "server connection (LRU); clients' statements are renamed and "
		 "re-prepared on whichever server connection they land on. 0 = "
		 "off: named statements then only work inside one transaction." },
	{ .section = "pooler", .key = "max_message_size", .type = CT_SIZE,
	  G(pooler_max_message_size), .def = "16mb", .min = 64 * KB, .max = GB,
	  .doc = "Largest protocol message the pooler buffers whole (queries, "
		 "Parse/Bind, result metadata); larger ones are refused with an "
		 "error. Row data and COPY data stream through at any size." },
	{ .section = "pooler", .key = "adaptive_pool_size", .type = CT_BOOL,
	  G(pooler_adaptive), .def = "no", .flags = CF_RELOAD,
	  .doc = "Let a controller move each pool's connection limit between "
		 "adaptive_min_pool_size and default_pool_size once a second "
		 "from measured query time and wait time (gradient style); "
		 "decisions are logged and shown in GET /api/v2/pools." },
	{ .section = "pooler", .key = "adaptive_min_pool_size", .type = CT_UINT,
	  G(pooler_adaptive_min_pool_size), .def = "2", .min = 1, .max = 10000,
	  .flags = CF_RELOAD,
	  .doc = "Lowest limit the adaptive controller sets." },

	/* [warm] */
	{ .section = "warm", .key = "snapshot_file", .type = CT_PATH,
	  G(warm_snapshot_file), .def = "", .flags = CF_OPTIONAL | CF_ABSOLUTE,
	  .doc = "File the hottest L1 keys (with values and TTLs) are saved to "
		 "at shutdown and warmed from at start, e.g. "
		 "/var/lib/hotpath/hotkeys.snap (written atomically, versioned, "
		 "checksummed). Empty = no warm restart." },
	{ .section = "warm", .key = "snapshot_keys", .type = CT_UINT,
	  G(warm_snapshot_keys), .def = "10000", .min = 1, .max = 10000000,
	  .flags = CF_RELOAD,
	  .doc = "Most keys saved in the snapshot (the hottest first)." },
	{ .section = "warm", .key = "snapshot_max_bytes", .type = CT_SIZE,
	  G(warm_snapshot_max_bytes), .def = "64mb", .min = 4096, .max = 16 * GB,
	  .flags = CF_RELOAD,
	  .doc = "Largest snapshot written or read; keys beyond it are left out, "
		 "a larger file is refused." },
	{ .section = "warm", .key = "restore", .type = CT_BOOL, G(warm_restore),
	  .def = "yes",
	  .doc = "Warm L1 from the snapshot at start, in the background." },
	/* [query_analysis] */
	{ .section = "query_analysis", .key = "stats", .type = CT_BOOL, G(qa_stats),
	  .def = "yes",
	  .doc = "Keep statistics per query fingerprint (libpg_query) of the "
		 "queries clients run through the pooler: calls, errors, rows, "
		 "latency quantiles. Shown in GET /api/v2/performance/queries and "
		 "/metrics. Not reloadable: the statistics thread and the advisor "
		 "start with it." },
	{ .section = "query_analysis", .key = "max_fingerprints", .type = CT_UINT,
	  G(qa_max_fingerprints), .def = "1000", .min = 10, .max = 100000,
	  .doc = "Most fingerprints kept (all databases); queries of new ones "
		 "beyond it are counted as dropped. Not reloadable: the table is "
		 "sized at start." },
	{ .section = "query_analysis", .key = "max_query_length", .type = CT_SIZE,
	  G(qa_max_query_length), .def = "4kb", .min = 256, .max = 64 * KB, .flags = CF_RELOAD,
	  .doc = "Bytes of each query's text kept for fingerprinting and as a "
		 "sample; longer texts are cut (and then group by their text)." },
	{ .section = "query_analysis", .key = "advisor", .type = CT_BOOL, G(qa_advisor),
	  .def = "yes", .flags = CF_RELOAD,
	  .doc = "Analyse slow fingerprints in the background: EXPLAIN with "
		 "sampled parameters on a connection of its own, plan findings, "
		 "and index candidates costed with HypoPG." },
	{ .section = "query_analysis", .key = "interval", .type = CT_DURATION,
	  G(qa_interval_ms), .def = "300s", .min = 0, .max = DAY, .flags = CF_RELOAD,
	  .doc = "How often the advisor runs on its own; 0 = only when asked "
		 "(POST /api/v2/performance/optimize)." },
	{ .section = "query_analysis", .key = "slow_query_threshold", .type = CT_DURATION,
	  G(qa_slow_ms), .def = "50ms", .min = 0, .max = HOUR, .flags = CF_RELOAD,
	  .doc = "Fingerprints whose mean time reaches this are analysed." },
	{ .section = "query_analysis", .key = "top_n", .type = CT_UINT, G(qa_top_n),
	  .def = "10", .min = 1, .max = 100, .flags = CF_RELOAD,
	  .doc = "Of the slow fingerprints, the most by total time analysed per run." },
	{ .section = "query_analysis", .key = "explain_analyze", .type = CT_BOOL,
	  G(qa_explain_analyze), .def = "yes", .flags = CF_RELOAD,
	  .doc = "Also run EXPLAIN ANALYZE (it executes the query) for plain "
		 "SELECTs, in a READ ONLY transaction that is rolled back, to "
		 "find misestimates and spills. Writes are never executed." },
	{ .section = "query_analysis", .key = "statement_timeout", .type = CT_DURATION,
	  G(qa_statement_timeout_ms), .def = "10s", .min = 100, .max = HOUR, .flags = CF_RELOAD,
	  .doc = "statement_timeout of the advisor's own connection." },
	{ .section = "query_analysis", .key = "create_extension", .type = CT_BOOL,
	  G(qa_create_extension), .def = "yes", .flags = CF_RELOAD,
	  .doc = "Run CREATE EXTENSION IF NOT EXISTS hypopg in the database when "
		 "the extension is missing (needs the right to create it; "
		 "otherwise create it once yourself)." },
	{ .section = "query_analysis", .key = "min_improvement", .type = CT_UINT,
	  G(qa_min_improvement_pct), .def = "20", .min = 1, .max = 99, .flags = CF_RELOAD,
	  .doc = "Percent of the plan's cost a hypothetical index must save to "
		 "be recommended." },
	/* [query_cache] */
	{ .section = "query_cache", .key = "fingerprints", .type = CT_STRING,
	  G(qc_fingerprints), .def = "", .flags = CF_OPTIONAL | CF_RELOAD,
	  .doc = "Comma-separated query fingerprints (16 hex digits, as GET "
		 "/api/v2/performance/queries shows them) whose results are "
		 "cached; empty = no result caching. Only plain SELECTs sent "
		 "outside a transaction block are cached, as a simple Query or an "
		 "extended-protocol [Parse] Bind [Describe] Execute Sync. A reload "
		 "applies to the next request." },
	{ .section = "query_cache", .key = "ttl", .type = CT_DURATION, G(qc_ttl_ms),
	  .def = "60s", .min = 1000, .max = DAY, .flags = CF_RELOAD,
	  .doc = "How long a cached result lives at most (writes seen by the "
		 "pooler drop it sooner)." },
	{ .section = "query_cache", .key = "max_result_size", .type = CT_SIZE,
	  G(qc_max_result_size), .def = "1mb", .min = 1 * KB, .max = 64 * MB,
	  .flags = CF_RELOAD,
	  .doc = "Largest result (wire bytes) that is cached; larger ones pass "
		 "through uncached." },
};

#define P(m) CFG_AT(struct hp_partition_conf, m)
#define U(m) CFG_AT(struct hp_upstream_conf, m)
#define D(m) CFG_AT(struct hp_database_conf, m)
#define S(m) CFG_AT(struct hp_service_conf, m)
#define ST(m) CFG_AT(struct hp_strategy_conf, m)
#define LD(m) CFG_AT(struct hp_loader_conf, m)

static const struct cfg_key partition_keys[] = {
	{ .section = "partition", .key = "prefix", .type = CT_STRING, P(prefix),
	  .flags = CF_RELOAD | CF_REQUIRED, .example = "session:",
	  .doc = "Keys starting with this text belong to the partition; when "
		 "several prefixes match, the longest wins. Unique across "
		 "partitions." },
	{ .section = "partition", .key = "max_memory", .type = CT_SIZE,
	  P(max_memory), .def = "0", .min = 0, .max = 4 * TB, .flags = CF_RELOAD,
	  .example = "64mb",
	  .doc = "Memory this partition may use; 0 = only the global "
		 "cache.l1_max_memory applies." },
	{ .section = "partition", .key = "default_ttl", .type = CT_DURATION,
	  P(default_ttl_ms), .def = "0", .min = 0, .max = 3650 * DAY,
	  .flags = CF_RELOAD, .example = "30m",
	  .doc = "TTL given to keys of this partition set without one; 0 = none." },
	{ .section = "partition", .key = "priority", .type = CT_ENUM, P(priority),
	  .def = "normal", .names = priority_names, .flags = CF_RELOAD,
	  .example = "high",
	  .doc = "Under memory pressure, low partitions lose keys first and "
		 "high ones last." },
};

static const struct cfg_key upstream_keys[] = {
	{ .section = "upstream", .key = "servers", .type = CT_HOSTPORT_LIST,
	  U(servers), .flags = CF_REQUIRED,
	  .example = "10.0.0.11:8080,10.0.0.12:8080",
	  .doc = "Backend servers, HOST:PORT,HOST:PORT,..." },
	{ .section = "upstream", .key = "balance", .type = CT_ENUM, U(balance),
	  .def = "round_robin", .names = balance_names, .example = "least_request",
	  .doc = "How requests are spread: round_robin, least_request (fewest "
		 "in flight), ewma (lowest recent latency) or hash (same key, "
		 "same server)." },
	{ .section = "upstream", .key = "weights", .type = CT_STRING, U(weights),
	  .def = "", .flags = CF_OPTIONAL, .example = "",
	  .doc = "Weights of the servers in order, \"5,1,1\"; empty = all 1." },
	{ .section = "upstream", .key = "hash_key", .type = CT_STRING, U(hash_key),
	  .def = "path", .example = "path",
	  .doc = "With balance = hash, what picks the server: path, "
		 "header:NAME or cookie:NAME." },
	{ .section = "upstream", .key = "sticky_cookie", .type = CT_STRING,
	  U(sticky_cookie), .def = "", .flags = CF_OPTIONAL, .example = "",
	  .doc = "Cookie name for sticky sessions: a client with it goes back "
		 "to the same server while that server is available. Empty: off." },
	{ .section = "upstream", .key = "health_path", .type = CT_STRING,
	  U(health_path), .def = "", .flags = CF_OPTIONAL, .example = "/healthz",
	  .doc = "Path of active health checks (GET, 2xx/3xx passes). Empty: "
		 "only passive checks." },
	{ .section = "upstream", .key = "health_interval", .type = CT_DURATION,
	  U(health_interval_ms), .def = "2s", .min = 100, .max = HOUR, .example = "2s",
	  .doc = "Time between two active checks of a server." },
	{ .section = "upstream", .key = "health_rise", .type = CT_UINT, U(health_rise),
	  .def = "2", .min = 1, .max = 100, .example = "2",
	  .doc = "Passing checks in a row that make an unhealthy server healthy." },
	{ .section = "upstream", .key = "health_fall", .type = CT_UINT, U(health_fall),
	  .def = "3", .min = 1, .max = 100, .example = "3",
	  .doc = "Failing checks in a row that make a healthy server unhealthy." },
	{ .section = "upstream", .key = "slow_start", .type = CT_DURATION,
	  U(slow_start_ms), .def = "10s", .min = 0, .max = HOUR, .example = "10s",
	  .doc = "A server coming back gets 10% of its weight, rising to all of "
		 "it over this time; 0 = at once." },
	{ .section = "upstream", .key = "eject_consecutive", .type = CT_UINT,
	  U(eject_consecutive), .def = "5", .min = 1, .max = 1000, .example = "5",
	  .doc = "Failures in a row (connect errors, timeouts, 5xx) that eject a "
		 "server as an outlier." },
	{ .section = "upstream", .key = "eject_time", .type = CT_DURATION,
	  U(eject_time_ms), .def = "5s", .min = 100, .max = HOUR, .example = "5s",
	  .doc = "First ejection's length; the n-th ejection of a server lasts n "
		 "times this (at most 5 minutes)." },
	{ .section = "upstream", .key = "eject_max_percent", .type = CT_UINT,
	  U(eject_max_pct), .def = "50", .min = 1, .max = 100, .example = "50",
	  .doc = "Most of the servers ejected at once (one may always be)." },
	{ .section = "upstream", .key = "panic_percent", .type = CT_UINT, U(panic_pct),
	  .def = "50", .min = 1, .max = 100, .example = "50",
	  .doc = "When fewer servers than this share are available, health and "
		 "ejection are ignored and all of them take requests." },
	{ .section = "upstream", .key = "breaker_window", .type = CT_UINT,
	  U(breaker_window), .def = "20", .min = 2, .max = 128, .example = "20",
	  .doc = "Size of each server's circuit breaker window: calls, or "
		 "seconds with breaker_window_type = time." },
	{ .section = "upstream", .key = "breaker_window_type", .type = CT_ENUM,
	  U(breaker_window_type), .def = "count", .names = breaker_window_names,
	  .example = "count",
	  .doc = "What breaker_window counts: `count`, the last N calls, or "
		 "`time`, the calls of the last N seconds (one bucket per "
		 "second, as resilience4j's TIME_BASED window)." },
	{ .section = "upstream", .key = "breaker_min_calls", .type = CT_UINT,
	  U(breaker_min_calls), .def = "0", .min = 0, .max = 1000000, .example = "0",
	  .doc = "Calls the window must hold before the breaker may open. 0: half "
		 "of breaker_window for a count window, 10 for a time window." },
	{ .section = "upstream", .key = "breaker_failure_percent", .type = CT_UINT,
	  U(breaker_failure_pct), .def = "50", .min = 1, .max = 100, .example = "50",
	  .doc = "Share of failed calls in the window that opens the breaker." },
	{ .section = "upstream", .key = "breaker_slow_percent", .type = CT_UINT,
	  U(breaker_slow_pct), .def = "80", .min = 1, .max = 100, .example = "80",
	  .doc = "Share of slow calls in the window that opens the breaker." },
	{ .section = "upstream", .key = "breaker_slow_call", .type = CT_DURATION,
	  U(breaker_slow_call_ms), .def = "5s", .min = 1, .max = HOUR, .example = "5s",
	  .doc = "A call longer than this counts as slow." },
	{ .section = "upstream", .key = "breaker_open_time", .type = CT_DURATION,
	  U(breaker_open_ms), .def = "5s", .min = 10, .max = HOUR, .example = "5s",
	  .doc = "Time an open breaker refuses calls before letting probes through." },
	{ .section = "upstream", .key = "breaker_probes", .type = CT_UINT,
	  U(breaker_probes), .def = "2", .min = 1, .max = 100, .example = "2",
	  .doc = "Calls let through when half-open; all must succeed to close." },
};

static const struct cfg_key database_keys[] = {
	{ .section = "database", .key = "host", .type = CT_HOST, D(host),
	  .def = "127.0.0.1", .example = "127.0.0.1",
	  .doc = "PostgreSQL server: host name, IP address, or the directory "
		 "holding its Unix socket." },
	{ .section = "database", .key = "port", .type = CT_UINT, D(port),
	  .def = "5432", .min = 1, .max = 65535, .example = "5432",
	  .doc = "Server port." },
	{ .section = "database", .key = "dbname", .type = CT_STRING, D(dbname),
	  .def = "", .flags = CF_OPTIONAL | CF_DEFAULT_NAME, .example = "app",
	  .doc = "Database name on the server; empty = NAME." },
	{ .section = "database", .key = "user", .type = CT_STRING, D(user),
	  .def = "", .flags = CF_OPTIONAL, .example = "app",
	  .doc = "Role the pooler connects as; empty = the client's user." },
	{ .section = "database", .key = "password", .type = CT_STRING, D(password),
	  .def = "", .flags = CF_OPTIONAL | CF_SECRET, .example = "",
	  .doc = "Password of user. Prefer password_file, which keeps it out of "
		 "this file; the API shows it masked." },
	{ .section = "database", .key = "password_file", .type = CT_PATH,
	  D(password_file), .def = "", .flags = CF_OPTIONAL,
	  .example = "/etc/hotpath/app.password",
	  .doc = "File whose first line is the password of user. Use instead "
		 "of password." },
};

static const struct cfg_key service_keys[] = {
	{ .section = "service", .key = "port", .type = CT_UINT, S(port),
	  .min = 1, .max = 65535, .flags = CF_REQUIRED, .example = "8080",
	  .doc = "TCP port the service listens on." },
	{ .section = "service", .key = "protocol", .type = CT_ENUM, S(protocol),
	  .def = "auto", .names = protocol_names, .example = "http",
	  .doc = "What the service speaks: auto (told from the first bytes), "
		 "http, resp or postgres." },
	{ .section = "service", .key = "pid", .type = CT_UINT, S(pid),
	  .def = "0", .min = 0, .max = 4194304, .example = "1234",
	  .doc = "Watch only the connections of this process (its tgid) on port; "
		 "0 = any process." },
	{ .section = "service", .key = "cgroup", .type = CT_PATH, S(cgroup),
	  .def = "", .flags = CF_OPTIONAL, .example = "/system.slice/nginx.service",
	  .doc = "Watch only processes in this cgroup (v2) or below it: a path "
		 "in the v2 hierarchy (/sys/fs/cgroup, or /sys/fs/cgroup/unified on "
		 "a hybrid system), with or without the mount point. Empty = any "
		 "cgroup. Resolved when observation starts." },
};


static const struct cfg_key strategy_keys[] = {
	{ .section = "strategy", .key = "pattern", .type = CT_STRING, ST(pattern),
	  .flags = CF_RELOAD | CF_REQUIRED, .example = "user:*",
	  .doc = "Glob of the keys this strategy covers (Redis syntax). Each `*` "
		 "and `?` is a capture, passed to the loader as $1, $2... (SQL) "
		 "or {1}, {2}... (URL). The first strategy (in file order) whose "
		 "pattern matches a key wins." },
	{ .section = "strategy", .key = "loader", .type = CT_NAME, ST(loader),
	  .def = "", .flags = CF_RELOAD | CF_OPTIONAL, .example = "users",
	  .doc = "[loader.NAME] that reads a missing key (read-through) and, with "
		 "`write`, writes it. Empty = cache-aside: the application fills "
		 "the cache itself." },
	{ .section = "strategy", .key = "write", .type = CT_ENUM, .flags = CF_RELOAD, ST(write),
	  .def = "none", .names = write_mode_names, .example = "behind",
	  .doc = "SET/DEL of covered keys: none (cache only), through (the "
		 "loader's write_query/delete_query runs before the reply), "
		 "behind (queued, written in batches in the background; a write "
		 "that cannot be queued is refused)." },
	{ .section = "strategy", .key = "ttl", .type = CT_DURATION, .flags = CF_RELOAD, ST(ttl_ms),
	  .def = "5m", .min = 1, .max = 3650 * DAY, .example = "5m",
	  .doc = "How long a loaded or written value is fresh." },
	{ .section = "strategy", .key = "refresh_ahead", .type = CT_UINT, .flags = CF_RELOAD,
	  ST(refresh_ahead_pct), .def = "0", .min = 0, .max = 99, .example = "80",
	  .doc = "Percent of ttl after which a read of the key also queues a "
		 "background reload (sheddable), so hot keys never expire; 0 = off." },
	{ .section = "strategy", .key = "stale_while_revalidate", .type = CT_DURATION, .flags = CF_RELOAD,
	  ST(swr_ms), .def = "0", .min = 0, .max = DAY, .example = "30s",
	  .doc = "After ttl, serve the old value for this long while one "
		 "background reload runs." },
	{ .section = "strategy", .key = "stale_if_error", .type = CT_DURATION, .flags = CF_RELOAD,
	  ST(sie_ms), .def = "0", .min = 0, .max = DAY, .example = "10m",
	  .doc = "After ttl, a read reloads; if the loader fails, serve the old "
		 "value for up to this long." },
	{ .section = "strategy", .key = "single_flight", .type = CT_BOOL, .flags = CF_RELOAD,
	  ST(single_flight), .def = "yes", .example = "yes",
	  .doc = "Concurrent misses of one key wait for one load instead of "
		 "each calling the loader." },
	{ .section = "strategy", .key = "batch_max", .type = CT_UINT, .flags = CF_RELOAD, ST(batch_max),
	  .def = "100", .min = 1, .max = 10000, .example = "100",
	  .doc = "write = behind: most writes sent in one transaction." },
	{ .section = "strategy", .key = "queue_max", .type = CT_UINT, .flags = CF_RELOAD, ST(queue_max),
	  .def = "10000", .min = 1, .max = 10000000, .example = "10000",
	  .doc = "write = behind: pending writes held; beyond it a write gets "
		 "an error (-BUSY) and nothing is changed." },
	{ .section = "strategy", .key = "max_attempts", .type = CT_UINT, .flags = CF_RELOAD,
	  ST(max_attempts), .def = "0", .min = 0, .max = 100, .example = "8",
	  .doc = "write = behind: attempts of a batch before it becomes a dead "
		 "letter; 0 = tasks.max_attempts." },
};

static const struct cfg_key loader_keys[] = {
	{ .section = "loader", .key = "dsn", .type = CT_STRING, LD(dsn),
	  .def = "", .flags = CF_RELOAD | CF_OPTIONAL | CF_SECRET,
	  .example = "host=127.0.0.1 port=5432 dbname=app user=app",
	  .doc = "PostgreSQL connection string (libpq keyword=value form) of a "
		 "SQL loader. Keep passwords in ~/.pgpass or PGPASSFILE." },
	{ .section = "loader", .key = "query", .type = CT_STRING, LD(query),
	  .def = "", .flags = CF_RELOAD | CF_OPTIONAL,
	  .example = "SELECT data FROM users WHERE id = $1",
	  .doc = "SQL loader: the read. Parameters $1.. are the key's captures "
		 "(sent separately, never pasted into the text); the first "
		 "column of the first row is the value, no row = no such key." },
	{ .section = "loader", .key = "write_query", .type = CT_STRING,
	  LD(write_query), .def = "", .flags = CF_RELOAD | CF_OPTIONAL,
	  .example = "INSERT INTO users(id, data) VALUES ($1, $2) ON CONFLICT (id) "
		     "DO UPDATE SET data = $2",
	  .doc = "The write for write-through/behind: captures, then the value." },
	{ .section = "loader", .key = "delete_query", .type = CT_STRING,
	  LD(delete_query), .def = "", .flags = CF_RELOAD | CF_OPTIONAL,
	  .example = "DELETE FROM users WHERE id = $1",
	  .doc = "The delete for write-through/behind DELs; empty = DEL only "
		 "leaves the cache." },
	{ .section = "loader", .key = "warm_query", .type = CT_STRING,
	  LD(warm_query), .def = "", .flags = CF_RELOAD | CF_OPTIONAL,
	  .example = "SELECT 'user:' || id, data FROM users ORDER BY hits DESC LIMIT 1000",
	  .doc = "Rows of (key, value) loaded by a warm job with source "
		 "{\"type\": \"sql\", \"loader\": NAME}." },
	{ .section = "loader", .key = "url", .type = CT_STRING, LD(url),
	  .def = "", .flags = CF_RELOAD | CF_OPTIONAL,
	  .example = "http://127.0.0.1:8080/users/{1}",
	  .doc = "HTTP loader instead of SQL: GET this http:// URL with {1}.. "
		 "replaced by the percent-encoded captures; 200 = the body is "
		 "the value, 404 = no such key, anything else an error." },
	{ .section = "loader", .key = "pool_size", .type = CT_UINT, .flags = CF_RELOAD, LD(pool_size),
	  .def = "4", .min = 1, .max = 64, .example = "4",
	  .doc = "SQL loader: most connections open to the database." },
	{ .section = "loader", .key = "timeout", .type = CT_DURATION, .flags = CF_RELOAD, LD(timeout_ms),
	  .def = "2s", .min = 10, .max = 10 * MIN, .example = "2s",
	  .doc = "Longest a load, write or connect may take (and wait for a "
		 "pooled connection)." },
	{ .section = "loader", .key = "max_value_size", .type = CT_SIZE, .flags = CF_RELOAD,
	  LD(max_value_size), .def = "1mb", .min = 1, .max = 512 * MB,
	  .example = "1mb",
	  .doc = "A loaded value larger than this is an error." },
	{ .section = "loader", .key = "breaker_failure_pct", .type = CT_UINT, .flags = CF_RELOAD,
	  LD(breaker_failure_pct), .def = "50", .min = 1, .max = 100, .example = "50",
	  .doc = "The loader's breaker opens when this percentage of the last "
		 "20 calls failed." },
	{ .section = "loader", .key = "breaker_open_time", .type = CT_DURATION, .flags = CF_RELOAD,
	  LD(breaker_open_ms), .def = "2s", .min = 10, .max = HOUR, .example = "2s",
	  .doc = "Time an open loader breaker refuses calls before probing." },
};

struct cfg_kind {
	const char *name;
	const char *doc;
	const struct cfg_key *keys;
	size_t nkeys;
	size_t arr_off, elem_size, count_off, name_off;
	unsigned max;
	const char *example_name;
	bool reloadable;               /* sections may come and go on SIGHUP */
};

#define KIND_AT(arr, cnt, type) \
	.arr_off = offsetof(struct hp_config, arr), .elem_size = sizeof(type), \
	.count_off = offsetof(struct hp_config, cnt), .name_off = offsetof(type, name)

static const struct cfg_kind cfg_kinds[] = {
	{ .name = "partition", .keys = partition_keys,
	  .nkeys = HP_ARRAY_SIZE(partition_keys),
	  KIND_AT(partitions, n_partitions, struct hp_partition_conf),
	  .max = HP_MAX_PARTITIONS, .example_name = "sessions", .reloadable = true,
	  .doc = "A slice of the L1 cache for the keys with a given prefix, with "
		 "its own memory limit, default TTL and eviction priority. Keys "
		 "of no partition use the global settings." },
	{ .name = "upstream", .keys = upstream_keys,
	  .nkeys = HP_ARRAY_SIZE(upstream_keys),
	  KIND_AT(upstreams, n_upstreams, struct hp_upstream_conf),
	  .max = HP_MAX_UPSTREAMS, .example_name = "web",
	  .doc = "A group of HTTP backend servers the proxy forwards to and "
		 "balances across; http.upstream names the one in use." },
	{ .name = "database", .keys = database_keys,
	  .nkeys = HP_ARRAY_SIZE(database_keys),
	  KIND_AT(databases, n_databases, struct hp_database_conf),
	  .max = HP_MAX_DATABASES, .example_name = "app",
	  .doc = "A PostgreSQL database served by the pooler; clients ask for "
		 "database NAME." },
	{ .name = "service", .keys = service_keys,
	  .nkeys = HP_ARRAY_SIZE(service_keys),
	  KIND_AT(services, n_services, struct hp_service_conf),
	  .max = HP_MAX_SERVICES, .example_name = "shop",
	  .doc = "A service on this host, known by its port, that hotpath "
		 "observes (latency, errors, profiles)." },
	{ .name = "strategy", .keys = strategy_keys,
	  .nkeys = HP_ARRAY_SIZE(strategy_keys),
	  KIND_AT(strategies, n_strategies, struct hp_strategy_conf),
	  .max = HP_MAX_STRATEGIES, .example_name = "users", .reloadable = true,
	  .doc = "How the RESP front treats the keys matching a pattern: "
		 "read-through with a loader, write-through or write-behind, "
		 "refresh-ahead, stale-while-revalidate, stale-if-error, "
		 "single-flight (docs/tiers.md). Replaced on SIGHUP." },
	{ .name = "loader", .keys = loader_keys,
	  .nkeys = HP_ARRAY_SIZE(loader_keys),
	  KIND_AT(loaders, n_loaders, struct hp_loader_conf),
	  .max = HP_MAX_LOADERS, .example_name = "users", .reloadable = true,
	  .doc = "Where a strategy reads missing keys and writes changed ones: "
		 "PostgreSQL (dsn + query) or an HTTP origin (url). Replaced on SIGHUP." },
};

#define N_SECTIONS HP_ARRAY_SIZE(cfg_sections)
#define N_KEYS HP_ARRAY_SIZE(cfg_keys)
#define N_KINDS HP_ARRAY_SIZE(cfg_kinds)

_Static_assert(HP_MAX_PARTITIONS <= CFG_MAX_INSTANCES && HP_MAX_UPSTREAMS <= CFG_MAX_INSTANCES &&
	       HP_MAX_DATABASES <= CFG_MAX_INSTANCES && HP_MAX_SERVICES <= CFG_MAX_INSTANCES,
	       "CFG_MAX_INSTANCES too small");
_Static_assert(HP_ARRAY_SIZE(partition_keys) <= CFG_MAX_KIND_KEYS &&
	       HP_ARRAY_SIZE(database_keys) <= CFG_MAX_KIND_KEYS, "CFG_MAX_KIND_KEYS too small");

struct cfg_parser {
	struct hp_config c;                    /* the result, built privately */
	const char *name;                      /* for messages */
	char *err;
	size_t errlen, errused;
	unsigned nerr;
	bool gave_up;                          /* CFG_MAX_ERRORS reached */
	unsigned line;
	int sec;                               /* current plain section, or -1 */
	const struct cfg_kind *kind;           /* current named section kind */
	unsigned inst;                         /* ... and its instance */
	bool skip;                             /* section rejected: ignore keys */
	unsigned sec_line[N_SECTIONS];         /* header line, 0 = not seen */
	unsigned key_line[N_KEYS];             /* line that set it, 0 = default */
	unsigned hdr_line[N_KINDS][CFG_MAX_INSTANCES];
	unsigned inst_key_line[N_KINDS][CFG_MAX_INSTANCES][CFG_MAX_KIND_KEYS];
};

/* ---- small text helpers ------------------------------------------------- */

static bool cfg_is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r';
}

static char *cfg_trim(char *s)
{
	char *e;

	while (cfg_is_blank(*s))
		s++;
	e = s + strlen(s);
	while (e > s && cfg_is_blank(e[-1]))
		e--;
	*e = '\0';
	return s;
}

/* Copy at most CFG_SNIP chars of user text for a message, non-printables
 * as '?', "..." when cut. `out` must hold CFG_SNIP + 4 bytes. */
#define CFG_SNIP_BUF (CFG_SNIP + 4)
static const char *cfg_snip(char *out, const char *s)
{
	size_t i;

	for (i = 0; s[i] && i < CFG_SNIP; i++)
		out[i] = isprint((unsigned char)s[i]) ? s[i] : '?';
	if (s[i])
		memcpy(out + i, "...", 4);
	else
		out[i] = '\0';
	return out;
}

/* Edit distance, for "did you mean" hints; long words are not compared. */
static unsigned cfg_distance(const char *a, const char *b)
{
	unsigned row[33], prev, tmp;
	size_t la = strlen(a), lb = strlen(b), i, j;

	if (la > 32 || lb > 32)
		return 99;
	for (j = 0; j <= lb; j++)
		row[j] = (unsigned)j;
	for (i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = (unsigned)i;
		for (j = 1; j <= lb; j++) {
			unsigned best = prev + (a[i - 1] != b[j - 1]);

			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			tmp = row[j];
			row[j] = best;
			prev = tmp;
		}
	}
	return row[lb];
}

static int cfg_names_find(const char *const *names, const char *s)
{
	for (int i = 0; names[i]; i++)
		if (strcasecmp(names[i], s) == 0)
			return i;
	return -1;
}

/* "a or b", "a, b or c" */
static void cfg_names_list(const char *const *names, char *out, size_t n, const char *quote)
{
	size_t used = 0;
	int count = 0, i;

	while (names[count])
		count++;
	out[0] = '\0';
	for (i = 0; i < count && used < n; i++) {
		const char *sep = i == 0 ? "" : i == count - 1 ? " or " : ", ";
		int w = snprintf(out + used, n - used, "%s%s%s%s", sep, quote, names[i], quote);

		if (w < 0)
			break;
		used += (size_t)w;
	}
}

/* ---- value parsers ------------------------------------------------------ */

/* Decimal digits at s; *end after them. -EINVAL if none, -ERANGE on
 * overflow (all digits are still consumed). */
static int cfg_digits(const char *s, const char **end, uint64_t *out)
{
	uint64_t v = 0;
	bool over = false;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (UINT64_MAX - d) / 10)
			over = true;
		else
			v = v * 10 + d;
	}
	*end = s;
	*out = v;
	return over ? -ERANGE : 0;
}

struct cfg_unit {
	const char *name;
	uint64_t mult;
};

/* The first name of each multiplier is the one output uses: bare bytes,
 * "kb", ..., and "ms" rather than a bare number for durations. */
static const struct cfg_unit size_units[] = {
	{ "", 1 }, { "b", 1 }, { "kb", KB }, { "k", KB }, { "mb", MB }, { "m", MB },
	{ "gb", GB }, { "g", GB }, { "tb", TB }, { "t", TB },
};

static const struct cfg_unit duration_units[] = {
	{ "ms", 1 }, { "", 1 }, { "s", SEC }, { "m", MIN }, { "h", HOUR }, { "d", DAY },
};

static int cfg_parse_unit(const char *s, const struct cfg_unit *units, size_t nunits,
			  uint64_t *out)
{
	const char *p;
	uint64_t n;
	int r;

	if (!s || !out)
		return -EINVAL;
	r = cfg_digits(s, &p, &n);
	if (r == -EINVAL)
		return r;
	while (*p == ' ' || *p == '\t')
		p++;
	for (size_t i = 0; i < nunits; i++) {
		if (strcasecmp(p, units[i].name) != 0)
			continue;
		if (r < 0 || n > UINT64_MAX / units[i].mult)
			return -ERANGE;
		*out = n * units[i].mult;
		return 0;
	}
	return -EINVAL;
}

/*
 * Sizes: whole bytes with an optional case-insensitive suffix b, k/kb, m/mb,
 * g/gb, t/tb (powers of 1024). Returns 0, -EINVAL (syntax, decimals,
 * signs, unknown suffix) or -ERANGE (does not fit 64 bits); *out is only
 * written on success.
 */
int config_parse_size(const char *s, uint64_t *out)
{
	return cfg_parse_unit(s, size_units, HP_ARRAY_SIZE(size_units), out);
}

/*
 * Durations: whole numbers with suffix ms, s, m (minutes), h, d; a plain
 * number is milliseconds. Returns 0, -EINVAL or -ERANGE like
 * config_parse_size.
 */
int config_parse_duration_ms(const char *s, uint64_t *out)
{
	return cfg_parse_unit(s, duration_units, HP_ARRAY_SIZE(duration_units), out);
}

/* Largest unit that divides v exactly: 268435456 -> "256mb". */
static void cfg_render_unit(uint64_t v, const struct cfg_unit *units, size_t nunits,
			    char *buf, size_t n)
{
	size_t best = 0;

	if (v == 0) {
		snprintf(buf, n, "0");
		return;
	}
	for (size_t i = 1; i < nunits; i++)
		if (v % units[i].mult == 0 && units[i].mult > units[best].mult)
			best = i;
	snprintf(buf, n, "%" PRIu64 "%s", v / units[best].mult, units[best].name);
}

static void cfg_render_size(uint64_t v, char *buf, size_t n)
{
	cfg_render_unit(v, size_units, HP_ARRAY_SIZE(size_units), buf, n);
}

static void cfg_render_duration(uint64_t ms, char *buf, size_t n)
{
	cfg_render_unit(ms, duration_units, HP_ARRAY_SIZE(duration_units), buf, n);
}

static int cfg_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1", NULL };
	static const char *const no[] = { "no", "false", "off", "0", NULL };

	if (cfg_names_find(yes, s) >= 0) {
		*out = true;
		return 0;
	}
	if (cfg_names_find(no, s) >= 0) {
		*out = false;
		return 0;
	}
	return -EINVAL;
}

static bool cfg_is_name_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '_' || ch == '-';
}

static bool cfg_is_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!cfg_is_name_char(*s))
			return false;
	return true;
}

/* Host name or IPv4: letters, digits, '.', '-', '_'. */
static bool cfg_host_plain_ok(const char *h, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)h[i]) && h[i] != '.' && h[i] != '-' && h[i] != '_')
			return false;
	return true;
}

/* IPv6 literal without brackets: hex, ':', '.', optional %zone. */
static bool cfg_host_v6_ok(const char *h, size_t n)
{
	bool colon = false;
	size_t i;

	for (i = 0; i < n && h[i] != '%'; i++) {
		if (h[i] == ':')
			colon = true;
		else if (!isxdigit((unsigned char)h[i]) && h[i] != '.')
			return false;
	}
	if (i < n) {                   /* zone */
		if (i + 1 == n)
			return false;
		for (i++; i < n; i++)
			if (!cfg_is_name_char(h[i]) && h[i] != '.')
				return false;
	}
	return colon;
}

/* NULL if `s` is a valid HOST:PORT, else why not. Fills host/port if given. */
static const char *cfg_hostport_check(const char *s, char *host, size_t hostlen,
				      uint16_t *port, bool listen)
{
	const char *h, *colon, *p;
	size_t hl;
	uint64_t v;

	if (!*s)
		return "empty address";
	if (*s == '[') {
		const char *close = strchr(s, ']');

		if (!close)
			return "missing ']' after IPv6 address";
		h = s + 1;
		hl = (size_t)(close - h);
		if (hl == 0)
			return "empty host";
		if (!cfg_host_v6_ok(h, hl))
			return "invalid IPv6 address";
		if (close[1] != ':')
			return "missing ':PORT'";
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return "missing ':PORT'";
		h = s;
		hl = (size_t)(colon - s);
		if (hl == 0)
			return "empty host";
		if (memchr(h, ':', hl))
			return "IPv6 addresses need brackets, e.g. [::1]:6479";
		if (!cfg_host_plain_ok(h, hl))
			return "invalid character in host";
	}
	p = colon + 1;
	if (!*p)
		return "missing port";
	if (strlen(p) > 5 || cfg_digits(p, &p, &v) != 0 || *p)
		return "port must be a number 1..65535";
	/* Port 0 asks the kernel for a free port: fine to listen on (tests
	 * use it), meaningless to connect to. */
	if (v > 65535 || (v == 0 && !listen))
		return listen ? "port must be 0..65535" : "port must be 1..65535";
	if (host && hostlen) {
		if (hl >= hostlen)
			return "host too long";
		memcpy(host, h, hl);
		host[hl] = '\0';
	}
	if (port)
		*port = (uint16_t)v;
	return NULL;
}

/*
 * Split "HOST:PORT" or "[V6]:PORT". host (without brackets) is written when
 * non-NULL and hostlen > 0, port when non-NULL. Returns 0, or -EINVAL for
 * bad syntax, a port above 65535 (0 is accepted: listen on a free port), or a host that does not fit.
 */
int config_parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port)
{
	if (!s)
		return -EINVAL;
	return cfg_hostport_check(s, host, hostlen, port, true) ? -EINVAL : 0;
}

/* ---- fields ------------------------------------------------------------- */

static uint64_t cfg_field_uint(const void *f, size_t w)
{
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;

	switch (w) {
	case 1: memcpy(&u8, f, 1); return u8;
	case 2: memcpy(&u16, f, 2); return u16;
	case 4: memcpy(&u32, f, 4); return u32;
	default: memcpy(&u64, f, 8); return u64;
	}
}

static void cfg_field_set_uint(void *f, size_t w, uint64_t v)
{
	uint8_t u8 = (uint8_t)v;
	uint16_t u16 = (uint16_t)v;
	uint32_t u32 = (uint32_t)v;

	switch (w) {
	case 1: memcpy(f, &u8, 1); break;
	case 2: memcpy(f, &u16, 2); break;
	case 4: memcpy(f, &u32, 4); break;
	default: memcpy(f, &v, 8); break;
	}
}

static bool cfg_is_text(enum cfg_type t)
{
	return t == CT_STRING || t == CT_HOSTPORT || t == CT_HOSTPORT_LIST ||
	       t == CT_HOST || t == CT_PATH || t == CT_NAME;
}

/* Strings are zero-filled to the end of their field so that two configs
 * holding the same values compare equal byte for byte. */
static void cfg_field_set_text(void *f, size_t w, const char *s)
{
	memset(f, 0, w);
	memcpy(f, s, strlen(s));
}

static uint64_t cfg_scale(const struct cfg_key *k)
{
	return (k->flags & CF_SECONDS) ? SEC : 1;
}

static void cfg_render_number(const struct cfg_key *k, uint64_t v, char *buf, size_t n)
{
	if (k->type == CT_SIZE)
		cfg_render_size(v, buf, n);
	else if (k->type == CT_DURATION)
		cfg_render_duration(v, buf, n);
	else
		snprintf(buf, n, "%" PRIu64, v);
}

/* Validate and store a comma-separated HOST:PORT list, normalised without
 * blanks around the commas. */
static int cfg_set_list(const struct cfg_key *k, void *f, const char *fqk, const char *v,
			char *why, size_t whylen)
{
	char tok[CFG_MAX_LINE + 1], out[CFG_MAX_LINE + 1], s[CFG_SNIP_BUF];
	size_t used = 0;

	for (;;) {
		const char *comma = strchr(v, ',');
		size_t l = comma ? (size_t)(comma - v) : strlen(v);
		const char *bad, *t;

		if (l >= sizeof tok)
			l = sizeof tok - 1;
		memcpy(tok, v, l);
		tok[l] = '\0';
		t = cfg_trim(tok);
		if (!*t) {
			snprintf(why, whylen, "empty entry in list for %s", fqk);
			return -EINVAL;
		}
		bad = cfg_hostport_check(t, NULL, 0, NULL, false);
		if (bad) {
			snprintf(why, whylen, "invalid host:port '%s' in %s: %s",
				 cfg_snip(s, t), fqk, bad);
			return -EINVAL;
		}
		if (used + strlen(t) + 2 > sizeof out) {
			snprintf(why, whylen, "value too long for %s", fqk);
			return -EINVAL;
		}
		used += (size_t)snprintf(out + used, sizeof out - used, "%s%s",
					 used ? "," : "", t);
		if (!comma)
			break;
		v = comma + 1;
	}
	if (used >= k->width) {
		snprintf(why, whylen, "value too long for %s (max %zu bytes)", fqk, k->width - 1);
		return -EINVAL;
	}
	cfg_field_set_text(f, k->width, out);
	return 0;
}

/*
 * Parse `v` as key `k` and store it in field `f`. `fqk` names the key in
 * messages ("resp.max_args", "partition.users.prefix"). Returns 0, or -EINVAL
 * with the reason in `why`; the field is untouched on failure.
 */
static int cfg_key_set(const struct cfg_key *k, void *f, const char *fqk, const char *v,
		       char *why, size_t whylen)
{
	char s[CFG_SNIP_BUF], lo[32], hi[32], list[256];
	uint64_t n = 0;
	const char *bad;
	bool b;
	int r, idx;

	cfg_snip(s, v);
	if (!*v && cfg_is_text(k->type) && (k->flags & CF_OPTIONAL)) {
		cfg_field_set_text(f, k->width, "");
		return 0;
	}
	if (!*v) {
		snprintf(why, whylen, "missing value for %s", fqk);
		return -EINVAL;
	}

	switch (k->type) {
	case CT_BOOL:
		if (cfg_parse_bool(v, &b) != 0) {
			snprintf(why, whylen, "invalid boolean '%s' for %s (use yes or no)", s, fqk);
			return -EINVAL;
		}
		memcpy(f, &b, sizeof b);
		return 0;

	case CT_UINT:
	case CT_SIZE:
	case CT_DURATION:
		if (k->type == CT_UINT) {
			const char *end;

			r = cfg_digits(v, &end, &n);
			if (r == 0 && *end)
				r = -EINVAL;
		} else if (k->type == CT_SIZE) {
			r = config_parse_size(v, &n);
		} else {
			r = config_parse_duration_ms(v, &n);
		}
		if (r == -EINVAL) {
			if (k->type == CT_UINT)
				snprintf(why, whylen, "invalid number '%s' for %s", s, fqk);
			else if (strchr(v, '.') && k->type == CT_SIZE)
				snprintf(why, whylen, "invalid size '%s' for %s (whole numbers "
					 "only: write 1536mb, not 1.5gb)", s, fqk);
			else if (strchr(v, '.'))
				snprintf(why, whylen, "invalid duration '%s' for %s (whole "
					 "numbers only: write 1500ms, not 1.5s)", s, fqk);
			else if (k->type == CT_SIZE)
				snprintf(why, whylen, "invalid size '%s' for %s (use e.g. 256mb)",
					 s, fqk);
			else
				snprintf(why, whylen, "invalid duration '%s' for %s (use e.g. "
					 "500ms, 30s, 5m, 1h, 2d)", s, fqk);
			return -EINVAL;
		}
		if (r == -ERANGE || n < k->min || n > k->max) {
			cfg_render_number(k, k->min, lo, sizeof lo);
			cfg_render_number(k, k->max, hi, sizeof hi);
			snprintf(why, whylen, "value %s out of range for %s (%s..%s)", s, fqk, lo, hi);
			return -EINVAL;
		}
		if ((k->flags & CF_POW2) && (n & (n - 1))) {
			snprintf(why, whylen, "value %s for %s is not a power of two", s, fqk);
			return -EINVAL;
		}
		if (n % cfg_scale(k)) {
			snprintf(why, whylen, "value %s for %s is not a whole number of seconds",
				 s, fqk);
			return -EINVAL;
		}
		cfg_field_set_uint(f, k->width, n / cfg_scale(k));
		return 0;

	case CT_ENUM:
		idx = cfg_names_find(k->names, v);
		if (idx < 0) {
			cfg_names_list(k->names, list, sizeof list, "");
			snprintf(why, whylen, "invalid value '%s' for %s (use %s)", s, fqk, list);
			return -EINVAL;
		}
		memcpy(f, &idx, sizeof idx);
		return 0;

	case CT_HOSTPORT_LIST:
		return cfg_set_list(k, f, fqk, v, why, whylen);

	case CT_HOSTPORT:
		bad = cfg_hostport_check(v, NULL, 0, NULL, strcmp(k->key, "listen") == 0);
		if (bad) {
			snprintf(why, whylen, "invalid host:port '%s' for %s: %s", s, fqk, bad);
			return -EINVAL;
		}
		break;

	case CT_HOST:
		if (v[0] != '/' && !cfg_host_plain_ok(v, strlen(v)) &&
		    !cfg_host_v6_ok(v, strlen(v))) {
			snprintf(why, whylen, "invalid host '%s' for %s (a host name, an IP "
				 "address or a socket directory)", s, fqk);
			return -EINVAL;
		}
		break;

	case CT_PATH:
		if ((k->flags & CF_ABSOLUTE) && v[0] != '/') {
			snprintf(why, whylen, "%s must be an absolute path, not '%s'", fqk, s);
			return -EINVAL;
		}
		break;

	case CT_NAME:
		if (!cfg_is_name(v)) {
			snprintf(why, whylen, "invalid name '%s' for %s (use letters, digits, "
				 "'_' and '-')", s, fqk);
			return -EINVAL;
		}
		break;

	case CT_STRING:
		break;
	}
	if (strlen(v) >= k->width) {
		snprintf(why, whylen, "value too long for %s (max %zu bytes)", fqk, k->width - 1);
		return -EINVAL;
	}
	cfg_field_set_text(f, k->width, v);
	return 0;
}

/* Canonical text of a field: sizes and durations in the largest exact unit,
 * or the table's own default text when the field holds the default. */
static void cfg_key_render(const struct cfg_key *k, const void *f, char *buf, size_t n)
{
	unsigned char dflt[HP_LIST_MAX];
	char why[8];
	int e;
	bool b;

	if (k->def && k->width <= sizeof dflt) {
		memset(dflt, 0, sizeof dflt);
		if (cfg_key_set(k, dflt, "", k->def, why, sizeof why) == 0 &&
		    memcmp(dflt, f, k->width) == 0 && !(k->flags & CF_DEFAULT_NAME)) {
			snprintf(buf, n, "%s", k->def);
			return;
		}
	}
	switch (k->type) {
	case CT_BOOL:
		memcpy(&b, f, sizeof b);
		snprintf(buf, n, "%s", b ? "yes" : "no");
		break;
	case CT_UINT:
	case CT_SIZE:
	case CT_DURATION:
		cfg_render_number(k, cfg_field_uint(f, k->width) * cfg_scale(k), buf, n);
		break;
	case CT_ENUM:
		memcpy(&e, f, sizeof e);
		for (int i = 0; k->names[i]; i++) {
			if (i == e) {
				snprintf(buf, n, "%s", k->names[i]);
				return;
			}
		}
		snprintf(buf, n, "%d", e);
		break;
	default:
		snprintf(buf, n, "%.*s", (int)k->width, (const char *)f);
		break;
	}
}

static const struct cfg_key *cfg_key_find(const char *section, const char *key, size_t *idx)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		if (strcmp(cfg_keys[i].section, section) == 0 && strcmp(cfg_keys[i].key, key) == 0) {
			if (idx)
				*idx = i;
			return &cfg_keys[i];
		}
	}
	return NULL;
}

static const struct cfg_kind *cfg_kind_find(const char *name)
{
	for (size_t i = 0; i < N_KINDS; i++)
		if (strcmp(cfg_kinds[i].name, name) == 0)
			return &cfg_kinds[i];
	return NULL;
}

static int cfg_section_find(const char *name)
{
	for (size_t i = 0; i < N_SECTIONS; i++)
		if (strcmp(cfg_sections[i].name, name) == 0)
			return (int)i;
	return -1;
}

static unsigned *cfg_kind_count(const struct cfg_kind *kd, struct hp_config *c)
{
	return (unsigned *)((char *)c + kd->count_off);
}

static unsigned cfg_kind_count_c(const struct cfg_kind *kd, const struct hp_config *c)
{
	unsigned n;

	memcpy(&n, (const char *)c + kd->count_off, sizeof n);
	return n > kd->max ? kd->max : n;
}

static char *cfg_inst(const struct cfg_kind *kd, struct hp_config *c, unsigned i)
{
	return (char *)c + kd->arr_off + (size_t)i * kd->elem_size;
}

static const char *cfg_inst_c(const struct cfg_kind *kd, const struct hp_config *c, unsigned i)
{
	return (const char *)c + kd->arr_off + (size_t)i * kd->elem_size;
}

static const char *cfg_inst_name(const struct cfg_kind *kd, const struct hp_config *c,
				 unsigned i)
{
	return cfg_inst_c(kd, c, i) + kd->name_off;
}

static size_t cfg_kind_index(const struct cfg_kind *kd)
{
	return (size_t)(kd - cfg_kinds);
}

/* ---- defaults ----------------------------------------------------------- */

/* Every default is text parsed by cfg_key_set; the unit tests check that
 * none fails, so failures here are ignored. */
void config_defaults(struct hp_config *c)
{
	char why[8];

	memset(c, 0, sizeof *c);
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct cfg_key *k = &cfg_keys[i];

		if (cfg_key_set(k, (char *)c + k->off, "", k->def, why, sizeof why) != 0)
			continue;
	}
}

static void cfg_inst_defaults(const struct cfg_kind *kd, char *inst, const char *name)
{
	char why[8];

	memset(inst, 0, kd->elem_size);
	cfg_field_set_text(inst + kd->name_off, HP_NAME_MAX, name);
	for (size_t i = 0; i < kd->nkeys; i++) {
		const struct cfg_key *k = &kd->keys[i];

		if (k->def && cfg_key_set(k, inst + k->off, "", k->def, why, sizeof why) != 0)
			continue;
	}
}

/* ---- error collection --------------------------------------------------- */

static void cfg_append(struct cfg_parser *p, const char *fmt, ...) HP_PRINTF(2, 3);
static void cfg_append(struct cfg_parser *p, const char *fmt, ...)
{
	va_list ap;
	int w;

	if (!p->err || p->errused + 1 >= p->errlen)
		return;
	va_start(ap, fmt);
	w = vsnprintf(p->err + p->errused, p->errlen - p->errused, fmt, ap);
	va_end(ap);
	if (w < 0)
		return;
	p->errused += (size_t)w;
	if (p->errused >= p->errlen)
		p->errused = p->errlen - 1;
}

/* Record one problem as "name:LINE: message" (line 0: "name: message").
 * After CFG_MAX_ERRORS the parse gives up. */
static void cfg_err(struct cfg_parser *p, unsigned line, const char *fmt, ...) HP_PRINTF(3, 4);
static void cfg_err(struct cfg_parser *p, unsigned line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (p->gave_up)
		return;
	if (++p->nerr > CFG_MAX_ERRORS) {
		cfg_append(p, "%s: too many errors, stopped after %d\n", p->name, CFG_MAX_ERRORS);
		p->gave_up = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (line)
		cfg_append(p, "%s:%u: %s\n", p->name, line, msg);
	else
		cfg_append(p, "%s: %s\n", p->name, msg);
}

/* ---- the parser --------------------------------------------------------- */

/*
 * Unquote a value (the text after '='): a quoted value ends at its closing
 * quote, an unquoted one at a '#' or ';' that starts it or follows a blank.
 * Returns NULL, or why the value is malformed.
 */
static const char *cfg_value_unquote(const char *s, char *out, size_t outlen)
{
	size_t n = 0;

	while (cfg_is_blank(*s))
		s++;
	if (*s == '"') {
		for (s++;; s++) {
			if (!*s)
				return "missing closing quote";
			if (*s == '"')
				break;
			if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
				s++;
			if (n + 1 >= outlen)
				return "value too long";
			out[n++] = *s;
		}
		for (s++; cfg_is_blank(*s); s++)
			;
		if (*s && *s != '#' && *s != ';')
			return "unexpected text after closing quote";
	} else {
		for (; *s; s++) {
			if ((*s == '#' || *s == ';') && (n == 0 || cfg_is_blank(s[-1])))
				break;
			if (n + 1 >= outlen)
				return "value too long";
			out[n++] = *s;
		}
		while (n && cfg_is_blank(out[n - 1]))
			n--;
	}
	out[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)out[i] < 0x20 && out[i] != '\t') || out[i] == 0x7f)
			return "control character in value";
	return NULL;
}

static void cfg_hint_word(const char *bad, const char *cand, const char **best, unsigned *dist)
{
	unsigned d = cfg_distance(bad, cand);

	if (d < *dist) {
		*dist = d;
		*best = cand;
	}
}

static void cfg_section_header(struct cfg_parser *p, char *s)
{
	char *close = strchr(s, ']'), *name, *rest, *dot;
	char a[CFG_SNIP_BUF], b[CFG_SNIP_BUF];
	const struct cfg_kind *kd;

	p->skip = true;
	p->sec = -1;
	p->kind = NULL;
	if (!close) {
		cfg_err(p, p->line, "missing ']' in section header '%s'", cfg_snip(a, s));
		return;
	}
	rest = cfg_trim(close + 1);
	if (*rest && *rest != '#' && *rest != ';') {
		cfg_err(p, p->line, "unexpected text '%s' after section header", cfg_snip(a, rest));
		return;
	}
	*close = '\0';
	name = cfg_trim(s + 1);
	if (!*name) {
		cfg_err(p, p->line, "empty section name []");
		return;
	}
	dot = strchr(name, '.');
	if (!dot) {
		int sec = cfg_section_find(name);

		if (sec < 0) {
			const char *best = NULL;
			unsigned dist = 3;

			if (cfg_kind_find(name)) {
				cfg_err(p, p->line, "section [%s] needs a name: [%s.NAME]", name, name);
				return;
			}
			if (p->nerr < CFG_MAX_ERRORS) {
				for (size_t i = 0; i < N_SECTIONS; i++)
					cfg_hint_word(name, cfg_sections[i].name, &best, &dist);
			}
			if (best)
				cfg_err(p, p->line, "unknown section [%s] (did you mean [%s]?)",
					cfg_snip(a, name), best);
			else
				cfg_err(p, p->line, "unknown section [%s]", cfg_snip(a, name));
			return;
		}
		if (p->sec_line[sec]) {
			cfg_err(p, p->line, "duplicate section [%s] (first at line %u)", name,
				p->sec_line[sec]);
			return;
		}
		p->sec_line[sec] = p->line;
		p->sec = sec;
		p->skip = false;
		return;
	}

	*dot = '\0';
	kd = cfg_kind_find(name);
	if (!kd) {
		*dot = '.';
		cfg_err(p, p->line, "unknown section [%s]", cfg_snip(a, name));
		return;
	}
	name = dot + 1;
	if (!cfg_is_name(name) || strlen(name) >= HP_NAME_MAX) {
		cfg_err(p, p->line, "invalid section name '%s' in [%s.%s] (use 1..%d letters, "
			"digits, '_' and '-')", cfg_snip(a, name), kd->name, cfg_snip(b, name),
			HP_NAME_MAX - 1);
		return;
	}
	unsigned *count = cfg_kind_count(kd, &p->c);
	size_t ki = cfg_kind_index(kd);

	for (unsigned i = 0; i < *count; i++) {
		if (strcmp(cfg_inst_name(kd, &p->c, i), name) == 0) {
			cfg_err(p, p->line, "duplicate section [%s.%s] (first at line %u)",
				kd->name, name, p->hdr_line[ki][i]);
			return;
		}
	}
	if (*count >= kd->max) {
		cfg_err(p, p->line, "too many [%s.NAME] sections (max %u)", kd->name, kd->max);
		return;
	}
	cfg_inst_defaults(kd, cfg_inst(kd, &p->c, *count), name);
	p->hdr_line[ki][*count] = p->line;
	p->kind = kd;
	p->inst = (*count)++;
	p->skip = false;
}

static void cfg_key_value(struct cfg_parser *p, const char *key, const char *val)
{
	const struct cfg_key *keys, *k = NULL;
	size_t nkeys, i, idx = 0;
	unsigned *seen;
	char fqk[HP_NAME_MAX * 2 + 64], secname[HP_NAME_MAX + 32], why[512];
	char a[CFG_SNIP_BUF];
	void *field;

	if (p->kind) {
		keys = p->kind->keys;
		nkeys = p->kind->nkeys;
		snprintf(secname, sizeof secname, "%s.%s", p->kind->name,
			 cfg_inst_name(p->kind, &p->c, p->inst));
	} else {
		keys = NULL;
		nkeys = 0;
		snprintf(secname, sizeof secname, "%s", cfg_sections[p->sec].name);
	}
	if (p->kind) {
		for (i = 0; i < nkeys; i++)
			if (strcmp(keys[i].key, key) == 0)
				k = &keys[i];
	} else {
		k = cfg_key_find(secname, key, &idx);
	}
	if (!k) {
		const char *best = NULL;
		unsigned dist = 3;

		if (p->nerr < CFG_MAX_ERRORS) {
			if (p->kind) {
				for (i = 0; i < nkeys; i++)
					cfg_hint_word(key, keys[i].key, &best, &dist);
			} else {
				for (i = 0; i < N_KEYS; i++)
					if (strcmp(cfg_keys[i].section, secname) == 0)
						cfg_hint_word(key, cfg_keys[i].key, &best, &dist);
			}
		}
		if (best)
			cfg_err(p, p->line, "unknown key '%s' in [%s] (did you mean '%s'?)",
				cfg_snip(a, key), secname, best);
		else
			cfg_err(p, p->line, "unknown key '%s' in [%s]", cfg_snip(a, key), secname);
		return;
	}
	snprintf(fqk, sizeof fqk, "%s.%s", secname, k->key);
	if (p->kind) {
		seen = &p->inst_key_line[cfg_kind_index(p->kind)][p->inst][k - keys];
		field = cfg_inst(p->kind, &p->c, p->inst) + k->off;
	} else {
		seen = &p->key_line[idx];
		field = (char *)&p->c + k->off;
	}
	if (*seen) {
		cfg_err(p, p->line, "duplicate key '%s' in [%s] (first set at line %u)", k->key,
			secname, *seen);
		return;
	}
	*seen = p->line;
	if (cfg_key_set(k, field, fqk, val, why, sizeof why) != 0)
		cfg_err(p, p->line, "%s", why);
}

static void cfg_line(struct cfg_parser *p, char *s)
{
	char val[CFG_MAX_LINE + 1], a[CFG_SNIP_BUF];
	char *eq, *key;
	const char *why;

	s = cfg_trim(s);
	if (!*s || *s == '#' || *s == ';')
		return;
	if (*s == '[') {
		cfg_section_header(p, s);
		return;
	}
	eq = strchr(s, '=');
	if (!eq) {
		cfg_err(p, p->line, "missing '=' in '%s' (expected key = value)", cfg_snip(a, s));
		return;
	}
	*eq = '\0';
	key = cfg_trim(s);
	if (!*key) {
		cfg_err(p, p->line, "missing key before '='");
		return;
	}
	why = cfg_value_unquote(eq + 1, val, sizeof val);
	if (why) {
		cfg_err(p, p->line, "%s for key '%s'", why, cfg_snip(a, key));
		return;
	}
	if (p->skip)
		return;
	if (p->sec < 0 && !p->kind) {
		cfg_err(p, p->line, "key '%s' outside of any section (add a [section] line "
			"above it)", cfg_snip(a, key));
		return;
	}
	cfg_key_value(p, key, val);
}

static void cfg_text(struct cfg_parser *p, const char *text, size_t len)
{
	char buf[CFG_MAX_LINE + 1];
	size_t pos = 0;

	p->sec = -1;
	p->skip = false;
	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
		pos = 3;
	while (pos < len && !p->gave_up) {
		const char *ls = text + pos;
		const char *nl = memchr(ls, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - ls) : len - pos;

		pos += ll + (nl ? 1 : 0);
		p->line++;
		if (ll && ls[ll - 1] == '\r')
			ll--;
		if (ll > CFG_MAX_LINE) {
			cfg_err(p, p->line, "line too long (%zu bytes, max %d)", ll, CFG_MAX_LINE);
			continue;
		}
		if (memchr(ls, '\0', ll)) {
			cfg_err(p, p->line, "NUL byte in line");
			continue;
		}
		memcpy(buf, ls, ll);
		buf[ll] = '\0';
		cfg_line(p, buf);
	}
}

/* ---- checks across keys ------------------------------------------------- */

static unsigned cfg_gline(const struct cfg_parser *p, const char *section, const char *key)
{
	size_t idx;

	return cfg_key_find(section, key, &idx) ? p->key_line[idx] : 0;
}

/* Line that set `kind.NAME#inst.key`, 0 if defaulted. */
static unsigned cfg_iline(const struct cfg_parser *p, const char *kind, unsigned inst,
			  const char *key)
{
	const struct cfg_kind *kd = cfg_kind_find(kind);
	size_t ki = cfg_kind_index(kd);

	for (size_t j = 0; j < kd->nkeys; j++)
		if (strcmp(kd->keys[j].key, key) == 0)
			return p->inst_key_line[ki][inst][j];
	return 0;
}

static unsigned cfg_max_line(unsigned a, unsigned b)
{
	return a > b ? a : b;
}

static void check_http_upstream(struct cfg_parser *p)
{
	const struct hp_config *c = &p->c;

	if (!c->http_upstream[0])
		return;
	for (unsigned i = 0; i < c->n_upstreams; i++)
		if (strcmp(c->upstreams[i].name, c->http_upstream) == 0)
			return;
	cfg_err(p, cfg_gline(p, "http", "upstream"),
		"http.upstream names [upstream.%s], which is not defined", c->http_upstream);
}

static const struct hp_loader_conf *cfg_loader_named(const struct hp_config *c, const char *name)
{
	for (unsigned i = 0; i < c->n_loaders; i++)
		if (strcmp(c->loaders[i].name, name) == 0)
			return &c->loaders[i];
	return NULL;
}

static void check_strategies(struct cfg_parser *p)
{
	const struct hp_config *c = &p->c;

	for (unsigned i = 0; i < c->n_loaders; i++) {
		const struct hp_loader_conf *l = &c->loaders[i];
		const size_t ki = cfg_kind_index(cfg_kind_find("loader"));

		if (!l->dsn[0] == !l->url[0])
			cfg_err(p, p->hdr_line[ki][i],
				"[loader.%s] needs either dsn = ... (with query) or url = ...",
				l->name);
		else if (l->dsn[0] && !l->query[0] && !l->write_query[0] && !l->warm_query[0])
			cfg_err(p, cfg_iline(p, "loader", i, "dsn"),
				"[loader.%s] has a dsn but no query, write_query or warm_query",
				l->name);
		if (l->url[0] && strncmp(l->url, "http://", 7) != 0)
			cfg_err(p, cfg_iline(p, "loader", i, "url"),
				"loader.%s.url must start with http:// (https is not supported)",
				l->name);
	}
	for (unsigned i = 0; i < c->n_strategies; i++) {
		const struct hp_strategy_conf *s = &c->strategies[i];
		const struct hp_loader_conf *l = s->loader[0] ? cfg_loader_named(c, s->loader) : NULL;

		if (s->loader[0] && !l) {
			cfg_err(p, cfg_iline(p, "strategy", i, "loader"),
				"strategy.%s.loader names [loader.%s], which is not defined",
				s->name, s->loader);
			continue;
		}
		if (s->write != HP_WRITE_NONE && (!l || !l->write_query[0]))
			cfg_err(p, cfg_max_line(cfg_iline(p, "strategy", i, "write"),
						cfg_iline(p, "strategy", i, "loader")),
				"strategy.%s.write = %s needs a loader with a write_query",
				s->name, write_mode_names[s->write]);
		if ((s->refresh_ahead_pct || s->swr_ms || s->sie_ms) && (!l || !l->query[0]) &&
		    (!l || !l->url[0]))
			cfg_err(p, cfg_iline(p, "strategy", i, "pattern"),
				"strategy.%s: refresh_ahead, stale_while_revalidate and "
				"stale_if_error need a loader that reads (query or url)", s->name);
	}
}

static void check_http_compress(struct cfg_parser *p)
{
	const struct hp_config *c = &p->c;
	struct compress_options co;
	const char *why = NULL;

	if (compress_parse_list(&co, c->http_compress, &why) != 0)
		cfg_err(p, cfg_gline(p, "http", "compress"), "http.compress: %s", why);
	if (c->http_compress_min_size > c->http_compress_max_size)
		cfg_err(p, cfg_gline(p, "http", "compress_min_size"),
			"http.compress_min_size is larger than http.compress_max_size");
	{
		struct admit_rules r = { 0 };

		if (admit_rules_add(&r, ADMIT_HIGH, c->http_priority_high, &why) != 0)
			cfg_err(p, cfg_gline(p, "http", "priority_high"), "http.priority_high: %s",
				why);
		memset(&r, 0, sizeof(r));
		if (admit_rules_add(&r, ADMIT_LOW, c->http_priority_low, &why) != 0)
			cfg_err(p, cfg_gline(p, "http", "priority_low"), "http.priority_low: %s",
				why);
	}
}

static void check_redis(struct cfg_parser *p)
{
	if (p->c.redis_address[0] && p->c.redis_cluster[0])
		cfg_err(p, cfg_max_line(cfg_gline(p, "redis", "address"),
					cfg_gline(p, "redis", "cluster")),
			"set redis.address or redis.cluster, not both");
}

static void check_partitions(struct cfg_parser *p)
{
	const struct hp_config *c = &p->c;
	char a[32], b[32];

	for (unsigned i = 0; i < c->n_partitions; i++) {
		const struct hp_partition_conf *pt = &c->partitions[i];

		for (unsigned j = 0; j < i; j++) {
			if (pt->prefix[0] && strcmp(pt->prefix, c->partitions[j].prefix) == 0)
				cfg_err(p, cfg_iline(p, "partition", i, "prefix"),
					"partition.%s.prefix is the same as partition.%s.prefix",
					pt->name, c->partitions[j].name);
		}
		if (pt->max_memory > c->l1_max_memory) {
			cfg_render_size(pt->max_memory, a, sizeof a);
			cfg_render_size(c->l1_max_memory, b, sizeof b);
			cfg_err(p, cfg_max_line(cfg_iline(p, "partition", i, "max_memory"),
						cfg_gline(p, "cache", "l1_max_memory")),
				"partition.%s.max_memory (%s) exceeds cache.l1_max_memory (%s)",
				pt->name, a, b);
		}
		if (c->max_ttl_ms && pt->default_ttl_ms > c->max_ttl_ms) {
			cfg_render_duration(pt->default_ttl_ms, a, sizeof a);
			cfg_render_duration(c->max_ttl_ms, b, sizeof b);
			cfg_err(p, cfg_max_line(cfg_iline(p, "partition", i, "default_ttl"),
						cfg_gline(p, "cache", "max_ttl")),
				"partition.%s.default_ttl (%s) exceeds cache.max_ttl (%s)",
				pt->name, a, b);
		}
	}
}

static void check_resp_buffers(struct cfg_parser *p)
{
	const struct hp_config *c = &p->c;
	char a[32], b[32];

	if (c->resp_max_query_buffer < c->resp_max_value_size + c->resp_max_key_len) {
		cfg_render_size(c->resp_max_query_buffer, a, sizeof a);
		cfg_render_size(c->resp_max_value_size + c->resp_max_key_len, b, sizeof b);
		cfg_err(p, cfg_max_line(cfg_max_line(cfg_gline(p, "resp", "max_query_buffer"),
						     cfg_gline(p, "resp", "max_value_size")),
					cfg_gline(p, "resp", "max_key_len")),
			"resp.max_query_buffer (%s) must hold resp.max_key_len + "
			"resp.max_value_size (%s)", a, b);
	}
	if (c->resp_max_output_buffer < c->resp_max_value_size) {
		cfg_render_size(c->resp_max_output_buffer, a, sizeof a);
		cfg_render_size(c->resp_max_value_size, b, sizeof b);
		cfg_err(p, cfg_max_line(cfg_gline(p, "resp", "max_output_buffer"),
					cfg_gline(p, "resp", "max_value_size")),
			"resp.max_output_buffer (%s) is smaller than resp.max_value_size (%s)",
			a, b);
	}
}

static bool cfg_host_wildcard(const char *h)
{
	return strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0;
}

static void check_listen(struct cfg_parser *p)
{
	const struct hp_config *c = &p->c;
	struct {
		const char *section;
		const char *addr;
		bool active;
		char host[HP_ADDR_MAX];
		uint16_t port;
	} l[] = {
		{ "resp", c->resp_listen, true, "", 0 },
		{ "api", c->api_listen, true, "", 0 },
		{ "http", c->http_listen, c->http_upstream[0] != '\0', "", 0 },
		{ "pooler", c->pooler_listen, c->n_databases > 0, "", 0 },
	};

	for (size_t i = 0; i < HP_ARRAY_SIZE(l); i++)
		if (cfg_hostport_check(l[i].addr, l[i].host, sizeof l[i].host, &l[i].port, true) ||
		    l[i].port == 0)
			l[i].active = false;
	for (size_t i = 0; i < HP_ARRAY_SIZE(l); i++) {
		for (size_t j = 0; j < i; j++) {
			if (!l[i].active || !l[j].active || l[i].port != l[j].port)
				continue;
			if (strcmp(l[i].host, l[j].host) != 0 && !cfg_host_wildcard(l[i].host) &&
			    !cfg_host_wildcard(l[j].host))
				continue;
			cfg_err(p, cfg_max_line(cfg_gline(p, l[i].section, "listen"),
						cfg_gline(p, l[j].section, "listen")),
				"%s.listen and %s.listen both use port %u", l[j].section,
				l[i].section, l[i].port);
		}
	}
}

static void check_databases(struct cfg_parser *p)
{
	const struct hp_config *c = &p->c;
	const size_t ki = cfg_kind_index(cfg_kind_find("database"));

	for (unsigned i = 0; i < c->n_databases; i++) {
		const struct hp_database_conf *d = &c->databases[i];

		if (d->password[0] && d->password_file[0])
			cfg_err(p, cfg_max_line(cfg_iline(p, "database", i, "password"),
						cfg_iline(p, "database", i, "password_file")),
				"set database.%s.password or database.%s.password_file, "
				"not both", d->name, d->name);
	}
	if (c->pooler_min_pool_size > c->pooler_default_pool_size)
		cfg_err(p, cfg_gline(p, "pooler", "min_pool_size"),
			"pooler.min_pool_size (%u) is larger than pooler.default_pool_size (%u)",
			c->pooler_min_pool_size, c->pooler_default_pool_size);
	if (c->n_databases && c->pooler_auth_type != HP_AUTH_TRUST && !c->pooler_auth_file[0])
		cfg_err(p, cfg_max_line(cfg_gline(p, "pooler", "auth_type"),
					p->hdr_line[ki][0]),
			"pooler.auth_type = %s needs pooler.auth_file (or use trust)",
			auth_type_names[c->pooler_auth_type]);
}

/* query_cache.fingerprints: 16-hex-digit fingerprints, comma-separated. */
static void check_query_cache(struct cfg_parser *p)
{
	const char *s = p->c.qc_fingerprints;

	while (*s) {
		size_t n = strcspn(s, ",");
		size_t b = 0, e = n;

		while (b < e && (s[b] == ' ' || s[b] == '\t'))
			b++;
		while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t'))
			e--;
		if (e - b != 16 || strspn(s + b, "0123456789abcdefABCDEF") < 16) {
			cfg_err(p, cfg_gline(p, "query_cache", "fingerprints"),
				"query_cache.fingerprints: '%.*s' is not a fingerprint (16 hex "
				"digits, as GET /api/v2/performance/queries shows)", (int)(e - b),
				s + b);
			return;
		}
		s += n;
		if (*s == ',')
			s++;
	}
}

static void check_services(struct cfg_parser *p)
{
	const struct hp_config *c = &p->c;

	for (unsigned i = 0; i < c->n_services; i++)
		for (unsigned j = 0; j < i; j++)
			if (c->services[i].port && c->services[i].port == c->services[j].port)
				cfg_err(p, cfg_iline(p, "service", i, "port"),
					"service.%s.port is the same as service.%s.port (%u)",
					c->services[i].name, c->services[j].name,
					c->services[i].port);
}

struct cfg_check {
	const char *doc;
	void (*fn)(struct cfg_parser *p);
};

static const struct cfg_check cfg_checks[] = {
	{ "`http.upstream`, when set, names an existing `[upstream.NAME]`.",
	  check_http_upstream },
	{ "`http.compress` lists known codings (gzip, br, zstd) at most once "
	  "each, `http.compress_min_size` is at most `http.compress_max_size`, "
	  "and `http.priority_high`/`priority_low` are valid rule lists.",
	  check_http_compress },
	{ "`redis.address` and `redis.cluster` are not both set.", check_redis },
	{ "Partition prefixes are unique; a partition's `max_memory` is at most "
	  "`cache.l1_max_memory`, and its `default_ttl` at most `cache.max_ttl` "
	  "when that is set.", check_partitions },
	{ "`resp.max_query_buffer` is at least `resp.max_key_len` + "
	  "`resp.max_value_size`, and `resp.max_output_buffer` at least "
	  "`resp.max_value_size`.", check_resp_buffers },
	{ "The listeners in use (`resp`, `api`, `http` when it has an upstream, "
	  "`pooler` when a database exists) have distinct ports, unless bound to "
	  "different addresses.", check_listen },
	{ "A database sets `password` or `password_file`, not both; with a "
	  "database, `pooler.auth_type` other than `trust` needs "
	  "`pooler.auth_file`; `pooler.min_pool_size` is at most "
	  "`pooler.default_pool_size`.", check_databases },
	{ "Service ports are unique.", check_services },
	{ "A loader has either `dsn` (with a query) or an `http://` `url`; a "
	  "strategy's `loader` names an existing `[loader.NAME]`; `write` other "
	  "than none needs a loader with `write_query`; refresh-ahead and the "
	  "stale windows need a loader that reads.", check_strategies },
	{ "`query_cache.fingerprints` holds fingerprints of 16 hex digits, "
	  "comma-separated.", check_query_cache },
};

/* Named sections: required keys, NAME defaults. */
static void cfg_finish_named(struct cfg_parser *p)
{
	for (size_t ki = 0; ki < N_KINDS; ki++) {
		const struct cfg_kind *kd = &cfg_kinds[ki];
		unsigned n = cfg_kind_count_c(kd, &p->c);

		for (unsigned i = 0; i < n; i++) {
			char *inst = cfg_inst(kd, &p->c, i);

			for (size_t j = 0; j < kd->nkeys; j++) {
				const struct cfg_key *k = &kd->keys[j];

				if ((k->flags & CF_REQUIRED) && !p->inst_key_line[ki][i][j])
					cfg_err(p, p->hdr_line[ki][i], "[%s.%s] needs %s = ...",
						kd->name, inst + kd->name_off, k->key);
				if ((k->flags & CF_DEFAULT_NAME) && !inst[k->off])
					cfg_field_set_text(inst + k->off, k->width, inst + kd->name_off);
			}
		}
	}
}

/*
 * Parse INI text into `c`. The result is built in a private copy: on
 * failure `c` is left as it was. Returns 0, -EINVAL with messages in `err`,
 * or -ENOMEM.
 */
int config_parse_string(struct hp_config *c, const char *text, size_t len,
			const char *name, char *err, size_t errlen)
{
	struct cfg_parser *p;
	int r = 0;

	if (err && errlen)
		err[0] = '\0';
	if (!c || (!text && len))
		return -EINVAL;
	p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->name = name ? name : "config";
	p->err = errlen ? err : NULL;
	p->errlen = errlen;
	config_defaults(&p->c);
	if (len > CFG_MAX_FILE) {
		cfg_err(p, 0, "file too big (%zu bytes, max %d)", len, CFG_MAX_FILE);
	} else {
		cfg_text(p, text, len);
		if (!p->gave_up)
			cfg_finish_named(p);
		for (size_t i = 0; i < HP_ARRAY_SIZE(cfg_checks) && !p->gave_up; i++)
			cfg_checks[i].fn(p);
	}
	if (p->nerr)
		r = -EINVAL;
	else
		memcpy(c, &p->c, sizeof *c);
	free(p);
	return r;
}

/*
 * Read `path` (at most 1 MiB) and parse it; on success c->source is the
 * path. Returns -errno when the file can't be read (with a message in
 * `err`), otherwise as config_parse_string.
 */
int config_load_file(struct hp_config *c, const char *path, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	struct stat st;
	int fd, r;

	if (err && errlen)
		err[0] = '\0';
	if (!c || !path)
		return -EINVAL;
	if (strlen(path) >= sizeof c->source) {
		if (err && errlen)
			snprintf(err, errlen, "%s: path too long\n", path);
		return -ENAMETOOLONG;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	if (fstat(fd, &st) != 0) {
		r = -errno;
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		r = -EISDIR;
		goto fail;
	}
	text = malloc(CFG_MAX_FILE + 1);
	if (!text) {
		r = -ENOMEM;
		goto fail;
	}
	for (;;) {
		ssize_t n = read(fd, text + len, CFG_MAX_FILE + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == CFG_MAX_FILE + 1)
			break;
	}
	close(fd);
	fd = -1;
	if (len > CFG_MAX_FILE) {
		if (err && errlen)
			snprintf(err, errlen, "%s: file too big (more than %d bytes)\n", path,
				 CFG_MAX_FILE);
		free(text);
		return -EINVAL;
	}
	r = config_parse_string(c, text, len, path, err, errlen);
	free(text);
	if (r == 0)
		cfg_field_set_text(c->source, sizeof c->source, path);
	return r;

fail:
	if (err && errlen)
		snprintf(err, errlen, "%s: %s\n", path, strerror(-r));
	if (fd >= 0)
		close(fd);
	free(text);
	return r;
}

/* ---- queries ------------------------------------------------------------ */

/* `section` is "resp", "partition.NAME" or just "partition". Unknown keys
 * are not reloadable. */
bool config_key_reloadable(const char *section, const char *key)
{
	const struct cfg_key *k;
	char kind[HP_NAME_MAX];
	const char *dot;

	if (!section || !key)
		return false;
	k = cfg_key_find(section, key, NULL);
	if (k)
		return k->flags & CF_RELOAD;
	dot = strchr(section, '.');
	if (dot && (size_t)(dot - section) < sizeof kind) {
		memcpy(kind, section, (size_t)(dot - section));
		kind[dot - section] = '\0';
		section = kind;
	}
	const struct cfg_kind *kd = cfg_kind_find(section);

	if (!kd)
		return false;
	for (size_t i = 0; i < kd->nkeys; i++)
		if (strcmp(kd->keys[i].key, key) == 0)
			return kd->keys[i].flags & CF_RELOAD;
	return false;
}

static bool cfg_field_equal(const struct cfg_key *k, const void *a, const void *b)
{
	if (cfg_is_text(k->type))
		return strncmp(a, b, k->width) == 0;
	return memcmp(a, b, k->width) == 0;
}

struct cfg_out {
	char *p;
	size_t len, used;
	int count;
};

static void cfg_out_line(struct cfg_out *o, const char *a, const char *b, const char *cc)
{
	int w;

	o->count++;
	if (!o->p || o->used + 1 >= o->len)
		return;
	w = snprintf(o->p + o->used, o->len - o->used, "%s%s%s%s%s\n", a, b ? "." : "",
		     b ? b : "", cc ? "." : "", cc ? cc : "");
	if (w > 0)
		o->used += (size_t)w;
	if (o->used >= o->len)
		o->used = o->len - 1;
}

/*
 * Count the differences between `old` and `nw` that a SIGHUP cannot apply
 * and list them in `out`, one "section.key" (or "kind.NAME.key", or
 * "kind.NAME" for an added or removed section) a line. `out` may be NULL;
 * the count is complete even when `out` is too small.
 */
int config_diff_restart(const struct hp_config *old, const struct hp_config *nw,
			char *out, size_t outlen)
{
	struct cfg_out o = { out, outlen, 0, 0 };

	if (out && outlen)
		out[0] = '\0';
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct cfg_key *k = &cfg_keys[i];

		if (!(k->flags & CF_RELOAD) &&
		    !cfg_field_equal(k, (const char *)old + k->off, (const char *)nw + k->off))
			cfg_out_line(&o, k->section, k->key, NULL);
	}
	for (size_t ki = 0; ki < N_KINDS; ki++) {
		const struct cfg_kind *kd = &cfg_kinds[ki];
		unsigned no = cfg_kind_count_c(kd, old), nn = cfg_kind_count_c(kd, nw);
		char sec[HP_NAME_MAX + 32];

		for (unsigned i = 0; i < nn; i++) {
			const char *name = cfg_inst_name(kd, nw, i);
			const char *a = NULL;

			for (unsigned j = 0; j < no && !a; j++)
				if (strcmp(cfg_inst_name(kd, old, j), name) == 0)
					a = cfg_inst_c(kd, old, j);
			snprintf(sec, sizeof sec, "%s.%s", kd->name, name);
			if (!a) {
				if (!kd->reloadable)
					cfg_out_line(&o, sec, NULL, NULL);
				continue;
			}
			for (size_t j = 0; j < kd->nkeys; j++) {
				const struct cfg_key *k = &kd->keys[j];

				if (!(k->flags & CF_RELOAD) &&
				    !cfg_field_equal(k, a + k->off, cfg_inst_c(kd, nw, i) + k->off))
					cfg_out_line(&o, sec, k->key, NULL);
			}
		}
		for (unsigned j = 0; j < no && !kd->reloadable; j++) {
			const char *name = cfg_inst_name(kd, old, j);
			bool found = false;

			for (unsigned i = 0; i < nn && !found; i++)
				found = strcmp(cfg_inst_name(kd, nw, i), name) == 0;
			if (!found)
				cfg_out_line(&o, kd->name, name, NULL);
		}
	}
	return o.count;
}

const char *config_eviction_name(int e)
{
	return e >= 0 && e < (int)HP_ARRAY_SIZE(eviction_names) - 1 ? eviction_names[e] : "unknown";
}

const char *config_priority_name(int p)
{
	return p >= 0 && p < (int)HP_ARRAY_SIZE(priority_names) - 1 ? priority_names[p] : "unknown";
}

/*
 * Visit every key with its value as text. Secrets (database passwords) are
 * shown as "********" when set, since the API serves this view.
 */
void config_visit(const struct hp_config *c, config_visit_fn fn, void *arg)
{
	char val[HP_LIST_MAX + 64], sec[HP_NAME_MAX + 32];

	for (size_t i = 0; i < N_KEYS; i++) {
		const struct cfg_key *k = &cfg_keys[i];

		cfg_key_render(k, (const char *)c + k->off, val, sizeof val);
		fn(k->section, k->key, val, k->flags & CF_RELOAD, arg);
	}
	for (size_t ki = 0; ki < N_KINDS; ki++) {
		const struct cfg_kind *kd = &cfg_kinds[ki];
		unsigned n = cfg_kind_count_c(kd, c);

		for (unsigned i = 0; i < n; i++) {
			snprintf(sec, sizeof sec, "%s.%s", kd->name, cfg_inst_name(kd, c, i));
			for (size_t j = 0; j < kd->nkeys; j++) {
				const struct cfg_key *k = &kd->keys[j];

				cfg_key_render(k, cfg_inst_c(kd, c, i) + k->off, val, sizeof val);
				if ((k->flags & CF_SECRET) && val[0])
					snprintf(val, sizeof val, "********");
				fn(sec, k->key, val, k->flags & CF_RELOAD, arg);
			}
		}
	}
}

/* ---- writers ------------------------------------------------------------ */

/* Word-wrap `text` at CFG_WRAP columns, each line starting with `prefix`. */
static void cfg_wrap(FILE *f, const char *prefix, const char *text)
{
	size_t plen = strlen(prefix), col = 0;
	const char *s = text;

	while (*s) {
		const char *w = s;
		size_t wl;

		while (*s && *s != ' ')
			s++;
		wl = (size_t)(s - w);
		if (col && col + 1 + wl > CFG_WRAP) {
			fputc('\n', f);
			col = 0;
		}
		if (!col) {
			fputs(prefix, f);
			col = plen;
		} else {
			fputc(' ', f);
			col++;
		}
		fwrite(w, 1, wl, f);
		col += wl;
		while (*s == ' ')
			s++;
	}
	if (col)
		fputc('\n', f);
}

/* Human summary of a key's type: "size 64kb..4tb", "one of s3fifo, lru". */
static void cfg_type_text(const struct cfg_key *k, char *buf, size_t n, bool md)
{
	char lo[32], hi[32], list[256];

	cfg_render_number(k, k->min, lo, sizeof lo);
	cfg_render_number(k, k->max, hi, sizeof hi);
	switch (k->type) {
	case CT_BOOL:
		snprintf(buf, n, "yes/no");
		break;
	case CT_UINT:
		snprintf(buf, n, "integer %s..%s%s", lo, hi,
			 (k->flags & CF_POW2) ? ", power of two" : "");
		break;
	case CT_SIZE:
		snprintf(buf, n, "size %s..%s", lo, hi);
		break;
	case CT_DURATION:
		snprintf(buf, n, "duration %s..%s%s", lo, hi,
			 (k->flags & CF_SECONDS) ? ", whole seconds" : "");
		break;
	case CT_ENUM:
		cfg_names_list(k->names, list, sizeof list, md ? "`" : "");
		snprintf(buf, n, "%s", list);
		break;
	case CT_STRING:
		snprintf(buf, n, "text, max %zu bytes", k->width - 1);
		break;
	case CT_HOSTPORT:
		snprintf(buf, n, "host:port");
		break;
	case CT_HOSTPORT_LIST:
		snprintf(buf, n, "host:port list");
		break;
	case CT_HOST:
		snprintf(buf, n, "host or socket directory");
		break;
	case CT_PATH:
		snprintf(buf, n, "%s", (k->flags & CF_ABSOLUTE) ? "absolute path" : "path");
		break;
	case CT_NAME:
		snprintf(buf, n, "section name");
		break;
	}
}

/* Write a value so that the parser reads back exactly the same text. */
static void cfg_write_value(FILE *f, const char *v)
{
	size_t n = strlen(v);
	bool quote = n && (cfg_is_blank(v[0]) || cfg_is_blank(v[n - 1]) || v[0] == '"' ||
			   strpbrk(v, "#;"));

	if (!quote) {
		fputs(v, f);
		return;
	}
	fputc('"', f);
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			fputc('\\', f);
		fputc(*v, f);
	}
	fputc('"', f);
}

/* "key = value", or "key =" without a trailing blank when empty. */
static void cfg_write_kv(FILE *f, const char *prefix, const char *key, const char *v)
{
	fprintf(f, "%s%s =%s", prefix, key, *v ? " " : "");
	cfg_write_value(f, v);
	fputc('\n', f);
}

static void cfg_write_rule(FILE *f)
{
	fputs("# ", f);
	for (int i = 2; i < CFG_WRAP; i++)
		fputc('-', f);
	fputc('\n', f);
}

static void cfg_write_key_doc(FILE *f, const struct cfg_key *k, const char *prefix)
{
	char type[320], line[512];

	cfg_type_text(k, type, sizeof type, false);
	cfg_wrap(f, prefix, k->doc);
	if (k->flags & CF_REQUIRED)
		snprintf(line, sizeof line, "(%s; required%s)", type,
			 (k->flags & CF_RELOAD) ? "; reloadable" : "");
	else
		snprintf(line, sizeof line, "(%s; default %s%s)", type,
			 (k->flags & CF_DEFAULT_NAME) ? "NAME" : k->def[0] ? k->def : "empty",
			 (k->flags & CF_RELOAD) ? "; reloadable" : "");
	cfg_wrap(f, prefix, line);
}

/*
 * Write `c` as a complete INI file: every key, its doc as comments, sections
 * in table order. Named sections in `c` are written out; kinds without any
 * get a commented example. For the defaults this is etc/hotpath.ini.
 */
void config_write_ini(const struct hp_config *c, FILE *f)
{
	char val[HP_LIST_MAX + 64];

	fputs("# hotpath configuration\n#\n", f);
	if (c->source[0]) {
		fputs("# The effective configuration read from ", f);
		for (const char *s = c->source; *s && s < c->source + sizeof c->source; s++)
			fputc(isprint((unsigned char)*s) ? *s : '?', f);
		fputs(", with every key that\n# was not set shown at its default.\n", f);
	} else {
		cfg_wrap(f, "# ", "This is the embedded default: the L1 memory cache only, no "
			 "Redis, no PostgreSQL, no upstreams; kernel observation on. "
			 "Every key is listed at its default, so delete what you do not "
			 "change; a file that sets only a few keys is valid.");
		fputs("#\n", f);
		cfg_wrap(f, "# ", "Generated by `hotpathd --config-ini` from the key table in "
			 "agent/core/config.c; the reference is docs/configuration.md. "
			 "Check a file with `hotpathd -t -c FILE`; SIGHUP reloads it.");
	}
	fputs("#\n", f);
	cfg_wrap(f, "# ", "Syntax: [section], then key = value. Lines starting with # or "
		 "; are comments, and so is the rest of a value from a # or ; that "
		 "follows a blank. Double quotes keep a value verbatim: "
		 "password = \"a # b\". Sizes take b, kb, mb, gb, tb (powers of "
		 "1024); durations take ms, s, m, h, d, and a plain number is "
		 "MILLISECONDS.");

	for (size_t s = 0; s < N_SECTIONS; s++) {
		fputc('\n', f);
		cfg_write_rule(f);
		fprintf(f, "# [%s]\n", cfg_sections[s].name);
		cfg_wrap(f, "# ", cfg_sections[s].doc);
		cfg_write_rule(f);
		fprintf(f, "[%s]\n", cfg_sections[s].name);
		for (size_t i = 0; i < N_KEYS; i++) {
			const struct cfg_key *k = &cfg_keys[i];

			if (strcmp(k->section, cfg_sections[s].name) != 0)
				continue;
			fputc('\n', f);
			cfg_write_key_doc(f, k, "# ");
			cfg_key_render(k, (const char *)c + k->off, val, sizeof val);
			cfg_write_kv(f, "", k->key, val);
		}
	}

	for (size_t ki = 0; ki < N_KINDS; ki++) {
		const struct cfg_kind *kd = &cfg_kinds[ki];
		unsigned n = cfg_kind_count_c(kd, c);
		char intro[256];

		fputc('\n', f);
		cfg_write_rule(f);
		fprintf(f, "# [%s.NAME]\n", kd->name);
		cfg_wrap(f, "# ", kd->doc);
		snprintf(intro, sizeof intro, "NAME is letters, digits, _ and -; up to %u "
			 "sections. Keys:", kd->max);
		cfg_wrap(f, "# ", intro);
		for (size_t j = 0; j < kd->nkeys; j++) {
			fprintf(f, "#\n#   %s\n", kd->keys[j].key);
			cfg_write_key_doc(f, &kd->keys[j], "#     ");
		}
		cfg_write_rule(f);
		if (!n) {
			fprintf(f, "# Example:\n#\n# [%s.%s]\n", kd->name, kd->example_name);
			for (size_t j = 0; j < kd->nkeys; j++)
				cfg_write_kv(f, "# ", kd->keys[j].key, kd->keys[j].example);
		}
		for (unsigned i = 0; i < n; i++) {
			fprintf(f, "%s[%s.%s]\n", i ? "\n" : "", kd->name, cfg_inst_name(kd, c, i));
			for (size_t j = 0; j < kd->nkeys; j++) {
				const struct cfg_key *k = &kd->keys[j];

				cfg_key_render(k, cfg_inst_c(kd, c, i) + k->off, val, sizeof val);
				cfg_write_kv(f, "", k->key, val);
			}
		}
	}
}

/* Table cell text: '|' escaped, newlines impossible (docs are one line). */
static void cfg_md_cell(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '|')
			fputc('\\', f);
		fputc(*s, f);
	}
}

static void cfg_md_table(FILE *f, const struct cfg_key *keys, size_t nkeys, const char *section)
{
	char type[320];

	fputs("| key | type | default | reload | description |\n", f);
	fputs("|---|---|---|---|---|\n", f);
	for (size_t i = 0; i < nkeys; i++) {
		const struct cfg_key *k = &keys[i];

		if (section && strcmp(k->section, section) != 0)
			continue;
		cfg_type_text(k, type, sizeof type, true);
		fprintf(f, "| `%s` | ", k->key);
		cfg_md_cell(f, type);
		fputs(" | ", f);
		if (k->flags & CF_REQUIRED)
			fputs("*required*", f);
		else if (k->flags & CF_DEFAULT_NAME)
			fputs("*NAME*", f);
		else if (!k->def[0])
			fputs("*empty*", f);
		else {
			fputc('`', f);
			cfg_md_cell(f, k->def);
			fputc('`', f);
		}
		fprintf(f, " | %s | ", (k->flags & CF_RELOAD) ? "yes" : "restart");
		cfg_md_cell(f, k->doc);
		fputs(" |\n", f);
	}
}

static const char cfg_md_intro[] =
"# Configuration reference\n"
"\n"
"<!-- Generated by `hotpathd --config-doc` (`make docs`) from the key table in\n"
"     agent/core/config.c. Do not edit by hand: change the table and\n"
"     regenerate; a unit test fails when this file and the table differ. -->\n"
"\n"
"`hotpathd` reads one INI file: `-c FILE`, or `etc/hotpath.ini` under\n"
"`make run`. Every key has a default, so a file that sets only a few keys is\n"
"valid, and an empty file is the embedded default: the L1 memory cache only,\n"
"no Redis, no PostgreSQL, no upstreams, kernel observation on.\n"
"`etc/hotpath.ini` lists every key at its default with its documentation; it\n"
"is generated from the same table (`hotpathd --config-ini`).\n"
"\n"
"## File format\n"
"\n"
"- `[section]` starts a section and `key = value` sets a key in it. Blanks\n"
"  around keys and values are ignored. Keys are lower case and\n"
"  case-sensitive. A section, and a key within a section, may appear only\n"
"  once; a repeated one is an error, not an override.\n"
"- Lines whose first non-blank character is `#` or `;` are comments. In a\n"
"  value, a `#` or `;` at its start or after a blank begins a trailing\n"
"  comment: `max_clients = 500  # peak is 300`. A `#` inside a word, as in\n"
"  `pass#word`, is kept.\n"
"- Double quotes keep a value verbatim, with its `#`, `;` and edge blanks:\n"
"  `password = \"p #ss; \"`. Inside quotes `\\\"` is a quote and `\\\\` a\n"
"  backslash; nothing else is an escape.\n"
"- Booleans are `yes`/`no`, `true`/`false`, `on`/`off` or `1`/`0`. Booleans,\n"
"  enum values and unit suffixes are case-insensitive.\n"
"- Limits: lines up to 4096 bytes, files up to 1 MiB, no NUL bytes and no\n"
"  control characters in values. CRLF line ends and a UTF-8 byte order mark\n"
"  are accepted.\n"
"- Relative paths are resolved against the directory `hotpathd` was started\n"
"  in (`/` under systemd); prefer absolute paths.\n"
"- Errors name the file and line, e.g. `hotpath.ini:12: unknown key 'foo'\n"
"  in [resp]`, and all of them are reported at once (up to 20), not only the\n"
"  first.\n"
"\n"
"## Units\n"
"\n"
"- **Sizes** are whole numbers of bytes with an optional suffix `b`, `k` or\n"
"  `kb`, `m` or `mb`, `g` or `gb`, `t` or `tb`, all powers of 1024: `512`,\n"
"  `64kb`, `256mb`, `1gb`. Decimals are refused: write `1536mb`, not `1.5gb`.\n"
"- **Durations** are whole numbers with a suffix `ms`, `s`, `m` (minutes),\n"
"  `h` or `d`: `500ms`, `30s`, `5m`, `1h`, `2d`. **A plain number is\n"
"  milliseconds**: `shutdown_timeout = 5` means 5 ms; write `5s`.\n"
"- **Addresses** are `HOST:PORT` with a port in 1..65535; IPv6 addresses go\n"
"  in brackets, `[::1]:6479`. Lists are comma-separated:\n"
"  `10.0.0.1:6379,10.0.0.2:6379`.\n"
"- Values out of range are errors, never clamped; overflowing numbers too.\n"
"\n"
"## Reloading with SIGHUP\n"
"\n"
"On SIGHUP `hotpathd` reads the file again. If it has any error, the running\n"
"configuration stays as it was and the errors are logged. Otherwise keys\n"
"marked *yes* under *reload* take effect at once; changes to the others are\n"
"logged by name as waiting for a restart and take effect at the next start.\n"
"`[partition.NAME]` sections may be added, changed and removed on reload;\n"
"the other named sections need a restart.\n"
"\n"
"## Checking a file\n"
"\n"
"`hotpathd -t -c FILE` reads and validates the file, prints every error\n"
"with its line number and exits, with a non-zero status when there is an\n"
"error. `hotpathd -t -v -c FILE` also prints the effective configuration,\n"
"every key included.\n";

/* Write docs/configuration.md: format, units, reload semantics, then one
 * table per section, the named sections and the checks across keys. */
void config_write_markdown(FILE *f)
{
	fputs(cfg_md_intro, f);
	fputs("\n## Sections\n", f);
	for (size_t s = 0; s < N_SECTIONS; s++) {
		fprintf(f, "\n### [%s]\n\n", cfg_sections[s].name);
		cfg_md_cell(f, cfg_sections[s].doc);
		fputs("\n\n", f);
		cfg_md_table(f, cfg_keys, N_KEYS, cfg_sections[s].name);
	}
	fputs("\n## Named sections\n\n"
	      "A named section is written `[KIND.NAME]`, where NAME is 1..63 letters,\n"
	      "digits, `_` and `-`. Each NAME may appear once per kind. Keys marked\n"
	      "*required* have no default.\n", f);
	for (size_t ki = 0; ki < N_KINDS; ki++) {
		const struct cfg_kind *kd = &cfg_kinds[ki];

		fprintf(f, "\n### [%s.NAME]\n\n", kd->name);
		cfg_md_cell(f, kd->doc);
		fprintf(f, " Up to %u sections.\n\n", kd->max);
		cfg_md_table(f, kd->keys, kd->nkeys, NULL);
		fprintf(f, "\nExample:\n\n```ini\n[%s.%s]\n", kd->name, kd->example_name);
		for (size_t j = 0; j < kd->nkeys; j++) {
			if (!kd->keys[j].example[0])
				continue;
			cfg_write_kv(f, "", kd->keys[j].key, kd->keys[j].example);
		}
		fputs("```\n", f);
	}
	fputs("\n## Checks across keys\n\n"
	      "After the whole file is read, these rules are checked; a broken one is\n"
	      "reported at the line of the key that was set last.\n\n", f);
	for (size_t i = 0; i < HP_ARRAY_SIZE(cfg_checks); i++) {
		fputs("- ", f);
		fputs(cfg_checks[i].doc, f);
		fputc('\n', f);
	}
}

/*
 * Man page text: roff-escape `s` for the body of a paragraph. A backslash
 * becomes \e, a '.' or '\'' that would start a line is protected with \&,
 * and `code` spans become bold with their hyphens as \- (options and
 * literals, which people copy), prose hyphens stay as they are.
 */
static void cfg_man_text(FILE *f, const char *s, bool line_start)
{
	bool code = false;

	for (; *s; s++) {
		if (line_start && (*s == '.' || *s == '\''))
			fputs("\\&", f);
		line_start = false;
		if (*s == '`') {
			fputs(code ? "\\fR" : "\\fB", f);
			code = !code;
		} else if (*s == '\\') {
			fputs("\\e", f);
		} else if (*s == '-' && code) {
			fputs("\\-", f);
		} else {
			fputc(*s, f);
		}
	}
	if (code)
		fputs("\\fR", f);
}

/* A literal (key, default, example line): every hyphen is \-. */
static void cfg_man_literal(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\e", f);
		else if (*s == '-')
			fputs("\\-", f);
		else
			fputc(*s, f);
	}
}

static void cfg_man_keys(FILE *f, const struct cfg_key *keys, size_t nkeys, const char *section)
{
	char type[320];

	for (size_t i = 0; i < nkeys; i++) {
		const struct cfg_key *k = &keys[i];

		if (section && strcmp(k->section, section) != 0)
			continue;
		cfg_type_text(k, type, sizeof type, false);
		fputs(".TP\n\\fB", f);
		cfg_man_literal(f, k->key);
		fputs("\\fR = ", f);
		if (k->flags & CF_REQUIRED) {
			fputs("\\fI(required)\\fR", f);
		} else if (k->flags & CF_DEFAULT_NAME) {
			fputs("\\fINAME\\fR", f);
		} else if (!k->def[0]) {
			fputs("\\fI(empty)\\fR", f);
		} else {
			fputs("\\fB", f);
			cfg_man_literal(f, k->def);
			fputs("\\fR", f);
		}
		fputc('\n', f);
		cfg_man_text(f, k->doc, true);
		fputs("\n.br\n", f);
		cfg_man_text(f, type, false);
		fputs((k->flags & CF_RELOAD) ? "; reloaded on SIGHUP.\n" : "; needs a restart.\n", f);
	}
}

/*
 * Write hotpath.ini(5): the file format in brief, then every section and
 * key of the table (default, type, reload), the named sections with an
 * example each, and the checks across keys. Same table as the markdown
 * reference; no date, so the output only changes when the table does.
 */
void config_write_man(FILE *f)
{
	fputs(".\\\" Generated by `hotpathd --config-man` from the key table in\n"
	      ".\\\" agent/core/config.c. Do not edit: change the table and regenerate.\n", f);
	fputs(".TH HOTPATH.INI 5 \"\" \"hotpath\" \"File Formats\"\n", f);
	fputs(".SH NAME\n"
	      "hotpath.ini \\- configuration file of the hotpath agent\n"
	      ".SH SYNOPSIS\n"
	      "\\fI/etc/hotpath/hotpath.ini\\fR\n"
	      ".SH DESCRIPTION\n"
	      "\\fBhotpathd\\fR(8) reads one INI file, named with \\fB\\-c\\fR\n"
	      "(the service uses \\fI/etc/hotpath/hotpath.ini\\fR).\n"
	      "Every key has a default, so a file that sets only a few keys is valid\n"
	      "and an empty file gives the embedded default: the L1 memory cache only,\n"
	      "no Redis, no PostgreSQL, no upstreams, kernel observation on.\n"
	      "\\fBhotpathd \\-t \\-c\\fR \\fIFILE\\fR checks a file and names every error\n"
	      "with its line; \\fBhotpathd \\-\\-config\\-ini\\fR prints every key at its\n"
	      "default with its documentation.\n"
	      ".SS Syntax\n"
	      "\\fB[section]\\fR starts a section and \\fBkey = value\\fR sets a key in it.\n"
	      "A section, and a key within a section, may appear only once.\n"
	      "Lines starting with \\fB#\\fR or \\fB;\\fR are comments, and so is the rest\n"
	      "of a value from a \\fB#\\fR or \\fB;\\fR that follows a blank.\n"
	      "Double quotes keep a value verbatim; inside them \\fB\\e\"\\fR is a quote\n"
	      "and \\fB\\e\\e\\fR a backslash.\n"
	      "Booleans are \\fByes\\fR/\\fBno\\fR, \\fBtrue\\fR/\\fBfalse\\fR, \\fBon\\fR/\\fBoff\\fR\n"
	      "or \\fB1\\fR/\\fB0\\fR.\n"
	      "Lines are at most 4096 bytes and the file at most 1 MiB.\n"
	      ".SS Units\n"
	      "Sizes are bytes with an optional suffix \\fBb\\fR, \\fBkb\\fR, \\fBmb\\fR,\n"
	      "\\fBgb\\fR or \\fBtb\\fR (powers of 1024). Durations take \\fBms\\fR, \\fBs\\fR,\n"
	      "\\fBm\\fR, \\fBh\\fR or \\fBd\\fR, and \\fIa plain number is milliseconds\\fR.\n"
	      "Addresses are \\fIHOST\\fB:\\fIPORT\\fR, IPv6 in brackets\n"
	      "(\\fB[::1]:6479\\fR); lists are comma-separated.\n"
	      "Values out of range are errors, never clamped.\n"
	      ".SS Reloading\n"
	      "On SIGHUP (\\fBsystemctl reload hotpathd\\fR) the file is read again.\n"
	      "A file with any error is refused and the running configuration stays.\n"
	      "Keys marked \\(lqreloaded on SIGHUP\\(rq below take effect at once; changes\n"
	      "to the others are logged and wait for a restart.\n", f);

	fputs(".SH SECTIONS\n", f);
	for (size_t s = 0; s < N_SECTIONS; s++) {
		fprintf(f, ".SS [%s]\n", cfg_sections[s].name);
		cfg_man_text(f, cfg_sections[s].doc, true);
		fputc('\n', f);
		cfg_man_keys(f, cfg_keys, N_KEYS, cfg_sections[s].name);
	}

	fputs(".SH NAMED SECTIONS\n"
	      "A named section is written \\fB[\\fIKIND\\fB.\\fINAME\\fB]\\fR, where\n"
	      "\\fINAME\\fR is 1 to 63 letters, digits, \\fB_\\fR and \\fB\\-\\fR.\n"
	      "Each \\fINAME\\fR may appear once per kind.\n", f);
	for (size_t ki = 0; ki < N_KINDS; ki++) {
		const struct cfg_kind *kd = &cfg_kinds[ki];

		fprintf(f, ".SS [%s.NAME]\n", kd->name);
		cfg_man_text(f, kd->doc, true);
		fprintf(f, " Up to %u sections.\n", kd->max);
		cfg_man_keys(f, kd->keys, kd->nkeys, NULL);
		fputs(".PP\nExample:\n.PP\n.RS 4\n.nf\n", f);
		fprintf(f, "[%s.%s]\n", kd->name, kd->example_name);
		for (size_t j = 0; j < kd->nkeys; j++) {
			if (!kd->keys[j].example[0])
				continue;
			cfg_man_literal(f, kd->keys[j].key);
			fputs(" = ", f);
			cfg_man_literal(f, kd->keys[j].example);
			fputc('\n', f);
		}
		fputs(".fi\n.RE\n", f);
	}

	fputs(".SH CHECKS ACROSS KEYS\n"
	      "After the whole file is read these rules are checked; a broken one is\n"
	      "reported at the line of the key that was set last.\n", f);
	for (size_t i = 0; i < HP_ARRAY_SIZE(cfg_checks); i++) {
		fputs(".IP \\(bu 2\n", f);
		cfg_man_text(f, cfg_checks[i].doc, true);
		fputc('\n', f);
	}
	fputs(".SH FILES\n"
	      ".TP\n\\fI/etc/hotpath/hotpath.ini\\fR\n"
	      "The configuration the packaged service reads.\n"
	      ".TP\n\\fI/usr/share/doc/hotpath/configuration.md\\fR\n"
	      "The same reference in Markdown.\n"
	      ".SH SEE ALSO\n"
	      "\\fBhotpathd\\fR(8), \\fBhotpathctl\\fR(1)\n", f);
}

void config_apply_reloadable(struct hp_config *running, const struct hp_config *nw)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct cfg_key *k = &cfg_keys[i];

		if (k->flags & CF_RELOAD)
			memcpy((char *)running + k->off, (const char *)nw + k->off, k->width);
	}
	for (size_t ki = 0; ki < N_KINDS; ki++) {
		const struct cfg_kind *kd = &cfg_kinds[ki];

		if (!kd->reloadable)
			continue;
		memcpy((char *)running + kd->arr_off, (const char *)nw + kd->arr_off,
		       (size_t)kd->max * kd->elem_size);
		*cfg_kind_count(kd, running) = cfg_kind_count_c(kd, nw);
	}
}
