/*
 * mount.c: serves a FUSE session from the member's libuv loop (see fuse/mount.h).
 */
#include "fuse/face.h"

#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#define FUSECTL "/sys/fs/fuse/connections"

#define REQUESTS_PER_WAKEUP 64 /* then let the loop run other work */

static void mount_gone(struct fs_mount *m)
{
	if (!m->mounted)
		return;
	m->mounted = 0;
	uv_poll_stop(&m->poll);
	if (m->mounts_fd >= 0)
		uv_poll_stop(&m->mounts);
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

/* mountinfo's escapes (\040 for a space, ...) undone in place. */
static void unescape(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/*
 * Parses a mountinfo line: the mount's device and, unescaped, its mountpoint and file system type.
 * 0, or -1 for a line of another shape.
 */
static int mountinfo_line(char *line, unsigned *maj, unsigned *min, char *mp, char *fstype)
{
	const char *dash = strstr(line, " - ");
	if (!dash || sscanf(line, "%*s %*s %u:%u %*s %4095s", maj, min, mp) != 3 ||
	    sscanf(dash + 3, "%255s", fstype) != 1)
		return -1;
	unescape(mp);
	return 0;
}

/*
 * From /proc/self/mountinfo (never asking a mount itself, whose requests may not be served yet):
 * the device minor of the newest mount whose file system type begins with fstype and that is at
 * real (a canonical path), or, with real NULL, whose minor is conn. -1 when none.
 */
static long mountinfo_find(const char *real, long conn, const char *fstype)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -1;
	char line[3 * PATH_MAX];
	long found = -1;
	while (fgets(line, sizeof line, f)) {
		unsigned maj, min;
		char mp[PATH_MAX], type[256];
		if (mountinfo_line(line, &maj, &min, mp, type) || maj != 0 ||
		    strncmp(type, fstype, strlen(fstype)))
			continue; /* FUSE mounts have anonymous devices (major 0) */
		if (real ? !strcmp(mp, real) : (long)min == conn)
			found = min;
	}
	fclose(f);
	return found;
}

long fs_mount_find(const char *real, const char *fstype)
{
	return mountinfo_find(real, -1, fstype);
}

/*
 * The mount table changed: when the mount is no longer listed, it was unmounted from outside. The
 * FUSE connection may live on meanwhile, held by its remaining users (a lazy unmount) or by the
 * replay's clone of the mount (replay.c), which on_unlisted lets go of.
 */
static void on_mounts_changed(uv_poll_t *poll, int status, int events)
{
	(void)events;
	struct fs_mount *m = poll->data;
	if (status < 0) {
		FS_WARN("mount %s: cannot watch the mount table: %s", m->mountpoint,
			uv_strerror(status));
		uv_poll_stop(poll);
		return;
	}
	if (m->mounted && mountinfo_find(NULL, m->conn, "fuse") < 0) {
		FS_INFO("mount %s: unmounted from outside (gone from /proc/self/mountinfo)",
			m->mountpoint);
		uv_poll_stop(poll);
		if (m->on_unlisted)
			m->on_unlisted(m, m->arg);
	}
}

int fs_mount_guard(struct fs_mount *m, const char *exe)
{
	if (m->conn < 0) {
		FS_WARN("mount %s: its FUSE connection is not in /proc/self/mountinfo: no guard",
			m->mountpoint);
		return 0;
	}
	char abort_path[128];
	snprintf(abort_path, sizeof abort_path, FUSECTL "/%ld/abort", m->conn);
	int afd = open(abort_path, O_WRONLY | O_CLOEXEC);
	if (afd < 0 && mount("fusectl", FUSECTL, "fusectl", 0, NULL) == 0) {
		FS_INFO("mounted fusectl on " FUSECTL);
		afd = open(abort_path, O_WRONLY | O_CLOEXEC);
	}
	if (afd < 0) {
		/* expected without root (the file is root's): said at info level then */
		FS_LOG(geteuid() == 0 ? FS_LOG_WARN : FS_LOG_INFO,
		       "mount %s: cannot open %s (%s): should this daemon be killed while its "
		       "inotify replay waits on the mount, the mount stays hung until aborted by hand",
		       m->mountpoint, abort_path, strerror(errno));
		return 0;
	}
	/* everything the child needs, made before fork: it may only make async-signal-safe calls */
	char fdarg[16], pidarg[24];
	snprintf(fdarg, sizeof fdarg, "%d", afd);
	snprintf(pidarg, sizeof pidarg, "%ld", (long)getpid());
	char *argv[] = {"raftfs", "__guard", fdarg, pidarg, NULL}; /* as ps shows it */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old); /* kept across exec: SIGUSR1 waits for sigwait */
	pid_t pid = fork();
	if (pid == 0) {
		/* nothing but the abort file: above all not /dev/fuse, which would keep it alive */
		fcntl(afd, F_SETFD, 0);
		if (afd > 0)
			close_range(0, (unsigned)afd - 1, 0);
		close_range((unsigned)afd + 1, ~0U, 0);
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGUSR1); /* kept across exec */
		execv(exe, argv); /* a fresh image: a fork would share the store's pages for good */
		_exit(127);
	}
	int err = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(afd);
	if (pid < 0) {
		FS_WARN("mount %s: cannot start its guard: %s", m->mountpoint, strerror(err));
		return -err;
	}
	m->guard_pid = (int)pid;
	return 0;
}

int fs_mount_guard_main(int argc, char **argv)
{
	char *end;
	long fd = argc == 3 ? strtol(argv[1], &end, 10) : -1;
	long ppid = argc == 3 ? strtol(argv[2], NULL, 10) : -1;
	if (fd < 0 || ppid <= 0) {
		fprintf(stderr, "raftfs __guard: started by raftfs mount only\n");
		return 2;
	}
	prctl(PR_SET_NAME, "raftfs-guard");
	sigset_t wake;
	sigemptyset(&wake);
	sigaddset(&wake, SIGUSR1);
	sigprocmask(SIG_BLOCK, &wake, NULL);
	int sig = 0;
	if (getppid() == (pid_t)ppid) /* else the daemon died already */
		sigwait(&wake, &sig);
	(void)!write((int)fd, "1", 1); /* fails harmlessly when the connection ended by itself */
	return 0;
}

static void guard_stop(struct fs_mount *m)
{
	if (m->guard_pid <= 0)
		return;
	kill(m->guard_pid, SIGKILL);
	while (waitpid(m->guard_pid, NULL, 0) < 0 && errno == EINTR)
		;
	m->guard_pid = 0;
}

/* Watches the mount table (the mount's connection must be known); without it, said in the log,
   an unmount from outside is seen once the connection ends. */
static void watch_mounts(struct fs_mount *m, uv_loop_t *loop)
{
	if (m->conn < 0)
		return;
	int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	int rc = fd < 0 ? uv_translate_sys_error(errno) : uv_poll_init(loop, &m->mounts, fd);
	if (rc == 0) {
		m->mounts.data = m;
		m->mounts_fd = fd;
		rc = uv_poll_start(&m->mounts, UV_PRIORITIZED, on_mounts_changed);
	} else if (fd >= 0) {
		close(fd);
	}
	if (rc != 0)
		FS_WARN("mount %s: cannot watch /proc/self/mountinfo: %s", m->mountpoint,
			uv_strerror(rc));
}

int fs_mount_start(struct fs_mount *m, uv_loop_t *loop, const char *mountpoint,
		   const char *options, const struct fuse_lowlevel_ops *ops, size_t ops_size,
		   void *userdata, void (*on_gone)(struct fs_mount *m, void *arg), void *arg)
{
	memset(m, 0, sizeof *m);
	m->conn = -1;
	m->mounts_fd = -1;
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
	char real[PATH_MAX];
	if (!realpath(mountpoint, real)) /* now: once mounted, this would ask the mount */
		snprintf(real, sizeof real, "%s", mountpoint);
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
	m->conn = fs_mount_find(real, "fuse"); /* fusectl names connections by the minor */
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
	watch_mounts(m, loop);
	FS_INFO("mount %s: mounted", mountpoint);
	return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
	struct fs_mount *m = h->data;
	if (h == (uv_handle_t *)&m->mounts) {
		close(m->mounts_fd); /* a poll handle never owns its fd */
		m->mounts_fd = -1;
	}
	if (--m->closing == 0 && m->closed)
		m->closed(m->closed_arg);
}

void fs_mount_close(struct fs_mount *m, void (*closed)(void *arg), void *arg)
{
	m->closed = closed;
	m->closed_arg = arg;
	if (m->se) {
		/* Also after an unmount from outside: it frees the session's copy of the path. */
		fuse_session_unmount(m->se);
		guard_stop(m); /* after the unmount: the connection number may be reused */
		m->mounted = 0;
		fuse_session_destroy(m->se);
		m->se = NULL;
	}
	free(m->buf.mem);
	m->buf.mem = NULL;
	m->closing = 0;
	if (m->mounts_fd >= 0) {
		m->closing++;
		uv_close((uv_handle_t *)&m->mounts, on_handle_closed);
	}
	if (m->polling) {
		m->polling = 0;
		m->closing++;
		uv_close((uv_handle_t *)&m->poll, on_handle_closed);
	}
	if (!m->closing && closed)
		closed(arg);
}
