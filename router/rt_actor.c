/*  rt_actor - the router actor's context and lifetime.

    Sockets: the bus ROUTER and XPUB of proto_bus (router.<pid>.req/.pub in
    BUS_DIR, or BUS_BIND). See router/README.md for its messages.
*/
#include <stdlib.h>

#include "proto_log.h"
#include "proto_util.h"
#include "rt_actor.h"

struct rt_actor {
    proto_actor_t *actor; // loop, bus, signals
};

int
rt_config_load(rt_config_t *cfg, int argc, char **argv)
{
    return proto_actor_config("router", &cfg->common, NULL, 0, argc, argv);
}

void
rt_config_free(rt_config_t *cfg)
{
    proto_actor_config_free(&cfg->common, NULL, 0);
}

rt_actor_t *
rt_actor_new(const rt_config_t *cfg)
{
    char err[512];
    rt_actor_t *self = proto_xcalloc(1, sizeof *self);
    self->actor = proto_actor_new("router", &cfg->common, err, sizeof err);
    if (self->actor == NULL) {
        log_error("cannot create the actor", LOG_S("error", err));
        goto fail;
    }
    if (proto_actor_use(self->actor, PROTO_KIND_BALANCER, true, NULL) != 0)
        goto fail;
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
    proto_actor_destroy(&self->actor);
    free(self);
    *self_p = NULL;
}
