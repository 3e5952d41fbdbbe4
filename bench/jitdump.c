/*
 * jitdump - a loaded BPF program's machine code, for reading a profile of
 * it: bpftool dumps JIT images only when built with a disassembler
 * (Debian's is not). Writes the image of program ID to OUT.bin and prints
 * one line per function (the program and its subprograms, in the image's
 * order): "func N addr 0xADDR len LEN", ADDR being where perf's samples
 * of it fall. bench/jitprof.sh disassembles the image with objdump.
 * Where the program has line info (BTF), also writes OUT.lines: one line
 * per source line's first machine instruction, "ADDR FILE:LINE SOURCE",
 * so that samples can be put on the C lines they fall in.
 *
 *   build/jitdump ID OUT
 */
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* OUT.lines from the program's line info and the JIT's address of each
 * entry; nothing where the program has none. */
static int write_lines(int fd, const char *out)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info), nl, rec;
	struct bpf_line_info *li;
	struct btf *btf;
	char path[4096];
	__u64 *jl;
	FILE *f;

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return 1;
	nl = info.nr_line_info;
	rec = info.line_info_rec_size;
	if (!nl || info.nr_jited_line_info != nl || rec < sizeof(*li))
		return 0;
	li = calloc(nl, rec);
	jl = calloc(nl, sizeof(*jl));
	btf = btf__load_from_kernel_by_id(info.btf_id);
	if (!li || !jl || !btf) {
		fprintf(stderr, "jitdump: no line info: %s\n", strerror(errno));
		return 1;
	}
	memset(&info, 0, sizeof(info));
	info.nr_line_info = nl;
	info.line_info_rec_size = rec;
	info.line_info = (__u64)(unsigned long)li;
	info.nr_jited_line_info = nl;
	info.jited_line_info_rec_size = sizeof(*jl);
	info.jited_line_info = (__u64)(unsigned long)jl;
	len = sizeof(info);
	snprintf(path, sizeof(path), "%s.lines", out);
	if (bpf_obj_get_info_by_fd(fd, &info, &len) || !(f = fopen(path, "w"))) {
		fprintf(stderr, "jitdump: %s: %s\n", path, strerror(errno));
		return 1;
	}
	for (__u32 i = 0; i < nl; i++) {
		const struct bpf_line_info *l = (const void *)((const char *)li + (size_t)i * rec);
		const char *src = btf__name_by_offset(btf, l->line_off);
		const char *file = btf__name_by_offset(btf, l->file_name_off);
		const char *base = file ? strrchr(file, '/') : NULL;

		fprintf(f, "%llx %s:%u %s\n", (unsigned long long)jl[i], base ? base + 1 : file ? file : "?",
			BPF_LINE_INFO_LINE_NUM(l->line_col), src ? src : "");
	}
	btf__free(btf);
	free(li);
	free(jl);
	return fclose(f) ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info), n, nk, nf;
	unsigned char *img;
	__u64 *ks;
	__u32 *fl;
	char path[4096];
	FILE *f;
	int fd;

	if (argc != 3) {
		fprintf(stderr, "usage: jitdump PROG_ID OUT\n");
		return 2;
	}
	fd = bpf_prog_get_fd_by_id((__u32)strtoul(argv[1], NULL, 10));
	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len)) {
		fprintf(stderr, "jitdump: program %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	n = info.jited_prog_len;
	nk = info.nr_jited_ksyms;
	nf = info.nr_jited_func_lens;
	img = malloc(n ? n : 1);
	ks = calloc(nk ? nk : 1, sizeof(*ks));
	fl = calloc(nf ? nf : 1, sizeof(*fl));
	if (!img || !ks || !fl || !n) {
		fprintf(stderr, "jitdump: program %s: no JIT image\n", argv[1]);
		return 1;
	}
	memset(&info, 0, sizeof(info));
	info.jited_prog_len = n;
	info.jited_prog_insns = (__u64)(unsigned long)img;
	info.nr_jited_ksyms = nk;
	info.jited_ksyms = (__u64)(unsigned long)ks;
	info.nr_jited_func_lens = nf;
	info.jited_func_lens = (__u64)(unsigned long)fl;
	len = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		fprintf(stderr, "jitdump: program %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	snprintf(path, sizeof(path), "%s.bin", argv[2]);
	f = fopen(path, "w");
	if (!f || fwrite(img, 1, n, f) != n || fclose(f)) {
		fprintf(stderr, "jitdump: %s: %s\n", path, strerror(errno));
		return 1;
	}
	for (__u32 i = 0; i < nk; i++)
		printf("func %u addr 0x%llx len %u\n", i, (unsigned long long)ks[i], i < nf ? fl[i] : n);
	return write_lines(fd, argv[2]);
}
