/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_tokens.h - API tokens (docs/api.md): created by an operator for a tenant,
 * shown once, stored only as their SHA-256 (api_tokens.token_sha256).
 *
 * A token is "ev_" followed by 32 random bytes (OpenSSL RAND_bytes) in
 * base64url without padding: 46 characters.  Looking a token up hashes it
 * and asks for an unrevoked row with that hash; nothing compares secrets
 * in this process.
 *
 * Errors: EMV_OK / EMV_ERR with the reason in the caller's buffer.
 */
#ifndef EMV_TOKENS_H
#define EMV_TOKENS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <libpq-fe.h>

#define EMV_TOKEN_LEN 46  /* "ev_" + 43 base64url characters */
#define EMV_TOKEN_MAX 256 /* longer presented tokens are refused unread */
#define EMV_TENANT_MAX 64

/* SHA-256 of a presented token. */
void emv_token_hash(const char *token, size_t len, unsigned char out[32]);

/* Create a token for tenant; the token (NUL-terminated) goes to out
 * (at least EMV_TOKEN_LEN + 1 bytes), its row id to *id. */
int emv_token_create(PGconn *c, const char *tenant, const char *name, char *out, size_t outlen, int64_t *id, char *err,
		     size_t errlen);

/* Revoke token `id`; EMV_ERR with "no token N" when there is none unrevoked. */
int emv_token_revoke(PGconn *c, int64_t id, char *err, size_t errlen);

/* One line per token (id, tenant, name, created, revoked) to f. */
int emv_token_list(PGconn *c, FILE *f, char *err, size_t errlen);

/* 1 with the tenant when the hash is a valid unrevoked token, 0 when not,
 * -1 on a database error (err). */
int emv_token_lookup(PGconn *c, const unsigned char hash[32], char *tenant, size_t tenantlen, char *err, size_t errlen);

/* A tenant name: 1..64 of [A-Za-z0-9._-]. */
int emv_tenant_valid(const char *tenant);

#endif
