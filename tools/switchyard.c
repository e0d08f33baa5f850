/*  switchyard - the operator CLI: `switchyard COMMAND [flags]`.

    ping  every live actor instance with its round-trip time (-v: counters)
    tap   live bus messages as JSON lines
    monitor  the actors' ZeroMQ socket events as JSON lines
    run   the whole stack in the foreground (make run)
    routes  list/get/apply/delete routes through the control API
    keygen  new CURVE keys for the bus (a .env, or files)
*/
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_routes.h"
#include "proto_log.h"

static void
s_usage(FILE *out)
{
    fprintf(
        out,
        "usage: switchyard COMMAND [--flag value]...\n\n"
        "commands:\n"
        "  ping [-v] [--timeout 2s]            list every live actor instance with its\n"
        "                                      round-trip time (-v: message counters)\n"
        "  tap [--actor NAME] [--type GLOB]    print live bus messages as JSON lines\n"
        "      [--count N]                     (secrets redacted); Ctrl-C stops\n"
        "  monitor [--actor NAME] [--count N]  print the actors' ZeroMQ socket events\n"
        "                                      (connected, disconnected, handshake failed)\n"
        "  run [--no-demo] [--no-redis]        start the whole stack in the foreground: redis,\n"
        "                                      every actor, two demo backends and their\n"
        "                                      routes; Ctrl-C stops everything\n"
        "  routes list|get VHOST|apply FILE|delete VHOST\n"
        "                                      the control API's routes from a terminal\n"
        "                                      (--admin URL, --token T; `routes --help`)\n"
        "  keygen [--client] [--out DIR]       new CURVE keys for the bus: a fleet's .env\n"
        "                                      (BUS_CURVE_*), or files for file:PATH values\n\n"
        "Every command reads BUS_DIR (default run/bus) and BUS_PEERS_<KIND> from flags,\n"
        "the environment or .env, like the actors (routes reads GATEWAY_ADMIN_ADDR and\n"
        "ADMIN_TOKEN instead), and on tcp the BUS_CURVE_* keys (docs/bus-security.md).\n"
        "`switchyard COMMAND --help` lists them.\n");
}

int
main(int argc, char **argv)
{
    proto_log_setup("switchyard", "cli", PROTO_LOG_WARN, PROTO_LOG_PRETTY, STDERR_FILENO);
    int rc;
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0
        || strcmp(argv[1], "help") == 0) {
        s_usage(stdout);
        rc = argc < 2 ? 2 : 0;
    } else if (strcmp(argv[1], "ping") == 0) {
        rc = cli_ping(argc - 1, argv + 1);
    } else if (strcmp(argv[1], "tap") == 0) {
        rc = cli_tap(argc - 1, argv + 1);
    } else if (strcmp(argv[1], "monitor") == 0) {
        rc = cli_monitor(argc - 1, argv + 1);
    } else if (strcmp(argv[1], "run") == 0) {
        rc = cli_run(argc - 1, argv + 1);
    } else if (strcmp(argv[1], "routes") == 0) {
        rc = cli_routes(argc - 1, argv + 1);
    } else if (strcmp(argv[1], "keygen") == 0) {
        rc = cli_keygen(argc - 1, argv + 1);
    } else {
        fprintf(stderr, "switchyard: unknown command '%s'\n", argv[1]);
        s_usage(stderr);
        rc = 2;
    }
    proto_log_shutdown();
    return rc;
}
