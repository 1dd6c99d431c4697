/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_ingest_source.c - where the list's bytes come from: read(2) or a
 * buffer, gzip through zlib's inflate (bounded memory, several members),
 * and the sniffer over the first bytes (format magic, binary content,
 * byte-order mark).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "emv_ingest_internal.h"
#include "emv_utf8.h"
#include "emv_util.h"

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
	emv_ingest *in = opaque;
	size_t n = (size_t)items * size;
	size_t *p = emv_xmalloc(n + 16);

	p[0] = n;
	in->zmem += n;
	return (char *)p + 16;
}

static void z_free(voidpf opaque, voidpf ptr)
{
	emv_ingest *in = opaque;
	size_t *p;

	if (!ptr)
		return;
	p = (size_t *)(void *)((char *)ptr - 16);
	in->zmem -= p[0];
	free(p);
}

static ssize_t raw_read(emv_ingest *in, void *buf, size_t cap)
{
	if (in->is_mem) {
		size_t n = in->mem_len - in->mem_pos;
		if (n > cap)
			n = cap;
		if (n)
			memcpy(buf, in->mem + in->mem_pos, n);
		in->mem_pos += n;
		in->raw_read += n;
		return (ssize_t)n;
	}
	for (;;) {
		ssize_t n = read(in->fd, buf, cap);
		if (n >= 0) {
			in->raw_read += (uint64_t)n;
			return n;
		}
		if (errno == EINTR)
			continue;
		emv_set_err(in->err, sizeof(in->err), "%s: read error: %s", in->name, strerror(errno));
		return -1;
	}
}

static int gz_fill(emv_ingest *in)
{
	ssize_t n;

	if (in->is_mem) {
		size_t m = in->mem_len - in->mem_pos;
		if (m > in->lim.read_chunk)
			m = in->lim.read_chunk;
		if (!m) {
			in->raw_eof = 1;
			return 0;
		}
		in->zs.next_in = in->mem + in->mem_pos;
		in->zs.avail_in = (uInt)m;
		in->mem_pos += m;
		in->raw_read += m;
		return 0;
	}
	n = raw_read(in, in->zin, in->zin_cap);
	if (n < 0)
		return -1;
	if (n == 0)
		in->raw_eof = 1;
	in->zs.next_in = in->zin;
	in->zs.avail_in = (uInt)n;
	return 0;
}

static ssize_t gz_read(emv_ingest *in, char *dst, size_t cap)
{
	if (in->gz_failed)
		return -1;
	if (in->gz_done)
		return 0;
	in->zs.next_out = (Bytef *)dst;
	in->zs.avail_out = (uInt)cap;
	for (;;) {
		size_t produced;
		int rc;

		if (in->zs.avail_in == 0 && !in->raw_eof && gz_fill(in) < 0)
			return -1;
		rc = inflate(&in->zs, Z_NO_FLUSH);
		produced = cap - in->zs.avail_out;
		if (rc == Z_STREAM_END) {
			if (in->zs.avail_in == 0 && !in->raw_eof && gz_fill(in) < 0)
				return -1;
			if (in->zs.avail_in == 0) {
				in->gz_done = 1;
				return (ssize_t)produced;
			}
			inflateReset(&in->zs); /* the next member */
			in->gz_members++;
			if (produced)
				return (ssize_t)produced;
			continue;
		}
		if (rc == Z_OK || rc == Z_BUF_ERROR) {
			if (produced)
				return (ssize_t)produced;
			if (in->zs.avail_in || !in->raw_eof)
				continue;
		}
		/* After a complete member, bytes that do not start another one are
		 * trailing garbage, ignored as gzip(1) does. */
		if (in->gz_members && in->zs.total_in < 10) {
			in->gz_done = 1;
			return (ssize_t)produced;
		}
		if (rc == Z_OK || rc == Z_BUF_ERROR)
			emv_set_err(in->err, sizeof(in->err), "%s: truncated gzip data", in->name);
		else
			emv_set_err(in->err, sizeof(in->err), "%s: corrupt gzip data (%s)", in->name,
				    in->zs.msg ? in->zs.msg : "inflate failed");
		/* hand out what was decoded before the damage; fail next time */
		in->gz_failed = 1;
		return produced ? (ssize_t)produced : -1;
	}
}

/* Decoded bytes: n > 0, 0 at the end, -1 on error (in->err). */
ssize_t ingest_src_read(emv_ingest *in, char *dst, size_t cap)
{
	ssize_t n;

	if (in->gz)
		n = gz_read(in, dst, cap);
	else if (in->pend_pos < in->pend_len) {
		size_t m = in->pend_len - in->pend_pos;
		if (m > cap)
			m = cap;
		memcpy(dst, in->zin + in->pend_pos, m);
		in->pend_pos += m;
		n = (ssize_t)m;
		if (in->pend_pos == in->pend_len) {
			/* plain input: the pre-read buffer is no longer needed */
			free(in->zin);
			in->zin = NULL;
			in->zin_cap = in->pend_pos = in->pend_len = 0;
		}
	} else if (in->raw_eof) {
		n = 0;
	} else {
		n = raw_read(in, dst, cap);
		if (n == 0)
			in->raw_eof = 1;
	}
	if (n > 0)
		in->bytes += (uint64_t)n;
	return n;
}

int ingest_src_init(emv_ingest *in)
{
	int magic;

	if (in->is_mem) {
		magic = in->mem_len >= 2 && in->mem[0] == 0x1f && in->mem[1] == 0x8b;
	} else {
		in->zin_cap = in->lim.read_chunk < 16 ? 16 : in->lim.read_chunk;
		in->zin = emv_xmalloc(in->zin_cap);
		while (in->pend_len < 2) {
			ssize_t n = raw_read(in, in->zin + in->pend_len, in->zin_cap - in->pend_len);
			if (n < 0)
				return -1;
			if (n == 0) {
				in->raw_eof = 1;
				break;
			}
			in->pend_len += (size_t)n;
		}
		magic = in->pend_len >= 2 && in->zin[0] == 0x1f && in->zin[1] == 0x8b;
	}
	if (!magic)
		return 0;
	in->gz = 1;
	in->zs.zalloc = z_alloc;
	in->zs.zfree = z_free;
	in->zs.opaque = in;
	if (inflateInit2(&in->zs, 15 + 16) != Z_OK) {
		emv_set_err(in->err, sizeof(in->err), "%s: cannot start gzip decompression", in->name);
		return -1;
	}
	in->gz_live = 1;
	if (!in->is_mem) {
		in->zs.next_in = in->zin;
		in->zs.avail_in = (uInt)in->pend_len;
		in->pend_len = 0;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Sniffing                                                            */
/* ------------------------------------------------------------------ */

/* Read the first bytes: all of a small input, else detect_bytes or enough
 * lines for detection (and the whole binary window). */
int ingest_sniff_fill(emv_ingest *in)
{
	size_t breaks = 0, window = EMV_INGEST_BINARY_WINDOW;

	if (window > in->lim.detect_bytes)
		window = in->lim.detect_bytes;
	while (in->sniff_len < in->lim.detect_bytes) {
		size_t want = in->lim.detect_bytes - in->sniff_len, i;
		ssize_t n;

		if (in->sniff_len >= window && breaks >= in->lim.detect_rows + 2)
			break;
		if (want > in->lim.read_chunk)
			want = in->lim.read_chunk;
		ingest_grow(&in->sniff, &in->sniff_cap, in->sniff_len + want);
		n = ingest_src_read(in, in->sniff + in->sniff_len, want);
		if (n < 0)
			return -1;
		if (n == 0) {
			in->eof = 1;
			break;
		}
		for (i = in->sniff_len; i < in->sniff_len + (size_t)n; i++)
			if (in->sniff[i] == '\n' ||
			    (in->sniff[i] == '\r' && (i + 1 >= in->sniff_len + (size_t)n || in->sniff[i + 1] != '\n')))
				breaks++;
		in->sniff_len += (size_t)n;
	}
	return 0;
}

static const struct {
	const char *magic;
	size_t len;
	const char *what;
} magics[] = {
	{ "PK\x03\x04", 4, "a ZIP archive (an .xlsx workbook?); export the sheet as CSV, or unzip it first" },
	{ "PK\x05\x06", 4, "an empty ZIP archive" },
	{ "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 8, "a Microsoft Office document (.xls?); export the sheet as CSV" },
	{ "%PDF-", 5, "a PDF document, not a CSV or text list" },
	{ "\xfd"
	  "7zXZ",
	  5, "xz-compressed; only gzip is supported, decompress it first" },
	{ "\x28\xb5\x2f\xfd", 4, "zstd-compressed; only gzip is supported, decompress it first" },
	{ "7z\xbc\xaf\x27\x1c", 6, "a 7-Zip archive; extract it first" },
	{ "Rar!\x1a\x07", 6, "a RAR archive; extract it first" },
	{ "\x1f\x8b", 2, "gzip-compressed twice; decompress it once first" },
	{ "\x89PNG", 4, "a PNG image, not a CSV or text list" },
	{ "\xff\xd8\xff", 3, "a JPEG image, not a CSV or text list" },
	{ "\x00\x00\xfe\xff", 4, "UTF-32 text; save it as UTF-8" },
	{ "\xff\xfe\x00\x00", 4, "UTF-32 text; save it as UTF-8" },
	{ "\xff\xfe", 2, "UTF-16 text (byte-order mark FF FE); save it as UTF-8" },
	{ "\xfe\xff", 2, "UTF-16 text (byte-order mark FE FF); save it as UTF-8" },
};

int ingest_sniff_check(emv_ingest *in, char *err, size_t errlen)
{
	const unsigned char *s = (const unsigned char *)in->sniff;
	size_t n = in->sniff_len, i, ctrl = 0, bad = 0, w;

	if (n == 0) {
		emv_set_err(err, errlen, "%s: empty file", in->name);
		return -1;
	}
	for (i = 0; i < sizeof(magics) / sizeof(magics[0]); i++) {
		if (n >= magics[i].len && memcmp(s, magics[i].magic, magics[i].len) == 0) {
			emv_set_err(err, errlen, "%s: looks like %s", in->name, magics[i].what);
			return -1;
		}
	}
	if (n >= 10 && memcmp(s, "BZh", 3) == 0 && s[3] >= '1' && s[3] <= '9' &&
	    memcmp(s + 4, "\x31\x41\x59\x26\x53\x59", 6) == 0) {
		emv_set_err(err, errlen,
			    "%s: looks like bzip2-compressed data; only gzip is supported, "
			    "decompress it first",
			    in->name);
		return -1;
	}
	if (n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
		in->bom = 3;

	w = n < EMV_INGEST_BINARY_WINDOW ? n : EMV_INGEST_BINARY_WINDOW;
	for (i = in->bom; i < w; i++) {
		unsigned c = s[i];
		if (c == 0) {
			if (w >= 4 && ((s[0] && !s[1] && s[2] && !s[3]) || (!s[0] && s[1] && !s[2] && s[3])))
				emv_set_err(err, errlen,
					    "%s: looks like UTF-16 text without a byte-order mark; "
					    "save it as UTF-8",
					    in->name);
			else
				emv_set_err(err, errlen,
					    "%s: binary data (NUL byte at offset %zu), not a CSV "
					    "or text list",
					    in->name, i);
			return -1;
		}
		if ((c < 0x20 && !is_ws((unsigned char)c) && c != 0x1b) || c == 0x7f) {
			ctrl++;
		} else if (c >= 0x80) {
			int k = emv_utf8_next(s + i, w - i, NULL);
			if (k == EMV_UTF8_SHORT)
				break;
			if (k == 0)
				bad++;
			else
				i += (size_t)k - 1;
		}
	}
	w -= in->bom;
	if (w && ctrl * 10 > w) {
		emv_set_err(err, errlen,
			    "%s: binary data (%zu of the first %zu bytes are control "
			    "characters), not a CSV or text list",
			    in->name, ctrl, w);
		return -1;
	}
	if (w && (ctrl + bad) * 10 > w * 3) {
		emv_set_err(err, errlen,
			    "%s: binary data (%zu of the first %zu bytes are neither text "
			    "nor UTF-8), not a CSV or text list",
			    in->name, ctrl + bad, w);
		return -1;
	}
	if (w == 0 && in->eof) {
		emv_set_err(err, errlen, "%s: empty file", in->name);
		return -1;
	}
	return 0;
}
