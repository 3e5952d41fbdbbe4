/*
 * features.h - probing what this kernel and these privileges allow.
 *
 * At start the agent asks the kernel, once, for each feature it may use
 * (BPF syscall, BTF, tracefs, bpffs, ring buffers, sockmap, perf events,
 * PSI). Missing ones are logged with one line each and switched off; the
 * agent never fails to start because of them.
 */
#ifndef HOTPATH_FEATURES_H
#define HOTPATH_FEATURES_H

#include <stdbool.h>
#include "hotpath/daemon.h"

/* Probe everything into d->features (mounting tracefs/bpffs when root and
 * they are missing) and log one line per missing feature. */
void features_probe(struct hp_daemon *d, bool bpf_wanted);
/* true if the named feature was found available. */
bool features_has(const struct hp_daemon *d, const char *name);

#endif
