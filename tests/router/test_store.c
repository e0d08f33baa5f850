/*  test_store - unit tests for rt_store, the file store.

    Pins: a missing file is an empty configuration at version 0; a save and a
    load give back the same document (routes with maintenance, regions,
    history); a save replaces the file atomically and leaves no temp file,
    also when it fails; the parent directory is created; malformed or
    unreadable files are refused with a reason naming the problem.
*/
#include <dirent.h>
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

#include "../../router/rt_store.h"

typedef struct {
    char dir[64]; // private temp directory
} s_fixture_t;

static int
s_setup(void **state)
{
    s_fixture_t *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/rt-store-XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
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
    s_rmtree(fx->dir);
    free(fx);
    return 0;
}

static void
s_path(const s_fixture_t *fx, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", fx->dir, name);
}

static void
s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

//  Names in a directory, sorted and comma-separated, into out.
static void
s_listing(const char *path, char *out, size_t cap)
{
    struct dirent **names;
    int n = scandir(path, &names, NULL, alphasort);
    assert_true(n >= 0);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.' || strlen(names[i]->d_name) > 2) {
            if (strcmp(names[i]->d_name, "..") != 0 && strcmp(names[i]->d_name, ".") != 0) {
                size_t len = strlen(out);
                snprintf(out + len, cap - len, "%s%s", len ? "," : "", names[i]->d_name);
            }
        }
        free(names[i]);
    }
    free(names);
}

static rt_route_t *
s_route(const char *text)
{
    json_t *json = json_loads(text, 0, NULL);
    assert_non_null(json);
    rt_error_t err = {.message = ""};
    rt_route_t *route = rt_route_new(json, "1", &err);
    json_decref(json);
    if (route == NULL)
        fail_msg("%s (%s)", err.message, err.field);
    return route;
}

//  A configuration with two routes (one backend in maintenance), a region
//  and two history entries.
static void
s_sample(rt_store_data_t *data)
{
    memset(data, 0, sizeof *data);
    data->version = 7;
    data->table = rt_table_new();
    rt_route_t *a = s_route("{\"vHost\": \"api.example.com\", \"headers\": {\"X-Env\": \"prod\"}, "
                            "\"backends\": [{\"id\": \"n1\", \"hostname\": \"10.0.0.1\", "
                            "\"port\": 3000}, {\"id\": \"n2\", \"hostname\": \"10.0.0.2\", "
                            "\"port\": 3000, \"region\": \"2\", \"weight\": 3}]}");
    rt_route_set_maint(a, 1, true, 1700000000000ull);
    rt_table_put(data->table, a);
    rt_route_unref(&a);
    rt_route_t *b = s_route("{\"vHost\": \"*.example.com\", \"strategy\": \"IP_HASH\", "
                            "\"backends\": []}");
    rt_table_put(data->table, b);
    rt_route_unref(&b);
    data->regions = json_pack("[{s:s, s:s}]", "id", "2", "publicAddress", "10.0.0.2:80");
    data->history = json_array();
    json_array_append_new(data->history, rt_store_history_entry(6, 1700000000000ull, "local",
                                                                "PUT route api.example.com"));
    json_array_append_new(data->history, rt_store_history_entry(7, 1700000000123ull, "ops",
                                                                "PUT route *.example.com"));
}

static void
test_missing_is_empty(void **state)
{
    s_fixture_t *fx = *state;
    char path[256], err[512] = "";
    s_path(fx, "none/state.json", path, sizeof path);
    rt_store_data_t data = {0};
    assert_int_equal(rt_store_load(path, "1", &data, err, sizeof err), 1);
    assert_int_equal(data.version, 0);
    assert_int_equal(rt_table_size(data.table), 0);
    assert_int_equal(json_array_size(data.regions), 0);
    assert_int_equal(json_array_size(data.history), 0);
    rt_store_data_clear(&data);
    rt_store_data_clear(&data); // safe twice
}

static void
test_round_trip(void **state)
{
    s_fixture_t *fx = *state;
    char path[256], err[512] = "";
    s_path(fx, "var/state.json", path, sizeof path); // var/ does not exist yet
    rt_store_data_t data;
    s_sample(&data);
    assert_int_equal(rt_store_save(path, &data, err, sizeof err), 0);

    rt_store_data_t back = {0};
    if (rt_store_load(path, "1", &back, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(back.version, 7);
    assert_int_equal(rt_table_size(back.table), 2);
    rt_route_t *a = rt_table_match(back.table, "api.example.com");
    assert_non_null(a);
    assert_false(a->backends[0].maint);
    assert_true(a->backends[1].maint);
    assert_true(a->pick[1].maint);
    assert_int_equal(a->backends[1].weight, 3);
    assert_string_equal(a->backends[1].region, "2");
    assert_string_equal(a->headers[0].value, "prod");
    assert_string_equal(rt_table_match(back.table, "x.example.com")->strategy, "IP_HASH");
    assert_string_equal(rt_table_at(back.table, 0)->vhost, "api.example.com"); // order kept

    // the same document, key for key
    json_t *d1 = rt_store_document(&data);
    json_t *d2 = rt_store_document(&back);
    assert_true(json_equal(d1, d2));
    json_t *h = json_array_get(json_object_get(d2, "history"), 1);
    assert_string_equal(json_string_value(json_object_get(h, "at")), "2023-11-14T22:13:20.123Z");
    assert_string_equal(json_string_value(json_object_get(h, "by")), "ops");
    assert_int_equal(json_integer_value(json_object_get(d2, "format")), 1);
    json_decref(d1);
    json_decref(d2);
    rt_store_data_clear(&back);
    rt_store_data_clear(&data);
}

static void
test_atomic_replace_leaves_no_temp(void **state)
{
    s_fixture_t *fx = *state;
    char path[256], dir[256], err[512] = "", listing[1024];
    s_path(fx, "d", dir, sizeof dir);
    s_path(fx, "d/state.json", path, sizeof path);
    rt_store_data_t data;
    s_sample(&data);
    for (int i = 0; i < 5; i++) {
        data.version = (uint64_t) (10 + i);
        assert_int_equal(rt_store_save(path, &data, err, sizeof err), 0);
        s_listing(dir, listing, sizeof listing);
        assert_string_equal(listing, "state.json");
        rt_store_data_t back = {0};
        assert_int_equal(rt_store_load(path, "1", &back, err, sizeof err), 0);
        assert_int_equal(back.version, 10 + i);
        rt_store_data_clear(&back);
    }
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 077, 0); // may hold keys one day: owner only
    rt_store_data_clear(&data);
}

static void
test_failed_save_changes_nothing(void **state)
{
    s_fixture_t *fx = *state;
    char path[256], blocker[256], err[512] = "", listing[1024];
    // the directory cannot be created: a file is in the way
    s_path(fx, "blocker", blocker, sizeof blocker);
    s_write(blocker, "x");
    s_path(fx, "blocker/state.json", path, sizeof path);
    rt_store_data_t data;
    s_sample(&data);
    assert_int_equal(rt_store_save(path, &data, err, sizeof err), -1);
    assert_non_null(strstr(err, "blocker"));
    // a read-only directory: the temp file cannot be made, the old file stays
    char dir[256], good[256];
    s_path(fx, "ro", dir, sizeof dir);
    s_path(fx, "ro/state.json", good, sizeof good);
    assert_int_equal(rt_store_save(good, &data, err, sizeof err), 0);
    if (geteuid() != 0) { // root writes anywhere
        assert_int_equal(chmod(dir, 0555), 0);
        data.version = 99;
        assert_int_equal(rt_store_save(good, &data, err, sizeof err), -1);
        assert_int_equal(chmod(dir, 0755), 0);
        rt_store_data_t back = {0};
        assert_int_equal(rt_store_load(good, "1", &back, err, sizeof err), 0);
        assert_int_equal(back.version, 7);
        rt_store_data_clear(&back);
    }
    s_listing(dir, listing, sizeof listing);
    assert_string_equal(listing, "state.json");
    rt_store_data_clear(&data);
}

//  Expect a file with this text to be refused with needle in the reason.
static void
s_refused(const s_fixture_t *fx, const char *text, const char *needle)
{
    char path[256], err[512] = "";
    s_path(fx, "bad.json", path, sizeof path);
    s_write(path, text);
    rt_store_data_t data = {0};
    int rc = rt_store_load(path, "1", &data, err, sizeof err);
    if (rc != -1 || strstr(err, needle) == NULL)
        fail_msg("%s: rc %d, err '%s', want '%s'", text, rc, err, needle);
    assert_null(data.table); // left empty
    assert_null(strchr(err, '\n'));
}

static void
test_malformed_refused(void **state)
{
    s_fixture_t *fx = *state;
    s_refused(fx, "", "not readable JSON");
    s_refused(fx, "{\"format\": 1, \"version\": 1", "not readable JSON");
    s_refused(fx, "[]", "not a JSON object");
    s_refused(fx, "{\"version\": 1}", "\"format\"");
    s_refused(fx, "{\"format\": 2, \"version\": 1}", "\"format\"");
    s_refused(fx, "{\"format\": 1}", "\"version\"");
    s_refused(fx, "{\"format\": 1, \"version\": -1}", "\"version\"");
    s_refused(fx, "{\"format\": 1, \"version\": 1, \"version\": 2}", "duplicate");
    s_refused(fx, "{\"format\": 1, \"version\": 1, \"routes\": {}}", "\"routes\"");
    s_refused(fx,
              "{\"format\": 1, \"version\": 1, \"routes\": [{\"vHost\": \"a.com\", \"backends\": "
              "[{\"hostname\": \"h\", \"port\": 0}]}]}",
              "routes[0].backends[0].port");
    s_refused(
        fx,
        "{\"format\": 1, \"version\": 1, \"routes\": [{\"vHost\": \"a.com\", \"backends\": []}, "
        "{\"vHost\": \"A.com\", \"backends\": []}]}",
        "appears twice");
    s_refused(
        fx,
        "{\"format\": 1, \"version\": 1, \"routes\": [{\"vHost\": \"a.com\", \"backends\": [], "
        "\"maintenance\": \"x\"}]}",
        "maintenance");
    s_refused(fx, "{\"format\": 1, \"version\": 1, \"regions\": [{\"id\": 2}]}", "regions[0]");
    s_refused(fx, "{\"format\": 1, \"version\": 1, \"history\": [1]}", "history[0]");
}

static void
test_unreadable_refused(void **state)
{
    s_fixture_t *fx = *state;
    char err[512] = "";
    rt_store_data_t data = {0};
    // a directory where the file should be
    assert_int_equal(rt_store_load(fx->dir, "1", &data, err, sizeof err), -1);
    assert_non_null(strstr(err, fx->dir));
    assert_null(data.table);
}

static void
test_load_lenient_parts(void **state)
{
    s_fixture_t *fx = *state;
    char path[256], err[512] = "";
    s_path(fx, "ok.json", path, sizeof path);
    // routes/regions/history may be absent; a maintenance id that is no
    // longer a backend is ignored; a missing backend region takes REGION
    s_write(path, "{\"format\": 1, \"version\": 3, \"routes\": [{\"vHost\": \"a.com\", "
                  "\"backends\": [{\"hostname\": \"h\", \"port\": 1}], \"maintenance\": "
                  "[\"gone\", \"h:1\"]}]}");
    rt_store_data_t data = {0};
    if (rt_store_load(path, "eu", &data, err, sizeof err) != 0)
        fail_msg("%s", err);
    rt_route_t *a = rt_table_get(data.table, "a.com");
    assert_non_null(a);
    assert_true(a->backends[0].maint);
    assert_int_equal(a->backends[0].maint_since, 0); // not kept in the file
    assert_string_equal(a->backends[0].region, "eu");
    assert_int_equal(json_array_size(data.history), 0);
    rt_store_data_clear(&data);
}

static void
test_history_capped_on_load(void **state)
{
    s_fixture_t *fx = *state;
    char path[256], err[512] = "";
    s_path(fx, "h.json", path, sizeof path);
    rt_store_data_t data = {0};
    data.version = 1200;
    data.history = json_array();
    for (int i = 1; i <= 1200; i++)
        json_array_append_new(data.history, rt_store_history_entry((uint64_t) i, 0, "a", "b"));
    assert_int_equal(rt_store_save(path, &data, err, sizeof err), 0);
    rt_store_data_t back = {0};
    assert_int_equal(rt_store_load(path, "1", &back, err, sizeof err), 0);
    assert_int_equal(json_array_size(back.history), RT_STORE_HISTORY_MAX);
    assert_int_equal(
        json_integer_value(json_object_get(json_array_get(back.history, 0), "version")),
        201); // the oldest went
    rt_store_data_clear(&back);
    rt_store_data_clear(&data);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_missing_is_empty, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_atomic_replace_leaves_no_temp, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_failed_save_changes_nothing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_load_lenient_parts, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_history_capped_on_load, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("rt_store", tests, NULL, NULL);
}
