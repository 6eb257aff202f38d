/*
 * log_internal.h: raftfs's log lines, one per event: "TIME LEVEL MEMBER: message".
 *
 * TIME is UTC with milliseconds (2026-11-22T21:00:00.123Z), LEVEL one of DEBUG INFO WARN ERROR
 * FATAL, MEMBER the member's name (or "raftfs" before it has one). The end-to-end harness treats
 * ERROR and FATAL lines as test failures unless a test expects them. The level is checked before
 * the arguments are evaluated, so a DEBUG line costs one comparison when debug logging is off.
 * Thread-safe: each line is written with one write(2).
 */
#ifndef RAFTFS_FS_LOG_INTERNAL_H
#define RAFTFS_FS_LOG_INTERNAL_H

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

#endif
