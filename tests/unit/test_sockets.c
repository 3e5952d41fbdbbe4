/*
 * test_sockets.c - /proc/net/tcp line parsing, sock_diag reply parsing on
 * crafted messages, and the live listener scan: sock_diag and /proc agree
 * on a socket of ours, and the owner cache follows a socket whose owner
 * closes it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include "hotpath/sockets.h"

static int parse(const char *line, struct sock_listener *l)
{
	return sockets_parse_line(line, strlen(line), l);
}

static void test_parse_v4(void **state)
{
	struct sock_listener l;

	(void)state;
	assert_int_equal(parse("  sl  local_address rem_address   st tx_queue rx_queue tr "
			       "tm->when retrnsmt   uid  timeout inode", &l), 0);
	assert_int_equal(parse("   0: 0100007F:1951 00000000:0000 0A 00000000:00000000 "
			       "00:00000000 00000000     0        0 123456 1 0000000000000000 "
			       "100 0 0 10 0", &l), 1);
	assert_int_equal(l.port, 6481);
	assert_int_equal(l.inode, 123456);
	assert_int_equal(l.v6, 0);
	assert_int_equal(l.addr[0], 127);
	assert_int_equal(l.addr[3], 1);
	/* ESTABLISHED (01) is not a listener */
	assert_int_equal(parse("   1: 0100007F:1951 0100007F:C350 01 00000000:00000000 "
			       "00:00000000 00000000     0        0 777 1", &l), 0);
}

static void test_parse_v6(void **state)
{
	struct sock_listener l;

	(void)state;
	assert_int_equal(parse("   0: 00000000000000000000000001000000:0050 "
			       "00000000000000000000000000000000:0000 0A 00000000:00000000 "
			       "00:00000000 00000000     0        0 42 1", &l), 1);
	assert_int_equal(l.v6, 1);
	assert_int_equal(l.port, 80);
	assert_int_equal(l.addr[15], 1);     /* ::1 */
	assert_int_equal(l.inode, 42);
}

static void test_parse_malformed(void **state)
{
	static const char *const bad[] = {
		"", "garbage", "0:", "   0: 0100007F", "   0: 0100007F:ZZZZ 00000000:0000 0A",
		"   0: 0100007F:1951 00000000:0000 0A 00000000:00000000 00:00000000",
		"   0: 0100007F:1951 00000000:0000 0A 1 2 3 4 5 x",
		"   0: 0100007F:1951 0000:0000 0A 1 2 3 4 5 6",
		"   0: 0100007F:1951 00000000:0000 0A 1 2 3 4 5 99999999999999999999999",
	};
	struct sock_listener l;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse(bad[i], &l), -EINVAL);
}

static void test_live_port_pid(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t sl = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	(void)state;
	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &sl), 0);
	assert_int_equal(sockets_port_pid(ntohs(a.sin_port)), getpid());
	close(fd);
	assert_int_equal(sockets_port_pid(ntohs(a.sin_port)), -ENOENT);
}

/* ---- sock_diag replies, crafted -------------------------------------------- */

struct nlbuf {
	uint8_t b[2048];
	size_t len;
};

static void nl_put(struct nlbuf *nb, uint16_t type, const void *body, size_t blen)
{
	struct nlmsghdr h = {
		.nlmsg_len = (uint32_t)(NLMSG_HDRLEN + blen),
		.nlmsg_type = type,
		.nlmsg_flags = NLM_F_MULTI,
		.nlmsg_seq = AF_INET,
	};

	assert_true(nb->len + NLMSG_ALIGN(h.nlmsg_len) <= sizeof(nb->b));
	memcpy(nb->b + nb->len, &h, sizeof(h));
	if (blen)
		memcpy(nb->b + nb->len + NLMSG_HDRLEN, body, blen);
	nb->len += NLMSG_ALIGN(h.nlmsg_len);
}

/* A socket as the kernel reports it: port in host order, addr in network order. */
static void nl_sock(struct nlbuf *nb, uint8_t family, uint8_t state, uint16_t port,
		    const uint8_t *addr, uint32_t inode)
{
	struct inet_diag_msg m = {
		.idiag_family = family,
		.idiag_state = state,
		.id = { .idiag_sport = htons(port), .idiag_cookie = { 1, 2 } },
		.idiag_uid = 1000,
		.idiag_inode = inode,
	};

	memcpy(m.id.idiag_src, addr, family == AF_INET6 ? 16 : 4);
	nl_put(nb, SOCK_DIAG_BY_FAMILY, &m, sizeof(m));
}

static void nl_int(struct nlbuf *nb, uint16_t type, int v)
{
	if (type == NLMSG_ERROR) {
		struct nlmsgerr e = { .error = v };

		nl_put(nb, type, &e, sizeof(e));
	} else {
		nl_put(nb, type, &v, sizeof(v));
	}
}

/* Field by field: struct copies need not copy padding. */
static bool same(const struct sock_listener *a, const struct sock_listener *b)
{
	return a->port == b->port && a->v6 == b->v6 && !memcmp(a->addr, b->addr, sizeof(a->addr)) &&
	       a->inode == b->inode && a->pid == b->pid && !strcmp(a->comm, b->comm);
}

static const uint8_t lo4[4] = { 127, 0, 0, 1 };
static const uint8_t lo6[16] = { [15] = 1 };
static const uint8_t any6[16] = { 0 };

static int diag(const struct nlbuf *nb, size_t len, struct sock_listener *out, size_t max,
		size_t *n)
{
	/* an exact-size heap copy so ASan sees any overread */
	uint8_t *copy = malloc(len ? len : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, nb->b, len);
	*n = 0;
	rc = sockets_parse_diag(copy, len, out, max, n);
	free(copy);
	return rc;
}

static void test_diag_v4_v6(void **state)
{
	struct sock_listener l[4];
	struct nlbuf nb = { .len = 0 };
	uint8_t *odd;
	size_t n;

	(void)state;
	nl_sock(&nb, AF_INET, TCP_LISTEN, 6481, lo4, 123456);
	nl_sock(&nb, AF_INET6, TCP_LISTEN, 80, lo6, 42);
	assert_int_equal(diag(&nb, nb.len, l, 4, &n), 0);      /* no NLMSG_DONE yet */
	assert_int_equal(n, 2);
	assert_int_equal(l[0].port, 6481);
	assert_int_equal(l[0].v6, 0);
	assert_memory_equal(l[0].addr, lo4, 4);
	assert_memory_equal(l[0].addr + 4, any6, 12);
	assert_int_equal(l[0].inode, 123456);
	assert_int_equal(l[0].pid, 0);
	assert_string_equal(l[0].comm, "");
	assert_int_equal(l[1].port, 80);
	assert_int_equal(l[1].v6, 1);
	assert_memory_equal(l[1].addr, lo6, 16);
	assert_int_equal(l[1].inode, 42);
	/* the same bytes at an odd address */
	odd = malloc(nb.len + 1);
	assert_non_null(odd);
	memcpy(odd + 1, nb.b, nb.len);
	n = 0;
	assert_int_equal(sockets_parse_diag(odd + 1, nb.len, l, 4, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(l[1].inode, 42);
	free(odd);
	/* the same as /proc/net/tcp says for that socket */
	{
		static const char line[] = "   0: 0100007F:1951 00000000:0000 0A 00000000:00000000 "
					   "00:00000000 00000000     0        0 123456 1";
		struct sock_listener p;

		assert_int_equal(sockets_parse_line(line, strlen(line), &p), 1);
		assert_true(same(&p, &l[0]));
	}
}

static void test_diag_states(void **state)
{
	struct sock_listener l[4];
	struct nlbuf nb = { .len = 0 };
	size_t n;

	(void)state;
	nl_sock(&nb, AF_INET, TCP_ESTABLISHED, 6481, lo4, 7);
	nl_put(&nb, NLMSG_NOOP, NULL, 0);
	nl_sock(&nb, AF_INET6, TCP_SYN_RECV, 80, lo6, 8);
	nl_sock(&nb, AF_INET, TCP_LISTEN, 8080, lo4, 9);
	nl_int(&nb, NLMSG_DONE, 0);
	assert_int_equal(diag(&nb, nb.len, l, 4, &n), 1);
	assert_int_equal(n, 1);
	assert_int_equal(l[0].port, 8080);
	assert_int_equal(l[0].inode, 9);
}

static void test_diag_done(void **state)
{
	struct sock_listener l[4];
	struct nlbuf nb = { .len = 0 };
	size_t n;

	(void)state;
	nl_int(&nb, NLMSG_DONE, 0);
	assert_int_equal(diag(&nb, nb.len, l, 4, &n), 1);
	assert_int_equal(n, 0);
	/* what follows NLMSG_DONE is not read */
	nl_sock(&nb, AF_INET, TCP_LISTEN, 1, lo4, 1);
	assert_int_equal(diag(&nb, nb.len, l, 4, &n), 1);
	assert_int_equal(n, 0);
	/* without the status word */
	nb.len = 0;
	nl_put(&nb, NLMSG_DONE, NULL, 0);
	assert_int_equal(diag(&nb, nb.len, l, 4, &n), 1);
	/* a dump that failed says so in its NLMSG_DONE */
	nb.len = 0;
	nl_sock(&nb, AF_INET, TCP_LISTEN, 1, lo4, 1);
	nl_int(&nb, NLMSG_DONE, -ENOBUFS);
	assert_int_equal(diag(&nb, nb.len, l, 4, &n), -ENOBUFS);
	assert_int_equal(n, 1);
	/* an empty buffer is not the end */
	assert_int_equal(diag(&nb, 0, l, 4, &n), 0);
}

static void test_diag_error(void **state)
{
	struct sock_listener l[4];
	struct nlbuf nb = { .len = 0 };
	int small = -ENOENT;
	size_t n;

	(void)state;
	nl_int(&nb, NLMSG_ERROR, -ENOENT);                     /* no inet_diag */
	assert_int_equal(diag(&nb, nb.len, l, 4, &n), -ENOENT);
	nb.len = 0;
	nl_sock(&nb, AF_INET, TCP_LISTEN, 1, lo4, 1);
	nl_int(&nb, NLMSG_ERROR, -EPERM);
	assert_int_equal(diag(&nb, nb.len, l, 4, &n), -EPERM);
	assert_int_equal(n, 1);
	nb.len = 0;
	nl_int(&nb, NLMSG_ERROR, 0);                           /* an ACK in a dump */
	assert_int_equal(diag(&nb, nb.len, l, 4, &n), -EPROTO);
	nb.len = 0;
	nl_int(&nb, NLMSG_ERROR, -100000);                     /* not an errno */
	assert_int_equal(diag(&nb, nb.len, l, 4, &n), -EPROTO);
	nb.len = 0;
	nl_put(&nb, NLMSG_ERROR, &small, sizeof(small));       /* shorter than nlmsgerr */
	assert_int_equal(diag(&nb, nb.len, l, 4, &n), -EBADMSG);
}

static void test_diag_malformed(void **state)
{
	struct sock_listener l[4];
	struct nlbuf nb = { .len = 0 };
	struct inet_diag_msg m = { .idiag_family = AF_INET, .idiag_state = TCP_LISTEN };
	struct nlmsghdr h;
	size_t n, one;

	(void)state;
	nl_sock(&nb, AF_INET, TCP_LISTEN, 1, lo4, 1);
	one = nb.len;
	nl_sock(&nb, AF_INET, TCP_LISTEN, 2, lo4, 2);
	/* a header cut short, alone and after a whole message */
	assert_int_equal(diag(&nb, 10, l, 4, &n), -EBADMSG);
	assert_int_equal(n, 0);
	assert_int_equal(diag(&nb, one + NLMSG_HDRLEN - 1, l, 4, &n), -EBADMSG);
	assert_int_equal(n, 1);
	/* nlmsg_len past the buffer: the second message's body is cut */
	assert_int_equal(diag(&nb, nb.len - 1, l, 4, &n), -EBADMSG);
	assert_int_equal(n, 1);
	/* nlmsg_len past the buffer though the buffer holds all of its body */
	memcpy(&h, nb.b + one, sizeof(h));
	h.nlmsg_len += 4;
	memcpy(nb.b + one, &h, sizeof(h));
	assert_int_equal(diag(&nb, nb.len, l, 4, &n), -EBADMSG);
	h.nlmsg_len = 0xffffffffu;
	memcpy(nb.b + one, &h, sizeof(h));
	assert_int_equal(diag(&nb, nb.len, l, 4, &n), -EBADMSG);
	/* nlmsg_len shorter than its own header */
	h.nlmsg_len = NLMSG_HDRLEN - 1;
	memcpy(nb.b + one, &h, sizeof(h));
	assert_int_equal(diag(&nb, nb.len, l, 4, &n), -EBADMSG);
	h.nlmsg_len = 0;
	memcpy(nb.b + one, &h, sizeof(h));
	assert_int_equal(diag(&nb, nb.len, l, 4, &n), -EBADMSG);
	/* a body shorter than struct inet_diag_msg */
	nb.len = 0;
	nl_put(&nb, SOCK_DIAG_BY_FAMILY, &m, sizeof(m) - 1);
	assert_int_equal(diag(&nb, nb.len, l, 4, &n), -EBADMSG);
	/* another family, another message type */
	nb.len = 0;
	m.idiag_family = AF_UNIX;
	nl_put(&nb, SOCK_DIAG_BY_FAMILY, &m, sizeof(m));
	assert_int_equal(diag(&nb, nb.len, l, 4, &n), -EPROTO);
	nb.len = 0;
	nl_int(&nb, NLMSG_OVERRUN, 0);
	assert_int_equal(diag(&nb, nb.len, l, 4, &n), -EPROTO);
	/* the last message's padding may be missing */
	nb.len = 0;
	m.idiag_family = AF_INET;
	nl_put(&nb, SOCK_DIAG_BY_FAMILY, &m, sizeof(m));
	memcpy(&h, nb.b, sizeof(h));
	h.nlmsg_len += 1;
	memcpy(nb.b, &h, sizeof(h));
	assert_int_equal(diag(&nb, h.nlmsg_len, l, 4, &n), 0);
	assert_int_equal(n, 1);
}

static void test_diag_max(void **state)
{
	struct sock_listener l[3];
	struct nlbuf nb = { .len = 0 };
	size_t n;

	(void)state;
	for (uint16_t i = 1; i <= 3; i++)
		nl_sock(&nb, AF_INET, TCP_LISTEN, i, lo4, i);
	nl_int(&nb, NLMSG_DONE, 0);
	memset(&l[2], 0xa5, sizeof(l[2]));
	/* the rest is walked (to NLMSG_DONE) and dropped */
	assert_int_equal(diag(&nb, nb.len, l, 2, &n), 1);
	assert_int_equal(n, 2);
	assert_int_equal(l[1].port, 2);
	assert_int_equal(l[2].port, 0xa5a5);
	assert_int_equal(diag(&nb, nb.len, l, 0, &n), 1);
	assert_int_equal(n, 0);
	/* ... and still checked */
	assert_int_equal(diag(&nb, nb.len - 1, l, 2, &n), -EBADMSG);
	assert_int_equal(n, 2);
}

/* ---- the live scan ---------------------------------------------------------- */

/* A listening socket on a free loopback port; returns the fd, sets *port. */
static int listen_lo(uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t sl = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &sl), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* Our socket `ino` in a fresh listing made with `flags`; fails if absent. */
static struct sock_listener find_ino(uint64_t ino, unsigned flags, unsigned *how)
{
	struct sock_listener *ls = calloc(SOCKETS_OWNERS_MAX, sizeof(*ls)), found;
	int n, at = -1;

	assert_non_null(ls);
	n = sockets_list(ls, SOCKETS_OWNERS_MAX, flags, how);
	assert_true(n > 0);
	for (int i = 0; i < n; i++)
		if (ls[i].inode == ino)
			at = i;
	assert_true(at >= 0);
	found = ls[at];
	free(ls);
	return found;
}

static void test_live_diag(void **state)
{
	struct sock_listener d, p;
	char comm[16] = "";
	struct stat st;
	uint16_t port;
	unsigned how;
	bool cached = false;
	FILE *f;
	int fd = listen_lo(&port);

	(void)state;
	assert_int_equal(fstat(fd, &st), 0);
	f = fopen("/proc/self/comm", "re");
	assert_non_null(f);
	assert_non_null(fgets(comm, sizeof(comm), f));
	comm[strcspn(comm, "\n")] = '\0';
	fclose(f);

	d = find_ino(st.st_ino, 0, &how);
	assert_false(how & SOCKETS_FROM_PROC);                  /* sock_diag answered */
	assert_true(how & SOCKETS_SCANNED);                     /* a new inode */
	assert_int_equal(d.port, port);
	assert_int_equal(d.v6, 0);
	assert_memory_equal(d.addr, lo4, 4);
	assert_int_equal(d.pid, getpid());
	assert_string_equal(d.comm, comm);
	/* the next listing is served from the cache (unless another process
	 * opened a listener meanwhile: this machine is shared) */
	for (int i = 0; i < 3 && !cached; i++) {
		p = find_ino(st.st_ino, 0, &how);
		assert_int_equal(p.pid, getpid());
		cached = !(how & SOCKETS_SCANNED);
	}
	assert_true(cached);
	/* /proc and a full scan say the same */
	p = find_ino(st.st_ino, SOCKETS_FROM_PROC | SOCKETS_NO_CACHE, &how);
	assert_int_equal(how, SOCKETS_FROM_PROC | SOCKETS_SCANNED);
	assert_true(same(&p, &d));
	close(fd);
}

/* The owner that closes its socket is replaced by the process still holding it. */
static void test_live_owner_moves(void **state)
{
	struct sock_listener l;
	struct stat st;
	uint16_t port;
	unsigned how;
	int go[2], fd, child;
	char c = 0;

	(void)state;
	fd = listen_lo(&port);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(pipe(go), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		/* holds the inherited listener until the parent closes the pipe */
		close(go[1]);
		(void)!read(go[0], &c, 1);
		_exit(0);
	}
	close(go[0]);
	l = find_ino(st.st_ino, 0, &how);
	assert_int_equal(l.pid, child < getpid() ? child : getpid());
	if (child > getpid()) {
		close(fd);
		l = find_ino(st.st_ino, 0, &how);
		assert_true(how & SOCKETS_SCANNED);             /* the cached owner let go */
		assert_int_equal(l.pid, child);
		fd = -1;
	}
	close(go[1]);
	assert_int_equal(waitpid(child, NULL, 0), child);
	if (fd >= 0)
		close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_v4),
		cmocka_unit_test(test_parse_v6),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_diag_v4_v6),
		cmocka_unit_test(test_diag_states),
		cmocka_unit_test(test_diag_done),
		cmocka_unit_test(test_diag_error),
		cmocka_unit_test(test_diag_malformed),
		cmocka_unit_test(test_diag_max),
		cmocka_unit_test(test_live_port_pid),
		cmocka_unit_test(test_live_diag),
		cmocka_unit_test(test_live_owner_moves),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
