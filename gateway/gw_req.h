/*  gw_req - one request on a client connection: the record and the seam.

    The connection module (gw_conn.c) reads a request's head, makes this
    record, and hands it to the proxy (gw_proxy) or to the admin listener
    (gw_admin). Those two talk back to the client only through the functions
    below, which gw_conn.c implements; neither sees the connection itself.
    So the direction is actor -> conn -> {proxy, admin}, and the connection's
    state (what is written, when it closes) has one owner.

    Who writes what: the fields under "conn" are set by gw_conn.c before the
    request is handed over and read-only afterwards; "proxy" and "admin"
    fields belong to that module. `phase` is written only by gw_conn.c.
*/
#ifndef GW_REQ_H
#define GW_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <http_parser.h>

#include "gw_buf.h"
#include "gw_chunk.h"
#include "gw_dns.h"
#include "gw_http.h"
#include "gw_authp.h"
#include "gw_lease.h"
#include "gw_queue.h"
#include "proto.h"

#define GW_MAX_HEADERS    100                // request header fields kept (the prescan allows 100)
#define GW_RID_MAX        PROTO_RID_MAX      // request id bytes
#define GW_EDGE_USER_MAX  128                // bytes of an authenticated user id (X-User-Id)
#define GW_HOLD_MAX       (64 * 1024)        // request body held for a retry
#define GW_READ_CHUNK     16384              // bytes per read()
#define GW_READ_HEAD      2048               // ... the first read of a request's head
#define GW_HEAD_MAX       (8192 + 16384 + 8) // request line + header section + slack
#define GW_OUT_HIGH       (256 * 1024)       // pause the producer above this
#define GW_OUT_LOW        (64 * 1024)        // resume it below this
#define GW_ADMIN_BODY_MAX (1024 * 1024)      // SPEC §5
#define GW_ADDRS_MAX      4                  // addresses of a backend's name tried per attempt

typedef struct gw_actor gw_actor_t;
typedef struct gw_conn gw_conn_t;
typedef struct gw_req gw_req_t;
typedef struct gw_up gw_up_t;

typedef struct {
    uint32_t name;      // offset in the request's head copy
    uint16_t name_len;  // bytes
    uint8_t id;         // gw_hdr_t of the name
    uint32_t value;     // offset
    uint32_t value_len; // bytes
} gw_field_t;

typedef enum {
    GW_PHASE_DECIDING,   // waiting for a lease
    GW_PHASE_FORWARDING, // with the proxy, no response byte sent yet
    GW_PHASE_ADMIN,      // with the admin listener
    GW_PHASE_RESPONDING, // the response head is out; its body follows
    GW_PHASE_TUNNEL,     // after a 101: bytes relayed both ways (gw_tunnel)
    GW_PHASE_DONE,       // response complete (or failed)
} gw_phase_t;

struct gw_req {
    // conn: the connection's facts and the parsed head
    gw_conn_t *conn;                   // the client connection (opaque outside gw_conn.c)
    gw_actor_t *gw;                    // the actor
    const char *client_ip;             // peer address text (the connection's)
    bool trusted;                      // peer in GATEWAY_TRUSTED_PROXIES
    bool tls;                          // came over the HTTPS listener
    gw_phase_t phase;                  // where it is (written by gw_conn.c only)
    gw_buf_t head;                     // copy of the request head bytes
    gw_field_t fields[GW_MAX_HEADERS]; // header fields (offsets into head)
    uint32_t nfields;                  // how many
    const char *method;                // NUL-terminated inside head
    const char *target;                // request-target as received, NUL-terminated
    uint32_t target_len;               // bytes
    const char *path;                  // origin-form path and query (absolute form: the rest)
    uint32_t path_len;                 // bytes (0: "/")
    const char *authority;             // Host to send upstream: Host field or the URI's authority
    uint32_t authority_len;            // bytes (0: none was sent)
    int minor;                         // HTTP/1.minor
    bool keep_alive;                   // the client wants the connection kept
    bool chunked;                      // request body is chunked
    uint64_t content_length;           // request body length when not chunked
    http_parser parser;                // the head, then the body's framing (gw_conn.c)
    gw_chunk_t chunk;                  // strict chunked framing check (gw_conn.c)
    bool has_body;                     // a body follows the head
    bool expect_continue;              // Expect: 100-continue
    bool idempotent;                   // GET HEAD OPTIONS PUT DELETE TRACE
    bool head_request;                 // HEAD: the response has no body
    char host[PROTO_DECIDE_HOST_MAX + 1];     // routing host: lower-case, port stripped
    char region[PROTO_DECIDE_REGION_MAX + 1]; // requested region
    char rid[GW_RID_MAX + 1];                 // request id
    bool client_sent_corr;                    // answer X-Correlation-Id too
    uint64_t start_us;                        // head complete (monotonic)
    uint64_t body_in;                         // decoded body bytes received from the client
    bool body_done;                           // the client's body is complete
    bool must_close;                          // the connection closes after this response
    bool close_decided;                       // gw_req_should_close has answered
    int status;                               // status sent to the client (0 before)
    uint64_t bytes_out;                       // response body bytes sent to the client
    gw_waiter_t waiter;                       // decision wait
    gw_lease_t *lease;                        // the decision
    bool stale;                               // decision served stale

    // edge: the route's policy (gw_edge)
    gw_buf_t resp_extra;             // response fields the edge sets (CORS, RateLimit-*)
    char user[GW_EDGE_USER_MAX + 1]; // the authenticated user, "" when none
    gw_authp_waiter_t authp_wait;    // an authProvider check waited on (gw_authp)

    // proxy: attempts and the upstream side
    gw_qwait_t qwait;                            // the route's backpressure place (gw_queue)
    gw_dns_waiter_t dns;                         // waiting for a backend's name (gw_dns)
    struct sockaddr_storage addrs[GW_ADDRS_MAX]; // the name's addresses (this attempt)
    uint8_t naddrs;                              // how many (0: a literal address)
    uint8_t addr_i;                              // the one being tried
    int cand;                                    // candidate of the current attempt (-1 none)
    uint64_t tried;                              // candidates tried (bit mask)
    uint32_t attempts;                           // attempts made
    gw_up_t *up;                                 // current upstream connection
    gw_buf_t hold;                               // body bytes sent so far, for a retry
    bool hold_ok;                                // hold has every body byte sent so far
    bool body_started;                           // some body byte went upstream
    bool websocket;                              // a WebSocket upgrade (tunnelled after a 101)
    uint64_t upstream_us;                        // when the response head came
    char backend[PROTO_REQINFO_BACKEND_MAX + 1]; // backend id that answered

    // admin: the admin listener's request
    gw_buf_t admin_body;      // the whole request body (read by gw_conn.c)
    uint64_t admin_id;        // bus request in flight (0 none)
    uint64_t ready_ids[2];    // /ready: pings in flight to router, balancer
    int ready_pending;        // how many are still out
    bool ready_up[2];         // which answered (and, for the router, has a balancer)
    struct gw_stream *stream; // GET /api/v1/events: its stream (gw_events), or NULL
};

//  The edge admitted the request (gw_edge): on to chat or the backends.
void gw_req_admitted(gw_req_t *req);

//  Value of the first request header with this id (see gw_http), or NULL;
//  *len set.
const char *gw_req_header(const gw_req_t *req, gw_hdr_t id, size_t *len);

//  Queue bytes for the client and write what the socket takes now.
void gw_req_send(gw_req_t *req, const void *data, size_t len);

//  Gather what gw_req_send queues until uncork (one write per response
//  instead of one per piece).
void gw_req_cork(gw_req_t *req);
void gw_req_uncork(gw_req_t *req);

//  True when the client's output is above the high-water mark.
bool gw_req_out_full(const gw_req_t *req);

//  For a body spliced to the client (gw_splice): the client's socket (-1 when
//  it is gone), whether everything queued for it is written, a wait for it to
//  be writable (gw_proxy_client_drained follows), and a failed write (the
//  connection then closes from the loop).
int gw_req_client_fd(const gw_req_t *req);
bool gw_req_out_empty(const gw_req_t *req);
void gw_req_wait_writable(gw_req_t *req);
void gw_req_client_failed(gw_req_t *req);

//  Whether the connection closes after this response. Decided once, when a
//  response head is written (so the head and what happens agree): the
//  client asked for it, HTTP/1.0 without keep-alive, must_close, the body
//  not yet read whole, or the gateway draining. Later calls repeat it.
bool gw_req_should_close(gw_req_t *req);

//  The proxy wrote a response head with this status: the request responds.
void gw_req_responding(gw_req_t *req, int status);

//  Answer with a response made by the proxy (text/plain unless ctype says
//  otherwise), then finish. extra: more header lines ("Name: v\r\n"...) or
//  NULL. The status line's reason comes from http-parser.
void gw_req_respond(
    gw_req_t *req, int status, const char *ctype, const char *body, size_t len, const char *extra);

//  Answer with a string body (a literal, or NUL-terminated).
#define gw_req_respond_text(req, status, text)                                                     \
    gw_req_respond(req, status, NULL, text, strlen(text), NULL)

//  The response has been queued whole: report it, then serve the next
//  pipelined request, wait for one, or close. The request is freed.
void gw_req_finish(gw_req_t *req);

//  Close the connection now (an error after the response began). The
//  request is freed.
void gw_req_abort(gw_req_t *req);

//  The backend switched protocols (101, its head already sent with
//  gw_req_send): the connection becomes a tunnel to backend_fd (ownership
//  taken) until either side closes; pending: bytes read from the backend
//  after its head (copied). The request is reported when the tunnel closes.
//  Over TLS the tunnel reads and writes the client through the connection's
//  SSL, which the connection keeps (and frees after the tunnel).
void gw_req_tunnel(gw_req_t *req, int backend_fd, const void *pending, size_t len);

//  A chat session takes the connection (gw_chat): head (the 101) is written
//  at once, the connection's own watchers stop and the session holds it
//  from now on. Returns the socket (the session's to close: gw_ws), with
//  the bytes the client sent after its head in *pending (decrypted; valid
//  until the connection closes), or -1 when the 101 could not be written
//  (the connection then closes from the loop; the session must not be
//  kept). *ssl: the connection's TLS session over the HTTPS listener, else
//  NULL; it goes with the socket (the session shuts it down and frees it
//  when it closes the socket; gw_chat_release with keep_fd gives both back).
//  It may hold decrypted bytes already (SSL_has_pending).
typedef struct gw_chat_session gw_chat_session_t;
struct ssl_st;
int gw_req_chat(gw_req_t *req,
                const void *head,
                size_t len,
                gw_chat_session_t *session,
                const void **pending,
                size_t *pending_len,
                struct ssl_st **ssl);

//  The session has taken the pending bytes: the connection's buffers go
//  (an idle chat session keeps no read or write buffer of its own here).
void gw_req_chat_started(gw_req_t *req);

//  The chat session is over: gw_chat_release is called, the connection
//  closes (lingering while the client still sends), the request is reported
//  (as 101). client_sending: the client has not said it is done (no close
//  frame from it, no EOF: a close we started for its message, an idle
//  close), so the connection lingers even when nothing is waiting at this
//  instant (the rest of a message over 1 MiB may be on its way).
void gw_req_chat_done(gw_req_t *req, bool client_sending);

//  Move request body bytes from the client to the upstream while it has
//  room (called when the upstream connects or drains).
void gw_req_pump_body(gw_req_t *req);

//  The gateway's health document (SPEC §10) appended to out.
void gw_req_health_json(const gw_req_t *req, gw_buf_t *out);

//  Reason phrase of a status code (http-parser's table; "" when unknown).
const char *gw_req_reason(int status);

#endif
