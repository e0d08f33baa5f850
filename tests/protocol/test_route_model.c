/*  test_route_model - unit tests for proto_route, the route model's rules
    that apid and the router share.

    Also the first example of how they are used: a checker reads a string
    from its JSON, then asks proto_route whether it is valid and for its
    stored form:

        char vhost[PROTO_ROUTE_VHOST_MAX + 1];
        if (proto_route_vhost_normalize(given, vhost, sizeof vhost) != 0)
            ... 400 on "vHost"
        char id[PROTO_ROUTE_BACKEND_ID_MAX + 1];
        if (id_given == NULL && proto_route_default_backend_id(host, port, id, sizeof id) != 0)
            ... 400 on "backends[i].id": the backend needs an explicit id

    Pinned here, beside the ordinary cases: each case where apid and the
    router used to disagree (the router took "-a.com", labels over 63
    bytes, 254-255 byte vHosts, hostnames such as "h:80" or "a!b", backend
    ids with '/', weights over 1000, lower-case strategy names, framing
    headers; it gave "::1:80" as an IPv6 backend's default id), with the
    rule both now follow; and the defaults of SPEC §4.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto_route.h"
#include "proto_strategy.h"
#include "proto_util.h"

//  A string of n copies of ch (n < 1100).
static const char *
s_repeat(char ch, size_t n)
{
    static char buf[1100];
    assert_true(n < sizeof buf);
    memset(buf, ch, n);
    buf[n] = '\0';
    return buf;
}

//  A host name of exactly n bytes: labels of 63 'a's joined by dots.
static void
s_long_name(char *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (i % 64 == 63) ? '.' : 'a';
    if (n > 0 && out[n - 1] == '.')
        out[n - 1] = 'b';
    out[n] = '\0';
}

static void
test_vhost(void **state)
{
    (void) state;
    static const char *const good[] = {
        "*",     "localhost",           "api.example.com", "*.example.com",
        "*.a",   "a-b.c_d.example.com", "API.Example.COM", "10.0.0.1",
        "x1.y2",
    };
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(good); i++)
        if (!proto_route_valid_vhost(good[i]))
            fail_msg("refused vHost '%s'", good[i]);
    static const char *const bad[] = {
        "",
        "**",
        "*.",
        "*foo.com",
        "*.*.a.com",
        "a.*.com",
        ".a.com",
        "a.com.",
        "a..com",
        "a.com:80",
        "a b.com",
        "a/b",
        "[::1]",
        "é.com",
        // the router used to take these; apid did not
        "-a.com",
        "a-.com",
        "a.-b.com",
        "*.-a.com",
    };
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(bad); i++)
        if (proto_route_valid_vhost(bad[i]))
            fail_msg("accepted vHost '%s'", bad[i]);
    // a label of 63 bytes is fine, 64 is not (the router took it)
    char text[600];
    snprintf(text, sizeof text, "%s.com", s_repeat('a', 63));
    assert_true(proto_route_valid_vhost(text));
    snprintf(text, sizeof text, "%s.com", s_repeat('a', 64));
    assert_false(proto_route_valid_vhost(text));
    // 253 bytes in all, wildcard included (the router took up to 255)
    s_long_name(text, 253);
    assert_true(proto_route_valid_vhost(text));
    s_long_name(text, 254);
    assert_false(proto_route_valid_vhost(text));
    text[0] = '*';
    text[1] = '.';
    s_long_name(text + 2, 251);
    assert_true(proto_route_valid_vhost(text));
    s_long_name(text + 2, 252);
    assert_false(proto_route_valid_vhost(text));
}

static void
test_vhost_normalize(void **state)
{
    (void) state;
    char out[PROTO_ROUTE_VHOST_MAX + 1];
    assert_int_equal(proto_route_vhost_normalize("API.Example.COM", out, sizeof out), 0);
    assert_string_equal(out, "api.example.com");
    assert_int_equal(proto_route_vhost_normalize("*.Example.com", out, sizeof out), 0);
    assert_string_equal(out, "*.example.com");
    assert_int_equal(proto_route_vhost_normalize("*", out, sizeof out), 0);
    assert_string_equal(out, "*");
    assert_int_equal(proto_route_vhost_normalize("-a.com", out, sizeof out), -1);
    assert_string_equal(out, "");
    char small[4];
    assert_int_equal(proto_route_vhost_normalize("a.com", small, sizeof small), -1);
    assert_string_equal(small, "");
}

static void
test_hostname(void **state)
{
    (void) state;
    static const char *const good[] = {
        "10.0.0.1",
        "node1.internal",
        "db",
        "a_b",
        "Node-1.Example.com",
        "::1",
        "[::1]",
        "fe80::1",
        "2001:db8::8:800:200c:417a",
        "::ffff:10.0.0.1",
    };
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(good); i++)
        if (!proto_route_valid_hostname(good[i]))
            fail_msg("refused hostname '%s'", good[i]);
    static const char *const bad[] = {
        "",
        "a b",
        "h/x",
        "a.",
        ".a",
        "1:2:3",
        "[::1",
        "::1]",
        "[]",
        "fe80::1%eth0",
        // the router used to take these (printable, without / ? # @ \ ")
        "h:80",
        "a!b",
        "-h",
        "h-",
        "a..b",
        "[h]",
        "h*",
        "h=1",
    };
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(bad); i++)
        if (proto_route_valid_hostname(bad[i]))
            fail_msg("accepted hostname '%s'", bad[i]);
    char text[600];
    s_long_name(text, PROTO_ROUTE_HOSTNAME_MAX);
    assert_true(proto_route_valid_hostname(text));
    s_long_name(text, PROTO_ROUTE_HOSTNAME_MAX + 1); // the router took up to 255
    assert_false(proto_route_valid_hostname(text));

    // stored form: IPv6 without brackets (the router kept them), names as given
    char out[PROTO_ROUTE_HOSTNAME_MAX + 1];
    assert_int_equal(proto_route_hostname_normalize("[::1]", out, sizeof out), 0);
    assert_string_equal(out, "::1");
    assert_int_equal(proto_route_hostname_normalize("fe80::1", out, sizeof out), 0);
    assert_string_equal(out, "fe80::1");
    assert_int_equal(proto_route_hostname_normalize("Node-1.Example.com", out, sizeof out), 0);
    assert_string_equal(out, "Node-1.Example.com");
    assert_int_equal(proto_route_hostname_normalize("h:80", out, sizeof out), -1);
    assert_string_equal(out, "");
    char small[4];
    assert_int_equal(proto_route_hostname_normalize("node1", small, sizeof small), -1);
    assert_string_equal(small, "");
}

static void
test_default_backend_id(void **state)
{
    (void) state;
    char id[PROTO_ROUTE_BACKEND_ID_MAX + 1];
    assert_int_equal(proto_route_default_backend_id("10.0.0.1", 3000, id, sizeof id), 0);
    assert_string_equal(id, "10.0.0.1:3000");
    // an IPv6 address in brackets, as apid gave it (the router gave "::1:80")
    assert_int_equal(proto_route_default_backend_id("::1", 80, id, sizeof id), 0);
    assert_string_equal(id, "[::1]:80");
    assert_true(proto_route_valid_backend_id(id));
    // 122 + ":65535" = 128 bytes fits; one more does not
    char host[200];
    s_long_name(host, 122);
    assert_int_equal(proto_route_default_backend_id(host, 65535, id, sizeof id), 0);
    assert_int_equal(strlen(id), PROTO_ROUTE_BACKEND_ID_MAX);
    s_long_name(host, 123);
    assert_int_equal(proto_route_default_backend_id(host, 65535, id, sizeof id), -1);
    assert_string_equal(id, "");
    // a buffer too small is a failure, never a cut id
    char small[8];
    assert_int_equal(proto_route_default_backend_id("10.0.0.1", 3000, small, sizeof small), -1);
    assert_string_equal(small, "");
}

static void
test_ids_and_region(void **state)
{
    (void) state;
    // route id: no control characters (spaces and UTF-8 are fine)
    assert_true(proto_route_valid_route_id("service-a"));
    assert_true(proto_route_valid_route_id("service a"));
    assert_true(proto_route_valid_route_id("r\xc3\xa9gion"));
    assert_true(proto_route_valid_route_id(s_repeat('r', PROTO_ROUTE_ID_MAX)));
    assert_false(proto_route_valid_route_id(s_repeat('r', PROTO_ROUTE_ID_MAX + 1)));
    assert_false(proto_route_valid_route_id(""));
    assert_false(proto_route_valid_route_id("a\tb"));
    assert_false(proto_route_valid_route_id("a\x7f"));
    // backend id: printable ASCII without space, '/', '?', '#', '%'
    assert_true(proto_route_valid_backend_id("node-1"));
    assert_true(proto_route_valid_backend_id("[::1]:80"));
    assert_true(proto_route_valid_backend_id(s_repeat('n', PROTO_ROUTE_BACKEND_ID_MAX)));
    assert_false(proto_route_valid_backend_id(s_repeat('n', PROTO_ROUTE_BACKEND_ID_MAX + 1)));
    assert_false(proto_route_valid_backend_id(""));
    assert_false(proto_route_valid_backend_id("a b"));
    // the router used to take these; they cannot be a path segment of the API
    assert_false(proto_route_valid_backend_id("a/b"));
    assert_false(proto_route_valid_backend_id("a?b"));
    assert_false(proto_route_valid_backend_id("a#b"));
    assert_false(proto_route_valid_backend_id("50%"));
    // region: printable ASCII without space
    assert_true(proto_route_valid_region("1"));
    assert_true(proto_route_valid_region("eu-west-1"));
    assert_true(proto_route_valid_region(s_repeat('r', PROTO_ROUTE_REGION_MAX)));
    assert_false(proto_route_valid_region(s_repeat('r', PROTO_ROUTE_REGION_MAX + 1)));
    assert_false(proto_route_valid_region(""));
    assert_false(proto_route_valid_region("eu 1"));
    assert_false(proto_route_valid_region("r\xc3\xa9gion"));
}

static void
test_headers(void **state)
{
    (void) state;
    assert_true(proto_route_valid_header_name("X-Env"));
    assert_true(proto_route_valid_header_name("x_a!#$%&'*+-.^_`|~"));
    assert_true(proto_route_valid_header_name(s_repeat('h', PROTO_ROUTE_HEADER_NAME_MAX)));
    assert_false(proto_route_valid_header_name(s_repeat('h', PROTO_ROUTE_HEADER_NAME_MAX + 1)));
    assert_false(proto_route_valid_header_name(""));
    assert_false(proto_route_valid_header_name("Bad Name"));
    assert_false(proto_route_valid_header_name("X-A:"));
    // framing and per-connection headers, any case (the router took them)
    static const char *const forbidden[] = {
        "Connection", "content-length", "Transfer-Encoding", "KEEP-ALIVE", "Upgrade",
        "TE",         "Trailer",        "Proxy-Connection",
    };
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(forbidden); i++)
        if (!proto_route_header_forbidden(forbidden[i]))
            fail_msg("allowed header '%s'", forbidden[i]);
    assert_false(proto_route_header_forbidden("X-Env"));
    assert_false(proto_route_header_forbidden("Tex"));
    // values: tab is fine, other control characters are not (the router
    // refused only CR and LF)
    assert_true(proto_route_valid_header_value(""));
    assert_true(proto_route_valid_header_value("a\tb"));
    assert_true(proto_route_valid_header_value(s_repeat('v', PROTO_ROUTE_HEADER_VALUE_MAX)));
    assert_false(proto_route_valid_header_value(s_repeat('v', PROTO_ROUTE_HEADER_VALUE_MAX + 1)));
    assert_false(proto_route_valid_header_value("a\r\nb"));
    assert_false(proto_route_valid_header_value("a\x01"));
    assert_false(proto_route_valid_header_value("a\x7f"));
}

static void
test_names(void **state)
{
    (void) state;
    proto_route_probe_t probe = PROTO_ROUTE_PROBE_COUNT;
    assert_int_equal(proto_route_probe_parse("http", &probe), 0);
    assert_int_equal(probe, PROTO_ROUTE_PROBE_HTTP);
    assert_int_equal(proto_route_probe_parse("tcp", &probe), 0);
    assert_int_equal(probe, PROTO_ROUTE_PROBE_TCP);
    assert_int_equal(proto_route_probe_parse("HTTP", &probe), -1);
    assert_int_equal(proto_route_probe_parse("icmp", &probe), -1);
    assert_int_equal(proto_route_probe_parse(NULL, &probe), -1);
    assert_string_equal(proto_route_probe_name(PROTO_ROUTE_PROBE_TCP), "tcp");
    assert_null(proto_route_probe_name(PROTO_ROUTE_PROBE_COUNT));
    assert_string_equal(proto_route_probe_list(), "http, tcp");
    // strategies: exact upper-case names (the router took "ip_hash")
    proto_strategy_t strategy = PROTO_STRATEGY_COUNT;
    assert_int_equal(proto_strategy_parse("IP_HASH", &strategy), 0);
    assert_int_equal(strategy, PROTO_STRATEGY_IP_HASH);
    assert_int_equal(proto_strategy_parse("ip_hash", &strategy), -1);
    assert_string_equal(proto_strategy_list(), "ROUND_ROBIN, RANDOM, IP_HASH, LEAST_LATENCY");
}

//  SPEC §4's defaults, and bounds within the bus's.
static void
test_defaults_and_bounds(void **state)
{
    (void) state;
    assert_string_equal(proto_strategy_name(PROTO_ROUTE_STRATEGY_DEFAULT), "ROUND_ROBIN");
    assert_string_equal(proto_route_probe_name(PROTO_ROUTE_PROBE_DEFAULT), "http");
    assert_int_equal(PROTO_ROUTE_WEIGHT_DEFAULT, 1);
    assert_int_equal(PROTO_ROUTE_RETRIES_DEFAULT, 2);
    assert_int_equal(PROTO_ROUTE_TIMEOUT_MS_DEFAULT, 30000);
    assert_int_equal(PROTO_ROUTE_REQ_ACTIVE_DEFAULT, 50);
    assert_int_equal(PROTO_ROUTE_REQ_QUEUE_DEFAULT, 100);
    assert_int_equal(PROTO_ROUTE_MAX_BODY_DEFAULT, 10485760);
    assert_int_equal(PROTO_ROUTE_AUTH_CACHE_MS_DEFAULT, 5000);
    assert_string_equal(PROTO_ROUTE_HEALTH_PATH_DEFAULT, "/");
    assert_int_equal(PROTO_ROUTE_PORT_MIN, 1);
    assert_int_equal(PROTO_ROUTE_PORT_MAX, 65535);
    // every default lies within its range
    assert_in_range(PROTO_ROUTE_WEIGHT_DEFAULT, PROTO_ROUTE_WEIGHT_MIN, PROTO_ROUTE_WEIGHT_MAX);
    assert_in_range(PROTO_ROUTE_RETRIES_DEFAULT, PROTO_ROUTE_RETRIES_MIN, PROTO_ROUTE_RETRIES_MAX);
    assert_in_range(PROTO_ROUTE_TIMEOUT_MS_DEFAULT, PROTO_ROUTE_TIMEOUT_MS_MIN,
                    PROTO_ROUTE_TIMEOUT_MS_MAX);
    assert_in_range(PROTO_ROUTE_TIMEOUT_MS_DEFAULT, PROTO_ROUTE_QUEUE_TIMEOUT_MS_MIN,
                    PROTO_ROUTE_QUEUE_TIMEOUT_MS_MAX);
    assert_in_range(PROTO_ROUTE_REQ_ACTIVE_DEFAULT, PROTO_ROUTE_REQ_ACTIVE_MIN,
                    PROTO_ROUTE_REQ_ACTIVE_MAX);
    assert_in_range(PROTO_ROUTE_REQ_QUEUE_DEFAULT, PROTO_ROUTE_REQ_QUEUE_MIN,
                    PROTO_ROUTE_REQ_QUEUE_MAX);
    assert_in_range(PROTO_ROUTE_MAX_BODY_DEFAULT, PROTO_ROUTE_MAX_BODY_MIN,
                    PROTO_ROUTE_MAX_BODY_MAX);
    assert_in_range(PROTO_ROUTE_AUTH_CACHE_MS_DEFAULT, PROTO_ROUTE_AUTH_CACHE_MS_MIN,
                    PROTO_ROUTE_AUTH_CACHE_MS_MAX);
    assert_true(PROTO_ROUTE_WEIGHT_MAX <= PROTO_STRATEGY_WEIGHT_MAX);
    assert_true(PROTO_ROUTE_BACKENDS_MAX <= PROTO_STRATEGY_MAX);
}

//  address must normalize to want, or be refused when want is NULL.
static void
s_address(const char *address, const char *want)
{
    char out[PROTO_ROUTE_ADDRESS_MAX + 1];
    int rc = proto_route_address_normalize(address, out, sizeof out);
    if (want == NULL) {
        if (rc == 0)
            fail_msg("'%s' accepted as '%s'", address, out);
        assert_string_equal(out, "");
        return;
    }
    if (rc != 0)
        fail_msg("'%s' refused", address);
    assert_string_equal(out, want);
}

static void
test_region_address(void **state)
{
    (void) state;
    s_address("edge.example.com", "edge.example.com:80");
    s_address("edge.example.com:8080", "edge.example.com:8080");
    s_address("10.0.0.2", "10.0.0.2:80");
    s_address("10.0.0.2:1", "10.0.0.2:1");
    s_address("10.0.0.2:65535", "10.0.0.2:65535");
    s_address("[::1]", "[::1]:80");
    s_address("[2001:db8::7]:4443", "[2001:db8::7]:4443");
    s_address("internal_name", "internal_name:80");
    s_address("", NULL);
    s_address(":80", NULL);
    s_address("host:", NULL);
    s_address("host:0", NULL);
    s_address("host:65536", NULL);
    s_address("host:123456", NULL);
    s_address("host:+80", NULL);
    s_address("host:8 0", NULL);
    s_address("host:80:80", NULL);
    s_address("::1", NULL); // IPv6 needs brackets
    s_address("[::1", NULL);
    s_address("[::1]80", NULL);
    s_address("[not-v6]:80", NULL);
    s_address("[10.0.0.1]:80", NULL);
    s_address("-bad.example", NULL);
    s_address("bad..example", NULL);
    s_address("http://edge.example.com", NULL);
    s_address("edge.example.com/", NULL);
    s_address("edge.example.com.", NULL);
    s_address("host name", NULL);
    char big[PROTO_ROUTE_HOSTNAME_MAX + 2];
    for (size_t i = 0; i < sizeof big - 1; i++)
        big[i] = (i % 60 == 59) ? '.' : 'a';
    big[sizeof big - 1] = '\0';
    s_address(big, NULL); // 254 bytes: over a host name's bound
    big[PROTO_ROUTE_HOSTNAME_MAX] = '\0';
    char want[PROTO_ROUTE_ADDRESS_MAX + 1];
    snprintf(want, sizeof want, "%s:65535", big);
    char with_port[PROTO_ROUTE_ADDRESS_MAX + 1];
    snprintf(with_port, sizeof with_port, "%s:65535", big);
    s_address(with_port, want); // the longest host name with the longest port fits
    char small[8];
    assert_int_equal(proto_route_address_normalize("host:8080", small, sizeof small), -1);
    assert_string_equal(small, "");
}

//  The length half of a (pointer, length) pair, checking the pointer half.
static size_t
s_lit_len(const char *p, size_t n, const char *want)
{
    assert_string_equal(p, want);
    return n;
}

static void
test_lit(void **state)
{
    (void) state;
    // PROTO_LIT counts a literal's bytes, escapes included
    assert_int_equal(s_lit_len(PROTO_LIT("Service Not Found"), "Service Not Found"), 17);
    assert_int_equal(s_lit_len(PROTO_LIT("\r\n"), "\r\n"), 2);
    assert_int_equal(s_lit_len(PROTO_LIT(""), ""), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vhost),          cmocka_unit_test(test_vhost_normalize),
        cmocka_unit_test(test_hostname),       cmocka_unit_test(test_default_backend_id),
        cmocka_unit_test(test_ids_and_region), cmocka_unit_test(test_headers),
        cmocka_unit_test(test_names),          cmocka_unit_test(test_defaults_and_bounds),
        cmocka_unit_test(test_region_address), cmocka_unit_test(test_lit),
    };
    return cmocka_run_group_tests_name("test_route_model", tests, NULL, NULL);
}
