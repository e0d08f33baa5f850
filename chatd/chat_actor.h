/*  chat_actor - the chatd actor: its settings, its context, its lifetime.

    The chatd bridges chat sessions across regions and instances through Redis pub/sub.
*/
#ifndef CHAT_ACTOR_H
#define CHAT_ACTOR_H

#include "proto_actor.h"

typedef struct {
    proto_common_config_t common; // settings every actor has
    char *redis_url;              // REDIS_URL: pub/sub, inboxes, presence; NULL: no Redis
    char *jwt_secret;             // CHAT_JWT_SECRET (secret), NULL: no token needed
} chat_config_t;

//  Load settings from flags, environment, .env and defaults. Returns 0 to run,
//  1 when --help was printed, 2 after printing a bad value.
int chat_config_load(chat_config_t *cfg, int argc, char **argv);

//  Free what chat_config_load allocated. Safe to call twice.
void chat_config_free(chat_config_t *cfg);

typedef struct chat_actor chat_actor_t;

//  Create the actor (nothing bound yet). Returns NULL after logging why.
chat_actor_t *chat_actor_new(const chat_config_t *cfg);

//  Bind, find peers and serve until SIGTERM/SIGINT. Returns the exit code.
int chat_actor_run(chat_actor_t *self);

//  Stop everything and free. Sets *self_p to NULL. Safe to call twice.
void chat_actor_destroy(chat_actor_t **self_p);

#endif
