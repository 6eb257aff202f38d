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

/* The raw case: ~300-byte appends to a preallocated file, each followed by fdatasync. */
struct raw {
	char path[600];
	int fd;
	off_t off;
};

static void raw_open(struct raw *r, const char *dir)
{
	snprintf(r->path, sizeof r->path, "%s/raw", dir);
	r->fd = open(r->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	r->off = 0;
	if (r->fd < 0 || posix_fallocate(r->fd, 0, WAL_SEGMENT_SIZE) != 0)
		die("raw file", -errno);
}

/* Runs the raw case for d seconds; adds the count and the time taken. */
static void raw_run(struct raw *r, double d, long *n, double *took)
{
	char buf[304];
	memset(buf, 'r', sizeof buf);
	double t0 = now(), t;
	while ((t = now()) - t0 < d) {
		if (pwrite(r->fd, buf, sizeof buf, r->off) != (ssize_t)sizeof buf ||
		    fdatasync(r->fd) != 0)
			die("raw pwrite/fdatasync", -errno);
		r->off += (off_t)sizeof buf;
		if (r->off > WAL_SEGMENT_SIZE - 4096)
			r->off = 0;
		(*n)++;
	}
	*took += t - t0;
}

static void raw_close(struct raw *r)
{
	close(r->fd);
	unlink(r->path);
}

/* One 256-byte entry per durable save, for d seconds; adds the count and the time taken. */
static void batch1_run(struct wal *w, uint64_t *index, double d, long *n, double *took)
{
	uint8_t data[256];
	memset(data, 'e', sizeof data);
	double t0 = now(), t;
	while ((t = now()) - t0 < d) {
		struct wal_entry e = {1, ++*index, 0, data, sizeof data};
		struct wal_hard_state hs = {1, 1, *index};
		int r = wal_save(w, &hs, &e, 1, 1);
		if (r)
			die("wal_save", r);
		(*n)++;
	}
	*took += t - t0;
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
	/* Raw fdatasync and batch 1 alternate in 8 slices each, so that both see the same disk (it
	 * is shared: other work on it moves either figure a lot from one second to the next). */
	struct raw raw;
	raw_open(&raw, dir);
	char wd[600];
	snprintf(wd, sizeof wd, "%s/b1", dir);
	struct wal *w;
	int r = wal_create(wd, "bench", 5, NULL, &w);
	if (r)
		die("wal_create", r);
	long rn = 0, bn = 0;
	double rt = 0, bt = 0;
	uint64_t index = 0;
	for (int k = 0; k < 8; k++) {
		raw_run(&raw, secs / 8, &rn, &rt);
		batch1_run(w, &index, secs / 8, &bn, &bt);
	}
	wal_close(w);
	nftw(wd, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	raw_close(&raw);
	double rawps = (double)rn / rt, b1 = (double)bn / bt;
	printf("wal_fdatasync_per_s: %.0f\n", rawps);
	printf("wal_batch1_per_s: %.0f\n", b1);
	printf("wal_batch1_pct_of_fdatasync: %.0f\n", 100.0 * b1 / rawps);
	printf("wal_batch16_per_s: %.0f\n", wal_batches(dir, "b16", 16, 256));
	printf("wal_batch256_per_s: %.0f\n", wal_batches(dir, "b256", 256, 256));
	printf("wal_1mib_mb_per_s: %.1f\n", wal_batches(dir, "mib", 1, 1 << 20));
	printf("wal_group4_per_s: %.0f\n", wal_group(dir, 4));
	rn = 0, rt = 0;
	raw_open(&raw, dir);
	raw_run(&raw, secs, &rn, &rt);
	raw_close(&raw);
	printf("wal_fdatasync_after_per_s: %.0f\n", (double)rn / rt);
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	return 0;
}
