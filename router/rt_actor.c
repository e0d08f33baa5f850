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
#include "rt_actor.h"
#include "rt_control.h"
#include "rt_decide.h"
#include "rt_table.h"

struct rt_actor {
    proto_actor_t *actor;  // loop, bus, signals
    rt_control_t *control; // the configuration and its store
    rt_decide_t *decide;   // decide -> pick -> lease
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

//  Answer a config command and, after a change, publish config.changed.
static void
s_answer(proto_bus_t *bus, proto_in_t *in, rt_result_t *result)
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
    if (proto_bus_reply(bus, &in->ret, &msg) != 0)
        log_warn("cannot send config.reply", LOG_S("rid", in->ret.rid));
    if (result->changed) {
        proto_msg_t event;
        proto_msg_init(&event, PROTO_CONFIG_CHANGED);
        event.rid = in->ret.rid;
        event.config_changed.version = result->version;
        event.config_changed.what = result->what;
        event.config_changed.key = result->key;
        proto_bus_publish(bus, &event);
    }
    rt_result_clear(result);
}

static void
s_on_config_get(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    rt_actor_t *self = arg;
    rt_result_t result;
    rt_control_get(self->control, &in->msg.config_get, &result);
    s_answer(bus, in, &result);
}

static void
s_on_config_put(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    rt_actor_t *self = arg;
    rt_result_t result;
    rt_control_put(self->control, &in->msg.config_put, proto_now_ms(), &result);
    s_answer(bus, in, &result);
}

static void
s_on_config_delete(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    rt_actor_t *self = arg;
    rt_result_t result;
    rt_control_delete(self->control, &in->msg.config_delete, proto_now_ms(), &result);
    s_answer(bus, in, &result);
}

rt_actor_t *
rt_actor_new(const rt_config_t *cfg)
{
    char err[512];
    rt_actor_t *self = proto_xcalloc(1, sizeof *self);
    // the store first: never bind and serve an empty table over a file we
    // could not read
    self->control = rt_control_new(cfg->state_file, cfg->common.region, err, sizeof err);
    if (self->control == NULL) {
        log_error("cannot load the state file", LOG_S("path", cfg->state_file),
                  LOG_S("error", err));
        fprintf(stderr, "router: cannot load ROUTER_STATE_FILE: %s\n", err);
        goto fail;
    }
    log_info("configuration loaded", LOG_S("path", cfg->state_file),
             LOG_U("version", rt_control_version(self->control)),
             LOG_U("routes", rt_table_size(rt_control_table(self->control))));
    self->actor = proto_actor_new("router", &cfg->common, err, sizeof err);
    if (self->actor == NULL) {
        log_error("cannot create the actor", LOG_S("error", err));
        goto fail;
    }
    if (proto_actor_use(self->actor, PROTO_KIND_BALANCER, true, NULL) != 0)
        goto fail;
    proto_bus_t *bus = proto_actor_bus(self->actor);
    proto_bus_on(bus, PROTO_CONFIG_GET, s_on_config_get, self);
    proto_bus_on(bus, PROTO_CONFIG_PUT, s_on_config_put, self);
    proto_bus_on(bus, PROTO_CONFIG_DELETE, s_on_config_delete, self);
    self->decide = rt_decide_new(bus, self->control);
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
    proto_actor_destroy(&self->actor);
    rt_decide_destroy(&self->decide);
    rt_control_destroy(&self->control);
    free(self);
    *self_p = NULL;
}
