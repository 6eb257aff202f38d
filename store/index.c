/*
 * index.c: the ordered in-memory index of keyIndexes (etcd's treeIndex), a B+tree.
 *
 * Leaves hold up to BT_MAX pointers to struct store__ki in key order and are chained for range
 * scans; inner nodes hold up to BT_MAX children and, for each, the smallest key below it. Keys are
 * only inserted one by one; removal happens in bulk after a compaction, which rebuilds the tree
 * from the surviving keys (compaction walks every key anyway, so the rebuild adds O(n)).
 * Cost: insert and seek are O(log n) key comparisons. Point lookups (store__index_get) skip the
 * tree: a hash table of the same keys answers them in one or two cache misses, which is what makes
 * point reads and puts of new keys fast; it is rebuilt along with the tree.
 */
#include "store_internal.h"

#include <stdio.h>

#define BT_MAX 64
#define BT_FILL 48 /* keys per leaf when bulk-building */

struct store__bnode {
	uint32_t n;
	uint32_t leaf;
	struct store__bnode *next; /* leaves: the next leaf */
	struct store__ki *keys[BT_MAX]; /* inner: keys[i] is the smallest key under kids[i] */
	struct store__bnode *kids[];    /* inner only */
};

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

static struct store__bnode *node_new(bool leaf)
{
	size_t sz = sizeof(struct store__bnode) + (leaf ? 0 : BT_MAX * sizeof(struct store__bnode *));
	struct store__bnode *b = store__xmalloc(sz);
	b->n = 0;
	b->leaf = leaf;
	b->next = NULL;
	return b;
}

void store__index_init(struct store__index *ix)
{
	ix->root = NULL;
	ix->n = 0;
	ix->slots = NULL;
	ix->mask = 0;
}

/* ---- the hash table of keys ------------------------------------------------------------------ */

#define TAG_SHIFT 48
#define PTR_MASK ((UINT64_C(1) << TAG_SHIFT) - 1)

static inline uint64_t hmix(uint64_t h)
{
	h ^= h >> 33;
	h *= UINT64_C(0xff51afd7ed558ccd);
	h ^= h >> 33;
	h *= UINT64_C(0xc4ceb9fe1a85ec53);
	return h ^ (h >> 33);
}

static uint64_t key_hash(const unsigned char *p, size_t n)
{
	uint64_t h = UINT64_C(0x9e3779b97f4a7c15) ^ n;
	while (n >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		h = (h ^ v) * UINT64_C(0x100000001b3) + (h >> 29);
		h = (h << 23 | h >> 41) * UINT64_C(0x9e3779b97f4a7c15);
		p += 8;
		n -= 8;
	}
	uint64_t v = 0;
	memcpy(&v, p, n);
	h = (h ^ v) * UINT64_C(0x100000001b3);
	return hmix(h);
}

static void slot_put(uint64_t *slots, size_t mask, struct store__ki *ki, uint64_t h)
{
	uint64_t ptr = (uint64_t)(uintptr_t)ki;
	if (ptr >> TAG_SHIFT) {
		fprintf(stderr, "store: pointer %p does not fit the key table's 48 bits\n", (void *)ki);
		abort();
	}
	size_t i = h & mask;
	while (slots[i])
		i = (i + 1) & mask;
	slots[i] = (h >> TAG_SHIFT) << TAG_SHIFT | ptr;
}

static void hash_rebuild(struct store__index *ix, size_t want)
{
	size_t cap = 16;
	while (cap < want * 2)
		cap *= 2;
	uint64_t *slots = store__xcalloc(cap, sizeof *slots);
	if (ix->slots) {
		for (size_t i = 0; i <= ix->mask; i++) {
			if (i + 16 <= ix->mask && ix->slots[i + 16]) /* hide the misses on the keys */
				__builtin_prefetch((void *)(uintptr_t)(ix->slots[i + 16] & PTR_MASK));
			if (ix->slots[i]) {
				struct store__ki *ki = (struct store__ki *)(uintptr_t)(ix->slots[i] & PTR_MASK);
				slot_put(slots, cap - 1, ki, key_hash(ki->key, ki->key_len));
			}
		}
		free(ix->slots);
	}
	ix->slots = slots;
	ix->mask = cap - 1;
}

static void hash_insert(struct store__index *ix, struct store__ki *ki)
{
	if (!ix->slots || (ix->n + 1) * 10 > (ix->mask + 1) * 7)
		hash_rebuild(ix, ix->n + 1);
	slot_put(ix->slots, ix->mask, ki, key_hash(ki->key, ki->key_len));
}

static void node_free(struct store__bnode *b)
{
	if (!b->leaf)
		for (uint32_t i = 0; i < b->n; i++)
			node_free(b->kids[i]);
	free(b);
}

void store__index_free(struct store__index *ix)
{
	if (ix->root)
		node_free(ix->root);
	ix->root = NULL;
	ix->n = 0;
	free(ix->slots);
	ix->slots = NULL;
	ix->mask = 0;
}

/* Inner: the child whose range holds key (largest i with keys[i] <= key, or 0). */
static uint32_t inner_pick(const struct store__bnode *b, const void *key, size_t len)
{
	uint32_t lo = 1, hi = b->n; /* find first i in [1,n) with keys[i] > key */
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (kicmp(b->keys[mid], key, len) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo - 1;
}

/* Leaf: first i with keys[i] >= key. */
static uint32_t leaf_lower(const struct store__bnode *b, const void *key, size_t len)
{
	uint32_t lo = 0, hi = b->n;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (kicmp(b->keys[mid], key, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct store__ki *store__index_get(const struct store__index *ix, const void *key, size_t len)
{
	if (!ix->slots)
		return NULL;
	uint64_t h = key_hash(key, len), tag = h >> TAG_SHIFT;
	for (size_t i = h & ix->mask;; i = (i + 1) & ix->mask) {
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

/* Inserts into the subtree; returns a new right sibling when b split (NULL otherwise). */
static struct store__bnode *insert_rec(struct store__bnode *b, struct store__ki *ki)
{
	uint32_t i;
	struct store__bnode *right = NULL;
	struct store__ki *rkey = NULL;
	if (b->leaf) {
		i = leaf_lower(b, ki->key, ki->key_len);
		rkey = ki;
	} else {
		i = inner_pick(b, ki->key, ki->key_len);
		if (kicmp(b->keys[i], ki->key, ki->key_len) > 0)
			b->keys[i] = ki; /* new smallest key of the subtree */
		right = insert_rec(b->kids[i], ki);
		if (!right)
			return NULL;
		rkey = right->keys[0];
		i++;
	}
	if (b->n == BT_MAX) {
		struct store__bnode *nb = node_new(b->leaf);
		uint32_t half = BT_MAX / 2;
		nb->n = BT_MAX - half;
		memcpy(nb->keys, b->keys + half, nb->n * sizeof b->keys[0]);
		if (!b->leaf)
			memcpy(nb->kids, b->kids + half, nb->n * sizeof b->kids[0]);
		b->n = half;
		if (b->leaf) {
			nb->next = b->next;
			b->next = nb;
		}
		struct store__bnode *t = b;
		if (i > half) {
			t = nb;
			i -= half;
		}
		memmove(t->keys + i + 1, t->keys + i, (t->n - i) * sizeof t->keys[0]);
		t->keys[i] = rkey;
		if (!t->leaf) {
			memmove(t->kids + i + 1, t->kids + i, (t->n - i) * sizeof t->kids[0]);
			t->kids[i] = right;
		}
		t->n++;
		return nb;
	}
	memmove(b->keys + i + 1, b->keys + i, (b->n - i) * sizeof b->keys[0]);
	b->keys[i] = rkey;
	if (!b->leaf) {
		memmove(b->kids + i + 1, b->kids + i, (b->n - i) * sizeof b->kids[0]);
		b->kids[i] = right;
	}
	b->n++;
	return NULL;
}

void store__index_insert(struct store__index *ix, struct store__ki *ki)
{
	if (!ix->root)
		ix->root = node_new(true);
	struct store__bnode *right = insert_rec(ix->root, ki);
	if (right) {
		struct store__bnode *r = node_new(false);
		r->n = 2;
		r->keys[0] = ix->root->keys[0];
		r->kids[0] = ix->root;
		r->keys[1] = right->keys[0];
		r->kids[1] = right;
		ix->root = r;
	}
	hash_insert(ix, ki);
	ix->n++;
}

void store__index_seek(const struct store__index *ix, const void *key, size_t len,
		       struct store__iter *it)
{
	struct store__bnode *b = ix->root;
	it->leaf = NULL;
	it->pos = 0;
	if (!b)
		return;
	while (!b->leaf)
		b = b->kids[key ? inner_pick(b, key, len) : 0];
	it->leaf = b;
	it->pos = key ? leaf_lower(b, key, len) : 0;
}

struct store__ki *store__iter_next(struct store__iter *it)
{
	while (it->leaf && it->pos >= it->leaf->n) {
		it->leaf = it->leaf->next;
		it->pos = 0;
	}
	if (!it->leaf)
		return NULL;
	return it->leaf->keys[it->pos++];
}

void store__index_build(struct store__index *ix, struct store__ki **kis, size_t n)
{
	store__index_free(ix);
	hash_rebuild(ix, n);
	for (size_t i = 0; i < n; i++)
		slot_put(ix->slots, ix->mask, kis[i], key_hash(kis[i]->key, kis[i]->key_len));
	ix->n = n;
	if (!n)
		return;
	size_t nl = (n + BT_FILL - 1) / BT_FILL;
	struct store__bnode **level = store__xmalloc(nl * sizeof *level);
	struct store__bnode *prev = NULL;
	for (size_t i = 0; i < nl; i++) {
		struct store__bnode *b = node_new(true);
		size_t from = i * BT_FILL, cnt = n - from < BT_FILL ? n - from : BT_FILL;
		memcpy(b->keys, kis + from, cnt * sizeof *kis);
		b->n = (uint32_t)cnt;
		if (prev)
			prev->next = b;
		prev = b;
		level[i] = b;
	}
	while (nl > 1) {
		size_t nu = (nl + BT_FILL - 1) / BT_FILL;
		for (size_t i = 0; i < nu; i++) {
			struct store__bnode *b = node_new(false);
			size_t from = i * BT_FILL, cnt = nl - from < BT_FILL ? nl - from : BT_FILL;
			for (size_t j = 0; j < cnt; j++) {
				b->kids[j] = level[from + j];
				b->keys[j] = level[from + j]->keys[0];
			}
			b->n = (uint32_t)cnt;
			level[i] = b;
		}
		nl = nu;
	}
	ix->root = level[0];
	free(level);
}
