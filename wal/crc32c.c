/*
 * crc32c.c: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum chaining every WAL
 * and snapshot record. Slicing-by-8 tables are built once on first use; the result matches Go's
 * crc32.Update(crc, crc32.MakeTable(crc32.Castagnoli), buf), so etcd's chained values carry over.
 * On x86-64 CPUs with SSE4.2 (checked at run time) the crc32 instruction does the work instead,
 * several times faster; tests/wal/test_crc32c.c checks both paths against a bitwise reference.
 */
#include "wal_internal.h"

#include <pthread.h>
#include <string.h>

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc32c_table[8][256]; /* written once under crc32c_once, read-only after */
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void crc32c_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		crc32c_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc32c_table[t][i] = (crc32c_table[t - 1][i] >> 8) ^
					     crc32c_table[0][crc32c_table[t - 1][i] & 0xff];
}

uint32_t wal__crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	pthread_once(&crc32c_once, crc32c_init);
	crc = ~crc;
	while (len >= 8) {
		uint32_t lo, hi;
		memcpy(&lo, p, 4);
		memcpy(&hi, p + 4, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
		lo = __builtin_bswap32(lo);
		hi = __builtin_bswap32(hi);
#endif
		lo ^= crc;
		crc = crc32c_table[7][lo & 0xff] ^ crc32c_table[6][(lo >> 8) & 0xff] ^
		      crc32c_table[5][(lo >> 16) & 0xff] ^ crc32c_table[4][lo >> 24] ^
		      crc32c_table[3][hi & 0xff] ^ crc32c_table[2][(hi >> 8) & 0xff] ^
		      crc32c_table[1][(hi >> 16) & 0xff] ^ crc32c_table[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ crc32c_table[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>

/* The SSE4.2 crc32 instruction computes the same reflected CRC-32C, 8 bytes at a time. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *buf,
							     size_t len)
{
	const unsigned char *p = buf;
	uint64_t c = ~crc;
	while (len && ((uintptr_t)p & 7)) {
		c = _mm_crc32_u8((uint32_t)c, *p++);
		len--;
	}
	while (len >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = _mm_crc32_u64(c, v);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return ~(uint32_t)c;
}

int wal__crc32c_hw_available(void)
{
	return __builtin_cpu_supports("sse4.2");
}

uint32_t wal__crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
	return crc32c_hw(crc, buf, len);
}

uint32_t wal_crc32c(uint32_t crc, const void *buf, size_t len)
{
	static int hw = -1; /* -1 until first use; every thread computes the same value */
	int h = __atomic_load_n(&hw, __ATOMIC_RELAXED);
	if (h < 0) {
		h = __builtin_cpu_supports("sse4.2") ? 1 : 0;
		__atomic_store_n(&hw, h, __ATOMIC_RELAXED);
	}
	return h ? crc32c_hw(crc, buf, len) : wal__crc32c_sw(crc, buf, len);
}
#else
int wal__crc32c_hw_available(void)
{
	return 0;
}

uint32_t wal__crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
	return wal__crc32c_sw(crc, buf, len);
}

uint32_t wal_crc32c(uint32_t crc, const void *buf, size_t len)
{
	return wal__crc32c_sw(crc, buf, len);
}
#endif
