/* test_raftpb.c: the raft wire types survive a protobuf round trip; raft errors have messages. */
#include "check.h"
#include "raft.h"
#include "raftpb.pb-c.h"

CHECK_TEST(message_round_trip)
{
	Raftpb__Entry e[2] = {RAFTPB__ENTRY__INIT, RAFTPB__ENTRY__INIT};
	Raftpb__Entry *ep[2] = {&e[0], &e[1]};
	for (int i = 0; i < 2; i++) {
		e[i].has_term = e[i].has_index = e[i].has_type = e[i].has_data = 1;
		e[i].term = 7;
		e[i].index = 100 + (uint64_t)i;
		e[i].type = i ? RAFTPB__ENTRY_TYPE__ENTRY_CONF_CHANGE : RAFTPB__ENTRY_TYPE__ENTRY_NORMAL;
		e[i].data.data = (uint8_t *)(i ? "conf" : "put /a");
		e[i].data.len = i ? 4 : 6;
	}
	Raftpb__Message m = RAFTPB__MESSAGE__INIT;
	m.has_type = m.has_to = m.has_from = m.has_term = m.has_index = m.has_commit = 1;
	m.type = RAFTPB__MESSAGE_TYPE__MSG_APP;
	m.to = 2;
	m.from = 1;
	m.term = 7;
	m.index = 99;
	m.commit = 98;
	m.n_entries = 2;
	m.entries = ep;

	size_t n = raftpb__message__get_packed_size(&m);
	uint8_t buf[256];
	CHECK_LE(n, sizeof buf);
	CHECK_EQ(raftpb__message__pack(&m, buf), n);

	Raftpb__Message *d = raftpb__message__unpack(NULL, n, buf);
	CHECK(d != NULL);
	CHECK_EQ(d->type, RAFTPB__MESSAGE_TYPE__MSG_APP);
	CHECK_EQ(d->to, 2);
	CHECK_EQ(d->from, 1);
	CHECK_EQ(d->commit, 98);
	CHECK_EQ(d->n_entries, 2);
	CHECK_EQ(d->entries[1]->index, 101);
	CHECK_EQ(d->entries[1]->type, RAFTPB__ENTRY_TYPE__ENTRY_CONF_CHANGE);
	raftpb__message__free_unpacked(d, NULL);
}

CHECK_TEST(message_entries_survive)
{
	Raftpb__Entry e = RAFTPB__ENTRY__INIT;
	Raftpb__Entry *ep = &e;
	e.has_term = e.has_index = e.has_data = 1;
	e.term = 3;
	e.index = 5;
	e.data.data = (uint8_t *)"value";
	e.data.len = 5;
	Raftpb__Message m = RAFTPB__MESSAGE__INIT;
	m.n_entries = 1;
	m.entries = &ep;
	uint8_t buf[64];
	size_t n = raftpb__message__pack(&m, buf);
	Raftpb__Message *d = raftpb__message__unpack(NULL, n, buf);
	CHECK(d != NULL);
	CHECK_EQ(d->entries[0]->term, 3);
	CHECK_EQ(d->entries[0]->index, 5);
	CHECK_EQ(d->entries[0]->data.len, 5);
	CHECK_MEM_EQ(d->entries[0]->data.data, "value", 5);
	raftpb__message__free_unpacked(d, NULL);
}

CHECK_TEST(truncated_message_is_rejected)
{
	Raftpb__HardState hs = RAFTPB__HARD_STATE__INIT;
	hs.has_term = hs.has_vote = hs.has_commit = 1;
	hs.term = 1u << 20;
	hs.vote = 3;
	hs.commit = 1u << 30;
	uint8_t buf[64];
	size_t n = raftpb__hard_state__pack(&hs, buf);
	CHECK_GT(n, 3);
	/* A varint cut in the middle cannot decode. */
	CHECK(raftpb__hard_state__unpack(NULL, n - 1, buf) == NULL);
}

CHECK_TEST(errors_have_messages)
{
	CHECK_STR_EQ(raft_strerror(RAFT_EPROPOSALDROPPED), "proposal dropped: no leader known");
	CHECK_STR_EQ(raft_strerror(0), "success");
	CHECK(strlen(raft_strerror(-5)) > 0);
}

CHECK_SUITE("raft-raftpb", CHECK_CASE(message_round_trip), CHECK_CASE(message_entries_survive),
	    CHECK_CASE(truncated_message_is_rejected), CHECK_CASE(errors_have_messages))
