/*
 * clock.c: the daemon's two clocks (see common/common.h).
 *
 * The wall clock dates things (file times, request ids, log lines); it may jump when an
 * administrator or NTP steps it. The monotonic clock measures intervals (lease expiry, renewal
 * schedules); it never jumps, so a stepped wall clock can neither expire a lease early nor keep
 * one past its TTL.
 */
#include "common/common.h"

#include <time.h>

int64_t fs_clock_wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t fs_clock_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
