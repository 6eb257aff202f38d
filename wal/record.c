/*
 * record.c: the WAL record codec. A frame is an 8-byte little-endian length word (low 56 bits: the
 * encoded record's length; top byte 0x80 | pad when pad bytes of zero padding follow to reach
 * 8-byte alignment), the protobuf walpb.Record {int64 type = 1; uint32 crc = 2; bytes data = 3},
 * then the padding. The protobuf messages are hand-encoded here, byte-identical to etcd's
 * gogoproto output (every scalar field written, in field-number order), so that encoding a batch
 * allocates nothing; tests/wal/test_record.c checks them against protobuf-c. The decoders accept
 * fields in any order but are strict otherwise: every field we always write (all but Record.data,
 * which crc records lack) must be there and no unknown one, so that a bit flip turning one record type into another (the type is not
 * covered by the crc) is caught rather than read as a different, valid record. This
 * file is pure: no I/O, no globals, so the libFuzzer target compiles it alone.
 */
#include "wal_internal.h"

#include <string.h>

/* =============================== protobuf primitives ============================================ */

static size_t varint_size(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static size_t varint_put(uint8_t *out, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

/* Reads a varint from buf[*pos..len); 0, or -1 when truncated or longer than 10 bytes. */
static int varint_get(const uint8_t *buf, size_t len, size_t *pos, uint64_t *v)
{
	uint64_t r = 0;
	for (unsigned shift = 0; shift < 70; shift += 7) {
		if (*pos >= len)
			return -1;
		uint8_t b = buf[(*pos)++];
		if (shift == 63 && b > 1)
			return -1;
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -1;
}

/* One field of a message: its number, wire type and value (varint value, or bytes). */
struct pb_field {
	uint32_t num;
	unsigned wire;
	uint64_t v;
	const uint8_t *bytes;
	size_t len;
};

/* Reads the next field; 1 when one was read, 0 at the end, -1 when malformed. */
static int pb_next(const uint8_t *buf, size_t len, size_t *pos, struct pb_field *f)
{
	uint64_t key;
	if (*pos >= len)
		return 0;
	if (varint_get(buf, len, pos, &key) != 0)
		return -1;
	f->num = (uint32_t)(key >> 3);
	f->wire = (unsigned)(key & 7);
	if (key >> 3 == 0 || key >> 3 > 0x1fffffff)
		return -1;
	switch (f->wire) {
	case 0:
		return varint_get(buf, len, pos, &f->v) == 0 ? 1 : -1;
	case 1:
		if (len - *pos < 8)
			return -1;
		*pos += 8;
		return 1;
	case 2:
		if (varint_get(buf, len, pos, &f->v) != 0 || f->v > len - *pos)
			return -1;
		f->bytes = buf + *pos;
		f->len = (size_t)f->v;
		*pos += (size_t)f->v;
		return 1;
	case 5:
		if (len - *pos < 4)
			return -1;
		*pos += 4;
		return 1;
	default: /* groups (3, 4) and 6, 7 are not used by any of our messages */
		return -1;
	}
}

static size_t put_varint_field(uint8_t *out, uint32_t num, uint64_t v)
{
	size_t n = varint_put(out, (uint64_t)num << 3);
	return n + varint_put(out + n, v);
}

static size_t put_bytes_field(uint8_t *out, uint32_t num, const void *data, size_t len)
{
	size_t n = varint_put(out, (uint64_t)num << 3 | 2);
	n += varint_put(out + n, len);
	if (len)
		memcpy(out + n, data, len);
	return n + len;
}

/* ===================================== frames =================================================== */

static size_t record_size(int64_t type, uint32_t crc, size_t data_len, int has_data)
{
	size_t n = 1 + varint_size((uint64_t)type) + 1 + varint_size(crc);
	if (has_data)
		n += 1 + varint_size(data_len) + data_len;
	return n;
}

size_t wal__frame_size(int64_t type, uint32_t crc, size_t data_len, int has_data)
{
	size_t n = record_size(type, crc, data_len, has_data);
	return 8 + ((n + 7) & ~(size_t)7);
}

size_t wal__frame_encode(uint8_t *out, int64_t type, uint32_t crc, const void *data, size_t len,
			 int has_data)
{
	size_t rlen = record_size(type, crc, len, has_data);
	size_t pad = (8 - rlen % 8) % 8;
	uint64_t word = (uint64_t)rlen;
	if (pad)
		word |= (uint64_t)(0x80 | pad) << 56;
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(word >> (8 * i));
	size_t n = 8;
	n += put_varint_field(out + n, 1, (uint64_t)type);
	n += put_varint_field(out + n, 2, crc);
	if (has_data)
		n += put_bytes_field(out + n, 3, data, len);
	memset(out + n, 0, pad);
	return n + pad;
}

int wal__frame_decode(const uint8_t *buf, size_t avail, struct wal__rec *rec, size_t *frame_len,
		      const char **why)
{
	uint64_t word = 0;
	if (avail < 8)
		return WAL__SHORT;
	for (int i = 0; i < 8; i++)
		word |= (uint64_t)buf[i] << (8 * i);
	if (word == 0)
		return WAL__ZERO;
	uint64_t rlen = word & 0x00ffffffffffffffull;
	unsigned top = (unsigned)(word >> 56);
	unsigned pad = top & 0x80 ? top & 0x7f : 0;
	if ((top & 0x80) == 0 && top != 0) {
		*why = "length word has bits set in its top byte without the padding flag";
		return WAL_ECORRUPT;
	}
	if (pad != (8 - rlen % 8) % 8 || (top & 0x80 && pad == 0)) {
		*why = "length word's padding does not match its length";
		return WAL_ECORRUPT;
	}
	if (rlen > avail - 8 || pad > avail - 8 - rlen)
		return WAL__SHORT;
	for (unsigned i = 0; i < pad; i++)
		if (buf[8 + rlen + i]) {
			*why = "padding is not zero";
			return WAL_ECORRUPT;
		}
	const uint8_t *p = buf + 8;
	size_t pos = 0;
	struct pb_field f;
	int r;
	unsigned seen = 0;
	memset(rec, 0, sizeof *rec);
	while ((r = pb_next(p, (size_t)rlen, &pos, &f)) == 1) {
		if (f.num == 1 && f.wire == 0)
			rec->type = (int64_t)f.v;
		else if (f.num == 2 && f.wire == 0 && f.v <= UINT32_MAX)
			rec->crc = (uint32_t)f.v;
		else if (f.num == 3 && f.wire == 2) {
			rec->data = f.bytes;
			rec->len = f.len;
		} else {
			*why = "record has an unknown field, or a field of the wrong wire type or range";
			return WAL_ECORRUPT;
		}
		seen |= 1u << f.num;
	}
	if (r < 0) {
		*why = "record is not a valid protobuf message";
		return WAL_ECORRUPT;
	}
	if ((seen & 0x6) != 0x6) {
		*why = "record lacks its type or crc";
		return WAL_ECORRUPT;
	}
	if (rec->type < WAL_REC_METADATA || rec->type > WAL_REC_SNAPSHOT) {
		*why = "record type is unknown";
		return WAL_ECORRUPT;
	}
	*frame_len = 8 + (size_t)rlen + pad;
	return 0;
}

/* ================================ raftpb / walpb messages ======================================= */

size_t wal__entry_size(const struct wal_entry *e)
{
	return 1 + varint_size((uint64_t)(int64_t)e->type) + 1 + varint_size(e->term) + 1 +
	       varint_size(e->index) + 1 + varint_size(e->len) + e->len;
}

size_t wal__entry_encode(uint8_t *out, const struct wal_entry *e)
{
	size_t n = put_varint_field(out, 1, (uint64_t)(int64_t)e->type);
	n += put_varint_field(out + n, 2, e->term);
	n += put_varint_field(out + n, 3, e->index);
	return n + put_bytes_field(out + n, 4, e->data, e->len);
}

int wal__entry_decode(const uint8_t *buf, size_t len, struct wal_entry *e)
{
	size_t pos = 0;
	struct pb_field f;
	int r;
	unsigned seen = 0;
	memset(e, 0, sizeof *e);
	while ((r = pb_next(buf, len, &pos, &f)) == 1) {
		if (f.num == 1 && f.wire == 0)
			e->type = (int)(int32_t)f.v;
		else if (f.num == 2 && f.wire == 0)
			e->term = f.v;
		else if (f.num == 3 && f.wire == 0)
			e->index = f.v;
		else if (f.num == 4 && f.wire == 2) {
			e->data = f.bytes;
			e->len = f.len;
		} else
			return -1;
		seen |= 1u << f.num;
	}
	return r < 0 || seen != 0x1e ? -1 : 0;
}

size_t wal__hard_state_encode(uint8_t out[33], const struct wal_hard_state *hs)
{
	size_t n = put_varint_field(out, 1, hs->term);
	n += put_varint_field(out + n, 2, hs->vote);
	return n + put_varint_field(out + n, 3, hs->commit);
}

int wal__hard_state_decode(const uint8_t *buf, size_t len, struct wal_hard_state *hs)
{
	size_t pos = 0;
	struct pb_field f;
	int r;
	unsigned seen = 0;
	memset(hs, 0, sizeof *hs);
	while ((r = pb_next(buf, len, &pos, &f)) == 1) {
		if (f.num == 1 && f.wire == 0)
			hs->term = f.v;
		else if (f.num == 2 && f.wire == 0)
			hs->vote = f.v;
		else if (f.num == 3 && f.wire == 0)
			hs->commit = f.v;
		else
			return -1;
		seen |= 1u << f.num;
	}
	return r < 0 || seen != 0xe ? -1 : 0;
}

size_t wal__snapref_encode(uint8_t out[22], struct wal_snapshot_ref s)
{
	size_t n = put_varint_field(out, 1, s.index);
	return n + put_varint_field(out + n, 2, s.term);
}

int wal__snapref_decode(const uint8_t *buf, size_t len, struct wal_snapshot_ref *s)
{
	size_t pos = 0;
	struct pb_field f;
	int r;
	unsigned seen = 0;
	memset(s, 0, sizeof *s);
	while ((r = pb_next(buf, len, &pos, &f)) == 1) {
		if (f.num == 1 && f.wire == 0)
			s->index = f.v;
		else if (f.num == 2 && f.wire == 0)
			s->term = f.v;
		else
			return -1;
		seen |= 1u << f.num;
	}
	return r < 0 || seen != 0x6 ? -1 : 0;
}

size_t wal__snapfile_header(uint8_t out[WAL__SNAPFILE_HEADER_MAX], uint32_t crc, size_t len)
{
	size_t n = put_varint_field(out, 1, crc);
	n += varint_put(out + n, (uint64_t)2 << 3 | 2);
	return n + varint_put(out + n, len);
}

int wal__snapfile_decode(const uint8_t *buf, size_t len, uint32_t *crc, const uint8_t **data,
			 size_t *data_len)
{
	size_t pos = 0;
	struct pb_field f;
	int r, have_data = 0;
	*crc = 0;
	*data = NULL;
	*data_len = 0;
	while ((r = pb_next(buf, len, &pos, &f)) == 1) {
		if (f.num == 1 && f.wire == 0 && f.v <= UINT32_MAX)
			*crc = (uint32_t)f.v;
		else if (f.num == 2 && f.wire == 2) {
			*data = f.bytes;
			*data_len = f.len;
			have_data = 1;
		} else if (f.num <= 2)
			return -1;
	}
	return r < 0 || !have_data ? -1 : 0;
}
