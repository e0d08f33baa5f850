/*  rt_policy - a route's edge policy as the gateway needs it in a lease:
    autoHttps, securityHeaders, cors, auth, authProvider, rateLimit (SPEC §4).

    Parsed from the route's normalized document (apid validated it; a stored
    route is checked again here with the same bounds, so a hand-edited state
    file cannot put an unbounded value into a lease). Strings point into the
    document, except cors (compact JSON, owned) and the arrays (owned).

    Credentials travel with a lease only when the gateway does not hold them
    already: auth_id is the hex SHA-256 of the auth object (keys sorted,
    compact), and a decide naming it in auth_have gets a lease without them.

    Rate-limit tiers (seed 004) are resolved here: general 100 / 15 min,
    strict 20 / 15 min, auth 5 / 15 min, each with a burst of 10 per second.
*/
#ifndef RT_POLICY_H
#define RT_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "proto.h"

typedef struct rt_error rt_error_t;

typedef struct {
    bool auto_https;           // autoHttps
    bool sec_headers;          // securityHeaders
    char *cors;                // cors as compact JSON, or NULL
    const char *auth;          // "basic", "bearer", or NULL
    char auth_id[65];          // hex SHA-256 of the auth object, "" without auth
    proto_kv_t *users;         // basic: name -> crypt(3) hash (strings in the doc)
    uint32_t users_count;      // how many
    proto_token_t *tokens;     // bearer: SHA-256 hex digests (strings in the doc)
    uint32_t tokens_count;     // how many
    const char *auth_provider; // authProvider URL, or NULL
    uint32_t auth_cache_ms;    // authCacheMs
    uint32_t rl_requests;      // rateLimit requests per window; 0: none
    uint32_t rl_window_s;      // its window
    uint32_t rl_burst;         // burstPerSecond; 0: none
    const char *rl_key;        // "ip" or "user"
} rt_policy_t;

//  Parse the policy fields of doc (borrowed; must outlive the policy).
//  Returns 0, or -1 with err naming the field.
int rt_policy_parse(rt_policy_t *self, const json_t *doc, rt_error_t *err);

//  Free what parse allocated. Safe twice.
void rt_policy_free(rt_policy_t *self);

//  Put the policy into a lease (strings borrowed from self); the
//  credentials only when auth_have is not self's auth_id.
void rt_policy_to_lease(const rt_policy_t *self, proto_lease_t *lease, const char *auth_have);

#endif
