/*  gw_head - what a request's head says.

    From the head bytes gw_prescan has checked: the method, the target and
    the fields (offsets into the request's copy of the head, each field's
    name looked up once in gw_http's table); the connection options of every
    Connection field; Expect: 100-continue; the target's form (origin or
    absolute, RFC 9112 §3.2) with the authority sent upstream and the routing
    host; the request id; the requested region. No I/O and no state of its
    own: the connection module calls it once per request.
*/
#ifndef GW_HEAD_H
#define GW_HEAD_H

#include <stddef.h>
#include <stdint.h>

#include "gw_req.h"

//  Split req->head (NUL-terminated, prescan-checked) and fill method,
//  target, fields, minor, idempotent, head_request, keep_alive,
//  expect_continue, path, authority and host. Returns 0, or -1 when the
//  request cannot be served (400): a target in absolute form with userinfo,
//  another scheme or a bad authority, or a head that does not split.
int gw_head_parse(gw_req_t *req);

//  req->rid: the client's X-Request-Id, else its X-Correlation-Id (at most
//  128 characters of [A-Za-z0-9._:-]), else a UUIDv4 made of r1 and r2
//  (random). Sets req->client_sent_corr.
void gw_head_request_id(gw_req_t *req, uint64_t r1, uint64_t r2);

//  A UUIDv4 (36 characters and a NUL) made of two random numbers.
void gw_head_uuid(uint64_t r1, uint64_t r2, char *out);

//  The requested region into out: the x-region header, else the region
//  query parameter, else dflt. Returns 0, or -1 when it is not a valid
//  region id (400).
int gw_head_region(const gw_req_t *req, const char *dflt, char *out, size_t cap);

#endif
