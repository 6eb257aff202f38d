/*
 * test_sim.c: randomized, deterministic simulation of raft clusters.
 *
 * Each seed builds a 3- or 5-member cluster (plus one spare member that joins as a learner and is
 * promoted during the run) over a simulated network that drops, delays, duplicates, reorders and
 * partitions messages. Members crash and restart, losing whatever they had not persisted (a crash
 * can hit in the middle of handling a Ready); voters are removed; snapshots are taken and the log
 * compacted, so lagging members catch up by snapshot. After every step the run asserts:
 *   Election Safety      at most one leader per term
 *   Log Matching         entries with the same index and term have the same payload and the same
 *                        predecessor term (so, by induction, identical prefixes)
 *   Leader Completeness  a new leader holds every entry committed in an earlier term
 *   State Machine Safety every member applies the same entry at a given index
 *   monotonic commit     a member's commit index never goes back, not even across a restart
 * After the faults heal, a leader must be elected and a proposal must commit within a bound.
 *
 *   RAFT_SIM_SEEDS=100000 ./test-sim   run more seeds (default 5000, about 45 s with sanitizers)
 *   RAFT_SIM_SEED=123 ./test-sim       replay one seed, printing its events with RAFT_SIM_VERBOSE=1
 *   RAFT_SIM_FIRST=5000 ./test-sim     start at another seed
 */
#include "check.h"
#include "raft.h"

#include <stdarg.h>

#define MAXN 6

static int verbose;

/* Totals over all seeds, printed at the end so a run shows it exercised what it claims. */
static struct {
	uint64_t committed, elections, crashes, snap_restores, conf_applied, removals, msgs, promoted;
	uint64_t reads, transfers;
} tot;

static void vlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void vlog(const char *fmt, ...)
{
	if (!verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------------------------------ */

static uint64_t rnd_state;

static uint64_t rnd(void)
{
	uint64_t z = (rnd_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int chance(unsigned per_mille)
{
	return rnd() % 1000 < per_mille;
}

static uint64_t fnv(const uint8_t *p, size_t n, int type)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)type;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

/* ------------------------------------------------------------------------------------------ */

struct node {
	uint64_t id;
	struct raft *r;                 /* NULL while down */
	struct raft_memory_storage *ms; /* what survives a crash */
	struct raft_storage st;
	int removed;                    /* applied its own removal: gone for good */
	int down_until;                 /* tick of restart while down */
	uint64_t applied;               /* application state: applied index */
	uint64_t commit_seen;           /* highest commit index persisted (also across restarts) */
	struct raft_conf_state conf;    /* as the application tracks it */
	uint64_t snap_index;            /* storage snapshot index */
	uint64_t checked_term;          /* term whose Leader Completeness was checked */
};

struct pkt {
	int at;        /* delivery tick */
	uint64_t to, from;
	uint8_t *buf;
	size_t len;
	int is_snap;
};

struct chosen {
	uint64_t hash;        /* payload hash of the entry applied at this index, 0 unknown */
	uint64_t term;
	uint64_t commit_term; /* lowest leader term seen committing it */
};

struct lm {
	uint64_t index, term, hash, prev_term;
	int used;
};

struct sim {
	struct node n[MAXN];
	int nn;          /* nodes in use (voters + spare) */
	int nvoters;
	int now;
	struct pkt *q;
	size_t nq, capq;
	int part[MAXN];  /* partition group per node; messages cross only within a group */
	unsigned drop, dup; /* per mille */
	int maxdelay;
	struct chosen *ch;
	size_t nch;
	struct lm *lm;
	size_t caplm, nlm;
	uint64_t leader_of_term[4096];
	uint64_t leader_commit; /* highest index any leader was seen committing */
	uint64_t next_prop;
	uint64_t seed;
	int phase;       /* membership plan progress */
	int faults;      /* fault injection on */
	uint64_t *read_min; /* per read request id: the commit index it must at least return */
	size_t n_read;
	uint64_t failed; /* set when an invariant broke */
	char why[256];
};

static struct sim *S;

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		if (!S->failed) {                                                                  \
			snprintf(S->why, sizeof S->why, __VA_ARGS__);                              \
			S->failed = 1;                                                             \
		}                                                                                  \
	} while (0)

static struct node *node_of(uint64_t id)
{
	for (int i = 0; i < S->nn; i++)
		if (S->n[i].id == id)
			return &S->n[i];
	return NULL;
}

static struct chosen *chosen_at(uint64_t i)
{
	if (i >= S->nch) {
		size_t n = S->nch ? S->nch : 256;
		while (n <= i)
			n *= 2;
		S->ch = realloc(S->ch, n * sizeof *S->ch);
		memset(S->ch + S->nch, 0, (n - S->nch) * sizeof *S->ch);
		S->nch = n;
	}
	return &S->ch[i];
}

/* Log Matching bookkeeping: (index, term) -> payload hash and predecessor term. */
static void lm_record(uint64_t index, uint64_t term, uint64_t hash, uint64_t prev_term, int prev_ok)
{
	if (S->nlm * 2 >= S->caplm) {
		size_t cap = S->caplm ? S->caplm * 2 : 1024;
		struct lm *n = calloc(cap, sizeof *n);
		for (size_t i = 0; i < S->caplm; i++) {
			if (!S->lm[i].used)
				continue;
			size_t h = (size_t)((S->lm[i].index * 1000003u + S->lm[i].term) % cap);
			while (n[h].used)
				h = (h + 1) % cap;
			n[h] = S->lm[i];
		}
		free(S->lm);
		S->lm = n;
		S->caplm = cap;
	}
	size_t h = (size_t)((index * 1000003u + term) % S->caplm);
	while (S->lm[h].used) {
		struct lm *e = &S->lm[h];
		if (e->index == index && e->term == term) {
			if (e->hash != hash)
				FAIL("log matching: (%" PRIu64 ",%" PRIu64 ") has two payloads", index,
				     term);
			if (prev_ok) {
				if (e->prev_term == UINT64_MAX)
					e->prev_term = prev_term;
				else if (e->prev_term != prev_term)
					FAIL("log matching: (%" PRIu64 ",%" PRIu64
					     ") has predecessors of term %" PRIu64 " and %" PRIu64,
					     index, term, e->prev_term, prev_term);
			}
			return;
		}
		h = (h + 1) % S->caplm;
	}
	S->lm[h] = (struct lm){index, term, hash, prev_ok ? prev_term : UINT64_MAX, 1};
	S->nlm++;
}

/* ------------------------------------------------------------------------------------------ */

static void send_pkt(const struct raft_message *m)
{
	struct node *to = node_of(m->to);
	struct node *from = node_of(m->from);
	if (!to || !from)
		return;
	int copies = 1;
	if (verbose && m->type != RAFT_MSG_APP && m->type != RAFT_MSG_APP_RESP &&
	    m->type != RAFT_MSG_HEARTBEAT && m->type != RAFT_MSG_HEARTBEAT_RESP)
		vlog("%d: %s %" PRIu64 "->%" PRIu64 " term %" PRIu64 " reject %d\n", S->now,
		     raft_message_type_name(m->type), m->from, m->to, m->term, m->reject);
	if (verbose && m->type == RAFT_MSG_SNAP)
		vlog("   snap index %" PRIu64 " voters %zu learners %zu\n", m->snapshot.meta.index,
		     m->snapshot.meta.conf.n_voters, m->snapshot.meta.conf.n_learners);
	if (verbose && m->type == RAFT_MSG_APP_RESP)
		vlog("%d: AppResp %" PRIu64 "->%" PRIu64 " index %" PRIu64 " reject %d hint %" PRIu64
		     " logterm %" PRIu64 "\n", S->now, m->from, m->to, m->index, m->reject,
		     m->reject_hint, m->log_term);
	if (verbose && m->type == RAFT_MSG_APP)
		vlog("%d: App %" PRIu64 "->%" PRIu64 " index %" PRIu64 " logterm %" PRIu64
		     " n %zu commit %" PRIu64 "\n", S->now, m->from, m->to, m->index, m->log_term,
		     m->n_entries, m->commit);
	if (S->faults) {
		if (S->part[to - S->n] != S->part[from - S->n] || chance(S->drop)) {
			if (m->type == RAFT_MSG_SNAP && from->r)
				raft_report_snapshot(from->r, m->to, 0);
			return;
		}
		if (chance(S->dup))
			copies = 2;
	}
	size_t len = raft_message_encoded_size(m);
	tot.msgs++;
	for (int c = 0; c < copies; c++) {
		if (S->nq == S->capq) {
			S->capq = S->capq ? S->capq * 2 : 256;
			S->q = realloc(S->q, S->capq * sizeof *S->q);
		}
		struct pkt *p = &S->q[S->nq++];
		p->at = S->now + (S->maxdelay ? (int)(rnd() % (uint64_t)(S->maxdelay + 1)) : 0);
		p->to = m->to;
		p->from = m->from;
		p->buf = malloc(len ? len : 1);
		p->len = raft_message_encode(m, p->buf);
		p->is_snap = m->type == RAFT_MSG_SNAP;
	}
}

static void crash(struct node *n, int until)
{
	if (!n->r)
		return;
	vlog("%d: crash %" PRIu64 "\n", S->now, n->id);
	tot.crashes++;
	raft_free(n->r);
	n->r = NULL;
	n->down_until = until;
}

/* Applies committed entries to the "state machine" and checks State Machine Safety. */
static void apply_entries(struct node *n, const struct raft_entry *ents, size_t cnt)
{
	for (size_t i = 0; i < cnt; i++) {
		const struct raft_entry *e = &ents[i];
		if (e->index <= n->applied)
			continue;
		if (e->index != n->applied + 1) {
			FAIL("node %" PRIu64 " applies %" PRIu64 " after %" PRIu64, n->id, e->index,
			     n->applied);
			return;
		}
		uint64_t h = fnv(e->data, e->len, e->type);
		struct chosen *c = chosen_at(e->index);
		if (c->hash && (c->hash != h || c->term != e->term))
			FAIL("state machine safety: index %" PRIu64 " applied differently on %" PRIu64,
			     e->index, n->id);
		if (!c->hash)
			tot.committed++;
		c->hash = h;
		c->term = e->term;
		n->applied = e->index;
		if (e->type == RAFT_ENTRY_CONF_CHANGE) {
			struct raft_conf_change cc;
			if (raft_conf_change_decode(e->data, e->len, &cc) != 0) {
				FAIL("undecodable conf change at %" PRIu64, e->index);
				continue;
			}
			raft_apply_conf_change(n->r, &cc, &n->conf);
			tot.conf_applied++;
			vlog("%d: node %" PRIu64 " applies conf change type %d node %" PRIu64 "\n",
			     S->now, n->id, cc.type, cc.node_id);
			free(cc.context);
			if (cc.type == RAFT_CONF_REMOVE_NODE && cc.node_id == n->id) {
				n->removed = 1;
				tot.removals++;
			}
		}
	}
}

static void check_node(struct node *n)
{
	struct raft_status st;
	raft_status(n->r, &st);
	if (st.hard_state.commit < n->commit_seen)
		FAIL("node %" PRIu64 " commit went back from %" PRIu64 " to %" PRIu64, n->id,
		     n->commit_seen, st.hard_state.commit);
	if (st.soft_state.state == RAFT_LEADER) {
		uint64_t t = st.hard_state.term;
		if (t < sizeof S->leader_of_term / sizeof S->leader_of_term[0]) {
			if (S->leader_of_term[t] == 0) {
				S->leader_of_term[t] = n->id;
				tot.elections++;
				vlog("%d: node %" PRIu64 " leads term %" PRIu64 "\n", S->now, n->id, t);
			} else if (S->leader_of_term[t] != n->id) {
				FAIL("election safety: %" PRIu64 " and %" PRIu64 " lead term %" PRIu64,
				     S->leader_of_term[t], n->id, t);
			}
			uint64_t slast = 0;
			n->st.last_index(n->st.data, &slast);
			if (n->checked_term != t && st.last_index == slast) {
				/* Leader Completeness (once its log is all persisted): everything
				 * committed in earlier terms is here. */
				n->checked_term = t;
				for (uint64_t i = n->snap_index + 1; i <= S->leader_commit; i++) {
					struct chosen *c = chosen_at(i);
					if (!c->hash || !c->commit_term || c->commit_term >= t)
						continue;
					uint64_t lt = 0;
					if (n->st.term(n->st.data, i, &lt) != 0 || lt != c->term)
						FAIL("leader completeness: leader %" PRIu64 " of term %" PRIu64
						     " lacks index %" PRIu64, n->id, t, i);
				}
			}
		}
		for (uint64_t i = S->leader_commit + 1; i <= st.hard_state.commit; i++)
			chosen_at(i)->commit_term = st.hard_state.term;
		if (st.hard_state.commit > S->leader_commit)
			S->leader_commit = st.hard_state.commit;
	}
}

static void maybe_snapshot(struct node *n)
{
	if (n->applied < n->snap_index + 12 || !chance(300))
		return;
	uint8_t data[8];
	memcpy(data, &n->applied, 8);
	if (raft_memory_storage_create_snapshot(n->ms, n->applied, &n->conf, data, 8) != 0)
		return;
	n->snap_index = n->applied;
	uint64_t keep = rnd() % 8;
	if (n->applied > keep + 1)
		raft_memory_storage_compact(n->ms, n->applied - keep);
	vlog("%d: node %" PRIu64 " snapshots at %" PRIu64 "\n", S->now, n->id, n->applied);
}

/* Steps up to k due packets addressed to n without running its Ready loop (it is mid-Ready). */
static void step_some_for(struct node *n, int k)
{
	for (size_t i = 0; i < S->nq && k > 0; i++) {
		struct pkt *p = &S->q[i];
		if (p->to != n->id || p->at > S->now || p->is_snap)
			continue;
		struct node *from = node_of(p->from);
		if (from && S->part[n - S->n] == S->part[from - S->n]) {
			struct raft_message m;
			if (raft_message_decode(p->buf, p->len, &m) == 0) {
				raft_step(n->r, &m);
				raft_message_free_decoded(&m);
			}
		}
		free(p->buf);
		memmove(p, p + 1, (S->nq - i - 1) * sizeof *p);
		S->nq--;
		i--;
		k--;
	}
}

static void process_ready(struct node *n);

/* Runs the Ready loop of n; a member that applied its own removal sends what it has left, then
 * shuts down for good. */
static void process(struct node *n)
{
	process_ready(n);
	if (n->r && n->removed)
		crash(n, 1 << 30);
}

static void process_ready(struct node *n)
{
	for (int guard = 0; n->r && guard < 100 && raft_has_ready(n->r); guard++) {
		struct raft_ready rd;
		if (raft_ready(n->r, &rd) != 0) {
			FAIL("ready failed on %" PRIu64, n->id);
			return;
		}
		int crash_point = S->faults && chance(3) ? (int)(rnd() % 3) : -1;
		if (crash_point == 0) { /* before persisting anything */
			crash(n, S->now + 1 + (int)(rnd() % 30));
			return;
		}
		if (rd.has_snapshot) {
			int rv = raft_memory_storage_apply_snapshot(n->ms, &rd.snapshot);
			if (rv == 0) {
				n->snap_index = rd.snapshot.meta.index;
				n->applied = rd.snapshot.meta.index;
				n->conf = rd.snapshot.meta.conf;
				tot.snap_restores++;
				vlog("%d: node %" PRIu64 " restores snapshot %" PRIu64 "\n", S->now, n->id,
				     rd.snapshot.meta.index);
			}
		}
		if (rd.n_entries) {
			raft_memory_storage_append(n->ms, rd.entries, rd.n_entries);
			for (size_t i = 0; i < rd.n_entries; i++) {
				const struct raft_entry *e = &rd.entries[i];
				uint64_t pt = 0;
				int ok = n->st.term(n->st.data, e->index - 1, &pt) == 0;
				lm_record(e->index, e->term, fnv(e->data, e->len, e->type), pt, ok);
			}
		}
		if (rd.has_hard_state) {
			raft_memory_storage_set_hard_state(n->ms, &rd.hard_state);
			if (rd.hard_state.commit < n->commit_seen)
				FAIL("node %" PRIu64 " persists commit %" PRIu64 " after %" PRIu64, n->id,
				     rd.hard_state.commit, n->commit_seen);
			n->commit_seen = rd.hard_state.commit; /* durable from now on */
		}
		if (crash_point == 1) { /* persisted, nothing sent */
			crash(n, S->now + 1 + (int)(rnd() % 30));
			return;
		}
		for (size_t i = 0; i < rd.n_messages; i++)
			send_pkt(&rd.messages[i]);
		apply_entries(n, rd.committed_entries, rd.n_committed_entries);
		for (size_t i = 0; i < rd.n_read_states; i++) {
			/* Linearizable reads: at least everything committed before the request. */
			uint64_t id = 0;
			if (rd.read_states[i].context_len == 8)
				memcpy(&id, rd.read_states[i].context, 8);
			if (id == 0 || id > S->n_read) {
				FAIL("read state with unknown context on %" PRIu64, n->id);
				continue;
			}
			if (rd.read_states[i].index < S->read_min[id - 1])
				FAIL("read index %" PRIu64 " below commit %" PRIu64 " known at request",
				     rd.read_states[i].index, S->read_min[id - 1]);
			tot.reads++;
		}
		/* The application may keep driving the core while it persists (async fsync). */
		if (S->faults && chance(50) && !n->removed)
			raft_tick(n->r);
		if (S->faults && chance(100) && !n->removed)
			step_some_for(n, 3);
		raft_advance(n->r, &rd);
		check_node(n);
		maybe_snapshot(n);
		if (crash_point == 2) {
			crash(n, S->now + 1 + (int)(rnd() % 30));
			return;
		}
	}
}

static int start(struct node *n)
{
	struct raft_config cfg = {
		.id = n->id,
		.election_tick = 10,
		.heartbeat_tick = 1,
		.max_size_per_msg = 64,
		.max_inflight_msgs = 4,
		.check_quorum = (S->seed & 1) != 0,
		.pre_vote = (S->seed & 2) != 0,
		.seed = S->seed * 31 + (uint64_t)S->now,
	};
	int rv = raft_new(&cfg, &n->st, &n->r);
	if (rv)
		return rv;
	/* The application state comes back from the snapshot; the rest is replayed. */
	const struct raft_snapshot *snap;
	n->st.snapshot(n->st.data, &snap);
	n->applied = snap->meta.index;
	n->snap_index = snap->meta.index;
	n->conf = snap->meta.conf;
	return 0;
}

static struct node *leader(void)
{
	struct node *best = NULL;
	uint64_t bt = 0;
	for (int i = 0; i < S->nn; i++) {
		struct node *n = &S->n[i];
		if (!n->r)
			continue;
		struct raft_status st;
		raft_status(n->r, &st);
		if (st.soft_state.state == RAFT_LEADER && st.hard_state.term >= bt) {
			best = n;
			bt = st.hard_state.term;
		}
	}
	return best;
}

static void propose(struct node *n)
{
	uint8_t data[16];
	uint64_t id = ++S->next_prop;
	memcpy(data, &id, 8);
	memcpy(data + 8, &S->seed, 8);
	raft_propose(n->r, data, sizeof data);
}

/* The membership plan: add the spare as learner, promote it, remove a voter. */
static void membership(void)
{
	struct node *l = leader();
	if (!l || !chance(100))
		return;
	struct raft_status st;
	raft_status(l->r, &st);
	uint64_t spare = S->n[S->nn - 1].id;
	struct raft_conf_change cc = {0};
	if (S->phase == 0) {
		cc.type = RAFT_CONF_ADD_LEARNER_NODE;
		cc.node_id = spare;
	} else if (S->phase == 1) {
		cc.type = RAFT_CONF_ADD_NODE;
		cc.node_id = spare;
	} else if (S->phase == 2) {
		cc.type = RAFT_CONF_REMOVE_NODE;
		cc.node_id = st.conf.voters[rnd() % st.conf.n_voters];
	} else {
		return;
	}
	/* Move on once the previous step is in the leader's configuration. */
	int in = 0;
	for (size_t i = 0; i < st.conf.n_learners; i++)
		in |= st.conf.learners[i] == spare;
	for (size_t i = 0; i < st.conf.n_voters; i++)
		in |= (st.conf.voters[i] == spare) << 1;
	if (S->phase == 1 && (in & 2)) {
		tot.promoted++;
		S->phase = 2;
		return;
	}
	if (S->phase == 0 && in) {
		S->phase = 1;
		return;
	}
	if ((S->phase == 1 && !(in & 1)) || (S->phase == 2 && !(in & 2)))
		return;
	if (S->phase == 1) {
		/* Promote only a learner that has caught up (as etcd's server does). */
		for (size_t i = 0; i < st.n_progress; i++)
			if (st.progress[i].id == spare && st.progress[i].match < st.hard_state.commit)
				return;
	}
	cc.id = (uint64_t)S->phase + 1;
	int rv = raft_propose_conf_change(l->r, &cc);
	vlog("%d: propose conf change %d node %" PRIu64 " on %" PRIu64 ": %d\n", S->now, cc.type,
	     cc.node_id, l->id, rv);
	if (rv == 0 && S->phase == 2)
		S->phase = 3;
	process(l);
}

static void deliver_due(void)
{
	for (int round = 0; round < 50; round++) {
		/* Pick the due packets, in a random order (reordering). */
		size_t due = 0;
		for (size_t i = 0; i < S->nq; i++)
			if (S->q[i].at <= S->now) {
				struct pkt t = S->q[due];
				S->q[due] = S->q[i];
				S->q[i] = t;
				due++;
			}
		if (!due)
			return;
		struct pkt *batch = malloc(due * sizeof *batch);
		memcpy(batch, S->q, due * sizeof *batch);
		memmove(S->q, S->q + due, (S->nq - due) * sizeof *S->q);
		S->nq -= due;
		for (size_t i = due; i > 1; i--) {
			size_t j = (size_t)(rnd() % i);
			struct pkt t = batch[i - 1];
			batch[i - 1] = batch[j];
			batch[j] = t;
		}
		for (size_t i = 0; i < due; i++) {
			struct pkt *p = &batch[i];
			struct node *to = node_of(p->to), *from = node_of(p->from);
			int ok = to && to->r && from &&
				 (!S->faults || S->part[to - S->n] == S->part[from - S->n]);
			if (ok) {
				struct raft_message m;
				if (raft_message_decode(p->buf, p->len, &m) != 0) {
					FAIL("cannot decode a message we encoded");
				} else {
					int rv = raft_step(to->r, &m);
					if (rv && verbose)
						vlog("%d: step %s %" PRIu64 "->%" PRIu64 ": %s\n", S->now,
						     raft_message_type_name(m.type), m.from, m.to,
						     raft_strerror(rv));
					raft_message_free_decoded(&m);
					process(to);
				}
			}
			if (p->is_snap && from && from->r) {
				raft_report_snapshot(from->r, p->to, ok);
				process(from);
			}
			free(p->buf);
		}
		free(batch);
		if (S->failed)
			return;
	}
}

static void tick_all(void)
{
	for (int i = 0; i < S->nn; i++) {
		struct node *n = &S->n[i];
		if (!n->r && !n->removed && n->down_until <= S->now) {
			if (start(n) != 0) {
				FAIL("restart of %" PRIu64 " failed", n->id);
				return;
			}
			vlog("%d: restart %" PRIu64 "\n", S->now, n->id);
		}
		if (n->r) {
			raft_tick(n->r);
			process(n);
		}
	}
}

static void faults_step(void)
{
	if (chance(20)) { /* new partition */
		int groups = 1 + (int)(rnd() % 3);
		for (int i = 0; i < S->nn; i++)
			S->part[i] = (int)(rnd() % (uint64_t)groups);
		vlog("%d: partition\n", S->now);
	}
	if (chance(30)) {
		memset(S->part, 0, sizeof S->part);
		vlog("%d: heal\n", S->now);
	}
	if (chance(8)) {
		struct node *n = &S->n[rnd() % (uint64_t)S->nn];
		crash(n, S->now + 1 + (int)(rnd() % 40));
	}
}

/* Runs one seed; returns 0 or 1 (and fills S->why). */
static int run_seed(uint64_t seed)
{
	struct sim *s = calloc(1, sizeof *s);
	S = s;
	s->seed = seed;
	rnd_state = seed * 0x2545f4914f6cdd1dull + 1;
	s->nvoters = chance(500) ? 3 : 5;
	s->nn = s->nvoters + 1;
	s->drop = (unsigned)(rnd() % 150);
	s->dup = (unsigned)(rnd() % 50);
	s->maxdelay = (int)(rnd() % 4);
	s->faults = 1;
	struct raft_conf_state cs = {0};
	for (int i = 0; i < s->nvoters; i++)
		cs.voters[cs.n_voters++] = (uint64_t)i + 1;
	for (int i = 0; i < s->nn; i++) {
		struct node *n = &s->n[i];
		n->id = (uint64_t)i + 1;
		n->ms = raft_memory_storage_new();
		if (i < s->nvoters)
			raft_memory_storage_bootstrap(n->ms, &cs);
		raft_memory_storage_bind(n->ms, &n->st);
		if (start(n) != 0)
			FAIL("start failed");
	}
	int fault_ticks = 150 + (int)(rnd() % 150);
	for (s->now = 0; s->now < fault_ticks && !s->failed; s->now++) {
		faults_step();
		tick_all();
		for (int k = 0; k < 3; k++)
			if (chance(400)) {
				struct node *n = &s->n[rnd() % (uint64_t)s->nn];
				if (n->r) {
					propose(n);
					process(n);
				}
			}
		if (chance(30)) {
			struct node *n = &s->n[rnd() % (uint64_t)s->nn];
			if (n->r) {
				s->read_min = realloc(s->read_min, (s->n_read + 1) * sizeof *s->read_min);
				s->read_min[s->n_read++] = s->leader_commit;
				uint64_t id = s->n_read;
				raft_read_index(n->r, (const uint8_t *)&id, 8);
				process(n);
			}
		}
		if (chance(5)) {
			struct node *l = leader();
			if (l) {
				struct raft_status st;
				raft_status(l->r, &st);
				raft_transfer_leader(l->r, st.conf.voters[rnd() % st.conf.n_voters]);
				tot.transfers++;
				process(l);
			}
		}
		membership();
		deliver_due();
	}
	/* Heal: no faults, everyone up; a leader must emerge and commit a proposal. */
	s->faults = 0;
	s->maxdelay = 1;
	memset(s->part, 0, sizeof s->part);
	for (int i = 0; i < s->nn; i++)
		if (!s->n[i].removed)
			s->n[i].down_until = 0;
	int healed_at = s->now, committed = 0;
	uint64_t want = 0;
	struct node *wl = NULL;
	for (; s->now < healed_at + 1000 && !s->failed && !committed; s->now++) {
		tick_all();
		deliver_due();
		struct node *l = leader();
		if (l && (l != wl || s->now % 50 == 0)) {
			wl = l;
			propose(l);
			want = s->next_prop;
			process(l);
		}
		for (int i = 0; i < s->nn && want; i++) {
			struct node *n = &s->n[i];
			if (n != wl || !n->r || n->applied == 0)
				continue;
			const struct raft_entry *e;
			size_t cnt;
			if (n->st.entries(n->st.data, n->applied, n->applied + 1, UINT64_MAX, &e, &cnt) ==
				    0 &&
			    cnt == 1 && e->len == 16 && memcmp(e->data, &want, 8) == 0)
				committed = 1;
		}
	}
	if (!s->failed && !committed)
		FAIL("no proposal committed within 1000 ticks of healing");
	int failed = s->failed != 0;
	if (failed)
		printf("seed %" PRIu64 " FAILED at tick %d: %s (replay: RAFT_SIM_SEED=%" PRIu64
		       " RAFT_SIM_VERBOSE=1)\n",
		       seed, s->now, s->why, seed);
	for (int i = 0; i < s->nn; i++) {
		raft_free(s->n[i].r);
		raft_memory_storage_free(s->n[i].ms);
	}
	for (size_t i = 0; i < s->nq; i++)
		free(s->q[i].buf);
	free(s->q);
	free(s->ch);
	free(s->lm);
	free(s->read_min);
	free(s);
	S = NULL;
	return failed;
}

CHECK_TEST(sim_seeds)
{
	const char *one = getenv("RAFT_SIM_SEED");
	verbose = getenv("RAFT_SIM_VERBOSE") != NULL;
	if (one) {
		uint64_t seed = strtoull(one, NULL, 0);
		printf("# seed %" PRIu64 "\n", seed);
		CHECK_EQ(run_seed(seed), 0);
		return;
	}
	const char *ns = getenv("RAFT_SIM_SEEDS");
	const char *fs = getenv("RAFT_SIM_FIRST");
	uint64_t n = ns ? strtoull(ns, NULL, 0) : 5000;
	uint64_t first = fs ? strtoull(fs, NULL, 0) : 1;
	printf("# seeds %" PRIu64 "..%" PRIu64 " (replay one with RAFT_SIM_SEED=N)\n", first,
	       first + n - 1);
	int failures = 0;
	for (uint64_t s = first; s < first + n; s++) {
		failures += run_seed(s);
		if (failures >= 5)
			break;
	}
	printf("# totals: %" PRIu64 " entries committed, %" PRIu64 " leaders elected, %" PRIu64
	       " crashes, %" PRIu64 " snapshots restored, %" PRIu64 " conf changes applied, %" PRIu64
	       " learners promoted, %" PRIu64 " members removed, %" PRIu64 " reads, %" PRIu64
	       " transfers, %" PRIu64 " messages\n",
	       tot.committed, tot.elections, tot.crashes, tot.snap_restores, tot.conf_applied,
	       tot.promoted, tot.removals, tot.reads, tot.transfers, tot.msgs);
	CHECK_EQ(failures, 0);
}

CHECK_SUITE("raft-sim", CHECK_CASE(sim_seeds))
