/*
 * fs.h: the public interface of raftfs's member daemon and command line (fs/).
 *
 * fs/ wires raft/, wal/ and store/ into a running member, serves the FUSE mount and implements the
 * `raftfs` command. Functions return 0 or a negative errno value unless they say otherwise.
 */
#ifndef RAFTFS_FS_H
#define RAFTFS_FS_H

#include <stdio.h>

/* Exit statuses of the raftfs command. */
enum {
	FS_EXIT_OK = 0,      /* success */
	FS_EXIT_FAILURE = 1, /* a runtime failure */
	FS_EXIT_USAGE = 2,   /* a usage error, reported on err */
};

/*
 * Runs the raftfs command line: argv[0] is the program name, argv[1] a subcommand or a global flag
 * (--help, --version). Normal output goes to out, errors and usage errors to err; the caller keeps
 * ownership of both streams. Returns an FS_EXIT_* status.
 */
int fs_cli_main(int argc, char **argv, FILE *out, FILE *err);

#endif
