/*  demo_server - the demo backend's listener, signals and connections.

    One libev loop in one thread: a non-blocking listening socket, a
    demo_conn per accepted client, and SIGTERM/SIGINT watchers that stop
    accepting, close every connection and end the loop.
*/
#ifndef DEMO_SERVER_H
#define DEMO_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "demo_routes.h"

typedef struct demo_server demo_server_t;

typedef struct {
    const char *addr;            // DEMO_ADDR: host name or address to listen on
    uint16_t port;               // DEMO_PORT
    demo_routes_config_t routes; // what to answer
} demo_server_config_t;

//  Returns 0 if addr resolves to an address we can listen on, else -1.
int demo_server_check_addr(const char *addr);

//  Build the site, resolve, bind and listen. Returns NULL with one line in
//  err on failure.
demo_server_t *demo_server_new(const demo_server_config_t *cfg, char *err, size_t errlen);

//  Serve until SIGTERM or SIGINT. Returns 0.
int demo_server_run(demo_server_t *self);

//  Close the listener and every connection, free. Sets *self_p to NULL.
//  Safe to call twice.
void demo_server_destroy(demo_server_t **self_p);

#endif
