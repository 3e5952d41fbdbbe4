/*
 * server.h - the RESP front's network layer: worker threads, each with its
 * own epoll loop and SO_REUSEPORT listening socket.
 */
#ifndef HOTPATH_SERVER_H
#define HOTPATH_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include "hotpath/common.h"
#include "hotpath/config.h"
#include "hotpath/l1.h"
#include "hotpath/resp_cmd.h"

struct resp_server;

struct resp_server_stats {
	uint64_t connected;         /* clients now */
	uint64_t accepted;          /* total accepted */
	uint64_t rejected;          /* refused: max clients reached */
	uint64_t closed_idle;       /* closed by the idle timeout */
	uint64_t closed_limit;      /* closed: query/output buffer limit */
	uint64_t proto_errors;
	uint64_t commands;
	uint64_t bytes_in, bytes_out;
	uint64_t out_buffer_bytes;  /* bytes waiting in output buffers now */
	uint64_t parked;            /* clients waiting for a load now */
	uint64_t parked_total;      /* clients ever parked */
	uint64_t parked_refused;    /* commands refused: resp.max_parked_clients */
	unsigned workers;
	unsigned n_commands;        /* entries in cmd[] (resp_command_count()) */
	struct resp_cmdstat *cmd;   /* merged per-command stats; caller frees */
};

struct l0;

/* Bind listeners and start the worker threads; `l0` (may be NULL) enrols
 * connections in the kernel tier. NULL on failure (logged). */
struct resp_server *resp_server_start(const struct hp_config *cfg, struct l1 *l1, struct l0 *l0);
/* Apply reloadable settings (limits, idle timeout, max clients). */
void resp_server_reload(struct resp_server *s, const struct hp_config *cfg);
/* Stop accepting, let clients finish for up to timeout_ms, close all. */
void resp_server_stop(struct resp_server *s, uint64_t timeout_ms);
/* Free everything; the server must be stopped. NULL is a no-op. */
void resp_server_free(struct resp_server *s);
/* Merged statistics; out->cmd is malloc'd (caller frees). 0 or -ENOMEM. */
int resp_server_stats(struct resp_server *s, struct resp_server_stats *out) HP_MUST_CHECK;
/* Port actually bound (for :0 in tests). */
uint16_t resp_server_port(const struct resp_server *s);

#endif
