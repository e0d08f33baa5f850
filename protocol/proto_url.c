/*  proto_url - REDIS_URL parser, DATABASE_URL check, password redaction.

    The userinfo of a URL ends at the last '@' of the whole text: the parts
    after it (host, port, database number) can never hold one, so a password
    with an unencoded '@', '/' or '?' still parses as the user meant it, and
    redaction never shows a piece of it.
*/
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proto_log.h"
#include "proto_url.h"
#include "proto_util.h"

#define S_REDACTED "[REDACTED]"
#define S_DB_MAX   2147483647LL // Redis's `databases` is an int

static int
s_why(char *why, size_t whylen, const char *text)
{
    if (why && whylen > 0) {
        snprintf(why, whylen, "%s", text);
    }
    return -1;
}

static bool
s_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool
s_is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
s_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

//  Percent-decode len bytes of src into out (cap bytes). Returns 0, or -1
//  for a bad escape, a NUL byte or a result that does not fit.
static int
s_decode(const char *src, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            int high = i + 1 < len ? proto_hex_digit(src[i + 1]) : -1;
            int low = i + 2 < len ? proto_hex_digit(src[i + 2]) : -1;
            if (high < 0 || low < 0) {
                return -1;
            }
            c = (char) (high * 16 + low);
            i += 2;
        }
        if (c == '\0' || n + 1 >= cap) {
            return -1;
        }
        out[n++] = c;
    }
    out[n] = '\0';
    return 0;
}

static bool
s_is_host_char(char c)
{
    return s_is_alpha(c) || s_is_digit(c) || c == '.' || c == '-' || c == '_';
}

//  The text after "scheme://" if text starts with scheme (any case), else NULL.
static const char *
s_after_scheme(const char *text, const char *scheme)
{
    size_t len = strlen(scheme);
    if (strncasecmp(text, scheme, len) != 0 || strncmp(text + len, "://", 3) != 0) {
        return NULL;
    }
    return text + len + 3;
}

int
proto_redis_url_parse(const char *text, proto_redis_url_t *url, char *why, size_t whylen)
{
    if (!text || !url) {
        return s_why(why, whylen, "no URL");
    }
    const char *rest = s_after_scheme(text, "redis");
    if (!rest) {
        if (s_after_scheme(text, "rediss")) {
            return s_why(why, whylen, "rediss:// (TLS) is not supported: use redis://");
        }
        return s_why(why, whylen, "expected redis://[[user]:password@]host[:port][/db]");
    }
    proto_redis_url_t parsed;
    memset(&parsed, 0, sizeof parsed);
    parsed.port = PROTO_REDIS_DEFAULT_PORT;

    //  userinfo: up to the last '@'
    const char *at = strrchr(rest, '@');
    if (at) {
        const char *colon = memchr(rest, ':', (size_t) (at - rest));
        if (!colon) {
            return s_why(why, whylen, "a user needs a password: user:password@ or :password@");
        }
        if (colon + 1 == at) {
            return s_why(why, whylen, "empty password");
        }
        if (s_decode(rest, (size_t) (colon - rest), parsed.user, sizeof parsed.user) != 0) {
            return s_why(why, whylen, "bad user name (percent-encoding, NUL or too long)");
        }
        if (s_decode(colon + 1, (size_t) (at - colon - 1), parsed.password, sizeof parsed.password)
            != 0) {
            return s_why(why, whylen, "bad password (percent-encoding, NUL or too long)");
        }
        rest = at + 1;
    }

    //  host
    const char *p = rest;
    if (*p == '[') {
        const char *close = strchr(p, ']');
        size_t len = close ? (size_t) (close - p - 1) : 0;
        if (!close || len == 0 || len >= sizeof parsed.host) {
            return s_why(why, whylen, "bad IPv6 address: expected [address]");
        }
        memcpy(parsed.host, p + 1, len);
        parsed.host[len] = '\0';
        struct in6_addr in6;
        if (inet_pton(AF_INET6, parsed.host, &in6) != 1) {
            return s_why(why, whylen, "bad IPv6 address: expected [address]");
        }
        p = close + 1;
    } else {
        size_t len = 0;
        while (s_is_host_char(p[len])) {
            len++;
        }
        if (len == 0) {
            return s_why(why, whylen, "no host");
        }
        if (len >= sizeof parsed.host) {
            return s_why(why, whylen, "host name too long");
        }
        memcpy(parsed.host, p, len);
        parsed.host[len] = '\0';
        p += len;
    }

    //  port
    if (*p == ':') {
        p++;
        unsigned long port = 0;
        size_t digits = 0;
        for (; s_is_digit(*p); p++, digits++) {
            if (port <= 65535) {
                port = port * 10 + (unsigned long) (*p - '0');
            }
        }
        if (digits == 0 || port < 1 || port > 65535) {
            return s_why(why, whylen, "bad port: expected 1-65535");
        }
        parsed.port = (uint16_t) port;
    }

    //  database number
    if (*p == '/') {
        p++;
        long long db = 0;
        for (; s_is_digit(*p); p++) {
            if (db <= S_DB_MAX) {
                db = db * 10 + (*p - '0');
            }
        }
        if (db > S_DB_MAX) {
            return s_why(why, whylen, "bad database number: expected 0-2147483647");
        }
        parsed.db = db;
    }
    if (*p == '?' || *p == '#') {
        return s_why(why, whylen, "query parameters are not supported");
    }
    if (*p != '\0') {
        return s_why(why, whylen, "expected redis://[[user]:password@]host[:port][/db]");
    }
    *url = parsed;
    return 0;
}

//  A libpq value at p: '...' with \' and \\ escapes, or a run of non-space
//  bytes. Returns a pointer after it, or NULL if a quote is not closed.
static const char *
s_skip_pg_value(const char *p)
{
    if (*p != '\'') {
        while (*p && !s_is_space(*p)) {
            p++;
        }
        return p;
    }
    for (p++; *p != '\''; p++) {
        if (*p == '\0') {
            return NULL;
        }
        if (*p == '\\' && p[1] != '\0') {
            p++;
        }
    }
    return p + 1;
}

//  A libpq keyword at p followed by optional blanks and '=': returns the
//  keyword's length and sets *value_p after the '=' and the blanks, else 0.
static size_t
s_pg_keyword(const char *p, const char **value_p)
{
    size_t len = 0;
    while (s_is_alpha(p[len]) || p[len] == '_') {
        len++;
    }
    if (len == 0) {
        return 0;
    }
    const char *q = p + len;
    while (s_is_space(*q)) {
        q++;
    }
    if (*q != '=') {
        return 0;
    }
    q++;
    while (s_is_space(*q)) {
        q++;
    }
    *value_p = q;
    return len;
}

int
proto_pg_conninfo_check(const char *text, char *why, size_t whylen)
{
    static const char expected[] =
        "expected postgres://..., postgresql://... or libpq key=value pairs";
    if (!text || *text == '\0') {
        return s_why(why, whylen, expected);
    }
    for (const char *p = text; *p; p++) {
        unsigned char c = (unsigned char) *p;
        if ((c < 0x20 && !s_is_space(*p)) || c == 0x7f) {
            return s_why(why, whylen, "contains a control character");
        }
    }
    if (s_after_scheme(text, "postgres") || s_after_scheme(text, "postgresql")) {
        return 0;
    }
    const char *p = text;
    size_t pairs = 0;
    for (;;) {
        while (s_is_space(*p)) {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        const char *value;
        if (s_pg_keyword(p, &value) == 0) {
            return s_why(why, whylen, expected);
        }
        if (*value == '\0') {
            return s_why(why, whylen, "a keyword without a value (quote an empty one: key='')");
        }
        p = s_skip_pg_value(value);
        if (!p) {
            return s_why(why, whylen, "unterminated quoted value");
        }
        pairs++;
    }
    return pairs > 0 ? 0 : s_why(why, whylen, expected);
}

//  Append n bytes of src to out (cap bytes) at *len, cutting at cap - 1.
static void
s_put(char *out, size_t cap, size_t *len, const char *src, size_t n)
{
    if (cap == 0) {
        return;
    }
    size_t room = cap - 1 - *len;
    if (n > room) {
        n = room;
    }
    memcpy(out + *len, src, n);
    *len += n;
    out[*len] = '\0';
}

//  libpq key=value text: the value of every secret keyword replaced.
static void
s_redact_pairs(const char *text, char *out, size_t cap, size_t *len)
{
    const char *p = text;
    while (*p) {
        bool word_start = p == text || s_is_space(p[-1]);
        const char *value = NULL;
        size_t key_len = word_start ? s_pg_keyword(p, &value) : 0;
        if (key_len == 0) {
            s_put(out, cap, len, p, 1);
            p++;
            continue;
        }
        char key[64];
        size_t copy = key_len < sizeof key ? key_len : sizeof key - 1;
        memcpy(key, p, copy);
        key[copy] = '\0';
        s_put(out, cap, len, p, (size_t) (value - p));
        const char *end = s_skip_pg_value(value);
        if (!end) {
            end = value + strlen(value); // unterminated quote: the rest is the value
        }
        if (proto_log_is_secret_key(key)) {
            s_put(out, cap, len, S_REDACTED, strlen(S_REDACTED));
        } else {
            s_put(out, cap, len, value, (size_t) (end - value));
        }
        p = end;
    }
}

//  Control bytes become '?', so the text stays on one line.
static size_t
s_one_line(char *out, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) out[i];
        if (c < 0x20 || c == 0x7f) {
            out[i] = '?';
        }
    }
    return len;
}

size_t
proto_url_redact(const char *text, char *out, size_t cap)
{
    size_t len = 0;
    if (cap > 0) {
        out[0] = '\0';
    }
    if (!text || cap == 0) {
        return 0;
    }
    const char *scheme_end = strstr(text, "://");
    if (!scheme_end) {
        s_redact_pairs(text, out, cap, &len);
        return s_one_line(out, len);
    }
    const char *rest = scheme_end + 3;
    s_put(out, cap, &len, text, (size_t) (rest - text));
    const char *at = strrchr(rest, '@');
    if (at) {
        //  user:password@ keeps the user; a userinfo without ':' may be a
        //  password given the wrong way, so all of it goes.
        const char *colon = memchr(rest, ':', (size_t) (at - rest));
        if (colon) {
            s_put(out, cap, &len, rest, (size_t) (colon + 1 - rest));
        }
        s_put(out, cap, &len, S_REDACTED, strlen(S_REDACTED));
        rest = at;
    }
    //  host, port, path and a query whose secret parameters are redacted
    len += proto_log_redact_query(rest, out + len, cap - len);
    return s_one_line(out, len);
}
