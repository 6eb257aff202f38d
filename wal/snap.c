/*
 * snap.c: snapshot files. Each is `%016x-%016x.snap` (term, index) holding the protobuf
 * snappb.Snapshot {uint32 crc = 1; bytes data = 2}, crc the CRC-32C of data, data the raft
 * snapshot bytes the caller gives (its store image already zstd-compressed by the store). Written to
 * a temp file, fsynced, renamed and the directory fsynced, so a file with the final name is whole;
 * a file failing its crc anyway (bit rot) is renamed *.broken and the next newest is used.
 */
#include "wal_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int snap_cmp(const void *a, const void *b)
{
	const struct wal_snap_info *x = a, *y = b;
	if (x->index != y->index)
		return x->index > y->index ? -1 : 1;
	return x->term > y->term ? -1 : x->term < y->term;
}

int wal_snap_list(const char *dir, struct wal_snap_info **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	DIR *d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return wal__err(-errno, "wal: cannot open snapshot dir %s: %s", dir, strerror(errno));
	}
	struct wal_snap_info *v = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		struct wal_snap_info s;
		char tail[8];
		if (strlen(de->d_name) != 38 ||
		    sscanf(de->d_name, "%16" SCNx64 "-%16" SCNx64 "%6s", &s.term, &s.index, tail) != 3 ||
		    strcmp(tail, ".snap") != 0)
			continue;
		struct stat st;
		s.bytes = fstatat(dirfd(d), de->d_name, &st, 0) == 0 ? (uint64_t)st.st_size : 0;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			struct wal_snap_info *nv = realloc(v, cap * sizeof *v);
			if (!nv) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = nv;
		}
		v[cnt++] = s;
	}
	closedir(d);
	if (cnt)
		qsort(v, cnt, sizeof *v, snap_cmp);
	else {
		free(v);
		v = NULL;
	}
	*out = v;
	*n = cnt;
	return 0;
}

static void snap_name(char *buf, size_t len, const char *dir, uint64_t term, uint64_t index,
		      const char *suffix)
{
	snprintf(buf, len, "%s/%016" PRIx64 "-%016" PRIx64 ".snap%s", dir, term, index, suffix);
}

int wal_snap_save(const char *dir, uint64_t term, uint64_t index, const void *data, size_t len)
{
	return wal_snap_savev(dir, term, index, &(struct iovec){(void *)data, len}, 1);
}

int wal_snap_savev(const char *dir, uint64_t term, uint64_t index, const struct iovec *iov,
		   int n)
{
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return wal__err(-errno, "wal: cannot create snapshot dir %s: %s", dir, strerror(errno));
	size_t plen = strlen(dir) + 64;
	char *path = malloc(plen), *tmp = malloc(plen);
	int r, fd = -1;
	if (!path || !tmp) {
		r = -ENOMEM;
		goto out;
	}
	snap_name(path, plen, dir, term, index, "");
	snap_name(tmp, plen, dir, term, index, ".tmp");
	/* the header (crc and length of all the pieces), then the pieces where they lie */
	uint32_t crc = 0;
	size_t len = 0;
	for (int i = 0; i < n; i++) {
		crc = wal_crc32c(crc, iov[i].iov_base, iov[i].iov_len);
		len += iov[i].iov_len;
	}
	uint8_t hdr[WAL__SNAPFILE_HEADER_MAX];
	size_t off = wal__snapfile_header(hdr, crc, len);
	fd = wal__open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) {
		r = wal__err(-errno, "wal: cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	r = wal__pwrite_all(fd, hdr, off, 0);
	for (int i = 0; i < n && r >= 0; i++) {
		r = wal__pwrite_all(fd, iov[i].iov_base, iov[i].iov_len, (off_t)off);
		off += iov[i].iov_len;
	}
	if (r < 0) {
		r = wal__err(r, "wal: cannot write %s: %s", tmp, strerror(-r));
		goto fail;
	}
	if (wal__fsync(fd) != 0) {
		wal__fatal("wal: FATAL: fsync of %s failed: %s", tmp, strerror(errno));
		r = -EIO;
		goto fail;
	}
	if (wal__rename(tmp, path) != 0) {
		r = wal__err(-errno, "wal: cannot rename %s to %s: %s", tmp, path, strerror(errno));
		goto fail;
	}
	if (wal__fsync_dir(dir) != 0) {
		wal__fatal("wal: FATAL: fsync of %s failed: %s", dir, strerror(errno));
		r = -EIO;
		goto out;
	}
	r = 0;
	goto out;
fail:
	unlink(tmp);
out:
	if (fd >= 0)
		close(fd);
	free(path);
	free(tmp);
	return r;
}

/* Reads a whole file into a malloc'd buffer. */
static int read_file(const char *path, uint8_t **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	size_t size = (size_t)st.st_size, got = 0;
	uint8_t *b = malloc(size ? size : 1);
	if (!b) {
		close(fd);
		return -ENOMEM;
	}
	while (got < size) {
		ssize_t k = pread(fd, b + got, size - got, (off_t)got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			int e = k < 0 ? errno : EIO;
			free(b);
			close(fd);
			return -e;
		}
		got += (size_t)k;
	}
	close(fd);
	*out = b;
	*len = size;
	return 0;
}

int wal_snap_load(const char *dir, void **data, size_t *len, uint64_t *term, uint64_t *index)
{
	struct wal_snap_info *v;
	size_t n;
	int r = wal_snap_list(dir, &v, &n);
	if (r < 0)
		return r;
	size_t plen = strlen(dir) + 64;
	char *path = malloc(plen), *broken = malloc(plen);
	if (!path || !broken) {
		r = -ENOMEM;
		goto out;
	}
	r = wal__err(-ENOENT, "wal: no valid snapshot in %s", dir);
	for (size_t i = 0; i < n; i++) {
		snap_name(path, plen, dir, v[i].term, v[i].index, "");
		uint8_t *buf = NULL;
		size_t blen = 0;
		int e = read_file(path, &buf, &blen);
		if (e < 0) {
			r = wal__err(e, "wal: cannot read %s: %s", path, strerror(-e));
			break;
		}
		uint32_t crc;
		const uint8_t *d;
		size_t dlen;
		const char *why = NULL;
		if (wal__snapfile_decode(buf, blen, &crc, &d, &dlen) != 0)
			why = "does not decode";
		else if (wal_crc32c(0, d, dlen) != crc)
			why = "crc mismatch";
		if (!why) {
			/* the data moves to the front of the buffer it was read into: no new memory,
			   which a big snapshot would fault in page by page */
			memmove(buf, d, dlen);
			*data = buf;
			*len = dlen;
			*term = v[i].term;
			*index = v[i].index;
			r = 0;
			break;
		}
		free(buf);
		snap_name(broken, plen, dir, v[i].term, v[i].index, ".broken");
		wal__log("wal: snapshot %s is broken (%s): renamed to %s, trying the next newest", path,
			 why, broken);
		if (rename(path, broken) != 0) {
			r = wal__err(-errno, "wal: cannot rename broken snapshot %s: %s", path,
				     strerror(errno));
			break;
		}
	}
out:
	free(path);
	free(broken);
	free(v);
	return r;
}

int wal_snap_purge(const char *dir, unsigned keep, unsigned *removed)
{
	struct wal_snap_info *v;
	size_t n;
	unsigned gone = 0;
	int r = wal_snap_list(dir, &v, &n);
	if (r < 0)
		return r;
	if (!keep)
		keep = WAL_KEEP_DEFAULT;
	size_t plen = strlen(dir) + 64;
	char *path = malloc(plen);
	if (!path) {
		free(v);
		return -ENOMEM;
	}
	for (size_t i = keep; i < n; i++) {
		snap_name(path, plen, dir, v[i].term, v[i].index, "");
		if (unlink(path) != 0) {
			r = wal__err(-errno, "wal: cannot remove %s: %s", path, strerror(errno));
			break;
		}
		gone++;
	}
	free(path);
	free(v);
	if (removed)
		*removed = gone;
	return r;
}
