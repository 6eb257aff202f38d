/*
 * leases.c: what the timer does every FS_CONTROL_TICK_MS. As the leader: every lease gets its TTL
 * anew when a term begins, each expired lease's revoke is proposed (every member deletes its keys
 * when that is applied), and the history is compacted automatically. On every member: the
 * mount's session lease is granted and kept alive, and a `member move-leader` waiting in
 * commands.c learns whether leadership moved.
 */
#include "control/internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* ---- leases kept by the leader ---------------------------------------------------------------- */

static void on_revoked(struct fs_control_call *call, int status, const Rpc__Response *resp)
{
	struct fs_control *c = call->c;
	for (int i = 0; i < c->n_revoking; i++)
		if (c->revoking[i] == call->arg) {
			c->revoking[i] = c->revoking[--c->n_revoking];
			break;
		}
	if (status == 0)
		FS_INFO("lease %" PRId64 " expired: revoked at revision %" PRId64
			", the keys attached to it are deleted", call->arg, resp->revision);
	else if (status != STORE_ELEASENOTFOUND)
		FS_WARN("revoking expired lease %" PRId64 " failed: %s (retrying)", call->arg,
			fs_strerror(status));
}

static void expire_leases(struct fs_control *c, int64_t now)
{
	int64_t *ids = NULL;
	size_t n = 0;
	if (store_lease_expired(c->store, now, 16, &ids, &n) != 0)
		return;
	for (size_t i = 0; i < n && c->n_revoking < (int)(sizeof c->revoking / sizeof c->revoking[0]);
	     i++) {
		int inflight = 0;
		for (int j = 0; j < c->n_revoking; j++)
			inflight |= c->revoking[j] == ids[i];
		struct fs_control_call *call =
			inflight ? NULL : fs__control_call_new(c, NULL, on_revoked);
		if (!call)
			continue;
		call->arg = ids[i];
		Rpc__LeaseRevoke r = RPC__LEASE_REVOKE__INIT;
		r.has_id = 1;
		r.id = ids[i];
		Rpc__Request req = RPC__REQUEST__INIT;
		req.op_case = RPC__REQUEST__OP_LEASE_REVOKE;
		req.lease_revoke = &r;
		if (fs__control_call_propose(call, &req) == 0)
			c->revoking[c->n_revoking++] = ids[i];
	}
	free(ids);
}

/* ---- the session lease ------------------------------------------------------------------------ */

static void on_session(struct fs_control_call *call, int status, const Rpc__Response *resp)
{
	struct fs_control *c = call->c;
	int granting = call->arg == 0;
	if (c->stopping || call->gen != c->session_gen)
		return; /* given up on already: a later one was sent */
	c->session_busy = 0;
	int64_t ttl = c->opt.session_ttl_s;
	if (status == 0) {
		if (granting)
			FS_INFO("session lease %" PRId64 " granted (TTL %" PRId64 " s): files attached to "
				"it are deleted when this member is gone", resp->lease_id,
				resp->lease_ttl);
		c->session = resp->lease_id;
		ttl = resp->lease_ttl ? resp->lease_ttl : ttl;
		c->session_renew_ms = fs_clock_mono_ms() + ttl * 1000 / 3;
	} else if (!granting && status == STORE_ELEASENOTFOUND) {
		FS_WARN("session lease %" PRId64 " expired while this member was cut off: its ephemeral "
			"files are gone; granting a new one", c->session);
		c->session = 0;
	} else {
		/* no quorum for now: try again on a later tick, without a line each time */
		c->session_renew_ms = fs_clock_mono_ms() + 1000;
		FS_DEBUG("session lease %s failed: %s", granting ? "grant" : "keep-alive",
			 fs_strerror(status));
	}
}

static void session_tick(struct fs_control *c, const struct fs_member_status *st, int64_t now)
{
	/*
	 * One in flight at a time; but one forwarded to a leader that died is lost without a word
	 * until the request timeout, longer than the TTL may last: after a third of the TTL another
	 * goes (a keep-alive twice is harmless; a grant twice leaves a lease to expire unused).
	 */
	if (c->session_busy && now - c->session_sent_ms > c->opt.session_ttl_s * 1000 / 3) {
		c->session_busy = 0;
		c->session_gen++;
	}
	if (!c->opt.session_ttl_s || c->session_busy || !st->leader || now < c->session_renew_ms)
		return;
	struct fs_control_call *call = fs__control_call_new(c, NULL, on_session);
	if (!call)
		return;
	call->arg = c->session;
	call->gen = c->session_gen;
	c->session_sent_ms = now;
	Rpc__Request req = RPC__REQUEST__INIT;
	Rpc__LeaseGrant g = RPC__LEASE_GRANT__INIT;
	Rpc__LeaseKeepAlive k = RPC__LEASE_KEEP_ALIVE__INIT;
	if (!c->session) {
		g.has_ttl = 1;
		g.ttl = c->opt.session_ttl_s;
		req.op_case = RPC__REQUEST__OP_LEASE_GRANT;
		req.lease_grant = &g;
	} else {
		k.has_id = 1;
		k.id = c->session;
		req.op_case = RPC__REQUEST__OP_LEASE_KEEP_ALIVE;
		req.lease_keep_alive = &k;
	}
	if (fs__control_call_propose(call, &req) == 0)
		c->session_busy = 1;
}

/* ---- automatic compaction (etcd's --auto-compaction-mode) -------------------------------------- */

static void on_auto_compacted(struct fs_control_call *call, int status, const Rpc__Response *resp)
{
	call->c->compacting = 0;
	if (status == 0)
		FS_INFO("automatic compaction: history before revision %" PRId64 " discarded",
			call->arg);
	else if (status != STORE_ECOMPACTED)
		FS_WARN("automatic compaction at revision %" PRId64 " failed: %s", call->arg,
			fs_strerror(status));
}

/* The revision to compact at now, or 0 for none yet. */
static int64_t compaction_target(struct fs_control *c, int64_t now)
{
	int64_t rev = store_rev(c->store);
	if (c->opt.compaction == FS_COMPACTION_REVISION)
		return rev - c->opt.retention_revs;
	/* periodic: the revision current retention_ms ago, sampled every tenth of it */
	int64_t every = c->opt.retention_ms / 10 > 0 ? c->opt.retention_ms / 10 : 1;
	int max = (int)(sizeof c->samples / sizeof c->samples[0]);
	if (!c->n_samples || now - c->samples[c->n_samples - 1].ms >= every) {
		if (c->n_samples == max) {
			memmove(c->samples, c->samples + 1, (size_t)(max - 1) * sizeof c->samples[0]);
			c->n_samples--;
		}
		c->samples[c->n_samples].ms = now;
		c->samples[c->n_samples++].rev = rev;
	}
	int64_t target = 0;
	int used = 0;
	while (used < c->n_samples && c->samples[used].ms <= now - c->opt.retention_ms)
		target = c->samples[used++].rev;
	if (used > 1) { /* older samples can never be a target again */
		memmove(c->samples, c->samples + used - 1,
			(size_t)(c->n_samples - used + 1) * sizeof c->samples[0]);
		c->n_samples -= used - 1;
	}
	return target;
}

static void auto_compact(struct fs_control *c, int64_t now)
{
	if (c->opt.compaction == FS_COMPACTION_NONE || c->compacting)
		return;
	int64_t target = compaction_target(c, now);
	/* revision mode looks once a second, as often as periodic mode may need to */
	if (c->opt.compaction == FS_COMPACTION_REVISION && now - c->compact_checked_ms < 1000)
		return;
	c->compact_checked_ms = now;
	if (target <= store_compact_rev(c->store) || target <= 0)
		return;
	struct fs_control_call *call = fs__control_call_new(c, NULL, on_auto_compacted);
	if (!call)
		return;
	call->arg = target;
	Rpc__Compaction cp = RPC__COMPACTION__INIT;
	cp.has_revision = 1;
	cp.revision = target;
	Rpc__Request req = RPC__REQUEST__INIT;
	req.op_case = RPC__REQUEST__OP_COMPACTION;
	req.compaction = &cp;
	if (fs__control_call_propose(call, &req) == 0)
		c->compacting = 1;
}

void fs__control_on_tick(uv_timer_t *t)
{
	struct fs_control *c = t->data;
	if (c->stopping)
		return;
	struct fs_member_status st;
	fs_member_status(c->member, &st);
	int64_t now = fs_clock_mono_ms();
	if (st.is_leader) {
		if (c->promoted_term != st.term) {
			/* the old leader's view of expiries died with it: every lease gets its TTL anew */
			store_lease_promote(c->store, now);
			c->promoted_term = st.term;
		}
		expire_leases(c, now);
		auto_compact(c, now);
	} else {
		c->n_samples = 0; /* a later leader term samples afresh */
	}
	session_tick(c, &st, now);
	fs__control_move_tick(c, &st, now);
}
