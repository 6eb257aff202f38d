/*
 * wal_internal.h: what the files of wal/ share and nothing outside wal/ may use: the record codec
 * (record.c: length-word framing and the hand-written protobuf encodings of Record, Entry,
 * HardState, walpb.Snapshot and the snapshot file), the syscall table (sys.c) and the log and
 * error helpers (sys.c).
 */
#ifndef RAFTFS_WAL_INTERNAL_H
#define RAFTFS_WAL_INTERNAL_H

#include "wal.h"

#include <stdarg.h>
#include <sys/types.h>

/* A decoded record; data points into the buffer it was decoded from. */
struct wal__rec {
	int64_t type;        /* WAL_REC_* (0 when absent) */
	uint32_t crc;        /* the running crc after this record's data */
	const uint8_t *data; /* the data field, NULL when absent */
	size_t len;          /* its length */
};

/* Bytes a whole frame takes: length word, encoded record, padding. */
size_t wal__frame_size(int64_t type, uint32_t crc, size_t data_len, int has_data);

/* Encodes a frame into out (wal__frame_size bytes, padding zeroed); returns the bytes written. */
size_t wal__frame_encode(uint8_t *out, int64_t type, uint32_t crc, const void *data, size_t len,
			 int has_data);

/* Results of wal__frame_decode besides 0. */
#define WAL__SHORT 1 /* the frame runs past the end of the buffer */
#define WAL__ZERO 2  /* a zero length word: the end of written data in a preallocated segment */

/*
 * Decodes the frame at buf[0..avail). Returns 0 with *rec and *frame_len (length word, record and
 * padding) set; WAL__SHORT; WAL__ZERO; or WAL_ECORRUPT when the length word's padding is
 * inconsistent or the record does not decode (*why then says what is wrong). Does not check crcs.
 */
int wal__frame_decode(const uint8_t *buf, size_t avail, struct wal__rec *rec, size_t *frame_len,
		      const char **why);

/* raftpb.Entry, all four fields always written (etcd's gogoproto layout). */
size_t wal__entry_size(const struct wal_entry *e);
size_t wal__entry_encode(uint8_t *out, const struct wal_entry *e);
int wal__entry_decode(const uint8_t *buf, size_t len, struct wal_entry *e);

/* raftpb.HardState, all three fields always written. */
size_t wal__hard_state_encode(uint8_t out[33], const struct wal_hard_state *hs);
int wal__hard_state_decode(const uint8_t *buf, size_t len, struct wal_hard_state *hs);

/* walpb.Snapshot {index = 1, term = 2}, both always written. */
size_t wal__snapref_encode(uint8_t out[22], struct wal_snapshot_ref s);
int wal__snapref_decode(const uint8_t *buf, size_t len, struct wal_snapshot_ref *s);

/*
 * The snapshot file body, snappb.Snapshot {uint32 crc = 1; bytes data = 2}: the header (crc and
 * the data's tag and length; its length, at most the max, is returned), then the data itself.
 */
#define WAL__SNAPFILE_HEADER_MAX 22
size_t wal__snapfile_header(uint8_t out[WAL__SNAPFILE_HEADER_MAX], uint32_t crc, size_t len);
int wal__snapfile_decode(const uint8_t *buf, size_t len, uint32_t *crc, const uint8_t **data,
			 size_t *data_len);

/* CRC-32C paths (crc32c.c): the portable slicing-by-8 one, and the SSE4.2 one when the CPU has it
 * (wal__crc32c_hw falls back to the portable one elsewhere). wal_crc32c picks at run time. */
uint32_t wal__crc32c_sw(uint32_t crc, const void *buf, size_t len);
uint32_t wal__crc32c_hw(uint32_t crc, const void *buf, size_t len);
int wal__crc32c_hw_available(void);

/* The syscall table (sys.c): each call counts, and fails when a fault says so (errno set). */
int wal__open(const char *path, int flags, mode_t mode);
ssize_t wal__pwrite(int fd, const void *buf, size_t len, off_t off);
int wal__fdatasync(int fd);
int wal__fsync(int fd);
int wal__rename(const char *from, const char *to);
int wal__fallocate(int fd, off_t len); /* returns 0 or an errno value, like posix_fallocate */

/* Writes all of buf at off (retrying short writes); 0 or -errno. */
int wal__pwrite_all(int fd, const void *buf, size_t len, off_t off);
/* fsyncs a directory; 0 or -errno. */
int wal__fsync_dir(const char *dir);

/* Log a line through the log hook (printf style). */
void wal__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Sets wal_errmsg() (printf style) and returns err. */
int wal__err(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Runs the fatal hook with a formatted message. */
void wal__fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
