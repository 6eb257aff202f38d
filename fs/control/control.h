/*
 * control/control.h: what a mount offers beyond its files — leases kept by the leader, the
 * mount's own session lease, automatic compaction, and the control namespace `.raftfs/` at the
 * root through which the `raftfs` CLI operates the cluster.
 *
 * Leases (seeds 000, 002): a lease's expiry is decided by the leader alone, which proposes the
 * revoke; every member deletes the keys attached to it when that revoke is applied, never on its
 * own clock. Keep-alives are proposals too, so every member knows every lease's remaining time; a
 * new leader first extends every lease by its TTL (etcd's Promote). The mount keeps a session lease
 * of its own alive for as long as it runs: a file attached to it (`user.raftfs.lease` set to the id
 * in `.raftfs/session`) is ephemeral, deleted on every member once this member is gone (a
 * ZooKeeper ephemeral node), and at once when it unmounts cleanly.
 *
 * `.raftfs/` (hidden from listings, reachable by name; nothing can be created in it):
 *   status   JSON: member, leader, term, raft indexes, revision, compact revision, members with
 *            roles (and the subject of each one's TLS certificate), whether peer traffic is TLS,
 *            alarms, session lease — made when opened
 *   session  the id of the mount's session lease (empty until granted)
 *   ctl      the command file: a client writes one command as NUL-separated words (the first is
 *            the output format, "table" or "json") and reads the answer from offset 0: a first
 *            line "ok" or "error: MESSAGE", then the body. A watch's body grows as changes are
 *            applied: reads past its end wait for them (and end with an error line when a
 *            compaction overtakes the watch). Commands: status; member list|add NAME=HOST:PORT
 *            [learner]|remove NAME|promote NAME; lease grant TTL|revoke ID|keepalive ID|ttl ID|
 *            list; compact REV; alarm list|disarm; get PATH REV; watch PATH REV PREFIX(0|1);
 *            snapshot (the body is a store image).
 * Commands that change something are proposed through raft like every other write.
 *
 * Everything here runs on the member's loop thread, as the FUSE handlers do.
 */
#ifndef RAFTFS_FS_CONTROL_CONTROL_H
#define RAFTFS_FS_CONTROL_CONTROL_H

#include <stdint.h>
#include <uv.h>

#include "member/member.h"
#include "fuse/face.h"
#include "store.h"

enum fs_compaction_mode {
	FS_COMPACTION_NONE,
	FS_COMPACTION_PERIODIC, /* keep the history of the last retention_ms */
	FS_COMPACTION_REVISION, /* keep the last retention_revs revisions */
};

struct fs_control_options {
	int64_t session_ttl_s;  /* the session lease's TTL; 0: no session lease */
	enum fs_compaction_mode compaction;
	int64_t retention_ms;   /* FS_COMPACTION_PERIODIC */
	int64_t retention_revs; /* FS_COMPACTION_REVISION */
};

struct fs_control_handle;
struct fs_control_call;

struct fs_control {
	uv_loop_t *loop;
	struct fs_member *member;        /* borrowed */
	struct store *store;             /* borrowed */
	const struct fs_member_config *cfg; /* borrowed: names, token */
	/* the inotify replay's backlog and drops for status (replay/: fs_replay_counts); NULL: no
	   replay (-o no_remote_inotify) */
	void (*replay_counts)(void *arg, uint64_t *backlog, uint64_t *dropped);
	void *replay_arg;
	struct fs_control_options opt;
	uv_timer_t timer;                /* leases, session keep-alive, compaction */
	uv_timer_t kick;                 /* answers interrupted reads outside libfuse's locks */
	int timers;                      /* the timers are initialized */
	uint64_t promoted_term;          /* the term this member last promoted leases in */
	int64_t revoking[64];            /* expired leases whose revoke is in flight */
	int n_revoking;
	int64_t session;                 /* the session lease, 0 until granted */
	int session_busy;                /* a grant or keep-alive of it is in flight */
	unsigned session_gen;            /* answers to older attempts are ignored */
	int64_t session_sent_ms;
	int64_t session_renew_ms;        /* when to keep it alive next (monotonic clock) */
	int compacting;                  /* an automatic compaction is in flight */
	int64_t compact_checked_ms;
	struct { int64_t ms, rev; } samples[64]; /* periodic mode: the revision over time */
	int n_samples;
	struct fs_control_handle *handles; /* open files of the namespace */
	struct fs_control_call *calls;   /* proposals in flight for handles (their owners may go) */
	struct fs_control_call *moving;  /* a `member move-leader` waiting for the move, or NULL */
	int64_t move_deadline_ms;        /* when it gives up (monotonic clock) */
	int stopping;
	int finished;                    /* the timers are closing */
	void (*stopped)(void *arg);
	void *stopped_arg;
};

/*
 * Starts the services over member and store on loop (all borrowed, they must outlive c until
 * fs_control_stop's callback). opt is copied. -errno.
 */
int fs_control_start(struct fs_control *c, uv_loop_t *loop, struct fs_member *member,
		     struct store *store, const struct fs_member_config *cfg,
		     const struct fs_control_options *opt);

/* After entries were applied: feeds the watches of `raftfs watch` clients. */
void fs_control_after_apply(struct fs_control *c);

/*
 * Stops: revokes the session lease (so this member's ephemeral files go at once; waits at most the
 * request timeout), answers every waiting read, closes the timers; done(arg) runs on the loop
 * afterwards. Handles still open are freed by fs_control_release or at done.
 */
void fs_control_stop(struct fs_control *c, void (*done)(void *arg), void *arg);

/*
 * Fills ns with the handlers of `.raftfs/` (over c, which must outlive the mount's serving), for
 * the FUSE face's namespace at the root (fuse/face.h, fs_ops.ns).
 */
void fs_control_namespace(struct fs_control *c, struct fs_ops_namespace *ns);

#endif
