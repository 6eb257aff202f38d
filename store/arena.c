/*
 * arena.c: slab memory for the store's records (revision records and keyIndexes).
 *
 * A record is carved from the arena's current slab by bumping a pointer: no per-record header, no
 * size rounding beyond 8 bytes, and slabs are 2 MiB aligned and advised as transparent huge pages,
 * so a million records cost a few hundred page faults instead of a hundred thousand and point
 * reads miss the TLB far less. Each slab counts the bytes still live in it; freeing a record only
 * lowers that count (the caller passes the size it allocated) and a slab whose count reaches zero
 * goes back to malloc. Compaction moves the records out of sparse slabs (store__arena_sparse) so
 * that the memory of compacted revisions really returns. A record bigger than an eighth of a slab
 * gets a slab of its own (not advised: only its touched pages count). Under AddressSanitizer freed
 * and unused slab bytes are poisoned, so a use after free of a record is still caught.
 */
#include "store_internal.h"

#include <stdio.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* records start on a 128-byte boundary (the pair of cache lines the CPU fetches together): a new
   key's keyIndex and the header of its first kvrec, allocated back to back, start out close */
#define SLAB_HDR ((size_t)128)
#define BIG (STORE__SLAB / 8)

static struct store__slab *slab_of(const void *p)
{
	return (struct store__slab *)((uintptr_t)p & ~(uintptr_t)(STORE__SLAB - 1));
}

void store__arena_init(struct store__arena *a)
{
	a->head = NULL;
	a->slabs = NULL;
	a->n_slabs = 0;
}

static struct store__slab *slab_new(struct store__arena *a, size_t size, bool advise)
{
	struct store__slab *sl = aligned_alloc(STORE__SLAB, size);
	if (!sl) {
		fprintf(stderr, "store: out of memory allocating a %zu-byte slab\n", size);
		abort();
	}
	if (advise)
		(void)madvise(sl, size, MADV_HUGEPAGE); /* a hint: without THP, 4 KiB pages */
	sl->size = size;
	sl->used = SLAB_HDR;
	sl->live = 0;
	sl->prev = NULL;
	sl->next = a->slabs;
	if (a->slabs)
		a->slabs->prev = sl;
	a->slabs = sl;
	a->n_slabs++;
	POISON((char *)sl + SLAB_HDR, size - SLAB_HDR);
	return sl;
}

static void slab_free(struct store__arena *a, struct store__slab *sl)
{
	if (sl->prev)
		sl->prev->next = sl->next;
	else
		a->slabs = sl->next;
	if (sl->next)
		sl->next->prev = sl->prev;
	if (a->head == sl)
		a->head = NULL;
	a->n_slabs--;
	UNPOISON(sl, sl->size);
	free(sl);
}

void *store__arena_alloc(struct store__arena *a, size_t n)
{
	n = (n + 7) & ~(size_t)7;
	struct store__slab *sl;
	if (n > BIG) {
		size_t size = (SLAB_HDR + n + STORE__SLAB - 1) & ~(size_t)(STORE__SLAB - 1);
		if (size < n) {
			fprintf(stderr, "store: record of %zu bytes too big\n", n);
			abort();
		}
		sl = slab_new(a, size, false);
	} else {
		sl = a->head;
		if (!sl || sl->size - sl->used < n)
			sl = a->head = slab_new(a, STORE__SLAB, true);
	}
	void *p = (char *)sl + sl->used;
	sl->used += n;
	sl->live += n;
	UNPOISON(p, n);
	return p;
}

void store__arena_free(struct store__arena *a, void *p, size_t n)
{
	n = (n + 7) & ~(size_t)7;
	struct store__slab *sl = slab_of(p);
	POISON(p, n);
	sl->live -= n;
	if (sl->live)
		return;
	if (sl == a->head) { /* empty: start over */
		sl->used = SLAB_HDR;
		return;
	}
	slab_free(a, sl);
}

bool store__arena_sparse(const struct store__arena *a, const void *p)
{
	const struct store__slab *sl = slab_of(p);
	return sl != a->head && sl->live * 2 < sl->used - SLAB_HDR;
}

void store__arena_release(struct store__arena *a)
{
	while (a->slabs)
		slab_free(a, a->slabs);
	store__arena_init(a);
}
