/* SPDX-License-Identifier: Apache-2.0 */
/* emv_ipstate.c - ip_state for operators (see emv_ipstate.h). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "emv_ipstate.h"
#include "emv_util.h"

/* Columns of both readers, one row per (ip, provider), the IP-wide row
 * first within its ip. */
#define SELECT_ROWS                                                                                                 \
	"SELECT ip, provider, region, worker, state,"                                                               \
	"  coalesce(to_char(since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''),"                      \
	"  coalesce(to_char(until AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''),"                      \
	"  to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"                               \
	"  updated_at < now() - interval '" EMV_STR(                                                                \
		EMV_IPSTATE_STALE_S) " seconds',"                                                                   \
				     "  strikes, rate_permille, sessions, rcpts, blocks, coalesce(last_reply, '')," \
				     "  coalesce(extract(epoch FROM now() - since), 0)::bigint"                     \
				     " FROM ip_state"

#define EMV_STR_(x) #x
#define EMV_STR(x) EMV_STR_(x)

enum {
	C_IP,
	C_PROV,
	C_REGION,
	C_WORKER,
	C_STATE,
	C_SINCE,
	C_UNTIL,
	C_UPDATED,
	C_STALE,
	C_STRIKES,
	C_RATE,
	C_SESSIONS,
	C_RCPTS,
	C_BLOCKS,
	C_REPLY,
	C_AGE
};

static json_t *str_or_null(const char *s)
{
	return s && s[0] ? json_string(s) : json_null();
}

static json_t *num(PGresult *r, int i, int col)
{
	return json_integer((json_int_t)strtoll(PQgetvalue(r, i, col), NULL, 10));
}

/* Database text is ours, but a reply may carry anything a server said:
 * JSON strings must be UTF-8, so keep printable ASCII only. */
static json_t *text(PGresult *r, int i, int col)
{
	const char *v = PQgetvalue(r, i, col);
	char buf[1100];
	emv_sanitize(buf, sizeof buf, v, strlen(v));
	return json_string(buf);
}

json_t *emv_ipstate_json(PGconn *c, const char *region, const char *state, char *err, size_t errlen)
{
	const char *v[2] = { region, state };
	PGresult *r = PQexecParams(c,
				   SELECT_ROWS
				   " WHERE ($1::text IS NULL OR region = $1)"
				   "  AND ($2::text IS NULL OR ip IN (SELECT ip FROM ip_state WHERE state = $2))"
				   " ORDER BY region, ip, provider",
				   2, NULL, v, NULL, NULL, 0);
	json_t *ips, *cur = NULL;
	const char *cur_ip = "";

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		emv_set_err(err, errlen, "ip_state: %s", PQerrorMessage(c));
		PQclear(r);
		return NULL;
	}
	ips = json_array();
	for (int i = 0; i < PQntuples(r); i++) {
		const char *ip = PQgetvalue(r, i, C_IP), *prov = PQgetvalue(r, i, C_PROV);
		if (!cur || strcmp(ip, cur_ip) != 0) {
			cur = json_object();
			json_object_set_new(cur, "ip", json_string(ip));
			json_object_set_new(cur, "region", text(r, i, C_REGION));
			json_object_set_new(cur, "worker", text(r, i, C_WORKER));
			json_object_set_new(cur, "state", json_string("healthy"));
			json_object_set_new(cur, "providers", json_array());
			json_array_append_new(ips, cur);
			cur_ip = ip;
		}
		if (!prov[0]) { /* the address as a whole */
			json_object_set_new(cur, "state", text(r, i, C_STATE));
			json_object_set_new(cur, "since", str_or_null(PQgetvalue(r, i, C_SINCE)));
			json_object_set_new(cur, "updated", json_string(PQgetvalue(r, i, C_UPDATED)));
			json_object_set_new(cur, "stale", json_boolean(PQgetvalue(r, i, C_STALE)[0] == 't'));
			json_object_set_new(cur, "sessions", num(r, i, C_SESSIONS));
			json_object_set_new(cur, "rcpts", num(r, i, C_RCPTS));
			json_object_set_new(cur, "blocks", num(r, i, C_BLOCKS));
			json_object_set_new(cur, "last_reply", text(r, i, C_REPLY));
		} else {
			json_t *p = json_object();
			json_object_set_new(p, "provider", text(r, i, C_PROV));
			json_object_set_new(p, "state", text(r, i, C_STATE));
			json_object_set_new(p, "since", str_or_null(PQgetvalue(r, i, C_SINCE)));
			json_object_set_new(p, "until", str_or_null(PQgetvalue(r, i, C_UNTIL)));
			json_object_set_new(p, "strikes", num(r, i, C_STRIKES));
			json_object_set_new(p, "rate", json_real(strtol(PQgetvalue(r, i, C_RATE), NULL, 10) / 1000.0));
			json_object_set_new(p, "sessions", num(r, i, C_SESSIONS));
			json_object_set_new(p, "rcpts", num(r, i, C_RCPTS));
			json_object_set_new(p, "blocks", num(r, i, C_BLOCKS));
			json_object_set_new(p, "last_reply", text(r, i, C_REPLY));
			json_array_append_new(json_object_get(cur, "providers"), p);
		}
	}
	PQclear(r);
	{
		json_t *o = json_object();
		json_object_set_new(o, "ips", ips);
		return o;
	}
}

/* A label value: the text with '"', '\\' and newlines replaced. */
static void label(char *out, size_t outlen, const char *v)
{
	emv_sanitize(out, outlen, v, strlen(v));
	for (char *p = out; *p; p++)
		if (*p == '"' || *p == '\\')
			*p = '_';
}

/* The ip, provider and region labels of row i. */
static void row_labels(PGresult *r, int i, char ip[64], char prov[128], char reg[64])
{
	label(ip, 64, PQgetvalue(r, i, C_IP));
	label(prov, 128, PQgetvalue(r, i, C_PROV));
	label(reg, 64, PQgetvalue(r, i, C_REGION));
}

int emv_ipstate_prometheus(PGconn *c, FILE *f, char *err, size_t errlen)
{
	PGresult *r = PQexec(c, SELECT_ROWS " WHERE updated_at >= now() - interval '" EMV_STR(
					EMV_IPSTATE_STALE_S) " seconds' ORDER BY ip, provider");
	static const struct {
		const char *name, *type, *help;
		int col;
	} series[] = {
		{ "emailverify_ip_sessions_total", "counter", "SMTP sessions from a source IP to a provider.",
		  C_SESSIONS },
		{ "emailverify_ip_rcpts_total", "counter", "RCPTs sent from a source IP to a provider.", C_RCPTS },
		{ "emailverify_ip_blocks_total", "counter", "Replies saying the source IP is blocked or listed.",
		  C_BLOCKS },
		{ "emailverify_ip_strikes", "gauge", "Quarantines in a row (the cool-down doubles with each).",
		  C_STRIKES },
		{ "emailverify_ip_state_seconds", "gauge", "Seconds the (IP, provider) has been in its current state.",
		  C_AGE },
	};

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		emv_set_err(err, errlen, "ip_state: %s", PQerrorMessage(c));
		PQclear(r);
		return EMV_ERR;
	}
	/* the state of every row, the address as a whole (provider="") too:
	 * a held address shows there */
	fprintf(f, "# HELP emailverify_ip_state Source IP state per provider, provider=\"\" for the address as a "
		   "whole (1 for the current state).\n# TYPE emailverify_ip_state gauge\n");
	for (int i = 0; i < PQntuples(r); i++) {
		char ip[64], prov[128], reg[64], st[32];
		row_labels(r, i, ip, prov, reg);
		label(st, sizeof st, PQgetvalue(r, i, C_STATE));
		fprintf(f, "emailverify_ip_state{ip=\"%s\",provider=\"%s\",region=\"%s\",state=\"%s\"} 1\n", ip, prov,
			reg, st);
	}
	fprintf(f, "# HELP emailverify_ip_rate_ratio Share of the provider's rate budget a throttled IP may use.\n"
		   "# TYPE emailverify_ip_rate_ratio gauge\n");
	for (int i = 0; i < PQntuples(r); i++) {
		char ip[64], prov[128], reg[64];
		if (!PQgetvalue(r, i, C_PROV)[0])
			continue;
		row_labels(r, i, ip, prov, reg);
		fprintf(f, "emailverify_ip_rate_ratio{ip=\"%s\",provider=\"%s\",region=\"%s\"} %.3f\n", ip, prov, reg,
			strtol(PQgetvalue(r, i, C_RATE), NULL, 10) / 1000.0);
	}
	for (size_t s = 0; s < sizeof series / sizeof series[0]; s++) {
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", series[s].name, series[s].help, series[s].name,
			series[s].type);
		for (int i = 0; i < PQntuples(r); i++) {
			char ip[64], prov[128], reg[64];
			if (!PQgetvalue(r, i, C_PROV)[0])
				continue;
			row_labels(r, i, ip, prov, reg);
			fprintf(f, "%s{ip=\"%s\",provider=\"%s\",region=\"%s\"} %s\n", series[s].name, ip, prov, reg,
				PQgetvalue(r, i, series[s].col));
		}
	}
	PQclear(r);
	return EMV_OK;
}
