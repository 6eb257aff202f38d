/*
 * fuse/inode.h: the mount's inode table: which path each FUSE inode number stands for.
 *
 * The key space is named by paths; the kernel names files by inode numbers. An inode is made the
 * first time a path is looked up, counted per lookup reply, and freed when the kernel forgets it
 * (libfuse's lookup/forget balance). Inode numbers are local to the mount and never reused. Rename
 * moves every inode at or under the old path, and an inode whose path was replaced or deleted is
 * detached: it keeps its number until forgotten, no longer resolves by path (-ESTALE), but keeps
 * its old path and the last revision it existed at, so a process that still holds it open reads
 * what it opened, from the store's history (as an unlinked file stays readable). Root is inode 1.
 * Every call comes from the member's loop thread, where FUSE requests (the inotify replay's
 * included) are served; the mutex it takes is uncontended, a safeguard.
 */
#ifndef RAFTFS_FS_FUSE_INODE_H
#define RAFTFS_FS_FUSE_INODE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define FS_ROOT_INO 1

struct fs_inode;

struct fs_itable {
	pthread_mutex_t lock;          /* guards everything below */
	struct fs_inode **by_ino;      /* chained hash on ino, nbuckets long */
	struct fs_inode **by_path;     /* chained hash on path, nbuckets long */
	size_t nbuckets;               /* a power of two */
	size_t count;                  /* inodes, root included */
	uint64_t next_ino;             /* the next number handed out */
	int64_t rev;                   /* the store revision inodes made now are born at */
};

/* Makes a table holding only root. -ENOMEM. */
int fs_itable_init(struct fs_itable *it);

/*
 * As fs_itable_path, but a detached inode also answers: with its old path and, in *rev, the last
 * revision it existed at (0 for an attached inode).
 */
int fs_itable_path_at(struct fs_itable *it, uint64_t ino, char *buf, size_t size, int64_t *rev);

/* Frees every inode. */
void fs_itable_close(struct fs_itable *it);

/*
 * The inode of path (made if new), its lookup count raised by one: call once per entry reply.
 * Returns the number, or 0 when out of memory.
 */
uint64_t fs_itable_lookup(struct fs_itable *it, const char *path);

/*
 * The store revision the table's owner has applied (after each apply): an inode made from now on
 * stands for its path as of rev, so that a later rename or delete replayed at an earlier
 * revision leaves it alone (fs_itable_rename) or keeps what it stood for (fs_itable_detach).
 */
void fs_itable_set_rev(struct fs_itable *it, int64_t rev);

/* The inode of path without counting a lookup, or 0 when the path has none. */
uint64_t fs_itable_find(struct fs_itable *it, const char *path);

/*
 * Copies ino's path into buf[size]. Returns its length, -ENOENT for an unknown inode, -ESTALE for
 * a detached one, -ENAMETOOLONG when buf is too small.
 */
int fs_itable_path(struct fs_itable *it, uint64_t ino, char *buf, size_t size);

/*
 * Marks the inodes at path made before revision rev as replaced: another member's change at rev
 * put another object at path (an exchange), and the replay, which moves them, has not performed
 * it yet. A move by fs_itable_rename or fs_itable_exchange, or a detach, clears the mark.
 */
void fs_itable_mark_replaced(struct fs_itable *it, const char *path, int64_t rev);

/* Whether ino is marked replaced (fs_itable_mark_replaced). */
int fs_itable_replaced(struct fs_itable *it, uint64_t ino);

/*
 * Marks ino as moved by a replayed exchange: the kernel may still give it for the name it left.
 * The mark stays until a lookup reply gives the kernel ino under its path (fs_itable_confirm) or
 * it is taken (fs_itable_take_moved).
 */
void fs_itable_mark_moved(struct fs_itable *it, uint64_t ino);

/* A lookup reply gave the kernel ino under its path: its moved mark goes. */
void fs_itable_confirm(struct fs_itable *it, uint64_t ino);

/* Whether ino was marked moved; the mark goes (a moved inode answers so once). */
int fs_itable_take_moved(struct fs_itable *it, uint64_t ino);

/* The kernel forgot n lookups of ino; frees it at zero (never root). */
void fs_itable_forget(struct fs_itable *it, uint64_t ino, uint64_t n);

/*
 * Moves every inode at or under `from` made by revision rev (the one before the rename) to the
 * same place under `to`; inodes made later stand for a file made there since and stay. Detaches
 * what was at or under `to` made by rev, which existed last at rev; an inode made at `to` later
 * stands for what the rename put there (or a later file) and stays.
 */
int fs_itable_rename(struct fs_itable *it, const char *from, const char *to, int64_t rev);

/*
 * RENAME_EXCHANGE of a and b (neither under the other; rev: the revision before the exchange), in
 * one step: the inodes at a go to b and those at b to a, whenever made (the kernel exchanges the
 * two names with whatever inodes it holds for them, which can be one that a lookup made after the
 * exchange applied, before its replay); the inodes under a made by rev go to the same
 * place under b, and those under b to a; those made later stand for what the exchange put there
 * and stay (the replay has the kernel drop the names' cached trees: fuse/at.c). The inodes moved
 * count as made at rev + 1 at the earliest: they stand for their new paths from the exchange on,
 * so a detach of the names the exchange deleted and made again (at rev + 1) leaves them alone.
 * -ENOMEM (an inode keeps its path).
 */
int fs_itable_exchange(struct fs_itable *it, const char *a, const char *b, int64_t rev);

/*
 * Detaches the inodes at or under path made by revision rev (it was deleted; rev is the last
 * revision it existed at). One made later stands for a file made there since, and stays.
 */
void fs_itable_detach(struct fs_itable *it, const char *path, int64_t rev);

#endif
