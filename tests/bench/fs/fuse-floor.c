/*
 * fuse-floor.c: the floor under fs-bench's cached reads. A FUSE file system that does nothing
 * but answer: every name in the root and in its subdirectories is a directory, and in those
 * the names f000000..f(N-1) are files of VALUE bytes whose content is slice K of CONTENT_FILE.
 * It is served as raftfs serves its mount (low-level API, one thread, default_permissions,
 * 1 s entry and attribute timeouts), so that fs-bench's open+read+close on it costs what FUSE
 * itself costs, with nothing of raftfs's own work:
 *
 *   fuse-floor open CONTENT_FILE N MOUNTPOINT     OPEN answered with direct_io and noflush,
 *                                                 as raftfs answers a read-only open: every
 *                                                 read() is a READ request
 *   fuse-floor noopen CONTENT_FILE N MOUNTPOINT   OPEN answered ENOSYS (FUSE's no-open mode):
 *                                                 the kernel then sends no OPEN, FLUSH or
 *                                                 RELEASE at all, for any file
 *   fuse-floor write MOUNTPOINT                   the floor under fs-bench's writers: in the
 *                                                 directories, a name is absent (LOOKUP
 *                                                 ENOENT) until CREATE makes it, answered as
 *                                                 raftfs answers a create (no entry cached,
 *                                                 direct_io, FLUSH at close);
 *                                                 WRITE, FLUSH and RELEASE only answer
 *   fuse-floor replay MOUNTPOINT                  the same, creates answered as raftfs answers
 *                                                 those of its inotify replay (no FLUSH)
 *
 * No-open is what a read with no request at all would need, and what raftfs cannot use: with
 * it, close() no longer reaches the file system, so nothing could commit a write at close.
 * Runs in the foreground until unmounted (fusermount3 -u) or signalled. Exit 0, 1 on failure,
 * 2 usage.
 */
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define VALUE 256
#define TIMEOUT 1.0
#define DIR_INO_MAX 3 /* 1: the root, 2: a directory in it, 3: one in that */
#define FILE_INO0 16
/* write and replay modes: in the root's directories, "tK" is directory TDIR_INO0 + K (fs-bench's
   writers each write in one of their own, as on raftfs: creates in one directory serialize on
   its lock in the kernel); files CREATE makes are WFILE_INO0 and on */
#define TDIR_INO0 ((fuse_ino_t)1 << 20)
#define WFILE_INO0 ((fuse_ino_t)1 << 30)

static int no_open;
static int writes;       /* write or replay mode */
static int replay;       /* replay mode */
static fuse_ino_t next_ino; /* write and replay modes: the next file CREATE makes */
static long n_files;
static unsigned char *content; /* n_files * VALUE bytes */

static void stat_of(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_ino = ino;
	if (ino <= DIR_INO_MAX || (ino >= TDIR_INO0 && ino < WFILE_INO0)) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0644;
		st->st_nlink = 1;
		st->st_size = VALUE;
	}
}

static void fl_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e = {.attr_timeout = TIMEOUT, .entry_timeout = TIMEOUT};
	char *end;
	if (writes && parent == 2 /* a directory of the root */ && name[0] == 't') {
		long k = strtol(name + 1, &end, 10);
		if (*end || k < 0 || k >= 65536) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		e.ino = TDIR_INO0 + (fuse_ino_t)k;
	} else if (parent < DIR_INO_MAX) {
		e.ino = parent + 1;
	} else if (writes) {
		fuse_reply_err(req, ENOENT); /* as raftfs: no timeout, no negative entry */
		return;
	} else if (parent == DIR_INO_MAX && name[0] == 'f') {
		long k = strtol(name + 1, &end, 10);
		if (*end || k < 0 || k >= n_files) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		e.ino = FILE_INO0 + (fuse_ino_t)k;
	} else {
		fuse_reply_err(req, ENOENT);
		return;
	}
	stat_of(e.ino, &e.attr);
	fuse_reply_entry(req, &e);
}

static void fl_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	struct stat st;
	stat_of(ino, &st);
	fuse_reply_attr(req, &st, TIMEOUT);
}

static void fl_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	if (no_open) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EROFS);
		return;
	}
	fi->direct_io = 1;
	fi->noflush = 1;
	fuse_reply_open(req, fi);
}

static void fl_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	(void)fi;
	if (ino < FILE_INO0 || off >= VALUE) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	size_t left = VALUE - (size_t)off;
	fuse_reply_buf(req, (const char *)content + (ino - FILE_INO0) * VALUE + off,
		       size < left ? size : left);
}

static void fl_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	(void)name;
	if (!writes || parent < TDIR_INO0 || parent >= WFILE_INO0) {
		fuse_reply_err(req, EROFS);
		return;
	}
	struct fuse_entry_param e = {.ino = next_ino++, .attr_timeout = TIMEOUT};
	stat_of(e.ino, &e.attr);
	e.attr.st_mode = S_IFREG | (mode & 07777);
	e.attr.st_size = 0;
	fi->keep_cache = 0;
	fi->noflush = replay;
	fi->direct_io = 1;
	fuse_reply_create(req, &e, fi);
}

static void fl_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	(void)ino, (void)buf, (void)off, (void)fi;
	fuse_reply_write(req, size);
}

/* The read modes answer FLUSH and RELEASE ENOSYS, as a file system without them: no-open's
   kernel then sends no FLUSH at close either */
static void fl_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino, (void)fi;
	fuse_reply_err(req, writes ? 0 : ENOSYS);
}

static void fl_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino, (void)fi;
	fuse_reply_err(req, writes ? 0 : ENOSYS);
}

static void fl_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->want &= ~FUSE_CAP_SPLICE_READ;
	conn->max_background = 1024; /* as raftfs */
	conn->congestion_threshold = 768;
	if (no_open)
		conn->want |= FUSE_CAP_NO_OPEN_SUPPORT;
}

static const struct fuse_lowlevel_ops ops = {
	.init = fl_init,
	.lookup = fl_lookup,
	.getattr = fl_getattr,
	.open = fl_open,
	.read = fl_read,
	.create = fl_create,
	.write = fl_write,
	.flush = fl_flush,
	.release = fl_release,
};

/* Mounts mountpoint and serves it until unmounted or signalled: 0, or 1 on failure. */
static int serve(const char *mountpoint)
{
	char *fargv[] = {"fuse-floor", "-o", "fsname=fuse-floor,default_permissions", NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
	struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, NULL);
	if (!se || fuse_session_mount(se, mountpoint) != 0) {
		fprintf(stderr, "fuse-floor: cannot mount %s\n", mountpoint);
		return 1;
	}
	fuse_set_signal_handlers(se);
	int rc = fuse_session_loop(se);
	fuse_remove_signal_handlers(se);
	fuse_session_unmount(se);
	fuse_session_destroy(se);
	return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	writes = argc == 3 && (!strcmp(argv[1], "write") || !strcmp(argv[1], "replay"));
	if (!writes && (argc != 5 || (strcmp(argv[1], "open") && strcmp(argv[1], "noopen")))) {
		fprintf(stderr, "usage: fuse-floor open|noopen CONTENT_FILE N MOUNTPOINT\n"
				"       fuse-floor write|replay MOUNTPOINT\n");
		return 2;
	}
	if (writes) {
		replay = !strcmp(argv[1], "replay");
		next_ino = WFILE_INO0;
		return serve(argv[2]);
	}
	no_open = !strcmp(argv[1], "noopen");
	n_files = strtol(argv[3], NULL, 10);
	if (n_files <= 0 || n_files > 10000000) {
		fprintf(stderr, "fuse-floor: N must be 1..10000000\n");
		return 2;
	}
	content = malloc((size_t)n_files * VALUE);
	FILE *f = fopen(argv[2], "rb");
	if (!content || !f || fread(content, VALUE, (size_t)n_files, f) != (size_t)n_files) {
		fprintf(stderr, "fuse-floor: %s: cannot read %ld x %d bytes\n", argv[2], n_files,
			VALUE);
		return 1;
	}
	fclose(f);
	int rc = serve(argv[4]);
	free(content);
	return rc;
}
