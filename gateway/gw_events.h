/*  gw_events - GET /api/v1/events on the admin listener: Server-Sent Events
    relayed from an apid (SPEC §14, docs/dashboard.md).

    The call goes to an apid as admin.request like every /api call (token
    checked first). A 200 answer carrying x-switchyard-events opens a stream:
    the head (text/event-stream, no length, Connection: close), the answer's
    body (the replay), then every events.push of that apid — published once
    per gateway, written here to each stream of it. Pushes that arrive while
    a stream's answer is still on its way are held in a small ring and those
    after the answer's last event are written once it comes.

    A stream ends when its client goes (EOF or a failed write), when the
    client falls GW_OUT_HIGH behind (a slow reader: closed and counted as
    events.dropped, never buffered without bound), when its apid goes (its
    subscription to events.close@<us> ends), or at drain. Ends are told to
    the apid (events.close).
*/
#ifndef GW_EVENTS_H
#define GW_EVENTS_H

#include <stddef.h>

#include "gw_req.h"

#define GW_EVENTS_RING   64          // pushes held while a stream's answer is on its way
#define GW_EVENTS_SNDBUF (64 * 1024) // a stream's socket send buffer (fixed: no autotuning)

typedef struct gw_events gw_events_t;

//  Create the relay: handlers for events.push and apids' subscriptions.
//  Returns NULL (logged) if the bus refuses the subscription watch.
gw_events_t *gw_events_new(gw_actor_t *gw);

//  The topic apids publish our pushes under (for proto_actor_use).
const char *gw_events_topic(const gw_events_t *self);

//  Hand an authorized GET /api/v1/events to an apid and, on a stream
//  answer, keep the connection as a stream.
void gw_events_open(gw_events_t *self,
                    gw_req_t *req,
                    const char *path,
                    size_t path_len,
                    const char *query,
                    size_t query_len);

//  The request's connection closes: forget its stream (if any).
void gw_events_detach(gw_req_t *req);

//  Close every stream (the gateway drains: clients reconnect elsewhere).
void gw_events_drain(gw_events_t *self);

//  Streams open now.
size_t gw_events_count(const gw_events_t *self);

//  Free (streams must be gone: connections close first). Sets *self_p NULL.
void gw_events_destroy(gw_events_t **self_p);

#endif
