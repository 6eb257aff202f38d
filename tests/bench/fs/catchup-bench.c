/*
 * catchup-bench, issue 23's benchmark: how long a member added to a cluster with history takes to
 * catch up. A 3-member raftfs cluster on loopback (release build, default flags but the snapshot
 * count) is filled through mount n1 with --files files of 256 bytes by 16 threads and left idle
 * until its last snapshot is taken; then `raftfs member add` adds n4, which is started with
 * --initial-cluster-state existing. Prints `name: value` lines:
 *
 *   catch_up_files               files in the cluster
 *   catch_up_s                   from starting n4 until it has applied the leader's applied
 *                                index at the add and serves the last file written, with its
 *                                content (process start and mount included)
 *   catch_up_snapshot_sends      "snapshot to n4: sent" lines in the three members' logs
 *   catch_up_snapshot_bytes      the bytes those lines report
 *
 *   catchup-bench [--files N] [--snapshot-count N] [--dir DIR] [--keep]
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"

#define MEMBERS 4
#define THREADS 16
#define VALUE_BYTES 256

static char base[96], data_dir[MEMBERS][160], mnt[MEMBERS][160], log_path[MEMBERS][224];
static pid_t pid[MEMBERS] = {-1, -1, -1, -1};
static long files = 100000;
static const char *snapshot_count = "10000";
static atomic_long next_file;
static atomic_int write_errors;

static void sleep_ms(int ms)
{
	nanosleep(&(struct timespec){ms / 1000, (long)(ms % 1000) * 1000000}, NULL);
}

/* Starts member i (`raftfs mount -f`, its log in log_path[i]); extra: NULL-ended flags. */
static int start_member(int i, int port, const char *cluster, const char *const *extra)
{
	char name[16], listen[48];
	snprintf(name, sizeof name, "n%d", i + 1);
	snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
	if (mkdir(mnt[i], 0755) != 0)
		return -errno;
	const char *args[32] = {RAFTFS_BIN, "mount", "-f", "--name", name, "--data-dir",
				data_dir[i], "--listen-peer", listen, "--initial-cluster", cluster,
				"--initial-cluster-token", "catchup-bench", "--snapshot-count",
				snapshot_count};
	int n = 15;
	for (int k = 0; extra && extra[k]; k++)
		args[n++] = extra[k];
	args[n++] = mnt[i];
	args[n] = NULL;
	pid_t p = fork();
	if (p == 0) {
		int fd = open(log_path[i], O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
		}
		execv(RAFTFS_BIN, (char **)args);
		_exit(127);
	}
	if (p < 0)
		return -errno;
	pid[i] = p;
	return 0;
}

/* A number field of member i's .raftfs/status, or -1. */
static long long status_field(int i, const char *field)
{
	return bench_raftfs_status(mnt[i], field);
}

static int wait_serving(int i, double timeout_s)
{
	double deadline = bench_now_s() + timeout_s;
	while (bench_now_s() < deadline) {
		if (status_field(i, "applied_index") >= 0)
			return 0;
		sleep_ms(20);
	}
	fprintf(stderr, "catchup-bench: n%d does not serve %s (log: %s)\n", i + 1, mnt[i], log_path[i]);
	return -1;
}

static void value_of(long k, char *out)
{
	int n = snprintf(out, VALUE_BYTES + 1, "file %ld ", k);
	memset(out + n, 'a' + (int)(k % 26), (size_t)(VALUE_BYTES - n));
	out[VALUE_BYTES] = '\0';
}

static void *writer(void *arg)
{
	char path[256], v[VALUE_BYTES + 1];
	for (long k; (k = atomic_fetch_add(&next_file, 1)) < files;) {
		snprintf(path, sizeof path, "%s/f%07ld", mnt[0], k);
		value_of(k, v);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || write(fd, v, VALUE_BYTES) != VALUE_BYTES || close(fd) != 0)
			atomic_fetch_add(&write_errors, 1);
	}
	return NULL;
}

/* Sums "snapshot to <id>: sent N bytes" over the first three members' logs. */
static void count_sends(const char *id, long *sends, long long *bytes)
{
	char needle[64], line[4096];
	snprintf(needle, sizeof needle, "snapshot to %s: sent ", id);
	*sends = 0;
	*bytes = 0;
	for (int i = 0; i < MEMBERS - 1; i++) {
		FILE *f = fopen(log_path[i], "r");
		while (f && fgets(line, sizeof line, f)) {
			const char *p = strstr(line, needle);
			if (!p)
				continue;
			(*sends)++;
			*bytes += strtoll(p + strlen(needle), NULL, 10);
		}
		if (f)
			fclose(f);
	}
}

static void stop_all(void)
{
	for (int i = 0; i < MEMBERS; i++)
		if (pid[i] > 0)
			kill(pid[i], SIGTERM);
	for (int i = 0; i < MEMBERS; i++) {
		if (pid[i] <= 0)
			continue;
		for (int t = 0; t < 200 && waitpid(pid[i], NULL, WNOHANG) == 0; t++)
			sleep_ms(50);
		if (waitpid(pid[i], NULL, WNOHANG) == 0) {
			kill(pid[i], SIGKILL);
			waitpid(pid[i], NULL, 0);
		}
		char cmd[512];
		snprintf(cmd, sizeof cmd, "fusermount3 -u -z %.400s 2>/dev/null", mnt[i]);
		if (system(cmd) != 0) {
			/* not mounted any more */
		}
	}
}

int main(int argc, char **argv)
{
	const char *dir = "/var/tmp";
	int keep = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--files") && i + 1 < argc)
			files = atol(argv[++i]);
		else if (!strcmp(argv[i], "--snapshot-count") && i + 1 < argc)
			snapshot_count = argv[++i];
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--keep"))
			keep = 1;
		else {
			fprintf(stderr, "usage: catchup-bench [--files N] [--snapshot-count N] "
					"[--dir DIR] [--keep]\n");
			return 2;
		}
	}
	snprintf(base, sizeof base, "%s/catchup-bench.XXXXXX", dir);
	if (!mkdtemp(base)) {
		fprintf(stderr, "catchup-bench: mkdtemp %s: %s\n", base, strerror(errno));
		return 1;
	}
	int ports[MEMBERS];
	char cluster[512] = "", cluster4[640];
	for (int i = 0; i < MEMBERS; i++) {
		snprintf(data_dir[i], sizeof data_dir[i], "%s/n%d.data", base, i + 1);
		snprintf(mnt[i], sizeof mnt[i], "%s/n%d", base, i + 1);
		snprintf(log_path[i], sizeof log_path[i], "%s/n%d.log", base, i + 1);
		ports[i] = bench_free_port();
		if (i < MEMBERS - 1)
			snprintf(cluster + strlen(cluster), sizeof cluster - strlen(cluster),
				 "%sn%d=127.0.0.1:%d", i ? "," : "", i + 1, ports[i]);
	}
	int rc = 1;
	for (int i = 0; i < MEMBERS - 1; i++)
		if (start_member(i, ports[i], cluster, NULL) != 0)
			goto out;
	for (int i = 0; i < MEMBERS - 1; i++)
		if (wait_serving(i, 30) != 0)
			goto out;
	double t0 = bench_now_s();
	pthread_t th[THREADS];
	for (int t = 0; t < THREADS; t++)
		pthread_create(&th[t], NULL, writer, NULL);
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	if (write_errors) {
		fprintf(stderr, "catchup-bench: %d writes failed\n", (int)write_errors);
		goto out;
	}
	fprintf(stderr, "catchup-bench: %ld files written in %.1f s\n", files, bench_now_s() - t0);
	sleep_ms(3000); /* the last snapshot is taken: an idle cluster */

	char cmd[2048], out[2048] = "";
	snprintf(cmd, sizeof cmd, "%s member add %s n4=127.0.0.1:%d", RAFTFS_BIN, mnt[0],
		 ports[3]);
	FILE *p = popen(cmd, "r");
	size_t got = p ? fread(out, 1, sizeof out - 1, p) : 0;
	out[got] = '\0';
	if (!p || pclose(p) != 0 || !strstr(out, "member n4 (") || !strstr(out, "--initial-cluster ")) {
		fprintf(stderr, "catchup-bench: %s: %s\n", cmd, out);
		goto out;
	}
	char id[17];
	snprintf(id, sizeof id, "%.16s", strstr(out, "member n4 (") + strlen("member n4 ("));
	snprintf(cluster4, sizeof cluster4, "%s", strstr(out, "--initial-cluster ") +
		 strlen("--initial-cluster "));
	cluster4[strcspn(cluster4, " \n")] = '\0';
	long long target = status_field(0, "applied_index");
	char last[256], want[VALUE_BYTES + 1], have[VALUE_BYTES + 2];
	snprintf(last, sizeof last, "%s/f%07ld", mnt[3], files - 1);
	value_of(files - 1, want);

	double start = bench_now_s();
	const char *existing[] = {"--initial-cluster-state", "existing", NULL};
	if (start_member(3, ports[3], cluster4, existing) != 0)
		goto out;
	int caught = 0;
	while (bench_now_s() < start + 600 && !caught) {
		caught = status_field(3, "applied_index") >= target &&
			 bench_read_small_file(last, have, sizeof have) == VALUE_BYTES && !strcmp(have, want);
		if (!caught)
			sleep_ms(5);
	}
	double took = bench_now_s() - start;
	if (!caught) {
		fprintf(stderr, "catchup-bench: n4 did not catch up in %.0f s (log: %s)\n", took,
			log_path[3]);
		goto out;
	}
	long sends;
	long long bytes;
	count_sends(id, &sends, &bytes);
	printf("catch_up_files: %ld\n", files);
	printf("catch_up_s: %.3f\n", took);
	printf("catch_up_snapshot_sends: %ld\n", sends);
	printf("catch_up_snapshot_bytes: %lld\n", bytes);
	rc = 0;
out:
	stop_all();
	if (!keep && rc == 0) {
		snprintf(cmd, sizeof cmd, "rm -rf %s", base);
		if (system(cmd) != 0)
			fprintf(stderr, "catchup-bench: cannot remove %s\n", base);
	} else {
		fprintf(stderr, "catchup-bench: logs and data dirs kept in %s\n", base);
	}
	return rc;
}
