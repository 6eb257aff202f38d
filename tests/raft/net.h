/*
 * net.h: a small in-memory cluster for the raft scenario tests (the role of etcd raft's `network`).
 *
 * Members keep their log in a raft_memory_storage; messages travel as encoded raftpb bytes through a
 * FIFO queue (so every scenario also exercises the codec) and can be cut between any two members.
 * net_stabilize() runs Ready loops and delivers until nothing moves. Header-only, one per test binary.
 */
#ifndef RAFTFS_TEST_RAFT_NET_H
#define RAFTFS_TEST_RAFT_NET_H

#include "check.h"
#include "raft.h"

#define NET_MAX 8

struct tnode {
	uint64_t id;
	struct raft *r;
	struct raft_memory_storage *ms;
	struct raft_storage st;
	struct raft_conf_state conf; /* as applied */
	uint64_t applied;
	struct raft_read_state reads[16]; /* read states seen (ctx not kept) */
	uint64_t read_ctx[16];            /* first 8 bytes of each ctx */
	size_t n_reads;
	int snapshots_restored;
};

struct tmsg {
	uint8_t *buf;
	size_t len;
	uint64_t from, to;
	int type;
};

struct net {
	struct tnode n[NET_MAX + 1]; /* by id, 1..NET_MAX */
	int nn;
	int cut[NET_MAX + 1][NET_MAX + 1];
	int drop_type[RAFT_MSG_TYPE_COUNT]; /* drop every message of this type */
	struct tmsg *q;
	size_t nq, capq;
	struct raft_config cfg; /* template; id and seed filled per member */
	size_t sent[RAFT_MSG_TYPE_COUNT];
	size_t sent_rejects;  /* MsgAppResp with reject */
	size_t max_app_entries; /* largest MsgApp seen */
	FILE *trace;            /* when set, every delivered or dropped message is described here */
};

/* One line describing m, in the spirit of etcd raft's DescribeMessage. */
static inline void net_describe(FILE *f, const struct raft_message *m, const char *note)
{
	fprintf(f, "%" PRIu64 "->%" PRIu64 " %s Term:%" PRIu64, m->from, m->to,
		raft_message_type_name(m->type), m->term);
	if (m->type == RAFT_MSG_APP || m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PRE_VOTE)
		fprintf(f, " Log:%" PRIu64 "/%" PRIu64, m->log_term, m->index);
	else if (m->type == RAFT_MSG_APP_RESP || m->type == RAFT_MSG_READ_INDEX_RESP)
		fprintf(f, " Index:%" PRIu64, m->index);
	if (m->commit)
		fprintf(f, " Commit:%" PRIu64, m->commit);
	if (m->reject) {
		fprintf(f, " Rejected");
		if (m->type == RAFT_MSG_APP_RESP)
			fprintf(f, " (Hint: %" PRIu64 "/%" PRIu64 ")", m->log_term, m->reject_hint);
	}
	if (m->n_entries) {
		fprintf(f, " Entries:[");
		for (size_t i = 0; i < m->n_entries; i++)
			fprintf(f, "%s%" PRIu64 "/%" PRIu64 "%s", i ? " " : "", m->entries[i].term,
				m->entries[i].index,
				m->entries[i].type == RAFT_ENTRY_CONF_CHANGE ? "cc" : "");
		fprintf(f, "]");
	}
	if (m->has_snapshot)
		fprintf(f, " Snapshot:%" PRIu64 "/%" PRIu64, m->snapshot.meta.term,
			m->snapshot.meta.index);
	fprintf(f, "%s\n", note);
}

static inline void net_default_cfg(struct raft_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->election_tick = 10;
	cfg->heartbeat_tick = 1;
	cfg->max_size_per_msg = UINT64_MAX;
	cfg->max_inflight_msgs = 256;
}

static inline struct tnode *net_node(struct net *nw, uint64_t id)
{
	if (id < 1 || id > (uint64_t)nw->nn)
		return NULL;
	return &nw->n[id];
}

/* Starts (or restarts) member id on its storage. */
static inline void net_start(struct net *nw, uint64_t id)
{
	struct tnode *t = &nw->n[id];
	struct raft_config cfg = nw->cfg;
	cfg.id = id;
	cfg.seed = cfg.seed * 7919 + id;
	int rv = raft_new(&cfg, &t->st, &t->r);
	if (rv)
		CHECK_FAIL("raft_new(%d): %s", (int)id, raft_strerror(rv));
	const struct raft_snapshot *snap;
	t->st.snapshot(t->st.data, &snap);
	t->applied = snap->meta.index;
	t->conf = snap->meta.conf;
}

/* A net of nn members; ids 1..voters bootstrapped as voters, the rest empty (to join later). */
static inline void net_init_cfg(struct net *nw, int nn, int voters, const struct raft_config *cfg)
{
	memset(nw, 0, sizeof *nw);
	nw->nn = nn;
	nw->cfg = *cfg;
	struct raft_conf_state cs = {0};
	for (int i = 1; i <= voters; i++)
		cs.voters[cs.n_voters++] = (uint64_t)i;
	for (int i = 1; i <= nn; i++) {
		struct tnode *t = &nw->n[i];
		t->id = (uint64_t)i;
		t->ms = raft_memory_storage_new();
		if (i <= voters)
			CHECK_EQ(raft_memory_storage_bootstrap(t->ms, &cs), 0);
		raft_memory_storage_bind(t->ms, &t->st);
		net_start(nw, (uint64_t)i);
	}
}

static inline void net_init(struct net *nw, int nn, int pre_vote, int check_quorum)
{
	struct raft_config cfg;
	net_default_cfg(&cfg);
	cfg.pre_vote = pre_vote;
	cfg.check_quorum = check_quorum;
	net_init_cfg(nw, nn, nn, &cfg);
}

static inline void net_free(struct net *nw)
{
	for (int i = 1; i <= nw->nn; i++) {
		raft_free(nw->n[i].r);
		raft_memory_storage_free(nw->n[i].ms);
	}
	for (size_t i = 0; i < nw->nq; i++)
		free(nw->q[i].buf);
	free(nw->q);
}

static inline void net_crash(struct net *nw, uint64_t id)
{
	raft_free(nw->n[id].r);
	nw->n[id].r = NULL;
}

static inline void net_send(struct net *nw, const struct raft_message *m)
{
	nw->sent[m->type]++;
	if (m->type == RAFT_MSG_APP_RESP && m->reject)
		nw->sent_rejects++;
	if (m->type == RAFT_MSG_APP && m->n_entries > nw->max_app_entries)
		nw->max_app_entries = m->n_entries;
	if (nw->q && nw->nq == nw->capq) {
		nw->capq *= 2;
		nw->q = realloc(nw->q, nw->capq * sizeof *nw->q);
	} else if (!nw->q) {
		nw->capq = 64;
		nw->q = malloc(nw->capq * sizeof *nw->q);
	}
	struct tmsg *t = &nw->q[nw->nq++];
	t->len = raft_message_encoded_size(m);
	t->buf = malloc(t->len + 1);
	CHECK_EQ(raft_message_encode(m, t->buf), t->len);
	t->from = m->from;
	t->to = m->to;
	t->type = m->type;
}

/* Handles every Ready of member id: persist, queue messages, apply, advance. */
static inline int net_ready(struct net *nw, uint64_t id)
{
	struct tnode *t = &nw->n[id];
	int did = 0;
	while (t->r && raft_has_ready(t->r)) {
		did = 1;
		struct raft_ready rd;
		CHECK_EQ(raft_ready(t->r, &rd), 0);
		if (rd.has_snapshot) {
			CHECK_EQ(raft_memory_storage_apply_snapshot(t->ms, &rd.snapshot), 0);
			t->applied = rd.snapshot.meta.index;
			t->conf = rd.snapshot.meta.conf;
			t->snapshots_restored++;
		}
		if (rd.n_entries)
			CHECK_EQ(raft_memory_storage_append(t->ms, rd.entries, rd.n_entries), 0);
		if (rd.has_hard_state)
			raft_memory_storage_set_hard_state(t->ms, &rd.hard_state);
		for (size_t i = 0; i < rd.n_messages; i++)
			net_send(nw, &rd.messages[i]);
		for (size_t i = 0; i < rd.n_committed_entries; i++) {
			const struct raft_entry *e = &rd.committed_entries[i];
			CHECK_EQ(e->index, t->applied + 1);
			t->applied = e->index;
			if (e->type == RAFT_ENTRY_CONF_CHANGE) {
				struct raft_conf_change cc;
				CHECK_EQ(raft_conf_change_decode(e->data, e->len, &cc), 0);
				raft_apply_conf_change(t->r, &cc, &t->conf);
				free(cc.context);
			}
		}
		for (size_t i = 0; i < rd.n_read_states && t->n_reads < 16; i++) {
			t->reads[t->n_reads] = rd.read_states[i];
			t->reads[t->n_reads].context = NULL;
			t->read_ctx[t->n_reads] = 0;
			if (rd.read_states[i].context_len >= 8)
				memcpy(&t->read_ctx[t->n_reads], rd.read_states[i].context, 8);
			t->n_reads++;
		}
		raft_advance(t->r, &rd);
	}
	return did;
}

/* Delivers the queued messages (those sent meanwhile wait for the next round). */
static inline int net_deliver(struct net *nw)
{
	size_t n = nw->nq;
	if (!n)
		return 0;
	struct tmsg *batch = nw->q;
	nw->q = NULL;
	nw->nq = nw->capq = 0;
	for (size_t i = 0; i < n; i++) {
		struct tmsg *t = &batch[i];
		struct tnode *to = net_node(nw, t->to);
		int ok = to && to->r && t->from <= NET_MAX && !nw->cut[t->from][t->to] &&
			 !nw->drop_type[t->type];
		if (nw->trace && !ok) {
			struct raft_message m;
			CHECK_EQ(raft_message_decode(t->buf, t->len, &m), 0);
			net_describe(nw->trace, &m, " (dropped)");
			raft_message_free_decoded(&m);
		}
		if (ok) {
			struct raft_message m;
			CHECK_EQ(raft_message_decode(t->buf, t->len, &m), 0);
			if (nw->trace)
				net_describe(nw->trace, &m, "");
			raft_step(to->r, &m);
			raft_message_free_decoded(&m);
			net_ready(nw, t->to);
		}
		if (t->type == RAFT_MSG_SNAP && net_node(nw, t->from) && net_node(nw, t->from)->r) {
			raft_report_snapshot(net_node(nw, t->from)->r, t->to, ok);
			net_ready(nw, t->from);
		}
		free(t->buf);
	}
	free(batch);
	return 1;
}

static inline void net_stabilize(struct net *nw)
{
	for (int round = 0; round < 10000; round++) {
		int busy = 0;
		for (int i = 1; i <= nw->nn; i++)
			busy |= net_ready(nw, (uint64_t)i);
		busy |= net_deliver(nw);
		if (!busy)
			return;
	}
	CHECK_FAIL("net did not stabilize");
}

static inline void net_isolate(struct net *nw, uint64_t id)
{
	for (int i = 0; i <= NET_MAX; i++)
		nw->cut[id][i] = nw->cut[i][id] = 1;
}

static inline void net_heal(struct net *nw)
{
	memset(nw->cut, 0, sizeof nw->cut);
}

static inline void net_tick(struct net *nw, uint64_t id, int k)
{
	for (int i = 0; i < k; i++) {
		raft_tick(nw->n[id].r);
		net_ready(nw, id);
		net_deliver(nw);
	}
}

/* Ticks every live member k times, stabilizing in between. */
static inline void net_tick_all(struct net *nw, int k)
{
	for (int i = 0; i < k; i++) {
		for (int j = 1; j <= nw->nn; j++)
			if (nw->n[j].r)
				raft_tick(nw->n[j].r);
		net_stabilize(nw);
	}
}

static inline struct raft_status net_status(struct net *nw, uint64_t id)
{
	struct raft_status st;
	raft_status(nw->n[id].r, &st);
	return st;
}

static inline int net_state(struct net *nw, uint64_t id)
{
	return net_status(nw, id).soft_state.state;
}

static inline uint64_t net_term(struct net *nw, uint64_t id)
{
	return net_status(nw, id).hard_state.term;
}

static inline uint64_t net_commit(struct net *nw, uint64_t id)
{
	return net_status(nw, id).hard_state.commit;
}

/* The id of the live leader of the highest term, or 0. */
static inline uint64_t net_leader(struct net *nw)
{
	uint64_t best = 0, bt = 0;
	for (int i = 1; i <= nw->nn; i++) {
		if (!nw->n[i].r)
			continue;
		struct raft_status st = net_status(nw, (uint64_t)i);
		if (st.soft_state.state == RAFT_LEADER && st.hard_state.term >= bt) {
			best = (uint64_t)i;
			bt = st.hard_state.term;
		}
	}
	return best;
}

/* Ticks until every live member follows one leader of one term; returns it (0 if none). */
static inline uint64_t net_settle(struct net *nw, int max_ticks)
{
	for (int k = 0; k <= max_ticks; k++) {
		uint64_t l = net_leader(nw);
		int agreed = l != 0;
		for (int i = 1; i <= nw->nn && agreed; i++) {
			if (!nw->n[i].r)
				continue;
			struct raft_status st = net_status(nw, (uint64_t)i);
			if (st.soft_state.lead != l || st.hard_state.term != net_term(nw, l))
				agreed = 0;
		}
		if (agreed)
			return l;
		net_tick_all(nw, 1);
	}
	return 0;
}

/* Campaigns on id after the bootstrap entries are applied, and stabilizes. */
static inline void net_elect(struct net *nw, uint64_t id)
{
	net_stabilize(nw);
	CHECK_EQ(raft_campaign(nw->n[id].r), 0);
	net_stabilize(nw);
}

static inline int net_propose(struct net *nw, uint64_t id, const char *s)
{
	int rv = raft_propose(nw->n[id].r, (const uint8_t *)s, strlen(s));
	net_ready(nw, id);
	return rv;
}

/* Term of entry i in id's storage, 0 when absent. */
static inline uint64_t net_log_term(struct net *nw, uint64_t id, uint64_t i)
{
	uint64_t t = 0;
	if (nw->n[id].st.term(nw->n[id].st.data, i, &t) != 0)
		return 0;
	return t;
}

static inline uint64_t net_last_index(struct net *nw, uint64_t id)
{
	uint64_t i = 0;
	nw->n[id].st.last_index(nw->n[id].st.data, &i);
	return i;
}

#endif
