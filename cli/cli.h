/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli.h - subcommands of the `emailverify` command and the option handling
 * they share (the engine settings live in worker/emv_setup.h: the worker
 * daemon takes the same options).
 */
#ifndef EMV_CLI_H
#define EMV_CLI_H

#include "emv_setup.h"

int cli_check(int argc, char **argv);
int cli_verify(int argc, char **argv);
#ifdef EMV_WITH_RUN
int cli_run(int argc, char **argv); /* only with the cluster parts (cli/CMakeLists.txt) */
#endif
int cli_doctor(int argc, char **argv);
/* submit / status / export / jobs: the HTTP API's client (cli_client.c);
 * argv[0] is the command. */
int cli_client(int argc, char **argv);

#endif
