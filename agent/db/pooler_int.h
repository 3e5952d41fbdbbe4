/*
 * pooler_int.h - what pooler.c (event loop, protocol) and pool.c (pools,
 * wait queue, sizing, statistics) share privately. Not used outside
 * agent/db/.
 *
 * Threading: every field below is owned by the pooler's event-loop
 * thread, except the statistics counters (written with relaxed atomics by
 * the loop, read by the API threads), the decision rings (under
 * pooler.stats_mu) and the reload hand-off (under pooler.reload_mu).
 * Pools are created by the loop and never freed before pooler_free, and
 * npools is published with release order, so the API can walk them.
 */
#ifndef HOTPATH_POOLER_INT_H
#define HOTPATH_POOLER_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include "hotpath/buf.h"
#include "hotpath/config.h"
#include "hotpath/hist.h"
#include "hotpath/pgauth.h"
#include "hotpath/pgstmt.h"
#include "hotpath/pooler.h"
#include "hotpath/qcache.h"

#define POOLER_MAX_POOLS 256
#define POOLER_PARAM_LEN 64
#define POOLER_WELCOME_MAX 48           /* ParameterStatus kept per pool */
#define POOLER_OUT_HIGH (256 * 1024)    /* stop reading the other side above */
#define POOLER_QUEUE_CAP 1024           /* owed responses per server */
#define POOLER_Q_ROOM 4                 /* entries one client message may push */

#define ST_ADD(x, n) __atomic_fetch_add(&(x), (n), __ATOMIC_RELAXED)
#define ST_SUB(x, n) __atomic_fetch_sub(&(x), (n), __ATOMIC_RELAXED)
#define ST_INC(x) ST_ADD(x, 1)
#define ST_DEC(x) ST_SUB(x, 1)
#define ST_GET(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

/* Session parameters the pooler keeps in step between a client and the
 * server connection it lands on (PgBouncer's "varcache"). */
enum {
	PV_CLIENT_ENCODING = 0,
	PV_DATESTYLE,
	PV_TIMEZONE,
	PV_INTERVALSTYLE,
	PV_STD_STRINGS,
	PV_APPLICATION_NAME,
	PV_EXTRA_FLOAT_DIGITS,          /* not reported by the server */
	PV_COUNT
};
extern const char *const pooler_param_names[PV_COUNT];
int pooler_param_index(const char *name);   /* -1 if not tracked */

enum pio_kind { PIO_LISTEN = 1, PIO_CLIENT, PIO_SERVER, PIO_CANCEL, PIO_TIMER, PIO_WAKE };

struct pio {
	int fd;
	uint8_t kind;
	uint32_t events;                /* registered now */
};

enum client_state {
	CL_STARTUP = 0,
	CL_AUTH_MD5,
	CL_AUTH_SASL_INIT,
	CL_AUTH_SASL_FINAL,
	CL_WELCOME_WAIT,                /* logged in, waiting for the pool's first server */
	CL_READY,
	CL_CLOSING,                     /* flush out, then close */
};

struct server;
struct pool;

struct client {
	struct pio io;
	struct pooler *p;
	enum client_state state;
	struct pool *pool;
	struct server *server;
	struct buf in, out;
	uint32_t pid, key;              /* BackendKeyData we gave it */
	unsigned slot;
	char user[PGA_NAME_MAX];
	int db;                         /* index in pooler.dbs */
	char params[PV_COUNT][POOLER_PARAM_LEN];   /* what the client should see */
	uint8_t pset;                   /* bit i: params[i] is the client's (maybe empty) value */
	struct pgs_map stmts;
	size_t stream_left;             /* bytes of a message passed through */
	uint8_t salt[4];
	char md5_stored[36];            /* md5 login: the user's stored hash */
	struct pga_scram_server *scram;
	struct client *dead;            /* freed after the event batch */
	bool waiting;                   /* in pool's wait queue */
	bool in_welcome;                /* in pool's welcome list */
	uint64_t wait_since_us;
	struct client *wprev, *wnext;   /* wait queue / welcome list */
	uint64_t connect_ms;
	uint64_t xact_start_us;         /* linked at */
	/* query statistics (qtrack.c) */
	char *qt_text;                  /* text of the last unnamed Parse */
	size_t qt_len;
	struct qreq *qt_open;           /* Bind seen, waiting for its Sync */
	struct qcap *qc_next;           /* result cache missed: capture the next request */
	struct qwait *qc_wait;          /* result cache lookup of the head request at L2 */
	bool qc_parked;                 /* ... not answered yet: the client waits */
	bool ext_open;                  /* extended-protocol messages sent since the last Sync */
	uint8_t *qc_unnamed;            /* Parse (rest) of an unnamed statement answered */
	size_t qc_unnamed_len, qc_unnamed_cap;  /* from the cache, not yet on the server */
};

enum server_state {
	SV_CONNECTING = 0,
	SV_LOGIN,
	SV_IDLE,
	SV_ACTIVE,
	SV_RESET,                       /* running the reset query */
	SV_CHECK,                       /* health check of an idle connection */
};

struct server {
	struct pio io;
	enum server_state state;
	struct pool *pool;
	struct client *client;
	struct buf in, out;
	uint32_t be_pid, be_key;
	struct pgs_set stmts;
	struct pgs_queue q;
	char params[PV_COUNT][POOLER_PARAM_LEN];
	char status;                    /* last ReadyForQuery: 'I', 'T', 'E' */
	bool dirty;                     /* used by a client since the last reset */
	bool must_close;
	bool closed;
	bool stream_drop;               /* the streamed message is swallowed */
	uint64_t created_ms, last_used_ms, state_since_ms;
	size_t stream_left;
	struct pga_scram_client *scram;
	struct server *prev, *next;     /* idle list or pool's other list */
	struct server *dead;
	struct qreq *qt_head, *qt_tail; /* statements owed an answer (qtrack.c) */
	uint64_t qt_zsent, qt_zdone;    /* Queries+Syncs sent, ReadyForQuery seen */
	uint64_t qt_last_us;            /* when the last answer completed */
	struct qcap *qc_cap;            /* answer being captured for the result cache */
	struct qcache_pending qc_pend;  /* tables written in the open transaction */
};

struct pooler_db {
	struct hp_database_conf conf;
	char password[PGA_PASS_MAX];    /* from password or password_file */
	struct sockaddr_storage addr;
	socklen_t addrlen;
};

struct pool {
	struct pooler *p;
	unsigned idx;
	int db;
	char user[PGA_NAME_MAX];
	/* servers */
	struct server *idle;            /* LIFO: most recently used first */
	struct server *others;          /* connecting, login, active, reset, check */
	unsigned n_servers;             /* all of them */
	unsigned n_connecting;          /* connecting + login */
	unsigned limit;                 /* adaptive or default_pool_size */
	uint64_t next_connect_ms;       /* backoff after a failure */
	/* clients */
	struct client *wait_head, *wait_tail;
	struct client *welcome;         /* waiting for the first server's parameters */
	/* welcome: the server's parameters at login */
	bool have_welcome;
	unsigned n_welcome;
	char wname[POOLER_WELCOME_MAX][POOLER_PARAM_LEN];
	char wvalue[POOLER_WELCOME_MAX][POOLER_PARAM_LEN];
	/* the same, serialised once when the welcome is complete: message i
	 * is wmsg[woff[i] .. woff[i + 1]); widx[i] its tracked parameter */
	struct buf wmsg;
	uint16_t woff[POOLER_WELCOME_MAX + 1];
	int8_t widx[POOLER_WELCOME_MAX];
	char defaults[PV_COUNT][POOLER_PARAM_LEN];
	/* adaptive controller state */
	uint64_t win_queries, win_query_us, win_waited, win_wait_us;
	double long_ms;
	/* statistics (atomics; see the header comment) */
	struct {
		uint64_t clients, clients_active, clients_waiting;
		uint64_t servers_active, servers_idle, servers_connecting, servers_other;
		uint64_t transactions, queries, wait_timeouts;
		uint64_t servers_opened, servers_closed, server_login_failures;
		uint64_t stmt_prepares, stmt_reprepares, bytes_in, bytes_out;
		unsigned limit;
		struct hist wait_us, query_us, xact_us;
	} st;
	char last_error[200];           /* under stats_mu */
	unsigned n_dec, dec_head;       /* under stats_mu */
	struct pooler_decision dec[POOLER_DECISIONS];
};

/* Settings the loop reads; replaced as a whole on reload. */
struct pooler_settings {
	int auth_type, pool_mode;
	unsigned default_pool_size, min_pool_size, max_client_conn;
	uint64_t query_wait_timeout_ms, connect_timeout_ms, idle_timeout_ms, lifetime_ms;
	char reset_query[HP_PREFIX_MAX];
	unsigned max_prepared;
	uint64_t max_message;
	bool adaptive;
	unsigned adaptive_min;
	/* query analysis and the result cache (reloadable) */
	size_t qt_max_text;
	char qc_fps[HP_LIST_MAX];
	uint64_t qc_ttl_ms, qc_max_result;
};

struct pooler {
	struct pooler_settings set;
	struct pga_userlist *users;
	unsigned ndbs;
	struct pooler_db dbs[HP_MAX_DATABASES];
	int epfd;
	struct pio listen, timer, wake;
	uint16_t port;
	pthread_t thread;
	bool thread_started;
	bool stopping;                  /* loop thread's view */
	_Atomic bool stop_requested;
	_Atomic uint64_t stop_deadline_ms;
	/* clients by slot (cancel keys) */
	struct client **slots;
	unsigned nslots, free_hint;
	uint32_t gen;
	unsigned nclients;
	/* random bytes for cancel keys and md5 salts, one getrandom per 64
	 * logins instead of two per login; handed-out bytes are wiped */
	uint8_t rnd[256];
	unsigned rnd_left;
	uint64_t clock_us;              /* see pooler_us() */
	unsigned ncancels;
	/* pools */
	struct pool *pools[POOLER_MAX_POOLS];
	_Atomic unsigned npools;
	/* reload hand-off */
	pthread_mutex_t reload_mu;
	bool reload_pending;
	struct pooler_settings new_set;
	struct pga_userlist *new_users;
	struct pooler_db new_dbs[HP_MAX_DATABASES];
	/* statistics */
	pthread_mutex_t stats_mu;
	struct pooler_global_stats g;   /* atomics */
	uint64_t last_second_ms;
	struct client *dead_clients;
	struct client *spare;           /* freed clients kept with their buffers (linked by dead) */
	unsigned nspare;
	struct server *dead_servers;
	struct pcancel *cancels;
	struct qstats *qstats;          /* per-fingerprint statistics, NULL = off */
	struct qcache *qcache;          /* result cache, NULL = off */
	size_t qt_max_text;
};

/* The loop's clock (monotonic): read once when epoll_wait returns, so
 * the events of one batch share it, as PgBouncer's get_cached_time does
 * (a transaction took about ten clock reads). Every time the loop keeps
 * comes from here, so none is compared with a later fresh reading. */
static inline uint64_t pooler_us(const struct pooler *p)
{
	return p->clock_us;
}

static inline uint64_t pooler_ms(const struct pooler *p)
{
	return p->clock_us / 1000;
}

/* ---- pool.c ---- */
struct pool *pool_get(struct pooler *p, int db, const char *user);   /* NULL: too many pools */
/* Lend a server to `c` now (returns it) or queue `c` (returns NULL). */
struct server *pool_acquire(struct pool *pl, struct client *c);
/* A server connection is free again (unlinked, status 'I'): reset it,
 * hand it to a waiter, park it, or close it. */
void pool_server_free(struct pool *pl, struct server *s);
/* A server connection's login completed. */
void pool_server_ready(struct pool *pl, struct server *s);
/* Take `c` out of the wait queue (no-op when not waiting). */
void pool_unqueue(struct pool *pl, struct client *c);
/* Once-a-second and 10-times-a-second upkeep. */
void pool_tick(struct pool *pl, uint64_t now_ms, bool second);
/* Start a server connection if the pool may; 0 or -errno. */
int pool_launch(struct pool *pl);
void pool_set_error(struct pool *pl, const char *msg);
/* Hand idle servers to waiting clients while both exist. */
void pool_give_idle(struct pool *pl);
/* Record a finished query (µs) for statistics and the controller. */
void pool_note_query(struct pool *pl, uint64_t us);
void pool_note_wait(struct pool *pl, uint64_t us);
/* list helpers */
void pool_list_add(struct server **head, struct server *s);
void pool_list_del(struct server **head, struct server *s);

/* ---- pooler.c, used by pool.c ---- */
int pooler_server_connect(struct pool *pl, struct server **out);
void pooler_server_close(struct server *s, const char *why);
void pooler_link(struct client *c, struct server *s);
void pooler_client_fail(struct client *c, const char *sqlstate, const char *msg);
void pooler_client_welcome(struct client *c);
void pooler_server_reset(struct server *s);
/* Park an unlinked, clean server on the pool's idle list. */
void pooler_server_idle(struct server *s);
void pooler_update(struct pio *io);
/* A client just got a server: run what it has buffered. */
void pooler_client_resume(struct client *c);

/* ---- qtrack.c: what each request was, for qstats (no-ops when off) ---- */
struct pgw_parse;
struct pgw_bind;
struct pgs_stmt;
void qtrack_query(struct client *c, struct server *s, char type, const uint8_t *body, size_t n);
void qtrack_parse(struct client *c, const struct pgw_parse *ps);
void qtrack_bind(struct client *c, const struct pgw_bind *b, const struct pgs_stmt *st);
void qtrack_execute(struct client *c, struct server *s);
void qtrack_sync(struct client *c, struct server *s);
/* A CommandComplete, EmptyQueryResponse, PortalSuspended or ErrorResponse
 * forwarded to s's client. */
void qtrack_server(struct server *s, char type, const uint8_t *body, size_t n);
/* ReadyForQuery that completes the oldest client request on s. */
void qtrack_done(struct server *s);
void qtrack_server_clear(struct server *s);
/* Text of the statement a Bind runs (NULL if unknown), for write detection. */
const char *qtrack_bind_text(struct client *c, const struct pgw_bind *b,
			     const struct pgs_stmt *st, size_t *len);
void qtrack_client_clear(struct client *c);

#endif
