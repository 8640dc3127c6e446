/* cmd_bench.c - STUB, being written. */
#include "cli.h"

int cmd_bench(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	cli_error("bench", "not yet implemented");
	return EXIT_FAIL;
}
