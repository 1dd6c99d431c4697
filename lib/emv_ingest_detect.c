/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_ingest_detect.c - the format of a list: its delimiter, whether row 1
 * is a header, and which column holds the addresses (by header name, then
 * by what the sampled rows hold).  A tokenizer pass over the sniffed bytes,
 * which are then replayed to the reading tokenizer.
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
#include "emv_util.h"

/* ------------------------------------------------------------------ */
/* Header names                                                        */
/* ------------------------------------------------------------------ */

/* Compared lower-cased (ASCII) with ASCII punctuation and spaces removed. */
static const char *const email_names[] = {
	"email",
	"emails",
	"emailaddress",
	"emailaddresses",
	"emailaddr",
	"emailid",
	"mailaddress",
	"electronicmail",
	"electronicmailaddress",
	"eaddress",
	"emailadresse",
	"emailadres",
	"emailadress",
	"emailadresa",
	"emailcím",
	"emailcim",
	"epost",
	"epostadresse",
	"epostadress",
	"eposta",
	"epostaadresi",
	"courriel",
	"adressecourriel",
	"adresseemail",
	"adressemail",
	"adresseélectronique",
	"adresseelectronique",
	"mél",
	"correo",
	"correoelectronico",
	"correoelectrónico",
	"direcciondecorreo",
	"direccióndecorreo",
	"direcciondecorreoelectronico",
	"direccióndecorreoelectrónico",
	"enderecodeemail",
	"endereçodeemail",
	"indirizzoemail",
	"postaelettronica",
	"sähköposti",
	"sähköpostiosoite",
	"sahkoposti",
	"adresemail",
	"электроннаяпочта",
	"メールアドレス",
	"電子メール",
	"电子邮件",
	"电子邮箱",
	"邮箱",
	"邮件地址",
	"電子郵件",
	"이메일",
	"이메일주소",
};

/* Weak names: chosen only when the data agrees. */
static const char *const weak_names[] = {
	"address",   "addresses", "contact",   "contacts",   "login",	 "username",
	"user",	     "userid",	  "recipient", "recipients", "to",	 "adresse",
	"direccion", "dirección", "indirizzo", "endereco",   "endereço",
};

/* 1: an email name; 2: mentions mail; 3: a weak name; 4: anything else. */
static int name_tier(const char *s, size_t len)
{
	char n[65];
	size_t i, k = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80) {
			if (k == sizeof(n) - 1)
				return 4;
			n[k++] = (char)c;
		}
	}
	n[k] = '\0';
	if (!k)
		return 4;
	for (i = 0; i < sizeof(email_names) / sizeof(email_names[0]); i++)
		if (strcmp(n, email_names[i]) == 0)
			return 1;
	if (strstr(n, "mail") || strstr(n, "courriel") || strstr(n, "correo") || strstr(n, "メール") || strstr(n, "邮"))
		return 2;
	for (i = 0; i < sizeof(weak_names) / sizeof(weak_names[0]); i++)
		if (strcmp(n, weak_names[i]) == 0)
			return 3;
	return 4;
}

/* A one-column header: a word, not a mangled address. */
static int wordlike(const char *s, size_t len)
{
	size_t i, letters = 0;

	if (len == 0 || len > 64)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '@' || c == '.' || c < 0x20 || c == 0x7f)
			return 0;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80)
			letters++;
	}
	return letters > 0;
}


/*
 * The most frequent candidate outside quotes in the first non-blank record
 * (ties: , ; TAB |).  When a quote opened there is not closed within
 * max_lines lines, max bytes or the sniffed bytes, it is a stray quote:
 * count on the first physical line, quotes ignored.
 */
int ingest_sniff_delim(const char *s, size_t n, size_t max, size_t max_lines)
{
	static const char cand[] = { ',', ';', '\t', '|' };
	size_t count[4] = { 0, 0, 0, 0 }, i, k, best = 0, lines = 1, first_end;
	int inq = 0, closed = 0;

	while (n && (*s == '\r' || *s == '\n' || *s == ' '))
		s++, n--;
	if (n > max)
		n = max;
	first_end = n;
	for (i = 0; i < n; i++) {
		char c = s[i];
		if (c == '"') {
			inq = !inq;
		} else if (c == '\r' || c == '\n') {
			if (first_end == n)
				first_end = i;
			if (!inq) {
				closed = 1;
				break;
			}
			if (c == '\n' || i + 1 >= n || s[i + 1] != '\n')
				if (++lines > max_lines)
					break;
		} else if (!inq) {
			for (k = 0; k < 4; k++)
				if (c == cand[k])
					count[k]++;
		}
	}
	if (!closed && inq) {
		memset(count, 0, sizeof(count));
		for (i = 0; i < first_end; i++)
			for (k = 0; k < 4; k++)
				if (s[i] == cand[k])
					count[k]++;
	}
	for (k = 1; k < 4; k++)
		if (count[k] > count[best])
			best = k;
	return count[best] ? cand[best] : 0;
}


struct detect {
	uint64_t nrec; /* non-blank rows seen */
	uint64_t r1_line;
	int r1_err;
	size_t r1_n; /* stored fields of row 1 */
	unsigned char *r1_tier, *r1_at;
	char (*r1_name)[48]; /* sanitised, for messages */
	char *header;
	char r1_msg[320]; /* row 1's error */
	size_t *at;	  /* per column: later valid rows with '@' */
	uint64_t sampled; /* later valid rows */
};

static void detect_free(struct detect *d)
{
	free(d->r1_tier);
	free(d->r1_at);
	free(d->r1_name);
	free(d->header);
	free(d->at);
}

static void detect_row1(emv_ingest *in, struct detect *d, struct tok *t)
{
	size_t n = t->nfields < in->lim.max_fields ? t->nfields : in->lim.max_fields, i, cap;

	d->r1_line = t->row_line;
	d->r1_err = t->err;
	d->r1_n = n;
	if (t->err) {
		ingest_row_error(in, t);
		emv_strlcpy(d->r1_msg, in->rowerr, sizeof(d->r1_msg));
	}
	d->r1_tier = emv_xcalloc(n ? n : 1, 1);
	d->r1_at = emv_xcalloc(n ? n : 1, 1);
	d->r1_name = emv_xcalloc(n ? n : 1, sizeof(*d->r1_name));
	cap = ingest_serialised_size(t, n);
	if (cap > ingest_raw_cap_max(&in->lim))
		cap = ingest_raw_cap_max(&in->lim);
	d->header = emv_xmalloc(cap);
	ingest_serialise(t, n, d->header, cap);
	for (i = 0; i < n; i++) {
		size_t len;
		const char *v = ingest_tok_value(t, i, &len);
		d->r1_tier[i] = (unsigned char)name_tier(v, len);
		d->r1_at[i] = (unsigned char)has_at(v, len);
		if (t->delim < 0 && d->r1_tier[i] > 1 && !wordlike(v, len))
			d->r1_tier[i] = 5; /* one column: not a header */
		emv_sanitize(d->r1_name[i], sizeof(d->r1_name[i]), v, len);
	}
}

/* The header fields, quoted, for the no-email-column message. */
static void list_fields(const struct detect *d, char *out, size_t outlen)
{
	size_t i, o = 0;

	out[0] = '\0';
	for (i = 0; i < d->r1_n && i < 16 && o + 1 < outlen; i++) {
		int k = snprintf(out + o, outlen - o, "%s\"%s\"", i ? ", " : "", d->r1_name[i]);
		if (k < 0)
			break;
		o += (size_t)k;
	}
	if (i < d->r1_n && o + 1 < outlen)
		snprintf(out + o, outlen - o, ", ... (%zu fields)", d->r1_n);
}

/* Best column among those allowed by tier (<= max_tier) and confirmed by
 * the data when weaker than tier 1; -1 when none. */
static int pick_column(const struct detect *d, const size_t *at, uint64_t sampled, int r1_counts)
{
	int best = -1, tier, best_tier = 99;
	size_t i, best_at = 0;

	for (i = 0; i < d->r1_n; i++) {
		size_t a = at[i] + (r1_counts ? d->r1_at[i] : 0);
		tier = r1_counts ? 4 : d->r1_tier[i];
		if (a == 0 || (uint64_t)a * 2 < sampled)
			continue;
		if (tier < best_tier || (tier == best_tier && a > best_at)) {
			best = (int)i;
			best_tier = tier;
			best_at = a;
		}
	}
	return best;
}

int ingest_detect(emv_ingest *in, char *err, size_t errlen)
{
	struct detect d;
	struct tok t;
	const char *p = in->sniff + in->bom, *end = in->sniff + in->sniff_len;
	int r, rc = -1;
	size_t i, ncols = in->lim.max_fields;
	char fields[640];

	memset(&d, 0, sizeof(d));
	d.at = emv_xcalloc(ncols, sizeof(*d.at));
	in->delim = ingest_sniff_delim(p, (size_t)(end - p), in->lim.max_row, in->lim.max_row_lines);
	ingest_tok_init(&t, &in->lim, in->delim ? in->delim : -1);
	while (d.nrec <= in->lim.detect_rows && (r = ingest_tok_next(&t, &p, end, in->eof)) == 1) {
		if (d.nrec == 0) {
			detect_row1(in, &d, &t);
		} else if (!t.err) {
			d.sampled++;
			for (i = 0; i < t.nfields && i < ncols; i++) {
				size_t len;
				const char *v = ingest_tok_value(&t, i, &len);
				if (has_at(v, len))
					d.at[i]++;
			}
		}
		d.nrec++;
	}

	if (d.nrec == 0) {
		if (in->eof)
			emv_set_err(err, errlen, "%s: empty file (only blank lines)", in->name);
		else
			emv_set_err(err, errlen, "%s: no complete row in the first %zu bytes", in->name, in->sniff_len);
		goto out;
	}

	in->col = -1;
	in->has_header = 0;
	in->by = "content";
	/* 1. a header field with an email name */
	if (!d.r1_err) {
		for (i = 0; i < d.r1_n; i++) {
			if (d.r1_tier[i] == 1) {
				in->col = (int)i;
				in->has_header = 1;
				in->by = "name";
				break;
			}
		}
	}
	if (!in->has_header) {
		int r1_data = 0;
		for (i = 0; i < d.r1_n; i++)
			if (d.r1_at[i])
				r1_data = 1;
		/* one column: a broken or not header-like first line is data */
		if (!in->delim && (d.r1_err || (d.r1_n && d.r1_tier[0] > 4)))
			r1_data = 1;
		if (r1_data) {
			/* 2. no header: the first row is data */
			uint64_t sampled = d.sampled + (d.r1_err ? 0 : 1);
			int c = pick_column(&d, d.at, sampled, 1);
			if (c < 0) {
				if (in->delim)
					emv_set_err(err, errlen,
						    "%s: no email column; the first row is not a "
						    "header and no column has '@' in at least half of the "
						    "%llu rows sampled",
						    in->name, (unsigned long long)sampled);
				else
					emv_set_err(err, errlen,
						    "%s: no email addresses; fewer than half of "
						    "the %llu lines sampled contain '@'",
						    in->name, (unsigned long long)sampled);
				goto out;
			}
			in->col = in->delim ? c : -1;
		} else if (d.r1_err) {
			emv_set_err(err, errlen, "%s: cannot read the header row: %s", in->name, d.r1_msg);
			goto out;
		} else {
			/* 3. a header without an email name: the data decides */
			int c = pick_column(&d, d.at, d.sampled, 0);
			if (c < 0 && !in->delim) {
				emv_set_err(err, errlen,
					    "%s: no email addresses; fewer than half of the "
					    "%llu lines sampled after the first (\"%s\") contain '@'",
					    in->name, (unsigned long long)d.sampled, d.r1_name[0]);
				goto out;
			}
			if (c < 0) {
				list_fields(&d, fields, sizeof(fields));
				if (d.sampled)
					emv_set_err(err, errlen,
						    "%s: no email column; header fields: %s; none "
						    "is named like email and none has '@' in at least half of "
						    "the %llu rows sampled",
						    in->name, fields, (unsigned long long)d.sampled);
				else
					emv_set_err(err, errlen,
						    "%s: no email column; header fields: %s; none "
						    "is named like email and there are no data rows",
						    in->name, fields);
				goto out;
			}
			in->col = c;
			in->has_header = 1;
		}
	}
	if (in->has_header) {
		in->header = d.header;
		d.header = NULL;
		emv_strlcpy(in->col_name, d.r1_name[in->col], sizeof(in->col_name));
	} else {
		in->header = emv_xstrdup("");
	}
	in->skip_header = in->has_header;
	rc = 0;
out:
	ingest_tok_free(&t);
	detect_free(&d);
	return rc;
}

void ingest_describe(emv_ingest *in)
{
	char dl[16];
	size_t o;

	if (in->delim == '\t')
		emv_strlcpy(dl, "TAB", sizeof(dl));
	else
		snprintf(dl, sizeof(dl), "'%c'", in->delim);
	o = (size_t)snprintf(in->desc, sizeof(in->desc), "%s%s", in->gz ? "gzip, " : "", in->bom ? "UTF-8 BOM, " : "");
	if (!in->delim && !in->has_header)
		snprintf(in->desc + o, sizeof(in->desc) - o, "one address per line, no header");
	else if (!in->delim)
		snprintf(in->desc + o, sizeof(in->desc) - o, "one column, header \"%s\" (by %s)", in->col_name, in->by);
	else
		snprintf(in->desc + o, sizeof(in->desc) - o, "CSV delimited by %s, %s, email column %d%s%s%s (by %s)",
			 dl, in->has_header ? "header" : "no header", in->col + 1, in->has_header ? " \"" : "",
			 in->has_header ? in->col_name : "", in->has_header ? "\"" : "", in->by);
}
