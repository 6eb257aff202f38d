/*
 * store.h: the public interface of raftfs's MVCC key space (etcd's mvcc in C).
 *
 * Every applied write transaction gets a revision {main, sub}: main grows by one per transaction,
 * sub numbers the operations inside it. Functions return 0 or a negative errno / STORE_E* code.
 *
 * The store is pure in-memory and single-threaded: the member's event loop owns it and nothing in
 * it locks. It has no clock: lease expiry uses the `now_ms` the caller passes (a monotonic clock
 * of the caller's, so that a stepped wall clock moves no expiry), and the file times
 * stored with each value (struct store_meta) come from the proposal, so every member applies the
 * same bytes. Allocation failure aborts the process (a member that cannot apply an entry must not
 * go on diverging from its peers); every other failure is a returned code.
 *
 * Pointer lifetime, once for the whole API: a struct store_kv handed out by the store points at
 * key and value bytes inside the store. They stay valid until the next call that changes the store
 * (put, delete, txn, compact, lease revoke, restore, close). Arrays of kvs and events are allocated
 * for the caller, who frees them with the matching *_free function.
 */
#ifndef RAFTFS_STORE_H
#define RAFTFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A revision, ordered by main then sub. */
struct store_rev {
	int64_t main; /* the transaction's revision */
	int64_t sub;  /* the operation's place inside it */
};

/* Bytes of an encoded revision: 8 bytes main, '_', 8 bytes sub, big-endian (as etcd's backend). */
#define STORE_REV_BYTES 17

/* <0, 0 or >0 as a is before, equal to or after b. */
int store_rev_cmp(struct store_rev a, struct store_rev b);

/* Writes rev into out[STORE_REV_BYTES]; encoded revisions sort bytewise in revision order. */
void store_rev_encode(struct store_rev rev, unsigned char out[STORE_REV_BYTES]);

/* Reads a revision from in[0..len); -EINVAL when len or the separator is wrong. */
int store_rev_decode(const unsigned char *in, size_t len, struct store_rev *rev);

/* ---- errors ---------------------------------------------------------------------------------- */

enum {
	STORE_ECOMPACTED = -2001,     /* the revision asked for was compacted away */
	STORE_EFUTUREREV = -2002,     /* the revision asked for is after the current one */
	STORE_ENOSPACE = -2003,       /* the NOSPACE alarm is armed: writes that add data refused */
	STORE_ELEASENOTFOUND = -2004, /* no lease with that id */
	STORE_ELEASEEXISTS = -2005,   /* grant of an id already granted */
	STORE_EKEYNOTFOUND = -2006,   /* ignore_value / ignore_lease on a key that does not exist */
	STORE_ECORRUPT = -2007,       /* a snapshot image that does not decode */
	STORE_EWATCHCANCELED = -2008, /* the watch was canceled (see store_watch_next) */
};

/* A static message for a STORE_E* code or a negative errno. */
const char *store_strerror(int err);

/* ---- key-values ------------------------------------------------------------------------------ */

/* Per-file metadata the fs layer stores with each value; replicated bytes like the value itself. */
struct store_meta {
	uint32_t type;     /* fs node type (opaque to the store) */
	uint32_t mode;     /* permission bits */
	uint32_t uid;
	uint32_t gid;
	int64_t atime_ns;  /* times come from the proposal, never the applying member's clock */
	int64_t mtime_ns;
	int64_t ctime_ns;
};

/* One key-value as of some revision. key/value point into the store (see lifetime above). */
struct store_kv {
	const unsigned char *key;
	size_t key_len;
	const unsigned char *value; /* NULL with keys_only */
	size_t value_len;
	int64_t create_revision; /* main revision of the put that created this generation */
	int64_t mod_revision;    /* main revision of the last change */
	int64_t mod_sub;         /* its sub revision */
	int64_t version;         /* writes in this generation (1 after create, 0 for a deletion) */
	int64_t lease;           /* 0: none */
	struct store_meta meta;
};

struct store;

struct store_config {
	uint64_t quota_bytes;    /* NOSPACE threshold; 0: the default, 2 GiB */
	int64_t min_lease_ttl_s; /* grants below are raised to it; 0: the default, 5 s */
};

/* Creates an empty store at revision 1 (etcd's first write is revision 2). Free with store_close. */
int store_open(const struct store_config *cfg, struct store **out);

/* Frees the store, its watches and every kv handed out. NULL is fine. */
void store_close(struct store *s);

/* The current revision (the last applied write transaction's main revision). */
int64_t store_rev(const struct store *s);

/* The revision of the last compaction (0: none). */
int64_t store_compact_rev(const struct store *s);

/* The raft index the store reflects: the caller sets it when applying; kept in snapshots. */
void store_set_applied_index(struct store *s, uint64_t index);
uint64_t store_applied_index(const struct store *s);

/* ---- range ----------------------------------------------------------------------------------- */

#define STORE_RANGE_COUNT_ONLY 1u /* fill count only, no kvs */
#define STORE_RANGE_KEYS_ONLY 2u  /* kvs without values */

/*
 * A key range, as etcd spells it: end == NULL (or end_len == 0) is the single key; an end of one
 * zero byte is every key >= key; otherwise [key, end). store_prefix_end computes the end of a
 * prefix.
 */
struct store_range_req {
	const void *key;
	size_t key_len;
	const void *end;
	size_t end_len;
	int64_t rev;    /* 0: current */
	int64_t limit;  /* 0: no limit */
	unsigned flags; /* STORE_RANGE_* */
};

struct store_range_result {
	struct store_kv *kvs; /* allocated; free with store_range_result_free */
	size_t n;
	int64_t count; /* keys in range, regardless of limit */
	bool more;     /* the limit cut the result */
	int64_t rev;   /* the store's revision when it was read */
};

/*
 * Writes into end[] (capacity max(len, 1)) the range end of every key that starts with prefix and
 * returns its length; 1 with end[0] == 0 (every key) when the prefix is all 0xff or empty.
 */
size_t store_prefix_end(const void *prefix, size_t len, unsigned char *end);

/* Reads the range at req->rev. STORE_ECOMPACTED, STORE_EFUTUREREV. res is the caller's to free. */
int store_range(struct store *s, const struct store_range_req *req, struct store_range_result *res);

/* Frees res's array (on any thread; each thread keeps one freed array for its next point range). */
void store_range_result_free(struct store_range_result *res);

/*
 * The point range without the result's allocation: the key at rev (0: current) into *out, whose
 * pointers (key, value) point into the store until its next change. 0; STORE_EKEYNOTFOUND when
 * the key does not exist at rev; STORE_ECOMPACTED, STORE_EFUTUREREV.
 */
int store_get(struct store *s, const void *key, size_t key_len, int64_t rev, struct store_kv *out);

/* ---- writes ---------------------------------------------------------------------------------- */

#define STORE_PUT_PREV_KV 1u
#define STORE_PUT_IGNORE_VALUE 2u /* keep the current value and meta */
#define STORE_PUT_IGNORE_LEASE 4u /* keep the current lease */

struct store_put {
	const void *key;
	size_t key_len;
	const void *value;
	size_t value_len;
	int64_t lease; /* 0: none */
	struct store_meta meta;
	unsigned flags; /* STORE_PUT_* */
};

struct store_put_result {
	int64_t rev;
	bool has_prev;
	struct store_kv prev; /* with STORE_PUT_PREV_KV when the key existed */
};

/* Puts one key in a new revision; res may be NULL. STORE_ENOSPACE, STORE_ELEASENOTFOUND,
 * STORE_EKEYNOTFOUND. */
int store_put(struct store *s, const struct store_put *p, struct store_put_result *res);

struct store_delete {
	const void *key;
	size_t key_len;
	const void *end; /* as store_range_req */
	size_t end_len;
	bool prev_kv;
};

struct store_delete_result {
	int64_t rev;     /* unchanged when nothing was deleted */
	int64_t deleted;
	struct store_kv *prev_kvs; /* allocated with prev_kv; free with store_delete_result_free */
	size_t n_prev;
};

/* Deletes every live key in range in one new revision (none when nothing matched); res may be
 * NULL. */
int store_delete_range(struct store *s, const struct store_delete *d, struct store_delete_result *res);

void store_delete_result_free(struct store_delete_result *res);

/* ---- transactions ---------------------------------------------------------------------------- */

enum store_cmp_target { STORE_CMP_VALUE, STORE_CMP_VERSION, STORE_CMP_CREATE, STORE_CMP_MOD,
			STORE_CMP_LEASE };
enum store_cmp_result { STORE_CMP_EQ, STORE_CMP_NE, STORE_CMP_LT, STORE_CMP_GT };

/*
 * A compare on one key; a missing key has version, create, mod and lease 0 and fails VALUE. With
 * end (as store_range_req's), on every live key of [key, end) instead, as etcd's range compares:
 * it holds when it holds for each of them, and an empty range compares as one missing key.
 */
struct store_cmp {
	enum store_cmp_target target;
	enum store_cmp_result result;
	const void *key;
	size_t key_len;
	const void *end; /* NULL or end_len 0: key alone */
	size_t end_len;
	int64_t num;       /* VERSION, CREATE, MOD, LEASE */
	const void *value; /* VALUE */
	size_t value_len;
};

enum store_op_type {
	STORE_OP_RANGE, STORE_OP_PUT, STORE_OP_DELETE, STORE_OP_MOVE, STORE_OP_SWAP
};

/*
 * Moves every live key that begins with from to the key that begins with to instead (to, then the
 * rest of the key): each is put there with its value, metadata and lease, and deleted where it
 * was, in the txn's revision, so a watch sees a delete and a put per key. A live key already at a
 * target is replaced. from and to must not be empty and neither may begin with the other
 * (-EINVAL): the keys moved and the keys made are apart.
 */
struct store_move {
	const void *from;
	size_t from_len;
	const void *to;
	size_t to_len;
};

/*
 * STORE_OP_SWAP, a store_move whose two prefixes trade places: every live key that begins with
 * from and every live key that begins with to is deleted, then each is put at the other prefix
 * (the prefix, then the rest of the key) with its value, metadata and lease, all in the txn's
 * revision. A watch sees first the deletes of both sides, then the puts; every key put is a new
 * generation (version 1, create revision the txn's), also where the other side had the same
 * rest. The prefixes must be apart as a move's (-EINVAL). moved counts the keys of both sides.
 */

struct store_op {
	enum store_op_type type;
	struct store_range_req range; /* rev must be 0 inside a txn */
	struct store_put put;
	struct store_delete del;
	struct store_move move; /* STORE_OP_MOVE and STORE_OP_SWAP */
};

struct store_op_result {
	enum store_op_type type;
	struct store_range_result range;
	struct store_put_result put;
	struct store_delete_result del;
	int64_t moved; /* STORE_OP_MOVE, STORE_OP_SWAP: keys moved */
};

struct store_txn {
	const struct store_cmp *cmps;
	size_t n_cmps;
	const struct store_op *success;
	size_t n_success;
	const struct store_op *failure;
	size_t n_failure;
};

struct store_txn_result {
	bool succeeded;
	int64_t rev;                     /* the new revision, or the current one for a read-only txn */
	struct store_op_result *results; /* one per op of the branch taken; store_txn_result_free */
	size_t n;
};

/*
 * Evaluates the compares and applies the branch as one revision (reads see the branch's earlier
 * writes). A branch that would fail (missing lease, ignore_* on a missing key, NOSPACE) changes
 * nothing and returns the code.
 */
int store_txn(struct store *s, const struct store_txn *t, struct store_txn_result *res);

void store_txn_result_free(struct store_txn_result *res);

/* ---- compaction and hashing ------------------------------------------------------------------ */

/*
 * Compacts at rev (seed 004): of each key the newest version <= rev stays, older ones and
 * generations ending in a tombstone <= rev go, and their memory is freed. Watches that still needed
 * a removed revision are canceled with STORE_ECOMPACTED. STORE_ECOMPACTED when rev <= the last
 * compaction, STORE_EFUTUREREV when rev > the current revision.
 */
int store_compact(struct store *s, int64_t rev);

/*
 * A 64-bit hash of every stored kv with main revision <= rev (0: current) and of the compacted
 * revision, for member comparison: equal stores give equal hashes. It is kept up as it goes: a
 * call costs the revisions stored since the previous call (the first after open, restore or
 * compaction: all), or those between rev and the previous call's revision when rev is older.
 * STORE_ECOMPACTED, STORE_EFUTUREREV as range.
 */
int store_hash_kv(struct store *s, int64_t rev, uint64_t *hash);
/* Which function store_hash_kv computes: members compare hashes only of the same one (1 hashed
   the keys in order; 2 sums each revision's hash). */
#define STORE_HASH_KV_ALGORITHM 2

/* ---- leases ---------------------------------------------------------------------------------- */

/* Grants lease id (non-zero) with ttl_s (raised to the minimum), expiring at now_ms + ttl. */
int store_lease_grant(struct store *s, int64_t id, int64_t ttl_s, int64_t now_ms);

/* Deletes every key attached to the lease in one revision, then the lease. */
int store_lease_revoke(struct store *s, int64_t id);

/* Renews the lease: expiry = now_ms + ttl. *ttl_s gets the granted ttl. */
int store_lease_renew(struct store *s, int64_t id, int64_t now_ms, int64_t *ttl_s);

struct store_lease_info {
	int64_t id;
	int64_t ttl_s;         /* granted */
	int64_t remaining_ms;  /* at now_ms; INT64_MAX until promoted after a restore */
	size_t n_keys;         /* keys attached */
};

int store_lease_time_to_live(struct store *s, int64_t id, int64_t now_ms,
			     struct store_lease_info *info);

/* All lease ids, ascending; *ids allocated, free with free(). */
int store_lease_list(struct store *s, int64_t **ids, size_t *n);

/*
 * The ids of the leases expired at now_ms (ascending, at most max). Only the leader calls this and
 * proposes a revoke for each; the store never deletes on its own clock. *ids allocated, free().
 */
int store_lease_expired(struct store *s, int64_t now_ms, size_t max, int64_t **ids, size_t *n);

/* A new leader took over: every lease's expiry becomes now_ms + its ttl (etcd's Promote). */
void store_lease_promote(struct store *s, int64_t now_ms);

/* ---- quota ----------------------------------------------------------------------------------- */

/* The deterministic size estimate the quota is checked against, in bytes. */
uint64_t store_size(const struct store *s);

/* True while the NOSPACE alarm is armed. */
bool store_alarm_nospace(const struct store *s);

/* Disarms the NOSPACE alarm; STORE_ENOSPACE (alarm kept) while the size is still above quota. */
int store_alarm_disarm(struct store *s);

/* ---- watches --------------------------------------------------------------------------------- */

/*
 * Delivery is by polling: after applying entries, the loop calls store_watch_next on each watch.
 * Events are read from the store's own history (the revision-ordered value table), so apply never
 * does any work for watchers and never blocks: a slow consumer simply has an older next revision
 * and catches up from history, until a compaction removes revisions it still needed, which
 * cancels it with STORE_ECOMPACTED and the compact revision.
 */
struct store_watch;

#define STORE_WATCH_PREV_KV 1u

enum store_event_type { STORE_EVENT_PUT, STORE_EVENT_DELETE };

struct store_event {
	enum store_event_type type;
	struct store_kv kv;   /* for DELETE: key, mod_revision of the deletion, version 0 */
	bool has_prev;
	struct store_kv prev; /* with STORE_WATCH_PREV_KV, when still stored */
};

struct store_watch_batch {
	struct store_event *events; /* allocated; free with store_watch_batch_free */
	size_t n;
	int64_t rev;      /* every event up to this revision has been delivered */
	bool progress;    /* a progress notification (n == 0) answering store_watch_request_progress */
	int64_t compact_rev; /* with STORE_ECOMPACTED: the compaction that canceled the watch */
};

/*
 * Watches [key, end) (end as store_range_req) from start_rev (0: the next revision). A start at or
 * below the compaction is STORE_ECOMPACTED with *compact_rev set; *out freed by store_watch_cancel.
 */
int store_watch_create(struct store *s, const void *key, size_t key_len, const void *end,
		       size_t end_len, int64_t start_rev, unsigned flags, struct store_watch **out,
		       int64_t *compact_rev);

/*
 * The next events, whole revisions in revision order, at least one revision when there is one and
 * about max_events at most (a revision is never split). 0 with n == 0: nothing new. STORE_ECOMPACTED
 * (batch->compact_rev set) once the watch has been canceled by a compaction.
 */
int store_watch_next(struct store_watch *w, size_t max_events, struct store_watch_batch *batch);

/* Asks for a progress notification: the next store_watch_next with no events reports the rev. */
void store_watch_request_progress(struct store_watch *w);

/* The next revision the watch will deliver. */
int64_t store_watch_next_rev(const struct store_watch *w);

void store_watch_batch_free(struct store_watch_batch *batch);

/* Cancels and frees the watch. NULL is fine. */
void store_watch_cancel(struct store_watch *w);

/* ---- snapshot -------------------------------------------------------------------------------- */

/* A sink for snapshot bytes; returns 0 or a negative errno (which aborts the save). */
typedef int (*store_write_fn)(void *arg, const void *buf, size_t len);

/*
 * Writes the whole store (every stored revision, leases, current and compact revision, the alarm,
 * the applied index) as one zstd frame to write(arg, ...).
 */
int store_snapshot_save(struct store *s, store_write_fn write, void *arg);

/* The same into a malloc'ed buffer the caller frees. */
int store_snapshot_save_buf(struct store *s, void **buf, size_t *len);

/*
 * Replaces the store's contents with the image in buf[0..len). Watches are canceled (their next
 * call returns STORE_EWATCHCANCELED). Leases do not expire until store_lease_promote. On
 * STORE_ECORRUPT the store is left unchanged.
 */
int store_snapshot_restore(struct store *s, const void *buf, size_t len);

#endif
