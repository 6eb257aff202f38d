/*
 * mount_internal.h: a FUSE session served on the member's libuv loop.
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
#ifndef RAFTFS_FS_MOUNT_INTERNAL_H
#define RAFTFS_FS_MOUNT_INTERNAL_H

#include "fuse_internal.h"
#include <uv.h>

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

#endif
