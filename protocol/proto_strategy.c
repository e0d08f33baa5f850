/*  proto_strategy - smooth weighted round robin, weighted random, rendezvous
    hashing and latency weights (see proto_strategy.h).

    Nothing here allocates or keeps state between calls: the gateway calls
    these once per request, the balancer once per pick.
*/
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "proto_strategy.h"
#include "proto_util.h"

#define S_NAME(name) #name,
static const char *const s_names[PROTO_STRATEGY_COUNT] = {PROTO_STRATEGIES(S_NAME)};
#undef S_NAME

//  ", ROUND_ROBIN, RANDOM, ...": proto_strategy_list skips the first ", ".
#define S_LIST_ITEM(name) ", " #name
static const char s_list[] = PROTO_STRATEGIES(S_LIST_ITEM);
#undef S_LIST_ITEM

int
proto_strategy_parse(const char *name, proto_strategy_t *strategy)
{
    if (name == NULL)
        return -1;
    for (int s = 0; s < PROTO_STRATEGY_COUNT; s++)
        if (strcmp(name, s_names[s]) == 0) {
            *strategy = (proto_strategy_t) s;
            return 0;
        }
    return -1;
}

const char *
proto_strategy_name(proto_strategy_t strategy)
{
    if ((int) strategy < 0 || strategy >= PROTO_STRATEGY_COUNT)
        return NULL;
    return s_names[strategy];
}

const char *
proto_strategy_list(void)
{
    return s_list + 2;
}

void
proto_strategy_mask_set(proto_strategy_mask_t *mask, size_t index)
{
    if (index < PROTO_STRATEGY_MAX)
        mask->bits[index / 64] |= (uint64_t) 1 << (index % 64);
}

void
proto_strategy_mask_unset(proto_strategy_mask_t *mask, size_t index)
{
    if (index < PROTO_STRATEGY_MAX)
        mask->bits[index / 64] &= ~((uint64_t) 1 << (index % 64));
}

bool
proto_strategy_mask_test(const proto_strategy_mask_t *mask, size_t index)
{
    if (index >= PROTO_STRATEGY_MAX)
        return false;
    return (mask->bits[index / 64] >> (index % 64)) & 1u;
}

static size_t
s_limit(size_t n)
{
    return n < PROTO_STRATEGY_MAX ? n : PROTO_STRATEGY_MAX;
}

static bool
s_eligible(const proto_strategy_item_t *items, size_t i, const proto_strategy_mask_t *excluded)
{
    return items[i].weight > 0 && (excluded == NULL || !proto_strategy_mask_test(excluded, i));
}

// --------------------------------------------------------------------------
// Smooth weighted round robin

int
proto_strategy_swrr(const proto_strategy_item_t *items,
                    size_t n,
                    int64_t *current,
                    const proto_strategy_mask_t *excluded)
{
    n = s_limit(n);
    int best = -1;
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!s_eligible(items, i, excluded))
            continue;
        current[i] += items[i].weight;
        total += items[i].weight;
        // strict: the first of equal current weights wins, as in nginx
        if (best < 0 || current[i] > current[best])
            best = (int) i;
    }
    if (best >= 0)
        current[best] -= total;
    return best;
}

size_t
proto_strategy_swrr_order(const proto_strategy_item_t *items,
                          size_t n,
                          int64_t *current,
                          const proto_strategy_mask_t *excluded,
                          size_t *order)
{
    n = s_limit(n);
    int first = proto_strategy_swrr(items, n, current, excluded);
    if (first < 0)
        return 0;
    size_t count = 0;
    order[count++] = (size_t) first;
    for (size_t i = 0; i < n; i++) {
        if (i == (size_t) first || !s_eligible(items, i, excluded))
            continue;
        // insertion sort by what the next step would see: current + weight,
        // highest first; equal keys keep index order (the sort is stable)
        int64_t key = current[i] + items[i].weight;
        size_t j = count;
        while (j > 1 && current[order[j - 1]] + items[order[j - 1]].weight < key) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
        count++;
    }
    return count;
}

// --------------------------------------------------------------------------
// Weighted random

int
proto_strategy_random(const proto_strategy_item_t *items,
                      size_t n,
                      const proto_strategy_mask_t *excluded,
                      uint64_t rnd)
{
    n = s_limit(n);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        if (s_eligible(items, i, excluded))
            total += items[i].weight;
    if (total == 0)
        return -1;
    // total is at most 2^8 * 10^6, so the modulo bias is below 2^-35
    uint64_t target = rnd % total;
    for (size_t i = 0; i < n; i++) {
        if (!s_eligible(items, i, excluded))
            continue;
        if (target < items[i].weight)
            return (int) i;
        target -= items[i].weight;
    }
    return -1; // not reached
}

// --------------------------------------------------------------------------
// Rendezvous hashing

//  MurmurHash3's finaliser: FNV-1a alone mixes the last bytes poorly.
static uint64_t
s_fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

//  FNV state after the client and a separator byte that UTF-8 never holds,
//  so ("ab", "c") and ("a", "bc") hash apart.
static uint64_t
s_client_state(const char *client, size_t client_len)
{
    uint64_t h = proto_fnv1a_more(PROTO_FNV1A_OFFSET, client, client ? client_len : 0);
    return proto_fnv1a_byte(h, 0xff);
}

static uint64_t
s_pair_hash(uint64_t client_state, const char *id)
{
    const char *s = id ? id : "";
    return s_fmix64(proto_fnv1a_more(client_state, s, strlen(s)));
}

uint64_t
proto_strategy_hash(const char *client, size_t client_len, const char *id)
{
    return s_pair_hash(s_client_state(client, client_len), id);
}

int
proto_strategy_ip_hash(const proto_strategy_item_t *items,
                       size_t n,
                       const proto_strategy_mask_t *excluded,
                       const char *client,
                       size_t client_len)
{
    n = s_limit(n);
    uint64_t state = s_client_state(client, client_len);
    int best = -1;
    double best_score = 0;
    for (size_t i = 0; i < n; i++) {
        if (!s_eligible(items, i, excluded))
            continue;
        // the top 53 bits as a double strictly inside (0, 1), so ln() < 0
        uint64_t h = s_pair_hash(state, items[i].id);
        double u = ((double) (h >> 11) + 0.5) * 0x1.0p-53;
        double score = -(double) items[i].weight / log(u);
        if (best < 0 || score > best_score) {
            best = (int) i;
            best_score = score;
        }
    }
    return best;
}

// --------------------------------------------------------------------------
// Latency weights

//  Per-mille share of an item whose latency is lat when the fastest is fastest.
static uint64_t
s_latency_factor(uint64_t lat, uint64_t fastest)
{
    uint64_t factor = PROTO_STRATEGY_LATENCY_SCALE;
    if (lat > 0 && fastest > 0)
        factor = (PROTO_STRATEGY_LATENCY_SCALE * fastest + lat / 2) / lat;
    return factor < PROTO_STRATEGY_LATENCY_FLOOR ? PROTO_STRATEGY_LATENCY_FLOOR : factor;
}

void
proto_strategy_latency_weights(const proto_strategy_item_t *items,
                               size_t n,
                               const uint64_t *latency_us,
                               uint32_t *weights)
{
    n = s_limit(n);
    uint64_t fastest = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t lat = latency_us ? latency_us[i] : 0;
        if (items[i].weight > 0 && lat > 0 && (fastest == 0 || lat < fastest))
            fastest = lat;
    }
    // weight x factor can exceed the bound (10^6 x 10^3): find the largest first
    uint64_t largest = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t w =
            (uint64_t) items[i].weight * s_latency_factor(latency_us ? latency_us[i] : 0, fastest);
        if (w > largest)
            largest = w;
    }
    uint64_t divisor = 1;
    if (largest > PROTO_STRATEGY_WEIGHT_MAX)
        divisor = (largest + PROTO_STRATEGY_WEIGHT_MAX - 1) / PROTO_STRATEGY_WEIGHT_MAX;
    for (size_t i = 0; i < n; i++) {
        uint64_t w = (uint64_t) items[i].weight
                     * s_latency_factor(latency_us ? latency_us[i] : 0, fastest) / divisor;
        if (w == 0 && items[i].weight > 0)
            w = 1;
        weights[i] = (uint32_t) w;
    }
}

// --------------------------------------------------------------------------
// Dispatch

int
proto_strategy_pick(proto_strategy_t strategy,
                    const proto_strategy_item_t *items,
                    size_t n,
                    int64_t *current,
                    const proto_strategy_mask_t *excluded,
                    const char *client,
                    uint64_t rnd)
{
    switch (strategy) {
        case PROTO_STRATEGY_ROUND_ROBIN:
        case PROTO_STRATEGY_LEAST_LATENCY:
            return current ? proto_strategy_swrr(items, n, current, excluded) : -1;
        case PROTO_STRATEGY_RANDOM:
            return proto_strategy_random(items, n, excluded, rnd);
        case PROTO_STRATEGY_IP_HASH:
            if (client == NULL || *client == '\0')
                return proto_strategy_random(items, n, excluded, rnd);
            return proto_strategy_ip_hash(items, n, excluded, client, strlen(client));
        case PROTO_STRATEGY_COUNT:
            break;
    }
    return -1;
}
