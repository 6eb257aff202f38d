/*
 * fuse/internal.h: what the files of fuse/ share with each other; no other folder includes it
 * (they include fuse/face.h); tests/fs may. ops.c serves every FUSE operation; at.c serves the
 * replayer's requests at a revision, and each handler of ops.c asks it first; txn.c builds the
 * transaction each change of ops.c proposes.
 */
#ifndef RAFTFS_FS_FUSE_INTERNAL_H
#define RAFTFS_FS_FUSE_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>

#include "fuse/face.h"

struct stat;

/* ---- ops.c, for at.c ---- */

/* parent's path joined with name into buf[FS_PATH_MAX_BYTES + 1]; -ENAMETOOLONG, -EINVAL, -EPERM
   in the namespace, -ENOENT for an unknown parent. */
int fs__ops_child_path(struct fs_ops *o, uint64_t parent, const char *name, char *buf);

/* path at revision rev (0: now, where a file created here and not yet committed counts); 0 with
   *kv pointing into the store until its next change, or -ENOENT. */
int fs__ops_kv_at(struct fs_ops *o, const char *path, int64_t rev, struct store_kv *kv);

/* The attributes of inode ino (path) from kv (NULL: the root). */
void fs__ops_fill_attr(struct fs_ops *o, uint64_t ino, const char *path, const struct store_kv *kv,
		       struct stat *st);

/* The cache timeouts of an entry for ino made from kv, as ordinary lookups get them. */
void fs__ops_entry_timeouts(struct fs_ops *o, uint64_t ino, const struct store_kv *kv,
			    struct fuse_entry_param *e);

/* The parent directory of path into buf[FS_PATH_MAX_BYTES + 1]. */
void fs__ops_parent_of(const char *path, char *buf);

/* A device node's number from its value ("MAJOR:MINOR"); 0 when it does not parse. */
dev_t fs__ops_rdev_of(const void *value, size_t len);

/* The replayer's exchange of path and path2, of revision rev, moved their inodes in the table
   (each to the other name): they are marked moved (fs_itable_mark_moved), so the kernel looks
   them up again, and what was opened for writing on them after rev applied goes on committing
   to its name. */
void fs__ops_exchanged(struct fs_ops *o, const char *path, const char *path2, int64_t rev);

/* ---- ops.c, for txn.c ---- */

/*
 * Calls fn for each direct child of dir in store s (its name, not NUL-terminated, and its kv);
 * stops at the first non-zero return of fn and returns it; 0, or -EIO when s cannot be read.
 */
int fs__ops_each_child(struct store *s, const char *dir,
		       int (*fn)(void *arg, const char *name, size_t len, const struct store_kv *kv),
		       void *arg);

/* ---- subdirs.c: each directory's number of subdirectories, for its link count ---- */

struct fs_subdirs *fs__subdirs_new(void);          /* NULL when out of memory */
void fs__subdirs_free(struct fs_subdirs *t);         /* NULL is fine */
/* Counts again from every key of the store (at start, and after a watch lost history). */
int fs__subdirs_rebuild(struct fs_subdirs *t, struct store *s);
/* Follows one applied event (from a watch with its previous kv). */
void fs__subdirs_event(struct fs_subdirs *t, const struct store_event *ev);
/* The subdirectories of the directory dir ("/" for the root). */
uint32_t fs__subdirs_of(const struct fs_subdirs *t, const char *dir);

/* ---- at.c, for the handlers of ops.c: 1 when req was answered (the replayer's), else 0 ---- */

int fs__at_lookup(fuse_req_t req, struct fs_ops *o, fuse_ino_t parent, const char *name);
int fs__at_getattr(fuse_req_t req, struct fs_ops *o, fuse_ino_t ino);
int fs__at_setattr(fuse_req_t req, struct fs_ops *o, fuse_ino_t ino);
/* create (fi set), mkdir and symlink (fi NULL): op names the operation */
int fs__at_make(fuse_req_t req, struct fs_ops *o, const char *op, fuse_ino_t parent,
		const char *name, struct fuse_file_info *fi);
int fs__at_open(fuse_req_t req, struct fs_ops *o, struct fuse_file_info *fi);
int fs__at_remove(fuse_req_t req, struct fs_ops *o, fuse_ino_t parent, const char *name, int dir);
/* a rename, or with flags RENAME_EXCHANGE an exchange */
int fs__at_rename(fuse_req_t req, struct fs_ops *o, fuse_ino_t parent, const char *name,
		  fuse_ino_t newparent, const char *newname, unsigned flags);

/* Whether a handle is one the replayer opened (at.c): write, flush, fsync and release of it
   commit nothing and answer at once. */
int fs__at_fh(const struct fuse_file_info *fi);

/* ---- txn.c: the transaction of each change, for ops.c and tests/fs/test_txn.c ---- */

/*
 * Stored extended attributes are keys of their own outside the path space, so no listing ever
 * shows them: "\x01x" PATH "\0" NAME. Those of one file share the prefix "\x01x" PATH "\0",
 * those under a directory "\x01x" DIR "/".
 */
#define FS_XKEY_TAG "\x01x"
#define FS_XKEY_MAX (2 + FS_PATH_MAX_BYTES + 1 + FS_NAME_MAX_BYTES + 1)

/* The key of path's attribute name (name NULL: the prefix of all of them) into buf[FS_XKEY_MAX];
   returns its length (it holds a NUL, so it is not a C string). name: FS_NAME_MAX_BYTES at most. */
size_t fs__txn_xkey(const char *path, const char *name, char *buf);

#define FS_TXN_MAX 64  /* compares, and ops, of one transaction: more makes it -E2BIG */
#define FS_TXN_KEPT 8  /* allocations a transaction owns */

/*
 * A transaction under construction: its compares and success ops, with room for their data. It
 * points at the store (keys and values of kvs read from it, valid until the store's next change),
 * at the inputs of its builder (paths, content, attribute values: the caller's) and at memory it
 * owns (kept[], freed with it). So it is encoded before the store changes and while the inputs
 * live. Made by fs__txn_new, filled by one fs__txn_<operation>, encoded by fs__txn_encode, freed
 * by fs__txn_free.
 */
struct fs_txn {
	Rpc__Compare cmp[FS_TXN_MAX];
	Rpc__Compare *cmpp[FS_TXN_MAX];
	size_t n_cmp;
	Rpc__Op op[FS_TXN_MAX];
	Rpc__Op *opp[FS_TXN_MAX];
	Rpc__Put put[FS_TXN_MAX];
	Rpc__DeleteRange del[FS_TXN_MAX];
	Rpc__Move move[FS_TXN_MAX];
	Rpc__Meta meta[FS_TXN_MAX];
	size_t n_op;
	int overflow; /* more than FS_TXN_MAX compares or ops were added */
	void *kept[FS_TXN_KEPT];
	size_t n_kept;
};

/*
 * What a builder reads: the store, and the files this member created and has not committed yet
 * (ops.c's pending creates: they count for the compares and metadata as they do for the member's
 * own requests). pending(arg, path, kv) gives such a file's kv (revisions 0) or -ENOENT; NULL:
 * none.
 */
struct fs_txn_view {
	struct store *store;
	int (*pending)(void *arg, const char *path, struct store_kv *kv);
	void *arg;
};

/* Content buffered in a writable handle (data may be NULL when len is 0). */
struct fs_txn_content {
	const void *data;
	size_t len;
};

/* An empty transaction; NULL when out of memory. */
struct fs_txn *fs__txn_new(void);

/* Frees tb and what it owns; NULL is fine. */
void fs__txn_free(struct fs_txn *tb);

/*
 * Encodes tb as an rpc.Request (a Txn with time_ns, the proposer's clock) into *buf (malloc'd, the
 * caller frees it) of *len bytes: the bytes a proposal carries (tests apply them to a store; the
 * face proposes with fs__txn_propose). 0, -E2BIG when tb overflowed, -ENOMEM.
 */
int fs__txn_encode(struct fs_txn *tb, int64_t time_ns, uint8_t **buf, size_t *len);

/* Proposes tb's request through m, encoded once into the member's own buffer (fs_kv_propose):
   fs_member_propose's contract for cb and the return value; -E2BIG when tb overflowed. */
int fs__txn_propose(struct fs_txn *tb, struct fs_member *m, int64_t time_ns, fs_wait_cb cb,
		    void *arg);

/*
 * The builders: each fills an empty tb with one operation's transaction, as this member sees the
 * store through v, with now (ns, the proposer's clock) for the times it sets. 0, or a negative
 * errno and tb is to be freed unused. Every one that makes or removes a name also touches (puts
 * again, mtime and ctime now) the directories it changes, comparing their create revision: a
 * directory's mod revision moves with every change of its entries.
 */

/*
 * Creates path (O_EXCL create, mknod, mkdir, symlink) with metadata m and value[len] (a symlink's
 * target) if the name does not exist: compares its version with 0, puts it, touches its parent.
 * -ENOENT, -ENOTDIR for a parent that is not a directory.
 */
int fs__txn_create(struct fs_txn *tb, const struct fs_txn_view *v, const char *path,
		   const struct store_meta *m, const void *value, size_t len, int64_t now);

/*
 * Commits content[len] as path's value (flush, fsync, release of a writable handle). A file
 * created here without O_EXCL and never committed (created: its metadata) is created with it,
 * replacing a file another member put there meanwhile as seen (its mod revision compared; else
 * the version compared with 0), never a directory (-EISDIR), and its parent is touched. Any other
 * commit keeps path's metadata (a new file: a regular 0644 one), sets mtime and ctime (and an
 * unset atime) to now, keeps the key's lease, and compares only that the parent exists; with
 * kill_priv (written by a process that may not keep them) it clears the set-user-ID bit, and the
 * set-group-ID bit of a group-executable file, as local file systems do.
 */
int fs__txn_commit(struct fs_txn *tb, const struct fs_txn_view *v, const char *path,
		   const void *content, size_t len, const struct store_meta *created, int kill_priv,
		   int64_t now);

/*
 * Removes path, a directory (dir: rmdir) or not (unlink), with its stored attributes, and touches
 * its parent. A directory must be empty (-ENOTEMPTY) and is compared by its mod revision, so a
 * child made meanwhile anywhere fails the txn; a file by its create revision (the same file,
 * whatever was written to it). -ENOENT, -ENOTDIR, -EISDIR.
 */
int fs__txn_remove(struct fs_txn *tb, const struct fs_txn_view *v, const char *path, int dir,
		   int64_t now);

/*
 * Renames from to to (flags: 0 or RENAME_NOREPLACE) in one revision: the source compared by its
 * mod revision, the target by its mod revision (replaced) or version 0; a directory moves with
 * every key under it by one move of their prefix (STORE_OP_MOVE), whatever their number, guarded
 * by one compare over the tree (no key of it changed since the store's revision now); the
 * attributes of the source and of its tree move the same way, those of a replaced target go;
 * both parents are touched. -ENOENT, -EINVAL (into itself, other flags), -EEXIST, -ENOTDIR,
 * -EISDIR, -ENOTEMPTY, -ENAMETOOLONG (a key of the tree would be too long), -EIO.
 *
 * flags RENAME_EXCHANGE: from and to (files, directories, or one of each) trade places in one
 * revision: both compared by their mod revision, each directory's tree guarded as a rename's;
 * both keys deleted and put again with the other's value, metadata (ctime now) and lease, so each
 * name is a new generation; the trees and the attributes trade places by STORE_OP_SWAP of their
 * prefixes, whatever their size; both parents touched. -ENOENT (either missing), -EINVAL (one
 * under the other, any other flag with it), -ENAMETOOLONG, -EIO.
 */
int fs__txn_rename(struct fs_txn *tb, const struct fs_txn_view *v, const char *from,
		   const char *to, unsigned flags, int64_t now);

/*
 * Changes path's attributes as setattr asks (a and to_set, FUSE_SET_ATTR_*); ctime is now. The
 * value is truncated or zero-extended to a->st_size with FUSE_SET_ATTR_SIZE (-EISDIR, -EFBIG above
 * max_value), or is buffered (a writable handle's content, committed along) when not NULL. The
 * key is compared by its mod revision; a file created here and not committed yet (mod revision
 * 0) is created by it, its parent touched. -ENOENT.
 */
int fs__txn_setattr(struct fs_txn *tb, const struct fs_txn_view *v, const char *path,
		    const struct stat *a, int to_set, const struct fs_txn_content *buffered,
		    size_t max_value, int64_t now);

/*
 * Sets (value[size]; on the file's lease) or removes (value NULL) path's stored attribute name
 * (a user.* name the caller checked) while path exists (version compared, but for the root).
 * flags: XATTR_CREATE (the attribute's version compared with 0) or XATTR_REPLACE (and any
 * removal: compared greater than 0).
 */
int fs__txn_xattr(struct fs_txn *tb, const struct fs_txn_view *v, const char *path,
		  const char *name, const void *value, size_t size, int flags);

/*
 * Attaches the file at path to lease id (0: detaches it), its stored attributes with it, values
 * kept (ignore_value), so a revoke or expiry deletes them all in one revision on every member.
 * -EPERM for the root and directories, -ENOENT, -E2BIG, -EIO.
 */
int fs__txn_lease(struct fs_txn *tb, const struct fs_txn_view *v, const char *path, int64_t id);

#endif
