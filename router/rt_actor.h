/*  rt_actor - the router actor: its settings, its context, its lifetime.

    The router owns the route table and the config store: it answers decide
    (asking balancer for the pick and relaying the lease with the route's
    policy), answers config.get/put/delete from apid, and publishes
    config.changed after every change. See router/README.md.
*/
#ifndef RT_ACTOR_H
#define RT_ACTOR_H

#include "proto_actor.h"

typedef struct {
    proto_common_config_t common; // settings every actor has
    char *state_file;             // ROUTER_STATE_FILE
    char *database_url;           // DATABASE_URL (PostgreSQL store), NULL: the file store
    int64_t refresh_interval_ms;  // ROUTER_REFRESH_INTERVAL: routes re-read from PostgreSQL
    int edge_schema;              // ROUTER_EDGE_SCHEMA: 0 off, 1 on (routes from seed 002's tables)
} rt_config_t;

//  Load settings from flags, environment, .env and defaults. Returns 0 to run,
//  1 when --help was printed, 2 after printing a bad value.
int rt_config_load(rt_config_t *cfg, int argc, char **argv);

//  Free what rt_config_load allocated. Safe to call twice.
void rt_config_free(rt_config_t *cfg);

typedef struct rt_actor rt_actor_t;

//  Create the actor (nothing bound yet) and load the store. Returns NULL
//  after logging why (and, for a store it cannot load, one line on stderr).
rt_actor_t *rt_actor_new(const rt_config_t *cfg);

//  Bind, find peers and serve until SIGTERM/SIGINT. Returns the exit code.
int rt_actor_run(rt_actor_t *self);

//  Stop everything and free. Sets *self_p to NULL. Safe to call twice.
void rt_actor_destroy(rt_actor_t **self_p);

#endif
