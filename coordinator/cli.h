/*
 * cli.h - subcommands of the `emailverify` command and the option handling
 * they share (the engine settings live in worker/cli_engine.h: the worker
 * daemon takes the same options).
 */
#ifndef EMV_CLI_H
#define EMV_CLI_H

#include "cli_engine.h"

int cli_check(int argc, char **argv);
int cli_verify(int argc, char **argv);
int cli_run(int argc, char **argv);
int cli_doctor(int argc, char **argv);
/* submit / status / export / jobs: the HTTP API's client (cli_client.c);
 * argv[0] is the command. */
int cli_client(int argc, char **argv);

#endif
