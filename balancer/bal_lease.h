/*  bal_lease - turn a pick into a lease: region selection, health filter,
    hops through region public addresses, and the candidate order.

    This is the balancer's decision, without the bus (docs/request-path.md):

    1. R is the requested region, G the asking gateway's region. A backend
       is healthy when it is not in maintenance (pick's backend.maint) and
       not dead for this route (bal_health, from healthd's backend.state).
    2. The route has backends in R: R serves, its healthy backends are the
       candidates; none healthy is no_backend (the gateway's 503 "Service
       Unavailable - VM not responding").
    3. No backend in R at all: G serves if it has healthy backends; else
       every other region's healthy backends do. None: no_backend.
    4. A candidate in a region other than G whose region has a public
       address (pick's regions[]) is replaced by that address: one candidate
       per address, id "hop:<region>", weight the sum of the weights it
       stands for, hop true (the gateway sends X-Switchyard-Hop: 1).
    5. An empty route is no_backend.
    6. Order: ROUND_ROBIN and LEAST_LATENCY rotate with smooth weighted round
       robin per (route, serving region) (bal_state; reset when the candidate
       set changes), so that successive leases start on successive backends;
       RANDOM and IP_HASH keep route order (every gateway picks exactly by
       the strategy inside the lease, so order carries nothing there).
       LEAST_LATENCY weights come from bal_latency through
       proto_strategy_latency_weights.
    7. Local (pick's local: the request already carries a trusted peer's
       X-Switchyard-Hop, it was forwarded to this region once) overrides
       rules 2 and 3: only G's healthy backends are candidates, whatever R
       is, and never a hop (rule 4 cannot apply: every candidate is in G);
       none healthy in G is no_backend (503), so a request crosses regions
       at most once.

    The lease is ttl_ms 0 ("the gateway's GATEWAY_LEASE_TTL"), carries the
    strategy by its canonical name, and region: the serving region (for
    rule 3's other regions, the region of the first candidate; G under
    rule 7). A backend weight of 0 (absent) counts as 1, the route model's
    default.
*/
#ifndef BAL_LEASE_H
#define BAL_LEASE_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "proto_strategy.h"
#include "bal_health.h"
#include "bal_latency.h"
#include "bal_state.h"

#define BAL_LEASE_MAX_HOPS PROTO_PICK_REGIONS_MAX                       // one per region
#define BAL_LEASE_HOP_ID   (sizeof "hop:" + PROTO_CANDIDATE_REGION_MAX) // "hop:<region>", NUL
#define BAL_LEASE_HOST     (PROTO_CANDIDATE_HOST_MAX + 1)               // a host and its NUL

//  What the balancer knows besides the pick. Any pointer may be NULL.
typedef struct {
    const bal_health_t *health;   // dead set; NULL: none dead
    bal_state_t *state;           // round-robin state; NULL: route order, no rotation
    const bal_latency_t *latency; // recent latencies; NULL: all unknown
    uint64_t now_ms;              // wall clock, for latency staleness
} bal_lease_view_t;

//  A decided lease and the storage it points into. Big (tens of KiB): keep
//  one in the actor, not on the stack. Read lease; the rest is storage.
typedef struct {
    proto_lease_t lease;                                // the answer
    proto_candidate_t candidates[PROTO_STRATEGY_MAX];   // lease.candidates, in order
    proto_candidate_t built[PROTO_STRATEGY_MAX];        // candidates before ordering
    char hop_ids[BAL_LEASE_MAX_HOPS][BAL_LEASE_HOP_ID]; // ids of hop candidates
    char hop_hosts[BAL_LEASE_MAX_HOPS][BAL_LEASE_HOST]; // hosts of hop candidates
    char serving[2 + PROTO_PICK_REGION_MAX + 1];        // state key: how and who serves
    proto_strategy_item_t items[PROTO_STRATEGY_MAX];    // scratch: strategy view of built
    uint64_t latency_us[PROTO_STRATEGY_MAX];            // scratch: latency per built candidate
    uint32_t weights[PROTO_STRATEGY_MAX];               // scratch: latency weights
    size_t order[PROTO_STRATEGY_MAX];                   // scratch: lease order of built
    uint32_t bad_addresses; // backends whose region address did not parse (served direct)
} bal_lease_t;

//  Decide the lease for pick into out. out->lease's strings point into pick
//  and into out: it is valid while both are. Returns 0 with out->lease
//  filled (status "ok" or "no_backend"), or -1 if pick's strategy is not a
//  known name (the caller answers error{code:"bad_request"}).
int bal_lease_decide(bal_lease_t *out, const proto_pick_t *pick, const bal_lease_view_t *view);

//  Parse a public address "host:port" or "[v6]:port" into host (capacity
//  cap) and port. Returns 0, or -1 if it is not one (empty host, port not
//  1-65535, host too long).
int bal_lease_parse_address(const char *address, char *host, size_t cap, uint16_t *port);

#endif
