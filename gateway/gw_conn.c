/*  gw_conn - client connections: heads, bodies, pipelining, keep-alive.

    A connection reads into its input buffer. With no request in progress,
    gw_prescan checks the head strictly (SPEC §3); a valid head becomes a
    gw_req and its bytes are copied out of the buffer. Bytes after the head
    stay in the buffer: the body is fed through gw_chunk (strict chunked
    framing) and http-parser (which decodes it) only when the upstream has
    room, so a slow backend slows the client down instead of filling memory,
    and pipelined requests wait their turn. One request is served at a time;
    responses therefore leave in order.

    This file implements the request seam of gw_req.h: the proxy and the
    admin listener write to the client, finish and abort only through it,
    and whether the connection closes after a response is decided in one
    place (gw_req_should_close), when the head is written.

    A connection that closes while the client may still be sending (a 413
    or 400 before the body was read, an early response) is closed the way
    nginx's lingering close does it: our side is shut down for writing, then
    what the client still sends is read and dropped until it closes or
    S_LINGER_MS passes; closing at once would make the kernel answer the
    unread bytes with a reset, which can destroy the response in flight.

    Over the HTTPS listener the connection's SSL goes wherever its socket
    goes: a tunnel borrows both (the connection frees them after it), a chat
    session takes both (gw_ws ends them together: close_notify, SSL_free,
    close) and gives both back for a lingering close. Decrypted bytes read
    before a hand-over travel as the pending bytes; those OpenSSL still
    holds (SSL_has_pending) are the new holder's to read first.
*/
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "gw_actor.h"
#include "gw_admin.h"
#include "gw_chunk.h"
#include "gw_chat.h"
#include "gw_edge.h"
#include "gw_conn.h"
#include "gw_head.h"
#include "gw_prescan.h"
#include "gw_proxy.h"
#include "gw_tls.h"
#include "gw_tunnel.h"
#include "proto_log.h"
#include "proto_util.h"

#define S_LINGER_MS 5000 // longest lingering close (nginx: lingering_timeout 5s)

// A tunnel silent both ways for this many GATEWAY_IDLE_TIMEOUTs is closed.
#define S_TUNNEL_IDLE 60

struct gw_conn {
    gw_actor_t *gw;                   // the actor
    gw_req_t *req;                    // the request being served, or NULL
    gw_tunnel_t *tunnel;              // after a 101: the socket is relayed (gw_tunnel)
    gw_chat_session_t *chat;          // after a chat 101: the socket is the session's (gw_chat)
    gw_conn_t *prev;                  // all connections
    gw_conn_t *next;                  // ...
    uint64_t served;                  // requests served on this connection
    ev_io rio;                        // readable
    ev_io wio;                        // writable
    ev_timer timer;                   // header, idle or lingering timeout
    ev_timer reap;                    // closes a broken connection from the loop
    gw_buf_t in;                      // bytes from the client not yet used
    gw_buf_t out;                     // bytes to the client not yet written
    SSL *ssl;                         // HTTPS listener: the TLS session (else NULL); goes with fd
    int fd;                           // client socket
    bool admin;                       // accepted on the admin listener
    bool trusted;                     // peer in GATEWAY_TRUSTED_PROXIES
    bool broken;                      // a write failed: the client is gone
    bool corked;                      // gather output; written at uncork or finish
    bool reading;                     // rio started
    bool closing;                     // close once out is written
    bool lingering;                   // shut down for writing; input is drained
    bool unread;                      // the client may still be sending what we did not read
    bool eof;                         // the client half-closed
    bool closed;                      // s_close ran; the record waits for busy to end
    uint8_t busy;                     // s_process is on the stack: the record is not freed
    char client_ip[INET6_ADDRSTRLEN]; // peer address text
};

static void s_process(gw_conn_t *conn);
static void s_close(gw_conn_t *conn);

size_t
gw_conn_size(void)
{
    return sizeof(gw_conn_t);
}

const char *
gw_req_reason(int status)
{
    const char *r = http_status_str((enum http_status) status);
    return strcmp(r, "<unknown>") == 0 ? "" : r;
}

static gw_req_t *
s_req_new(gw_conn_t *conn)
{
    gw_req_t *req = proto_xcalloc(1, sizeof *req);
    gw_actor_req_started(conn->gw);
    req->conn = conn;
    req->gw = conn->gw;
    req->client_ip = conn->client_ip;
    req->trusted = conn->trusted;
    req->tls = conn->ssl != NULL;
    req->cand = -1;
    req->start_us = proto_mono_us();
    conn->req = req;
    return req;
}

//  A request record for a response made before any head was understood
//  (408, 400, 414, 431): it gets a request id and closes the connection.
static gw_req_t *
s_bare_req(gw_conn_t *conn)
{
    gw_req_t *req = s_req_new(conn);
    req->method = "-";
    req->target = "-";
    req->must_close = true;
    gw_head_uuid(gw_actor_random(conn->gw), gw_actor_random(conn->gw), req->rid);
    return req;
}

// --------------------------------------------------------------------------
// Output

bool
gw_req_out_full(const gw_req_t *req)
{
    return gw_buf_len(&req->conn->out) > GW_OUT_HIGH;
}

static void
s_want_write(gw_conn_t *conn)
{
    if (gw_buf_len(&conn->out) > 0)
        ev_io_start(conn->gw->loop, &conn->wio);
    else
        ev_io_stop(conn->gw->loop, &conn->wio);
}

//  TLS: what gw_buf_write and gw_buf_read do on a plain socket.
static ssize_t
s_tls_write(gw_conn_t *conn)
{
    bool wants_read; // the connection reads all the time: nothing more to arm
    ssize_t n =
        gw_tls_write(conn->ssl, gw_buf_head(&conn->out), gw_buf_len(&conn->out), &wants_read);
    if (n > 0)
        gw_buf_consume(&conn->out, (size_t) n);
    return n;
}

static ssize_t
s_tls_read(gw_conn_t *conn, size_t max)
{
    char *at = gw_buf_reserve(&conn->in, max);
    bool wants_write;
    ssize_t n = gw_tls_read(conn->ssl, at, max, &wants_write);
    if (n > 0) {
        gw_buf_commit(&conn->in, (size_t) n);
        // decrypted bytes left in OpenSSL's buffer: the socket will not say so
        if (SSL_has_pending(conn->ssl) && conn->reading)
            ev_feed_event(conn->gw->loop, &conn->rio, EV_READ);
    } else if (n < 0 && wants_write) {
        ev_io_start(conn->gw->loop, &conn->wio); // s_on_writable reads again
    }
    return n;
}

//  close_notify, once and best effort (what the socket takes now).
static void
s_tls_notify(gw_conn_t *conn)
{
    if (conn->ssl && !(SSL_get_shutdown(conn->ssl) & SSL_SENT_SHUTDOWN)) {
        (void) SSL_shutdown(conn->ssl);
        ERR_clear_error();
    }
}

static void
s_on_reap(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    s_close(w->data);
}

//  The client is gone: drop what is queued and close from the loop, so that
//  no caller up the stack is left holding a freed connection.
static void
s_break(gw_conn_t *conn)
{
    conn->broken = true;
    gw_buf_reset(&conn->out);
    ev_io_stop(conn->gw->loop, &conn->wio);
    if (!ev_is_active(&conn->reap))
        ev_timer_start(conn->gw->loop, &conn->reap);
}

static void
s_arm_timer(gw_conn_t *conn, int64_t ms)
{
    if (conn->broken)
        return;
    ev_timer_stop(conn->gw->loop, &conn->timer);
    ev_timer_set(&conn->timer, (double) ms / 1000.0, 0.);
    ev_timer_start(conn->gw->loop, &conn->timer);
}

//  Everything is written and the connection must close: at once when the
//  client has nothing more to send, else after a lingering close.
static void
s_close_written(gw_conn_t *conn)
{
    bool unread = conn->unread || gw_buf_len(&conn->in) > 0;
    while (!conn->eof) {
        char drop[4096];
        ssize_t n = recv(conn->fd, drop, sizeof drop, MSG_DONTWAIT);
        if (n > 0)
            unread = true;
        else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            conn->eof = true; // the client closed (or broke): nothing left to reset
        else
            break; // nothing waiting now; more may come
    }
    if (conn->eof || !unread) {
        s_close(conn);
        return;
    }
    // lingering close: our side is done; drain theirs until EOF or the bound
    conn->lingering = true;
    s_tls_notify(conn);
    gw_buf_reset(&conn->in);
    shutdown(conn->fd, SHUT_WR);
    ev_io_stop(conn->gw->loop, &conn->wio);
    if (!conn->reading) {
        ev_io_start(conn->gw->loop, &conn->rio);
        conn->reading = true;
    }
    s_arm_timer(conn, S_LINGER_MS);
}

//  Write what we can. Returns -1 if the connection was closed or broke.
static int
s_flush(gw_conn_t *conn)
{
    if (conn->broken)
        return -1;
    while (gw_buf_len(&conn->out) > 0) {
        ssize_t n = conn->ssl ? s_tls_write(conn) : gw_buf_write(&conn->out, conn->fd);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            s_break(conn);
            return -1;
        }
    }
    s_want_write(conn);
    // a connection to close goes once its last response is written and no
    // request is being finished (gw_req_finish flushes again after it)
    if (gw_buf_len(&conn->out) == 0 && conn->closing && conn->req == NULL && !conn->lingering) {
        s_close_written(conn);
        return -1;
    }
    // idle between requests, everything written and nothing read ahead: the
    // buffers go back to the allocator, so an idle keep-alive connection
    // costs its record only (as nginx frees its buffers on keep-alive)
    if (conn->req == NULL && conn->tunnel == NULL && gw_buf_len(&conn->out) == 0
        && gw_buf_len(&conn->in) == 0) {
        gw_buf_free(&conn->out);
        gw_buf_free(&conn->in);
    }
    return 0;
}

void
gw_req_send(gw_req_t *req, const void *data, size_t len)
{
    gw_conn_t *conn = req->conn;
    if (conn->broken)
        return;
    gw_buf_append(&conn->out, data, len);
    if (!conn->corked && !ev_is_active(&conn->wio))
        (void) s_flush(conn); // write at once; the watcher takes the rest
}

void
gw_req_cork(gw_req_t *req)
{
    req->conn->corked = true;
}

void
gw_req_uncork(gw_req_t *req)
{
    gw_conn_t *conn = req->conn;
    conn->corked = false;
    if (!ev_is_active(&conn->wio))
        (void) s_flush(conn);
}

int
gw_req_client_fd(const gw_req_t *req)
{
    return req->conn->broken || req->tls ? -1 : req->conn->fd; // no splice under TLS
}

bool
gw_req_out_empty(const gw_req_t *req)
{
    return gw_buf_len(&req->conn->out) == 0;
}

void
gw_req_wait_writable(gw_req_t *req)
{
    ev_io_start(req->gw->loop, &req->conn->wio);
}

void
gw_req_client_failed(gw_req_t *req)
{
    s_break(req->conn);
}

static void
s_on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) revents;
    gw_conn_t *conn = w->data;
    if (conn->ssl && conn->reading)
        ev_feed_event(loop, &conn->rio, EV_READ); // a read that wanted to write goes on
    bool was_full = gw_buf_len(&conn->out) > GW_OUT_HIGH;
    if (s_flush(conn) != 0)
        return;
    gw_req_t *req = conn->req;
    if (req && gw_buf_len(&conn->out) < GW_OUT_LOW
        && (was_full || req->phase == GW_PHASE_RESPONDING))
        gw_proxy_client_drained(req);
}

// --------------------------------------------------------------------------
// Timers

static void
s_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    gw_conn_t *conn = w->data;
    if (conn->lingering) {
        s_close(conn); // the client kept sending (or kept the socket) too long
        return;
    }
    gw_req_t *req = conn->req;
    if (req != NULL) {
        if (req->body_done || req->phase == GW_PHASE_DONE)
            return; // the request's own deadlines apply
        if (!conn->reading) {
            s_arm_timer(conn, conn->gw->cfg->body_timeout_ms); // we paused it, not the client
            return;
        }
        // GATEWAY_BODY_TIMEOUT: the client stopped sending its body
        log_info("request body timeout", LOG_S("request_id", req->rid),
                 LOG_U("body_bytes", req->body_in));
        if (req->phase == GW_PHASE_RESPONDING) {
            gw_req_abort(req);
            return;
        }
        gw_proxy_abort(req); // abandoned: not the backend's failure
        gw_req_respond_text(req, 408, "Request Timeout");
        return;
    }
    if (gw_buf_len(&conn->in) == 0 && conn->served > 0) {
        s_close(conn); // idle keep-alive: closed silently
        return;
    }
    // headers not complete in time
    gw_req_respond_text(s_bare_req(conn), 408, "Request Timeout");
}

// --------------------------------------------------------------------------
// Lifecycle

static void
s_start_reading(gw_conn_t *conn)
{
    if (!conn->reading && !conn->eof) {
        ev_io_start(conn->gw->loop, &conn->rio);
        conn->reading = true;
        if (conn->ssl && SSL_has_pending(conn->ssl)) // bytes decrypted before the pause
            ev_feed_event(conn->gw->loop, &conn->rio, EV_READ);
    }
}

static void
s_stop_reading(gw_conn_t *conn)
{
    if (conn->reading) {
        ev_io_stop(conn->gw->loop, &conn->rio);
        conn->reading = false;
    }
}

static void
s_req_free(gw_req_t **req_p)
{
    gw_req_t *req = *req_p;
    if (req == NULL)
        return;
    gw_lease_unref(&req->lease);
    gw_buf_free(&req->head);
    gw_buf_free(&req->hold);
    gw_buf_free(&req->admin_body);
    gw_buf_free(&req->resp_extra);
    gw_actor_req_ended(req->gw);
    free(req);
    *req_p = NULL;
}

//  Report one finished (or abandoned) request: access log and request.done.
static void
s_report(gw_conn_t *conn, gw_req_t *req)
{
    gw_actor_t *gw = conn->gw;
    uint64_t now = proto_mono_us();
    uint64_t dur = now - req->start_us;
    char path[PROTO_REQINFO_PATH_MAX + 1];
    size_t plen = req->target_len < sizeof path - 1 ? req->target_len : sizeof path - 1;
    memcpy(path, req->target, plen);
    path[plen] = '\0';
    char redacted[PROTO_REQINFO_PATH_MAX + 1];
    proto_log_redact_query(path, redacted, sizeof redacted);
    const char *vhost = req->lease && req->lease->status == GW_LEASE_OK ? req->lease->vhost : "";
    if (conn->admin) {
        gw->admin_requests++;
        return; // the admin listener is not traffic
    }
    gw->requests++;
    if (req->stale)
        gw->stale_served++;
    proto_reqinfo_t info = {
        .rid = req->rid,
        .method = req->method,
        .vhost = vhost,
        .route = req->lease ? req->lease->route : "",
        .path = redacted,
        .status = (uint16_t) req->status,
        .bytes = req->bytes_out,
        .duration_us = dur,
        .backend = req->backend,
        .upstream_us = req->upstream_us ? req->upstream_us - req->start_us : 0,
        .region = req->region,
        .client = conn->client_ip,
        .attempts = (uint8_t) (req->attempts > 255 ? 255 : req->attempts),
    };
    gw_report_add(gw->report, &info);
    if (!gw->cfg->access_log || PROTO_LOG_INFO > proto_log_level_current)
        return;
    // over HTTPS: the protocol version and the name the client asked for
    // (a chat session's SSL is its own until it ends: "-" then)
    const char *sni = conn->ssl ? SSL_get_servername(conn->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
    const proto_log_field_t fields[] = {
        LOG_S("request_id", req->rid),
        LOG_S("method", req->method),
        LOG_S("host", req->host),
        LOG_S("path", redacted),
        LOG_I("status", req->status),
        LOG_U("bytes", req->bytes_out),
        LOG_F("duration_ms", (double) dur / 1000.0),
        LOG_S("upstream", req->backend),
        LOG_S("region", req->region),
        LOG_S("client_ip", conn->client_ip),
        LOG_S("vhost", vhost),
        LOG_B("stale", req->stale),
        LOG_S("tls", conn->ssl ? SSL_get_version(conn->ssl) : "-"),
        LOG_S("sni", sni ? sni : ""),
    };
    proto_log_emit(PROTO_LOG_INFO, "access", fields,
                   PROTO_ARRAY_SIZE(fields) - (req->tls ? 0 : 2)); // plain HTTP: no TLS fields
}

//  The record of a closed connection goes back to the slab.
static void
s_release(gw_conn_t *conn)
{
    gw_actor_t *gw = conn->gw;
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        gw->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    gw->nconns--;
    proto_slab_free(gw->conn_slab, conn);
    if (gw->draining)
        gw_actor_conn_gone(gw);
}

static void
s_close(gw_conn_t *conn)
{
    gw_actor_t *gw = conn->gw;
    if (conn->closed)
        return;
    gw_actor_conn_closed(gw);
    gw_req_t *req = conn->req;
    if (conn->tunnel) {
        req->bytes_out += gw_tunnel_bytes(conn->tunnel, GW_TUNNEL_CLIENT);
        gw_tunnel_destroy(&conn->tunnel); // the request is reported below, as 101
    }
    if (conn->chat) {
        req->bytes_out += gw_chat_release(conn->chat, false); // closes the socket, ends its SSL
        conn->chat = NULL;
        conn->fd = -1;
        conn->ssl = NULL;
    }
    if (req) {
        gw_leases_cancel(gw->leases, &req->waiter);
        gw_edge_cancel(req);
        gw_admin_cancel(req);
        gw_proxy_abort(req);
        if (req->phase != GW_PHASE_DONE) {
            if (req->status == 0)
                req->status = 499; // the client went away first
            s_report(conn, req);
        }
        s_req_free(&conn->req);
    }
    ev_io_stop(gw->loop, &conn->rio);
    ev_io_stop(gw->loop, &conn->wio);
    ev_timer_stop(gw->loop, &conn->timer);
    ev_timer_stop(gw->loop, &conn->reap);
    // close_notify before every close of a working TLS connection: without
    // it OpenSSL clients see an unexpected EOF and drop the session (no
    // resumption), as the bench's s_time -reuse showed
    if (conn->ssl && !conn->broken && SSL_is_init_finished(conn->ssl))
        s_tls_notify(conn);
    SSL_free(conn->ssl);
    conn->ssl = NULL;
    if (conn->fd >= 0)
        close(conn->fd);
    conn->fd = -1;
    gw_buf_free(&conn->in);
    gw_buf_free(&conn->out);
    conn->closed = true;
    if (conn->busy > 0)
        return; // s_process frees the record when it unwinds (s_release)
    s_release(conn);
}

void
gw_req_abort(gw_req_t *req)
{
    s_close(req->conn);
}

static void
s_on_tunnel_done(gw_tunnel_t *tunnel, const char *reason, void *arg)
{
    gw_conn_t *conn = arg;
    log_debug("tunnel closed", LOG_S("request_id", conn->req->rid), LOG_S("reason", reason),
              LOG_U("bytes_in", gw_tunnel_bytes(tunnel, GW_TUNNEL_BACKEND)),
              LOG_U("bytes_out", gw_tunnel_bytes(tunnel, GW_TUNNEL_CLIENT)));
    s_close(conn);
}

//  The connection's own watchers and timeouts stop: from now on the tunnel
//  reads and writes its socket, and its idle bound is the only one (a
//  WebSocket may be silent far longer than an HTTP keep-alive). What the
//  client sent after its head, and what is still queued for it (the 101
//  head), go first.
int
gw_req_chat(gw_req_t *req,
            const void *head,
            size_t len,
            gw_chat_session_t *session,
            const void **pending,
            size_t *pending_len,
            SSL **ssl)
{
    gw_conn_t *conn = req->conn;
    gw_actor_t *gw = conn->gw;
    conn->corked = false;
    if (conn->broken)
        return -1; // the client is gone: the connection closes from the loop
    //  The 101 goes out now and whole: nothing else is queued before it on a
    //  connection whose request is being answered, and a fresh socket takes
    //  a few hundred bytes; anything else is a client that stopped reading.
    ssize_t n = -1;
    if (gw_buf_len(&conn->out) == 0 && conn->ssl == NULL) {
        n = write(conn->fd, head, len);
    } else if (gw_buf_len(&conn->out) == 0) {
        ERR_clear_error();
        n = SSL_write(conn->ssl, head, (int) len); // a few hundred bytes: one record
        ERR_clear_error();
    }
    if (n != (ssize_t) len) {
        s_break(conn);
        return -1;
    }
    req->status = 101;
    req->phase = GW_PHASE_TUNNEL;
    s_stop_reading(conn);
    ev_io_stop(gw->loop, &conn->wio);
    ev_timer_stop(gw->loop, &conn->timer);
    conn->chat = session;
    *pending = gw_buf_len(&conn->in) ? gw_buf_head(&conn->in) : NULL;
    *pending_len = gw_buf_len(&conn->in);
    *ssl = conn->ssl; // with the socket: the session's to end (conn->ssl stays as its alias)
    return conn->fd;
}

void
gw_req_chat_started(gw_req_t *req)
{
    gw_conn_t *conn = req->conn;
    gw_buf_free(&conn->in); // what it held is the session's now (gw_ws copied it)
    gw_buf_free(&conn->out);
}

void
gw_req_chat_done(gw_req_t *req, bool client_sending)
{
    gw_conn_t *conn = req->conn;
    if (conn->chat == NULL || conn->closed) {
        s_close(conn);
        return;
    }
    //  The client may still be sending (the rest of a message over 1 MiB
    //  after our 1009): closing now would make the kernel answer it with a
    //  reset, which can reach the client before it has read our close frame.
    //  The socket stays ours and closes after a lingering close. What is in
    //  the socket now is no measure of it: a TLS client's next record may
    //  simply not have arrived yet.
    conn->unread = conn->unread || client_sending;
    req->bytes_out += gw_chat_release(conn->chat, true); // the socket and its SSL are ours again
    conn->chat = NULL;
    s_tls_notify(conn); // after the WebSocket close, the TLS one
    s_close_written(conn);
}

void
gw_req_tunnel(gw_req_t *req, int backend_fd, const void *pending, size_t len)
{
    gw_conn_t *conn = req->conn;
    gw_actor_t *gw = conn->gw;
    conn->corked = false;
    if (conn->broken) {
        close(backend_fd); // the client is gone: the connection closes from the loop
        return;
    }
    req->phase = GW_PHASE_TUNNEL;
    s_stop_reading(conn);
    ev_io_stop(gw->loop, &conn->wio);
    ev_timer_stop(gw->loop, &conn->timer);
    // half-closed, it waits for the other side as long as a keep-alive client
    double fin = (double) gw->cfg->idle_timeout_ms / 1000.0;
    conn->tunnel = gw_tunnel_new(gw->loop, conn->fd, conn->ssl, backend_fd, fin * S_TUNNEL_IDLE,
                                 fin, &gw->tunnels, s_on_tunnel_done, conn);
    if (gw_buf_len(&conn->out) > 0)
        gw_tunnel_queue(conn->tunnel, GW_TUNNEL_CLIENT, gw_buf_head(&conn->out),
                        gw_buf_len(&conn->out));
    gw_tunnel_queue(conn->tunnel, GW_TUNNEL_CLIENT, pending, len);
    if (gw_buf_len(&conn->in) > 0)
        gw_tunnel_queue(conn->tunnel, GW_TUNNEL_BACKEND, gw_buf_head(&conn->in),
                        gw_buf_len(&conn->in));
    gw_buf_reset(&conn->out);
    gw_buf_reset(&conn->in);
    req->bytes_out = len;
    gw_tunnel_start(conn->tunnel);
}

//  A connection quiet for less than this when the drain begins is not cut:
//  its client may be sending a request right now, which a close would fail
//  (a client may retry only idempotent requests on a reused connection).
#define S_DRAIN_QUIET_MS 1000

void
gw_conn_drain(gw_actor_t *gw)
{
    gw_conn_t *conn = gw->conns;
    while (conn) {
        gw_conn_t *next = conn->next;
        // quiet: no request, nothing to write, no partial head read
        if (conn->req == NULL && gw_buf_len(&conn->out) == 0 && gw_buf_len(&conn->in) == 0
            && !conn->lingering) {
            // its timer runs from the last response (idle) or from accept
            int64_t armed_ms =
                conn->served > 0 ? gw->cfg->idle_timeout_ms : gw->cfg->header_timeout_ms;
            int64_t left_ms = 0, quiet_ms = S_DRAIN_QUIET_MS;
            if (ev_is_active(&conn->timer)) {
                left_ms = (int64_t) (ev_timer_remaining(gw->loop, &conn->timer) * 1000.0);
                quiet_ms = armed_ms - left_ms;
            }
            // a request that arrived but is not read yet is served (Connection: close)
            char peek;
            bool waiting = recv(conn->fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT) > 0
                           || (conn->ssl && SSL_has_pending(conn->ssl));
            if (!waiting && quiet_ms >= S_DRAIN_QUIET_MS)
                s_close(conn);
            else if (!waiting && conn->served > 0 && S_DRAIN_QUIET_MS - quiet_ms < left_ms)
                s_arm_timer(conn, S_DRAIN_QUIET_MS - quiet_ms); // keep-alive: closed when quiet
            // else: connected, the request not yet read (or a TLS handshake):
            // served with Connection: close, within the header timeout
        }
        conn = next;
    }
}

void
gw_conn_close_all(gw_actor_t *gw)
{
    while (gw->conns) {
        if (gw->conns->closed)
            s_release(gw->conns); // closed under s_process (never left so: defensive)
        else
            s_close(gw->conns);
    }
}

// --------------------------------------------------------------------------
// Proxy-made responses

bool
gw_req_should_close(gw_req_t *req)
{
    if (!req->close_decided) {
        req->close_decided = true;
        req->must_close = req->must_close || !req->keep_alive || !req->body_done
                          || req->conn->closing || req->gw->draining;
    }
    return req->must_close;
}

void
gw_req_responding(gw_req_t *req, int status)
{
    req->status = status;
    req->phase = GW_PHASE_RESPONDING;
}

void
gw_req_respond(
    gw_req_t *req, int status, const char *ctype, const char *body, size_t len, const char *extra)
{
    if (status == 400 || status == 408 || status == 413 || status == 414 || status == 431)
        req->must_close = true; // the rest of what the client sends is not understood
    bool close = gw_req_should_close(req);
    gw_buf_t head = {0};
    gw_buf_printf(&head, "HTTP/1.1 %d %s\r\n", status, gw_req_reason(status));
    if (len > 0 || ctype)
        gw_buf_printf(&head, "Content-Type: %s\r\n", ctype ? ctype : "text/plain");
    gw_buf_printf(&head, "Content-Length: %zu\r\n", len);
    if (req->rid[0]) {
        gw_buf_printf(&head, "X-Request-Id: %s\r\n", req->rid);
        if (req->client_sent_corr)
            gw_buf_printf(&head, "X-Correlation-Id: %s\r\n", req->rid);
    }
    if (close)
        gw_buf_puts(&head, "Connection: close\r\n");
    else if (req->minor == 0)
        gw_buf_puts(&head, "Connection: keep-alive\r\n");
    if (extra)
        gw_buf_puts(&head, extra);
    gw_edge_response(req, NULL, &head);
    gw_buf_puts(&head, "\r\n");
    if (!req->head_request)
        gw_buf_append(&head, body, len);
    gw_req_responding(req, status);
    req->bytes_out += len;
    gw_req_send(req, gw_buf_head(&head), gw_buf_len(&head));
    gw_buf_free(&head);
    gw_req_finish(req);
}

// --------------------------------------------------------------------------
// Requests

void
gw_req_health_json(const gw_req_t *req, gw_buf_t *out)
{
    gw_actor_t *gw = req->gw;
    char ts[40];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    char region[160] = "";
    proto_log_json_string(region, sizeof region, gw->cfg->common.region,
                          strlen(gw->cfg->common.region));
    gw_buf_printf(
        out,
        "{\"status\":\"%s\",\"timestamp\":\"%s.%03ldZ\",\"uptime\":%.3f,\"service\":\"gateway\","
        "\"region\":%s}",
        gw->draining ? "draining" : "healthy", ts, now.tv_nsec / 1000000,
        (double) (proto_mono_us() - gw->start_us) / 1e6, region);
}

static void
s_on_decision(gw_req_t *req, gw_lease_t *lease, bool stale)
{
    req->lease = lease;
    req->stale = stale;
    if (lease == NULL) {
        gw_req_respond(req, 503, NULL, PROTO_LIT("Service Unavailable"), "Retry-After: 1\r\n");
        return;
    }
    if (lease->status == GW_LEASE_NO_ROUTE) {
        gw_req_respond_text(req, 404, "Service Not Found");
        return;
    }
    if (gw_edge_admit(req) == GW_EDGE_PASS)
        gw_req_admitted(req);
}

void
gw_req_admitted(gw_req_t *req)
{
    gw_lease_t *lease = req->lease;
    if (gw_chat_wants(req)) { // a chat session needs no backend
        gw_chat_start(req->gw->chat, req);
        return;
    }
    if (lease->status == GW_LEASE_NO_BACKEND || lease->ncands == 0) {
        gw_req_respond_text(req, 503, "Service Unavailable - VM not responding");
        return;
    }
    if (!req->chunked && req->content_length > lease->max_body) {
        gw_req_respond_text(req, 413, "Payload Too Large");
        return;
    }
    if (req->expect_continue && req->has_body)
        gw_req_send(req, PROTO_LIT("HTTP/1.1 100 Continue\r\n\r\n"));
    req->phase = GW_PHASE_FORWARDING;
    gw_proxy_start(req);
}

//  Called by the lease cache when an ask this request waited on is answered.
void
gw_conn_on_lease(gw_waiter_t *waiter, gw_lease_t *lease, bool stale, void *arg)
{
    (void) arg;
    gw_req_t *req = (gw_req_t *) (void *) ((char *) waiter - offsetof(gw_req_t, waiter));
    s_on_decision(req, lease, stale);
}

static void
s_route(gw_conn_t *conn, gw_req_t *req)
{
    gw_actor_t *gw = conn->gw;
    const char *hp = gw->cfg->public_health_path;
    if (hp && *hp && req->path_len == strlen(hp) && memcmp(req->path, hp, req->path_len) == 0
        && (strcmp(req->method, "GET") == 0 || req->head_request)) {
        gw_buf_t body = {0};
        gw_req_health_json(req, &body);
        gw_req_respond(req, 200, "application/json", gw_buf_head(&body), gw_buf_len(&body), NULL);
        gw_buf_free(&body);
        return;
    }
    char region[PROTO_DECIDE_REGION_MAX + 1] = "";
    if (gw_head_region(req, gw->cfg->common.region, region, sizeof region) != 0) {
        gw_req_respond_text(req, 400, "Bad Request");
        return;
    }
    proto_strlcpy(req->region, region, sizeof req->region);
    req->phase = GW_PHASE_DECIDING;
    // SPEC §3: a request another region forwarded here (the hop marker, from
    // a trusted peer) is served by our own region, never forwarded again;
    // an untrusted peer's marker means nothing (gw_proxy drops it upstream)
    size_t hop_len = 0;
    bool local = req->trusted && gw_req_header(req, GW_H_X_SWITCHYARD_HOP, &hop_len) != NULL;
    bool pending, stale;
    gw_lease_t *lease = gw_leases_get(gw->leases, req->host, req->region, local, conn->client_ip,
                                      req->rid, &req->waiter, &pending, &stale);
    if (!pending)
        s_on_decision(req, lease, stale);
}

static int
s_on_body(http_parser *p, const char *at, size_t len)
{
    gw_conn_t *conn = p->data;
    gw_req_t *req = conn->req;
    req->body_in += len;
    if (conn->admin) {
        if (gw_buf_len(&req->admin_body) + len > GW_ADMIN_BODY_MAX)
            return -1; // over the admin limit: answered 413 by the caller
        gw_buf_append(&req->admin_body, at, len);
        return 0;
    }
    if (req->lease && req->body_in > req->lease->max_body)
        return -1;
    gw_proxy_body(req, at, len);
    return 0;
}

static int
s_on_message_complete(http_parser *p)
{
    gw_conn_t *conn = p->data;
    conn->req->body_done = true;
    http_parser_pause(p, 1); // pipelined bytes wait for their turn
    if (!conn->admin)
        gw_proxy_body_end(conn->req);
    return 0;
}

static const http_parser_settings s_settings = {
    .on_body = s_on_body,
    .on_message_complete = s_on_message_complete,
};

//  Feed up to max bytes of the input buffer to the parser (chunked bodies
//  through the strict framing check first: http-parser alone is lax).
//  Returns -1 when the framing is bad or the body over its limit (the
//  caller answers).
static int
s_feed(gw_conn_t *conn, size_t max)
{
    size_t len = gw_buf_len(&conn->in);
    if (len > max)
        len = max;
    if (len == 0)
        return 0;
    if (conn->req->chunked) {
        size_t used = 0;
        const char *reason = NULL;
        int rc = gw_chunk_feed(&conn->req->chunk, gw_buf_head(&conn->in), len, &used, &reason);
        if (rc == GW_CHUNK_ERROR) {
            log_debug("request refused", LOG_S("request_id", conn->req->rid),
                      LOG_S("client_ip", conn->client_ip), LOG_S("reason", reason));
            return -1;
        }
        len = used; // never past the message's end: pipelined bytes are the next head
        if (len == 0)
            return -1; // the check saw the end, the parser did not: never guess
    }
    size_t n = http_parser_execute(&conn->req->parser, &s_settings, gw_buf_head(&conn->in), len);
    gw_buf_consume(&conn->in, n);
    enum http_errno err = HTTP_PARSER_ERRNO(&conn->req->parser);
    if (err == HPE_PAUSED || err == HPE_OK)
        return 0;
    return -1;
}

void
gw_req_pump_body(gw_req_t *req)
{
    gw_conn_t *conn = req->conn;
    if (req->body_done)
        return;
    while (!req->body_done && gw_buf_len(&conn->in) > 0 && !gw_proxy_upstream_full(req)) {
        if (s_feed(conn, 65536) != 0) {
            if (req->phase != GW_PHASE_RESPONDING) {
                gw_proxy_abort(req);
                bool too_big = req->lease && req->body_in > req->lease->max_body;
                if (too_big)
                    gw_req_respond_text(req, 413, "Payload Too Large");
                else
                    gw_req_respond_text(req, 400, "Bad Request");
            } else {
                gw_req_abort(req);
            }
            return;
        }
    }
    if (!req->body_done && !conn->eof && gw_buf_len(&conn->in) < GW_HOLD_MAX)
        s_start_reading(conn);
}

static void
s_reject_head(gw_conn_t *conn, int status)
{
    gw_req_t *req = conn->req ? conn->req : s_bare_req(conn);
    gw_buf_reset(&conn->in);
    conn->unread = true;
    s_stop_reading(conn);
    const char *reason = gw_req_reason(status);
    gw_req_respond(req, status, NULL, reason, strlen(reason), NULL);
}

//  Admin bodies are read whole (at most 1 MiB) before the handler runs.
static void
s_pump_admin(gw_conn_t *conn)
{
    gw_req_t *req = conn->req;
    if (s_feed(conn, gw_buf_len(&conn->in)) != 0) {
        if (req->body_in > GW_ADMIN_BODY_MAX || gw_buf_len(&req->admin_body) >= GW_ADMIN_BODY_MAX)
            gw_admin_too_large(req);
        else
            gw_admin_bad_body(req);
        return;
    }
    if (req->body_done)
        gw_admin_handle(req);
    else
        s_start_reading(conn);
}

//  A complete, checked head is at the front of the input buffer.
static void
s_begin(gw_conn_t *conn, const gw_prescan_t *scan)
{
    gw_actor_t *gw = conn->gw;
    gw_req_t *req = s_req_new(conn);
    ev_timer_stop(gw->loop, &conn->timer);
    gw_buf_exact(&req->head, scan->head_len + 1); // kept as long as the request (a chat session's)
    gw_buf_append(&req->head, gw_buf_head(&conn->in), scan->head_len);
    gw_buf_append(&req->head, "", 1); // NUL after the head, for string helpers
    req->head.end--;                  // ...not counted in its length
    req->chunked = scan->chunked;
    req->content_length = scan->content_length;
    req->has_body = scan->has_body;
    req->body_done = !scan->has_body;
    int rc = gw_head_parse(req);
    gw_head_request_id(req, gw_actor_random(gw), gw_actor_random(gw));
    if (rc != 0) {
        log_debug("request refused", LOG_S("request_id", req->rid),
                  LOG_S("client_ip", conn->client_ip), LOG_S("reason", "request-target"));
        s_reject_head(conn, 400);
        return;
    }

    // the head goes through http-parser too, so it tracks the body framing
    http_parser_init(&req->parser, HTTP_REQUEST);
    req->parser.data = conn;
    gw_chunk_init(&req->chunk);
    size_t n =
        http_parser_execute(&req->parser, &s_settings, gw_buf_head(&conn->in), scan->head_len);
    enum http_errno err = HTTP_PARSER_ERRNO(&req->parser);
    if (n != scan->head_len && err != HPE_PAUSED) {
        s_reject_head(conn, 400);
        return;
    }
    gw_buf_consume(&conn->in, scan->head_len);
    conn->served++;
    if (!req->body_done)
        s_arm_timer(conn, gw->cfg->body_timeout_ms);

    if (conn->admin) {
        req->phase = GW_PHASE_ADMIN;
        if (req->content_length > GW_ADMIN_BODY_MAX) {
            gw_admin_too_large(req); // as soon as Content-Length says so
            return;
        }
        if (!req->body_done) {
            s_pump_admin(conn);
            return;
        }
        gw_admin_handle(req);
        return;
    }
    s_route(conn, req);
}

//  What the client sent is used: the body goes on, or the next head begins.
//  Anything called here may end the request and close the connection: the
//  record stays valid until s_process returns (busy), and nothing reads the
//  connection once it is closed.
static void s_process_input(gw_conn_t *conn);

static void
s_process(gw_conn_t *conn)
{
    conn->busy++;
    s_process_input(conn);
    conn->busy--;
    if (conn->closed && conn->busy == 0)
        s_release(conn);
}

static void
s_process_input(gw_conn_t *conn)
{
    gw_req_t *req = conn->req;
    if (req != NULL) {
        if (req->phase == GW_PHASE_ADMIN && !req->body_done)
            s_pump_admin(conn);
        else if (gw_proxy_has_upstream(req))
            gw_req_pump_body(req);
        else if (gw_buf_len(&conn->in) >= GW_HOLD_MAX)
            s_stop_reading(conn); // the body waits for an upstream
        if (conn->closed)
            return;
        // pipelined bytes behind a request being served: held up to a
        // bound, then the client waits (read again when the response ends)
        if (conn->req == req && req->body_done && gw_buf_len(&conn->in) >= GW_HOLD_MAX)
            s_stop_reading(conn);
        return;
    }
    if (gw_buf_len(&conn->in) == 0)
        return;
    gw_prescan_t scan;
    int rc = gw_prescan(gw_buf_head(&conn->in), gw_buf_len(&conn->in), &scan);
    if (rc < 0) {
        log_debug("request refused", LOG_S("client_ip", conn->client_ip),
                  LOG_S("reason", scan.reason), LOG_I("status", scan.status));
        s_reject_head(conn, scan.status);
        return;
    }
    if (rc == 0) {
        if (gw_buf_len(&conn->in) > GW_HEAD_MAX) // the prescan limits come first
            s_reject_head(conn, 431);
        return;
    }
    s_begin(conn, &scan);
}

void
gw_req_finish(gw_req_t *req)
{
    gw_conn_t *conn = req->conn;
    gw_actor_t *gw = conn->gw;
    req->phase = GW_PHASE_DONE;
    conn->corked = false; // the response is whole: it goes out below or at once
    s_report(conn, req);
    // what the head promised; a drain that began after it closes too
    bool close = gw_req_should_close(req) || gw->draining;
    conn->unread = conn->unread || !req->body_done;
    gw_leases_cancel(gw->leases, &req->waiter);
    gw_edge_cancel(req);
    gw_proxy_release(req);
    s_req_free(&conn->req);
    if (close) {
        conn->closing = true;
        s_stop_reading(conn);
        (void) s_flush(conn); // closes when written
        return;
    }
    if (s_flush(conn) != 0)
        return; // the client is gone; the connection closes from the loop
    // keep-alive: the next request may already be waiting in the buffer
    if (gw_buf_len(&conn->in) > 0)
        s_arm_timer(conn, gw->cfg->header_timeout_ms);
    else
        s_arm_timer(conn, gw->cfg->idle_timeout_ms);
    s_start_reading(conn);
    if (gw_buf_len(&conn->in) > 0)
        ev_feed_event(gw->loop, &conn->rio, EV_CUSTOM); // serve it from the loop, not recursively
}

//  Lingering close: read and drop until the client closes.
static void
s_linger_read(gw_conn_t *conn)
{
    char drop[16384];
    for (int i = 0; i < 16; i++) {
        ssize_t n = read(conn->fd, drop, sizeof drop);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        s_close(conn); // EOF or error: done
        return;
    }
}

static void
s_on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    gw_conn_t *conn = w->data;
    if (conn->lingering) {
        s_linger_read(conn);
        return;
    }
    if (revents & EV_READ) {
        bool had = gw_buf_len(&conn->in) > 0;
        // a head fits a small buffer (an idle connection's is given back
        // after each response, so most reads start one); bodies read wide
        size_t want =
            conn->req == NULL && conn->in.cap < GW_READ_CHUNK ? GW_READ_HEAD : GW_READ_CHUNK;
        ssize_t n = conn->ssl ? s_tls_read(conn, want) : gw_buf_read(&conn->in, conn->fd, want);
        if (n == 0) {
            conn->eof = true;
            s_stop_reading(conn);
            // gone before its response began: a body cut short, or a
            // request still waiting for a decision or in its route's queue
            // (SPEC §3: dropped from the queue); one already upstream keeps
            // going, as a half-closed client may still read the answer
            gw_req_t *req = conn->req;
            if (req == NULL || req->stream != NULL // an event stream's reader left
                || (req->phase != GW_PHASE_RESPONDING
                    && (!req->body_done || req->phase == GW_PHASE_DECIDING
                        || gw_proxy_queued(req)))) {
                s_close(conn);
                return;
            }
        } else if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                s_close(conn);
                return;
            }
        } else if (!had && conn->req == NULL && conn->served > 0) {
            // first byte of a later request: its head must come within the header timeout
            s_arm_timer(conn, conn->gw->cfg->header_timeout_ms);
        } else if (conn->req && !conn->req->body_done) {
            s_arm_timer(conn, conn->gw->cfg->body_timeout_ms); // the longest pause in a body
        }
    }
    s_process(conn);
}

// --------------------------------------------------------------------------
// The TLS handshake: the connection's watchers and timer have their own
// callbacks until it is done, so the plain path has no branch for it.

static void
s_on_handshake_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    gw_conn_t *conn = w->data;
    log_debug("TLS handshake timeout", LOG_S("client_ip", conn->client_ip));
    s_close(conn); // GATEWAY_HEADER_TIMEOUT from accept: no response can be sent
}

static void
s_on_handshake(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) revents;
    gw_conn_t *conn = w->data;
    ERR_clear_error();
    int rc = SSL_do_handshake(conn->ssl);
    if (rc == 1) {
        ev_set_cb(&conn->rio, s_on_readable);
        ev_set_cb(&conn->wio, s_on_writable);
        ev_set_cb(&conn->timer, s_on_timer); // the header timeout from accept goes on
        ev_io_stop(loop, &conn->wio);
        ev_feed_event(loop, &conn->rio, EV_READ); // the request may have come with it
        return;
    }
    int e = SSL_get_error(conn->ssl, rc);
    if (e == SSL_ERROR_WANT_READ) {
        ev_io_stop(loop, &conn->wio);
        return;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        ev_io_start(loop, &conn->wio);
        return;
    }
    unsigned long err = ERR_peek_error();
    const char *why = err ? ERR_reason_error_string(err) : NULL;
    log_debug("TLS handshake failed", LOG_S("client_ip", conn->client_ip),
              LOG_S("reason", why ? why : "closed"));
    ERR_clear_error();
    conn->gw->tls_failures++;
    s_close(conn);
}

static void s_accept(gw_actor_t *gw, int listen_fd, bool admin, bool tls);

void
gw_conn_accept(gw_actor_t *gw, int listen_fd, bool admin)
{
    s_accept(gw, listen_fd, admin, false);
}

void
gw_conn_accept_tls(gw_actor_t *gw, int listen_fd)
{
    s_accept(gw, listen_fd, false, true);
}

//  At most 64 a call (the loop comes back for more), except when draining:
//  then everything queued (a backlog's worth, bounded), as the listener
//  closes next (gw_actor).
static void
s_accept(gw_actor_t *gw, int listen_fd, bool admin, bool tls)
{
    int most = gw->draining ? 65536 : 64;
    for (int i = 0; i < most; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(listen_fd, (struct sockaddr *) &ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_warn("accept failed", LOG_ERRNO(errno));
            return;
        }
        if ((int64_t) gw->nconns >= gw->cfg->max_connections) {
            gw->rejected++;
            close(fd); // over the limit: accepted and closed at once
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        gw_conn_t *conn = proto_slab_alloc(gw->conn_slab); // zeroed
        conn->gw = gw;
        conn->fd = fd;
        conn->admin = admin;
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *) &ss)->sin_addr, conn->client_ip,
                      sizeof conn->client_ip);
        else if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *) &ss)->sin6_addr, conn->client_ip,
                      sizeof conn->client_ip);
        conn->trusted = gw_cidr_match(&gw->trusted, (struct sockaddr *) &ss);
        ev_io_init(&conn->rio, s_on_readable, fd, EV_READ);
        ev_io_init(&conn->wio, s_on_writable, fd, EV_WRITE);
        ev_timer_init(&conn->timer, s_on_timer, 0., 0.);
        ev_timer_init(&conn->reap, s_on_reap, 0., 0.);
        conn->rio.data = conn->wio.data = conn->timer.data = conn->reap.data = conn;
        if (tls) {
            conn->ssl = gw_tls_ssl_new(gw->tls, fd);
            if (conn->ssl == NULL) {
                log_warn("cannot make a TLS session");
                close(fd);
                proto_slab_free(gw->conn_slab, conn);
                continue;
            }
            ev_set_cb(&conn->rio, s_on_handshake);
            ev_set_cb(&conn->wio, s_on_handshake);
            ev_set_cb(&conn->timer, s_on_handshake_timer);
        }
        conn->next = gw->conns;
        if (gw->conns)
            gw->conns->prev = conn;
        gw->conns = conn;
        gw->nconns++;
        s_start_reading(conn);
        s_arm_timer(conn, gw->cfg->header_timeout_ms); // from accept for the first request
    }
}
