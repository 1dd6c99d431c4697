/* SPDX-License-Identifier: Apache-2.0 */
/*
 * known_bad.c - NOT part of any build.  tests/static/cppcheck.sh checks this
 * file first, with the same options as the sources, and fails unless cppcheck
 * reports the bug below: a static check that finds nothing because it was
 * misconfigured (wrong folder, a suppression too wide, a cppcheck that no
 * longer reads our options) must not pass as "no findings".
 */
#include <stdlib.h>

int known_bad(int n)
{
	char *p = malloc(16);
	int a[4];

	if (!p)
		return -1;
	free(p);
	a[n] = p[0]; /* use after free */
	return a[0];
}
