/*
 * control.c: leases, the session lease, automatic compaction and the `.raftfs/` namespace with
 * the command interpreter behind `.raftfs/ctl` (see control/control.h).
 */
#include "control/control.h"

#include "member/member.h"
#include "common/common.h"
#include "raft.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define TICK_MS 200
#define STOP_WAIT_MS 2000
#define WATCH_UNREAD_MAX (256u * 1024) /* a watch reads no more history while this much waits */

enum { INO_STATUS = 1, INO_SESSION = 2, INO_CTL = 3 };

static const struct {
	const char *name;
	mode_t mode;
} files[] = {
	[INO_STATUS] = {"status", S_IFREG | 0444},
	[INO_SESSION] = {"session", S_IFREG | 0444},
	[INO_CTL] = {"ctl", S_IFREG | 0600},
};
#define N_FILES ((int)(sizeof files / sizeof files[0]))

/* ---- output buffers --------------------------------------------------------------------------- */

struct out {
	char *p;
	size_t len, cap;
	int oom; /* a write was lost to ENOMEM */
};

static int out_reserve(struct out *o, size_t n)
{
	if (o->len + n <= o->cap)
		return 0;
	size_t cap = o->cap ? o->cap : 1024;
	while (cap < o->len + n)
		cap *= 2;
	char *p = realloc(o->p, cap);
	if (!p) {
		o->oom = 1;
		return -ENOMEM;
	}
	o->p = p;
	o->cap = cap;
	return 0;
}

static void out_bytes(struct out *o, const void *b, size_t n)
{
	if (n && out_reserve(o, n) == 0) {
		memcpy(o->p + o->len, b, n);
		o->len += n;
	}
}

__attribute__((format(printf, 2, 0))) static void out_vprintf(struct out *o, const char *fmt,
								 va_list ap)
{
	va_list aq;
	va_copy(aq, ap);
	int n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	if (n > 0 && out_reserve(o, (size_t)n + 1) == 0) {
		vsnprintf(o->p + o->len, (size_t)n + 1, fmt, ap);
		o->len += (size_t)n;
	}
}

__attribute__((format(printf, 2, 3))) static void out_printf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	out_vprintf(o, fmt, ap);
	va_end(ap);
}

/* A JSON string of s[0..n): quotes, backslashes and control bytes escaped. */
static void out_json_str(struct out *o, const void *s, size_t n)
{
	const unsigned char *p = s;
	out_bytes(o, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '"' || p[i] == '\\')
			out_printf(o, "\\%c", p[i]);
		else if (p[i] < 0x20 || p[i] == 0x7f)
			out_printf(o, "\\u%04x", p[i]);
		else
			out_bytes(o, &p[i], 1);
	}
	out_bytes(o, "\"", 1);
}

static void out_base64(struct out *o, const unsigned char *p, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	out_bytes(o, "\"", 1);
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
			     (i + 2 < n ? p[i + 2] : 0);
		char q[4] = {tab[v >> 18 & 63], tab[v >> 12 & 63],
			     i + 1 < n ? tab[v >> 6 & 63] : '=', i + 2 < n ? tab[v & 63] : '='};
		out_bytes(o, q, 4);
	}
	out_bytes(o, "\"", 1);
}

/* ---- handles ---------------------------------------------------------------------------------- */

struct fs_control_handle {
	struct fs_control *c;
	struct fs_control_handle *prev, *next;
	int kind;                /* INO_* */
	int json;                /* the command asked for -w json */
	struct out out;          /* what reads return, from offset base */
	uint64_t base;
	struct store_watch *watch; /* a `watch` command's, until it ends */
	int watch_ended;
	fuse_req_t read_req;     /* a read waiting for the watch */
	size_t read_size;
	int read_interrupted;
};

/* A proposal in flight for a command; the handle may be released before it answers. */
struct fs_control_call {
	struct fs_control *c;
	struct fs_control_call *prev, *next;
	struct fs_control_handle *h; /* NULL once released */
	fuse_req_t req;              /* the write that carried the command, answered at the end */
	size_t req_size;
	void (*done)(struct fs_control_call *call, int status, const Rpc__Response *resp);
	int64_t arg;
	unsigned gen;        /* the session lease's: which attempt this is */
	char text[8192]; /* what a membership change reports when done */
};

static struct fs_control_handle *handle_of(struct fuse_file_info *fi)
{
	return (struct fs_control_handle *)(uintptr_t)fi->fh;
}

static void handle_reset(struct fs_control_handle *h)
{
	store_watch_cancel(h->watch);
	h->watch = NULL;
	h->watch_ended = 0;
	free(h->out.p);
	memset(&h->out, 0, sizeof h->out);
	h->base = 0;
}

/* ---- messages --------------------------------------------------------------------------------- */

static int parse_i64(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

/* ---- proposals -------------------------------------------------------------------------------- */

static void call_free(struct fs_control_call *call)
{
	struct fs_control *c = call->c;
	if (call->prev)
		call->prev->next = call->next;
	else
		c->calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
	free(call);
}

static void on_call(void *arg, uint64_t id, int status, const void *result, size_t len)
{
	struct fs_control_call *call = arg;
	Rpc__Response resp;
	if (fs_kv_decode_response(result, len, &resp) != 0)
		rpc__response__init(&resp);
	call->done(call, status, &resp);
	if (call->req)
		fuse_reply_write(call->req, call->req_size);
	call_free(call);
}

/* Proposes req for call (time set here); on failure call is freed and the error returned. */
static int call_propose(struct fs_control_call *call, Rpc__Request *req)
{
	struct fs_control *c = call->c;
	req->has_time_ns = 1;
	req->time_ns = fs_clock_wall_ns();
	int rc = fs_kv_propose(c->member, req, on_call, call);
	if (rc)
		call_free(call);
	return rc;
}

static struct fs_control_call *call_new(struct fs_control *c, struct fs_control_handle *h,
					void (*done)(struct fs_control_call *, int,
						     const Rpc__Response *))
{
	struct fs_control_call *call = calloc(1, sizeof *call);
	if (!call)
		return NULL;
	call->c = c;
	call->h = h;
	call->done = done;
	call->next = c->calls;
	if (call->next)
		call->next->prev = call;
	c->calls = call;
	return call;
}

/* The answer of a command: into its handle, when it is still open. */
static struct out *call_out(struct fs_control_call *call)
{
	return call->h ? &call->h->out : NULL;
}

__attribute__((format(printf, 2, 3))) static void call_ok(struct fs_control_call *call,
							  const char *fmt, ...)
{
	struct out *o = call_out(call);
	if (!o)
		return;
	out_printf(o, "ok\n");
	va_list ap;
	va_start(ap, fmt);
	out_vprintf(o, fmt, ap);
	va_end(ap);
}

static void call_error(struct fs_control_call *call, const char *what, int status)
{
	struct out *o = call_out(call);
	if (o)
		out_printf(o, "error: %s: %s\n", what, fs_strerror(status));
}

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
		struct fs_control_call *call = inflight ? NULL : call_new(c, NULL, on_revoked);
		if (!call)
			continue;
		call->arg = ids[i];
		Rpc__LeaseRevoke r = RPC__LEASE_REVOKE__INIT;
		r.has_id = 1;
		r.id = ids[i];
		Rpc__Request req = RPC__REQUEST__INIT;
		req.op_case = RPC__REQUEST__OP_LEASE_REVOKE;
		req.lease_revoke = &r;
		if (call_propose(call, &req) == 0)
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
	struct fs_control_call *call = call_new(c, NULL, on_session);
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
	if (call_propose(call, &req) == 0)
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
	struct fs_control_call *call = call_new(c, NULL, on_auto_compacted);
	if (!call)
		return;
	call->arg = target;
	Rpc__Compaction cp = RPC__COMPACTION__INIT;
	cp.has_revision = 1;
	cp.revision = target;
	Rpc__Request req = RPC__REQUEST__INIT;
	req.op_case = RPC__REQUEST__OP_COMPACTION;
	req.compaction = &cp;
	if (call_propose(call, &req) == 0)
		c->compacting = 1;
}

static void move_tick(struct fs_control *c, const struct fs_member_status *st, int64_t now);

static void on_tick(uv_timer_t *t)
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
	move_tick(c, &st, now);
}

/* ---- watches ---------------------------------------------------------------------------------- */

static void watch_event(struct fs_control_handle *h, const struct store_event *ev)
{
	const struct store_kv *kv = &ev->kv;
	int put = ev->type == STORE_EVENT_PUT;
	struct out *o = &h->out;
	if (h->json) {
		out_printf(o, "{\"type\":\"%s\",\"key\":", put ? "PUT" : "DELETE");
		out_json_str(o, kv->key, kv->key_len);
		out_printf(o, ",\"revision\":%" PRId64, kv->mod_revision);
		if (put) {
			out_printf(o, ",\"create_revision\":%" PRId64 ",\"version\":%" PRId64
				      ",\"lease\":%" PRId64 ",\"size\":%zu,\"value\":",
				   kv->create_revision, kv->version, kv->lease, kv->value_len);
			out_base64(o, kv->value, kv->value_len);
		}
		out_printf(o, "}\n");
	} else if (put) {
		out_printf(o, "PUT %.*s rev=%" PRId64 " version=%" PRId64 " size=%zu lease=%" PRId64
			      "\n", (int)kv->key_len, (const char *)kv->key, kv->mod_revision,
			   kv->version, kv->value_len, kv->lease);
	} else {
		out_printf(o, "DELETE %.*s rev=%" PRId64 "\n", (int)kv->key_len,
			   (const char *)kv->key, kv->mod_revision);
	}
}

/* Reads what the watch has (while little is unread); ends it on compaction. */
static void watch_pump(struct fs_control_handle *h)
{
	while (h->watch && !h->watch_ended && h->out.len < WATCH_UNREAD_MAX) {
		struct store_watch_batch b;
		int rc = store_watch_next(h->watch, 256, &b);
		if (rc == STORE_ECOMPACTED) {
			out_printf(&h->out, "error: the watch fell behind a compaction at revision %"
					    PRId64 "; watch again from revision %" PRId64 "\n",
				   b.compact_rev, b.compact_rev + 1);
			h->watch_ended = 1;
		} else if (rc != 0) {
			out_printf(&h->out, "error: the watch ended: %s\n", fs_strerror(rc));
			h->watch_ended = 1;
		}
		size_t n = rc == 0 ? b.n : 0;
		for (size_t i = 0; i < n; i++)
			watch_event(h, &b.events[i]);
		store_watch_batch_free(&b);
		if (!n)
			break;
	}
}

/* Answers h's waiting read with what there is (nothing: the end of the stream). */
static void read_answer(struct fs_control_handle *h)
{
	fuse_req_t req = h->read_req;
	h->read_req = NULL;
	size_t n = h->out.len < h->read_size ? h->out.len : h->read_size;
	fuse_reply_buf(req, h->out.p, n);
	/* a watch's stream is read in order: what was read goes */
	memmove(h->out.p, h->out.p + n, h->out.len - n);
	h->out.len -= n;
	h->base += n;
}

void fs_control_after_apply(struct fs_control *c)
{
	for (struct fs_control_handle *h = c->handles; h; h = h->next) {
		if (!h->watch || h->watch_ended)
			continue;
		watch_pump(h);
		if (h->read_req && (h->out.len || h->watch_ended))
			read_answer(h);
	}
}

static void on_kick(uv_timer_t *t);

static void on_interrupt(fuse_req_t req, void *data)
{
	/* libfuse holds the request's lock here: answer from the loop, right after */
	struct fs_control_handle *h = data;
	h->read_interrupted = 1;
	uv_timer_start(&h->c->kick, on_kick, 0, 0);
}

static void on_kick(uv_timer_t *t)
{
	struct fs_control *c = t->data;
	for (struct fs_control_handle *h = c->handles; h; h = h->next)
		if (h->read_req && (h->read_interrupted || c->stopping)) {
			fuse_reply_err(h->read_req, EINTR);
			h->read_req = NULL;
			h->read_interrupted = 0;
		}
}

/* ---- status ----------------------------------------------------------------------------------- */

static const char *peer_name(const struct fs_peer_config *peers, int n, uint64_t id)
{
	for (int i = 0; i < n; i++)
		if (peers[i].id == id)
			return peers[i].name;
	return "";
}

static void status_render(struct fs_control *c, struct out *o, int json)
{
	struct fs_member_status st;
	fs_member_status(c->member, &st);
	struct fs_peer_config peers[FS_MAX_MEMBERS];
	int np = fs_member_peers(c->member, peers, FS_MAX_MEMBERS);
	uint64_t corrupt_by = 0, backlog = 0, dropped = 0;
	int corrupt = fs_kv_corrupt(c->store, &corrupt_by), nospace = store_alarm_nospace(c->store);
	if (c->replay_counts)
		c->replay_counts(c->replay_arg, &backlog, &dropped);
	const char *security = fs_member_peer_security(c->member);
	if (json) {
		out_printf(o, "{\"member\":");
		out_json_str(o, c->cfg->name, strlen(c->cfg->name));
		out_printf(o, ",\"member_id\":\"%016" PRIx64 "\",\"cluster_id\":\"%016" PRIx64
			      "\",\"leader\":",
			   st.id, st.cluster_id);
		const char *ln = peer_name(peers, np, st.leader);
		if (st.leader)
			out_json_str(o, ln, strlen(ln));
		else
			out_printf(o, "null"); /* an election is on */
		out_printf(o, ",\"leader_id\":\"%016" PRIx64 "\",\"term\":%" PRIu64
			      ",\"raft_index\":%" PRIu64 ",\"commit_index\":%" PRIu64
			      ",\"applied_index\":%" PRIu64 ",\"revision\":%" PRId64
			      ",\"compact_revision\":%" PRId64 ",\"session_lease\":%" PRId64
			      ",\"remote_inotify\":%s,\"replay_backlog\":%" PRIu64
			      ",\"replay_dropped\":%" PRIu64 ",\"peer_tls\":%s,\"peer_traffic\":",
			   st.leader, st.term, st.last_index, st.commit, st.applied,
			   store_rev(c->store), store_compact_rev(c->store), c->session,
			   c->replay_counts ? "true" : "false", backlog, dropped,
			   strcmp(security, "plaintext") ? "true" : "false");
		out_json_str(o, security, strlen(security));
		out_printf(o, ",\"members\":[");
		for (int i = 0; i < np; i++) {
			int learner = 0;
			for (int j = 0; j < st.n_learners; j++)
				learner |= st.learners[j] == peers[i].id;
			out_printf(o, "%s{\"id\":\"%016" PRIx64 "\",\"name\":", i ? "," : "",
				   peers[i].id);
			out_json_str(o, peers[i].name, strlen(peers[i].name));
			out_printf(o, ",\"peer\":");
			out_json_str(o, peers[i].addr, strlen(peers[i].addr));
			out_printf(o, ",\"role\":\"%s\",\"is_leader\":%s,\"certificate\":",
				   learner ? "learner" : "voter",
				   peers[i].id == st.leader ? "true" : "false");
			char subject[256];
			if (peers[i].id != st.id &&
			    fs_member_peer_subject(c->member, peers[i].id, subject,
						   sizeof subject) == 0)
				out_json_str(o, subject, strlen(subject));
			else
				out_printf(o, "null"); /* plaintext, not connected, or this member */
			out_printf(o, "}");
		}
		out_printf(o, "],\"alarms\":[");
		if (nospace)
			out_printf(o, "\"NOSPACE\"");
		if (corrupt)
			out_printf(o, "%s\"CORRUPT\"", nospace ? "," : "");
		out_printf(o, "]}\n");
		return;
	}
	out_printf(o, "member           %s (%016" PRIx64 ")\n", c->cfg->name, st.id);
	out_printf(o, "cluster          %016" PRIx64 "\n", st.cluster_id);
	if (st.leader)
		out_printf(o, "leader           %s (%016" PRIx64 ")\n",
			   peer_name(peers, np, st.leader), st.leader);
	else
		out_printf(o, "leader           none\n");
	out_printf(o, "term             %" PRIu64 "\n", st.term);
	out_printf(o, "raft index       %" PRIu64 " (commit %" PRIu64 ", applied %" PRIu64 ")\n",
		   st.last_index, st.commit, st.applied);
	out_printf(o, "revision         %" PRId64 " (compacted at %" PRId64 ")\n",
		   store_rev(c->store), store_compact_rev(c->store));
	out_printf(o, "alarms           %s%s%s\n", nospace ? "NOSPACE " : "",
		   corrupt ? "CORRUPT" : "", nospace || corrupt ? "" : "none");
	if (c->session)
		out_printf(o, "session lease    %" PRId64 "\n", c->session);
	if (c->replay_counts)
		out_printf(o, "inotify replay   %" PRIu64 " changes to replay (%" PRIu64
			      " dropped)\n",
			   backlog, dropped);
	else
		out_printf(o, "inotify replay   off (-o no_remote_inotify)\n");
	out_printf(o, "peer traffic     %s\n", security);
	out_printf(o, "members\n  %-16s  %-16s  %-21s  %s\n", "ID", "NAME", "PEER", "ROLE");
	for (int i = 0; i < np; i++) {
		int learner = 0;
		for (int j = 0; j < st.n_learners; j++)
			learner |= st.learners[j] == peers[i].id;
		out_printf(o, "  %016" PRIx64 "  %-16s  %-21s  %s%s\n", peers[i].id, peers[i].name,
			   peers[i].addr, learner ? "learner" : "voter",
			   peers[i].id == st.leader ? " (leader)" : "");
	}
	if (!strcmp(security, "plaintext"))
		return;
	out_printf(o, "peer certificates (subjects, as connected now)\n");
	for (int i = 0; i < np; i++) {
		char subject[256];
		if (peers[i].id == st.id)
			continue;
		int rc = fs_member_peer_subject(c->member, peers[i].id, subject, sizeof subject);
		out_printf(o, "  %-16s  %s\n", peers[i].name,
			   rc == 0 ? (subject[0] ? subject : "(no certificate)") : "(not connected)");
	}
}

/* ---- commands --------------------------------------------------------------------------------- */

struct cmd {
	struct fs_control *c;
	struct fs_control_handle *h;
	fuse_req_t req;
	size_t size;
	char *argv[8];
	int argc;
};

/* Answers a command at once: the text is already in the handle. */
static void cmd_done(struct cmd *k)
{
	fuse_reply_write(k->req, k->size);
}

__attribute__((format(printf, 2, 3))) static void cmd_fail(struct cmd *k, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	out_printf(&k->h->out, "error: ");
	out_vprintf(&k->h->out, fmt, ap);
	out_printf(&k->h->out, "\n");
	va_end(ap);
	cmd_done(k);
}

/* Starts a proposal answering k's write when it completes. */
static void cmd_propose(struct cmd *k, Rpc__Request *req,
			void (*done)(struct fs_control_call *, int, const Rpc__Response *),
			int64_t arg, const char *text)
{
	struct fs_control_call *call = call_new(k->c, k->h, done);
	if (!call) {
		fuse_reply_err(k->req, ENOMEM);
		return;
	}
	call->req = k->req;
	call->req_size = k->size;
	call->arg = arg;
	snprintf(call->text, sizeof call->text, "%s", text ? text : "");
	int rc = call_propose(call, req);
	if (rc)
		cmd_fail(k, "%s", fs_strerror(rc));
}

static void done_grant(struct fs_control_call *call, int status, const Rpc__Response *resp)
{
	if (status) {
		call_error(call, "lease grant", status);
		return;
	}
	if (call->h && call->h->json)
		call_ok(call, "{\"id\":%" PRId64 ",\"ttl\":%" PRId64 "}\n", resp->lease_id,
			resp->lease_ttl);
	else
		call_ok(call, "lease %" PRId64 " granted with TTL %" PRId64 "s\n", resp->lease_id,
			resp->lease_ttl);
}

/* keepalive and revoke (call->text says which) of lease call->arg */
static void done_lease(struct fs_control_call *call, int status, const Rpc__Response *resp)
{
	int keep = !strcmp(call->text, "keepalive");
	struct out *o = call_out(call);
	if (status == STORE_ELEASENOTFOUND) {
		if (o)
			out_printf(o, "error: lease %" PRId64 " not found%s\n", call->arg,
				   keep ? " (expired or revoked)" : "");
	} else if (status) {
		call_error(call, keep ? "lease keepalive" : "lease revoke", status);
	} else if (call->h && call->h->json) {
		call_ok(call, "{\"id\":%" PRId64 ",\"%s\":%" PRId64 "}\n", call->arg,
			keep ? "ttl" : "revision", keep ? resp->lease_ttl : resp->revision);
	} else if (keep) {
		call_ok(call, "lease %" PRId64 " kept alive with TTL %" PRId64 "s\n", call->arg,
			resp->lease_ttl);
	} else {
		call_ok(call, "lease %" PRId64 " revoked\n", call->arg);
	}
}

static void cmd_lease(struct cmd *k)
{
	struct fs_control *c = k->c;
	const char *sub = k->argc > 1 ? k->argv[1] : "";
	int64_t v = 0;
	if (strcmp(sub, "list") && (k->argc != 3 || parse_i64(k->argv[2], &v) || v <= 0)) {
		cmd_fail(k, "lease %s: expected a positive number, got '%s'", sub,
			 k->argc > 2 ? k->argv[2] : "");
		return;
	}
	Rpc__Request req = RPC__REQUEST__INIT;
	if (!strcmp(sub, "grant")) {
		Rpc__LeaseGrant g = RPC__LEASE_GRANT__INIT;
		g.has_ttl = 1;
		g.ttl = v;
		req.op_case = RPC__REQUEST__OP_LEASE_GRANT;
		req.lease_grant = &g;
		cmd_propose(k, &req, done_grant, 0, NULL);
	} else if (!strcmp(sub, "revoke")) {
		Rpc__LeaseRevoke r = RPC__LEASE_REVOKE__INIT;
		r.has_id = 1;
		r.id = v;
		req.op_case = RPC__REQUEST__OP_LEASE_REVOKE;
		req.lease_revoke = &r;
		cmd_propose(k, &req, done_lease, v, sub);
	} else if (!strcmp(sub, "keepalive")) {
		Rpc__LeaseKeepAlive a = RPC__LEASE_KEEP_ALIVE__INIT;
		a.has_id = 1;
		a.id = v;
		req.op_case = RPC__REQUEST__OP_LEASE_KEEP_ALIVE;
		req.lease_keep_alive = &a;
		cmd_propose(k, &req, done_lease, v, sub);
	} else if (!strcmp(sub, "ttl")) {
		struct store_lease_info info;
		if (store_lease_time_to_live(c->store, v, fs_clock_mono_ms(), &info) != 0) {
			cmd_fail(k, "lease %" PRId64 " not found", v);
			return;
		}
		/* a follower restored from a snapshot counts from the next leader's promotion */
		int64_t rem = info.remaining_ms == INT64_MAX ? info.ttl_s : (info.remaining_ms + 999) / 1000;
		out_printf(&k->h->out, "ok\n");
		if (k->h->json)
			out_printf(&k->h->out, "{\"id\":%" PRId64 ",\"ttl\":%" PRId64
					       ",\"remaining\":%" PRId64 ",\"keys\":%zu}\n",
				   v, info.ttl_s, rem, info.n_keys);
		else
			out_printf(&k->h->out, "lease %" PRId64 " granted with TTL %" PRId64
					       "s, remaining %" PRId64 "s, %zu key%s attached\n",
				   v, info.ttl_s, rem, info.n_keys, info.n_keys == 1 ? "" : "s");
		cmd_done(k);
	} else if (!strcmp(sub, "list")) {
		int64_t *ids = NULL;
		size_t n = 0;
		if (store_lease_list(c->store, &ids, &n) != 0) {
			cmd_fail(k, "lease list: out of memory");
			return;
		}
		out_printf(&k->h->out, "ok\n%s", k->h->json ? "{\"leases\":[" : "");
		for (size_t i = 0; i < n; i++) {
			struct store_lease_info info = {0};
			store_lease_time_to_live(c->store, ids[i], fs_clock_mono_ms(), &info);
			int64_t rem = info.remaining_ms == INT64_MAX ? info.ttl_s
								     : (info.remaining_ms + 999) / 1000;
			if (k->h->json)
				out_printf(&k->h->out, "%s{\"id\":%" PRId64 ",\"ttl\":%" PRId64
						       ",\"remaining\":%" PRId64 ",\"keys\":%zu}",
					   i ? "," : "", ids[i], info.ttl_s, rem, info.n_keys);
			else
				out_printf(&k->h->out, "%" PRId64 " ttl=%" PRId64 "s remaining=%" PRId64
						       "s keys=%zu\n",
					   ids[i], info.ttl_s, rem, info.n_keys);
		}
		if (k->h->json)
			out_printf(&k->h->out, "]}\n");
		free(ids);
		cmd_done(k);
	} else {
		cmd_fail(k, "lease: unknown subcommand '%s' (grant, revoke, keepalive, ttl, list)", sub);
	}
}

static void done_member(struct fs_control_call *call, int status, const Rpc__Response *resp)
{
	if (status)
		call_error(call, call->text, status);
	else if (call->h && call->h->json)
		call_ok(call, "{\"done\":\"%s\",\"id\":\"%016" PRIx64 "\"}\n", call->text,
			(uint64_t)call->arg);
	else
		call_ok(call, "%s\n", call->text);
}

/* The peer named by a name or a hex id; NULL when there is none. */
static const struct fs_peer_config *peer_find(const struct fs_peer_config *peers, int n,
					      const char *what)
{
	char *end;
	uint64_t id = strtoull(what, &end, 16);
	for (int i = 0; i < n; i++)
		if (!strcmp(peers[i].name, what) || (*what && !*end && peers[i].id == id))
			return &peers[i];
	return NULL;
}

/*
 * member move-leader: leadership handed to a voter (etcdctl move-leader). The answer waits until
 * the member sees the new leader, or fails after two election timeouts (the transferee may need
 * to catch up first; raft gives up on a transfer after one).
 */
static void done_move(struct fs_control_call *call, int status, const Rpc__Response *resp)
{
	(void)resp;
	struct out *o = call_out(call);
	if (!o)
		return;
	if (status == 0 && call->h->json)
		call_ok(call, "{\"leader\":\"%016" PRIx64 "\"}\n", (uint64_t)call->arg);
	else if (status == 0)
		call_ok(call, "leadership moved to %s\n", call->text);
	else if (status == -ETIMEDOUT)
		out_printf(o, "error: member move-leader: leadership did not move to %s in time (the "
			      "leader may have lost contact with it)\n", call->text);
	else
		call_error(call, "member move-leader", status);
}

static void move_finish(struct fs_control *c, int status)
{
	struct fs_control_call *call = c->moving;
	c->moving = NULL;
	on_call(call, 0, status, NULL, 0);
}

static void move_tick(struct fs_control *c, const struct fs_member_status *st, int64_t now)
{
	if (!c->moving)
		return;
	if (st->leader == (uint64_t)c->moving->arg)
		move_finish(c, 0);
	else if (now >= c->move_deadline_ms)
		move_finish(c, -ETIMEDOUT);
}

static void move_leader(struct cmd *k, const struct fs_peer_config *p, const char *arg)
{
	struct fs_control *c = k->c;
	if (!p) {
		cmd_fail(k, "member move-leader: no member '%s' in the cluster", arg);
		return;
	}
	if (c->moving) {
		cmd_fail(k, "member move-leader: a move of leadership is in progress already");
		return;
	}
	int rc = fs_member_transfer_leader(c->member, p->id);
	if (rc == -EALREADY || rc == -ENOENT || rc == -EAGAIN) {
		cmd_fail(k, "member move-leader: %s",
			 rc == -EALREADY ? "it is the leader already"
			 : rc == -ENOENT ? "it is not a voter (a learner cannot lead)"
					 : "no leader now (an election is under way): try again");
		return;
	}
	if (rc) {
		cmd_fail(k, "member move-leader: %s", fs_strerror(rc));
		return;
	}
	struct fs_control_call *call = call_new(c, k->h, done_move);
	if (!call) {
		fuse_reply_err(k->req, ENOMEM);
		return;
	}
	call->req = k->req;
	call->req_size = k->size;
	call->arg = (int64_t)p->id;
	snprintf(call->text, sizeof call->text, "%.*s (%016" PRIx64 ")", FS_NAME_MAX, p->name,
		 p->id);
	c->moving = call;
	c->move_deadline_ms = fs_clock_mono_ms() + 2 * (int64_t)c->cfg->election_ms + TICK_MS;
}

static void cmd_member(struct cmd *k)
{
	struct fs_control *c = k->c;
	const char *sub = k->argc > 1 ? k->argv[1] : "";
	struct fs_peer_config peers[FS_MAX_MEMBERS];
	int np = fs_member_peers(c->member, peers, FS_MAX_MEMBERS);
	struct fs_member_status st;
	fs_member_status(c->member, &st);
	if (!strcmp(sub, "list")) {
		if (k->h->json) {
			/* the status document carries the members */
			out_printf(&k->h->out, "ok\n");
			status_render(c, &k->h->out, 1);
			cmd_done(k);
			return;
		}
		out_printf(&k->h->out, "ok\n%-16s  %-16s  %-21s  %s\n", "ID", "NAME", "PEER", "ROLE");
		for (int i = 0; i < np; i++) {
			int learner = 0;
			for (int j = 0; j < st.n_learners; j++)
				learner |= st.learners[j] == peers[i].id;
			out_printf(&k->h->out, "%016" PRIx64 "  %-16s  %-21s  %s%s\n", peers[i].id,
				   peers[i].name, peers[i].addr, learner ? "learner" : "voter",
				   peers[i].id == st.leader ? " (leader)" : "");
		}
		cmd_done(k);
		return;
	}
	const char *arg = k->argc > 2 ? k->argv[2] : "";
	char text[8192]; /* what a membership change reports when done */
	enum fs_member_change_type type;
	uint64_t id;
	const char *name = NULL, *addr = NULL;
	char nm[FS_NAME_MAX + 1], ad[FS_ADDR_MAX + 1];
	if (!strcmp(sub, "add")) {
		const char *eq = strchr(arg, '=');
		int learner = k->argc > 3 && !strcmp(k->argv[3], "learner");
		if (!eq || eq == arg || (size_t)(eq - arg) > FS_NAME_MAX || strlen(eq + 1) > FS_ADDR_MAX) {
			cmd_fail(k, "member add: expected NAME=HOST:PORT, got '%s'", arg);
			return;
		}
		snprintf(nm, sizeof nm, "%.*s", (int)(eq - arg), arg);
		snprintf(ad, sizeof ad, "%s", eq + 1);
		name = nm;
		addr = ad;
		if (peer_find(peers, np, nm)) {
			cmd_fail(k, "member add: a member named '%s' already exists", nm);
			return;
		}
		id = fs_member_id(c->cfg->token, nm, ad);
		type = learner ? FS_MEMBER_ADD_LEARNER : FS_MEMBER_ADD_VOTER;
		struct out init = {0};
		for (int i = 0; i < np; i++)
			out_printf(&init, "%s=%s,", peers[i].name, peers[i].addr);
		out_printf(&init, "%s=%s", nm, ad);
		snprintf(text, sizeof text, "member %s (%016" PRIx64 ") added as a %s; start it with "
			 "--initial-cluster-state existing --initial-cluster %s",
			 nm, id, learner ? "learner" : "voter", init.p ? init.p : "");
		free(init.p);
	} else if (!strcmp(sub, "remove") || !strcmp(sub, "promote")) {
		const struct fs_peer_config *p = peer_find(peers, np, arg);
		if (!p) {
			cmd_fail(k, "member %s: no member '%s' in the cluster", sub, arg);
			return;
		}
		id = p->id;
		snprintf(nm, sizeof nm, "%.*s", FS_NAME_MAX, p->name);
		snprintf(ad, sizeof ad, "%.*s", FS_ADDR_MAX, p->addr);
		if (!strcmp(sub, "remove")) {
			type = FS_MEMBER_REMOVE;
			snprintf(text, sizeof text, "member %s (%016" PRIx64 ") removed", nm, id);
		} else {
			int learner = 0;
			for (int j = 0; j < st.n_learners; j++)
				learner |= st.learners[j] == id;
			if (!learner) {
				cmd_fail(k, "member promote: '%s' is a voter already", nm);
				return;
			}
			type = FS_MEMBER_ADD_VOTER;
			name = nm;
			addr = ad;
			snprintf(text, sizeof text, "member %s (%016" PRIx64 ") promoted to voter", nm,
				 id);
		}
	} else if (!strcmp(sub, "move-leader")) {
		move_leader(k, peer_find(peers, np, arg), arg);
		return;
	} else {
		cmd_fail(k, "member: unknown subcommand '%s' (list, add, remove, promote, move-leader)",
			 sub);
		return;
	}
	struct fs_control_call *call = call_new(c, k->h, done_member);
	if (!call) {
		fuse_reply_err(k->req, ENOMEM);
		return;
	}
	call->req = k->req;
	call->req_size = k->size;
	call->arg = (int64_t)id;
	snprintf(call->text, sizeof call->text, "%s", text);
	int rc = fs_member_change(c->member, type, id, name, addr, on_call, call);
	if (rc) {
		call_free(call);
		cmd_fail(k, "member %s: %s", sub,
			 rc == -EINVAL ? "a malformed NAME=HOST:PORT" : fs_strerror(rc));
	}
}

static void done_compact(struct fs_control_call *call, int status, const Rpc__Response *resp)
{
	struct out *o = call_out(call);
	if (!o)
		return;
	if (status == STORE_ECOMPACTED)
		out_printf(o, "error: revision %" PRId64 " is compacted already (compact revision %"
			      PRId64 ")\n", call->arg, store_compact_rev(call->c->store));
	else if (status == STORE_EFUTUREREV)
		out_printf(o, "error: revision %" PRId64 " is in the future (current revision %"
			      PRId64 ")\n", call->arg, store_rev(call->c->store));
	else if (status)
		call_error(call, "compact", status);
	else if (call->h->json)
		call_ok(call, "{\"compact_revision\":%" PRId64 "}\n", call->arg);
	else
		call_ok(call, "compacted revision %" PRId64 "\n", call->arg);
}

static void cmd_compact(struct cmd *k)
{
	int64_t rev;
	if (k->argc != 2 || parse_i64(k->argv[1], &rev) || rev <= 0) {
		cmd_fail(k, "compact: expected a positive revision, got '%s'",
			 k->argc > 1 ? k->argv[1] : "");
		return;
	}
	Rpc__Compaction cp = RPC__COMPACTION__INIT;
	cp.has_revision = 1;
	cp.revision = rev;
	Rpc__Request req = RPC__REQUEST__INIT;
	req.op_case = RPC__REQUEST__OP_COMPACTION;
	req.compaction = &cp;
	cmd_propose(k, &req, done_compact, rev, NULL);
}

static void done_disarm(struct fs_control_call *call, int status, const Rpc__Response *resp)
{
	if (status == STORE_ENOSPACE) {
		struct out *o = call_out(call);
		if (o)
			out_printf(o, "error: the store is still above its quota: delete or compact "
				      "first\n");
	} else if (status) {
		call_error(call, call->text, status);
	} else {
		call_ok(call, "%s\n", call->text);
	}
}

static void cmd_alarm(struct cmd *k)
{
	struct fs_control *c = k->c;
	const char *sub = k->argc > 1 ? k->argv[1] : "";
	uint64_t by = 0;
	int corrupt = fs_kv_corrupt(c->store, &by), nospace = store_alarm_nospace(c->store);
	if (!strcmp(sub, "list")) {
		out_printf(&k->h->out, "ok\n%s", k->h->json ? "{\"alarms\":[" : "");
		if (nospace)
			out_printf(&k->h->out, k->h->json ? "{\"alarm\":\"NOSPACE\"}" : "NOSPACE\n");
		if (corrupt)
			out_printf(&k->h->out,
				   k->h->json ? "%s{\"alarm\":\"CORRUPT\",\"member_id\":\"%016" PRIx64
						"\"}"
					      : "%sCORRUPT (raised by member %016" PRIx64 ")\n",
				   k->h->json && nospace ? "," : "", by);
		if (k->h->json)
			out_printf(&k->h->out, "]}\n");
		cmd_done(k);
		return;
	}
	if (strcmp(sub, "disarm")) {
		cmd_fail(k, "alarm: unknown subcommand '%s' (list, disarm)", sub);
		return;
	}
	if (!corrupt && !nospace) {
		out_printf(&k->h->out, "ok\nno alarm is raised\n");
		cmd_done(k);
		return;
	}
	/* one proposal per alarm; the write is answered with the last */
	Rpc__Alarm a = RPC__ALARM__INIT;
	a.has_action = a.has_alarm = 1;
	a.action = RPC__ALARM__ACTION__DEACTIVATE;
	a.alarm = corrupt ? RPC__ALARM__TYPE__CORRUPT : RPC__ALARM__TYPE__NOSPACE;
	Rpc__Request req = RPC__REQUEST__INIT;
	req.op_case = RPC__REQUEST__OP_ALARM;
	req.alarm = &a;
	if (corrupt && nospace) {
		struct fs_control_call *first = call_new(c, NULL, done_disarm);
		if (first) {
			snprintf(first->text, sizeof first->text, "alarm disarm CORRUPT");
			call_propose(first, &req);
		}
		a.alarm = RPC__ALARM__TYPE__NOSPACE;
	}
	cmd_propose(k, &req, done_disarm, 0,
		    corrupt && !nospace ? "CORRUPT alarm disarmed"
		    : corrupt         ? "CORRUPT and NOSPACE alarms disarmed"
				      : "NOSPACE alarm disarmed");
}

static int valid_path(const char *p)
{
	return p[0] == '/' && strlen(p) <= 4096;
}

static void cmd_get(struct cmd *k)
{
	struct fs_control *c = k->c;
	int64_t rev;
	if (k->argc != 3 || !valid_path(k->argv[1]) || parse_i64(k->argv[2], &rev) || rev < 0) {
		cmd_fail(k, "get: expected PATH (from the mount's root) and a revision");
		return;
	}
	const char *path = k->argv[1];
	struct store_range_req rq = {.key = path, .key_len = strlen(path), .rev = rev};
	struct store_range_result res;
	int rc = store_range(c->store, &rq, &res);
	if (rc == STORE_ECOMPACTED) {
		cmd_fail(k, "revision %" PRId64 " of %s was compacted (compact revision %" PRId64 ")",
			 rev, path, store_compact_rev(c->store));
		return;
	}
	if (rc == STORE_EFUTUREREV) {
		cmd_fail(k, "revision %" PRId64 " is in the future (current revision %" PRId64 ")", rev,
			 store_rev(c->store));
		return;
	}
	if (rc) {
		cmd_fail(k, "get %s: %s", path, fs_strerror(rc));
		return;
	}
	if (!res.n) {
		store_range_result_free(&res);
		cmd_fail(k, "%s did not exist at revision %" PRId64, path, rev);
		return;
	}
	out_printf(&k->h->out, "ok\n");
	out_bytes(&k->h->out, res.kvs[0].value, res.kvs[0].value_len);
	store_range_result_free(&res);
	cmd_done(k);
}

static void cmd_watch(struct cmd *k)
{
	struct fs_control *c = k->c;
	int64_t rev, prefix;
	if (k->argc != 4 || !valid_path(k->argv[1]) || parse_i64(k->argv[2], &rev) || rev < 0 ||
	    parse_i64(k->argv[3], &prefix)) {
		cmd_fail(k, "watch: expected PATH, a start revision and 0|1 for prefix");
		return;
	}
	const char *path = k->argv[1];
	size_t pl = strlen(path);
	unsigned char end[4100];
	size_t el = prefix ? store_prefix_end(path, pl, end) : 0;
	int64_t compacted = 0;
	int rc = store_watch_create(c->store, path, pl, prefix ? end : NULL, el,
				    rev ? rev : store_rev(c->store) + 1, 0, &k->h->watch, &compacted);
	if (rc == STORE_ECOMPACTED) {
		cmd_fail(k, "revision %" PRId64 " was compacted (compact revision %" PRId64
			    "): watch from revision %" PRId64 " or later",
			 rev, compacted, compacted + 1);
		return;
	}
	if (rc) {
		cmd_fail(k, "watch %s: %s", path, fs_strerror(rc));
		return;
	}
	out_printf(&k->h->out, "ok\n");
	watch_pump(k->h);
	cmd_done(k);
}

static void cmd_snapshot(struct cmd *k)
{
	void *img = NULL;
	size_t len = 0;
	int rc = store_snapshot_save_buf(k->c->store, &img, &len);
	if (rc) {
		cmd_fail(k, "snapshot: %s", fs_strerror(rc));
		return;
	}
	out_printf(&k->h->out, "ok\n");
	out_bytes(&k->h->out, img, len);
	free(img);
	if (k->h->out.oom) {
		handle_reset(k->h);
		fuse_reply_err(k->req, ENOMEM);
		return;
	}
	cmd_done(k);
}

static void command(struct fs_control *c, struct fs_control_handle *h, fuse_req_t req,
		    const char *buf, size_t size)
{
	struct cmd k = {.c = c, .h = h, .req = req, .size = size};
	char *text = malloc(size + 1);
	if (!text) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memcpy(text, buf, size);
	text[size] = '\0';
	for (size_t i = 0; i < size && k.argc < 9;) {
		size_t n = strlen(text + i);
		if (k.argc == 0)
			h->json = !strcmp(text + i, "json");
		else
			k.argv[k.argc - 1] = text + i;
		k.argc++;
		i += n + 1;
	}
	k.argc = k.argc ? k.argc - 1 : 0; /* the format word is not an argument */
	const char *word = k.argc ? k.argv[0] : "";
	if (k.argc > 7)
		cmd_fail(&k, "too many arguments");
	else if (!strcmp(word, "status")) {
		out_printf(&h->out, "ok\n");
		status_render(c, &h->out, h->json);
		cmd_done(&k);
	} else if (!strcmp(word, "lease"))
		cmd_lease(&k);
	else if (!strcmp(word, "member"))
		cmd_member(&k);
	else if (!strcmp(word, "compact"))
		cmd_compact(&k);
	else if (!strcmp(word, "alarm"))
		cmd_alarm(&k);
	else if (!strcmp(word, "get"))
		cmd_get(&k);
	else if (!strcmp(word, "watch"))
		cmd_watch(&k);
	else if (!strcmp(word, "snapshot"))
		cmd_snapshot(&k);
	else
		cmd_fail(&k, "unknown command '%s'", word);
	free(text);
}

/* ---- the namespace through FUSE --------------------------------------------------------------- */

static void attr_of(uint64_t ino, struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_ino = ino;
	st->st_blksize = 4096;
	if (ino == FS_OPS_NS_INO) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else {
		st->st_mode = files[ino - FS_OPS_NS_INO].mode;
		st->st_nlink = 1;
	}
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	st->st_atim = st->st_mtim = st->st_ctim = now;
}

static void ns_release(void *arg, fuse_req_t req, struct fuse_file_info *fi);

static void ns_lookup(void *arg, fuse_req_t req, uint64_t parent, const char *name)
{
	(void)arg;
	uint64_t ino = 0;
	if (parent == FUSE_ROOT_ID && !strcmp(name, FS_OPS_NS_NAME))
		ino = FS_OPS_NS_INO;
	for (int i = 1; parent == FS_OPS_NS_INO && i < N_FILES; i++)
		if (!strcmp(name, files[i].name))
			ino = FS_OPS_NS_INO + (uint64_t)i;
	if (!ino) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	/* contents change all the time: the kernel caches no attribute */
	struct fuse_entry_param e = {.ino = ino};
	attr_of(ino, &e.attr);
	fuse_reply_entry(req, &e);
}

static void ns_getattr(void *arg, fuse_req_t req, uint64_t ino)
{
	(void)arg;
	struct stat st;
	attr_of(ino, &st);
	fuse_reply_attr(req, &st, 0);
}

static void ns_readdir(void *arg, fuse_req_t req, uint64_t ino, size_t size, off_t off)
{
	(void)arg;
	if (ino != FS_OPS_NS_INO) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	char *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	size_t used = 0;
	const char *names[N_FILES + 1] = {".", ".."};
	for (int i = 1; i < N_FILES; i++)
		names[i + 1] = files[i].name;
	for (off_t i = off; i < N_FILES + 1; i++) {
		struct stat st = {0};
		st.st_ino = i < 2 ? FS_OPS_NS_INO : FS_OPS_NS_INO + (uint64_t)(i - 1);
		st.st_mode = i < 2 ? S_IFDIR : S_IFREG;
		size_t n = fuse_add_direntry(req, buf + used, size - used, names[i], &st, i + 1);
		if (n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void ns_open(void *arg, fuse_req_t req, uint64_t ino, struct fuse_file_info *fi)
{
	struct fs_control *c = arg;
	int kind = (int)(ino - FS_OPS_NS_INO);
	if (ino == FS_OPS_NS_INO) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (kind != INO_CTL && (fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EACCES);
		return;
	}
	struct fs_control_handle *h = calloc(1, sizeof *h);
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->c = c;
	h->kind = kind;
	if (kind == INO_STATUS)
		status_render(c, &h->out, 1);
	else if (kind == INO_SESSION && c->session)
		out_printf(&h->out, "%" PRId64 "\n", c->session);
	h->next = c->handles;
	if (h->next)
		h->next->prev = h;
	c->handles = h;
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->direct_io = 1; /* sizes are not known ahead: every read asks */
	if (fuse_reply_open(req, fi) != 0)
		ns_release(c, NULL, fi);
}

static void ns_read(void *arg, fuse_req_t req, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct fs_control *c = arg;
	struct fs_control_handle *h = handle_of(fi);
	if ((uint64_t)off < h->base) {
		fuse_reply_err(req, EINVAL); /* a watch's stream is not read again */
		return;
	}
	uint64_t at = (uint64_t)off - h->base;
	if (at < h->out.len) {
		size_t n = h->out.len - at < size ? h->out.len - at : size;
		fuse_reply_buf(req, h->out.p + at, n);
		return;
	}
	if (h->watch && !h->watch_ended && at == h->out.len && !h->read_req && !c->stopping) {
		/* consumed so far: drop it, wait for more */
		h->base += h->out.len;
		h->out.len = 0;
		watch_pump(h);
		h->read_req = req;
		h->read_size = size;
		h->read_interrupted = 0;
		if (h->out.len || h->watch_ended)
			read_answer(h);
		else
			fuse_req_interrupt_func(req, on_interrupt, h);
		return;
	}
	fuse_reply_buf(req, NULL, 0);
}

static void ns_write(void *arg, fuse_req_t req, const char *buf, size_t size,
		      off_t off, struct fuse_file_info *fi)
{
	struct fs_control *c = arg;
	struct fs_control_handle *h = handle_of(fi);
	if (h->kind != INO_CTL || off != 0 || size == 0 || size > 16384) {
		fuse_reply_err(req, h->kind != INO_CTL ? EBADF : EINVAL);
		return;
	}
	if (h->read_req) {
		fuse_reply_err(req, EBUSY);
		return;
	}
	handle_reset(h); /* a new command, a new answer */
	command(c, h, req, buf, size);
}

static void ns_release(void *arg, fuse_req_t req, struct fuse_file_info *fi)
{
	struct fs_control *c = arg;
	struct fs_control_handle *h = handle_of(fi);
	for (struct fs_control_call *call = c->calls; call; call = call->next)
		if (call->h == h)
			call->h = NULL;
	if (h->read_req)
		fuse_reply_err(h->read_req, EINTR);
	handle_reset(h);
	if (h->prev)
		h->prev->next = h->next;
	else
		c->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	free(h);
	if (req)
		fuse_reply_err(req, 0);
}

/* ---- life cycle ------------------------------------------------------------------------------- */

int fs_control_start(struct fs_control *c, uv_loop_t *loop, struct fs_member *member,
		     struct store *store, const struct fs_member_config *cfg,
		     const struct fs_control_options *opt)
{
	memset(c, 0, sizeof *c);
	c->loop = loop;
	c->member = member;
	c->store = store;
	c->cfg = cfg;
	if (opt)
		c->opt = *opt;
	uv_timer_init(loop, &c->timer);
	uv_timer_init(loop, &c->kick);
	c->timer.data = c->kick.data = c;
	c->timers = 1;
	uv_timer_start(&c->timer, on_tick, TICK_MS, TICK_MS);
	return 0;
}

static void on_timer_closed(uv_handle_t *t)
{
	struct fs_control *c = t->data;
	if (t == (uv_handle_t *)&c->kick && c->stopped)
		c->stopped(c->stopped_arg);
}

static void stop_finish(struct fs_control *c)
{
	if (c->finished)
		return;
	c->finished = 1;
	if (c->moving)
		move_finish(c, FS_ESTOPPING);
	/* the session goes next: answer what waits on it now, not after */
	for (struct fs_control_call *call = c->calls; call; call = call->next)
		if (call->req) {
			fuse_reply_err(call->req, EINTR);
			call->req = NULL;
		}
	for (struct fs_control_handle *h = c->handles; h; h = h->next)
		if (h->read_req) {
			fuse_reply_err(h->read_req, EINTR);
			h->read_req = NULL;
		}
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, on_timer_closed);
	uv_close((uv_handle_t *)&c->kick, on_timer_closed);
}

static void on_stop_wait(uv_timer_t *t)
{
	stop_finish(t->data);
}

static void on_session_revoked(struct fs_control_call *call, int status,
			       const Rpc__Response *resp)
{
	struct fs_control *c = call->c;
	if (status == 0)
		FS_INFO("session lease %" PRId64 " revoked: this member's ephemeral files are deleted",
			call->arg);
	else
		FS_WARN("session lease %" PRId64 " not revoked (%s): its files go when it expires",
			call->arg, fs_strerror(status));
	uv_timer_stop(&c->timer);
	stop_finish(c);
}

void fs_control_stop(struct fs_control *c, void (*done)(void *arg), void *arg)
{
	c->stopping = 1;
	c->stopped = done;
	c->stopped_arg = arg;
	if (!c->timers) {
		if (done)
			done(arg);
		return;
	}
	uv_timer_stop(&c->timer);
	struct fs_control_call *call = c->session ? call_new(c, NULL, on_session_revoked) : NULL;
	if (call) {
		call->arg = c->session;
		Rpc__LeaseRevoke r = RPC__LEASE_REVOKE__INIT;
		r.has_id = 1;
		r.id = c->session;
		Rpc__Request req = RPC__REQUEST__INIT;
		req.op_case = RPC__REQUEST__OP_LEASE_REVOKE;
		req.lease_revoke = &r;
		c->session = 0;
		if (call_propose(call, &req) == 0) {
			/* no quorum: do not hold the unmount for long */
			uv_timer_start(&c->timer, on_stop_wait, STOP_WAIT_MS, 0);
			return;
		}
	}
	stop_finish(c);
}

void fs_control_namespace(struct fs_control *c, struct fs_ops_namespace *ns)
{
	*ns = (struct fs_ops_namespace){.arg = c, .lookup = ns_lookup, .getattr = ns_getattr,
		.readdir = ns_readdir, .open = ns_open, .read = ns_read, .write = ns_write,
		.release = ns_release};
}
