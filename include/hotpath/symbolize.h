/*
 * symbolize.h - addresses to function names, for the CPU profiler.
 *
 * User space: a process's executable mappings come from /proc/PID/maps; an
 * address is turned into a file offset, then into the ELF virtual address
 * through the file's PT_LOAD program headers (so PIE executables, shared
 * libraries and non-PIE binaries are all handled the same way) and looked up
 * in the ELF's .symtab and .dynsym. Files are read through /proc/PID/root
 * (containers see their own files) or /proc/PID/map_files (deleted files).
 * Parsed ELF files live in a bounded cache keyed by build-id (dev+inode+
 * mtime when a file has none), shared by all processes.
 *
 * Kernel space: /proc/kallsyms, sorted once, binary-searched.
 *
 * The two line parsers are pure functions over a buffer so they can be
 * fuzzed and tested without /proc.
 */
#ifndef HOTPATH_SYMBOLIZE_H
#define HOTPATH_SYMBOLIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hotpath/common.h"

/* Defaults for sym_cache_new(0, 0). */
#define SYM_CACHE_MAX_FILES 128
#define SYM_CACHE_MAX_SYMS  (4u << 20)   /* symbols, all files together */

/* ---- pure parsers -------------------------------------------------------- */

/* One line of /proc/PID/maps. `path` points into the parsed buffer (not
 * NUL-terminated; path_len 0 for anonymous mappings); " (deleted)" is
 * stripped from it and reported in `deleted`. */
struct sym_maps_line {
	uint64_t start, end;    /* [start, end) */
	uint64_t offset;        /* file offset of `start` */
	uint64_t inode;
	uint32_t dev_major, dev_minor;
	bool readable, writable, executable, shared;
	bool deleted;
	const char *path;
	size_t path_len;
};

/* Parse one maps line (without or with its '\n'). 0, or -EINVAL when the
 * line is not in the kernel's format. Never reads past buf[len-1]. */
int sym_parse_maps_line(const char *buf, size_t len, struct sym_maps_line *out) HP_MUST_CHECK;

/* One line of /proc/kallsyms: "ADDR TYPE NAME[\t[MODULE]]". `name` and
 * `module` point into the buffer (module_len 0 for the core kernel). */
struct sym_kallsyms_line {
	uint64_t addr;
	char type;
	const char *name;
	size_t name_len;
	const char *module;
	size_t module_len;
};

/* Parse one kallsyms line. 0 or -EINVAL. Never reads past buf[len-1]. */
int sym_parse_kallsyms_line(const char *buf, size_t len, struct sym_kallsyms_line *out) HP_MUST_CHECK;

/* ---- kernel symbols ------------------------------------------------------ */

struct sym_kernel;

/* Text symbols (types t, T, w, W) from kallsyms-format text. Returns NULL
 * with errno set: ENOENT when the text has no symbols, EPERM when every
 * address reads 0 (kptr_restrict hides them), ENOMEM. Caller frees with
 * sym_kernel_free. */
struct sym_kernel *sym_kernel_parse(const char *text, size_t len);
/* Same, reading a file (NULL = /proc/kallsyms). */
struct sym_kernel *sym_kernel_load(const char *path);
/* Number of symbols held. */
size_t sym_kernel_count(const struct sym_kernel *k);
/* Name of the function containing addr (the nearest symbol at or below
 * it), or NULL when addr is below the first symbol. `*off` (may be NULL)
 * receives addr - symbol start. The string lives as long as k. */
const char *sym_kernel_resolve(const struct sym_kernel *k, uint64_t addr, uint64_t *off);
void sym_kernel_free(struct sym_kernel *k);

/* ---- user-space symbols -------------------------------------------------- */

struct sym_cache;   /* parsed ELF files, shared by processes */
struct sym_proc;    /* one process's executable mappings */

/* A cache holding at most max_files ELF files and max_syms symbols (0 =
 * the defaults above); least recently used files are dropped first. NULL
 * on ENOMEM. Not thread-safe: one user at a time. */
struct sym_cache *sym_cache_new(size_t max_files, size_t max_syms);
void sym_cache_free(struct sym_cache *c);
/* Files and symbols the cache holds now (tests, statistics). */
void sym_cache_usage(const struct sym_cache *c, size_t *files, size_t *syms);

/* Snapshot /proc/PID/maps (its file-backed executable mappings). NULL with
 * errno (ESRCH: no such process, EACCES, ENOMEM). ELF files are read lazily,
 * on the first address that falls in them. The process holds references
 * into the cache: free it with sym_proc_free before sym_cache_free. */
struct sym_proc *sym_proc_open(struct sym_cache *c, int pid);
void sym_proc_free(struct sym_proc *p);

enum sym_kind {
	SYM_UNKNOWN = 0,  /* no mapping covers the address: "[unknown]" */
	SYM_MODULE = 1,   /* mapped file, no symbol: "libfoo.so+0x1234" */
	SYM_FUNCTION = 2, /* a function name */
};

/* Name the address into out (always NUL-terminated, truncated to outlen):
 * the function name, else "FILE+0xVADDR" (basename, ELF virtual address),
 * else "[unknown]"; special mappings keep their name ("[vdso]"). Returns
 * which of those it wrote. */
enum sym_kind sym_proc_resolve(struct sym_proc *p, uint64_t addr, char *out, size_t outlen);

#endif
