/*
 * log.c: formats and writes raftfs's one-line log records (see common/log.h for the format).
 */
#include "common/common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

enum fs_log_level fs__log_min = FS_LOG_INFO;
static char log_member[64] = "raftfs"; /* set once at start-up, before threads */
static int log_fd = STDERR_FILENO;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR", "FATAL"};

int fs_log_parse_level(const char *s, enum fs_log_level *out)
{
	for (int i = FS_LOG_DEBUG; i <= FS_LOG_FATAL; i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum fs_log_level)i;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = FS_LOG_WARN;
		return 0;
	}
	return -EINVAL;
}

void fs_log_setup(enum fs_log_level min, const char *member)
{
	fs__log_min = min;
	if (member)
		snprintf(log_member, sizeof log_member, "%s", member);
}

int fs_log_set_fd(int fd)
{
	int old = log_fd;
	log_fd = fd;
	return old;
}

void fs__log(enum fs_log_level level, const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], log_member);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof line - 2)
		len = sizeof line - 2; /* cut: the line still ends in a newline */
	line[len++] = '\n';
	ssize_t w;
	do
		w = write(log_fd, line, len);
	while (w < 0 && errno == EINTR);
}
