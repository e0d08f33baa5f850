/*  test_route_json - unit tests for api_route and api_json: the route model's
    validation and normalization (SPEC §4, §5).

    A table of bodies with the exact error code and field each must get, then
    the normalized output (every field, defaults, SPEC §4's order), the
    GET -> edit -> PUT round trip with read-only fields, a PUT's path vHost,
    the single-backend body of POST .../backends, and the document-order
    rules when a duplicate key or a number too big meets another bad field.

    Decisions pinned here: an integral real (80.0, 1e3) is accepted for an
    integer field and stored as an integer; enums are case-sensitive; a
    string that is empty, too long or malformed is invalid_value; a count
    over its bound (backends, headers, users, tokens) is out_of_range on the
    container; a missing required field is reported after every field that
    is present in its object (it would have been written at the end).
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

#include "t_pki.h"
#include "../../apid/api_route.h"

//  Parse a route body; on failure return NULL with err filled.
static json_t *
t_route(const char *text, const char *path_vhost, api_error_t *err)
{
    memset(err, 0, sizeof *err);
    return api_route_parse(text, strlen(text), path_vhost, err);
}

//  The body must fail with exactly this code and field.
static void
t_expect(const char *text, const char *code, const char *field)
{
    api_error_t err;
    json_t *out = t_route(text, NULL, &err);
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

//  The body must be accepted; returns the normalized text (caller frees).
static char *
t_accept(const char *text, const char *path_vhost)
{
    api_error_t err;
    json_t *out = t_route(text, path_vhost, &err);
    if (out == NULL)
        fail_msg("refused: %s\n  %s on '%s': %s", text, err.code, err.field, err.message);
    char *s = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    return s;
}

static void
t_accept_as(const char *text, const char *expected)
{
    char *s = t_accept(text, NULL);
    if (strcmp(s, expected) != 0)
        fail_msg("%s\n  got      %s\n  expected %s", text, s, expected);
    free(s);
}

#define V  "\"vHost\":\"a.com\","
#define B0 "\"backends\":[]"

typedef struct {
    const char *body;  // the request body
    const char *code;  // expected error code
    const char *field; // expected field
} t_case_t;

static const t_case_t t_bad[] = {
    // not JSON, or not an object
    {"", "invalid_json", ""},
    {"   ", "invalid_json", ""},
    {"{", "invalid_json", ""},
    {"{\"vHost\":\"a.com\",}", "invalid_json", ""},
    {"{\"vHost\":\"a.com\"} x", "invalid_json", ""},
    {"{\"vHost\":'a.com'}", "invalid_json", ""},
    {"{\"vHost\":\"a\\u0000.com\"," B0 "}", "invalid_json", ""},
    {"[]", "invalid_type", ""},
    {"\"a.com\"", "invalid_type", ""},
    {"null", "invalid_type", ""},
    // duplicate keys, anywhere
    {"{\"vHost\":\"a.com\",\"vHost\":\"b.com\"," B0 "}", "duplicate_key", "vHost"},
    {"{" V B0 ",\"retries\":1,\"retries\":2}", "duplicate_key", "retries"},
    {"{" V "\"backends\":[{\"hostname\":\"h\",\"port\":1,\"port\":2}]}", "duplicate_key",
     "backends[0].port"},
    {"{" V "\"headers\":{\"X-Env\":\"a\",\"X-Env\":\"b\"}," B0 "}", "duplicate_key",
     "headers.X-Env"},
    {"{" V "\"headers\":{\"X-Env\":\"a\",\"x-env\":\"b\"}," B0 "}", "duplicate_key",
     "headers.x-env"},
    // unknown fields
    {"{" V B0 ",\"foo\":1}", "unknown_field", "foo"},
    {"{" V B0 ",\"vhost\":\"a.com\"}", "unknown_field", "vhost"},
    {"{" V B0 ",\"isDead\":false}", "unknown_field", "isDead"},
    {"{" V "\"backends\":[{\"hostname\":\"h\",\"port\":1,\"host\":\"x\"}]}", "unknown_field",
     "backends[0].host"},
    {"{" V B0 ",\"ssl\":{\"key\":\"-----BEGIN K\",\"cert\":\"-----BEGIN C\",\"ca\":\"\"}}",
     "unknown_field", "ssl.ca"},
    {"{" V B0 ",\"rateLimit\":{\"tier\":\"general\",\"requests\":5}}", "unknown_field",
     "rateLimit.requests"},
    {"{" V B0 ",\"auth\":{\"type\":\"bearer\",\"users\":{}}}", "unknown_field", "auth.users"},
    // wrong types
    {"{\"vHost\":5," B0 "}", "invalid_type", "vHost"},
    {"{" V "\"backends\":{}}", "invalid_type", "backends"},
    {"{" V "\"backends\":[\"h:80\"]}", "invalid_type", "backends[0]"},
    {"{" V "\"backends\":[{\"hostname\":\"h\",\"port\":\"80\"}]}", "invalid_type",
     "backends[0].port"},
    {"{" V "\"backends\":[{\"hostname\":\"h\",\"port\":80.5}]}", "invalid_type",
     "backends[0].port"},
    {"{" V "\"backends\":[{\"hostname\":\"h\",\"port\":true}]}", "invalid_type",
     "backends[0].port"},
    {"{" V "\"backends\":[{\"hostname\":7,\"port\":80}]}", "invalid_type", "backends[0].hostname"},
    {"{" V "\"backends\":[{\"hostname\":\"h\",\"port\":80,\"weight\":null}]}", "invalid_type",
     "backends[0].weight"},
    {"{" V B0 ",\"autoHttps\":\"yes\"}", "invalid_type", "autoHttps"},
    {"{" V B0 ",\"strategy\":1}", "invalid_type", "strategy"},
    {"{" V B0 ",\"headers\":[]}", "invalid_type", "headers"},
    {"{" V B0 ",\"headers\":{\"X-A\":1}}", "invalid_type", "headers.X-A"},
    {"{" V B0 ",\"auth\":\"basic\"}", "invalid_type", "auth"},
    {"{" V B0 ",\"rateLimit\":100}", "invalid_type", "rateLimit"},
    {"{" V B0 ",\"healthPath\":null}", "invalid_type", "healthPath"},
    {"{" V B0 ",\"ssl\":\"pem\"}", "invalid_type", "ssl"},
    {"{" V B0 ",\"id\":[]}", "invalid_type", "id"},
    // out of range
    {"{" V "\"backends\":[{\"hostname\":\"h\",\"port\":0}]}", "out_of_range", "backends[0].port"},
    {"{" V "\"backends\":[{\"hostname\":\"h\",\"port\":65536}]}", "out_of_range",
     "backends[0].port"},
    {"{" V "\"backends\":[{\"hostname\":\"h\",\"port\":-1}]}", "out_of_range", "backends[0].port"},
    {"{" V "\"backends\":[{\"hostname\":\"h\",\"port\":99999999999999999999}]}", "out_of_range",
     "backends[0].port"},
    {"{" V "\"backends\":[{\"hostname\":\"h\",\"port\":1e400}]}", "out_of_range",
     "backends[0].port"},
    {"{" V "\"backends\":[{\"hostname\":\"h\",\"port\":1e300}]}", "out_of_range",
     "backends[0].port"},
    {"{" V "\"backends\":[{\"hostname\":\"h\",\"port\":80,\"weight\":0}]}", "out_of_range",
     "backends[0].weight"},
    {"{" V "\"backends\":[{\"hostname\":\"h\",\"port\":80,\"weight\":1001}]}", "out_of_range",
     "backends[0].weight"},
    {"{" V B0 ",\"retries\":11}", "out_of_range", "retries"},
    {"{" V B0 ",\"timeoutMs\":0}", "out_of_range", "timeoutMs"},
    {"{" V B0 ",\"timeoutMs\":3600001}", "out_of_range", "timeoutMs"},
    {"{" V B0 ",\"reqActiveLength\":0}", "out_of_range", "reqActiveLength"},
    {"{" V B0 ",\"reqQueueLength\":-1}", "out_of_range", "reqQueueLength"},
    {"{" V B0 ",\"queueTimeoutMs\":-5}", "out_of_range", "queueTimeoutMs"},
    {"{" V B0 ",\"maxBodyBytes\":0}", "out_of_range", "maxBodyBytes"},
    {"{" V B0 ",\"maxBodyBytes\":1073741825}", "out_of_range", "maxBodyBytes"},
    {"{" V B0 ",\"authCacheMs\":3600001}", "out_of_range", "authCacheMs"},
    {"{" V B0 ",\"rateLimit\":{\"requests\":0,\"windowSeconds\":60}}", "out_of_range",
     "rateLimit.requests"},
    {"{" V B0 ",\"rateLimit\":{\"requests\":10,\"windowSeconds\":0}}", "out_of_range",
     "rateLimit.windowSeconds"},
    {"{" V B0 ",\"auth\":{\"type\":\"bearer\",\"tokens\":[]}}", "out_of_range", "auth.tokens"},
    // invalid values
    {"{\"vHost\":\"\"," B0 "}", "invalid_value", "vHost"},
    {"{\"vHost\":\"a..com\"," B0 "}", "invalid_value", "vHost"},
    {"{\"vHost\":\"a.*.com\"," B0 "}", "invalid_value", "vHost"},
    {"{\"vHost\":\"a.com:8080\"," B0 "}", "invalid_value", "vHost"},
    {"{\"vHost\":\"-a.com\"," B0 "}", "invalid_value", "vHost"},
    {"{\"vHost\":\"a b.com\"," B0 "}", "invalid_value", "vHost"},
    {"{\"vHost\":\"**\"," B0 "}", "invalid_value", "vHost"},
    {"{" V B0 ",\"strategy\":\"FASTEST\"}", "invalid_value", "strategy"},
    {"{" V B0 ",\"strategy\":\"round_robin\"}", "invalid_value", "strategy"},
    {"{" V B0 ",\"id\":\"\"}", "invalid_value", "id"},
    {"{" V "\"backends\":[{\"hostname\":\"\",\"port\":80}]}", "invalid_value",
     "backends[0].hostname"},
    {"{" V "\"backends\":[{\"hostname\":\"a b\",\"port\":80}]}", "invalid_value",
     "backends[0].hostname"},
    {"{" V "\"backends\":[{\"hostname\":\"h/x\",\"port\":80}]}", "invalid_value",
     "backends[0].hostname"},
    // hostnames the router took before it shared apid's rule (proto_route)
    {"{" V "\"backends\":[{\"hostname\":\"h:80\",\"port\":80}]}", "invalid_value",
     "backends[0].hostname"},
    {"{" V "\"backends\":[{\"hostname\":\"a!b\",\"port\":80}]}", "invalid_value",
     "backends[0].hostname"},
    {"{" V "\"backends\":[{\"hostname\":\"h\",\"port\":80,\"probe\":\"icmp\"}]}", "invalid_value",
     "backends[0].probe"},
    {"{" V "\"backends\":[{\"hostname\":\"h\",\"port\":80,\"region\":\"\"}]}", "invalid_value",
     "backends[0].region"},
    {"{" V "\"backends\":[{\"hostname\":\"h\",\"port\":80,\"region\":\"eu 1\"}]}", "invalid_value",
     "backends[0].region"},
    {"{" V "\"backends\":[{\"hostname\":\"h\",\"port\":80,\"region\":\"r\\u00e9gion\"}]}",
     "invalid_value", "backends[0].region"},
    {"{" V "\"backends\":[{\"id\":\"a/b\",\"hostname\":\"h\",\"port\":80}]}", "invalid_value",
     "backends[0].id"},
    {"{" V B0 ",\"headers\":{\"Bad Name\":\"x\"}}", "invalid_value", "headers.Bad Name"},
    {"{" V B0 ",\"headers\":{\"X-Env\":\"a\\r\\nInjected: 1\"}}", "invalid_value", "headers.X-Env"},
    {"{" V B0 ",\"headers\":{\"Content-Length\":\"5\"}}", "invalid_value",
     "headers.Content-Length"},
    {"{" V B0 ",\"auth\":{\"type\":\"digest\"}}", "invalid_value", "auth.type"},
    {"{" V B0 ",\"auth\":{\"type\":\"basic\",\"users\":{\"alice\":\"plain\"}}}", "invalid_value",
     "auth.users.alice"},
    {"{" V B0 ",\"auth\":{\"type\":\"basic\",\"users\":{\"a:b\":\"$6$s$h\"}}}", "invalid_value",
     "auth.users.a:b"},
    {"{" V B0 ",\"auth\":{\"type\":\"bearer\",\"tokens\":[\"abc\"]}}", "invalid_value",
     "auth.tokens[0]"},
    {"{" V B0 ",\"authProvider\":\"ftp://auth\"}", "invalid_value", "authProvider"},
    {"{" V B0 ",\"authProvider\":\"http://\"}", "invalid_value", "authProvider"},
    {"{" V B0 ",\"rateLimit\":{\"tier\":\"gold\"}}", "invalid_value", "rateLimit.tier"},
    {"{" V B0 ",\"rateLimit\":{\"requests\":5,\"windowSeconds\":9,\"key\":\"ua\"}}",
     "invalid_value", "rateLimit.key"},
    {"{" V B0 ",\"chatPath\":\"chat\"}", "invalid_value", "chatPath"},
    {"{" V B0 ",\"cors\":{\"origins\":[\"https://A.example\"]}}", "invalid_value",
     "cors.origins[0]"},
    {"{" V B0 ",\"cors\":{\"origins\":[\"https://a.example/path\"]}}", "invalid_value",
     "cors.origins[0]"},
    {"{" V B0 ",\"cors\":{\"origins\":[\"*\"],\"credentials\":true}}", "invalid_value",
     "cors.credentials"},
    {"{" V B0 ",\"cors\":{\"origins\":[\"*\"],\"headers\":[\"a b\"]}}", "invalid_value",
     "cors.headers[0]"},
    {"{" V B0 ",\"cors\":{\"origins\":[]}}", "out_of_range", "cors.origins"},
    {"{" V B0 ",\"cors\":{\"methods\":[\"GET\"]}}", "missing_field", "cors.origins"},
    {"{" V B0 ",\"cors\":{\"origins\":[\"*\"],\"maxAge\":86401}}", "out_of_range", "cors.maxAge"},
    {"{" V B0 ",\"cors\":\"*\"}", "invalid_type", "cors"},
    {"{" V B0 ",\"securityHeaders\":1}", "invalid_type", "securityHeaders"},
    {"{" V B0 ",\"chatPath\":\"/chat?x=1\"}", "invalid_value", "chatPath"},
    {"{" V B0 ",\"healthPath\":\"\"}", "invalid_value", "healthPath"},
    {"{" V B0 ",\"healthPath\":\"/a b\"}", "invalid_value", "healthPath"},
    {"{" V B0 ",\"ssl\":{\"key\":\"not pem\",\"cert\":\"-----BEGIN C\"}}", "invalid_value",
     "ssl.key"},
    // missing fields
    {"{}", "missing_field", "vHost"},
    {"{\"vHost\":\"a.com\"}", "missing_field", "backends"},
    {"{" V "\"backends\":[{\"port\":80}]}", "missing_field", "backends[0].hostname"},
    {"{" V "\"backends\":[{\"hostname\":\"h\"}]}", "missing_field", "backends[0].port"},
    {"{" V B0 ",\"auth\":{\"users\":{\"a\":\"$6$s$h\"}}}", "missing_field", "auth.type"},
    {"{" V B0 ",\"auth\":{\"type\":\"basic\"}}", "missing_field", "auth.users"},
    {"{" V B0 ",\"rateLimit\":{}}", "missing_field", "rateLimit.requests"},
    {"{" V B0 ",\"rateLimit\":{\"requests\":100}}", "missing_field", "rateLimit.windowSeconds"},
    {"{" V B0 ",\"ssl\":{\"key\":\"-----BEGIN K\"}}", "missing_field", "ssl.cert"},
    // duplicate backend ids: the second one is named
    {"{" V "\"backends\":[{\"id\":\"n\",\"hostname\":\"h\",\"port\":1},"
     "{\"id\":\"n\",\"hostname\":\"g\",\"port\":2}]}",
     "duplicate_id", "backends[1].id"},
    {"{" V "\"backends\":[{\"hostname\":\"h\",\"port\":1},{\"hostname\":\"h\",\"port\":1}]}",
     "duplicate_id", "backends[1].id"},
    {"{" V "\"backends\":[{\"hostname\":\"h\",\"port\":1},{\"id\":\"h:1\",\"hostname\":\"g\","
     "\"port\":2}]}",
     "duplicate_id", "backends[1].id"},
    // the first bad field in document order
    {"{" V "\"backends\":[{\"hostname\":\"\",\"port\":0}]}", "invalid_value",
     "backends[0].hostname"},
    {"{" V "\"backends\":[{\"port\":0,\"hostname\":\"\"}]}", "out_of_range", "backends[0].port"},
    {"{\"retries\":99,\"vHost\":5}", "out_of_range", "retries"},
    {"{\"vHost\":5,\"retries\":99}", "invalid_type", "vHost"},
    {"{\"foo\":1}", "unknown_field", "foo"},
    {"{" V "\"backends\":[{\"hostname\":\"h\",\"port\":1},{\"id\":\"h:1\",\"port\":0}]}",
     "duplicate_id", "backends[1].id"},
    {"{" V "\"backends\":[{\"hostname\":\"h\",\"port\":1},{\"port\":0,\"id\":\"h:1\"}]}",
     "out_of_range", "backends[1].port"},
    // a duplicate key or a number too big against another bad field
    {"{\"vHost\":5,\"retries\":1,\"retries\":2}", "invalid_type", "vHost"},
    {"{\"retries\":1,\"retries\":2,\"vHost\":5}", "duplicate_key", "retries"},
    {"{\"backends\":[{\"hostname\":\"h\",\"port\":0}],\"vHost\":\"a.com\",\"vHost\":\"b.com\"}",
     "out_of_range", "backends[0].port"},
    {"{\"backends\":[{\"port\":1,\"port\":0}],\"backends\":[]}", "duplicate_key",
     "backends[0].port"},
    {"{\"backends\":[],\"backends\":[]}", "duplicate_key", "backends"},
    {"{\"vHost\":5,\"retries\":1e400}", "invalid_type", "vHost"},
    {"{\"retries\":1e400,\"vHost\":5}", "out_of_range", "retries"},
    {"{\"retries\":1e400,\"retries\":1}", "out_of_range", "retries"},
    {"{\"a\":1,\"a\":2,\"retries\":1e400}", "duplicate_key", "a"},
    {"{\"retries\":1e400,\"vHost\":\"a.com\"," B0 "} x", "invalid_json", ""},
};

static void
test_bad_bodies(void **state)
{
    (void) state;
    for (size_t i = 0; i < sizeof t_bad / sizeof t_bad[0]; i++)
        t_expect(t_bad[i].body, t_bad[i].code, t_bad[i].field);
}

//  jansson iterates in insertion order, which is what document order needs.
static void
test_jansson_keeps_document_order(void **state)
{
    (void) state;
    const char *text = "{\"z\":1,\"a\":2,\"m\":3,\"b\":4,\"y\":5,\"c\":6,\"x\":7,\"d\":8}";
    json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(doc);
    const char *want[] = {"z", "a", "m", "b", "y", "c", "x", "d"};
    size_t i = 0;
    const char *key;
    json_t *value;
    json_object_foreach(doc, key, value)
    {
        assert_true(i < 8);
        assert_string_equal(key, want[i]);
        i++;
    }
    assert_int_equal(i, 8);
    json_decref(doc);
}

static void
test_defaults_filled(void **state)
{
    (void) state;
    t_accept_as(
        "{\"vHost\":\"API.Example.com\",\"backends\":[{\"hostname\":\"10.0.0.1\","
        "\"port\":3000}]}",
        "{\"id\":\"api.example.com\",\"vHost\":\"api.example.com\",\"strategy\":\"ROUND_ROBIN\","
        "\"autoHttps\":false,\"reqActiveLength\":50,\"reqQueueLength\":100,\"retries\":2,"
        "\"timeoutMs\":30000,\"queueTimeoutMs\":30000,\"maxBodyBytes\":10485760,\"headers\":{},"
        "\"auth\":null,\"authProvider\":null,\"authCacheMs\":5000,\"rateLimit\":null,"
        "\"securityHeaders\":false,\"cors\":null,\"chatPath\":null,\"healthPath\":\"/"
        "\",\"backends\":[{\"id\":\"10.0.0.1:3000\","
        "\"hostname\":\"10.0.0.1\",\"port\":3000,\"weight\":1,\"probe\":\"http\"}],"
        "\"ssl\":null}");
    // queueTimeoutMs follows timeoutMs; an empty backends list is a route
    char *s = t_accept("{\"backends\":[],\"timeoutMs\":5000,\"vHost\":\"*\"}", NULL);
    assert_non_null(strstr(s, "\"timeoutMs\":5000,\"queueTimeoutMs\":5000"));
    assert_non_null(strstr(s, "\"backends\":[]"));
    assert_non_null(strstr(s, "\"id\":\"*\",\"vHost\":\"*\""));
    free(s);
}

static void
test_full_route_normalized(void **state)
{
    (void) state;
    // written in another order, with every field: comes out in SPEC §4's order
    t_accept_as(
        "{\"ssl\":null,\"backends\":[{\"probe\":\"tcp\",\"region\":\"2\",\"weight\":3,"
        "\"port\":3000.0,\"hostname\":\"node1.internal\",\"id\":\"node-1\"},"
        "{\"hostname\":\"[::1]\",\"port\":1e3}],"
        "\"cors\":{\"credentials\":true,\"methods\":[\"GET\"],\"origins\":[\"https://a.example\"]},"
        "\"securityHeaders\":true,"
        "\"healthPath\":\"/healthz?full=1\",\"chatPath\":\"/chat\",\"rateLimit\":{\"requests\":100,"
        "\"windowSeconds\":900},\"authCacheMs\":0,\"authProvider\":\"https://auth.local/check\","
        "\"auth\":{\"tokens\":["
        "\"ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789\"],"
        "\"type\":\"bearer\"},\"headers\":{\"X-Env\":\"prod\",\"X-Team\":\"a\\tb\"},"
        "\"maxBodyBytes\":1024,\"queueTimeoutMs\":0,\"timeoutMs\":1,\"retries\":0,"
        "\"reqQueueLength\":0,\"reqActiveLength\":1000000,\"autoHttps\":true,"
        "\"strategy\":\"LEAST_LATENCY\",\"vHost\":\"*.Example.COM\",\"id\":\"service-a\"}",
        "{\"id\":\"service-a\",\"vHost\":\"*.example.com\",\"strategy\":\"LEAST_LATENCY\","
        "\"autoHttps\":true,\"reqActiveLength\":1000000,\"reqQueueLength\":0,\"retries\":0,"
        "\"timeoutMs\":1,\"queueTimeoutMs\":0,\"maxBodyBytes\":1024,\"headers\":{\"X-Env\":"
        "\"prod\",\"X-Team\":\"a\\tb\"},\"auth\":{\"type\":\"bearer\",\"tokens\":["
        "\"abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789\"]},"
        "\"authProvider\":\"https://auth.local/check\",\"authCacheMs\":0,\"rateLimit\":{"
        "\"requests\":100,\"windowSeconds\":900,\"key\":\"ip\",\"burstPerSecond\":0},"
        "\"securityHeaders\":true,\"cors\":{\"origins\":[\"https://a.example\"],\"methods\":["
        "\"GET\"],\"headers\":[],\"exposeHeaders\":[],\"credentials\":true,\"maxAge\":600},"
        "\"chatPath\":\"/chat\",\"healthPath\":\"/healthz?full=1\",\"backends\":[{\"id\":"
        "\"node-1\",\"hostname\":\"node1.internal\",\"port\":3000,\"weight\":3,\"region\":\"2\","
        "\"probe\":\"tcp\"},{\"id\":\"[::1]:1000\",\"hostname\":\"::1\",\"port\":1000,"
        "\"weight\":1,\"probe\":\"http\"}],\"ssl\":null}");
}

//  A JSON string literal of text (caller frees).
static char *
t_json_str(const char *text)
{
    json_t *j = json_string(text);
    char *s = json_dumps(j, JSON_ENCODE_ANY);
    json_decref(j);
    return s;
}

static void
test_auth_rate_limit_ssl(void **state)
{
    (void) state;
    EVP_PKEY *k1 = EVP_EC_gen("P-256"), *k2 = EVP_EC_gen("P-256");
    char *key1 = t_pki_key_pem(k1), *key2 = t_pki_key_pem(k2);
    char *cert1 = t_pki_cert(k1, "a.com", "20250101000000Z", "20350101000000Z", NULL, NULL, NULL);
    char *jkey1 = t_json_str(key1), *jkey2 = t_json_str(key2), *jcert1 = t_json_str(cert1);
    char body[8192];
    snprintf(body, sizeof body,
             "{" V B0 ",\"auth\":{\"type\":\"basic\",\"users\":{\"alice\":"
             "\"$6$saltsalt$Zq1.x/yz\",\"bob\":\"abJnggxhB/yWI\"}},"
             "\"rateLimit\":{\"tier\":\"strict\"},\"ssl\":{\"cert\":%s,\"key\":%s}}",
             jcert1, jkey1);
    char *s = t_accept(body, NULL);
    assert_non_null(strstr(s, "\"auth\":{\"type\":\"basic\",\"users\":{\"alice\":"
                              "\"$6$saltsalt$Zq1.x/yz\",\"bob\":\"abJnggxhB/yWI\"}}"));
    assert_non_null(strstr(s, "\"rateLimit\":{\"tier\":\"strict\"}"));
    // key first, then cert, whatever the body's order
    char want[8192];
    snprintf(want, sizeof want, "\"ssl\":{\"key\":%s,\"cert\":%s}", jkey1, jcert1);
    assert_non_null(strstr(s, want));
    free(s);
    // the pair is checked as POST /certificates checks it (SPEC §4, §5)
    snprintf(body, sizeof body, "{" V B0 ",\"ssl\":{\"cert\":%s,\"key\":%s}}", jcert1, jkey2);
    t_expect(body, "invalid_value", "ssl.key");
    snprintf(body, sizeof body,
             "{" V B0 ",\"ssl\":{\"cert\":\"-----BEGIN CERTIFICATE-----\\nMIIB\\n\",\"key\":%s}}",
             jkey1);
    t_expect(body, "invalid_value", "ssl.cert");
    // the key as GET shows it ("[redacted]") is accepted: the router keeps the stored one
    snprintf(body, sizeof body,
             "{" V B0 ",\"ssl\":{\"cert\":%s,\"key\":\"" API_ROUTE_KEY_REDACTED "\"}}", jcert1);
    free(t_accept(body, NULL));
    free(jkey1);
    free(jkey2);
    free(jcert1);
    free(key1);
    free(key2);
    free(cert1);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
    s = t_accept("{" V B0 ",\"rateLimit\":{\"requests\":5,\"windowSeconds\":60,\"key\":\"user\","
                 "\"burstPerSecond\":2},\"authProvider\":null,\"auth\":null,\"chatPath\":null}",
                 NULL);
    assert_non_null(strstr(s, "\"rateLimit\":{\"requests\":5,\"windowSeconds\":60,\"key\":"
                              "\"user\",\"burstPerSecond\":2}"));
    free(s);
}

//  What GET returns (runtime fields included) can be sent back with PUT.
static void
test_get_edit_put(void **state)
{
    (void) state;
    char *first =
        t_accept("{" V "\"backends\":[{\"hostname\":\"h\",\"port\":80,\"region\":\"1\"}]}", NULL);
    json_t *doc = json_loads(first, 0, NULL);
    json_t *b = json_array_get(json_object_get(doc, "backends"), 0);
    json_object_set_new(b, "isDead", json_true());
    json_object_set_new(b, "deadSince", json_integer(1700000000000));
    json_object_set_new(b, "failureCount", json_integer(3));
    json_object_set_new(b, "latencyMs", json_real(1.5));
    json_object_set_new(doc, "retries", json_integer(5)); // the edit
    char *edited = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    char *second = t_accept(edited, "a.com");
    assert_non_null(strstr(second, "\"retries\":5"));
    assert_null(strstr(second, "isDead"));
    assert_null(strstr(second, "latencyMs"));
    // everything else is as it was
    json_t *a1 = json_loads(first, 0, NULL), *a2 = json_loads(second, 0, NULL);
    json_object_set_new(a1, "retries", json_integer(5));
    assert_true(json_equal(a1, a2));
    json_decref(a1);
    json_decref(a2);
    free(edited);
    free(second);
    free(first);
}

static void
test_put_path_vhost(void **state)
{
    (void) state;
    api_error_t err;
    // absent: taken from the path
    char *s = t_accept("{" B0 "}", "a.com");
    assert_non_null(strstr(s, "\"id\":\"a.com\",\"vHost\":\"a.com\""));
    free(s);
    // the same in another case: fine
    s = t_accept("{\"vHost\":\"A.COM\"," B0 "}", "a.com");
    free(s);
    // different: 400 on vHost, in document order
    assert_null(t_route("{\"vHost\":\"b.com\"," B0 "}", "a.com", &err));
    assert_string_equal(err.code, "invalid_value");
    assert_string_equal(err.field, "vHost");
    assert_non_null(strstr(err.message, "differs"));
    assert_null(t_route("{\"retries\":99,\"vHost\":\"b.com\"," B0 "}", "a.com", &err));
    assert_string_equal(err.field, "retries");
    // without a path, vHost is required
    assert_null(t_route("{" B0 "}", NULL, &err));
    assert_string_equal(err.code, "missing_field");
    assert_string_equal(err.field, "vHost");
}

static void
test_backend_body(void **state)
{
    (void) state;
    api_error_t err;
    const char *text = "{\"hostname\":\"10.0.0.2\",\"port\":3001}";
    json_t *b = api_backend_parse(text, strlen(text), &err);
    assert_non_null(b);
    char *s = json_dumps(b, JSON_COMPACT);
    assert_string_equal(
        s, "{\"id\":\"10.0.0.2:3001\",\"hostname\":\"10.0.0.2\",\"port\":3001,\"weight\":1,"
           "\"probe\":\"http\"}");
    free(s);
    json_decref(b);
    text = "{\"probe\":\"tcp\",\"region\":\"eu\",\"id\":\"n2\",\"weight\":7,\"port\":1,"
           "\"hostname\":\"db\",\"isDead\":true}";
    b = api_backend_parse(text, strlen(text), &err);
    assert_non_null(b);
    s = json_dumps(b, JSON_COMPACT);
    assert_string_equal(s, "{\"id\":\"n2\",\"hostname\":\"db\",\"port\":1,\"weight\":7,"
                           "\"region\":\"eu\",\"probe\":\"tcp\"}");
    free(s);
    json_decref(b);
    const t_case_t bad[] = {
        {"{\"hostname\":\"h\",\"port\":0}", "out_of_range", "port"},
        {"{\"port\":80}", "missing_field", "hostname"},
        {"{\"hostname\":\"h\"}", "missing_field", "port"},
        {"{\"hostname\":\"h\",\"port\":80,\"backends\":[]}", "unknown_field", "backends"},
        {"{\"hostname\":\"h\",\"port\":80,\"port\":81}", "duplicate_key", "port"},
        {"[{\"hostname\":\"h\",\"port\":80}]", "invalid_type", ""},
        {"{\"hostname\":\"h\",", "invalid_json", ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        b = api_backend_parse(bad[i].body, strlen(bad[i].body), &err);
        assert_null(b);
        if (strcmp(err.code, bad[i].code) != 0 || strcmp(err.field, bad[i].field) != 0)
            fail_msg("%s: got %s on '%s', expected %s on '%s'", bad[i].body, err.code, err.field,
                     bad[i].code, bad[i].field);
    }
}

static void
test_limits(void **state)
{
    (void) state;
    // 256 backends are fine, 257 are out of range on "backends"
    size_t cap = 300 * 48 + 64;
    char *text = malloc(cap);
    for (int count = 256; count <= 257; count++) {
        size_t n = (size_t) snprintf(text, cap, "{" V "\"backends\":[");
        for (int i = 0; i < count; i++)
            n += (size_t) snprintf(text + n, cap - n, "%s{\"hostname\":\"h\",\"port\":%d}",
                                   i ? "," : "", i + 1);
        snprintf(text + n, cap - n, "]}");
        if (count == 256)
            free(t_accept(text, NULL));
        else
            t_expect(text, "out_of_range", "backends");
    }
    // 32 headers are fine, 33 are out of range on "headers"
    for (int count = 32; count <= 33; count++) {
        size_t n = (size_t) snprintf(text, cap, "{" V B0 ",\"headers\":{");
        for (int i = 0; i < count; i++)
            n += (size_t) snprintf(text + n, cap - n, "%s\"X-H%d\":\"v\"", i ? "," : "", i);
        snprintf(text + n, cap - n, "}}");
        if (count == 32)
            free(t_accept(text, NULL));
        else
            t_expect(text, "out_of_range", "headers");
    }
    free(text);
    // a vHost of 253 bytes is fine, 254 is not
    char host[300];
    memset(host, 'a', sizeof host);
    for (int i = 63; i < 253; i += 64)
        host[i] = '.';
    host[253] = '\0';
    assert_true(proto_route_valid_vhost(host));
    host[253] = 'a';
    host[254] = '\0';
    assert_false(proto_route_valid_vhost(host));
    assert_true(proto_route_valid_vhost("*"));
    assert_true(proto_route_valid_vhost("*.a.b"));
    assert_false(proto_route_valid_vhost("*."));
    assert_false(proto_route_valid_vhost(""));
    assert_true(proto_route_valid_backend_id("node-1"));
    assert_true(proto_route_valid_backend_id("[::1]:80"));
    assert_false(proto_route_valid_backend_id("a b"));
    assert_false(proto_route_valid_backend_id(""));
}

static void
test_json_paths(void **state)
{
    (void) state;
    const char *text = "{\"a\":1,\"b\":{\"c\":[10,{\"d\":2}]},\"e\\u0041\":3}";
    size_t len = strlen(text);
    char path[64];
    // the token being read at an offset
    assert_int_equal(api_json_path_at(text, len, 6, path, sizeof path), 0);
    assert_string_equal(path, "a");
    const char *d = strstr(text, "\"d\"");
    assert_int_equal(api_json_path_at(text, len, (size_t) (d - text) + 3, path, sizeof path), 0);
    assert_string_equal(path, "b.c[1].d");
    const char *ten = strstr(text, "10");
    assert_int_equal(api_json_path_at(text, len, (size_t) (ten - text) + 2, path, sizeof path), 0);
    assert_string_equal(path, "b.c[0]");
    const char *ea = strstr(text, "\"e");
    assert_int_equal(api_json_path_at(text, len, (size_t) (ea - text) + 9, path, sizeof path), 0);
    assert_string_equal(path, "eA");
    assert_int_equal(api_json_path_at(text, len, 0, path, sizeof path), -1);
    // where a path first appears; a missing one at the end of its container
    assert_int_equal(api_json_position(text, len, "a"), 1);
    assert_int_equal(api_json_position(text, len, "b.c[1].d"), (size_t) (d - text));
    assert_int_equal(api_json_position(text, len, "b.c[1].x"), (size_t) (d - text) + 5);
    assert_int_equal(api_json_position(text, len, "zz"), len - 1);
    assert_int_equal(api_json_position(text, len, ""), 0);
}

static void
test_error_body(void **state)
{
    (void) state;
    char *s = api_error_body("out_of_range", "backends[0].port: 0", "backends[0].port");
    assert_string_equal(s, "{\"error\":{\"code\":\"out_of_range\",\"message\":"
                           "\"backends[0].port: 0\",\"field\":\"backends[0].port\"}}");
    free(s);
    s = api_error_body("invalid_json", "bad", "");
    assert_string_equal(s, "{\"error\":{\"code\":\"invalid_json\",\"message\":\"bad\","
                           "\"field\":null}}");
    free(s);
}

//  A key too long for the field path is cut at a UTF-8 character boundary, so the 400 body
//  still carries the field and the message (found by tests/fuzz/fuzz_route_json).
static void
test_long_key_cut_utf8(void **state)
{
    (void) state;
    for (int pad = 0; pad < 4; pad++) {
        char text[1024];
        int n = snprintf(text, sizeof text,
                         "{" V "\"backends\":[{\"hostname\":\"h\",\"port\":1,\"%.*s", pad, "xxx");
        for (int i = 0; i < 100; i++)
            n += snprintf(text + n, sizeof text - (size_t) n, "\xf0\x9f\x98\x80"); // U+1F600
        snprintf(text + n, sizeof text - (size_t) n, "\":1}]}");
        api_error_t err;
        assert_null(t_route(text, NULL, &err));
        assert_string_equal(err.code, "unknown_field");
        assert_true(strncmp(err.field, "backends[0].", 12) == 0);
        assert_true(strlen(err.field) <= API_FIELD_MAX);
        json_t *field = json_string(err.field), *message = json_string(err.message);
        assert_non_null(field);
        assert_non_null(message);
        json_decref(field);
        json_decref(message);
        char *body = api_error_body(err.code, err.message, err.field);
        assert_non_null(strstr(body, "\"field\":\"backends[0]."));
        free(body);
    }
}

//  Invalid JSON that breaks off inside a UTF-8 character: the message quoting the place
//  is still UTF-8, so the 400 body keeps it (found by tests/fuzz/fuzz_route_json).
static void
test_invalid_json_message_is_utf8(void **state)
{
    (void) state;
    const char *text = "{\"vHost\":\"a.example\",\"backends\":[{\"hostname\":\"\\\xe2\x96\x91\x8b"
                       "x\"}]}";
    api_error_t err;
    assert_null(t_route(text, NULL, &err));
    assert_string_equal(err.code, "invalid_json");
    json_t *message = json_string(err.message);
    assert_non_null(message);
    json_decref(message);
    char *body = api_error_body(err.code, err.message, err.field);
    assert_non_null(strstr(body, "\"message\":\"invalid JSON at line 1"));
    free(body);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jansson_keeps_document_order),
        cmocka_unit_test(test_bad_bodies),
        cmocka_unit_test(test_defaults_filled),
        cmocka_unit_test(test_full_route_normalized),
        cmocka_unit_test(test_auth_rate_limit_ssl),
        cmocka_unit_test(test_get_edit_put),
        cmocka_unit_test(test_put_path_vhost),
        cmocka_unit_test(test_backend_body),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_json_paths),
        cmocka_unit_test(test_error_body),
        cmocka_unit_test(test_long_key_cut_utf8),
        cmocka_unit_test(test_invalid_json_message_is_utf8),
    };
    return cmocka_run_group_tests_name("test_route_json", tests, NULL, NULL);
}
