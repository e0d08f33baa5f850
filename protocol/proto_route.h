/*  proto_route - the route model of SPEC §4, defined once.

    What a route may hold: the syntax of each name (vHost, backend hostname,
    route and backend ids, region, custom header), the bounds of each number,
    the defaults of SPEC §4 and the default backend id. apid checks API
    bodies with these (apid/api_route.c: its JSON paths, document order and
    error codes); the router checks what it stores and loads with the same
    ones (router/rt_route.c). So a route accepted by one is accepted by the
    other, and a route refused by one is refused by the other.

    No JSON here (libproto links no JSON library): the functions take
    NUL-terminated strings; the callers parse, and name the bad field.

      vHost      a host name, "*.<host name>" (wildcard) or "*" (catch-all);
                 at most PROTO_ROUTE_VHOST_MAX bytes; either case is valid,
                 and it is stored lower-case (proto_route_vhost_normalize).
      host name  labels of 1-PROTO_ROUTE_LABEL_MAX letters, digits, '-' or
                 '_', joined by '.', no label starting or ending with '-'
                 (RFC 1123; '_' as found in internal names). An IPv4 address
                 is a host name by this rule. No port, no trailing dot.
      hostname   (of a backend) a host name as above, at most
                 PROTO_ROUTE_HOSTNAME_MAX bytes, or an IPv6 address, bare or
                 in brackets, stored bare (proto_route_hostname_normalize).
      ids        route id: 1-PROTO_ROUTE_ID_MAX bytes without control
                 characters (it defaults to the vHost). Backend id:
                 1-PROTO_ROUTE_BACKEND_ID_MAX bytes of printable ASCII without
                 space, '/', '?', '#' or '%' (it is a path segment of the API),
                 defaulting to "hostname:port" ("[v6]:port" for IPv6).
      region     1-PROTO_ROUTE_REGION_MAX bytes of printable ASCII without
                 space.
      address    (a region's public address, SPEC §7) "host[:port]": host a
                 host name (an IPv4 address is one) or an IPv6 address in
                 brackets; port 1-65535, default 80. Stored with its port
                 ("host:port", "[v6]:port": proto_route_address_normalize).
      headers    custom headers sent upstream: names are RFC 9110 tokens of
                 at most PROTO_ROUTE_HEADER_NAME_MAX bytes, unique ignoring
                 case, and not a header that frames the message or belongs to
                 one connection (proto_route_header_forbidden); values at most
                 PROTO_ROUTE_HEADER_VALUE_MAX bytes, no control characters
                 except tab.
      strategy   proto_strategy_parse (exact, upper-case names).
      probe      "http" or "tcp" (proto_route_probe_parse).

    Every bound here is within the bus's (messages.def): a route that passes
    always fits in a pick and a lease.
*/
#ifndef PROTO_ROUTE_H
#define PROTO_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "proto_strategy.h"

//  Strings and counts.
#define PROTO_ROUTE_VHOST_MAX        253  // bytes of a vHost (a DNS name's limit)
#define PROTO_ROUTE_LABEL_MAX        63   // bytes of one label of a host name
#define PROTO_ROUTE_HOSTNAME_MAX     253  // bytes of a backend hostname
#define PROTO_ROUTE_ID_MAX           255  // bytes of a route id
#define PROTO_ROUTE_BACKEND_ID_MAX   128  // bytes of a backend id
#define PROTO_ROUTE_REGION_MAX       64   // bytes of a region id
#define PROTO_ROUTE_BACKENDS_MAX     256  // backends per route (pick's list bound)
#define PROTO_ROUTE_HEADERS_MAX      32   // custom headers per route (lease's KV bound)
#define PROTO_ROUTE_HEADER_NAME_MAX  256  // bytes of a custom header name
#define PROTO_ROUTE_HEADER_VALUE_MAX 1024 // bytes of a custom header value (lease bound)
#define PROTO_ROUTE_ADDRESS_MAX      262  // bytes of a region's stored public address

//  Numbers: the range each field accepts and its default (SPEC §4).
#define PROTO_ROUTE_PORT_MIN              1
#define PROTO_ROUTE_PORT_MAX              65535
#define PROTO_ROUTE_WEIGHT_MIN            1
#define PROTO_ROUTE_WEIGHT_MAX            1000
#define PROTO_ROUTE_WEIGHT_DEFAULT        1
#define PROTO_ROUTE_RETRIES_MIN           0
#define PROTO_ROUTE_RETRIES_MAX           10
#define PROTO_ROUTE_RETRIES_DEFAULT       2
#define PROTO_ROUTE_TIMEOUT_MS_MIN        1
#define PROTO_ROUTE_TIMEOUT_MS_MAX        3600000
#define PROTO_ROUTE_TIMEOUT_MS_DEFAULT    30000
#define PROTO_ROUTE_QUEUE_TIMEOUT_MS_MIN  0
#define PROTO_ROUTE_QUEUE_TIMEOUT_MS_MAX  3600000 // default: the route's timeoutMs
#define PROTO_ROUTE_REQ_ACTIVE_MIN        1
#define PROTO_ROUTE_REQ_ACTIVE_MAX        1000000
#define PROTO_ROUTE_REQ_ACTIVE_DEFAULT    50 // SPEC §4's example
#define PROTO_ROUTE_REQ_QUEUE_MIN         0
#define PROTO_ROUTE_REQ_QUEUE_MAX         1000000
#define PROTO_ROUTE_REQ_QUEUE_DEFAULT     100 // SPEC §4's example
#define PROTO_ROUTE_MAX_BODY_MIN          1
#define PROTO_ROUTE_MAX_BODY_MAX          1073741824LL // 1 GiB
#define PROTO_ROUTE_MAX_BODY_DEFAULT      10485760     // 10 MiB
#define PROTO_ROUTE_AUTH_CACHE_MS_MIN     0
#define PROTO_ROUTE_AUTH_CACHE_MS_MAX     3600000
#define PROTO_ROUTE_AUTH_CACHE_MS_DEFAULT 5000
#define PROTO_ROUTE_ADDRESS_PORT_DEFAULT  80 // a region's public address without a port

//  Other defaults.
#define PROTO_ROUTE_STRATEGY_DEFAULT    PROTO_STRATEGY_ROUND_ROBIN
#define PROTO_ROUTE_HEALTH_PATH_DEFAULT "/"

//  How a backend is probed: HTTP, a request to the route's healthPath (the
//  default); TCP, a connect only. The one list of the names.
#define PROTO_ROUTE_PROBES(X)                                                                      \
    X(HTTP, "http")                                                                                \
    X(TCP, "tcp")

typedef enum {
#define PROTO_ROUTE_PROBE_ENUM(C, name) PROTO_ROUTE_PROBE_##C,
    PROTO_ROUTE_PROBES(PROTO_ROUTE_PROBE_ENUM)
#undef PROTO_ROUTE_PROBE_ENUM
        PROTO_ROUTE_PROBE_COUNT
} proto_route_probe_t;

#define PROTO_ROUTE_PROBE_DEFAULT PROTO_ROUTE_PROBE_HTTP

//  True if text is a valid vHost: a host name, "*.<host name>" or "*", at
//  most PROTO_ROUTE_VHOST_MAX bytes. Letters of either case are valid.
bool proto_route_valid_vhost(const char *text);

//  Write the stored form of a vHost (lower-case) into out, of cap bytes
//  (PROTO_ROUTE_VHOST_MAX + 1 is always enough). Returns 0, or -1 if text is
//  not a valid vHost or does not fit (out is then "").
int proto_route_vhost_normalize(const char *text, char *out, size_t cap);

//  True if text is a host name (see above) of at most max bytes.
bool proto_route_valid_host_name(const char *text, size_t max);

//  True if text is a valid backend hostname: a host name of at most
//  PROTO_ROUTE_HOSTNAME_MAX bytes, or an IPv6 address, bare or in brackets.
bool proto_route_valid_hostname(const char *text);

//  Write the stored form of a backend hostname into out, of cap bytes
//  (PROTO_ROUTE_HOSTNAME_MAX + 1 is always enough): an IPv6 address without
//  brackets, a host name as given. Returns 0, or -1 if text is not a valid
//  hostname or does not fit (out is then "").
int proto_route_hostname_normalize(const char *text, char *out, size_t cap);

//  Write a backend's default id into out, of cap bytes: "hostname:port", or
//  "[hostname]:port" when hostname (in stored form) is an IPv6 address.
//  Returns 0, or -1 if that id would be over PROTO_ROUTE_BACKEND_ID_MAX bytes
//  or does not fit in cap (out is then "": the backend needs an explicit id).
int proto_route_default_backend_id(const char *hostname, unsigned port, char *out, size_t cap);

//  True if text is a valid route id: 1-PROTO_ROUTE_ID_MAX bytes, no control
//  characters.
bool proto_route_valid_route_id(const char *text);

//  True if text is a valid backend id: 1-PROTO_ROUTE_BACKEND_ID_MAX bytes of
//  printable ASCII without space, '/', '?', '#' or '%'.
bool proto_route_valid_backend_id(const char *text);

//  True if text is a valid region id: 1-PROTO_ROUTE_REGION_MAX bytes of
//  printable ASCII without space.
bool proto_route_valid_region(const char *text);

//  Write the stored form of a region's public address into out, of cap bytes
//  (PROTO_ROUTE_ADDRESS_MAX + 1 is always enough): "host:port" or
//  "[v6]:port", the port PROTO_ROUTE_ADDRESS_PORT_DEFAULT when text has
//  none. text is "host[:port]" as above: a bare IPv6 address, an empty host,
//  a port that is not 1-65535 in decimal, or anything else is refused.
//  Returns 0, or -1 if text is not valid or does not fit (out is then "").
int proto_route_address_normalize(const char *text, char *out, size_t cap);

//  True if name is a valid custom header name as far as syntax goes: an
//  RFC 9110 token of 1-PROTO_ROUTE_HEADER_NAME_MAX bytes.
bool proto_route_valid_header_name(const char *name);

//  True if a route may not set the header name (any case): Connection,
//  Content-Length, Transfer-Encoding, Keep-Alive, Upgrade, TE, Trailer,
//  Proxy-Connection. They frame the message or belong to one connection
//  (RFC 9110 §7.6.1); setting them would break framing.
bool proto_route_header_forbidden(const char *name);

//  True if value is a valid custom header value: at most
//  PROTO_ROUTE_HEADER_VALUE_MAX bytes, no control characters but tab.
bool proto_route_valid_header_value(const char *value);

//  Parse a probe name: exactly "http" or "tcp". Returns 0 and sets *probe,
//  or -1 if name is NULL or unknown.
int proto_route_probe_parse(const char *name, proto_route_probe_t *probe);

//  The name of a probe (a static string), or NULL if out of range.
const char *proto_route_probe_name(proto_route_probe_t probe);

//  Every probe name, in order, joined by ", " (a static string: "http, tcp").
const char *proto_route_probe_list(void);

#endif
