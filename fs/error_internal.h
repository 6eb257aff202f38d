/*
 * error_internal.h: the daemon's one error space. Every function of fs/ that can fail returns 0
 * or a negative code, told apart by range:
 *
 *   -1 .. -999        a negative errno value
 *   -1001 .. -1099    raft's RAFT_E* (raft.h)
 *   -2001 .. -2099    the store's STORE_E* (store.h)
 *   -3001 .. -3099    the member's FS_E* (below)
 *   -3101 .. -3199    the state machine's FS_KV_E* (below)
 *
 * fs_strerror names any of them for a log line or a command's answer; fs_errno maps one to the
 * errno a FUSE reply carries. Nothing else tests ranges by hand.
 */
#ifndef RAFTFS_FS_ERROR_INTERNAL_H
#define RAFTFS_FS_ERROR_INTERNAL_H

/* Errors of the member (fs/member.c). */
enum {
	FS_ETOOMANYREQUESTS = -3001, /* committed runs too far ahead of applied: back off */
	FS_ESTOPPING = -3002,        /* the member is shutting down */
	FS_EREMOVED = -3003,         /* this member was removed from the cluster */
};

/* Errors of the state machine (fs/kv.c). */
#define FS_KV_ECORRUPT (-3101) /* the CORRUPT alarm is raised: writes are refused */

/* Whether err is a negative errno value (as the WAL's failures are, with wal_errmsg's detail). */
static inline int fs_err_is_errno(int err)
{
	return err < 0 && err > -1000;
}

/* A static message for err, any code above (0: "success"). */
const char *fs_strerror(int err);

/* The errno (positive) a FUSE reply carries for err, any code above (0 for 0). */
int fs_errno(int err);

#endif
