/*
 * test_symbolize.c - the symboliser: the /proc/PID/maps and kallsyms line
 * parsers, kernel symbols from a fixture, and user symbols of this very
 * process (a function of the test binary, libc's getpid, a function of a
 * deleted shared library found through /proc/self/map_files), plus the
 * cache's bounds.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "hotpath/symbolize.h"

/* Functions with known names in the test binary (PIE). */
__attribute__((noinline)) int hp_symtest_marker_one(int x);
__attribute__((noinline)) int hp_symtest_marker_two(int x);

__attribute__((noinline)) int hp_symtest_marker_one(int x)
{
	return x * 3 + 1;
}

__attribute__((noinline)) int hp_symtest_marker_two(int x)
{
	return hp_symtest_marker_one(x) * 7;
}

static bool str_is(const char *s, size_t n, const char *want)
{
	return n == strlen(want) && memcmp(s, want, n) == 0;
}

static void test_maps_line(void **state)
{
	struct sym_maps_line l;
	const char *line;

	(void)state;
	line = "55d3c2a4a000-55d3c2a4c000 r-xp 00002000 08:01 1234567                    "
	       "/usr/bin/cat\n";
	assert_int_equal(sym_parse_maps_line(line, strlen(line), &l), 0);
	assert_true(l.start == 0x55d3c2a4a000ull && l.end == 0x55d3c2a4c000ull);
	assert_true(l.offset == 0x2000 && l.inode == 1234567);
	assert_true(l.dev_major == 8 && l.dev_minor == 1);
	assert_true(l.readable && !l.writable && l.executable && !l.shared && !l.deleted);
	assert_true(str_is(l.path, l.path_len, "/usr/bin/cat"));

	line = "7f0000000000-7f0000001000 rw-s 00000000 00:05 42 /dev/shm/a b (deleted)";
	assert_int_equal(sym_parse_maps_line(line, strlen(line), &l), 0);
	assert_true(l.shared && l.writable && !l.executable && l.deleted);
	assert_true(str_is(l.path, l.path_len, "/dev/shm/a b"));

	line = "7ffd1c3f0000-7ffd1c3f2000 r-xp 00000000 00:00 0                          [vdso]";
	assert_int_equal(sym_parse_maps_line(line, strlen(line), &l), 0);
	assert_true(str_is(l.path, l.path_len, "[vdso]"));

	line = "7f1c00000000-7f1c00021000 rw-p 00000000 00:00 0 ";
	assert_int_equal(sym_parse_maps_line(line, strlen(line), &l), 0);
	assert_int_equal(l.path_len, 0);

	/* "(deleted)" alone is a (weird) name, not a marker */
	line = "1000-2000 r-xp 00000000 00:00 0 (deleted)";
	assert_int_equal(sym_parse_maps_line(line, strlen(line), &l), 0);
	assert_false(l.deleted);

	static const char *const bad[] = {
		"", "\n", "1000", "1000-", "2000-1000 r-xp 0 00:00 0",
		"1000-2000 r-xq 00000000 00:00 0", "1000-2000 r-xp 00000000 0000 0",
		"1000-2000 r-xp 00000000 00:00 x", "1000-2000 r-xp 00000000 00:00 12x /a",
		"10000000000000000-2 r-xp 0 00:00 0", "g000-2000 r-xp 0 00:00 0",
		"1000-2000 rxp 0 00:00 0",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(sym_parse_maps_line(bad[i], strlen(bad[i]), &l), -EINVAL);
	/* the length is honoured: a cut line does not parse past it */
	line = "1000-2000 r-xp 00000000 00:00 0 /lib/x.so";
	assert_int_equal(sym_parse_maps_line(line, 8, &l), -EINVAL);
}

static void test_kallsyms_line(void **state)
{
	struct sym_kallsyms_line l;
	const char *line;

	(void)state;
	line = "ffffffff81000000 T _stext\n";
	assert_int_equal(sym_parse_kallsyms_line(line, strlen(line), &l), 0);
	assert_true(l.addr == 0xffffffff81000000ull && l.type == 'T');
	assert_true(str_is(l.name, l.name_len, "_stext") && l.module_len == 0);

	line = "ffffffffc0a01010 t nft_do_chain\t[nf_tables]";
	assert_int_equal(sym_parse_kallsyms_line(line, strlen(line), &l), 0);
	assert_true(str_is(l.name, l.name_len, "nft_do_chain"));
	assert_true(str_is(l.module, l.module_len, "nf_tables"));

	static const char *const bad[] = {
		"", "ffff", "ffff T", "ffff T ", "zz T x", "ffff  T x", "ffff T x\t[mod",
		"ffff T x\tmod]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(sym_parse_kallsyms_line(bad[i], strlen(bad[i]), &l), -EINVAL);
}

static const char kallsyms_fixture[] =
	"ffffffff81002000 T do_syscall_64\n"
	"ffffffff81000000 T _stext\n"
	"ffffffff81001000 t native_safe_halt\n"
	"ffffffff82000000 D jiffies\n"                  /* data: ignored */
	"ffffffff81003000 W weak_text_fn\n"
	"this is not a kallsyms line\n"
	"ffffffffc0100000 t nft_do_chain\t[nf_tables]\n"
	"ffffffff81004000 T tcp_sendmsg";               /* no final newline */

static void test_kernel_fixture(void **state)
{
	struct sym_kernel *k;
	uint64_t off = 0;

	(void)state;
	k = sym_kernel_parse(kallsyms_fixture, strlen(kallsyms_fixture));
	assert_non_null(k);
	assert_int_equal(sym_kernel_count(k), 6);
	assert_null(sym_kernel_resolve(k, 0xffffffff80ffffffull, NULL));
	assert_string_equal(sym_kernel_resolve(k, 0xffffffff81000000ull, &off), "_stext");
	assert_int_equal(off, 0);
	assert_string_equal(sym_kernel_resolve(k, 0xffffffff81001234ull, &off), "native_safe_halt");
	assert_int_equal(off, 0x234);
	assert_string_equal(sym_kernel_resolve(k, 0xffffffff81002fffull, NULL), "do_syscall_64");
	assert_string_equal(sym_kernel_resolve(k, 0xffffffff81003001ull, NULL), "weak_text_fn");
	assert_string_equal(sym_kernel_resolve(k, 0xffffffff81004010ull, NULL), "tcp_sendmsg");
	assert_string_equal(sym_kernel_resolve(k, 0xffffffffc0100040ull, NULL), "nft_do_chain");
	sym_kernel_free(k);

	/* kptr_restrict: every address is zero */
	static const char hidden[] = "0000000000000000 T _stext\n0000000000000000 t foo\n";
	errno = 0;
	assert_null(sym_kernel_parse(hidden, strlen(hidden)));
	assert_int_equal(errno, EPERM);
	errno = 0;
	assert_null(sym_kernel_parse("garbage\n", 8));
	assert_int_equal(errno, ENOENT);
}

static void test_kernel_real(void **state)
{
	struct sym_kernel *k;

	(void)state;
	k = sym_kernel_load(NULL);
	if (!k) {   /* not root, or kallsyms hidden: nothing to check here */
		assert_true(errno == EPERM || errno == EACCES || errno == ENOENT);
		return;
	}
	assert_true(sym_kernel_count(k) > 1000);
	sym_kernel_free(k);
}

static void test_self_symbols(void **state)
{
	struct sym_cache *c;
	struct sym_proc *p;
	char name[256];
	uintptr_t a;

	(void)state;
	assert_int_equal(hp_symtest_marker_two(1), 28);   /* keep them alive */
	c = sym_cache_new(0, 0);
	assert_non_null(c);
	p = sym_proc_open(c, getpid());
	assert_non_null(p);

	a = (uintptr_t)&hp_symtest_marker_one;
	assert_int_equal(sym_proc_resolve(p, a, name, sizeof(name)), SYM_FUNCTION);
	assert_string_equal(name, "hp_symtest_marker_one");
	assert_int_equal(sym_proc_resolve(p, a + 2, name, sizeof(name)), SYM_FUNCTION);
	assert_string_equal(name, "hp_symtest_marker_one");
	a = (uintptr_t)&hp_symtest_marker_two;
	assert_int_equal(sym_proc_resolve(p, a, name, sizeof(name)), SYM_FUNCTION);
	assert_string_equal(name, "hp_symtest_marker_two");
	/* a function of the library under test, linked statically */
	a = (uintptr_t)&sym_cache_new;
	assert_int_equal(sym_proc_resolve(p, a, name, sizeof(name)), SYM_FUNCTION);
	assert_string_equal(name, "sym_cache_new");

	/* a shared library: getpid is in libc (public name preferred) */
	a = (uintptr_t)&getpid;
	assert_int_equal(sym_proc_resolve(p, a, name, sizeof(name)), SYM_FUNCTION);
	assert_string_equal(name, "getpid");

	/* nothing mapped there */
	assert_int_equal(sym_proc_resolve(p, 0x10, name, sizeof(name)), SYM_UNKNOWN);
	assert_string_equal(name, "[unknown]");
	/* truncation is safe */
	a = (uintptr_t)&hp_symtest_marker_one;
	assert_int_equal(sym_proc_resolve(p, a, name, 6), SYM_FUNCTION);
	assert_string_equal(name, "hp_sy");
	sym_proc_free(p);
	sym_cache_free(c);

	errno = 0;
	assert_null(sym_proc_open(NULL, 0x7ffffff0));
	assert_int_equal(errno, ESRCH);
}

/* A copy of libz, dlopen'ed then unlinked: maps says "(deleted)" and the
 * file is only reachable through /proc/self/map_files. */
static void test_deleted_library(void **state)
{
	char path[] = "/tmp/hp-symtest-XXXXXX.so", name[256];
	struct sym_cache *c;
	struct sym_proc *p;
	size_t files0, files1, syms;
	void *h, *fn;
	int in, out;
	char chunk[65536];
	ssize_t n;

	(void)state;
	in = open("/lib/x86_64-linux-gnu/libz.so.1", O_RDONLY | O_CLOEXEC);
	if (in < 0)
		in = open("/usr/lib/x86_64-linux-gnu/libz.so.1", O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		skip();
		return;
	}
	out = mkstemps(path, 3);
	assert_true(out >= 0);
	while ((n = read(in, chunk, sizeof(chunk))) > 0)
		assert_int_equal(write(out, chunk, (size_t)n), n);
	close(in);
	close(out);
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	unlink(path);
	assert_non_null(h);
	fn = dlsym(h, "zlibVersion");
	assert_non_null(fn);

	c = sym_cache_new(0, 0);
	p = sym_proc_open(c, getpid());
	assert_non_null(p);
	if (access("/proc/self/map_files", R_OK) == 0) {
		assert_int_equal(sym_proc_resolve(p, (uintptr_t)fn, name, sizeof(name)),
				 SYM_FUNCTION);
		assert_string_equal(name, "zlibVersion");
		sym_cache_usage(c, &files0, &syms);
		/* the original libz has the same build-id: no new cache entry */
		fn = dlsym(RTLD_DEFAULT, "zlibVersion");
		if (fn) {
			assert_int_equal(sym_proc_resolve(p, (uintptr_t)fn, name, sizeof(name)),
					 SYM_FUNCTION);
			assert_string_equal(name, "zlibVersion");
			sym_cache_usage(c, &files1, &syms);
			assert_int_equal(files0, files1);
		}
	}
	sym_proc_free(p);
	sym_cache_free(c);
	dlclose(h);
}

static void test_cache_bounds(void **state)
{
	struct sym_cache *c;
	struct sym_proc *p;
	char name[256];
	size_t files, syms;

	(void)state;
	/* one file at a time */
	c = sym_cache_new(1, 0);
	p = sym_proc_open(c, getpid());
	assert_int_equal(sym_proc_resolve(p, (uintptr_t)&hp_symtest_marker_one, name,
					  sizeof(name)), SYM_FUNCTION);
	/* the test binary is referenced by p: libc cannot be cached now */
	assert_int_equal(sym_proc_resolve(p, (uintptr_t)&getpid, name, sizeof(name)), SYM_MODULE);
	assert_non_null(strstr(name, "libc"));
	assert_non_null(strstr(name, "+0x"));
	sym_cache_usage(c, &files, &syms);
	assert_int_equal(files, 1);
	sym_proc_free(p);
	/* once released, the binary is evicted in favour of libc */
	p = sym_proc_open(c, getpid());
	assert_int_equal(sym_proc_resolve(p, (uintptr_t)&getpid, name, sizeof(name)), SYM_FUNCTION);
	sym_cache_usage(c, &files, &syms);
	assert_int_equal(files, 1);
	sym_proc_free(p);
	sym_cache_free(c);

	/* a symbol budget smaller than one file: the file is cut, not refused */
	c = sym_cache_new(0, 10);
	p = sym_proc_open(c, getpid());
	(void)sym_proc_resolve(p, (uintptr_t)&getpid, name, sizeof(name));
	sym_cache_usage(c, &files, &syms);
	assert_true(syms <= 10);
	sym_proc_free(p);
	sym_cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_maps_line),
		cmocka_unit_test(test_kallsyms_line),
		cmocka_unit_test(test_kernel_fixture),
		cmocka_unit_test(test_kernel_real),
		cmocka_unit_test(test_self_symbols),
		cmocka_unit_test(test_deleted_library),
		cmocka_unit_test(test_cache_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
