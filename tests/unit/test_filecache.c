/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_filecache.c - verify's cache file (cli/cli_cache.h): what it serves
 * (lib/emv_cache's rule), what it stores, forgetting, and files it must
 * refuse or wait for: a damaged file, another program's database, a second
 * process holding the write lock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>
#include "cli_cache.h"
#include "emv_util.h"

#define DAY 86400LL
#define NOW 1800000000LL

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/emv-filecache-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd);
}

static void path_of(char *p, size_t n, const char *name)
{
	snprintf(p, n, "%s/%s", dir, name);
}

static cli_cache *open_ok(const char *name)
{
	char p[128], err[512] = "";
	cli_cache *c;
	path_of(p, sizeof p, name);
	c = cli_cache_open(p, err, sizeof err);
	if (!c)
		fail_msg("opening %s: %s", p, err);
	return c;
}

static void put(cli_cache *c, const char *a, emv_status st, emv_reason r, int64_t at)
{
	char err[512], json[256];
	snprintf(json, sizeof json, "{\"email\":\"%s\",\"status\":\"%s\"}", a, emv_status_name(st));
	assert_true(cli_cache_put(c, a, st, r, at, json, err, sizeof err) >= 0);
}

static int get(cli_cache *c, const char *a, int64_t max_age, int64_t *at)
{
	emv_cache_ages ages;
	char err[512], *res = NULL;
	int64_t at_ = 0;
	int rc;
	emv_cache_ages_default(&ages);
	rc = cli_cache_get(c, a, &ages, max_age, NOW, &res, &at_, err, sizeof err);
	assert_true(rc >= 0);
	if (rc == 1) {
		assert_non_null(strstr(res, a));
		assert_true(res[0] == '{');
	}
	free(res);
	if (at)
		*at = at_;
	return rc;
}

static void test_serves_by_the_rules(void **state)
{
	cli_cache *c = open_ok("rules.db");
	int64_t at = 0;
	(void)state;
	put(c, "fresh@example.com", EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, NOW - 2 * DAY);
	put(c, "stale@example.com", EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, NOW - 31 * DAY);
	put(c, "gone@example.com", EMV_STATUS_UNDELIVERABLE, EMV_REASON_MAILBOX_NOT_FOUND, NOW - 60 * DAY);
	put(c, "full@example.com", EMV_STATUS_RISKY, EMV_REASON_MAILBOX_FULL, NOW - 2 * DAY);
	put(c, "unknown@example.com", EMV_STATUS_UNKNOWN, EMV_REASON_TIMEOUT, NOW);

	assert_int_equal(get(c, "fresh@example.com", -1, &at), 1);
	assert_int_equal(at, NOW - 2 * DAY);
	assert_int_equal(get(c, "stale@example.com", -1, NULL), 0);
	assert_int_equal(get(c, "gone@example.com", -1, NULL), 1);
	assert_int_equal(get(c, "full@example.com", -1, NULL), 0); /* mailbox_full: 1 day */
	assert_int_equal(get(c, "unknown@example.com", -1, NULL), 0);
	assert_int_equal(get(c, "nobody@example.com", -1, NULL), 0);
	/* the job's max_age shortens; fresh (0) asks everything */
	assert_int_equal(get(c, "fresh@example.com", DAY, NULL), 0);
	assert_int_equal(get(c, "fresh@example.com", 3 * DAY, NULL), 1);
	assert_int_equal(get(c, "gone@example.com", 0, NULL), 0);
	/* unknown was never stored */
	assert_int_equal(cli_cache_count(c), 4);
	cli_cache_close(c);
}

static void test_unknown_and_older_never_overwrite(void **state)
{
	cli_cache *c = open_ok("overwrite.db");
	char err[512];
	int64_t at = 0;
	(void)state;
	put(c, "a@example.com", EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, NOW - DAY);
	assert_int_equal(cli_cache_put(c, "a@example.com", EMV_STATUS_UNKNOWN, EMV_REASON_TIMEOUT, NOW, "{}", err,
				       sizeof err),
			 0);
	assert_int_equal(get(c, "a@example.com", -1, &at), 1);
	assert_int_equal(at, NOW - DAY);
	/* an older verdict (a slower run finishing later) does not replace a newer */
	assert_int_equal(cli_cache_put(c, "a@example.com", EMV_STATUS_UNDELIVERABLE, EMV_REASON_MAILBOX_NOT_FOUND,
				       NOW - 5 * DAY, "{\"email\":\"a@example.com\"}", err, sizeof err),
			 0);
	assert_int_equal(get(c, "a@example.com", -1, &at), 1);
	assert_int_equal(at, NOW - DAY);
	/* a newer one does */
	put(c, "a@example.com", EMV_STATUS_UNDELIVERABLE, EMV_REASON_MAILBOX_NOT_FOUND, NOW);
	assert_int_equal(get(c, "a@example.com", -1, &at), 1);
	assert_int_equal(at, NOW);
	cli_cache_close(c);
}

static void test_forget_and_reopen(void **state)
{
	cli_cache *c = open_ok("forget.db");
	char err[512];
	(void)state;
	put(c, "a@example.com", EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, NOW);
	put(c, "b@example.com", EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, NOW);
	assert_int_equal(cli_cache_forget(c, "a@example.com", err, sizeof err), 1);
	assert_int_equal(cli_cache_forget(c, "a@example.com", err, sizeof err), 0);
	cli_cache_close(c);
	/* committed entries are there after a reopen, the forgotten one is not */
	c = open_ok("forget.db");
	assert_int_equal(get(c, "a@example.com", -1, NULL), 0);
	assert_int_equal(get(c, "b@example.com", -1, NULL), 1);
	cli_cache_close(c);
}

static void test_rolled_back_batch_is_not_stored(void **state)
{
	cli_cache *c = open_ok("tx.db");
	char err[512];
	(void)state;
	assert_int_equal(cli_cache_begin(c, 1, err, sizeof err), EMV_OK);
	put(c, "a@example.com", EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, NOW);
	cli_cache_rollback(c);
	assert_int_equal(get(c, "a@example.com", -1, NULL), 0);
	/* a connection closed mid-transaction (a crash) leaves nothing half done */
	assert_int_equal(cli_cache_begin(c, 1, err, sizeof err), EMV_OK);
	put(c, "b@example.com", EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, NOW);
	cli_cache_close(c);
	c = open_ok("tx.db");
	assert_int_equal(cli_cache_count(c), 0);
	cli_cache_close(c);
}

static void write_file(const char *name, const void *data, size_t n)
{
	char p[128];
	FILE *f;
	path_of(p, sizeof p, name);
	f = fopen(p, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, n, f), n);
	fclose(f);
}

static void test_refuses_foreign_and_damaged_files(void **state)
{
	char p[128], err[512];
	unsigned char junk[8192];
	sqlite3 *db;
	cli_cache *c;
	(void)state;

	/* text, not a database */
	write_file("text.csv", "email\na@example.com\n", 20);
	path_of(p, sizeof p, "text.csv");
	assert_null(c = cli_cache_open(p, err, sizeof err));
	assert_non_null(strstr(err, p));
	assert_non_null(strstr(err, "not a database"));

	/* random bytes */
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (unsigned char)(i * 7919u >> 3);
	write_file("junk.db", junk, sizeof junk);
	path_of(p, sizeof p, "junk.db");
	assert_null(c = cli_cache_open(p, err, sizeof err));
	assert_non_null(strstr(err, p));

	/* another program's SQLite database */
	path_of(p, sizeof p, "other.db");
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE t (x); INSERT INTO t VALUES (1);", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_null(c = cli_cache_open(p, err, sizeof err));
	assert_non_null(strstr(err, "not an emailverify cache file"));

	/* ours, then damaged in the middle: the header still reads, a page
	 * does not; opening or reading says so, nothing crashes */
	c = open_ok("damaged.db");
	for (int i = 0; i < 2000; i++) {
		char a[64];
		snprintf(a, sizeof a, "user%d@example.com", i);
		put(c, a, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, NOW);
	}
	cli_cache_close(c);
	{
		FILE *f;
		path_of(p, sizeof p, "damaged.db");
		f = fopen(p, "r+b");
		assert_non_null(f);
		fseek(f, 4096 * 3, SEEK_SET);
		fwrite(junk, 1, sizeof junk, f);
		fclose(f);
	}
	c = cli_cache_open(p, err, sizeof err);
	if (c) {
		int bad = 0;
		for (int i = 0; i < 2000; i++) {
			char a[64], *res = NULL;
			int64_t at;
			emv_cache_ages ages;
			emv_cache_ages_default(&ages);
			snprintf(a, sizeof a, "user%d@example.com", i);
			if (cli_cache_get(c, a, &ages, -1, NOW, &res, &at, err, sizeof err) < 0) {
				bad = 1;
				break;
			}
			free(res);
		}
		assert_true(bad);
		assert_non_null(strstr(err, p));
		cli_cache_close(c);
	} else {
		assert_non_null(strstr(err, p));
	}
}

static void test_second_writer_waits_then_is_told(void **state)
{
	cli_cache *a = open_ok("busy.db"), *b = open_ok("busy.db");
	char err[512];
	uint64_t t0;
	(void)state;
	put(a, "x@example.com", EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, NOW);
	assert_int_equal(cli_cache_begin(a, 1, err, sizeof err), EMV_OK);
	put(a, "y@example.com", EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, NOW);
	/* readers are not blocked by the writer (WAL), and see what is committed */
	assert_int_equal(cli_cache_begin(b, 0, err, sizeof err), EMV_OK);
	assert_int_equal(get(b, "x@example.com", -1, NULL), 1);
	assert_int_equal(get(b, "y@example.com", -1, NULL), 0);
	assert_int_equal(cli_cache_commit(b, err, sizeof err), EMV_OK);
	/* a second writer waits the busy timeout, then gets a clear error */
	t0 = emv_now_ms();
	assert_int_equal(cli_cache_begin(b, 1, err, sizeof err), CLI_CACHE_BUSY);
	assert_true(emv_now_ms() - t0 >= 4000);
	assert_non_null(strstr(err, "busy"));
	assert_non_null(strstr(err, "busy.db"));
	assert_int_equal(cli_cache_commit(a, err, sizeof err), EMV_OK);
	/* once the first is done, the second writes */
	assert_int_equal(cli_cache_begin(b, 1, err, sizeof err), EMV_OK);
	put(b, "z@example.com", EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, NOW);
	assert_int_equal(cli_cache_commit(b, err, sizeof err), EMV_OK);
	assert_int_equal(cli_cache_count(a), 3);
	cli_cache_close(a);
	cli_cache_close(b);
}

static void test_batched_speed(void **state)
{
	cli_cache *c = open_ok("speed.db");
	char err[512], a[64];
	uint64_t t0, t1, t2;
	int n = 200000, hits = 0;
	(void)state;
	t0 = emv_now_ms();
	for (int i = 0; i < n; i++) {
		if (i % 10000 == 0)
			assert_int_equal(cli_cache_begin(c, 1, err, sizeof err), EMV_OK);
		snprintf(a, sizeof a, "user%d@example%d.com", i, i % 97);
		put(c, a, EMV_STATUS_DELIVERABLE, EMV_REASON_ACCEPTED, NOW);
		if (i % 10000 == 9999)
			assert_int_equal(cli_cache_commit(c, err, sizeof err), EMV_OK);
	}
	t1 = emv_now_ms();
	for (int i = 0; i < n; i++) {
		if (i % 10000 == 0)
			assert_int_equal(cli_cache_begin(c, 0, err, sizeof err), EMV_OK);
		snprintf(a, sizeof a, "user%d@example%d.com", i, i % 97);
		hits += get(c, a, -1, NULL);
		if (i % 10000 == 9999)
			assert_int_equal(cli_cache_commit(c, err, sizeof err), EMV_OK);
	}
	t2 = emv_now_ms();
	assert_int_equal(hits, n);
	print_message("file cache: %d stores in %llu ms, %d lookups in %llu ms\n", n, (unsigned long long)(t1 - t0), n,
		      (unsigned long long)(t2 - t1));
	cli_cache_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_serves_by_the_rules),
		cmocka_unit_test(test_unknown_and_older_never_overwrite),
		cmocka_unit_test(test_forget_and_reopen),
		cmocka_unit_test(test_rolled_back_batch_is_not_stored),
		cmocka_unit_test(test_refuses_foreign_and_damaged_files),
		cmocka_unit_test(test_second_writer_waits_then_is_told),
		cmocka_unit_test(test_batched_speed),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
