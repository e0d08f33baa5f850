/*  test_strategy - unit tests for proto_strategy.

    Also the first example of how the strategies are used. A gateway keeps,
    per lease, an array of proto_strategy_item_t built from the candidates and
    (for ROUND_ROBIN and LEAST_LATENCY) an int64_t current weight per item,
    zeroed when the lease arrives, and per request a proto_strategy_mask_t of
    the candidates tried so far:

        proto_strategy_mask_t tried = {0};
        int i = proto_strategy_pick(strategy, items, n, current, &tried, client, rnd);
        ... attempt fails: proto_strategy_mask_set(&tried, (size_t) i); pick again

    Pinned here: nginx's smooth weighted round robin sequence for 5,1,1
    (a a b a c a a) and its exact shares, exclusion leaving the excluded
    item's state alone, weighted random for fixed random numbers, rendezvous
    hashing moving only the removed backend's clients (10000 addresses), and
    the latency weights with their floor.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto_strategy.h"
#include "proto_util.h"

#define CLIENTS 10000

//  A deterministic 64-bit generator for the random numbers tests feed in.
static uint64_t
s_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void
s_client(size_t i, char *out, size_t cap)
{
    snprintf(out, cap, "10.%zu.%zu.%zu", (i >> 16) & 255, (i >> 8) & 255, i & 255);
}

static void
test_names(void **state)
{
    (void) state;
    static const char *names[] = {"ROUND_ROBIN", "RANDOM", "IP_HASH", "LEAST_LATENCY"};
    for (int s = 0; s < PROTO_STRATEGY_COUNT; s++) {
        proto_strategy_t parsed = PROTO_STRATEGY_COUNT;
        assert_int_equal(proto_strategy_parse(names[s], &parsed), 0);
        assert_int_equal(parsed, s);
        assert_string_equal(proto_strategy_name(parsed), names[s]);
        assert_true(strlen(names[s]) <= PROTO_STRATEGY_NAME_MAX);
    }
    proto_strategy_t parsed = PROTO_STRATEGY_RANDOM;
    assert_int_equal(proto_strategy_parse("round_robin", &parsed), -1);
    assert_int_equal(proto_strategy_parse("", &parsed), -1);
    assert_int_equal(proto_strategy_parse("ROUND_ROBIN ", &parsed), -1);
    assert_int_equal(proto_strategy_parse(NULL, &parsed), -1);
    assert_int_equal(parsed, PROTO_STRATEGY_RANDOM); // untouched on failure
    assert_null(proto_strategy_name(PROTO_STRATEGY_COUNT));
    assert_null(proto_strategy_name((proto_strategy_t) -1));
}

static void
test_mask(void **state)
{
    (void) state;
    proto_strategy_mask_t mask = {0};
    assert_false(proto_strategy_mask_test(&mask, 0));
    proto_strategy_mask_set(&mask, 0);
    proto_strategy_mask_set(&mask, 63);
    proto_strategy_mask_set(&mask, 64);
    proto_strategy_mask_set(&mask, PROTO_STRATEGY_MAX - 1);
    proto_strategy_mask_set(&mask, PROTO_STRATEGY_MAX); // ignored
    assert_true(proto_strategy_mask_test(&mask, 0));
    assert_true(proto_strategy_mask_test(&mask, 63));
    assert_true(proto_strategy_mask_test(&mask, 64));
    assert_false(proto_strategy_mask_test(&mask, 65));
    assert_true(proto_strategy_mask_test(&mask, PROTO_STRATEGY_MAX - 1));
    assert_false(proto_strategy_mask_test(&mask, PROTO_STRATEGY_MAX));
    proto_strategy_mask_unset(&mask, 63);
    assert_false(proto_strategy_mask_test(&mask, 63));
    assert_true(proto_strategy_mask_test(&mask, 64));
}

//  nginx's own example (ngx_http_upstream_round_robin.c): weights 5, 1, 1
//  give a a b a c a a, and the state is back at zero after each cycle.
static void
test_swrr_nginx_sequence(void **state)
{
    (void) state;
    proto_strategy_item_t items[] = {{"a", 5}, {"b", 1}, {"c", 1}};
    int64_t current[3] = {0};
    const char *want = "aabacaa";
    for (int cycle = 0; cycle < 3; cycle++) {
        char got[8] = {0};
        for (int i = 0; i < 7; i++) {
            int pick = proto_strategy_swrr(items, 3, current, NULL);
            assert_true(pick >= 0 && pick < 3);
            got[i] = items[pick].id[0];
        }
        assert_string_equal(got, want);
        for (int i = 0; i < 3; i++)
            assert_int_equal(current[i], 0);
    }
}

//  Shares are exact over every whole cycle; weight 0 is never picked.
static void
test_swrr_distribution(void **state)
{
    (void) state;
    proto_strategy_item_t items[] = {{"a", 3}, {"b", 2}, {"c", 1}, {"z", 0}, {"d", 4}};
    int64_t current[5] = {0};
    size_t counts[5] = {0};
    for (int i = 0; i < 10 * 1000; i++) {
        int pick = proto_strategy_swrr(items, 5, current, NULL);
        assert_true(pick >= 0);
        counts[pick]++;
    }
    assert_int_equal(counts[0], 3000);
    assert_int_equal(counts[1], 2000);
    assert_int_equal(counts[2], 1000);
    assert_int_equal(counts[3], 0);
    assert_int_equal(counts[4], 4000);

    // equal weights: plain rotation in item order
    proto_strategy_item_t equal[] = {{"a", 1}, {"b", 1}, {"c", 1}};
    int64_t cur[3] = {0};
    for (int i = 0; i < 9; i++)
        assert_int_equal(proto_strategy_swrr(equal, 3, cur, NULL), i % 3);

    // large weights do not overflow the current weights
    proto_strategy_item_t big[PROTO_STRATEGY_MAX];
    int64_t bigcur[PROTO_STRATEGY_MAX] = {0};
    for (size_t i = 0; i < PROTO_STRATEGY_MAX; i++)
        big[i] = (proto_strategy_item_t){"x", PROTO_STRATEGY_WEIGHT_MAX};
    for (int i = 0; i < 1000; i++)
        assert_int_equal(proto_strategy_swrr(big, PROTO_STRATEGY_MAX, bigcur, NULL),
                         i % PROTO_STRATEGY_MAX);
}

//  A retry picks among the items not yet tried; the excluded items' state is
//  left alone (as nginx's tried bitmap does).
static void
test_swrr_exclusion(void **state)
{
    (void) state;
    proto_strategy_item_t items[] = {{"a", 5}, {"b", 1}, {"c", 1}};
    int64_t current[3] = {0};
    proto_strategy_mask_t tried = {0};
    int first = proto_strategy_swrr(items, 3, current, &tried);
    assert_int_equal(first, 0);
    proto_strategy_mask_set(&tried, (size_t) first);
    int64_t before = current[0];
    int second = proto_strategy_swrr(items, 3, current, &tried);
    assert_int_equal(second, 1); // b and c tie at 1+1 = 2, the first wins
    assert_int_equal(current[0], before);
    proto_strategy_mask_set(&tried, (size_t) second);
    assert_int_equal(proto_strategy_swrr(items, 3, current, &tried), 2);
    proto_strategy_mask_set(&tried, 2);
    assert_int_equal(proto_strategy_swrr(items, 3, current, &tried), -1);

    // nothing eligible at all
    proto_strategy_item_t zero[] = {{"a", 0}, {"b", 0}};
    int64_t zc[2] = {0};
    assert_int_equal(proto_strategy_swrr(zero, 2, zc, NULL), -1);
    assert_int_equal(proto_strategy_swrr(zero, 0, zc, NULL), -1);
    assert_int_equal(zc[0], 0);

    // over many picks with one item excluded, the others keep their shares
    int64_t cur[3] = {0};
    proto_strategy_mask_t no_a = {0};
    proto_strategy_mask_set(&no_a, 0);
    size_t counts[3] = {0};
    for (int i = 0; i < 100; i++)
        counts[proto_strategy_swrr(items, 3, cur, &no_a)]++;
    assert_int_equal(counts[0], 0);
    assert_int_equal(counts[1], 50);
    assert_int_equal(counts[2], 50);
}

//  The balancer's lease order: first the SWRR pick, then who the next step favours.
static void
test_swrr_order(void **state)
{
    (void) state;
    proto_strategy_item_t equal[] = {{"a", 1}, {"b", 1}, {"c", 1}};
    int64_t current[3] = {0};
    size_t order[3];
    static const size_t want[3][3] = {{0, 1, 2}, {1, 2, 0}, {2, 0, 1}};
    for (int round = 0; round < 6; round++) {
        assert_int_equal(proto_strategy_swrr_order(equal, 3, current, NULL, order), 3);
        for (int i = 0; i < 3; i++)
            assert_int_equal(order[i], want[round % 3][i]);
    }

    // 5,1,1: the first candidates follow the nginx sequence; each order is a permutation
    proto_strategy_item_t items[] = {{"a", 5}, {"b", 1}, {"c", 1}};
    int64_t cur[3] = {0};
    char firsts[8] = {0};
    for (int i = 0; i < 7; i++) {
        assert_int_equal(proto_strategy_swrr_order(items, 3, cur, NULL, order), 3);
        firsts[i] = items[order[0]].id[0];
        assert_true(order[0] != order[1] && order[1] != order[2] && order[0] != order[2]);
    }
    assert_string_equal(firsts, "aabacaa");
    // after the first pick (a: 5-7=-2, b: 1, c: 1) the rest follow their next
    // keys, b and c both at 2: index order
    int64_t again[3] = {0};
    proto_strategy_swrr_order(items, 3, again, NULL, order);
    assert_int_equal(order[0], 0);
    assert_int_equal(order[1], 1);
    assert_int_equal(order[2], 2);

    // excluded and zero-weight items are left out
    proto_strategy_item_t mixed[] = {{"a", 1}, {"z", 0}, {"b", 1}, {"c", 2}};
    int64_t mc[4] = {0};
    proto_strategy_mask_t mask = {0};
    proto_strategy_mask_set(&mask, 2);
    size_t morder[4];
    assert_int_equal(proto_strategy_swrr_order(mixed, 4, mc, &mask, morder), 2);
    assert_int_equal(morder[0], 3);
    assert_int_equal(morder[1], 0);
    assert_int_equal(proto_strategy_swrr_order(mixed, 0, mc, NULL, morder), 0);
}

static void
test_random_fixed(void **state)
{
    (void) state;
    proto_strategy_item_t items[] = {{"a", 5}, {"b", 1}, {"c", 1}};
    static const int want[] = {0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 1, 2};
    for (uint64_t r = 0; r < PROTO_ARRAY_SIZE(want); r++)
        assert_int_equal(proto_strategy_random(items, 3, NULL, r), want[r]);
    assert_int_equal(proto_strategy_random(items, 3, NULL, UINT64_MAX), 0); // 2^64-1 mod 7 = 1

    // excluding a: b and c share total 2
    proto_strategy_mask_t mask = {0};
    proto_strategy_mask_set(&mask, 0);
    assert_int_equal(proto_strategy_random(items, 3, &mask, 0), 1);
    assert_int_equal(proto_strategy_random(items, 3, &mask, 1), 2);
    assert_int_equal(proto_strategy_random(items, 3, &mask, 2), 1);
    proto_strategy_mask_set(&mask, 1);
    proto_strategy_mask_set(&mask, 2);
    assert_int_equal(proto_strategy_random(items, 3, &mask, 0), -1);

    // zero weights take no share
    proto_strategy_item_t zero[] = {{"z", 0}, {"a", 2}};
    assert_int_equal(proto_strategy_random(zero, 2, NULL, 0), 1);
    assert_int_equal(proto_strategy_random(zero, 2, NULL, 1), 1);
}

static void
test_random_distribution(void **state)
{
    (void) state;
    proto_strategy_item_t items[] = {{"a", 5}, {"b", 1}, {"c", 1}, {"d", 3}};
    size_t counts[4] = {0};
    uint64_t seed = 42;
    const int picks = 100 * 1000;
    for (int i = 0; i < picks; i++)
        counts[proto_strategy_random(items, 4, NULL, s_splitmix64(&seed))]++;
    static const double share[] = {0.5, 0.1, 0.1, 0.3};
    for (int i = 0; i < 4; i++) {
        double got = (double) counts[i] / picks;
        assert_true(got > share[i] * 0.95 && got < share[i] * 1.05);
    }
}

static void
test_hash(void **state)
{
    (void) state;
    // the client and the id are hashed apart
    assert_true(proto_strategy_hash("ab", 2, "c") != proto_strategy_hash("a", 1, "bc"));
    assert_true(proto_strategy_hash("10.0.0.1", 8, "a") != proto_strategy_hash("10.0.0.1", 8, "b"));
    assert_true(proto_strategy_hash("10.0.0.1", 8, "a") == proto_strategy_hash("10.0.0.1", 8, "a"));
    // only client_len bytes of the client count
    assert_true(proto_strategy_hash("10.0.0.1:5555", 8, "a")
                == proto_strategy_hash("10.0.0.1", 8, "a"));
    assert_true(proto_strategy_hash(NULL, 0, NULL) == proto_strategy_hash("", 0, ""));
}

//  Rendezvous hashing over 10000 client addresses: the same client keeps its
//  backend, shares are even, and removing one backend moves only its clients.
static void
test_ip_hash_stability(void **state)
{
    (void) state;
    proto_strategy_item_t five[] = {
        {"node-1", 1}, {"node-2", 1}, {"node-3", 1}, {"node-4", 1}, {"node-5", 1}};
    proto_strategy_item_t four[] = {{"node-1", 1}, {"node-2", 1}, {"node-4", 1}, {"node-5", 1}};
    size_t counts[5] = {0}, moved_to[5] = {0};
    size_t moved = 0, owned_by_3 = 0;
    for (size_t c = 0; c < CLIENTS; c++) {
        char client[32];
        s_client(c, client, sizeof client);
        int before = proto_strategy_ip_hash(five, 5, NULL, client, strlen(client));
        assert_true(before >= 0);
        assert_int_equal(proto_strategy_ip_hash(five, 5, NULL, client, strlen(client)), before);
        counts[before]++;
        int after = proto_strategy_ip_hash(four, 4, NULL, client, strlen(client));
        assert_true(after >= 0);
        // excluding node-3 in place gives exactly what removing it gives
        proto_strategy_mask_t mask = {0};
        proto_strategy_mask_set(&mask, 2);
        int excluded = proto_strategy_ip_hash(five, 5, &mask, client, strlen(client));
        assert_string_equal(five[excluded].id, four[after].id);
        if (before == 2) {
            owned_by_3++;
            moved++;
            moved_to[excluded]++;
        } else {
            // a client of any other backend stays where it was
            assert_string_equal(five[before].id, four[after].id);
        }
    }
    assert_int_equal(moved, owned_by_3);
    for (int i = 0; i < 5; i++)
        assert_true(counts[i] > CLIENTS / 5 * 85 / 100 && counts[i] < CLIENTS / 5 * 115 / 100);
    // node-3's clients spread over all the others
    for (int i = 0; i < 5; i++)
        if (i != 2)
            assert_true(moved_to[i] > owned_by_3 / 4 / 2);
    assert_int_equal(moved_to[2], 0);

    // adding a backend back moves clients only onto it
    for (size_t c = 0; c < CLIENTS; c++) {
        char client[32];
        s_client(c, client, sizeof client);
        int in4 = proto_strategy_ip_hash(four, 4, NULL, client, strlen(client));
        int in5 = proto_strategy_ip_hash(five, 5, NULL, client, strlen(client));
        if (strcmp(five[in5].id, "node-3") != 0)
            assert_string_equal(five[in5].id, four[in4].id);
    }
}

static void
test_ip_hash_weights(void **state)
{
    (void) state;
    proto_strategy_item_t items[] = {{"big", 3}, {"small", 1}, {"none", 0}};
    size_t counts[3] = {0};
    for (size_t c = 0; c < CLIENTS; c++) {
        char client[32];
        s_client(c, client, sizeof client);
        counts[proto_strategy_ip_hash(items, 3, NULL, client, strlen(client))]++;
    }
    double big = (double) counts[0] / CLIENTS;
    assert_true(big > 0.72 && big < 0.78);
    assert_int_equal(counts[2], 0);
    proto_strategy_mask_t all = {0};
    proto_strategy_mask_set(&all, 0);
    proto_strategy_mask_set(&all, 1);
    assert_int_equal(proto_strategy_ip_hash(items, 3, &all, "1.2.3.4", 7), -1);
}

static void
test_latency_weights(void **state)
{
    (void) state;
    proto_strategy_item_t items[] = {{"fast", 1}, {"half", 1},  {"new", 1},
                                     {"slow", 1}, {"heavy", 2}, {"off", 0}};
    uint64_t latency[] = {10000, 20000, 0, 1000000, 10000, 5000};
    uint32_t weights[6];
    proto_strategy_latency_weights(items, 6, latency, weights);
    assert_int_equal(weights[0], 1000); // the fastest
    assert_int_equal(weights[1], 500);  // twice as slow: half
    assert_int_equal(weights[2], 1000); // unknown: explored as the fastest
    assert_int_equal(weights[3], 50);   // 100x slower: the floor, still tried
    assert_int_equal(weights[4], 2000); // configured weight 2
    assert_int_equal(weights[5], 0);    // weight 0 stays out (and its latency is ignored)

    // no measurements at all: the configured shares
    proto_strategy_latency_weights(items, 6, NULL, weights);
    assert_int_equal(weights[0], 1000);
    assert_int_equal(weights[4], 2000);
    assert_int_equal(weights[5], 0);

    // scaled down together when over PROTO_STRATEGY_WEIGHT_MAX; never 0
    proto_strategy_item_t big[] = {{"a", PROTO_STRATEGY_WEIGHT_MAX}, {"b", 1}, {"c", 1}};
    uint64_t lat[] = {100, 100, 100000};
    proto_strategy_latency_weights(big, 3, lat, weights);
    assert_int_equal(weights[0], PROTO_STRATEGY_WEIGHT_MAX);
    assert_int_equal(weights[1], 1);
    assert_int_equal(weights[2], 1);

    // applied per request as round robin: shares follow the weights
    proto_strategy_item_t applied[3] = {{"fast", 0}, {"half", 0}, {"slow", 0}};
    uint64_t lat3[] = {1000, 2000, 500000};
    uint32_t w3[3];
    proto_strategy_latency_weights(applied, 3, lat3, w3); // weight 0: all 0
    assert_int_equal(w3[0] + w3[1] + w3[2], 0);
    for (int i = 0; i < 3; i++)
        applied[i].weight = 1;
    proto_strategy_latency_weights(applied, 3, lat3, w3);
    for (int i = 0; i < 3; i++)
        applied[i].weight = w3[i];
    int64_t current[3] = {0};
    size_t counts[3] = {0};
    for (int i = 0; i < 1550; i++)
        counts[proto_strategy_pick(PROTO_STRATEGY_LEAST_LATENCY, applied, 3, current, NULL, NULL,
                                   0)]++;
    assert_int_equal(counts[0], 1000);
    assert_int_equal(counts[1], 500);
    assert_int_equal(counts[2], 50);
}

static void
test_pick_dispatch(void **state)
{
    (void) state;
    proto_strategy_item_t items[] = {{"a", 1}, {"b", 1}, {"c", 1}};
    int64_t current[3] = {0};
    assert_int_equal(
        proto_strategy_pick(PROTO_STRATEGY_ROUND_ROBIN, items, 3, current, NULL, NULL, 0), 0);
    assert_int_equal(
        proto_strategy_pick(PROTO_STRATEGY_ROUND_ROBIN, items, 3, current, NULL, NULL, 0), 1);
    assert_int_equal(proto_strategy_pick(PROTO_STRATEGY_ROUND_ROBIN, items, 3, NULL, NULL, NULL, 0),
                     -1);
    assert_int_equal(proto_strategy_pick(PROTO_STRATEGY_RANDOM, items, 3, NULL, NULL, NULL, 4), 1);
    int hashed = proto_strategy_ip_hash(items, 3, NULL, "192.0.2.7", 9);
    assert_int_equal(
        proto_strategy_pick(PROTO_STRATEGY_IP_HASH, items, 3, NULL, NULL, "192.0.2.7", 12345),
        hashed);
    // no client address: weighted random
    assert_int_equal(proto_strategy_pick(PROTO_STRATEGY_IP_HASH, items, 3, NULL, NULL, NULL, 5), 2);
    assert_int_equal(proto_strategy_pick(PROTO_STRATEGY_IP_HASH, items, 3, NULL, NULL, "", 3), 0);
    assert_int_equal(proto_strategy_pick(PROTO_STRATEGY_COUNT, items, 3, current, NULL, NULL, 0),
                     -1);
    // retries: every strategy honours the mask
    proto_strategy_mask_t tried = {0};
    for (int s = 0; s < PROTO_STRATEGY_COUNT; s++) {
        int64_t cur[3] = {0};
        memset(&tried, 0, sizeof tried);
        for (int attempt = 0; attempt < 3; attempt++) {
            int i = proto_strategy_pick((proto_strategy_t) s, items, 3, cur, &tried, "198.51.100.1",
                                        (uint64_t) attempt);
            assert_true(i >= 0 && i < 3);
            assert_false(proto_strategy_mask_test(&tried, (size_t) i));
            proto_strategy_mask_set(&tried, (size_t) i);
        }
        assert_int_equal(
            proto_strategy_pick((proto_strategy_t) s, items, 3, cur, &tried, "198.51.100.1", 0),
            -1);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_swrr_nginx_sequence),
        cmocka_unit_test(test_swrr_distribution),
        cmocka_unit_test(test_swrr_exclusion),
        cmocka_unit_test(test_swrr_order),
        cmocka_unit_test(test_random_fixed),
        cmocka_unit_test(test_random_distribution),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_ip_hash_stability),
        cmocka_unit_test(test_ip_hash_weights),
        cmocka_unit_test(test_latency_weights),
        cmocka_unit_test(test_pick_dispatch),
    };
    return cmocka_run_group_tests_name("proto_strategy", tests, NULL, NULL);
}
