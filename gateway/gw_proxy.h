/*  gw_proxy - the upstream side of a request: choosing a candidate inside
    the lease, connecting (or reusing a pooled keep-alive connection),
    sending the rewritten head and the body, retrying a failed attempt when
    that is safe (SPEC §3), and relaying the response to the client.
*/
#ifndef GW_PROXY_H
#define GW_PROXY_H

#include <stdbool.h>
#include <stddef.h>

#include "gw_req.h"

//  The request has an OK lease: make the first attempt.
void gw_proxy_start(gw_req_t *req);

//  Decoded request body bytes from the client.
void gw_proxy_body(gw_req_t *req, const char *data, size_t len);

//  The client's body is complete.
void gw_proxy_body_end(gw_req_t *req);

//  True while the upstream output is above its high-water mark (or there is
//  no connected upstream to take body bytes).
bool gw_proxy_upstream_full(const gw_req_t *req);

//  True while the request has an upstream connection (connecting or not).
bool gw_proxy_has_upstream(const gw_req_t *req);

//  The client's output drained: resume reading the response.
void gw_proxy_client_drained(gw_req_t *req);

//  The request is over (response complete): return the upstream connection
//  to the pool when it can be reused, else close it.
void gw_proxy_release(gw_req_t *req);

//  The request is abandoned (client gone, error): close its upstream.
void gw_proxy_abort(gw_req_t *req);

//  The pool of idle upstream keep-alive connections (closed after
//  GATEWAY_UPSTREAM_IDLE_TIMEOUT idle).
//  True while the request waits in its route's queue (backpressure).
bool gw_proxy_queued(const gw_req_t *req);

//  gw_dns's callback: the name of the attempt's candidate resolved (or not).
void gw_proxy_on_dns(gw_dns_waiter_t *w,
                     gw_dns_status_t status,
                     const struct sockaddr_storage *addrs,
                     size_t count,
                     void *arg);

//  gw_queue's callback: a queued request may go (go) or waited too long.
void gw_proxy_on_queue(gw_qwait_t *w, bool go, void *arg);

typedef struct gw_pool gw_pool_t;
gw_pool_t *gw_pool_new(gw_actor_t *gw);
size_t gw_pool_idle(gw_pool_t *pool);
//  Idle connections found closed when about to be reused (a counter for pong).
const uint64_t *gw_pool_stale(const gw_pool_t *pool);
void gw_pool_destroy(gw_pool_t **pool_p);

#endif
