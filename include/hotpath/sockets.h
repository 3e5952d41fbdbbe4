/*
 * sockets.h - the host's listening TCP sockets and the processes behind
 * them, read from /proc (net/tcp, net/tcp6, PID/fd).
 *
 * Used to turn a service's port into a pid (profiles per service) and to
 * list listening sockets as discovery candidates. Parsing is split from
 * reading so tests and the fuzzer can feed it text.
 */
#ifndef HOTPATH_SOCKETS_H
#define HOTPATH_SOCKETS_H

#include <stddef.h>
#include <stdint.h>
#include "hotpath/common.h"

struct sock_listener {
	uint16_t port;
	uint8_t v6;
	uint8_t addr[16];       /* IPv4 in the first 4 bytes */
	uint64_t inode;
	int pid;                /* 0 if no process of ours can see it */
	char comm[16];
};

/*
 * Parse one line of /proc/net/tcp or tcp6. Returns 1 and fills `out` (pid
 * and comm left empty) for a socket in LISTEN state, 0 for another state
 * or the header line, -EINVAL for a malformed line.
 */
int sockets_parse_line(const char *line, size_t len, struct sock_listener *out) HP_MUST_CHECK;

/*
 * List up to `max` listening sockets with their owning pid (the lowest pid
 * holding the socket's inode, found by scanning /proc/PID/fd). Returns how
 * many, or -errno if /proc/net/tcp cannot be read.
 */
int sockets_listeners(struct sock_listener *out, size_t max) HP_MUST_CHECK;

/* Pid of the process listening on TCP `port`, or -ENOENT. */
int sockets_port_pid(uint16_t port) HP_MUST_CHECK;

#endif
