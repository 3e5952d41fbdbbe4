/*
 * pressure.c - reading host memory pressure and deciding the L1 budget
 * (see include/hotpath/pressure.h for the policy).
 *
 * Polling PSI once a second rather than registering a PSI trigger keeps
 * this working unprivileged and inside containers where triggers are not
 * allowed; a one-second reaction is ample for a cache that only has to
 * give memory back before the host is in trouble.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/pressure.h"

unsigned pressure_next_permille(unsigned cur, const struct pressure_sample *s)
{
	bool high = false, low = true;

	if (cur > 1000)
		cur = 1000;
	if (s->have_psi) {
		high |= s->some_avg10 > PRESSURE_HIGH_PSI;
		low &= s->some_avg10 < PRESSURE_LOW_PSI;
	}
	if (s->have_cgroup && s->cg_max > 0) {
		double share = (double)s->cg_current / (double)s->cg_max;

		high |= share > PRESSURE_CG_HIGH;
		low &= share < PRESSURE_CG_LOW;
	}
	if (high)
		return cur >= PRESSURE_MIN_PERMILLE + 100 ? cur - 100 : PRESSURE_MIN_PERMILLE;
	if (low)
		return cur + 50 >= 1000 ? 1000 : cur + 50;
	return cur;
}

static int read_small_file(const char *path, char *out, size_t outlen)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return -errno;
	n = fread(out, 1, outlen - 1, f);
	fclose(f);
	out[n] = '\0';
	return 0;
}

static int read_psi(struct pressure_sample *s)
{
	char text[512];
	const char *p;

	if (read_small_file("/proc/pressure/memory", text, sizeof(text)) != 0)
		return -ENOENT;
	p = strstr(text, "some avg10=");
	if (!p)
		return -EINVAL;
	s->some_avg10 = strtod(p + strlen("some avg10="), NULL);
	s->have_psi = true;
	return 0;
}

static int read_cgroup(struct pressure_sample *s)
{
	char cg[512], path[1024], val[64];
	char *rel, *nl;

	if (read_small_file("/proc/self/cgroup", cg, sizeof(cg)) != 0)
		return -ENOENT;
	rel = strstr(cg, "0::");        /* the cgroup v2 line */
	if (!rel)
		return -ENOENT;
	rel += 3;
	nl = strchr(rel, '\n');
	if (nl)
		*nl = '\0';
	snprintf(path, sizeof(path), "/sys/fs/cgroup%s/memory.max", rel);
	if (read_small_file(path, val, sizeof(val)) != 0 || strncmp(val, "max", 3) == 0)
		return -ENOENT;
	s->cg_max = strtoull(val, NULL, 10);
	snprintf(path, sizeof(path), "/sys/fs/cgroup%s/memory.current", rel);
	if (read_small_file(path, val, sizeof(val)) != 0)
		return -ENOENT;
	s->cg_current = strtoull(val, NULL, 10);
	s->have_cgroup = s->cg_max > 0;
	return 0;
}

int pressure_read(struct pressure_sample *s)
{
	int a, b;

	memset(s, 0, sizeof(*s));
	a = read_psi(s);
	b = read_cgroup(s);
	return (a == 0 || b == 0) ? 0 : a;
}
