/*
 * cli/cli.h: the subcommands of the raftfs command that live outside cli.c. Each takes the
 * subcommand's own argv (argv[0] is the subcommand word) and returns an FS_EXIT_* status.
 */
#ifndef RAFTFS_FS_CLI_CLI_H
#define RAFTFS_FS_CLI_CLI_H

#include <stdio.h>

/* fs/cli/cli_cluster.c: operating a cluster through MOUNT/.raftfs/ctl. */
int fs_cli_status(int argc, char **argv, FILE *out, FILE *err);
int fs_cli_member(int argc, char **argv, FILE *out, FILE *err);
int fs_cli_lease(int argc, char **argv, FILE *out, FILE *err);
int fs_cli_compact(int argc, char **argv, FILE *out, FILE *err);
int fs_cli_snapshot(int argc, char **argv, FILE *out, FILE *err);
int fs_cli_alarm(int argc, char **argv, FILE *out, FILE *err);
int fs_cli_watch(int argc, char **argv, FILE *out, FILE *err);
int fs_cli_get(int argc, char **argv, FILE *out, FILE *err);
int fs_cli_put(int argc, char **argv, FILE *out, FILE *err);

#endif
