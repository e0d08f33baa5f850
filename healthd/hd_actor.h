/*  hd_actor - the healthd actor: its settings, its context, its lifetime.

    The healthd probes backends and publishes backend.state when one goes up or down.
*/
#ifndef HD_ACTOR_H
#define HD_ACTOR_H

#include "proto_actor.h"

typedef struct {
    proto_common_config_t common; // settings every actor has
    int64_t interval_ms;          // HEALTHD_INTERVAL: probe interval for live backends
    int64_t timeout_ms;           // HEALTHD_TIMEOUT: probe timeout
    int64_t recovery_interval_ms; // HEALTHD_RECOVERY_INTERVAL: probe interval for dead backends
} hd_config_t;

//  Load settings from flags, environment, .env and defaults. Returns 0 to run,
//  1 when --help was printed, 2 after printing a bad value.
int hd_config_load(hd_config_t *cfg, int argc, char **argv);

//  Free what hd_config_load allocated. Safe to call twice.
void hd_config_free(hd_config_t *cfg);

typedef struct hd_actor hd_actor_t;

//  Create the actor (nothing bound yet). Returns NULL after logging why.
hd_actor_t *hd_actor_new(const hd_config_t *cfg);

//  Bind, find peers and serve until SIGTERM/SIGINT. Returns the exit code.
int hd_actor_run(hd_actor_t *self);

//  Stop everything and free. Sets *self_p to NULL. Safe to call twice.
void hd_actor_destroy(hd_actor_t **self_p);

#endif
