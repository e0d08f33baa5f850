/*  gw_queue - per-route backpressure in one gateway process (SPEC §3).

    HAProxy's semantics: at most `reqActiveLength` requests of a route are in
    flight upstream (from the first attempt until the response is complete
    or abandoned, retries included); beyond that up to `reqQueueLength` wait
    in a FIFO queue, each for at most `queueTimeoutMs`; beyond that the
    request is refused (503 `Service Unavailable - queue full`). A queued
    request whose client goes away leaves the queue. The limits are per
    gateway process, as documented: rate limits are the shared mechanism.

    The limits come with each request (from its lease), so a configuration
    change applies to the next request of the route. A route's slot exists
    only while it has requests in flight or waiting: 100,000 idle routes cost
    nothing.

    A slot freed by gw_queues_leave goes to the oldest waiter at once: its
    callback runs from inside that call, and may itself leave (a request
    that fails at once); waiters are then served in a loop, never by
    recursion.
*/
#ifndef GW_QUEUE_H
#define GW_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "proto_list.h"

typedef struct gw_queues gw_queues_t;
typedef struct gw_qslot gw_qslot_t;

//  One request's place (embedded in the request). Zeroed: not in any queue.
typedef struct gw_qwait {
    proto_link_t link; // in its slot's queue
    gw_qslot_t *slot;  // the route's slot while active or queued, else NULL
    bool active;       // holds one of the route's in-flight places
    ev_timer timer;    // queue timeout while queued
} gw_qwait_t;

typedef enum {
    GW_QUEUE_GO,   // go upstream now (active; gw_queues_leave when done)
    GW_QUEUE_WAIT, // queued: the callback says go or timeout later
    GW_QUEUE_FULL, // refused: 503 queue full
} gw_queue_verdict_t;

//  A queued request may go (go true: now active) or waited too long (go
//  false: no longer queued).
typedef void(gw_queue_fn)(gw_qwait_t *w, bool go, void *arg);

typedef struct {
    uint64_t queued;    // requests that had to wait
    uint64_t refused;   // queue full
    uint64_t timeouts;  // waited queueTimeoutMs
    uint64_t abandoned; // client left while queued
    uint64_t waiting;   // queued now
    uint64_t active;    // in flight now, over every route with a slot
    uint64_t slots;     // routes with a slot now
} gw_queue_stats_t;

gw_queues_t *gw_queues_new(struct ev_loop *loop, gw_queue_fn *fn, void *arg);

//  Ask for a place for route. max_active >= 1 in flight; max_queue >= 0
//  waiting; timeout_ms: how long one may wait (0: the route's timeoutMs is
//  the caller's to pass). w must be zeroed or have left before.
gw_queue_verdict_t gw_queues_enter(gw_queues_t *self,
                                   gw_qwait_t *w,
                                   const char *route,
                                   uint32_t max_active,
                                   uint32_t max_queue,
                                   uint32_t timeout_ms);

//  Done (response complete, failed or abandoned): frees the place, or
//  leaves the queue (counted as abandoned). Safe when w holds nothing.
void gw_queues_leave(gw_queues_t *self, gw_qwait_t *w);

//  The figures above (for pong).
const gw_queue_stats_t *gw_queues_stats(const gw_queues_t *self);

void gw_queues_destroy(gw_queues_t **self_p);

#endif
