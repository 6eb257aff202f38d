/*
 * member/wait.h: request ids and the wait table of a member (etcd's idutil and wait.Wait).
 *
 * A proposal carries a request id that is unique in the cluster and strictly increasing on its
 * member: the member id's low 16 bits, then a 48-bit counter that starts from the wall clock (so a
 * restarted member does not reuse ids). The proposer registers the id with a callback; applying the
 * committed entry triggers it with the result; a request not applied by its deadline is answered
 * with -ETIMEDOUT. Single-threaded: the member's loop owns it.
 */
#ifndef RAFTFS_FS_MEMBER_WAIT_H
#define RAFTFS_FS_MEMBER_WAIT_H

#include <stddef.h>
#include <stdint.h>

#include "member/member.h"

struct fs_reqid {
	uint64_t prefix;  /* member id bits, in the top 16 */
	uint64_t counter; /* the low 48 bits of the last id */
};

/* Starts the generator of member_id at wall-clock time now_ms. */
void fs_reqid_init(struct fs_reqid *g, uint64_t member_id, uint64_t now_ms);

/* The next id: strictly greater than the previous one of this generator. */
uint64_t fs_reqid_next(struct fs_reqid *g);

/* The callback of a registration: fs_wait_cb (member/member.h). */

struct fs_wait_entry;

struct fs_wait {
	struct fs_wait_entry **buckets; /* chained hash on id; nbuckets is a power of two */
	size_t nbuckets;
	size_t count;                   /* registered and not yet answered */
	struct fs_wait_entry *oldest;   /* registration order, for expiry */
	struct fs_wait_entry *newest;
};

void fs_wait_init(struct fs_wait *w);

/* Answers every registration with err, then frees the table. */
void fs_wait_fail_all(struct fs_wait *w, int err);

/* Registers id until deadline (any monotonic ms clock). -EEXIST if registered, -ENOMEM. */
int fs_wait_register(struct fs_wait *w, uint64_t id, uint64_t deadline, fs_wait_cb cb, void *arg);

/* Whether id is registered (its proposer waits here). */
int fs_wait_is_registered(const struct fs_wait *w, uint64_t id);

/*
 * Answers id's registration with status and result and forgets it. Returns 0, or -ENOENT when id
 * is not registered (proposed elsewhere, or already timed out).
 */
int fs_wait_trigger(struct fs_wait *w, uint64_t id, int status, const void *result, size_t len);

/* Answers every registration whose deadline is <= now with -ETIMEDOUT; returns how many. */
size_t fs_wait_expire(struct fs_wait *w, uint64_t now);

#endif
