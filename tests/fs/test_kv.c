/*
 * test_kv.c: the store as the member's state machine: rpc.Request protobufs applied to a store,
 * answers decoded as the proposer sees them, snapshots, and a one-member cluster end to end.
 */
#include "check.h"
#include "member/member.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* Applies req to the state machine at index; returns the status, fills *resp. */
static int apply(struct fs_state_machine *sm, uint64_t index, const Rpc__Request *req,
		 Rpc__Response *resp)
{
	size_t len;
	uint8_t *buf = fs_kv_encode(req, &len);
	CHECK(buf != NULL);
	void *result = NULL;
	size_t rlen = 0;
	int status = sm->apply(sm->ud, index, buf, len, &result, &rlen);
	free(buf);
	CHECK_EQ(fs_kv_decode_response(result, rlen, resp), 0);
	free(result);
	return status;
}

static Rpc__Put put_of(const char *key, const char *value)
{
	Rpc__Put p = RPC__PUT__INIT;
	p.has_key = p.has_value = 1;
	p.key.data = (uint8_t *)key;
	p.key.len = strlen(key);
	p.value.data = (uint8_t *)value;
	p.value.len = strlen(value);
	return p;
}

static const char *value_of(struct store *s, const char *key, struct store_kv *kv)
{
	static char buf[256];
	struct store_range_req rq = {.key = key, .key_len = strlen(key)};
	struct store_range_result res;
	CHECK_EQ(store_range(s, &rq, &res), 0);
	if (res.n == 0) {
		store_range_result_free(&res);
		return NULL;
	}
	snprintf(buf, sizeof buf, "%.*s", (int)res.kvs[0].value_len, res.kvs[0].value);
	if (kv)
		*kv = res.kvs[0];
	store_range_result_free(&res);
	return buf;
}

CHECK_TEST(put_delete_and_meta)
{
	struct store *s;
	struct fs_state_machine sm;
	CHECK_EQ(store_open(NULL, &s), 0);
	struct fs_kv kv_sm = {s, NULL, NULL};
	fs_kv_state_machine(&kv_sm, &sm);
	Rpc__Request req = RPC__REQUEST__INIT;
	Rpc__Put p = put_of("/etc/app.conf", "workers 4");
	Rpc__Meta meta = RPC__META__INIT;
	meta.has_mode = meta.has_uid = meta.has_mtime_ns = 1;
	meta.mode = 0640;
	meta.uid = 1000;
	meta.mtime_ns = 1790000000123456789;
	p.meta = &meta;
	req.op_case = RPC__REQUEST__OP_PUT;
	req.put = &p;
	Rpc__Response resp;
	CHECK_EQ(apply(&sm, 5, &req, &resp), 0);
	CHECK_EQ(resp.revision, 2);
	struct store_kv kv;
	CHECK_STR_EQ(value_of(s, "/etc/app.conf", &kv), "workers 4");
	CHECK_EQ(kv.meta.mode, 0640);
	CHECK_EQ(kv.meta.uid, 1000);
	CHECK_EQ(kv.meta.mtime_ns, 1790000000123456789);
	CHECK_EQ(store_applied_index(s), 5);

	Rpc__DeleteRange d = RPC__DELETE_RANGE__INIT;
	d.has_key = 1;
	d.key.data = (uint8_t *)"/etc/app.conf";
	d.key.len = strlen("/etc/app.conf");
	req.op_case = RPC__REQUEST__OP_DELETE_RANGE;
	req.delete_range = &d;
	CHECK_EQ(apply(&sm, 6, &req, &resp), 0);
	CHECK_EQ(resp.deleted, 1);
	CHECK_EQ(resp.revision, 3);
	CHECK(value_of(s, "/etc/app.conf", NULL) == NULL);
	store_close(s);
}

/* The compare-and-create an O_EXCL create or a mkdir proposes. */
static int create_exclusive(struct fs_state_machine *sm, uint64_t index, const char *key,
			    const char *value, Rpc__Response *resp)
{
	Rpc__Compare c = RPC__COMPARE__INIT;
	c.has_target = c.has_result = c.has_key = c.has_number = 1;
	c.target = RPC__COMPARE__TARGET__VERSION;
	c.result = RPC__COMPARE__RESULT__EQUAL;
	c.key.data = (uint8_t *)key;
	c.key.len = strlen(key);
	c.number = 0;
	Rpc__Compare *cs[] = {&c};
	Rpc__Put p = put_of(key, value);
	Rpc__Op op = RPC__OP__INIT;
	op.op_case = RPC__OP__OP_PUT;
	op.put = &p;
	Rpc__Op *ops[] = {&op};
	Rpc__Txn t = RPC__TXN__INIT;
	t.n_compare = 1;
	t.compare = cs;
	t.n_success = 1;
	t.success = ops;
	Rpc__Request req = RPC__REQUEST__INIT;
	req.op_case = RPC__REQUEST__OP_TXN;
	req.txn = &t;
	return apply(sm, index, &req, resp);
}

CHECK_TEST(compare_and_create_has_one_winner)
{
	struct store *s;
	struct fs_state_machine sm;
	CHECK_EQ(store_open(NULL, &s), 0);
	struct fs_kv kv_sm = {s, NULL, NULL};
	fs_kv_state_machine(&kv_sm, &sm);
	Rpc__Response resp;
	CHECK_EQ(create_exclusive(&sm, 1, "/lock", "n1", &resp), 0);
	CHECK(resp.succeeded);
	CHECK_EQ(create_exclusive(&sm, 2, "/lock", "n2", &resp), 0);
	CHECK(!resp.succeeded); /* the loser sees EEXIST at the fs layer */
	CHECK_STR_EQ(value_of(s, "/lock", NULL), "n1");
	store_close(s);
}

CHECK_TEST(txn_moves_a_prefix_guarded_by_a_range_compare)
{
	struct store *s;
	struct fs_state_machine sm;
	CHECK_EQ(store_open(NULL, &s), 0);
	struct fs_kv kv_sm = {s, NULL, NULL};
	fs_kv_state_machine(&kv_sm, &sm);
	Rpc__Request req = RPC__REQUEST__INIT;
	Rpc__Response resp;
	const char *keys[] = {"/a/x", "/a/y/z", "/b"};
	const char *vals[] = {"one", "twenty-two", "b"};
	for (int i = 0; i < 3; i++) {
		Rpc__Put p = put_of(keys[i], vals[i]);
		req.op_case = RPC__REQUEST__OP_PUT;
		req.put = &p;
		CHECK_EQ(apply(&sm, (uint64_t)i + 1, &req, &resp), 0);
	}
	int64_t seen = resp.revision; /* /b was the last change */
	/* every key under /a/ unchanged since seen: move them to /c/ */
	Rpc__Compare c = RPC__COMPARE__INIT;
	c.has_target = c.has_result = c.has_key = c.has_number = c.has_range_end = 1;
	c.target = RPC__COMPARE__TARGET__MOD;
	c.result = RPC__COMPARE__RESULT__LESS;
	c.key.data = (uint8_t *)"/a/";
	c.key.len = 3;
	c.range_end.data = (uint8_t *)"/a0";
	c.range_end.len = 3;
	c.number = seen - 1; /* /a/y/z (seen - 1) fails it: nothing moves */
	Rpc__Move mv = RPC__MOVE__INIT;
	mv.has_from = mv.has_to = 1;
	mv.from.data = (uint8_t *)"/a/";
	mv.from.len = 3;
	mv.to.data = (uint8_t *)"/c/";
	mv.to.len = 3;
	Rpc__Op op = RPC__OP__INIT;
	op.op_case = RPC__OP__OP_MOVE;
	op.move = &mv;
	Rpc__Compare *cs[] = {&c};
	Rpc__Op *ops[] = {&op};
	Rpc__Txn t = RPC__TXN__INIT;
	t.n_compare = 1;
	t.compare = cs;
	t.n_success = 1;
	t.success = ops;
	req.op_case = RPC__REQUEST__OP_TXN;
	req.txn = &t;
	CHECK_EQ(apply(&sm, 4, &req, &resp), 0);
	CHECK(resp.has_succeeded && !resp.succeeded);
	CHECK_STR_EQ(value_of(s, "/a/y/z", NULL), "twenty-two");
	c.number = seen + 1;
	CHECK_EQ(apply(&sm, 5, &req, &resp), 0);
	CHECK(resp.succeeded);
	CHECK_EQ(resp.revision, seen + 1);
	CHECK(value_of(s, "/a/x", NULL) == NULL);
	CHECK_STR_EQ(value_of(s, "/c/x", NULL), "one");
	CHECK_STR_EQ(value_of(s, "/c/y/z", NULL), "twenty-two");
	CHECK_STR_EQ(value_of(s, "/b", NULL), "b");
	/* a move into its own subtree is refused: the request fails and changes nothing */
	mv.to.data = (uint8_t *)"/c/y/";
	mv.to.len = 5;
	mv.from.data = (uint8_t *)"/c/";
	t.n_compare = 0;
	CHECK_EQ(apply(&sm, 6, &req, &resp), -EINVAL);
	CHECK_EQ(resp.revision, seen + 1);
	store_close(s);
}

CHECK_TEST(lease_revoke_deletes_attached_keys)
{
	struct store *s;
	struct fs_state_machine sm;
	CHECK_EQ(store_open(NULL, &s), 0);
	struct fs_kv kv_sm = {s, NULL, NULL};
	fs_kv_state_machine(&kv_sm, &sm);
	Rpc__Request req = RPC__REQUEST__INIT;
	Rpc__LeaseGrant g = RPC__LEASE_GRANT__INIT;
	g.has_id = g.has_ttl = 1;
	g.id = 42;
	g.ttl = 1; /* raised to the store's minimum */
	req.op_case = RPC__REQUEST__OP_LEASE_GRANT;
	req.lease_grant = &g;
	req.has_time_ns = 1;
	req.time_ns = 1000000000;
	Rpc__Response resp;
	CHECK_EQ(apply(&sm, 1, &req, &resp), 0);
	CHECK_EQ(resp.lease_id, 42);
	CHECK_GE(resp.lease_ttl, 1);
	CHECK_EQ(apply(&sm, 2, &req, &resp), STORE_ELEASEEXISTS);

	Rpc__Put p = put_of("/svc/web-1", "10.0.0.1:80");
	p.has_lease = 1;
	p.lease = 42;
	req.op_case = RPC__REQUEST__OP_PUT;
	req.put = &p;
	CHECK_EQ(apply(&sm, 3, &req, &resp), 0);
	p.lease = 7; /* no such lease: refused, nothing written */
	p.key.data = (uint8_t *)"/svc/web-2";
	CHECK_EQ(apply(&sm, 4, &req, &resp), STORE_ELEASENOTFOUND);
	CHECK(value_of(s, "/svc/web-2", NULL) == NULL);

	Rpc__LeaseRevoke r = RPC__LEASE_REVOKE__INIT;
	r.has_id = 1;
	r.id = 42;
	req.op_case = RPC__REQUEST__OP_LEASE_REVOKE;
	req.lease_revoke = &r;
	CHECK_EQ(apply(&sm, 5, &req, &resp), 0);
	CHECK(value_of(s, "/svc/web-1", NULL) == NULL);
	store_close(s);
}

CHECK_TEST(undecodable_request_is_a_noop_everywhere)
{
	struct store *s;
	struct fs_state_machine sm;
	CHECK_EQ(store_open(NULL, &s), 0);
	struct fs_kv kv_sm = {s, NULL, NULL};
	fs_kv_state_machine(&kv_sm, &sm);
	const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
	void *result = NULL;
	size_t rlen = 0;
	CHECK_EQ(sm.apply(sm.ud, 9, junk, sizeof junk, &result, &rlen), -EINVAL);
	free(result);
	CHECK_EQ(store_rev(s), 1);
	CHECK_EQ(store_applied_index(s), 9);
	store_close(s);
}

CHECK_TEST(snapshot_restores_an_equal_store)
{
	struct store *a, *b;
	struct fs_state_machine sa, sb;
	CHECK_EQ(store_open(NULL, &a), 0);
	CHECK_EQ(store_open(NULL, &b), 0);
	struct fs_kv kv_sa = {a, NULL, NULL};
	fs_kv_state_machine(&kv_sa, &sa);
	struct fs_kv kv_sb = {b, NULL, NULL};
	fs_kv_state_machine(&kv_sb, &sb);
	Rpc__Response resp;
	char key[32], val[32];
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof key, "/k/%03d", i % 37);
		snprintf(val, sizeof val, "v%d", i);
		Rpc__Put p = put_of(key, val);
		Rpc__Request req = RPC__REQUEST__INIT;
		req.op_case = RPC__REQUEST__OP_PUT;
		req.put = &p;
		CHECK_EQ(apply(&sa, (uint64_t)i + 1, &req, &resp), 0);
	}
	uint8_t *image;
	size_t len;
	CHECK_EQ(sa.snapshot(sa.ud, &image, &len), 0);
	CHECK_EQ(sb.restore(sb.ud, image, len), 0);
	uint64_t ha, hb;
	CHECK_EQ(store_hash_kv(a, 0, &ha), 0);
	CHECK_EQ(store_hash_kv(b, 0, &hb), 0);
	CHECK_EQ_U64(ha, hb);
	CHECK_EQ(store_applied_index(b), 100);
	image[len / 2] ^= 0x5a;
	CHECK_NE(sb.restore(sb.ud, image, len), 0); /* corrupt: refused, store unchanged */
	CHECK_EQ(store_hash_kv(b, 0, &hb), 0);
	CHECK_EQ_U64(ha, hb);
	free(image);
	store_close(a);
	store_close(b);
}

struct mismatch {
	int calls;
	int64_t rev;
	uint64_t mine, theirs, member;
};

static void on_mismatch(void *arg, int64_t rev, uint64_t mine, uint64_t theirs, uint64_t member)
{
	struct mismatch *mm = arg;
	mm->calls++;
	mm->rev = rev;
	mm->mine = mine;
	mm->theirs = theirs;
	mm->member = member;
}

/* A hash check entry as the leader proposes it; algorithm 0: without one (an older version's). */
static int hash_check_of(struct fs_state_machine *sm, uint64_t index, int64_t rev, uint64_t hash,
			 uint32_t algorithm)
{
	Rpc__HashCheck h = RPC__HASH_CHECK__INIT;
	h.has_revision = h.has_hash = h.has_member_id = 1;
	h.has_algorithm = algorithm != 0;
	h.algorithm = algorithm;
	h.revision = rev;
	h.hash = hash;
	h.member_id = 0x11;
	Rpc__Request req = RPC__REQUEST__INIT;
	req.op_case = RPC__REQUEST__OP_HASH_CHECK;
	req.hash_check = &h;
	Rpc__Response resp;
	return apply(sm, index, &req, &resp);
}

static int hash_check(struct fs_state_machine *sm, uint64_t index, int64_t rev, uint64_t hash)
{
	return hash_check_of(sm, index, rev, hash, STORE_HASH_KV_ALGORITHM);
}

static int corrupt_alarm(struct fs_state_machine *sm, uint64_t index, Rpc__Alarm__Action action)
{
	Rpc__Alarm a = RPC__ALARM__INIT;
	a.has_action = a.has_alarm = a.has_member_id = 1;
	a.action = action;
	a.alarm = RPC__ALARM__TYPE__CORRUPT;
	a.member_id = 0x22;
	Rpc__Request req = RPC__REQUEST__INIT;
	req.op_case = RPC__REQUEST__OP_ALARM;
	req.alarm = &a;
	Rpc__Response resp;
	return apply(sm, index, &req, &resp);
}

CHECK_TEST(consistency_check_and_corrupt_alarm)
{
	struct store *s, *t;
	struct fs_state_machine sm, st;
	struct mismatch mm = {0};
	CHECK_EQ(store_open(NULL, &s), 0);
	CHECK_EQ(store_open(NULL, &t), 0);
	struct fs_kv kv = {s, on_mismatch, &mm}, kt = {t, NULL, NULL};
	fs_kv_state_machine(&kv, &sm);
	fs_kv_state_machine(&kt, &st);
	Rpc__Put p = put_of("/a", "1");
	Rpc__Request req = RPC__REQUEST__INIT;
	req.op_case = RPC__REQUEST__OP_PUT;
	req.put = &p;
	Rpc__Response resp;
	CHECK_EQ(apply(&sm, 1, &req, &resp), 0);
	uint64_t h;
	CHECK_EQ(store_hash_kv(s, 2, &h), 0);
	CHECK_EQ(hash_check(&sm, 2, 2, h), 0);
	CHECK_EQ(mm.calls, 0); /* agreeing members say nothing */
	CHECK_EQ(hash_check(&sm, 3, 2, h ^ 1), 0);
	CHECK_EQ(mm.calls, 1);
	CHECK_EQ(mm.rev, 2);
	CHECK_EQ_U64(mm.mine, h);
	CHECK_EQ_U64(mm.theirs, h ^ 1);
	CHECK_EQ_U64(mm.member, 0x11);
	CHECK_EQ(hash_check(&sm, 4, 99, 0), 0); /* a revision not held says nothing */
	CHECK_EQ(mm.calls, 1);
	/* nor does a hash of another function: a log written by an older version (no algorithm)
	   or a member of another version */
	CHECK_EQ(hash_check_of(&sm, 4, 2, h ^ 1, 0), 0);
	CHECK_EQ(hash_check_of(&sm, 4, 2, h ^ 1, STORE_HASH_KV_ALGORITHM + 1), 0);
	CHECK_EQ(mm.calls, 1);

	/* the alarm: every write refused, reads still served, kept in snapshots */
	CHECK_EQ(corrupt_alarm(&sm, 5, RPC__ALARM__ACTION__ACTIVATE), 0);
	uint64_t who = 0;
	CHECK(fs_kv_corrupt(s, &who));
	CHECK_EQ_U64(who, 0x22);
	CHECK_EQ(apply(&sm, 6, &req, &resp), FS_KV_ECORRUPT);
	CHECK_STR_EQ(value_of(s, "/a", NULL), "1");
	uint8_t *image;
	size_t len;
	CHECK_EQ(sm.snapshot(sm.ud, &image, &len), 0);
	CHECK_EQ(st.restore(st.ud, image, len), 0);
	free(image);
	CHECK(fs_kv_corrupt(t, NULL));
	CHECK_EQ(apply(&st, 7, &req, &resp), FS_KV_ECORRUPT);
	CHECK_EQ(corrupt_alarm(&sm, 7, RPC__ALARM__ACTION__DEACTIVATE), 0);
	CHECK(!fs_kv_corrupt(s, NULL));
	CHECK_EQ(apply(&sm, 8, &req, &resp), 0);
	store_close(s);
	store_close(t);
}

struct answer {
	int done, status;
	Rpc__Response resp;
};

static void on_answer(void *arg, uint64_t id, int status, const void *result, size_t len)
{
	struct answer *a = arg;
	a->done = 1;
	a->status = status;
	CHECK_EQ(fs_kv_decode_response(result, len, &a->resp), 0);
}

/* A loopback port that was free a moment ago. */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof sa;
	CHECK_EQ(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	CHECK_EQ(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static void on_stopped(void *arg)
{
	*(int *)arg = 1;
}

CHECK_TEST(one_member_cluster_applies_through_raft)
{
	char dir[] = "/tmp/rfs-kv-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct fs_member_config cfg;
	fs_config_defaults(&cfg);
	char data[64];
	snprintf(data, sizeof data, "%s/data", dir);
	CHECK_EQ(fs_config_flag(&cfg, "--data-dir", data, stderr), 1);
	char addr[32];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port());
	CHECK_EQ(fs_config_flag(&cfg, "--listen-peer", addr, stderr), 1);
	CHECK_EQ(fs_config_finish(&cfg, stderr), 0);
	struct store *s;
	CHECK_EQ(store_open(NULL, &s), 0);
	struct fs_state_machine sm;
	struct fs_kv kv_sm = {s, NULL, NULL};
	fs_kv_state_machine(&kv_sm, &sm);
	struct fs_member *m;
	CHECK_EQ(fs_member_start(&m, &loop, &cfg, NULL, &sm), 0);

	Rpc__Put p = put_of("/hello", "world");
	Rpc__Request req = RPC__REQUEST__INIT;
	req.op_case = RPC__REQUEST__OP_PUT;
	req.put = &p;
	size_t len;
	uint8_t *buf = fs_kv_encode(&req, &len);
	struct answer a = {0};
	CHECK_EQ(fs_member_propose(m, buf, len, on_answer, &a), 0);
	free(buf);
	for (int i = 0; i < 2000 && !a.done; i++)
		uv_run(&loop, UV_RUN_ONCE);
	CHECK(a.done);
	CHECK_EQ(a.status, 0);
	CHECK_EQ(a.resp.revision, 2);
	CHECK_STR_EQ(value_of(s, "/hello", NULL), "world");
	int stopped = 0;
	fs_member_stop(m, on_stopped, &stopped);
	while (!stopped)
		uv_run(&loop, UV_RUN_ONCE);
	CHECK_EQ(uv_loop_close(&loop), 0);
	store_close(s);
	char cmd[64];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK_EQ(system(cmd), 0);
}

CHECK_SUITE("fs-kv", CHECK_CASE(put_delete_and_meta), CHECK_CASE(compare_and_create_has_one_winner),
	    CHECK_CASE(txn_moves_a_prefix_guarded_by_a_range_compare),
	    CHECK_CASE(lease_revoke_deletes_attached_keys),
	    CHECK_CASE(undecodable_request_is_a_noop_everywhere),
	    CHECK_CASE(snapshot_restores_an_equal_store),
	    CHECK_CASE(consistency_check_and_corrupt_alarm),
	    CHECK_CASE(one_member_cluster_applies_through_raft))
