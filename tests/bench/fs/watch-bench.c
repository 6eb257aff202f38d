/*
 * watch-bench: issue 8's benchmark, how soon a watcher on one member sees a change made on another.
 *
 * raftfs: a 3-member cluster on loopback (raftfs mount -f, data under /var/tmp, mounts under
 * /tmp). A process overwrites one 256-byte file through mount n1 (open, pwrite, close), one change
 * at a time; an inotify watch on mount n2 waits for the file's IN_CLOSE_WRITE, which n2's daemon
 * raises by replaying the applied change through its mount (fs/replay/replay.c). The latency is from
 * n1's close() returning (the change is committed and applied on n1) to n2's event being read.
 *
 * etcd, in the same run: a 3-member etcd 3.4 (tests/bench/etcd/etcd_cluster.sh serve); `etcdctl
 * watch --prefix` runs against member 2 and puts go to member 1 through the v3 gateway, one at a
 * time; the latency is from the put's reply to etcdctl printing the key.
 *
 * Both sides write the same 256 printable bytes per change (hex of bench_make_value). Prints
 *   remote_event_p50_us, remote_event_p99_us, remote_event_ops,
 *   etcd_watch_p50_us, etcd_watch_p99_us, etcd_watch_ops
 * and the same from the start of the change (n1's open(), the put's request):
 *   remote_event_from_open_p50_us ..., etcd_watch_from_put_p50_us ...
 * and progress on stderr. An event that was already there when the close or put returned counts
 * as the few µs it takes to read it (etcd's watch on a follower often has it before the put's
 * reply comes back through the gateway: its figure from the reply is then near zero). Never run by `meson test`; run it from an optimized build:
 *   build/tests/bench/fs/watch-bench [--ops N] [--no-etcd]
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_common.h"
#include "etcd_client.h"

#ifndef RAFTFS_BIN
#define RAFTFS_BIN "build/fs/raftfs"
#endif
#ifndef ETCD_CLUSTER_SCRIPT
#define ETCD_CLUSTER_SCRIPT "tests/bench/etcd/etcd_cluster.sh"
#endif

#define MEMBERS 3
#define EVENT_TIMEOUT_MS 5000

static char data_base[64] = "/var/tmp/watch-bench.XXXXXX";
static char mnt_base[64] = "/tmp/wb.XXXXXX";
static char mnt[MEMBERS][128];
static pid_t member_pid[MEMBERS] = {-1, -1, -1};
static pid_t etcdctl_pid = -1;
static struct bench_cluster etcd = {.pid = -1, .in = -1, .out = -1};
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* A printable value of BENCH_VALUE_SIZE bytes for change i (the same on both sides). */
static void make_value(char *out, uint64_t i)
{
	unsigned char raw[BENCH_VALUE_SIZE];
	bench_make_value(raw, i + 1);
	for (int k = 0; k < BENCH_VALUE_SIZE / 2; k++)
		sprintf(out + 2 * k, "%02x", raw[k]);
}

static int is_mounted(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[8192], needle[200];
	int found = 0;
	snprintf(needle, sizeof needle, " %s ", path);
	while (f && !found && fgets(line, sizeof line, f))
		found = strstr(line, needle) && strstr(line, "fuse.raftfs");
	if (f)
		fclose(f);
	return found;
}

static int start_members(const char *raftfs)
{
	if (!mkdtemp(data_base) || !mkdtemp(mnt_base))
		return -errno;
	int ports[MEMBERS];
	char cluster[256] = "";
	for (int i = 0; i < MEMBERS; i++) {
		ports[i] = bench_free_port();
		if (ports[i] < 0)
			return -EADDRNOTAVAIL;
		snprintf(cluster + strlen(cluster), sizeof cluster - strlen(cluster),
			 "%sn%d=127.0.0.1:%d", i ? "," : "", i + 1, ports[i]);
	}
	for (int i = 0; i < MEMBERS; i++) {
		char name[8], dir[128], listen[32], log[160];
		snprintf(name, sizeof name, "n%d", i + 1);
		snprintf(dir, sizeof dir, "%s/%s", data_base, name);
		snprintf(mnt[i], sizeof mnt[i], "%s/%s", mnt_base, name);
		snprintf(listen, sizeof listen, "127.0.0.1:%d", ports[i]);
		snprintf(log, sizeof log, "%s/%s.log", data_base, name);
		if (mkdir(mnt[i], 0755) != 0)
			return -errno;
		char *argv[] = {(char *)raftfs, "mount", "-f", "--name", name, "--data-dir", dir,
				"--listen-peer", listen, "--initial-cluster", cluster,
				"--initial-cluster-token", "watch-bench", mnt[i], NULL};
		member_pid[i] = bench_spawn(argv, log, -1);
		if (member_pid[i] < 0)
			return -errno;
	}
	double deadline = bench_now_s() + 30;
	for (int i = 0; i < MEMBERS; i++)
		while (!is_mounted(mnt[i])) {
			if (bench_now_s() > deadline || interrupted)
				return -ETIMEDOUT;
			usleep(10000);
		}
	return 0;
}

static void stop_members(void)
{
	for (int i = MEMBERS - 1; i >= 0; i--)
		if (member_pid[i] > 0 && is_mounted(mnt[i])) {
			char *argv[] = {"fusermount3", "-u", mnt[i], NULL};
			pid_t p = bench_spawn(argv, "/dev/null", -1);
			if (p > 0)
				waitpid(p, NULL, 0);
		}
	double deadline = bench_now_s() + 20;
	for (int i = 0; i < MEMBERS; i++) {
		while (member_pid[i] > 0 && waitpid(member_pid[i], NULL, WNOHANG) == 0) {
			if (bench_now_s() > deadline) {
				fprintf(stderr, "# member n%d did not stop: SIGKILL\n", i + 1);
				kill(member_pid[i], SIGKILL);
				waitpid(member_pid[i], NULL, 0);
				break;
			}
			usleep(10000);
		}
		member_pid[i] = -1;
		if (mnt[i][0] && is_mounted(mnt[i])) {
			char *argv[] = {"fusermount3", "-u", "-z", mnt[i], NULL};
			pid_t p = bench_spawn(argv, "/dev/null", -1);
			if (p > 0)
				waitpid(p, NULL, 0);
		}
		if (mnt[i][0])
			rmdir(mnt[i]);
	}
	if (mnt_base[0] == '/')
		rmdir(mnt_base);
}

static int keep_data; /* a failed run keeps the members' logs */

static void cleanup(void)
{
	if (etcdctl_pid > 0) {
		kill(etcdctl_pid, SIGTERM);
		waitpid(etcdctl_pid, NULL, 0);
		etcdctl_pid = -1;
	}
	bench_cluster_stop(&etcd);
	stop_members();
	if (!keep_data && data_base[0] == '/' && !strchr(data_base, 'X'))
		bench_remove_tree(data_base);
}

/* Reads inotify events until IN_CLOSE_WRITE of name; 0, or -ETIMEDOUT. */
static int wait_close_write(int fd, const char *name, int timeout_ms)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	double deadline = bench_now_s() + timeout_ms / 1000.0;
	while (!interrupted) {
		int left = (int)((deadline - bench_now_s()) * 1000);
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (left <= 0 || poll(&p, 1, left) <= 0)
			return -ETIMEDOUT;
		ssize_t n = read(fd, buf, sizeof buf);
		for (ssize_t off = 0; off < n;) {
			const struct inotify_event *e = (const void *)(buf + off);
			off += (ssize_t)(sizeof *e + e->len);
			if ((e->mask & IN_CLOSE_WRITE) && e->len && !strcmp(e->name, name))
				return 0;
		}
	}
	return -EINTR;
}

static int write_file(const char *path, const char *val, int create)
{
	int fd = open(path, O_WRONLY | (create ? O_CREAT : 0), 0644);
	if (fd < 0)
		return -errno;
	int rc = pwrite(fd, val, BENCH_VALUE_SIZE, 0) == BENCH_VALUE_SIZE ? 0 : -EIO;
	if (close(fd) != 0)
		rc = -errno;
	return rc;
}

static void report(const char *name, uint32_t *lat, long n)
{
	qsort(lat, (size_t)n, sizeof *lat, bench_cmp_u32);
	printf("%s_p50_us: %" PRIu32 "\n", name, bench_percentile(lat, (size_t)n, 50));
	printf("%s_p99_us: %" PRIu32 "\n", name, bench_percentile(lat, (size_t)n, 99));
	printf("%s_ops: %ld\n", name, n);
	fflush(stdout);
}

static int run_fs(const char *raftfs, long ops, uint32_t *lat, uint32_t *from_start, long *done)
{
	int rc = start_members(raftfs);
	fprintf(stderr, "# started 3 raftfs members (data %s, mounts %s)\n", data_base, mnt_base);
	if (rc) {
		fprintf(stderr, "watch-bench: raftfs members did not mount: %s (logs in %s)\n",
			strerror(-rc), data_base);
		return rc;
	}
	char a[160], b[160], val[BENCH_VALUE_SIZE + 1];
	snprintf(a, sizeof a, "%s/w", mnt[0]);
	snprintf(b, sizeof b, "%s/w", mnt[1]);
	int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (in < 0 || inotify_add_watch(in, mnt[1], IN_CLOSE_WRITE) < 0)
		return -errno;
	make_value(val, 0);
	/* the file exists everywhere and its create was replayed on n2: the watch is warm */
	if ((rc = write_file(a, val, 1)) != 0 || (rc = wait_close_write(in, "w", 10000)) != 0) {
		fprintf(stderr, "watch-bench: the first change on n1 raised no event on n2: %s\n",
			strerror(-rc));
		return rc;
	}
	usleep(200000);
	while (wait_close_write(in, "w", 50) == 0)
		; /* the rest of the warm-up's events */
	long early = 0;
	for (*done = 0; *done < ops && !interrupted; (*done)++) {
		make_value(val, (uint64_t)*done + 1);
		uint64_t ts = bench_now_us();
		if ((rc = write_file(a, val, 0)) != 0) {
			fprintf(stderr, "watch-bench: write %ld on n1: %s\n", *done, strerror(-rc));
			return rc;
		}
		uint64_t t0 = bench_now_us();
		struct pollfd p = {.fd = in, .events = POLLIN};
		early += poll(&p, 1, 0) > 0;
		if ((rc = wait_close_write(in, "w", EVENT_TIMEOUT_MS)) != 0) {
			fprintf(stderr, "watch-bench: change %ld on n1 raised no event on n2 within "
					"%d ms\n", *done, EVENT_TIMEOUT_MS);
			return rc;
		}
		uint64_t t1 = bench_now_us();
		lat[*done] = (uint32_t)(t1 - t0);
		from_start[*done] = (uint32_t)(t1 - ts);
	}
	fprintf(stderr, "# raftfs: %ld changes on n1 seen by inotify on n2; %ld events were there "
			"already when close() returned\n", *done, early);
	close(in);
	stop_members();
	return 0;
}

/* Reads etcdctl's output until a line equal to key; 0, or -ETIMEDOUT / -EPIPE. */
static int wait_line(int fd, const char *key, int timeout_ms)
{
	static char buf[65536];
	static size_t have;
	size_t kl = strlen(key);
	double deadline = bench_now_s() + timeout_ms / 1000.0;
	for (;;) {
		char *start = buf, *nl;
		while ((nl = memchr(start, '\n', have - (size_t)(start - buf)))) {
			int hit = (size_t)(nl - start) == kl && !memcmp(start, key, kl);
			start = nl + 1;
			if (hit) {
				have -= (size_t)(start - buf);
				memmove(buf, start, have);
				return 0;
			}
		}
		have -= (size_t)(start - buf);
		memmove(buf, start, have);
		if (have == sizeof buf)
			have = 0; /* a line longer than anything we look for */
		int left = (int)((deadline - bench_now_s()) * 1000);
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (interrupted || left <= 0 || poll(&p, 1, left) <= 0)
			return -ETIMEDOUT;
		ssize_t n = read(fd, buf + have, sizeof buf - have);
		if (n <= 0)
			return -EPIPE;
		have += (size_t)n;
	}
}

static int run_etcd(const char *script, long ops, uint32_t *lat, uint32_t *from_start,
		    long *done)
{
	fprintf(stderr, "# starting a 3-member etcd with %s\n", script);
	int rc = bench_cluster_start(&etcd, script, 60, &interrupted);
	if (rc) {
		fprintf(stderr, "watch-bench: starting etcd: %s\n", strerror(-rc));
		return rc;
	}
	char eps[sizeof etcd.endpoints], *save = NULL;
	memcpy(eps, etcd.endpoints, sizeof eps);
	const char *ep1 = strtok_r(eps, ",", &save), *ep2 = strtok_r(NULL, ",", &save);
	if (!ep1 || !ep2)
		return -EINVAL;
	char prefix[64], key[96], val[BENCH_VALUE_SIZE + 1], epflag[160];
	snprintf(prefix, sizeof prefix, "/watch-bench/%d/", (int)getpid());
	snprintf(epflag, sizeof epflag, "--endpoints=%s", ep2);
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) != 0)
		return -errno;
	setenv("ETCDCTL_API", "3", 1);
	char *argv[] = {"etcdctl", epflag, "watch", "--prefix", prefix, NULL};
	int child_out = dup(pipefd[1]); /* without O_CLOEXEC: the child's stdout */
	etcdctl_pid = bench_spawn(argv, NULL, child_out);
	close(child_out);
	close(pipefd[1]);
	struct etcdc_conn *c;
	if ((rc = etcdc_connect(ep1, 10000, &c)) != 0)
		return rc;
	/* etcdctl says nothing when its watch is in place: put until it shows one */
	make_value(val, 0);
	rc = -ETIMEDOUT;
	for (int i = 0; i < 100 && rc && !interrupted; i++) {
		snprintf(key, sizeof key, "%swarm%d", prefix, i);
		if ((rc = etcdc_put(c, key, strlen(key), val, BENCH_VALUE_SIZE, NULL)) == 0)
			rc = wait_line(pipefd[0], key, 200);
	}
	usleep(200000);
	while (wait_line(pipefd[0], "\x01", 50) == 0)
		;
	for (*done = 0; rc == 0 && *done < ops && !interrupted; (*done)++) {
		snprintf(key, sizeof key, "%sk%06ld", prefix, *done);
		make_value(val, (uint64_t)*done + 1);
		uint64_t ts = bench_now_us();
		if ((rc = etcdc_put(c, key, strlen(key), val, BENCH_VALUE_SIZE, NULL)) != 0) {
			fprintf(stderr, "watch-bench: etcd put: %s\n", etcdc_errmsg(c));
			break;
		}
		uint64_t t0 = bench_now_us();
		if ((rc = wait_line(pipefd[0], key, EVENT_TIMEOUT_MS)) != 0) {
			fprintf(stderr, "watch-bench: etcdctl watch did not show %s: %s\n", key,
				strerror(-rc));
			break;
		}
		uint64_t t1 = bench_now_us();
		lat[*done] = (uint32_t)(t1 - t0);
		from_start[*done] = (uint32_t)(t1 - ts);
	}
	fprintf(stderr, "# etcd: %ld puts on %s seen by etcdctl watch on %s\n", *done, ep1, ep2);
	etcdc_close(c);
	close(pipefd[0]);
	return rc;
}

int main(int argc, char **argv)
{
	long ops = 1000;
	int with_etcd = 1;
	const char *raftfs = RAFTFS_BIN, *script = ETCD_CLUSTER_SCRIPT;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--ops") && i + 1 < argc) {
			ops = strtol(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--no-etcd")) {
			with_etcd = 0;
		} else if (!strcmp(argv[i], "--raftfs") && i + 1 < argc) {
			raftfs = argv[++i];
		} else {
			fprintf(stderr, "usage: watch-bench [--ops N] [--no-etcd] [--raftfs BIN]\n");
			return 2;
		}
	}
	if (ops < 1 || ops > 1000000) {
		fprintf(stderr, "watch-bench: --ops between 1 and 1000000\n");
		return 2;
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	atexit(cleanup);
	uint32_t *lat = calloc((size_t)ops, sizeof *lat), *from = calloc((size_t)ops, sizeof *from);
	if (!lat || !from)
		return 1;
	long done = 0;
	int rc = run_fs(raftfs, ops, lat, from, &done);
	if (rc == 0 && done) {
		report("remote_event", lat, done);
		report("remote_event_from_open", from, done);
	}
	if (rc == 0 && with_etcd) {
		rc = run_etcd(script, ops, lat, from, &done);
		if (done) {
			report("etcd_watch", lat, done);
			report("etcd_watch_from_put", from, done);
		}
	}
	free(lat);
	free(from);
	keep_data = rc != 0;
	if (keep_data)
		fprintf(stderr, "# the members' logs stay in %s\n", data_base);
	return rc ? 1 : 0;
}
