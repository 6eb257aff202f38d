/*
 * test_kv.c: the store's behaviour case by case: seed 000's keyIndex examples (the compact(2),
 * compact(3), compact(4) walk-through and etcd's own keyIndex example), range options and errors,
 * put flags, txn atomicity as one revision, watches (order, no duplicates, whole revisions,
 * prev kv, progress, slow consumers catching up from history, compaction cancels), leases with an
 * injected clock, the quota alarm, snapshots (round trip, leases survive, corrupt images refused
 * without a crash) and compaction freeing memory (down to the arena's slabs).
 *
 * etcd's store starts at revision 1, so its first write is revision 2: the seeds' examples, whose
 * first write is revision 1, appear here with every revision one higher.
 */
#include "check.h"
#include "store.h"
#include "store_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <zstd.h>

static struct store *open_store(uint64_t quota)
{
	struct store_config cfg = {.quota_bytes = quota};
	struct store *s;
	CHECK_EQ(store_open(&cfg, &s), 0);
	return s;
}

/* A new store (cfg; NULL: the defaults) restored from a snapshot of s. */
static struct store *restored(struct store *s, const struct store_config *cfg)
{
	void *img;
	size_t len;
	struct store *t;
	CHECK_EQ(store_snapshot_save_buf(s, &img, &len), 0);
	CHECK_EQ(store_open(cfg, &t), 0);
	CHECK_EQ(store_snapshot_restore(t, img, len), 0);
	free(img);
	return t;
}

/* a and b hold the same key space (hash_kv at their current revisions). */
static void check_same_hash(struct store *a, struct store *b)
{
	uint64_t h1, h2;
	CHECK_EQ(store_hash_kv(a, 0, &h1), 0);
	CHECK_EQ(store_hash_kv(b, 0, &h2), 0);
	CHECK_EQ_U64(h1, h2);
}

static int64_t put(struct store *s, const char *k, const char *v)
{
	struct store_put p = {.key = k, .key_len = strlen(k), .value = v, .value_len = strlen(v)};
	struct store_put_result r;
	int e = store_put(s, &p, &r);
	return e ? e : r.rev;
}

static int64_t put_lease(struct store *s, const char *k, const char *v, int64_t lease)
{
	struct store_put p = {.key = k, .key_len = strlen(k), .value = v, .value_len = strlen(v),
			      .lease = lease};
	struct store_put_result r;
	int e = store_put(s, &p, &r);
	return e ? e : r.rev;
}

static int64_t del(struct store *s, const char *k)
{
	struct store_delete d = {.key = k, .key_len = strlen(k)};
	struct store_delete_result r;
	CHECK_EQ(store_delete_range(s, &d, &r), 0);
	store_delete_result_free(&r);
	return r.deleted;
}

/* The value of k at rev (0: current) into buf, or "" when absent; returns the range's code. */
static int get(struct store *s, const char *k, int64_t rev, char *buf, size_t cap)
{
	struct store_range_req rq = {.key = k, .key_len = strlen(k), .rev = rev};
	struct store_range_result res;
	int r = store_range(s, &rq, &res);
	buf[0] = 0;
	if (!r && res.n)
		snprintf(buf, cap, "%.*s", (int)res.kvs[0].value_len, (const char *)res.kvs[0].value);
	store_range_result_free(&res);
	return r;
}

/* Checks a generation: its revisions' mains (sub ignored), tombstone last when tomb. */
static void check_gen(const struct store__gen *g, const int64_t *mains, uint32_t n, bool tomb)
{
	CHECK_EQ(g->n, n);
	for (uint32_t i = 0; i < n; i++)
		CHECK_EQ(STORE__REVS(g)[i]->main, mains[i]);
	if (n)
		CHECK_EQ((STORE__REVS(g)[n - 1]->flags & STORE__TOMB) != 0, tomb);
}

CHECK_TEST(keyindex_seed000_walkthrough)
{
	/* seed 000: generations[0] = {1.0, 2.1(t)}, generations[1] = {3.3, ...}; here +1 */
	struct store *s = open_store(0);
	CHECK_EQ(put(s, "test", "a"), 2); /* 2.0 */
	struct store_op o1[2] = {{.type = STORE_OP_PUT,
				  .put = {.key = "o", .key_len = 1, .value = "x", .value_len = 1}},
				 {.type = STORE_OP_DELETE, .del = {.key = "test", .key_len = 4}}};
	struct store_txn t1 = {.success = o1, .n_success = 2};
	struct store_txn_result tr;
	CHECK_EQ(store_txn(s, &t1, &tr), 0); /* 3.0 put o, 3.1 tombstone test */
	store_txn_result_free(&tr);
	struct store_op o2[4];
	memset(o2, 0, sizeof o2);
	for (int i = 0; i < 3; i++)
		o2[i] = (struct store_op){.type = STORE_OP_PUT,
					  .put = {.key = "o", .key_len = 1, .value = "y", .value_len = 1}};
	o2[3] = (struct store_op){.type = STORE_OP_PUT,
				  .put = {.key = "test", .key_len = 4, .value = "b", .value_len = 1}};
	struct store_txn t2 = {.success = o2, .n_success = 4};
	CHECK_EQ(store_txn(s, &t2, &tr), 0); /* 4.0-4.2 o, 4.3 test */
	CHECK_EQ(tr.results[3].put.rev, 4);
	store_txn_result_free(&tr);
	CHECK_EQ(del(s, "test"), 1); /* 5.0 tombstone */

	struct store__ki *ki = store__index_get(&s->idx, "test", 4);
	CHECK(ki != NULL);
	CHECK_EQ(store__ki_ngens(ki), 3);
	check_gen(&STORE__GENS(ki)[0], (int64_t[]){2, 3}, 2, true);
	CHECK_EQ(STORE__REVS(&STORE__GENS(ki)[0])[1]->sub, 1);
	CHECK_EQ(STORE__GENS(ki)[0].created_main, 2);
	CHECK_EQ(STORE__GENS(ki)[1].created_main, 4);
	CHECK_EQ(STORE__GENS(ki)[1].created_sub, 3);
	check_gen(&STORE__GENS(ki)[1], (int64_t[]){4, 5}, 2, true);
	CHECK_EQ(STORE__GENS(ki)[2].n, 0);
	char v[16];
	CHECK_EQ(get(s, "test", 4, v, sizeof v), 0);
	CHECK_STR_EQ(v, "b");

	/* compact(2): the first generation, tombstoned at 2.1, goes */
	CHECK_EQ(store_compact(s, 3), 0);
	ki = store__index_get(&s->idx, "test", 4);
	CHECK_EQ(store__ki_ngens(ki), 2);
	check_gen(&STORE__GENS(ki)[0], (int64_t[]){4, 5}, 2, true);
	CHECK_EQ(get(s, "test", 3, v, sizeof v), 0);
	CHECK_STR_EQ(v, "");
	CHECK_EQ(get(s, "test", 2, v, sizeof v), STORE_ECOMPACTED);
	/* compact(3): 3.3 is the newest version <= 3 of a generation still alive at 3: it stays */
	CHECK_EQ(store_compact(s, 4), 0);
	ki = store__index_get(&s->idx, "test", 4);
	CHECK_EQ(store__ki_ngens(ki), 2);
	check_gen(&STORE__GENS(ki)[0], (int64_t[]){4, 5}, 2, true);
	CHECK_EQ(get(s, "test", 4, v, sizeof v), 0);
	CHECK_STR_EQ(v, "b");
	/* compact(4): the tombstone is <= 4: every generation is gone and so is the keyIndex */
	CHECK_EQ(store_compact(s, 5), 0);
	CHECK(store__index_get(&s->idx, "test", 4) == NULL);
	CHECK(store__index_get(&s->idx, "o", 1) != NULL);
	CHECK_EQ(s->log_n, 1); /* only o's 4.2 */
	store_close(s);
}

CHECK_TEST(keyindex_etcd_example)
{
	/* put(1.0) put(2.0) tombstone(3.0) put(4.0) tombstone(5.0), every revision +1 */
	struct store *s = open_store(0);
	put(s, "foo", "1");
	put(s, "foo", "2");
	del(s, "foo");
	put(s, "foo", "4");
	del(s, "foo");
	struct store__ki *ki = store__index_get(&s->idx, "foo", 3);
	CHECK_EQ(store__ki_ngens(ki), 3);
	check_gen(&STORE__GENS(ki)[0], (int64_t[]){2, 3, 4}, 3, true);
	CHECK_EQ(STORE__GENS(ki)[0].ver, 3);
	check_gen(&STORE__GENS(ki)[1], (int64_t[]){5, 6}, 2, true);
	CHECK_EQ(store_compact(s, 3), 0); /* compact(2) */
	ki = store__index_get(&s->idx, "foo", 3);
	CHECK_EQ(store__ki_ngens(ki), 3);
	check_gen(&STORE__GENS(ki)[0], (int64_t[]){3, 4}, 2, true);
	CHECK_EQ(STORE__GENS(ki)[0].ver, 3); /* ver counts writes, not what compaction left */
	CHECK_EQ(store_compact(s, 5), 0); /* compact(4) */
	ki = store__index_get(&s->idx, "foo", 3);
	CHECK_EQ(store__ki_ngens(ki), 2);
	check_gen(&STORE__GENS(ki)[0], (int64_t[]){5, 6}, 2, true);
	CHECK_EQ(store_compact(s, 6), 0); /* compact(5): removed */
	CHECK(store__index_get(&s->idx, "foo", 3) == NULL);
	CHECK_EQ(s->log_n, 0);
	CHECK_EQ(store_size(s), 0);
	store_close(s);
}

CHECK_TEST(range_options_and_errors)
{
	struct store *s = open_store(0);
	char k[16];
	for (int i = 0; i < 10; i++) {
		snprintf(k, sizeof k, "dir/%d", i);
		put(s, k, "v");
	}
	put(s, "dis", "x");
	put(s, "dir0", "x");
	unsigned char end[8];
	size_t el = store_prefix_end("dir/", 4, end);
	CHECK_EQ(el, 4);
	CHECK_MEM_EQ(end, "dir0", 4);
	struct store_range_req rq = {.key = "dir/", .key_len = 4, .end = end, .end_len = el};
	struct store_range_result res;
	CHECK_EQ(store_range(s, &rq, &res), 0);
	CHECK_EQ(res.n, 10);
	CHECK_EQ(res.count, 10);
	CHECK_MEM_EQ(res.kvs[3].key, "dir/3", 5);
	store_range_result_free(&res);
	rq.limit = 3;
	rq.flags = STORE_RANGE_KEYS_ONLY;
	CHECK_EQ(store_range(s, &rq, &res), 0);
	CHECK_EQ(res.n, 3);
	CHECK_EQ(res.count, 10);
	CHECK(res.more);
	CHECK(res.kvs[0].value == NULL);
	store_range_result_free(&res);
	rq.flags = STORE_RANGE_COUNT_ONLY;
	CHECK_EQ(store_range(s, &rq, &res), 0);
	CHECK_EQ(res.n, 0);
	CHECK_EQ(res.count, 10);
	/* every key from "dir0" on: an end of one zero byte */
	struct store_range_req all = {.key = "dir0", .key_len = 4, .end = "\0", .end_len = 1};
	CHECK_EQ(store_range(s, &all, &res), 0);
	CHECK_EQ(res.n, 2);
	store_range_result_free(&res);
	CHECK_EQ(store_prefix_end("\xff\xff", 2, end), 1);
	CHECK_EQ(end[0], 0);
	/* at a revision */
	el = store_prefix_end("dir/", 4, end);
	rq.flags = 0;
	rq.limit = 0;
	rq.rev = 5;
	CHECK_EQ(store_range(s, &rq, &res), 0);
	CHECK_EQ(res.n, 4); /* revisions 2..5 */
	store_range_result_free(&res);
	rq.rev = store_rev(s) + 1;
	CHECK_EQ(store_range(s, &rq, &res), STORE_EFUTUREREV);
	CHECK_EQ(store_compact(s, 6), 0);
	rq.rev = 5;
	CHECK_EQ(store_range(s, &rq, &res), STORE_ECOMPACTED);
	rq.rev = 6;
	CHECK_EQ(store_range(s, &rq, &res), 0);
	CHECK_EQ(res.n, 5);
	store_range_result_free(&res);
	CHECK_EQ(store_compact(s, 6), STORE_ECOMPACTED);
	CHECK_EQ(store_compact(s, 100), STORE_EFUTUREREV);
	CHECK(strstr(store_strerror(STORE_ECOMPACTED), "compacted") != NULL);
	CHECK(strcmp(store_strerror(STORE_ENOSPACE), store_strerror(STORE_ELEASENOTFOUND)) != 0);
	/* a delete without a result to fill, as a put without one */
	int64_t before = store_rev(s);
	struct store_delete d = {.key = "dir/", .key_len = 4, .end = end, .end_len = el, .prev_kv = true};
	CHECK_EQ(store_delete_range(s, &d, NULL), 0);
	CHECK_EQ(store_rev(s), before + 1);
	rq = (struct store_range_req){.key = "dir/", .key_len = 4, .end = end, .end_len = el};
	CHECK_EQ(store_range(s, &rq, &res), 0);
	CHECK_EQ(res.count, 0);
	store_range_result_free(&res);
	store_close(s);
}

CHECK_TEST(put_flags_and_metadata)
{
	struct store *s = open_store(0);
	CHECK_EQ(store_lease_grant(s, 7, 10, 0), 0);
	struct store_put p = {.key = "f", .key_len = 1, .value = "abc", .value_len = 3, .lease = 7,
			      .meta = {.type = 1, .mode = 0644, .uid = 5, .gid = 6, .mtime_ns = 123}};
	struct store_put_result r;
	CHECK_EQ(store_put(s, &p, &r), 0);
	/* ignore value and lease keep both (and the metadata with the value) */
	struct store_put q = {.key = "f", .key_len = 1, .flags = STORE_PUT_IGNORE_VALUE |
				  STORE_PUT_IGNORE_LEASE | STORE_PUT_PREV_KV};
	CHECK_EQ(store_put(s, &q, &r), 0);
	CHECK(r.has_prev);
	CHECK_EQ(r.prev.version, 1);
	struct store_range_req rq = {.key = "f", .key_len = 1};
	struct store_range_result res;
	CHECK_EQ(store_range(s, &rq, &res), 0);
	CHECK_EQ(res.kvs[0].value_len, 3);
	CHECK_EQ(res.kvs[0].lease, 7);
	CHECK_EQ(res.kvs[0].version, 2);
	CHECK_EQ(res.kvs[0].meta.mode, 0644);
	CHECK_EQ(res.kvs[0].meta.mtime_ns, 123);
	CHECK_EQ(res.kvs[0].create_revision, 2);
	CHECK_EQ(res.kvs[0].mod_revision, 3);
	store_range_result_free(&res);
	q.key = "g";
	CHECK_EQ(store_put(s, &q, &r), STORE_EKEYNOTFOUND);
	p.lease = 99;
	CHECK_EQ(store_put(s, &p, &r), STORE_ELEASENOTFOUND);
	CHECK_EQ(store_rev(s), 3);
	store_close(s);
}

CHECK_TEST(txn_is_one_revision)
{
	struct store *s = open_store(0);
	CHECK(put(s, "a", "1") > 0);
	CHECK_EQ(store_lease_grant(s, 3, 60, 0), 0);
	put_lease(s, "l", "x", 3);
	struct store_watch *w;
	CHECK_EQ(store_watch_create(s, "\0", 1, "\0", 1, 0, STORE_WATCH_PREV_KV, &w, NULL), 0);
	struct store_cmp cmps[3] = {
		{.target = STORE_CMP_VALUE, .result = STORE_CMP_EQ, .key = "a", .key_len = 1,
		 .value = "1", .value_len = 1},
		{.target = STORE_CMP_VERSION, .result = STORE_CMP_LT, .key = "a", .key_len = 1, .num = 2},
		{.target = STORE_CMP_LEASE, .result = STORE_CMP_EQ, .key = "l", .key_len = 1, .num = 3},
	};
	struct store_op ops[4] = {
		{.type = STORE_OP_PUT, .put = {.key = "a", .key_len = 1, .value = "2", .value_len = 1}},
		{.type = STORE_OP_PUT, .put = {.key = "b", .key_len = 1, .value = "2", .value_len = 1}},
		{.type = STORE_OP_DELETE, .del = {.key = "a", .key_len = 1, .prev_kv = true}},
		{.type = STORE_OP_RANGE, .range = {.key = "a", .key_len = 1, .end = "c", .end_len = 1}},
	};
	struct store_txn t = {cmps, 3, ops, 4, NULL, 0};
	struct store_txn_result tr;
	CHECK_EQ(store_txn(s, &t, &tr), 0);
	CHECK(tr.succeeded);
	CHECK_EQ(tr.rev, 4);
	CHECK_EQ(tr.results[2].del.deleted, 1);
	CHECK_EQ(tr.results[2].del.prev_kvs[0].value[0], '2'); /* sees the txn's own put */
	CHECK_EQ(tr.results[3].range.n, 1);                    /* only b */
	store_txn_result_free(&tr);
	/* the watcher gets the three changes at once, even when asking for one event */
	struct store_watch_batch b;
	CHECK_EQ(store_watch_next(w, 1, &b), 0);
	CHECK_EQ(b.n, 3);
	for (size_t i = 0; i < 3; i++) {
		CHECK_EQ(b.events[i].kv.mod_revision, 4);
		CHECK_EQ(b.events[i].kv.mod_sub, (int64_t)i);
	}
	CHECK_EQ(b.events[2].type, STORE_EVENT_DELETE);
	CHECK(b.events[2].has_prev);
	CHECK_EQ(b.events[2].prev.mod_sub, 0);
	CHECK(b.events[0].has_prev); /* a's put replaced revision 2 */
	CHECK_EQ(b.events[0].prev.mod_revision, 2);
	CHECK(!b.events[1].has_prev); /* b was created */
	store_watch_batch_free(&b);
	/* a failing compare takes the failure branch; a failing branch changes nothing */
	struct store_op bad = {.type = STORE_OP_PUT,
			       .put = {.key = "z", .key_len = 1, .value = "v", .value_len = 1, .lease = 42}};
	struct store_txn t2 = {cmps, 1, ops, 1, &bad, 1};
	CHECK_EQ(store_txn(s, &t2, &tr), STORE_ELEASENOTFOUND);
	CHECK_EQ(store_rev(s), 4);
	/* read-only txn keeps the revision */
	struct store_txn t3 = {NULL, 0, &ops[3], 1, NULL, 0};
	CHECK_EQ(store_txn(s, &t3, &tr), 0);
	CHECK_EQ(tr.rev, 4);
	store_txn_result_free(&tr);
	CHECK_EQ(store_watch_next(w, 10, &b), 0);
	CHECK_EQ(b.n, 0);
	store_watch_cancel(w);
	store_close(s);
}

/* key's current value into buf (NUL-ended), or NULL when it does not exist. */
static const char *value_now(struct store *s, const char *key, char *buf, size_t cap,
			     struct store_kv *out)
{
	struct store_kv kv;
	if (store_get(s, key, strlen(key), 0, &kv) != 0)
		return NULL;
	snprintf(buf, cap, "%.*s", (int)kv.value_len, (const char *)kv.value);
	if (out)
		*out = kv;
	return buf;
}

CHECK_TEST(move_is_one_revision_and_keeps_everything_but_the_key)
{
	struct store *s = open_store(0);
	CHECK_EQ(store_lease_grant(s, 7, 60, 0), 0);
	CHECK(put(s, "/d", "") > 0);
	CHECK(put(s, "/d/a", "first file") > 0);
	CHECK(put_lease(s, "/d/sub/b", "second, leased", 7) > 0);
	CHECK(put(s, "/d/sub/c", "3") > 0);
	CHECK(put(s, "/dz", "a neighbour that does not begin with /d/") > 0);
	CHECK(put(s, "/e/sub/c", "replaced by the move") > 0);
	struct store_kv del_me;
	CHECK(put(s, "/d/gone", "deleted before") > 0);
	struct store_delete d = {.key = "/d/gone", .key_len = 7};
	CHECK_EQ(store_delete_range(s, &d, NULL), 0);
	CHECK(store_get(s, "/d/gone", 7, 0, &del_me) != 0);
	struct store_meta meta = {.mode = 0640, .uid = 12, .gid = 34, .mtime_ns = 5};
	struct store_put pm = {.key = "/d/a", .key_len = 4, .value = "first file!",
			       .value_len = 11, .meta = meta};
	CHECK_EQ(store_put(s, &pm, NULL), 0);
	int64_t before = store_rev(s);
	struct store_watch *w;
	CHECK_EQ(store_watch_create(s, "/", 1, "0", 1, 0, STORE_WATCH_PREV_KV, &w, NULL), 0);
	struct store_op op = {.type = STORE_OP_MOVE,
			      .move = {.from = "/d/", .from_len = 3, .to = "/e/", .to_len = 3}};
	struct store_txn t = {NULL, 0, &op, 1, NULL, 0};
	struct store_txn_result tr;
	CHECK_EQ(store_txn(s, &t, &tr), 0);
	CHECK(tr.succeeded);
	CHECK_EQ(tr.rev, before + 1);
	CHECK_EQ(tr.results[0].moved, 3);
	store_txn_result_free(&tr);
	char buf[128];
	struct store_kv kv;
	CHECK(value_now(s, "/d/a", buf, sizeof buf, NULL) == NULL);
	CHECK(value_now(s, "/d/sub/b", buf, sizeof buf, NULL) == NULL);
	CHECK(value_now(s, "/d/gone", buf, sizeof buf, NULL) == NULL);
	CHECK(value_now(s, "/e/gone", buf, sizeof buf, NULL) == NULL); /* only live keys move */
	CHECK_STR_EQ(value_now(s, "/e/a", buf, sizeof buf, &kv), "first file!");
	CHECK_EQ(kv.meta.mode, 0640);
	CHECK_EQ(kv.meta.uid, 12);
	CHECK_EQ(kv.meta.mtime_ns, 5);
	CHECK_EQ(kv.version, 1);
	CHECK_EQ(kv.create_revision, before + 1);
	CHECK_STR_EQ(value_now(s, "/e/sub/b", buf, sizeof buf, &kv), "second, leased");
	CHECK_EQ(kv.lease, 7);
	CHECK_STR_EQ(value_now(s, "/e/sub/c", buf, sizeof buf, &kv), "3");
	CHECK_EQ(kv.version, 2); /* the key that was there has a second version */
	CHECK_STR_EQ(value_now(s, "/d", buf, sizeof buf, NULL), ""); /* not under "/d/" */
	CHECK_STR_EQ(value_now(s, "/dz", buf, sizeof buf, NULL),
		     "a neighbour that does not begin with /d/");
	/* the old keys are history */
	CHECK_EQ(store_get(s, "/d/a", 4, before, &kv), 0);
	CHECK_EQ(kv.value_len, 11);
	/* the watch sees one revision: a delete and a put per key */
	struct store_watch_batch b;
	CHECK_EQ(store_watch_next(w, 100, &b), 0);
	CHECK_EQ(b.n, 6);
	int dels = 0, puts = 0;
	for (size_t i = 0; i < b.n; i++) {
		CHECK_EQ(b.events[i].kv.mod_revision, before + 1);
		if (b.events[i].type == STORE_EVENT_DELETE) {
			dels++;
			CHECK(b.events[i].has_prev);
			CHECK(!memcmp(b.events[i].kv.key, "/d/", 3));
		} else {
			puts++;
			CHECK(!memcmp(b.events[i].kv.key, "/e/", 3));
		}
	}
	CHECK_EQ(dels, 3);
	CHECK_EQ(puts, 3);
	store_watch_batch_free(&b);
	/* the lease now holds the new key: revoking it deletes /e/sub/b */
	CHECK_EQ(store_lease_revoke(s, 7), 0);
	CHECK(value_now(s, "/e/sub/b", buf, sizeof buf, NULL) == NULL);
	/* overlapping prefixes and empty ones are refused and change nothing */
	int64_t now = store_rev(s);
	struct store_op bad[3] = {
		{.type = STORE_OP_MOVE, .move = {.from = "/e/", .from_len = 3, .to = "/e/x/",
						 .to_len = 5}},
		{.type = STORE_OP_MOVE, .move = {.from = "/e/x/", .from_len = 5, .to = "/e/",
						 .to_len = 3}},
		{.type = STORE_OP_MOVE, .move = {.from = "/e/", .from_len = 3, .to = "", .to_len = 0}},
	};
	for (int i = 0; i < 3; i++) {
		struct store_txn tb = {NULL, 0, &bad[i], 1, NULL, 0};
		CHECK_EQ(store_txn(s, &tb, &tr), -EINVAL);
	}
	CHECK_EQ(store_rev(s), now);
	/* a snapshot of a moved tree restores the same */
	struct store *r = restored(s, NULL);
	check_same_hash(s, r);
	store_close(r);
	store_watch_cancel(w);
	store_close(s);
}

CHECK_TEST(move_of_many_keys_and_its_quota)
{
	/* 20,000 keys of values of different lengths move in one revision */
	struct store *s = open_store(0);
	char key[64], val[64], buf[64];
	for (int i = 0; i < 20000; i++) {
		snprintf(key, sizeof key, "/big/%05d", i);
		snprintf(val, sizeof val, "v%d%.*s", i, i % 23, "xxxxxxxxxxxxxxxxxxxxxxx");
		CHECK(put(s, key, val) > 0);
	}
	int64_t before = store_rev(s);
	struct store_op op = {.type = STORE_OP_MOVE,
			      .move = {.from = "/big/", .from_len = 5, .to = "/moved/", .to_len = 7}};
	struct store_txn t = {NULL, 0, &op, 1, NULL, 0};
	struct store_txn_result tr;
	CHECK_EQ(store_txn(s, &t, &tr), 0);
	CHECK_EQ(tr.rev, before + 1);
	CHECK_EQ(tr.results[0].moved, 20000);
	store_txn_result_free(&tr);
	for (int i = 0; i < 20000; i += 997) {
		snprintf(key, sizeof key, "/moved/%05d", i);
		snprintf(val, sizeof val, "v%d%.*s", i, i % 23, "xxxxxxxxxxxxxxxxxxxxxxx");
		CHECK_STR_EQ(value_now(s, key, buf, sizeof buf, NULL), val);
		snprintf(key, sizeof key, "/big/%05d", i);
		CHECK(value_now(s, key, buf, sizeof buf, NULL) == NULL);
	}
	store_close(s);
	/* over the quota: NOSPACE, and nothing moved */
	s = open_store(64 * 1024);
	for (int i = 0; i < 400; i++) { /* ~44 KB of the 64: a copy does not fit */
		snprintf(key, sizeof key, "/q/%03d", i);
		CHECK(put(s, key, "0123456789012345678901234567890123456789") > 0);
	}
	before = store_rev(s);
	op.move = (struct store_move){.from = "/q/", .from_len = 3, .to = "/r/", .to_len = 3};
	CHECK_EQ(store_txn(s, &t, &tr), STORE_ENOSPACE);
	CHECK_EQ(store_rev(s), before);
	CHECK(value_now(s, "/q/000", buf, sizeof buf, NULL) != NULL);
	CHECK(value_now(s, "/r/000", buf, sizeof buf, NULL) == NULL);
	store_close(s);
}

/* The names of the events of one watch batch, in order: "-key" for a delete, "+key=value". */
static void event_list(const struct store_watch_batch *b, int64_t rev, char *out, size_t cap)
{
	size_t n = 0;
	out[0] = '\0';
	for (size_t i = 0; i < b->n && n < cap; i++) {
		const struct store_event *e = &b->events[i];
		CHECK_EQ(e->kv.mod_revision, rev);
		if (e->type == STORE_EVENT_DELETE)
			n += (size_t)snprintf(out + n, cap - n, "%s-%.*s", n ? " " : "",
					      (int)e->kv.key_len, (const char *)e->kv.key);
		else
			n += (size_t)snprintf(out + n, cap - n, "%s+%.*s=%.*s", n ? " " : "",
					      (int)e->kv.key_len, (const char *)e->kv.key,
					      (int)e->kv.value_len, (const char *)e->kv.value);
	}
}

CHECK_TEST(swap_trades_two_trees_in_one_revision)
{
	struct store *s = open_store(0);
	CHECK_EQ(store_lease_grant(s, 7, 60, 0), 0);
	CHECK(put(s, "/a", "the key /a itself: not under /a/") > 0);
	CHECK(put_lease(s, "/a/x", "a's x", 7) > 0);
	CHECK(put(s, "/a/sub/y", "a's y") > 0);
	CHECK(put(s, "/a/only", "only in a") > 0);
	CHECK(put(s, "/b/x", "b's x") > 0);
	CHECK(put(s, "/b/x", "b's x, second version") > 0);
	CHECK(put(s, "/b/other", "only in b") > 0);
	CHECK(put(s, "/ab", "a neighbour") > 0);
	struct store_meta meta = {.mode = 0600, .uid = 5, .gid = 6, .atime_ns = 1, .mtime_ns = 2,
				  .ctime_ns = 3};
	struct store_put pm = {.key = "/a/only", .key_len = 7, .value = "only in a", .value_len = 9,
			       .meta = meta};
	CHECK_EQ(store_put(s, &pm, NULL), 0);
	int64_t before = store_rev(s);
	struct store_watch *w;
	CHECK_EQ(store_watch_create(s, "/", 1, "0", 1, 0, STORE_WATCH_PREV_KV, &w, NULL), 0);
	struct store_op op = {.type = STORE_OP_SWAP,
			      .move = {.from = "/a/", .from_len = 3, .to = "/b/", .to_len = 3}};
	struct store_txn t = {NULL, 0, &op, 1, NULL, 0};
	struct store_txn_result tr;
	CHECK_EQ(store_txn(s, &t, &tr), 0);
	CHECK_EQ(tr.rev, before + 1);
	CHECK_EQ(tr.results[0].moved, 5);
	store_txn_result_free(&tr);
	char buf[128];
	struct store_kv kv;
	/* a name on both sides trades values, each a new generation */
	CHECK_STR_EQ(value_now(s, "/a/x", buf, sizeof buf, &kv), "b's x, second version");
	CHECK_EQ(kv.version, 1);
	CHECK_EQ(kv.create_revision, before + 1);
	CHECK_EQ(kv.lease, 0);
	CHECK_STR_EQ(value_now(s, "/b/x", buf, sizeof buf, &kv), "a's x");
	CHECK_EQ(kv.version, 1);
	CHECK_EQ(kv.lease, 7);
	/* a name on one side goes to the other */
	CHECK_STR_EQ(value_now(s, "/b/sub/y", buf, sizeof buf, NULL), "a's y");
	CHECK_STR_EQ(value_now(s, "/b/only", buf, sizeof buf, &kv), "only in a");
	CHECK_EQ(kv.meta.mode, 0600);
	CHECK_EQ(kv.meta.uid, 5);
	CHECK_EQ(kv.meta.gid, 6);
	CHECK_EQ(kv.meta.atime_ns, 1);
	CHECK_EQ(kv.meta.mtime_ns, 2);
	CHECK_EQ(kv.meta.ctime_ns, 3);
	CHECK_STR_EQ(value_now(s, "/a/other", buf, sizeof buf, NULL), "only in b");
	CHECK(value_now(s, "/a/sub/y", buf, sizeof buf, NULL) == NULL);
	CHECK(value_now(s, "/a/only", buf, sizeof buf, NULL) == NULL);
	CHECK(value_now(s, "/b/other", buf, sizeof buf, NULL) == NULL);
	/* outside both prefixes: untouched */
	CHECK_STR_EQ(value_now(s, "/a", buf, sizeof buf, &kv), "the key /a itself: not under /a/");
	CHECK(kv.mod_revision < before + 1);
	CHECK_STR_EQ(value_now(s, "/ab", buf, sizeof buf, &kv), "a neighbour");
	CHECK(kv.mod_revision < before + 1);
	/* the revision before is history, as it was */
	CHECK_EQ(get(s, "/a/x", before, buf, sizeof buf), 0);
	CHECK_STR_EQ(buf, "a's x");
	CHECK_EQ(get(s, "/b/x", before, buf, sizeof buf), 0);
	CHECK_STR_EQ(buf, "b's x, second version");
	CHECK_EQ(get(s, "/a/other", before, buf, sizeof buf), 0);
	CHECK_STR_EQ(buf, "");
	/* the watch: one revision, the deletes of both sides, then the puts */
	struct store_watch_batch b;
	char events[512];
	CHECK_EQ(store_watch_next(w, 100, &b), 0);
	event_list(&b, before + 1, events, sizeof events);
	CHECK_STR_EQ(events, "-/a/only -/a/sub/y -/a/x -/b/other -/b/x "
			     "+/b/only=only in a +/b/sub/y=a's y +/b/x=a's x "
			     "+/a/other=only in b +/a/x=b's x, second version");
	for (size_t i = 0; i < b.n; i++) /* a put is a new generation: nothing before it */
		CHECK_EQ(b.events[i].has_prev, b.events[i].type == STORE_EVENT_DELETE);
	store_watch_batch_free(&b);
	/* the lease holds the key its file went to: revoking it deletes /b/x */
	CHECK_EQ(store_lease_revoke(s, 7), 0);
	CHECK(value_now(s, "/b/x", buf, sizeof buf, NULL) == NULL);
	CHECK_STR_EQ(value_now(s, "/a/x", buf, sizeof buf, NULL), "b's x, second version");
	/* swapping with an empty side is a move; overlapping or empty prefixes are refused */
	int64_t now = store_rev(s);
	op.move = (struct store_move){.from = "/b/", .from_len = 3, .to = "/c/", .to_len = 3};
	CHECK_EQ(store_txn(s, &t, &tr), 0);
	CHECK_EQ(tr.results[0].moved, 2);
	store_txn_result_free(&tr);
	CHECK_STR_EQ(value_now(s, "/c/sub/y", buf, sizeof buf, NULL), "a's y");
	CHECK(value_now(s, "/b/only", buf, sizeof buf, NULL) == NULL);
	CHECK_EQ(store_rev(s), now + 1);
	now = store_rev(s);
	const struct store_move bad[3] = {{.from = "/a/", .from_len = 3, .to = "/a/x/", .to_len = 5},
					  {.from = "/a/x/", .from_len = 5, .to = "/a/", .to_len = 3},
					  {.from = "/a/", .from_len = 3, .to = "", .to_len = 0}};
	for (int i = 0; i < 3; i++) {
		op.move = bad[i];
		CHECK_EQ(store_txn(s, &t, &tr), -EINVAL);
	}
	CHECK_EQ(store_rev(s), now);
	/* compaction at the swap's revision and a snapshot keep the same key space */
	struct store *r = restored(s, NULL);
	check_same_hash(s, r);
	store_close(r);
	CHECK_EQ(store_compact(s, before + 1), 0);
	CHECK_STR_EQ(value_now(s, "/a/x", buf, sizeof buf, NULL), "b's x, second version");
	CHECK_STR_EQ(value_now(s, "/a/other", buf, sizeof buf, NULL), "only in b");
	r = restored(s, NULL);
	check_same_hash(s, r);
	store_close(r);
	store_watch_cancel(w);
	store_close(s);
}

CHECK_TEST(swap_over_the_quota_changes_nothing)
{
	struct store *s = open_store(64 * 1024);
	char key[64], buf[64];
	for (int i = 0; i < 200; i++) { /* ~22 KB on each side of the 64: both copies do not fit */
		snprintf(key, sizeof key, "/q/%03d", i);
		CHECK(put(s, key, "0123456789012345678901234567890123456789") > 0);
		snprintf(key, sizeof key, "/r/%03d", i);
		CHECK(put(s, key, "abcdefghijabcdefghijabcdefghijabcdefghij") > 0);
	}
	int64_t before = store_rev(s);
	struct store_op op = {.type = STORE_OP_SWAP,
			      .move = {.from = "/q/", .from_len = 3, .to = "/r/", .to_len = 3}};
	struct store_txn t = {NULL, 0, &op, 1, NULL, 0};
	struct store_txn_result tr;
	CHECK_EQ(store_txn(s, &t, &tr), STORE_ENOSPACE);
	CHECK_EQ(store_rev(s), before);
	CHECK_STR_EQ(value_now(s, "/q/000", buf, sizeof buf, NULL),
		     "0123456789012345678901234567890123456789");
	CHECK_STR_EQ(value_now(s, "/r/000", buf, sizeof buf, NULL),
		     "abcdefghijabcdefghijabcdefghijabcdefghij");
	store_close(s);
}

CHECK_TEST(range_compare_holds_for_every_key_of_the_range)
{
	struct store *s = open_store(0);
	CHECK(put(s, "/d/a", "1") > 0);
	int64_t seen = put(s, "/d/b", "22");
	CHECK(put(s, "/e", "outside") > 0);
	/* every key of [/d/, /d0) modified no later than seen */
	struct store_cmp c = {.target = STORE_CMP_MOD, .result = STORE_CMP_LT, .key = "/d/",
			      .key_len = 3, .end = "/d0", .end_len = 3, .num = seen + 1};
	struct store_op op = {.type = STORE_OP_PUT,
			      .put = {.key = "/ok", .key_len = 3, .value = "y", .value_len = 1}};
	struct store_txn t = {&c, 1, &op, 1, NULL, 0};
	struct store_txn_result tr;
	CHECK_EQ(store_txn(s, &t, &tr), 0);
	CHECK(tr.succeeded); /* /e changed after seen, but it is outside */
	store_txn_result_free(&tr);
	CHECK(put(s, "/d/b", "333") > 0);
	CHECK_EQ(store_txn(s, &t, &tr), 0);
	CHECK(!tr.succeeded); /* one key of the range changed since */
	store_txn_result_free(&tr);
	/* an empty range compares as one missing key: version 0 */
	struct store_cmp empty = {.target = STORE_CMP_VERSION, .result = STORE_CMP_EQ, .key = "/x/",
				  .key_len = 3, .end = "/x0", .end_len = 3, .num = 0};
	t.cmps = &empty;
	CHECK_EQ(store_txn(s, &t, &tr), 0);
	CHECK(tr.succeeded);
	store_txn_result_free(&tr);
	empty.target = STORE_CMP_VALUE; /* and a VALUE compare on nothing fails */
	empty.value = "";
	CHECK_EQ(store_txn(s, &t, &tr), 0);
	CHECK(!tr.succeeded);
	store_txn_result_free(&tr);
	store_close(s);
}

CHECK_TEST(watch_history_progress_and_compaction)
{
	struct store *s = open_store(0);
	put(s, "k", "0");
	struct store_watch *slow, *fast, *late;
	CHECK_EQ(store_watch_create(s, "k", 1, NULL, 0, 0, 0, &slow, NULL), 0);
	CHECK_EQ(store_watch_create(s, "k", 1, NULL, 0, 0, 0, &fast, NULL), 0);
	int64_t seen_fast = 0, seen_slow = 0;
	char v[16];
	for (int i = 1; i <= 5000; i++) {
		snprintf(v, sizeof v, "%d", i);
		put(s, "k", v);
		put(s, "other", v);
		struct store_watch_batch b;
		CHECK_EQ(store_watch_next(fast, 100, &b), 0);
		CHECK_EQ(b.n, 1);
		CHECK_EQ(b.events[0].kv.version, i + 1);
		seen_fast++;
		store_watch_batch_free(&b);
	}
	/* the slow one catches up from history, in bounded batches, in order, never twice */
	int64_t last = 0;
	for (;;) {
		struct store_watch_batch b;
		CHECK_EQ(store_watch_next(slow, 64, &b), 0);
		if (!b.n)
			break;
		CHECK_LE(b.n, 64);
		for (size_t i = 0; i < b.n; i++) {
			CHECK_GT(b.events[i].kv.mod_revision, last);
			last = b.events[i].kv.mod_revision;
			seen_slow++;
		}
		store_watch_batch_free(&b);
	}
	CHECK_EQ(seen_slow, seen_fast);
	/* progress on request */
	struct store_watch_batch b;
	store_watch_request_progress(fast);
	CHECK_EQ(store_watch_next(fast, 10, &b), 0);
	CHECK(b.progress);
	CHECK_EQ(b.rev, store_rev(s));
	CHECK_EQ(store_watch_next(fast, 10, &b), 0);
	CHECK(!b.progress);
	/* a watch from an old revision, then a compaction past it: canceled, carrying the rev */
	CHECK_EQ(store_watch_create(s, "k", 1, NULL, 0, 10, 0, &late, NULL), 0);
	put(s, "k", "x");
	CHECK_EQ(store_compact(s, 100), 0);
	CHECK_EQ(store_watch_next(late, 10, &b), STORE_ECOMPACTED);
	CHECK_EQ(b.compact_rev, 100);
	CHECK_EQ(store_watch_next(fast, 10, &b), 0); /* past it: unaffected */
	CHECK_EQ(b.n, 1);
	store_watch_batch_free(&b);
	int64_t crev = 0;
	struct store_watch *w2;
	CHECK_EQ(store_watch_create(s, "k", 1, NULL, 0, 50, 0, &w2, &crev), STORE_ECOMPACTED);
	CHECK_EQ(crev, 100);
	store_watch_cancel(late);
	store_watch_cancel(slow);
	store_close(s);
	/* a watch outliving its store reports cancellation and can still be freed */
	CHECK_EQ(store_watch_next(fast, 10, &b), STORE_EWATCHCANCELED);
	store_watch_cancel(fast);
}

CHECK_TEST(lease_expiry_with_injected_clock)
{
	struct store_config cfg = {.min_lease_ttl_s = 2};
	struct store *s;
	CHECK_EQ(store_open(&cfg, &s), 0);
	int64_t now = 1000000;
	CHECK_EQ(store_lease_grant(s, 1, 1, now), 0); /* raised to the minimum, 2 s */
	CHECK_EQ(store_lease_grant(s, 2, 10, now), 0);
	CHECK_EQ(store_lease_grant(s, 2, 10, now), STORE_ELEASEEXISTS);
	CHECK_EQ(store_lease_grant(s, 0, 10, now), -EINVAL);
	struct store_lease_info li;
	CHECK_EQ(store_lease_time_to_live(s, 1, now, &li), 0);
	CHECK_EQ(li.ttl_s, 2);
	CHECK_EQ(li.remaining_ms, 2000);
	put_lease(s, "a", "1", 1);
	put_lease(s, "b", "1", 1);
	put_lease(s, "c", "1", 2);
	put_lease(s, "b", "2", 2); /* moves b to lease 2 */
	CHECK_EQ(store_lease_time_to_live(s, 1, now, &li), 0);
	CHECK_EQ(li.n_keys, 1);
	int64_t *ids;
	size_t n;
	CHECK_EQ(store_lease_expired(s, now + 1999, 10, &ids, &n), 0);
	CHECK_EQ(n, 0);
	free(ids);
	CHECK_EQ(store_lease_expired(s, now + 2000, 10, &ids, &n), 0);
	CHECK_EQ(n, 1);
	CHECK_EQ(ids[0], 1);
	free(ids);
	/* nothing was deleted by time alone */
	char v[8];
	get(s, "a", 0, v, sizeof v);
	CHECK_STR_EQ(v, "1");
	/* renewing pushes the expiry */
	int64_t ttl;
	CHECK_EQ(store_lease_renew(s, 1, now + 1500, &ttl), 0);
	CHECK_EQ(ttl, 2);
	CHECK_EQ(store_lease_expired(s, now + 3000, 10, &ids, &n), 0);
	CHECK_EQ(n, 0);
	free(ids);
	/* the leader's revoke deletes every attached key in one revision */
	int64_t r0 = store_rev(s);
	CHECK_EQ(store_lease_revoke(s, 2), 0);
	CHECK_EQ(store_rev(s), r0 + 1);
	get(s, "b", 0, v, sizeof v);
	CHECK_STR_EQ(v, "");
	get(s, "c", 0, v, sizeof v);
	CHECK_STR_EQ(v, "");
	CHECK_EQ(store_lease_revoke(s, 2), STORE_ELEASENOTFOUND);
	CHECK_EQ(store_lease_list(s, &ids, &n), 0);
	CHECK_EQ(n, 1);
	free(ids);
	/* leases survive a snapshot; they wait for a leader's promote before expiring again */
	struct store *t = restored(s, &cfg);
	CHECK_EQ(store_lease_time_to_live(t, 1, now, &li), 0);
	CHECK_EQ(li.remaining_ms, INT64_MAX);
	CHECK_EQ(li.n_keys, 1);
	CHECK_EQ(store_lease_expired(t, INT64_MAX - 1, 10, &ids, &n), 0);
	CHECK_EQ(n, 0);
	free(ids);
	store_lease_promote(t, now + 10000);
	CHECK_EQ(store_lease_expired(t, now + 12000, 10, &ids, &n), 0);
	CHECK_EQ(n, 1);
	free(ids);
	CHECK_EQ(store_lease_revoke(t, 1), 0);
	get(t, "a", 0, v, sizeof v);
	CHECK_STR_EQ(v, "");
	store_close(t);
	store_close(s);
}

CHECK_TEST(quota_alarm)
{
	struct store *s = open_store(64 * 1024);
	char k[16], big[1024];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = 0;
	int i, r = 0;
	for (i = 0; i < 1000; i++) {
		snprintf(k, sizeof k, "k%d", i);
		r = (int)put(s, k, big);
		if (r < 0)
			break;
	}
	CHECK_EQ(r, STORE_ENOSPACE);
	CHECK(store_alarm_nospace(s));
	CHECK_LE(store_size(s), 64 * 1024);
	int64_t rev = store_rev(s);
	/* small puts and txns that add data are refused too; deletes work */
	CHECK_EQ(put(s, "tiny", "1"), STORE_ENOSPACE);
	struct store_op op = {.type = STORE_OP_PUT,
			      .put = {.key = "t", .key_len = 1, .value = "v", .value_len = 1}};
	struct store_txn t = {NULL, 0, &op, 1, NULL, 0};
	struct store_txn_result tr;
	CHECK_EQ(store_txn(s, &t, &tr), STORE_ENOSPACE);
	CHECK_EQ(store_rev(s), rev);
	/* the alarm is part of the replicated state: a snapshot carries it */
	struct store *rs = restored(s, &(struct store_config){.quota_bytes = 64 * 1024});
	CHECK(store_alarm_nospace(rs));
	CHECK_EQ(put(rs, "tiny", "1"), STORE_ENOSPACE);
	store_close(rs);
	CHECK_EQ(del(s, "k0"), 1);
	CHECK_EQ(del(s, "k1"), 1);
	/* still armed until disarmed explicitly, and disarm waits for the size to drop */
	CHECK_EQ(put(s, "tiny", "1"), STORE_ENOSPACE);
	put(s, "k2", "");
	CHECK_EQ(store_alarm_disarm(s) == 0 || store_size(s) > 64 * 1024, 1);
	CHECK_EQ(store_compact(s, store_rev(s)), 0);
	CHECK_LT(store_size(s), 64 * 1024);
	CHECK_EQ(store_alarm_disarm(s), 0);
	CHECK(!store_alarm_nospace(s));
	CHECK_GT(put(s, "tiny", "1"), 0);
	store_close(s);
}

CHECK_TEST(snapshot_round_trip_and_corruption)
{
	struct store *s = open_store(0);
	char k[16], v[32];
	CHECK_EQ(store_lease_grant(s, 9, 30, 0), 0);
	for (int i = 0; i < 300; i++) {
		snprintf(k, sizeof k, "k%03d", i % 70);
		snprintf(v, sizeof v, "value %d", i);
		if (i % 7 == 3)
			del(s, k);
		else
			put_lease(s, k, v, i % 11 == 0 ? 9 : 0);
	}
	CHECK_EQ(store_compact(s, 120), 0);
	store_set_applied_index(s, 4242);
	void *img;
	size_t len;
	CHECK_EQ(store_snapshot_save_buf(s, &img, &len), 0);
	struct store *t = open_store(0);
	put(t, "junk", "j");
	CHECK_EQ(store_snapshot_restore(t, img, len), 0);
	uint64_t h1, h2;
	CHECK_EQ(store_hash_kv(s, 0, &h1), 0);
	CHECK_EQ(store_hash_kv(t, 0, &h2), 0);
	CHECK_EQ_U64(h1, h2);
	CHECK_EQ(store_applied_index(t), 4242);
	CHECK_EQ(store_compact_rev(t), 120);
	/* the restored store keeps working like the original */
	CHECK_EQ(put(s, "new", "n"), put(t, "new", "n"));
	CHECK_EQ(store_compact(s, 200), 0);
	CHECK_EQ(store_compact(t, 200), 0);
	CHECK_EQ(store_hash_kv(s, 0, &h1), 0);
	CHECK_EQ(store_hash_kv(t, 0, &h2), 0);
	CHECK_EQ_U64(h1, h2);
	/* damaged compressed images: refused, store unchanged */
	unsigned char *bad = malloc(len);
	for (size_t i = 0; i < len; i += 1 + len / 300) {
		memcpy(bad, img, len);
		bad[i] ^= 0x10;
		CHECK_NE(store_snapshot_restore(t, bad, len), 0);
	}
	for (size_t cut = 0; cut < len; cut += 1 + len / 50)
		CHECK_NE(store_snapshot_restore(t, img, cut), 0);
	free(bad);
	CHECK_EQ(store_hash_kv(t, 0, &h2), 0);
	CHECK_EQ_U64(h1, h2);
	/* damaged raw images under a valid frame: refused or accepted, never a crash */
	size_t rawn = len * 64 + 65536;
	unsigned char *raw = malloc(rawn), *re = malloc(ZSTD_compressBound(rawn));
	size_t got = ZSTD_decompress(raw, rawn, img, len);
	CHECK(!ZSTD_isError(got));
	uint64_t x = check_seed() | 1;
	for (int i = 0; i < 400; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t pos = x % got;
		unsigned char old = raw[pos];
		raw[pos] ^= (unsigned char)(1u << (x >> 32) % 8);
		size_t rl = ZSTD_compress(re, ZSTD_compressBound(got), raw, got, 1);
		struct store *u = open_store(0);
		int r = store_snapshot_restore(u, re, rl);
		CHECK(r == 0 || r == STORE_ECORRUPT);
		if (r == 0) { /* the store must stay usable */
			uint64_t hh;
			CHECK_EQ(store_hash_kv(u, 0, &hh), 0);
			put(u, "k001", "after");
			if (store_rev(u) > store_compact_rev(u))
				store_compact(u, store_rev(u));
		}
		store_close(u);
		raw[pos] = old;
	}
	/* garbage that is not zstd at all */
	CHECK_EQ(store_snapshot_restore(t, "hello", 5), STORE_ECORRUPT);
	free(raw);
	free(re);
	free(img);
	store_close(t);
	store_close(s);
}

CHECK_TEST(compaction_frees_memory)
{
	struct store *s = open_store(0);
	char k[16], v[64];
	for (int i = 0; i < 20000; i++) {
		snprintf(k, sizeof k, "key%02d", i % 50);
		snprintf(v, sizeof v, "%060d", i);
		put(s, k, v);
		if (i % 1000 == 999)
			del(s, "key07");
	}
	uint64_t before = store_size(s);
	CHECK_GT(s->log_n, 20000);
	CHECK_EQ(store_compact(s, store_rev(s)), 0);
	CHECK_EQ(s->log_n, 49); /* key07's last write was a delete */
	CHECK_LT(store_size(s) * 100, before);
	/* a sparse history (few revisions over a long range) survives a snapshot too */
	struct store *t = restored(s, NULL);
	check_same_hash(s, t);
	CHECK_EQ(t->log_n, 49);
	for (size_t i = 1; i < t->log_n; i++)
		CHECK_LT(t->log[i - 1]->main, t->log[i]->main);
	store_close(t);
	/* and a very sparse one (two revisions thousands apart: restore sorts it with qsort) */
	struct store *u = open_store(0);
	put(u, "early", "e");
	for (int i = 0; i < 5000; i++)
		put(u, "x", "v");
	CHECK_EQ(store_compact(u, store_rev(u)), 0);
	t = restored(u, NULL);
	CHECK_EQ(t->log_n, 2);
	CHECK_EQ(t->log[0]->main, 2);
	CHECK_EQ(t->log[1]->main, store_rev(u));
	store_close(t);
	store_close(u);
	/* the index shrinks when keys die */
	for (int i = 0; i < 50; i++) {
		snprintf(k, sizeof k, "key%02d", i);
		del(s, k);
	}
	CHECK_EQ(store_compact(s, store_rev(s)), 0);
	CHECK_EQ(s->log_n, 0);
	CHECK_EQ(s->idx.n, 0);
	CHECK_EQ(store_size(s), 0);
	store_close(s);
}

CHECK_TEST(index_many_keys_in_order)
{
	/* enough keys for a three-level B+tree, inserted in a scrambled order */
	struct store *s = open_store(0);
	char k[16];
	const int n = 300000;
	for (int i = 0; i < n; i++) {
		int j = (int)(((uint64_t)i * 7919) % (uint64_t)n);
		snprintf(k, sizeof k, "%08d", j);
		put(s, k, "v");
	}
	struct store__iter it;
	store__index_seek(&s->idx, NULL, 0, &it);
	int c = 0;
	for (struct store__ki *ki; (ki = store__iter_next(&it)); c++) {
		snprintf(k, sizeof k, "%08d", c);
		CHECK_MEM_EQ(ki->key, k, 8);
	}
	CHECK_EQ(c, n);
	snprintf(k, sizeof k, "%08d", 123456);
	CHECK(store__index_get(&s->idx, k, 8) != NULL);
	CHECK(store__index_get(&s->idx, "0012345", 7) == NULL);
	/* delete every other key and compact: the rebuilt tree is still ordered and complete */
	for (int i = 0; i < n; i += 2) {
		snprintf(k, sizeof k, "%08d", i);
		del(s, k);
	}
	CHECK_EQ(store_compact(s, store_rev(s)), 0);
	CHECK_EQ(s->idx.n, (size_t)n / 2);
	put(s, "00000000", "back");
	store__index_seek(&s->idx, "0000000", 7, &it);
	CHECK_MEM_EQ(store__iter_next(&it)->key, "00000000", 8);
	CHECK_MEM_EQ(store__iter_next(&it)->key, "00000001", 8);
	store_close(s);
}

struct sink {
	unsigned char *p;
	size_t n, cap;
	int calls, fail_at;
};

static int sink_write(void *arg, const void *buf, size_t len)
{
	struct sink *k = arg;
	if (++k->calls == k->fail_at)
		return -EIO;
	if (k->n + len > k->cap) {
		k->cap = (k->n + len) * 2;
		k->p = realloc(k->p, k->cap);
	}
	memcpy(k->p + k->n, buf, len);
	k->n += len;
	return 0;
}

CHECK_TEST(snapshot_write_callback)
{
	struct store *s = open_store(0);
	char k[32], v[300];
	for (int i = 0; i < 20000; i++) {
		snprintf(k, sizeof k, "file/%05d", i);
		for (size_t j = 0; j < sizeof v - 1; j++)
			v[j] = (char)('a' + (i * 7 + (int)j * 13) % 26);
		v[sizeof v - 1] = 0;
		put(s, k, v);
	}
	struct sink a = {0};
	CHECK_EQ(store_snapshot_save(s, sink_write, &a), 0);
	CHECK_GT(a.calls, 1);
	void *img;
	size_t len;
	CHECK_EQ(store_snapshot_save_buf(s, &img, &len), 0);
	CHECK_EQ(a.n, len);
	CHECK_MEM_EQ(a.p, img, len);
	/* a failing sink aborts the save with its error */
	struct sink b = {.fail_at = 2};
	CHECK_EQ(store_snapshot_save(s, sink_write, &b), -EIO);
	/* restore into a store with watches: they are canceled, the data replaced */
	struct store *t = open_store(0);
	put(t, "old", "x");
	struct store_watch *w;
	CHECK_EQ(store_watch_create(t, "file/", 5, "file0", 5, 0, 0, &w, NULL), 0);
	CHECK_EQ(store_snapshot_restore(t, a.p, a.n), 0);
	struct store_watch_batch wb;
	CHECK_EQ(store_watch_next(w, 10, &wb), STORE_EWATCHCANCELED);
	store_watch_cancel(w);
	char got[8];
	CHECK_EQ(get(t, "old", 0, got, sizeof got), 0);
	CHECK_STR_EQ(got, "");
	CHECK_EQ(store_rev(t), store_rev(s));
	free(a.p);
	free(b.p);
	free(img);
	store_close(t);
	store_close(s);
}

static int ki_sort(const void *a, const void *b)
{
	const struct store__ki *x = *(struct store__ki *const *)a, *y = *(struct store__ki *const *)b;
	return store__keycmp(x->key, x->key_len, y->key, y->key_len);
}

/* Checks seek (lower bound) and get of key against the sorted reference. */
static void check_seek(struct store__index *ix, struct store__ki **ref, size_t n,
		       const unsigned char *key, size_t len)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (store__keycmp(ref[mid]->key, ref[mid]->key_len, key, len) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	struct store__iter it;
	store__index_seek(ix, key, len, &it);
	struct store__ki *got = store__iter_next(&it);
	CHECK(got == (lo < n ? ref[lo] : NULL));
	struct store__ki *g = store__index_get(ix, key, len);
	bool present = lo < n && store__keycmp(ref[lo]->key, ref[lo]->key_len, key, len) == 0;
	CHECK(g == (present ? ref[lo] : NULL));
}

struct made {
	int calls;
	struct store__ki *last;
};

static struct store__ki *make_ki(void *ctx, const void *key, size_t len)
{
	struct made *m = ctx;
	struct store__ki *ki = calloc(1, sizeof *ki + len);
	ki->key_len = (uint32_t)len;
	memcpy(ki->key, key, len);
	m->calls++;
	m->last = ki;
	return ki;
}

CHECK_TEST(index_random_keys_against_sorted_reference)
{
	/* keys over a tiny alphabet with 0x00 and 0xff, long shared prefixes, every length */
	uint64_t x = check_seed() * 6364136223846793005ull + 1;
	const unsigned char alpha[] = {0x00, 0x01, 'a', 'b', 0x7f, 0xfe, 0xff};
	enum { N = 40000 };
	struct store__ki **ref = malloc(N * sizeof *ref);
	size_t n = 0;
	struct store__index ix;
	store__index_init(&ix);
	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < N / 4; i++) {
			unsigned char k[40];
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			size_t len = 1 + x % 24, pre = (x >> 8) % 3 == 0 ? 0 : 12;
			for (size_t j = 0; j < len; j++) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				k[j] = j < pre && len > pre ? 'p' : alpha[x % sizeof alpha];
			}
			/* a key already there is found, nothing made; a new one is made once */
			struct store__ki *had = store__index_get(&ix, k, len);
			struct made m = {0};
			struct store__ki *ki = store__index_find_or_add(&ix, k, len, make_ki, &m);
			if (had) {
				CHECK(ki == had);
				CHECK_EQ(m.calls, 0);
				continue;
			}
			CHECK_EQ(m.calls, 1);
			CHECK(ki == m.last);
			CHECK(store__index_get(&ix, k, len) == ki);
			ref[n++] = ki;
			if (i % 97 == 0) {
				qsort(ref, n, sizeof *ref, ki_sort);
				check_seek(&ix, ref, n, k, len);
				check_seek(&ix, ref, n, k, len - 1);
			}
		}
		qsort(ref, n, sizeof *ref, ki_sort);
		/* the whole order, then random seeks */
		struct store__iter it;
		store__index_seek(&ix, NULL, 0, &it);
		for (size_t i = 0; i < n; i++)
			CHECK(store__iter_next(&it) == ref[i]);
		CHECK(store__iter_next(&it) == NULL);
		for (int q = 0; q < 2000; q++) {
			unsigned char k[40];
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			size_t len = x % 20;
			for (size_t j = 0; j < len; j++) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				k[j] = j < 12 && (q & 1) ? 'p' : alpha[x % sizeof alpha];
			}
			if (len)
				check_seek(&ix, ref, n, k, len);
		}
		/* drop a third and rebuild, as compaction does */
		size_t w = 0;
		for (size_t i = 0; i < n; i++) {
			if (i % 3 == (size_t)round % 3)
				free(ref[i]);
			else
				ref[w++] = ref[i];
		}
		n = w;
		store__index_build(&ix, ref, n);
		CHECK_EQ(ix.n, n);
	}
	for (size_t i = 0; i < n; i++)
		free(ref[i]);
	free(ref);
	store__index_free(&ix);
}

CHECK_TEST(index_new_smallest_and_largest_keys_after_a_shared_prefix)
{
	/* The tree's leftmost and rightmost nodes skip what the smallest and largest keys share
	   ("/bench/d" here): keys beyond either end, sharing less or nothing, must lower them. */
	uint64_t x = check_seed() * 6364136223846793005ull + 7;
	enum { N = 20000, ENDS = 10 };
	struct store__ki **ref = malloc((N + 2 * ENDS) * sizeof *ref);
	size_t n = 0;
	struct store__index ix;
	store__index_init(&ix);
	struct made m = {0};
	for (int i = 0; i < N; i++) {
		char k[32];
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		int len = snprintf(k, sizeof k, "/bench/d%03u/f%07u", (unsigned)(x % 1000),
				   (unsigned)(x >> 20) % 10000000);
		int calls = m.calls;
		struct store__ki *ki = store__index_find_or_add(&ix, k, (size_t)len, make_ki, &m);
		if (m.calls > calls)
			ref[n++] = ki;
	}
	/* each a new smallest or largest key, sharing less and less with the rest */
	static const struct {
		const char *k;
		size_t len;
	} ends[][2] = {{{"/bench/d000/e", 13}, {"/bench/d999/g", 13}},
		       {{"/bench/d", 8}, {"/bench/e", 8}},
		       {{"/bench/c9", 9}, {"/bench/z", 8}},
		       {{"/bench/", 7}, {"/c", 2}},
		       {{"/bench", 6}, {"0", 1}},
		       {{"/a", 2}, {"\x7f", 1}},
		       {{"/", 1}, {"\xfe", 1}},
		       {{"\x01", 1}, {"\xff", 1}},
		       {{"\x00\xff", 2}, {"\xff\x00", 2}},
		       {{"\x00", 1}, {"\xff\xff", 2}}};
	for (size_t i = 0; i < sizeof ends / sizeof *ends; i++) {
		for (int side = 0; side < 2; side++) {
			const char *k = ends[i][side].k;
			size_t len = ends[i][side].len;
			struct store__ki *ki = store__index_find_or_add(&ix, k, len, make_ki, &m);
			CHECK(ki == m.last);
			ref[n++] = ki;
			qsort(ref, n, sizeof *ref, ki_sort);
			CHECK(ref[side ? n - 1 : 0] == ki);
			for (int q = 0; q < 200; q++) { /* seeks to stored keys and just past them */
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				struct store__ki *r = ref[x % n];
				check_seek(&ix, ref, n, r->key, r->key_len);
				unsigned char past[40];
				memcpy(past, r->key, r->key_len);
				past[r->key_len] = 0;
				check_seek(&ix, ref, n, past, r->key_len + 1);
			}
		}
	}
	struct store__iter it;
	store__index_seek(&ix, NULL, 0, &it);
	for (size_t i = 0; i < n; i++)
		CHECK(store__iter_next(&it) == ref[i]);
	CHECK(store__iter_next(&it) == NULL);
	CHECK_EQ(ix.n, n);
	for (size_t i = 0; i < n; i++)
		free(ref[i]);
	free(ref);
	store__index_free(&ix);
}

/* A point range of key on s, checked against value; returns its result array, still held. */
static struct store_kv *point_range(struct store *s, const char *key, const char *value,
				    struct store_range_result *res)
{
	struct store_range_req rq = {.key = key, .key_len = strlen(key)};
	CHECK_EQ(store_range(s, &rq, res), 0);
	CHECK_EQ(res->n, 1);
	CHECK_EQ(res->kvs[0].value_len, strlen(value));
	CHECK(memcmp(res->kvs[0].value, value, strlen(value)) == 0);
	return res->kvs;
}

static void *ranges_on_a_thread(void *arg)
{
	struct store_range_result res;
	point_range(arg, "b", "2", &res);
	store_range_result_free(&res); /* kept as this thread's spare until it exits */
	return NULL;
}

CHECK_TEST(range_result_arrays_are_reused_per_thread)
{
	/* the array of a freed result serves the thread's next point range, whatever range it
	   came from; a thread that exits frees its own (LeakSanitizer would report it otherwise) */
	struct store *s = open_store(0);
	CHECK(put(s, "a", "1") > 0);
	CHECK(put(s, "b", "2") > 0);
	CHECK(put(s, "c", "3") > 0);
	struct store_range_result r1, r2, r3, r4;
	struct store_kv *first = point_range(s, "a", "1", &r1);
	struct store_kv *second = point_range(s, "b", "2", &r2);
	CHECK(first != second);
	store_range_result_free(&r1); /* the spare */
	store_range_result_free(&r2); /* freed: there is one already */
	CHECK(point_range(s, "c", "3", &r3) == first);
	store_range_result_free(&r3);
	/* a prefix range's array (room for 8) is as good a spare */
	CHECK(point_range(s, "a", "1", &r1) == first); /* takes the spare */
	unsigned char end[1];
	size_t el = store_prefix_end("", 0, end);
	struct store_range_req all = {.key = "a", .key_len = 1, .end = end, .end_len = el};
	CHECK_EQ(store_range(s, &all, &r4), 0);
	CHECK_EQ(r4.n, 3);
	struct store_kv *scan = r4.kvs;
	store_range_result_free(&r4); /* the spare now */
	CHECK(point_range(s, "b", "2", &r2) == scan);
	store_range_result_free(&r2);
	store_range_result_free(&r1);
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, ranges_on_a_thread, s), 0);
	CHECK_EQ(pthread_join(t, NULL), 0);
	store_close(s);
}

/* Value of key i, version v: 200 bytes that differ per key and version. */
static void slab_value(int i, int v, char *out)
{
	for (int j = 0; j < 200; j++)
		out[j] = (char)('a' + (i * 31 + v * 7 + j) % 26);
}

CHECK_TEST(compaction_empties_sparse_slabs)
{
	/* enough keys and revisions for several arena slabs; most keys then die, so compaction
	   must move the survivors (kvrecs and keyIndexes) out of the slabs it empties */
	enum { N = 30000 };
	struct store *s = open_store(0);
	CHECK_EQ(store_lease_grant(s, 7, 60, 0), 0);
	char k[16], v[200];
	int64_t created[N];
	for (int i = 0; i < N; i++) {
		snprintf(k, sizeof k, "k%05d", i);
		slab_value(i, 1, v);
		struct store_put p = {.key = k, .key_len = strlen(k), .value = v, .value_len = sizeof v,
				      .lease = i % 20 == 0 ? 7 : 0, .meta = {.mode = (uint32_t)i}};
		struct store_put_result r;
		CHECK_EQ(store_put(s, &p, &r), 0);
		created[i] = r.rev;
	}
	for (int i = 0; i < N; i += 7) { /* a second version of some */
		snprintf(k, sizeof k, "k%05d", i);
		slab_value(i, 2, v);
		struct store_put p = {.key = k, .key_len = strlen(k), .value = v, .value_len = sizeof v,
				      .flags = STORE_PUT_IGNORE_LEASE, .meta = {.mode = (uint32_t)i}};
		CHECK_EQ(store_put(s, &p, NULL), 0);
	}
	for (int i = 0; i < N; i++)
		if (i % 10) {
			snprintf(k, sizeof k, "k%05d", i);
			CHECK_EQ(del(s, k), 1);
		}
	size_t slabs = s->arena.n_slabs;
	CHECK_GT(slabs, 4);
	CHECK_EQ(store_compact(s, store_rev(s)), 0);
	CHECK_LT(s->arena.n_slabs * 2, slabs); /* the memory went back */
	CHECK_EQ(s->idx.n, N / 10);
	size_t leased = 0;
	for (int i = 0; i < N; i += 10) {
		snprintf(k, sizeof k, "k%05d", i);
		struct store_range_req rq = {.key = k, .key_len = strlen(k)};
		struct store_range_result res;
		CHECK_EQ(store_range(s, &rq, &res), 0);
		CHECK_EQ(res.n, 1);
		int ver = i % 7 == 0 ? 2 : 1;
		slab_value(i, ver, v);
		CHECK_EQ(res.kvs[0].value_len, sizeof v);
		CHECK_MEM_EQ(res.kvs[0].value, v, sizeof v);
		CHECK_MEM_EQ(res.kvs[0].key, k, strlen(k));
		CHECK_EQ(res.kvs[0].version, ver);
		CHECK_EQ(res.kvs[0].create_revision, created[i]);
		CHECK_EQ(res.kvs[0].lease, i % 20 == 0 ? 7 : 0);
		CHECK_EQ(res.kvs[0].meta.mode, (uint32_t)i);
		leased += i % 20 == 0;
		store_range_result_free(&res);
	}
	struct store_lease_info info;
	CHECK_EQ(store_lease_time_to_live(s, 7, 0, &info), 0);
	CHECK_EQ(info.n_keys, leased);
	/* the moved store round-trips and keeps working */
	struct store *t = restored(s, NULL);
	check_same_hash(s, t);
	store_close(t);
	int64_t before = store_rev(s);
	CHECK_EQ(store_lease_revoke(s, 7), 0);
	CHECK_EQ(store_rev(s), before + 1);
	CHECK_EQ(s->idx.n, N / 10); /* tombstones until the next compaction */
	struct store_range_req all = {.key = "k", .key_len = 1, .end = "l", .end_len = 1,
				      .flags = STORE_RANGE_COUNT_ONLY};
	struct store_range_result res;
	CHECK_EQ(store_range(s, &all, &res), 0);
	CHECK_EQ(res.count, (int64_t)(N / 10 - leased));
	CHECK_EQ(store_compact(s, store_rev(s)), 0);
	CHECK_EQ(s->idx.n, N / 10 - leased);
	CHECK_GT(put(s, "k00000", "back"), 0);
	store_close(s);
}

/* A put op of a txn. */
static struct store_op put_op(const char *k, const char *v)
{
	return (struct store_op){.type = STORE_OP_PUT,
				 .put = {.key = k, .key_len = strlen(k), .value = v,
					 .value_len = strlen(v)}};
}

CHECK_TEST(snapshot_log_order_and_duplicate_revisions)
{
	/* revision 2: c, a, b (subs 0, 1, 2), not in key order; then a few single puts */
	struct store *s = open_store(0);
	struct store_op ops[3] = {put_op("c", "3"), put_op("a", "1"), put_op("b", "2")};
	struct store_txn tx = {.success = ops, .n_success = 3};
	struct store_txn_result tr;
	CHECK_EQ(store_txn(s, &tx, &tr), 0);
	store_txn_result_free(&tr);
	put(s, "b", "22");
	put(s, "d", "4");
	void *img;
	size_t len;
	CHECK_EQ(store_snapshot_save_buf(s, &img, &len), 0);
	struct store *t = open_store(0);
	CHECK_EQ(store_snapshot_restore(t, img, len), 0);
	/* the restored log is in revision order: a watch from 2 replays c, a, b, b, d */
	struct store_watch *w;
	int64_t crev;
	CHECK_EQ(store_watch_create(t, "a", 1, "\0", 1, 2, 0, &w, &crev), 0);
	struct store_watch_batch b;
	CHECK_EQ(store_watch_next(w, 100, &b), 0);
	CHECK_EQ(b.n, 5);
	const char *want = "cabbd";
	for (size_t i = 0; i < b.n && i < 5; i++) {
		CHECK_EQ(b.events[i].kv.key_len, 1);
		CHECK_EQ(((const char *)b.events[i].kv.key)[0], want[i]);
		CHECK_EQ(b.events[i].kv.mod_sub, i < 3 ? (int64_t)i : 0);
	}
	store_watch_batch_free(&b);
	store_watch_cancel(w);
	/* an image where b's first revision is moved onto a's (2.1): refused */
	size_t rawn = len * 64 + 4096;
	unsigned char *raw = malloc(rawn), *re = malloc(ZSTD_compressBound(rawn));
	size_t got = ZSTD_decompress(raw, rawn, img, len);
	CHECK(!ZSTD_isError(got));
	size_t at = 0;
	for (size_t i = 0; i + 5 <= got && !at; i++)
		if (!memcmp(raw + i, "\1\0\0\0b", 5))
			at = i + 5; /* after key b: n_gens, ver, created_main, created_sub, n, records */
	CHECK_GT(at, 0);
	size_t rec = at + 4 + 8 + 8 + 8 + 4;
	CHECK_EQ(raw[rec], 2);       /* main 2 */
	CHECK_EQ(raw[rec + 8], 2);   /* sub 2 */
	raw[rec + 8] = 1;            /* now 2.1, a's revision */
	size_t rl = ZSTD_compress(re, ZSTD_compressBound(got), raw, got, 1);
	CHECK_EQ(store_snapshot_restore(t, re, rl), STORE_ECORRUPT);
	raw[rec + 8] = 2;
	rl = ZSTD_compress(re, ZSTD_compressBound(got), raw, got, 1);
	CHECK_EQ(store_snapshot_restore(t, re, rl), 0);
	free(raw);
	free(re);
	free(img);
	store_close(t);
	store_close(s);
}

CHECK_SUITE("store-kv", CHECK_CASE(keyindex_seed000_walkthrough), CHECK_CASE(keyindex_etcd_example),
	    CHECK_CASE(range_options_and_errors), CHECK_CASE(put_flags_and_metadata),
	    CHECK_CASE(txn_is_one_revision),
	    CHECK_CASE(move_is_one_revision_and_keeps_everything_but_the_key),
	    CHECK_CASE(move_of_many_keys_and_its_quota),
	    CHECK_CASE(swap_trades_two_trees_in_one_revision),
	    CHECK_CASE(swap_over_the_quota_changes_nothing),
	    CHECK_CASE(range_compare_holds_for_every_key_of_the_range),
	    CHECK_CASE(watch_history_progress_and_compaction),
	    CHECK_CASE(lease_expiry_with_injected_clock), CHECK_CASE(quota_alarm),
	    CHECK_CASE(snapshot_round_trip_and_corruption), CHECK_CASE(compaction_frees_memory),
	    CHECK_CASE(index_many_keys_in_order),
	    CHECK_CASE(index_random_keys_against_sorted_reference),
	    CHECK_CASE(index_new_smallest_and_largest_keys_after_a_shared_prefix),
	    CHECK_CASE(range_result_arrays_are_reused_per_thread),
	    CHECK_CASE(snapshot_write_callback),
	    CHECK_CASE(compaction_empties_sparse_slabs),
	    CHECK_CASE(snapshot_log_order_and_duplicate_revisions))
