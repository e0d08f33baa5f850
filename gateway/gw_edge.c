/*  gw_edge - the route's edge policy (see gw_edge.h).

    Everything here is skipped by a lease without policy: a route that sets
    none pays one test per step.
*/
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gw_actor.h"
#include "gw_auth.h"
#include "gw_authp.h"
#include "gw_cors.h"
#include "gw_edge.h"
#include "gw_rl.h"
#include "proto_log.h"
#include "proto_util.h"

//  Security headers of `securityHeaders: true` (OWASP's recommendations);
//  HSTS only over HTTPS (RFC 6797 §7.2: never over plain HTTP).
static const struct {
    const char *name; // field name
    const char *line; // the whole line
    bool https_only;  // HSTS
} s_security[] = {
    {"strict-transport-security", "Strict-Transport-Security: max-age=31536000\r\n", true},
    {"x-content-type-options", "X-Content-Type-Options: nosniff\r\n", false},
    {"x-frame-options", "X-Frame-Options: SAMEORIGIN\r\n", false},
    {"referrer-policy", "Referrer-Policy: strict-origin-when-cross-origin\r\n", false},
};

#define S_EXTRA_BYTES 512 // response fields the edge sets: CORS and RateLimit-* fit

//  req->resp_extra, sized once for what it holds (a first append would take
//  4 KiB: a malloc and fresh pages per request of a limited route).
static gw_buf_t *
s_extra(gw_req_t *req)
{
    gw_buf_exact(&req->resp_extra, S_EXTRA_BYTES);
    return &req->resp_extra;
}

// --------------------------------------------------------------------------
// autoHttps

static void
s_redirect_https(gw_req_t *req)
{
    uint16_t port = req->gw->cfg->https_addr.port;
    gw_buf_t extra = {0};
    bool v6 = strchr(req->host, ':') != NULL;
    gw_buf_printf(&extra, "Location: https://%s%s%s", v6 ? "[" : "", req->host, v6 ? "]" : "");
    if (port != 0 && port != 443)
        gw_buf_printf(&extra, ":%u", (unsigned) port);
    if (req->path_len == 0 || req->path[0] != '/')
        gw_buf_puts(&extra, "/");
    gw_buf_append(&extra, req->path, req->path_len);
    gw_buf_puts(&extra, "\r\n");
    gw_buf_append(&extra, "", 1);
    gw_req_respond(req, 308, NULL, PROTO_LIT("Permanent Redirect"), gw_buf_head(&extra));
    gw_buf_free(&extra);
}

// --------------------------------------------------------------------------
// CORS

//  Returns true when answered (a preflight).
static bool
s_cors(gw_req_t *req)
{
    const gw_cors_t *cors = req->lease->cors;
    size_t olen = 0, mlen = 0, hlen = 0;
    const char *origin = gw_req_header(req, GW_H_ORIGIN, &olen);
    if (origin == NULL)
        return false; // not a cross-origin request from a browser
    const char *method = gw_req_header(req, GW_H_AC_REQUEST_METHOD, &mlen);
    if (strcmp(req->method, "OPTIONS") != 0 || method == NULL) {
        gw_cors_response(cors, origin, olen, s_extra(req));
        return false;
    }
    const char *headers = gw_req_header(req, GW_H_AC_REQUEST_HEADERS, &hlen);
    const char *reason = NULL;
    gw_buf_t extra = {0};
    if (gw_cors_preflight(cors, origin, olen, method, mlen, headers, headers ? hlen : 0, &extra,
                          &reason)) {
        gw_buf_append(&extra, "", 1);
        gw_req_respond(req, 204, NULL, NULL, 0, gw_buf_head(&extra));
    } else {
        log_debug("CORS preflight refused", LOG_S("request_id", req->rid),
                  LOG_S("route", req->lease->route), LOG_S("reason", reason));
        gw_req_respond_text(req, 403, "Forbidden - CORS preflight not allowed");
    }
    gw_buf_free(&extra);
    return true;
}

// --------------------------------------------------------------------------
// auth

static void
s_free_auth(void *check)
{
    gw_auth_t *auth = check;
    gw_auth_destroy(&auth);
}

//  The checker of the lease's credentials, built on first use.
static gw_auth_t *
s_checker(gw_creds_t *creds)
{
    if (creds->check)
        return creds->check;
    if (creds->bearer) {
        creds->check = gw_auth_new_bearer((const char *const *) creds->tokens, creds->count);
    } else {
        const char *names[PROTO_LEASE_AUTH_USERS_MAX], *hashes[PROTO_LEASE_AUTH_USERS_MAX];
        uint32_t n =
            creds->count < PROTO_LEASE_AUTH_USERS_MAX ? creds->count : PROTO_LEASE_AUTH_USERS_MAX;
        for (uint32_t i = 0; i < n; i++) {
            names[i] = creds->users[i].key;
            hashes[i] = creds->users[i].value;
        }
        creds->check = gw_auth_new_basic(names, hashes, n);
    }
    creds->check_free = s_free_auth;
    return creds->check;
}

//  Returns true when answered (401, 503).
static bool
s_auth(gw_req_t *req)
{
    gw_lease_t *lease = req->lease;
    gw_auth_t *auth = lease->creds ? s_checker(lease->creds) : NULL;
    if (auth == NULL) {
        log_warn("a route's credentials are unavailable: refused", LOG_S("route", lease->route),
                 LOG_S("request_id", req->rid));
        req->gw->auth_refused++;
        gw_req_respond(req, 503, NULL, PROTO_LIT("Service Unavailable"), "Retry-After: 1\r\n");
        return true;
    }
    size_t len = 0;
    const char *value = gw_req_header(req, GW_H_AUTHORIZATION, &len);
    const char *user = NULL;
    gw_auth_result_t r = gw_auth_check(auth, value, value ? len : 0, ev_now(req->gw->loop), &user);
    if (r == GW_AUTH_OK) {
        proto_strlcpy(req->user, user ? user : "", sizeof req->user);
        return false;
    }
    req->gw->auth_refused++;
    char challenge[GW_AUTH_CHALLENGE_MAX];
    char extra[GW_AUTH_CHALLENGE_MAX + 32];
    if (gw_auth_challenge(auth, lease->route, challenge, sizeof challenge) == 0)
        challenge[0] = '\0';
    snprintf(extra, sizeof extra, "WWW-Authenticate: %s\r\n", challenge);
    gw_req_respond(req, 401, NULL, PROTO_LIT("Unauthorized"), extra);
    return true;
}

// --------------------------------------------------------------------------
// authProvider

//  Returns true when answered (401, 403, 503); else req->user is set.
static bool
s_provider_answer(gw_req_t *req, const gw_authp_answer_t *a)
{
    switch (a->verdict) {
        case GW_AUTHP_ALLOW:
            proto_strlcpy(req->user, a->user, sizeof req->user);
            return false;
        case GW_AUTHP_DENY_401:
            req->gw->auth_refused++;
            gw_req_respond_text(req, 401, "Unauthorized");
            return true;
        case GW_AUTHP_DENY_403:
            req->gw->auth_refused++;
            gw_req_respond_text(req, 403, "Forbidden");
            return true;
        default:
            log_debug("authProvider failed", LOG_S("request_id", req->rid),
                      LOG_S("route", req->lease->route), LOG_S("why", a->why));
            gw_req_respond(req, 503, NULL, PROTO_LIT("Service Unavailable - auth provider failed"),
                           "Retry-After: 1\r\n");
            return true;
    }
}

static void
s_on_provider(gw_authp_waiter_t *waiter, const gw_authp_answer_t *answer, void *arg)
{
    (void) waiter;
    gw_req_t *req = arg;
    if (!s_provider_answer(req, answer) && gw_edge_resume(req) == GW_EDGE_PASS)
        gw_req_admitted(req);
}

static gw_edge_t
s_provider(gw_req_t *req)
{
    const gw_lease_t *lease = req->lease;
    gw_authp_query_t q = {
        .url = lease->auth_provider,
        .route = lease->route,
        .cache_ms = lease->auth_cache_ms,
        .method = req->method,
        .method_len = strlen(req->method),
        .host = req->host,
        .host_len = strlen(req->host),
        .path = req->path_len ? req->path : "/",
        .path_len = req->path_len ? req->path_len : 1,
        .client_ip = req->client_ip,
        .client_ip_len = strlen(req->client_ip),
    };
    q.authorization = gw_req_header(req, GW_H_AUTHORIZATION, &q.authorization_len);
    q.cookie = gw_req_header(req, GW_H_COOKIE, &q.cookie_len);
    gw_authp_answer_t now;
    int rc = gw_authp_check(req->gw->authp, &q, &now, &req->authp_wait, s_on_provider, req);
    if (rc == 0)
        return GW_EDGE_WAIT;
    if (rc < 0) { // a field the provider cannot be sent (not UTF-8, over its bound)
        gw_req_respond_text(req, 400, "Bad Request - cannot be checked by the auth provider");
        return GW_EDGE_DONE;
    }
    return s_provider_answer(req, &now) ? GW_EDGE_DONE : gw_edge_resume(req);
}

// --------------------------------------------------------------------------
// Rate limits

//  Returns true when answered (429). A decision gw_rl cannot make (a key
//  or route id over its bounds) lets the request through: fail open.
static bool
s_limit(gw_req_t *req, const char *key)
{
    const gw_lease_t *lease = req->lease;
    gw_rl_policy_t policy = {
        .requests = lease->rl_requests, .window_s = lease->rl_window_s, .burst = lease->rl_burst};
    gw_rl_result_t r;
    if (gw_rl_decide(req->gw->rl, lease->route, &policy, key, ev_now(req->gw->loop), &r) != 0)
        return false;
    char fields[GW_RL_HEADERS_MAX];
    if (gw_rl_headers(&r, fields, sizeof fields) < 0)
        fields[0] = '\0';
    if (r.allowed) {
        gw_buf_puts(s_extra(req), fields);
        return false;
    }
    log_debug("rate limited", LOG_S("request_id", req->rid), LOG_S("route", lease->route),
              LOG_S("key", key), LOG_B("burst", r.by_burst));
    gw_req_respond(req, 429, NULL, PROTO_LIT("Too Many Requests"), fields);
    return true;
}

// --------------------------------------------------------------------------

gw_edge_t
gw_edge_admit(gw_req_t *req)
{
    gw_lease_t *lease = req->lease;
    if (lease->auto_https && !req->tls) {
        s_redirect_https(req);
        return GW_EDGE_DONE;
    }
    if (lease->cors && s_cors(req))
        return GW_EDGE_DONE;
    bool limited = lease->rl_requests > 0;
    if (limited && !lease->rl_by_user && s_limit(req, req->client_ip))
        return GW_EDGE_DONE; // before auth: failed logins count
    if ((lease->creds || lease->auth_missing) && s_auth(req))
        return GW_EDGE_DONE;
    if (lease->auth_provider[0])
        return s_provider(req);
    return gw_edge_resume(req);
}

gw_edge_t
gw_edge_resume(gw_req_t *req)
{
    const gw_lease_t *lease = req->lease;
    if (lease->rl_requests > 0 && lease->rl_by_user
        && s_limit(req, req->user[0] ? req->user : req->client_ip))
        return GW_EDGE_DONE;
    return GW_EDGE_PASS;
}

void
gw_edge_cancel(gw_req_t *req)
{
    gw_authp_cancel(req->gw->authp, &req->authp_wait);
}

bool
gw_edge_replaces(const gw_req_t *req, const char *name, size_t len)
{
    const char *at = req->resp_extra.data + req->resp_extra.start;
    size_t left = gw_buf_len(&req->resp_extra);
    while (left > len) { // each line: "Name: value\r\n"
        if (at[len] == ':' && strncasecmp(at, name, len) == 0)
            return true;
        const char *eol = memchr(at, '\n', left);
        if (eol == NULL)
            break;
        left -= (size_t) (eol + 1 - at);
        at = eol + 1;
    }
    return false;
}

static bool
s_head_has(const gw_resp_head_t *head, const char *name)
{
    size_t len = strlen(name);
    for (uint32_t i = 0; head && i < head->nfields; i++)
        if (head->fields[i].name_len == len && strncasecmp(head->fields[i].name, name, len) == 0)
            return true;
    return false;
}

void
gw_edge_response(const gw_req_t *req, const gw_resp_head_t *head, gw_buf_t *out)
{
    if (gw_buf_len(&req->resp_extra))
        gw_buf_append(out, req->resp_extra.data + req->resp_extra.start,
                      gw_buf_len(&req->resp_extra));
    if (req->lease == NULL || !req->lease->sec_headers)
        return;
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(s_security); i++)
        if ((req->tls || !s_security[i].https_only) && !s_head_has(head, s_security[i].name))
            gw_buf_puts(out, s_security[i].line);
}
