/*  bal_lease - region selection, health filter, hops and order (see bal_lease.h).

    Pure apart from the round-robin state it steps: no bus, no clock, no
    allocation beyond what bal_state does for a new key.
*/
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "proto_util.h"
#include "bal_lease.h"

static const char *
s_str(const char *s)
{
    return s ? s : "";
}

static bool
s_healthy(const proto_pick_t *pick, const proto_backend_t *b, const bal_lease_view_t *view)
{
    if (b->maint)
        return false;
    return view->health == NULL || !bal_health_is_dead(view->health, pick->route, b->id);
}

static bool
s_in_region(const proto_backend_t *b, const char *region)
{
    return strcmp(s_str(b->region), region) == 0;
}

int
bal_lease_parse_address(const char *address, char *host, size_t cap, uint16_t *port)
{
    if (address == NULL)
        return -1;
    const char *colon = strrchr(address, ':');
    if (colon == NULL || colon == address)
        return -1;
    const char *h = address;
    size_t hlen = (size_t) (colon - address);
    if (h[0] == '[') {
        // [v6]:port
        if (hlen < 3 || h[hlen - 1] != ']')
            return -1;
        h++;
        hlen -= 2;
    } else if (memchr(h, ':', hlen) != NULL) {
        return -1; // a bare v6 address needs brackets
    }
    uint32_t value = 0;
    const char *p = colon + 1;
    if (*p == '\0')
        return -1;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        value = value * 10 + (uint32_t) (*p - '0');
        if (value > 65535)
            return -1;
    }
    if (value == 0 || hlen == 0 || hlen >= cap)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint16_t) value;
    return 0;
}

//  The public address of a region, or NULL when it has none.
static const char *
s_public_address(const proto_pick_t *pick, const char *region)
{
    for (uint32_t i = 0; i < pick->regions_count; i++) {
        const proto_region_t *r = &pick->regions[i];
        if (strcmp(s_str(r->id), region) == 0)
            return r->address && *r->address ? r->address : NULL;
    }
    return NULL;
}

static uint32_t
s_add_weight(uint32_t a, uint32_t b)
{
    uint64_t sum = (uint64_t) a + b;
    return sum > PROTO_STRATEGY_WEIGHT_MAX ? PROTO_STRATEGY_WEIGHT_MAX : (uint32_t) sum;
}

//  Append the candidate for one serving backend: itself, or its region's
//  public address (merged with an earlier hop to the same address).
static void
s_add_candidate(
    bal_lease_t *out, const proto_pick_t *pick, const proto_backend_t *b, size_t *n, size_t *nhops)
{
    uint32_t weight = b->weight ? b->weight : 1;
    const char *region = s_str(b->region);
    const char *address = NULL;
    if (strcmp(region, s_str(pick->gw_region)) != 0)
        address = s_public_address(pick, region);
    char host[BAL_LEASE_HOST];
    uint16_t port = 0;
    if (address && bal_lease_parse_address(address, host, sizeof host, &port) != 0) {
        out->bad_addresses++;
        address = NULL;
    }
    if (address == NULL) {
        out->built[(*n)++] = (proto_candidate_t){
            .id = b->id,
            .host = b->host,
            .port = b->port,
            .weight = weight,
            .region = region,
            .hop = false,
        };
        return;
    }
    for (size_t i = 0; i < *n; i++) {
        proto_candidate_t *c = &out->built[i];
        if (c->hop && c->port == port && strcmp(c->host, host) == 0) {
            c->weight = s_add_weight(c->weight, weight);
            return;
        }
    }
    if (*nhops >= BAL_LEASE_MAX_HOPS)
        return; // cannot happen: one hop per region, at most BAL_LEASE_MAX_HOPS regions
    char *id = out->hop_ids[*nhops];
    char *hop_host = out->hop_hosts[*nhops];
    (*nhops)++;
    snprintf(id, BAL_LEASE_HOP_ID, "hop:%s", region);
    proto_strlcpy(hop_host, host, BAL_LEASE_HOST);
    out->built[(*n)++] = (proto_candidate_t){
        .id = id,
        .host = hop_host,
        .port = port,
        .weight = weight,
        .region = region,
        .hop = true,
    };
}

//  Identifies a candidate set: its ids, hosts and ports in route order.
static uint64_t
s_fingerprint(const proto_candidate_t *c, size_t n)
{
    uint64_t h = PROTO_FNV1A_OFFSET ^ n;
    for (size_t i = 0; i < n; i++) {
        h = proto_fnv1a_more(h, c[i].id, strlen(c[i].id));
        h = proto_fnv1a_byte(h, 0xff); // no UTF-8 byte: ("ab", "c") and ("a", "bc") differ
        h = proto_fnv1a_more(h, c[i].host, strlen(c[i].host));
        h = proto_fnv1a_byte(h, 0xff);
        uint8_t port[2] = {(uint8_t) (c[i].port >> 8), (uint8_t) c[i].port};
        h = proto_fnv1a_more(h, port, sizeof port);
    }
    return h;
}

//  Put out->built[0..n) into out->candidates in lease order.
static void
s_order(bal_lease_t *out,
        const proto_pick_t *pick,
        proto_strategy_t strategy,
        size_t n,
        const bal_lease_view_t *view)
{
    bool rotate =
        strategy == PROTO_STRATEGY_ROUND_ROBIN || strategy == PROTO_STRATEGY_LEAST_LATENCY;
    for (size_t i = 0; i < n; i++)
        out->items[i] = (proto_strategy_item_t){out->built[i].id, out->built[i].weight};
    if (strategy == PROTO_STRATEGY_LEAST_LATENCY) {
        for (size_t i = 0; i < n; i++)
            out->latency_us[i] = view->latency ? bal_latency_get(view->latency, pick->route,
                                                                 out->built[i].id, view->now_ms)
                                               : 0;
        proto_strategy_latency_weights(out->items, n, out->latency_us, out->weights);
        for (size_t i = 0; i < n; i++)
            out->items[i].weight = out->built[i].weight = out->weights[i];
    }
    int64_t *current = NULL;
    if (rotate && view->state)
        current = bal_state_current(view->state, pick->route, out->serving,
                                    s_fingerprint(out->built, n), n);
    size_t count = 0;
    if (current)
        count = proto_strategy_swrr_order(out->items, n, current, NULL, out->order);
    if (count != n) {
        // no rotation (or, defensively, a weight of 0): route order
        for (size_t i = 0; i < n; i++)
            out->order[i] = i;
    }
    for (size_t i = 0; i < n; i++)
        out->candidates[i] = out->built[out->order[i]];
}

int
bal_lease_decide(bal_lease_t *out, const proto_pick_t *pick, const bal_lease_view_t *view)
{
    proto_strategy_t strategy;
    memset(&out->lease, 0, sizeof out->lease);
    out->bad_addresses = 0;
    out->serving[0] = '\0';
    if (proto_strategy_parse(pick->strategy, &strategy) != 0)
        return -1;
    proto_lease_t *lease = &out->lease;
    lease->status = "no_backend";
    lease->route = pick->route;
    lease->vhost = pick->vhost;
    lease->version = pick->version;
    lease->ttl_ms = 0;
    lease->strategy = proto_strategy_name(strategy);
    lease->region = "";
    lease->candidates = out->candidates;
    lease->candidates_count = 0;

    const char *requested = s_str(pick->region);
    const char *gw = s_str(pick->gw_region);
    size_t nb =
        pick->backends_count < PROTO_STRATEGY_MAX ? pick->backends_count : PROTO_STRATEGY_MAX;
    bool has_requested = false, gw_healthy = false;
    for (size_t i = 0; i < nb; i++) {
        const proto_backend_t *b = &pick->backends[i];
        has_requested |= s_in_region(b, requested);
        gw_healthy |= s_in_region(b, gw) && s_healthy(pick, b, view);
    }
    // who serves: 'L' the gateway's region alone (a request already
    // forwarded once), 'R' the requested region, 'G' the gateway's, 'O' all
    // others
    const char *only = NULL;
    char how = 'O';
    if (pick->local) {
        only = gw;
        how = 'L';
    } else if (has_requested) {
        only = requested;
        how = 'R';
    } else if (gw_healthy) {
        only = gw;
        how = 'G';
    }
    if (nb == 0)
        return 0;
    if (only)
        lease->region = only;
    snprintf(out->serving, sizeof out->serving, "%c:%s", how, only ? only : "");

    size_t n = 0, nhops = 0;
    for (size_t i = 0; i < nb; i++) {
        const proto_backend_t *b = &pick->backends[i];
        if ((only && !s_in_region(b, only)) || !s_healthy(pick, b, view))
            continue;
        s_add_candidate(out, pick, b, &n, &nhops); // only = gw under local: never a hop
    }
    if (n == 0)
        return 0;
    s_order(out, pick, strategy, n, view);
    lease->candidates_count = (uint32_t) n;
    lease->status = "ok";
    if (only == NULL)
        lease->region = out->candidates[0].region;
    return 0;
}
