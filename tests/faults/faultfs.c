/*
 * faultfs.c: the fault suite's disk (tests/faults/README.md, "faultfs"), a FUSE file system that
 * passes everything through to a backing directory, as LazyFS does for Jepsen, except that file
 * data written and not yet made durable stays in this process's memory:
 *
 *   - write(), truncate and fallocate land in a per-file cache of unsynced changes (extents of
 *     data, a size, and how much of the backing file is still the file's); reads see them;
 *   - fsync and fdatasync of a file write its cached changes to the backing file and fsync it there;
 *   - directory operations (create, mkdir, rename, unlink, ...) are applied to the backing
 *     directory at once, so a name is durable as soon as it is made (LazyFS's default);
 *   - fsync of a directory fsyncs the backing directory.
 *
 * With --strict-dirs a change of a name (made, removed, renamed) is durable only once the
 * directory holding it has been fsynced (both directories for a rename), as a file system after a
 * crash may keep no more: power-off undoes the others, newest first. A removed or replaced file
 * is kept meanwhile under the hidden directory .faultfs-stash of BACKING, which is emptied and
 * removed at unmount.
 *
 * Commands, written one per write() to the file `.faultfs` at the mount root (which exists in no
 * listing and in no backing directory; reading it tells the state):
 *
 *   power-off   every unsynced byte is dropped (the backing files keep only what was synced) and
 *               every later operation fails with EIO, until the file system is unmounted;
 *   fsync-eio   every later fsync/fdatasync (files and directories) fails with EIO and makes
 *               nothing durable (its data stays unsynced);
 *   fullsync-eio  the same for fsync of files and directories only (fdatasync still works);
 *   enospc      every later write or fallocate that would grow a file fails with ENOSPC (writes
 *               inside the file's size, e.g. into a preallocated WAL segment, still succeed);
 *   heal        fsync-eio, fullsync-eio and enospc end (power-off does not: a powered-off disk
 *               is remounted).
 *
 * A write() of a command returns once it has taken effect: power-off waits for the operations in
 * flight, so an fsync that returned before it is durable and one after it failed.
 *
 * usage: faultfs [--strict-dirs] BACKING MOUNTPOINT (in the foreground until unmounted; logs one line per command on
 * stderr). Multi-threaded: the table of cached files has one mutex, each file's cache its own.
 */
#define FUSE_USE_VERSION 312
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <unistd.h>

#define CTL_NAME "/.faultfs"
#define STASH_NAME ".faultfs-stash" /* in BACKING, --strict-dirs only */

/* ======================================== state ================================================= */

/* One run of unsynced bytes of a file. */
struct ext {
	off_t off;     /* where it starts in the file */
	size_t len;    /* bytes held */
	size_t cap;    /* capacity of data */
	char *data;    /* the bytes (owned) */
};

/*
 * A regular file of the backing directory with unsynced changes or open handles, keyed by the
 * backing inode (dev, ino): renames keep it. Its content as the file system shows it is: bytes
 * [0, base) of the backing file, zeros up to size, the extents on top. Fields below mu are guarded
 * by it; refs and in_table by the table's mutex.
 */
struct cfile {
	dev_t dev;             /* backing device */
	ino_t ino;             /* backing inode */
	int fd;                /* the backing file, read-write (owned) */
	int refs;              /* open handles (table mutex) */
	int in_table;          /* reachable by (dev, ino) (table mutex) */
	struct cfile *next;    /* hash chain (table mutex) */
	pthread_mutex_t mu;    /* guards what follows */
	int dirty;             /* changes not yet synced */
	off_t size;            /* the file's size */
	off_t base;            /* bytes of the backing file still the file's (<= disk_size) */
	off_t disk_size;       /* the backing file's size */
	struct ext *ext;       /* unsynced extents, sorted by off, disjoint and not touching */
	size_t n_ext;          /* how many */
	size_t cap_ext;        /* capacity of ext */
};

#define TABLE_SIZE 1024

static struct {
	const char *backing;             /* BACKING as given */
	int dirfd;                       /* the backing directory */
	pthread_rwlock_t state;          /* ops hold it shared; commands exclusive */
	atomic_int off;                  /* powered off */
	atomic_int fsync_eio;            /* 1: fsync and fdatasync fail with EIO; 2: fsync only */
	atomic_int enospc;               /* writes that grow a file fail with ENOSPC */
	int strict;                      /* --strict-dirs: names durable once their dir is fsynced */
	ino_t root_ino;                  /* the backing directory's inode */
	pthread_mutex_t table_mu;        /* guards table and every cfile's refs, in_table, next */
	struct cfile *table[TABLE_SIZE]; /* by (dev, ino) */
} g = {.dirfd = -1, .table_mu = PTHREAD_MUTEX_INITIALIZER};

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line on stderr: "faultfs BACKING: message". */
static void logf_(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = snprintf(line, sizeof line, "faultfs %s: ", g.backing);
	vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = strlen(line);
	line[len++] = '\n';
	(void)!write(STDERR_FILENO, line, len);
}

/* The path relative to the backing directory, for the *at calls. */
static const char *rel(const char *path)
{
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

/* Takes the state shared; fails with EIO when powered off (the lock then released). */
static int enter(void)
{
	pthread_rwlock_rdlock(&g.state);
	if (atomic_load(&g.off)) {
		pthread_rwlock_unlock(&g.state);
		return -EIO;
	}
	return 0;
}

static void leave(void)
{
	pthread_rwlock_unlock(&g.state);
}

/* An operation passed straight through: call (0 or -1 with errno) between enter and leave. */
#define PASS_THROUGH(call)                                  \
	do {                                                \
		int r_ = enter();                           \
		if (r_ < 0)                                 \
			return r_;                          \
		r_ = (call) == 0 ? 0 : -errno;              \
		leave();                                    \
		return r_;                                  \
	} while (0)

/* The same for an operation that makes a name (is_dir: a directory). */
#define MAKE_NAME(call, path, is_dir)                                           \
	do {                                                                    \
		int r_ = enter();                                               \
		if (r_ < 0)                                                     \
			return r_;                                              \
		r_ = (call) == 0 ? 0 : -errno;                                  \
		if (r_ == 0)                                                    \
			names_note(N_MADE, path, NULL, NULL, is_dir, 0, 0);     \
		leave();                                                        \
		return r_;                                                      \
	} while (0)

/* ===================================== the cache ================================================ */

static size_t slot(dev_t dev, ino_t ino)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ull) ^ dev) % TABLE_SIZE;
}

static void cfile_free(struct cfile *c)
{
	for (size_t i = 0; i < c->n_ext; i++)
		free(c->ext[i].data);
	free(c->ext);
	close(c->fd);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* Takes c out of the table (table mutex held). */
static void table_remove(struct cfile *c)
{
	struct cfile **p = &g.table[slot(c->dev, c->ino)];
	while (*p && *p != c)
		p = &(*p)->next;
	if (*p)
		*p = c->next;
	c->in_table = 0;
}

static struct cfile *table_find(dev_t dev, ino_t ino)
{
	for (struct cfile *c = g.table[slot(dev, ino)]; c; c = c->next)
		if (c->dev == dev && c->ino == ino)
			return c;
	return NULL;
}

/*
 * The cfile of the backing file open as fd, with one more reference: the one in the table, or a
 * new one that takes over fd. Closes fd when it is not taken. NULL on ENOMEM (fd closed).
 */
static struct cfile *cfile_get(int fd)
{
	struct stat st;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return NULL;
	}
	pthread_mutex_lock(&g.table_mu);
	struct cfile *c = table_find(st.st_dev, st.st_ino);
	if (c) {
		c->refs++;
		pthread_mutex_unlock(&g.table_mu);
		close(fd);
		return c;
	}
	c = calloc(1, sizeof *c);
	if (!c) {
		pthread_mutex_unlock(&g.table_mu);
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	c->fd = fd;
	c->refs = 1;
	c->size = c->base = c->disk_size = st.st_size;
	pthread_mutex_init(&c->mu, NULL);
	c->in_table = 1;
	size_t s = slot(c->dev, c->ino);
	c->next = g.table[s];
	g.table[s] = c;
	pthread_mutex_unlock(&g.table_mu);
	return c;
}

/* Drops a reference; a clean file without handles, or one no name reaches, is freed. */
static void cfile_put(struct cfile *c)
{
	pthread_mutex_lock(&g.table_mu);
	pthread_mutex_lock(&c->mu);
	int dirty = c->dirty;
	pthread_mutex_unlock(&c->mu);
	int free_it = --c->refs == 0 && (!dirty || !c->in_table);
	if (free_it && c->in_table)
		table_remove(c);
	pthread_mutex_unlock(&g.table_mu);
	if (free_it)
		cfile_free(c);
}

/* The cfile of a regular file (with a reference) by its path, made when it has none. NULL with
 * errno set, or unchanged for a file that is not regular. */
static struct cfile *cfile_of_path(const char *path)
{
	struct stat st;
	if (fstatat(g.dirfd, rel(path), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
		return NULL;
	pthread_mutex_lock(&g.table_mu);
	struct cfile *c = table_find(st.st_dev, st.st_ino);
	if (c)
		c->refs++;
	pthread_mutex_unlock(&g.table_mu);
	if (c)
		return c;
	int fd = openat(g.dirfd, rel(path), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	return fd < 0 ? NULL : cfile_get(fd);
}

/* A name of (dev, ino) went away: when it was the last, nothing reaches the cache any more. */
static void forget_inode(dev_t dev, ino_t ino)
{
	pthread_mutex_lock(&g.table_mu);
	struct cfile *c = table_find(dev, ino);
	int free_it = 0;
	if (c) {
		table_remove(c);
		free_it = c->refs == 0;
	}
	pthread_mutex_unlock(&g.table_mu);
	if (free_it)
		cfile_free(c);
}

/* Makes room for one more extent at index i. c->mu held. */
static int ext_insert_at(struct cfile *c, size_t i)
{
	if (c->n_ext == c->cap_ext) {
		size_t cap = c->cap_ext ? c->cap_ext * 2 : 8;
		struct ext *e = realloc(c->ext, cap * sizeof *e);
		if (!e)
			return -ENOMEM;
		c->ext = e;
		c->cap_ext = cap;
	}
	memmove(&c->ext[i + 1], &c->ext[i], (c->n_ext - i) * sizeof *c->ext);
	c->n_ext++;
	return 0;
}

static int ext_reserve(struct ext *e, size_t need)
{
	if (need <= e->cap)
		return 0;
	size_t cap = e->cap ? e->cap : 4096;
	while (cap < need)
		cap *= 2;
	char *d = realloc(e->data, cap);
	if (!d)
		return -ENOMEM;
	e->data = d;
	e->cap = cap;
	return 0;
}

/*
 * Puts buf[0..len) at off into the extents: the extents it overlaps or touches become one. An
 * append to the last byte of an extent grows it in place. c->mu held.
 */
static int ext_write(struct cfile *c, const char *buf, size_t len, off_t off)
{
	off_t end = off + (off_t)len;
	size_t i = 0;
	while (i < c->n_ext && c->ext[i].off + (off_t)c->ext[i].len < off)
		i++; /* ext[i] is the first that ends at or after off */
	size_t j = i;
	while (j < c->n_ext && c->ext[j].off <= end)
		j++; /* ext[i..j) overlap or touch [off, end) */
	if (j == i) {
		int r = ext_insert_at(c, i);
		if (r < 0)
			return r;
		c->ext[i] = (struct ext){.off = off};
		if ((r = ext_reserve(&c->ext[i], len)) < 0) {
			memmove(&c->ext[i], &c->ext[i + 1], (--c->n_ext - i) * sizeof *c->ext);
			return r;
		}
		memcpy(c->ext[i].data, buf, len);
		c->ext[i].len = len;
		return 0;
	}
	/* merge ext[i..j) and the new bytes into ext[i] */
	struct ext *e = &c->ext[i];
	off_t lo = e->off < off ? e->off : off;
	off_t last_end = c->ext[j - 1].off + (off_t)c->ext[j - 1].len;
	off_t hi = last_end > end ? last_end : end;
	size_t need = (size_t)(hi - lo);
	if (lo == e->off) {
		if (ext_reserve(e, need) < 0)
			return -ENOMEM;
	} else {
		/* the new bytes begin before e: a fresh buffer with e's bytes moved up */
		struct ext n = {.off = lo};
		if (ext_reserve(&n, need) < 0)
			return -ENOMEM;
		memcpy(n.data + (e->off - lo), e->data, e->len);
		free(e->data);
		n.len = (size_t)(e->off - lo) + e->len;
		*e = n;
	}
	for (size_t k = i + 1; k < j; k++) {
		struct ext *x = &c->ext[k];
		memcpy(e->data + (x->off - lo), x->data, x->len);
		free(x->data);
	}
	/* bytes between merged extents that the new write does not cover cannot exist: extents
	 * ext[i..j) all touch [off, end), so [lo, hi) is covered by them and the write */
	memcpy(e->data + (off - lo), buf, len);
	e->len = need;
	memmove(&c->ext[i + 1], &c->ext[j], (c->n_ext - j) * sizeof *c->ext);
	c->n_ext -= j - i - 1;
	return 0;
}

/* The file is cut (or grown with zeros) to size. c->mu held. */
static void cache_truncate(struct cfile *c, off_t size)
{
	if (size < c->base)
		c->base = size;
	while (c->n_ext && c->ext[c->n_ext - 1].off >= size)
		free(c->ext[--c->n_ext].data);
	if (c->n_ext) {
		struct ext *e = &c->ext[c->n_ext - 1];
		if (e->off + (off_t)e->len > size)
			e->len = (size_t)(size - e->off);
	}
	c->size = size;
	c->dirty = 1;
}

/* Reads [off, off+len) of the file as it is now into buf; returns the bytes read. c->mu held. */
static ssize_t cache_read(struct cfile *c, char *buf, size_t len, off_t off)
{
	if (off >= c->size)
		return 0;
	if ((off_t)len > c->size - off)
		len = (size_t)(c->size - off);
	memset(buf, 0, len);
	off_t end = off + (off_t)len;
	if (off < c->base) {
		size_t want = (size_t)((end < c->base ? end : c->base) - off), got = 0;
		while (got < want) {
			ssize_t n = pread(c->fd, buf + got, want - got, off + (off_t)got);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return -errno;
			if (n == 0)
				break; /* the rest is zeros */
			got += (size_t)n;
		}
	}
	for (size_t i = 0; i < c->n_ext; i++) {
		struct ext *e = &c->ext[i];
		off_t a = e->off > off ? e->off : off;
		off_t b = e->off + (off_t)e->len < end ? e->off + (off_t)e->len : end;
		if (a < b)
			memcpy(buf + (a - off), e->data + (a - e->off), (size_t)(b - a));
	}
	return (ssize_t)len;
}

static int pwrite_all(int fd, const char *p, size_t len, off_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/*
 * Makes the file's content durable in the backing file: cut to base, the extents written, the
 * size set, then fsync (or fdatasync). c->mu held. On an error of the backing file the changes
 * stay cached (a later sync tries again from the start).
 */
static int cache_sync(struct cfile *c, int datasync)
{
	int r;
	if (c->dirty) {
		if (c->base < c->disk_size && ftruncate(c->fd, c->base) != 0)
			return -errno;
		c->disk_size = c->base;
		for (size_t i = 0; i < c->n_ext; i++) {
			struct ext *e = &c->ext[i];
			if ((r = pwrite_all(c->fd, e->data, e->len, e->off)) < 0)
				return r;
			if (e->off + (off_t)e->len > c->disk_size)
				c->disk_size = e->off + (off_t)e->len;
		}
		if (c->size > c->disk_size && fallocate(c->fd, 0, 0, c->size) != 0 &&
		    ftruncate(c->fd, c->size) != 0)
			return -errno;
		if (c->size < c->disk_size && ftruncate(c->fd, c->size) != 0)
			return -errno;
		c->disk_size = c->size;
	}
	if ((datasync ? fdatasync(c->fd) : fsync(c->fd)) != 0)
		return -errno;
	for (size_t i = 0; i < c->n_ext; i++)
		free(c->ext[i].data);
	c->n_ext = 0;
	c->base = c->size;
	c->dirty = 0;
	return 0;
}

/* Bytes and files not synced, for the control file and the power-off line. */
static void unsynced(uint64_t *bytes, unsigned *files)
{
	*bytes = 0;
	*files = 0;
	pthread_mutex_lock(&g.table_mu);
	for (size_t s = 0; s < TABLE_SIZE; s++)
		for (struct cfile *c = g.table[s]; c; c = c->next) {
			pthread_mutex_lock(&c->mu);
			if (c->dirty) {
				(*files)++;
				for (size_t i = 0; i < c->n_ext; i++)
					*bytes += c->ext[i].len;
			}
			pthread_mutex_unlock(&c->mu);
		}
	pthread_mutex_unlock(&g.table_mu);
}

/* Every unsynced change dropped (power off). The state is held exclusively. */
static void drop_all(void)
{
	pthread_mutex_lock(&g.table_mu);
	for (size_t s = 0; s < TABLE_SIZE; s++)
		for (struct cfile *c = g.table[s]; c; c = c->next) {
			pthread_mutex_lock(&c->mu);
			for (size_t i = 0; i < c->n_ext; i++)
				free(c->ext[i].data);
			c->n_ext = 0;
			c->size = c->base = c->disk_size;
			c->dirty = 0;
			pthread_mutex_unlock(&c->mu);
		}
	pthread_mutex_unlock(&g.table_mu);
}

/* ============================ names not yet durable (--strict-dirs) ============================= */

enum nop {
	N_MADE,    /* path made (a file, directory, symlink, node or link) */
	N_REMOVED, /* path removed: a file kept as stash, or an empty directory of mode */
	N_RENAMED, /* from renamed to path; a file it replaced kept as stash */
};

/* One change of a name, until the directories holding it are fsynced. */
struct nrec {
	enum nop op;
	char *path;          /* the name made, removed, or renamed to (owned) */
	char *from;          /* N_RENAMED: the old name (owned) */
	char stash[64];      /* the file removed or replaced, under STASH_NAME; "" for none */
	int is_dir;          /* N_MADE, N_REMOVED: a directory; N_RENAMED: it replaced one */
	int exchange;        /* N_RENAMED: RENAME_EXCHANGE */
	mode_t mode;         /* N_REMOVED, N_RENAMED over a directory: its mode */
	ino_t dir[2];        /* the directories whose fsync makes it durable */
	int n_dir;           /* 1, or 2 for a rename between two directories */
	int synced[2];       /* dir[i] was fsynced since */
	struct nrec *older;  /* the list, newest first */
};

static pthread_mutex_t names_mu = PTHREAD_MUTEX_INITIALIZER;
static struct nrec *names;        /* not yet durable, newest first (names_mu) */
static unsigned long stash_seq;   /* names of stashed files (names_mu) */

/* The backing inode of the directory holding path, or 0. */
static ino_t parent_ino(const char *path)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof buf, "%s", path);
	char *slash = strrchr(buf, '/');
	if (slash)
		*slash = 0;
	struct stat st;
	return fstatat(g.dirfd, rel(buf), &st, 0) == 0 ? st.st_ino : 0;
}

/* A fresh stash name into buf[64] (STASH_NAME/N). */
static void stash_name(char *buf)
{
	pthread_mutex_lock(&names_mu);
	unsigned long n = ++stash_seq;
	pthread_mutex_unlock(&names_mu);
	snprintf(buf, 64, STASH_NAME "/%lu", n);
}

/* Records a change of a name (nothing without --strict-dirs). The state is held shared. */
static void names_note(enum nop op, const char *path, const char *from, const char *stash,
		       int is_dir, mode_t mode, int exchange)
{
	if (!g.strict)
		return;
	struct nrec *n = calloc(1, sizeof *n);
	if (!n || !(n->path = strdup(path)) || (from && !(n->from = strdup(from)))) {
		logf_("out of memory recording a change of %s: it stays durable", path);
		if (n)
			free(n->path);
		free(n);
		return;
	}
	n->op = op;
	snprintf(n->stash, sizeof n->stash, "%s", stash ? stash : "");
	n->is_dir = is_dir;
	n->mode = mode;
	n->exchange = exchange;
	n->dir[0] = parent_ino(path);
	n->n_dir = 1;
	if (from && parent_ino(from) != n->dir[0])
		n->dir[n->n_dir++] = parent_ino(from);
	pthread_mutex_lock(&names_mu);
	n->older = names;
	names = n;
	pthread_mutex_unlock(&names_mu);
}

static void nrec_free(struct nrec *n)
{
	free(n->path);
	free(n->from);
	free(n);
}

/* Directory dir was fsynced: the changes it completes are durable. */
static void names_synced(ino_t dir)
{
	pthread_mutex_lock(&names_mu);
	for (struct nrec **p = &names; *p;) {
		struct nrec *n = *p;
		int all = 1;
		for (int i = 0; i < n->n_dir; i++) {
			n->synced[i] |= n->dir[i] == dir;
			all &= n->synced[i];
		}
		if (!all) {
			p = &n->older;
			continue;
		}
		if (n->stash[0])
			unlinkat(g.dirfd, n->stash, 0); /* the removal is durable: the file goes */
		*p = n->older;
		nrec_free(n);
	}
	pthread_mutex_unlock(&names_mu);
}

/* Removes name under dirfd, a directory with all it holds. */
static void rm_rf_at(int dirfd, const char *name)
{
	if (unlinkat(dirfd, name, 0) == 0 || (errno != EISDIR && errno != EPERM))
		return;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL)
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				rm_rf_at(fd, de->d_name);
		closedir(d);
	} else if (fd >= 0) {
		close(fd);
	}
	unlinkat(dirfd, name, AT_REMOVEDIR);
}

/* Power-off: every change not yet durable undone, newest first; returns how many. */
static unsigned names_undo(void)
{
	unsigned count = 0;
	pthread_mutex_lock(&names_mu);
	while (names) {
		struct nrec *n = names;
		names = n->older;
		const char *p = rel(n->path);
		int r = 0;
		if (n->op == N_MADE) {
			rm_rf_at(g.dirfd, p);
		} else if (n->op == N_REMOVED) {
			r = n->is_dir ? mkdirat(g.dirfd, p, n->mode) : renameat(g.dirfd, n->stash,
										 g.dirfd, p);
		} else {
			r = renameat2(g.dirfd, p, g.dirfd, rel(n->from),
				      n->exchange ? RENAME_EXCHANGE : 0);
			if (r == 0 && n->stash[0])
				r = renameat(g.dirfd, n->stash, g.dirfd, p);
			else if (r == 0 && n->is_dir)
				r = mkdirat(g.dirfd, p, n->mode);
		}
		if (r != 0)
			logf_("power off: cannot undo the change of %s: %s", n->path, strerror(errno));
		count++;
		nrec_free(n);
	}
	pthread_mutex_unlock(&names_mu);
	return count;
}

/* The stash emptied (at start, after power-off, at unmount) and, with gone, removed. */
static void stash_clear(int gone)
{
	if (!g.strict)
		return;
	rm_rf_at(g.dirfd, STASH_NAME);
	if (!gone && mkdirat(g.dirfd, STASH_NAME, 0700) != 0)
		logf_("cannot make %s/%s: %s", g.backing, STASH_NAME, strerror(errno));
}

static int is_stash(const char *path)
{
	return g.strict && path && strncmp(path, "/" STASH_NAME, sizeof STASH_NAME) == 0 &&
	       (path[sizeof STASH_NAME] == 0 || path[sizeof STASH_NAME] == '/');
}

/* ===================================== the control file ========================================= */

static int ctl_command(const char *buf, size_t len)
{
	char cmd[32];
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
		len--;
	if (len == 0 || len >= sizeof cmd)
		return -EINVAL;
	memcpy(cmd, buf, len);
	cmd[len] = 0;
	uint64_t bytes;
	unsigned files;
	pthread_rwlock_wrlock(&g.state);
	int r = 0;
	if (strcmp(cmd, "power-off") == 0) {
		unsynced(&bytes, &files);
		drop_all();
		unsigned undone = names_undo();
		stash_clear(0);
		atomic_store(&g.off, 1);
		logf_("power off: %" PRIu64 " unsynced bytes of %u files dropped, %u changes of names "
		      "undone; every operation fails with EIO until unmounted", bytes, files, undone);
	} else if (strcmp(cmd, "fsync-eio") == 0) {
		atomic_store(&g.fsync_eio, 1);
		logf_("fsync-eio: every fsync and fdatasync fails with EIO from now on");
	} else if (strcmp(cmd, "fullsync-eio") == 0) {
		atomic_store(&g.fsync_eio, 2);
		logf_("fullsync-eio: every fsync (not fdatasync) fails with EIO from now on");
	} else if (strcmp(cmd, "enospc") == 0) {
		atomic_store(&g.enospc, 1);
		logf_("enospc: every write that grows a file fails with ENOSPC from now on");
	} else if (strcmp(cmd, "heal") == 0) {
		atomic_store(&g.fsync_eio, 0);
		atomic_store(&g.enospc, 0);
		logf_("heal: fsync and space faults ended");
	} else {
		logf_("unknown command '%s' (power-off, fsync-eio, fullsync-eio, enospc, heal)", cmd);
		r = -EINVAL;
	}
	pthread_rwlock_unlock(&g.state);
	return r;
}

static int ctl_text(char *buf, size_t len)
{
	uint64_t bytes;
	unsigned files;
	unsynced(&bytes, &files);
	unsigned n = 0;
	pthread_mutex_lock(&names_mu);
	for (struct nrec *r = names; r; r = r->older)
		n++;
	pthread_mutex_unlock(&names_mu);
	return snprintf(buf, len, "power %s\nfsync %s\nspace %s\nunsynced %" PRIu64 " bytes in %u "
			"files\nnames %u changes not durable\n", atomic_load(&g.off) ? "off" : "on",
			(const char *[]){"ok", "eio", "eio-full"}[atomic_load(&g.fsync_eio)],
			atomic_load(&g.enospc) ? "full" : "ok",
			bytes, files, n);
}

static int is_ctl(const char *path)
{
	return path && strcmp(path, CTL_NAME) == 0;
}

/* ===================================== FUSE operations ========================================== */

/*
 * An open file: the cache of a regular file, or a plain descriptor (anything else). Every handle
 * is on a list (handles_mu), so that the ones whose release never came (the kernel sends it in the
 * background, and an unmount can drop it) are freed at unmount.
 */
struct fh {
	struct cfile *c; /* regular files */
	int fd;          /* other files; -1 with c */
	int ctl;         /* the control file */
	struct fh *prev, *next; /* the list of open handles (handles_mu) */
};

static pthread_mutex_t handles_mu = PTHREAD_MUTEX_INITIALIZER;
static struct fh *handles; /* every open handle */

/* A new handle on the list, or NULL (ENOMEM). */
static struct fh *fh_new(void)
{
	struct fh *h = calloc(1, sizeof *h);
	if (!h)
		return NULL;
	h->fd = -1;
	pthread_mutex_lock(&handles_mu);
	h->next = handles;
	if (handles)
		handles->prev = h;
	handles = h;
	pthread_mutex_unlock(&handles_mu);
	return h;
}

/* Closes a handle: off the list, its cache reference dropped or its descriptor closed. */
static void fh_free(struct fh *h)
{
	pthread_mutex_lock(&handles_mu);
	if (h->prev)
		h->prev->next = h->next;
	else
		handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&handles_mu);
	if (h->c)
		cfile_put(h->c); /* its unsynced data stays: a close makes nothing durable */
	else if (h->fd >= 0)
		close(h->fd);
	free(h);
}

static struct fh *fh_of(struct fuse_file_info *fi)
{
	return (struct fh *)(uintptr_t)fi->fh;
}

/* The backing descriptor of an open file (not the control file), or -1: reach it by path. */
static int fd_of(struct fuse_file_info *fi)
{
	struct fh *h = fi ? fh_of(fi) : NULL;
	return h && !h->ctl ? (h->c ? h->c->fd : h->fd) : -1;
}

static void *ffs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	cfg->use_ino = 1;
	cfg->hard_remove = 1;  /* no .fuse_hidden files in the backing directory */
	cfg->nullpath_ok = 1;  /* an unlinked open file is reached by its handle */
	cfg->entry_timeout = cfg->attr_timeout = cfg->negative_timeout = 1.0;
	return NULL;
}

static int ffs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	if (is_ctl(path) && !fi) {
		memset(st, 0, sizeof *st);
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		st->st_size = 4096;
		return 0;
	}
	if (is_stash(path) && !fi)
		return -ENOENT;
	int r = enter();
	if (r < 0)
		return r;
	struct fh *h = fi ? fh_of(fi) : NULL;
	if (h && h->ctl) {
		leave();
		return ffs_getattr(CTL_NAME, st, NULL);
	}
	if (h)
		r = fstat(h->c ? h->c->fd : h->fd, st) == 0 ? 0 : -errno;
	else
		r = fstatat(g.dirfd, rel(path), st, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
	if (r == 0 && S_ISREG(st->st_mode)) {
		pthread_mutex_lock(&g.table_mu);
		struct cfile *c = table_find(st->st_dev, st->st_ino);
		if (c)
			c->refs++;
		pthread_mutex_unlock(&g.table_mu);
		if (c) {
			pthread_mutex_lock(&c->mu);
			st->st_size = c->size;
			st->st_blocks = (c->size + 511) / 512;
			pthread_mutex_unlock(&c->mu);
			cfile_put(c);
		}
	}
	leave();
	return r;
}

static int ffs_readlink(const char *path, char *buf, size_t size)
{
	int r = enter();
	if (r < 0)
		return r;
	ssize_t n = readlinkat(g.dirfd, rel(path), buf, size - 1);
	leave();
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return 0;
}

static int ffs_mknod(const char *path, mode_t mode, dev_t rdev)
{
	MAKE_NAME(mknodat(g.dirfd, rel(path), mode, rdev), path, 0);
}

static int ffs_mkdir(const char *path, mode_t mode)
{
	MAKE_NAME(mkdirat(g.dirfd, rel(path), mode), path, 1);
}

static int ffs_unlink(const char *path)
{
	if (is_ctl(path))
		return -EPERM;
	int r = enter();
	if (r < 0)
		return r;
	struct stat st;
	int last = fstatat(g.dirfd, rel(path), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		   S_ISREG(st.st_mode) && st.st_nlink == 1;
	char stash[64] = "";
	if (g.strict) {
		stash_name(stash);
		if (linkat(g.dirfd, rel(path), g.dirfd, stash, 0) != 0)
			stash[0] = 0; /* no file to keep: the unlink fails below */
	}
	r = unlinkat(g.dirfd, rel(path), 0) == 0 ? 0 : -errno;
	if (r == 0 && last)
		forget_inode(st.st_dev, st.st_ino);
	if (r == 0 && stash[0])
		names_note(N_REMOVED, path, NULL, stash, 0, 0, 0);
	else if (stash[0])
		unlinkat(g.dirfd, stash, 0);
	leave();
	return r;
}

static int ffs_rmdir(const char *path)
{
	int r = enter();
	if (r < 0)
		return r;
	struct stat st = {.st_mode = 0700};
	fstatat(g.dirfd, rel(path), &st, AT_SYMLINK_NOFOLLOW);
	r = unlinkat(g.dirfd, rel(path), AT_REMOVEDIR) == 0 ? 0 : -errno;
	if (r == 0)
		names_note(N_REMOVED, path, NULL, NULL, 1, st.st_mode & 07777, 0);
	leave();
	return r;
}

static int ffs_symlink(const char *target, const char *path)
{
	MAKE_NAME(symlinkat(target, g.dirfd, rel(path)), path, 0);
}

static int ffs_rename(const char *from, const char *to, unsigned int flags)
{
	if (is_ctl(from) || is_ctl(to))
		return -EPERM;
	int r = enter();
	if (r < 0)
		return r;
	struct stat sf = {0}, st = {0};
	int have_from = fstatat(g.dirfd, rel(from), &sf, AT_SYMLINK_NOFOLLOW) == 0;
	int have_to = fstatat(g.dirfd, rel(to), &st, AT_SYMLINK_NOFOLLOW) == 0;
	int same = have_from && have_to && sf.st_dev == st.st_dev && sf.st_ino == st.st_ino;
	int replaced = !(flags & RENAME_EXCHANGE) && have_to && S_ISREG(st.st_mode) &&
		       st.st_nlink == 1 && !same;
	char stash[64] = "";
	int over_dir = 0;
	if (g.strict && !(flags & RENAME_EXCHANGE) && have_to && !same) {
		if (S_ISDIR(st.st_mode)) {
			over_dir = 1; /* an empty directory: made again if undone */
		} else {
			stash_name(stash);
			if (linkat(g.dirfd, rel(to), g.dirfd, stash, 0) != 0)
				stash[0] = 0;
		}
	}
	r = renameat2(g.dirfd, rel(from), g.dirfd, rel(to), flags) == 0 ? 0 : -errno;
	if (r == 0 && replaced)
		forget_inode(st.st_dev, st.st_ino);
	if (r == 0 && !same)
		names_note(N_RENAMED, to, from, stash, over_dir, st.st_mode & 07777,
			   !!(flags & RENAME_EXCHANGE));
	else if (stash[0])
		unlinkat(g.dirfd, stash, 0);
	leave();
	return r;
}

static int ffs_link(const char *from, const char *to)
{
	MAKE_NAME(linkat(g.dirfd, rel(from), g.dirfd, rel(to), 0), to, 0);
}

static int ffs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int fd = fd_of(fi);
	PASS_THROUGH(fd >= 0 ? fchmod(fd, mode) : fchmodat(g.dirfd, rel(path), mode, 0));
}

static int ffs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	int fd = fd_of(fi);
	PASS_THROUGH(fd >= 0 ? fchown(fd, uid, gid)
			     : fchownat(g.dirfd, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW));
}

static int ffs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	if (is_ctl(path) || (fi && fh_of(fi)->ctl))
		return 0;
	int r = enter();
	if (r < 0)
		return r;
	struct fh *h = fi ? fh_of(fi) : NULL;
	errno = EINVAL; /* not a regular file, or one open read-only */
	struct cfile *c = h ? h->c : cfile_of_path(path);
	if (!c) {
		r = -errno;
		leave();
		return r;
	}
	pthread_mutex_lock(&c->mu);
	cache_truncate(c, size);
	pthread_mutex_unlock(&c->mu);
	if (!h)
		cfile_put(c);
	leave();
	return 0;
}

/* Opens the backing file for a handle; O_TRUNC becomes a cached truncate. */
static int open_backing(const char *path, int flags, mode_t mode, int create,
			struct fuse_file_info *fi)
{
	int r = enter();
	if (r < 0)
		return r;
	struct fh *h = fh_new();
	if (!h) {
		leave();
		return -ENOMEM;
	}
	int bflags = (flags & ~(O_TRUNC | O_APPEND | O_ACCMODE)) | O_CLOEXEC;
	struct stat before;
	int made = create && fstatat(g.dirfd, rel(path), &before, AT_SYMLINK_NOFOLLOW) != 0;
	int fd = openat(g.dirfd, rel(path), bflags | (create ? O_CREAT : 0) | O_RDWR, mode);
	if (fd < 0 && (errno == EISDIR || errno == EACCES || errno == EROFS || errno == ETXTBSY))
		fd = openat(g.dirfd, rel(path), bflags | (create ? O_CREAT : 0) | (flags & O_ACCMODE),
			    mode);
	if (fd < 0) {
		r = -errno;
		fh_free(h);
		leave();
		return r;
	}
	if (made)
		names_note(N_MADE, path, NULL, NULL, 0, 0, 0);
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR) {
		h->c = cfile_get(fd);
		if (!h->c) {
			r = -errno;
			fh_free(h);
			leave();
			return r;
		}
		if (flags & O_TRUNC) {
			pthread_mutex_lock(&h->c->mu);
			cache_truncate(h->c, 0);
			pthread_mutex_unlock(&h->c->mu);
		}
	} else {
		h->fd = fd;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->direct_io = 0;
	fi->keep_cache = 0;
	leave();
	return 0;
}

static int ffs_open(const char *path, struct fuse_file_info *fi)
{
	if (is_ctl(path)) {
		struct fh *h = fh_new();
		if (!h)
			return -ENOMEM;
		h->ctl = 1;
		fi->fh = (uint64_t)(uintptr_t)h;
		fi->direct_io = 1;
		return 0;
	}
	return open_backing(path, fi->flags, 0, 0, fi);
}

static int ffs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	if (is_ctl(path))
		return -EEXIST;
	return open_backing(path, fi->flags, mode, 1, fi);
}

static int ffs_read(const char *path, char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fh *h = fh_of(fi);
	if (h->ctl) {
		char text[256];
		int n = ctl_text(text, sizeof text);
		if (off >= n)
			return 0;
		size_t k = (size_t)(n - off) < size ? (size_t)(n - off) : size;
		memcpy(buf, text + off, k);
		return (int)k;
	}
	int r = enter();
	if (r < 0)
		return r;
	ssize_t n;
	if (h->c) {
		pthread_mutex_lock(&h->c->mu);
		n = cache_read(h->c, buf, size, off);
		pthread_mutex_unlock(&h->c->mu);
	} else {
		n = pread(h->fd, buf, size, off);
		if (n < 0)
			n = -errno;
	}
	leave();
	return (int)n;
}

static int ffs_write(const char *path, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct fh *h = fh_of(fi);
	if (h->ctl) {
		int r = ctl_command(buf, size);
		return r < 0 ? r : (int)size;
	}
	int r = enter();
	if (r < 0)
		return r;
	if (!h->c) {
		ssize_t n = pwrite(h->fd, buf, size, off); /* not a regular file: no cache */
		leave();
		return n < 0 ? -errno : (int)n;
	}
	struct cfile *c = h->c;
	pthread_mutex_lock(&c->mu);
	if (atomic_load(&g.enospc) && off + (off_t)size > c->size) {
		r = -ENOSPC;
	} else {
		r = ext_write(c, buf, size, off);
		if (r == 0) {
			if (off + (off_t)size > c->size)
				c->size = off + (off_t)size;
			c->dirty = 1;
		}
	}
	pthread_mutex_unlock(&c->mu);
	leave();
	return r < 0 ? r : (int)size;
}

static int ffs_statfs(const char *path, struct statvfs *sv)
{
	int r = enter();
	if (r < 0)
		return r;
	r = fstatvfs(g.dirfd, sv) == 0 ? 0 : -errno;
	if (r == 0 && atomic_load(&g.enospc))
		sv->f_bfree = sv->f_bavail = 0;
	leave();
	return r;
}

static int ffs_release(const char *path, struct fuse_file_info *fi)
{
	fh_free(fh_of(fi));
	return 0;
}

static int ffs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct fh *h = fh_of(fi);
	if (h->ctl)
		return 0;
	int r = enter();
	if (r < 0)
		return r;
	int eio = atomic_load(&g.fsync_eio);
	if (eio == 1 || (eio == 2 && !datasync)) {
		leave();
		return -EIO;
	}
	if (h->c) {
		pthread_mutex_lock(&h->c->mu);
		r = cache_sync(h->c, datasync);
		pthread_mutex_unlock(&h->c->mu);
	} else {
		r = (datasync ? fdatasync(h->fd) : fsync(h->fd)) == 0 ? 0 : -errno;
	}
	leave();
	return r;
}

static int ffs_fallocate(const char *path, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	struct fh *h = fh_of(fi);
	if (h->ctl || !h->c)
		return -EOPNOTSUPP;
	int r = enter();
	if (r < 0)
		return r;
	struct cfile *c = h->c;
	if (mode == FALLOC_FL_KEEP_SIZE) {
		/* blocks only, no content: the backing file may have them at once */
		r = fallocate(c->fd, mode, off, len) == 0 ? 0 : -errno;
	} else if (mode == 0) {
		pthread_mutex_lock(&c->mu);
		if (off + len > c->size) {
			if (atomic_load(&g.enospc)) {
				r = -ENOSPC;
			} else {
				c->size = off + len; /* zeros, durable with the next sync */
				c->dirty = 1;
			}
		}
		pthread_mutex_unlock(&c->mu);
	} else {
		r = -EOPNOTSUPP;
	}
	leave();
	return r;
}

/* A directory handle: the backing directory, open (fi->fh). */
static int ffs_opendir(const char *path, struct fuse_file_info *fi)
{
	int r = enter();
	if (r < 0)
		return r;
	int fd = openat(g.dirfd, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	r = fd < 0 ? -errno : 0;
	fi->fh = (uint64_t)fd;
	leave();
	return r;
}

static int ffs_releasedir(const char *path, struct fuse_file_info *fi)
{
	close((int)fi->fh);
	return 0;
}

static int ffs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		       struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	int r = enter();
	if (r < 0)
		return r;
	int fd = dup((int)fi->fh);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		leave();
		return r;
	}
	rewinddir(d); /* the dup shares the position: each listing starts at the beginning */
	struct dirent *de;
	struct stat ds;
	int root = g.strict && fstat((int)fi->fh, &ds) == 0 && ds.st_ino == g.root_ino;
	while ((de = readdir(d)) != NULL) {
		struct stat st = {.st_ino = de->d_ino, .st_mode = (mode_t)DTTOIF(de->d_type)};
		if (root && strcmp(de->d_name, STASH_NAME) == 0)
			continue;
		if (fill(buf, de->d_name, &st, 0, 0))
			break;
	}
	closedir(d);
	leave();
	return 0;
}

static int ffs_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
	int r = enter();
	if (r < 0)
		return r;
	struct stat st;
	if (atomic_load(&g.fsync_eio))
		r = -EIO;
	else
		r = fsync((int)fi->fh) == 0 ? 0 : -errno;
	if (r == 0 && g.strict && fstat((int)fi->fh, &st) == 0)
		names_synced(st.st_ino);
	leave();
	return r;
}

static int ffs_access(const char *path, int mask)
{
	if (is_ctl(path))
		return 0;
	PASS_THROUGH(faccessat(g.dirfd, rel(path), mask, AT_SYMLINK_NOFOLLOW));
}

static int ffs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	if (is_ctl(path))
		return 0;
	int fd = fd_of(fi);
	PASS_THROUGH(fd >= 0 ? futimens(fd, tv)
			     : utimensat(g.dirfd, rel(path), tv, AT_SYMLINK_NOFOLLOW));
}

/* At unmount: every cache freed (what was not synced is lost, as at a power cut). */
static void ffs_destroy(void *data)
{
	uint64_t bytes;
	unsigned files;
	unsynced(&bytes, &files);
	if (bytes || files)
		logf_("unmounted with %" PRIu64 " unsynced bytes of %u files: lost", bytes, files);
	while (handles)
		fh_free(handles);
	pthread_mutex_lock(&names_mu);
	while (names) {
		struct nrec *n = names;
		names = n->older;
		nrec_free(n);
	}
	pthread_mutex_unlock(&names_mu);
	stash_clear(1);
	pthread_mutex_lock(&g.table_mu);
	for (size_t s = 0; s < TABLE_SIZE; s++) {
		while (g.table[s]) {
			struct cfile *c = g.table[s];
			g.table[s] = c->next;
			cfile_free(c);
		}
	}
	pthread_mutex_unlock(&g.table_mu);
}

static const struct fuse_operations ffs_ops = {
	.init = ffs_init,
	.destroy = ffs_destroy,
	.getattr = ffs_getattr,
	.readlink = ffs_readlink,
	.mknod = ffs_mknod,
	.mkdir = ffs_mkdir,
	.unlink = ffs_unlink,
	.rmdir = ffs_rmdir,
	.symlink = ffs_symlink,
	.rename = ffs_rename,
	.link = ffs_link,
	.chmod = ffs_chmod,
	.chown = ffs_chown,
	.truncate = ffs_truncate,
	.open = ffs_open,
	.create = ffs_create,
	.read = ffs_read,
	.write = ffs_write,
	.statfs = ffs_statfs,
	.release = ffs_release,
	.fsync = ffs_fsync,
	.fallocate = ffs_fallocate,
	.opendir = ffs_opendir,
	.readdir = ffs_readdir,
	.releasedir = ffs_releasedir,
	.fsyncdir = ffs_fsyncdir,
	.access = ffs_access,
	.utimens = ffs_utimens,
};

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--strict-dirs") == 0) {
		g.strict = 1;
		argv++;
		argc--;
	}
	if (argc != 3) {
		fprintf(stderr, "usage: faultfs [--strict-dirs] BACKING MOUNTPOINT\n");
		return 2;
	}
	g.backing = argv[1];
	g.dirfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (g.dirfd < 0) {
		fprintf(stderr, "faultfs: cannot open backing directory %s: %s\n", argv[1],
			strerror(errno));
		return 1;
	}
	struct stat rs;
	if (fstat(g.dirfd, &rs) == 0)
		g.root_ino = rs.st_ino;
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	/* a command waits for the operations in flight, and new ones wait for it */
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&g.state, &ra);
	pthread_rwlockattr_destroy(&ra);
	umask(0);
	stash_clear(0);
	char *fargv[] = {argv[0], "-o", "fsname=faultfs,subtype=faultfs", NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
	struct fuse *f = fuse_new(&args, &ffs_ops, sizeof ffs_ops, NULL);
	int rc = 1;
	if (!f)
		goto out;
	if (fuse_mount(f, argv[2]) != 0)
		goto out_new;
	if (fuse_set_signal_handlers(fuse_get_session(f)) != 0)
		goto out_mount;
	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	if (lc) {
		fuse_loop_cfg_set_max_threads(lc, 16);
		rc = fuse_loop_mt(f, lc) == 0 ? 0 : 1;
		fuse_loop_cfg_destroy(lc);
	}
	fuse_remove_signal_handlers(fuse_get_session(f));
out_mount:
	fuse_unmount(f);
out_new:
	fuse_destroy(f);
out:
	fuse_opt_free_args(&args);
	close(g.dirfd);
	pthread_rwlock_destroy(&g.state);
	if (rc)
		fprintf(stderr, "faultfs: %s on %s ended with an error\n", argv[1], argv[2]);
	return rc;
}
