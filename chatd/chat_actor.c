/*  chat_actor - the chatd actor's context and lifetime.

    Sockets: the bus ROUTER and XPUB of proto_bus (chatd.<pid>.req/.pub in
    BUS_DIR, or BUS_BIND). See chatd/README.md for its messages.
*/
#include <stdlib.h>

#include "proto_log.h"
#include "proto_util.h"
#include "chat_actor.h"

struct chat_actor {
    proto_actor_t *actor; // loop, bus, signals
};

int
chat_config_load(chat_config_t *cfg, int argc, char **argv)
{
    return proto_actor_config("chatd", &cfg->common, NULL, 0, argc, argv);
}

void
chat_config_free(chat_config_t *cfg)
{
    proto_actor_config_free(&cfg->common, NULL, 0);
}

chat_actor_t *
chat_actor_new(const chat_config_t *cfg)
{
    char err[512];
    chat_actor_t *self = proto_xcalloc(1, sizeof *self);
    self->actor = proto_actor_new("chatd", &cfg->common, err, sizeof err);
    if (self->actor == NULL) {
        log_error("cannot create the actor", LOG_S("error", err));
        goto fail;
    }
    return self;
fail:
    chat_actor_destroy(&self);
    return NULL;
}

int
chat_actor_run(chat_actor_t *self)
{
    return proto_actor_run(self->actor);
}

void
chat_actor_destroy(chat_actor_t **self_p)
{
    chat_actor_t *self = *self_p;
    if (self == NULL)
        return;
    proto_actor_destroy(&self->actor);
    free(self);
    *self_p = NULL;
}
