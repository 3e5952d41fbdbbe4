/*
 * sock.c - listening sockets and peer names for every server in the agent.
 *
 * The RESP front, the HTTP proxy and the pooler all bind a config address
 * the same way (numeric host, optional port 0 for tests, SO_REUSEPORT when
 * each worker owns a listener), so they share this instead of three copies.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "hotpath/config.h"
#include "hotpath/sock.h"

#define SOCK_BACKLOG 1024

int sock_listen(const char *hostport, bool reuseport, uint16_t *port)
{
	struct sockaddr_storage ss;
	char host[HP_ADDR_MAX];
	uint16_t p;
	socklen_t sl;
	int fd, one = 1;

	if (config_parse_hostport(hostport, host, sizeof(host), &p) != 0)
		return -EINVAL;
	if (*port)
		p = *port;
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons(p);
		sl = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(p);
		sl = sizeof(struct sockaddr_in6);
	} else {
		return -EINVAL;     /* listen addresses are numeric */
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
	    bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, SOCK_BACKLOG) != 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	*port = sock_local_port(fd);
	return fd;
}

uint16_t sock_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

void sock_peer_name(int fd, bool with_port, char *out, size_t outlen)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char ip[INET6_ADDRSTRLEN] = "?";
	uint16_t port = 0;

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof(ip));
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		}
	}
	if (with_port)
		snprintf(out, outlen, "%s:%u", ip, port);
	else
		snprintf(out, outlen, "%s", ip);
}
