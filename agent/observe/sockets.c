/*
 * sockets.c - listening TCP sockets and their processes.
 *
 * Listeners come from the kernel's sock_diag netlink interface: one
 * SOCK_DIAG_BY_FAMILY dump per family (AF_INET, then AF_INET6) asking for
 * TCP sockets in LISTEN only, which the kernel answers by walking its
 * listening hash alone. /proc/net/tcp{,6} (state 0A) would do, but the
 * kernel builds them by walking and formatting every socket of the host,
 * established ones included, taking each hash bucket's lock on the way: on
 * a host with 50k connections that is most of a discovery pass. /proc is
 * kept as the fallback, quietly, when the netlink socket or a dump fails
 * (no inet_diag in the kernel, a seccomp filter, a reply we cannot read);
 * a failed IPv6 dump falls back for IPv6 alone. The reply is read into one
 * 32 KiB buffer, the most the kernel puts in one dump message
 * (SKB_WITH_OVERHEAD(32768) in af_netlink.c), so a read is never
 * truncated; if one is anyway (MSG_TRUNC), that dump counts as failed.
 * Parsing (sockets_parse_diag, sockets_parse_line) is split from reading
 * so tests and the fuzzers can feed it bytes. Written here rather than with
 * libmnl: one request and a walk of fixed-size messages are shorter than
 * the dependency, and the walk has to be a pure function over a buffer
 * for the fuzzer anyway.
 *
 * The owner of a socket is the lowest pid with a link "socket:[INODE]" in
 * /proc/PID/fd. Finding it means reading every fd of every process, so
 * owners are cached across calls: inode -> (pid, fd, comm), for the inodes
 * of the last call's listeners only (at most SOCKETS_OWNERS_MAX, sorted by
 * inode). A cached owner is checked with one readlink of /proc/PID/fd/FD:
 * stronger than kill(pid, 0), since it also catches a reused pid and a
 * process that closed the socket but lives on, and as cheap. The fd scan
 * runs only when some listener is not in the cache, its owner no longer
 * holds it, or it had no visible owner SOCKETS_RETRY_MS ago (kernel
 * sockets such as nfsd's have none; without the retry delay they would
 * force a scan on every pass); it then resolves every listener afresh
 * and stops as soon as all are resolved, /proc listing pids in ascending
 * order. What the cache misses: a process with a lower pid than the
 * cached owner that comes to hold the socket (fd passing) while the
 * cached owner keeps it, and a new comm after an exec; both until the
 * owner's next change.
 *
 * The cache is module state behind a mutex rather than state the caller
 * owns: its callers (the observe thread's discovery pass, API threads
 * through sockets_port_pid) ask about the same host, so one cache serves
 * both, keeps sockets_port_pid's signature, and the lock also keeps two
 * threads from scanning /proc at once. It is a fixed array (no
 * allocation, nothing to free at exit); the lock is held for the scan,
 * which an API request then waits for rather than doing twice.
 *
 * Without privileges other users' fds are unreadable: such sockets are
 * listed with pid 0. Callers use this on demand (an API request, a
 * discovery pass every few seconds), never per packet.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include "hotpath/sockets.h"

#define SOCKETS_DIAG_BUF 32768
#define SOCKETS_RETRY_MS 60000
#define SOCKETS_ERRNO_MAX 4095

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Read `n` hex digits at *p into out (big-endian nibble order). */
static int hex_field(const char **p, const char *end, unsigned n, uint64_t *out)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++) {
		int h;

		if (*p >= end || (h = hexval((unsigned char)**p)) < 0)
			return -EINVAL;
		v = (v << 4) | (uint64_t)h;
		(*p)++;
	}
	*out = v;
	return 0;
}

static void skip_blanks(const char **p, const char *end)
{
	while (*p < end && (**p == ' ' || **p == '\t'))
		(*p)++;
}

int sockets_parse_line(const char *line, size_t len, struct sock_listener *out)
{
	const char *p = line, *end = line + len;
	uint64_t v, st, inode = 0;
	unsigned addr_digits;
	const char *colon;

	memset(out, 0, sizeof(*out));
	skip_blanks(&p, end);
	/* "sl" header line */
	if (end - p >= 2 && p[0] == 's' && p[1] == 'l')
		return 0;
	/* "  0: 0100007F:1F90 00000000:0000 0A ..." */
	while (p < end && isdigit((unsigned char)*p))
		p++;
	if (p >= end || *p != ':')
		return -EINVAL;
	p++;
	skip_blanks(&p, end);
	colon = memchr(p, ':', (size_t)(end - p));
	if (!colon)
		return -EINVAL;
	addr_digits = (unsigned)(colon - p);
	if (addr_digits != 8 && addr_digits != 32)
		return -EINVAL;
	out->v6 = addr_digits == 32;
	/* The kernel prints each 32-bit word in host order (little-endian). */
	for (unsigned w = 0; w < addr_digits / 8; w++) {
		if (hex_field(&p, end, 8, &v))
			return -EINVAL;
		for (unsigned b = 0; b < 4; b++)
			out->addr[w * 4 + b] = (uint8_t)(v >> (8 * b));
	}
	p++; /* ':' */
	if (hex_field(&p, end, 4, &v))
		return -EINVAL;
	out->port = (uint16_t)v;
	skip_blanks(&p, end);
	/* remote address:port */
	colon = memchr(p, ':', (size_t)(end - p));
	if (!colon || (unsigned)(colon - p) != addr_digits)
		return -EINVAL;
	p = colon + 1;
	if (hex_field(&p, end, 4, &v))
		return -EINVAL;
	skip_blanks(&p, end);
	if (hex_field(&p, end, 2, &st))
		return -EINVAL;
	/* tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode */
	for (int field = 0; field < 6; field++) {
		skip_blanks(&p, end);
		if (p >= end)
			return -EINVAL;
		if (field == 5) {
			if (!isdigit((unsigned char)*p))
				return -EINVAL;
			while (p < end && isdigit((unsigned char)*p)) {
				if (inode > (UINT64_MAX - 9) / 10)
					return -EINVAL;
				inode = inode * 10 + (uint64_t)(*p - '0');
				p++;
			}
		} else {
			while (p < end && *p != ' ' && *p != '\t')
				p++;
		}
	}
	out->inode = inode;
	return st == 0x0A ? 1 : 0;
}


/* ---- sock_diag ---------------------------------------------------------------- */

/* A kernel error carried in a message, as -errno; anything else is -EPROTO. */
static int diag_errno(int err)
{
	return err < 0 && err >= -SOCKETS_ERRNO_MAX ? err : -EPROTO;
}

int sockets_parse_diag(const void *buf, size_t len, struct sock_listener *out, size_t max,
		       size_t *n)
{
	const uint8_t *p = buf;
	size_t off = 0;

	/* NLMSG_OK/NLMSG_NEXT, in size_t and on copies: the buffer may be
	 * unaligned and nlmsg_len anything. */
	while (off < len) {
		size_t left = len - off, body, step;
		const uint8_t *data;
		struct nlmsghdr h;

		if (left < NLMSG_HDRLEN)
			return -EBADMSG;
		memcpy(&h, p + off, sizeof(h));
		if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > left)
			return -EBADMSG;
		data = p + off + NLMSG_HDRLEN;
		body = h.nlmsg_len - NLMSG_HDRLEN;
		switch (h.nlmsg_type) {
		case NLMSG_DONE: {
			int err = 0;

			/* the dump's own status; older kernels may send none */
			if (body >= sizeof(err))
				memcpy(&err, data, sizeof(err));
			return err < 0 ? diag_errno(err) : 1;
		}
		case NLMSG_ERROR: {
			struct nlmsgerr e;

			if (body < sizeof(e))
				return -EBADMSG;
			memcpy(&e, data, sizeof(e));
			return diag_errno(e.error); /* an ACK (0) has no place in a dump */
		}
		case NLMSG_NOOP:
			break;
		case SOCK_DIAG_BY_FAMILY: {
			struct inet_diag_msg m;
			struct sock_listener *l;

			if (body < sizeof(m))
				return -EBADMSG;
			memcpy(&m, data, sizeof(m));
			if (m.idiag_family != AF_INET && m.idiag_family != AF_INET6)
				return -EPROTO;
			if (m.idiag_state != TCP_LISTEN || *n >= max)
				break;
			l = &out[(*n)++];
			memset(l, 0, sizeof(*l));
			l->v6 = m.idiag_family == AF_INET6;
			l->port = ntohs(m.id.idiag_sport);
			memcpy(l->addr, m.id.idiag_src, l->v6 ? 16 : 4);
			l->inode = m.idiag_inode;
			break;
		}
		default:
			return -EPROTO;
		}
		step = ((size_t)h.nlmsg_len + NLMSG_ALIGNTO - 1) & ~(size_t)(NLMSG_ALIGNTO - 1);
		off = step < left ? off + step : len;
	}
	return 0;
}

/*
 * One dump of `family`'s listening TCP sockets on `fd`, appended to out[*n].
 * Returns 0 when the dump is complete or `max` is reached (the rest of the
 * dump is then left unread: the socket is not used again), else -errno.
 */
static int diag_dump(int fd, uint8_t family, uint8_t *buf, struct sock_listener *out,
		     size_t max, size_t *n)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} msg = {
		.nlh = {
			.nlmsg_len = sizeof(msg),
			.nlmsg_type = SOCK_DIAG_BY_FAMILY,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
			.nlmsg_seq = family,
		},
		.req = {
			.sdiag_family = family,
			.sdiag_protocol = IPPROTO_TCP,
			.idiag_states = 1u << TCP_LISTEN,
		},
	};
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	ssize_t k;

	do
		k = sendto(fd, &msg, sizeof(msg), 0, (struct sockaddr *)&kernel, sizeof(kernel));
	while (k == -1 && errno == EINTR);
	if (k == -1)
		return -errno;
	if ((size_t)k != sizeof(msg))
		return -EIO;
	while (*n < max) {
		struct sockaddr_nl from;
		struct iovec iov = { .iov_base = buf, .iov_len = SOCKETS_DIAG_BUF };
		struct msghdr mh = {
			.msg_name = &from, .msg_namelen = sizeof(from),
			.msg_iov = &iov, .msg_iovlen = 1,
		};
		int rc;

		k = recvmsg(fd, &mh, 0);
		if (k == -1) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (mh.msg_flags & MSG_TRUNC)
			return -EMSGSIZE;
		if (mh.msg_namelen != sizeof(from) || from.nl_pid != 0)
			continue; /* not from the kernel */
		rc = sockets_parse_diag(buf, (size_t)k, out, max, n);
		if (rc < 0)
			return rc;
		if (rc == 1)
			return 0;
		if (k == 0)
			return -EBADMSG; /* an empty datagram that does not end the dump */
	}
	return 0;
}

/*
 * IPv4 then IPv6 listeners from sock_diag. Returns 0, with *v6_failed set
 * if the IPv6 dump failed (out[] then holds IPv4 only), or -errno if the
 * netlink socket or the IPv4 dump failed (out[] holds nothing of use).
 */
static int diag_listeners(struct sock_listener *out, size_t max, size_t *n, bool *v6_failed)
{
	struct timeval tv = { .tv_sec = 1 };
	uint8_t *buf;
	size_t n4;
	int fd, rc;

	*v6_failed = false;
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd == -1)
		return -errno;
	buf = malloc(SOCKETS_DIAG_BUF); /* API threads may have small stacks */
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	/* The kernel always ends a dump; the timeout only bounds the surprise. */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	rc = diag_dump(fd, AF_INET, buf, out, max, n);
	if (rc == 0 && *n < max) {
		n4 = *n;
		if (diag_dump(fd, AF_INET6, buf, out, max, n) != 0) {
			*n = n4;
			*v6_failed = true;
		}
	}
	free(buf);
	close(fd);
	return rc;
}

/* ---- /proc/net/tcp{,6} ------------------------------------------------------------ */

int sockets_read_table(const char *path, struct sock_listener *out, size_t max, size_t *n)
{
	FILE *f = fopen(path, "re");
	char line[512];

	if (!f)
		return -errno;
	while (*n < max && fgets(line, sizeof(line), f)) {
		struct sock_listener l;

		if (sockets_parse_line(line, strcspn(line, "\n"), &l) == 1)
			out[(*n)++] = l;
	}
	fclose(f);
	return 0;
}

/* ---- owners ------------------------------------------------------------------- */

struct owner {
	uint64_t inode;
	uint64_t since_ms;      /* when looked up: pid 0 is believed this long */
	int32_t pid;            /* 0: no process of ours held it at since_ms */
	int32_t fd;             /* pid's fd that held it */
	bool seen;              /* listed by the current call */
	char comm[16];
};

static struct {
	pthread_mutex_t lock;
	size_t n;
	struct owner e[SOCKETS_OWNERS_MAX];
} owners = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int owner_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct owner *)a)->inode, y = ((const struct owner *)b)->inode;

	return x < y ? -1 : x > y;
}

static struct owner *owner_find(struct owner *e, size_t n, uint64_t inode)
{
	struct owner key = { .inode = inode };

	return bsearch(&key, e, n, sizeof(*e), owner_cmp);
}

/* s[0, len) as a decimal number of at most `max`: digits only, no sign. */
static bool parse_dec(const char *s, size_t len, uint64_t max, uint64_t *v)
{
	uint64_t x = 0;

	if (!len)
		return false;
	for (size_t i = 0; i < len; i++) {
		uint64_t d = (uint64_t)(s[i] - '0');

		if (s[i] < '0' || s[i] > '9' || x > (max - d) / 10)
			return false;
		x = x * 10 + d;
	}
	*v = x;
	return true;
}

/* A pid or fd name of /proc: its number, or -1. */
static int parse_int(const char *s)
{
	uint64_t v;

	return parse_dec(s, strlen(s), INT32_MAX, &v) ? (int)v : -1;
}

/* The inode of fd `fd` of `pid` if it is a socket, else 0. */
static uint64_t fd_socket(int pid, const char *fd)
{
	char path[64], link[64];
	uint64_t ino;
	ssize_t k;

	snprintf(path, sizeof(path), "/proc/%d/fd/%s", pid, fd);
	k = readlink(path, link, sizeof(link) - 1);
	if (k <= 9 || memcmp(link, "socket:[", 8) != 0 || link[k - 1] != ']')
		return 0;
	return parse_dec(link + 8, (size_t)k - 9, UINT64_MAX, &ino) ? ino : 0;
}

/* Does the cached owner still hold its socket? One readlink. */
static bool owner_holds(const struct owner *o)
{
	char fd[16];

	snprintf(fd, sizeof(fd), "%d", o->fd);
	return fd_socket(o->pid, fd) == o->inode;
}

static void read_comm(int pid, char comm[16])
{
	char path[64];
	FILE *f;

	comm[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	f = fopen(path, "re");
	if (!f)
		return;
	if (fgets(comm, 16, f))
		comm[strcspn(comm, "\n")] = '\0';
	else
		comm[0] = '\0';
	fclose(f);
}

/* e[] := the distinct inodes of ls[], sorted, no owner yet. Returns how many. */
static size_t owners_index(struct owner *e, const struct sock_listener *ls, size_t n,
			   uint64_t now)
{
	size_t k = 0;

	if (n > SOCKETS_OWNERS_MAX)
		n = SOCKETS_OWNERS_MAX;
	for (size_t i = 0; i < n; i++)
		e[i] = (struct owner){ .inode = ls[i].inode, .since_ms = now, .fd = -1, .seen = true };
	qsort(e, n, sizeof(*e), owner_cmp);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || e[k - 1].inode != e[i].inode)
			e[k++] = e[i];
	return k;
}

/*
 * Find the lowest pid holding each of e[0..n) by reading /proc/PID/fd.
 * /proc lists pids in ascending order; while it does, the walk stops once
 * every entry has an owner, since no later pid can be lower.
 */
static void owners_scan(struct owner *e, size_t n)
{
	DIR *proc = opendir("/proc");
	size_t unowned = n;
	bool ascending = true;
	struct dirent *de;
	int last = 0;

	if (!proc)
		return;
	while ((de = readdir(proc)) != NULL) {
		struct dirent *fe;
		char path[64];
		DIR *fds;
		int pid = parse_int(de->d_name);

		if (pid <= 0)
			continue;
		if (pid < last)
			ascending = false;
		last = pid;
		if (ascending && unowned == 0)
			break;
		snprintf(path, sizeof(path), "/proc/%d/fd", pid);
		fds = opendir(path);
		if (!fds)
			continue;
		while ((fe = readdir(fds)) != NULL) {
			uint64_t ino;
			struct owner *o;

			if (fe->d_name[0] == '.' || (ino = fd_socket(pid, fe->d_name)) == 0)
				continue;
			o = owner_find(e, n, ino);
			if (!o || (o->pid && o->pid <= pid))
				continue;
			if (!o->pid)
				unowned--;
			o->pid = pid;
			o->fd = parse_int(fe->d_name);
		}
		closedir(fds);
	}
	closedir(proc);
	for (size_t i = 0; i < n; i++)
		if (e[i].pid)
			read_comm(e[i].pid, e[i].comm);
}

/* Is every listener's owner in the cache and still believable? Marks the
 * entries it vouches for as seen. */
static bool owners_fresh(const struct sock_listener *ls, size_t n, uint64_t now)
{
	for (size_t i = 0; i < owners.n; i++)
		owners.e[i].seen = false;
	if (n > SOCKETS_OWNERS_MAX)
		n = SOCKETS_OWNERS_MAX;
	for (size_t i = 0; i < n; i++) {
		struct owner *o = owner_find(owners.e, owners.n, ls[i].inode);

		if (!o)
			return false;
		if (o->seen)
			continue;
		if (o->pid ? !owner_holds(o) : now - o->since_ms >= SOCKETS_RETRY_MS)
			return false;
		o->seen = true;
	}
	return true;
}

/* Drop the entries of sockets no longer listed (order, hence sorting, kept). */
static void owners_compact(void)
{
	size_t k = 0;

	for (size_t i = 0; i < owners.n; i++)
		if (owners.e[i].seen)
			owners.e[k++] = owners.e[i];
	owners.n = k;
}

static void owners_apply(struct sock_listener *ls, size_t n, struct owner *e, size_t ne)
{
	for (size_t i = 0; i < n; i++) {
		const struct owner *o = owner_find(e, ne, ls[i].inode);

		if (o && o->pid) {
			ls[i].pid = o->pid;
			memcpy(ls[i].comm, o->comm, sizeof(ls[i].comm));
		}
	}
}

/* Fill pid and comm of ls[0..n); returns SOCKETS_SCANNED if /proc/PID/fd were read. */
static unsigned find_owners(struct sock_listener *ls, size_t n, bool use_cache)
{
	uint64_t now = hp_now_ms();
	unsigned did = 0;

	if (!use_cache) {
		size_t cap = n < SOCKETS_OWNERS_MAX ? n : SOCKETS_OWNERS_MAX;
		struct owner *e = calloc(cap ? cap : 1, sizeof(*e));
		size_t ne;

		if (!e)
			return 0;
		ne = owners_index(e, ls, n, now);
		owners_scan(e, ne);
		owners_apply(ls, n, e, ne);
		free(e);
		return SOCKETS_SCANNED;
	}
	pthread_mutex_lock(&owners.lock);
	if (owners_fresh(ls, n, now)) {
		owners_compact();
	} else {
		owners.n = owners_index(owners.e, ls, n, now);
		owners_scan(owners.e, owners.n);
		did = SOCKETS_SCANNED;
	}
	owners_apply(ls, n, owners.e, owners.n);
	pthread_mutex_unlock(&owners.lock);
	return did;
}

/* ---- public ------------------------------------------------------------------- */

int sockets_list(struct sock_listener *out, size_t max, unsigned flags, unsigned *how)
{
	bool v6_failed = true;
	unsigned did = 0;
	size_t n = 0;

	if ((flags & SOCKETS_FROM_PROC) || diag_listeners(out, max, &n, &v6_failed) != 0) {
		int rc;

		n = 0;
		v6_failed = true;
		rc = sockets_read_table("/proc/net/tcp", out, max, &n);
		if (rc)
			return rc;
	}
	if (v6_failed) {
		did |= SOCKETS_FROM_PROC;
		(void)sockets_read_table("/proc/net/tcp6", out, max, &n); /* no IPv6 is fine */
	}
	did |= find_owners(out, n, !(flags & SOCKETS_NO_CACHE));
	if (how)
		*how = did;
	return (int)n;
}

int sockets_listeners(struct sock_listener *out, size_t max)
{
	return sockets_list(out, max, 0, NULL);
}

int sockets_port_pid(uint16_t port)
{
	struct sock_listener *ls;
	int n, pid = -ENOENT;

	ls = calloc(SOCKETS_OWNERS_MAX, sizeof(*ls));
	if (!ls)
		return -ENOMEM;
	n = sockets_listeners(ls, SOCKETS_OWNERS_MAX);
	for (int i = 0; i < n; i++)
		if (ls[i].port == port && ls[i].pid > 0 && (pid < 0 || ls[i].pid < pid))
			pid = ls[i].pid;
	free(ls);
	return pid;
}
