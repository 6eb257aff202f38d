/*
 * kv_internal.h: the store as a member's replicated state machine.
 *
 * Requests are rpc.Request protobufs (fs/rpc.proto): put, delete range, txn, compaction, lease
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
#ifndef RAFTFS_FS_KV_INTERNAL_H
#define RAFTFS_FS_KV_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "member_internal.h"
#include "rpc.pb-c.h"
#include "store.h"


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

/*
 * Decodes an answer's result bytes (possibly none) into *resp (zeroed first). -EINVAL when they do
 * not decode.
 */
int fs_kv_decode_response(const void *buf, size_t len, Rpc__Response *resp);

#endif
