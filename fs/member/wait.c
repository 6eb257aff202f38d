/*
 * wait.c: request ids and the wait table (see member/wait.h). The table is a chained hash on the
 * request id plus a doubly linked list in registration order; expiry walks that list, so it costs
 * O(registrations) per call, bounded by the member's in-flight limit.
 */
#include "member/wait.h"

#include <errno.h>
#include <stdlib.h>

#define COUNTER_BITS 48
#define COUNTER_MASK ((UINT64_C(1) << COUNTER_BITS) - 1)

void fs_reqid_init(struct fs_reqid *g, uint64_t member_id, uint64_t now_ms)
{
	g->prefix = (member_id & 0xffff) << COUNTER_BITS;
	/* 40 bits of milliseconds (34 years), 8 bits of room for bursts within one ms. */
	g->counter = ((now_ms & ((UINT64_C(1) << 40) - 1)) << 8) & COUNTER_MASK;
}

uint64_t fs_reqid_next(struct fs_reqid *g)
{
	g->counter = (g->counter + 1) & COUNTER_MASK;
	return g->prefix | g->counter;
}

struct fs_wait_entry {
	uint64_t id;
	uint64_t deadline;
	fs_wait_cb cb;
	void *arg;
	struct fs_wait_entry *chain;      /* next in the bucket */
	struct fs_wait_entry *prev, *next; /* registration order */
};

static size_t bucket_of(const struct fs_wait *w, uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdull;
	id ^= id >> 33;
	return (size_t)id & (w->nbuckets - 1);
}

void fs_wait_init(struct fs_wait *w)
{
	w->buckets = NULL;
	w->nbuckets = 0;
	w->count = 0;
	w->oldest = w->newest = NULL;
}

static int grow(struct fs_wait *w)
{
	size_t n = w->nbuckets ? w->nbuckets * 2 : 64;
	struct fs_wait_entry **b = calloc(n, sizeof *b);
	if (!b)
		return -ENOMEM;
	struct fs_wait_entry **old = w->buckets;
	size_t oldn = w->nbuckets;
	w->buckets = b;
	w->nbuckets = n;
	for (size_t i = 0; i < oldn; i++) {
		for (struct fs_wait_entry *e = old[i], *next; e; e = next) {
			next = e->chain;
			size_t k = bucket_of(w, e->id);
			e->chain = b[k];
			b[k] = e;
		}
	}
	free(old);
	return 0;
}

static struct fs_wait_entry **find(const struct fs_wait *w, uint64_t id)
{
	if (!w->nbuckets)
		return NULL;
	struct fs_wait_entry **pp = &w->buckets[bucket_of(w, id)];
	while (*pp && (*pp)->id != id)
		pp = &(*pp)->chain;
	return *pp ? pp : NULL;
}

int fs_wait_register(struct fs_wait *w, uint64_t id, uint64_t deadline, fs_wait_cb cb, void *arg)
{
	if (find(w, id))
		return -EEXIST;
	if (w->count + 1 > w->nbuckets && grow(w) != 0)
		return -ENOMEM;
	struct fs_wait_entry *e = malloc(sizeof *e);
	if (!e)
		return -ENOMEM;
	*e = (struct fs_wait_entry){.id = id, .deadline = deadline, .cb = cb, .arg = arg};
	size_t k = bucket_of(w, id);
	e->chain = w->buckets[k];
	w->buckets[k] = e;
	e->prev = w->newest;
	if (w->newest)
		w->newest->next = e;
	else
		w->oldest = e;
	w->newest = e;
	w->count++;
	return 0;
}

int fs_wait_is_registered(const struct fs_wait *w, uint64_t id)
{
	return find(w, id) != NULL;
}

/* Unlinks *pp's entry from both structures and returns it. */
static struct fs_wait_entry *take(struct fs_wait *w, struct fs_wait_entry **pp)
{
	struct fs_wait_entry *e = *pp;
	*pp = e->chain;
	if (e->prev)
		e->prev->next = e->next;
	else
		w->oldest = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		w->newest = e->prev;
	w->count--;
	return e;
}

int fs_wait_trigger(struct fs_wait *w, uint64_t id, int status, const void *result, size_t len)
{
	struct fs_wait_entry **pp = find(w, id);
	if (!pp)
		return -ENOENT;
	struct fs_wait_entry *e = take(w, pp);
	e->cb(e->arg, id, status, result, len); /* may register new ids: e is already out */
	free(e);
	return 0;
}

size_t fs_wait_expire(struct fs_wait *w, uint64_t now)
{
	/*
	 * Collect first, then answer: a callback may trigger or register other ids. Chunks of 256
	 * keep this allocation-free; a later chunk rescans only what is left.
	 */
	size_t total = 0;
	for (;;) {
		uint64_t ids[256];
		size_t n = 0;
		for (struct fs_wait_entry *e = w->oldest; e && n < 256; e = e->next)
			if (e->deadline <= now)
				ids[n++] = e->id;
		for (size_t i = 0; i < n; i++)
			if (fs_wait_trigger(w, ids[i], -ETIMEDOUT, NULL, 0) == 0)
				total++;
		if (n < 256)
			return total;
	}
}

void fs_wait_fail_all(struct fs_wait *w, int err)
{
	while (w->oldest)
		fs_wait_trigger(w, w->oldest->id, err, NULL, 0);
	free(w->buckets);
	fs_wait_init(w);
}
