/*
 * test_faults.c: the syscall fault table failing write, fdatasync, fsync, rename, fallocate and open
 * on the nth call, and what the log does then: ENOSPC fails that save only and the log stays valid;
 * a failed fdatasync is fatal (the hook runs; the default one exits non-zero, checked in a child);
 * a failed cut is retried and loses nothing.
 */
#include <sys/wait.h>

#include "wal_test_util.h"

#define SMALL_SEG (16 * 1024)

static int fatal_calls;
static char fatal_msg[1024];

static void fatal_hook(const char *msg)
{
	fatal_calls++;
	snprintf(fatal_msg, sizeof fatal_msg, "%s", msg);
}

static void setup(void)
{
	wal_fault_clear();
	fatal_calls = 0;
	fatal_msg[0] = 0;
	wal_set_fatal(fatal_hook);
	tu_log_reset();
}

static void teardown(void)
{
	wal_fault_clear();
	wal_set_fatal(NULL);
	wal_set_log(NULL, NULL);
}

/* Saves entries [from, to] of term, one per save, data "<index>:<salt>". */
static int save_some(struct wal *w, uint64_t from, uint64_t to, uint64_t term, int salt)
{
	for (uint64_t i = from; i <= to; i++) {
		char buf[400];
		memset(buf, 'a' + (int)(i % 26), sizeof buf);
		int n = snprintf(buf, sizeof buf, "%" PRIu64 ":%d", i, salt);
		buf[n] = '.';
		struct wal_entry e = {term, i, 0, buf, 300};
		struct wal_hard_state hs = {term, 0, i};
		int r = wal_save(w, &hs, &e, 1, 1);
		if (r != 0)
			return r;
	}
	return 0;
}

/* Checks the log in dir holds entries 1..n, those from `from` on with salt2, before it salt1. */
static void check_log(const char *dir, uint64_t n, uint64_t from, int salt1, int salt2)
{
	struct wal *w;
	struct wal_options o = {SMALL_SEG};
	struct wal_snapshot_ref zero = {0, 0};
	int r = wal_open(dir, zero, &o, &w);
	if (r != 0)
		CHECK_FAIL("wal_open: %d %s", r, wal_errmsg());
	struct wal_read_result res;
	wal_read_all(w, &res);
	CHECK_EQ(res.n_entries, n);
	for (size_t k = 0; k < n; k++) {
		char want[64];
		int wl = snprintf(want, sizeof want, "%zu:%d.", k + 1, k + 1 >= from ? salt2 : salt1);
		CHECK_EQ(res.entries[k].index, k + 1);
		CHECK_MEM_EQ(res.entries[k].data, want, (size_t)wl);
	}
	wal_read_result_free(&res);
	CHECK_EQ(wal_close(w), 0);
}

CHECK_TEST(enospc_on_append_fails_that_save_only)
{
	setup();
	char *dir = tu_tmpdir();
	struct wal *w;
	struct wal_options o = {SMALL_SEG};
	CHECK_EQ(wal_create(dir, "m", 1, &o, &w), 0);
	CHECK_EQ(save_some(w, 1, 5, 1, 0), 0);
	wal_fault_set(WAL_SYS_WRITE, 1, ENOSPC, 1);
	CHECK_EQ(save_some(w, 6, 6, 1, 1), -ENOSPC);
	CHECK(strstr(wal_errmsg(), "cannot append") != NULL);
	CHECK_EQ(save_some(w, 6, 6, 1, 1), -ENOSPC);
	wal_fault_clear(); /* space is back */
	CHECK_EQ(save_some(w, 6, 30, 1, 2), 0); /* and across a cut */
	CHECK_EQ(fatal_calls, 0);
	CHECK_EQ(wal_close(w), 0);
	check_log(dir, 30, 6, 0, 2);
	tu_rmdir(dir);
	teardown();
}

CHECK_TEST(failed_fdatasync_is_fatal)
{
	setup();
	char *dir = tu_tmpdir();
	struct wal *w;
	CHECK_EQ(wal_create(dir, "m", 1, NULL, &w), 0);
	CHECK_EQ(save_some(w, 1, 3, 1, 0), 0);
	wal_fault_set(WAL_SYS_FDATASYNC, 1, EIO, 0);
	CHECK_EQ(save_some(w, 4, 4, 1, 0), -EIO);
	CHECK_EQ(fatal_calls, 1);
	CHECK(strstr(fatal_msg, "fdatasync") != NULL);
	/* Never carry on: every later call fails, without another sync. */
	CHECK_EQ(save_some(w, 5, 5, 1, 0), -EIO);
	struct wal_snapshot_ref s = {1, 1};
	CHECK_EQ(wal_save_snapshot(w, s), -EIO);
	CHECK_EQ(wal_close(w), -EIO);
	tu_rmdir(dir);
	teardown();
}

static struct wal *child_wal; /* reachable, so the child's exit reports no leak */
static char child_dir[512];

CHECK_TEST(default_fatal_handler_exits_non_zero)
{
	char *dir = tu_tmpdir();
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		snprintf(child_dir, sizeof child_dir, "%s", dir);
		free(dir);
		wal_set_fatal(NULL);
		wal_set_log(NULL, NULL);
		if (wal_create(child_dir, "m", 1, NULL, &child_wal) != 0)
			_exit(3);
		struct wal *w = child_wal;
		wal_fault_set(WAL_SYS_FDATASYNC, 1, EIO, 0);
		save_some(w, 1, 1, 1, 0);
		_exit(0); /* carried on: wrong */
	}
	int st;
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st));
	CHECK_EQ(WEXITSTATUS(st), 1);
	tu_rmdir(dir);
}

CHECK_TEST(failed_cut_is_retried_and_loses_nothing)
{
	static const enum wal_sys which[] = {WAL_SYS_RENAME, WAL_SYS_FALLOCATE, WAL_SYS_OPEN};
	for (size_t i = 0; i < sizeof which / sizeof which[0]; i++) {
		setup();
		char *dir = tu_tmpdir();
		struct wal *w;
		struct wal_options o = {SMALL_SEG};
		CHECK_EQ(wal_create(dir, "m", 1, &o, &w), 0);
		CHECK_EQ(save_some(w, 1, 40, 1, 0), 0); /* > 16 KiB: cut at least once */
		/* Appending makes none of these calls: the next one is the next cut's. */
		unsigned long before = wal_fault_calls(which[i]);
		wal_fault_set(which[i], 1, which[i] == WAL_SYS_FALLOCATE ? ENOSPC : EIO, 0);
		CHECK_EQ(save_some(w, 41, 120, 1, 0), 0);
		CHECK_GT(wal_fault_calls(which[i]), before);
		CHECK_GE(tu_log_lines, 1);
		CHECK(strstr(tu_log_buf, "cut retried") != NULL);
		CHECK_EQ(fatal_calls, 0);
		CHECK_EQ(wal_close(w), 0);
		char cmd[600];
		snprintf(cmd, sizeof cmd, "ls %s | grep -q tmp", dir);
		CHECK(system(cmd) != 0); /* no temp file left */
		check_log(dir, 120, 121, 0, 0);
		tu_rmdir(dir);
		teardown();
	}
}

CHECK_TEST(failed_dir_fsync_at_cut_is_fatal)
{
	setup();
	char *dir = tu_tmpdir();
	struct wal *w;
	struct wal_options o = {SMALL_SEG};
	CHECK_EQ(wal_create(dir, "m", 1, &o, &w), 0);
	wal_fault_set(WAL_SYS_FSYNC, 1, EIO, 0);
	int r = save_some(w, 1, 100, 1, 0);
	CHECK_EQ(r, -EIO);
	CHECK_EQ(fatal_calls, 1);
	CHECK(strstr(fatal_msg, "fsync") != NULL);
	wal_close(w);
	tu_rmdir(dir);
	teardown();
}

CHECK_TEST(failed_create_leaves_nothing)
{
	setup();
	char *dir = tu_tmpdir();
	struct wal *w;
	wal_fault_set(WAL_SYS_RENAME, 1, EIO, 0);
	CHECK_EQ(wal_create(dir, "m", 1, NULL, &w), -EIO);
	CHECK(strstr(wal_errmsg(), "rename") != NULL);
	wal_fault_set(WAL_SYS_WRITE, 1, ENOSPC, 0);
	CHECK_EQ(wal_create(dir, "m", 1, NULL, &w), -ENOSPC);
	wal_fault_set(WAL_SYS_FALLOCATE, 1, ENOSPC, 0);
	CHECK_EQ(wal_create(dir, "m", 1, NULL, &w), -ENOSPC);
	CHECK(strstr(wal_errmsg(), "preallocate") != NULL);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s)\"", dir);
	CHECK_EQ(system(cmd), 0);
	CHECK_EQ(wal_create(dir, "m", 1, NULL, &w), 0);
	CHECK_EQ(save_some(w, 1, 2, 1, 0), 0);
	CHECK_EQ(wal_close(w), 0);
	/* A failing open while reading is reported with the file's name. */
	wal_fault_set(WAL_SYS_OPEN, 1, EMFILE, 0);
	struct wal_snapshot_ref zero = {0, 0};
	CHECK_EQ(wal_open(dir, zero, NULL, &w), -EMFILE);
	CHECK(strstr(wal_errmsg(), ".wal") != NULL);
	check_log(dir, 2, 3, 0, 0);
	tu_rmdir(dir);
	teardown();
}

CHECK_TEST(snapshot_save_faults)
{
	setup();
	char *dir = tu_tmpdir();
	const char *sd = tu_path(dir, "snap");
	char snapdir[512];
	snprintf(snapdir, sizeof snapdir, "%s", sd);
	wal_fault_set(WAL_SYS_RENAME, 1, EIO, 0);
	CHECK_EQ(wal_snap_save(snapdir, 1, 10, "abc", 3), -EIO);
	wal_fault_set(WAL_SYS_WRITE, 1, ENOSPC, 0);
	CHECK_EQ(wal_snap_save(snapdir, 1, 10, "abc", 3), -ENOSPC);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s)\"", snapdir);
	CHECK_EQ(system(cmd), 0);
	wal_fault_set(WAL_SYS_FSYNC, 1, EIO, 0);
	CHECK_EQ(wal_snap_save(snapdir, 1, 10, "abc", 3), -EIO);
	CHECK_EQ(fatal_calls, 1);
	wal_fault_clear();
	CHECK_EQ(wal_snap_save(snapdir, 1, 10, "abc", 3), 0);
	void *data;
	size_t len;
	uint64_t term, index;
	CHECK_EQ(wal_snap_load(snapdir, &data, &len, &term, &index), 0);
	CHECK_EQ(len, 3);
	free(data);
	tu_rmdir(dir);
	teardown();
}

CHECK_SUITE("wal-faults", CHECK_CASE(enospc_on_append_fails_that_save_only),
	    CHECK_CASE(failed_fdatasync_is_fatal), CHECK_CASE(default_fatal_handler_exits_non_zero),
	    CHECK_CASE(failed_cut_is_retried_and_loses_nothing),
	    CHECK_CASE(failed_dir_fsync_at_cut_is_fatal), CHECK_CASE(failed_create_leaves_nothing),
	    CHECK_CASE(snapshot_save_faults))
