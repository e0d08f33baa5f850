/*  test_pairs - proto_pairs: values by pair of strings, the bound, growth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto_pairs.h"

static void
test_put_get(void **state)
{
    (void) state;
    proto_pairs_t *p = proto_pairs_new(sizeof(uint64_t), 100000);
    bool created;
    uint64_t *v = proto_pairs_put(p, "route", "backend", &created);
    assert_non_null(v);
    assert_true(created);
    assert_int_equal(*v, 0); // zeroed
    *v = 42;
    assert_int_equal(*(uint64_t *) proto_pairs_get(p, "route", "backend"), 42);
    assert_int_equal(*(uint64_t *) proto_pairs_put(p, "route", "backend", &created), 42);
    assert_false(created);
    // the separator keeps pairs apart that concatenate alike
    assert_null(proto_pairs_get(p, "rout", "ebackend"));
    assert_null(proto_pairs_get(p, "route", "backen"));
    assert_null(proto_pairs_get(p, "", "routebackend"));
    *(uint64_t *) proto_pairs_put(p, "", "", NULL) = 7;
    assert_int_equal(*(uint64_t *) proto_pairs_get(p, "", ""), 7);
    assert_int_equal(proto_pairs_size(p), 2);
    // many: growth keeps every value
    char a[32], b[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(a, sizeof a, "r%d", i % 97);
        snprintf(b, sizeof b, "b%d", i);
        *(uint64_t *) proto_pairs_put(p, a, b, NULL) = (uint64_t) i;
    }
    for (int i = 0; i < 20000; i++) {
        snprintf(a, sizeof a, "r%d", i % 97);
        snprintf(b, sizeof b, "b%d", i);
        uint64_t *got = proto_pairs_get(p, a, b);
        assert_non_null(got);
        assert_int_equal(*got, (uint64_t) i);
    }
    assert_int_equal(proto_pairs_size(p), 20002);
    proto_pairs_destroy(&p);
    assert_null(p);
    proto_pairs_destroy(&p); // twice is fine
}

static void
test_bound(void **state)
{
    (void) state;
    proto_pairs_t *p = proto_pairs_new(1, 3);
    assert_null(proto_pairs_get(p, "a", "b")); // empty
    assert_non_null(proto_pairs_put(p, "a", "1", NULL));
    assert_non_null(proto_pairs_put(p, "a", "2", NULL));
    assert_non_null(proto_pairs_put(p, "a", "3", NULL));
    bool created = true;
    assert_null(proto_pairs_put(p, "a", "4", &created));
    assert_true(created);
    assert_int_equal(proto_pairs_refused(p), 1);
    assert_non_null(proto_pairs_put(p, "a", "2", NULL)); // an existing one still works
    assert_int_equal(proto_pairs_size(p), 3);
    proto_pairs_destroy(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get),
        cmocka_unit_test(test_bound),
    };
    return cmocka_run_group_tests_name("pairs", tests, NULL, NULL);
}
