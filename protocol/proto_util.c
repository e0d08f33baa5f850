/*  proto_util - allocation that aborts on out-of-memory, bounded copies, FNV-1a, small text helpers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto_util.h"

static void
s_oom(size_t size)
{
    fprintf(stderr, "switchyard: out of memory allocating %zu bytes\n", size);
    abort();
}

void *
proto_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        s_oom(size);
    return p;
}

void *
proto_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL)
        s_oom(count * size);
    return p;
}

void *
proto_xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (p == NULL)
        s_oom(size);
    return p;
}

char *
proto_xstrdup(const char *s)
{
    size_t len = strlen(s);
    char *copy = proto_xmalloc(len + 1);
    memcpy(copy, s, len + 1);
    return copy;
}

bool
proto_strlcpy(char *dst, const char *src, size_t cap)
{
    size_t len = strlen(src);
    if (cap == 0)
        return false;
    size_t n = len < cap - 1 ? len : cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return n == len;
}

bool
proto_starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

uint64_t
proto_fnv1a_more(uint64_t hash, const void *data, size_t len)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++)
        hash = proto_fnv1a_byte(hash, p[i]);
    return hash;
}

uint64_t
proto_fnv1a(const void *data, size_t len)
{
    return proto_fnv1a_more(PROTO_FNV1A_OFFSET, data, len);
}

uint64_t
proto_fnv1a_str(const char *s)
{
    uint64_t hash = PROTO_FNV1A_OFFSET;
    for (const char *p = s ? s : ""; *p; p++)
        hash = proto_fnv1a_byte(hash, (uint8_t) *p);
    return hash;
}

bool
proto_chat_name_ok(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > PROTO_CHAT_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.'
              || c == '_' || c == '@' || c == '-'))
            return false;
    }
    return true;
}

int
proto_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

const char *
proto_errno_reason(int err)
{
    switch (err) {
        case ECONNREFUSED:
            return "refused";
        case ECONNRESET:
        case EPIPE:
            return "reset";
        case ETIMEDOUT:
            return "timeout";
        case EHOSTUNREACH:
        case ENETUNREACH:
            return "unreachable";
        default:
            return "connect error";
    }
}

void
proto_iso8601_ms(uint64_t ms, char *out, size_t cap)
{
    time_t secs = (time_t) (ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%.20s.%03uZ", date, (unsigned) (ms % 1000));
}

int
proto_b64_digit(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    return c == '/' ? 63 : -1;
}
