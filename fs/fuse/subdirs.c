/*
 * subdirs.c: how many subdirectories each directory has, for its link count (2 plus that, as every
 * local file system shows it, and as `find` and old `ls` rely on). Counting a directory's children
 * at each stat would cost its size; the count is kept instead from what the store applies: a
 * directory key made adds one to its parent's, one deleted takes one away (a renamed tree does
 * both for each of its directories). A table of paths (open addressing, FNV-1a), on the loop only.
 */
#include "fuse/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct slot {
	char *path; /* NULL: empty */
	uint32_t count;
};

struct fs_subdirs {
	struct slot *slots;
	size_t cap;  /* a power of two */
	size_t used; /* slots with a path (a count of 0 stays: directories rarely lose all) */
};

static uint64_t hash(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
	return h;
}

static struct slot *find(const struct fs_subdirs *t, const char *p, size_t n)
{
	size_t i = hash(p, n) & (t->cap - 1);
	while (t->slots[i].path &&
	       (strncmp(t->slots[i].path, p, n) != 0 || t->slots[i].path[n] != '\0'))
		i = (i + 1) & (t->cap - 1);
	return &t->slots[i];
}

static int grow(struct fs_subdirs *t)
{
	size_t cap = t->cap * 2;
	struct slot *old = t->slots, *s = calloc(cap, sizeof *s);
	if (!s)
		return -ENOMEM;
	size_t oc = t->cap;
	t->slots = s;
	t->cap = cap;
	for (size_t i = 0; i < oc; i++)
		if (old[i].path)
			*find(t, old[i].path, strlen(old[i].path)) = old[i];
	free(old);
	return 0;
}

struct fs_subdirs *fs__subdirs_new(void)
{
	struct fs_subdirs *t = calloc(1, sizeof *t);
	if (t && !(t->slots = calloc(t->cap = 64, sizeof *t->slots))) {
		free(t);
		t = NULL;
	}
	return t;
}

static void clear(struct fs_subdirs *t)
{
	for (size_t i = 0; i < t->cap; i++) {
		free(t->slots[i].path);
		t->slots[i].path = NULL;
	}
	t->used = 0;
}

void fs__subdirs_free(struct fs_subdirs *t)
{
	if (!t)
		return;
	clear(t);
	free(t->slots);
	free(t);
}

/* Adds delta to the count of the directory holding the key key[len] (never below 0). */
static void add_parent(struct fs_subdirs *t, const char *key, size_t len, int delta)
{
	const char *slash = memrchr(key, '/', len);
	if (!slash)
		return;
	size_t n = slash == key ? 1 : (size_t)(slash - key); /* "/" for a name at the root */
	if (t->used * 2 >= t->cap && grow(t) != 0)
		return; /* out of memory: a link count off by one, nothing worse */
	struct slot *s = find(t, key, n);
	if (!s->path) {
		if (delta < 0 || !(s->path = strndup(key, n)))
			return;
		t->used++;
	}
	s->count = delta < 0 && s->count == 0 ? 0 : s->count + (uint32_t)delta;
}

uint32_t fs__subdirs_of(const struct fs_subdirs *t, const char *dir)
{
	const struct slot *s = find(t, dir, strlen(dir));
	return s->path ? s->count : 0;
}

static int is_dir(const struct store_kv *kv)
{
	return (kv->meta.type & S_IFMT) == S_IFDIR;
}

void fs__subdirs_event(struct fs_subdirs *t, const struct store_event *ev)
{
	const struct store_kv *kv = &ev->kv;
	if (!kv->key_len || kv->key[0] != '/')
		return;
	int was = ev->has_prev && is_dir(&ev->prev);
	int now = ev->type == STORE_EVENT_PUT && is_dir(kv);
	if (was != now)
		add_parent(t, (const char *)kv->key, kv->key_len, now ? 1 : -1);
}

int fs__subdirs_rebuild(struct fs_subdirs *t, struct store *s)
{
	clear(t);
	unsigned char end[2];
	size_t el = store_prefix_end("/", 1, end);
	struct store_range_req rq = {.key = "/", .key_len = 1, .end = end, .end_len = el,
				     .flags = STORE_RANGE_KEYS_ONLY};
	struct store_range_result res;
	if (store_range(s, &rq, &res) != 0)
		return -EIO;
	for (size_t i = 0; i < res.n; i++)
		if (is_dir(&res.kvs[i]))
			add_parent(t, (const char *)res.kvs[i].key, res.kvs[i].key_len, 1);
	store_range_result_free(&res);
	return 0;
}
