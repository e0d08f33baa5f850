/*  rt_route - one route (SPEC §4) as the router keeps it: validated,
    normalized, immutable once shared.

    A route is built from JSON (the body apid sends, or a route of the state
    file). Building validates every field the router relies on with the
    route model's rules (proto_route: the same names, bounds and defaults
    apid checks), resolves the defaults that depend on the router (backend
    region = REGION, backend id = hostname:port, weight 1, route id = vHost),
    lower-cases the vHost, stores an IPv6 hostname without brackets and
    drops read-only runtime fields. The edge policy (autoHttps, cors, auth,
    rateLimit, ...) is read into policy (rt_policy) for leases; it and the
    fields the router does not use (ssl, healthPath, ...) are kept in doc.

    Routes are reference-counted: the table holds one reference, and a decide
    waiting for the balancer holds another, so a route replaced meanwhile
    stays valid until the lease is relayed. A route is never changed once a
    second reference exists: a change builds a new route (copy-on-write).
*/
#ifndef RT_ROUTE_H
#define RT_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "proto.h"
#include "proto_route.h"
#include "rt_policy.h"

//  Why a document was refused: SPEC §5's message and field.
typedef struct rt_error {
    char message[256]; // what is wrong
    char field[256];   // the bad field, e.g. "backends[1].port"; "" when none
} rt_error_t;

//  One backend of a route.
typedef struct {
    char *id;             // unique within the route
    char *host;           // hostname or address
    uint16_t port;        // PROTO_ROUTE_PORT_MIN-MAX
    uint32_t weight;      // PROTO_ROUTE_WEIGHT_MIN-MAX
    char *region;         // region id
    bool maint;           // marked dead by an operator (/dead until /alive)
    uint64_t maint_since; // when maint began, ms since the epoch; 0 if unknown
} rt_backend_t;

//  A route. Read-only for everyone but its builder (see above).
typedef struct rt_route {
    int refs;                  // references held
    char *id;                  // route id
    char *vhost;               // lower-case: exact, "*.suffix" or "*"
    const char *strategy;      // proto_strategy_name(): a static string
    uint8_t retries;           // retries
    uint32_t timeout_ms;       // timeoutMs
    uint32_t queue_timeout_ms; // queueTimeoutMs (default timeoutMs)
    uint32_t req_active;       // reqActiveLength
    uint32_t req_queue;        // reqQueueLength
    uint64_t max_body;         // maxBodyBytes
    proto_kv_t *headers;       // custom headers (strings point into doc)
    uint32_t headers_count;    // how many
    const char *chat_path;     // chatPath, or NULL (points into doc)
    rt_policy_t policy;        // autoHttps, securityHeaders, cors, auth, rateLimit
    rt_backend_t *backends;    // backends in document order
    uint32_t backends_count;   // how many
    proto_backend_t *pick;     // the backends as pick carries them (strings borrowed)
    json_t *doc;               // normalized JSON, no runtime fields, no maintenance
} rt_route_t;

//  Build a route from a JSON object (borrowed). region is the default
//  backend region. Returns a route with one reference, or NULL with err set.
rt_route_t *rt_route_new(const json_t *json, const char *region, rt_error_t *err);

//  Take another reference. Returns route.
rt_route_t *rt_route_ref(rt_route_t *route);

//  Drop a reference; the last one frees the route. Sets *route_p to NULL.
//  Safe with *route_p NULL.
void rt_route_unref(rt_route_t **route_p);

//  Validate and normalize one backend object (borrowed) as SPEC §4 and §5's
//  POST .../backends take it. prefix names it in errors ("backends[2]." or
//  ""). Returns a new object (caller owns: json_decref), or NULL with err.
json_t *rt_route_backend_normalize(const json_t *json,
                                   const char *region,
                                   const char *prefix,
                                   rt_error_t *err);

//  Index of the backend with this id, or -1.
int rt_route_find_backend(const rt_route_t *route, const char *id);

//  A new route (one reference) from a new document: doc is taken (its
//  reference is consumed, also on failure). Maintenance state is carried
//  over from old (may be NULL) for backends whose id is kept.
rt_route_t *
rt_route_rebuild(const rt_route_t *old, json_t *doc, const char *region, rt_error_t *err);

//  Set a backend's maintenance state. Only for a route nobody shares yet
//  (refs == 1): asserts it.
void rt_route_set_maint(rt_route_t *route, size_t index, bool maint, uint64_t since_ms);

//  Copy maintenance state from `from` to `to` for backends with the same id.
//  `to` must not be shared yet.
void rt_route_carry_state(rt_route_t *to, const rt_route_t *from);

//  What healthd last said of a (route, backend): the value of the router's
//  proto_pairs map keyed by (route id, backend id).
typedef struct {
    bool up;           // its verdict
    uint64_t since_ms; // when it entered that state, ms since the epoch (0: unknown)
    uint32_t failures; // consecutive failures
} rt_runtime_t;

//  The route as the API shows it: doc plus each backend's runtime fields:
//  isDead (maintenance, or healthd's verdict down), deadSince (ms since the
//  epoch, or null), failureCount (healthd's consecutive failures),
//  latencyMs (null: statsd has it, /api/v1/stats). health is the runtime
//  map (rt_runtime_t values), or NULL for none. Caller owns the result.
struct proto_pairs;
json_t *rt_route_to_api(const rt_route_t *route, const struct proto_pairs *health);

//  What the API shows instead of a route's ssl.key (rt_route_to_api).
#define RT_ROUTE_KEY_REDACTED "[redacted]"

//  GET -> edit -> PUT of a route with TLS: an ssl.key of
//  RT_ROUTE_KEY_REDACTED in doc is replaced by old's stored key when the
//  certificate is old's. Returns 0 (doc has a real key or none), or -1 with
//  err on "ssl.key" (no stored key, or a different certificate).
int rt_route_keep_ssl_key(json_t *doc, const rt_route_t *old, rt_error_t *err);

//  One backend as the API shows it. Caller owns the result.
json_t *
rt_route_backend_to_api(const rt_route_t *route, size_t index, const struct proto_pairs *health);

//  The route as the state file keeps it: doc plus "maintenance": [ids].
//  Caller owns the result.
json_t *rt_route_to_store(const rt_route_t *route);

#endif
