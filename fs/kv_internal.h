/*
 * kv_internal.h: the store as a member's replicated state machine.
 *
 * Requests are rpc.Request protobufs (fs/rpc.proto): put, delete range, txn, compaction, lease
 * grant and revoke, alarm. Applying one runs it against the store in one revision and answers the
 * proposer with an rpc.Response and a status (0, or a STORE_E* code / negative errno that leaves the
 * store unchanged). Applying is deterministic: lease times come from the request's time_ns, set by
 * the proposer, never from this member's clock. The store image in snapshots is the store's own
 * zstd stream.
 */
#ifndef RAFTFS_FS_KV_INTERNAL_H
#define RAFTFS_FS_KV_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "member_internal.h"
#include "rpc.pb-c.h"
#include "store.h"

/* Fills sm to apply to s (borrowed: it must outlive the member). */
void fs_kv_state_machine(struct store *s, struct fs_state_machine *sm);

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
