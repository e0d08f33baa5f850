/*  bal_actor - the balancer actor: its settings, its context, its lifetime.

    The balancer answers the router's pick with a lease: the route's healthy
    backends for the serving region, hops through region public addresses,
    in preference order per strategy (docs/request-path.md). It keeps the
    state that needs every gateway's view: the dead set (healthd's
    backend.state), round-robin state per route, and latency averages
    (gateways' request.done). See balancer/README.md.
*/
#ifndef BAL_ACTOR_H
#define BAL_ACTOR_H

#include <stdint.h>

#include "proto_actor.h"

#define BAL_HEALTH_MAX  100000 // (route, backend) pairs in the dead set
#define BAL_LATENCY_MAX 100000 // (route, backend) pairs with a latency average

typedef struct {
    proto_common_config_t common; // settings every actor has
    int64_t max_routes;           // BALANCER_MAX_ROUTES: round-robin states kept
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
