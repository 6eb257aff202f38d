/*
 * fuse/notify.h: tells the kernel to forget what it cached of a path that changed.
 *
 * The kernel caches directory entries, attributes and pages; when an entry proposed elsewhere is
 * applied here, the mount invalidates them for the paths it changed. The invalidations are written
 * to /dev/fuse by a thread of their own: an entry invalidation takes the directory's lock in the
 * kernel, which a request waiting for the loop's reply may hold, so the loop must never wait for
 * one. Items queue without bound on the loop thread (a burst of applies) and are sent in order.
 */
#ifndef RAFTFS_FS_FUSE_NOTIFY_H
#define RAFTFS_FS_FUSE_NOTIFY_H

#include <pthread.h>
#include <stdint.h>

struct fuse_session;

struct fs_notify_item;

struct fs_notifier {
	struct fuse_session *se;          /* where invalidations go; set before start */
	pthread_t thread;
	pthread_mutex_t lock;             /* guards the queue and stop */
	pthread_cond_t cond;
	struct fs_notify_item *head, *tail;
	int stop;
	int started;
};

/* Starts the thread sending to se. -errno. */
int fs_notify_start(struct fs_notifier *n, struct fuse_session *se);

/* Queues: forget the entry `name` in directory parent, and the inode's attributes and pages. */
void fs_notify_entry(struct fs_notifier *n, uint64_t parent, const char *name, size_t len);
void fs_notify_inode(struct fs_notifier *n, uint64_t ino);

/* Sends what is queued, stops the thread and frees everything. */
void fs_notify_stop(struct fs_notifier *n);

#endif
