/*
 * bpfmap.h - a memory-mappable BPF array (BPF_F_MMAPABLE), read and
 * written in place.
 */
#ifndef HOTPATH_BPFMAP_H
#define HOTPATH_BPFMAP_H

#include <stddef.h>

struct bpf_map;

/*
 * Map the loaded array `m` into this process, read-write and shared with
 * the kernel: its values one after another, `len` set to the mapped length
 * (whole pages; munmap() it with that). NULL with a reason in `why`.
 */
void *bpf_array_mmap(const struct bpf_map *m, size_t *len, char *why, size_t whylen);

#endif
