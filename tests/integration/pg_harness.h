/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pg_harness.h - one number out of PostgreSQL for the cluster tests:
 * pg_long(url, "SELECT count(*) FROM ... WHERE job_id = '%s'", job).
 * Fails the test (with the query and the server's message) unless the
 * query returns exactly one row.  Include after cluster_harness.h.
 */
#ifndef EMV_PG_HARNESS_H
#define EMV_PG_HARNESS_H

#include <libpq-fe.h>

static inline long pg_long(const char *url, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static inline long pg_long(const char *url, const char *fmt, ...)
{
	char sql[2048];
	va_list ap;
	PGconn *c = PQconnectdb(url);
	PGresult *r;
	long v;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	v = atol(PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
	return v;
}

#endif
