/*  api_events - GET /api/v1/events: the fleet's events as Server-Sent
    Events (SPEC §14, docs/dashboard.md).

    Sources, each subscribed once whatever the number of clients: routers'
    config.changed (→ `config`, one per new version), healthd's backend.state
    (→ `backend`, one per change of a (route, backend)'s state), and, only
    while some stream is open, statsd's stats.reply once a second (→ `stats`)
    and a census round every 5 s (→ `actors`). The last API_EVENTS_KEEP
    `config`/`backend` events are kept, numbered from 1, for Last-Event-ID.

    A stream is opened by the gateway's admin.request: the answer is the
    replay (or `reset`), with the header x-switchyard-events: <epoch>:<seq>
    (the last event number it covers). From then on every event is published
    once per gateway holding streams of this apid, as events.push addressed to
    it; the gateway writes it to each of its streams. The gateway says when
    its streams end (events.close); a gateway whose subscription ends holds
    none. Publishing never blocks.
*/
#ifndef API_EVENTS_H
#define API_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "proto_bus.h"
#include "api_health.h"

#define API_EVENTS_KEEP         1000  // config/backend events kept for Last-Event-ID
#define API_EVENTS_GATEWAYS     256   // gateways holding streams, tracked
#define API_EVENTS_STATES       65536 // (route, backend) states remembered to drop repeats
#define API_EVENTS_STATS_MS     1000  // stats period
#define API_EVENTS_ACTORS_MS    5000  // actors period
#define API_EVENTS_HEARTBEAT_MS 15000 // comment period
#define API_EVENTS_TEXT_MAX                                                                        \
    8192 // one event's SSE text (an actors event may be longer: bounded by the bus)

typedef struct api_events api_events_t;

//  Create the stream's source side. instance is INSTANCE_ID (copied); health
//  gives the census for actors (borrowed; it must outlive this). Subscribes
//  with proto_bus_on: call before the bus starts.
api_events_t *
api_events_new(struct ev_loop *loop, proto_bus_t *bus, const char *instance, api_health_t *health);

//  The topic the gateways publish events.close to us under (for
//  proto_actor_use on the gateway kind).
const char *api_events_topic(const api_events_t *self);

//  If req is a call of /api/v1/events, answer it (the stream's start) to ret
//  and return true; else false. src is the message's sender (gateway/<id>).
bool api_events_handle(api_events_t *self,
                       const proto_return_t *ret,
                       const char *src,
                       const proto_admin_request_t *req,
                       bool draining);

//  Streams open now (all gateways).
uint64_t api_events_streams(const api_events_t *self);

//  Free. Sets *self_p to NULL.
void api_events_destroy(api_events_t **self_p);

#endif
