/*  rt_decide - decide -> pick -> lease (see rt_decide.h).

    The gateway's return address (proto_return_t) is kept with the ask, so the
    lease goes back to the very request that asked, with its message id; the
    gateway drops late answers by that id.
*/
#include <stdlib.h>
#include <string.h>

#include "proto_log.h"
#include "proto_util.h"
#include "rt_decide.h"
#include "rt_table.h"

//  One decide waiting for the balancer.
typedef struct s_ask {
    rt_decide_t *owner;                             // the handler
    rt_route_t *route;                              // one reference: the policy to relay
    proto_return_t ret;                             // where the gateway's answer goes
    char auth_have[PROTO_DECIDE_AUTH_HAVE_MAX + 1]; // decide's auth_have
    struct s_ask *prev;                             // in flight list
    struct s_ask *next;                             // ...
} s_ask_t;

struct rt_decide {
    proto_bus_t *bus;      // borrowed
    rt_control_t *control; // borrowed: the route table
    s_ask_t *asks;         // asks in flight
};

static void
s_ask_free(rt_decide_t *self, s_ask_t *ask)
{
    if (ask->prev)
        ask->prev->next = ask->next;
    else
        self->asks = ask->next;
    if (ask->next)
        ask->next->prev = ask->prev;
    rt_route_unref(&ask->route);
    free(ask);
}

//  The balancer's answer (or NULL at the deadline): add the policy, relay.
static void
s_on_lease(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    s_ask_t *ask = arg;
    rt_decide_t *self = ask->owner;
    const rt_route_t *route = ask->route;
    if (in == NULL) {
        log_debug("balancer did not answer the pick", LOG_S("rid", ask->ret.rid),
                  LOG_S("vhost", route->vhost));
        proto_bus_reply_error(bus, &ask->ret, "unavailable", "the balancer did not answer in time");
    } else if (in->msg.type == PROTO_ERROR) {
        proto_bus_reply_error(bus, &ask->ret, in->msg.error.code, in->msg.error.message);
    } else if (in->msg.type != PROTO_LEASE) {
        log_warn("balancer answered a pick with an unexpected message",
                 LOG_S("type", proto_type_name(in->msg.type)));
        proto_bus_reply_error(bus, &ask->ret, "unavailable", "the balancer answered with no lease");
    } else {
        proto_lease_t *lease = &in->msg.lease;
        lease->route = route->id;
        lease->vhost = route->vhost;
        if (lease->strategy == NULL || *lease->strategy == '\0')
            lease->strategy = route->strategy;
        lease->retries = route->retries;
        lease->timeout_ms = route->timeout_ms;
        lease->queue_timeout_ms = route->queue_timeout_ms;
        lease->req_active = route->req_active;
        lease->req_queue = route->req_queue;
        lease->max_body = route->max_body;
        lease->headers = route->headers;
        lease->headers_count = route->headers_count;
        lease->chat_path = route->chat_path;
        rt_policy_to_lease(&route->policy, lease, ask->auth_have);
        proto_bus_reply(bus, &ask->ret, &in->msg);
    }
    s_ask_free(self, ask);
}

static void
s_on_decide(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    rt_decide_t *self = arg;
    const proto_decide_t *decide = &in->msg.decide;
    if (!rt_control_loaded(self->control)) {
        // an empty table would answer 404 for routes that exist
        proto_bus_reply_error(bus, &in->ret, "unavailable",
                              "the configuration is not loaded from the store yet");
        return;
    }
    uint64_t version = rt_control_version(self->control);
    rt_route_t *route = rt_table_match(rt_control_table(self->control), decide->host);
    if (route == NULL) {
        log_debug("no route", LOG_S("rid", in->ret.rid), LOG_S("host", decide->host));
        proto_msg_t msg;
        proto_msg_init(&msg, PROTO_LEASE);
        msg.lease.status = "no_route";
        msg.lease.version = version;
        proto_bus_reply(bus, &in->ret, &msg);
        return;
    }
    proto_msg_t pick;
    proto_msg_init(&pick, PROTO_PICK);
    pick.rid = in->msg.rid;
    pick.pick.route = route->id;
    pick.pick.vhost = route->vhost;
    pick.pick.strategy = route->strategy;
    pick.pick.version = version;
    pick.pick.region = decide->region;
    pick.pick.gw_region = decide->gw_region;
    pick.pick.local = decide->local; // a forwarded request: the balancer never hops it again
    pick.pick.backends = route->pick;
    pick.pick.backends_count = route->backends_count;
    pick.pick.regions =
        (proto_region_t *) rt_control_regions(self->control, &pick.pick.regions_count);

    s_ask_t *ask = proto_xcalloc(1, sizeof *ask);
    ask->owner = self;
    ask->route = rt_route_ref(route);
    ask->ret = in->ret;
    proto_strlcpy(ask->auth_have, decide->auth_have ? decide->auth_have : "",
                  sizeof ask->auth_have);
    ask->next = self->asks;
    if (self->asks)
        self->asks->prev = ask;
    self->asks = ask;
    // never parked: a gateway waiting on this decide would rather hear at
    // once that no balancer can take it, and serve its last good lease
    if (proto_bus_try_request(bus, PROTO_KIND_BALANCER, &pick, RT_DECIDE_PICK_TIMEOUT_MS,
                              s_on_lease, ask)
        != 0) {
        log_debug("no balancer to ask", LOG_S("rid", in->ret.rid), LOG_S("vhost", route->vhost));
        proto_bus_reply_error(bus, &in->ret, "unavailable", "no balancer is reachable");
        s_ask_free(self, ask);
    }
}

rt_decide_t *
rt_decide_new(proto_bus_t *bus, rt_control_t *control)
{
    rt_decide_t *self = proto_xcalloc(1, sizeof *self);
    self->bus = bus;
    self->control = control;
    proto_bus_on(bus, PROTO_DECIDE, s_on_decide, self);
    return self;
}

void
rt_decide_destroy(rt_decide_t **self_p)
{
    rt_decide_t *self = *self_p;
    if (self == NULL)
        return;
    while (self->asks)
        s_ask_free(self, self->asks);
    free(self);
    *self_p = NULL;
}
