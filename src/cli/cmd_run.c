/* cmd_run.c - STUB, being written. */
#include "cli.h"

int cmd_run(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	cli_error("run", "not yet implemented");
	return EXIT_FAIL;
}
