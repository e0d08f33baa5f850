/*  gw_admin - the admin listener's requests.

    /live, /ping, /health and /ready are answered by the gateway itself (an
    apid crash must never fail liveness); /ready pings router and balancer
    over the bus and is ready only when a decision can be made: both answer
    and the router has found a balancer. /api/... needs `Authorization: Bearer <ADMIN_TOKEN>` when a
    token is set, loses its Authorization and Cookie headers (tokens never
    reach the bus or taps), and is handed to apid as admin.request, but for
    /api/v1/stats and /api/v1/stats/... which go to statsd, as /metrics does.
    No handler, or no answer within GATEWAY_ADMIN_TIMEOUT: 503 with a JSON
    error.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw_actor.h"
#include "gw_admin.h"
#include "gw_events.h"
#include "proto_log.h"
#include "proto_util.h"

#define S_READY_TIMEOUT_MS 1000
#define S_MAX_FORWARDED    32

static void
s_json_error(gw_req_t *req, int status, const char *code, const char *message, const char *extra)
{
    char body[512];
    int n =
        snprintf(body, sizeof body,
                 "{\"error\":{\"code\":\"%s\",\"message\":\"%s\",\"field\":null}}", code, message);
    gw_req_respond(req, status, "application/json", body, (size_t) n, extra);
}

void
gw_admin_too_large(gw_req_t *req)
{
    s_json_error(req, 413, "payload_too_large", "request body over 1 MiB", NULL);
}

void
gw_admin_bad_body(gw_req_t *req)
{
    s_json_error(req, 400, "bad_request", "malformed request body", NULL);
}

//  Constant-time comparison, so the token cannot be guessed byte by byte.
static bool
s_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char diff = alen != blen;
    for (size_t i = 0; i < alen; i++)
        diff |= (unsigned char) (a[i] ^ b[i % (blen ? blen : 1)]);
    return diff == 0;
}

static bool
s_authorized(gw_req_t *req)
{
    const char *token = req->gw->cfg->admin_token;
    if (token == NULL || *token == '\0')
        return true;
    size_t len;
    const char *auth = gw_req_header(req, GW_H_AUTHORIZATION, &len);
    if (auth == NULL || len < 7 || strncasecmp(auth, PROTO_LIT("Bearer ")) != 0)
        return false;
    return s_equal(auth + 7, len - 7, token, strlen(token));
}

// --------------------------------------------------------------------------
// Handlers on the bus

void
gw_admin_relay(gw_req_t *req, proto_in_t *in)
{
    if (in == NULL || in->msg.type != PROTO_ADMIN_RESPONSE) {
        s_json_error(req, 503, "unavailable", "the handler did not answer in time", NULL);
        return;
    }
    const proto_admin_response_t *r = &in->msg.admin_response;
    gw_buf_t extra = {0};
    const char *ctype = NULL;
    for (uint32_t i = 0; i < r->headers_count; i++) {
        const char *k = r->headers[i].key, *v = r->headers[i].value;
        if (strcasecmp(k, "content-type") == 0) {
            ctype = v;
            continue;
        }
        // never let a handler smuggle framing or line breaks into our head
        if (strcasecmp(k, "content-length") == 0 || strcasecmp(k, "transfer-encoding") == 0
            || strcasecmp(k, "connection") == 0 || strpbrk(k, "\r\n:") || strpbrk(v, "\r\n"))
            continue;
        gw_buf_printf(&extra, "%s: %s\r\n", k, v);
    }
    int status = r->status >= 100 && r->status <= 599 ? r->status : 502;
    gw_req_respond(req, status, ctype ? ctype : "application/json", (const char *) r->body.data,
                   r->body.size, gw_buf_len(&extra) ? gw_buf_head(&extra) : NULL);
    gw_buf_free(&extra);
}

static void
s_on_response(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    gw_req_t *req = arg;
    req->admin_id = 0;
    gw_admin_relay(req, in);
}

void
gw_admin_hand_over(gw_req_t *req,
                   int kind,
                   const char *path,
                   size_t path_len,
                   const char *query,
                   size_t query_len,
                   proto_reply_fn *fn)
{
    gw_actor_t *gw = req->gw;
    proto_kv_t headers[S_MAX_FORWARDED];
    char names[S_MAX_FORWARDED][64];
    char *values[S_MAX_FORWARDED];
    uint32_t n = 0;
    for (uint32_t i = 0; i < req->nfields && n < S_MAX_FORWARDED; i++) {
        const gw_field_t *f = &req->fields[i];
        if (f->name_len >= sizeof names[0] || f->value_len > 8192
            || (gw_http_flags(f->id) & GW_HF_NO_BUS))
            continue;
        for (size_t c = 0; c < f->name_len; c++) {
            char ch = req->head.data[f->name + c];
            names[n][c] = (char) (ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
        }
        names[n][f->name_len] = '\0';
        values[n] = proto_xmalloc(f->value_len + 1);
        memcpy(values[n], req->head.data + f->value, f->value_len);
        values[n][f->value_len] = '\0';
        headers[n].key = names[n];
        headers[n].value = values[n];
        n++;
    }
    char *p = proto_xmalloc(path_len + 1), *q = proto_xmalloc(query_len + 1);
    memcpy(p, path, path_len);
    p[path_len] = '\0';
    memcpy(q, query, query_len);
    q[query_len] = '\0';
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_ADMIN_REQUEST);
    msg.rid = req->rid;
    msg.admin_request.method = req->method;
    msg.admin_request.path = p;
    msg.admin_request.query = q;
    msg.admin_request.headers = headers;
    msg.admin_request.headers_count = n;
    msg.admin_request.body.data = (const uint8_t *) gw_buf_head(&req->admin_body);
    msg.admin_request.body.size = gw_buf_len(&req->admin_body);
    if (msg.admin_request.body.data == NULL)
        msg.admin_request.body.data = (const uint8_t *) "";
    msg.admin_request.client = req->client_ip;
    msg.admin_request.principal = gw->cfg->admin_principal;
    int rc = proto_bus_request(gw->bus, kind, &msg, gw->cfg->admin_timeout_ms,
                               fn ? fn : s_on_response, req);
    for (uint32_t i = 0; i < n; i++)
        free(values[i]);
    free(p);
    free(q);
    if (rc != 0) {
        char message[96];
        snprintf(message, sizeof message, "no %s is connected", proto_kind_name(kind));
        s_json_error(req, 503, "unavailable", message, NULL);
        return;
    }
    req->admin_id = msg.id;
}

static void
s_ready_answer(gw_req_t *req)
{
    bool ok = req->ready_up[0] && req->ready_up[1];
    char body[160];
    int n = snprintf(body, sizeof body, "{\"status\":\"%s\",\"router\":%s,\"balancer\":%s}",
                     ok ? "ready" : "not ready", req->ready_up[0] ? "true" : "false",
                     req->ready_up[1] ? "true" : "false");
    gw_req_respond(req, ok ? 200 : 503, "application/json", body, (size_t) n, NULL);
}

//  A pong's counter by name, or 0.
static uint64_t
s_pong_counter(const proto_pong_t *pong, const char *name)
{
    for (uint32_t i = 0; i < pong->counters_count; i++)
        if (strcmp(pong->counters[i].name, name) == 0)
            return pong->counters[i].value;
    return 0;
}

static void
s_ready_done(gw_req_t *req, int which, proto_in_t *in)
{
    req->ready_ids[which] = 0;
    req->ready_up[which] = in != NULL && in->msg.type == PROTO_PONG;
    // a router that has not found a balancer yet cannot decide anything
    // nor one whose configuration store has not loaded yet (PostgreSQL)
    if (which == 0 && req->ready_up[0])
        req->ready_up[0] = s_pong_counter(&in->msg.pong, "peers.balancer") > 0
                           && s_pong_counter(&in->msg.pong, "config.loaded") > 0;
    if (--req->ready_pending == 0)
        s_ready_answer(req);
}

static void
s_on_router_pong(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    s_ready_done(arg, 0, in);
}

static void
s_on_balancer_pong(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    s_ready_done(arg, 1, in);
}

static void
s_ready(gw_req_t *req)
{
    gw_actor_t *gw = req->gw;
    const int kinds[2] = {PROTO_KIND_ROUTER, PROTO_KIND_BALANCER};
    proto_reply_fn *fns[2] = {s_on_router_pong, s_on_balancer_pong};
    req->ready_pending = 0;
    for (int i = 0; i < 2; i++) {
        proto_msg_t ping;
        proto_msg_init(&ping, PROTO_PING);
        ping.rid = req->rid;
        if (proto_bus_request(gw->bus, kinds[i], &ping, S_READY_TIMEOUT_MS, fns[i], req) == 0) {
            req->ready_ids[i] = ping.id;
            req->ready_pending++;
        }
    }
    if (req->ready_pending == 0)
        s_ready_answer(req);
}

void
gw_admin_cancel(gw_req_t *req)
{
    gw_actor_t *gw = req->gw;
    gw_events_detach(req);
    if (req->admin_id) {
        proto_bus_cancel(gw->bus, req->admin_id);
        req->admin_id = 0;
    }
    for (int i = 0; i < 2; i++)
        if (req->ready_ids[i]) {
            proto_bus_cancel(gw->bus, req->ready_ids[i]);
            req->ready_ids[i] = 0;
        }
}

static bool
s_path_is(const char *path, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(path, want, len) == 0;
}

void
gw_admin_handle(gw_req_t *req)
{
    const char *target = req->path;
    const char *qmark = memchr(target, '?', req->path_len);
    size_t path_len = qmark ? (size_t) (qmark - target) : req->path_len;
    const char *query = qmark ? qmark + 1 : "";
    size_t query_len = qmark ? req->path_len - path_len - 1 : 0;
    bool get = strcmp(req->method, "GET") == 0 || req->head_request;

    // answered here, never by a handler, never behind the token
    if (get && s_path_is(target, path_len, "/live")) {
        gw_req_respond(req, 200, "application/json", PROTO_LIT("{\"status\":\"alive\"}"), NULL);
        return;
    }
    if (get && s_path_is(target, path_len, "/ping")) {
        gw_req_respond_text(req, 200, "pong");
        return;
    }
    if (get && s_path_is(target, path_len, "/health")) {
        gw_buf_t body = {0};
        gw_req_health_json(req, &body);
        gw_req_respond(req, 200, "application/json", gw_buf_head(&body), gw_buf_len(&body), NULL);
        gw_buf_free(&body);
        return;
    }
    if (get && s_path_is(target, path_len, "/ready")) {
        s_ready(req);
        return;
    }
    if (s_path_is(target, path_len, "/metrics")) {
        gw_admin_hand_over(req, PROTO_KIND_STATSD, target, path_len, query, query_len, NULL);
        return;
    }
    // the dashboard's files hold no data: not behind the token (its API calls are)
    if (s_path_is(target, path_len, "/dashboard")
        || (path_len >= 11 && memcmp(target, PROTO_LIT("/dashboard/")) == 0)) {
        gw_admin_hand_over(req, PROTO_KIND_APID, target, path_len, query, query_len, NULL);
        return;
    }
    if (path_len >= 4 && memcmp(target, PROTO_LIT("/api")) == 0
        && (path_len == 4 || target[4] == '/')) {
        if (!s_authorized(req)) {
            s_json_error(req, 401, "unauthorized", "a valid admin token is required",
                         "WWW-Authenticate: Bearer realm=\"switchyard\"\r\n");
            return;
        }
        // the stats API is statsd's (SPEC §10), behind the same token
        bool stats = s_path_is(target, path_len, "/api/v1/stats")
                     || (path_len > 14 && memcmp(target, PROTO_LIT("/api/v1/stats/")) == 0);
        if (get
            && (s_path_is(target, path_len, "/api/v1/events")
                || s_path_is(target, path_len, "/api/v1/events/"))) {
            gw_events_open(req->gw->events, req, target, path_len, query, query_len);
            return;
        }
        gw_admin_hand_over(req, stats ? PROTO_KIND_STATSD : PROTO_KIND_APID, target, path_len,
                           query, query_len, NULL);
        return;
    }
    s_json_error(req, 404, "not_found", "no such admin path", NULL);
}
