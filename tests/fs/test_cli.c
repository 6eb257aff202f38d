/* test_cli.c: the raftfs command's exit statuses and where its messages go. */
#include "check.h"
#include "fs.h"

/* Runs fs_cli_main on argv with output captured; returns its status. */
static int run(char **argv, char *out, size_t outsz, char *err, size_t errsz)
{
	int argc = 0;
	while (argv[argc])
		argc++;
	FILE *o = fmemopen(out, outsz, "w"), *e = fmemopen(err, errsz, "w");
	CHECK(o && e);
	int rc = fs_cli_main(argc, argv, o, e);
	fclose(o);
	fclose(e);
	return rc;
}

CHECK_TEST(help_lists_subcommands)
{
	char out[4096] = "", err[256] = "";
	CHECK_EQ(run((char *[]){"raftfs", "--help", NULL}, out, sizeof out, err, sizeof err),
		 FS_EXIT_OK);
	CHECK_EQ(err[0], '\0');
	const char *words[] = {"mount", "umount", "status", "member", "lease", "compact",
			       "snapshot", "restore", "alarm", "watch", "get"};
	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
		CHECK(strstr(out, words[i]) != NULL);
}

CHECK_TEST(version)
{
	char out[256] = "", err[256] = "";
	CHECK_EQ(run((char *[]){"raftfs", "--version", NULL}, out, sizeof out, err, sizeof err),
		 FS_EXIT_OK);
	CHECK(strncmp(out, "raftfs ", 7) == 0);
	CHECK(strchr(out, '.') != NULL);
}

CHECK_TEST(usage_errors_exit_2_on_stderr)
{
	char out[4096] = "", err[4096] = "";
	CHECK_EQ(run((char *[]){"raftfs", NULL}, out, sizeof out, err, sizeof err), FS_EXIT_USAGE);
	CHECK_EQ(out[0], '\0');
	CHECK(strstr(err, "usage:") != NULL);

	memset(err, 0, sizeof err);
	CHECK_EQ(run((char *[]){"raftfs", "frobnicate", NULL}, out, sizeof out, err, sizeof err),
		 FS_EXIT_USAGE);
	CHECK(strstr(err, "unknown subcommand 'frobnicate'") != NULL);
	CHECK_EQ(out[0], '\0');

	memset(err, 0, sizeof err);
	CHECK_EQ(run((char *[]){"raftfs", "--bogus", NULL}, out, sizeof out, err, sizeof err),
		 FS_EXIT_USAGE);
	CHECK(strstr(err, "unknown option '--bogus'") != NULL);
}

CHECK_SUITE("fs-cli", CHECK_CASE(help_lists_subcommands), CHECK_CASE(version),
	    CHECK_CASE(usage_errors_exit_2_on_stderr))
