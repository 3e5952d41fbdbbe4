/*
 * sockets.c - listening TCP sockets and their processes, from /proc.
 *
 * /proc/net/tcp{,6} give LISTEN sockets (state 0A) with their inode; the
 * owner is found by reading the links in /proc/PID/fd ("socket:[INODE]").
 * The fd scan touches every process once per call, so callers use it on
 * demand (an API request, a discovery pass every few seconds), never per
 * packet. Without privileges other users' fds are unreadable: such sockets
 * are listed with pid 0.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hotpath/sockets.h"

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

static int read_table(const char *path, struct sock_listener *out, size_t max, size_t *n)
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

/* Fill pid/comm of each listener by scanning /proc/PID/fd once. */
static void find_owners(struct sock_listener *ls, size_t n)
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

int sockets_listeners(struct sock_listener *out, size_t max)
{
	size_t n = 0;
	int rc = read_table("/proc/net/tcp", out, max, &n);

	if (rc)
		return rc;
	(void)read_table("/proc/net/tcp6", out, max, &n); /* no IPv6 is fine */
	find_owners(out, n);
	return (int)n;
}

int sockets_port_pid(uint16_t port)
{
	struct sock_listener *ls;
	int n, pid = -ENOENT;

	ls = calloc(4096, sizeof(*ls));
	if (!ls)
		return -ENOMEM;
	n = sockets_listeners(ls, 4096);
	for (int i = 0; i < n; i++)
		if (ls[i].port == port && ls[i].pid > 0 && (pid < 0 || ls[i].pid < pid))
			pid = ls[i].pid;
	free(ls);
	return pid;
}
