/*
 * bpf_accept.h - loader for bpf/acceptcount.bpf.c: the kernel's count of
 * connections made to the agent's own listeners (see that file).
 */
#ifndef HOTPATH_BPF_ACCEPT_H
#define HOTPATH_BPF_ACCEPT_H

#include <stddef.h>
#include <stdint.h>
#include "hotpath/common.h"

struct bpf_accept;

/*
 * Open, load, pin (under pin_path, "" = no pinning) and attach. Returns NULL
 * when it cannot, with a one-line reason in `why` (no privileges, no BTF,
 * verifier rejection ...); the caller logs it and runs on. Counts nothing
 * until ports are added.
 */
struct bpf_accept *bpf_accept_start(const char *pin_path, char *why, size_t whylen);
/* Count the connections to local TCP `port` (one the agent listens on).
 * NULL `b` or port 0 is a no-op. */
void bpf_accept_add_port(struct bpf_accept *b, uint16_t port);
/* Sum the per-CPU counters: connections accepted, and how many of them have
 * closed since. 0 or -errno. */
int bpf_accept_read(struct bpf_accept *b, uint64_t *accepted, uint64_t *closed) HP_MUST_CHECK;
/* Detach, unpin and free. NULL is a no-op. */
void bpf_accept_stop(struct bpf_accept *b);

#endif
