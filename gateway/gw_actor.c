/*  gw_actor - the gateway actor's settings, context and lifetime.

    Sockets: the public listener (GATEWAY_HTTP_ADDR) and the admin listener
    (GATEWAY_ADMIN_ADDR), both TCP; on the bus its ROUTER and XPUB, a DEALER
    to router (decide), apid (admin.request), statsd (/metrics) and balancer
    (/ready), and a SUB to router's config.changed. The listeners share
    their ports with other gateways (SO_REUSEPORT). On SIGTERM it accepts
    what is queued, stops accepting, lets in-flight requests finish for
    GATEWAY_DRAIN_TIMEOUT, then closes everything and exits 0.
*/
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "gw_actor.h"
#include "gw_authp.h"
#include "gw_chat.h"
#include "gw_events.h"
#include "gw_conn.h"
#include "gw_proxy.h"
#include "gw_rl.h"
#include "gw_tls.h"
#include "proto_log.h"
#include "proto_url.h"
#include "proto_util.h"

#define S_OPT(env, flag, type, def, help, field, min, max, choices, flags)                         \
    {                                                                                              \
        env, flag, type, def, help, offsetof(gw_config_t, field), min, max, choices, flags         \
    }

static const proto_cfg_opt_t s_opts[] = {
    S_OPT("GATEWAY_HTTP_ADDR",
          "http-addr",
          PROTO_CFG_ADDR,
          "0.0.0.0:8080",
          "public HTTP listener",
          http_addr,
          0,
          0,
          NULL,
          0),
    S_OPT("GATEWAY_HTTPS_ADDR",
          "https-addr",
          PROTO_CFG_ADDR,
          NULL,
          "public HTTPS listener; unset: none",
          https_addr,
          0,
          0,
          NULL,
          0),
    S_OPT("GATEWAY_ADMIN_ADDR",
          "admin-addr",
          PROTO_CFG_ADDR,
          "127.0.0.1:9000",
          "admin listener: control API, health, metrics",
          admin_addr,
          0,
          0,
          NULL,
          0),
    S_OPT("ADMIN_TOKEN",
          "admin-token",
          PROTO_CFG_STR,
          NULL,
          "when set, /api/... needs Authorization: Bearer <token>",
          admin_token,
          0,
          0,
          NULL,
          PROTO_CFG_SECRET),
    S_OPT("GATEWAY_TRUSTED_PROXIES",
          "trusted-proxies",
          PROTO_CFG_STR,
          NULL,
          "CIDR list of peers whose X-Forwarded-*, X-Real-IP and X-Switchyard-Hop are believed",
          trusted_proxies,
          0,
          0,
          NULL,
          0),
    S_OPT("GATEWAY_LEASE_TTL",
          "lease-ttl",
          PROTO_CFG_DURATION0,
          "1s",
          "how long a routing decision is reused; 0 asks on every request",
          lease_ttl_ms,
          0,
          0,
          NULL,
          0),
    S_OPT("GATEWAY_DECISION_TIMEOUT",
          "decision-timeout",
          PROTO_CFG_DURATION,
          "200ms",
          "how long a request waits for a decision from router+balancer",
          decision_timeout_ms,
          0,
          0,
          NULL,
          0),
    S_OPT("GATEWAY_CONNECT_TIMEOUT",
          "connect-timeout",
          PROTO_CFG_DURATION,
          "2s",
          "upstream connect timeout",
          connect_timeout_ms,
          0,
          0,
          NULL,
          0),
    S_OPT("GATEWAY_HEADER_TIMEOUT",
          "header-timeout",
          PROTO_CFG_DURATION,
          "10s",
          "request headers must be complete within this, else 408",
          header_timeout_ms,
          0,
          0,
          NULL,
          0),
    S_OPT("GATEWAY_BODY_TIMEOUT",
          "body-timeout",
          PROTO_CFG_DURATION,
          "30s",
          "the longest pause between two reads of a request body, else 408",
          body_timeout_ms,
          0,
          0,
          NULL,
          0),
    S_OPT("GATEWAY_IDLE_TIMEOUT",
          "idle-timeout",
          PROTO_CFG_DURATION,
          "65s",
          "an idle keep-alive client connection is closed after this",
          idle_timeout_ms,
          0,
          0,
          NULL,
          0),
    S_OPT("GATEWAY_UPSTREAM_IDLE_TIMEOUT",
          "upstream-idle-timeout",
          PROTO_CFG_DURATION,
          "4s",
          "a pooled upstream connection idle this long is closed",
          upstream_idle_timeout_ms,
          0,
          0,
          NULL,
          0),
    S_OPT("GATEWAY_DRAIN_TIMEOUT",
          "drain-timeout",
          PROTO_CFG_DURATION0,
          "10s",
          "on SIGTERM, how long in-flight requests may finish",
          drain_timeout_ms,
          0,
          0,
          NULL,
          0),
    S_OPT("GATEWAY_MAX_CONNECTIONS",
          "max-connections",
          PROTO_CFG_INT,
          "100000",
          "client connections beyond this are accepted and closed at once",
          max_connections,
          1,
          10000000,
          NULL,
          0),
    S_OPT("GATEWAY_PUBLIC_HEALTH_PATH",
          "public-health-path",
          PROTO_CFG_STR,
          "/health",
          "public-listener path answered by the gateway itself; empty disables",
          public_health_path,
          0,
          0,
          NULL,
          PROTO_CFG_EMPTY_OK),
    S_OPT("GATEWAY_ADMIN_TIMEOUT",
          "admin-timeout",
          PROTO_CFG_DURATION,
          "5s",
          "how long an admin request waits for apid or statsd",
          admin_timeout_ms,
          0,
          0,
          NULL,
          0),
    S_OPT("GATEWAY_ACCESS_LOG",
          "access-log",
          PROTO_CFG_BOOL,
          "true",
          "write an access line per request",
          access_log,
          0,
          0,
          NULL,
          0),
    S_OPT(
        "REDIS_URL",
        "redis-url",
        PROTO_CFG_STR,
        NULL,
        "redis://[[user]:password@]host[:port][/db], shared rate-limit counters; unset: in memory",
        redis_url,
        0,
        0,
        NULL,
        PROTO_CFG_URL),
    S_OPT("CHAT_JWT_SECRET",
          "chat-jwt-secret",
          PROTO_CFG_STR,
          NULL,
          "when set, chat upgrades need an HS256 JWT signed with it (at least 32 bytes)",
          chat_jwt_secret,
          PROTO_CFG_HS256_KEY_MIN,
          0,
          NULL,
          PROTO_CFG_SECRET),
    S_OPT("CHAT_PING_INTERVAL",
          "chat-ping-interval",
          PROTO_CFG_DURATION,
          "30s",
          "how often chat WebSockets are pinged",
          chat_ping_interval_ms,
          0,
          0,
          NULL,
          0),
    S_OPT("CHAT_IDLE_TIMEOUT",
          "chat-idle-timeout",
          PROTO_CFG_DURATION,
          "60s",
          "a chat session silent this long is closed",
          chat_idle_timeout_ms,
          0,
          0,
          NULL,
          0),
};

//  RFC 6750's b64token: what can follow "Authorization: Bearer " as one token.
static bool
s_valid_bearer_token(const char *token)
{
    size_t i = 0;
    while ((token[i] >= 'a' && token[i] <= 'z') || (token[i] >= 'A' && token[i] <= 'Z')
           || (token[i] >= '0' && token[i] <= '9') || (token[i] && strchr("-._~+/", token[i])))
        i++;
    if (i == 0)
        return false;
    while (token[i] == '=')
        i++;
    return token[i] == '\0';
}

static bool
s_loopback_host(const char *host)
{
    return strcmp(host, "localhost") == 0 || strncmp(host, PROTO_LIT("127.")) == 0
           || strcmp(host, "::1") == 0;
}

int
gw_config_load(gw_config_t *cfg, int argc, char **argv)
{
    proto_cfg_table_t extra = {s_opts, PROTO_ARRAY_SIZE(s_opts), cfg};
    int rc = proto_actor_config("gateway", &cfg->common, &extra, 1, argc, argv);
    if (rc != 0)
        return rc;
    char err[256];
    gw_cidr_list_t list;
    if (gw_cidr_parse(cfg->trusted_proxies, &list, err, sizeof err) != 0) {
        fprintf(stderr, "gateway: bad value for GATEWAY_TRUSTED_PROXIES: '%s' (%s)\n",
                cfg->trusted_proxies, err);
        return 2;
    }
    const char *hp = cfg->public_health_path;
    if (hp && *hp && (hp[0] != '/' || strpbrk(hp, " ?#\r\n"))) {
        fprintf(stderr,
                "gateway: bad value for GATEWAY_PUBLIC_HEALTH_PATH: '%s' (expected a path starting "
                "with / or empty)\n",
                hp);
        return 2;
    }
    if (cfg->admin_token && *cfg->admin_token && !s_valid_bearer_token(cfg->admin_token)) {
        fprintf(stderr, "gateway: bad value for ADMIN_TOKEN: '[REDACTED]' (expected a bearer "
                        "token: letters, digits and -._~+/, then = padding)\n");
        return 2;
    }
    proto_redis_url_t redis;
    if (cfg->redis_url && proto_redis_url_parse(cfg->redis_url, &redis, err, sizeof err) != 0) {
        char shown[512];
        proto_url_redact(cfg->redis_url, shown, sizeof shown);
        fprintf(stderr, "gateway: bad value for REDIS_URL: '%s' (%s)\n", shown, err);
        return 2;
    }
    // the token's id in the configuration history (SPEC §5 "by"): a
    // fingerprint that tells tokens apart without revealing one
    proto_strlcpy(cfg->admin_principal, "local", sizeof cfg->admin_principal);
    if (cfg->admin_token && *cfg->admin_token) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        if (EVP_Digest(cfg->admin_token, strlen(cfg->admin_token), md, &mdlen, EVP_sha256(), NULL)
            != 1) {
            fprintf(stderr, "gateway: cannot hash ADMIN_TOKEN (OpenSSL)\n");
            return 2;
        }
        int n = snprintf(cfg->admin_principal, sizeof cfg->admin_principal, "token-");
        for (unsigned i = 0; i < 6; i++)
            n += snprintf(cfg->admin_principal + n, sizeof cfg->admin_principal - (size_t) n,
                          "%02x", md[i]);
    }
    if ((cfg->admin_token == NULL || *cfg->admin_token == '\0')
        && !s_loopback_host(cfg->admin_addr.host)) {
        fprintf(stderr,
                "gateway: bad value for GATEWAY_ADMIN_ADDR: '%s:%u' (an admin listener on a "
                "non-loopback address needs ADMIN_TOKEN)\n",
                cfg->admin_addr.host, cfg->admin_addr.port);
        return 2;
    }
    return 0;
}

void
gw_config_free(gw_config_t *cfg)
{
    proto_cfg_table_t extra = {s_opts, PROTO_ARRAY_SIZE(s_opts), cfg};
    proto_actor_config_free(&cfg->common, &extra, 1);
}

uint64_t
gw_actor_random(gw_actor_t *self)
{
    // xorshift128+: fast, fine for request ids and random picks (not secrets)
    uint64_t s1 = self->rng[0];
    const uint64_t s0 = self->rng[1];
    self->rng[0] = s0;
    s1 ^= s1 << 23;
    self->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return self->rng[1] + s0;
}

//  Every listener binds with SO_REUSEPORT: several gateways of one user on
//  one host share its ports (the kernel spreads new connections over them),
//  and a replacement starts before the gateway it replaces drains
//  (docs/operations-replace.md). A port held by a socket without
//  SO_REUSEPORT, or by another user's, still fails with EADDRINUSE.
static int
s_listen(const proto_addr_t *addr, const char *name)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", addr->port);
    const char *host = addr->host[0] ? addr->host : NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        log_error("cannot resolve listener address", LOG_S("listener", name),
                  LOG_S("host", addr->host), LOG_S("error", gai_strerror(rc)));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
            log_warn("no SO_REUSEPORT: the port cannot be shared", LOG_S("listener", name),
                     LOG_ERRNO(errno));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
            if (errno == EADDRINUSE)
                log_error("cannot listen", LOG_S("listener", name), LOG_S("host", addr->host),
                          LOG_I("port", addr->port), LOG_ERRNO(errno),
                          LOG_S("hint", "held by a socket without SO_REUSEPORT (not a gateway) "
                                        "or by another user"));
            else
                log_error("cannot listen", LOG_S("listener", name), LOG_S("host", addr->host),
                          LOG_I("port", addr->port), LOG_ERRNO(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd >= 0)
        log_info("listening", LOG_S("listener", name), LOG_S("host", addr->host),
                 LOG_I("port", addr->port));
    return fd;
}

//  A listener that closes while sharing its port resets the connections in
//  its own accept queue unless the kernel moves them to another listener of
//  the group (net.ipv4.tcp_migrate_req, Linux 5.14). Said once at start:
//  the gateway reads the setting, never writes it.
static void
s_check_migrate(void)
{
    char v[8] = "";
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_migrate_req", "re");
    if (f == NULL) {
        log_warn("no net.ipv4.tcp_migrate_req (Linux < 5.14): replacing a gateway under load "
                 "may reset connections queued on the old one",
                 LOG_ERRNO(errno));
        return;
    }
    if (fgets(v, sizeof v, f) != NULL && v[0] == '0')
        log_warn("set net.ipv4.tcp_migrate_req=1 for zero-downtime replacement",
                 LOG_S("doc", "docs/operations-replace.md"));
    fclose(f);
}

static void
s_on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    (void) revents;
    gw_actor_t *self = w->data;
    if (w == &self->https_io)
        gw_conn_accept_tls(self, w->fd);
    else
        gw_conn_accept(self, w->fd, w == &self->admin_io);
}

// --------------------------------------------------------------------------
// Certificates for the HTTPS listener: fetched from the router (certs.get,
// page by page) at start and after each change that may touch them; the
// table is installed whole once its last page is in.

#define S_CERTS_TIMEOUT_MS 5000 // a certs.get waits this long for its page
#define S_CERTS_RETRY_S    1.0  // a fetch that failed is tried again after this

static void s_certs_fetch(gw_actor_t *self, uint32_t from);

static void
s_certs_failed(gw_actor_t *self)
{
    gw_tls_table_free(&self->certs_next);
    if (!ev_is_active(&self->certs_timer)) {
        ev_timer_set(&self->certs_timer, S_CERTS_RETRY_S, 0.);
        ev_timer_start(self->loop, &self->certs_timer);
    }
}

static void
s_on_certs_reply(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    gw_actor_t *self = arg;
    self->certs_pending = false;
    if (in == NULL || in->msg.type != PROTO_CERTS_REPLY) {
        log_warn("cannot fetch the certificates from the router: trying again",
                 LOG_S("error", in ? proto_type_name(in->msg.type) : "timeout"));
        s_certs_failed(self);
        return;
    }
    const proto_certs_reply_t *r = &in->msg.certs_reply;
    if (self->certs_again || (self->certs_from != 0 && r->version != self->certs_version)) {
        self->certs_again = false; // changed meanwhile: from the first page again
        gw_tls_table_free(&self->certs_next);
        s_certs_fetch(self, 0);
        return;
    }
    if (self->certs_next == NULL)
        self->certs_next = gw_tls_table_new();
    self->certs_version = r->version;
    for (uint32_t i = 0; i < r->certs_count; i++) {
        const proto_cert_t *c = &r->certs[i];
        char err[256];
        if (gw_tls_table_add_ocsp(self->tls, self->certs_next, c->domain, c->chain, c->key,
                                  c->ocsp.data, c->ocsp.size, err, sizeof err)
            != 0)
            log_warn("certificate refused", LOG_S("domain", c->domain), LOG_S("error", err));
    }
    if (r->next != 0) {
        s_certs_fetch(self, r->next);
        return;
    }
    gw_tls_swap(self->tls, &self->certs_next);
    log_info("certificates loaded", LOG_U("certificates", gw_tls_count(self->tls)),
             LOG_U("version", r->version));
}

static void
s_certs_fetch(gw_actor_t *self, uint32_t from)
{
    if (self->certs_pending) {
        self->certs_again = true;
        return;
    }
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_CERTS_GET);
    msg.certs_get.from = from;
    msg.certs_get.version = from ? self->certs_version : 0;
    self->certs_from = from;
    if (proto_bus_request(self->bus, PROTO_KIND_ROUTER, &msg, S_CERTS_TIMEOUT_MS, s_on_certs_reply,
                          self)
        != 0) {
        s_certs_failed(self);
        return;
    }
    self->certs_pending = true;
}

static void
s_on_certs_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    s_certs_fetch(w->data, 0);
}

static void
s_on_config_changed(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    gw_actor_t *self = arg;
    gw_leases_on_config(self->leases, in->msg.config_changed.version);
    const char *what = in->msg.config_changed.what;
    if (what && strcmp(what, "edge") == 0)
        gw_leases_expire_all(self->leases);
    // certificates: theirs, a route's ssl, a rollback, another router's change
    if (self->tls
        && (what == NULL || *what == '\0' || strcmp(what, "certificate") == 0
            || strcmp(what, "route") == 0 || strcmp(what, "rollback") == 0
            || strcmp(what, "reload") == 0)) {
        ev_timer_stop(self->loop, &self->certs_timer);
        s_certs_fetch(self, 0);
    }
    log_debug("configuration changed", LOG_U("version", in->msg.config_changed.version));
}

//  healthd: a backend went down or up. Leases holding a dead backend are
//  dropped (asked again before their next use; the backend is skipped by
//  the requests holding them), and a recovery expires the route's leases so
//  the backend is offered again.
static void
s_on_backend_state(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    gw_actor_t *self = arg;
    const proto_backend_state_t *st = &in->msg.backend_state;
    size_t n = st->up ? gw_leases_backend_up(self->leases, st->route, st->backend)
                      : gw_leases_backend_down(self->leases, st->route, st->backend);
    if (n > 0 && st->up)
        log_info("backend up: leases expired", LOG_S("route", st->route),
                 LOG_S("backend", st->backend), LOG_U("leases", n));
    else if (n > 0)
        log_warn("backend down: leases dropped", LOG_S("route", st->route),
                 LOG_S("backend", st->backend), LOG_S("reason", st->reason ? st->reason : ""),
                 LOG_U("leases", n));
}

static void
s_close_listeners(gw_actor_t *self)
{
    ev_io_stop(self->loop, &self->http_io);
    ev_io_stop(self->loop, &self->admin_io);
    ev_io_stop(self->loop, &self->https_io);
    if (self->http_fd >= 0)
        close(self->http_fd);
    if (self->admin_fd >= 0)
        close(self->admin_fd);
    if (self->https_fd >= 0)
        close(self->https_fd);
    self->http_fd = self->admin_fd = self->https_fd = -1;
}

static void
s_finish_drain(gw_actor_t *self)
{
    ev_timer_stop(self->loop, &self->drain_timer);
    ev_idle_stop(self->loop, &self->drain_done);
    gw_conn_close_all(self);
    proto_actor_stop(self->actor);
}

static void s_on_trim_timer(struct ev_loop *loop, ev_timer *w, int revents);

static void
s_on_drain_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    gw_actor_t *self = w->data;
    if (self->nconns > 0)
        log_warn("drain timeout: cutting what is left", LOG_U("connections", self->nconns),
                 LOG_I("timeout_ms", self->cfg->drain_timeout_ms));
    s_finish_drain(self);
}

static void
s_on_drain_done(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void) loop;
    (void) revents;
    gw_actor_t *self = w->data;
    log_info("drained", LOG_U("requests", self->requests));
    s_finish_drain(self);
}

void
gw_actor_conn_gone(gw_actor_t *self)
{
    // from the loop, not from inside the connection's own call stack
    if (self->nconns == 0 && !ev_is_active(&self->drain_done))
        ev_idle_start(self->loop, &self->drain_done);
}

//  SIGTERM/SIGINT: stop accepting, let in-flight requests finish.
static void
s_on_signal(proto_actor_t *actor, int signum, void *arg)
{
    (void) actor;
    (void) signum;
    gw_actor_t *self = arg;
    if (self->draining) {
        s_finish_drain(self); // a second signal: stop now
        return;
    }
    self->draining = true;
    //  What the kernel already queued on our listeners is ours (the client
    //  has connected): accept it all (gw_conn accepts until EAGAIN while
    //  draining) and serve it with Connection: close, instead of the reset
    //  a close would give it. New connections go to the other gateways on
    //  the port; what arrives between this and the close is moved to them
    //  by the kernel only with net.ipv4.tcp_migrate_req=1.
    if (self->http_fd >= 0)
        gw_conn_accept(self, self->http_fd, false);
    if (self->https_fd >= 0)
        gw_conn_accept_tls(self, self->https_fd);
    if (self->admin_fd >= 0)
        gw_conn_accept(self, self->admin_fd, true);
    s_close_listeners(self);
    gw_chat_drain(self->chat);     // WebSockets close with 1001; each connection goes after it
    gw_events_drain(self->events); // event streams end: their clients reconnect elsewhere
    gw_conn_drain(self);
    if (self->nconns == 0 || self->cfg->drain_timeout_ms == 0) {
        s_finish_drain(self);
        return;
    }
    log_info("draining", LOG_U("connections", self->nconns),
             LOG_I("timeout_ms", self->cfg->drain_timeout_ms));
    ev_timer_set(&self->drain_timer, (double) self->cfg->drain_timeout_ms / 1000.0, 0.);
    ev_timer_start(self->loop, &self->drain_timer);
}

gw_actor_t *
gw_actor_new(const gw_config_t *cfg)
{
    char err[512];
    gw_actor_t *self = proto_xcalloc(1, sizeof *self);
    self->cfg = cfg;
    self->http_fd = self->admin_fd = self->https_fd = -1;
    self->start_us = proto_mono_us();
    if (getrandom(self->rng, sizeof self->rng, 0) != sizeof self->rng || self->rng[0] == 0) {
        self->rng[0] = proto_mono_us() ^ ((uint64_t) getpid() << 32);
        self->rng[1] = proto_now_ms() * 0x9E3779B97F4A7C15ull;
    }
    gw_cidr_parse(cfg->trusted_proxies, &self->trusted, err, sizeof err); // checked at load
    self->actor = proto_actor_new("gateway", &cfg->common, err, sizeof err);
    if (self->actor == NULL) {
        log_error("cannot create the actor", LOG_S("error", err));
        goto fail;
    }
    self->loop = proto_actor_loop(self->actor);
    self->bus = proto_actor_bus(self->actor);
    static const char *const router_topics[] = {"config.changed", NULL};
    static const char *const healthd_topics[] = {"backend.state", NULL};
    proto_bus_address(self->chat_topic, sizeof self->chat_topic, PROTO_CHAT_OUT,
                      cfg->common.instance_id);
    const char *const chatd_topics[] = {self->chat_topic, NULL};
    self->events = gw_events_new(self);
    if (self->events == NULL)
        goto fail;
    const char *const apid_topics[] = {gw_events_topic(self->events), NULL};
    if (proto_actor_use(self->actor, PROTO_KIND_ROUTER, true, router_topics) != 0
        || proto_actor_use(self->actor, PROTO_KIND_BALANCER, true, NULL) != 0
        || proto_actor_use(self->actor, PROTO_KIND_APID, true, apid_topics) != 0
        || proto_actor_use(self->actor, PROTO_KIND_STATSD, true, NULL) != 0
        || proto_actor_use(self->actor, PROTO_KIND_CHATD, true, chatd_topics) != 0
        || proto_actor_use(self->actor, PROTO_KIND_HEALTHD, false, healthd_topics) != 0)
        goto fail;
    proto_bus_on(self->bus, PROTO_CONFIG_CHANGED, s_on_config_changed, self);
    proto_bus_on(self->bus, PROTO_BACKEND_STATE, s_on_backend_state, self);
    proto_actor_on_signal(self->actor, s_on_signal, self);

    gw_lease_config_t lc = {
        .ttl_ms = cfg->lease_ttl_ms,
        .timeout_ms = cfg->decision_timeout_ms,
        .gw_region = cfg->common.region,
        .max_entries = 10000,
    };
    self->leases = gw_leases_new(self->loop, self->bus, &lc, gw_conn_on_lease, self);
    // in pong (switchyard ping -v), later in /metrics
    (void) proto_bus_counter(self->bus, "requests", &self->requests);
    (void) proto_bus_counter(self->bus, "requests.admin", &self->admin_requests);
    (void) proto_bus_counter(self->bus, "requests.stale", &self->stale_served);
    (void) proto_bus_counter(self->bus, "connections.rejected", &self->rejected);
    (void) proto_bus_counter(self->bus, "upstream.failures", &self->upstream_failures);
    (void) proto_bus_counter(self->bus, "tunnels.open", &self->tunnels.open);
    (void) proto_bus_counter(self->bus, "tunnels.total", &self->tunnels.total);
    (void) proto_bus_counter(self->bus, "auth.refused", &self->auth_refused);
    self->report = gw_report_new(self->loop, self->bus);
    self->pool = gw_pool_new(self);
    self->conn_slab = proto_slab_new(gw_conn_size());
    self->pipes = gw_pipes_new();
    self->chat = gw_chat_new(self);
    if (self->chat == NULL) {
        log_error("cannot create the chat sessions table");
        goto fail;
    }
    const gw_chat_stats_t *cs = gw_chat_stats(self->chat);
    (void) proto_bus_counter(self->bus, "chat.sessions", &cs->open);
    (void) proto_bus_counter(self->bus, "chat.sessions.total", &cs->total);
    (void) proto_bus_counter(self->bus, "chat.refused", &cs->refused);
    (void) proto_bus_counter(self->bus, "chat.frames.in", &cs->frames_in);
    (void) proto_bus_counter(self->bus, "chat.frames.out", &cs->frames_out);
    (void) proto_bus_counter(self->bus, "chat.moved", &cs->moved);
    (void) proto_bus_counter(self->bus, "chat.unavailable", &cs->unavailable);
    (void) proto_bus_counter(self->bus, "chat.chatd", &cs->chatd);
    gw_rl_config_t rlc = {.redis_url = cfg->redis_url};
    self->rl = gw_rl_new(self->loop, &rlc, err, sizeof err);
    if (self->rl == NULL) {
        log_error("cannot set up the rate limits", LOG_S("error", err));
        goto fail;
    }
    gw_authp_config_t apc = {.timeout_ms = GW_AUTHP_TIMEOUT_MS,
                             .dns_servers = cfg->common.dns_servers};
    self->authp = gw_authp_new(self->loop, &apc);
    if (self->authp == NULL) {
        log_error("cannot set up the authProvider client");
        goto fail;
    }
    const gw_authp_stats_t *as = gw_authp_stats(self->authp);
    (void) proto_bus_counter(self->bus, "authp.checks", &as->checks);
    (void) proto_bus_counter(self->bus, "authp.hits", &as->hits);
    (void) proto_bus_counter(self->bus, "authp.calls", &as->calls);
    (void) proto_bus_counter(self->bus, "authp.failures", &as->failures);
    (void) proto_bus_counter(self->bus, "authp.timeouts", &as->timeouts);
    const gw_rl_stats_t *rs = gw_rl_stats(self->rl);
    (void) proto_bus_counter(self->bus, "ratelimit.decisions", &rs->decisions);
    (void) proto_bus_counter(self->bus, "ratelimit.limited", &rs->limited);
    (void) proto_bus_counter(self->bus, "ratelimit.sync_errors", &rs->sync_errors);
    (void) proto_bus_counter(self->bus, "ratelimit.evicted", &rs->evicted);
    (void) proto_bus_counter(self->bus, "ratelimit.entries", &rs->entries);
    (void) proto_bus_counter(self->bus, "ratelimit.degraded", &rs->degraded);
    const gw_splice_stats_t *ss = gw_pipes_stats(self->pipes);
    (void) proto_bus_counter(self->bus, "splice.transfers", &ss->transfers);
    (void) proto_bus_counter(self->bus, "splice.bytes", &ss->bytes);
    (void) proto_bus_counter(self->bus, "splice.fallbacks", &ss->fallbacks);
    (void) proto_bus_counter(self->bus, "splice.pipes", &ss->pipes);
    (void) proto_bus_counter(self->bus, "upstream.pool.stale", gw_pool_stale(self->pool));
    gw_dns_config_t dc = {.servers = cfg->common.dns_servers, .fn = gw_proxy_on_dns, .arg = self};
    self->dns = gw_dns_new(self->loop, &dc);
    if (self->dns == NULL) {
        log_error("cannot create the DNS cache");
        goto fail;
    }
    const gw_dns_stats_t *ds = gw_dns_stats(self->dns);
    (void) proto_bus_counter(self->bus, "dns.lookups", &ds->lookups);
    (void) proto_bus_counter(self->bus, "dns.misses", &ds->misses);
    (void) proto_bus_counter(self->bus, "dns.failures", &ds->failures);
    (void) proto_bus_counter(self->bus, "dns.queries", &ds->queries);
    (void) proto_bus_counter(self->bus, "dns.entries", &ds->entries);
    self->queues = gw_queues_new(self->loop, gw_proxy_on_queue, self);
    const gw_queue_stats_t *qs = gw_queues_stats(self->queues);
    (void) proto_bus_counter(self->bus, "queue.queued", &qs->queued);
    (void) proto_bus_counter(self->bus, "queue.refused", &qs->refused);
    (void) proto_bus_counter(self->bus, "queue.timeouts", &qs->timeouts);
    (void) proto_bus_counter(self->bus, "queue.abandoned", &qs->abandoned);
    (void) proto_bus_counter(self->bus, "queue.waiting", &qs->waiting);
    (void) proto_bus_counter(self->bus, "queue.active", &qs->active);

    self->http_fd = s_listen(&cfg->http_addr, "http");
    self->admin_fd = s_listen(&cfg->admin_addr, "admin");
    if (self->http_fd < 0 || self->admin_fd < 0)
        goto fail;
    ev_io_init(&self->http_io, s_on_accept, self->http_fd, EV_READ);
    ev_io_init(&self->admin_io, s_on_accept, self->admin_fd, EV_READ);
    self->http_io.data = self->admin_io.data = self;
    ev_io_start(self->loop, &self->http_io);
    ev_io_start(self->loop, &self->admin_io);
    s_check_migrate();
    ev_timer_init(&self->certs_timer, s_on_certs_timer, 0., 0.);
    self->certs_timer.data = self;
    if (cfg->https_addr.port != 0) {
        self->tls = gw_tls_new(err, sizeof err);
        if (self->tls == NULL) {
            log_error("cannot set up TLS", LOG_S("error", err));
            goto fail;
        }
        self->https_fd = s_listen(&cfg->https_addr, "https");
        if (self->https_fd < 0)
            goto fail;
        ev_io_init(&self->https_io, s_on_accept, self->https_fd, EV_READ);
        self->https_io.data = self;
        ev_io_start(self->loop, &self->https_io);
        (void) proto_bus_counter(self->bus, "tls.failures", &self->tls_failures);
        (void) proto_bus_counter(self->bus, "tls.unrecognized", gw_tls_unrecognized(self->tls));
        (void) proto_bus_counter(self->bus, "tls.ocsp_stapled", gw_tls_ocsp_stapled(self->tls));
        (void) proto_bus_counter(self->bus, "tls.ocsp_stale", gw_tls_ocsp_stale(self->tls));
        s_certs_fetch(self, 0); // none until the router answers: handshakes fail meanwhile
    }
    ev_timer_init(&self->drain_timer, s_on_drain_timer, 0., 0.);
    ev_timer_init(&self->trim_timer, s_on_trim_timer, 0., 0.);
    self->trim_timer.data = self;
    ev_idle_init(&self->drain_done, s_on_drain_done);
    self->drain_timer.data = self->drain_done.data = self;
    return self;
fail:
    gw_actor_destroy(&self);
    return NULL;
}

#define S_TRIM_AFTER    1024 // closes before the allocator is trimmed (a second later)
#define S_TRIM_REQUESTS 4096 // requests served before a quiet moment is worth a trim

static void
s_on_trim_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    gw_actor_t *self = w->data;
    self->closed_since_trim = 0;
    self->reqs_since_trim = 0;
    malloc_trim(0); // freed connection records and buffers back to the kernel
}

void
gw_actor_conn_closed(gw_actor_t *self)
{
    if (++self->closed_since_trim >= S_TRIM_AFTER && !ev_is_active(&self->trim_timer)) {
        ev_timer_set(&self->trim_timer, 1.0, 0.);
        ev_timer_start(self->loop, &self->trim_timer);
    }
}

void
gw_actor_req_started(gw_actor_t *self)
{
    self->active_reqs++;
}

void
gw_actor_req_ended(gw_actor_t *self)
{
    self->active_reqs--;
    //  Many requests served and none in flight: what their records and
    //  buffers used, free but resident, goes back a second later (at most
    //  once a second, so a busy gateway that goes quiet now and then pays
    //  for one trim a second at most).
    if (++self->reqs_since_trim >= S_TRIM_REQUESTS && self->active_reqs == 0
        && !ev_is_active(&self->trim_timer)) {
        ev_timer_set(&self->trim_timer, 1.0, 0.);
        ev_timer_start(self->loop, &self->trim_timer);
    }
}

int
gw_actor_run(gw_actor_t *self)
{
    return proto_actor_run(self->actor);
}

void
gw_actor_destroy(gw_actor_t **self_p)
{
    gw_actor_t *self = *self_p;
    if (self == NULL)
        return;
    if (self->loop) {
        s_close_listeners(self);
        ev_timer_stop(self->loop, &self->drain_timer);
        ev_timer_stop(self->loop, &self->trim_timer);
        ev_timer_stop(self->loop, &self->certs_timer);
        ev_idle_stop(self->loop, &self->drain_done);
        gw_conn_close_all(self);
    }
    gw_pool_destroy(&self->pool);
    gw_pipes_destroy(&self->pipes);
    gw_chat_destroy(&self->chat);     // after gw_conn_close_all: its sessions are released
    gw_events_destroy(&self->events); // after gw_conn_close_all: no stream is left
    gw_rl_destroy(&self->rl);
    gw_authp_destroy(&self->authp);       // after the connections: no request waits on it
    proto_slab_destroy(&self->conn_slab); // after gw_conn_close_all: none is left
    gw_queues_destroy(&self->queues);     // after the connections: nobody waits any more
    gw_dns_destroy(&self->dns);
    gw_report_destroy(&self->report); // publishes what is left
    if (self->http_fd >= 0)
        close(self->http_fd);
    if (self->admin_fd >= 0)
        close(self->admin_fd);
    proto_actor_destroy(&self->actor); // bus first: pending asks are dropped uncalled
    gw_tls_table_free(&self->certs_next);
    gw_tls_destroy(&self->tls); // after the connections: none holds an SSL
    gw_leases_destroy(&self->leases);
    free(self);
    *self_p = NULL;
}
