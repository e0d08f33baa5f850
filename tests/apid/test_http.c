/*  test_http - unit tests for api_http's pure parts: which call a method and
    path make (api_http_plan), and which HTTP answer a router reply becomes
    (api_http_answer). The bus side is driven by tests/apid/it_apid.

    Decisions pinned here: HEAD is served as GET; one trailing slash is
    ignored; a vHost or backend id in the path is percent-decoded and the
    vHost lower-cased; a path vHost that is not a valid pattern is 404 (no
    such route) except for PUT, where it is 400 on "vHost"; a body over
    1 MiB is 413 before it is parsed; a wrong method on a known path is 405
    with Allow, checked before the body. Certificates: the DELETE path's
    domain is decoded, lower-cased and checked as the body's (400 on
    "domain"). Versions (path or diff query) are 1-20 decimal digits that fit
    64 bits, sent without leading zeros (400 on "version", "from", "to");
    the diff's query takes from and to only (an unknown parameter is
    unknown_field on its name, a repeated one duplicate_key); a rollback
    with a body is 400 on no field.
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

#include "../../apid/api_http.h"

static void
t_plan(const char *method, const char *path, const char *body, api_plan_t *plan)
{
    // a query after '?' is passed apart, as the gateway does
    char buf[512];
    const char *query = NULL;
    const char *q = strchr(path, '?');
    if (q) {
        snprintf(buf, sizeof buf, "%.*s", (int) (q - path), path);
        path = buf;
        query = q + 1;
    }
    api_http_plan(method, path, query, body, body ? strlen(body) : 0, plan);
}

//  A call answered at once with status and error code (and field, "" for null).
static void
t_refused(const char *method,
          const char *path,
          const char *body,
          int status,
          const char *code,
          const char *field)
{
    api_plan_t plan;
    t_plan(method, path, body, &plan);
    if (plan.op != API_OP_NONE)
        fail_msg("%s %s: sent to the router, expected %d %s", method, path, status, code);
    if (plan.response.status != status)
        fail_msg("%s %s: %d, expected %d (%s)", method, path, plan.response.status, status,
                 plan.response.body);
    json_t *doc = json_loads(plan.response.body, 0, NULL);
    assert_non_null(doc);
    json_t *err = json_object_get(doc, "error");
    assert_string_equal(json_string_value(json_object_get(err, "code")), code);
    assert_true(json_string_length(json_object_get(err, "message")) > 0);
    json_t *f = json_object_get(err, "field");
    if (*field)
        assert_string_equal(json_string_value(f), field);
    else
        assert_true(json_is_null(f));
    json_decref(doc);
    api_http_plan_free(&plan);
}

static const char *const t_route_body =
    "{\"vHost\":\"API.Example.com\",\"backends\":[{\"hostname\":\"h\",\"port\":80}]}";

static void
test_plan_routes(void **state)
{
    (void) state;
    api_plan_t plan;
    t_plan("GET", "/api/v1/routes", NULL, &plan);
    assert_int_equal(plan.op, API_OP_ROUTES_LIST);
    assert_int_equal(plan.type, PROTO_CONFIG_GET);
    assert_string_equal(plan.what, "routes");
    assert_string_equal(plan.key, "");
    api_http_plan_free(&plan);

    t_plan("HEAD", "/api/v1/routes/", NULL, &plan);
    assert_int_equal(plan.op, API_OP_ROUTES_LIST);
    api_http_plan_free(&plan);

    t_plan("POST", "/api/v1/routes", t_route_body, &plan);
    assert_int_equal(plan.op, API_OP_ROUTE_CREATE);
    assert_int_equal(plan.type, PROTO_CONFIG_PUT);
    assert_string_equal(plan.what, "route");
    assert_string_equal(plan.key, "api.example.com");
    assert_true(plan.create_only);
    assert_non_null(strstr(plan.body, "\"vHost\":\"api.example.com\""));
    assert_non_null(strstr(plan.body, "\"reqActiveLength\":50"));
    api_http_plan_free(&plan);

    t_plan("PUT", "/api/v1/routes/Api.Example.COM", t_route_body, &plan);
    assert_int_equal(plan.op, API_OP_ROUTE_PUT);
    assert_int_equal(plan.type, PROTO_CONFIG_PUT);
    assert_string_equal(plan.key, "api.example.com");
    assert_false(plan.create_only);
    api_http_plan_free(&plan);

    // a wildcard, escaped; the body may leave vHost out
    t_plan("PUT", "/api/v1/routes/%2A.example.com", "{\"backends\":[]}", &plan);
    assert_int_equal(plan.op, API_OP_ROUTE_PUT);
    assert_string_equal(plan.key, "*.example.com");
    assert_non_null(strstr(plan.body, "\"vHost\":\"*.example.com\""));
    api_http_plan_free(&plan);

    t_plan("GET", "/api/v1/routes/*", NULL, &plan);
    assert_int_equal(plan.op, API_OP_ROUTE_GET);
    assert_string_equal(plan.what, "route");
    assert_string_equal(plan.key, "*");
    api_http_plan_free(&plan);

    t_plan("DELETE", "/api/v1/routes/A.com", NULL, &plan);
    assert_int_equal(plan.op, API_OP_ROUTE_DELETE);
    assert_int_equal(plan.type, PROTO_CONFIG_DELETE);
    assert_string_equal(plan.key, "a.com");
    assert_null(plan.body);
    api_http_plan_free(&plan);
}

static void
test_plan_backends(void **state)
{
    (void) state;
    api_plan_t plan;
    t_plan("POST", "/api/v1/routes/a.com/backends", "{\"hostname\":\"h\",\"port\":81}", &plan);
    assert_int_equal(plan.op, API_OP_BACKEND_ADD);
    assert_int_equal(plan.type, PROTO_CONFIG_PUT);
    assert_string_equal(plan.what, "backend");
    assert_string_equal(plan.key, "a.com");
    assert_string_equal(
        plan.body,
        "{\"id\":\"h:81\",\"hostname\":\"h\",\"port\":81,\"weight\":1,\"probe\":\"http\"}");
    api_http_plan_free(&plan);

    t_plan("DELETE", "/api/v1/routes/a.com/backends/h%3A81", NULL, &plan);
    assert_int_equal(plan.op, API_OP_BACKEND_DELETE);
    assert_int_equal(plan.type, PROTO_CONFIG_DELETE);
    assert_string_equal(plan.what, "backend");
    assert_string_equal(plan.sub, "h:81");
    api_http_plan_free(&plan);

    t_plan("POST", "/api/v1/routes/a.com/backends/node-1/dead", NULL, &plan);
    assert_int_equal(plan.op, API_OP_BACKEND_DEAD);
    assert_string_equal(plan.what, "dead");
    assert_string_equal(plan.sub, "node-1");
    api_http_plan_free(&plan);

    t_plan("POST", "/api/v1/routes/a.com/backends/node-1/alive", "ignored", &plan);
    assert_int_equal(plan.op, API_OP_BACKEND_ALIVE);
    assert_string_equal(plan.what, "alive");
    assert_null(plan.body);
    api_http_plan_free(&plan);
}

static void
test_plan_refused(void **state)
{
    (void) state;
    // unknown paths
    t_refused("GET", "/api/v1/nope", NULL, 404, "not_found", "");
    t_refused("GET", "/api/v2/routes", NULL, 404, "not_found", "");
    t_refused("GET", "/api", NULL, 404, "not_found", "");
    t_refused("GET", "/api/v1", NULL, 404, "not_found", "");
    t_refused("GET", "/", NULL, 404, "not_found", "");
    t_refused("GET", "/api/v1/routes//backends", NULL, 404, "not_found", "");
    t_refused("POST", "/api/v1/routes/a.com/backends/x/y", NULL, 404, "not_found", "");
    t_refused("POST", "/api/v1/routes/a.com/backends/x/dead/z", NULL, 404, "not_found", "");
    t_refused("GET", "/api/v1/routes/a.com/nope", NULL, 404, "not_found", "");
    t_refused("GET", "/api/v1/routes/a%zz.com", NULL, 404, "not_found", "");
    t_refused("GET", "/api/v1/routes/a..com", NULL, 404, "not_found", "");
    t_refused("DELETE", "/api/v1/routes/a.com/backends/a%00b", NULL, 404, "not_found", "");
    // wrong methods: 405 with Allow
    api_plan_t plan;
    t_plan("DELETE", "/api/v1/routes", NULL, &plan);
    assert_int_equal(plan.response.status, 405);
    assert_string_equal(plan.response.allow, "GET, HEAD, POST");
    api_http_plan_free(&plan);
    t_plan("PATCH", "/api/v1/routes/a.com", NULL, &plan);
    assert_int_equal(plan.response.status, 405);
    assert_string_equal(plan.response.allow, "GET, HEAD, PUT, DELETE");
    api_http_plan_free(&plan);
    t_refused("GET", "/api/v1/routes/a.com/backends", NULL, 405, "method_not_allowed", "");
    t_refused("GET", "/api/v1/routes/a.com/backends/n", NULL, 405, "method_not_allowed", "");
    t_refused("GET", "/api/v1/routes/a.com/backends/n/dead", NULL, 405, "method_not_allowed", "");
    t_refused("post", "/api/v1/routes", t_route_body, 405, "method_not_allowed", "");
    // bad bodies
    t_refused("POST", "/api/v1/routes",
              "{\"vHost\":\"a.com\",\"backends\":[{\"hostname\":\"h\","
              "\"port\":0}]}",
              400, "out_of_range", "backends[0].port");
    t_refused("POST", "/api/v1/routes", NULL, 400, "invalid_json", "");
    t_refused("POST", "/api/v1/routes", "{\"vHost\":\"a.com\",\"vHost\":\"a.com\"}", 400,
              "duplicate_key", "vHost");
    t_refused("PUT", "/api/v1/routes/a.com", "{\"vHost\":\"b.com\",\"backends\":[]}", 400,
              "invalid_value", "vHost");
    t_refused("PUT", "/api/v1/routes/a..com", "{\"backends\":[]}", 400, "invalid_value", "vHost");
    t_refused("POST", "/api/v1/routes/a.com/backends", "{\"hostname\":\"h\"}", 400, "missing_field",
              "port");
    // over 1 MiB: 413 before parsing; exactly 1 MiB is parsed
    size_t big = API_BODY_MAX + 1;
    char *body = malloc(big);
    memset(body, ' ', big);
    api_http_plan("POST", "/api/v1/routes", NULL, body, big, &plan);
    assert_int_equal(plan.response.status, 413);
    assert_non_null(strstr(plan.response.body, "\"code\":\"payload_too_large\""));
    assert_non_null(strstr(plan.response.body, "\"field\":null"));
    api_http_plan_free(&plan);
    api_http_plan("PUT", "/api/v1/routes/a.com", "", body, big - 1, &plan);
    assert_int_equal(plan.response.status, 400);
    assert_non_null(strstr(plan.response.body, "\"code\":\"invalid_json\""));
    api_http_plan_free(&plan);
    free(body);
}

static void
test_plan_regions(void **state)
{
    (void) state;
    api_plan_t plan;
    t_plan("GET", "/api/v1/regions", NULL, &plan);
    assert_int_equal(plan.op, API_OP_REGIONS_LIST);
    assert_int_equal(plan.type, PROTO_CONFIG_GET);
    assert_string_equal(plan.what, "regions");
    assert_string_equal(plan.key, "");
    api_http_plan_free(&plan);

    t_plan("PUT", "/api/v1/regions/eu%2Fwest", "{\"publicAddress\":\"10.0.0.2\"}", &plan);
    assert_int_equal(plan.op, API_OP_REGION_PUT);
    assert_int_equal(plan.type, PROTO_CONFIG_PUT);
    assert_string_equal(plan.what, "region");
    assert_string_equal(plan.key, "eu/west");
    assert_string_equal(plan.body, "{\"id\":\"eu/west\",\"publicAddress\":\"10.0.0.2:80\"}");
    api_http_plan_free(&plan);

    t_plan("DELETE", "/api/v1/regions/2/", NULL, &plan);
    assert_int_equal(plan.op, API_OP_REGION_DELETE);
    assert_int_equal(plan.type, PROTO_CONFIG_DELETE);
    assert_string_equal(plan.what, "region");
    assert_string_equal(plan.key, "2");
    api_http_plan_free(&plan);

    // refused at once
    t_refused("PUT", "/api/v1/regions/2", "{\"publicAddress\":\"a.com:0\"}", 400, "invalid_value",
              "publicAddress");
    t_refused("PUT", "/api/v1/regions/2", "{\"publicAddress\":\"a.com\",\"x\":1}", 400,
              "unknown_field", "x");
    t_refused("PUT", "/api/v1/regions/2", "{\"id\":\"3\",\"publicAddress\":\"a.com\"}", 400,
              "invalid_value", "id");
    t_refused("PUT", "/api/v1/regions/2", NULL, 400, "invalid_json", "");
    t_refused("PUT", "/api/v1/regions/a%20b", "{\"publicAddress\":\"a.com\"}", 400, "invalid_value",
              "id");
    t_refused("DELETE", "/api/v1/regions/a%zz", NULL, 400, "invalid_value", "id");
    t_refused("PUT",
              "/api/v1/regions/"
              "12345678901234567890123456789012345678901234567890123456789012345",
              "{\"publicAddress\":\"a.com\"}", 400, "invalid_value", "id");
    t_refused("GET", "/api/v1/regions/2/x", NULL, 404, "not_found", "");
    t_refused("POST", "/api/v1/regions", NULL, 405, "method_not_allowed", "");
    t_plan("GET", "/api/v1/regions/2", NULL, &plan);
    assert_int_equal(plan.response.status, 405);
    assert_string_equal(plan.response.allow, "PUT, DELETE");
    api_http_plan_free(&plan);

    // the router's 404 without a message names the region
    t_plan("DELETE", "/api/v1/regions/2", NULL, &plan);
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_CONFIG_REPLY);
    msg.config_reply.status = 404;
    msg.config_reply.version = 3;
    api_response_t r;
    api_http_answer(&plan, &msg, false, 1000, &r);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "no region '2'"));
    api_response_free(&r);
    api_http_plan_free(&plan);
}

//  A certificate body for a.com that api_cert accepts: a small EC P-256 certificate and its
//  key (made with the openssl CLI), the PEM newlines escaped for JSON.
static const char *const t_cert_body =
    "{\"domain\":\"A.Example.com\",\"key\":\"-----BEGIN PRIVATE KEY-----\\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgFrfymLe51lumKRmY\\n"
    "4FsRONtq4ONV14z/WxPjysO+3aShRANCAARBxhtu+Cb1QBvafOq6t9kG7C9ev8bA\\n"
    "VIqJASmZLbk06/jLingCa6A4bphSisTyPxF9A4dbTzrRRxtcrBLKlQZk\\n-----END PRIVATE KEY-----\\n\","
    "\"cert\":\"-----BEGIN CERTIFICATE-----\\n"
    "MIIBvTCCAWOgAwIBAgIUCDBFql/DvfXMFUnGaLTMbvwj0gUwCgYIKoZIzj0EAwIw\\n"
    "NDEYMBYGA1UEAwwPYXBpLmV4YW1wbGUuY29tMRgwFgYDVQQKDA9Td2l0Y2h5YXJk\\n"
    "IFRlc3QwHhcNMjYxMjA1MjM1MDA3WhcNMzYxMjAyMjM1MDA3WjA0MRgwFgYDVQQD\\n"
    "DA9hcGkuZXhhbXBsZS5jb20xGDAWBgNVBAoMD1N3aXRjaHlhcmQgVGVzdDBZMBMG\\n"
    "ByqGSM49AgEGCCqGSM49AwEHA0IABEHGG274JvVAG9p86rq32QbsL16/xsBUiokB\\n"
    "KZktuTTr+MuKeAJroDhumFKKxPI/EX0Dh1tPOtFHG1ysEsqVBmSjUzBRMB0GA1Ud\\n"
    "DgQWBBR79sh7GkVpzeKC0FZe+UEf0JOdITAfBgNVHSMEGDAWgBR79sh7GkVpzeKC\\n"
    "0FZe+UEf0JOdITAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIAfF\\n"
    "WxiMZILJ9ey6XG0JufX2YwHs+sYNVGRFF/FibYiAAiEAqn/S3EOQaFquK0sR327z\\n"
    "d0i9wvJ+cyfDbvls/sVcK+k=\\n-----END CERTIFICATE-----\\n\"}";

//  A planned call to the router: its op, type, what and key.
static void
t_planned(const char *method,
          const char *path,
          const char *body,
          api_op_t op,
          proto_type_t type,
          const char *what,
          const char *key)
{
    api_plan_t plan;
    t_plan(method, path, body, &plan);
    if (plan.op != op)
        fail_msg("%s %s: op %d, expected %d (%s)", method, path, plan.op, op,
                 plan.response.body ? plan.response.body : "");
    assert_int_equal(plan.type, type);
    assert_string_equal(plan.what, what);
    assert_string_equal(plan.key, key);
    assert_string_equal(plan.sub, "");
    assert_false(plan.create_only);
    if (op != API_OP_CERT_PUT)
        assert_null(plan.body);
    api_http_plan_free(&plan);
}

static void
test_plan_certificates(void **state)
{
    (void) state;
    t_planned("GET", "/api/v1/certificates", NULL, API_OP_CERTS_LIST, PROTO_CONFIG_GET,
              "certificates", "");
    t_planned("HEAD", "/api/v1/certificates/", NULL, API_OP_CERTS_LIST, PROTO_CONFIG_GET,
              "certificates", "");
    t_planned("DELETE", "/api/v1/certificates/%2A.Example.COM", NULL, API_OP_CERT_DELETE,
              PROTO_CONFIG_DELETE, "certificate", "*.example.com");
    t_planned("DELETE", "/api/v1/certificates/*", NULL, API_OP_CERT_DELETE, PROTO_CONFIG_DELETE,
              "certificate", "*");

    // POST: the key is the body's domain, lower-case; the body the normalized certificate
    api_plan_t plan;
    t_plan("POST", "/api/v1/certificates", t_cert_body, &plan);
    assert_int_equal(plan.op, API_OP_CERT_PUT);
    assert_int_equal(plan.type, PROTO_CONFIG_PUT);
    assert_string_equal(plan.what, "certificate");
    assert_string_equal(plan.key, "a.example.com");
    assert_false(plan.create_only);
    assert_non_null(strstr(plan.body, "{\"domain\":\"a.example.com\",\"cert\":\"-----BEGIN"));
    assert_non_null(strstr(plan.body, "\"subject\":\"O=Switchyard Test,CN=api.example.com\""));
    assert_non_null(strstr(plan.body, "\"notAfter\":\"2036-12-02T23:50:07Z\"}"));
    api_http_plan_free(&plan);

    // refused at once
    t_refused("POST", "/api/v1/certificates", "{\"domain\":\"a.com\"}", 400, "missing_field",
              "key");
    t_refused("POST", "/api/v1/certificates", "{\"domain\":\"a.com\",\"x\":1}", 400,
              "unknown_field", "x");
    t_refused("POST", "/api/v1/certificates", "{\"domain\":\"a..com\",\"key\":\"k\"}", 400,
              "invalid_value", "domain");
    t_refused("POST", "/api/v1/certificates", NULL, 400, "invalid_json", "");
    t_refused("DELETE", "/api/v1/certificates/a..com", NULL, 400, "invalid_value", "domain");
    t_refused("DELETE", "/api/v1/certificates/exa%20mple.com", NULL, 400, "invalid_value",
              "domain");
    t_refused("DELETE", "/api/v1/certificates/a%zz", NULL, 400, "invalid_value", "domain");
    t_refused("DELETE", "/api/v1/certificates/%2A.%2A.x", NULL, 400, "invalid_value", "domain");
    t_refused("DELETE", "/api/v1/certificates/a.com/x", NULL, 404, "not_found", "");
    t_plan("PUT", "/api/v1/certificates", t_cert_body, &plan);
    assert_int_equal(plan.response.status, 405);
    assert_string_equal(plan.response.allow, "GET, HEAD, POST");
    api_http_plan_free(&plan);
    t_plan("GET", "/api/v1/certificates/a.com", NULL, &plan);
    assert_int_equal(plan.response.status, 405);
    assert_string_equal(plan.response.allow, "DELETE");
    api_http_plan_free(&plan);
    // over 1 MiB: 413 before parsing
    size_t big = API_BODY_MAX + 1;
    char *body = malloc(big);
    memset(body, ' ', big);
    api_http_plan("POST", "/api/v1/certificates", NULL, body, big, &plan);
    assert_int_equal(plan.response.status, 413);
    api_http_plan_free(&plan);
    free(body);

    // the router's 404 without a message names the domain
    t_plan("DELETE", "/api/v1/certificates/Nope.com", NULL, &plan);
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_CONFIG_REPLY);
    msg.config_reply.status = 404;
    api_response_t r;
    api_http_answer(&plan, &msg, false, 1000, &r);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "\"message\":\"no certificate for 'nope.com'\""));
    api_response_free(&r);
    api_http_plan_free(&plan);
}

static void
test_plan_config(void **state)
{
    (void) state;
    t_planned("GET", "/api/v1/config/versions", NULL, API_OP_VERSIONS_LIST, PROTO_CONFIG_GET,
              "versions", "");
    t_planned("HEAD", "/api/v1/config/versions/", NULL, API_OP_VERSIONS_LIST, PROTO_CONFIG_GET,
              "versions", "");
    t_planned("GET", "/api/v1/config/versions/42", NULL, API_OP_VERSION_GET, PROTO_CONFIG_GET,
              "version", "42");
    t_planned("GET", "/api/v1/config/versions/0042", NULL, API_OP_VERSION_GET, PROTO_CONFIG_GET,
              "version", "42");
    t_planned("GET", "/api/v1/config/versions/18446744073709551615", NULL, API_OP_VERSION_GET,
              PROTO_CONFIG_GET, "version", "18446744073709551615");
    t_planned("GET", "/api/v1/config/diff?from=1&to=7", NULL, API_OP_DIFF, PROTO_CONFIG_GET, "diff",
              "1:7");
    t_planned("GET", "/api/v1/config/diff?to=7&from=9&", NULL, API_OP_DIFF, PROTO_CONFIG_GET,
              "diff", "9:7");
    t_planned("POST", "/api/v1/config/rollback/3", NULL, API_OP_ROLLBACK, PROTO_CONFIG_PUT,
              "rollback", "3");
    t_planned("POST", "/api/v1/config/rollback/3", "", API_OP_ROLLBACK, PROTO_CONFIG_PUT,
              "rollback", "3");
    // other calls ignore a query
    t_planned("GET", "/api/v1/config/versions?limit=3", NULL, API_OP_VERSIONS_LIST,
              PROTO_CONFIG_GET, "versions", "");

    // bad versions
    t_refused("GET", "/api/v1/config/versions/x", NULL, 400, "invalid_value", "version");
    t_refused("GET", "/api/v1/config/versions/-1", NULL, 400, "invalid_value", "version");
    t_refused("GET", "/api/v1/config/versions/1.0", NULL, 400, "invalid_value", "version");
    t_refused("GET", "/api/v1/config/versions/%31", NULL, 400, "invalid_value", "version");
    t_refused("GET", "/api/v1/config/versions/18446744073709551616", NULL, 400, "invalid_value",
              "version");
    t_refused("GET", "/api/v1/config/versions/000000000000000000001", NULL, 400, "invalid_value",
              "version");
    t_refused("POST", "/api/v1/config/rollback/abc", NULL, 400, "invalid_value", "version");
    // rollback takes no body
    t_refused("POST", "/api/v1/config/rollback/3", "{}", 400, "invalid_value", "");
    // the diff's query
    t_refused("GET", "/api/v1/config/diff", NULL, 400, "missing_field", "from");
    t_refused("GET", "/api/v1/config/diff?from=1", NULL, 400, "missing_field", "to");
    t_refused("GET", "/api/v1/config/diff?to=1", NULL, 400, "missing_field", "from");
    t_refused("GET", "/api/v1/config/diff?from=&to=1", NULL, 400, "invalid_value", "from");
    t_refused("GET", "/api/v1/config/diff?from=1&to=x", NULL, 400, "invalid_value", "to");
    t_refused("GET", "/api/v1/config/diff?from=1&to", NULL, 400, "invalid_value", "to");
    t_refused("GET", "/api/v1/config/diff?from=1&to=2&x=3", NULL, 400, "unknown_field", "x");
    t_refused("GET", "/api/v1/config/diff?x=3&from=1&to=2", NULL, 400, "unknown_field", "x");
    t_refused("GET", "/api/v1/config/diff?from=1&from=2&to=3", NULL, 400, "duplicate_key", "from");
    // unknown paths and wrong methods
    t_refused("GET", "/api/v1/config", NULL, 404, "not_found", "");
    t_refused("GET", "/api/v1/config/nope", NULL, 404, "not_found", "");
    t_refused("POST", "/api/v1/config/rollback", NULL, 404, "not_found", "");
    t_refused("GET", "/api/v1/config/diff/1", NULL, 404, "not_found", "");
    t_refused("GET", "/api/v1/config/versions/1/x", NULL, 404, "not_found", "");
    const struct {
        const char *method, *path, *allow;
    } wrong[] = {
        {"POST", "/api/v1/config/versions", "GET, HEAD"},
        {"DELETE", "/api/v1/config/versions/1", "GET, HEAD"},
        {"POST", "/api/v1/config/diff?from=1&to=2", "GET, HEAD"},
        {"GET", "/api/v1/config/rollback/1", "POST"},
    };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        api_plan_t plan;
        t_plan(wrong[i].method, wrong[i].path, NULL, &plan);
        assert_int_equal(plan.op, API_OP_NONE);
        assert_int_equal(plan.response.status, 405);
        assert_string_equal(plan.response.allow, wrong[i].allow);
        api_http_plan_free(&plan);
    }

    // the router's 404s: its message, else one naming the version
    api_plan_t plan;
    proto_msg_t msg;
    api_response_t r;
    t_plan("GET", "/api/v1/config/versions/9", NULL, &plan);
    proto_msg_init(&msg, PROTO_CONFIG_REPLY);
    msg.config_reply.status = 404;
    api_http_answer(&plan, &msg, false, 1000, &r);
    assert_non_null(strstr(r.body, "\"message\":\"no version 9\""));
    api_response_free(&r);
    api_http_plan_free(&plan);
    t_plan("POST", "/api/v1/config/rollback/8", NULL, &plan);
    api_http_answer(&plan, &msg, false, 1000, &r);
    assert_non_null(strstr(r.body, "\"message\":\"no version 8\""));
    api_response_free(&r);
    api_http_plan_free(&plan);
    t_plan("GET", "/api/v1/config/diff?from=1&to=2", NULL, &plan);
    msg.config_reply.error = "no version 1 (the oldest kept is 5)";
    api_http_answer(&plan, &msg, false, 1000, &r);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "\"message\":\"no version 1 (the oldest kept is 5)\""));
    api_response_free(&r);
    api_http_plan_free(&plan);
}

static void
t_reply(proto_msg_t *msg, uint16_t status, const char *body, const char *error, const char *field)
{
    proto_msg_init(msg, PROTO_CONFIG_REPLY);
    msg->config_reply.status = status;
    msg->config_reply.version = 7;
    msg->config_reply.body = body;
    msg->config_reply.error = error;
    msg->config_reply.field = field;
}

static void
test_answers(void **state)
{
    (void) state;
    api_plan_t plan;
    t_plan("GET", "/api/v1/routes/a.com", NULL, &plan);
    api_response_t r;
    proto_msg_t msg;

    // no answer in time, or nobody to ask: 503 unavailable
    api_http_answer(&plan, NULL, false, 3000, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "\"code\":\"unavailable\""));
    assert_non_null(strstr(r.body, "3000 ms"));
    api_response_free(&r);
    api_http_answer(&plan, NULL, true, 3000, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "no router"));
    api_response_free(&r);

    // success: status and body as the router gave them, with its version
    t_reply(&msg, 200, "{\"vHost\":\"a.com\"}", NULL, NULL);
    api_http_answer(&plan, &msg, false, 3000, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"vHost\":\"a.com\"}");
    assert_int_equal(r.version, 7);
    api_response_free(&r);
    t_reply(&msg, 204, "", NULL, NULL);
    api_http_answer(&plan, &msg, false, 3000, &r);
    assert_int_equal(r.status, 204);
    assert_null(r.body);
    api_response_free(&r);

    // errors get the error shape
    t_reply(&msg, 404, NULL, NULL, NULL);
    api_http_answer(&plan, &msg, false, 3000, &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "{\"error\":{\"code\":\"not_found\",\"message\":"
                                "\"no route for vHost 'a.com'\",\"field\":null}}");
    api_response_free(&r);
    t_reply(&msg, 409, NULL, "exists", "");
    api_http_answer(&plan, &msg, false, 3000, &r);
    assert_int_equal(r.status, 409);
    assert_string_equal(
        r.body, "{\"error\":{\"code\":\"conflict\",\"message\":\"exists\",\"field\":null}}");
    api_response_free(&r);
    t_reply(&msg, 400, NULL, "key does not match cert", "ssl.key");
    api_http_answer(&plan, &msg, false, 3000, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "{\"error\":{\"code\":\"invalid_value\",\"message\":"
                                "\"key does not match cert\",\"field\":\"ssl.key\"}}");
    api_response_free(&r);
    t_reply(&msg, 500, NULL, "disk full", NULL);
    api_http_answer(&plan, &msg, false, 3000, &r);
    assert_int_equal(r.status, 500);
    assert_non_null(strstr(r.body, "\"code\":\"internal\""));
    api_response_free(&r);
    t_reply(&msg, 302, NULL, NULL, NULL);
    api_http_answer(&plan, &msg, false, 3000, &r);
    assert_int_equal(r.status, 500);
    api_response_free(&r);

    // the router's own error message
    proto_msg_init(&msg, PROTO_ERROR);
    msg.error.code = "unavailable";
    msg.error.message = "store not loaded";
    api_http_answer(&plan, &msg, false, 3000, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "store not loaded"));
    api_response_free(&r);
    api_http_plan_free(&plan);

    // backend calls name the backend when the router says 404 without a message
    t_plan("POST", "/api/v1/routes/a.com/backends/n1/dead", NULL, &plan);
    t_reply(&msg, 404, NULL, "", NULL);
    api_http_answer(&plan, &msg, false, 3000, &r);
    assert_non_null(strstr(r.body, "no backend 'n1' in route 'a.com'"));
    api_response_free(&r);
    api_http_plan_free(&plan);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_routes),       cmocka_unit_test(test_plan_backends),
        cmocka_unit_test(test_plan_refused),      cmocka_unit_test(test_plan_regions),
        cmocka_unit_test(test_plan_certificates), cmocka_unit_test(test_plan_config),
        cmocka_unit_test(test_answers),
    };
    return cmocka_run_group_tests_name("test_http", tests, NULL, NULL);
}
