/*
 * sockloop - the cost of one watched request/response exchange over TCP on
 * loopback, with nothing else in it: one thread, a connected pair, per
 * round the client writes a small HTTP request, the server reads it and
 * writes a small response, the client reads it (four socket transfers,
 * as nginx + wrk make per request). bench/overhead.sh runs it under each
 * arm (no program, empty hooks, the agent watching PORT as an HTTP
 * service) to price a hook per transfer more finely than a whole server
 * under load can: the minimum over BATCHES batches of ROUNDS rounds, in
 * nanoseconds per round, is steady to a few ns on a shared machine.
 *
 *   build/sockloop PORT [ROUNDS [BATCHES]]     prints "ns_per_round N"
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char req[] = "GET /items/42 HTTP/1.1\r\nHost: x\r\n\r\n";
static const char rsp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Read exactly n bytes; 0 or -1 on failure. */
static int read_all(int fd, char *b, size_t n)
{
	while (n) {
		ssize_t r = read(fd, b, n);

		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	long rounds = argc > 2 ? atol(argv[2]) : 20000, batches = argc > 3 ? atol(argv[3]) : 30;
	int ls, cs, ss, one = 1;
	double best = 1e18;
	char buf[128];

	if (argc < 2 || rounds <= 0 || batches <= 0) {
		fprintf(stderr, "usage: sockloop PORT [ROUNDS [BATCHES]]\n");
		return 2;
	}
	sa.sin_port = htons((unsigned short)atoi(argv[1]));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ls = socket(AF_INET, SOCK_STREAM, 0);
	cs = socket(AF_INET, SOCK_STREAM, 0);
	if (ls < 0 || cs < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(ls, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(ls, 1) != 0 ||
	    connect(cs, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror("sockloop: socket");
		return 1;
	}
	ss = accept(ls, NULL, NULL);
	if (ss < 0) {
		perror("sockloop: accept");
		return 1;
	}
	setsockopt(cs, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(ss, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (long b = 0; b < batches; b++) {
		double t0 = now_ns(), dt;

		for (long i = 0; i < rounds; i++) {
			if (write(cs, req, sizeof(req) - 1) != sizeof(req) - 1 ||
			    read_all(ss, buf, sizeof(req) - 1) != 0 ||
			    write(ss, rsp, sizeof(rsp) - 1) != sizeof(rsp) - 1 ||
			    read_all(cs, buf, sizeof(rsp) - 1) != 0) {
				perror("sockloop: transfer");
				return 1;
			}
		}
		dt = (now_ns() - t0) / (double)rounds;
		if (dt < best)
			best = dt;
	}
	printf("ns_per_round %.0f\n", best);
	close(cs);
	close(ss);
	close(ls);
	return 0;
}
