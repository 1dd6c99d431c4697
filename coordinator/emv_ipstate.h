/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_ipstate.h - the workers' source-address reputation as stored by the
 * router (table ip_state, docs/design.md §3/§6), read for operators: the JSON of
 * GET /v1/ips and `emailverify-coordinator ips`, and the Prometheus
 * metrics of GET /metrics.
 *
 * A row is one (ip, provider); provider "" is the address as a whole
 * (healthy or held, with its session/RCPT/block totals).  A row that has
 * not been refreshed for stale_s seconds is shown with "stale": true (its
 * worker stopped or lost Kafka) and left out of the metrics.
 */
#ifndef EMV_IPSTATE_H
#define EMV_IPSTATE_H

#include <stdio.h>
#include <jansson.h>
#include <libpq-fe.h>

#define EMV_IPSTATE_STALE_S 300

/* {"ips": [{"ip", "region", "worker", "state", "since", "updated", "stale",
 *  "sessions", "rcpts", "blocks", "last_reply", "providers": [{"provider",
 *  "state", "since", "until", "strikes", "rate", "sessions", "rcpts",
 *  "blocks", "last_reply"}...]}...]}, ordered by region and ip; region
 * (NULL: all) and state (NULL: all; matches the address or any of its
 * providers) filter.  NULL + err on a database error. */
json_t *emv_ipstate_json(PGconn *c, const char *region, const char *state, char *err, size_t errlen);

/* The metrics (gauges and counters per ip/provider/region) into f. */
int emv_ipstate_prometheus(PGconn *c, FILE *f, char *err, size_t errlen);

#endif
