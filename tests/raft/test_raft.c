/*
 * test_raft.c: scenarios of the Raft paper and thesis, and of etcd raft's tests, run on net.h.
 *
 * Elections (randomized timeouts, split vote, a stale log cannot win, PreVote, CheckQuorum),
 * replication (Figure 7 log states repaired with fast backtracking, Figure 8: only current-term
 * entries commit by counting, batching, inflight window), proposals (forwarding, dropped without a
 * leader), membership (learners, add, promote, remove, removed leader steps down, one change at a
 * time), snapshots to lagging members and restart from snapshot plus entries, leadership transfer,
 * ReadIndex, and bad input.
 */
#include "check.h"
#include "net.h"
#include "raft.h"

/* Members 1..nn with the given logs (terms of entries 1..len) and current term; voters 1..nn. */
static void net_init_logs(struct net *nw, int nn, const uint64_t *const *terms, const size_t *lens,
			  uint64_t term, int pre_vote)
{
	memset(nw, 0, sizeof *nw);
	nw->nn = nn;
	net_default_cfg(&nw->cfg);
	nw->cfg.pre_vote = pre_vote;
	struct raft_conf_state cs = {0};
	for (int i = 1; i <= nn; i++)
		cs.voters[cs.n_voters++] = (uint64_t)i;
	for (int i = 1; i <= nn; i++) {
		struct tnode *t = &nw->n[i];
		t->id = (uint64_t)i;
		t->ms = raft_memory_storage_new();
		raft_memory_storage_set_conf_state(t->ms, &cs);
		for (size_t k = 0; k < lens[i - 1]; k++) {
			struct raft_entry e = {.term = terms[i - 1][k], .index = k + 1,
					       .data = (uint8_t *)"x", .len = 1};
			CHECK_EQ(raft_memory_storage_append(t->ms, &e, 1), 0);
		}
		struct raft_hard_state hs = {.term = term};
		raft_memory_storage_set_hard_state(t->ms, &hs);
		raft_memory_storage_bind(t->ms, &t->st);
		net_start(nw, (uint64_t)i);
	}
}

static int propose_cc(struct net *nw, uint64_t on, int type, uint64_t node)
{
	struct raft_conf_change cc = {.type = type, .node_id = node, .id = 7};
	int rv = raft_propose_conf_change(nw->n[on].r, &cc);
	net_ready(nw, on);
	return rv;
}

/* ---- elections ---- */

CHECK_TEST(leader_election)
{
	struct net nw;
	net_init(&nw, 3, 0, 0);
	net_elect(&nw, 1);
	CHECK_EQ(net_leader(&nw), 1);
	CHECK_EQ(net_term(&nw, 1), 2);
	for (uint64_t i = 2; i <= 3; i++) {
		CHECK_EQ(net_state(&nw, i), RAFT_FOLLOWER);
		CHECK_EQ(net_status(&nw, i).soft_state.lead, 1);
	}
	/* The leader's empty entry of its term commits everywhere. */
	for (uint64_t i = 1; i <= 3; i++)
		CHECK_EQ(net_commit(&nw, i), 4);
	net_free(&nw);
}

CHECK_TEST(election_timeout_is_randomized)
{
	/* A lone member campaigns after a timeout in [election, 2*election) ticks, varying by seed. */
	int seen[20] = {0};
	for (uint64_t seed = 1; seed <= 200; seed++) {
		struct net nw;
		struct raft_config cfg;
		net_default_cfg(&cfg);
		cfg.seed = seed;
		net_init_cfg(&nw, 3, 3, &cfg);
		net_stabilize(&nw);
		net_isolate(&nw, 1);
		int ticks = 0;
		while (net_state(&nw, 1) == RAFT_FOLLOWER && ticks < 100) {
			raft_tick(nw.n[1].r);
			ticks++;
		}
		CHECK_GE(ticks, 10);
		CHECK_LT(ticks, 20);
		seen[ticks]++;
		net_free(&nw);
	}
	int distinct = 0;
	for (int i = 0; i < 20; i++)
		distinct += seen[i] > 0;
	CHECK_GE(distinct, 5);
}

CHECK_TEST(split_vote_then_recovers)
{
	struct net nw;
	net_init(&nw, 4, 0, 0);
	net_stabilize(&nw);
	/* 1 and 2 campaign at once; 3 hears 1 first, 4 hears 2 first: 2 votes each of 4, no winner. */
	net_isolate(&nw, 1);
	net_isolate(&nw, 2);
	raft_campaign(nw.n[1].r);
	raft_campaign(nw.n[2].r);
	net_ready(&nw, 1);
	net_ready(&nw, 2);
	net_heal(&nw);
	nw.cut[1][4] = nw.cut[2][3] = 1;
	net_stabilize(&nw);
	CHECK_EQ(net_state(&nw, 1), RAFT_CANDIDATE);
	CHECK_EQ(net_state(&nw, 2), RAFT_CANDIDATE);
	CHECK_EQ(net_leader(&nw), 0);
	net_heal(&nw);
	/* Randomized timeouts break the tie within a few rounds. */
	for (int i = 0; i < 200 && !net_leader(&nw); i++)
		net_tick_all(&nw, 1);
	CHECK(net_leader(&nw) != 0);
	CHECK_GE(net_term(&nw, net_leader(&nw)), 3);
	net_free(&nw);
}

CHECK_TEST(stale_log_cannot_win)
{
	struct net nw;
	net_init(&nw, 3, 0, 0);
	net_elect(&nw, 1);
	net_isolate(&nw, 3);
	net_propose(&nw, 1, "a");
	net_propose(&nw, 1, "b");
	net_stabilize(&nw);
	CHECK_EQ(net_commit(&nw, 2), 6);
	net_heal(&nw);
	net_isolate(&nw, 1);
	/* 3 misses entries 5 and 6: 2 refuses its vote. */
	raft_campaign(nw.n[3].r);
	net_stabilize(&nw);
	CHECK(net_state(&nw, 3) != RAFT_LEADER);
	raft_campaign(nw.n[2].r);
	net_stabilize(&nw);
	CHECK_EQ(net_state(&nw, 2), RAFT_LEADER);
	CHECK_EQ(net_last_index(&nw, 3), net_last_index(&nw, 2));
	net_free(&nw);
}

CHECK_TEST(prevote_keeps_partitioned_member_from_disrupting)
{
	struct net nw;
	net_init(&nw, 3, 1, 1);
	net_elect(&nw, 1);
	uint64_t term = net_term(&nw, 1);
	net_isolate(&nw, 3);
	for (int i = 0; i < 100; i++)
		net_tick(&nw, 3, 1);
	/* PreVote rounds failed: its term did not move. */
	CHECK_EQ(net_term(&nw, 3), term);
	CHECK_EQ(net_state(&nw, 3), RAFT_PRE_CANDIDATE);
	net_heal(&nw);
	net_tick_all(&nw, 3);
	CHECK_EQ(net_leader(&nw), 1);
	CHECK_EQ(net_term(&nw, 1), term);
	CHECK_EQ(net_status(&nw, 3).soft_state.lead, 1);
	net_free(&nw);
}

CHECK_TEST(without_prevote_rejoining_member_disrupts)
{
	/* The contrast: without PreVote the rejoining member's higher term unseats the leader. */
	struct net nw;
	net_init(&nw, 3, 0, 0);
	net_elect(&nw, 1);
	uint64_t term = net_term(&nw, 1);
	net_isolate(&nw, 3);
	for (int i = 0; i < 100; i++)
		net_tick(&nw, 3, 1);
	CHECK_GT(net_term(&nw, 3), term + 1);
	net_heal(&nw);
	for (int i = 0; i < 50 && net_term(&nw, 1) == term; i++)
		net_tick_all(&nw, 1);
	CHECK_GT(net_term(&nw, 1), term);
	net_free(&nw);
}

CHECK_TEST(check_quorum_leader_steps_down)
{
	struct net nw;
	net_init(&nw, 3, 0, 1);
	net_elect(&nw, 1);
	net_isolate(&nw, 1);
	for (int i = 0; i < 9; i++)
		net_tick(&nw, 1, 1);
	CHECK_EQ(net_state(&nw, 1), RAFT_LEADER);
	/* The first check finds the activity from before the cut; the second finds none. */
	for (int i = 0; i < 11; i++)
		net_tick(&nw, 1, 1);
	CHECK_EQ(net_state(&nw, 1), RAFT_FOLLOWER);
	CHECK_EQ(net_status(&nw, 1).soft_state.lead, 0);
	net_free(&nw);
}

CHECK_TEST(check_quorum_lease_ignores_vote)
{
	/* A follower that hears from its leader ignores a higher-term vote request (leader lease). */
	struct net nw;
	net_init(&nw, 3, 0, 1);
	net_elect(&nw, 1);
	uint64_t term = net_term(&nw, 2);
	struct raft_message m = {.type = RAFT_MSG_VOTE, .from = 3, .to = 2, .term = term + 5,
				 .index = 100, .log_term = term};
	CHECK_EQ(raft_step(nw.n[2].r, &m), 0);
	CHECK_EQ(net_term(&nw, 2), term);
	CHECK_EQ(net_status(&nw, 2).soft_state.lead, 1);
	net_free(&nw);
}

/* ---- replication ---- */

CHECK_TEST(figure7_logs_repaired)
{
	/* Raft paper Figure 7: the leader of term 8 and followers (a)-(f). */
	static const uint64_t ld[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
	static const uint64_t a[] = {1, 1, 1, 4, 4, 5, 5, 6, 6};
	static const uint64_t b[] = {1, 1, 1, 4};
	static const uint64_t c[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6};
	static const uint64_t d[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7};
	static const uint64_t e[] = {1, 1, 1, 4, 4, 4, 4};
	static const uint64_t f[] = {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3};
	const uint64_t *const terms[] = {ld, a, b, c, d, e, f};
	const size_t lens[] = {10, 9, 4, 11, 12, 7, 11};
	struct net nw;
	net_init_logs(&nw, 7, terms, lens, 7, 0);
	CHECK_EQ(raft_campaign(nw.n[1].r), 0);
	net_stabilize(&nw);
	CHECK_EQ(net_leader(&nw), 1);
	CHECK_EQ(net_term(&nw, 1), 8);
	/* Every follower's log now equals the leader's: 10 entries and the term-8 empty one. */
	for (uint64_t id = 1; id <= 7; id++) {
		CHECK_EQ(net_last_index(&nw, id), 11);
		for (uint64_t i = 1; i <= 10; i++)
			CHECK_EQ(net_log_term(&nw, id, i), ld[i - 1]);
		CHECK_EQ(net_log_term(&nw, id, 11), 8);
		CHECK_EQ(net_commit(&nw, id), 11);
	}
	/* Fast backtracking: one rejection per follower that needed it, not one per entry. */
	CHECK_LE(nw.sent_rejects, 8);
	net_free(&nw);
}

CHECK_TEST(figure8_commits_only_current_term_by_counting)
{
	/* Leader 1 of term 3 holds entry 2 of term 2; a majority having entry 2 does not commit it. */
	static const uint64_t l1[] = {1, 2};
	static const uint64_t l2[] = {1};
	static const uint64_t l3[] = {1};
	const uint64_t *const terms[] = {l1, l2, l3};
	const size_t lens[] = {2, 1, 1};
	struct net nw;
	net_init_logs(&nw, 3, terms, lens, 2, 0);
	nw.drop_type[RAFT_MSG_APP] = 1; /* hold replication: we play the followers' answers */
	raft_campaign(nw.n[1].r);
	net_stabilize(&nw);
	CHECK_EQ(net_state(&nw, 1), RAFT_LEADER);
	CHECK_EQ(net_term(&nw, 1), 3);
	CHECK_EQ(net_last_index(&nw, 1), 3); /* its empty entry of term 3 */
	struct raft_message ack = {.type = RAFT_MSG_APP_RESP, .from = 2, .to = 1, .term = 3,
				   .index = 2};
	CHECK_EQ(raft_step(nw.n[1].r, &ack), 0);
	net_ready(&nw, 1);
	CHECK_EQ(net_commit(&nw, 1), 0); /* entry 2 is on 2 of 3, but of term 2 */
	ack.index = 3;
	CHECK_EQ(raft_step(nw.n[1].r, &ack), 0);
	net_ready(&nw, 1);
	CHECK_EQ(net_commit(&nw, 1), 3); /* the term-3 entry commits, and entry 2 with it */
	net_free(&nw);
}

CHECK_TEST(heartbeat_carries_commit)
{
	struct net nw;
	net_init(&nw, 3, 0, 0);
	net_elect(&nw, 1);
	nw.drop_type[RAFT_MSG_HEARTBEAT] = 0;
	net_propose(&nw, 1, "a");
	net_stabilize(&nw);
	CHECK_EQ(net_commit(&nw, 2), 5);
	/* Lose the append that would tell 3 about commit 6, then heartbeats bring it. */
	nw.cut[1][3] = 1;
	net_propose(&nw, 1, "b");
	net_stabilize(&nw);
	CHECK_EQ(net_commit(&nw, 3), 5);
	net_heal(&nw);
	net_tick_all(&nw, 2);
	CHECK_EQ(net_commit(&nw, 3), 6);
	net_free(&nw);
}

CHECK_TEST(batching_many_proposals_one_ready_one_append)
{
	struct net nw;
	net_init(&nw, 3, 0, 0);
	net_elect(&nw, 1);
	for (int i = 0; i < 100; i++)
		CHECK_EQ(raft_propose(nw.n[1].r, (const uint8_t *)"p", 1), 0);
	struct raft_ready rd;
	CHECK_EQ(raft_ready(nw.n[1].r, &rd), 0);
	CHECK_EQ(rd.n_entries, 100);
	CHECK_EQ(rd.must_sync, 1);
	raft_memory_storage_append(nw.n[1].ms, rd.entries, rd.n_entries);
	size_t apps = 0, most = 0;
	for (size_t i = 0; i < rd.n_messages; i++) {
		if (rd.messages[i].type == RAFT_MSG_APP) {
			apps++;
			if (rd.messages[i].n_entries > most)
				most = rd.messages[i].n_entries;
		}
		net_send(&nw, &rd.messages[i]);
	}
	raft_advance(nw.n[1].r, &rd);
	CHECK_GE(most, 50);
	CHECK_LE(apps, 2 * 8);
	net_stabilize(&nw);
	CHECK_EQ(net_commit(&nw, 3), 104);
	net_free(&nw);
}

CHECK_TEST(max_size_per_msg_and_inflight_window)
{
	struct net nw;
	struct raft_config cfg;
	net_default_cfg(&cfg);
	cfg.max_size_per_msg = 10; /* ~10 one-byte entries per append */
	cfg.max_inflight_msgs = 2;
	net_init_cfg(&nw, 2, 2, &cfg);
	net_elect(&nw, 1);
	nw.drop_type[RAFT_MSG_APP_RESP] = 1; /* acks never come back: the window fills */
	for (int i = 0; i < 100; i++)
		raft_propose(nw.n[1].r, (const uint8_t *)"p", 1);
	memset(nw.sent, 0, sizeof nw.sent);
	nw.max_app_entries = 0;
	net_stabilize(&nw);
	CHECK_EQ(nw.sent[RAFT_MSG_APP], 2);
	CHECK_LE(nw.max_app_entries, 10);
	nw.drop_type[RAFT_MSG_APP_RESP] = 0;
	net_tick_all(&nw, 30);
	CHECK_EQ(net_commit(&nw, 2), 103);
	net_free(&nw);
}

CHECK_TEST(report_unreachable_moves_to_probe)
{
	struct net nw;
	net_init(&nw, 3, 0, 0);
	net_elect(&nw, 1);
	struct raft_status st = net_status(&nw, 1);
	for (size_t i = 0; i < st.n_progress; i++)
		if (st.progress[i].id == 2)
			CHECK_EQ(st.progress[i].state, RAFT_PROGRESS_REPLICATE);
	raft_report_unreachable(nw.n[1].r, 2);
	st = net_status(&nw, 1);
	for (size_t i = 0; i < st.n_progress; i++)
		if (st.progress[i].id == 2)
			CHECK_EQ(st.progress[i].state, RAFT_PROGRESS_PROBE);
	/* Replication resumes on the next heartbeat round. */
	net_propose(&nw, 1, "x");
	net_tick_all(&nw, 2);
	CHECK_EQ(net_commit(&nw, 2), net_last_index(&nw, 1));
	net_free(&nw);
}

CHECK_TEST(learner_does_not_count_for_commit)
{
	struct net nw;
	struct raft_config cfg;
	net_default_cfg(&cfg);
	net_init_cfg(&nw, 3, 2, &cfg);
	net_elect(&nw, 1);
	CHECK_EQ(propose_cc(&nw, 1, RAFT_CONF_ADD_LEARNER_NODE, 3), 0);
	net_stabilize(&nw);
	uint64_t c = net_commit(&nw, 1);
	/* With voter 2 cut off, leader + learner are not a quorum. */
	net_isolate(&nw, 2);
	net_propose(&nw, 1, "x");
	net_stabilize(&nw);
	CHECK_EQ(net_commit(&nw, 1), c);
	CHECK_EQ(net_last_index(&nw, 3), c + 1);
	net_heal(&nw);
	net_tick_all(&nw, 2);
	CHECK_EQ(net_commit(&nw, 1), c + 1);
	net_free(&nw);
}

CHECK_TEST(ready_stays_valid_while_core_keeps_running)
{
	/* Between ready and advance the loop may step, tick and propose (fsync off-loop). */
	struct net nw;
	net_init(&nw, 3, 0, 0);
	net_elect(&nw, 1);
	for (int i = 0; i < 50; i++)
		raft_propose(nw.n[1].r, (const uint8_t *)"first-batch", 11);
	struct raft_ready rd;
	CHECK_EQ(raft_ready(nw.n[1].r, &rd), 0);
	CHECK_EQ(rd.n_entries, 50);
	struct raft_ready rd2;
	CHECK_EQ(raft_ready(nw.n[1].r, &rd2), RAFT_EINVAL); /* one Ready at a time */
	/* Lots of activity meanwhile: more proposals (the unstable log grows and reallocates). */
	for (int i = 0; i < 2000; i++)
		raft_propose(nw.n[1].r, (const uint8_t *)"second-batch", 12);
	raft_tick(nw.n[1].r);
	/* rd is intact. */
	for (size_t i = 0; i < rd.n_entries; i++) {
		CHECK_EQ(rd.entries[i].len, 11);
		CHECK_MEM_EQ(rd.entries[i].data, "first-batch", 11);
	}
	CHECK_EQ(raft_memory_storage_append(nw.n[1].ms, rd.entries, rd.n_entries), 0);
	for (size_t i = 0; i < rd.n_messages; i++)
		net_send(&nw, &rd.messages[i]);
	raft_advance(nw.n[1].r, &rd);
	/* The rest comes in the next Ready. */
	CHECK_EQ(raft_ready(nw.n[1].r, &rd2), 0);
	CHECK_EQ(rd2.n_entries, 2000);
	CHECK_EQ(rd2.entries[0].index, 55);
	CHECK_MEM_EQ(rd2.entries[1999].data, "second-batch", 12);
	CHECK_EQ(raft_memory_storage_append(nw.n[1].ms, rd2.entries, rd2.n_entries), 0);
	for (size_t i = 0; i < rd2.n_messages; i++)
		net_send(&nw, &rd2.messages[i]);
	raft_advance(nw.n[1].r, &rd2);
	net_stabilize(&nw);
	CHECK_EQ(net_commit(&nw, 3), 2054);
	net_free(&nw);
}

/* ---- proposals ---- */

CHECK_TEST(proposal_without_leader_is_dropped)
{
	struct net nw;
	net_init(&nw, 3, 0, 0);
	CHECK_EQ(raft_propose(nw.n[1].r, (const uint8_t *)"x", 1), RAFT_EPROPOSALDROPPED);
	CHECK_EQ(raft_read_index(nw.n[1].r, (const uint8_t *)"x", 1), RAFT_EPROPOSALDROPPED);
	net_free(&nw);
}

CHECK_TEST(follower_forwards_proposal)
{
	struct net nw;
	net_init(&nw, 3, 0, 0);
	net_elect(&nw, 1);
	CHECK_EQ(net_propose(&nw, 3, "from-3"), 0);
	net_stabilize(&nw);
	for (uint64_t i = 1; i <= 3; i++) {
		CHECK_EQ(net_commit(&nw, i), 5);
		const struct raft_entry *e;
		size_t n;
		CHECK_EQ(nw.n[i].st.entries(nw.n[i].st.data, 5, 6, UINT64_MAX, &e, &n), 0);
		CHECK_EQ(e->len, 6);
		CHECK_MEM_EQ(e->data, "from-3", 6);
	}
	net_free(&nw);
}

CHECK_TEST(forwarding_disabled_drops)
{
	struct net nw;
	struct raft_config cfg;
	net_default_cfg(&cfg);
	cfg.disable_proposal_forwarding = 1;
	net_init_cfg(&nw, 3, 3, &cfg);
	net_elect(&nw, 1);
	CHECK_EQ(net_propose(&nw, 2, "x"), RAFT_EPROPOSALDROPPED);
	net_free(&nw);
}

/* ---- membership ---- */

CHECK_TEST(learner_joins_never_votes_then_promoted)
{
	struct net nw;
	struct raft_config cfg;
	net_default_cfg(&cfg);
	net_init_cfg(&nw, 3, 2, &cfg); /* voters 1,2; member 3 starts empty */
	net_elect(&nw, 1);
	CHECK_EQ(propose_cc(&nw, 1, RAFT_CONF_ADD_LEARNER_NODE, 3), 0);
	net_stabilize(&nw);
	struct raft_status st = net_status(&nw, 1);
	CHECK_EQ(st.conf.n_voters, 2);
	CHECK_EQ(st.conf.n_learners, 1);
	CHECK_EQ(net_last_index(&nw, 3), net_last_index(&nw, 1)); /* it got the whole log */
	CHECK_EQ(nw.n[3].conf.n_learners, 1);
	/* A learner never campaigns. */
	net_isolate(&nw, 3);
	for (int i = 0; i < 100; i++)
		net_tick(&nw, 3, 1);
	CHECK_EQ(net_state(&nw, 3), RAFT_FOLLOWER);
	net_heal(&nw);
	/* Nor does its vote count: with 1 cut off, 2 cannot win on 3's vote. */
	net_isolate(&nw, 1);
	raft_campaign(nw.n[2].r);
	net_stabilize(&nw);
	CHECK_EQ(net_state(&nw, 2), RAFT_CANDIDATE);
	net_heal(&nw);
	uint64_t l = net_settle(&nw, 200);
	CHECK(l == 1 || l == 2);
	/* Promote. */
	CHECK_EQ(propose_cc(&nw, l, RAFT_CONF_ADD_NODE, 3), 0);
	net_stabilize(&nw);
	st = net_status(&nw, l);
	CHECK_EQ(st.conf.n_voters, 3);
	CHECK_EQ(st.conf.n_learners, 0);
	/* Now 3 can lead. */
	raft_campaign(nw.n[3].r);
	net_stabilize(&nw);
	CHECK_EQ(net_leader(&nw), 3);
	net_free(&nw);
}

CHECK_TEST(one_conf_change_at_a_time)
{
	struct net nw;
	net_init(&nw, 3, 0, 0);
	net_elect(&nw, 1);
	CHECK_EQ(propose_cc(&nw, 1, RAFT_CONF_ADD_LEARNER_NODE, 4), 0);
	CHECK_EQ(propose_cc(&nw, 1, RAFT_CONF_ADD_LEARNER_NODE, 5), RAFT_ECONFPENDING);
	net_stabilize(&nw);
	CHECK_EQ(propose_cc(&nw, 1, RAFT_CONF_ADD_LEARNER_NODE, 5), 0);
	net_stabilize(&nw);
	CHECK_EQ(net_status(&nw, 1).conf.n_learners, 2);
	net_free(&nw);
}

CHECK_TEST(removed_member_and_quorum_shrinks)
{
	struct net nw;
	net_init(&nw, 3, 0, 0);
	net_elect(&nw, 1);
	CHECK_EQ(propose_cc(&nw, 1, RAFT_CONF_REMOVE_NODE, 3), 0);
	net_stabilize(&nw);
	CHECK_EQ(net_status(&nw, 1).conf.n_voters, 2);
	net_crash(&nw, 3);
	net_propose(&nw, 1, "after");
	net_stabilize(&nw);
	CHECK_EQ(net_commit(&nw, 2), net_last_index(&nw, 1));
	/* Messages from the removed member are ignored by the leader. */
	struct raft_message m = {.type = RAFT_MSG_APP_RESP, .from = 3, .to = 1,
				 .term = net_term(&nw, 1), .index = 2};
	CHECK_EQ(raft_step(nw.n[1].r, &m), 0);
	net_free(&nw);
}

CHECK_TEST(removed_leader_steps_down)
{
	struct net nw;
	net_init(&nw, 3, 0, 0);
	net_elect(&nw, 1);
	CHECK_EQ(propose_cc(&nw, 1, RAFT_CONF_REMOVE_NODE, 1), 0);
	net_stabilize(&nw);
	CHECK_EQ(net_state(&nw, 1), RAFT_FOLLOWER);
	CHECK_EQ(net_status(&nw, 2).conf.n_voters, 2);
	/* It never campaigns again; the others elect a leader among themselves. */
	net_crash(&nw, 1);
	uint64_t l = net_settle(&nw, 200);
	CHECK(l == 2 || l == 3);
	net_free(&nw);
}

/* ---- snapshots ---- */

static void snapshot_and_compact(struct net *nw, uint64_t id)
{
	struct tnode *t = &nw->n[id];
	uint8_t data[8];
	memcpy(data, &t->applied, 8);
	CHECK_EQ(raft_memory_storage_create_snapshot(t->ms, t->applied, &t->conf, data, 8), 0);
	CHECK_EQ(raft_memory_storage_compact(t->ms, t->applied), 0);
}

CHECK_TEST(snapshot_to_lagging_follower)
{
	struct net nw;
	net_init(&nw, 3, 0, 0);
	net_elect(&nw, 1);
	net_isolate(&nw, 3);
	for (int i = 0; i < 50; i++)
		net_propose(&nw, 1, "entry");
	net_stabilize(&nw);
	snapshot_and_compact(&nw, 1);
	net_heal(&nw);
	net_tick_all(&nw, 3);
	CHECK_EQ(nw.n[3].snapshots_restored, 1);
	CHECK_EQ(net_commit(&nw, 3), net_commit(&nw, 1));
	CHECK_EQ(net_last_index(&nw, 3), net_last_index(&nw, 1));
	/* The leader is back to replicating to 3. */
	struct raft_status st = net_status(&nw, 1);
	for (size_t i = 0; i < st.n_progress; i++)
		if (st.progress[i].id == 3)
			CHECK_EQ(st.progress[i].state, RAFT_PROGRESS_REPLICATE);
	net_propose(&nw, 1, "more");
	net_stabilize(&nw);
	CHECK_EQ(net_commit(&nw, 3), net_commit(&nw, 1));
	net_free(&nw);
}

CHECK_TEST(snapshot_failure_reported_then_retried)
{
	struct net nw;
	net_init(&nw, 3, 0, 0);
	net_elect(&nw, 1);
	net_isolate(&nw, 3);
	for (int i = 0; i < 10; i++)
		net_propose(&nw, 1, "entry");
	net_stabilize(&nw);
	snapshot_and_compact(&nw, 1);
	net_heal(&nw);
	nw.drop_type[RAFT_MSG_SNAP] = 1; /* net.h reports the failure */
	net_tick_all(&nw, 3);
	CHECK_EQ(nw.n[3].snapshots_restored, 0);
	nw.drop_type[RAFT_MSG_SNAP] = 0;
	net_tick_all(&nw, 3);
	CHECK_EQ(nw.n[3].snapshots_restored, 1);
	CHECK_EQ(net_commit(&nw, 3), net_commit(&nw, 1));
	net_free(&nw);
}

CHECK_TEST(restart_from_snapshot_plus_entries)
{
	struct net nw;
	net_init(&nw, 3, 0, 0);
	net_elect(&nw, 1);
	for (int i = 0; i < 20; i++)
		net_propose(&nw, 1, "entry");
	net_stabilize(&nw);
	snapshot_and_compact(&nw, 2);
	for (int i = 0; i < 5; i++)
		net_propose(&nw, 1, "later");
	net_stabilize(&nw);
	uint64_t commit = net_commit(&nw, 2), last = net_last_index(&nw, 2);
	uint64_t term = net_term(&nw, 2);
	net_crash(&nw, 2);
	net_start(&nw, 2);
	struct raft_status st = net_status(&nw, 2);
	CHECK_EQ(st.hard_state.commit, commit);
	CHECK_EQ(st.hard_state.term, term);
	CHECK_EQ(st.last_index, last);
	CHECK_EQ(st.applied, 24);
	CHECK_EQ(st.conf.n_voters, 3);
	/* The first Ready hands out only the entries after the snapshot. */
	struct raft_ready rd;
	CHECK_EQ(raft_ready(nw.n[2].r, &rd), 0);
	CHECK_EQ(rd.n_committed_entries, 5);
	CHECK_EQ(rd.committed_entries[0].index, 25);
	raft_advance(nw.n[2].r, &rd);
	net_free(&nw);
}

/* ---- leadership transfer ---- */

CHECK_TEST(leadership_transfer)
{
	struct net nw;
	net_init(&nw, 3, 1, 1);
	net_elect(&nw, 1);
	CHECK_EQ(raft_transfer_leader(nw.n[1].r, 2), 0);
	net_stabilize(&nw);
	CHECK_EQ(net_leader(&nw), 2);
	CHECK_EQ(net_state(&nw, 1), RAFT_FOLLOWER);
	net_free(&nw);
}

CHECK_TEST(leadership_transfer_asked_on_follower)
{
	/* A follower forwards the request to the leader, naming the transferee. */
	struct net nw;
	net_init(&nw, 3, 1, 1);
	net_elect(&nw, 1);
	CHECK_EQ(raft_transfer_leader(nw.n[2].r, 3), 0);
	net_stabilize(&nw);
	CHECK_EQ(net_leader(&nw), 3);
	net_free(&nw);
}

CHECK_TEST(leadership_transfer_catches_up_target)
{
	struct net nw;
	net_init(&nw, 3, 0, 1);
	net_elect(&nw, 1);
	net_isolate(&nw, 3);
	for (int i = 0; i < 10; i++)
		net_propose(&nw, 1, "x");
	net_stabilize(&nw);
	net_heal(&nw);
	CHECK_EQ(raft_transfer_leader(nw.n[1].r, 3), 0);
	CHECK_EQ(net_status(&nw, 1).lead_transferee, 3);
	/* Proposals are refused while leadership moves. */
	CHECK_EQ(raft_propose(nw.n[1].r, (const uint8_t *)"x", 1), RAFT_EPROPOSALDROPPED);
	net_stabilize(&nw);
	CHECK_EQ(net_leader(&nw), 3);
	net_free(&nw);
}

CHECK_TEST(leadership_transfer_times_out)
{
	struct net nw;
	net_init(&nw, 3, 0, 0);
	net_elect(&nw, 1);
	net_isolate(&nw, 3);
	net_propose(&nw, 1, "x");
	net_stabilize(&nw);
	CHECK_EQ(raft_transfer_leader(nw.n[1].r, 3), 0);
	for (int i = 0; i < 10; i++)
		net_tick(&nw, 1, 1);
	CHECK_EQ(net_status(&nw, 1).lead_transferee, 0);
	CHECK_EQ(net_leader(&nw), 1);
	CHECK_EQ(net_propose(&nw, 1, "y"), 0);
	net_free(&nw);
}

/* ---- ReadIndex ---- */

CHECK_TEST(read_index_on_leader_and_follower)
{
	struct net nw;
	net_init(&nw, 3, 0, 0);
	net_elect(&nw, 1);
	uint64_t ctx = 0x1111;
	CHECK_EQ(raft_read_index(nw.n[1].r, (uint8_t *)&ctx, 8), 0);
	net_stabilize(&nw);
	CHECK_EQ(nw.n[1].n_reads, 1);
	CHECK_EQ(nw.n[1].reads[0].index, net_commit(&nw, 1));
	CHECK_EQ_U64(nw.n[1].read_ctx[0], 0x1111);
	ctx = 0x2222;
	CHECK_EQ(raft_read_index(nw.n[3].r, (uint8_t *)&ctx, 8), 0);
	net_stabilize(&nw);
	CHECK_EQ(nw.n[3].n_reads, 1);
	CHECK_EQ(nw.n[3].reads[0].index, net_commit(&nw, 1));
	CHECK_EQ_U64(nw.n[3].read_ctx[0], 0x2222);
	net_free(&nw);
}

CHECK_TEST(read_index_needs_heartbeat_quorum)
{
	struct net nw;
	net_init(&nw, 3, 0, 0);
	net_elect(&nw, 1);
	net_isolate(&nw, 1);
	uint64_t ctx = 7;
	CHECK_EQ(raft_read_index(nw.n[1].r, (uint8_t *)&ctx, 8), 0);
	net_stabilize(&nw);
	CHECK_EQ(nw.n[1].n_reads, 0); /* no quorum confirmed leadership */
	net_free(&nw);
}

CHECK_TEST(read_index_waits_for_commit_in_term)
{
	struct net nw;
	net_init(&nw, 3, 0, 0);
	net_stabilize(&nw);
	nw.drop_type[RAFT_MSG_APP_RESP] = 1;
	raft_campaign(nw.n[1].r);
	net_stabilize(&nw);
	CHECK_EQ(net_state(&nw, 1), RAFT_LEADER);
	uint64_t ctx = 9;
	CHECK_EQ(raft_read_index(nw.n[1].r, (uint8_t *)&ctx, 8), 0);
	net_tick_all(&nw, 3);
	CHECK_EQ(nw.n[1].n_reads, 0); /* its empty entry is not committed yet */
	nw.drop_type[RAFT_MSG_APP_RESP] = 0;
	net_tick_all(&nw, 3);
	CHECK_EQ(nw.n[1].n_reads, 1);
	CHECK_EQ(nw.n[1].reads[0].index, 4);
	net_free(&nw);
}

/* ---- bad input ---- */

CHECK_TEST(bad_messages_are_refused)
{
	struct net nw;
	net_init(&nw, 3, 0, 0);
	net_elect(&nw, 1);
	uint64_t term = net_term(&nw, 2);
	struct raft_message m = {.type = RAFT_MSG_APP, .from = 1, .to = 2, .term = 0};
	CHECK_EQ(raft_step(nw.n[2].r, &m), RAFT_EINVAL); /* no term */
	m.term = term;
	m.type = RAFT_MSG_HUP;
	CHECK_EQ(raft_step(nw.n[2].r, &m), RAFT_EINVAL); /* local type from a peer */
	m.type = 99;
	CHECK_EQ(raft_step(nw.n[2].r, &m), RAFT_EINVAL);
	m.type = RAFT_MSG_APP;
	m.from = 0;
	CHECK_EQ(raft_step(nw.n[2].r, &m), RAFT_EINVAL);
	/* Entries that do not follow index. */
	struct raft_entry e = {.term = term, .index = 50};
	m.from = 1;
	m.index = 3;
	m.log_term = 1;
	m.entries = &e;
	m.n_entries = 1;
	CHECK_EQ(raft_step(nw.n[2].r, &m), RAFT_EINVAL);
	/* A commit index far beyond the log is clamped, not trusted. */
	struct raft_message hb = {.type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 2, .term = term,
				  .commit = 1000000};
	CHECK_EQ(raft_step(nw.n[2].r, &hb), 0);
	CHECK_LE(net_commit(&nw, 2), net_last_index(&nw, 2) + 1);
	/* An ack for an index the leader never had. */
	struct raft_message ack = {.type = RAFT_MSG_APP_RESP, .from = 2, .to = 1, .term = term,
				   .index = 1000000};
	CHECK_EQ(raft_step(nw.n[1].r, &ack), RAFT_EINVAL);
	net_stabilize(&nw);
	CHECK_EQ(net_leader(&nw), 1);
	net_free(&nw);
}

CHECK_TEST(fuzzed_messages_never_crash)
{
	uint64_t s = check_seed();
	struct net nw;
	net_init(&nw, 3, 1, 1);
	net_elect(&nw, 1);
	for (int i = 0; i < 20000; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		uint64_t x = s >> 11;
		struct raft_entry ents[3];
		uint8_t byte = (uint8_t)x;
		for (int k = 0; k < 3; k++) {
			ents[k].term = (x >> (k * 3)) % 6;
			ents[k].index = (x >> (k * 5)) % 12;
			ents[k].type = (int)((x >> 20) % 3);
			ents[k].data = &byte;
			ents[k].len = (x >> 22) & 1;
		}
		struct raft_message m = {
			.type = (int)((x >> 1) % RAFT_MSG_TYPE_COUNT),
			.from = 1 + (x >> 6) % 4,
			.to = 1 + (x >> 8) % 3,
			.term = (x >> 10) % 8,
			.log_term = (x >> 14) % 6,
			.index = (x >> 17) % 12,
			.commit = (x >> 21) % 14,
			.entries = ents,
			.n_entries = (size_t)((x >> 25) % 4),
			.reject = (int)((x >> 27) & 1),
			.reject_hint = (x >> 28) % 12,
			.context = &byte,
			.context_len = (x >> 32) & 1,
		};
		if (m.type == RAFT_MSG_SNAP) {
			m.has_snapshot = (x >> 33) & 1;
			m.snapshot.meta.index = (x >> 34) % 12;
			m.snapshot.meta.term = (x >> 38) % 6;
			m.snapshot.meta.conf.n_voters = (x >> 40) % 4;
			for (size_t k = 0; k < m.snapshot.meta.conf.n_voters; k++)
				m.snapshot.meta.conf.voters[k] = k + 1;
		}
		struct tnode *t = &nw.n[m.to];
		if (!t->r)
			continue;
		raft_step(t->r, &m);
		/* Bypass the application's bookkeeping: just drain. */
		while (raft_has_ready(t->r)) {
			struct raft_ready rd;
			if (raft_ready(t->r, &rd) != 0)
				break;
			if (rd.has_snapshot)
				raft_memory_storage_apply_snapshot(t->ms, &rd.snapshot);
			if (rd.n_entries)
				raft_memory_storage_append(t->ms, rd.entries, rd.n_entries);
			if (rd.has_hard_state)
				raft_memory_storage_set_hard_state(t->ms, &rd.hard_state);
			raft_advance(t->r, &rd);
		}
		if (i % 100 == 0)
			raft_tick(t->r);
	}
	net_free(&nw);
}

/* What the core said through raft_config.logger (the last line and how many). */
struct said {
	char last[512];
	int level, n;
};

static void say_into(void *arg, int level, const char *msg)
{
	struct said *s = arg;
	snprintf(s->last, sizeof s->last, "%s", msg);
	s->level = level;
	s->n++;
}

CHECK_TEST(snapshot_not_naming_the_follower_is_refused_and_said)
{
	/* member 4 joined after the leader's snapshot of members 1-3 was taken */
	struct raft_memory_storage *ms = raft_memory_storage_new();
	CHECK(ms != NULL);
	struct raft_storage st;
	raft_memory_storage_bind(ms, &st);
	struct raft_conf_state cs = {.voters = {1, 2, 3, 4}, .n_voters = 4};
	CHECK_EQ(raft_memory_storage_set_conf_state(ms, &cs), 0);
	struct said said = {0};
	struct raft_config cfg = {.id = 4, .election_tick = 10, .heartbeat_tick = 1,
				  .logger = say_into, .logger_arg = &said};
	struct raft *r;
	CHECK_EQ(raft_new(&cfg, &st, &r), 0);
	uint8_t data[1] = {0};
	struct raft_message m = {.type = RAFT_MSG_SNAP, .from = 1, .to = 4, .term = 2,
				 .has_snapshot = 1,
				 .snapshot = {.meta = {.index = 30, .term = 2,
						       .conf = {.voters = {1, 2, 3}, .n_voters = 3}},
					      .data = data, .len = 1}};
	CHECK_EQ(raft_step(r, &m), 0);
	CHECK_EQ(said.n, 1);
	CHECK_EQ(said.level, RAFT_LOG_WARN);
	CHECK(strstr(said.last, "refused the snapshot at index 30") != NULL);
	CHECK(strstr(said.last, "does not include this member") != NULL);
	struct raft_status rs;
	raft_status(r, &rs);
	CHECK_EQ(rs.hard_state.commit, 0); /* nothing restored */
	/* one naming it is restored and says nothing */
	m.snapshot.meta.conf = cs;
	CHECK_EQ(raft_step(r, &m), 0);
	CHECK_EQ(said.n, 1);
	raft_status(r, &rs);
	CHECK_EQ(rs.hard_state.commit, 30);
	raft_free(r);
	raft_memory_storage_free(ms);
}

CHECK_TEST(heartbeat_beyond_the_log_is_clamped_and_said)
{
	/* a follower holding entries 1-3 of term 2 hears a commit of 1000 */
	struct raft_memory_storage *ms = raft_memory_storage_new();
	CHECK(ms != NULL);
	struct raft_storage st;
	raft_memory_storage_bind(ms, &st);
	struct raft_conf_state cs = {.voters = {1, 2, 3}, .n_voters = 3};
	CHECK_EQ(raft_memory_storage_set_conf_state(ms, &cs), 0);
	struct said said = {0};
	struct raft_config cfg = {.id = 2, .election_tick = 10, .heartbeat_tick = 1,
				  .logger = say_into, .logger_arg = &said};
	struct raft *r;
	CHECK_EQ(raft_new(&cfg, &st, &r), 0);
	uint8_t data[3] = {'a', 'b', 'c'};
	struct raft_entry ents[3];
	for (int i = 0; i < 3; i++)
		ents[i] = (struct raft_entry){.term = 2, .index = (uint64_t)i + 1, .data = data,
					      .len = (size_t)i + 1};
	struct raft_message app = {.type = RAFT_MSG_APP, .from = 1, .to = 2, .term = 2,
				   .index = 0, .log_term = 0, .commit = 1, .entries = ents,
				   .n_entries = 3};
	CHECK_EQ(raft_step(r, &app), 0);
	struct raft_status rs;
	raft_status(r, &rs);
	CHECK_EQ(rs.hard_state.commit, 1);
	CHECK_EQ(said.n, 0);
	struct raft_message hb = {.type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 2, .term = 2,
				  .commit = 1000};
	CHECK_EQ(raft_step(r, &hb), 0);
	raft_status(r, &rs);
	CHECK_EQ(rs.hard_state.commit, 3); /* what it holds, not what it was told */
	CHECK_EQ(said.n, 1);
	CHECK_EQ(said.level, RAFT_LOG_ERROR);
	CHECK(strstr(said.last, "commits index 1000, beyond this log's last index 3") != NULL);
	/* a heartbeat within the log says nothing */
	hb.commit = 2;
	CHECK_EQ(raft_step(r, &hb), 0);
	CHECK_EQ(said.n, 1);
	raft_free(r);
	raft_memory_storage_free(ms);
}

CHECK_SUITE("raft", CHECK_CASE(leader_election), CHECK_CASE(election_timeout_is_randomized),
	    CHECK_CASE(split_vote_then_recovers), CHECK_CASE(stale_log_cannot_win),
	    CHECK_CASE(prevote_keeps_partitioned_member_from_disrupting),
	    CHECK_CASE(without_prevote_rejoining_member_disrupts),
	    CHECK_CASE(check_quorum_leader_steps_down), CHECK_CASE(check_quorum_lease_ignores_vote),
	    CHECK_CASE(figure7_logs_repaired),
	    CHECK_CASE(figure8_commits_only_current_term_by_counting),
	    CHECK_CASE(heartbeat_carries_commit),
	    CHECK_CASE(batching_many_proposals_one_ready_one_append),
	    CHECK_CASE(max_size_per_msg_and_inflight_window),
	    CHECK_CASE(report_unreachable_moves_to_probe),
	    CHECK_CASE(ready_stays_valid_while_core_keeps_running),
	    CHECK_CASE(learner_does_not_count_for_commit),
	    CHECK_CASE(snapshot_not_naming_the_follower_is_refused_and_said),
	    CHECK_CASE(heartbeat_beyond_the_log_is_clamped_and_said),
	    CHECK_CASE(proposal_without_leader_is_dropped), CHECK_CASE(follower_forwards_proposal),
	    CHECK_CASE(forwarding_disabled_drops),
	    CHECK_CASE(learner_joins_never_votes_then_promoted),
	    CHECK_CASE(one_conf_change_at_a_time), CHECK_CASE(removed_member_and_quorum_shrinks),
	    CHECK_CASE(removed_leader_steps_down), CHECK_CASE(snapshot_to_lagging_follower),
	    CHECK_CASE(snapshot_failure_reported_then_retried),
	    CHECK_CASE(restart_from_snapshot_plus_entries), CHECK_CASE(leadership_transfer),
	    CHECK_CASE(leadership_transfer_asked_on_follower),
	    CHECK_CASE(leadership_transfer_catches_up_target),
	    CHECK_CASE(leadership_transfer_times_out), CHECK_CASE(read_index_on_leader_and_follower),
	    CHECK_CASE(read_index_needs_heartbeat_quorum),
	    CHECK_CASE(read_index_waits_for_commit_in_term), CHECK_CASE(bad_messages_are_refused),
	    CHECK_CASE(fuzzed_messages_never_crash))
