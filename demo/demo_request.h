/*  demo_request - a request of the demo backend as the routes see it, and the
    buffer that collects it from http-parser's callbacks.

    http-parser hands over the target and the header names and values in
    pieces, pointing into the read buffer. The request buffer copies them,
    back to back, into one arena that the connection keeps and reuses, with
    names in lower case; its view (demo_request_t) points into that arena.
*/
#ifndef DEMO_REQUEST_H
#define DEMO_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEMO_REQUEST_TARGET_MAX  8192 // longest request target (the caller answers 414)
#define DEMO_REQUEST_HEADERS_MAX 256  // most headers in one request (the caller answers 431)

//  One request header; offsets are into demo_request_t.base. Names are lower-case.
typedef struct {
    uint32_t name_off;  // where the name starts
    uint32_t name_len;  // its length
    uint32_t value_off; // where the value starts
    uint32_t value_len; // its length
} demo_header_t;

//  A parsed request, borrowed by the routes for the length of one call.
typedef struct {
    const char *method;           // "GET", "POST", ...
    bool head;                    // a HEAD request: responses carry no body
    const char *target;           // the request target, NUL-terminated
    const char *path;             // the target up to '?' (not NUL-terminated)
    size_t path_len;              // its length
    const char *query;            // after '?', "" when there is none (not NUL-terminated)
    size_t query_len;             // its length
    const char *base;             // what the header offsets point into
    const demo_header_t *headers; // in arrival order
    size_t header_count;          // how many
    uint64_t body_bytes;          // body length (known when the request is complete)
    const uint8_t *body_sha256;   // 32 bytes when the routes asked for a hash, else NULL
} demo_request_t;

//  The value of the first header called name (lower-case), with its length
//  in *len_p; NULL if there is none.
const char *demo_request_header(const demo_request_t *req, const char *name, size_t *len_p);

typedef struct demo_request_buf demo_request_buf_t;

demo_request_buf_t *demo_request_buf_new(void);

//  Free the buffer. Sets *self_p to NULL. Safe to call twice.
void demo_request_buf_destroy(demo_request_buf_t **self_p);

//  Forget the previous request (the memory is kept).
void demo_request_buf_reset(demo_request_buf_t *self);

//  Append a piece of the target. Returns -1 if it grows beyond
//  DEMO_REQUEST_TARGET_MAX.
int demo_request_buf_target(demo_request_buf_t *self, const char *at, size_t len);

//  Append a piece of a header name (a new header begins after a value).
//  Returns -1 beyond DEMO_REQUEST_HEADERS_MAX headers.
int demo_request_buf_field(demo_request_buf_t *self, const char *at, size_t len);

//  Append a piece of the current header's value.
void demo_request_buf_value(demo_request_buf_t *self, const char *at, size_t len);

//  Fill the target, path, query and header fields of req (the rest is the
//  caller's). req points into the buffer until its next append or reset.
void demo_request_buf_view(demo_request_buf_t *self, demo_request_t *req);

#endif
