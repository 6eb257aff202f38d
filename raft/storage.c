/*
 * storage.c: raft_memory_storage, the in-memory implementation of struct raft_storage (etcd's
 * MemoryStorage). It holds a copy of the hard state, the newest snapshot and the log after it. The
 * log array keeps a dummy entry at position 0 whose index and term are those of the snapshot, so
 * term(first_index - 1) is always answerable.
 */
#include "raft.h"
#include "payload_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct raft_memory_storage {
	struct raft_hard_state hs;  /* last set hard state */
	struct raft_snapshot snap;  /* newest snapshot; data owned */
	int unloaded;               /* snap's data is not in memory: load reads it when asked */
	raft_snapshot_load_fn load;
	void *load_arg;
	struct raft_entry *ents;    /* ents[0] is the dummy; payloads in pl */
	struct raft__payloads pl;   /* payloads of ents, released by compaction */
	size_t n, cap;              /* entries used / allocated */
};

static int entry_copy(struct raft_memory_storage *ms, struct raft_entry *dst,
		      const struct raft_entry *src)
{
	*dst = *src;
	dst->data = NULL;
	if (src->len) {
		dst->data = raft__payload_alloc(&ms->pl, src->len, src->index);
		if (!dst->data)
			return -ENOMEM;
		memcpy(dst->data, src->data, src->len);
	}
	return 0;
}

struct raft_memory_storage *raft_memory_storage_new(void)
{
	struct raft_memory_storage *ms = calloc(1, sizeof *ms);
	if (!ms)
		return NULL;
	ms->cap = 16;
	ms->ents = calloc(ms->cap, sizeof *ms->ents);
	if (!ms->ents) {
		free(ms);
		return NULL;
	}
	ms->n = 1;
	return ms;
}

void raft_memory_storage_free(struct raft_memory_storage *ms)
{
	if (!ms)
		return;
	raft__payload_free(&ms->pl);
	free(ms->ents);
	free(ms->snap.data);
	free(ms);
}

static uint64_t ms_first(const struct raft_memory_storage *ms)
{
	return ms->ents[0].index + 1;
}

static uint64_t ms_last(const struct raft_memory_storage *ms)
{
	return ms->ents[0].index + ms->n - 1;
}

static int ms_initial_state(void *data, struct raft_hard_state *hs, struct raft_conf_state *cs)
{
	struct raft_memory_storage *ms = data;
	*hs = ms->hs;
	*cs = ms->snap.meta.conf;
	return 0;
}

static int ms_entries(void *data, uint64_t lo, uint64_t hi, uint64_t max_bytes,
		      const struct raft_entry **ents, size_t *n)
{
	struct raft_memory_storage *ms = data;
	uint64_t off = ms->ents[0].index;
	if (lo <= off)
		return RAFT_ECOMPACTED;
	if (hi > ms_last(ms) + 1 || lo > hi)
		return RAFT_EUNAVAILABLE;
	if (ms->n == 1)
		return RAFT_EUNAVAILABLE; /* only the dummy */
	const struct raft_entry *e = &ms->ents[lo - off];
	size_t cnt = (size_t)(hi - lo);
	if (cnt > 1) {
		uint64_t size = e[0].len;
		size_t k = 1;
		while (k < cnt) {
			size += e[k].len;
			if (size > max_bytes)
				break;
			k++;
		}
		cnt = k;
	}
	*ents = e;
	*n = cnt;
	return 0;
}

static int ms_term(void *data, uint64_t i, uint64_t *term)
{
	struct raft_memory_storage *ms = data;
	uint64_t off = ms->ents[0].index;
	if (i < off)
		return RAFT_ECOMPACTED;
	if (i - off >= ms->n)
		return RAFT_EUNAVAILABLE;
	*term = ms->ents[i - off].term;
	return 0;
}

static int ms_first_index(void *data, uint64_t *index)
{
	*index = ms_first(data);
	return 0;
}

static int ms_last_index(void *data, uint64_t *index)
{
	*index = ms_last(data);
	return 0;
}

static int ms_snapshot(void *data, const struct raft_snapshot **snap)
{
	struct raft_memory_storage *ms = data;
	if (ms->unloaded) {
		uint8_t *d = NULL;
		size_t len = 0;
		if (!ms->load || ms->load(ms->load_arg, &ms->snap.meta, &d, &len) != 0)
			return RAFT_ESNAPTEMPUNAVAILABLE; /* raft asks again later */
		ms->snap.data = d;
		ms->snap.len = len;
		ms->unloaded = 0;
	}
	*snap = &ms->snap;
	return 0;
}

void raft_memory_storage_set_loader(struct raft_memory_storage *ms, raft_snapshot_load_fn load,
				    void *arg)
{
	ms->load = load;
	ms->load_arg = arg;
}

void raft_memory_storage_bind(struct raft_memory_storage *ms, struct raft_storage *st)
{
	st->data = ms;
	st->initial_state = ms_initial_state;
	st->entries = ms_entries;
	st->term = ms_term;
	st->first_index = ms_first_index;
	st->last_index = ms_last_index;
	st->snapshot = ms_snapshot;
}

int raft_memory_storage_set_hard_state(struct raft_memory_storage *ms,
				       const struct raft_hard_state *hs)
{
	ms->hs = *hs;
	return 0;
}

int raft_memory_storage_set_conf_state(struct raft_memory_storage *ms,
				       const struct raft_conf_state *cs)
{
	ms->snap.meta.conf = *cs;
	return 0;
}

static int ms_reserve(struct raft_memory_storage *ms, size_t n)
{
	if (n <= ms->cap)
		return 0;
	size_t cap = ms->cap * 2;
	while (cap < n)
		cap *= 2;
	struct raft_entry *e = realloc(ms->ents, cap * sizeof *e);
	if (!e)
		return -ENOMEM;
	ms->ents = e;
	ms->cap = cap;
	return 0;
}

int raft_memory_storage_append(struct raft_memory_storage *ms, const struct raft_entry *ents,
			       size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 1; i < n; i++)
		if (ents[i].index != ents[i - 1].index + 1)
			return RAFT_EINVAL;
	uint64_t first = ms_first(ms);
	uint64_t last = ents[0].index + n - 1;
	if (last < first)
		return 0; /* all compacted already */
	if (first > ents[0].index) {
		size_t skip = (size_t)(first - ents[0].index);
		ents += skip;
		n -= skip;
	}
	uint64_t off = ents[0].index - ms->ents[0].index;
	if (off > ms->n)
		return RAFT_EINVAL; /* gap */
	/* Truncate the conflicting (or overwritten) suffix; its payloads go with their chunks. */
	ms->n = (size_t)off;
	int rv = ms_reserve(ms, ms->n + n);
	if (rv)
		return rv;
	for (size_t i = 0; i < n; i++) {
		rv = entry_copy(ms, &ms->ents[ms->n], &ents[i]);
		if (rv)
			return rv;
		ms->n++;
	}
	return 0;
}

int raft_memory_storage_compact(struct raft_memory_storage *ms, uint64_t compact_index)
{
	uint64_t off = ms->ents[0].index;
	if (compact_index <= off)
		return RAFT_ECOMPACTED;
	if (compact_index > ms_last(ms))
		return RAFT_EUNAVAILABLE;
	size_t k = (size_t)(compact_index - off);
	/* ents[k] becomes the dummy: keep its index and term, drop its data. */
	memmove(ms->ents, ms->ents + k, (ms->n - k) * sizeof *ms->ents);
	ms->n -= k;
	ms->ents[0].data = NULL;
	ms->ents[0].len = 0;
	raft__payload_release_to(&ms->pl, compact_index, ms->n == 1);
	return 0;
}

/* Sets the snapshot to meta with data, which ms takes (malloc'd; NULL when len is 0). */
static void snap_take(struct raft_memory_storage *ms, const struct raft_snapshot_meta *meta,
		      uint8_t *data, size_t len)
{
	free(ms->snap.data);
	ms->snap.meta = *meta;
	ms->snap.data = data;
	ms->snap.len = len;
	ms->unloaded = 0;
}

static int snap_set(struct raft_memory_storage *ms, const struct raft_snapshot_meta *meta,
		    const uint8_t *data, size_t len)
{
	uint8_t *copy = NULL;
	if (len) {
		copy = malloc(len);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, data, len);
	}
	snap_take(ms, meta, copy, len);
	return 0;
}

int raft_memory_storage_apply_snapshot(struct raft_memory_storage *ms,
				       const struct raft_snapshot *snap)
{
	if (snap->meta.index <= ms->snap.meta.index && ms->snap.meta.index != 0)
		return RAFT_ESNAPOUTOFDATE;
	int rv = snap_set(ms, &snap->meta, snap->data, snap->len);
	if (rv)
		return rv;
	raft__payload_release_all(&ms->pl);
	ms->n = 1;
	memset(&ms->ents[0], 0, sizeof ms->ents[0]);
	ms->ents[0].index = snap->meta.index;
	ms->ents[0].term = snap->meta.term;
	return 0;
}

/* The metadata of a snapshot created at index i with conf cs (NULL: keep), once checked. */
static int snapshot_meta_at(const struct raft_memory_storage *ms, uint64_t i,
			    const struct raft_conf_state *cs, struct raft_snapshot_meta *meta)
{
	if (i <= ms->snap.meta.index)
		return RAFT_ESNAPOUTOFDATE;
	if (i > ms_last(ms))
		return RAFT_EUNAVAILABLE;
	*meta = ms->snap.meta;
	meta->index = i;
	meta->term = ms->ents[i - ms->ents[0].index].term;
	if (cs)
		meta->conf = *cs;
	return 0;
}

int raft_memory_storage_create_snapshot(struct raft_memory_storage *ms, uint64_t i,
					const struct raft_conf_state *cs, const uint8_t *data,
					size_t len)
{
	struct raft_snapshot_meta meta;
	int rv = snapshot_meta_at(ms, i, cs, &meta);
	return rv ? rv : snap_set(ms, &meta, data, len);
}

int raft_memory_storage_adopt_snapshot(struct raft_memory_storage *ms, uint64_t i,
				       const struct raft_conf_state *cs, uint8_t *data, size_t len)
{
	struct raft_snapshot_meta meta;
	int rv = snapshot_meta_at(ms, i, cs, &meta);
	if (rv == 0) {
		snap_take(ms, &meta, data, len);
		ms->unloaded = !data;
	}
	return rv;
}

int raft_memory_storage_bootstrap(struct raft_memory_storage *ms, const struct raft_conf_state *cs)
{
	if (ms_last(ms) != 0 || ms->snap.meta.index != 0)
		return RAFT_EINVAL;
	size_t n = cs->n_voters + cs->n_learners;
	if (n == 0 || n > RAFT_MAX_MEMBERS)
		return RAFT_EINVAL;
	for (size_t i = 0; i < n; i++) {
		struct raft_conf_change cc = {
			.type = i < cs->n_voters ? RAFT_CONF_ADD_NODE : RAFT_CONF_ADD_LEARNER_NODE,
			.node_id = i < cs->n_voters ? cs->voters[i] : cs->learners[i - cs->n_voters],
		};
		uint8_t buf[64];
		struct raft_entry e = {
			.term = 1,
			.index = i + 1,
			.type = RAFT_ENTRY_CONF_CHANGE,
			.data = buf,
			.len = raft_conf_change_encode(&cc, buf),
		};
		int rv = raft_memory_storage_append(ms, &e, 1);
		if (rv)
			return rv;
	}
	ms->snap.meta.conf = *cs;
	ms->hs.term = 1;
	ms->hs.commit = n;
	return 0;
}
