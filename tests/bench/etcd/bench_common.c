/*
 * bench_common.c: the throw-away etcd cluster of the benchmarks, their scratch-dir cleanup and free
 * loopback ports (see bench_common.h).
 */
#include "bench_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int bench_free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int port = -1;
	if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(s, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (s >= 0)
		close(s);
	return port;
}

int bench_cluster_start(struct bench_cluster *c, const char *script, double timeout_s,
			const volatile sig_atomic_t *interrupted)
{
	int in[2], out[2];
	c->pid = -1;
	c->in = c->out = -1;
	c->endpoints[0] = '\0';
	if (pipe2(in, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(out, O_CLOEXEC) < 0) {
		int err = errno;
		close(in[0]);
		close(in[1]);
		return -err;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		setpgid(0, 0);
		sigset_t none;
		sigemptyset(&none);
		pthread_sigmask(SIG_SETMASK, &none, NULL);
		execl("/bin/bash", "bash", script, "serve", (char *)NULL);
		fprintf(stderr, "bench: cannot run %s: %s\n", script, strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	c->pid = pid;
	c->in = in[1];
	c->out = out[0];
	char buf[2048];
	size_t len = 0;
	double deadline = bench_now_s() + timeout_s;
	for (;;) {
		char *line = memmem(buf, len, "ETCD_ENDPOINTS=", 15);
		char *nl = line ? memchr(line, '\n', len - (size_t)(line - buf)) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - line - 15);
			if (n >= sizeof c->endpoints)
				return -ENAMETOOLONG;
			memcpy(c->endpoints, line + 15, n);
			c->endpoints[n] = '\0';
			return 0;
		}
		if (bench_now_s() >= deadline || len == sizeof buf || (interrupted && *interrupted))
			return -ETIMEDOUT;
		struct pollfd pfd = {.fd = c->out, .events = POLLIN};
		int pr = poll(&pfd, 1, 200);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return -errno;
		if (pr == 0)
			continue;
		ssize_t n = read(c->out, buf + len, sizeof buf - len);
		if (n <= 0)
			return -EPIPE; /* the script ended without a cluster: it said why */
		len += (size_t)n;
	}
}

void bench_cluster_stop(struct bench_cluster *c)
{
	if (c->pid < 0)
		return;
	close(c->in);
	c->in = -1;
	close(c->out);
	c->out = -1;
	double deadline = bench_now_s() + 15;
	int status;
	for (;;) {
		pid_t w = waitpid(c->pid, &status, WNOHANG);
		if (w == c->pid || (w < 0 && errno != EINTR))
			break;
		if (bench_now_s() > deadline) {
			kill(c->pid, SIGTERM);
			waitpid(c->pid, &status, 0);
			break;
		}
		usleep(20000);
	}
	c->pid = -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void bench_remove_tree(const char *dir)
{
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

pid_t bench_spawn(char *const argv[], const char *log, int out_fd)
{
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(1);
	setpgid(0, 0);
	int fd = open("/dev/null", O_RDONLY);
	if (fd >= 0)
		dup2(fd, 0);
	fd = log ? open(log, O_WRONLY | O_CREAT | O_APPEND, 0600) : out_fd;
	if (fd >= 0)
		dup2(fd, 1);
	if (log && fd >= 0)
		dup2(fd, 2);
	sigset_t none;
	sigemptyset(&none);
	pthread_sigmask(SIG_SETMASK, &none, NULL);
	execvp(argv[0], argv);
	fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

long bench_read_small_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	long got = 0;
	ssize_t r;
	while ((size_t)got < cap - 1 && (r = read(fd, buf + got, cap - 1 - (size_t)got)) > 0)
		got += r;
	close(fd);
	buf[got] = '\0';
	return got;
}

long long bench_raftfs_status(const char *mountpoint, const char *field)
{
	char path[4200], buf[8192], key[64];
	snprintf(path, sizeof path, "%s/.raftfs/status", mountpoint);
	snprintf(key, sizeof key, "\"%s\":", field);
	if (bench_read_small_file(path, buf, sizeof buf) < 0)
		return -1;
	const char *p = strstr(buf, key);
	return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

long long bench_cpu_us(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (bench_read_small_file(path, buf, sizeof buf) < 0)
		return -1;
	const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
	unsigned long long ut, st;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
			 &st) != 2)
		return -1;
	return (long long)((ut + st) * 1000000ull / (unsigned long long)sysconf(_SC_CLK_TCK));
}

static void bench_sleep_ms(int ms)
{
	nanosleep(&(struct timespec){ms / 1000, (long)(ms % 1000) * 1000000}, NULL);
}

int bench_raftfs_start(struct bench_raftfs *c, int n, const char *raftfs, const char *dir,
		       const char *token, const char *const *extra, double timeout_s)
{
	memset(c, 0, sizeof *c);
	for (int i = 0; i < BENCH_RAFTFS_MAX; i++)
		c->pid[i] = -1;
	if (n < 1 || n > BENCH_RAFTFS_MAX)
		return -1;
	c->n = n;
	snprintf(c->base, sizeof c->base, "%.64s/raftfs-bench.XXXXXX", dir);
	if (!mkdtemp(c->base)) {
		perror("bench: mkdtemp");
		return -1;
	}
	char cluster[BENCH_RAFTFS_MAX * 32] = "";
	int port[BENCH_RAFTFS_MAX];
	for (int i = 0; i < n; i++) {
		port[i] = bench_free_port();
		snprintf(c->data_dir[i], sizeof c->data_dir[i], "%s/n%d.data", c->base, i + 1);
		snprintf(c->mnt[i], sizeof c->mnt[i], "%s/n%d", c->base, i + 1);
		snprintf(c->log[i], sizeof c->log[i], "%s/n%d.log", c->base, i + 1);
		size_t l = strlen(cluster);
		snprintf(cluster + l, sizeof cluster - l, "%sn%d=127.0.0.1:%d", i ? "," : "", i + 1,
			 port[i]);
	}
	for (int i = 0; i < n; i++) {
		char name[8], listen[32];
		snprintf(name, sizeof name, "n%d", i + 1);
		snprintf(listen, sizeof listen, "127.0.0.1:%d", port[i]);
		if (mkdir(c->mnt[i], 0755) != 0)
			return -1;
		const char *args[48] = {raftfs, "mount", "-f", "--name", name, "--data-dir",
					c->data_dir[i], "--listen-peer", listen, "--initial-cluster",
					cluster, "--initial-cluster-token", token};
		int k = 13;
		for (int x = 0; extra && extra[x] && k < 46; x++)
			args[k++] = extra[x];
		args[k++] = c->mnt[i];
		args[k] = NULL;
		c->pid[i] = bench_spawn((char *const *)args, c->log[i], -1);
		if (c->pid[i] < 0) {
			fprintf(stderr, "bench: cannot start %s\n", raftfs);
			return -1;
		}
	}
	char probe[256];
	snprintf(probe, sizeof probe, "%s/.bench-probe", c->mnt[0]);
	double deadline = bench_now_s() + timeout_s;
	for (;;) {
		/* every mount live first (its .raftfs/status answers): a write before would land in
		   the directory underneath */
		int live = 0;
		for (int i = 0; i < n; i++)
			live += bench_raftfs_status(c->mnt[i], "applied_index") >= 0;
		int fd = live == n ? open(probe, O_WRONLY | O_CREAT | O_TRUNC, 0644) : -1;
		if (fd >= 0 && write(fd, "p", 1) == 1 && close(fd) == 0) {
			unlink(probe);
			return 0;
		}
		if (fd >= 0)
			close(fd);
		if (bench_now_s() > deadline) {
			fprintf(stderr, "bench: the cluster takes no writes (logs in %s)\n", c->base);
			return -1;
		}
		bench_sleep_ms(50);
	}
}

void bench_raftfs_stop(struct bench_raftfs *c, int keep)
{
	for (int i = 0; i < c->n; i++)
		if (c->pid[i] > 0)
			kill(c->pid[i], SIGTERM);
	for (int i = 0; i < c->n; i++) {
		if (c->pid[i] <= 0)
			continue;
		for (int t = 0; t < 200 && waitpid(c->pid[i], NULL, WNOHANG) == 0; t++)
			bench_sleep_ms(50);
		if (waitpid(c->pid[i], NULL, WNOHANG) == 0) {
			kill(c->pid[i], SIGKILL);
			waitpid(c->pid[i], NULL, 0);
		}
		c->pid[i] = -1;
	}
	for (int i = 0; i < c->n; i++) {
		char cmd[512];
		snprintf(cmd, sizeof cmd, "fusermount3 -u -z %.400s 2>/dev/null", c->mnt[i]);
		if (system(cmd) != 0) {
			/* not mounted any more */
		}
	}
	if (!c->base[0])
		return;
	if (keep)
		fprintf(stderr, "bench: kept %s\n", c->base);
	else
		bench_remove_tree(c->base);
	c->base[0] = '\0';
}
