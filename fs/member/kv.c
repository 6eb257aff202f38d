/*
 * kv.c: applies rpc.Request protobufs to the store (see member/kv.h).
 */
#include "member/member.h"

#include "common/common.h"

#include <inttypes.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void meta_from(const Rpc__Meta *m, struct store_meta *out)
{
	memset(out, 0, sizeof *out);
	if (!m)
		return;
	out->type = m->type;
	out->mode = m->mode;
	out->uid = m->uid;
	out->gid = m->gid;
	out->atime_ns = m->atime_ns;
	out->mtime_ns = m->mtime_ns;
	out->ctime_ns = m->ctime_ns;
}

static void put_from(const Rpc__Put *p, struct store_put *out)
{
	memset(out, 0, sizeof *out);
	out->key = p->key.data;
	out->key_len = p->key.len;
	out->value = p->value.data;
	out->value_len = p->value.len;
	out->lease = p->lease;
	meta_from(p->meta, &out->meta);
	out->flags = (p->prev_kv ? STORE_PUT_PREV_KV : 0) |
		     (p->ignore_value ? STORE_PUT_IGNORE_VALUE : 0) |
		     (p->ignore_lease ? STORE_PUT_IGNORE_LEASE : 0);
}

static void delete_from(const Rpc__DeleteRange *d, struct store_delete *out)
{
	memset(out, 0, sizeof *out);
	out->key = d->key.data;
	out->key_len = d->key.len;
	out->end = d->range_end.len ? d->range_end.data : NULL;
	out->end_len = d->range_end.len;
	out->prev_kv = d->prev_kv;
}

static int apply_put(struct store *s, const Rpc__Put *p, Rpc__Response *out)
{
	struct store_put sp;
	struct store_put_result res = {0};
	put_from(p, &sp);
	int rc = store_put(s, &sp, &res);
	out->revision = rc == 0 ? res.rev : store_rev(s);
	return rc;
}

static int apply_delete(struct store *s, const Rpc__DeleteRange *d, Rpc__Response *out)
{
	struct store_delete sd;
	struct store_delete_result res = {0};
	delete_from(d, &sd);
	int rc = store_delete_range(s, &sd, &res);
	out->revision = store_rev(s);
	if (rc == 0) {
		out->has_deleted = 1;
		out->deleted = res.deleted;
	}
	store_delete_result_free(&res);
	return rc;
}

static const enum store_cmp_target cmp_targets[] = {
	[RPC__COMPARE__TARGET__VERSION] = STORE_CMP_VERSION,
	[RPC__COMPARE__TARGET__CREATE] = STORE_CMP_CREATE,
	[RPC__COMPARE__TARGET__MOD] = STORE_CMP_MOD,
	[RPC__COMPARE__TARGET__VALUE] = STORE_CMP_VALUE,
	[RPC__COMPARE__TARGET__LEASE] = STORE_CMP_LEASE,
};

static const enum store_cmp_result cmp_results[] = {
	[RPC__COMPARE__RESULT__EQUAL] = STORE_CMP_EQ,
	[RPC__COMPARE__RESULT__GREATER] = STORE_CMP_GT,
	[RPC__COMPARE__RESULT__LESS] = STORE_CMP_LT,
	[RPC__COMPARE__RESULT__NOT_EQUAL] = STORE_CMP_NE,
};

/* Converts n ops; -EINVAL for an op that is none of put, delete, move and swap. */
static int ops_from(Rpc__Op *const *ops, size_t n, struct store_op *out)
{
	for (size_t i = 0; i < n; i++) {
		memset(&out[i], 0, sizeof out[i]);
		switch (ops[i]->op_case) {
		case RPC__OP__OP_PUT:
			out[i].type = STORE_OP_PUT;
			put_from(ops[i]->put, &out[i].put);
			break;
		case RPC__OP__OP_DELETE_RANGE:
			out[i].type = STORE_OP_DELETE;
			delete_from(ops[i]->delete_range, &out[i].del);
			break;
		case RPC__OP__OP_MOVE:
		case RPC__OP__OP_SWAP: {
			const Rpc__Move *m = ops[i]->op_case == RPC__OP__OP_MOVE ? ops[i]->move
										 : ops[i]->swap;
			out[i].type = ops[i]->op_case == RPC__OP__OP_MOVE ? STORE_OP_MOVE : STORE_OP_SWAP;
			out[i].move = (struct store_move){.from = m->from.data, .from_len = m->from.len,
							  .to = m->to.data, .to_len = m->to.len};
			break;
		}
		default:
			return -EINVAL;
		}
	}
	return 0;
}

static int apply_txn(struct store *s, const Rpc__Txn *t, Rpc__Response *out)
{
	struct store_cmp *cmps = calloc(t->n_compare + 1, sizeof *cmps);
	struct store_op *succ = calloc(t->n_success + 1, sizeof *succ);
	struct store_op *fail = calloc(t->n_failure + 1, sizeof *fail);
	int rc = cmps && succ && fail ? 0 : -ENOMEM;
	for (size_t i = 0; rc == 0 && i < t->n_compare; i++) {
		const Rpc__Compare *c = t->compare[i];
		if ((unsigned)c->target >= sizeof cmp_targets / sizeof cmp_targets[0] ||
		    (unsigned)c->result >= sizeof cmp_results / sizeof cmp_results[0]) {
			rc = -EINVAL;
			break;
		}
		cmps[i] = (struct store_cmp){.target = cmp_targets[c->target],
					     .result = cmp_results[c->result],
					     .key = c->key.data,
					     .key_len = c->key.len,
					     .num = c->number,
					     .value = c->value.data,
					     .value_len = c->value.len,
					     .end = c->range_end.len ? c->range_end.data : NULL,
					     .end_len = c->range_end.len};
	}
	if (rc == 0)
		rc = ops_from(t->success, t->n_success, succ);
	if (rc == 0)
		rc = ops_from(t->failure, t->n_failure, fail);
	struct store_txn_result res = {0};
	if (rc == 0) {
		struct store_txn txn = {cmps, t->n_compare, succ, t->n_success, fail, t->n_failure};
		rc = store_txn(s, &txn, &res);
	}
	out->revision = store_rev(s);
	if (rc == 0) {
		out->has_succeeded = 1;
		out->succeeded = res.succeeded;
		int64_t deleted = 0;
		for (size_t i = 0; i < res.n; i++)
			if (res.results[i].type == STORE_OP_DELETE)
				deleted += res.results[i].del.deleted;
		out->has_deleted = 1;
		out->deleted = deleted;
	}
	store_txn_result_free(&res);
	free(cmps);
	free(succ);
	free(fail);
	return rc;
}

static const char corrupt_key[] = "\x01" "alarm" "\0" "corrupt";
#define CORRUPT_KEY_LEN (sizeof corrupt_key - 1)

int fs_kv_corrupt(struct store *s, uint64_t *member)
{
	struct store_range_req rq = {.key = corrupt_key, .key_len = CORRUPT_KEY_LEN};
	struct store_range_result res;
	if (store_range(s, &rq, &res) != 0)
		return 0;
	int raised = res.n > 0;
	if (raised && member) {
		*member = 0;
		if (res.kvs[0].value_len == sizeof *member)
			memcpy(member, res.kvs[0].value, sizeof *member);
	}
	store_range_result_free(&res);
	return raised;
}

static int apply_alarm(struct store *s, const Rpc__Alarm *a, Rpc__Response *out)
{
	int rc = -EOPNOTSUPP;
	if (a->alarm == RPC__ALARM__TYPE__NOSPACE && a->action == RPC__ALARM__ACTION__DEACTIVATE) {
		rc = store_alarm_disarm(s);
	} else if (a->alarm == RPC__ALARM__TYPE__CORRUPT &&
		   a->action == RPC__ALARM__ACTION__ACTIVATE) {
		struct store_put p = {.key = corrupt_key, .key_len = CORRUPT_KEY_LEN,
				      .value = &a->member_id, .value_len = sizeof a->member_id};
		struct store_put_result res = {0};
		rc = fs_kv_corrupt(s, NULL) ? 0 : store_put(s, &p, &res);
	} else if (a->alarm == RPC__ALARM__TYPE__CORRUPT &&
		   a->action == RPC__ALARM__ACTION__DEACTIVATE) {
		struct store_delete d = {.key = corrupt_key, .key_len = CORRUPT_KEY_LEN};
		struct store_delete_result res = {0};
		rc = store_delete_range(s, &d, &res);
		store_delete_result_free(&res);
	}
	out->revision = store_rev(s);
	return rc;
}

static int apply_hash_check(struct fs_kv *kv, const Rpc__HashCheck *h, Rpc__Response *out)
{
	struct store *s = kv->store;
	uint64_t mine = 0;
	out->revision = store_rev(s);
	/* a revision compacted here (or not reached, which cannot happen in order) says nothing,
	   nor does a hash of another function (from a member of another version, or in a log
	   written by one) */
	uint32_t algorithm = h->has_algorithm ? h->algorithm : 1;
	if (algorithm != STORE_HASH_KV_ALGORITHM || h->revision <= store_compact_rev(s) ||
	    h->revision > store_rev(s) ||
	    store_hash_kv(s, h->revision, &mine) != 0)
		return 0;
	if (mine == h->hash) {
		FS_DEBUG("consistency check at revision %" PRId64 ": hash %016" PRIx64 " agrees with "
			 "member %016" PRIx64, h->revision, mine, h->member_id);
		return 0;
	}
	if (kv->on_mismatch)
		kv->on_mismatch(kv->arg, h->revision, mine, h->hash, h->member_id);
	return 0;
}

/*
 * The id of a lease granted without one at raft index: the index itself (unique and the same on
 * every member), moved on past ids already taken (after a restore into a new cluster's log).
 */
static int64_t lease_id_for(struct store *s, uint64_t index)
{
	int64_t id = (int64_t)(index & INT64_MAX);
	struct store_lease_info info;
	while (id <= 0 || store_lease_time_to_live(s, id, 0, &info) == 0)
		id = (int64_t)(((uint64_t)id + 0x9E3779B97F4A7C15ull) & INT64_MAX);
	return id;
}

static int apply_request(struct fs_kv *kv, uint64_t index, const Rpc__Request *r,
			 Rpc__Response *out)
{
	struct store *s = kv->store;
	int rc;
	switch (r->op_case) {
	case RPC__REQUEST__OP_ALARM:
		return apply_alarm(s, r->alarm, out);
	case RPC__REQUEST__OP_HASH_CHECK:
		return apply_hash_check(kv, r->hash_check, out);
	default:
		break;
	}
	if (fs_kv_corrupt(s, NULL)) {
		out->revision = store_rev(s);
		return FS_KV_ECORRUPT; /* no write while members disagree on what they hold */
	}
	switch (r->op_case) {
	case RPC__REQUEST__OP_PUT:
		return apply_put(s, r->put, out);
	case RPC__REQUEST__OP_DELETE_RANGE:
		return apply_delete(s, r->delete_range, out);
	case RPC__REQUEST__OP_TXN:
		return apply_txn(s, r->txn, out);
	case RPC__REQUEST__OP_COMPACTION:
		rc = store_compact(s, r->compaction->revision);
		out->revision = store_rev(s);
		return rc;
	case RPC__REQUEST__OP_LEASE_GRANT: {
		int64_t id = r->lease_grant->id ? r->lease_grant->id : lease_id_for(s, index);
		/*
		 * A lease's expiry is this member's own (only its leader acts on it, and a new
		 * leader gives every lease its TTL anew): measured on the monotonic clock from when
		 * the grant or renewal applies here, never on the proposer's wall clock, which may be
		 * far from the leader's.
		 */
		int64_t now_ms = fs_clock_mono_ms();
		rc = store_lease_grant(s, id, r->lease_grant->ttl, now_ms);
		struct store_lease_info info;
		if (rc == 0 && store_lease_time_to_live(s, id, now_ms, &info) == 0) {
			out->has_lease_id = out->has_lease_ttl = 1;
			out->lease_id = info.id;
			out->lease_ttl = info.ttl_s;
		}
		out->revision = store_rev(s);
		return rc;
	}
	case RPC__REQUEST__OP_LEASE_REVOKE:
		rc = store_lease_revoke(s, r->lease_revoke->id);
		out->revision = store_rev(s);
		return rc;
	case RPC__REQUEST__OP_LEASE_KEEP_ALIVE: {
		int64_t ttl = 0;
		rc = store_lease_renew(s, r->lease_keep_alive->id, fs_clock_mono_ms(), &ttl);
		if (rc == 0) {
			out->has_lease_id = out->has_lease_ttl = 1;
			out->lease_id = r->lease_keep_alive->id;
			out->lease_ttl = ttl;
		}
		out->revision = store_rev(s);
		return rc;
	}
	default:
		return -EINVAL;
	}
}

static int kv_apply(void *ud, uint64_t index, const uint8_t *req, size_t len, void **result,
		    size_t *result_len)
{
	struct fs_kv *kv = ud;
	struct store *s = kv->store;
	Rpc__Response resp = RPC__RESPONSE__INIT;
	Rpc__Request *r = rpc__request__unpack(NULL, len, req);
	int rc = r ? apply_request(kv, index, r, &resp) : -EINVAL;
	if (r)
		rpc__request__free_unpacked(r, NULL);
	store_set_applied_index(s, index);
	resp.has_revision = 1;
	size_t n = rpc__response__get_packed_size(&resp);
	uint8_t *buf = malloc(n ? n : 1);
	if (buf) {
		rpc__response__pack(&resp, buf);
		*result = buf;
		*result_len = n;
	}
	return rc;
}

static int kv_snapshot(void *ud, uint8_t **image, size_t *len)
{
	void *buf;
	int rc = store_snapshot_save_buf(((struct fs_kv *)ud)->store, &buf, len);
	*image = buf;
	return rc;
}

static int kv_restore(void *ud, const uint8_t *image, size_t len)
{
	return store_snapshot_restore(((struct fs_kv *)ud)->store, image, len);
}

void fs_kv_state_machine(struct fs_kv *kv, struct fs_state_machine *sm)
{
	*sm = (struct fs_state_machine){kv, kv_apply, kv_snapshot, kv_restore};
}

uint8_t *fs_kv_encode(const Rpc__Request *req, size_t *len)
{
	*len = rpc__request__get_packed_size(req);
	uint8_t *buf = malloc(*len ? *len : 1);
	if (buf)
		rpc__request__pack(req, buf);
	return buf;
}

/* fs_member_propose_encoded's encoder of a request. */
static void encode_request(const void *src, uint8_t *buf)
{
	rpc__request__pack(src, buf);
}

int fs_kv_propose(struct fs_member *m, const Rpc__Request *req, fs_wait_cb cb, void *arg)
{
	return fs_member_propose_encoded(m, rpc__request__get_packed_size(req), encode_request, req,
					 cb, arg);
}

int fs_kv_decode_response(const void *buf, size_t len, Rpc__Response *resp)
{
	rpc__response__init(resp);
	if (!len)
		return 0;
	Rpc__Response *r = rpc__response__unpack(NULL, len, buf);
	if (!r)
		return -EINVAL;
	*resp = *r;
	resp->base.unknown_fields = NULL;
	resp->base.n_unknown_fields = 0;
	rpc__response__free_unpacked(r, NULL);
	return 0;
}
