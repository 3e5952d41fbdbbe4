/*
 * daemon.h - the running agent as other modules see it.
 *
 * main.c owns one struct hp_daemon: the current config and every started
 * subsystem. Modules that report on the others (the REST API, /metrics, the
 * time series) receive a pointer to it and only read through the accessors
 * of each subsystem. A subsystem pointer is NULL when it is not running.
 * The config is replaced on SIGHUP under cfg_lock (readers take it shared).
 */
#ifndef HOTPATH_DAEMON_H
#define HOTPATH_DAEMON_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "hotpath/config.h"

struct l1;
struct resp_server;
struct bpf_accept;
struct timeseries;
struct profiler;
struct pooler;
struct tier;
struct observe;
struct l2;
struct tasks;
struct l0;
struct proxy;
struct pgadvise;

/* A kernel feature probed at start: name, whether it works, why not. */
struct hp_feature {
	const char *name;
	bool available;
	char reason[160];
};

#define HP_MAX_FEATURES 16

struct hp_daemon {
	pthread_rwlock_t cfg_lock;
	struct hp_config *cfg;          /* current config; swap under cfg_lock */
	struct l1 *l1;
	struct l0 *l0;                  /* kernel tier, NULL without BPF/sockmap */
	struct resp_server *resp;
	struct proxy *http;             /* HTTP caching proxy, NULL when off */
	struct bpf_accept *bpf_accept;  /* NULL without BPF */
	struct timeseries *ts;          /* per-second history of counters */
	struct profiler *profiler;      /* CPU profiler, NULL without BPF/perf */
	struct pooler *pooler;          /* PostgreSQL pooler, NULL without [database.*] */
	struct pgadvise *advisor;       /* query advisor over the pooler's statistics, or NULL */
	struct tasks *tasks;            /* background task processor */
	struct l2 *l2;                  /* Redis L2, NULL when not configured */
	struct observe *observe;        /* kernel request/query observation, NULL without BPF */
	struct tier *tier;              /* L1+L2 tiers for the RESP front */
	uint64_t start_wall_ms;
	uint64_t start_mono_ms;
	uint64_t reloads, reload_failures;
	unsigned n_features;
	struct hp_feature features[HP_MAX_FEATURES];
	const char *version;
};

#endif
