/*
 * features.c - kernel feature probes (see include/hotpath/features.h).
 *
 * Each probe asks the kernel directly (libbpf's libbpf_probe_bpf_* helpers,
 * statfs magic numbers, a perf_event_open of the software cpu-clock), the
 * way bcc's trace_helpers.c does, instead of guessing from the kernel
 * version. When running as root and tracefs or bpffs are not mounted, they
 * are mounted at their standard places, since tracepoint attachment and
 * map pinning need them.
 */
#include <errno.h>
#include <linux/perf_event.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "hotpath/features.h"
#include "hotpath/log.h"

#ifndef TRACEFS_MAGIC
#define TRACEFS_MAGIC 0x74726163
#endif
#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif

static void add(struct hp_daemon *d, const char *name, bool ok, const char *fmt, ...)
	HP_PRINTF(4, 5);

static void add(struct hp_daemon *d, const char *name, bool ok, const char *fmt, ...)
{
	struct hp_feature *f;
	va_list ap;

	if (d->n_features >= HP_MAX_FEATURES)
		return;
	f = &d->features[d->n_features++];
	f->name = name;
	f->available = ok;
	f->reason[0] = '\0';
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(f->reason, sizeof(f->reason), fmt, ap);
		va_end(ap);
	}
	if (!ok)
		log_warn("feature %s unavailable: %s", name, f->reason);
	else
		log_debug("feature %s available", name);
}

static bool fs_is(const char *path, long magic)
{
	struct statfs st;

	return statfs(path, &st) == 0 && (long)st.f_type == magic;
}

static int ensure_mount(const char *path, const char *type, long magic)
{
	if (fs_is(path, magic))
		return 0;
	if (geteuid() != 0)
		return -EPERM;
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return -errno;
	if (mount(type, path, type, 0, NULL) != 0)
		return -errno;
	log_info("mounted %s at %s", type, path);
	return fs_is(path, magic) ? 0 : -ENODEV;
}

/* libbpf prints through this: keep its chatter at debug level. */
static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[1024];
	size_t n;

	if (level == LIBBPF_DEBUG && log_get_level() < HP_LOG_DEBUG)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	log_debug("libbpf: %s", line);
	return 0;
}

static bool perf_cpu_clock(char *why, size_t whylen)
{
	struct perf_event_attr attr = {
		.type = PERF_TYPE_SOFTWARE,
		.size = sizeof(attr),
		.config = PERF_COUNT_SW_CPU_CLOCK,
		.sample_freq = 49,
		.freq = 1,
		.disabled = 1,
	};
	int fd = (int)syscall(__NR_perf_event_open, &attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC);

	if (fd < 0) {
		snprintf(why, whylen, "perf_event_open(cpu-clock): %s", strerror(errno));
		return false;
	}
	close(fd);
	return true;
}

void features_probe(struct hp_daemon *d, bool bpf_wanted)
{
	char why[160];
	int rc;

	d->n_features = 0;
	libbpf_set_print(libbpf_print);
	if (!bpf_wanted) {
		add(d, "bpf", false, "switched off by bpf.enabled = no");
	} else {
		rc = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_TRACEPOINT, NULL);
		if (rc == 1)
			add(d, "bpf", true, NULL);
		else
			add(d, "bpf", false, "cannot load BPF programs: %s",
			    rc == 0 ? "program type unsupported"
				    : (geteuid() ? "not running as root (needs CAP_BPF, CAP_PERFMON)"
						 : strerror(-rc)));
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK) == 0)
		add(d, "btf", true, NULL);
	else
		add(d, "btf", false, "/sys/kernel/btf/vmlinux missing: CO-RE programs cannot load");

	rc = ensure_mount("/sys/kernel/tracing", "tracefs", TRACEFS_MAGIC);
	if (rc == 0 && access("/sys/kernel/tracing/events/syscalls", R_OK) == 0)
		add(d, "tracefs", true, NULL);
	else if (rc == 0)
		add(d, "tracefs", false, "syscall tracepoints not readable in /sys/kernel/tracing/events");
	else
		add(d, "tracefs", false, "tracefs not mounted at /sys/kernel/tracing and cannot mount it: %s",
		    strerror(-rc));

	rc = ensure_mount("/sys/fs/bpf", "bpf", BPF_FS_MAGIC);
	if (rc == 0)
		add(d, "bpffs", true, NULL);
	else
		add(d, "bpffs", false, "bpffs not mounted at /sys/fs/bpf and cannot mount it: %s",
		    strerror(-rc));

	if (features_has(d, "bpf")) {
		rc = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, NULL);
		add(d, "ringbuf", rc == 1, rc == 1 ? NULL : "BPF ring buffer maps unsupported");
		rc = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_SOCKHASH, NULL);
		add(d, "sockmap", rc == 1, rc == 1 ? NULL : "sockhash maps unsupported");
	}
	why[0] = '\0';
	if (perf_cpu_clock(why, sizeof(why)))
		add(d, "perf_event", true, NULL);
	else
		add(d, "perf_event", false, "%s", why);
	if (access("/proc/pressure/memory", R_OK) == 0)
		add(d, "psi", true, NULL);
	else
		add(d, "psi", false, "/proc/pressure/memory unreadable: memory pressure from cgroup only");
}

bool features_has(const struct hp_daemon *d, const char *name)
{
	for (unsigned i = 0; i < d->n_features; i++)
		if (!strcmp(d->features[i].name, name))
			return d->features[i].available;
	return false;
}
