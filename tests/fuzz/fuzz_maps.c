/*
 * fuzz_maps.c - libFuzzer target for the symboliser's pure parsers
 * (agent/observe/symbolize.c): one /proc/PID/maps line, one /proc/kallsyms
 * line, and a whole kallsyms text through sym_kernel_parse.
 *
 * Byte 0 chooses the parser (bits 0-1); the rest is the input, copied into
 * an exactly-sized heap block so ASan catches any read past its end. Besides
 * "no crash", it checks what must hold for every accepted line: pointers
 * stay inside the input, start <= end, a name is never empty, and a kernel
 * lookup returns a symbol at or below the address asked for.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/symbolize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_inside(const char *buf, size_t len, const char *p, size_t n)
{
	if (n && (p < buf || p + n > buf + len))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in;
	size_t len;

	if (size < 1)
		return 0;
	len = size - 1;
	in = malloc(len ? len : 1);
	if (!in)
		return 0;
	memcpy(in, data + 1, len);
	switch (data[0] & 3) {
	case 0: {
		struct sym_maps_line l;

		if (sym_parse_maps_line(in, len, &l) == 0) {
			if (l.start > l.end)
				abort();
			check_inside(in, len, l.path, l.path_len);
		}
		break;
	}
	case 1: {
		struct sym_kallsyms_line l;

		if (sym_parse_kallsyms_line(in, len, &l) == 0) {
			if (l.name_len == 0)
				abort();
			check_inside(in, len, l.name, l.name_len);
			check_inside(in, len, l.module, l.module_len);
		}
		break;
	}
	default: {
		struct sym_kernel *k = sym_kernel_parse(in, len);
		uint64_t probe = 0, off;

		if (k) {
			for (size_t i = 0; i + 8 <= len && i < 64; i += 8) {
				memcpy(&probe, in + i, 8);
				if (sym_kernel_resolve(k, probe, &off) && off > probe)
					abort();
			}
			sym_kernel_free(k);
		}
		break;
	}
	}
	free(in);
	return 0;
}
