/*
 * replay_internal.h: remote changes raise inotify events on this member.
 *
 * The kernel raises inotify events only for changes it makes itself; a change another member made
 * reaches this one as an applied raft entry, which the kernel never sees. So a dedicated thread of
 * the daemon (the replay thread) performs each applied remote change again through the mount:
 * open/write/close for a write, open(O_CREAT)/mkdir/symlink for a create, unlink/rmdir, rename,
 * chmod/lchown/utimensat. The kernel raises genuine events for them (IN_CREATE, IN_MODIFY,
 * IN_CLOSE_WRITE, IN_DELETE, IN_MOVED_FROM/TO with one cookie, IN_ATTRIB, with IN_ISDIR), to every
 * watcher, in revision order, as if the change had been made here.
 *
 * The requests of that thread come back to this daemon: the handlers recognise them (the FUSE
 * request's pid is the calling thread's id; files the replay opened carry a handle of their own) and serve them
 * from the already-applied store at the revision being replayed, proposing nothing: the names the
 * change creates, deletes or moves are looked up as they were before it (revision R - 1: the kernel
 * then creates, unlinks, renames), everything else as it was after it (R), or, when not made
 * again since, as everyone sees it now, through the ordinary handlers and cached (the
 * directories on the way). Writes carry no data
 * (the file is opened direct_io, so nothing enters the page cache); the kernel's caches are kept
 * right by the invalidations fs_ops_after_apply queues for every applied change, and a replayed
 * name that changed again after R is invalidated once more after its replay.
 *
 * Which revisions to replay: those not made by a FUSE request of this mount. ops.c reports the
 * revision of every change it proposed and got applied (fs_replay_local) before the batch's
 * events are read, and those are skipped: the kernel already raised their events. A proposal of
 * this member that timed out (the caller got EIO, no event) or a delete by a lease revoke is
 * replayed like a remote change.
 *
 * Bounds: at most FS_REPLAY_QUEUE_MAX changes wait, as many as the kernel queues for one inotify
 * instance by default (fs.inotify.max_queued_events; a quarter of that was outrun by a burst of
 * 64 writers on another member; the environment variable RAFTFS_REPLAY_QUEUE_MAX overrides it,
 * for tests); a change arriving at a full queue is dropped
 * (said once in the log until the queue drains): its caches are still invalidated, only its
 * events are lost. The loop never waits for the replay thread: it only takes the queue's lock for
 * a push, and the current operation's lock, which the replay thread never holds across a syscall.
 * Priority: the thread runs at nice 10. Replays are notifications; when the CPU is short they
 * wait for the writes, raft and the readers (within the bound above) instead of taking a third of
 * it, and catch up after a burst (fs-bench prints how long: fs_replay_catchup_ms_64).
 * When: a replay waits until this member begins a WAL sync (fs_replay_sync, from the member's
 * on_sync), or at most 1 ms after its change was applied. A writer's next change follows the
 * answer to its last one: the replays of the last one, 5 FUSE round trips each on every member
 * that did not write, then took the two CPUs just as the writer's next open, write and proposal
 * needed them. During a sync every member waits on the disk, and the CPUs are free. Under a steady
 * load a sync begins every few hundred microseconds, so replays are not held back; on an idle
 * cluster a remote change's event comes up to 1 ms later than it could (watch-bench measures it:
 * remote_event_p50_us).
 *
 * Where: the thread goes through a detached clone of the mount (open_tree, OPEN_TREE_CLONE), by
 * paths relative to its root. A file it holds open pins the clone, not the mount users see, so an
 * unmount (`raftfs umount`, `fusermount3 -u`) is never refused for it; and after an unmount from
 * outside its paths still name this mount, never the directory underneath. The mount then leaves
 * the daemon's mount table (fs_mount's on_unlisted), fs_replay_halt stops the thread and it closes
 * the clone, so the connection ends once the mount's last user is gone. Without CAP_SYS_ADMIN no
 * clone can be made: the thread goes by the mountpoint's path, as the daemon's other users do.
 * Either way the directory a change happens in is opened with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV), and the change itself never follows a symlink: the
 * thread runs as root, and a name the kernel holds from a later state than the one replayed could
 * be a symlink out of the mount (the replay then fails with ELOOP, said in the log).
 * Stopping: fs_replay_stop asks the thread to stop and lets the loop serve its last syscall
 * until it has left the mount; fs_replay_close joins it once the session is gone.
 *
 * Off: a mount started with -o no_remote_inotify (server.c) starts no replay thread; ops and
 * control then see a NULL replay. The replays are FUSE requests on every member that did not
 * make a change (five for a new file, against six on the writer's member), which is what a
 * cluster nobody watches for other members' changes saves (fs-bench prints writes with and
 * without them, and the FUSE floor of a file and its replays).
 *
 * Not replayed (their caches are invalidated all the same): a snapshot received from the leader
 * (its changes come without history), changes of extended attributes (their keys are outside the
 * path space), a revision of more than 1024 keys (a lease revoking many files: telling its
 * operations apart costs n^2 on the loop), and what was compacted before this member applied it.
 */
#define FS_REPLAY_QUEUE_MAX 16384
#ifndef RAFTFS_FS_REPLAY_INTERNAL_H
#define RAFTFS_FS_REPLAY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "fuse_internal.h"

#include "store.h"
#include <uv.h>

struct stat;


struct fs_ops;
struct fs_replay;

/*
 * Starts replaying remote changes of ops through the mount at mountpoint (an absolute path, copied),
 * which must serve a table from fs_replay_ops_table. On success ops->replay is set (owned by ops,
 * freed by fs_replay_close). -EINVAL for a relative or too long path, -ENOMEM, -EAGAIN.
 */
int fs_replay_start(struct fs_ops *ops, const char *mountpoint);

/* Fills table with fs_ops_table whose handlers also serve the replay thread's requests. */
void fs_replay_ops_table(struct fuse_lowlevel_ops *table);

/* On the loop: revision rev was made by a FUSE request of this mount; it is not replayed. */
void fs_replay_local(struct fs_replay *r, int64_t rev);

/* From any thread: changes waiting for their replay (with the one being replayed) and changes
   dropped at a full queue so far. r may be NULL (no replay: 0 and 0). */
void fs_replay_counts(struct fs_replay *r, uint64_t *backlog, uint64_t *dropped);

/*
 * On the loop, after entries were applied: the applied events (from a watch with
 * STORE_WATCH_PREV_KV, in revision order), borrowed for the call. Whole revisions are queued for
 * the replay thread at fs_replay_flush (once everything applied was fed) or when a later revision
 * starts. The replay keeps the inode table for deletes and renames: the handlers detach or move
 * the inodes when the change is replayed, so a watched directory keeps its inode (and its watch)
 * across a remote rename; a change that is not replayed (made here, or dropped) is detached at
 * once, as fs_ops_after_apply does without a replay.
 */
void fs_replay_feed(struct fs_replay *r, const struct store_event *ev, size_t n);
void fs_replay_flush(struct fs_replay *r);

/* On the loop: this member began a WAL sync; a waiting replay goes now ("When" above). r may be
   NULL. */
void fs_replay_sync(struct fs_replay *r);

/*
 * On the loop, when the mount was unmounted from outside: the thread takes no further change, at
 * once, and lets go of its clone of the mount (so the connection can end). fs_replay_stop must
 * still follow.
 */
void fs_replay_halt(struct fs_replay *r);

/*
 * On the loop, never blocking: no more replays. stopped(arg) runs on loop once the thread has left
 * the mount (the loop goes on serving its last request meanwhile; at most 10 s), or at once without
 * a replay (r NULL). Only then may the caller stop the invalidation thread and close the session:
 * an invalidation waits in the kernel for a directory lock that a replayed mkdir or unlink holds
 * until the loop answers it.
 */
void fs_replay_stop(struct fs_replay *r, uv_loop_t *loop, void (*stopped)(void *arg), void *arg);

/* After the session is gone (a replay syscall then fails at once): joins and frees ops->replay. */
void fs_replay_close(struct fs_ops *ops);

/* Provided by ops.c for the replay's handlers, on the loop. */
int fs__ops_child_path(struct fs_ops *o, uint64_t parent, const char *name, char *buf);
int fs__ops_kv_at(struct fs_ops *o, const char *path, int64_t rev, struct store_kv *kv);
void fs__ops_fill_attr(uint64_t ino, const struct store_kv *kv, struct stat *st);
void fs__ops_entry_timeouts(struct fs_ops *o, uint64_t ino, const struct store_kv *kv,
			    struct fuse_entry_param *e);

#endif
