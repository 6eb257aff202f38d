/*
 * test_codec.c: the native <-> raftpb codec round-trips, agrees with protobuf-c, and refuses garbage
 * without crashing; raft_memory_storage behaves as etcd's MemoryStorage.
 */
#include "check.h"
#include "raft.h"
#include "raftpb.pb-c.h"

#include <errno.h>

CHECK_TEST(message_round_trip)
{
	struct raft_entry e[3] = {
		{.term = 7, .index = 100, .type = RAFT_ENTRY_NORMAL, .data = (uint8_t *)"put /a", .len = 6},
		{.term = 7, .index = 101, .type = RAFT_ENTRY_CONF_CHANGE, .data = (uint8_t *)"cc", .len = 2},
		{.term = 8, .index = 102},
	};
	struct raft_message m = {
		.type = RAFT_MSG_SNAP, .to = 2, .from = 1, .term = 8, .log_term = 7, .index = 99,
		.entries = e, .n_entries = 3, .commit = 98, .has_snapshot = 1, .reject = 1,
		.reject_hint = 1ull << 40, .context = (uint8_t *)"ctx", .context_len = 3,
	};
	m.snapshot.meta.index = 90;
	m.snapshot.meta.term = 6;
	m.snapshot.meta.conf.n_voters = 3;
	m.snapshot.meta.conf.voters[0] = 1;
	m.snapshot.meta.conf.voters[1] = 2;
	m.snapshot.meta.conf.voters[2] = UINT64_MAX;
	m.snapshot.meta.conf.n_learners = 1;
	m.snapshot.meta.conf.learners[0] = 9;
	m.snapshot.data = (uint8_t *)"image";
	m.snapshot.len = 5;

	size_t n = raft_message_encoded_size(&m);
	uint8_t *buf = malloc(n);
	CHECK_EQ(raft_message_encode(&m, buf), n);

	/* protobuf-c reads what we wrote. */
	Raftpb__Message *pb = raftpb__message__unpack(NULL, n, buf);
	CHECK(pb != NULL);
	CHECK_EQ(pb->type, RAFTPB__MESSAGE_TYPE__MSG_SNAP);
	CHECK_EQ(pb->n_entries, 3);
	CHECK_EQ(pb->entries[1]->type, RAFTPB__ENTRY_TYPE__ENTRY_CONF_CHANGE);
	CHECK_EQ_U64(pb->reject_hint, 1ull << 40);
	CHECK_EQ(pb->snapshot->metadata->conf_state->n_voters, 3);
	raftpb__message__free_unpacked(pb, NULL);

	struct raft_message d;
	CHECK_EQ(raft_message_decode(buf, n, &d), 0);
	CHECK_EQ(d.type, RAFT_MSG_SNAP);
	CHECK_EQ(d.to, 2);
	CHECK_EQ(d.from, 1);
	CHECK_EQ(d.term, 8);
	CHECK_EQ(d.log_term, 7);
	CHECK_EQ(d.index, 99);
	CHECK_EQ(d.commit, 98);
	CHECK_EQ(d.reject, 1);
	CHECK_EQ_U64(d.reject_hint, 1ull << 40);
	CHECK_EQ(d.n_entries, 3);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(d.entries[i].term, e[i].term);
		CHECK_EQ(d.entries[i].index, e[i].index);
		CHECK_EQ(d.entries[i].type, e[i].type);
		CHECK_EQ(d.entries[i].len, e[i].len);
		if (e[i].len)
			CHECK_MEM_EQ(d.entries[i].data, e[i].data, e[i].len);
	}
	CHECK_EQ(d.has_snapshot, 1);
	CHECK_EQ(d.snapshot.meta.index, 90);
	CHECK_EQ(d.snapshot.meta.term, 6);
	CHECK_EQ(d.snapshot.meta.conf.n_voters, 3);
	CHECK_EQ_U64(d.snapshot.meta.conf.voters[2], UINT64_MAX);
	CHECK_EQ(d.snapshot.meta.conf.n_learners, 1);
	CHECK_EQ(d.snapshot.meta.conf.learners[0], 9);
	CHECK_EQ(d.snapshot.len, 5);
	CHECK_MEM_EQ(d.snapshot.data, "image", 5);
	CHECK_EQ(d.context_len, 3);
	CHECK_MEM_EQ(d.context, "ctx", 3);
	raft_message_free_decoded(&d);
	free(buf);
}

CHECK_TEST(empty_message_round_trip)
{
	struct raft_message m = {.type = RAFT_MSG_HUP};
	uint8_t buf[8];
	size_t n = raft_message_encode(&m, buf);
	CHECK_EQ(n, 0);
	struct raft_message d;
	CHECK_EQ(raft_message_decode(buf, n, &d), 0);
	CHECK_EQ(d.type, RAFT_MSG_HUP);
	CHECK_EQ(d.n_entries, 0);
	raft_message_free_decoded(&d);
}

CHECK_TEST(small_types_round_trip)
{
	uint8_t buf[512];
	struct raft_hard_state hs = {.term = 1ull << 33, .vote = 3, .commit = 12345678}, hs2;
	size_t n = raft_hard_state_encode(&hs, buf);
	CHECK_EQ(n, raft_hard_state_encoded_size(&hs));
	CHECK_EQ(raft_hard_state_decode(buf, n, &hs2), 0);
	CHECK_EQ_U64(hs2.term, hs.term);
	CHECK_EQ(hs2.vote, 3);
	CHECK_EQ(hs2.commit, 12345678);

	struct raft_entry e = {.term = 4, .index = 9, .type = RAFT_ENTRY_CONF_CHANGE,
			       .data = (uint8_t *)"abc", .len = 3}, e2;
	n = raft_entry_encode(&e, buf);
	CHECK_EQ(n, raft_entry_encoded_size(&e));
	CHECK_EQ(raft_entry_decode(buf, n, &e2), 0);
	CHECK_EQ(e2.term, 4);
	CHECK_EQ(e2.index, 9);
	CHECK_EQ(e2.type, RAFT_ENTRY_CONF_CHANGE);
	CHECK_EQ(e2.len, 3);
	CHECK_MEM_EQ(e2.data, "abc", 3);
	free(e2.data);

	struct raft_conf_change cc = {.type = RAFT_CONF_ADD_LEARNER_NODE, .node_id = 77, .id = 5,
				      .context = (uint8_t *)"10.0.0.7:7001", .context_len = 13}, cc2;
	n = raft_conf_change_encode(&cc, buf);
	CHECK_EQ(n, raft_conf_change_encoded_size(&cc));
	CHECK_EQ(raft_conf_change_decode(buf, n, &cc2), 0);
	CHECK_EQ(cc2.type, RAFT_CONF_ADD_LEARNER_NODE);
	CHECK_EQ(cc2.node_id, 77);
	CHECK_EQ(cc2.id, 5);
	CHECK_EQ(cc2.context_len, 13);
	CHECK_MEM_EQ(cc2.context, "10.0.0.7:7001", 13);
	free(cc2.context);

	struct raft_snapshot_meta sm = {.index = 50, .term = 3}, sm2;
	sm.conf.n_voters = 2;
	sm.conf.voters[0] = 1;
	sm.conf.voters[1] = 2;
	n = raft_snapshot_meta_encode(&sm, buf);
	CHECK_EQ(n, raft_snapshot_meta_encoded_size(&sm));
	CHECK_EQ(raft_snapshot_meta_decode(buf, n, &sm2), 0);
	CHECK_EQ(sm2.index, 50);
	CHECK_EQ(sm2.term, 3);
	CHECK_EQ(sm2.conf.n_voters, 2);
	CHECK_EQ(sm2.conf.voters[1], 2);

	struct raft_conf_state cs2;
	n = raft_conf_state_encode(&sm.conf, buf);
	CHECK_EQ(raft_conf_state_decode(buf, n, &cs2), 0);
	CHECK_EQ(cs2.n_voters, 2);
}

CHECK_TEST(garbage_never_decodes_into_a_crash)
{
	uint64_t s = check_seed();
	/* A valid message, then mutations of it and random bytes. */
	struct raft_entry e = {.term = 2, .index = 5, .data = (uint8_t *)"hello", .len = 5};
	struct raft_message m = {.type = RAFT_MSG_APP, .to = 2, .from = 1, .term = 2, .index = 4,
				 .log_term = 2, .entries = &e, .n_entries = 1, .commit = 3};
	uint8_t good[256], buf[256];
	size_t n = raft_message_encode(&m, good);
	int ok = 0, bad = 0;
	for (int i = 0; i < 100000; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		size_t len;
		if (i % 2) {
			memcpy(buf, good, n);
			len = n;
			buf[(s >> 20) % n] ^= (uint8_t)(1u << ((s >> 40) % 8));
			if ((s >> 50) & 1)
				len = (size_t)((s >> 30) % (n + 1));
		} else {
			len = (size_t)((s >> 33) % 64);
			uint64_t x = s;
			for (size_t k = 0; k < len; k++) {
				x = x * 6364136223846793005ull + 1;
				buf[k] = (uint8_t)(x >> 56);
			}
		}
		struct raft_message d;
		int rv = raft_message_decode(buf, len, &d);
		if (rv == 0) {
			ok++;
			CHECK(d.n_entries == 0 || d.entries != NULL);
			raft_message_free_decoded(&d);
		} else {
			CHECK_EQ(rv, RAFT_EINVAL);
			bad++;
		}
		struct raft_hard_state hs;
		raft_hard_state_decode(buf, len, &hs);
		struct raft_conf_change cc;
		if (raft_conf_change_decode(buf, len, &cc) == 0)
			free(cc.context);
		struct raft_entry de;
		if (raft_entry_decode(buf, len, &de) == 0)
			free(de.data);
		struct raft_snapshot_meta sm;
		raft_snapshot_meta_decode(buf, len, &sm);
	}
	CHECK_GT(ok, 0);
	CHECK_GT(bad, 0);
	/* Too many members for a conf state is refused. */
	Raftpb__ConfState pcs = RAFTPB__CONF_STATE__INIT;
	uint64_t many[RAFT_MAX_MEMBERS + 1];
	for (size_t i = 0; i <= RAFT_MAX_MEMBERS; i++)
		many[i] = i + 1;
	pcs.n_voters = RAFT_MAX_MEMBERS + 1;
	pcs.voters = many;
	uint8_t big[1024];
	size_t bn = raftpb__conf_state__pack(&pcs, big);
	struct raft_conf_state cs;
	CHECK_EQ(raft_conf_state_decode(big, bn, &cs), RAFT_EINVAL);
}

/* ---- memory storage ---- */

static void append_terms(struct raft_memory_storage *ms, uint64_t first, const uint64_t *terms,
			 size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct raft_entry e = {.term = terms[i], .index = first + i, .data = (uint8_t *)"d",
				       .len = 1};
		CHECK_EQ(raft_memory_storage_append(ms, &e, 1), 0);
	}
}

struct loads {
	int calls, fail;
	uint64_t index;
};

static int load_snapshot(void *arg, const struct raft_snapshot_meta *meta, uint8_t **data,
			 size_t *len)
{
	struct loads *ld = arg;
	ld->calls++;
	ld->index = meta->index;
	if (ld->fail)
		return -EIO;
	*data = malloc(4);
	memcpy(*data, "at ", 3);
	(*data)[3] = (uint8_t)('0' + meta->index % 10);
	*len = 4;
	return 0;
}

CHECK_TEST(memory_storage_append_truncate_compact)
{
	struct raft_memory_storage *ms = raft_memory_storage_new();
	struct raft_storage st;
	raft_memory_storage_bind(ms, &st);
	static const uint64_t t[] = {1, 1, 2, 2, 3};
	append_terms(ms, 1, t, 5);
	uint64_t i, term;
	st.first_index(st.data, &i);
	CHECK_EQ(i, 1);
	st.last_index(st.data, &i);
	CHECK_EQ(i, 5);
	CHECK_EQ(st.term(st.data, 0, &term), 0);
	CHECK_EQ(term, 0);
	CHECK_EQ(st.term(st.data, 6, &term), RAFT_EUNAVAILABLE);
	/* A conflicting suffix is replaced. */
	static const uint64_t t2[] = {4, 4};
	append_terms(ms, 4, t2, 2);
	st.last_index(st.data, &i);
	CHECK_EQ(i, 5);
	CHECK_EQ(st.term(st.data, 4, &term), 0);
	CHECK_EQ(term, 4);
	/* A gap is refused. */
	struct raft_entry gap = {.term = 4, .index = 9};
	CHECK_EQ(raft_memory_storage_append(ms, &gap, 1), RAFT_EINVAL);
	/* max_bytes: at least one entry, then as many as fit. */
	const struct raft_entry *ents;
	size_t n;
	CHECK_EQ(st.entries(st.data, 1, 6, 0, &ents, &n), 0);
	CHECK_EQ(n, 1);
	CHECK_EQ(st.entries(st.data, 1, 6, 3, &ents, &n), 0);
	CHECK_EQ(n, 3);
	CHECK_EQ(st.entries(st.data, 1, 7, 100, &ents, &n), RAFT_EUNAVAILABLE);
	/* Compaction. */
	CHECK_EQ(raft_memory_storage_create_snapshot(ms, 3, NULL, (const uint8_t *)"img", 3), 0);
	CHECK_EQ(raft_memory_storage_create_snapshot(ms, 2, NULL, NULL, 0), RAFT_ESNAPOUTOFDATE);
	CHECK_EQ(raft_memory_storage_compact(ms, 3), 0);
	CHECK_EQ(raft_memory_storage_compact(ms, 2), RAFT_ECOMPACTED);
	st.first_index(st.data, &i);
	CHECK_EQ(i, 4);
	CHECK_EQ(st.term(st.data, 3, &term), 0);
	CHECK_EQ(term, 2);
	CHECK_EQ(st.term(st.data, 2, &term), RAFT_ECOMPACTED);
	CHECK_EQ(st.entries(st.data, 3, 5, 100, &ents, &n), RAFT_ECOMPACTED);
	const struct raft_snapshot *snap;
	CHECK_EQ(st.snapshot(st.data, &snap), 0);
	CHECK_EQ(snap->meta.index, 3);
	CHECK_EQ(snap->meta.term, 2);
	CHECK_MEM_EQ(snap->data, "img", 3);
	/* adopt_snapshot takes the buffer itself (ASan's leak check holds it to freeing it), and
	   leaves it to the caller when refused */
	uint8_t *own = malloc(4);
	memcpy(own, "img2", 4);
	CHECK_EQ(raft_memory_storage_adopt_snapshot(ms, 3, NULL, own, 4), RAFT_ESNAPOUTOFDATE);
	CHECK_EQ(raft_memory_storage_adopt_snapshot(ms, 9, NULL, own, 4), RAFT_EUNAVAILABLE);
	CHECK_EQ(raft_memory_storage_adopt_snapshot(ms, 4, NULL, own, 4), 0);
	CHECK_EQ(st.snapshot(st.data, &snap), 0);
	CHECK(snap->data == own);
	CHECK_EQ(snap->meta.index, 4);
	CHECK_EQ(snap->meta.term, 4);
	CHECK_MEM_EQ(snap->data, "img2", 4);
	/* adopted without data: unavailable until a loader reads it, once */
	CHECK_EQ(raft_memory_storage_adopt_snapshot(ms, 5, NULL, NULL, 0), 0);
	CHECK_EQ(st.snapshot(st.data, &snap), RAFT_ESNAPTEMPUNAVAILABLE);
	struct loads ld = {0};
	raft_memory_storage_set_loader(ms, load_snapshot, &ld);
	ld.fail = 1;
	CHECK_EQ(st.snapshot(st.data, &snap), RAFT_ESNAPTEMPUNAVAILABLE);
	ld.fail = 0;
	CHECK_EQ(st.snapshot(st.data, &snap), 0);
	CHECK_EQ(snap->meta.index, 5);
	CHECK_MEM_EQ(snap->data, "at 5", 4);
	CHECK_EQ(st.snapshot(st.data, &snap), 0);
	CHECK_EQ(ld.calls, 2); /* the failed one and the one that read it */
	CHECK_EQ(ld.index, 5);
	/* Entries below the first index are skipped on append. */
	static const uint64_t t3[] = {1, 2, 4, 4};
	append_terms(ms, 2, t3, 4);
	st.last_index(st.data, &i);
	CHECK_EQ(i, 5);
	/* A newer snapshot replaces everything. */
	struct raft_snapshot s2 = {.meta = {.index = 10, .term = 5}};
	CHECK_EQ(raft_memory_storage_apply_snapshot(ms, &s2), 0);
	st.first_index(st.data, &i);
	CHECK_EQ(i, 11);
	st.last_index(st.data, &i);
	CHECK_EQ(i, 10);
	CHECK_EQ(raft_memory_storage_apply_snapshot(ms, &s2), RAFT_ESNAPOUTOFDATE);
	raft_memory_storage_free(ms);
}

CHECK_TEST(memory_storage_bootstrap)
{
	struct raft_memory_storage *ms = raft_memory_storage_new();
	struct raft_storage st;
	raft_memory_storage_bind(ms, &st);
	struct raft_conf_state cs = {.voters = {1, 2, 3}, .n_voters = 3, .learners = {4},
				     .n_learners = 1};
	CHECK_EQ(raft_memory_storage_bootstrap(ms, &cs), 0);
	CHECK_EQ(raft_memory_storage_bootstrap(ms, &cs), RAFT_EINVAL);
	struct raft_hard_state hs;
	struct raft_conf_state got;
	st.initial_state(st.data, &hs, &got);
	CHECK_EQ(hs.term, 1);
	CHECK_EQ(hs.commit, 4);
	CHECK_EQ(got.n_voters, 3);
	const struct raft_entry *ents;
	size_t n;
	CHECK_EQ(st.entries(st.data, 1, 5, UINT64_MAX, &ents, &n), 0);
	CHECK_EQ(n, 4);
	struct raft_conf_change cc;
	CHECK_EQ(raft_conf_change_decode(ents[3].data, ents[3].len, &cc), 0);
	CHECK_EQ(cc.type, RAFT_CONF_ADD_LEARNER_NODE);
	CHECK_EQ(cc.node_id, 4);
	raft_memory_storage_free(ms);
}

CHECK_TEST(new_refuses_bad_config)
{
	struct raft_memory_storage *ms = raft_memory_storage_new();
	struct raft_storage st;
	raft_memory_storage_bind(ms, &st);
	struct raft_config cfg = {.id = 0, .election_tick = 10, .heartbeat_tick = 1};
	struct raft *r = NULL;
	CHECK_EQ(raft_new(&cfg, &st, &r), RAFT_EINVAL);
	cfg.id = 1;
	cfg.election_tick = 1;
	CHECK_EQ(raft_new(&cfg, &st, &r), RAFT_EINVAL);
	/* A hard state committing beyond the log is refused. */
	cfg.election_tick = 10;
	struct raft_hard_state hs = {.term = 2, .commit = 5};
	raft_memory_storage_set_hard_state(ms, &hs);
	CHECK_EQ(raft_new(&cfg, &st, &r), RAFT_EINVAL);
	raft_memory_storage_free(ms);
}

CHECK_TEST(strerror_and_names)
{
	CHECK_STR_EQ(raft_strerror(RAFT_EPROPOSALDROPPED), "proposal dropped: no leader known");
	CHECK_STR_EQ(raft_strerror(RAFT_ECONFPENDING), "a configuration change is already pending");
	CHECK_STR_EQ(raft_message_type_name(RAFT_MSG_APP), "MsgApp");
	CHECK_STR_EQ(raft_message_type_name(RAFT_MSG_PRE_VOTE_RESP), "MsgPreVoteResp");
	CHECK_STR_EQ(raft_message_type_name(-1), "MsgUnknown");
	CHECK_STR_EQ(raft_state_name(RAFT_PRE_CANDIDATE), "StatePreCandidate");
}

CHECK_SUITE("raft-codec", CHECK_CASE(message_round_trip), CHECK_CASE(empty_message_round_trip),
	    CHECK_CASE(small_types_round_trip), CHECK_CASE(garbage_never_decodes_into_a_crash),
	    CHECK_CASE(memory_storage_append_truncate_compact), CHECK_CASE(memory_storage_bootstrap),
	    CHECK_CASE(new_refuses_bad_config), CHECK_CASE(strerror_and_names))
