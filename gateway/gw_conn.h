/*  gw_conn - client connections of both listeners: reading and checking
    request heads, pipelining (one request served at a time, the next waiting
    in the input buffer), request bodies, keep-alive, the timeouts of SPEC §2
    (header, idle), lingering close, and the request seam of gw_req.h that
    the proxy and the admin listener use.
*/
#ifndef GW_CONN_H
#define GW_CONN_H

#include <stdbool.h>

#include "gw_lease.h"
#include "gw_req.h"

//  Accept every pending connection on a listener.
void gw_conn_accept(gw_actor_t *gw, int listen_fd, bool admin);

//  Accept every pending connection on the HTTPS listener: a TLS handshake
//  (gw->tls picks the certificate) within GATEWAY_HEADER_TIMEOUT, then the
//  same HTTP path through SSL_read/SSL_write (never splice).
void gw_conn_accept_tls(gw_actor_t *gw, int listen_fd);

//  Drain: close every idle connection now (no request, nothing to write, no
//  partial head); the others close after their response (gw->draining makes
//  it say Connection: close).
void gw_conn_drain(gw_actor_t *gw);

//  Close every connection (end of drain). Their requests are reported.
void gw_conn_close_all(gw_actor_t *gw);

//  Bytes of a connection record (for the actor's slab).
size_t gw_conn_size(void);

//  The lease cache's callback: a decision a request waited on arrived.
void gw_conn_on_lease(gw_waiter_t *waiter, gw_lease_t *lease, bool stale, void *arg);

#endif
