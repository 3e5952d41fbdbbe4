/*
 * profile_cli.c - drive the CPU profiler from the command line, for
 * tests/integration/test_profile.py (built by the test itself against
 * build/libhotpath.a; not part of the agent, which serves the same through
 * the REST API).
 *
 *   profile_cli [-f HZ] [-p PID] [-d SECONDS] [-o folded|svg|json]
 *               [-w PREFIX] [-P PINDIR] [-v]
 *
 * Prints the rendering on stdout; with -w, writes all three renderings of
 * the one window to PREFIX.folded, PREFIX.svg and PREFIX.json instead. -P
 * pins the maps under PINDIR while it runs (for bpftool). When the profiler
 * cannot run (no privileges, no perf events) it prints "profiler
 * unavailable: REASON" on stderr and exits 3, the way the agent logs one
 * line and runs on.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/libbpf.h>
#include "hotpath/buf.h"
#include "hotpath/profile.h"

static bool verbose;

static int quiet_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	if (!verbose)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static int render(struct profile_result *r, const char *format, struct buf *out)
{
	if (strcmp(format, "svg") == 0)
		return profile_write_svg(r, "profile_cli", out);
	if (strcmp(format, "json") == 0)
		return profile_write_json(r, 0, out);
	return profile_write_folded(r, out);
}

static int write_file(const char *prefix, const char *ext, const struct buf *b)
{
	char path[4096];
	FILE *f;
	int err = 0;

	snprintf(path, sizeof(path), "%s.%s", prefix, ext);
	f = fopen(path, "w");
	if (!f)
		return -errno;
	if (fwrite(buf_head(b), 1, buf_used(b), f) != buf_used(b))
		err = -EIO;
	if (fclose(f) != 0 && !err)
		err = -errno;
	return err;
}

int main(int argc, char **argv)
{
	static const char *const formats[] = { "folded", "svg", "json" };
	const char *prefix = NULL, *pin = NULL;
	const char *format = "folded";
	unsigned hz = 0, seconds = 5;
	struct profile_result *r = NULL;
	struct profiler *p;
	struct buf out;
	char why[256];
	int pid = 0, opt, err;

	while ((opt = getopt(argc, argv, "f:p:d:o:w:P:v")) != -1) {
		switch (opt) {
		case 'f': hz = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'p': pid = atoi(optarg); break;
		case 'd': seconds = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'o': format = optarg; break;
		case 'w': prefix = optarg; break;
		case 'P': pin = optarg; break;
		case 'v': verbose = true; break;
		default:
			fprintf(stderr, "usage: %s [-f HZ] [-p PID] [-d SECONDS] "
				"[-o folded|svg|json] [-w PREFIX] [-P PINDIR] [-v]\n", argv[0]);
			return 2;
		}
	}
	libbpf_set_print(quiet_print);
	p = profiler_new(hz, pin, why, sizeof(why));
	if (!p) {
		fprintf(stderr, "profiler unavailable: %s\n", why);
		return 3;
	}
	err = profiler_collect(p, pid, seconds, &r);
	if (err) {
		fprintf(stderr, "profile failed: %s\n", strerror(-err));
		profiler_free(p);
		return 1;
	}
	buf_init(&out, 64u << 20);
	if (prefix) {
		for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]) && !err; i++) {
			buf_reset(&out);
			err = render(r, formats[i], &out);
			if (!err)
				err = write_file(prefix, formats[i], &out);
		}
	} else {
		err = render(r, format, &out);
		if (!err && fwrite(buf_head(&out), 1, buf_used(&out), stdout) != buf_used(&out))
			err = -EIO;
	}
	if (verbose)
		fprintf(stderr, "%llu samples, %llu lost, %llu lost stacks, %u Hz, %llu ms\n",
			(unsigned long long)r->total_samples, (unsigned long long)r->lost_samples,
			(unsigned long long)r->lost_stacks, r->hz, (unsigned long long)r->duration_ms);
	buf_free(&out);
	profile_result_free(r);
	profiler_free(p);
	if (err) {
		fprintf(stderr, "output failed: %s\n", strerror(-err));
		return 1;
	}
	return 0;
}
