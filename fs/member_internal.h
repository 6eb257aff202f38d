/*
 * member_internal.h: a running member, the EtcdServer role: raft + WAL + peer transport on one
 * libuv loop, applying committed requests to a state machine and answering each proposer.
 *
 * The write path (seed 000): fs_member_propose wraps the payload in an envelope with a request id,
 * registers the id in the wait table and proposes it; the loop takes each raft Ready, persists its
 * hard state and entries to the WAL on a worker thread (one fdatasync for the batch: group commit —
 * proposals and messages keep arriving meanwhile and form the next batch), then sends the messages,
 * applies the committed entries in order through the state machine's apply callback, wakes the
 * proposer of each with its result, and advances raft. Every snapshot_count applied entries the
 * state machine's image is saved in a snapshot, the in-memory log compacted (keeping 5,000 entries
 * for slow followers) and old WAL segments and snapshots purged.
 *
 * Restart reads the data dir: newest valid snapshot -> state machine restore -> WAL replay ->
 * raft restart. The applied index travels inside the snapshot, so nothing is applied twice.
 *
 * On disk, under the data dir: lock, member/wal/, member/snap/, raftfs.log (daemonized mounts).
 * Everything here runs on the member's loop thread.
 */
#ifndef RAFTFS_FS_MEMBER_INTERNAL_H
#define RAFTFS_FS_MEMBER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config_internal.h"
#include "error_internal.h"
#include "wait_internal.h"

/* How far committed may run ahead of applied before proposals are refused (seed 000). */
#define FS_MAX_APPLY_BACKLOG 5000
/* Entries the in-memory log keeps behind a snapshot, for slow followers. */
#define FS_SNAPSHOT_CATCHUP_ENTRIES 5000

/* The replicated state machine a member applies committed requests to (the store, in raftfs). */
struct fs_state_machine {
	void *ud; /* passed to every call */
	/*
	 * Applies a committed request. result/result_len (may stay NULL/0) is handed to the
	 * proposer's callback and freed by the member with free(). The return value is the
	 * request's status (0 or a negative error) — a request that fails is still applied, as a
	 * no-op, on every member alike.
	 */
	int (*apply)(void *ud, uint64_t index, const uint8_t *req, size_t len, void **result,
		     size_t *result_len);
	/* An image of the applied state (malloc'd, the member frees it). */
	int (*snapshot)(void *ud, uint8_t **image, size_t *len);
	/* Replaces the state with an image from fs_state_machine.snapshot (borrowed). */
	int (*restore)(void *ud, const uint8_t *image, size_t len);
};

struct fs_member;

struct fs_member_options {
	uint64_t request_timeout_ms; /* a proposal not applied by then fails: 0 means 7000 */
	size_t max_queue_frames;     /* transport's per-peer queue; 0: its default */
	uint64_t catchup_entries;    /* entries kept behind a snapshot; 0: the config's
				      * --snapshot-catchup-entries, else FS_SNAPSHOT_CATCHUP_ENTRIES */
	/*
	 * 0: a snapshot is written by a forked child unless the last one was small (member.c);
	 * 1: always by a forked child (tests of that path).
	 */
	int snapshot_fork;
	/* A committed conf change removed this member: the owner should stop it (may be NULL). */
	void (*on_removed)(void *arg);
	/* Entries were applied (after each batch; may be NULL). */
	void (*on_applied)(void *arg);
	/* A WAL write with fdatasync began: the disk, not the CPU, is what the member waits on
	   next (may be NULL). */
	void (*on_sync)(void *arg);
	void *arg;                   /* for on_removed, on_applied and on_sync */
};

/*
 * Opens (or bootstraps) the member described by cfg on loop: locks the data dir, recovers from it
 * or creates it, starts the transport and the tick. sm is copied; sm.ud must outlive the member.
 * Returns 0 and *out, or a negative error with a log line saying what failed (a data dir in use, a
 * corrupt WAL naming file and offset, an address in use).
 */
int fs_member_start(struct fs_member **out, uv_loop_t *loop, const struct fs_member_config *cfg,
		    const struct fs_member_options *opt, const struct fs_state_machine *sm);

/*
 * `raftfs restore`: makes cfg's data dir (which must not hold a member) the first member of a new
 * cluster of cfg's initial members whose state is image, a state machine image (a store snapshot):
 * a snapshot at the bootstrap's last log index, so every member restored from the same image with
 * the same flags starts equal. Returns 0, -EEXIST, -EINVAL or an I/O error, each logged.
 */
int fs_member_restore(const struct fs_member_config *cfg, const uint8_t *image, size_t len);

/*
 * Proposes req[0..len) (copied). cb(arg, id, status, result, len) runs exactly once on the loop:
 * with the apply result once this member has applied the entry, -ETIMEDOUT after the request
 * timeout (the request may still commit later), FS_ETOOMANYREQUESTS at once when apply lags,
 * FS_ESTOPPING at shutdown. While no leader is known the proposal waits for one (until timeout).
 * Returns 0 or -ENOMEM (cb not called).
 */
int fs_member_propose(struct fs_member *m, const void *req, size_t len, fs_wait_cb cb, void *arg);

/* Membership changes (fs_member_change). */
enum fs_member_change_type {
	FS_MEMBER_ADD_VOTER,   /* add a voter, or promote the learner node_id */
	FS_MEMBER_ADD_LEARNER, /* add a learner: it receives the log, never votes */
	FS_MEMBER_REMOVE,      /* remove a voter or learner */
};

/*
 * Proposes a membership change through raft; name and addr (host:port) say where a new member
 * listens (ignored for FS_MEMBER_REMOVE). cb runs once as for fs_member_propose, with status 0
 * once the change is applied here, or the raft error (RAFT_ECONFPENDING when another change is
 * still pending). Returns 0 (cb will run), -EINVAL for an empty or malformed name or host:port,
 * -EEXIST for a name another member has, or -ENOMEM (cb not called).
 */
int fs_member_change(struct fs_member *m, enum fs_member_change_type type, uint64_t node_id,
		     const char *name, const char *addr, fs_wait_cb cb, void *arg);

/*
 * A linearizable read barrier (ReadIndex): cb(arg, 0, status, NULL, 0) runs once this member has
 * applied everything committed when the call was made, as confirmed by the leader; -ETIMEDOUT
 * otherwise.
 */
int fs_member_read_barrier(struct fs_member *m, fs_wait_cb cb, void *arg);

/* A snapshot of the member's state for status reports. */
struct fs_member_status {
	uint64_t id, cluster_id, leader, term, commit, applied, last_index, snapshot_index;
	int is_leader;
	int n_voters, n_learners;
	uint64_t voters[FS_MAX_MEMBERS], learners[FS_MAX_MEMBERS];
	uint64_t snapshots_sent;      /* snapshot streams this member started to followers */
	uint64_t snapshot_bytes_sent; /* and their bytes */
};

void fs_member_status(struct fs_member *m, struct fs_member_status *st);

/*
 * The members this member knows of (the applied configuration, voters and learners) with their
 * names and peer addresses: writes at most max into out and returns how many it wrote.
 */
int fs_member_peers(struct fs_member *m, struct fs_peer_config *out, int max);

/*
 * Whether everything the data dir held as committed at start has been applied again: a mount is
 * served only after, so a restarted member never shows less than it had.
 */
int fs_member_replayed(struct fs_member *m);

/* Test hook: drop all traffic with peer (a partition), or heal it. */
void fs_member_block_peer(struct fs_member *m, uint64_t peer, int blocked);

/*
 * Stops: hands leadership to the most caught-up voter when this member leads (waiting at most an
 * election timeout), fails the proposals still waiting with FS_ESTOPPING, syncs and closes the
 * WAL, closes every handle. done(arg) runs on the loop once m is freed.
 */
void fs_member_stop(struct fs_member *m, void (*done)(void *arg), void *arg);

#endif
