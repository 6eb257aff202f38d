/*
 * wal.h: the public interface of raftfs's write-ahead log and snapshot files.
 *
 * Records use etcd's WAL framing (wal/FORMAT.md): a length word, a protobuf record
 * {type, crc, data} and padding to 8 bytes, every record's CRC-32C chained from the one before.
 * The log is a directory of segments `%016x-%016x.wal` (sequence, first index), each preallocated
 * and cut when full; snapshots are files `%016x-%016x.snap` (term, index) in a directory of their
 * own. A member process calls, in order: wal_dir_lock() on its data dir; wal_snap_load() for the
 * newest valid snapshot; wal_open() at that snapshot (or wal_create() the first time);
 * wal_read_all(); then wal_save() for every raft Ready, from any thread.
 *
 * Functions return 0 or a negative errno value. WAL_ECORRUPT (-EBADMSG) always means "the data
 * on disk is damaged" (a crc mismatch or an undecodable record before the tail); after any failing
 * call, wal_errmsg() explains which file and offset failed.
 */
#ifndef RAFTFS_WAL_H
#define RAFTFS_WAL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Corruption of the data on disk: the member must refuse to start. */
#define WAL_ECORRUPT (-EBADMSG)

/* Record types (the `type` field of every record; part of the on-disk format). */
enum {
	WAL_REC_METADATA = 1, /* the opaque metadata given to wal_create, once per segment */
	WAL_REC_ENTRY = 2,    /* one raftpb.Entry */
	WAL_REC_STATE = 3,    /* one raftpb.HardState */
	WAL_REC_CRC = 4,      /* the running crc, first record of every segment */
	WAL_REC_SNAPSHOT = 5, /* walpb.Snapshot {index, term}: a snapshot was taken there */
};

/* The default size a segment is preallocated to and cut at: 64 MiB. */
#define WAL_SEGMENT_SIZE (64u * 1024 * 1024)
/* How many segment and snapshot files purging keeps by default. */
#define WAL_KEEP_DEFAULT 5

/* One raft log entry. The data is borrowed: wal_save copies it; entries from wal_read_all own theirs
 * until wal_read_result_free. */
struct wal_entry {
	uint64_t term;    /* the term the entry was proposed in */
	uint64_t index;   /* its log index, >= 1 */
	int type;         /* raftpb.EntryType: 0 normal, 1 conf change */
	const void *data; /* the payload, len bytes (may be NULL when len is 0) */
	size_t len;       /* payload length */
};

/* raft's persistent state: what must be on disk before a vote or an acknowledgement. */
struct wal_hard_state {
	uint64_t term;   /* current term */
	uint64_t vote;   /* the member voted for in term, 0 for none */
	uint64_t commit; /* highest index known committed */
};

/* Where a snapshot was taken: the last log index it covers and that entry's term. */
struct wal_snapshot_ref {
	uint64_t index;
	uint64_t term;
};

/* Options for wal_create and wal_open; NULL or zeroed fields mean the defaults. */
struct wal_options {
	uint64_t segment_size; /* preallocation and cut size in bytes, 0 for WAL_SEGMENT_SIZE */
};

/* What wal_read_all hands over. Everything here is owned by the struct: free with
 * wal_read_result_free. */
struct wal_read_result {
	void *metadata;                  /* the metadata given to wal_create (malloc'd) */
	size_t metadata_len;             /* its length */
	struct wal_hard_state hard;      /* the newest hard state saved, zero if none */
	int has_hard;                    /* 1 when a hard state record was read */
	struct wal_entry *entries;       /* entries after the snapshot, index ascending, no gaps */
	size_t n_entries;                /* how many */
};

/* An open log, owned by the caller from wal_create/wal_open until wal_close. */
struct wal;

/*
 * ======================================= the log =================================================
 */

/*
 * Creates the log directory dir (it must not hold a log yet; it is created when missing) with its
 * first segment holding the crc, metadata and an empty snapshot record, all synced, and returns
 * it open for appending in *out (no wal_read_all needed). metadata is copied.
 * Errors: -EEXIST when dir already holds a log; I/O errors.
 */
int wal_create(const char *dir, const void *metadata, size_t metadata_len,
	       const struct wal_options *opt, struct wal **out);

/* 1 when dir holds a log (at least one segment), else 0: whether to wal_create or wal_open. */
int wal_exists(const char *dir);

/*
 * Opens the log in dir to continue from the snapshot at (use {0, 0} with no snapshot): reads and
 * checks every record of the segments from the one holding at.index on, truncates a torn or
 * zero-filled tail of the last segment back to its last whole record (logging how many bytes went,
 * naming file and offset), and keeps what it read for wal_read_all. The log is then ready for
 * wal_save. Errors: WAL_ECORRUPT naming file and offset (crc mismatch, undecodable record, entry
 * gap, metadata mismatch, snapshot term mismatch), -ENOENT when no segment or no snapshot record
 * matching at is found, I/O errors. On error *out is untouched.
 */
int wal_open(const char *dir, struct wal_snapshot_ref at, const struct wal_options *opt,
	     struct wal **out);

/*
 * Hands over what wal_open read: metadata, the newest hard state, and the entries after the
 * snapshot (an entry at an index already seen replaces it and everything after it). Ownership of
 * everything in *res passes to the caller (wal_read_result_free). Callable once per open;
 * afterwards, or after wal_create, it returns an empty result.
 */
int wal_read_all(struct wal *w, struct wal_read_result *res);

/* Frees what a wal_read_result owns and zeroes it. */
void wal_read_result_free(struct wal_read_result *res);

/*
 * Appends the hard state (NULL for none) and n entries (copied) as one write, cutting to a new
 * segment when the current one is full. With must_sync the call returns only once the records are
 * durable: calls from several threads that arrive while an fdatasync is running share the next
 * one (group commit). Thread-safe: each call's records are written as one unit, in the order the
 * calls take the log's lock, so callers saving entries from several threads must order those calls
 * themselves (the member saves from its loop, in Ready order, and may wait for the sync elsewhere:
 * wal_save(..., 0) on the loop, then wal_sync() off it). An entry at an index <= a previous one
 * replaces the old ones from that index on (as raft does when a follower's log is overwritten).
 * Errors: -ENOSPC and other write errors fail this save only and leave the log valid (nothing of
 * it counts as written). A failed fdatasync/fsync is fatal: the fatal handler runs (by default
 * logs and exits with status 1); if a test handler returns, the save returns -EIO and the log
 * refuses every later save.
 */
int wal_save(struct wal *w, const struct wal_hard_state *hs, const struct wal_entry *ents,
	     size_t n, int must_sync);

/* Appends a snapshot record {index, term} and syncs it (call after the snapshot file is saved,
 * before purging). Thread-safe. Errors as wal_save. */
int wal_save_snapshot(struct wal *w, struct wal_snapshot_ref snap);

/* Syncs everything appended so far (joining an fdatasync in flight when it covers it). */
int wal_sync(struct wal *w);

/* The index of the last entry appended or read (the snapshot index when there is none). */
uint64_t wal_last_index(struct wal *w);

/* Syncs and closes the log and frees w. Returns the sync's result. */
int wal_close(struct wal *w);

/*
 * Deletes the oldest segments of the log in dir while more than keep (0 for WAL_KEEP_DEFAULT)
 * remain and every entry of the segment is at an index <= upto (a snapshot covers it): i.e. the next
 * segment starts at or below upto + 1. Safe while the log is open (the last segment is never
 * deleted). *removed (may be NULL) gets how many went.
 */
int wal_purge(const char *dir, uint64_t upto, unsigned keep, unsigned *removed);

/*
 * ===================================== snapshot files ============================================
 */

/* A snapshot file found by wal_snap_list. */
struct wal_snap_info {
	uint64_t term;
	uint64_t index;
	uint64_t bytes; /* the file's size */
};

/*
 * Writes data (borrowed, the raft snapshot bytes; the store image in it is already compressed) to
 * dir/%016x-%016x.snap (term, index) as {crc, data}: temp file, fsync, rename, fsync of dir. dir
 * is created when missing.
 */
int wal_snap_save(const char *dir, uint64_t term, uint64_t index, const void *data, size_t len);
/* As wal_snap_save, the data being the n pieces of iov (borrowed) one after the other: nothing
   is copied to put them together. */
int wal_snap_savev(const char *dir, uint64_t term, uint64_t index, const struct iovec *iov,
		   int n);

/*
 * Loads the newest snapshot in dir whose crc is right. A file that fails is renamed to *.broken
 * (with a log line) and the next newest is tried. On success *data (malloc'd, the caller frees
 * it), *len, *term and *index are set. -ENOENT when there is no valid snapshot.
 */
int wal_snap_load(const char *dir, void **data, size_t *len, uint64_t *term, uint64_t *index);

/*
 * Lists the snapshot files in dir, newest (highest index) first, into *out (malloc'd, the caller
 * frees it; NULL when *n is 0). A missing dir lists nothing.
 */
int wal_snap_list(const char *dir, struct wal_snap_info **out, size_t *n);

/* Deletes all but the newest keep (0 for WAL_KEEP_DEFAULT) snapshot files (*.broken files stay
 * for a human to look at). */
int wal_snap_purge(const char *dir, unsigned keep, unsigned *removed);

/*
 * ================================ data dir lock, errors, hooks ===================================
 */

/*
 * Locks data_dir (creating it and its `lock` file when missing) for this process: flock on the
 * lock file, which then holds our pid. *fd gets the lock's descriptor, released by
 * wal_dir_unlock or at exit. -EWOULDBLOCK when another process (or descriptor) holds it: the
 * message says "data dir D in use by pid N".
 */
int wal_dir_lock(const char *data_dir, int *fd);
void wal_dir_unlock(int fd);

/* The message of the last failing call on this thread (naming file and offset), "" if none. The
 * string is thread-local, valid until the next wal_ call on this thread. */
const char *wal_errmsg(void);

/* Where log lines go (a line, no trailing newline). NULL restores the default: stderr. */
void wal_set_log(void (*fn)(void *arg, const char *line), void *arg);

/* What runs when an fsync/fdatasync fails. The default logs the message and calls exit(1); a test
 * may install one that returns, and the failing call then returns -EIO. NULL restores it. */
void wal_set_fatal(void (*fn)(const char *msg));

/*
 * CRC-32C (Castagnoli) of buf[0..len), continued from crc (0 to start). Same convention as Go's
 * crc32.Update, which etcd's WAL uses to chain record checksums: wal_crc32c(wal_crc32c(0, a), b) is
 * the checksum of a followed by b.
 */
uint32_t wal_crc32c(uint32_t crc, const void *buf, size_t len);

/*
 * ============================= fault injection (tests only) ======================================
 * The durability syscalls go through a table (SQLite style): a test makes the nth next call of one
 * of them fail with err, once or (persistent) on every call from then on. Process-wide.
 */
enum wal_sys {
	WAL_SYS_OPEN,
	WAL_SYS_WRITE, /* pwrite */
	WAL_SYS_FDATASYNC,
	WAL_SYS_FSYNC,
	WAL_SYS_RENAME,
	WAL_SYS_FALLOCATE,
	WAL_SYS_COUNT_
};

/* Makes the nth (1 = next) call of sys fail with errno err; persistent keeps failing after it. */
void wal_fault_set(enum wal_sys sys, unsigned nth, int err, int persistent);
/* Clears every fault. */
void wal_fault_clear(void);
/* How many calls of sys were made since the process started (or the last wal_fault_clear). */
unsigned long wal_fault_calls(enum wal_sys sys);

#endif
