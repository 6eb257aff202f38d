/*
 * rename-bench, issue 20's benchmark: renaming a directory of --files files of 64 bytes (default
 * 100,000, under two levels) on a 3-member raftfs cluster on loopback (release build, default
 * flags). The tree is written through mount n1 by 16 threads; once every member has it, an
 * inotify instance on the root of n2 and of n3 watches, and n1 renames the directory. Prints
 * `name: value` lines:
 *
 *   fs_rename_dir_files          files in the tree
 *   fs_rename_dir_local_s        rename(2) on n1, until it returned
 *   fs_rename_dir_s_100k         from the rename until every member shows the tree under its new
 *                                name (its last file there, the old name gone): issue 20's
 *                                target is 1 s or less
 *   fs_rename_dir_s_n1, _n2, _n3  the same for each member
 *   fs_rename_dir_pairs_n2, _n3  IN_MOVED_FROM/IN_MOVED_TO pairs each member's watcher saw in the
 *                                2 s after (1: the rename, not one per file)
 *   fs_rename_dir_events_n2, _n3 every event those watchers saw in that time
 *
 *   rename-bench [--raftfs PATH] [--files N] [--dir DIR] [--keep] [--settle S]
 *
 * --settle waits S seconds between the fill and the rename (to attach a profiler).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_common.h"

#define MEMBERS 3
#define THREADS 16
#define VALUE_BYTES 64

static struct bench_raftfs cl;
static long files = 100000;
static atomic_long next_file;
static atomic_int write_errors;

/* File k's path under the tree's directory name dir, on mount i (one in ten in sub/). */
static void path_of(int i, const char *dir, long k, char *out, size_t n)
{
	snprintf(out, n, "%s/%s/%sf%06ld", cl.mnt[i], dir, k % 10 ? "" : "sub/", k);
}

static void *writer(void *arg)
{
	(void)arg;
	char path[256], v[VALUE_BYTES];
	for (long k; (k = atomic_fetch_add(&next_file, 1)) < files;) {
		path_of(0, "tree", k, path, sizeof path);
		memset(v, 'a' + (int)(k % 26), sizeof v);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || write(fd, v, sizeof v) != (ssize_t)sizeof v || close(fd) != 0)
			if (atomic_fetch_add(&write_errors, 1) == 0)
				fprintf(stderr, "rename-bench: %s: %s\n", path, strerror(errno));
	}
	return NULL;
}

/* Whether mount i shows the tree under name and not under the other. */
static int shows(int i, const char *name, const char *other)
{
	char p[256], q[256];
	struct stat st;
	path_of(i, name, files - 1, p, sizeof p);
	snprintf(q, sizeof q, "%s/%s", cl.mnt[i], other);
	return stat(p, &st) == 0 && stat(q, &st) != 0;
}

/* Reads what inotify fd holds within ms: adds the events to *events, the moves to *moves. */
static void drain(int fd, int ms, long *events, long *moves)
{
	char buf[65536] __attribute__((aligned(8)));
	struct pollfd p = {.fd = fd, .events = POLLIN};
	double end = bench_now_s() + ms / 1000.0;
	while (bench_now_s() < end) {
		if (poll(&p, 1, 50) <= 0)
			continue;
		ssize_t n = read(fd, buf, sizeof buf);
		for (ssize_t off = 0; off < n;) {
			const struct inotify_event *e = (const void *)(buf + off);
			(*events)++;
			if (e->mask & IN_MOVED_TO)
				(*moves)++;
			off += (ssize_t)(sizeof *e + e->len);
		}
	}
}

static void on_signal(int sig)
{
	(void)sig;
	bench_raftfs_stop(&cl, 1);
	_exit(1);
}

int main(int argc, char **argv)
{
	const char *raftfs = RAFTFS_BIN, *dir = "/tmp";
	int keep = 0;
	double settle_s = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--raftfs") && i + 1 < argc)
			raftfs = argv[++i];
		else if (!strcmp(argv[i], "--files") && i + 1 < argc)
			files = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--keep"))
			keep = 1;
		else if (!strcmp(argv[i], "--settle") && i + 1 < argc)
			settle_s = strtod(argv[++i], NULL);
		else {
			fprintf(stderr, "usage: rename-bench [--raftfs PATH] [--files N] [--dir DIR] "
					"[--keep] [--settle S]\n");
			return 2;
		}
	}
	if (files < 1) {
		fprintf(stderr, "rename-bench: --files must be positive\n");
		return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	int rc = 1, ino[MEMBERS] = {-1, -1, -1};
	if (bench_raftfs_start(&cl, MEMBERS, raftfs, dir, "rename-bench", NULL, 30) != 0)
		goto out;
	char p[256];
	snprintf(p, sizeof p, "%s/tree", cl.mnt[0]);
	if (mkdir(p, 0755) != 0)
		goto out;
	snprintf(p, sizeof p, "%s/tree/sub", cl.mnt[0]);
	if (mkdir(p, 0755) != 0)
		goto out;
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, writer, NULL);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	if (atomic_load(&write_errors)) {
		fprintf(stderr, "rename-bench: %d files failed to write\n", atomic_load(&write_errors));
		goto out;
	}
	double deadline = bench_now_s() + 120;
	for (int i = 1; i < MEMBERS; i++)
		while (!shows(i, "tree", "moved")) {
			if (bench_now_s() > deadline) {
				fprintf(stderr, "rename-bench: n%d does not show the tree\n", i + 1);
				goto out;
			}
			usleep(10000);
		}
	for (int i = 1; i < MEMBERS; i++) {
		ino[i] = inotify_init1(IN_NONBLOCK);
		if (ino[i] < 0 || inotify_add_watch(ino[i], cl.mnt[i], IN_ALL_EVENTS) < 0)
			goto out;
	}
	char from[256], to[256];
	snprintf(from, sizeof from, "%s/tree", cl.mnt[0]);
	snprintf(to, sizeof to, "%s/moved", cl.mnt[0]);
	if (settle_s > 0) { /* e.g. to attach a profiler to a member */
		fprintf(stderr, "rename-bench: renaming in %.1f s\n", settle_s);
		usleep((useconds_t)(settle_s * 1e6));
	}
	double t0 = bench_now_s();
	if (rename(from, to) != 0) {
		fprintf(stderr, "rename-bench: rename: %s\n", strerror(errno));
		goto out;
	}
	double local = bench_now_s() - t0;
	deadline = t0 + 60;
	double at[MEMBERS] = {0}, all = 0;
	for (int left = MEMBERS; left;) {
		for (int i = 0; i < MEMBERS; i++)
			if (!at[i] && shows(i, "moved", "tree")) {
				at[i] = bench_now_s() - t0;
				all = at[i];
				left--;
			}
		if (bench_now_s() > deadline) {
			fprintf(stderr, "rename-bench: not every member shows the rename\n");
			goto out;
		}
		usleep(200);
	}
	long events[MEMBERS] = {0}, moves[MEMBERS] = {0};
	for (int i = 1; i < MEMBERS; i++)
		drain(ino[i], 2000, &events[i], &moves[i]);
	printf("fs_rename_dir_files: %ld\n", files);
	printf("fs_rename_dir_local_s: %.3f\n", local);
	printf("fs_rename_dir_s_100k: %.3f\n", all);
	for (int i = 0; i < MEMBERS; i++)
		printf("fs_rename_dir_s_n%d: %.3f\n", i + 1, at[i]);
	for (int i = 1; i < MEMBERS; i++) {
		printf("fs_rename_dir_pairs_n%d: %ld\n", i + 1, moves[i]);
		printf("fs_rename_dir_events_n%d: %ld\n", i + 1, events[i]);
	}
	rc = 0;
out:
	for (int i = 0; i < MEMBERS; i++)
		if (ino[i] >= 0)
			close(ino[i]);
	bench_raftfs_stop(&cl, keep || rc != 0);
	return rc;
}
