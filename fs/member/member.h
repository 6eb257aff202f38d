/*
 * member/member.h: what the member offers the rest of the daemon: its configuration (member/
 * config.c), the running member (member/member.c) and the store as its replicated state machine
 * (member/kv.c). The wait table (member/wait.h) and the transport (member/transport.h) are the
 * member's own.
 */
#ifndef RAFTFS_FS_MEMBER_MEMBER_H
#define RAFTFS_FS_MEMBER_MEMBER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "common/common.h"
#include "rpc.pb-c.h"
#include "store.h"

/*
 * A member's configuration, from the bootstrap flags in etcd's words
 * (--name, --data-dir, --listen-peer, --initial-cluster, --initial-cluster-state,
 * --initial-cluster-token, timings, peer TLS), and the deterministic member and cluster ids
 * derived from them.
 */

#define FS_MAX_MEMBERS 64
#define FS_NAME_MAX 63
#define FS_ADDR_MAX 63

/* One member of --initial-cluster. */
struct fs_peer_config {
	char name[FS_NAME_MAX + 1]; /* the member's --name */
	char addr[FS_ADDR_MAX + 1]; /* its peer address, host:port */
	uint64_t id;                /* fs_member_id(token, name, addr) */
};

struct fs_member_config {
	char name[FS_NAME_MAX + 1];     /* --name (default "default") */
	char data_dir[4096];            /* --data-dir (default /var/lib/raftfs/NAME) */
	char listen_peer[FS_ADDR_MAX + 1]; /* --listen-peer host:port (default: this member's
					    * address in --initial-cluster) */
	char token[FS_NAME_MAX + 1];    /* --initial-cluster-token (default "raftfs-cluster") */
	int existing;                   /* --initial-cluster-state existing (else new) */
	struct fs_peer_config peers[FS_MAX_MEMBERS]; /* --initial-cluster, in the order given */
	int n_peers;
	unsigned heartbeat_ms;          /* --heartbeat-interval (100) */
	unsigned election_ms;           /* --election-timeout (1000) */
	uint64_t snapshot_count;        /* --snapshot-count (10000) */
	uint64_t snapshot_catchup_entries; /* --snapshot-catchup-entries (5000): log entries kept
					    * behind a snapshot for slow followers */
	char log_level[16];             /* --log-level (info) */
	/* peer TLS (member/transport.h says what each does); "" when not given */
	char peer_cert[4096];           /* --peer-cert-file */
	char peer_key[4096];            /* --peer-key-file */
	char peer_ca[4096];             /* --peer-trusted-ca-file */
	char peer_allowed_cn[256];      /* --peer-cert-allowed-cn */
	int peer_client_cert_auth;      /* --peer-client-cert-auth: -1 unset (on with a CA), 0, 1 */
	int peer_auto_tls;              /* --peer-auto-tls: a self-signed pair in DATA_DIR/fixtures/peer */
	uint64_t self_id;               /* this member's id, derived */
	uint64_t cluster_id;            /* the cluster's id, derived */
};

/* Fills cfg with the defaults above; no peers. */
void fs_config_defaults(struct fs_member_config *cfg);

/*
 * Applies one flag (with its value) to cfg. The boolean flags (--peer-auto-tls,
 * --peer-client-cert-auth) take "true" or "false"; fs_config_flag_is_bool names them. Returns 1 when the flag was a member flag and consumed
 * its value, 0 when it is not a member flag, -EINVAL with a one-line message on err for a bad
 * value. Call fs_config_finish after the last flag.
 */
int fs_config_flag(struct fs_member_config *cfg, const char *flag, const char *value, FILE *err);

/* Whether flag is a boolean member flag, which may be given without a value (meaning true). */
int fs_config_flag_is_bool(const char *flag);

/*
 * Checks the flags together and derives ids: this member must be in --initial-cluster (a
 * one-member cluster of NAME at --listen-peer, default 127.0.0.1:2380, when the flag is absent);
 * names and addresses unique; peer TLS files given in pairs, the key readable by its owner only.
 * -EINVAL with a message on err otherwise.
 */
int fs_config_finish(struct fs_member_config *cfg, FILE *err);

/* Parses "n1=host:port,n2=host:port" into peers; -EINVAL with a message on err. */
int fs_config_parse_cluster(const char *s, struct fs_peer_config *peers, int max, int *n,
			    FILE *err);

/* The member id of (token, name, addr): stable across runs and machines, never 0. */
uint64_t fs_member_id(const char *token, const char *name, const char *addr);

/* The cluster id of a token and a set of member ids (any order): never 0. */
uint64_t fs_cluster_id(const char *token, const uint64_t *ids, int n);

/*
 * A running member, the EtcdServer role: raft + WAL + peer transport on one
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

/*
 * Called exactly once per proposal, read barrier or registration of the wait table (member/wait.h): with the apply result (status 0 or a negative error,
 * result bytes valid only during the call), with -ETIMEDOUT at the deadline, or with the error
 * the member fails its waiters with (FS_ESTOPPING at shutdown).
 */
typedef void (*fs_wait_cb)(void *arg, uint64_t id, int status, const void *result, size_t len);

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

/*
 * As fs_member_propose, for a request the caller encodes in place: encode(src, buf) writes exactly
 * len bytes of it into the member's own buffer (during the call), which saves a buffer and a copy
 * of the request (fs_kv_propose encodes a state machine request this way).
 */
int fs_member_propose_encoded(struct fs_member *m, size_t len,
			      void (*encode)(const void *src, uint8_t *buf), const void *src,
			      fs_wait_cb cb, void *arg);

/*
 * Asks raft to hand leadership to the voter `to` (etcd's MoveLeader): on the leader at once, on
 * a follower by forwarding the request to the leader. The move itself shows in fs_member_status
 * (the leader becomes `to`, within an election timeout, or the request lapses). Returns 0 when
 * asked; -ENOENT when `to` is not a voter of the cluster, -EALREADY when it leads already,
 * -EAGAIN when no leader is known (an election is under way), FS_ESTOPPING.
 */
int fs_member_transfer_leader(struct fs_member *m, uint64_t to);

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
	int joining;                  /* started on an empty data dir to join a running cluster */
};

void fs_member_status(struct fs_member *m, struct fs_member_status *st);

/*
 * The members this member knows of (the applied configuration, voters and learners) with their
 * names and peer addresses: writes at most max into out and returns how many it wrote.
 */
int fs_member_peers(struct fs_member *m, struct fs_peer_config *out, int max);

/*
 * Whether the member holds what it must before it serves: everything its data dir held as
 * committed at start, applied again (so a restarted member never shows less than it had); and,
 * for a member that joins a running cluster from an empty data dir, everything the leader had
 * committed when it first heard from it (so a new member never shows an empty or old tree, nor
 * one older than what a removed member of its name showed).
 */
int fs_member_replayed(struct fs_member *m);

/* What peer traffic is ("plaintext", "TLS 1.3, ..."): a static string. */
const char *fs_member_peer_security(struct fs_member *m);

/*
 * The subject of the TLS certificate peer `id` presented on an open connection, into
 * buf[0..cap): 0, -ENOTCONN when no connection with it is open, -ENOTSUP without TLS.
 */
int fs_member_peer_subject(struct fs_member *m, uint64_t id, char *buf, size_t cap);

/*
 * Re-reads the peer TLS certificate, key and CA files (on SIGHUP): new connections use them.
 * 0, -EINVAL (logged; the old ones stay), -ENOTSUP without TLS.
 */
int fs_member_reload_tls(struct fs_member *m);

/* Test hook: drop all traffic with peer (a partition), or heal it. */
void fs_member_block_peer(struct fs_member *m, uint64_t peer, int blocked);

/*
 * Stops: hands leadership to the most caught-up voter when this member leads (waiting at most an
 * election timeout), fails the proposals still waiting with FS_ESTOPPING, syncs and closes the
 * WAL, closes every handle. done(arg) runs on the loop once m is freed.
 */
void fs_member_stop(struct fs_member *m, void (*done)(void *arg), void *arg);

/*
 * The store as a member's replicated state machine.
 *
 * Requests are rpc.Request protobufs (fs/member/rpc.proto): put, delete range, txn, compaction, lease
 * grant and revoke, alarm. Applying one runs it against the store in one revision and answers the
 * proposer with an rpc.Response and a status (0, or a STORE_E* code / negative errno that leaves the
 * store unchanged). Applying is deterministic: lease times come from the request's time_ns, set by
 * the proposer, never from this member's clock. The store image in snapshots is the store's own
 * zstd stream.
 *
 * Consistency check (etcd's corruption check): the leader periodically proposes the hash of its
 * store at a revision; every member applying it compares its own hash at that revision and reports
 * a mismatch through on_mismatch, whose owner proposes a CORRUPT alarm. The alarm is a key outside
 * the path space ("\x01alarm\0corrupt"), so it is replicated, kept in snapshots, and makes every
 * member refuse writes (FS_KV_ECORRUPT) until it is deactivated.
 */

/* The state machine's context. */
struct fs_kv {
	struct store *store; /* applied to; borrowed */
	/* this member's hash at rev differs from the one a member computed (may be NULL) */
	void (*on_mismatch)(void *arg, int64_t rev, uint64_t mine, uint64_t theirs,
			    uint64_t their_member);
	void *arg;
};

/* Fills sm to apply through kv (borrowed: it must outlive the member). */
void fs_kv_state_machine(struct fs_kv *kv, struct fs_state_machine *sm);

/* Whether the CORRUPT alarm is raised, and by which member (*member may be NULL). */
int fs_kv_corrupt(struct store *s, uint64_t *member);

/*
 * Encodes req into a malloc'd buffer for fs_member_propose; *len gets its size. NULL on ENOMEM.
 */
uint8_t *fs_kv_encode(const Rpc__Request *req, size_t *len);

/* Proposes req through m, encoded once, into the member's own buffer: fs_member_propose's
   contract (cb and the return value). */
int fs_kv_propose(struct fs_member *m, const Rpc__Request *req, fs_wait_cb cb, void *arg);

/*
 * Decodes an answer's result bytes (possibly none) into *resp (zeroed first). -EINVAL when they do
 * not decode.
 */
int fs_kv_decode_response(const void *buf, size_t len, Rpc__Response *resp);

#endif
