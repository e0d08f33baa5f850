/*  rt_control - the configuration and its commands (see rt_control.h).

    Every change follows one path, s_commit: the next table (a copy of the
    current one with the change applied), the next version and history are
    written to the store; only when that succeeded do they replace the
    current ones. Routes are immutable once in a table, so a change to one
    route builds a new route (rt_route_rebuild) and puts it in the copy.
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "proto_log.h"
#include "proto_route.h"
#include "proto_util.h"
#include "rt_control.h"
#include "rt_store.h"

struct rt_control {
    char *path;              // ROUTER_STATE_FILE
    char *region;            // REGION: default backend region
    rt_store_data_t data;    // version, routes, regions, history
    proto_region_t *regions; // regions with a public address, as pick carries them
    uint32_t regions_count;  // how many
};

static void
s_build_regions(rt_control_t *self)
{
    free(self->regions);
    self->regions = NULL;
    self->regions_count = 0;
    size_t n = json_array_size(self->data.regions);
    if (n == 0)
        return;
    self->regions = proto_xcalloc(n, sizeof *self->regions);
    size_t i;
    json_t *r;
    json_array_foreach(self->data.regions, i, r)
    {
        const char *id = json_string_value(json_object_get(r, "id"));
        const char *addr = json_string_value(json_object_get(r, "publicAddress"));
        if (id == NULL || addr == NULL || *addr == '\0')
            continue;
        if (self->regions_count == PROTO_PICK_REGIONS_MAX) {
            log_warn("more regions with a public address than a pick carries; the rest are "
                     "ignored",
                     LOG_I("max", PROTO_PICK_REGIONS_MAX));
            break;
        }
        self->regions[self->regions_count++] = (proto_region_t){.id = id, .address = addr};
    }
}

rt_control_t *
rt_control_new(const char *path, const char *region, char *err, size_t errlen)
{
    rt_control_t *self = proto_xcalloc(1, sizeof *self);
    self->path = proto_xstrdup(path);
    self->region = proto_xstrdup(region);
    if (rt_store_load(path, region, &self->data, err, errlen) < 0)
        goto fail;
    s_build_regions(self);
    return self;
fail:
    rt_control_destroy(&self);
    return NULL;
}

void
rt_control_destroy(rt_control_t **self_p)
{
    rt_control_t *self = *self_p;
    if (self == NULL)
        return;
    free(self->regions);
    self->regions = NULL;
    rt_store_data_clear(&self->data);
    free(self->region);
    self->region = NULL;
    free(self->path);
    self->path = NULL;
    free(self);
    *self_p = NULL;
}

uint64_t
rt_control_version(const rt_control_t *self)
{
    return self->data.version;
}

const rt_table_t *
rt_control_table(const rt_control_t *self)
{
    return self->data.table;
}

const proto_region_t *
rt_control_regions(const rt_control_t *self, uint32_t *count)
{
    *count = self->regions_count;
    return self->regions;
}

void
rt_result_clear(rt_result_t *result)
{
    free(result->body);
    memset(result, 0, sizeof *result);
}

// --------------------------------------------------------------------------
// Answers

static void
s_error(rt_result_t *result, uint16_t status, const char *field, const char *fmt, ...)
{
    result->status = status;
    proto_strlcpy(result->field, field ? field : "", sizeof result->field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(result->error, sizeof result->error, fmt, ap);
    va_end(ap);
}

static void
s_route_error(rt_result_t *result, const rt_error_t *err)
{
    s_error(result, 400, err->field, "%s", err->message);
}

//  Answer status with body (taken; NULL for none).
static void
s_ok(rt_result_t *result, uint16_t status, json_t *body)
{
    result->status = status;
    if (body == NULL)
        return;
    result->body = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (result->body == NULL || strlen(result->body) > RT_CONTROL_BODY_MAX) {
        free(result->body);
        result->body = NULL;
        s_error(result, 500, NULL, "the answer is larger than a bus message may be");
    }
}

static json_t *
s_parse_body(const char *body, rt_result_t *result)
{
    if (body == NULL || *body == '\0') {
        s_error(result, 400, NULL, "a JSON body is required");
        return NULL;
    }
    json_error_t jerr;
    json_t *json = json_loads(body, JSON_REJECT_DUPLICATES, &jerr);
    if (json == NULL)
        s_error(result, 400, NULL, "invalid JSON: %s", jerr.text);
    else if (!json_is_object(json)) {
        s_error(result, 400, NULL, "the body must be a JSON object");
        json_decref(json);
        json = NULL;
    }
    return json;
}

static bool
s_empty(const char *s)
{
    return s == NULL || *s == '\0';
}

// --------------------------------------------------------------------------
// Changes

//  Make *next_p the current table (NULL: keep the table) and *regions_p the
//  current regions (NULL: keep them) as a new version, saved first. Takes
//  both (sets them to NULL). Returns 0, or -1 with a 500 in result and
//  nothing changed.
static int
s_commit_data(rt_control_t *self,
              rt_table_t **next_p,
              json_t **regions_p,
              const char *what,
              const char *key,
              const char *by,
              const char *summary,
              uint64_t now_ms,
              rt_result_t *result)
{
    rt_store_data_t next = {
        .version = self->data.version + 1,
        .table = *next_p ? *next_p : self->data.table,
        .regions = *regions_p ? *regions_p : self->data.regions,
        .history = json_copy(self->data.history),
    };
    json_array_append_new(
        next.history,
        rt_store_history_entry(next.version, now_ms, s_empty(by) ? "local" : by, summary));
    while (json_array_size(next.history) > RT_STORE_HISTORY_MAX)
        json_array_remove(next.history, 0);
    char err[512];
    if (rt_store_save(self->path, &next, err, sizeof err) != 0) {
        log_error("cannot save the configuration; change refused", LOG_S("error", err),
                  LOG_S("change", summary));
        json_decref(next.history);
        rt_table_destroy(next_p);
        json_decref(*regions_p);
        *regions_p = NULL;
        s_error(result, 500, NULL, "cannot save the configuration (the router's log says why)");
        return -1;
    }
    if (*next_p) {
        rt_table_destroy(&self->data.table);
        self->data.table = *next_p;
        *next_p = NULL;
    }
    if (*regions_p) {
        json_t *old = self->data.regions;
        self->data.regions = *regions_p;
        *regions_p = NULL;
        s_build_regions(self); // before the old strings it points to go
        json_decref(old);
    }
    json_decref(self->data.history);
    self->data.history = next.history;
    self->data.version = next.version;
    log_info("configuration changed", LOG_U("version", next.version),
             LOG_S("by", s_empty(by) ? "local" : by), LOG_S("change", summary));
    result->changed = true;
    proto_strlcpy(result->what, what, sizeof result->what);
    proto_strlcpy(result->key, key, sizeof result->key);
    return 0;
}

//  Replace one route by a new one (or remove it when route is NULL) and commit.
static int
s_commit_route(rt_control_t *self,
               const char *vhost,
               rt_route_t *route,
               const char *what,
               const char *by,
               const char *summary,
               uint64_t now_ms,
               rt_result_t *result)
{
    rt_table_t *next = rt_table_copy(self->data.table);
    if (route)
        rt_table_put(next, route);
    else
        rt_table_remove(next, vhost);
    json_t *regions = NULL;
    return s_commit_data(self, &next, &regions, what, vhost, by, summary, now_ms, result);
}

//  Make regions (taken) the current regions and commit.
static int
s_commit_regions(rt_control_t *self,
                 json_t *regions,
                 const char *id,
                 const char *by,
                 const char *summary,
                 uint64_t now_ms,
                 rt_result_t *result)
{
    rt_table_t *table = NULL;
    return s_commit_data(self, &table, &regions, "region", id, by, summary, now_ms, result);
}

//  The index of region id in the current regions, or -1.
static int
s_find_region(const rt_control_t *self, const char *id)
{
    size_t i;
    const json_t *r;
    json_array_foreach(self->data.regions, i, r)
    {
        const char *rid = json_string_value(json_object_get(r, "id"));
        if (rid && strcmp(rid, id) == 0)
            return (int) i;
    }
    return -1;
}

static void
s_put_region(rt_control_t *self,
             const proto_config_put_t *cmd,
             uint64_t now_ms,
             rt_result_t *result)
{
    const char *id = s_empty(cmd->key) ? "" : cmd->key;
    if (!proto_route_valid_region(id)) {
        s_error(result, 400, "id", "'%.64s' is not a valid region id", id);
        return;
    }
    json_t *body = s_parse_body(cmd->body, result);
    if (body == NULL)
        return;
    const char *key;
    json_t *value;
    char address[PROTO_ROUTE_ADDRESS_MAX + 1] = "";
    json_object_foreach(body, key, value)
    {
        if (strcmp(key, "id") == 0) {
            if (!json_is_string(value) || strcmp(json_string_value(value), id) != 0) {
                s_error(result, 400, "id", "the body's id differs from the region '%s'", id);
                break;
            }
        } else if (strcmp(key, "publicAddress") == 0) {
            if (!json_is_string(value)
                || proto_route_address_normalize(json_string_value(value), address, sizeof address)
                       != 0) {
                s_error(result, 400, "publicAddress", "publicAddress must be host[:port]");
                break;
            }
        } else {
            s_error(result, 400, key, "unknown field");
            break;
        }
    }
    json_decref(body);
    if (result->status != 0)
        return;
    if (address[0] == '\0') {
        s_error(result, 400, "publicAddress", "publicAddress is required");
        return;
    }
    int at = s_find_region(self, id);
    if (at < 0 && json_array_size(self->data.regions) >= RT_CONTROL_REGIONS_MAX) {
        s_error(result, 400, "id", "at most %d regions may be registered", RT_CONTROL_REGIONS_MAX);
        return;
    }
    json_t *region = json_pack("{s:s, s:s}", "id", id, "publicAddress", address);
    json_t *regions = json_deep_copy(self->data.regions);
    if (at >= 0)
        json_array_set(regions, (size_t) at, region);
    else
        json_array_append(regions, region);
    char summary[360];
    snprintf(summary, sizeof summary, "PUT region %s %s", id, address);
    if (s_commit_regions(self, regions, id, cmd->by, summary, now_ms, result) == 0)
        s_ok(result, at >= 0 ? 200 : 201, json_incref(region));
    json_decref(region);
}

static void
s_delete_region(rt_control_t *self,
                const proto_config_delete_t *cmd,
                uint64_t now_ms,
                rt_result_t *result)
{
    int at = s_find_region(self, cmd->key);
    if (at < 0) {
        s_error(result, 404, NULL, "no region '%.64s'", cmd->key);
        return;
    }
    json_t *regions = json_deep_copy(self->data.regions);
    json_array_remove(regions, (size_t) at);
    char summary[120];
    snprintf(summary, sizeof summary, "DELETE region %.64s", cmd->key);
    if (s_commit_regions(self, regions, cmd->key, cmd->by, summary, now_ms, result) == 0)
        s_ok(result, 204, NULL);
}

static void
s_put_route(rt_control_t *self, const proto_config_put_t *cmd, uint64_t now_ms, rt_result_t *result)
{
    json_t *body = s_parse_body(cmd->body, result);
    if (body == NULL)
        return;
    json_t *vhost = json_object_get(body, "vHost");
    if (!s_empty(cmd->key)) {
        if (vhost == NULL || json_is_null(vhost))
            json_object_set_new(body, "vHost", json_string(cmd->key));
        else if (json_is_string(vhost) && strcasecmp(json_string_value(vhost), cmd->key) != 0) {
            s_error(result, 400, "vHost", "vHost '%s' differs from the one in the path '%s'",
                    json_string_value(vhost), cmd->key);
            json_decref(body);
            return;
        }
    }
    rt_error_t err = {.message = ""};
    rt_route_t *route = rt_route_new(body, self->region, &err);
    json_decref(body);
    if (route == NULL) {
        s_route_error(result, &err);
        return;
    }
    const rt_route_t *old = rt_table_get(self->data.table, route->vhost);
    bool existed = old != NULL;
    if (existed && cmd->create_only) {
        s_error(result, 409, "vHost", "a route for vHost '%s' exists", route->vhost);
        rt_route_unref(&route);
        return;
    }
    if (old)
        rt_route_carry_state(route, old); // maintenance survives an edit
    char summary[320];
    snprintf(summary, sizeof summary, "%s route %s", cmd->create_only ? "POST" : "PUT",
             route->vhost);
    if (s_commit_route(self, route->vhost, route, "route", cmd->by, summary, now_ms, result) == 0)
        s_ok(result, existed ? 200 : 201, rt_route_to_api(route));
    rt_route_unref(&route);
}

static void
s_put_backend(rt_control_t *self,
              const proto_config_put_t *cmd,
              uint64_t now_ms,
              rt_result_t *result)
{
    rt_route_t *route = rt_table_get(self->data.table, s_empty(cmd->key) ? "" : cmd->key);
    if (route == NULL) {
        s_error(result, 404, NULL, "no route for vHost '%s'", s_empty(cmd->key) ? "" : cmd->key);
        return;
    }
    json_t *body = s_parse_body(cmd->body, result);
    if (body == NULL)
        return;
    rt_error_t err = {.message = ""};
    json_t *backend = rt_route_backend_normalize(body, self->region, "", &err);
    json_decref(body);
    if (backend == NULL) {
        s_route_error(result, &err);
        return;
    }
    const char *id = json_string_value(json_object_get(backend, "id"));
    if (rt_route_find_backend(route, id) >= 0) {
        s_error(result, 409, "id", "backend '%s' exists in route '%s'", id, route->vhost);
        json_decref(backend);
        return;
    }
    char summary[420];
    snprintf(summary, sizeof summary, "POST backend %s/%s", route->vhost, id);
    json_t *doc = json_deep_copy(route->doc);
    json_array_append_new(json_object_get(doc, "backends"), backend);
    rt_route_t *next = rt_route_rebuild(route, doc, self->region, &err);
    if (next == NULL) {
        s_route_error(result, &err);
        return;
    }
    if (s_commit_route(self, next->vhost, next, "backend", cmd->by, summary, now_ms, result) == 0)
        s_ok(result, 201, rt_route_backend_to_api(next, next->backends_count - 1));
    rt_route_unref(&next);
}

static void
s_put_maint(rt_control_t *self,
            const proto_config_put_t *cmd,
            bool dead,
            uint64_t now_ms,
            rt_result_t *result)
{
    rt_route_t *route = rt_table_get(self->data.table, s_empty(cmd->key) ? "" : cmd->key);
    if (route == NULL) {
        s_error(result, 404, NULL, "no route for vHost '%s'", s_empty(cmd->key) ? "" : cmd->key);
        return;
    }
    int at = s_empty(cmd->sub) ? -1 : rt_route_find_backend(route, cmd->sub);
    if (at < 0) {
        s_error(result, 404, NULL, "no backend '%s' in route '%s'", cmd->sub ? cmd->sub : "",
                route->vhost);
        return;
    }
    if (route->backends[at].maint == dead) { // already so: not a change, no new version
        s_ok(result, 200, rt_route_backend_to_api(route, (size_t) at));
        return;
    }
    rt_error_t err = {.message = ""};
    rt_route_t *next = rt_route_rebuild(route, json_deep_copy(route->doc), self->region, &err);
    if (next == NULL) {
        s_route_error(result, &err);
        return;
    }
    rt_route_set_maint(next, (size_t) at, dead, now_ms);
    char summary[420];
    snprintf(summary, sizeof summary, "mark backend %s/%s %s", route->vhost, cmd->sub,
             dead ? "dead" : "alive");
    if (s_commit_route(self, next->vhost, next, dead ? "dead" : "alive", cmd->by, summary, now_ms,
                       result)
        == 0)
        s_ok(result, 200, rt_route_backend_to_api(next, (size_t) at));
    rt_route_unref(&next);
}

static void
s_delete_route(rt_control_t *self,
               const proto_config_delete_t *cmd,
               uint64_t now_ms,
               rt_result_t *result)
{
    rt_route_t *route = rt_table_get(self->data.table, cmd->key);
    if (route == NULL) {
        s_error(result, 404, NULL, "no route for vHost '%s'", cmd->key);
        return;
    }
    char vhost[PROTO_ROUTE_VHOST_MAX + 1], summary[320];
    proto_strlcpy(vhost, route->vhost, sizeof vhost);
    snprintf(summary, sizeof summary, "DELETE route %s", vhost);
    if (s_commit_route(self, vhost, NULL, "route", cmd->by, summary, now_ms, result) == 0)
        s_ok(result, 204, NULL);
}

static void
s_delete_backend(rt_control_t *self,
                 const proto_config_delete_t *cmd,
                 uint64_t now_ms,
                 rt_result_t *result)
{
    rt_route_t *route = rt_table_get(self->data.table, cmd->key);
    if (route == NULL) {
        s_error(result, 404, NULL, "no route for vHost '%s'", cmd->key);
        return;
    }
    int at = s_empty(cmd->sub) ? -1 : rt_route_find_backend(route, cmd->sub);
    if (at < 0) {
        s_error(result, 404, NULL, "no backend '%s' in route '%s'", cmd->sub ? cmd->sub : "",
                route->vhost);
        return;
    }
    char summary[420];
    snprintf(summary, sizeof summary, "DELETE backend %s/%s", route->vhost, cmd->sub);
    json_t *doc = json_deep_copy(route->doc);
    json_array_remove(json_object_get(doc, "backends"), (size_t) at);
    rt_error_t err = {.message = ""};
    rt_route_t *next = rt_route_rebuild(route, doc, self->region, &err);
    if (next == NULL) {
        s_route_error(result, &err);
        return;
    }
    if (s_commit_route(self, next->vhost, next, "backend", cmd->by, summary, now_ms, result) == 0)
        s_ok(result, 204, NULL);
    rt_route_unref(&next);
}

// --------------------------------------------------------------------------
// Commands

void
rt_control_get(rt_control_t *self, const proto_config_get_t *cmd, rt_result_t *result)
{
    memset(result, 0, sizeof *result);
    const char *what = cmd->what;
    if (strcmp(what, "routes") == 0) {
        json_t *out = json_array();
        for (size_t i = 0; i < rt_table_size(self->data.table); i++)
            json_array_append_new(out, rt_route_to_api(rt_table_at(self->data.table, i)));
        s_ok(result, 200, out);
    } else if (strcmp(what, "route") == 0) {
        rt_route_t *route = rt_table_get(self->data.table, s_empty(cmd->key) ? "" : cmd->key);
        if (route)
            s_ok(result, 200, rt_route_to_api(route));
        else
            s_error(result, 404, NULL, "no route for vHost '%s'", cmd->key ? cmd->key : "");
    } else if (strcmp(what, "regions") == 0) {
        s_ok(result, 200, json_deep_copy(self->data.regions));
    } else if (strcmp(what, "versions") == 0) {
        json_t *out = json_array();
        for (size_t i = json_array_size(self->data.history); i-- > 0;)
            json_array_append(out, json_array_get(self->data.history, i));
        s_ok(result, 200, out);
    } else {
        s_error(result, 400, "what", "config.get of '%s' is not supported", what);
    }
    result->version = self->data.version;
}

void
rt_control_put(rt_control_t *self,
               const proto_config_put_t *cmd,
               uint64_t now_ms,
               rt_result_t *result)
{
    memset(result, 0, sizeof *result);
    const char *what = cmd->what;
    if (strcmp(what, "route") == 0)
        s_put_route(self, cmd, now_ms, result);
    else if (strcmp(what, "backend") == 0)
        s_put_backend(self, cmd, now_ms, result);
    else if (strcmp(what, "dead") == 0 || strcmp(what, "alive") == 0)
        s_put_maint(self, cmd, strcmp(what, "dead") == 0, now_ms, result);
    else if (strcmp(what, "region") == 0)
        s_put_region(self, cmd, now_ms, result);
    else
        s_error(result, 400, "what", "config.put of '%s' is not supported", what);
    result->version = self->data.version;
}

void
rt_control_delete(rt_control_t *self,
                  const proto_config_delete_t *cmd,
                  uint64_t now_ms,
                  rt_result_t *result)
{
    memset(result, 0, sizeof *result);
    const char *what = cmd->what;
    if (strcmp(what, "route") == 0)
        s_delete_route(self, cmd, now_ms, result);
    else if (strcmp(what, "backend") == 0)
        s_delete_backend(self, cmd, now_ms, result);
    else if (strcmp(what, "region") == 0)
        s_delete_region(self, cmd, now_ms, result);
    else
        s_error(result, 400, "what", "config.delete of '%s' is not supported", what);
    result->version = self->data.version;
}
