/*
 * raft.h: the public interface of raftfs's consensus core.
 *
 * The core is a pure state machine in the shape of the etcd raft library: no sockets, no clocks, no
 * files and no global state. Its randomness comes from a seed in its config. Functions return 0 or
 * a negative error: a negative errno value, or one of the RAFT_E* codes below.
 *
 * The canonical loop of the application (one thread owns a struct raft):
 *
 *   raft_tick() every tick; raft_step() for every message from a peer;
 *   if (raft_has_ready(r)) {
 *       raft_ready(r, &rd);
 *       persist rd.hard_state (if set), rd.entries and rd.snapshot  -- BEFORE sending
 *       send rd.messages                                            -- AFTER persisting
 *       apply rd.committed_entries (raft_apply_conf_change for conf entries)
 *       raft_advance(r, &rd);
 *   }
 *
 * Everything a Ready points at is owned by the core and stays valid until raft_advance(). Only one
 * Ready is outstanding at a time. Between raft_ready() and raft_advance() the application may go on
 * calling raft_step/tick/propose (say, while an fsync runs off-loop) and must call
 * raft_apply_conf_change for the conf changes it applies; what those produce comes in the next Ready.
 */
#ifndef RAFTFS_RAFT_H
#define RAFTFS_RAFT_H

#include <stddef.h>
#include <stdint.h>

/* Errors of the core, all negative and outside the errno range. */
enum {
	RAFT_EPROPOSALDROPPED = -1001, /* no leader known, or leadership moving: retry later */
	RAFT_ECOMPACTED = -1002,       /* the requested index was compacted away */
	RAFT_EUNAVAILABLE = -1003,     /* the requested entries are not available yet */
	RAFT_ESNAPOUTOFDATE = -1004,   /* a snapshot older than the one held */
	RAFT_ECONFPENDING = -1005,     /* a configuration change is already pending */
	RAFT_EINVAL = -1006,           /* a malformed message, config or argument */
	RAFT_ESNAPTEMPUNAVAILABLE = -1007, /* storage cannot produce a snapshot right now */
};

/* Returns a static, human-readable description of err (a RAFT_E* code or a negative errno). */
const char *raft_strerror(int err);

/* The most members (voters plus learners) a configuration holds. */
#define RAFT_MAX_MEMBERS 32

/* id 0 means "nobody" everywhere (no vote, no leader). */
#define RAFT_NONE 0

enum raft_entry_type {
	RAFT_ENTRY_NORMAL = 0,
	RAFT_ENTRY_CONF_CHANGE = 1, /* data is an encoded raft_conf_change (raft_conf_change_encode) */
};

/* One log entry. Who owns data is said wherever an entry is handed over. */
struct raft_entry {
	uint64_t term;  /* term of the leader that created it */
	uint64_t index; /* position in the log, from 1 */
	int type;       /* enum raft_entry_type */
	uint8_t *data;  /* payload, len bytes (may be NULL when len is 0) */
	size_t len;
};

/* What must be on stable storage before any message is sent. */
struct raft_hard_state {
	uint64_t term;   /* current term */
	uint64_t vote;   /* candidate voted for in term, or RAFT_NONE */
	uint64_t commit; /* highest index known committed */
};

/* The membership: voters count for quorum, learners only receive the log (ids ascending when the
 * core fills it). */
struct raft_conf_state {
	uint64_t voters[RAFT_MAX_MEMBERS];
	size_t n_voters;
	uint64_t learners[RAFT_MAX_MEMBERS];
	size_t n_learners;
};

/*
 * Whether id is a voter or a learner of cs (borrowed). A follower restores a snapshot only when
 * its membership names the follower: the one rule, for callers that check a snapshot before it
 * reaches raft_step.
 */
int raft_conf_has(const struct raft_conf_state *cs, uint64_t id);

struct raft_snapshot_meta {
	uint64_t index; /* last index the snapshot covers (0: no snapshot) */
	uint64_t term;  /* term of that entry */
	struct raft_conf_state conf;
};

/* A point-in-time image of the application state machine. */
struct raft_snapshot {
	struct raft_snapshot_meta meta;
	uint8_t *data; /* application bytes, len long */
	size_t len;
};

enum raft_message_type {
	RAFT_MSG_HUP = 0,
	RAFT_MSG_BEAT = 1,
	RAFT_MSG_PROP = 2,
	RAFT_MSG_APP = 3,
	RAFT_MSG_APP_RESP = 4,
	RAFT_MSG_VOTE = 5,
	RAFT_MSG_VOTE_RESP = 6,
	RAFT_MSG_SNAP = 7,
	RAFT_MSG_HEARTBEAT = 8,
	RAFT_MSG_HEARTBEAT_RESP = 9,
	RAFT_MSG_UNREACHABLE = 10,
	RAFT_MSG_SNAP_STATUS = 11,
	RAFT_MSG_CHECK_QUORUM = 12,
	RAFT_MSG_TRANSFER_LEADER = 13,
	RAFT_MSG_TIMEOUT_NOW = 14,
	RAFT_MSG_READ_INDEX = 15,
	RAFT_MSG_READ_INDEX_RESP = 16,
	RAFT_MSG_PRE_VOTE = 17,
	RAFT_MSG_PRE_VOTE_RESP = 18,
	RAFT_MSG_TYPE_COUNT
};

/* Returns the name of a message type ("MsgApp"...), or "MsgUnknown". */
const char *raft_message_type_name(int type);

/* A message between members; same fields as raftpb.Message. */
struct raft_message {
	int type; /* enum raft_message_type */
	uint64_t to, from, term;
	uint64_t log_term, index;
	struct raft_entry *entries;
	size_t n_entries;
	uint64_t commit;
	int has_snapshot;
	struct raft_snapshot snapshot; /* meaningful when has_snapshot (MsgSnap) */
	int reject;
	uint64_t reject_hint;
	uint8_t *context;
	size_t context_len;
};

enum raft_conf_change_type {
	RAFT_CONF_ADD_NODE = 0,
	RAFT_CONF_REMOVE_NODE = 1,
	RAFT_CONF_UPDATE_NODE = 2,
	RAFT_CONF_ADD_LEARNER_NODE = 3, /* adds a learner; never demotes a voter */
};

/* A single membership change. Adding a voter that is a learner promotes it. */
struct raft_conf_change {
	int type; /* enum raft_conf_change_type */
	uint64_t node_id;
	uint64_t id;       /* application's request id, carried along */
	uint8_t *context;  /* application bytes (an address, say), context_len long */
	size_t context_len;
};

/*
 * Storage: how the core reads the stable log, hard state and snapshot. The application implements it
 * (or uses raft_memory_storage). Every returned pointer is borrowed: valid until the storage is next
 * modified; the core copies what it keeps.
 */
struct raft_storage {
	void *data; /* passed to every call */
	/* The persisted hard state and membership. */
	int (*initial_state)(void *data, struct raft_hard_state *hs, struct raft_conf_state *cs);
	/*
	 * Entries [lo, hi), at most max_bytes of payload but always at least one: sets *ents to an array
	 * of *n consecutive entries. RAFT_ECOMPACTED if lo is compacted, RAFT_EUNAVAILABLE if past the end.
	 */
	int (*entries)(void *data, uint64_t lo, uint64_t hi, uint64_t max_bytes,
		       const struct raft_entry **ents, size_t *n);
	/* Term of entry i (i in [first_index-1, last_index]); RAFT_ECOMPACTED / RAFT_EUNAVAILABLE. */
	int (*term)(void *data, uint64_t i, uint64_t *term);
	int (*first_index)(void *data, uint64_t *index);
	int (*last_index)(void *data, uint64_t *index);
	/* The newest snapshot (borrowed) or RAFT_ESNAPTEMPUNAVAILABLE. */
	int (*snapshot)(void *data, const struct raft_snapshot **snap);
};

/* In-memory storage, the model for the WAL-backed one. Owns copies of everything given to it. */
struct raft_memory_storage;

/* Allocates an empty memory storage (a dummy entry at index 0, term 0). NULL on ENOMEM. */
struct raft_memory_storage *raft_memory_storage_new(void);
/* Frees ms and everything it holds. */
void raft_memory_storage_free(struct raft_memory_storage *ms);
/* Fills st with function pointers working on ms; st stays valid as long as ms. */
void raft_memory_storage_bind(struct raft_memory_storage *ms, struct raft_storage *st);
/* Copies hs in. */
int raft_memory_storage_set_hard_state(struct raft_memory_storage *ms,
				       const struct raft_hard_state *hs);
/* Sets the membership reported by initial_state (used to bootstrap a fresh cluster). */
int raft_memory_storage_set_conf_state(struct raft_memory_storage *ms,
				       const struct raft_conf_state *cs);
/*
 * Bootstraps a fresh member of a new cluster whose voters are cs->voters (learners cs->learners): the
 * log gets one committed RAFT_CONF_ADD_NODE (or ADD_LEARNER_NODE) entry per member at term 1, so a
 * member that joins later learns the whole membership from the log or a snapshot. Members joining
 * an existing cluster start from an empty storage instead. RAFT_EINVAL if ms is not empty.
 */
int raft_memory_storage_bootstrap(struct raft_memory_storage *ms, const struct raft_conf_state *cs);
/*
 * Appends copies of ents (consecutive), truncating any conflicting suffix. Entries at or below the
 * first index are ignored. RAFT_EINVAL when they would leave a gap.
 */
int raft_memory_storage_append(struct raft_memory_storage *ms, const struct raft_entry *ents,
			       size_t n);
/* Discards entries before compact_index (it must be <= last index). */
int raft_memory_storage_compact(struct raft_memory_storage *ms, uint64_t compact_index);
/* Replaces everything with a copy of snap; RAFT_ESNAPOUTOFDATE if older than the one held. */
int raft_memory_storage_apply_snapshot(struct raft_memory_storage *ms,
				       const struct raft_snapshot *snap);
/*
 * Records a snapshot at index i (<= last index) with conf cs (may be NULL: keep) and a copy of data.
 * RAFT_ESNAPOUTOFDATE if i is not newer than the current snapshot.
 */
int raft_memory_storage_create_snapshot(struct raft_memory_storage *ms, uint64_t i,
					const struct raft_conf_state *cs, const uint8_t *data,
					size_t len);
/*
 * As create_snapshot, but ms takes data itself (malloc'd; freed by ms) instead of a copy: a big
 * image is not copied again. On an error data stays the caller's. data NULL: the data is not in
 * memory (it is in a file, say); the loader reads it the first time raft asks for the snapshot.
 */
int raft_memory_storage_adopt_snapshot(struct raft_memory_storage *ms, uint64_t i,
				       const struct raft_conf_state *cs, uint8_t *data, size_t len);
/*
 * Reads the data of the snapshot described by meta into *data (malloc'd, taken by the storage)
 * and *len; non-zero when it cannot now, and the storage tells raft the snapshot is temporarily
 * unavailable (raft asks again when it next needs it).
 */
typedef int (*raft_snapshot_load_fn)(void *arg, const struct raft_snapshot_meta *meta,
				     uint8_t **data, size_t *len);
/* Sets the loader of snapshots adopted without data (none by default: they are unavailable). */
void raft_memory_storage_set_loader(struct raft_memory_storage *ms, raft_snapshot_load_fn load,
				    void *arg);

struct raft_config {
	uint64_t id;                /* this member's id, never 0 */
	int election_tick;          /* ticks without leader contact before campaigning (> heartbeat) */
	int heartbeat_tick;         /* ticks between heartbeats of a leader */
	uint64_t applied;           /* last applied index on restart (0: none) */
	uint64_t max_size_per_msg;  /* payload bytes per append message (0: one entry per message) */
	uint64_t max_committed_size_per_ready; /* 0: unlimited */
	size_t max_inflight_msgs;   /* append messages in flight per follower in replicate state */
	int check_quorum;           /* leader steps down without quorum contact for election_tick */
	int pre_vote;               /* run a PreVote round before a real election */
	uint64_t seed;              /* randomness (election timeouts) */
	int disable_proposal_forwarding; /* refuse proposals on followers instead of forwarding */
	/*
	 * Optional: where the core says what its caller's log should show, one line each (a
	 * RAFT_LOG_* level and the formatted message, valid only during the call): a snapshot it
	 * refused, say. NULL: nothing is said.
	 */
	void (*logger)(void *arg, int level, const char *msg);
	void *logger_arg;
};

/* Levels of raft_config.logger's lines. */
enum raft_log_level {
	RAFT_LOG_DEBUG = 0,
	RAFT_LOG_INFO = 1,
	RAFT_LOG_WARN = 2,
	RAFT_LOG_ERROR = 3,
};

enum raft_state {
	RAFT_FOLLOWER = 0,
	RAFT_CANDIDATE = 1,
	RAFT_LEADER = 2,
	RAFT_PRE_CANDIDATE = 3,
};

const char *raft_state_name(int state);

struct raft_soft_state {
	uint64_t lead; /* the leader known, or RAFT_NONE */
	int state;     /* enum raft_state */
};

/* The answer to a read_index request: reads at or after index applied are linearizable. */
struct raft_read_state {
	uint64_t index;
	uint8_t *context; /* copy of the ctx given to raft_read_index */
	size_t context_len;
};

/* What the application must do next. All pointers valid until raft_advance(). */
struct raft_ready {
	int has_soft_state;
	struct raft_soft_state soft_state;
	int has_hard_state;
	struct raft_hard_state hard_state; /* persist before sending messages */
	struct raft_entry *entries;        /* persist (append) before sending messages */
	size_t n_entries;
	int has_snapshot;
	struct raft_snapshot snapshot;     /* persist (apply) before sending messages */
	struct raft_entry *committed_entries; /* apply in order */
	size_t n_committed_entries;
	struct raft_message *messages;     /* send after persisting */
	size_t n_messages;
	struct raft_read_state *read_states;
	size_t n_read_states;
	int must_sync; /* the hard state or entries must be fsynced before sending */
};

enum raft_progress_state {
	RAFT_PROGRESS_PROBE = 0,
	RAFT_PROGRESS_REPLICATE = 1,
	RAFT_PROGRESS_SNAPSHOT = 2,
};

struct raft_status_progress {
	uint64_t id, match, next;
	int state; /* enum raft_progress_state */
	int is_learner;
	int recent_active;
};

struct raft_status {
	uint64_t id;
	struct raft_hard_state hard_state;
	struct raft_soft_state soft_state;
	uint64_t applied;
	uint64_t last_index;
	uint64_t lead_transferee;
	struct raft_conf_state conf;
	size_t n_progress; /* filled on the leader only */
	struct raft_status_progress progress[RAFT_MAX_MEMBERS];
};

struct raft;

/*
 * Creates a member on storage (borrowed: it must outlive the raft). A fresh member takes its
 * membership from the storage's conf state (bootstrap it with raft_memory_storage_set_conf_state or
 * a snapshot); a restarted one takes hard state, membership and log from storage. *out is owned by
 * the caller (raft_free).
 */
int raft_new(const struct raft_config *cfg, const struct raft_storage *storage, struct raft **out);
void raft_free(struct raft *r);

/* One logical clock tick. */
void raft_tick(struct raft *r);
/* Starts an election now (as after an election timeout). */
int raft_campaign(struct raft *r);
/*
 * Feeds a message from a peer (or a local one such as MsgHup). m is borrowed: the core copies what it
 * keeps. Malformed or stale messages are ignored (RAFT_EINVAL for those it can tell are malformed).
 */
int raft_step(struct raft *r, const struct raft_message *m);
/* Proposes data (copied) to be appended; RAFT_EPROPOSALDROPPED when no leader is known. */
int raft_propose(struct raft *r, const uint8_t *data, size_t len);
/* Proposes a membership change; RAFT_ECONFPENDING when one is still pending (checked on leader). */
int raft_propose_conf_change(struct raft *r, const struct raft_conf_change *cc);
/* Applies a committed conf change; fills *cs (may be NULL) with the resulting membership. */
int raft_apply_conf_change(struct raft *r, const struct raft_conf_change *cc,
			   struct raft_conf_state *cs);
/* Requests a linearizable read; ctx (copied) comes back in a read state of a later Ready. */
int raft_read_index(struct raft *r, const uint8_t *ctx, size_t len);
/* Asks the leader to hand leadership to member to. */
int raft_transfer_leader(struct raft *r, uint64_t to);
/* The transport could not reach id: the leader stops streaming to it for now. */
void raft_report_unreachable(struct raft *r, uint64_t id);
/* The snapshot sent to id was applied (ok) or failed. */
void raft_report_snapshot(struct raft *r, uint64_t id, int ok);

int raft_has_ready(struct raft *r);
/*
 * Fills rd; everything it points to is owned by r and valid until raft_advance(r, rd). RAFT_EINVAL
 * while a previous Ready has not been advanced.
 */
int raft_ready(struct raft *r, struct raft_ready *rd);
/* Tells the core rd was persisted, sent and applied; frees rd's buffers. */
void raft_advance(struct raft *r, struct raft_ready *rd);
/* Fills *st (caller's memory). */
void raft_status(struct raft *r, struct raft_status *st);

/*
 * The hard state alone (term, vote, commit index), for a caller on a hot path: a proposal reads
 * the commit index, where raft_status would also fill the membership and every follower's
 * progress.
 */
void raft_hard_state(struct raft *r, struct raft_hard_state *hs);

/* Codec between native types and raftpb protobuf bytes (for the WAL and the peer transport). */

/* Returns the encoded size of m. */
size_t raft_message_encoded_size(const struct raft_message *m);
/* Encodes m into buf (at least raft_message_encoded_size(m) bytes); returns the length. */
size_t raft_message_encode(const struct raft_message *m, uint8_t *buf);
/*
 * Decodes len bytes into *m. Everything *m points to lives in one allocation that the caller frees
 * with raft_message_free_decoded(m). RAFT_EINVAL on malformed input, -ENOMEM.
 */
int raft_message_decode(const uint8_t *buf, size_t len, struct raft_message *m);
void raft_message_free_decoded(struct raft_message *m);

size_t raft_entry_encoded_size(const struct raft_entry *e);
size_t raft_entry_encode(const struct raft_entry *e, uint8_t *buf);
/* Decodes an entry; e->data is a malloc'd copy the caller frees (free(e->data)). */
int raft_entry_decode(const uint8_t *buf, size_t len, struct raft_entry *e);

size_t raft_hard_state_encoded_size(const struct raft_hard_state *hs);
size_t raft_hard_state_encode(const struct raft_hard_state *hs, uint8_t *buf);
int raft_hard_state_decode(const uint8_t *buf, size_t len, struct raft_hard_state *hs);

size_t raft_conf_state_encoded_size(const struct raft_conf_state *cs);
size_t raft_conf_state_encode(const struct raft_conf_state *cs, uint8_t *buf);
int raft_conf_state_decode(const uint8_t *buf, size_t len, struct raft_conf_state *cs);

size_t raft_conf_change_encoded_size(const struct raft_conf_change *cc);
size_t raft_conf_change_encode(const struct raft_conf_change *cc, uint8_t *buf);
/* cc->context is a malloc'd copy (or NULL) the caller frees. */
int raft_conf_change_decode(const uint8_t *buf, size_t len, struct raft_conf_change *cc);

size_t raft_snapshot_meta_encoded_size(const struct raft_snapshot_meta *sm);
size_t raft_snapshot_meta_encode(const struct raft_snapshot_meta *sm, uint8_t *buf);
int raft_snapshot_meta_decode(const uint8_t *buf, size_t len, struct raft_snapshot_meta *sm);

#endif
