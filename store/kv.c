/*
 * kv.c: the MVCC key space proper: keyIndex generations (seed 000), range at a revision, put,
 * delete_range, txn as one revision, compaction (seed 004), hash_kv and the quota alarm.
 *
 * Writes go through store__begin_write, which opens the next main revision on the first change of
 * an operation group (a txn, a delete_range, a lease revoke), so a group that changes nothing keeps
 * the revision. Each change appends one kvrec to its key's current generation and to the log.
 */
#include "store_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>

#define DEFAULT_QUOTA (2ull << 30)
#define DEFAULT_MIN_TTL 5
#define KV_OVERHEAD 64 /* per stored revision in the size estimate, on top of key and value */

/* ---- helpers --------------------------------------------------------------------------------- */

/*
 * Every allocation of the store goes through these: they abort on failure, and advise the big
 * arrays (log, key table, index levels) as transparent huge pages, as the arena does its slabs:
 * filling them then takes one page fault per 2 MiB instead of one per 4 KiB.
 */
static void *checked(void *p, size_t n)
{
	if (!p) {
		fprintf(stderr, "store: out of memory allocating %zu bytes\n", n);
		abort();
	}
	if (n >= STORE__SLAB) {
		uintptr_t a = (uintptr_t)p & ~(uintptr_t)4095;
		(void)madvise((void *)a, (uintptr_t)p + n - a, MADV_HUGEPAGE); /* a hint */
	}
	return p;
}

void *store__xmalloc(size_t n)
{
	return checked(malloc(n ? n : 1), n);
}

void *store__xrealloc(void *p, size_t n)
{
	return checked(realloc(p, n ? n : 1), n);
}

void *store__xcalloc(size_t n, size_t m)
{
	if (m && n > SIZE_MAX / m)
		return checked(NULL, SIZE_MAX);
	return checked(calloc(n ? n : 1, m ? m : 1), n * m);
}

const char *store_strerror(int err)
{
	switch (err) {
	case 0: return "success";
	case STORE_ECOMPACTED: return "revision has been compacted";
	case STORE_EFUTUREREV: return "revision is a future revision";
	case STORE_ENOSPACE: return "database space exceeded (NOSPACE alarm)";
	case STORE_ELEASENOTFOUND: return "lease not found";
	case STORE_ELEASEEXISTS: return "lease already exists";
	case STORE_EKEYNOTFOUND: return "key not found";
	case STORE_ECORRUPT: return "corrupt snapshot image";
	case STORE_EWATCHCANCELED: return "watch canceled";
	default: return err < 0 && err > -4096 ? strerror(-err) : "unknown store error";
	}
}

uint64_t store__kv_cost(const struct store__kv *kv)
{
	return KV_OVERHEAD + kv->ki->key_len + kv->vlen;
}

size_t store_prefix_end(const void *prefix, size_t len, unsigned char *end)
{
	const unsigned char *p = prefix;
	for (size_t i = len; i > 0; i--) {
		if (p[i - 1] < 0xff) {
			memcpy(end, p, i - 1);
			end[i - 1] = (unsigned char)(p[i - 1] + 1);
			return i;
		}
	}
	end[0] = 0;
	return 1;
}

bool store__in_range(const unsigned char *k, size_t klen, const unsigned char *key, size_t key_len,
		     const unsigned char *end, size_t end_len)
{
	if (!end || !end_len)
		return store__keycmp(k, klen, key, key_len) == 0;
	if (store__keycmp(k, klen, key, key_len) < 0)
		return false;
	if (end_len == 1 && end[0] == 0)
		return true;
	return store__keycmp(k, klen, end, end_len) < 0;
}

/* ---- keyIndex -------------------------------------------------------------------------------- */

static struct store__ki *ki_new(void *store, const void *key, size_t len)
{
	struct store *s = store;
	struct store__ki *ki = store__arena_alloc(&s->arena, offsetof(struct store__ki, key) + len);
	memset(&ki->u, 0, sizeof ki->u);
	ki->key_len = (uint32_t)len;
	ki->multi = 0;
	memcpy(ki->key, key, len);
	return ki;
}

static void gen_free(struct store__gen *g)
{
	if (g->n > 1)
		free(g->r.many);
	g->n = 0;
	g->r.many = NULL;
}

/* Frees the arrays a keyIndex owns (not the record itself). */
static void ki_free_arrays(struct store__ki *ki)
{
	for (uint32_t g = 0; g < store__ki_ngens(ki); g++)
		gen_free(&STORE__GENS(ki)[g]);
	if (ki->multi)
		free(ki->u.many);
}

void store__ki_free(struct store *s, struct store__ki *ki)
{
	ki_free_arrays(ki);
	store__arena_free(&s->arena, ki, store__ki_size(ki));
}

void store__gen_push(struct store__gen *g, struct store__kv *kv)
{
	if (g->n == 0) {
		g->r.one = kv;
	} else if (g->n == 1) {
		struct store__kv *one = g->r.one;
		g->r.many = store__xmalloc(STORE__CAP(2) * sizeof *g->r.many);
		g->r.many[0] = one;
		g->r.many[1] = kv;
	} else {
		if (g->n == STORE__CAP(g->n))
			g->r.many = store__xrealloc(g->r.many, 2 * g->n * sizeof *g->r.many);
		g->r.many[g->n] = kv;
	}
	g->n++;
}

/* Drops the first k revisions of g (k < n), keeping the array's shape rule. */
static void gen_drop_first(struct store__gen *g, uint32_t k)
{
	uint32_t n = g->n - k;
	if (n == 1) {
		struct store__kv *one = g->r.many[k];
		free(g->r.many);
		g->r.one = one;
	} else {
		memmove(g->r.many, g->r.many + k, n * sizeof *g->r.many);
		if (STORE__CAP(n) < STORE__CAP(g->n))
			g->r.many = store__xrealloc(g->r.many, STORE__CAP(n) * sizeof *g->r.many);
	}
	g->n = n;
}

static struct store__gen *ki_cur(const struct store__ki *ki)
{
	return &STORE__GENS(ki)[store__ki_ngens(ki) - 1];
}

bool store__ki_live(const struct store__ki *ki)
{
	return ki_cur(ki)->n > 0;
}

/* The live kvrec of the key, NULL when deleted. */
struct store__kv *store__ki_latest(const struct store__ki *ki)
{
	struct store__gen *g = ki_cur(ki);
	return g->n ? STORE__REVS(g)[g->n - 1] : NULL;
}

/*
 * The first of v[0..n) with main >= rev (n when none), v in revision order: the one binary search
 * over kvrecs, for the log (store__log_seek) and a generation's revisions (gen_upto,
 * store__kv_locate).
 */
static size_t kvs_seek(struct store__kv *const *v, size_t n, int64_t rev)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v[mid]->main < rev)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

size_t store__log_seek(const struct store *s, int64_t rev)
{
	return kvs_seek(s->log, s->log_n, rev);
}

/*
 * How many of g's revisions are at or before `at` (so the last of them is n - 1). A key rewritten
 * often (a directory whose mtime every create moves) has thousands of revisions, which a reader
 * pinned to an older revision (the inotify replay) or a compaction must not walk one by one: the
 * newest is tried first (every read at the current revision), then a binary search.
 */
static uint32_t gen_upto(const struct store__gen *g, int64_t at)
{
	struct store__kv *const *revs = STORE__REVS(g);
	if (!g->n || revs[g->n - 1]->main <= at)
		return g->n;
	return (uint32_t)kvs_seek(revs, g->n, at + 1);
}

struct store__kv *store__ki_get(const struct store__ki *ki, int64_t at, const struct store__gen **g,
				uint32_t *i)
{
	int64_t ng = store__ki_ngens(ki);
	for (int64_t cg = ng - 1; cg >= 0; cg--) {
		const struct store__gen *gen = &STORE__GENS(ki)[cg];
		if (!gen->n)
			continue;
		struct store__kv *const *revs = STORE__REVS(gen);
		if (cg != ng - 1 && revs[gen->n - 1]->main <= at)
			return NULL; /* tombstoned at or before `at` */
		uint32_t n = gen_upto(gen, at);
		if (n) {
			*g = gen;
			*i = n - 1;
			return revs[n - 1];
		}
	}
	return NULL;
}

struct store__gen *store__kv_locate(const struct store__kv *kv, uint32_t *i)
{
	struct store__ki *ki = kv->ki;
	/* the newest is tried first (a watcher at the head); a short generation is scanned for the
	   pointer (no record read); a long one is searched (a watcher behind on a key with
	   thousands of revisions must not walk them one by one) */
	for (uint32_t g = store__ki_ngens(ki); g-- > 0;) {
		struct store__gen *gen = &STORE__GENS(ki)[g];
		struct store__kv *const *revs = STORE__REVS(gen);
		if (gen->n && revs[gen->n - 1] == kv) {
			*i = gen->n - 1;
			return gen;
		}
		if (gen->n <= 16) {
			for (uint32_t j = gen->n; j-- > 0;)
				if (revs[j] == kv) {
					*i = j;
					return gen;
				}
			continue;
		}
		/* among the revisions of kv's main (a txn can end a generation and start the next
		   in one revision, so kv may be in an earlier generation still) */
		for (uint32_t j = (uint32_t)kvs_seek(revs, gen->n, kv->main);
		     j < gen->n && revs[j]->main == kv->main; j++)
			if (revs[j] == kv) {
				*i = j;
				return gen;
			}
	}
	abort(); /* every stored kvrec is in its key's generations */
}

void store__fill_kv(struct store_kv *out, const struct store__gen *g, uint32_t i, bool keys_only)
{
	const struct store__kv *kv = STORE__REVS(g)[i];
	out->key = kv->ki->key;
	out->key_len = kv->ki->key_len;
	out->value = keys_only ? NULL : store__kv_value(kv);
	out->value_len = keys_only ? 0 : kv->vlen;
	out->create_revision = (kv->flags & STORE__TOMB) ? 0 : g->created_main;
	out->mod_revision = kv->main;
	out->mod_sub = kv->sub;
	out->version = store__kv_version(g, i);
	out->lease = store__kv_lease(kv);
	out->meta = kv->meta;
}

/* Fills out from the live revision of ki (which must be live). */
static void fill_latest(struct store_kv *out, const struct store__ki *ki, bool keys_only)
{
	const struct store__gen *g = ki_cur(ki);
	store__fill_kv(out, g, g->n - 1, keys_only);
}

/* ---- store ----------------------------------------------------------------------------------- */

int store_open(const struct store_config *cfg, struct store **out)
{
	struct store *s = store__xcalloc(1, sizeof *s);
	store__index_init(&s->idx);
	store__arena_init(&s->arena);
	s->rev = 1;
	s->quota = cfg && cfg->quota_bytes ? cfg->quota_bytes : DEFAULT_QUOTA;
	s->min_ttl = cfg && cfg->min_lease_ttl_s ? cfg->min_lease_ttl_s : DEFAULT_MIN_TTL;
	*out = s;
	return 0;
}

void store__free_contents(struct store *s)
{
	free(s->log);
	s->log = NULL;
	s->log_n = s->log_cap = 0;
	struct store__iter it;
	store__index_seek(&s->idx, NULL, 0, &it);
	for (struct store__ki *ki; (ki = store__iter_next(&it));)
		ki_free_arrays(ki);
	store__index_free(&s->idx);
	store__arena_release(&s->arena);
	store__leases_free(s);
}

void store_close(struct store *s)
{
	if (!s)
		return;
	store__watch_cancel_all(s);
	store__free_contents(s);
	free(s);
}

int64_t store_rev(const struct store *s) { return s->rev; }
int64_t store_compact_rev(const struct store *s) { return s->compact_rev; }
void store_set_applied_index(struct store *s, uint64_t index) { s->applied = index; }
uint64_t store_applied_index(const struct store *s) { return s->applied; }
uint64_t store_size(const struct store *s) { return s->size; }
bool store_alarm_nospace(const struct store *s) { return s->nospace; }

int store_alarm_disarm(struct store *s)
{
	if (s->size > s->quota)
		return STORE_ENOSPACE;
	s->nospace = false;
	return 0;
}

/* ---- range ----------------------------------------------------------------------------------- */

static int check_rev(const struct store *s, int64_t rev)
{
	if (rev > s->rev)
		return STORE_EFUTUREREV;
	if (rev < s->compact_rev)
		return STORE_ECOMPACTED;
	return 0;
}

/* The generation and index of key's revision visible at `at` (checked), or NULL. */
static const struct store__kv *point_get(struct store *s, const void *key, size_t len, int64_t at,
					 const struct store__gen **g, uint32_t *gi)
{
	struct store__ki *ki = store__index_get(&s->idx, key, len);
	return ki ? store__ki_get(ki, at, g, gi) : NULL;
}

int store_get(struct store *s, const void *key, size_t key_len, int64_t rev, struct store_kv *out)
{
	int64_t at = rev > 0 ? rev : s->rev;
	int r = check_rev(s, at);
	if (r)
		return r;
	const struct store__gen *g;
	uint32_t gi;
	if (!point_get(s, key, key_len, at, &g, &gi))
		return STORE_EKEYNOTFOUND;
	store__fill_kv(out, g, gi, false);
	return 0;
}

/*
 * A freed result array kept per thread for the next point range. Allocating each one-key result
 * with malloc and freeing it with free kept point ranges from overlapping their cache misses
 * (glibc's malloc and free around a result filled while a miss is outstanding; why was not
 * pinned down): a point range cost far more than a store_get, and costs what one does with the
 * array reused. Any result array will do (it holds one kv at least). A thread that exits frees its own
 * (spare_drop, run by a thread-specific key); the main thread's stays reachable until exit.
 */
static __thread struct store_kv *spare_kvs;
static __thread bool spare_registered; /* spare_key is set for this thread */
static pthread_key_t spare_key;
static bool spare_key_ok;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;

static void spare_drop(void *unused)
{
	(void)unused;
	free(spare_kvs);
	spare_kvs = NULL;
}

static void spare_key_make(void)
{
	spare_key_ok = pthread_key_create(&spare_key, spare_drop) == 0;
}

/* An array for one kv: the thread's spare, or a new one. */
static struct store_kv *kvs_one(void)
{
	struct store_kv *kvs = spare_kvs;
	spare_kvs = NULL;
	return kvs ? kvs : store__xmalloc(sizeof *kvs);
}

/* Frees a result array (NULL: nothing), or keeps it as the thread's spare. */
static void kvs_release(struct store_kv *kvs)
{
	if (!kvs || spare_kvs) {
		free(kvs);
		return;
	}
	if (!spare_registered) {
		pthread_once(&spare_once, spare_key_make);
		if (!spare_key_ok || pthread_setspecific(spare_key, &spare_registered)) {
			free(kvs);
			return;
		}
		spare_registered = true;
	}
	spare_kvs = kvs;
}

int store_range(struct store *s, const struct store_range_req *req, struct store_range_result *res)
{
	memset(res, 0, sizeof *res);
	int64_t at = req->rev > 0 ? req->rev : s->rev;
	int r = check_rev(s, at);
	if (r)
		return r;
	res->rev = s->rev;
	bool count_only = req->flags & STORE_RANGE_COUNT_ONLY;
	bool keys_only = req->flags & STORE_RANGE_KEYS_ONLY;
	size_t cap = 0;
	if (!req->end || !req->end_len) {
		const struct store__gen *g;
		uint32_t gi;
		if (point_get(s, req->key, req->key_len, at, &g, &gi)) {
			res->count = 1;
			if (!count_only) {
				res->kvs = kvs_one();
				store__fill_kv(&res->kvs[0], g, gi, keys_only);
				res->n = 1;
			}
		}
		return 0;
	}
	struct store__iter it;
	store__index_seek(&s->idx, req->key, req->key_len, &it);
	const unsigned char *end = req->end;
	bool to_end = req->end_len == 1 && end[0] == 0;
	for (struct store__ki *ki; (ki = store__iter_next(&it));) {
		if (!to_end && store__keycmp(ki->key, ki->key_len, end, req->end_len) >= 0)
			break;
		const struct store__gen *g;
		uint32_t gi;
		if (!store__ki_get(ki, at, &g, &gi))
			continue;
		res->count++;
		if (count_only)
			continue;
		if (req->limit > 0 && (int64_t)res->n >= req->limit) {
			res->more = true;
			continue;
		}
		if (res->n == cap) {
			cap = cap ? cap * 2 : 8;
			res->kvs = store__xrealloc(res->kvs, cap * sizeof *res->kvs);
		}
		store__fill_kv(&res->kvs[res->n++], g, gi, keys_only);
	}
	return 0;
}

void store_range_result_free(struct store_range_result *res)
{
	kvs_release(res->kvs);
	res->kvs = NULL;
	res->n = 0;
}

/* ---- writes ---------------------------------------------------------------------------------- */

void store__begin_write(struct store *s)
{
	if (!s->wrote) {
		s->wrote = true;
		s->rev++;
		s->sub = 0;
	}
}

static void log_push(struct store *s, struct store__kv *kv)
{
	if (s->log_n == s->log_cap) {
		s->log_cap = s->log_cap ? s->log_cap * 2 : 1024;
		s->log = store__xrealloc(s->log, s->log_cap * sizeof *s->log);
	}
	s->log[s->log_n++] = kv;
	s->size += store__kv_cost(kv);
}

static struct store__kv *kv_new(struct store *s, struct store__ki *ki, const void *val, size_t vlen,
			       int64_t lease)
{
	size_t lsz = lease ? sizeof lease : 0;
	struct store__kv *kv = store__arena_alloc(&s->arena, sizeof *kv + lsz + vlen);
	memset(kv, 0, sizeof *kv);
	kv->ki = ki;
	kv->main = s->rev;
	kv->sub = s->sub++;
	kv->vlen = (uint32_t)vlen;
	if (lease) {
		s->leased = true;
		kv->flags = STORE__LEASE;
		memcpy(kv->tail, &lease, sizeof lease);
	}
	if (vlen)
		memcpy(kv->tail + lsz, val, vlen);
	return kv;
}

/* Validates a put against the current state (no change). */
static int check_put(struct store *s, const struct store_put *p)
{
	if (p->key_len == 0 || p->key_len > STORE__MAX_KEY)
		return -EINVAL;
	if (p->value_len > STORE__MAX_VALUE)
		return -EFBIG;
	if (p->flags & (STORE_PUT_IGNORE_VALUE | STORE_PUT_IGNORE_LEASE)) {
		struct store__ki *ki = store__index_get(&s->idx, p->key, p->key_len);
		if (!ki || !store__ki_live(ki))
			return STORE_EKEYNOTFOUND;
	}
	if (!(p->flags & STORE_PUT_IGNORE_LEASE) && p->lease && !store__lease_find(s, p->lease))
		return STORE_ELEASENOTFOUND;
	return 0;
}

/* Applies a validated put inside the open write. */
static void do_put(struct store *s, const struct store_put *p, struct store_put_result *res)
{
	store__begin_write(s);
	struct store__ki *ki = store__index_find_or_add(&s->idx, p->key, p->key_len, ki_new, s);
	struct store__kv *old = store__ki_latest(ki);
	if (res) {
		res->has_prev = false;
		if (old && (p->flags & STORE_PUT_PREV_KV)) {
			res->has_prev = true;
			fill_latest(&res->prev, ki, false); /* the new revision changes its version */
		}
	}
	const void *val = p->value;
	size_t vlen = p->value_len;
	const struct store_meta *meta = &p->meta;
	int64_t lease = p->lease, old_lease = old ? store__kv_lease(old) : 0;
	if (old && (p->flags & STORE_PUT_IGNORE_VALUE)) {
		val = store__kv_value(old);
		vlen = old->vlen;
		meta = &old->meta;
	}
	if (old && (p->flags & STORE_PUT_IGNORE_LEASE))
		lease = old_lease;
	struct store__kv *kv = kv_new(s, ki, val, vlen, lease);
	kv->meta = *meta;
	struct store__gen *g = ki_cur(ki);
	if (!g->n) {
		g->created_main = kv->main;
		g->created_sub = kv->sub;
	}
	g->ver++;
	store__gen_push(g, kv);
	log_push(s, kv);
	if (old && old_lease != lease && old_lease)
		store__lease_detach(s, old_lease, ki);
	if (lease && (!old || old_lease != lease))
		store__lease_attach(s, lease, ki);
	if (res)
		res->rev = s->rev;
}

/* Deletes a live key inside the open write: a tombstone ends its generation. */
int store__delete_ki(struct store *s, struct store__ki *ki, struct store_kv *prev)
{
	struct store__kv *old = store__ki_latest(ki);
	if (!old)
		return 0;
	store__begin_write(s);
	if (prev)
		fill_latest(prev, ki, false);
	int64_t old_lease = store__kv_lease(old);
	struct store__kv *kv = kv_new(s, ki, NULL, 0, 0);
	kv->flags = STORE__TOMB;
	struct store__gen *g = ki_cur(ki);
	g->ver++;
	store__gen_push(g, kv);
	log_push(s, kv);
	if (old_lease)
		store__lease_detach(s, old_lease, ki);
	if (!ki->multi) {
		struct store__gens *m = store__xmalloc(sizeof *m + STORE__CAP(2) * sizeof m->g[0]);
		m->n = 1;
		m->g[0] = ki->u.g0;
		ki->u.many = m;
		ki->multi = 1;
	} else if (ki->u.many->n == STORE__CAP(ki->u.many->n)) {
		ki->u.many = store__xrealloc(ki->u.many, sizeof *ki->u.many +
							 2 * ki->u.many->n * sizeof ki->u.many->g[0]);
	}
	memset(&ki->u.many->g[ki->u.many->n++], 0, sizeof ki->u.many->g[0]);
	return 1;
}

static void do_delete(struct store *s, const struct store_delete *d, struct store_delete_result *res)
{
	memset(res, 0, sizeof *res);
	size_t cap = 0;
	if (!d->end || !d->end_len) {
		struct store__ki *ki = store__index_get(&s->idx, d->key, d->key_len);
		if (ki && store__ki_live(ki)) {
			if (d->prev_kv) {
				res->prev_kvs = store__xmalloc(sizeof *res->prev_kvs);
				res->n_prev = 1;
			}
			res->deleted = store__delete_ki(s, ki, res->prev_kvs);
		}
		res->rev = s->rev;
		return;
	}
	/* Collect first: deleting never changes the index's shape, but keep the scan simple. */
	struct store__iter it;
	store__index_seek(&s->idx, d->key, d->key_len, &it);
	for (struct store__ki *ki; (ki = store__iter_next(&it));) {
		if (!store__in_range(ki->key, ki->key_len, d->key, d->key_len, d->end, d->end_len))
			break;
		if (!store__ki_live(ki))
			continue;
		struct store_kv *prev = NULL;
		if (d->prev_kv) {
			if (res->n_prev == cap) {
				cap = cap ? cap * 2 : 8;
				res->prev_kvs = store__xrealloc(res->prev_kvs, cap * sizeof *prev);
			}
			prev = &res->prev_kvs[res->n_prev++];
		}
		res->deleted += store__delete_ki(s, ki, prev);
	}
	res->rev = s->rev;
}

static int quota_check(struct store *s, uint64_t add)
{
	if (s->nospace)
		return STORE_ENOSPACE;
	if (s->size + add > s->quota) {
		s->nospace = true;
		return STORE_ENOSPACE;
	}
	return 0;
}

static uint64_t put_cost(const struct store_put *p)
{
	return KV_OVERHEAD + p->key_len + p->value_len;
}

int store_put(struct store *s, const struct store_put *p, struct store_put_result *res)
{
	int r = check_put(s, p);
	if (r)
		return r;
	r = quota_check(s, put_cost(p));
	if (r)
		return r;
	s->wrote = false;
	do_put(s, p, res);
	s->wrote = false;
	return 0;
}

int store_delete_range(struct store *s, const struct store_delete *d, struct store_delete_result *res)
{
	if (!d->key_len)
		return -EINVAL;
	struct store_delete_result unused;
	s->wrote = false;
	do_delete(s, d, res ? res : &unused);
	s->wrote = false;
	if (!res)
		store_delete_result_free(&unused);
	return 0;
}

void store_delete_result_free(struct store_delete_result *res)
{
	free(res->prev_kvs);
	res->prev_kvs = NULL;
	res->n_prev = 0;
}

/* ---- txn ------------------------------------------------------------------------------------- */

static bool cmp_int(int64_t a, int64_t b, enum store_cmp_result r)
{
	switch (r) {
	case STORE_CMP_EQ: return a == b;
	case STORE_CMP_NE: return a != b;
	case STORE_CMP_LT: return a < b;
	case STORE_CMP_GT: return a > b;
	}
	return false;
}

/* A compare on one keyIndex (NULL or not live: a missing key). */
static bool eval_cmp_ki(const struct store__ki *ki, const struct store_cmp *c)
{
	struct store__kv *kv = ki ? store__ki_latest(ki) : NULL;
	if (c->target == STORE_CMP_VALUE) {
		if (!kv)
			return false;
		int x = store__keycmp(store__kv_value(kv), kv->vlen, c->value, c->value_len);
		return cmp_int(x, 0, c->result);
	}
	int64_t v = 0;
	if (kv) {
		const struct store__gen *g = ki_cur(ki);
		switch (c->target) {
		case STORE_CMP_VERSION: v = store__kv_version(g, g->n - 1); break;
		case STORE_CMP_CREATE: v = g->created_main; break;
		case STORE_CMP_MOD: v = kv->main; break;
		case STORE_CMP_LEASE: v = store__kv_lease(kv); break;
		case STORE_CMP_VALUE: break;
		}
	}
	return cmp_int(v, c->num, c->result);
}

static bool eval_cmp(struct store *s, const struct store_cmp *c)
{
	if (!c->end || !c->end_len)
		return eval_cmp_ki(store__index_get(&s->idx, c->key, c->key_len), c);
	struct store__iter it;
	bool any = false;
	store__index_seek(&s->idx, c->key, c->key_len, &it);
	for (struct store__ki *ki; (ki = store__iter_next(&it));) {
		if (!store__in_range(ki->key, ki->key_len, c->key, c->key_len, c->end, c->end_len))
			break;
		if (!store__ki_live(ki))
			continue;
		any = true;
		if (!eval_cmp_ki(ki, c))
			return false;
	}
	return any || eval_cmp_ki(NULL, c);
}

/* Whether a and b are apart: neither begins with the other (and neither is empty). */
static bool prefixes_apart(const void *a, size_t al, const void *b, size_t bl)
{
	return al && bl && memcmp(a, b, al < bl ? al : bl) != 0;
}

/* The live keyIndexes that begin with prefix, in key order (malloc'd into *out); how many. */
static size_t live_with_prefix(struct store *s, const void *prefix, size_t len,
			       struct store__ki ***out)
{
	size_t n = 0, cap = 0;
	struct store__ki **v = NULL;
	struct store__iter it;
	store__index_seek(&s->idx, prefix, len, &it);
	for (struct store__ki *ki; (ki = store__iter_next(&it));) {
		if (ki->key_len < len || memcmp(ki->key, prefix, len) != 0)
			break;
		if (!store__ki_live(ki))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			v = store__xrealloc(v, cap * sizeof *v);
		}
		v[n++] = ki;
	}
	*out = v;
	return n;
}

/* What the keys under from add to the store's size when put under to instead (for the quota),
   or an error of one of those puts. */
static int check_moved_keys(struct store *s, const void *from, size_t from_len, size_t to_len,
			    uint64_t *add)
{
	struct store__ki **v;
	size_t n = live_with_prefix(s, from, from_len, &v);
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++) {
		const struct store__kv *kv = store__ki_latest(v[i]);
		uint64_t klen = (uint64_t)v[i]->key_len - from_len + to_len;
		if (klen > STORE__MAX_KEY)
			rc = -EINVAL;
		*add += KV_OVERHEAD + klen + kv->vlen;
	}
	free(v);
	return rc;
}

/* What a move (swap: both ways) adds to the store's size, or an error of one of its puts. */
static int check_move(struct store *s, const struct store_move *m, bool swap, uint64_t *add)
{
	if (!prefixes_apart(m->from, m->from_len, m->to, m->to_len))
		return -EINVAL;
	int rc = check_moved_keys(s, m->from, m->from_len, m->to_len, add);
	if (!rc && swap)
		rc = check_moved_keys(s, m->to, m->to_len, m->from_len, add);
	return rc;
}

/*
 * Puts kv (a kvrec of the key ki, which began with from_len bytes of prefix) at to + the rest of
 * its key, with its value, metadata and lease. *key (*cap bytes, realloc'd) is scratch.
 */
static void put_moved(struct store *s, const struct store__ki *ki, const struct store__kv *kv,
		      size_t from_len, const void *to, size_t to_len, unsigned char **key,
		      size_t *cap)
{
	size_t rest = ki->key_len - from_len, klen = to_len + rest;
	if (klen > *cap) {
		*cap = klen * 2;
		*key = store__xrealloc(*key, *cap);
	}
	memcpy(*key, to, to_len);
	memcpy(*key + to_len, (const unsigned char *)ki->key + from_len, rest);
	/* the value stays where it is in the arena (history) while the new record copies it */
	struct store_put p = {.key = *key, .key_len = klen, .value = store__kv_value(kv),
			      .value_len = kv->vlen, .lease = store__kv_lease(kv), .meta = kv->meta};
	do_put(s, &p, NULL);
}

/* Applies a validated move inside the open write. */
static void do_move(struct store *s, const struct store_move *m, int64_t *moved)
{
	struct store__ki **v;
	size_t n = live_with_prefix(s, m->from, m->from_len, &v);
	size_t cap = 0;
	unsigned char *key = NULL;
	for (size_t i = 0; i < n; i++) {
		put_moved(s, v[i], store__ki_latest(v[i]), m->from_len, m->to, m->to_len, &key, &cap);
		store__delete_ki(s, v[i], NULL);
	}
	*moved = (int64_t)n;
	free(key);
	free(v);
}

/*
 * Applies a validated swap inside the open write: both sides' keys are read, all are deleted,
 * then each is put at the other side. A deleted key's kvrec stays in the arena as history, so it
 * is still there to be copied; a put where a key of the other side was begins a new generation.
 */
static void do_swap(struct store *s, const struct store_move *m, int64_t *moved)
{
	struct store__ki **a, **b;
	size_t na = live_with_prefix(s, m->from, m->from_len, &a);
	size_t nb = live_with_prefix(s, m->to, m->to_len, &b);
	struct store__kv **ka = store__xmalloc((na + 1) * sizeof *ka);
	struct store__kv **kb = store__xmalloc((nb + 1) * sizeof *kb);
	for (size_t i = 0; i < na; i++) {
		ka[i] = store__ki_latest(a[i]);
		store__delete_ki(s, a[i], NULL);
	}
	for (size_t i = 0; i < nb; i++) {
		kb[i] = store__ki_latest(b[i]);
		store__delete_ki(s, b[i], NULL);
	}
	size_t cap = 0;
	unsigned char *key = NULL;
	for (size_t i = 0; i < na; i++)
		put_moved(s, a[i], ka[i], m->from_len, m->to, m->to_len, &key, &cap);
	for (size_t i = 0; i < nb; i++)
		put_moved(s, b[i], kb[i], m->to_len, m->from, m->from_len, &key, &cap);
	*moved = (int64_t)(na + nb);
	free(key);
	free(ka);
	free(kb);
	free(a);
	free(b);
}

int store_txn(struct store *s, const struct store_txn *t, struct store_txn_result *res)
{
	memset(res, 0, sizeof *res);
	bool ok = true;
	for (size_t i = 0; i < t->n_cmps && ok; i++)
		ok = eval_cmp(s, &t->cmps[i]);
	const struct store_op *ops = ok ? t->success : t->failure;
	size_t n = ok ? t->n_success : t->n_failure;
	uint64_t add = 0;
	for (size_t i = 0; i < n; i++) {
		if (ops[i].type == STORE_OP_PUT) {
			int r = check_put(s, &ops[i].put);
			if (r)
				return r;
			add += put_cost(&ops[i].put);
		} else if (ops[i].type == STORE_OP_RANGE && ops[i].range.rev > 0) {
			int r = check_rev(s, ops[i].range.rev);
			if (r)
				return r;
		} else if (ops[i].type == STORE_OP_DELETE && !ops[i].del.key_len) {
			return -EINVAL;
		} else if (ops[i].type == STORE_OP_MOVE || ops[i].type == STORE_OP_SWAP) {
			int r = check_move(s, &ops[i].move, ops[i].type == STORE_OP_SWAP, &add);
			if (r)
				return r;
		}
	}
	if (add) {
		int r = quota_check(s, add);
		if (r)
			return r;
	}
	res->succeeded = ok;
	res->n = n;
	res->results = store__xcalloc(n, sizeof *res->results);
	s->wrote = false;
	for (size_t i = 0; i < n; i++) {
		struct store_op_result *o = &res->results[i];
		o->type = ops[i].type;
		switch (ops[i].type) {
		case STORE_OP_RANGE: {
			struct store_range_req rq = ops[i].range;
			if (rq.rev <= 0)
				rq.rev = s->rev;
			(void)store_range(s, &rq, &o->range);
			break;
		}
		case STORE_OP_PUT:
			do_put(s, &ops[i].put, &o->put);
			break;
		case STORE_OP_DELETE:
			do_delete(s, &ops[i].del, &o->del);
			break;
		case STORE_OP_MOVE:
			do_move(s, &ops[i].move, &o->moved);
			break;
		case STORE_OP_SWAP:
			do_swap(s, &ops[i].move, &o->moved);
			break;
		}
	}
	s->wrote = false;
	res->rev = s->rev;
	return 0;
}

void store_txn_result_free(struct store_txn_result *res)
{
	for (size_t i = 0; i < res->n; i++) {
		store_range_result_free(&res->results[i].range);
		store_delete_result_free(&res->results[i].del);
	}
	free(res->results);
	res->results = NULL;
	res->n = 0;
}

/* ---- compaction ------------------------------------------------------------------------------ */

/* Marks kv dropped by the compaction in progress; the log sweep frees it. */
static void kv_drop(struct store *s, struct store__kv *kv)
{
	s->size -= store__kv_cost(kv);
	kv->ki = NULL;
}

static void gen_drop(struct store *s, struct store__gen *g)
{
	for (uint32_t i = 0; i < g->n; i++)
		kv_drop(s, STORE__REVS(g)[i]);
	gen_free(g);
}

/* etcd's keyIndex.compact: marks the dropped kvrecs; returns true when the key is empty. */
static bool ki_compact(struct store *s, struct store__ki *ki, int64_t at)
{
	uint32_t gi = 0, ng = store__ki_ngens(ki);
	while (gi < ng - 1) {
		struct store__gen *g = &STORE__GENS(ki)[gi];
		if (STORE__REVS(g)[g->n - 1]->main > at)
			break;
		gi++;
	}
	struct store__gen *g = &STORE__GENS(ki)[gi];
	if (g->n) {
		/* keep the newest revision <= at and everything after it */
		uint32_t upto = gen_upto(g, at), keep = upto ? upto - 1 : 0;
		if (keep > 0) {
			for (uint32_t i = 0; i < keep; i++)
				kv_drop(s, STORE__REVS(g)[i]);
			gen_drop_first(g, keep);
		}
		/* a generation left holding only its tombstone goes */
		if (g->n == 1 && gi != ng - 1)
			gi++;
	}
	if (gi) {
		for (uint32_t i = 0; i < gi; i++)
			gen_drop(s, &STORE__GENS(ki)[i]);
		struct store__gens *m = ki->u.many; /* gi > 0: more than one generation */
		uint32_t n = ng - gi;
		memmove(m->g, m->g + gi, n * sizeof m->g[0]);
		if (n == 1) { /* back inline */
			ki->u.g0 = m->g[0];
			ki->multi = 0;
			free(m);
		} else {
			m->n = n;
			if (STORE__CAP(n) < STORE__CAP(ng))
				ki->u.many = store__xrealloc(m, sizeof *m + STORE__CAP(n) * sizeof m->g[0]);
		}
	}
	return !ki->multi && ki->u.g0.n == 0;
}

/* Moves kv out of a sparse slab: a fresh copy takes its place in its generation and the log. */
static struct store__kv *kv_move(struct store *s, struct store__kv *kv)
{
	size_t size = store__kv_size(kv);
	struct store__kv *nkv = store__arena_alloc(&s->arena, size);
	memcpy(nkv, kv, size);
	uint32_t i;
	STORE__REVS(store__kv_locate(kv, &i))[i] = nkv;
	store__arena_free(&s->arena, kv, size);
	return nkv;
}

/* Moves ki out of a sparse slab: its kvrecs follow it; the caller rebuilds index and leases. */
static struct store__ki *ki_move(struct store *s, struct store__ki *ki)
{
	size_t size = store__ki_size(ki);
	struct store__ki *nki = store__arena_alloc(&s->arena, size);
	memcpy(nki, ki, size);
	for (uint32_t g = 0; g < store__ki_ngens(nki); g++) {
		struct store__gen *gen = &STORE__GENS(nki)[g];
		for (uint32_t i = 0; i < gen->n; i++)
			STORE__REVS(gen)[i]->ki = nki;
	}
	store__arena_free(&s->arena, ki, size);
	return nki;
}

int store_compact(struct store *s, int64_t rev)
{
	if (rev <= s->compact_rev)
		return STORE_ECOMPACTED;
	if (rev > s->rev)
		return STORE_EFUTUREREV;
	/* walk every key; collect the survivors for the rebuild */
	struct store__ki **keep = store__xmalloc((s->idx.n ? s->idx.n : 1) * sizeof *keep);
	size_t nk = 0;
	struct store__iter it;
	store__index_seek(&s->idx, NULL, 0, &it);
	/* the dead keys go to the end of keep[], freed after the log sweep */
	size_t nd = s->idx.n;
	for (struct store__ki *ki; (ki = store__iter_next(&it));) {
		if (ki_compact(s, ki, rev))
			keep[--nd] = ki;
		else
			keep[nk++] = ki;
	}
	size_t nkeys = s->idx.n;
	/* sweep the log's prefix up to rev */
	size_t w = 0, i = 0;
	for (; i < s->log_n && s->log[i]->main <= rev; i++) {
		struct store__kv *kv = s->log[i];
		if (!kv->ki) { /* dropped */
			store__arena_free(&s->arena, kv, store__kv_size(kv));
		} else {
			s->log[w++] = kv;
		}
	}
	if (w != i) {
		memmove(s->log + w, s->log + i, (s->log_n - i) * sizeof *s->log);
		s->log_n -= i - w;
		if (s->log_cap > 1024 && s->log_n < s->log_cap / 4) {
			s->log_cap = s->log_n * 2 > 1024 ? s->log_n * 2 : 1024;
			s->log = store__xrealloc(s->log, s->log_cap * sizeof *s->log);
		}
		/* the survivors of slabs now mostly free move, so those slabs go */
		for (size_t j = 0; j < s->log_n; j++)
			if (store__arena_sparse(&s->arena, s->log[j]))
				s->log[j] = kv_move(s, s->log[j]);
	}
	for (size_t d = nk; d < nkeys; d++)
		store__ki_free(s, keep[d]);
	bool moved = false;
	if (w != i || nk != nkeys)
		for (size_t k = 0; k < nk; k++)
			if (store__arena_sparse(&s->arena, keep[k])) {
				keep[k] = ki_move(s, keep[k]);
				moved = true;
			}
	if (moved || nk != nkeys)
		store__index_build(&s->idx, keep, nk);
	if (moved)
		(void)store__lease_reattach(s); /* every lease it names exists */
	free(keep);
	/* hash_kv's running sum starts over: taking each dropped revision out of it would read every
	   dropped value, which costs more than hashing the survivors once at the next call */
	s->hash_sum = 0;
	s->hash_rev = 0;
	s->compact_rev = rev;
	store__watch_compacted(s, rev);
	return 0;
}

/* ---- hash ------------------------------------------------------------------------------------ */

static inline uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	h *= 0xff51afd7ed558ccdull;
	return h ^ (h >> 33);
}

static uint64_t mix_bytes(uint64_t h, const unsigned char *p, size_t n)
{
	h = mix(h, n);
	while (n >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		h = mix(h, v);
		p += 8;
		n -= 8;
	}
	uint64_t v = 0;
	memcpy(&v, p, n);
	return mix(h, v);
}

/* Revision i of g's share of hash_kv: every field members must agree on. */
static uint64_t kv_hash(const struct store__kv *kv, const struct store__gen *g, uint32_t i)
{
	uint64_t h = mix_bytes(0x5eed, kv->ki->key, kv->ki->key_len);
	h = mix(h, (uint64_t)kv->main);
	h = mix(h, kv->sub);
	h = mix(h, kv->flags & STORE__TOMB);
	h = mix(h, (uint64_t)g->created_main);
	h = mix(h, (uint64_t)store__kv_version(g, i));
	h = mix(h, (uint64_t)store__kv_lease(kv));
	h = mix_bytes(h, (const unsigned char *)&kv->meta, sizeof kv->meta);
	h = mix_bytes(h, store__kv_value(kv), kv->vlen);
	return store__fmix64(h);
}

/* The sum of kv_hash over the log's kvrecs at positions [from, ...) with main <= to. */
static uint64_t log_hash(const struct store *s, size_t from, int64_t to)
{
	uint64_t sum = 0;
	for (size_t i = from; i < s->log_n && s->log[i]->main <= to; i++) {
		uint32_t gi;
		const struct store__gen *g = store__kv_locate(s->log[i], &gi);
		sum += kv_hash(s->log[i], g, gi);
	}
	return sum;
}

/*
 * The hash is a sum of each stored revision's own hash, so it is kept as it goes: a call hashes
 * only the revisions stored since the last one (the periodic consistency check on a big store
 * costs what was written in between, not the whole store); after a compaction, open or restore
 * it starts over. A revision below the last one asked takes the sum back by the revisions in
 * between.
 */
int store_hash_kv(struct store *s, int64_t rev, uint64_t *hash)
{
	if (rev <= 0)
		rev = s->rev;
	int r = check_rev(s, rev);
	if (r)
		return r;
	if (rev > s->hash_rev) {
		s->hash_sum += log_hash(s, store__log_seek(s, s->hash_rev + 1), rev);
		s->hash_rev = rev;
	}
	uint64_t sum = s->hash_sum - log_hash(s, store__log_seek(s, rev + 1), s->hash_rev);
	*hash = store__fmix64(mix(mix(0x5eed, (uint64_t)s->compact_rev), sum));
	return 0;
}
