/*  cli - the operator CLI `switchyard`: shared settings and discovery.

    Commands (one file each): ping (cli_ping.c), tap (cli_tap.c), run (cli_run.c),
    keygen (cli_keygen.c).
*/
#ifndef CLI_H
#define CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto_bus.h"
#include "proto_config.h"
#include "proto_curve.h"
#include "proto_disc.h"

//  Settings every command has: where the bus is.
typedef struct {
    char *bus_dir;                 // BUS_DIR
    char *peers[PROTO_KIND_COUNT]; // BUS_PEERS_<KIND>
} cli_bus_config_t;

//  CURVE keys of a command that connects to the bus (ping, tap, monitor): a
//  client only, so the server's public key (or its secret) and a client
//  secret. BUS_CURVE_CLIENTS is an actor's business and not read here.
typedef struct {
    char *server_secret;  // BUS_CURVE_SERVER_SECRET (the public key derives from it)
    char *server_public;  // BUS_CURVE_SERVER_PUBLIC
    char *client_secret;  // BUS_CURVE_CLIENT_SECRET
    char *client_public;  // BUS_CURVE_CLIENT_PUBLIC (checked against the secret)
    proto_curve_t *curve; // built by cli_curve_load, NULL: plain
} cli_curve_config_t;

//  The option table of cli_curve_config_t.
extern const proto_cfg_opt_t cli_curve_opts[];
extern const size_t cli_curve_opts_count;

//  Build cfg->curve from its settings (after cli_config). Returns 0, or 2
//  after printing one line naming the bad setting.
int cli_curve_load(const char *command, cli_curve_config_t *cfg);

//  One live actor instance.
typedef struct {
    int kind;                          // PROTO_KIND_*
    char req[PROTO_DISC_ENDPOINT_MAX]; // its ROUTER
    char pub[PROTO_DISC_ENDPOINT_MAX]; // its XPUB
} cli_instance_t;

//  The option table of cli_bus_config_t, to put first in a command's tables.
extern const proto_cfg_opt_t cli_bus_opts[];
extern const size_t cli_bus_opts_count;

//  Load a command's tables (the bus table plus the command's own) from its
//  arguments (argv[0] is the command name). "-v" is read as "--verbose".
//  Returns 0, 1 after --help, 2 after printing a bad value.
int
cli_config(const char *command, proto_cfg_table_t *tables, size_t ntables, int argc, char **argv);

//  Find the live instances of one kind (or every kind when kind < 0), waiting
//  up to timeout_ms for DNS answers. *out is allocated (caller frees); sorted
//  by kind, then endpoint. Returns the count.
size_t
cli_discover(const cli_bus_config_t *cfg, int kind, int64_t timeout_ms, cli_instance_t **out);

//  The commands. Each returns the process exit code.
int cli_ping(int argc, char **argv);
int cli_tap(int argc, char **argv);
int cli_monitor(int argc, char **argv);
int cli_run(int argc, char **argv);
int cli_keygen(int argc, char **argv);

#endif
