/*
 * store_internal.h: the data layout shared by the store's files (index.c, kv.c, lease.c,
 * watch.c, snapshot.c). Nothing outside store/ includes it.
 *
 * Layout: every stored revision of a key is one struct kvrec (header, metadata and value in one
 * record of the store's arena, arena.c, which holds the keyIndexes too). The ordered index (a B+tree of struct ki, index.c) maps a key to its keyIndex
 * {key, generations[{ver, created, revs[]}]} whose revs point at the kvrecs. The revision-keyed
 * table is `log`: every stored kvrec in revision order (appends are in order because revisions only
 * grow), searched by binary search; watches and compaction walk it.
 */
#ifndef RAFTFS_STORE_INTERNAL_H
#define RAFTFS_STORE_INTERNAL_H

#include "store.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define STORE__TOMB 1u  /* kvrec flag: a deletion (tombstone) */
#define STORE__LEASE 2u /* kvrec flag: a lease id precedes the value */

struct store__ki;

#define STORE__MAX_VALUE ((1u << 30) - 1) /* vlen's 30 bits */

/*
 * One stored revision of a key: a 64-byte header, the lease id only when it has one, then the
 * value, in one arena record. create_revision and version are not stored: they follow from the
 * generation holding the revision (store__kv_create, store__kv_version).
 */
struct store__kv {
	struct store__ki *ki; /* the key it belongs to; NULL once compaction dropped it */
	int64_t main;         /* its revision */
	uint32_t sub;
	uint32_t vlen : 30;
	uint32_t flags : 2; /* STORE__TOMB, STORE__LEASE */
	struct store_meta meta;
	unsigned char tail[]; /* with STORE__LEASE the lease id (8 bytes), then the value */
};
_Static_assert(sizeof(struct store__kv) == 64, "a kvrec header is one cache line");

/*
 * A generation: the life of a key from its creation to its deletion (seed 000). Its revisions
 * are the ver writes it had, oldest first, minus those compaction dropped, so revision i of n was
 * write number ver - (n - 1 - i): that is its version (0 for the tombstone that ends it).
 */
struct store__gen {
	int64_t ver;          /* writes in the generation, tombstone included */
	int64_t created_main; /* revision of the put that created it: each revision's create */
	union {
		struct store__kv **many; /* n > 1: STORE__CAP(n) slots */
		struct store__kv *one;   /* n <= 1 */
	} r; /* stored revisions, oldest first; a tombstone ends it; read through STORE__REVS */
	uint32_t created_sub;
	uint32_t n;
};

/* Slots of an array holding n > 1 elements (generations' revisions, keyIndexes' generations). */
static inline uint32_t STORE__CAP(uint32_t n)
{
	uint32_t c = 4;
	while (c < n)
		c *= 2;
	return c;
}

/* The revisions array of a generation (inline when it holds at most one). */
#define STORE__REVS(g) ((g)->n > 1 ? (g)->r.many : (struct store__kv **)&(g)->r.one)

/* The generations of a key that has more than one: n of them in STORE__CAP(n) slots. */
struct store__gens {
	uint32_t n;
	uint32_t unused;
	struct store__gen g[];
};

/*
 * etcd's keyIndex. The last generation is the current one (empty when the key is deleted). A key
 * with one generation keeps it inline (u.g0): with the inline revision that makes a key written
 * once a 36-byte record plus its key, besides its kvrec. Generations move back inline when
 * compaction leaves one.
 */
struct store__ki {
	union {
		struct store__gen g0;     /* !multi: the one generation */
		struct store__gens *many; /* multi */
	} u; /* read through STORE__GENS */
	uint32_t key_len : 31;
	uint32_t multi : 1;
	unsigned char key[]; /* at offset 36 */
};

#define STORE__MAX_KEY ((1u << 31) - 1) /* key_len's 31 bits */

#define STORE__GENS(ki) ((ki)->multi ? (ki)->u.many->g : (struct store__gen *)&(ki)->u.g0)

static inline uint32_t store__ki_ngens(const struct store__ki *ki)
{
	return ki->multi ? ki->u.many->n : 1;
}

static inline int64_t store__kv_lease(const struct store__kv *kv)
{
	int64_t id = 0;
	if (kv->flags & STORE__LEASE)
		memcpy(&id, kv->tail, sizeof id);
	return id;
}

static inline const unsigned char *store__kv_value(const struct store__kv *kv)
{
	return kv->tail + (kv->flags & STORE__LEASE ? 8 : 0);
}

/* Revision i of generation g: its version (0: the tombstone) and create revision. */
static inline int64_t store__kv_version(const struct store__gen *g, uint32_t i)
{
	return (STORE__REVS(g)[i]->flags & STORE__TOMB) ? 0 : g->ver - (int64_t)(g->n - 1 - i);
}

/* Slab memory for records (arena.c). */
#define STORE__SLAB (2u << 20) /* bytes of a slab, and its alignment: one transparent huge page */
struct store__slab {
	struct store__slab *prev, *next; /* the arena's slabs */
	size_t size;                     /* bytes of the slab, this header included */
	size_t used;                     /* bytes handed out from its start, this header included */
	size_t live;                     /* bytes of records not freed yet */
};
struct store__arena {
	struct store__slab *head;  /* the slab being filled (NULL: none yet) */
	struct store__slab *slabs; /* every slab */
	size_t n_slabs;
};

/* The B+tree (index.c). */
struct store__bnode;
struct store__index {
	struct store__bnode *root;
	struct store__ki *first, *last; /* the smallest and largest keys (NULL: none) */
	struct store__arena nodes;      /* every node */
	size_t n; /* keys */
	/* point lookups: open addressing, linear probing; a slot is the ki pointer with 16 bits of
	   the key's hash in its (unused) top 16 bits, 0 when empty (index.c) */
	uint64_t *slots;
	size_t cap; /* slots */
};

struct store__iter {
	struct store__bnode *leaf;
	unsigned pos;
};

struct store__lease {
	int64_t id;
	int64_t ttl_s;
	int64_t expiry_ms; /* INT64_MAX: not expiring until promoted */
	struct store__ki **keys;
	size_t n_keys, cap;
};

struct store {
	struct store__index idx;
	/* every kvrec and keyIndex: a new key's keyIndex and first kvrec are neighbours, so a read
	   of the key finds the revision already on its way into the cache */
	struct store__arena arena;
	struct store__kv **log; /* every stored kvrec, revision order */
	size_t log_n, log_cap;
	int64_t rev;         /* current revision */
	int64_t compact_rev; /* last compaction */
	uint64_t applied;
	/* hash_kv's running sum: the hash of every stored kvrec with main <= hash_rev (0: none yet,
	   as after open, restore or compaction) */
	uint64_t hash_sum;
	int64_t hash_rev;
	uint64_t size;  /* deterministic size estimate */
	uint64_t quota;
	bool nospace;
	bool leased; /* a kvrec with a lease id may be stored (false: none ever was since open) */
	int64_t min_ttl;
	struct store__lease **leases; /* sorted by id */
	size_t n_leases, leases_cap;
	struct store_watch *watches; /* doubly linked */
	/* write transaction in progress */
	bool wrote;   /* the current op group bumped rev */
	uint32_t sub; /* next sub revision */
};

/* murmur3's 64-bit finalizer: every input bit moves every output bit */
static inline uint64_t store__fmix64(uint64_t h)
{
	h ^= h >> 33;
	h *= UINT64_C(0xff51afd7ed558ccd);
	h ^= h >> 33;
	h *= UINT64_C(0xc4ceb9fe1a85ec53);
	return h ^ (h >> 33);
}

void *store__xmalloc(size_t n);
void *store__xrealloc(void *p, size_t n);
void *store__xcalloc(size_t n, size_t m);

int store__keycmp(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen);

/* arena.c: records of n bytes (8-byte aligned); free takes the n the record was allocated with. */
void store__arena_init(struct store__arena *a);
void *store__arena_alloc(struct store__arena *a, size_t n);
void store__arena_free(struct store__arena *a, void *p, size_t n);
/* True when p's slab is less than half live: compaction moves p out so the slab can go. */
bool store__arena_sparse(const struct store__arena *a, const void *p);
void store__arena_release(struct store__arena *a); /* frees every slab */

static inline size_t store__kv_size(const struct store__kv *kv)
{
	return sizeof *kv + (kv->flags & STORE__LEASE ? 8 : 0) + kv->vlen;
}

static inline size_t store__ki_size(const struct store__ki *ki)
{
	return offsetof(struct store__ki, key) + ki->key_len;
}

/* index.c */
void store__index_init(struct store__index *ix);
void store__index_free(struct store__index *ix); /* nodes only, not the kis */
struct store__ki *store__index_get(const struct store__index *ix, const void *key, size_t len);
/* Makes the keyIndex of a key being added (store__index_find_or_add). */
typedef struct store__ki *(*store__ki_maker)(void *ctx, const void *key, size_t len);
/* The key's keyIndex; when it is missing, one made by make(ctx, key, len), inserted. */
struct store__ki *store__index_find_or_add(struct store__index *ix, const void *key, size_t len,
					   store__ki_maker make, void *ctx);
/* First key >= key (key NULL: the first key). */
void store__index_seek(const struct store__index *ix, const void *key, size_t len,
		       struct store__iter *it);
struct store__ki *store__iter_next(struct store__iter *it); /* NULL at the end */
/* Rebuilds from kis[0..n) in key order (after compaction, on restore). */
void store__index_build(struct store__index *ix, struct store__ki **kis, size_t n);

/* kv.c */
size_t store__log_seek(const struct store *s, int64_t rev); /* first log position with main >= rev */
uint64_t store__kv_cost(const struct store__kv *kv);
/* etcd's keyIndex.get: the revision visible at `at` (*g, *i: where it is), or NULL. */
struct store__kv *store__ki_get(const struct store__ki *ki, int64_t at, const struct store__gen **g,
				uint32_t *i);
bool store__ki_live(const struct store__ki *ki);
struct store__kv *store__ki_latest(const struct store__ki *ki);
/* Fills out from revision i of generation g. */
void store__fill_kv(struct store_kv *out, const struct store__gen *g, uint32_t i, bool keys_only);
/* The generation holding kv and kv's place in it (kv must be stored). */
struct store__gen *store__kv_locate(const struct store__kv *kv, uint32_t *i);
void store__ki_free(struct store *s, struct store__ki *ki);
void store__free_contents(struct store *s); /* every kv, key and lease; the store stays usable */
void store__gen_push(struct store__gen *g, struct store__kv *kv); /* appends a revision */
bool store__in_range(const unsigned char *k, size_t klen, const unsigned char *key, size_t key_len,
		     const unsigned char *end, size_t end_len);
void store__begin_write(struct store *s);
int store__delete_ki(struct store *s, struct store__ki *ki, struct store_kv *prev);

/* lease.c */
struct store__lease *store__lease_find(const struct store *s, int64_t id);
void store__lease_attach(struct store *s, int64_t id, struct store__ki *ki);
void store__lease_detach(struct store *s, int64_t id, struct store__ki *ki);
void store__leases_free(struct store *s);
int store__lease_restore(struct store *s, int64_t id, int64_t ttl_s); /* expiry: none yet */
/* Rebuilds every lease's key list from the index; STORE_ECORRUPT when a key names no lease. */
int store__lease_reattach(struct store *s);

/* watch.c */
void store__watch_compacted(struct store *s, int64_t rev);
void store__watch_cancel_all(struct store *s);

#endif
