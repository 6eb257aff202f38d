/*
 * codec.c: conversion between the core's native structs and raftpb protobuf bytes (raftpb.proto).
 *
 * Encoding is written by hand (no allocation, fields of value 0 omitted as proto3 would); decoding
 * goes through protobuf-c, which rejects malformed input, and then copies the result into native
 * structs. The WAL and the peer transport use these; the tests check that protobuf-c reads what we
 * write and that garbage never crashes the decoder.
 */
#include "raft.h"

#include "raftpb.pb-c.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Encoding primitives.
 * ------------------------------------------------------------------------------------------- */

static size_t varint_size(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/* Size of a varint field (tag < 16) when v != 0. */
static size_t uf_size(uint64_t v)
{
	return v ? 1 + varint_size(v) : 0;
}

static uint8_t *put_uf(uint8_t *p, unsigned field, uint64_t v)
{
	if (!v)
		return p;
	*p++ = (uint8_t)(field << 3);
	return put_varint(p, v);
}

/* Size of a length-delimited field of len bytes (always written when present). */
static size_t bf_size(size_t len)
{
	return 1 + varint_size(len) + len;
}

static uint8_t *put_bf(uint8_t *p, unsigned field, const uint8_t *data, size_t len)
{
	*p++ = (uint8_t)(field << 3 | 2);
	p = put_varint(p, len);
	if (len)
		memcpy(p, data, len);
	return p + len;
}

static uint8_t *put_header(uint8_t *p, unsigned field, size_t len)
{
	*p++ = (uint8_t)(field << 3 | 2);
	return put_varint(p, len);
}

/* ---------------------------------------------------------------------------------------------
 * Encoders.
 * ------------------------------------------------------------------------------------------- */

size_t raft_entry_encoded_size(const struct raft_entry *e)
{
	return uf_size((uint64_t)e->type) + uf_size(e->term) + uf_size(e->index) +
	       (e->len ? bf_size(e->len) : 0);
}

size_t raft_entry_encode(const struct raft_entry *e, uint8_t *buf)
{
	uint8_t *p = buf;
	p = put_uf(p, 1, (uint64_t)e->type);
	p = put_uf(p, 2, e->term);
	p = put_uf(p, 3, e->index);
	if (e->len)
		p = put_bf(p, 4, e->data, e->len);
	return (size_t)(p - buf);
}

size_t raft_hard_state_encoded_size(const struct raft_hard_state *hs)
{
	return uf_size(hs->term) + uf_size(hs->vote) + uf_size(hs->commit);
}

size_t raft_hard_state_encode(const struct raft_hard_state *hs, uint8_t *buf)
{
	uint8_t *p = buf;
	p = put_uf(p, 1, hs->term);
	p = put_uf(p, 2, hs->vote);
	p = put_uf(p, 3, hs->commit);
	return (size_t)(p - buf);
}

size_t raft_conf_state_encoded_size(const struct raft_conf_state *cs)
{
	size_t n = 0;
	for (size_t i = 0; i < cs->n_voters; i++)
		n += 1 + varint_size(cs->voters[i]);
	for (size_t i = 0; i < cs->n_learners; i++)
		n += 1 + varint_size(cs->learners[i]);
	return n;
}

size_t raft_conf_state_encode(const struct raft_conf_state *cs, uint8_t *buf)
{
	uint8_t *p = buf;
	for (size_t i = 0; i < cs->n_voters; i++) {
		*p++ = 1 << 3;
		p = put_varint(p, cs->voters[i]);
	}
	for (size_t i = 0; i < cs->n_learners; i++) {
		*p++ = 2 << 3;
		p = put_varint(p, cs->learners[i]);
	}
	return (size_t)(p - buf);
}

size_t raft_snapshot_meta_encoded_size(const struct raft_snapshot_meta *sm)
{
	return bf_size(raft_conf_state_encoded_size(&sm->conf)) + uf_size(sm->index) +
	       uf_size(sm->term);
}

size_t raft_snapshot_meta_encode(const struct raft_snapshot_meta *sm, uint8_t *buf)
{
	uint8_t *p = buf;
	p = put_header(p, 1, raft_conf_state_encoded_size(&sm->conf));
	p += raft_conf_state_encode(&sm->conf, p);
	p = put_uf(p, 2, sm->index);
	p = put_uf(p, 3, sm->term);
	return (size_t)(p - buf);
}

static size_t snapshot_size(const struct raft_snapshot *s)
{
	return (s->len ? bf_size(s->len) : 0) + bf_size(raft_snapshot_meta_encoded_size(&s->meta));
}

static uint8_t *put_snapshot(uint8_t *p, const struct raft_snapshot *s)
{
	if (s->len)
		p = put_bf(p, 1, s->data, s->len);
	p = put_header(p, 2, raft_snapshot_meta_encoded_size(&s->meta));
	p += raft_snapshot_meta_encode(&s->meta, p);
	return p;
}

size_t raft_conf_change_encoded_size(const struct raft_conf_change *cc)
{
	return uf_size((uint64_t)cc->type) + uf_size(cc->node_id) +
	       (cc->context_len ? bf_size(cc->context_len) : 0) + uf_size(cc->id);
}

size_t raft_conf_change_encode(const struct raft_conf_change *cc, uint8_t *buf)
{
	uint8_t *p = buf;
	p = put_uf(p, 1, (uint64_t)cc->type);
	p = put_uf(p, 2, cc->node_id);
	if (cc->context_len)
		p = put_bf(p, 3, cc->context, cc->context_len);
	p = put_uf(p, 4, cc->id);
	return (size_t)(p - buf);
}

size_t raft_message_encoded_size(const struct raft_message *m)
{
	size_t n = uf_size((uint64_t)m->type) + uf_size(m->to) + uf_size(m->from) +
		   uf_size(m->term) + uf_size(m->log_term) + uf_size(m->index) + uf_size(m->commit) +
		   (m->reject ? 2 : 0) + uf_size(m->reject_hint);
	for (size_t i = 0; i < m->n_entries; i++)
		n += bf_size(raft_entry_encoded_size(&m->entries[i]));
	if (m->has_snapshot)
		n += bf_size(snapshot_size(&m->snapshot));
	if (m->context_len)
		n += bf_size(m->context_len);
	return n;
}

size_t raft_message_encode(const struct raft_message *m, uint8_t *buf)
{
	uint8_t *p = buf;
	p = put_uf(p, 1, (uint64_t)m->type);
	p = put_uf(p, 2, m->to);
	p = put_uf(p, 3, m->from);
	p = put_uf(p, 4, m->term);
	p = put_uf(p, 5, m->log_term);
	p = put_uf(p, 6, m->index);
	for (size_t i = 0; i < m->n_entries; i++) {
		p = put_header(p, 7, raft_entry_encoded_size(&m->entries[i]));
		p += raft_entry_encode(&m->entries[i], p);
	}
	p = put_uf(p, 8, m->commit);
	if (m->has_snapshot) {
		p = put_header(p, 9, snapshot_size(&m->snapshot));
		p = put_snapshot(p, &m->snapshot);
	}
	p = put_uf(p, 10, m->reject ? 1 : 0);
	p = put_uf(p, 11, m->reject_hint);
	if (m->context_len)
		p = put_bf(p, 12, m->context, m->context_len);
	return (size_t)(p - buf);
}

/* ---------------------------------------------------------------------------------------------
 * Decoders (protobuf-c validates the wire format).
 * ------------------------------------------------------------------------------------------- */

static int conf_from_pb(const Raftpb__ConfState *pb, struct raft_conf_state *cs)
{
	memset(cs, 0, sizeof *cs);
	if (!pb)
		return 0;
	if (pb->n_voters > RAFT_MAX_MEMBERS || pb->n_learners > RAFT_MAX_MEMBERS ||
	    pb->n_voters + pb->n_learners > RAFT_MAX_MEMBERS)
		return RAFT_EINVAL;
	for (size_t i = 0; i < pb->n_voters; i++)
		cs->voters[i] = pb->voters[i];
	for (size_t i = 0; i < pb->n_learners; i++)
		cs->learners[i] = pb->learners[i];
	cs->n_voters = pb->n_voters;
	cs->n_learners = pb->n_learners;
	return 0;
}

static int meta_from_pb(const Raftpb__SnapshotMetadata *pb, struct raft_snapshot_meta *sm)
{
	memset(sm, 0, sizeof *sm);
	if (!pb)
		return 0;
	sm->index = pb->index;
	sm->term = pb->term;
	return conf_from_pb(pb->conf_state, &sm->conf);
}

static int type_ok(int t, int max)
{
	return t >= 0 && t <= max;
}

int raft_message_decode(const uint8_t *buf, size_t len, struct raft_message *m)
{
	memset(m, 0, sizeof *m);
	Raftpb__Message *pb = raftpb__message__unpack(NULL, len, buf);
	if (!pb)
		return RAFT_EINVAL;
	int rv = RAFT_EINVAL;
	if (!type_ok((int)pb->type, RAFT_MSG_TYPE_COUNT - 1))
		goto out;
	/* One block: entries array, then every payload. */
	size_t bytes = pb->n_entries * sizeof(struct raft_entry);
	for (size_t i = 0; i < pb->n_entries; i++) {
		if (!type_ok((int)pb->entries[i]->type, RAFT_ENTRY_CONF_CHANGE))
			goto out;
		bytes += pb->entries[i]->data.len;
	}
	if (pb->snapshot)
		bytes += pb->snapshot->data.len;
	bytes += pb->context.len;
	unsigned char *block = malloc(bytes ? bytes : 1);
	if (!block) {
		rv = -ENOMEM;
		goto out;
	}
	unsigned char *p = block;
	m->type = (int)pb->type;
	m->to = pb->to;
	m->from = pb->from;
	m->term = pb->term;
	m->log_term = pb->log_term;
	m->index = pb->index;
	m->commit = pb->commit;
	m->reject = pb->reject ? 1 : 0;
	m->reject_hint = pb->reject_hint;
	m->entries = (struct raft_entry *)block;
	m->n_entries = pb->n_entries;
	p += pb->n_entries * sizeof(struct raft_entry);
	for (size_t i = 0; i < pb->n_entries; i++) {
		Raftpb__Entry *e = pb->entries[i];
		struct raft_entry *d = &m->entries[i];
		d->term = e->term;
		d->index = e->index;
		d->type = (int)e->type;
		d->len = e->data.len;
		d->data = NULL;
		if (e->data.len) {
			memcpy(p, e->data.data, e->data.len);
			d->data = p;
			p += e->data.len;
		}
	}
	if (pb->snapshot) {
		m->has_snapshot = 1;
		if (meta_from_pb(pb->snapshot->metadata, &m->snapshot.meta) != 0) {
			free(block);
			memset(m, 0, sizeof *m);
			goto out;
		}
		m->snapshot.len = pb->snapshot->data.len;
		if (m->snapshot.len) {
			memcpy(p, pb->snapshot->data.data, m->snapshot.len);
			m->snapshot.data = p;
			p += m->snapshot.len;
		}
	}
	if (pb->context.len) {
		memcpy(p, pb->context.data, pb->context.len);
		m->context = p;
		m->context_len = pb->context.len;
	}
	rv = 0;
out:
	raftpb__message__free_unpacked(pb, NULL);
	return rv;
}

void raft_message_free_decoded(struct raft_message *m)
{
	free(m->entries);
	memset(m, 0, sizeof *m);
}

int raft_entry_decode(const uint8_t *buf, size_t len, struct raft_entry *e)
{
	memset(e, 0, sizeof *e);
	Raftpb__Entry *pb = raftpb__entry__unpack(NULL, len, buf);
	if (!pb)
		return RAFT_EINVAL;
	int rv = RAFT_EINVAL;
	if (!type_ok((int)pb->type, RAFT_ENTRY_CONF_CHANGE))
		goto out;
	e->term = pb->term;
	e->index = pb->index;
	e->type = (int)pb->type;
	if (pb->data.len) {
		e->data = malloc(pb->data.len);
		if (!e->data) {
			rv = -ENOMEM;
			goto out;
		}
		memcpy(e->data, pb->data.data, pb->data.len);
		e->len = pb->data.len;
	}
	rv = 0;
out:
	raftpb__entry__free_unpacked(pb, NULL);
	return rv;
}

int raft_hard_state_decode(const uint8_t *buf, size_t len, struct raft_hard_state *hs)
{
	memset(hs, 0, sizeof *hs);
	Raftpb__HardState *pb = raftpb__hard_state__unpack(NULL, len, buf);
	if (!pb)
		return RAFT_EINVAL;
	hs->term = pb->term;
	hs->vote = pb->vote;
	hs->commit = pb->commit;
	raftpb__hard_state__free_unpacked(pb, NULL);
	return 0;
}

int raft_conf_state_decode(const uint8_t *buf, size_t len, struct raft_conf_state *cs)
{
	memset(cs, 0, sizeof *cs);
	Raftpb__ConfState *pb = raftpb__conf_state__unpack(NULL, len, buf);
	if (!pb)
		return RAFT_EINVAL;
	int rv = conf_from_pb(pb, cs);
	raftpb__conf_state__free_unpacked(pb, NULL);
	return rv;
}

int raft_snapshot_meta_decode(const uint8_t *buf, size_t len, struct raft_snapshot_meta *sm)
{
	memset(sm, 0, sizeof *sm);
	Raftpb__SnapshotMetadata *pb = raftpb__snapshot_metadata__unpack(NULL, len, buf);
	if (!pb)
		return RAFT_EINVAL;
	int rv = meta_from_pb(pb, sm);
	raftpb__snapshot_metadata__free_unpacked(pb, NULL);
	return rv;
}

int raft_conf_change_decode(const uint8_t *buf, size_t len, struct raft_conf_change *cc)
{
	memset(cc, 0, sizeof *cc);
	Raftpb__ConfChange *pb = raftpb__conf_change__unpack(NULL, len, buf);
	if (!pb)
		return RAFT_EINVAL;
	int rv = RAFT_EINVAL;
	if (!type_ok((int)pb->type, RAFT_CONF_ADD_LEARNER_NODE))
		goto out;
	cc->type = (int)pb->type;
	cc->node_id = pb->node_id;
	cc->id = pb->id;
	if (pb->context.len) {
		cc->context = malloc(pb->context.len);
		if (!cc->context) {
			rv = -ENOMEM;
			goto out;
		}
		memcpy(cc->context, pb->context.data, pb->context.len);
		cc->context_len = pb->context.len;
	}
	rv = 0;
out:
	raftpb__conf_change__free_unpacked(pb, NULL);
	return rv;
}
