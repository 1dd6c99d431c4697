/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli.h - subcommands of the `emailverify` command and the option handling
 * they share (the engine settings live in worker/emv_setup.h: the worker
 * daemon takes the same options).
 */
#ifndef EMV_CLI_H
#define EMV_CLI_H

#include <stddef.h>
#include <stdint.h>
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

/* A job's time limit given as a duration (90s, 10m, 2h; at most 30 days,
 * emv_parse_duration_ms): whole seconds, rounded up, into *s; 0 only when
 * zero_ok (--straggler-wait 0).  0, or -1 with "OPT: ..." in err. */
int cli_parse_limit(const char *opt, const char *arg, int zero_ok, int64_t *s, char *err, size_t errlen);

#endif
