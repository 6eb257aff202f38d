/*
 * cli.c: the `raftfs` command line: global flags, the subcommand table and the exit-status
 * contract (0 success, 1 runtime failure, 2 usage error with the message on stderr).
 */
#include "fs.h"

#include "cli/cli.h"
#include "daemon/daemon.h"
#include "fuse/face.h"

#include <string.h>

#ifndef RAFTFS_VERSION
#define RAFTFS_VERSION "unknown"
#endif

struct fs_cmd {
	const char *name;    /* the subcommand word */
	const char *args;    /* its arguments, for --help */
	const char *summary; /* one line for --help */
	int (*run)(int argc, char **argv, FILE *out, FILE *err); /* NULL: not built yet */
};

static const struct fs_cmd fs_cmds[] = {
	{"mount", "[member flags] [-o opts] [-f] DIR", "mount DIR as a member of a cluster",
	 fs_server_mount},
	{"umount", "DIR", "unmount DIR cleanly (leadership handed over first)", fs_server_umount},
	{"status", "MOUNT", "member, leader, term, indexes, revision, members, alarms, peer TLS",
	 fs_cli_status},
	{"member", "list|add|remove|promote|move-leader ...",
	 "list or change the cluster's members, move leadership", fs_cli_member},
	{"lease", "grant|revoke|keepalive|ttl|list MOUNT ...", "manage leases", fs_cli_lease},
	{"put", "FILE [--lease ID]", "write stdin to FILE at once, bound to a lease", fs_cli_put},
	{"compact", "MOUNT REV", "discard history before revision REV", fs_cli_compact},
	{"snapshot", "save MOUNT FILE", "write a consistent store image to FILE", fs_cli_snapshot},
	{"restore", "FILE --data-dir DIR", "make a data dir from a snapshot file",
	 fs_server_restore},
	{"alarm", "list|disarm MOUNT", "show or clear NOSPACE and CORRUPT alarms", fs_cli_alarm},
	{"watch", "MOUNT PATH [--rev N] [--prefix]", "print changes as they happen", fs_cli_watch},
	{"get", "MOUNT PATH --rev N", "print a file's content at an old revision", fs_cli_get},
};

static void fs_usage(FILE *f)
{
	fprintf(f, "usage: raftfs [--help | --version] SUBCOMMAND [ARGS...]\n\n"
		   "A FUSE file system in which every mount is a member of a Raft cluster.\n\n"
		   "subcommands:\n");
	for (size_t i = 0; i < sizeof fs_cmds / sizeof fs_cmds[0]; i++)
		fprintf(f, "  %-9s %-42s %s%s\n", fs_cmds[i].name, fs_cmds[i].args,
			fs_cmds[i].summary, fs_cmds[i].run ? "" : " (not built yet)");
	fprintf(f, "\nexit status: 0 success, 1 runtime failure, 2 usage error\n");
}

int fs_cli_main(int argc, char **argv, FILE *out, FILE *err)
{
	if (argc < 2) {
		fs_usage(err);
		return FS_EXIT_USAGE;
	}
	const char *word = argv[1];
	if (strcmp(word, "--help") == 0 || strcmp(word, "-h") == 0 || strcmp(word, "help") == 0) {
		fs_usage(out);
		return FS_EXIT_OK;
	}
	if (strcmp(word, "--version") == 0 || strcmp(word, "version") == 0) {
		fprintf(out, "raftfs %s\n", RAFTFS_VERSION);
		return FS_EXIT_OK;
	}
	if (strcmp(word, "__guard") == 0) /* a mount's guard (fuse/mount.h), not for users */
		return fs_mount_guard_main(argc - 1, argv + 1);
	if (word[0] == '-') {
		fprintf(err, "raftfs: unknown option '%s' (try raftfs --help)\n", word);
		return FS_EXIT_USAGE;
	}
	for (size_t i = 0; i < sizeof fs_cmds / sizeof fs_cmds[0]; i++) {
		if (strcmp(word, fs_cmds[i].name) != 0)
			continue;
		if (!fs_cmds[i].run) {
			fprintf(err, "raftfs %s: not built yet in raftfs %s\n", word, RAFTFS_VERSION);
			return FS_EXIT_FAILURE;
		}
		return fs_cmds[i].run(argc - 1, argv + 1, out, err);
	}
	fprintf(err, "raftfs: unknown subcommand '%s' (try raftfs --help)\n", word);
	return FS_EXIT_USAGE;
}
