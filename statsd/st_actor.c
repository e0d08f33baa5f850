/*  st_actor - the statsd actor's context and lifetime.

    Sockets: the bus ROUTER and XPUB of proto_bus (statsd.<pid>.req/.pub in
    BUS_DIR, or BUS_BIND). See statsd/README.md for its messages.
*/
#include <stdlib.h>

#include "proto_log.h"
#include "proto_util.h"
#include "st_actor.h"

struct st_actor {
    proto_actor_t *actor; // loop, bus, signals
};

int
st_config_load(st_config_t *cfg, int argc, char **argv)
{
    return proto_actor_config("statsd", &cfg->common, NULL, 0, argc, argv);
}

void
st_config_free(st_config_t *cfg)
{
    proto_actor_config_free(&cfg->common, NULL, 0);
}

st_actor_t *
st_actor_new(const st_config_t *cfg)
{
    char err[512];
    st_actor_t *self = proto_xcalloc(1, sizeof *self);
    self->actor = proto_actor_new("statsd", &cfg->common, err, sizeof err);
    if (self->actor == NULL) {
        log_error("cannot create the actor", LOG_S("error", err));
        goto fail;
    }
    return self;
fail:
    st_actor_destroy(&self);
    return NULL;
}

int
st_actor_run(st_actor_t *self)
{
    return proto_actor_run(self->actor);
}

void
st_actor_destroy(st_actor_t **self_p)
{
    st_actor_t *self = *self_p;
    if (self == NULL)
        return;
    proto_actor_destroy(&self->actor);
    free(self);
    *self_p = NULL;
}
