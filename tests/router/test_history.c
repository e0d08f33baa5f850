/*  test_history - unit tests for rt_history, configurations across versions.

    Pins: the changes between two configurations (created, removed, changed,
    in map then key order); applying them forward then in reverse gives back
    the original exactly, also over a fixed-seed random run of 200 versions
    each of which rt_history_at rebuilds; malformed or non-fitting changes
    are refused with the configuration untouched; rt_history_at refuses
    versions it cannot rebuild (future, trimmed, before recorded changes,
    broken history) with a reason; the diff names what changed and never a
    value; redaction removes every key, hash and token but keeps user names.
*/
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "../../router/rt_history.h"

//  Parse text, failing the test if it is not JSON.
static json_t *
s_json(const char *text)
{
    json_error_t error;
    json_t *json = json_loads(text, JSON_REJECT_DUPLICATES, &error);
    if (json == NULL)
        fail_msg("bad test JSON: %s (%s)", error.text, text);
    return json;
}

//  Assert that json equals the JSON in text (printing both when not).
static void
s_assert_json(const json_t *json, const char *text)
{
    json_t *want = s_json(text);
    if (!json_equal(json, want)) {
        char *got = json_dumps(json, JSON_SORT_KEYS | JSON_COMPACT);
        char *exp = json_dumps(want, JSON_SORT_KEYS | JSON_COMPACT);
        print_error("got:  %s\nwant: %s\n", got ? got : "NULL", exp);
        free(got);
        free(exp);
        json_decref(want);
        fail();
    }
    json_decref(want);
}

//  True when text appears in the dump of json.
static bool
s_dump_has(const json_t *json, const char *text)
{
    char *dump = json_dumps(json, JSON_COMPACT);
    assert_non_null(dump);
    bool has = strstr(dump, text) != NULL;
    free(dump);
    return has;
}

//  A history entry of version v with changes (taken; NULL: none).
static json_t *
s_entry(uint64_t v, json_t *changes)
{
    json_t *entry = json_pack("{s:I, s:s, s:s, s:s}", "version", (json_int_t) v, "at",
                              "2026-01-01T00:00:00.000Z", "by", "local", "summary", "test");
    if (changes)
        json_object_set_new(entry, "changes", changes);
    return entry;
}

// --------------------------------------------------------------------------
// Changes

static void
test_changes_route_created_removed_changed(void **state)
{
    (void) state;
    json_t *from = s_json("{\"routes\": {\"a.com\": {\"vHost\": \"a.com\", \"retries\": 1},"
                          " \"b.com\": {\"vHost\": \"b.com\"}},"
                          " \"regions\": {}, \"certificates\": {}}");
    json_t *to = s_json("{\"routes\": {\"a.com\": {\"vHost\": \"a.com\", \"retries\": 2},"
                        " \"c.com\": {\"vHost\": \"c.com\"}},"
                        " \"regions\": {}, \"certificates\": {}}");
    json_t *changes = rt_history_changes(from, to);
    s_assert_json(changes, "["
                           "{\"what\": \"route\", \"key\": \"a.com\","
                           " \"before\": {\"vHost\": \"a.com\", \"retries\": 1},"
                           " \"after\": {\"vHost\": \"a.com\", \"retries\": 2}},"
                           "{\"what\": \"route\", \"key\": \"b.com\","
                           " \"before\": {\"vHost\": \"b.com\"}, \"after\": null},"
                           "{\"what\": \"route\", \"key\": \"c.com\","
                           " \"before\": null, \"after\": {\"vHost\": \"c.com\"}}]");
    // the result shares nothing with the inputs
    json_object_set_new(json_object_get(json_array_get(changes, 0), "after"), "retries",
                        json_integer(9));
    s_assert_json(json_object_get(json_object_get(to, "routes"), "a.com"),
                  "{\"vHost\": \"a.com\", \"retries\": 2}");
    json_decref(changes);
    json_decref(from);
    json_decref(to);
}

static void
test_changes_regions_and_certificates(void **state)
{
    (void) state;
    json_t *from = s_json("{\"routes\": {}, \"regions\": {\"1\": {\"publicAddress\": \"a:80\"},"
                          " \"2\": {\"publicAddress\": \"b:80\"}},"
                          " \"certificates\": {\"x.com\": {\"key\": \"K1\", \"cert\": \"C\"}}}");
    json_t *to = s_json("{\"routes\": {}, \"regions\": {\"2\": {\"publicAddress\": \"b:81\"},"
                        " \"3\": {\"publicAddress\": \"c:80\"}},"
                        " \"certificates\": {\"x.com\": {\"key\": \"K2\", \"cert\": \"C\"},"
                        " \"*\": {\"key\": \"K3\", \"cert\": \"C3\"}}}");
    json_t *changes = rt_history_changes(from, to);
    s_assert_json(changes, "["
                           "{\"what\": \"region\", \"key\": \"1\","
                           " \"before\": {\"publicAddress\": \"a:80\"}, \"after\": null},"
                           "{\"what\": \"region\", \"key\": \"2\","
                           " \"before\": {\"publicAddress\": \"b:80\"},"
                           " \"after\": {\"publicAddress\": \"b:81\"}},"
                           "{\"what\": \"region\", \"key\": \"3\","
                           " \"before\": null, \"after\": {\"publicAddress\": \"c:80\"}},"
                           "{\"what\": \"certificate\", \"key\": \"*\", \"before\": null,"
                           " \"after\": {\"key\": \"K3\", \"cert\": \"C3\"}},"
                           "{\"what\": \"certificate\", \"key\": \"x.com\","
                           " \"before\": {\"key\": \"K1\", \"cert\": \"C\"},"
                           " \"after\": {\"key\": \"K2\", \"cert\": \"C\"}}]");
    json_decref(changes);
    json_decref(from);
    json_decref(to);
}

static void
test_changes_ordered_by_map_then_key(void **state)
{
    (void) state;
    json_t *from = rt_history_empty();
    // inserted out of order on purpose: the order must not come from jansson
    json_t *to = s_json("{\"certificates\": {\"z\": {}, \"a\": {}},"
                        " \"regions\": {\"9\": {}, \"10\": {}},"
                        " \"routes\": {\"m.com\": {}, \"B.com\": {}, \"a.com\": {}}}");
    json_t *changes = rt_history_changes(from, to);
    assert_int_equal(json_array_size(changes), 7);
    const char *want[][2] = {{"route", "B.com"},  {"route", "a.com"}, {"route", "m.com"},
                             {"region", "10"},    {"region", "9"},    {"certificate", "a"},
                             {"certificate", "z"}};
    for (size_t i = 0; i < 7; i++) {
        json_t *change = json_array_get(changes, i);
        assert_string_equal(json_string_value(json_object_get(change, "what")), want[i][0]);
        assert_string_equal(json_string_value(json_object_get(change, "key")), want[i][1]);
    }
    json_decref(changes);
    json_decref(from);
    json_decref(to);
}

static void
test_changes_equal_empty_and_bad_input(void **state)
{
    (void) state;
    json_t *a = s_json("{\"routes\": {\"a.com\": {\"x\": [1, 2]}}, \"regions\": {},"
                       " \"certificates\": {}}");
    json_t *b = json_deep_copy(a);
    json_t *changes = rt_history_changes(a, b);
    s_assert_json(changes, "[]");
    json_decref(changes);
    json_t *bad[] = {
        json_null(),
        s_json("[]"),
        s_json("{\"routes\": {}, \"regions\": {}}"),
        s_json("{\"routes\": [], \"regions\": {}, \"certificates\": {}}"),
        s_json("{\"routes\": {\"a\": 1}, \"regions\": {}, \"certificates\": {}}"),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(rt_history_changes(a, bad[i]));
        assert_null(rt_history_changes(bad[i], a));
        json_decref(bad[i]);
    }
    assert_null(rt_history_changes(NULL, a));
    json_decref(a);
    json_decref(b);
}

// --------------------------------------------------------------------------
// Apply

static void
test_apply_forward_then_reverse_restores(void **state)
{
    (void) state;
    json_t *from = s_json("{\"routes\": {\"a.com\": {\"retries\": 1}, \"b.com\": {}},"
                          " \"regions\": {\"1\": {\"publicAddress\": \"a:80\"}},"
                          " \"certificates\": {\"x\": {\"key\": \"K\"}}}");
    json_t *to = s_json("{\"routes\": {\"a.com\": {\"retries\": 2}, \"c.com\": {}},"
                        " \"regions\": {},"
                        " \"certificates\": {\"x\": {\"key\": \"K2\"}, \"y\": {}}}");
    json_t *changes = rt_history_changes(from, to);
    json_t *cfg = json_deep_copy(from);
    json_t *routes = json_object_get(cfg, "routes");
    char err[256] = "";
    assert_int_equal(rt_history_apply(cfg, changes, false, err, sizeof err), 0);
    assert_true(json_equal(cfg, to));
    assert_ptr_equal(json_object_get(cfg, "routes"), routes); // same member objects
    assert_int_equal(rt_history_apply(cfg, changes, true, err, sizeof err), 0);
    assert_true(json_equal(cfg, from));
    // applying the same changes forward twice does not fit the second time
    assert_int_equal(rt_history_apply(cfg, changes, false, err, sizeof err), 0);
    assert_int_equal(rt_history_apply(cfg, changes, false, err, sizeof err), -1);
    assert_non_null(strstr(err, "does not fit"));
    assert_true(json_equal(cfg, to));
    json_decref(cfg);
    json_decref(changes);
    json_decref(from);
    json_decref(to);
}

static void
test_apply_malformed_refused_untouched(void **state)
{
    (void) state;
    const char *bad[] = {
        "{}",
        "[1]",
        "[{\"what\": \"backend\", \"key\": \"a\", \"before\": null, \"after\": {}}]",
        "[{\"what\": \"route\", \"key\": 5, \"before\": null, \"after\": {}}]",
        "[{\"what\": \"route\", \"key\": \"\", \"before\": null, \"after\": {}}]",
        "[{\"what\": \"route\", \"key\": \"a\", \"after\": {}}]",
        "[{\"what\": \"route\", \"key\": \"a\", \"before\": null, \"after\": \"x\"}]",
        "[{\"what\": \"route\", \"key\": \"a\", \"before\": [], \"after\": null}]",
        "[{\"what\": \"route\", \"key\": \"a\", \"before\": null, \"after\": null}]",
        // a good change first: it must not be applied either
        "[{\"what\": \"route\", \"key\": \"n.com\", \"before\": null, \"after\": {}},"
        " {\"what\": \"region\", \"key\": \"1\", \"before\": null}]",
    };
    json_t *cfg =
        s_json("{\"routes\": {\"a\": {\"v\": 1}}, \"regions\": {}, \"certificates\": {}}");
    json_t *orig = json_deep_copy(cfg);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *changes = s_json(bad[i]);
        for (int reverse = 0; reverse < 2; reverse++) {
            char err[256] = "";
            assert_int_equal(rt_history_apply(cfg, changes, reverse, err, sizeof err), -1);
            assert_true(strlen(err) > 0);
            assert_null(strchr(err, '\n'));
            assert_true(json_equal(cfg, orig));
        }
        json_decref(changes);
    }
    // the reason names the change
    json_t *changes = s_json(bad[9]);
    char err[256] = "";
    assert_int_equal(rt_history_apply(cfg, changes, false, err, sizeof err), -1);
    assert_string_equal(err, "change 1: \"after\" is not an object or null");
    json_decref(changes);
    // a cfg that is not a configuration
    json_t *notcfg = s_json("{\"routes\": {}}");
    changes = s_json("[]");
    assert_int_equal(rt_history_apply(notcfg, changes, false, err, sizeof err), -1);
    json_decref(notcfg);
    json_decref(changes);
    json_decref(cfg);
    json_decref(orig);
}

static void
test_apply_not_fitting_refused_untouched(void **state)
{
    (void) state;
    json_t *cfg =
        s_json("{\"routes\": {\"a\": {\"v\": 1}}, \"regions\": {}, \"certificates\": {}}");
    json_t *orig = json_deep_copy(cfg);
    // the first change fits, the second does not: nothing is applied
    json_t *changes =
        s_json("[{\"what\": \"region\", \"key\": \"1\", \"before\": null, \"after\": {}},"
               " {\"what\": \"route\", \"key\": \"a\", \"before\": {\"v\": 2}, \"after\": null}]");
    char err[256] = "";
    assert_int_equal(rt_history_apply(cfg, changes, false, err, sizeof err), -1);
    assert_string_equal(err, "change 1 (route \"a\") does not fit the configuration: "
                             "it differs from \"before\"");
    assert_true(json_equal(cfg, orig));
    json_decref(changes);
    // creating what exists, removing what does not
    changes = s_json("[{\"what\": \"route\", \"key\": \"a\", \"before\": null, \"after\": {}}]");
    assert_int_equal(rt_history_apply(cfg, changes, false, err, sizeof err), -1);
    assert_non_null(strstr(err, "exists already"));
    json_decref(changes);
    changes = s_json("[{\"what\": \"route\", \"key\": \"b\", \"before\": {}, \"after\": null}]");
    assert_int_equal(rt_history_apply(cfg, changes, false, err, sizeof err), -1);
    assert_non_null(strstr(err, "does not exist"));
    assert_true(json_equal(cfg, orig));
    json_decref(changes);
    json_decref(cfg);
    json_decref(orig);
}

static void
test_apply_sequential_changes_of_one_key(void **state)
{
    (void) state;
    // one entry may touch a key twice: each change sees the previous one
    json_t *cfg = rt_history_empty();
    json_t *changes =
        s_json("[{\"what\": \"route\", \"key\": \"a\", \"before\": null, \"after\": {\"v\": 1}},"
               " {\"what\": \"route\", \"key\": \"a\", \"before\": {\"v\": 1},"
               " \"after\": {\"v\": 2}}]");
    char err[256] = "";
    assert_int_equal(rt_history_apply(cfg, changes, false, err, sizeof err), 0);
    s_assert_json(cfg, "{\"routes\": {\"a\": {\"v\": 2}}, \"regions\": {}, \"certificates\": {}}");
    // the values set are copies: changing cfg leaves the changes alone
    json_object_set_new(json_object_get(json_object_get(cfg, "routes"), "a"), "v", json_integer(3));
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_array_get(changes, 1), "after"), "v")),
                     2);
    json_object_set_new(json_object_get(json_object_get(cfg, "routes"), "a"), "v", json_integer(2));
    assert_int_equal(rt_history_apply(cfg, changes, true, err, sizeof err), 0);
    s_assert_json(cfg, "{\"routes\": {}, \"regions\": {}, \"certificates\": {}}");
    json_decref(changes);
    json_decref(cfg);
}

// --------------------------------------------------------------------------
// A version

//  Versions 0..3: route a created, region 1 created, route a changed.
typedef struct {
    json_t *cfgs[4]; // the configuration of each version
    json_t *history; // entries 1..3
} s_three_t;

static void
s_three(s_three_t *t)
{
    t->cfgs[0] = rt_history_empty();
    t->cfgs[1] = s_json("{\"routes\": {\"a\": {\"v\": 1}}, \"regions\": {}, \"certificates\": {}}");
    t->cfgs[2] = s_json("{\"routes\": {\"a\": {\"v\": 1}}, \"regions\": {\"1\": {}},"
                        " \"certificates\": {}}");
    t->cfgs[3] = s_json("{\"routes\": {\"a\": {\"v\": 2}}, \"regions\": {\"1\": {}},"
                        " \"certificates\": {}}");
    t->history = json_array();
    for (uint64_t v = 1; v <= 3; v++)
        json_array_append_new(t->history,
                              s_entry(v, rt_history_changes(t->cfgs[v - 1], t->cfgs[v])));
}

static void
s_three_free(s_three_t *t)
{
    for (int i = 0; i < 4; i++)
        json_decref(t->cfgs[i]);
    json_decref(t->history);
}

static void
test_at_current_zero_and_between(void **state)
{
    (void) state;
    s_three_t t;
    s_three(&t);
    json_t *history = json_deep_copy(t.history);
    json_t *current = json_deep_copy(t.cfgs[3]);
    char err[256] = "";
    for (uint64_t v = 0; v <= 3; v++) {
        json_t *cfg = rt_history_at(current, 3, history, v, err, sizeof err);
        if (cfg == NULL)
            fail_msg("version %" PRIu64 ": %s", v, err);
        assert_true(json_equal(cfg, t.cfgs[v]));
        assert_ptr_not_equal(cfg, current); // a copy, also of the current version
        json_decref(cfg);
    }
    // the inputs are untouched
    assert_true(json_equal(current, t.cfgs[3]));
    assert_true(json_equal(history, t.history));
    // with no history at all, the current version is still there
    json_t *empty = json_array();
    json_t *cfg = rt_history_at(current, 3, empty, 3, err, sizeof err);
    assert_true(json_equal(cfg, current));
    json_decref(cfg);
    json_decref(empty);
    json_decref(current);
    json_decref(history);
    s_three_free(&t);
}

static void
test_at_beyond_current(void **state)
{
    (void) state;
    s_three_t t;
    s_three(&t);
    char err[256] = "";
    assert_null(rt_history_at(t.cfgs[3], 3, t.history, 4, err, sizeof err));
    assert_string_equal(err, "no version 4 (current: 3)");
    assert_null(rt_history_at(t.cfgs[3], 3, t.history, UINT64_MAX, err, sizeof err));
    s_three_free(&t);
}

static void
test_at_trimmed_history(void **state)
{
    (void) state;
    s_three_t t;
    s_three(&t);
    json_array_remove(t.history, 0); // entries 2..3 kept: versions 1..3 can be rebuilt
    char err[256] = "";
    json_t *cfg = rt_history_at(t.cfgs[3], 3, t.history, 1, err, sizeof err);
    assert_non_null(cfg);
    assert_true(json_equal(cfg, t.cfgs[1]));
    json_decref(cfg);
    assert_null(rt_history_at(t.cfgs[3], 3, t.history, 0, err, sizeof err));
    assert_string_equal(err, "version 0 is older than the history kept (oldest: 1)");
    json_t *empty = json_array();
    assert_null(rt_history_at(t.cfgs[3], 3, empty, 2, err, sizeof err));
    assert_string_equal(err, "version 2 is older than the history kept (oldest: 3)");
    json_decref(empty);
    s_three_free(&t);
}

static void
test_at_entry_without_changes(void **state)
{
    (void) state;
    s_three_t t;
    s_three(&t);
    // entry 2 was written by older code
    json_object_del(json_array_get(t.history, 1), "changes");
    char err[256] = "";
    json_t *cfg = rt_history_at(t.cfgs[3], 3, t.history, 2, err, sizeof err);
    assert_true(json_equal(cfg, t.cfgs[2]));
    json_decref(cfg);
    assert_null(rt_history_at(t.cfgs[3], 3, t.history, 1, err, sizeof err));
    assert_string_equal(err, "version 1 predates recorded changes (entry 2 has none)");
    assert_null(rt_history_at(t.cfgs[3], 3, t.history, 0, err, sizeof err));
    assert_non_null(strstr(err, "predates recorded changes"));
    s_three_free(&t);
}

static void
test_at_broken_history_refused(void **state)
{
    (void) state;
    s_three_t t;
    s_three(&t);
    char err[256] = "";
    // the current version is not the newest entry
    assert_null(rt_history_at(t.cfgs[2], 2, t.history, 0, err, sizeof err));
    assert_non_null(strstr(err, "does not end at the current version 2"));
    // a gap: versions 1, 3, 3
    json_t *gap = json_deep_copy(t.history);
    json_object_set_new(json_array_get(gap, 1), "version", json_integer(3));
    assert_null(rt_history_at(t.cfgs[3], 3, gap, 0, err, sizeof err));
    assert_non_null(strstr(err, "not consecutive"));
    json_decref(gap);
    // an entry that is not an object, a version that is not a number
    json_t *junk = json_deep_copy(t.history);
    json_array_set_new(junk, 1, json_string("2"));
    assert_null(rt_history_at(t.cfgs[3], 3, junk, 1, err, sizeof err));
    assert_non_null(strstr(err, "not consecutive"));
    json_decref(junk);
    // history not an array; current not a configuration
    json_t *obj = json_object();
    assert_null(rt_history_at(t.cfgs[3], 3, obj, 1, err, sizeof err));
    assert_null(rt_history_at(obj, 3, t.history, 1, err, sizeof err));
    json_decref(obj);
    // changes that do not fit the current configuration (a change made
    // without a history entry) are refused, not rebuilt into a fiction
    json_t *drift = json_deep_copy(t.cfgs[3]);
    json_object_set_new(json_object_get(json_object_get(drift, "routes"), "a"), "v",
                        json_integer(7));
    assert_null(rt_history_at(drift, 3, t.history, 2, err, sizeof err));
    assert_non_null(strstr(err, "version 3: change 0 (route \"a\") does not fit"));
    json_decref(drift);
    s_three_free(&t);
}

static void
test_at_malformed_change_refused_untouched(void **state)
{
    (void) state;
    s_three_t t;
    s_three(&t);
    json_t *entry2 = json_array_get(t.history, 1);
    json_object_set_new(entry2, "changes",
                        s_json("[{\"what\": \"region\", \"key\": 1, \"before\": null,"
                               " \"after\": {}}]"));
    json_t *current = json_deep_copy(t.cfgs[3]);
    json_t *history = json_deep_copy(t.history);
    char err[256] = "";
    assert_null(rt_history_at(current, 3, history, 1, err, sizeof err));
    assert_string_equal(err, "version 2: change 0: \"key\" is not a non-empty string");
    assert_true(json_equal(current, t.cfgs[3]));
    assert_true(json_equal(history, t.history));
    // versions after the bad entry are still reachable
    json_t *cfg = rt_history_at(current, 3, history, 2, err, sizeof err);
    assert_true(json_equal(cfg, t.cfgs[2]));
    json_decref(cfg);
    json_object_set_new(entry2, "changes", json_string("oops"));
    assert_null(rt_history_at(current, 3, t.history, 1, err, sizeof err));
    assert_string_equal(err, "version 2: changes are not an array");
    json_decref(current);
    json_decref(history);
    s_three_free(&t);
}

//  A deterministic generator (xorshift64*): same seed, same run, everywhere.
static uint64_t
s_rand(uint64_t *seed)
{
    *seed ^= *seed >> 12;
    *seed ^= *seed << 25;
    *seed ^= *seed >> 27;
    return *seed * 2685821657736338717ull;
}

enum { S_RUN_VERSIONS = 200 };

static void
test_at_random_run_of_200_versions(void **state)
{
    (void) state;
    uint64_t seed = 0x5eed5eed2026ull;
    static const char *const maps[] = {"routes", "regions", "certificates"};
    json_t *cfgs[S_RUN_VERSIONS + 1];
    json_t *history = json_array();
    cfgs[0] = rt_history_empty();
    for (uint64_t v = 1; v <= S_RUN_VERSIONS; v++) {
        json_t *cfg = json_deep_copy(cfgs[v - 1]);
        // one to three edits per version, so some entries hold several changes
        // (and more while the edits cancel out: every version changes something)
        int edits = 1 + (int) (s_rand(&seed) % 3);
        for (int e = 0; e < edits || json_equal(cfg, cfgs[v - 1]); e++) {
            json_t *map = json_object_get(cfg, maps[s_rand(&seed) % 3]);
            char key[16];
            snprintf(key, sizeof key, "k%u", (unsigned) (s_rand(&seed) % 6));
            json_t *now = json_object_get(map, key);
            if (now && s_rand(&seed) % 3 == 0)
                json_object_del(map, key);
            else
                json_object_set_new(map, key,
                                    json_pack("{s:I, s:I, s:[i]}", "version", (json_int_t) v,
                                              "edit", (json_int_t) e, "n",
                                              (int) (s_rand(&seed) % 100)));
        }
        json_t *changes = rt_history_changes(cfgs[v - 1], cfg);
        assert_non_null(changes);
        assert_true(json_array_size(changes) > 0);
        json_array_append_new(history, s_entry(v, changes));
        cfgs[v] = cfg;
    }
    json_t *current = cfgs[S_RUN_VERSIONS];
    // every version is rebuilt exactly
    char err[256] = "";
    for (uint64_t v = 0; v <= S_RUN_VERSIONS; v++) {
        json_t *cfg = rt_history_at(current, S_RUN_VERSIONS, history, v, err, sizeof err);
        if (cfg == NULL)
            fail_msg("version %" PRIu64 ": %s", v, err);
        if (!json_equal(cfg, cfgs[v]))
            fail_msg("version %" PRIu64 " rebuilt wrong", v);
        json_decref(cfg);
    }
    // all entries forward from empty give the current version, and back again
    json_t *cfg = rt_history_empty();
    size_t i;
    json_t *entry;
    json_array_foreach(history, i, entry)
    {
        assert_int_equal(
            rt_history_apply(cfg, json_object_get(entry, "changes"), false, err, sizeof err), 0);
        assert_true(json_equal(cfg, cfgs[i + 1]));
    }
    for (i = S_RUN_VERSIONS; i-- > 0;) {
        json_t *changes = json_object_get(json_array_get(history, i), "changes");
        assert_int_equal(rt_history_apply(cfg, changes, true, err, sizeof err), 0);
        assert_true(json_equal(cfg, cfgs[i]));
    }
    json_decref(cfg);
    for (uint64_t v = 0; v <= S_RUN_VERSIONS; v++)
        json_decref(cfgs[v]);
    json_decref(history);
}

// --------------------------------------------------------------------------
// Diff

static void
test_diff_routes_and_backends(void **state)
{
    (void) state;
    json_t *from = s_json(
        "{\"routes\": {"
        " \"gone.com\": {\"vHost\": \"gone.com\", \"backends\": []},"
        " \"api.com\": {\"vHost\": \"api.com\", \"retries\": 1, \"strategy\": \"ROUND_ROBIN\","
        "   \"headers\": {\"X\": \"1\"}, \"backends\": ["
        "   {\"id\": \"n1\", \"hostname\": \"10.0.0.1\", \"port\": 80, \"weight\": 1},"
        "   {\"id\": \"n2\", \"hostname\": \"10.0.0.2\", \"port\": 80},"
        "   {\"id\": \"n3\", \"hostname\": \"10.0.0.3\", \"port\": 80}]},"
        " \"same.com\": {\"vHost\": \"same.com\", \"backends\": []}},"
        " \"regions\": {}, \"certificates\": {}}");
    json_t *to =
        s_json("{\"routes\": {"
               " \"new.com\": {\"vHost\": \"new.com\", \"backends\": []},"
               " \"api.com\": {\"vHost\": \"api.com\", \"retries\": 2, \"timeoutMs\": 5,"
               "   \"headers\": {\"X\": \"2\"}, \"backends\": ["
               "   {\"id\": \"n4\", \"hostname\": \"10.0.0.4\", \"port\": 80},"
               "   {\"id\": \"n2\", \"hostname\": \"10.0.0.2\", \"port\": 80},"
               "   {\"id\": \"n1\", \"hostname\": \"10.0.0.9\", \"port\": 81, \"weight\": 1,"
               "    \"region\": \"2\"}]},"
               " \"same.com\": {\"vHost\": \"same.com\", \"backends\": []}},"
               " \"regions\": {}, \"certificates\": {}}");
    json_t *diff = rt_history_diff(from, to);
    s_assert_json(diff, "{\"routes\": {\"added\": [\"new.com\"], \"removed\": [\"gone.com\"],"
                        "  \"changed\": [{\"vHost\": \"api.com\","
                        "    \"fields\": [\"headers\", \"retries\", \"strategy\", \"timeoutMs\"],"
                        "    \"backends\": {\"added\": [\"n4\"], \"removed\": [\"n3\"],"
                        "      \"changed\": [{\"id\": \"n1\","
                        "        \"fields\": [\"hostname\", \"port\", \"region\"]}]}}]},"
                        " \"regions\": {\"added\": [], \"removed\": [], \"changed\": []},"
                        " \"certificates\": {\"added\": [], \"removed\": [], \"changed\": []}}");
    // and the other way round
    json_decref(diff);
    diff = rt_history_diff(to, from);
    s_assert_json(json_object_get(diff, "routes"),
                  "{\"added\": [\"gone.com\"], \"removed\": [\"new.com\"],"
                  "  \"changed\": [{\"vHost\": \"api.com\","
                  "    \"fields\": [\"headers\", \"retries\", \"strategy\", \"timeoutMs\"],"
                  "    \"backends\": {\"added\": [\"n3\"], \"removed\": [\"n4\"],"
                  "      \"changed\": [{\"id\": \"n1\","
                  "        \"fields\": [\"hostname\", \"port\", \"region\"]}]}}]}");
    json_decref(diff);
    json_decref(from);
    json_decref(to);
}

static void
test_diff_backends_odd_shapes(void **state)
{
    (void) state;
    // backends missing, not an array, junk entries, duplicate ids
    json_t *from = s_json("{\"routes\": {"
                          " \"a\": {\"x\": 1},"
                          " \"b\": {\"backends\": 5},"
                          " \"c\": {\"backends\": [1, {\"hostname\": \"h\"}, {\"id\": \"n\", "
                          "   \"port\": 1}, {\"id\": \"n\", \"port\": 2}]}},"
                          " \"regions\": {}, \"certificates\": {}}");
    json_t *to = s_json("{\"routes\": {"
                        " \"a\": {\"x\": 1, \"backends\": [{\"id\": \"n\"}]},"
                        " \"b\": {\"backends\": []},"
                        " \"c\": {\"backends\": [{\"id\": \"n\", \"port\": 1}]}},"
                        " \"regions\": {}, \"certificates\": {}}");
    json_t *diff = rt_history_diff(from, to);
    s_assert_json(json_object_get(diff, "routes"),
                  "{\"added\": [], \"removed\": [], \"changed\": ["
                  " {\"vHost\": \"a\", \"fields\": [],"
                  "  \"backends\": {\"added\": [\"n\"], \"removed\": [], \"changed\": []}},"
                  " {\"vHost\": \"b\", \"fields\": [],"
                  "  \"backends\": {\"added\": [], \"removed\": [], \"changed\": []}},"
                  " {\"vHost\": \"c\", \"fields\": [],"
                  "  \"backends\": {\"added\": [], \"removed\": [], \"changed\": []}}]}");
    json_decref(diff);
    json_t *bad = s_json("{\"routes\": {}}");
    assert_null(rt_history_diff(from, bad));
    assert_null(rt_history_diff(bad, to));
    json_decref(bad);
    json_decref(from);
    json_decref(to);
}

static void
test_diff_regions_and_certificates_never_show_values(void **state)
{
    (void) state;
    json_t *from = s_json(
        "{\"routes\": {},"
        " \"regions\": {\"1\": {\"publicAddress\": \"10.0.0.1:80\"},"
        "   \"2\": {\"publicAddress\": \"10.0.0.2:80\"}},"
        " \"certificates\": {"
        "   \"a.com\": {\"key\": \"-----BEGIN PRIVATE KEY-----SECRET-ONE\", \"cert\": \"C1\"},"
        "   \"old.com\": {\"key\": \"-----BEGIN PRIVATE KEY-----SECRET-OLD\", \"cert\": \"C\"}}}");
    json_t *to = s_json(
        "{\"routes\": {},"
        " \"regions\": {\"2\": {\"publicAddress\": \"10.0.0.2:8080\"},"
        "   \"3\": {\"publicAddress\": \"10.0.0.3:80\"}},"
        " \"certificates\": {"
        "   \"a.com\": {\"key\": \"-----BEGIN PRIVATE KEY-----SECRET-TWO\", \"cert\": \"C1\"},"
        "   \"*\": {\"key\": \"-----BEGIN PRIVATE KEY-----SECRET-NEW\", \"cert\": \"C\"}}}");
    json_t *diff = rt_history_diff(from, to);
    s_assert_json(diff, "{\"routes\": {\"added\": [], \"removed\": [], \"changed\": []},"
                        " \"regions\": {\"added\": [\"3\"], \"removed\": [\"1\"],"
                        "   \"changed\": [{\"id\": \"2\", \"fields\": [\"publicAddress\"]}]},"
                        " \"certificates\": {\"added\": [\"*\"], \"removed\": [\"old.com\"],"
                        "   \"changed\": [{\"domain\": \"a.com\", \"fields\": [\"key\"]}]}}");
    assert_false(s_dump_has(diff, "SECRET"));
    assert_false(s_dump_has(diff, "PRIVATE"));
    assert_false(s_dump_has(diff, "10.0.0"));
    json_decref(diff);
    // equal configurations: nothing changed
    diff = rt_history_diff(from, from);
    s_assert_json(diff, "{\"routes\": {\"added\": [], \"removed\": [], \"changed\": []},"
                        " \"regions\": {\"added\": [], \"removed\": [], \"changed\": []},"
                        " \"certificates\": {\"added\": [], \"removed\": [], \"changed\": []}}");
    json_decref(diff);
    json_decref(from);
    json_decref(to);
}

// --------------------------------------------------------------------------
// Redact

static void
test_redact_keys_hashes_tokens(void **state)
{
    (void) state;
    const char *text =
        "{\"routes\": {"
        " \"basic.com\": {\"vHost\": \"basic.com\", \"auth\": {\"type\": \"basic\","
        "   \"users\": {\"alice\": \"$6$salt$HASHALICE\", \"bob\": \"$6$salt$HASHBOB\"}},"
        "   \"ssl\": {\"key\": \"ROUTEKEYPEM\", \"cert\": \"ROUTECERTPEM\"},"
        "   \"backends\": [{\"id\": \"n1\", \"hostname\": \"10.0.0.1\", \"port\": 80}]},"
        " \"bearer.com\": {\"vHost\": \"bearer.com\", \"auth\": {\"type\": \"bearer\","
        "   \"tokens\": [\"aaaaTOKEN1\", \"bbbbTOKEN2\"]}, \"ssl\": null},"
        " \"open.com\": {\"vHost\": \"open.com\", \"auth\": null}},"
        " \"regions\": {\"1\": {\"publicAddress\": \"10.0.0.1:80\"}},"
        " \"certificates\": {\"a.com\": {\"key\": \"CERTKEYPEM\", \"cert\": \"CERTPEM\"},"
        "   \"b.com\": {\"cert\": \"ONLYCERT\"}}}";
    json_t *cfg = s_json(text);
    json_t *orig = json_deep_copy(cfg);
    json_t *red = rt_history_redact(cfg);
    assert_non_null(red);
    const char *secrets[] = {"HASHALICE",  "HASHBOB",    "$6$",       "ROUTEKEYPEM",
                             "aaaaTOKEN1", "bbbbTOKEN2", "CERTKEYPEM"};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        if (s_dump_has(red, secrets[i]))
            fail_msg("%s is still in the redacted configuration", secrets[i]);
    s_assert_json(red,
                  "{\"routes\": {"
                  " \"basic.com\": {\"vHost\": \"basic.com\", \"auth\": {\"type\": \"basic\","
                  "   \"users\": {\"alice\": \"[redacted]\", \"bob\": \"[redacted]\"}},"
                  "   \"ssl\": {\"key\": \"[redacted]\", \"cert\": \"ROUTECERTPEM\"},"
                  "   \"backends\": [{\"id\": \"n1\", \"hostname\": \"10.0.0.1\", \"port\": 80}]},"
                  " \"bearer.com\": {\"vHost\": \"bearer.com\", \"auth\": {\"type\": \"bearer\","
                  "   \"tokens\": [\"[redacted]\", \"[redacted]\"]}, \"ssl\": null},"
                  " \"open.com\": {\"vHost\": \"open.com\", \"auth\": null}},"
                  " \"regions\": {\"1\": {\"publicAddress\": \"10.0.0.1:80\"}},"
                  " \"certificates\": {\"a.com\": {\"key\": \"[redacted]\", \"cert\": \"CERTPEM\"},"
                  "   \"b.com\": {\"cert\": \"ONLYCERT\"}}}");
    assert_true(json_equal(cfg, orig)); // the input is untouched
    json_decref(red);
    json_decref(orig);
    json_decref(cfg);
}

static void
test_redact_odd_shapes(void **state)
{
    (void) state;
    // arrays instead of maps, secrets of the wrong type, users as objects
    json_t *cfg = s_json("{\"routes\": [{\"auth\": {\"users\": [{\"name\": \"carol\","
                         "   \"password\": \"PW1\", \"passwordHash\": \"PW2\"}],"
                         "   \"tokens\": {\"t\": \"TOK\"}}, \"ssl\": {\"key\": {\"pem\": \"K1\"}}},"
                         "  {\"auth\": {\"users\": \"USERS\", \"tokens\": \"TOKS\"}}, 7],"
                         " \"certificates\": [{\"key\": [\"K2\"]}, \"x\"]}");
    json_t *red = rt_history_redact(cfg);
    s_assert_json(red,
                  "{\"routes\": [{\"auth\": {\"users\": [{\"name\": \"carol\","
                  "   \"password\": \"[redacted]\", \"passwordHash\": \"[redacted]\"}],"
                  "   \"tokens\": {\"t\": \"[redacted]\"}}, \"ssl\": {\"key\": \"[redacted]\"}},"
                  "  {\"auth\": {\"users\": \"[redacted]\", \"tokens\": \"[redacted]\"}}, 7],"
                  " \"certificates\": [{\"key\": \"[redacted]\"}, \"x\"]}");
    json_decref(red);
    json_decref(cfg);
    json_t *arr = json_array();
    assert_null(rt_history_redact(arr));
    assert_null(rt_history_redact(NULL));
    json_decref(arr);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_changes_route_created_removed_changed),
        cmocka_unit_test(test_changes_regions_and_certificates),
        cmocka_unit_test(test_changes_ordered_by_map_then_key),
        cmocka_unit_test(test_changes_equal_empty_and_bad_input),
        cmocka_unit_test(test_apply_forward_then_reverse_restores),
        cmocka_unit_test(test_apply_malformed_refused_untouched),
        cmocka_unit_test(test_apply_not_fitting_refused_untouched),
        cmocka_unit_test(test_apply_sequential_changes_of_one_key),
        cmocka_unit_test(test_at_current_zero_and_between),
        cmocka_unit_test(test_at_beyond_current),
        cmocka_unit_test(test_at_trimmed_history),
        cmocka_unit_test(test_at_entry_without_changes),
        cmocka_unit_test(test_at_broken_history_refused),
        cmocka_unit_test(test_at_malformed_change_refused_untouched),
        cmocka_unit_test(test_at_random_run_of_200_versions),
        cmocka_unit_test(test_diff_routes_and_backends),
        cmocka_unit_test(test_diff_backends_odd_shapes),
        cmocka_unit_test(test_diff_regions_and_certificates_never_show_values),
        cmocka_unit_test(test_redact_keys_hashes_tokens),
        cmocka_unit_test(test_redact_odd_shapes),
    };
    return cmocka_run_group_tests_name("rt_history", tests, NULL, NULL);
}
