/*
 * fuzz_record.c: libFuzzer target for the record decoder (wal/record.c). Decodes the input as a run
 * of frames the way wal_open reads a segment, decodes each record's data as the message its type
 * says, and the input as a snapshot file body; whatever decodes must re-encode and decode to the
 * same values. Built with clang -fsanitize=fuzzer,address,undefined (tests/wal/meson.build) and,
 * without libFuzzer, driven by tests/harness/fuzz_driver.c with random mutations of the seed
 * inputs.
 */
#include <stdlib.h>
#include <string.h>

#include "wal_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(c)                                                                                 \
	do {                                                                                       \
		if (!(c))                                                                          \
			abort();                                                                   \
	} while (0)

static void check_entry(const uint8_t *p, size_t len)
{
	struct wal_entry e, d;
	if (wal__entry_decode(p, len, &e) != 0)
		return;
	REQUIRE(e.len <= len);
	uint8_t *out = malloc(wal__entry_size(&e));
	size_t n = wal__entry_encode(out, &e);
	REQUIRE(n == wal__entry_size(&e));
	REQUIRE(wal__entry_decode(out, n, &d) == 0);
	REQUIRE(d.term == e.term && d.index == e.index && d.type == e.type && d.len == e.len);
	REQUIRE(e.len == 0 || memcmp(d.data, e.data, e.len) == 0);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	while (off < size) {
		struct wal__rec rec;
		size_t fl = 0;
		const char *why = NULL;
		int r = wal__frame_decode(data + off, size - off, &rec, &fl, &why);
		if (r != 0) {
			REQUIRE(r == WAL__SHORT || r == WAL__ZERO || (r == WAL_ECORRUPT && why));
			break;
		}
		REQUIRE(fl >= 8 && fl % 8 == 0 && fl <= size - off);
		REQUIRE(rec.type >= WAL_REC_METADATA && rec.type <= WAL_REC_SNAPSHOT);
		REQUIRE(!rec.data || (rec.data >= data + off && rec.data + rec.len <= data + off + fl));
		/* Re-encoding gives a frame that decodes to the same record. */
		size_t el = wal__frame_size(rec.type, rec.crc, rec.len, rec.data != NULL);
		uint8_t *enc = malloc(el);
		REQUIRE(wal__frame_encode(enc, rec.type, rec.crc, rec.data, rec.len, rec.data != NULL) ==
			el);
		struct wal__rec again;
		size_t fl2;
		REQUIRE(wal__frame_decode(enc, el, &again, &fl2, &why) == 0 && fl2 == el);
		REQUIRE(again.type == rec.type && again.crc == rec.crc && again.len == rec.len);
		free(enc);
		(void)wal_crc32c(rec.crc, rec.data, rec.len);
		if (rec.data) {
			struct wal_hard_state hs;
			struct wal_snapshot_ref s;
			if (rec.type == WAL_REC_ENTRY)
				check_entry(rec.data, rec.len);
			else if (rec.type == WAL_REC_STATE)
				(void)wal__hard_state_decode(rec.data, rec.len, &hs);
			else if (rec.type == WAL_REC_SNAPSHOT)
				(void)wal__snapref_decode(rec.data, rec.len, &s);
		}
		off += fl;
	}
	uint32_t crc;
	const uint8_t *d;
	size_t dl;
	if (wal__snapfile_decode(data, size, &crc, &d, &dl) == 0)
		REQUIRE(d >= data && d + dl <= data + size);
	check_entry(data, size);
	return 0;
}
