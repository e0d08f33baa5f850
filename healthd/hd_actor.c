/*  hd_actor - the healthd actor's context and lifetime.

    Sockets: the bus ROUTER and XPUB of proto_bus (healthd.<pid>.req/.pub in
    BUS_DIR, or BUS_BIND). See healthd/README.md for its messages.
*/
#include <stddef.h>
#include <stdlib.h>

#include "proto_log.h"
#include "proto_util.h"
#include "hd_actor.h"

struct hd_actor {
    proto_actor_t *actor; // loop, bus, signals
};

static const proto_cfg_opt_t s_opts[] = {
    {"HEALTHD_INTERVAL", "interval", PROTO_CFG_DURATION, "5s",
     "active probe interval for live backends", offsetof(hd_config_t, interval_ms), 0, 0, NULL, 0},
    {"HEALTHD_TIMEOUT", "timeout", PROTO_CFG_DURATION, "2s", "probe timeout",
     offsetof(hd_config_t, timeout_ms), 0, 0, NULL, 0},
    {"HEALTHD_RECOVERY_INTERVAL", "recovery-interval", PROTO_CFG_DURATION, "10s",
     "probe interval for dead backends", offsetof(hd_config_t, recovery_interval_ms), 0, 0, NULL,
     0},
};

int
hd_config_load(hd_config_t *cfg, int argc, char **argv)
{
    proto_cfg_table_t extra = {s_opts, PROTO_ARRAY_SIZE(s_opts), cfg};
    return proto_actor_config("healthd", &cfg->common, &extra, 1, argc, argv);
}

void
hd_config_free(hd_config_t *cfg)
{
    proto_cfg_table_t extra = {s_opts, PROTO_ARRAY_SIZE(s_opts), cfg};
    proto_actor_config_free(&cfg->common, &extra, 1);
}

hd_actor_t *
hd_actor_new(const hd_config_t *cfg)
{
    char err[512];
    hd_actor_t *self = proto_xcalloc(1, sizeof *self);
    self->actor = proto_actor_new("healthd", &cfg->common, err, sizeof err);
    if (self->actor == NULL) {
        log_error("cannot create the actor", LOG_S("error", err));
        goto fail;
    }
    if (proto_actor_use(self->actor, PROTO_KIND_ROUTER, true, NULL) != 0)
        goto fail;
    return self;
fail:
    hd_actor_destroy(&self);
    return NULL;
}

int
hd_actor_run(hd_actor_t *self)
{
    return proto_actor_run(self->actor);
}

void
hd_actor_destroy(hd_actor_t **self_p)
{
    hd_actor_t *self = *self_p;
    if (self == NULL)
        return;
    proto_actor_destroy(&self->actor);
    free(self);
    *self_p = NULL;
}
