/*
 * snapshot.c - the hot-key snapshot file format (include/hotpath/snapshot.h).
 *
 * Two passes on read: the first validates everything (size, magic,
 * version, checksum, every entry's bounds) without calling back, the
 * second hands entries out; a bad file therefore never warms half a
 * cache. Integers are read and written byte by byte in little-endian, so
 * the file is the same on every architecture and nothing is read
 * unaligned. The checksum is zlib's CRC-32: it catches truncation and
 * torn or flipped bytes, which is what a state file needs (it is not a
 * defence against someone who can write the state directory).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "hotpath/snapshot.h"

static const char snap_magic[6] = { 'H', 'P', 'S', 'N', 'A', 'P' };

static uint32_t rd32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const unsigned char *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void wr64(unsigned char *p, uint64_t v)
{
	wr32(p, (uint32_t)v);
	wr32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t snap_crc(const char *p, size_t n)
{
	uLong c = crc32(0L, Z_NULL, 0);

	/* zlib takes uInt lengths: feed large files in slices */
	while (n) {
		uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;

		c = crc32(c, (const Bytef *)p, k);
		p += k;
		n -= k;
	}
	return (uint32_t)c;
}

int snapshot_parse(const char *buf, size_t len, const struct snapshot_limits *lim,
		   snapshot_entry_fn fn, void *arg, uint64_t *saved_wall_ms, uint32_t *count,
		   char *err, size_t errlen)
{
	const unsigned char *u = (const unsigned char *)buf;
	uint32_t n, version;
	size_t off, body_end;

	if (len > lim->max_bytes) {
		snprintf(err, errlen, "snapshot is %zu bytes, more than the limit of %zu", len,
			 lim->max_bytes);
		return -E2BIG;
	}
	if (len < SNAPSHOT_HEADER + SNAPSHOT_TRAILER) {
		snprintf(err, errlen, "snapshot truncated: %zu bytes, a header needs %d", len,
			 SNAPSHOT_HEADER + SNAPSHOT_TRAILER);
		return -EINVAL;
	}
	if (memcmp(buf, snap_magic, sizeof(snap_magic)) != 0) {
		snprintf(err, errlen, "not a hotpath snapshot (bad magic)");
		return -EINVAL;
	}
	version = (uint32_t)u[6] | (uint32_t)u[7] << 8;
	if (version != SNAPSHOT_VERSION) {
		snprintf(err, errlen, "snapshot version %u is not supported (this agent reads %d)",
			 version, SNAPSHOT_VERSION);
		return -EINVAL;
	}
	body_end = len - SNAPSHOT_TRAILER;
	if (snap_crc(buf, body_end) != rd32(u + body_end)) {
		snprintf(err, errlen, "snapshot checksum mismatch (file torn or corrupted)");
		return -EINVAL;
	}
	n = rd32(u + 8);
	if (rd32(u + 12) != 0) {
		snprintf(err, errlen, "snapshot reserved field is not zero");
		return -EINVAL;
	}
	if (n > lim->max_keys) {
		snprintf(err, errlen, "snapshot holds %u keys, more than the limit of %u", n,
			 lim->max_keys);
		return -E2BIG;
	}
	/* pass 1: every entry inside the file and the limits */
	off = SNAPSHOT_HEADER;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t kl, vl;

		if (body_end - off < SNAPSHOT_ENTRY_HEADER) {
			snprintf(err, errlen, "snapshot entry %u: header runs past the end", i);
			return -EINVAL;
		}
		kl = rd32(u + off);
		vl = rd32(u + off + 4);
		if (kl == 0 || kl > lim->max_klen) {
			snprintf(err, errlen, "snapshot entry %u: key length %u outside 1..%zu", i, kl,
				 lim->max_klen);
			return -EINVAL;
		}
		if (vl > lim->max_vlen) {
			snprintf(err, errlen, "snapshot entry %u: value length %u over %zu", i, vl,
				 lim->max_vlen);
			return -EINVAL;
		}
		off += SNAPSHOT_ENTRY_HEADER;
		if (body_end - off < (size_t)kl + vl) {
			snprintf(err, errlen, "snapshot entry %u: data runs past the end", i);
			return -EINVAL;
		}
		off += (size_t)kl + vl;
	}
	if (off != body_end) {
		snprintf(err, errlen, "snapshot has %zu bytes after its %u entries", body_end - off, n);
		return -EINVAL;
	}
	if (saved_wall_ms)
		*saved_wall_ms = rd64(u + 16);
	if (count)
		*count = n;
	if (!fn)
		return 0;
	/* pass 2: hand the entries out */
	off = SNAPSHOT_HEADER;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t kl = rd32(u + off), vl = rd32(u + off + 4);
		uint64_t exp = rd64(u + off + 8);
		int rc;

		off += SNAPSHOT_ENTRY_HEADER;
		rc = fn(buf + off, kl, buf + off + kl, vl, exp, arg);
		if (rc)
			return rc;
		off += (size_t)kl + vl;
	}
	return 0;
}

int snapshot_begin(struct buf *b, uint64_t saved_wall_ms)
{
	unsigned char h[SNAPSHOT_HEADER] = { 0 };

	memcpy(h, snap_magic, sizeof(snap_magic));
	h[6] = SNAPSHOT_VERSION & 0xff;
	h[7] = SNAPSHOT_VERSION >> 8;
	wr64(h + 16, saved_wall_ms);
	buf_reset(b);
	return buf_append(b, h, sizeof(h));
}

int snapshot_add(struct buf *b, const char *key, size_t klen, const char *val, size_t vlen,
		 uint64_t expire_wall_ms)
{
	unsigned char h[SNAPSHOT_ENTRY_HEADER];
	size_t need = SNAPSHOT_ENTRY_HEADER + klen + vlen + SNAPSHOT_TRAILER;
	int rc;

	if (klen == 0 || klen > UINT32_MAX || vlen > UINT32_MAX)
		return -EINVAL;
	if (b->max && buf_used(b) + need > b->max)
		return -ENOBUFS;
	rc = buf_reserve(b, need);
	if (rc)
		return rc;
	wr32(h, (uint32_t)klen);
	wr32(h + 4, (uint32_t)vlen);
	wr64(h + 8, expire_wall_ms);
	/* room was reserved: these cannot fail */
	rc = buf_append(b, h, sizeof(h));
	rc = rc ? rc : buf_append(b, key, klen);
	rc = rc ? rc : buf_append(b, val, vlen);
	return rc;
}

int snapshot_end(struct buf *b, uint32_t count)
{
	unsigned char t[SNAPSHOT_TRAILER];

	if (buf_used(b) < SNAPSHOT_HEADER)
		return -EINVAL;
	wr32((unsigned char *)buf_head(b) + 8, count);
	wr32(t, snap_crc(buf_head(b), buf_used(b)));
	return buf_append(b, t, sizeof(t));
}

int snapshot_write_file(const char *path, const char *data, size_t len, char *err, size_t errlen)
{
	char tmp[4096], dir[4096];
	size_t off = 0;
	int fd, dfd, rc = 0;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		snprintf(err, errlen, "path too long");
		return -ENAMETOOLONG;
	}
	{
		const char *slash = strrchr(path, '/');

		if (!slash || slash == path)
			snprintf(dir, sizeof(dir), "%s", slash ? "/" : ".");
		else
			snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	}
	if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
		rc = -errno;
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return rc;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		return rc;
	}
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = w < 0 ? -errno : -EIO;
			snprintf(err, errlen, "write %s: %s", tmp, strerror(-rc));
			break;
		}
		off += (size_t)w;
	}
	if (!rc && fsync(fd) != 0) {
		rc = -errno;
		snprintf(err, errlen, "fsync %s: %s", tmp, strerror(errno));
	}
	if (close(fd) != 0 && !rc) {
		rc = -errno;
		snprintf(err, errlen, "close %s: %s", tmp, strerror(errno));
	}
	if (!rc && rename(tmp, path) != 0) {
		rc = -errno;
		snprintf(err, errlen, "rename to %s: %s", path, strerror(errno));
	}
	if (rc) {
		unlink(tmp);
		return rc;
	}
	/* the rename itself must survive a crash */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
}

int snapshot_read_file(const char *path, size_t max_bytes, char **out, size_t *len, char *err,
		       size_t errlen)
{
	struct stat st;
	char *data;
	size_t off = 0;
	int fd, rc;

	*out = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s is not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size > max_bytes) {
		snprintf(err, errlen, "%s is %lld bytes, more than warm.snapshot_max_bytes (%zu)",
			 path, (long long)st.st_size, max_bytes);
		close(fd);
		return -E2BIG;
	}
	data = malloc((size_t)st.st_size + 1);
	if (!data) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	while (off < (size_t)st.st_size) {
		ssize_t r = read(fd, data + off, (size_t)st.st_size - off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		off += (size_t)r;
	}
	close(fd);
	*out = data;
	*len = off;
	return 0;
}
