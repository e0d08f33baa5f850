/*  st_actor - the statsd actor: its settings, its context, its lifetime.

    The statsd aggregates request metadata and process statistics into stats and /metrics.
*/
#ifndef ST_ACTOR_H
#define ST_ACTOR_H

#include "proto_actor.h"

typedef struct {
    proto_common_config_t common; // settings every actor has
} st_config_t;

//  Load settings from flags, environment, .env and defaults. Returns 0 to run,
//  1 when --help was printed, 2 after printing a bad value.
int st_config_load(st_config_t *cfg, int argc, char **argv);

//  Free what st_config_load allocated. Safe to call twice.
void st_config_free(st_config_t *cfg);

typedef struct st_actor st_actor_t;

//  Create the actor (nothing bound yet). Returns NULL after logging why.
st_actor_t *st_actor_new(const st_config_t *cfg);

//  Bind, find peers and serve until SIGTERM/SIGINT. Returns the exit code.
int st_actor_run(st_actor_t *self);

//  Stop everything and free. Sets *self_p to NULL. Safe to call twice.
void st_actor_destroy(st_actor_t **self_p);

#endif
