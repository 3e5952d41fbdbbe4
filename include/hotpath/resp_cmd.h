/*
 * resp_cmd.h - the RESP command table and executor of the cache front.
 *
 * resp_exec() runs one parsed command against the L1 store and appends the
 * reply to the client's output buffer. It knows nothing about sockets: the
 * network layer (agent/net/server.c) parses, calls resp_exec and writes, so
 * the whole command set can be unit-tested without a socket. Replies and
 * error texts follow redis-server 7 so redis-cli, redis-benchmark and
 * client libraries work unchanged.
 */
#ifndef HOTPATH_RESP_CMD_H
#define HOTPATH_RESP_CMD_H

#include <stdbool.h>
#include <stdint.h>
#include "hotpath/buf.h"
#include "hotpath/hist.h"
#include "hotpath/l1.h"
#include "hotpath/resp.h"

struct resp_client {
	uint64_t id;                /* CLIENT ID */
	char name[64];              /* CLIENT SETNAME */
	char addr[64];              /* "ip:port" for CLIENT INFO/LIST */
	uint64_t created_ms;
	bool quit;                  /* set by QUIT: close after the reply */
};

/* Per-command counters; one array per worker thread, merged for reports. */
struct resp_cmdstat {
	uint64_t calls;
	uint64_t failed;            /* replies that were errors */
	struct hist usec;           /* execution time in microseconds */
};

/*
 * Deferred replies. The network layer may let a command answer later (a
 * cache miss waiting for its loader on another thread) by setting
 * resp_ctx.defer. A command that wants to wait calls park(arg): it gets a
 * ticket, or NULL when it may not park (too many clients parked: it then
 * answers at once, with an error). Having parked, it appends nothing and
 * resp_exec returns RESP_PARKED; the client's later commands wait behind
 * it. Whoever finishes the work calls done(ticket, reply) exactly once,
 * from any thread, with the command's whole RESP reply; the callee takes
 * the buffer's contents (the caller's buf is left empty).
 */
struct resp_defer {
	void *(*park)(void *arg);
	void (*done)(void *ticket, struct buf *reply);
	void *arg;
};

#define RESP_PARKED 1               /* resp_exec: the reply comes later */

struct resp_ctx {
	struct l1 *l1;
	/* NULL: every reply is produced before resp_exec returns */
	const struct resp_defer *defer;
	struct resp_limits lim;
	uint64_t max_key_len;
	uint64_t max_value_size;    /* bytes per value (SET, MSET ...) */
	uint64_t max_ttl_ms;        /* cap for EX/PX/EXPIRE, 0 = none */
	/* resp_command_count() entries, may be NULL. Written only by the thread
	 * that owns this ctx (one per worker); readers merge with relaxed loads. */
	struct resp_cmdstat *stats;
	/* Monotonic µs when the previous command finished (or the batch was
	 * read): a command's time is measured from it, so each command costs
	 * one clock read. 0 = read the clock at the start. */
	uint64_t clock_us;
	/* Appends the server-level INFO sections ("server", "clients",
	 * "stats"...) as "# Name\r\nkey:value\r\n" text; `section` is lowercase
	 * or "all"/"default". May be NULL. */
	void (*info)(struct buf *text, const char *section, void *arg);
	void *info_arg;
	/* Extension hook tried for commands the table does not know (later
	 * tiers add HOTPATH.* commands). Returns 1 if handled. May be NULL. */
	int (*ext)(struct resp_ctx *ctx, struct resp_client *cl,
		   const struct resp_cmd *cmd, struct buf *out);
};

/*
 * Execute one command and append its reply to `out`. Returns 0,
 * RESP_PARKED (only with ctx->defer: the reply will come through
 * defer->done), or -ENOBUFS/-ENOMEM if the reply could not be appended
 * (the caller closes the connection: the output buffer limit was hit).
 * Never fails for a bad command: that is an error reply.
 */
int resp_exec(struct resp_ctx *ctx, struct resp_client *cl, const struct resp_cmd *cmd,
	      struct buf *out) HP_MUST_CHECK;

/* The command table, for stats reporting. */
unsigned resp_command_count(void);
const char *resp_command_name(unsigned i);   /* lowercase, e.g. "get" */

#endif
