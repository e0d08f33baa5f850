/*  gw_types - the gateway's connection, request and upstream records.

    These three are tightly bound (a request belongs to a client connection
    and drives one upstream connection at a time), so their layouts are
    shared by gw_conn.c (client side), gw_proxy.c (upstream side) and
    gw_admin.c (the admin listener). Everything else stays private to its
    module.
*/
#ifndef GW_TYPES_H
#define GW_TYPES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ev.h>
#include <http_parser.h>

#include "gw_buf.h"
#include "gw_lease.h"

#define GW_MAX_HEADERS    100                // request header fields kept (the prescan allows 100)
#define GW_RID_MAX        128                // request id bytes
#define GW_HOLD_MAX       (64 * 1024)        // request body held for a retry
#define GW_READ_CHUNK     16384              // bytes per read()
#define GW_HEAD_MAX       (8192 + 16384 + 8) // request line + header section + slack
#define GW_OUT_HIGH       (256 * 1024)       // pause the producer above this
#define GW_OUT_LOW        (64 * 1024)        // resume it below this
#define GW_RESP_HEAD_MAX  (64 * 1024)        // upstream response head bound
#define GW_ADMIN_BODY_MAX (1024 * 1024)

typedef struct gw_actor gw_actor_t;
typedef struct gw_conn gw_conn_t;
typedef struct gw_req gw_req_t;
typedef struct gw_up gw_up_t;

typedef struct {
    uint32_t name;      // offset in the request's head copy
    uint16_t name_len;  // bytes
    uint32_t value;     // offset
    uint32_t value_len; // bytes
} gw_field_t;

typedef enum {
    GW_REQ_DECIDING,   // waiting for a lease
    GW_REQ_CONNECTING, // upstream connect in progress
    GW_REQ_SENDING,    // request going upstream, no response byte yet
    GW_REQ_RESPONDING, // response streaming to the client
    GW_REQ_ADMIN,      // admin request handed to a handler
    GW_REQ_DONE,       // response complete (or failed)
} gw_req_state_t;

struct gw_req {
    gw_conn_t *conn;                   // the client connection
    gw_req_state_t state;              // where it is
    gw_buf_t head;                     // copy of the request head bytes
    gw_field_t fields[GW_MAX_HEADERS]; // header fields (offsets into head)
    uint32_t nfields;                  // how many
    const char *method;                // NUL-terminated inside head
    const char *target;                // request-target, NUL-terminated inside head
    uint32_t target_len;               // bytes
    int minor;                         // HTTP/1.minor
    bool keep_alive;                   // the client wants the connection kept
    bool chunked;                      // request body is chunked
    uint64_t content_length;           // request body length when not chunked
    bool has_body;                     // a body follows the head
    bool expect_continue;              // Expect: 100-continue
    char host[256];                    // Host, lower-case, port stripped
    char region[65];                   // requested region
    char rid[GW_RID_MAX + 1];          // request id
    bool client_sent_corr;             // answer X-Correlation-Id too
    gw_waiter_t waiter;                // decision wait
    gw_lease_t *lease;                 // the decision
    bool stale;                        // decision served stale
    int cand;                          // candidate of the current attempt (-1 none)
    uint64_t tried;                    // candidates tried (bit mask)
    uint32_t attempts;                 // attempts made
    gw_up_t *up;                       // current upstream connection
    gw_buf_t hold;                     // body bytes sent so far, for a retry
    bool hold_ok;                      // hold has every body byte sent so far
    uint64_t body_in;                  // decoded body bytes received from the client
    bool body_done;                    // the client's body is complete
    bool body_started;                 // some body byte went upstream
    bool idempotent;                   // GET HEAD OPTIONS PUT DELETE (TRACE)
    bool head_request;                 // HEAD: the response has no body
    int status;                        // status sent to the client (0 before)
    uint64_t bytes_out;                // response bytes sent to the client
    bool resp_chunked;                 // we chunk the response to the client
    bool close_after;                  // close the client connection after this response
    uint64_t start_us;                 // head complete (monotonic)
    uint64_t upstream_us;              // when the response head came
    gw_buf_t admin_body;               // admin: the whole request body
    uint64_t admin_id;                 // admin: bus request in flight (0 none)
    uint64_t ready_ids[2];             // admin /ready: pings in flight to router, balancer
    int ready_pending;                 // how many are still out
    bool ready_up[2];                  // which answered
    char backend[129];                 // backend id that answered
};

struct gw_conn {
    gw_actor_t *gw;               // the actor
    int fd;                       // client socket
    bool admin;                   // accepted on the admin listener
    bool trusted;                 // peer in GATEWAY_TRUSTED_PROXIES
    char client_ip[64];           // peer address text
    struct sockaddr_storage peer; // peer address
    ev_io rio;                    // readable
    ev_io wio;                    // writable
    ev_timer timer;               // header timeout / idle timeout
    ev_timer reap;                // closes a broken connection from the loop
    bool broken;                  // a write failed: the client is gone
    bool corked;                  // gather output; written at uncork or finish
    gw_buf_t in;                  // bytes from the client not yet used
    gw_buf_t out;                 // bytes to the client not yet written
    http_parser parser;           // request body framing
    gw_req_t *req;                // the request being served, or NULL
    bool reading;                 // rio started
    bool closing;                 // close once out is written
    bool eof;                     // the client half-closed
    uint64_t accepted_ms;         // when accepted (monotonic ms)
    uint64_t served;              // requests served on this connection
    gw_conn_t *prev;              // all connections
    gw_conn_t *next;              // ...
};

struct gw_up {
    gw_actor_t *gw;     // the actor
    int fd;             // upstream socket
    ev_io rio;          // readable
    ev_io wio;          // writable
    ev_timer timer;     // connect / response / idle timeout
    gw_buf_t in;        // bytes from the backend
    gw_buf_t out;       // bytes to the backend
    http_parser parser; // response framing
    gw_req_t *req;      // the request using it, or NULL when pooled
    char key[300];      // "host:port" for the pool
    bool connected;     // connect completed
    bool reused;        // came from the pool
    bool got_bytes;     // a response byte arrived
    bool head_done;     // response head parsed
    bool msg_done;      // response complete
    bool keep_alive;    // backend allows reuse
    gw_up_t *pool_prev; // idle list of its key
    gw_up_t *pool_next; // ...
};

#endif
