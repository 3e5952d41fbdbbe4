/*
 * symbolize.c - addresses to function names (see include/hotpath/symbolize.h).
 *
 * User addresses: the address's mapping in /proc/PID/maps gives the file
 * and the file offset (addr - start + pgoff); the PT_LOAD program header
 * holding that offset gives the ELF virtual address (off - p_offset +
 * p_vaddr), which is what the symbol tables use whether the file is a PIE,
 * a shared library or a fixed-address executable. Symbols are the defined
 * FUNC/IFUNC entries of .symtab and .dynsym (plus .symtab of a separate
 * debug file under /usr/lib/debug/.build-id/ when one is installed), sorted
 * by address, one name per address (public names before "__" aliases and
 * local ones), zero-sized entries extended to the next symbol; a lookup is
 * a binary search. Files are opened through /proc/PID/root/PATH so that a
 * process in a container resolves against its own files, and through
 * /proc/PID/map_files/START-END when the file was deleted or replaced.
 *
 * The ELF cache is keyed by build-id, with dev+inode+mtime+size as the
 * quick key checked first and the only key of files without a build-id.
 * It is bounded in files and in symbols; the least recently used file that
 * no live sym_proc references is dropped first, and when nothing can be
 * dropped a new file is simply not cached (its addresses resolve to
 * FILE+0xADDR). libelf does the ELF parsing; the maps and kallsyms line
 * parsers are ours because they are ten lines each and must be pure.
 *
 * Not done here: DWARF (inline frames, line numbers), C++/Rust demangling,
 * JIT maps (/tmp/perf-PID.map), the vDSO's symbols.
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "hotpath/symbolize.h"

#define SYM_BUILD_ID_MAX 64
#define SYM_NAME_MAX 512          /* longer names are cut (KSYM_NAME_LEN) */
#define SYM_DEBUG_DIR "/usr/lib/debug/.build-id"

/* ---- pure parsers -------------------------------------------------------- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* At least one hex digit, at most 16; advances *p. */
static int parse_hex(const char **p, const char *end, uint64_t *v)
{
	const char *s = *p;
	uint64_t x = 0;
	int n = 0, d;

	while (s < end && (d = hexval(*s)) >= 0) {
		if (++n > 16)
			return -EINVAL;
		x = (x << 4) | (uint64_t)d;
		s++;
	}
	if (n == 0)
		return -EINVAL;
	*p = s;
	*v = x;
	return 0;
}

static int parse_dec(const char **p, const char *end, uint64_t *v)
{
	const char *s = *p;
	uint64_t x = 0;
	int n = 0;

	while (s < end && *s >= '0' && *s <= '9') {
		if (x > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		x = x * 10 + (uint64_t)(*s - '0');
		s++;
		n++;
	}
	if (n == 0)
		return -EINVAL;
	*p = s;
	*v = x;
	return 0;
}

static int expect(const char **p, const char *end, char c)
{
	if (*p >= end || **p != c)
		return -EINVAL;
	(*p)++;
	return 0;
}

static void skip_spaces(const char **p, const char *end)
{
	while (*p < end && (**p == ' ' || **p == '\t'))
		(*p)++;
}

int sym_parse_maps_line(const char *buf, size_t len, struct sym_maps_line *out)
{
	static const char deleted[] = " (deleted)";
	const char *p = buf, *end = buf + len;
	uint64_t major, minor;

	memset(out, 0, sizeof(*out));
	while (end > p && (end[-1] == '\n' || end[-1] == '\r'))
		end--;
	if (parse_hex(&p, end, &out->start) || expect(&p, end, '-') ||
	    parse_hex(&p, end, &out->end) || expect(&p, end, ' '))
		return -EINVAL;
	if (out->end < out->start || end - p < 5 || p[4] != ' ')
		return -EINVAL;
	if ((p[0] != 'r' && p[0] != '-') || (p[1] != 'w' && p[1] != '-') ||
	    (p[2] != 'x' && p[2] != '-') || (p[3] != 'p' && p[3] != 's'))
		return -EINVAL;
	out->readable = p[0] == 'r';
	out->writable = p[1] == 'w';
	out->executable = p[2] == 'x';
	out->shared = p[3] == 's';
	p += 5;
	if (parse_hex(&p, end, &out->offset) || expect(&p, end, ' ') ||
	    parse_hex(&p, end, &major) || expect(&p, end, ':') ||
	    parse_hex(&p, end, &minor) || expect(&p, end, ' ') ||
	    parse_dec(&p, end, &out->inode))
		return -EINVAL;
	if (major > UINT32_MAX || minor > UINT32_MAX)
		return -EINVAL;
	out->dev_major = (uint32_t)major;
	out->dev_minor = (uint32_t)minor;
	if (p < end && *p != ' ' && *p != '\t')
		return -EINVAL;
	skip_spaces(&p, end);
	if (p < end) {
		size_t n = (size_t)(end - p);

		if (n > sizeof(deleted) - 1 && p[0] == '/' &&
		    memcmp(end - (sizeof(deleted) - 1), deleted, sizeof(deleted) - 1) == 0) {
			out->deleted = true;
			n -= sizeof(deleted) - 1;
		}
		out->path = p;
		out->path_len = n;
	}
	return 0;
}

int sym_parse_kallsyms_line(const char *buf, size_t len, struct sym_kallsyms_line *out)
{
	const char *p = buf, *end = buf + len, *s;

	memset(out, 0, sizeof(*out));
	while (end > p && (end[-1] == '\n' || end[-1] == '\r'))
		end--;
	if (parse_hex(&p, end, &out->addr) || expect(&p, end, ' '))
		return -EINVAL;
	if (p >= end || *p == ' ' || *p == '\t' || *p == '\0')
		return -EINVAL;
	out->type = *p++;
	if (expect(&p, end, ' '))
		return -EINVAL;
	s = p;
	while (p < end && *p != '\t' && *p != ' ' && *p != '\0')
		p++;
	if (p == s)
		return -EINVAL;
	out->name = s;
	out->name_len = (size_t)(p - s);
	skip_spaces(&p, end);
	if (p < end) {
		if (*p != '[' || end - p < 3 || end[-1] != ']')
			return -EINVAL;
		out->module = p + 1;
		out->module_len = (size_t)(end - p - 2);
	}
	return 0;
}

/* ---- a growable string arena ------------------------------------------- */

struct arena {
	char *data;
	size_t len, cap;
};

/* Append a NUL-terminated copy; returns its offset or -1 on ENOMEM or when
 * the arena would pass 4 GiB (offsets are 32-bit). */
static int64_t arena_add(struct arena *a, const char *s, size_t n)
{
	size_t off = a->len;

	if (n > SYM_NAME_MAX)
		n = SYM_NAME_MAX;
	if (a->len + n + 1 > a->cap) {
		size_t ncap = a->cap ? a->cap * 2 : 4096;
		char *d;

		while (ncap < a->len + n + 1)
			ncap *= 2;
		if (ncap > UINT32_MAX)
			return -1;
		d = realloc(a->data, ncap);
		if (!d)
			return -1;
		a->data = d;
		a->cap = ncap;
	}
	memcpy(a->data + off, s, n);
	a->data[off + n] = '\0';
	a->len += n + 1;
	return (int64_t)off;
}

/* ---- kernel symbols ------------------------------------------------------ */

struct ksym {
	uint64_t addr;
	uint32_t name;    /* offset in names */
};

struct sym_kernel {
	struct ksym *syms;
	size_t n;
	struct arena names;
};

static int ksym_cmp(const void *a, const void *b)
{
	const struct ksym *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

struct sym_kernel *sym_kernel_parse(const char *text, size_t len)
{
	const char *p = text, *end = text + len;
	struct sym_kernel *k;
	size_t cap = 0, zeros = 0;

	k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		struct sym_kallsyms_line l;
		int64_t off;

		if (sym_parse_kallsyms_line(p, n, &l) == 0 &&
		    (l.type == 't' || l.type == 'T' || l.type == 'w' || l.type == 'W')) {
			if (l.addr == 0) {
				zeros++;
			} else {
				if (k->n == cap) {
					size_t ncap = cap ? cap * 2 : 16384;
					struct ksym *s = realloc(k->syms, ncap * sizeof(*s));

					if (!s)
						goto nomem;
					k->syms = s;
					cap = ncap;
				}
				off = arena_add(&k->names, l.name, l.name_len);
				if (off < 0)
					goto nomem;
				k->syms[k->n].addr = l.addr;
				k->syms[k->n].name = (uint32_t)off;
				k->n++;
			}
		}
		p += n + (nl ? 1 : 0);
	}
	if (k->n == 0) {
		sym_kernel_free(k);
		errno = zeros ? EPERM : ENOENT;
		return NULL;
	}
	qsort(k->syms, k->n, sizeof(*k->syms), ksym_cmp);
	return k;
nomem:
	sym_kernel_free(k);
	errno = ENOMEM;
	return NULL;
}

/* Read a whole file whose size stat() does not tell (/proc files). */
static char *read_all(const char *path, size_t *len)
{
	size_t cap = 1 << 20, n = 0;
	char *data = NULL, *d;
	ssize_t r;
	int fd, saved;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	for (;;) {
		if (!data || n == cap) {
			if (data)
				cap *= 2;
			if (cap > (256u << 20)) {
				errno = EFBIG;
				goto fail;
			}
			d = realloc(data, cap);
			if (!d)
				goto fail;
			data = d;
		}
		r = read(fd, data + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	*len = n;
	return data;
fail:
	saved = errno;
	free(data);
	close(fd);
	errno = saved;
	return NULL;
}

struct sym_kernel *sym_kernel_load(const char *path)
{
	struct sym_kernel *k;
	size_t len;
	char *text;
	int saved;

	text = read_all(path ? path : "/proc/kallsyms", &len);
	if (!text)
		return NULL;
	k = sym_kernel_parse(text, len);
	saved = errno;
	free(text);
	errno = saved;
	return k;
}

size_t sym_kernel_count(const struct sym_kernel *k)
{
	return k ? k->n : 0;
}

const char *sym_kernel_resolve(const struct sym_kernel *k, uint64_t addr, uint64_t *off)
{
	size_t lo = 0, hi;

	if (!k || k->n == 0 || addr < k->syms[0].addr)
		return NULL;
	hi = k->n;     /* invariant: syms[lo].addr <= addr, answer in [lo, hi) */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (k->syms[mid].addr <= addr)
			lo = mid;
		else
			hi = mid;
	}
	if (off)
		*off = addr - k->syms[lo].addr;
	return k->names.data + k->syms[lo].name;
}

void sym_kernel_free(struct sym_kernel *k)
{
	if (!k)
		return;
	free(k->syms);
	free(k->names.data);
	free(k);
}

/* ---- ELF files and their cache ------------------------------------------ */

struct usym {
	uint64_t addr, end;   /* [addr, end) in ELF virtual addresses */
	uint32_t name;        /* offset in names */
	uint32_t rank;        /* while loading: lower is a better name */
};

struct seg {
	uint64_t vaddr, off, filesz;
};

struct sym_elf {
	/* keys */
	uint8_t build_id[SYM_BUILD_ID_MAX];
	size_t build_id_len;
	uint64_t dev, ino, size;
	int64_t mtime_ns;
	/* contents */
	char *base;           /* basename shown for FILE+0xADDR */
	struct seg *segs;
	size_t nsegs;
	struct usym *syms;
	size_t nsyms;
	struct arena names;
	/* cache bookkeeping */
	unsigned refs;
	uint64_t last_use;
};

struct sym_cache {
	struct sym_elf **files;
	size_t nfiles, max_files;
	size_t nsyms, max_syms;
	uint64_t tick;
};

static pthread_once_t elf_once = PTHREAD_ONCE_INIT;
static bool elf_ok;

static void elf_init_once(void)
{
	elf_ok = elf_version(EV_CURRENT) != EV_NONE;
}

static void sym_elf_free(struct sym_elf *e)
{
	if (!e)
		return;
	free(e->base);
	free(e->segs);
	free(e->syms);
	free(e->names.data);
	free(e);
}

struct sym_cache *sym_cache_new(size_t max_files, size_t max_syms)
{
	struct sym_cache *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->max_files = max_files ? max_files : SYM_CACHE_MAX_FILES;
	c->max_syms = max_syms ? max_syms : SYM_CACHE_MAX_SYMS;
	c->files = calloc(c->max_files, sizeof(*c->files));
	if (!c->files) {
		free(c);
		return NULL;
	}
	return c;
}

void sym_cache_free(struct sym_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nfiles; i++)
		sym_elf_free(c->files[i]);
	free(c->files);
	free(c);
}

void sym_cache_usage(const struct sym_cache *c, size_t *files, size_t *syms)
{
	*files = c->nfiles;
	*syms = c->nsyms;
}

static uint32_t name_rank(const char *name, int bind)
{
	uint32_t r = 0;

	while (name[r] == '_' && r < 15)
		r++;
	/* underscores first, then binding (GLOBAL < WEAK < LOCAL), then length */
	r = r << 28;
	r |= (uint32_t)(bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 1 : 2) << 24;
	r |= (uint32_t)(strlen(name) & 0xffffff);
	return r;
}

static int usym_cmp(const void *a, const void *b)
{
	const struct usym *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return x->rank < y->rank ? -1 : x->rank > y->rank;
}

/* Add the defined functions of one symbol table; stop at `limit`. */
static int add_symtab(struct sym_elf *e, Elf *elf, Elf_Scn *scn, const GElf_Shdr *sh,
		      size_t *cap, size_t limit)
{
	Elf_Data *data = elf_getdata(scn, NULL);
	size_t count;

	if (!data || sh->sh_entsize == 0)
		return 0;
	count = sh->sh_size / sh->sh_entsize;
	for (size_t i = 1; i < count && e->nsyms < limit; i++) {
		GElf_Sym s;
		const char *name;
		int type;
		int64_t off;

		if (!gelf_getsym(data, (int)i, &s))
			break;
		type = GELF_ST_TYPE(s.st_info);
		if ((type != STT_FUNC && type != STT_GNU_IFUNC) || s.st_shndx == SHN_UNDEF ||
		    s.st_value == 0)
			continue;
		name = elf_strptr(elf, sh->sh_link, s.st_name);
		if (!name || !name[0])
			continue;
		if (e->nsyms == *cap) {
			size_t ncap = *cap ? *cap * 2 : 1024;
			struct usym *n = realloc(e->syms, ncap * sizeof(*n));

			if (!n)
				return -ENOMEM;
			e->syms = n;
			*cap = ncap;
		}
		off = arena_add(&e->names, name, strlen(name));
		if (off < 0)
			return -ENOMEM;
		e->syms[e->nsyms].addr = s.st_value;
		e->syms[e->nsyms].end = s.st_size ? s.st_value + s.st_size : 0;
		e->syms[e->nsyms].name = (uint32_t)off;
		e->syms[e->nsyms].rank = name_rank(name, GELF_ST_BIND(s.st_info));
		e->nsyms++;
	}
	return 0;
}

static void read_build_id(struct sym_elf *e, Elf *elf)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;

	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		Elf_Data *data;
		GElf_Nhdr nh;
		size_t off = 0, noff, doff;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		data = elf_getdata(scn, NULL);
		if (!data)
			continue;
		while ((off = gelf_getnote(data, off, &nh, &noff, &doff)) > 0) {
			if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
			    memcmp((char *)data->d_buf + noff, "GNU", 4) == 0 &&
			    nh.n_descsz > 0 && nh.n_descsz <= SYM_BUILD_ID_MAX) {
				memcpy(e->build_id, (char *)data->d_buf + doff, nh.n_descsz);
				e->build_id_len = nh.n_descsz;
				return;
			}
		}
	}
}

/* Symbols of one ELF handle (symtab and dynsym). Returns whether it had a
 * .symtab. */
static int read_symbols(struct sym_elf *e, Elf *elf, size_t *cap, size_t limit, bool *had_symtab)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	int err;

	while ((scn = elf_nextscn(elf, scn)) != NULL) {
		if (!gelf_getshdr(scn, &sh))
			continue;
		if (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM)
			continue;
		if (sh.sh_type == SHT_SYMTAB)
			*had_symtab = true;
		err = add_symtab(e, elf, scn, &sh, cap, limit);
		if (err)
			return err;
	}
	return 0;
}

/* .symtab from /usr/lib/debug/.build-id/xx/yyyy.debug, when installed. */
static int read_debug_file(struct sym_elf *e, size_t *cap, size_t limit)
{
	char path[sizeof(SYM_DEBUG_DIR) + 4 + 2 * SYM_BUILD_ID_MAX + 8];
	bool had = false;
	size_t n;
	Elf *elf;
	int fd, err;

	if (e->build_id_len < 2)
		return 0;
	n = (size_t)snprintf(path, sizeof(path), "%s/%02x/", SYM_DEBUG_DIR, e->build_id[0]);
	for (size_t i = 1; i < e->build_id_len; i++)
		n += (size_t)snprintf(path + n, sizeof(path) - n, "%02x", e->build_id[i]);
	snprintf(path + n, sizeof(path) - n, ".debug");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	err = elf && elf_kind(elf) == ELF_K_ELF ? read_symbols(e, elf, cap, limit, &had) : 0;
	if (elf)
		elf_end(elf);
	close(fd);
	return err;
}

/* Sort, keep one name per address, close zero-sized symbols at the next. */
static void finish_symbols(struct sym_elf *e)
{
	size_t out = 0;

	if (e->nsyms == 0)
		return;
	qsort(e->syms, e->nsyms, sizeof(*e->syms), usym_cmp);
	for (size_t i = 0; i < e->nsyms; i++) {
		if (out && e->syms[out - 1].addr == e->syms[i].addr) {
			if (e->syms[out - 1].end < e->syms[i].end)
				e->syms[out - 1].end = e->syms[i].end;
			continue;
		}
		e->syms[out++] = e->syms[i];
	}
	e->nsyms = out;
	for (size_t i = 0; i < e->nsyms; i++) {
		if (e->syms[i].end > e->syms[i].addr)
			continue;
		e->syms[i].end = i + 1 < e->nsyms ? e->syms[i + 1].addr : e->syms[i].addr + 4096;
	}
	/* shrink to fit; failure keeps the larger block */
	{
		struct usym *s = realloc(e->syms, e->nsyms * sizeof(*s));

		if (s)
			e->syms = s;
	}
}

/* Parse an open ELF file into a new entry (no symbols when it is not ELF:
 * its addresses then resolve to FILE+0xOFFSET). NULL on ENOMEM. */
static struct sym_elf *sym_elf_read(int fd, const struct stat *st, const char *base,
				    size_t limit, struct sym_cache *c, struct sym_elf **hit)
{
	struct sym_elf *e;
	size_t cap = 0, nphdr;
	bool had_symtab = false;
	Elf *elf = NULL;
	GElf_Ehdr eh;

	*hit = NULL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->dev = (uint64_t)st->st_dev;
	e->ino = (uint64_t)st->st_ino;
	e->size = (uint64_t)st->st_size;
	e->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	e->base = strdup(base);
	if (!e->base)
		goto nomem;
	pthread_once(&elf_once, elf_init_once);
	if (!elf_ok)
		return e;
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf || elf_kind(elf) != ELF_K_ELF || !gelf_getehdr(elf, &eh))
		goto done;
	read_build_id(e, elf);
	/* Same content under another path or in another container. */
	if (e->build_id_len) {
		for (size_t i = 0; i < c->nfiles; i++) {
			struct sym_elf *o = c->files[i];

			if (o->build_id_len == e->build_id_len &&
			    memcmp(o->build_id, e->build_id, e->build_id_len) == 0) {
				*hit = o;
				goto done;
			}
		}
	}
	if (elf_getphdrnum(elf, &nphdr) == 0 && nphdr > 0 && nphdr < 4096) {
		e->segs = calloc(nphdr, sizeof(*e->segs));
		if (!e->segs)
			goto nomem;
		for (size_t i = 0; i < nphdr; i++) {
			GElf_Phdr ph;

			if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD)
				continue;
			e->segs[e->nsegs].vaddr = ph.p_vaddr;
			e->segs[e->nsegs].off = ph.p_offset;
			e->segs[e->nsegs].filesz = ph.p_filesz;
			e->nsegs++;
		}
	}
	if (read_symbols(e, elf, &cap, limit, &had_symtab))
		goto nomem;
	if (!had_symtab && read_debug_file(e, &cap, limit))
		goto nomem;
	finish_symbols(e);
done:
	if (elf)
		elf_end(elf);
	if (*hit) {
		sym_elf_free(e);
		return NULL;
	}
	return e;
nomem:
	if (elf)
		elf_end(elf);
	sym_elf_free(e);
	return NULL;
}

/* Drop the least recently used unreferenced file. false if none. */
static bool cache_evict_one(struct sym_cache *c)
{
	size_t victim = SIZE_MAX;

	for (size_t i = 0; i < c->nfiles; i++) {
		if (c->files[i]->refs)
			continue;
		if (victim == SIZE_MAX || c->files[i]->last_use < c->files[victim]->last_use)
			victim = i;
	}
	if (victim == SIZE_MAX)
		return false;
	c->nsyms -= c->files[victim]->nsyms;
	sym_elf_free(c->files[victim]);
	c->files[victim] = c->files[--c->nfiles];
	return true;
}

/* The cached entry for this open file, loading it when needed. The result
 * carries one more reference. NULL when it cannot be cached. */
static struct sym_elf *cache_get(struct sym_cache *c, int fd, const char *base)
{
	struct sym_elf *e, *hit;
	struct stat st;
	int64_t mt;

	if (fstat(fd, &st) != 0)
		return NULL;
	mt = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	c->tick++;
	for (size_t i = 0; i < c->nfiles; i++) {
		e = c->files[i];
		if (e->dev == (uint64_t)st.st_dev && e->ino == (uint64_t)st.st_ino &&
		    e->mtime_ns == mt && e->size == (uint64_t)st.st_size) {
			e->refs++;
			e->last_use = c->tick;
			return e;
		}
	}
	e = sym_elf_read(fd, &st, base, c->max_syms, c, &hit);
	if (hit) {
		hit->refs++;
		hit->last_use = c->tick;
		return hit;
	}
	if (!e)
		return NULL;
	while (c->nfiles >= c->max_files || c->nsyms + e->nsyms > c->max_syms) {
		if (!cache_evict_one(c)) {
			sym_elf_free(e);
			return NULL;
		}
	}
	c->files[c->nfiles++] = e;
	c->nsyms += e->nsyms;
	e->refs = 1;
	e->last_use = c->tick;
	return e;
}

/* ---- processes ----------------------------------------------------------- */

struct sym_map {
	uint64_t start, end, offset, inode;
	char *path;           /* as in maps ("/usr/lib/...", "[vdso]") */
	bool deleted;
	bool tried;           /* ELF lookup done (elf may still be NULL) */
	struct sym_elf *elf;
};

struct sym_proc {
	struct sym_cache *cache;
	int pid;
	struct sym_map *maps;
	size_t n;
};

struct sym_proc *sym_proc_open(struct sym_cache *c, int pid)
{
	char path[64], *text, *p, *end;
	struct sym_proc *sp;
	size_t len, cap = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	text = read_all(path, &len);
	if (!text) {
		if (errno == ENOENT)
			errno = ESRCH;
		return NULL;
	}
	sp = calloc(1, sizeof(*sp));
	if (!sp)
		goto nomem;
	sp->cache = c;
	sp->pid = pid;
	for (p = text, end = text + len; p < end;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		struct sym_maps_line l;
		struct sym_map *m;

		if (sym_parse_maps_line(p, n, &l) == 0 && l.executable && l.path_len &&
		    (l.path[0] == '/' || l.path[0] == '[')) {
			if (sp->n == cap) {
				size_t ncap = cap ? cap * 2 : 64;
				struct sym_map *nm = realloc(sp->maps, ncap * sizeof(*nm));

				if (!nm)
					goto nomem;
				sp->maps = nm;
				cap = ncap;
			}
			m = &sp->maps[sp->n];
			memset(m, 0, sizeof(*m));
			m->start = l.start;
			m->end = l.end;
			m->offset = l.offset;
			m->inode = l.inode;
			m->deleted = l.deleted;
			m->path = strndup(l.path, l.path_len);
			if (!m->path)
				goto nomem;
			sp->n++;
		}
		p += n + (nl ? 1 : 0);
	}
	free(text);
	return sp;
nomem:
	free(text);
	sym_proc_free(sp);
	errno = ENOMEM;
	return NULL;
}

void sym_proc_free(struct sym_proc *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++) {
		if (p->maps[i].elf)
			p->maps[i].elf->refs--;
		free(p->maps[i].path);
	}
	free(p->maps);
	free(p);
}

/* Open the mapped file as the process sees it; -1 when it cannot. */
static int open_mapped(const struct sym_proc *p, const struct sym_map *m)
{
	char path[PATH_MAX + 64];
	struct stat st;
	int fd, n;

	if (!m->deleted) {
		n = snprintf(path, sizeof(path), "/proc/%d/root%s", p->pid, m->path);
		if (n > 0 && (size_t)n < sizeof(path)) {
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd >= 0) {
				/* replaced on disk since it was mapped? */
				if (fstat(fd, &st) == 0 && (!m->inode || (uint64_t)st.st_ino == m->inode))
					return fd;
				close(fd);
			}
		}
	}
	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", p->pid,
		 (unsigned long long)m->start, (unsigned long long)m->end);
	return open(path, O_RDONLY | O_CLOEXEC);
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

static const struct usym *elf_lookup(const struct sym_elf *e, uint64_t vaddr)
{
	size_t lo = 0, hi = e->nsyms;

	if (!e->nsyms || vaddr < e->syms[0].addr)
		return NULL;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (e->syms[mid].addr <= vaddr)
			lo = mid;
		else
			hi = mid;
	}
	/* a few symbols back may be a larger function enclosing this one */
	for (size_t i = lo + 1, k = 0; i-- > 0 && k < 4; k++) {
		if (vaddr < e->syms[i].end)
			return &e->syms[i];
	}
	return NULL;
}

enum sym_kind sym_proc_resolve(struct sym_proc *p, uint64_t addr, char *out, size_t outlen)
{
	const struct usym *s;
	struct sym_map *m = NULL;
	size_t lo = 0, hi = p ? p->n : 0;
	uint64_t off, vaddr;

	if (outlen == 0)
		return SYM_UNKNOWN;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (addr < p->maps[mid].start) {
			hi = mid;
		} else if (addr >= p->maps[mid].end) {
			lo = mid + 1;
		} else {
			m = &p->maps[mid];
			break;
		}
	}
	if (!m) {
		snprintf(out, outlen, "[unknown]");
		return SYM_UNKNOWN;
	}
	if (m->path[0] == '[') {
		snprintf(out, outlen, "%s", m->path);
		return SYM_MODULE;
	}
	if (!m->tried) {
		int fd = open_mapped(p, m);

		m->tried = true;
		if (fd >= 0) {
			m->elf = cache_get(p->cache, fd, base_name(m->path));
			close(fd);
		}
	}
	off = addr - m->start + m->offset;
	vaddr = off;
	if (m->elf) {
		for (size_t i = 0; i < m->elf->nsegs; i++) {
			const struct seg *sg = &m->elf->segs[i];

			if (off >= sg->off && off - sg->off < sg->filesz) {
				vaddr = off - sg->off + sg->vaddr;
				break;
			}
		}
		m->elf->last_use = ++p->cache->tick;
		s = elf_lookup(m->elf, vaddr);
		if (s) {
			snprintf(out, outlen, "%s", m->elf->names.data + s->name);
			return SYM_FUNCTION;
		}
	}
	snprintf(out, outlen, "%s+0x%llx", base_name(m->path), (unsigned long long)vaddr);
	return SYM_MODULE;
}
