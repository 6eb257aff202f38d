/*
 * bench_common.h: what etcd-bench and fs-bench share so that their figures are computed the same
 * way: clocks, nearest-rank percentiles of latencies, the 256-byte value generator, free loopback
 * ports, and the throw-away etcd cluster run by etcd_cluster.sh (bench_cluster_start/stop,
 * bench_common.c). catchup-bench and watch-bench use them too.
 */
#ifndef RAFTFS_BENCH_COMMON_H
#define RAFTFS_BENCH_COMMON_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define BENCH_VALUE_SIZE 256

static inline double bench_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline uint64_t bench_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* qsort comparator for latencies in µs. */
static inline int bench_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* The nearest-rank percentile P of the N sorted latencies V. */
static inline uint32_t bench_percentile(const uint32_t *v, size_t n, int p)
{
	if (n == 0)
		return 0;
	size_t rank = (n * (size_t)p + 99) / 100;
	return v[rank ? rank - 1 : 0];
}

/* A BENCH_VALUE_SIZE-byte value that differs per seed (both benches write the same bytes). */
static inline void bench_make_value(unsigned char *v, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15u | 1;
	for (int i = 0; i < BENCH_VALUE_SIZE; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		v[i] = (unsigned char)x;
	}
}

/* A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it), or -1. */
int bench_free_port(void);

/* A 3-member etcd started by `bash etcd_cluster.sh serve`; it lives while `in` stays open. */
struct bench_cluster {
	pid_t pid;            /* the script, -1 when none */
	int in;               /* its stdin: closing it stops the cluster */
	int out;              /* its stdout, kept open so that it never writes to a closed pipe */
	char endpoints[512];  /* comma-separated client URLs, once started */
};

/*
 * Starts the script (in a process group of its own, signals unblocked) and waits up to timeout_s
 * for its ETCD_ENDPOINTS line, giving up early when *interrupted (may be NULL) is set. 0, or a
 * negative errno (-EPIPE: the script ended first and said why on stderr); c must be stopped either
 * way.
 */
int bench_cluster_start(struct bench_cluster *c, const char *script, double timeout_s,
			const volatile sig_atomic_t *interrupted);

/* Stops it: EOF on its stdin, SIGTERM after 15 s; reaps the script. Safe to call twice. */
void bench_cluster_stop(struct bench_cluster *c);

/*
 * Starts argv (argv[0] a path or a name in PATH) as a child in its own process group (a ^C reaches
 * the bench, which stops its children in order), signals unblocked, stdin from /dev/null, killed
 * (SIGTERM) should the bench die. Its stdout and stderr are appended to log; with log NULL, its
 * stdout goes to out_fd (-1: the bench's stdout) and its stderr is the bench's. Returns its pid or
 * -errno.
 */
pid_t bench_spawn(char *const argv[], const char *log, int out_fd);

/* Removes dir and everything under it, as far as it can (a benchmark's scratch data). */
void bench_remove_tree(const char *dir);

/* The whole of a small file into buf (NUL-ended, at most cap - 1 bytes); its length, or -1. */
long bench_read_small_file(const char *path, char *buf, size_t cap);

/* A number field of a raftfs mount's .raftfs/status (JSON), or -1 when it cannot be read. */
long long bench_raftfs_status(const char *mountpoint, const char *field);

/* CPU time (user + system) process pid has used so far, in µs (/proc/PID/stat); -1 if gone. */
long long bench_cpu_us(pid_t pid);

/* A raftfs cluster of n members on loopback, each `raftfs mount -f` in a scratch dir of its own. */
#define BENCH_RAFTFS_MAX 8
struct bench_raftfs {
	int n;
	char base[96];                           /* the scratch dir */
	char data_dir[BENCH_RAFTFS_MAX][160], mnt[BENCH_RAFTFS_MAX][160];
	char log[BENCH_RAFTFS_MAX][224];         /* each member's stderr */
	pid_t pid[BENCH_RAFTFS_MAX];             /* -1 when not running */
};

/*
 * Makes a scratch dir under dir and starts n members of one cluster (named n1.., token token) with
 * raftfs, each with the NULL-ended extra flags (may be NULL), and waits up to timeout_s until
 * member 1's mount takes a write (a leader is elected). 0, or -1 with a line on stderr; stop c
 * either way.
 */
int bench_raftfs_start(struct bench_raftfs *c, int n, const char *raftfs, const char *dir,
		       const char *token, const char *const *extra, double timeout_s);

/* Stops every member (SIGTERM, then SIGKILL after 10 s), unmounts what stayed mounted and, unless
   keep, removes the scratch dir (else says where it is). Safe to call twice. */
void bench_raftfs_stop(struct bench_raftfs *c, int keep);

#endif
