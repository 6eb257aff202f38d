/*
 * raft.c: the consensus core of raftfs (etcd raft library's shape): elections with PreVote and
 * CheckQuorum, replication with per-follower progress, snapshots, single-step membership changes,
 * ReadIndex and leadership transfer, driven by tick/step and drained through ready/advance.
 *
 * Memory: the unstable log owns a malloc'd copy of every entry's payload. Messages, committed
 * entries and read states handed out in a Ready live in a per-Ready arena that raft_advance()
 * resets, so steady-state replication allocates little more than the entry copies themselves.
 */
#include "raft.h"
#include "payload_internal.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Arena: bump allocation for everything handed out in one Ready.
 * ------------------------------------------------------------------------------------------- */

struct arena_chunk {
	struct arena_chunk *next; /* older chunk */
	size_t cap, used;         /* bytes in data / bytes handed out */
	_Alignas(16) unsigned char data[];
};

struct arena {
	struct arena_chunk *head; /* newest chunk, allocated from */
};

static void *arena_alloc(struct arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (n == 0)
		n = 16;
	struct arena_chunk *c = a->head;
	if (!c || c->cap - c->used < n) {
		size_t cap = n > 65536 ? n : 65536;
		c = malloc(sizeof *c + cap);
		if (!c)
			return NULL;
		c->cap = cap;
		c->used = 0;
		c->next = a->head;
		a->head = c;
	}
	void *p = c->data + c->used;
	c->used += n;
	return p;
}

/*
 * Empties the arena. When it needed more than one chunk, they are replaced by one chunk as large as
 * all of them, so a steady workload settles on a single chunk and allocates nothing.
 */
static void arena_reset(struct arena *a)
{
	struct arena_chunk *c = a->head;
	if (!c)
		return;
	if (!c->next) {
		c->used = 0;
		return;
	}
	size_t total = 0;
	while (c) {
		struct arena_chunk *n = c->next;
		total += c->cap;
		free(c);
		c = n;
	}
	a->head = NULL;
	c = malloc(sizeof *c + total);
	if (c) {
		c->cap = total;
		c->used = 0;
		c->next = NULL;
		a->head = c;
	}
}

static void arena_free(struct arena *a)
{
	while (a->head) {
		struct arena_chunk *n = a->head->next;
		free(a->head);
		a->head = n;
	}
}

/* ---------------------------------------------------------------------------------------------
 * Types.
 * ------------------------------------------------------------------------------------------- */

/* What the leader knows of one member's log (etcd's tracker.Progress). */
struct progress {
	uint64_t id;
	uint64_t match;            /* highest index known replicated */
	uint64_t next;             /* next index to send */
	int state;                 /* enum raft_progress_state */
	int probe_sent;            /* probe state: an append is outstanding, wait */
	uint64_t pending_snapshot; /* snapshot state: index of the snapshot sent */
	int recent_active;         /* heard from since the last CheckQuorum */
	int is_learner;
	int vote;                  /* election tally: -1 no answer, 0 rejected, 1 granted */
	uint64_t *infl;            /* inflight ring of last indexes of appends, max_inflight long */
	size_t infl_start, infl_count;
};

/* A vector of entries that points at others' memory. */
struct entvec {
	struct raft_entry *v;
	size_t n, cap;
};

/* A ReadIndex request waiting for a quorum of heartbeat acks. */
struct read_req {
	uint64_t index;
	uint64_t from;          /* who asked (self or a follower) */
	uint8_t *ctx;           /* malloc'd */
	size_t ctx_len;
	uint64_t acks[RAFT_MAX_MEMBERS];
	size_t n_acks;
};

struct raft_log {
	const struct raft_storage *st;
	struct raft__payloads pl;   /* payloads of uents */
	int has_usnap;
	struct raft_snapshot usnap; /* unstable snapshot; data malloc'd */
	struct raft_entry *uents;   /* unstable entries; payloads in the chunks */
	size_t un, ucap;
	uint64_t uoffset;           /* index of uents[0] */
	uint64_t committed, applied;
};

struct raft {
	uint64_t id;
	uint64_t term, vote;
	int state;
	uint64_t lead;
	uint64_t lead_transferee;
	uint64_t pending_conf_index;
	struct raft_log log;

	struct progress prs[RAFT_MAX_MEMBERS];
	size_t n_prs;

	int election_timeout, heartbeat_timeout, randomized_election_timeout;
	int election_elapsed, heartbeat_elapsed;
	uint64_t max_msg_size, max_committed_size;
	size_t max_inflight;
	int check_quorum, pre_vote, disable_forwarding;
	void (*logger)(void *arg, int level, const char *msg); /* raft_config.logger, or NULL */
	void *logger_arg;
	int append_pending;           /* leader: proposals appended, appends not yet sent */
	uint64_t rng;

	struct arena arenas[2];       /* message and Ready payloads; one is handed out in a Ready */
	int cur;                      /* the arena new payloads go to */
	size_t handed_msgs, handed_rs; /* messages / read states in the outstanding Ready */
	uint64_t rd_last_index, rd_last_term; /* last unstable entry in the outstanding Ready */
	int in_ready;                 /* between raft_ready and raft_advance */
	uint8_t *retired_snap;        /* snapshot data the outstanding Ready may still point at */
	struct raft_message *msgs;    /* outgoing, payloads in arena */
	size_t n_msgs, cap_msgs;
	struct raft_read_state *rs;   /* read states, ctx in arena */
	size_t n_rs, cap_rs;

	struct read_req *reads;       /* leader's pending ReadIndex requests, oldest first */
	size_t n_reads, cap_reads;
	struct raft_message *pending_ri; /* ReadIndex held until a current-term commit; ctx malloc'd */
	size_t n_pending_ri, cap_pending_ri;

	struct raft_soft_state prev_ss;
	struct raft_hard_state prev_hs;
	struct entvec scratch;        /* reused by log slicing */
};

static const char campaign_transfer[] = "CampaignTransfer";

enum { CAMPAIGN_PRE, CAMPAIGN_ELECTION, CAMPAIGN_TRANSFER };

/* ---------------------------------------------------------------------------------------------
 * Names and errors.
 * ------------------------------------------------------------------------------------------- */

const char *raft_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case RAFT_EPROPOSALDROPPED:
		return "proposal dropped: no leader known";
	case RAFT_ECOMPACTED:
		return "requested index is unavailable due to compaction";
	case RAFT_EUNAVAILABLE:
		return "requested entry at index is unavailable";
	case RAFT_ESNAPOUTOFDATE:
		return "requested index is older than the existing snapshot";
	case RAFT_ECONFPENDING:
		return "a configuration change is already pending";
	case RAFT_EINVAL:
		return "invalid message or argument";
	case RAFT_ESNAPTEMPUNAVAILABLE:
		return "snapshot is temporarily unavailable";
	default:
		return err < 0 ? strerror(-err) : "unknown error";
	}
}

const char *raft_message_type_name(int type)
{
	static const char *const names[RAFT_MSG_TYPE_COUNT] = {
		"MsgHup", "MsgBeat", "MsgProp", "MsgApp", "MsgAppResp", "MsgVote", "MsgVoteResp",
		"MsgSnap", "MsgHeartbeat", "MsgHeartbeatResp", "MsgUnreachable", "MsgSnapStatus",
		"MsgCheckQuorum", "MsgTransferLeader", "MsgTimeoutNow", "MsgReadIndex",
		"MsgReadIndexResp", "MsgPreVote", "MsgPreVoteResp",
	};
	if (type < 0 || type >= RAFT_MSG_TYPE_COUNT)
		return "MsgUnknown";
	return names[type];
}

const char *raft_state_name(int state)
{
	switch (state) {
	case RAFT_FOLLOWER:
		return "StateFollower";
	case RAFT_CANDIDATE:
		return "StateCandidate";
	case RAFT_LEADER:
		return "StateLeader";
	case RAFT_PRE_CANDIDATE:
		return "StatePreCandidate";
	default:
		return "StateUnknown";
	}
}

/* ---------------------------------------------------------------------------------------------
 * Randomness (splitmix64), per member.
 * ------------------------------------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* ---------------------------------------------------------------------------------------------
 * The log: stable entries in storage, unstable ones here.
 * ------------------------------------------------------------------------------------------- */

static uint64_t log_first_index(struct raft_log *l)
{
	if (l->has_usnap)
		return l->usnap.meta.index + 1;
	uint64_t i = 0;
	l->st->first_index(l->st->data, &i);
	return i;
}

static uint64_t log_last_index(struct raft_log *l)
{
	if (l->un)
		return l->uoffset + l->un - 1;
	if (l->has_usnap)
		return l->usnap.meta.index;
	uint64_t i = 0;
	l->st->last_index(l->st->data, &i);
	return i;
}

/* Term of entry i, or 0 when it is out of range or compacted (the caller checks with *err). */
static uint64_t log_term_err(struct raft_log *l, uint64_t i, int *err)
{
	*err = 0;
	uint64_t dummy = log_first_index(l) - 1;
	if (i < dummy) {
		*err = RAFT_ECOMPACTED;
		return 0;
	}
	if (i > log_last_index(l)) {
		*err = RAFT_EUNAVAILABLE;
		return 0;
	}
	if (l->un && i >= l->uoffset)
		return l->uents[i - l->uoffset].term;
	if (l->has_usnap && i == l->usnap.meta.index)
		return l->usnap.meta.term;
	uint64_t t = 0;
	int rv = l->st->term(l->st->data, i, &t);
	if (rv) {
		*err = rv;
		return 0;
	}
	return t;
}

static uint64_t log_term(struct raft_log *l, uint64_t i)
{
	int err;
	return log_term_err(l, i, &err);
}

static uint64_t log_last_term(struct raft_log *l)
{
	return log_term(l, log_last_index(l));
}

static int log_match_term(struct raft_log *l, uint64_t i, uint64_t t)
{
	int err;
	uint64_t lt = log_term_err(l, i, &err);
	return err == 0 && lt == t;
}

static int log_is_up_to_date(struct raft_log *l, uint64_t lasti, uint64_t term)
{
	uint64_t lt = log_last_term(l);
	return term > lt || (term == lt && lasti >= log_last_index(l));
}

static void entvec_reset(struct entvec *v)
{
	v->n = 0;
}

static int entvec_push(struct entvec *v, const struct raft_entry *e)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 64;
		struct raft_entry *n = realloc(v->v, cap * sizeof *n);
		if (!n)
			return -ENOMEM;
		v->v = n;
		v->cap = cap;
	}
	v->v[v->n++] = *e;
	return 0;
}

/*
 * Fills out (shallow: pointing into storage or the unstable log) with entries [lo, hi), at most
 * max_bytes of payload but at least one. Valid until the log or storage is next modified.
 */
static int log_slice(struct raft_log *l, uint64_t lo, uint64_t hi, uint64_t max_bytes,
		     struct entvec *out)
{
	entvec_reset(out);
	if (lo >= hi)
		return 0;
	uint64_t first = log_first_index(l);
	if (lo < first)
		return RAFT_ECOMPACTED;
	if (hi > log_last_index(l) + 1)
		return RAFT_EUNAVAILABLE;
	uint64_t size = 0;
	uint64_t ustart = l->un ? l->uoffset : log_last_index(l) + 1;
	if (lo < ustart) {
		uint64_t shi = hi < ustart ? hi : ustart;
		const struct raft_entry *ents;
		size_t n;
		int rv = l->st->entries(l->st->data, lo, shi, max_bytes, &ents, &n);
		if (rv)
			return rv;
		for (size_t i = 0; i < n; i++) {
			if (out->n && size + ents[i].len > max_bytes)
				return 0;
			size += ents[i].len;
			if ((rv = entvec_push(out, &ents[i])))
				return rv;
		}
		if (n < shi - lo)
			return 0; /* storage cut it by size */
	}
	uint64_t ulo = lo > ustart ? lo : ustart;
	for (uint64_t i = ulo; i < hi; i++) {
		const struct raft_entry *e = &l->uents[i - l->uoffset];
		if (out->n && size + e->len > max_bytes)
			return 0;
		size += e->len;
		int rv = entvec_push(out, e);
		if (rv)
			return rv;
	}
	return 0;
}

static int unstable_reserve(struct raft_log *l, size_t n)
{
	if (n <= l->ucap)
		return 0;
	size_t cap = l->ucap ? l->ucap * 2 : 64;
	while (cap < n)
		cap *= 2;
	struct raft_entry *e = realloc(l->uents, cap * sizeof *e);
	if (!e)
		return -ENOMEM;
	l->uents = e;
	l->ucap = cap;
	return 0;
}

static void unstable_truncate(struct raft_log *l, size_t keep)
{
	l->un = keep; /* payloads stay in their chunks until released */
}

/* Appends copies of ents (consecutive), truncating whatever they overwrite. */
static int log_append(struct raft_log *l, const struct raft_entry *ents, size_t n)
{
	if (n == 0)
		return 0;
	uint64_t after = ents[0].index;
	if (l->un && after == l->uoffset + l->un) {
		/* Plain append. */
	} else if (!l->un || after <= l->uoffset) {
		unstable_truncate(l, 0);
		l->uoffset = after;
	} else {
		unstable_truncate(l, (size_t)(after - l->uoffset));
	}
	int rv = unstable_reserve(l, l->un + n);
	if (rv)
		return rv;
	for (size_t i = 0; i < n; i++) {
		struct raft_entry *d = &l->uents[l->un];
		*d = ents[i];
		d->data = NULL;
		if (ents[i].len) {
			d->data = raft__payload_alloc(&l->pl, ents[i].len, ents[i].index);
			if (!d->data)
				return -ENOMEM;
			memcpy(d->data, ents[i].data, ents[i].len);
		}
		l->un++;
	}
	return 0;
}

/* The index of the first entry of ents that conflicts with the log (or is new), 0 if none. */
static uint64_t log_find_conflict(struct raft_log *l, const struct raft_entry *ents, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!log_match_term(l, ents[i].index, ents[i].term))
			return ents[i].index;
	return 0;
}

/*
 * The last index <= index whose term is <= term (fast backtracking: every entry between it and index
 * has a term the leader's hint excludes). *out_term gets that entry's term.
 */
static uint64_t log_find_conflict_by_term(struct raft_log *l, uint64_t index, uint64_t term,
					  uint64_t *out_term)
{
	for (;;) {
		int err;
		uint64_t t = log_term_err(l, index, &err);
		if (err) {
			*out_term = 0;
			return index;
		}
		if (t <= term || index == 0) {
			*out_term = t;
			return index;
		}
		index--;
	}
}

static void say(struct raft *r, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Commits up to c. Every caller derives c from this log (a quorum's match, the entries just
 * appended, a snapshot just matched) or clamps a peer's figure to it first (handle_heartbeat),
 * so a c beyond the log is a bug of this member: it stops here, as etcd's commitTo panics.
 */
static void log_commit_to(struct raft_log *l, uint64_t c)
{
	assert(c <= log_last_index(l) && "raft: commit index beyond the log");
	if (c > l->committed)
		l->committed = c;
}

static int log_maybe_commit(struct raft_log *l, uint64_t mci, uint64_t term)
{
	if (mci > l->committed && log_term(l, mci) == term) {
		log_commit_to(l, mci);
		return 1;
	}
	return 0;
}

/*
 * Appends ents after (index, log_term) if the log matches there; sets *lastnewi. Returns 1 when
 * matched, 0 when not, a negative error on a bad message or ENOMEM.
 */
static int log_maybe_append(struct raft_log *l, uint64_t index, uint64_t log_term,
			    uint64_t committed, const struct raft_entry *ents, size_t n,
			    uint64_t *lastnewi)
{
	if (!log_match_term(l, index, log_term))
		return 0;
	*lastnewi = index + n;
	uint64_t ci = log_find_conflict(l, ents, n);
	if (ci) {
		if (ci <= l->committed)
			return RAFT_EINVAL; /* would overwrite a committed entry: not from a real leader */
		int rv = log_append(l, ents + (ci - index - 1), n - (size_t)(ci - index - 1));
		if (rv)
			return rv;
	}
	log_commit_to(l, committed < *lastnewi ? committed : *lastnewi);
	return 1;
}

static int log_has_next_ents(struct raft_log *l)
{
	uint64_t off = l->applied + 1;
	uint64_t first = log_first_index(l);
	if (off < first)
		off = first;
	return l->committed + 1 > off;
}

static void log_stable_to(struct raft_log *l, uint64_t i, uint64_t t)
{
	if (!l->un || i < l->uoffset || i >= l->uoffset + l->un)
		return;
	if (l->uents[i - l->uoffset].term != t)
		return;
	size_t k = (size_t)(i - l->uoffset + 1);
	memmove(l->uents, l->uents + k, (l->un - k) * sizeof *l->uents);
	l->un -= k;
	l->uoffset = i + 1;
	raft__payload_release_to(&l->pl, i, l->un == 0);
}

static void log_stable_snap_to(struct raft_log *l, uint64_t i)
{
	if (l->has_usnap && l->usnap.meta.index == i) {
		free(l->usnap.data);
		memset(&l->usnap, 0, sizeof l->usnap);
		l->has_usnap = 0;
	}
}

static int log_restore(struct raft_log *l, const struct raft_snapshot *s)
{
	uint8_t *copy = NULL;
	if (s->len) {
		copy = malloc(s->len);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, s->data, s->len);
	}
	free(l->usnap.data);
	l->usnap = *s;
	l->usnap.data = copy;
	l->has_usnap = 1;
	l->committed = s->meta.index;
	unstable_truncate(l, 0);
	raft__payload_release_all(&l->pl);
	l->uoffset = s->meta.index + 1;
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Progress.
 * ------------------------------------------------------------------------------------------- */

static struct progress *pr_get(struct raft *r, uint64_t id)
{
	for (size_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].id == id)
			return &r->prs[i];
	return NULL;
}

static void pr_reset_state(struct progress *p, int state)
{
	p->probe_sent = 0;
	p->pending_snapshot = 0;
	p->state = state;
	p->infl_start = p->infl_count = 0;
}

static void pr_become_probe(struct progress *p)
{
	if (p->state == RAFT_PROGRESS_SNAPSHOT) {
		uint64_t pending = p->pending_snapshot;
		pr_reset_state(p, RAFT_PROGRESS_PROBE);
		p->next = (p->match + 1 > pending + 1) ? p->match + 1 : pending + 1;
	} else {
		pr_reset_state(p, RAFT_PROGRESS_PROBE);
		p->next = p->match + 1;
	}
}

static void pr_become_replicate(struct progress *p)
{
	pr_reset_state(p, RAFT_PROGRESS_REPLICATE);
	p->next = p->match + 1;
}

static void pr_become_snapshot(struct progress *p, uint64_t i)
{
	pr_reset_state(p, RAFT_PROGRESS_SNAPSHOT);
	p->pending_snapshot = i;
}

static int pr_maybe_update(struct progress *p, uint64_t n)
{
	int updated = 0;
	if (p->match < n) {
		p->match = n;
		updated = 1;
		p->probe_sent = 0;
	}
	if (p->next < n + 1)
		p->next = n + 1;
	return updated;
}

static int pr_maybe_decr_to(struct progress *p, uint64_t rejected, uint64_t match_hint)
{
	if (p->state == RAFT_PROGRESS_REPLICATE) {
		if (rejected <= p->match)
			return 0; /* stale */
		p->next = p->match + 1;
		return 1;
	}
	if (p->next == 0 || p->next - 1 != rejected)
		return 0; /* stale */
	uint64_t n = rejected < match_hint + 1 ? rejected : match_hint + 1;
	if (n < p->match + 1)
		n = p->match + 1;
	p->next = n ? n : 1;
	p->probe_sent = 0;
	return 1;
}

static int infl_full(struct raft *r, struct progress *p)
{
	return p->infl_count >= r->max_inflight;
}

static void infl_add(struct raft *r, struct progress *p, uint64_t last)
{
	if (infl_full(r, p))
		return;
	p->infl[(p->infl_start + p->infl_count) % r->max_inflight] = last;
	p->infl_count++;
}

static void infl_free_le(struct raft *r, struct progress *p, uint64_t to)
{
	while (p->infl_count && p->infl[p->infl_start] <= to) {
		p->infl_start = (p->infl_start + 1) % r->max_inflight;
		p->infl_count--;
	}
}

static void infl_free_first(struct raft *r, struct progress *p)
{
	if (p->infl_count) {
		p->infl_start = (p->infl_start + 1) % r->max_inflight;
		p->infl_count--;
	}
}

static int pr_is_paused(struct raft *r, struct progress *p)
{
	switch (p->state) {
	case RAFT_PROGRESS_PROBE:
		return p->probe_sent;
	case RAFT_PROGRESS_REPLICATE:
		return infl_full(r, p);
	default:
		return 1;
	}
}

static int pr_add(struct raft *r, uint64_t id, int learner)
{
	if (r->n_prs >= RAFT_MAX_MEMBERS)
		return RAFT_EINVAL;
	struct progress *p = &r->prs[r->n_prs];
	memset(p, 0, sizeof *p);
	p->infl = calloc(r->max_inflight, sizeof *p->infl);
	if (!p->infl)
		return -ENOMEM;
	p->id = id;
	p->is_learner = learner;
	p->next = log_last_index(&r->log) + 1;
	p->recent_active = 1;
	p->vote = -1;
	r->n_prs++;
	return 0;
}

static void pr_remove(struct raft *r, uint64_t id)
{
	for (size_t i = 0; i < r->n_prs; i++) {
		if (r->prs[i].id == id) {
			free(r->prs[i].infl);
			r->prs[i] = r->prs[r->n_prs - 1];
			r->n_prs--;
			return;
		}
	}
}

static size_t n_voters(struct raft *r)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n_prs; i++)
		n += !r->prs[i].is_learner;
	return n;
}

static int is_voter(struct raft *r, uint64_t id)
{
	struct progress *p = pr_get(r, id);
	return p && !p->is_learner;
}

static int promotable(struct raft *r)
{
	return is_voter(r, r->id) && !r->log.has_usnap;
}

static int cmp_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

static int cmp_asc(const void *a, const void *b)
{
	return -cmp_desc(a, b);
}

/* The highest index a quorum of voters has. */
static uint64_t quorum_match(struct raft *r)
{
	uint64_t m[RAFT_MAX_MEMBERS];
	size_t n = 0;
	for (size_t i = 0; i < r->n_prs; i++)
		if (!r->prs[i].is_learner)
			m[n++] = r->prs[i].match;
	if (n == 0)
		return 0;
	qsort(m, n, sizeof m[0], cmp_desc);
	return m[n / 2];
}

/* ---------------------------------------------------------------------------------------------
 * Sending.
 * ------------------------------------------------------------------------------------------- */

static int is_response(int t)
{
	return t == RAFT_MSG_VOTE_RESP || t == RAFT_MSG_PRE_VOTE_RESP;
}

/* Queues a copy of m (payload copied into the arena). */
static int send_msg(struct raft *r, const struct raft_message *m)
{
	if (r->n_msgs == r->cap_msgs) {
		size_t cap = r->cap_msgs ? r->cap_msgs * 2 : 16;
		struct raft_message *n = realloc(r->msgs, cap * sizeof *n);
		if (!n)
			return -ENOMEM;
		r->msgs = n;
		r->cap_msgs = cap;
	}
	struct raft_message *d = &r->msgs[r->n_msgs];
	*d = *m;
	/* A forwarded MsgTransferLeader names the transferee in from; everything else is ours. */
	if (m->type != RAFT_MSG_TRANSFER_LEADER)
		d->from = r->id;
	if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PRE_VOTE || is_response(m->type)) {
		assert(m->term != 0);
	} else if (m->type != RAFT_MSG_PROP && m->type != RAFT_MSG_READ_INDEX &&
		   m->type != RAFT_MSG_TRANSFER_LEADER) {
		d->term = r->term;
	}
	if (m->n_entries) {
		size_t bytes = m->n_entries * sizeof *d->entries;
		for (size_t i = 0; i < m->n_entries; i++)
			bytes += (m->entries[i].len + 15) & ~(size_t)15;
		unsigned char *p = arena_alloc(&r->arenas[r->cur], bytes);
		if (!p)
			return -ENOMEM;
		d->entries = (struct raft_entry *)p;
		p += m->n_entries * sizeof *d->entries;
		for (size_t i = 0; i < m->n_entries; i++) {
			d->entries[i] = m->entries[i];
			if (m->entries[i].len) {
				memcpy(p, m->entries[i].data, m->entries[i].len);
				d->entries[i].data = p;
				p += (m->entries[i].len + 15) & ~(size_t)15;
			} else {
				d->entries[i].data = NULL;
			}
		}
	} else {
		d->entries = NULL;
	}
	if (m->has_snapshot && m->snapshot.len) {
		d->snapshot.data = arena_alloc(&r->arenas[r->cur], m->snapshot.len);
		if (!d->snapshot.data)
			return -ENOMEM;
		memcpy(d->snapshot.data, m->snapshot.data, m->snapshot.len);
	}
	if (m->context_len) {
		d->context = arena_alloc(&r->arenas[r->cur], m->context_len);
		if (!d->context)
			return -ENOMEM;
		memcpy(d->context, m->context, m->context_len);
	} else {
		d->context = NULL;
	}
	r->n_msgs++;
	return 0;
}

static int add_read_state(struct raft *r, uint64_t index, const uint8_t *ctx, size_t len)
{
	if (r->n_rs == r->cap_rs) {
		size_t cap = r->cap_rs ? r->cap_rs * 2 : 8;
		struct raft_read_state *n = realloc(r->rs, cap * sizeof *n);
		if (!n)
			return -ENOMEM;
		r->rs = n;
		r->cap_rs = cap;
	}
	struct raft_read_state *s = &r->rs[r->n_rs];
	s->index = index;
	s->context = NULL;
	s->context_len = len;
	if (len) {
		s->context = arena_alloc(&r->arenas[r->cur], len);
		if (!s->context)
			return -ENOMEM;
		memcpy(s->context, ctx, len);
	}
	r->n_rs++;
	return 0;
}

/* Sends an append (or a snapshot) to p if it is not paused; returns 1 when a message went out. */
static int maybe_send_append(struct raft *r, struct progress *p, int send_if_empty)
{
	if (pr_is_paused(r, p))
		return 0;
	struct raft_message m;
	memset(&m, 0, sizeof m);
	m.to = p->id;
	int terr;
	uint64_t term = log_term_err(&r->log, p->next - 1, &terr);
	int eerr = log_slice(&r->log, p->next, log_last_index(&r->log) + 1, r->max_msg_size,
			     &r->scratch);
	if (!terr && !eerr && r->scratch.n == 0 && !send_if_empty)
		return 0;
	if (terr || eerr) {
		if (!p->recent_active)
			return 0;
		const struct raft_snapshot *snap;
		if (r->log.has_usnap) {
			snap = &r->log.usnap;
		} else if (r->log.st->snapshot(r->log.st->data, &snap) != 0) {
			return 0;
		}
		if (snap->meta.index == 0)
			return 0;
		m.type = RAFT_MSG_SNAP;
		m.has_snapshot = 1;
		m.snapshot = *snap;
		pr_become_snapshot(p, snap->meta.index);
	} else {
		m.type = RAFT_MSG_APP;
		m.index = p->next - 1;
		m.log_term = term;
		m.entries = r->scratch.v;
		m.n_entries = r->scratch.n;
		m.commit = r->log.committed;
		if (m.n_entries) {
			if (p->state == RAFT_PROGRESS_REPLICATE) {
				uint64_t last = m.entries[m.n_entries - 1].index;
				p->next = last + 1;
				infl_add(r, p, last);
			} else if (p->state == RAFT_PROGRESS_PROBE) {
				p->probe_sent = 1;
			}
		}
	}
	send_msg(r, &m);
	return 1;
}

static void bcast_append(struct raft *r)
{
	for (size_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].id != r->id)
			maybe_send_append(r, &r->prs[i], 1);
}

static void send_heartbeat(struct raft *r, struct progress *p, const uint8_t *ctx, size_t len)
{
	struct raft_message m;
	memset(&m, 0, sizeof m);
	m.type = RAFT_MSG_HEARTBEAT;
	m.to = p->id;
	m.commit = p->match < r->log.committed ? p->match : r->log.committed;
	m.context = (uint8_t *)ctx;
	m.context_len = len;
	send_msg(r, &m);
}

static void bcast_heartbeat(struct raft *r, const uint8_t *ctx, size_t len)
{
	for (size_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].id != r->id)
			send_heartbeat(r, &r->prs[i], ctx, len);
}

/* ---------------------------------------------------------------------------------------------
 * ReadIndex bookkeeping.
 * ------------------------------------------------------------------------------------------- */

static void reads_clear(struct raft *r)
{
	for (size_t i = 0; i < r->n_reads; i++)
		free(r->reads[i].ctx);
	r->n_reads = 0;
	for (size_t i = 0; i < r->n_pending_ri; i++)
		free(r->pending_ri[i].context);
	r->n_pending_ri = 0;
}

static void respond_read(struct raft *r, uint64_t from, uint64_t index, const uint8_t *ctx,
			 size_t len)
{
	if (from == RAFT_NONE || from == r->id) {
		add_read_state(r, index, ctx, len);
		return;
	}
	struct raft_message m;
	memset(&m, 0, sizeof m);
	m.type = RAFT_MSG_READ_INDEX_RESP;
	m.to = from;
	m.index = index;
	m.context = (uint8_t *)ctx;
	m.context_len = len;
	send_msg(r, &m);
}

static int committed_in_current_term(struct raft *r)
{
	return log_term(&r->log, r->log.committed) == r->term;
}

/* Handles a ReadIndex request on the leader (m->from is the asker, m->context its ctx). */
static int leader_read_index(struct raft *r, const struct raft_message *m)
{
	if (n_voters(r) <= 1) {
		respond_read(r, m->from, r->log.committed, m->context, m->context_len);
		return 0;
	}
	if (!committed_in_current_term(r)) {
		if (r->n_pending_ri == r->cap_pending_ri) {
			size_t cap = r->cap_pending_ri ? r->cap_pending_ri * 2 : 8;
			struct raft_message *n = realloc(r->pending_ri, cap * sizeof *n);
			if (!n)
				return -ENOMEM;
			r->pending_ri = n;
			r->cap_pending_ri = cap;
		}
		struct raft_message *c = &r->pending_ri[r->n_pending_ri];
		memset(c, 0, sizeof *c);
		c->from = m->from;
		c->context_len = m->context_len;
		if (m->context_len) {
			c->context = malloc(m->context_len);
			if (!c->context)
				return -ENOMEM;
			memcpy(c->context, m->context, m->context_len);
		}
		r->n_pending_ri++;
		return 0;
	}
	/* A request with a context already pending is not added twice. */
	for (size_t i = 0; i < r->n_reads; i++)
		if (r->reads[i].ctx_len == m->context_len &&
		    (m->context_len == 0 || memcmp(r->reads[i].ctx, m->context, m->context_len) == 0))
			goto beat;
	if (r->n_reads == r->cap_reads) {
		size_t cap = r->cap_reads ? r->cap_reads * 2 : 8;
		struct read_req *n = realloc(r->reads, cap * sizeof *n);
		if (!n)
			return -ENOMEM;
		r->reads = n;
		r->cap_reads = cap;
	}
	struct read_req *q = &r->reads[r->n_reads];
	memset(q, 0, sizeof *q);
	q->index = r->log.committed;
	q->from = m->from;
	q->ctx_len = m->context_len;
	if (m->context_len) {
		q->ctx = malloc(m->context_len);
		if (!q->ctx)
			return -ENOMEM;
		memcpy(q->ctx, m->context, m->context_len);
	}
	q->acks[q->n_acks++] = r->id;
	r->n_reads++;
beat:
	bcast_heartbeat(r, m->context, m->context_len);
	return 0;
}

static void release_pending_read_index(struct raft *r)
{
	if (!r->n_pending_ri || !committed_in_current_term(r))
		return;
	size_t n = r->n_pending_ri;
	struct raft_message *v = r->pending_ri;
	r->pending_ri = NULL;
	r->n_pending_ri = r->cap_pending_ri = 0;
	for (size_t i = 0; i < n; i++) {
		leader_read_index(r, &v[i]);
		free(v[i].context);
	}
	free(v);
}

/* A heartbeat response carrying ctx came from id: release reads a quorum has confirmed. */
static void read_ack(struct raft *r, uint64_t id, const uint8_t *ctx, size_t len)
{
	size_t k;
	for (k = 0; k < r->n_reads; k++)
		if (r->reads[k].ctx_len == len && (len == 0 || memcmp(r->reads[k].ctx, ctx, len) == 0))
			break;
	if (k == r->n_reads)
		return;
	struct read_req *q = &r->reads[k];
	size_t j;
	for (j = 0; j < q->n_acks; j++)
		if (q->acks[j] == id)
			break;
	if (j == q->n_acks && q->n_acks < RAFT_MAX_MEMBERS)
		q->acks[q->n_acks++] = id;
	size_t votes = 0;
	for (j = 0; j < q->n_acks; j++)
		votes += is_voter(r, q->acks[j]);
	if (votes < n_voters(r) / 2 + 1)
		return;
	/* Everything up to and including k is confirmed. */
	for (size_t i = 0; i <= k; i++) {
		respond_read(r, r->reads[i].from, r->reads[i].index, r->reads[i].ctx,
			     r->reads[i].ctx_len);
		free(r->reads[i].ctx);
	}
	memmove(r->reads, r->reads + k + 1, (r->n_reads - k - 1) * sizeof *r->reads);
	r->n_reads -= k + 1;
}

/* ---------------------------------------------------------------------------------------------
 * State transitions.
 * ------------------------------------------------------------------------------------------- */

static void reset_randomized_timeout(struct raft *r)
{
	r->randomized_election_timeout =
		r->election_timeout + (int)(rng_next(&r->rng) % (uint64_t)r->election_timeout);
}

static void reset(struct raft *r, uint64_t term)
{
	if (r->term != term) {
		r->term = term;
		r->vote = RAFT_NONE;
	}
	r->lead = RAFT_NONE;
	r->election_elapsed = 0;
	r->heartbeat_elapsed = 0;
	reset_randomized_timeout(r);
	r->lead_transferee = RAFT_NONE;
	uint64_t last = log_last_index(&r->log);
	for (size_t i = 0; i < r->n_prs; i++) {
		struct progress *p = &r->prs[i];
		pr_reset_state(p, RAFT_PROGRESS_PROBE);
		p->match = 0;
		p->next = last + 1;
		p->recent_active = 0;
		p->vote = -1;
		if (p->id == r->id)
			p->match = last;
	}
	r->pending_conf_index = 0;
	reads_clear(r);
}

static void become_follower(struct raft *r, uint64_t term, uint64_t lead)
{
	reset(r, term);
	r->lead = lead;
	r->state = RAFT_FOLLOWER;
}

static void become_candidate(struct raft *r)
{
	reset(r, r->term + 1);
	r->vote = r->id;
	r->state = RAFT_CANDIDATE;
}

static void become_pre_candidate(struct raft *r)
{
	/* No term change and no vote: PreVote must not disturb anybody. */
	for (size_t i = 0; i < r->n_prs; i++)
		r->prs[i].vote = -1;
	r->state = RAFT_PRE_CANDIDATE;
	r->lead = RAFT_NONE;
}

static int append_entries(struct raft *r, struct raft_entry *ents, size_t n)
{
	uint64_t li = log_last_index(&r->log);
	for (size_t i = 0; i < n; i++) {
		ents[i].term = r->term;
		ents[i].index = li + 1 + i;
	}
	int rv = log_append(&r->log, ents, n);
	if (rv)
		return rv;
	struct progress *self = pr_get(r, r->id);
	if (self)
		pr_maybe_update(self, log_last_index(&r->log));
	return 0;
}

static int maybe_commit(struct raft *r)
{
	if (n_voters(r) == 0)
		return 0;
	return log_maybe_commit(&r->log, quorum_match(r), r->term);
}

static void become_leader(struct raft *r)
{
	reset(r, r->term);
	r->lead = r->id;
	r->state = RAFT_LEADER;
	struct progress *self = pr_get(r, r->id);
	if (self)
		pr_become_replicate(self);
	r->pending_conf_index = log_last_index(&r->log);
	struct raft_entry e = {0};
	append_entries(r, &e, 1);
	maybe_commit(r);
}

/* Records v from id; returns 1 won, -1 lost, 0 pending. */
static int poll(struct raft *r, uint64_t id, int granted)
{
	struct progress *p = pr_get(r, id);
	if (p && p->vote < 0)
		p->vote = granted;
	size_t yes = 0, no = 0, nv = 0;
	for (size_t i = 0; i < r->n_prs; i++) {
		if (r->prs[i].is_learner)
			continue;
		nv++;
		yes += r->prs[i].vote == 1;
		no += r->prs[i].vote == 0;
	}
	size_t q = nv / 2 + 1;
	if (yes >= q)
		return 1;
	if (no > nv - q)
		return -1;
	return 0;
}

static void campaign(struct raft *r, int kind)
{
	int vote_type;
	uint64_t term;
	if (kind == CAMPAIGN_PRE) {
		become_pre_candidate(r);
		vote_type = RAFT_MSG_PRE_VOTE;
		term = r->term + 1;
	} else {
		become_candidate(r);
		vote_type = RAFT_MSG_VOTE;
		term = r->term;
	}
	if (poll(r, r->id, 1) == 1) {
		if (kind == CAMPAIGN_PRE)
			campaign(r, CAMPAIGN_ELECTION);
		else {
			become_leader(r);
			bcast_append(r);
		}
		return;
	}
	for (size_t i = 0; i < r->n_prs; i++) {
		struct progress *p = &r->prs[i];
		if (p->id == r->id || p->is_learner)
			continue;
		struct raft_message m;
		memset(&m, 0, sizeof m);
		m.type = vote_type;
		m.to = p->id;
		m.term = term;
		m.index = log_last_index(&r->log);
		m.log_term = log_last_term(&r->log);
		if (kind == CAMPAIGN_TRANSFER) {
			m.context = (uint8_t *)campaign_transfer;
			m.context_len = sizeof campaign_transfer - 1;
		}
		send_msg(r, &m);
	}
}

/* Whether unapplied committed entries contain a conf change (no campaign until applied). */
static int pending_conf_unapplied(struct raft *r)
{
	if (r->log.committed <= r->log.applied)
		return 0;
	uint64_t lo = r->log.applied + 1;
	while (lo <= r->log.committed) {
		if (log_slice(&r->log, lo, r->log.committed + 1, UINT64_MAX, &r->scratch) != 0)
			return 0;
		if (r->scratch.n == 0)
			return 0;
		for (size_t i = 0; i < r->scratch.n; i++)
			if (r->scratch.v[i].type == RAFT_ENTRY_CONF_CHANGE)
				return 1;
		lo += r->scratch.n;
	}
	return 0;
}

static void hup(struct raft *r, int kind)
{
	if (r->state == RAFT_LEADER || !promotable(r))
		return;
	if (pending_conf_unapplied(r))
		return;
	if (kind != CAMPAIGN_TRANSFER && r->pre_vote)
		campaign(r, CAMPAIGN_PRE);
	else
		campaign(r, kind == CAMPAIGN_TRANSFER ? CAMPAIGN_TRANSFER : CAMPAIGN_ELECTION);
}

static int quorum_active(struct raft *r)
{
	size_t act = 0;
	for (size_t i = 0; i < r->n_prs; i++) {
		struct progress *p = &r->prs[i];
		if (p->is_learner)
			continue;
		if (p->id == r->id || p->recent_active)
			act++;
		if (p->id != r->id)
			p->recent_active = 0;
	}
	for (size_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].is_learner && r->prs[i].id != r->id)
			r->prs[i].recent_active = 0;
	return act >= n_voters(r) / 2 + 1;
}

/* ---------------------------------------------------------------------------------------------
 * Step.
 * ------------------------------------------------------------------------------------------- */

static void send_timeout_now(struct raft *r, uint64_t to)
{
	struct raft_message m;
	memset(&m, 0, sizeof m);
	m.type = RAFT_MSG_TIMEOUT_NOW;
	m.to = to;
	send_msg(r, &m);
}

static int step_leader(struct raft *r, const struct raft_message *m)
{
	switch (m->type) {
	case RAFT_MSG_BEAT:
		bcast_heartbeat(r, NULL, 0);
		return 0;
	case RAFT_MSG_CHECK_QUORUM:
		if (!quorum_active(r))
			become_follower(r, r->term, RAFT_NONE);
		return 0;
	case RAFT_MSG_PROP: {
		if (m->n_entries == 0)
			return RAFT_EINVAL;
		if (!pr_get(r, r->id) || r->lead_transferee != RAFT_NONE)
			return RAFT_EPROPOSALDROPPED;
		struct raft_entry *ents = (struct raft_entry *)m->entries; /* fields rewritten below */
		for (size_t i = 0; i < m->n_entries; i++) {
			if (ents[i].type == RAFT_ENTRY_CONF_CHANGE) {
				if (r->pending_conf_index > r->log.applied) {
					/* A second change while one is pending: refused. */
					if (m->from == r->id)
						return RAFT_ECONFPENDING;
					ents[i].type = RAFT_ENTRY_NORMAL;
					ents[i].len = 0;
				} else {
					r->pending_conf_index = log_last_index(&r->log) + i + 1;
				}
			}
		}
		int rv = append_entries(r, ents, m->n_entries);
		if (rv)
			return rv;
		maybe_commit(r);
		/* Batching: the appends go out when the application next asks for a Ready. */
		r->append_pending = 1;
		return 0;
	}
	case RAFT_MSG_READ_INDEX:
		return leader_read_index(r, m);
	default:
		break;
	}

	struct progress *p = pr_get(r, m->from);
	if (!p)
		return 0; /* from an unknown member: ignore */
	switch (m->type) {
	case RAFT_MSG_APP_RESP:
		p->recent_active = 1;
		if (m->reject) {
			uint64_t hint = m->reject_hint;
			if (m->log_term > 0) {
				uint64_t t;
				hint = log_find_conflict_by_term(&r->log, m->reject_hint, m->log_term, &t);
			}
			if (pr_maybe_decr_to(p, m->index, hint)) {
				if (p->state == RAFT_PROGRESS_REPLICATE)
					pr_become_probe(p);
				maybe_send_append(r, p, 1);
			}
		} else {
			if (m->index > log_last_index(&r->log))
				return RAFT_EINVAL; /* acks what we never sent */
			int old_paused = pr_is_paused(r, p);
			if (pr_maybe_update(p, m->index)) {
				if (p->state == RAFT_PROGRESS_PROBE)
					pr_become_replicate(p);
				else if (p->state == RAFT_PROGRESS_SNAPSHOT &&
					 p->match >= p->pending_snapshot)
					pr_become_probe(p);
				else if (p->state == RAFT_PROGRESS_REPLICATE)
					infl_free_le(r, p, m->index);
				if (maybe_commit(r)) {
					release_pending_read_index(r);
					bcast_append(r);
				} else if (old_paused) {
					maybe_send_append(r, p, 1);
				}
				while (maybe_send_append(r, p, 0)) {
				}
				if (m->from == r->lead_transferee && p->match == log_last_index(&r->log))
					send_timeout_now(r, m->from);
			}
		}
		return 0;
	case RAFT_MSG_HEARTBEAT_RESP:
		p->recent_active = 1;
		p->probe_sent = 0;
		if (p->state == RAFT_PROGRESS_REPLICATE && infl_full(r, p))
			infl_free_first(r, p);
		if (p->match < log_last_index(&r->log))
			maybe_send_append(r, p, 1);
		if (m->context_len)
			read_ack(r, m->from, m->context, m->context_len);
		return 0;
	case RAFT_MSG_SNAP_STATUS:
		if (p->state != RAFT_PROGRESS_SNAPSHOT)
			return 0;
		if (m->reject)
			p->pending_snapshot = 0;
		pr_become_probe(p);
		p->probe_sent = 1; /* wait for the next heartbeat response before probing */
		return 0;
	case RAFT_MSG_UNREACHABLE:
		if (p->state == RAFT_PROGRESS_REPLICATE)
			pr_become_probe(p);
		return 0;
	case RAFT_MSG_TRANSFER_LEADER: {
		if (p->is_learner)
			return 0;
		uint64_t to = m->from;
		if (r->lead_transferee != RAFT_NONE) {
			if (r->lead_transferee == to)
				return 0;
			r->lead_transferee = RAFT_NONE;
		}
		if (to == r->id)
			return 0;
		r->election_elapsed = 0;
		r->lead_transferee = to;
		if (p->match == log_last_index(&r->log))
			send_timeout_now(r, to);
		else
			maybe_send_append(r, p, 1);
		return 0;
	}
	default:
		return 0;
	}
}

static void send_append_resp(struct raft *r, uint64_t to, uint64_t index, int reject,
			     uint64_t hint, uint64_t log_term)
{
	struct raft_message m;
	memset(&m, 0, sizeof m);
	m.type = RAFT_MSG_APP_RESP;
	m.to = to;
	m.index = index;
	m.reject = reject;
	m.reject_hint = hint;
	m.log_term = log_term;
	send_msg(r, &m);
}

static int handle_append(struct raft *r, const struct raft_message *m)
{
	if (m->index < r->log.committed) {
		send_append_resp(r, m->from, r->log.committed, 0, 0, 0);
		return 0;
	}
	uint64_t lastnewi = 0;
	int rv = log_maybe_append(&r->log, m->index, m->log_term, m->commit, m->entries,
				  m->n_entries, &lastnewi);
	if (rv < 0)
		return rv;
	if (rv == 1) {
		send_append_resp(r, m->from, lastnewi, 0, 0, 0);
		return 0;
	}
	uint64_t hint = m->index < log_last_index(&r->log) ? m->index : log_last_index(&r->log);
	uint64_t hint_term;
	hint = log_find_conflict_by_term(&r->log, hint, m->log_term, &hint_term);
	send_append_resp(r, m->from, m->index, 1, hint, hint_term);
	return 0;
}

static void handle_heartbeat(struct raft *r, const struct raft_message *m)
{
	/*
	 * A leader sends min(this member's match, its commit): never beyond what this member
	 * acknowledged. More means this log lost acknowledged entries, or the sender is no real
	 * leader (peers are not authenticated): said, and clamped rather than trusted (etcd panics).
	 */
	uint64_t commit = m->commit, last = log_last_index(&r->log);
	if (commit > last) {
		say(r, RAFT_LOG_ERROR, "%016" PRIx64 ": heartbeat from %016" PRIx64 " at term %" PRIu64
		    " commits index %" PRIu64 ", beyond this log's last index %" PRIu64 ": the log "
		    "lost entries it acknowledged, or the sender is not a real leader; committing "
		    "only to %" PRIu64, r->id, m->from, m->term, commit, last, last);
		commit = last;
	}
	log_commit_to(&r->log, commit);
	struct raft_message resp;
	memset(&resp, 0, sizeof resp);
	resp.type = RAFT_MSG_HEARTBEAT_RESP;
	resp.to = m->from;
	resp.context = m->context;
	resp.context_len = m->context_len;
	send_msg(r, &resp);
}

int raft_conf_has(const struct raft_conf_state *cs, uint64_t id)
{
	for (size_t i = 0; i < cs->n_voters; i++)
		if (cs->voters[i] == id)
			return 1;
	for (size_t i = 0; i < cs->n_learners; i++)
		if (cs->learners[i] == id)
			return 1;
	return 0;
}

static int conf_valid(const struct raft_conf_state *cs)
{
	return cs->n_voters <= RAFT_MAX_MEMBERS && cs->n_learners <= RAFT_MAX_MEMBERS &&
	       cs->n_voters + cs->n_learners <= RAFT_MAX_MEMBERS;
}

/* Replaces the progress set with cs. */
static int set_conf(struct raft *r, const struct raft_conf_state *cs)
{
	while (r->n_prs)
		pr_remove(r, r->prs[0].id);
	for (size_t i = 0; i < cs->n_voters; i++)
		if (!pr_get(r, cs->voters[i]) && cs->voters[i] != RAFT_NONE) {
			int rv = pr_add(r, cs->voters[i], 0);
			if (rv)
				return rv;
		}
	for (size_t i = 0; i < cs->n_learners; i++)
		if (!pr_get(r, cs->learners[i]) && cs->learners[i] != RAFT_NONE) {
			int rv = pr_add(r, cs->learners[i], 1);
			if (rv)
				return rv;
		}
	struct progress *self = pr_get(r, r->id);
	if (self)
		self->match = log_last_index(&r->log);
	return 0;
}

/* One line for the caller's log (raft_config.logger), formatted as printf does. */
static void say(struct raft *r, int level, const char *fmt, ...)
{
	if (!r->logger)
		return;
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	r->logger(r->logger_arg, level, line);
}

static int handle_snapshot(struct raft *r, const struct raft_message *m)
{
	const struct raft_snapshot *s = &m->snapshot;
	if (!m->has_snapshot || !conf_valid(&s->meta.conf))
		return RAFT_EINVAL;
	int restored = 0;
	if (s->meta.index > r->log.committed && !raft_conf_has(&s->meta.conf, r->id))
		say(r, RAFT_LOG_WARN, "%016" PRIx64 " refused the snapshot at index %" PRIu64 " term %"
		    PRIu64 " from %016" PRIx64 ": its membership does not include this member",
		    r->id, s->meta.index, s->meta.term, m->from); /* as etcd's raft, which says so */
	if (s->meta.index > r->log.committed && raft_conf_has(&s->meta.conf, r->id)) {
		if (log_match_term(&r->log, s->meta.index, s->meta.term)) {
			log_commit_to(&r->log, s->meta.index);
		} else {
			if (r->in_ready && r->log.has_usnap) {
				/* The outstanding Ready points at the old snapshot: free it at advance. */
				free(r->retired_snap);
				r->retired_snap = r->log.usnap.data;
				r->log.usnap.data = NULL;
			}
			int rv = log_restore(&r->log, s);
			if (rv)
				return rv;
			rv = set_conf(r, &s->meta.conf);
			if (rv)
				return rv;
			restored = 1;
		}
	}
	send_append_resp(r, m->from, restored ? log_last_index(&r->log) : r->log.committed, 0, 0,
			 0);
	return 0;
}

static int step_candidate(struct raft *r, const struct raft_message *m)
{
	int my_resp = r->state == RAFT_PRE_CANDIDATE ? RAFT_MSG_PRE_VOTE_RESP : RAFT_MSG_VOTE_RESP;
	switch (m->type) {
	case RAFT_MSG_PROP:
		return RAFT_EPROPOSALDROPPED;
	case RAFT_MSG_APP:
		become_follower(r, m->term, m->from);
		return handle_append(r, m);
	case RAFT_MSG_HEARTBEAT:
		become_follower(r, m->term, m->from);
		handle_heartbeat(r, m);
		return 0;
	case RAFT_MSG_SNAP:
		become_follower(r, m->term, m->from);
		return handle_snapshot(r, m);
	case RAFT_MSG_READ_INDEX:
		return RAFT_EPROPOSALDROPPED;
	default:
		break;
	}
	if (m->type == my_resp) {
		int res = poll(r, m->from, !m->reject);
		if (res == 1) {
			if (r->state == RAFT_PRE_CANDIDATE) {
				campaign(r, CAMPAIGN_ELECTION);
			} else {
				become_leader(r);
				bcast_append(r);
			}
		} else if (res == -1) {
			become_follower(r, r->term, RAFT_NONE);
		}
	}
	return 0;
}

static int forward(struct raft *r, const struct raft_message *m)
{
	struct raft_message f = *m;
	f.to = r->lead;
	f.term = 0;
	return send_msg(r, &f);
}

static int step_follower(struct raft *r, const struct raft_message *m)
{
	switch (m->type) {
	case RAFT_MSG_PROP:
		if (r->lead == RAFT_NONE || r->disable_forwarding)
			return RAFT_EPROPOSALDROPPED;
		for (size_t i = 0; i < m->n_entries; i++)
			if (m->entries[i].type == RAFT_ENTRY_CONF_CHANGE && m->from == r->id &&
			    r->pending_conf_index > r->log.applied)
				return RAFT_ECONFPENDING;
		return forward(r, m);
	case RAFT_MSG_APP:
		r->election_elapsed = 0;
		r->lead = m->from;
		return handle_append(r, m);
	case RAFT_MSG_HEARTBEAT:
		r->election_elapsed = 0;
		r->lead = m->from;
		handle_heartbeat(r, m);
		return 0;
	case RAFT_MSG_SNAP:
		r->election_elapsed = 0;
		r->lead = m->from;
		return handle_snapshot(r, m);
	case RAFT_MSG_TRANSFER_LEADER:
	case RAFT_MSG_READ_INDEX:
		if (r->lead == RAFT_NONE)
			return RAFT_EPROPOSALDROPPED;
		return forward(r, m);
	case RAFT_MSG_TIMEOUT_NOW:
		hup(r, CAMPAIGN_TRANSFER);
		return 0;
	case RAFT_MSG_READ_INDEX_RESP:
		return add_read_state(r, m->index, m->context, m->context_len);
	default:
		return 0;
	}
}

static int is_local(int t)
{
	return t == RAFT_MSG_HUP || t == RAFT_MSG_BEAT || t == RAFT_MSG_UNREACHABLE ||
	       t == RAFT_MSG_SNAP_STATUS || t == RAFT_MSG_CHECK_QUORUM;
}

/* The heart of it: etcd's raft.Step. m->term == 0 marks a local or forwarded message. */
static int step(struct raft *r, const struct raft_message *m)
{
	if (m->term == 0) {
		/* Local, or a forwarded MsgProp / MsgReadIndex / MsgTransferLeader. */
	} else if (m->term > r->term) {
		if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PRE_VOTE) {
			int force = m->context_len == sizeof campaign_transfer - 1 &&
				    memcmp(m->context, campaign_transfer, m->context_len) == 0;
			int in_lease = r->check_quorum && r->lead != RAFT_NONE &&
				       r->election_elapsed < r->election_timeout;
			if (!force && in_lease)
				return 0; /* a leader is alive: ignore the disruption */
		}
		if (m->type == RAFT_MSG_PRE_VOTE) {
			/* Never change term on a PreVote. */
		} else if (m->type == RAFT_MSG_PRE_VOTE_RESP && !m->reject) {
			/* A granted PreVote carries the future term; keep ours until we win. */
		} else if (m->type == RAFT_MSG_APP || m->type == RAFT_MSG_HEARTBEAT ||
			   m->type == RAFT_MSG_SNAP) {
			become_follower(r, m->term, m->from);
		} else {
			become_follower(r, m->term, RAFT_NONE);
		}
	} else if (m->term < r->term) {
		if ((r->check_quorum || r->pre_vote) &&
		    (m->type == RAFT_MSG_HEARTBEAT || m->type == RAFT_MSG_APP)) {
			/* Tell a stale leader (maybe rejoining after a partition) the new term. */
			send_append_resp(r, m->from, 0, 0, 0, 0);
		} else if (m->type == RAFT_MSG_PRE_VOTE) {
			struct raft_message resp;
			memset(&resp, 0, sizeof resp);
			resp.type = RAFT_MSG_PRE_VOTE_RESP;
			resp.to = m->from;
			resp.term = r->term;
			resp.reject = 1;
			send_msg(r, &resp);
		}
		return 0;
	}

	switch (m->type) {
	case RAFT_MSG_HUP:
		hup(r, r->pre_vote ? CAMPAIGN_PRE : CAMPAIGN_ELECTION);
		return 0;
	case RAFT_MSG_VOTE:
	case RAFT_MSG_PRE_VOTE: {
		int can_vote = r->vote == m->from || (r->vote == RAFT_NONE && r->lead == RAFT_NONE) ||
			       (m->type == RAFT_MSG_PRE_VOTE && m->term > r->term);
		struct raft_message resp;
		memset(&resp, 0, sizeof resp);
		resp.type = m->type == RAFT_MSG_VOTE ? RAFT_MSG_VOTE_RESP : RAFT_MSG_PRE_VOTE_RESP;
		resp.to = m->from;
		if (can_vote && log_is_up_to_date(&r->log, m->index, m->log_term)) {
			resp.term = m->term;
			send_msg(r, &resp);
			if (m->type == RAFT_MSG_VOTE) {
				r->election_elapsed = 0;
				r->vote = m->from;
			}
		} else {
			resp.term = r->term;
			resp.reject = 1;
			send_msg(r, &resp);
		}
		return 0;
	}
	default:
		break;
	}
	switch (r->state) {
	case RAFT_LEADER:
		return step_leader(r, m);
	case RAFT_CANDIDATE:
	case RAFT_PRE_CANDIDATE:
		return step_candidate(r, m);
	default:
		return step_follower(r, m);
	}
}

/* Rejects what a peer could only send by mistake or malice. */
static int validate(struct raft *r, const struct raft_message *m)
{
	if (m->type < 0 || m->type >= RAFT_MSG_TYPE_COUNT || is_local(m->type))
		return RAFT_EINVAL;
	if (m->from == RAFT_NONE || m->from == r->id)
		return RAFT_EINVAL;
	if (m->n_entries && !m->entries)
		return RAFT_EINVAL;
	if (m->context_len && !m->context)
		return RAFT_EINVAL;
	int termless = m->type == RAFT_MSG_PROP || m->type == RAFT_MSG_READ_INDEX ||
		       m->type == RAFT_MSG_TRANSFER_LEADER;
	if (!termless && m->term == 0)
		return RAFT_EINVAL;
	if (termless && m->term != 0)
		return RAFT_EINVAL;
	for (size_t i = 0; i < m->n_entries; i++) {
		const struct raft_entry *e = &m->entries[i];
		if (e->len && !e->data)
			return RAFT_EINVAL;
		if (e->type != RAFT_ENTRY_NORMAL && e->type != RAFT_ENTRY_CONF_CHANGE)
			return RAFT_EINVAL;
		if (m->type == RAFT_MSG_APP) {
			if (e->index != m->index + 1 + i || e->term > m->term || e->term == 0)
				return RAFT_EINVAL;
			if (i == 0 ? e->term < m->log_term : e->term < m->entries[i - 1].term)
				return RAFT_EINVAL;
		}
	}
	if (m->type == RAFT_MSG_APP && m->index == UINT64_MAX)
		return RAFT_EINVAL;
	if (m->type == RAFT_MSG_SNAP && (!m->has_snapshot || m->snapshot.meta.index == 0 ||
					  (m->snapshot.len && !m->snapshot.data)))
		return RAFT_EINVAL;
	return 0;
}

int raft_step(struct raft *r, const struct raft_message *m)
{
	int rv = validate(r, m);
	if (rv)
		return rv;
	if (m->type == RAFT_MSG_PROP) {
		/* Entries are rewritten (term, index) on the leader: work on a shallow copy. */
		struct raft_entry small[16];
		struct raft_entry *ents = m->n_entries <= 16 ? small : malloc(m->n_entries * sizeof *ents);
		if (!ents)
			return -ENOMEM;
		memcpy(ents, m->entries, m->n_entries * sizeof *ents);
		struct raft_message c = *m;
		c.entries = ents;
		rv = step(r, &c);
		if (ents != small)
			free(ents);
		return rv;
	}
	return step(r, m);
}

/* ---------------------------------------------------------------------------------------------
 * Public API.
 * ------------------------------------------------------------------------------------------- */

int raft_new(const struct raft_config *cfg, const struct raft_storage *storage, struct raft **out)
{
	if (!cfg || !storage || !out || cfg->id == RAFT_NONE || cfg->heartbeat_tick <= 0 ||
	    cfg->election_tick <= cfg->heartbeat_tick)
		return RAFT_EINVAL;
	struct raft *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	r->id = cfg->id;
	r->log.st = storage;
	r->election_timeout = cfg->election_tick;
	r->heartbeat_timeout = cfg->heartbeat_tick;
	r->max_msg_size = cfg->max_size_per_msg;
	r->max_committed_size = cfg->max_committed_size_per_ready ? cfg->max_committed_size_per_ready
								   : UINT64_MAX;
	r->max_inflight = cfg->max_inflight_msgs ? cfg->max_inflight_msgs : 256;
	r->check_quorum = cfg->check_quorum;
	r->logger = cfg->logger;
	r->logger_arg = cfg->logger_arg;
	r->pre_vote = cfg->pre_vote;
	r->disable_forwarding = cfg->disable_proposal_forwarding;
	r->rng = cfg->seed ^ (cfg->id * 0x9e3779b97f4a7c15ull);

	struct raft_hard_state hs;
	struct raft_conf_state cs;
	memset(&hs, 0, sizeof hs);
	memset(&cs, 0, sizeof cs);
	int rv = storage->initial_state(storage->data, &hs, &cs);
	if (rv)
		goto err;
	rv = RAFT_EINVAL;
	if (!conf_valid(&cs))
		goto err;
	uint64_t first = log_first_index(&r->log);
	r->log.committed = first - 1;
	r->log.applied = first - 1;
	r->log.uoffset = log_last_index(&r->log) + 1;
	rv = set_conf(r, &cs);
	if (rv)
		goto err;
	if (hs.term || hs.vote || hs.commit) {
		if (hs.commit < r->log.committed || hs.commit > log_last_index(&r->log)) {
			rv = RAFT_EINVAL;
			goto err;
		}
		r->log.committed = hs.commit;
		r->term = hs.term;
		r->vote = hs.vote;
	}
	if (cfg->applied) {
		if (cfg->applied > r->log.committed || cfg->applied < r->log.applied) {
			rv = RAFT_EINVAL;
			goto err;
		}
		r->log.applied = cfg->applied;
	}
	become_follower(r, r->term, RAFT_NONE);
	r->vote = hs.vote; /* become_follower keeps the vote of the same term */
	r->prev_hs.term = r->term;
	r->prev_hs.vote = r->vote;
	r->prev_hs.commit = r->log.committed;
	r->prev_ss.lead = RAFT_NONE;
	r->prev_ss.state = RAFT_FOLLOWER;
	*out = r;
	return 0;
err:
	raft_free(r);
	return rv;
}

void raft_free(struct raft *r)
{
	if (!r)
		return;
	while (r->n_prs)
		pr_remove(r, r->prs[0].id);
	unstable_truncate(&r->log, 0);
	raft__payload_free(&r->log.pl);
	free(r->log.uents);
	free(r->log.usnap.data);
	reads_clear(r);
	free(r->reads);
	free(r->pending_ri);
	free(r->msgs);
	free(r->rs);
	free(r->scratch.v);
	free(r->retired_snap);
	arena_free(&r->arenas[0]);
	arena_free(&r->arenas[1]);
	free(r);
}

void raft_tick(struct raft *r)
{
	if (r->state == RAFT_LEADER) {
		r->heartbeat_elapsed++;
		r->election_elapsed++;
		if (r->election_elapsed >= r->election_timeout) {
			r->election_elapsed = 0;
			if (r->check_quorum) {
				struct raft_message m = {.type = RAFT_MSG_CHECK_QUORUM, .from = r->id};
				step(r, &m);
			}
			if (r->state == RAFT_LEADER && r->lead_transferee != RAFT_NONE)
				r->lead_transferee = RAFT_NONE; /* transfer timed out */
		}
		if (r->state != RAFT_LEADER)
			return;
		if (r->heartbeat_elapsed >= r->heartbeat_timeout) {
			r->heartbeat_elapsed = 0;
			struct raft_message m = {.type = RAFT_MSG_BEAT, .from = r->id};
			step(r, &m);
		}
		return;
	}
	r->election_elapsed++;
	if (promotable(r) && r->election_elapsed >= r->randomized_election_timeout) {
		r->election_elapsed = 0;
		struct raft_message m = {.type = RAFT_MSG_HUP, .from = r->id};
		step(r, &m);
	}
}

int raft_campaign(struct raft *r)
{
	struct raft_message m = {.type = RAFT_MSG_HUP, .from = r->id};
	return step(r, &m);
}

int raft_propose(struct raft *r, const uint8_t *data, size_t len)
{
	if (len && !data)
		return RAFT_EINVAL;
	struct raft_entry e = {.type = RAFT_ENTRY_NORMAL, .data = (uint8_t *)data, .len = len};
	struct raft_message m = {.type = RAFT_MSG_PROP, .from = r->id, .entries = &e,
				 .n_entries = 1};
	return step(r, &m);
}

int raft_propose_conf_change(struct raft *r, const struct raft_conf_change *cc)
{
	size_t n = raft_conf_change_encoded_size(cc);
	uint8_t small[256];
	uint8_t *buf = n <= sizeof small ? small : malloc(n);
	if (!buf)
		return -ENOMEM;
	raft_conf_change_encode(cc, buf);
	struct raft_entry e = {.type = RAFT_ENTRY_CONF_CHANGE, .data = buf, .len = n};
	struct raft_message m = {.type = RAFT_MSG_PROP, .from = r->id, .entries = &e,
				 .n_entries = 1};
	int rv = step(r, &m);
	if (buf != small)
		free(buf);
	return rv;
}

static void fill_conf(struct raft *r, struct raft_conf_state *cs)
{
	memset(cs, 0, sizeof *cs);
	for (size_t i = 0; i < r->n_prs; i++) {
		if (r->prs[i].is_learner)
			cs->learners[cs->n_learners++] = r->prs[i].id;
		else
			cs->voters[cs->n_voters++] = r->prs[i].id;
	}
	qsort(cs->voters, cs->n_voters, sizeof cs->voters[0], cmp_asc);
	qsort(cs->learners, cs->n_learners, sizeof cs->learners[0], cmp_asc);
}

int raft_apply_conf_change(struct raft *r, const struct raft_conf_change *cc,
			   struct raft_conf_state *cs)
{
	int rv = 0;
	if (cc->node_id == RAFT_NONE)
		goto out; /* an empty change: nothing to do */
	struct progress *p = pr_get(r, cc->node_id);
	int added = 0;
	switch (cc->type) {
	case RAFT_CONF_ADD_NODE:
		if (p) {
			p->is_learner = 0; /* promotes a learner */
		} else {
			rv = pr_add(r, cc->node_id, 0);
			added = rv == 0;
		}
		break;
	case RAFT_CONF_ADD_LEARNER_NODE:
		if (!p) {
			rv = pr_add(r, cc->node_id, 1);
			added = rv == 0;
		}
		/* A voter is never demoted by this change. */
		break;
	case RAFT_CONF_REMOVE_NODE:
		if (p) {
			pr_remove(r, cc->node_id);
			if (r->lead_transferee == cc->node_id)
				r->lead_transferee = RAFT_NONE;
		}
		break;
	case RAFT_CONF_UPDATE_NODE:
		break;
	default:
		rv = RAFT_EINVAL;
		break;
	}
	if (r->state == RAFT_LEADER) {
		if (!is_voter(r, r->id)) {
			/*
			 * Removed (or never a voter): tell the others the change committed (heartbeats
			 * carry the commit index, so they apply it too and need no quorum of the old
			 * configuration to go on), then step down.
			 */
			maybe_commit(r);
			bcast_heartbeat(r, NULL, 0);
			become_follower(r, r->term, RAFT_NONE);
		} else if (maybe_commit(r)) {
			bcast_append(r);
		} else if (added) {
			maybe_send_append(r, pr_get(r, cc->node_id), 1); /* start probing the newcomer */
		}
	}
out:
	if (cs)
		fill_conf(r, cs);
	return rv;
}

int raft_read_index(struct raft *r, const uint8_t *ctx, size_t len)
{
	if (len && !ctx)
		return RAFT_EINVAL;
	struct raft_message m = {.type = RAFT_MSG_READ_INDEX, .from = r->id,
				 .context = (uint8_t *)ctx, .context_len = len};
	return step(r, &m);
}

int raft_transfer_leader(struct raft *r, uint64_t to)
{
	struct raft_message m = {.type = RAFT_MSG_TRANSFER_LEADER, .from = to};
	return step(r, &m);
}

void raft_report_unreachable(struct raft *r, uint64_t id)
{
	struct raft_message m = {.type = RAFT_MSG_UNREACHABLE, .from = id};
	step(r, &m);
}

void raft_report_snapshot(struct raft *r, uint64_t id, int ok)
{
	struct raft_message m = {.type = RAFT_MSG_SNAP_STATUS, .from = id, .reject = !ok};
	step(r, &m);
}

static void current_hs(struct raft *r, struct raft_hard_state *hs)
{
	hs->term = r->term;
	hs->vote = r->vote;
	hs->commit = r->log.committed;
}

/* Sends the appends that proposals since the last Ready call for, many entries per message. */
static void flush_appends(struct raft *r)
{
	if (!r->append_pending)
		return;
	r->append_pending = 0;
	if (r->state != RAFT_LEADER)
		return;
	for (size_t i = 0; i < r->n_prs; i++) {
		struct progress *p = &r->prs[i];
		if (p->id == r->id)
			continue;
		if (maybe_send_append(r, p, 1))
			while (maybe_send_append(r, p, 0)) {
			}
	}
}

int raft_has_ready(struct raft *r)
{
	flush_appends(r);
	struct raft_hard_state hs;
	current_hs(r, &hs);
	if (r->lead != r->prev_ss.lead || r->state != r->prev_ss.state)
		return 1;
	if (memcmp(&hs, &r->prev_hs, sizeof hs) != 0)
		return 1;
	return r->log.has_usnap || r->log.un || r->n_msgs || r->n_rs || log_has_next_ents(&r->log);
}

/* Copies n entries and their payloads into the current arena (one allocation at most). */
static struct raft_entry *copy_entries(struct raft *r, const struct raft_entry *src, size_t n)
{
	size_t bytes = n * sizeof(struct raft_entry);
	for (size_t i = 0; i < n; i++)
		bytes += (src[i].len + 15) & ~(size_t)15;
	unsigned char *p = arena_alloc(&r->arenas[r->cur], bytes);
	if (!p)
		return NULL;
	struct raft_entry *d = (struct raft_entry *)p;
	p += n * sizeof(struct raft_entry);
	for (size_t i = 0; i < n; i++) {
		d[i] = src[i];
		d[i].data = NULL;
		if (src[i].len) {
			memcpy(p, src[i].data, src[i].len);
			d[i].data = p;
			p += (src[i].len + 15) & ~(size_t)15;
		}
	}
	return d;
}

int raft_ready(struct raft *r, struct raft_ready *rd)
{
	memset(rd, 0, sizeof *rd);
	if (r->in_ready)
		return RAFT_EINVAL; /* one Ready at a time: advance the previous one first */
	flush_appends(r);
	if (r->lead != r->prev_ss.lead || r->state != r->prev_ss.state) {
		rd->has_soft_state = 1;
		rd->soft_state.lead = r->lead;
		rd->soft_state.state = r->state;
	}
	current_hs(r, &rd->hard_state);
	if (memcmp(&rd->hard_state, &r->prev_hs, sizeof rd->hard_state) != 0)
		rd->has_hard_state = 1;
	if (r->log.un) {
		/* A copy, so the log may change (steps, proposals) while the application persists. */
		rd->entries = copy_entries(r, r->log.uents, r->log.un);
		if (!rd->entries)
			return -ENOMEM;
		rd->n_entries = r->log.un;
	}
	if (r->log.has_usnap) {
		rd->has_snapshot = 1;
		rd->snapshot = r->log.usnap;
	}
	if (log_has_next_ents(&r->log)) {
		uint64_t lo = r->log.applied + 1, first = log_first_index(&r->log);
		if (lo < first)
			lo = first;
		int rv = log_slice(&r->log, lo, r->log.committed + 1, r->max_committed_size,
				   &r->scratch);
		if (rv)
			return rv;
		rd->committed_entries = copy_entries(r, r->scratch.v, r->scratch.n);
		if (!rd->committed_entries)
			return -ENOMEM;
		rd->n_committed_entries = r->scratch.n;
	}
	rd->messages = r->msgs;
	rd->n_messages = r->n_msgs;
	rd->read_states = r->rs;
	rd->n_read_states = r->n_rs;
	/* What the core produces from now on (raft_apply_conf_change) goes to the next Ready. */
	r->handed_msgs = r->n_msgs;
	r->handed_rs = r->n_rs;
	r->rd_last_index = r->log.un ? r->log.uoffset + r->log.un - 1 : 0;
	r->rd_last_term = r->log.un ? r->log.uents[r->log.un - 1].term : 0;
	r->cur ^= 1;
	r->in_ready = 1;
	rd->must_sync = rd->n_entries != 0 || rd->hard_state.term != r->prev_hs.term ||
			rd->hard_state.vote != r->prev_hs.vote;
	return 0;
}

void raft_advance(struct raft *r, struct raft_ready *rd)
{
	if (!r->in_ready)
		return;
	r->in_ready = 0;
	if (rd->has_soft_state)
		r->prev_ss = rd->soft_state;
	if (rd->has_hard_state)
		r->prev_hs = rd->hard_state;
	if (rd->n_committed_entries) {
		uint64_t a = rd->committed_entries[rd->n_committed_entries - 1].index;
		if (a > r->log.applied && a <= r->log.committed)
			r->log.applied = a;
	}
	if (rd->n_entries)
		log_stable_to(&r->log, r->rd_last_index, r->rd_last_term);
	if (rd->has_snapshot) {
		log_stable_snap_to(&r->log, rd->snapshot.meta.index);
		/* The application restored its state from the snapshot. */
		if (rd->snapshot.meta.index > r->log.applied)
			r->log.applied = rd->snapshot.meta.index;
	}
	/* Drop what rd handed out; keep what was queued since (its payloads are in the other arena). */
	if (r->n_msgs > r->handed_msgs)
		memmove(r->msgs, r->msgs + r->handed_msgs,
			(r->n_msgs - r->handed_msgs) * sizeof *r->msgs);
	r->n_msgs -= r->handed_msgs;
	if (r->n_rs > r->handed_rs)
		memmove(r->rs, r->rs + r->handed_rs, (r->n_rs - r->handed_rs) * sizeof *r->rs);
	r->n_rs -= r->handed_rs;
	r->handed_msgs = r->handed_rs = 0;
	arena_reset(&r->arenas[r->cur ^ 1]);
	free(r->retired_snap);
	r->retired_snap = NULL;
	memset(rd, 0, sizeof *rd);
}

void raft_hard_state(struct raft *r, struct raft_hard_state *hs)
{
	current_hs(r, hs);
}

void raft_status(struct raft *r, struct raft_status *st)
{
	memset(st, 0, sizeof *st);
	st->id = r->id;
	current_hs(r, &st->hard_state);
	st->soft_state.lead = r->lead;
	st->soft_state.state = r->state;
	st->applied = r->log.applied;
	st->last_index = log_last_index(&r->log);
	st->lead_transferee = r->lead_transferee;
	fill_conf(r, &st->conf);
	if (r->state == RAFT_LEADER) {
		for (size_t i = 0; i < r->n_prs; i++) {
			struct raft_status_progress *sp = &st->progress[st->n_progress++];
			sp->id = r->prs[i].id;
			sp->match = r->prs[i].match;
			sp->next = r->prs[i].next;
			sp->state = r->prs[i].state;
			sp->is_learner = r->prs[i].is_learner;
			sp->recent_active = r->prs[i].recent_active;
		}
	}
}
