/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_privacy.h - forgetting an address (a privacy request): POST
 * /v1/forget, `emailverify forget`, `emailverify-coordinator forget`.
 * docs/cache.md "Forgetting an address".
 *
 * For a tenant and a normalised address (emv_address_parse, as ingest
 * normalises), in one transaction: the verdict cache entries of the
 * tenant's scope and of the global scope ('*') are deleted, and every row
 * of the tenant's jobs with that address is redacted: the address and the
 * input row become '', the deciding reply and the detail (which may quote
 * the address) NULL.  The rows stay, with their status and reason, so a
 * job's counts and row numbers stay right; a later export shows an empty
 * email.  Other tenants' scopes are not touched.  Files already exported
 * are the user's.
 *
 * Deleting a tenant's data (`emailverify-coordinator tenant delete T`):
 * its tokens are revoked first (no new work), then its jobs go batch by
 * batch (emv_db_delete_job_step, with the cache entries each job made),
 * then every verdict cache entry with tenant = T (its scope's and those it
 * put in the global scope), its settings and its tokens.
 *
 * Errors: EMV_OK / EMV_ERR with libpq's message in err.
 */
#ifndef EMV_PRIVACY_H
#define EMV_PRIVACY_H

#include <stddef.h>
#include <libpq-fe.h>

int emv_privacy_forget(PGconn *c, const char *tenant, const char *address, long long *cache_rows, long long *job_rows,
		       char *err, size_t errlen);

/* One batch (at most EMV_DB_DELETE_BATCH rows, its own transaction) of a
 * tenant's deletion; *finished once nothing of it is left.  Safe to
 * repeat, also after an interruption. */
int emv_privacy_delete_tenant_step(PGconn *c, const char *tenant, int *finished, char *err, size_t errlen);

#endif
