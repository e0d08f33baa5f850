/*  gw_head - what a request's head says (see gw_head.h).

    The head was checked byte by byte by gw_prescan, so splitting it here
    trusts its shape (CRLF line ends, one space in the request line, a colon
    in every field line) and only bounds the number of fields.
*/
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gw_head.h"
#include "proto_util.h"

const char *
gw_req_header(const gw_req_t *req, gw_hdr_t id, size_t *len)
{
    for (uint32_t i = 0; i < req->nfields; i++) {
        const gw_field_t *f = &req->fields[i];
        if (f->id == id) {
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

void
gw_head_uuid(uint64_t a, uint64_t b, char *out)
{
    a = (a & 0xffffffffffff0fffull) | 0x0000000000004000ull; // version 4
    b = (b & 0x3fffffffffffffffull) | 0x8000000000000000ull; // variant 10
    // 8-4-4-4-12 hex digits, written by hand (once per request without an id)
    static const char hex[] = "0123456789abcdef";
    static const int groups[] = {8, 4, 4, 4, 12};
    int bit = 127, o = 0;
    for (int g = 0; g < 5; g++) {
        if (g)
            out[o++] = '-';
        for (int i = 0; i < groups[g]; i++, bit -= 4) {
            uint64_t word = bit >= 64 ? a : b;
            out[o++] = hex[(word >> (bit % 64 - 3)) & 0xf];
        }
    }
    out[o] = '\0';
}

void
gw_head_request_id(gw_req_t *req, uint64_t r1, uint64_t r2)
{
    size_t rlen = 0, clen = 0;
    const char *rid = gw_req_header(req, GW_H_X_REQUEST_ID, &rlen);
    const char *cid = gw_req_header(req, GW_H_X_CORRELATION_ID, &clen);
    req->client_sent_corr = cid != NULL;
    if (rid && s_valid_id(rid, rlen)) {
        memcpy(req->rid, rid, rlen);
        req->rid[rlen] = '\0';
    } else if (cid && s_valid_id(cid, clen)) {
        memcpy(req->rid, cid, clen);
        req->rid[clen] = '\0';
    } else {
        gw_head_uuid(r1, r2, req->rid);
    }
}

//  The value of a query parameter of the path, copied into out.
static bool
s_query_param(const gw_req_t *req, const char *name, char *out, size_t cap)
{
    const char *q = memchr(req->path, '?', req->path_len);
    if (q == NULL)
        return false;
    const char *end = req->path + req->path_len;
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
    return len > 0 && len <= PROTO_DECIDE_REGION_MAX && s_valid_id(s, len);
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
        char *colon = eol ? memchr(line, ':', (size_t) (eol - line)) : NULL;
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
        f->id = (uint8_t) gw_http_header(line, f->name_len);
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

//  Connection semantics of the request, from every Connection field.
static void
s_keep_alive(gw_req_t *req)
{
    bool close = false, keep = false;
    for (uint32_t i = 0; i < req->nfields; i++) {
        const gw_field_t *f = &req->fields[i];
        if (f->id != GW_H_CONNECTION)
            continue;
        const char *v = req->head.data + f->value;
        close = close || gw_http_list_has(v, f->value_len, PROTO_LIT("close"));
        keep = keep || gw_http_list_has(v, f->value_len, PROTO_LIT("keep-alive"));
    }
    req->keep_alive = req->minor == 1 ? !close : keep && !close;
}

//  The routing host: lower-case, port stripped ("[v6]:port" keeps its brackets).
static void
s_routing_host(gw_req_t *req, const char *host, size_t len)
{
    size_t hl = len;
    if (len > 0 && host[0] == '[') {
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

//  Where the request goes: the target's form decides the path sent upstream
//  and the authority. An absolute-form target's authority replaces Host
//  (RFC 9112 §3.2.2; nginx does the same), so routing, the upstream Host
//  and every later check agree on one name. Returns -1 for a target that
//  cannot be served (400).
static int
s_target(gw_req_t *req)
{
    size_t ho, hl, po, pl;
    int form = gw_http_absolute_form(req->target, req->target_len, &ho, &hl, &po, &pl);
    if (form < 0)
        return -1;
    if (form == 1) {
        req->authority = req->target + ho;
        req->authority_len = (uint32_t) hl;
        req->path = req->target + po;
        req->path_len = (uint32_t) pl;
    } else {
        size_t len = 0;
        req->authority = gw_req_header(req, GW_H_HOST, &len);
        req->authority_len = (uint32_t) len;
        req->path = req->target;
        req->path_len = req->target_len;
    }
    if (req->authority)
        s_routing_host(req, req->authority, req->authority_len);
    return 0;
}

int
gw_head_parse(gw_req_t *req)
{
    if (s_parse_head(req) != 0)
        return -1;
    s_keep_alive(req);
    size_t len;
    const char *ex = gw_req_header(req, GW_H_EXPECT, &len);
    req->expect_continue = ex && len == 12 && strncasecmp(ex, PROTO_LIT("100-continue")) == 0;
    return s_target(req);
}

int
gw_head_region(const gw_req_t *req, const char *dflt, char *out, size_t cap)
{
    size_t rlen = 0;
    const char *xr = gw_req_header(req, GW_H_X_REGION, &rlen);
    if (xr && rlen > 0 && rlen < cap) {
        memcpy(out, xr, rlen);
        out[rlen] = '\0';
    } else if (!s_query_param(req, "region", out, cap)) {
        proto_strlcpy(out, dflt, cap);
    }
    return s_valid_region(out) ? 0 : -1;
}
