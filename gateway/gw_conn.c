/*  gw_conn - client connections: heads, bodies, pipelining, keep-alive.

    A connection reads into its input buffer. With no request in progress,
    gw_prescan checks the head strictly (SPEC §3); a valid head becomes a
    gw_req and its bytes are copied out of the buffer. Bytes after the head
    stay in the buffer: the body is fed through http-parser (which decodes
    chunked framing) only when the upstream has room, so a slow backend
    slows the client down instead of filling memory, and pipelined requests
    wait their turn. One request is served at a time; responses therefore
    leave in order.
*/
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gw_admin.h"
#include "gw_conn.h"
#include "gw_prescan.h"
#include "gw_proxy.h"
#include "proto_log.h"
#include "proto_util.h"

static void s_process(gw_conn_t *conn);
static void s_close(gw_conn_t *conn);
static void s_make_uuid(gw_actor_t *gw, char *out);

//  A request record for a response made before any head was understood
//  (408, 400, 414, 431): it gets a request id and closes the connection.
static gw_req_t *
s_bare_req(gw_conn_t *conn)
{
    gw_req_t *req = proto_xcalloc(1, sizeof *req);
    req->conn = conn;
    req->cand = -1;
    req->method = "-";
    req->target = "-";
    req->start_us = proto_mono_us();
    req->close_after = true;
    s_make_uuid(conn->gw, req->rid);
    conn->req = req;
    return req;
}

const char *
gw_status_reason(int status)
{
    switch (status) {
        case 100:
            return "Continue";
        case 101:
            return "Switching Protocols";
        case 200:
            return "OK";
        case 201:
            return "Created";
        case 202:
            return "Accepted";
        case 204:
            return "No Content";
        case 206:
            return "Partial Content";
        case 301:
            return "Moved Permanently";
        case 302:
            return "Found";
        case 304:
            return "Not Modified";
        case 307:
            return "Temporary Redirect";
        case 308:
            return "Permanent Redirect";
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 408:
            return "Request Timeout";
        case 409:
            return "Conflict";
        case 413:
            return "Payload Too Large";
        case 414:
            return "URI Too Long";
        case 429:
            return "Too Many Requests";
        case 431:
            return "Request Header Fields Too Large";
        case 499:
            return "Client Closed Request";
        case 500:
            return "Internal Server Error";
        case 502:
            return "Bad Gateway";
        case 503:
            return "Service Unavailable";
        case 504:
            return "Gateway Timeout";
        default:
            return status < 300   ? "OK"
                   : status < 400 ? "Redirect"
                   : status < 500 ? "Error"
                                  : "Server Error";
    }
}

// --------------------------------------------------------------------------
// Output

bool
gw_conn_out_full(const gw_conn_t *conn)
{
    return gw_buf_len(&conn->out) > GW_OUT_HIGH;
}

static void
s_want_write(gw_conn_t *conn)
{
    if (gw_buf_len(&conn->out) > 0)
        ev_io_start(conn->gw->loop, &conn->wio);
    else
        ev_io_stop(conn->gw->loop, &conn->wio);
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

//  Write what we can. Returns -1 if the connection was closed or broke.
static int
s_flush(gw_conn_t *conn)
{
    if (conn->broken)
        return -1;
    while (gw_buf_len(&conn->out) > 0) {
        ssize_t n = gw_buf_write(&conn->out, conn->fd);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            s_break(conn);
            return -1;
        }
    }
    s_want_write(conn);
    // a connection to close goes once its last response is written and no
    // request is being finished (gw_conn_finish flushes again after it)
    if (gw_buf_len(&conn->out) == 0 && conn->closing && conn->req == NULL) {
        s_close(conn);
        return -1;
    }
    return 0;
}

void
gw_conn_send(gw_conn_t *conn, const void *data, size_t len)
{
    if (conn->broken)
        return;
    gw_buf_append(&conn->out, data, len);
    if (!conn->corked && !ev_is_active(&conn->wio))
        (void) s_flush(conn); // write at once; the watcher takes the rest
}

void
gw_conn_cork(gw_conn_t *conn)
{
    conn->corked = true;
}

void
gw_conn_uncork(gw_conn_t *conn)
{
    conn->corked = false;
    if (!ev_is_active(&conn->wio))
        (void) s_flush(conn);
}

static void
s_on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    (void) revents;
    gw_conn_t *conn = w->data;
    bool was_full = gw_conn_out_full(conn);
    if (s_flush(conn) != 0)
        return;
    if (conn->req && conn->req->up && gw_buf_len(&conn->out) < GW_OUT_LOW
        && (was_full || conn->req->state == GW_REQ_RESPONDING))
        gw_proxy_client_drained(conn->req);
}

// --------------------------------------------------------------------------
// Timers

static void
s_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    gw_conn_t *conn = w->data;
    if (conn->req != NULL)
        return; // the request's own deadlines apply
    if (gw_buf_len(&conn->in) == 0 && conn->served > 0) {
        s_close(conn); // idle keep-alive: closed silently
        return;
    }
    // headers not complete in time
    (void) s_bare_req(conn);
    gw_conn_respond(conn, 408, NULL, "Request Timeout", 15, NULL);
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

// --------------------------------------------------------------------------
// Lifecycle

static void
s_start_reading(gw_conn_t *conn)
{
    if (!conn->reading && !conn->eof) {
        ev_io_start(conn->gw->loop, &conn->rio);
        conn->reading = true;
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
    char path[2049];
    size_t plen = req->target_len < sizeof path - 1 ? req->target_len : sizeof path - 1;
    memcpy(path, req->target, plen);
    path[plen] = '\0';
    char redacted[2049];
    proto_log_redact_query(path, redacted, sizeof redacted);
    const char *vhost = req->lease && req->lease->status == GW_LEASE_OK ? req->lease->vhost : "";
    gw->requests++;
    if (conn->admin)
        return; // the admin listener is not traffic
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
    if (gw->cfg->access_log)
        log_info("access", LOG_S("request_id", req->rid), LOG_S("method", req->method),
                 LOG_S("host", req->host), LOG_S("path", redacted), LOG_I("status", req->status),
                 LOG_U("bytes", req->bytes_out), LOG_F("duration_ms", (double) dur / 1000.0),
                 LOG_S("upstream", req->backend), LOG_S("region", req->region),
                 LOG_S("client_ip", conn->client_ip), LOG_S("vhost", vhost),
                 LOG_B("stale", req->stale));
}

static void
s_close(gw_conn_t *conn)
{
    gw_actor_t *gw = conn->gw;
    gw_req_t *req = conn->req;
    if (req) {
        gw_leases_cancel(gw->leases, &req->waiter);
        gw_admin_cancel(req);
        gw_proxy_abort(req);
        if (req->state != GW_REQ_DONE) {
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
    close(conn->fd);
    gw_buf_free(&conn->in);
    gw_buf_free(&conn->out);
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        gw->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    gw->nconns--;
    free(conn);
}

void
gw_conn_abort(gw_conn_t *conn)
{
    s_close(conn);
}

void
gw_conn_close_idle(gw_actor_t *gw)
{
    gw_conn_t *conn = gw->conns;
    while (conn) {
        gw_conn_t *next = conn->next;
        if (conn->req == NULL && gw_buf_len(&conn->out) == 0)
            s_close(conn);
        conn = next;
    }
}

void
gw_conn_close_all(gw_actor_t *gw)
{
    while (gw->conns)
        s_close(gw->conns);
}

// --------------------------------------------------------------------------
// Proxy-made responses

void
gw_conn_respond(
    gw_conn_t *conn, int status, const char *ctype, const char *body, size_t len, const char *extra)
{
    gw_req_t *req = conn->req;
    gw_buf_t head = {0};
    bool close_now = conn->closing || req->close_after || !req->keep_alive || conn->gw->draining
                     || !req->body_done;
    if (status == 400 || status == 408 || status == 414 || status == 431)
        close_now = true;
    gw_buf_printf(&head, "HTTP/1.1 %d %s\r\n", status, gw_status_reason(status));
    if (len > 0 || ctype)
        gw_buf_printf(&head, "Content-Type: %s\r\n", ctype ? ctype : "text/plain");
    gw_buf_printf(&head, "Content-Length: %zu\r\n", len);
    if (req->rid[0]) {
        gw_buf_printf(&head, "X-Request-Id: %s\r\n", req->rid);
        if (req->client_sent_corr)
            gw_buf_printf(&head, "X-Correlation-Id: %s\r\n", req->rid);
    }
    if (close_now)
        gw_buf_puts(&head, "Connection: close\r\n");
    else if (req->minor == 0)
        gw_buf_puts(&head, "Connection: keep-alive\r\n");
    if (extra)
        gw_buf_puts(&head, extra);
    gw_buf_puts(&head, "\r\n");
    if (!req->head_request)
        gw_buf_append(&head, body, len);
    req->status = status;
    req->bytes_out += len;
    req->close_after = close_now;
    gw_conn_send(conn, gw_buf_head(&head), gw_buf_len(&head));
    gw_buf_free(&head);
    gw_conn_finish(conn);
}

// --------------------------------------------------------------------------
// Requests

const char *
gw_req_header(const gw_req_t *req, const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    for (uint32_t i = 0; i < req->nfields; i++) {
        const gw_field_t *f = &req->fields[i];
        if (f->name_len == nlen && strncasecmp(req->head.data + f->name, name, nlen) == 0) {
            if (len)
                *len = f->value_len;
            return req->head.data + f->value;
        }
    }
    return NULL;
}

//  An id of at most 128 characters of [A-Za-z0-9._:-].
static bool
s_valid_id(const char *s, size_t len)
{
    if (len == 0 || len > GW_RID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.'
              || c == '_' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

static void
s_make_uuid(gw_actor_t *gw, char *out)
{
    uint64_t a = gw_actor_random(gw), b = gw_actor_random(gw);
    a = (a & 0xffffffffffff0fffull) | 0x0000000000004000ull; // version 4
    b = (b & 0x3fffffffffffffffull) | 0x8000000000000000ull; // variant 10
    snprintf(out, 37, "%08x-%04x-%04x-%04x-%012llx", (unsigned) (a >> 32),
             (unsigned) ((a >> 16) & 0xffff), (unsigned) (a & 0xffff), (unsigned) (b >> 48),
             (unsigned long long) (b & 0xffffffffffffull));
}

static void
s_request_id(gw_conn_t *conn, gw_req_t *req)
{
    size_t rlen = 0, clen = 0;
    const char *rid = gw_req_header(req, "x-request-id", &rlen);
    const char *cid = gw_req_header(req, "x-correlation-id", &clen);
    req->client_sent_corr = cid != NULL;
    if (rid && s_valid_id(rid, rlen)) {
        memcpy(req->rid, rid, rlen);
        req->rid[rlen] = '\0';
    } else if (cid && s_valid_id(cid, clen)) {
        memcpy(req->rid, cid, clen);
        req->rid[clen] = '\0';
    } else {
        s_make_uuid(conn->gw, req->rid);
    }
}

//  The value of a query parameter of the target, copied into out.
static bool
s_query_param(const gw_req_t *req, const char *name, char *out, size_t cap)
{
    const char *q = memchr(req->target, '?', req->target_len);
    if (q == NULL)
        return false;
    const char *end = req->target + req->target_len;
    size_t nlen = strlen(name);
    for (const char *p = q + 1; p < end;) {
        const char *amp = memchr(p, '&', (size_t) (end - p));
        const char *stop = amp ? amp : end;
        if ((size_t) (stop - p) > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            size_t vlen = (size_t) (stop - p) - nlen - 1;
            if (vlen >= cap)
                return false;
            memcpy(out, p + nlen + 1, vlen);
            out[vlen] = '\0';
            return true;
        }
        p = stop + 1;
    }
    return false;
}

static bool
s_valid_region(const char *s)
{
    size_t len = strlen(s);
    return len > 0 && len <= 64 && s_valid_id(s, len);
}

//  Split the (already strictly checked) head into method, target, fields.
static int
s_parse_head(gw_req_t *req)
{
    char *p = req->head.data;
    char *end = p + gw_buf_len(&req->head);
    while (p + 1 < end && p[0] == '\r' && p[1] == '\n')
        p += 2; // leading empty lines the prescan allowed
    char *sp1 = memchr(p, ' ', (size_t) (end - p));
    if (sp1 == NULL)
        return -1;
    *sp1 = '\0';
    req->method = p;
    char *target = sp1 + 1;
    char *sp2 = memchr(target, ' ', (size_t) (end - target));
    if (sp2 == NULL)
        return -1;
    *sp2 = '\0';
    req->target = target;
    req->target_len = (uint32_t) (sp2 - target);
    req->minor = sp2[8] == '1' ? 1 : 0; // " HTTP/1.x"
    char *line = memchr(sp2 + 1, '\n', (size_t) (end - sp2 - 1));
    if (line == NULL)
        return -1;
    line++;
    while (line < end && !(line[0] == '\r' && line[1] == '\n')) {
        char *eol = memchr(line, '\r', (size_t) (end - line));
        char *colon = memchr(line, ':', (size_t) (eol - line));
        if (eol == NULL || colon == NULL || req->nfields >= GW_MAX_HEADERS)
            return -1;
        char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t'))
            v++;
        char *ve = eol;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        gw_field_t *f = &req->fields[req->nfields++];
        f->name = (uint32_t) (line - req->head.data);
        f->name_len = (uint16_t) (colon - line);
        f->value = (uint32_t) (v - req->head.data);
        f->value_len = (uint32_t) (ve - v);
        line = eol + 2;
    }
    const char *m = req->method;
    req->idempotent = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "OPTIONS") == 0
                      || strcmp(m, "PUT") == 0 || strcmp(m, "DELETE") == 0
                      || strcmp(m, "TRACE") == 0;
    req->head_request = strcmp(m, "HEAD") == 0;
    return 0;
}

//  Connection/keep-alive semantics of the request.
static void
s_keep_alive(gw_req_t *req)
{
    size_t len;
    const char *c = gw_req_header(req, "connection", &len);
    bool close_token = false, keep_token = false;
    for (size_t i = 0; c && i < len;) {
        while (i < len && (c[i] == ' ' || c[i] == ','))
            i++;
        size_t j = i;
        while (j < len && c[j] != ',')
            j++;
        size_t tlen = j - i;
        while (tlen > 0 && c[i + tlen - 1] == ' ')
            tlen--;
        if (tlen == 5 && strncasecmp(c + i, "close", 5) == 0)
            close_token = true;
        if (tlen == 10 && strncasecmp(c + i, "keep-alive", 10) == 0)
            keep_token = true;
        i = j;
    }
    req->keep_alive = req->minor == 1 ? !close_token : keep_token;
}

//  The gateway's health document (SPEC §10).
void
gw_conn_health_json(gw_conn_t *conn, gw_buf_t *out)
{
    gw_actor_t *gw = conn->gw;
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
    gw_conn_t *conn = req->conn;
    req->lease = lease;
    req->stale = stale;
    if (lease == NULL) {
        gw_conn_respond(conn, 503, NULL, "Service Unavailable", 19, "Retry-After: 1\r\n");
        return;
    }
    if (lease->status == GW_LEASE_NO_ROUTE) {
        gw_conn_respond(conn, 404, NULL, "Service Not Found", 17, NULL);
        return;
    }
    if (lease->status == GW_LEASE_NO_BACKEND || lease->ncands == 0) {
        gw_conn_respond(conn, 503, NULL, "Service Unavailable - VM not responding", 39, NULL);
        return;
    }
    if (!req->chunked && req->content_length > lease->max_body) {
        req->close_after = true;
        gw_conn_respond(conn, 413, NULL, "Payload Too Large", 17, NULL);
        return;
    }
    if (req->expect_continue && req->has_body)
        gw_conn_send(conn, "HTTP/1.1 100 Continue\r\n\r\n", 25);
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
    if (hp && *hp && req->target_len == strlen(hp) && memcmp(req->target, hp, req->target_len) == 0
        && (strcmp(req->method, "GET") == 0 || req->head_request)) {
        gw_buf_t body = {0};
        gw_conn_health_json(conn, &body);
        gw_conn_respond(conn, 200, "application/json", gw_buf_head(&body), gw_buf_len(&body), NULL);
        gw_buf_free(&body);
        return;
    }
    size_t rlen = 0;
    const char *xr = gw_req_header(req, "x-region", &rlen);
    char region[65] = "";
    if (xr && rlen > 0 && rlen < sizeof region) {
        memcpy(region, xr, rlen);
        region[rlen] = '\0';
    } else if (!s_query_param(req, "region", region, sizeof region)) {
        proto_strlcpy(region, gw->cfg->common.region, sizeof region);
    }
    if (!s_valid_region(region)) {
        req->close_after = true;
        gw_conn_respond(conn, 400, NULL, "Bad Request", 11, NULL);
        return;
    }
    proto_strlcpy(req->region, region, sizeof req->region);
    req->state = GW_REQ_DECIDING;
    bool pending, stale;
    gw_lease_t *lease = gw_leases_get(gw->leases, req->host, req->region, conn->client_ip, req->rid,
                                      &req->waiter, &pending, &stale);
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
    if (!conn->admin && conn->req->up)
        gw_proxy_body_end(conn->req);
    return 0;
}

static const http_parser_settings s_settings = {
    .on_body = s_on_body,
    .on_message_complete = s_on_message_complete,
};

//  Feed up to max bytes of the input buffer to the parser. Returns -1 when
//  the framing is bad or the body over its limit (the caller answers).
static int
s_feed(gw_conn_t *conn, size_t max)
{
    size_t len = gw_buf_len(&conn->in);
    if (len > max)
        len = max;
    if (len == 0)
        return 0;
    size_t n = http_parser_execute(&conn->parser, &s_settings, gw_buf_head(&conn->in), len);
    gw_buf_consume(&conn->in, n);
    enum http_errno err = HTTP_PARSER_ERRNO(&conn->parser);
    if (err == HPE_PAUSED || err == HPE_OK)
        return 0;
    return -1;
}

void
gw_conn_pump_body(gw_conn_t *conn)
{
    gw_req_t *req = conn->req;
    if (req == NULL || req->body_done)
        return;
    while (!req->body_done && gw_buf_len(&conn->in) > 0 && !gw_proxy_upstream_full(req)) {
        if (s_feed(conn, 65536) != 0) {
            if (req->status == 0 && req->state != GW_REQ_RESPONDING) {
                gw_proxy_abort(req);
                bool too_big = req->lease && req->body_in > req->lease->max_body;
                req->close_after = true;
                if (too_big)
                    gw_conn_respond(conn, 413, NULL, "Payload Too Large", 17, NULL);
                else
                    gw_conn_respond(conn, 400, NULL, "Bad Request", 11, NULL);
            } else {
                gw_conn_abort(conn);
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
    (void) s_bare_req(conn);
    gw_buf_reset(&conn->in);
    s_stop_reading(conn);
    const char *reason = gw_status_reason(status);
    gw_conn_respond(conn, status, NULL, reason, strlen(reason), NULL);
}

//  A complete, checked head is at the front of the input buffer.
static void
s_begin(gw_conn_t *conn, const gw_prescan_t *scan)
{
    gw_actor_t *gw = conn->gw;
    gw_req_t *req = proto_xcalloc(1, sizeof *req);
    req->conn = conn;
    req->cand = -1;
    req->start_us = proto_mono_us();
    conn->req = req;
    ev_timer_stop(gw->loop, &conn->timer);
    gw_buf_append(&req->head, gw_buf_head(&conn->in), scan->head_len);
    gw_buf_append(&req->head, "", 1); // NUL after the head, for string helpers
    req->head.end--;                  // ...not counted in its length
    if (s_parse_head(req) != 0) {
        s_reject_head(conn, 400);
        return;
    }
    req->chunked = scan->chunked;
    req->content_length = scan->content_length;
    req->has_body = scan->has_body;
    req->body_done = !scan->has_body;
    s_keep_alive(req);
    s_request_id(conn, req);
    size_t len;
    const char *ex = gw_req_header(req, "expect", &len);
    req->expect_continue = ex && len == 12 && strncasecmp(ex, "100-continue", 12) == 0;
    const char *host = gw_req_header(req, "host", &len);
    if (host) {
        // lower-case, port stripped ("[v6]:port" keeps its brackets)
        size_t hl = len;
        if (host[0] == '[') {
            const char *rb = memchr(host, ']', len);
            hl = rb ? (size_t) (rb - host) + 1 : len;
        } else {
            const char *colon = memchr(host, ':', len);
            if (colon)
                hl = (size_t) (colon - host);
        }
        if (hl >= sizeof req->host)
            hl = sizeof req->host - 1;
        for (size_t i = 0; i < hl; i++)
            req->host[i] = (char) (host[i] >= 'A' && host[i] <= 'Z' ? host[i] + 32 : host[i]);
        req->host[hl] = '\0';
    }

    // the head goes through http-parser too, so it tracks the body framing
    http_parser_init(&conn->parser, HTTP_REQUEST);
    conn->parser.data = conn;
    size_t n =
        http_parser_execute(&conn->parser, &s_settings, gw_buf_head(&conn->in), scan->head_len);
    enum http_errno err = HTTP_PARSER_ERRNO(&conn->parser);
    if (n != scan->head_len && err != HPE_PAUSED) {
        s_reject_head(conn, 400);
        return;
    }
    gw_buf_consume(&conn->in, scan->head_len);
    if (!req->has_body)
        req->body_done = true;
    conn->served++;

    if (conn->admin) {
        if (req->content_length > GW_ADMIN_BODY_MAX) {
            req->close_after = true;
            gw_admin_too_large(req);
            return;
        }
        req->state = GW_REQ_ADMIN;
        if (!req->body_done) {
            gw_conn_pump_admin(conn);
            return;
        }
        gw_admin_handle(req);
        return;
    }
    s_route(conn, req);
}

//  Admin bodies are read whole (at most 1 MiB) before the handler runs.
void
gw_conn_pump_admin(gw_conn_t *conn)
{
    gw_req_t *req = conn->req;
    if (s_feed(conn, gw_buf_len(&conn->in)) != 0) {
        req->close_after = true;
        if (gw_buf_len(&req->admin_body) + 1 > GW_ADMIN_BODY_MAX
            || req->body_in > GW_ADMIN_BODY_MAX)
            gw_admin_too_large(req);
        else
            gw_conn_respond(
                conn, 400, "application/json",
                "{\"error\":{\"code\":\"bad_request\",\"message\":\"malformed request body\"}}", 67,
                NULL);
        return;
    }
    if (req->body_done)
        gw_admin_handle(req);
    else
        s_start_reading(conn);
}

static void
s_process(gw_conn_t *conn)
{
    if (conn->req != NULL) {
        if (conn->req->state == GW_REQ_ADMIN && !conn->req->body_done)
            gw_conn_pump_admin(conn);
        else if (conn->req->up)
            gw_conn_pump_body(conn);
        else if (gw_buf_len(&conn->in) >= GW_HOLD_MAX)
            s_stop_reading(conn); // the body waits for an upstream
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
gw_conn_finish(gw_conn_t *conn)
{
    gw_actor_t *gw = conn->gw;
    gw_req_t *req = conn->req;
    if (req == NULL)
        return;
    req->state = GW_REQ_DONE;
    conn->corked = false; // the response is whole: it goes out below or at once
    s_report(conn, req);
    bool close_after = req->close_after || !req->keep_alive || !req->body_done || gw->draining;
    gw_leases_cancel(gw->leases, &req->waiter);
    gw_proxy_release(req);
    s_req_free(&conn->req);
    if (close_after) {
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

static void
s_on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    gw_conn_t *conn = w->data;
    if (revents & EV_READ) {
        bool had = gw_buf_len(&conn->in) > 0;
        ssize_t n = gw_buf_read(&conn->in, conn->fd, GW_READ_CHUNK);
        if (n == 0) {
            conn->eof = true;
            s_stop_reading(conn);
            if (conn->req == NULL
                || (conn->req->state != GW_REQ_RESPONDING && !conn->req->body_done)) {
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
        }
    }
    s_process(conn);
}

void
gw_conn_accept(gw_actor_t *gw, int listen_fd, bool admin)
{
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(listen_fd, (struct sockaddr *) &ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_warn("accept failed", LOG_ERRNO(errno));
            return;
        }
        if (gw->draining || (int64_t) gw->nconns >= gw->cfg->max_connections) {
            gw->rejected++;
            close(fd); // over the limit: accepted and closed at once
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        gw_conn_t *conn = proto_xcalloc(1, sizeof *conn);
        conn->gw = gw;
        conn->fd = fd;
        conn->admin = admin;
        conn->peer = ss;
        conn->accepted_ms = proto_mono_us() / 1000;
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
        conn->next = gw->conns;
        if (gw->conns)
            gw->conns->prev = conn;
        gw->conns = conn;
        gw->nconns++;
        s_start_reading(conn);
        s_arm_timer(conn, gw->cfg->header_timeout_ms); // from accept for the first request
    }
}
