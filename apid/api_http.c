/*  api_http - the control API over the bus (see api_http.h).

    One admin.request is planned (path, method, body), and either answered at
    once or sent to a router as config.*; the call then waits in a list until
    proto_bus calls back with the reply or with NULL at the deadline. The
    list is only for freeing what is left at exit: proto_bus owns the
    deadlines.
*/
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto_log.h"
#include "proto_util.h"
#include "api_events.h"
#include "api_health.h"
#include "api_http.h"
#include "api_static.h"

#define S_SEGMENTS_MAX 8 // path segments looked at

// --------------------------------------------------------------------------
// Responses

static void
s_error(api_response_t *r, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
s_error(api_response_t *r, int status, const char *code, const char *field, const char *fmt, ...)
{
    char message[API_MESSAGE_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    free(r->body);
    r->status = status;
    r->body = api_error_body(code, message, field);
}

void
api_response_free(api_response_t *response)
{
    free(response->body);
    response->body = NULL;
}

// --------------------------------------------------------------------------
// Planning

//  Decode %XX escapes of a path segment into out. Returns false for a bad
//  escape, a NUL, or an out too small.
static bool
s_unescape(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; in[i]; i++) {
        char ch = in[i];
        if (ch == '%') {
            if (!isxdigit((unsigned char) in[i + 1]) || !isxdigit((unsigned char) in[i + 2]))
                return false;
            char hex[3] = {in[i + 1], in[i + 2], '\0'};
            ch = (char) strtol(hex, NULL, 16);
            if (ch == '\0')
                return false;
            i += 2;
        }
        if (n + 1 >= cap)
            return false;
        out[n++] = ch;
    }
    out[n] = '\0';
    return true;
}

//  Split path into at most max segments (into buf). Returns the count, or
//  -1 if an empty segment or too many segments.
static int
s_split(const char *path, char *buf, size_t cap, char **segs, int max)
{
    if (!proto_strlcpy(buf, path, cap) || buf[0] != '/')
        return -1;
    size_t len = strlen(buf);
    if (len > 1 && buf[len - 1] == '/')
        buf[len - 1] = '\0'; // one trailing slash is the same resource
    int n = 0;
    char *p = buf + 1;
    while (*p) {
        if (n == max)
            return -1;
        segs[n++] = p;
        char *slash = strchr(p, '/');
        if (slash == NULL)
            break;
        *slash = '\0';
        p = slash + 1;
        if (*p == '\0' || *p == '/')
            return -1;
    }
    for (int i = 0; i < n; i++)
        if (*segs[i] == '\0')
            return -1;
    return n;
}

static bool
s_method_is(const char *method, const char *name)
{
    return strcmp(method, name) == 0;
}

static void
s_not_found(api_plan_t *plan, const char *path)
{
    s_error(&plan->response, 404, "not_found", NULL, "no such resource: %.200s", path);
}

static void
s_not_allowed(api_plan_t *plan, const char *method, const char *path, const char *allow)
{
    s_error(&plan->response, 405, "method_not_allowed", NULL,
            "method %.16s is not allowed on %.200s (allowed: %s)", method, path, allow);
    plan->response.allow = allow;
}

//  Check the body of a write and store its normalized form in the plan.
static bool
s_take_body(api_plan_t *plan, const void *body, size_t len, bool backend, const char *path_vhost)
{
    if (len > API_BODY_MAX) {
        s_error(&plan->response, 413, "payload_too_large", NULL,
                "the body is %zu bytes, over the limit of %d (1 MiB)", len, API_BODY_MAX);
        return false;
    }
    api_error_t err = {0};
    const char *text = body ? body : "";
    json_t *doc =
        backend ? api_backend_parse(text, len, &err) : api_route_parse(text, len, path_vhost, &err);
    if (doc == NULL) {
        s_error(&plan->response, 400, err.code, err.field, "%s", err.message);
        return false;
    }
    if (!backend) // POST /routes: the key is the body's vHost (PUT's is the same)
        proto_strlcpy(plan->key, json_string_value(json_object_get(doc, "vHost")),
                      sizeof plan->key);
    plan->body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (plan->body == NULL) {
        s_error(&plan->response, 500, "internal", NULL, "cannot encode the body");
        return false;
    }
    return true;
}

static void
s_to_router(api_plan_t *plan, api_op_t op, proto_type_t type, const char *what)
{
    plan->op = op;
    plan->type = type;
    plan->what = what;
}

//  Check a region body for the region id and store its normalized form.
static bool
s_take_region_body(api_plan_t *plan, const void *body, size_t len, const char *id)
{
    if (len > API_BODY_MAX) {
        s_error(&plan->response, 413, "payload_too_large", NULL,
                "the body is %zu bytes, over the limit of %d (1 MiB)", len, API_BODY_MAX);
        return false;
    }
    api_error_t err = {0};
    json_t *doc = api_region_parse(body ? body : "", len, id, &err);
    if (doc == NULL) {
        s_error(&plan->response, 400, err.code, err.field, "%s", err.message);
        return false;
    }
    plan->body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (plan->body == NULL) {
        s_error(&plan->response, 500, "internal", NULL, "cannot encode the body");
        return false;
    }
    return true;
}

//  /api/v1/regions[/:id]: n is 3 or 4 segments.
static void
s_plan_regions(const char *method,
               const char *path,
               char **segs,
               int n,
               const void *body,
               size_t body_len,
               api_plan_t *plan)
{
    bool get = s_method_is(method, "GET") || s_method_is(method, "HEAD");
    bool put = s_method_is(method, "PUT");
    bool del = s_method_is(method, "DELETE");
    if (n == 3) {
        if (get)
            s_to_router(plan, API_OP_REGIONS_LIST, PROTO_CONFIG_GET, "regions");
        else
            s_not_allowed(plan, method, path, "GET, HEAD");
        return;
    }
    if (!put && !del) {
        s_not_allowed(plan, method, path, "PUT, DELETE");
        return;
    }
    char id[PROTO_ROUTE_REGION_MAX + 1];
    if (!s_unescape(segs[3], id, sizeof id) || !proto_route_valid_region(id)) {
        s_error(&plan->response, 400, "invalid_value", "id",
                "id: the path's '%.64s' is not a valid region id (1-%d bytes of printable ASCII "
                "without spaces)",
                segs[3], PROTO_ROUTE_REGION_MAX);
        return;
    }
    proto_strlcpy(plan->key, id, sizeof plan->key);
    if (del)
        s_to_router(plan, API_OP_REGION_DELETE, PROTO_CONFIG_DELETE, "region");
    else if (s_take_region_body(plan, body, body_len, id))
        s_to_router(plan, API_OP_REGION_PUT, PROTO_CONFIG_PUT, "region");
}

//  A path segment as it may be quoted in a message: printable ASCII (other
//  bytes as '?'), cut to cap - 1 bytes. Returns out.
static const char *
s_shown(const char *segment, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = segment; *p && n + 1 < cap; p++)
        out[n++] = *p >= 0x20 && *p < 0x7f ? *p : '?';
    out[n] = '\0';
    return out;
}

//  Check a certificate body and store its normalized form; the key is its domain.
static bool
s_take_cert_body(api_plan_t *plan, const void *body, size_t len)
{
    if (len > API_BODY_MAX) {
        s_error(&plan->response, 413, "payload_too_large", NULL,
                "the body is %zu bytes, over the limit of %d (1 MiB)", len, API_BODY_MAX);
        return false;
    }
    api_error_t err = {0};
    json_t *doc = api_cert_parse(body ? body : "", len, &err);
    if (doc == NULL) {
        s_error(&plan->response, 400, err.code, err.field, "%s", err.message);
        return false;
    }
    proto_strlcpy(plan->key, json_string_value(json_object_get(doc, "domain")), sizeof plan->key);
    plan->body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (plan->body == NULL) {
        s_error(&plan->response, 500, "internal", NULL, "cannot encode the body");
        return false;
    }
    return true;
}

//  /api/v1/certificates[/:domain]: n is 3 or 4 segments.
static void
s_plan_certificates(const char *method,
                    const char *path,
                    char **segs,
                    int n,
                    const void *body,
                    size_t body_len,
                    api_plan_t *plan)
{
    bool get = s_method_is(method, "GET") || s_method_is(method, "HEAD");
    if (n == 3) {
        if (get)
            s_to_router(plan, API_OP_CERTS_LIST, PROTO_CONFIG_GET, "certificates");
        else if (!s_method_is(method, "POST"))
            s_not_allowed(plan, method, path, "GET, HEAD, POST");
        else if (s_take_cert_body(plan, body, body_len))
            s_to_router(plan, API_OP_CERT_PUT, PROTO_CONFIG_PUT, "certificate");
        return;
    }
    if (!s_method_is(method, "DELETE")) {
        s_not_allowed(plan, method, path, "DELETE");
        return;
    }
    char raw[PROTO_ROUTE_VHOST_MAX + 1];
    if (!s_unescape(segs[3], raw, sizeof raw)
        || api_cert_domain_normalize(raw, plan->key, sizeof plan->key) != 0) {
        char shown[PROTO_ROUTE_VHOST_MAX + 1];
        s_error(&plan->response, 400, "invalid_value", "domain",
                "domain: the path's '%s' is not a valid domain (a host name, *.<host name> or *, "
                "at most %d bytes)",
                s_shown(segs[3], shown, sizeof shown), PROTO_ROUTE_VHOST_MAX);
        return;
    }
    s_to_router(plan, API_OP_CERT_DELETE, PROTO_CONFIG_DELETE, "certificate");
}

//  A configuration version: 1-20 decimal digits that fit 64 bits, written
//  into out without leading zeros. Returns false otherwise.
static bool
s_version(const char *text, size_t len, char *out, size_t cap)
{
    if (len == 0 || len > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return false;
        unsigned d = (unsigned) (text[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    snprintf(out, cap, "%llu", (unsigned long long) v);
    return true;
}

//  GET /config/diff's query: from and to, both required, nothing else.
static void
s_plan_diff(const char *query, api_plan_t *plan)
{
    char from[24] = "", to[24] = "";
    bool have_from = false, have_to = false;
    const char *p = query ? query : "";
    while (*p) {
        size_t n = strcspn(p, "&");
        const char *eq = memchr(p, '=', n);
        size_t name_len = eq ? (size_t) (eq - p) : n;
        const char *value = eq ? eq + 1 : p + n;
        size_t value_len = (size_t) (p + n - value);
        bool is_from = name_len == 4 && memcmp(p, "from", 4) == 0;
        bool is_to = name_len == 2 && memcmp(p, "to", 2) == 0;
        if (n == 0) {
            p++; // "a=1&&b=2": an empty piece says nothing
            continue;
        }
        if (!is_from && !is_to) {
            char name[65];
            size_t shown = 0;
            for (size_t i = 0; i < name_len && shown + 1 < sizeof name; i++)
                name[shown++] = p[i] > 0x20 && p[i] < 0x7f ? p[i] : '?';
            name[shown] = '\0';
            s_error(&plan->response, 400, "unknown_field", name,
                    "%s: unknown query parameter (diff takes from and to)", name);
            return;
        }
        const char *field = is_from ? "from" : "to";
        if (is_from ? have_from : have_to) {
            s_error(&plan->response, 400, "duplicate_key", field,
                    "%s: the query parameter is given twice", field);
            return;
        }
        if (!s_version(value, value_len, is_from ? from : to, sizeof from)) {
            s_error(&plan->response, 400, "invalid_value", field,
                    "%s: must be a configuration version (decimal digits)", field);
            return;
        }
        if (is_from)
            have_from = true;
        else
            have_to = true;
        p += n;
        if (*p == '&')
            p++;
    }
    if (!have_from || !have_to) {
        const char *field = have_from ? "to" : "from";
        s_error(&plan->response, 400, "missing_field", field,
                "%s: required (GET /api/v1/config/diff?from=<version>&to=<version>)", field);
        return;
    }
    snprintf(plan->key, sizeof plan->key, "%s:%s", from, to);
    s_to_router(plan, API_OP_DIFF, PROTO_CONFIG_GET, "diff");
}

//  /api/v1/config/...: versions[/:v], diff, rollback/:v. Anything else is 404.
static void
s_plan_config(const char *method,
              const char *path,
              const char *query,
              char **segs,
              int n,
              size_t body_len,
              api_plan_t *plan)
{
    bool get = s_method_is(method, "GET") || s_method_is(method, "HEAD");
    bool post = s_method_is(method, "POST");
    bool versions = strcmp(segs[3], "versions") == 0 && (n == 4 || n == 5);
    bool diff = strcmp(segs[3], "diff") == 0 && n == 4;
    bool rollback = strcmp(segs[3], "rollback") == 0 && n == 5;
    if (!versions && !diff && !rollback) {
        s_not_found(plan, path);
        return;
    }
    if (rollback ? !post : !get) {
        s_not_allowed(plan, method, path, rollback ? "POST" : "GET, HEAD");
        return;
    }
    if (diff) {
        s_plan_diff(query, plan);
        return;
    }
    if (n == 4) {
        s_to_router(plan, API_OP_VERSIONS_LIST, PROTO_CONFIG_GET, "versions");
        return;
    }
    if (!s_version(segs[4], strlen(segs[4]), plan->key, sizeof plan->key)) {
        char shown[24];
        s_error(&plan->response, 400, "invalid_value", "version",
                "version: the path's '%s' is not a configuration version (1-20 decimal digits, "
                "at most 18446744073709551615)",
                s_shown(segs[4], shown, sizeof shown));
        return;
    }
    if (versions) {
        s_to_router(plan, API_OP_VERSION_GET, PROTO_CONFIG_GET, "version");
        return;
    }
    if (body_len > API_BODY_MAX) {
        s_error(&plan->response, 413, "payload_too_large", NULL,
                "the body is %zu bytes, over the limit of %d (1 MiB)", body_len, API_BODY_MAX);
        return;
    }
    if (body_len > 0) {
        s_error(&plan->response, 400, "invalid_value", NULL, "rollback takes no body");
        return;
    }
    s_to_router(plan, API_OP_ROLLBACK, PROTO_CONFIG_PUT, "rollback");
}

void
api_http_plan(const char *method,
              const char *path,
              const char *query,
              const void *body,
              size_t body_len,
              api_plan_t *plan)
{
    memset(plan, 0, sizeof *plan);
    char buf[PROTO_ADMIN_REQUEST_PATH_MAX + 1];
    char *segs[S_SEGMENTS_MAX];
    int n = s_split(path, buf, sizeof buf, segs, S_SEGMENTS_MAX);
    bool api = n >= 3 && strcmp(segs[0], "api") == 0 && strcmp(segs[1], "v1") == 0;
    if (api && (n == 3 || n == 4) && strcmp(segs[2], "regions") == 0) {
        s_plan_regions(method, path, segs, n, body, body_len, plan);
        return;
    }
    if (api && (n == 3 || n == 4) && strcmp(segs[2], "certificates") == 0) {
        s_plan_certificates(method, path, segs, n, body, body_len, plan);
        return;
    }
    if (api && (n == 4 || n == 5) && strcmp(segs[2], "config") == 0) {
        s_plan_config(method, path, query, segs, n, body_len, plan);
        return;
    }
    bool routes = api && strcmp(segs[2], "routes") == 0;
    bool backends = routes && n >= 5 && strcmp(segs[4], "backends") == 0;
    bool state =
        backends && n == 7 && (strcmp(segs[6], "dead") == 0 || strcmp(segs[6], "alive") == 0);
    bool get = s_method_is(method, "GET") || s_method_is(method, "HEAD");
    bool post = s_method_is(method, "POST");
    bool put = s_method_is(method, "PUT");
    bool del = s_method_is(method, "DELETE");
    const char *allow = NULL;
    if (routes && n == 3)
        allow = "GET, HEAD, POST";
    else if (routes && n == 4)
        allow = "GET, HEAD, PUT, DELETE";
    else if (backends && n == 5)
        allow = "POST";
    else if (backends && n == 6)
        allow = "DELETE";
    else if (state)
        allow = "POST";
    if (allow == NULL) {
        s_not_found(plan, path);
        return;
    }
    bool allowed = n == 3 ? get || post : n == 4 ? get || put || del : n == 6 ? del : post;
    if (!allowed) {
        s_not_allowed(plan, method, path, allow);
        return;
    }
    if (n == 3) {
        if (get)
            s_to_router(plan, API_OP_ROUTES_LIST, PROTO_CONFIG_GET, "routes");
        else if (s_take_body(plan, body, body_len, false, NULL)) {
            s_to_router(plan, API_OP_ROUTE_CREATE, PROTO_CONFIG_PUT, "route");
            plan->create_only = true;
        }
        return;
    }
    // the vHost of the path: decoded, lower-case, and a valid pattern
    char vhost[PROTO_ROUTE_VHOST_MAX + 1];
    bool vhost_ok = s_unescape(segs[3], vhost, sizeof vhost);
    for (char *p = vhost; vhost_ok && *p; p++)
        *p = (char) tolower((unsigned char) *p);
    vhost_ok = vhost_ok && proto_route_valid_vhost(vhost);
    if (!vhost_ok) {
        if (put)
            s_error(
                &plan->response, 400, "invalid_value", "vHost",
                "vHost: the path's '%.253s' is not a valid vHost (a hostname, *.<hostname> or *)",
                segs[3]);
        else
            s_error(&plan->response, 404, "not_found", NULL, "no route for vHost '%.253s'",
                    segs[3]);
        return;
    }
    proto_strlcpy(plan->key, vhost, sizeof plan->key);
    if (n == 4) {
        if (get)
            s_to_router(plan, API_OP_ROUTE_GET, PROTO_CONFIG_GET, "route");
        else if (del)
            s_to_router(plan, API_OP_ROUTE_DELETE, PROTO_CONFIG_DELETE, "route");
        else if (s_take_body(plan, body, body_len, false, vhost))
            s_to_router(plan, API_OP_ROUTE_PUT, PROTO_CONFIG_PUT, "route");
        return;
    }
    if (n == 5) {
        if (s_take_body(plan, body, body_len, true, NULL))
            s_to_router(plan, API_OP_BACKEND_ADD, PROTO_CONFIG_PUT, "backend");
        return;
    }
    char id[PROTO_ROUTE_BACKEND_ID_MAX + 1];
    if (!s_unescape(segs[5], id, sizeof id) || !proto_route_valid_backend_id(id)) {
        s_error(&plan->response, 404, "not_found", NULL, "no backend '%.128s' in route '%s'",
                segs[5], vhost);
        return;
    }
    proto_strlcpy(plan->sub, id, sizeof plan->sub);
    if (n == 6)
        s_to_router(plan, API_OP_BACKEND_DELETE, PROTO_CONFIG_DELETE, "backend");
    else if (strcmp(segs[6], "dead") == 0)
        s_to_router(plan, API_OP_BACKEND_DEAD, PROTO_CONFIG_PUT, "dead");
    else
        s_to_router(plan, API_OP_BACKEND_ALIVE, PROTO_CONFIG_PUT, "alive");
}

void
api_http_plan_free(api_plan_t *plan)
{
    free(plan->body);
    plan->body = NULL;
    api_response_free(&plan->response);
}

// --------------------------------------------------------------------------
// Answers

static const char *
s_code_of(unsigned status)
{
    switch (status) {
        case 400:
            return "invalid_value";
        case 401:
            return "unauthorized";
        case 403:
            return "forbidden";
        case 404:
            return "not_found";
        case 409:
            return "conflict";
        case 413:
            return "payload_too_large";
        case 503:
            return "unavailable";
        default:
            return status >= 500 ? "internal" : "bad_request";
    }
}

//  The message for a router error that came without one.
static void
s_default_message(const api_plan_t *plan, unsigned status, char *out, size_t cap)
{
    bool backend = plan->op >= API_OP_BACKEND_ADD && plan->op <= API_OP_BACKEND_ALIVE;
    bool region = plan->op >= API_OP_REGIONS_LIST && plan->op <= API_OP_REGION_DELETE;
    bool cert = plan->op >= API_OP_CERTS_LIST && plan->op <= API_OP_CERT_DELETE;
    bool version = plan->op == API_OP_VERSION_GET || plan->op == API_OP_ROLLBACK;
    if (status == 404 && region)
        snprintf(out, cap, "no region '%s'", plan->key);
    else if (status == 404 && cert)
        snprintf(out, cap, "no certificate for '%s'", plan->key);
    else if (status == 404 && version)
        snprintf(out, cap, "no version %s", plan->key);
    else if (status == 404 && plan->op == API_OP_DIFF)
        snprintf(out, cap, "no such version in %s (from:to)", plan->key);
    else if (status == 404 && plan->op == API_OP_VERSIONS_LIST)
        snprintf(out, cap, "no configuration versions");
    else if (status == 404 && backend && plan->sub[0])
        snprintf(out, cap, "no backend '%s' in route '%s'", plan->sub, plan->key);
    else if (status == 404)
        snprintf(out, cap, "no route for vHost '%s'", plan->key);
    else if (status == 409 && backend)
        snprintf(out, cap, "route '%s' has a backend with this id already", plan->key);
    else if (status == 409)
        snprintf(out, cap, "a route for vHost '%s' exists already", plan->key);
    else
        snprintf(out, cap, "the router answered %u", status);
}

void
api_http_answer(const api_plan_t *plan,
                const proto_msg_t *reply,
                bool no_router,
                int64_t timeout_ms,
                api_response_t *out)
{
    memset(out, 0, sizeof *out);
    if (reply == NULL) {
        if (no_router)
            s_error(out, 503, "unavailable", NULL, "no router is connected");
        else
            s_error(out, 503, "unavailable", NULL, "the router did not answer within %lld ms",
                    (long long) timeout_ms);
        return;
    }
    if (reply->type == PROTO_ERROR) {
        bool busy = strcmp(reply->error.code, "unavailable") == 0;
        s_error(out, busy ? 503 : 500, busy ? "unavailable" : "internal", NULL,
                "the router could not serve the call: %s%s%s", reply->error.code,
                reply->error.message && *reply->error.message ? ": " : "",
                reply->error.message ? reply->error.message : "");
        return;
    }
    if (reply->type != PROTO_CONFIG_REPLY) {
        s_error(out, 500, "internal", NULL, "unexpected answer from the router: %s",
                proto_type_name(reply->type));
        return;
    }
    const proto_config_reply_t *r = &reply->config_reply;
    out->version = r->version;
    if (r->status >= 200 && r->status < 300) {
        out->status = r->status;
        if (r->status != 204 && r->body && *r->body)
            out->body = proto_xstrdup(r->body);
        return;
    }
    if (r->status >= 400 && r->status < 600) {
        char message[API_MESSAGE_MAX + 1];
        if (r->error && *r->error)
            proto_strlcpy(message, r->error, sizeof message);
        else
            s_default_message(plan, r->status, message, sizeof message);
        s_error(out, r->status, s_code_of(r->status), r->field, "%s", message);
        return;
    }
    s_error(out, 500, "internal", NULL, "the router answered with status %u", r->status);
}

// --------------------------------------------------------------------------
// The handler on the bus

typedef struct s_call s_call_t;

struct s_call {
    api_http_t *owner;                               // the handler
    proto_return_t ret;                              // where the admin.response goes
    api_plan_t plan;                                 // op, key, sub (body already sent)
    char method[PROTO_ADMIN_REQUEST_METHOD_MAX + 1]; // for the log line
    uint64_t start_us;                               // when the request came
    s_call_t *prev;                                  // waiting calls
    s_call_t *next;                                  // ...
};

struct api_http {
    proto_bus_t *bus;          // where requests come from and replies go
    int64_t timeout_ms;        // router deadline (APID_ROUTER_TIMEOUT)
    s_call_t *calls;           // calls waiting for the router
    size_t ncalls;             // how many
    bool draining;             // stopping: new calls get 503
    api_http_idle_fn *on_idle; // called when draining and no call waits
    void *idle_arg;            // its argument
    api_health_t *health;      // /api/health..., or NULL
    api_events_t *events;      // /api/v1/events, or NULL
    api_static_t *web;         // /dashboard, or NULL
};

static void
s_respond(api_http_t *self,
          const proto_return_t *to,
          api_response_t *r,
          const char *method,
          const char *what,
          uint64_t start_us)
{
    if (r->body && strlen(r->body) > API_RESPONSE_MAX)
        s_error(r, 500, "internal", NULL, "the answer is over %d bytes", API_RESPONSE_MAX);
    proto_kv_t headers[3];
    uint32_t n = 0;
    char version[24];
    if (r->body)
        headers[n++] = (proto_kv_t){"content-type", "application/json"};
    if (r->allow)
        headers[n++] = (proto_kv_t){"allow", r->allow};
    if (r->version) {
        snprintf(version, sizeof version, "%llu", (unsigned long long) r->version);
        headers[n++] = (proto_kv_t){"x-config-version", version};
    }
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_ADMIN_RESPONSE);
    msg.admin_response.status = (uint16_t) r->status;
    msg.admin_response.headers = headers;
    msg.admin_response.headers_count = n;
    if (r->body)
        msg.admin_response.body = (proto_bin_t){(const uint8_t *) r->body, strlen(r->body)};
    if (proto_bus_reply(self->bus, to, &msg) != 0)
        log_warn("admin.response not sent", LOG_S("request_id", to->rid),
                 LOG_I("status", r->status));
    log_debug("admin request", LOG_S("request_id", to->rid), LOG_S("method", method),
              LOG_S("what", what), LOG_I("status", r->status),
              LOG_F("duration_ms", (double) (proto_mono_us() - start_us) / 1000.0));
}

static void
s_unlink(api_http_t *self, s_call_t *call)
{
    if (call->prev)
        call->prev->next = call->next;
    else
        self->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    self->ncalls--;
}

static void
s_call_free(s_call_t **call_p)
{
    api_http_plan_free(&(*call_p)->plan);
    free(*call_p);
    *call_p = NULL;
}

static void
s_check_idle(api_http_t *self)
{
    if (self->draining && self->ncalls == 0 && self->on_idle) {
        api_http_idle_fn *fn = self->on_idle;
        self->on_idle = NULL;
        fn(self->idle_arg);
    }
}

static void
s_on_reply(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    s_call_t *call = arg;
    api_http_t *self = call->owner;
    s_unlink(self, call);
    api_response_t r;
    // at the deadline with no router found at all, say so (the call waited
    // for one and was never sent)
    bool no_router = in == NULL && proto_bus_peers(bus, PROTO_KIND_ROUTER) == 0;
    api_http_answer(&call->plan, in ? &in->msg : NULL, no_router, self->timeout_ms, &r);
    if (in == NULL)
        log_warn("router did not answer", LOG_S("request_id", call->ret.rid),
                 LOG_S("what", call->plan.what), LOG_S("key", call->plan.key),
                 LOG_I("timeout_ms", self->timeout_ms));
    s_respond(self, &call->ret, &r, call->method, call->plan.what, call->start_us);
    api_response_free(&r);
    s_call_free(&call);
    s_check_idle(self);
}

const char *
api_http_header(const proto_admin_request_t *req, const char *name)
{
    for (uint32_t i = 0; i < req->headers_count; i++)
        if (strcmp(req->headers[i].key, name) == 0)
            return req->headers[i].value;
    return NULL;
}

//  /dashboard and below: the static files. True when answered.
static bool
s_static(api_http_t *self, const proto_return_t *ret, const proto_admin_request_t *req)
{
    api_static_answer_t a;
    // HEAD is answered as GET: the gateway drops the body of a HEAD itself and
    // takes Content-Length from the body it is given
    const char *method = strcmp(req->method, "HEAD") == 0 ? "GET" : req->method;
    if (self->web == NULL
        || !api_static_get(self->web, method, req->path, api_http_header(req, "if-none-match"), &a))
        return false;
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_ADMIN_RESPONSE);
    msg.admin_response.status = a.status;
    msg.admin_response.headers = a.headers;
    msg.admin_response.headers_count = a.nheaders;
    if (a.body)
        msg.admin_response.body = (proto_bin_t){a.body, a.len};
    if (proto_bus_reply(self->bus, ret, &msg) != 0)
        log_warn("admin.response not sent", LOG_S("request_id", ret->rid),
                 LOG_I("status", a.status));
    return true;
}

static void
s_on_admin_request(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    api_http_t *self = arg;
    const proto_admin_request_t *req = &in->msg.admin_request;
    uint64_t start_us = proto_mono_us();
    s_call_t *call = proto_xcalloc(1, sizeof *call);
    call->owner = self;
    call->ret = in->ret;
    call->start_us = start_us;
    proto_strlcpy(call->method, req->method, sizeof call->method);
    if (s_static(self, &in->ret, req)) {
        free(call);
        return;
    }
    if (self->events
        && api_events_handle(self->events, &in->ret, in->msg.src, req, self->draining)) {
        free(call);
        return;
    }
    if (!self->draining && self->health
        && api_health_handle(self->health, &in->ret, req->method, req->path)) {
        free(call);
        return;
    }
    api_plan_t *plan = &call->plan;
    if (self->draining) {
        plan->op = API_OP_NONE;
        s_error(&plan->response, 503, "unavailable", NULL, "apid is shutting down");
    } else {
        api_http_plan(req->method, req->path, req->query, req->body.data, req->body.size, plan);
    }
    if (plan->op == API_OP_NONE) {
        s_respond(self, &call->ret, &plan->response, call->method, "-", start_us);
        s_call_free(&call);
        return;
    }
    const char *by = req->principal && *req->principal ? req->principal : "local";
    proto_msg_t msg;
    proto_msg_init(&msg, plan->type);
    msg.rid = call->ret.rid;
    const char *key = plan->key[0] ? plan->key : NULL;
    const char *sub = plan->sub[0] ? plan->sub : NULL;
    if (plan->type == PROTO_CONFIG_GET) {
        msg.config_get.what = plan->what;
        msg.config_get.key = key;
    } else if (plan->type == PROTO_CONFIG_PUT) {
        msg.config_put.what = plan->what;
        msg.config_put.key = key;
        msg.config_put.sub = sub;
        msg.config_put.create_only = plan->create_only ? 1 : 0;
        msg.config_put.body = plan->body;
        msg.config_put.by = by;
    } else {
        msg.config_delete.what = plan->what;
        msg.config_delete.key = plan->key;
        msg.config_delete.sub = sub;
        msg.config_delete.by = by;
    }
    int rc = proto_bus_request(bus, PROTO_KIND_ROUTER, &msg, self->timeout_ms, s_on_reply, call);
    free(plan->body); // sent (or not): only op, key and sub are needed now
    plan->body = NULL;
    if (rc != 0) {
        api_response_t r;
        api_http_answer(plan, NULL, true, self->timeout_ms, &r);
        log_warn("no router to ask", LOG_S("request_id", call->ret.rid), LOG_S("what", plan->what));
        s_respond(self, &call->ret, &r, call->method, plan->what, start_us);
        api_response_free(&r);
        s_call_free(&call);
        return;
    }
    call->next = self->calls;
    if (self->calls)
        self->calls->prev = call;
    self->calls = call;
    self->ncalls++;
}

api_http_t *
api_http_new(proto_bus_t *bus, int64_t router_timeout_ms)
{
    api_http_t *self = proto_xcalloc(1, sizeof *self);
    self->bus = bus;
    self->timeout_ms = router_timeout_ms;
    proto_bus_on(bus, PROTO_ADMIN_REQUEST, s_on_admin_request, self);
    return self;
}

void
api_http_set_health(api_http_t *self, api_health_t *health)
{
    self->health = health;
}

void
api_http_set_events(api_http_t *self, api_events_t *events)
{
    self->events = events;
}

void
api_http_set_static(api_http_t *self, api_static_t *web)
{
    self->web = web;
}

size_t
api_http_pending(const api_http_t *self)
{
    return self->ncalls;
}

void
api_http_drain(api_http_t *self, api_http_idle_fn *fn, void *arg)
{
    self->draining = true;
    self->on_idle = fn;
    self->idle_arg = arg;
    s_check_idle(self);
}

void
api_http_destroy(api_http_t **self_p)
{
    api_http_t *self = *self_p;
    if (self == NULL)
        return;
    while (self->calls) {
        s_call_t *call = self->calls;
        s_unlink(self, call);
        s_call_free(&call);
    }
    free(self);
    *self_p = NULL;
}
