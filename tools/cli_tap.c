/*  cli_tap - `switchyard tap [--actor NAME] [--type GLOB] [--request-id ID]`:
    live bus messages as JSON lines (with --request-id only those about one
    request: its envelope rid, or a request.done batch holding it); and `switchyard monitor [--actor NAME]`: the
    actors' ZeroMQ socket events (connected, disconnected, handshake failed)
    as JSON lines. Both follow every instance as it comes and goes.

    Subscribes a SUB to "tap." (or "tap.<actor>.") on every instance found,
    following instances as they come and go, and prints each mirrored
    message as {"actor","dir","type","msg"} with secrets redacted. Actors
    mirror only while a tap is subscribed, so an idle tap costs nothing.
*/
#include <fnmatch.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>
#include <zmq.h>

#include "cli.h"
#include "cli_json.h"
#include "proto.h"
#include "proto_log.h"
#include "proto_util.h"
#include "proto_zwatch.h"

typedef struct {
    cli_bus_config_t bus;     // where the bus is
    cli_curve_config_t curve; // CURVE keys for tcp instances
    char *actor;              // only this kind, or NULL
    char *type;               // glob on the message type, or NULL
    char *rid;                // only messages about this request id, or NULL
    int64_t count;            // stop after this many lines (0: never)
} s_config_t;

static const proto_cfg_opt_t s_opts[] = {
    {"SWITCHYARD_TAP_ACTOR", "actor", PROTO_CFG_STR, NULL, "only this actor kind",
     offsetof(s_config_t, actor), 0, 0, NULL, 0},
    {"SWITCHYARD_TAP_TYPE", "type", PROTO_CFG_STR, NULL, "only message types matching this glob",
     offsetof(s_config_t, type), 0, 0, NULL, 0},
    {"SWITCHYARD_TAP_REQUEST_ID", "request-id", PROTO_CFG_STR, NULL,
     "only messages about this request (X-Request-Id)", offsetof(s_config_t, rid), 0, 0, NULL, 0},
    {"SWITCHYARD_TAP_COUNT", "count", PROTO_CFG_INT, "0",
     "exit after this many messages (0: run until Ctrl-C)", offsetof(s_config_t, count), 0,
     1000000000, NULL, 0},
};

typedef struct {
    s_config_t *cfg;       // settings
    struct ev_loop *loop;  // our loop
    void *sub;             // SUB to every tapped instance
    proto_zwatch_t *watch; // watcher of sub: connects go through it
    int64_t printed;       // lines printed
    cli_json_t json;       // conversion buffer
    proto_msg_t msg;       // decoded message, for --request-id
    bool monitor;          // socket events instead of taps
} s_tap_t;

static void
s_on_instance(void *arg, const char *kind, const char *req, const char *pub, bool added)
{
    (void) kind;
    (void) req;
    s_tap_t *tap = arg;
    if (added && proto_curve_connect_opts(tap->cfg->curve.curve, tap->sub, pub) != 0)
        log_warn("cannot set CURVE options", LOG_S("endpoint", pub),
                 LOG_S("error", zmq_strerror(zmq_errno())));
    // through the watcher: a connect can consume the ZMQ_FD edge, and a SUB never sends
    int rc =
        added ? proto_zwatch_connect(tap->watch, pub) : proto_zwatch_disconnect(tap->watch, pub);
    if (rc != 0)
        log_warn(added ? "connect failed" : "disconnect failed", LOG_S("endpoint", pub),
                 LOG_S("error", zmq_strerror(zmq_errno())));
}

//  Topic "tap.<kind>.<dir>.<type>" into its parts; false if not a tap topic.
static bool
s_split(char *topic, char **kind, char **dir, char **type)
{
    char *save = NULL;
    char *tap = strtok_r(topic, ".", &save);
    *kind = strtok_r(NULL, ".", &save);
    *dir = strtok_r(NULL, ".", &save);
    *type = save; // the rest: types contain dots
    return tap && strcmp(tap, "tap") == 0 && *kind && *dir && *type && **type;
}

//  True if the message is about request id rid: its envelope says so, or
//  it is a batch of request metadata holding it.
static bool
s_about(s_tap_t *tap, const void *body, size_t len, const char *rid)
{
    proto_msg_t *msg = &tap->msg;
    if (proto_decode(body, len, msg) != 0)
        return false;
    if (strcmp(msg->rid, rid) == 0)
        return true;
    if (msg->type == PROTO_REQUEST_DONE)
        for (uint32_t i = 0; i < msg->request_done.items_count; i++)
            if (strcmp(msg->request_done.items[i].rid, rid) == 0)
                return true;
    return false;
}

static void
s_on_message(proto_zwatch_t *w, void *sock, int revents, void *arg)
{
    (void) w;
    (void) revents;
    s_tap_t *tap = arg;
    for (int i = 0; i < 64; i++) {
        zmq_msg_t topic, body;
        zmq_msg_init(&topic);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&topic, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&topic);
            zmq_msg_close(&body);
            return;
        }
        bool two = zmq_msg_more(&topic) && zmq_msg_recv(&body, sock, ZMQ_DONTWAIT) >= 0;
        char name[128], *kind, *dir, *type;
        size_t tlen =
            zmq_msg_size(&topic) < sizeof name - 1 ? zmq_msg_size(&topic) : sizeof name - 1;
        memcpy(name, zmq_msg_data(&topic), tlen);
        name[tlen] = '\0';
        if (two && tap->monitor && strcmp(name, "socket.event") == 0) {
            int rc = cli_json_from_msgpack(zmq_msg_data(&body), zmq_msg_size(&body), &tap->json);
            printf("%s\n", rc == 0 ? tap->json.data : "null");
            fflush(stdout);
            tap->printed++;
        } else if (two && !tap->monitor && s_split(name, &kind, &dir, &type)
                   && (tap->cfg->type == NULL || fnmatch(tap->cfg->type, type, 0) == 0)
                   && (tap->cfg->rid == NULL
                       || s_about(tap, zmq_msg_data(&body), zmq_msg_size(&body), tap->cfg->rid))) {
            int rc = cli_json_from_msgpack(zmq_msg_data(&body), zmq_msg_size(&body), &tap->json);
            printf("{\"actor\":\"%s\",\"dir\":\"%s\",\"type\":\"%s\",\"msg\":%s}\n", kind, dir,
                   type, rc == 0 ? tap->json.data : "null");
            fflush(stdout);
            tap->printed++;
        }
        zmq_msg_close(&topic);
        zmq_msg_close(&body);
        if (tap->cfg->count > 0 && tap->printed >= tap->cfg->count) {
            ev_break(tap->loop, EVBREAK_ALL);
            return;
        }
    }
}

static void
s_on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void) w;
    (void) revents;
    ev_break(loop, EVBREAK_ALL);
}

static int
s_watch(const char *command, bool monitor, int argc, char **argv)
{
    s_config_t cfg = {0};
    proto_cfg_table_t tables[] = {
        {cli_bus_opts, cli_bus_opts_count, &cfg.bus},
        {cli_curve_opts, cli_curve_opts_count, &cfg.curve},
        {s_opts, PROTO_ARRAY_SIZE(s_opts), &cfg},
    };
    int rc = cli_config(command, tables, PROTO_ARRAY_SIZE(tables), argc, argv);
    if (rc == 0)
        rc = cli_curve_load(command, &cfg.curve);
    int kind = -1;
    if (rc == 0 && cfg.actor && (kind = proto_kind_by_name(cfg.actor)) < 0) {
        fprintf(stderr, "switchyard %s: bad value for --actor: '%s' (expected an actor kind)\n",
                command, cfg.actor);
        rc = 2;
    }
    if (rc != 0) {
        proto_curve_destroy(&cfg.curve.curve);
        proto_config_free(tables, PROTO_ARRAY_SIZE(tables));
        return rc == 1 ? 0 : 2;
    }
    s_tap_t tap = {.cfg = &cfg, .monitor = monitor};
    proto_msg_init(&tap.msg, PROTO_NONE);
    tap.loop = ev_loop_new(EVFLAG_AUTO);
    void *ctx = zmq_ctx_new();
    tap.sub = zmq_socket(ctx, ZMQ_SUB);
    int zero = 0, ipv6 = 1;
    zmq_setsockopt(tap.sub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(tap.sub, ZMQ_IPV6, &ipv6, sizeof ipv6);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "tap.%s", kind >= 0 ? proto_kind_name(kind) : "");
    if (kind >= 0) {
        size_t len = strlen(prefix);
        prefix[len] = '.';
        prefix[len + 1] = '\0';
    }
    if (monitor)
        snprintf(prefix, sizeof prefix, "socket.event"); // actors publish only while subscribed
    zmq_setsockopt(tap.sub, ZMQ_SUBSCRIBE, prefix, strlen(prefix));
    tap.watch = proto_zwatch_new(tap.loop, tap.sub, ZMQ_POLLIN, s_on_message, &tap);
    proto_zwatch_start(tap.watch);
    proto_disc_t *disc = proto_disc_new(tap.loop, cfg.bus.bus_dir, getpid(), s_on_instance, &tap);
    char err[256];
    for (int k = 0; k < PROTO_KIND_COUNT; k++)
        if ((kind < 0 || k == kind)
            && proto_disc_watch(disc, proto_kind_name(k), cfg.bus.peers[k], err, sizeof err) != 0)
            fprintf(stderr, "switchyard %s: %s: %s\n", command, proto_kind_name(k), err);
    ev_signal sigint, sigterm;
    ev_signal_init(&sigint, s_on_signal, SIGINT);
    ev_signal_init(&sigterm, s_on_signal, SIGTERM);
    ev_signal_start(tap.loop, &sigint);
    ev_signal_start(tap.loop, &sigterm);
    ev_run(tap.loop, 0);
    ev_signal_stop(tap.loop, &sigint);
    ev_signal_stop(tap.loop, &sigterm);
    proto_disc_destroy(&disc);
    proto_zwatch_destroy(&tap.watch);
    zmq_close(tap.sub);
    zmq_ctx_term(ctx);
    ev_loop_destroy(tap.loop);
    cli_json_free(&tap.json);
    proto_msg_clear(&tap.msg);
    proto_curve_destroy(&cfg.curve.curve);
    proto_config_free(tables, PROTO_ARRAY_SIZE(tables));
    return 0;
}

int
cli_tap(int argc, char **argv)
{
    return s_watch("tap", false, argc, argv);
}

int
cli_monitor(int argc, char **argv)
{
    return s_watch("monitor", true, argc, argv);
}
