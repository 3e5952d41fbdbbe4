/*
 * config.h - hotpath's configuration: one declarative table drives it all.
 *
 * Every key lives in a single table in agent/core/config.c (section, key,
 * type, offset of its target in struct hp_config, default, reloadable flag,
 * documentation), in the spirit of pgbouncer's bouncer_params[] and redis's
 * standardConfig. The same table drives: parsing of the INI file, validation
 * with line-numbered errors, `hotpathd -t`, the API's view of the config
 * (config_visit) and docs/configuration.md (config_write_markdown, run by
 * `hotpathd --config-doc`). Named sections ([partition.NAME],
 * [upstream.NAME], [database.NAME], [service.NAME]) are tables of their own.
 */
#ifndef HOTPATH_CONFIG_H
#define HOTPATH_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "hotpath/common.h"

#define HP_ADDR_MAX 128
#define HP_PATH_MAX 512
#define HP_NAME_MAX 64
#define HP_PREFIX_MAX 128
#define HP_LIST_MAX 1024
#define HP_MAX_PARTITIONS 64
#define HP_MAX_UPSTREAMS 16
#define HP_MAX_DATABASES 16
#define HP_MAX_SERVICES 64
#define HP_MAX_STRATEGIES 32
#define HP_MAX_LOADERS 16
#define HP_SQL_MAX 1024

enum hp_eviction { HP_EVICT_S3FIFO = 0, HP_EVICT_LRU = 1 };
enum hp_send_hook { HP_SEND_HOOK_AUTO = 0, HP_SEND_HOOK_SOCKET = 1 };
enum hp_priority { HP_PRIO_LOW = 0, HP_PRIO_NORMAL = 1, HP_PRIO_HIGH = 2 };
enum hp_balance { HP_BAL_ROUND_ROBIN = 0, HP_BAL_LEAST_REQUEST, HP_BAL_EWMA, HP_BAL_HASH };
enum hp_auth_type { HP_AUTH_SCRAM = 0, HP_AUTH_MD5, HP_AUTH_TRUST };
enum hp_pool_mode { HP_POOL_SESSION = 0, HP_POOL_TRANSACTION };
enum hp_protocol { HP_PROTO_AUTO = 0, HP_PROTO_HTTP, HP_PROTO_RESP, HP_PROTO_POSTGRES };
enum hp_write_mode { HP_WRITE_NONE = 0, HP_WRITE_THROUGH, HP_WRITE_BEHIND };

struct hp_partition_conf {          /* [partition.NAME] */
	char name[HP_NAME_MAX];
	char prefix[HP_PREFIX_MAX];     /* keys starting with this belong here */
	uint64_t max_memory;            /* bytes, 0 = only the global limit */
	uint64_t default_ttl_ms;        /* applied to SETs without a TTL, 0 = none */
	int priority;                   /* enum hp_priority */
};

struct hp_upstream_conf {           /* [upstream.NAME] */
	char name[HP_NAME_MAX];
	char servers[HP_LIST_MAX];
	int balance;                    /* enum hp_balance */
	char weights[256];              /* "5,1,1": one per server, "" = all 1 */
	char hash_key[HP_NAME_MAX];     /* balance=hash: path, header:NAME, cookie:NAME */
	char sticky_cookie[HP_NAME_MAX];
	char health_path[HP_PATH_MAX];  /* "" = no active checks */
	uint64_t health_interval_ms;
	uint32_t health_rise, health_fall;
	uint64_t slow_start_ms;
	uint32_t eject_consecutive;
	uint64_t eject_time_ms;
	uint32_t eject_max_pct, panic_pct;
	uint32_t breaker_window, breaker_failure_pct, breaker_slow_pct, breaker_probes;
	uint32_t breaker_window_type, breaker_min_calls;   /* HP_BREAKER_COUNT/TIME */
	uint64_t breaker_slow_call_ms, breaker_open_ms;
};

struct hp_database_conf {           /* [database.NAME] */
	char name[HP_NAME_MAX];
	char host[HP_ADDR_MAX];
	uint32_t port;
	char dbname[HP_NAME_MAX];
	char user[HP_NAME_MAX];
	char password[HP_NAME_MAX];
	char password_file[HP_PATH_MAX];
};

struct hp_service_conf {            /* [service.NAME] */
	char name[HP_NAME_MAX];
	uint32_t port;
	int protocol;                   /* enum hp_protocol */
	uint32_t pid;                   /* only this tgid, 0 = any */
	char cgroup[HP_PATH_MAX];       /* only this cgroup v2 subtree, "" = any */
};

struct hp_strategy_conf {           /* [strategy.NAME] */
	char name[HP_NAME_MAX];
	char pattern[HP_PREFIX_MAX];    /* glob; its * and ? are the captures */
	char loader[HP_NAME_MAX];       /* [loader.NAME] for misses, "" = cache-aside */
	int write;                      /* enum hp_write_mode */
	uint64_t ttl_ms;                /* freshness of loaded/written values */
	uint32_t refresh_ahead_pct;     /* refresh when this % of ttl passed, 0 = off */
	uint64_t swr_ms;                /* stale-while-revalidate window */
	uint64_t sie_ms;                /* stale-if-error window */
	bool single_flight;
	uint32_t batch_max;             /* write-behind: writes per transaction */
	uint32_t queue_max;             /* write-behind: pending writes held */
	uint32_t max_attempts;          /* write-behind: before dead-lettering */
};

struct hp_loader_conf {             /* [loader.NAME] */
	char name[HP_NAME_MAX];
	char dsn[HP_LIST_MAX];          /* libpq connection string */
	char query[HP_SQL_MAX];         /* read: captures are $1..$n */
	char write_query[HP_SQL_MAX];   /* captures, then the value as $n+1 */
	char delete_query[HP_SQL_MAX];  /* captures */
	char warm_query[HP_SQL_MAX];    /* rows of (key, value) */
	char url[HP_LIST_MAX];          /* HTTP origin, {1}.. = captures */
	uint32_t pool_size;
	uint64_t timeout_ms;
	uint64_t max_value_size;
	uint32_t breaker_failure_pct;
	uint64_t breaker_open_ms;
};

struct hp_config {
	/* [core] */
	int log_level;                  /* enum hp_log_level */
	uint32_t workers;               /* 0 = one per CPU */
	uint32_t shutdown_timeout_ms;   /* drain time on SIGTERM */
	/* [resp] */
	char resp_listen[HP_ADDR_MAX];
	uint32_t resp_max_clients;
	uint32_t resp_idle_timeout_s;   /* 0 = never */
	uint32_t resp_max_parked_clients;
	uint64_t resp_max_key_len;
	uint64_t resp_max_value_size;
	uint32_t resp_max_args;
	uint64_t resp_max_query_buffer;
	uint64_t resp_max_output_buffer;
	/* [api] */
	char api_listen[HP_ADDR_MAX];
	char api_tokens_file[HP_PATH_MAX];
	bool api_metrics_auth;          /* /metrics needs a token with metrics:read */
	uint64_t api_max_body;
	uint32_t api_max_connections;
	/* [cache] */
	uint64_t l1_max_memory;
	int eviction;                   /* enum hp_eviction */
	uint32_t l1_shards;
	uint32_t active_expire_hz;
	bool memory_pressure;           /* shrink under PSI / cgroup pressure */
	uint64_t max_ttl_ms;            /* 0 = no cap */
	/* [l0] */
	bool l0_enabled;
	bool l0_remote;                 /* answer remote clients through the relay */
	uint32_t l0_max_keys;
	uint64_t l0_max_value_size;
	uint32_t l0_min_hits;
	/* [bpf] */
	bool bpf_enabled;
	char bpf_pin_path[HP_PATH_MAX];
	uint32_t observe_events_per_sec; /* request events per CPU per second */
	uint64_t observe_slow_threshold_ms;
	bool observe_local_callers;     /* also time local callers of [service] ports */
	bool observe_discover;          /* watch every listening socket, not only declared ones */
	int observe_send_hook;          /* enum hp_send_hook */
	int observe_recv_hook;          /* enum hp_send_hook: the same two choices */
	uint32_t observe_conn_slots;    /* connection state table, power of two, 0 = none */
	uint32_t profile_hz;            /* CPU profile sampling rate */
	uint32_t profile_max_seconds;   /* longest window an API call may ask */
	/* [redis] */
	char redis_address[HP_ADDR_MAX];
	char redis_cluster[HP_LIST_MAX];
	uint32_t redis_pool_size;       /* connections per Redis node */
	uint32_t redis_queue_max;       /* L2 dispatcher: requests queued + in flight */
	uint64_t redis_connect_timeout_ms;
	uint64_t redis_command_timeout_ms;
	uint64_t redis_l1_ttl_ms;       /* cap on L2 TTLs carried into L1 */
	uint64_t redis_stale_if_error_ms;
	bool redis_tracking;            /* CLIENT TRACKING invalidations */
	char redis_channel[HP_NAME_MAX];/* cross-agent invalidation channel */
	uint32_t redis_breaker_failure_pct;
	uint64_t redis_breaker_open_ms;
	uint64_t redis_slow_call_ms;
	/* [tasks] */
	uint32_t tasks_workers;
	uint32_t tasks_queue_max;
	uint32_t tasks_dead_max;
	uint32_t tasks_max_attempts;
	uint64_t tasks_backoff_base_ms;
	uint64_t tasks_backoff_max_ms;
	/* [http] */
	char http_listen[HP_ADDR_MAX];
	char http_upstream[HP_NAME_MAX];
	uint64_t http_max_request_line, http_max_header_size;
	uint32_t http_max_headers;
	uint64_t http_max_body, http_max_object_size;
	uint32_t http_max_clients;
	uint64_t http_header_timeout_ms, http_keepalive_timeout_ms;
	uint64_t http_connect_timeout_ms, http_upstream_timeout_ms;
	uint64_t http_stale_keep_ms;
	bool http_cache;
	char http_compress[64];
	char http_compress_types[512];
	uint64_t http_compress_min_size, http_compress_max_size;
	uint32_t http_compress_streams;
	uint32_t http_compress_level_gzip, http_compress_level_br, http_compress_level_zstd;
	uint32_t http_max_inflight, http_queue_size, http_retry_after_s;
	uint32_t http_inflight_limit;      /* 0 fixed, 1 gradient */
	uint64_t http_queue_timeout_ms, http_queue_target_ms, http_queue_interval_ms;
	char http_priority_high[HP_LIST_MAX], http_priority_low[HP_LIST_MAX];
	bool http_l2;
	/* [pooler] */
	char pooler_listen[HP_ADDR_MAX];
	int pooler_auth_type;           /* enum hp_auth_type */
	char pooler_auth_file[HP_PATH_MAX];
	int pooler_pool_mode;           /* enum hp_pool_mode */
	uint32_t pooler_default_pool_size;      /* server connections per pool, most */
	uint32_t pooler_min_pool_size;
	uint32_t pooler_max_client_conn;
	uint64_t pooler_query_wait_timeout_ms;
	uint64_t pooler_server_connect_timeout_ms;
	uint64_t pooler_server_idle_timeout_ms;
	uint64_t pooler_server_lifetime_ms;
	char pooler_server_reset_query[HP_PREFIX_MAX];
	uint32_t pooler_max_prepared_statements;
	uint64_t pooler_max_message_size;
	bool pooler_adaptive;
	uint32_t pooler_adaptive_min_pool_size;
	/* [query_analysis] */
	bool qa_stats;
	uint32_t qa_max_fingerprints;
	uint64_t qa_max_query_length;
	bool qa_advisor;
	uint64_t qa_interval_ms;
	uint64_t qa_slow_ms;
	uint32_t qa_top_n;
	bool qa_explain_analyze;
	uint64_t qa_statement_timeout_ms;
	bool qa_create_extension;
	uint32_t qa_min_improvement_pct;
	/* [query_cache] */
	char qc_fingerprints[HP_LIST_MAX];
	uint64_t qc_ttl_ms;
	uint64_t qc_max_result_size;

	/* [warm] */
	char warm_snapshot_file[HP_PATH_MAX];   /* "" = no warm restart */
	uint32_t warm_snapshot_keys;
	uint64_t warm_snapshot_max_bytes;
	bool warm_restore;

	/* named sections */
	unsigned n_partitions;
	struct hp_partition_conf partitions[HP_MAX_PARTITIONS];
	unsigned n_upstreams;
	struct hp_upstream_conf upstreams[HP_MAX_UPSTREAMS];
	unsigned n_databases;
	struct hp_database_conf databases[HP_MAX_DATABASES];
	unsigned n_services;
	struct hp_service_conf services[HP_MAX_SERVICES];
	unsigned n_strategies;
	struct hp_strategy_conf strategies[HP_MAX_STRATEGIES];
	unsigned n_loaders;
	struct hp_loader_conf loaders[HP_MAX_LOADERS];

	char source[HP_PATH_MAX];       /* file it was read from, "" = defaults */
};

/* Fill `c` with every default from the table. */
void config_defaults(struct hp_config *c);

/*
 * Parse INI text (`name` is used in messages). On success returns 0 and `c`
 * holds defaults overlaid with the file. On failure returns -EINVAL and
 * writes one message per problem, "name:LINE: message", to `err` (bounded to
 * errlen, NUL-terminated); `c` is then unspecified. Input is bounded: lines
 * longer than 4096 bytes and files over 1 MiB are errors.
 */
int config_parse_string(struct hp_config *c, const char *text, size_t len,
			const char *name, char *err, size_t errlen) HP_MUST_CHECK;
/* Read and parse a file; -errno if it can't be read, else as above. */
int config_load_file(struct hp_config *c, const char *path, char *err,
		     size_t errlen) HP_MUST_CHECK;

/* Parse "256mb", "1gb", "512k", "100" (bytes). 0 or -EINVAL/-ERANGE. */
int config_parse_size(const char *s, uint64_t *out) HP_MUST_CHECK;
/* Parse "30s", "500ms", "5m", "1h", "2d", "100" (ms). 0 or -EINVAL/-ERANGE. */
int config_parse_duration_ms(const char *s, uint64_t *out) HP_MUST_CHECK;
/* Split "HOST:PORT" (IPv6 as "[::1]:6479"). 0 or -EINVAL. */
int config_parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port) HP_MUST_CHECK;

/* True if key `section.key` may change on SIGHUP without a restart. */
bool config_key_reloadable(const char *section, const char *key);
/*
 * Compare two configs: for each differing key that is not reloadable, write
 * "section.key" lines into `out` and return how many. Used by SIGHUP to warn
 * that those changes wait for a restart.
 */
int config_diff_restart(const struct hp_config *old, const struct hp_config *nw,
			char *out, size_t outlen);

/*
 * SIGHUP: copy into `running` every key (and every named-section kind) the
 * table marks reloadable, taking it from `nw`; the others keep their
 * running values until a restart. Driven by the same table as the docs.
 */
void config_apply_reloadable(struct hp_config *running, const struct hp_config *nw);

/* Write the whole effective config as INI (for -t -v) / markdown docs. */
void config_write_ini(const struct hp_config *c, FILE *f);
void config_write_markdown(FILE *f);
/* hotpath.ini(5) in roff man(7) macros, from the same table (no date in
 * it: the text changes only when the table does). */
void config_write_man(FILE *f);

/*
 * Visit every scalar key of the table with its current value rendered as
 * text (sizes and durations in the same units the file uses). Named
 * sections are visited as "partition.NAME" etc. Used by the API's config
 * view and by config_write_ini.
 */
typedef void (*config_visit_fn)(const char *section, const char *key,
				const char *value, bool reloadable, void *arg);
void config_visit(const struct hp_config *c, config_visit_fn fn, void *arg);

/* Enum names for output ("s3fifo", "lru", ...). */
const char *config_eviction_name(int e);
const char *config_priority_name(int p);

#endif
