/*  gw_lease - routing decisions as leases, cached per (Host, requested region, local).

    The first request for a key asks the router (`decide`); requests arriving
    while that ask is in flight wait on it (coalesced). The answer is fresh
    for GATEWAY_LEASE_TTL (0: only the requests that waited for it use it)
    or until config.changed announces a newer version. Past its TTL a lease
    keeps serving at once while one background ask refreshes it
    (stale-while-revalidate); an invalidated lease (newer configuration,
    routes read again, a backend down) is not reused before an answer. If an
    ask fails (router or balancer slow or gone), the last lease of that key
    keeps serving, marked stale, at once and with one ask per retry pause
    (the decision timeout, 50 ms to 1 s) until one is answered, in both
    modes; a key never decided gets no lease (503). The cache is bounded
    (least recently used entries are dropped). Leases are reference counted:
    a request keeps its lease while it runs, whatever the cache does.
*/
#ifndef GW_LEASE_H
#define GW_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ev.h>

#include "proto.h"
#include "proto_bus.h"

typedef enum {
    GW_LEASE_OK = 0,     // candidates to try
    GW_LEASE_NO_ROUTE,   // no route for the Host: 404
    GW_LEASE_NO_BACKEND, // no healthy backend in the requested region: 503
} gw_lease_status_t;

typedef struct {
    char *id;                     // backend id
    char *host;                   // where to connect
    uint16_t port;                // its port
    uint32_t weight;              // strategy weight
    char *region;                 // backend's region
    bool hop;                     // another region's public address
    bool failed;                  // passive failure seen through this lease
    int64_t current;              // smooth weighted round robin state
    struct sockaddr_storage addr; // resolved address
    socklen_t addrlen;            // 0 when host is not a literal address
} gw_cand_t;

//  A route's credentials (auth basic users or bearer digests), shared by
//  the leases of one auth_id: a lease whose decide named them (auth_have)
//  comes without them and takes the previous lease's. check is built from
//  them on first use by whoever checks (gw_auth), freed with them.
typedef struct {
    int refs;                   // leases holding them
    char id[65];                // auth_id: hex SHA-256 of the route's auth
    bool bearer;                // tokens (else basic users)
    proto_kv_t *users;          // basic: name -> crypt(3) hash (owned copies)
    char **tokens;              // bearer: hex SHA-256 digests (owned copies)
    uint32_t count;             // users or tokens
    void *check;                // the checker built from them, or NULL
    void (*check_free)(void *); // frees check
} gw_creds_t;

typedef struct {
    int refs;                  // owners (cache entry, requests)
    gw_lease_status_t status;  // outcome of the decision
    char *route;               // route id
    char *vhost;               // route vHost (pattern)
    char *region;              // serving region
    uint64_t version;          // configuration version
    int strategy;              // PROTO_STRATEGY_*
    gw_cand_t *cands;          // candidates in preference order
    uint32_t ncands;           // how many (at most 64 are kept)
    uint32_t retries;          // route retries
    uint32_t timeout_ms;       // upstream timeout
    uint32_t queue_timeout_ms; // queue wait bound
    uint32_t req_active;       // in-flight bound
    uint32_t req_queue;        // queue bound
    uint64_t max_body;         // body limit
    proto_kv_t *headers;       // custom headers
    uint32_t nheaders;         // how many
    char *chat_path;           // route chatPath ("" if none)
    bool wildcard;             // vhost is "*.suffix": X-Tenant-Id applies
    bool auto_https;           // autoHttps: plain HTTP gets 308
    bool sec_headers;          // securityHeaders
    struct gw_cors *cors;      // cors (gw_cors), or NULL
    gw_creds_t *creds;         // auth credentials, or NULL (no auth, or unavailable)
    bool auth_missing;         // auth set but its credentials did not come: fail closed
    char *auth_provider;       // authProvider URL, "" if none
    uint32_t auth_cache_ms;    // authCacheMs
    uint32_t rl_requests;      // rateLimit per window; 0: none
    uint32_t rl_window_s;      // its window, seconds
    uint32_t rl_burst;         // per second; 0: none
    bool rl_by_user;           // keyed by user (else client IP)
    uint64_t made_ms;          // when it arrived (monotonic ms)
} gw_lease_t;

//  A request waiting for a decision (embedded in the request).
typedef struct gw_waiter {
    struct gw_waiter *prev; // in its entry's list
    struct gw_waiter *next; // ...
    void *entry;            // the cache entry waited on, or NULL
} gw_waiter_t;

//  The decision arrived: lease is a new reference (caller unrefs), or NULL
//  when no decision could be had (503). stale: served because an ask failed.
typedef void(gw_lease_fn)(gw_waiter_t *waiter, gw_lease_t *lease, bool stale, void *arg);

typedef struct {
    int64_t ttl_ms;        // GATEWAY_LEASE_TTL
    int64_t timeout_ms;    // GATEWAY_DECISION_TIMEOUT
    const char *gw_region; // our REGION
    size_t max_entries;    // cache bound
} gw_lease_config_t;

typedef struct gw_leases gw_leases_t;

gw_leases_t *gw_leases_new(struct ev_loop *loop,
                           proto_bus_t *bus,
                           const gw_lease_config_t *cfg,
                           gw_lease_fn *fn,
                           void *arg);

//  The lease for (host, region, local). local: the request carries a trusted
//  peer's X-Switchyard-Hop (another region forwarded it here), so the decide
//  asks for our own region's backends only, never a hop (decide's local);
//  such a lease is cached apart from the usual one. Returns a new reference
//  at once when a fresh one is cached; when one past its TTL is (started or
//  joined: one background ask refreshes it; *stale not set while no ask has
//  failed); when the last ask failed and the lease may serve stale (*stale
//  set: no new ask before the retry pause); or when no ask can be sent and
//  an old one exists (*stale set).
//  Otherwise (no lease yet, an invalidated one, TTL 0) queues waiter on an
//  ask (started or joined), sets *pending and returns NULL: fn is called
//  later, never from this call, exactly once, unless cancelled. NULL
//  without *pending: no decision can be had (503).
gw_lease_t *gw_leases_get(gw_leases_t *self,
                          const char *host,
                          const char *region,
                          bool local,
                          const char *client,
                          const char *rid,
                          gw_waiter_t *waiter,
                          bool *pending,
                          bool *stale);

//  Stop waiting (the client went away). Safe if not waiting.
void gw_leases_cancel(gw_leases_t *self, gw_waiter_t *waiter);

//  A newer configuration exists: leases of older versions are not reused
//  before an answer (but serve stale once an ask made since has failed).
void gw_leases_on_config(gw_leases_t *self, uint64_t version);

//  Routes changed without a new version (seed 002's tables, read again by
//  the router): every lease is asked again before its next use (each serves
//  stale once that ask has failed).
void gw_leases_expire_all(gw_leases_t *self);

//  healthd says backend of route went down: every cached lease of that
//  route holding it is asked again before its next use (waited for, as
//  after config.changed), and the backend is marked failed in it, so
//  requests already holding the lease skip it and the lease, if it must
//  serve stale (no router), never sends to it. Returns how many leases
//  were expired.
size_t gw_leases_backend_down(gw_leases_t *self, const char *route, const char *backend);

//  healthd says backend of route is alive again: every cached lease of that
//  route is asked again: before its next use when it lacks the backend
//  (decided while it was down; unless the router is known away, then it
//  serves stale at once), in the background (stale-while-revalidate) when
//  it holds it, and then no longer skips it (so a stale lease serves it
//  again). Returns how many leases were expired.
size_t gw_leases_backend_up(gw_leases_t *self, const char *route, const char *backend);

//  Asks that failed with an old lease to serve instead, whether sent or
//  not sendable (also in pong as leases.stale, with leases.asks).
uint64_t gw_leases_stale(gw_leases_t *self);
size_t gw_leases_size(gw_leases_t *self);

void gw_leases_destroy(gw_leases_t **self_p);

gw_lease_t *gw_lease_ref(gw_lease_t *lease);
void gw_lease_unref(gw_lease_t **lease_p);

//  Index of the candidate to try next (strategy applied inside the lease),
//  skipping tried (bit i of tried) and failed ones; -1 when none is left.
int gw_lease_pick(gw_lease_t *lease, uint64_t tried, const char *client_ip, uint64_t random);

//  Build a lease from a decoded `lease` message (for tests and the cache).
//  prev: the key's previous lease (or NULL), whose credentials are shared
//  when msg names them by auth_id without carrying them.
gw_lease_t *gw_lease_from_msg(const proto_lease_t *msg, const gw_lease_t *prev);

//  Release a reference on credentials. Sets *creds_p to NULL.
void gw_creds_unref(gw_creds_t **creds_p);

#endif
