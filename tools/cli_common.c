/*  cli_common - settings and discovery shared by the CLI's commands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "cli.h"
#include "proto_log.h"
#include "proto_util.h"

#define S_PEER_OPT(C, name)                                                                        \
    {"BUS_PEERS_" #C,                                                                              \
     "bus-peers-" #name,                                                                           \
     PROTO_CFG_STR,                                                                                \
     NULL,                                                                                         \
     "instances of " #name ": dns:NAME:PORT or tcp://HOST:PORT,...",                               \
     offsetof(cli_bus_config_t, peers) + PROTO_KIND_##C * sizeof(char *),                          \
     0,                                                                                            \
     0,                                                                                            \
     NULL,                                                                                         \
     0},

const proto_cfg_opt_t cli_bus_opts[] = {{"BUS_DIR", "bus-dir", PROTO_CFG_STR, "run/bus",
                                         "where the actors' ipc sockets are",
                                         offsetof(cli_bus_config_t, bus_dir), 0, 0, NULL, 0},
                                        PROTO_KINDS(S_PEER_OPT)};
const size_t cli_bus_opts_count = PROTO_ARRAY_SIZE(cli_bus_opts);

const proto_cfg_opt_t cli_curve_opts[] = {
    {"BUS_CURVE_SERVER_PUBLIC", "bus-curve-server-public", PROTO_CFG_STR, NULL,
     "the fleet's CURVE server public key (Z85, or file:PATH): tcp peers are reached with CURVE",
     offsetof(cli_curve_config_t, server_public), 0, 0, NULL, 0},
    {"BUS_CURVE_SERVER_SECRET", "bus-curve-server-secret", PROTO_CFG_STR, NULL,
     "or the fleet's server secret key, the public key derived from it (an actor's .env)",
     offsetof(cli_curve_config_t, server_secret), 0, 0, NULL, PROTO_CFG_SECRET},
    {"BUS_CURVE_CLIENT_SECRET", "bus-curve-client-secret", PROTO_CFG_STR, NULL,
     "our CURVE client secret key (Z85, or file:PATH); its public key must be allowed by the "
     "actors (their own, or in their BUS_CURVE_CLIENTS)",
     offsetof(cli_curve_config_t, client_secret), 0, 0, NULL, PROTO_CFG_SECRET},
    {"BUS_CURVE_CLIENT_PUBLIC", "bus-curve-client-public", PROTO_CFG_STR, NULL,
     "its public key (checked against the secret when set)",
     offsetof(cli_curve_config_t, client_public), 0, 0, NULL, 0},
};
const size_t cli_curve_opts_count = PROTO_ARRAY_SIZE(cli_curve_opts);

int
cli_curve_load(const char *command, cli_curve_config_t *cfg)
{
    proto_curve_settings_t settings = {
        .server_secret = cfg->server_secret,
        .server_public = cfg->server_public,
        .client_secret = cfg->client_secret,
        .client_public = cfg->client_public,
    };
    char err[512];
    if (proto_curve_new(&settings, false, &cfg->curve, err, sizeof err) != 0) {
        fprintf(stderr, "switchyard %s: %s\n", command, err);
        return 2;
    }
    return 0;
}

int
cli_config(const char *command, proto_cfg_table_t *tables, size_t ntables, int argc, char **argv)
{
    extern char **environ;
    char **args = proto_xcalloc((size_t) argc + 1, sizeof *args);
    for (int i = 0; i < argc; i++)
        args[i] = strcmp(argv[i], "-v") == 0 ? "--verbose" : argv[i];
    char prog[64], err[512];
    snprintf(prog, sizeof prog, "switchyard %s", command);
    int rc = proto_config_load(tables, ntables, argc, args, environ, ".env", prog, err, sizeof err);
    free(args);
    if (rc == 1)
        return 1;
    if (rc != 0) {
        fprintf(stderr, "switchyard %s: %s\n", command, err);
        return 2;
    }
    const cli_bus_config_t *bus = tables[0].base;
    for (int k = 0; k < PROTO_KIND_COUNT; k++) {
        if (bus->peers[k] && proto_disc_check_spec(bus->peers[k], err, sizeof err) != 0) {
            fprintf(stderr, "switchyard %s: bad value for BUS_PEERS_%s: '%s' (%s)\n", command,
                    proto_kind_name(k), bus->peers[k], err);
            return 2;
        }
    }
    return 0;
}

typedef struct {
    cli_instance_t *list; // found so far
    size_t count;         // entries
    size_t cap;           // allocated
} s_found_t;

static void
s_on_instance(void *arg, const char *kind, const char *req, const char *pub, bool added)
{
    s_found_t *found = arg;
    if (!added)
        return;
    if (found->count == found->cap) {
        found->cap = found->cap ? found->cap * 2 : 16;
        found->list = proto_xrealloc(found->list, found->cap * sizeof *found->list);
    }
    cli_instance_t *inst = &found->list[found->count++];
    inst->kind = proto_kind_by_name(kind);
    proto_strlcpy(inst->req, req, sizeof inst->req);
    proto_strlcpy(inst->pub, pub, sizeof inst->pub);
}

static int
s_compare(const void *a, const void *b)
{
    const cli_instance_t *x = a, *y = b;
    if (x->kind != y->kind)
        return x->kind - y->kind;
    return strcmp(x->req, y->req);
}

static void
s_on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) w;
    (void) revents;
    ev_break(loop, EVBREAK_ALL);
}

size_t
cli_discover(const cli_bus_config_t *cfg, int kind, int64_t timeout_ms, cli_instance_t **out)
{
    s_found_t found = {0};
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    proto_disc_t *disc = proto_disc_new(loop, cfg->bus_dir, getpid(), s_on_instance, &found);
    bool dns = false;
    char err[256];
    for (int k = 0; k < PROTO_KIND_COUNT; k++) {
        if (kind >= 0 && k != kind)
            continue;
        if (proto_disc_watch(disc, proto_kind_name(k), cfg->peers[k], err, sizeof err) != 0)
            fprintf(stderr, "switchyard: %s: %s\n", proto_kind_name(k), err);
        if (cfg->peers[k] && proto_starts_with(cfg->peers[k], "dns:"))
            dns = true;
    }
    if (dns) {
        // ipc and lists answer at once; DNS answers arrive on the loop
        ev_timer deadline;
        ev_timer_init(&deadline, s_on_deadline, (double) timeout_ms / 1000.0, 0.);
        ev_timer_start(loop, &deadline);
        ev_run(loop, 0);
        ev_timer_stop(loop, &deadline);
    }
    proto_disc_destroy(&disc);
    ev_loop_destroy(loop);
    if (found.count > 1)
        qsort(found.list, found.count, sizeof *found.list, s_compare);
    *out = found.list;
    return found.count;
}
