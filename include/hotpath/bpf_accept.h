/*
 * bpf_accept.h - loader for bpf/acceptcount.bpf.c: the kernel's count of
 * connections the agent accepted (see that file).
 */
#ifndef HOTPATH_BPF_ACCEPT_H
#define HOTPATH_BPF_ACCEPT_H

#include <stddef.h>
#include <stdint.h>
#include "hotpath/common.h"

struct bpf_accept;

/*
 * Open, load, pin (under pin_path, "" = no pinning) and attach. Returns NULL
 * when it cannot, with a one-line reason in `why` (no privileges, no
 * tracefs, verifier rejection ...); the caller logs it and runs on.
 */
struct bpf_accept *bpf_accept_start(const char *pin_path, char *why, size_t whylen);
/* Sum the per-CPU counters. 0 or -errno. */
int bpf_accept_read(struct bpf_accept *b, uint64_t *accepted, uint64_t *failed) HP_MUST_CHECK;
/* Detach, unpin and free. NULL is a no-op. */
void bpf_accept_stop(struct bpf_accept *b);

#endif
