/*
 * fuse/face.h: the FUSE face, what the rest of the daemon uses of it: libfuse's low-level API at
 * one version, the session served on the loop (fuse/mount.c) and the file system it serves
 * (fuse/ops.c). The inode table (fuse/inode.h) and the invalidation thread (fuse/notify.h) are the
 * face's own.
 */
#ifndef RAFTFS_FS_FUSE_FACE_H
#define RAFTFS_FS_FUSE_FACE_H

/*
 * libfuse's low-level API at the one version fs/ is written against (3.4, as Debian 12's libfuse
 * 3.14 provides it). Every file of fs/ that speaks FUSE includes this header, never
 * <fuse_lowlevel.h> itself, so the version is chosen in one place.
 */
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "fuse/inode.h"
#include "fuse/notify.h"
#include "member/member.h"
#include "store.h"

/*
 * A FUSE session served on the member's libuv loop.
 *
 * The session's /dev/fuse descriptor is non-blocking and polled by the loop; each readiness reads
 * and dispatches the queued requests on the loop's thread, so the handlers reach the store and raft
 * without locks and may answer later (after a commit) from the same thread. A handler must never
 * block: a request served by a thread that itself waits on the mount (the inotify replay thread)
 * would deadlock otherwise.
 *
 * The guard: a daemon whose threads make requests to its own mount (the replay thread) cannot die
 * by itself while one of them is being served. SIGKILL ends the loop's thread, but the kernel waits
 * out a request userspace has read, and the waiting thread keeps the process's descriptors, so
 * the /dev/fuse one, open: the connection never aborts and the request is never answered. So the
 * mount starts a guard process (its own process group, so that a kill of the daemon's group
 * spares it; see fs_mount_guard) that waits for the death of the thread that started it
 * (PR_SET_PDEATHSIG) and then
 * aborts the connection through /sys/fs/fuse/connections/N/abort: every request fails with
 * ENOTCONN, the stuck threads return and the daemon is reaped. A clean close stops it first.
 */

struct fs_mount {
	struct fuse_session *se;  /* the session, NULL before start and after close */
	uv_poll_t poll;           /* readiness of the session fd, on the loop */
	struct fuse_buf buf;      /* the receive buffer, reused */
	char mountpoint[4096];
	int mounted;              /* the kernel mount exists (until unmounted or closed) */
	int polling;              /* poll is initialized and must be closed */
	void (*on_gone)(struct fs_mount *m, void *arg); /* the mount went away under us */
	/* optional, set after fs_mount_start: the mount left this process's mount table (an
	   unmount, also a lazy one, from outside) while its connection lives on, held by its users
	   or the replay's clone of it (replay.c); on_gone follows once the connection ends */
	void (*on_unlisted)(struct fs_mount *m, void *arg);
	void *arg;
	void (*closed)(void *arg); /* from fs_mount_close */
	void *closed_arg;
	long conn;                /* the FUSE connection's number (fusectl), -1 when unknown */
	int guard_pid;            /* the guard process, 0 when none */
	uv_poll_t mounts;         /* /proc/self/mountinfo's changes (POLLPRI), on the loop */
	int mounts_fd;            /* -1 when not watched */
	int closing;              /* handles still closing in fs_mount_close */
};

/*
 * Mounts `mountpoint` with `options` (a -o string for libfuse: "fsname=...,subtype=...", may be
 * NULL) and serves it on loop with ops and userdata (fuse_req_userdata). on_gone(m, arg) runs on
 * the loop when the mount is unmounted by someone else (fusermount3 -u, umount) or the connection
 * is aborted; the caller then calls fs_mount_close. Returns 0, or -EINVAL / -EIO / -ENOMEM with a
 * log line naming the mountpoint.
 */
int fs_mount_start(struct fs_mount *m, uv_loop_t *loop, const char *mountpoint,
		   const char *options, const struct fuse_lowlevel_ops *ops, size_t ops_size,
		   void *userdata, void (*on_gone)(struct fs_mount *m, void *arg), void *arg);

/*
 * Starts the guard for a started mount: exe (the raftfs binary, "/proc/self/exe") run as
 * `exe __guard FD PPID` in a fresh image (a plain fork would share the daemon's pages, the store's,
 * copy-on-write for as long as it lives), holding the connection's fusectl abort file. Mounts
 * fusectl when missing. Returns 0 (also when no guard can run: said in the log) or -errno of fork.
 * fs_mount_close stops it.
 */
int fs_mount_guard(struct fs_mount *m, const char *exe);

/*
 * From /proc/self/mountinfo, never asking the mount: the device minor of the newest mount at real
 * (a canonical path) whose file system type begins with fstype ("fuse", "fuse.raftfs"), or -1.
 */
long fs_mount_find(const char *real, const char *fstype);

/* The guard's program (`raftfs __guard FD PPID`, argv[0] = "__guard"); returns its exit status. */
int fs_mount_guard_main(int argc, char **argv);

/*
 * Stops serving, unmounts if still mounted, and frees the session; closed(arg) runs on the loop
 * once the poll handle has closed. Safe after on_gone.
 */
void fs_mount_close(struct fs_mount *m, void (*closed)(void *arg), void *arg);

/*
 * The file system a mount serves: FUSE lowlevel operations over the member's
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
 *   - rename moves a file, or a directory and everything under it, in one revision: a tree by
 *     one move of its prefix that each member's store applies (a small request whatever its
 *     size), guarded by one compare that no key of it changed since it was seen;
 *   - renameat2(RENAME_EXCHANGE) swaps two names (files, directories, one of each) in one
 *     revision: both names deleted and put again with each other's object, their trees and
 *     attributes swapped by one swap of their prefixes, each side compared as a rename's source.
 *
 * Everything here runs on the member's loop thread (fs/fuse/mount.c serves FUSE there).
 */

#define FS_DEFAULT_MAX_VALUE (1536u * 1024) /* 1.5 MiB, etcd's default request size limit */
#define FS_NAME_MAX_BYTES 255
#define FS_PATH_MAX_BYTES 4096

struct fs_ops_options {
	size_t max_value_bytes; /* larger files are EFBIG; 0: FS_DEFAULT_MAX_VALUE */
	int linearizable;       /* reads wait for a ReadIndex barrier first */
	/* the mount's absolute path as its users name it (copied; NULL: unknown): tells a close
	   that is not a process's last apart (ops.c, caller_holds_another) */
	const char *mountpoint;
};

struct fh;
struct fs_subdirs;

/*
 * A namespace at the root that the face forwards instead of serving it from the store: the name
 * FS_OPS_NS_NAME at the root and the inodes FS_OPS_NS_INO .. + FS_OPS_NS_INOS - 1 (the control
 * namespace `.raftfs/`, control/). The name is reserved whether or not a namespace is set: it is
 * hidden from listings, and nothing can be made, removed or renamed there. Each handler answers req.
 */
#define FS_OPS_NS_NAME ".raftfs"
#define FS_OPS_NS_INO (UINT64_C(1) << 62) /* far above any inode number the table hands out */
#define FS_OPS_NS_INOS 16

struct fs_ops_namespace {
	void *arg; /* the namespace's own, passed to every handler */
	/* (parent, name): the root's FS_OPS_NS_NAME, or a name in the namespace */
	void (*lookup)(void *arg, fuse_req_t req, uint64_t parent, const char *name);
	void (*getattr)(void *arg, fuse_req_t req, uint64_t ino);
	void (*readdir)(void *arg, fuse_req_t req, uint64_t ino, size_t size, off_t off);
	void (*open)(void *arg, fuse_req_t req, uint64_t ino, struct fuse_file_info *fi);
	void (*read)(void *arg, fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi);
	void (*write)(void *arg, fuse_req_t req, const char *buf, size_t size, off_t off,
		      struct fuse_file_info *fi);
	void (*release)(void *arg, fuse_req_t req, struct fuse_file_info *fi);
};

/* Whether ino is one of the namespace's inodes. */
static inline int fs_ops_ns_ino(uint64_t ino)
{
	return ino >= FS_OPS_NS_INO && ino < FS_OPS_NS_INO + FS_OPS_NS_INOS;
}

/*
 * Serving a request at a revision, for the inotify replay (replay/): it performs each applied
 * change again through the mount so that the kernel raises the change's events, and its requests
 * must be answered from the store as the change left it, proposing nothing. Every handler that
 * such a request reaches first asks the replayer whether the request is its own (serve_at); if so,
 * the face answers it from the store (fuse/at.c), at the revisions in struct fs_ops_at:
 *   - the names the change makes, removes or moves (path, path2) as they were before the change
 *     (first - 1), so the kernel goes on to create, unlink or rename them;
 *   - every other name as the change left it (rev), or, when unchanged since, through the
 *     ordinary handler as everyone sees it now (cached: the directories on the way);
 *   - files it opens get a handle of their own: their writes are dropped, nothing is committed;
 *   - a replayed unlink, rename or exchange detaches or moves the inodes as the store did then.
 * A name that changed again since is invalidated once more after its replayed request.
 */
struct fs_ops_at {
	int64_t rev;   /* the revision the change leaves; 0 between changes: as it is now */
	int64_t first; /* the revision it starts from: rev, but for a write merged into a create */
	char path[FS_PATH_MAX_BYTES + 1];  /* the name the change makes, removes or moves, or "" */
	char path2[FS_PATH_MAX_BYTES + 1]; /* a rename's target, an exchange's other name, or "" */
};

/* What fs_ops_replayer.serve_at says of a request. */
enum fs_ops_at_answer {
	FS_OPS_AT_NOT_MINE, /* anyone else's: served as usual */
	FS_OPS_AT_SERVE,    /* the replayer's: served at *at */
	FS_OPS_AT_TAKEN,    /* the replayer keeps req and answers it itself (a test hook) */
};

/* Whoever replays applied changes through the mount (replay/); every member NULL when none. */
struct fs_ops_replayer {
	void *arg; /* the replayer's own, passed to each call */
	/* On the loop, from a handler of op ("lookup", "create", ...): an enum fs_ops_at_answer. */
	int (*serve_at)(void *arg, fuse_req_t req, const char *op, struct fs_ops_at *at);
	/* On the loop: revision rev was made by a request of this mount (the kernel raised its
	   events), reported before fs_ops_after_apply feeds it. */
	void (*local)(void *arg, int64_t rev);
	/* On the loop, from fs_ops_after_apply: the applied events in revision order (borrowed for
	   the call, with their previous values), then flush once everything applied was fed. */
	void (*feed)(void *arg, const struct store_event *ev, size_t n);
	void (*flush)(void *arg);
};

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
	char mountpoint[FS_PATH_MAX_BYTES + 1]; /* opt.mountpoint's copy ("" when unknown) */
	uint64_t quota_bytes;       /* for statfs */
	struct fh *open_files;      /* writable open files (ops.c) */
	struct store_watch *watch;  /* every change applied, for invalidating the kernel's caches */
	int barrier_passed;         /* a linearizable read is being served after its barrier */
	struct fs_notifier notifier;
	struct fs_subdirs *subdirs; /* each directory's subdirectories, for st_nlink (subdirs.c) */
	struct fs_ops_namespace ns; /* answers for .raftfs/ (all NULL: no namespace) */
	struct fs_ops_replayer replayer; /* raises inotify events for remote changes (all NULL: none) */
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

/*
 * For a replayer that will not replay a deleted path (nobody watches, its queue is full): the
 * inode that named path, deleted at rev, is detached now, as without a replayer.
 */
void fs_ops_detach(struct fs_ops *ops, const char *path, int64_t rev);

/* Stops invalidating (before the session goes) and frees everything. */
void fs_ops_close(struct fs_ops *ops);

#endif
