/*
 * fuzz_snapshot.c: the store's snapshot restore under fuzzing. A member restores images that a
 * peer sent (raft's InstallSnapshot) or that a disk kept, so a damaged or hostile image must be
 * refused with STORE_ECORRUPT and must never crash, hang or leak. The input's first byte picks
 * how the rest is used: odd, the rest is a raw image that this target compresses into a valid
 * zstd frame first (so the mutations reach the image parser); even, the rest is given to restore
 * as is (the zstd framing, checksum and window handling). An image that restores must leave a
 * store that keeps the contract and works: every live key in order with revisions the store can
 * have, hash_kv, a put, a compaction, and a save whose restore has the same hash.
 * Seeds: fuzz-seeds/, a store with leases, deletions, several generations and a compaction, as a
 * raw image (mode byte 1) and as the saved zstd frame (mode byte 0); this file built with
 * -DFUZZ_SNAPSHOT_MAKE_SEEDS is the program that wrote them:
 *   cc -DFUZZ_SNAPSHOT_MAKE_SEEDS -Istore tests/store/fuzz_snapshot.c build/store/libstore.a -lzstd
 *   ./a.out tests/store/fuzz-seeds
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
	fprintf(stderr, "fuzz-store-snapshot: %s\n", what);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *in = data + 1;
	size_t n = size - 1;
	void *frame = NULL;
	if (data[0] & 1) {
		size_t cap = ZSTD_compressBound(n);
		frame = malloc(cap ? cap : 1);
		if (!frame)
			return 0;
		size_t got = ZSTD_compress(frame, cap, in, n, 1);
		if (ZSTD_isError(got)) {
			free(frame);
			return 0;
		}
		in = frame;
		n = got;
	}
	struct store *s;
	if (store_open(&(struct store_config){.quota_bytes = 1ull << 30}, &s))
		fail("store_open");
	int r = store_snapshot_restore(s, in, n);
	if (r != 0 && r != STORE_ECORRUPT)
		fail("restore returned neither 0 nor STORE_ECORRUPT");
	if (r == 0) {
		uint64_t h1, h2;
		if (store_hash_kv(s, 0, &h1))
			fail("hash_kv after restore");
		/* what every reader relies on: live keys in order, revisions within the store's */
		if (store_compact_rev(s) > store_rev(s))
			fail("compacted beyond the current revision");
		struct store_range_req all = {.key = "", .key_len = 0, .end = "\0", .end_len = 1};
		struct store_range_result res;
		if (store_range(s, &all, &res))
			fail("a range of every key");
		for (size_t i = 0; i < res.n; i++) {
			const struct store_kv *kv = &res.kvs[i];
			if (kv->mod_revision > store_rev(s) || kv->create_revision > kv->mod_revision ||
			    kv->create_revision < 1 || kv->version < 1)
				fail("a live key with revisions the store cannot have");
			if (i && memcmp(res.kvs[i - 1].key, kv->key,
					kv->key_len < res.kvs[i - 1].key_len ? kv->key_len
									     : res.kvs[i - 1].key_len) > 0)
				fail("keys out of order");
		}
		store_range_result_free(&res);
		void *img;
		size_t len;
		if (store_snapshot_save_buf(s, &img, &len))
			fail("save after restore");
		struct store *t;
		if (store_open(&(struct store_config){.quota_bytes = 1ull << 30}, &t))
			fail("store_open");
		if (store_snapshot_restore(t, img, len))
			fail("a restored store's own image does not restore");
		if (store_hash_kv(t, 0, &h2) || h1 != h2)
			fail("a restored store's own image restores with another hash");
		free(img);
		store_close(t);
		struct store_put p = {.key = "/fuzz", .key_len = 5, .value = "v", .value_len = 1};
		store_put(s, &p, NULL);
		if (store_rev(s) > store_compact_rev(s))
			store_compact(s, store_rev(s));
	}
	store_close(s);
	free(frame);
	return 0;
}

#ifdef FUZZ_SNAPSHOT_MAKE_SEEDS
static void put_seed(const char *dir, const char *name, int mode, const void *p, size_t n)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	unsigned char m = (unsigned char)mode;
	if (!f || fwrite(&m, 1, 1, f) != 1 || fwrite(p, 1, n, f) != n || fclose(f) != 0)
		fail(path);
}

int main(int argc, char **argv)
{
	if (argc != 2)
		fail("usage: make-seeds DIR");
	struct store *s;
	if (store_open(&(struct store_config){.quota_bytes = 1ull << 30}, &s))
		fail("store_open");
	if (store_lease_grant(s, 7, 60, 0))
		fail("lease grant");
	char k[16], v[16];
	for (int i = 0; i < 40; i++) {
		snprintf(k, sizeof k, "/d/k%02d", i % 9);
		snprintf(v, sizeof v, "v%d", i);
		if (i % 5 == 4) {
			struct store_delete dr = {.key = k, .key_len = strlen(k)};
			store_delete_range(s, &dr, NULL);
			continue;
		}
		struct store_put p = {.key = k, .key_len = strlen(k), .value = v,
				      .value_len = strlen(v), .lease = i % 7 == 0 ? 7 : 0,
				      .meta = {.type = 0100000, .mode = 0644, .mtime_ns = i}};
		if (store_put(s, &p, NULL))
			fail("put");
	}
	if (store_compact(s, 20))
		fail("compact");
	store_set_applied_index(s, 99);
	void *img;
	size_t len;
	if (store_snapshot_save_buf(s, &img, &len))
		fail("save");
	unsigned long long raw_n = ZSTD_getFrameContentSize(img, len);
	void *raw = malloc(raw_n);
	if (!raw || ZSTD_decompress(raw, raw_n, img, len) != raw_n)
		fail("decompress");
	put_seed(argv[1], "raw-image.bin", 1, raw, raw_n);
	put_seed(argv[1], "zstd-image.bin", 0, img, len);
	free(raw);
	free(img);
	store_close(s);
	return 0;
}
#endif
