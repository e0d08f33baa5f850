/*  proto_actor - common settings, loop, bus and signals of every actor. */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "proto_actor.h"
#include "proto_resolve.h"
#include "proto_disc.h"
#include "proto_log.h"
#include "proto_util.h"

struct proto_actor {
    struct ev_loop *loop;             // the one loop of this process
    proto_bus_t *bus;                 // our place on the bus
    ev_signal sigterm;                // SIGTERM watcher
    ev_signal sigint;                 // SIGINT watcher
    ev_prepare log_flush;             // writes the held log lines before each wait
    proto_actor_signal_fn *on_signal; // drain hook, or NULL
    void *on_signal_arg;              // its argument
    char *kind;                       // our kind
};

#define S_PEER_OPT(C, name)                                                                        \
    {"BUS_PEERS_" #C,                                                                              \
     "bus-peers-" #name,                                                                           \
     PROTO_CFG_STR,                                                                                \
     NULL,                                                                                         \
     "instances of " #name ": dns:NAME:PORT or tcp://HOST:PORT,... (default: ipc in BUS_DIR)",     \
     offsetof(proto_common_config_t, peers) + PROTO_KIND_##C * sizeof(char *),                     \
     0,                                                                                            \
     0,                                                                                            \
     NULL,                                                                                         \
     0},

static const proto_cfg_opt_t s_common_opts[] = {
    {"REGION", "region", PROTO_CFG_STR, "1", "id of the region this process runs in",
     offsetof(proto_common_config_t, region), 0, 0, NULL, 0},
    {"LOG_LEVEL", "log-level", PROTO_CFG_ENUM, "info", "error < warn < info < debug",
     offsetof(proto_common_config_t, log_level), 0, 0, "error|warn|info|debug", 0},
    {"LOG_FORMAT", "log-format", PROTO_CFG_ENUM, NULL,
     "json or pretty (default: pretty on a terminal, else json)",
     offsetof(proto_common_config_t, log_format), 0, 0, "json|pretty", 0},
    {"INSTANCE_ID", "instance-id", PROTO_CFG_STR, NULL,
     "this process's name on the bus and in metrics (default: <hostname>-<pid>)",
     offsetof(proto_common_config_t, instance_id), 0, 0, NULL, 0},
    {"BUS_DIR", "bus-dir", PROTO_CFG_STR, "run/bus",
     "where actors on one machine bind their ipc sockets and find each other",
     offsetof(proto_common_config_t, bus_dir), 0, 0, NULL, 0},
    {"BUS_BIND", "bus-bind", PROTO_CFG_STR, NULL,
     "tcp://HOST:PORT: bind the bus there (requests) and on PORT+1 (events) instead of ipc",
     offsetof(proto_common_config_t, bus_bind), 0, 0, NULL, 0},
    {"BUS_INSECURE", "bus-insecure", PROTO_CFG_BOOL, "false",
     "allow BUS_BIND on a non-loopback address without encryption (no BUS_CURVE_* keys)",
     offsetof(proto_common_config_t, bus_insecure), 0, 0, NULL, 0},
    {"BUS_CURVE_SERVER_SECRET", "bus-curve-server-secret", PROTO_CFG_STR, NULL,
     "the fleet's CURVE server secret key (Z85, or file:PATH): tcp BUS_BIND is encrypted and "
     "only allowed clients get in",
     offsetof(proto_common_config_t, curve_server_secret), 0, 0, NULL, PROTO_CFG_SECRET},
    {"BUS_CURVE_SERVER_PUBLIC", "bus-curve-server-public", PROTO_CFG_STR, NULL,
     "the fleet's CURVE server public key (Z85, or file:PATH; derived from the secret when unset)",
     offsetof(proto_common_config_t, curve_server_public), 0, 0, NULL, 0},
    {"BUS_CURVE_CLIENT_SECRET", "bus-curve-client-secret", PROTO_CFG_STR, NULL,
     "this process's CURVE client secret key (Z85, or file:PATH) for its tcp peers",
     offsetof(proto_common_config_t, curve_client_secret), 0, 0, NULL, PROTO_CFG_SECRET},
    {"BUS_CURVE_CLIENT_PUBLIC", "bus-curve-client-public", PROTO_CFG_STR, NULL,
     "its public key (Z85, or file:PATH; derived from the secret when unset)",
     offsetof(proto_common_config_t, curve_client_public), 0, 0, NULL, 0},
    {"BUS_CURVE_CLIENTS", "bus-curve-clients", PROTO_CFG_STR, NULL,
     "client public keys allowed in besides our own (Z85 or file:PATH, comma-separated), "
     "e.g. an operator's",
     offsetof(proto_common_config_t, curve_clients), 0, 0, NULL, 0},
    PROTO_KINDS(S_PEER_OPT){"PROC_STATS_INTERVAL", "proc-stats-interval", PROTO_CFG_DURATION, "5s",
                            "how often proc.stats (CPU, memory, fds) is published",
                            offsetof(proto_common_config_t, proc_stats_interval_ms), 0, 0, NULL, 0},
    {"DNS_SERVERS", "dns-servers", PROTO_CFG_STR, NULL,
     "resolvers for backends given by name (gateway, healthd), IP[:PORT],...; unset: "
     "/etc/resolv.conf",
     offsetof(proto_common_config_t, dns_servers), 0, 0, NULL, 0},
};

static int
s_bad(const char *kind, const char *name, const char *value, const char *expect)
{
    fprintf(stderr, "%s: bad value for %s: '%s' (%s)\n", kind, name, value, expect);
    return 2;
}

static bool
s_valid_instance(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > PROTO_PONG_INSTANCE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.'
              || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool
s_valid_region(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > PROTO_PONG_REGION_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) s[i] < 0x21 || s[i] == 0x7f)
            return false;
    return true;
}

//  True if the host of tcp://HOST:PORT is a loopback address or name.
static bool
s_loopback_bind(const char *endpoint)
{
    const char *host = endpoint + strlen("tcp://");
    return proto_starts_with(host, "127.") || proto_starts_with(host, "localhost:")
           || proto_starts_with(host, "[::1]:");
}

static int
s_validate(const char *kind, proto_common_config_t *c)
{
    char err[512];
    if (!s_valid_region(c->region))
        return s_bad(kind, "REGION", c->region, "expected 1-64 printable characters, no spaces");
    if (c->instance_id == NULL) {
        char host[64] = "host";
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = '\0';
        char id[96];
        snprintf(id, sizeof id, "%.40s-%d", host, (int) getpid());
        for (char *p = id; *p; p++)
            if (!s_valid_instance((char[]){*p, 0}))
                *p = '-';
        c->instance_id = proto_xstrdup(id);
    } else if (!s_valid_instance(c->instance_id)) {
        return s_bad(kind, "INSTANCE_ID", c->instance_id,
                     "expected 1-64 characters of A-Z a-z 0-9 . _ -");
    }
    if (c->bus_dir == NULL || *c->bus_dir == '\0' || strlen(c->bus_dir) > 80)
        return s_bad(kind, "BUS_DIR", c->bus_dir ? c->bus_dir : "",
                     "expected a directory path of at most 80 bytes (unix socket paths are short)");
    proto_curve_settings_t curve = {
        .server_secret = c->curve_server_secret,
        .server_public = c->curve_server_public,
        .client_secret = c->curve_client_secret,
        .client_public = c->curve_client_public,
        .clients = c->curve_clients,
    };
    if (proto_curve_new(&curve, true, &c->curve, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", kind, err);
        return 2;
    }
    if (c->bus_bind) {
        char pub[PROTO_DISC_ENDPOINT_MAX];
        if (proto_disc_pub_of(c->bus_bind, pub, sizeof pub) != 0)
            return s_bad(kind, "BUS_BIND", c->bus_bind, "expected tcp://HOST:PORT, port < 65535");
        if (!s_loopback_bind(c->bus_bind) && !c->bus_insecure && c->curve == NULL)
            return s_bad(kind, "BUS_BIND", c->bus_bind,
                         "a non-loopback bus address is unencrypted: set the BUS_CURVE_* keys "
                         "(switchyard keygen) or BUS_INSECURE=1 to allow it");
    }
    if (proto_resolve_check_servers(c->dns_servers, err, sizeof err) != 0)
        return s_bad(kind, "DNS_SERVERS", c->dns_servers, err);
    for (int k = 0; k < PROTO_KIND_COUNT; k++) {
        if (c->peers[k] && proto_disc_check_spec(c->peers[k], err, sizeof err) != 0) {
            char name[64];
            snprintf(name, sizeof name, "BUS_PEERS_%s", proto_kind_name(k));
            for (char *p = name; *p; p++)
                if (*p >= 'a' && *p <= 'z')
                    *p = (char) (*p - 'a' + 'A');
            return s_bad(kind, name, c->peers[k], err);
        }
    }
    return 0;
}

static size_t
s_tables(proto_common_config_t *common,
         const proto_cfg_table_t *extra,
         size_t nextra,
         proto_cfg_table_t *out,
         size_t cap)
{
    size_t n = 0;
    out[n++] = (proto_cfg_table_t){s_common_opts, PROTO_ARRAY_SIZE(s_common_opts), common};
    for (size_t i = 0; i < nextra && n < cap; i++)
        out[n++] = extra[i];
    return n;
}

int
proto_actor_config(const char *kind,
                   proto_common_config_t *common,
                   const proto_cfg_table_t *extra,
                   size_t nextra,
                   int argc,
                   char **argv)
{
    extern char **environ;
    proto_cfg_table_t tables[8];
    size_t n = s_tables(common, extra, nextra, tables, PROTO_ARRAY_SIZE(tables));
    char err[512];
    int rc = proto_config_load(tables, n, argc, argv, environ, ".env", kind, err, sizeof err);
    if (rc == 1)
        return 1;
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", kind, err);
        return 2;
    }
    rc = s_validate(kind, common);
    if (rc != 0)
        return rc;
    int format = common->log_format;
    if (format < 0)
        format = isatty(STDOUT_FILENO) ? PROTO_LOG_PRETTY : PROTO_LOG_JSON;
    common->log_format = format;
    proto_log_setup(kind, common->instance_id, (proto_log_level_t) common->log_level,
                    (proto_log_format_t) format, STDOUT_FILENO);
    proto_config_log(tables, n);
    return 0;
}

void
proto_actor_config_free(proto_common_config_t *common,
                        const proto_cfg_table_t *extra,
                        size_t nextra)
{
    proto_cfg_table_t tables[8];
    size_t n = s_tables(common, extra, nextra, tables, PROTO_ARRAY_SIZE(tables));
    proto_config_free(tables, n);
    proto_curve_destroy(&common->curve);
    proto_log_shutdown();
}

static void
s_on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void) loop;
    (void) revents;
    proto_actor_t *self = w->data;
    log_info("stopping", LOG_S("signal", w->signum == SIGTERM ? "SIGTERM" : "SIGINT"));
    if (self->on_signal)
        self->on_signal(self, w->signum, self->on_signal_arg);
    else
        proto_actor_stop(self);
}

proto_actor_t *
proto_actor_new(const char *kind, const proto_common_config_t *common, char *err, size_t errlen)
{
    signal(SIGPIPE, SIG_IGN);
    proto_actor_t *self = proto_xcalloc(1, sizeof *self);
    self->kind = proto_xstrdup(kind);
    self->loop = ev_loop_new(EVFLAG_AUTO);
    if (self->loop == NULL) {
        snprintf(err, errlen, "cannot create the event loop");
        goto fail;
    }
    proto_bus_config_t cfg = {
        .kind = kind,
        .instance = common->instance_id,
        .region = common->region,
        .bus_dir = common->bus_dir,
        .bus_bind = common->bus_bind,
        .stats_interval_ms = common->proc_stats_interval_ms,
        .curve = common->curve,
    };
    for (int k = 0; k < PROTO_KIND_COUNT; k++)
        cfg.peers[k] = common->peers[k];
    self->bus = proto_bus_new(self->loop, &cfg, err, errlen);
    if (self->bus == NULL)
        goto fail;
    ev_signal_init(&self->sigterm, s_on_signal, SIGTERM);
    ev_signal_init(&self->sigint, s_on_signal, SIGINT);
    self->sigterm.data = self->sigint.data = self;
    ev_signal_start(self->loop, &self->sigterm);
    ev_signal_start(self->loop, &self->sigint);
    return self;
fail:
    proto_actor_destroy(&self);
    return NULL;
}

struct ev_loop *
proto_actor_loop(proto_actor_t *self)
{
    return self->loop;
}

proto_bus_t *
proto_actor_bus(proto_actor_t *self)
{
    return self->bus;
}

int
proto_actor_use(proto_actor_t *self, int kind, bool requests, const char *const *topics)
{
    char err[256];
    if (proto_bus_use(self->bus, kind, requests, topics, err, sizeof err) != 0) {
        log_error("cannot use peer kind", LOG_S("kind", proto_kind_name(kind)),
                  LOG_S("error", err));
        return -1;
    }
    return 0;
}

void
proto_actor_on_signal(proto_actor_t *self, proto_actor_signal_fn *fn, void *arg)
{
    self->on_signal = fn;
    self->on_signal_arg = arg;
}

static void
s_on_log_flush(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void) loop;
    (void) w;
    (void) revents;
    proto_log_flush();
}

int
proto_actor_run(proto_actor_t *self)
{
    char err[512];
    if (proto_bus_start(self->bus, err, sizeof err) != 0) {
        log_error("cannot start the bus", LOG_S("error", err));
        return 1;
    }
    log_info("started", LOG_S("version", SWITCHYARD_VERSION), LOG_I("pid", getpid()));
    //  The lines of one loop iteration go out in one write (proto_log_hold).
    ev_prepare_init(&self->log_flush, s_on_log_flush);
    ev_prepare_start(self->loop, &self->log_flush);
    ev_unref(self->loop); // the flush alone does not keep the loop running
    proto_log_hold(true);
    ev_run(self->loop, 0);
    ev_ref(self->loop);
    ev_prepare_stop(self->loop, &self->log_flush);
    log_info("stopped");
    proto_log_hold(false);
    return 0;
}

void
proto_actor_stop(proto_actor_t *self)
{
    ev_break(self->loop, EVBREAK_ALL);
}

void
proto_actor_destroy(proto_actor_t **self_p)
{
    proto_actor_t *self = *self_p;
    if (self == NULL)
        return;
    if (self->loop) {
        ev_signal_stop(self->loop, &self->sigterm);
        ev_signal_stop(self->loop, &self->sigint);
    }
    proto_bus_destroy(&self->bus);
    if (self->loop) {
        ev_loop_destroy(self->loop);
        self->loop = NULL;
    }
    free(self->kind);
    self->kind = NULL;
    free(self);
    *self_p = NULL;
}
