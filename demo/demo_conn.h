/*  demo_conn - one client connection of the demo backend: HTTP/1.1 parsing
    (http-parser), keep-alive, pipelining, and the output queue.

    Requests are answered strictly in order. The connection parses what it has
    read, hands each complete request to demo_routes_handle, and queues the
    response; after a read it writes everything queued with one writev. A
    response that is not ready at once (a delayed one, or a streamed body)
    pauses parsing until it is done, so later pipelined requests wait their
    turn. Bodies are never buffered whole: /echo bodies go into a SHA-256 as
    they arrive, streamed responses are produced as the socket drains.

    Buffers belong to the connection and are reused request after request; a
    request costs no allocation unless it needs more room than any before it.
*/
#ifndef DEMO_CONN_H
#define DEMO_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "demo_request.h"

typedef struct demo_conn demo_conn_t;
typedef struct demo_routes demo_routes_t;

//  Every open connection, so that the server can close them all on shutdown.
typedef struct {
    demo_conn_t *head; // most recently accepted first
    size_t count;      // how many are open
} demo_conn_list_t;

//  Take fd (accepted, non-blocking), link the connection into list and start
//  reading. routes and list are borrowed and must outlive the connection.
demo_conn_t *
demo_conn_new(struct ev_loop *loop, int fd, demo_routes_t *routes, demo_conn_list_t *list);

//  Close the socket, stop every watcher, unlink from the list and free.
//  Sets *self_p to NULL. Safe to call twice.
void demo_conn_destroy(demo_conn_t **self_p);

//  --------------------------------------------------------------------------
//  Used by the routes while handling a request (in order, one call each):
//  demo_conn_head, then the body (demo_conn_body, demo_conn_body_static or a
//  stream), or demo_conn_send_static alone for a prebuilt response.

//  Queue a status line and headers: Content-Type (when ctype is not NULL),
//  Content-Length, or Transfer-Encoding: chunked when content_length < 0,
//  the Connection header this request needs, extra (whole header lines
//  ending in CRLF, or NULL), then the blank line. Status 204 and 304 carry no
//  length and no body.
void demo_conn_head(
    demo_conn_t *self, int status, const char *ctype, int64_t content_length, const char *extra);

//  Queue body bytes: copied, or (static) referenced, so they must outlive
//  the connection. Nothing is queued for HEAD.
void demo_conn_body(demo_conn_t *self, const void *data, size_t len);
void demo_conn_body_static(demo_conn_t *self, const void *data, size_t len);

//  Queue a complete prebuilt response of this status (static, not copied).
//  full is the whole response, head_len the length of its head: a HEAD
//  request gets only that much. The caller picks the variant that carries
//  the Connection header demo_conn_keep_alive_header asks for.
void demo_conn_send_static(
    demo_conn_t *self, int status, const char *full, size_t full_len, size_t head_len);

//  Which Connection header the current response needs: 0 none (HTTP/1.1
//  keep-alive), 1 "close", 2 "keep-alive" (HTTP/1.0 keep-alive).
int demo_conn_keep_alive_header(const demo_conn_t *self);

//  Stream a chunked body of count chunks of size bytes each, chunk i filled
//  with 'a' + i % 26, then the last chunk. Call after demo_conn_head(..., -1).
void demo_conn_stream_chunks(demo_conn_t *self, uint32_t count, size_t size);

//  Stream size bytes of the open file *fd_p as the body. Takes ownership of
//  *fd_p and sets it to -1. Call after demo_conn_head(..., size).
void demo_conn_stream_file(demo_conn_t *self, int *fd_p, uint64_t size);

//  Hold the response queued next (and everything after it) for ms
//  milliseconds, without blocking: call before demo_conn_head.
void demo_conn_delay(demo_conn_t *self, uint64_t ms);

//  The reason phrase of a status code ("Not Found"), or "Unknown".
const char *demo_conn_reason(int status);

#endif
