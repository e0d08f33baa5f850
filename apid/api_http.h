/*  api_http - the control API (SPEC §5) over the bus.

    The gateway hands each /api/... request to apid as admin.request. apid
    matches the path, validates the body completely (api_route, api_region,
    api_cert),
    and turns the call into one config.get, config.put or config.delete to a router
    (docs/request-path.md), waiting at most the router timeout. The router's
    config.reply becomes the admin.response: its status, its JSON body, and
    on 4xx SPEC §5's error shape {"error": {"code", "message", "field"}}.
    Every JSON response carries content-type: application/json.

    Calls that need no router (404, 405, 400, 413) are answered at once.
    Many calls may wait for the router at the same time; each keeps where
    its answer goes (proto_return_t) until the reply or the deadline.

    The pure parts (api_http_plan, api_http_answer) take no bus and are what
    the unit tests drive; api_http_t is the handler registered on the bus.
*/
#ifndef API_HTTP_H
#define API_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "proto_bus.h"
#include "api_cert.h"
#include "api_region.h"
#include "api_route.h"

#define API_BODY_MAX     PROTO_CONFIG_PUT_BODY_MAX     // request bodies over this get 413 (1 MiB)
#define API_RESPONSE_MAX PROTO_ADMIN_RESPONSE_BODY_MAX // largest admin.response body

//  What a call does.
typedef enum {
    API_OP_NONE = 0,       // answered at once (error, 404, 405)
    API_OP_ROUTES_LIST,    // GET /routes
    API_OP_ROUTE_GET,      // GET /routes/:vHost
    API_OP_ROUTE_CREATE,   // POST /routes
    API_OP_ROUTE_PUT,      // PUT /routes/:vHost
    API_OP_ROUTE_DELETE,   // DELETE /routes/:vHost
    API_OP_BACKEND_ADD,    // POST /routes/:vHost/backends
    API_OP_BACKEND_DELETE, // DELETE /routes/:vHost/backends/:id
    API_OP_BACKEND_DEAD,   // POST /routes/:vHost/backends/:id/dead
    API_OP_BACKEND_ALIVE,  // POST /routes/:vHost/backends/:id/alive
    API_OP_REGIONS_LIST,   // GET /regions
    API_OP_REGION_PUT,     // PUT /regions/:id
    API_OP_REGION_DELETE,  // DELETE /regions/:id
    API_OP_CERTS_LIST,     // GET /certificates
    API_OP_CERT_PUT,       // POST /certificates
    API_OP_CERT_DELETE,    // DELETE /certificates/:domain
    API_OP_VERSIONS_LIST,  // GET /config/versions
    API_OP_VERSION_GET,    // GET /config/versions/:v
    API_OP_DIFF,           // GET /config/diff?from=a&to=b
    API_OP_ROLLBACK,       // POST /config/rollback/:v
} api_op_t;

//  An HTTP answer.
typedef struct {
    int status;        // HTTP status
    char *body;        // JSON text (owned), or NULL for no body
    const char *allow; // 405: the Allow header (static), else NULL
    uint64_t version;  // configuration version from the router, 0 if none
} api_response_t;

//  What to do with one admin.request.
typedef struct {
    api_op_t op;                              // API_OP_NONE: send response
    api_response_t response;                  // the answer when op is API_OP_NONE
    proto_type_t type;                        // PROTO_CONFIG_GET, _PUT or _DELETE
    const char *what;                         // config.*'s what (static)
    char key[PROTO_ROUTE_VHOST_MAX + 1];      // vHost or domain (lower-case), region id,
                                              // version, "from:to", or "" for none
    char sub[PROTO_ROUTE_BACKEND_ID_MAX + 1]; // backend id, "" for none
    bool create_only;                         // POST /routes: 409 if it exists
    char *body;                               // normalized JSON (owned), or NULL
} api_plan_t;

//  Plan the call for method, path and query (without '?'; NULL or "" for
//  none; only GET /config/diff reads it, the other calls ignore it) with a
//  body of body_len bytes. Always fills plan; free it with
//  api_http_plan_free.
void api_http_plan(const char *method,
                   const char *path,
                   const char *query,
                   const void *body,
                   size_t body_len,
                   api_plan_t *plan);

//  Free what a plan owns. Safe to call twice.
void api_http_plan_free(api_plan_t *plan);

//  The answer to a planned call from the router's reply: a config.reply or
//  an error message, or NULL when none came within timeout_ms (or none
//  could be sent: no_router). Fills out; free it with api_response_free.
void api_http_answer(const api_plan_t *plan,
                     const proto_msg_t *reply,
                     bool no_router,
                     int64_t timeout_ms,
                     api_response_t *out);

//  Free what a response owns. Safe to call twice.
void api_response_free(api_response_t *response);

typedef struct api_http api_http_t;

//  Serve admin.request on bus, asking the router with a deadline of
//  router_timeout_ms. Registers the handler. Never returns NULL.
api_http_t *api_http_new(proto_bus_t *bus, int64_t router_timeout_ms);

//  Calls waiting for the router.
size_t api_http_pending(const api_http_t *self);

//  Hand /api/health and below to health (borrowed; NULL: 404 like any
//  unknown path).
typedef struct api_health api_health_t;
void api_http_set_health(api_http_t *self, api_health_t *health);

//  Serve /api/v1/events with events (borrowed; may be NULL).
typedef struct api_events api_events_t;
void api_http_set_events(api_http_t *self, api_events_t *events);

//  An admin.request's header by its lower-case name (the gateway sends names
//  lower-case), or NULL.
const char *api_http_header(const proto_admin_request_t *req, const char *name);

//  Serve /dashboard and below from web (borrowed; may be NULL).
typedef struct api_static api_static_t;
void api_http_set_static(api_http_t *self, api_static_t *web);

//  Stop taking calls (new ones get 503) and call fn(arg) once no call is
//  waiting any more (at once if none is).
typedef void(api_http_idle_fn)(void *arg);
void api_http_drain(api_http_t *self, api_http_idle_fn *fn, void *arg);

//  Free the handler and every call still waiting (without answering them).
//  Destroy the bus first, so that no reply can arrive for a freed call.
//  Sets *self_p to NULL. Safe to call twice.
void api_http_destroy(api_http_t **self_p);

#endif
