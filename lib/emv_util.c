/* SPDX-License-Identifier: Apache-2.0 */
/* emv_util.c - allocation, clock, sanitising and logging helpers. */
#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "emv_util.h"

emv_log_level emv_log_threshold = EMV_LOG_WARN;

static void oom(size_t n)
{
	fprintf(stderr, "emailverify: out of memory (%zu bytes)\n", n);
	abort();
}

void *emv_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *emv_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom(n * size);
	return p;
}

void *emv_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

char *emv_xstrdup(const char *s)
{
	return emv_xstrndup(s, strlen(s));
}

char *emv_xstrndup(const char *s, size_t n)
{
	char *p = emv_xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

uint64_t emv_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t emv_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t emv_now_ms(void)
{
	return emv_now_us() / 1000u;
}

size_t emv_sanitize(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t i, n = 0;
	if (dstlen == 0)
		return 0;
	for (i = 0; i < srclen && n + 1 < dstlen; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[n++] = (c >= 0x20 && c <= 0x7e) ? (char)c : '?';
	}
	dst[n] = '\0';
	return n;
}

int emv_csv_is_formula(const char *s)
{
	return s && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' || s[0] == '\r');
}

size_t emv_strlcpy(char *dst, const char *src, size_t dstlen)
{
	size_t n = strlen(src);
	if (dstlen == 0)
		return 0;
	if (n >= dstlen)
		n = dstlen - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return n;
}

void emv_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void emv_ascii_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

char *emv_trim(char *s)
{
	char *e;
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n' || *s == '\v' || *s == '\f')
		s++;
	e = s + strlen(s);
	while (e > s &&
	       (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n' || e[-1] == '\v' || e[-1] == '\f'))
		*--e = '\0';
	return s;
}

void emv_log(emv_log_level lvl, const char *component, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warn", "info", "debug", "trace" };
	char buf[2048];
	struct timespec ts;
	struct tm tm;
	va_list ap;

	if (lvl > emv_log_threshold)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: %s\n", tm.tm_year + 1900, tm.tm_mon + 1,
		tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L, names[lvl], component, buf);
}

void emv_buf_add(emv_buf *b, const void *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = emv_xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

int emv_csv_has(const char *csv, const char *name)
{
	size_t n = strlen(name);

	if (!csv || !n)
		return 0;
	for (const char *p = csv; *p;) {
		const char *q = strchr(p, ',');
		size_t len = q ? (size_t)(q - p) : strlen(p);
		if (len == n && memcmp(p, name, n) == 0)
			return 1;
		if (!q)
			break;
		p = q + 1;
	}
	return 0;
}

static char data_dir[PATH_MAX];
static pthread_once_t data_dir_once = PTHREAD_ONCE_INIT;

static int has_rules(const char *dir)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof path, "%s/classify.rules", dir);
	return access(path, R_OK) == 0;
}

static void data_dir_find(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);

	if (n > 0) {
		char *slash;
		exe[n] = '\0';
		if ((slash = strrchr(exe, '/'))) {
			*slash = '\0';
			if (strlen(exe) + sizeof "/../share/emailverify" < sizeof data_dir) {
				snprintf(data_dir, sizeof data_dir, "%s/../share/emailverify", exe);
				if (has_rules(data_dir))
					return;
			}
		}
	}
	if (has_rules(EMV_SOURCE_DATA_DIR)) {
		emv_strlcpy(data_dir, EMV_SOURCE_DATA_DIR, sizeof data_dir);
		return;
	}
	emv_strlcpy(data_dir, EMV_INSTALL_DATA_DIR, sizeof data_dir);
}

const char *emv_data_dir(const char *given)
{
	const char *env;

	if (given)
		return given;
	if ((env = getenv("EMAILVERIFY_DATA")) && *env)
		return env;
	pthread_once(&data_dir_once, data_dir_find);
	return data_dir;
}

int emv_parse_ll(const char *s, long long min, long long max, long long *out)
{
	const char *p = s;
	int neg = 0;
	unsigned long long v = 0, lim;

	if (!s)
		return EMV_ERR;
	if (*p == '-')
		neg = 1, p++;
	if (*p < '0' || *p > '9')
		return EMV_ERR;
	/* the magnitude may reach |LLONG_MIN| for a negative number */
	lim = neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (lim - d) / 10)
			return EMV_ERR;
		v = v * 10 + d;
	}
	if (*p)
		return EMV_ERR;
	{
		long long x = neg ? (v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v) : (long long)v;
		if (x < min || x > max)
			return EMV_ERR;
		*out = x;
	}
	return EMV_OK;
}

int emv_parse_number(const char *name, const char *s, long long min, long long max, long long *out, char *err,
		     size_t errlen)
{
	char shown[48];
	if (emv_parse_ll(s, min, max, out) == EMV_OK)
		return EMV_OK;
	emv_sanitize(shown, sizeof shown, s ? s : "", s ? strlen(s) : 0);
	emv_set_err(err, errlen, "%s must be a whole number from %lld to %lld (got '%s')", name, min, max, shown);
	return EMV_ERR;
}

int emv_parse_int(const char *name, const char *s, int min, int max, int *out, char *err, size_t errlen)
{
	long long v;
	if (emv_parse_number(name, s, min, max, &v, err, errlen) != EMV_OK)
		return EMV_ERR;
	*out = (int)v;
	return EMV_OK;
}

int emv_parse_duration_max_ms(const char *s, uint64_t max_ms, uint64_t *ms)
{
	unsigned long long v = 0, unit = 1000;
	const char *p = s;

	if (!s || !*s)
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (unsigned long long)(*p - '0');
		if (v > max_ms / 1000)
			return -1;
	}
	if (p == s)
		return -1;
	if (*p) {
		switch (*p) {
		case 's': unit = 1000; break;
		case 'm': unit = 60000; break;
		case 'h': unit = 3600000; break;
		case 'd': unit = 86400000; break;
		default: return -1;
		}
		if (p[1])
			return -1;
	}
	if (v * unit > max_ms)
		return -1;
	*ms = v * unit;
	return 0;
}

int emv_parse_duration_ms(const char *s, uint64_t *ms)
{
	return emv_parse_duration_max_ms(s, 30ull * 86400000, ms);
}

int emv_parse_limit_s(const char *opt, const char *arg, int zero_ok, int64_t *s, char *err, size_t errlen)
{
	uint64_t ms;
	if (emv_parse_duration_ms(arg, &ms) < 0 || (!zero_ok && ms == 0)) {
		emv_set_err(err, errlen, "%s takes a duration from %s to 30d, such as 90s, 10m or 2h (got '%s')", opt,
			    zero_ok ? "0" : "1s", arg);
		return -1;
	}
	*s = (int64_t)((ms + 999) / 1000);
	return 0;
}
