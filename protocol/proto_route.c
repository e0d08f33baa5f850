/*  proto_route - the route model's rules: names, bounds, defaults (see
    proto_route.h).

    Pure functions over NUL-terminated strings: no allocation, no state.
*/
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proto.h"
#include "proto_route.h"
#include "proto_util.h"

//  The model's bounds stay within the bus's (messages.def).
_Static_assert(PROTO_ROUTE_WEIGHT_MAX <= PROTO_STRATEGY_WEIGHT_MAX, "weight over the bus bound");
_Static_assert(PROTO_ROUTE_RETRIES_MAX <= 16, "retries over the lease bound");
_Static_assert(PROTO_ROUTE_HOSTNAME_MAX <= 255, "hostname over the backend.host bound");
_Static_assert(PROTO_ROUTE_VHOST_MAX <= 255, "vHost over the pick/lease bound");
_Static_assert(PROTO_ROUTE_BACKENDS_MAX <= PROTO_STRATEGY_MAX, "backends over the pick bound");
_Static_assert(PROTO_ROUTE_REGION_MAX <= PROTO_REGION_ID_MAX, "region over the pick bound");
_Static_assert(PROTO_ROUTE_ADDRESS_MAX <= PROTO_REGION_ADDRESS_MAX, "address over the pick bound");
_Static_assert(PROTO_ROUTE_HOSTNAME_MAX + 6 <= PROTO_ROUTE_ADDRESS_MAX, "host:port over the bound");

#define S_PROBE_NAME(C, name) name,
static const char *const s_probes[PROTO_ROUTE_PROBE_COUNT] = {PROTO_ROUTE_PROBES(S_PROBE_NAME)};
#undef S_PROBE_NAME

//  ", http, tcp": proto_route_probe_list skips the first ", ".
#define S_PROBE_ITEM(C, name) ", " name
static const char s_probe_list[] = PROTO_ROUTE_PROBES(S_PROBE_ITEM);
#undef S_PROBE_ITEM

static const char *const s_forbidden_headers[] = {
    "connection", "content-length", "transfer-encoding", "keep-alive", "upgrade",
    "te",         "trailer",        "proxy-connection",
};

static bool
s_alnum(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

//  Printable ASCII without space.
static bool
s_printable(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f;
}

bool
proto_route_valid_host_name(const char *text, size_t max)
{
    size_t len = strlen(text);
    if (len == 0 || len > max)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        if (ch == '.') {
            if (label == 0 || text[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!s_alnum(ch) && ch != '-' && ch != '_')
            return false;
        if (ch == '-' && label == 0)
            return false;
        if (++label > PROTO_ROUTE_LABEL_MAX)
            return false;
    }
    return label > 0 && text[len - 1] != '-';
}

bool
proto_route_valid_vhost(const char *text)
{
    if (strcmp(text, "*") == 0)
        return true;
    if (text[0] == '*' && text[1] == '.') {
        if (strlen(text) > PROTO_ROUTE_VHOST_MAX)
            return false;
        return proto_route_valid_host_name(text + 2, PROTO_ROUTE_VHOST_MAX);
    }
    return proto_route_valid_host_name(text, PROTO_ROUTE_VHOST_MAX);
}

int
proto_route_vhost_normalize(const char *text, char *out, size_t cap)
{
    size_t len = strlen(text);
    if (cap > 0)
        out[0] = '\0';
    if (len >= cap || !proto_route_valid_vhost(text))
        return -1;
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        out[i] = ch >= 'A' && ch <= 'Z' ? (char) (ch - 'A' + 'a') : ch;
    }
    out[len] = '\0';
    return 0;
}

//  If text is an IPv6 address, bare or in brackets, write it bare into out
//  (INET6_ADDRSTRLEN bytes) and return true.
static bool
s_ipv6(const char *text, char *out)
{
    size_t len = strlen(text);
    const char *inner = text;
    if (len >= 2 && text[0] == '[' && text[len - 1] == ']') {
        inner = text + 1;
        len -= 2;
    }
    if (len == 0 || len >= INET6_ADDRSTRLEN || memchr(inner, ':', len) == NULL)
        return false;
    memcpy(out, inner, len);
    out[len] = '\0';
    struct in6_addr addr;
    return inet_pton(AF_INET6, out, &addr) == 1;
}

bool
proto_route_valid_hostname(const char *text)
{
    char v6[INET6_ADDRSTRLEN];
    return s_ipv6(text, v6) || proto_route_valid_host_name(text, PROTO_ROUTE_HOSTNAME_MAX);
}

int
proto_route_hostname_normalize(const char *text, char *out, size_t cap)
{
    char v6[INET6_ADDRSTRLEN];
    const char *stored = text;
    if (cap > 0)
        out[0] = '\0';
    if (s_ipv6(text, v6))
        stored = v6;
    else if (!proto_route_valid_host_name(text, PROTO_ROUTE_HOSTNAME_MAX))
        return -1;
    if (cap == 0 || !proto_strlcpy(out, stored, cap)) {
        if (cap > 0)
            out[0] = '\0';
        return -1;
    }
    return 0;
}

int
proto_route_default_backend_id(const char *hostname, unsigned port, char *out, size_t cap)
{
    bool v6 = strchr(hostname, ':') != NULL;
    int n = snprintf(out, cap, "%s%s%s:%u", v6 ? "[" : "", hostname, v6 ? "]" : "", port);
    if (n < 0 || (size_t) n >= cap || n > PROTO_ROUTE_BACKEND_ID_MAX) {
        if (cap > 0)
            out[0] = '\0';
        return -1;
    }
    return 0;
}

bool
proto_route_valid_route_id(const char *text)
{
    size_t len = strlen(text);
    if (len == 0 || len > PROTO_ROUTE_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char) text[i];
        if (ch < 0x20 || ch == 0x7f)
            return false;
    }
    return true;
}

bool
proto_route_valid_backend_id(const char *text)
{
    size_t len = strlen(text);
    if (len == 0 || len > PROTO_ROUTE_BACKEND_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!s_printable((unsigned char) text[i]) || strchr("/?#%", text[i]))
            return false;
    return true;
}

bool
proto_route_valid_region(const char *text)
{
    size_t len = strlen(text);
    if (len == 0 || len > PROTO_ROUTE_REGION_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!s_printable((unsigned char) text[i]))
            return false;
    return true;
}

int
proto_route_address_normalize(const char *text, char *out, size_t cap)
{
    if (cap > 0)
        out[0] = '\0';
    size_t len = strlen(text);
    if (len == 0 || len > PROTO_ROUTE_ADDRESS_MAX)
        return -1;
    char host[PROTO_ROUTE_ADDRESS_MAX + 1];
    const char *port = NULL; // digits after the host's ':', or NULL
    bool v6 = text[0] == '[';
    if (v6) {
        const char *close = strchr(text, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':'))
            return -1;
        size_t hlen = (size_t) (close - text) + 1; // with the brackets
        memcpy(host, text, hlen);
        host[hlen] = '\0';
        port = close[1] == ':' ? close + 2 : NULL;
        char bare[INET6_ADDRSTRLEN];
        if (!s_ipv6(host, bare))
            return -1;
    } else {
        const char *colon = strchr(text, ':');
        size_t hlen = colon ? (size_t) (colon - text) : len;
        memcpy(host, text, hlen);
        host[hlen] = '\0';
        port = colon ? colon + 1 : NULL;
        if (!proto_route_valid_host_name(host, PROTO_ROUTE_HOSTNAME_MAX))
            return -1;
    }
    unsigned value = PROTO_ROUTE_ADDRESS_PORT_DEFAULT;
    if (port) {
        size_t plen = strlen(port);
        if (plen == 0 || plen > 5)
            return -1;
        value = 0;
        for (size_t i = 0; i < plen; i++) {
            if (port[i] < '0' || port[i] > '9')
                return -1;
            value = value * 10 + (unsigned) (port[i] - '0');
        }
        if (value < PROTO_ROUTE_PORT_MIN || value > PROTO_ROUTE_PORT_MAX)
            return -1;
    }
    int n = snprintf(out, cap, "%s:%u", host, value);
    if (n < 0 || (size_t) n >= cap || n > PROTO_ROUTE_ADDRESS_MAX) {
        if (cap > 0)
            out[0] = '\0';
        return -1;
    }
    return 0;
}

bool
proto_route_valid_header_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > PROTO_ROUTE_HEADER_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!s_alnum(name[i]) && strchr("!#$%&'*+-.^_`|~", name[i]) == NULL)
            return false;
    return true;
}

bool
proto_route_header_forbidden(const char *name)
{
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(s_forbidden_headers); i++)
        if (strcasecmp(name, s_forbidden_headers[i]) == 0)
            return true;
    return false;
}

bool
proto_route_valid_header_value(const char *value)
{
    size_t len = strlen(value);
    if (len > PROTO_ROUTE_HEADER_VALUE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char) value[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return false;
    }
    return true;
}

int
proto_route_probe_parse(const char *name, proto_route_probe_t *probe)
{
    if (name == NULL)
        return -1;
    for (int p = 0; p < PROTO_ROUTE_PROBE_COUNT; p++)
        if (strcmp(name, s_probes[p]) == 0) {
            *probe = (proto_route_probe_t) p;
            return 0;
        }
    return -1;
}

const char *
proto_route_probe_name(proto_route_probe_t probe)
{
    if ((int) probe < 0 || probe >= PROTO_ROUTE_PROBE_COUNT)
        return NULL;
    return s_probes[probe];
}

const char *
proto_route_probe_list(void)
{
    return s_probe_list + 2;
}
