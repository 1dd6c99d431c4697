/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_main.c - the `emailverify` command: a table of subcommands.
 */
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "emv_util.h"

static int cli_version(int argc, char **argv)
{
	printf("emailverify %s (data: %s)\n", EMV_VERSION, emv_data_dir(NULL));
	return 0;
}

#ifndef EMV_WITH_RUN
/* Built with -DEMV_CLUSTER=OFF: the single-machine verifier, no PostgreSQL. */
static int cli_run(int argc, char **argv)
{
	fprintf(stderr, "emailverify: this build has no 'run' (configured with -DEMV_CLUSTER=OFF); "
			"use 'verify', or rebuild with the cluster parts\n");
	return 2;
}
#endif

static const struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *args;
	const char *help;
} commands[] = {
	{ "doctor", cli_doctor, "", "can this machine verify? DNS, port 25, HELO, reverse DNS, SPF, DNSBLs" },
	{ "check", cli_check, "ADDRESS...", "verify addresses now and print each verdict with its evidence" },
	{ "verify", cli_verify, "LIST -o OUT", "verify a list (CSV or one address per line) on this machine" },
	{ "run", cli_run, "LIST -o OUT",
	  "the same through the whole cluster on this machine: PostgreSQL,\n"
	  "                       an embedded Kafka, worker threads, the results sink, the export" },
	{ "submit", cli_client, "LIST", "send a list to a coordinator (--server URL --token T [--wait])" },
	{ "status", cli_client, "ID", "a job's progress and counts on the coordinator" },
	{ "export", cli_client, "ID -o OUT", "a job's results from the coordinator (--status, --format)" },
	{ "jobs", cli_client, "", "your jobs on the coordinator" },
	{ "version", cli_version, "", "print the version" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: emailverify <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		char head[64];
		snprintf(head, sizeof head, "%s %s", commands[i].name, commands[i].args);
		fprintf(f, "  %-20s %s\n", head, commands[i].help);
	}
	fprintf(f, "\nRun 'emailverify <command> --help' for the options of a command.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--version") == 0)
		return cli_version(argc - 1, argv + 1);
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "emailverify: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
