/*
 * ns.c: the `.raftfs/` namespace through FUSE (the face's namespace hook at the root, fuse/face.h):
 * lookup, getattr and readdir of its three files, and the handles they are opened as: opening
 * `status` renders it, `session` holds the session lease's id, and each write to `ctl` is a
 * command whose answer the reads of that handle return (a watch's, as a stream read in order).
 */
#include "control/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

enum { INO_STATUS = 1, INO_SESSION = 2, INO_CTL = 3 };

static const struct {
	const char *name;
	mode_t mode;
} files[] = {
	[INO_STATUS] = {"status", S_IFREG | 0444},
	[INO_SESSION] = {"session", S_IFREG | 0444},
	[INO_CTL] = {"ctl", S_IFREG | 0600},
};
#define N_FILES ((int)(sizeof files / sizeof files[0]))

/* ---- handles ---------------------------------------------------------------------------------- */

static struct fs_control_handle *handle_of(struct fuse_file_info *fi)
{
	return (struct fs_control_handle *)(uintptr_t)fi->fh;
}

void fs__control_handle_reset(struct fs_control_handle *h)
{
	store_watch_cancel(h->watch);
	h->watch = NULL;
	h->watch_ended = 0;
	free(h->out.p);
	memset(&h->out, 0, sizeof h->out);
	h->base = 0;
}

/* ---- the namespace through FUSE --------------------------------------------------------------- */

static void attr_of(uint64_t ino, struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_ino = ino;
	st->st_blksize = 4096;
	if (ino == FS_OPS_NS_INO) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else {
		st->st_mode = files[ino - FS_OPS_NS_INO].mode;
		st->st_nlink = 1;
	}
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	st->st_atim = st->st_mtim = st->st_ctim = now;
}

static void ns_release(void *arg, fuse_req_t req, struct fuse_file_info *fi);

static void ns_lookup(void *arg, fuse_req_t req, uint64_t parent, const char *name)
{
	(void)arg;
	uint64_t ino = 0;
	if (parent == FUSE_ROOT_ID && !strcmp(name, FS_OPS_NS_NAME))
		ino = FS_OPS_NS_INO;
	for (int i = 1; parent == FS_OPS_NS_INO && i < N_FILES; i++)
		if (!strcmp(name, files[i].name))
			ino = FS_OPS_NS_INO + (uint64_t)i;
	if (!ino) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	/* contents change all the time: the kernel caches no attribute */
	struct fuse_entry_param e = {.ino = ino};
	attr_of(ino, &e.attr);
	fuse_reply_entry(req, &e);
}

static void ns_getattr(void *arg, fuse_req_t req, uint64_t ino)
{
	(void)arg;
	struct stat st;
	attr_of(ino, &st);
	fuse_reply_attr(req, &st, 0);
}

static void ns_readdir(void *arg, fuse_req_t req, uint64_t ino, size_t size, off_t off)
{
	(void)arg;
	if (ino != FS_OPS_NS_INO) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	char *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	size_t used = 0;
	const char *names[N_FILES + 1] = {".", ".."};
	for (int i = 1; i < N_FILES; i++)
		names[i + 1] = files[i].name;
	for (off_t i = off; i < N_FILES + 1; i++) {
		struct stat st = {0};
		st.st_ino = i < 2 ? FS_OPS_NS_INO : FS_OPS_NS_INO + (uint64_t)(i - 1);
		st.st_mode = i < 2 ? S_IFDIR : S_IFREG;
		size_t n = fuse_add_direntry(req, buf + used, size - used, names[i], &st, i + 1);
		if (n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void ns_open(void *arg, fuse_req_t req, uint64_t ino, struct fuse_file_info *fi)
{
	struct fs_control *c = arg;
	int kind = (int)(ino - FS_OPS_NS_INO);
	if (ino == FS_OPS_NS_INO) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (kind != INO_CTL && (fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EACCES);
		return;
	}
	struct fs_control_handle *h = calloc(1, sizeof *h);
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->c = c;
	h->kind = kind;
	if (kind == INO_STATUS)
		fs__control_status_render(c, &h->out, 1);
	else if (kind == INO_SESSION && c->session)
		fs__control_out_printf(&h->out, "%" PRId64 "\n", c->session);
	h->next = c->handles;
	if (h->next)
		h->next->prev = h;
	c->handles = h;
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->direct_io = 1; /* sizes are not known ahead: every read asks */
	if (fuse_reply_open(req, fi) != 0)
		ns_release(c, NULL, fi);
}

static void ns_read(void *arg, fuse_req_t req, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct fs_control *c = arg;
	struct fs_control_handle *h = handle_of(fi);
	if ((uint64_t)off < h->base) {
		fuse_reply_err(req, EINVAL); /* a watch's stream is not read again */
		return;
	}
	uint64_t at = (uint64_t)off - h->base;
	if (at < h->out.len) {
		size_t n = h->out.len - at < size ? h->out.len - at : size;
		fuse_reply_buf(req, h->out.p + at, n);
		return;
	}
	if (h->watch && !h->watch_ended && at == h->out.len && !h->read_req && !c->stopping) {
		/* consumed so far: drop it, wait for more */
		h->base += h->out.len;
		h->out.len = 0;
		fs__control_watch_pump(h);
		h->read_req = req;
		h->read_size = size;
		h->read_interrupted = 0;
		if (h->out.len || h->watch_ended)
			fs__control_read_answer(h);
		else
			fuse_req_interrupt_func(req, fs__control_on_interrupt, h);
		return;
	}
	fuse_reply_buf(req, NULL, 0);
}

static void ns_write(void *arg, fuse_req_t req, const char *buf, size_t size,
		      off_t off, struct fuse_file_info *fi)
{
	struct fs_control *c = arg;
	struct fs_control_handle *h = handle_of(fi);
	if (h->kind != INO_CTL || off != 0 || size == 0 || size > 16384) {
		fuse_reply_err(req, h->kind != INO_CTL ? EBADF : EINVAL);
		return;
	}
	if (h->read_req) {
		fuse_reply_err(req, EBUSY);
		return;
	}
	fs__control_handle_reset(h); /* a new command, a new answer */
	fs__control_command(c, h, req, buf, size);
}

static void ns_release(void *arg, fuse_req_t req, struct fuse_file_info *fi)
{
	struct fs_control *c = arg;
	struct fs_control_handle *h = handle_of(fi);
	for (struct fs_control_call *call = c->calls; call; call = call->next)
		if (call->h == h)
			call->h = NULL;
	if (h->read_req)
		fuse_reply_err(h->read_req, EINTR);
	fs__control_handle_reset(h);
	if (h->prev)
		h->prev->next = h->next;
	else
		c->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	free(h);
	if (req)
		fuse_reply_err(req, 0);
}

void fs_control_namespace(struct fs_control *c, struct fs_ops_namespace *ns)
{
	*ns = (struct fs_ops_namespace){.arg = c, .lookup = ns_lookup, .getattr = ns_getattr,
		.readdir = ns_readdir, .open = ns_open, .read = ns_read, .write = ns_write,
		.release = ns_release};
}
