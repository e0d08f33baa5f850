/*  proto_resolve - asynchronous name resolution (c-ares) on a libev loop.

    One resolver per loop, shared by every module of an actor that needs
    host names turned into addresses without blocking the loop (healthd's
    probe targets, proto_disc's dns: peers, the gateway's named backends).

    The c-ares channel is created on the first lookup of a name (literals
    never need it); its sockets are watched with ev_io and its timeouts are
    driven by one ev_timer that runs only while queries are in flight. Each
    try waits timeout_ms (default 1000 ms) and a query is tried `tries` times
    (default 2) per server, so an unanswered name fails in about three
    seconds with the defaults (c-ares doubles the wait of the second round).
    Names in /etc/hosts ("localhost" included) are answered by c-ares from
    the file, without a query.

    Callbacks are never called from inside proto_resolve_lookup: answers,
    literal ones included, are delivered from the loop (the next turn at the
    earliest), so the caller may store the query id before its answer.
*/
#ifndef PROTO_RESOLVE_H
#define PROTO_RESOLVE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ev.h>

#define PROTO_RESOLVE_NAME_MAX   255  // bytes of a name, without the NUL
#define PROTO_RESOLVE_SERVERS    512  // bytes of a servers string, without the NUL
#define PROTO_RESOLVE_MAX_ADDRS  128  // addresses reported per answer, at most
#define PROTO_RESOLVE_TIMEOUT_MS 1000 // default wait per try
#define PROTO_RESOLVE_TRIES      2    // default tries per server

typedef enum {
    PROTO_RESOLVE_OK,        // at least one address
    PROTO_RESOLVE_NOT_FOUND, // the name does not exist (NXDOMAIN) or has no address
    PROTO_RESOLVE_TIMEOUT,   // no server answered in time
    PROTO_RESOLVE_FAILED,    // any other failure (server failure, refused, bad servers)
    PROTO_RESOLVE_BAD_NAME,  // rejected before any query: empty, over 255 bytes, a NUL,
                             // a space or another control character (lookup only)
} proto_resolve_status_t;

typedef struct {
    const char *servers; // NULL or "": the system's (/etc/resolv.conf); else
                         // "IP[:PORT][,IP[:PORT]...]" (IPv6 as [IP]:PORT), copied
    int timeout_ms;      // wait per try; 0: PROTO_RESOLVE_TIMEOUT_MS
    int tries;           // tries per server; 0: PROTO_RESOLVE_TRIES
} proto_resolve_opts_t;

typedef struct proto_resolve proto_resolve_t;

//  The answer to one lookup. addrs holds count addresses (0 unless status is
//  PROTO_RESOLVE_OK), borrowed for the duration of the call, each with the
//  lookup's port set. ttl_s is the smallest TTL of the answer's records, 0
//  when there is none (a literal, an /etc/hosts entry) or on failure.
typedef void(proto_resolve_fn)(void *arg,
                               proto_resolve_status_t status,
                               const struct sockaddr_storage *addrs,
                               size_t count,
                               uint32_t ttl_s);

//  Create a resolver on loop with opts (NULL: every default). Checks only
//  the lengths of opts: a servers string c-ares refuses makes every name
//  lookup fail with PROTO_RESOLVE_FAILED (and a warning, once). Returns NULL
//  if servers is over PROTO_RESOLVE_SERVERS bytes or timeout_ms or tries is
//  negative.
proto_resolve_t *proto_resolve_new(struct ev_loop *loop, const proto_resolve_opts_t *opts);

//  Cancel every query and free. No callback is called, neither from here
//  nor later. Must not be called from inside one of the resolver's
//  callbacks. Sets *self_p to NULL; safe to call twice.
void proto_resolve_destroy(proto_resolve_t **self_p);

//  Resolve name (a NUL-terminated string) to addresses of family (AF_UNSPEC,
//  AF_INET or AF_INET6) with port set. An IPv4 or IPv6 literal is answered
//  without any query. Returns PROTO_RESOLVE_OK and sets *id_p to the query's
//  id (never 0): fn is called exactly once, from the loop, unless the query
//  is cancelled or the resolver destroyed first. Otherwise returns the reason
//  (PROTO_RESOLVE_BAD_NAME, or PROTO_RESOLVE_FAILED if c-ares cannot start),
//  sets *id_p to 0 and never calls fn.
proto_resolve_status_t proto_resolve_lookup(proto_resolve_t *self,
                                            const char *name,
                                            uint16_t port,
                                            int family,
                                            proto_resolve_fn *fn,
                                            void *arg,
                                            uint64_t *id_p);

//  Forget a query: its callback will not be called. An id already answered,
//  already cancelled, or 0 is ignored. Safe from inside any callback.
void proto_resolve_cancel(proto_resolve_t *self, uint64_t id);

//  Check a name of len bytes (which may hold a NUL): returns PROTO_RESOLVE_OK
//  or PROTO_RESOLVE_BAD_NAME.
proto_resolve_status_t proto_resolve_check_name(const char *name, size_t len);

//  Parse an IPv4 or IPv6 literal (no query, no blocking) into *addr with
//  port set. Returns the address length, or 0 if name is not a literal.
socklen_t
proto_resolve_literal(const char *name, uint16_t port, int family, struct sockaddr_storage *addr);

//  Check a servers string (proto_resolve_opts_t.servers) as c-ares will
//  read it: a comma-separated list of IPv4 or IPv6 addresses, each with an
//  optional port ("10.0.0.2", "10.0.0.2:5353", "[::1]:53"). NULL or "" is
//  fine (the system's). Returns 0, or -1 with the reason in err.
int proto_resolve_check_servers(const char *servers, char *err, size_t errlen);

//  The length of a sockaddr_in or sockaddr_in6 in *addr (0 for other families).
socklen_t proto_resolve_addrlen(const struct sockaddr_storage *addr);

//  A short constant name of a status ("ok", "not found", "timeout", ...).
const char *proto_resolve_strstatus(proto_resolve_status_t status);

//  Queries in flight in c-ares (cancelled ones included until c-ares ends them).
size_t proto_resolve_pending(const proto_resolve_t *self);

//  Lookups handed to c-ares since creation (literals and rejected names are
//  not counted).
uint64_t proto_resolve_sent(const proto_resolve_t *self);

#endif
