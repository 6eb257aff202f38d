/*
 * wal_test_util.h: helpers the wal tests share: temp dirs (removed afterwards), whole-file reads
 * and writes, a captured log, and a deterministic random source.
 */
#ifndef RAFTFS_WAL_TEST_UTIL_H
#define RAFTFS_WAL_TEST_UTIL_H

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "wal.h"

/* A fresh directory under /tmp (mkdtemp); free with tu_rmdir. */
static inline char *tu_tmpdir(void)
{
	char *t = strdup("/tmp/raftfs-wal-test-XXXXXX");
	if (!t || !mkdtemp(t))
		CHECK_FAIL("mkdtemp failed");
	return t;
}

static inline int tu_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(p);
}

/* Removes dir and everything in it, and frees the string. */
static inline void tu_rmdir(char *dir)
{
	if (dir)
		nftw(dir, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

/* dir/name in a static buffer (one at a time). */
static inline const char *tu_path(const char *dir, const char *name)
{
	static char buf[2][1100];
	static int k;
	k ^= 1;
	snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
	return buf[k];
}

/* Reads a whole file (malloc'd). */
static inline uint8_t *tu_read(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		CHECK_FAIL("open %s: %s", path, strerror(errno));
	struct stat st;
	fstat(fd, &st);
	uint8_t *b = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t k = pread(fd, b + got, (size_t)st.st_size - got, (off_t)got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	close(fd);
	*len = got;
	return b;
}

/* Replaces a file's content. */
static inline void tu_write(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		CHECK_FAIL("open %s: %s", path, strerror(errno));
	if (write(fd, buf, len) != (ssize_t)len)
		CHECK_FAIL("write %s", path);
	close(fd);
}

/* The captured log: the lines wal logged since tu_log_reset. */
static char tu_log_buf[8192];
static int tu_log_lines;

static inline void tu_log_hook(void *arg, const char *line)
{
	(void)arg;
	size_t n = strlen(tu_log_buf);
	snprintf(tu_log_buf + n, sizeof tu_log_buf - n, "%s\n", line);
	tu_log_lines++;
}

static inline void tu_log_reset(void)
{
	tu_log_buf[0] = 0;
	tu_log_lines = 0;
	wal_set_log(tu_log_hook, NULL);
}

/* xorshift64 */
static inline uint64_t tu_rand(uint64_t *s)
{
	*s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
	return *s;
}

#endif
