/*
 * bpf_accept.c - loader for bpf/acceptcount.bpf.c.
 *
 * Skeleton lifecycle as libbpf-bootstrap does it: open -> load -> attach,
 * one cleanup path; the agent's listening ports are written into the
 * program's .bss bitmap as each listener starts (bpf_accept_add_port). The counter map is
 * pinned by name under the configured pin path (default
 * /sys/fs/bpf/hotpath/accept_stats) so operators can read it with
 * `bpftool map dump pinned`; the pin is removed on a clean stop so a
 * stopped agent leaves nothing in bpffs. Failure is never fatal: the
 * caller gets a one-line reason and the agent runs without it.
 */
#include <errno.h>
#include <linux/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "hotpath/bpf_accept.h"
#include "hotpath/events.h"
#include "hotpath/log.h"
#include "acceptcount.skel.h"

struct bpf_accept {
	struct acceptcount_bpf *skel;
	int map_fd;
	int ncpus;
	bool pinned;
};

struct bpf_accept *bpf_accept_start(const char *pin_path, char *why, size_t whylen)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	struct bpf_accept *b;
	int err;

	b = calloc(1, sizeof(*b));
	if (!b) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	b->ncpus = libbpf_num_possible_cpus();
	if (b->ncpus <= 0) {
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
	b->skel = acceptcount_bpf__open_opts(&opts);
	if (!b->skel) {
		snprintf(why, whylen, "cannot open BPF object: %s", strerror(errno));
		goto fail;
	}
	if (!(pin_path && pin_path[0]))
		bpf_map__set_pin_path(b->skel->maps.accept_stats, NULL);
	err = acceptcount_bpf__load(b->skel);
	if (err) {
		snprintf(why, whylen, "kernel refused to load acceptcount: %s%s", strerror(-err),
			 err == -EPERM ? " (needs CAP_BPF/CAP_SYS_ADMIN)" : "");
		goto fail;
	}
	b->pinned = pin_path && pin_path[0];
	err = acceptcount_bpf__attach(b->skel);
	if (err) {
		snprintf(why, whylen, "cannot attach the inet_sock_set_state tracepoint: %s",
			 strerror(-err));
		goto fail;
	}
	b->map_fd = bpf_map__fd(b->skel->maps.accept_stats);
	/* A map reused from an earlier run keeps its counts: start at zero. */
	{
		struct accept_stats *zero = calloc((size_t)b->ncpus, sizeof(*zero));
		__u32 key = 0;

		if (zero) {
			if (bpf_map_update_elem(b->map_fd, &key, zero, BPF_ANY) != 0)
				log_debug("bpf: cannot reset accept_stats: %s", strerror(errno));
			free(zero);
		}
	}
	return b;
fail:
	bpf_accept_stop(b);
	return NULL;
}

void bpf_accept_add_port(struct bpf_accept *b, uint16_t port)
{
	if (!b || !port)
		return;
	__atomic_or_fetch(&b->skel->bss->agent_ports[port >> 6], 1ULL << (port & 63),
			  __ATOMIC_RELAXED);
}

int bpf_accept_read(struct bpf_accept *b, uint64_t *accepted, uint64_t *closed)
{
	struct accept_stats *vals;
	__u32 key = 0;

	*accepted = *closed = 0;
	vals = calloc((size_t)b->ncpus, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	if (bpf_map_lookup_elem(b->map_fd, &key, vals) != 0) {
		int err = -errno;

		free(vals);
		return err;
	}
	for (int i = 0; i < b->ncpus; i++) {
		*accepted += vals[i].accepted;
		*closed += vals[i].closed;
	}
	free(vals);
	return 0;
}

void bpf_accept_stop(struct bpf_accept *b)
{
	if (!b)
		return;
	if (b->skel) {
		if (b->pinned)
			bpf_map__unpin(b->skel->maps.accept_stats, NULL);
		acceptcount_bpf__destroy(b->skel);
	}
	free(b);
}
