/*
 * testfs.c: a tiny FUSE daemon that exists only to test the end-to-end harness (tests/e2e/harness.py)
 * before and independently of raftfs's own mount: it takes the same member flags as
 * `raftfs mount -f`, mounts a read-only root holding one file, `hello`, and can be told to misbehave
 * the ways the harness must survive:
 *
 *   --hang-on NAME         a lookup of NAME never gets a reply (teardown must abort the connection)
 *   --log-error-on NAME    a lookup of NAME logs an ERROR line (the stderr checker must catch it)
 *
 * `testfs mount ...` and `testfs ...` are the same. It logs in raftfs's line format, "LEVEL name: message", on stderr.
 */
#define FUSE_USE_VERSION 34
#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct testfs {
	const char *name;         /* --name, also the first word of hello's content */
	const char *hang_on;      /* --hang-on NAME, or NULL */
	const char *log_error_on; /* --log-error-on NAME, or NULL */
	fuse_req_t hung;          /* the request left unanswered, answered at exit (under lock) */
	pthread_mutex_t lock;     /* guards hung */
	char hello[128];          /* content of /hello */
};

#define HELLO_INO 2

static void testfs_stat(const struct testfs *t, fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_ino = ino;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)strlen(t->hello);
	}
}

static void testfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct testfs *t = fuse_req_userdata(req);
	if (t->hang_on && strcmp(name, t->hang_on) == 0) {
		fprintf(stderr, "INFO %s: not answering lookup of %s\n", t->name, name);
		pthread_mutex_lock(&t->lock);
		if (t->hung)
			fuse_reply_err(t->hung, EINTR); /* keep one at a time */
		t->hung = req;
		pthread_mutex_unlock(&t->lock);
		return; /* never replied: the caller stays blocked until the connection is aborted */
	}
	if (t->log_error_on && strcmp(name, t->log_error_on) == 0)
		fprintf(stderr, "ERROR %s: lookup of %s failed on purpose\n", t->name, name);
	if (parent != FUSE_ROOT_ID || strcmp(name, "hello") != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct fuse_entry_param e = {.ino = HELLO_INO, .attr_timeout = 1, .entry_timeout = 1};
	testfs_stat(t, HELLO_INO, &e.attr);
	fuse_reply_entry(req, &e);
}

static void testfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	if (ino != FUSE_ROOT_ID && ino != HELLO_INO) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	testfs_stat(fuse_req_userdata(req), ino, &st);
	fuse_reply_attr(req, &st, 1);
}

static void testfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	char buf[512];
	size_t used = 0;
	const char *names[] = {".", "..", "hello"};
	const fuse_ino_t inos[] = {FUSE_ROOT_ID, FUSE_ROOT_ID, HELLO_INO};
	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	for (off_t i = off; i < 3; i++) {
		struct stat st = {.st_ino = inos[i], .st_mode = i < 2 ? S_IFDIR : S_IFREG};
		size_t n = fuse_add_direntry(req, buf + used, sizeof buf - used, names[i], &st, i + 1);
		if (n > sizeof buf - used || used + n > size)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
}

static void testfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	struct testfs *t = fuse_req_userdata(req);
	size_t len = strlen(t->hello);
	if (ino != HELLO_INO) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((size_t)off >= len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, t->hello + off, len - (size_t)off < size ? len - (size_t)off : size);
}

static const struct fuse_lowlevel_ops testfs_ops = {
	.lookup = testfs_lookup,
	.getattr = testfs_getattr,
	.readdir = testfs_readdir,
	.read = testfs_read,
};

static void usage(void)
{
	fprintf(stderr, "usage: testfs [--name N] [--data-dir D] [--listen-peer H:P] "
			"[--initial-cluster C] [--hang-on NAME] [--log-error-on NAME] [-f] DIR\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct testfs t = {.name = "testfs", .lock = PTHREAD_MUTEX_INITIALIZER};
	const char *mountpoint = NULL, *data_dir = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int has_value = i + 1 < argc;
		if (strcmp(a, "-f") == 0 || (i == 1 && strcmp(a, "mount") == 0))
			continue;
		if (a[0] != '-') {
			if (mountpoint)
				usage();
			mountpoint = a;
			continue;
		}
		if (!has_value)
			usage();
		const char *v = argv[++i];
		if (strcmp(a, "--name") == 0)
			t.name = v;
		else if (strcmp(a, "--data-dir") == 0)
			data_dir = v;
		else if (strcmp(a, "--hang-on") == 0)
			t.hang_on = v;
		else if (strcmp(a, "--log-error-on") == 0)
			t.log_error_on = v;
		else if (strncmp(a, "--", 2) != 0)
			usage();
		/* other member flags (--listen-peer, --initial-cluster, ...) are accepted and unused */
	}
	if (!mountpoint)
		usage();
	if (data_dir && mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "ERROR %s: cannot create data dir %s: %s\n", t.name, data_dir,
			strerror(errno));
		return 1;
	}
	snprintf(t.hello, sizeof t.hello, "hello from %s\n", t.name);

	char *fargv[] = {argv[0], "-o", "fsname=testfs,subtype=testfs", NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
	struct fuse_session *se = fuse_session_new(&args, &testfs_ops, sizeof testfs_ops, &t);
	fuse_opt_free_args(&args);
	if (!se)
		return 1;
	int rc = 1;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_destroy;
	if (fuse_session_mount(se, mountpoint) != 0) {
		fprintf(stderr, "ERROR %s: cannot mount %s\n", t.name, mountpoint);
		goto out_signals;
	}
	fprintf(stderr, "INFO %s: mounted %s\n", t.name, mountpoint);
	struct fuse_loop_config cfg = {.clone_fd = 0, .max_idle_threads = 4};
	rc = fuse_session_loop_mt(se, &cfg) != 0;
	if (t.hung)
		fuse_reply_err(t.hung, EINTR); /* frees it; the connection is gone by now */
	fuse_session_unmount(se);
	fprintf(stderr, "INFO %s: unmounted %s\n", t.name, mountpoint);
out_signals:
	fuse_remove_signal_handlers(se);
out_destroy:
	fuse_session_destroy(se);
	return rc;
}
