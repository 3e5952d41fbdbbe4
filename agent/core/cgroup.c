/*
 * cgroup.c - find the cgroup v2 hierarchy in /proc/self/mountinfo.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "hotpath/cgroup.h"

int cgroup2_mountpoint(char *out, size_t outlen)
{
	char line[1024];
	FILE *f = fopen("/proc/self/mountinfo", "re");
	int ret = -ENOENT;

	if (!f)
		return -errno;
	/* "36 25 0:31 / /sys/fs/cgroup rw,... - cgroup2 cgroup2 rw": field 4 is
	 * the root inside the hierarchy, field 5 the mount point. */
	while (ret && fgets(line, sizeof(line), f)) {
		char *fields[5], *save = NULL, *t;
		int i = 0;

		if (!strstr(line, " - cgroup2 "))
			continue;
		for (t = strtok_r(line, " ", &save); t && i < 5; t = strtok_r(NULL, " ", &save))
			fields[i++] = t;
		if (i == 5 && strcmp(fields[3], "/") == 0 &&
		    (size_t)snprintf(out, outlen, "%s", fields[4]) < outlen)
			ret = 0;
	}
	fclose(f);
	return ret;
}
