/* SPDX-License-Identifier: Apache-2.0 */
/* emv_tokens.c - API tokens (see emv_tokens.h). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "emv_db.h"
#include "emv_tokens.h"
#include "emv_util.h"

void emv_token_hash(const char *token, size_t len, unsigned char out[32])
{
	unsigned int n = 32;
	EVP_Digest(token, len, out, &n, EVP_sha256(), NULL);
}

int emv_tenant_valid(const char *t)
{
	size_t n = strlen(t);
	if (n == 0 || n > EMV_TENANT_MAX)
		return 0;
	for (; *t; t++)
		if (!((*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z') || (*t >= '0' && *t <= '9') || *t == '.' ||
		      *t == '_' || *t == '-'))
			return 0;
	return 1;
}

static void b64url(const unsigned char *in, size_t n, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t i, o = 0;
	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		out[o++] = a[v >> 6 & 63];
		out[o++] = a[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		out[o++] = a[v >> 6 & 63];
	}
	out[o] = '\0';
}

int emv_token_create(PGconn *c, const char *tenant, const char *name, char *out, size_t outlen, int64_t *id, char *err,
		     size_t errlen)
{
	unsigned char raw[32], hash[32];
	const char *v[3];
	int len[3] = { 0, 0, 32 }, fmt[3] = { 0, 0, 1 };
	PGresult *r;

	if (!emv_tenant_valid(tenant)) {
		emv_set_err(err, errlen, "tenant must be 1..%d of letters, digits, '.', '_', '-'", EMV_TENANT_MAX);
		return EMV_ERR;
	}
	if (outlen < EMV_TOKEN_LEN + 1 || RAND_bytes(raw, sizeof raw) != 1) {
		emv_set_err(err, errlen, "no random bytes for a token");
		return EMV_ERR;
	}
	memcpy(out, "ev_", 3);
	b64url(raw, sizeof raw, out + 3);
	emv_token_hash(out, strlen(out), hash);
	v[0] = tenant;
	v[1] = name ? name : "";
	v[2] = (const char *)hash;
	r = emv_db_exec_bin(c, "INSERT INTO api_tokens (tenant, name, token_sha256) VALUES ($1, $2, $3) RETURNING id",
			    3, v, len, fmt, PGRES_TUPLES_OK, err, errlen, "storing the token");
	if (!r) {
		memset(out, 0, outlen);
		return EMV_ERR;
	}
	*id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return EMV_OK;
}

int emv_token_revoke(PGconn *c, int64_t id, char *err, size_t errlen)
{
	char ids[24];
	const char *v[1] = { ids };
	PGresult *r;
	int n;
	snprintf(ids, sizeof ids, "%" PRId64, id);
	r = emv_db_exec(c, "UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", 1, v,
			PGRES_COMMAND_OK, err, errlen, "revoking the token");
	if (!r)
		return EMV_ERR;
	n = atoi(PQcmdTuples(r));
	PQclear(r);
	if (n != 1) {
		emv_set_err(err, errlen, "no unrevoked token %" PRId64, id);
		return EMV_ERR;
	}
	return EMV_OK;
}

int emv_token_list(PGconn *c, FILE *f, char *err, size_t errlen)
{
	PGresult *r = emv_db_exec(c,
				  "SELECT id, tenant, name, to_char(created_at, 'YYYY-MM-DD\"T\"HH24:MI:SSOF'), "
				  "coalesce(to_char(revoked_at, 'YYYY-MM-DD\"T\"HH24:MI:SSOF'), '-') "
				  "FROM api_tokens ORDER BY id",
				  0, NULL, PGRES_TUPLES_OK, err, errlen, "listing tokens");
	if (!r)
		return EMV_ERR;
	fprintf(f, "%-6s %-20s %-20s %-24s %s\n", "ID", "TENANT", "NAME", "CREATED", "REVOKED");
	for (int i = 0; i < PQntuples(r); i++)
		fprintf(f, "%-6s %-20s %-20s %-24s %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
			PQgetvalue(r, i, 3), PQgetvalue(r, i, 4));
	PQclear(r);
	return EMV_OK;
}

int emv_token_lookup(PGconn *c, const unsigned char hash[32], char *tenant, size_t tenantlen, char *err, size_t errlen)
{
	const char *v[1] = { (const char *)hash };
	int len[1] = { 32 }, fmt[1] = { 1 };
	PGresult *r = emv_db_exec_bin(c, "SELECT tenant FROM api_tokens WHERE token_sha256 = $1 AND revoked_at IS NULL",
				      1, v, len, fmt, PGRES_TUPLES_OK, err, errlen, "looking up a token");
	int found;
	if (!r)
		return -1;
	found = PQntuples(r) == 1;
	if (found)
		emv_strlcpy(tenant, PQgetvalue(r, 0, 0), tenantlen);
	PQclear(r);
	return found;
}
