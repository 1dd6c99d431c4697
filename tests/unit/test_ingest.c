/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_ingest.c - the streaming list reader (emv_ingest) and the
 * de-duplication set (emv_dedup): sample files in tests/data/ingest, inputs
 * generated under /tmp (a 100 KB field, 200,000 rows, gzip members,
 * truncated gzip, stdin through a pipe) and a million-entry dedup set.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "emv_ingest.h"
#include "emv_util.h"

#define DATA EMV_TEST_DATA "/ingest/"

/* One row as read, copied out of the reader's buffers. */
struct got {
	uint64_t row, line;
	int ok; /* email present */
	char email[512];
	size_t email_len;
	char error[320];
	char raw[1024];
	size_t raw_len;
};

#define MAX_GOT 64

static emv_ingest *open_ok(const char *path, const emv_ingest_limits *l)
{
	char err[512] = "";
	emv_ingest *in = emv_ingest_open(path, l, err, sizeof(err));

	if (!in)
		fail_msg("opening %s failed: %s", path, err);
	return in;
}

static void expect_open_error(const char *path, const emv_ingest_limits *l, const char *want)
{
	char err[512] = "";
	emv_ingest *in = emv_ingest_open(path, l, err, sizeof(err));

	if (in) {
		emv_ingest_close(in);
		fail_msg("opening %s should fail with \"%s\" but succeeded", path, want);
	}
	if (!strstr(err, want))
		fail_msg("opening %s: error \"%s\" does not contain \"%s\"", path, err, want);
}

/* Read every row; returns the count (only the first max are kept). */
static size_t collect(emv_ingest *in, struct got *g, size_t max)
{
	emv_ingest_row r;
	size_t n = 0;
	int rc;

	while ((rc = emv_ingest_next(in, &r)) == 1) {
		if (n < max) {
			struct got *x = &g[n];
			memset(x, 0, sizeof(*x));
			x->row = r.row;
			x->line = r.line;
			x->ok = r.email != NULL;
			if (r.email) {
				assert_null(r.error);
				assert_true(r.email_len < sizeof(x->email));
				memcpy(x->email, r.email, r.email_len);
				x->email_len = r.email_len;
				assert_int_equal(r.email[r.email_len], '\0');
			} else {
				assert_non_null(r.error);
				emv_strlcpy(x->error, r.error, sizeof(x->error));
			}
			assert_non_null(r.raw);
			assert_int_equal(strlen(r.raw), r.raw_len);
			x->raw_len = r.raw_len;
			emv_strlcpy(x->raw, r.raw, sizeof(x->raw));
		}
		if (r.row != n + 1)
			fail_msg("row number %llu, expected %zu", (unsigned long long)r.row, n + 1);
		n++;
	}
	if (rc != 0)
		fail_msg("emv_ingest_next returned %d: %s", rc, emv_ingest_error(in));
	assert_int_equal(emv_ingest_next(in, &r), 0); /* stays at the end */
	return n;
}

static size_t read_file(const char *path, const emv_ingest_limits *l, struct got *g, size_t max)
{
	emv_ingest *in = open_ok(path, l);
	size_t n = collect(in, g, max);

	emv_ingest_close(in);
	return n;
}

static void expect_row(const struct got *g, uint64_t row, uint64_t line, const char *email)
{
	if (g->row != row || g->line != line)
		fail_msg("row %llu line %llu, expected row %llu line %llu (email \"%s\", error \"%s\")",
			 (unsigned long long)g->row, (unsigned long long)g->line, (unsigned long long)row,
			 (unsigned long long)line, g->email, g->error);
	if (!g->ok)
		fail_msg("row %llu: error \"%s\", expected email \"%s\"", (unsigned long long)row, g->error, email);
	if (strcmp(g->email, email) != 0)
		fail_msg("row %llu: email \"%s\", expected \"%s\"", (unsigned long long)row, g->email, email);
}

static void expect_error_row(const struct got *g, uint64_t row, uint64_t line, const char *error)
{
	if (g->row != row || g->line != line)
		fail_msg("row %llu line %llu, expected row %llu line %llu", (unsigned long long)g->row,
			 (unsigned long long)g->line, (unsigned long long)row, (unsigned long long)line);
	if (g->ok)
		fail_msg("row %llu: email \"%s\", expected error \"%s\"", (unsigned long long)row, g->email, error);
	if (strcmp(g->error, error) != 0)
		fail_msg("row %llu: error\n  \"%s\", expected\n  \"%s\"", (unsigned long long)row, g->error, error);
}

static void write_bytes(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static char *tmp_path(const char *tag)
{
	static char buf[4][256];
	static int k;
	char *p = buf[k++ & 3];

	snprintf(p, 256, "/tmp/emv_test_ingest_%ld_%s", (long)getpid(), tag);
	return p;
}

/* ---- header by name --------------------------------------------------- */

static void do_test_header_first(void **state)
{
	struct got g[MAX_GOT];
	emv_ingest *in = open_ok(DATA "header_first.csv", NULL);

	assert_int_equal(emv_ingest_email_column(in), 0);
	assert_int_equal(emv_ingest_delimiter(in), ',');
	assert_string_equal(emv_ingest_header(in), "email,name");
	assert_string_equal(emv_ingest_email_column_name(in), "email");
	assert_int_equal(collect(in, g, MAX_GOT), 2);
	expect_row(&g[0], 1, 2, "ann@example.com");
	expect_row(&g[1], 2, 3, "bob@example.com");
	assert_string_equal(g[0].raw, "ann@example.com,Ann");
	emv_ingest_close(in);
}

static void do_test_header_middle_crlf(void **state)
{
	struct got g[MAX_GOT];
	emv_ingest *in = open_ok(DATA "header_middle.csv", NULL);

	assert_int_equal(emv_ingest_email_column(in), 1);
	assert_string_equal(emv_ingest_email_column_name(in), "E-Mail");
	assert_int_equal(collect(in, g, MAX_GOT), 2);
	expect_row(&g[0], 1, 2, "ann@example.com");
	expect_row(&g[1], 2, 3, "bob@example.com");
	assert_string_equal(g[1].raw, "Bob,bob@example.com,2"); /* no CR left */
	emv_ingest_close(in);
}

static void do_test_header_last_semicolon(void **state)
{
	struct got g[MAX_GOT];
	emv_ingest *in = open_ok(DATA "header_last.csv", NULL);

	assert_int_equal(emv_ingest_delimiter(in), ';');
	assert_int_equal(emv_ingest_email_column(in), 2);
	assert_string_equal(emv_ingest_email_column_name(in), "Email Address");
	assert_string_equal(emv_ingest_describe(in),
			    "CSV delimited by ';', header, email column 3 \"Email Address\" (by name)");
	assert_int_equal(collect(in, g, MAX_GOT), 3);
	expect_row(&g[2], 3, 4, "cy@example.com");
	assert_string_equal(g[2].raw, "3,Cy,cy@example.com"); /* re-serialised with ',' */
	emv_ingest_close(in);
}

static void do_test_tab(void **state)
{
	struct got g[MAX_GOT];
	emv_ingest *in = open_ok(DATA "tab.tsv", NULL);

	assert_int_equal(emv_ingest_delimiter(in), '\t');
	assert_int_equal(emv_ingest_email_column(in), 2);
	assert_int_equal(collect(in, g, MAX_GOT), 2);
	expect_row(&g[1], 2, 3, "bob@example.com");
	emv_ingest_close(in);
}

static void do_test_pipe_french_name(void **state)
{
	struct got g[MAX_GOT];
	emv_ingest *in = open_ok(DATA "pipe.txt", NULL);

	assert_int_equal(emv_ingest_delimiter(in), '|');
	assert_int_equal(emv_ingest_email_column(in), 1);
	assert_string_equal(emv_ingest_email_column_name(in), "courriel");
	assert_int_equal(collect(in, g, MAX_GOT), 2);
	expect_row(&g[0], 1, 2, "ann@example.com");
	emv_ingest_close(in);
}

static void do_test_delimiter_inside_quotes(void **state)
{
	struct got g[MAX_GOT];
	emv_ingest *in = open_ok(DATA "quoted_header.csv", NULL);

	/* "Name, full";email;x : the comma is inside quotes */
	assert_int_equal(emv_ingest_delimiter(in), ';');
	assert_string_equal(emv_ingest_header(in), "\"Name, full\",email,x");
	assert_int_equal(collect(in, g, MAX_GOT), 1);
	expect_row(&g[0], 1, 2, "ann@example.com");
	assert_string_equal(g[0].raw, "\"Ann, A\",ann@example.com,1");
	emv_ingest_close(in);
}

static void do_test_header_names(void **state)
{
	static const struct {
		const char *header;
		int col;
	} cases[] = {
		{ "Name,EMAIL,x", 1 },		{ "Name,  e-mail  ,x", 1 },	    { "Name,Email_Address,x", 1 },
		{ "Name,E-Mail-Adresse,x", 1 }, { "Name,Correo electrónico,x", 1 }, { "Name,Adresse courriel,x", 1 },
		{ "Name,x,\"Email\"", 2 },	{ "Email Opt In,Name,Email", 2 }, /* an exact email name beats a mention */
	};
	char buf[256], err[256];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		emv_ingest *in;
		int n = snprintf(buf, sizeof(buf), "%s\nAnn,ann@example.com,bob@example.com\n", cases[i].header);
		in = emv_ingest_open_mem(buf, (size_t)n, "names", NULL, err, sizeof(err));
		if (!in)
			fail_msg("header \"%s\": %s", cases[i].header, err);
		if (emv_ingest_email_column(in) != cases[i].col)
			fail_msg("header \"%s\": column %d, expected %d", cases[i].header, emv_ingest_email_column(in),
				 cases[i].col);
		emv_ingest_close(in);
	}
}

/* ---- detection by content --------------------------------------------- */

static void do_test_content_detection(void **state)
{
	struct got g[MAX_GOT];
	emv_ingest *in = open_ok(DATA "content.csv", NULL);

	assert_int_equal(emv_ingest_email_column(in), 2);
	assert_non_null(strstr(emv_ingest_describe(in), "(by content)"));
	assert_int_equal(collect(in, g, MAX_GOT), 4);
	expect_row(&g[2], 3, 4, "cy@example.com");
	expect_row(&g[3], 4, 5, ""); /* empty email: the address parser decides */
	emv_ingest_close(in);
}

static void do_test_no_header_csv(void **state)
{
	struct got g[MAX_GOT];
	emv_ingest *in = open_ok(DATA "noheader.csv", NULL);

	assert_int_equal(emv_ingest_email_column(in), 0);
	assert_string_equal(emv_ingest_header(in), "");
	assert_string_equal(emv_ingest_email_column_name(in), "");
	assert_int_equal(collect(in, g, MAX_GOT), 3);
	expect_row(&g[0], 1, 1, "ann@example.com");
	expect_row(&g[2], 3, 3, "cy@example.com");
	emv_ingest_close(in);
}

static void do_test_weak_names_need_data(void **state)
{
	struct got g[MAX_GOT];
	emv_ingest *in = open_ok(DATA "weak_names.csv", NULL);

	/* "Email Opt In" holds yes/no, "Address" is postal: "Contact" has the addresses */
	assert_int_equal(emv_ingest_email_column(in), 1);
	assert_string_equal(emv_ingest_email_column_name(in), "Contact");
	assert_int_equal(collect(in, g, MAX_GOT), 3);
	emv_ingest_close(in);

	in = open_ok(DATA "google.csv", NULL);
	assert_int_equal(emv_ingest_email_column(in), 2); /* "E-mail 1 - Value", not "- Type" */
	emv_ingest_close(in);
}

/* ---- quoting, line ends, encodings ------------------------------------ */

static void do_test_quoted_fields(void **state)
{
	struct got g[MAX_GOT];

	assert_int_equal(read_file(DATA "quoted.csv", NULL, g, MAX_GOT), 6);
	expect_row(&g[0], 1, 2, "ann@example.com");
	assert_string_equal(g[0].raw, "\"Smith, Ann\",ann@example.com,\"multi\r\nline\r\nnote\"");
	expect_row(&g[1], 2, 5, "bob@example.com");
	assert_string_equal(g[1].raw, "Bob,bob@example.com,\"he said \"\"hi\"\"\"");
	expect_row(&g[2], 3, 6, "carol@example.com"); /* space after the closing quote */
	assert_string_equal(g[2].raw, "Carol,carol@example.com,  x");
	expect_row(&g[3], 4, 7, "dan@example.com"); /* LF inside quotes: one more line */
	expect_row(&g[4], 5, 9, "eve@example.com"); /* CR inside quotes: one more line */
	/* text after a closing quote: the field is taken literally */
	expect_row(&g[5], 6, 11, "\"fay smith\"@example.com");
}

static void do_test_bom(void **state)
{
	struct got g[MAX_GOT];
	emv_ingest *in = open_ok(DATA "bom.csv", NULL);

	assert_string_equal(emv_ingest_email_column_name(in), "Email");
	assert_string_equal(emv_ingest_header(in), "Email,Name");
	assert_non_null(strstr(emv_ingest_describe(in), "BOM"));
	assert_int_equal(collect(in, g, MAX_GOT), 1);
	expect_row(&g[0], 1, 2, "ann@example.com");
	emv_ingest_close(in);
}

static void do_test_cr_line_ends(void **state)
{
	struct got g[MAX_GOT];

	assert_int_equal(read_file(DATA "cr.csv", NULL, g, MAX_GOT), 2);
	expect_row(&g[0], 1, 2, "ann@example.com");
	assert_string_equal(g[0].raw, "ann@example.com,\"two\rlines\"");
	expect_row(&g[1], 2, 4, "bob@example.com");
}

static void do_test_invalid_utf8_passed_through(void **state)
{
	struct got g[MAX_GOT];

	assert_int_equal(read_file(DATA "latin1.csv", NULL, g, MAX_GOT), 2);
	assert_true(g[0].ok);
	assert_string_equal(g[0].email, "j\xe9r\xf4me@example.com");
	expect_row(&g[1], 2, 3, "ann@example.com");
}

static void do_test_gzip_file(void **state)
{
	struct got g[MAX_GOT];
	emv_ingest *in = open_ok(DATA "list.csv.gz", NULL);
	struct stat st;

	assert_int_equal(stat(DATA "list.csv.gz", &st), 0);
	assert_non_null(strstr(emv_ingest_describe(in), "gzip"));
	assert_int_equal(emv_ingest_input_size(in), (uint64_t)st.st_size);
	assert_int_equal(collect(in, g, MAX_GOT), 2);
	expect_row(&g[1], 2, 3, "bob@example.com");
	assert_int_equal(emv_ingest_bytes_read(in), (uint64_t)st.st_size);
	emv_ingest_close(in);
}

static void do_test_gzip_members_and_truncation(void **state)
{
	char *path = tmp_path("members.gz"), *cut = tmp_path("cut.gz");
	struct got g[MAX_GOT];
	emv_ingest_limits l;
	emv_ingest_row r;
	emv_ingest *in;
	gzFile z;
	char *buf;
	size_t n, i;
	int rc;
	FILE *f;
	struct stat st;

	/* two gzip members, as `cat a.gz b.gz` makes */
	z = gzopen(path, "wb");
	assert_non_null(z);
	assert_true(gzputs(z, "email\nann@example.com\n") > 0);
	gzclose(z);
	z = gzopen(path, "ab");
	assert_non_null(z);
	assert_true(gzputs(z, "bob@example.com\n") > 0);
	gzclose(z);
	assert_int_equal(read_file(path, NULL, g, MAX_GOT), 2);
	expect_row(&g[1], 2, 3, "bob@example.com");

	/* truncated in mid-stream: rows first, then -1, and -1 again */
	z = gzopen(path, "wb");
	assert_non_null(z);
	assert_true(gzputs(z, "email\n") > 0);
	for (i = 0; i < 50000; i++)
		gzprintf(z, "user%zu.%lu@example%zu.com\n", i, (unsigned long)(i * 2654435761u), i % 97);
	gzclose(z);
	assert_int_equal(stat(path, &st), 0);
	buf = emv_xmalloc((size_t)st.st_size);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fread(buf, 1, (size_t)st.st_size, f), (size_t)st.st_size);
	fclose(f);
	write_bytes(cut, buf, (size_t)st.st_size / 2);
	free(buf);
	emv_ingest_limits_default(&l);
	l.detect_bytes = 4096;
	in = open_ok(cut, &l);
	n = 0;
	while ((rc = emv_ingest_next(in, &r)) == 1)
		n++;
	assert_int_equal(rc, -1);
	assert_true(n > 1000 && n < 50000);
	assert_non_null(strstr(emv_ingest_error(in), "truncated gzip data"));
	assert_int_equal(emv_ingest_next(in, &r), -1);
	emv_ingest_close(in);
	unlink(path);
	unlink(cut);
}

/* ---- one address per line --------------------------------------------- */

static void do_test_one_per_line(void **state)
{
	struct got g[MAX_GOT];
	emv_ingest *in = open_ok(DATA "list.txt", NULL);
	emv_ingest_stats st;

	assert_int_equal(emv_ingest_email_column(in), -1);
	assert_int_equal(emv_ingest_delimiter(in), 0);
	assert_string_equal(emv_ingest_header(in), "");
	assert_string_equal(emv_ingest_describe(in), "one address per line, no header");
	assert_int_equal(collect(in, g, MAX_GOT), 5);
	expect_row(&g[0], 1, 1, "ann@example.com");
	expect_row(&g[1], 2, 3, "bob@example.com"); /* blank line 2 skipped */
	expect_row(&g[2], 3, 4, "cy@example.com");  /* trimmed */
	assert_string_equal(g[2].raw, "  cy@example.com  ");
	expect_row(&g[3], 4, 5, "\"dee smith\"@example.com"); /* quoted local part kept */
	expect_row(&g[4], 5, 6, "eve@example.com");	      /* wholly quoted line unquoted */
	emv_ingest_get_stats(in, &st);
	assert_int_equal(st.rows, 5);
	assert_int_equal(st.lines, 6);
	emv_ingest_close(in);
}

static void do_test_one_column_headers(void **state)
{
	struct got g[MAX_GOT];
	emv_ingest *in = open_ok(DATA "list_header.txt", NULL);

	assert_int_equal(emv_ingest_email_column(in), 0);
	assert_string_equal(emv_ingest_header(in), "E-mail");
	assert_int_equal(collect(in, g, MAX_GOT), 2);
	expect_row(&g[0], 1, 2, "ann@example.com");
	emv_ingest_close(in);

	in = open_ok(DATA "contacts.txt", NULL); /* a word, then addresses */
	assert_int_equal(emv_ingest_email_column(in), 0);
	assert_string_equal(emv_ingest_header(in), "Contacts");
	assert_int_equal(collect(in, g, MAX_GOT), 2);
	emv_ingest_close(in);

	in = open_ok(DATA "garbage_first.txt", NULL); /* a mangled address is data */
	assert_int_equal(emv_ingest_email_column(in), -1);
	assert_int_equal(collect(in, g, MAX_GOT), 3);
	expect_row(&g[0], 1, 1, "ann.example.com");
	emv_ingest_close(in);
}

static void do_test_one_column_mangled_first_line(void **state)
{
	static const char data[] = "mail.example.com\nann@example.com\nbob@example.com\n";
	struct got g[MAX_GOT];
	char err[256];
	emv_ingest *in = emv_ingest_open_mem(data, sizeof(data) - 1, "m", NULL, err, sizeof(err));

	/* mentions "mail" but is no word: data, not a header */
	assert_non_null(in);
	assert_int_equal(emv_ingest_email_column(in), -1);
	assert_int_equal(collect(in, g, MAX_GOT), 3);
	expect_row(&g[0], 1, 1, "mail.example.com");
	emv_ingest_close(in);
}

static void do_test_stdin_pipe(void **state)
{
	static const char data[] = "email,name\nann@example.com,Ann\nbob@example.com,Bob\n";
	struct got g[MAX_GOT];
	int fds[2], saved;
	emv_ingest *in;

	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], data, sizeof(data) - 1), (ssize_t)(sizeof(data) - 1));
	close(fds[1]);
	saved = dup(STDIN_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(fds[0], STDIN_FILENO), STDIN_FILENO);
	close(fds[0]);
	in = open_ok("-", NULL);
	assert_int_equal(emv_ingest_input_size(in), 0); /* a pipe has no size */
	assert_int_equal(collect(in, g, MAX_GOT), 2);
	expect_row(&g[1], 2, 3, "bob@example.com");
	emv_ingest_close(in);
	assert_int_equal(dup2(saved, STDIN_FILENO), STDIN_FILENO);
	close(saved);
}

/* ---- file-level errors ------------------------------------------------ */

static void do_test_empty_file(void **state)
{
	expect_open_error(DATA "empty.csv", NULL, "empty.csv: empty file");
	expect_open_error(DATA "blank.csv", NULL, "empty file (only blank lines)");
}

static void do_test_header_only(void **state)
{
	struct got g[MAX_GOT];
	emv_ingest *in = open_ok(DATA "header_only.csv", NULL);

	assert_int_equal(emv_ingest_email_column(in), 0);
	assert_int_equal(collect(in, g, MAX_GOT), 0);
	emv_ingest_close(in);
}

static void do_test_binary(void **state)
{
	char *path = tmp_path("ctrl.bin");
	char buf[4096];
	size_t i;

	expect_open_error(DATA "binary.bin", NULL, "binary data (NUL byte at offset 7)");
	expect_open_error(DATA "xlsx.xlsx", NULL, "ZIP archive");
	expect_open_error(DATA "utf16.csv", NULL, "UTF-16");
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i % 3 == 0 ? 0x01 : 'a' + (char)(i % 26));
	write_bytes(path, buf, sizeof(buf));
	expect_open_error(path, NULL, "control characters");
	unlink(path);
}

static void do_test_missing_file(void **state)
{
	expect_open_error(DATA "no-such-file.csv", NULL, "no-such-file.csv: No such file or directory");
	expect_open_error(EMV_TEST_DATA, NULL, "is a directory");
	expect_open_error("", NULL, "no input file");
}

static void do_test_no_email_column(void **state)
{
	expect_open_error(DATA "noemail.csv", NULL, "no email column; header fields: \"name\", \"phone\", \"city\"");
	expect_open_error(DATA "names.txt", NULL, "no email addresses");
}

static void do_test_invalid_limits(void **state)
{
	emv_ingest_limits l;

	emv_ingest_limits_default(&l);
	l.max_field = 0;
	expect_open_error(DATA "header_first.csv", &l, "invalid ingest limits");
}

static void do_test_header_row_broken(void **state)
{
	emv_ingest_limits l;
	char err[256];
	static const char data[] = "a,b,c\nx,y,z@example.com\n";

	emv_ingest_limits_default(&l);
	l.max_fields = 2;
	assert_null(emv_ingest_open_mem(data, sizeof(data) - 1, "h.csv", &l, err, sizeof(err)));
	assert_string_equal(err, "h.csv: cannot read the header row: line 1: 3 fields; the limit is 2");
}

/* ---- row-level errors ------------------------------------------------- */

static void do_test_long_line_among_valid_rows(void **state)
{
	char *path = tmp_path("long.csv");
	struct got g[MAX_GOT];
	size_t big = 102400, i;
	char *buf = emv_xmalloc(big + 1024);
	size_t n = 0;

	n += (size_t)sprintf(buf + n, "email,name\nann@example.com,Ann\nbob@example.com,Bob\n");
	n += (size_t)sprintf(buf + n, "cy@example.com,");
	for (i = 0; i < big; i++)
		buf[n++] = 'x';
	n += (size_t)sprintf(buf + n, "\ndee@example.com,Dee\neve@example.com,Eve\n");
	write_bytes(path, buf, n);
	free(buf);

	assert_int_equal(read_file(path, NULL, g, MAX_GOT), 5);
	expect_row(&g[0], 1, 2, "ann@example.com");
	expect_row(&g[1], 2, 3, "bob@example.com");
	expect_error_row(&g[2], 3, 4, "line 4: field 2 is 102400 bytes; the limit is 4096");
	assert_true(g[2].raw_len > 0);
	expect_row(&g[3], 4, 5, "dee@example.com");
	expect_row(&g[4], 5, 6, "eve@example.com");
	unlink(path);
}

static void do_test_field_limit_message(void **state)
{
	static const char data[] = "email,name\nann@example.com,0123456789\nbob@example.com,Bob\n";
	struct got g[MAX_GOT];
	emv_ingest_limits l;
	char err[256];
	emv_ingest *in;

	emv_ingest_limits_default(&l);
	l.max_field = 16;
	in = emv_ingest_open_mem(data, sizeof(data) - 1, "m", &l, err, sizeof(err));
	assert_non_null(in);
	assert_int_equal(collect(in, g, MAX_GOT), 2);
	expect_row(&g[0], 1, 2, "ann@example.com");
	expect_row(&g[1], 2, 3, "bob@example.com");
	emv_ingest_close(in);

	l.max_field = 8;
	in = emv_ingest_open_mem(data, sizeof(data) - 1, "m", &l, err, sizeof(err));
	assert_non_null(in);
	assert_int_equal(collect(in, g, MAX_GOT), 2);
	expect_error_row(&g[0], 1, 2, "line 2: field 1 is 15 bytes; the limit is 8");
	expect_error_row(&g[1], 2, 3, "line 3: field 1 is 15 bytes; the limit is 8");
	emv_ingest_close(in);
}

static void do_test_too_many_fields(void **state)
{
	static const char data[] = "email,a\nann@example.com,1,2,3,4\nbob@example.com,1\n";
	struct got g[MAX_GOT];
	emv_ingest_limits l;
	char err[256];
	emv_ingest *in;

	emv_ingest_limits_default(&l);
	l.max_fields = 3;
	in = emv_ingest_open_mem(data, sizeof(data) - 1, "m", &l, err, sizeof(err));
	assert_non_null(in);
	assert_int_equal(collect(in, g, MAX_GOT), 2);
	expect_error_row(&g[0], 1, 2, "line 2: 5 fields; the limit is 3");
	assert_string_equal(g[0].raw, "ann@example.com,1,2"); /* what was kept */
	expect_row(&g[1], 2, 3, "bob@example.com");
	emv_ingest_close(in);
}

static void do_test_row_limit(void **state)
{
	static const char data[] = "email,a,b\nann@example.com,0123456789,0123456789\nbob@example.com,1,2\n";
	struct got g[MAX_GOT];
	emv_ingest_limits l;
	char err[256];
	emv_ingest *in;

	emv_ingest_limits_default(&l);
	l.max_row = 30;
	in = emv_ingest_open_mem(data, sizeof(data) - 1, "m", &l, err, sizeof(err));
	assert_non_null(in);
	assert_int_equal(collect(in, g, MAX_GOT), 2);
	expect_error_row(&g[0], 1, 2, "line 2: row is 37 bytes; the limit is 30");
	expect_row(&g[1], 2, 3, "bob@example.com");
	emv_ingest_close(in);
}

static void do_test_short_rows(void **state)
{
	struct got g[MAX_GOT];

	assert_int_equal(read_file(DATA "short_rows.csv", NULL, g, MAX_GOT), 3);
	expect_row(&g[0], 1, 2, "ann@example.com");
	expect_error_row(&g[1], 2, 3, "line 3: 2 fields; the email column is field 3 (\"email\")");
	assert_string_equal(g[1].raw, "Bob,2");
	expect_error_row(&g[2], 3, 4, "line 4: 1 field; the email column is field 3 (\"email\")");
}

static void do_test_blank_rows_skipped(void **state)
{
	struct got g[MAX_GOT];
	emv_ingest *in = open_ok(DATA "blank_rows.csv", NULL);
	emv_ingest_stats st;

	assert_int_equal(collect(in, g, MAX_GOT), 2);
	expect_row(&g[0], 1, 3, "ann@example.com");
	expect_row(&g[1], 2, 6, "bob@example.com");
	emv_ingest_get_stats(in, &st);
	assert_int_equal(st.blank_rows, 2); /* ",," and " , " (empty lines are not rows) */
	assert_int_equal(st.error_rows, 0);
	assert_int_equal(st.lines, 6);
	emv_ingest_close(in);
}

static void do_test_runaway_quote_eof(void **state)
{
	struct got g[MAX_GOT];

	assert_int_equal(read_file(DATA "runaway_eof.csv", NULL, g, MAX_GOT), 3);
	expect_error_row(&g[0], 1, 2,
			 "line 2: quoted field 1 is not closed by the end of the "
			 "input; line 2 rejected, reading resumes at line 3");
	expect_row(&g[1], 2, 3, "ann@example.com");
	expect_row(&g[2], 3, 4, "bob@example.com");
}

static void do_test_runaway_quote_lines(void **state)
{
	struct got g[MAX_GOT];
	emv_ingest_limits l;

	emv_ingest_limits_default(&l);
	l.max_row_lines = 3;
	assert_int_equal(read_file(DATA "runaway.csv", &l, g, MAX_GOT), 5);
	expect_error_row(&g[0], 1, 2,
			 "line 2: quoted field 2 is still open after the line limit "
			 "of 3 lines; line 2 rejected, reading resumes at line 3");
	assert_string_equal(g[0].raw, "ann@example.com,stray");
	expect_row(&g[1], 2, 3, "bob@example.com");
	expect_row(&g[2], 3, 4, "cy@example.com");
	expect_row(&g[3], 4, 5, "dee@example.com");
	expect_row(&g[4], 5, 6, "eve@example.com");
}

static void do_test_runaway_quote_bytes(void **state)
{
	struct got g[MAX_GOT];
	emv_ingest_limits l;

	emv_ingest_limits_default(&l);
	l.max_row = 40;
	assert_int_equal(read_file(DATA "runaway.csv", &l, g, MAX_GOT), 5);
	expect_error_row(&g[0], 1, 2,
			 "line 2: quoted field 2 is still open after the row limit "
			 "of 40 bytes; line 2 rejected, reading resumes at line 3");
	expect_row(&g[1], 2, 3, "bob@example.com");
	expect_row(&g[4], 5, 6, "eve@example.com");
}

/* ---- the same rows whatever the chunking or the source ---------------- */

static void expect_same(const struct got *a, size_t na, const struct got *b, size_t nb, const char *what)
{
	size_t i;

	if (na != nb)
		fail_msg("%s: %zu rows vs %zu", what, na, nb);
	for (i = 0; i < na && i < MAX_GOT; i++) {
		if (a[i].row != b[i].row || a[i].line != b[i].line || a[i].ok != b[i].ok ||
		    strcmp(a[i].email, b[i].email) != 0 || strcmp(a[i].error, b[i].error) != 0 ||
		    strcmp(a[i].raw, b[i].raw) != 0)
			fail_msg("%s: row %zu differs (line %llu/%llu, \"%s\"/\"%s\", \"%s\"/\"%s\")", what, i + 1,
				 (unsigned long long)a[i].line, (unsigned long long)b[i].line, a[i].email, b[i].email,
				 a[i].error, b[i].error);
	}
}

static const char *const chunk_files[] = {
	"quoted.csv",	   "cr.csv",	  "list.txt",	       "bom.csv",	 "runaway.csv",
	"runaway_eof.csv", "list.csv.gz", "header_middle.csv", "blank_rows.csv", "latin1.csv",
};

static void do_test_chunk_sizes(void **state)
{
	static const size_t chunks[] = { 1, 2, 3, 5, 17 };
	static struct got a[MAX_GOT], b[MAX_GOT];
	emv_ingest_limits l;
	char path[512], what[600];
	size_t f, c, na, nb;

	for (f = 0; f < sizeof(chunk_files) / sizeof(chunk_files[0]); f++) {
		snprintf(path, sizeof(path), DATA "%s", chunk_files[f]);
		emv_ingest_limits_default(&l);
		l.max_row_lines = 3; /* runaway.csv runs away */
		na = read_file(path, &l, a, MAX_GOT);
		for (c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
			l.read_chunk = chunks[c];
			nb = read_file(path, &l, b, MAX_GOT);
			snprintf(what, sizeof(what), "%s with %zu-byte reads", chunk_files[f], chunks[c]);
			expect_same(a, na, b, nb, what);
		}
	}
}

static void do_test_open_mem_same_as_file(void **state)
{
	static struct got a[MAX_GOT], b[MAX_GOT];
	char path[512], err[256], buf[8192];
	size_t f, na, nb, len;
	emv_ingest *in;
	FILE *fp;

	for (f = 0; f < sizeof(chunk_files) / sizeof(chunk_files[0]); f++) {
		snprintf(path, sizeof(path), DATA "%s", chunk_files[f]);
		na = read_file(path, NULL, a, MAX_GOT);
		fp = fopen(path, "rb");
		assert_non_null(fp);
		len = fread(buf, 1, sizeof(buf), fp);
		fclose(fp);
		in = emv_ingest_open_mem(buf, len, chunk_files[f], NULL, err, sizeof(err));
		if (!in)
			fail_msg("%s from memory: %s", chunk_files[f], err);
		assert_int_equal(emv_ingest_input_size(in), len);
		nb = collect(in, b, MAX_GOT);
		assert_int_equal(emv_ingest_bytes_read(in), len);
		emv_ingest_close(in);
		expect_same(a, na, b, nb, chunk_files[f]);
	}
}

/* ---- volume ----------------------------------------------------------- */

static void do_test_200k_rows_bounded_memory(void **state)
{
	char *path = tmp_path("200k.csv");
	FILE *f = fopen(path, "w");
	const uint64_t rows = 200000;
	emv_ingest_row r;
	emv_ingest *in;
	size_t peak = 0, mem;
	uint64_t n = 0, t0, us, i;
	int rc;

	assert_non_null(f);
	fprintf(f, "id,first,last,\"E-mail\",note\n");
	for (i = 0; i < rows; i++) {
		if (i % 1000 == 7)
			fprintf(f, "%llu,\"Ann, %llu\",Smith,ann%llu@example.com,\"two\nlines\"\n",
				(unsigned long long)i, (unsigned long long)i, (unsigned long long)i);
		else
			fprintf(f, "%llu,First%llu,Last,user%llu@example%llu.com,note\r\n", (unsigned long long)i,
				(unsigned long long)i, (unsigned long long)i, (unsigned long long)(i % 500));
	}
	assert_int_equal(fclose(f), 0);

	t0 = emv_now_us();
	in = open_ok(path, NULL);
	while ((rc = emv_ingest_next(in, &r)) == 1) {
		n++;
		if (r.row != n || !r.email)
			fail_msg("row %llu: expected row %llu with an email (%s)", (unsigned long long)r.row,
				 (unsigned long long)n, r.error ? r.error : "");
		if ((n & 1023) == 0 && (mem = emv_ingest_memory(in)) > peak)
			peak = mem;
	}
	us = emv_now_us() - t0;
	assert_int_equal(rc, 0);
	assert_int_equal(n, rows);
	printf("ingest: %llu rows in %.3f s = %.0f rows/s, peak handle memory %zu bytes\n", (unsigned long long)n,
	       (double)us / 1e6, (double)n * 1e6 / (double)(us ? us : 1), peak);
	assert_true(peak < 2 * 1024 * 1024);
	emv_ingest_close(in);
	unlink(path);
}

/* ---- dedup ------------------------------------------------------------ */

static void do_test_dedup_basic(void **state)
{
	emv_dedup *d = emv_dedup_new(0);
	uint64_t first = 0;

	assert_int_equal(emv_dedup_add(d, "a@example.com", 13, 1, &first), 1);
	assert_int_equal(first, 1);
	assert_int_equal(emv_dedup_add(d, "A@example.com", 13, 2, &first), 1); /* local part case kept */
	assert_int_equal(emv_dedup_add(d, "a@example.com", 13, 3, &first), 0);
	assert_int_equal(first, 1);
	assert_int_equal(emv_dedup_add(d, "a@example.co", 12, 4, NULL), 1); /* prefix is not equal */
	assert_int_equal(emv_dedup_add(d, "", 0, 5, &first), 1);
	assert_int_equal(emv_dedup_add(d, "", 0, 6, &first), 0);
	assert_int_equal(first, 5);
	assert_int_equal(emv_dedup_find(d, "A@example.com", 13, &first), 1);
	assert_int_equal(first, 2);
	assert_int_equal(emv_dedup_find(d, "b@example.com", 13, &first), 0);
	assert_int_equal(emv_dedup_count(d), 4);
	assert_true(emv_dedup_memory(d) > 0);
	emv_dedup_free(d);
	emv_dedup_free(NULL);
}

static void do_test_dedup_million(void **state)
{
	const uint64_t n = 1000000;
	emv_dedup *d = emv_dedup_new(0);
	char key[64];
	uint64_t i, first, t0, us, keybytes = 0;
	size_t mem;

	t0 = emv_now_us();
	for (i = 0; i < n; i++) {
		int len = snprintf(key, sizeof(key), "user%llu@example%llu.com", (unsigned long long)i,
				   (unsigned long long)(i % 1000));
		keybytes += (uint64_t)len;
		if (emv_dedup_add(d, key, (size_t)len, i + 1, &first) != 1)
			fail_msg("%s reported as a duplicate of row %llu", key, (unsigned long long)first);
	}
	us = emv_now_us() - t0;
	assert_int_equal(emv_dedup_count(d), n);
	for (i = 0; i < n; i += 7) {
		int len = snprintf(key, sizeof(key), "user%llu@example%llu.com", (unsigned long long)i,
				   (unsigned long long)(i % 1000));
		assert_int_equal(emv_dedup_add(d, key, (size_t)len, n + i, &first), 0);
		if (first != i + 1)
			fail_msg("%s: first row %llu, expected %llu", key, (unsigned long long)first,
				 (unsigned long long)(i + 1));
	}
	for (i = 0; i < 1000; i++) {
		int len = snprintf(key, sizeof(key), "absent%llu@example.com", (unsigned long long)i);
		assert_int_equal(emv_dedup_find(d, key, (size_t)len, NULL), 0);
	}
	assert_int_equal(emv_dedup_count(d), n);
	mem = emv_dedup_memory(d);
	printf("dedup: %llu adds in %.3f s (%.0f/s); %zu bytes = %.1f bytes/entry "
	       "(keys average %.1f bytes)\n",
	       (unsigned long long)n, (double)us / 1e6, (double)n * 1e6 / (double)(us ? us : 1), mem,
	       (double)mem / (double)n, (double)keybytes / (double)n);
	assert_true(mem / n < 96);
	emv_dedup_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(do_test_header_first),
		cmocka_unit_test(do_test_header_middle_crlf),
		cmocka_unit_test(do_test_header_last_semicolon),
		cmocka_unit_test(do_test_tab),
		cmocka_unit_test(do_test_pipe_french_name),
		cmocka_unit_test(do_test_delimiter_inside_quotes),
		cmocka_unit_test(do_test_header_names),
		cmocka_unit_test(do_test_content_detection),
		cmocka_unit_test(do_test_no_header_csv),
		cmocka_unit_test(do_test_weak_names_need_data),
		cmocka_unit_test(do_test_quoted_fields),
		cmocka_unit_test(do_test_bom),
		cmocka_unit_test(do_test_cr_line_ends),
		cmocka_unit_test(do_test_invalid_utf8_passed_through),
		cmocka_unit_test(do_test_gzip_file),
		cmocka_unit_test(do_test_gzip_members_and_truncation),
		cmocka_unit_test(do_test_one_per_line),
		cmocka_unit_test(do_test_one_column_headers),
		cmocka_unit_test(do_test_one_column_mangled_first_line),
		cmocka_unit_test(do_test_stdin_pipe),
		cmocka_unit_test(do_test_empty_file),
		cmocka_unit_test(do_test_header_only),
		cmocka_unit_test(do_test_binary),
		cmocka_unit_test(do_test_missing_file),
		cmocka_unit_test(do_test_no_email_column),
		cmocka_unit_test(do_test_invalid_limits),
		cmocka_unit_test(do_test_header_row_broken),
		cmocka_unit_test(do_test_long_line_among_valid_rows),
		cmocka_unit_test(do_test_field_limit_message),
		cmocka_unit_test(do_test_too_many_fields),
		cmocka_unit_test(do_test_row_limit),
		cmocka_unit_test(do_test_short_rows),
		cmocka_unit_test(do_test_blank_rows_skipped),
		cmocka_unit_test(do_test_runaway_quote_eof),
		cmocka_unit_test(do_test_runaway_quote_lines),
		cmocka_unit_test(do_test_runaway_quote_bytes),
		cmocka_unit_test(do_test_chunk_sizes),
		cmocka_unit_test(do_test_open_mem_same_as_file),
		cmocka_unit_test(do_test_200k_rows_bounded_memory),
		cmocka_unit_test(do_test_dedup_basic),
		cmocka_unit_test(do_test_dedup_million),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
