/*  rt_route - one route: validation, normalization, runtime view (see rt_route.h).

    Validation covers what the router and the lease rely on (types, and the
    route model's names, bounds and defaults from proto_route, as apid checks
    them; unique backend ids); apid validates the rest of SPEC §5 before a
    body reaches the router. The first bad field found is named.
*/
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "proto_route.h"
#include "proto_strategy.h"
#include "proto_util.h"
#include "proto_pairs.h"
#include "rt_route.h"

//  Runtime fields: read-only, dropped from what comes in.
static const char *s_runtime_fields[] = {"isDead", "deadSince", "failureCount", "latencyMs"};

static void
s_fail(rt_error_t *err, const char *prefix, const char *key, const char *fmt, ...)
{
    snprintf(err->field, sizeof err->field, "%s%s", prefix ? prefix : "", key ? key : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

//  An optional unsigned integer field: absent or null gives def.
static int
s_get_uint(const json_t *obj,
           const char *key,
           uint64_t min,
           uint64_t max,
           uint64_t def,
           uint64_t *out,
           const char *prefix,
           rt_error_t *err)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v)) {
        s_fail(err, prefix, key, "%s must be an integer", key);
        return -1;
    }
    json_int_t n = json_integer_value(v);
    if (n < 0 || (uint64_t) n < min || (uint64_t) n > max) {
        s_fail(err, prefix, key, "%s must be between %llu and %llu", key, (unsigned long long) min,
               (unsigned long long) max);
        return -1;
    }
    *out = (uint64_t) n;
    return 0;
}

//  An optional string field: absent or null gives NULL (returns 0).
static int
s_get_str(const json_t *obj,
          const char *key,
          size_t max,
          const char **out,
          const char *prefix,
          rt_error_t *err)
{
    const json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        s_fail(err, prefix, key, "%s must be a string", key);
        return -1;
    }
    size_t len = json_string_length(v);
    if (len == 0 || len > max) {
        s_fail(err, prefix, key, "%s must be 1 to %zu bytes", key, max);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

json_t *
rt_route_backend_normalize(const json_t *json,
                           const char *region,
                           const char *prefix,
                           rt_error_t *err)
{
    if (!json_is_object(json)) {
        s_fail(err, prefix, NULL, "a backend must be a JSON object");
        if (prefix && *prefix) // "backends[2]." names the element without its dot
            err->field[strlen(err->field) - 1] = '\0';
        return NULL;
    }
    const char *given, *id, *reg, *probe_name;
    uint64_t port, weight;
    if (s_get_str(json, "hostname", PROTO_ROUTE_HOSTNAME_MAX, &given, prefix, err) != 0)
        return NULL;
    char host[PROTO_ROUTE_HOSTNAME_MAX + 1];
    if (given == NULL || proto_route_hostname_normalize(given, host, sizeof host) != 0) {
        s_fail(err, prefix, "hostname",
               given ? "hostname must be a host name or an IP address" : "hostname is required");
        return NULL;
    }
    const json_t *pv = json_object_get(json, "port");
    if (pv == NULL || json_is_null(pv)) {
        s_fail(err, prefix, "port", "port is required");
        return NULL;
    }
    if (s_get_uint(json, "port", PROTO_ROUTE_PORT_MIN, PROTO_ROUTE_PORT_MAX, 0, &port, prefix, err)
        != 0)
        return NULL;
    if (s_get_uint(json, "weight", PROTO_ROUTE_WEIGHT_MIN, PROTO_ROUTE_WEIGHT_MAX,
                   PROTO_ROUTE_WEIGHT_DEFAULT, &weight, prefix, err)
        != 0)
        return NULL;
    if (s_get_str(json, "id", PROTO_ROUTE_BACKEND_ID_MAX, &id, prefix, err) != 0)
        return NULL;
    if (id && !proto_route_valid_backend_id(id)) {
        s_fail(err, prefix, "id",
               "id must be printable ASCII without space, '/', '?', '#' or '%%'");
        return NULL;
    }
    if (s_get_str(json, "region", PROTO_ROUTE_REGION_MAX, &reg, prefix, err) != 0)
        return NULL;
    if (reg && !proto_route_valid_region(reg)) {
        s_fail(err, prefix, "region", "region must be printable characters without spaces");
        return NULL;
    }
    if (s_get_str(json, "probe", 64, &probe_name, prefix, err) != 0)
        return NULL;
    proto_route_probe_t probe = PROTO_ROUTE_PROBE_DEFAULT;
    if (probe_name && proto_route_probe_parse(probe_name, &probe) != 0) {
        s_fail(err, prefix, "probe", "probe must be one of %s", proto_route_probe_list());
        return NULL;
    }
    char idbuf[PROTO_ROUTE_BACKEND_ID_MAX + 1];
    if (id == NULL) {
        if (proto_route_default_backend_id(host, (unsigned) port, idbuf, sizeof idbuf) != 0) {
            s_fail(err, prefix, "id", "id (hostname:port) would be over %d bytes",
                   PROTO_ROUTE_BACKEND_ID_MAX);
            return NULL;
        }
        id = idbuf;
    }
    // id, hostname, port, weight, region, probe first; other fields as they came
    json_t *out = json_object();
    json_object_set_new(out, "id", json_string(id));
    json_object_set_new(out, "hostname", json_string(host));
    json_object_set_new(out, "port", json_integer((json_int_t) port));
    json_object_set_new(out, "weight", json_integer((json_int_t) weight));
    json_object_set_new(out, "region", json_string(reg ? reg : region));
    json_object_set_new(out, "probe", json_string(proto_route_probe_name(probe)));
    const char *key;
    json_t *value;
    json_object_foreach((json_t *) json, key, value)
    {
        bool runtime = false;
        for (size_t i = 0; i < PROTO_ARRAY_SIZE(s_runtime_fields); i++)
            runtime = runtime || strcmp(key, s_runtime_fields[i]) == 0;
        if (!runtime && json_object_get(out, key) == NULL)
            json_object_set(out, key, value);
    }
    return out;
}

static void
s_free_fields(rt_route_t *self)
{
    for (uint32_t i = 0; i < self->backends_count; i++) {
        free(self->backends[i].id);
        free(self->backends[i].host);
        free(self->backends[i].region);
    }
    free(self->backends);
    self->backends = NULL;
    free(self->pick);
    self->pick = NULL;
    free(self->headers);
    self->headers = NULL;
    rt_policy_free(&self->policy);
    free(self->id);
    self->id = NULL;
    free(self->vhost);
    self->vhost = NULL;
    self->strategy = NULL; // static
    json_decref(self->doc);
    self->doc = NULL;
}

//  chatPath: null, or an absolute path without a query (apid checks it the
//  same way; a stored route is checked again at load).
static int
s_parse_chat_path(rt_route_t *self, rt_error_t *err)
{
    json_t *v = json_object_get(self->doc, "chatPath");
    if (v == NULL || json_is_null(v))
        return 0;
    const char *path = json_string_value(v);
    size_t len = path ? strlen(path) : 0;
    if (path == NULL || len == 0 || len > PROTO_LEASE_CHAT_PATH_MAX || path[0] != '/'
        || strpbrk(path, "?# ") != NULL) {
        s_fail(err, NULL, "chatPath", "chatPath must be null or a path like /chat (no query)");
        return -1;
    }
    self->chat_path = path;
    return 0;
}

static int
s_parse_headers(rt_route_t *self, rt_error_t *err)
{
    json_t *headers = json_object_get(self->doc, "headers");
    if (headers == NULL || json_is_null(headers))
        return 0;
    if (!json_is_object(headers)) {
        s_fail(err, NULL, "headers", "headers must be an object of strings");
        return -1;
    }
    size_t n = json_object_size(headers);
    if (n > PROTO_ROUTE_HEADERS_MAX) {
        s_fail(err, NULL, "headers", "at most %d headers", PROTO_ROUTE_HEADERS_MAX);
        return -1;
    }
    self->headers = n ? proto_xcalloc(n, sizeof *self->headers) : NULL;
    const char *key;
    json_t *value;
    json_object_foreach(headers, key, value)
    {
        if (!proto_route_valid_header_name(key)) {
            s_fail(err, "headers.", key, "not a valid header name (1 to %d token characters)",
                   PROTO_ROUTE_HEADER_NAME_MAX);
            return -1;
        }
        if (proto_route_header_forbidden(key)) {
            s_fail(err, "headers.", key, "a route may not set this header");
            return -1;
        }
        for (uint32_t i = 0; i < self->headers_count; i++)
            if (strcasecmp(self->headers[i].key, key) == 0) {
                s_fail(err, "headers.", key, "header given twice (names are case-insensitive)");
                return -1;
            }
        const char *text = json_string_value(value);
        if (text == NULL || !proto_route_valid_header_value(text)) {
            s_fail(err, "headers.", key,
                   "a header value must be a string of at most %d bytes "
                   "without CR, LF or other control characters",
                   PROTO_ROUTE_HEADER_VALUE_MAX);
            return -1;
        }
        self->headers[self->headers_count].key = key;
        self->headers[self->headers_count].value = text;
        self->headers_count++;
    }
    return 0;
}

static int
s_parse_backends(rt_route_t *self, const char *region, rt_error_t *err)
{
    json_t *in = json_object_get(self->doc, "backends");
    if (in == NULL || !json_is_array(in)) {
        s_fail(err, NULL, "backends", in ? "backends must be an array" : "backends is required");
        return -1;
    }
    size_t n = json_array_size(in);
    if (n > PROTO_ROUTE_BACKENDS_MAX) {
        s_fail(err, NULL, "backends", "at most %d backends", PROTO_ROUTE_BACKENDS_MAX);
        return -1;
    }
    json_t *out = json_array();
    self->backends = n ? proto_xcalloc(n, sizeof *self->backends) : NULL;
    self->pick = n ? proto_xcalloc(n, sizeof *self->pick) : NULL;
    for (size_t i = 0; i < n; i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "backends[%zu].", i);
        json_t *b = rt_route_backend_normalize(json_array_get(in, i), region, prefix, err);
        if (b == NULL) {
            json_decref(out);
            return -1;
        }
        const char *id = json_string_value(json_object_get(b, "id"));
        for (size_t j = 0; j < i; j++) {
            if (strcmp(self->backends[j].id, id) == 0) {
                s_fail(err, prefix, "id", "duplicate backend id '%s'", id);
                json_decref(b);
                json_decref(out);
                return -1;
            }
        }
        rt_backend_t *be = &self->backends[i];
        be->id = proto_xstrdup(id);
        be->host = proto_xstrdup(json_string_value(json_object_get(b, "hostname")));
        be->port = (uint16_t) json_integer_value(json_object_get(b, "port"));
        be->weight = (uint32_t) json_integer_value(json_object_get(b, "weight"));
        be->region = proto_xstrdup(json_string_value(json_object_get(b, "region")));
        self->backends_count = (uint32_t) (i + 1);
        self->pick[i] = (proto_backend_t){.id = be->id,
                                          .host = be->host,
                                          .port = be->port,
                                          .weight = be->weight,
                                          .region = be->region};
        json_array_append_new(out, b);
    }
    json_object_set_new(self->doc, "backends", out);
    return 0;
}

static int
s_parse(rt_route_t *self, const char *region, rt_error_t *err)
{
    const char *vhost, *id, *strategy;
    if (s_get_str(self->doc, "vHost", PROTO_ROUTE_VHOST_MAX, &vhost, NULL, err) != 0)
        return -1;
    if (vhost == NULL) {
        s_fail(err, NULL, "vHost", "vHost is required");
        return -1;
    }
    char lower[PROTO_ROUTE_VHOST_MAX + 1];
    if (proto_route_vhost_normalize(vhost, lower, sizeof lower) != 0) {
        s_fail(err, NULL, "vHost", "vHost must be a host name, *.domain or *");
        return -1;
    }
    self->vhost = proto_xstrdup(lower);
    json_object_set_new(self->doc, "vHost", json_string(self->vhost));
    if (s_get_str(self->doc, "id", PROTO_ROUTE_ID_MAX, &id, NULL, err) != 0)
        return -1;
    if (id && !proto_route_valid_route_id(id)) {
        s_fail(err, NULL, "id", "id must not contain control characters");
        return -1;
    }
    self->id = proto_xstrdup(id ? id : self->vhost);
    json_object_set_new(self->doc, "id", json_string(self->id));
    if (s_get_str(self->doc, "strategy", 64, &strategy, NULL, err) != 0)
        return -1;
    proto_strategy_t parsed = PROTO_ROUTE_STRATEGY_DEFAULT;
    if (strategy && proto_strategy_parse(strategy, &parsed) != 0) {
        s_fail(err, NULL, "strategy", "strategy must be one of %s", proto_strategy_list());
        return -1;
    }
    self->strategy = proto_strategy_name(parsed);
    json_object_set_new(self->doc, "strategy", json_string(self->strategy));

    uint64_t v;
    if (s_get_uint(self->doc, "retries", PROTO_ROUTE_RETRIES_MIN, PROTO_ROUTE_RETRIES_MAX,
                   PROTO_ROUTE_RETRIES_DEFAULT, &v, NULL, err)
        != 0)
        return -1;
    self->retries = (uint8_t) v;
    if (s_get_uint(self->doc, "timeoutMs", PROTO_ROUTE_TIMEOUT_MS_MIN, PROTO_ROUTE_TIMEOUT_MS_MAX,
                   PROTO_ROUTE_TIMEOUT_MS_DEFAULT, &v, NULL, err)
        != 0)
        return -1;
    self->timeout_ms = (uint32_t) v;
    if (s_get_uint(self->doc, "queueTimeoutMs", PROTO_ROUTE_QUEUE_TIMEOUT_MS_MIN,
                   PROTO_ROUTE_QUEUE_TIMEOUT_MS_MAX, self->timeout_ms, &v, NULL, err)
        != 0)
        return -1;
    self->queue_timeout_ms = (uint32_t) v;
    if (s_get_uint(self->doc, "reqActiveLength", PROTO_ROUTE_REQ_ACTIVE_MIN,
                   PROTO_ROUTE_REQ_ACTIVE_MAX, PROTO_ROUTE_REQ_ACTIVE_DEFAULT, &v, NULL, err)
        != 0)
        return -1;
    self->req_active = (uint32_t) v;
    if (s_get_uint(self->doc, "reqQueueLength", PROTO_ROUTE_REQ_QUEUE_MIN,
                   PROTO_ROUTE_REQ_QUEUE_MAX, PROTO_ROUTE_REQ_QUEUE_DEFAULT, &v, NULL, err)
        != 0)
        return -1;
    self->req_queue = (uint32_t) v;
    if (s_get_uint(self->doc, "maxBodyBytes", PROTO_ROUTE_MAX_BODY_MIN, PROTO_ROUTE_MAX_BODY_MAX,
                   PROTO_ROUTE_MAX_BODY_DEFAULT, &v, NULL, err)
        != 0)
        return -1;
    self->max_body = v;
    if (s_parse_headers(self, err) != 0 || s_parse_chat_path(self, err) != 0
        || rt_policy_parse(&self->policy, self->doc, err) != 0)
        return -1;
    return s_parse_backends(self, region, err);
}

static rt_route_t *
s_build(json_t *doc, const char *region, rt_error_t *err)
{
    rt_route_t *self = proto_xcalloc(1, sizeof *self);
    self->refs = 1;
    self->doc = doc;
    json_object_del(self->doc, "maintenance"); // state-file only; never taken from a body
    if (s_parse(self, region, err) != 0)
        goto fail;
    return self;
fail:
    rt_route_unref(&self);
    return NULL;
}

rt_route_t *
rt_route_new(const json_t *json, const char *region, rt_error_t *err)
{
    if (!json_is_object(json)) {
        s_fail(err, NULL, NULL, "a route must be a JSON object");
        return NULL;
    }
    return s_build(json_deep_copy(json), region, err);
}

rt_route_t *
rt_route_rebuild(const rt_route_t *old, json_t *doc, const char *region, rt_error_t *err)
{
    rt_route_t *self = s_build(doc, region, err);
    if (self && old)
        rt_route_carry_state(self, old);
    return self;
}

rt_route_t *
rt_route_ref(rt_route_t *route)
{
    assert(route && route->refs > 0);
    route->refs++;
    return route;
}

void
rt_route_unref(rt_route_t **route_p)
{
    assert(route_p);
    rt_route_t *self = *route_p;
    if (self == NULL)
        return;
    *route_p = NULL;
    if (--self->refs > 0)
        return;
    s_free_fields(self);
    free(self);
}

int
rt_route_find_backend(const rt_route_t *route, const char *id)
{
    for (uint32_t i = 0; i < route->backends_count; i++)
        if (strcmp(route->backends[i].id, id) == 0)
            return (int) i;
    return -1;
}

void
rt_route_set_maint(rt_route_t *route, size_t index, bool maint, uint64_t since_ms)
{
    assert(route->refs == 1 && index < route->backends_count);
    route->backends[index].maint = maint;
    route->backends[index].maint_since = maint ? since_ms : 0;
    route->pick[index].maint = maint;
}

void
rt_route_carry_state(rt_route_t *to, const rt_route_t *from)
{
    assert(to->refs == 1);
    for (uint32_t i = 0; i < to->backends_count; i++) {
        int j = rt_route_find_backend(from, to->backends[i].id);
        if (j >= 0 && from->backends[j].maint)
            rt_route_set_maint(to, i, true, from->backends[j].maint_since);
    }
}

static void
s_add_runtime(json_t *obj, const rt_backend_t *be, const rt_runtime_t *rt)
{
    // maintenance is the operator's word and wins; else healthd's verdict
    bool down = rt && !rt->up;
    uint64_t since = be->maint ? be->maint_since : down ? rt->since_ms : 0;
    json_object_set_new(obj, "isDead", json_boolean(be->maint || down));
    json_object_set_new(obj, "deadSince", since ? json_integer((json_int_t) since) : json_null());
    json_object_set_new(obj, "failureCount", json_integer(rt ? (json_int_t) rt->failures : 0));
    json_object_set_new(obj, "latencyMs", json_null());
}

json_t *
rt_route_to_api(const rt_route_t *route, const struct proto_pairs *health)
{
    json_t *out = json_deep_copy(route->doc);
    json_t *backends = json_object_get(out, "backends");
    for (uint32_t i = 0; i < route->backends_count; i++) {
        const rt_backend_t *be = &route->backends[i];
        const rt_runtime_t *rt = health ? proto_pairs_get(health, route->id, be->id) : NULL;
        s_add_runtime(json_array_get(backends, i), be, rt);
    }
    // a private key is never answered; sent back as it is, it means "keep
    // the stored key" (rt_route_keep_ssl_key)
    json_t *ssl = json_object_get(out, "ssl");
    if (json_is_object(ssl) && json_object_get(ssl, "key"))
        json_object_set_new(ssl, "key", json_string(RT_ROUTE_KEY_REDACTED));
    return out;
}

int
rt_route_keep_ssl_key(json_t *doc, const rt_route_t *old, rt_error_t *err)
{
    json_t *ssl = json_object_get(doc, "ssl");
    const char *key = json_string_value(json_object_get(ssl, "key"));
    if (key == NULL || strcmp(key, RT_ROUTE_KEY_REDACTED) != 0)
        return 0;
    json_t *old_ssl = old ? json_object_get(old->doc, "ssl") : NULL;
    const char *old_key = json_string_value(json_object_get(old_ssl, "key"));
    const char *old_cert = json_string_value(json_object_get(old_ssl, "cert"));
    const char *cert = json_string_value(json_object_get(ssl, "cert"));
    if (old_key == NULL || old_cert == NULL || cert == NULL || strcmp(old_cert, cert) != 0) {
        snprintf(err->message, sizeof err->message,
                 "ssl.key: \"%s\" keeps the stored key only for the same certificate; send the "
                 "key",
                 RT_ROUTE_KEY_REDACTED);
        proto_strlcpy(err->field, "ssl.key", sizeof err->field);
        return -1;
    }
    json_object_set_new(ssl, "key", json_string(old_key));
    return 0;
}

json_t *
rt_route_backend_to_api(const rt_route_t *route, size_t index, const struct proto_pairs *health)
{
    assert(index < route->backends_count);
    json_t *out = json_deep_copy(json_array_get(json_object_get(route->doc, "backends"), index));
    const rt_backend_t *be = &route->backends[index];
    s_add_runtime(out, be, health ? proto_pairs_get(health, route->id, be->id) : NULL);
    return out;
}

json_t *
rt_route_to_store(const rt_route_t *route)
{
    json_t *out = json_copy(route->doc); // shallow: only the top level gets a new key
    json_t *maint = json_array();
    for (uint32_t i = 0; i < route->backends_count; i++)
        if (route->backends[i].maint)
            json_array_append_new(maint, json_string(route->backends[i].id));
    json_object_set_new(out, "maintenance", maint);
    return out;
}
