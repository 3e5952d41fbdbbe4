/*
 * discovery - what one service discovery pass (sockets_listeners) costs on
 * a host with many connections, the old way and the new.
 *
 *   build/discovery [-n PAIRS] [-r RUNS] [-p PROCS] [-l LISTENERS]
 *
 * Opens PAIRS (default 10000) established TCP connections on loopback to a
 * listener of its own, the clients' ends held here and the server's in a
 * child process (so the host gains 2*PAIRS sockets and fds, and neither
 * process needs more than PAIRS + 256 of RLIMIT_NOFILE, raised if need be)
 * and, with -p, PROCS idle child processes (stdio only: the fd scan's
 * per-process cost) and, with -l, LISTENERS more listening sockets of its
 * own on loopback (the cached pass's per-listener cost). Then
 * times one listing RUNS times (default 7) in each of five ways,
 * interleaved:
 *
 *   old           main's sockets_listeners() before sock_diag, copied below:
 *                 /proc/net/tcp{,6}, then every fd of every process
 *   new           sock_diag + the owner cache, warm (what discovery does
 *                 every 5 s once the listeners are known)
 *   diag + scan   sock_diag, the fd scan without the cache (what a pass that
 *                 meets a new listener does; it stops once all are owned)
 *   proc + cache  /proc/net/tcp{,6}, the owner cache (sock_diag unavailable)
 *   proc + scan   /proc/net/tcp{,6}, the new fd scan without the cache
 *
 * and prints, per way, the median wall and CPU time (this process, user +
 * system: the kernel's work for /proc/net/tcp and for the dump is done in
 * our syscalls) in ms, with the listeners found. Everything is closed and
 * the children killed at exit. Loopback only; nothing is sent on the
 * connections. Run it alone (flock /tmp/hotpath-bench.lock ...): it is a
 * timing.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "hotpath/sockets.h"

#define DISC_MAX_PAIRS 100000
#define DISC_MAX_PROCS 4096
#define DISC_MAX_LISTENERS 1000
#define DISC_MAX_RUNS 101
#define DISC_WAYS 5

/* ---- the code before sock_diag (agent/observe/sockets.c at f081e23) as
 * the baseline: /proc/net/tcp{,6} (sockets_read_table(), which is still
 * the fallback), then every fd of every process, each socket fd compared
 * with every listener (kept here as it was). */

static void old_find_owners(struct sock_listener *ls, size_t n)
{
	DIR *proc = opendir("/proc");
	struct dirent *de;

	if (!proc)
		return;
	while ((de = readdir(proc)) != NULL) {
		char path[64], link[64];
		struct dirent *fe;
		DIR *fds;
		int pid;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = atoi(de->d_name);
		snprintf(path, sizeof(path), "/proc/%d/fd", pid);
		fds = opendir(path);
		if (!fds)
			continue;
		while ((fe = readdir(fds)) != NULL) {
			char lpath[300];
			ssize_t k;
			uint64_t ino;

			if (fe->d_name[0] == '.')
				continue;
			snprintf(lpath, sizeof(lpath), "/proc/%d/fd/%s", pid, fe->d_name);
			k = readlink(lpath, link, sizeof(link) - 1);
			if (k <= 8 || strncmp(link, "socket:[", 8) != 0)
				continue;
			link[k] = '\0';
			ino = strtoull(link + 8, NULL, 10);
			for (size_t i = 0; i < n; i++) {
				if (ls[i].inode != ino || (ls[i].pid && ls[i].pid < pid))
					continue;
				ls[i].pid = pid;
				snprintf(path, sizeof(path), "/proc/%d/comm", pid);
				FILE *cf = fopen(path, "re");

				if (cf) {
					if (fgets(ls[i].comm, sizeof(ls[i].comm), cf))
						ls[i].comm[strcspn(ls[i].comm, "\n")] = '\0';
					fclose(cf);
				}
			}
		}
		closedir(fds);
	}
	closedir(proc);
}

static int old_listeners(struct sock_listener *out, size_t max, unsigned flags, unsigned *how)
{
	size_t n = 0;
	int rc = sockets_read_table("/proc/net/tcp", out, max, &n);

	(void)flags;
	if (rc)
		return rc;
	(void)sockets_read_table("/proc/net/tcp6", out, max, &n);
	old_find_owners(out, n);
	*how = SOCKETS_FROM_PROC | SOCKETS_SCANNED;
	return (int)n;
}

static const struct {
	const char *name;
	int (*list)(struct sock_listener *out, size_t max, unsigned flags, unsigned *how);
	unsigned flags;
} ways[DISC_WAYS] = {
	{ "old (main's code)", old_listeners, 0 },
	{ "new (sock_diag + cache)", sockets_list, 0 },
	{ "sock_diag + fd scan", sockets_list, SOCKETS_NO_CACHE },
	{ "proc + cache", sockets_list, SOCKETS_FROM_PROC },
	{ "proc + fd scan", sockets_list, SOCKETS_FROM_PROC | SOCKETS_NO_CACHE },
};

static double ms_of(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int raise_nofile(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -errno;
	if (rl.rlim_cur >= want)
		return 0;
	rl.rlim_cur = want;
	if (rl.rlim_max < want)
		rl.rlim_max = want;   /* root only */
	return setrlimit(RLIMIT_NOFILE, &rl) == 0 ? 0 : -errno;
}

/* Entries of a /proc/net table (lines but the header). */
static long count_lines(const char *path)
{
	FILE *f = fopen(path, "re");
	long n = -1;
	int c;

	if (!f)
		return 0;
	while ((c = getc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n > 0 ? n : 0;
}

static long count_procs(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	long n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL)
		n += isdigit((unsigned char)de->d_name[0]) != 0;
	closedir(d);
	return n;
}

int main(int argc, char **argv)
{
	int pairs = 10000, runs = 7, procs = 0, nlisten = 0, opt, lfd, status = 1, nfd = 0, nkids = 0;
	int ready[2] = { -1, -1 };
	pid_t server;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t sl = sizeof(a);
	double wall[DISC_WAYS][DISC_MAX_RUNS], cpu[DISC_WAYS][DISC_MAX_RUNS];
	int found[DISC_WAYS] = { 0 };
	unsigned hows[DISC_WAYS] = { 0 };
	struct sock_listener *ls = NULL;
	pid_t *kids = NULL;
	int *fds = NULL;

	while ((opt = getopt(argc, argv, "n:r:p:l:")) != -1) {
		switch (opt) {
		case 'l': nlisten = atoi(optarg); break;
		case 'n': pairs = atoi(optarg); break;
		case 'r': runs = atoi(optarg); break;
		case 'p': procs = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: %s [-n PAIRS] [-r RUNS] [-p PROCS] [-l LISTENERS]\n",
				argv[0]);
			return 2;
		}
	}
	if (pairs < 0 || pairs > DISC_MAX_PAIRS || runs < 1 || runs > DISC_MAX_RUNS ||
	    procs < 0 || procs > DISC_MAX_PROCS || nlisten < 0 || nlisten > DISC_MAX_LISTENERS) {
		fprintf(stderr, "discovery: PAIRS 0..%d, RUNS 1..%d, PROCS 0..%d, LISTENERS 0..%d\n",
			DISC_MAX_PAIRS, DISC_MAX_RUNS, DISC_MAX_PROCS, DISC_MAX_LISTENERS);
		return 2;
	}
	if (raise_nofile((rlim_t)(pairs + nlisten) + 256) != 0) {
		fprintf(stderr, "discovery: cannot raise RLIMIT_NOFILE to %d: %s\n",
			pairs + nlisten + 256, strerror(errno));
		return 1;
	}
	fds = calloc((size_t)(pairs + nlisten) + 1, sizeof(*fds));
	kids = calloc((size_t)procs + 2, sizeof(*kids));
	ls = calloc(SOCKETS_OWNERS_MAX, sizeof(*ls));
	if (!fds || !kids || !ls)
		goto cleanup;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 4096) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &sl) != 0) {
		perror("discovery: listener");
		goto cleanup;
	}
	fds[nfd++] = lfd;
	/* the server's ends in a child: each process holds PAIRS fds */
	if (pipe2(ready, O_CLOEXEC) != 0) {
		perror("discovery: pipe");
		goto cleanup;
	}
	server = fork();
	if (server < 0) {
		perror("discovery: fork");
		goto cleanup;
	}
	if (server == 0) {
		char c = 1;

		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (int i = 0; i < pairs; i++)
			if (accept4(lfd, NULL, NULL, SOCK_CLOEXEC) < 0)
				_exit(1);
		if (write(ready[1], &c, 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	kids[nkids++] = server;
	close(ready[1]);
	for (int i = 0; i < pairs; i++) {
		int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) != 0) {
			fprintf(stderr, "discovery: connection %d: %s\n", i, strerror(errno));
			if (c >= 0)
				close(c);
			goto cleanup;
		}
		fds[nfd++] = c;
	}
	{
		char c;

		if (read(ready[0], &c, 1) != 1) {
			fprintf(stderr, "discovery: the server process did not accept them all\n");
			goto cleanup;
		}
	}
	for (int i = 0; i < nlisten; i++) {
		struct sockaddr_in b = { .sin_family = AF_INET };
		int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		b.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (l < 0 || bind(l, (struct sockaddr *)&b, sizeof(b)) != 0 || listen(l, 1) != 0) {
			perror("discovery: extra listener");
			if (l >= 0)
				close(l);
			goto cleanup;
		}
		fds[nfd++] = l;
	}
	for (int i = 0; i < procs; i++) {
		pid_t p = fork();

		if (p < 0) {
			perror("discovery: fork");
			goto cleanup;
		}
		if (p == 0) {
			/* idle, with stdio only; dies with the parent */
			(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
			(void)close_range(3, ~0u, 0);
			pause();
			_exit(0);
		}
		kids[nkids++] = p;
	}

	printf("discovery: %d established pairs on 127.0.0.1:%u, %d idle processes, %d runs; "
	       "the host has %ld TCP sockets, %ld processes\n", pairs, ntohs(a.sin_port), procs,
	       runs, count_lines("/proc/net/tcp") + count_lines("/proc/net/tcp6"), count_procs());
	/* a first call fills the owner cache (the cold cost, printed) */
	{
		unsigned how = 0;
		double w0 = ms_of(CLOCK_MONOTONIC), c0 = ms_of(CLOCK_PROCESS_CPUTIME_ID);
		int n = sockets_list(ls, SOCKETS_OWNERS_MAX, 0, &how);

		printf("  %-28s %8.2f ms wall %8.2f ms CPU  (%d listeners, how 0x%x)\n",
		       "new, first call (cold)", ms_of(CLOCK_MONOTONIC) - w0,
		       ms_of(CLOCK_PROCESS_CPUTIME_ID) - c0, n, how);
	}
	for (int r = 0; r < runs; r++) {
		for (int w = 0; w < DISC_WAYS; w++) {
			double w0 = ms_of(CLOCK_MONOTONIC), c0 = ms_of(CLOCK_PROCESS_CPUTIME_ID);
			unsigned how = 0;
			int n = ways[w].list(ls, SOCKETS_OWNERS_MAX, ways[w].flags, &how);

			wall[w][r] = ms_of(CLOCK_MONOTONIC) - w0;
			cpu[w][r] = ms_of(CLOCK_PROCESS_CPUTIME_ID) - c0;
			if (n < 0) {
				fprintf(stderr, "discovery: %s: %s\n", ways[w].name, strerror(-n));
				goto cleanup;
			}
			found[w] = n;
			hows[w] |= how;
		}
	}
	printf("  %-28s %8s %8s  %s\n", "way (median of runs)", "wall ms", "CPU ms", "listeners, how");
	for (int w = 0; w < DISC_WAYS; w++)
		printf("  %-28s %8.2f %8.2f  %d, 0x%x\n", ways[w].name, median(wall[w], runs),
		       median(cpu[w], runs), found[w], hows[w]);
	status = 0;
cleanup:
	for (int i = 0; i < nkids; i++)
		kill(kids[i], SIGKILL);
	for (int i = 0; i < nkids; i++)
		(void)waitpid(kids[i], NULL, 0);
	for (int i = 0; i < nfd; i++) {
		/* reset, not FIN: no TIME_WAIT sockets left to skew the next run */
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		(void)setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fds[i]);
	}
	if (ready[0] >= 0)
		close(ready[0]);
	free(fds);
	free(kids);
	free(ls);
	return status;
}
