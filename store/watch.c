/*
 * watch.c: watches on a key or a range, delivered by polling (store_watch_next).
 *
 * A watch is only {range, next revision, flags}: events are read from the revision-ordered log,
 * the store's own history, so there is one path for catching up and for following the head, apply
 * does no work for watchers and never blocks on them, and a slow consumer's backlog costs nothing
 * but the history it pins by not being compacted. Each call returns whole revisions in order and
 * advances the next revision past them, so no event is delivered twice or out of order. A
 * compaction past a watch's next revision cancels it with STORE_ECOMPACTED (as etcd does).
 */
#include "store_internal.h"

#include <errno.h>

struct store_watch {
	struct store *s;          /* NULL once the store was closed or restored */
	struct store_watch *prev, *next;
	unsigned char *key, *end; /* copies */
	size_t key_len, end_len;
	int64_t next_rev;         /* first revision not yet delivered */
	unsigned flags;
	int canceled;             /* 0, STORE_ECOMPACTED or STORE_EWATCHCANCELED */
	int64_t compact_rev;
	bool progress_req;
};

static void unlink_watch(struct store_watch *w)
{
	if (!w->s)
		return;
	if (w->prev)
		w->prev->next = w->next;
	else
		w->s->watches = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->prev = w->next = NULL;
	w->s = NULL;
}

int store_watch_create(struct store *s, const void *key, size_t key_len, const void *end,
		       size_t end_len, int64_t start_rev, unsigned flags, struct store_watch **out,
		       int64_t *compact_rev)
{
	*out = NULL;
	if (!key_len)
		return -EINVAL;
	if (start_rev <= 0)
		start_rev = s->rev + 1;
	if (start_rev <= s->compact_rev) {
		if (compact_rev)
			*compact_rev = s->compact_rev;
		return STORE_ECOMPACTED;
	}
	struct store_watch *w = store__xcalloc(1, sizeof *w);
	w->s = s;
	w->key = store__xmalloc(key_len);
	memcpy(w->key, key, key_len);
	w->key_len = key_len;
	if (end && end_len) {
		w->end = store__xmalloc(end_len);
		memcpy(w->end, end, end_len);
		w->end_len = end_len;
	}
	w->next_rev = start_rev;
	w->flags = flags;
	w->next = s->watches;
	if (s->watches)
		s->watches->prev = w;
	s->watches = w;
	*out = w;
	return 0;
}

int store_watch_next(struct store_watch *w, size_t max_events, struct store_watch_batch *batch)
{
	memset(batch, 0, sizeof *batch);
	if (w->canceled) {
		batch->compact_rev = w->compact_rev;
		return w->canceled;
	}
	struct store *s = w->s;
	size_t cap = 0;
	size_t i = store__log_seek(s, w->next_rev);
	int64_t done = w->next_rev - 1;
	while (i < s->log_n) {
		int64_t main = s->log[i]->main;
		if (batch->n && batch->n >= max_events)
			break;
		for (; i < s->log_n && s->log[i]->main == main; i++) {
			const struct store__kv *kv = s->log[i];
			if (!store__in_range(kv->ki->key, kv->ki->key_len, w->key, w->key_len, w->end,
					     w->end_len))
				continue;
			if (batch->n == cap) {
				cap = cap ? cap * 2 : 16;
				batch->events = store__xrealloc(batch->events, cap * sizeof *batch->events);
			}
			struct store_event *e = &batch->events[batch->n++];
			memset(e, 0, sizeof *e);
			e->type = (kv->flags & STORE__TOMB) ? STORE_EVENT_DELETE : STORE_EVENT_PUT;
			uint32_t gi;
			const struct store__gen *g = store__kv_locate(kv, &gi);
			store__fill_kv(&e->kv, g, gi, false);
			if ((w->flags & STORE_WATCH_PREV_KV) && gi > 0) { /* the revision before, if stored */
				e->has_prev = true;
				store__fill_kv(&e->prev, g, gi - 1, false);
			}
		}
		done = main;
	}
	if (i >= s->log_n && s->rev > done)
		done = s->rev; /* revisions without stored events (none today) are passed too */
	w->next_rev = done + 1;
	batch->rev = done;
	if (!batch->n && w->progress_req) {
		batch->progress = true;
		w->progress_req = false;
	}
	return 0;
}

void store_watch_request_progress(struct store_watch *w)
{
	w->progress_req = true;
}

int64_t store_watch_next_rev(const struct store_watch *w)
{
	return w->next_rev;
}

void store_watch_batch_free(struct store_watch_batch *batch)
{
	free(batch->events);
	batch->events = NULL;
	batch->n = 0;
}

void store_watch_cancel(struct store_watch *w)
{
	if (!w)
		return;
	unlink_watch(w);
	free(w->key);
	free(w->end);
	free(w);
}

void store__watch_compacted(struct store *s, int64_t rev)
{
	for (struct store_watch *w = s->watches; w; w = w->next)
		if (!w->canceled && w->next_rev <= rev) {
			w->canceled = STORE_ECOMPACTED;
			w->compact_rev = rev;
		}
}

void store__watch_cancel_all(struct store *s)
{
	while (s->watches) {
		struct store_watch *w = s->watches;
		w->canceled = STORE_EWATCHCANCELED;
		unlink_watch(w);
	}
}
