/*  rt_actor - the router actor's context and lifetime.

    Sockets: the bus ROUTER and XPUB of proto_bus (router.<pid>.req/.pub in
    BUS_DIR, or BUS_BIND), and a DEALER to the balancers. Requests in:
    decide (rt_decide), config.get/put/delete (rt_control). Events out:
    config.changed. See router/README.md.
*/
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto_log.h"
#include "proto_url.h"
#include "proto_util.h"
#include "proto_pairs.h"
#include "rt_actor.h"
#include "rt_control.h"
#include "rt_decide.h"
#include "rt_edge.h"
#include "rt_pg.h"
#include "rt_table.h"

#define RT_HEALTH_PAIRS_MAX 262144 // (route, backend) verdicts kept for GET /routes

struct rt_actor {
    proto_actor_t *actor;  // loop, bus, signals
    rt_control_t *control; // the configuration and its store
    rt_decide_t *decide;   // decide -> pick -> lease
    rt_pg_t *pg;           // the PostgreSQL store, or NULL (the file store)
    uint64_t loaded;       // pong config.loaded: 1 once a configuration is loaded
    uint64_t store_up;     // pong store.up: 1 while the store is reachable
    uint64_t edge_routes;  // pong edge.routes: routes from seed 002's tables
    uint64_t edge_skipped; // pong edge.skipped: rows refused in the last read
    uint64_t edge_hash;    // fingerprint of the last rows (a change is published)
    proto_pairs_t *health; // healthd's verdicts (rt_runtime_t) for GET /routes
    uint64_t health_pairs; // pong health.pairs: pairs kept
};

static const proto_cfg_opt_t s_opts[] = {
    {"ROUTER_STATE_FILE", "state-file", PROTO_CFG_STR, "var/state.json",
     "the file store (JSON), relative to the working directory; used when DATABASE_URL is unset",
     offsetof(rt_config_t, state_file), 0, 0, NULL, 0},
    {"DATABASE_URL", "database-url", PROTO_CFG_STR, NULL,
     "PostgreSQL config store: postgres://... or libpq key=value; unset: the file store",
     offsetof(rt_config_t, database_url), 0, 0, NULL, PROTO_CFG_URL},
    {"ROUTER_REFRESH_INTERVAL", "refresh-interval", PROTO_CFG_DURATION, "10s",
     "how often routes are re-read from PostgreSQL (LISTEN/NOTIFY is near-instant as well)",
     offsetof(rt_config_t, refresh_interval_ms), 0, 0, NULL, 0},
    {"ROUTER_EDGE_SCHEMA", "edge-schema", PROTO_CFG_ENUM, "off",
     "on: also derive routes from seed 002's tables (needs DATABASE_URL)",
     offsetof(rt_config_t, edge_schema), 0, 0, "off|on", 0},
};

//  A path naming a file: not empty, not ending in '/', "." or "..", one line.
static bool
s_valid_file_path(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (*base == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return false;
    for (const char *p = path; *p; p++)
        if ((unsigned char) *p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

int
rt_config_load(rt_config_t *cfg, int argc, char **argv)
{
    proto_cfg_table_t extra = {s_opts, PROTO_ARRAY_SIZE(s_opts), cfg};
    int rc = proto_actor_config("router", &cfg->common, &extra, 1, argc, argv);
    if (rc != 0)
        return rc;
    if (!s_valid_file_path(cfg->state_file)) {
        fprintf(stderr, "router: bad value for ROUTER_STATE_FILE: '%s' (expected a file path)\n",
                cfg->state_file);
        return 2;
    }
    char why[128];
    if (cfg->database_url && proto_pg_conninfo_check(cfg->database_url, why, sizeof why) != 0) {
        char shown[512];
        proto_url_redact(cfg->database_url, shown, sizeof shown);
        fprintf(stderr, "router: bad value for DATABASE_URL: '%s' (%s)\n", shown, why);
        return 2;
    }
    if (cfg->edge_schema == 1 && cfg->database_url == NULL) {
        fprintf(stderr, "router: bad value for ROUTER_EDGE_SCHEMA: 'on' (seed 002's tables are in "
                        "PostgreSQL: set DATABASE_URL)\n");
        return 2;
    }
    return 0;
}

void
rt_config_free(rt_config_t *cfg)
{
    proto_cfg_table_t extra = {s_opts, PROTO_ARRAY_SIZE(s_opts), cfg};
    proto_actor_config_free(&cfg->common, &extra, 1);
}

//  Where a change's answer goes once the store has it.
typedef struct {
    rt_actor_t *self;   // the actor
    proto_return_t ret; // the request's return address
} s_reply_t;

//  Answer a config command and, after a change, publish config.changed.
static void
s_answer(proto_bus_t *bus, const proto_return_t *ret, rt_result_t *result)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_CONFIG_REPLY);
    msg.config_reply.status = result->status;
    msg.config_reply.version = result->version;
    msg.config_reply.body = result->body;
    if (result->status >= 400) {
        msg.config_reply.error = result->error;
        msg.config_reply.field = result->field[0] ? result->field : NULL;
    }
    if (proto_bus_reply(bus, ret, &msg) != 0)
        log_warn("cannot send config.reply", LOG_S("rid", ret->rid));
    if (result->changed) {
        proto_msg_t event;
        proto_msg_init(&event, PROTO_CONFIG_CHANGED);
        event.rid = ret->rid;
        event.config_changed.version = result->version;
        event.config_changed.what = result->what;
        event.config_changed.key = result->key;
        event.config_changed.by = result->by[0] ? result->by : NULL;
        event.config_changed.summary = result->summary[0] ? result->summary : NULL;
        proto_bus_publish(bus, &event);
    }
}

static void
s_on_change_done(void *arg, rt_result_t *result)
{
    s_reply_t *reply = arg;
    if (result)
        s_answer(proto_actor_bus(reply->self->actor), &reply->ret, result);
    free(reply);
}

//  A configuration made elsewhere became current (PostgreSQL: another
//  router's change, a refresh): tell the gateways and balancers.
static void
s_on_reload(void *arg, uint64_t version)
{
    rt_actor_t *self = arg;
    proto_msg_t event;
    proto_msg_init(&event, PROTO_CONFIG_CHANGED);
    event.config_changed.version = version;
    event.config_changed.what = "reload";
    proto_bus_publish(proto_actor_bus(self->actor), &event);
}

// --------------------------------------------------------------------------
// The PostgreSQL store's events

static void
s_pg_loaded(void *arg, rt_store_data_t *data)
{
    rt_actor_t *self = arg;
    rt_control_replace(self->control, data);
    self->loaded = rt_control_loaded(self->control);
}

static void
s_pg_load_failed(void *arg, const char *why)
{
    rt_actor_t *self = arg;
    rt_control_reload_failed(self->control, why);
}

static void
s_pg_connected(void *arg, bool up)
{
    rt_actor_t *self = arg;
    self->store_up = up;
}

static void
s_pg_edge(void *arg, const rt_edge_row_t *rows, size_t n)
{
    rt_actor_t *self = arg;
    uint64_t h = proto_fnv1a_str("edge");
    for (size_t i = 0; i < n; i++) {
        const char *cols[] = {rows[i].domain, rows[i].ip, rows[i].port, rows[i].region,
                              rows[i].public_ip};
        for (size_t c = 0; c < PROTO_ARRAY_SIZE(cols); c++)
            h = proto_fnv1a_more(h, cols[c] ? cols[c] : "\x01null",
                                 cols[c] ? strlen(cols[c]) + 1 : 6);
    }
    if (h == self->edge_hash)
        return; // the same rows as last time
    self->edge_hash = h;
    rt_table_t *table = NULL;
    json_t *regions = NULL;
    size_t skipped = 0;
    rt_edge_build(rows, n, &table, &regions, &skipped);
    self->edge_routes = table ? rt_table_size(table) : 0;
    self->edge_skipped = skipped;
    rt_control_set_edge(self->control, table, regions);
    log_info("routes from seed 002's tables", LOG_U("routes", self->edge_routes), LOG_U("rows", n),
             LOG_U("skipped", skipped));
    proto_msg_t event;
    proto_msg_init(&event, PROTO_CONFIG_CHANGED);
    event.config_changed.version = rt_control_version(self->control);
    event.config_changed.what = "edge";
    proto_bus_publish(proto_actor_bus(self->actor), &event);
}

//  healthd's verdict on a (route, backend): shown by GET /routes.
static void
s_on_backend_state(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    rt_actor_t *self = arg;
    const proto_backend_state_t *b = &in->msg.backend_state;
    rt_runtime_t *rt = proto_pairs_put(self->health, b->route, b->backend, NULL);
    if (rt == NULL)
        return; // over the bound: shown alive (proto_pairs counts it)
    *rt = (rt_runtime_t){.up = b->up, .since_ms = b->since_ms, .failures = b->failures};
    self->health_pairs = proto_pairs_size(self->health);
}

static s_reply_t *
s_reply_new(rt_actor_t *self, const proto_in_t *in)
{
    s_reply_t *reply = proto_xcalloc(1, sizeof *reply);
    reply->self = self;
    reply->ret = in->ret;
    return reply;
}

static void
s_on_config_get(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    rt_actor_t *self = arg;
    rt_result_t result;
    rt_control_get(self->control, &in->msg.config_get, &result);
    s_answer(bus, &in->ret, &result);
    rt_result_clear(&result);
}

static void
s_on_config_put(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    rt_actor_t *self = arg;
    rt_control_put(self->control, &in->msg.config_put, proto_now_ms(), s_on_change_done,
                   s_reply_new(self, in));
}

static void
s_on_config_delete(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    rt_actor_t *self = arg;
    rt_control_delete(self->control, &in->msg.config_delete, proto_now_ms(), s_on_change_done,
                      s_reply_new(self, in));
}

//  certs.get from a gateway: a page of certificates with their keys, from
//  the current configuration (the only way keys leave the router).
static void
s_on_certs_get(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    rt_actor_t *self = arg;
    if (!rt_control_loaded(self->control)) {
        proto_bus_reply_error(bus, &in->ret, "unavailable", "configuration not loaded");
        return;
    }
    proto_cert_t page[PROTO_CERTS_REPLY_CERTS_MAX];
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_CERTS_REPLY);
    proto_certs_reply_t *r = &msg.certs_reply;
    r->version = rt_control_version(self->control);
    r->total = rt_control_certs(self->control, in->msg.certs_get.from, page,
                                PROTO_CERTS_REPLY_CERTS_MAX, &r->certs_count, &r->next);
    r->certs = page;
    if (proto_bus_reply(bus, &in->ret, &msg) != 0)
        log_warn("cannot send certs.reply", LOG_S("rid", in->ret.rid));
}

rt_actor_t *
rt_actor_new(const rt_config_t *cfg)
{
    char err[512];
    rt_actor_t *self = proto_xcalloc(1, sizeof *self);
    if (cfg->database_url == NULL) {
        // the store first: never bind and serve an empty table over a file
        // we could not read
        self->control = rt_control_open_file(cfg->state_file, cfg->common.region, err, sizeof err);
        if (self->control == NULL) {
            log_error("cannot load the state file", LOG_S("path", cfg->state_file),
                      LOG_S("error", err));
            fprintf(stderr, "router: cannot load ROUTER_STATE_FILE: %s\n", err);
            goto fail;
        }
        log_info("configuration loaded", LOG_S("path", cfg->state_file),
                 LOG_U("version", rt_control_version(self->control)),
                 LOG_U("routes", rt_table_size(rt_control_table(self->control))));
        self->loaded = 1;
        self->store_up = 1;
    }
    self->actor = proto_actor_new("router", &cfg->common, err, sizeof err);
    if (self->actor == NULL) {
        log_error("cannot create the actor", LOG_S("error", err));
        goto fail;
    }
    if (cfg->database_url) {
        // PostgreSQL: connect on the loop; until the first load, decide and
        // config commands answer "unavailable" and pong says config.loaded 0
        rt_pg_events_t events = {.loaded = s_pg_loaded,
                                 .edge = s_pg_edge,
                                 .load_failed = s_pg_load_failed,
                                 .connected = s_pg_connected};
        self->pg = rt_pg_new(proto_actor_loop(self->actor), cfg->database_url, cfg->common.region,
                             cfg->refresh_interval_ms, cfg->edge_schema == 1, events, self);
        self->control = rt_control_new_unloaded(cfg->common.region, rt_pg_ops(self->pg));
    }
    static const char *const healthd_topics[] = {"backend.state", NULL};
    if (proto_actor_use(self->actor, PROTO_KIND_BALANCER, true, NULL) != 0
        || proto_actor_use(self->actor, PROTO_KIND_HEALTHD, false, healthd_topics) != 0)
        goto fail;
    proto_bus_t *bus = proto_actor_bus(self->actor);
    proto_bus_on(bus, PROTO_CONFIG_GET, s_on_config_get, self);
    proto_bus_on(bus, PROTO_CONFIG_PUT, s_on_config_put, self);
    proto_bus_on(bus, PROTO_CONFIG_DELETE, s_on_config_delete, self);
    proto_bus_on(bus, PROTO_CERTS_GET, s_on_certs_get, self);
    proto_bus_on(bus, PROTO_BACKEND_STATE, s_on_backend_state, self);
    self->health = proto_pairs_new(sizeof(rt_runtime_t), RT_HEALTH_PAIRS_MAX);
    rt_control_set_health(self->control, self->health);
    (void) proto_bus_counter(bus, "health.pairs", &self->health_pairs);
    self->decide = rt_decide_new(bus, self->control);
    rt_control_on_reload(self->control, s_on_reload, self);
    (void) proto_bus_counter(bus, "config.loaded", &self->loaded);
    (void) proto_bus_counter(bus, "store.up", &self->store_up);
    if (self->pg) {
        (void) proto_bus_counter(bus, "store.loads", rt_pg_counter(self->pg, "loads"));
        (void) proto_bus_counter(bus, "store.commits", rt_pg_counter(self->pg, "commits"));
        (void) proto_bus_counter(bus, "store.failures", rt_pg_counter(self->pg, "failures"));
        (void) proto_bus_counter(bus, "store.connects", rt_pg_counter(self->pg, "connects"));
        (void) proto_bus_counter(bus, "edge.routes", &self->edge_routes);
        (void) proto_bus_counter(bus, "edge.skipped", &self->edge_skipped);
    }
    return self;
fail:
    rt_actor_destroy(&self);
    return NULL;
}

int
rt_actor_run(rt_actor_t *self)
{
    return proto_actor_run(self->actor);
}

void
rt_actor_destroy(rt_actor_t **self_p)
{
    rt_actor_t *self = *self_p;
    if (self == NULL)
        return;
    // the bus first: it drops pending picks without calling back, then the
    // asks they pointed to can go
    rt_pg_destroy(&self->pg); // its watchers are on the actor's loop
    proto_actor_destroy(&self->actor);
    rt_decide_destroy(&self->decide);
    rt_control_destroy(&self->control); // a change in flight is dropped, not answered
    proto_pairs_destroy(&self->health);
    free(self);
    *self_p = NULL;
}
