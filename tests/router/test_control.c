/*  test_control - unit tests for rt_control: config.get/put/delete as
    docs/request-path.md's table has them, without the bus.

    Pins: statuses and bodies of every command; versions increase by one per
    change and never for a refusal or a no-op; history records each change;
    every change is in the state file before the answer; a failed save
    answers 500 and changes nothing; maintenance survives an edit of the
    route and a restart.
*/
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "../../router/rt_control.h"
#include "../../router/rt_store.h"
#include "proto_log.h"

#define S_NOW 1795299046123ull // 2026-11-21T22:10:46.123Z

typedef struct {
    char dir[64];       // private temp directory
    char path[128];     // <dir>/var/state.json
    rt_control_t *ctl;  // under test
    rt_result_t result; // last answer
} s_fixture_t;

static int
s_setup(void **state)
{
    s_fixture_t *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/rt-control-XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    snprintf(fx->path, sizeof fx->path, "%s/var/state.json", fx->dir);
    char err[512];
    fx->ctl = rt_control_open_file(fx->path, "eu-1", err, sizeof err);
    if (fx->ctl == NULL)
        return -1;
    *state = fx;
    return 0;
}

static void
s_rmtree(const char *path)
{
    DIR *dir = opendir(path);
    if (dir == NULL) {
        unlink(path);
        return;
    }
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char child[512];
        snprintf(child, sizeof child, "%s/%s", path, de->d_name);
        s_rmtree(child);
    }
    closedir(dir);
    rmdir(path);
}

static int
s_teardown(void **state)
{
    s_fixture_t *fx = *state;
    rt_result_clear(&fx->result);
    rt_control_destroy(&fx->ctl);
    s_rmtree(fx->dir);
    free(fx);
    return 0;
}

//  Run a command; returns the status. The answer stays in fx->result.
//  rt_control_done_fn: keep the answer (the file store answers at once).
static void
s_take(void *arg, rt_result_t *result)
{
    rt_result_t *keep = arg;
    if (result == NULL)
        return; // dropped at destroy
    *keep = *result;
    memset(result, 0, sizeof *result); // ours now: rt_control clears an empty one
}

static uint16_t
s_put(s_fixture_t *fx,
      const char *what,
      const char *key,
      const char *sub,
      int create_only,
      const char *body)
{
    rt_result_clear(&fx->result);
    proto_config_put_t cmd = {.what = what,
                              .key = key,
                              .sub = sub,
                              .create_only = (uint8_t) create_only,
                              .body = body,
                              .by = "test"};
    rt_control_put(fx->ctl, &cmd, S_NOW, s_take, &fx->result);
    return fx->result.status;
}

static uint16_t
s_get(s_fixture_t *fx, const char *what, const char *key)
{
    rt_result_clear(&fx->result);
    proto_config_get_t cmd = {.what = what, .key = key};
    rt_control_get(fx->ctl, &cmd, &fx->result);
    return fx->result.status;
}

static uint16_t
s_delete(s_fixture_t *fx, const char *what, const char *key, const char *sub)
{
    rt_result_clear(&fx->result);
    proto_config_delete_t cmd = {.what = what, .key = key, .sub = sub, .by = ""};
    rt_control_delete(fx->ctl, &cmd, S_NOW, s_take, &fx->result);
    return fx->result.status;
}

//  The answer's body parsed (caller frees).
static json_t *
s_body(const s_fixture_t *fx)
{
    assert_non_null(fx->result.body);
    json_t *json = json_loads(fx->result.body, 0, NULL);
    assert_non_null(json);
    return json;
}

//  The state file as JSON (caller frees).
static json_t *
s_file(const s_fixture_t *fx)
{
    json_t *json = json_load_file(fx->path, 0, NULL);
    assert_non_null(json);
    return json;
}

static const char *s_api = "{\"vHost\": \"api.example.com\", \"backends\": [{\"id\": \"n1\", "
                           "\"hostname\": \"10.0.0.1\", \"port\": 3000}, {\"hostname\": "
                           "\"10.0.0.2\", \"port\": 3000, \"region\": \"2\"}]}";

static void
test_empty_start(void **state)
{
    s_fixture_t *fx = *state;
    assert_int_equal(rt_control_version(fx->ctl), 0);
    assert_int_equal(s_get(fx, "routes", NULL), 200);
    assert_string_equal(fx->result.body, "[]");
    assert_int_equal(fx->result.version, 0);
    assert_false(fx->result.changed);
    assert_int_equal(s_get(fx, "route", "api.example.com"), 404);
    assert_int_equal(s_get(fx, "versions", NULL), 200);
    assert_string_equal(fx->result.body, "[]");
    assert_int_equal(s_get(fx, "regions", NULL), 200);
    assert_string_equal(fx->result.body, "[]");
    assert_int_equal(s_get(fx, "bogus", NULL), 400);
    assert_string_equal(fx->result.field, "what");
    assert_int_equal(access(fx->path, F_OK), -1); // reads write nothing
}

static void
test_put_route(void **state)
{
    s_fixture_t *fx = *state;
    assert_int_equal(s_put(fx, "route", "api.example.com", NULL, 0, s_api), 201);
    assert_int_equal(fx->result.version, 1);
    assert_true(fx->result.changed);
    assert_string_equal(fx->result.what, "route");
    assert_string_equal(fx->result.key, "api.example.com");
    json_t *route = s_body(fx);
    json_t *b1 = json_array_get(json_object_get(route, "backends"), 1);
    assert_string_equal(json_string_value(json_object_get(b1, "id")), "10.0.0.2:3000");
    assert_string_equal(json_string_value(json_object_get(b1, "region")), "2");
    json_t *b0 = json_array_get(json_object_get(route, "backends"), 0);
    assert_string_equal(json_string_value(json_object_get(b0, "region")), "eu-1"); // REGION
    assert_true(json_is_false(json_object_get(b0, "isDead")));
    assert_true(json_is_null(json_object_get(b0, "latencyMs")));
    json_decref(route);

    // in the file before the answer
    json_t *file = s_file(fx);
    assert_int_equal(json_integer_value(json_object_get(file, "version")), 1);
    json_t *stored = json_array_get(json_object_get(file, "routes"), 0);
    assert_string_equal(json_string_value(json_object_get(stored, "vHost")), "api.example.com");
    assert_null(json_object_get(json_array_get(json_object_get(stored, "backends"), 0), "isDead"));
    json_t *h = json_array_get(json_object_get(file, "history"), 0);
    assert_int_equal(json_integer_value(json_object_get(h, "version")), 1);
    assert_string_equal(json_string_value(json_object_get(h, "at")), "2026-11-21T22:10:46.123Z");
    assert_string_equal(json_string_value(json_object_get(h, "by")), "test");
    assert_string_equal(json_string_value(json_object_get(h, "summary")),
                        "PUT route api.example.com");
    json_decref(file);

    // the same route again: 200, not a change (no new version)
    assert_int_equal(s_put(fx, "route", "API.example.com", NULL, 0, s_api), 200);
    assert_int_equal(fx->result.version, 1);
    assert_false(fx->result.changed);
    // replace: 200, next version
    assert_int_equal(s_put(fx, "route", "API.example.com", NULL, 0,
                           "{\"vHost\": \"api.example.com\", \"backends\": [], \"retries\": 1}"),
                     200);
    assert_int_equal(fx->result.version, 2);
    assert_true(fx->result.changed);
    assert_int_equal(s_get(fx, "routes", NULL), 200);
    json_t *all = s_body(fx);
    assert_int_equal(json_array_size(all), 1);
    json_decref(all);
    assert_int_equal(s_get(fx, "route", "Api.Example.Com"), 200);
    assert_int_equal(fx->result.version, 2);
}

static void
test_post_route_conflict(void **state)
{
    s_fixture_t *fx = *state;
    assert_int_equal(s_put(fx, "route", NULL, NULL, 1, s_api), 201);
    const char *upper = "{\"vHost\": \"API.EXAMPLE.COM\", \"backends\": []}";
    assert_int_equal(s_put(fx, "route", NULL, NULL, 1, upper), 409);
    assert_string_equal(fx->result.field, "vHost");
    assert_int_equal(fx->result.version, 1);
    assert_false(fx->result.changed);
    assert_int_equal(s_get(fx, "versions", NULL), 200);
    json_t *versions = s_body(fx);
    assert_int_equal(json_array_size(versions), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(versions, 0), "summary")),
                        "POST route api.example.com");
    json_decref(versions);
}

static void
test_bad_input(void **state)
{
    s_fixture_t *fx = *state;
    assert_int_equal(s_put(fx, "route", "other.com", NULL, 0, s_api), 400);
    assert_string_equal(fx->result.field, "vHost");
    assert_int_equal(s_put(fx, "route", "a.com", NULL, 0, "{\"backends\": [{\"port\": 1}]}"), 400);
    assert_string_equal(fx->result.field, "backends[0].hostname");
    assert_int_equal(s_put(fx, "route", "a.com", NULL, 0, "{not json"), 400);
    assert_non_null(strstr(fx->result.error, "invalid JSON"));
    assert_int_equal(s_put(fx, "route", "a.com", NULL, 0, "[1]"), 400);
    assert_int_equal(s_put(fx, "route", "a.com", NULL, 0, ""), 400);
    assert_int_equal(s_put(fx, "route", "a.com", NULL, 0, NULL), 400);
    assert_int_equal(
        s_put(fx, "route", "a.com", NULL, 0, "{\"vHost\": \"a.com\", \"vHost\": \"b.com\"}"), 400);
    assert_int_equal(s_put(fx, "listener", "a.com", NULL, 0, "{}"), 400);
    assert_string_equal(fx->result.field, "what");
    assert_int_equal(s_put(fx, "certificate", "a.com", NULL, 0, "{}"), 400);
    assert_string_equal(fx->result.field, "domain");
    assert_int_equal(s_delete(fx, "region", "2", NULL), 404);
    assert_false(fx->result.changed);
    assert_int_equal(fx->result.version, 0);
    assert_int_equal(rt_control_version(fx->ctl), 0);
    assert_int_equal(access(fx->path, F_OK), -1);
    // the vHost may come from the path alone
    assert_int_equal(s_put(fx, "route", "a.com", NULL, 0, "{\"backends\": []}"), 201);
}

static void
test_backends(void **state)
{
    s_fixture_t *fx = *state;
    assert_int_equal(
        s_put(fx, "backend", "api.example.com", NULL, 0, "{\"hostname\": \"h\", \"port\": 1}"),
        404);
    assert_int_equal(s_put(fx, "route", "api.example.com", NULL, 0, s_api), 201);
    assert_int_equal(s_put(fx, "backend", "api.example.com", NULL, 0,
                           "{\"hostname\": \"10.0.0.3\", \"port\": 3001, \"weight\": 2}"),
                     201);
    assert_int_equal(fx->result.version, 2);
    assert_string_equal(fx->result.what, "backend");
    json_t *be = s_body(fx);
    assert_string_equal(json_string_value(json_object_get(be, "id")), "10.0.0.3:3001");
    assert_string_equal(json_string_value(json_object_get(be, "region")), "eu-1");
    assert_int_equal(json_integer_value(json_object_get(be, "weight")), 2);
    assert_true(json_is_false(json_object_get(be, "isDead")));
    json_decref(be);
    assert_int_equal(s_put(fx, "backend", "api.example.com", NULL, 0,
                           "{\"id\": \"n1\", \"hostname\": \"x\", \"port\": 1}"),
                     409);
    assert_string_equal(fx->result.field, "id");
    assert_int_equal(
        s_put(fx, "backend", "api.example.com", NULL, 0, "{\"hostname\": \"x\", \"port\": 99999}"),
        400);
    assert_string_equal(fx->result.field, "port");
    const rt_route_t *route = rt_table_get(rt_control_table(fx->ctl), "api.example.com");
    assert_int_equal(route->backends_count, 3);

    assert_int_equal(s_delete(fx, "backend", "api.example.com", "nope"), 404);
    assert_int_equal(s_delete(fx, "backend", "nope.com", "n1"), 404);
    assert_int_equal(s_delete(fx, "backend", "api.example.com", "n1"), 204);
    assert_null(fx->result.body);
    assert_int_equal(fx->result.version, 3);
    route = rt_table_get(rt_control_table(fx->ctl), "api.example.com");
    assert_int_equal(route->backends_count, 2);
    assert_string_equal(route->backends[0].id, "10.0.0.2:3000");
}

static void
test_maintenance(void **state)
{
    s_fixture_t *fx = *state;
    assert_int_equal(s_put(fx, "route", "api.example.com", NULL, 0, s_api), 201);
    assert_int_equal(s_put(fx, "dead", "api.example.com", "nope", 0, NULL), 404);
    assert_int_equal(s_put(fx, "dead", "no.com", "n1", 0, NULL), 404);
    assert_int_equal(s_put(fx, "dead", "api.example.com", "n1", 0, NULL), 200);
    assert_int_equal(fx->result.version, 2);
    assert_string_equal(fx->result.what, "dead");
    json_t *be = s_body(fx);
    assert_true(json_is_true(json_object_get(be, "isDead")));
    assert_int_equal(json_integer_value(json_object_get(be, "deadSince")), (json_int_t) S_NOW);
    json_decref(be);
    const rt_route_t *route = rt_table_get(rt_control_table(fx->ctl), "api.example.com");
    assert_true(route->pick[0].maint);
    // again: already dead, no new version
    assert_int_equal(s_put(fx, "dead", "api.example.com", "n1", 0, NULL), 200);
    assert_int_equal(fx->result.version, 2);
    assert_false(fx->result.changed);
    // an edit of the route (GET -> edit -> PUT, runtime fields sent back) keeps it
    assert_int_equal(s_get(fx, "route", "api.example.com"), 200);
    json_t *doc = s_body(fx);
    json_object_set_new(doc, "retries", json_integer(1));
    json_object_set_new(json_array_get(json_object_get(doc, "backends"), 0), "isDead",
                        json_false()); // ignored
    char *text = json_dumps(doc, 0);
    json_decref(doc);
    assert_int_equal(s_put(fx, "route", "api.example.com", NULL, 0, text), 200);
    free(text);
    route = rt_table_get(rt_control_table(fx->ctl), "api.example.com");
    assert_int_equal(route->retries, 1);
    assert_true(route->backends[0].maint);
    // in the file
    json_t *file = s_file(fx);
    json_t *maint =
        json_object_get(json_array_get(json_object_get(file, "routes"), 0), "maintenance");
    assert_int_equal(json_array_size(maint), 1);
    assert_string_equal(json_string_value(json_array_get(maint, 0)), "n1");
    json_decref(file);
    // alive
    assert_int_equal(s_put(fx, "alive", "api.example.com", "n1", 0, NULL), 200);
    assert_int_equal(fx->result.version, 4);
    be = s_body(fx);
    assert_true(json_is_false(json_object_get(be, "isDead")));
    assert_true(json_is_null(json_object_get(be, "deadSince")));
    json_decref(be);
}

static void
test_delete_route(void **state)
{
    s_fixture_t *fx = *state;
    assert_int_equal(s_delete(fx, "route", "api.example.com", NULL), 404);
    assert_int_equal(fx->result.version, 0);
    assert_int_equal(s_put(fx, "route", "api.example.com", NULL, 0, s_api), 201);
    assert_int_equal(s_delete(fx, "route", "API.example.com", NULL), 204);
    assert_int_equal(fx->result.version, 2);
    assert_true(fx->result.changed);
    assert_string_equal(fx->result.key, "api.example.com");
    assert_null(rt_table_match(rt_control_table(fx->ctl), "api.example.com"));
    assert_int_equal(s_get(fx, "versions", NULL), 200);
    json_t *versions = s_body(fx); // newest first
    assert_int_equal(json_array_size(versions), 2);
    json_t *v0 = json_array_get(versions, 0);
    assert_int_equal(json_integer_value(json_object_get(v0, "version")), 2);
    assert_string_equal(json_string_value(json_object_get(v0, "by")), "local"); // by "" is local
    assert_string_equal(json_string_value(json_object_get(v0, "summary")),
                        "DELETE route api.example.com");
    json_decref(versions);
}

static void
test_save_failure_changes_nothing(void **state)
{
    s_fixture_t *fx = *state;
    assert_int_equal(s_put(fx, "route", "api.example.com", NULL, 0, s_api), 201);
    // make the directory impossible: replace var/ by a file
    char var[128], moved[160];
    snprintf(var, sizeof var, "%s/var", fx->dir);
    snprintf(moved, sizeof moved, "%s/var.saved", fx->dir);
    assert_int_equal(rename(var, moved), 0);
    FILE *f = fopen(var, "w");
    assert_non_null(f);
    fclose(f);

    assert_int_equal(s_put(fx, "route", "b.com", NULL, 0, "{\"backends\": []}"), 500);
    assert_int_equal(fx->result.version, 1);
    assert_false(fx->result.changed);
    assert_int_equal(s_put(fx, "dead", "api.example.com", "n1", 0, NULL), 500);
    assert_int_equal(s_delete(fx, "route", "api.example.com", NULL), 500);
    assert_int_equal(rt_control_version(fx->ctl), 1);
    assert_null(rt_table_match(rt_control_table(fx->ctl), "b.com"));
    const rt_route_t *route = rt_table_match(rt_control_table(fx->ctl), "api.example.com");
    assert_non_null(route);
    assert_false(route->backends[0].maint);
    assert_int_equal(s_get(fx, "versions", NULL), 200);
    json_t *versions = s_body(fx);
    assert_int_equal(json_array_size(versions), 1);
    json_decref(versions);

    // the store is back: changes work again, from the version in memory
    unlink(var);
    assert_int_equal(rename(moved, var), 0);
    assert_int_equal(s_put(fx, "route", "b.com", NULL, 0, "{\"backends\": []}"), 201);
    assert_int_equal(fx->result.version, 2);
}

static void
test_reload(void **state)
{
    s_fixture_t *fx = *state;
    assert_int_equal(s_put(fx, "route", "api.example.com", NULL, 0, s_api), 201);
    assert_int_equal(s_put(fx, "route", "*.example.com", NULL, 0, "{\"backends\": []}"), 201);
    assert_int_equal(s_put(fx, "dead", "api.example.com", "n1", 0, NULL), 200);
    char err[512];
    rt_control_t *again = rt_control_open_file(fx->path, "eu-1", err, sizeof err);
    assert_non_null(again);
    assert_int_equal(rt_control_version(again), 3);
    const rt_route_t *route = rt_table_match(rt_control_table(again), "api.example.com");
    assert_true(route->backends[0].maint);
    assert_non_null(rt_table_match(rt_control_table(again), "x.example.com"));
    rt_control_destroy(&again);
}

static void
test_history_capped(void **state)
{
    s_fixture_t *fx = *state;
    // a file with a full history: one change drops the oldest entry
    rt_store_data_t data = {0};
    data.version = 1000;
    data.history = json_array();
    for (int i = 1; i <= RT_STORE_HISTORY_MAX; i++)
        json_array_append_new(data.history, rt_store_history_entry((uint64_t) i, 0, "a", "b"));
    char err[512];
    assert_int_equal(rt_store_save(fx->path, &data, err, sizeof err), 0);
    rt_store_data_clear(&data);
    rt_control_t *ctl = rt_control_open_file(fx->path, "1", err, sizeof err);
    assert_non_null(ctl);
    rt_control_destroy(&fx->ctl);
    fx->ctl = ctl;
    assert_int_equal(s_put(fx, "route", "a.com", NULL, 0, "{\"backends\": []}"), 201);
    assert_int_equal(fx->result.version, 1001);
    assert_int_equal(s_get(fx, "versions", NULL), 200);
    json_t *versions = s_body(fx);
    assert_int_equal(json_array_size(versions), RT_STORE_HISTORY_MAX);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(versions, 0), "version")),
                     1001);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(versions, 999), "version")),
                     2);
    json_decref(versions);
}

static void
test_regions_for_pick(void **state)
{
    s_fixture_t *fx = *state;
    char err[512];
    FILE *f = fopen(fx->path, "w");
    if (f == NULL) { // var/ is made by the first save
        rt_store_data_t data = {0};
        assert_int_equal(rt_store_save(fx->path, &data, err, sizeof err), 0);
        f = fopen(fx->path, "w");
    }
    assert_non_null(f);
    fputs("{\"format\": 1, \"version\": 4, \"regions\": [{\"id\": \"1\", \"publicAddress\": null}, "
          "{\"id\": \"2\", \"publicAddress\": \"r2.example.net:80\"}]}",
          f);
    fclose(f);
    rt_control_t *ctl = rt_control_open_file(fx->path, "1", err, sizeof err);
    assert_non_null(ctl);
    uint32_t n = 0;
    const proto_region_t *regions = rt_control_regions(ctl, &n);
    assert_int_equal(n, 1); // only regions with a public address
    assert_string_equal(regions[0].id, "2");
    assert_string_equal(regions[0].address, "r2.example.net:80");
    rt_control_destroy(&ctl);
}

//  The one region rt_control_regions carries for id, or NULL.
static const char *
s_pick_address(const rt_control_t *ctl, const char *id)
{
    uint32_t n = 0;
    const proto_region_t *regions = rt_control_regions(ctl, &n);
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(regions[i].id, id) == 0)
            return regions[i].address;
    return NULL;
}

static void
test_regions_registry(void **state)
{
    s_fixture_t *fx = *state;
    // new: 201, stored with its port, in the file before the answer
    assert_int_equal(s_put(fx, "region", "2", NULL, 0, "{\"publicAddress\": \"r2.example.net\"}"),
                     201);
    assert_string_equal(fx->result.body, "{\"id\":\"2\",\"publicAddress\":\"r2.example.net:80\"}");
    assert_int_equal(fx->result.version, 1);
    assert_true(fx->result.changed);
    assert_string_equal(fx->result.what, "region");
    assert_string_equal(fx->result.key, "2");
    json_t *file = s_file(fx);
    assert_int_equal(json_integer_value(json_object_get(file, "version")), 1);
    json_t *r0 = json_array_get(json_object_get(file, "regions"), 0);
    assert_string_equal(json_string_value(json_object_get(r0, "publicAddress")),
                        "r2.example.net:80");
    json_decref(file);
    assert_string_equal(s_pick_address(fx->ctl, "2"), "r2.example.net:80");

    // replaced: 200, a new version, and pick carries the new address
    assert_int_equal(
        s_put(fx, "region", "2", NULL, 0, "{\"id\": \"2\", \"publicAddress\": \"10.9.0.2:8080\"}"),
        200);
    assert_int_equal(fx->result.version, 2);
    assert_string_equal(s_pick_address(fx->ctl, "2"), "10.9.0.2:8080");
    assert_int_equal(s_put(fx, "region", "3", NULL, 0, "{\"publicAddress\": \"[2001:db8::3]\"}"),
                     201);
    assert_int_equal(s_get(fx, "regions", NULL), 200);
    assert_string_equal(fx->result.body, "[{\"id\":\"2\",\"publicAddress\":\"10.9.0.2:8080\"},"
                                         "{\"id\":\"3\",\"publicAddress\":\"[2001:db8::3]:80\"}]");
    assert_int_equal(fx->result.version, 3);

    // bad input: 400 on the field, nothing changed
    struct {
        const char *key, *body, *field;
    } bad[] = {
        {"2", "{\"publicAddress\": \"a.com:0\"}", "publicAddress"},
        {"2", "{\"publicAddress\": 80}", "publicAddress"},
        {"2", "{\"publicAddress\": \"::1\"}", "publicAddress"},
        {"2", "{}", "publicAddress"},
        {"2", "{\"publicAddress\": \"a.com\", \"x\": 1}", "x"},
        {"2", "{\"id\": \"9\", \"publicAddress\": \"a.com\"}", "id"},
        {"a b", "{\"publicAddress\": \"a.com\"}", "id"},
        {"", "{\"publicAddress\": \"a.com\"}", "id"},
        {"2", "[1]", ""},
        {"2", "{\"publicAddress\": \"a.com\", \"publicAddress\": \"b.com\"}", ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (s_put(fx, "region", bad[i].key, NULL, 0, bad[i].body) != 400)
            fail_msg("%s: %u, expected 400", bad[i].body, fx->result.status);
        assert_string_equal(fx->result.field, bad[i].field);
        assert_false(fx->result.changed);
        assert_int_equal(fx->result.version, 3);
    }
    assert_string_equal(s_pick_address(fx->ctl, "2"), "10.9.0.2:8080");

    // delete: 204, then 404; history has every change
    assert_int_equal(s_delete(fx, "region", "3", NULL), 204);
    assert_null(fx->result.body);
    assert_int_equal(fx->result.version, 4);
    assert_true(fx->result.changed);
    assert_null(s_pick_address(fx->ctl, "3"));
    assert_int_equal(s_delete(fx, "region", "3", NULL), 404);
    assert_false(fx->result.changed);
    assert_int_equal(fx->result.version, 4);
    assert_int_equal(s_get(fx, "versions", NULL), 200);
    json_t *versions = s_body(fx);
    assert_int_equal(json_array_size(versions), 4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(versions, 0), "summary")),
                        "DELETE region 3");
    json_decref(versions);

    // a restart serves the same regions
    char err[512];
    rt_control_t *again = rt_control_open_file(fx->path, "eu-1", err, sizeof err);
    assert_non_null(again);
    assert_int_equal(rt_control_version(again), 4);
    assert_string_equal(s_pick_address(again, "2"), "10.9.0.2:8080");
    assert_null(s_pick_address(again, "3"));
    rt_control_destroy(&again);
}

static void
test_regions_save_failure(void **state)
{
    s_fixture_t *fx = *state;
    assert_int_equal(s_put(fx, "region", "2", NULL, 0, "{\"publicAddress\": \"a.com\"}"), 201);
    char var[128], moved[160];
    snprintf(var, sizeof var, "%s/var", fx->dir);
    snprintf(moved, sizeof moved, "%s/var.saved", fx->dir);
    assert_int_equal(rename(var, moved), 0);
    FILE *f = fopen(var, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(s_put(fx, "region", "2", NULL, 0, "{\"publicAddress\": \"b.com\"}"), 500);
    assert_false(fx->result.changed);
    assert_int_equal(s_put(fx, "region", "3", NULL, 0, "{\"publicAddress\": \"c.com\"}"), 500);
    assert_int_equal(s_delete(fx, "region", "2", NULL), 500);
    assert_int_equal(rt_control_version(fx->ctl), 1);
    assert_string_equal(s_pick_address(fx->ctl, "2"), "a.com:80");
    assert_int_equal(s_get(fx, "regions", NULL), 200);
    assert_string_equal(fx->result.body, "[{\"id\":\"2\",\"publicAddress\":\"a.com:80\"}]");
    unlink(var);
    assert_int_equal(rename(moved, var), 0);
}

static void
test_regions_bound(void **state)
{
    s_fixture_t *fx = *state;
    char id[16];
    for (int i = 0; i < RT_CONTROL_REGIONS_MAX; i++) {
        snprintf(id, sizeof id, "r%d", i);
        assert_int_equal(s_put(fx, "region", id, NULL, 0, "{\"publicAddress\": \"a.com\"}"), 201);
    }
    assert_int_equal(s_put(fx, "region", "one-more", NULL, 0, "{\"publicAddress\": \"a.com\"}"),
                     400);
    assert_string_equal(fx->result.field, "id");
    // replacing one is still fine
    assert_int_equal(s_put(fx, "region", "r0", NULL, 0, "{\"publicAddress\": \"b.com\"}"), 200);
    uint32_t n = 0;
    rt_control_regions(fx->ctl, &n);
    assert_int_equal(n, RT_CONTROL_REGIONS_MAX);
}

int
main(void)
{
#define S_TEST(fn) cmocka_unit_test_setup_teardown(fn, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        S_TEST(test_empty_start),
        S_TEST(test_put_route),
        S_TEST(test_post_route_conflict),
        S_TEST(test_bad_input),
        S_TEST(test_backends),
        S_TEST(test_maintenance),
        S_TEST(test_delete_route),
        S_TEST(test_save_failure_changes_nothing),
        S_TEST(test_reload),
        S_TEST(test_history_capped),
        S_TEST(test_regions_for_pick),
        S_TEST(test_regions_registry),
        S_TEST(test_regions_save_failure),
        S_TEST(test_regions_bound),
    };
    // the expected "cannot save" error lines go nowhere
    int devnull = open("/dev/null", O_WRONLY);
    proto_log_setup("router", "test", PROTO_LOG_WARN, PROTO_LOG_JSON, devnull);
    int rc = cmocka_run_group_tests_name("rt_control", tests, NULL, NULL);
    proto_log_shutdown();
    close(devnull);
    return rc;
}
