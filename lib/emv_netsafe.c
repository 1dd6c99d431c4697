/* SPDX-License-Identifier: Apache-2.0 */
/* emv_netsafe.c - classify IPv4/IPv6 addresses as public or special-use. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include "emv_netsafe.h"

struct range4 {
	uint32_t net;
	int bits;
	const char *name;
};

static const struct range4 v4[] = {
	{ 0x00000000u, 8, "this-network" },   /* 0.0.0.0/8 */
	{ 0x0a000000u, 8, "private" },	      /* 10/8 */
	{ 0x64400000u, 10, "cgnat" },	      /* 100.64/10 */
	{ 0x7f000000u, 8, "loopback" },	      /* 127/8 */
	{ 0xa9fe0000u, 16, "link-local" },    /* 169.254/16 */
	{ 0xac100000u, 12, "private" },	      /* 172.16/12 */
	{ 0xc0000000u, 24, "reserved" },      /* 192.0.0/24 IETF */
	{ 0xc0000200u, 24, "documentation" }, /* 192.0.2/24 */
	{ 0xc0586300u, 24, "reserved" },      /* 192.88.99/24 6to4 relay */
	{ 0xc0a80000u, 16, "private" },	      /* 192.168/16 */
	{ 0xc6120000u, 15, "benchmarking" },  /* 198.18/15 */
	{ 0xc6336400u, 24, "documentation" }, /* 198.51.100/24 */
	{ 0xcb007100u, 24, "documentation" }, /* 203.0.113/24 */
	{ 0xe0000000u, 4, "multicast" },      /* 224/4 */
	{ 0xf0000000u, 4, "reserved" },	      /* 240/4 incl. broadcast */
};

static const char *class4(uint32_t a)
{
	for (size_t i = 0; i < sizeof v4 / sizeof v4[0]; i++) {
		uint32_t mask = v4[i].bits ? 0xffffffffu << (32 - v4[i].bits) : 0;
		if ((a & mask) == v4[i].net)
			return v4[i].name;
	}
	return NULL;
}

static const char *class6(const uint8_t *b)
{
	static const uint8_t zero[16];
	if (memcmp(b, zero, 15) == 0 && (b[15] == 0 || b[15] == 1))
		return b[15] ? "loopback" : "unspecified";
	/* IPv4-mapped ::ffff:0:0/96 and NAT64 64:ff9b::/96 - judge the IPv4 inside */
	if (memcmp(b, zero, 10) == 0 && b[10] == 0xff && b[11] == 0xff)
		return class4((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15]);
	if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && memcmp(b + 4, zero, 8) == 0)
		return class4((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15]);
	if (memcmp(b, zero, 12) == 0)
		return "reserved"; /* IPv4-compatible, deprecated */
	if ((b[0] & 0xfe) == 0xfc)
		return "private"; /* fc00::/7 ULA */
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
		return "link-local"; /* fe80::/10 */
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
		return "reserved"; /* fec0::/10 site-local, deprecated */
	if (b[0] == 0xff)
		return "multicast";
	if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
		return "documentation"; /* 2001:db8::/32 */
	if (b[0] == 0x01 && b[1] == 0x00 && memcmp(b + 2, zero, 6) == 0)
		return "reserved"; /* 100::/64 discard */
	if ((b[0] & 0xe0) != 0x20)
		return "reserved"; /* only 2000::/3 is global unicast */
	return NULL;
}

const char *emv_netsafe_class(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
		return class4(ntohl(s->sin_addr.s_addr));
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
		return class6(s->sin6_addr.s6_addr);
	}
	return "unsupported-family";
}
