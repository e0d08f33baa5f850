/*  gw_admin - the admin listener's requests (ARCHITECTURE "the admin
    listener"): /live, /ping, /health and /ready are answered here; /api/...
    (after the ADMIN_TOKEN check, credentials stripped) goes to apid and
    /metrics to statsd as admin.request with a deadline; no handler or no
    answer in time is 503 with a JSON error.
*/
#ifndef GW_ADMIN_H
#define GW_ADMIN_H

#include "gw_req.h"

//  The request's head and whole body are in; answer it.
void gw_admin_handle(gw_req_t *req);

//  Answer 413 with the JSON error shape (body over 1 MiB); the connection
//  closes after it.
void gw_admin_too_large(gw_req_t *req);

//  Answer 400 with the JSON error shape (the body's framing is bad).
void gw_admin_bad_body(gw_req_t *req);

//  The client went away: forget any handler request in flight.
void gw_admin_cancel(gw_req_t *req);

#endif
