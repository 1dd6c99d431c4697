/*
 * cli_main.c - the `emailverify` command: dispatch to subcommands.
 */
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "emv_util.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: emailverify <command> [options]\n"
		"\n"
		"commands:\n"
		"  doctor               can this machine verify? DNS, port 25, HELO, reverse DNS, SPF, DNSBLs\n"
		"  check ADDRESS...     verify addresses now and print each verdict with its evidence\n"
		"  verify LIST -o OUT   verify a list (CSV or one address per line) on this machine\n"
		"  run LIST -o OUT      the same through the whole cluster on this machine: PostgreSQL,\n"
		"                       an embedded Kafka, worker threads, the results sink, the export\n"
		"  submit LIST          send a list to a coordinator (--server URL --token T [--wait])\n"
		"  status ID            a job's progress and counts on the coordinator\n"
		"  export ID -o OUT     a job's results from the coordinator (--status, --format)\n"
		"  jobs                 your jobs on the coordinator\n"
		"  version              print the version\n"
		"\n"
		"Run 'emailverify <command> --help' for the options of a command.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "doctor") == 0)
		return cli_doctor(argc - 1, argv + 1);
	if (strcmp(argv[1], "check") == 0)
		return cli_check(argc - 1, argv + 1);
	if (strcmp(argv[1], "verify") == 0)
		return cli_verify(argc - 1, argv + 1);
	if (strcmp(argv[1], "run") == 0)
		return cli_run(argc - 1, argv + 1);
	if (strcmp(argv[1], "submit") == 0 || strcmp(argv[1], "status") == 0 || strcmp(argv[1], "export") == 0 ||
	    strcmp(argv[1], "jobs") == 0)
		return cli_client(argc - 1, argv + 1);
	if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("emailverify %s (data: %s)\n", EMV_VERSION, emv_data_dir(NULL));
		return 0;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "emailverify: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
