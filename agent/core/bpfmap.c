/*
 * bpfmap.c - see bpfmap.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <bpf/libbpf.h>
#include "hotpath/bpfmap.h"

void *bpf_array_mmap(const struct bpf_map *m, size_t *len, char *why, size_t whylen)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	/* the kernel lays values out 8-byte aligned */
	size_t elem = ((size_t)bpf_map__value_size(m) + 7) & ~(size_t)7;
	void *p;

	*len = (elem * bpf_map__max_entries(m) + page - 1) / page * page;
	p = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(m), 0);
	if (p == MAP_FAILED) {
		snprintf(why, whylen, "cannot mmap %s: %s", bpf_map__name(m), strerror(errno));
		return NULL;
	}
	return p;
}
