/*  hd_actor - the healthd actor's context and lifetime.

    Sockets: the bus ROUTER and XPUB of proto_bus (healthd.<pid>.req/.pub in
    BUS_DIR, or BUS_BIND). See healthd/README.md for its messages.
*/
#include <stdlib.h>

#include "proto_log.h"
#include "proto_util.h"
#include "hd_actor.h"

struct hd_actor {
    proto_actor_t *actor; // loop, bus, signals
};

int
hd_config_load(hd_config_t *cfg, int argc, char **argv)
{
    return proto_actor_config("healthd", &cfg->common, NULL, 0, argc, argv);
}

void
hd_config_free(hd_config_t *cfg)
{
    proto_actor_config_free(&cfg->common, NULL, 0);
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
