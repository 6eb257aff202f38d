/* test_daemon.c: `raftfs mount` detaches only once ready; a child that dies first fails it. */
#include "check.h"
#include "daemon/daemon.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * Runs the command side in a child: it calls fs_daemon_start; its daemon then either says ready
 * (after writing log text) or dies with status 3. Returns the command's exit status.
 */
static int run_command(int daemon_ready, const char *log_path, const char *marker)
{
	pid_t pid = fork();
	CHECK_GE(pid, 0);
	if (pid == 0) {
		int ready_fd;
		if (fs_daemon_start(0, &ready_fd) != 0)
			_exit(9);
		/* the daemon, in a new session */
		if (getsid(0) != getpid())
			_exit(8);
		if (!daemon_ready)
			_exit(3);
		fs_daemon_ready(ready_fd, log_path);
		fprintf(stderr, "logged after ready\n");
		int fd = open(marker, O_WRONLY | O_CREAT, 0600);
		close(fd);
		_exit(0);
	}
	int status;
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	return WEXITSTATUS(status);
}

CHECK_TEST(returns_zero_once_ready_and_logs_to_the_file)
{
	char dir[] = "/tmp/rfs-daemon-XXXXXX", log[64], marker[64];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(log, sizeof log, "%s/raftfs.log", dir);
	snprintf(marker, sizeof marker, "%s/done", dir);
	CHECK_EQ(run_command(1, log, marker), 0);
	/* The daemon goes on after the command returned: wait for its marker. */
	for (int i = 0; i < 500 && access(marker, F_OK) != 0; i++)
		usleep(10000);
	CHECK_EQ(access(marker, F_OK), 0);
	char buf[64] = "";
	FILE *f = fopen(log, "r");
	CHECK(f != NULL);
	CHECK(fgets(buf, sizeof buf, f) != NULL);
	fclose(f);
	CHECK_STR_EQ(buf, "logged after ready\n");
	unlink(log);
	unlink(marker);
	CHECK_EQ(rmdir(dir), 0);
}

CHECK_TEST(fails_when_the_daemon_dies_before_ready)
{
	CHECK_EQ(run_command(0, NULL, "/nonexistent/marker"), 1);
}

CHECK_TEST(foreground_does_not_fork)
{
	int fd = 123;
	pid_t me = getpid();
	CHECK_EQ(fs_daemon_start(1, &fd), 0);
	CHECK_EQ(fd, -1);
	CHECK_EQ(getpid(), me);
	fs_daemon_ready(fd, "/nonexistent/log"); /* a no-op in the foreground */
}

CHECK_SUITE("fs-daemon", CHECK_CASE(returns_zero_once_ready_and_logs_to_the_file),
	    CHECK_CASE(fails_when_the_daemon_dies_before_ready), CHECK_CASE(foreground_does_not_fork))
