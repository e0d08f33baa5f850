/*  api_actor - the apid actor's context and lifetime.

    Sockets: the bus ROUTER and XPUB of proto_bus (apid.<pid>.req/.pub in
    BUS_DIR, or BUS_BIND). See apid/README.md for its messages.
*/
#include <stdlib.h>

#include "proto_log.h"
#include "proto_util.h"
#include "api_actor.h"

struct api_actor {
    proto_actor_t *actor; // loop, bus, signals
};

int
api_config_load(api_config_t *cfg, int argc, char **argv)
{
    return proto_actor_config("apid", &cfg->common, NULL, 0, argc, argv);
}

void
api_config_free(api_config_t *cfg)
{
    proto_actor_config_free(&cfg->common, NULL, 0);
}

api_actor_t *
api_actor_new(const api_config_t *cfg)
{
    char err[512];
    api_actor_t *self = proto_xcalloc(1, sizeof *self);
    self->actor = proto_actor_new("apid", &cfg->common, err, sizeof err);
    if (self->actor == NULL) {
        log_error("cannot create the actor", LOG_S("error", err));
        goto fail;
    }
    if (proto_actor_use(self->actor, PROTO_KIND_ROUTER, true, NULL) != 0)
        goto fail;
    if (proto_actor_use(self->actor, PROTO_KIND_STATSD, true, NULL) != 0)
        goto fail;
    if (proto_actor_use(self->actor, PROTO_KIND_HEALTHD, true, NULL) != 0)
        goto fail;
    if (proto_actor_use(self->actor, PROTO_KIND_CHATD, true, NULL) != 0)
        goto fail;
    return self;
fail:
    api_actor_destroy(&self);
    return NULL;
}

int
api_actor_run(api_actor_t *self)
{
    return proto_actor_run(self->actor);
}

void
api_actor_destroy(api_actor_t **self_p)
{
    api_actor_t *self = *self_p;
    if (self == NULL)
        return;
    proto_actor_destroy(&self->actor);
    free(self);
    *self_p = NULL;
}
