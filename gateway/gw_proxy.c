/*  gw_proxy - upstream attempts, retries, response relay, keep-alive pool.

    An attempt picks a candidate inside the lease (the strategy applied per
    request), takes an idle pooled connection to it or connects anew, and
    writes the rewritten head, then the body as the client sends it (bodies
    up to GW_HOLD_MAX are also held for a retry). A failed attempt
    (refused, reset before any response byte, connect timeout) is reported
    as upstream.failed, takes the backend out of this lease at once, and is
    retried on another candidate while that is safe: the connect failed, or
    the method is idempotent and the whole body is still held. The response
    head is rewritten (hop-by-hop headers out, X-Request-Id in) and the body
    streamed through http-parser, re-chunked when the client needs it.
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

#include "gw_conn.h"
#include "gw_proxy.h"
#include "proto_log.h"
#include "proto_util.h"

#define S_POOL_BUCKETS  1024
#define S_POOL_MAX_IDLE 1024
#define S_POOL_IDLE_S   60.0

struct gw_pool {
    gw_actor_t *gw;                   // the actor
    gw_up_t *buckets[S_POOL_BUCKETS]; // idle connections by key hash
    size_t idle;                      // how many
};

static void s_attempt(gw_req_t *req);
static void s_up_close(gw_up_t **up_p);

// --------------------------------------------------------------------------
// Pool

static size_t
s_pool_hash(const char *key)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *) key; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return (size_t) (h % S_POOL_BUCKETS);
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
    gw_buf_reset(&up->in);
    gw_buf_reset(&up->out);
    ev_set_cb(&up->rio, s_on_idle_event);
    ev_io_start(loop, &up->rio);
    ev_set_cb(&up->timer, s_on_idle_timer);
    ev_timer_set(&up->timer, S_POOL_IDLE_S, 0.);
    ev_timer_start(loop, &up->timer);
    size_t b = s_pool_hash(up->key);
    up->pool_prev = NULL;
    up->pool_next = pool->buckets[b];
    if (up->pool_next)
        up->pool_next->pool_prev = up;
    pool->buckets[b] = up;
    pool->idle++;
}

static gw_up_t *
s_pool_take(gw_pool_t *pool, const char *key)
{
    for (gw_up_t *up = pool->buckets[s_pool_hash(key)]; up; up = up->pool_next) {
        if (strcmp(up->key, key) != 0)
            continue;
        s_pool_unlink(pool, up);
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
s_up_connect(gw_actor_t *gw, const gw_cand_t *c, const char *key, int *err)
{
    int fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = errno;
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *) &c->addr, c->addrlen) != 0 && errno != EINPROGRESS) {
        *err = errno;
        close(fd);
        return NULL;
    }
    gw_up_t *up = proto_xcalloc(1, sizeof *up);
    up->gw = gw;
    up->fd = fd;
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

//  True if the Connection header value (c, len bytes; may be NULL) lists
//  this field's name.
static bool
s_listed_in_connection(const gw_req_t *req, const gw_field_t *f, const char *c, size_t len)
{
    const char *name = req->head.data + f->name;
    for (size_t i = 0; c && i < len;) {
        while (i < len && (c[i] == ' ' || c[i] == ','))
            i++;
        size_t j = i;
        while (j < len && c[j] != ',' && c[j] != ' ')
            j++;
        if (j - i == f->name_len && strncasecmp(c + i, name, f->name_len) == 0)
            return true;
        i = j;
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
    gw_buf_append(out, ": ", 2);
    gw_buf_append(out, req->head.data + f->value, f->value_len);
    gw_buf_append(out, "\r\n", 2);
}

static void
s_build_head(gw_req_t *req, const gw_cand_t *c, gw_buf_t *out)
{
    const gw_conn_t *conn = req->conn;
    const gw_lease_t *lease = req->lease;
    static const char *hop_by_hop[] = {"connection",   "keep-alive",       "proxy-connection",
                                       "te",           "trailer",          "transfer-encoding",
                                       "upgrade",      "content-length",   "expect",
                                       "x-request-id", "x-correlation-id", "x-tenant-id"};
    static const char *forwarded[] = {"x-forwarded-for", "x-real-ip", "x-forwarded-proto",
                                      "x-forwarded-host", "x-switchyard-hop"};
    gw_buf_append(out, req->method, strlen(req->method));
    gw_buf_append(out, " ", 1);
    gw_buf_append(out, req->target, req->target_len);
    gw_buf_append(out, " HTTP/1.1\r\n", 11);
    const gw_field_t *xff = NULL, *xri = NULL, *xfp = NULL, *xfh = NULL;
    size_t host_len = 0, conn_len = 0;
    const char *host = gw_req_header(req, "host", &host_len);
    const char *conn_hdr = gw_req_header(req, "connection", &conn_len);
    for (uint32_t i = 0; i < req->nfields; i++) {
        const gw_field_t *f = &req->fields[i];
        bool skip = false;
        for (size_t k = 0; k < PROTO_ARRAY_SIZE(hop_by_hop) && !skip; k++)
            skip = s_name_is(req, f, hop_by_hop[k]);
        for (size_t k = 0; k < PROTO_ARRAY_SIZE(forwarded) && !skip; k++) {
            if (!s_name_is(req, f, forwarded[k]))
                continue;
            skip = true; // ours replace them; a trusted peer's are kept below
            if (conn->trusted) {
                if (k == 0 && xff == NULL)
                    xff = f;
                else if (k == 1 && xri == NULL)
                    xri = f;
                else if (k == 2 && xfp == NULL)
                    xfp = f;
                else if (k == 3 && xfh == NULL)
                    xfh = f;
                else if (k == 4)
                    s_put_field(out, req, f);
            }
        }
        if (skip || s_listed_in_connection(req, f, conn_hdr, conn_len)
            || s_route_sets(lease, req, f))
            continue;
        s_put_field(out, req, f);
    }
    const char *ip = conn->client_ip;
    if (xff) {
        gw_buf_puts(out, "X-Forwarded-For: ");
        gw_buf_append(out, req->head.data + xff->value, xff->value_len);
        gw_buf_printf(out, ", %s\r\n", ip);
    } else {
        gw_buf_printf(out, "X-Forwarded-For: %s\r\n", ip);
    }
    if (xri)
        s_put_field(out, req, xri);
    else
        gw_buf_printf(out, "X-Real-IP: %s\r\n", ip);
    if (xfp)
        s_put_field(out, req, xfp);
    else
        gw_buf_puts(out, "X-Forwarded-Proto: http\r\n");
    if (xfh) {
        s_put_field(out, req, xfh);
    } else if (host) {
        gw_buf_puts(out, "X-Forwarded-Host: ");
        gw_buf_append(out, host, host_len);
        gw_buf_puts(out, "\r\n");
    }
    gw_buf_printf(out, "X-Request-Id: %s\r\nX-Correlation-Id: %s\r\n", req->rid, req->rid);
    if (lease->wildcard) {
        const char *dot = strchr(req->host, '.');
        if (dot && dot > req->host)
            gw_buf_printf(out, "X-Tenant-Id: %.*s\r\n", (int) (dot - req->host), req->host);
    }
    if (c->hop)
        gw_buf_puts(out, "X-Switchyard-Hop: 1\r\n");
    for (uint32_t i = 0; i < lease->nheaders; i++)
        gw_buf_printf(out, "%s: %s\r\n", lease->headers[i].key, lease->headers[i].value);
    if (req->chunked)
        gw_buf_puts(out, "Transfer-Encoding: chunked\r\n");
    else if (req->has_body)
        gw_buf_printf(out, "Content-Length: %llu\r\n", (unsigned long long) req->content_length);
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
        gw_buf_append(&up->out, "\r\n", 2);
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
        gw_buf_append(&req->up->out, "0\r\n\r\n", 5);
    s_up_flush(req->up);
}

// --------------------------------------------------------------------------
// Failures and retries

static void
s_report_failure(gw_req_t *req, const char *reason)
{
    gw_actor_t *gw = req->conn->gw;
    gw->upstream_fail++;
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
    gw_conn_respond(req->conn, 502, NULL, "Bad Gateway", 11, NULL);
}

// --------------------------------------------------------------------------
// The response

static int
s_on_resp_headers(http_parser *p)
{
    gw_up_t *up = p->data;
    gw_req_t *req = up->req;
    gw_conn_t *conn = req->conn;
    const char *head = gw_buf_head(&up->in);
    size_t avail = gw_buf_len(&up->in);
    // the head ends at the first blank line (CRLF CRLF, or a bare LF LF from a
    // lax backend); never search the body that follows it
    const char *end = memmem(head, avail, "\r\n\r\n", 4);
    size_t scope = end ? (size_t) (end - head) + 2 : avail;
    const char *lf_end = memmem(head, scope, "\n\n", 2);
    if (end == NULL || (lf_end && lf_end < end))
        end = lf_end;
    int status = p->status_code;
    req->status = status;
    req->upstream_us = proto_mono_us();
    bool no_body = req->head_request || status == 204 || status == 304 || status / 100 == 1;
    bool has_length = !(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX;
    up->keep_alive = http_should_keep_alive(p) != 0;

    gw_buf_t out = {0};
    // status line: keep the backend's reason phrase
    const char *sp = memchr(head, ' ', (size_t) (end - head));
    const char *eol = memchr(head, '\n', (size_t) (end - head) + 1);
    const char *reason = sp && sp + 4 < eol ? sp + 5 : NULL;
    size_t rlen = reason ? (size_t) (eol - reason) : 0;
    if (rlen && reason[rlen - 1] == '\r')
        rlen--;
    gw_buf_printf(&out, "HTTP/1.1 %d ", status);
    if (rlen)
        gw_buf_append(&out, reason, rlen);
    else
        gw_buf_puts(&out, gw_status_reason(status));
    gw_buf_puts(&out, "\r\n");

    // fields: everything but hop-by-hop ones and the names the backend's
    // Connection header lists
    const char *conn_val = NULL;
    size_t conn_len = 0;
    for (const char *line = eol + 1; line < end;) {
        const char *le = memchr(line, '\n', (size_t) (end + 2 - line));
        if (le == NULL)
            break;
        const char *colon = memchr(line, ':', (size_t) (le - line));
        if (colon && colon - line == 10 && strncasecmp(line, "connection", 10) == 0) {
            conn_val = colon + 1;
            conn_len = (size_t) (le - conn_val);
        }
        line = le + 1;
    }
    for (const char *line = eol + 1; line < end;) {
        const char *le = memchr(line, '\n', (size_t) (end + 2 - line));
        if (le == NULL)
            break;
        const char *colon = memchr(line, ':', (size_t) (le - line));
        size_t len = (size_t) (le - line) + 1;
        if (colon) {
            size_t nlen = (size_t) (colon - line);
            static const char *drop[] = {"connection", "keep-alive",   "proxy-connection",
                                         "te",         "trailer",      "transfer-encoding",
                                         "upgrade",    "x-request-id", "x-correlation-id"};
            bool skip = false;
            for (size_t k = 0; k < PROTO_ARRAY_SIZE(drop) && !skip; k++)
                skip = nlen == strlen(drop[k]) && strncasecmp(line, drop[k], nlen) == 0;
            if (!skip && nlen == 14 && strncasecmp(line, "content-length", 14) == 0)
                skip = !has_length && !no_body;
            for (size_t i = 0; conn_val && !skip && i < conn_len;) {
                while (i < conn_len && (conn_val[i] == ' ' || conn_val[i] == ','))
                    i++;
                size_t j = i;
                while (j < conn_len && conn_val[j] != ',' && conn_val[j] != ' '
                       && conn_val[j] != '\r')
                    j++;
                skip = j - i == nlen && strncasecmp(conn_val + i, line, nlen) == 0;
                i = j + 1;
            }
            if (!skip) {
                gw_buf_append(&out, line, len - 1);
                if (len < 2 || line[len - 2] != '\r')
                    gw_buf_puts(&out, "\r\n");
                else
                    gw_buf_puts(&out, "\n");
            }
        }
        line = le + 1;
    }
    gw_buf_printf(&out, "X-Request-Id: %s\r\n", req->rid);
    if (req->client_sent_corr)
        gw_buf_printf(&out, "X-Correlation-Id: %s\r\n", req->rid);
    req->resp_chunked = false;
    if (!no_body && !has_length) {
        if (req->minor >= 1) {
            req->resp_chunked = true;
            gw_buf_puts(&out, "Transfer-Encoding: chunked\r\n");
        } else {
            req->close_after = true; // HTTP/1.0 client: the end is the close
        }
    }
    if (req->close_after || !req->keep_alive || conn->gw->draining || !req->body_done)
        req->close_after = !req->keep_alive || req->close_after || conn->gw->draining;
    if (req->close_after)
        gw_buf_puts(&out, "Connection: close\r\n");
    else if (req->minor == 0)
        gw_buf_puts(&out, "Connection: keep-alive\r\n");
    gw_buf_puts(&out, "\r\n");
    gw_conn_send(conn, gw_buf_head(&out), gw_buf_len(&out));
    req->bytes_out += 0; // counted as body bytes below
    gw_buf_free(&out);
    req->state = GW_REQ_RESPONDING;
    proto_strlcpy(req->backend, req->lease->cands[req->cand].id, sizeof req->backend);
    return req->head_request ? 1 : 0; // HEAD: no body follows
}

static int
s_on_resp_body(http_parser *p, const char *at, size_t len)
{
    gw_up_t *up = p->data;
    gw_req_t *req = up->req;
    if (req->resp_chunked) {
        char size[24];
        int n = snprintf(size, sizeof size, "%zx\r\n", len);
        gw_conn_send(req->conn, size, (size_t) n);
        gw_conn_send(req->conn, at, len);
        gw_conn_send(req->conn, "\r\n", 2);
    } else {
        gw_conn_send(req->conn, at, len);
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
    .on_headers_complete = s_on_resp_headers,
    .on_body = s_on_resp_body,
    .on_message_complete = s_on_resp_complete,
};

//  Run the response bytes we have through the parser. Returns -1 when the
//  request is over (finished or failed) and the caller must not touch it.
static int
s_parse_response(gw_up_t *up, bool eof)
{
    gw_req_t *req = up->req;
    gw_conn_t *conn = req->conn;
    if (!up->head_done) {
        // NUL after the bytes (not counted), for the head's string helpers
        gw_buf_reserve(&up->in, 1)[0] = '\0';
        const char *head = gw_buf_head(&up->in);
        size_t len = gw_buf_len(&up->in);
        if (memmem(head, len, "\r\n\r\n", 4) == NULL && memmem(head, len, "\n\n", 2) == NULL) {
            if (len > GW_RESP_HEAD_MAX || eof) {
                gw_conn_respond(conn, 502, NULL, "Bad Gateway", 11, NULL);
                return -1;
            }
            return 0;
        }
        up->head_done = true;
    }
    while (gw_buf_len(&up->in) > 0 || eof) {
        if (gw_conn_out_full(conn)) {
            ev_io_stop(up->gw->loop, &up->rio); // the client is slow: stop reading
            return 0;
        }
        size_t len = gw_buf_len(&up->in);
        if (len > 65536)
            len = 65536;
        size_t n = http_parser_execute(&up->parser, &s_resp_settings, gw_buf_head(&up->in), len);
        enum http_errno err = HTTP_PARSER_ERRNO(&up->parser);
        gw_buf_consume(&up->in, n);
        if (err != HPE_OK && err != HPE_PAUSED) {
            if (req->state != GW_REQ_RESPONDING) {
                gw_conn_respond(conn, 502, NULL, "Bad Gateway", 11, NULL);
            } else {
                gw_conn_abort(conn);
            }
            return -1;
        }
        if (up->msg_done) {
            int status = req->status;
            if (status / 100 == 1 && status != 101) {
                // an interim response: we sent our own 100 Continue; wait for the real one
                up->msg_done = false;
                up->head_done = false;
                req->state = GW_REQ_SENDING;
                http_parser_init(&up->parser, HTTP_RESPONSE);
                up->parser.data = up;
                return s_parse_response(up, eof);
            }
            if (req->resp_chunked)
                gw_conn_send(conn, "0\r\n\r\n", 5);
            if (gw_buf_len(&up->in) > 0)
                up->keep_alive = false; // extra bytes after the response: do not reuse
            gw_conn_finish(conn);
            return -1;
        }
        if (eof && n == len) {
            // end of a close-delimited body, or a truncated one
            http_parser_execute(&up->parser, &s_resp_settings, NULL, 0);
            if (up->msg_done) {
                up->keep_alive = false;
                if (req->resp_chunked)
                    gw_conn_send(conn, "0\r\n\r\n", 5);
                gw_conn_finish(conn);
            } else {
                gw_conn_abort(conn);
            }
            return -1;
        }
    }
    return 0;
}

static void
s_on_up_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    (void) revents;
    gw_up_t *up = w->data;
    gw_req_t *req = up->req;
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
    gw_conn_t *conn = req->conn;
    gw_conn_cork(conn); // head and body of what we read leave in one write
    if (s_parse_response(up, n <= 0) == 0)
        gw_conn_uncork(conn); // still going (on -1 the request is over and flushed)
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
        req->state = GW_REQ_SENDING;
        ev_io_start(up->gw->loop, &up->rio);
        s_up_arm(up, (double) req->lease->timeout_ms / 1000.0);
    }
    bool was_full = gw_buf_len(&up->out) > GW_OUT_HIGH;
    s_up_flush(up);
    if (gw_buf_len(&up->out) < GW_OUT_LOW || was_full)
        gw_conn_pump_body(req->conn);
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
    if (req->state == GW_REQ_RESPONDING) {
        gw_conn_abort(req->conn); // mid-body silence: nothing else can be said
        return;
    }
    s_up_close(&req->up);
    gw_conn_respond(req->conn, 504, NULL, "Gateway Timeout", 15, NULL);
}

// --------------------------------------------------------------------------
// Attempts

static void
s_attempt(gw_req_t *req)
{
    gw_actor_t *gw = req->conn->gw;
    gw_lease_t *lease = req->lease;
    int idx = gw_lease_pick(lease, req->tried, req->conn->client_ip, gw_actor_random(gw));
    if (idx < 0) {
        if (req->attempts == 0)
            gw_conn_respond(req->conn, 503, NULL, "Service Unavailable - VM not responding", 39,
                            NULL);
        else
            gw_conn_respond(req->conn, 502, NULL, "Bad Gateway", 11, NULL);
        return;
    }
    req->cand = idx;
    req->tried |= (uint64_t) 1 << idx;
    req->attempts++;
    gw_cand_t *c = &lease->cands[idx];
    char key[300];
    snprintf(key, sizeof key, "%s:%u", c->host, c->port);
    if (c->addrlen == 0) {
        // names are resolved by the pick path's resolver (later issue); a
        // backend given by name cannot be reached yet
        s_attempt_failed(req, "refused", true);
        return;
    }
    gw_up_t *up = s_pool_take(gw->pool, key);
    if (up) {
        up->reused = true;
        up->connected = true;
    } else {
        int err = 0;
        up = s_up_connect(gw, c, key, &err);
        if (up == NULL) {
            s_attempt_failed(req, err == ECONNREFUSED ? "refused" : "reset", true);
            return;
        }
    }
    up->req = req;
    up->got_bytes = up->head_done = up->msg_done = false;
    req->up = up;
    http_parser_init(&up->parser, HTTP_RESPONSE);
    up->parser.data = up;
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
            gw_buf_append(&up->out, "0\r\n\r\n", 5);
    }
    if (up->connected) {
        req->state = GW_REQ_SENDING;
        ev_io_start(gw->loop, &up->rio);
        s_up_arm(up, (double) lease->timeout_ms / 1000.0);
        s_up_flush(up);
        gw_conn_pump_body(req->conn);
    } else {
        req->state = GW_REQ_CONNECTING;
        ev_io_start(gw->loop, &up->wio);
        s_up_arm(up, (double) gw->cfg->connect_timeout_ms / 1000.0);
    }
}

void
gw_proxy_start(gw_req_t *req)
{
    req->hold_ok = true;
    s_attempt(req);
}

void
gw_proxy_client_drained(gw_req_t *req)
{
    gw_up_t *up = req->up;
    if (up == NULL || req->state != GW_REQ_RESPONDING)
        return;
    ev_io_start(up->gw->loop, &up->rio);
    if (gw_buf_len(&up->in) > 0)
        (void) s_parse_response(up, false);
}

void
gw_proxy_release(gw_req_t *req)
{
    gw_up_t *up = req->up;
    if (up == NULL)
        return;
    req->up = NULL;
    up->req = NULL;
    bool reusable = up->msg_done && up->keep_alive && req->body_done && gw_buf_len(&up->out) == 0
                    && gw_buf_len(&up->in) == 0 && !req->conn->gw->draining;
    if (reusable)
        s_pool_put(req->conn->gw->pool, up);
    else
        s_up_close(&up);
}

void
gw_proxy_abort(gw_req_t *req)
{
    if (req->up) {
        req->up->req = NULL;
        s_up_close(&req->up);
    }
}
