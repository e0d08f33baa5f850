/*  gw_proxy - upstream attempts, retries, response relay, keep-alive pool.

    An attempt picks a candidate inside the lease (the strategy applied per
    request), takes an idle pooled connection to it or connects anew, and
    writes the rewritten head, then the body as the client sends it (bodies
    up to GW_HOLD_MAX are also held for a retry). A failed attempt
    (refused, reset before any response byte, connect timeout) is reported
    as upstream.failed, takes the backend out of this lease at once, and is
    retried on another candidate while that is safe: the connect failed, or
    the method is idempotent and the whole body is still held. The response
    head's fields are collected by http-parser's callbacks (the head is
    parsed once), rewritten (hop-by-hop headers and the names every
    Connection field lists out, X-Request-Id in) and the body streamed
    through http-parser, re-chunked when the client needs it. A WebSocket
    upgrade goes on a fresh connection; after a relayed 101 its socket is
    handed to the client's connection (gw_req_tunnel), which relays it with
    gw_tunnel.

    Only gw_req.h's seam is used to reach the client: this module never sees
    the connection, and writes no request state but its own (attempts, the
    upstream, the held body).
*/
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <http_parser.h>

#include "gw_actor.h"
#include "gw_edge.h"
#include "gw_proxy.h"
#include "gw_resp.h"
#include "gw_splice.h"
#include "gw_tunnel.h"
#include "proto_resolve.h"
#include "proto_log.h"
#include "proto_util.h"

#define S_POOL_BUCKETS    1024
#define S_POOL_MAX_IDLE   1024
#define S_POOL_WARM       16          // idle connections beyond this many give their buffers back
#define S_POOL_CHECK_IDLE 0.5         // pooled this long (s): peek for a close before reuse
#define S_RESP_HEAD_MAX   (64 * 1024) // upstream response head bound

struct gw_up {
    gw_actor_t *gw;       // the actor
    int fd;               // upstream socket
    ev_io rio;            // readable
    ev_io wio;            // writable
    ev_timer timer;       // connect / response / idle timeout
    gw_buf_t in;          // bytes from the backend
    gw_buf_t out;         // bytes to the backend
    http_parser parser;   // response framing
    gw_req_t *req;        // the request using it, or NULL when pooled
    char key[300];        // "host:port" for the pool
    bool connected;       // connect completed
    bool reused;          // came from the pool
    ev_tstamp pooled_at;  // when it went idle (loop time)
    bool got_bytes;       // a response byte arrived
    bool head_done;       // response head parsed
    bool msg_done;        // response complete
    bool keep_alive;      // backend allows reuse
    bool resp_chunked;    // we chunk the response to the client
    bool switched;        // a 101 to a WebSocket upgrade was relayed
    bool splicing;        // the rest of the body goes through pipe (gw_splice)
    uint64_t sp_left;     // ... body bytes not yet read from the backend
    gw_pipe_t pipe;       // ... the pipe (rfd -1 when none)
    gw_resp_head_t *head; // the response head while it is parsed (the pool's scratch)
    gw_up_t *pool_prev;   // idle list of its key
    gw_up_t *pool_next;   // ...
};

struct gw_pool {
    gw_actor_t *gw;                   // the actor
    gw_up_t *buckets[S_POOL_BUCKETS]; // idle connections by key hash
    gw_resp_head_t head;              // the one response head being parsed: a head is
                                      // parsed in one call, so every connection shares it
    uint64_t stale;                   // found closed at reuse (s_pool_alive)
    size_t idle;                      // how many
};

static void s_attempt(gw_req_t *req);
static void s_attempt_at(gw_req_t *req, const struct sockaddr_storage *addr, socklen_t addrlen);
static void s_up_close(gw_up_t **up_p);

// --------------------------------------------------------------------------
// Pool

static size_t
s_pool_hash(const char *key)
{
    return (size_t) (proto_fnv1a(key, strlen(key)) % S_POOL_BUCKETS);
}

static void
s_pool_unlink(gw_pool_t *pool, gw_up_t *up)
{
    if (up->pool_prev)
        up->pool_prev->pool_next = up->pool_next;
    else
        pool->buckets[s_pool_hash(up->key)] = up->pool_next;
    if (up->pool_next)
        up->pool_next->pool_prev = up->pool_prev;
    up->pool_prev = up->pool_next = NULL;
    pool->idle--;
}

static void
s_on_idle_event(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    (void) revents;
    // an idle connection spoke (or closed): it cannot be reused
    gw_up_t *up = w->data;
    s_pool_unlink(up->gw->pool, up);
    s_up_close(&up);
}

static void
s_on_idle_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    gw_up_t *up = w->data;
    s_pool_unlink(up->gw->pool, up);
    s_up_close(&up);
}

static void
s_pool_put(gw_pool_t *pool, gw_up_t *up)
{
    if (pool->idle >= S_POOL_MAX_IDLE) {
        s_up_close(&up);
        return;
    }
    struct ev_loop *loop = pool->gw->loop;
    up->req = NULL;
    ev_io_stop(loop, &up->wio);
    ev_io_stop(loop, &up->rio);
    ev_timer_stop(loop, &up->timer);
    if (pool->idle < S_POOL_WARM) {
        gw_buf_reset(&up->in); // busy traffic reuses these at once
        gw_buf_reset(&up->out);
    } else {
        gw_buf_free(&up->in); // many idle: they hold their record only
        gw_buf_free(&up->out);
    }
    ev_set_cb(&up->rio, s_on_idle_event);
    ev_io_start(loop, &up->rio);
    ev_set_cb(&up->timer, s_on_idle_timer);
    ev_timer_set(&up->timer, (double) pool->gw->cfg->upstream_idle_timeout_ms / 1000.0, 0.);
    ev_timer_start(loop, &up->timer);
    up->pooled_at = ev_now(loop);
    size_t b = s_pool_hash(up->key);
    up->pool_prev = NULL;
    up->pool_next = pool->buckets[b];
    if (up->pool_next)
        up->pool_next->pool_prev = up;
    pool->buckets[b] = up;
    pool->idle++;
}

//  Whether an idle connection is still open and silent. The read watcher
//  closes most that a backend closed; this catches the close that arrived in
//  the same loop turn as the request about to use it (a backend's keep-alive
//  timeout ends connections that sat idle, so only those are checked: one
//  recv, not one per request on a busy connection).
static bool
s_pool_alive(gw_pool_t *pool, const gw_up_t *up)
{
    if (ev_now(pool->gw->loop) - up->pooled_at < S_POOL_CHECK_IDLE)
        return true;
    char b;
    ssize_t n = recv(up->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static gw_up_t *
s_pool_take(gw_pool_t *pool, const char *key)
{
    gw_up_t *up = pool->buckets[s_pool_hash(key)];
    while (up) {
        gw_up_t *next = up->pool_next;
        if (strcmp(up->key, key) != 0) {
            up = next;
            continue;
        }
        s_pool_unlink(pool, up);
        if (!s_pool_alive(pool, up)) {
            s_up_close(&up); // closed (or spoke) while idle: never reused
            pool->stale++;
            up = next;
            continue;
        }
        ev_io_stop(pool->gw->loop, &up->rio);
        ev_timer_stop(pool->gw->loop, &up->timer);
        return up;
    }
    return NULL;
}

gw_pool_t *
gw_pool_new(gw_actor_t *gw)
{
    gw_pool_t *pool = proto_xcalloc(1, sizeof *pool);
    pool->gw = gw;
    return pool;
}

size_t
gw_pool_idle(gw_pool_t *pool)
{
    return pool->idle;
}

const uint64_t *
gw_pool_stale(const gw_pool_t *pool)
{
    return &pool->stale;
}

void
gw_pool_destroy(gw_pool_t **pool_p)
{
    gw_pool_t *pool = *pool_p;
    if (pool == NULL)
        return;
    for (size_t b = 0; b < S_POOL_BUCKETS; b++)
        while (pool->buckets[b]) {
            gw_up_t *up = pool->buckets[b];
            s_pool_unlink(pool, up);
            s_up_close(&up);
        }
    free(pool);
    *pool_p = NULL;
}

// --------------------------------------------------------------------------
// Upstream connections

static void
s_up_close(gw_up_t **up_p)
{
    gw_up_t *up = *up_p;
    if (up == NULL)
        return;
    struct ev_loop *loop = up->gw->loop;
    ev_io_stop(loop, &up->rio);
    ev_io_stop(loop, &up->wio);
    ev_timer_stop(loop, &up->timer);
    if (up->fd >= 0)
        close(up->fd);
    gw_pipes_give(up->gw->pipes, &up->pipe);
    gw_buf_free(&up->in);
    gw_buf_free(&up->out);
    if (up->req && up->req->up == up)
        up->req->up = NULL;
    free(up);
    *up_p = NULL;
}

static void s_on_up_readable(struct ev_loop *loop, ev_io *w, int revents);
static void s_on_up_writable(struct ev_loop *loop, ev_io *w, int revents);
static void s_on_up_timer(struct ev_loop *loop, ev_timer *w, int revents);

static void
s_up_arm(gw_up_t *up, double seconds)
{
    ev_timer_stop(up->gw->loop, &up->timer);
    ev_timer_set(&up->timer, seconds, 0.);
    ev_timer_start(up->gw->loop, &up->timer);
}

static gw_up_t *
s_up_connect(gw_actor_t *gw,
             const struct sockaddr_storage *addr,
             socklen_t addrlen,
             const char *key,
             int *err)
{
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = errno;
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *) addr, addrlen) != 0 && errno != EINPROGRESS) {
        *err = errno;
        close(fd);
        return NULL;
    }
    gw_up_t *up = proto_xcalloc(1, sizeof *up);
    up->gw = gw;
    up->fd = fd;
    up->pipe.rfd = up->pipe.wfd = -1;
    up->head = &gw->pool->head;
    proto_strlcpy(up->key, key, sizeof up->key);
    ev_io_init(&up->rio, s_on_up_readable, fd, EV_READ);
    ev_io_init(&up->wio, s_on_up_writable, fd, EV_WRITE);
    ev_timer_init(&up->timer, s_on_up_timer, 0., 0.);
    up->rio.data = up->wio.data = up->timer.data = up;
    return up;
}

// --------------------------------------------------------------------------
// The request head sent upstream

static bool
s_name_is(const gw_req_t *req, const gw_field_t *f, const char *name)
{
    size_t n = strlen(name);
    return f->name_len == n && strncasecmp(req->head.data + f->name, name, n) == 0;
}

//  True if a Connection field of the request names this field (RFC 9110
//  §7.6.1: every Connection field, comma-separated, optional whitespace).
//  The fields the gateway itself needs (Host, framing, ids) are never
//  removed this way.
static bool
s_listed_in_connection(const gw_req_t *req, const gw_field_t *f)
{
    if (gw_http_flags((gw_hdr_t) f->id) & GW_HF_PROTECTED)
        return false;
    for (uint32_t i = 0; i < req->nfields; i++) {
        const gw_field_t *c = &req->fields[i];
        if (c->id == GW_H_CONNECTION
            && gw_http_list_has(req->head.data + c->value, c->value_len, req->head.data + f->name,
                                f->name_len))
            return true;
    }
    return false;
}

static bool
s_route_sets(const gw_lease_t *lease, const gw_req_t *req, const gw_field_t *f)
{
    for (uint32_t i = 0; i < lease->nheaders; i++)
        if (s_name_is(req, f, lease->headers[i].key))
            return true;
    return false;
}

static void
s_put_field(gw_buf_t *out, const gw_req_t *req, const gw_field_t *f)
{
    gw_buf_append(out, req->head.data + f->name, f->name_len);
    gw_buf_append(out, PROTO_LIT(": "));
    gw_buf_append(out, req->head.data + f->value, f->value_len);
    gw_buf_append(out, PROTO_LIT("\r\n"));
}

//  The Host sent upstream: the client's (or the absolute-form URI's
//  authority); a request without one (HTTP/1.0) gets the route's vHost when
//  it names one host, else the backend's address.
static void
s_put_host(gw_buf_t *out, const gw_req_t *req, const gw_cand_t *c)
{
    if (req->authority_len > 0) {
        gw_buf_puts(out, "Host: ");
        gw_buf_append(out, req->authority, req->authority_len);
        gw_buf_puts(out, "\r\n");
    } else if (strchr(req->lease->vhost, '*') == NULL && req->lease->vhost[0]) {
        gw_buf_put3(out, "Host: ", req->lease->vhost, "\r\n");
    } else if (strchr(c->host, ':')) {
        gw_buf_printf(out, "Host: [%s]:%u\r\n", c->host, c->port);
    } else {
        gw_buf_put3(out, "Host: ", c->host, ":");
        gw_buf_put_u64(out, c->port);
        gw_buf_puts(out, "\r\n");
    }
}

//  True if one of the request's fields with this id lists elem.
static bool
s_req_lists(const gw_req_t *req, gw_hdr_t id, const char *elem)
{
    for (uint32_t i = 0; i < req->nfields; i++) {
        const gw_field_t *f = &req->fields[i];
        if (f->id == id
            && gw_http_list_has(req->head.data + f->value, f->value_len, elem, strlen(elem)))
            return true;
    }
    return false;
}

//  A WebSocket upgrade (RFC 6455 §4.1): GET, HTTP/1.1, no body, a
//  Connection field listing "upgrade" and an Upgrade field listing
//  "websocket". Its Upgrade and Connection go upstream; any other Upgrade
//  (h2c, ...) stays hop-by-hop and is dropped.
static bool
s_is_websocket(const gw_req_t *req)
{
    return strcmp(req->method, "GET") == 0 && req->minor >= 1 && !req->has_body
           && s_req_lists(req, GW_H_CONNECTION, "upgrade")
           && s_req_lists(req, GW_H_UPGRADE, "websocket");
}

static void
s_build_head(gw_req_t *req, const gw_cand_t *c, gw_buf_t *out)
{
    const gw_lease_t *lease = req->lease;
    gw_buf_append(out, req->method, strlen(req->method));
    gw_buf_append(out, PROTO_LIT(" "));
    if (req->path_len == 0 || req->path[0] != '/')
        gw_buf_append(out, PROTO_LIT("/")); // absolute form without a path: origin form "/"
    gw_buf_append(out, req->path, req->path_len);
    gw_buf_append(out, PROTO_LIT(" HTTP/1.1\r\n"));
    s_put_host(out, req, c);
    const gw_field_t *kept[GW_H_COUNT] = {0}; // a trusted peer's forwarding fields
    for (uint32_t i = 0; i < req->nfields; i++) {
        const gw_field_t *f = &req->fields[i];
        unsigned flags = gw_http_flags((gw_hdr_t) f->id);
        if (f->id == GW_H_HOST || (flags & (GW_HF_HOP | GW_HF_FRAMING | GW_HF_OURS)))
            continue;
        if (flags & GW_HF_FORWARDED) {
            // ours replace them; a trusted peer's are kept (the first of each)
            if (req->trusted && kept[f->id] == NULL)
                kept[f->id] = f;
            continue;
        }
        if (s_listed_in_connection(req, f) || s_route_sets(lease, req, f))
            continue;
        if (f->id == GW_H_X_USER_ID && (lease->creds || lease->auth_provider[0]))
            continue; // the edge says who the user is, never the client
        s_put_field(out, req, f);
    }
    const char *ip = req->client_ip;
    const gw_field_t *xff = kept[GW_H_X_FORWARDED_FOR];
    if (xff) {
        gw_buf_puts(out, "X-Forwarded-For: ");
        gw_buf_append(out, req->head.data + xff->value, xff->value_len);
        gw_buf_put3(out, ", ", ip, "\r\n");
    } else {
        gw_buf_put3(out, "X-Forwarded-For: ", ip, "\r\n");
    }
    if (kept[GW_H_X_REAL_IP])
        s_put_field(out, req, kept[GW_H_X_REAL_IP]);
    else
        gw_buf_put3(out, "X-Real-IP: ", ip, "\r\n");
    if (kept[GW_H_X_FORWARDED_PROTO])
        s_put_field(out, req, kept[GW_H_X_FORWARDED_PROTO]);
    else
        gw_buf_puts(out, req->tls ? "X-Forwarded-Proto: https\r\n" : "X-Forwarded-Proto: http\r\n");
    if (kept[GW_H_X_FORWARDED_HOST]) {
        s_put_field(out, req, kept[GW_H_X_FORWARDED_HOST]);
    } else if (req->authority_len > 0) {
        gw_buf_puts(out, "X-Forwarded-Host: ");
        gw_buf_append(out, req->authority, req->authority_len);
        gw_buf_puts(out, "\r\n");
    }
    gw_buf_put3(out, "X-Request-Id: ", req->rid, "\r\n");
    gw_buf_put3(out, "X-Correlation-Id: ", req->rid, "\r\n");
    if (lease->wildcard) {
        const char *dot = strchr(req->host, '.');
        if (dot && dot > req->host)
            gw_buf_printf(out, "X-Tenant-Id: %.*s\r\n", (int) (dot - req->host), req->host);
    }
    if (req->user[0])
        gw_buf_put3(out, "X-User-Id: ", req->user, "\r\n");
    if (kept[GW_H_X_SWITCHYARD_HOP])
        s_put_field(out, req, kept[GW_H_X_SWITCHYARD_HOP]);
    else if (c->hop)
        gw_buf_puts(out, "X-Switchyard-Hop: 1\r\n");
    for (uint32_t i = 0; i < lease->nheaders; i++) {
        gw_buf_put3(out, lease->headers[i].key, ": ", lease->headers[i].value);
        gw_buf_puts(out, "\r\n");
    }
    if (req->websocket)
        gw_buf_puts(out, "Connection: upgrade\r\nUpgrade: websocket\r\n"); // hop-by-hop, renewed
    if (req->chunked)
        gw_buf_puts(out, "Transfer-Encoding: chunked\r\n");
    else if (req->has_body) {
        gw_buf_puts(out, "Content-Length: ");
        gw_buf_put_u64(out, req->content_length);
        gw_buf_puts(out, "\r\n");
    }
    gw_buf_puts(out, "\r\n");
}

// --------------------------------------------------------------------------
// Sending

static void
s_up_flush(gw_up_t *up)
{
    while (gw_buf_len(&up->out) > 0) {
        ssize_t n = gw_buf_write(&up->out, up->fd);
        if (n < 0)
            break; // EAGAIN waits for the watcher; errors show up on read
    }
    if (gw_buf_len(&up->out) > 0)
        ev_io_start(up->gw->loop, &up->wio);
    else
        ev_io_stop(up->gw->loop, &up->wio);
}

bool
gw_proxy_upstream_full(const gw_req_t *req)
{
    return req->up == NULL || !req->up->connected || gw_buf_len(&req->up->out) > GW_OUT_HIGH;
}

static void
s_append_body(gw_req_t *req, const char *data, size_t len)
{
    gw_up_t *up = req->up;
    if (req->chunked) {
        char size[24];
        int n = snprintf(size, sizeof size, "%zx\r\n", len);
        gw_buf_append(&up->out, size, (size_t) n);
        gw_buf_append(&up->out, data, len);
        gw_buf_append(&up->out, PROTO_LIT("\r\n"));
    } else {
        gw_buf_append(&up->out, data, len);
    }
}

void
gw_proxy_body(gw_req_t *req, const char *data, size_t len)
{
    if (req->up == NULL || len == 0)
        return;
    req->body_started = true;
    if (req->hold_ok && gw_buf_len(&req->hold) + len <= GW_HOLD_MAX)
        gw_buf_append(&req->hold, data, len);
    else
        req->hold_ok = false; // too big to repeat
    s_append_body(req, data, len);
    s_up_flush(req->up);
}

void
gw_proxy_body_end(gw_req_t *req)
{
    if (req->up == NULL)
        return;
    if (req->chunked)
        gw_buf_append(&req->up->out, PROTO_LIT("0\r\n\r\n"));
    s_up_flush(req->up);
}

// --------------------------------------------------------------------------
// Failures and retries

static void
s_report_failure(gw_req_t *req, const char *reason)
{
    gw_actor_t *gw = req->gw;
    gw->upstream_failures++;
    const gw_cand_t *c = &req->lease->cands[req->cand];
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_UPSTREAM_FAILED);
    msg.rid = req->rid;
    msg.upstream_failed.route = req->lease->route;
    msg.upstream_failed.backend = c->id;
    msg.upstream_failed.reason = reason;
    proto_bus_publish(gw->bus, &msg);
    log_warn("upstream attempt failed", LOG_S("request_id", req->rid), LOG_S("backend", c->id),
             LOG_S("upstream", c->host), LOG_I("port", c->port), LOG_S("reason", reason),
             LOG_U("attempt", req->attempts));
}

//  The current attempt failed before any response byte.
static void
s_attempt_failed(gw_req_t *req, const char *reason, bool connect_failed)
{
    if (connect_failed && req->addr_i + 1 < req->naddrs) {
        // a backend's name with another address: the same candidate there
        // (as nginx tries each address of a name); failed when all have
        s_up_close(&req->up);
        req->addr_i++;
        s_attempt_at(req, &req->addrs[req->addr_i],
                     proto_resolve_addrlen(&req->addrs[req->addr_i]));
        return;
    }
    gw_up_t *up = req->up;
    bool stale_keepalive = up && up->reused && !connect_failed;
    s_up_close(&req->up);
    if (!stale_keepalive) {
        s_report_failure(req, reason);
        req->lease->cands[req->cand].failed = true; // out of this lease at once
    }
    // a pooled connection the backend had closed: try again at once, unseen,
    // when repeating is safe; it is not the backend's failure
    bool safe = connect_failed || (req->idempotent && req->hold_ok);
    bool budget = req->attempts <= req->lease->retries || stale_keepalive;
    if (safe && budget) {
        if (stale_keepalive)
            req->tried &= ~((uint64_t) 1 << req->cand);
        s_attempt(req);
        return;
    }
    gw_req_respond_text(req, 502, "Bad Gateway");
}

// --------------------------------------------------------------------------
// The response: fields collected by the parser's callbacks, head written once

static int
s_on_resp_status(http_parser *p, const char *at, size_t len)
{
    gw_up_t *up = p->data;
    gw_resp_head_status(up->head, at, len);
    return 0;
}

static int
s_on_resp_field(http_parser *p, const char *at, size_t len)
{
    gw_up_t *up = p->data;
    if (!up->head_done) // trailers of a chunked response are not relayed
        gw_resp_head_field(up->head, at, len);
    return 0;
}

static int
s_on_resp_value(http_parser *p, const char *at, size_t len)
{
    gw_up_t *up = p->data;
    if (!up->head_done)
        gw_resp_head_value(up->head, at, len);
    return 0;
}

//  A 101 head: relayed only when it answers a WebSocket upgrade and names
//  websocket, with its Upgrade field and Connection: upgrade kept; the
//  tunnel starts once the parser is past the head (s_parse_response). Any
//  other switch was not asked for and cannot be relayed: -1 (502).
static int
s_switch_head(gw_up_t *up)
{
    gw_req_t *req = up->req;
    bool ws = false;
    for (uint32_t i = 0; i < up->head->nfields; i++)
        if (up->head->fields[i].id == GW_H_UPGRADE
            && gw_http_list_has(up->head->fields[i].value, up->head->fields[i].value_len,
                                PROTO_LIT("websocket")))
            ws = true;
    if (!req->websocket || !ws) {
        log_warn("upstream switched protocols unasked", LOG_S("request_id", req->rid),
                 LOG_S("backend", req->lease->cands[req->cand].id));
        return -1;
    }
    gw_buf_t out = {0};
    gw_buf_puts(&out, "HTTP/1.1 101 ");
    if (up->head->reason_len)
        gw_buf_append(&out, up->head->reason, up->head->reason_len);
    else
        gw_buf_puts(&out, gw_req_reason(101));
    gw_buf_puts(&out, "\r\n");
    for (uint32_t i = 0; i < up->head->nfields; i++) {
        const gw_rfield_t *f = &up->head->fields[i];
        unsigned flags = gw_http_flags(f->id);
        if (f->id != GW_H_UPGRADE
            && ((flags & GW_HF_RESP_DROP) || gw_resp_head_listed(up->head, f)
                || f->id == GW_H_CONTENT_LENGTH))
            continue;
        gw_buf_append(&out, f->name, f->name_len);
        gw_buf_append(&out, PROTO_LIT(": "));
        gw_buf_append(&out, f->value, f->value_len);
        gw_buf_append(&out, PROTO_LIT("\r\n"));
    }
    gw_buf_put3(&out, "X-Request-Id: ", req->rid, "\r\n");
    if (req->client_sent_corr)
        gw_buf_put3(&out, "X-Correlation-Id: ", req->rid, "\r\n");
    gw_buf_puts(&out, "Connection: upgrade\r\n\r\n");
    up->switched = true;
    gw_req_responding(req, 101);
    gw_req_send(req, gw_buf_head(&out), gw_buf_len(&out));
    gw_buf_free(&out);
    up->head->nfields = 0; // the pointers are about to go stale
    up->head->reason = NULL;
    proto_strlcpy(req->backend, req->lease->cands[req->cand].id, sizeof req->backend);
    return 0;
}

//  The 101 is relayed: the upstream socket (and what the backend sent after
//  its head) goes to the connection, which becomes a tunnel. The route's
//  place is given back now: a tunnel has had its answer, and holding places
//  for its lifetime would let open WebSockets starve the route's requests.
static void
s_tunnel(gw_up_t *up)
{
    gw_req_t *req = up->req;
    gw_buf_t pending = up->in;
    int fd = up->fd;
    up->in = (gw_buf_t){0};
    up->fd = -1;
    s_up_close(&req->up);
    gw_queues_leave(req->gw->queues, &req->qwait);
    size_t len = gw_buf_len(&pending);
    gw_req_tunnel(req, fd, len ? gw_buf_head(&pending) : NULL, len);
    gw_buf_free(&pending);
}

static int
s_on_resp_headers(http_parser *p)
{
    gw_up_t *up = p->data;
    gw_req_t *req = up->req;
    up->head_done = true;
    if (up->head->bad)
        return -1; // answered 502 by the caller
    int status = p->status_code;
    req->upstream_us = proto_mono_us();
    bool interim = status / 100 == 1 && status != 101;
    if (interim)
        return 0; // we sent our own 100 Continue; the real response follows
    bool no_body = req->head_request || status == 204 || status == 304 || status / 100 == 1;
    bool has_length = !(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX;
    up->keep_alive = http_should_keep_alive(p) != 0 && !req->websocket; // never pooled
    up->resp_chunked = false;
    if (!no_body && !has_length) {
        if (req->minor >= 1)
            up->resp_chunked = true;
        else
            req->must_close = true; // HTTP/1.0 client: the end is the close
    }
    gw_resp_head_done(up->head);
    if (status == 101)
        return s_switch_head(up);

    gw_buf_t out = {0};
    gw_buf_puts(&out, "HTTP/1.1 "); // keep the backend's reason phrase
    gw_buf_put_u64(&out, (unsigned) status);
    gw_buf_puts(&out, " ");
    if (up->head->reason_len)
        gw_buf_append(&out, up->head->reason, up->head->reason_len);
    else
        gw_buf_puts(&out, gw_req_reason(status));
    gw_buf_puts(&out, "\r\n");
    for (uint32_t i = 0; i < up->head->nfields; i++) {
        const gw_rfield_t *f = &up->head->fields[i];
        unsigned flags = gw_http_flags(f->id);
        if ((flags & GW_HF_RESP_DROP) || gw_resp_head_listed(up->head, f))
            continue;
        if (f->id == GW_H_CONTENT_LENGTH && !has_length && !no_body)
            continue;
        if (gw_buf_len(&req->resp_extra) && gw_edge_replaces(req, f->name, f->name_len))
            continue;
        gw_buf_append(&out, f->name, f->name_len);
        gw_buf_append(&out, PROTO_LIT(": "));
        gw_buf_append(&out, f->value, f->value_len);
        gw_buf_append(&out, PROTO_LIT("\r\n"));
    }
    gw_buf_put3(&out, "X-Request-Id: ", req->rid, "\r\n");
    if (req->client_sent_corr)
        gw_buf_put3(&out, "X-Correlation-Id: ", req->rid, "\r\n");
    gw_edge_response(req, up->head, &out);
    if (up->resp_chunked)
        gw_buf_puts(&out, "Transfer-Encoding: chunked\r\n");
    if (gw_req_should_close(req))
        gw_buf_puts(&out, "Connection: close\r\n");
    else if (req->minor == 0)
        gw_buf_puts(&out, "Connection: keep-alive\r\n");
    gw_buf_puts(&out, "\r\n");
    gw_req_responding(req, status);
    gw_req_send(req, gw_buf_head(&out), gw_buf_len(&out));
    gw_buf_free(&out);
    up->head->nfields = 0; // the pointers are about to go stale
    up->head->reason = NULL;
    proto_strlcpy(req->backend, req->lease->cands[req->cand].id, sizeof req->backend);
    return req->head_request ? 1 : 0; // HEAD: no body follows
}

static int
s_on_resp_body(http_parser *p, const char *at, size_t len)
{
    gw_up_t *up = p->data;
    gw_req_t *req = up->req;
    if (up->resp_chunked) {
        char size[24];
        int n = snprintf(size, sizeof size, "%zx\r\n", len);
        gw_req_send(req, size, (size_t) n);
        gw_req_send(req, at, len);
        gw_req_send(req, PROTO_LIT("\r\n"));
    } else {
        gw_req_send(req, at, len);
    }
    req->bytes_out += len;
    return 0;
}

static int
s_on_resp_complete(http_parser *p)
{
    gw_up_t *up = p->data;
    up->msg_done = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings s_resp_settings = {
    .on_status = s_on_resp_status,
    .on_header_field = s_on_resp_field,
    .on_header_value = s_on_resp_value,
    .on_headers_complete = s_on_resp_headers,
    .on_body = s_on_resp_body,
    .on_message_complete = s_on_resp_complete,
};

static void
s_resp_reset(gw_up_t *up)
{
    up->head_done = up->msg_done = up->splicing = false;
    http_parser_init(&up->parser, HTTP_RESPONSE);
    up->parser.data = up;
}

//  Where the response head ends in what we have (0: not yet).
static size_t
s_head_end(const char *data, size_t len)
{
    const char *crlf = memmem(data, len, "\r\n\r\n", 4);
    const char *lf = memmem(data, crlf ? (size_t) (crlf - data) + 2 : len, "\n\n", 2);
    if (lf)
        return (size_t) (lf - data) + 2; // a bare LF LF from a lax backend
    return crlf ? (size_t) (crlf - data) + 4 : 0;
}

// --------------------------------------------------------------------------
// Spliced bodies (gw_splice): backend socket -> pipe -> client socket

//  The rest of a body is spliced when the head is out, every byte read so
//  far has gone through the parser, the length is known and at least
//  GW_SPLICE_MIN is left, and the client is a plain socket. The parser is
//  left where it is; sp_left counts the bytes from here on.
static void
s_splice_begin(gw_up_t *up)
{
    gw_req_t *req = up->req;
    uint64_t left = up->parser.content_length;
    if (up->splicing || !up->head_done || up->msg_done || up->resp_chunked || up->switched
        || req->phase != GW_PHASE_RESPONDING || (up->parser.flags & F_CHUNKED) || left == ULLONG_MAX
        || left < GW_SPLICE_MIN || gw_buf_len(&up->in) > 0 || gw_req_client_fd(req) < 0)
        return;
    if (gw_pipes_take(up->gw->pipes, &up->pipe) != 0) {
        gw_pipes_count(up->gw->pipes, false, 0, true); // copied as before
        return;
    }
    gw_pipes_count(up->gw->pipes, true, 0, false);
    up->splicing = true;
    up->sp_left = left;
    gw_buf_free(&up->in); // not needed until the next response on this connection
}

//  Moves what can be moved now. Reading the backend stops while the pipe
//  holds what the client has not taken; the client's writability resumes it
//  (gw_proxy_client_drained). Returns -1 when the request is over.
static int
s_splice_pump(gw_up_t *up)
{
    gw_req_t *req = up->req;
    gw_pipes_t *pipes = up->gw->pipes;
    for (int round = 0; round < 16; round++) { // then other connections get a turn
        bool moved = false;
        if (up->sp_left > 0 && up->pipe.held < GW_SPLICE_PIPE) {
            size_t max = up->sp_left < GW_SPLICE_PIPE ? (size_t) up->sp_left : GW_SPLICE_PIPE;
            ssize_t n = gw_pipe_fill(&up->pipe, up->fd, max);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                gw_req_abort(req); // the backend ended mid-body: the client must see it
                return -1;
            }
            if (n > 0) {
                up->sp_left -= (uint64_t) n;
                moved = true;
                s_up_arm(up, (double) req->lease->timeout_ms / 1000.0);
            }
        }
        if (up->pipe.held > 0 && gw_req_out_empty(req)) {
            int cfd = gw_req_client_fd(req);
            ssize_t n = cfd < 0 ? -1 : gw_pipe_drain(&up->pipe, cfd, up->sp_left > 0);
            if (n < 0 && (cfd < 0 || (errno != EAGAIN && errno != EWOULDBLOCK))) {
                ev_io_stop(up->gw->loop, &up->rio);
                gw_req_client_failed(req); // closes from the loop, with the request
                return -1;
            }
            if (n > 0) {
                req->bytes_out += (uint64_t) n;
                gw_pipes_count(pipes, false, (uint64_t) n, false);
                moved = true;
            }
        }
        if (up->sp_left == 0 && up->pipe.held == 0) {
            gw_pipes_give(pipes, &up->pipe);
            up->splicing = false;
            up->msg_done = true;
            gw_req_finish(req);
            return -1;
        }
        if (!moved)
            break;
    }
    if (up->pipe.held > 0) {
        ev_io_stop(up->gw->loop, &up->rio); // the client is behind: wait for it
        gw_req_wait_writable(req);
    } else {
        ev_io_start(up->gw->loop, &up->rio);
    }
    return 0;
}

//  Run the response bytes we have through the parser. Returns -1 when the
//  request is over (finished or failed) and the caller must not touch it.
static int
s_parse_response(gw_up_t *up, bool eof)
{
    gw_req_t *req = up->req;
    if (!up->head_done) {
        // the whole head must be in one parser call: the fields point into it
        size_t end = s_head_end(gw_buf_head(&up->in), gw_buf_len(&up->in));
        if (end == 0 || end > S_RESP_HEAD_MAX) {
            if (end > S_RESP_HEAD_MAX || gw_buf_len(&up->in) > S_RESP_HEAD_MAX || eof) {
                gw_req_respond_text(req, 502, "Bad Gateway");
                return -1;
            }
            return 0;
        }
        gw_resp_head_reset(up->head); // the shared scratch: this head is parsed now, in one call
    }
    while (gw_buf_len(&up->in) > 0 || eof) {
        if (gw_req_out_full(req)) {
            ev_io_stop(up->gw->loop, &up->rio); // the client is slow: stop reading
            return 0;
        }
        size_t len = gw_buf_len(&up->in);
        if (len > S_RESP_HEAD_MAX)
            len = S_RESP_HEAD_MAX;
        size_t n = http_parser_execute(&up->parser, &s_resp_settings, gw_buf_head(&up->in), len);
        enum http_errno err = HTTP_PARSER_ERRNO(&up->parser);
        gw_buf_consume(&up->in, n);
        if (err != HPE_OK && err != HPE_PAUSED) {
            if (req->phase != GW_PHASE_RESPONDING)
                gw_req_respond_text(req, 502, "Bad Gateway");
            else
                gw_req_abort(req);
            return -1;
        }
        if (up->msg_done) {
            int status = up->parser.status_code;
            if (up->switched) {
                s_tunnel(up);
                return -1;
            }
            if (status / 100 == 1 && status != 101) {
                // an interim response: wait for the real one
                s_resp_reset(up);
                return s_parse_response(up, eof);
            }
            if (up->resp_chunked)
                gw_req_send(req, PROTO_LIT("0\r\n\r\n"));
            if (gw_buf_len(&up->in) > 0)
                up->keep_alive = false; // extra bytes after the response: do not reuse
            gw_req_finish(req);
            return -1;
        }
        if (eof && n == len) {
            // end of a close-delimited body, or a truncated one
            http_parser_execute(&up->parser, &s_resp_settings, NULL, 0);
            if (up->msg_done) {
                up->keep_alive = false;
                if (up->resp_chunked)
                    gw_req_send(req, PROTO_LIT("0\r\n\r\n"));
                gw_req_finish(req);
            } else {
                gw_req_abort(req);
            }
            return -1;
        }
    }
    s_splice_begin(up);
    return 0;
}

static void
s_on_up_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    (void) revents;
    gw_up_t *up = w->data;
    gw_req_t *req = up->req;
    if (up->splicing) {
        (void) s_splice_pump(up);
        return;
    }
    ssize_t n = gw_buf_read(&up->in, up->fd, GW_READ_CHUNK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0 && !up->got_bytes) {
        s_attempt_failed(req, "reset", false);
        return;
    }
    if (n > 0) {
        up->got_bytes = true;
        s_up_arm(up, (double) req->lease->timeout_ms / 1000.0); // silence between reads
    }
    gw_req_cork(req); // head and body of what we read leave in one write
    if (s_parse_response(up, n <= 0) == 0)
        gw_req_uncork(req); // still going (on -1 the request is over and flushed)
}

static void
s_on_up_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    (void) revents;
    gw_up_t *up = w->data;
    gw_req_t *req = up->req;
    if (!up->connected) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(up->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            s_attempt_failed(req, err == ECONNREFUSED ? "refused" : "reset", true);
            return;
        }
        up->connected = true;
        ev_io_start(up->gw->loop, &up->rio);
        s_up_arm(up, (double) req->lease->timeout_ms / 1000.0);
    }
    bool was_full = gw_buf_len(&up->out) > GW_OUT_HIGH;
    s_up_flush(up);
    if (gw_buf_len(&up->out) < GW_OUT_LOW || was_full)
        gw_req_pump_body(req);
}

static void
s_on_up_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    gw_up_t *up = w->data;
    gw_req_t *req = up->req;
    if (!up->connected) {
        s_attempt_failed(req, "timeout", true);
        return;
    }
    log_warn("upstream timeout", LOG_S("request_id", req->rid),
             LOG_S("backend", req->lease->cands[req->cand].id),
             LOG_U("timeout_ms", req->lease->timeout_ms));
    // a passive health signal, as nginx counts a timeout among max_fails;
    // healthd decides (3 in a row), the lease keeps the backend meanwhile
    s_report_failure(req, "timeout");
    if (req->phase == GW_PHASE_RESPONDING) {
        gw_req_abort(req); // mid-body silence: nothing else can be said
        return;
    }
    s_up_close(&req->up);
    gw_req_respond_text(req, 504, "Gateway Timeout");
}

// --------------------------------------------------------------------------
// Attempts

//  Go on with the attempt at candidate req->cand, connecting to addr if no
//  pooled connection to it is idle.
//  "host:port", the pool's key of a candidate (no printf: once per attempt).
static void
s_pool_key(const gw_cand_t *c, char *key, size_t cap)
{
    size_t n = strnlen(c->host, cap - 8);
    memcpy(key, c->host, n);
    key[n++] = ':';
    char digits[6];
    size_t d = sizeof digits;
    unsigned port = c->port;
    do {
        digits[--d] = (char) ('0' + port % 10);
        port /= 10;
    } while (port);
    memcpy(key + n, digits + d, sizeof digits - d);
    key[n + sizeof digits - d] = '\0';
}

static void
s_attempt_at(gw_req_t *req, const struct sockaddr_storage *addr, socklen_t addrlen)
{
    gw_actor_t *gw = req->gw;
    gw_lease_t *lease = req->lease;
    gw_cand_t *c = &lease->cands[req->cand];
    char key[300];
    s_pool_key(c, key, sizeof key);
    gw_up_t *up = req->websocket ? NULL : s_pool_take(gw->pool, key); // a tunnel's is its own
    if (up) {
        up->reused = true;
        up->connected = true;
    } else {
        int err = 0;
        up = s_up_connect(gw, addr, addrlen, key, &err);
        if (up == NULL) {
            s_attempt_failed(req, err == ECONNREFUSED ? "refused" : "reset", true);
            return;
        }
    }
    up->req = req;
    up->got_bytes = false;
    req->up = up;
    s_resp_reset(up);
    ev_set_cb(&up->rio, s_on_up_readable);
    ev_set_cb(&up->timer, s_on_up_timer);
    s_build_head(req, c, &up->out);
    if (req->body_started) {
        // a retry: the held body goes again (only reached when it is whole)
        const char *held = gw_buf_head(&req->hold);
        size_t len = gw_buf_len(&req->hold);
        if (len)
            s_append_body(req, held, len);
        if (req->body_done && req->chunked)
            gw_buf_append(&up->out, PROTO_LIT("0\r\n\r\n"));
    }
    if (up->connected) {
        ev_io_start(gw->loop, &up->rio);
        s_up_arm(up, (double) lease->timeout_ms / 1000.0);
        s_up_flush(up);
        gw_req_pump_body(req);
    } else {
        ev_io_start(gw->loop, &up->wio);
        s_up_arm(up, (double) gw->cfg->connect_timeout_ms / 1000.0);
    }
}

//  Attempt the candidate at its name's addresses (gw_dns rotates them, so
//  successive requests start on successive addresses): the first now, the
//  next ones if a connect fails (s_attempt_failed).
static void
s_attempt_addrs(gw_req_t *req, const struct sockaddr_storage *addrs, size_t count)
{
    req->naddrs = (uint8_t) (count < GW_ADDRS_MAX ? count : GW_ADDRS_MAX);
    memcpy(req->addrs, addrs, req->naddrs * sizeof *addrs);
    req->addr_i = 0;
    s_attempt_at(req, &req->addrs[0], proto_resolve_addrlen(&req->addrs[0]));
}

static void
s_attempt(gw_req_t *req)
{
    gw_actor_t *gw = req->gw;
    gw_lease_t *lease = req->lease;
    int idx = gw_lease_pick(lease, req->tried, req->client_ip, gw_actor_random(gw));
    if (idx < 0) {
        if (req->attempts == 0)
            gw_req_respond_text(req, 503, "Service Unavailable - VM not responding");
        else
            gw_req_respond_text(req, 502, "Bad Gateway");
        return;
    }
    req->cand = idx;
    req->tried |= (uint64_t) 1 << idx;
    req->attempts++;
    gw_cand_t *c = &lease->cands[idx];
    req->naddrs = 0;
    if (c->addrlen > 0) {
        s_attempt_at(req, &c->addr, c->addrlen);
        return;
    }
    // a backend given by name: gw_dns answers from its cache, or the
    // request waits for the query (gw_proxy_on_dns goes on)
    const struct sockaddr_storage *addrs = NULL;
    size_t count = 0;
    switch (gw_dns_get(gw->dns, c->host, c->port, &req->dns, &addrs, &count)) {
        case GW_DNS_READY:
            s_attempt_addrs(req, addrs, count);
            return;
        case GW_DNS_PENDING:
            return;
        case GW_DNS_FAILED:
            s_attempt_failed(req, "unresolved", true);
            return;
    }
}

void
gw_proxy_on_dns(gw_dns_waiter_t *w,
                gw_dns_status_t status,
                const struct sockaddr_storage *addrs,
                size_t count,
                void *arg)
{
    (void) arg;
    gw_req_t *req = (gw_req_t *) (void *) ((char *) w - offsetof(gw_req_t, dns));
    if (status == GW_DNS_READY && count > 0)
        s_attempt_addrs(req, addrs, count);
    else
        s_attempt_failed(req, "unresolved", true);
}

//  503 queue full: the route's places and its queue are taken, or the
//  request waited queueTimeoutMs (HAProxy answers both with 503 too).
static void
s_queue_full(gw_req_t *req)
{
    gw_req_respond(req, 503, NULL, PROTO_LIT("Service Unavailable - queue full"),
                   "Retry-After: 1\r\n");
}

void
gw_proxy_start(gw_req_t *req)
{
    req->hold_ok = true;
    req->websocket = s_is_websocket(req); // over TLS too: the tunnel reads the client's SSL
    gw_lease_t *lease = req->lease;
    if (lease->req_active == 0) { // a lease without limits (older router): none apply
        s_attempt(req);
        return;
    }
    uint32_t wait_ms = lease->queue_timeout_ms ? lease->queue_timeout_ms : lease->timeout_ms;
    switch (gw_queues_enter(req->gw->queues, &req->qwait, lease->route, lease->req_active,
                            lease->req_queue, wait_ms)) {
        case GW_QUEUE_GO:
            s_attempt(req);
            return;
        case GW_QUEUE_WAIT:
            return; // gw_proxy_on_queue goes on
        case GW_QUEUE_FULL:
            s_queue_full(req);
            return;
    }
}

bool
gw_proxy_queued(const gw_req_t *req)
{
    return req->qwait.slot != NULL && !req->qwait.active;
}

void
gw_proxy_on_queue(gw_qwait_t *w, bool go, void *arg)
{
    (void) arg;
    gw_req_t *req = (gw_req_t *) (void *) ((char *) w - offsetof(gw_req_t, qwait));
    if (go)
        s_attempt(req);
    else
        s_queue_full(req);
}

void
gw_proxy_client_drained(gw_req_t *req)
{
    gw_up_t *up = req->up;
    if (up == NULL || req->phase != GW_PHASE_RESPONDING)
        return;
    if (up->splicing) {
        (void) s_splice_pump(up);
        return;
    }
    ev_io_start(up->gw->loop, &up->rio);
    if (gw_buf_len(&up->in) > 0)
        (void) s_parse_response(up, false);
}

void
gw_proxy_release(gw_req_t *req)
{
    gw_dns_cancel(req->gw->dns, &req->dns);
    gw_up_t *up = req->up;
    if (up != NULL) {
        req->up = NULL;
        up->req = NULL;
        bool reusable = up->msg_done && up->keep_alive && req->body_done
                        && gw_buf_len(&up->out) == 0 && gw_buf_len(&up->in) == 0
                        && !req->gw->draining;
        if (reusable)
            s_pool_put(req->gw->pool, up);
        else
            s_up_close(&up);
    }
    // last: the next queued request of the route may take the pooled connection
    gw_queues_leave(req->gw->queues, &req->qwait);
}

bool
gw_proxy_has_upstream(const gw_req_t *req)
{
    return req->up != NULL;
}

void
gw_proxy_abort(gw_req_t *req)
{
    gw_dns_cancel(req->gw->dns, &req->dns);
    if (req->up) {
        req->up->req = NULL;
        s_up_close(&req->up);
    }
    gw_queues_leave(req->gw->queues, &req->qwait);
}
