/*  gw_edge - a route's edge policy applied to a request once its lease is
    known, before any byte goes upstream (SPEC §4): autoHttps, CORS,
    rate limits, auth (basic, bearer) and the authProvider.

    In this order:
      1. autoHttps: a plain-HTTP request gets 308 to the same URL on https
         (the port of GATEWAY_HTTPS_ADDR unless 443).
      2. CORS: a preflight is answered here (204, or 403 for an origin,
         method or header not allowed); a real request from an allowed
         origin gets the Allow-Origin fields on its response.
      3. A rate limit keyed by client IP (so that failed logins count too).
      4. auth: basic or bearer against the route's credentials; 401 with
         WWW-Authenticate when missing or wrong. Credentials that did not
         come with the lease fail closed (503).
      5. authProvider: the external check (gw_authp); the request waits
         for it (401/403 relayed, 503 when it fails), its X-User-Id kept.
      6. A rate limit keyed by user: the user from 4 or 5, else the client
         IP (a route without auth has no user).
    Fields for the response (CORS, RateLimit-*) are collected in
    req->resp_extra; a backend's fields of the same names are replaced by
    them. securityHeaders adds X-Content-Type-Options, X-Frame-Options,
    Referrer-Policy and, over HTTPS, Strict-Transport-Security, each only
    when the backend did not send it.
*/
#ifndef GW_EDGE_H
#define GW_EDGE_H

#include <stdbool.h>
#include <stddef.h>

#include "gw_buf.h"
#include "gw_req.h"
#include "gw_resp.h"

typedef enum {
    GW_EDGE_PASS, // go on: gw_req_admitted is the caller's next step
    GW_EDGE_DONE, // answered here (308, 204, 401, 403, 429, 503)
    GW_EDGE_WAIT, // waiting for the authProvider: gw_req_admitted follows, or an answer
} gw_edge_t;

//  Apply the lease's policy to req (its lease is GW_LEASE_OK or NO_BACKEND).
gw_edge_t gw_edge_admit(gw_req_t *req);

//  Steps after the authProvider's answer (6: the rate limit keyed by user).
gw_edge_t gw_edge_resume(gw_req_t *req);

//  The request goes away while it waits (GW_EDGE_WAIT). Safe otherwise.
void gw_edge_cancel(gw_req_t *req);

//  True when the edge sets a response field of this name (a backend's is
//  then not relayed).
bool gw_edge_replaces(const gw_req_t *req, const char *name, size_t len);

//  Append the edge's response fields to out: req->resp_extra, and the
//  security headers head (a backend's response head, or NULL for the
//  gateway's own) does not carry.
void gw_edge_response(const gw_req_t *req, const gw_resp_head_t *head, gw_buf_t *out);

#endif
