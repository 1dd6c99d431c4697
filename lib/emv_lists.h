/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_lists.h - the list files of the data directory: role local parts,
 * disposable domains, free providers, and the popular domains that
 * "did you mean" suggestions point to.
 *
 * emv_lists_load() reads role.txt, disposable.txt, free.txt and
 * typo_domains.txt once; afterwards the handle is read-only, so any number
 * of threads may query it.  Every lookup is O(1) (hash sets); a disposable
 * check also tries each parent domain, bounded by the label count.
 *
 * Assumptions: domains are already IDNA A-labels (ASCII); case does not
 * matter.  File format: one entry a line, '#' starts a comment, blank lines
 * ignored, entries lower-cased on load.  A line that is too long or holds a
 * character that cannot occur in its kind of entry is skipped, counted
 * (emv_lists_count(l, "skipped")) and logged as a warning naming file:line;
 * only I/O errors (a missing or unreadable file) make the load fail, with a
 * message naming the file in the caller's error buffer.
 *
 * Where the files come from: data/SOURCES.md and tools/update-lists.sh.
 */
#ifndef EMV_LISTS_H
#define EMV_LISTS_H

#include <stddef.h>

/* Longest line accepted in a list file (without its newline). */
#define EMV_LISTS_LINE_MAX 512

typedef struct emv_lists emv_lists;

/*
 * Load the four list files from datadir (NULL: emv_data_dir(NULL)).
 * Returns NULL and fills err ("DIR/role.txt: No such file or directory")
 * when a file cannot be opened or read.
 */
emv_lists *emv_lists_load(const char *datadir, char *err, size_t errlen);
void emv_lists_free(emv_lists *l);

/*
 * EMV_FLAG_ROLE when local (case-insensitive, without a "+tag") is a role
 * name; EMV_FLAG_DISPOSABLE when domain or any of its parent domains is a
 * disposable domain (x.mailinator.com); EMV_FLAG_FREE when domain itself is
 * a free provider.  local or domain may be NULL to skip their checks.
 */
unsigned emv_lists_flags(const emv_lists *l, const char *local, const char *domain);

/*
 * "Did you mean": when domain looks like a typo of a popular domain
 * (gmial.com, yaho.com, gmail.con), write "local@suggestion" into out and
 * return 1; otherwise return 0 with out set to "".  Never suggests for a
 * domain that is itself a popular target or a free provider (a real domain
 * is not a typo); a disposable domain may get one (gmial.com is a disposable
 * typo-squat).  With local NULL, out gets the domain alone.  Returns 0 when
 * out is too small.
 */
int emv_lists_suggest(const emv_lists *l, const char *local, const char *domain, char *out, size_t outlen);

/* Entries loaded: "role", "disposable", "free", "typo"; "skipped" counts bad lines. */
size_t emv_lists_count(const emv_lists *l, const char *which);

/*
 * emv_strset: the set of strings behind the lists, usable on its own.
 * Open addressing with linear probing, FNV-1a hashing, load factor at most
 * 1/2; added strings are copied into an arena owned by the set.
 */
typedef struct emv_strset emv_strset;

emv_strset *emv_strset_new(void);
void emv_strset_free(emv_strset *s);
/* Add len bytes of str; returns 1 when added, 0 when already present. */
int emv_strset_add(emv_strset *s, const char *str, size_t len);
int emv_strset_has(const emv_strset *s, const char *str, size_t len);
size_t emv_strset_count(const emv_strset *s);

#endif
