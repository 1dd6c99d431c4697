/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_cache.c - verify's local verdict cache file in SQLite (cli_cache.h).
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli_cache.h"
#include "emv_defaults.h"
#include "emv_util.h"

/* PRAGMA application_id: "EMVC", so that `file` and we know the file. */
#define CACHE_APP_ID 0x454d5643
#define CACHE_SCHEMA 1

struct cli_cache {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *get, *put, *del;
	int in_tx;
};

static int fail(cli_cache *c, int rc, char *err, size_t errlen, const char *what)
{
	if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
		emv_set_err(err, errlen, "cache file %s is busy: another emailverify holds it for more than %d ms (%s)",
			    c->path, EMV_DEF_CACHE_FILE_BUSY_MS, what);
		return CLI_CACHE_BUSY;
	}
	emv_set_err(err, errlen, "cache file %s: %s: %s", c->path, what, c->db ? sqlite3_errmsg(c->db) : "");
	return EMV_ERR;
}

static int exec(cli_cache *c, const char *sql, char *err, size_t errlen, const char *what)
{
	int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? EMV_OK : fail(c, rc, err, errlen, what);
}

/* One integer from a PRAGMA or a query; -1 on an error. */
static long long one_int(cli_cache *c, const char *sql, int *rc_out)
{
	sqlite3_stmt *s = NULL;
	long long v = -1;
	int rc = sqlite3_prepare_v2(c->db, sql, -1, &s, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		v = sqlite3_column_int64(s, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	if (rc_out)
		*rc_out = rc;
	return v;
}

void cli_cache_close(cli_cache *c)
{
	if (!c)
		return;
	if (c->in_tx)
		cli_cache_rollback(c);
	sqlite3_finalize(c->get);
	sqlite3_finalize(c->put);
	sqlite3_finalize(c->del);
	sqlite3_close(c->db);
	free(c->path);
	free(c);
}

/* A new file gets the schema; an existing one must be ours and whole. */
static int schema(cli_cache *c, char *err, size_t errlen)
{
	int rc;
	long long app = one_int(c, "PRAGMA application_id", &rc), ver, tables;
	if (rc != SQLITE_OK) /* SQLITE_NOTADB: "file is not a database" */
		return fail(c, rc, err, errlen, "reading it");
	ver = one_int(c, "PRAGMA user_version", &rc);
	tables = one_int(c, "SELECT count(*) FROM sqlite_schema", &rc);
	if (rc != SQLITE_OK)
		return fail(c, rc, err, errlen, "reading its schema");
	if (app == 0 && tables == 0) {
		/* new (or empty): make it ours, in one transaction */
		if (exec(c,
			 "BEGIN IMMEDIATE;"
			 "CREATE TABLE IF NOT EXISTS verdicts ("
			 "  address TEXT PRIMARY KEY," /* normalised, as ingest makes it */
			 "  status TEXT NOT NULL,"
			 "  reason TEXT NOT NULL,"
			 "  verified_at INTEGER NOT NULL," /* Unix seconds */
			 "  result TEXT NOT NULL"	   /* the verdict's JSON as verify journals it */
			 ") WITHOUT ROWID;"
			 "PRAGMA application_id = 1162696259;" /* CACHE_APP_ID */
			 "PRAGMA user_version = 1;"
			 "COMMIT;",
			 err, errlen, "creating its table") != EMV_OK) {
			sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
			return EMV_ERR;
		}
		return EMV_OK;
	}
	if (app != CACHE_APP_ID) {
		emv_set_err(err, errlen,
			    "%s is an SQLite database but not an emailverify cache file (application_id %lld); "
			    "give another file name",
			    c->path, app);
		return EMV_ERR;
	}
	if (ver != CACHE_SCHEMA) {
		emv_set_err(err, errlen, "cache file %s has format version %lld; this emailverify knows version %d",
			    c->path, ver, CACHE_SCHEMA);
		return EMV_ERR;
	}
	return EMV_OK;
}

cli_cache *cli_cache_open(const char *path, char *err, size_t errlen)
{
	cli_cache *c = emv_xcalloc(1, sizeof *c);
	int rc;

	c->path = emv_xstrdup(path);
	rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		emv_set_err(err, errlen, "cannot open cache file %s: %s", path,
			    c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
		cli_cache_close(c);
		return NULL;
	}
	sqlite3_busy_timeout(c->db, EMV_DEF_CACHE_FILE_BUSY_MS);
	sqlite3_extended_result_codes(c->db, 0);
	/* WAL: readers never wait for a writer, a crash loses at most the
	 * transaction in flight; synchronous NORMAL: a commit is durable
	 * at the next checkpoint (a power cut may lose the last commits,
	 * never the file).  The journal_mode pragma is also the first read
	 * of the file: a file that is not a database fails here. */
	if (exec(c, "PRAGMA journal_mode = WAL", err, errlen, "opening it") != EMV_OK ||
	    exec(c, "PRAGMA synchronous = NORMAL", err, errlen, "opening it") != EMV_OK ||
	    /* a big list looks up addresses all over the file: read it through
	     * the page cache (mmap) instead of a pread per page */
	    exec(c, "PRAGMA mmap_size = 268435456", err, errlen, "opening it") != EMV_OK ||
	    schema(c, err, errlen) != EMV_OK) {
		cli_cache_close(c);
		return NULL;
	}
	if ((rc = sqlite3_prepare_v2(c->db,
				     "SELECT status, reason, verified_at, result FROM verdicts WHERE address = ?", -1,
				     &c->get, NULL)) != SQLITE_OK ||
	    (rc = sqlite3_prepare_v2(c->db,
				     "INSERT INTO verdicts (address, status, reason, verified_at, result) "
				     "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (address) DO UPDATE SET "
				     "status = excluded.status, reason = excluded.reason, "
				     "verified_at = excluded.verified_at, result = excluded.result "
				     "WHERE excluded.verified_at >= verdicts.verified_at",
				     -1, &c->put, NULL)) != SQLITE_OK ||
	    (rc = sqlite3_prepare_v2(c->db, "DELETE FROM verdicts WHERE address = ?", -1, &c->del, NULL)) !=
		    SQLITE_OK) {
		fail(c, rc, err, errlen, "preparing its statements (a damaged file?)");
		cli_cache_close(c);
		return NULL;
	}
	return c;
}

int cli_cache_begin(cli_cache *c, int write, char *err, size_t errlen)
{
	int rc = exec(c, write ? "BEGIN IMMEDIATE" : "BEGIN", err, errlen, "starting a transaction");
	if (rc == EMV_OK)
		c->in_tx = 1;
	return rc;
}

int cli_cache_commit(cli_cache *c, char *err, size_t errlen)
{
	int rc = exec(c, "COMMIT", err, errlen, "committing");
	if (rc == EMV_OK)
		c->in_tx = 0;
	return rc;
}

void cli_cache_rollback(cli_cache *c)
{
	sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	c->in_tx = 0;
}

int cli_cache_get(cli_cache *c, const char *address, const emv_cache_ages *ages, int64_t max_age_s, int64_t now,
		  char **result, int64_t *verified_at, char *err, size_t errlen)
{
	int rc, found = 0;
	*result = NULL;
	*verified_at = 0;
	if (max_age_s == 0)
		return 0; /* fresh: asks everything */
	sqlite3_bind_text(c->get, 1, address, -1, SQLITE_STATIC);
	rc = sqlite3_step(c->get);
	if (rc == SQLITE_ROW) {
		const char *sn = (const char *)sqlite3_column_text(c->get, 0);
		const char *rn = (const char *)sqlite3_column_text(c->get, 1);
		int64_t at = sqlite3_column_int64(c->get, 2);
		const char *res = (const char *)sqlite3_column_text(c->get, 3);
		int st = sn ? emv_status_from_name(sn) : -1, r = rn ? emv_reason_from_name(rn) : -1;
		/* an entry this version cannot read is not served (asked again) */
		if (st >= 0 && r >= 0 && res && *res == '{' &&
		    emv_cache_servable(ages, (emv_status)st, (emv_reason)r, now - at, max_age_s)) {
			*result = emv_xstrdup(res);
			*verified_at = at;
			found = 1;
		}
		rc = SQLITE_DONE;
	}
	sqlite3_reset(c->get);
	sqlite3_clear_bindings(c->get);
	if (rc != SQLITE_DONE)
		return fail(c, rc, err, errlen, "looking an address up");
	return found;
}

int cli_cache_put(cli_cache *c, const char *address, emv_status st, emv_reason r, int64_t verified_at,
		  const char *result, char *err, size_t errlen)
{
	int rc;
	if (st == EMV_STATUS_UNKNOWN || (int)st < 0 || st >= EMV_STATUS__COUNT)
		return 0; /* never served, so never stored: a known verdict stays */
	sqlite3_bind_text(c->put, 1, address, -1, SQLITE_STATIC);
	sqlite3_bind_text(c->put, 2, emv_status_name(st), -1, SQLITE_STATIC);
	sqlite3_bind_text(c->put, 3, emv_reason_name(r), -1, SQLITE_STATIC);
	sqlite3_bind_int64(c->put, 4, verified_at);
	sqlite3_bind_text(c->put, 5, result, -1, SQLITE_STATIC);
	rc = sqlite3_step(c->put);
	sqlite3_reset(c->put);
	sqlite3_clear_bindings(c->put);
	if (rc != SQLITE_DONE)
		return fail(c, rc, err, errlen, "storing a verdict");
	return sqlite3_changes(c->db) > 0;
}

int cli_cache_forget(cli_cache *c, const char *address, char *err, size_t errlen)
{
	int rc;
	sqlite3_bind_text(c->del, 1, address, -1, SQLITE_STATIC);
	rc = sqlite3_step(c->del);
	sqlite3_reset(c->del);
	sqlite3_clear_bindings(c->del);
	if (rc != SQLITE_DONE)
		return fail(c, rc, err, errlen, "forgetting an address");
	return sqlite3_changes(c->db) > 0;
}

long long cli_cache_count(cli_cache *c)
{
	return one_int(c, "SELECT count(*) FROM verdicts", NULL);
}
