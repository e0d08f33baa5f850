/*  gw_cors - a route's `cors` (allowed origins, methods, headers) applied
    at the edge.

    Built once per lease from the compact JSON apid normalized: origins
    ("*" alone, or scheme://host[:port], compared byte for byte with the
    request's Origin, case-insensitively), methods, allowed request headers,
    exposed response headers, credentials, maxAge.

    A preflight (OPTIONS with Origin and Access-Control-Request-Method) is
    answered by the gateway, never sent upstream: 204 with the Allow-*
    fields when the origin, the method and every requested header are
    allowed; 403 otherwise (the browser then refuses the real request, and
    the reason is in the gateway's debug log). A real request from an
    allowed origin gets Access-Control-Allow-Origin (the origin itself, or
    "*" when every origin is allowed without credentials), Vary: Origin,
    Allow-Credentials and Expose-Headers as configured. A request from
    another origin is still proxied (CORS is the browser's check), without
    those fields.
*/
#ifndef GW_CORS_H
#define GW_CORS_H

#include <stdbool.h>
#include <stddef.h>

#include "gw_buf.h"

typedef struct gw_cors gw_cors_t;

//  Parse the lease's cors JSON. NULL for "" or JSON that is not a cors
//  object (logged by the caller: the router sent what apid validated).
gw_cors_t *gw_cors_new(const char *json);

//  Free it. Sets *self_p to NULL; safe with NULL.
void gw_cors_destroy(gw_cors_t **self_p);

//  True when origin (len bytes, as the request's Origin field) is allowed.
bool gw_cors_allows(const gw_cors_t *self, const char *origin, size_t len);

//  A preflight: the response fields (lines ending in CRLF) appended to out
//  when origin, method and every element of the comma-separated headers
//  list are allowed: returns true. Returns false (out untouched) when not,
//  with a reason for the log.
bool gw_cors_preflight(const gw_cors_t *self,
                       const char *origin,
                       size_t origin_len,
                       const char *method,
                       size_t method_len,
                       const char *headers,
                       size_t headers_len,
                       gw_buf_t *out,
                       const char **reason);

//  A real request from an allowed origin: its response fields appended to
//  out (nothing when the origin is not allowed).
void gw_cors_response(const gw_cors_t *self, const char *origin, size_t origin_len, gw_buf_t *out);

#endif
