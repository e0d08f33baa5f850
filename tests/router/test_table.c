/*  test_table - unit tests for rt_table: which route serves a Host.

    Pins SPEC §3's order (exact, longest wildcard, "*"), case-insensitivity,
    that the caller strips the port, wildcard depth, and that a table copy
    shares routes yet changes independently (how rt_control stages changes).
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "../../router/rt_table.h"

//  A route for a vHost with one backend, built the way the API builds it.
static rt_route_t *
s_route(const char *vhost)
{
    json_t *json = json_pack("{s:s, s:[{s:s, s:i}]}", "vHost", vhost, "backends", "hostname",
                             "10.0.0.1", "port", 3000);
    assert_non_null(json);
    rt_error_t err = {.message = ""};
    rt_route_t *route = rt_route_new(json, "1", &err);
    json_decref(json);
    if (route == NULL)
        fail_msg("%s: %s (%s)", vhost, err.message, err.field);
    return route;
}

static void
s_add(rt_table_t *table, const char *vhost)
{
    rt_route_t *route = s_route(vhost);
    rt_table_put(table, route);
    rt_route_unref(&route);
}

//  The vHost of the route serving host, or "(none)".
static const char *
s_match(const rt_table_t *table, const char *host)
{
    rt_route_t *route = rt_table_match(table, host);
    return route ? route->vhost : "(none)";
}

static void
test_empty(void **state)
{
    (void) state;
    rt_table_t *table = rt_table_new();
    assert_int_equal(rt_table_size(table), 0);
    assert_string_equal(s_match(table, "example.com"), "(none)");
    assert_string_equal(s_match(table, ""), "(none)");
    assert_null(rt_table_get(table, "*"));
    assert_null(rt_table_at(table, 0));
    rt_table_destroy(&table);
    assert_null(table);
    rt_table_destroy(&table); // safe twice
}

static void
test_exact_and_case(void **state)
{
    (void) state;
    rt_table_t *table = rt_table_new();
    s_add(table, "Api.Example.COM"); // stored lower-case
    assert_string_equal(rt_table_at(table, 0)->vhost, "api.example.com");
    assert_string_equal(s_match(table, "api.example.com"), "api.example.com");
    assert_string_equal(s_match(table, "API.EXAMPLE.COM"), "api.example.com");
    assert_string_equal(s_match(table, "aPi.ExAmPlE.cOm"), "api.example.com");
    assert_string_equal(s_match(table, "example.com"), "(none)");
    assert_string_equal(s_match(table, "xapi.example.com"), "(none)");
    assert_string_equal(s_match(table, "api.example.co"), "(none)");
    // the caller strips the port: with it, nothing matches
    assert_string_equal(s_match(table, "api.example.com:8080"), "(none)");
    assert_non_null(rt_table_get(table, "API.example.com"));
    rt_table_destroy(&table);
}

static void
test_wildcard_depth(void **state)
{
    (void) state;
    rt_table_t *table = rt_table_new();
    s_add(table, "*.example.com");
    assert_string_equal(s_match(table, "a.example.com"), "*.example.com");
    assert_string_equal(s_match(table, "a.b.example.com"), "*.example.com");
    assert_string_equal(s_match(table, "x.y.z.example.com"), "*.example.com");
    assert_string_equal(s_match(table, "A.Example.Com"), "*.example.com");
    assert_string_equal(s_match(table, "example.com"), "(none)"); // not the apex
    assert_string_equal(s_match(table, "badexample.com"), "(none)");
    assert_string_equal(s_match(table, ".example.com"), "(none)"); // no tenant label
    assert_string_equal(s_match(table, "a.example.com.evil"), "(none)");
    assert_string_equal(s_match(table, "com"), "(none)");
    assert_non_null(rt_table_get(table, "*.example.com"));
    assert_null(rt_table_get(table, "example.com"));
    rt_table_destroy(&table);
}

static void
test_longest_wildcard_wins(void **state)
{
    (void) state;
    rt_table_t *table = rt_table_new();
    s_add(table, "*.com");
    s_add(table, "*.b.example.com");
    s_add(table, "*.example.com");
    assert_string_equal(s_match(table, "a.b.example.com"), "*.b.example.com");
    assert_string_equal(s_match(table, "x.a.b.example.com"), "*.b.example.com");
    assert_string_equal(s_match(table, "a.c.example.com"), "*.example.com");
    assert_string_equal(s_match(table, "b.example.com"), "*.example.com");
    assert_string_equal(s_match(table, "example.com"), "*.com");
    assert_string_equal(s_match(table, "other.org"), "(none)");
    rt_table_destroy(&table);
}

static void
test_order_exact_wildcard_catch_all(void **state)
{
    (void) state;
    rt_table_t *table = rt_table_new();
    s_add(table, "*");
    s_add(table, "*.example.com");
    s_add(table, "api.example.com");
    s_add(table, "example.com");
    assert_string_equal(s_match(table, "api.example.com"), "api.example.com");
    assert_string_equal(s_match(table, "web.example.com"), "*.example.com");
    assert_string_equal(s_match(table, "a.api.example.com"), "*.example.com");
    assert_string_equal(s_match(table, "example.com"), "example.com");
    assert_string_equal(s_match(table, "elsewhere.org"), "*");
    assert_string_equal(s_match(table, "localhost"), "*");
    assert_string_equal(s_match(table, ""), "*");
    assert_string_equal(rt_table_get(table, "*")->vhost, "*");
    rt_table_destroy(&table);
}

static void
test_overlong_host(void **state)
{
    (void) state;
    rt_table_t *table = rt_table_new();
    s_add(table, "*.example.com");
    char host[400];
    memset(host, 'a', sizeof host);
    snprintf(host + 300, sizeof host - 300, ".example.com");
    assert_string_equal(s_match(table, host), "(none)"); // longer than any vHost can be
    s_add(table, "*");
    assert_string_equal(s_match(table, host), "*");
    rt_table_destroy(&table);
}

static void
test_put_replaces_in_place(void **state)
{
    (void) state;
    rt_table_t *table = rt_table_new();
    s_add(table, "a.com");
    s_add(table, "b.com");
    s_add(table, "c.com");
    rt_route_t *first = rt_table_get(table, "b.com");
    rt_route_t *b2 = s_route("B.com");
    assert_int_equal(rt_table_put(table, b2), 1);
    assert_int_equal(rt_table_size(table), 3);
    assert_ptr_equal(rt_table_at(table, 1), b2); // same place in the order
    assert_ptr_equal(rt_table_match(table, "b.com"), b2);
    assert_ptr_not_equal(first, b2);
    assert_int_equal(b2->refs, 2); // ours and the table's
    rt_route_unref(&b2);
    rt_table_destroy(&table);
}

static void
test_remove(void **state)
{
    (void) state;
    rt_table_t *table = rt_table_new();
    s_add(table, "a.com");
    s_add(table, "*.a.com");
    s_add(table, "*");
    assert_int_equal(rt_table_remove(table, "A.COM"), 0);
    assert_int_equal(rt_table_remove(table, "a.com"), -1);
    assert_string_equal(s_match(table, "a.com"), "*");
    assert_string_equal(s_match(table, "x.a.com"), "*.a.com");
    assert_int_equal(rt_table_remove(table, "*.a.com"), 0);
    assert_string_equal(s_match(table, "x.a.com"), "*");
    assert_int_equal(rt_table_remove(table, "*"), 0);
    assert_string_equal(s_match(table, "x.a.com"), "(none)");
    assert_int_equal(rt_table_size(table), 0);
    rt_table_destroy(&table);
}

static void
test_copy_is_independent(void **state)
{
    (void) state;
    rt_table_t *table = rt_table_new();
    s_add(table, "a.com");
    s_add(table, "*.b.com");
    rt_table_t *copy = rt_table_copy(table);
    assert_ptr_equal(rt_table_get(copy, "a.com"), rt_table_get(table, "a.com")); // shared
    assert_int_equal(rt_table_get(table, "a.com")->refs, 2);
    s_add(copy, "c.com");
    assert_int_equal(rt_table_remove(copy, "a.com"), 0);
    assert_string_equal(s_match(table, "a.com"), "a.com");
    assert_string_equal(s_match(table, "c.com"), "(none)");
    assert_string_equal(s_match(copy, "a.com"), "(none)");
    assert_string_equal(s_match(copy, "c.com"), "c.com");
    assert_string_equal(s_match(copy, "x.b.com"), "*.b.com");
    assert_int_equal(rt_table_get(table, "a.com")->refs, 1);
    rt_table_destroy(&copy);
    assert_string_equal(s_match(table, "x.b.com"), "*.b.com");
    rt_table_destroy(&table);
}

//  Thousands of routes of each kind: every one found (the maps grow), and
//  misses stay misses.
static void
test_many_routes(void **state)
{
    (void) state;
    rt_table_t *table = rt_table_new();
    char name[64];
    for (int i = 0; i < 3000; i++) {
        snprintf(name, sizeof name, "host%d.example.com", i);
        s_add(table, name);
        snprintf(name, sizeof name, "*.t%d.example.com", i);
        s_add(table, name);
    }
    assert_int_equal(rt_table_size(table), 6000);
    for (int i = 0; i < 3000; i++) {
        char want[64];
        snprintf(name, sizeof name, "HOST%d.example.com", i);
        snprintf(want, sizeof want, "host%d.example.com", i);
        assert_string_equal(s_match(table, name), want);
        snprintf(name, sizeof name, "tenant.t%d.example.com", i);
        snprintf(want, sizeof want, "*.t%d.example.com", i);
        assert_string_equal(s_match(table, name), want);
        snprintf(name, sizeof name, "t%d.example.com", i); // apex of a wildcard
        assert_string_equal(s_match(table, name), "(none)");
    }
    for (int i = 0; i < 3000; i += 2) {
        snprintf(name, sizeof name, "host%d.example.com", i);
        assert_int_equal(rt_table_remove(table, name), 0);
    }
    assert_string_equal(s_match(table, "host2.example.com"), "(none)");
    assert_string_equal(s_match(table, "host3.example.com"), "host3.example.com");
    rt_table_destroy(&table);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_exact_and_case),
        cmocka_unit_test(test_wildcard_depth),
        cmocka_unit_test(test_longest_wildcard_wins),
        cmocka_unit_test(test_order_exact_wildcard_catch_all),
        cmocka_unit_test(test_overlong_host),
        cmocka_unit_test(test_put_replaces_in_place),
        cmocka_unit_test(test_remove),
        cmocka_unit_test(test_copy_is_independent),
        cmocka_unit_test(test_many_routes),
    };
    return cmocka_run_group_tests_name("rt_table", tests, NULL, NULL);
}
