/*
 * sockets.h - the host's listening TCP sockets and the processes behind
 * them: listeners from the kernel's sock_diag netlink interface (or, when
 * that is unavailable, /proc/net/tcp{,6}), owners from /proc/PID/fd behind
 * a small cache.
 *
 * Used to turn a service's port into a pid (profiles per service) and to
 * list listening sockets as discovery candidates. Parsing is split from
 * reading so tests and the fuzzers can feed it bytes.
 */
#ifndef HOTPATH_SOCKETS_H
#define HOTPATH_SOCKETS_H

#include <stddef.h>
#include <stdint.h>
#include "hotpath/common.h"

struct sock_listener {
	uint16_t port;
	uint8_t v6;
	uint8_t addr[16];       /* network order; IPv4 in the first 4 bytes */
	uint64_t inode;
	int pid;                /* 0 if no process of ours can see it */
	char comm[16];
};

/* At most this many listeners of one call get an owner (pid, comm); the
 * rest are listed with pid 0. No caller asks for more. */
#define SOCKETS_OWNERS_MAX 4096

/* sockets_list() flags, in and out. */
#define SOCKETS_FROM_PROC (1u << 0) /* in: skip sock_diag; out: /proc/net/tcp{,6} were read */
#define SOCKETS_NO_CACHE  (1u << 1) /* in: scan every /proc/PID/fd, leave the cache alone */
#define SOCKETS_SCANNED   (1u << 2) /* out: /proc/PID/fd were scanned */

/*
 * Parse one line of /proc/net/tcp or tcp6. Returns 1 and fills `out` (pid
 * and comm left empty) for a socket in LISTEN state, 0 for another state
 * or the header line, -EINVAL for a malformed line.
 */
int sockets_parse_line(const char *line, size_t len, struct sock_listener *out) HP_MUST_CHECK;

/*
 * Append the LISTEN sockets of one /proc/net/tcp-format file (`path`:
 * /proc/net/tcp or tcp6) to out[*n] while *n < max, pid and comm left
 * empty; malformed lines are skipped. 0, or -errno if it cannot be opened.
 * The fallback of sockets_list() when sock_diag fails.
 */
int sockets_read_table(const char *path, struct sock_listener *out, size_t max,
		       size_t *n);

/*
 * Parse `len` bytes of one read of a sock_diag dump (netlink messages as
 * the kernel sends them, any alignment) and append each TCP socket in
 * LISTEN state to out[*n], pid and comm left empty, while *n < max; those
 * past `max` are walked and dropped. Other states are skipped.
 *
 * Returns 1 if the buffer ends the dump (NLMSG_DONE), 0 if more is to come,
 * or, having appended what preceded the fault:
 *   -EBADMSG  a header or a message runs past `len` or is shorter than its
 *             type needs (nlmsg_len, struct inet_diag_msg, struct nlmsgerr);
 *   -EPROTO   a message type other than SOCK_DIAG_BY_FAMILY, NLMSG_DONE,
 *             NLMSG_NOOP or a failing NLMSG_ERROR, or a family other than
 *             AF_INET/AF_INET6;
 *   the kernel's error (-errno, -4095..-1) from NLMSG_ERROR or from the
 *             NLMSG_DONE of a dump that failed.
 * Never reads outside buf[0..len).
 */
int sockets_parse_diag(const void *buf, size_t len, struct sock_listener *out, size_t max,
		       size_t *n);

/*
 * List up to `max` listening TCP sockets (IPv4, then IPv6) with their
 * owning pid and comm (the lowest pid holding the socket's inode). Returns
 * how many, or -errno if neither sock_diag nor /proc/net/tcp can be read.
 * Logs nothing: sock_diag failing (no inet_diag, a seccomp filter) falls
 * back to /proc quietly, and `*how` (if not NULL) says what was done.
 *
 * Owners come from a cache shared by all callers (thread-safe), checked
 * with one readlink per listener; /proc/PID/fd of every process is scanned
 * only when a listener is new, its cached owner no longer holds it, or it
 * had no visible owner a minute ago. `flags` (SOCKETS_FROM_PROC,
 * SOCKETS_NO_CACHE) are for tests and benchmarks.
 */
int sockets_list(struct sock_listener *out, size_t max, unsigned flags,
		 unsigned *how) HP_MUST_CHECK;

/* sockets_list(out, max, 0, NULL). */
int sockets_listeners(struct sock_listener *out, size_t max) HP_MUST_CHECK;

/* Pid of the process listening on TCP `port`, or -ENOENT. */
int sockets_port_pid(uint16_t port) HP_MUST_CHECK;

#endif
