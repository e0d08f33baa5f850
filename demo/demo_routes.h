/*  demo_routes - what the demo backend answers: the hello text (or N bytes of
    'x'), /health, /echo, /chunked, /slow, /status/NNN, static files, 404.

    The routes own the read-only site: settings, the prebuilt responses of
    GET / and the static directory. They never keep state per request; all of
    it lives in the connection.
*/
#ifndef DEMO_ROUTES_H
#define DEMO_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

#include "demo_conn.h"

typedef struct {
    const char *name;       // DEMO_NAME, in the hello text
    const char *region;     // DEMO_REGION
    const char *service;    // DEMO_SERVICE, in /health
    size_t body_bytes;      // DEMO_BODY_BYTES: 0 = hello text, N = N bytes of 'x'
    const char *static_dir; // DEMO_STATIC_DIR, or NULL
} demo_routes_config_t;

//  Build the site from cfg (strings are copied); /health's uptime counts
//  from here. Returns NULL with one line in err if static_dir is not a
//  directory we can open.
demo_routes_t *demo_routes_new(const demo_routes_config_t *cfg, char *err, size_t errlen);

//  Free the site. Sets *self_p to NULL. Safe to call twice.
void demo_routes_destroy(demo_routes_t **self_p);

//  Called when a request's headers are complete: true if its body must be
//  hashed (so that demo_routes_handle gets body_sha256).
bool demo_routes_wants_body_hash(const demo_request_t *req);

//  Answer one complete request on conn (see demo_conn.h for the calls).
void demo_routes_handle(demo_routes_t *self, demo_conn_t *conn, const demo_request_t *req);

#endif
