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
 * With "pg" the exchange is pgbench -S's in the PostgreSQL wire protocol:
 * a simple Query for one account whose id (1 to 500000, as at scale 5)
 * changes every round and with it, one time in three, its length; a reply of
 * RowDescription, DataRow, CommandComplete and ReadyForQuery (66 bytes,
 * as PostgreSQL 15 answers it).
 * With "tpcb", the queries are those of pgbench's default transaction in
 * turn (BEGIN, three UPDATEs, the SELECT, an INSERT, END: a connection
 * that goes through a few statements, as an application's does), each
 * with that reply.
 *
 * With a THRASH of N KiB, the server reads through N KiB of its own memory
 * (a byte a cache line) after reading a request and again after its
 * response is read, as a server's own work between two transfers does:
 * the caches no longer hold the hooks' code and data (a round's time then
 * counts the misses of what the hooks touch). In order ("seq", which the
 * prefetcher follows: N large empties the caches) or in a scrambled order
 * of its lines ("rand", N a power of two: a working set that fits in the
 * caches, which the hooks' own lines push out, as they do a server's).
 *
 * Or ("code", x86-64) it runs N KiB of straight-line instructions there,
 * which empties the instruction caches of the hooks' code instead.
 *
 *   build/sockloop PORT [ROUNDS [BATCHES [http|pg|tpcb [THRASH [seq|rand|code]]]]]     prints "ns_per_round N"
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char req[] = "GET /items/42 HTTP/1.1\r\nHost: x\r\n\r\n";
static const char rsp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/* pgbench -S's reply: T (one int4 column "abalance"), D, C "SELECT 1", Z. */
static const char pg_rsp[] =
	"T\0\0\0\x21\0\x01" "abalance\0" "\0\0\x40\x06\0\x03\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0"
	"D\0\0\0\x0b\0\x01\0\0\0\x01" "0"
	"C\0\0\0\x0dSELECT 1\0"
	"Z\0\0\0\x05I";

/* Round i's Query message into q; returns its length. pgbench -S's
 * select, or (tpcb) the statements of pgbench's default transaction in
 * turn, each with its own values. */
static size_t pg_query(char *q, size_t cap, unsigned long i, int tpcb)
{
	unsigned long aid = (i * 2654435761UL) % 500000 + 1, tid = aid % 50 + 1, bid = aid % 5 + 1;
	long delta = (long)((i * 40503UL) % 10001) - 5000;
	int n;
	unsigned int len;

	/* pgbench's three UPDATEs: table, its balance, its key */
	static const char *const upd[3][3] = {
		{ "accounts", "abalance", "aid" }, { "tellers", "tbalance", "tid" }, { "branches", "bbalance", "bid" },
	};
	unsigned long key[3] = { aid, tid, bid };
	unsigned int k = tpcb ? i % 7 : 2, t = k == 1 ? 0 : k - 2;  /* t: which UPDATE (k = 1, 3, 4) */

	if (k == 0 || k == 6) {
		n = snprintf(q + 5, cap - 5, k ? "END;" : "BEGIN;");
	} else if (k == 2) {
		n = snprintf(q + 5, cap - 5, "SELECT abalance FROM pgbench_accounts WHERE aid = %lu;", aid);
	} else if (k == 5) {
		n = snprintf(q + 5, cap - 5, "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
			     "VALUES (%lu, %lu, %lu, %ld, CURRENT_TIMESTAMP);", tid, bid, aid, delta);
	} else {
		const char *const *u = upd[t];

		n = snprintf(q + 5, cap - 5, "UPDATE pgbench_%s SET %s = %s + %ld WHERE %s = %lu;",
			     u[0], u[1], u[1], delta, u[2], key[t]);
	}
	len = (unsigned int)n + 1 + 4;

	q[0] = 'Q';
	q[1] = (char)(len >> 24);
	q[2] = (char)(len >> 16);
	q[3] = (char)(len >> 8);
	q[4] = (char)len;
	return (size_t)n + 1 + 5;
}

/* Read a byte of every cache line of m[0, n): the server's own work. In
 * order, or (scrambled) in the order of a full-period LCG over the lines
 * (n / 64 a power of two). */
static uint64_t thrash(const volatile uint8_t *m, size_t n, int scrambled)
{
	size_t lines = n / 64, j = 0;
	uint64_t sum = 0;

	for (size_t i = 0; i < lines; i++) {
		sum += m[(scrambled ? j : i) * 64];
		j = (j * 5 + 1) & (lines - 1);
	}
	return sum;
}

/* "code": N KiB of straight-line instructions (x86-64: add eax, imm32,
 * then ret) run in place of the reads, as a server's own code between two
 * transfers does to the instruction caches; NULL where not built. */
static uint64_t (*code_thrash(size_t n))(void)
{
#if defined(__x86_64__)
	uint8_t *c = mmap(NULL, n + 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	size_t i = 0;

	if (c == MAP_FAILED)
		return NULL;
	c[i++] = 0x31;                  /* xor eax, eax */
	c[i++] = 0xc0;
	for (; i + 5 <= n; i += 5) {
		c[i] = 0x05;            /* add eax, imm32 */
		memcpy(&c[i + 1], &i, 4);
	}
	c[i] = 0xc3;                    /* ret */
	if (mprotect(c, n + 16, PROT_READ | PROT_EXEC) != 0)
		return NULL;
	return (uint64_t (*)(void))(void *)c;
#else
	(void)n;
	return NULL;
#endif
}

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
	int ls, cs, ss, one = 1, tpcb = argc > 4 && strcmp(argv[4], "tpcb") == 0,
	    pg = tpcb || (argc > 4 && strcmp(argv[4], "pg") == 0);
	size_t tn = argc > 5 ? (size_t)atol(argv[5]) * 1024 : 0;
	int trand = argc > 6 && strcmp(argv[6], "rand") == 0;
	int tcode = argc > 6 && strcmp(argv[6], "code") == 0;
	uint64_t (*run)(void) = tn && tcode ? code_thrash(tn) : NULL;
	uint8_t *tm = tn && !tcode ? calloc(1, tn) : NULL;
	uint64_t sink = 0;
	const char *a = req, *r = pg ? pg_rsp : rsp;
	size_t an = sizeof(req) - 1, rn = pg ? sizeof(pg_rsp) - 1 : sizeof(rsp) - 1;
	double best = 1e18;
	char buf[256], q[256];

	if (argc < 2 || rounds <= 0 || batches <= 0) {
		fprintf(stderr, "usage: sockloop PORT [ROUNDS [BATCHES [http|pg|tpcb [THRASH [seq|rand|code]]]]]\n");
		return 2;
	}
	if (tn && !tm && !run) {
		perror("sockloop: thrash buffer");
		return 1;
	}
	if (trand && (tn < 64 || (tn / 64 & (tn / 64 - 1)))) {
		fprintf(stderr, "sockloop: a rand THRASH is a power of two KiB\n");
		return 2;
	}
	/* No NUL after what a read leaves, as in a server's buffer holding
	 * a request's headers: a string read of it goes on to its end. */
	memset(buf, 'x', sizeof(buf));
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
			if (pg) {
				an = pg_query(q, sizeof(q), (unsigned long)(b * rounds + i), tpcb);
				a = q;
			}
			if (write(cs, a, an) != (ssize_t)an || read_all(ss, buf, an) != 0) {
				perror("sockloop: transfer");
				return 1;
			}
			if (tn)
				sink += run ? run() : thrash(tm, tn, trand);
			if (write(ss, r, rn) != (ssize_t)rn || read_all(cs, buf, rn) != 0) {
				perror("sockloop: transfer");
				return 1;
			}
			if (tn)
				sink += run ? run() : thrash(tm, tn, trand);
		}
		dt = (now_ns() - t0) / (double)rounds;
		if (dt < best)
			best = dt;
	}
	printf("ns_per_round %.0f\n", best);
	if (sink == 1)
		putchar('\n');         /* keeps the reads */
	close(cs);
	close(ss);
	close(ls);
	free(tm);
	return 0;
}
