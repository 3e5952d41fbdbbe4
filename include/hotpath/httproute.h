/*
 * httproute.h - HTTP request routes: normalisation and the route hash the
 * kernel side (bpf/observe.bpf.c) computes for per-endpoint histograms.
 */
#ifndef HOTPATH_HTTPROUTE_H
#define HOTPATH_HTTPROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hotpath/common.h"

/* Bytes of a path that count (the kernel reads no more): OBS_PATH_MAX. */
#define ROUTE_PATH_MAX 192

/* True if a path segment is an identifier: all digits; >= 8 hex digits
 * with at least one decimal digit; or a 36-byte uuid (hex and 4 dashes). */
bool route_is_id_segment(const char *seg, size_t len);

/*
 * Normalise a request path: drop the query string and fragment, replace
 * identifier segments with "{id}", keep at most ROUTE_PATH_MAX input
 * bytes. Writes a NUL-terminated route into out. Returns its length, or
 * -ENOBUFS if outlen is too small (out is then empty).
 */
int route_normalise(const char *path, size_t len, char *out, size_t outlen) HP_MUST_CHECK;

/*
 * The kernel's endpoint hash of "METHOD path": FNV-1a 64 over the method,
 * a space, then per segment of the path (to ROUTE_PATH_MAX bytes) either
 * the segment's own FNV or that of "{id}", separated by '/'. A raw path and
 * its normalised route give the same hash.
 */
uint64_t route_hash(const char *method, size_t mlen, const char *path, size_t plen);

#endif
