/*
 * commands.c: the command language of `.raftfs/ctl` (control/control.h lists the commands). Each
 * write is one command: its words are parsed and the command run, and its answer ("ok" or
 * "error: ...", then the body) is left in the handle for the reads that follow. A command that
 * changes something is proposed through raft and its write answered when the proposal is; a
 * `member move-leader` is answered once this member sees the new leader (checked every tick).
 */
#include "control/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	fs__control_out_printf(o, "ok\n");
	va_list ap;
	va_start(ap, fmt);
	fs__control_out_vprintf(o, fmt, ap);
	va_end(ap);
}

static void call_error(struct fs_control_call *call, const char *what, int status)
{
	struct out *o = call_out(call);
	if (o)
		fs__control_out_printf(o, "error: %s: %s\n", what, fs_strerror(status));
}

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
	fs__control_out_printf(&k->h->out, "error: ");
	fs__control_out_vprintf(&k->h->out, fmt, ap);
	fs__control_out_printf(&k->h->out, "\n");
	va_end(ap);
	cmd_done(k);
}

/* Starts a proposal answering k's write when it completes. */
static void cmd_propose(struct cmd *k, Rpc__Request *req,
			void (*done)(struct fs_control_call *, int, const Rpc__Response *),
			int64_t arg, const char *text)
{
	struct fs_control_call *call = fs__control_call_new(k->c, k->h, done);
	if (!call) {
		fuse_reply_err(k->req, ENOMEM);
		return;
	}
	call->req = k->req;
	call->req_size = k->size;
	call->arg = arg;
	snprintf(call->text, sizeof call->text, "%s", text ? text : "");
	int rc = fs__control_call_propose(call, req);
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
			fs__control_out_printf(o, "error: lease %" PRId64 " not found%s\n",
					       call->arg, keep ? " (expired or revoked)" : "");
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
		fs__control_out_printf(&k->h->out, "ok\n");
		if (k->h->json)
			fs__control_out_printf(&k->h->out,
					       "{\"id\":%" PRId64 ",\"ttl\":%" PRId64
					       ",\"remaining\":%" PRId64 ",\"keys\":%zu}\n",
					       v, info.ttl_s, rem, info.n_keys);
		else
			fs__control_out_printf(&k->h->out,
					       "lease %" PRId64 " granted with TTL %" PRId64
					       "s, remaining %" PRId64 "s, %zu key%s attached\n",
					       v, info.ttl_s, rem, info.n_keys,
					       info.n_keys == 1 ? "" : "s");
		cmd_done(k);
	} else if (!strcmp(sub, "list")) {
		int64_t *ids = NULL;
		size_t n = 0;
		if (store_lease_list(c->store, &ids, &n) != 0) {
			cmd_fail(k, "lease list: out of memory");
			return;
		}
		fs__control_out_printf(&k->h->out, "ok\n%s", k->h->json ? "{\"leases\":[" : "");
		for (size_t i = 0; i < n; i++) {
			struct store_lease_info info = {0};
			store_lease_time_to_live(c->store, ids[i], fs_clock_mono_ms(), &info);
			int64_t rem = info.remaining_ms == INT64_MAX ? info.ttl_s
								     : (info.remaining_ms + 999) / 1000;
			if (k->h->json)
				fs__control_out_printf(&k->h->out,
						       "%s{\"id\":%" PRId64 ",\"ttl\":%" PRId64
						       ",\"remaining\":%" PRId64 ",\"keys\":%zu}",
						       i ? "," : "", ids[i], info.ttl_s, rem,
						       info.n_keys);
			else
				fs__control_out_printf(&k->h->out,
						       "%" PRId64 " ttl=%" PRId64
						       "s remaining=%" PRId64 "s keys=%zu\n",
						       ids[i], info.ttl_s, rem, info.n_keys);
		}
		if (k->h->json)
			fs__control_out_printf(&k->h->out, "]}\n");
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
		fs__control_out_printf(o, "error: member move-leader: leadership did not move to "
					  "%s in time (the leader may have lost contact with it)\n",
				       call->text);
	else
		call_error(call, "member move-leader", status);
}

void fs__control_move_finish(struct fs_control *c, int status)
{
	struct fs_control_call *call = c->moving;
	c->moving = NULL;
	fs__control_on_call(call, 0, status, NULL, 0);
}

void fs__control_move_tick(struct fs_control *c, const struct fs_member_status *st, int64_t now)
{
	if (!c->moving)
		return;
	if (st->leader == (uint64_t)c->moving->arg)
		fs__control_move_finish(c, 0);
	else if (now >= c->move_deadline_ms)
		fs__control_move_finish(c, -ETIMEDOUT);
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
	struct fs_control_call *call = fs__control_call_new(c, k->h, done_move);
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
	c->move_deadline_ms =
		fs_clock_mono_ms() + 2 * (int64_t)c->cfg->election_ms + FS_CONTROL_TICK_MS;
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
			fs__control_out_printf(&k->h->out, "ok\n");
			fs__control_status_render(c, &k->h->out, 1);
			cmd_done(k);
			return;
		}
		fs__control_out_printf(&k->h->out, "ok\n%-16s  %-16s  %-21s  %s\n", "ID", "NAME",
				       "PEER", "ROLE");
		for (int i = 0; i < np; i++) {
			int learner = 0;
			for (int j = 0; j < st.n_learners; j++)
				learner |= st.learners[j] == peers[i].id;
			fs__control_out_printf(&k->h->out, "%016" PRIx64 "  %-16s  %-21s  %s%s\n",
					       peers[i].id, peers[i].name, peers[i].addr,
					       learner ? "learner" : "voter",
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
			fs__control_out_printf(&init, "%s=%s,", peers[i].name, peers[i].addr);
		fs__control_out_printf(&init, "%s=%s", nm, ad);
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
	struct fs_control_call *call = fs__control_call_new(c, k->h, done_member);
	if (!call) {
		fuse_reply_err(k->req, ENOMEM);
		return;
	}
	call->req = k->req;
	call->req_size = k->size;
	call->arg = (int64_t)id;
	snprintf(call->text, sizeof call->text, "%s", text);
	int rc = fs_member_change(c->member, type, id, name, addr, fs__control_on_call, call);
	if (rc) {
		fs__control_call_free(call);
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
		fs__control_out_printf(o, "error: revision %" PRId64
					  " is compacted already (compact revision %" PRId64 ")\n",
				       call->arg, store_compact_rev(call->c->store));
	else if (status == STORE_EFUTUREREV)
		fs__control_out_printf(o, "error: revision %" PRId64
					  " is in the future (current revision %" PRId64 ")\n",
				       call->arg, store_rev(call->c->store));
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
			fs__control_out_printf(o, "error: the store is still above its quota: "
						  "delete or compact first\n");
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
		fs__control_out_printf(&k->h->out, "ok\n%s", k->h->json ? "{\"alarms\":[" : "");
		if (nospace)
			fs__control_out_printf(&k->h->out,
					       k->h->json ? "{\"alarm\":\"NOSPACE\"}"
							  : "NOSPACE\n");
		if (corrupt)
			fs__control_out_printf(
				&k->h->out,
				k->h->json ? "%s{\"alarm\":\"CORRUPT\",\"member_id\":\"%016" PRIx64
					     "\"}"
					   : "%sCORRUPT (raised by member %016" PRIx64 ")\n",
				k->h->json && nospace ? "," : "", by);
		if (k->h->json)
			fs__control_out_printf(&k->h->out, "]}\n");
		cmd_done(k);
		return;
	}
	if (strcmp(sub, "disarm")) {
		cmd_fail(k, "alarm: unknown subcommand '%s' (list, disarm)", sub);
		return;
	}
	if (!corrupt && !nospace) {
		fs__control_out_printf(&k->h->out, "ok\nno alarm is raised\n");
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
		struct fs_control_call *first = fs__control_call_new(c, NULL, done_disarm);
		if (first) {
			snprintf(first->text, sizeof first->text, "alarm disarm CORRUPT");
			fs__control_call_propose(first, &req);
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
	fs__control_out_printf(&k->h->out, "ok\n");
	fs__control_out_bytes(&k->h->out, res.kvs[0].value, res.kvs[0].value_len);
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
	fs__control_out_printf(&k->h->out, "ok\n");
	fs__control_watch_pump(k->h);
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
	fs__control_out_printf(&k->h->out, "ok\n");
	fs__control_out_bytes(&k->h->out, img, len);
	free(img);
	if (k->h->out.oom) {
		fs__control_handle_reset(k->h);
		fuse_reply_err(k->req, ENOMEM);
		return;
	}
	cmd_done(k);
}

void fs__control_command(struct fs_control *c, struct fs_control_handle *h, fuse_req_t req,
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
		fs__control_out_printf(&h->out, "ok\n");
		fs__control_status_render(c, &h->out, h->json);
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
