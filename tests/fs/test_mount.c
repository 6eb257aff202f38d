/*
 * test_mount.c: a FUSE session served from a libuv loop (fs/fuse/mount.c) on a real mount: requests are
 * answered on the loop's thread, answers may come later from a timer (as commits do), and an
 * unmount from outside is noticed. Needs /dev/fuse and root; skipped where either is missing.
 */
#include "check.h"
#include "common/common.h"
#include "fuse/face.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_INO 2

struct world {
	uv_loop_t loop;
	struct fs_mount mount;
	uv_timer_t later;      /* answers a deferred read */
	fuse_req_t deferred;   /* a read waiting for the timer */
	pthread_t loop_thread; /* runs the loop */
	pthread_t served_by;   /* the thread that ran the last handler */
	int gone;              /* on_gone ran */
	int closed;            /* the close callback ran */
	char dir[64];
};

static void fill(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_ino = ino;
	st->st_mode = ino == 1 ? S_IFDIR | 0755 : S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = ino == 1 ? 0 : 5;
}

static void t_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct world *w = fuse_req_userdata(req);
	w->served_by = pthread_self();
	if (strcmp(name, "f") != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct fuse_entry_param e = {.ino = FILE_INO};
	fill(FILE_INO, &e.attr);
	fuse_reply_entry(req, &e);
}

static void t_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	fill(ino, &st);
	fuse_reply_attr(req, &st, 0);
}

static void on_later(uv_timer_t *t)
{
	struct world *w = t->data;
	fuse_reply_buf(w->deferred, "later", 5);
	w->deferred = NULL;
}

static void t_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	struct world *w = fuse_req_userdata(req);
	if (off > 0) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	/* Answer from a timer, as a write is answered once its entry is applied. */
	w->deferred = req;
	uv_timer_start(&w->later, on_later, 20, 0);
}

static const struct fuse_lowlevel_ops ops = {
	.lookup = t_lookup, .getattr = t_getattr, .read = t_read};

static void on_gone(struct fs_mount *m, void *arg)
{
	((struct world *)arg)->gone = 1;
	uv_stop(m->poll.loop);
}

static void *run_loop(void *arg)
{
	struct world *w = arg;
	uv_run(&w->loop, UV_RUN_DEFAULT);
	return NULL;
}

static void on_closed(void *arg)
{
	((struct world *)arg)->closed = 1;
}

CHECK_TEST(serves_on_the_loop_and_notices_unmount)
{
	CHECK_SKIP_IF(access("/dev/fuse", R_OK | W_OK) != 0 || geteuid() != 0,
		      "needs /dev/fuse and root");
	static struct world w;
	memset(&w, 0, sizeof w);
	strcpy(w.dir, "/tmp/rfs-mnt-XXXXXX");
	CHECK(mkdtemp(w.dir) != NULL);
	uv_loop_init(&w.loop);
	uv_timer_init(&w.loop, &w.later);
	w.later.data = &w;
	CHECK_EQ(fs_mount_start(&w.mount, &w.loop, w.dir, "fsname=raftfs-test,subtype=raftfs",
				&ops, sizeof ops, &w, on_gone, &w), 0);
	CHECK_EQ(pthread_create(&w.loop_thread, NULL, run_loop, &w), 0);

	char path[128], buf[16] = "";
	snprintf(path, sizeof path, "%s/f", w.dir);
	struct stat st;
	CHECK_EQ(stat(path, &st), 0);
	CHECK_EQ(st.st_size, 5);
	CHECK(pthread_equal(w.served_by, w.loop_thread));
	snprintf(path, sizeof path, "%s/missing", w.dir);
	CHECK_EQ(stat(path, &st), -1);
	CHECK_EQ(errno, ENOENT);
	snprintf(path, sizeof path, "%s/f", w.dir);
	FILE *f = fopen(path, "r");
	CHECK(f != NULL);
	CHECK_EQ(fread(buf, 1, sizeof buf - 1, f), 5);
	fclose(f);
	CHECK_STR_EQ(buf, "later");

	/* Someone else unmounts: the loop hears of it and stops. */
	char cmd[128];
	snprintf(cmd, sizeof cmd, "fusermount3 -u %s", w.dir);
	CHECK_EQ(system(cmd), 0);
	CHECK_EQ(pthread_join(w.loop_thread, NULL), 0);
	CHECK(w.gone);
	fs_mount_close(&w.mount, on_closed, &w);
	uv_close((uv_handle_t *)&w.later, NULL);
	uv_run(&w.loop, UV_RUN_DEFAULT);
	CHECK(w.closed);
	CHECK_EQ(uv_loop_close(&w.loop), 0);
	CHECK_EQ(rmdir(w.dir), 0);
}

CHECK_TEST(close_unmounts)
{
	CHECK_SKIP_IF(access("/dev/fuse", R_OK | W_OK) != 0 || geteuid() != 0,
		      "needs /dev/fuse and root");
	static struct world w;
	memset(&w, 0, sizeof w);
	strcpy(w.dir, "/tmp/rfs-mnt-XXXXXX");
	CHECK(mkdtemp(w.dir) != NULL);
	uv_loop_init(&w.loop);
	CHECK_EQ(fs_mount_start(&w.mount, &w.loop, w.dir, NULL, &ops, sizeof ops, &w, on_gone, &w),
		 0);
	fs_mount_close(&w.mount, on_closed, &w);
	uv_run(&w.loop, UV_RUN_DEFAULT);
	CHECK(w.closed);
	CHECK(!w.gone);
	CHECK_EQ(rmdir(w.dir), 0); /* EBUSY if still mounted */
	CHECK_EQ(uv_loop_close(&w.loop), 0);

	/* A mountpoint that is missing or not a directory: a clear error, nothing left behind. */
	int old = fs_log_set_fd(open("/dev/null", O_WRONLY));
	CHECK_EQ(fs_mount_start(&w.mount, &w.loop, "/nonexistent/raftfs", NULL, &ops, sizeof ops,
				&w, on_gone, &w), -ENOENT);
	CHECK_EQ(fs_mount_start(&w.mount, &w.loop, "/etc/hostname", NULL, &ops, sizeof ops, &w,
				on_gone, &w), -ENOTDIR);
	close(fs_log_set_fd(old));
}

CHECK_SUITE("fs-mount", CHECK_CASE(serves_on_the_loop_and_notices_unmount),
	    CHECK_CASE(close_unmounts))
