/*  gw_http - header table, list parser and request-target forms.

    The table is small and looked up once per field (when a head is read),
    so a linear scan by length then name is as fast as a hash here and
    plainly correct.
*/
#include <string.h>
#include <strings.h>

#include "gw_http.h"
#include "proto_util.h"

typedef struct {
    const char *name; // lower-case
    size_t len;       // strlen(name)
    unsigned flags;   // GW_HF_
} s_hdr_t;

#define S_HDR(name, flags)                                                                         \
    {                                                                                              \
        name, sizeof(name) - 1, flags                                                              \
    }

static const s_hdr_t s_table[GW_H_COUNT] = {
    [GW_H_OTHER] = {"", 0, 0},
    [GW_H_CONNECTION] = S_HDR("connection", GW_HF_HOP | GW_HF_RESP_DROP | GW_HF_NO_BUS),
    [GW_H_KEEP_ALIVE] = S_HDR("keep-alive", GW_HF_HOP | GW_HF_RESP_DROP | GW_HF_NO_BUS),
    [GW_H_PROXY_CONNECTION] = S_HDR("proxy-connection", GW_HF_HOP | GW_HF_RESP_DROP | GW_HF_NO_BUS),
    [GW_H_TE] = S_HDR("te", GW_HF_HOP | GW_HF_RESP_DROP | GW_HF_NO_BUS),
    [GW_H_TRAILER] = S_HDR("trailer", GW_HF_HOP | GW_HF_RESP_DROP),
    [GW_H_TRANSFER_ENCODING] =
        S_HDR("transfer-encoding",
              GW_HF_HOP | GW_HF_FRAMING | GW_HF_PROTECTED | GW_HF_RESP_DROP | GW_HF_NO_BUS),
    [GW_H_UPGRADE] = S_HDR("upgrade", GW_HF_HOP | GW_HF_RESP_DROP | GW_HF_NO_BUS),
    [GW_H_CONTENT_LENGTH] = S_HDR("content-length", GW_HF_FRAMING | GW_HF_PROTECTED | GW_HF_NO_BUS),
    [GW_H_EXPECT] = S_HDR("expect", GW_HF_HOP),
    [GW_H_HOST] = S_HDR("host", GW_HF_PROTECTED),
    [GW_H_X_REQUEST_ID] = S_HDR("x-request-id", GW_HF_OURS | GW_HF_PROTECTED | GW_HF_RESP_DROP),
    [GW_H_X_CORRELATION_ID] =
        S_HDR("x-correlation-id", GW_HF_OURS | GW_HF_PROTECTED | GW_HF_RESP_DROP),
    [GW_H_X_TENANT_ID] = S_HDR("x-tenant-id", GW_HF_OURS | GW_HF_PROTECTED),
    [GW_H_X_FORWARDED_FOR] = S_HDR("x-forwarded-for", GW_HF_FORWARDED | GW_HF_PROTECTED),
    [GW_H_X_REAL_IP] = S_HDR("x-real-ip", GW_HF_FORWARDED | GW_HF_PROTECTED),
    [GW_H_X_FORWARDED_PROTO] = S_HDR("x-forwarded-proto", GW_HF_FORWARDED | GW_HF_PROTECTED),
    [GW_H_X_FORWARDED_HOST] = S_HDR("x-forwarded-host", GW_HF_FORWARDED | GW_HF_PROTECTED),
    [GW_H_X_SWITCHYARD_HOP] = S_HDR("x-switchyard-hop", GW_HF_FORWARDED | GW_HF_PROTECTED),
    [GW_H_AUTHORIZATION] = S_HDR("authorization", GW_HF_NO_BUS),
    [GW_H_PROXY_AUTHORIZATION] = S_HDR("proxy-authorization", GW_HF_NO_BUS),
    [GW_H_COOKIE] = S_HDR("cookie", GW_HF_NO_BUS),
    [GW_H_X_REGION] = S_HDR("x-region", 0),
    [GW_H_X_USER_ID] = S_HDR("x-user-id", 0), // set by the gateway on routes with auth
    [GW_H_ORIGIN] = S_HDR("origin", 0),
    [GW_H_AC_REQUEST_METHOD] = S_HDR("access-control-request-method", 0),
    [GW_H_AC_REQUEST_HEADERS] = S_HDR("access-control-request-headers", 0),
};

gw_hdr_t
gw_http_header(const char *name, size_t len)
{
    for (int i = 1; i < GW_H_COUNT; i++)
        if (s_table[i].len == len && strncasecmp(s_table[i].name, name, len) == 0)
            return (gw_hdr_t) i;
    return GW_H_OTHER;
}

unsigned
gw_http_flags(gw_hdr_t id)
{
    return id > GW_H_OTHER && id < GW_H_COUNT ? s_table[id].flags : 0;
}

static bool
s_ows(char c)
{
    return c == ' ' || c == '\t';
}

bool
gw_http_list_next(const char *list, size_t len, size_t *pos, const char **tok, size_t *toklen)
{
    size_t i = *pos;
    while (list && i < len) {
        while (i < len && (s_ows(list[i]) || list[i] == ','))
            i++;
        size_t start = i;
        while (i < len && list[i] != ',')
            i++;
        size_t end = i;
        while (end > start && s_ows(list[end - 1]))
            end--;
        if (end > start) {
            *tok = list + start;
            *toklen = end - start;
            *pos = i;
            return true;
        }
    }
    *pos = len;
    return false;
}

bool
gw_http_list_has(const char *list, size_t len, const char *elem, size_t elen)
{
    size_t pos = 0;
    const char *tok;
    size_t tlen;
    while (gw_http_list_next(list, len, &pos, &tok, &tlen))
        if (tlen == elen && strncasecmp(tok, elem, elen) == 0)
            return true;
    return false;
}

//  reg-name / IPv4 / IP-literal characters of an authority's host, and a
//  port of digits: what a Host field may carry (RFC 9110 §7.2).
static bool
s_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'
           || c == '.' || c == '_' || c == '~' || c == '!' || c == '$' || c == '&' || c == '\''
           || c == '(' || c == ')' || c == '*' || c == '+' || c == ',' || c == ';' || c == '='
           || c == '%';
}

static bool
s_valid_authority(const char *a, size_t len)
{
    size_t i = 0;
    if (len == 0)
        return false;
    if (a[0] == '[') {
        const char *rb = memchr(a, ']', len);
        if (rb == NULL || rb == a + 1)
            return false;
        for (const char *p = a + 1; p < rb; p++)
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F')
                  || *p == ':' || *p == '.'))
                return false;
        i = (size_t) (rb - a) + 1;
    } else {
        while (i < len && s_host_char(a[i]))
            i++;
        if (i == 0)
            return false;
    }
    if (i == len)
        return true;
    if (a[i] != ':')
        return false;
    size_t digits = 0;
    for (i++; i < len; i++, digits++)
        if (a[i] < '0' || a[i] > '9')
            return false;
    return digits <= 5;
}

int
gw_http_absolute_form(const char *target,
                      size_t len,
                      size_t *host_off,
                      size_t *host_len,
                      size_t *path_off,
                      size_t *path_len)
{
    if (len == 0 || target[0] == '/' || (len == 1 && target[0] == '*'))
        return 0; // origin form, or asterisk form
    const char *colon = memchr(target, ':', len);
    if (colon == NULL)
        return -1; // neither origin nor absolute form (authority form is for CONNECT)
    size_t slen = (size_t) (colon - target);
    bool http = slen == 4 && strncasecmp(target, PROTO_LIT("http")) == 0;
    bool https = slen == 5 && strncasecmp(target, PROTO_LIT("https")) == 0;
    if (!(http || https) || len < slen + 3 || colon[1] != '/' || colon[2] != '/')
        return -1;
    size_t a = slen + 3, e = a;
    while (e < len && target[e] != '/' && target[e] != '?' && target[e] != '#')
        e++;
    if (memchr(target + a, '@', e - a) != NULL || !s_valid_authority(target + a, e - a))
        return -1; // userinfo is refused (RFC 9110 §4.2.4), as is an empty host
    if (e < len && target[e] == '#')
        return -1;
    *host_off = a;
    *host_len = e - a;
    *path_off = e;
    *path_len = len - e;
    return 1;
}
