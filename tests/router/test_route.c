/*  test_route - unit tests for rt_route: a route from JSON, validated and
    normalized as the router stores it.

    Pins the defaults the router resolves at write time (route id = vHost,
    backend id = hostname:port, weight 1, region = REGION, probe http), the
    policy defaults a lease carries, that runtime fields sent back are
    ignored, and the field named for each kind of bad input, including the
    route model's rules the router shares with apid (proto_route): what the
    router used to accept and apid refused is refused here too.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "../../router/rt_route.h"
#include "proto_pairs.h"

static rt_route_t *
s_parse(const char *text, rt_error_t *err)
{
    json_error_t jerr;
    json_t *json = json_loads(text, 0, &jerr);
    if (json == NULL)
        fail_msg("test JSON: %s", jerr.text);
    rt_route_t *route = rt_route_new(json, "eu-1", err);
    json_decref(json);
    return route;
}

//  Expect text to be refused naming field.
static void
s_refused(const char *text, const char *field)
{
    rt_error_t err = {.message = ""};
    rt_route_t *route = s_parse(text, &err);
    if (route != NULL)
        fail_msg("accepted: %s", text);
    if (strcmp(err.field, field) != 0)
        fail_msg("%s: field '%s' (%s), want '%s'", text, err.field, err.message, field);
    assert_true(err.message[0] != '\0');
}

static void
test_defaults(void **state)
{
    (void) state;
    rt_error_t err = {.message = ""};
    rt_route_t *route = s_parse("{\"vHost\": \"API.Example.com\", \"backends\": [{\"hostname\": "
                                "\"10.0.0.1\", \"port\": 3000}]}",
                                &err);
    assert_non_null(route);
    assert_int_equal(route->refs, 1);
    assert_string_equal(route->vhost, "api.example.com");
    assert_string_equal(route->id, "api.example.com");
    assert_string_equal(route->strategy, "ROUND_ROBIN");
    assert_int_equal(route->retries, 2);
    assert_int_equal(route->timeout_ms, 30000);
    assert_int_equal(route->queue_timeout_ms, 30000); // defaults to timeoutMs
    assert_int_equal(route->req_active, PROTO_ROUTE_REQ_ACTIVE_DEFAULT);
    assert_int_equal(route->req_queue, PROTO_ROUTE_REQ_QUEUE_DEFAULT);
    assert_int_equal(route->max_body, 10485760);
    assert_int_equal(route->headers_count, 0);
    assert_int_equal(route->backends_count, 1);
    rt_backend_t *be = &route->backends[0];
    assert_string_equal(be->id, "10.0.0.1:3000");
    assert_string_equal(be->host, "10.0.0.1");
    assert_int_equal(be->port, 3000);
    assert_int_equal(be->weight, 1);
    assert_string_equal(be->region, "eu-1");
    assert_false(be->maint);
    // pick's view points at the same strings
    assert_ptr_equal(route->pick[0].id, be->id);
    assert_int_equal(route->pick[0].port, 3000);
    assert_false(route->pick[0].maint);
    // the stored document has the resolved defaults
    json_t *b0 = json_array_get(json_object_get(route->doc, "backends"), 0);
    assert_string_equal(json_string_value(json_object_get(b0, "id")), "10.0.0.1:3000");
    assert_string_equal(json_string_value(json_object_get(b0, "region")), "eu-1");
    assert_int_equal(json_integer_value(json_object_get(b0, "weight")), 1);
    assert_string_equal(json_string_value(json_object_get(b0, "probe")), "http");
    assert_string_equal(json_string_value(json_object_get(route->doc, "vHost")), "api.example.com");
    assert_string_equal(json_string_value(json_object_get(route->doc, "id")), "api.example.com");
    rt_route_unref(&route);
    assert_null(route);
    rt_route_unref(&route); // safe with NULL
}

static void
test_full_route(void **state)
{
    (void) state;
    rt_error_t err = {.message = ""};
    rt_route_t *route =
        s_parse("{\"id\": \"service-a\", \"vHost\": \"*.example.com\", "
                "\"strategy\": \"IP_HASH\", \"autoHttps\": false, "
                "\"reqActiveLength\": 5, \"reqQueueLength\": 7, \"retries\": 0, "
                "\"timeoutMs\": 1000, \"queueTimeoutMs\": 250, "
                "\"maxBodyBytes\": 1024, \"headers\": {\"X-Env\": \"prod\"}, "
                "\"auth\": {\"type\": \"bearer\", \"tokens\": [\"" // one SHA-256, hex
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"]}, "
                "\"rateLimit\": {\"tier\": \"general\"}, "
                "\"backends\": [{\"id\": \"n1\", \"hostname\": \"h1\", "
                "\"port\": 1, \"weight\": 5, \"region\": \"2\", \"probe\": "
                "\"tcp\", \"isDead\": true, \"failureCount\": 9, "
                "\"deadSince\": 1, \"latencyMs\": 3}]}",
                &err);
    if (route == NULL)
        fail_msg("%s (%s)", err.message, err.field);
    assert_string_equal(route->id, "service-a");
    assert_string_equal(route->strategy, "IP_HASH");
    assert_int_equal(route->retries, 0);
    assert_int_equal(route->timeout_ms, 1000);
    assert_int_equal(route->queue_timeout_ms, 250);
    assert_int_equal(route->req_active, 5);
    assert_int_equal(route->req_queue, 7);
    assert_int_equal(route->max_body, 1024);
    assert_int_equal(route->headers_count, 1);
    assert_string_equal(route->headers[0].key, "X-Env");
    assert_string_equal(route->headers[0].value, "prod");
    assert_string_equal(route->backends[0].region, "2");
    assert_int_equal(route->backends[0].weight, 5);
    // runtime fields sent back are ignored (not stored, not a maintenance mark)
    assert_false(route->backends[0].maint);
    json_t *b0 = json_array_get(json_object_get(route->doc, "backends"), 0);
    assert_null(json_object_get(b0, "isDead"));
    assert_null(json_object_get(b0, "failureCount"));
    assert_null(json_object_get(b0, "deadSince"));
    assert_null(json_object_get(b0, "latencyMs"));
    // policy fields are kept as they came (rt_policy reads them)
    assert_non_null(json_object_get(route->doc, "auth"));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(route->doc, "rateLimit"), "tier")),
        "general");
    rt_route_unref(&route);
}

static void
test_empty_backends_and_null_fields(void **state)
{
    (void) state;
    rt_error_t err = {.message = ""};
    rt_route_t *route = s_parse("{\"vHost\": \"*\", \"backends\": [], \"queueTimeoutMs\": null, "
                                "\"headers\": null, \"strategy\": null, \"timeoutMs\": 500}",
                                &err);
    assert_non_null(route);
    assert_string_equal(route->vhost, "*");
    assert_int_equal(route->backends_count, 0);
    assert_int_equal(route->queue_timeout_ms, 500);
    assert_string_equal(route->strategy, "ROUND_ROBIN");
    rt_route_unref(&route);
}

static void
test_refused(void **state)
{
    (void) state;
    s_refused("[]", "");
    s_refused("{\"backends\": []}", "vHost");
    s_refused("{\"vHost\": 5, \"backends\": []}", "vHost");
    s_refused("{\"vHost\": \"\", \"backends\": []}", "vHost");
    s_refused("{\"vHost\": \"a.*.com\", \"backends\": []}", "vHost");
    s_refused("{\"vHost\": \"*foo.com\", \"backends\": []}", "vHost");
    s_refused("{\"vHost\": \"*.\", \"backends\": []}", "vHost");
    s_refused("{\"vHost\": \"a..com\", \"backends\": []}", "vHost");
    s_refused("{\"vHost\": \"a.com.\", \"backends\": []}", "vHost");
    s_refused("{\"vHost\": \"a.com:80\", \"backends\": []}", "vHost");
    s_refused("{\"vHost\": \"a b.com\", \"backends\": []}", "vHost");
    s_refused("{\"vHost\": \"a.com\"}", "backends");
    s_refused("{\"vHost\": \"a.com\", \"backends\": {}}", "backends");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"strategy\": \"FASTEST\"}", "strategy");
    // strategy names are exact, as apid takes them (proto_strategy_parse)
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"strategy\": \"ip_hash\"}", "strategy");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"retries\": 17}", "retries");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"retries\": -1}", "retries");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"timeoutMs\": 0}", "timeoutMs");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"timeoutMs\": 1.5}", "timeoutMs");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"maxBodyBytes\": \"1\"}", "maxBodyBytes");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"reqActiveLength\": 4294967296}",
              "reqActiveLength");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"headers\": []}", "headers");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"headers\": {\"Bad Name\": \"x\"}}",
              "headers.Bad Name");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"headers\": {\"X-A\": \"a\\r\\nb\"}}",
              "headers.X-A");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"headers\": {\"X-A\": 1}}", "headers.X-A");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"chatPath\": \"chat\"}", "chatPath");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"chatPath\": \"/c?x=1\"}", "chatPath");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"chatPath\": 7}", "chatPath");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [5]}", "backends[0]");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [{\"port\": 80}]}", "backends[0].hostname");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [{\"hostname\": \"\", \"port\": 80}]}",
              "backends[0].hostname");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [{\"hostname\": \"h\"}]}", "backends[0].port");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [{\"hostname\": \"h\", \"port\": 0}]}",
              "backends[0].port");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [{\"hostname\": \"h\", \"port\": 65536}]}",
              "backends[0].port");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [{\"hostname\": \"h\", \"port\": \"80\"}]}",
              "backends[0].port");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [{\"hostname\": \"h\", \"port\": 80, "
              "\"weight\": 0}]}",
              "backends[0].weight");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [{\"hostname\": \"h\", \"port\": 80, "
              "\"probe\": \"icmp\"}]}",
              "backends[0].probe");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [{\"hostname\": \"h\", \"port\": 80, "
              "\"region\": 2}]}",
              "backends[0].region");
    // a duplicate id names the second occurrence, also when one is a default
    s_refused("{\"vHost\": \"a.com\", \"backends\": [{\"hostname\": \"h\", \"port\": 80}, "
              "{\"hostname\": \"h\", \"port\": 81}, {\"hostname\": \"h\", \"port\": 80}]}",
              "backends[2].id");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [{\"hostname\": \"h\", \"port\": 80}, "
              "{\"id\": \"h:80\", \"hostname\": \"g\", \"port\": 1}]}",
              "backends[1].id");
}

//  The route model's rules the router used to apply differently from apid:
//  each of these was accepted by the router and refused by apid.
static void
test_shared_model(void **state)
{
    (void) state;
    // vHost labels: no leading or trailing '-', at most 63 bytes; 253 bytes in all
    s_refused("{\"vHost\": \"-a.com\", \"backends\": []}", "vHost");
    s_refused("{\"vHost\": \"a-.com\", \"backends\": []}", "vHost");
    s_refused("{\"vHost\": \"*.-a.com\", \"backends\": []}", "vHost");
    char text[600];
    char label[70];
    memset(label, 'a', 64);
    label[64] = '\0';
    snprintf(text, sizeof text, "{\"vHost\": \"%s.com\", \"backends\": []}", label);
    s_refused(text, "vHost");
    // hostnames: a host name or an IP address, nothing else printable
    static const char *const bad_hosts[] = {"h:80", "a!b", "-h", "a..b", "[h]", "[::1", "h/x"};
    for (size_t i = 0; i < sizeof bad_hosts / sizeof bad_hosts[0]; i++) {
        snprintf(text, sizeof text,
                 "{\"vHost\": \"a.com\", \"backends\": [{\"hostname\": \"%s\", \"port\": 80}]}",
                 bad_hosts[i]);
        s_refused(text, "backends[0].hostname");
    }
    // numbers: apid's bounds
    s_refused("{\"vHost\": \"a.com\", \"backends\": [{\"hostname\": \"h\", \"port\": 80, "
              "\"weight\": 1001}]}",
              "backends[0].weight");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"retries\": 11}", "retries");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"reqActiveLength\": 0}",
              "reqActiveLength");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"reqQueueLength\": 1000001}",
              "reqQueueLength");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"timeoutMs\": 3600001}", "timeoutMs");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"queueTimeoutMs\": 3600001}",
              "queueTimeoutMs");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"maxBodyBytes\": 0}", "maxBodyBytes");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"maxBodyBytes\": 1073741825}",
              "maxBodyBytes");
    // ids: a backend id is a path segment of the API
    s_refused("{\"vHost\": \"a.com\", \"backends\": [{\"id\": \"a/b\", \"hostname\": \"h\", "
              "\"port\": 80}]}",
              "backends[0].id");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [{\"id\": \"50%\", \"hostname\": \"h\", "
              "\"port\": 80}]}",
              "backends[0].id");
    // headers: framing headers, duplicates ignoring case, control characters
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"headers\": {\"Connection\": \"x\"}}",
              "headers.Connection");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"headers\": {\"X-A\": \"1\", "
              "\"x-a\": \"2\"}}",
              "headers.x-a");
    s_refused("{\"vHost\": \"a.com\", \"backends\": [], \"headers\": {\"X-A\": \"a\\u0001\"}}",
              "headers.X-A");

    // accepted alike: a route id with a space (apid's rule), an IPv6
    // hostname in brackets stored bare, with apid's default id "[v6]:port"
    rt_error_t err = {.message = ""};
    rt_route_t *route = s_parse("{\"id\": \"service a\", \"vHost\": \"A_B.example.com\", "
                                "\"backends\": [{\"hostname\": \"[::1]\", \"port\": 80}, "
                                "{\"hostname\": \"fe80::2\", \"port\": 81, \"weight\": 1000}], "
                                "\"headers\": {\"X-Tab\": \"a\\tb\"}}",
                                &err);
    if (route == NULL)
        fail_msg("%s (%s)", err.message, err.field);
    assert_string_equal(route->id, "service a");
    assert_string_equal(route->vhost, "a_b.example.com");
    assert_string_equal(route->backends[0].host, "::1");
    assert_string_equal(route->backends[0].id, "[::1]:80");
    assert_string_equal(route->backends[1].id, "[fe80::2]:81");
    assert_int_equal(route->backends[1].weight, 1000);
    rt_route_unref(&route);
}

static void
test_too_many(void **state)
{
    (void) state;
    json_t *json = json_pack("{s:s, s:[], s:{}}", "vHost", "a.com", "backends", "headers");
    json_t *backends = json_object_get(json, "backends");
    for (int i = 0; i <= PROTO_ROUTE_BACKENDS_MAX; i++)
        json_array_append_new(backends, json_pack("{s:s, s:i}", "hostname", "h", "port", i + 1));
    rt_error_t err = {.message = ""};
    assert_null(rt_route_new(json, "1", &err));
    assert_string_equal(err.field, "backends");
    json_array_remove(backends, 0);
    rt_route_t *route = rt_route_new(json, "1", &err); // exactly the maximum
    assert_non_null(route);
    rt_route_unref(&route);
    json_t *headers = json_object_get(json, "headers");
    for (int i = 0; i <= PROTO_ROUTE_HEADERS_MAX; i++) {
        char name[16];
        snprintf(name, sizeof name, "X-%d", i);
        json_object_set_new(headers, name, json_string("v"));
    }
    assert_null(rt_route_new(json, "1", &err));
    assert_string_equal(err.field, "headers");
    json_decref(json);
}

static void
test_backend_normalize(void **state)
{
    (void) state;
    rt_error_t err = {.message = ""};
    json_t *in = json_pack("{s:s, s:i, s:b}", "hostname", "10.1.1.1", "port", 8080, "isDead", 1);
    json_t *out = rt_route_backend_normalize(in, "7", "", &err);
    assert_non_null(out);
    assert_string_equal(json_string_value(json_object_get(out, "id")), "10.1.1.1:8080");
    assert_string_equal(json_string_value(json_object_get(out, "region")), "7");
    assert_int_equal(json_integer_value(json_object_get(out, "weight")), 1);
    assert_null(json_object_get(out, "isDead"));
    json_decref(out);
    json_object_set_new(in, "port", json_integer(0));
    assert_null(rt_route_backend_normalize(in, "7", "", &err));
    assert_string_equal(err.field, "port");
    json_decref(in);
}

static void
test_runtime_views_and_state(void **state)
{
    (void) state;
    rt_error_t err = {.message = ""};
    rt_route_t *route = s_parse("{\"vHost\": \"a.com\", \"backends\": [{\"id\": \"x\", "
                                "\"hostname\": \"h\", \"port\": 1}, {\"id\": \"y\", "
                                "\"hostname\": \"h\", \"port\": 2}], \"maintenance\": [\"x\"]}",
                                &err);
    assert_non_null(route);
    // "maintenance" in a body is never taken: only the store sets it
    assert_false(route->backends[0].maint);
    assert_null(json_object_get(route->doc, "maintenance"));
    assert_int_equal(rt_route_find_backend(route, "y"), 1);
    assert_int_equal(rt_route_find_backend(route, "z"), -1);

    rt_route_set_maint(route, 1, true, 1700000000123ull);
    assert_true(route->pick[1].maint);
    json_t *api = rt_route_to_api(route, NULL);
    json_t *b0 = json_array_get(json_object_get(api, "backends"), 0);
    json_t *b1 = json_array_get(json_object_get(api, "backends"), 1);
    assert_true(json_is_false(json_object_get(b0, "isDead")));
    assert_true(json_is_null(json_object_get(b0, "deadSince")));
    assert_int_equal(json_integer_value(json_object_get(b0, "failureCount")), 0);
    assert_true(json_is_null(json_object_get(b0, "latencyMs")));
    assert_true(json_is_true(json_object_get(b1, "isDead")));
    assert_int_equal(json_integer_value(json_object_get(b1, "deadSince")), 1700000000123ll);
    json_decref(api);
    assert_null(json_object_get(json_array_get(json_object_get(route->doc, "backends"), 1),
                                "isDead")); // the view is a copy

    json_t *one = rt_route_backend_to_api(route, 1, NULL);
    assert_string_equal(json_string_value(json_object_get(one, "id")), "y");
    assert_true(json_is_true(json_object_get(one, "isDead")));
    json_decref(one);

    // healthd's verdicts (by route id and backend id): x down since 5 with 3
    // failures; y's maintenance wins over a verdict up
    proto_pairs_t *health = proto_pairs_new(sizeof(rt_runtime_t), 16);
    *(rt_runtime_t *) proto_pairs_put(health, "a.com", "x", NULL) =
        (rt_runtime_t){.up = false, .since_ms = 5, .failures = 3};
    *(rt_runtime_t *) proto_pairs_put(health, "a.com", "y", NULL) =
        (rt_runtime_t){.up = true, .since_ms = 7, .failures = 0};
    *(rt_runtime_t *) proto_pairs_put(health, "b.com", "x", NULL) = (rt_runtime_t){.up = true};
    api = rt_route_to_api(route, health);
    b0 = json_array_get(json_object_get(api, "backends"), 0);
    b1 = json_array_get(json_object_get(api, "backends"), 1);
    assert_true(json_is_true(json_object_get(b0, "isDead")));
    assert_int_equal(json_integer_value(json_object_get(b0, "deadSince")), 5);
    assert_int_equal(json_integer_value(json_object_get(b0, "failureCount")), 3);
    assert_true(json_is_true(json_object_get(b1, "isDead")));
    assert_int_equal(json_integer_value(json_object_get(b1, "deadSince")), 1700000000123ll);
    json_decref(api);
    one = rt_route_backend_to_api(route, 0, health);
    assert_true(json_is_true(json_object_get(one, "isDead")));
    json_decref(one);
    // back up: alive again, its failures as healthd says
    *(rt_runtime_t *) proto_pairs_get(health, "a.com", "x") =
        (rt_runtime_t){.up = true, .since_ms = 9};
    one = rt_route_backend_to_api(route, 0, health);
    assert_true(json_is_false(json_object_get(one, "isDead")));
    assert_true(json_is_null(json_object_get(one, "deadSince")));
    json_decref(one);
    proto_pairs_destroy(&health);

    json_t *stored = rt_route_to_store(route);
    json_t *maint = json_object_get(stored, "maintenance");
    assert_int_equal(json_array_size(maint), 1);
    assert_string_equal(json_string_value(json_array_get(maint, 0)), "y");
    json_decref(stored);
    assert_null(json_object_get(route->doc, "maintenance"));

    // a rebuild carries maintenance over by backend id
    json_t *doc = json_deep_copy(route->doc);
    json_array_remove(json_object_get(doc, "backends"), 0);
    rt_route_t *next = rt_route_rebuild(route, doc, "1", &err);
    assert_non_null(next);
    assert_int_equal(next->backends_count, 1);
    assert_string_equal(next->backends[0].id, "y");
    assert_true(next->backends[0].maint);
    assert_int_equal(next->backends[0].maint_since, 1700000000123ull);
    assert_true(next->pick[0].maint);
    rt_route_unref(&next);
    rt_route_unref(&route);
}

static void
test_valid_vhost(void **state)
{
    (void) state;
    assert_true(proto_route_valid_vhost("*"));
    assert_true(proto_route_valid_vhost("localhost"));
    assert_true(proto_route_valid_vhost("*.a"));
    assert_true(proto_route_valid_vhost("a-b.c_d.example.com"));
    assert_false(proto_route_valid_vhost(""));
    assert_false(proto_route_valid_vhost("**"));
    assert_false(proto_route_valid_vhost("*."));
    assert_false(proto_route_valid_vhost(".a.com"));
    assert_false(proto_route_valid_vhost("*.*.a.com"));
    assert_false(proto_route_valid_vhost("a/b"));
    char big[300];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_false(proto_route_valid_vhost(big));
}

//  rt_policy: tiers resolved, explicit limits, auth_id, credentials left
//  out of a lease when the gateway holds them, bad policy refused.
static void
test_policy(void **state)
{
    (void) state;
    rt_error_t err;
    rt_route_t *r =
        s_parse("{\"vHost\":\"p.test\",\"backends\":[],\"rateLimit\":{\"tier\":\"strict\"},"
                "\"autoHttps\":true,\"securityHeaders\":true,"
                "\"cors\":{\"origins\":[\"https://a.test\"]},"
                "\"auth\":{\"type\":\"basic\",\"users\":{\"al\":\"$6$s$h\",\"bo\":\"$5$s$h\"}},"
                "\"authProvider\":\"http://127.0.0.1:1/check\"}",
                &err);
    assert_non_null(r);
    const rt_policy_t *p = &r->policy;
    assert_true(p->auto_https && p->sec_headers);
    assert_int_equal(p->rl_requests, 20);
    assert_int_equal(p->rl_window_s, 900);
    assert_int_equal(p->rl_burst, 10);
    assert_string_equal(p->rl_key, "ip");
    assert_string_equal(p->cors, "{\"origins\":[\"https://a.test\"]}");
    assert_string_equal(p->auth, "basic");
    assert_int_equal(p->users_count, 2);
    assert_int_equal(strlen(p->auth_id), 64);
    assert_int_equal(p->auth_cache_ms, PROTO_ROUTE_AUTH_CACHE_MS_DEFAULT);
    assert_string_equal(p->auth_provider, "http://127.0.0.1:1/check");

    // the same auth with its keys in another order: the same id
    rt_route_t *r2 =
        s_parse("{\"vHost\":\"p.test\",\"backends\":[],"
                "\"auth\":{\"users\":{\"bo\":\"$5$s$h\",\"al\":\"$6$s$h\"},\"type\":\"basic\"}}",
                &err);
    assert_non_null(r2);
    assert_string_equal(r2->policy.auth_id, p->auth_id);
    assert_int_equal(r2->policy.rl_requests, 0);
    assert_null(r2->policy.cors);

    proto_lease_t lease = {0};
    rt_policy_to_lease(p, &lease, NULL);
    assert_int_equal(lease.auth_users_count, 2);
    assert_string_equal(lease.auth_id, p->auth_id);
    memset(&lease, 0, sizeof lease);
    rt_policy_to_lease(p, &lease, p->auth_id); // held: not sent again
    assert_int_equal(lease.auth_users_count, 0);
    assert_string_equal(lease.auth_id, p->auth_id);
    memset(&lease, 0, sizeof lease);
    rt_policy_to_lease(p, &lease, "0000"); // another id: sent
    assert_int_equal(lease.auth_users_count, 2);
    rt_route_unref(&r);
    rt_route_unref(&r2);

    r = s_parse("{\"vHost\":\"p.test\",\"backends\":[],\"rateLimit\":{\"requests\":5,"
                "\"windowSeconds\":60,\"key\":\"user\",\"burstPerSecond\":0},"
                "\"auth\":{\"type\":\"bearer\",\"tokens\":[\"" // 64 hex digits
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"]}}",
                &err);
    assert_non_null(r);
    assert_int_equal(r->policy.rl_requests, 5);
    assert_int_equal(r->policy.rl_window_s, 60);
    assert_int_equal(r->policy.rl_burst, 0);
    assert_string_equal(r->policy.rl_key, "user");
    assert_string_equal(r->policy.auth, "bearer");
    assert_int_equal(r->policy.tokens_count, 1);
    rt_route_unref(&r);

    s_refused("{\"vHost\":\"p.test\",\"backends\":[],\"rateLimit\":{\"tier\":\"huge\"}}",
              "rateLimit.tier");
    s_refused("{\"vHost\":\"p.test\",\"backends\":[],\"rateLimit\":{\"requests\":0,"
              "\"windowSeconds\":60}}",
              "rateLimit.requests");
    s_refused("{\"vHost\":\"p.test\",\"backends\":[],\"auth\":{\"type\":\"digest\"}}", "auth.type");
    s_refused("{\"vHost\":\"p.test\",\"backends\":[],\"auth\":{\"type\":\"bearer\","
              "\"tokens\":[\"abc\"]}}",
              "auth.tokens");
    s_refused("{\"vHost\":\"p.test\",\"backends\":[],\"cors\":[1]}", "cors");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_route),
        cmocka_unit_test(test_empty_backends_and_null_fields),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_shared_model),
        cmocka_unit_test(test_too_many),
        cmocka_unit_test(test_backend_normalize),
        cmocka_unit_test(test_runtime_views_and_state),
        cmocka_unit_test(test_valid_vhost),
        cmocka_unit_test(test_policy),
    };
    return cmocka_run_group_tests_name("rt_route", tests, NULL, NULL);
}
