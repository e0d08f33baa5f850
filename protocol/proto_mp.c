/*  proto_mp - a bounded, zero-copy msgpack reader.

    Reads the msgpack format (https://github.com/msgpack/msgpack/blob/master/spec.md)
    with every length checked against the bytes that remain.
*/
#include <string.h>

#include "proto_mp.h"

void
proto_mp_init(proto_mp_t *mp, const void *buf, size_t len)
{
    mp->pos = buf;
    mp->end = mp->pos + len;
}

bool
proto_mp_done(const proto_mp_t *mp)
{
    return mp->pos == mp->end;
}

static size_t
s_left(const proto_mp_t *mp)
{
    return (size_t) (mp->end - mp->pos);
}

//  Read an n-byte big-endian unsigned number.
static int
s_be(proto_mp_t *mp, size_t n, uint64_t *value)
{
    if (s_left(mp) < n)
        return -2;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | mp->pos[i];
    mp->pos += n;
    *value = v;
    return 0;
}

//  The kind of every msgpack lead byte (spec's "formats" table).
const uint8_t proto_mp_kinds[256] = {
    [0x00 ... 0x7f] = PROTO_MP_UINT,
    [0x80 ... 0x8f] = PROTO_MP_MAP,
    [0x90 ... 0x9f] = PROTO_MP_ARRAY,
    [0xa0 ... 0xbf] = PROTO_MP_STR,
    [0xc0] = PROTO_MP_NIL,
    [0xc1] = PROTO_MP_INVALID, // never used
    [0xc2 ... 0xc3] = PROTO_MP_BOOL,
    [0xc4 ... 0xc6] = PROTO_MP_BIN,
    [0xc7 ... 0xc9] = PROTO_MP_EXT,
    [0xca ... 0xcb] = PROTO_MP_FLOAT,
    [0xcc ... 0xcf] = PROTO_MP_UINT,
    [0xd0 ... 0xd3] = PROTO_MP_INT,
    [0xd4 ... 0xd8] = PROTO_MP_EXT,
    [0xd9 ... 0xdb] = PROTO_MP_STR,
    [0xdc ... 0xdd] = PROTO_MP_ARRAY,
    [0xde ... 0xdf] = PROTO_MP_MAP,
    [0xe0 ... 0xff] = PROTO_MP_INT,
};

int
proto_mp_nil(proto_mp_t *mp)
{
    if (s_left(mp) < 1 || *mp->pos != 0xc0)
        return -2;
    mp->pos++;
    return 0;
}

int
proto_mp_bool(proto_mp_t *mp, bool *value)
{
    if (s_left(mp) < 1 || (*mp->pos != 0xc2 && *mp->pos != 0xc3))
        return -2;
    *value = *mp->pos == 0xc3;
    mp->pos++;
    return 0;
}

//  Read any integer as a sign and a magnitude.
static int
s_integer(proto_mp_t *mp, bool *negative, uint64_t *magnitude)
{
    if (s_left(mp) < 1)
        return -2;
    uint8_t b = *mp->pos;
    *negative = false;
    if (b <= 0x7f) {
        mp->pos++;
        *magnitude = b;
        return 0;
    }
    if (b >= 0xe0) {
        mp->pos++;
        *negative = true;
        *magnitude = (uint64_t) (-(int64_t) (int8_t) b);
        return 0;
    }
    uint64_t raw;
    size_t n;
    bool is_signed;
    switch (b) {
        case 0xcc:
            n = 1;
            is_signed = false;
            break;
        case 0xcd:
            n = 2;
            is_signed = false;
            break;
        case 0xce:
            n = 4;
            is_signed = false;
            break;
        case 0xcf:
            n = 8;
            is_signed = false;
            break;
        case 0xd0:
            n = 1;
            is_signed = true;
            break;
        case 0xd1:
            n = 2;
            is_signed = true;
            break;
        case 0xd2:
            n = 4;
            is_signed = true;
            break;
        case 0xd3:
            n = 8;
            is_signed = true;
            break;
        default:
            return -2;
    }
    mp->pos++;
    if (s_be(mp, n, &raw) != 0)
        return -2;
    if (is_signed) {
        int64_t v;
        if (n == 1)
            v = (int8_t) raw;
        else if (n == 2)
            v = (int16_t) raw;
        else if (n == 4)
            v = (int32_t) raw;
        else
            v = (int64_t) raw;
        if (v < 0) {
            *negative = true;
            *magnitude = (uint64_t) 0 - (uint64_t) v;
            return 0;
        }
        raw = (uint64_t) v;
    }
    *magnitude = raw;
    return 0;
}

int
proto_mp_uint(proto_mp_t *mp, uint64_t *value)
{
    bool negative;
    uint64_t magnitude;
    if (s_integer(mp, &negative, &magnitude) != 0 || negative)
        return -2;
    *value = magnitude;
    return 0;
}

int
proto_mp_int(proto_mp_t *mp, int64_t *value)
{
    bool negative;
    uint64_t magnitude;
    if (s_integer(mp, &negative, &magnitude) != 0)
        return -2;
    if (negative) {
        if (magnitude > (uint64_t) INT64_MAX + 1)
            return -2;
        *value = magnitude == (uint64_t) INT64_MAX + 1 ? INT64_MIN : -(int64_t) magnitude;
    } else {
        if (magnitude > (uint64_t) INT64_MAX)
            return -2;
        *value = (int64_t) magnitude;
    }
    return 0;
}

int
proto_mp_double(proto_mp_t *mp, double *value)
{
    if (s_left(mp) < 1)
        return -2;
    uint8_t b = *mp->pos;
    uint64_t raw;
    if (b == 0xca) {
        mp->pos++;
        if (s_be(mp, 4, &raw) != 0)
            return -2;
        uint32_t bits = (uint32_t) raw;
        float f;
        memcpy(&f, &bits, sizeof f);
        *value = f;
        return 0;
    }
    if (b == 0xcb) {
        mp->pos++;
        if (s_be(mp, 8, &raw) != 0)
            return -2;
        memcpy(value, &raw, sizeof *value);
        return 0;
    }
    bool negative;
    uint64_t magnitude;
    if (s_integer(mp, &negative, &magnitude) != 0)
        return -2;
    *value = negative ? -(double) magnitude : (double) magnitude;
    return 0;
}

//  Read a length-prefixed payload: the header's length, then check it fits.
static int
s_payload(proto_mp_t *mp, size_t lenbytes, const uint8_t **data, uint32_t *len)
{
    uint64_t n;
    mp->pos++;
    if (s_be(mp, lenbytes, &n) != 0 || n > s_left(mp))
        return -2;
    *data = mp->pos;
    *len = (uint32_t) n;
    mp->pos += n;
    return 0;
}

int
proto_mp_str(proto_mp_t *mp, const char **data, uint32_t *len)
{
    if (s_left(mp) < 1)
        return -2;
    uint8_t b = *mp->pos;
    const uint8_t *p;
    int rc;
    if (b >= 0xa0 && b <= 0xbf) {
        uint32_t n = b & 0x1f;
        mp->pos++;
        if (n > s_left(mp))
            return -2;
        *data = (const char *) mp->pos;
        *len = n;
        mp->pos += n;
        return 0;
    }
    if (b == 0xd9)
        rc = s_payload(mp, 1, &p, len);
    else if (b == 0xda)
        rc = s_payload(mp, 2, &p, len);
    else if (b == 0xdb)
        rc = s_payload(mp, 4, &p, len);
    else
        return -2;
    if (rc == 0)
        *data = (const char *) p;
    return rc;
}

int
proto_mp_bin(proto_mp_t *mp, const uint8_t **data, uint32_t *len)
{
    if (s_left(mp) < 1)
        return -2;
    uint8_t b = *mp->pos;
    if (b == 0xc4)
        return s_payload(mp, 1, data, len);
    if (b == 0xc5)
        return s_payload(mp, 2, data, len);
    if (b == 0xc6)
        return s_payload(mp, 4, data, len);
    return -2;
}

//  Read a container header with fix range [fixlo, fixlo+15] and 16/32-bit forms.
static int
s_container(proto_mp_t *mp, uint8_t fixlo, uint8_t b16, uint8_t b32, size_t per, uint32_t *count)
{
    if (s_left(mp) < 1)
        return -2;
    uint8_t b = *mp->pos;
    uint64_t n;
    if (b >= fixlo && b <= fixlo + 15) {
        mp->pos++;
        n = b & 0x0f;
    } else if (b == b16 || b == b32) {
        mp->pos++;
        if (s_be(mp, b == b16 ? 2 : 4, &n) != 0)
            return -2;
    } else {
        return -2;
    }
    if (n > s_left(mp) / per)
        return -2;
    *count = (uint32_t) n;
    return 0;
}

int
proto_mp_array(proto_mp_t *mp, uint32_t *count)
{
    return s_container(mp, 0x90, 0xdc, 0xdd, 1, count);
}

int
proto_mp_map(proto_mp_t *mp, uint32_t *count)
{
    return s_container(mp, 0x80, 0xde, 0xdf, 2, count);
}

static int
s_skip(proto_mp_t *mp, int depth)
{
    const uint8_t *data;
    uint32_t len, count;
    uint64_t u;
    int64_t i;
    double d;
    bool b;
    if (depth > PROTO_MP_MAX_DEPTH)
        return -2;
    switch (proto_mp_peek(mp)) {
        case PROTO_MP_NIL:
            return proto_mp_nil(mp);
        case PROTO_MP_BOOL:
            return proto_mp_bool(mp, &b);
        case PROTO_MP_UINT:
            return proto_mp_uint(mp, &u);
        case PROTO_MP_INT:
            return proto_mp_int(mp, &i);
        case PROTO_MP_FLOAT:
            return proto_mp_double(mp, &d);
        case PROTO_MP_STR:
            return proto_mp_str(mp, (const char **) &data, &len);
        case PROTO_MP_BIN:
            return proto_mp_bin(mp, &data, &len);
        case PROTO_MP_ARRAY:
            if (proto_mp_array(mp, &count) != 0)
                return -2;
            for (uint32_t k = 0; k < count; k++)
                if (s_skip(mp, depth + 1) != 0)
                    return -2;
            return 0;
        case PROTO_MP_MAP:
            if (proto_mp_map(mp, &count) != 0)
                return -2;
            for (uint32_t k = 0; k < 2 * count; k++)
                if (s_skip(mp, depth + 1) != 0)
                    return -2;
            return 0;
        case PROTO_MP_EXT: {
            uint8_t tag = *mp->pos;
            uint64_t n;
            size_t fixed[] = {1, 2, 4, 8, 16};
            if (tag >= 0xd4 && tag <= 0xd8) {
                n = fixed[tag - 0xd4];
                mp->pos++;
            } else {
                mp->pos++;
                if (s_be(mp, tag == 0xc7 ? 1 : tag == 0xc8 ? 2 : 4, &n) != 0)
                    return -2;
            }
            if (s_left(mp) < 1 || n > s_left(mp) - 1)
                return -2;
            mp->pos += 1 + n; // type byte and data
            return 0;
        }
        default:
            return -2;
    }
}

int
proto_mp_skip(proto_mp_t *mp)
{
    return s_skip(mp, 0);
}

int
proto_mp_skip_at(proto_mp_t *mp, int depth)
{
    return s_skip(mp, depth);
}
