/*  rt_control - the configuration and its commands (see rt_control.h).

    Every change follows one path: a handler builds the pieces of the next
    configuration (a copy of the current table with one route replaced,
    new regions or certificates) and the change record (rt_history:
    what, key, before, after); s_stage turns them into the next
    configuration and its history entry; the store commits it; only then
    does it replace the current one (s_on_committed). Routes are immutable
    once in a table, so a change to one route builds a new route
    (rt_route_rebuild) and puts it in the copy.
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "proto_log.h"
#include "proto_route.h"
#include "proto_util.h"
#include "rt_control.h"
#include "rt_history.h"
#include "rt_store.h"

//  A change waiting for its turn (owned copies of the command's fields).
typedef struct s_cmd {
    struct s_cmd *next;       // queue link
    bool is_delete;           // config.delete (else config.put)
    char *what, *key, *sub;   // as the command had them ("" for absent)
    char *body, *by;          // put's body (NULL: none); who
    bool create_only;         // put's create_only
    uint64_t now_ms;          // wall clock when it arrived (history)
    uint64_t queued_ms;       // monotonic clock when it arrived (queue deadline)
    int tries;                // runs so far (conflicts)
    rt_control_done_fn *done; // answer
    void *arg;                // its argument
} s_cmd_t;

struct rt_control {
    char *path;              // the file store's path (rt_control_open_file), or NULL
    char *region;            // REGION: default backend region
    rt_store_data_t data;    // version, routes, regions, certificates, history
    proto_region_t *regions; // regions with a public address, as pick carries them
    uint32_t regions_count;  // how many
    rt_store_ops_t store;    // where changes are committed

    s_cmd_t *head, *tail;            // changes waiting for their turn
    s_cmd_t *inflight;               // the change being committed, or NULL
    bool staged;                     // a handler staged next/entry/pending
    rt_store_data_t next;            // the staged configuration
    json_t *entry;                   // its history entry
    rt_result_t pending;             // the answer once it is durable
    bool waiting_reload;             // a conflict asked the store to reload
    bool pumping;                    // s_pump is on the stack
    rt_store_data_t deferred;        // a replacement that came while a change was in flight
    rt_control_reload_fn *on_reload; // told when a replacement became current
    void *on_reload_arg;             // its argument
    bool loaded;                     // a configuration is loaded (else decide cannot answer)

    rt_table_t *edge;     // routes from seed 002's tables (rt_edge), or NULL
    json_t *edge_regions; // their regions, or NULL
    rt_table_t *served;   // the API's routes and the edge's, or NULL (no edge: data.table)
};

static uint64_t
s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

static void s_add_regions(rt_control_t *self, const json_t *regions, bool skip_known);

static void
s_build_regions(rt_control_t *self)
{
    free(self->regions);
    self->regions = NULL;
    self->regions_count = 0;
    size_t n = json_array_size(self->data.regions) + json_array_size(self->edge_regions);
    if (n == 0)
        return;
    self->regions = proto_xcalloc(n, sizeof *self->regions);
    s_add_regions(self, self->data.regions, false);
    s_add_regions(self, self->edge_regions, true); // the API's entry wins
}

//  The routes served: the API's, and the edge's where the API has none.
static void
s_build_served(rt_control_t *self)
{
    rt_table_destroy(&self->served);
    if (self->edge == NULL)
        return;
    self->served = rt_table_copy(self->data.table);
    for (size_t i = 0; i < rt_table_size(self->edge); i++) {
        rt_route_t *route = rt_table_at(self->edge, i);
        if (rt_table_get(self->data.table, route->vhost) == NULL)
            rt_table_put(self->served, route);
    }
}

static void
s_add_regions(rt_control_t *self, const json_t *regions, bool skip_known)
{
    size_t i;
    json_t *r;
    json_array_foreach(regions, i, r)
    {
        const char *id = json_string_value(json_object_get(r, "id"));
        const char *addr = json_string_value(json_object_get(r, "publicAddress"));
        if (id == NULL || addr == NULL || *addr == '\0')
            continue;
        bool known = false;
        for (uint32_t k = 0; skip_known && k < self->regions_count; k++)
            known = known || strcmp(self->regions[k].id, id) == 0;
        if (known)
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

//  Make data (taken) the current configuration.
static void
s_make_current(rt_control_t *self, rt_store_data_t *data)
{
    rt_store_data_t old = self->data;
    self->data = *data;
    memset(data, 0, sizeof *data);
    s_build_regions(self); // before the old strings it points to go
    s_build_served(self);
    rt_store_data_clear(&old);
}

rt_control_t *
rt_control_new(const char *region, rt_store_data_t *data, rt_store_ops_t store)
{
    rt_control_t *self = proto_xcalloc(1, sizeof *self);
    self->region = proto_xstrdup(region);
    self->store = store;
    s_make_current(self, data);
    if (self->data.table == NULL)
        self->data.table = rt_table_new();
    if (self->data.regions == NULL)
        self->data.regions = json_array();
    if (self->data.certificates == NULL)
        self->data.certificates = json_array();
    if (self->data.history == NULL)
        self->data.history = json_array();
    self->loaded = true;
    return self;
}

rt_control_t *
rt_control_new_unloaded(const char *region, rt_store_ops_t store)
{
    rt_store_data_t data = {0};
    rt_control_t *self = rt_control_new(region, &data, store);
    self->loaded = false;
    return self;
}

bool
rt_control_loaded(const rt_control_t *self)
{
    return self->loaded;
}

void
rt_control_set_edge(rt_control_t *self, rt_table_t *table, json_t *regions)
{
    rt_table_destroy(&self->edge);
    json_decref(self->edge_regions);
    self->edge = table;
    self->edge_regions = regions;
    for (size_t i = 0; table && i < rt_table_size(table); i++) {
        const rt_route_t *route = rt_table_at(table, i);
        if (rt_table_get(self->data.table, route->vhost))
            log_info("a route from seed 002's tables has the vHost of an API route; the API's "
                     "is served",
                     LOG_S("vhost", route->vhost));
    }
    s_build_regions(self);
    s_build_served(self);
}

rt_control_t *
rt_control_open_file(const char *path, const char *region, char *err, size_t errlen)
{
    rt_store_data_t data = {0};
    if (rt_store_load(path, region, &data, err, errlen) < 0)
        return NULL;
    char *owned = proto_xstrdup(path);
    rt_control_t *self = rt_control_new(region, &data, rt_store_file_ops(owned));
    self->path = owned;
    return self;
}

static void s_cmd_free(s_cmd_t *cmd);
static void s_fail_waiting(rt_control_t *self, uint16_t status, const char *why);

void
rt_control_destroy(rt_control_t **self_p)
{
    rt_control_t *self = *self_p;
    if (self == NULL)
        return;
    // nobody can be answered any more (the actor is going): done gets NULL
    // so that what its argument holds can go
    if (self->inflight) {
        self->inflight->done(self->inflight->arg, NULL);
        s_cmd_free(self->inflight);
        self->inflight = NULL;
    }
    while (self->head) {
        s_cmd_t *cmd = self->head;
        self->head = cmd->next;
        cmd->done(cmd->arg, NULL);
        s_cmd_free(cmd);
    }
    rt_store_data_clear(&self->next);
    json_decref(self->entry);
    rt_result_clear(&self->pending);
    rt_store_data_clear(&self->deferred);
    rt_table_destroy(&self->served);
    rt_table_destroy(&self->edge);
    json_decref(self->edge_regions);
    free(self->regions);
    self->regions = NULL;
    rt_store_data_clear(&self->data);
    free(self->region);
    free(self->path);
    free(self);
    *self_p = NULL;
}

void
rt_control_on_reload(rt_control_t *self, rt_control_reload_fn *fn, void *arg)
{
    self->on_reload = fn;
    self->on_reload_arg = arg;
}

uint64_t
rt_control_version(const rt_control_t *self)
{
    return self->data.version;
}

const rt_table_t *
rt_control_table(const rt_control_t *self)
{
    return self->served ? self->served : self->data.table;
}

const proto_region_t *
rt_control_regions(const rt_control_t *self, uint32_t *count)
{
    *count = self->regions_count;
    return self->regions;
}

size_t
rt_control_queued(const rt_control_t *self)
{
    size_t n = self->inflight ? 1 : 0;
    for (const s_cmd_t *c = self->head; c; c = c->next)
        n++;
    return n;
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

//  A change record (rt_history.h): before/after taken, NULL for none.
static json_t *
s_change(const char *what, const char *key, json_t *before, json_t *after)
{
    return json_pack("{s:s, s:s, s:o, s:o}", "what", what, "key", key, "before",
                     before ? before : json_null(), "after", after ? after : json_null());
}

//  Stage the next configuration: table, regions and certs are taken (NULL:
//  keep the current ones), changes (taken) is its rt_history record; the
//  answer once durable is status with body (taken). A refusal (an answer
//  too big for the bus) is put in result instead.
static void
s_stage(rt_control_t *self,
        const s_cmd_t *cmd,
        rt_table_t *table,
        json_t *regions,
        json_t *certs,
        json_t *changes,
        const char *what,
        const char *key,
        const char *summary,
        uint16_t status,
        json_t *body,
        rt_result_t *result)
{
    rt_result_t answer = {0};
    s_ok(&answer, status, body);
    if (answer.status >= 400) {
        *result = answer;
        rt_table_destroy(&table);
        json_decref(regions);
        json_decref(certs);
        json_decref(changes);
        return;
    }
    const char *by = s_empty(cmd->by) ? "local" : cmd->by;
    uint64_t version = self->data.version + 1;
    self->next = (rt_store_data_t){
        .version = version,
        .table = table ? table : rt_table_copy(self->data.table),
        .regions = regions ? regions : json_incref(self->data.regions),
        .certificates = certs ? certs : json_incref(self->data.certificates),
        .history = json_copy(self->data.history),
    };
    self->entry = rt_store_history_entry(version, cmd->now_ms, by, summary);
    json_object_set_new(self->entry, "changes", changes);
    json_array_append(self->next.history, self->entry);
    while (json_array_size(self->next.history) > RT_STORE_HISTORY_MAX)
        json_array_remove(self->next.history, 0);
    answer.changed = true;
    answer.version = version;
    proto_strlcpy(answer.what, what, sizeof answer.what);
    proto_strlcpy(answer.key, key, sizeof answer.key);
    self->pending = answer;
    self->staged = true;
}

//  Stage route (NULL: remove vhost's route) in a copy of the table.
static void
s_stage_route(rt_control_t *self,
              const s_cmd_t *cmd,
              const char *vhost,
              rt_route_t *route,
              const char *what,
              const char *summary,
              uint16_t status,
              json_t *body,
              rt_result_t *result)
{
    const rt_route_t *old = rt_table_get(self->data.table, vhost);
    json_t *change = s_change("route", vhost, old ? rt_route_to_store(old) : NULL,
                              route ? rt_route_to_store(route) : NULL);
    rt_table_t *next = rt_table_copy(self->data.table);
    if (route)
        rt_table_put(next, route);
    else
        rt_table_remove(next, vhost);
    s_stage(self, cmd, next, NULL, NULL, json_pack("[o]", change), what, vhost, summary, status,
            body, result);
}

//  The index of the object whose member is value in array, or -1.
static int
s_find(const json_t *array, const char *member, const char *value)
{
    size_t i;
    const json_t *obj;
    json_array_foreach(array, i, obj)
    {
        const char *v = json_string_value(json_object_get(obj, member));
        if (v && strcmp(v, value) == 0)
            return (int) i;
    }
    return -1;
}

//  Parse a configuration version (decimal digits) from s.
static bool
s_parse_version(const char *s, uint64_t *out)
{
    if (s == NULL || *s == '\0' || strlen(s) > 20)
        return false;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        uint64_t d = (uint64_t) (*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static void
s_put_region(rt_control_t *self, const s_cmd_t *cmd, rt_result_t *result)
{
    const char *id = cmd->key;
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
    int at = s_find(self->data.regions, "id", id);
    if (at < 0 && json_array_size(self->data.regions) >= RT_CONTROL_REGIONS_MAX) {
        s_error(result, 400, "id", "at most %d regions may be registered", RT_CONTROL_REGIONS_MAX);
        return;
    }
    json_t *region = json_pack("{s:s, s:s}", "id", id, "publicAddress", address);
    json_t *before =
        at >= 0 ? json_deep_copy(json_array_get(self->data.regions, (size_t) at)) : NULL;
    json_t *regions = json_deep_copy(self->data.regions);
    if (at >= 0)
        json_array_set(regions, (size_t) at, region);
    else
        json_array_append(regions, region);
    char summary[360];
    snprintf(summary, sizeof summary, "PUT region %s %s", id, address);
    json_t *change = s_change("region", id, before, json_deep_copy(region));
    s_stage(self, cmd, NULL, regions, NULL, json_pack("[o]", change), "region", id, summary,
            at >= 0 ? 200 : 201, region, result);
}

static void
s_delete_region(rt_control_t *self, const s_cmd_t *cmd, rt_result_t *result)
{
    int at = s_find(self->data.regions, "id", cmd->key);
    if (at < 0) {
        s_error(result, 404, NULL, "no region '%.64s'", cmd->key);
        return;
    }
    json_t *regions = json_deep_copy(self->data.regions);
    json_array_remove(regions, (size_t) at);
    char summary[120];
    snprintf(summary, sizeof summary, "DELETE region %.64s", cmd->key);
    json_t *change = s_change(
        "region", cmd->key, json_deep_copy(json_array_get(self->data.regions, (size_t) at)), NULL);
    s_stage(self, cmd, NULL, regions, NULL, json_pack("[o]", change), "region", cmd->key, summary,
            204, NULL, result);
}

//  A certificate as GET /certificates lists it: never the key.
static json_t *
s_cert_public(const json_t *cert)
{
    static const char *const fields[] = {"domain", "issuer", "subject", "notBefore", "notAfter"};
    json_t *out = json_object();
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(fields); i++) {
        json_t *v = json_object_get(cert, fields[i]);
        json_object_set(out, fields[i], v ? v : json_null());
    }
    return out;
}

//  A certificate apid validated (OpenSSL): here its shape is checked again,
//  so the store never holds something the gateway cannot use.
static void
s_put_cert(rt_control_t *self, const s_cmd_t *cmd, rt_result_t *result)
{
    static const char *const fields[] = {"domain",  "cert",      "key",     "issuer",
                                         "subject", "notBefore", "notAfter"};
    json_t *body = s_parse_body(cmd->body, result);
    if (body == NULL)
        return;
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value)
    {
        bool known = false;
        for (size_t i = 0; i < PROTO_ARRAY_SIZE(fields); i++)
            known = known || strcmp(key, fields[i]) == 0;
        if (!known) {
            s_error(result, 400, key, "unknown field");
            break;
        }
        if (!json_is_string(value)) {
            s_error(result, 400, key, "%s must be a string", key);
            break;
        }
    }
    for (size_t i = 0; result->status == 0 && i < PROTO_ARRAY_SIZE(fields); i++)
        if (json_object_get(body, fields[i]) == NULL)
            s_error(result, 400, fields[i], "%s is required", fields[i]);
    const char *domain = json_string_value(json_object_get(body, "domain"));
    char lower[PROTO_ROUTE_VHOST_MAX + 1] = "";
    if (result->status == 0 && strcasecmp(domain, cmd->key) != 0)
        s_error(result, 400, "domain", "the body's domain differs from '%.64s'", cmd->key);
    if (result->status == 0 && proto_route_vhost_normalize(domain, lower, sizeof lower) != 0)
        s_error(result, 400, "domain", "'%.64s' is not a valid domain", domain);
    if (result->status != 0) {
        json_decref(body);
        return;
    }
    json_object_set_new(body, "domain", json_string(lower));
    int at = s_find(self->data.certificates, "domain", lower);
    if (at < 0 && json_array_size(self->data.certificates) >= RT_CONTROL_CERTS_MAX) {
        s_error(result, 400, "domain", "at most %d certificates may be stored",
                RT_CONTROL_CERTS_MAX);
        json_decref(body);
        return;
    }
    json_t *before =
        at >= 0 ? json_deep_copy(json_array_get(self->data.certificates, (size_t) at)) : NULL;
    json_t *certs = json_copy(self->data.certificates);
    if (at >= 0)
        json_array_set(certs, (size_t) at, body);
    else
        json_array_append(certs, body);
    char summary[360];
    snprintf(summary, sizeof summary, "%s certificate %s", at >= 0 ? "replace" : "add", lower);
    json_t *change = s_change("certificate", lower, before, json_deep_copy(body));
    s_stage(self, cmd, NULL, NULL, certs, json_pack("[o]", change), "certificate", lower, summary,
            at >= 0 ? 200 : 201, s_cert_public(body), result);
    json_decref(body);
}

static void
s_delete_cert(rt_control_t *self, const s_cmd_t *cmd, rt_result_t *result)
{
    char lower[PROTO_ROUTE_VHOST_MAX + 1] = "";
    int at = proto_route_vhost_normalize(cmd->key, lower, sizeof lower) == 0
                 ? s_find(self->data.certificates, "domain", lower)
                 : -1;
    if (at < 0) {
        s_error(result, 404, NULL, "no certificate for '%.64s'", cmd->key);
        return;
    }
    json_t *certs = json_copy(self->data.certificates);
    json_array_remove(certs, (size_t) at);
    char summary[360];
    snprintf(summary, sizeof summary, "DELETE certificate %s", lower);
    json_t *change =
        s_change("certificate", lower,
                 json_deep_copy(json_array_get(self->data.certificates, (size_t) at)), NULL);
    s_stage(self, cmd, NULL, NULL, certs, json_pack("[o]", change), "certificate", lower, summary,
            204, NULL, result);
}

//  The configuration as of version v, keyed (rt_history), or NULL with a
//  404 in result.
static json_t *
s_cfg_at(rt_control_t *self, const char *key, rt_result_t *result)
{
    uint64_t v;
    if (!s_parse_version(key, &v)) {
        s_error(result, 400, "version", "'%.32s' is not a version number", key ? key : "");
        return NULL;
    }
    json_t *current = rt_store_cfg(&self->data);
    char err[256] = "";
    json_t *cfg =
        rt_history_at(current, self->data.version, self->data.history, v, err, sizeof err);
    json_decref(current);
    if (cfg == NULL)
        s_error(result, 404, NULL, "%s", err);
    return cfg;
}

static void
s_put_rollback(rt_control_t *self, const s_cmd_t *cmd, rt_result_t *result)
{
    uint64_t v = 0;
    json_t *target = s_cfg_at(self, cmd->key, result);
    if (target == NULL)
        return;
    s_parse_version(cmd->key, &v);
    json_t *doc = rt_store_cfg_document(target, 0, NULL);
    json_decref(target);
    rt_store_data_t parsed = {0};
    char err[400] = "";
    int rc = rt_store_parse(doc, self->region, &parsed, err, sizeof err);
    json_decref(doc);
    if (rc != 0) {
        s_error(result, 500, NULL, "version %llu cannot be restored: %s", (unsigned long long) v,
                err);
        return;
    }
    // the change record from what will be stored (parsing normalizes), so
    // that rt_history can always walk back over this version
    json_t *current = rt_store_cfg(&self->data);
    json_t *restored = rt_store_cfg(&parsed);
    json_t *changes = rt_history_changes(current, restored);
    json_decref(current);
    json_decref(restored);
    size_t n = json_array_size(changes);
    char summary[120];
    snprintf(summary, sizeof summary, "rollback to version %llu (%zu change%s)",
             (unsigned long long) v, n, n == 1 ? "" : "s");
    json_t *body = json_pack("{s:I, s:I, s:I}", "version", (json_int_t) (self->data.version + 1),
                             "rolledBackTo", (json_int_t) v, "changes", (json_int_t) n);
    rt_table_t *table = parsed.table;
    json_t *regions = parsed.regions, *certs = parsed.certificates;
    parsed.table = NULL;
    parsed.regions = parsed.certificates = NULL;
    rt_store_data_clear(&parsed);
    s_stage(self, cmd, table, regions, certs, changes, "rollback", cmd->key, summary, 200, body,
            result);
}

static void
s_put_route(rt_control_t *self, const s_cmd_t *cmd, rt_result_t *result)
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
    s_stage_route(self, cmd, route->vhost, route, "route", summary, existed ? 200 : 201,
                  rt_route_to_api(route), result);
    rt_route_unref(&route);
}

static void
s_put_backend(rt_control_t *self, const s_cmd_t *cmd, rt_result_t *result)
{
    rt_route_t *route = rt_table_get(self->data.table, cmd->key);
    if (route == NULL) {
        s_error(result, 404, NULL, "no route for vHost '%s'", cmd->key);
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
    s_stage_route(self, cmd, next->vhost, next, "backend", summary, 201,
                  rt_route_backend_to_api(next, next->backends_count - 1), result);
    rt_route_unref(&next);
}

static void
s_put_maint(rt_control_t *self, const s_cmd_t *cmd, bool dead, rt_result_t *result)
{
    rt_route_t *route = rt_table_get(self->data.table, cmd->key);
    if (route == NULL) {
        s_error(result, 404, NULL, "no route for vHost '%s'", cmd->key);
        return;
    }
    int at = s_empty(cmd->sub) ? -1 : rt_route_find_backend(route, cmd->sub);
    if (at < 0) {
        s_error(result, 404, NULL, "no backend '%s' in route '%s'", cmd->sub, route->vhost);
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
    rt_route_set_maint(next, (size_t) at, dead, cmd->now_ms);
    char summary[420];
    snprintf(summary, sizeof summary, "mark backend %s/%s %s", route->vhost, cmd->sub,
             dead ? "dead" : "alive");
    s_stage_route(self, cmd, next->vhost, next, dead ? "dead" : "alive", summary, 200,
                  rt_route_backend_to_api(next, (size_t) at), result);
    rt_route_unref(&next);
}

static void
s_delete_route(rt_control_t *self, const s_cmd_t *cmd, rt_result_t *result)
{
    rt_route_t *route = rt_table_get(self->data.table, cmd->key);
    if (route == NULL) {
        s_error(result, 404, NULL, "no route for vHost '%s'", cmd->key);
        return;
    }
    char vhost[PROTO_ROUTE_VHOST_MAX + 1], summary[320];
    proto_strlcpy(vhost, route->vhost, sizeof vhost);
    snprintf(summary, sizeof summary, "DELETE route %s", vhost);
    s_stage_route(self, cmd, vhost, NULL, "route", summary, 204, NULL, result);
}

static void
s_delete_backend(rt_control_t *self, const s_cmd_t *cmd, rt_result_t *result)
{
    rt_route_t *route = rt_table_get(self->data.table, cmd->key);
    if (route == NULL) {
        s_error(result, 404, NULL, "no route for vHost '%s'", cmd->key);
        return;
    }
    int at = s_empty(cmd->sub) ? -1 : rt_route_find_backend(route, cmd->sub);
    if (at < 0) {
        s_error(result, 404, NULL, "no backend '%s' in route '%s'", cmd->sub, route->vhost);
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
    s_stage_route(self, cmd, next->vhost, next, "backend", summary, 204, NULL, result);
    rt_route_unref(&next);
}

// --------------------------------------------------------------------------
// The queue

static void
s_cmd_free(s_cmd_t *cmd)
{
    if (cmd == NULL)
        return;
    free(cmd->what);
    free(cmd->key);
    free(cmd->sub);
    free(cmd->body);
    free(cmd->by);
    free(cmd);
}

static s_cmd_t *
s_cmd_new(bool is_delete,
          const char *what,
          const char *key,
          const char *sub,
          const char *body,
          const char *by,
          uint64_t now_ms,
          rt_control_done_fn *done,
          void *arg)
{
    s_cmd_t *cmd = proto_xcalloc(1, sizeof *cmd);
    cmd->is_delete = is_delete;
    cmd->what = proto_xstrdup(what ? what : "");
    cmd->key = proto_xstrdup(key ? key : "");
    cmd->sub = proto_xstrdup(sub ? sub : "");
    cmd->body = body ? proto_xstrdup(body) : NULL;
    cmd->by = proto_xstrdup(by ? by : "");
    cmd->now_ms = now_ms;
    cmd->queued_ms = s_mono_ms();
    cmd->done = done;
    cmd->arg = arg;
    return cmd;
}

//  Answer cmd with result and free it.
static void
s_finish(s_cmd_t *cmd, rt_result_t *result)
{
    cmd->done(cmd->arg, result);
    rt_result_clear(result);
    s_cmd_free(cmd);
}

//  Run one change: an answer at once, or a staged change handed to the
//  store.
static void s_on_committed(void *arg, int rc, const char *err);

static void
s_run(rt_control_t *self, s_cmd_t *cmd)
{
    rt_result_t result = {0};
    const char *what = cmd->what;
    if (!self->loaded)
        s_error(&result, 503, NULL,
                "the configuration is not loaded from the store yet; nothing changed");
    else if (!cmd->is_delete) {
        if (strcmp(what, "route") == 0)
            s_put_route(self, cmd, &result);
        else if (strcmp(what, "backend") == 0)
            s_put_backend(self, cmd, &result);
        else if (strcmp(what, "dead") == 0 || strcmp(what, "alive") == 0)
            s_put_maint(self, cmd, strcmp(what, "dead") == 0, &result);
        else if (strcmp(what, "region") == 0)
            s_put_region(self, cmd, &result);
        else if (strcmp(what, "certificate") == 0)
            s_put_cert(self, cmd, &result);
        else if (strcmp(what, "rollback") == 0)
            s_put_rollback(self, cmd, &result);
        else
            s_error(&result, 400, "what", "config.put of '%s' is not supported", what);
    } else {
        if (strcmp(what, "route") == 0)
            s_delete_route(self, cmd, &result);
        else if (strcmp(what, "backend") == 0)
            s_delete_backend(self, cmd, &result);
        else if (strcmp(what, "region") == 0)
            s_delete_region(self, cmd, &result);
        else if (strcmp(what, "certificate") == 0)
            s_delete_cert(self, cmd, &result);
        else
            s_error(&result, 400, "what", "config.delete of '%s' is not supported", what);
    }
    if (!self->staged) {
        result.version = self->data.version;
        s_finish(cmd, &result);
        return;
    }
    self->staged = false;
    self->inflight = cmd;
    self->store.commit(self->store.store, &self->next, self->entry, s_on_committed, self);
}

//  Run waiting changes while none is in flight.
static void
s_pump(rt_control_t *self)
{
    if (self->pumping)
        return;
    self->pumping = true;
    while (self->inflight == NULL && !self->waiting_reload && self->head) {
        s_cmd_t *cmd = self->head;
        self->head = cmd->next;
        if (self->head == NULL)
            self->tail = NULL;
        cmd->next = NULL;
        if (s_mono_ms() - cmd->queued_ms > RT_CONTROL_QUEUE_MS) {
            rt_result_t result = {0};
            s_error(&result, 503, NULL,
                    "the change waited more than %d ms for the configuration store; nothing "
                    "changed",
                    RT_CONTROL_QUEUE_MS);
            result.version = self->data.version;
            s_finish(cmd, &result);
            continue;
        }
        s_run(self, cmd);
    }
    self->pumping = false;
}

static void
s_enqueue(rt_control_t *self, s_cmd_t *cmd, bool at_head)
{
    if (at_head) {
        cmd->next = self->head;
        self->head = cmd;
        if (self->tail == NULL)
            self->tail = cmd;
    } else {
        cmd->next = NULL;
        if (self->tail)
            self->tail->next = cmd;
        else
            self->head = cmd;
        self->tail = cmd;
    }
}

//  A replacement that waited for the change in flight, if still newer.
static void
s_apply_deferred(rt_control_t *self)
{
    if (self->deferred.table == NULL)
        return;
    if (self->deferred.version == self->data.version) {
        rt_store_data_clear(&self->deferred);
        return;
    }
    s_make_current(self, &self->deferred);
    log_info("configuration reloaded from the store", LOG_U("version", self->data.version));
    if (self->on_reload)
        self->on_reload(self->on_reload_arg, self->data.version);
}

static void
s_on_committed(void *arg, int rc, const char *err)
{
    rt_control_t *self = arg;
    s_cmd_t *cmd = self->inflight;
    self->inflight = NULL;
    json_t *entry = self->entry;
    self->entry = NULL;
    rt_result_t result = self->pending;
    memset(&self->pending, 0, sizeof self->pending);
    const char *summary = json_string_value(json_object_get(entry, "summary"));
    if (rc == RT_STORE_OK) {
        s_make_current(self, &self->next);
        log_info("configuration changed", LOG_U("version", self->data.version),
                 LOG_S("by", s_empty(cmd->by) ? "local" : cmd->by), LOG_S("change", summary));
        json_decref(entry);
        s_finish(cmd, &result);
        s_apply_deferred(self);
        s_pump(self);
        return;
    }
    rt_store_data_clear(&self->next);
    rt_result_clear(&result);
    if (rc == RT_STORE_CONFLICT && cmd->tries + 1 < RT_CONTROL_TRIES && self->store.reload) {
        // another router made this version first: run the change again on
        // what the store holds now
        log_info("another router changed the configuration first; reloading and trying again",
                 LOG_S("change", summary));
        json_decref(entry);
        cmd->tries++;
        s_enqueue(self, cmd, true);
        self->waiting_reload = true;
        s_apply_deferred(self);
        self->store.reload(self->store.store);
        return;
    }
    log_error("cannot save the configuration; change refused", LOG_S("error", err ? err : ""),
              LOG_S("change", summary));
    json_decref(entry);
    if (rc == RT_STORE_UNAVAILABLE || rc == RT_STORE_CONFLICT)
        s_error(&result, 503, NULL,
                rc == RT_STORE_CONFLICT
                    ? "other routers kept changing the configuration at the same time; nothing "
                      "changed, try again"
                    : "the configuration store is unavailable; nothing changed (the router's log "
                      "says why)");
    else
        s_error(&result, 500, NULL, "cannot save the configuration (the router's log says why)");
    s_apply_deferred(self);
    result.version = self->data.version;
    s_finish(cmd, &result);
    s_pump(self);
}

static void
s_fail_waiting(rt_control_t *self, uint16_t status, const char *why)
{
    while (self->head) {
        s_cmd_t *cmd = self->head;
        self->head = cmd->next;
        rt_result_t result = {0};
        s_error(&result, status, NULL, "%s", why);
        result.version = self->data.version;
        s_finish(cmd, &result);
    }
    self->tail = NULL;
}

void
rt_control_replace(rt_control_t *self, rt_store_data_t *data)
{
    if (self->inflight) {
        rt_store_data_clear(&self->deferred);
        self->deferred = *data;
        memset(data, 0, sizeof *data);
        return;
    }
    bool was_waiting = self->waiting_reload;
    self->waiting_reload = false;
    bool first = !self->loaded;
    self->loaded = true;
    if (data->version != self->data.version || was_waiting || first) {
        bool changed = data->version != self->data.version || first;
        s_make_current(self, data);
        if (changed) {
            log_info("configuration reloaded from the store", LOG_U("version", self->data.version));
            if (self->on_reload)
                self->on_reload(self->on_reload_arg, self->data.version);
        }
    } else {
        rt_store_data_clear(data);
    }
    s_pump(self);
}

void
rt_control_reload_failed(rt_control_t *self, const char *why)
{
    if (!self->waiting_reload)
        return;
    self->waiting_reload = false;
    char msg[400];
    snprintf(msg, sizeof msg, "the configuration store is unavailable (%s); nothing changed", why);
    s_fail_waiting(self, 503, msg);
}

// --------------------------------------------------------------------------
// Commands

void
rt_control_get(rt_control_t *self, const proto_config_get_t *cmd, rt_result_t *result)
{
    memset(result, 0, sizeof *result);
    const char *what = cmd->what;
    const char *key = s_empty(cmd->key) ? "" : cmd->key;
    if (!self->loaded) {
        s_error(result, 503, NULL, "the configuration is not loaded from the store yet");
    } else if (strcmp(what, "routes") == 0) {
        json_t *out = json_array();
        for (size_t i = 0; i < rt_table_size(self->data.table); i++)
            json_array_append_new(out, rt_route_to_api(rt_table_at(self->data.table, i)));
        s_ok(result, 200, out);
    } else if (strcmp(what, "route") == 0) {
        rt_route_t *route = rt_table_get(self->data.table, key);
        if (route)
            s_ok(result, 200, rt_route_to_api(route));
        else
            s_error(result, 404, NULL, "no route for vHost '%s'", key);
    } else if (strcmp(what, "regions") == 0) {
        s_ok(result, 200, json_deep_copy(self->data.regions));
    } else if (strcmp(what, "certificates") == 0) {
        json_t *cfg = json_object();
        size_t i;
        json_t *c;
        json_array_foreach(self->data.certificates, i, c)
        {
            const char *d = json_string_value(json_object_get(c, "domain"));
            json_object_set_new(cfg, d ? d : "", s_cert_public(c));
        }
        // ordered by domain (rt_store_cfg_document sorts by key)
        json_t *keyed = json_pack("{s:{}, s:{}, s:o}", "routes", "regions", "certificates", cfg);
        json_t *doc = rt_store_cfg_document(keyed, 0, NULL);
        json_decref(keyed);
        s_ok(result, 200, json_incref(json_object_get(doc, "certificates")));
        json_decref(doc);
    } else if (strcmp(what, "versions") == 0) {
        json_t *out = json_array();
        for (size_t i = json_array_size(self->data.history); i-- > 0;) {
            json_t *h = json_array_get(self->data.history, i);
            json_t *e = json_object();
            static const char *const shown[] = {"version", "at", "by", "summary"};
            for (size_t f = 0; f < PROTO_ARRAY_SIZE(shown); f++)
                if (json_object_get(h, shown[f]))
                    json_object_set(e, shown[f], json_object_get(h, shown[f]));
            json_array_append_new(out, e);
        }
        s_ok(result, 200, out);
    } else if (strcmp(what, "version") == 0) {
        json_t *cfg = s_cfg_at(self, key, result);
        if (cfg) {
            json_t *redacted = rt_history_redact(cfg);
            json_decref(cfg);
            uint64_t v = 0;
            s_parse_version(key, &v);
            json_t *doc = rt_store_cfg_document(redacted, v, NULL);
            json_decref(redacted);
            json_object_del(doc, "format");
            json_object_del(doc, "history");
            int at = -1;
            size_t i;
            json_t *h;
            json_array_foreach(self->data.history, i, h)
            {
                if (json_integer_value(json_object_get(h, "version")) == (json_int_t) v)
                    at = (int) i;
            }
            if (at >= 0) {
                h = json_array_get(self->data.history, (size_t) at);
                json_object_set(doc, "at", json_object_get(h, "at"));
                json_object_set(doc, "by", json_object_get(h, "by"));
                json_object_set(doc, "summary", json_object_get(h, "summary"));
            }
            s_ok(result, 200, doc);
        }
    } else if (strcmp(what, "diff") == 0) {
        char from[32] = "", to[32] = "";
        const char *colon = strchr(key, ':');
        if (colon && (size_t) (colon - key) < sizeof from && strlen(colon + 1) < sizeof to) {
            memcpy(from, key, (size_t) (colon - key));
            proto_strlcpy(to, colon + 1, sizeof to);
        }
        uint64_t va = 0, vb = 0;
        json_t *a = NULL, *b = NULL;
        if (!s_parse_version(from, &va))
            s_error(result, 400, "from", "from: '%.32s' is not a version number", from);
        else if (!s_parse_version(to, &vb))
            s_error(result, 400, "to", "to: '%.32s' is not a version number", to);
        else if ((a = s_cfg_at(self, from, result)) != NULL
                 && (b = s_cfg_at(self, to, result)) != NULL) {
            json_t *diff = rt_history_diff(a, b);
            json_object_set_new(diff, "from", json_integer((json_int_t) va));
            json_object_set_new(diff, "to", json_integer((json_int_t) vb));
            s_ok(result, 200, diff);
        }
        json_decref(a);
        json_decref(b);
    } else {
        s_error(result, 400, "what", "config.get of '%s' is not supported", what);
    }
    result->version = self->data.version;
}

void
rt_control_put(rt_control_t *self,
               const proto_config_put_t *cmd,
               uint64_t now_ms,
               rt_control_done_fn *done,
               void *arg)
{
    s_cmd_t *c =
        s_cmd_new(false, cmd->what, cmd->key, cmd->sub, cmd->body, cmd->by, now_ms, done, arg);
    c->create_only = cmd->create_only != 0;
    s_enqueue(self, c, false);
    s_pump(self);
}

void
rt_control_delete(rt_control_t *self,
                  const proto_config_delete_t *cmd,
                  uint64_t now_ms,
                  rt_control_done_fn *done,
                  void *arg)
{
    s_cmd_t *c = s_cmd_new(true, cmd->what, cmd->key, cmd->sub, NULL, cmd->by, now_ms, done, arg);
    s_enqueue(self, c, false);
    s_pump(self);
}
