/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_lists.c - role / disposable / free / typo-target lists, the string
 * hash set that holds them, and the "did you mean" typo suggester.
 *
 * Suggestions compare the input's first label (the name) and the rest (the
 * suffix) separately against each popular domain:
 *   - the suffix may differ by one edit (con, cmo, co, couk), except
 *     between two real country codes (yahoo.dk is not a typo of yahoo.de);
 *   - the name may differ by slips of the hand, measured by an optimal
 *     string alignment distance whose costs favour them (edit_distance());
 *     how much is allowed grows with the name's length, because a short
 *     name has many real neighbours (gmx/gmail, live/love, mail/nail):
 *       <= 3 chars  nothing (gmx, aol, me: only their suffix is corrected);
 *       4 chars     one swap of neighbours, dropped letter (not the first)
 *                   or doubled letter;
 *       5..9 chars  also one neighbouring key struck instead of the right
 *                   one or in addition to it;
 *       >= 10 chars two such slips (protonmail, googlemail, rocketmail).
 * At most two edits in all; the cheapest candidate wins, the earlier line
 * of typo_domains.txt on a tie.  A domain that is itself a popular target
 * or a free provider is never "corrected"; a disposable one may be
 * (gmial.com is a disposable typo-squat of gmail.com).
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "emv_lists.h"
#include "emv_result.h"
#include "emv_util.h"


#define DOMAIN_MAX EMV_HOST_NAME_MAX
#define LOCAL_MAX 64 /* RFC 5321 local part */
#define LABEL_MAX 63
#define ARENA_BLOCK 65536 /* bytes per arena block */
#define STRSET_MIN_BITS 6 /* 64 slots */
#define WARN_PER_FILE 5	  /* bad lines logged one by one per file */
#define SUGGEST_MAX_EDITS 2
#define NAME_FIXED_MAX 3    /* names this short are never edited */
#define NAME_KEYBOARD_MIN 5 /* from here, neighbouring-key edits */
#define NAME_TWO_EDITS 10   /* from here, two slips */

/* ------------------------------------------------------------------ */
/* Arena: strings of a set live in a few big blocks, freed together.   */

struct arena_block {
	struct arena_block *next;
	size_t used, cap;
	char data[];
};

static const char *arena_copy(struct arena_block **head, const char *s, size_t len)
{
	struct arena_block *b = *head;
	char *p;

	if (!b || b->cap - b->used < len + 1) {
		size_t cap = len + 1 > ARENA_BLOCK ? len + 1 : ARENA_BLOCK;
		b = emv_xmalloc(sizeof(*b) + cap);
		b->next = *head;
		b->used = 0;
		b->cap = cap;
		*head = b;
	}
	p = b->data + b->used;
	memcpy(p, s, len);
	p[len] = '\0';
	b->used += len + 1;
	return p;
}

static void arena_free(struct arena_block *b)
{
	while (b) {
		struct arena_block *next = b->next;
		free(b);
		b = next;
	}
}

/* ------------------------------------------------------------------ */
/* String set: open addressing, linear probing, load factor <= 1/2.    */

struct strset_slot {
	const char *key; /* NULL: empty */
	uint32_t len;
	uint32_t hash;
};

struct emv_strset {
	struct strset_slot *slots;
	unsigned bits; /* capacity is 1 << bits */
	size_t count;
	struct arena_block *arena;
};

static uint32_t strset_hash(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, 64 bit */
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ull;
	}
	return (uint32_t)(h ^ (h >> 32));
}

/* Fibonacci hashing spreads FNV's weaker low bits over the whole index. */
static size_t strset_home(uint32_t hash, unsigned bits)
{
	return (size_t)((uint32_t)(hash * 0x9e3779b9u) >> (32 - bits));
}

/* Slot holding str, or the empty slot where it would go. */
static size_t strset_find(const emv_strset *s, const char *str, uint32_t len, uint32_t hash)
{
	size_t mask = ((size_t)1 << s->bits) - 1;
	size_t i = strset_home(hash, s->bits);

	for (;;) {
		const struct strset_slot *sl = &s->slots[i];
		if (!sl->key || (sl->hash == hash && sl->len == len && memcmp(sl->key, str, len) == 0))
			return i;
		i = (i + 1) & mask;
	}
}

static void strset_grow(emv_strset *s)
{
	struct strset_slot *old = s->slots;
	size_t i, oldcap = (size_t)1 << s->bits;

	s->bits++;
	s->slots = emv_xcalloc((size_t)1 << s->bits, sizeof(*s->slots));
	for (i = 0; i < oldcap; i++)
		if (old[i].key)
			s->slots[strset_find(s, old[i].key, old[i].len, old[i].hash)] = old[i];
	free(old);
}

emv_strset *emv_strset_new(void)
{
	emv_strset *s = emv_xcalloc(1, sizeof(*s));

	s->bits = STRSET_MIN_BITS;
	s->slots = emv_xcalloc((size_t)1 << s->bits, sizeof(*s->slots));
	return s;
}

void emv_strset_free(emv_strset *s)
{
	if (!s)
		return;
	arena_free(s->arena);
	free(s->slots);
	free(s);
}

/* Add, and give back the stored copy (NULL if str is too long to keep). */
static const char *strset_intern(emv_strset *s, const char *str, size_t len, int *added)
{
	uint32_t hash;
	size_t i;

	*added = 0;
	if (len > UINT32_MAX || s->bits >= 31)
		return NULL;
	hash = strset_hash(str, len);
	i = strset_find(s, str, (uint32_t)len, hash);
	if (s->slots[i].key)
		return s->slots[i].key;
	if ((s->count + 1) * 2 > ((size_t)1 << s->bits)) {
		strset_grow(s);
		i = strset_find(s, str, (uint32_t)len, hash);
	}
	s->slots[i].key = arena_copy(&s->arena, str, len);
	s->slots[i].len = (uint32_t)len;
	s->slots[i].hash = hash;
	s->count++;
	*added = 1;
	return s->slots[i].key;
}

int emv_strset_add(emv_strset *s, const char *str, size_t len)
{
	int added;

	strset_intern(s, str, len, &added);
	return added;
}

int emv_strset_has(const emv_strset *s, const char *str, size_t len)
{
	uint32_t hash;

	if (!s || len > UINT32_MAX)
		return 0;
	hash = strset_hash(str, len);
	return s->slots[strset_find(s, str, (uint32_t)len, hash)].key != NULL;
}

size_t emv_strset_count(const emv_strset *s)
{
	return s ? s->count : 0;
}

/* ------------------------------------------------------------------ */
/* Loading.                                                            */

/* A popular domain of typo_domains.txt, in file order. */
struct typo_target {
	const char *domain; /* stored in the typo set's arena */
	size_t len;
	size_t namelen; /* length of the first label */
};

struct emv_lists {
	emv_strset *role, *disposable, *free, *typo;
	struct typo_target *targets;
	size_t ntargets, skipped;
};

enum entry_kind { ENTRY_LOCAL, ENTRY_DOMAIN };


static int is_lower_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Why a lower-cased domain entry is unusable, or NULL when it is fine. */
static const char *domain_entry_problem(const char *s, size_t len)
{
	size_t i, label = 0, labels = 1;

	if (len > DOMAIN_MAX)
		return "domain too long";
	for (i = 0; i < len; i++) {
		int c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return "empty label or label ending in '-'";
			label = 0;
			labels++;
			continue;
		}
		if (!is_lower_alnum(c) && c != '-' && c != '_')
			return "invalid character in domain";
		if (label == 0 && c == '-')
			return "label starting with '-'";
		if (++label > LABEL_MAX)
			return "label too long";
	}
	if (label == 0 || s[len - 1] == '-')
		return "empty label or label ending in '-'";
	if (labels < 2)
		return "domain without a dot";
	return NULL;
}

/* Why a lower-cased local-part entry is unusable, or NULL. */
static const char *local_entry_problem(const char *s, size_t len)
{
	size_t i;

	if (len > LOCAL_MAX)
		return "local part too long";
	for (i = 0; i < len; i++) {
		int c = (unsigned char)s[i];
		if (!is_lower_alnum(c) && !strchr("!#$%&'*+/=?^_`{|}~.-", c))
			return "invalid character in local part";
	}
	return NULL;
}

/*
 * Read DIR/NAME into set; entries of the typo file are also appended to
 * l->targets.  Only I/O errors fail.
 */
static int load_file(emv_lists *l, const char *dir, const char *name, enum entry_kind kind, emv_strset *set, char *err,
		     size_t errlen)
{
	char path[4096], line[EMV_LISTS_LINE_MAX + 1];
	size_t lineno = 0, bad = 0, cap = 0;
	int collect = set == l->typo;
	FILE *f;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
		emv_set_err(err, errlen, "%s/%s: path too long", dir, name);
		return EMV_ERR;
	}
	if (!(f = fopen(path, "r"))) {
		emv_set_err(err, errlen, "%s: %s", path, strerror(errno));
		return EMV_ERR;
	}
	for (;;) {
		size_t n = 0, len;
		int c, toolong = 0, nul = 0, added;
		const char *why = NULL, *stored;
		char *s, *hash;

		while ((c = getc(f)) != EOF && c != '\n') {
			if (c == '\0')
				nul = 1;
			if (n < EMV_LISTS_LINE_MAX)
				line[n++] = (char)c;
			else
				toolong = 1;
		}
		if (c == EOF && ferror(f)) {
			emv_set_err(err, errlen, "%s:%zu: read error: %s", path, lineno + 1, strerror(errno));
			fclose(f);
			return EMV_ERR;
		}
		if (c == EOF && n == 0 && !toolong)
			break;
		lineno++;
		line[n] = '\0';
		if (toolong)
			why = "line too long";
		else if (nul)
			why = "NUL byte";
		if (!why) {
			if ((hash = strchr(line, '#')))
				*hash = '\0';
			s = emv_trim(line);
			len = strlen(s);
			if (len == 0)
				goto next;
			emv_ascii_lower(s);
			why = kind == ENTRY_DOMAIN ? domain_entry_problem(s, len) : local_entry_problem(s, len);
			if (!why) {
				stored = strset_intern(set, s, len, &added);
				if (collect && added && stored) {
					if (l->ntargets == cap) {
						cap = cap ? cap * 2 : 64;
						l->targets = emv_xrealloc(l->targets, cap * sizeof(*l->targets));
					}
					l->targets[l->ntargets].domain = stored;
					l->targets[l->ntargets].len = len;
					l->targets[l->ntargets].namelen = (size_t)(strchr(stored, '.') - stored);
					l->ntargets++;
				}
			}
		}
		if (why && ++bad <= WARN_PER_FILE)
			emv_log(EMV_LOG_WARN, "lists", "%s:%zu: %s, line skipped", path, lineno, why);
next:
		if (c == EOF)
			break;
	}
	fclose(f);
	if (bad > WARN_PER_FILE)
		emv_log(EMV_LOG_WARN, "lists", "%s: %zu bad lines skipped in all", path, bad);
	l->skipped += bad;
	return EMV_OK;
}

emv_lists *emv_lists_load(const char *datadir, char *err, size_t errlen)
{
	emv_lists *l = emv_xcalloc(1, sizeof(*l));
	const char *dir = emv_data_dir(datadir);

	emv_set_err(err, errlen, "%s", "");
	l->role = emv_strset_new();
	l->disposable = emv_strset_new();
	l->free = emv_strset_new();
	l->typo = emv_strset_new();
	if (load_file(l, dir, "role.txt", ENTRY_LOCAL, l->role, err, errlen) != EMV_OK ||
	    load_file(l, dir, "disposable.txt", ENTRY_DOMAIN, l->disposable, err, errlen) != EMV_OK ||
	    load_file(l, dir, "free.txt", ENTRY_DOMAIN, l->free, err, errlen) != EMV_OK ||
	    load_file(l, dir, "typo_domains.txt", ENTRY_DOMAIN, l->typo, err, errlen) != EMV_OK) {
		emv_lists_free(l);
		return NULL;
	}
	emv_log(EMV_LOG_INFO, "lists",
		"loaded from %s: %zu role, %zu disposable, %zu free, "
		"%zu typo targets, %zu lines skipped",
		dir, emv_strset_count(l->role), emv_strset_count(l->disposable), emv_strset_count(l->free), l->ntargets,
		l->skipped);
	return l;
}

void emv_lists_free(emv_lists *l)
{
	if (!l)
		return;
	emv_strset_free(l->role);
	emv_strset_free(l->disposable);
	emv_strset_free(l->free);
	emv_strset_free(l->typo);
	free(l->targets);
	free(l);
}

size_t emv_lists_count(const emv_lists *l, const char *which)
{
	if (!l || !which)
		return 0;
	if (strcmp(which, "role") == 0)
		return emv_strset_count(l->role);
	if (strcmp(which, "disposable") == 0)
		return emv_strset_count(l->disposable);
	if (strcmp(which, "free") == 0)
		return emv_strset_count(l->free);
	if (strcmp(which, "typo") == 0)
		return l->ntargets;
	if (strcmp(which, "skipped") == 0)
		return l->skipped;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Lookups.                                                            */

static char ascii_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Lower-cased copy of domain without a root dot into buf; 0 if unusable. */
static size_t normalise_domain(char buf[DOMAIN_MAX + 1], const char *domain)
{
	size_t i, n = strnlen(domain, DOMAIN_MAX + 2);

	if (n > 0 && domain[n - 1] == '.')
		n--;
	if (n == 0 || n > DOMAIN_MAX)
		return 0;
	for (i = 0; i < n; i++)
		buf[i] = ascii_lower(domain[i]);
	buf[n] = '\0';
	return n;
}

/* d or one of its parents (never the bare TLD) is disposable. */
static int is_disposable(const emv_lists *l, const char *d, size_t n)
{
	for (;;) {
		const char *dot = memchr(d, '.', n);
		if (!dot)
			return 0;
		if (emv_strset_has(l->disposable, d, n))
			return 1;
		n -= (size_t)(dot - d) + 1;
		d = dot + 1;
	}
}

static int is_role(const emv_lists *l, const char *local)
{
	char buf[LOCAL_MAX + 1];
	size_t i, n = strnlen(local, LOCAL_MAX + 1);
	const char *plus = memchr(local, '+', n);

	if (plus)
		n = (size_t)(plus - local);
	if (n == 0 || n > LOCAL_MAX)
		return 0;
	for (i = 0; i < n; i++)
		buf[i] = ascii_lower(local[i]);
	return emv_strset_has(l->role, buf, n);
}

unsigned emv_lists_flags(const emv_lists *l, const char *local, const char *domain)
{
	char d[DOMAIN_MAX + 1];
	unsigned flags = 0;
	size_t n;

	if (!l)
		return 0;
	if (local && is_role(l, local))
		flags |= EMV_FLAG_ROLE;
	if (domain && (n = normalise_domain(d, domain)) > 0) {
		if (is_disposable(l, d, n))
			flags |= EMV_FLAG_DISPOSABLE;
		if (emv_strset_has(l->free, d, n))
			flags |= EMV_FLAG_FREE;
	}
	return flags;
}

/* ------------------------------------------------------------------ */
/* Typo suggestions.                                                   */

/* Assigned two-letter country-code TLDs (IANA root zone), as pairs. */
static const char cctlds[] = "acadaeafagaialamaoaqarasatauawaxazbabbbdbebfbgbhbibjbmbnbobqbrbsbtbvbwbybz"
			     "cacccdcfcgchcickclcmcncocrcucvcwcxcyczdedjdkdmdodzeceeegereseteufifjfkfmfo"
			     "frgagbgdgegfggghgiglgmgngpgqgrgsgtgugwgyhkhmhnhrhthuidieiliminioiqirisitje"
			     "jmjojpkekgkhkikmknkpkrkwkykzlalblclilklrlsltlulvlymamcmdmemgmhmkmlmmmnmomp"
			     "mqmrmsmtmumvmwmxmymznancnenfngninlnonpnrnunzompapepfpgphpkplpmpnprpsptpwpy"
			     "qarerorsrurwsasbscsdsesgshsisjskslsmsnsosrssstsusvsxsysztctdtftgthtjtktltm"
			     "tntotrtttvtwtzuaugukusuyuzvavcvevgvivnvuwfwsyeytzazmzw";

static int is_cctld(const char *label, size_t len)
{
	size_t i;

	if (len != 2)
		return 0;
	for (i = 0; i + 1 < sizeof(cctlds); i += 2)
		if (cctlds[i] == label[0] && cctlds[i + 1] == label[1])
			return 1;
	return 0;
}

/* Last label of s[0..n). */
static const char *last_label(const char *s, size_t n, size_t *len)
{
	const char *p = s + n;

	while (p > s && p[-1] != '.')
		p--;
	*len = (size_t)(s + n - p);
	return p;
}

/*
 * Keyboard neighbours on a QWERTY layout: each row sits half a key right of
 * the one above, so (r, c) touches (r, c +- 1), (r - 1, c), (r - 1, c + 1),
 * (r + 1, c - 1) and (r + 1, c).  Positions are row * 16 + column + 1.
 */
static const unsigned char kbd_at[128] = {
	['1'] = 1,  ['2'] = 2,	['3'] = 3,  ['4'] = 4,	['5'] = 5,  ['6'] = 6,	['7'] = 7,  ['8'] = 8,
	['9'] = 9,  ['0'] = 10, ['-'] = 11, ['q'] = 17, ['w'] = 18, ['e'] = 19, ['r'] = 20, ['t'] = 21,
	['y'] = 22, ['u'] = 23, ['i'] = 24, ['o'] = 25, ['p'] = 26, ['a'] = 33, ['s'] = 34, ['d'] = 35,
	['f'] = 36, ['g'] = 37, ['h'] = 38, ['j'] = 39, ['k'] = 40, ['l'] = 41, ['z'] = 49, ['x'] = 50,
	['c'] = 51, ['v'] = 52, ['b'] = 53, ['n'] = 54, ['m'] = 55,
};

static int kbd_pos(char c, int *row, int *col)
{
	unsigned char at = (unsigned char)c < 128 ? kbd_at[(unsigned char)c] : 0;

	if (!at)
		return 0;
	*row = (at - 1) / 16;
	*col = (at - 1) % 16;
	return 1;
}

static int kbd_adjacent(char a, char b)
{
	int ra, ca, rb, cb;

	if (a == b || !kbd_pos(a, &ra, &ca) || !kbd_pos(b, &rb, &cb))
		return 0;
	if (ra == rb)
		return ca - cb == 1 || cb - ca == 1;
	if (rb == ra + 1)
		return cb == ca || cb == ca - 1;
	if (ra == rb + 1)
		return ca == cb || ca == cb - 1;
	return 0;
}

/*
 * Costs of the edit distance.  PLAIN is optimal string alignment: every
 * insertion, deletion, substitution and swap of neighbours costs 1.  The
 * SLIP modes price an edit by how likely a hand makes it: a swap, a
 * doubled letter or a dropped letter (not the first) cost 1, anything else
 * 2; SLIP_KEYBOARD also prices at 1 a neighbouring key struck instead of
 * the right one, or in addition to it (but not after the last letter), and
 * a letter repeated instead of the next.
 */
enum edit_mode { EDIT_PLAIN, EDIT_SLIP, EDIT_SLIP_KEYBOARD };

/* a[k] is a letter too many in a[0..n). */
static int insert_cost(enum edit_mode mode, const char *a, size_t n, size_t k)
{
	char x = a[k];

	if (mode == EDIT_PLAIN)
		return 1;
	if ((k > 0 && a[k - 1] == x) || (k + 1 < n && a[k + 1] == x))
		return 1;
	if (mode == EDIT_SLIP_KEYBOARD && k + 1 < n &&
	    ((k > 0 && kbd_adjacent(x, a[k - 1])) || kbd_adjacent(x, a[k + 1])))
		return 1;
	return 2;
}

/* b[k] is missing. */
static int delete_cost(enum edit_mode mode, size_t k)
{
	return mode == EDIT_PLAIN || k > 0 ? 1 : 2;
}

/* x was struck instead of b[k]. */
static int substitute_cost(enum edit_mode mode, char x, const char *b, size_t m, size_t k)
{
	if (mode == EDIT_PLAIN)
		return 1;
	if (mode == EDIT_SLIP_KEYBOARD &&
	    (kbd_adjacent(x, b[k]) || (k > 0 && b[k - 1] == x) || (k + 1 < m && b[k + 1] == x)))
		return 1;
	return 2;
}

static int min3(int a, int b, int c)
{
	int m = a < b ? a : b;
	return m < c ? m : c;
}

/*
 * Weighted optimal string alignment distance from a (input) to b (popular),
 * or bound + 1 when above bound.  Three rolling rows; stops early once two
 * consecutive rows are above bound (a swap reaches back two rows).
 */
static int edit_distance(enum edit_mode mode, const char *a, size_t n, const char *b, size_t m, int bound)
{
	int rows[3][DOMAIN_MAX + 2], ins[DOMAIN_MAX];
	int *pp = rows[0], *prev = rows[1], *cur = rows[2], *t;
	int prevmin = 0;
	size_t i, j;

	if ((n > m ? n - m : m - n) > (size_t)bound || n > DOMAIN_MAX || m > DOMAIN_MAX)
		return bound + 1;
	for (i = 0; i < n; i++)
		ins[i] = insert_cost(mode, a, n, i);
	prev[0] = 0;
	for (j = 1; j <= m; j++)
		prev[j] = prev[j - 1] + delete_cost(mode, j - 1);
	for (i = 1; i <= n; i++) {
		int rowmin;
		cur[0] = prev[0] + ins[i - 1];
		rowmin = cur[0];
		for (j = 1; j <= m; j++) {
			int same = a[i - 1] == b[j - 1];
			int v = min3(prev[j] + ins[i - 1], cur[j - 1] + delete_cost(mode, j - 1),
				     prev[j - 1] + (same ? 0 : substitute_cost(mode, a[i - 1], b, m, j - 1)));
			if (i > 1 && j > 1 && !same && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    pp[j - 2] + 1 < v)
				v = pp[j - 2] + 1;
			cur[j] = v;
			if (v < rowmin)
				rowmin = v;
		}
		if (rowmin > bound && prevmin > bound)
			return bound + 1;
		prevmin = rowmin;
		t = pp;
		pp = prev;
		prev = cur;
		cur = t;
	}
	return prev[m] > bound ? bound + 1 : prev[m];
}

/* Edits from the input's name to a popular name, or -1 when not a plausible typo. */
static int name_cost(const char *in, size_t n, const char *p, size_t L)
{
	enum edit_mode mode = L >= NAME_KEYBOARD_MIN ? EDIT_SLIP_KEYBOARD : EDIT_SLIP;
	int bound = L >= NAME_TWO_EDITS ? 2 : 1, d;

	if (n == L && memcmp(in, p, n) == 0)
		return 0;
	if (L <= NAME_FIXED_MAX)
		return -1;
	d = edit_distance(mode, in, n, p, L, bound);
	return d <= bound ? d : -1;
}

/* Edits from the input's suffix (after the first dot) to a popular one, or -1. */
static int suffix_cost(const char *in, size_t n, const char *p, size_t L)
{
	const char *a, *b;
	size_t alen, blen;

	if (n == L && memcmp(in, p, n) == 0)
		return 0;
	if (edit_distance(EDIT_PLAIN, in, n, p, L, 1) > 1)
		return -1;
	a = last_label(in, n, &alen);
	b = last_label(p, L, &blen);
	if (is_cctld(a, alen) && is_cctld(b, blen))
		return -1; /* two real countries: a regional domain, not a typo */
	return 1;
}

/* "gmailcom": the input equals the popular domain without its dots. */
static int equals_undotted(const char *in, size_t n, const struct typo_target *t)
{
	size_t i, j = 0;

	for (i = 0; i < t->len; i++) {
		if (t->domain[i] == '.')
			continue;
		if (j >= n || in[j] != t->domain[i])
			return 0;
		j++;
	}
	return j == n;
}

int emv_lists_suggest(const emv_lists *l, const char *local, const char *domain, char *out, size_t outlen)
{
	char d[DOMAIN_MAX + 1];
	const struct typo_target *best = NULL;
	int bestcost = SUGGEST_MAX_EDITS + 1, w;
	const char *dot;
	size_t i, n;

	if (out && outlen)
		out[0] = '\0';
	if (!l || !domain || !out || outlen == 0 || (n = normalise_domain(d, domain)) == 0)
		return 0;
	if (emv_strset_has(l->typo, d, n) || emv_strset_has(l->free, d, n))
		return 0;
	dot = memchr(d, '.', n);
	for (i = 0; i < l->ntargets; i++) {
		const struct typo_target *t = &l->targets[i];
		int cost, nc, sc;

		if (!dot) {
			cost = equals_undotted(d, n, t) ? 1 : -1;
		} else {
			size_t namelen = (size_t)(dot - d);
			nc = name_cost(d, namelen, t->domain, t->namelen);
			if (nc < 0)
				continue;
			sc = suffix_cost(dot + 1, n - namelen - 1, t->domain + t->namelen + 1, t->len - t->namelen - 1);
			if (sc < 0)
				continue;
			cost = nc + sc;
		}
		if (cost > 0 && cost < bestcost) {
			bestcost = cost;
			best = t;
		}
	}
	if (!best)
		return 0;
	if (local)
		w = snprintf(out, outlen, "%s@%s", local, best->domain);
	else
		w = snprintf(out, outlen, "%s", best->domain);
	if (w < 0 || (size_t)w >= outlen) {
		out[0] = '\0';
		return 0;
	}
	return 1;
}
