/*
 * cgroup.h - where the cgroup v2 hierarchy is mounted.
 */
#ifndef HOTPATH_CGROUP_H
#define HOTPATH_CGROUP_H

#include <stddef.h>

/*
 * Mount point of the cgroup v2 hierarchy (its root, "/" inside the
 * hierarchy): /sys/fs/cgroup on a unified system, /sys/fs/cgroup/unified
 * on a hybrid one. 0, or -ENOENT when none is mounted.
 */
int cgroup2_mountpoint(char *out, size_t outlen);

#endif
