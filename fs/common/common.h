/*
 * common/common.h: what every part of the daemon uses: one-line log records (common/log.c), the
 * one error space (common/error.c) and the two clocks (common/clock.c).
 */
#ifndef RAFTFS_FS_COMMON_COMMON_H
#define RAFTFS_FS_COMMON_COMMON_H

#include <stdint.h>


/*
 * raftfs's log lines, one per event: "TIME LEVEL MEMBER: message".
 *
 * TIME is UTC with milliseconds (2026-11-22T21:00:00.123Z), LEVEL one of DEBUG INFO WARN ERROR
 * FATAL, MEMBER the member's name (or "raftfs" before it has one). The end-to-end harness treats
 * ERROR and FATAL lines as test failures unless a test expects them. The level is checked before
 * the arguments are evaluated, so a DEBUG line costs one comparison when debug logging is off.
 * Thread-safe: each line is written with one write(2).
 */

enum fs_log_level {
	FS_LOG_DEBUG,
	FS_LOG_INFO,
	FS_LOG_WARN,
	FS_LOG_ERROR,
	FS_LOG_FATAL,
};

extern enum fs_log_level fs__log_min; /* lines below this level are dropped */

/* Parses "debug", "info", "warn", "error" (as --log-level takes them); -EINVAL otherwise. */
int fs_log_parse_level(const char *s, enum fs_log_level *out);

/* Sets the minimum level and the member name printed on every line (copied). */
void fs_log_setup(enum fs_log_level min, const char *member);

/* Writes to fd instead of stderr (tests); returns the previous fd. */
int fs_log_set_fd(int fd);

void fs__log(enum fs_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define FS_LOG(level, ...)                                                                         \
	do {                                                                                       \
		if ((level) >= fs__log_min)                                                        \
			fs__log((level), __VA_ARGS__);                                             \
	} while (0)
#define FS_DEBUG(...) FS_LOG(FS_LOG_DEBUG, __VA_ARGS__)
#define FS_INFO(...)  FS_LOG(FS_LOG_INFO, __VA_ARGS__)
#define FS_WARN(...)  FS_LOG(FS_LOG_WARN, __VA_ARGS__)
#define FS_ERROR(...) FS_LOG(FS_LOG_ERROR, __VA_ARGS__)
#define FS_FATAL(...) FS_LOG(FS_LOG_FATAL, __VA_ARGS__)

/*
 * The daemon's one error space. Every function of fs/ that can fail returns 0
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

/* Errors of the member (fs/member/member.c). */
enum {
	FS_ETOOMANYREQUESTS = -3001, /* committed runs too far ahead of applied: back off */
	FS_ESTOPPING = -3002,        /* the member is shutting down */
	FS_EREMOVED = -3003,         /* this member was removed from the cluster */
};

/* Errors of the state machine (fs/member/kv.c). */
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

/*
 * The clocks. The wall clock (CLOCK_REALTIME, nanoseconds since the epoch) dates things: file
 * times, request ids. The monotonic clock (CLOCK_MONOTONIC, milliseconds from an arbitrary
 * start, the same for every process of this machine) measures intervals: lease expiry and every
 * schedule. A wall clock stepped forward or back (NTP, an administrator) must never expire a lease
 * early or keep one alive late, which is why no interval is measured on it (etcd's lessor uses
 * Go's monotonic reading for the same reason).
 */
int64_t fs_clock_wall_ns(void);
int64_t fs_clock_mono_ms(void);

#endif
