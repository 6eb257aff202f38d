/*
 * test_record.c: the record codec (wal/record.c): frames and messages byte-identical to what
 * protobuf-c makes of walpb.proto and raftpb.proto, seed 003's worked hex examples decoding as the
 * seed says, and the decoder rejecting damaged frames.
 */
#include "check.h"
#include "raftpb.pb-c.h"
#include "wal_internal.h"
#include "walpb.pb-c.h"

static void fill(uint8_t *p, size_t n, uint64_t x)
{
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

CHECK_TEST(frame_matches_protobuf_c)
{
	static const uint32_t crcs[] = {0, 1, 127, 128, 0xB2A4B742u, 0xffffffffu};
	uint8_t data[300], frame[400], ref[400];
	fill(data, sizeof data, check_seed() | 1);
	for (int64_t type = 1; type <= 5; type++)
		for (size_t c = 0; c < sizeof crcs / sizeof crcs[0]; c++)
			for (size_t len = 0; len < sizeof data; len += (len < 20 ? 1 : 37))
				for (int has = 0; has <= 1; has++) {
					Walpb__Record r = WALPB__RECORD__INIT;
					r.has_type = r.has_crc = 1;
					r.type = type;
					r.crc = crcs[c];
					r.has_data = has;
					r.data.data = data;
					r.data.len = has ? len : 0;
					size_t rl = walpb__record__pack(&r, ref);
					size_t fl = wal__frame_encode(frame, type, crcs[c], data,
								      has ? len : 0, has);
					CHECK_EQ(fl, wal__frame_size(type, crcs[c], has ? len : 0, has));
					CHECK_EQ(fl % 8, 0);
					CHECK_EQ(fl, 8 + ((rl + 7) & ~(size_t)7));
					size_t pad = fl - 8 - rl;
					uint64_t word = le64(frame);
					CHECK_EQ(word & 0x00ffffffffffffffull, rl);
					CHECK_EQ(word >> 56, pad ? 0x80 | pad : 0);
					CHECK_MEM_EQ(frame + 8, ref, rl);
					for (size_t i = 0; i < pad; i++)
						CHECK_EQ(frame[8 + rl + i], 0);
					/* And it decodes back. */
					struct wal__rec rec;
					size_t dl;
					const char *why = NULL;
					CHECK_EQ(wal__frame_decode(frame, fl, &rec, &dl, &why), 0);
					CHECK_EQ(dl, fl);
					CHECK_EQ(rec.type, type);
					CHECK_EQ_U64(rec.crc, crcs[c]);
					CHECK_EQ(rec.data != NULL, has);
					CHECK_EQ(rec.len, has ? len : 0);
					if (has && len)
						CHECK_MEM_EQ(rec.data, data, len);
				}
}

CHECK_TEST(messages_match_protobuf_c)
{
	static const uint64_t vals[] = {0, 1, 127, 128, 300, 1ull << 35, UINT64_MAX};
	const size_t nv = sizeof vals / sizeof vals[0];
	uint8_t data[200], out[400], ref[400];
	fill(data, sizeof data, 42);
	for (size_t a = 0; a < nv; a++)
		for (size_t b = 0; b < nv; b++) {
			/* raftpb.Entry */
			for (int type = 0; type <= 1; type++) {
				size_t len = (a * 7 + b) % sizeof data;
				struct wal_entry e = {vals[a], vals[b], type, data, len}, d;
				Raftpb__Entry re = RAFTPB__ENTRY__INIT;
				re.has_term = re.has_index = re.has_type = re.has_data = 1;
				re.term = vals[a];
				re.index = vals[b];
				re.type = (Raftpb__EntryType)type;
				re.data.data = data;
				re.data.len = len;
				size_t rl = raftpb__entry__pack(&re, ref);
				CHECK_EQ(wal__entry_size(&e), rl);
				CHECK_EQ(wal__entry_encode(out, &e), rl);
				CHECK_MEM_EQ(out, ref, rl);
				CHECK_EQ(wal__entry_decode(out, rl, &d), 0);
				CHECK_EQ_U64(d.term, e.term);
				CHECK_EQ_U64(d.index, e.index);
				CHECK_EQ(d.type, type);
				CHECK_EQ(d.len, len);
			}
			/* raftpb.HardState */
			struct wal_hard_state hs = {vals[a], vals[b], vals[(a + b) % nv]}, hd;
			Raftpb__HardState rh = RAFTPB__HARD_STATE__INIT;
			rh.has_term = rh.has_vote = rh.has_commit = 1;
			rh.term = hs.term;
			rh.vote = hs.vote;
			rh.commit = hs.commit;
			size_t rl = raftpb__hard_state__pack(&rh, ref);
			CHECK_EQ(wal__hard_state_encode(out, &hs), rl);
			CHECK_MEM_EQ(out, ref, rl);
			CHECK_EQ(wal__hard_state_decode(out, rl, &hd), 0);
			CHECK(memcmp(&hd, &hs, sizeof hs) == 0);
			/* walpb.Snapshot */
			struct wal_snapshot_ref s = {vals[a], vals[b]}, sd;
			Walpb__Snapshot ws = WALPB__SNAPSHOT__INIT;
			ws.has_index = ws.has_term = 1;
			ws.index = s.index;
			ws.term = s.term;
			rl = walpb__snapshot__pack(&ws, ref);
			CHECK_EQ(wal__snapref_encode(out, s), rl);
			CHECK_MEM_EQ(out, ref, rl);
			CHECK_EQ(wal__snapref_decode(out, rl, &sd), 0);
			CHECK_EQ_U64(sd.index, s.index);
			CHECK_EQ_U64(sd.term, s.term);
			/* The snapshot file body. */
			uint32_t crc = (uint32_t)vals[a];
			Walpb__SnapFile sf = WALPB__SNAP_FILE__INIT;
			sf.has_crc = sf.has_data = 1;
			sf.crc = crc;
			sf.data.data = data;
			sf.data.len = b * 20 % sizeof data;
			rl = walpb__snap_file__pack(&sf, ref);
			size_t hl = wal__snapfile_header(out, crc, sf.data.len);
			CHECK_LE(hl, WAL__SNAPFILE_HEADER_MAX);
			memcpy(out + hl, data, sf.data.len);
			CHECK_EQ(hl + sf.data.len, rl); /* the header is all that precedes the data */
			CHECK_MEM_EQ(out, ref, rl);
			uint32_t c2;
			const uint8_t *d2;
			size_t l2;
			CHECK_EQ(wal__snapfile_decode(out, rl, &c2, &d2, &l2), 0);
			CHECK_EQ_U64(c2, crc);
			CHECK_EQ(l2, sf.data.len);
		}
}

/* Fields in any order decode; an unknown field (a flipped tag bit, say) does not. */
CHECK_TEST(decoder_takes_any_order_rejects_unknown_fields)
{
	/* data first, then crc, then type. */
	const uint8_t rec[] = {0x1a, 0x02, 0xaa, 0xbb, 0x10, 0x07, 0x08, 0x02};
	uint8_t frame[32] = {0};
	frame[0] = sizeof rec;
	frame[7] = 0; /* 8 bytes: no padding */
	memcpy(frame + 8, rec, sizeof rec);
	struct wal__rec r;
	size_t fl;
	const char *why = NULL;
	CHECK_EQ(wal__frame_decode(frame, sizeof frame, &r, &fl, &why), 0);
	CHECK_EQ(fl, 16);
	CHECK_EQ(r.type, 2);
	CHECK_EQ(r.crc, 7);
	CHECK_EQ(r.len, 2);
	CHECK_EQ(r.data[0], 0xaa);
	/* Field 9 instead of the crc field 2. */
	frame[8 + 4] = 0x48;
	CHECK_EQ(wal__frame_decode(frame, sizeof frame, &r, &fl, &why), WAL_ECORRUPT);
	/* An entry with an extra field, or without its data. */
	uint8_t ent[64];
	struct wal_entry e = {1, 2, 0, "x", 1}, d;
	size_t el = wal__entry_encode(ent, &e);
	CHECK_EQ(wal__entry_decode(ent, el, &d), 0);
	CHECK_EQ(wal__entry_decode(ent, el - 3, &d), -1);
	ent[el] = 0x28, ent[el + 1] = 0x01;
	CHECK_EQ(wal__entry_decode(ent, el + 2, &d), -1);
	/* A hard state read as an entry and the other way round (a flipped type bit). */
	struct wal_hard_state hs = {1, 1, 4}, hd;
	uint8_t hb[33];
	size_t hl = wal__hard_state_encode(hb, &hs);
	CHECK_EQ(wal__entry_decode(hb, hl, &d), -1);
	CHECK_EQ(wal__hard_state_decode(ent, el, &hd), -1);
}

/* Seed 003, example 1: `04 00 00 00 00 00 00 84` then 08 04 10 00 and 4 bytes of padding is
 * record.Type = 4 (crcType), record.Crc = 0, record.Data = []. */
CHECK_TEST(seed003_example1_crc_record)
{
	const uint8_t bytes[] = {0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x84,
				 0x08, 0x04, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00};
	struct wal__rec r;
	size_t fl;
	const char *why = NULL;
	CHECK_EQ(wal__frame_decode(bytes, sizeof bytes, &r, &fl, &why), 0);
	CHECK_EQ(fl, 16);
	CHECK_EQ(r.type, WAL_REC_CRC);
	CHECK_EQ(r.crc, 0);
	CHECK(r.data == NULL);
	CHECK_EQ(r.len, 0);
	/* Our encoder writes the very same bytes for the first crc record of a log. */
	uint8_t out[16];
	CHECK_EQ(wal__frame_encode(out, WAL_REC_CRC, 0, NULL, 0, 0), 16);
	CHECK_MEM_EQ(out, bytes, 16);
}

/* Seed 003: `20 00 00 00 00 00 00 00` has the top bit clear: no padding, a 32-byte record. */
CHECK_TEST(seed003_second_record_length_word)
{
	uint8_t frame[40] = {0x20};
	/* A 32-byte metadata record: 08 01 10 xx(5) 1a 18 + 24 bytes of data = 2 + 6 + 2 + 22. */
	uint8_t meta[22];
	fill(meta, sizeof meta, 7);
	uint32_t crc = wal_crc32c(0, meta, sizeof meta);
	size_t fl = wal__frame_encode(frame, WAL_REC_METADATA, crc | 0x80000000u, meta, sizeof meta, 1);
	CHECK_EQ(fl, 40);
	const uint8_t word[8] = {0x20, 0, 0, 0, 0, 0, 0, 0};
	CHECK_MEM_EQ(frame, word, 8);
	struct wal__rec r;
	size_t dl;
	const char *why = NULL;
	CHECK_EQ(wal__frame_decode(frame, sizeof frame, &r, &dl, &why), 0);
	CHECK_EQ(dl, 40);
	CHECK_EQ(r.type, WAL_REC_METADATA);
	CHECK_EQ(r.len, 22);
}

/* Seed 003, example 2: `74 00 00 00 00 00 00 84`: padding 4, length 0x74; then 08 02 (entryType),
 * 10 c2 ee 92 95 0b (crc 0xB2A4B742), 1a 6a (106 bytes of data). */
CHECK_TEST(seed003_example2_entry_record)
{
	uint8_t bytes[128] = {0x74, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x84, 0x08, 0x02,
			      0x10, 0xc2, 0xee, 0x92, 0x95, 0x0b, 0x1a, 0x6a};
	fill(bytes + 18, 106, 99);
	struct wal__rec r;
	size_t fl;
	const char *why = NULL;
	CHECK_EQ(wal__frame_decode(bytes, sizeof bytes, &r, &fl, &why), 0);
	CHECK_EQ(fl, 8 + 0x74 + 4);
	CHECK_EQ(r.type, WAL_REC_ENTRY);
	CHECK_EQ_U64(r.crc, 0xB2A4B742u);
	CHECK_EQ(r.len, 106);
	CHECK(r.data == bytes + 18);
	uint8_t out[128];
	CHECK_EQ(wal__frame_encode(out, WAL_REC_ENTRY, 0xB2A4B742u, bytes + 18, 106, 1), 128);
	CHECK_MEM_EQ(out, bytes, 128);
}

CHECK_TEST(decoder_rejects_damage)
{
	uint8_t frame[64], bad[64];
	uint8_t data[13] = "hello, world";
	size_t fl = wal__frame_encode(frame, WAL_REC_ENTRY, 5, data, sizeof data, 1);
	struct wal__rec r;
	size_t dl;
	const char *why = NULL;
	/* Every truncation is SHORT (or ZERO for an all-zero prefix: none here). */
	for (size_t k = 0; k < fl; k++)
		CHECK_EQ(wal__frame_decode(frame, k, &r, &dl, &why), WAL__SHORT);
	uint8_t zero[16] = {0};
	CHECK_EQ(wal__frame_decode(zero, sizeof zero, &r, &dl, &why), WAL__ZERO);
	/* Padding inconsistent with the length. */
	memcpy(bad, frame, fl);
	bad[7] ^= 0x01;
	CHECK_EQ(wal__frame_decode(bad, fl, &r, &dl, &why), WAL_ECORRUPT);
	/* Non-zero padding. */
	memcpy(bad, frame, fl);
	bad[fl - 1] = 1;
	CHECK_EQ(wal__frame_decode(bad, fl, &r, &dl, &why), WAL_ECORRUPT);
	/* Unknown type. */
	memcpy(bad, frame, fl);
	bad[9] = 9;
	CHECK_EQ(wal__frame_decode(bad, fl, &r, &dl, &why), WAL_ECORRUPT);
	/* Bytes field running past the record. */
	memcpy(bad, frame, fl);
	bad[8 + 4] = 0x7f;
	CHECK_EQ(wal__frame_decode(bad, fl, &r, &dl, &why), WAL_ECORRUPT);
	/* Top byte without the padding flag. */
	memcpy(bad, frame, fl);
	bad[7] = 0x04;
	CHECK_EQ(wal__frame_decode(bad, fl, &r, &dl, &why), WAL_ECORRUPT);
	CHECK(why != NULL);
}

CHECK_SUITE("wal-record", CHECK_CASE(frame_matches_protobuf_c), CHECK_CASE(messages_match_protobuf_c),
	    CHECK_CASE(decoder_takes_any_order_rejects_unknown_fields),
	    CHECK_CASE(seed003_example1_crc_record), CHECK_CASE(seed003_second_record_length_word),
	    CHECK_CASE(seed003_example2_entry_record), CHECK_CASE(decoder_rejects_damage))
