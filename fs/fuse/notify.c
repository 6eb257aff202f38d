/*
 * notify.c: the invalidation thread of a mount (see fuse/notify.h).
 */
#include "fuse/notify.h"

#include "fuse/face.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct fs_notify_item {
	struct fs_notify_item *next;
	uint64_t ino;  /* the inode, or the directory for an entry */
	size_t len;    /* name length: 0 for an inode invalidation */
	char name[];
};

static void *notify_main(void *arg)
{
	struct fs_notifier *n = arg;
	pthread_setname_np(pthread_self(), "raftfs-inval"); /* as top and perf show it */
	pthread_mutex_lock(&n->lock);
	for (;;) {
		while (!n->head && !n->stop)
			pthread_cond_wait(&n->cond, &n->lock);
		struct fs_notify_item *it = n->head;
		if (!it)
			break; /* stopping with nothing left */
		n->head = it->next;
		if (!n->head)
			n->tail = NULL;
		pthread_mutex_unlock(&n->lock);
		/* -ENOENT: the kernel had nothing cached; nothing else is worth a word here */
		if (it->len)
			fuse_lowlevel_notify_inval_entry(n->se, it->ino, it->name, it->len);
		else
			fuse_lowlevel_notify_inval_inode(n->se, it->ino, 0, 0);
		free(it);
		pthread_mutex_lock(&n->lock);
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

int fs_notify_start(struct fs_notifier *n, struct fuse_session *se)
{
	memset(n, 0, sizeof *n);
	n->se = se;
	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->cond, NULL);
	int rc = pthread_create(&n->thread, NULL, notify_main, n);
	if (rc)
		return -rc;
	n->started = 1;
	return 0;
}

static void push(struct fs_notifier *n, uint64_t ino, const char *name, size_t len)
{
	struct fs_notify_item *it = malloc(sizeof *it + len + 1);
	if (!it || !n->started) {
		free(it); /* an invalidation lost to ENOMEM: the cache times out instead */
		return;
	}
	it->next = NULL;
	it->ino = ino;
	it->len = len;
	memcpy(it->name, name, len);
	it->name[len] = '\0';
	pthread_mutex_lock(&n->lock);
	if (n->tail)
		n->tail->next = it;
	else
		n->head = it;
	n->tail = it;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->lock);
}

void fs_notify_entry(struct fs_notifier *n, uint64_t parent, const char *name, size_t len)
{
	if (len)
		push(n, parent, name, len);
}

void fs_notify_inode(struct fs_notifier *n, uint64_t ino)
{
	push(n, ino, "", 0);
}

void fs_notify_stop(struct fs_notifier *n)
{
	if (!n->started)
		return;
	pthread_mutex_lock(&n->lock);
	n->stop = 1;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->lock);
	pthread_join(n->thread, NULL);
	n->started = 0;
	pthread_mutex_destroy(&n->lock);
	pthread_cond_destroy(&n->cond);
}
