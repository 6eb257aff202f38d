/*
 * cli_internal.h: the subcommands of the raftfs command that live outside cli.c. Each takes the
 * subcommand's own argv (argv[0] is the subcommand word) and returns an FS_EXIT_* status.
 */
#ifndef RAFTFS_FS_CLI_INTERNAL_H
#define RAFTFS_FS_CLI_INTERNAL_H

#include <stdio.h>

int fs_cli_mount(int argc, char **argv, FILE *out, FILE *err);
int fs_cli_umount(int argc, char **argv, FILE *out, FILE *err);

#endif
