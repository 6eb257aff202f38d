/*
 * mount.c: serves a FUSE session from the member's libuv loop (see mount_internal.h).
 */
#include "mount_internal.h"

#include "log_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define REQUESTS_PER_WAKEUP 64 /* then let the loop run other work */

static void mount_gone(struct fs_mount *m)
{
	if (!m->mounted)
		return;
	m->mounted = 0;
	uv_poll_stop(&m->poll);
	FS_INFO("mount %s: unmounted", m->mountpoint);
	if (m->on_gone)
		m->on_gone(m, m->arg);
}

static void on_fuse_readable(uv_poll_t *poll, int status, int events)
{
	struct fs_mount *m = poll->data;
	for (int i = 0; i < REQUESTS_PER_WAKEUP && m->se; i++) {
		int res = fuse_session_receive_buf(m->se, &m->buf);
		if (res == -EINTR)
			continue;
		if (res == -EAGAIN)
			return;
		if (res <= 0 || fuse_session_exited(m->se)) {
			/* 0 or -ENODEV: unmounted; -ECONNABORTED: the connection was aborted. */
			mount_gone(m);
			return;
		}
		fuse_session_process_buf(m->se, &m->buf);
		if (fuse_session_exited(m->se)) {
			mount_gone(m);
			return;
		}
	}
}

int fs_mount_start(struct fs_mount *m, uv_loop_t *loop, const char *mountpoint,
		   const char *options, const struct fuse_lowlevel_ops *ops, size_t ops_size,
		   void *userdata, void (*on_gone)(struct fs_mount *m, void *arg), void *arg)
{
	memset(m, 0, sizeof *m);
	if (strlen(mountpoint) >= sizeof m->mountpoint)
		return -ENAMETOOLONG;
	strcpy(m->mountpoint, mountpoint);
	m->on_gone = on_gone;
	m->arg = arg;
	struct stat st;
	if (stat(mountpoint, &st) != 0) {
		int err = errno;
		FS_ERROR("mount %s: %s", mountpoint, strerror(err));
		return -err;
	}
	if (!S_ISDIR(st.st_mode)) {
		FS_ERROR("mount %s: not a directory", mountpoint);
		return -ENOTDIR;
	}
	char *argv[] = {"raftfs", "-o", (char *)(options ? options : "fsname=raftfs"), NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	m->se = fuse_session_new(&args, ops, ops_size, userdata);
	fuse_opt_free_args(&args);
	if (!m->se) {
		FS_ERROR("mount %s: cannot create a FUSE session (options %s)", mountpoint,
			 options ? options : "");
		return -EINVAL;
	}
	if (fuse_session_mount(m->se, mountpoint) != 0) {
		FS_ERROR("mount %s: mounting failed (is /dev/fuse there, and may we mount?)",
			 mountpoint);
		fuse_session_destroy(m->se);
		m->se = NULL;
		return -EIO;
	}
	m->mounted = 1;
	int fd = fuse_session_fd(m->se);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	int rc = uv_poll_init(loop, &m->poll, fd);
	if (rc == 0) {
		m->polling = 1;
		m->poll.data = m;
		rc = uv_poll_start(&m->poll, UV_READABLE, on_fuse_readable);
	}
	if (rc != 0) {
		FS_ERROR("mount %s: cannot poll the FUSE device: %s", mountpoint, uv_strerror(rc));
		fs_mount_close(m, NULL, NULL);
		return rc;
	}
	FS_INFO("mount %s: mounted", mountpoint);
	return 0;
}

static void on_poll_closed(uv_handle_t *h)
{
	struct fs_mount *m = h->data;
	if (m->closed)
		m->closed(m->closed_arg);
}

void fs_mount_close(struct fs_mount *m, void (*closed)(void *arg), void *arg)
{
	m->closed = closed;
	m->closed_arg = arg;
	if (m->se) {
		/* Also after an unmount from outside: it frees the session's copy of the path. */
		fuse_session_unmount(m->se);
		m->mounted = 0;
		fuse_session_destroy(m->se);
		m->se = NULL;
	}
	free(m->buf.mem);
	m->buf.mem = NULL;
	if (m->polling) {
		m->polling = 0;
		uv_close((uv_handle_t *)&m->poll, on_poll_closed);
	} else if (closed) {
		closed(arg);
	}
}
