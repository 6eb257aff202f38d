/*
 * write-path-bench, issue 19's benchmark of the write path's copies: a 3-member raftfs cluster on
 * loopback (release build, default flags) is written through mount n1 by one writer, --files files
 * of --bytes bytes each (distinct content: each begins with its number), create+write+close. What
 * a copy of a file's content costs shows in CPU time, not in latency (an fdatasync on every member
 * dwarfs a memcpy), so besides the writer's latency it reads the three members' CPU time
 * (/proc/PID/stat, every thread) before and after. Prints `name: value` lines:
 *
 *   write_path_bytes, write_path_files   the workload
 *   write_path_p50_us                    one file's create+write+close, median
 *   write_path_mib_per_s                 file content written per second
 *   write_path_cpu_us_per_mib            the three members' CPU time per MiB of content
 *
 * The last file is read back through n2 before the figures count.
 *
 *   write-path-bench [--raftfs PATH] [--bytes N] [--files N] [--dir DIR] [--keep]
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"

#define MEMBERS 3

static struct bench_raftfs cl;
static char (*mnt)[160] = cl.mnt;

/* File k's content: its number, then a byte that differs per file, len bytes in all. */
static void content_of(long k, unsigned char *buf, size_t len)
{
	memset(buf, 'a' + (int)(k % 26), len);
	int n = snprintf((char *)buf, len, "file %ld ", k);
	if (n > 0 && (size_t)n < len)
		buf[n] = ' ';
}

/* Writes file k of len bytes through mount i; 0 or -errno. */
static int write_file(int i, long k, const unsigned char *buf, size_t len)
{
	char path[256];
	snprintf(path, sizeof path, "%s/f%06ld", mnt[i], k);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -errno;
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, buf + off, len - off);
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			close(fd);
			return -e;
		}
		off += (size_t)n;
	}
	return close(fd) == 0 ? 0 : -errno;
}

/* Whether file k reads as want through mount i. */
static int reads_as(int i, long k, const unsigned char *want, size_t len, unsigned char *got)
{
	char path[256];
	snprintf(path, sizeof path, "%s/f%06ld", mnt[i], k);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	size_t off = 0;
	ssize_t n;
	while (off <= len && (n = read(fd, got + off, len + 1 - off)) > 0)
		off += (size_t)n;
	close(fd);
	return off == len && memcmp(got, want, len) == 0;
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
	long files = 100, bytes = 1 << 20;
	int keep = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--raftfs") && i + 1 < argc)
			raftfs = argv[++i];
		else if (!strcmp(argv[i], "--bytes") && i + 1 < argc)
			bytes = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--files") && i + 1 < argc)
			files = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--keep"))
			keep = 1;
		else {
			fprintf(stderr, "usage: write-path-bench [--raftfs PATH] [--bytes N] "
					"[--files N] [--dir DIR] [--keep]\n");
			return 2;
		}
	}
	if (bytes < 16 || bytes > (1 << 20) || files < 1) {
		fprintf(stderr, "write-path-bench: --bytes must be 16..1048576, --files positive\n");
		return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	char max_request[32];
	snprintf(max_request, sizeof max_request, "%ld", bytes + 65536);
	const char *extra[] = {"--max-request-bytes", max_request, NULL};
	int rc = 1;
	unsigned char *buf = malloc((size_t)bytes), *got = malloc((size_t)bytes + 1);
	uint32_t *lat = calloc((size_t)files, sizeof *lat);
	if (!buf || !got || !lat ||
	    bench_raftfs_start(&cl, MEMBERS, raftfs, dir, "write-path-bench", extra, 30) != 0)
		goto out;
	content_of(-1, buf, (size_t)bytes);
	for (long k = 0; k < 5; k++) /* warm up: the handles, the first WAL segment */
		if (write_file(0, 999990 + k, buf, (size_t)bytes) != 0)
			goto out;
	long long cpu0 = 0, cpu1 = 0;
	for (int i = 0; i < MEMBERS; i++)
		cpu0 += bench_cpu_us(cl.pid[i]);
	double t0 = bench_now_s();
	for (long k = 0; k < files; k++) {
		content_of(k, buf, (size_t)bytes);
		uint64_t s = bench_now_us();
		int e = write_file(0, k, buf, (size_t)bytes);
		if (e) {
			fprintf(stderr, "write-path-bench: file %ld: %s\n", k, strerror(-e));
			goto out;
		}
		lat[k] = (uint32_t)(bench_now_us() - s);
	}
	double secs = bench_now_s() - t0;
	for (int i = 0; i < MEMBERS; i++)
		cpu1 += bench_cpu_us(cl.pid[i]);
	/* the last file, as written, on another member */
	double deadline = bench_now_s() + 10;
	while (!reads_as(1, files - 1, buf, (size_t)bytes, got)) {
		if (bench_now_s() > deadline) {
			fprintf(stderr, "write-path-bench: n2 does not read the last file as written\n");
			goto out;
		}
		usleep(20000);
	}
	qsort(lat, (size_t)files, sizeof *lat, bench_cmp_u32);
	double mib = (double)files * (double)bytes / (1024.0 * 1024.0);
	printf("write_path_bytes: %ld\n", bytes);
	printf("write_path_files: %ld\n", files);
	printf("write_path_p50_us: %" PRIu32 "\n", bench_percentile(lat, (size_t)files, 50));
	printf("write_path_mib_per_s: %.1f\n", mib / secs);
	printf("write_path_cpu_us_per_mib: %.0f\n", (double)(cpu1 - cpu0) / mib);
	rc = 0;
out:
	bench_raftfs_stop(&cl, keep || rc != 0);
	free(buf);
	free(got);
	free(lat);
	return rc;
}
