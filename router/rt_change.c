/*  rt_change - the changes: each command's validation against the current
    configuration and the next configuration it makes (rt_control_int.h).

    A handler builds the pieces of the next configuration (a copy of the
    current table with one route replaced, new regions or certificates) and
    the change record (rt_history: what, key, before, after); s_stage turns
    them into the next configuration and its history entry, and the answer
    to give once the store has it. Routes are immutable once in a table, so
    a change to one route builds a new route (rt_route_rebuild) and puts it
    in the copy. No I/O here.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "proto_log.h"
#include "proto_route.h"
#include "proto_util.h"
#include "rt_control_int.h"
#include "rt_history.h"
#include "rt_store.h"

// --------------------------------------------------------------------------
// Changes

static json_t *
s_parse_body(const char *body, rt_result_t *result)
{
    if (body == NULL || *body == '\0') {
        rt_result_error(result, 400, NULL, "a JSON body is required");
        return NULL;
    }
    json_error_t jerr;
    json_t *json = json_loads(body, JSON_REJECT_DUPLICATES, &jerr);
    if (json == NULL)
        rt_result_error(result, 400, NULL, "invalid JSON: %s", jerr.text);
    else if (!json_is_object(json)) {
        rt_result_error(result, 400, NULL, "the body must be a JSON object");
        json_decref(json);
        json = NULL;
    }
    return json;
}

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
        const rt_cmd_t *cmd,
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
    rt_result_ok(&answer, status, body);
    bool same = json_array_size(changes) > 0;
    for (size_t i = 0; same && i < json_array_size(changes); i++) {
        json_t *c = json_array_get(changes, i);
        same = json_equal(json_object_get(c, "before"), json_object_get(c, "after"));
    }
    if (answer.status >= 400 || same) {
        // refused, or nothing would change (the same object again): no new
        // version, as for /dead on a backend already dead
        *result = answer;
        rt_table_destroy(&table);
        json_decref(regions);
        json_decref(certs);
        json_decref(changes);
        return;
    }
    const char *by = rt_empty(cmd->by) ? "local" : cmd->by;
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
    proto_strlcpy(answer.by, by, sizeof answer.by);
    proto_strlcpy(answer.summary, summary, sizeof answer.summary);
    self->pending = answer;
    self->staged = true;
}

//  Stage route (NULL: remove vhost's route) in a copy of the table.
static void
s_stage_route(rt_control_t *self,
              const rt_cmd_t *cmd,
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

static void
s_put_region(rt_control_t *self, const rt_cmd_t *cmd, rt_result_t *result)
{
    const char *id = cmd->key;
    if (!proto_route_valid_region(id)) {
        rt_result_error(result, 400, "id", "'%.64s' is not a valid region id", id);
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
                rt_result_error(result, 400, "id", "the body's id differs from the region '%s'",
                                id);
                break;
            }
        } else if (strcmp(key, "publicAddress") == 0) {
            if (!json_is_string(value)
                || proto_route_address_normalize(json_string_value(value), address, sizeof address)
                       != 0) {
                rt_result_error(result, 400, "publicAddress", "publicAddress must be host[:port]");
                break;
            }
        } else {
            rt_result_error(result, 400, key, "unknown field");
            break;
        }
    }
    json_decref(body);
    if (result->status != 0)
        return;
    if (address[0] == '\0') {
        rt_result_error(result, 400, "publicAddress", "publicAddress is required");
        return;
    }
    int at = s_find(self->data.regions, "id", id);
    if (at < 0 && json_array_size(self->data.regions) >= RT_CONTROL_REGIONS_MAX) {
        rt_result_error(result, 400, "id", "at most %d regions may be registered",
                        RT_CONTROL_REGIONS_MAX);
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
s_delete_region(rt_control_t *self, const rt_cmd_t *cmd, rt_result_t *result)
{
    int at = s_find(self->data.regions, "id", cmd->key);
    if (at < 0) {
        rt_result_error(result, 404, NULL, "no region '%.64s'", cmd->key);
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

//  The optional OCSP pair: ocsp decodes to at most what certs.reply
//  carries, and comes with its ocspNextUpdate (GET /certificates shows it).
static void
s_check_cert_ocsp(const json_t *body, rt_result_t *result)
{
    const char *ocsp = json_string_value(json_object_get(body, "ocsp"));
    bool next = json_object_get(body, "ocspNextUpdate") != NULL;
    if (ocsp == NULL) {
        if (next)
            rt_result_error(result, 400, "ocspNextUpdate", "ocspNextUpdate without ocsp");
        return;
    }
    uint8_t *der;
    size_t len;
    int rc = rt_control_ocsp_decode(ocsp, PROTO_CERT_OCSP_MAX, &der, &len);
    free(der);
    if (rc == -2)
        rt_result_error(result, 400, "ocsp", "ocsp: over %d bytes once decoded",
                        PROTO_CERT_OCSP_MAX);
    else if (rc != 0)
        rt_result_error(result, 400, "ocsp", "ocsp must be base64 of a DER OCSP response");
    else if (!next)
        rt_result_error(result, 400, "ocspNextUpdate", "ocspNextUpdate is required with ocsp");
}

//  A certificate apid validated (OpenSSL): here its shape is checked again,
//  so the store never holds something the gateway cannot use.
static void
s_put_cert(rt_control_t *self, const rt_cmd_t *cmd, rt_result_t *result)
{
    static const char *const fields[] = {"domain",  "cert",      "key",     "issuer",
                                         "subject", "notBefore", "notAfter"};
    static const char *const optional[] = {"ocsp", "ocspNextUpdate"};
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
        for (size_t i = 0; i < PROTO_ARRAY_SIZE(optional); i++)
            known = known || strcmp(key, optional[i]) == 0;
        if (!known) {
            rt_result_error(result, 400, key, "unknown field");
            break;
        }
        if (!json_is_string(value)) {
            rt_result_error(result, 400, key, "%s must be a string", key);
            break;
        }
    }
    for (size_t i = 0; result->status == 0 && i < PROTO_ARRAY_SIZE(fields); i++)
        if (json_object_get(body, fields[i]) == NULL)
            rt_result_error(result, 400, fields[i], "%s is required", fields[i]);
    if (result->status == 0)
        s_check_cert_ocsp(body, result);
    const char *domain = json_string_value(json_object_get(body, "domain"));
    char lower[PROTO_ROUTE_VHOST_MAX + 1] = "";
    if (result->status == 0 && strcasecmp(domain, cmd->key) != 0)
        rt_result_error(result, 400, "domain", "the body's domain differs from '%.64s'", cmd->key);
    if (result->status == 0 && proto_route_vhost_normalize(domain, lower, sizeof lower) != 0)
        rt_result_error(result, 400, "domain", "'%.64s' is not a valid domain", domain);
    if (result->status != 0) {
        json_decref(body);
        return;
    }
    json_object_set_new(body, "domain", json_string(lower));
    int at = s_find(self->data.certificates, "domain", lower);
    if (at < 0 && json_array_size(self->data.certificates) >= RT_CONTROL_CERTS_MAX) {
        rt_result_error(result, 400, "domain", "at most %d certificates may be stored",
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
            at >= 0 ? 200 : 201, rt_control_cert_public(body), result);
    json_decref(body);
}

static void
s_delete_cert(rt_control_t *self, const rt_cmd_t *cmd, rt_result_t *result)
{
    char lower[PROTO_ROUTE_VHOST_MAX + 1] = "";
    int at = proto_route_vhost_normalize(cmd->key, lower, sizeof lower) == 0
                 ? s_find(self->data.certificates, "domain", lower)
                 : -1;
    if (at < 0) {
        rt_result_error(result, 404, NULL, "no certificate for '%.64s'", cmd->key);
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

static void
s_put_rollback(rt_control_t *self, const rt_cmd_t *cmd, rt_result_t *result)
{
    uint64_t v = 0;
    json_t *target = rt_control_cfg_at(self, cmd->key, result);
    if (target == NULL)
        return;
    rt_control_parse_version(cmd->key, &v);
    json_t *doc = rt_store_cfg_document(target, 0, NULL);
    json_decref(target);
    rt_store_data_t parsed = {0};
    char err[400] = "";
    int rc = rt_store_parse(doc, self->region, &parsed, err, sizeof err);
    json_decref(doc);
    if (rc != 0) {
        rt_result_error(result, 500, NULL, "version %llu cannot be restored: %s",
                        (unsigned long long) v, err);
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
s_put_route(rt_control_t *self, const rt_cmd_t *cmd, rt_result_t *result)
{
    json_t *body = s_parse_body(cmd->body, result);
    if (body == NULL)
        return;
    json_t *vhost = json_object_get(body, "vHost");
    if (!rt_empty(cmd->key)) {
        if (vhost == NULL || json_is_null(vhost))
            json_object_set_new(body, "vHost", json_string(cmd->key));
        else if (json_is_string(vhost) && strcasecmp(json_string_value(vhost), cmd->key) != 0) {
            rt_result_error(result, 400, "vHost",
                            "vHost '%s' differs from the one in the path '%s'",
                            json_string_value(vhost), cmd->key);
            json_decref(body);
            return;
        }
    }
    rt_error_t err = {.message = ""};
    char lower[PROTO_ROUTE_VHOST_MAX + 1] = "";
    const char *vh = json_string_value(json_object_get(body, "vHost"));
    if (vh && proto_route_vhost_normalize(vh, lower, sizeof lower) == 0
        && rt_route_keep_ssl_key(body, rt_table_get(self->data.table, lower), &err) != 0) {
        json_decref(body);
        rt_result_route_error(result, &err);
        return;
    }
    rt_route_t *route = rt_route_new(body, self->region, &err);
    json_decref(body);
    if (route == NULL) {
        rt_result_route_error(result, &err);
        return;
    }
    const rt_route_t *old = rt_table_get(self->data.table, route->vhost);
    bool existed = old != NULL;
    if (existed && cmd->create_only) {
        rt_result_error(result, 409, "vHost", "a route for vHost '%s' exists", route->vhost);
        rt_route_unref(&route);
        return;
    }
    if (old)
        rt_route_carry_state(route, old); // maintenance survives an edit
    char summary[320];
    snprintf(summary, sizeof summary, "%s route %s", cmd->create_only ? "POST" : "PUT",
             route->vhost);
    s_stage_route(self, cmd, route->vhost, route, "route", summary, existed ? 200 : 201,
                  rt_route_to_api(route, self->health), result);
    rt_route_unref(&route);
}

static void
s_put_backend(rt_control_t *self, const rt_cmd_t *cmd, rt_result_t *result)
{
    rt_route_t *route = rt_table_get(self->data.table, cmd->key);
    if (route == NULL) {
        rt_result_error(result, 404, NULL, "no route for vHost '%s'", cmd->key);
        return;
    }
    json_t *body = s_parse_body(cmd->body, result);
    if (body == NULL)
        return;
    rt_error_t err = {.message = ""};
    json_t *backend = rt_route_backend_normalize(body, self->region, "", &err);
    json_decref(body);
    if (backend == NULL) {
        rt_result_route_error(result, &err);
        return;
    }
    const char *id = json_string_value(json_object_get(backend, "id"));
    if (rt_route_find_backend(route, id) >= 0) {
        rt_result_error(result, 409, "id", "backend '%s' exists in route '%s'", id, route->vhost);
        json_decref(backend);
        return;
    }
    char summary[420];
    snprintf(summary, sizeof summary, "POST backend %s/%s", route->vhost, id);
    json_t *doc = json_deep_copy(route->doc);
    json_array_append_new(json_object_get(doc, "backends"), backend);
    rt_route_t *next = rt_route_rebuild(route, doc, self->region, &err);
    if (next == NULL) {
        rt_result_route_error(result, &err);
        return;
    }
    s_stage_route(self, cmd, next->vhost, next, "backend", summary, 201,
                  rt_route_backend_to_api(next, next->backends_count - 1, self->health), result);
    rt_route_unref(&next);
}

static void
s_put_maint(rt_control_t *self, const rt_cmd_t *cmd, bool dead, rt_result_t *result)
{
    rt_route_t *route = rt_table_get(self->data.table, cmd->key);
    if (route == NULL) {
        rt_result_error(result, 404, NULL, "no route for vHost '%s'", cmd->key);
        return;
    }
    int at = rt_empty(cmd->sub) ? -1 : rt_route_find_backend(route, cmd->sub);
    if (at < 0) {
        rt_result_error(result, 404, NULL, "no backend '%s' in route '%s'", cmd->sub, route->vhost);
        return;
    }
    if (route->backends[at].maint == dead) { // already so: not a change, no new version
        rt_result_ok(result, 200, rt_route_backend_to_api(route, (size_t) at, self->health));
        return;
    }
    rt_error_t err = {.message = ""};
    rt_route_t *next = rt_route_rebuild(route, json_deep_copy(route->doc), self->region, &err);
    if (next == NULL) {
        rt_result_route_error(result, &err);
        return;
    }
    rt_route_set_maint(next, (size_t) at, dead, cmd->now_ms);
    char summary[420];
    snprintf(summary, sizeof summary, "mark backend %s/%s %s", route->vhost, cmd->sub,
             dead ? "dead" : "alive");
    s_stage_route(self, cmd, next->vhost, next, dead ? "dead" : "alive", summary, 200,
                  rt_route_backend_to_api(next, (size_t) at, self->health), result);
    rt_route_unref(&next);
}

static void
s_delete_route(rt_control_t *self, const rt_cmd_t *cmd, rt_result_t *result)
{
    rt_route_t *route = rt_table_get(self->data.table, cmd->key);
    if (route == NULL) {
        rt_result_error(result, 404, NULL, "no route for vHost '%s'", cmd->key);
        return;
    }
    char vhost[PROTO_ROUTE_VHOST_MAX + 1], summary[320];
    proto_strlcpy(vhost, route->vhost, sizeof vhost);
    snprintf(summary, sizeof summary, "DELETE route %s", vhost);
    s_stage_route(self, cmd, vhost, NULL, "route", summary, 204, NULL, result);
}

static void
s_delete_backend(rt_control_t *self, const rt_cmd_t *cmd, rt_result_t *result)
{
    rt_route_t *route = rt_table_get(self->data.table, cmd->key);
    if (route == NULL) {
        rt_result_error(result, 404, NULL, "no route for vHost '%s'", cmd->key);
        return;
    }
    int at = rt_empty(cmd->sub) ? -1 : rt_route_find_backend(route, cmd->sub);
    if (at < 0) {
        rt_result_error(result, 404, NULL, "no backend '%s' in route '%s'", cmd->sub, route->vhost);
        return;
    }
    char summary[420];
    snprintf(summary, sizeof summary, "DELETE backend %s/%s", route->vhost, cmd->sub);
    json_t *doc = json_deep_copy(route->doc);
    json_array_remove(json_object_get(doc, "backends"), (size_t) at);
    rt_error_t err = {.message = ""};
    rt_route_t *next = rt_route_rebuild(route, doc, self->region, &err);
    if (next == NULL) {
        rt_result_route_error(result, &err);
        return;
    }
    s_stage_route(self, cmd, next->vhost, next, "backend", summary, 204, NULL, result);
    rt_route_unref(&next);
}

// --------------------------------------------------------------------------
// The queue

// --------------------------------------------------------------------------
// Dispatch

void
rt_change_run(rt_control_t *self, const rt_cmd_t *cmd, rt_result_t *result)
{
    const char *what = cmd->what;
    if (!cmd->is_delete) {
        if (strcmp(what, "route") == 0)
            s_put_route(self, cmd, result);
        else if (strcmp(what, "backend") == 0)
            s_put_backend(self, cmd, result);
        else if (strcmp(what, "dead") == 0 || strcmp(what, "alive") == 0)
            s_put_maint(self, cmd, strcmp(what, "dead") == 0, result);
        else if (strcmp(what, "region") == 0)
            s_put_region(self, cmd, result);
        else if (strcmp(what, "certificate") == 0)
            s_put_cert(self, cmd, result);
        else if (strcmp(what, "rollback") == 0)
            s_put_rollback(self, cmd, result);
        else
            rt_result_error(result, 400, "what", "config.put of '%s' is not supported", what);
    } else {
        if (strcmp(what, "route") == 0)
            s_delete_route(self, cmd, result);
        else if (strcmp(what, "backend") == 0)
            s_delete_backend(self, cmd, result);
        else if (strcmp(what, "region") == 0)
            s_delete_region(self, cmd, result);
        else if (strcmp(what, "certificate") == 0)
            s_delete_cert(self, cmd, result);
        else
            rt_result_error(result, 400, "what", "config.delete of '%s' is not supported", what);
    }
}
