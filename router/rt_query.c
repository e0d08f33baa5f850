/*  rt_query - the reads (config.get): routes, regions, certificates
    without keys, the version list, a version's configuration (redacted)
    and the diff between two versions. Answered at once from the current
    configuration, even while a change is in flight.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proto_log.h"
#include "proto_util.h"
#include "rt_control_int.h"
#include "rt_history.h"
#include "rt_store.h"

#define S_HEALTH_PAGE_ROUTES   1000 // routes per page of what=health key=@N ...
#define S_HEALTH_PAGE_BACKENDS 4000 // ... and backends (a page stays far below the bus's 2 MiB)
#define S_CERTS_PAGE_BYTES     (1536u * 1024u) // PEM and OCSP bytes in one certs.reply page

//  One route as healthd reads it: its health path and backends.
static json_t *
s_health_route(const rt_route_t *route)
{
    const char *path = json_string_value(json_object_get(route->doc, "healthPath"));
    json_t *backends = json_array();
    json_t *docs = json_object_get(route->doc, "backends");
    for (uint32_t b = 0; b < route->backends_count; b++) {
        const rt_backend_t *be = &route->backends[b];
        const char *probe = json_string_value(json_object_get(json_array_get(docs, b), "probe"));
        json_array_append_new(backends,
                              json_pack("{s:s, s:s, s:i, s:s, s:s, s:b}", "id", be->id, "hostname",
                                        be->host, "port", (int) be->port, "region", be->region,
                                        "probe", probe ? probe : "http", "maintenance", be->maint));
    }
    return json_pack("{s:s, s:s, s:s, s:o}", "route", route->id, "vHost", route->vhost,
                     "healthPath", path ? path : "/", "backends", backends);
}

//  What healthd probes (config.get what=health, healthd/README.md): every
//  served route (the API's and seed 002's) with its health path and
//  backends. key "": the whole list (an array); key "@N": the page from
//  route N, {"routes": [...], "next": M or null}, so that 100,000 routes
//  never make one message over the bus's bound; any other key: that vHost's
//  route alone (an array of 0 or 1), so a change of one route costs one.
static json_t *
s_health(const rt_table_t *table, const char *key)
{
    json_t *out = json_array();
    if (*key == '@') {
        char *end;
        unsigned long long from = strtoull(key + 1, &end, 10);
        size_t n = rt_table_size(table), i = from < n ? (size_t) from : n, backends = 0;
        for (; i < n && json_array_size(out) < S_HEALTH_PAGE_ROUTES
               && backends < S_HEALTH_PAGE_BACKENDS;
             i++) {
            const rt_route_t *route = rt_table_at(table, i);
            backends += route->backends_count;
            json_array_append_new(out, s_health_route(route));
        }
        return json_pack("{s:o, s:o}", "routes", out, "next",
                         i < n ? json_integer((json_int_t) i) : json_null());
    }
    if (*key) {
        const rt_route_t *one = rt_table_get(table, key);
        if (one)
            json_array_append_new(out, s_health_route(one));
        return out;
    }
    for (size_t i = 0; i < rt_table_size(table); i++)
        json_array_append_new(out, s_health_route(rt_table_at(table, i)));
    return out;
}

void
rt_control_get(rt_control_t *self, const proto_config_get_t *cmd, rt_result_t *result)
{
    memset(result, 0, sizeof *result);
    const char *what = cmd->what;
    const char *key = rt_empty(cmd->key) ? "" : cmd->key;
    if (!self->loaded) {
        rt_result_error(result, 503, NULL, "the configuration is not loaded from the store yet");
    } else if (strcmp(what, "routes") == 0) {
        json_t *out = json_array();
        for (size_t i = 0; i < rt_table_size(self->data.table); i++)
            json_array_append_new(out,
                                  rt_route_to_api(rt_table_at(self->data.table, i), self->health));
        rt_result_ok(result, 200, out);
    } else if (strcmp(what, "route") == 0) {
        rt_route_t *route = rt_table_get(self->data.table, key);
        if (route)
            rt_result_ok(result, 200, rt_route_to_api(route, self->health));
        else
            rt_result_error(result, 404, NULL, "no route for vHost '%s'", key);
    } else if (strcmp(what, "health") == 0) {
        rt_result_ok(result, 200, s_health(rt_control_table(self), key));
    } else if (strcmp(what, "regions") == 0) {
        rt_result_ok(result, 200, json_deep_copy(self->data.regions));
    } else if (strcmp(what, "certificates") == 0) {
        json_t *cfg = json_object();
        size_t i;
        json_t *c;
        json_array_foreach(self->data.certificates, i, c)
        {
            const char *d = json_string_value(json_object_get(c, "domain"));
            json_object_set_new(cfg, d ? d : "", rt_control_cert_public(c));
        }
        // ordered by domain (rt_store_cfg_document sorts by key)
        json_t *keyed = json_pack("{s:{}, s:{}, s:o}", "routes", "regions", "certificates", cfg);
        json_t *doc = rt_store_cfg_document(keyed, 0, NULL);
        json_decref(keyed);
        rt_result_ok(result, 200, json_incref(json_object_get(doc, "certificates")));
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
        rt_result_ok(result, 200, out);
    } else if (strcmp(what, "version") == 0) {
        json_t *cfg = rt_control_cfg_at(self, key, result);
        if (cfg) {
            json_t *redacted = rt_history_redact(cfg);
            json_decref(cfg);
            uint64_t v = 0;
            rt_control_parse_version(key, &v);
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
            rt_result_ok(result, 200, doc);
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
        if (!rt_control_parse_version(from, &va))
            rt_result_error(result, 400, "from", "from: '%.32s' is not a version number", from);
        else if (!rt_control_parse_version(to, &vb))
            rt_result_error(result, 400, "to", "to: '%.32s' is not a version number", to);
        else if ((a = rt_control_cfg_at(self, from, result)) != NULL
                 && (b = rt_control_cfg_at(self, to, result)) != NULL) {
            json_t *diff = rt_history_diff(a, b);
            json_object_set_new(diff, "from", json_integer((json_int_t) va));
            json_object_set_new(diff, "to", json_integer((json_int_t) vb));
            rt_result_ok(result, 200, diff);
        }
        json_decref(a);
        json_decref(b);
    } else {
        rt_result_error(result, 400, "what", "config.get of '%s' is not supported", what);
    }
    result->version = self->data.version;
}

//  The idx-th certificate with its key in the order certs.get pages them:
//  the stored certificates (with their OCSP response), then the routes'
//  ssl (domain: the vHost; no OCSP). Returns false past the end. Strings
//  and bytes borrowed from the configuration.
static bool
s_cert_at(const rt_control_t *self, size_t idx, proto_cert_t *out)
{
    const json_t *c = NULL;
    const char *domain = NULL;
    size_t ncerts = json_array_size(self->data.certificates);
    out->ocsp = (proto_bin_t){0};
    if (idx < ncerts) {
        c = json_array_get(self->data.certificates, idx);
        domain = json_string_value(json_object_get(c, "domain"));
        if (idx < self->ocsp_count && self->ocsp[idx].der)
            out->ocsp = (proto_bin_t){.data = self->ocsp[idx].der, .size = self->ocsp[idx].len};
    } else {
        const rt_route_t *route = rt_table_at(self->data.table, idx - ncerts);
        c = json_object_get(route->doc, "ssl");
        domain = route->vhost;
    }
    out->domain = domain;
    out->chain = json_string_value(json_object_get(c, "cert"));
    out->key = json_string_value(json_object_get(c, "key"));
    return out->domain && out->chain && out->key;
}

uint32_t
rt_control_certs(const rt_control_t *self,
                 uint32_t from,
                 proto_cert_t *page,
                 uint32_t cap,
                 uint32_t *count,
                 uint32_t *next)
{
    *count = 0;
    *next = 0;
    if (!self->loaded)
        return 0;
    size_t total = json_array_size(self->data.certificates) + rt_table_size(self->data.table);
    size_t i = from, bytes = 0;
    for (; i < total && *count < cap; i++) {
        proto_cert_t c;
        if (!s_cert_at(self, i, &c))
            continue; // a route without ssl
        size_t domain_len = strlen(c.domain), chain_len = strlen(c.chain), key_len = strlen(c.key);
        if (domain_len > PROTO_CERT_DOMAIN_MAX || chain_len > PROTO_CERT_CHAIN_MAX
            || key_len > PROTO_CERT_KEY_MAX || c.ocsp.size > PROTO_CERT_OCSP_MAX) {
            log_warn("certificate too large for gateways: skipped", LOG_S("domain", c.domain));
            continue;
        }
        // at most S_CERTS_PAGE_BYTES a page (16 certificates at their
        // bounds with OCSP responses would be a little more): the rest on
        // the next one
        size_t size = domain_len + chain_len + key_len + c.ocsp.size;
        if (*count > 0 && bytes + size > S_CERTS_PAGE_BYTES)
            break;
        bytes += size;
        page[(*count)++] = c;
    }
    *next = i < total ? (uint32_t) i : 0;
    return (uint32_t) total;
}
