/*
 * test_model.c: a randomized model-based test of the store against a deliberately naive reference,
 * a list of every change ever applied (revision, key, value, tombstone). The reference answers
 * range-at-revision by scanning the whole list; the store must agree on every field for ranges at
 * random revisions and key ranges, through puts, deletes, delete ranges, txns (compares on value,
 * version, create, mod with = != < >), compactions (with the exact set of revisions a compaction
 * keeps) and watches (events in order, never twice, whole revisions, catch-up from history,
 * compacted cancels), then a snapshot round trip that must give the same hash and answers. Along
 * the way hash_kv is asked at random revisions, so its running sum moves through compactions, and
 * at each snapshot it must equal the restored copy's, computed afresh.
 * Prints its seed; replay with CHECK_SEED=<seed>.
 */
#include "check.h"
#include "store.h"
#include "store_internal.h"

#include <stdio.h>

#define NKEYS 24
#define MAXE 6000

struct ment {
	int64_t main, sub;
	char key[8];
	char val[24];
	bool tomb;
	int64_t create, version;
	int64_t lease;
};

static struct ment mlog[MAXE];
static size_t mn;
static uint64_t rng;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static unsigned rn(unsigned n) { return (unsigned)(rnd() % n); }

static void key_name(unsigned i, char out[8])
{
	/* a few prefixes: a/.., b/.., c */
	snprintf(out, 8, "%c/%02u", "abc"[i % 3], i);
}

/* The model's newest entry for key at revision at (NULL: none). */
static const struct ment *m_get(const char *key, int64_t at)
{
	const struct ment *r = NULL;
	for (size_t i = 0; i < mn && mlog[i].main <= at; i++)
		if (!strcmp(mlog[i].key, key))
			r = &mlog[i];
	return r && !r->tomb ? r : NULL;
}

static int64_t m_lease; /* lease of the next m_add */

static void m_add(int64_t main, int64_t sub, const char *key, const char *val, bool tomb)
{
	const struct ment *cur = m_get(key, INT64_MAX);
	struct ment *e = &mlog[mn++];
	memset(e, 0, sizeof *e);
	e->main = main;
	e->sub = sub;
	snprintf(e->key, sizeof e->key, "%s", key);
	if (val)
		snprintf(e->val, sizeof e->val, "%s", val);
	e->tomb = tomb;
	e->create = tomb ? 0 : cur ? cur->create : main;
	e->version = tomb ? 0 : cur ? cur->version + 1 : 1;
	e->lease = tomb ? 0 : m_lease;
	m_lease = 0;
}

static bool in_rng(const char *k, const char *from, const char *to)
{
	if (!to)
		return !strcmp(k, from);
	return strcmp(k, from) >= 0 && strcmp(k, to) < 0;
}

struct wst {
	struct store_watch *w;
	char from[8], to[8];
	bool single;
	int64_t start;
	size_t seen; /* events checked so far */
	int64_t last_rev, last_sub;
	bool done;
	bool prev_kv; /* asked for previous kvs */
};

/* Checks a watch batch against the model: the next events of the range after start. */
static void check_batch(struct wst *ws, const struct store_watch_batch *b)
{
	/* expected events: model entries with main in [start..b->rev], in range, after `seen` */
	size_t k = 0;
	for (size_t i = 0; i < mn && mlog[i].main <= b->rev; i++) {
		const struct ment *e = &mlog[i];
		if (e->main < ws->start || !in_rng(e->key, ws->from, ws->single ? NULL : ws->to))
			continue;
		if (k++ < ws->seen)
			continue;
		size_t j = k - 1 - ws->seen;
		CHECK_LT(j, b->n);
		const struct store_event *ev = &b->events[j];
		CHECK_EQ(ev->type, e->tomb ? STORE_EVENT_DELETE : STORE_EVENT_PUT);
		CHECK_EQ(ev->kv.mod_revision, e->main);
		CHECK_EQ(ev->kv.mod_sub, e->sub);
		CHECK_EQ(ev->kv.key_len, strlen(e->key));
		CHECK_MEM_EQ(ev->kv.key, e->key, strlen(e->key));
		if (!e->tomb) {
			CHECK_EQ(ev->kv.value_len, strlen(e->val));
			CHECK_MEM_EQ(ev->kv.value, e->val, strlen(e->val));
			CHECK_EQ(ev->kv.version, e->version);
			CHECK_EQ(ev->kv.create_revision, e->create);
		}
		if (ws->prev_kv) {
			/* the previous entry of the key; always still stored, as the event is */
			const struct ment *p = NULL;
			for (size_t q = 0; q < i; q++)
				if (!strcmp(mlog[q].key, e->key))
					p = &mlog[q];
			bool want = p && !p->tomb;
			CHECK_EQ(ev->has_prev, want);
			if (want) {
				CHECK_EQ(ev->prev.mod_revision, p->main);
				CHECK_EQ(ev->prev.mod_sub, p->sub);
				CHECK_EQ(ev->prev.value_len, strlen(p->val));
				CHECK_MEM_EQ(ev->prev.value, p->val, strlen(p->val));
			}
		}
		/* strictly increasing, never twice */
		CHECK(ev->kv.mod_revision > ws->last_rev ||
		      (ev->kv.mod_revision == ws->last_rev && ev->kv.mod_sub > ws->last_sub));
		ws->last_rev = ev->kv.mod_revision;
		ws->last_sub = ev->kv.mod_sub;
	}
	CHECK_EQ(k - ws->seen, b->n);
	/* whole revisions: the batch ends at b->rev and the next event (if any) is later */
	if (b->n)
		CHECK_EQ(b->events[b->n - 1].kv.mod_revision <= b->rev, 1);
	ws->seen = k;
}

static void check_range(struct store *s, int64_t at, const char *from, const char *to)
{
	struct store_range_req rq = {.key = from, .key_len = strlen(from), .rev = at};
	if (to) {
		rq.end = to;
		rq.end_len = strlen(to);
	}
	int64_t limit = rn(4) == 0 ? 1 + rn(5) : 0;
	rq.limit = limit;
	struct store_range_result res;
	CHECK_EQ(store_range(s, &rq, &res), 0);
	size_t n = 0;
	int64_t count = 0;
	for (unsigned i = 0; i < NKEYS; i++) {
		char k[8];
		key_name(i, k);
		(void)k;
	}
	/* walk the model's keys in sorted order: keys sort by name, so gather and sort */
	char keys[NKEYS][8];
	for (unsigned i = 0; i < NKEYS; i++)
		key_name(i, keys[i]);
	qsort(keys, NKEYS, 8, (int (*)(const void *, const void *))strcmp);
	for (unsigned i = 0; i < NKEYS; i++) {
		if (!in_rng(keys[i], from, to))
			continue;
		const struct ment *e = m_get(keys[i], at ? at : INT64_MAX);
		if (!e)
			continue;
		count++;
		if (limit && (int64_t)n >= limit)
			continue;
		CHECK_LT(n, res.n);
		const struct store_kv *kv = &res.kvs[n++];
		CHECK_EQ(kv->key_len, strlen(keys[i]));
		CHECK_MEM_EQ(kv->key, keys[i], kv->key_len);
		CHECK_EQ(kv->value_len, strlen(e->val));
		CHECK_MEM_EQ(kv->value, e->val, kv->value_len);
		CHECK_EQ(kv->mod_revision, e->main);
		CHECK_EQ(kv->create_revision, e->create);
		CHECK_EQ(kv->version, e->version);
		CHECK_EQ(kv->lease, e->lease);
	}
	CHECK_EQ(res.n, n);
	CHECK_EQ(res.count, count);
	CHECK_EQ(res.more, limit && count > limit);
	store_range_result_free(&res);
}

/* store_get, the point range without allocation, against the model */
static void check_get(struct store *s, int64_t at, const char *key)
{
	struct store_kv kv;
	const struct ment *e = m_get(key, at ? at : INT64_MAX);
	int r = store_get(s, key, strlen(key), at, &kv);
	if (!e) {
		CHECK_EQ(r, STORE_EKEYNOTFOUND);
		return;
	}
	CHECK_EQ(r, 0);
	CHECK_EQ(kv.key_len, strlen(key));
	CHECK_MEM_EQ(kv.key, key, kv.key_len);
	CHECK_EQ(kv.value_len, strlen(e->val));
	CHECK_MEM_EQ(kv.value, e->val, kv.value_len);
	CHECK_EQ(kv.mod_revision, e->main);
	CHECK_EQ(kv.create_revision, e->create);
	CHECK_EQ(kv.version, e->version);
	CHECK_EQ(kv.lease, e->lease);
}

static size_t expected_kept(int64_t c)
{
	size_t kept = 0;
	for (size_t i = 0; i < mn; i++)
		if (mlog[i].main > c)
			kept++;
	for (unsigned i = 0; i < NKEYS; i++) {
		char k[8];
		key_name(i, k);
		const struct ment *r = NULL;
		for (size_t j = 0; j < mn && mlog[j].main <= c; j++)
			if (!strcmp(mlog[j].key, k))
				r = &mlog[j];
		if (r && !r->tomb)
			kept++;
	}
	return kept;
}

static void rand_range(char from[8], char to[8], bool *single)
{
	unsigned a = rn(NKEYS), b = rn(NKEYS);
	*single = rn(3) == 0;
	key_name(a, from);
	key_name(b, to);
	if (rn(3) == 0) { /* a prefix */
		from[1] = 0;
		to[0] = (char)(from[0] + 1);
		to[1] = 0;
		*single = false;
	} else if (strcmp(from, to) > 0) {
		char t[8];
		memcpy(t, from, 8);
		memcpy(from, to, 8);
		memcpy(to, t, 8);
	}
}

static void one_run(uint64_t seed, int steps)
{
	rng = seed * 2654435761u + 1;
	mn = 0;
	struct store *s;
	CHECK_EQ(store_open(NULL, &s), 0);
	struct wst ws[4];
	memset(ws, 0, sizeof ws);
	int64_t compacted = 0;
	bool leases[4] = {false};
	for (int step = 0; step < steps && mn < MAXE - 40; step++) {
		unsigned op = rn(100);
		char key[8], val[24];
		key_name(rn(NKEYS), key);
		snprintf(val, sizeof val, "v%d.%u", step, rn(1000));
		if (rn(300) == 0) {
			/* go on from a snapshot of the store (watches do not survive it) */
			for (int i = 0; i < 4; i++) {
				store_watch_cancel(ws[i].w);
				ws[i].w = NULL;
			}
			void *img;
			size_t len;
			CHECK_EQ(store_snapshot_save_buf(s, &img, &len), 0);
			struct store *t;
			CHECK_EQ(store_open(NULL, &t), 0);
			CHECK_EQ(store_snapshot_restore(t, img, len), 0);
			free(img);
			/* s's hash is kept as it went (through the compactions and the revisions asked
			   below), and is asked at its head first, so the older revisions take the sum
			   back; t's is computed afresh, asked in ascending order: they agree */
			int64_t lo = compacted > 1 ? compacted : 1, at[3];
			for (int k = 0; k < 2; k++)
				at[k] = lo + (int64_t)rn((unsigned)(store_rev(s) - lo + 1));
			if (at[0] > at[1]) {
				int64_t x = at[0];
				at[0] = at[1];
				at[1] = x;
			}
			at[2] = store_rev(s);
			uint64_t h1[3], h2[3];
			CHECK_EQ(store_hash_kv(s, at[2], &h1[2]), 0);
			for (int k = 0; k < 3; k++) {
				if (k < 2)
					CHECK_EQ(store_hash_kv(s, at[k], &h1[k]), 0);
				CHECK_EQ(store_hash_kv(t, at[k], &h2[k]), 0);
				CHECK_EQ_U64(h1[k], h2[k]);
			}
			store_close(s);
			s = t;
		}
		if (rn(20) == 0) { /* moves the hash's running sum on (or asks below it) */
			int64_t lo = compacted > 1 ? compacted : 1;
			uint64_t h;
			CHECK_EQ(store_hash_kv(s, lo + (int64_t)rn((unsigned)(store_rev(s) - lo + 1)), &h),
				 0);
		}
		if (op < 35) {
			int64_t lease = 0;
			unsigned l = 1 + rn(3);
			if (rn(3) == 0 && leases[l])
				lease = l;
			struct store_put p = {.key = key, .key_len = strlen(key), .value = val,
					      .value_len = strlen(val), .flags = STORE_PUT_PREV_KV,
					      .lease = lease};
			struct store_put_result pr;
			const struct ment *old = m_get(key, INT64_MAX);
			CHECK_EQ(store_put(s, &p, &pr), 0);
			CHECK_EQ(pr.has_prev, old != NULL);
			if (old)
				CHECK_EQ(pr.prev.mod_revision, old->main);
			m_lease = lease;
			m_add(pr.rev, 0, key, val, false);
			CHECK_EQ(pr.rev, store_rev(s));
		} else if (op < 45) {
			char from[8], to[8];
			bool single;
			rand_range(from, to, &single);
			struct store_delete d = {.key = from, .key_len = strlen(from), .prev_kv = true};
			if (!single) {
				d.end = to;
				d.end_len = strlen(to);
			}
			int64_t before = store_rev(s);
			struct store_delete_result dr;
			CHECK_EQ(store_delete_range(s, &d, &dr), 0);
			char keys[NKEYS][8];
			for (unsigned i = 0; i < NKEYS; i++)
				key_name(i, keys[i]);
			qsort(keys, NKEYS, 8, (int (*)(const void *, const void *))strcmp);
			int64_t sub = 0;
			for (unsigned i = 0; i < NKEYS; i++)
				if (in_rng(keys[i], from, single ? NULL : to) && m_get(keys[i], INT64_MAX)) {
					CHECK_LT(sub, (int64_t)dr.n_prev);
					CHECK_MEM_EQ(dr.prev_kvs[sub].key, keys[i], strlen(keys[i]));
					m_add(before + 1, sub++, keys[i], NULL, true);
				}
			CHECK_EQ(dr.deleted, sub);
			CHECK_EQ(store_rev(s), before + (sub ? 1 : 0));
			store_delete_result_free(&dr);
		} else if (op < 65) {
			/* txn: one compare, 1-3 ops per branch */
			struct store_cmp c = {.key = key, .key_len = strlen(key)};
			c.target = (enum store_cmp_target)rn(4);
			c.result = (enum store_cmp_result)rn(4);
			const struct ment *cur = m_get(key, INT64_MAX);
			char cval[24];
			snprintf(cval, sizeof cval, "%s", cur && rn(2) ? cur->val : "v5");
			c.value = cval;
			c.value_len = strlen(cval);
			c.num = cur && rn(2) ? (c.target == STORE_CMP_VERSION ? cur->version
						: c.target == STORE_CMP_CREATE ? cur->create
									       : cur->main)
					     : (int64_t)rn(5);
			int64_t have = 0;
			bool ok;
			if (c.target == STORE_CMP_VALUE && !cur) {
				ok = false;
			} else {
				int64_t x;
				if (c.target == STORE_CMP_VALUE) {
					int sc = strcmp(cur->val, cval);
					x = sc < 0 ? -1 : sc > 0;
					have = 0;
				} else {
					x = !cur ? 0 : c.target == STORE_CMP_VERSION ? cur->version
						: c.target == STORE_CMP_CREATE ? cur->create : cur->main;
					have = c.num;
				}
				ok = c.result == STORE_CMP_EQ ? x == have : c.result == STORE_CMP_NE ? x != have
					: c.result == STORE_CMP_LT ? x < have : x > have;
			}
			struct store_op ops[2][3];
			char keys[2][3][8], vals[2][3][24];
			unsigned nops[2];
			memset(ops, 0, sizeof ops);
			for (int br = 0; br < 2; br++) {
				nops[br] = 1 + rn(3);
				for (unsigned i = 0; i < nops[br]; i++) {
					key_name(rn(NKEYS), keys[br][i]);
					snprintf(vals[br][i], 24, "t%d.%d.%u", step, br, i);
					unsigned t = rn(3);
					ops[br][i].type = (enum store_op_type)t;
					if (t == STORE_OP_PUT) {
						ops[br][i].put = (struct store_put){.key = keys[br][i],
							.key_len = strlen(keys[br][i]), .value = vals[br][i],
							.value_len = strlen(vals[br][i])};
					} else if (t == STORE_OP_DELETE) {
						ops[br][i].del = (struct store_delete){.key = keys[br][i],
							.key_len = strlen(keys[br][i])};
					} else {
						ops[br][i].range = (struct store_range_req){.key = keys[br][i],
							.key_len = strlen(keys[br][i])};
					}
				}
			}
			struct store_txn t = {&c, 1, ops[0], nops[0], ops[1], nops[1]};
			struct store_txn_result tr;
			int64_t before = store_rev(s);
			CHECK_EQ(store_txn(s, &t, &tr), 0);
			CHECK_EQ(tr.succeeded, ok);
			int br = ok ? 0 : 1;
			int64_t sub = 0;
			for (unsigned i = 0; i < nops[br]; i++) {
				const char *k = keys[br][i];
				if (ops[br][i].type == STORE_OP_PUT) {
					m_add(before + 1, sub++, k, vals[br][i], false);
				} else if (ops[br][i].type == STORE_OP_DELETE) {
					if (m_get(k, INT64_MAX)) {
						m_add(before + 1, sub++, k, NULL, true);
						CHECK_EQ(tr.results[i].del.deleted, 1);
					} else {
						CHECK_EQ(tr.results[i].del.deleted, 0);
					}
				} else {
					/* reads see the txn's own earlier writes */
					const struct ment *e = m_get(k, INT64_MAX);
					CHECK_EQ(tr.results[i].range.n, e ? 1 : 0);
					if (e) {
						CHECK_EQ(tr.results[i].range.kvs[0].value_len, strlen(e->val));
						CHECK_MEM_EQ(tr.results[i].range.kvs[0].value, e->val,
							     strlen(e->val));
						CHECK_EQ(tr.results[i].range.kvs[0].version, e->version);
					}
				}
			}
			CHECK_EQ(tr.rev, before + (sub ? 1 : 0));
			CHECK_EQ(store_rev(s), tr.rev);
			store_txn_result_free(&tr);
		} else if (op < 85) {
			char from[8], to[8];
			bool single;
			rand_range(from, to, &single);
			int64_t lo = compacted > 1 ? compacted : 1;
			int64_t at = rn(4) == 0 ? 0 : lo + (int64_t)rn((unsigned)(store_rev(s) - lo + 1));
			check_range(s, at, from, single ? NULL : to);
			if (single)
				check_get(s, at, from);
			struct store_range_req rq = {.key = from, .key_len = strlen(from),
						     .rev = store_rev(s) + 1};
			struct store_range_result res;
			struct store_kv kv;
			CHECK_EQ(store_range(s, &rq, &res), STORE_EFUTUREREV);
			CHECK_EQ(store_get(s, from, strlen(from), rq.rev, &kv), STORE_EFUTUREREV);
			if (compacted > 1) {
				rq.rev = compacted - 1;
				CHECK_EQ(store_range(s, &rq, &res), STORE_ECOMPACTED);
				CHECK_EQ(store_get(s, from, strlen(from), rq.rev, &kv),
					 STORE_ECOMPACTED);
			}
		} else if (op == 87) {
			/* leases: grant, or revoke (every attached key deleted in one revision) */
			int64_t l = 1 + rn(3);
			if (!leases[l]) {
				CHECK_EQ(store_lease_grant(s, l, 60, step), 0);
				leases[l] = true;
			} else {
				char keys[NKEYS][8];
				for (unsigned i = 0; i < NKEYS; i++)
					key_name(i, keys[i]);
				qsort(keys, NKEYS, 8, (int (*)(const void *, const void *))strcmp);
				int64_t before = store_rev(s), sub = 0;
				CHECK_EQ(store_lease_revoke(s, l), 0);
				for (unsigned i = 0; i < NKEYS; i++) {
					const struct ment *e = m_get(keys[i], INT64_MAX);
					if (e && e->lease == l)
						m_add(before + 1, sub++, keys[i], NULL, true);
				}
				CHECK_EQ(store_rev(s), before + (sub ? 1 : 0));
				CHECK_EQ(store_lease_revoke(s, l), STORE_ELEASENOTFOUND);
				leases[l] = false;
			}
		} else if (op < 88) {
			if (store_rev(s) > compacted + 1) {
				int64_t c = compacted + 1 + rn((unsigned)(store_rev(s) - compacted));
				CHECK_EQ(store_compact(s, c), 0);
				compacted = c;
				CHECK_EQ(s->log_n, expected_kept(c));
				CHECK_EQ(store_compact(s, c), STORE_ECOMPACTED);
			}
		} else if (op < 93) {
			struct wst *w = &ws[rn(4)];
			if (!w->w) {
				memset(w, 0, sizeof *w);
				rand_range(w->from, w->to, &w->single);
				w->prev_kv = rn(2);
				int64_t lo = compacted + 1;
				w->start = rn(3) == 0 ? 0 : lo + (int64_t)rn((unsigned)(store_rev(s) - lo + 2));
				int64_t crev = 0;
				CHECK_EQ(store_watch_create(s, w->from, strlen(w->from), w->single ? NULL : w->to,
							    w->single ? 0 : strlen(w->to), w->start,
							    w->prev_kv ? STORE_WATCH_PREV_KV : 0,
							    &w->w, &crev), 0);
				if (!w->start)
					w->start = store_rev(s) + 1;
				if (compacted) {
					struct store_watch *bad;
					CHECK_EQ(store_watch_create(s, "a", 1, NULL, 0, compacted, 0, &bad, &crev),
						 STORE_ECOMPACTED);
					CHECK_EQ(crev, compacted);
				}
			}
		} else {
			struct wst *w = &ws[rn(4)];
			if (w->w) {
				struct store_watch_batch b;
				int r = store_watch_next(w->w, 1 + rn(6), &b);
				if (r == STORE_ECOMPACTED) {
					CHECK_LE(b.compact_rev, compacted);
					CHECK_LE(store_watch_next_rev(w->w), b.compact_rev);
					store_watch_cancel(w->w);
					w->w = NULL;
				} else {
					CHECK_EQ(r, 0);
					check_batch(w, &b);
					CHECK_EQ(store_watch_next_rev(w->w), b.rev + 1);
					store_watch_batch_free(&b);
				}
			}
		}
	}
	/* drain watches: every event up to the head */
	for (int i = 0; i < 4; i++) {
		if (!ws[i].w)
			continue;
		struct store_watch_batch b;
		int r = store_watch_next(ws[i].w, SIZE_MAX, &b);
		if (r == 0) {
			check_batch(&ws[i], &b);
			CHECK_EQ(b.rev, store_rev(s));
			store_watch_batch_free(&b);
		} else {
			CHECK_EQ(r, STORE_ECOMPACTED);
		}
		store_watch_cancel(ws[i].w);
	}
	/* snapshot round trip: same hash, same answers */
	void *img;
	size_t len;
	CHECK_EQ(store_snapshot_save_buf(s, &img, &len), 0);
	struct store *t;
	CHECK_EQ(store_open(NULL, &t), 0);
	CHECK_EQ(store_snapshot_restore(t, img, len), 0);
	free(img);
	uint64_t h1, h2;
	CHECK_EQ(store_hash_kv(s, 0, &h1), 0);
	CHECK_EQ(store_hash_kv(t, 0, &h2), 0);
	CHECK_EQ_U64(h1, h2);
	CHECK_EQ(store_rev(t), store_rev(s));
	CHECK_EQ(store_compact_rev(t), store_compact_rev(s));
	for (int64_t at = compacted > 1 ? compacted : 1; at <= store_rev(s); at += 1 + rn(5)) {
		CHECK_EQ(store_hash_kv(s, at, &h1), 0);
		CHECK_EQ(store_hash_kv(t, at, &h2), 0);
		CHECK_EQ_U64(h1, h2);
		check_range(t, at, "\x01", "\x7f");
	}
	store_close(t);
	store_close(s);
}

CHECK_TEST(model_random)
{
	uint64_t seed = check_seed();
	for (int run = 0; run < 30; run++)
		one_run(seed + (uint64_t)run, 1500);
}

CHECK_SUITE("store-model", CHECK_CASE(model_random))
