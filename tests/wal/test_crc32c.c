/* test_crc32c.c: CRC-32C known answers, chaining, and agreement with a bitwise reference. */
#include "check.h"
#include "wal_internal.h"

/* The textbook bit-at-a-time CRC-32C, as the reference for the table-driven one. */
static uint32_t crc32c_bitwise(uint32_t crc, const unsigned char *p, size_t len)
{
	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
	}
	return ~crc;
}

CHECK_TEST(known_answers)
{
	/* The check value of CRC-32C, and RFC 3720 (iSCSI) appendix B.4 vectors. */
	CHECK_EQ_U64(wal_crc32c(0, "123456789", 9), 0xE3069283u);
	CHECK_EQ_U64(wal_crc32c(0, "", 0), 0);
	unsigned char zeros[32] = {0}, ones[32], inc[32];
	memset(ones, 0xff, sizeof ones);
	for (int i = 0; i < 32; i++)
		inc[i] = (unsigned char)i;
	CHECK_EQ_U64(wal_crc32c(0, zeros, 32), 0x8A9136AAu);
	CHECK_EQ_U64(wal_crc32c(0, ones, 32), 0x62A8AB43u);
	CHECK_EQ_U64(wal_crc32c(0, inc, 32), 0x46DD794Eu);
}

CHECK_TEST(chaining_equals_whole)
{
	const char *s = "raftfs chains every record's crc from the one before it";
	size_t n = strlen(s);
	uint32_t whole = wal_crc32c(0, s, n);
	for (size_t cut = 0; cut <= n; cut++)
		CHECK_EQ_U64(wal_crc32c(wal_crc32c(0, s, cut), s + cut, n - cut), whole);
}

CHECK_TEST(matches_bitwise_reference)
{
	uint64_t x = check_seed() | 1;
	unsigned char buf[1031];
	for (size_t i = 0; i < sizeof buf; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		buf[i] = (unsigned char)x;
	}
	/* Every length and misalignment through both paths (slicing-by-8 and SSE4.2). */
	printf("# sse4.2 path %s\n", wal__crc32c_hw_available() ? "available" : "not available");
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; len + off <= sizeof buf; len += 37) {
			uint32_t want = crc32c_bitwise(0x1234, buf + off, len);
			CHECK_EQ_U64(wal_crc32c(0x1234, buf + off, len), want);
			CHECK_EQ_U64(wal__crc32c_sw(0x1234, buf + off, len), want);
			CHECK_EQ_U64(wal__crc32c_hw(0x1234, buf + off, len), want);
		}
}

CHECK_SUITE("wal-crc32c", CHECK_CASE(known_answers), CHECK_CASE(chaining_equals_whole),
	    CHECK_CASE(matches_bitwise_reference))
