/*
 * sock.h - the listening and naming chores every server of the agent shares
 * (RESP front, HTTP proxy, PostgreSQL pooler).
 */
#ifndef HOTPATH_SOCK_H
#define HOTPATH_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hotpath/common.h"

/*
 * Listen on "HOST:PORT" (config syntax, IPv6 in brackets; HOST is a numeric
 * address), non-blocking and close-on-exec, SO_REUSEADDR, and SO_REUSEPORT
 * when `reuseport` (several workers each with their own listener). If *port
 * is non-zero it replaces the address's port (workers joining the port the
 * first listener was given for ":0"); on return *port is the bound port.
 * Returns the fd, or -EINVAL for a bad address, or -errno.
 */
int sock_listen(const char *hostport, bool reuseport, uint16_t *port) HP_MUST_CHECK;
/* Local port of a bound socket, 0 if unknown. */
uint16_t sock_local_port(int fd);
/* "ip" or "ip:port" of the peer into out ("?" if unknown). */
void sock_peer_name(int fd, bool with_port, char *out, size_t outlen);

#endif
