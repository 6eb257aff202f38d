/*
 * at.c: the replayer's requests, served from the store at the revision it names (fuse/face.h,
 * "Serving a request at a revision"). Each fs__at_* is called first by the handler of the same
 * operation in ops.c: it returns 1 when it answered req (a request of the replayer), 0 when the
 * handler goes on as usual (anyone else's request, or one of the replayer's that may see the name
 * as everyone does).
 */
#include "fuse/internal.h"

#include <errno.h>
#include <stdio.h> /* RENAME_EXCHANGE */
#include <string.h>
#include <sys/stat.h>

/* The handle of every file the replayer opens: its data is ignored, nothing of it is committed. */
static const char at_handle_marker;
#define AT_FH ((uint64_t)(uintptr_t)&at_handle_marker)

int fs__at_fh(const struct fuse_file_info *fi)
{
	return fi->fh == AT_FH;
}

/* Whether req is the replayer's, to be served at *at (asked of the replayer for op). */
static int at_of(struct fs_ops *o, fuse_req_t req, const char *op, struct fs_ops_at *at)
{
	if (!o->replayer.serve_at)
		return FS_OPS_AT_NOT_MINE;
	memset(at, 0, sizeof *at);
	return o->replayer.serve_at(o->replayer.arg, req, op, at);
}

/* The revision a replayed request sees path at: before the change for the names it changes. */
static int64_t rev_for(const struct fs_ops_at *at, const char *path)
{
	if (at->rev && (!strcmp(path, at->path) || !strcmp(path, at->path2)))
		return at->first - 1;
	return at->rev;
}

/* path's key at rev, or the root (*is_root). 0 or -ENOENT. */
static int kv_of(struct fs_ops *o, const char *path, int64_t rev, struct store_kv *kv,
		 int *is_root)
{
	*is_root = !strcmp(path, "/");
	if (*is_root)
		return 0;
	int rc = fs__ops_kv_at(o, path, rev, kv);
	if (rc && rev)
		rc = fs__ops_kv_at(o, path, 0, kv); /* compacted: as it is */
	return rc;
}

static int entry_of(struct fs_ops *o, const char *path, int64_t rev, struct fuse_entry_param *e)
{
	struct store_kv kv;
	int root;
	if (rev && fs__ops_kv_at(o, path, rev, &kv) != 0)
		return -ENOENT; /* not there before the change: the kernel goes on to create it */
	if (!rev && kv_of(o, path, 0, &kv, &root) != 0)
		return -ENOENT;
	/*
	 * Not cached (timeouts 0) when made from a revision the name has changed since: anyone
	 * else looking at it right after must be answered from the store as it is now, not see a
	 * deleted file's ghost while its unlink is replayed. A name unchanged since is what
	 * everyone sees, cached as usual: a replayed create's open then asks nothing more.
	 */
	memset(e, 0, sizeof *e);
	e->ino = fs_itable_lookup(&o->itable, path);
	if (!e->ino)
		return -ENOMEM;
	fs__ops_fill_attr(o, e->ino, path, &kv, &e->attr);
	struct store_kv now;
	if (rev && fs__ops_kv_at(o, path, 0, &now) == 0 && now.mod_revision == kv.mod_revision)
		fs__ops_entry_timeouts(o, e->ino, &kv, e);
	return 0;
}

/* Has the kernel drop its entry of path (and what it caches under it); the root: nothing. */
static void drop_entry(struct fs_ops *o, const char *path)
{
	char parent[FS_PATH_MAX_BYTES + 1];
	if (!strcmp(path, "/"))
		return;
	fs__ops_parent_of(path, parent);
	uint64_t pino = strcmp(parent, "/") ? fs_itable_find(&o->itable, parent) : FS_ROOT_INO;
	const char *name = strrchr(path, '/') + 1;
	if (pino)
		fs_notify_entry(&o->notifier, pino, name, strlen(name));
}

/*
 * After a replayed change of path at rev: when path changed again since (a local change raced the
 * replay), the kernel's entry and attributes, made from rev, are invalidated once more.
 */
static void settle(struct fs_ops *o, const char *path, int64_t rev)
{
	struct store_kv now, then;
	int root;
	if (!rev || !strcmp(path, "/"))
		return;
	int has_now = kv_of(o, path, 0, &now, &root) == 0;
	int64_t now_mod = has_now ? now.mod_revision : 0;
	int has_then = fs__ops_kv_at(o, path, rev, &then) == 0;
	if (has_now == has_then && (!has_now || now_mod == then.mod_revision))
		return;
	drop_entry(o, path);
	uint64_t ino = fs_itable_find(&o->itable, path);
	if (ino)
		fs_notify_inode(&o->notifier, ino);
}

/*
 * Whether the replayer may see path as everyone else does, through the ordinary handler with its
 * cache timeouts: a name the change does not touch (a directory on the way to one) that has not
 * been made again since the revision the change leaves (same generation, same type). Served at
 * that revision instead, uncached, every replayed path walk asked for each directory again:
 * several LOOKUPs and GETATTRs for every replayed file, where with this and entry_of's caching a
 * replayed file costs about one of each.
 */
static int as_everyone_sees(struct fs_ops *o, const char *path, const struct fs_ops_at *at)
{
	struct store_kv then, now;
	if (o->opt.linearizable || !strcmp(path, at->path) || !strcmp(path, at->path2))
		return 0;
	if (!at->rev || !strcmp(path, "/"))
		return 1;
	return fs__ops_kv_at(o, path, at->rev, &then) == 0 &&
	       fs__ops_kv_at(o, path, 0, &now) == 0 &&
	       then.create_revision == now.create_revision && then.meta.type == now.meta.type;
}

int fs__at_lookup(fuse_req_t req, struct fs_ops *o, fuse_ino_t parent, const char *name)
{
	struct fs_ops_at at;
	char path[FS_PATH_MAX_BYTES + 1];
	struct fuse_entry_param e;
	if (at_of(o, req, "lookup", &at) != FS_OPS_AT_SERVE)
		return 0;
	int rc = fs__ops_child_path(o, parent, name, path);
	if (!rc && as_everyone_sees(o, path, &at))
		return 0;
	if (!rc)
		rc = entry_of(o, path, rev_for(&at, path), &e);
	if (rc)
		fuse_reply_err(req, -rc);
	else if (fuse_reply_entry(req, &e) != 0)
		fs_itable_forget(&o->itable, e.ino, 1);
	return 1;
}

int fs__at_getattr(fuse_req_t req, struct fs_ops *o, fuse_ino_t ino)
{
	struct fs_ops_at at;
	char path[FS_PATH_MAX_BYTES + 1];
	if (at_of(o, req, "getattr", &at) != FS_OPS_AT_SERVE)
		return 0;
	int64_t detached = 0;
	struct store_kv kv;
	struct stat st;
	int root;
	int rc = fs_itable_path_at(&o->itable, ino, path, sizeof path, &detached);
	if (rc >= 0 && !detached && as_everyone_sees(o, path, &at))
		return 0;
	if (rc >= 0)
		rc = kv_of(o, path, detached ? detached : at.rev, &kv, &root);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return 1;
	}
	fs__ops_fill_attr(o, ino, path, root ? NULL : &kv, &st);
	fuse_reply_attr(req, &st, 0); /* as of the replayed revision */
	return 1;
}

int fs__at_setattr(fuse_req_t req, struct fs_ops *o, fuse_ino_t ino)
{
	struct fs_ops_at at;
	char path[FS_PATH_MAX_BYTES + 1];
	if (at_of(o, req, "setattr", &at) != FS_OPS_AT_SERVE)
		return 0;
	struct store_kv kv;
	struct stat st;
	int root;
	int rc = fs_itable_path(&o->itable, ino, path, sizeof path);
	if (rc >= 0)
		rc = kv_of(o, path, at.rev, &kv, &root);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return 1;
	}
	fs__ops_fill_attr(o, ino, path, root ? NULL : &kv, &st);
	fuse_reply_attr(req, &st, 0); /* as of the replayed revision */
	settle(o, path, at.rev);
	return 1;
}

/* A file the replayer opens: writes dropped, nothing to flush (close raises IN_CLOSE_WRITE
   without a FLUSH). */
static void at_open_flags(struct fuse_file_info *fi)
{
	fi->fh = AT_FH;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	fi->noflush = 1;
}

int fs__at_make(fuse_req_t req, struct fs_ops *o, const char *op, fuse_ino_t parent,
		const char *name, struct fuse_file_info *fi)
{
	struct fs_ops_at at;
	char path[FS_PATH_MAX_BYTES + 1];
	struct fuse_entry_param e;
	int answer = at_of(o, req, op, &at);
	if (answer != FS_OPS_AT_SERVE)
		return answer == FS_OPS_AT_TAKEN;
	/* the entry as the change made it */
	int rc = fs__ops_child_path(o, parent, name, path);
	if (!rc)
		rc = entry_of(o, path, at.rev, &e);
	if (rc) {
		fuse_reply_err(req, -rc);
		return 1;
	}
	if (fi) {
		at_open_flags(fi);
		rc = fuse_reply_create(req, &e, fi);
	} else {
		rc = fuse_reply_entry(req, &e);
	}
	if (rc)
		fs_itable_forget(&o->itable, e.ino, 1);
	settle(o, path, at.rev);
	return 1;
}

int fs__at_open(fuse_req_t req, struct fs_ops *o, struct fuse_file_info *fi)
{
	struct fs_ops_at at;
	if (at_of(o, req, "open", &at) != FS_OPS_AT_SERVE)
		return 0;
	at_open_flags(fi);
	fuse_reply_open(req, fi);
	return 1;
}

int fs__at_remove(fuse_req_t req, struct fs_ops *o, fuse_ino_t parent, const char *name, int dir)
{
	struct fs_ops_at at;
	char path[FS_PATH_MAX_BYTES + 1];
	struct store_kv kv;
	if (at_of(o, req, dir ? "rmdir" : "unlink", &at) != FS_OPS_AT_SERVE)
		return 0;
	int rc = fs__ops_child_path(o, parent, name, path);
	if (rc) {
		fuse_reply_err(req, -rc);
		return 1;
	}
	/* the inode goes with the name, unless the name was made again since */
	if (fs__ops_kv_at(o, path, 0, &kv) != 0)
		fs_itable_detach(&o->itable, path, at.first - 1);
	fuse_reply_err(req, 0);
	settle(o, path, at.rev);
	return 1;
}

int fs__at_rename(fuse_req_t req, struct fs_ops *o, fuse_ino_t parent, const char *name,
		  fuse_ino_t newparent, const char *newname, unsigned flags)
{
	struct fs_ops_at at;
	char path[FS_PATH_MAX_BYTES + 1], path2[FS_PATH_MAX_BYTES + 1];
	if (at_of(o, req, "rename", &at) != FS_OPS_AT_SERVE)
		return 0;
	int rc = fs__ops_child_path(o, parent, name, path);
	if (!rc)
		rc = fs__ops_child_path(o, newparent, newname, path2);
	if (rc) {
		fuse_reply_err(req, -rc);
		return 1;
	}
	/* inodes move with the names (a watched directory keeps its watch), as the store did;
	   one made for a file made at the old name since stays (fs_itable_rename); an exchange
	   moves both names' inodes, each to the other name */
	int exchange = (flags & RENAME_EXCHANGE) != 0;
	if (exchange) {
		fs_itable_exchange(&o->itable, path, path2, at.first - 1);
		fs__ops_exchanged(o, path, path2, at.rev);
	} else
		fs_itable_rename(&o->itable, path, path2, at.first - 1);
	fuse_reply_err(req, 0);
	if (exchange) {
		/*
		 * Both names held, until this replay, the inodes of the objects that were there
		 * before the exchange; whatever was looked up under them since the exchange applied
		 * belongs to the objects it put there, and the kernel has just moved it along to the
		 * other name. Its entries go: the kernel takes each parent's lock for that, which it
		 * holds until it has exchanged the names, so they go after.
		 */
		drop_entry(o, path);
		drop_entry(o, path2);
	}
	settle(o, path, at.rev);
	settle(o, path2, at.rev);
	return 1;
}
