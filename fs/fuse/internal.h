/*
 * fuse/internal.h: what the files of fuse/ share with each other; no other folder includes it
 * (they include fuse/face.h). ops.c serves every FUSE operation; at.c serves the replayer's
 * requests at a revision, and each handler of ops.c asks it first.
 */
#ifndef RAFTFS_FS_FUSE_INTERNAL_H
#define RAFTFS_FS_FUSE_INTERNAL_H

#include <stdint.h>

#include "fuse/face.h"

struct stat;

/* ---- ops.c, for at.c ---- */

/* parent's path joined with name into buf[FS_PATH_MAX_BYTES + 1]; -ENAMETOOLONG, -EINVAL, -EPERM
   in the namespace, -ENOENT for an unknown parent. */
int fs__ops_child_path(struct fs_ops *o, uint64_t parent, const char *name, char *buf);

/* path at revision rev (0: now, where a file created here and not yet committed counts); 0 with
   *kv pointing into the store until its next change, or -ENOENT. */
int fs__ops_kv_at(struct fs_ops *o, const char *path, int64_t rev, struct store_kv *kv);

/* The attributes of inode ino from kv (NULL: the root). */
void fs__ops_fill_attr(uint64_t ino, const struct store_kv *kv, struct stat *st);

/* The cache timeouts of an entry for ino made from kv, as ordinary lookups get them. */
void fs__ops_entry_timeouts(struct fs_ops *o, uint64_t ino, const struct store_kv *kv,
			    struct fuse_entry_param *e);

/* The parent directory of path into buf[FS_PATH_MAX_BYTES + 1]. */
void fs__ops_parent_of(const char *path, char *buf);

/* ---- at.c, for the handlers of ops.c: 1 when req was answered (the replayer's), else 0 ---- */

int fs__at_lookup(fuse_req_t req, struct fs_ops *o, fuse_ino_t parent, const char *name);
int fs__at_getattr(fuse_req_t req, struct fs_ops *o, fuse_ino_t ino);
int fs__at_setattr(fuse_req_t req, struct fs_ops *o, fuse_ino_t ino);
/* create (fi set), mkdir and symlink (fi NULL): op names the operation */
int fs__at_make(fuse_req_t req, struct fs_ops *o, const char *op, fuse_ino_t parent,
		const char *name, struct fuse_file_info *fi);
int fs__at_open(fuse_req_t req, struct fs_ops *o, struct fuse_file_info *fi);
int fs__at_remove(fuse_req_t req, struct fs_ops *o, fuse_ino_t parent, const char *name, int dir);
int fs__at_rename(fuse_req_t req, struct fs_ops *o, fuse_ino_t parent, const char *name,
		  fuse_ino_t newparent, const char *newname);

/* Whether a handle is one the replayer opened (at.c): write, flush, fsync and release of it
   commit nothing and answer at once. */
int fs__at_fh(const struct fuse_file_info *fi);

#endif
