/*  gw_admin - the admin listener's requests (ARCHITECTURE "the admin
    listener"): /live, /ping, /health and /ready are answered here; /api/...
    (after the ADMIN_TOKEN check, credentials stripped) goes to apid and
    /metrics to statsd as admin.request with a deadline; no handler or no
    answer in time is 503 with a JSON error. /dashboard and below go to apid
    without the token (static files); /api/v1/events is a stream
    (gw_events).
*/
#ifndef GW_ADMIN_H
#define GW_ADMIN_H

#include <stddef.h>

#include "gw_req.h"
#include "proto_bus.h"

//  The request's head and whole body are in; answer it.
void gw_admin_handle(gw_req_t *req);

//  Answer 413 with the JSON error shape (body over 1 MiB); the connection
//  closes after it.
void gw_admin_too_large(gw_req_t *req);

//  Answer 400 with the JSON error shape (the body's framing is bad).
void gw_admin_bad_body(gw_req_t *req);

//  Hand the request to a handler of kind as admin.request (headers but
//  credentials, the body read) with GATEWAY_ADMIN_TIMEOUT; fn gets the
//  answer (NULL: gw_admin_relay it). Answers 503 itself when it cannot be
//  sent.
void gw_admin_hand_over(gw_req_t *req,
                        int kind,
                        const char *path,
                        size_t path_len,
                        const char *query,
                        size_t query_len,
                        proto_reply_fn *fn);

//  Write a handler's admin.response (or 503 for in NULL: no answer in time)
//  as the request's response. Handler headers that would frame or split
//  the head are dropped.
void gw_admin_relay(gw_req_t *req, proto_in_t *in);

//  The client went away: forget any handler request in flight.
void gw_admin_cancel(gw_req_t *req);

#endif
