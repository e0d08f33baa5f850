/*  bal_actor - the balancer actor's context, bus wiring and lifetime.

    Sockets: the bus ROUTER and XPUB of proto_bus (balancer.<pid>.req/.pub in
    BUS_DIR, or BUS_BIND); a SUB to every healthd (backend.state) and to
    every gateway (request.done). pick arrives on the ROUTER and is answered
    there with lease, or error{code:"bad_request"} for an unknown strategy.
    The decision itself is bal_lease's; this file only wires and counts.
*/
#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "proto_log.h"
#include "proto_strategy.h"
#include "proto_util.h"
#include "bal_actor.h"
#include "bal_health.h"
#include "bal_latency.h"
#include "bal_lease.h"
#include "bal_state.h"

struct bal_actor {
    proto_actor_t *actor;   // loop, bus, signals
    bal_health_t *health;   // dead (route, backend) pairs
    bal_state_t *state;     // round-robin state per (route, serving region)
    bal_latency_t *latency; // latency averages per (route, backend)
    bal_lease_t *lease;     // the lease being answered (tens of KiB: not on the stack)
    uint64_t picks;         // picks answered with a lease
    uint64_t no_backend;    // ... of which no_backend
    uint64_t bad_request;   // picks refused: unknown strategy
    uint64_t bad_address;   // backends served direct: their region address did not parse
    uint64_t state_events;  // backend.state events applied
};

static const proto_cfg_opt_t s_opts[] = {
    {"BALANCER_MAX_ROUTES", "max-routes", PROTO_CFG_INT, "10000",
     "routes (per serving region) whose round-robin state is kept; the least recently "
     "used is dropped beyond",
     offsetof(bal_config_t, max_routes), 1, 10000000, NULL, 0},
};

int
bal_config_load(bal_config_t *cfg, int argc, char **argv)
{
    proto_cfg_table_t extra = {s_opts, PROTO_ARRAY_SIZE(s_opts), cfg};
    return proto_actor_config("balancer", &cfg->common, &extra, 1, argc, argv);
}

void
bal_config_free(bal_config_t *cfg)
{
    proto_cfg_table_t extra = {s_opts, PROTO_ARRAY_SIZE(s_opts), cfg};
    proto_actor_config_free(&cfg->common, &extra, 1);
}

static void
s_on_pick(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    bal_actor_t *self = arg;
    const proto_pick_t *pick = &in->msg.pick;
    bal_lease_view_t view = {
        .health = self->health,
        .state = self->state,
        .latency = self->latency,
        .now_ms = proto_now_ms(),
    };
    if (bal_lease_decide(self->lease, pick, &view) != 0) {
        self->bad_request++;
        log_warn("pick refused: unknown strategy", LOG_S("route", pick->route),
                 LOG_S("strategy", pick->strategy), LOG_U("refused", self->bad_request));
        char message[128];
        snprintf(message, sizeof message, "unknown strategy: expected one of %s",
                 proto_strategy_list());
        proto_bus_reply_error(bus, &in->ret, "bad_request", message);
        return;
    }
    if (self->lease->bad_addresses) {
        self->bad_address += self->lease->bad_addresses;
        log_warn("region public address ignored: not host:port", LOG_S("route", pick->route),
                 LOG_U("count", self->bad_address));
    }
    const proto_lease_t *lease = &self->lease->lease;
    self->picks++;
    if (lease->candidates_count == 0)
        self->no_backend++;
    log_debug("lease", LOG_S("route", lease->route), LOG_S("status", lease->status),
              LOG_S("region", lease->region), LOG_U("candidates", lease->candidates_count),
              LOG_S("first", lease->candidates_count ? lease->candidates[0].id : ""));
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_LEASE);
    msg.lease = *lease;
    proto_bus_reply(bus, &in->ret, &msg);
}

static void
s_on_backend_state(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    bal_actor_t *self = arg;
    const proto_backend_state_t *st = &in->msg.backend_state;
    int rc = bal_health_set(self->health, st->route, st->backend, st->up, st->since_ms);
    if (rc < 0) {
        log_warn("backend.state ignored: empty route or backend", LOG_S("route", st->route),
                 LOG_S("backend", st->backend));
        return;
    }
    self->state_events++;
    if (rc == 1 && st->up)
        log_info("backend up", LOG_S("route", st->route), LOG_S("backend", st->backend),
                 LOG_U("dead", bal_health_count(self->health)));
    else if (rc == 1)
        log_warn("backend down", LOG_S("route", st->route), LOG_S("backend", st->backend),
                 LOG_S("reason", st->reason), LOG_U("dead", bal_health_count(self->health)));
}

static void
s_on_request_done(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    bal_actor_t *self = arg;
    uint64_t now = proto_now_ms();
    const proto_request_done_t *done = &in->msg.request_done;
    for (uint32_t i = 0; i < done->items_count; i++) {
        const proto_reqinfo_t *r = &done->items[i];
        if (r->route && r->backend && r->upstream_us > 0)
            (void) bal_latency_add(self->latency, r->route, r->backend, r->upstream_us, now);
    }
}

bal_actor_t *
bal_actor_new(const bal_config_t *cfg)
{
    char err[512];
    bal_actor_t *self = proto_xcalloc(1, sizeof *self);
    self->actor = proto_actor_new("balancer", &cfg->common, err, sizeof err);
    if (self->actor == NULL) {
        log_error("cannot create the actor", LOG_S("error", err));
        goto fail;
    }
    self->health = bal_health_new(BAL_HEALTH_MAX);
    self->state = bal_state_new((size_t) cfg->max_routes);
    self->latency = bal_latency_new(BAL_LATENCY_MAX);
    self->lease = proto_xcalloc(1, sizeof *self->lease);
    if (self->health == NULL || self->state == NULL || self->latency == NULL) {
        log_error("cannot create the balancer state", LOG_I("max_routes", cfg->max_routes));
        goto fail;
    }
    proto_bus_t *bus = proto_actor_bus(self->actor);
    proto_bus_on(bus, PROTO_PICK, s_on_pick, self);
    proto_bus_on(bus, PROTO_BACKEND_STATE, s_on_backend_state, self);
    proto_bus_on(bus, PROTO_REQUEST_DONE, s_on_request_done, self);
    // in pong (switchyard ping -v)
    const struct {
        const char *name;      // as pong reports it
        const uint64_t *value; // ours
    } counters[] = {
        {"picks", &self->picks},
        {"picks.no_backend", &self->no_backend},
        {"picks.refused", &self->bad_request},
        {"backends.bad_address", &self->bad_address},
        {"backend_state.applied", &self->state_events},
    };
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(counters); i++)
        if (proto_bus_counter(bus, counters[i].name, counters[i].value) != 0) {
            log_error("cannot report a counter in pong", LOG_S("name", counters[i].name));
            goto fail;
        }
    static const char *const healthd_topics[] = {"backend.state", NULL};
    static const char *const gateway_topics[] = {"request.done", NULL};
    if (proto_actor_use(self->actor, PROTO_KIND_HEALTHD, false, healthd_topics) != 0
        || proto_actor_use(self->actor, PROTO_KIND_GATEWAY, false, gateway_topics) != 0)
        goto fail;
    return self;
fail:
    bal_actor_destroy(&self);
    return NULL;
}

int
bal_actor_run(bal_actor_t *self)
{
    int rc = proto_actor_run(self->actor);
    log_info("balancer totals", LOG_U("picks", self->picks), LOG_U("no_backend", self->no_backend),
             LOG_U("bad_request", self->bad_request), LOG_U("bad_address", self->bad_address),
             LOG_U("state_events", self->state_events),
             LOG_U("dead", bal_health_count(self->health)),
             LOG_U("routes", bal_state_count(self->state)),
             LOG_U("routes_evicted", bal_state_evictions(self->state)),
             LOG_U("routes_reset", bal_state_resets(self->state)));
    return rc;
}

void
bal_actor_destroy(bal_actor_t **self_p)
{
    assert(self_p);
    bal_actor_t *self = *self_p;
    if (self == NULL)
        return;
    // the bus first: no handler may run on freed state
    proto_actor_destroy(&self->actor);
    free(self->lease);
    self->lease = NULL;
    bal_latency_destroy(&self->latency);
    bal_state_destroy(&self->state);
    bal_health_destroy(&self->health);
    free(self);
    *self_p = NULL;
}
