/*  fuzz_proto - libFuzzer target for the bus decoder (proto_decode).

    Every actor decodes what arrives on its sockets with proto_decode, so these bytes are
    untrusted. Decodes the input twice and checks what protocol/proto.h promises:
    - the return is 0 or -2, and the same both times (with the same error and key);
    - on -2: msg.err is a decode error with a name (proto_err_name), never PROTO_OK nor
      one of proto_bus's own reasons (frames, unexpected); err_field is NULL or a short key;
    - on 0: the type is known; walking proto_desc's field descriptors, every required
      string is there and every string (envelope rid and src, body fields, list records,
      map pairs) is NUL-terminated within its field's bound; bins, lists, maps and
      integers are within their bounds; nothing points into the input (the input is freed
      before anything reads the message, so ASan sees such a pointer);
    - the decoded message re-encodes (proto_encode; EMSGSIZE tolerated only when the input
      is within a few bytes of PROTO_MSG_MAX), the encoding decodes again (0) to the same
      envelope, and re-encoding that gives the same bytes (idempotence); prefixes of the
      encoding are refused with -2;
    - keys may come in any order (PROTOCOL.md): the input and the encoding with their first
      two top-level entries moved last (v and t, which the decoder's one-pass path wants
      first) get the same verdict and, when accepted, the same message.
    Everything is freed (ASan's leak check). Build and run: tests/fuzz/README.md.
*/
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "proto_desc.h"
#include "proto_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

//  Re-encoding may add a few bytes (an absent rid written as "", float32 widened to
//  float64): an input this close to PROTO_MSG_MAX may then be too big to send back.
#define S_ENCODE_SLACK 64

//  A decoded string: present unless optional, and NUL-terminated within bound.
static void
s_check_str(const char *s, size_t bound, bool required)
{
    if (s == NULL) {
        if (required)
            abort();
        return;
    }
    if (strnlen(s, bound + 1) > bound)
        abort();
}

static void
s_check_struct(const proto_sdesc_t *d, const uint8_t *base, int depth)
{
    if (d == NULL || depth > 2)
        abort();
    for (size_t i = 0; i < d->nfields; i++) {
        const proto_field_t *f = &d->fields[i];
        const void *p = base + f->offset;
        switch (f->type) {
            case PROTO_FT_STR:
                s_check_str(*(const char *const *) p, f->bound, f->required);
                break;
            case PROTO_FT_BIN: {
                const proto_bin_t *b = p;
                if (b->size > f->bound || (b->size && b->data == NULL))
                    abort();
                break;
            }
            case PROTO_FT_U8:
                if (f->bound && *(const uint8_t *) p > f->bound)
                    abort();
                break;
            case PROTO_FT_U16:
                if (f->bound && *(const uint16_t *) p > f->bound)
                    abort();
                break;
            case PROTO_FT_U32:
                if (f->bound && *(const uint32_t *) p > f->bound)
                    abort();
                break;
            case PROTO_FT_U64:
                if (f->bound && *(const uint64_t *) p > f->bound)
                    abort();
                break;
            case PROTO_FT_I64:
            case PROTO_FT_F64:
            case PROTO_FT_BOOL:
                break;
            case PROTO_FT_LIST: {
                uint32_t n = *(const uint32_t *) (base + f->count_offset);
                const uint8_t *items = *(const uint8_t *const *) p;
                const proto_sdesc_t *sub = f->sub();
                if (n > f->bound || (n && items == NULL))
                    abort();
                for (uint32_t k = 0; k < n; k++)
                    s_check_struct(sub, items + k * sub->size, depth + 1);
                break;
            }
            case PROTO_FT_KV: {
                uint32_t n = *(const uint32_t *) (base + f->count_offset);
                const proto_kv_t *kv = *(const proto_kv_t *const *) p;
                if (n > f->bound || (n && kv == NULL))
                    abort();
                for (uint32_t k = 0; k < n; k++) {
                    s_check_str(kv[k].key, f->item_bound, true);
                    s_check_str(kv[k].value, f->item_bound, true);
                }
                break;
            }
            default:
                abort();
        }
    }
}

static void
s_check_decoded(const proto_msg_t *msg)
{
    const proto_mdesc_t *md = proto_mdesc(msg->type);
    if (md == NULL || proto_type_name(msg->type) == NULL)
        abort();
    s_check_str(msg->rid, PROTO_RID_MAX, true);
    s_check_str(msg->src, PROTO_SRC_MAX, true);
    s_check_struct(md->body(), (const uint8_t *) &msg->ping, 0);
}

static void
s_check_refused(const proto_msg_t *msg)
{
    //  proto_bus's reasons (frames, unexpected) are about the ZeroMQ message, not its bytes
    if (msg->err <= PROTO_OK || msg->err >= PROTO_ERR_FRAMES)
        abort();
    const char *name = proto_err_name(msg->err);
    if (name == NULL || name[0] == '\0' || strcmp(name, "invalid") == 0)
        abort();
    if (msg->err_field != NULL) {
        size_t n = strnlen(msg->err_field, 64);
        if (n == 0 || n == 64)
            abort();
    }
}

static bool
s_same_str(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

//  Decode a copy of exactly len bytes (ASan sees reads past the end), then free the copy.
static int
s_decode_copy(const void *data, size_t len, proto_msg_t *msg)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (copy == NULL)
        abort();
    if (len)
        memcpy(copy, data, len);
    int rc = proto_decode(copy, len, msg);
    memset(copy, 0xa5, len);
    free(copy);
    return rc;
}

//  The end of the msgpack value at p (before end), or NULL if it does not fit or nests
//  deeper than depth. Written here, without proto_mp's nesting bound, so that the target
//  can reorder what proto_mp refuses to skip.
static const uint8_t *
s_skip(const uint8_t *p, const uint8_t *end, int depth)
{
    if (p >= end || depth < 0)
        return NULL;
    uint8_t b = *p++;
    size_t left = (size_t) (end - p), len = 0, items = 0;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return p;
    if (b >= 0x80 && b <= 0x8f)
        items = 2u * (b & 0x0f);
    else if (b >= 0x90 && b <= 0x9f)
        items = b & 0x0f;
    else if (b >= 0xa0 && b <= 0xbf)
        len = b & 0x1f;
    else if (b >= 0xd4 && b <= 0xd8)
        len = 1 + ((size_t) 1 << (b - 0xd4)); // fixext: type byte and data
    else {
        static const uint8_t fixed[] = {[0xca - 0xc4] = 4, [0xcb - 0xc4] = 8, [0xcc - 0xc4] = 1,
                                        [0xcd - 0xc4] = 2, [0xce - 0xc4] = 4, [0xcf - 0xc4] = 8,
                                        [0xd0 - 0xc4] = 1, [0xd1 - 0xc4] = 2, [0xd2 - 0xc4] = 4,
                                        [0xd3 - 0xc4] = 8};
        //  the width of the length (str, bin, ext, array, map) or of the value (numbers)
        size_t width = b == 0xc4 || b == 0xc7 || b == 0xd9                             ? 1
                       : b == 0xc5 || b == 0xc8 || b == 0xda || b == 0xdc || b == 0xde ? 2
                       : b == 0xc6 || b == 0xc9 || b == 0xdb || b == 0xdd || b == 0xdf ? 4
                                                                                       : 0;
        if (width == 0) {
            if (b < 0xc4 || b > 0xd3 || fixed[b - 0xc4] == 0)
                return NULL; // 0xc1 or a bug of this table
            return left >= fixed[b - 0xc4] ? p + fixed[b - 0xc4] : NULL;
        }
        if (left < width)
            return NULL;
        uint64_t n = 0;
        for (size_t i = 0; i < width; i++)
            n = n << 8 | *p++;
        left -= width;
        if (b == 0xdc || b == 0xdd)
            items = n;
        else if (b == 0xde || b == 0xdf)
            items = 2 * n;
        else
            len = n + (b >= 0xc7 && b <= 0xc9); // ext: the type byte
        if (items > left)
            return NULL;
    }
    if (items == 0)
        return len <= left ? p + len : NULL;
    for (size_t i = 0; i < items; i++)
        if ((p = s_skip(p, end, depth - 1)) == NULL)
            return NULL;
    return p;
}

//  The message with its top-level map's first two entries moved last (for an encoder's
//  output: v and t, which proto_decode's fast path wants first), anything after the map
//  left after it. NULL if the input does not start with a map of 3 entries or more.
//  Caller frees.
static uint8_t *
s_rotate(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    if (size == 0)
        return NULL;
    uint8_t b = *p++;
    uint64_t n;
    if (b >= 0x80 && b <= 0x8f) {
        n = b & 0x0f;
    } else if ((b == 0xde && size >= 3) || (b == 0xdf && size >= 5)) {
        n = 0;
        for (size_t i = 0; i < (b == 0xde ? 2u : 4u); i++)
            n = n << 8 | *p++;
    } else {
        return NULL;
    }
    if (n < 3 || n > size)
        return NULL;
    const uint8_t *first = p, *third = NULL;
    for (uint64_t k = 0; k < 2 * n; k++) {
        if (k == 4)
            third = p;
        if ((p = s_skip(p, end, 256)) == NULL)
            return NULL;
    }
    uint8_t *out = malloc(size);
    if (out == NULL)
        abort();
    size_t head = (size_t) (first - data), lead = (size_t) (third - first),
           rest = (size_t) (p - third);
    memcpy(out, data, head);
    memcpy(out + head, third, rest);
    memcpy(out + head + rest, first, lead);
    memcpy(out + head + rest + lead, p, (size_t) (end - p));
    return out;
}

//  Keys may come in any order (PROTOCOL.md): the same entries moved give the same verdict
//  and, when accepted, the same message (its encoding, expected).
static void
s_check_order(const uint8_t *data, size_t size, int rc, const proto_buf_t *expected)
{
    uint8_t *moved = s_rotate(data, size);
    if (moved == NULL)
        return;
    proto_msg_t m;
    proto_buf_t enc = {0};
    proto_msg_init(&m, PROTO_NONE);
    int rc_moved = s_decode_copy(moved, size, &m);
    if (rc_moved != rc)
        abort();
    if (rc == 0 && expected != NULL
        && (proto_encode(&m, &enc) != 0 || enc.size != expected->size
            || memcmp(enc.data, expected->data, enc.size) != 0))
        abort();
    proto_buf_free(&enc);
    proto_msg_clear(&m);
    free(moved);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    proto_msg_t a, b;
    proto_buf_t enc = {0}, enc2 = {0};
    proto_msg_init(&a, PROTO_NONE);
    proto_msg_init(&b, PROTO_NONE);

    int rc = s_decode_copy(data, size, &a);
    int rc_b = s_decode_copy(data, size, &b);
    if ((rc != 0 && rc != -2) || rc != rc_b)
        abort();
    if (rc == -2) {
        s_check_refused(&a);
        if (a.err != b.err || !s_same_str(a.err_field, b.err_field))
            abort();
        s_check_order(data, size, rc, NULL);
        goto done;
    }
    s_check_decoded(&a);
    s_check_decoded(&b);

    if (proto_encode(&a, &enc) != 0) {
        if (errno == EMSGSIZE && size + S_ENCODE_SLACK > PROTO_MSG_MAX) {
            s_check_order(data, size, rc, NULL);
            goto done;
        }
        abort();
    }
    if (proto_encode(&b, &enc2) != 0 || enc.size != enc2.size
        || memcmp(enc.data, enc2.data, enc.size) != 0)
        abort(); // the same input decoded twice must be the same message

    //  The re-encoding decodes to the same message, which encodes to the same bytes.
    if (s_decode_copy(enc.data, enc.size, &b) != 0)
        abort();
    s_check_decoded(&b);
    if (b.type != a.type || b.id != a.id || b.ts != a.ts || strcmp(b.rid, a.rid) != 0
        || strcmp(b.src, a.src) != 0)
        abort();
    if (proto_encode(&b, &enc2) != 0 || enc.size != enc2.size
        || memcmp(enc.data, enc2.data, enc.size) != 0)
        abort();

    //  In another order, the input and the encoding are the same message.
    s_check_order(data, size, rc, &enc);
    s_check_order(enc.data, enc.size, 0, &enc);

    //  A prefix of one msgpack map is never a whole message.
    size_t cuts[] = {enc.size - 1, enc.size / 2, size % enc.size};
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(cuts); i++) {
        if (s_decode_copy(enc.data, cuts[i], &b) != -2)
            abort();
        s_check_refused(&b);
    }

done:
    proto_buf_free(&enc);
    proto_buf_free(&enc2);
    proto_msg_clear(&a);
    proto_msg_clear(&b);
    return 0;
}
