/*  proto_mp - a bounded, zero-copy msgpack reader for bus decoders.

    msgpack-c's C unpacker reserves memory for a container's claimed length
    before checking that the input holds that many elements (a 5-byte array
    header can ask for gigabytes), so decoders of untrusted bus input read
    with this cursor instead: every length is checked against the bytes that
    remain, nothing is allocated, and nesting is bounded. Encoding uses
    msgpack-c's packer. Every function returns 0, or -2 when the input is
    malformed or of another type (the cursor is then unspecified).
*/
#ifndef PROTO_MP_H
#define PROTO_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_MP_MAX_DEPTH 32

typedef struct {
    const uint8_t *pos; // next byte to read
    const uint8_t *end; // one past the last byte
} proto_mp_t;

typedef enum {
    PROTO_MP_NIL,
    PROTO_MP_BOOL,
    PROTO_MP_UINT,
    PROTO_MP_INT,
    PROTO_MP_FLOAT,
    PROTO_MP_STR,
    PROTO_MP_BIN,
    PROTO_MP_ARRAY,
    PROTO_MP_MAP,
    PROTO_MP_EXT,
    PROTO_MP_INVALID,
} proto_mp_kind_t;

//  Start reading len bytes at buf.
void proto_mp_init(proto_mp_t *mp, const void *buf, size_t len);

//  True when every byte has been read.
bool proto_mp_done(const proto_mp_t *mp);

//  The kind of every lead byte (private to proto_mp_peek).
extern const uint8_t proto_mp_kinds[256];

//  The kind of the next value, without consuming it (PROTO_MP_INVALID at end).
//  Inline: the decoder asks once per value.
static inline proto_mp_kind_t
proto_mp_peek(const proto_mp_t *mp)
{
    return mp->pos < mp->end ? (proto_mp_kind_t) proto_mp_kinds[*mp->pos] : PROTO_MP_INVALID;
}

int proto_mp_nil(proto_mp_t *mp);
int proto_mp_bool(proto_mp_t *mp, bool *value);
//  Any non-negative integer encoding.
int proto_mp_uint(proto_mp_t *mp, uint64_t *value);
//  Any integer encoding that fits int64_t.
int proto_mp_int(proto_mp_t *mp, int64_t *value);
//  float32, float64 or any integer.
int proto_mp_double(proto_mp_t *mp, double *value);
//  A str; *data points into the input (not NUL-terminated).
int proto_mp_str(proto_mp_t *mp, const char **data, uint32_t *len);
//  A bin; *data points into the input.
int proto_mp_bin(proto_mp_t *mp, const uint8_t **data, uint32_t *len);
//  An array or map header. The count is checked against the remaining bytes
//  (each element needs at least one byte, each map entry two).
int proto_mp_array(proto_mp_t *mp, uint32_t *count);
int proto_mp_map(proto_mp_t *mp, uint32_t *count);
//  Skip one whole value, nested at most PROTO_MP_MAX_DEPTH deep.
int proto_mp_skip(proto_mp_t *mp);

//  The same for a value that is itself nested depth levels deep (0: a value
//  of the top-level map), so a skip inside a record counts from the top.
int proto_mp_skip_at(proto_mp_t *mp, int depth);

#endif
