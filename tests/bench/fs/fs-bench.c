/*
 * fs-bench.c: issue 7's benchmark. It starts a throw-away 3-member raftfs cluster on loopback
 * (`raftfs mount -f` children, data dirs in a fresh temp dir on the real disk, free ports, mounts
 * under a short temp path, fsync on as by default) and a 3-member etcd 3.4 beside it
 * (etcd_cluster.sh serve, driven through etcd_client's HTTP/JSON gateway client), and drives
 * mount n1 with
 *
 *   1 thread, then 64 threads: create+write+close of unique files of 256 bytes
 *                              (O_CREAT|O_WRONLY|O_TRUNC, as `echo > f` and cp; close returns
 *                              once a quorum committed the write), and etcd with puts of
 *                              256-byte values at 1 client and at 64 clients spread over the
 *                              members, in --rounds rounds (3) that alternate between the two
 *                              (write_rounds: the other system idle meanwhile, so that both meet
 *                              the same drift of the machine's load and disk)
 *   1 thread:                  the same with O_CREAT|O_EXCL (a compare-and-create at open,
 *                              then the content at close: two proposals)
 *   64 threads:                open+read+close of files already read once (the names and
 *                              attributes cached; every read is a READ request, as raftfs
 *                              serves files with direct I/O), each read checked against what
 *                              was written
 *
 * and, unless --no-tls, a second 3-member raftfs cluster whose members speak mutual TLS on the
 * peer port (certificates made by examples/certs.sh in the data dir) takes the same write rounds,
 * before etcd's (and before the plaintext cluster's in every other round), the others idle
 * meanwhile, driven through the member of the same role (leader or follower) as the plaintext
 * cluster's (issue 22);
 *
 * then stops raftfs, runs the 64 readers on fuse-floor (below) in both its read modes and the 64
 * writers on it in its write mode, alone and with each file replayed on two more fuse-floors as
 * raftfs's other members replay it, runs etcd's serializable ranges of existing keys at 64
 * clients, and prints
 * one `name: value` line per figure and the ratios fs/etcd:
 *
 *   fs_write_per_s_1 fs_write_p50_us_1 fs_write_p99_us_1        (and _64)
 *   fs_write_excl_per_s_1 fs_write_excl_p50_us_1 fs_write_excl_p99_us_1   with O_EXCL
 *   fs_replay_catchup_ms_1, _excl_1, _64                        after each raftfs round, how long
 *                                                               the members' inotify replays (low
 *                                                               priority) took to catch up (summed
 *                                                               over the rounds); the next round
 *                                                               starts then
 *   fs_write_and_replay_per_s_64                                64 writers' files per second
 *                                                               counting that catch-up
 *   fs_read_per_s_64 fs_read_p50_us_64 fs_read_p99_us_64        open+read+close, the figure
 *                                                               issue 7's read target is held to
 *   fs_pread_per_s_64 fs_pread_p50_us_64 fs_pread_p99_us_64     pread of the same files held open
 *                                                               (a READ request each)
 *   fuse_floor_read_per_s_64 fuse_floor_read_p50_us_64         the same reads on fuse-floor, a FUSE
 *                                                               file system that only answers,
 *   fs_read_pct_of_floor_64                                     OPEN as raftfs answers it: what
 *                                                               FUSE costs (raftfs's % of it)
 *   fuse_noopen_read_per_s_64 fuse_noopen_read_p50_us_64       fuse-floor in FUSE's no-open mode:
 *                                                               no request per file at all, which
 *                                                               commit at close rules out
 *   fuse_floor_write_per_s_64 fuse_floor_write_p50_us_64       the 64 writers' files on fuse-floor
 *   fs_write_pct_of_floor_64                                    answering as raftfs does: what
 *                                                               FUSE costs a writer (raftfs's %)
 *   fuse_floor_write_and_replay_per_s_64                        the same, each file then replayed
 *   fs_write_and_replay_pct_of_floor_64                         on two more fuse-floors as raftfs's
 *                                                               other members replay it for
 *                                                               inotify (5 requests each): what
 *                                                               FUSE costs a 3-member raftfs per
 *                                                               file, against
 *                                                               fs_write_and_replay_per_s_64
 *   fs_write_per_s_1_tls fs_write_p50_us_1_tls ..._p99_us_1_tls (and _64) the TLS cluster's writes
 *   fs_tls_write_p50_ratio_1, fs_tls_write_per_s_ratio_64       TLS over plaintext, and issue 22's
 *   fs_target_tls_write_p50_1_met, ..._per_s_64_met             targets: p50 <= 1.1x, per_s >= 0.9x
 *   fs_writer_on_leader, etcd_writer_on_leader                  whether the driven mount / the
 *                                                               single client's member leads: the
 *                                                               figures depend on it
 *   etcd_put_per_s_1 etcd_put_p50_us_1 etcd_put_p99_us_1        (and _64)
 *   etcd_range_serializable_per_s_64 ..._p50_us_64 ..._p99_us_64
 *   fs_write_p50_ratio_1, fs_write_per_s_ratio_1, fs_write_per_s_ratio_64, fs_read_ratio_64,
 *   fs_pread_ratio_64, fuse_floor_read_ratio_64, fuse_noopen_read_ratio_64,
 *   fuse_floor_write_ratio_64, fuse_floor_write_and_replay_ratio_64 (and p99 / p50 ratios)
 *   fs_target_*_met: 1 or 0 for issue 7's targets (p50 ratio at 1 writer <= 0.5, puts/s ratio at
 *   64 writers >= 2, cached reads >= 20x serializable ranges, for read and pread: set when
 *   reads were served from the kernel's page cache, which ARCHITECTURE.md, "The read path",
 *   explains raftfs no longer uses)
 *
 * Usage: fs-bench [--raftfs PATH] [--script PATH] [--write1-ops N] [--write64-ops N]
 *                 [--read-seconds S] [--threads N] [--rounds N] [--max-seconds S] [--no-etcd]
 *                 [--no-tls] [--keep] [--on-leader] [--member-flag ARG]...
 * --member-flag passes ARG on to every `raftfs mount` (once per word: --member-flag
 * --snapshot-count --member-flag 100000).
 * --on-leader drives the leader's mount and puts the single etcd client on etcd's leader, instead
 * of n1 and member 1 (which are the leader or a follower as the elections fall).
 * Every phase is a fixed number of operations (or seconds) under a time cap, and a watchdog ends
 * the whole run after --max-seconds (300). Whatever happens (failure, SIGINT/SIGTERM/SIGHUP, exit)
 * it unmounts and stops every member it started (raftfs umount, then SIGTERM, SIGKILL and
 * `fusermount3 -u -z` as last resorts); members also get SIGTERM should the bench itself be killed
 * (PR_SET_PDEATHSIG), and the etcd script stops its cluster when the bench's pipe closes. Data dirs
 * are removed after a clean run and kept (path on stderr, logs in DIR/nN/raftfs.log) after a
 * failure. Progress goes to stderr as `# ...` lines; stdout has only the figures.
 * Exit 0, 1 on failure, 2 usage, 130 when interrupted.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench_common.h"
#include "etcd_client.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#ifndef FUSE_FLOOR_BIN
#define FUSE_FLOOR_BIN "build/tests/bench/fs/fuse-floor"
#endif
#ifndef RAFTFS_BIN
#define RAFTFS_BIN "build/fs/raftfs"
#endif
#ifndef CERTS_SCRIPT
#define CERTS_SCRIPT "examples/certs.sh"
#endif
#ifndef ETCD_CLUSTER_SCRIPT
#define ETCD_CLUSTER_SCRIPT "tests/bench/etcd/etcd_cluster.sh"
#endif

#define VALUE_SIZE BENCH_VALUE_SIZE
#define MEMBERS 3
#define SLOTS (2 * MEMBERS) /* the plain cluster's members, then the TLS cluster's */
#define MAX_THREADS 256
#define MAX_ENDPOINTS 8
#define REQUEST_TIMEOUT_MS 10000
#define PHASE_CAP_S 25.0  /* no phase runs longer than this, whatever its count */
#define WARMUP_OPS 50

static struct {
	const char *raftfs, *script, *fuse_floor, *certs_script;
	int no_tls; /* --no-tls: no second cluster with mutual TLS */
	char *member_flags[32]; /* --member-flag: extra `raftfs mount` arguments */
	int n_member_flags;
	long write1_ops, write64_ops;
	double read_seconds;
	int threads;
	int rounds; /* the write phases' rounds, alternating raftfs and etcd (write_rounds) */
	int no_etcd, keep, on_leader;
	double max_seconds;
} opt = {
	.write1_ops = 1000,
	.write64_ops = 150,
	.read_seconds = 3.0,
	.threads = 64,
	.rounds = 3,
	.max_seconds = 300,
};

#define now_s bench_now_s
#define now_us bench_now_us

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- state shared with the cleanup paths ------------------------------------------------------ */

static char data_base[192];  /* /var/tmp/fs-bench.XXXXXX: data dirs n1..n3 */
static char mnt_base[64];         /* /tmp/fsb.XXXXXX: mount points n1..n3 */
static char data_dir[SLOTS][224];
static char mnt[SLOTS][96];
static volatile pid_t member_pid[SLOTS] = {-1, -1, -1, -1, -1, -1};
static char certs_dir[256];       /* the TLS cluster's certificates (examples/certs.sh) */
static int fs_base;               /* the first slot of the cluster measured: 0, or MEMBERS (TLS) */
static int drive_of[2];           /* the slot driven in each cluster */
static int tls_up;                /* the TLS cluster started and has not failed */
static volatile sig_atomic_t interrupted;
static atomic_int stop_all;       /* workers stop at their next op */
static atomic_int cleaning;       /* main is in cleanup (the watchdog leaves it alone) */
static atomic_int cleaned;
static double run_started;
static int drive;                 /* the mount driven: n1, or the leader with --on-leader (a slot
				   * of the cluster measured) */
static int etcd_drive;            /* the endpoint of the single etcd client: 1, or the leader */
static int failed;                /* keep the data dirs */
static int fs_up, etcd_up;        /* the side started and has not failed */
static atomic_int timed_out;      /* the watchdog stopped the run (its time limit) */

static struct bench_cluster etcd_proc = {.pid = -1, .in = -1, .out = -1}; /* etcd, if started */
#define FLOORS 3 /* fuse-floor processes at once: a writer's mount and two that replay */
static volatile pid_t floor_pid[FLOORS] = {-1, -1, -1}; /* fuse-floor, where running */
static char floor_mnt[FLOORS][96];

static void on_signal(int sig)
{
	interrupted = sig;
	atomic_store(&stop_all, 1);
}

/* Runs ARGV (a program found in PATH or by path) and waits at most TIMEOUT_S; -1 on a timeout
 * (the child is killed) or failure, else its exit status. Output goes to our stderr. */
static int run_cmd(char *const argv[], double timeout_s)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_RDONLY);
		if (fd >= 0)
			dup2(fd, 0);
		dup2(2, 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	double deadline = now_s() + timeout_s;
	for (;;) {
		int status;
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
		if (w < 0 && errno != EINTR)
			return -1;
		if (now_s() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		sleep_ms(10);
	}
}

/* Whether /proc/self/mountinfo lists PATH as a mount point (of any type). */
static int is_mounted(const char *path, int want_raftfs)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return 0;
	char line[8192];
	int found = 0;
	while (!found && fgets(line, sizeof line, f)) {
		char mp[4096], fstype[256];
		const char *dash = strstr(line, " - ");
		if (!dash || sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1 ||
		    sscanf(dash + 3, "%255s", fstype) != 1)
			continue;
		found = !strcmp(mp, path) && (!want_raftfs || !strcmp(fstype, "fuse.raftfs"));
	}
	fclose(f);
	return found;
}

/* Reaps member I if it has exited; returns 1 when it is gone. */
static int member_reaped(int i)
{
	if (member_pid[i] <= 0)
		return 1;
	int status;
	pid_t w = waitpid(member_pid[i], &status, WNOHANG);
	if (w == member_pid[i] || (w < 0 && errno == ECHILD)) {
		if (w == member_pid[i] && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
			if (WIFEXITED(status))
				fprintf(stderr, "# member n%d exited with status %d\n", i + 1,
					WEXITSTATUS(status));
			else if (WIFSIGNALED(status))
				fprintf(stderr, "# member n%d died of signal %d\n", i + 1,
					WTERMSIG(status));
		}
		member_pid[i] = -1;
		return 1;
	}
	return 0;
}

static int members_alive(void)
{
	int n = 0;
	for (int i = 0; i < SLOTS; i++)
		n += !member_reaped(i);
	return n;
}

/* Waits up to TIMEOUT_S for every member to exit. */
static void wait_members(double timeout_s)
{
	double deadline = now_s() + timeout_s;
	while (members_alive() && now_s() < deadline)
		sleep_ms(20);
}

/* Stops the raftfs members: `raftfs umount` each (n2, n3 first so that n1 does not hand over
 * leadership back and forth), waits for them to exit; SIGTERM, then SIGKILL for the ones that do
 * not, then a lazy unmount of whatever is still mounted. */
static void stop_members(void)
{
	double t0 = now_s();
	int order[SLOTS] = {1, 2, 0, 4, 5, 3};
	for (int k = 0; k < SLOTS; k++) {
		int i = order[k];
		if (mnt[i][0] && is_mounted(mnt[i], 1)) {
			char *argv[] = {(char *)opt.raftfs, "umount", mnt[i], NULL};
			if (run_cmd(argv, 10) != 0)
				fprintf(stderr, "# raftfs umount %s failed\n", mnt[i]);
		}
	}
	wait_members(20);
	if (members_alive()) {
		for (int i = 0; i < SLOTS; i++)
			if (member_pid[i] > 0) {
				fprintf(stderr, "# member n%d (pid %d) still running 20 s after its "
						"unmount: SIGTERM\n",
					i + 1, (int)member_pid[i]);
				kill(member_pid[i], SIGTERM);
			}
		wait_members(10);
	}
	for (int i = 0; i < SLOTS; i++)
		if (member_pid[i] > 0) {
			fprintf(stderr, "# member n%d (pid %d) ignored SIGTERM: SIGKILL\n", i + 1,
				(int)member_pid[i]);
			kill(member_pid[i], SIGKILL);
			failed = 1;
		}
	wait_members(5);
	for (int i = 0; i < SLOTS; i++)
		if (mnt[i][0] && is_mounted(mnt[i], 0)) {
			fprintf(stderr, "# %s still mounted: fusermount3 -u -z\n", mnt[i]);
			char *argv[] = {"fusermount3", "-u", "-z", mnt[i], NULL};
			run_cmd(argv, 10);
			failed = 1;
		}
	fprintf(stderr, "# raftfs members stopped in %.1f s\n", now_s() - t0);
}

/* Unmounts and reaps every fuse-floor that runs; a lazy unmount and SIGKILL if one does not go. */
static void stop_floor(void)
{
	for (int i = 0; i < FLOORS; i++) {
		if (floor_pid[i] <= 0)
			continue;
		char *argv[] = {"fusermount3", "-u", floor_mnt[i], NULL};
		run_cmd(argv, 10);
		double deadline = now_s() + 5;
		int status;
		while (waitpid(floor_pid[i], &status, WNOHANG) == 0 && now_s() < deadline)
			sleep_ms(10);
		if (kill(floor_pid[i], 0) == 0) {
			kill(floor_pid[i], SIGKILL);
			waitpid(floor_pid[i], &status, 0);
		}
		floor_pid[i] = -1;
		if (is_mounted(floor_mnt[i], 0)) {
			char *lazy[] = {"fusermount3", "-u", "-z", floor_mnt[i], NULL};
			run_cmd(lazy, 10);
		}
		rmdir(floor_mnt[i]);
	}
}

/* Everything this run started goes away; runs once (main's way out, atexit, or the watchdog). */
static void cleanup_all(void)
{
	if (atomic_exchange(&cleaning, 1))
		return;
	atomic_store(&stop_all, 1);
	stop_members();
	stop_floor();
	bench_cluster_stop(&etcd_proc);
	for (int i = 0; i < SLOTS; i++)
		if (mnt[i][0] && !is_mounted(mnt[i], 0))
			rmdir(mnt[i]);
	if (mnt_base[0])
		rmdir(mnt_base);
	if (data_base[0]) {
		if (failed || opt.keep)
			fprintf(stderr, "# data dirs kept in %s (logs: %s/nN/raftfs.log)\n",
				data_base, data_base);
		else
			bench_remove_tree(data_base);
	}
	atomic_store(&cleaned, 1);
}

/* The watchdog: after a signal or the whole run's time limit it stops the workers; if main does
 * not get out of its phase (a hung mount) it signals the members, which aborts the hung requests;
 * if even the cleanup hangs, it unmounts lazily and exits. */
static void *watchdog_main(void *arg)
{
	(void)arg;
	double soft = 0, hard_cleanup = 0;
	int stage = 0;
	for (;;) {
		sleep_ms(100);
		if (atomic_load(&cleaned))
			return NULL;
		double t = now_s();
		if (!atomic_load(&cleaning))
			hard_cleanup = 0;
		if (atomic_load(&cleaning)) {
			if (hard_cleanup == 0)
				hard_cleanup = t + 90;
			if (t > hard_cleanup) {
				fprintf(stderr, "fs-bench: cleanup hangs: killing members, lazy "
						"unmounts, exiting\n");
				for (int i = 0; i < SLOTS; i++) {
					if (member_pid[i] > 0)
						kill(member_pid[i], SIGKILL);
					if (mnt[i][0]) {
						char *argv[] = {"fusermount3", "-u", "-z", mnt[i], NULL};
						run_cmd(argv, 5);
					}
				}
				if (etcd_proc.in >= 0)
					close(etcd_proc.in);
				_exit(1);
			}
			continue;
		}
		if (soft == 0 && (interrupted || t > run_started + opt.max_seconds)) {
			fprintf(stderr, "fs-bench: %s: stopping\n",
				interrupted ? "interrupted" : "the run's time limit passed");
			atomic_store(&timed_out, 1);
			atomic_store(&stop_all, 1);
			if (!interrupted)
				failed = 1; /* a hang: keep the logs */
			soft = t;
		}
		/* Workers stuck in a FUSE request for 10 s: end the members, which fails it. */
		if (soft > 0 && stage == 0 && t > soft + 10) {
			fprintf(stderr, "fs-bench: requests still hang: SIGTERM to the members\n");
			for (int i = 0; i < SLOTS; i++)
				if (member_pid[i] > 0)
					kill(member_pid[i], SIGTERM);
			stage = 1;
		}
		if (stage == 1 && t > soft + 20) {
			fprintf(stderr, "fs-bench: requests still hang: SIGKILL to the members\n");
			for (int i = 0; i < SLOTS; i++)
				if (member_pid[i] > 0)
					kill(member_pid[i], SIGKILL);
			stage = 2;
		}
	}
}

/* ---- helpers ------------------------------------------------------------------------------ */

static uint64_t seed_of(int thread, long i)
{
	return (uint64_t)thread << 32 | (uint64_t)i;
}

/* ---- raftfs cluster ------------------------------------------------------------------------- */

static int free_ports(int n, int *ports)
{
	int fds[8];
	int r = 0, k = 0;
	for (; k < n; k++) {
		fds[k] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		socklen_t len = sizeof a;
		if (fds[k] < 0 || bind(fds[k], (struct sockaddr *)&a, sizeof a) < 0 ||
		    getsockname(fds[k], (struct sockaddr *)&a, &len) < 0) {
			r = -errno;
			if (fds[k] >= 0)
				close(fds[k]);
			break;
		}
		ports[k] = ntohs(a.sin_port);
	}
	for (int i = 0; i < k; i++)
		close(fds[i]);
	return r;
}

/* Starts member I as a foreground child; its stderr goes to DATA_DIR/raftfs.log. */
static int start_member(int i, const char *cluster, const int *ports, const char *token)
{
	char name[16], listen[64];
	static char tls_files[SLOTS][3][320];
	snprintf(name, sizeof name, "n%d", i % MEMBERS + 1);
	snprintf(listen, sizeof listen, "127.0.0.1:%d", ports[i % MEMBERS]);
	if (mkdir(data_dir[i], 0700) < 0 || mkdir(mnt[i], 0755) < 0)
		return -errno;
	char log[256];
	if (snprintf(log, sizeof log, "%s/raftfs.log", data_dir[i]) >= (int)sizeof log)
		return -ENAMETOOLONG;
	char *args[64] = {(char *)opt.raftfs, "mount", "--name", name, "--data-dir",
			  data_dir[i], "--listen-peer", listen, "--initial-cluster",
			  (char *)cluster, "--initial-cluster-token", (char *)token};
	int n = 12;
	for (int k = 0; k < opt.n_member_flags; k++)
		args[n++] = opt.member_flags[k];
	if (i >= MEMBERS) { /* mutual TLS with the certificates of examples/certs.sh */
		snprintf(tls_files[i][0], sizeof tls_files[i][0], "%s/%s.pem", certs_dir, name);
		snprintf(tls_files[i][1], sizeof tls_files[i][1], "%s/%s-key.pem", certs_dir, name);
		snprintf(tls_files[i][2], sizeof tls_files[i][2], "%s/ca.pem", certs_dir);
		args[n++] = "--peer-cert-file";
		args[n++] = tls_files[i][0];
		args[n++] = "--peer-key-file";
		args[n++] = tls_files[i][1];
		args[n++] = "--peer-trusted-ca-file";
		args[n++] = tls_files[i][2];
	}
	args[n++] = "-f";
	args[n++] = mnt[i];
	args[n] = NULL;
	pid_t pid = bench_spawn(args, log, -1);
	if (pid < 0)
		return pid;
	member_pid[i] = pid;
	return 0;
}

static void print_log_tail(int i)
{
	char path[256];
	if (snprintf(path, sizeof path, "%s/raftfs.log", data_dir[i]) >= (int)sizeof path)
		return;
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	static char lines[10][512];
	int n = 0;
	while (fgets(lines[n % 10], sizeof lines[0], f))
		n++;
	fclose(f);
	fprintf(stderr, "# --- tail of %s\n", path);
	for (int k = n > 10 ? n - 10 : 0; k < n; k++)
		fprintf(stderr, "#   %s", lines[k % 10]);
}

static int read_xattr(const char *path, const char *name, char *out, size_t cap)
{
	ssize_t n = getxattr(path, name, out, cap - 1);
	if (n < 0)
		return -errno;
	out[n] = '\0';
	return 0;
}

/*
 * Starts three members in slots base.. (0: plaintext, MEMBERS: TLS) and waits until every mount
 * is live and n1 knows a leader; sets drive_of for the cluster.
 */
static int cluster_fs_start(int base)
{
	int ports[MEMBERS];
	int r = free_ports(MEMBERS, ports);
	if (r < 0)
		return r;
	const char *kind = base ? "tls-" : "", *suffix = base ? "_tls" : "";
	char cluster[256] = "", token[64];
	for (int i = 0; i < MEMBERS; i++) {
		size_t l = strlen(cluster);
		snprintf(cluster + l, sizeof cluster - l, "%sn%d=127.0.0.1:%d", i ? "," : "", i + 1,
			 ports[i]);
		snprintf(data_dir[base + i], sizeof data_dir[0], "%s/%sn%d", data_base, kind, i + 1);
		snprintf(mnt[base + i], sizeof mnt[0], "%s/%sn%d", mnt_base, base ? "t" : "", i + 1);
	}
	snprintf(token, sizeof token, "fs-bench-%d%s", (int)getpid(), suffix);
	for (int i = base; i < base + MEMBERS; i++)
		if ((r = start_member(i, cluster, ports, token)) < 0) {
			fprintf(stderr, "fs-bench: starting %sn%d: %s\n", kind, i - base + 1,
				strerror(-r));
			return r;
		}
	double t0 = now_s(), deadline = t0 + 30;
	int live = 0;
	while (live < MEMBERS && now_s() < deadline && !interrupted) {
		live = 0;
		for (int i = base; i < base + MEMBERS; i++) {
			if (member_reaped(i)) {
				fprintf(stderr, "fs-bench: member n%d exited before its mount was live\n",
					i + 1);
				print_log_tail(i);
				return -ECHILD;
			}
			live += is_mounted(mnt[i], 1);
		}
		if (live < MEMBERS)
			sleep_ms(20);
	}
	if (live < MEMBERS) {
		fprintf(stderr, "fs-bench: the mounts are not live after 30 s\n");
		return -ETIMEDOUT;
	}
	/* A leader, as n1 sees it. */
	char leader[64] = "", self[SLOTS][64];
	while (now_s() < deadline && !interrupted) {
		if (read_xattr(mnt[base], "user.raftfs.leader", leader, sizeof leader) == 0 &&
		    strspn(leader, "0") != strlen(leader))
			break;
		leader[0] = '\0';
		sleep_ms(20);
	}
	if (!leader[0]) {
		fprintf(stderr, "fs-bench: no leader after 30 s\n");
		return -ETIMEDOUT;
	}
	int leader_idx = -1;
	for (int i = base; i < base + MEMBERS; i++)
		if (read_xattr(mnt[i], "user.raftfs.member", self[i], sizeof self[i]) == 0 &&
		    !strcmp(self[i], leader))
			leader_idx = i - base;
	fprintf(stderr, "# raftfs%s: 3 members live in %.1f s, mounts %s/%sn1..n3, data %s/%sn1..; "
			"leader n%d (%s)\n",
		base ? " with mutual TLS" : "", now_s() - t0, mnt_base, base ? "t" : "", data_base,
		kind, leader_idx + 1, leader);
	int d = opt.on_leader && leader_idx >= 0 ? leader_idx : 0;
	static int plain_on_leader; /* the plaintext cluster's driven member leads */
	if (!base)
		plain_on_leader = leader_idx == d;
	else if (leader_idx >= 0) /* the TLS cluster's driven member has the same role */
		d = plain_on_leader ? leader_idx : (leader_idx + 1) % MEMBERS;
	drive_of[base ? 1 : 0] = base + d;
	fprintf(stderr, "# driving %sn%d\n", kind, d + 1);
	printf("fs_writer_on_leader%s: %d\n", suffix, leader_idx == d);
	return 0;
}

/* Measures the plaintext cluster (0) or the TLS one (1) from now on. */
static void use_cluster(int tls)
{
	fs_base = tls ? MEMBERS : 0;
	drive = drive_of[tls];
}

/* ---- workers -------------------------------------------------------------------------------- */

enum kind { FS_WRITE, FS_READ, FS_PREAD, ETCD_PUT, ETCD_RANGE, FS_WRITE_EXCL, FLOOR_REPLAYED };

static const char *const kind_name[] = {"create+write+close", "open+read+close",
					"pread of open files", "put", "serializable range",
					"exclusive create+write+close",
					"create+write+close and its replays on 2 mounts"};

struct worker {
	pthread_t tid;
	int index;
	enum kind kind;
	const char *phase;    /* directory / key component of the phase */
	const char *endpoint; /* etcd */
	long ops;             /* ops to do (reads and ranges: at most; the clock stops them) */
	long base;            /* writes and puts: the number of this round's first file or key */
	uint32_t *lat;
	long done;
	double finished;
	int err;
	char errmsg[PATH_MAX + 128];
};

/* Reads and ranges pick among the files / keys of the single-writer phase: thread 0, 0..N-1. */
static const char *read_phase;
static long read_space;
static unsigned char (*read_values)[VALUE_SIZE];
static int *read_fds; /* FS_PREAD: file K of read_phase, opened once */
static char etcd_prefix[64];

static pthread_mutex_t go_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go_cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t ready_cond = PTHREAD_COND_INITIALIZER;
static int go, ready;
static double run_until;      /* reads and ranges stop at this now_s() */
static double phase_deadline; /* writes stop at this now_s() whatever their count */

static const char *floor_mount; /* reads and writes go there instead of mount n1 (the FUSE floor) */

static void fs_path(char *out, size_t cap, const char *phase, int thread, long i)
{
	snprintf(out, cap, "%s/%s/t%03d/f%06ld", floor_mount ? floor_mount : mnt[drive], phase,
		 thread, i);
}

static void etcd_key(char *out, size_t cap, const char *phase, int thread, long i)
{
	snprintf(out, cap, "%s/%s/t%03d/f%06ld", etcd_prefix, phase, thread, i);
}

static int fs_write_one(struct worker *w, const char *path, const unsigned char *val, int excl)
{
	int fd = open(path, O_WRONLY | O_CREAT | (excl ? O_EXCL : O_TRUNC) | O_CLOEXEC, 0644);
	if (fd < 0) {
		int e = errno;
		snprintf(w->errmsg, sizeof w->errmsg, "open(%s, O_CREAT|%s): %s", path,
			 excl ? "O_EXCL" : "O_TRUNC", strerror(e));
		return -e;
	}
	ssize_t n = write(fd, val, VALUE_SIZE);
	if (n != VALUE_SIZE) {
		int e = n < 0 ? errno : EIO;
		snprintf(w->errmsg, sizeof w->errmsg, "write(%s) = %zd: %s", path, n, strerror(e));
		close(fd);
		return -e;
	}
	if (close(fd) < 0) {
		int e = errno;
		snprintf(w->errmsg, sizeof w->errmsg, "close(%s): %s", path, strerror(e));
		return -e;
	}
	return 0;
}

/* What raftfs's inotify replay does for a created file of another member (fs/replay/replay.c). */
static int replay_one(struct worker *w, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0 || pwrite(fd, "", 1, 0) != 1 || close(fd) < 0) {
		int e = errno;
		snprintf(w->errmsg, sizeof w->errmsg, "replay of %s: %s", path, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	return 0;
}

static int fs_read_one(struct worker *w, const char *path, const unsigned char *want)
{
	unsigned char buf[VALUE_SIZE * 2];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(w->errmsg, sizeof w->errmsg, "open(%s, O_RDONLY): %s", path, strerror(e));
		return -e;
	}
	ssize_t n = read(fd, buf, sizeof buf);
	int e = n < 0 ? errno : 0;
	if (close(fd) < 0 && !e)
		e = errno;
	if (n < 0 || e) {
		snprintf(w->errmsg, sizeof w->errmsg, "read/close(%s): %s", path, strerror(e));
		return -e;
	}
	if (n != VALUE_SIZE || memcmp(buf, want, VALUE_SIZE) != 0) {
		snprintf(w->errmsg, sizeof w->errmsg, "read(%s): %zd bytes, %s", path, n,
			 n == VALUE_SIZE ? "not the content written" : "not the 256 written");
		return -EPROTO;
	}
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct etcdc_conn *c = NULL;
	unsigned char val[VALUE_SIZE], buf[VALUE_SIZE + 16];
	char path[PATH_MAX];
	int r = 0;
	if (w->kind == ETCD_PUT || w->kind == ETCD_RANGE) {
		r = etcdc_connect(w->endpoint, REQUEST_TIMEOUT_MS, &c);
		if (r < 0) {
			w->err = r;
			snprintf(w->errmsg, sizeof w->errmsg, "connect to %s", w->endpoint);
			atomic_store(&stop_all, 1);
		}
	}
	pthread_mutex_lock(&go_lock);
	ready++;
	pthread_cond_signal(&ready_cond);
	while (!go)
		pthread_cond_wait(&go_cond, &go_lock);
	pthread_mutex_unlock(&go_lock);
	uint64_t x = (uint64_t)w->index * 7919 + 1;
	int timed_kind = w->kind == FS_READ || w->kind == FS_PREAD || w->kind == ETCD_RANGE;
	while (!w->err && !atomic_load(&stop_all) && w->done < w->ops) {
		double t = now_s();
		if (timed_kind ? t > run_until : t > phase_deadline)
			break;
		long k = 0;
		if (timed_kind) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			k = (long)(x % (uint64_t)read_space);
		}
		uint64_t t0 = 0;
		switch (w->kind) {
		case FS_WRITE:
		case FS_WRITE_EXCL:
		case FLOOR_REPLAYED:
			fs_path(path, sizeof path, w->phase, w->index, w->base + w->done);
			bench_make_value(val, seed_of(w->index, w->base + w->done));
			t0 = now_us();
			r = fs_write_one(w, path, val, w->kind == FS_WRITE_EXCL);
			/* on fuse-floor: the file's replays on the other two (run_write_floor) */
			for (int f = 1; w->kind == FLOOR_REPLAYED && f < FLOORS && r == 0; f++) {
				snprintf(path, sizeof path, "%s/%s/t%03d/f%06ld", floor_mnt[f], w->phase,
					 w->index, w->base + w->done);
				r = replay_one(w, path);
			}
			break;
		case FS_READ:
			fs_path(path, sizeof path, read_phase, 0, k);
			t0 = now_us();
			r = fs_read_one(w, path, read_values[k]);
			break;
		case FS_PREAD: {
			t0 = now_us();
			ssize_t n = pread(read_fds[k], buf, sizeof buf, 0);
			if (n != VALUE_SIZE || memcmp(buf, read_values[k], VALUE_SIZE) != 0) {
				r = n < 0 ? -errno : -EPROTO;
				snprintf(w->errmsg, sizeof w->errmsg, "pread of file %ld = %zd: %s", k,
					 n, n < 0 ? strerror(-r) : "not the content written");
			}
			break;
		}
		case ETCD_PUT:
			etcd_key(path, sizeof path, w->phase, w->index, w->base + w->done);
			bench_make_value(val, seed_of(w->index, w->base + w->done));
			t0 = now_us();
			r = etcdc_put(c, path, strlen(path), val, VALUE_SIZE, NULL);
			if (r < 0)
				snprintf(w->errmsg, sizeof w->errmsg, "put %s on %s: %s", path,
					 w->endpoint, etcdc_errmsg(c));
			break;
		case ETCD_RANGE: {
			etcd_key(path, sizeof path, read_phase, 0, k);
			size_t vl = 0;
			t0 = now_us();
			r = etcdc_get(c, path, strlen(path), ETCDC_SERIALIZABLE, buf, sizeof buf, &vl,
				      NULL);
			if (r == 0 && (vl != VALUE_SIZE || memcmp(buf, read_values[k], VALUE_SIZE)))
				r = -EPROTO;
			if (r < 0)
				snprintf(w->errmsg, sizeof w->errmsg, "range %s on %s: %s", path,
					 w->endpoint, r == -EPROTO ? "wrong value" : etcdc_errmsg(c));
			break;
		}
		}
		uint64_t t1 = now_us();
		if (r < 0) {
			w->err = r;
			atomic_store(&stop_all, 1);
			break;
		}
		w->lat[w->done++] = (uint32_t)(t1 - t0);
	}
	w->finished = now_s();
	etcdc_close(c);
	return NULL;
}

struct result {
	double per_s;
	uint32_t p50, p99;
	long ops;
	int ok;
};

/* What one workload did over its rounds: every latency, and the rounds' time summed. */
struct samples {
	uint32_t *lat;
	size_t n, cap;
	long ops;
	double secs; /* per round: from the start to the last worker's end */
};

static int samples_add(struct samples *s, const uint32_t *lat, size_t n)
{
	if (s->n + n > s->cap) {
		size_t cap = s->cap ? s->cap : 1024;
		while (cap < s->n + n)
			cap *= 2;
		uint32_t *m = realloc(s->lat, cap * sizeof *m);
		if (!m)
			return -ENOMEM;
		s->lat = m;
		s->cap = cap;
	}
	memcpy(s->lat + s->n, lat, n * sizeof *lat);
	s->n += n;
	return 0;
}

/* Summarizes s into res (files or requests per second of the rounds' time, percentiles of every
 * latency) and frees s's latencies. */
static void samples_result(struct samples *s, struct result *res)
{
	qsort(s->lat, s->n, sizeof *s->lat, bench_cmp_u32);
	res->ops = s->ops;
	res->per_s = s->secs > 0 ? (double)s->ops / s->secs : 0;
	res->p50 = bench_percentile(s->lat, s->n, 50);
	res->p99 = bench_percentile(s->lat, s->n, 99);
	res->ok = s->ops > 0;
	free(s->lat);
	*s = (struct samples){0};
}

static const char *endpoints[MAX_ENDPOINTS];
static int n_endpoints;

/*
 * One round: N workers of KIND on PHASE; each does OPS writes or puts (files or keys BASE to
 * BASE + OPS - 1 of its own) or runs for opt.read_seconds; what they did goes into ACC. Etcd
 * clients are spread over the endpoints (one client: the first).
 */
static int run_round(int n, enum kind kind, const char *phase, long ops, long base,
		     struct samples *acc)
{
	struct worker *ws = calloc((size_t)n, sizeof *ws);
	if (!ws)
		return -ENOMEM;
	int timed = kind == FS_READ || kind == FS_PREAD || kind == ETCD_RANGE;
	long cap = timed ? 4000000 / n + 1 : ops; /* reads: latency slots, more than 2 cores do */
	int r = 0, started = 0;
	go = 0;
	ready = 0;
	for (int i = 0; i < n; i++) {
		ws[i].index = i;
		ws[i].kind = kind;
		ws[i].phase = phase;
		ws[i].endpoint = n_endpoints ? endpoints[(i + etcd_drive) % n_endpoints] : NULL;
		ws[i].ops = cap;
		ws[i].base = base;
		ws[i].lat = malloc((size_t)cap * sizeof(uint32_t));
		if (!ws[i].lat) {
			r = -ENOMEM;
			break;
		}
	}
	for (int i = 0; r == 0 && i < n; i++) {
		int e = pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]);
		if (e) {
			r = -e;
			break;
		}
		started++;
	}
	if (started < n)
		atomic_store(&stop_all, 1);
	pthread_mutex_lock(&go_lock);
	while (ready < started)
		pthread_cond_wait(&ready_cond, &go_lock);
	double t0 = now_s();
	phase_deadline = t0 + PHASE_CAP_S;
	run_until = t0 + opt.read_seconds;
	go = 1;
	pthread_cond_broadcast(&go_cond);
	pthread_mutex_unlock(&go_lock);
	double last = t0;
	long total = 0;
	for (int i = 0; i < started; i++) {
		pthread_join(ws[i].tid, NULL);
		if (ws[i].err && r == 0) {
			r = ws[i].err;
			fprintf(stderr, "fs-bench: %s, thread %d, op %ld: %s (%s)\n", kind_name[kind],
				i, ws[i].base + ws[i].done, ws[i].errmsg, strerror(-r));
		}
		if (ws[i].finished > last)
			last = ws[i].finished;
		total += ws[i].done;
	}
	if (r == 0 && interrupted)
		r = -EINTR;
	for (int i = 0; r == 0 && i < n; i++)
		r = samples_add(acc, ws[i].lat, (size_t)ws[i].done);
	if (r == 0) {
		acc->ops += total;
		acc->secs += last - t0;
		if (!timed && total < (long)n * ops)
			fprintf(stderr, "# only %ld of %ld %ss done within %.0f s\n", total,
				(long)n * ops, kind_name[kind], PHASE_CAP_S);
		fprintf(stderr, "# %s, %d thread%s: %ld ops in %.2f s\n", kind_name[kind], n,
			n == 1 ? "" : "s", total, last - t0);
	}
	for (int i = 0; i < n; i++)
		free(ws[i].lat);
	free(ws);
	return r;
}

/* One round of OPS per worker from the first file or key, summarized into RES. */
static int run_workers(int n, enum kind kind, const char *phase, long ops, struct result *res)
{
	struct samples s = {0};
	int r = run_round(n, kind, phase, ops, 0, &s);
	if (r == 0)
		samples_result(&s, res);
	free(s.lat);
	return r;
}

/* ---- the raftfs side ------------------------------------------------------------------------ */

static int mkdir_phase(const char *phase, int threads)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", mnt[drive], phase);
	if (mkdir(path, 0755) < 0) {
		int e = errno;
		fprintf(stderr, "fs-bench: mkdir %s: %s\n", path, strerror(e));
		return -e;
	}
	for (int t = 0; t < threads; t++) {
		snprintf(path, sizeof path, "%s/%s/t%03d", mnt[drive], phase, t);
		if (mkdir(path, 0755) < 0) {
			int e = errno;
			fprintf(stderr, "fs-bench: mkdir %s: %s\n", path, strerror(e));
			return -e;
		}
	}
	return 0;
}

/* Member m's inotify replay backlog, from its .raftfs/status; -1 when unreadable. */
static long replay_backlog(int m)
{
	char path[PATH_MAX], doc[8192];
	snprintf(path, sizeof path, "%s/.raftfs/status", mnt[m]);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, doc, sizeof doc - 1);
	close(fd);
	if (n <= 0)
		return -1;
	doc[n] = '\0';
	const char *at = strstr(doc, "\"replay_backlog\":");
	return at ? strtol(at + strlen("\"replay_backlog\":"), NULL, 10) : -1;
}

/*
 * Waits until no member has a change left to replay for inotify (replays run at low priority and
 * lag a burst of writes: what they left would otherwise run in the next phase). The ms it took,
 * or -1 after 60 s or when a status is unreadable.
 */
static double replay_catchup_ms(void)
{
	double t0 = now_s();
	while (now_s() - t0 < 60 && !interrupted) {
		long most = 0;
		for (int m = fs_base; m < fs_base + MEMBERS && most >= 0; m++) {
			long b = replay_backlog(m);
			most = b < 0 ? -1 : b > most ? b : most;
		}
		if (most == 0)
			return (now_s() - t0) * 1000;
		if (most < 0)
			return -1;
		sleep_ms(10);
	}
	return -1;
}

/* Checks that file I of THREAD in PHASE has its content on mount M within 5 s. */
static int check_file_on(int m, const char *phase, int thread, long i)
{
	char path[PATH_MAX];
	unsigned char want[VALUE_SIZE], got[VALUE_SIZE * 2];
	snprintf(path, sizeof path, "%s/%s/t%03d/f%06ld", mnt[m], phase, thread, i);
	bench_make_value(want, seed_of(thread, i));
	double deadline = now_s() + 5;
	ssize_t n = -1;
	int e = 0;
	while (now_s() < deadline && !interrupted) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			n = read(fd, got, sizeof got);
			e = n < 0 ? errno : 0;
			close(fd);
			if (n == VALUE_SIZE && memcmp(got, want, VALUE_SIZE) == 0)
				return 0;
		} else {
			e = errno;
		}
		sleep_ms(10);
	}
	fprintf(stderr, "fs-bench: %s on n%d: %s\n", path, m + 1,
		e ? strerror(e) : n == VALUE_SIZE ? "wrong content" : "wrong length");
	return -EPROTO;
}

/*
 * Starts a raftfs cluster (TLS: in slots MEMBERS.., with certificates made by examples/certs.sh),
 * makes the phases' directories and warms the write path up; measures that cluster afterwards.
 */
static int fs_start(int tls)
{
	int r;
	if (tls) {
		snprintf(certs_dir, sizeof certs_dir, "%s/certs", data_base);
		char *argv[] = {(char *)opt.certs_script, certs_dir, "n1=127.0.0.1", "n2=127.0.0.1",
				"n3=127.0.0.1", NULL};
		if (run_cmd(argv, 60) != 0) {
			fprintf(stderr, "fs-bench: %s could not make the certificates\n",
				opt.certs_script);
			return -EIO;
		}
	}
	if ((r = cluster_fs_start(tls ? MEMBERS : 0)) < 0)
		return r;
	use_cluster(tls);
	if ((r = mkdir_phase("warm", 1)) < 0 || (r = mkdir_phase("w1", 1)) < 0 ||
	    (r = mkdir_phase("w1x", 1)) < 0 || (r = mkdir_phase("w64", opt.threads)) < 0)
		return r;
	struct result warm = {0};
	return run_workers(1, FS_WRITE, "warm", WARMUP_OPS, &warm);
}

/* One writer with O_CREAT|O_EXCL (raftfs only: etcd has no such open). */
static int fs_excl(void)
{
	struct result wx = {0};
	int r = run_workers(1, FS_WRITE_EXCL, "w1x", opt.write1_ops, &wx);
	if (r < 0)
		return r;
	printf("fs_write_excl_per_s_1: %.0f\n", wx.per_s);
	printf("fs_write_excl_p50_us_1: %" PRIu32 "\n", wx.p50);
	printf("fs_write_excl_p99_us_1: %" PRIu32 "\n", wx.p99);
	printf("fs_replay_catchup_ms_excl_1: %.0f\n", replay_catchup_ms());
	return 0;
}

/* After the writes: the files on the other members, then the cached reads and preads. */
static int fs_reads(const struct result *w1, const struct result *w64, struct result *rd,
		    struct result *prd)
{
	int r = 0;
	/* Replication: the first and last files of both phases on the other two members. */
	double t0 = now_s();
	for (int m = 0; m < MEMBERS && r == 0; m++) {
		if (m == drive)
			continue;
		r = check_file_on(m, "w1", 0, 0);
		if (r == 0)
			r = check_file_on(m, "w1", 0, w1->ops - 1);
		if (r == 0)
			r = check_file_on(m, "w64", opt.threads - 1, w64->ops / opt.threads - 1);
	}
	if (r < 0)
		return r;
	fprintf(stderr, "# the other members have the written files (checked in %.0f ms)\n",
		(now_s() - t0) * 1000);
	/* Reads: every file of w1, read once (and checked) by one thread, then 64 threads. */
	read_phase = "w1";
	read_space = w1->ops;
	for (long i = 0; i < read_space; i++)
		bench_make_value(read_values[i], seed_of(0, i));
	struct worker one = {.kind = FS_READ};
	char path[PATH_MAX];
	t0 = now_s();
	for (long i = 0; i < read_space; i++) {
		fs_path(path, sizeof path, "w1", 0, i);
		if ((r = fs_read_one(&one, path, read_values[i])) < 0) {
			fprintf(stderr, "fs-bench: first read: %s\n", one.errmsg);
			return r;
		}
	}
	fprintf(stderr, "# first read of %ld files in %.2f s\n", read_space, now_s() - t0);
	if ((r = run_workers(opt.threads, FS_READ, "w1", 0, rd)) < 0)
		return r;
	printf("fs_read_per_s_%d: %.0f\n", opt.threads, rd->per_s);
	printf("fs_read_p50_us_%d: %" PRIu32 "\n", opt.threads, rd->p50);
	printf("fs_read_p99_us_%d: %" PRIu32 "\n", opt.threads, rd->p99);
	/* pread: every file opened once (and read once through it), then 64 threads pread them. */
	read_fds = calloc((size_t)read_space, sizeof *read_fds);
	if (!read_fds)
		return -ENOMEM;
	for (long i = 0; i < read_space; i++)
		read_fds[i] = -1;
	for (long i = 0; i < read_space && r == 0; i++) {
		fs_path(path, sizeof path, "w1", 0, i);
		read_fds[i] = open(path, O_RDONLY | O_CLOEXEC);
		unsigned char buf[VALUE_SIZE * 2];
		if (read_fds[i] < 0 || pread(read_fds[i], buf, sizeof buf, 0) != VALUE_SIZE) {
			r = -errno;
			fprintf(stderr, "fs-bench: open+pread %s: %s\n", path, strerror(errno));
		}
	}
	if (r == 0)
		r = run_workers(opt.threads, FS_PREAD, "w1", 0, prd);
	for (long i = 0; i < read_space; i++)
		if (read_fds[i] >= 0)
			close(read_fds[i]);
	free(read_fds);
	read_fds = NULL;
	if (r < 0)
		return r;
	printf("fs_pread_per_s_%d: %.0f\n", opt.threads, prd->per_s);
	printf("fs_pread_p50_us_%d: %" PRIu32 "\n", opt.threads, prd->p50);
	printf("fs_pread_p99_us_%d: %" PRIu32 "\n", opt.threads, prd->p99);
	return 0;
}

/* ---- the FUSE floor ------------------------------------------------------------------------- */

/*
 * Starts fuse-floor number i (0..FLOORS-1) in MODE on floor_mnt[i]; CONTENT and N for the read
 * modes, NULL for write and replay. 0 once it is mounted, or a negative errno (said on stderr).
 */
static int floor_start(int i, const char *mode, const char *content, const char *n)
{
	snprintf(floor_mnt[i], sizeof floor_mnt[i], "%s/floor%d", mnt_base, i);
	if (mkdir(floor_mnt[i], 0755) < 0 && errno != EEXIST)
		return -errno;
	char *args[] = {(char *)opt.fuse_floor, (char *)mode, (char *)content, (char *)n,
			floor_mnt[i], NULL};
	if (!content) {
		args[2] = floor_mnt[i];
		args[3] = NULL;
	}
	pid_t pid = bench_spawn(args, NULL, 2); /* its stdout to our stderr */
	if (pid < 0)
		return pid;
	floor_pid[i] = pid;
	double deadline = now_s() + 10;
	while (!is_mounted(floor_mnt[i], 0) && now_s() < deadline &&
	       waitpid(pid, NULL, WNOHANG) == 0)
		sleep_ms(10);
	if (is_mounted(floor_mnt[i], 0))
		return 0;
	fprintf(stderr, "fs-bench: %s %s did not mount %s\n", opt.fuse_floor, mode, floor_mnt[i]);
	return -EIO;
}

/*
 * The 64 readers again, on fuse-floor serving the same files: MODE "open" answers OPEN as raftfs
 * does (the most a FUSE file system that sees close() can do), "noopen" makes the kernel send no
 * request per open+read+close at all (what commit at close rules out). Run with the members
 * stopped, as etcd is.
 */
static int run_floor(const char *mode, struct result *res)
{
	char content[256];
	snprintf(content, sizeof content, "%s/floor.bin", data_base);
	FILE *f = fopen(content, "wb");
	if (!f || fwrite(read_values, VALUE_SIZE, (size_t)read_space, f) != (size_t)read_space ||
	    fclose(f) != 0) {
		fprintf(stderr, "fs-bench: cannot write %s\n", content);
		return -EIO;
	}
	char n[32];
	snprintf(n, sizeof n, "%ld", read_space);
	int r = floor_start(0, mode, content, n);
	floor_mount = floor_mnt[0];
	struct worker one = {.kind = FS_READ};
	char path[PATH_MAX];
	for (long i = 0; i < read_space && r == 0; i++) {
		fs_path(path, sizeof path, read_phase, 0, i);
		if ((r = fs_read_one(&one, path, read_values[i])) < 0)
			fprintf(stderr, "fs-bench: fuse-floor: %s\n", one.errmsg);
	}
	if (r == 0)
		r = run_workers(opt.threads, FS_READ, read_phase, 0, res);
	floor_mount = NULL;
	stop_floor();
	return r;
}

/*
 * The 64 writers' files (as many as in their rounds on raftfs) on fuse-floor in write mode, which
 * answers the requests of a create+write+close as raftfs does and does nothing else: what FUSE
 * itself costs raftfs's writers. With REPLAYS, each file is then replayed on two more fuse-floors
 * in replay mode as raftfs's other members replay it to raise its inotify events (fs/replay/replay.c):
 * what FUSE costs a 3-member raftfs for each file once every member replayed it, to set beside
 * fs_write_and_replay_per_s. One FUSE process per mount, as one per member; run with the members
 * stopped.
 */
static int run_write_floor(int replays, struct result *res)
{
	int r = 0;
	for (int i = 0; i < (replays ? FLOORS : 1) && r == 0; i++)
		r = floor_start(i, i ? "replay" : "write", NULL, NULL);
	floor_mount = floor_mnt[0];
	if (r == 0)
		r = run_workers(opt.threads, replays ? FLOOR_REPLAYED : FS_WRITE, "w64",
				opt.write64_ops, res);
	floor_mount = NULL;
	stop_floor();
	return r;
}

/* NAME_per_s_64 and NAME_p50_us_64 of a floor's run, and PCT_64: raftfs's FS_PER_S as a % of it. */
static void floor_print(const char *name, const struct result *fl, const char *pct,
			double fs_per_s)
{
	if (!fl->ok)
		return;
	printf("%s_per_s_%d: %.0f\n", name, opt.threads, fl->per_s);
	printf("%s_p50_us_%d: %" PRIu32 "\n", name, opt.threads, fl->p50);
	if (pct)
		printf("%s_%d: %.0f\n", pct, opt.threads, 100 * fs_per_s / fl->per_s);
}

/* ---- the etcd side -------------------------------------------------------------------------- */

/* Starts the 3-member etcd, finds its leader and warms the put path up. */
static int etcd_start(void)
{
	fprintf(stderr, "# starting a 3-member etcd with %s\n", opt.script);
	int r = bench_cluster_start(&etcd_proc, opt.script, 60, &interrupted);
	if (r < 0) {
		fprintf(stderr, "fs-bench: starting etcd: %s\n", strerror(-r));
		return r;
	}
	n_endpoints = 0;
	static char eps[sizeof etcd_proc.endpoints];
	memcpy(eps, etcd_proc.endpoints, sizeof eps);
	for (char *save = NULL, *t = strtok_r(eps, ",", &save); t && n_endpoints < MAX_ENDPOINTS;
	     t = strtok_r(NULL, ",", &save))
		endpoints[n_endpoints++] = t;
	if (!n_endpoints)
		return -EINVAL;
	snprintf(etcd_prefix, sizeof etcd_prefix, "/fs-bench/%d.%" PRIu64, (int)getpid(),
		 now_us());
	fprintf(stderr, "# etcd endpoints %s\n", etcd_proc.endpoints);
	/* Which member leads: the single client talks to the first. */
	{
		uint64_t ids[MAX_ENDPOINTS] = {0}, leader = 0;
		for (int e = 0; e < n_endpoints; e++) {
			struct etcdc_conn *c;
			if (etcdc_connect(endpoints[e], REQUEST_TIMEOUT_MS, &c) < 0)
				continue;
			etcdc_status(c, &ids[e], &leader, NULL);
			etcdc_close(c);
		}
		int li = -1;
		for (int e = 0; e < n_endpoints; e++)
			if (ids[e] && ids[e] == leader)
				li = e;
		if (opt.on_leader && li >= 0)
			etcd_drive = li;
		fprintf(stderr, "# etcd leader: member %d; the single client on member %d\n", li + 1,
			etcd_drive + 1);
		printf("etcd_writer_on_leader: %d\n", li == etcd_drive);
	}
	struct result warm = {0};
	return run_workers(1, ETCD_PUT, "warm", WARMUP_OPS, &warm);
}

/* Serializable ranges of the single client's keys (those of p1) at 64 clients. */
static int etcd_ranges(const struct result *p1, struct result *rg)
{
	int r;
	/* Ranges read the single client's keys, from every member: wait until the last one is
	 * applied everywhere (a follower may apply a moment after the leader replied). */
	read_phase = "w1";
	read_space = p1->ops;
	for (long i = 0; i < read_space; i++)
		bench_make_value(read_values[i], seed_of(0, i));
	char key[256];
	etcd_key(key, sizeof key, "w1", 0, read_space - 1);
	for (int e = 0; e < n_endpoints; e++) {
		struct etcdc_conn *c;
		if ((r = etcdc_connect(endpoints[e], REQUEST_TIMEOUT_MS, &c)) < 0)
			return r;
		unsigned char got[VALUE_SIZE + 16];
		size_t vl = 0;
		for (int tries = 0; tries < 300; tries++) {
			r = etcdc_get(c, key, strlen(key), ETCDC_SERIALIZABLE, got, sizeof got, &vl,
				      NULL);
			if (r != -ENOENT)
				break;
			sleep_ms(10);
		}
		if (r == 0 && (vl != VALUE_SIZE || memcmp(got, read_values[read_space - 1], vl)))
			r = -EPROTO;
		if (r < 0)
			fprintf(stderr, "fs-bench: reading %s back from %s: %s\n", key, endpoints[e],
				etcdc_errmsg(c));
		etcdc_close(c);
		if (r < 0)
			return r;
	}
	if ((r = run_workers(opt.threads, ETCD_RANGE, "w1", 0, rg)) < 0)
		return r;
	printf("etcd_range_serializable_per_s_%d: %.0f\n", opt.threads, rg->per_s);
	printf("etcd_range_serializable_p50_us_%d: %" PRIu32 "\n", opt.threads, rg->p50);
	printf("etcd_range_serializable_p99_us_%d: %" PRIu32 "\n", opt.threads, rg->p99);
	return 0;
}

/* ---- the write phases ------------------------------------------------------------------------ */

/* The workers go on after a failed phase, unless the run is being stopped (signal, time limit). */
static void resume_workers(void)
{
	if (!interrupted && !atomic_load(&timed_out))
		atomic_store(&stop_all, 0);
}

/* A side (raftfs when fs, else etcd) failed: it is left out of what follows. */
/* Side fs = 0: etcd, 1: raftfs, 2: raftfs with TLS (the one measured now) failed. */
static void side_failed(int fs, int r)
{
	*(fs == 2 ? &tls_up : fs ? &fs_up : &etcd_up) = 0;
	if (interrupted)
		return;
	failed = 1;
	fprintf(stderr, "fs-bench: the %s side FAILED: %s\n",
		fs == 2 ? "raftfs with TLS" : fs ? "raftfs" : "etcd", strerror(-r));
	for (int i = fs_base; fs && i < fs_base + MEMBERS; i++)
		if (data_dir[i][0])
			print_log_tail(i);
	resume_workers();
}

/*
 * A write phase (THREADS workers, OPS files or keys each) in opt.rounds rounds that alternate
 * between raftfs and etcd, each round the next slice of every worker's files and keys, with both
 * clusters up and the one not measured idle. This machine's load and its disk's flush time drift
 * over minutes (the flush went from 270 to 505 us and back within an hour): rounds seconds apart
 * put both systems under the same conditions, which phases minutes apart did not. An idle etcd
 * cluster takes about 70 ms of CPU a second, an idle raftfs cluster 10: the turns cost raftfs
 * that little, not etcd. After each raftfs round the members' replays (low priority) catch up
 * before etcd's round starts; returns the ms that took in all (-1: a backlog could not be read).
 * Latencies and time add up in FS and ETCD over the rounds; a side that fails is left out of the
 * rounds after it.
 */
static double write_rounds(int threads, const char *phase, long ops, struct samples *fs,
			   struct samples *fs_tls, struct samples *etcd)
{
	double catchup = 0;
	for (int k = 0; k < opt.rounds && (fs_up || etcd_up) && !interrupted; k++) {
		long lo = ops * k / opt.rounds, hi = ops * (k + 1) / opt.rounds;
		if (hi == lo)
			continue;
		int r;
		/* the same round on the TLS cluster, the others idle: before the plaintext one in
		   every other round, so that neither always follows the other */
		for (int turn = 0; turn < 2 && !interrupted; turn++) {
			int tls = turn == k % 2;
			if (tls && tls_up) {
				use_cluster(1);
				if ((r = run_round(threads, FS_WRITE, phase, hi - lo, lo, fs_tls)) < 0)
					side_failed(2, r);
				else
					replay_catchup_ms();
				use_cluster(0);
			} else if (!tls && fs_up) {
				if ((r = run_round(threads, FS_WRITE, phase, hi - lo, lo, fs)) < 0) {
					side_failed(1, r);
				} else {
					double c = replay_catchup_ms();
					catchup = c < 0 || catchup < 0 ? -1 : catchup + c;
				}
			}
		}
		if (etcd_up && !interrupted &&
		    (r = run_round(threads, ETCD_PUT, phase, hi - lo, lo, etcd)) < 0)
			side_failed(0, r);
	}
	return catchup;
}

/* ---- main ----------------------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
		"usage: fs-bench [--raftfs PATH] [--script PATH] [--write1-ops N] [--write64-ops N]\n"
		"                [--read-seconds S] [--threads N] [--rounds N] [--max-seconds S]\n"
		"                [--no-etcd] [--no-tls] [--keep] [--on-leader] [--member-flag ARG]...\n"
		"Starts a 3-member raftfs cluster with PATH (default %s) and a 3-member etcd with\n"
		"the script (default %s); --write64-ops is per thread.\n",
		RAFTFS_BIN, ETCD_CLUSTER_SCRIPT);
	exit(2);
}

static long parse_count(const char *s, long lo, long hi)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (!*s || *end || v < lo || v > hi)
		usage();
	return v;
}

/* NAME_per_s_N, NAME_p50_us_N and NAME_p99_us_N (each followed by SUFFIX) of r. */
static void print_rate(const char *name, int n, const char *suffix, const struct result *r)
{
	printf("%s_per_s_%d%s: %.0f\n", name, n, suffix, r->per_s);
	printf("%s_p50_us_%d%s: %" PRIu32 "\n", name, n, suffix, r->p50);
	printf("%s_p99_us_%d%s: %" PRIu32 "\n", name, n, suffix, r->p99);
}

static void ratio(const char *name, double fs, double etcd)
{
	if (fs > 0 && etcd > 0)
		printf("%s: %.2f\n", name, fs / etcd);
}

/* NAME_64: a floor's rate over etcd's, when both ran. */
static void floor_ratio(const char *name, const struct result *fl, const struct result *etcd)
{
	char full[96];
	snprintf(full, sizeof full, "%s_%d", name, opt.threads);
	if (fl->ok && etcd->ok)
		ratio(full, fl->per_s, etcd->per_s);
}

int main(int argc, char **argv)
{
	opt.raftfs = getenv("RAFTFS_BIN") ? getenv("RAFTFS_BIN") : RAFTFS_BIN;
	opt.fuse_floor = getenv("FUSE_FLOOR_BIN") ? getenv("FUSE_FLOOR_BIN") : FUSE_FLOOR_BIN;
	opt.script = getenv("ETCD_CLUSTER_SCRIPT") ? getenv("ETCD_CLUSTER_SCRIPT")
						   : ETCD_CLUSTER_SCRIPT;
	opt.certs_script = getenv("CERTS_SCRIPT") ? getenv("CERTS_SCRIPT") : CERTS_SCRIPT;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--no-etcd") == 0) {
			opt.no_etcd = 1;
			continue;
		}
		if (strcmp(a, "--keep") == 0) {
			opt.keep = 1;
			continue;
		}
		if (strcmp(a, "--on-leader") == 0) {
			opt.on_leader = 1;
			continue;
		}
		if (strcmp(a, "--no-tls") == 0) {
			opt.no_tls = 1;
			continue;
		}
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			usage();
		i++;
		if (strcmp(a, "--raftfs") == 0)
			opt.raftfs = v;
		else if (strcmp(a, "--member-flag") == 0 && opt.n_member_flags < 32)
			opt.member_flags[opt.n_member_flags++] = (char *)v;
		else if (strcmp(a, "--script") == 0)
			opt.script = v;
		else if (strcmp(a, "--write1-ops") == 0)
			opt.write1_ops = parse_count(v, 10, 1000000);
		else if (strcmp(a, "--write64-ops") == 0)
			opt.write64_ops = parse_count(v, 1, 1000000);
		else if (strcmp(a, "--read-seconds") == 0)
			opt.read_seconds = (double)parse_count(v, 1, 60);
		else if (strcmp(a, "--threads") == 0)
			opt.threads = (int)parse_count(v, 1, MAX_THREADS);
		else if (strcmp(a, "--rounds") == 0)
			opt.rounds = (int)parse_count(v, 1, 100);
		else if (strcmp(a, "--max-seconds") == 0)
			opt.max_seconds = (double)parse_count(v, 10, 3600);
		else
			usage();
	}
	run_started = now_s();
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (access(opt.raftfs, X_OK) != 0) {
		fprintf(stderr, "fs-bench: %s: %s (build raftfs first)\n", opt.raftfs,
			strerror(errno));
		return 1;
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096 && rl.rlim_max >= 4096) {
		rl.rlim_cur = 4096;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	read_values = calloc((size_t)opt.write1_ops, sizeof *read_values);
	if (!read_values)
		return 1;

	/* The cleanup paths: atexit for exit(), the watchdog for signals and hangs. */
	atexit(cleanup_all);
	pthread_t wd;
	if (pthread_create(&wd, NULL, watchdog_main, NULL) != 0) {
		fprintf(stderr, "fs-bench: cannot start the watchdog\n");
		return 1;
	}
	pthread_detach(wd);

	const char *tmp = getenv("FS_BENCH_TMPDIR") ? getenv("FS_BENCH_TMPDIR") : "/var/tmp";
	snprintf(data_base, sizeof data_base, "%s/fs-bench.XXXXXX", tmp);
	snprintf(mnt_base, sizeof mnt_base, "/tmp/fsb.XXXXXX");
	if (!mkdtemp(data_base) || !mkdtemp(mnt_base)) {
		fprintf(stderr, "fs-bench: mkdtemp: %s\n", strerror(errno));
		data_base[0] = mnt_base[0] = '\0';
		return 1;
	}
	fprintf(stderr, "# raftfs %s, %d threads, %ld + %ld x %d files of %d bytes, reads for "
			"%.0f s\n",
		opt.raftfs, opt.threads, opt.write1_ops, opt.write64_ops, opt.threads, VALUE_SIZE,
		opt.read_seconds);

	struct result w1 = {0}, w64 = {0}, rd = {0}, prd = {0}, p1 = {0}, p64 = {0}, rg = {0};
	double fs_replayed_per_s = 0;
	int r = fs_start(0);
	fs_up = r == 0;
	if (r < 0)
		side_failed(1, r);
	if (fs_up && !opt.no_tls && !interrupted) {
		r = fs_start(1);
		tls_up = r == 0;
		use_cluster(0);
		if (r < 0)
			side_failed(2, r);
	}
	if (!opt.no_etcd && !interrupted) {
		r = etcd_start();
		etcd_up = r == 0;
		if (r < 0)
			side_failed(0, r);
	}
	/* One writer, in rounds. */
	struct samples sfs = {0}, stls = {0}, setcd = {0};
	struct result t1 = {0}, t64 = {0};
	double catchup = write_rounds(1, "w1", opt.write1_ops, &sfs, &stls, &setcd);
	if (fs_up) {
		samples_result(&sfs, &w1);
		print_rate("fs_write", 1, "", &w1);
		printf("fs_replay_catchup_ms_1: %.0f\n", catchup);
	}
	if (tls_up) {
		samples_result(&stls, &t1);
		print_rate("fs_write", 1, "_tls", &t1);
	}
	free(stls.lat);
	stls = (struct samples){0};
	if (etcd_up) {
		samples_result(&setcd, &p1);
		print_rate("etcd_put", 1, "", &p1);
	}
	free(sfs.lat);
	free(setcd.lat);
	sfs = setcd = (struct samples){0};
	if (fs_up && !interrupted && (r = fs_excl()) < 0)
		side_failed(1, r);
	/* 64 writers, in rounds. */
	catchup = write_rounds(opt.threads, "w64", opt.write64_ops, &sfs, &stls, &setcd);
	if (tls_up) {
		samples_result(&stls, &t64);
		print_rate("fs_write", opt.threads, "_tls", &t64);
	}
	free(stls.lat);
	if (fs_up) {
		samples_result(&sfs, &w64);
		print_rate("fs_write", opt.threads, "", &w64);
		/* what the rounds left the replays, done before the next round */
		printf("fs_replay_catchup_ms_%d: %.0f\n", opt.threads, catchup);
		if (catchup >= 0 && w64.per_s > 0) { /* files a second once every member replayed them */
			fs_replayed_per_s =
				(double)w64.ops / ((double)w64.ops / w64.per_s + catchup / 1000);
			printf("fs_write_and_replay_per_s_%d: %.0f\n", opt.threads, fs_replayed_per_s);
		}
	}
	if (etcd_up) {
		samples_result(&setcd, &p64);
		print_rate("etcd_put", opt.threads, "", &p64);
	}
	free(sfs.lat);
	free(setcd.lat);
	if (fs_up && !interrupted && (r = fs_reads(&w1, &w64, &rd, &prd)) < 0)
		side_failed(1, r);
	atomic_store(&cleaning, 1); /* the raftfs part only: stop_members may take a while */
	stop_members();
	atomic_store(&cleaning, 0);
	for (int i = 0; i < MEMBERS; i++)
		member_pid[i] = -1;
	struct result fl = {0}, fln = {0}, flw = {0}, flwr = {0};
	if (rd.ok && !interrupted) {
		if (run_floor("open", &fl) < 0 || run_floor("noopen", &fln) < 0 ||
		    run_write_floor(0, &flw) < 0 || run_write_floor(1, &flwr) < 0) {
			failed = 1;
			fprintf(stderr, "fs-bench: the FUSE floor FAILED\n");
		}
		resume_workers();
	}
	floor_print("fuse_floor_read", &fl, "fs_read_pct_of_floor", rd.per_s);
	floor_print("fuse_noopen_read", &fln, NULL, 0);
	floor_print("fuse_floor_write", &flw, "fs_write_pct_of_floor", w64.per_s);
	if (flwr.ok) {
		printf("fuse_floor_write_and_replay_per_s_%d: %.0f\n", opt.threads, flwr.per_s);
		if (fs_replayed_per_s > 0)
			printf("fs_write_and_replay_pct_of_floor_%d: %.0f\n", opt.threads,
			       100 * fs_replayed_per_s / flwr.per_s);
	}
	if (etcd_up && !interrupted && (r = etcd_ranges(&p1, &rg)) < 0)
		side_failed(0, r);
	bench_cluster_stop(&etcd_proc);
	char n64[32];
	snprintf(n64, sizeof n64, "%d", opt.threads);
	char name[96];
	if (w1.ok && t1.ok) { /* issue 22's targets: TLS costs little */
		ratio("fs_tls_write_p50_ratio_1", t1.p50, w1.p50);
		printf("fs_target_tls_write_p50_1_met: %d\n", t1.p50 <= 1.1 * w1.p50);
	}
	if (w64.ok && t64.ok) {
		snprintf(name, sizeof name, "fs_tls_write_per_s_ratio_%s", n64);
		ratio(name, t64.per_s, w64.per_s);
		printf("fs_target_tls_write_per_s_%s_met: %d\n", n64, t64.per_s >= 0.9 * w64.per_s);
	}
	if (w1.ok && p1.ok) {
		ratio("fs_write_p50_ratio_1", w1.p50, p1.p50);
		ratio("fs_write_p99_ratio_1", w1.p99, p1.p99);
		ratio("fs_write_per_s_ratio_1", w1.per_s, p1.per_s);
		printf("fs_target_write_p50_1_met: %d\n", w1.p50 <= 0.5 * p1.p50);
	}
	if (w64.ok && p64.ok) {
		snprintf(name, sizeof name, "fs_write_per_s_ratio_%s", n64);
		ratio(name, w64.per_s, p64.per_s);
		snprintf(name, sizeof name, "fs_write_p50_ratio_%s", n64);
		ratio(name, w64.p50, p64.p50);
		printf("fs_target_write_per_s_%s_met: %d\n", n64, w64.per_s >= 2 * p64.per_s);
	}
	if (rd.ok && rg.ok) {
		snprintf(name, sizeof name, "fs_read_ratio_%s", n64);
		ratio(name, rd.per_s, rg.per_s);
		printf("fs_target_read_%s_met: %d\n", n64, rd.per_s >= 20 * rg.per_s);
	}
	floor_ratio("fuse_floor_read_ratio", &fl, &rg);
	floor_ratio("fuse_noopen_read_ratio", &fln, &rg);
	floor_ratio("fuse_floor_write_ratio", &flw, &p64);
	floor_ratio("fuse_floor_write_and_replay_ratio", &flwr, &p64);
	if (prd.ok && rg.ok) {
		snprintf(name, sizeof name, "fs_pread_ratio_%s", n64);
		ratio(name, prd.per_s, rg.per_s);
		printf("fs_target_pread_%s_met: %d\n", n64, prd.per_s >= 20 * rg.per_s);
	}
	cleanup_all();
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	int ok = !interrupted && !failed;
	fprintf(stderr, "# fs-bench %s in %.1f s (the bench itself used %.1f s of CPU)\n",
		ok ? "done" : "FAILED", now_s() - run_started,
		(double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
			(double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	if (interrupted)
		return 130;
	return ok ? 0 : 1;
}
