/*  api_actor - the apid actor: its settings, its context, its lifetime.

    The apid serves the REST control plane (SPEC §5) handed to it by the
    gateway as admin.request, asking the router for every read and write
    (api_http). See apid/README.md.
*/
#ifndef API_ACTOR_H
#define API_ACTOR_H

#include <stdint.h>

#include "proto_actor.h"

typedef struct {
    proto_common_config_t common; // settings every actor has
    int64_t router_timeout_ms;    // APID_ROUTER_TIMEOUT: how long a call waits for the router
    char *web_dir;                // APID_WEB_DIR: the folder holding dashboard/ (NULL: found)
} api_config_t;

//  Load settings from flags, environment, .env and defaults. Returns 0 to run,
//  1 when --help was printed, 2 after printing a bad value.
int api_config_load(api_config_t *cfg, int argc, char **argv);

//  Free what api_config_load allocated. Safe to call twice.
void api_config_free(api_config_t *cfg);

typedef struct api_actor api_actor_t;

//  Create the actor (nothing bound yet). Returns NULL after logging why.
api_actor_t *api_actor_new(const api_config_t *cfg);

//  Bind, find peers and serve until SIGTERM/SIGINT. Returns the exit code.
int api_actor_run(api_actor_t *self);

//  Stop everything and free. Sets *self_p to NULL. Safe to call twice.
void api_actor_destroy(api_actor_t **self_p);

#endif
