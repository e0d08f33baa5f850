/*  gw_authp - the client of a route's `authProvider` (SPEC §4): an external
    service that decides whether a request may pass.

    For a request on a route with an authProvider, the gateway POSTs
    `{"method","host","path","clientIp","headers":{"authorization","cookie"}}`
    (application/json, jansson; an absent header is null) to the URL, with
    `Connection: close`, and reads the answer with http-parser: 2xx allows
    (a valid `X-User-Id` comes back as the answer's user, to be forwarded
    upstream), 401 and 403 are returned to the client, anything else (other
    statuses, a malformed answer, refused, reset, a name that does not
    resolve, a certificate not accepted, no answer within timeout_ms, 2 s in
    the gateway) is 503. Only
    the head decides: the body is read and dropped, GW_AUTHP_BODY_MAX bytes
    at most (then the answer counts as complete), a head over
    GW_AUTHP_HEAD_MAX bytes is malformed. Interim 1xx answers are skipped.

    Everything runs on the gateway's libev loop, one object per gateway.
    Host names in URLs are resolved by a gw_dns cache of the object's own
    (c-ares on the same loop: cached by TTL, coalesced); IP literals and
    "localhost" need no query; the first address is called. https:// URLs
    go through an OpenSSL client in non-blocking mode: TLS 1.2 or later,
    ALPN http/1.1, the certificate verified against ca_file or the system's
    store, for the URL's host name (SNI and name check) or IP address; each
    call is a full handshake (no session reuse). A URL this module cannot
    use (userinfo, a bad host, port or path) or a TLS context that cannot
    be made (an unreadable ca_file) is answered at once with 503 and a
    warning.

    Answers are cached per (URL, route id, Authorization, Cookie), keyed by
    their salted SHA-256, for the route's authCacheMs (0: never cached),
    GW_AUTHP_MAX_ENTRIES answers at most, the least recently used dropped
    first; 503s are never cached. An entry serves a route only within that
    route's current authCacheMs, so lowering it takes effect at once.
    Concurrent checks with the same key share one call (coalescing). With
    authCacheMs 0 the key also holds the whole request (method, host, path,
    client address): only identical requests share a call, so a provider
    deciding by path is asked for each path. With authCacheMs > 0, as SPEC
    §4 says, an answer is per credentials and route, whatever the path.

    A check is answered at once (from the cache, or a 503 known at once) or
    later through the waiter's callback, from the loop, never from inside
    gw_authp_check. A waiter whose request goes away is cancelled: its
    callback never runs, and the call goes on for the other waiters and the
    cache. Calls in flight are bounded (max_calls): beyond, 503 at once.
*/
#ifndef GW_AUTHP_H
#define GW_AUTHP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <http_parser.h>

#include "proto_list.h"

#define GW_AUTHP_TIMEOUT_MS  2000    // default timeout_ms: a whole call (SPEC §4)
#define GW_AUTHP_MAX_ENTRIES 10000   // default max_entries: cached answers
#define GW_AUTHP_MAX_CALLS   1024    // default max_calls: calls in flight
#define GW_AUTHP_USER_MAX    128     // bytes of an X-User-Id
#define GW_AUTHP_HEAD_MAX    16384   // bytes of a provider's response head
#define GW_AUTHP_BODY_MAX    65536   // bytes of its body read, at most
#define GW_AUTHP_STREAM_MAX  1048576 // bytes read before the answer is complete, at most
#define GW_AUTHP_URL_MAX     2048    // bytes of an authProvider URL (apid's bound)
#define GW_AUTHP_FIELD_MAX   16384   // bytes of each string of a query
#define GW_AUTHP_WHY_MAX     64      // bytes of an answer's reason

typedef enum {
    GW_AUTHP_ALLOW,       // 2xx: let the request through
    GW_AUTHP_DENY_401,    // 401: return 401 to the client
    GW_AUTHP_DENY_403,    // 403: return 403
    GW_AUTHP_UNAVAILABLE, // anything else: 503
} gw_authp_verdict_t;

typedef struct {
    gw_authp_verdict_t verdict;       // what to do
    int status;                       // the provider's status, 0 when none came
    char user[GW_AUTHP_USER_MAX + 1]; // ALLOW: its X-User-Id, "" when none or invalid
    char why[GW_AUTHP_WHY_MAX];       // UNAVAILABLE: why, for the log ("timeout",
                                      // "refused", "status 500"...); else ""
} gw_authp_answer_t;

//  One request to check. Strings are (pointer, length), not necessarily
//  NUL-terminated, and must be valid UTF-8 (they go into JSON); NULL is
//  sent as null. url and route are NUL-terminated.
typedef struct {
    const char *url;           // the route's authProvider
    const char *route;         // the route's id
    int64_t cache_ms;          // the route's authCacheMs (0: no cache)
    const char *method;        // request method
    size_t method_len;         // ...
    const char *host;          // request host
    size_t host_len;           // ...
    const char *path;          // request target (path and query)
    size_t path_len;           // ...
    const char *client_ip;     // client address
    size_t client_ip_len;      // ...
    const char *authorization; // Authorization value, NULL when none
    size_t authorization_len;  // ...
    const char *cookie;        // Cookie value, NULL when none
    size_t cookie_len;         // ...
} gw_authp_query_t;

typedef struct gw_authp_waiter gw_authp_waiter_t;

//  The answer for a waiter (borrowed for the duration of the call). Called
//  from the loop, at most once per check that returned 0. waiter is no
//  longer waiting: the callback may use it for another check, cancel other
//  waiters, or call any function but gw_authp_destroy.
typedef void(gw_authp_fn)(gw_authp_waiter_t *waiter, const gw_authp_answer_t *answer, void *arg);

//  A request waiting for an answer (embedded in the request; zero it once).
struct gw_authp_waiter {
    proto_link_t link; // in its call's list
    void *call;        // the call waited on, NULL when not waiting
    gw_authp_fn *fn;   // its callback
    void *arg;         // its last argument
};

typedef struct {
    int64_t timeout_ms;      // a whole call (name, connect, answer); 0: GW_AUTHP_TIMEOUT_MS
    size_t max_entries;      // cached answers; 0: GW_AUTHP_MAX_ENTRIES
    size_t max_calls;        // calls in flight; 0: GW_AUTHP_MAX_CALLS
    const char *dns_servers; // NULL or "": the system's; else as gw_dns_config_t.servers
    const char *ca_file;     // https: the CA certificates (PEM) to trust; NULL or "": the
                             // system's store
} gw_authp_config_t;

//  Counters (for pong: register each with proto_bus_counter).
typedef struct {
    uint64_t checks;    // gw_authp_check calls with a good query
    uint64_t hits;      // ... answered from the cache
    uint64_t coalesced; // ... that joined a call in flight
    uint64_t calls;     // calls made to providers
    uint64_t failures;  // answers 503 (calls and those known at once; timeouts included)
    uint64_t timeouts;  // ... of which calls that timed out
    uint64_t entries;   // answers in the cache now
    uint64_t inflight;  // calls in flight now
} gw_authp_stats_t;

typedef struct gw_authp gw_authp_t;

//  Create a client on loop with cfg (NULL: every default; copied). Returns
//  NULL if a number is negative or the resolver refuses dns_servers.
gw_authp_t *gw_authp_new(struct ev_loop *loop, const gw_authp_config_t *cfg);

//  Stop every call and forget every waiter (no callback, now or later),
//  free everything. Must not be called from inside a callback. Sets
//  *self_p to NULL; safe to call twice.
void gw_authp_destroy(gw_authp_t **self_p);

//  Check the request q. Never blocks, never calls fn itself.
//  - 1: answered now, *now filled (a cached answer, or a 503 known at
//    once: a URL that cannot be used, no TLS context, too many calls in
//    flight); waiter untouched.
//  - 0: waiter (not already waiting) is queued; fn(waiter, answer, arg)
//    brings the answer from the loop unless gw_authp_cancel comes first.
//  - -1: a bad query (a NULL url or route, a string that is not valid
//    UTF-8 or is over GW_AUTHP_FIELD_MAX bytes, a negative cache_ms):
//    nothing happened.
int gw_authp_check(gw_authp_t *self,
                   const gw_authp_query_t *q,
                   gw_authp_answer_t *now,
                   gw_authp_waiter_t *waiter,
                   gw_authp_fn *fn,
                   void *arg);

//  Stop waiting (the request went away): fn will not be called for waiter.
//  Safe if waiter is not waiting (zeroed, answered, cancelled). The call
//  goes on and its answer is cached.
void gw_authp_cancel(gw_authp_t *self, gw_authp_waiter_t *waiter);

//  The counters above (borrowed, live as long as the client).
const gw_authp_stats_t *gw_authp_stats(const gw_authp_t *self);

//  The response parser, a pure function of the bytes (fuzzed by
//  tests/fuzz/fuzz_authp_response.c). Initialise, then feed what each read
//  brings, and a length of 0 at the end of the stream.
typedef struct {
    http_parser parser;               // HTTP_RESPONSE
    int status;                       // the final status, once the head is complete
    char user[GW_AUTHP_USER_MAX + 1]; // a valid X-User-Id of the final head, or ""
    size_t user_len;                  // bytes of the value being collected
    unsigned users;                   // X-User-Id fields of the current head
    bool user_bad;                    // the value is not 1..128 visible ASCII
    char field[16];                   // the name being collected (its start)
    size_t field_len;                 // its length so far
    bool in_value;                    // the last piece was a value
    bool in_user;                     // ... of an X-User-Id
    size_t head_bytes;                // bytes of the current head
    size_t body_bytes;                // bytes of the final body seen
    bool head_done;                   // the final head is complete
    bool done;                        // the answer is complete
    size_t fed;                       // bytes parsed (the stream must start "HTTP/1.")
    bool bad;                         // malformed
} gw_authp_resp_t;

void gw_authp_resp_init(gw_authp_resp_t *r);

//  Feed len bytes (0: the stream ended). Returns 1 when the answer is
//  complete (r->status and r->user hold it; nothing more need be fed), 0
//  when more is needed, -1 when malformed (not "HTTP/1." at the start or a
//  status outside 100..999, which http-parser 2.9.4 lets through; or the
//  stream ended before the final head). The answer is complete at the end of its message, at the
//  end of the stream after its head, or once GW_AUTHP_BODY_MAX bytes of its
//  body were seen; one not complete within the stream's first
//  GW_AUTHP_STREAM_MAX bytes (endless interim answers or chunk framing) is
//  malformed. Once 1 or -1, every later call returns the same.
int gw_authp_resp_feed(gw_authp_resp_t *r, const char *data, size_t len);

#endif
