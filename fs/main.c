/* main.c: the raftfs executable; everything it does is in fs_cli_main (fs/cli/cli.c). */
#include "fs.h"

int main(int argc, char **argv)
{
	return fs_cli_main(argc, argv, stdout, stderr);
}
