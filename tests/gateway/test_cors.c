/*  test_cors - gw_cors: the route's cors object, preflights and the fields
    of real responses.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../gateway/gw_cors.h"

#define LIT(s) s, strlen(s)

static const char *s_json = "{\"origins\":[\"https://app.test\",\"http://localhost:3000\"],"
                            "\"methods\":[\"GET\",\"POST\"],\"headers\":[\"Content-Type\"],"
                            "\"exposeHeaders\":[\"X-Request-Id\",\"X-Total\"],"
                            "\"credentials\":true,\"maxAge\":90}";

static char *
s_text(gw_buf_t *b)
{
    gw_buf_append(b, "", 1);
    return gw_buf_head(b);
}

static void
test_origins(void **state)
{
    (void) state;
    gw_cors_t *c = gw_cors_new(s_json);
    assert_non_null(c);
    assert_true(gw_cors_allows(c, LIT("https://app.test")));
    assert_true(gw_cors_allows(c, LIT("HTTPS://APP.TEST"))); // host names are case-insensitive
    assert_true(gw_cors_allows(c, LIT("http://localhost:3000")));
    assert_false(gw_cors_allows(c, LIT("https://app.test.evil")));
    assert_false(gw_cors_allows(c, LIT("https://app.tes")));
    assert_false(gw_cors_allows(c, LIT("null")));
    assert_false(gw_cors_allows(c, LIT("")));
    gw_cors_destroy(&c);
    assert_null(c);
    gw_cors_destroy(&c);
}

static void
test_preflight(void **state)
{
    (void) state;
    gw_cors_t *c = gw_cors_new(s_json);
    gw_buf_t out = {0};
    const char *why = NULL;
    assert_true(gw_cors_preflight(c, LIT("https://app.test"), LIT("POST"), LIT("content-type"),
                                  &out, &why));
    assert_string_equal(s_text(&out),
                        "Access-Control-Allow-Origin: https://app.test\r\nVary: Origin\r\n"
                        "Access-Control-Allow-Credentials: true\r\n"
                        "Access-Control-Allow-Methods: GET, POST\r\n"
                        "Access-Control-Allow-Headers: Content-Type\r\n"
                        "Access-Control-Max-Age: 90\r\n");
    gw_buf_reset(&out);
    assert_true(gw_cors_preflight(c, LIT("https://app.test"), LIT("GET"), NULL, 0, &out, &why));
    gw_buf_reset(&out);
    assert_false(gw_cors_preflight(c, LIT("https://x.test"), LIT("GET"), NULL, 0, &out, &why));
    assert_string_equal(why, "origin not allowed");
    assert_false(gw_cors_preflight(c, LIT("https://app.test"), LIT("get"), NULL, 0, &out, &why));
    assert_string_equal(why, "method not allowed"); // methods are case-sensitive
    assert_false(gw_cors_preflight(c, LIT("https://app.test"), LIT("GET"),
                                   LIT("content-type, x-secret"), &out, &why));
    assert_string_equal(why, "request header not allowed");
    assert_int_equal(gw_buf_len(&out), 0);
    gw_buf_free(&out);
    gw_cors_destroy(&c);
}

static void
test_response_fields(void **state)
{
    (void) state;
    gw_cors_t *c = gw_cors_new(s_json);
    gw_buf_t out = {0};
    gw_cors_response(c, LIT("https://evil.test"), &out);
    assert_int_equal(gw_buf_len(&out), 0);
    gw_cors_response(c, LIT("https://app.test"), &out);
    assert_string_equal(s_text(&out),
                        "Access-Control-Allow-Origin: https://app.test\r\nVary: Origin\r\n"
                        "Access-Control-Allow-Credentials: true\r\n"
                        "Access-Control-Expose-Headers: X-Request-Id, X-Total\r\n");
    gw_buf_free(&out);
    gw_cors_destroy(&c);

    // any origin without credentials: "*", no Vary
    c = gw_cors_new("{\"origins\":[\"*\"],\"methods\":[\"GET\"]}");
    assert_non_null(c);
    assert_true(gw_cors_allows(c, LIT("https://anyone.test")));
    gw_cors_response(c, LIT("https://anyone.test"), &out);
    assert_string_equal(s_text(&out), "Access-Control-Allow-Origin: *\r\n");
    gw_buf_free(&out);
    gw_cors_destroy(&c);
}

static void
test_bad_json(void **state)
{
    (void) state;
    assert_null(gw_cors_new(NULL));
    assert_null(gw_cors_new(""));
    assert_null(gw_cors_new("[1]"));
    assert_null(gw_cors_new("{\"methods\":[\"GET\"]}"));         // no origins
    assert_null(gw_cors_new("{\"origins\":[\"a\\r\\nX: y\"]}")); // a field injected
    assert_null(gw_cors_new("{\"origins\":[\"a\"],\"maxAge\":-5}"));
    assert_null(gw_cors_new("{\"origins\":\"https://a.test\"}"));
    assert_null(gw_cors_new("{not json"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_origins),
        cmocka_unit_test(test_preflight),
        cmocka_unit_test(test_response_fields),
        cmocka_unit_test(test_bad_json),
    };
    return cmocka_run_group_tests_name("gw_cors", tests, NULL, NULL);
}
