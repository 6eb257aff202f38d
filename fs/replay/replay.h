/*
 * replay/replay.h: remote changes raise inotify events on this member.
 *
 * The kernel raises inotify events only for changes it makes itself; a change another member made
 * reaches this one as an applied raft entry, which the kernel never sees. So a dedicated thread of
 * the daemon (the replay thread) performs each applied remote change again through the mount:
 * open/write/close for a write, open(O_CREAT)/mkdir/symlink for a create, unlink/rmdir, rename,
 * renameat2(RENAME_EXCHANGE) for an exchange, chmod/lchown/utimensat. The kernel raises genuine
 * events for them (IN_CREATE, IN_MODIFY, IN_CLOSE_WRITE, IN_DELETE, IN_MOVED_FROM/TO with one
 * cookie, two such pairs for an exchange, IN_ATTRIB, with IN_ISDIR), to every watcher, in
 * revision order, as if the change had been made here.
 *
 * The requests of that thread come back to this daemon, and the FUSE face serves them from the
 * already-applied store at the revision being replayed, proposing nothing (fuse/face.h, "Serving a
 * request at a revision"): the replay is the face's replayer (struct fs_ops_replayer), and tells
 * the face which requests are its own (the FUSE request's pid is the thread's id) and at which
 * revision and names to serve them. Writes carry no data (the file is opened direct_io, so nothing
 * enters the page cache); the kernel's caches are kept right by the invalidations
 * fs_ops_after_apply queues for every applied change.
 *
 * Which revisions to replay: those not made by a FUSE request of this mount. The face reports the
 * revision of every change it proposed and got applied (fs_ops_replayer.local) before the batch's
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
 * path space), and what was compacted before this member applied it. A revision of any size is
 * told apart in O(n log n) on the loop: a renamed directory is one rename whatever its tree, two
 * exchanged directories one exchange, a lease revoking more files than the queue holds is
 * dropped at the bound above.
 */
#define FS_REPLAY_QUEUE_MAX 16384
#ifndef RAFTFS_FS_REPLAY_REPLAY_H
#define RAFTFS_FS_REPLAY_REPLAY_H

#include <stdint.h>
#include <uv.h>

#include "fuse/face.h"

struct fs_replay;

/*
 * Starts replaying remote changes of ops through the mount at mountpoint (an absolute path, copied),
 * which must serve ops (borrowed: it must outlive the replay). On success *out is the replay
 * (the caller's, freed by fs_replay_close) and ops->replayer is set: the face then serves the
 * thread's requests at their revision, and feeds it every applied change. Applied events come in
 * revision order; whole revisions are queued for the thread once everything applied was fed or a
 * later revision starts. The replay keeps the inode table for deletes, renames and exchanges: the
 * face detaches or moves the inodes when the change is replayed, so a watched directory keeps its
 * inode (and its watch) across a remote rename or exchange; a change that is not replayed (made
 * here, or dropped) is detached at once (fs_ops_detach), as the face does without a replayer.
 * -EINVAL for a relative or too long path, -ENOMEM, -EAGAIN.
 */
int fs_replay_start(struct fs_replay **out, struct fs_ops *ops, const char *mountpoint);

/* From any thread: changes waiting for their replay (with the one being replayed) and changes
   dropped at a full queue so far. r may be NULL (no replay: 0 and 0). */
void fs_replay_counts(struct fs_replay *r, uint64_t *backlog, uint64_t *dropped);

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

/*
 * After the session is gone (a replay syscall then fails at once): joins the thread, clears the
 * face's replayer and frees r. Nothing when r is NULL.
 */
void fs_replay_close(struct fs_replay *r);

#endif
