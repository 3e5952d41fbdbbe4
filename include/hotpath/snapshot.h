/*
 * snapshot.h - the hot-key snapshot file behind warm restarts: the
 * hottest L1 keys with their values and expiry times, saved at shutdown
 * and read back at start (agent/cache/warm.c does both).
 *
 * Format, version 1, every integer little-endian:
 *
 *   "HPSNAP" (6 bytes) | version u16 = 1 | count u32 | reserved u32 = 0 |
 *   saved_wall_ms u64
 *   count x { klen u32 | vlen u32 | expire_wall_ms u64 (0 = none) |
 *             key bytes | value bytes }
 *   crc32 u32 (zlib's CRC-32 of every byte before it)
 *
 * The reader checks size bounds and the checksum before it looks at any
 * entry, then walks the entries with every length checked against what is
 * left and against the limits, so a truncated, corrupted, hostile or
 * future-version file is refused with one specific message and never half
 * applied. The writer builds the file in a bounded buffer and replaces the
 * old one atomically (temporary file, fsync, rename, fsync of the folder).
 */
#ifndef HOTPATH_SNAPSHOT_H
#define HOTPATH_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>
#include "hotpath/buf.h"
#include "hotpath/common.h"

#define SNAPSHOT_VERSION 1
#define SNAPSHOT_HEADER 24
#define SNAPSHOT_ENTRY_HEADER 16
#define SNAPSHOT_TRAILER 4

struct snapshot_limits {
	size_t max_bytes;               /* whole file */
	uint32_t max_keys;
	size_t max_klen, max_vlen;
};

/* Called per entry, in file order; a non-zero return stops the walk and is
 * returned by snapshot_parse. */
typedef int (*snapshot_entry_fn)(const char *key, size_t klen, const char *val, size_t vlen,
				 uint64_t expire_wall_ms, void *arg);

/*
 * Validate buf[0..len) completely (bounds, magic, version, checksum, every
 * entry's lengths) and only then call fn for each entry (fn may be NULL to
 * only validate). Returns 0, fn's non-zero return, or -EINVAL / -E2BIG
 * with a one-line reason in err. *saved_wall_ms and *count (may be NULL)
 * are set when the file is valid.
 */
int snapshot_parse(const char *buf, size_t len, const struct snapshot_limits *lim,
		   snapshot_entry_fn fn, void *arg, uint64_t *saved_wall_ms, uint32_t *count,
		   char *err, size_t errlen) HP_MUST_CHECK;

/* Building a file in `b` (its max bounds the file): begin, add..., end. */
int snapshot_begin(struct buf *b, uint64_t saved_wall_ms) HP_MUST_CHECK;
/* -ENOBUFS when the entry (plus the trailer) does not fit: the buffer is
 * unchanged, the caller stops adding. */
int snapshot_add(struct buf *b, const char *key, size_t klen, const char *val, size_t vlen,
		 uint64_t expire_wall_ms) HP_MUST_CHECK;
/* Patch the count in and append the checksum. 0 or -ENOBUFS/-ENOMEM. */
int snapshot_end(struct buf *b, uint32_t count) HP_MUST_CHECK;

/*
 * Replace `path` atomically with data[0..len): write PATH.tmp, fsync,
 * rename, fsync the folder (created, mode 0750, if missing). 0 or -errno
 * with the reason in err.
 */
int snapshot_write_file(const char *path, const char *data, size_t len, char *err,
			size_t errlen) HP_MUST_CHECK;
/*
 * Read a whole file of at most max_bytes into a malloc'd buffer (*out,
 * freed by the caller). 0, -ENOENT, -E2BIG (too large), -errno; reason in err.
 */
int snapshot_read_file(const char *path, size_t max_bytes, char **out, size_t *len, char *err,
		       size_t errlen) HP_MUST_CHECK;

#endif
