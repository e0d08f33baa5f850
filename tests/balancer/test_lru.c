/*  test_lru - unit tests for the balancer's bounded tables: bal_lru and the
    two maps built on it that bal_lease reads, bal_health (the dead set) and
    bal_latency (latency averages).

    Pinned here: a full map evicts the least recently used entry (a get
    refreshes, a peek does not); replacing frees the old value; health is per
    (route, backend); a latency average moves by a quarter of each sample and
    counts as unknown after BAL_LATENCY_STALE_MS without samples.
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
#include "bal_health.h"
#include "bal_latency.h"
#include "bal_lru.h"

static int *
s_new_int(int v)
{
    int *p = proto_xmalloc(sizeof *p);
    *p = v;
    return p;
}

static void
test_lru_basics(void **state)
{
    (void) state;
    assert_null(bal_lru_new(0, free));
    bal_lru_t *lru = bal_lru_new(3, free);
    assert_non_null(lru);
    assert_null(bal_lru_get(lru, "a", 1));
    assert_int_equal(bal_lru_put(lru, "a", 1, s_new_int(1)), 0);
    assert_int_equal(bal_lru_put(lru, "b", 1, s_new_int(2)), 0);
    assert_int_equal(bal_lru_put(lru, "c", 1, s_new_int(3)), 0);
    assert_int_equal(bal_lru_count(lru), 3);
    assert_int_equal(*(int *) bal_lru_get(lru, "a", 1), 1);  // a is now the most recent
    assert_int_equal(*(int *) bal_lru_peek(lru, "b", 1), 2); // peek leaves b the oldest
    assert_int_equal(bal_lru_put(lru, "d", 1, s_new_int(4)), 1);
    assert_null(bal_lru_get(lru, "b", 1));
    assert_non_null(bal_lru_get(lru, "a", 1));
    assert_non_null(bal_lru_get(lru, "c", 1));
    assert_non_null(bal_lru_get(lru, "d", 1));
    assert_int_equal(bal_lru_evictions(lru), 1);
    // replace: the old value is freed (ASan would see a leak otherwise)
    assert_int_equal(bal_lru_put(lru, "c", 1, s_new_int(30)), 0);
    assert_int_equal(*(int *) bal_lru_get(lru, "c", 1), 30);
    assert_int_equal(bal_lru_count(lru), 3);
    assert_true(bal_lru_remove(lru, "c", 1));
    assert_false(bal_lru_remove(lru, "c", 1));
    assert_int_equal(bal_lru_count(lru), 2);
    // keys are bytes: an embedded NUL and a prefix are different keys
    assert_int_equal(bal_lru_put(lru, "x\0y", 3, s_new_int(5)), 0);
    assert_null(bal_lru_get(lru, "x", 1));
    assert_int_equal(*(int *) bal_lru_get(lru, "x\0y", 3), 5);
    // too long a key: refused, value freed
    static char big[BAL_LRU_KEY_MAX + 1];
    assert_int_equal(bal_lru_put(lru, big, sizeof big, s_new_int(6)), -1);
    bal_lru_destroy(&lru);
    assert_null(lru);
    bal_lru_destroy(&lru);
}

static void
test_lru_many(void **state)
{
    (void) state;
    bal_lru_t *lru = bal_lru_new(1000, free);
    char key[32];
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(key, sizeof key, "route-%d", i);
        bal_lru_put(lru, key, (size_t) n, s_new_int(i));
        assert_true(bal_lru_count(lru) <= 1000);
    }
    assert_int_equal(bal_lru_count(lru), 1000);
    assert_int_equal(bal_lru_evictions(lru), 9000);
    for (int i = 9000; i < 10000; i++) {
        int n = snprintf(key, sizeof key, "route-%d", i);
        int *v = bal_lru_get(lru, key, (size_t) n);
        assert_non_null(v);
        assert_int_equal(*v, i);
    }
    int n = snprintf(key, sizeof key, "route-%d", 8999);
    assert_null(bal_lru_get(lru, key, (size_t) n));
    bal_lru_destroy(&lru);
}

static void
test_key2(void **state)
{
    (void) state;
    char key[8];
    assert_int_equal(bal_lru_key2(key, sizeof key, "ab", "c"), 4);
    assert_memory_equal(key, "ab\0c", 4);
    assert_int_equal(bal_lru_key2(key, sizeof key, "a", "bc"), 4);
    assert_memory_equal(key, "a\0bc", 4);
    assert_int_equal(bal_lru_key2(key, sizeof key, NULL, NULL), 1);
    assert_int_equal(bal_lru_key2(key, sizeof key, "abcd", "efg"), 8);
    assert_int_equal(bal_lru_key2(key, sizeof key, "abcd", "efgh"), 0);
}

static void
test_health(void **state)
{
    (void) state;
    assert_null(bal_health_new(0));
    bal_health_t *h = bal_health_new(2);
    assert_false(bal_health_is_dead(h, "r", "a"));
    assert_int_equal(bal_health_set(h, "r", "a", false, 1), 1);
    assert_int_equal(bal_health_set(h, "r", "a", false, 2), 0); // already dead
    assert_true(bal_health_is_dead(h, "r", "a"));
    assert_false(bal_health_is_dead(h, "other", "a")); // per route
    assert_int_equal(bal_health_set(h, "r", "a", true, 3), 1);
    assert_int_equal(bal_health_set(h, "r", "a", true, 3), 0); // already up
    assert_false(bal_health_is_dead(h, "r", "a"));
    assert_int_equal(bal_health_set(h, "", "a", false, 0), -1);
    assert_int_equal(bal_health_set(h, "r", "", false, 0), -1);
    assert_int_equal(bal_health_set(h, NULL, "a", false, 0), -1);
    // bounded: the least recently marked is forgotten
    bal_health_set(h, "r", "a", false, 0);
    bal_health_set(h, "r", "b", false, 0);
    bal_health_set(h, "r", "c", false, 0);
    assert_int_equal(bal_health_count(h), 2);
    assert_int_equal(bal_health_evictions(h), 1);
    assert_false(bal_health_is_dead(h, "r", "a"));
    assert_true(bal_health_is_dead(h, "r", "c"));
    bal_health_destroy(&h);
    bal_health_destroy(&h);
}

static void
test_latency(void **state)
{
    (void) state;
    assert_null(bal_latency_new(0));
    bal_latency_t *l = bal_latency_new(10);
    uint64_t t = 1000000;
    assert_int_equal(bal_latency_get(l, "r", "a", t), 0);
    assert_int_equal(bal_latency_add(l, "r", "a", 8000, t), 0);
    assert_int_equal(bal_latency_get(l, "r", "a", t), 8000);
    assert_int_equal(bal_latency_add(l, "r", "a", 16000, t + 10), 0);
    assert_int_equal(bal_latency_get(l, "r", "a", t + 10), 10000); // 8000 + 8000/4
    assert_int_equal(bal_latency_add(l, "r", "a", 2000, t + 20), 0);
    assert_int_equal(bal_latency_get(l, "r", "a", t + 20), 8000); // 10000 - 8000/4
    assert_int_equal(bal_latency_get(l, "other", "a", t), 0);
    // ignored samples
    assert_int_equal(bal_latency_add(l, "r", "a", 0, t), -1);
    assert_int_equal(bal_latency_add(l, "", "a", 5, t), -1);
    assert_int_equal(bal_latency_add(l, "r", NULL, 5, t), -1);
    // stale: unknown; the next sample starts again from itself
    assert_int_equal(bal_latency_get(l, "r", "a", t + 20 + BAL_LATENCY_STALE_MS - 1), 8000);
    assert_int_equal(bal_latency_get(l, "r", "a", t + 20 + BAL_LATENCY_STALE_MS), 0);
    assert_int_equal(bal_latency_add(l, "r", "a", 500, t + 20 + BAL_LATENCY_STALE_MS), 0);
    assert_int_equal(bal_latency_get(l, "r", "a", t + 20 + BAL_LATENCY_STALE_MS), 500);
    // a tiny average never reads as unknown
    bal_latency_add(l, "r", "fast", 1, t);
    bal_latency_add(l, "r", "fast", 1, t);
    assert_int_equal(bal_latency_get(l, "r", "fast", t), 1);
    assert_int_equal(bal_latency_count(l), 2);
    bal_latency_destroy(&l);
    bal_latency_destroy(&l);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lru_basics), cmocka_unit_test(test_lru_many),
        cmocka_unit_test(test_key2),       cmocka_unit_test(test_health),
        cmocka_unit_test(test_latency),
    };
    return cmocka_run_group_tests_name("bal_lru", tests, NULL, NULL);
}
