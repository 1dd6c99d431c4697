/* SPDX-License-Identifier: Apache-2.0 */
/*
 * files_harness.h - the integration tests' small file helpers: write a test
 * input, read a program's output or a server's log whole, and a log's size
 * (to read only what a test step added to it).
 */
#ifndef EMV_TEST_FILES_HARNESS_H
#define EMV_TEST_FILES_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <cmocka.h>

static inline void test_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* The size of path in bytes; 0 when it does not exist (yet). */
static inline long test_file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* The whole of path, NUL-terminated (free() it); NULL when it cannot be read. */
static inline char *test_read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	long n = test_file_size(path);
	char *buf;
	if (!f)
		return NULL;
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	n = (long)fread(buf, 1, (size_t)n, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

#endif
