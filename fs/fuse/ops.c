/*
 * ops.c: the FUSE lowlevel operations of a mount (see fuse/face.h for the mapping and the
 * consistency rules). Every handler ends in exactly one reply: at once for reads and refusals,
 * from the proposal's callback for changes.
 */
#include "fuse/internal.h"

#include "member/member.h"
#include "common/common.h"
#include "raft.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

/*
 * How long the kernel may keep entries and attributes: remote changes invalidate them at once
 * (fs_ops_after_apply), so a second; with -o linearizable nothing is kept, every read asks.
 */
#define ENTRY_TIMEOUT (o->opt.linearizable ? 0.0 : 1.0)
#define ATTR_TIMEOUT (o->opt.linearizable ? 0.0 : 1.0)
#define RETRIES 5         /* a compare that lost to a concurrent change is retried */

/* ---- helpers --------------------------------------------------------------------------------- */

/*
 * Looks a key up at revision rev (0: current); 0 with *kv (pointing into the store until its next
 * change), -ENOENT when it does not exist then (or that revision was compacted).
 */
static int get_key(struct fs_ops *o, const void *key, size_t len, int64_t rev,
		   struct store_kv *kv)
{
	return store_get(o->store, key, len, rev, kv) == 0 ? 0 : -ENOENT;
}

static int pending_kv(struct fs_ops *o, const char *path, struct store_kv *kv);

/* path at revision rev (0: current, where a file created here and not yet committed counts). */
static int get_kv_at(struct fs_ops *o, const char *path, int64_t rev, struct store_kv *kv)
{
	int rc = get_key(o, path, strlen(path), rev, kv);
	if (rc == -ENOENT && rev == 0)
		rc = pending_kv(o, path, kv);
	return rc;
}

static int get_kv(struct fs_ops *o, const char *path, struct store_kv *kv)
{
	return get_kv_at(o, path, 0, kv);
}

/* path as the store has it: what other members see, without this member's pending creates. */
static int get_kv_stored(struct fs_ops *o, const char *path, struct store_kv *kv)
{
	return get_key(o, path, strlen(path), 0, kv);
}

static int is_root(const char *path)
{
	return path[0] == '/' && path[1] == '\0';
}

/* Whether ino is in the namespace at the root (.raftfs/: control/ answers for it). */
#define CONTROL(o, ino) ((o)->ns.lookup && fs_ops_ns_ino(ino))

/*
 * The attributes of inode ino, which stands for path, from kv (NULL: the root). A directory's
 * link count is 2 plus its subdirectories, as on a local file system.
 */
static void fill_attr(struct fs_ops *o, uint64_t ino, const char *path, const struct store_kv *kv,
		      struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_ino = ino;
	if (!kv) { /* the root */
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2 + (o->subdirs ? fs__subdirs_of(o->subdirs, "/") : 0);
		st->st_blksize = 4096;
		return;
	}
	uint32_t type = kv->meta.type & S_IFMT;
	st->st_mode = (type ? type : S_IFREG) | (kv->meta.mode & 07777);
	st->st_nlink = !S_ISDIR(st->st_mode) ? 1
		       : 2 + (o->subdirs ? fs__subdirs_of(o->subdirs, path) : 0);
	st->st_uid = kv->meta.uid;
	st->st_gid = kv->meta.gid;
	/* a regular file's size is its content's, a symlink's its target's; the rest have none */
	st->st_size = S_ISREG(st->st_mode) || S_ISLNK(st->st_mode) ? (off_t)kv->value_len : 0;
	if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode))
		st->st_rdev = fs__ops_rdev_of(kv->value, kv->value_len);
	st->st_blksize = 4096;
	st->st_blocks = (st->st_size + 511) / 512;
	st->st_atim.tv_sec = kv->meta.atime_ns / 1000000000;
	st->st_atim.tv_nsec = kv->meta.atime_ns % 1000000000;
	st->st_mtim.tv_sec = kv->meta.mtime_ns / 1000000000;
	st->st_mtim.tv_nsec = kv->meta.mtime_ns % 1000000000;
	st->st_ctim.tv_sec = kv->meta.ctime_ns / 1000000000;
	st->st_ctim.tv_nsec = kv->meta.ctime_ns % 1000000000;
}

/* The path of ino into buf[FS_PATH_MAX_BYTES + 1]; a negative errno when it has none. */
static int ino_path(struct fs_ops *o, fuse_ino_t ino, char *buf)
{
	int rc = fs_itable_path(&o->itable, ino, buf, FS_PATH_MAX_BYTES + 1);
	return rc < 0 ? (rc == -ESTALE ? -ENOENT : rc) : 0;
}

/* parent's path joined with name into buf; ENAMETOOLONG, EINVAL for "." "..", "/" in name. */
static int child_path(struct fs_ops *o, fuse_ino_t parent, const char *name, char *buf)
{
	size_t nl = strlen(name);
	if (nl > FS_NAME_MAX_BYTES)
		return -ENAMETOOLONG;
	if (nl == 0 || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	if (fs_ops_ns_ino(parent))
		return -EPERM; /* nothing is made or removed in .raftfs/ */
	int rc = ino_path(o, parent, buf);
	if (rc)
		return rc;
	size_t pl = strlen(buf);
	if (pl + 1 + nl > FS_PATH_MAX_BYTES)
		return -ENAMETOOLONG;
	if (!is_root(buf))
		buf[pl++] = '/';
	memcpy(buf + pl, name, nl + 1);
	return 0;
}

/* The parent directory of path into buf. */
static void parent_of(const char *path, char *buf)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash == path ? 1 : (size_t)(slash - path);
	memcpy(buf, path, n);
	buf[n] = '\0';
}

/* Whether the reserved control name is being touched: /.raftfs at the root. */
static int reserved(const char *path)
{
	return strcmp(path, "/.raftfs") == 0 || strncmp(path, "/.raftfs/", 9) == 0;
}

/*
 * Notes that applying revision rev created a name for the kernel's own request (fs_ops); with
 * attrs_current, the kernel also holds no attributes of the file or of its directory that the
 * revision changed (commit_done says when).
 */
static void own_create(struct fs_ops *o, int64_t rev, int attrs_current)
{
	if (o->n_own_creates < sizeof o->own_creates / sizeof o->own_creates[0])
		o->own_creates[o->n_own_creates++] =
			(struct fs_own_create){.rev = rev, .attrs_current = attrs_current};
}

static int dir_has_pending_create(struct fs_ops *o, uint64_t ino);

/*
 * How long the kernel may keep the attributes of ino (kv): not at all while a file created in it
 * is still to be committed, as that commit moves the directory's mtime without invalidating them.
 */
static double attr_timeout(struct fs_ops *o, uint64_t ino, const struct store_kv *kv)
{
	if (!kv->mod_revision)
		return 0; /* created here, not committed */
	if ((kv->meta.type & S_IFMT) == S_IFDIR && dir_has_pending_create(o, ino))
		return 0;
	return ATTR_TIMEOUT;
}

/* How long the kernel may keep an entry for ino (kv) and its attributes. */
static void entry_timeouts(struct fs_ops *o, uint64_t ino, const struct store_kv *kv,
			   struct fuse_entry_param *e)
{
	e->entry_timeout = kv->mod_revision ? ENTRY_TIMEOUT : 0; /* else created here, not
								   * committed: may vanish */
	e->attr_timeout = attr_timeout(o, ino, kv);
}

/* ---- the replayer's exchanges ---------------------------------------------------------------- */

/*
 * Whether a request for ino by path (open, stat, chmod, truncate: no handle) must be looked up
 * again, and if so, answers it ESTALE and returns 1. ino is one of the two inodes a replayed
 * exchange moved (fs_itable_mark_moved) that no lookup has given the kernel since: it may have
 * found it under the name it left (looked up before the replay, or in the moment before the
 * kernel swaps the names after the replay's RENAME is answered), while the table holds it at the
 * other name, where the store may even have deleted it since. ESTALE has the kernel walk the path
 * again, revalidating each name (a LOOKUP, which confirms the inode it gives), and ask for what
 * the name holds then. Each inode answers so once: a second request for it comes from that new
 * walk, or from a path that does not name it (a /proc/PID/fd link), and is served.
 */
static int moved_by_exchange(struct fs_ops *o, fuse_req_t req, fuse_ino_t ino)
{
	if (!fs_itable_take_moved(&o->itable, ino))
		return 0;
	fuse_reply_err(req, ESTALE);
	return 1;
}

/* The entry of path; with uncached, the kernel keeps neither it nor its attributes. */
static int reply_entry_for(fuse_req_t req, struct fs_ops *o, const char *path, int uncached)
{
	struct store_kv kv;
	if (get_kv(o, path, &kv) != 0)
		return fuse_reply_err(req, ENOENT);
	struct fuse_entry_param e = {0};
	e.ino = fs_itable_lookup(&o->itable, path);
	if (!e.ino)
		return fuse_reply_err(req, ENOMEM);
	if (!uncached)
		entry_timeouts(o, e.ino, &kv, &e);
	fill_attr(o, e.ino, path, &kv, &e.attr);
	fs_itable_confirm(&o->itable, e.ino);
	return fuse_reply_entry(req, &e);
}

/* ---- proposing ------------------------------------------------------------------------------- */

/* What a builder of txn.c reads: the store and this member's pending creates (pending_kv). */
static int view_pending(void *arg, const char *path, struct store_kv *kv)
{
	return pending_kv(arg, path, kv);
}

static struct fs_txn_view view_of(struct fs_ops *o)
{
	return (struct fs_txn_view){o->store, view_pending, o};
}

/* One proposal on behalf of a FUSE request. */
struct pending {
	struct fs_ops *o;
	fuse_req_t req;
	void (*done)(struct pending *p, int status, const Rpc__Response *resp);
	char path[FS_PATH_MAX_BYTES + 1];
	char path2[FS_PATH_MAX_BYTES + 1]; /* rename's target */
	struct fuse_file_info fi;            /* create's */
	int flags;                           /* the operation's own */
	int attempt;
	void *fh;                            /* flush/release: the handle */
	uint64_t fh_gen;                     /* its gen when its content was proposed */
	int release;                         /* free the handle after the commit */
	fuse_ino_t ino, parent, newparent;
	char name[FS_NAME_MAX_BYTES + 1], newname[FS_NAME_MAX_BYTES + 1];
	mode_t mode;
	struct stat attr;                    /* setattr's */
	int to_set;
	int dir;                             /* remove: rmdir, not unlink */
};

static struct pending *pending_new(struct fs_ops *o, fuse_req_t req,
				   void (*done)(struct pending *, int, const Rpc__Response *))
{
	struct pending *p = calloc(1, sizeof *p);
	if (p) {
		p->o = o;
		p->req = req;
		p->done = done;
	}
	return p;
}

static void on_proposed(void *arg, uint64_t id, int status, const void *result, size_t len)
{
	struct pending *p = arg;
	Rpc__Response resp;
	if (fs_kv_decode_response(result, len, &resp) != 0 && status == 0)
		status = -EIO;
	/* the kernel raised the events of this change: the replayer skips it */
	if (status == 0 && resp.has_succeeded && resp.succeeded && p->o->replayer.local)
		p->o->replayer.local(p->o->replayer.arg, resp.revision);
	p->done(p, status, &resp);
}

/* Proposes the transaction; p->done runs with the outcome. Returns 0 or a negative errno. */
static int propose_txn(struct pending *p, struct fs_txn *tb)
{
	return fs__txn_propose(tb, p->o->member, fs_clock_wall_ns(), on_proposed, p);
}

/*
 * Builds p's transaction with build (over the store as it is now) and proposes it: the shared
 * part of every operation that is retried (commit, remove, rename, setattr). Returns 0 (p->done
 * runs) or build's or the proposal's negative errno (p is the caller's to answer and free).
 */
static int build_and_propose(struct pending *p,
			     int (*build)(struct pending *p, struct fs_txn *tb,
					  const struct fs_txn_view *v))
{
	struct fs_txn *tb = fs__txn_new();
	if (!tb)
		return -ENOMEM;
	struct fs_txn_view v = view_of(p->o);
	int rc = build(p, tb, &v);
	if (!rc)
		rc = propose_txn(p, tb);
	fs__txn_free(tb);
	return rc;
}

/* ---- linearizable reads ----------------------------------------------------------------------- */

/*
 * With -o linearizable a read first waits for a ReadIndex barrier: the member confirms with a
 * quorum that it has applied everything committed when the read arrived, then the handler runs
 * again with barrier_passed set (the loop is single-threaded, so a flag is enough).
 */
enum deferred_op { D_LOOKUP, D_GETATTR, D_OPEN, D_READ, D_READDIR, D_READLINK };

struct deferred {
	struct fs_ops *o;
	fuse_req_t req;
	enum deferred_op op;
	fuse_ino_t ino;
	char name[FS_NAME_MAX_BYTES + 1];
	size_t size;
	off_t off;
	struct fuse_file_info fi;
};

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi);
static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi);
static void op_readlink(fuse_req_t req, fuse_ino_t ino);

static void on_barrier(void *arg, uint64_t id, int status, const void *r, size_t len)
{
	struct deferred *d = arg;
	struct fs_ops *o = d->o;
	if (status) {
		fuse_reply_err(d->req, fs_errno(status));
		free(d);
		return;
	}
	o->barrier_passed = 1;
	switch (d->op) {
	case D_LOOKUP:
		op_lookup(d->req, d->ino, d->name);
		break;
	case D_GETATTR:
		op_getattr(d->req, d->ino, NULL);
		break;
	case D_OPEN:
		op_open(d->req, d->ino, &d->fi);
		break;
	case D_READ:
		op_read(d->req, d->ino, d->size, d->off, &d->fi);
		break;
	case D_READDIR:
		op_readdir(d->req, d->ino, d->size, d->off, &d->fi);
		break;
	case D_READLINK:
		op_readlink(d->req, d->ino);
		break;
	}
	o->barrier_passed = 0;
	free(d);
}

/* In linearizable mode, defers the read behind a barrier and returns 1; else returns 0. */
static int deferred_read(struct fs_ops *o, fuse_req_t req, enum deferred_op op, fuse_ino_t ino,
			 const char *name, size_t size, off_t off, const struct fuse_file_info *fi)
{
	if (!o->opt.linearizable || o->barrier_passed)
		return 0;
	struct deferred *d = calloc(1, sizeof *d);
	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return 1;
	}
	*d = (struct deferred){.o = o, .req = req, .op = op, .ino = ino, .size = size, .off = off};
	if (name)
		snprintf(d->name, sizeof d->name, "%s", name);
	if (fi)
		d->fi = *fi;
	int rc = fs_member_read_barrier(o->member, on_barrier, d);
	if (rc) {
		free(d);
		fuse_reply_err(req, fs_errno(rc));
	}
	return 1;
}

/* ---- lookup, attributes, directories --------------------------------------------------------- */

/*
 * Whether directory inode parent stands for an object another member's exchange has since
 * replaced at its name, an exchange the replay has not performed yet (fs_itable_mark_replaced).
 * What is looked up under it belongs to the object now there, and the kernel will move it along
 * with the inode to the other name when the exchange is replayed: it caches none of it, so it
 * asks again afterwards.
 */
static int parent_awaits_replay(struct fs_ops *o, fuse_ino_t parent)
{
	return parent != FS_ROOT_INO && fs_itable_replaced(&o->itable, parent);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_ops *o = fuse_req_userdata(req);
	char path[FS_PATH_MAX_BYTES + 1];
	if (fs__at_lookup(req, o, parent, name))
		return;
	if (o->ns.lookup && (fs_ops_ns_ino(parent) ||
			     (parent == FS_ROOT_INO && !strcmp(name, FS_OPS_NS_NAME)))) {
		o->ns.lookup(o->ns.arg, req, parent, name);
		return;
	}
	if (strlen(name) <= FS_NAME_MAX_BYTES &&
	    deferred_read(o, req, D_LOOKUP, parent, name, 0, 0, NULL))
		return;
	int rc = child_path(o, parent, name, path);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	reply_entry_for(req, o, path, parent_awaits_replay(o, parent));
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs_ops *o = fuse_req_userdata(req);
	fs_itable_forget(&o->itable, ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs_ops *o = fuse_req_userdata(req);
	for (size_t i = 0; i < count; i++)
		fs_itable_forget(&o->itable, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static int fh_written_size(struct fs_ops *o, struct fuse_file_info *fi, fuse_ino_t ino,
			   off_t *size);

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_ops *o = fuse_req_userdata(req);
	char path[FS_PATH_MAX_BYTES + 1];
	struct stat st;
	if (fs__at_getattr(req, o, ino))
		return;
	if (CONTROL(o, ino)) {
		o->ns.getattr(o->ns.arg, req, ino);
		return;
	}
	if ((!fi && moved_by_exchange(o, req, ino)) ||
	    deferred_read(o, req, D_GETATTR, ino, NULL, 0, 0, NULL))
		return;
	int64_t rev = 0; /* a deleted or replaced file still open: as it was */
	int rc = fs_itable_path_at(&o->itable, ino, path, sizeof path, &rev);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (is_root(path)) {
		fill_attr(o, ino, path, NULL, &st);
		fuse_reply_attr(req, &st, ATTR_TIMEOUT);
		return;
	}
	struct store_kv kv;
	if (get_kv_at(o, path, rev, &kv) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_attr(o, ino, path, &kv, &st);
	if (rev)
		st.st_nlink = 0;
	/*
	 * A file written to through a descriptor of this mount: the size written so far, as a local
	 * file system shows it to fstat and stat (the kernel sends no handle with either).
	 */
	if (!rev && fh_written_size(o, fi && !fs__at_fh(fi) ? fi : NULL, ino, &st.st_size)) {
		st.st_blocks = (st.st_size + 511) / 512;
		fuse_reply_attr(req, &st, 0);
		return;
	}
	fuse_reply_attr(req, &st, attr_timeout(o, ino, &kv));
}

/* Calls fn for each direct child of dir (name, kv); stops when fn returns non-zero. */
static int for_each_child(struct store *s, const char *dir,
			  int (*fn)(void *arg, const char *name, size_t len, const struct store_kv *kv),
			  void *arg)
{
	char prefix[FS_PATH_MAX_BYTES + 2];
	size_t pl = strlen(dir);
	memcpy(prefix, dir, pl + 1);
	if (!is_root(dir))
		prefix[pl++] = '/', prefix[pl] = '\0';
	unsigned char end[FS_PATH_MAX_BYTES + 2];
	size_t el = store_prefix_end(prefix, pl, end);
	struct store_range_req rq = {.key = prefix, .key_len = pl, .end = end, .end_len = el};
	struct store_range_result res;
	int rc = store_range(s, &rq, &res);
	if (rc)
		return -EIO;
	for (size_t i = 0; i < res.n && rc == 0; i++) {
		const char *k = (const char *)res.kvs[i].key + pl;
		size_t kl = res.kvs[i].key_len - pl;
		if (kl == 0 || memchr(k, '/', kl))
			continue; /* deeper down */
		rc = fn(arg, k, kl, &res.kvs[i]);
	}
	store_range_result_free(&res);
	return rc;
}

struct dir_fill {
	fuse_req_t req;
	struct fs_ops *o;
	char *buf;
	size_t size, used;
	off_t index, skip; /* entries seen, entries the kernel already has */
	const char *dir;
};

static int fill_one(struct dir_fill *d, const char *name, size_t len, mode_t mode)
{
	if (d->index++ < d->skip)
		return 0;
	char nm[FS_NAME_MAX_BYTES + 1];
	snprintf(nm, sizeof nm, "%.*s", (int)len, name);
	/* a zero inode number would hide the entry from readdir(3); this one is only a hint */
	struct stat st = {.st_mode = mode, .st_ino = (ino_t)d->index + 1};
	size_t n = fuse_add_direntry(d->req, d->buf + d->used, d->size - d->used, nm, &st, d->index);
	if (n > d->size - d->used)
		return 1; /* full: the kernel asks again from this offset */
	d->used += n;
	return 0;
}

static int fill_child(void *arg, const char *name, size_t len, const struct store_kv *kv)
{
	uint32_t type = kv->meta.type & S_IFMT;
	return fill_one(arg, name, len, type ? type : S_IFREG);
}

static void fill_pending_children(struct dir_fill *d, const char *dir);

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct fs_ops *o = fuse_req_userdata(req);
	char path[FS_PATH_MAX_BYTES + 1];
	if (CONTROL(o, ino)) {
		o->ns.readdir(o->ns.arg, req, ino, size, off);
		return;
	}
	if (deferred_read(o, req, D_READDIR, ino, NULL, size, off, fi))
		return;
	int rc = ino_path(o, ino, path);
	struct store_kv kv;
	if (!rc && !is_root(path))
		rc = get_kv(o, path, &kv) ? -ENOENT
					  : (kv.meta.type & S_IFMT) == S_IFDIR ? 0 : -ENOTDIR;
	char *buf = rc ? NULL : malloc(size);
	if (rc || !buf) {
		fuse_reply_err(req, rc ? -rc : ENOMEM);
		return;
	}
	struct dir_fill d = {req, o, buf, size, 0, 0, off, path};
	if (!fill_one(&d, ".", 1, S_IFDIR) && !fill_one(&d, "..", 2, S_IFDIR) &&
	    for_each_child(o->store, path, fill_child, &d) == 0)
		fill_pending_children(&d, path);
	fuse_reply_buf(req, buf, d.used);
	free(buf);
}

/* ---- files ----------------------------------------------------------------------------------- */

/*
 * An open file. The content of a writable handle is buffered here until it is committed. A handle
 * names its file by inode, so a rename moves it along and a delete detaches it (its content is
 * then dropped at close, as an unlinked file's is).
 *
 * A read-only handle reads one revision of its file, the one it is pinned at (path, store
 * revision pin, the kv's mod revision pin_mod), so a reader never pairs bytes of two revisions
 * (ARCHITECTURE.md, "The read path"): the open pins the file as this member has it, a read from
 * offset 0 after earlier reads pins it again (a new read of the whole file), and a read at or past
 * the pinned end goes on into a newer revision only when that one extends the pinned content (an
 * append, as `tail -f` follows). Every handle is served with direct I/O, so the kernel never
 * pairs the bytes served here with a file size it cached from another revision.
 */
struct fh {
	uint32_t magic;   /* FH_LIVE from its making (fh_new) to its release (fh_free), then FH_FREED */
	fuse_ino_t ino;
	struct fh *prev, *next; /* writable handles of the mount (fs_ops.open_files) */
	char path[FS_PATH_MAX_BYTES + 1]; /* the inode's path when last resolved (pinned: at pin) */
	int64_t pin;      /* read-only: the store revision read; 0: a file created here and not
			   * committed yet, read as it is */
	int64_t pin_mod;  /* read-only: the pinned kv's mod revision (0 with pin 0) */
	int served;       /* read-only: a read was served since the pin */
	uint8_t *buf;
	size_t len, cap;
	int writable;
	int dirty;
	/*
	 * Counts the changes of buf (writes, truncates): a commit takes the content as it is when
	 * proposed, and leaves the handle clean at its end only if nothing changed meanwhile (a write
	 * of another thread of the caller, while a flush, fsync or another's chmod was in flight).
	 */
	uint64_t gen;
	int failed;  /* a write (EFBIG) or a commit failed: nothing of this handle is committed
		      * from then on */
	/*
	 * Made by a create without O_EXCL and not committed yet: the file exists for this member
	 * only (pending_kv), with cmeta, until its first commit puts it and its content in one
	 * proposal; a failed commit sets failed, and the file is gone again.
	 */
	int created;
	struct store_meta cmeta;
	fuse_ino_t parent; /* created: the directory it was created in */
	int written;       /* a write came through it since it was opened (created: the kernel
			    * dropped its times and size) */
	int64_t open_rev;  /* writable: the store's revision when it was opened (commit) */
	/*
	 * Writable, opened on an inode marked replaced (another member's exchange applied here, its
	 * replay not yet performed), or opened after an exchange applied on an inode its lagging
	 * replay then moved (fs__ops_exchanged): it holds what its name held at the open, and its
	 * commits go to that name (path), wherever the replay moves the inode.
	 */
	int by_name;
	/*
	 * A commit of it (flush, fsync, release) is in flight; the next ones wait in waiters, in
	 * order, and go after it with what was written meanwhile: a forked child's close and the
	 * writer's own, concurrent, each proposed the same content, which applied twice around
	 * another member's write.
	 */
	int committing;
	struct fh_waiter *waiters;
	int kill_priv;     /* written by a process other than root (no CAP_FSETID): the commit
			    * clears set-user-ID and set-group-ID bits, as the kernel does locally */
};

/* A flush, fsync or release waiting for the commit of its handle in flight (fh.committing). */
struct fh_waiter {
	struct fh_waiter *next;
	fuse_req_t req;
	int release;
};

#define FH_LIVE 0x6668a11eu  /* struct fh.magic of a handle in use */
#define FH_FREED 0x6668deadu /* ... of one released: only a bug of this file reaches it again */

/* A new handle (zeroed, live); NULL when out of memory. */
static struct fh *fh_new(void)
{
	struct fh *h = calloc(1, sizeof *h);
	if (h)
		h->magic = FH_LIVE;
	return h;
}

/* Stops the daemon when h is not a live handle: one used after its release, or no handle. */
static void fh_check(const struct fh *h, fuse_ino_t ino, const char *what)
{
	if (h && h->magic == FH_LIVE)
		return;
	FS_FATAL("%s of inode %" PRIu64 ": handle %p %s", what, (uint64_t)ino, (const void *)h,
		 h && h->magic == FH_FREED ? "used after its release" : "is not a handle");
	abort();
}

/* The handle of an open file of ino (the kernel's fi->fh, from op_open or a create). */
static struct fh *fh_of(struct fuse_file_info *fi, fuse_ino_t ino)
{
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	fh_check(h, ino, "a request");
	return h;
}

static int fh_reserve(struct fh *h, size_t n)
{
	if (n <= h->cap)
		return 0;
	size_t cap = h->cap ? h->cap : 4096;
	while (cap < n)
		cap *= 2;
	uint8_t *nb = realloc(h->buf, cap);
	if (!nb)
		return -ENOMEM;
	h->buf = nb;
	h->cap = cap;
	return 0;
}

static void fh_free(struct fs_ops *o, struct fh *h)
{
	if (!h)
		return;
	fh_check(h, h->ino, "the release");
	h->magic = FH_FREED;
	if (h->writable) {
		if (h->prev)
			h->prev->next = h->next;
		else
			o->open_files = h->next;
		if (h->next)
			h->next->prev = h->prev;
	}
	free(h->buf);
	free(h);
}

/* Refreshes h->path from its inode; -ENOENT once the file was deleted or replaced. */
static int fh_path(struct fs_ops *o, struct fh *h)
{
	return ino_path(o, h->ino, h->path);
}

/*
 * Pins read-only handle h at path's current kv (kv): at the store's revision, or unpinned (0) for
 * a file created here and not committed yet.
 */
static void fh_pin(struct fs_ops *o, struct fh *h, const char *path, const struct store_kv *kv)
{
	if (h->path != path)
		strcpy(h->path, path);
	h->pin_mod = kv->mod_revision;
	h->pin = kv->mod_revision ? store_rev(o->store) : 0;
	h->served = 0;
}

/*
 * The kv read-only handle h is pinned at (pointing into the store until its next change). 0, or
 * -EIO when that revision was compacted away while the file was open and changed since (said in
 * the log): a read from offset 0 pins the file again.
 */
static int fh_pinned_kv(struct fs_ops *o, struct fh *h, struct store_kv *kv)
{
	if (!h->pin_mod)
		return get_kv(o, h->path, kv);
	size_t len = strlen(h->path);
	if (store_get(o->store, h->path, len, 0, kv) == 0 && kv->mod_revision == h->pin_mod)
		return 0; /* unchanged since: the current kv */
	int64_t at = store_compact_rev(o->store);
	if (at < h->pin)
		at = h->pin;
	if (store_get(o->store, h->path, len, at, kv) == 0 && kv->mod_revision == h->pin_mod)
		return 0;
	FS_WARN("read of %s at revision %" PRId64 ": compacted while the file was open; reopen "
		"it or read it from offset 0", h->path, h->pin);
	return -EIO;
}

/*
 * A new read of the whole file (from offset 0 after earlier reads): h pins what its inode is now.
 * An inode whose name was deleted or replaced since reads the last revision it had, unless h is
 * pinned at a newer one already (an open of such an inode pins what its name held then, op_open):
 * a handle never goes back.
 */
static void fh_repin(struct fs_ops *o, struct fh *h)
{
	char path[FS_PATH_MAX_BYTES + 1];
	int64_t gone = 0;
	struct store_kv kv;
	if (fs_itable_path_at(&o->itable, h->ino, path, sizeof path, &gone) < 0)
		return;
	if (gone ? gone > h->pin && get_kv_at(o, path, gone, &kv) == 0
		 : get_kv(o, path, &kv) == 0) {
		fh_pin(o, h, path, &kv);
		if (gone)
			h->pin = gone;
	}
}

/*
 * A read at or past the end of pinned kv: when the file's name now holds a newer revision that
 * begins with the pinned content (an append), h moves on to it and *kv is that revision.
 */
static void fh_extend(struct fs_ops *o, struct fh *h, struct store_kv *kv)
{
	char path[FS_PATH_MAX_BYTES + 1];
	struct store_kv now;
	if (!h->pin_mod || fs_itable_path(&o->itable, h->ino, path, sizeof path) < 0 ||
	    get_kv(o, path, &now) != 0 || now.mod_revision == h->pin_mod ||
	    now.value_len <= kv->value_len || memcmp(now.value, kv->value, kv->value_len) != 0)
		return;
	fh_pin(o, h, path, &now);
	*kv = now;
}

/* The writable handle open on ino, if any (setattr commits its buffered content along). */
static struct fh *fh_writable_of(struct fs_ops *o, fuse_ino_t ino)
{
	for (struct fh *h = o->open_files; h; h = h->next)
		if (h->ino == ino)
			return h;
	return NULL;
}

/*
 * Whether ino has content written through a handle of this mount and not committed yet: fi's
 * handle, or without fi a writable one of ino; *size gets its length.
 */
static int fh_written_size(struct fs_ops *o, struct fuse_file_info *fi, fuse_ino_t ino,
			   off_t *size)
{
	const struct fh *h = fi ? fh_of(fi, ino) : fh_writable_of(o, ino);
	if (!h || !h->writable || !h->dirty)
		return 0;
	*size = (off_t)h->len;
	return 1;
}

/* The handle of a create on ino not committed yet (fh.created), if any. */
static struct fh *fh_created_of(struct fs_ops *o, fuse_ino_t ino)
{
	for (struct fh *h = o->open_files; h; h = h->next)
		if (h->created && !h->failed && h->ino == ino)
			return h;
	return NULL;
}

/*
 * A file created here and not committed yet, as this member shows it until its commit: 0 and *kv
 * (revisions 0, the value pointing into the handle until it changes), or -ENOENT.
 */
static int pending_kv(struct fs_ops *o, const char *path, struct store_kv *kv)
{
	if (!o->open_files)
		return -ENOENT;
	uint64_t ino = fs_itable_find(&o->itable, path);
	struct fh *h = ino ? fh_created_of(o, ino) : NULL;
	if (!h)
		return -ENOENT;
	*kv = (struct store_kv){.key = (const unsigned char *)path, .key_len = strlen(path),
				.value = h->buf, .value_len = h->len, .meta = h->cmeta};
	return 0;
}

/* Whether a file created in directory ino here is not committed yet (fh.created). */
static int dir_has_pending_create(struct fs_ops *o, uint64_t ino)
{
	for (struct fh *h = o->open_files; h; h = h->next)
		if (h->created && !h->failed && h->parent == ino)
			return 1;
	return 0;
}

/* Files created in dir here and not committed yet (fh.created) come after the stored ones. */
static void fill_pending_children(struct dir_fill *d, const char *dir)
{
	char path[FS_PATH_MAX_BYTES + 1], parent[FS_PATH_MAX_BYTES + 1];
	struct store_kv kv;
	for (struct fh *h = d->o->open_files; h; h = h->next) {
		if (!h->created || h->failed || ino_path(d->o, h->ino, path) != 0 ||
		    fh_created_of(d->o, h->ino) != h || get_kv_stored(d->o, path, &kv) == 0)
			continue; /* not pending, or listed already */
		parent_of(path, parent);
		const char *name = strrchr(path, '/') + 1;
		if (strcmp(parent, dir) == 0 && fill_one(d, name, strlen(name), S_IFREG))
			return;
	}
}

/* A handle on path; writable ones start with the current content unless truncating. */
static int fh_open(struct fs_ops *o, fuse_ino_t ino, const char *path, int flags, struct fh **out)
{
	struct store_kv kv;
	if (get_kv(o, path, &kv) != 0)
		return -ENOENT;
	uint32_t type = kv.meta.type & S_IFMT;
	if (type == S_IFDIR)
		return -EISDIR;
	struct fh *h = fh_new();
	if (!h)
		return -ENOMEM;
	strcpy(h->path, path);
	h->ino = ino;
	h->writable = (flags & O_ACCMODE) != O_RDONLY;
	h->open_rev = store_rev(o->store);
	h->by_name = h->writable && fs_itable_replaced(&o->itable, ino);
	if (!h->writable)
		fh_pin(o, h, path, &kv);
	if (h->writable) {
		if (flags & O_TRUNC) {
			h->dirty = kv.value_len != 0;
		} else if (fh_reserve(h, kv.value_len) != 0) {
			free(h);
			return -ENOMEM;
		} else {
			if (kv.value_len)
				memcpy(h->buf, kv.value, kv.value_len);
			h->len = kv.value_len;
		}
		h->next = o->open_files;
		if (h->next)
			h->next->prev = h;
		o->open_files = h;
	}
	*out = h;
	return 0;
}

void fs__ops_exchanged(struct fs_ops *o, const char *path, const char *path2, int64_t rev)
{
	const char *paths[2] = {path, path2};
	for (int k = 0; k < 2; k++) {
		uint64_t ino = fs_itable_find(&o->itable, paths[k]);
		if (!ino)
			continue; /* the kernel holds nothing of the name */
		fs_itable_mark_moved(&o->itable, ino);
		/*
		 * A descriptor opened for writing on it once the exchange had applied here (a replay
		 * lags) holds what its name held then, not the object the exchange moved away: it
		 * commits to that name (h->path, as opened) wherever the inode goes now.
		 */
		for (struct fh *h = o->open_files; h; h = h->next)
			if (h->ino == ino && h->open_rev >= rev)
				h->by_name = 1;
	}
}

/*
 * Every handle is served with direct I/O: reads return exactly the bytes served here, of one
 * revision (struct fh), where through the page cache the kernel cuts or pads them to a file size
 * it cached from another revision, and may pair pages it cached with a size it learned later:
 * no order of replies and invalidations prevents that while another member changes the file
 * (ARCHITECTURE.md, "The read path"). Writes go to the handle's buffer as WRITE requests either
 * way (nothing is committed before close), and without the page cache the kernel does not first
 * ask for security.capability (GETXATTR, to drop privileges at the first write of each inode).
 * The cost: no read is served from the kernel's cache, and a shared mapping (mmap MAP_SHARED) is
 * refused with ENODEV (libfuse 3.14 cannot ask for FUSE_DIRECT_IO_ALLOW_MMAP); private mappings
 * work.
 */
static void open_flags(struct fuse_file_info *fi, const struct fh *h)
{
	fi->keep_cache = 0;
	fi->direct_io = 1;
	fi->noflush = !h->writable; /* nothing to commit at close: spare the round trip */
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_ops *o = fuse_req_userdata(req);
	char path[FS_PATH_MAX_BYTES + 1];
	struct fh *h = NULL;
	if (fs__at_open(req, o, fi))
		return;
	if (CONTROL(o, ino)) {
		o->ns.open(o->ns.arg, req, ino, fi);
		return;
	}
	if (moved_by_exchange(o, req, ino) || deferred_read(o, req, D_OPEN, ino, NULL, 0, 0, fi))
		return;
	/*
	 * An inode whose name was deleted or replaced since the kernel looked it up (its entry is
	 * still to be invalidated, or the inotify replay still to move it) is opened for reading as
	 * what the name holds now, or ENOENT: opening it as it was would serve an older revision
	 * than this member applied. A writable open gets ESTALE instead, so that the kernel looks
	 * the name up again (LOOKUP_REVAL) and the writes go to the file the name holds.
	 */
	int64_t gone = 0;
	int rc = fs_itable_path_at(&o->itable, ino, path, sizeof path, &gone);
	if (rc >= 0 && gone && (fi->flags & O_ACCMODE) != O_RDONLY)
		rc = -ESTALE;
	if (rc >= 0)
		rc = fh_open(o, ino, path, fi->flags, &h);
	/*
	 * Nothing at the inode's path: the replay moved it there, or deletes it, while the kernel
	 * still gives it for the name looked up (an exchange's replay swaps the table when it is
	 * answered, the kernel its names a moment later). ESTALE has the kernel look the name up
	 * again, which answers what the name holds, or ENOENT.
	 */
	if (rc == -ENOENT)
		rc = -ESTALE;
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	open_flags(fi, h);
	if (fuse_reply_open(req, fi) != 0)
		fh_free(o, h); /* interrupted: no release will come */
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs_ops *o = fuse_req_userdata(req);
	if (CONTROL(o, ino)) {
		o->ns.read(o->ns.arg, req, size, off, fi);
		return;
	}
	struct fh *h = fh_of(fi, ino);
	const uint8_t *data;
	size_t len;
	struct store_kv kv;
	if (h->writable) {
		data = h->buf;
		len = h->len;
	} else {
		int again = off == 0 && h->served; /* a new read of the whole file */
		int rc = again ? 0 : fh_pinned_kv(o, h, &kv);
		int past_end = !again && !rc && (size_t)off >= kv.value_len;
		/* both read the file as it is now: after a barrier when linearizable */
		if ((again || past_end) && deferred_read(o, req, D_READ, ino, NULL, size, off, fi))
			return;
		if (again) {
			fh_repin(o, h);
			rc = fh_pinned_kv(o, h, &kv);
		}
		if (rc) {
			fuse_reply_err(req, -rc);
			return;
		}
		if ((size_t)off >= kv.value_len)
			fh_extend(o, h, &kv);
		h->served = 1;
		data = kv.value;
		len = kv.value_len;
	}
	if ((size_t)off >= len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, (const char *)data + off,
			       len - (size_t)off < size ? len - (size_t)off : size);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct fs_ops *o = fuse_req_userdata(req);
	if (fs__at_fh(fi)) {
		fuse_reply_write(req, size); /* the replayer's: dropped */
		return;
	}
	if (CONTROL(o, ino)) {
		o->ns.write(o->ns.arg, req, buf, size, off, fi);
		return;
	}
	struct fh *h = fh_of(fi, ino);
	if (!h->writable) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (fi->flags & O_APPEND)
		off = (off_t)h->len;
	size_t end = (size_t)off + size;
	if (end > o->opt.max_value_bytes) {
		h->failed = EFBIG; /* the old value stays, on every member */
		fuse_reply_err(req, EFBIG);
		return;
	}
	if (fh_reserve(h, end) != 0) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if ((size_t)off > h->len)
		memset(h->buf + h->len, 0, (size_t)off - h->len);
	memcpy(h->buf + off, buf, size);
	if (end > h->len)
		h->len = end;
	h->dirty = 1;
	h->gen++;
	h->written = 1;
	if (fuse_req_ctx(req)->uid != 0)
		h->kill_priv = 1;
	fuse_reply_write(req, size);
}

static int commit_propose(struct pending *p);

/*
 * Whether the first commit of created file h changes nothing the kernel holds of it or of its
 * directory, so applying it need not invalidate them: the kernel got the file's attributes with
 * its create and dropped its times and size at its writes, answers while it was pending were not
 * cached (timeout 0), and it caches no pages (direct I/O). The directory's attributes the kernel
 * dropped at the create, and none were cached while the file was pending (attr_timeout); if the
 * file moved to another directory, that one's are invalidated as usual.
 */
static int created_attrs_current(struct fs_ops *o, struct fh *h)
{
	char parent[FS_PATH_MAX_BYTES + 1];
	if (!h->written)
		return 0;
	parent_of(h->path, parent);
	return (is_root(parent) ? FS_ROOT_INO : fs_itable_find(&o->itable, parent)) == h->parent;
}

static void commit(fuse_req_t req, struct fs_ops *o, struct fh *h, int release);

static void commit_done(struct pending *p, int status, const Rpc__Response *resp)
{
	struct fh *h = p->fh;
	int err = fs_errno(status);
	if (!err && !resp->succeeded) {
		/* a create replaces what another member put there meanwhile, as seen: look again */
		int rc = h->created && ++p->attempt < RETRIES ? commit_propose(p) : -ENOENT;
		if (rc == 0)
			return;
		err = -rc; /* ENOENT: the file's directory went away meanwhile */
	}
	if (err) {
		FS_WARN("commit of %s failed: %s", h->path, strerror(err));
		/*
		 * A proposal that timed out may still commit. Proposed again (by the release after a
		 * failed flush), it could commit twice, the second time after the writer's next
		 * write: nothing of this handle is proposed again, and its later commits say the
		 * error. A file created here is gone here too.
		 */
		h->failed = err;
	} else {
		if (h->created)
			own_create(p->o, resp->revision, created_attrs_current(p->o, h));
		if (h->gen == p->fh_gen)
			h->dirty = 0; /* else written meanwhile: that goes with the next commit */
		h->created = 0;
	}
	struct fh_waiter *w = h->waiters;
	h->waiters = NULL;
	h->committing = 0;
	if (p->release) { /* the last request of a handle: none should wait behind it */
		for (struct fh_waiter *next; w; w = next) {
			next = w->next;
			fuse_reply_err(w->req, err);
			free(w);
		}
		fh_free(p->o, h);
	}
	fuse_reply_err(p->req, err);
	struct fs_ops *o = p->o;
	free(p);
	/* in order, a release last (it frees h); one that proposes again has the rest wait */
	struct fh_waiter *last = NULL;
	for (struct fh_waiter *next; w; w = next) {
		next = w->next;
		if (w->release && next) {
			last = w;
			continue;
		}
		commit(w->req, o, h, w->release);
		free(w);
	}
	if (last) {
		commit(last->req, o, h, 1);
		free(last);
	}
}

/*
 * Proposes the content of p->fh. A file created here without O_EXCL (fh.created) is created with
 * it in the same transaction, replacing whatever file another member put there meanwhile (as
 * O_CREAT without O_EXCL does), never a directory, and touching its directory as every create
 * does. Returns 0 (commit_done runs) or a negative errno.
 */
static int commit_build(struct pending *p, struct fs_txn *tb, const struct fs_txn_view *v)
{
	struct fh *h = p->fh;
	p->fh_gen = h->gen;
	return fs__txn_commit(tb, v, h->path, h->buf, h->len, h->created ? &h->cmeta : NULL,
			      h->kill_priv, fs_clock_wall_ns());
}

static int commit_propose(struct pending *p)
{
	return build_and_propose(p, commit_build);
}

/* Commits a dirty handle's content as one proposal, then replies (flush, fsync, release). */
/*
 * Whether h's inode was detached for a change its open came after: the table moves and detaches
 * inodes for other members' changes only when the replay performs them, so an open can meet the
 * old inode of a name already deleted or replaced in the store, and get the name's current
 * content (fh_open reads the store). Such a handle holds that name's file, and its commit goes
 * to the name (h->path, as opened). Detached for a change after its open, it holds an unlinked
 * file, whose writes go nowhere, as on a local file system.
 */
static int fh_stale_at_open(struct fs_ops *o, const struct fh *h)
{
	char path[FS_PATH_MAX_BYTES + 1];
	int64_t gone = 0; /* the last revision the inode's file existed at */
	return fs_itable_path_at(&o->itable, h->ino, path, sizeof path, &gone) >= 0 && gone &&
	       gone < h->open_rev;
}

static void commit(fuse_req_t req, struct fs_ops *o, struct fh *h, int release)
{
	if (h->committing) {
		struct fh_waiter *w = calloc(1, sizeof *w), **tail = &h->waiters;
		if (!w) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		*w = (struct fh_waiter){.req = req, .release = release};
		while (*tail)
			tail = &(*tail)->next;
		*tail = w;
		return;
	}
	if (h->dirty && !h->failed && !h->by_name && fh_path(o, h) != 0 &&
	    !fh_stale_at_open(o, h)) {
		h->dirty = 0; /* deleted or replaced after it was opened: its content goes with it */
		FS_INFO("content written to %s (%zu bytes) not committed: the file was deleted or "
			"replaced after it was opened at revision %" PRId64, h->path, h->len,
			h->open_rev);
	}
	if (h->failed || !h->dirty) {
		int err = h->failed;
		if (release)
			fh_free(o, h);
		fuse_reply_err(req, err);
		return;
	}
	struct pending *p = pending_new(o, req, commit_done);
	int rc = p ? 0 : -ENOMEM;
	if (!rc) {
		p->fh = h;
		p->release = release;
		rc = commit_propose(p);
		h->committing = rc == 0;
	}
	if (rc) {
		FS_WARN("commit of %s failed: %s", h->path, fs_strerror(rc));
		if (h->created)
			h->failed = -rc;
		free(p);
		if (release)
			fh_free(o, h);
		fuse_reply_err(req, -rc);
	}
}

/*
 * Whether the process closing a descriptor of ino (pid: the FLUSH's caller) still holds another
 * descriptor of the same file on this mount, so that this close is not its last. bash's `echo x >
 * f` opens f with O_TRUNC, dup2()s it onto fd 1 and closes the first descriptor before the echo
 * writes: that close must not commit an empty f that no one wrote. Read from /proc/PID/fdinfo
 * (the inode) and /proc/PID/fd (under this mount), never by asking the mount (a stat of the
 * file would wait for this very loop). A caller in another mount namespace is not recognised and
 * its close commits as before.
 */
static int caller_holds_another(struct fs_ops *o, pid_t pid, fuse_ino_t ino)
{
	char dir[64], p[320], link[FS_PATH_MAX_BYTES + 1], info[512];
	if (!o->mountpoint[0] || pid <= 0)
		return 0;
	snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	size_t ml = strlen(o->mountpoint);
	int found = 0;
	for (struct dirent *e; !found && (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "/proc/%d/fd/%s", (int)pid, e->d_name);
		ssize_t n = readlink(p, link, sizeof link - 1);
		if (n <= (ssize_t)ml || strncmp(link, o->mountpoint, ml) != 0 || link[ml] != '/')
			continue;
		snprintf(p, sizeof p, "/proc/%d/fdinfo/%s", (int)pid, e->d_name);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		ssize_t r = fd >= 0 ? read(fd, info, sizeof info - 1) : -1;
		if (fd >= 0)
			close(fd);
		if (r <= 0)
			continue;
		info[r] = '\0';
		const char *i = strstr(info, "\nino:");
		found = i && strtoull(i + 5, NULL, 10) == ino;
	}
	closedir(d);
	return found;
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_ops *o = fuse_req_userdata(req);
	if (CONTROL(o, ino) || fs__at_fh(fi)) {
		fuse_reply_err(req, 0); /* a command is done when its write returns */
		return;
	}
	struct fh *h = fh_of(fi, ino);
	/* nothing written through it yet, and not its last close: the content is not done */
	if (h->dirty && !h->written && caller_holds_another(o, fuse_req_ctx(req)->pid, ino)) {
		fuse_reply_err(req, 0);
		return;
	}
	commit(req, o, h, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs_ops *o = fuse_req_userdata(req);
	if (CONTROL(o, ino) || fs__at_fh(fi))
		fuse_reply_err(req, 0);
	else
		commit(req, o, fh_of(fi, ino), 0);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_ops *o = fuse_req_userdata(req);
	if (fs__at_fh(fi))
		fuse_reply_err(req, 0);
	else if (CONTROL(o, ino))
		o->ns.release(o->ns.arg, req, fi);
	else
		commit(req, o, fh_of(fi, ino), 1);
}

/* ---- creating: files, directories, symlinks --------------------------------------------------- */

static void create_done(struct pending *p, int status, const Rpc__Response *resp)
{
	struct fs_ops *o = p->o;
	int err = fs_errno(status);
	struct store_kv kv;
	if (!err && !resp->succeeded) {
		/* lost a race, or the directory went away */
		int exists = get_kv(o, p->path, &kv) == 0;
		if (!exists)
			err = ENOENT;
		else if (p->flags == 1 /* create */ && !(p->fi.flags & O_EXCL))
			err = 0; /* plain O_CREAT opens what the other member made */
		else
			err = EEXIST;
	}
	if (err) {
		fuse_reply_err(p->req, err);
		free(p);
		return;
	}
	if (resp->succeeded)
		own_create(o, resp->revision, 0);
	if (p->flags != 1) {
		reply_entry_for(p->req, o, p->path, 0);
		free(p);
		return;
	}
	struct fh *h;
	struct fuse_entry_param e = {.attr_timeout = ATTR_TIMEOUT, .entry_timeout = ENTRY_TIMEOUT};
	e.ino = fs_itable_lookup(&o->itable, p->path);
	int rc = e.ino ? fh_open(o, e.ino, p->path, p->fi.flags & ~O_TRUNC, &h) : -ENOMEM;
	if (rc) {
		if (e.ino)
			fs_itable_forget(&o->itable, e.ino, 1);
		fuse_reply_err(p->req, -rc);
		free(p);
		return;
	}
	get_kv(o, p->path, &kv);
	fill_attr(o, e.ino, p->path, &kv, &e.attr);
	p->fi.fh = (uint64_t)(uintptr_t)h;
	open_flags(&p->fi, h);
	if (fuse_reply_create(p->req, &e, &p->fi) != 0) {
		fh_free(o, h);
		fs_itable_forget(&o->itable, e.ino, 1);
	}
	free(p);
}

/*
 * Creates path as type (S_IFREG, S_IFDIR, S_IFLNK with value) if it does not exist, in one txn
 * with the parent's touch. kind: 1 create (opens), 0 otherwise.
 */
static void make_node(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      uint32_t type, const char *value, int kind, struct fuse_file_info *fi)
{
	struct fs_ops *o = fuse_req_userdata(req);
	struct pending *p = pending_new(o, req, create_done);
	struct fs_txn *tb = fs__txn_new();
	int rc = p && tb ? child_path(o, parent, name, p->path) : -ENOMEM;
	if (!rc && reserved(p->path))
		rc = -EPERM;
	if (!rc) {
		const struct fuse_ctx *ctx = fuse_req_ctx(req);
		int64_t now = fs_clock_wall_ns();
		struct store_meta m = {.type = type, .mode = (uint32_t)mode & 07777, .uid = ctx->uid,
				       .gid = ctx->gid, .atime_ns = now, .mtime_ns = now,
				       .ctime_ns = now};
		struct fs_txn_view v = view_of(o);
		rc = fs__txn_create(tb, &v, p->path, &m, value, value ? strlen(value) : 0, now);
		p->flags = kind;
		if (fi)
			p->fi = *fi;
		if (!rc)
			rc = propose_txn(p, tb);
	}
	fs__txn_free(tb);
	if (rc) {
		free(p);
		fuse_reply_err(req, -rc);
	}
}

/*
 * A create without O_EXCL proposes nothing: an existing file is opened (truncated with O_TRUNC at
 * its commit); a new one exists at once for this member only (fh.created, pending_kv) and is
 * created with its content by its first commit, at flush, fsync or close. The entry
 * of a pending file is not cached by the kernel, so a failed commit leaves nothing behind.
 */
static void create_open(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			struct fuse_file_info *fi)
{
	struct fs_ops *o = fuse_req_userdata(req);
	char path[FS_PATH_MAX_BYTES + 1], dir[FS_PATH_MAX_BYTES + 1];
	struct store_kv kv;
	struct fh *h = NULL;
	struct fuse_entry_param e = {.attr_timeout = ATTR_TIMEOUT, .entry_timeout = ENTRY_TIMEOUT};
	int rc = child_path(o, parent, name, path);
	if (!rc && reserved(path))
		rc = -EPERM;
	if (!rc && get_kv(o, path, &kv) == 0) {
		/* there already: open it */
		e.ino = fs_itable_lookup(&o->itable, path);
		rc = !e.ino ? -ENOMEM
		     : (kv.meta.type & S_IFMT) == S_IFDIR ? -EISDIR
							  : fh_open(o, e.ino, path, fi->flags, &h);
		if (!rc)
			fill_attr(o, e.ino, path, &kv, &e.attr);
		else if (e.ino)
			fs_itable_forget(&o->itable, e.ino, 1);
	} else if (!rc) {
		parent_of(path, dir);
		if (!is_root(dir))
			rc = get_kv(o, dir, &kv) != 0 ? -ENOENT
			     : (kv.meta.type & S_IFMT) != S_IFDIR ? -ENOTDIR : 0;
		h = rc ? NULL : fh_new();
		if (!rc && !h)
			rc = -ENOMEM;
		if (!rc && !(e.ino = fs_itable_lookup(&o->itable, path))) {
			free(h);
			h = NULL;
			rc = -ENOMEM;
		}
	}
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (!h->ino) {
		const struct fuse_ctx *ctx = fuse_req_ctx(req);
		int64_t now = fs_clock_wall_ns();
		strcpy(h->path, path);
		h->ino = e.ino;
		h->writable = h->dirty = h->created = 1;
		h->parent = parent;
		h->cmeta = (struct store_meta){.type = S_IFREG, .mode = (uint32_t)mode & 07777,
					       .uid = ctx->uid, .gid = ctx->gid, .atime_ns = now,
					       .mtime_ns = now, .ctime_ns = now};
		h->next = o->open_files;
		if (h->next)
			h->next->prev = h;
		o->open_files = h;
		pending_kv(o, path, &kv);
		fill_attr(o, e.ino, path, &kv, &e.attr);
		/*
		 * No entry is cached: a failed commit leaves no name behind. The attributes are (the
		 * kernel asks for expired ones at every write); applying the commit invalidates them.
		 */
		e.entry_timeout = 0;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	open_flags(fi, h);
	if (fuse_reply_create(req, &e, fi) != 0) {
		fh_free(o, h); /* interrupted: no release will come */
		fs_itable_forget(&o->itable, e.ino, 1);
	}
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	if (fs__at_make(req, fuse_req_userdata(req), "create", parent, name, fi))
		return;
	if (fi->flags & O_EXCL)
		make_node(req, parent, name, mode, S_IFREG, NULL, 1, fi); /* compare-and-create */
	else
		create_open(req, parent, name, mode, fi);
}

/*
 * Every file type POSIX makes: a regular file, and the special ones, whose type and mode
 * replicate like any other file's (a device node's value is its number, "MAJOR:MINOR"). The
 * kernel serves a fifo or a socket on each member as its own (readers and writers meet on one
 * member), and the mount is nodev: a device node is a name, never opened as a device.
 */
static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	if (fs__at_make(req, fuse_req_userdata(req), "mknod", parent, name, NULL))
		return;
	char num[32] = "";
	switch (mode & S_IFMT) {
	case S_IFCHR:
	case S_IFBLK:
		snprintf(num, sizeof num, "%u:%u", major(rdev), minor(rdev));
		/* fall through */
	case S_IFREG:
	case S_IFIFO:
	case S_IFSOCK:
		make_node(req, parent, name, mode, mode & S_IFMT, num[0] ? num : NULL, 0, NULL);
		return;
	default:
		fuse_reply_err(req, EINVAL);
	}
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	if (fs__at_make(req, fuse_req_userdata(req), "mkdir", parent, name, NULL))
		return;
	make_node(req, parent, name, mode, S_IFDIR, NULL, 0, NULL);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	if (fs__at_make(req, fuse_req_userdata(req), "symlink", parent, name, NULL))
		return;
	if (strlen(link) > FS_PATH_MAX_BYTES) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	make_node(req, parent, name, 0777, S_IFLNK, link, 0, NULL);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	fuse_reply_err(req, EPERM); /* hard links have no place in a key space */
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_ops *o = fuse_req_userdata(req);
	if (deferred_read(o, req, D_READLINK, ino, NULL, 0, 0, NULL))
		return;
	char path[FS_PATH_MAX_BYTES + 1], target[FS_PATH_MAX_BYTES + 1];
	struct store_kv kv;
	int rc = ino_path(o, ino, path);
	if (!rc)
		rc = get_kv(o, path, &kv);
	if (!rc && (kv.meta.type & S_IFMT) != S_IFLNK)
		rc = -EINVAL;
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	snprintf(target, sizeof target, "%.*s", (int)kv.value_len, kv.value);
	fuse_reply_readlink(req, target);
}

/* ---- removing -------------------------------------------------------------------------------- */

static int remove_start(struct pending *p);

static void remove_done(struct pending *p, int status, const Rpc__Response *resp)
{
	int err = fs_errno(status);
	if (!err && !resp->succeeded) {
		/* changed since seen (a file replaced, a child made in a directory): look again */
		int rc = ++p->attempt < RETRIES ? remove_start(p) : -EBUSY;
		if (rc == 0)
			return;
		err = -rc;
	}
	if (!err)
		fs_itable_detach(&p->o->itable, p->path, resp->revision - 1);
	fuse_reply_err(p->req, err);
	free(p);
}

/*
 * Proposes the removal of p->path as it is now. A directory must be unchanged since seen (its mod
 * revision), which also means still empty; a file only the same one (its create revision), as
 * unlink removes a name whatever was written to the file meanwhile. Returns 0 (remove_done runs)
 * or a negative errno (ENOENT, ENOTDIR, EISDIR, ENOTEMPTY).
 */
static int remove_build(struct pending *p, struct fs_txn *tb, const struct fs_txn_view *v)
{
	return fs__txn_remove(tb, v, p->path, p->dir, fs_clock_wall_ns());
}

static int remove_start(struct pending *p)
{
	return build_and_propose(p, remove_build);
}

static void remove_node(fuse_req_t req, fuse_ino_t parent, const char *name, int dir)
{
	struct fs_ops *o = fuse_req_userdata(req);
	struct pending *p = pending_new(o, req, remove_done);
	int rc = p ? child_path(o, parent, name, p->path) : -ENOMEM;
	if (!rc && reserved(p->path))
		rc = -EPERM;
	if (!rc) {
		p->dir = dir;
		rc = remove_start(p);
	}
	if (rc) {
		free(p);
		fuse_reply_err(req, -rc);
	}
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (!fs__at_remove(req, fuse_req_userdata(req), parent, name, 0))
		remove_node(req, parent, name, 0);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (!fs__at_remove(req, fuse_req_userdata(req), parent, name, 1))
		remove_node(req, parent, name, 1);
}

/* ---- rename ---------------------------------------------------------------------------------- */

static void rename_start(struct pending *p);

static void rename_done(struct pending *p, int status, const Rpc__Response *resp)
{
	int err = fs_errno(status);
	if (!err && !resp->succeeded) {
		if (++p->attempt < RETRIES) {
			rename_start(p); /* something changed meanwhile: look again */
			return;
		}
		err = EBUSY;
	}
	/* the kernel moves its names as the reply says (both ways for an exchange): the table
	   follows before the next request */
	if (!err && (p->flags & RENAME_EXCHANGE))
		fs_itable_exchange(&p->o->itable, p->path, p->path2, resp->revision - 1);
	else if (!err)
		fs_itable_rename(&p->o->itable, p->path, p->path2, resp->revision - 1);
	fuse_reply_err(p->req, err);
	free(p);
}

static int rename_build(struct pending *p, struct fs_txn *tb, const struct fs_txn_view *v)
{
	return fs__txn_rename(tb, v, p->path, p->path2, (unsigned)p->flags, fs_clock_wall_ns());
}

static void rename_start(struct pending *p)
{
	int rc = build_and_propose(p, rename_build);
	if (rc) {
		fuse_reply_err(p->req, rc == -E2BIG ? EXDEV : -rc);
		free(p);
	}
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct fs_ops *o = fuse_req_userdata(req);
	if (fs__at_rename(req, o, parent, name, newparent, newname, flags))
		return;
	struct pending *p = pending_new(o, req, rename_done);
	int rc = p ? child_path(o, parent, name, p->path) : -ENOMEM;
	if (!rc)
		rc = child_path(o, newparent, newname, p->path2);
	if (!rc && (reserved(p->path) || reserved(p->path2)))
		rc = -EPERM;
	if (rc) {
		free(p);
		fuse_reply_err(req, -rc);
		return;
	}
	p->flags = (int)flags;
	if (!strcmp(p->path, p->path2)) {
		free(p);
		fuse_reply_err(req, 0);
		return;
	}
	rename_start(p);
}

/* ---- setattr --------------------------------------------------------------------------------- */

static void setattr_start(struct pending *p);

static void setattr_done(struct pending *p, int status, const Rpc__Response *resp)
{
	int err = fs_errno(status);
	if (!err && !resp->succeeded) {
		if (++p->attempt < RETRIES) {
			setattr_start(p);
			return;
		}
		err = EBUSY;
	}
	struct store_kv kv;
	if (!err && get_kv(p->o, p->path, &kv) != 0)
		err = ENOENT;
	if (!err && p->fh) {
		struct fh *h = p->fh;
		if (h->gen == p->fh_gen)
			h->dirty = 0; /* its content went with the change (unless written since) */
		h->created = 0;
	}
	if (err) {
		fuse_reply_err(p->req, err);
	} else {
		struct stat st;
		fill_attr(p->o, p->ino, p->path, &kv, &st);
		fuse_reply_attr(p->req, &st, attr_timeout(p->o, p->ino, &kv));
	}
	free(p);
}

/* Through an open file (p->fh), its buffered content is committed with the change. */
static int setattr_build(struct pending *p, struct fs_txn *tb, const struct fs_txn_view *v)
{
	struct fh *h = p->fh;
	struct fs_txn_content buffered = {h ? h->buf : NULL, h ? h->len : 0};
	p->fh_gen = h ? h->gen : 0;
	return fs__txn_setattr(tb, v, p->path, &p->attr, p->to_set, h ? &buffered : NULL,
			       p->o->opt.max_value_bytes, fs_clock_wall_ns());
}

static void setattr_start(struct pending *p)
{
	int rc = build_and_propose(p, setattr_build);
	if (rc) {
		fuse_reply_err(p->req, -rc);
		free(p);
	}
}

/* The attributes of ino with what its writable handle h holds: the size written so far. */
static int handle_attr(struct fs_ops *o, fuse_ino_t ino, const struct fh *h, struct stat *st)
{
	char path[FS_PATH_MAX_BYTES + 1];
	struct store_kv kv;
	int rc = ino_path(o, ino, path);
	if (!rc && get_kv(o, path, &kv) != 0)
		rc = -ENOENT;
	if (rc)
		return rc;
	fill_attr(o, ino, path, &kv, st);
	if (h && h->dirty) {
		st->st_size = (off_t)h->len;
		st->st_blocks = (st->st_size + 511) / 512;
	}
	return 0;
}

static void reply_handle_attr(fuse_req_t req, struct fs_ops *o, fuse_ino_t ino,
			      const struct fh *h)
{
	struct stat st;
	int rc = handle_attr(o, ino, h, &st);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, 0); /* the handle's, not yet everyone's: not cached */
}

/*
 * A chmod or chown to what ino already has (vim's fchmod after its save): answered without a
 * proposal, so a save stays one revision. 1 when it answered req.
 */
static int setattr_changes_nothing(fuse_req_t req, struct fs_ops *o, fuse_ino_t ino,
				   const struct stat *a, int to_set, const struct fh *h)
{
	struct stat st;
	if (handle_attr(o, ino, h, &st) != 0) /* the root too: its setattr is refused */
		return 0;
	if (((to_set & FUSE_SET_ATTR_MODE) && (a->st_mode & 07777) != (st.st_mode & 07777)) ||
	    ((to_set & FUSE_SET_ATTR_UID) && a->st_uid != st.st_uid) ||
	    ((to_set & FUSE_SET_ATTR_GID) && a->st_gid != st.st_gid))
		return 0;
	fuse_reply_attr(req, &st, 0);
	return 1;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct fs_ops *o = fuse_req_userdata(req);
	if (fs__at_setattr(req, o, ino))
		return;
	if (CONTROL(o, ino)) { /* `echo CMD > ctl` truncates first: nothing to truncate */
		if (to_set & ~FUSE_SET_ATTR_SIZE)
			fuse_reply_err(req, EPERM);
		else
			o->ns.getattr(o->ns.arg, req, ino);
		return;
	}
	if (!fi && moved_by_exchange(o, req, ino))
		return;
	/* the replayer's handles (at.c) are no struct fh: they have no content to commit */
	struct fh *through = fi && !fs__at_fh(fi) ? fh_of(fi, ino) : NULL;
	if (through && !through->writable)
		through = NULL;
	struct fh *h = through ? through : fh_writable_of(o, ino); /* fchmod, futimens: no handle */
	if (h && (to_set & FUSE_SET_ATTR_SIZE)) {
		/* ftruncate of an open file: its buffered content changes first */
		size_t len = (size_t)attr->st_size;
		if (len > o->opt.max_value_bytes) {
			h->failed = EFBIG;
			fuse_reply_err(req, EFBIG);
			return;
		}
		if (fh_reserve(h, len) != 0) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		if (len > h->len)
			memset(h->buf + h->len, 0, len - h->len);
		h->len = len;
		h->dirty = 1;
		h->gen++;
		/*
		 * ftruncate(fd): into the handle, as O_TRUNC is, and committed with what is written
		 * next at flush, fsync or close (vim saves by open, ftruncate, write, fsync): no
		 * revision of a content no one meant. Its times are the commit's.
		 */
		if (through && !(to_set & ~(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MTIME |
					    FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME)) &&
		    (!(to_set & FUSE_SET_ATTR_MTIME) || (to_set & FUSE_SET_ATTR_MTIME_NOW))) {
			reply_handle_attr(req, o, ino, h);
			return;
		}
	}
	if (!(to_set & ~(FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) &&
	    setattr_changes_nothing(req, o, ino, attr, to_set, h))
		return;
	struct pending *p = pending_new(o, req, setattr_done);
	int rc = p ? ino_path(o, ino, p->path) : -ENOMEM;
	if (!rc && is_root(p->path))
		rc = -EPERM;
	if (!rc && h && h->failed)
		rc = -h->failed;
	if (rc) {
		free(p);
		fuse_reply_err(req, -rc);
		return;
	}
	p->ino = ino;
	p->attr = *attr;
	p->to_set = to_set;
	p->fh = h; /* through an open file: its buffered content is committed with the change */
	setattr_start(p);
}

/* ---- statfs and extended attributes ------------------------------------------------------------ */

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_ops *o = fuse_req_userdata(req);
	uint64_t used = store_size(o->store), quota = o->quota_bytes;
	struct statvfs sv = {.f_bsize = 4096, .f_frsize = 4096, .f_namemax = FS_NAME_MAX_BYTES};
	sv.f_blocks = quota / 4096;
	sv.f_bfree = sv.f_bavail = used < quota ? (quota - used) / 4096 : 0;
	sv.f_files = 1u << 30;
	sv.f_ffree = sv.f_favail = sv.f_files;
	fuse_reply_statfs(req, &sv);
}

#define XATTR_PREFIX "user.raftfs."

/*
 * The read-only attributes, served by name and never listed (op_listxattr): every node's
 * create_revision, mod_revision, version and lease; the root's revision, member, leader and term.
 */
static int xattr_value(struct fs_ops *o, const char *path, const char *name, char *out, size_t n)
{
	if (strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)) != 0)
		return -ENODATA;
	name += strlen(XATTR_PREFIX);
	if (is_root(path)) {
		struct fs_member_status st;
		fs_member_status(o->member, &st);
		if (!strcmp(name, "revision"))
			return snprintf(out, n, "%" PRId64, store_rev(o->store));
		if (!strcmp(name, "member"))
			return snprintf(out, n, "%016" PRIx64, st.id);
		if (!strcmp(name, "leader"))
			return snprintf(out, n, "%016" PRIx64, st.leader);
		if (!strcmp(name, "term"))
			return snprintf(out, n, "%" PRIu64, st.term);
		return -ENODATA;
	}
	struct store_kv kv;
	if (get_kv(o, path, &kv) != 0)
		return -ENOENT;
	if (!strcmp(name, "create_revision"))
		return snprintf(out, n, "%" PRId64, kv.create_revision);
	if (!strcmp(name, "mod_revision"))
		return snprintf(out, n, "%" PRId64, kv.mod_revision);
	if (!strcmp(name, "version"))
		return snprintf(out, n, "%" PRId64, kv.version);
	if (!strcmp(name, "lease"))
		return snprintf(out, n, "%" PRId64, kv.lease);
	return -ENODATA;
}

/* A stored attribute's kv; -ENODATA when there is none. */
static int xattr_stored(struct fs_ops *o, const char *path, const char *name, struct store_kv *kv)
{
	char k[FS_XKEY_MAX];
	size_t kl = fs__txn_xkey(path, name, k);
	return get_key(o, k, kl, 0, kv) ? -ENODATA : 0;
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs_ops *o = fuse_req_userdata(req);
	char path[FS_PATH_MAX_BYTES + 1], value[64];
	const char *data = value;
	struct store_kv kv;
	int rc = CONTROL(o, ino) ? -ENODATA : ino_path(o, ino, path);
	long len = rc;
	if (!rc && !strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX))) {
		len = xattr_value(o, path, name, value, sizeof value);
	} else if (!rc && strncmp(name, "user.", 5) != 0) {
		/*
		 * Only user.* attributes are ever stored (xattr_change): a security.* or trusted.*
		 * attribute the kernel asks for (security.capability, before a write through a
		 * mapping) is answered without a look in the store.
		 */
		len = -ENODATA;
	} else if (!rc && strlen(name) <= FS_NAME_MAX_BYTES) {
		len = xattr_stored(o, path, name, &kv);
		if (len == 0) {
			data = (const char *)kv.value;
			len = (long)kv.value_len;
		}
	} else if (!rc) {
		len = -ENODATA;
	}
	if (len < 0)
		fuse_reply_err(req, (int)-len);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)len);
	else if ((size_t)len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, data, (size_t)len);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs_ops *o = fuse_req_userdata(req);
	char path[FS_PATH_MAX_BYTES + 1], xp[FS_XKEY_MAX];
	unsigned char xe[FS_XKEY_MAX];
	if (CONTROL(o, ino)) {
		if (size == 0)
			fuse_reply_xattr(req, 0);
		else
			fuse_reply_buf(req, NULL, 0);
		return;
	}
	int rc = ino_path(o, ino, path);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	size_t xl = fs__txn_xkey(path, NULL, xp), el = store_prefix_end(xp, xl, xe);
	struct store_range_req rq = {.key = xp, .key_len = xl, .end = xe, .end_len = el,
				     .flags = STORE_RANGE_KEYS_ONLY};
	struct store_range_result res;
	if (store_range(o->store, &rq, &res) != 0) {
		fuse_reply_err(req, EIO);
		return;
	}
	size_t cap = 1 + res.n * (FS_NAME_MAX_BYTES + 1), used = 0;
	char *list = malloc(cap);
	if (!list) {
		store_range_result_free(&res);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/*
	 * Only the attributes users set. The user.raftfs.* ones (revisions, version, lease; the
	 * cluster's on the root) are served by name and listed nowhere, as CephFS serves its virtual
	 * attributes: copying tools (cp -a, mv, rsync -X, tar --xattrs) copy what is listed, and would
	 * carry revisions of this cluster onto other files and try to set them here (EPERM).
	 */
	struct store_kv kv;
	/* the kernel keeps user.* attributes off symlinks: list none it would then refuse */
	int link = !is_root(path) && get_kv(o, path, &kv) == 0 && (kv.meta.type & S_IFMT) == S_IFLNK;
	for (size_t i = 0; i < res.n && !link; i++) {
		size_t nl = res.kvs[i].key_len - xl;
		memcpy(list + used, res.kvs[i].key + xl, nl);
		list[used + nl] = '\0';
		used += nl + 1;
	}
	store_range_result_free(&res);
	if (size == 0)
		fuse_reply_xattr(req, used);
	else if (used > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, list, used);
	free(list);
}

static void xattr_done(struct pending *p, int status, const Rpc__Response *resp)
{
	int err = fs_errno(status);
	struct store_kv kv;
	if (!err && !resp->succeeded) {
		/* which compare failed: the file, or the attribute's presence */
		if (!is_root(p->path) && get_kv(p->o, p->path, &kv) != 0)
			err = ENOENT;
		else if (xattr_stored(p->o, p->path, p->name, &kv) == 0)
			err = EEXIST; /* XATTR_CREATE */
		else
			err = ENODATA; /* XATTR_REPLACE, or removing what is not there */
	}
	fuse_reply_err(p->req, err);
	free(p);
}

/* The lease id in an attribute value: decimal, an optional newline; -EINVAL otherwise. */
static int lease_parse(const char *value, size_t size, int64_t *id)
{
	char buf[32];
	if (size == 0 || size >= sizeof buf)
		return -EINVAL;
	memcpy(buf, value, size);
	buf[size] = '\0';
	if (buf[size - 1] == '\n')
		buf[size - 1] = '\0';
	char *end;
	errno = 0;
	long long v = strtoll(buf, &end, 10);
	if (errno || end == buf || *end || v < 0)
		return -EINVAL;
	*id = v;
	return 0;
}

/*
 * Stores (value != NULL) or removes a user.* attribute of ino in one txn that also checks the file
 * still exists (fs__txn_xattr), or binds the file to a lease (fs__txn_lease). user.raftfs.* are
 * the store's own and read-only; other namespaces are not kept.
 */
static void xattr_change(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			 size_t size, int flags)
{
	struct fs_ops *o = fuse_req_userdata(req);
	int rc = 0;
	int64_t lease = 0;
	/* user.raftfs.lease is the one writable attribute of ours: it binds the file to a lease */
	int binding = !strcmp(name, XATTR_PREFIX "lease");
	if (binding)
		rc = !value ? -EPERM : lease_parse(value, size, &lease);
	else if (!strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)))
		rc = -EPERM;
	else if (strncmp(name, "user.", 5) != 0)
		rc = -ENOTSUP;
	else if (strlen(name) > FS_NAME_MAX_BYTES)
		rc = -ERANGE;
	else if (value && size > 65536)
		rc = -E2BIG;
	struct pending *p = rc ? NULL : pending_new(o, req, xattr_done);
	struct fs_txn *tb = p ? fs__txn_new() : NULL;
	if (!rc && (!p || !tb))
		rc = -ENOMEM;
	if (!rc)
		rc = ino_path(o, ino, p->path);
	if (!rc)
		snprintf(p->name, sizeof p->name, "%s", name);
	struct fs_txn_view v = view_of(o);
	if (!rc && binding)
		rc = fs__txn_lease(tb, &v, p->path, lease);
	else if (!rc)
		rc = fs__txn_xattr(tb, &v, p->path, name, value, size, flags);
	if (!rc)
		rc = propose_txn(p, tb);
	fs__txn_free(tb);
	if (rc) {
		free(p);
		fuse_reply_err(req, -rc);
	}
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	xattr_change(req, ino, name, value ? value : "", size, flags);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	xattr_change(req, ino, name, NULL, 0, 0);
}

/* ---- table and life cycle ---------------------------------------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	/* The kernel checks permissions against the attributes (mount option default_permissions). */
	conn->want &= ~FUSE_CAP_SPLICE_READ;
	/*
	 * A close sends RELEASE as a background request, of which the kernel has at most
	 * max_background outstanding and queues the rest. With its default of 12, 64 threads
	 * opening and closing files got their opens served far ahead of their releases: handles
	 * piled up here by the hundred thousand (60 MB a second) until the readers stopped.
	 */
	conn->max_background = 1024;
	conn->congestion_threshold = 768;
}

const struct fuse_lowlevel_ops fs_ops_table = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.readdir = op_readdir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
	.create = op_create,
};

int fs_ops_init(struct fs_ops *ops, struct fs_member *member, struct store *store,
		const struct fs_ops_options *opt, uint64_t quota_bytes)
{
	memset(ops, 0, sizeof *ops);
	ops->member = member;
	ops->store = store;
	if (opt)
		ops->opt = *opt;
	if (ops->opt.mountpoint)
		snprintf(ops->mountpoint, sizeof ops->mountpoint, "%s", ops->opt.mountpoint);
	ops->opt.mountpoint = NULL; /* borrowed: the copy is kept */
	if (!ops->opt.max_value_bytes)
		ops->opt.max_value_bytes = FS_DEFAULT_MAX_VALUE;
	ops->quota_bytes = quota_bytes ? quota_bytes : (2ull << 30);
	if (!(ops->subdirs = fs__subdirs_new()))
		return -ENOMEM;
	return fs_itable_init(&ops->itable);
}

static int watch_create(struct fs_ops *ops)
{
	int64_t compacted;
	unsigned char end[2];
	size_t el = store_prefix_end("/", 1, end); /* every path */
	return store_watch_create(ops->store, "/", 1, end, el, store_rev(ops->store) + 1,
				  STORE_WATCH_PREV_KV, &ops->watch, &compacted);
}

int fs_ops_watch_start(struct fs_ops *ops, struct fuse_session *se)
{
	int rc = ops->subdirs ? fs__subdirs_rebuild(ops->subdirs, ops->store) : 0;
	if (!rc)
		rc = watch_create(ops);
	if (rc)
		return rc == STORE_ECOMPACTED ? -EAGAIN : rc;
	return fs_notify_start(&ops->notifier, se);
}

/*
 * Whether path's event at rev came with its directory's: the directory was deleted or made in the
 * same revision (a tree removed, or moved by a rename: every key under it is deleted and made
 * again). What the kernel holds of such a key hangs under that directory's entry, which is
 * invalidated (or renamed by the kernel itself) as one, and so is the inode table's part.
 */
static int came_with_parent(struct fs_ops *o, const char *parent, int64_t rev)
{
	struct store_kv kv;
	if (is_root(parent))
		return 0;
	return get_key(o, parent, strlen(parent), rev, &kv) != 0 || kv.create_revision == rev;
}

/* Invalidates what the kernel may hold of one changed key. */
static void invalidate(struct fs_ops *o, const struct store_event *ev)
{
	char path[FS_PATH_MAX_BYTES + 1], parent[FS_PATH_MAX_BYTES + 1];
	struct store_kv now;
	if (ev->kv.key_len == 0 || ev->kv.key_len > FS_PATH_MAX_BYTES || ev->kv.key[0] != '/')
		return;
	const struct fs_own_create *own = NULL;
	for (size_t i = 0; ev->type != STORE_EVENT_DELETE && i < o->n_own_creates; i++)
		if (o->own_creates[i].rev == ev->kv.mod_revision)
			own = &o->own_creates[i];
	if (own && own->attrs_current)
		return; /* the file and its directory as the kernel has them (created_attrs_current) */
	memcpy(path, ev->kv.key, ev->kv.key_len);
	path[ev->kv.key_len] = '\0';
	parent_of(path, parent);
	/* only a name that comes or goes can come with its directory: a write to a file does not
	   pay for the look-up */
	if ((ev->type == STORE_EVENT_DELETE || ev->kv.version == 1) &&
	    came_with_parent(o, parent, ev->kv.mod_revision))
		return; /* one invalidation, one detach, for the whole tree (its top's) */
	uint64_t ino = fs_itable_find(&o->itable, path);
	if (ino)
		fs_notify_inode(&o->notifier, ino);
	/*
	 * Only a deletion changes what the kernel may hold of a name. A change of an existing key
	 * (a write, a directory touched by a create in it) keeps its inode; and a name that comes
	 * into existence has nothing cached: every lookup of an absent name is answered ENOENT
	 * without a timeout, so the kernel keeps no negative entry, and one this member created
	 * was made by the kernel from the reply. Invalidating it would cost a write to /dev/fuse
	 * (failing ENOENT when the kernel holds nothing), with the directory locked in the kernel
	 * against the next create in it, and a later lookup.
	 */
	if (ev->type != STORE_EVENT_DELETE)
		return;
	uint64_t pino = is_root(parent) ? FS_ROOT_INO : fs_itable_find(&o->itable, parent);
	const char *name = strrchr(path, '/') + 1;
	if (pino)
		fs_notify_entry(&o->notifier, pino, name, strlen(name));
	if (!o->replayer.feed) /* else the replayer keeps the table */
		fs_itable_detach(&o->itable, path, ev->kv.mod_revision - 1); /* a later lookup
									      * makes a new inode */
	else if (get_key(o, path, strlen(path), ev->kv.mod_revision, &now) == 0)
		/* made again at once: an exchange, whose replay moves the inodes at the name
		   (its local handler did already, and they count as made at its revision) */
		fs_itable_mark_replaced(&o->itable, path, ev->kv.mod_revision);
}

static void after_apply(struct fs_ops *ops)
{
	if (!ops->watch)
		return;
	for (;;) {
		struct store_watch_batch b;
		int rc = store_watch_next(ops->watch, 256, &b);
		if (rc == STORE_ECOMPACTED || rc == STORE_EWATCHCANCELED) {
			/* history we had not read went (compaction, a restored snapshot): go on from now */
			store_watch_batch_free(&b);
			store_watch_cancel(ops->watch);
			ops->watch = NULL;
			fs__subdirs_rebuild(ops->subdirs, ops->store);
			watch_create(ops);
			if (ops->replayer.flush)
				ops->replayer.flush(ops->replayer.arg);
			return;
		}
		if (rc != 0 || b.n == 0) {
			store_watch_batch_free(&b);
			if (ops->replayer.flush) /* everything applied was read */
				ops->replayer.flush(ops->replayer.arg);
			return;
		}
		for (size_t i = 0; i < b.n; i++) {
			fs__subdirs_event(ops->subdirs, &b.events[i]);
			invalidate(ops, &b.events[i]);
		}
		if (ops->replayer.feed)
			ops->replayer.feed(ops->replayer.arg, b.events, b.n);
		store_watch_batch_free(&b);
	}
}

void fs_ops_after_apply(struct fs_ops *ops)
{
	fs_itable_set_rev(&ops->itable, store_rev(ops->store));
	after_apply(ops);
	ops->n_own_creates = 0; /* every event of those revisions was read */
}

void fs_ops_close(struct fs_ops *ops)
{
	fs_notify_stop(&ops->notifier);
	store_watch_cancel(ops->watch);
	ops->watch = NULL;
	fs__subdirs_free(ops->subdirs);
	ops->subdirs = NULL;
	fs_itable_close(&ops->itable);
}

void fs_ops_detach(struct fs_ops *ops, const char *path, int64_t rev)
{
	fs_itable_detach(&ops->itable, path, rev);
}

/* ---- for at.c and txn.c (fuse/internal.h) ---------------------------------------------------- */

dev_t fs__ops_rdev_of(const void *value, size_t len)
{
	char num[32];
	unsigned ma = 0, mi = 0;
	snprintf(num, sizeof num, "%.*s", (int)(len < sizeof num ? len : sizeof num - 1),
		 (const char *)value);
	return sscanf(num, "%u:%u", &ma, &mi) == 2 ? makedev(ma, mi) : 0;
}

void fs__ops_parent_of(const char *path, char *buf)
{
	parent_of(path, buf);
}

int fs__ops_each_child(struct store *s, const char *dir,
		       int (*fn)(void *arg, const char *name, size_t len, const struct store_kv *kv),
		       void *arg)
{
	return for_each_child(s, dir, fn, arg);
}

int fs__ops_child_path(struct fs_ops *o, uint64_t parent, const char *name, char *buf)
{
	return child_path(o, parent, name, buf);
}

int fs__ops_kv_at(struct fs_ops *o, const char *path, int64_t rev, struct store_kv *kv)
{
	return get_kv_at(o, path, rev, kv);
}

void fs__ops_fill_attr(struct fs_ops *o, uint64_t ino, const char *path, const struct store_kv *kv,
		       struct stat *st)
{
	fill_attr(o, ino, path, kv, st);
}

void fs__ops_entry_timeouts(struct fs_ops *o, uint64_t ino, const struct store_kv *kv,
			    struct fuse_entry_param *e)
{
	entry_timeouts(o, ino, kv, e);
}
