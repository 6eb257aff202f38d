/*
 * index.c: the ordered in-memory index of keyIndexes (etcd's treeIndex), a B+tree.
 *
 * Leaves hold up to BT_MAX pointers to struct store__ki in key order and are chained for range
 * scans; inner nodes hold up to BT_MAX children and, for each, the smallest key below it. Keys are
 * only inserted one by one; removal happens in bulk after a compaction, which rebuilds the tree
 * from the surviving keys (compaction walks every key anyway, so the rebuild adds O(n)).
 * Cost: insert and seek are O(log n) key comparisons. Most comparisons never touch the keys: every
 * node knows `skip`, a prefix length all keys of its range share (ranges only shrink as nodes
 * split, so a skip computed from a node's bounds when it is made stays true; the open side of the
 * leftmost and rightmost nodes stands for the smallest and largest key, and a key beyond them
 * lowers those nodes' skips first), and keeps next to each key pointer the 8 key bytes after that
 * prefix; only equal chunks compare whole keys (a whole-key compare reads the keyIndex, a cache
 * miss: with 4-byte chunks the inner nodes above a few directories compared whole keys at most
 * steps, 8 bytes reach the file name). Point lookups (store__index_get) skip the tree: a hash
 * table of the same keys answers them in one or two cache misses, which is what makes point
 * reads and puts fast; it is rebuilt along with the tree. A put (store__index_find_or_add) starts
 * fetching both its slot and the leaf a new key would go to before it looks at either, so a new
 * key's two misses overlap, and the key then goes straight into that leaf when it can. A put of
 * an existing key fetches the leaf for nothing, which costs it no measurable time (store-bench's
 * puts of new and of existing keys, measured against probing the table and then inserting).
 * Nodes come from the index's own arena (arena.c) and go all at once, when the index is freed or
 * rebuilt.
 */
#include "store_internal.h"

#include <stdio.h>

#define BT_MAX 64
#define BT_FILL 48 /* keys per leaf when bulk-building */
#define SKIP_GROW 4 /* a leaf's split lengthens a half's skip when it grows by this many bytes */

struct store__bnode {
	uint32_t n;
	uint16_t leaf;
	uint16_t pad;
	uint32_t skip;             /* every key in the node's range shares its first skip bytes */
	struct store__bnode *next; /* leaves: the next leaf */
	struct store__ki *keys[BT_MAX]; /* inner: keys[i] is the smallest key under kids[i] */
	uint64_t chunk[BT_MAX];         /* bytes [skip, skip + 8) of keys[i], big-endian, 0-padded */
	struct store__bnode *kids[];    /* inner only */
};

static inline uint64_t chunk_of(const unsigned char *k, size_t len, uint32_t skip)
{
	uint64_t v;
	if (len >= (size_t)skip + 8) {
		memcpy(&v, k + skip, 8);
		return __builtin_bswap64(v);
	}
	if (len <= skip)
		return 0;
	if (len >= 8) { /* the key's last 8 bytes, of which the last len - skip move to the top */
		memcpy(&v, k + len - 8, 8);
		return __builtin_bswap64(v) << 8 * (8 - (len - skip));
	}
	uint64_t c = 0;
	for (size_t j = skip; j < (size_t)skip + 8; j++)
		c = c << 8 | (j < len ? k[j] : 0);
	return c;
}

static inline void set_slot(struct store__bnode *b, uint32_t i, struct store__ki *ki)
{
	b->keys[i] = ki;
	b->chunk[i] = chunk_of(ki->key, ki->key_len, b->skip);
}

/* Common prefix length of two keys. */
static uint32_t ki_cpl(const struct store__ki *a, const struct store__ki *b)
{
	uint32_t m = a->key_len < b->key_len ? a->key_len : b->key_len, i = 0;
	while (i < m && a->key[i] == b->key[i])
		i++;
	return i;
}

/*
 * The skip of a node whose range is [lo, hi): what every key that is or may come in that range
 * shares. An open side (NULL, on the tree's leftmost or rightmost path) stands for the tree's
 * smallest or largest key: keys beyond them lower these nodes' skips first (spine_lower), so
 * the root of keys that all start with "/bench/d" skips those 8 bytes instead of comparing whole
 * keys at every step.
 */
static uint32_t range_cpl(const struct store__index *ix, const struct store__ki *lo,
			  const struct store__ki *hi)
{
	return ki_cpl(lo ? lo : ix->first, hi ? hi : ix->last);
}

int store__keycmp(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
	size_t m = alen < blen ? alen : blen;
	int c = m ? memcmp(a, b, m) : 0;
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static inline int kicmp(const struct store__ki *ki, const void *key, size_t len)
{
	return store__keycmp(ki->key, ki->key_len, key, len);
}

static struct store__bnode *node_new(struct store__index *ix, bool leaf)
{
	size_t sz = sizeof(struct store__bnode) + (leaf ? 0 : BT_MAX * sizeof(struct store__bnode *));
	struct store__bnode *b = store__arena_alloc(&ix->nodes, sz);
	b->n = 0;
	b->leaf = leaf;
	b->pad = 0;
	b->skip = 0;
	b->next = NULL;
	return b;
}

void store__index_init(struct store__index *ix)
{
	ix->root = NULL;
	ix->first = ix->last = NULL;
	ix->n = 0;
	store__arena_init(&ix->nodes);
	ix->slots = NULL;
	ix->cap = 0;
}

/* ---- the hash table of keys ------------------------------------------------------------------ */

/*
 * A slot is the ki pointer (48 bits) with 16 bits of its key's hash on top (the low ones: the slot
 * index comes from the high ones), 0 when empty. The table holds cap slots, any number:
 * a hash picks slot (h * cap) >> 64, probing goes on linearly. It grows by half when more than
 * 4/5 full, so it is between 53% and 80% full (8 bytes / load per key) and a miss probes a few
 * neighbouring slots, most often in the same cache line.
 */
#define TAG_SHIFT 48
#define PTR_MASK ((UINT64_C(1) << TAG_SHIFT) - 1)
#define TAG_OF(h) ((h) & 0xffff)

static inline size_t slot_home(uint64_t h, size_t cap)
{
	__extension__ typedef unsigned __int128 u128;
	return (size_t)(((u128)h * cap) >> 64);
}

static uint64_t key_hash(const unsigned char *p, size_t n)
{
	uint64_t h = UINT64_C(0x9e3779b97f4a7c15) ^ n, v = 0;
	size_t len = n;
	while (n > 8) {
		memcpy(&v, p, 8);
		h = (h ^ v) * UINT64_C(0x100000001b3) + (h >> 29);
		h = (h << 23 | h >> 41) * UINT64_C(0x9e3779b97f4a7c15);
		p += 8;
		n -= 8;
	}
	/* The last 1-8 bytes, read without a copy of variable length: gathering them on the stack
	   made the 8-byte load that followed wait until the stores retired, which waited for the
	   previous lookup's cache misses, so no two lookups ever overlapped. */
	if (len >= 8) {
		memcpy(&v, p + n - 8, 8); /* overlapping the bytes already mixed, shifted out */
		v >>= 64 - 8 * n;
	} else if (n >= 4) {
		uint32_t a, b;
		memcpy(&a, p, 4);
		memcpy(&b, p + n - 4, 4);
		v = (uint64_t)b << 32 | a;
	} else if (n) {
		v = (uint64_t)p[0] | (uint64_t)p[n / 2] << 8 | (uint64_t)p[n - 1] << 16;
	}
	h = (h ^ v) * UINT64_C(0x100000001b3);
	return store__fmix64(h);
}

static void slot_put(uint64_t *slots, size_t cap, struct store__ki *ki, uint64_t h)
{
	uint64_t ptr = (uint64_t)(uintptr_t)ki;
	if (ptr >> TAG_SHIFT) {
		fprintf(stderr, "store: pointer %p does not fit the key table's 48 bits\n", (void *)ki);
		abort();
	}
	size_t i = slot_home(h, cap);
	while (slots[i])
		i = i + 1 == cap ? 0 : i + 1;
	slots[i] = TAG_OF(h) << TAG_SHIFT | ptr;
}

static void hash_rebuild(struct store__index *ix, size_t want)
{
	size_t cap = ix->slots ? ix->cap : 16;
	while (cap * 4 < want * 5)
		cap += cap / 2;
	uint64_t *slots = store__xcalloc(cap, sizeof *slots);
	if (ix->slots) {
		for (size_t i = 0; i < ix->cap; i++) {
			if (i + 16 < ix->cap && ix->slots[i + 16]) /* hide the misses on the keys */
				__builtin_prefetch((void *)(uintptr_t)(ix->slots[i + 16] & PTR_MASK));
			if (ix->slots[i]) {
				struct store__ki *ki = (struct store__ki *)(uintptr_t)(ix->slots[i] & PTR_MASK);
				slot_put(slots, cap, ki, key_hash(ki->key, ki->key_len));
			}
		}
		free(ix->slots);
	}
	ix->slots = slots;
	ix->cap = cap;
}

static void hash_insert(struct store__index *ix, struct store__ki *ki, uint64_t h)
{
	if (!ix->slots || (ix->n + 1) * 5 > (ix->cap) * 4)
		hash_rebuild(ix, ix->n + 1);
	slot_put(ix->slots, ix->cap, ki, h);
}

/* The key's keyIndex in the table, h its hash, or NULL. */
static struct store__ki *hash_find(const struct store__index *ix, const void *key, size_t len,
				   uint64_t h)
{
	if (!ix->slots)
		return NULL;
	uint64_t tag = TAG_OF(h);
	for (size_t i = slot_home(h, ix->cap);; i = i + 1 == ix->cap ? 0 : i + 1) {
		uint64_t v = ix->slots[i];
		if (!v)
			return NULL;
		if (v >> TAG_SHIFT == tag) {
			struct store__ki *ki = (struct store__ki *)(uintptr_t)(v & PTR_MASK);
			if (ki->key_len == len && memcmp(ki->key, key, len) == 0)
				return ki;
		}
	}
}

void store__index_free(struct store__index *ix)
{
	store__arena_release(&ix->nodes);
	ix->root = NULL;
	ix->first = ix->last = NULL;
	ix->n = 0;
	free(ix->slots);
	ix->slots = NULL;
	ix->cap = 0;
}

/* keys[i] against key (which lies in b's range, so shares its skip prefix), as kicmp. */
static inline int slot_cmp(const struct store__bnode *b, uint32_t i, uint64_t c, const void *key,
			   size_t len)
{
	if (b->chunk[i] != c)
		return b->chunk[i] < c ? -1 : 1;
	return kicmp(b->keys[i], key, len);
}

/* Inner: the child whose range holds key (largest i with keys[i] <= key, or 0). */
static uint32_t inner_pick(const struct store__bnode *b, const void *key, size_t len)
{
	uint64_t c = chunk_of(key, len, b->skip);
	uint32_t lo = 1, hi = b->n; /* find first i in [1,n) with keys[i] > key */
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (slot_cmp(b, mid, c, key, len) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo - 1;
}

/* Leaf: first i with keys[i] >= key. */
static uint32_t leaf_lower(const struct store__bnode *b, const void *key, size_t len)
{
	uint64_t c = chunk_of(key, len, b->skip);
	uint32_t lo = 0, hi = b->n;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (slot_cmp(b, mid, c, key, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct store__ki *store__index_get(const struct store__index *ix, const void *key, size_t len)
{
	return hash_find(ix, key, len, key_hash(key, len));
}

/*
 * The leaf that holds or would hold key, which starts being fetched (all of it: the search reads
 * the chunks, an insert moves keys and chunks) without waiting for it. For a key beyond the
 * tree's smallest or largest it may be the wrong leaf (range_cpl): not to be inserted into then.
 */
static struct store__bnode *leaf_prefetch(const struct store__index *ix, const void *key,
					  size_t len)
{
	struct store__bnode *b = ix->root;
	if (!b)
		return NULL;
	while (!b->leaf)
		b = b->kids[inner_pick(b, key, len)];
	__builtin_prefetch(b);
	for (uint32_t j = 0; j < BT_MAX; j += 8) {
		__builtin_prefetch(&b->keys[j]);
		__builtin_prefetch(&b->chunk[j]);
	}
	return b;
}

/* Lowers node b's skip to at most skip, recomputing its chunks when it changes. */
static void node_reskip(struct store__bnode *b, uint32_t skip)
{
	if (skip >= b->skip)
		return;
	b->skip = skip;
	for (uint32_t j = 0; j < b->n; j++)
		set_slot(b, j, b->keys[j]);
}

/* Copies m slots from a[from..] into b[to..] (b's chunks recomputed when the skips differ). */
static void slots_copy(struct store__bnode *b, uint32_t to, const struct store__bnode *a,
		       uint32_t from, uint32_t m)
{
	memcpy(b->keys + to, a->keys + from, m * sizeof b->keys[0]);
	if (a->skip == b->skip)
		memcpy(b->chunk + to, a->chunk + from, m * sizeof b->chunk[0]);
	else
		for (uint32_t j = to; j < to + m; j++)
			set_slot(b, j, b->keys[j]);
}

/*
 * Before a full leaf kids[i] of b (whose range is [lo, hi)) splits, it hands some keys to a
 * sibling with room, as a B*-tree does: leaves then run about 80% full instead of 69%, which is
 * index memory per key. Returns false when neither sibling has room. Moving keys widens the
 * sibling's range, so its skip is lowered to what its new bounds share.
 */
static bool leaf_shift(const struct store__index *ix, struct store__bnode *b, uint32_t i,
		       struct store__ki *lo, struct store__ki *hi)
{
	struct store__bnode *c = b->kids[i];
	if (i + 1 < b->n && b->kids[i + 1]->n + 2 <= BT_MAX) {
		struct store__bnode *r = b->kids[i + 1];
		uint32_t m = (BT_MAX - r->n) / 2;
		struct store__ki *upper = i + 2 < b->n ? b->keys[i + 2] : hi;
		node_reskip(r, range_cpl(ix, c->keys[c->n - m], upper));
		memmove(r->keys + m, r->keys, r->n * sizeof r->keys[0]);
		memmove(r->chunk + m, r->chunk, r->n * sizeof r->chunk[0]);
		slots_copy(r, 0, c, c->n - m, m);
		r->n += m;
		c->n -= m;
		set_slot(b, i + 1, r->keys[0]);
		return true;
	}
	if (i > 0 && b->kids[i - 1]->n + 2 <= BT_MAX) {
		struct store__bnode *l = b->kids[i - 1];
		uint32_t m = (BT_MAX - l->n) / 2;
		struct store__ki *lower = i - 1 > 0 ? b->keys[i - 1] : lo;
		node_reskip(l, range_cpl(ix, lower, c->keys[m]));
		slots_copy(l, l->n, c, 0, m);
		l->n += m;
		c->n -= m;
		memmove(c->keys, c->keys + m, c->n * sizeof c->keys[0]);
		memmove(c->chunk, c->chunk + m, c->n * sizeof c->chunk[0]);
		set_slot(b, i, c->keys[0]);
		return true;
	}
	return false;
}

/* Puts ki at slot i of b (which has room), with child kid when b is an inner node. */
static void node_insert_at(struct store__bnode *b, uint32_t i, struct store__ki *ki,
			   struct store__bnode *kid)
{
	memmove(b->keys + i + 1, b->keys + i, (b->n - i) * sizeof b->keys[0]);
	memmove(b->chunk + i + 1, b->chunk + i, (b->n - i) * sizeof b->chunk[0]);
	set_slot(b, i, ki);
	if (!b->leaf) {
		memmove(b->kids + i + 1, b->kids + i, (b->n - i) * sizeof b->kids[0]);
		b->kids[i] = kid;
	}
	b->n++;
}

/*
 * Inserts into the subtree of b, whose range is [lo, hi) (NULL: open); returns a new right sibling
 * when b split (NULL otherwise).
 */
static struct store__bnode *insert_rec(struct store__index *ix, struct store__bnode *b,
				       struct store__ki *ki, struct store__ki *lo, struct store__ki *hi)
{
	uint32_t i;
	struct store__bnode *right = NULL;
	struct store__ki *rkey = NULL;
	if (b->leaf) {
		i = leaf_lower(b, ki->key, ki->key_len);
		rkey = ki;
	} else {
		i = inner_pick(b, ki->key, ki->key_len);
		/* keys[i] <= key for i > 0; only keys[0] can be passed (on the leftmost path) */
		if (i == 0 && slot_cmp(b, 0, chunk_of(ki->key, ki->key_len, b->skip), ki->key,
				       ki->key_len) > 0)
			set_slot(b, 0, ki); /* the new smallest key of the subtree */
		if (b->kids[i]->leaf && b->kids[i]->n == BT_MAX && leaf_shift(ix, b, i, lo, hi))
			i = inner_pick(b, ki->key, ki->key_len); /* the key may belong next door now */
		right = insert_rec(ix, b->kids[i], ki, i ? b->keys[i] : lo,
				   i + 1 < b->n ? b->keys[i + 1] : hi);
		if (!right)
			return NULL;
		rkey = right->keys[0];
		i++;
	}
	if (b->n == BT_MAX) {
		struct store__bnode *nb = node_new(ix, b->leaf);
		uint32_t half = BT_MAX / 2;
		nb->n = BT_MAX - half;
		/* the halves' ranges, [lo, keys[half]) and [keys[half], hi), share at least b's
		   prefix, often a longer one. A leaf's half takes the longer one only when it leaves
		   half a chunk or more of b's chunks to the shared bytes: recomputing chunks reads
		   every key, a cache miss each, at every 25th insert or so, and a chunk still has 5
		   distinguishing bytes otherwise. Inner nodes split 50 times less often and are
		   searched at every insert: they always take it. */
		nb->skip = b->skip;
		uint32_t skip = range_cpl(ix, b->keys[half], hi);
		if (!b->leaf || skip >= b->skip + SKIP_GROW) {
			nb->skip = skip;
			for (uint32_t j = 0; j < nb->n; j++)
				set_slot(nb, j, b->keys[half + j]);
		} else {
			slots_copy(nb, 0, b, half, nb->n);
		}
		skip = range_cpl(ix, lo, b->keys[half]);
		if (skip > b->skip && (!b->leaf || skip >= b->skip + SKIP_GROW)) {
			b->skip = skip;
			for (uint32_t j = 0; j < half; j++)
				set_slot(b, j, b->keys[j]);
		}
		if (!b->leaf)
			memcpy(nb->kids, b->kids + half, nb->n * sizeof b->kids[0]);
		b->n = half;
		if (b->leaf) {
			nb->next = b->next;
			b->next = nb;
		}
		if (i > half)
			node_insert_at(nb, i - half, rkey, right);
		else
			node_insert_at(b, i, rkey, right);
		return nb;
	}
	node_insert_at(b, i, rkey, right);
	return NULL;
}

/*
 * A new smallest (side 0) or largest (side 1) key widens the ranges of the nodes on the tree's
 * leftmost or rightmost path, which stood for the old one (range_cpl): their skips go down to
 * the prefix the new key shares with it.
 */
static void spine_lower(struct store__bnode *b, int side, uint32_t skip)
{
	for (;;) {
		node_reskip(b, skip);
		if (b->leaf)
			return;
		b = b->kids[side ? b->n - 1 : 0];
	}
}

struct store__ki *store__index_find_or_add(struct store__index *ix, const void *key, size_t len,
					   store__ki_maker make, void *ctx)
{
	/* The slot and the leaf are fetched together: waiting for the slot before descending to
	   the leaf made a new key's put pay two memory latencies one after the other. */
	uint64_t h = key_hash(key, len);
	if (ix->slots)
		__builtin_prefetch(&ix->slots[slot_home(h, ix->cap)]);
	struct store__bnode *leaf = leaf_prefetch(ix, key, len);
	struct store__ki *ki = hash_find(ix, key, len, h);
	if (ki)
		return ki;
	ki = make(ctx, key, len);
	if (!ix->root) {
		ix->root = node_new(ix, true);
		ix->first = ix->last = ki;
	} else if (kicmp(ix->first, key, len) > 0) {
		spine_lower(ix->root, 0, ki_cpl(ki, ix->first));
		ix->first = ki;
		leaf = NULL;
	} else if (kicmp(ix->last, key, len) < 0) {
		spine_lower(ix->root, 1, ki_cpl(ki, ix->last));
		ix->last = ki;
		leaf = NULL;
	}
	/* Most new keys go into the leaf already found, which has room, after its first key (so no
	   node above changes); the others descend again, splitting or shifting on the way. */
	uint32_t i;
	struct store__bnode *right = NULL;
	if (leaf && leaf->n < BT_MAX && (i = leaf_lower(leaf, key, len)) > 0)
		node_insert_at(leaf, i, ki, NULL);
	else
		right = insert_rec(ix, ix->root, ki, NULL, NULL);
	if (right) {
		struct store__bnode *r = node_new(ix, false);
		r->skip = range_cpl(ix, NULL, NULL);
		r->n = 2;
		set_slot(r, 0, ix->root->keys[0]);
		r->kids[0] = ix->root;
		set_slot(r, 1, right->keys[0]);
		r->kids[1] = right;
		ix->root = r;
	}
	hash_insert(ix, ki, h);
	ix->n++;
	return ki;
}

void store__index_seek(const struct store__index *ix, const void *key, size_t len,
		       struct store__iter *it)
{
	struct store__bnode *b = ix->root;
	it->leaf = NULL;
	it->pos = 0;
	if (!b)
		return;
	/* the nodes' chunks hold for keys between the smallest and the largest (range_cpl) */
	if (key && kicmp(ix->first, key, len) >= 0)
		key = NULL; /* at or before the smallest: from the start */
	else if (key && kicmp(ix->last, key, len) < 0)
		return; /* after the largest: nothing */
	while (!b->leaf)
		b = b->kids[key ? inner_pick(b, key, len) : 0];
	it->leaf = b;
	it->pos = key ? leaf_lower(b, key, len) : 0;
}

/* how far ahead a scan fetches keyIndexes: a scan in key order visits them in no memory order,
   so each is a cache miss; eight in flight overlap them */
#define SCAN_AHEAD 8

struct store__ki *store__iter_next(struct store__iter *it)
{
	while (it->leaf && it->pos >= it->leaf->n) {
		it->leaf = it->leaf->next;
		it->pos = 0;
	}
	if (!it->leaf)
		return NULL;
	const struct store__bnode *b = it->leaf;
	uint32_t ahead = it->pos + SCAN_AHEAD;
	if (ahead >= b->n && b->next) {
		ahead -= b->n;
		b = b->next;
	}
	if (ahead < b->n) {
		const char *ki = (const char *)b->keys[ahead];
		__builtin_prefetch(ki);
		__builtin_prefetch(ki + 64); /* its first kvrec's header follows it */
	}
	return it->leaf->keys[it->pos++];
}

void store__index_build(struct store__index *ix, struct store__ki **kis, size_t n)
{
	store__index_free(ix);
	hash_rebuild(ix, n);
	/* hash a few keys ahead and prefetch their slots: the table is bigger than the cache */
	enum { AHEAD = 8 };
	uint64_t hs[AHEAD];
	for (size_t i = 0; i < n + AHEAD; i++) {
		if (i >= AHEAD)
			slot_put(ix->slots, ix->cap, kis[i - AHEAD], hs[i % AHEAD]);
		if (i < n) {
			hs[i % AHEAD] = key_hash(kis[i]->key, kis[i]->key_len);
			__builtin_prefetch(&ix->slots[slot_home(hs[i % AHEAD], ix->cap)], 1);
		}
	}
	ix->n = n;
	if (!n)
		return;
	ix->first = kis[0];
	ix->last = kis[n - 1];
	size_t nl = (n + BT_FILL - 1) / BT_FILL;
	struct store__bnode **level = store__xmalloc(nl * sizeof *level);
	struct store__bnode *prev = NULL;
	for (size_t i = 0; i < nl; i++) {
		struct store__bnode *b = node_new(ix, true);
		size_t from = i * BT_FILL, cnt = n - from < BT_FILL ? n - from : BT_FILL;
		b->skip = range_cpl(ix, i > 0 ? kis[from] : NULL,
				    i + 1 < nl ? kis[from + BT_FILL] : NULL);
		for (size_t j = 0; j < cnt; j++)
			set_slot(b, (uint32_t)j, kis[from + j]);
		b->n = (uint32_t)cnt;
		if (prev)
			prev->next = b;
		prev = b;
		level[i] = b;
	}
	while (nl > 1) {
		size_t nu = (nl + BT_FILL - 1) / BT_FILL;
		for (size_t i = 0; i < nu; i++) {
			struct store__bnode *b = node_new(ix, false);
			size_t from = i * BT_FILL, cnt = nl - from < BT_FILL ? nl - from : BT_FILL;
			b->skip = range_cpl(ix, i > 0 ? level[from]->keys[0] : NULL,
					    i + 1 < nu ? level[from + BT_FILL]->keys[0] : NULL);
			for (size_t j = 0; j < cnt; j++) {
				b->kids[j] = level[from + j];
				set_slot(b, (uint32_t)j, level[from + j]->keys[0]);
			}
			b->n = (uint32_t)cnt;
			level[i] = b;
		}
		nl = nu;
	}
	ix->root = level[0];
	free(level);
}
