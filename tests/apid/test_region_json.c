/*  test_region_json - unit tests for api_region: the body of
    PUT /api/v1/regions/:id (SPEC §5, §7).

    A table of bodies with the exact error code and field each must get,
    then the normalized output: {"id": <path id>, "publicAddress":
    "host:port"} with the default port 80 written out.

    Decisions pinned here: an "id" in the body is accepted when it equals
    the path's (GET -> edit -> PUT), else invalid_value on "id"; an IPv6
    host needs brackets; the first bad field in document order wins, a
    duplicate key included; a missing publicAddress is reported after every
    member that is present.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "../../apid/api_region.h"

//  The body must fail for region id with exactly this code and field.
static void
t_expect(const char *text, const char *id, const char *code, const char *field)
{
    api_error_t err;
    memset(&err, 0, sizeof err);
    json_t *out = api_region_parse(text, strlen(text), id, &err);
    if (out != NULL) {
        char *s = json_dumps(out, JSON_COMPACT);
        fail_msg("accepted: %s\n  -> %s\n  expected %s on '%s'", text, s, code, field);
    }
    if (strcmp(err.code, code) != 0 || strcmp(err.field, field) != 0)
        fail_msg("%s\n  got      %s on '%s' (%s)\n  expected %s on '%s'", text, err.code, err.field,
                 err.message, code, field);
    assert_int_equal(err.status, 400);
    assert_true(err.message[0] != '\0');
}

//  The body must be accepted for region id and normalize to want.
static void
t_accept(const char *text, const char *id, const char *want)
{
    api_error_t err;
    memset(&err, 0, sizeof err);
    json_t *out = api_region_parse(text, strlen(text), id, &err);
    if (out == NULL)
        fail_msg("refused: %s\n  %s on '%s': %s", text, err.code, err.field, err.message);
    char *s = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    if (strcmp(s, want) != 0)
        fail_msg("%s\n  -> %s\n  expected %s", text, s, want);
    free(s);
}

static void
test_bad_bodies(void **state)
{
    (void) state;
    t_expect("", "2", "invalid_json", "");
    t_expect("{", "2", "invalid_json", "");
    t_expect("[]", "2", "invalid_type", "");
    t_expect("\"10.0.0.2\"", "2", "invalid_type", "");
    t_expect("{}", "2", "missing_field", "publicAddress");
    t_expect("{\"id\":\"2\"}", "2", "missing_field", "publicAddress");
    t_expect("{\"publicAddress\":null}", "2", "invalid_type", "publicAddress");
    t_expect("{\"publicAddress\":80}", "2", "invalid_type", "publicAddress");
    t_expect("{\"publicAddress\":[\"a\"]}", "2", "invalid_type", "publicAddress");
    t_expect("{\"publicAddress\":\"\"}", "2", "invalid_value", "publicAddress");
    t_expect("{\"publicAddress\":\"a.com:0\"}", "2", "invalid_value", "publicAddress");
    t_expect("{\"publicAddress\":\"a.com:65536\"}", "2", "invalid_value", "publicAddress");
    t_expect("{\"publicAddress\":\"a.com:x\"}", "2", "invalid_value", "publicAddress");
    t_expect("{\"publicAddress\":\"::1\"}", "2", "invalid_value", "publicAddress");
    t_expect("{\"publicAddress\":\"http://a.com\"}", "2", "invalid_value", "publicAddress");
    t_expect("{\"publicAddress\":\"a b\"}", "2", "invalid_value", "publicAddress");
    t_expect("{\"publicAddress\":\"a.com\",\"extra\":1}", "2", "unknown_field", "extra");
    t_expect("{\"publicaddress\":\"a.com\"}", "2", "unknown_field", "publicaddress");
    t_expect("{\"publicAddress\":\"a.com\",\"publicAddress\":\"b.com\"}", "2", "duplicate_key",
             "publicAddress");
    t_expect("{\"id\":\"3\",\"publicAddress\":\"a.com\"}", "2", "invalid_value", "id");
    t_expect("{\"id\":2,\"publicAddress\":\"a.com\"}", "2", "invalid_type", "id");
    // document order: the first bad member wins
    t_expect("{\"nope\":1,\"publicAddress\":5}", "2", "unknown_field", "nope");
    t_expect("{\"publicAddress\":5,\"nope\":1}", "2", "invalid_type", "publicAddress");
    t_expect("{\"id\":\"9\",\"publicAddress\":\"a.com\",\"publicAddress\":\"a.com\"}", "2",
             "invalid_value", "id");
    t_expect("{\"publicAddress\":\"a.com\",\"publicAddress\":\"a.com\",\"id\":\"9\"}", "2",
             "duplicate_key", "publicAddress");
}

//  Messages that quote input cut at a byte count ("%.64s") never split a
//  UTF-8 character: the error body carries the real error (regression:
//  fuzz_region_json, "unprintable error" instead).
static void
test_error_body_is_utf8(void **state)
{
    (void) state;
    char text[1024], key[256];
    int n = snprintf(text, sizeof text, "{\"id\":\"a");
    for (int i = 0; i < 40; i++)
        n += snprintf(text + n, sizeof text - (size_t) n, "\xc3\xa9");
    snprintf(text + n, sizeof text - (size_t) n, "\",\"publicAddress\":\"a.com\"}");
    memset(key, 'x', 199);
    memcpy(key + 199, "\xc3\xa9", 3);
    char text2[512];
    snprintf(text2, sizeof text2, "{\"%s\":1}", key);
    const char *bodies[] = {text, text2};
    for (size_t i = 0; i < 2; i++) {
        api_error_t err = {0};
        json_t *out = api_region_parse(bodies[i], strlen(bodies[i]), "2", &err);
        assert_null(out);
        char *body = api_error_body(err.code, err.message, err.field);
        assert_null(strstr(body, "unprintable"));
        json_t *parsed = json_loads(body, 0, NULL);
        assert_non_null(parsed);
        json_decref(parsed);
        free(body);
    }
}

static void
test_normalized(void **state)
{
    (void) state;
    t_accept("{\"publicAddress\":\"10.0.0.2\"}", "2",
             "{\"id\":\"2\",\"publicAddress\":\"10.0.0.2:80\"}");
    t_accept("{\"publicAddress\":\"edge-2.example.com:8080\"}", "eu-west",
             "{\"id\":\"eu-west\",\"publicAddress\":\"edge-2.example.com:8080\"}");
    t_accept("{\"publicAddress\":\"[2001:db8::2]\"}", "2",
             "{\"id\":\"2\",\"publicAddress\":\"[2001:db8::2]:80\"}");
    t_accept("{\"publicAddress\":\"[::1]:9000\"}", "2",
             "{\"id\":\"2\",\"publicAddress\":\"[::1]:9000\"}");
    // GET -> edit -> PUT: the id sent back is accepted
    t_accept("{\"id\":\"2\",\"publicAddress\":\"10.0.0.2:80\"}", "2",
             "{\"id\":\"2\",\"publicAddress\":\"10.0.0.2:80\"}");
    t_accept(" { \"publicAddress\" : \"a.com:65535\" } ", "2",
             "{\"id\":\"2\",\"publicAddress\":\"a.com:65535\"}");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_bodies),
        cmocka_unit_test(test_normalized),
        cmocka_unit_test(test_error_body_is_utf8),
    };
    return cmocka_run_group_tests_name("test_region_json", tests, NULL, NULL);
}
