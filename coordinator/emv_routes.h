/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_routes.h - which region's topic a domain's batches go to (docs/design.md §3,
 * docs/regions.md "Routing rules").  The default is the shared batches topic, which every
 * worker of every region reads; a rule sends a domain to one region's own
 * topic ("<batches>.<region>"), which only that region's workers read.
 *
 * Rules file, one rule a line, '#' starts a comment, blank lines ignored:
 *
 *   domain SUFFIX REGION   SUFFIX itself and every name under it (a label
 *                          boundary: "example.com" matches "mx.example.com",
 *                          never "badexample.com"); the longest SUFFIX wins
 *   default REGION         everything no domain rule matches; "*" = the
 *                          shared topic (the default)
 *
 * SUFFIX is an A-label domain (lower-cased here); REGION is 1..31 of
 * a-z 0-9 _ - (as in the worker's pool file).  At most EMV_ROUTES_MAX rules
 * and EMV_ROUTES_LINE_MAX - 1 characters a line; a bad line is an error
 * that names its line number, and nothing is loaded.
 */
#ifndef EMV_ROUTES_H
#define EMV_ROUTES_H

#include <stddef.h>

#define EMV_ROUTES_MAX 100000
#define EMV_ROUTES_LINE_MAX 512
#define EMV_ROUTES_REGION_MAX 32 /* with the NUL */

typedef struct emv_routes emv_routes;

emv_routes *emv_routes_parse(const char *buf, size_t len, const char *name, char *err, size_t errlen);
emv_routes *emv_routes_load(const char *path, char *err, size_t errlen);
void emv_routes_free(emv_routes *r);

/* The region for domain (lower-case A-label), or NULL for the shared topic. */
const char *emv_routes_region(const emv_routes *r, const char *domain);

/* 1 when name is a valid region name. */
int emv_routes_region_valid(const char *name);

#endif
