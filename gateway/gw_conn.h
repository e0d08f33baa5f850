/*  gw_conn - client connections of both listeners: reading and checking
    request heads, pipelining (one request served at a time, the next waiting
    in the input buffer), request bodies, keep-alive and the timeouts of
    SPEC §2 (header, idle), and the responses the proxy makes itself.
*/
#ifndef GW_CONN_H
#define GW_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include "gw_actor.h"
#include "gw_types.h"

//  Accept every pending connection on a listener.
void gw_conn_accept(gw_actor_t *gw, int listen_fd, bool admin);

//  Queue bytes for the client and write what the socket takes now.
void gw_conn_send(gw_conn_t *conn, const void *data, size_t len);

//  Gather what gw_conn_send queues until uncork (one write per response
//  instead of one per piece).
void gw_conn_cork(gw_conn_t *conn);
void gw_conn_uncork(gw_conn_t *conn);

//  True when the client's output is above the high-water mark.
bool gw_conn_out_full(const gw_conn_t *conn);

//  Answer the current request with a response made by the proxy
//  (text/plain unless ctype says otherwise), then finish it. extra is
//  more header lines ("Name: value\r\n"...) or NULL.
void gw_conn_respond(gw_conn_t *conn,
                     int status,
                     const char *ctype,
                     const char *body,
                     size_t len,
                     const char *extra);

//  The current request's response has been queued whole: report it, then
//  serve the next pipelined request, wait for one, or close.
void gw_conn_finish(gw_conn_t *conn);

//  Close the connection now (an error after the response began).
void gw_conn_abort(gw_conn_t *conn);

//  Move request body bytes from the client to the upstream while it has
//  room (called when the upstream connects or drains).
void gw_conn_pump_body(gw_conn_t *conn);

//  Value of a request header (case-insensitive name), or NULL; *len set.
const char *gw_req_header(const gw_req_t *req, const char *name, size_t *len);

//  Close every idle keep-alive connection (drain).
void gw_conn_close_idle(gw_actor_t *gw);

//  Close every connection (end of drain). Their requests are reported.
void gw_conn_close_all(gw_actor_t *gw);

//  Read an admin request's body (whole, at most 1 MiB), then hand it over.
void gw_conn_pump_admin(gw_conn_t *conn);

//  The gateway's health document (SPEC §10) appended to out.
void gw_conn_health_json(gw_conn_t *conn, gw_buf_t *out);

//  The lease cache's callback: a decision a request waited on arrived.
void gw_conn_on_lease(gw_waiter_t *waiter, gw_lease_t *lease, bool stale, void *arg);

//  Reason phrase of a status code.
const char *gw_status_reason(int status);

#endif
