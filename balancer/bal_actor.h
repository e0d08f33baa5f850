/*  bal_actor - the balancer actor: its settings, its context, its lifetime.

    The balancer orders a route's backends per strategy (round robin, random, IP hash, least latency) into leases.
*/
#ifndef BAL_ACTOR_H
#define BAL_ACTOR_H

#include "proto_actor.h"

typedef struct {
    proto_common_config_t common; // settings every actor has
} bal_config_t;

//  Load settings from flags, environment, .env and defaults. Returns 0 to run,
//  1 when --help was printed, 2 after printing a bad value.
int bal_config_load(bal_config_t *cfg, int argc, char **argv);

//  Free what bal_config_load allocated. Safe to call twice.
void bal_config_free(bal_config_t *cfg);

typedef struct bal_actor bal_actor_t;

//  Create the actor (nothing bound yet). Returns NULL after logging why.
bal_actor_t *bal_actor_new(const bal_config_t *cfg);

//  Bind, find peers and serve until SIGTERM/SIGINT. Returns the exit code.
int bal_actor_run(bal_actor_t *self);

//  Stop everything and free. Sets *self_p to NULL. Safe to call twice.
void bal_actor_destroy(bal_actor_t **self_p);

#endif
