/*
 * payload.c: the chunked FIFO of entry payloads (see payload_internal.h).
 */
#include "payload_internal.h"

#include <stdlib.h>

void raft__payload_release_all(struct raft__payloads *pl)
{
	struct raft__payload_chunk *c = pl->head;
	if (!c)
		return;
	struct raft__payload_chunk *n = c->next;
	c->next = NULL;
	c->used = 0;
	c->max_index = 0;
	pl->tail = c;
	while (n) {
		struct raft__payload_chunk *x = n->next;
		free(n);
		n = x;
	}
}

void raft__payload_release_to(struct raft__payloads *pl, uint64_t stable, int empty)
{
	if (empty) {
		raft__payload_release_all(pl);
		return;
	}
	while (pl->head && pl->head != pl->tail && pl->head->max_index <= stable) {
		struct raft__payload_chunk *c = pl->head;
		pl->head = c->next;
		free(c);
	}
}

void *raft__payload_alloc(struct raft__payloads *pl, size_t len, uint64_t index)
{
	len = (len + 7) & ~(size_t)7;
	struct raft__payload_chunk *c = pl->tail;
	if (!c || c->cap - c->used < len) {
		size_t cap = len > 262144 ? len : 262144;
		struct raft__payload_chunk *n = malloc(sizeof *n + cap);
		if (!n)
			return NULL;
		n->next = NULL;
		n->cap = cap;
		n->used = 0;
		n->max_index = 0;
		if (c)
			c->next = n;
		else
			pl->head = n;
		pl->tail = c = n;
	}
	void *p = c->data + c->used;
	c->used += len;
	if (index > c->max_index)
		c->max_index = index;
	return p;
}

void raft__payload_free(struct raft__payloads *pl)
{
	while (pl->head) {
		struct raft__payload_chunk *n = pl->head->next;
		free(pl->head);
		pl->head = n;
	}
	pl->tail = NULL;
}

