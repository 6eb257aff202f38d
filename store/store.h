/*
 * store.h: the public interface of raftfs's MVCC key space (etcd's mvcc in C).
 *
 * Every applied write transaction gets a revision {main, sub}: main grows by one per transaction,
 * sub numbers the operations inside it. Functions return 0 or a negative errno / STORE_E* code.
 */
#ifndef RAFTFS_STORE_H
#define RAFTFS_STORE_H

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

#endif
