/*
 * sys.c: the durability syscalls of wal/ behind a fault-injection table (SQLite style: a test makes
 * the nth call of one of them fail, once or from then on), plus the module's log hook, fatal hook
 * and thread-local error message.
 */
#include "wal_internal.h"

#include <fcntl.h>
#include <string.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* ======================================== faults ================================================ */

/* One syscall's fault state; all fields guarded by fault_mu. */
struct fault {
	unsigned long calls; /* calls made so far */
	unsigned long fail_at; /* the call number that fails, 0 for none */
	int err;             /* errno it fails with */
	int persistent;      /* keep failing after fail_at */
};

static struct fault faults[WAL_SYS_COUNT_];
static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;

void wal_fault_set(enum wal_sys sys, unsigned nth, int err, int persistent)
{
	pthread_mutex_lock(&fault_mu);
	faults[sys].fail_at = faults[sys].calls + (nth ? nth : 1);
	faults[sys].err = err;
	faults[sys].persistent = persistent;
	pthread_mutex_unlock(&fault_mu);
}

void wal_fault_clear(void)
{
	pthread_mutex_lock(&fault_mu);
	memset(faults, 0, sizeof faults);
	pthread_mutex_unlock(&fault_mu);
}

unsigned long wal_fault_calls(enum wal_sys sys)
{
	pthread_mutex_lock(&fault_mu);
	unsigned long n = faults[sys].calls;
	pthread_mutex_unlock(&fault_mu);
	return n;
}

/* Counts a call; returns the errno it must fail with, or 0. */
static int fault_hit(enum wal_sys sys)
{
	int err = 0;
	pthread_mutex_lock(&fault_mu);
	struct fault *f = &faults[sys];
	f->calls++;
	if (f->fail_at && (f->calls == f->fail_at || (f->persistent && f->calls > f->fail_at)))
		err = f->err;
	pthread_mutex_unlock(&fault_mu);
	return err;
}

int wal__open(const char *path, int flags, mode_t mode)
{
	int err = fault_hit(WAL_SYS_OPEN);
	if (err) {
		errno = err;
		return -1;
	}
	return open(path, flags | O_CLOEXEC, mode);
}

ssize_t wal__pwrite(int fd, const void *buf, size_t len, off_t off)
{
	int err = fault_hit(WAL_SYS_WRITE);
	if (err) {
		errno = err;
		return -1;
	}
	return pwrite(fd, buf, len, off);
}

int wal__fdatasync(int fd)
{
	int err = fault_hit(WAL_SYS_FDATASYNC);
	if (err) {
		errno = err;
		return -1;
	}
	return fdatasync(fd);
}

int wal__fsync(int fd)
{
	int err = fault_hit(WAL_SYS_FSYNC);
	if (err) {
		errno = err;
		return -1;
	}
	return fsync(fd);
}

int wal__rename(const char *from, const char *to)
{
	int err = fault_hit(WAL_SYS_RENAME);
	if (err) {
		errno = err;
		return -1;
	}
	return rename(from, to);
}

int wal__fallocate(int fd, off_t len)
{
	int err = fault_hit(WAL_SYS_FALLOCATE);
	if (err)
		return err;
	err = fallocate(fd, 0, 0, len);
	if (err == 0)
		return 0;
	if (errno == EOPNOTSUPP || errno == ENOSYS) /* tmpfs of old kernels and the like */
		return posix_fallocate(fd, 0, len);
	return errno;
}

int wal__pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = wal__pwrite(fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int wal__fsync_dir(const char *dir)
{
	int fd = wal__open(dir, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return -errno;
	int r = wal__fsync(fd) == 0 ? 0 : -errno;
	close(fd);
	return r;
}

/* ===================================== log, errors, fatal ======================================= */

static void (*log_fn)(void *arg, const char *line); /* NULL: stderr */
static void *log_arg;
static void (*fatal_fn)(const char *msg); /* NULL: log and exit(1) */
static _Thread_local char errbuf[1024];

void wal_set_log(void (*fn)(void *arg, const char *line), void *arg)
{
	log_fn = fn;
	log_arg = arg;
}

void wal_set_fatal(void (*fn)(const char *msg))
{
	fatal_fn = fn;
}

const char *wal_errmsg(void)
{
	return errbuf;
}

static void log_line(const char *line)
{
	if (log_fn)
		log_fn(log_arg, line);
	else
		fprintf(stderr, "%s\n", line);
}

void wal__log(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	log_line(line);
}

int wal__err(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof errbuf, fmt, ap);
	va_end(ap);
	return err;
}

void wal__fatal(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(errbuf, sizeof errbuf, "%s", msg);
	if (fatal_fn) {
		fatal_fn(msg);
		return;
	}
	log_line(msg);
	exit(1);
}
