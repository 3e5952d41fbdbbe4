/*
 * profile_render.c - CPU profile results and their three renderings
 * (see include/hotpath/profile.h).
 *
 * A result is a list of stacks (root first) whose frame names are interned
 * in one table (open addressing on FNV-1a of kind+name), so the renderers
 * compare integers, not strings. Names are sanitised once, when added:
 * invalid UTF-8 and control characters become '?', ';' (the folded
 * separator) becomes ':', so the three outputs need only their own
 * escaping (XML entities; JSON by jansson).
 *
 * The SVG is drawn here rather than by piping folded stacks to
 * flamegraph.pl: the agent ships no Perl, and the layout is simple - a tree
 * merged by name at every depth, children sorted by name, x and width
 * proportional to samples, frames narrower than 0.1 px dropped (with their
 * subtrees) so the file stays small. A small script makes it interactive
 * (zoom on click, regex search, reset) and the SVG still reads without it.
 * JSON goes through jansson, which does the string escaping.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hotpath/profile.h"

#define INTERN_MIN 256

struct profile_intern {
	uint32_t *slots;     /* name index + 1; 0 = empty */
	size_t cap;          /* power of two */
};

static uint64_t name_hash(const char *s, uint8_t kind)
{
	uint64_t h = 1469598103934665603ull ^ kind;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

/* Copy s into a fresh string: valid UTF-8, no control characters, no ';'. */
static char *sanitize(const char *s)
{
	size_t n = strlen(s), o = 0;
	char *d = malloc(n + 1);
	const unsigned char *u = (const unsigned char *)s;

	if (!d)
		return NULL;
	for (size_t i = 0; i < n;) {
		unsigned char c = u[i];
		size_t len = 0;
		uint32_t cp = 0;

		if (c < 0x80) {
			d[o++] = c < 0x20 || c == 0x7f ? '?' : c == ';' ? ':' : (char)c;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		}
		if (len && i + len <= n) {
			size_t k;

			for (k = 1; k < len && (u[i + k] & 0xc0) == 0x80; k++)
				cp = (cp << 6) | (u[i + k] & 0x3f);
			if (k == len && !(len == 3 && cp < 0x800) && !(len == 4 && cp < 0x10000) &&
			    cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff)) {
				memcpy(d + o, s + i, len);
				o += len;
				i += len;
				continue;
			}
		}
		d[o++] = '?';
		i++;
	}
	d[o] = '\0';
	return d;
}

struct profile_result *profile_result_new(int pid, unsigned hz, unsigned seconds)
{
	struct profile_result *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->intern = calloc(1, sizeof(*r->intern));
	if (!r->intern) {
		free(r);
		return NULL;
	}
	r->pid = pid;
	r->hz = hz;
	r->seconds = seconds;
	return r;
}

void profile_result_free(struct profile_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nstacks; i++)
		free(r->stacks[i].frames);
	for (size_t i = 0; i < r->nnames; i++)
		free(r->names[i]);
	free(r->stacks);
	free(r->names);
	free(r->name_kinds);
	if (r->intern)
		free(r->intern->slots);
	free(r->intern);
	free(r);
}

static int intern_grow(struct profile_result *r)
{
	struct profile_intern *t = r->intern;
	size_t ncap = t->cap ? t->cap * 2 : INTERN_MIN;
	uint32_t *slots = calloc(ncap, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < r->nnames; i++) {
		size_t h = (size_t)name_hash(r->names[i], r->name_kinds[i]) & (ncap - 1);

		while (slots[h])
			h = (h + 1) & (ncap - 1);
		slots[h] = (uint32_t)i + 1;
	}
	free(t->slots);
	t->slots = slots;
	t->cap = ncap;
	return 0;
}

/* Index of (sanitised name, kind), adding it when new; -ENOMEM. */
static int64_t intern(struct profile_result *r, const char *raw, uint8_t kind)
{
	struct profile_intern *t = r->intern;
	char *name = sanitize(raw);
	size_t h;

	if (!name)
		return -ENOMEM;
	if ((r->nnames + 1) * 2 > t->cap && intern_grow(r) != 0)
		goto nomem;
	h = (size_t)name_hash(name, kind) & (t->cap - 1);
	while (t->slots[h]) {
		uint32_t i = t->slots[h] - 1;

		if (r->name_kinds[i] == kind && strcmp(r->names[i], name) == 0) {
			free(name);
			return i;
		}
		h = (h + 1) & (t->cap - 1);
	}
	if (r->nnames >= UINT32_MAX - 1)
		goto nomem;
	if (r->nnames == r->names_cap) {
		size_t ncap = r->names_cap ? r->names_cap * 2 : 256;
		char **nn = realloc(r->names, ncap * sizeof(*nn));
		uint8_t *nk;

		if (!nn)
			goto nomem;
		r->names = nn;
		nk = realloc(r->name_kinds, ncap);
		if (!nk)
			goto nomem;
		r->name_kinds = nk;
		r->names_cap = ncap;
	}
	r->names[r->nnames] = name;
	r->name_kinds[r->nnames] = kind;
	t->slots[h] = (uint32_t)r->nnames + 1;
	return (int64_t)r->nnames++;
nomem:
	free(name);
	return -ENOMEM;
}

int profile_result_add(struct profile_result *r, uint32_t tgid, const char *comm,
		       const char *const *frames, const uint8_t *kinds, size_t nframes,
		       uint64_t samples)
{
	static const char *const unknown[] = { "[unknown]" };
	struct profile_stack *st;
	char *c;

	if (!r || (nframes && !frames) || nframes > 4096)
		return -EINVAL;
	if (nframes == 0) {
		frames = unknown;
		kinds = NULL;
		nframes = 1;
	}
	if (r->nstacks == r->stacks_cap) {
		size_t ncap = r->stacks_cap ? r->stacks_cap * 2 : 64;
		struct profile_stack *ns = realloc(r->stacks, ncap * sizeof(*ns));

		if (!ns)
			return -ENOMEM;
		r->stacks = ns;
		r->stacks_cap = ncap;
	}
	st = &r->stacks[r->nstacks];
	memset(st, 0, sizeof(*st));
	st->frames = malloc(nframes * sizeof(*st->frames));
	if (!st->frames)
		return -ENOMEM;
	for (size_t i = 0; i < nframes; i++) {
		int64_t idx = intern(r, frames[i] ? frames[i] : "[unknown]",
				     kinds ? kinds[i] : PROFILE_FRAME_USER);

		if (idx < 0) {
			free(st->frames);
			return -ENOMEM;
		}
		st->frames[i] = (uint32_t)idx;
	}
	c = sanitize(comm ? comm : "");
	if (!c) {
		free(st->frames);
		return -ENOMEM;
	}
	snprintf(st->comm, sizeof(st->comm), "%s", c);
	/* a cut in the middle of a UTF-8 sequence is cut back to its start */
	{
		size_t n = strlen(st->comm);

		if (strlen(c) > n && n > 0) {
			size_t k = n;

			while (k > 0 && ((unsigned char)st->comm[k - 1] & 0xc0) == 0x80)
				k--;
			if (k > 0 && ((unsigned char)st->comm[k - 1] & 0x80))
				st->comm[k - 1] = '\0';
		}
	}
	free(c);
	st->tgid = tgid;
	st->samples = samples;
	st->nframes = (uint32_t)nframes;
	r->nstacks++;
	r->total_samples += samples;
	return 0;
}

/* ---- folded ---------------------------------------------------------------- */

struct folded_line {
	char *text;
	uint64_t samples;
};

static int folded_cmp(const void *a, const void *b)
{
	return strcmp(((const struct folded_line *)a)->text, ((const struct folded_line *)b)->text);
}

int profile_write_folded(const struct profile_result *r, struct buf *out)
{
	struct folded_line *lines;
	struct buf line;
	int err = 0;
	size_t i;

	if (r->nstacks == 0)
		return 0;
	lines = calloc(r->nstacks, sizeof(*lines));
	if (!lines)
		return -ENOMEM;
	buf_init(&line, 0);
	for (i = 0; i < r->nstacks && !err; i++) {
		const struct profile_stack *st = &r->stacks[i];

		buf_reset(&line);
		err = buf_append_str(&line, st->comm[0] ? st->comm : "[unknown]");
		for (uint32_t f = 0; f < st->nframes && !err; f++) {
			uint32_t n = st->frames[f];

			err = buf_printf(&line, ";%s%s", r->names[n],
					 r->name_kinds[n] == PROFILE_FRAME_KERNEL ? "_[k]" : "");
		}
		if (!err) {
			lines[i].text = strndup(buf_head(&line), buf_used(&line));
			lines[i].samples = st->samples;
			if (!lines[i].text)
				err = -ENOMEM;
		}
	}
	buf_free(&line);
	if (!err) {
		qsort(lines, r->nstacks, sizeof(*lines), folded_cmp);
		for (i = 0; i < r->nstacks && !err; i++) {
			uint64_t n = lines[i].samples;

			while (i + 1 < r->nstacks && strcmp(lines[i].text, lines[i + 1].text) == 0)
				n += lines[++i].samples;
			err = buf_printf(out, "%s %llu\n", lines[i].text, (unsigned long long)n);
		}
	}
	for (i = 0; i < r->nstacks; i++)
		free(lines[i].text);
	free(lines);
	return err;
}

/* ---- SVG --------------------------------------------------------------------- */

#define SVG_WIDTH     1200
#define SVG_PAD       10
#define SVG_FRAME_H   16
#define SVG_FONT      12
#define SVG_TOP       60
#define SVG_BOTTOM    34
#define SVG_MIN_WIDTH 0.1

enum { NODE_ROOT = 0, NODE_COMM = 1, NODE_FRAME = 2 };

struct node {
	uint32_t name;       /* names[] index; comm: index in comms[] */
	uint8_t type;
	uint64_t samples;
	uint32_t child;      /* first child (node index), 0 = none */
	uint32_t next;       /* next sibling, 0 = none */
};

struct tree {
	struct node *n;
	size_t len, cap;
	char (*comms)[16];   /* distinct comms */
	size_t ncomms;
	const struct profile_result *r;
	unsigned max_depth;   /* deepest frame drawn (root = 0) */
};

static int64_t tree_child(struct tree *t, uint32_t parent, uint8_t type, uint32_t name)
{
	uint32_t c, last = 0;

	for (c = t->n[parent].child; c; c = t->n[c].next) {
		if (t->n[c].type == type && t->n[c].name == name)
			return c;
		last = c;
	}
	if (t->len == t->cap) {
		size_t ncap = t->cap * 2;
		struct node *nn;

		if (ncap > UINT32_MAX)
			return -ENOMEM;
		nn = realloc(t->n, ncap * sizeof(*nn));
		if (!nn)
			return -ENOMEM;
		t->n = nn;
		t->cap = ncap;
	}
	c = (uint32_t)t->len++;
	memset(&t->n[c], 0, sizeof(t->n[c]));
	t->n[c].type = type;
	t->n[c].name = name;
	if (last)
		t->n[last].next = c;
	else
		t->n[parent].child = c;
	return c;
}

static int tree_build(struct tree *t, const struct profile_result *r)
{
	memset(t, 0, sizeof(*t));
	t->r = r;
	t->cap = 1024;
	t->n = calloc(t->cap, sizeof(*t->n));
	t->comms = calloc(r->nstacks ? r->nstacks : 1, sizeof(*t->comms));
	if (!t->n || !t->comms)
		return -ENOMEM;
	t->len = 1;
	t->n[0].type = NODE_ROOT;
	for (size_t i = 0; i < r->nstacks; i++) {
		const struct profile_stack *st = &r->stacks[i];
		uint32_t ci;
		int64_t cur;

		for (ci = 0; ci < t->ncomms; ci++)
			if (strcmp(t->comms[ci], st->comm) == 0)
				break;
		if (ci == t->ncomms)
			memcpy(t->comms[t->ncomms++], st->comm, sizeof(st->comm));
		t->n[0].samples += st->samples;
		cur = tree_child(t, 0, NODE_COMM, ci);
		if (cur < 0)
			return (int)cur;
		t->n[cur].samples += st->samples;
		for (uint32_t f = 0; f < st->nframes; f++) {
			cur = tree_child(t, (uint32_t)cur, NODE_FRAME, st->frames[f]);
			if (cur < 0)
				return (int)cur;
			t->n[cur].samples += st->samples;
		}
	}
	return 0;
}

/* Depth of the deepest frame wide enough to draw: children always come
 * after their parent in t->n, so one forward pass settles every node. */
static int tree_drawn_depth(struct tree *t, double scale)
{
	unsigned *depth = calloc(t->len, sizeof(*depth));

	if (!depth)
		return -ENOMEM;
	t->max_depth = 0;
	for (size_t i = 0; i < t->len; i++) {
		if (i && !depth[i])
			continue;           /* not drawn */
		if (depth[i] > t->max_depth)
			t->max_depth = depth[i];
		for (uint32_t c = t->n[i].child; c; c = t->n[c].next) {
			if ((double)t->n[c].samples * scale >= SVG_MIN_WIDTH)
				depth[c] = depth[i] + 1;
		}
	}
	free(depth);
	return 0;
}

static void tree_free(struct tree *t)
{
	free(t->n);
	free(t->comms);
}

static const char *node_name(const struct tree *t, const struct node *n)
{
	if (n->type == NODE_ROOT)
		return "all";
	if (n->type == NODE_COMM)
		return t->comms[n->name][0] ? t->comms[n->name] : "[unknown]";
	return t->r->names[n->name];
}

static int xml_escape(struct buf *out, const char *s)
{
	int err = 0;

	for (; *s && !err; s++) {
		switch (*s) {
		case '&': err = buf_append_str(out, "&amp;"); break;
		case '<': err = buf_append_str(out, "&lt;"); break;
		case '>': err = buf_append_str(out, "&gt;"); break;
		case '"': err = buf_append_str(out, "&quot;"); break;
		case '\'': err = buf_append_str(out, "&apos;"); break;
		default:
			/* names are sanitised; this keeps titles safe too */
			err = buf_append(out, (unsigned char)*s < 0x20 ? "?" : s, 1);
		}
	}
	return err;
}

static void node_colour(const struct tree *t, const struct node *n, int rgb[3])
{
	const char *name = node_name(t, n);
	uint64_t h = name_hash(name, 0);
	double v1 = (double)(h & 0xff) / 255.0, v2 = (double)((h >> 8) & 0xff) / 255.0;
	double v3 = (double)((h >> 16) & 0xff) / 255.0;

	if (n->type == NODE_ROOT || name[0] == '[') {        /* all, [unknown] */
		rgb[0] = rgb[1] = rgb[2] = 180 + (int)(30 * v1);
	} else if (n->type == NODE_COMM) {                   /* processes: blue */
		rgb[0] = 80 + (int)(60 * v1);
		rgb[1] = 140 + (int)(60 * v1);
		rgb[2] = 200 + (int)(55 * v2);
	} else if (t->r->name_kinds[n->name] == PROFILE_FRAME_KERNEL) { /* kernel: orange */
		rgb[0] = 220 + (int)(35 * v1);
		rgb[1] = 120 + (int)(60 * v2);
		rgb[2] = 20 + (int)(40 * v3);
	} else {                                             /* user: hot */
		rgb[0] = 205 + (int)(50 * v3);
		rgb[1] = (int)(230 * v1);
		rgb[2] = (int)(55 * v2);
	}
}

struct svg_ctx {
	struct tree *t;
	struct buf *out;
	double scale;        /* px per sample */
	int height;
	uint32_t *order;     /* scratch for sorting children */
	size_t order_cap;
};

static int child_cmp(const void *a, const void *b, void *arg)
{
	const struct tree *t = arg;
	const struct node *x = &t->n[*(const uint32_t *)a];
	const struct node *y = &t->n[*(const uint32_t *)b];
	int c = strcmp(node_name(t, x), node_name(t, y));

	if (c)
		return c;
	return x->type != y->type ? (x->type < y->type ? -1 : 1)
		: (x->name < y->name ? -1 : x->name > y->name);
}

/* Sort every sibling list by name, in place (iteratively over the nodes). */
static int tree_sort(struct tree *t)
{
	uint32_t *tmp = NULL;
	size_t tmp_cap = 0;

	for (size_t i = 0; i < t->len; i++) {
		size_t k = 0;

		for (uint32_t c = t->n[i].child; c; c = t->n[c].next) {
			if (k == tmp_cap) {
				size_t ncap = tmp_cap ? tmp_cap * 2 : 64;
				uint32_t *nt = realloc(tmp, ncap * sizeof(*nt));

				if (!nt) {
					free(tmp);
					return -ENOMEM;
				}
				tmp = nt;
				tmp_cap = ncap;
			}
			tmp[k++] = c;
		}
		if (k < 2)
			continue;
		qsort_r(tmp, k, sizeof(*tmp), child_cmp, t);
		t->n[i].child = tmp[0];
		for (size_t j = 0; j + 1 < k; j++)
			t->n[tmp[j]].next = tmp[j + 1];
		t->n[tmp[k - 1]].next = 0;
	}
	free(tmp);
	return 0;
}

static int svg_frame(struct svg_ctx *s, const struct node *n, unsigned depth, double x)
{
	const struct tree *t = s->t;
	const char *name = node_name(t, n);
	double w = (double)n->samples * s->scale;
	double y = s->height - SVG_BOTTOM - (double)(depth + 1) * SVG_FRAME_H;
	double pct = t->n[0].samples ? 100.0 * (double)n->samples / (double)t->n[0].samples : 0;
	int rgb[3], err;
	size_t fit, len = strlen(name);

	node_colour(t, n, rgb);
	err = buf_append_str(s->out, "<g class=\"f\"><title>");
	err = err ?: xml_escape(s->out, name);
	err = err ?: buf_printf(s->out, " (%llu sample%s, %.2f%%)</title>",
				(unsigned long long)n->samples, n->samples == 1 ? "" : "s", pct);
	err = err ?: buf_printf(s->out,
				"<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%d\" "
				"fill=\"rgb(%d,%d,%d)\" rx=\"2\" ry=\"2\"/>",
				x, y, w, SVG_FRAME_H - 1, rgb[0], rgb[1], rgb[2]);
	err = err ?: buf_printf(s->out, "<text x=\"%.2f\" y=\"%.1f\">", x + 3,
				y + SVG_FRAME_H - 4.5);
	/* the label the script would draw: as much of the name as fits */
	fit = w > 6 ? (size_t)((w - 6) / (SVG_FONT * 0.59)) : 0;
	if (!err && fit >= 3) {
		if (len <= fit) {
			err = xml_escape(s->out, name);
		} else {
			char *cut = strndup(name, fit - 2);

			if (!cut)
				return -ENOMEM;
			/* do not leave half a UTF-8 sequence */
			for (size_t k = strlen(cut); k > 0 && ((unsigned char)cut[k - 1] & 0x80); k--) {
				bool lead = ((unsigned char)cut[k - 1] & 0xc0) == 0xc0;

				cut[k - 1] = '\0';
				if (lead)
					break;
			}
			err = xml_escape(s->out, cut);
			err = err ?: buf_append_str(s->out, "..");
			free(cut);
		}
	}
	return err ?: buf_append_str(s->out, "</text></g>\n");
}

/* Depth-first, explicit stack: depths reach ~260 and we stay off the C stack. */
static int svg_frames(struct svg_ctx *s)
{
	struct item { uint32_t node; unsigned depth; double x; } *stk;
	size_t sp = 0, cap = 256;
	int err = 0;

	stk = malloc(cap * sizeof(*stk));
	if (!stk)
		return -ENOMEM;
	stk[sp++] = (struct item){ 0, 0, SVG_PAD };
	while (sp && !err) {
		struct item it = stk[--sp];
		const struct node *n = &s->t->n[it.node];
		size_t first = sp;
		double cx = it.x;

		err = svg_frame(s, n, it.depth, it.x);
		for (uint32_t c = n->child; c && !err; c = s->t->n[c].next) {
			double w = (double)s->t->n[c].samples * s->scale;

			if (w >= SVG_MIN_WIDTH) {
				if (sp == cap) {
					struct item *ns = realloc(stk, cap * 2 * sizeof(*ns));

					if (!ns) {
						err = -ENOMEM;
						break;
					}
					stk = ns;
					cap *= 2;
				}
				stk[sp++] = (struct item){ c, it.depth + 1, cx };
			}
			cx += w;
		}
		/* pushed in name order; reverse so they pop in name order */
		for (size_t a = first, b = sp; b > a + 1; a++, b--) {
			struct item tmp = stk[a];

			stk[a] = stk[b - 1];
			stk[b - 1] = tmp;
		}
	}
	free(stk);
	return err;
}

static const char svg_script[] =
"<script type=\"text/ecmascript\"><![CDATA[\n"
"'use strict';\n"
"var W=" "%d" ",P=" "%d" ",F=" "%d" ",fr=[],det,mat,srch;\n"
"function init(){det=document.getElementById('details').firstChild;"
"mat=document.getElementById('matched');srch=document.getElementById('search');\n"
" var gs=document.getElementsByClassName('f');\n"
" for(var i=0;i<gs.length;i++){var g=gs[i],r=g.getElementsByTagName('rect')[0],"
"t=g.getElementsByTagName('title')[0].textContent;\n"
"  var f={g:g,r:r,t:g.getElementsByTagName('text')[0],x:+r.getAttribute('x'),"
"w:+r.getAttribute('width'),y:+r.getAttribute('y'),"
"n:t.replace(/ \\([0-9]+ samples?, [0-9.]+%%\\)$/,''),info:t,fill:r.getAttribute('fill')};\n"
"  fr.push(f);g.onclick=zoomer(f);g.onmouseover=shower(f);"
"g.onmouseout=function(){det.nodeValue=' ';};}\n"
" document.getElementById('unzoom').onclick=unzoom;srch.onclick=search;\n"
" window.addEventListener('keydown',function(e){if(e.keyCode===114||"
"(e.ctrlKey&&e.keyCode===70)){e.preventDefault();search();}"
"else if(e.keyCode===27){unzoom();reset();}});}\n"
"function shower(f){return function(){det.nodeValue=f.info;};}\n"
"function label(f,x,w){var n=Math.floor((w-6)/(F*0.59));f.t.setAttribute('x',x+3);\n"
" f.t.textContent=n<3?'':(f.n.length<=n?f.n:f.n.substring(0,n-2)+'..');}\n"
"function place(f,x,w){f.r.setAttribute('x',x);f.r.setAttribute('width',w);"
"f.g.style.display='';label(f,x,w);}\n"
"function zoomer(z){return function(){var s=(W-2*P)/z.w;"
"document.getElementById('unzoom').style.opacity='1';\n"
" fr.forEach(function(f){if(f.y>z.y){if(f.x<=z.x+1e-6&&f.x+f.w>=z.x+z.w-1e-6)"
"place(f,P,W-2*P);else f.g.style.display='none';}\n"
"  else if(f.x>=z.x-1e-6&&f.x+f.w<=z.x+z.w+1e-6)place(f,P+(f.x-z.x)*s,f.w*s);"
"else f.g.style.display='none';});};}\n"
"function unzoom(){document.getElementById('unzoom').style.opacity='0';"
"fr.forEach(function(f){place(f,f.x,f.w);});}\n"
"function reset(){fr.forEach(function(f){f.r.setAttribute('fill',f.fill);});"
"mat.textContent=' ';}\n"
"function search(){var term=prompt('Search for (regular expression):','');"
"if(term===null)return;reset();if(term==='')return;var re;\n"
" try{re=new RegExp(term);}catch(e){alert(e);return;}\n"
" var iv=[];fr.forEach(function(f){if(f.y<fr[0].y&&re.test(f.n)){"
"f.r.setAttribute('fill','rgb(230,0,230)');iv.push([f.x,f.x+f.w]);}});\n"
" iv.sort(function(a,b){return a[0]-b[0];});var tot=0,e=-1;\n"
" iv.forEach(function(v){if(v[0]>=e){tot+=v[1]-v[0];e=v[1];}"
"else if(v[1]>e){tot+=v[1]-e;e=v[1];}});\n"
" mat.textContent='Matched: '+(100*tot/(W-2*P)).toFixed(1)+'%%';}\n"
"]]></script>\n";

int profile_write_svg(const struct profile_result *r, const char *title, struct buf *out)
{
	struct tree t;
	struct svg_ctx s = { 0 };
	char subtitle[160];
	int err, height;

	err = tree_build(&t, r);
	err = err ?: tree_sort(&t);
	if (err)
		goto done;
	s.scale = t.n[0].samples ? (double)(SVG_WIDTH - 2 * SVG_PAD) / (double)t.n[0].samples : 0;
	err = tree_drawn_depth(&t, s.scale);
	if (err)
		goto done;
	height = SVG_TOP + (int)(t.max_depth + 1) * SVG_FRAME_H + SVG_BOTTOM;
	s.t = &t;
	s.out = out;
	s.height = height;
	if (r->pid)
		snprintf(subtitle, sizeof(subtitle), "pid %d%s, %u Hz, %llu samples", r->pid,
			 r->tree ? " and its descendants" : "", r->hz,
			 (unsigned long long)r->total_samples);
	else
		snprintf(subtitle, sizeof(subtitle), "all processes, %u Hz, %llu samples", r->hz,
			 (unsigned long long)r->total_samples);

	err = buf_printf(out,
		"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
		"<svg version=\"1.1\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
		"xmlns=\"http://www.w3.org/2000/svg\" onload=\"init()\">\n"
		"<style type=\"text/css\">text{font-family:Verdana,sans-serif;font-size:%dpx;"
		"fill:rgb(0,0,0)}.f:hover rect{stroke:black;stroke-width:0.5;cursor:pointer}"
		"#title{text-anchor:middle;font-size:17px}#subtitle{text-anchor:middle;fill:rgb(90,90,90)}"
		"#unzoom,#search{cursor:pointer}</style>\n",
		SVG_WIDTH, height, SVG_WIDTH, height, SVG_FONT);
	err = err ?: buf_printf(out, svg_script, SVG_WIDTH, SVG_PAD, SVG_FONT);
	err = err ?: buf_printf(out,
		"<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"rgb(248,248,242)\"/>\n"
		"<text id=\"title\" x=\"%d\" y=\"24\">", SVG_WIDTH, height, SVG_WIDTH / 2);
	err = err ?: xml_escape(out, title && title[0] ? title : "CPU flame graph");
	err = err ?: buf_printf(out, "</text>\n<text id=\"subtitle\" x=\"%d\" y=\"44\">",
				SVG_WIDTH / 2);
	err = err ?: xml_escape(out, subtitle);
	err = err ?: buf_printf(out,
		"</text>\n<text id=\"unzoom\" x=\"%d\" y=\"24\" style=\"opacity:0\">Reset Zoom</text>\n"
		"<text id=\"search\" x=\"%d\" y=\"24\" style=\"text-anchor:end\">Search</text>\n"
		"<text id=\"matched\" x=\"%d\" y=\"%d\" style=\"text-anchor:end\"> </text>\n"
		"<text id=\"details\" x=\"%d\" y=\"%d\"> </text>\n",
		SVG_PAD, SVG_WIDTH - SVG_PAD, SVG_WIDTH - SVG_PAD, height - 12, SVG_PAD, height - 12);
	if (!err && t.n[0].samples)
		err = svg_frames(&s);
	err = err ?: buf_append_str(out, "</svg>\n");
done:
	tree_free(&t);
	return err;
}

/* ---- JSON ------------------------------------------------------------------- */

struct fstat {
	uint32_t name;
	uint64_t self, total;
};

static int by_self(const void *a, const void *b)
{
	const struct fstat *x = a, *y = b;

	if (x->self != y->self)
		return x->self > y->self ? -1 : 1;
	if (x->total != y->total)
		return x->total > y->total ? -1 : 1;
	return x->name < y->name ? -1 : x->name > y->name;
}

static int by_total(const void *a, const void *b)
{
	const struct fstat *x = a, *y = b;

	if (x->total != y->total)
		return x->total > y->total ? -1 : 1;
	if (x->self != y->self)
		return x->self > y->self ? -1 : 1;
	return x->name < y->name ? -1 : x->name > y->name;
}

static double pct(uint64_t part, uint64_t whole)
{
	return whole ? (double)part * 100.0 / (double)whole : 0.0;
}

static json_t *fn_list(const struct profile_result *r, const struct fstat *fs, size_t n,
		       size_t top, bool need_self)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < n && json_array_size(arr) < top; i++) {
		json_t *o;

		if (need_self && fs[i].self == 0)
			break;
		o = json_pack("{s:s, s:b, s:I, s:f, s:I, s:f}",
			      "function", r->names[fs[i].name],
			      "kernel", r->name_kinds[fs[i].name] == PROFILE_FRAME_KERNEL,
			      "self_samples", (json_int_t)fs[i].self,
			      "self_percent", pct(fs[i].self, r->total_samples),
			      "total_samples", (json_int_t)fs[i].total,
			      "total_percent", pct(fs[i].total, r->total_samples));
		if (!o || json_array_append_new(arr, o) != 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

struct proc_stat {
	uint32_t tgid;
	const char *comm;
	uint64_t samples;
};

static int proc_cmp(const void *a, const void *b)
{
	const struct proc_stat *x = a, *y = b;

	if (x->samples != y->samples)
		return x->samples > y->samples ? -1 : 1;
	return x->tgid < y->tgid ? -1 : x->tgid > y->tgid;
}

static int stack_cmp(const void *a, const void *b)
{
	const struct profile_stack *x = *(const struct profile_stack *const *)a;
	const struct profile_stack *y = *(const struct profile_stack *const *)b;

	if (x->samples != y->samples)
		return x->samples > y->samples ? -1 : 1;
	return x->tgid < y->tgid ? -1 : x->tgid > y->tgid;
}

static json_t *proc_list(const struct profile_result *r, size_t top)
{
	struct proc_stat *ps = calloc(r->nstacks ? r->nstacks : 1, sizeof(*ps));
	size_t n = 0;
	json_t *arr = NULL;

	if (!ps)
		return NULL;
	/* processes are few: a linear merge is fine */
	for (size_t i = 0; i < r->nstacks; i++) {
		size_t k;

		for (k = 0; k < n; k++)
			if (ps[k].tgid == r->stacks[i].tgid &&
			    strcmp(ps[k].comm, r->stacks[i].comm) == 0)
				break;
		if (k == n) {
			ps[n].tgid = r->stacks[i].tgid;
			ps[n].comm = r->stacks[i].comm;
			n++;
		}
		ps[k].samples += r->stacks[i].samples;
	}
	qsort(ps, n, sizeof(*ps), proc_cmp);
	arr = json_array();
	for (size_t i = 0; arr && i < n && i < top; i++) {
		json_t *o = json_pack("{s:I, s:s, s:I, s:f}", "tgid", (json_int_t)ps[i].tgid,
				      "comm", ps[i].comm, "samples", (json_int_t)ps[i].samples,
				      "percent", pct(ps[i].samples, r->total_samples));

		if (!o || json_array_append_new(arr, o) != 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	free(ps);
	return arr;
}

static json_t *stack_list(const struct profile_result *r, size_t top)
{
	const struct profile_stack **ss = calloc(r->nstacks ? r->nstacks : 1, sizeof(*ss));
	json_t *arr = NULL;

	if (!ss)
		return NULL;
	for (size_t i = 0; i < r->nstacks; i++)
		ss[i] = &r->stacks[i];
	qsort(ss, r->nstacks, sizeof(*ss), stack_cmp);
	arr = json_array();
	for (size_t i = 0; arr && i < r->nstacks && i < top; i++) {
		json_t *frames = json_array(), *o;

		for (uint32_t f = 0; frames && f < ss[i]->nframes; f++) {
			uint32_t nm = ss[i]->frames[f];
			json_t *fo = json_pack("{s:s, s:b}", "function", r->names[nm], "kernel",
					       r->name_kinds[nm] == PROFILE_FRAME_KERNEL);

			if (!fo || json_array_append_new(frames, fo) != 0) {
				json_decref(frames);
				frames = NULL;
			}
		}
		o = frames ? json_pack("{s:I, s:s, s:I, s:f, s:o}", "tgid", (json_int_t)ss[i]->tgid,
				       "comm", ss[i]->comm, "samples", (json_int_t)ss[i]->samples,
				       "percent", pct(ss[i]->samples, r->total_samples),
				       "frames", frames) : NULL;
		if (!o || json_array_append_new(arr, o) != 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	free(ss);
	return arr;
}

/* Set o[k] = v, taking v; 1 when v is NULL (allocation failed) or on error. */
static int set_new(json_t *o, const char *k, json_t *v)
{
	return !v || json_object_set_new(o, k, v) != 0;
}

int profile_write_json(const struct profile_result *r, size_t top, struct buf *out)
{
	struct fstat *fs = NULL;
	uint32_t *seen = NULL;
	json_t *root = NULL, *hot, *tot, *procs, *stacks;
	char *text = NULL;
	int err = -ENOMEM, bad;

	if (top == 0)
		top = 50;
	fs = calloc(r->nnames ? r->nnames : 1, sizeof(*fs));
	seen = calloc(r->nnames ? r->nnames : 1, sizeof(*seen));
	if (!fs || !seen)
		goto done;
	for (size_t i = 0; i < r->nnames; i++)
		fs[i].name = (uint32_t)i;
	for (size_t i = 0; i < r->nstacks; i++) {
		const struct profile_stack *st = &r->stacks[i];

		fs[st->frames[st->nframes - 1]].self += st->samples;
		/* inclusive: once per stack, however deep the recursion */
		for (uint32_t f = 0; f < st->nframes; f++) {
			uint32_t nm = st->frames[f];

			if (seen[nm] != i + 1) {
				seen[nm] = (uint32_t)i + 1;
				fs[nm].total += st->samples;
			}
		}
	}
	root = json_object();
	if (!root)
		goto done;
	qsort(fs, r->nnames, sizeof(*fs), by_self);
	hot = fn_list(r, fs, r->nnames, top, true);
	qsort(fs, r->nnames, sizeof(*fs), by_total);
	tot = fn_list(r, fs, r->nnames, top, false);
	procs = proc_list(r, top);
	stacks = stack_list(r, top < 20 ? top : 20);
	bad = set_new(root, "pid", json_integer(r->pid));
	bad |= set_new(root, "descendants", json_boolean(r->tree));
	bad |= set_new(root, "hz", json_integer(r->hz));
	bad |= set_new(root, "seconds", json_integer(r->seconds));
	bad |= set_new(root, "duration_ms", json_integer((json_int_t)r->duration_ms));
	bad |= set_new(root, "samples", json_integer((json_int_t)r->total_samples));
	bad |= set_new(root, "lost_samples", json_integer((json_int_t)r->lost_samples));
	bad |= set_new(root, "lost_stacks", json_integer((json_int_t)r->lost_stacks));
	bad |= set_new(root, "hot_paths", hot);
	bad |= set_new(root, "by_total", tot);
	bad |= set_new(root, "processes", procs);
	bad |= set_new(root, "top_stacks", stacks);
	if (bad)
		goto done;
	text = json_dumps(root, JSON_INDENT(1) | JSON_REAL_PRECISION(6));
	if (!text)
		goto done;
	err = buf_append_str(out, text);
	err = err ?: buf_append_str(out, "\n");
done:
	free(text);
	json_decref(root);
	free(fs);
	free(seen);
	return err;
}
