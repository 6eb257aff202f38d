/*
 * ops_internal.h: the file system a mount serves: FUSE lowlevel operations over the member's
 * store, every change proposed through raft.
 *
 * The file /a/b/c is the key "/a/b/c" and its content the value; a directory is a key of its own
 * (type S_IFDIR, empty value), so an empty mkdir replicates; a symlink's value is its target. The
 * root is implicit. Type, mode, uid, gid and times travel in the key's metadata, times taken from
 * the proposing member's clock. Reads come from the local store. Writes to an open file collect in
 * its handle and are committed by flush (close), fsync and release as one proposal; namespace
 * operations are one proposal each, answered once this member has applied them.
 *
 * Consistency across members, with etcd-style compares in one transaction:
 *   - create and mkdir: the key's version is 0 and the parent's create revision is the one seen
 *     (it still exists): of two members racing, one wins, the other gets EEXIST;
 *   - every create, delete or rename also rewrites the parent directory's key (its mtime), so
 *     rmdir can compare the directory's mod revision with the one it saw empty: a child created
 *     meanwhile anywhere makes it fail with ENOTEMPTY instead of orphaning the child;
 *   - rename moves a file, or a directory and everything under it, in one revision, comparing
 *     the mod revision of every key it moves.
 *
 * Everything here runs on the member's loop thread (fs/mount.c serves FUSE there).
 */
#ifndef RAFTFS_FS_OPS_INTERNAL_H
#define RAFTFS_FS_OPS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "control_internal.h"
#include "inode_internal.h"
#include "member_internal.h"
#include "mount_internal.h"
#include "notify_internal.h"
#include "store.h"

#define FS_DEFAULT_MAX_VALUE (1536u * 1024) /* 1.5 MiB, etcd's default request size limit */
#define FS_NAME_MAX_BYTES 255
#define FS_PATH_MAX_BYTES 4096

struct fs_ops_options {
	size_t max_value_bytes; /* larger files are EFBIG; 0: FS_DEFAULT_MAX_VALUE */
	int linearizable;       /* reads wait for a ReadIndex barrier first */
};

struct fh;
struct fs_replay;

/* A revision in which this member created a name for the kernel (ops.c, own_create). */
struct fs_own_create {
	int64_t rev;
	int attrs_current; /* nor does the kernel hold attributes the revision changed (ops.c) */
};

/* The state of one mount: what its handlers reach through fuse_req_userdata. */
struct fs_ops {
	struct fs_member *member;   /* proposes; borrowed */
	struct store *store;        /* reads; borrowed, applied to by the member */
	struct fs_itable itable;    /* inode numbers of paths */
	struct fs_ops_options opt;
	uint64_t quota_bytes;       /* for statfs */
	struct fh *open_files;      /* writable open files (ops.c) */
	struct store_watch *watch;  /* every change applied, for invalidating the kernel's caches */
	int barrier_passed;         /* a linearizable read is being served after its barrier */
	struct fs_notifier notifier;
	struct fs_control *control; /* answers for .raftfs/ (borrowed; NULL: no namespace) */
	struct fs_replay *replay;   /* raises inotify events for remote changes (replay.c); may be NULL */
	/*
	 * Revisions of names this member created for the kernel (a created file's first commit,
	 * mkdir, O_EXCL create, symlink), recorded by their proposal's callback, which runs before
	 * fs_ops_after_apply reads their events and empties this: the kernel made those entries
	 * itself, so they need no invalidation (ops.c). When it is full the rest are invalidated.
	 */
	struct fs_own_create own_creates[256];
	size_t n_own_creates;
};

/* The lowlevel operations table; userdata must be a struct fs_ops. */
extern const struct fuse_lowlevel_ops fs_ops_table;

/* Prepares ops over member and store; -ENOMEM. */
int fs_ops_init(struct fs_ops *ops, struct fs_member *member, struct store *store,
		const struct fs_ops_options *opt, uint64_t quota_bytes);

/* Starts invalidating the kernel's caches of se for changes applied from now on. -errno. */
int fs_ops_watch_start(struct fs_ops *ops, struct fuse_session *se);

/*
 * After entries were applied (fs_member_options.on_applied): queues an invalidation of the entry
 * and inode of every path they changed that the kernel may have cached.
 */
void fs_ops_after_apply(struct fs_ops *ops);

/* Stops invalidating (before the session goes) and frees everything. */
void fs_ops_close(struct fs_ops *ops);

#endif
