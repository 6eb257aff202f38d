/*
 * store_bench.c: the store's figures on one core. 1,000,000 puts of 256-byte values under
 * distinct keys (/bench/dNNN/fNNNNNNN: 1,000 directories of 1,000 files, inserted in a scrambled
 * order), point reads at random keys (store_get, and store_range with its allocated result),
 * 1,000-key prefix ranges (one directory), memory per live key beyond key and value (RSS growth /
 * keys), snapshot save and restore, hash_kv (whole, then what 100,000 more puts add), compaction
 * of half the history, and reads at random revisions of a key with 100,000 revisions. Prints one
 * `name: value` line per figure. Times are the process's CPU time (the machine is shared; wall
 * time would measure the neighbours).
 *
 * Memory: under a VM whose host backs guest memory lazily and takes freed guest memory back
 * (free page reporting), the first touch of memory costs the guest several ms per MiB, which is
 * the host's work, not the store's, and varies with the machine's history (a put phase ran at
 * 0.46-1.3 M/s, a restore took 0.44-1.3 s, on one build). So before the phases that take new memory
 * (the puts of new keys and the restore) the bench touches and frees as much memory as they will
 * take, which leaves the guest free memory the host has backed, and prints what that first touch
 * cost: store_first_touch_ms_per_mib (about 0.1 on bare metal), and the kernel's part of the puts'
 * time (store_put_sys_s: faulting in and zeroing their memory). store_mem_latency_ns is one
 * dependent load at a random place of 512 MiB, what a point read into a store of this size
 * pays per cache miss. store_get_floor_ns is a point read's two dependent misses (a hash slot,
 * then a record) on bare memory of the store's sizes, with the reads independent of each other
 * as the bench's are: the floor store_get_ns stands against. store_get_chained_floor_ns is the
 * same with each read waiting for the one before, what one read alone takes.
 *
 *   store-bench [keys]
 */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *map_huge(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("store-bench: mmap");
		exit(1);
	}
	(void)madvise(p, bytes, MADV_HUGEPAGE); /* as the store's slabs */
	return p;
}

/* Touches and frees bytes of new memory (see the top); the first touch's ms per MiB (wall). */
static double warm(size_t bytes)
{
	volatile char *p = map_huge(bytes);
	double t0 = wall_s();
	for (size_t i = 0; i < bytes; i += 4096)
		p[i] = 1;
	double t = wall_s() - t0;
	munmap((void *)p, bytes);
	return t * 1e3 / ((double)bytes / (1 << 20));
}

/* ns per dependent load at random places of bytes of memory (a random cyclic permutation). */
static double mem_latency_ns(size_t bytes)
{
	size_t n = bytes / 64; /* one pointer per cache line */
	uint64_t *a = map_huge(bytes);
	uint32_t *order = malloc(n * sizeof *order);
	if (!order)
		exit(1);
	for (size_t i = 0; i < n; i++)
		order[i] = (uint32_t)i;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (size_t i = n - 1; i > 0; i--) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t j = x % (i + 1);
		uint32_t t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (size_t i = 0; i < n; i++)
		a[(size_t)order[i] * 8] = (uint64_t)order[(i + 1) % n] * 8;
	free(order);
	const long loads = 4000000;
	uint64_t at = 0;
	double t0 = now_s();
	for (long i = 0; i < loads; i++)
		at = a[at];
	double t = now_s() - t0;
	munmap(a, bytes);
	if (at == 1) /* never: keeps the chain */
		puts("");
	return t * 1e9 / (double)loads;
}

/*
 * ns per point read of the least any hash index pays here: a random 8-byte slot of a table of
 * table_bytes, then the two cache lines at a random 8-byte aligned place of record_bytes that the
 * slot names (the key to compare, the revision's header). Measured with the sizes of the store
 * just filled, it is the floor store_get_ns stands against: with the records out of the cache,
 * what is left is the store's own work. With `chained`, each read waits for the one before (what
 * one read alone takes: two memory latencies); without, the reads are independent, as the
 * bench's are, and the CPU overlaps their misses.
 */
static double get_floor_ns(size_t table_bytes, size_t record_bytes, bool chained)
{
	table_bytes = table_bytes < 4096 ? 4096 : table_bytes; /* a tiny store (store-bench 10) */
	record_bytes = record_bytes < 4096 ? 4096 : record_bytes;
	size_t slots = table_bytes / 8, places = (record_bytes - 128) / 8;
	uint64_t *table = map_huge(table_bytes);
	unsigned char *rec = map_huge(record_bytes);
	memset(rec, 0, record_bytes);
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < slots; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		table[i] = (x % places) * 8;
	}
	const long gets = 2000000;
	uint64_t seen = 0, sum = 0;
	double t0 = now_s();
	for (long i = 0; i < gets; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		/* seen is 0, but when chained the CPU must wait for it */
		uint64_t at = table[(x + (chained ? seen : 0)) % slots];
		seen = *(volatile uint64_t *)(rec + at) + *(volatile uint64_t *)(rec + at + 64);
		sum += seen;
	}
	double t = now_s() - t0;
	munmap(table, table_bytes);
	munmap(rec, record_bytes);
	if (sum == 1) /* never: keeps the reads */
		puts("");
	return t * 1e9 / (double)gets;
}

/* The process's system CPU time so far, in seconds (the kernel's part: page faults and zeroing). */
static double sys_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static long rss_bytes(void)
{
	long pages = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f)
		return 0;
	if (fscanf(f, "%ld %ld", &pages, &res) != 2)
		res = 0;
	fclose(f);
	return res * sysconf(_SC_PAGESIZE);
}

/* v as n decimal digits, zero-padded */
static void digits(char *p, unsigned v, int n)
{
	for (int j = n - 1; j >= 0; j--, v /= 10)
		p[j] = (char)('0' + v % 10);
}

/*
 * Keys are built before the timed loops, KEY_STRIDE bytes apart with their length in the last
 * byte. Built in the loop, they cost the harness's time (sprintf: 70 ns a key), and written a byte
 * at a time just before the call they kept the store's reads from overlapping: the store's 8-byte
 * loads of a key written by byte stores wait until those stores retire, so behind the previous
 * read's cache misses (store-bench: store_get_ns 505-545 formatting in the loop, 330-450 with
 * the keys built before).
 */
#define KEY_STRIDE 32

/* The key of file i, "/bench/dNNN/fNNNNNNN" (more digits from 10,000,000 on), at k. */
static void key_of(uint64_t i, char *k)
{
	int len;
	if (i >= 10000000) {
		len = snprintf(k, KEY_STRIDE - 1, "/bench/d%03u/f%07llu", (unsigned)(i % 1000),
			       (unsigned long long)i);
	} else {
		memcpy(k, "/bench/dNNN/f", 13);
		digits(k + 8, (unsigned)(i % 1000), 3);
		digits(k + 13, (unsigned)i, 7);
		len = 20;
	}
	k[KEY_STRIDE - 1] = (char)len;
}

static inline const char *key_at(const char *keys, uint64_t j, size_t *len)
{
	const char *k = keys + j * KEY_STRIDE;
	*len = (unsigned char)k[KEY_STRIDE - 1];
	return k;
}

static uint64_t scramble(uint64_t i, uint64_t n)
{
	/* a permutation of [0, n) for n not a multiple of the (prime) multiplier */
	return (i * 1000003ull) % n;
}

static void die(const char *what, int r)
{
	fprintf(stderr, "store-bench: %s: %s\n", what, store_strerror(r));
	exit(1);
}

/* CPU seconds for point reads of the `gets` keys at keys, through store_range when via_range. */
static double point_reads(struct store *s, const char *keys, uint64_t gets, bool via_range)
{
	uint64_t found = 0;
	double t0 = now_s();
	for (uint64_t i = 0; i < gets; i++) {
		size_t kl;
		const char *key = key_at(keys, i, &kl);
		int r;
		if (via_range) {
			struct store_range_req rq = {.key = key, .key_len = kl};
			struct store_range_result res;
			if ((r = store_range(s, &rq, &res)))
				die("range", r);
			found += res.n;
			store_range_result_free(&res);
		} else {
			struct store_kv kv;
			if ((r = store_get(s, key, kl, 0, &kv)))
				die("get", r);
			found += kv.value_len == 256;
		}
	}
	double t = now_s() - t0;
	if (found != gets)
		fprintf(stderr, "store-bench: %llu of %llu keys found\n", (unsigned long long)found,
			(unsigned long long)gets);
	return t;
}

int main(int argc, char **argv)
{
	uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 0) : 1000000;
	if (n < 1 || n > 10000000000000000ull) { /* keys fit KEY_STRIDE up to 10^16 */
		fprintf(stderr, "usage: store-bench [keys, 1 to 10^16]\n");
		return 2;
	}
	/* the keys of the puts (every key, in a scrambled order) and of the point reads (random) */
	uint64_t gets = 2000000;
	char *put_keys = malloc(n * KEY_STRIDE), *get_keys = malloc(gets * KEY_STRIDE);
	if (!put_keys || !get_keys)
		die("keys", -ENOMEM);
	for (uint64_t i = 0; i < n; i++)
		key_of(scramble(i, n), put_keys + i * KEY_STRIDE);
	uint64_t rnd = 88172645463325252ull;
	for (uint64_t i = 0; i < gets; i++) {
		rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
		key_of(rnd % n, get_keys + i * KEY_STRIDE);
	}
	struct store *s;
	store_open(&(struct store_config){.quota_bytes = 64ull << 30}, &s);
	unsigned char val[256];
	for (size_t i = 0; i < sizeof val; i++)
		val[i] = (unsigned char)(i * 131 + 7);
	uint64_t key_bytes = 0;

	/* what a key takes in all, with room to spare: about 420 bytes at 256-byte values */
	size_t per_key = 640;
	printf("store_first_touch_ms_per_mib: %.2f\n", warm(n * per_key));
	printf("store_mem_latency_ns: %.0f\n", mem_latency_ns((size_t)512 << 20));
	long rss0 = rss_bytes();
	double sys0 = sys_s();
	double t0 = now_s();
	for (uint64_t i = 0; i < n; i++) {
		size_t kl;
		const char *key = key_at(put_keys, i, &kl);
		key_bytes += kl;
		memcpy(val, &i, sizeof i);
		struct store_put p = {.key = key, .key_len = kl, .value = val,
				      .value_len = sizeof val,
				      .meta = {.type = 1, .mode = 0644, .uid = 1000, .gid = 1000,
					       .atime_ns = (int64_t)i, .mtime_ns = (int64_t)i,
					       .ctime_ns = (int64_t)i}};
		int r = store_put(s, &p, NULL);
		if (r)
			die("put", r);
	}
	double t_put = now_s() - t0, sys_put = sys_s() - sys0;
	long rss1 = rss_bytes();
	printf("store_keys: %llu\n", (unsigned long long)n);
	printf("store_put_per_s: %.0f\n", (double)n / t_put);
	/* of the puts' CPU time, the kernel's: faulting in and zeroing the memory they take, which
	   moves most with the host (0.06-0.38 s for a million puts on one build) */
	printf("store_put_sys_s: %.3f\n", sys_put);
	printf("store_overhead_bytes_per_key: %.1f\n",
	       (double)(rss1 - rss0) / (double)n - (double)key_bytes / (double)n - (double)sizeof val);
	/* of which the fs metadata stored with every value (struct store_meta) */
	printf("store_meta_bytes_per_key: %zu\n", sizeof(struct store_meta));

	/* point reads at random keys: store_get, and store_range with its allocated result */
	double t_get = point_reads(s, get_keys, gets, false);
	printf("store_get_per_s: %.0f\n", (double)gets / t_get);
	printf("store_get_ns: %.0f\n", t_get * 1e9 / (double)gets);
	/* the same reads on bare memory of the store's sizes: its table (8 bytes a slot, 5/4 slots a
	   key at least) and the memory it took */
	size_t took = rss1 > rss0 ? (size_t)(rss1 - rss0) : 0;
	double floor_ns = get_floor_ns(n * 10, took, false);
	printf("store_get_floor_ns: %.0f\n", floor_ns);
	printf("store_get_ns_over_floor: %.2f\n", t_get * 1e9 / (double)gets / floor_ns);
	printf("store_get_chained_floor_ns: %.0f\n", get_floor_ns(n * 10, took, true));
	printf("store_point_range_per_s: %.0f\n", (double)gets / point_reads(s, get_keys, gets, true));

	/* prefix ranges of one directory (n / 1000 keys) */
	uint64_t prefixes = 2000, got = 0;
	t0 = now_s();
	for (uint64_t i = 0; i < prefixes; i++) {
		char pre[32];
		unsigned char end[32];
		int pl = sprintf(pre, "/bench/d%03u/", (unsigned)(i * 7 % 1000));
		size_t el = store_prefix_end(pre, (size_t)pl, end);
		struct store_range_req rq = {.key = pre, .key_len = (size_t)pl, .end = end, .end_len = el};
		struct store_range_result res;
		int r = store_range(s, &rq, &res);
		if (r)
			die("prefix range", r);
		got += res.n;
		store_range_result_free(&res);
	}
	double t_pre = now_s() - t0;
	printf("store_prefix_range_keys: %llu\n", (unsigned long long)(got / prefixes));
	printf("store_prefix_range_per_s: %.0f\n", (double)prefixes / t_pre);

	/* snapshot save and restore of the whole store */
	void *img;
	size_t len;
	t0 = now_s();
	int r = store_snapshot_save_buf(s, &img, &len);
	if (r)
		die("snapshot save", r);
	double t_save = now_s() - t0;
	printf("store_snapshot_bytes: %zu\n", len);
	printf("store_snapshot_save_s: %.3f\n", t_save);
	struct store *t;
	store_open(NULL, &t);
	warm(n * per_key);
	t0 = now_s();
	r = store_snapshot_restore(t, img, len);
	if (r)
		die("snapshot restore", r);
	double t_restore = now_s() - t0;
	printf("store_snapshot_restore_s: %.3f\n", t_restore);
	/* hash_kv of the whole store at its revision, as every member computes it for the periodic
	   consistency check: the first time (all of it), and at the end after 100,000 more puts (what
	   was stored since) */
	uint64_t h1, h2;
	t0 = now_s();
	store_hash_kv(s, 0, &h1);
	printf("store_hash_kv_s: %.3f\n", now_s() - t0);
	store_hash_kv(t, 0, &h2);
	printf("store_snapshot_hash_equal: %d\n", h1 == h2);
	free(img);
	store_close(t);

	/* overwrite every key once more (in the puts' order), then compact away half of the history */
	int64_t mid = store_rev(s);
	t0 = now_s();
	for (uint64_t i = 0; i < n; i++) {
		size_t kl;
		const char *key = key_at(put_keys, i, &kl);
		struct store_put p = {.key = key, .key_len = kl, .value = val, .value_len = sizeof val};
		if ((r = store_put(s, &p, NULL)))
			die("put", r);
	}
	double t_over = now_s() - t0;
	printf("store_overwrite_put_per_s: %.0f\n", (double)n / t_over);
	uint64_t size0 = store_size(s);
	t0 = now_s();
	if ((r = store_compact(s, mid + (int64_t)n / 2)))
		die("compact", r);
	double t_comp = now_s() - t0;
	printf("store_compact_half_s: %.3f\n", t_comp);
	printf("store_compact_size_before_bytes: %llu\n", (unsigned long long)size0);
	printf("store_compact_size_after_bytes: %llu\n", (unsigned long long)store_size(s));
	t0 = now_s();
	if ((r = store_compact(s, store_rev(s))))
		die("compact", r);
	printf("store_compact_rest_s: %.3f\n", now_s() - t0);

	/* one key rewritten 100,000 times (as a directory whose mtime every create moves), read at
	   random revisions of its history (as a reader pinned to an older revision) */
	const uint64_t hot_revs = 100000, hot_gets = 200000;
	if ((r = store_hash_kv(s, 0, &h1))) /* the first since the compaction: all of it */
		die("hash_kv", r);
	int64_t hot0 = store_rev(s) + 1;
	for (uint64_t i = 0; i < hot_revs; i++) {
		memcpy(val, &i, sizeof i);
		struct store_put p = {.key = "/bench", .key_len = 6, .value = val,
				      .value_len = sizeof val};
		if ((r = store_put(s, &p, NULL)))
			die("put", r);
	}
	t0 = now_s();
	if ((r = store_hash_kv(s, 0, &h1)))
		die("hash_kv", r);
	printf("store_hash_kv_next_100k_ms: %.1f\n", (now_s() - t0) * 1e3);
	uint64_t x = 0x2545f4914f6cdd1dull, right = 0;
	t0 = now_s();
	for (uint64_t i = 0; i < hot_gets; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint64_t k = x % hot_revs;
		struct store_kv kv;
		if ((r = store_get(s, "/bench", 6, hot0 + (int64_t)k, &kv)))
			die("get at revision", r);
		uint64_t seen;
		memcpy(&seen, kv.value, sizeof seen);
		right += seen == k;
	}
	printf("store_get_history_ns: %.0f\n", (now_s() - t0) * 1e9 / (double)hot_gets);
	if (right != hot_gets)
		fprintf(stderr, "store-bench: %llu of %llu reads at a revision saw the wrong value\n",
			(unsigned long long)(hot_gets - right), (unsigned long long)hot_gets);
	store_close(s);
	free(put_keys);
	free(get_keys);
	return 0;
}
