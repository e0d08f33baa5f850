/*  gw_actor - the gateway actor's context and lifetime.

    Sockets: the bus ROUTER and XPUB of proto_bus (gateway.<pid>.req/.pub in
    BUS_DIR, or BUS_BIND). See gateway/README.md for its messages.
*/
#include <stdlib.h>

#include "proto_log.h"
#include "proto_util.h"
#include "gw_actor.h"

struct gw_actor {
    proto_actor_t *actor; // loop, bus, signals
};

int
gw_config_load(gw_config_t *cfg, int argc, char **argv)
{
    return proto_actor_config("gateway", &cfg->common, NULL, 0, argc, argv);
}

void
gw_config_free(gw_config_t *cfg)
{
    proto_actor_config_free(&cfg->common, NULL, 0);
}

gw_actor_t *
gw_actor_new(const gw_config_t *cfg)
{
    char err[512];
    gw_actor_t *self = proto_xcalloc(1, sizeof *self);
    self->actor = proto_actor_new("gateway", &cfg->common, err, sizeof err);
    if (self->actor == NULL) {
        log_error("cannot create the actor", LOG_S("error", err));
        goto fail;
    }
    if (proto_actor_use(self->actor, PROTO_KIND_ROUTER, true, NULL) != 0)
        goto fail;
    if (proto_actor_use(self->actor, PROTO_KIND_APID, true, NULL) != 0)
        goto fail;
    if (proto_actor_use(self->actor, PROTO_KIND_STATSD, true, NULL) != 0)
        goto fail;
    if (proto_actor_use(self->actor, PROTO_KIND_CHATD, true, NULL) != 0)
        goto fail;
    return self;
fail:
    gw_actor_destroy(&self);
    return NULL;
}

int
gw_actor_run(gw_actor_t *self)
{
    return proto_actor_run(self->actor);
}

void
gw_actor_destroy(gw_actor_t **self_p)
{
    gw_actor_t *self = *self_p;
    if (self == NULL)
        return;
    proto_actor_destroy(&self->actor);
    free(self);
    *self_p = NULL;
}
