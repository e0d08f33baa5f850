/*  api_actor - the apid actor's context and lifetime.

    Sockets: the bus ROUTER and XPUB of proto_bus (apid.<pid>.req/.pub in
    BUS_DIR, or BUS_BIND), and a DEALER per peer kind it asks (router,
    statsd, healthd, chatd). On SIGTERM/SIGINT it stops taking calls and
    stops once the calls waiting for the router are answered (they are
    bounded by APID_ROUTER_TIMEOUT); a second signal stops at once.
*/
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>

#include "proto_log.h"
#include "proto_util.h"
#include "api_actor.h"
#include "api_events.h"
#include "api_health.h"
#include "api_http.h"
#include "api_static.h"

struct api_actor {
    proto_actor_t *actor; // loop, bus, signals
    api_http_t *http;     // the control API handler
    api_health_t *health; // /api/health and below
    api_events_t *events; // /api/v1/events
    api_static_t *web;    // /dashboard
    ev_timer drain_timer; // bounds the wait for calls in flight at a signal
    int64_t timeout_ms;   // APID_ROUTER_TIMEOUT
    bool stopping;        // a signal came
};

static const proto_cfg_opt_t s_opts[] = {
    {"APID_ROUTER_TIMEOUT", "router-timeout", PROTO_CFG_DURATION, "3s",
     "how long an API call waits for the router's answer before 503 (keep it under the "
     "gateway's 5s)",
     offsetof(api_config_t, router_timeout_ms), 0, 0, NULL, 0},
    {"APID_WEB_DIR", "web-dir", PROTO_CFG_STR, NULL,
     "the folder holding the dashboard's files (dashboard/); unset: web/ beside the binary's "
     "folder, else share/switchyard/web there",
     offsetof(api_config_t, web_dir), 0, 0, NULL, 0},
};

int
api_config_load(api_config_t *cfg, int argc, char **argv)
{
    proto_cfg_table_t extra = {s_opts, PROTO_ARRAY_SIZE(s_opts), cfg};
    int rc = proto_actor_config("apid", &cfg->common, &extra, 1, argc, argv);
    if (rc != 0)
        return rc;
    // a folder named on purpose must be there (unset: looked for, and a
    // missing one only means no dashboard)
    struct stat st;
    if (cfg->web_dir && *cfg->web_dir) {
        const char *why = stat(cfg->web_dir, &st) != 0 ? strerror(errno)
                          : !S_ISDIR(st.st_mode)       ? "not a directory"
                                                       : NULL;
        if (why) {
            fprintf(stderr, "apid: bad value for APID_WEB_DIR: '%s' (expected a directory: %s)\n",
                    cfg->web_dir, why);
            return 2;
        }
    }
    return 0;
}

void
api_config_free(api_config_t *cfg)
{
    proto_cfg_table_t extra = {s_opts, PROTO_ARRAY_SIZE(s_opts), cfg};
    proto_actor_config_free(&cfg->common, &extra, 1);
}

static void
s_on_idle(void *arg)
{
    api_actor_t *self = arg;
    proto_actor_stop(self->actor);
}

static void
s_on_drain_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void) loop;
    (void) revents;
    api_actor_t *self = t->data;
    log_warn("calls still waiting at the drain deadline",
             LOG_U("pending", api_http_pending(self->http)));
    proto_actor_stop(self->actor);
}

static void
s_on_signal(proto_actor_t *actor, int signum, void *arg)
{
    (void) signum;
    api_actor_t *self = arg;
    if (self->stopping) {
        proto_actor_stop(actor);
        return;
    }
    self->stopping = true;
    // the bus answers every waiting call by its deadline; the timer is a bound
    ev_timer_set(&self->drain_timer, (double) (self->timeout_ms + 1000) / 1000.0, 0.);
    ev_timer_start(proto_actor_loop(actor), &self->drain_timer);
    api_http_drain(self->http, s_on_idle, self);
}

//  Where the dashboard's files are: APID_WEB_DIR, else web/ beside the
//  binary's folder (bin/ of a checkout), else share/switchyard/web beside it
//  (an install under a prefix). NULL when none has a dashboard/ folder.
static const char *
s_web_dir(const char *configured, char *buf, size_t cap)
{
    if (configured && *configured)
        return configured;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash == NULL)
        return NULL;
    *slash = '\0'; // the binary's folder
    static const char *const tries[] = {"/../web", "/../share/switchyard/web"};
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(tries); i++) {
        char probe[4200];
        int len = snprintf(probe, sizeof probe, "%s%s/dashboard", exe, tries[i]);
        size_t dir_len = (size_t) len - strlen("/dashboard");
        if (len < 0 || (size_t) len >= sizeof probe || dir_len >= cap)
            continue; // a path too long for us is no place to look
        if (access(probe, R_OK | X_OK) == 0) {
            memcpy(buf, probe, dir_len);
            buf[dir_len] = '\0';
            return buf;
        }
    }
    return NULL;
}

api_actor_t *
api_actor_new(const api_config_t *cfg)
{
    char err[512];
    api_actor_t *self = proto_xcalloc(1, sizeof *self);
    self->timeout_ms = cfg->router_timeout_ms;
    ev_timer_init(&self->drain_timer, s_on_drain_timer, 0., 0.);
    self->drain_timer.data = self;
    self->actor = proto_actor_new("apid", &cfg->common, err, sizeof err);
    if (self->actor == NULL) {
        log_error("cannot create the actor", LOG_S("error", err));
        goto fail;
    }
    self->http = api_http_new(proto_actor_bus(self->actor), cfg->router_timeout_ms);
    self->health = api_health_new(proto_actor_loop(self->actor), proto_actor_bus(self->actor),
                                  &cfg->common, err, sizeof err);
    if (self->health == NULL) {
        log_error("cannot start the health census", LOG_S("error", err));
        goto fail;
    }
    api_http_set_health(self->http, self->health);
    self->events = api_events_new(proto_actor_loop(self->actor), proto_actor_bus(self->actor),
                                  cfg->common.instance_id, self->health);
    api_http_set_events(self->http, self->events);
    char web[4200];
    self->web = api_static_new(s_web_dir(cfg->web_dir, web, sizeof web));
    api_http_set_static(self->http, self->web);
    // the event stream's sources, and the gateways' events.close to us
    static const char *const router_topics[] = {"config.changed", NULL};
    static const char *const healthd_topics[] = {"backend.state", NULL};
    const char *const gateway_topics[] = {api_events_topic(self->events), NULL};
    if (proto_actor_use(self->actor, PROTO_KIND_ROUTER, true, router_topics) != 0
        || proto_actor_use(self->actor, PROTO_KIND_STATSD, true, NULL) != 0
        || proto_actor_use(self->actor, PROTO_KIND_HEALTHD, true, healthd_topics) != 0
        || proto_actor_use(self->actor, PROTO_KIND_CHATD, true, NULL) != 0
        || proto_actor_use(self->actor, PROTO_KIND_GATEWAY, false, gateway_topics) != 0)
        goto fail;
    proto_actor_on_signal(self->actor, s_on_signal, self);
    return self;
fail:
    api_actor_destroy(&self);
    return NULL;
}

int
api_actor_run(api_actor_t *self)
{
    return proto_actor_run(self->actor);
}

void
api_actor_destroy(api_actor_t **self_p)
{
    api_actor_t *self = *self_p;
    if (self == NULL)
        return;
    if (self->actor)
        ev_timer_stop(proto_actor_loop(self->actor), &self->drain_timer);
    // the bus first: it drops its pending requests, so no reply can reach a freed call
    // the census's watchers are on the actor's loop: before it goes (nothing
    // runs in between, so no bus reply reaches a freed wait)
    api_health_destroy(&self->health);
    api_events_destroy(&self->events); // its timers are on the loop too
    proto_actor_destroy(&self->actor);
    api_http_destroy(&self->http);
    api_static_destroy(&self->web);
    free(self);
    *self_p = NULL;
}
