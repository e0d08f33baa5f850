/*  proto_actor - what every actor process shares: the common settings, the
    event loop, the bus, and a clean stop on SIGTERM/SIGINT.

    An actor's main() loads its settings with proto_actor_config (the common
    table plus its own), then its own <prefix>_actor_new creates a
    proto_actor, registers its handlers and peers on the bus, and runs it.
*/
#ifndef PROTO_ACTOR_H
#define PROTO_ACTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "proto_bus.h"
#include "proto_config.h"
#include "proto_curve.h"

//  Settings every actor has (SPEC §2 and ARCHITECTURE "The bus").
typedef struct {
    char *region;                   // REGION
    int log_level;                  // LOG_LEVEL, index of error|warn|info|debug
    int log_format;                 // LOG_FORMAT, index of json|pretty, -1 = by isatty
    char *instance_id;              // INSTANCE_ID, "<hostname>-<pid>" when unset
    char *bus_dir;                  // BUS_DIR
    char *bus_bind;                 // BUS_BIND (tcp), NULL for ipc in BUS_DIR
    bool bus_insecure;              // BUS_INSECURE: allow plain tcp on a non-loopback address
    char *curve_server_secret;      // BUS_CURVE_SERVER_SECRET (Z85 or file:PATH)
    char *curve_server_public;      // BUS_CURVE_SERVER_PUBLIC
    char *curve_client_secret;      // BUS_CURVE_CLIENT_SECRET
    char *curve_client_public;      // BUS_CURVE_CLIENT_PUBLIC
    char *curve_clients;            // BUS_CURVE_CLIENTS: more client keys allowed in
    proto_curve_t *curve;           // the keys read from BUS_CURVE_*, NULL: plain bus
    char *peers[PROTO_KIND_COUNT];  // BUS_PEERS_<KIND>
    int64_t proc_stats_interval_ms; // PROC_STATS_INTERVAL
    char *dns_servers;              // DNS_SERVERS: resolvers for names (unset: the system's)
} proto_common_config_t;

//  Load the common settings and the actor's own tables (flag > environment >
//  .env > default), validate them, set up logging and log the result.
//  Returns 0 to run, 1 when --help was printed (exit 0), 2 after printing one
//  line naming the bad setting to stderr (exit 2).
int proto_actor_config(const char *kind,
                       proto_common_config_t *common,
                       const proto_cfg_table_t *extra,
                       size_t nextra,
                       int argc,
                       char **argv);

//  Free what proto_actor_config allocated. Safe to call twice.
void proto_actor_config_free(proto_common_config_t *common,
                             const proto_cfg_table_t *extra,
                             size_t nextra);

typedef struct proto_actor proto_actor_t;

//  Called on SIGTERM/SIGINT. The actor may drain and call proto_actor_stop
//  later; without a hook the loop stops at once.
typedef void(proto_actor_signal_fn)(proto_actor_t *actor, int signum, void *arg);

//  Create the loop and the bus (not yet bound). Returns NULL with err set.
proto_actor_t *
proto_actor_new(const char *kind, const proto_common_config_t *common, char *err, size_t errlen);

//  Borrowed: the loop and the bus.
struct ev_loop *proto_actor_loop(proto_actor_t *self);
proto_bus_t *proto_actor_bus(proto_actor_t *self);

//  Use a peer kind (see proto_bus_use); logs and returns -1 on failure.
int proto_actor_use(proto_actor_t *self, int kind, bool requests, const char *const *topics);

void proto_actor_on_signal(proto_actor_t *self, proto_actor_signal_fn *fn, void *arg);

//  Bind the bus and run the loop until stopped. Returns 0 on a clean stop,
//  1 if the bus could not start.
int proto_actor_run(proto_actor_t *self);

//  Make proto_actor_run return.
void proto_actor_stop(proto_actor_t *self);

//  Close the bus, destroy the loop, free. Sets *self_p to NULL.
void proto_actor_destroy(proto_actor_t **self_p);

#endif
