/*
 * daemon/daemon.h: `raftfs mount` returns once the mount is live, unless -f keeps it in the
 * foreground.
 *
 * fs_daemon_start forks before anything else starts (no loop, no threads yet): the parent waits on
 * a pipe and exits 0 when the child says the mount is live, or 1 when the child dies or reports a
 * failure first; the child goes on in a new session. Until it is ready, the child's stderr is still
 * the user's terminal, so start-up errors are seen where the command was typed; at ready it moves
 * stderr to the log file.
 */
#ifndef RAFTFS_FS_DAEMON_DAEMON_H
#define RAFTFS_FS_DAEMON_DAEMON_H

#include <stdio.h>

/*
 * In the foreground (foreground != 0) does nothing and sets *ready_fd to -1. Otherwise forks: the
 * parent never returns (it exits 0 or 1 as above); the child returns 0 with *ready_fd set. -errno
 * when the fork or pipe fails.
 */
int fs_daemon_start(int foreground, int *ready_fd);

/*
 * Tells the waiting parent that the mount is live, and sends stderr (and stdout) to log_path
 * (appending; NULL keeps them). Closes ready_fd. Nothing when ready_fd is -1.
 */
void fs_daemon_ready(int ready_fd, const char *log_path);

/*
 * The subcommands the daemon implements (daemon/server.c), called by the command line (cli/) with
 * the subcommand's own argv (argv[0] is the subcommand word); each returns an FS_EXIT_* status.
 *   mount:   parses the flags, daemonizes (fs_daemon_start), runs a member serving its mount until
 *            it is unmounted, stopped by a signal or removed from the cluster;
 *   umount:  unmounts a raftfs mount cleanly (leadership handed over first);
 *   restore: makes a data dir the first member of a new cluster from a store image.
 */
int fs_server_mount(int argc, char **argv, FILE *out, FILE *err);
int fs_server_umount(int argc, char **argv, FILE *out, FILE *err);
int fs_server_restore(int argc, char **argv, FILE *out, FILE *err);

#endif
