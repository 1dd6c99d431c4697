/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_ingest.c - libFuzzer target for the list reader (emv_ingest).
 *
 * The first input byte picks the limits (small ones, so that every limit
 * and the runaway-quote recovery are reached, or the defaults) and a small
 * read size; the rest is the file.  Each input is read three times: in
 * default-size reads, in small reads, and gzip-compressed.  Any bytes must
 * read without a crash, and the three readings must agree exactly (same
 * open error or the same rows), because chunking and compression must not
 * change what a file says.  Each reading keeps the promises of
 * emv_ingest.h: rows numbered 1, 2, 3..., start lines strictly increasing,
 * an email or an error (never both), the email within max_field bytes and
 * NUL-terminated, raw within its bound, errors printable ASCII, and the
 * handle's memory bounded by the limits.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "emv_ingest.h"
#include "emv_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                    \
	do {                                                                           \
		if (!(cond)) {                                                         \
			fprintf(stderr, "fuzz_ingest: invariant failed: %s\n", #cond); \
			abort();                                                       \
		}                                                                      \
	} while (0)

struct reading {
	int gzip; /* input starts with the gzip magic */
	int opened;
	int rc; /* last emv_ingest_next() result */
	char err[512];
	uint64_t rows;
	uint64_t digest; /* FNV-1a over every row's numbers, email, error and raw */
};

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= s[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static void printable(const char *s)
{
	for (; *s; s++)
		CHECK(*s >= 0x20 && *s <= 0x7e);
}

static void read_all(const void *buf, size_t len, const emv_ingest_limits *l, struct reading *out)
{
	emv_ingest *in;
	emv_ingest_row r;
	uint64_t prev_line = 0, h = 0xcbf29ce484222325ull;
	size_t mem_bound;
	int rc;

	memset(out, 0, sizeof(*out));
	out->gzip = len >= 2 && ((const unsigned char *)buf)[0] == 0x1f && ((const unsigned char *)buf)[1] == 0x8b;
	in = emv_ingest_open_mem(buf, len, "fuzz", l, out->err, sizeof(out->err));
	if (!in) {
		CHECK(out->err[0] != '\0');
		printable(out->err);
		return;
	}
	out->opened = 1;
	CHECK(emv_ingest_email_column(in) >= -1);
	CHECK(emv_ingest_header(in) != NULL); /* original bytes: anything */
	printable(emv_ingest_describe(in));
	printable(emv_ingest_email_column_name(in));
	/* buffers scale with the limits; zlib adds about 45 KiB */
	mem_bound = 4 * l->max_row + 64 * l->max_fields + 4 * l->max_field + l->detect_bytes + 3 * l->read_chunk +
		    256 * 1024;
	while ((rc = emv_ingest_next(in, &r)) == 1) {
		out->rows++;
		CHECK(r.row == out->rows);
		CHECK(r.line > prev_line);
		prev_line = r.line;
		CHECK((r.email == NULL) != (r.error == NULL));
		if (r.email) {
			CHECK(r.email_len <= l->max_field);
			CHECK(r.email[r.email_len] == '\0');
			h = mix(h, r.email, r.email_len);
		} else {
			printable(r.error);
			CHECK(strncmp(r.error, "line ", 5) == 0);
			h = mix(h, r.error, strlen(r.error));
		}
		CHECK(r.raw != NULL && r.raw[r.raw_len] == '\0');
		CHECK(r.raw_len <= 2 * l->max_row + 4 * l->max_fields + 16);
		h = mix(h, &r.row, sizeof(r.row));
		h = mix(h, &r.line, sizeof(r.line));
		h = mix(h, r.raw, r.raw_len);
		CHECK(emv_ingest_memory(in) <= mem_bound);
	}
	/* Only corrupt gzip can fail in mid-stream, and then for good. */
	CHECK(rc == 0 || (rc == -1 && out->gzip));
	if (rc < 0) {
		CHECK(emv_ingest_error(in)[0] != '\0');
		printable(emv_ingest_error(in));
	}
	CHECK(emv_ingest_next(in, &r) == rc);
	out->rc = rc;
	out->digest = h;
	emv_ingest_close(in);
}

/* gzip-compress buf (an allocated copy, freed by the caller). */
static unsigned char *gzip_copy(const uint8_t *buf, size_t len, size_t *outlen)
{
	z_stream zs;
	size_t cap = len + len / 8 + 128;
	unsigned char *out = emv_xmalloc(cap);

	memset(&zs, 0, sizeof(zs));
	CHECK(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
	zs.next_in = (Bytef *)(uintptr_t)buf;
	zs.avail_in = (uInt)len;
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	CHECK(deflate(&zs, Z_FINISH) == Z_STREAM_END);
	*outlen = zs.total_out;
	deflateEnd(&zs);
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	emv_ingest_limits l;
	struct reading a, b, c;
	unsigned char *buf, *gz;
	size_t gzlen;
	uint8_t sel;

	if (size < 1 || size > 1 << 20)
		return 0;
	sel = data[0];
	data++, size--;
	emv_ingest_limits_default(&l);
	if (sel & 1) {
		l.max_field = 24;
		l.max_fields = 6;
		l.max_row = 96;
		l.max_row_lines = 4;
		l.detect_rows = 6;
		l.detect_bytes = 512;
	}

	/* Copy so that ASan catches any read past size. */
	buf = emv_xmalloc(size);
	if (size)
		memcpy(buf, data, size);

	read_all(buf, size, &l, &a);
	l.read_chunk = 1 + (sel >> 1) % 13;
	read_all(buf, size, &l, &b);

	/* Gzip input may be corrupt, and where a failure shows up can depend
	 * on the read size: for it, only the per-reading promises hold. */
	if (!a.gzip) {
		CHECK(a.opened == b.opened);
		CHECK(strcmp(a.err, b.err) == 0);
		CHECK(a.rows == b.rows && a.digest == b.digest);

		/* the same bytes gzip-compressed read the same */
		gz = gzip_copy(buf, size, &gzlen);
		read_all(gz, gzlen, &l, &c);
		CHECK(a.opened == c.opened);
		CHECK(a.rows == c.rows && a.digest == c.digest);
		free(gz);
	}
	free(buf);
	return 0;
}
