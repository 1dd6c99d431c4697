/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_console.h - the web console's files as the build embeds them
 * (web/embed.cmake turns the files of web/console into api_console_assets.c), served
 * by api_console.c.  The table ends with a NULL name.
 */
#ifndef API_CONSOLE_H
#define API_CONSOLE_H

#include <stddef.h>

struct api_console_asset {
	const char *name; /* "index.html", "console.js" ... */
	const char *type; /* Content-Type */
	const char *etag; /* quoted: a digest of the content */
	const unsigned char *data;
	size_t len;
};

extern const struct api_console_asset api_console_assets[];

#endif
