/*  gw_actor - the gateway actor: its settings, its context, its lifetime.

    The gateway terminates HTTP/HTTPS/WebSocket clients and proxies them to backends, asking router (and through it balancer) for routing decisions.
*/
#ifndef GW_ACTOR_H
#define GW_ACTOR_H

#include "proto_actor.h"

typedef struct {
    proto_common_config_t common; // settings every actor has
} gw_config_t;

//  Load settings from flags, environment, .env and defaults. Returns 0 to run,
//  1 when --help was printed, 2 after printing a bad value.
int gw_config_load(gw_config_t *cfg, int argc, char **argv);

//  Free what gw_config_load allocated. Safe to call twice.
void gw_config_free(gw_config_t *cfg);

typedef struct gw_actor gw_actor_t;

//  Create the actor (nothing bound yet). Returns NULL after logging why.
gw_actor_t *gw_actor_new(const gw_config_t *cfg);

//  Bind, find peers and serve until SIGTERM/SIGINT. Returns the exit code.
int gw_actor_run(gw_actor_t *self);

//  Stop everything and free. Sets *self_p to NULL. Safe to call twice.
void gw_actor_destroy(gw_actor_t **self_p);

#endif
