/*  test_http - gw_http: the header table, comma lists, absolute-form targets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gw_http.h"

static void
test_header_table(void **state)
{
    (void) state;
    assert_int_equal(gw_http_header("Connection", 10), GW_H_CONNECTION);
    assert_int_equal(gw_http_header("HOST", 4), GW_H_HOST);
    assert_int_equal(gw_http_header("x-forwarded-for", 15), GW_H_X_FORWARDED_FOR);
    assert_int_equal(gw_http_header("x-forwarded", 11), GW_H_OTHER);
    assert_int_equal(gw_http_header("hostx", 5), GW_H_OTHER);
    // what the proxy needs is never removed because Connection names it
    assert_true(gw_http_flags(GW_H_HOST) & GW_HF_PROTECTED);
    assert_true(gw_http_flags(GW_H_CONTENT_LENGTH) & GW_HF_PROTECTED);
    assert_true(gw_http_flags(GW_H_TRANSFER_ENCODING) & GW_HF_PROTECTED);
    assert_false(gw_http_flags(GW_H_OTHER) & GW_HF_PROTECTED);
    // hop-by-hop fields never go upstream nor back to the client
    static const gw_hdr_t hop[] = {GW_H_CONNECTION, GW_H_KEEP_ALIVE, GW_H_PROXY_CONNECTION,
                                   GW_H_TE,         GW_H_TRAILER,    GW_H_TRANSFER_ENCODING,
                                   GW_H_UPGRADE};
    for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++) {
        assert_true(gw_http_flags(hop[i]) & GW_HF_HOP);
        assert_true(gw_http_flags(hop[i]) & GW_HF_RESP_DROP);
    }
    // credentials never reach the bus
    assert_true(gw_http_flags(GW_H_AUTHORIZATION) & GW_HF_NO_BUS);
    assert_true(gw_http_flags(GW_H_COOKIE) & GW_HF_NO_BUS);
    assert_true(gw_http_flags(GW_H_PROXY_AUTHORIZATION) & GW_HF_NO_BUS);
}

static void
test_lists(void **state)
{
    (void) state;
    const char *v = " keep-alive ,\tX-Drop,, ,close\t";
    size_t pos = 0, len = strlen(v), tl;
    const char *t;
    const char *want[] = {"keep-alive", "X-Drop", "close"};
    for (size_t i = 0; i < 3; i++) {
        assert_true(gw_http_list_next(v, len, &pos, &t, &tl));
        assert_int_equal(tl, strlen(want[i]));
        assert_memory_equal(t, want[i], tl);
    }
    assert_false(gw_http_list_next(v, len, &pos, &t, &tl));
    assert_true(gw_http_list_has(v, len, "x-drop", 6));
    assert_true(gw_http_list_has(v, len, "CLOSE", 5));
    assert_false(gw_http_list_has(v, len, "keep", 4));
    assert_false(gw_http_list_has("", 0, "close", 5));
    assert_false(gw_http_list_has(NULL, 0, "close", 5));
    assert_true(gw_http_list_has("close", 5, "close", 5));
}

static void
test_absolute_form(void **state)
{
    (void) state;
    static const struct {
        const char *target;
        int rc;
        const char *host;
        const char *rest;
    } cases[] = {
        {"/x?a=1", 0, NULL, NULL},
        {"*", 0, NULL, NULL},
        {"http://a.example/x?y", 1, "a.example", "/x?y"},
        {"HTTP://A.example:8080", 1, "A.example:8080", ""},
        {"https://a.example?q=1", 1, "a.example", "?q=1"},
        {"http://[::1]:80/p", 1, "[::1]:80", "/p"},
        {"http://user:pw@a.example/", -1, NULL, NULL},
        {"http://@a.example/", -1, NULL, NULL},
        {"ftp://a.example/", -1, NULL, NULL},
        {"http:/a.example/", -1, NULL, NULL},
        {"http:///x", -1, NULL, NULL},
        {"http://a.example:80x/", -1, NULL, NULL},
        {"http://a.example:123456/", -1, NULL, NULL},
        {"http://a.example#f", -1, NULL, NULL},
        {"a.example:80", -1, NULL, NULL},
        {"http://[zz]/", -1, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t ho = 0, hl = 0, po = 0, pl = 0;
        const char *t = cases[i].target;
        int rc = gw_http_absolute_form(t, strlen(t), &ho, &hl, &po, &pl);
        if (rc != cases[i].rc)
            print_error("case %zu (%s): %d\n", i, t, rc);
        assert_int_equal(rc, cases[i].rc);
        if (rc == 1) {
            assert_int_equal(hl, strlen(cases[i].host));
            assert_memory_equal(t + ho, cases[i].host, hl);
            assert_int_equal(pl, strlen(cases[i].rest));
            assert_memory_equal(t + po, cases[i].rest, pl);
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_table),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_absolute_form),
    };
    return cmocka_run_group_tests_name("test_http", tests, NULL, NULL);
}
