/*  cli_json - print any msgpack value as JSON, for `switchyard tap`.

    Reads with the bounded proto_mp cursor. Values of secret keys (see
    proto_log_is_secret_key) and secret query parameters of path-like keys
    are written as "[REDACTED]": taps redact exactly as logs do.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_json.h"
#include "proto_log.h"
#include "proto_mp.h"
#include "proto_util.h"

static void
s_put(cli_json_t *out, const char *s, size_t len)
{
    if (out->size + len + 1 > out->cap) {
        size_t cap = out->cap ? out->cap : 1024;
        while (cap < out->size + len + 1)
            cap *= 2;
        out->data = proto_xrealloc(out->data, cap);
        out->cap = cap;
    }
    memcpy(out->data + out->size, s, len);
    out->size += len;
    out->data[out->size] = '\0';
}

static void
s_put_str(cli_json_t *out, const char *s, size_t len)
{
    // worst case every byte becomes \u00XX, plus quotes and NUL
    size_t need = len * 6 + 3;
    char stack[512];
    char *buf = need <= sizeof stack ? stack : proto_xmalloc(need);
    buf[0] = '\0';
    size_t n = proto_log_json_string(buf, need, s, len);
    s_put(out, buf, n);
    if (buf != stack)
        free(buf);
}

//  True if the len bytes at key are word.
static bool
s_key_is(const char *key, size_t len, const char *word)
{
    return len == strlen(word) && memcmp(key, word, len) == 0;
}

static bool
s_pathlike(const char *key, size_t len)
{
    return s_key_is(key, len, "path") || s_key_is(key, len, "url") || s_key_is(key, len, "uri");
}

static int s_value(proto_mp_t *mp, cli_json_t *out, int depth);

static int
s_map(proto_mp_t *mp, cli_json_t *out, int depth)
{
    uint32_t n;
    if (proto_mp_map(mp, &n) != 0)
        return -2;
    s_put(out, "{", 1);
    for (uint32_t i = 0; i < n; i++) {
        const char *key;
        uint32_t klen;
        if (i)
            s_put(out, ",", 1);
        if (proto_mp_peek(mp) == PROTO_MP_STR) {
            if (proto_mp_str(mp, &key, &klen) != 0)
                return -2;
        } else {
            // non-string keys are printed as their JSON text, quoted
            cli_json_t tmp = {0};
            if (s_value(mp, &tmp, depth + 1) != 0) {
                free(tmp.data);
                return -2;
            }
            s_put_str(out, tmp.data ? tmp.data : "", tmp.size);
            free(tmp.data);
            s_put(out, ":", 1);
            if (s_value(mp, out, depth + 1) != 0)
                return -2;
            continue;
        }
        s_put_str(out, key, klen);
        s_put(out, ":", 1);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int) (klen < 127 ? klen : 127), key);
        if (proto_log_is_secret_key(name)) {
            if (proto_mp_skip(mp) != 0)
                return -2;
            s_put(out, PROTO_LIT("\"[REDACTED]\""));
        } else if (s_pathlike(key, klen) && proto_mp_peek(mp) == PROTO_MP_STR) {
            const char *s;
            uint32_t len;
            if (proto_mp_str(mp, &s, &len) != 0)
                return -2;
            char *copy = proto_xmalloc(len + 1);
            memcpy(copy, s, len);
            copy[len] = '\0';
            size_t cap = (size_t) len + 1024;
            char *red = proto_xmalloc(cap);
            size_t rlen = proto_log_redact_query(copy, red, cap);
            s_put_str(out, red, rlen);
            free(red);
            free(copy);
        } else if (s_value(mp, out, depth + 1) != 0) {
            return -2;
        }
    }
    s_put(out, "}", 1);
    return 0;
}

static int
s_value(proto_mp_t *mp, cli_json_t *out, int depth)
{
    char num[64];
    const char *s;
    const uint8_t *b;
    uint32_t len, n;
    uint64_t u;
    int64_t i;
    double d;
    bool flag;
    if (depth > PROTO_MP_MAX_DEPTH)
        return -2;
    switch (proto_mp_peek(mp)) {
        case PROTO_MP_NIL:
            s_put(out, PROTO_LIT("null"));
            return proto_mp_nil(mp);
        case PROTO_MP_BOOL:
            if (proto_mp_bool(mp, &flag) != 0)
                return -2;
            if (flag)
                s_put(out, PROTO_LIT("true"));
            else
                s_put(out, PROTO_LIT("false"));
            return 0;
        case PROTO_MP_UINT:
            if (proto_mp_uint(mp, &u) != 0)
                return -2;
            s_put(out, num, (size_t) snprintf(num, sizeof num, "%llu", (unsigned long long) u));
            return 0;
        case PROTO_MP_INT:
            if (proto_mp_int(mp, &i) != 0)
                return -2;
            s_put(out, num, (size_t) snprintf(num, sizeof num, "%lld", (long long) i));
            return 0;
        case PROTO_MP_FLOAT:
            if (proto_mp_double(mp, &d) != 0)
                return -2;
            if (d != d || d > 1e308 || d < -1e308)
                s_put(out, PROTO_LIT("null"));
            else
                s_put(out, num, (size_t) snprintf(num, sizeof num, "%.17g", d));
            return 0;
        case PROTO_MP_STR:
            if (proto_mp_str(mp, &s, &len) != 0)
                return -2;
            s_put_str(out, s, len);
            return 0;
        case PROTO_MP_BIN:
            if (proto_mp_bin(mp, &b, &len) != 0)
                return -2;
            s_put_str(out, (const char *) b, len);
            return 0;
        case PROTO_MP_ARRAY:
            if (proto_mp_array(mp, &n) != 0)
                return -2;
            s_put(out, "[", 1);
            for (uint32_t k = 0; k < n; k++) {
                if (k)
                    s_put(out, ",", 1);
                if (s_value(mp, out, depth + 1) != 0)
                    return -2;
            }
            s_put(out, "]", 1);
            return 0;
        case PROTO_MP_MAP:
            return s_map(mp, out, depth);
        case PROTO_MP_EXT:
            s_put(out, PROTO_LIT("\"<ext>\""));
            return proto_mp_skip(mp);
        default:
            return -2;
    }
}

int
cli_json_from_msgpack(const void *buf, size_t len, cli_json_t *out)
{
    proto_mp_t mp;
    out->size = 0;
    s_put(out, "", 0);
    proto_mp_init(&mp, buf, len);
    if (s_value(&mp, out, 0) != 0 || !proto_mp_done(&mp))
        return -2;
    return 0;
}

void
cli_json_free(cli_json_t *json)
{
    free(json->data);
    json->data = NULL;
    json->size = json->cap = 0;
}
