/*
 * payload_internal.h: a FIFO of memory chunks holding entry payloads, shared by the unstable log
 * (raft.c) and the memory storage (storage.c). Payloads are appended in log order; a chunk is
 * released once every entry it ever held has left its owner (its max_index is at or below the
 * released index), and when the owner holds nothing, all chunks are emptied but one, kept for
 * reuse. So replication and storage allocate per chunk, not per entry.
 */
#ifndef RAFTFS_RAFT_PAYLOAD_INTERNAL_H
#define RAFTFS_RAFT_PAYLOAD_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

struct raft__payload_chunk {
	struct raft__payload_chunk *next; /* newer chunk */
	size_t cap, used;                 /* bytes of data / bytes handed out */
	uint64_t max_index;               /* highest index of an entry whose payload is here */
	_Alignas(16) unsigned char data[];
};

struct raft__payloads {
	struct raft__payload_chunk *head, *tail; /* oldest, newest */
};

/* Room for len bytes of the payload of entry index; NULL on ENOMEM. Valid until released. */
void *raft__payload_alloc(struct raft__payloads *pl, size_t len, uint64_t index);
/* Entries up to index are gone; empty says the owner holds no entry at all. */
void raft__payload_release_to(struct raft__payloads *pl, uint64_t index, int empty);
/* The owner holds no entry: everything is released (one chunk kept). */
void raft__payload_release_all(struct raft__payloads *pl);
/* Frees every chunk. */
void raft__payload_free(struct raft__payloads *pl);

#endif
