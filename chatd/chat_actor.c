/*  chat_actor - the chatd actor's context and lifetime.

    Sockets: the bus ROUTER and XPUB of proto_bus (chatd.<pid>.req/.pub in
    BUS_DIR, or BUS_BIND). See chatd/README.md for its messages.
*/
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "proto_log.h"
#include "proto_url.h"
#include "proto_util.h"
#include "chat_actor.h"

struct chat_actor {
    proto_actor_t *actor; // loop, bus, signals
};

static const proto_cfg_opt_t s_opts[] = {
    {"REDIS_URL", "redis-url", PROTO_CFG_STR, NULL,
     "redis://[[user]:password@]host[:port][/db]: chat delivery, inboxes, presence",
     offsetof(chat_config_t, redis_url), 0, 0, NULL, PROTO_CFG_URL},
    {"CHAT_JWT_SECRET", "jwt-secret", PROTO_CFG_STR, NULL,
     "when set, chat sessions need an HS256 JWT signed with it (at least 32 bytes); user = sub",
     offsetof(chat_config_t, jwt_secret), PROTO_CFG_HS256_KEY_MIN, 0, NULL, PROTO_CFG_SECRET},
};

int
chat_config_load(chat_config_t *cfg, int argc, char **argv)
{
    proto_cfg_table_t extra = {s_opts, PROTO_ARRAY_SIZE(s_opts), cfg};
    int rc = proto_actor_config("chatd", &cfg->common, &extra, 1, argc, argv);
    if (rc != 0)
        return rc;
    char why[128];
    proto_redis_url_t redis;
    if (cfg->redis_url && proto_redis_url_parse(cfg->redis_url, &redis, why, sizeof why) != 0) {
        char shown[512];
        proto_url_redact(cfg->redis_url, shown, sizeof shown);
        fprintf(stderr, "chatd: bad value for REDIS_URL: '%s' (%s)\n", shown, why);
        return 2;
    }
    return 0;
}

void
chat_config_free(chat_config_t *cfg)
{
    proto_cfg_table_t extra = {s_opts, PROTO_ARRAY_SIZE(s_opts), cfg};
    proto_actor_config_free(&cfg->common, &extra, 1);
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
