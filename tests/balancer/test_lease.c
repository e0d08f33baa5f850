/*  test_lease - unit tests for bal_lease: the balancer's decision without the bus.

    Also the first example of its use: build a proto_pick_t (as the router
    sends it), keep a bal_health_t (from backend.state), a bal_state_t and a
    bal_latency_t, and call bal_lease_decide into a bal_lease_t kept on the
    heap; out->lease is the lease to send.

    Pinned here (docs/request-path.md): the requested region serves when the
    route has backends there, even if all are dead (no_backend, no fallback);
    with no backend there, the gateway's region first, then the others; hops
    through public addresses, one per address; maintenance and dead excluded;
    empty route; unknown strategy refused; round robin rotation across picks,
    reset when the candidate set changes, and bounded per route; local (a
    request already forwarded once): the gateway's region alone, never a hop.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto_util.h"
#include "bal_lease.h"

//  What every test uses: the tables and one lease.
typedef struct {
    bal_health_t *health;
    bal_state_t *state;
    bal_latency_t *latency;
    bal_lease_t *out;
    bal_lease_view_t view;
} fixture_t;

static int
s_setup(void **state)
{
    fixture_t *f = proto_xcalloc(1, sizeof *f);
    f->health = bal_health_new(1000);
    f->state = bal_state_new(100);
    f->latency = bal_latency_new(1000);
    f->out = proto_xcalloc(1, sizeof *f->out);
    f->view = (bal_lease_view_t){f->health, f->state, f->latency, 1700000000000ull};
    *state = f;
    return 0;
}

static int
s_teardown(void **state)
{
    fixture_t *f = *state;
    bal_health_destroy(&f->health);
    bal_state_destroy(&f->state);
    bal_latency_destroy(&f->latency);
    free(f->out);
    free(f);
    return 0;
}

static proto_backend_t
s_backend(const char *id, const char *region, uint32_t weight)
{
    static char hosts[64][32];
    static size_t next;
    char *host = hosts[next++ % 64];
    snprintf(host, 32, "10.0.0.%s", id);
    return (proto_backend_t){
        .id = id, .host = host, .port = 3000, .weight = weight, .region = region, .maint = false};
}

static proto_pick_t
s_pick(const char *strategy,
       const char *region,
       const char *gw_region,
       proto_backend_t *backends,
       uint32_t nb,
       proto_region_t *regions,
       uint32_t nr)
{
    return (proto_pick_t){
        .route = "service-a",
        .vhost = "api.example.com",
        .strategy = strategy,
        .version = 7,
        .region = region,
        .gw_region = gw_region,
        .backends = backends,
        .backends_count = nb,
        .regions = regions,
        .regions_count = nr,
    };
}

//  The candidate ids of a lease joined by spaces, for one-line comparisons.
static const char *
s_ids(const proto_lease_t *lease)
{
    static char text[1024];
    size_t len = 0;
    text[0] = '\0';
    for (uint32_t i = 0; i < lease->candidates_count; i++) {
        int n =
            snprintf(text + len, sizeof text - len, "%s%s", i ? " " : "", lease->candidates[i].id);
        if (n > 0)
            len += (size_t) n;
    }
    return text;
}

static void
test_requested_region_serves(void **state)
{
    fixture_t *f = *state;
    proto_backend_t b[] = {s_backend("a", "1", 1), s_backend("b", "1", 1), s_backend("c", "2", 1)};
    proto_region_t r[] = {{"2", "203.0.113.2:80"}};
    proto_pick_t pick = s_pick("ROUND_ROBIN", "1", "1", b, 3, r, 1);
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    const proto_lease_t *lease = &f->out->lease;
    assert_string_equal(lease->status, "ok");
    assert_string_equal(lease->route, "service-a");
    assert_string_equal(lease->vhost, "api.example.com");
    assert_int_equal(lease->version, 7);
    assert_int_equal(lease->ttl_ms, 0);
    assert_string_equal(lease->strategy, "ROUND_ROBIN");
    assert_string_equal(lease->region, "1");
    assert_string_equal(s_ids(lease), "a b");
    const proto_candidate_t *c = &lease->candidates[0];
    assert_string_equal(c->host, "10.0.0.a");
    assert_int_equal(c->port, 3000);
    assert_int_equal(c->weight, 1);
    assert_string_equal(c->region, "1");
    assert_false(c->hop);
}

static void
test_all_dead_is_no_backend(void **state)
{
    fixture_t *f = *state;
    proto_backend_t b[] = {s_backend("a", "1", 1), s_backend("b", "1", 1), s_backend("c", "2", 1)};
    proto_pick_t pick = s_pick("ROUND_ROBIN", "1", "1", b, 3, NULL, 0);
    assert_int_equal(bal_health_set(f->health, "service-a", "a", false, 0), 1);
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(s_ids(&f->out->lease), "b");
    assert_int_equal(bal_health_set(f->health, "service-a", "b", false, 0), 1);
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    // region 1 has backends, all dead: 503, never region 2
    assert_string_equal(f->out->lease.status, "no_backend");
    assert_string_equal(f->out->lease.region, "1");
    assert_int_equal(f->out->lease.candidates_count, 0);
    assert_int_equal(f->out->lease.version, 7);
    // dead is per route: the same backend id in another route is fine
    pick.route = "service-b";
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(s_ids(&f->out->lease), "a b");
    // back up
    pick.route = "service-a";
    assert_int_equal(bal_health_set(f->health, "service-a", "a", true, 0), 1);
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(s_ids(&f->out->lease), "a");
}

static void
test_maintenance_excluded(void **state)
{
    fixture_t *f = *state;
    proto_backend_t b[] = {s_backend("a", "1", 1), s_backend("b", "1", 1), s_backend("c", "2", 1)};
    b[0].maint = true;
    proto_pick_t pick = s_pick("ROUND_ROBIN", "1", "1", b, 3, NULL, 0);
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(s_ids(&f->out->lease), "b");
    b[1].maint = true;
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(f->out->lease.status, "no_backend");
    assert_string_equal(f->out->lease.region, "1");
}

//  No backend in the requested region: the gateway's region if it has
//  healthy ones, else the other regions.
static void
test_no_backend_in_requested_region(void **state)
{
    fixture_t *f = *state;
    proto_backend_t b[] = {s_backend("a", "1", 1), s_backend("b", "2", 1), s_backend("c", "3", 1),
                           s_backend("d", "1", 1)};
    proto_pick_t pick = s_pick("RANDOM", "9", "1", b, 4, NULL, 0);
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(f->out->lease.status, "ok");
    assert_string_equal(f->out->lease.region, "1");
    assert_string_equal(s_ids(&f->out->lease), "a d");

    // the gateway's region all dead or in maintenance: the others serve
    bal_health_set(f->health, "service-a", "a", false, 0);
    b[3].maint = true;
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(f->out->lease.status, "ok");
    assert_string_equal(s_ids(&f->out->lease), "b c");
    assert_string_equal(f->out->lease.region, "2"); // the first candidate's
    assert_false(f->out->lease.candidates[0].hop);  // no public address: direct

    // a gateway in a region without backends: every region serves
    pick.gw_region = "7";
    b[3].maint = false;
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(s_ids(&f->out->lease), "b c d");

    // nothing healthy anywhere
    bal_health_set(f->health, "service-a", "b", false, 0);
    bal_health_set(f->health, "service-a", "c", false, 0);
    bal_health_set(f->health, "service-a", "d", false, 0);
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(f->out->lease.status, "no_backend");
    assert_string_equal(f->out->lease.region, "");
}

static void
test_hop_replacement(void **state)
{
    fixture_t *f = *state;
    proto_backend_t b[] = {s_backend("a", "1", 1), s_backend("b", "2", 2), s_backend("c", "2", 3),
                           s_backend("d", "3", 1), s_backend("e", "4", 1), s_backend("g", "5", 1)};
    proto_region_t r[] = {{"2", "203.0.113.2:8080"},
                          {"3", "[2001:db8::3]:443"},
                          {"4", "203.0.113.2:8080"},
                          {"5", ""},
                          {"1", "198.51.100.1:80"}};
    // requested region 2 from a gateway in region 1: one hop for both backends
    proto_pick_t pick = s_pick("ROUND_ROBIN", "2", "1", b, 6, r, 5);
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    const proto_lease_t *lease = &f->out->lease;
    assert_string_equal(lease->status, "ok");
    assert_string_equal(lease->region, "2");
    assert_int_equal(lease->candidates_count, 1);
    assert_string_equal(lease->candidates[0].id, "hop:2");
    assert_string_equal(lease->candidates[0].host, "203.0.113.2");
    assert_int_equal(lease->candidates[0].port, 8080);
    assert_int_equal(lease->candidates[0].weight, 5); // what it stands for: 2 + 3
    assert_string_equal(lease->candidates[0].region, "2");
    assert_true(lease->candidates[0].hop);

    // the same request from a gateway in region 2: direct (c, weight 3, first)
    pick.gw_region = "2";
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(s_ids(&f->out->lease), "c b");
    assert_false(f->out->lease.candidates[0].hop);

    // a dead backend does not count in the hop; all dead: no_backend, no hop
    pick.gw_region = "1";
    bal_health_set(f->health, "service-a", "b", false, 0);
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_int_equal(f->out->lease.candidates[0].weight, 3);
    bal_health_set(f->health, "service-a", "c", false, 0);
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(f->out->lease.status, "no_backend");
    bal_health_set(f->health, "service-a", "b", true, 0);
    bal_health_set(f->health, "service-a", "c", true, 0);

    // other regions serve (requested 9 has none, the gateway's 1 is dead):
    // regions 2 and 4 share an address (one hop), 3 is IPv6, 5 has none
    bal_health_set(f->health, "service-a", "a", false, 0);
    pick.region = "9";
    pick.strategy = "IP_HASH";
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    lease = &f->out->lease;
    assert_string_equal(s_ids(lease), "hop:2 hop:3 g");
    assert_int_equal(lease->candidates[0].weight, 6); // b 2 + c 3 + e 1
    assert_string_equal(lease->candidates[1].host, "2001:db8::3");
    assert_int_equal(lease->candidates[1].port, 443);
    assert_true(lease->candidates[1].hop);
    assert_string_equal(lease->candidates[2].host, "10.0.0.g");
    assert_false(lease->candidates[2].hop);
    assert_int_equal(f->out->bad_addresses, 0);

    // an address that does not parse is ignored (counted): direct
    r[0].address = "not-an-address";
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(s_ids(&f->out->lease), "b c hop:3 hop:4 g");
    assert_int_equal(f->out->bad_addresses, 2);
}

//  A request already forwarded once (pick's local): the gateway's own region
//  serves alone, whatever region was requested, and never through a public
//  address; none healthy there is no_backend, never another region.
static void
test_local(void **state)
{
    fixture_t *f = *state;
    proto_backend_t b[] = {s_backend("a", "1", 1), s_backend("b", "2", 1), s_backend("c", "2", 1),
                           s_backend("d", "3", 1)};
    proto_region_t r[] = {
        {"1", "198.51.100.1:80"}, {"2", "203.0.113.2:80"}, {"3", "203.0.113.3:80"}};
    // without local, region 2's gateway asked for region 1 hops to region 1
    // (RANDOM keeps route order, so the ids compare as they are)
    proto_pick_t pick = s_pick("RANDOM", "1", "2", b, 4, r, 3);
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(s_ids(&f->out->lease), "hop:1");
    // with local, region 2 serves, directly
    pick.local = true;
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    const proto_lease_t *lease = &f->out->lease;
    assert_string_equal(lease->status, "ok");
    assert_string_equal(lease->region, "2");
    assert_string_equal(s_ids(lease), "b c");
    for (uint32_t i = 0; i < lease->candidates_count; i++) {
        assert_false(lease->candidates[i].hop);
        assert_string_equal(lease->candidates[i].region, "2");
    }
    // the requested region does not matter: none (9), or the gateway's own
    pick.region = "9";
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(s_ids(&f->out->lease), "b c");
    pick.region = "2";
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(s_ids(&f->out->lease), "b c");

    // region 2 dead and in maintenance: 503, never region 1 or 3 (rule 3
    // would have let the others serve for requested region 9)
    bal_health_set(f->health, "service-a", "b", false, 0);
    b[2].maint = true;
    pick.region = "9";
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(f->out->lease.status, "no_backend");
    assert_string_equal(f->out->lease.region, "2");
    assert_int_equal(f->out->lease.candidates_count, 0);
    pick.local = false;
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(s_ids(&f->out->lease), "hop:1 hop:3");

    // a gateway in a region the route has no backend in: always no_backend
    pick.local = true;
    pick.gw_region = "7";
    pick.region = "1";
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(f->out->lease.status, "no_backend");
    assert_int_equal(f->out->lease.candidates_count, 0);

    // an empty route stays no_backend
    pick.backends_count = 0;
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(f->out->lease.status, "no_backend");
}

static void
test_parse_address(void **state)
{
    (void) state;
    char host[BAL_LEASE_HOST];
    uint16_t port = 0;
    assert_int_equal(bal_lease_parse_address("10.0.0.2:80", host, sizeof host, &port), 0);
    assert_string_equal(host, "10.0.0.2");
    assert_int_equal(port, 80);
    assert_int_equal(bal_lease_parse_address("edge.example.com:65535", host, sizeof host, &port),
                     0);
    assert_string_equal(host, "edge.example.com");
    assert_int_equal(port, 65535);
    assert_int_equal(bal_lease_parse_address("[::1]:8443", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    static const char *bad[] = {"",           "10.0.0.2",       "10.0.0.2:",   ":80",
                                "10.0.0.2:0", "10.0.0.2:65536", "10.0.0.2:8o", "::1:80",
                                "[]:80",      "[::1:80",        "h:-1",        "h:99999999999"};
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(bad); i++)
        assert_int_equal(bal_lease_parse_address(bad[i], host, sizeof host, &port), -1);
    assert_int_equal(bal_lease_parse_address(NULL, host, sizeof host, &port), -1);
    char small[4];
    assert_int_equal(bal_lease_parse_address("abcd:1", small, sizeof small, &port), -1);
    assert_int_equal(bal_lease_parse_address("abc:1", small, sizeof small, &port), 0);
}

static void
test_empty_route(void **state)
{
    fixture_t *f = *state;
    proto_pick_t pick = s_pick("ROUND_ROBIN", "1", "1", NULL, 0, NULL, 0);
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(f->out->lease.status, "no_backend");
    assert_int_equal(f->out->lease.candidates_count, 0);
    assert_string_equal(f->out->lease.route, "service-a");
    assert_string_equal(f->out->lease.strategy, "ROUND_ROBIN");
    assert_int_equal(bal_state_count(f->state), 0);
}

static void
test_unknown_strategy(void **state)
{
    fixture_t *f = *state;
    proto_backend_t b[] = {s_backend("a", "1", 1)};
    static const char *bad[] = {"round_robin", "", "WEIGHTED", "IP_HASH2"};
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(bad); i++) {
        proto_pick_t pick = s_pick(bad[i], "1", "1", b, 1, NULL, 0);
        assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), -1);
    }
    static const char *good[] = {"ROUND_ROBIN", "RANDOM", "IP_HASH", "LEAST_LATENCY"};
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(good); i++) {
        proto_pick_t pick = s_pick(good[i], "1", "1", b, 1, NULL, 0);
        assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
        assert_string_equal(f->out->lease.strategy, good[i]);
        assert_string_equal(s_ids(&f->out->lease), "a");
    }
}

//  Successive leases start on successive backends, as nginx's smooth
//  weighted round robin orders them; every lease holds every candidate.
static void
test_round_robin_across_picks(void **state)
{
    fixture_t *f = *state;
    proto_backend_t b[] = {s_backend("a", "1", 5), s_backend("b", "1", 1), s_backend("c", "1", 1)};
    proto_pick_t pick = s_pick("ROUND_ROBIN", "1", "1", b, 3, NULL, 0);
    char firsts[15] = {0};
    for (int i = 0; i < 14; i++) {
        assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
        assert_int_equal(f->out->lease.candidates_count, 3);
        firsts[i] = f->out->lease.candidates[0].id[0];
    }
    assert_string_equal(firsts, "aabacaaaabacaa");
    assert_int_equal(bal_state_count(f->state), 1);

    // equal weights: a plain rotation, the rest in the order they come next
    proto_backend_t e[] = {s_backend("x", "1", 0), s_backend("y", "1", 0), s_backend("z", "1", 0)};
    pick = s_pick("ROUND_ROBIN", "1", "1", e, 3, NULL, 0);
    pick.route = "service-e";
    static const char *want[] = {"x y z", "y z x", "z x y", "x y z"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
        assert_string_equal(s_ids(&f->out->lease), want[i]);
        assert_int_equal(f->out->lease.candidates[0].weight, 1); // 0 means the default, 1
    }

    // the set changes (z dies): the state starts again
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(s_ids(&f->out->lease), "y z x");
    uint64_t resets = bal_state_resets(f->state);
    bal_health_set(f->health, "service-e", "z", false, 0);
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(s_ids(&f->out->lease), "x y");
    assert_int_equal(bal_state_resets(f->state), resets + 1);
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(s_ids(&f->out->lease), "y x");
    bal_health_set(f->health, "service-e", "z", true, 0);
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(s_ids(&f->out->lease), "x y z");
    assert_int_equal(bal_state_resets(f->state), resets + 2);

    // kept apart per serving region
    proto_backend_t two[] = {s_backend("p", "1", 1), s_backend("q", "1", 1), s_backend("s", "2", 1),
                             s_backend("t", "2", 1)};
    pick = s_pick("ROUND_ROBIN", "1", "1", two, 4, NULL, 0);
    pick.route = "service-two";
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(s_ids(&f->out->lease), "p q");
    pick.region = pick.gw_region = "2";
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(s_ids(&f->out->lease), "s t");
    pick.region = pick.gw_region = "1";
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_string_equal(s_ids(&f->out->lease), "q p");
}

//  RANDOM and IP_HASH are exact inside the lease: route order, no state.
static void
test_random_and_hash_keep_order(void **state)
{
    fixture_t *f = *state;
    proto_backend_t b[] = {s_backend("a", "1", 5), s_backend("b", "1", 1), s_backend("c", "1", 1)};
    static const char *strategies[] = {"RANDOM", "IP_HASH"};
    for (size_t s = 0; s < 2; s++) {
        proto_pick_t pick = s_pick(strategies[s], "1", "1", b, 3, NULL, 0);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
            assert_string_equal(s_ids(&f->out->lease), "a b c");
            assert_int_equal(f->out->lease.candidates[0].weight, 5);
        }
    }
    assert_int_equal(bal_state_count(f->state), 0);
}

static void
test_least_latency(void **state)
{
    fixture_t *f = *state;
    proto_backend_t b[] = {s_backend("a", "1", 1), s_backend("b", "1", 1), s_backend("c", "1", 1)};
    proto_pick_t pick = s_pick("LEAST_LATENCY", "1", "1", b, 3, NULL, 0);
    uint64_t now = f->view.now_ms;
    assert_int_equal(bal_latency_add(f->latency, "service-a", "a", 40000, now), 0);
    assert_int_equal(bal_latency_add(f->latency, "service-a", "b", 10000, now), 0);
    assert_int_equal(bal_latency_add(f->latency, "service-a", "c", 5000000, now), 0);
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    const proto_lease_t *lease = &f->out->lease;
    assert_string_equal(lease->strategy, "LEAST_LATENCY");
    // the fastest first; weights inversely proportional, the slow one at the floor
    assert_string_equal(s_ids(lease), "b a c");
    assert_int_equal(lease->candidates[0].weight, 1000);
    assert_int_equal(lease->candidates[1].weight, 250);
    assert_int_equal(lease->candidates[2].weight, PROTO_STRATEGY_LATENCY_FLOOR);

    // measurements go stale: everyone is explored again at full weight
    f->view.now_ms = now + BAL_LATENCY_STALE_MS;
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    for (uint32_t i = 0; i < f->out->lease.candidates_count; i++)
        assert_int_equal(f->out->lease.candidates[i].weight, PROTO_STRATEGY_LATENCY_SCALE);

    // without a latency table: all unknown, so the configured weights (in thousandths)
    bal_lease_view_t bare = {f->health, f->state, NULL, now};
    assert_int_equal(bal_lease_decide(f->out, &pick, &bare), 0);
    assert_int_equal(f->out->lease.candidates_count, 3);
    assert_int_equal(f->out->lease.candidates[0].weight, PROTO_STRATEGY_LATENCY_SCALE);
}

//  Without state or health: route order, nothing dead.
static void
test_bare_view(void **state)
{
    fixture_t *f = *state;
    proto_backend_t b[] = {s_backend("a", "1", 1), s_backend("b", "1", 1)};
    proto_pick_t pick = s_pick("ROUND_ROBIN", "1", "1", b, 2, NULL, 0);
    bal_lease_view_t bare = {0};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(bal_lease_decide(f->out, &pick, &bare), 0);
        assert_string_equal(s_ids(&f->out->lease), "a b");
    }
}

//  At most max_routes round-robin states; the least recently used goes.
static void
test_state_bounded(void **state)
{
    fixture_t *f = *state;
    bal_state_t *small = bal_state_new(2);
    assert_null(bal_state_new(0));
    bal_lease_view_t view = {f->health, small, NULL, 0};
    proto_backend_t b[] = {s_backend("a", "1", 1), s_backend("b", "1", 1)};
    proto_pick_t pick = s_pick("ROUND_ROBIN", "1", "1", b, 2, NULL, 0);
    static const char *routes[] = {"r1", "r2", "r1", "r3", "r1", "r2"};
    // r1 a, r2 a, r1 b, r3 a (r2 evicted), r1 a, r2 a again (r3 evicted)
    static const char *first[] = {"a", "a", "b", "a", "a", "a"};
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(routes); i++) {
        pick.route = routes[i];
        assert_int_equal(bal_lease_decide(f->out, &pick, &view), 0);
        assert_string_equal(f->out->lease.candidates[0].id, first[i]);
        assert_true(bal_state_count(small) <= 2);
    }
    assert_int_equal(bal_state_evictions(small), 2);
    bal_state_destroy(&small);
    bal_state_destroy(&small);
    assert_null(small);
}

//  The largest pick the protocol allows: 256 backends in 64 regions, all hops.
static void
test_largest_pick(void **state)
{
    fixture_t *f = *state;
    static proto_backend_t b[256];
    static proto_region_t r[64];
    static char ids[256][16], regions[64][16], addresses[64][32];
    for (unsigned i = 0; i < 64; i++) {
        snprintf(regions[i], sizeof regions[i], "r%u", i);
        snprintf(addresses[i], sizeof addresses[i], "192.0.2.%u:80", i + 1);
        r[i] = (proto_region_t){regions[i], addresses[i]};
    }
    for (unsigned i = 0; i < 256; i++) {
        snprintf(ids[i], sizeof ids[i], "b%u", i);
        b[i] = (proto_backend_t){ids[i],          "10.1.1.1", 80, PROTO_STRATEGY_WEIGHT_MAX,
                                 regions[i % 64], false};
    }
    proto_pick_t pick = s_pick("ROUND_ROBIN", "elsewhere", "gw", b, 256, r, 64);
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_int_equal(f->out->lease.candidates_count, 64);
    for (int i = 0; i < 64; i++) {
        assert_true(f->out->lease.candidates[i].hop);
        assert_int_equal(f->out->lease.candidates[i].weight, PROTO_STRATEGY_WEIGHT_MAX);
    }
    // no public addresses: 256 direct candidates
    pick.regions_count = 0;
    assert_int_equal(bal_lease_decide(f->out, &pick, &f->view), 0);
    assert_int_equal(f->out->lease.candidates_count, 256);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_requested_region_serves, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_all_dead_is_no_backend, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_maintenance_excluded, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_no_backend_in_requested_region, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_hop_replacement, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_local, s_setup, s_teardown),
        cmocka_unit_test(test_parse_address),
        cmocka_unit_test_setup_teardown(test_empty_route, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_strategy, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_round_robin_across_picks, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_random_and_hash_keep_order, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_least_latency, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bare_view, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_state_bounded, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_largest_pick, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("bal_lease", tests, NULL, NULL);
}
