/*
 * netcheck — the table of upstream networks the sidecar never dials on its
 * own initiative.
 *
 * An upstream host that resolves into loopback, link-local (cloud metadata),
 * private, CGNAT, multicast, reserved, documentation, NAT64, 6to4, Teredo or
 * unique-local space is refused unless a resolve override or a route names
 * that address explicitly. IPv6 forms that embed an IPv4 address (mapped,
 * compatible) are judged by the embedded address. This module only answers
 * the question; it never resolves names and never logs.
 */
#ifndef BOTTLE_SIDECAR_NETCHECK_H
#define BOTTLE_SIDECAR_NETCHECK_H

#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>

/* The name of the blocked network addr falls into (e.g. "loopback"), or NULL when it is public. */
const char *netcheck_blocked_v4(const struct in_addr *addr);
const char *netcheck_blocked_v6(const struct in6_addr *addr);
/* Any family; an address family other than IPv4/IPv6 is reported as "unsupported_family". */
const char *netcheck_blocked(const struct sockaddr *sa);

#endif
