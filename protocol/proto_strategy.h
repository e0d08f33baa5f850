/*  proto_strategy - the one definition of each load-balancing strategy.

    The balancer uses these to order a lease's candidates; the gateway uses
    them to pick per request inside a lease. Every function works on an array
    of (id, weight) items and an optional exclusion mask (the candidates a
    request has already tried), keeps no hidden state, takes any randomness
    from the caller, and never allocates.

      ROUND_ROBIN    smooth weighted round robin, exactly nginx's algorithm
                     (ngx_http_upstream_get_peer): every eligible item's current
                     weight grows by its weight, the largest current weight wins
                     (the first one on a tie), and the winner's current weight
                     drops by the total. Weights 5,1,1 give a a b a c a a.
      RANDOM         weighted random: item i with probability weight_i / total,
                     from a caller-supplied 64-bit random number.
      IP_HASH        rendezvous (highest random weight) hashing of (client, id):
                     score = -weight / ln(h), h in (0,1) from a 64-bit hash of
                     the pair. A client keeps its item while that item is
                     eligible; removing an item moves only its own clients;
                     excluding the first choice fails over to the client's
                     second choice, the same on every gateway.
      LEAST_LATENCY  weights inversely proportional to recent latency, with an
                     exploration floor (proto_strategy_latency_weights), then
                     applied as ROUND_ROBIN.

    An item with weight 0 is never picked. At most PROTO_STRATEGY_MAX items
    take part (a lease holds at most that many candidates); any further items
    are ignored.
*/
#ifndef PROTO_STRATEGY_H
#define PROTO_STRATEGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define PROTO_STRATEGY_MAX           PROTO_LEASE_CANDIDATES_MAX // items per pick
#define PROTO_STRATEGY_WEIGHT_MAX    1000000 // largest weight (= messages.def bound)
#define PROTO_STRATEGY_LATENCY_SCALE 1000    // latency factor of the fastest item
#define PROTO_STRATEGY_LATENCY_FLOOR 50      // least latency factor: 5% exploration
#define PROTO_STRATEGY_NAME_MAX      PROTO_PICK_STRATEGY_MAX // bytes of the longest name

//  The strategies, in the order of proto_strategy_t: the one list of their
//  names (the route model's "strategy", the wire's pick.strategy).
#define PROTO_STRATEGIES(X)                                                                        \
    X(ROUND_ROBIN)                                                                                 \
    X(RANDOM)                                                                                      \
    X(IP_HASH)                                                                                     \
    X(LEAST_LATENCY)

typedef enum {
#define PROTO_STRATEGY_ENUM(name) PROTO_STRATEGY_##name,
    PROTO_STRATEGIES(PROTO_STRATEGY_ENUM)
#undef PROTO_STRATEGY_ENUM
        PROTO_STRATEGY_COUNT
} proto_strategy_t;

//  One choice: a backend (or a region's public address) and its weight.
typedef struct {
    const char *id;  // backend id, borrowed; IP_HASH hashes it (NULL counts as "")
    uint32_t weight; // relative share; 0 = never picked
} proto_strategy_item_t;

//  A set of item indices (0 .. PROTO_STRATEGY_MAX-1): the items to leave out.
//  Zero-initialise it ({0}) for an empty set.
typedef struct {
    uint64_t bits[PROTO_STRATEGY_MAX / 64]; // bit i set: item i excluded
} proto_strategy_mask_t;

//  Parse a strategy name: exactly "ROUND_ROBIN", "RANDOM", "IP_HASH" or
//  "LEAST_LATENCY" (upper case, as in the route model). Returns 0 and sets
//  *strategy, or -1 if the name is NULL or unknown.
int proto_strategy_parse(const char *name, proto_strategy_t *strategy);

//  The name of a strategy (a static string), or NULL if out of range.
const char *proto_strategy_name(proto_strategy_t strategy);

//  Every name, in order, joined by ", " (a static string, for messages:
//  "ROUND_ROBIN, RANDOM, IP_HASH, LEAST_LATENCY").
const char *proto_strategy_list(void);

//  Add, remove and test an index in a mask; an index out of range is
//  ignored (test: false).
void proto_strategy_mask_set(proto_strategy_mask_t *mask, size_t index);
void proto_strategy_mask_unset(proto_strategy_mask_t *mask, size_t index);
bool proto_strategy_mask_test(const proto_strategy_mask_t *mask, size_t index);

//  Smooth weighted round robin. current holds one current weight per item
//  (zeroed for a fresh state) and is updated by exactly one step; only the
//  eligible items (weight > 0, not in excluded, which may be NULL) take part,
//  as in nginx, so an excluded item's current weight is left alone. Returns
//  the index picked, or -1 if no item is eligible.
int proto_strategy_swrr(const proto_strategy_item_t *items,
                        size_t n,
                        int64_t *current,
                        const proto_strategy_mask_t *excluded);

//  A preference order for a lease: order[0] is proto_strategy_swrr's pick
//  (one step of current), the other eligible items follow in the order the
//  next step would favour them (current + weight, highest first, then by
//  index). order has room for n indices. Returns how many were written
//  (0 if no item is eligible).
size_t proto_strategy_swrr_order(const proto_strategy_item_t *items,
                                 size_t n,
                                 int64_t *current,
                                 const proto_strategy_mask_t *excluded,
                                 size_t *order);

//  Weighted random: the eligible item whose cumulative weight range holds
//  rnd mod total. rnd is any uniformly distributed 64-bit number. Returns the
//  index, or -1 if no item is eligible.
int proto_strategy_random(const proto_strategy_item_t *items,
                          size_t n,
                          const proto_strategy_mask_t *excluded,
                          uint64_t rnd);

//  The 64-bit rendezvous hash of (client, id), both len bytes or
//  NUL-terminated strings (NULL counts as ""). Exposed for tests and tools.
uint64_t proto_strategy_hash(const char *client, size_t client_len, const char *id);

//  Rendezvous hashing: the eligible item with the highest score
//  -weight / ln(h(client, id)), ties to the lower index. client is the
//  client address (client_len bytes). Returns the index, or -1 if no item is
//  eligible.
int proto_strategy_ip_hash(const proto_strategy_item_t *items,
                           size_t n,
                           const proto_strategy_mask_t *excluded,
                           const char *client,
                           size_t client_len);

//  LEAST_LATENCY weights: weights[i] = items[i].weight times a latency
//  factor from PROTO_STRATEGY_LATENCY_FLOOR to PROTO_STRATEGY_LATENCY_SCALE,
//  SCALE * fastest / latency_us[i], so a backend twice as slow gets half
//  the share, and one much slower still gets the floor (a recovered backend
//  keeps being tried and measured). A latency of 0 means unknown and counts
//  as the fastest (a new backend is explored at full weight). Results are
//  scaled down together if any would exceed PROTO_STRATEGY_WEIGHT_MAX; a
//  positive weight never becomes 0, and a 0 weight stays 0. latency_us may be
//  NULL (all unknown).
void proto_strategy_latency_weights(const proto_strategy_item_t *items,
                                    size_t n,
                                    const uint64_t *latency_us,
                                    uint32_t *weights);

//  One pick by strategy, for a gateway inside a lease: ROUND_ROBIN and
//  LEAST_LATENCY step current (required for them; the lease's weights are
//  already latency weights), RANDOM uses rnd, IP_HASH hashes client (when
//  client is NULL or empty it falls back to RANDOM with rnd). Returns the
//  index, or -1 if no item is eligible or the strategy is unknown.
int proto_strategy_pick(proto_strategy_t strategy,
                        const proto_strategy_item_t *items,
                        size_t n,
                        int64_t *current,
                        const proto_strategy_mask_t *excluded,
                        const char *client,
                        uint64_t rnd);

#endif
