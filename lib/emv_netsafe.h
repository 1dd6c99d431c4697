/* SPDX-License-Identifier: Apache-2.0 */
/*
 * emv_netsafe.h - is an address one a probe may connect to?
 *
 * A hostile MX record must not turn a worker into a scanner of its own
 * network: loopback, private (RFC 1918, ULA), link-local, multicast, CGNAT,
 * documentation, benchmarking and other reserved ranges are refused unless
 * the caller allows private targets (the test world does).
 */
#ifndef EMV_NETSAFE_H
#define EMV_NETSAFE_H

#include <sys/socket.h>

/* Returns NULL when sa is a public unicast address, else the name of the
 * range it falls in ("loopback", "private", "link-local", ...). */
const char *emv_netsafe_class(const struct sockaddr *sa);

#endif
