/*  rt_history - the configuration as of a version, and what changed between two
    (see rt_history.h).

    Object keys are sorted here rather than taken in jansson's iteration
    order, which is insertion order in some versions and hash order in
    others: the changes and the diff must come out the same everywhere.
*/
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proto_util.h"
#include "rt_history.h"

//  The three maps of a configuration, in the order changes and diffs list them.
enum { S_MAPS = 3 };
static const char *const s_map_names[S_MAPS] = {"routes", "regions", "certificates"};
static const char *const s_change_whats[S_MAPS] = {"route", "region", "certificate"};
static const char *const s_diff_ids[S_MAPS] = {"vHost", "id", "domain"};

static void
s_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

json_t *
rt_history_empty(void)
{
    return json_pack("{s:{}, s:{}, s:{}}", "routes", "regions", "certificates");
}

bool
rt_history_is_cfg(const json_t *cfg)
{
    if (!json_is_object(cfg))
        return false;
    for (int m = 0; m < S_MAPS; m++) {
        json_t *map = json_object_get(cfg, s_map_names[m]);
        if (!json_is_object(map))
            return false;
        const char *key;
        json_t *value;
        json_object_foreach(map, key, value)
        {
            if (!json_is_object(value))
                return false;
        }
    }
    return true;
}

// --------------------------------------------------------------------------
// Sorted keys

static int
s_strcmp_p(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}

//  The keys of a and of b (b may be NULL), each once, sorted. The strings are
//  borrowed from the objects. Caller frees the array; *count_p is its size.
static const char **
s_keys(const json_t *a, const json_t *b, size_t *count_p)
{
    size_t cap = json_object_size(a) + json_object_size(b);
    const char **keys = proto_xcalloc(cap ? cap : 1, sizeof *keys);
    size_t n = 0;
    const char *key;
    json_t *value;
    json_object_foreach((json_t *) a, key, value)
    {
        keys[n++] = key;
    }
    json_object_foreach((json_t *) b, key, value)
    {
        if (json_object_get(a, key) == NULL)
            keys[n++] = key;
    }
    qsort(keys, n, sizeof *keys, s_strcmp_p);
    *count_p = n;
    return keys;
}

// --------------------------------------------------------------------------
// Changes

json_t *
rt_history_changes(const json_t *from, const json_t *to)
{
    if (!rt_history_is_cfg(from) || !rt_history_is_cfg(to))
        return NULL;
    json_t *changes = json_array();
    for (int m = 0; m < S_MAPS; m++) {
        json_t *a = json_object_get(from, s_map_names[m]);
        json_t *b = json_object_get(to, s_map_names[m]);
        size_t n;
        const char **keys = s_keys(a, b, &n);
        for (size_t i = 0; i < n; i++) {
            json_t *before = json_object_get(a, keys[i]);
            json_t *after = json_object_get(b, keys[i]);
            if (before && after && json_equal(before, after))
                continue;
            json_t *change = json_pack("{s:s, s:s}", "what", s_change_whats[m], "key", keys[i]);
            json_object_set_new(change, "before", before ? json_deep_copy(before) : json_null());
            json_object_set_new(change, "after", after ? json_deep_copy(after) : json_null());
            json_array_append_new(changes, change);
        }
        free(keys);
    }
    return changes;
}

// --------------------------------------------------------------------------
// Apply

//  The map index of a change's "what", or -1.
static int
s_map_of(const json_t *what)
{
    const char *s = json_string_value(what);
    for (int m = 0; s && m < S_MAPS; m++)
        if (strcmp(s, s_change_whats[m]) == 0)
            return m;
    return -1;
}

static bool
s_is_side(const json_t *side)
{
    return json_is_object(side) || json_is_null(side);
}

//  Check the shape of every change. Returns 0, or -1 with the reason.
static int
s_check_changes(const json_t *changes, char *err, size_t errlen)
{
    if (!json_is_array(changes)) {
        s_fail(err, errlen, "changes are not an array");
        return -1;
    }
    size_t i;
    json_t *change;
    json_array_foreach(changes, i, change)
    {
        const char *key = json_string_value(json_object_get(change, "key"));
        json_t *before = json_object_get(change, "before");
        json_t *after = json_object_get(change, "after");
        const char *why = NULL;
        if (!json_is_object(change))
            why = "not an object";
        else if (s_map_of(json_object_get(change, "what")) < 0)
            why = "\"what\" is not route, region or certificate";
        else if (key == NULL || key[0] == '\0')
            why = "\"key\" is not a non-empty string";
        else if (!s_is_side(before))
            why = "\"before\" is not an object or null";
        else if (!s_is_side(after))
            why = "\"after\" is not an object or null";
        else if (json_is_null(before) && json_is_null(after))
            why = "\"before\" and \"after\" are both null";
        if (why) {
            s_fail(err, errlen, "change %zu: %s", i, why);
            return -1;
        }
    }
    return 0;
}

//  Apply well-formed changes to maps (the three maps of a configuration).
//  Stops at the first change that does not fit, with the reason: maps are
//  then partly changed.
static int
s_apply(json_t *maps[S_MAPS], const json_t *changes, bool reverse, char *err, size_t errlen)
{
    size_t n = json_array_size(changes);
    for (size_t k = 0; k < n; k++) {
        size_t i = reverse ? n - 1 - k : k;
        json_t *change = json_array_get(changes, i);
        int m = s_map_of(json_object_get(change, "what"));
        const char *key = json_string_value(json_object_get(change, "key"));
        json_t *expect = json_object_get(change, reverse ? "after" : "before");
        json_t *set = json_object_get(change, reverse ? "before" : "after");
        json_t *now = json_object_get(maps[m], key);
        bool fits = json_is_null(expect) ? now == NULL : now != NULL && json_equal(now, expect);
        if (!fits) {
            s_fail(err, errlen, "change %zu (%s \"%s\") does not fit the configuration: %s", i,
                   s_change_whats[m], key,
                   now == NULL            ? "it does not exist"
                   : json_is_null(expect) ? "it exists already"
                   : reverse              ? "it differs from \"after\""
                                          : "it differs from \"before\"");
            return -1;
        }
        if (json_is_null(set))
            json_object_del(maps[m], key);
        else
            json_object_set_new(maps[m], key, json_deep_copy(set));
    }
    return 0;
}

int
rt_history_apply(json_t *cfg, const json_t *changes, bool reverse, char *err, size_t errlen)
{
    if (!rt_history_is_cfg(cfg)) {
        s_fail(err, errlen, "not a configuration");
        return -1;
    }
    if (s_check_changes(changes, err, errlen) != 0)
        return -1;
    // Work on shallow copies so that a change that does not fit leaves cfg
    // untouched; values are only ever replaced, never changed in place.
    json_t *copies[S_MAPS];
    for (int m = 0; m < S_MAPS; m++)
        copies[m] = json_copy(json_object_get(cfg, s_map_names[m]));
    int rc = s_apply(copies, changes, reverse, err, errlen);
    for (int m = 0; m < S_MAPS; m++) {
        if (rc == 0) {
            json_t *map = json_object_get(cfg, s_map_names[m]);
            json_object_clear(map);
            json_object_update(map, copies[m]);
        }
        json_decref(copies[m]);
    }
    return rc;
}

// --------------------------------------------------------------------------
// A version

//  The version of a history entry into *v_p; false when it has none.
static bool
s_entry_version(const json_t *entry, uint64_t *v_p)
{
    json_t *v = json_object_get(entry, "version");
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *v_p = (uint64_t) json_integer_value(v);
    return true;
}

json_t *
rt_history_at(const json_t *current,
              uint64_t current_version,
              const json_t *history,
              uint64_t v,
              char *err,
              size_t errlen)
{
    if (!rt_history_is_cfg(current)) {
        s_fail(err, errlen, "the current configuration is malformed");
        return NULL;
    }
    if (v > current_version) {
        s_fail(err, errlen, "no version %" PRIu64 " (current: %" PRIu64 ")", v, current_version);
        return NULL;
    }
    if (v == current_version)
        return json_deep_copy(current);
    if (!json_is_array(history)) {
        s_fail(err, errlen, "the history is not an array");
        return NULL;
    }
    // Check the entries needed before the (costly) copy and walk.
    size_t n = json_array_size(history);
    uint64_t newest;
    if (n > 0
        && (!s_entry_version(json_array_get(history, n - 1), &newest)
            || newest != current_version)) {
        s_fail(err, errlen, "the history does not end at the current version %" PRIu64,
               current_version);
        return NULL;
    }
    uint64_t need = current_version - v; // entries to undo, newest first
    size_t have = 0;                     // consecutive entries from the newest
    for (; have < n && have < need; have++) {
        json_t *entry = json_array_get(history, n - 1 - have);
        uint64_t ev;
        if (!s_entry_version(entry, &ev) || ev != current_version - have) {
            s_fail(err, errlen, "the history is not consecutive: entry %zu is not version %" PRIu64,
                   n - 1 - have, current_version - have);
            return NULL;
        }
        if (json_object_get(entry, "changes") == NULL) {
            s_fail(err, errlen,
                   "version %" PRIu64 " predates recorded changes (entry %" PRIu64 " has none)", v,
                   ev);
            return NULL;
        }
    }
    if (have < need) {
        s_fail(err, errlen,
               "version %" PRIu64 " is older than the history kept (oldest: %" PRIu64 ")", v,
               current_version - have);
        return NULL;
    }
    json_t *cfg = json_deep_copy(current);
    json_t *maps[S_MAPS];
    for (int m = 0; m < S_MAPS; m++)
        maps[m] = json_object_get(cfg, s_map_names[m]);
    for (size_t k = 0; k < need; k++) {
        json_t *changes = json_object_get(json_array_get(history, n - 1 - k), "changes");
        char why[256] = "";
        // cfg is ours: no need for rt_history_apply's untouched-on-error copies
        if (s_check_changes(changes, why, sizeof why) != 0
            || s_apply(maps, changes, true, why, sizeof why) != 0) {
            s_fail(err, errlen, "version %" PRIu64 ": %s", current_version - k, why);
            json_decref(cfg);
            return NULL;
        }
    }
    return cfg;
}

// --------------------------------------------------------------------------
// Diff

//  The sorted names of the members of a and b (objects) that are in only one
//  of them or differ, except skip (may be NULL).
static json_t *
s_fields(const json_t *a, const json_t *b, const char *skip)
{
    json_t *fields = json_array();
    size_t n;
    const char **keys = s_keys(a, b, &n);
    for (size_t i = 0; i < n; i++) {
        if (skip && strcmp(keys[i], skip) == 0)
            continue;
        json_t *x = json_object_get(a, keys[i]);
        json_t *y = json_object_get(b, keys[i]);
        if (x == NULL || y == NULL || !json_equal(x, y))
            json_array_append_new(fields, json_string(keys[i]));
    }
    free(keys);
    return fields;
}

//  A route's backends as an object of id to backend (borrowed values): the
//  first of each id, skipping what is not an object with a string "id".
static json_t *
s_backends_by_id(const json_t *route)
{
    json_t *by_id = json_object();
    size_t i;
    json_t *backend;
    json_array_foreach(json_object_get(route, "backends"), i, backend)
    {
        const char *id = json_string_value(json_object_get(backend, "id"));
        if (json_is_object(backend) && id && json_object_get(by_id, id) == NULL)
            json_object_set(by_id, id, backend);
    }
    return by_id;
}

//  {"added": [...], "removed": [...], "changed": [{id_name: key, "fields": [...]}]}
//  between two objects of objects; for routes (backends true) each changed
//  entry also gets "backends", the same between its backends.
static json_t *
s_diff_map(const json_t *a, const json_t *b, const char *id_name, bool backends)
{
    json_t *added = json_array();
    json_t *removed = json_array();
    json_t *changed = json_array();
    size_t n;
    const char **keys = s_keys(a, b, &n);
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_object_get(a, keys[i]);
        json_t *y = json_object_get(b, keys[i]);
        if (x == NULL)
            json_array_append_new(added, json_string(keys[i]));
        else if (y == NULL)
            json_array_append_new(removed, json_string(keys[i]));
        else if (!json_equal(x, y)) {
            json_t *entry = json_pack("{s:s, s:o}", id_name, keys[i], "fields",
                                      s_fields(x, y, backends ? "backends" : NULL));
            if (backends) {
                json_t *bx = s_backends_by_id(x);
                json_t *by = s_backends_by_id(y);
                json_object_set_new(entry, "backends", s_diff_map(bx, by, "id", false));
                json_decref(bx);
                json_decref(by);
            }
            json_array_append_new(changed, entry);
        }
    }
    free(keys);
    return json_pack("{s:o, s:o, s:o}", "added", added, "removed", removed, "changed", changed);
}

json_t *
rt_history_diff(const json_t *from, const json_t *to)
{
    if (!rt_history_is_cfg(from) || !rt_history_is_cfg(to))
        return NULL;
    json_t *diff = json_object();
    for (int m = 0; m < S_MAPS; m++)
        json_object_set_new(diff, s_map_names[m],
                            s_diff_map(json_object_get(from, s_map_names[m]),
                                       json_object_get(to, s_map_names[m]), s_diff_ids[m], m == 0));
    return diff;
}

// --------------------------------------------------------------------------
// Redact

static void
s_redact_member(json_t *object, const char *name)
{
    if (json_is_object(object) && json_object_get(object, name))
        json_object_set_new(object, name, json_string(RT_HISTORY_REDACTED));
}

//  Replace every value of an object, or every element of an array, by the
//  redacted marker; anything else is left alone.
static void
s_redact_all(json_t *container)
{
    if (json_is_object(container)) {
        size_t n;
        const char **keys = s_keys(container, NULL, &n);
        for (size_t i = 0; i < n; i++)
            json_object_set_new(container, keys[i], json_string(RT_HISTORY_REDACTED));
        free(keys);
    } else if (json_is_array(container)) {
        for (size_t i = 0; i < json_array_size(container); i++)
            json_array_set_new(container, i, json_string(RT_HISTORY_REDACTED));
    }
}

//  The values of an object or the elements of an array (borrowed), in a new
//  array, so that both shapes of "routes" and "certificates" are walked alike.
static json_t *
s_values(json_t *container)
{
    json_t *values = json_array();
    if (json_is_array(container))
        json_array_extend(values, container);
    const char *key;
    json_t *value;
    json_object_foreach(container, key, value)
    {
        json_array_append(values, value);
    }
    return values;
}

json_t *
rt_history_redact(const json_t *cfg)
{
    if (!json_is_object(cfg))
        return NULL;
    json_t *copy = json_deep_copy(cfg);
    json_t *certs = s_values(json_object_get(copy, "certificates"));
    size_t i;
    json_t *cert;
    json_array_foreach(certs, i, cert)
    {
        s_redact_member(cert, "key");
    }
    json_decref(certs);
    json_t *routes = s_values(json_object_get(copy, "routes"));
    json_t *route;
    json_array_foreach(routes, i, route)
    {
        s_redact_member(json_object_get(route, "ssl"), "key");
        json_t *auth = json_object_get(route, "auth");
        json_t *users = json_object_get(auth, "users");
        if (json_is_object(users)) {
            s_redact_all(users); // name -> hash: keep the names
        } else if (json_is_array(users)) {
            // not what the API stores, but never let a hash through
            size_t k;
            json_t *user;
            json_array_foreach(users, k, user)
            {
                s_redact_member(user, "password");
                s_redact_member(user, "passwordHash");
                s_redact_member(user, "hash");
            }
        } else if (users) {
            s_redact_member(auth, "users");
        }
        json_t *tokens = json_object_get(auth, "tokens");
        if (json_is_object(tokens) || json_is_array(tokens))
            s_redact_all(tokens);
        else if (tokens)
            s_redact_member(auth, "tokens");
    }
    json_decref(routes);
    return copy;
}
