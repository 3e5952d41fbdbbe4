/*
 * pooler.h - the PostgreSQL connection pooler on pooler.listen (5479).
 *
 * Clients connect with database NAME of a [database.NAME] section and
 * authenticate against pooler.auth_file; the pooler keeps pools of
 * server connections per (database, user) and lends them out per
 * transaction or per session (pooler.pool_mode). One event-loop thread
 * of its own serves every connection; the API reads statistics through
 * pooler_stats() and pooler_metrics_render(), which are thread-safe.
 */
#ifndef HOTPATH_POOLER_H
#define HOTPATH_POOLER_H

#include <stdbool.h>
#include <stdint.h>
#include "hotpath/buf.h"
#include "hotpath/common.h"
#include "hotpath/config.h"
#include "hotpath/hist.h"

struct pooler;

#define POOLER_DECISIONS 16             /* adaptive decisions kept per pool */

/* One decision of the adaptive pool-size controller. */
struct pooler_decision {
	uint64_t wall_ms;
	unsigned from, to;              /* server connection limit */
	double short_ms, long_ms;       /* recent and baseline mean query time */
	double wait_ms;                 /* mean wait of clients in the window */
	unsigned waited;                /* clients that had to wait */
	char reason[96];
};

struct pooler_pool_stats {
	char database[64], user[64];
	int mode;                       /* enum hp_pool_mode */
	unsigned limit, min_size, max_size;   /* servers: current limit and bounds */
	bool adaptive;
	uint64_t clients, clients_active, clients_waiting;
	uint64_t servers_active, servers_idle, servers_connecting, servers_other;
	uint64_t transactions, queries, wait_timeouts;
	uint64_t servers_opened, servers_closed, server_login_failures;
	uint64_t stmt_prepares, stmt_reprepares;   /* Parse forwarded / re-sent */
	uint64_t bytes_in, bytes_out;   /* client->server, server->client */
	struct hist wait_us, query_us, xact_us;
	char last_server_error[200];
	unsigned n_decisions;           /* newest first */
	struct pooler_decision decisions[POOLER_DECISIONS];
};

struct pooler_global_stats {
	uint64_t clients, accepted, rejected_max_clients, auth_failures;
	uint64_t cancels_forwarded, cancels_ignored, ssl_refused;
	uint16_t port;
};

/*
 * Bind pooler.listen and start the event-loop thread. Needs at least one
 * [database.NAME]. Returns NULL (reason logged) when the listener, the
 * auth_file or a password_file can't be used.
 */
struct pooler *pooler_start(const struct hp_config *cfg);
/* Apply reloadable [pooler] keys and re-read auth_file and password
 * files; a file that fails keeps the old one (logged). */
void pooler_reload(struct pooler *p, const struct hp_config *cfg);
/* Stop accepting; let transactions in flight finish for up to timeout_ms;
 * close everything and join the thread. NULL is a no-op. */
void pooler_stop(struct pooler *p, uint64_t timeout_ms);
void pooler_free(struct pooler *p);
uint16_t pooler_port(const struct pooler *p);

/* The per-fingerprint statistics of the queries run through the pooler
 * (qstats.h), NULL when query_analysis.stats is off or p is NULL. */
struct qstats *pooler_qstats(struct pooler *p);
/* Counters of the result cache (query_cache.*); zeros when off. */
struct qcache_stats;
void pooler_qcache_stats(struct pooler *p, struct qcache_stats *out);
/* Copy the settings and password of [database.`db`] (for the advisor's
 * own connection). 0 or -ENOENT. */
int pooler_db_login(struct pooler *p, const char *db, struct hp_database_conf *conf,
		    char *password, size_t pwlen) HP_MUST_CHECK;
/* Names of the configured databases (at most max); returns how many. */
unsigned pooler_db_names(struct pooler *p, char (*names)[64], unsigned max);

/*
 * Snapshot of every pool: *out is malloc'd (caller frees), *n entries.
 * 0 or -ENOMEM. `g` (optional) gets the pooler-wide counters.
 */
int pooler_stats(struct pooler *p, struct pooler_pool_stats **out, unsigned *n,
		 struct pooler_global_stats *g) HP_MUST_CHECK;
/* Prometheus text for the pools (appended). 0 or -ENOBUFS/-ENOMEM. */
int pooler_metrics_render(struct pooler *p, struct buf *b) HP_MUST_CHECK;

#endif
