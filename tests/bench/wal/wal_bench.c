/*
 * wal_bench.c: wal-bench, the write-ahead log's benchmark. Measures this disk's raw fdatasync rate
 * (a ~300-byte pwrite appended to a preallocated file, then fdatasync: what one durable save of
 * one entry must do) and, in the same run, durable saves of 256-byte entries at batch sizes 1, 16
 * and 256 (one fdatasync per batch), MB/s of 1 MiB entries, and group commit of 4 threads saving
 * one entry each. Prints `name: value` lines. Run it from a release build:
 *   build-rel/tests/bench/wal/wal-bench [seconds-per-case, default 2] [dir, default /tmp]
 * The temp directory it makes is removed afterwards.
 */
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wal.h"

static double secs = 2.0; /* per case */

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(p);
}

static void die(const char *what, int r)
{
	fprintf(stderr, "wal-bench: %s failed: %d %s\n", what, r, wal_errmsg());
	exit(1);
}

/* fdatasyncs per second of ~300-byte appends to a preallocated file. */
static double raw_fdatasync(const char *dir)
{
	char path[512];
	snprintf(path, sizeof path, "%s/raw", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || posix_fallocate(fd, 0, WAL_SEGMENT_SIZE) != 0)
		die("raw file", -errno);
	char buf[304];
	memset(buf, 'r', sizeof buf);
	long n = 0;
	off_t off = 0;
	double t0 = now(), t;
	while ((t = now()) - t0 < secs) {
		if (pwrite(fd, buf, sizeof buf, off) != (ssize_t)sizeof buf || fdatasync(fd) != 0)
			die("raw pwrite/fdatasync", -errno);
		off += (off_t)sizeof buf;
		n++;
	}
	close(fd);
	unlink(path);
	return (double)n / (t - t0);
}

/* Durable saves of batch entries of size bytes each: returns entries per second. */
static double wal_batches(const char *dir, const char *name, size_t batch, size_t size)
{
	char wd[600];
	snprintf(wd, sizeof wd, "%s/%s", dir, name);
	struct wal *w;
	int r = wal_create(wd, "bench", 5, NULL, &w);
	if (r)
		die("wal_create", r);
	uint8_t *data = malloc(size);
	memset(data, 'e', size);
	struct wal_entry *ents = calloc(batch, sizeof *ents);
	uint64_t index = 0;
	long n = 0;
	double t0 = now(), t;
	while ((t = now()) - t0 < secs) {
		for (size_t i = 0; i < batch; i++) {
			ents[i].index = ++index;
			ents[i].term = 1;
			ents[i].data = data;
			ents[i].len = size;
		}
		struct wal_hard_state hs = {1, 1, index};
		if ((r = wal_save(w, &hs, ents, batch, 1)) != 0)
			die("wal_save", r);
		n += (long)batch;
	}
	wal_close(w);
	free(ents);
	free(data);
	nftw(wd, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	return (double)n / (t - t0);
}

/* Group commit: threads each saving one 256-byte entry durably at a time. */
struct gc {
	struct wal *w;
	double t0;
	long n;
};

static void *gc_thread(void *p)
{
	struct gc *g = p;
	uint8_t data[256];
	memset(data, 'g', sizeof data);
	struct wal_entry e = {1, 1, 0, data, sizeof data};
	while (now() - g->t0 < secs) {
		if (wal_save(g->w, NULL, &e, 1, 1) != 0)
			die("wal_save", -1);
		g->n++;
	}
	return NULL;
}

static double wal_group(const char *dir, int threads)
{
	char wd[600];
	snprintf(wd, sizeof wd, "%s/group", dir);
	struct wal *w;
	int r = wal_create(wd, "bench", 5, NULL, &w);
	if (r)
		die("wal_create", r);
	pthread_t th[16];
	struct gc g[16];
	double t0 = now();
	for (int i = 0; i < threads; i++) {
		g[i] = (struct gc){w, t0, 0};
		pthread_create(&th[i], NULL, gc_thread, &g[i]);
	}
	long n = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		n += g[i].n;
	}
	double t = now();
	wal_close(w);
	nftw(wd, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	return (double)n / (t - t0);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		secs = atof(argv[1]);
	char dir[512];
	snprintf(dir, sizeof dir, "%s/raftfs-wal-bench-XXXXXX", argc > 2 ? argv[2] : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("# dir %s, %.1f s per case, 256-byte entries, one fdatasync per batch\n", dir, secs);
	double raw = raw_fdatasync(dir);
	printf("wal_fdatasync_per_s: %.0f\n", raw);
	double b1 = wal_batches(dir, "b1", 1, 256);
	printf("wal_batch1_per_s: %.0f\n", b1);
	printf("wal_batch1_pct_of_fdatasync: %.0f\n", 100.0 * b1 / raw);
	printf("wal_batch16_per_s: %.0f\n", wal_batches(dir, "b16", 16, 256));
	printf("wal_batch256_per_s: %.0f\n", wal_batches(dir, "b256", 256, 256));
	printf("wal_1mib_mb_per_s: %.1f\n", wal_batches(dir, "mib", 1, 1 << 20));
	printf("wal_group4_per_s: %.0f\n", wal_group(dir, 4));
	double raw2 = raw_fdatasync(dir);
	printf("wal_fdatasync_after_per_s: %.0f\n", raw2);
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	return 0;
}
