/*  api_health - the deep health endpoints (see api_health.h).

    Every answer that needs the actors runs one census round and builds its
    JSON from the pongs: instance, pid, region, version, uptime, round trip
    and the counters each actor reports (a router's store.*, config.loaded;
    a gateway's connections; chatd's sessions, redis.up). /metrics is
    statsd's: asked over the bus as admin.request and relayed.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "api_health.h"
#include "proto_census.h"
#include "proto_log.h"
#include "proto_util.h"

typedef enum {
    S_HEALTH,        // /api/health
    S_READY,         // /api/health/ready
    S_SOCKETS,       // /api/health/sockets
    S_DB_POOL,       // /api/health/db-pool
    S_COMPREHENSIVE, // /api/health/comprehensive
} s_view_t;

//  An answer waiting for its census round (or statsd's /metrics).
typedef struct s_wait {
    struct s_wait *next, *prev; // the handler's list
    api_health_t *owner;        // the handler
    proto_return_t ret;         // where the answer goes
    s_view_t view;              // what to answer
    uint64_t start_us;          // when asked
} s_wait_t;

struct api_health {
    struct ev_loop *loop;   // apid's loop
    proto_bus_t *bus;       // apid's bus
    proto_census_t *census; // every instance
    char *instance;         // INSTANCE_ID
    char *region;           // REGION
    uint64_t start_us;      // apid's start (monotonic)
    s_wait_t *waits;        // answers in preparation
    size_t nwaits;          // how many
};

// --------------------------------------------------------------------------
// Answers

static void
s_reply(api_health_t *self,
        const proto_return_t *ret,
        uint16_t status,
        const char *type,
        const char *body,
        size_t len)
{
    proto_kv_t headers[2] = {{"content-type", type}, {"cache-control", "no-store"}};
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_ADMIN_RESPONSE);
    msg.admin_response.status = status;
    msg.admin_response.headers = headers;
    msg.admin_response.headers_count = 2;
    msg.admin_response.body = (proto_bin_t){(const uint8_t *) body, len};
    if (proto_bus_reply(self->bus, ret, &msg) != 0)
        log_warn("admin.response not sent", LOG_S("request_id", ret->rid), LOG_I("status", status));
}

static void
s_reply_json(api_health_t *self, const proto_return_t *ret, uint16_t status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL) {
        static const char oops[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"cannot encode\",\"field\":null}}";
        s_reply(self, ret, 500, "application/json", oops, sizeof oops - 1);
        return;
    }
    s_reply(self, ret, status, "application/json", text, strlen(text));
    free(text);
}

static void
s_iso_now(char *out, size_t cap)
{
    proto_iso8601_ms(proto_now_ms(), out, cap);
}

//  A pong's counter, or -1 when it has none of that name.
static int64_t
s_counter(const proto_census_entry_t *e, const char *name)
{
    if (!e->answered)
        return -1;
    const proto_pong_t *p = &e->pong.pong;
    for (uint32_t i = 0; i < p->counters_count; i++)
        if (strcmp(p->counters[i].name, name) == 0)
            return (int64_t) p->counters[i].value;
    return -1;
}

static json_t *
s_counters(const proto_census_entry_t *e, const char *prefix)
{
    json_t *out = json_object();
    if (!e->answered)
        return out;
    const proto_pong_t *p = &e->pong.pong;
    for (uint32_t i = 0; i < p->counters_count; i++)
        if (prefix == NULL || proto_starts_with(p->counters[i].name, prefix))
            json_object_set_new(out, p->counters[i].name,
                                json_integer((json_int_t) p->counters[i].value));
    return out;
}

json_t *
api_health_self(const api_health_t *self)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:I, s:f}", "kind", "apid", "endpoint",
                     "(this one)", "status", "up", "instance", self->instance, "pid",
                     (int) getpid(), "region", self->region, "version", SWITCHYARD_VERSION,
                     "uptimeMs", (json_int_t) ((proto_mono_us() - self->start_us) / 1000), "rttMs",
                     0.0);
}

json_t *
api_health_instance(const proto_census_entry_t *e, bool counters)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "kind", proto_kind_name(e->kind), "endpoint",
                          e->endpoint, "status", e->answered ? "up" : "down");
    if (!e->answered)
        return o;
    const proto_pong_t *p = &e->pong.pong;
    json_object_set_new(o, "instance", json_string(p->instance ? p->instance : ""));
    json_object_set_new(o, "pid", json_integer(p->pid));
    json_object_set_new(o, "region", json_string(p->region ? p->region : ""));
    json_object_set_new(o, "version", json_string(p->version ? p->version : ""));
    json_object_set_new(o, "uptimeMs", json_integer((json_int_t) p->uptime_ms));
    json_object_set_new(o, "rttMs", json_real((double) (int64_t) (e->rtt_ms * 1000) / 1000.0));
    if (counters)
        json_object_set_new(o, "counters", s_counters(e, NULL));
    return o;
}

//  What the instances say, for every view.
typedef struct {
    size_t up[PROTO_KIND_COUNT];    // instances that answered
    size_t found[PROTO_KIND_COUNT]; // instances found
    size_t routers_loaded;          // routers with config.loaded
    size_t pg_routers;              // routers with a PostgreSQL store
    size_t pg_down;                 // ... whose store is unreachable
    size_t redis_users;             // instances reporting redis.up
    size_t redis_down;              // ... as 0
    size_t rl_degraded;             // gateways counting rate limits in memory (Redis lost)
} s_tally_t;

static void
s_tally(const proto_census_entry_t *entries, size_t n, s_tally_t *t)
{
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < n; i++) {
        const proto_census_entry_t *e = &entries[i];
        t->found[e->kind]++;
        if (!e->answered)
            continue;
        t->up[e->kind]++;
        if (e->kind == PROTO_KIND_ROUTER) {
            if (s_counter(e, "config.loaded") > 0)
                t->routers_loaded++;
            if (s_counter(e, "store.connects") >= 0) {
                t->pg_routers++;
                if (s_counter(e, "store.up") == 0)
                    t->pg_down++;
            }
        }
        if (s_counter(e, "ratelimit.degraded") > 0)
            t->rl_degraded++;
        int64_t redis = s_counter(e, "redis.up");
        if (redis >= 0) {
            t->redis_users++;
            if (redis == 0)
                t->redis_down++;
        }
    }
}

//  /api/health's verdict and its reasons.
static const char *
s_verdict(const s_tally_t *t, json_t *reasons, uint16_t *status)
{
    *status = 200;
    bool unhealthy = false, degraded = false;
    if (t->up[PROTO_KIND_ROUTER] == 0) {
        json_array_append_new(reasons, json_string("no router answers"));
        unhealthy = true;
    }
    if (t->up[PROTO_KIND_BALANCER] == 0) {
        json_array_append_new(reasons, json_string("no balancer answers"));
        unhealthy = true;
    }
    for (int k = 0; k < PROTO_KIND_COUNT; k++) {
        if (k == PROTO_KIND_APID)
            continue; // we are here
        char why[96];
        if (t->found[k] > t->up[k]) {
            snprintf(why, sizeof why, "%zu of %zu %s instances did not answer",
                     t->found[k] - t->up[k], t->found[k], proto_kind_name(k));
            json_array_append_new(reasons, json_string(why));
            degraded = true;
        } else if (t->up[k] == 0 && k != PROTO_KIND_ROUTER && k != PROTO_KIND_BALANCER) {
            snprintf(why, sizeof why, "no %s is running", proto_kind_name(k));
            json_array_append_new(reasons, json_string(why));
            degraded = true;
        }
    }
    if (t->up[PROTO_KIND_ROUTER] > t->routers_loaded) {
        json_array_append_new(reasons,
                              json_string("a router has not loaded its configuration yet"));
        degraded = true;
    }
    if (t->pg_down > 0) {
        json_array_append_new(reasons,
                              json_string("PostgreSQL is unreachable: routers serve their last "
                                          "configuration and refuse changes"));
        degraded = true;
    }
    if (t->redis_down > 0) {
        json_array_append_new(reasons, json_string("Redis is unreachable"));
        degraded = true;
    }
    if (t->rl_degraded > 0) {
        char why[160];
        snprintf(why, sizeof why,
                 "Redis is unreachable from %zu gateway%s: rate limits are counted in memory, "
                 "per gateway",
                 t->rl_degraded, t->rl_degraded == 1 ? "" : "s");
        json_array_append_new(reasons, json_string(why));
        degraded = true;
    }
    if (unhealthy) {
        *status = 503;
        return "unhealthy";
    }
    return degraded ? "degraded" : "healthy";
}

static json_t *
s_db_pool(const proto_census_entry_t *entries, size_t n, const s_tally_t *t)
{
    json_t *routers = json_array();
    for (size_t i = 0; i < n; i++) {
        const proto_census_entry_t *e = &entries[i];
        if (e->kind != PROTO_KIND_ROUTER || !e->answered)
            continue;
        json_t *r = json_pack("{s:s, s:s, s:b}", "instance", e->pong.pong.instance, "store",
                              s_counter(e, "store.connects") >= 0 ? "postgresql" : "file", "loaded",
                              s_counter(e, "config.loaded") > 0);
        json_object_set_new(r, "connected", json_boolean(s_counter(e, "store.up") > 0));
        json_t *store = s_counters(e, "store.");
        json_object_update(r, store);
        json_decref(store);
        json_array_append_new(routers, r);
    }
    const char *status = t->pg_routers == 0 ? "not_configured" : t->pg_down ? "down" : "up";
    return json_pack("{s:s, s:o}", "status", status, "routers", routers);
}

static json_t *
s_sockets(const proto_census_entry_t *entries, size_t n)
{
    json_t *gateways = json_array(), *chat = json_array();
    for (size_t i = 0; i < n; i++) {
        const proto_census_entry_t *e = &entries[i];
        if (!e->answered)
            continue;
        if (e->kind == PROTO_KIND_GATEWAY)
            json_array_append_new(
                gateways, json_pack("{s:s, s:o, s:o, s:o}", "instance", e->pong.pong.instance,
                                    "connections", s_counters(e, "connections"), "tunnels",
                                    s_counters(e, "tunnels."), "chat", s_counters(e, "chat.")));
        else if (e->kind == PROTO_KIND_CHATD)
            json_array_append_new(
                chat, json_pack("{s:s, s:o, s:o}", "instance", e->pong.pong.instance, "chat",
                                s_counters(e, "chat."), "redis", s_counters(e, "redis.")));
    }
    return json_pack("{s:o, s:o}", "gateways", gateways, "chatd", chat);
}

//  The host apid runs on (Linux /proc).
static json_t *
s_system(const api_health_t *self)
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    json_t *o =
        json_pack("{s:s, s:i}", "hostname", host, "cpus", (int) sysconf(_SC_NPROCESSORS_ONLN));
    double load[3] = {0, 0, 0};
    if (getloadavg(load, 3) == 3)
        json_object_set_new(o, "loadAverage", json_pack("[f,f,f]", load[0], load[1], load[2]));
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        unsigned long long total = 0, avail = 0, v;
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "MemTotal: %llu kB", &v) == 1)
                total = v * 1024;
            else if (sscanf(line, "MemAvailable: %llu kB", &v) == 1)
                avail = v * 1024;
        }
        fclose(f);
        json_object_set_new(o, "memory",
                            json_pack("{s:I, s:I}", "totalBytes", (json_int_t) total,
                                      "availableBytes", (json_int_t) avail));
    }
    f = fopen("/proc/uptime", "r");
    double up = 0;
    if (f) {
        if (fscanf(f, "%lf", &up) == 1)
            json_object_set_new(o, "uptimeSeconds", json_real(up));
        fclose(f);
    }
    json_object_set_new(o, "apidUptimeMs",
                        json_integer((json_int_t) ((proto_mono_us() - self->start_us) / 1000)));
    return o;
}

static void
s_on_round(void *arg, const proto_census_entry_t *entries, size_t n)
{
    s_wait_t *w = arg;
    api_health_t *self = w->owner;
    if (w->prev)
        w->prev->next = w->next;
    else
        self->waits = w->next;
    if (w->next)
        w->next->prev = w->prev;
    self->nwaits--;

    s_tally_t t;
    s_tally(entries, n, &t);
    t.up[PROTO_KIND_APID]++; // ourselves
    t.found[PROTO_KIND_APID]++;
    if (w->view == S_READY) {
        bool ready =
            t.up[PROTO_KIND_ROUTER] > 0 && t.routers_loaded > 0 && t.up[PROTO_KIND_BALANCER] > 0;
        s_reply_json(self, &w->ret, ready ? 200 : 503,
                     json_pack("{s:s, s:b, s:b}", "status", ready ? "ready" : "not_ready", "router",
                               t.routers_loaded > 0, "balancer", t.up[PROTO_KIND_BALANCER] > 0));
        free(w);
        return;
    }
    json_t *reasons = json_array();
    uint16_t status;
    const char *verdict = s_verdict(&t, reasons, &status);
    char now[40];
    s_iso_now(now, sizeof now);
    json_t *body = NULL;
    if (w->view == S_SOCKETS) {
        body = s_sockets(entries, n);
        status = 200;
        json_decref(reasons);
    } else if (w->view == S_DB_POOL) {
        body = s_db_pool(entries, n, &t);
        status = 200;
        json_decref(reasons);
    } else {
        bool full = w->view == S_COMPREHENSIVE;
        json_t *instances = json_array();
        json_array_append_new(instances, api_health_self(self));
        for (size_t i = 0; i < n; i++)
            json_array_append_new(instances, api_health_instance(&entries[i], full));
        json_t *kinds = json_object();
        for (int k = 0; k < PROTO_KIND_COUNT; k++)
            json_object_set_new(kinds, proto_kind_name(k),
                                json_pack("{s:I, s:I}", "up", (json_int_t) t.up[k], "found",
                                          (json_int_t) t.found[k]));
        json_t *db = s_db_pool(entries, n, &t);
        json_t *redis = json_pack("{s:s}", "status",
                                  t.redis_users == 0  ? "not_configured"
                                  : t.redis_down == 0 ? "up"
                                                      : "down");
        body = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:{s:O, s:o}}", "status", verdict,
                         "timestamp", now, "region", self->region, "reasons", reasons, "actors",
                         kinds, "instances", instances, "services", "postgresql",
                         json_object_get(db, "status"), "redis", redis);
        if (full) {
            json_object_set_new(body, "system", s_system(self));
            json_object_set_new(body, "sockets", s_sockets(entries, n));
            json_object_set_new(body, "dbPool", db);
        } else {
            json_decref(db);
        }
    }
    json_object_set_new(body, "responseTimeMs",
                        json_real((double) (proto_mono_us() - w->start_us) / 1000.0));
    s_reply_json(self, &w->ret, status, body);
    free(w);
}

// --------------------------------------------------------------------------
// /api/health/metrics: statsd's

static void
s_on_metrics(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    s_wait_t *w = arg;
    api_health_t *self = w->owner;
    if (w->prev)
        w->prev->next = w->next;
    else
        self->waits = w->next;
    if (w->next)
        w->next->prev = w->prev;
    self->nwaits--;
    if (in && in->msg.type == PROTO_ADMIN_RESPONSE) {
        const proto_admin_response_t *r = &in->msg.admin_response;
        const char *type = "text/plain; version=0.0.4";
        for (uint32_t i = 0; i < r->headers_count; i++)
            if (strcmp(r->headers[i].key, "content-type") == 0)
                type = r->headers[i].value;
        s_reply(self, &w->ret, r->status, type, (const char *) r->body.data, r->body.size);
    } else {
        s_reply_json(self, &w->ret, 503,
                     json_pack("{s:{s:s, s:s, s:n}}", "error", "code", "unavailable", "message",
                               "statsd did not answer", "field"));
    }
    free(w);
}

// --------------------------------------------------------------------------

static s_wait_t *
s_wait_new(api_health_t *self, const proto_return_t *ret, s_view_t view)
{
    s_wait_t *w = proto_xcalloc(1, sizeof *w);
    w->owner = self;
    w->ret = *ret;
    w->view = view;
    w->start_us = proto_mono_us();
    w->next = self->waits;
    if (self->waits)
        self->waits->prev = w;
    self->waits = w;
    self->nwaits++;
    return w;
}

bool
api_health_handle(api_health_t *self,
                  const proto_return_t *ret,
                  const char *method,
                  const char *path)
{
    static const char base[] = "/api/health";
    if (strncmp(path, base, sizeof base - 1) != 0)
        return false;
    const char *rest = path + sizeof base - 1;
    if (*rest != '\0' && *rest != '/')
        return false;
    if (strcmp(rest, "/") == 0)
        rest = "";
    static const struct {
        const char *path;
        int view; // s_view_t, or -1 live, -2 metrics, -3 system
    } table[] = {
        {"", S_HEALTH},
        {"/ready", S_READY},
        {"/sockets", S_SOCKETS},
        {"/db-pool", S_DB_POOL},
        {"/comprehensive", S_COMPREHENSIVE},
        {"/live", -1},
        {"/metrics", -2},
        {"/system", -3},
    };
    int view = -100;
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(table); i++)
        if (strcmp(rest, table[i].path) == 0)
            view = table[i].view;
    if (view == -100) {
        s_reply_json(self, ret, 404,
                     json_pack("{s:{s:s, s:s, s:n}}", "error", "code", "not_found", "message",
                               "no such health endpoint", "field"));
        return true;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        s_reply_json(self, ret, 405,
                     json_pack("{s:{s:s, s:s, s:n}}", "error", "code", "method_not_allowed",
                               "message", "health endpoints answer GET", "field"));
        return true;
    }
    if (view == -1) {
        char now[40];
        s_iso_now(now, sizeof now);
        s_reply_json(self, ret, 200, json_pack("{s:s, s:s}", "status", "alive", "timestamp", now));
    } else if (view == -3) {
        s_reply_json(self, ret, 200, s_system(self));
    } else if (view == -2) {
        s_wait_t *w = s_wait_new(self, ret, S_HEALTH);
        proto_msg_t msg;
        proto_msg_init(&msg, PROTO_ADMIN_REQUEST);
        msg.rid = ret->rid;
        msg.admin_request.method = "GET";
        msg.admin_request.path = "/metrics";
        if (proto_bus_request(self->bus, PROTO_KIND_STATSD, &msg, API_HEALTH_TIMEOUT_MS,
                              s_on_metrics, w)
            != 0)
            s_on_metrics(self->bus, NULL, w);
    } else {
        proto_census_round(self->census, API_HEALTH_TIMEOUT_MS, s_on_round,
                           s_wait_new(self, ret, (s_view_t) view));
    }
    return true;
}

proto_census_t *
api_health_census(api_health_t *self)
{
    return self->census;
}

size_t
api_health_pending(const api_health_t *self)
{
    return self->nwaits;
}

api_health_t *
api_health_new(struct ev_loop *loop,
               proto_bus_t *bus,
               const proto_common_config_t *cfg,
               char *err,
               size_t errlen)
{
    api_health_t *self = proto_xcalloc(1, sizeof *self);
    self->loop = loop;
    self->bus = bus;
    self->instance = proto_xstrdup(cfg->instance_id ? cfg->instance_id : "");
    self->region = proto_xstrdup(cfg->region ? cfg->region : "");
    self->start_us = proto_mono_us();
    char src[PROTO_SRC_MAX + 1];
    snprintf(src, sizeof src, "apid/%.40s", self->instance);
    self->census = proto_census_new(loop, cfg->bus_dir, (const char *const *) cfg->peers,
                                    cfg->curve, src, err, errlen);
    if (self->census == NULL)
        api_health_destroy(&self);
    return self;
}

void
api_health_destroy(api_health_t **self_p)
{
    api_health_t *self = *self_p;
    if (self == NULL)
        return;
    proto_census_destroy(&self->census); // drops rounds without calling back
    while (self->waits) {
        s_wait_t *w = self->waits;
        self->waits = w->next;
        free(w);
    }
    free(self->instance);
    free(self->region);
    free(self);
    *self_p = NULL;
}
