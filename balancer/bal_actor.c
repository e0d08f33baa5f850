/*  bal_actor - the balancer actor's context and lifetime.

    Sockets: the bus ROUTER and XPUB of proto_bus (balancer.<pid>.req/.pub in
    BUS_DIR, or BUS_BIND). See balancer/README.md for its messages.
*/
#include <stdlib.h>

#include "proto_log.h"
#include "proto_util.h"
#include "bal_actor.h"

struct bal_actor {
    proto_actor_t *actor; // loop, bus, signals
};

int
bal_config_load(bal_config_t *cfg, int argc, char **argv)
{
    return proto_actor_config("balancer", &cfg->common, NULL, 0, argc, argv);
}

void
bal_config_free(bal_config_t *cfg)
{
    proto_actor_config_free(&cfg->common, NULL, 0);
}

bal_actor_t *
bal_actor_new(const bal_config_t *cfg)
{
    char err[512];
    bal_actor_t *self = proto_xcalloc(1, sizeof *self);
    self->actor = proto_actor_new("balancer", &cfg->common, err, sizeof err);
    if (self->actor == NULL) {
        log_error("cannot create the actor", LOG_S("error", err));
        goto fail;
    }
    return self;
fail:
    bal_actor_destroy(&self);
    return NULL;
}

int
bal_actor_run(bal_actor_t *self)
{
    return proto_actor_run(self->actor);
}

void
bal_actor_destroy(bal_actor_t **self_p)
{
    bal_actor_t *self = *self_p;
    if (self == NULL)
        return;
    proto_actor_destroy(&self->actor);
    free(self);
    *self_p = NULL;
}
