/*  test_versions - unit tests for rt_control's certificates, configuration
    versions (get, diff, rollback) and its store protocol (a change in
    flight, the queue behind it, failures, conflicts, reloads), with a
    scripted in-memory store instead of a file.

    Pins: certificates are listed without keys and stored lower-case; a
    version's configuration is rebuilt exactly and redacted; a rollback is
    a new version whose configuration equals the old one; nothing is
    answered before the store has the change; changes are run in arrival
    order; a failed or unavailable store changes nothing; a conflict
    reloads and runs the change again, once answered.
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

#include "../../router/rt_control.h"
#include "../../router/rt_history.h"
#include "../../router/rt_store.h"
#include "proto_log.h"

#define S_NOW     1795299046123ull // 2026-11-21T22:10:46.123Z
#define S_KEY     "-----BEGIN PRIVATE KEY-----\nSECRETKEYMATERIAL\n-----END PRIVATE KEY-----\n"
#define S_CERT    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
#define S_ANS_MAX 16

//  The scripted store: answers at once with rc, or holds the commit.
typedef struct {
    int rc;                 // what commit answers
    bool hold;              // keep the commit until s_release
    rt_store_done_fn *done; // held commit's callback
    void *done_arg;         // its argument
    uint64_t held_version;  // the version held
    int commits;            // commits seen
    int reloads;            // reloads asked for
    rt_control_t *ctl;      // for nothing but clarity
} s_store_t;

typedef struct {
    s_store_t store;            // scripted store
    rt_control_t *ctl;          // under test
    rt_result_t ans[S_ANS_MAX]; // answers in the order they came
    int answers;                // how many
    uint64_t reloaded;          // version the reload callback saw
    rt_result_t get;            // last read
} s_fixture_t;

static void
s_commit(void *store,
         const rt_store_data_t *next,
         const json_t *entry,
         rt_store_done_fn *done,
         void *arg)
{
    (void) entry;
    s_store_t *st = store;
    st->commits++;
    if (st->hold) {
        st->done = done;
        st->done_arg = arg;
        st->held_version = next->version;
        return;
    }
    done(arg, st->rc, st->rc == RT_STORE_OK ? "" : "scripted failure");
}

static void
s_reload(void *store)
{
    ((s_store_t *) store)->reloads++;
}

static void
s_release(s_fixture_t *fx, int rc)
{
    assert_non_null(fx->store.done);
    rt_store_done_fn *done = fx->store.done;
    fx->store.done = NULL;
    done(fx->store.done_arg, rc, rc == RT_STORE_OK ? "" : "scripted failure");
}

static void
s_on_done(void *arg, rt_result_t *result)
{
    s_fixture_t *fx = arg;
    if (result == NULL)
        return; // dropped at destroy
    assert_true(fx->answers < S_ANS_MAX);
    fx->ans[fx->answers++] = *result;
    memset(result, 0, sizeof *result);
}

static void
s_on_reload(void *arg, uint64_t version)
{
    ((s_fixture_t *) arg)->reloaded = version;
}

static int
s_setup(void **state)
{
    s_fixture_t *fx = calloc(1, sizeof *fx);
    rt_store_data_t data = {0};
    rt_store_ops_t ops = {.commit = s_commit, .reload = s_reload, .store = &fx->store};
    fx->ctl = rt_control_new("eu-1", &data, ops);
    rt_control_on_reload(fx->ctl, s_on_reload, fx);
    fx->store.rc = RT_STORE_OK;
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    s_fixture_t *fx = *state;
    for (int i = 0; i < fx->answers; i++)
        rt_result_clear(&fx->ans[i]);
    rt_result_clear(&fx->get);
    rt_control_destroy(&fx->ctl);
    free(fx);
    return 0;
}

//  The last answer's status (0: none yet).
static uint16_t
s_last(const s_fixture_t *fx)
{
    return fx->answers ? fx->ans[fx->answers - 1].status : 0;
}

static uint16_t
s_put(s_fixture_t *fx, const char *what, const char *key, const char *body)
{
    proto_config_put_t cmd = {.what = what, .key = key, .body = body, .by = "tok1"};
    int before = fx->answers;
    rt_control_put(fx->ctl, &cmd, S_NOW, s_on_done, fx);
    return fx->answers > before ? s_last(fx) : 0;
}

static uint16_t
s_del(s_fixture_t *fx, const char *what, const char *key)
{
    proto_config_delete_t cmd = {.what = what, .key = key, .by = ""};
    int before = fx->answers;
    rt_control_delete(fx->ctl, &cmd, S_NOW, s_on_done, fx);
    return fx->answers > before ? s_last(fx) : 0;
}

static uint16_t
s_get(s_fixture_t *fx, const char *what, const char *key)
{
    rt_result_clear(&fx->get);
    proto_config_get_t cmd = {.what = what, .key = key};
    rt_control_get(fx->ctl, &cmd, &fx->get);
    return fx->get.status;
}

static json_t *
s_json(const char *text)
{
    assert_non_null(text);
    json_t *json = json_loads(text, 0, NULL);
    assert_non_null(json);
    return json;
}

static char *
s_cert_body(const char *domain, const char *subject)
{
    json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "domain", domain, "cert", S_CERT,
                          "key", S_KEY, "issuer", "CN=Test CA", "subject", subject, "notBefore",
                          "2026-01-01T00:00:00Z", "notAfter", "2027-01-01T00:00:00Z");
    char *text = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return text;
}

static const char *s_route_a =
    "{\"vHost\": \"a.example.com\", \"backends\": [{\"hostname\": \"10.0.0.1\", \"port\": 80}]}";

// --------------------------------------------------------------------------

static void
test_certificates(void **state)
{
    s_fixture_t *fx = *state;
    char *body = s_cert_body("WWW.Example.com", "CN=www.example.com");
    assert_int_equal(s_put(fx, "certificate", "www.example.com", body), 201);
    json_t *pub = s_json(fx->ans[0].body);
    assert_string_equal(json_string_value(json_object_get(pub, "domain")), "www.example.com");
    assert_string_equal(json_string_value(json_object_get(pub, "subject")), "CN=www.example.com");
    assert_null(json_object_get(pub, "key"));
    assert_null(json_object_get(pub, "cert"));
    json_decref(pub);
    assert_string_equal(fx->ans[0].what, "certificate");
    assert_true(fx->ans[0].changed);
    free(body);
    // replaced: 200; a second domain and the default certificate
    body = s_cert_body("www.example.com", "CN=www2");
    assert_int_equal(s_put(fx, "certificate", "www.example.com", body), 200);
    free(body);
    body = s_cert_body("*", "CN=default");
    assert_int_equal(s_put(fx, "certificate", "*", body), 201);
    free(body);
    body = s_cert_body("*.example.com", "CN=wild");
    assert_int_equal(s_put(fx, "certificate", "*.EXAMPLE.com", body), 201);
    free(body);
    assert_int_equal(rt_control_version(fx->ctl), 4);
    // listed by domain, never with keys
    assert_int_equal(s_get(fx, "certificates", NULL), 200);
    assert_null(strstr(fx->get.body, "SECRETKEYMATERIAL"));
    assert_null(strstr(fx->get.body, "BEGIN"));
    json_t *list = s_json(fx->get.body);
    assert_int_equal(json_array_size(list), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "domain")), "*");
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "domain")),
                        "*.example.com");
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 2), "subject")),
                        "CN=www2");
    json_decref(list);
    // delete: any case, then 404
    assert_int_equal(s_del(fx, "certificate", "WWW.example.COM"), 204);
    assert_int_equal(s_del(fx, "certificate", "www.example.com"), 404);
    assert_int_equal(rt_control_version(fx->ctl), 5);
}

//  Another router's configuration at version: one route b.example.com.
static void
s_theirs(rt_store_data_t *data, uint64_t version)
{
    json_t *doc = json_pack("{s:i, s:I, s:[{s:s, s:[{s:s, s:i}]}]}", "format", RT_STORE_FORMAT,
                            "version", (json_int_t) version, "routes", "vHost", "b.example.com",
                            "backends", "hostname", "10.1.1.1", "port", 80);
    char err[256];
    assert_int_equal(rt_store_parse(doc, "eu-1", data, err, sizeof err), 0);
    json_decref(doc);
}

//  config.get health: every served route with its health path and backends,
//  seed 002's included (what healthd probes).
static void
test_health_list(void **state)
{
    s_fixture_t *fx = *state;
    assert_int_equal(
        s_put(fx, "route", "a.example.com",
              "{\"healthPath\": \"/hz\", \"backends\": [{\"hostname\": \"10.0.0.1\", "
              "\"port\": 80, \"probe\": \"tcp\"}, {\"hostname\": \"10.0.0.2\", \"port\": 81}]}"),
        201);
    proto_config_put_t dead = {
        .what = "dead", .key = "a.example.com", .sub = "10.0.0.2:81", .by = ""};
    rt_control_put(fx->ctl, &dead, S_NOW, s_on_done, fx);
    rt_store_data_t edge = {0};
    s_theirs(&edge, 1); // a table with b.example.com, used as seed 002's routes
    rt_control_set_edge(fx->ctl, edge.table, NULL);
    edge.table = NULL;
    rt_store_data_clear(&edge);
    assert_int_equal(s_get(fx, "health", NULL), 200);
    json_t *list = s_json(fx->get.body);
    assert_int_equal(json_array_size(list), 2);
    json_t *a = json_array_get(list, 0);
    assert_string_equal(json_string_value(json_object_get(a, "vHost")), "a.example.com");
    assert_string_equal(json_string_value(json_object_get(a, "healthPath")), "/hz");
    json_t *b0 = json_array_get(json_object_get(a, "backends"), 0);
    assert_string_equal(json_string_value(json_object_get(b0, "probe")), "tcp");
    assert_int_equal(json_integer_value(json_object_get(b0, "port")), 80);
    assert_false(json_is_true(json_object_get(b0, "maintenance")));
    json_t *b1 = json_array_get(json_object_get(a, "backends"), 1);
    assert_true(json_is_true(json_object_get(b1, "maintenance")));
    json_t *b = json_array_get(list, 1);
    assert_string_equal(json_string_value(json_object_get(b, "vHost")), "b.example.com");
    assert_string_equal(json_string_value(json_object_get(b, "healthPath")), "/");
    json_decref(list);
    // with a key: that vHost's route alone (seed 002's too), none when unknown
    assert_int_equal(s_get(fx, "health", "b.example.com"), 200);
    list = s_json(fx->get.body);
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "vHost")),
                        "b.example.com");
    json_decref(list);
    assert_int_equal(s_get(fx, "health", "nope.example.com"), 200);
    list = s_json(fx->get.body);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
    // pages: "@N" from route N, with the next offset or null
    assert_int_equal(s_get(fx, "health", "@0"), 200);
    json_t *page = s_json(fx->get.body);
    assert_int_equal(json_array_size(json_object_get(page, "routes")), 2);
    assert_true(json_is_null(json_object_get(page, "next")));
    json_decref(page);
    assert_int_equal(s_get(fx, "health", "@1"), 200);
    page = s_json(fx->get.body);
    assert_int_equal(json_array_size(json_object_get(page, "routes")), 1);
    assert_true(json_is_null(json_object_get(page, "next")));
    json_decref(page);
    assert_int_equal(s_get(fx, "health", "@9"), 200);
    page = s_json(fx->get.body);
    assert_int_equal(json_array_size(json_object_get(page, "routes")), 0);
    json_decref(page);
}

//  The same object again is not a change: 200, no new version, no commit.
static void
test_same_again_is_no_change(void **state)
{
    s_fixture_t *fx = *state;
    char *body = s_cert_body("a.com", "CN=a");
    assert_int_equal(s_put(fx, "certificate", "a.com", body), 201);
    assert_int_equal(s_put(fx, "certificate", "a.com", body), 200);
    assert_false(fx->ans[fx->answers - 1].changed);
    free(body);
    assert_int_equal(s_put(fx, "route", "a.example.com", s_route_a), 201);
    assert_int_equal(s_put(fx, "route", "a.example.com", s_route_a), 200);
    assert_false(fx->ans[fx->answers - 1].changed);
    assert_int_equal(s_put(fx, "region", "2", "{\"publicAddress\": \"r2\"}"), 201);
    assert_int_equal(s_put(fx, "region", "2", "{\"publicAddress\": \"r2:80\"}"), 200);
    assert_int_equal(rt_control_version(fx->ctl), 3);
    assert_int_equal(fx->store.commits, 3);
    // a real change still is one
    assert_int_equal(s_put(fx, "region", "2", "{\"publicAddress\": \"r3\"}"), 200);
    assert_int_equal(rt_control_version(fx->ctl), 4);
}

static void
test_certificate_shape(void **state)
{
    s_fixture_t *fx = *state;
    assert_int_equal(s_put(fx, "certificate", "a.com", "{\"domain\": \"a.com\"}"), 400);
    assert_string_equal(fx->ans[fx->answers - 1].field, "cert");
    assert_int_equal(
        s_put(fx, "certificate", "a.com", "{\"domain\": \"a.com\", \"cert\": \"x\", \"key\": 1}"),
        400);
    assert_string_equal(fx->ans[fx->answers - 1].field, "key");
    assert_int_equal(s_put(fx, "certificate", "a.com", "{\"domain\": \"a.com\", \"extra\": \"x\"}"),
                     400);
    assert_string_equal(fx->ans[fx->answers - 1].field, "extra");
    char *body = s_cert_body("b.com", "CN=b");
    assert_int_equal(s_put(fx, "certificate", "a.com", body), 400); // path and body differ
    assert_string_equal(fx->ans[fx->answers - 1].field, "domain");
    free(body);
    body = s_cert_body("a..com", "CN=b");
    assert_int_equal(s_put(fx, "certificate", "a..com", body), 400);
    free(body);
    assert_int_equal(fx->store.commits, 0);
    assert_int_equal(rt_control_version(fx->ctl), 0);
}

//  Three changes: route, certificate, region; then versions 0-3.
static void
s_three(s_fixture_t *fx)
{
    assert_int_equal(s_put(fx, "route", "a.example.com", s_route_a), 201);
    char *body = s_cert_body("a.example.com", "CN=a");
    assert_int_equal(s_put(fx, "certificate", "a.example.com", body), 201);
    free(body);
    assert_int_equal(s_put(fx, "region", "2", "{\"publicAddress\": \"10.2.0.1\"}"), 201);
}

static void
test_version_get(void **state)
{
    s_fixture_t *fx = *state;
    s_three(fx);
    assert_int_equal(s_get(fx, "versions", NULL), 200);
    json_t *versions = s_json(fx->get.body);
    assert_int_equal(json_array_size(versions), 3);
    json_t *newest = json_array_get(versions, 0);
    assert_int_equal(json_integer_value(json_object_get(newest, "version")), 3);
    assert_string_equal(json_string_value(json_object_get(newest, "by")), "tok1");
    assert_null(json_object_get(newest, "changes")); // the list is a summary
    json_decref(versions);

    assert_int_equal(s_get(fx, "version", "2"), 200);
    assert_null(strstr(fx->get.body, "SECRETKEYMATERIAL"));
    json_t *v2 = s_json(fx->get.body);
    assert_int_equal(json_integer_value(json_object_get(v2, "version")), 2);
    assert_int_equal(json_array_size(json_object_get(v2, "routes")), 1);
    assert_int_equal(json_array_size(json_object_get(v2, "regions")), 0);
    json_t *cert = json_array_get(json_object_get(v2, "certificates"), 0);
    assert_string_equal(json_string_value(json_object_get(cert, "key")), "[redacted]");
    assert_string_equal(json_string_value(json_object_get(v2, "summary")),
                        "add certificate a.example.com");
    json_decref(v2);

    assert_int_equal(s_get(fx, "version", "0"), 200);
    json_t *v0 = s_json(fx->get.body);
    assert_int_equal(json_array_size(json_object_get(v0, "routes")), 0);
    json_decref(v0);
    assert_int_equal(s_get(fx, "version", "4"), 404);
    assert_int_equal(s_get(fx, "version", "x1"), 400);
    assert_string_equal(fx->get.field, "version");
    assert_int_equal(s_get(fx, "version", "99999999999999999999999"), 400);
}

static void
test_diff(void **state)
{
    s_fixture_t *fx = *state;
    s_three(fx);
    assert_int_equal(s_get(fx, "diff", "0:3"), 200);
    assert_null(strstr(fx->get.body, "SECRETKEYMATERIAL"));
    json_t *d = s_json(fx->get.body);
    assert_int_equal(json_integer_value(json_object_get(d, "from")), 0);
    assert_int_equal(json_integer_value(json_object_get(d, "to")), 3);
    json_t *added = json_object_get(json_object_get(d, "routes"), "added");
    assert_string_equal(json_string_value(json_array_get(added, 0)), "a.example.com");
    added = json_object_get(json_object_get(d, "regions"), "added");
    assert_string_equal(json_string_value(json_array_get(added, 0)), "2");
    json_decref(d);
    // backwards: removed
    assert_int_equal(s_get(fx, "diff", "3:1"), 200);
    d = s_json(fx->get.body);
    json_t *removed = json_object_get(json_object_get(d, "certificates"), "removed");
    assert_string_equal(json_string_value(json_array_get(removed, 0)), "a.example.com");
    json_decref(d);
    assert_int_equal(s_get(fx, "diff", "x:1"), 400);
    assert_string_equal(fx->get.field, "from");
    assert_int_equal(s_get(fx, "diff", "1:"), 400);
    assert_string_equal(fx->get.field, "to");
    assert_int_equal(s_get(fx, "diff", "1:9"), 404);
}

static void
test_rollback(void **state)
{
    s_fixture_t *fx = *state;
    s_three(fx);
    // one more: a backend, then roll back to version 1 (the route alone)
    assert_int_equal(s_put(fx, "backend", "a.example.com", "{\"hostname\": \"h2\", \"port\": 81}"),
                     201);
    assert_int_equal(s_get(fx, "version", "1"), 200);
    json_t *v1 = s_json(fx->get.body);
    assert_int_equal(s_put(fx, "rollback", "1", NULL), 200);
    json_t *body = s_json(fx->ans[fx->answers - 1].body);
    assert_int_equal(json_integer_value(json_object_get(body, "version")), 5);
    assert_int_equal(json_integer_value(json_object_get(body, "rolledBackTo")), 1);
    assert_int_equal(json_integer_value(json_object_get(body, "changes")), 3);
    json_decref(body);
    assert_true(fx->ans[fx->answers - 1].changed);
    assert_int_equal(rt_control_version(fx->ctl), 5);
    const rt_route_t *route = rt_table_get(rt_control_table(fx->ctl), "a.example.com");
    assert_non_null(route);
    assert_int_equal(route->backends_count, 1);
    uint32_t n = 9;
    rt_control_regions(fx->ctl, &n);
    assert_int_equal(n, 0);
    // version 5 is version 1 again (but for the version number)
    assert_int_equal(s_get(fx, "version", "5"), 200);
    json_t *v5 = s_json(fx->get.body);
    json_object_del(v1, "version");
    json_object_del(v5, "version");
    json_object_del(v1, "summary");
    json_object_del(v5, "summary");
    assert_true(json_equal(v1, v5));
    json_decref(v1);
    json_decref(v5);
    // and rolling back the rollback gives version 4's configuration
    assert_int_equal(s_put(fx, "rollback", "4", NULL), 200);
    route = rt_table_get(rt_control_table(fx->ctl), "a.example.com");
    assert_int_equal(route->backends_count, 2);
    assert_int_equal(s_put(fx, "rollback", "0", NULL), 200);
    assert_int_equal(rt_table_size(rt_control_table(fx->ctl)), 0);
    assert_int_equal(s_put(fx, "rollback", "42", NULL), 404);
    assert_int_equal(s_put(fx, "rollback", "-1", NULL), 400);
}

static void
test_answer_after_commit(void **state)
{
    s_fixture_t *fx = *state;
    fx->store.hold = true;
    assert_int_equal(s_put(fx, "route", "a.example.com", s_route_a), 0); // not yet
    assert_int_equal(fx->store.held_version, 1);
    // the next change waits for its turn; reads see the current state
    assert_int_equal(s_put(fx, "region", "2", "{\"publicAddress\": \"r2\"}"), 0);
    assert_int_equal(rt_control_queued(fx->ctl), 2);
    assert_int_equal(s_get(fx, "routes", NULL), 200);
    assert_string_equal(fx->get.body, "[]");
    assert_int_equal(fx->store.commits, 1);
    s_release(fx, RT_STORE_OK);
    assert_int_equal(fx->answers, 1);
    assert_int_equal(fx->ans[0].status, 201);
    assert_int_equal(fx->ans[0].version, 1);
    // the region's commit is in flight now, built on version 1
    assert_int_equal(fx->store.commits, 2);
    assert_int_equal(fx->store.held_version, 2);
    s_release(fx, RT_STORE_OK);
    assert_int_equal(fx->answers, 2);
    assert_int_equal(fx->ans[1].status, 201);
    assert_int_equal(rt_control_version(fx->ctl), 2);
    assert_int_equal(rt_control_queued(fx->ctl), 0);
}

static void
test_store_failures(void **state)
{
    s_fixture_t *fx = *state;
    fx->store.rc = RT_STORE_UNAVAILABLE;
    assert_int_equal(s_put(fx, "route", "a.example.com", s_route_a), 503);
    assert_false(fx->ans[0].changed);
    fx->store.rc = RT_STORE_FAILED;
    assert_int_equal(s_put(fx, "route", "a.example.com", s_route_a), 500);
    assert_int_equal(rt_control_version(fx->ctl), 0);
    assert_int_equal(rt_table_size(rt_control_table(fx->ctl)), 0);
    fx->store.rc = RT_STORE_OK;
    assert_int_equal(s_put(fx, "route", "a.example.com", s_route_a), 201);
    assert_int_equal(fx->ans[fx->answers - 1].version, 1);
}

static void
test_conflict_reloads_and_retries(void **state)
{
    s_fixture_t *fx = *state;
    fx->store.hold = true;
    assert_int_equal(s_put(fx, "route", "a.example.com", s_route_a), 0);
    s_release(fx, RT_STORE_CONFLICT);
    assert_int_equal(fx->answers, 0); // not answered: it runs again after the reload
    assert_int_equal(fx->store.reloads, 1);
    rt_store_data_t data = {0};
    s_theirs(&data, 7);
    rt_control_replace(fx->ctl, &data);
    assert_int_equal(fx->reloaded, 7);
    // run again on version 7
    assert_int_equal(fx->store.commits, 2);
    assert_int_equal(fx->store.held_version, 8);
    s_release(fx, RT_STORE_OK);
    assert_int_equal(fx->answers, 1);
    assert_int_equal(fx->ans[0].status, 201);
    assert_int_equal(fx->ans[0].version, 8);
    assert_non_null(rt_table_get(rt_control_table(fx->ctl), "b.example.com"));
    assert_non_null(rt_table_get(rt_control_table(fx->ctl), "a.example.com"));
}

static void
test_conflict_gives_up(void **state)
{
    s_fixture_t *fx = *state;
    fx->store.rc = RT_STORE_CONFLICT;
    assert_int_equal(s_put(fx, "route", "a.example.com", s_route_a), 0);
    for (int i = 1; i < RT_CONTROL_TRIES; i++) {
        rt_store_data_t data = {0};
        s_theirs(&data, (uint64_t) (10 + i));
        rt_control_replace(fx->ctl, &data);
    }
    assert_int_equal(fx->answers, 1);
    assert_int_equal(fx->ans[0].status, 503);
    assert_int_equal(fx->store.commits, RT_CONTROL_TRIES);
    // and a reload that cannot be made answers what waits
    fx->store.rc = RT_STORE_CONFLICT;
    assert_int_equal(s_put(fx, "route", "c.example.com", "{\"backends\": []}"), 0);
    rt_control_reload_failed(fx->ctl, "connection refused");
    assert_int_equal(fx->answers, 2);
    assert_int_equal(fx->ans[1].status, 503);
    assert_non_null(strstr(fx->ans[1].error, "connection refused"));
}

static void
test_replace_waits_for_commit(void **state)
{
    s_fixture_t *fx = *state;
    fx->store.hold = true;
    assert_int_equal(s_put(fx, "route", "a.example.com", s_route_a), 0);
    rt_store_data_t data = {0};
    s_theirs(&data, 9);
    rt_control_replace(fx->ctl, &data); // a refresh while our change is in flight
    assert_int_equal(fx->reloaded, 0);
    assert_int_equal(rt_control_version(fx->ctl), 0);
    s_release(fx, RT_STORE_OK);
    assert_int_equal(fx->ans[0].status, 201);
    assert_int_equal(fx->reloaded, 9); // then the newer configuration
    assert_int_equal(rt_control_version(fx->ctl), 9);
    // the same version again is not a change
    fx->reloaded = 0;
    s_theirs(&data, 9);
    rt_control_replace(fx->ctl, &data);
    assert_int_equal(fx->reloaded, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_certificates, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_certificate_shape, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_same_again_is_no_change, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_health_list, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_version_get, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_diff, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_rollback, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_answer_after_commit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_store_failures, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_conflict_reloads_and_retries, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_conflict_gives_up, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_replace_waits_for_commit, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
