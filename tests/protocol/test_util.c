/*  test_util - unit tests for proto_util: the FNV-1a hash and bounded copies.

    The FNV-1a vectors are those of the reference (draft-eastlake-fnv) and of
    Python's bytes-wise computation; every hash in Switchyard comes from
    these functions, so IP_HASH and the tables stay stable across actors.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto_util.h"

static void
test_fnv1a_vectors(void **state)
{
    (void) state;
    assert_true(proto_fnv1a("", 0) == 0xcbf29ce484222325ull);
    assert_true(proto_fnv1a("a", 1) == 0xaf63dc4c8601ec8cull);
    assert_true(proto_fnv1a("foobar", 6) == 0x85944171f73967e8ull);
    // bytes over 0x7f and NUL are bytes like any other
    assert_true(proto_fnv1a("\xff\x00\x80", 3) == 0xf920891be415651eull);
    assert_true(proto_fnv1a(NULL, 0) == PROTO_FNV1A_OFFSET);
}

static void
test_fnv1a_str(void **state)
{
    (void) state;
    assert_true(proto_fnv1a_str("foobar") == 0x85944171f73967e8ull);
    assert_true(proto_fnv1a_str("10.0.0.1") == 0x87f7ef5de06ff78dull);
    assert_true(proto_fnv1a_str("") == PROTO_FNV1A_OFFSET);
    assert_true(proto_fnv1a_str(NULL) == PROTO_FNV1A_OFFSET);
}

//  Hashing in pieces, or a byte at a time, is hashing the whole.
static void
test_fnv1a_pieces(void **state)
{
    (void) state;
    const char *s = "route.example/backend-1";
    size_t len = strlen(s);
    uint64_t whole = proto_fnv1a(s, len);
    for (size_t cut = 0; cut <= len; cut++) {
        uint64_t h = proto_fnv1a_more(PROTO_FNV1A_OFFSET, s, cut);
        assert_true(proto_fnv1a_more(h, s + cut, len - cut) == whole);
    }
    uint64_t h = PROTO_FNV1A_OFFSET;
    for (size_t i = 0; i < len; i++)
        h = proto_fnv1a_byte(h, (uint8_t) s[i]);
    assert_true(h == whole);
    assert_true(proto_fnv1a("ab", 2) != proto_fnv1a("ba", 2));
}

static void
test_strlcpy(void **state)
{
    (void) state;
    char buf[4];
    assert_true(proto_strlcpy(buf, "abc", sizeof buf));
    assert_string_equal(buf, "abc");
    assert_false(proto_strlcpy(buf, "abcd", sizeof buf));
    assert_string_equal(buf, "abc");
    assert_false(proto_strlcpy(buf, "x", 0));
    assert_true(proto_starts_with("tcp://a", "tcp://"));
    assert_false(proto_starts_with("tcp:/", "tcp://"));
}

static void
test_iso8601(void **state)
{
    (void) state;
    char out[40];
    proto_iso8601_ms(0, out, sizeof out);
    assert_string_equal(out, "1970-01-01T00:00:00.000Z");
    proto_iso8601_ms(1795299046123ull, out, sizeof out);
    assert_string_equal(out, "2026-11-21T22:10:46.123Z");
    proto_iso8601_ms(1795299046007ull, out, sizeof out);
    assert_string_equal(out, "2026-11-21T22:10:46.007Z");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fnv1a_vectors), cmocka_unit_test(test_fnv1a_str),
        cmocka_unit_test(test_fnv1a_pieces),  cmocka_unit_test(test_strlcpy),
        cmocka_unit_test(test_iso8601),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
