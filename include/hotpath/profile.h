/*
 * profile.h - CPU profiles: where the host's (or one process's) CPU time
 * goes, as sampled stacks counted in the kernel by bpf/profile.bpf.c,
 * symbolised in userspace (symbolize.h) and rendered as folded stacks, an
 * SVG flame graph or a JSON "hot paths" summary.
 *
 * Two halves: the profiler (loader + sampling windows, needs root/BPF and
 * perf events) and the profile_result with its renderers, which are plain
 * data and can be built and rendered without any kernel support (tests do).
 */
#ifndef HOTPATH_PROFILE_H
#define HOTPATH_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hotpath/buf.h"
#include "hotpath/common.h"

#define PROFILER_DEFAULT_HZ   49
#define PROFILER_MAX_HZ       1000
#define PROFILER_MAX_SECONDS  300

/* ---- results -------------------------------------------------------------- */

enum profile_frame_kind {
	PROFILE_FRAME_USER = 0,
	PROFILE_FRAME_KERNEL = 1,
};

struct profile_stack {
	uint32_t tgid;
	char comm[16];          /* sanitised, NUL-terminated */
	uint64_t samples;
	uint32_t nframes;       /* >= 1 */
	uint32_t *frames;       /* indexes into names[], root (outermost) first */
};

struct profile_intern;

/* One window's profile. Read-only for callers; built with the functions
 * below. Frame names are interned: equal (name, kind) share one index. */
struct profile_result {
	int pid;                /* 0 = every process */
	bool tree;              /* pid and its descendants (a service), not pid alone */
	unsigned hz;
	unsigned seconds;       /* window asked for */
	uint64_t duration_ms;   /* window measured */
	uint64_t total_samples; /* sum of stacks[].samples */
	uint64_t lost_samples;  /* not counted: the kernel's count map was full */
	uint64_t lost_stacks;   /* counted, but a stack (user or kernel) was not recorded */
	size_t nstacks;
	struct profile_stack *stacks;
	size_t nnames;
	char **names;           /* sanitised: valid UTF-8, no control chars, ';' -> ':' */
	uint8_t *name_kinds;    /* enum profile_frame_kind per name */
	/* private */
	size_t stacks_cap, names_cap;
	struct profile_intern *intern;
};

/* An empty result. NULL on ENOMEM. Free with profile_result_free. */
struct profile_result *profile_result_new(int pid, unsigned hz, unsigned seconds);
/* Add `samples` samples of one stack. frames[] run from the root (outermost
 * caller) to the leaf; kinds[] gives each frame's kind (NULL = all user).
 * nframes 0 records a single "[unknown]" frame. Names are copied and
 * sanitised. 0 or -ENOMEM / -EINVAL. */
int profile_result_add(struct profile_result *r, uint32_t tgid, const char *comm,
		       const char *const *frames, const uint8_t *kinds, size_t nframes,
		       uint64_t samples) HP_MUST_CHECK;
/* NULL is a no-op. */
void profile_result_free(struct profile_result *r);

/* ---- renderers (0, or -ENOBUFS when `out` hits its bound, -ENOMEM) ---------- */

/* Brendan Gregg's folded stacks, one line per distinct stack, sorted:
 * "comm;root;...;leaf COUNT\n"; kernel frames carry the "_[k]" suffix
 * flamegraph.pl colours as kernel. Identical lines (same comm, other pid)
 * are merged. */
int profile_write_folded(const struct profile_result *r, struct buf *out) HP_MUST_CHECK;
/* A self-contained interactive SVG flame graph (1200 px wide, root at the
 * bottom, children sorted by name, width proportional to samples; each frame
 * has a <title> "name (N samples, P%)"; click zooms, Ctrl-F/"Search" marks
 * by regex, Esc resets). `title` may be NULL. */
int profile_write_svg(const struct profile_result *r, const char *title,
		      struct buf *out) HP_MUST_CHECK;
/* JSON summary: {"pid","hz","seconds","duration_ms","samples","lost_samples",
 * "lost_stacks","hot_paths":[functions by self samples],"by_total":[functions
 * by inclusive samples],"processes":[...],"top_stacks":[...]}. Each function
 * {"function","kernel","self_samples","self_percent","total_samples",
 * "total_percent"}. Lists are cut to `top` entries (0 = 50). */
int profile_write_json(const struct profile_result *r, size_t top, struct buf *out) HP_MUST_CHECK;

/* ---- the profiler ---------------------------------------------------------- */

struct profiler;

/* Load bpf/profile.bpf.c, open a cpu-clock perf event at `hz` (0 = 49) on
 * every online CPU and attach the program to each, with sampling paused
 * until a window starts. Maps are pinned under pin_path (NULL or "" = not
 * pinned). Returns NULL with a one-line reason in `why` when the kernel or
 * the privileges do not allow it; the caller logs it and runs on. */
struct profiler *profiler_new(unsigned hz, const char *pin_path, char *why, size_t whylen);
/* Sample for `seconds` (1..PROFILER_MAX_SECONDS) the process `pid` (0 = all
 * but idle; with `tree`, pid and its descendants: those of the window's
 * start, and children forked during it), then read, symbolise and return
 * the profile in *out (caller frees with profile_result_free). Blocks for
 * the window; profiler_cancel ends it early. 0, or -EINVAL (bad
 * arguments), -ESRCH (no such pid), -EBUSY (another window is open),
 * -ENOMEM, -errno from the bpf syscall. Thread-safe: one window at a
 * time. */
int profiler_collect(struct profiler *p, int pid, bool tree, unsigned seconds,
		     struct profile_result **out) HP_MUST_CHECK;
/* The same in two steps for callers that must not block: begin clears the
 * counts and starts sampling; end stops, reads and symbolises. */
int profiler_begin(struct profiler *p, int pid, bool tree) HP_MUST_CHECK;
int profiler_end(struct profiler *p, unsigned seconds, struct profile_result **out) HP_MUST_CHECK;
/* Wake a profiler_collect that is sleeping (shutdown). Any thread. */
void profiler_cancel(struct profiler *p);
/* The sampling frequency in use. */
unsigned profiler_hz(const struct profiler *p);
/* Detach, unpin and free. No window may be open. NULL is a no-op. */
void profiler_free(struct profiler *p);

#endif
