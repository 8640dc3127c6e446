/* cmd_pg.c - STUB, being written. */
#include "cli.h"

int cmd_pg(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	cli_error("pg", "not yet implemented");
	return EXIT_FAIL;
}
