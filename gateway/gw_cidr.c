/*  gw_cidr - address blocks and membership. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_cidr.h"

static int
s_parse_one(const char *text, size_t len, gw_cidr_t *out)
{
    char buf[64];
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    long prefix = -1;
    if (slash) {
        char *end;
        *slash = '\0';
        if (slash[1] < '0' || slash[1] > '9')
            return -1;
        prefix = strtol(slash + 1, &end, 10);
        if (*end != '\0')
            return -1;
    }
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        if (prefix < 0)
            prefix = 32;
        if (prefix > 32)
            return -1;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        if (prefix < 0)
            prefix = 128;
        if (prefix > 128)
            return -1;
    } else {
        return -1;
    }
    out->prefix = (unsigned) prefix;
    return 0;
}

int
gw_cidr_parse(const char *text, gw_cidr_list_t *list, char *err, size_t errlen)
{
    list->count = 0;
    if (text == NULL)
        return 0;
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == '\0')
            break;
        size_t len = strcspn(p, ", ");
        if (list->count >= GW_CIDR_MAX) {
            snprintf(err, errlen, "more than %d blocks", GW_CIDR_MAX);
            return -1;
        }
        if (s_parse_one(p, len, &list->blocks[list->count]) != 0) {
            snprintf(err, errlen, "'%.*s' is not an address or CIDR block", (int) len, p);
            return -1;
        }
        list->count++;
        p += len;
    }
    return 0;
}

static bool
s_in_block(const gw_cidr_t *b, int family, const uint8_t *addr)
{
    if (b->family != family)
        return false;
    unsigned full = b->prefix / 8, rest = b->prefix % 8;
    if (memcmp(b->addr, addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t) (0xff << (8 - rest));
    return (b->addr[full] & mask) == (addr[full] & mask);
}

static bool
s_match(const gw_cidr_list_t *list, int family, const uint8_t *addr)
{
    for (size_t i = 0; i < list->count; i++)
        if (s_in_block(&list->blocks[i], family, addr))
            return true;
    return false;
}

bool
gw_cidr_match(const gw_cidr_list_t *list, const struct sockaddr *sa)
{
    if (list->count == 0)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *) (const void *) sa;
        return s_match(list, AF_INET, (const uint8_t *) &in->sin_addr);
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) (const void *) sa;
        const uint8_t *a = (const uint8_t *) &in6->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && s_match(list, AF_INET, a + 12))
            return true;
        return s_match(list, AF_INET6, a);
    }
    return false;
}

bool
gw_cidr_match_text(const gw_cidr_list_t *list, const char *ip)
{
    uint8_t addr[16];
    if (inet_pton(AF_INET, ip, addr) == 1)
        return s_match(list, AF_INET, addr);
    if (inet_pton(AF_INET6, ip, addr) == 1)
        return s_match(list, AF_INET6, addr);
    return false;
}
