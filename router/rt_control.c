/*  rt_control - the configuration, its queue of changes and the store's
    answers (see rt_control.h).

    Every change follows one path: s_run hands the command to rt_change,
    which stages the next configuration and its history entry (or answers
    at once); the store commits it (self->store.commit); only then does it
    replace the current one (s_on_committed). Reads are rt_query's.
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
#include "rt_control_int.h"
#include "rt_history.h"
#include "rt_store.h"

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

static void
s_free_ocsp(rt_control_t *self)
{
    for (size_t i = 0; i < self->ocsp_count; i++)
        free(self->ocsp[i].der);
    free(self->ocsp);
    self->ocsp = NULL;
    self->ocsp_count = 0;
}

//  The stored certificates' OCSP responses as DER, decoded once per
//  configuration: certs.reply borrows them, as it borrows the PEM strings.
static void
s_build_ocsp(rt_control_t *self)
{
    s_free_ocsp(self);
    size_t n = json_array_size(self->data.certificates);
    if (n == 0)
        return;
    self->ocsp = proto_xcalloc(n, sizeof *self->ocsp);
    self->ocsp_count = n;
    for (size_t i = 0; i < n; i++) {
        const json_t *c = json_array_get(self->data.certificates, i);
        const char *text = json_string_value(json_object_get(c, "ocsp"));
        if (text == NULL)
            continue;
        rt_ocsp_t *o = &self->ocsp[i];
        if (rt_control_ocsp_decode(text, PROTO_CERT_OCSP_MAX, &o->der, &o->len) != 0)
            log_warn("stored OCSP response unusable (not base64, or over the bus bound): not "
                     "stapled",
                     LOG_S("domain", json_string_value(json_object_get(c, "domain"))));
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
    s_build_ocsp(self);
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

static void s_cmd_free(rt_cmd_t *cmd);
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
        rt_cmd_t *cmd = self->head;
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
    s_free_ocsp(self);
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

void
rt_control_set_health(rt_control_t *self, const struct proto_pairs *health)
{
    self->health = health;
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
    for (const rt_cmd_t *c = self->head; c; c = c->next)
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

void
rt_result_error(rt_result_t *result, uint16_t status, const char *field, const char *fmt, ...)
{
    result->status = status;
    proto_strlcpy(result->field, field ? field : "", sizeof result->field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(result->error, sizeof result->error, fmt, ap);
    va_end(ap);
}

void
rt_result_route_error(rt_result_t *result, const rt_error_t *err)
{
    rt_result_error(result, 400, err->field, "%s", err->message);
}

//  Answer status with body (taken; NULL for none).
void
rt_result_ok(rt_result_t *result, uint16_t status, json_t *body)
{
    result->status = status;
    if (body == NULL)
        return;
    result->body = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (result->body == NULL || strlen(result->body) > RT_CONTROL_BODY_MAX) {
        free(result->body);
        result->body = NULL;
        rt_result_error(result, 500, NULL, "the answer is larger than a bus message may be");
    }
}

//  Parse a configuration version (decimal digits) from s.
bool
rt_control_parse_version(const char *s, uint64_t *out)
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

//  A certificate as GET /certificates lists it: never the key. With an
//  OCSP response to staple, also "ocsp": true and its "ocspNextUpdate"
//  (not the response itself: public, but up to 22 KB per certificate).
json_t *
rt_control_cert_public(const json_t *cert)
{
    static const char *const fields[] = {"domain", "issuer", "subject", "notBefore", "notAfter"};
    json_t *out = json_object();
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(fields); i++) {
        json_t *v = json_object_get(cert, fields[i]);
        json_object_set(out, fields[i], v ? v : json_null());
    }
    if (json_is_string(json_object_get(cert, "ocsp"))) {
        json_t *v = json_object_get(cert, "ocspNextUpdate");
        json_object_set_new(out, "ocsp", json_true());
        json_object_set(out, "ocspNextUpdate", v ? v : json_null());
    }
    return out;
}

int
rt_control_ocsp_decode(const char *text, size_t max, uint8_t **der, size_t *len)
{
    *der = NULL;
    *len = 0;
    size_t n = strlen(text), pads = 0;
    while (pads < 2 && pads < n && text[n - 1 - pads] == '=')
        pads++;
    if (n == 0 || n % 4 != 0)
        return -1;
    size_t size = n / 4 * 3 - pads;
    if (size > max)
        return -2;
    uint8_t *out = proto_xmalloc(size ? size : 1);
    uint32_t acc = 0;
    size_t bits = 0, k = 0;
    for (size_t i = 0; i < n - pads; i++) {
        int d = proto_b64_digit(text[i]);
        if (d < 0) {
            free(out);
            return -1;
        }
        acc = (acc << 6 | (uint32_t) d) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[k++] = (uint8_t) (acc >> bits);
        }
    }
    *der = out;
    *len = size;
    return 0;
}

//  The configuration as of version v, keyed (rt_history), or NULL with a
//  404 in result.
json_t *
rt_control_cfg_at(rt_control_t *self, const char *key, rt_result_t *result)
{
    uint64_t v;
    if (!rt_control_parse_version(key, &v)) {
        rt_result_error(result, 400, "version", "'%.32s' is not a version number", key ? key : "");
        return NULL;
    }
    json_t *current = rt_store_cfg(&self->data);
    char err[256] = "";
    json_t *cfg =
        rt_history_at(current, self->data.version, self->data.history, v, err, sizeof err);
    json_decref(current);
    if (cfg == NULL)
        rt_result_error(result, 404, NULL, "%s", err);
    return cfg;
}

static void
s_cmd_free(rt_cmd_t *cmd)
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

static rt_cmd_t *
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
    rt_cmd_t *cmd = proto_xcalloc(1, sizeof *cmd);
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
s_finish(rt_cmd_t *cmd, rt_result_t *result)
{
    cmd->done(cmd->arg, result);
    rt_result_clear(result);
    s_cmd_free(cmd);
}

//  Run one change: an answer at once, or a staged change handed to the
//  store.
static void s_on_committed(void *arg, int rc, const char *err);

static void
s_run(rt_control_t *self, rt_cmd_t *cmd)
{
    rt_result_t result = {0};
    if (!self->loaded)
        rt_result_error(&result, 503, NULL,
                        "the configuration is not loaded from the store yet; nothing changed");
    else
        rt_change_run(self, cmd, &result);
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
        rt_cmd_t *cmd = self->head;
        self->head = cmd->next;
        if (self->head == NULL)
            self->tail = NULL;
        cmd->next = NULL;
        if (s_mono_ms() - cmd->queued_ms > RT_CONTROL_QUEUE_MS) {
            rt_result_t result = {0};
            rt_result_error(
                &result, 503, NULL,
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
s_enqueue(rt_control_t *self, rt_cmd_t *cmd, bool at_head)
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
    rt_cmd_t *cmd = self->inflight;
    self->inflight = NULL;
    json_t *entry = self->entry;
    self->entry = NULL;
    rt_result_t result = self->pending;
    memset(&self->pending, 0, sizeof self->pending);
    const char *summary = json_string_value(json_object_get(entry, "summary"));
    if (rc == RT_STORE_OK) {
        s_make_current(self, &self->next);
        log_info("configuration changed", LOG_U("version", self->data.version),
                 LOG_S("by", rt_empty(cmd->by) ? "local" : cmd->by), LOG_S("change", summary));
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
        rt_result_error(
            &result, 503, NULL,
            rc == RT_STORE_CONFLICT
                ? "other routers kept changing the configuration at the same time; nothing "
                  "changed, try again"
                : "the configuration store is unavailable; nothing changed (the router's log "
                  "says why)");
    else
        rt_result_error(&result, 500, NULL,
                        "cannot save the configuration (the router's log says why)");
    s_apply_deferred(self);
    result.version = self->data.version;
    s_finish(cmd, &result);
    s_pump(self);
}

static void
s_fail_waiting(rt_control_t *self, uint16_t status, const char *why)
{
    while (self->head) {
        rt_cmd_t *cmd = self->head;
        self->head = cmd->next;
        rt_result_t result = {0};
        rt_result_error(&result, status, NULL, "%s", why);
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
rt_control_put(rt_control_t *self,
               const proto_config_put_t *cmd,
               uint64_t now_ms,
               rt_control_done_fn *done,
               void *arg)
{
    rt_cmd_t *c =
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
    rt_cmd_t *c = s_cmd_new(true, cmd->what, cmd->key, cmd->sub, NULL, cmd->by, now_ms, done, arg);
    s_enqueue(self, c, false);
    s_pump(self);
}
