/*
 * pressure.h - host memory pressure, for shrinking L1 before the kernel's
 * OOM killer or the cgroup limit does it for us.
 *
 * Inputs: PSI (/proc/pressure/memory, "some avg10") and, when the agent
 * runs in a cgroup v2 with memory.max set, memory.current / memory.max.
 * The decision is a pure function so it can be tested alone: shrink the L1
 * budget in 10% steps (down to 50%) while pressure is high, grow it back
 * in 5% steps while it is low, and hold in between (hysteresis).
 */
#ifndef HOTPATH_PRESSURE_H
#define HOTPATH_PRESSURE_H

#include <stdbool.h>
#include <stdint.h>
#include "hotpath/common.h"

struct pressure_sample {
	bool have_psi;
	double some_avg10;          /* % of time some task stalled on memory */
	bool have_cgroup;
	uint64_t cg_current, cg_max;
};

#define PRESSURE_MIN_PERMILLE 500
#define PRESSURE_HIGH_PSI 10.0      /* some avg10 above this: shrink */
#define PRESSURE_LOW_PSI 1.0        /* below this: recover */
#define PRESSURE_CG_HIGH 0.90       /* cgroup usage share: shrink */
#define PRESSURE_CG_LOW 0.80        /* recover */

/* Next L1 budget in permille of l1_max_memory given the current one. */
unsigned pressure_next_permille(unsigned cur, const struct pressure_sample *s);
/* Read PSI and the agent's own cgroup v2 limits. 0, or -errno if neither
 * source is readable. */
int pressure_read(struct pressure_sample *s) HP_MUST_CHECK;

#endif
