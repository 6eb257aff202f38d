/*
 * lease.c: leases (seeds 000, 002). A lease is {id, ttl, expiry, attached keys}. The store keeps
 * no clock: grant and renew take the caller's now_ms, and expiry is only *reported*
 * (store_lease_expired) so that the leader can propose revokes; every member deletes the keys when
 * it applies that revoke, in one revision. Leases sit in an array sorted by id (binary search).
 */
#include "store_internal.h"

#include <errno.h>

static size_t lease_pos(const struct store *s, int64_t id)
{
	size_t lo = 0, hi = s->n_leases;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->leases[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct store__lease *store__lease_find(const struct store *s, int64_t id)
{
	size_t i = lease_pos(s, id);
	return i < s->n_leases && s->leases[i]->id == id ? s->leases[i] : NULL;
}

void store__lease_attach(struct store *s, int64_t id, struct store__ki *ki)
{
	struct store__lease *l = store__lease_find(s, id);
	if (!l)
		return;
	if (l->n_keys == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 4;
		l->keys = store__xrealloc(l->keys, l->cap * sizeof *l->keys);
	}
	l->keys[l->n_keys++] = ki;
}

void store__lease_detach(struct store *s, int64_t id, struct store__ki *ki)
{
	struct store__lease *l = store__lease_find(s, id);
	if (!l)
		return;
	for (size_t i = 0; i < l->n_keys; i++)
		if (l->keys[i] == ki) {
			l->keys[i] = l->keys[--l->n_keys];
			return;
		}
}

void store__leases_free(struct store *s)
{
	for (size_t i = 0; i < s->n_leases; i++) {
		free(s->leases[i]->keys);
		free(s->leases[i]);
	}
	free(s->leases);
	s->leases = NULL;
	s->n_leases = s->leases_cap = 0;
}

int store__lease_reattach(struct store *s)
{
	if (!s->n_leases && !s->leased)
		return 0; /* no key can name a lease */
	for (size_t i = 0; i < s->n_leases; i++)
		s->leases[i]->n_keys = 0;
	struct store__iter it;
	store__index_seek(&s->idx, NULL, 0, &it);
	for (struct store__ki *ki; (ki = store__iter_next(&it));) {
		struct store__kv *kv = store__ki_latest(ki);
		int64_t id = kv ? store__kv_lease(kv) : 0;
		if (id) {
			if (!store__lease_find(s, id))
				return STORE_ECORRUPT;
			store__lease_attach(s, id, ki);
		}
	}
	return 0;
}

/* Inserts a lease record (used by grant and restore); -EEXIST-like code when present. */
static int lease_insert(struct store *s, int64_t id, int64_t ttl_s, int64_t expiry_ms)
{
	size_t i = lease_pos(s, id);
	if (i < s->n_leases && s->leases[i]->id == id)
		return STORE_ELEASEEXISTS;
	if (s->n_leases == s->leases_cap) {
		s->leases_cap = s->leases_cap ? s->leases_cap * 2 : 16;
		s->leases = store__xrealloc(s->leases, s->leases_cap * sizeof *s->leases);
	}
	struct store__lease *l = store__xcalloc(1, sizeof *l);
	l->id = id;
	l->ttl_s = ttl_s;
	l->expiry_ms = expiry_ms;
	memmove(s->leases + i + 1, s->leases + i, (s->n_leases - i) * sizeof *s->leases);
	s->leases[i] = l;
	s->n_leases++;
	return 0;
}

int store__lease_restore(struct store *s, int64_t id, int64_t ttl_s)
{
	return lease_insert(s, id, ttl_s, INT64_MAX);
}

static int64_t expiry(int64_t now_ms, int64_t ttl_s)
{
	if (ttl_s > (INT64_MAX - now_ms) / 1000)
		return INT64_MAX;
	return now_ms + ttl_s * 1000;
}

int store_lease_grant(struct store *s, int64_t id, int64_t ttl_s, int64_t now_ms)
{
	if (id <= 0)
		return -EINVAL;
	if (ttl_s < s->min_ttl)
		ttl_s = s->min_ttl;
	return lease_insert(s, id, ttl_s, expiry(now_ms, ttl_s));
}

static int ki_order(const void *a, const void *b)
{
	const struct store__ki *x = *(struct store__ki *const *)a, *y = *(struct store__ki *const *)b;
	return store__keycmp(x->key, x->key_len, y->key, y->key_len);
}

int store_lease_revoke(struct store *s, int64_t id)
{
	size_t i = lease_pos(s, id);
	if (i >= s->n_leases || s->leases[i]->id != id)
		return STORE_ELEASENOTFOUND;
	struct store__lease *l = s->leases[i];
	s->wrote = false;
	/* delete in key order so every member writes the same sub revisions */
	size_t n = l->n_keys;
	struct store__ki **keys = store__xmalloc((n ? n : 1) * sizeof *keys);
	if (n)
		memcpy(keys, l->keys, n * sizeof *keys);
	qsort(keys, n, sizeof *keys, ki_order);
	for (size_t k = 0; k < n; k++)
		store__delete_ki(s, keys[k], NULL); /* detaches it */
	free(keys);
	s->wrote = false;
	free(l->keys);
	free(l);
	memmove(s->leases + i, s->leases + i + 1, (s->n_leases - i - 1) * sizeof *s->leases);
	s->n_leases--;
	return 0;
}

int store_lease_renew(struct store *s, int64_t id, int64_t now_ms, int64_t *ttl_s)
{
	struct store__lease *l = store__lease_find(s, id);
	if (!l)
		return STORE_ELEASENOTFOUND;
	l->expiry_ms = expiry(now_ms, l->ttl_s);
	if (ttl_s)
		*ttl_s = l->ttl_s;
	return 0;
}

int store_lease_time_to_live(struct store *s, int64_t id, int64_t now_ms,
			     struct store_lease_info *info)
{
	struct store__lease *l = store__lease_find(s, id);
	if (!l)
		return STORE_ELEASENOTFOUND;
	info->id = id;
	info->ttl_s = l->ttl_s;
	info->remaining_ms = l->expiry_ms == INT64_MAX ? INT64_MAX
			     : l->expiry_ms > now_ms     ? l->expiry_ms - now_ms
							 : 0;
	info->n_keys = l->n_keys;
	return 0;
}

int store_lease_list(struct store *s, int64_t **ids, size_t *n)
{
	*ids = store__xmalloc((s->n_leases ? s->n_leases : 1) * sizeof **ids);
	for (size_t i = 0; i < s->n_leases; i++)
		(*ids)[i] = s->leases[i]->id;
	*n = s->n_leases;
	return 0;
}

int store_lease_expired(struct store *s, int64_t now_ms, size_t max, int64_t **ids, size_t *n)
{
	*ids = store__xmalloc((max ? max : 1) * sizeof **ids);
	*n = 0;
	for (size_t i = 0; i < s->n_leases && *n < max; i++)
		if (s->leases[i]->expiry_ms <= now_ms)
			(*ids)[(*n)++] = s->leases[i]->id;
	return 0;
}

void store_lease_promote(struct store *s, int64_t now_ms)
{
	for (size_t i = 0; i < s->n_leases; i++)
		s->leases[i]->expiry_ms = expiry(now_ms, s->leases[i]->ttl_s);
}
