/*
 * snapshot.c: the store image, one zstd frame (with zstd's content checksum) holding:
 *
 *   "RFSSTOR1" u32 version=1  i64 rev  i64 compact_rev  u64 applied_index  u8 nospace
 *   u64 n_leases  { i64 id  i64 ttl_s }*
 *   u64 n_keys    { u32 key_len  key  u32 n_gens
 *                   { i64 ver  i64 created_main  i64 created_sub  u32 n
 *                     { i64 main  u32 sub  u32 flags  i64 create  i64 version  i64 lease
 *                       meta(4 x u32, 3 x i64)  u32 value_len  value }* }* }*
 *   "RFSSTEND"
 *
 * integers little-endian, keys in key order. Restore parses into a fresh store, checks every
 * invariant the rest of the store relies on (key order, generation shape, revision ranges, leases)
 * and only then swaps it in, so a corrupt image is STORE_ECORRUPT and never a crash. Restore
 * decompresses a window at a time, never the whole raw image, and trusts no count for an
 * allocation. The log (the revision-ordered table) is rebuilt by sorting, and the B+tree by
 * bulk-loading the sorted keys.
 */
#include "store_internal.h"

#include <errno.h>
#include <zstd.h>
#include <stdio.h>

#define MAGIC "RFSSTOR1"
#define TRAILER "RFSSTEND"
#define VERSION 1u
#define CHUNK (1u << 20)

/* ---- save ------------------------------------------------------------------------------------ */

struct enc {
	ZSTD_CCtx *cctx;
	unsigned char *in; /* raw bytes waiting to be compressed */
	size_t in_n;
	unsigned char *out;
	store_write_fn write;
	void *arg;
	int err;
};

static void enc_flush(struct enc *e, ZSTD_EndDirective mode)
{
	ZSTD_inBuffer in = {e->in, e->in_n, 0};
	for (;;) {
		ZSTD_outBuffer out = {e->out, ZSTD_CStreamOutSize(), 0};
		size_t left = ZSTD_compressStream2(e->cctx, &out, &in, mode);
		if (ZSTD_isError(left)) {
			if (!e->err)
				e->err = -EIO;
			return;
		}
		if (out.pos && !e->err) {
			int r = e->write(e->arg, e->out, out.pos);
			if (r)
				e->err = r < 0 ? r : -EIO;
		}
		if (mode == ZSTD_e_continue ? in.pos == in.size : left == 0)
			break;
	}
	e->in_n = 0;
}

static void put_bytes(struct enc *e, const void *p, size_t n)
{
	const unsigned char *b = p;
	while (n) {
		size_t room = CHUNK - e->in_n, k = n < room ? n : room;
		memcpy(e->in + e->in_n, b, k);
		e->in_n += k;
		b += k;
		n -= k;
		if (e->in_n == CHUNK)
			enc_flush(e, ZSTD_e_continue);
	}
}

static void put_u32(struct enc *e, uint32_t v)
{
	unsigned char b[4];
	for (int i = 0; i < 4; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	put_bytes(e, b, 4);
}

static void put_u64(struct enc *e, uint64_t v)
{
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	put_bytes(e, b, 8);
}

static void put_kv(struct enc *e, const struct store__gen *g, uint32_t i)
{
	const struct store__kv *kv = STORE__REVS(g)[i];
	unsigned char b[8 + 4 + 4 + 8 * 3 + 16 + 24 + 4];
	unsigned char *p = b;
#define W(v, n)                                                                                    \
	do {                                                                                       \
		uint64_t x_ = (uint64_t)(v);                                                       \
		for (int i_ = 0; i_ < (n); i_++)                                                   \
			*p++ = (unsigned char)(x_ >> (8 * i_));                                    \
	} while (0)
	W(kv->main, 8);
	W(kv->sub, 4);
	W(kv->flags & STORE__TOMB, 4);
	W(g->created_main, 8);
	W(store__kv_version(g, i), 8);
	W(store__kv_lease(kv), 8);
	W(kv->meta.type, 4);
	W(kv->meta.mode, 4);
	W(kv->meta.uid, 4);
	W(kv->meta.gid, 4);
	W(kv->meta.atime_ns, 8);
	W(kv->meta.mtime_ns, 8);
	W(kv->meta.ctime_ns, 8);
	W(kv->vlen, 4);
#undef W
	put_bytes(e, b, sizeof b);
	put_bytes(e, store__kv_value(kv), kv->vlen);
}

int store_snapshot_save(struct store *s, store_write_fn write, void *arg)
{
	struct enc e = {0};
	e.cctx = ZSTD_createCCtx();
	e.in = malloc(CHUNK);
	e.out = malloc(ZSTD_CStreamOutSize());
	e.write = write;
	e.arg = arg;
	if (!e.cctx || !e.in || !e.out) {
		e.err = -ENOMEM;
		goto out;
	}
	ZSTD_CCtx_setParameter(e.cctx, ZSTD_c_compressionLevel, 1);
	ZSTD_CCtx_setParameter(e.cctx, ZSTD_c_checksumFlag, 1);
	put_bytes(&e, MAGIC, 8);
	put_u32(&e, VERSION);
	put_u64(&e, (uint64_t)s->rev);
	put_u64(&e, (uint64_t)s->compact_rev);
	put_u64(&e, s->applied);
	put_bytes(&e, &(unsigned char){s->nospace}, 1);
	put_u64(&e, s->n_leases);
	for (size_t i = 0; i < s->n_leases; i++) {
		put_u64(&e, (uint64_t)s->leases[i]->id);
		put_u64(&e, (uint64_t)s->leases[i]->ttl_s);
	}
	put_u64(&e, s->idx.n);
	struct store__iter it;
	store__index_seek(&s->idx, NULL, 0, &it);
	for (struct store__ki *ki; (ki = store__iter_next(&it)) && !e.err;) {
		put_u32(&e, ki->key_len);
		put_bytes(&e, ki->key, ki->key_len);
		put_u32(&e, store__ki_ngens(ki));
		for (uint32_t g = 0; g < store__ki_ngens(ki); g++) {
			const struct store__gen *gen = &STORE__GENS(ki)[g];
			put_u64(&e, (uint64_t)gen->ver);
			put_u64(&e, (uint64_t)gen->created_main);
			put_u64(&e, (uint64_t)gen->created_sub);
			put_u32(&e, gen->n);
			for (uint32_t i = 0; i < gen->n; i++)
				put_kv(&e, gen, i);
		}
	}
	put_bytes(&e, TRAILER, 8);
	enc_flush(&e, ZSTD_e_end);
out:
	ZSTD_freeCCtx(e.cctx);
	free(e.in);
	free(e.out);
	return e.err;
}

struct membuf {
	unsigned char *p;
	size_t n, cap;
};

static int membuf_write(void *arg, const void *buf, size_t len)
{
	struct membuf *m = arg;
	if (m->n + len > m->cap) {
		size_t cap = m->cap ? m->cap : 1 << 16;
		while (cap < m->n + len)
			cap *= 2;
		unsigned char *p = realloc(m->p, cap);
		if (!p)
			return -ENOMEM;
		m->p = p;
		m->cap = cap;
	}
	memcpy(m->p + m->n, buf, len);
	m->n += len;
	return 0;
}

int store_snapshot_save_buf(struct store *s, void **buf, size_t *len)
{
	/* room for the whole image from the start (more than its raw size, which the size estimate
	   bounds, can take): growing it would copy it, page faults in fresh memory each time, and
	   the pages never written are never touched */
	struct membuf m = {0};
	m.cap = ZSTD_compressBound(s->size + 32 * s->log_n + 4096);
	if (!(m.p = malloc(m.cap)))
		m.cap = 0;
	int r = store_snapshot_save(s, membuf_write, &m);
	if (r) {
		free(m.p);
		return r;
	}
	*buf = m.p;
	*len = m.n;
	return 0;
}

/* ---- restore --------------------------------------------------------------------------------- */

/* STORE_ECORRUPT, naming the failed check on stderr when STORE_SNAPSHOT_DEBUG is set. */
static int corrupt_at(int line)
{
	if (getenv("STORE_SNAPSHOT_DEBUG"))
		fprintf(stderr, "store: snapshot image fails the check at snapshot.c:%d\n", line);
	return STORE_ECORRUPT;
}
#define CORRUPT corrupt_at(__LINE__)

/*
 * The decoder: decompresses the image a window at a time (never the whole raw image at once) and
 * hands out contiguous byte runs. The window grows only when one item is bigger than it and the
 * stream really holds that many bytes, so a corrupt length costs no more memory than the image.
 */
struct dec {
	ZSTD_DCtx *dctx;
	ZSTD_inBuffer in;
	unsigned char *buf; /* the window; [p, end) not yet read */
	size_t cap;
	const unsigned char *p, *end;
	bool done; /* the frame is complete */
	bool bad;
	int err;   /* with bad: STORE_ECORRUPT or -ENOMEM */
};

static void dec_fail(struct dec *d, int err)
{
	if (!d->bad)
		d->err = err;
	d->bad = true;
}

/* Makes at least need bytes readable at d->p; false (d->bad set) when the stream has fewer. */
static bool refill(struct dec *d, size_t need)
{
	size_t have = (size_t)(d->end - d->p);
	memmove(d->buf, d->p, have);
	d->p = d->buf;
	while (have < need) {
		if (d->done) {
			dec_fail(d, CORRUPT); /* the image ends inside an item */
			break;
		}
		if (have == d->cap) {
			unsigned char *nb = realloc(d->buf, d->cap * 2);
			if (!nb) {
				dec_fail(d, -ENOMEM);
				break;
			}
			d->buf = nb;
			d->p = nb;
			d->cap *= 2;
		}
		ZSTD_outBuffer out = {d->buf, d->cap, have};
		size_t r = ZSTD_decompressStream(d->dctx, &out, &d->in);
		if (ZSTD_isError(r)) {
			dec_fail(d, CORRUPT);
			break;
		}
		if (r == 0)
			d->done = true;
		else if (d->in.pos == d->in.size && out.pos == have) {
			dec_fail(d, CORRUPT); /* truncated: zstd wants input there is not */
			break;
		}
		have = out.pos;
	}
	d->end = d->buf + have;
	return !d->bad;
}

static inline const unsigned char *take(struct dec *d, size_t n)
{
	if (d->bad)
		return NULL;
	if ((size_t)(d->end - d->p) < n && !refill(d, n))
		return NULL;
	const unsigned char *r = d->p;
	d->p += n;
	return r;
}

/* True when the image has been read to its end: frame complete, no byte left over. */
static bool dec_at_end(struct dec *d)
{
	if (d->bad || d->p != d->end)
		return false;
	while (!d->done) { /* the frame may still hold (empty) blocks and its checksum */
		ZSTD_outBuffer out = {d->buf, d->cap, 0};
		size_t r = ZSTD_decompressStream(d->dctx, &out, &d->in);
		if (ZSTD_isError(r) || out.pos)
			return false;
		if (r == 0)
			d->done = true;
		else if (d->in.pos == d->in.size)
			return false;
	}
	return d->in.pos == d->in.size;
}

static uint64_t get_n(struct dec *d, int n)
{
	const unsigned char *b = take(d, (size_t)n);
	uint64_t v = 0;
	if (!b)
		return 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

/* Little-endian n bytes at b. */
static inline uint64_t le(const unsigned char *b, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

/*
 * Where each record of the log goes in revision order, noted while parsing (the record was just
 * written): its main as a distance below the image's revision, and its sub. 8 bytes a record,
 * read in order; the records themselves are not read again (in revision order they are all over
 * the arena, a cache miss each, and even in parse order three passes over them cost more than
 * this array).
 */
struct log_ord {
	struct { uint32_t age, sub; } *e; /* e[i]: log[i]'s rev - main and sub */
	size_t cap;
	uint32_t min_age, max_age;
	bool wide; /* some rev - main does not fit 32 bits: e is not used */
};

static void ord_note(struct log_ord *o, size_t i, int64_t rev, struct store_rev rv)
{
	if (o->wide)
		return;
	if ((uint64_t)(rev - rv.main) > UINT32_MAX) {
		o->wide = true;
		return;
	}
	uint32_t age = (uint32_t)(rev - rv.main);
	if (i == o->cap) {
		o->cap = o->cap ? o->cap * 2 : 1024;
		o->e = store__xrealloc(o->e, o->cap * sizeof *o->e);
	}
	o->e[i].age = age;
	o->e[i].sub = rv.sub;
	if (!i || age < o->min_age)
		o->min_age = age;
	if (!i || age > o->max_age)
		o->max_age = age;
}

struct rev_kv {
	struct store_rev rev;
	struct store__kv *kv;
};

static int rev_kv_order(const void *a, const void *b)
{
	return store_rev_cmp(((const struct rev_kv *)a)->rev, ((const struct rev_kv *)b)->rev);
}

/*
 * Puts the log in revision order: a counting sort on main when the revisions are dense enough
 * (they are, unless compaction removed most of a long history), then an insertion sort of each
 * main's few subs; qsort of (revision, record) pairs otherwise. Returns false when two records
 * share a revision.
 */
static bool sort_log(struct store *t, const struct log_ord *o)
{
	size_t n = t->log_n;
	if (n < 2)
		return true;
	uint64_t range = o->wide ? UINT64_MAX : (uint64_t)(o->max_age - o->min_age) + 1;
	if (range > 4 * (uint64_t)n + 1024) {
		struct rev_kv *p = store__xmalloc(n * sizeof *p);
		for (size_t i = 0; i < n; i++)
			p[i] = (struct rev_kv){{t->log[i]->main, t->log[i]->sub}, t->log[i]};
		qsort(p, n, sizeof *p, rev_kv_order);
		bool ok = true;
		for (size_t i = 0; i < n; i++) {
			t->log[i] = p[i].kv;
			if (i && store_rev_cmp(p[i - 1].rev, p[i].rev) == 0)
				ok = false;
		}
		free(p);
		return ok;
	}
	/* slot of main m: max_age - (rev - m), so the oldest main is 0 */
	size_t *start = store__xcalloc(range + 1, sizeof *start);
	for (size_t i = 0; i < n; i++)
		start[o->max_age - o->e[i].age + 1]++;
	for (uint64_t r = 1; r <= range; r++)
		start[r] += start[r - 1];
	struct store__kv **out = store__xmalloc(n * sizeof *out);
	uint32_t *sub = store__xmalloc(n * sizeof *sub); /* sub of out[i] */
	for (size_t i = 0; i < n; i++) {
		size_t at = start[o->max_age - o->e[i].age]++;
		out[at] = t->log[i];
		sub[at] = o->e[i].sub;
	}
	/* start[m] is now where slot m + 1 begins: slot m is [start[m - 1], start[m]) */
	bool ok = true;
	for (uint64_t m = 0, from = 0; m < range; from = start[m++]) {
		for (size_t i = from + 1; i < start[m]; i++) { /* same main: order by sub */
			struct store__kv *kv = out[i];
			uint32_t sb = sub[i];
			size_t j = i;
			while (j > from && sub[j - 1] > sb) {
				out[j] = out[j - 1];
				sub[j] = sub[j - 1];
				j--;
			}
			if (j > from && sub[j - 1] == sb)
				ok = false;
			out[j] = kv;
			sub[j] = sb;
		}
	}
	free(start);
	free(sub);
	free(t->log);
	t->log = out;
	t->log_cap = n;
	return ok;
}

/* Moves the generations parsed so far (tmp[0..n)) into ki. */
static void install_gens(struct store__ki *ki, struct store__gen *tmp, uint32_t n)
{
	if (n == 1) {
		ki->u.g0 = tmp[0];
	} else if (n > 1) {
		struct store__gens *m = store__xmalloc(sizeof *m + STORE__CAP(n) * sizeof *tmp);
		m->n = n;
		memcpy(m->g, tmp, n * sizeof *tmp);
		ki->u.many = m;
		ki->multi = 1;
	} /* n == 0 (a corrupt image): an empty generation, freed with the rest */
}

/* Parses the image into t (a fresh store); STORE_ECORRUPT on any inconsistency. */
static int parse(struct store *t, struct dec *d)
{
	const unsigned char *m = take(d, 8);
	if (!m || memcmp(m, MAGIC, 8) || get_n(d, 4) != VERSION)
		return CORRUPT;
	t->rev = (int64_t)get_n(d, 8);
	t->compact_rev = (int64_t)get_n(d, 8);
	t->applied = get_n(d, 8);
	uint64_t ns = get_n(d, 1);
	if (d->bad || t->rev < 1 || t->compact_rev < 0 || t->compact_rev > t->rev || ns > 1)
		return CORRUPT;
	t->nospace = ns;
	/* counts are not trusted for allocation: a corrupt one runs into the end of the image */
	uint64_t nl = get_n(d, 8);
	int64_t last_id = 0;
	for (uint64_t i = 0; i < nl; i++) {
		int64_t id = (int64_t)get_n(d, 8), ttl = (int64_t)get_n(d, 8);
		if (d->bad || id <= last_id || ttl < 0)
			return CORRUPT;
		last_id = id;
		store__lease_restore(t, id, ttl); /* ascending ids: appends */
	}
	uint64_t nk = get_n(d, 8);
	if (d->bad)
		return CORRUPT;
	struct store__ki **kis = NULL;
	size_t nkis = 0, kis_cap = 0;
	struct log_ord ord = {0};
	struct store__gen *tmp = NULL; /* the generations of the key being parsed */
	size_t tmp_cap = 0;
	int err = 0;
	for (uint64_t k = 0; k < nk && !err; k++) {
		uint32_t kl = (uint32_t)get_n(d, 4);
		const unsigned char *key = take(d, kl);
		if (d->bad || !kl ||
		    (nkis && store__keycmp(kis[nkis - 1]->key, kis[nkis - 1]->key_len, key, kl) >= 0)) {
			err = CORRUPT;
			break;
		}
		if (kl > STORE__MAX_KEY) {
			err = CORRUPT;
			break;
		}
		struct store__ki *ki = store__arena_alloc(&t->arena, offsetof(struct store__ki, key) + kl);
		memset(&ki->u, 0, sizeof ki->u);
		ki->key_len = kl;
		ki->multi = 0;
		memcpy(ki->key, key, kl);
		if (nkis == kis_cap) {
			kis_cap = kis_cap ? kis_cap * 2 : 1024;
			kis = store__xrealloc(kis, kis_cap * sizeof *kis);
		}
		kis[nkis++] = ki;
		uint32_t ng = (uint32_t)get_n(d, 4);
		if (d->bad || !ng) {
			err = CORRUPT;
			break;
		}
		struct store_rev last = {0, 0};
		uint32_t g = 0;
		while (g < ng && !err) {
			if (g == tmp_cap) {
				tmp_cap = tmp_cap ? tmp_cap * 2 : 8;
				tmp = store__xrealloc(tmp, tmp_cap * sizeof *tmp);
			}
			struct store__gen *gen = &tmp[g++]; /* counted now: it may hold revisions on error */
			memset(gen, 0, sizeof *gen);
			gen->ver = (int64_t)get_n(d, 8);
			gen->created_main = (int64_t)get_n(d, 8);
			uint64_t csub = get_n(d, 8);
			gen->created_sub = (uint32_t)csub;
			uint32_t n = (uint32_t)get_n(d, 4);
			bool lastg = g == ng;
			if (d->bad || (!lastg && !n) || (ng == 1 && !n) || gen->ver < n ||
			    csub > UINT32_MAX) {
				err = CORRUPT;
				break;
			}
			for (uint32_t i = 0; i < n; i++) {
				const unsigned char *b = take(d, 84);
				if (!b) {
					err = CORRUPT;
					break;
				}
				struct store__kv hdr;
				memset(&hdr, 0, sizeof hdr);
				hdr.main = (int64_t)le(b, 8);
				hdr.sub = (uint32_t)le(b + 8, 4);
				uint64_t flags = le(b + 12, 4);
				int64_t create = (int64_t)le(b + 16, 8);
				int64_t version = (int64_t)le(b + 24, 8);
				int64_t lease = (int64_t)le(b + 32, 8);
				hdr.meta.type = (uint32_t)le(b + 40, 4);
				hdr.meta.mode = (uint32_t)le(b + 44, 4);
				hdr.meta.uid = (uint32_t)le(b + 48, 4);
				hdr.meta.gid = (uint32_t)le(b + 52, 4);
				hdr.meta.atime_ns = (int64_t)le(b + 56, 8);
				hdr.meta.mtime_ns = (int64_t)le(b + 64, 8);
				hdr.meta.ctime_ns = (int64_t)le(b + 72, 8);
				uint64_t vlen = le(b + 80, 4);
				const unsigned char *val = vlen <= STORE__MAX_VALUE ? take(d, vlen) : NULL;
				bool tomb = flags == STORE__TOMB;
				struct store_rev rv = {hdr.main, hdr.sub};
				/* create and version are what the generation implies (they are not
				   stored in memory): an image that disagrees is corrupt */
				int64_t want_version = tomb ? 0 : gen->ver - (int64_t)(n - 1 - i);
				if (d->bad || !val || flags > STORE__TOMB || store_rev_cmp(rv, last) <= 0 ||
				    hdr.main > t->rev || tomb != (i == n - 1 && !lastg) ||
				    create != gen->created_main || version != want_version ||
				    (tomb && lease)) {
					err = CORRUPT;
					break;
				}
				last = rv;
				hdr.flags = (tomb ? STORE__TOMB : 0) | (lease ? STORE__LEASE : 0);
				hdr.vlen = vlen & STORE__MAX_VALUE;
				size_t lsz = lease ? sizeof lease : 0;
				struct store__kv *kv = store__arena_alloc(&t->arena,
									  sizeof *kv + lsz + hdr.vlen);
				*kv = hdr;
				kv->ki = ki;
				if (lease) {
					t->leased = true;
					memcpy(kv->tail, &lease, sizeof lease);
				}
				if (hdr.vlen)
					memcpy(kv->tail + lsz, val, hdr.vlen);
				store__gen_push(gen, kv);
				if (t->log_n == t->log_cap) {
					t->log_cap = t->log_cap ? t->log_cap * 2 : 1024;
					t->log = store__xrealloc(t->log, t->log_cap * sizeof *t->log);
				}
				ord_note(&ord, t->log_n, t->rev, rv);
				t->log[t->log_n++] = kv;
				t->size += store__kv_cost(kv);
			}
		}
		install_gens(ki, tmp, g);
	}
	free(tmp);
	if (!err) {
		const unsigned char *tr = take(d, 8);
		if (!tr || memcmp(tr, TRAILER, 8) || !dec_at_end(d))
			err = CORRUPT;
	}
	store__index_build(&t->idx, kis, nkis);
	free(kis);
	bool distinct = !err && sort_log(t, &ord);
	free(ord.e);
	if (err)
		return d->err == -ENOMEM ? -ENOMEM : err;
	if (!distinct)
		return CORRUPT;
	return store__lease_reattach(t) ? CORRUPT : 0; /* attach live keys to their leases */
}

int store_snapshot_restore(struct store *s, const void *buf, size_t len)
{
	struct dec d = {.in = {buf, len, 0}, .cap = CHUNK};
	d.dctx = ZSTD_createDCtx();
	d.buf = malloc(d.cap);
	if (!d.dctx || !d.buf) {
		ZSTD_freeDCtx(d.dctx);
		free(d.buf);
		return -ENOMEM;
	}
	d.p = d.end = d.buf;
	struct store t;
	memset(&t, 0, sizeof t);
	store__index_init(&t.idx);
	store__arena_init(&t.arena);
	t.quota = s->quota;
	t.min_ttl = s->min_ttl;
	int r = parse(&t, &d);
	ZSTD_freeDCtx(d.dctx);
	free(d.buf);
	if (r) {
		store__free_contents(&t); /* generations may be partly filled: still consistent */
		return r;
	}
	store__watch_cancel_all(s);
	store__free_contents(s);
	*s = t;
	return 0;
}
