/*
 * profile.c - loader and sampling windows for bpf/profile.bpf.c.
 *
 * Skeleton lifecycle as everywhere: open -> rodata (include_idle) -> load ->
 * attach, one cleanup path. Attaching means one perf_event_open of the
 * software cpu-clock per online CPU (no hardware PMU is needed) with the
 * program attached to each. The events are then disabled at once and stay
 * so between windows: a window clears the counts and the stack map (fewer
 * stack-id collisions, no stale ids), writes the process filter (a mode
 * in the program's .bss, a set of tgids in profile_pids: one process, or a
 * service's tree as /proc shows it) and enables the events, sleeps,
 * disables them, and reads the map once. So an idle profiler costs
 * nothing, and the counts are exactly the window's.
 *
 * Reading groups the counted keys by process: /proc/PID/maps is read once
 * per process that has user frames and ELF files are shared through one
 * symbol cache that lives as long as the profiler; kernel frames come from
 * /proc/kallsyms, reloaded when older than five minutes (modules come and
 * go). A process that exited during the window keeps its samples, with
 * "[unknown]" user frames. Return addresses (every frame but the leaf) are
 * looked up at addr-1 so that a call at the very end of a function is
 * attributed to the caller, not to the next function.
 *
 * Not done: DWARF or LBR unwinding (frame pointers only: code built without
 * them shows short user stacks), per-thread breakdown, continuous profiling.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <linux/types.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "hotpath/profile.h"
#include "hotpath/profile_events.h"
#include "hotpath/symbolize.h"
#include "profile.skel.h"

#define KSYMS_MAX_AGE_MS (5 * 60 * 1000)
#define PROFILE_STACK_ENTRIES 8192
#define PROFILE_COUNT_ENTRIES 10240

struct profiler {
	struct profile_bpf *skel;
	int ncpus;                  /* entries in pfds/links */
	int *pfds;                  /* owned by links once attached */
	struct bpf_link **links;
	int nposs;                  /* possible CPUs, for per-CPU values */
	unsigned hz;
	bool pinned;
	int counts_fd, stacks_fd, stats_fd, pids_fd;

	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool active;                /* a window is open */
	bool cancel;
	int pid;
	bool tree;
	uint64_t started_ms;

	struct sym_cache *cache;
	struct sym_kernel *ksyms;
	uint64_t ksyms_ms;
};

/* "0-3,5,7-8" -> mask; returns the number of CPUs set, -errno. */
static int online_cpus(bool *mask, int max)
{
	char text[1024], *p, *end;
	int n = 0;
	FILE *f = fopen("/sys/devices/system/cpu/online", "re");

	if (!f)
		return -errno;
	if (!fgets(text, sizeof(text), f)) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	for (p = text; *p && *p != '\n';) {
		long a = strtol(p, &end, 10), b = a;

		if (end == p)
			return -EINVAL;
		p = end;
		if (*p == '-') {
			b = strtol(p + 1, &end, 10);
			if (end == p + 1)
				return -EINVAL;
			p = end;
		}
		for (long c = a; c <= b && c < max; c++) {
			if (c >= 0 && !mask[c]) {
				mask[c] = true;
				n++;
			}
		}
		if (*p == ',')
			p++;
		else if (*p && *p != '\n')
			return -EINVAL;
	}
	return n;
}

static int set_events(struct profiler *p, unsigned long req)
{
	int err = 0;

	for (int i = 0; i < p->ncpus; i++) {
		if (p->pfds[i] >= 0 && ioctl(p->pfds[i], req, 0) != 0)
			err = -errno;
	}
	return err;
}

struct profiler *profiler_new(unsigned hz, const char *pin_path, char *why, size_t whylen)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	struct perf_event_attr attr;
	struct profiler *p;
	bool *online = NULL;
	int err, attached = 0;

	if (hz == 0)
		hz = PROFILER_DEFAULT_HZ;
	if (hz > PROFILER_MAX_HZ) {
		snprintf(why, whylen, "profile frequency %u Hz is above the %u Hz limit", hz,
			 PROFILER_MAX_HZ);
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&p->lock, NULL);
	hp_cond_init_monotonic(&p->wake);
	p->hz = hz;
	p->nposs = libbpf_num_possible_cpus();
	if (p->nposs <= 0) {
		snprintf(why, whylen, "cannot count possible CPUs");
		goto fail;
	}
	if (pin_path && pin_path[0]) {
		if (mkdir(pin_path, 0700) != 0 && errno != EEXIST) {
			snprintf(why, whylen, "cannot create pin directory %s: %s", pin_path,
				 strerror(errno));
			goto fail;
		}
		opts.pin_root_path = pin_path;
	}
	p->skel = profile_bpf__open_opts(&opts);
	if (!p->skel) {
		snprintf(why, whylen, "cannot open BPF object profile: %s", strerror(errno));
		goto fail;
	}
	p->skel->rodata->include_idle = false;
	if (bpf_map__set_max_entries(p->skel->maps.profile_stacks, PROFILE_STACK_ENTRIES) ||
	    bpf_map__set_max_entries(p->skel->maps.profile_counts, PROFILE_COUNT_ENTRIES)) {
		snprintf(why, whylen, "cannot size the profile maps");
		goto fail;
	}
	if (!(pin_path && pin_path[0])) {
		bpf_map__set_pin_path(p->skel->maps.profile_stacks, NULL);
		bpf_map__set_pin_path(p->skel->maps.profile_counts, NULL);
		bpf_map__set_pin_path(p->skel->maps.profile_stats, NULL);
	}
	err = profile_bpf__load(p->skel);
	if (err) {
		snprintf(why, whylen, "kernel refused to load the profiler: %s%s", strerror(-err),
			 err == -EPERM ? " (needs CAP_BPF and CAP_PERFMON, or root)" : "");
		goto fail;
	}
	p->pinned = pin_path && pin_path[0];
	if (!p->skel->bss) {
		snprintf(why, whylen, "kernel cannot mmap BPF global data (needs Linux 5.5+)");
		goto fail;
	}

	p->ncpus = p->nposs;
	online = calloc((size_t)p->ncpus, sizeof(*online));
	p->pfds = malloc((size_t)p->ncpus * sizeof(*p->pfds));
	p->links = calloc((size_t)p->ncpus, sizeof(*p->links));
	if (!online || !p->pfds || !p->links) {
		snprintf(why, whylen, "out of memory");
		goto fail;
	}
	for (int i = 0; i < p->ncpus; i++)
		p->pfds[i] = -1;
	err = online_cpus(online, p->ncpus);
	if (err <= 0) {
		snprintf(why, whylen, "cannot read the online CPUs: %s",
			 strerror(err ? -err : ENOENT));
		goto fail;
	}
	memset(&attr, 0, sizeof(attr));
	attr.type = PERF_TYPE_SOFTWARE;
	attr.size = sizeof(attr);
	attr.config = PERF_COUNT_SW_CPU_CLOCK;
	attr.freq = 1;
	attr.sample_freq = hz;
	attr.disabled = 1;
	for (int cpu = 0; cpu < p->ncpus; cpu++) {
		int fd;

		if (!online[cpu])
			continue;
		fd = (int)syscall(__NR_perf_event_open, &attr, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
		if (fd < 0) {
			if (errno == ENODEV)   /* went offline meanwhile */
				continue;
			snprintf(why, whylen, "perf_event_open(cpu-clock, cpu %d): %s%s", cpu,
				 strerror(errno),
				 errno == EACCES || errno == EPERM ? " (needs CAP_PERFMON or root)" :
				 errno == ENOENT || errno == EOPNOTSUPP ?
				 " (no software perf events in this kernel)" : "");
			goto fail;
		}
		p->links[cpu] = bpf_program__attach_perf_event(p->skel->progs.hp_profile_sample, fd);
		if (!p->links[cpu]) {
			err = -errno;
			close(fd);
			snprintf(why, whylen, "cannot attach the profiler to cpu %d: %s", cpu,
				 strerror(-err));
			goto fail;
		}
		p->pfds[cpu] = fd;     /* the link owns it now */
		attached++;
	}
	if (!attached) {
		snprintf(why, whylen, "no online CPU accepted a cpu-clock perf event");
		goto fail;
	}
	/* attach enabled them; sample only inside windows */
	err = set_events(p, PERF_EVENT_IOC_DISABLE);
	if (err) {
		snprintf(why, whylen, "cannot pause the cpu-clock events: %s", strerror(-err));
		goto fail;
	}
	p->counts_fd = bpf_map__fd(p->skel->maps.profile_counts);
	p->stacks_fd = bpf_map__fd(p->skel->maps.profile_stacks);
	p->stats_fd = bpf_map__fd(p->skel->maps.profile_stats);
	p->pids_fd = bpf_map__fd(p->skel->maps.profile_pids);
	p->cache = sym_cache_new(0, 0);
	if (!p->cache) {
		snprintf(why, whylen, "out of memory");
		goto fail;
	}
	free(online);
	return p;
fail:
	free(online);
	profiler_free(p);
	return NULL;
}

unsigned profiler_hz(const struct profiler *p)
{
	return p->hz;
}

void profiler_free(struct profiler *p)
{
	if (!p)
		return;
	if (p->links) {
		for (int i = 0; i < p->ncpus; i++)
			bpf_link__destroy(p->links[i]);    /* closes the perf fd too */
	}
	if (p->skel) {
		if (p->pinned) {
			bpf_map__unpin(p->skel->maps.profile_counts, NULL);
			bpf_map__unpin(p->skel->maps.profile_stacks, NULL);
			bpf_map__unpin(p->skel->maps.profile_stats, NULL);
		}
		profile_bpf__destroy(p->skel);
	}
	sym_kernel_free(p->ksyms);
	sym_cache_free(p->cache);
	free(p->links);
	free(p->pfds);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* Delete every key of a map. Keys are gathered first: deleting while
 * walking would restart the walk. Sampling is paused meanwhile. */
static int map_clear(int fd, size_t key_size, size_t max)
{
	char *keys = malloc(max * key_size);
	size_t n = 0;
	void *prev = NULL;
	int err = 0;

	if (!keys)
		return -ENOMEM;
	while (n < max && bpf_map_get_next_key(fd, prev, keys + n * key_size) == 0) {
		prev = keys + n * key_size;
		n++;
	}
	for (size_t i = 0; i < n; i++) {
		if (bpf_map_delete_elem(fd, keys + i * key_size) != 0 && errno != ENOENT)
			err = -errno;
	}
	free(keys);
	return err;
}

/* A process's parent, from /proc/PID/stat ("pid (comm) state ppid ...",
 * comm may hold spaces and parentheses); -1 if it is gone. */
static int proc_ppid(const char *pid)
{
	char path[64], text[512], *p, *end;
	ssize_t n;
	long ppid;
	int fd;

	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	text[n] = '\0';
	p = strrchr(text, ')');
	if (!p || p[1] != ' ' || !p[2] || p[3] != ' ')
		return -1;
	ppid = strtol(p + 4, &end, 10);
	return end > p + 4 && *end == ' ' && ppid >= 0 && ppid <= INT32_MAX ? (int)ppid : -1;
}

/* root and its descendants, as /proc shows them now, into the window's set
 * (at most PROFILE_PIDS_MAX; the kernel adds children forked later). */
static int set_tree(struct profiler *p, int root)
{
	struct proc_pair { int pid, ppid; } *all = NULL, *grown;
	size_t n = 0, cap = 0, k = 1;
	__u32 *set, one = 1;
	struct dirent *de;
	int err = 0;
	DIR *d;

	set = calloc(PROFILE_PIDS_MAX, sizeof(*set));
	d = opendir("/proc");
	if (!set || !d) {
		err = set ? -errno : -ENOMEM;
		goto done;
	}
	while ((de = readdir(d))) {
		int ppid;

		if (de->d_name[0] < '1' || de->d_name[0] > '9' ||
		    (ppid = proc_ppid(de->d_name)) <= 0)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 512;
			grown = realloc(all, cap * sizeof(*all));
			if (!grown) {
				err = -ENOMEM;
				goto done;
			}
			all = grown;
		}
		all[n].pid = atoi(de->d_name);
		all[n++].ppid = ppid;
	}
	set[0] = (__u32)root;
	for (size_t i = 0; i < k; i++)          /* breadth first: set[] is the queue */
		for (size_t j = 0; j < n && k < PROFILE_PIDS_MAX; j++)
			if (all[j].ppid == (int)set[i])
				set[k++] = (__u32)all[j].pid;
	for (size_t i = 0; i < k && !err; i++)
		if (bpf_map_update_elem(p->pids_fd, &set[i], &one, BPF_ANY) != 0)
			err = -errno;
done:
	if (d)
		closedir(d);
	free(all);
	free(set);
	return err;
}

int profiler_begin(struct profiler *p, int pid, bool tree)
{
	struct profile_stats *zero;
	__u32 key = 0;
	int err;

	if (pid < 0)
		return -EINVAL;
	if (pid > 0 && kill(pid, 0) != 0 && errno == ESRCH)
		return -ESRCH;
	pthread_mutex_lock(&p->lock);
	if (p->active) {
		pthread_mutex_unlock(&p->lock);
		return -EBUSY;
	}
	p->active = true;
	p->cancel = false;
	pthread_mutex_unlock(&p->lock);

	err = map_clear(p->counts_fd, sizeof(struct profile_key), PROFILE_COUNT_ENTRIES);
	if (!err)
		err = map_clear(p->stacks_fd, sizeof(__u32), PROFILE_STACK_ENTRIES);
	zero = calloc((size_t)p->nposs, sizeof(*zero));
	if (!zero)
		err = -ENOMEM;
	else if (!err && bpf_map_update_elem(p->stats_fd, &key, zero, BPF_ANY) != 0)
		err = -errno;
	free(zero);
	if (!err)
		err = map_clear(p->pids_fd, sizeof(__u32), PROFILE_PIDS_MAX);
	if (!err && pid && tree) {
		err = set_tree(p, pid);
	} else if (!err && pid) {
		__u32 one = 1, tgid = (__u32)pid;

		if (bpf_map_update_elem(p->pids_fd, &tgid, &one, BPF_ANY) != 0)
			err = -errno;
	}
	if (!err) {
		p->skel->bss->filter_mode = !pid ? PROFILE_ALL : tree ? PROFILE_TREE : PROFILE_PIDS;
		p->pid = pid;
		p->tree = pid && tree;
		p->started_ms = hp_now_ms();
		err = set_events(p, PERF_EVENT_IOC_ENABLE);
	}
	if (err) {
		(void)set_events(p, PERF_EVENT_IOC_DISABLE);
		pthread_mutex_lock(&p->lock);
		p->active = false;
		pthread_mutex_unlock(&p->lock);
	}
	return err;
}

struct counted {
	struct profile_key key;
	__u64 samples;
};

static int counted_cmp(const void *a, const void *b)
{
	const struct counted *x = a, *y = b;

	return x->key.tgid < y->key.tgid ? -1 : x->key.tgid > y->key.tgid;
}

/* The kernel's frames for one stack id, innermost first; 0 if none. */
static unsigned read_stack(struct profiler *p, __s32 id, __u64 *ips)
{
	unsigned n = 0;

	if (id < 0 || bpf_map_lookup_elem(p->stacks_fd, &id, ips) != 0)
		return 0;
	while (n < PROFILE_MAX_DEPTH && ips[n])
		n++;
	return n;
}

static void refresh_ksyms(struct profiler *p)
{
	uint64_t now = hp_now_ms();
	struct sym_kernel *k;

	if (p->ksyms && now - p->ksyms_ms < KSYMS_MAX_AGE_MS)
		return;
	k = sym_kernel_load(NULL);
	if (k) {
		sym_kernel_free(p->ksyms);
		p->ksyms = k;
	}
	p->ksyms_ms = now;
}

/* Names live in `names` (one slot per frame, NAME_LEN each). */
#define NAME_LEN 256
#define MAX_FRAMES (2 * PROFILE_MAX_DEPTH + 2)

static int add_counted(struct profiler *p, struct profile_result *r, const struct counted *c,
		       struct sym_proc *sp, __u64 *ips, char (*names)[NAME_LEN])
{
	const char *frames[MAX_FRAMES];
	uint8_t kinds[MAX_FRAMES];
	char comm[PROFILE_COMM_LEN + 1];
	size_t nf = 0;
	unsigned n;

	/* user part, outermost first */
	if (c->key.user_stack_id >= 0) {
		n = read_stack(p, c->key.user_stack_id, ips);
		for (unsigned i = n; i-- > 0;) {
			if (sp)
				sym_proc_resolve(sp, i ? ips[i] - 1 : ips[i], names[nf], NAME_LEN);
			else
				snprintf(names[nf], NAME_LEN, "[unknown]");
			frames[nf] = names[nf];
			kinds[nf++] = PROFILE_FRAME_USER;
		}
	} else if (c->key.user_stack_id != -EFAULT) {
		snprintf(names[nf], NAME_LEN, "[missing user stack]");
		frames[nf] = names[nf];
		kinds[nf++] = PROFILE_FRAME_USER;
	}
	if (c->key.kern_stack_id >= 0) {
		n = read_stack(p, c->key.kern_stack_id, ips);
		if (n)
			refresh_ksyms(p);
		for (unsigned i = n; i-- > 0;) {
			const char *s = sym_kernel_resolve(p->ksyms, i ? ips[i] - 1 : ips[i], NULL);

			snprintf(names[nf], NAME_LEN, "%s", s ? s : "[unknown]");
			frames[nf] = names[nf];
			kinds[nf++] = PROFILE_FRAME_KERNEL;
		}
	} else if (c->key.kern_stack_id != -EFAULT) {
		snprintf(names[nf], NAME_LEN, "[missing kernel stack]");
		frames[nf] = names[nf];
		kinds[nf++] = PROFILE_FRAME_KERNEL;
	}
	memcpy(comm, c->key.comm, PROFILE_COMM_LEN);
	comm[PROFILE_COMM_LEN] = '\0';
	return profile_result_add(r, c->key.tgid, comm, frames, kinds, nf, c->samples);
}

int profiler_end(struct profiler *p, unsigned seconds, struct profile_result **out)
{
	struct counted *cs = NULL;
	struct profile_stats *stats = NULL;
	struct profile_result *r = NULL;
	char (*names)[NAME_LEN] = NULL;
	__u64 *ips = NULL;
	struct profile_key k, *prev = NULL;
	size_t n = 0;
	__u32 zero = 0;
	int err;

	*out = NULL;
	pthread_mutex_lock(&p->lock);
	err = p->active ? 0 : -EINVAL;
	pthread_mutex_unlock(&p->lock);
	if (err)
		return err;
	err = set_events(p, PERF_EVENT_IOC_DISABLE);
	if (err)
		goto done;
	r = profile_result_new(p->pid, p->hz, seconds);
	if (r)
		r->tree = p->tree;
	cs = calloc(PROFILE_COUNT_ENTRIES, sizeof(*cs));
	stats = calloc((size_t)p->nposs, sizeof(*stats));
	ips = calloc(PROFILE_MAX_DEPTH, sizeof(*ips));
	names = calloc(MAX_FRAMES, sizeof(*names));
	if (!r || !cs || !stats || !ips || !names) {
		err = -ENOMEM;
		goto done;
	}
	r->duration_ms = hp_now_ms() - p->started_ms;
	if (bpf_map_lookup_elem(p->stats_fd, &zero, stats) == 0) {
		for (int i = 0; i < p->nposs; i++) {
			r->lost_samples += stats[i].counts_full;
			r->lost_stacks += stats[i].user_stack_lost + stats[i].kern_stack_lost;
		}
	}
	while (n < PROFILE_COUNT_ENTRIES && bpf_map_get_next_key(p->counts_fd, prev, &k) == 0) {
		struct profile_count v;

		cs[n].key = k;
		prev = &cs[n].key;
		if (bpf_map_lookup_elem(p->counts_fd, &k, &v) != 0)
			continue;
		cs[n].samples = v.samples;
		n++;
	}
	qsort(cs, n, sizeof(*cs), counted_cmp);
	for (size_t i = 0; i < n && !err;) {
		struct sym_proc *sp = NULL;
		size_t j;

		if (cs[i].key.tgid != 0)
			sp = sym_proc_open(p->cache, (int)cs[i].key.tgid);
		for (j = i; j < n && cs[j].key.tgid == cs[i].key.tgid && !err; j++)
			err = add_counted(p, r, &cs[j], sp, ips, names);
		sym_proc_free(sp);
		i = j;
	}
done:
	pthread_mutex_lock(&p->lock);
	p->active = false;
	pthread_mutex_unlock(&p->lock);
	free(cs);
	free(stats);
	free(ips);
	free(names);
	if (err) {
		profile_result_free(r);
		return err;
	}
	*out = r;
	return 0;
}

void profiler_cancel(struct profiler *p)
{
	pthread_mutex_lock(&p->lock);
	p->cancel = true;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
}

int profiler_collect(struct profiler *p, int pid, bool tree, unsigned seconds,
		     struct profile_result **out)
{
	struct timespec until;
	int err;

	*out = NULL;
	if (seconds == 0 || seconds > PROFILER_MAX_SECONDS || pid < 0)
		return -EINVAL;
	err = profiler_begin(p, pid, tree);
	if (err)
		return err;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += seconds;
	pthread_mutex_lock(&p->lock);
	while (!p->cancel) {
		if (pthread_cond_timedwait(&p->wake, &p->lock, &until) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&p->lock);
	return profiler_end(p, seconds, out);
}
