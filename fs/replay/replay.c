/*
 * replay.c: replays remote changes through the mount so that they raise inotify events (see
 * replay/replay.h). Three parts: on the loop, the applied events of each revision are told
 * apart (create, write, delete, rename, attribute change) and queued; the replay thread performs
 * them through the mount; and as the FUSE face's replayer it tells the face which requests are
 * the thread's and at which revision to serve them (fuse/at.c serves them).
 */
#include "replay/replay.h"

#include "common/common.h"
#include "fuse/face.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define STOP_POLL_MS 5
#define STOP_POLLS 2000 /* 10 s: a replayed syscall waits for a local change at most that long */
/* the replay thread's nice value (replay/replay.h, "Priority"): 10, a tenth of a nice 0
   thread's share, not 19: a replay still makes progress next to a busy process */
#define REPLAY_NICE 10
/* a replay waits at most this long for a WAL sync of this member to begin (replay/replay.h,
   "When") */
#define REPLAY_SYNC_WAIT_US 1000
/* a replay of a new empty file waits at most this long for its content to follow ("A new empty
   file", replay_main) */
#define REPLAY_EMPTY_CREATE_WAIT_MS 20

/* ---- state ------------------------------------------------------------------------------------- */

enum replay_kind {
	R_CREATE,  /* open(O_CREAT|O_EXCL), one byte written when the file has content, close */
	R_MKDIR,
	R_SYMLINK, /* path2: the link's target */
	R_MKNOD,   /* a fifo, socket or device node; path2: a device's number, "MAJOR:MINOR" */
	R_WRITE,   /* open, one byte written (or truncated to empty), close */
	R_UNLINK,
	R_RMDIR,
	R_RENAME,  /* path to path2 */
	R_EXCHANGE, /* path and path2 trade places (renameat2 RENAME_EXCHANGE) */
	R_CHMOD,
	R_CHOWN,
	R_UTIMES,
};

static const char *const kind_names[] = {"create", "mkdir", "symlink", "mknod", "write",
					 "unlink", "rmdir", "rename", "exchange", "chmod", "chown",
					 "utimes"};

/* One change to replay: what the replay thread needs, copied off the store. */
struct item {
	struct item *next;
	enum replay_kind kind;
	int64_t rev;        /* the revision that made it */
	int64_t rev_end;    /* a write merged into a create: its revision, else rev */
	struct store_meta meta; /* the key's metadata at rev (mode, owner, times) */
	size_t value_len;   /* the file's content length at rev */
	char *path;         /* the key */
	char *path2;        /* rename's target, symlink's target, or NULL */
	uint64_t syncs;     /* r->syncs when it was queued */
	struct timespec queued; /* when (CLOCK_MONOTONIC) */
};

/* One applied event of the revision being gathered (on the loop). */
struct gev {
	int del;
	char *path;
	struct store_meta meta, prev; /* at the revision, and before it (has_prev) */
	int has_prev;
	int64_t version;              /* 1: created by this revision */
	size_t len;
	int value_changed;
	char *value;                  /* a symlink's target (NUL-terminated), else NULL */
};

struct fs_replay {
	struct fs_ops *ops;       /* borrowed; owns this */
	char mountpoint[FS_PATH_MAX_BYTES + 1];
	pthread_t thread;
	int started;
	atomic_int tid;           /* the replay thread's id, 0 before it runs */

	pthread_mutex_t lock;     /* guards the queue, stop and the counters */
	pthread_cond_t cond;
	struct item *head, *tail;
	size_t queued;
	int stop;
	int exited;               /* the thread has left its loop: nothing of it is in the mount */
	size_t queue_max;         /* FS_REPLAY_QUEUE_MAX, or RAFTFS_REPLAY_QUEUE_MAX (tests) */
	int test_hold;            /* RAFTFS_TEST_REPLAY_HOLD: a replayed create is left unanswered
				   * until the replay is halted or stopped (tests: a daemon killed or
				   * unmounted while its replay waits on the mount) */
	fuse_req_t held;          /* that create, on the loop */
	long test_delay_ms;       /* RAFTFS_TEST_REPLAY_DELAY_MS: the thread waits this long before
				   * each replay (tests: a replay lagging behind later changes) */
	int test_no_clone;        /* RAFTFS_TEST_REPLAY_NO_CLONE: no clone of the mount, as without
				   * CAP_SYS_ADMIN (tests: the fallback by path) */
	uint64_t done, dropped;
	uint64_t syncs;           /* WAL syncs this member began (fs_replay_sync) */
	int overflow_said;        /* the overflow was logged; cleared once the queue drains */

	pthread_mutex_t cur_lock; /* guards the current operation; never held across a syscall */
	int cur_active;
	int64_t cur_rev, cur_rev_end;
	char cur_path[FS_PATH_MAX_BYTES + 1], cur_path2[FS_PATH_MAX_BYTES + 1];

	uv_timer_t stop_timer;    /* on the loop: waits for the thread to leave the mount */
	int stop_polls;
	void (*stopped)(void *arg);
	void *stopped_arg;

	/* The loop's own: revisions made here (a FIFO, increasing), and the revision gathered. */
	int64_t *local;
	size_t local_head, local_n, local_cap;
	struct gev *grp;
	size_t grp_n, grp_cap;
	int64_t grp_rev;
};

/* ---- on the loop: gathering and telling changes apart ----------------------------------------- */

void fs_replay_counts(struct fs_replay *r, uint64_t *backlog, uint64_t *dropped)
{
	*backlog = *dropped = 0;
	if (!r)
		return;
	pthread_mutex_lock(&r->cur_lock);
	int active = r->cur_active;
	pthread_mutex_unlock(&r->cur_lock);
	pthread_mutex_lock(&r->lock);
	*backlog = r->queued + (uint64_t)active;
	*dropped = r->dropped;
	pthread_mutex_unlock(&r->lock);
}

/* fs_ops_replayer.local */
static void replay_local(void *arg, int64_t rev)
{
	struct fs_replay *r = arg;
	if (r->local_n && r->local[r->local_n - 1] >= rev)
		return; /* a retry answered with a revision already noted */
	if (r->local_head && r->local_head * 2 >= r->local_n) {
		memmove(r->local, r->local + r->local_head,
			(r->local_n - r->local_head) * sizeof *r->local);
		r->local_n -= r->local_head;
		r->local_head = 0;
	}
	if (r->local_n == r->local_cap) {
		size_t cap = r->local_cap ? r->local_cap * 2 : 64;
		int64_t *nl = realloc(r->local, cap * sizeof *nl);
		if (!nl)
			return; /* its events are raised twice: the lesser harm */
		r->local = nl;
		r->local_cap = cap;
	}
	r->local[r->local_n++] = rev;
}

/* Whether rev was made here; forgets the noted revisions up to it. */
static int take_local(struct fs_replay *r, int64_t rev)
{
	while (r->local_head < r->local_n && r->local[r->local_head] < rev)
		r->local_head++;
	if (r->local_head < r->local_n && r->local[r->local_head] == rev) {
		r->local_head++;
		return 1;
	}
	return 0;
}

static char *key_dup(const struct store_kv *kv)
{
	char *s = malloc(kv->key_len + 1);
	if (s) {
		memcpy(s, kv->key, kv->key_len);
		s[kv->key_len] = '\0';
	}
	return s;
}

static void group_clear(struct fs_replay *r)
{
	for (size_t i = 0; i < r->grp_n; i++) {
		free(r->grp[i].path);
		free(r->grp[i].value);
	}
	r->grp_n = 0;
}

/* Whether a is b or one of b's ancestors. */
static int at_or_above(const char *a, const char *b)
{
	size_t al = strlen(a);
	if (al == 1 && a[0] == '/')
		return 1;
	return !strncmp(a, b, al) && (b[al] == '\0' || b[al] == '/');
}

static void parent_path(const char *path, char *buf)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash == path ? 1 : (size_t)(slash - path);
	memcpy(buf, path, n);
	buf[n] = '\0';
}

/* An item of kind at rev with g's metadata, on path (g's when NULL) and path2 (may be NULL). */
static struct item *item_new(enum replay_kind kind, int64_t rev, const struct gev *g,
			     const char *path, const char *path2)
{
	struct item *it = calloc(1, sizeof *it);
	if (!it)
		return NULL;
	it->kind = kind;
	it->rev = it->rev_end = rev;
	it->meta = g->meta;
	it->value_len = g->len;
	it->path = strdup(path ? path : g->path);
	it->path2 = path2 ? strdup(path2) : NULL;
	if (!it->path || (path2 && !it->path2)) {
		free(it->path);
		free(it->path2);
		free(it);
		return NULL;
	}
	return it;
}

static void item_free(struct item *it)
{
	free(it->path);
	free(it->path2);
	free(it);
}

/* Appends it to the list *tail points at the end of; 0, or -ENOMEM when it is NULL. */
static int add(struct item ***tail, struct item *it)
{
	if (!it)
		return -ENOMEM;
	**tail = it;
	*tail = &it->next;
	return 0;
}

static uint32_t type_of(const struct store_meta *m)
{
	uint32_t t = m->type & S_IFMT;
	return t ? t : S_IFREG;
}

/*
 * Path order in which everything under a directory follows it without a gap: '/' sorts before
 * every other byte ("/d", "/d/x", "/d-x"), the end of a path before '/'.
 */
static int path_cmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		int x = *a == '/' ? 1 : *a ? (unsigned char)*a + 1 : 0;
		int y = *b == '/' ? 1 : *b ? (unsigned char)*b + 1 : 0;
		if (x != y || !x)
			return x - y;
	}
}

static const struct gev *sort_grp; /* qsort's context: the loop's only, never reentered */

static int by_path(const void *a, const void *b)
{
	return path_cmp(sort_grp[*(const size_t *)a].path, sort_grp[*(const size_t *)b].path);
}

/* The indices of g's events that pick() takes, in path order (malloc'd); NULL on ENOMEM. */
static size_t *sorted(const struct gev *g, size_t n, int (*pick)(const struct gev *, const void *),
		      const void *arg, size_t *count)
{
	size_t *v = malloc((n ? n : 1) * sizeof *v), k = 0;
	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (pick(&g[i], arg))
			v[k++] = i;
	sort_grp = g;
	qsort(v, k, sizeof *v, by_path);
	*count = k;
	return v;
}

static int pick_del(const struct gev *e, const void *arg)
{
	(void)arg;
	return e->del;
}

/* a put outside arg (a source's parent directory and its ancestors: their touches) */
static int pick_moved_put(const struct gev *e, const void *arg)
{
	return !e->del && !at_or_above(e->path, arg);
}

/*
 * Marks in covered[] the deletes under another deleted path (the tree of a removed or renamed
 * directory); *n_top gets how many are not, *top the last of those. O(n log n).
 */
static int mark_covered(const struct gev *g, size_t n, char *covered, size_t *n_top, size_t *top)
{
	size_t k = 0, *v = sorted(g, n, pick_del, NULL, &k);
	if (!v)
		return -ENOMEM;
	const char *cur = NULL;
	*n_top = 0;
	for (size_t x = 0; x < k; x++) {
		size_t i = v[x];
		if (cur && strcmp(cur, g[i].path) && at_or_above(cur, g[i].path)) {
			covered[i] = 1;
			continue;
		}
		cur = g[i].path;
		(*n_top)++;
		if (*n_top == 1 || i > *top)
			*top = i;
	}
	free(v);
	return 0;
}

/*
 * A rename's target among the puts outside sp (the source's parent and its ancestors): the first,
 * in event order, whose tree holds as many puts as the source's tree had deletes (n_del). -1 when
 * none, -ENOMEM. O(n log n + n * depth).
 */
static long rename_target(const struct gev *g, size_t n, const char *sp, size_t n_del)
{
	size_t k = 0, *v = sorted(g, n, pick_moved_put, sp, &k);
	size_t *under = calloc(n ? n : 1, sizeof *under), *stack = malloc((k ? k : 1) * sizeof *stack);
	long found = -1;
	if (!v || !under || !stack) {
		found = -ENOMEM;
		goto out;
	}
	size_t depth = 0;
	for (size_t x = 0; x < k; x++) {
		size_t i = v[x];
		while (depth && !at_or_above(g[stack[depth - 1]].path, g[i].path))
			depth--;
		stack[depth++] = i;
		for (size_t d = 0; d < depth; d++) /* i is in the tree of each on the stack */
			under[stack[d]]++;
	}
	for (size_t x = 0; x < k; x++)
		if (under[v[x]] == n_del && (found < 0 || v[x] < (size_t)found))
			found = (long)v[x];
out:
	free(v);
	free(under);
	free(stack);
	return found;
}

/*
 * An exchange's two names: the only two deletes not under another deleted path (covered), each
 * put again in the same revision. Their event indices in *a and *b (a deleted first); 0, or -1
 * when the revision is not an exchange.
 */
static int exchange_pair(const struct gev *g, size_t n, const char *covered, size_t *a, size_t *b)
{
	size_t top[2], k = 0;
	for (size_t i = 0; i < n; i++) {
		if (!g[i].del || covered[i])
			continue;
		if (k == 2)
			return -1;
		top[k++] = i;
	}
	if (k != 2)
		return -1;
	int put[2] = {0, 0};
	for (size_t i = 0; i < n; i++)
		for (size_t t = 0; t < 2; t++)
			if (!g[i].del && i > top[t] && !strcmp(g[i].path, g[top[t]].path))
				put[t] = 1;
	if (!put[0] || !put[1])
		return -1;
	*a = top[0];
	*b = top[1];
	return 0;
}

/*
 * The operations that made revision rev out of its events, appended to *out. The fs's requests
 * leave these shapes (ops.c): a create, mkdir or symlink puts a new key (version 1) and touches
 * its parent directory; a commit puts a file's new content; a remove deletes one key and touches
 * the parent; a rename deletes the source (and its tree) and puts the target (and its tree), then
 * touches both parents; an exchange deletes both names (and their trees) and puts both again,
 * each with the other's object, then touches both parents; a setattr puts a key with changed
 * metadata; a lease revoke deletes keys.
 */
static int classify(struct fs_replay *r, int64_t rev, struct item **out)
{
	struct item **tail = out;
	struct gev *g = r->grp;
	size_t n = r->grp_n, n_del = 0, top = 0, n_top = 0;
	int rc = 0;
	for (size_t i = 0; i < n; i++)
		n_del += g[i].del != 0;
	if (n_del) {
		char *covered = calloc(n, 1);
		rc = covered ? mark_covered(g, n, covered, &n_top, &top) : -ENOMEM;
		size_t xa, xb;
		if (!rc && n_top == 2 && exchange_pair(g, n, covered, &xa, &xb) == 0) {
			free(covered);
			return add(&tail, item_new(R_EXCHANGE, rev, &g[xa], g[xa].path, g[xb].path));
		}
		if (!rc && n_top == 1) {
			/* a rename: the target is the put whose tree mirrors the source's */
			char sp[FS_PATH_MAX_BYTES + 1];
			parent_path(g[top].path, sp);
			long t = rename_target(g, n, sp, n_del);
			if (t >= 0) { /* the target's metadata: the source's, moved */
				free(covered);
				return add(&tail, item_new(R_RENAME, rev, &g[t], g[top].path,
							   g[t].path));
			}
			rc = t == -1 ? 0 : (int)t;
		}
		for (size_t i = 0; i < n && !rc; i++) {
			if (!g[i].del || covered[i])
				continue;
			int dir = g[i].has_prev && type_of(&g[i].prev) == S_IFDIR;
			rc = add(&tail, item_new(dir ? R_RMDIR : R_UNLINK, rev, &g[i], NULL, NULL));
		}
		free(covered);
		return rc;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		uint32_t type = type_of(&g[i].meta);
		if (g[i].version == 1) {
			if (type == S_IFDIR)
				rc = add(&tail, item_new(R_MKDIR, rev, &g[i], NULL, NULL));
			else if (type == S_IFLNK)
				rc = add(&tail, item_new(R_SYMLINK, rev, &g[i], NULL,
							 g[i].value ? g[i].value : ""));
			else if (type != S_IFREG)
				rc = add(&tail, item_new(R_MKNOD, rev, &g[i], NULL,
							 g[i].value ? g[i].value : ""));
			else
				rc = add(&tail, item_new(R_CREATE, rev, &g[i], NULL, NULL));
			continue;
		}
		const struct store_meta *m = &g[i].meta, *p = &g[i].prev;
		if (!g[i].has_prev) { /* its history was compacted: only content can be told */
			if (type == S_IFREG)
				rc = add(&tail, item_new(R_WRITE, rev, &g[i], NULL, NULL));
			continue;
		}
		int owner = m->uid != p->uid || m->gid != p->gid;
		int mode = (m->mode & 07777) != (p->mode & 07777);
		if (type == S_IFDIR && !owner && !mode && n > 1)
			continue; /* a parent's touch by a create, remove or rename */
		if (type == S_IFREG && g[i].value_changed)
			rc = add(&tail, item_new(R_WRITE, rev, &g[i], NULL, NULL));
		else if (mode && type != S_IFLNK)
			rc = add(&tail, item_new(R_CHMOD, rev, &g[i], NULL, NULL));
		else if (owner)
			rc = add(&tail, item_new(R_CHOWN, rev, &g[i], NULL, NULL));
		else if (m->atime_ns != p->atime_ns)
			rc = add(&tail, item_new(R_UTIMES, rev, &g[i], NULL, NULL));
		else if (type == S_IFREG && m->mtime_ns != p->mtime_ns)
			rc = add(&tail, item_new(R_WRITE, rev, &g[i], NULL, NULL)); /* same content again */
		else if (m->mtime_ns != p->mtime_ns)
			rc = add(&tail, item_new(R_UTIMES, rev, &g[i], NULL, NULL));
	}
	return rc;
}

/*
 * The inode table as it was kept before replays: deleted paths detached at once, a deleted tree
 * by its top alone (a detach takes what is under the path, and costs a walk of the table).
 */
static void detach_deleted(struct fs_replay *r, int64_t rev)
{
	size_t n_top = 0, top = 0;
	char *covered = calloc(r->grp_n ? r->grp_n : 1, 1);
	if (covered && mark_covered(r->grp, r->grp_n, covered, &n_top, &top) != 0) {
		free(covered);
		covered = NULL; /* out of memory: every path, as slowly as it takes */
	}
	for (size_t i = 0; i < r->grp_n; i++)
		if (r->grp[i].del && !(covered && covered[i]))
			fs_ops_detach(r->ops, r->grp[i].path, rev - 1);
	free(covered);
}

void fs_replay_sync(struct fs_replay *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->syncs++;
	if (r->head)
		pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static void replay_flush(struct fs_replay *r)
{
	if (!r->grp_n)
		return;
	int64_t rev = r->grp_rev;
	if (take_local(r, rev)) {
		detach_deleted(r, rev); /* the handlers did already; the kernel raised the events */
		group_clear(r);
		return;
	}
	struct item *list = NULL;
	int rc = classify(r, rev, &list); /* O(n log n): a renamed tree of any size is one rename */
	size_t k = 0;
	for (struct item *it = list; it; it = it->next)
		k++;
	pthread_mutex_lock(&r->lock);
	int room = !r->stop && rc == 0 && r->queued + k <= r->queue_max;
	if (room && k) {
		if (r->tail)
			r->tail->next = list;
		else
			r->head = list;
		struct item *last = list;
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		for (;; last = last->next) {
			last->syncs = r->syncs;
			last->queued = now;
			if (!last->next)
				break;
		}
		r->tail = last;
		r->queued += k;
		pthread_cond_signal(&r->cond);
	} else if (!room && !r->stop) {
		r->dropped++;
	}
	int say = !room && !r->stop && !r->overflow_said;
	if (say)
		r->overflow_said = 1;
	size_t queued = r->queued;
	pthread_mutex_unlock(&r->lock);
	if (say)
		FS_WARN("inotify replay: %s at revision %" PRId64 " (%zu changes queued): remote "
			"changes raise no inotify events until the queue drains; caches are still "
			"invalidated", rc ? "out of memory" : "queue full", rev, queued);
	if (!room) {
		while (list) {
			struct item *next = list->next;
			item_free(list);
			list = next;
		}
		detach_deleted(r, rev); /* nobody replays them: the table follows the store now */
	}
	group_clear(r);
}

/* fs_ops_replayer.flush */
static void on_flush(void *arg)
{
	replay_flush(arg);
}

/* fs_ops_replayer.feed */
static void replay_feed(void *arg, const struct store_event *ev, size_t n)
{
	struct fs_replay *r = arg;
	for (size_t i = 0; i < n; i++) {
		const struct store_event *e = &ev[i];
		if (r->grp_n && e->kv.mod_revision != r->grp_rev)
			replay_flush(r);
		if (r->grp_n == r->grp_cap) {
			size_t cap = r->grp_cap ? r->grp_cap * 2 : 16;
			struct gev *ng = realloc(r->grp, cap * sizeof *ng);
			if (!ng)
				continue; /* this event raises none */
			r->grp = ng;
			r->grp_cap = cap;
		}
		struct gev *g = &r->grp[r->grp_n];
		memset(g, 0, sizeof *g);
		g->path = key_dup(&e->kv);
		if (!g->path)
			continue;
		g->del = e->type == STORE_EVENT_DELETE;
		g->meta = e->kv.meta;
		g->version = e->kv.version;
		g->len = e->kv.value_len;
		g->has_prev = e->has_prev;
		if (e->has_prev)
			g->prev = e->prev.meta;
		g->value_changed = !e->has_prev || e->prev.value_len != e->kv.value_len ||
				   (e->kv.value_len &&
				    memcmp(e->prev.value, e->kv.value, e->kv.value_len) != 0);
		uint32_t type = type_of(&g->meta);
		if (!g->del && (type == S_IFLNK || type == S_IFCHR || type == S_IFBLK)) {
			g->value = malloc(e->kv.value_len + 1);
			if (g->value) {
				memcpy(g->value, e->kv.value, e->kv.value_len);
				g->value[e->kv.value_len] = '\0';
			}
		}
		r->grp_rev = e->kv.mod_revision;
		r->grp_n++;
	}
}

/* ---- the replay thread ------------------------------------------------------------------------ */

/*
 * Runs one syscall of the replay on the file named name in directory dir (and name2 in dir2, a
 * rename's target); 0 or -errno. Nothing follows a symlink in the last component.
 */
static int perform(const struct item *it, int dir, const char *name, int dir2, const char *name2)
{
	int fd, rc = 0;
	mode_t mode = it->meta.mode & 07777;
	switch (it->kind) {
	case R_CREATE:
	case R_WRITE:
		fd = openat(dir, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW |
				(it->kind == R_CREATE ? O_CREAT | O_EXCL : 0), mode);
		if (fd < 0)
			return -errno;
		/* one byte raises IN_MODIFY; the handler ignores it, direct_io keeps it uncached */
		if (it->value_len && pwrite(fd, "", 1, 0) != 1)
			rc = -errno;
		else if (!it->value_len && it->kind == R_WRITE && ftruncate(fd, 0) != 0)
			rc = -errno;
		close(fd);
		return rc;
	case R_MKDIR:
		rc = mkdirat(dir, name, mode);
		break;
	case R_SYMLINK:
		rc = symlinkat(it->path2, dir, name);
		break;
	case R_MKNOD: {
		unsigned ma = 0, mi = 0;
		if (sscanf(it->path2, "%u:%u", &ma, &mi) != 2)
			ma = mi = 0;
		rc = mknodat(dir, name, type_of(&it->meta) | mode, makedev(ma, mi));
		break;
	}
	case R_UNLINK:
		rc = unlinkat(dir, name, 0);
		break;
	case R_RMDIR:
		rc = unlinkat(dir, name, AT_REMOVEDIR);
		break;
	case R_RENAME:
		rc = renameat(dir, name, dir2, name2);
		break;
	case R_EXCHANGE: /* the kernel raises both pairs of moves, as for a local exchange */
		rc = renameat2(dir, name, dir2, name2, RENAME_EXCHANGE);
		break;
	case R_CHMOD:
		rc = fchmodat(dir, name, mode, AT_SYMLINK_NOFOLLOW);
		break;
	case R_CHOWN:
		rc = fchownat(dir, name, it->meta.uid, it->meta.gid, AT_SYMLINK_NOFOLLOW);
		break;
	case R_UTIMES: {
		struct timespec ts[2] = {
			{it->meta.atime_ns / 1000000000, it->meta.atime_ns % 1000000000},
			{it->meta.mtime_ns / 1000000000, it->meta.mtime_ns % 1000000000}};
		rc = utimensat(dir, name, ts, AT_SYMLINK_NOFOLLOW);
		break;
	}
	default:
		return -EINVAL;
	}
	return rc ? -errno : 0;
}

/*
 * Opens (O_PATH) the directory holding key, from base (the mount's root) without following any
 * symlink, leaving the mount or climbing above base: a replay runs as root, and a name the kernel
 * holds from a later state could be a symlink out of the mount. *name: key's last component, "."
 * for the root. The fd to close, or -errno (ELOOP at a symlink).
 */
static int parent_of_key(int base, const char *key, char *buf, size_t n, const char **name)
{
	const char *slash = strrchr(key, '/');
	if (!slash || !slash[1]) { /* the root itself */
		*name = ".";
		int fd = fcntl(base, F_DUPFD_CLOEXEC, 0);
		return fd < 0 ? -errno : fd;
	}
	*name = slash + 1;
	size_t len = (size_t)(slash - key);
	if (len == 0)
		snprintf(buf, n, ".");
	else
		snprintf(buf, n, "%.*s", (int)(len - 1), key + 1);
	struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
			       .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
					  RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV};
	long fd = syscall(SYS_openat2, base, buf, &how, sizeof how);
	return fd < 0 ? -errno : (int)fd;
}

static void replay_one(struct fs_replay *r, int root, const struct item *it)
{
	pthread_mutex_lock(&r->cur_lock);
	r->cur_active = 1;
	r->cur_rev = it->rev;
	r->cur_rev_end = it->rev_end;
	snprintf(r->cur_path, sizeof r->cur_path, "%s", it->path);
	int two = it->kind == R_RENAME || it->kind == R_EXCHANGE; /* names: path and path2 */
	snprintf(r->cur_path2, sizeof r->cur_path2, "%s", two ? it->path2 : "");
	pthread_mutex_unlock(&r->cur_lock);
	/*
	 * A name the kernel holds from a later state (a lookup that raced the replay) is asked
	 * again: exclusive creates and rename targets are always revalidated by FUSE.
	 */
	int rc = 0, dir = -1, dir2 = -1;
	const char *name = NULL, *name2 = NULL;
	char buf[FS_PATH_MAX_BYTES + 1];
	/* without a clone: the mountpoint, opened for this replay only (it pins the mount) */
	int base = root != AT_FDCWD ? root : open(r->mountpoint, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (base < 0)
		rc = -errno;
	if (!rc && (dir = parent_of_key(base, it->path, buf, sizeof buf, &name)) < 0)
		rc = dir;
	if (!rc && two && (dir2 = parent_of_key(base, it->path2, buf, sizeof buf, &name2)) < 0)
		rc = dir2;
	if (!rc)
		rc = perform(it, dir, name, dir2, name2);
	if (dir >= 0)
		close(dir);
	if (dir2 >= 0)
		close(dir2);
	if (base >= 0 && base != root)
		close(base);
	pthread_mutex_lock(&r->cur_lock);
	r->cur_active = 0;
	pthread_mutex_unlock(&r->cur_lock);
	pthread_mutex_lock(&r->lock);
	int stopping = r->stop;
	pthread_mutex_unlock(&r->lock);
	if (rc && !stopping)
		FS_WARN("inotify replay of %s %s at revision %" PRId64 " failed: %s; its events "
			"are not raised", kind_names[it->kind], it->path, it->rev, strerror(-rc));
}

/*
 * The replay works through a detached clone of the mount (open_tree(OPEN_TREE_CLONE)): the files
 * it holds open pin the clone, not the mount users see, so `raftfs umount` and `fusermount3 -u`
 * are never refused for them; and its paths, relative to the clone's root, name this mount even
 * after an unmount from outside, never the directory underneath. Closing the clone (when the
 * replay ends) lets the FUSE connection end once the mount is unmounted. Returns the clone's fd,
 * or AT_FDCWD when it cannot be made (without CAP_SYS_ADMIN: said in the log): the replay then
 * goes by the mountpoint's absolute path.
 */
static int clone_mount(struct fs_replay *r)
{
	if (r->test_no_clone) {
		FS_WARN("test: the replay goes by the mountpoint's path %s, without a clone",
			r->mountpoint);
		return AT_FDCWD;
	}
	int fd = open_tree(AT_FDCWD, r->mountpoint, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (fd >= 0)
		return fd;
	FS_LOG(errno == EPERM ? FS_LOG_INFO : FS_LOG_WARN,
	       "inotify replay of %s: no clone of the mount of its own (%s): it goes by the "
	       "mountpoint's path, and an unmount meeting it with a file open fails (EBUSY)",
	       r->mountpoint, strerror(errno));
	return AT_FDCWD;
}

static void *replay_main(void *arg)
{
	struct fs_replay *r = arg;
	pthread_setname_np(pthread_self(), "raftfs-replay"); /* as top and perf show it */
	atomic_store(&r->tid, (int)gettid());
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), REPLAY_NICE) != 0)
		FS_WARN("inotify replay of %s: cannot lower its priority to nice %d: %s",
			r->mountpoint, REPLAY_NICE, strerror(errno));
	int root = clone_mount(r);
	pthread_mutex_lock(&r->lock);
	for (;;) {
		while (!r->head && !r->stop)
			pthread_cond_wait(&r->cond, &r->lock);
		if (r->stop)
			break;
		/* until the member waits on its disk, or REPLAY_SYNC_WAIT_US (replay/replay.h) */
		struct item *h = r->head;
		struct timespec until = h->queued;
		until.tv_nsec += REPLAY_SYNC_WAIT_US * 1000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!r->stop && r->syncs == h->syncs &&
		       pthread_cond_timedwait(&r->cond, &r->lock, &until) == 0)
			;
		if (r->stop)
			break;
		/*
		 * A new empty file is most often a file about to be written: an exclusive create
		 * (install, mktemp, lock files) is applied at once, its content at close. Waiting
		 * a moment for that commit makes one replay of both below, so a watcher sees one
		 * CLOSE_WRITE per file written, as it would here.
		 */
		h = r->head;
		if (h->kind == R_CREATE && !h->value_len && !h->next) {
			struct timespec wait;
			clock_gettime(CLOCK_MONOTONIC, &wait);
			wait.tv_nsec += REPLAY_EMPTY_CREATE_WAIT_MS * 1000000L;
			if (wait.tv_nsec >= 1000000000L) {
				wait.tv_sec++;
				wait.tv_nsec -= 1000000000L;
			}
			while (!r->stop && r->head == h && !h->next &&
			       pthread_cond_timedwait(&r->cond, &r->lock, &wait) == 0)
				;
			if (r->stop)
				break;
		}
		struct item *it = r->head;
		r->head = it->next;
		size_t taken = 1;
		/*
		 * A backlog holds a new file's create and then the commit of its content: both
		 * go in one replay (open O_CREAT, write, close), as the kernel raises a local
		 * `echo > f`: CREATE, MODIFY, CLOSE_WRITE. It halves the cost when it matters.
		 */
		struct item *w = r->head;
		if (w && it->kind == R_CREATE && !it->value_len && w->kind == R_WRITE &&
		    !strcmp(w->path, it->path)) {
			it->value_len = w->value_len;
			it->rev_end = w->rev;
			it->meta = w->meta;
			r->head = w->next;
			item_free(w);
			taken = 2;
		}
		if (!r->head)
			r->tail = NULL;
		pthread_mutex_unlock(&r->lock);
		if (r->test_delay_ms > 0)
			usleep((useconds_t)r->test_delay_ms * 1000);
		replay_one(r, root, it);
		item_free(it);
		pthread_mutex_lock(&r->lock);
		r->queued -= taken;
		r->done += taken;
		if (!r->queued)
			r->overflow_said = 0;
	}
	while (r->head) {
		struct item *it = r->head;
		r->head = it->next;
		item_free(it);
	}
	r->tail = NULL;
	r->queued = 0;
	pthread_mutex_unlock(&r->lock);
	if (root != AT_FDCWD)
		close(root); /* the clone goes: nothing of the replay is left in the mount */
	pthread_mutex_lock(&r->lock);
	r->exited = 1;
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

/*
 * fs_ops_replayer.serve_at, on the loop: a request of the replay thread (the FUSE request's pid is
 * the calling thread's id) is served at the operation it is performing; between operations at 0
 * (as it is now).
 */
static int serve_at(void *arg, fuse_req_t req, const char *op, struct fs_ops_at *at)
{
	struct fs_replay *r = arg;
	if (fuse_req_ctx(req)->pid != atomic_load(&r->tid))
		return FS_OPS_AT_NOT_MINE;
	if (r->test_hold && !r->held && !strcmp(op, "create")) {
		FS_WARN("test: a replayed create is left unanswered");
		r->held = req;
		return FS_OPS_AT_TAKEN;
	}
	pthread_mutex_lock(&r->cur_lock);
	if (r->cur_active) {
		at->rev = r->cur_rev_end;
		at->first = r->cur_rev;
		strcpy(at->path, r->cur_path);
		strcpy(at->path2, r->cur_path2);
	}
	pthread_mutex_unlock(&r->cur_lock);
	return FS_OPS_AT_SERVE;
}

/* A test hook's environment variable: set, not empty and not "0". */
static int test_flag(const char *name)
{
	const char *v = getenv(name);
	return v && *v && strcmp(v, "0") != 0;
}

int fs_replay_start(struct fs_replay **out, struct fs_ops *ops, const char *mountpoint)
{
	struct fs_replay *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	if (mountpoint[0] != '/' || strlen(mountpoint) >= sizeof r->mountpoint) {
		free(r);
		return -EINVAL;
	}
	strcpy(r->mountpoint, mountpoint);
	size_t ml = strlen(r->mountpoint);
	if (ml > 1 && r->mountpoint[ml - 1] == '/')
		r->mountpoint[ml - 1] = '\0';
	r->ops = ops;
	r->queue_max = FS_REPLAY_QUEUE_MAX;
	const char *qm = getenv("RAFTFS_REPLAY_QUEUE_MAX");
	if (qm && *qm)
		r->queue_max = strtoul(qm, NULL, 10);
	r->test_hold = test_flag("RAFTFS_TEST_REPLAY_HOLD");
	r->test_no_clone = test_flag("RAFTFS_TEST_REPLAY_NO_CLONE");
	const char *delay = getenv("RAFTFS_TEST_REPLAY_DELAY_MS");
	r->test_delay_ms = delay ? strtol(delay, NULL, 10) : 0;
	pthread_mutex_init(&r->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&r->cur_lock, NULL);
	int rc = pthread_create(&r->thread, NULL, replay_main, r);
	if (rc) {
		pthread_mutex_destroy(&r->lock);
		pthread_cond_destroy(&r->cond);
		pthread_mutex_destroy(&r->cur_lock);
		free(r);
		return -rc;
	}
	r->started = 1;
	ops->replayer = (struct fs_ops_replayer){.arg = r, .serve_at = serve_at,
		.local = replay_local, .feed = replay_feed, .flush = on_flush};
	*out = r;
	return 0;
}

static void stop_request(struct fs_replay *r)
{
	pthread_mutex_lock(&r->lock);
	r->stop = 1;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static void on_stop_timer_closed(uv_handle_t *h)
{
	struct fs_replay *r = h->data;
	r->stopped(r->stopped_arg);
}

static void on_stop_timer(uv_timer_t *t)
{
	struct fs_replay *r = t->data;
	pthread_mutex_lock(&r->lock);
	int exited = r->exited;
	pthread_mutex_unlock(&r->lock);
	if (!exited && ++r->stop_polls < STOP_POLLS)
		return;
	if (!exited)
		FS_WARN("inotify replay: still inside the mount %s after %d s; going on without it",
			r->mountpoint, STOP_POLLS * STOP_POLL_MS / 1000);
	uv_timer_stop(t);
	uv_close((uv_handle_t *)t, on_stop_timer_closed);
}

/* On the loop, with the session alive: the test hook's create is answered now (EIO). */
static void release_held(struct fs_replay *r)
{
	if (r->held) {
		fuse_reply_err(r->held, EIO);
		r->held = NULL;
	}
}

void fs_replay_halt(struct fs_replay *r)
{
	if (!r)
		return;
	stop_request(r);
	release_held(r);
}

void fs_replay_stop(struct fs_replay *r, uv_loop_t *loop, void (*stopped)(void *arg), void *arg)
{
	if (!r || r->stopped) {
		if (stopped)
			stopped(arg);
		return;
	}
	stop_request(r);
	release_held(r);
	r->stopped = stopped;
	r->stopped_arg = arg;
	uv_timer_init(loop, &r->stop_timer);
	r->stop_timer.data = r;
	uv_timer_start(&r->stop_timer, on_stop_timer, 0, STOP_POLL_MS);
}

void fs_replay_close(struct fs_replay *r)
{
	if (!r)
		return;
	stop_request(r);
	pthread_join(r->thread, NULL);
	r->ops->replayer = (struct fs_ops_replayer){0};
	FS_INFO("inotify replay of %s: %" PRIu64 " remote changes replayed, %" PRIu64 " dropped "
		"at a full queue", r->mountpoint, r->done, r->dropped);
	group_clear(r);
	free(r->grp);
	free(r->local);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->cur_lock);
	free(r);
}
