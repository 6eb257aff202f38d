/*
 * inode.c: the inode table (see fuse/inode.h): two chained hashes over the same inodes, one on
 * the number and one on the path. Rename and detach walk every inode, which is fine for the
 * number the kernel keeps referenced and keeps lookups O(1).
 */
#include "fuse/inode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct fs_inode {
	uint64_t ino;
	uint64_t nlookup;            /* lookup replies not yet forgotten */
	char *path;                  /* owned */
	int detached;                /* no longer reachable by path (deleted or replaced) */
	int64_t stale_rev;           /* when detached: the last revision it existed at */
	int64_t born;                /* the table's revision when it was made (fs_itable_set_rev) */
	int replaced;                /* another object is at its path, until a replay moves it */
	int moved;                   /* a replayed exchange moved it; no lookup reply since */
	struct fs_inode *ino_next;   /* chain in by_ino */
	struct fs_inode *path_next;  /* chain in by_path, while attached */
};

static size_t hash_ino(uint64_t ino, size_t n)
{
	ino *= 0x9e3779b97f4a7c15ull;
	return (size_t)(ino >> 17) & (n - 1);
}

static size_t hash_path(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	while (*p)
		h = (h ^ (unsigned char)*p++) * 0x100000001b3ull;
	return (size_t)(h ^ h >> 29) & (n - 1);
}

static void link_path(struct fs_itable *it, struct fs_inode *in)
{
	size_t k = hash_path(in->path, it->nbuckets);
	in->path_next = it->by_path[k];
	it->by_path[k] = in;
}

static void unlink_path(struct fs_itable *it, struct fs_inode *in)
{
	struct fs_inode **pp = &it->by_path[hash_path(in->path, it->nbuckets)];
	while (*pp != in)
		pp = &(*pp)->path_next;
	*pp = in->path_next;
}

static void link_ino(struct fs_itable *it, struct fs_inode *in)
{
	size_t k = hash_ino(in->ino, it->nbuckets);
	in->ino_next = it->by_ino[k];
	it->by_ino[k] = in;
}

static int grow(struct fs_itable *it)
{
	size_t n = it->nbuckets * 2;
	struct fs_inode **bi = calloc(n, sizeof *bi), **bp = calloc(n, sizeof *bp);
	if (!bi || !bp) {
		free(bi);
		free(bp);
		return -ENOMEM;
	}
	struct fs_inode **oi = it->by_ino;
	size_t on = it->nbuckets;
	free(it->by_path);
	it->by_ino = bi;
	it->by_path = bp;
	it->nbuckets = n;
	for (size_t i = 0; i < on; i++) {
		for (struct fs_inode *in = oi[i], *next; in; in = next) {
			next = in->ino_next;
			link_ino(it, in);
			if (!in->detached)
				link_path(it, in);
		}
	}
	free(oi);
	return 0;
}

static struct fs_inode *by_path(const struct fs_itable *it, const char *path)
{
	struct fs_inode *in = it->by_path[hash_path(path, it->nbuckets)];
	while (in && strcmp(in->path, path) != 0)
		in = in->path_next;
	return in;
}

static struct fs_inode *by_ino(const struct fs_itable *it, uint64_t ino)
{
	struct fs_inode *in = it->by_ino[hash_ino(ino, it->nbuckets)];
	while (in && in->ino != ino)
		in = in->ino_next;
	return in;
}

static struct fs_inode *inode_new(struct fs_itable *it, uint64_t ino, const char *path)
{
	struct fs_inode *in = calloc(1, sizeof *in);
	char *p = strdup(path);
	if (!in || !p) {
		free(in);
		free(p);
		return NULL;
	}
	in->ino = ino;
	in->path = p;
	in->born = it->rev;
	link_ino(it, in);
	link_path(it, in);
	it->count++;
	return in;
}

int fs_itable_init(struct fs_itable *it)
{
	memset(it, 0, sizeof *it);
	pthread_mutex_init(&it->lock, NULL);
	it->nbuckets = 256;
	it->by_ino = calloc(it->nbuckets, sizeof *it->by_ino);
	it->by_path = calloc(it->nbuckets, sizeof *it->by_path);
	it->next_ino = FS_ROOT_INO + 1;
	if (!it->by_ino || !it->by_path || !inode_new(it, FS_ROOT_INO, "/")) {
		fs_itable_close(it);
		return -ENOMEM;
	}
	return 0;
}

void fs_itable_close(struct fs_itable *it)
{
	for (size_t i = 0; it->by_ino && i < it->nbuckets; i++) {
		for (struct fs_inode *in = it->by_ino[i], *next; in; in = next) {
			next = in->ino_next;
			free(in->path);
			free(in);
		}
	}
	free(it->by_ino);
	free(it->by_path);
	it->by_ino = it->by_path = NULL;
	pthread_mutex_destroy(&it->lock);
}

uint64_t fs_itable_lookup(struct fs_itable *it, const char *path)
{
	pthread_mutex_lock(&it->lock);
	struct fs_inode *in = by_path(it, path);
	if (!in && (it->count < it->nbuckets || grow(it) == 0))
		in = inode_new(it, it->next_ino++, path);
	if (in)
		in->nlookup++;
	uint64_t ino = in ? in->ino : 0;
	pthread_mutex_unlock(&it->lock);
	return ino;
}

void fs_itable_set_rev(struct fs_itable *it, int64_t rev)
{
	pthread_mutex_lock(&it->lock);
	it->rev = rev;
	pthread_mutex_unlock(&it->lock);
}

uint64_t fs_itable_find(struct fs_itable *it, const char *path)
{
	pthread_mutex_lock(&it->lock);
	struct fs_inode *in = by_path(it, path);
	uint64_t ino = in ? in->ino : 0;
	pthread_mutex_unlock(&it->lock);
	return ino;
}

int fs_itable_path(struct fs_itable *it, uint64_t ino, char *buf, size_t size)
{
	pthread_mutex_lock(&it->lock);
	struct fs_inode *in = by_ino(it, ino);
	int rc;
	if (!in)
		rc = -ENOENT;
	else if (in->detached)
		rc = -ESTALE;
	else if (strlen(in->path) >= size)
		rc = -ENAMETOOLONG;
	else
		rc = (int)strlen(strcpy(buf, in->path));
	pthread_mutex_unlock(&it->lock);
	return rc;
}

int fs_itable_path_at(struct fs_itable *it, uint64_t ino, char *buf, size_t size, int64_t *rev)
{
	pthread_mutex_lock(&it->lock);
	struct fs_inode *in = by_ino(it, ino);
	int rc;
	if (!in)
		rc = -ENOENT;
	else if (strlen(in->path) >= size)
		rc = -ENAMETOOLONG;
	else {
		rc = (int)strlen(strcpy(buf, in->path));
		*rev = in->detached ? in->stale_rev : 0;
	}
	pthread_mutex_unlock(&it->lock);
	return rc;
}

void fs_itable_mark_replaced(struct fs_itable *it, const char *path, int64_t rev)
{
	pthread_mutex_lock(&it->lock);
	for (struct fs_inode *in = it->by_path[hash_path(path, it->nbuckets)]; in;
	     in = in->path_next)
		if (in->born < rev && !strcmp(in->path, path))
			in->replaced = 1;
	pthread_mutex_unlock(&it->lock);
}

void fs_itable_mark_moved(struct fs_itable *it, uint64_t ino)
{
	pthread_mutex_lock(&it->lock);
	struct fs_inode *in = by_ino(it, ino);
	if (in)
		in->moved = 1;
	pthread_mutex_unlock(&it->lock);
}

void fs_itable_confirm(struct fs_itable *it, uint64_t ino)
{
	pthread_mutex_lock(&it->lock);
	struct fs_inode *in = by_ino(it, ino);
	if (in)
		in->moved = 0;
	pthread_mutex_unlock(&it->lock);
}

int fs_itable_take_moved(struct fs_itable *it, uint64_t ino)
{
	pthread_mutex_lock(&it->lock);
	struct fs_inode *in = by_ino(it, ino);
	int moved = in && in->moved;
	if (moved)
		in->moved = 0;
	pthread_mutex_unlock(&it->lock);
	return moved;
}

int fs_itable_replaced(struct fs_itable *it, uint64_t ino)
{
	pthread_mutex_lock(&it->lock);
	struct fs_inode *in = by_ino(it, ino);
	int replaced = in && in->replaced;
	pthread_mutex_unlock(&it->lock);
	return replaced;
}

void fs_itable_forget(struct fs_itable *it, uint64_t ino, uint64_t n)
{
	if (ino == FS_ROOT_INO)
		return;
	pthread_mutex_lock(&it->lock);
	struct fs_inode **pp = &it->by_ino[hash_ino(ino, it->nbuckets)];
	while (*pp && (*pp)->ino != ino)
		pp = &(*pp)->ino_next;
	struct fs_inode *in = *pp;
	if (in) {
		in->nlookup = in->nlookup > n ? in->nlookup - n : 0;
		if (in->nlookup == 0) {
			*pp = in->ino_next;
			if (!in->detached)
				unlink_path(it, in);
			free(in->path);
			free(in);
			it->count--;
		}
	}
	pthread_mutex_unlock(&it->lock);
}

/* Whether in stood for its path at rev: attached, made by then, not the root. */
static int movable(const struct fs_inode *in, int64_t rev)
{
	return in->ino != FS_ROOT_INO && !in->detached && in->born <= rev;
}

/* Whether path is prefix itself or lies under it. */
static int at_or_under(const char *path, const char *prefix, size_t plen)
{
	if (strncmp(path, prefix, plen) != 0)
		return 0;
	return path[plen] == '\0' || path[plen] == '/' || (plen == 1 && prefix[0] == '/');
}

/*
 * An inode made after rev stands for what its path held then, which is what the change of rev + 1
 * put there or later: a delete or rename replayed late leaves it attached (a writer's handle on it
 * commits to its path), and the change that ends that file detaches it when its turn comes.
 */
static void detach_locked(struct fs_itable *it, const char *path, int64_t rev)
{
	size_t plen = strlen(path);
	for (size_t i = 0; i < it->nbuckets; i++) {
		for (struct fs_inode *in = it->by_ino[i]; in; in = in->ino_next) {
			if (!movable(in, rev) || !at_or_under(in->path, path, plen))
				continue;
			unlink_path(it, in);
			in->detached = 1;
			in->replaced = 0;
			in->stale_rev = rev;
		}
	}
}

void fs_itable_detach(struct fs_itable *it, const char *path, int64_t rev)
{
	pthread_mutex_lock(&it->lock);
	detach_locked(it, path, rev);
	pthread_mutex_unlock(&it->lock);
}

/* Moves in, at or under from (flen bytes), to the same place under to; -ENOMEM keeps it. */
static int repath(struct fs_itable *it, struct fs_inode *in, size_t flen, const char *to,
		  size_t tlen)
{
	size_t rest = strlen(in->path) - flen;
	char *p = malloc(tlen + rest + 1);
	if (!p)
		return -ENOMEM;
	memcpy(p, to, tlen);
	memcpy(p + tlen, in->path + flen, rest + 1);
	unlink_path(it, in);
	free(in->path);
	in->path = p;
	in->replaced = 0;
	link_path(it, in);
	return 0;
}

int fs_itable_rename(struct fs_itable *it, const char *from, const char *to, int64_t rev)
{
	size_t flen = strlen(from), tlen = strlen(to);
	if (strcmp(from, to) == 0)
		return 0;
	pthread_mutex_lock(&it->lock);
	detach_locked(it, to, rev);
	int rc = 0;
	for (size_t i = 0; i < it->nbuckets; i++)
		for (struct fs_inode *in = it->by_ino[i]; in; in = in->ino_next)
			if (movable(in, rev) && at_or_under(in->path, from, flen) &&
			    repath(it, in, flen, to, tlen) != 0)
				rc = -ENOMEM; /* this inode keeps its old path */
	pthread_mutex_unlock(&it->lock);
	return rc;
}

int fs_itable_exchange(struct fs_itable *it, const char *a, const char *b, int64_t rev)
{
	size_t al = strlen(a), bl = strlen(b);
	if (strcmp(a, b) == 0)
		return 0;
	pthread_mutex_lock(&it->lock);
	int rc = 0;
	for (size_t i = 0; i < it->nbuckets; i++) {
		for (struct fs_inode *in = it->by_ino[i]; in; in = in->ino_next) {
			/* the two names: whatever inode the kernel holds for them, made after rev
			   too; under them, those made by rev. The walk is by number: each inode is
			   met once. */
			if (in->ino == FS_ROOT_INO || in->detached ||
			    (in->born > rev && strcmp(in->path, a) && strcmp(in->path, b)))
				continue;
			int r = 0;
			if (at_or_under(in->path, a, al))
				r = repath(it, in, al, b, bl);
			else if (at_or_under(in->path, b, bl))
				r = repath(it, in, bl, a, al);
			else
				continue;
			if (r)
				rc = r;
			else if (in->born <= rev)
				in->born = rev + 1;
		}
	}
	pthread_mutex_unlock(&it->lock);
	return rc;
}
