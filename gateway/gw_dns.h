/*  gw_dns - the gateway's cache of backend host names.

    A route's backend may be given by name. gw_dns turns the name into
    addresses off the hot path: the first request for a name starts one
    asynchronous query (proto_resolve, c-ares on the gateway's loop) and
    waits for it without blocking; requests for the same name arriving
    meanwhile wait on that same query (coalescing). The answer is kept for
    its TTL, clamped to [min_ttl_ms, max_ttl_ms].

    Past its TTL an entry still answers at once with its last addresses
    while one background query runs (stale-while-revalidate), started by the
    first request that finds it expired (an idle entry sends nothing). If
    that query times out or the server fails, the old addresses stay (a
    warning, once, and another try after negative_ttl_ms); if the name no
    longer exists (NXDOMAIN, no address) they are dropped. A name that does
    not resolve answers GW_DNS_FAILED for negative_ttl_ms, then is asked
    again: a failed candidate (try another backend), never a stall.

    Changes are logged: info when a name's set of addresses changes (the
    first answer included: old and new counts, the first address), warn when
    a name stops resolving or a query fails.

    Only for names: a caller turns IPv4 and IPv6 literals and "localhost"
    into addresses itself (gw_lease does). Should one reach gw_dns_get
    anyway, it is answered GW_DNS_READY at once, without a cache entry or a
    query ("localhost" as 127.0.0.1).

    The cache is bounded: beyond max_entries the least recently used entry
    is dropped, never one that has a query in flight or waiters.
*/
#ifndef GW_DNS_H
#define GW_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ev.h>

#define GW_DNS_MIN_TTL_MS      5000   // default min_ttl_ms
#define GW_DNS_MAX_TTL_MS      300000 // default max_ttl_ms
#define GW_DNS_NEGATIVE_TTL_MS 5000   // default negative_ttl_ms
#define GW_DNS_MAX_ENTRIES     10000  // default max_entries

typedef enum {
    GW_DNS_READY,   // addresses now (*addrs, *count)
    GW_DNS_PENDING, // the waiter is queued; the callback brings the outcome
    GW_DNS_FAILED,  // the name does not resolve (now, or within negative_ttl_ms)
} gw_dns_status_t;

//  A request waiting for a name (embedded in the request; zero it once).
typedef struct gw_dns_waiter {
    struct gw_dns_waiter *prev; // in its entry's list
    struct gw_dns_waiter *next; // ...
    void *entry;                // the entry waited on, or NULL when not waiting
    uint16_t port;              // the port the addresses are wanted with
} gw_dns_waiter_t;

//  The outcome for a waiter: GW_DNS_READY with count >= 1 addresses (port
//  set, borrowed for the duration of the call), or GW_DNS_FAILED with NULL
//  and 0. Called from the loop, exactly once per PENDING get, unless the
//  waiter is cancelled or the cache destroyed first. waiter is no longer
//  waiting when called: the callback may call gw_dns_get again with it, or
//  any function but gw_dns_destroy.
typedef void(gw_dns_fn)(gw_dns_waiter_t *waiter,
                        gw_dns_status_t status,
                        const struct sockaddr_storage *addrs,
                        size_t count,
                        void *arg);

typedef struct {
    const char *servers;     // NULL or "": the system's resolvers; else as
                             // proto_resolve_opts_t.servers (copied)
    int timeout_ms;          // wait per try; 0: proto_resolve's default (1000)
    int tries;               // tries per server; 0: proto_resolve's default (2)
    int family;              // AF_UNSPEC (0): IPv4 and IPv6; AF_INET; AF_INET6
    int64_t min_ttl_ms;      // shortest life of an answer; 0: GW_DNS_MIN_TTL_MS
    int64_t max_ttl_ms;      // longest; 0: GW_DNS_MAX_TTL_MS
    int64_t negative_ttl_ms; // life of a failure; 0: GW_DNS_NEGATIVE_TTL_MS
    size_t max_entries;      // cache bound; 0: GW_DNS_MAX_ENTRIES
    gw_dns_fn *fn;           // called for waiters (required)
    void *arg;               // its last argument
} gw_dns_config_t;

//  Counters (for pong: register each with proto_bus_counter).
typedef struct {
    uint64_t lookups;   // gw_dns_get calls for names (literals not counted)
    uint64_t hits;      // ... answered READY (stale ones included)
    uint64_t misses;    // ... answered PENDING
    uint64_t failures;  // ... answered FAILED, plus waiters called back with FAILED
    uint64_t queries;   // queries started (first ones and re-resolutions)
    uint64_t resolving; // queries in flight now
    uint64_t entries;   // names in the cache now
    uint64_t waiting;   // waiters queued now
} gw_dns_stats_t;

typedef struct gw_dns gw_dns_t;

//  Create a cache on loop with cfg (copied; the servers string too). Returns
//  NULL if cfg->fn is NULL, a TTL is negative, min_ttl_ms > max_ttl_ms, the
//  family is not one of the three, or proto_resolve_new refuses the
//  resolver options (servers too long, timeout_ms or tries negative).
gw_dns_t *gw_dns_new(struct ev_loop *loop, const gw_dns_config_t *cfg);

//  Cancel every query and forget every waiter (no callback, now or later),
//  free everything. Must not be called from inside the callback. Sets
//  *self_p to NULL; safe to call twice.
void gw_dns_destroy(gw_dns_t **self_p);

//  The addresses of name (NUL-terminated, compared without regard to case)
//  with port set. Never blocks, never calls the callback itself.
//  - GW_DNS_READY: *addrs holds *count >= 1 addresses, borrowed: valid until
//    the next call of any gw_dns function or the return to the loop,
//    whichever comes first (copy the one used into the request). The
//    addresses are rotated by one on every READY answer for the name (and
//    every callback), so addrs[0] spreads requests over all of them and the
//    rest, in order, are where to retry.
//  - GW_DNS_PENDING: waiter (not already waiting) is queued; the callback
//    brings the outcome. *addrs NULL, *count 0.
//  - GW_DNS_FAILED: the name does not resolve (or is not a valid name, or no
//    query could be started). *addrs NULL, *count 0.
gw_dns_status_t gw_dns_get(gw_dns_t *self,
                           const char *name,
                           uint16_t port,
                           gw_dns_waiter_t *waiter,
                           const struct sockaddr_storage **addrs,
                           size_t *count);

//  Stop waiting (the request went away): the callback will not be called
//  for waiter. Safe if waiter is not waiting (zeroed, answered, cancelled).
//  The query goes on and its answer is cached.
void gw_dns_cancel(gw_dns_t *self, gw_dns_waiter_t *waiter);

//  The counters above (borrowed, live as long as the cache).
const gw_dns_stats_t *gw_dns_stats(const gw_dns_t *self);

#endif
